//! The command line before it is parsed: which operation it names, whether
//! it asks for JSON, and hints added to clap's usage errors.

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// The global options that take a value (their value is not a subcommand).
const GLOBAL_VALUE_OPTIONS: [&str; 2] = ["--config", "--actor"];

/// The words of `args` (program name first) before `--`, as text.
fn words(args: &[OsString]) -> impl Iterator<Item = std::borrow::Cow<'_, str>> {
    args.iter()
        .skip(1)
        .map(|arg| arg.to_string_lossy())
        .take_while(|arg| arg != "--")
}

/// Whether the command line asks for machine-readable output (`--json`,
/// `--ndjson` or `--output json|ndjson` before `--`), so that a usage error
/// is reported as JSON too.
pub(crate) fn wants_json(args: &[OsString]) -> bool {
    let words: Vec<_> = words(args).collect();
    let machine = |value: &str| matches!(value, "json" | "ndjson");
    words
        .iter()
        .enumerate()
        .any(|(i, word)| match word.as_ref() {
            "--json" | "--ndjson" => true,
            "--output" | "-o" => words.get(i + 1).is_some_and(|value| machine(value)),
            word => word.strip_prefix("--output=").is_some_and(machine),
        })
}

/// The subcommand path a command line names (`["hosts", "check"]`), as far
/// as it names one: the first words that are subcommand names, skipping
/// options.
fn subcommand_path(args: &[OsString]) -> Vec<String> {
    let mut command = <super::args::Cli as clap::CommandFactory>::command();
    let mut path = Vec::new();
    let mut skip_value = false;
    for word in words(args) {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        if GLOBAL_VALUE_OPTIONS.contains(&word.as_ref()) {
            skip_value = true;
            continue;
        }
        if word.starts_with('-') {
            continue;
        }
        let Some(sub) = command.find_subcommand(word.as_ref()).cloned() else {
            break;
        };
        path.push(sub.get_name().to_owned());
        if sub.get_subcommands().next().is_none() {
            break;
        }
        command = sub;
    }
    path
}

/// The operation a command line names, as its report names it (`exec`,
/// `check` for `hosts check`, `keys.deploy`), or `None` when it names no
/// subcommand.
pub(crate) fn operation_of_args(args: &[OsString]) -> Option<String> {
    operation(&subcommand_path(args))
}

/// The operation of parsed matches.
pub(crate) fn operation_of_matches(matches: &clap::ArgMatches) -> Option<String> {
    let mut path = Vec::new();
    let mut current = matches;
    while let Some((name, sub)) = current.subcommand() {
        path.push(name.to_owned());
        current = sub;
    }
    operation(&path)
}

/// `["hosts", "check"]` → `check` (the audit log's name), `["keys",
/// "deploy"]` → `keys.deploy`, `["exec"]` → `exec`.
fn operation(path: &[String]) -> Option<String> {
    match path {
        [] => None,
        [hosts, check] if hosts == "hosts" && check == "check" => Some("check".to_owned()),
        [action, run] if action == "action" && run == "run" => Some("action".to_owned()),
        words => Some(words.join(".")),
    }
}

/// Adds remex's hint to a usage error: a command word given to `exec` or
/// `script` without `--` before it ("unexpected argument 'uname'") gets
/// the command line with `--` put in.
pub(crate) fn with_hint(mut error: clap::Error, args: &[OsString]) -> clap::Error {
    if error.kind() != ErrorKind::UnknownArgument {
        return error;
    }
    let Some(ContextValue::String(word)) = error.get(ContextKind::InvalidArg) else {
        return error;
    };
    let path = subcommand_path(args);
    let is_run = matches!(path.as_slice(), [c] if c == "exec" || c == "script");
    let raw = words(args).any(|w| w == "--raw" || w.starts_with("--raw="));
    if !is_run || word.starts_with('-') || raw {
        return error;
    }
    let Some(fixed) = insert_separator(args, word) else {
        return error;
    };
    let tip = format!(
        "the command and its arguments go after `--` (they reach the host exactly as given): {fixed}"
    );
    let mut tips = match error.get(ContextKind::Suggested) {
        Some(ContextValue::StyledStrs(tips)) => tips.clone(),
        _ => Vec::new(),
    };
    tips.push(tip.into());
    error.insert(ContextKind::Suggested, ContextValue::StyledStrs(tips));
    error
}

