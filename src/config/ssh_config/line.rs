//! The parsed form of a config: one [`Line`] per line that means
//! something, each with its place ([`At`]).

use super::criteria::{Criterion, HostPattern};
use super::values::Setting;

/// A place in the config: a file (index into `SshConfig::files`) and line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct At {
    /// Index into `SshConfig::files`.
    pub(super) file: usize,
    /// Line number, from 1.
    pub(super) line: usize,
}

/// One line that means something (comments and blank lines are dropped).
#[derive(Debug, Clone)]
pub(super) enum Line {
    /// `Host PATTERN...`: starts a block.
    Host { patterns: Vec<HostPattern> },
    /// `Match CRITERIA...`: starts a block.
    Match { criteria: Vec<Criterion>, at: At },
    /// `Include ...`: the lines of each file found, in order.
    Include { files: Vec<Vec<Line>> },
    /// A keyword remex uses, with its checked value.
    Set { setting: Setting, at: At },
    /// A keyword remex does not use, as written.
    Ignored { keyword: String, at: At },
}
