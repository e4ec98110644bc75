//! [`ActionRun`]: what a named action adds to the run it becomes — its
//! name and params for the records, its secret values for redaction, and
//! the checks its `path` params get **on the host**, before the command
//! starts, in the same remote command line.
//!
//! # The path check on the host
//!
//! A `path` param was checked as text when the action was prepared
//! (absolute, normalized, under a prefix). On the host a symlink inside the
//! prefix may still lead out of it, so the command line starts with
//!
//! ```text
//! remex_real() { … }      # the real path: the part that exists resolved
//! remex_check() { … }     # by `readlink -f`, the rest appended
//! remex_check 'params.dir' '/srv/reports/x' '/srv/reports'
//! ```
//!
//! and runs the command only when the real path is under one of the
//! prefixes (or under a prefix's own real path), component by component.
//! Otherwise it prints `remex-path-check: FIELD: (leads out)` on stderr
//! (never the real path: where a symlink leads is not the caller's to
//! know) and exits
//! with [`PATH_CHECK_STATUS`] before anything else runs; the host's result
//! is then a [`ErrorKind::Denied`] failure naming the param. It uses
//! only POSIX sh, `test -e/-L` and `readlink -f` (GNU coreutils and
//! busybox alike); a path that cannot be resolved (a dangling link busybox
//! will not follow, a loop) is refused.
//!
//! The check runs as the user the command runs as (inside sudo's shell),
//! right before it: what is left is the window between the check and the
//! command's own `open`, which only someone who can already write inside
//! the prefix can use.

use std::collections::BTreeMap;

use crate::failure::{ErrorKind, Failure};
use crate::quote;

/// The exit status of a command line whose path check refused a path
/// (the command did not start).
pub const PATH_CHECK_STATUS: u32 = 125;

/// The start of the line the check prints on stderr when it refuses.
const MARKER: &str = "remex-path-check: ";

/// What an action adds to its run (built by `Action::prepare`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ActionRun {
    /// The action's name.
    pub name: String,
    /// Its params as records show them: every value given or defaulted,
    /// a secret one as `[REDACTED]`.
    pub params: BTreeMap<String, serde_json::Value>,
    /// The values of its secret params, redacted wherever the run's
    /// secrets are (records, output, error messages, a job's request).
    pub secrets: Vec<String>,
    /// The `path` params to check on the host before the command starts.
    pub path_checks: Vec<PathCheck>,
}

impl std::fmt::Debug for ActionRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionRun")
            .field("name", &self.name)
            .field("params", &self.params)
            .field("secrets", &self.secrets.len())
            .field(
                "path_checks",
                &self
                    .path_checks
                    .iter()
                    .map(|c| &c.field)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// One path to check on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathCheck {
    /// The request field it came from (`params.dir`), for the failure.
    pub field: String,
    /// The path, absolute and normalized.
    pub path: String,
    /// The prefixes its real path must be under.
    pub under: Vec<String>,
}