/// The command line `args` with `--` inserted before the first word that
/// clap could not place (`word`): the first positional word after the
/// subcommand's own positionals (TARGETS; and LOCAL_SCRIPT for `script`),
/// shell-quoted as the user would type it.
fn insert_separator(args: &[OsString], word: &str) -> Option<String> {
    let words: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let run = words.iter().position(|w| w == "exec" || w == "script")?;
    let command = <super::args::Cli as clap::CommandFactory>::command();
    let sub = command.find_subcommand(&words[run])?;
    let positionals = sub
        .get_positionals()
        .filter(|arg| !arg.is_last_set())
        .count();
    let takes_value = |option: &str| {
        sub.get_arguments()
            .chain(command.get_arguments())
            .any(|arg| {
                arg.get_action().takes_values()
                    && (option.strip_prefix("--") == arg.get_long()
                        || option
                            .strip_prefix('-')
                            .and_then(|s| s.parse::<char>().ok())
                            .is_some_and(|c| Some(c) == arg.get_short()))
            })
    };
    let mut seen = 0;
    let mut skip_value = false;
    let mut at = None;
    for (i, w) in words.iter().enumerate().skip(run + 1) {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        if w == "--" {
            return None;
        }
        if w.starts_with('-') && w.len() > 1 {
            skip_value = !w.contains('=') && takes_value(w);
            continue;
        }
        if seen == positionals {
            at = Some(i);
            break;
        }
        seen += 1;
    }
    let at = at.filter(|&i| words[i] == word)?;
    let mut fixed = vec!["remex".to_owned()];
    fixed.extend(words.iter().take(at).cloned());
    fixed.push("--".to_owned());
    fixed.extend(words.iter().skip(at).cloned());
    Some(remex::quote::join(&fixed))
}

/// A clap error as one line for a JSON document: its message and tips,
/// without the usage block.
pub(crate) fn one_line(error: &clap::Error) -> String {
    let text = error.render().to_string();
    let mut parts = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if !line.is_empty() {
            parts.push(line.strip_prefix("error: ").unwrap_or(line).to_owned());
        }
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn operations_are_named_as_their_reports_name_them() {
        let op = |w: &[&str]| operation_of_args(&args(w));
        assert_eq!(
            op(&["remex", "--json", "exec", "all"]).as_deref(),
            Some("exec")
        );
        assert_eq!(
            op(&["remex", "--config", "exec", "hosts", "check"]).as_deref(),
            Some("check")
        );
        assert_eq!(
            op(&["remex", "keys", "deploy", "all"]).as_deref(),
            Some("keys.deploy")
        );
        assert_eq!(op(&["remex", "--jsn"]), None);
        assert_eq!(
            op(&["remex", "exec", "lab", "--", "keys"]).as_deref(),
            Some("exec")
        );
    }

    #[test]
    fn json_is_asked_for_before_the_separator_only() {
        assert!(wants_json(&args(&["remex", "exec", "all", "--json"])));
        assert!(wants_json(&args(&[
            "remex", "exec", "all", "--ndjson", "--", "x"
        ])));
        assert!(wants_json(&args(&[
            "remex", "exec", "all", "--output", "ndjson", "--", "x"
        ])));
        assert!(wants_json(&args(&[
            "remex",
            "exec",
            "all",
            "--output=json"
        ])));
        assert!(!wants_json(&args(&[
            "remex", "exec", "all", "-o", "oneline"
        ])));
        assert!(!wants_json(&args(&[
            "remex", "exec", "all", "--", "jq", "--json"
        ])));
    }

    #[test]
    fn the_separator_goes_before_the_command() {
        assert_eq!(
            insert_separator(
                &args(&[
                    "remex", "--config", "c.yml", "exec", "all", "-t", "5s", "ls", "a b"
                ]),
                "ls"
            )
            .as_deref(),
            Some("remex --config c.yml exec all -t 5s -- ls 'a b'")
        );
        // The targets themselves may equal the command word.
        assert_eq!(
            insert_separator(&args(&["remex", "exec", "ls", "ls", "-l"]), "ls").as_deref(),
            Some("remex exec ls -- ls -l")
        );
        assert_eq!(
            insert_separator(
                &args(&[
                    "remex",
                    "script",
                    "--timeout",
                    "1m",
                    "web",
                    "./x.sh",
                    "--sudo",
                    "a"
                ]),
                "a"
            )
            .as_deref(),
            Some("remex script --timeout 1m web ./x.sh --sudo -- a")
        );
    }
}
