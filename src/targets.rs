//! Target selection: which hosts of the inventory a selector names.
//!
//! A selector is a comma-separated list of terms, read left to right:
//! `vm01` (a host), `web` (a group), `all`, a glob over host names (`vm0*`,
//! `db?`), and exclusions of any of those (`!vm03`, `!db`). The selection is
//! the union of the included terms minus the union of the excluded ones; a
//! selector made only of exclusions starts from `all`. A host named like a
//! group selects the host (config validation forbids the clash).
//!
//! This module does no I/O and cannot fail except on the selector itself.

use std::collections::BTreeSet;

use crate::pattern::wildcard_match;

/// Why a selector selected nothing usable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetError {
    /// A term names no host, group or `all`.
    #[error("unknown host or group `{name}`{}", suggestion_text(.suggestion.as_deref()))]
    Unknown {
        /// The term as written.
        name: String,
        /// The closest host or group name, when one is close.
        suggestion: Option<String>,
    },
    /// A glob term matches no host name.
    #[error("no host name matches the pattern `{pattern}`")]
    NoMatch {
        /// The glob as written.
        pattern: String,
    },
    /// The terms were valid, but exclusions removed everything.
    #[error("the selector `{selector}` selects no hosts")]
    Empty {
        /// The whole selector.
        selector: String,
    },
    /// An empty term, as in `vm01,,vm02` or a bare `!`.
    #[error("empty term in the selector `{selector}`")]
    EmptyTerm {
        /// The whole selector.
        selector: String,
    },
}

fn suggestion_text(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!(" (did you mean `{s}`?)"))
}

/// One host of the inventory, as target selection sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The host's name in the config's `vms` section.
    pub name: &'a str,
    /// The groups the host belongs to.
    pub groups: &'a [String],
}

/// Selects hosts by `selector`, returning their names in inventory order.
pub fn select(selector: &str, inventory: &[Candidate<'_>]) -> Result<Vec<String>, TargetError> {
    let mut included = BTreeSet::new();
    let mut excluded = BTreeSet::new();
    let mut any_included_term = false;
    for raw in selector.split(',') {
        let term = raw.trim();
        let (negated, name) = match term.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, term),
        };
        if name.is_empty() {
            return Err(TargetError::EmptyTerm {
                selector: selector.to_owned(),
            });
        }
        let matched = resolve(name, inventory)?;
        if negated {
            excluded.extend(matched);
        } else {
            any_included_term = true;
            included.extend(matched);
        }
    }
    if !any_included_term {
        included.extend(0..inventory.len());
    }
    let chosen: Vec<String> = included
        .difference(&excluded)
        .map(|&i| inventory[i].name.to_owned())
        .collect();
    if chosen.is_empty() {
        return Err(TargetError::Empty {
            selector: selector.to_owned(),
        });
    }
    Ok(chosen)
}

/// The hosts a selector selected: resolved once (when a request arrives),
/// then used unchanged by whoever authorizes it, records it and runs it, so
/// the hosts that were checked are the hosts that run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The selector as written.
    selector: String,
    /// The hosts it selected, in inventory order; never empty.
    hosts: Vec<String>,
}

impl Selection {
    /// The hosts `selector` selects from `inventory` (see [`select`]).
    ///
    /// # Errors
    ///
    /// As [`select`].
    pub fn new(selector: &str, inventory: &[Candidate<'_>]) -> Result<Selection, TargetError> {
        Ok(Selection {
            selector: selector.to_owned(),
            hosts: select(selector, inventory)?,
        })
    }

    /// The selector as written (what the audit log and a job record show).
    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// The selected hosts, in inventory order.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// Whether `host` is selected.
    pub fn contains(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h == host)
    }

    /// The selected hosts that `other` does not select.
    pub fn outside<'a>(&'a self, other: &Selection) -> Vec<&'a str> {
        self.hosts
            .iter()
            .filter(|h| !other.contains(h))
            .map(String::as_str)
            .collect()
    }
}

/// What an operation runs on: a selector, resolved when the run starts, or
/// a [`Selection`] resolved already.
#[derive(Debug, Clone, Copy)]
pub enum Targets<'a> {
    /// A selector (`web,!db01`).
    Selector(&'a str),
    /// Hosts selected already.
    Selection(&'a Selection),
}

impl<'a> From<&'a str> for Targets<'a> {
    fn from(selector: &'a str) -> Self {
        Targets::Selector(selector)
    }
}

impl<'a> From<&'a String> for Targets<'a> {
    fn from(selector: &'a String) -> Self {
        Targets::Selector(selector)
    }
}

impl<'a> From<&'a Selection> for Targets<'a> {
    fn from(selection: &'a Selection) -> Self {
        Targets::Selection(selection)
    }
}