/// The shell functions of the check (see the module docs).
const FUNCTIONS: &str = r#"remex_real() {
p=$1 rest=
while [ ! -e "$p" ] && [ ! -L "$p" ]; do rest=/${p##*/}$rest; p=${p%/*}; [ -n "$p" ] || p=/; done
r=$(readlink -f "$p") && [ -n "$r" ] || return 1
r=${r%/}$rest
printf '%s\n' "${r:-/}"
}
remex_check() {
f=$1
real=$(remex_real "$2") || { printf 'remex-path-check: %s: %s\n' "$f" '(cannot be resolved)' >&2; exit 125; }
shift 2
for u; do
ru=$(remex_real "$u") || ru=$u
case $real/ in "${u%/}"/*|"${ru%/}"/*) return 0;; esac
done
printf 'remex-path-check: %s: %s\n' "$f" '(leads out)' >&2
exit 125
}
"#;

impl ActionRun {
    /// `text` with every secret param's value replaced by `[REDACTED]`
    /// (the longest first, so that of two overlapping ones the longer goes
    /// whole).
    pub(crate) fn hide(&self, text: &str) -> String {
        let mut secrets: Vec<&String> = self.secrets.iter().filter(|s| !s.is_empty()).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut text = text.to_owned();
        for secret in secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), crate::audit::REDACTED);
            }
        }
        text
    }

    /// Whether it has secrets to hide.
    pub(crate) fn has_secrets(&self) -> bool {
        self.secrets.iter().any(|s| !s.is_empty())
    }

    /// The lines that check every path before the command, or nothing
    /// when there is none to check.
    pub(crate) fn check_lines(&self) -> String {
        if self.path_checks.is_empty() {
            return String::new();
        }
        let mut lines = FUNCTIONS.to_owned();
        for check in &self.path_checks {
            let mut words = vec![
                "remex_check".to_owned(),
                check.field.clone(),
                check.path.clone(),
            ];
            words.extend(check.under.iter().cloned());
            lines.push_str(&quote::join(&words));
            lines.push('\n');
        }
        lines
    }

    /// The failure of a host whose path check refused (exit status
    /// [`PATH_CHECK_STATUS`] and the check's line on stderr), if it did.
    pub(crate) fn refusal(&self, exit_code: Option<u32>, stderr: &[u8]) -> Option<Failure> {
        if self.path_checks.is_empty() || exit_code != Some(PATH_CHECK_STATUS) {
            return None;
        }
        let stderr = String::from_utf8_lossy(stderr);
        let line = stderr.lines().find_map(|line| line.strip_prefix(MARKER))?;
        // The check names no real path: where a symlink leads is the
        // host's business, not the caller's.
        let (field, why) = line.split_once(": ")?;
        let check = self.path_checks.iter().find(|c| c.field == field)?;
        let under = check
            .under
            .iter()
            .map(|p| format!("`{p}`"))
            .collect::<Vec<_>>()
            .join(" or ");
        Some(Failure::refused(
            ErrorKind::Denied,
            format!(
                "{field}: on the host, `{}` {} of {under} (through a symlink); nothing ran",
                check.path,
                if why == "(leads out)" {
                    "leads out"
                } else {
                    "cannot be resolved, so may lead out"
                }
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn run_check(checks: Vec<PathCheck>) -> std::process::Output {
        let action = ActionRun {
            path_checks: checks,
            ..ActionRun::default()
        };
        let line = format!("{}echo ran\n", action.check_lines());
        std::process::Command::new("sh")
            .arg("-c")
            .arg(line)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_real_path_must_stay_under_a_prefix() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let base = dir.path().to_string_lossy().into_owned();
        let prefix = format!("{base}/reports");
        std::fs::create_dir_all(format!("{prefix}/sub")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(format!("{base}/reports-old")).unwrap_or_else(|e| panic!("{e}"));
        symlink("/", format!("{prefix}/root")).unwrap_or_else(|e| panic!("{e}"));
        symlink("../reports-old", format!("{prefix}/old")).unwrap_or_else(|e| panic!("{e}"));
        symlink("sub", format!("{prefix}/inside")).unwrap_or_else(|e| panic!("{e}"));
        symlink("/nonexistent/x", format!("{prefix}/dangling")).unwrap_or_else(|e| panic!("{e}"));
        let check = |path: &str| PathCheck {
            field: "params.dir".into(),
            path: path.to_owned(),
            under: vec![prefix.clone()],
        };
        for good in [
            prefix.clone(),
            format!("{prefix}/sub"),
            format!("{prefix}/sub/new/file"),
            format!("{prefix}/inside/x"),
            format!("{prefix}/missing"),
        ] {
            let out = run_check(vec![check(&good)]);
            assert_eq!(out.stdout, b"ran\n", "{good}: {out:?}");
        }
        for bad in [
            format!("{prefix}/root"),
            format!("{prefix}/root/etc/passwd"),
            format!("{prefix}/old/x"),
            format!("{prefix}/dangling"),
            format!("{prefix}/dangling/deeper"),
        ] {
            let out = run_check(vec![check(&bad)]);
            assert!(out.stdout.is_empty(), "{bad}: {out:?}");
            assert_eq!(out.status.code(), Some(125), "{bad}");
            // Nothing tells where the link leads.
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr == "remex-path-check: params.dir: (leads out)\n"
                    || stderr == "remex-path-check: params.dir: (cannot be resolved)\n",
                "{bad}: {stderr}"
            );
            let action = ActionRun {
                path_checks: vec![check(&bad)],
                ..ActionRun::default()
            };
            let failure = action
                .refusal(Some(125), &out.stderr)
                .unwrap_or_else(|| panic!("{bad}: {out:?}"));
            assert_eq!(failure.kind, ErrorKind::Denied);
            assert!(failure.message.starts_with("params.dir: "), "{failure:?}");
        }
        // Every path is checked; one out stops it.
        let out = run_check(vec![check(&prefix), check(&format!("{prefix}/root"))]);
        assert!(out.stdout.is_empty());
        // A prefix that is itself a link admits its target's contents.
        let link = format!("{base}/link-to-reports");
        symlink(&prefix, &link).unwrap_or_else(|e| panic!("{e}"));
        let out = run_check(vec![PathCheck {
            field: "params.dir".into(),
            path: format!("{link}/sub"),
            under: vec![link.clone()],
        }]);
        assert_eq!(out.stdout, b"ran\n", "{out:?}");
        // Quoting: a prefix with spaces and glob characters is literal.
        let odd = format!("{base}/a b*");
        std::fs::create_dir_all(&odd).unwrap_or_else(|e| panic!("{e}"));
        let out = run_check(vec![PathCheck {
            field: "params.dir".into(),
            path: format!("{base}/a bx"),
            under: vec![odd.clone()],
        }]);
        assert!(out.stdout.is_empty(), "{out:?}");
    }

    #[test]
    fn only_the_checks_own_line_is_a_refusal() {
        let action = ActionRun {
            path_checks: vec![PathCheck {
                field: "params.dir".into(),
                path: "/srv/x".into(),
                under: vec!["/srv".into()],
            }],
            ..ActionRun::default()
        };
        assert!(
            action
                .refusal(Some(1), b"remex-path-check: params.dir: /etc\n")
                .is_none()
        );
        assert!(action.refusal(Some(125), b"other\n").is_none());
        assert!(
            action
                .refusal(Some(125), b"remex-path-check: params.x: /etc\n")
                .is_none()
        );
        assert!(ActionRun::default().check_lines().is_empty());
    }
}
