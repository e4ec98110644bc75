//! How the user invoked remex, for the commands remex suggests.
//!
//! The library's messages name the command that fixes a problem in
//! backticks (`` `remex hosts trust vm01` ``, `` `remex keys deploy vm01` ``);
//! it cannot know which config the caller used. The CLI does: an
//! [`Invocation`] rewrites every such suggestion so that it repeats the
//! global options that matter (`--config PATH`), and so works when pasted
//! in the same directory. `--actor` is left out on purpose: it names who
//! drives remex (a workflow), and the person running the fix is someone
//! else; `--json`, `--exit-zero` and `-v` change only the output.

use std::borrow::Cow;
use std::path::Path;

use remex::RunReport;

/// The global options a suggested command repeats.
#[derive(Debug, Clone, Default)]
pub(crate) struct Invocation {
    /// `--config 'PATH'`, shell-quoted, when the user passed `--config`;
    /// empty otherwise (the default places and `$REMEX_CONFIG` work
    /// unchanged for the suggestion).
    options: String,
}

impl Invocation {
    /// The invocation of a command line with `--config config`.
    pub(crate) fn new(config: Option<&Path>) -> Self {
        let options = config
            .map(|path| format!(" --config {}", remex::quote::quote(&path.to_string_lossy())))
            .unwrap_or_default();
        Invocation { options }
    }

    /// `remex [--config PATH] REST`: a command to suggest, as the user
    /// would type it.
    pub(crate) fn command(&self, rest: &str) -> String {
        format!("remex{} {rest}", self.options)
    }

    /// `message` with every suggested `` `remex …` `` command carrying the
    /// global options. `remex lab …` is left as it is: the lab has no
    /// config (it writes one).
    pub(crate) fn rewrite<'a>(&self, message: &'a str) -> Cow<'a, str> {
        const START: &str = "`remex ";
        if self.options.is_empty() || !message.contains(START) {
            return Cow::Borrowed(message);
        }
        let mut out = String::with_capacity(message.len() + self.options.len());
        let mut rest = message;
        while let Some(at) = rest.find(START) {
            let (before, from) = rest.split_at(at);
            out.push_str(before);
            let after = &from[START.len()..];
            out.push_str("`remex");
            if !(after.starts_with("lab ") || after.starts_with("--config ")) {
                out.push_str(&self.options);
            }
            out.push(' ');
            rest = after;
        }
        out.push_str(rest);
        Cow::Owned(out)
    }

    /// Rewrites the suggestions in the error messages of a report's hosts.
    pub(crate) fn rewrite_report<T, D>(&self, report: &mut RunReport<T, D>) {
        for result in &mut report.results {
            if let Some(failure) = &mut result.error
                && let Cow::Owned(message) = self.rewrite(&failure.message)
            {
                failure.message = message;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_carry_the_config() {
        let invocation = Invocation::new(Some(Path::new("lab dir/config.yml")));
        assert_eq!(
            invocation.rewrite("unknown: check it and run `remex hosts trust vm01` (or …)"),
            "unknown: check it and run `remex --config 'lab dir/config.yml' hosts trust vm01` (or …)"
        );
        assert_eq!(
            invocation.rewrite("`remex keys rotate a` then `remex keys list`"),
            "`remex --config 'lab dir/config.yml' keys rotate a` then \
             `remex --config 'lab dir/config.yml' keys list`"
        );
        assert_eq!(
            invocation.rewrite("run `remex lab down --dir x` first"),
            "run `remex lab down --dir x` first"
        );
        assert_eq!(
            invocation.command("hosts trust vm01"),
            "remex --config 'lab dir/config.yml' hosts trust vm01"
        );
    }

    #[test]
    fn without_a_config_nothing_changes() {
        let invocation = Invocation::new(None);
        let message = "run `remex hosts trust vm01`";
        assert!(matches!(invocation.rewrite(message), Cow::Borrowed(_)));
        assert_eq!(invocation.command("keys list"), "remex keys list");
    }
}