/// Indices of the hosts one (non-negated) term names.
fn resolve(name: &str, inventory: &[Candidate<'_>]) -> Result<Vec<usize>, TargetError> {
    if name == "all" {
        return Ok((0..inventory.len()).collect());
    }
    let indices = |keep: &dyn Fn(&Candidate<'_>) -> bool| -> Vec<usize> {
        (0..inventory.len())
            .filter(|&i| keep(&inventory[i]))
            .collect()
    };
    if name.contains(['*', '?']) {
        let hits = indices(&|c| wildcard_match(name, c.name));
        if hits.is_empty() {
            return Err(TargetError::NoMatch {
                pattern: name.to_owned(),
            });
        }
        return Ok(hits);
    }
    let hosts = indices(&|c| c.name == name);
    if !hosts.is_empty() {
        return Ok(hosts);
    }
    let members = indices(&|c| c.groups.iter().any(|g| g == name));
    if !members.is_empty() {
        return Ok(members);
    }
    Err(TargetError::Unknown {
        name: name.to_owned(),
        suggestion: closest(name, inventory),
    })
}

/// The host or group name nearest to `name`, if it is plausibly a typo.
fn closest(name: &str, inventory: &[Candidate<'_>]) -> Option<String> {
    let names = inventory
        .iter()
        .flat_map(|c| std::iter::once(c.name).chain(c.groups.iter().map(String::as_str)))
        .chain(std::iter::once("all"));
    names
        .map(|candidate| (strsim::damerau_levenshtein(name, candidate), candidate))
        .filter(|&(distance, candidate)| distance <= 2.max(candidate.len() / 3))
        .min()
        .map(|(_, candidate)| candidate.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory() -> Vec<(String, Vec<String>)> {
        vec![
            ("db01".into(), vec!["db".into()]),
            ("vm01".into(), vec!["web".into()]),
            ("vm02".into(), vec!["web".into(), "db".into()]),
            ("vm03".into(), vec![]),
            ("vm10".into(), vec!["web".into()]),
        ]
    }

    fn pick(selector: &str) -> Result<Vec<String>, TargetError> {
        let inv = inventory();
        let candidates: Vec<Candidate<'_>> = inv
            .iter()
            .map(|(name, groups)| Candidate { name, groups })
            .collect();
        select(selector, &candidates)
    }

    fn names(list: &[&str]) -> Result<Vec<String>, TargetError> {
        Ok(list.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn single_list_group_and_all() {
        assert_eq!(pick("vm01"), names(&["vm01"]));
        assert_eq!(pick("vm03,vm01"), names(&["vm01", "vm03"]));
        assert_eq!(pick("web"), names(&["vm01", "vm02", "vm10"]));
        assert_eq!(pick("db,vm03"), names(&["db01", "vm02", "vm03"]));
        assert_eq!(
            pick("all"),
            names(&["db01", "vm01", "vm02", "vm03", "vm10"])
        );
    }

    #[test]
    fn globs_and_exclusions() {
        assert_eq!(pick("vm0*"), names(&["vm01", "vm02", "vm03"]));
        assert_eq!(pick("vm?0"), names(&["vm10"]));
        assert_eq!(pick("all,!vm03"), names(&["db01", "vm01", "vm02", "vm10"]));
        assert_eq!(pick("web,!db"), names(&["vm01", "vm10"]));
        assert_eq!(pick("!web"), names(&["db01", "vm03"]));
        assert_eq!(pick("vm*, !vm1*"), names(&["vm01", "vm02", "vm03"]));
    }

    #[test]
    fn unknown_name_suggests_the_closest() {
        let err = pick("vm1").unwrap_err();
        assert_eq!(
            err,
            TargetError::Unknown {
                name: "vm1".into(),
                suggestion: Some("vm01".into())
            }
        );
        assert_eq!(
            err.to_string(),
            "unknown host or group `vm1` (did you mean `vm01`?)"
        );
        assert_eq!(
            pick("wbe").unwrap_err().to_string(),
            "unknown host or group `wbe` (did you mean `web`?)"
        );
        assert_eq!(
            pick("all,!nothing-like-it").unwrap_err(),
            TargetError::Unknown {
                name: "nothing-like-it".into(),
                suggestion: None
            }
        );
    }

    #[test]
    fn empty_selections_are_errors() {
        assert!(matches!(pick("vm01,!vm01"), Err(TargetError::Empty { .. })));
        assert!(matches!(pick("x*"), Err(TargetError::NoMatch { .. })));
        assert!(matches!(
            pick("vm01,,vm02"),
            Err(TargetError::EmptyTerm { .. })
        ));
        assert!(matches!(pick("!"), Err(TargetError::EmptyTerm { .. })));
        assert!(matches!(pick(""), Err(TargetError::EmptyTerm { .. })));
    }
}
