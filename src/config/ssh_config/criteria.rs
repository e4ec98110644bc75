//! Which blocks apply: the patterns of `Host` lines and the criteria of
//! `Match` lines, parsed and matched. The resolver evaluates a `Match`
//! line against what its walk has obtained so far.

use super::error::Refusal;
use crate::pattern::wildcard_match;

/// One pattern of a `Host` line.
#[derive(Debug, Clone)]
pub(super) struct HostPattern {
    /// Written with a leading `!`: a match excludes the block.
    pub(super) negated: bool,
    /// The pattern, `!` removed.
    pub(super) pattern: String,
}

/// One criterion of a `Match` line.
#[derive(Debug, Clone)]
pub(super) struct Criterion {
    /// Written with a leading `!`.
    pub(super) negated: bool,
    /// What it tests.
    pub(super) test: Test,
}

/// What a `Match` criterion tests.
#[derive(Debug, Clone)]
pub(super) enum Test {
    /// `all`.
    All,
    /// `host LIST`: the host name so far, else the alias.
    Host(String),
    /// `originalhost LIST`: the alias.
    OriginalHost(String),
    /// `user LIST`: the remote user so far, else the local user.
    User(String),
    /// `localuser LIST`: the local user.
    LocalUser(String),
    /// A criterion `ssh` knows and remex cannot evaluate (`exec`, ...),
    /// lower-cased.
    Unsupported(String),
}

/// The patterns of a `Host` line.
pub(super) fn host_patterns(args: &[String]) -> Result<Vec<HostPattern>, Refusal> {
    if args.is_empty() {
        return Err(Refusal::invalid("missing argument"));
    }
    args.iter()
        .map(|arg| {
            if arg.is_empty() {
                return Err(Refusal::invalid("empty pattern"));
            }
            let (negated, pattern) = match arg.strip_prefix('!') {
                Some(pattern) => (true, pattern),
                None => (false, arg.as_str()),
            };
            Ok(HostPattern {
                negated,
                pattern: pattern.to_owned(),
            })
        })
        .collect()
}

/// The criteria of a `Match` line, with OpenSSH's rules: `all` alone (or
/// after one other criterion), an argument for every criterion but `all`,
/// `canonical` and `final`, at least one criterion.
pub(super) fn match_criteria(args: &[String]) -> Result<Vec<Criterion>, Refusal> {
    let mut criteria = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (negated, name) = match arg.strip_prefix('!') {
            Some(name) => (true, name),
            None => (false, arg.as_str()),
        };
        let name = name.to_ascii_lowercase();
        if name == "all" {
            if criteria.len() > 1 || args.next().is_some() {
                return Err(Refusal::invalid(format!(
                    "`{arg}` cannot be combined with other Match criteria"
                )));
            }
            criteria.push(Criterion {
                negated,
                test: Test::All,
            });
            return Ok(criteria);
        }
        let test = match name.as_str() {
            "canonical" | "final" => Test::Unsupported(name),
            "host" | "originalhost" | "user" | "localuser" | "exec" | "localnetwork" | "tagged"
            | "version" | "sessiontype" | "command" => {
                let Some(list) = args.next().filter(|list| !list.is_empty()) else {
                    return Err(Refusal::invalid(format!("missing argument for `{name}`")));
                };
                match name.as_str() {
                    "host" => Test::Host(list.clone()),
                    "originalhost" => Test::OriginalHost(list.clone()),
                    "user" => Test::User(list.clone()),
                    "localuser" => Test::LocalUser(list.clone()),
                    _ => Test::Unsupported(name),
                }
            }
            _ => {
                return Err(Refusal::invalid(format!(
                    "unknown criterion `{name}`; known: all, canonical, final, exec, host, \
                     originalhost, user, localuser, localnetwork, tagged"
                )));
            }
        };
        criteria.push(Criterion { negated, test });
    }
    if criteria.is_empty() {
        return Err(Refusal::invalid("one or more criteria required"));
    }
    Ok(criteria)
}

/// Whether a `Host` line's patterns select `alias`: one matches and no
/// negated one does.
pub(super) fn host_matches(patterns: &[HostPattern], alias: &str) -> bool {
    let mut matched = false;
    for pattern in patterns {
        if wildcard_match(&pattern.pattern, alias) {
            if pattern.negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

/// OpenSSH's `match_pattern_list`: whether `text` matches one of the
/// comma-separated patterns of `list` and none of its `!negated` ones;
/// patterns are lower-cased first when `lowercase`.
pub(super) fn match_list(text: &str, list: &str, lowercase: bool) -> bool {
    let mut positive = false;
    for pattern in list.split(',') {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(pattern) => (true, pattern),
            None => (false, pattern),
        };
        let pattern = if lowercase {
            pattern.to_ascii_lowercase()
        } else {
            pattern.to_owned()
        };
        if wildcard_match(&pattern, text) {
            if negated {
                return false;
            }
            positive = true;
        }
    }
    positive
}
