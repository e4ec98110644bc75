//! What `upload` and `download` return: one outcome per host, one entry per
//! file, in the same envelope as `exec` (see [`crate::run::report`]).
//!
//! # JSON schema, version 1
//!
//! ```json
//! {"version":1,"operation":"upload",
//!  "results":[{"host":"vm01","address":"127.0.0.2","port":22,"user":"ops",
//!              "ok":true,"status":"written","bytes":1048576,
//!              "sha256":"9f86…","duration_ms":120,"error":null,
//!              "files":[{"kind":"file","local":"app.tar","remote":"/srv/app.tar",
//!                        "size":1048576,"bytes":1048576,"sha256":"9f86…",
//!                        "status":"written","error":null}]}],
//!  "summary":{"total":1,"ok":1,"failed":0,"timed_out":0,"unreachable":0,
//!             "duration_ms":130}}
//! ```
//!
//! Per host: `status` is `written` when any file was written, `unchanged`
//! when every file already matched (`--skip-identical`), `null` when the
//! host failed. `bytes` counts the bytes moved over the network in this run
//! (a resumed transfer counts only the rest; an unchanged file counts 0).
//! `sha256` is the file's digest when the host's transfer was one file,
//! `null` otherwise (each file has its own in `files`). `error` is the
//! host's failure (kind `transfer` for a failed file: the message names the
//! path and the server's reason, and with several failed entries, how many).
//!
//! Per file: `kind` is `file`, `dir` or `symlink`; `local`/`remote` are the
//! two ends; `size` the file's size; `status` `written`, `unchanged` or
//! `failed`; `error` the entry's own failure.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::audit::{Event, Op, Record};
use crate::run::executor::{AuditEnd, with_failure};
use crate::run::report::{ErrorKind, Failure, SCHEMA_VERSION, Summary, millis};

/// What happened to a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatus {
    /// The destination was (re)written.
    Written,
    /// The destination already had the same size and SHA-256.
    Unchanged,
    /// This entry failed (per-file status only).
    Failed,
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link, copied as a link.
    Symlink,
}

/// One file, directory or symlink of a host's transfer.
#[derive(Debug, Clone, Serialize)]
pub struct FileOutcome {
    /// What it is.
    pub kind: EntryKind,
    /// The local end.
    pub local: PathBuf,
    /// The remote end.
    pub remote: String,
    /// Its size in bytes (0 for directories and links).
    pub size: u64,
    /// Bytes moved over the network for it in this run.
    pub bytes: u64,
    /// Hex SHA-256 of its content, for files once known.
    pub sha256: Option<String>,
    /// What happened to it.
    pub status: TransferStatus,
    /// Why it failed.
    pub error: Option<Failure>,
}

/// The outcome of an upload or download on one host.
#[derive(Debug, Clone)]
pub struct TransferOutcome {
    /// The host's name in the config.
    pub host: String,
    /// The address remex connected to, as configured.
    pub address: String,
    /// The SSH port.
    pub port: u16,
    /// The remote user.
    pub user: String,
    /// `written` or `unchanged`; `None` when the host failed.
    pub status: Option<TransferStatus>,
    /// Bytes moved over the network in this run.
    pub bytes: u64,
    /// The file's digest when the transfer was one file.
    pub sha256: Option<String>,
    /// Every entry, in the order handled.
    pub files: Vec<FileOutcome>,
    /// Wall time of this host's work, connecting included.
    pub duration: Duration,
    /// Why the host did not succeed; `None` means success.
    pub error: Option<Failure>,
}

impl TransferOutcome {
    /// Whether the host succeeded.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }

    /// Fills `status`, `bytes`, `sha256` and `error` from `files` (a host
    /// error already set, such as a lost connection, is kept).
    pub(crate) fn settle(&mut self) {
        self.bytes = self.files.iter().map(|f| f.bytes).sum();
        let regular: Vec<&FileOutcome> = self
            .files
            .iter()
            .filter(|f| f.kind == EntryKind::File)
            .collect();
        self.sha256 = match regular.as_slice() {
            [only] if self.files.len() == 1 => only.sha256.clone(),
            _ => None,
        };
        let failed: Vec<&FileOutcome> = self
            .files
            .iter()
            .filter(|f| f.status == TransferStatus::Failed)
            .collect();
        if self.error.is_none()
            && let Some(first) = failed.first().and_then(|f| f.error.as_ref())
        {
            let message = if failed.len() == 1 {
                first.message.clone()
            } else {
                format!(
                    "{} of {} entries failed; first: {}",
                    failed.len(),
                    self.files.len(),
                    first.message
                )
            };
            self.error = Some(Failure::new(first.kind, message));
        }
        self.status = if self.error.is_some() {
            None
        } else if self
            .files
            .iter()
            .any(|f| f.status == TransferStatus::Written)
            || self.files.is_empty()
        {
            Some(TransferStatus::Written)
        } else {
            Some(TransferStatus::Unchanged)
        };
    }
}

impl TransferStatus {
    /// The name used in JSON and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            TransferStatus::Written => "written",
            TransferStatus::Unchanged => "unchanged",
            TransferStatus::Failed => "failed",
        }
    }
}

