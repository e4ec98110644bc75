//! [`AuditError`]: why the audit log could not be opened, written or read.

use std::io;
use std::path::PathBuf;

/// Why the audit log could not be opened, written or read.
///
/// Every variant that stops a write means "remex must not contact any
/// host": the caller reports it and exits (fail closed). Messages name the
/// file; the operating system's reason (permission denied, no space left on
/// device, read-only file system, ...) is the `#[source]`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The log's directory does not exist and could not be created.
    #[error("cannot create the audit log directory {}", .path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },

    /// A file of the log (the log itself, its head or its lock file) could
    /// not be opened or created.
    #[error("cannot open the audit log file {}", .path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },

    /// The cross-process lock on the log could not be taken.
    #[error("cannot lock the audit log ({})", .path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },

    /// A record (or the head file) could not be written, or forced to disk:
    /// the disk is full, the file system is read-only, an I/O error.
    #[error("cannot write the audit log {}", .path.display())]
    Write {
        /// The file being written.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },

    /// A file of the log could not be read.
    #[error("cannot read the audit log file {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },

    /// The log's file name is unusable (no file name, or not UTF-8).
    #[error("unusable audit log path {}: {reason}", .path.display())]
    BadPath {
        /// The configured path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The HMAC key file could not be read.
    #[error("cannot read the audit HMAC key {}", .path.display())]
    KeyRead {
        /// The key file (`audit.hmac_key_path`).
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },

    /// The HMAC key file is unfit: too short, or readable by others.
    #[error("cannot use the audit HMAC key {}: {reason}", .path.display())]
    KeyUnfit {
        /// The key file (`audit.hmac_key_path`).
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// The log does not continue its head file, so appending would fork or
    /// hide a broken chain: the log was truncated, replaced or deleted, the
    /// head file is missing or corrupt, or the HMAC key setting changed.
    /// Nothing is written until someone looks.
    #[error(
        "the audit log {} is inconsistent: {reason}; run `remex audit verify`, and to start a new chain move the log files ({}*) aside",
        .path.display(), .path.display()
    )]
    Inconsistent {
        /// The log file.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },

    /// A `redact` pattern is not a valid regular expression.
    #[error("invalid redact pattern `{pattern}`")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// Why the regex engine refused it.
        #[source]
        source: Box<regex::Error>,
    },

    /// A line of the log is not an audit record (while reading, not
    /// verifying: `verify` reports such lines in its report instead).
    #[error("{}:{line}: not an audit record: {reason}", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// Why it could not be read.
        reason: String,
    },

    /// A `--since`/`--until` value is neither a timestamp nor a duration.
    #[error(
        "invalid time {text:?}: {reason}; write an RFC 3339 timestamp (2026-11-24T01:02:03Z), a date (2026-11-24) or a duration ago (1h, 30m)"
    )]
    Time {
        /// The text given.
        text: String,
        /// Why it was refused.
        reason: String,
    },
}
