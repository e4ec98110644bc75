//! The `audit:` section: where remex keeps its audit log and how.
//!
//! The log itself (format, chain, verification) is `crate::audit`.

use std::path::PathBuf;

use serde::Deserialize;

use super::size;

/// Where and how remex records every action it takes. Optional: every
/// field has a default, and auditing is on unless `enabled: false`.
///
/// `Default` gives the documented defaults with `path` not yet resolved
/// (`~/.local/state/remex/audit.jsonl`); [`super::Config::from_yaml`]
/// resolves it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// The log file (JSON Lines). Rotated files sit next to it as
    /// `PATH.1`, `PATH.2`, … (oldest first), with `PATH.head` (the last
    /// record's sequence number and hash) and `PATH.lock`. Default:
    /// `~/.local/state/remex/audit.jsonl`. A relative path is relative to
    /// the config file's directory. The directory is created (mode 0700)
    /// and the file too (mode 0600) when missing.
    pub path: PathBuf,
    /// Record every action. Default: true. `false` switches the audit log
    /// off entirely — meant for labs and benchmarks only; remex prints a
    /// warning on every run while it is off.
    pub enabled: bool,
    /// When records are forced to disk. Default: `always`.
    pub fsync: FsyncPolicy,
    /// Size at which the log file is rotated (the hash chain continues in a
    /// fresh file). A size such as `100M`, `1G` (powers of 1024) or a
    /// number of bytes; at least 4K. Default: 100M.
    #[serde(deserialize_with = "size::deserialize")]
    pub max_size: u64,
    /// Extra regular expressions whose matches are replaced by
    /// `[REDACTED]` in records (and in remex's output). When a pattern has
    /// a capture group, only what the first group matched is replaced, so
    /// `token=(\S+)` keeps `token=`. The built-in patterns
    /// (`crate::audit::DEFAULT_PATTERNS`: `password=…`, `passwd=…`,
    /// `token=…`, `secret=…`, `api_key=…`, `Authorization:` headers,
    /// `Bearer …`, passwords in URLs) always apply; these are added to
    /// them. Default: none.
    pub redact: Vec<String>,
    /// A file holding a secret key: when set, each record's hash is an
    /// HMAC-SHA256 with this key instead of a plain SHA-256, so someone who
    /// can write the log but cannot read the key cannot rebuild the chain.
    /// At least 16 bytes (trailing whitespace is ignored), not readable by
    /// group or others. Set it when starting a log: remex refuses to add
    /// keyed records to an unkeyed log and vice versa. Default: none.
    pub hmac_key_path: Option<PathBuf>,
}

/// When the audit log is forced to disk (`fsync`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FsyncPolicy {
    /// Every record is on disk before `append` returns (YAML `always`, the
    /// default): nothing is lost even on a power failure.
    #[default]
    Always,
    /// Only `start` records — written before a host is contacted — are
    /// forced to disk before `append` returns; the others (`end`, key and
    /// host-key records) are committed as a group at the end of the run
    /// (YAML `start`). A crash of remex loses nothing either way; a power
    /// failure may lose the group-committed records of the run under way.
    Start,
}

/// The smallest accepted `max_size`: one page, so a file holds at least a
/// few records.
pub(crate) const MIN_MAX_SIZE: u64 = 4 << 10;

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            path: PathBuf::from("~/.local/state/remex/audit.jsonl"),
            enabled: true,
            fsync: FsyncPolicy::Always,
            max_size: 100 << 20,
            redact: Vec::new(),
            hmac_key_path: None,
        }
    }
}