impl AuditEnd for TransferOutcome {
    /// One `file` record per entry: source and destination, bytes,
    /// SHA-256, status.
    fn changes(&self, host: &Record) -> Vec<Record> {
        self.files
            .iter()
            .map(|file| {
                let (local, remote) = (file.local.display().to_string(), file.remote.clone());
                // `paths` is [source, destination].
                let paths = if host.op == Op::Download {
                    [remote, local]
                } else {
                    [local, remote]
                };
                let mut record = host
                    .clone()
                    .paths(paths)
                    .bytes(file.bytes)
                    .action(file.status.as_str());
                record.event = Event::File;
                if let Some(sha) = &file.sha256 {
                    record = record.sha256(sha.clone());
                }
                with_failure(record, file.error.as_ref())
            })
            .collect()
    }

    fn end_record(&self, mut record: Record) -> Record {
        record = record.bytes(self.bytes).duration_ms(millis(self.duration));
        if let Some(sha) = &self.sha256 {
            record = record.sha256(sha.clone());
        }
        if let Some(status) = self.status {
            record = record.action(status.as_str());
        }
        with_failure(record, self.error.as_ref())
    }
}

impl Serialize for TransferOutcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            host: &'a str,
            address: &'a str,
            port: u16,
            user: &'a str,
            ok: bool,
            status: Option<TransferStatus>,
            bytes: u64,
            sha256: Option<&'a str>,
            duration_ms: u64,
            error: Option<&'a Failure>,
            files: &'a [FileOutcome],
        }
        Wire {
            host: &self.host,
            address: &self.address,
            port: self.port,
            user: &self.user,
            ok: self.ok(),
            status: self.status,
            bytes: self.bytes,
            sha256: self.sha256.as_deref(),
            duration_ms: millis(self.duration),
            error: self.error.as_ref(),
            files: &self.files,
        }
        .serialize(serializer)
    }
}

/// The result of an upload or download over a set of hosts.
#[derive(Debug, Clone, Serialize)]
pub struct TransferReport {
    /// [`SCHEMA_VERSION`].
    pub version: u32,
    /// `"upload"` or `"download"`.
    pub operation: &'static str,
    /// The run id of the run's audit records.
    pub run: String,
    /// One outcome per selected host, in selection order.
    pub results: Vec<TransferOutcome>,
    /// Counts over `results`.
    pub summary: Summary,
    /// Set when some of the run's audit records could not be written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_error: Option<String>,
}

impl TransferReport {
    /// Builds a report, computing the summary.
    pub fn new(operation: &'static str, results: Vec<TransferOutcome>, elapsed: Duration) -> Self {
        let summary = Summary::tally(results.iter().map(|r| r.error.as_ref()), elapsed);
        TransferReport {
            version: SCHEMA_VERSION,
            operation,
            run: String::new(),
            results,
            summary,
            audit_error: None,
        }
    }

    /// This report with its audit run id and error.
    pub(crate) fn audited(mut self, run: String, audit_error: Option<String>) -> Self {
        self.run = run;
        self.audit_error = audit_error;
        self
    }

    /// Whether every host succeeded.
    pub fn all_ok(&self) -> bool {
        self.summary.failed == 0
    }

    /// Whether any host was interrupted (Ctrl-C).
    pub fn cancelled(&self) -> bool {
        self.results.iter().any(|r| {
            r.error
                .as_ref()
                .is_some_and(|f| f.kind == ErrorKind::Cancelled)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(status: TransferStatus, error: Option<Failure>) -> FileOutcome {
        FileOutcome {
            kind: EntryKind::File,
            local: PathBuf::from("a"),
            remote: "/tmp/a".into(),
            size: 3,
            bytes: if status == TransferStatus::Written {
                3
            } else {
                0
            },
            sha256: Some("ab".into()),
            status,
            error,
        }
    }

    fn outcome(files: Vec<FileOutcome>) -> TransferOutcome {
        let mut outcome = TransferOutcome {
            host: "vm01".into(),
            address: "127.0.0.2".into(),
            port: 22,
            user: "ops".into(),
            status: None,
            bytes: 0,
            sha256: None,
            files,
            duration: Duration::from_millis(5),
            error: None,
        };
        outcome.settle();
        outcome
    }

    #[test]
    fn one_file_gives_the_host_its_digest() {
        let o = outcome(vec![file(TransferStatus::Written, None)]);
        assert_eq!(o.status, Some(TransferStatus::Written));
        assert_eq!(o.sha256.as_deref(), Some("ab"));
        assert_eq!(o.bytes, 3);
        let json = serde_json::to_value(&o).unwrap_or_default();
        assert_eq!(json["status"], "written");
        assert_eq!(json["files"][0]["kind"], "file");
        assert_eq!(json["ok"], true);
    }

    #[test]
    fn all_unchanged_is_unchanged() {
        let o = outcome(vec![
            file(TransferStatus::Unchanged, None),
            file(TransferStatus::Unchanged, None),
        ]);
        assert_eq!(o.status, Some(TransferStatus::Unchanged));
        assert_eq!(o.sha256, None);
        assert_eq!(o.bytes, 0);
    }

    #[test]
    fn a_failed_entry_fails_the_host_and_says_how_many() {
        let bad = Failure::new(ErrorKind::Transfer, "x: permission denied");
        let o = outcome(vec![
            file(TransferStatus::Written, None),
            file(TransferStatus::Failed, Some(bad.clone())),
            file(TransferStatus::Failed, Some(bad)),
        ]);
        assert_eq!(o.status, None);
        let error = o.error.unwrap_or_else(|| Failure::new(ErrorKind::Io, ""));
        assert_eq!(error.kind, ErrorKind::Transfer);
        assert!(
            error
                .message
                .starts_with("2 of 3 entries failed; first: x: permission denied")
        );
    }
}
