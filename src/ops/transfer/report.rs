//! What `upload` and `download` return: one result per host, one entry per
//! file, in the envelope every operation shares (see [`crate::run::report`]).
//!
//! # JSON schema, version 2
//!
//! ```json
//! {"version":2,"operation":"upload","run_id":"…",
//!  "results":[{"host":"vm01","address":"127.0.0.2","port":22,"user":"ops",
//!              "ok":true,"duration_ms":120,"error":null,
//!              "status":"written","bytes":1048576,"sha256":"9f86…",
//!              "files":[{"kind":"file","local":"app.tar","remote":"/srv/app.tar",
//!                        "size":1048576,"bytes":1048576,"sha256":"9f86…",
//!                        "status":"written","error":null}]}],
//!  "summary":{"total":1,"ok":1,"failed":0,"timed_out":0,"unreachable":0,
//!             "by_kind":{},"duration_ms":130}}
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

use serde::Serialize;

use crate::audit::{Event, Op, Record, Redactor};
use crate::failure::Failure;
use crate::run::report::RunReport;
use crate::run::runner::{HostDetail, Redact, with_failure};

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

/// One host's upload or download.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TransferResult {
    /// `written` or `unchanged`; `None` when the host failed.
    pub status: Option<TransferStatus>,
    /// Bytes moved over the network in this run.
    pub bytes: u64,
    /// The file's digest when the transfer was one file.
    pub sha256: Option<String>,
    /// Every entry, in the order handled.
    pub files: Vec<FileOutcome>,
}

/// The report of `upload` and `download`.
pub type TransferReport = RunReport<TransferResult>;

impl TransferResult {
    /// Fills `status`, `bytes` and `sha256` from `files`, and returns the
    /// host's failure: `error` (such as a lost connection) when there is
    /// one, else the failed entries'.
    pub(crate) fn settle(&mut self, error: Option<Failure>) -> Result<(), Failure> {
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
        let error = error.or_else(|| {
            let first = failed.first().and_then(|f| f.error.as_ref())?;
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
            Some(Failure {
                message,
                not_found: first.not_found && failed.len() == 1,
                refused: failed
                    .iter()
                    .all(|f| f.error.as_ref().is_some_and(|e| e.refused)),
                ..Failure::new(first.kind, String::new())
            })
        });
        self.status = if error.is_some() {
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
        error.map_or(Ok(()), Err)
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

impl Redact for TransferResult {
    fn redact(&mut self, redactor: &Redactor) {
        for file in &mut self.files {
            let local = file.local.to_string_lossy();
            if let std::borrow::Cow::Owned(local) = redactor.redact(&local) {
                file.local = PathBuf::from(local);
            }
            file.remote = redactor.redact(&file.remote).into_owned();
            if let Some(error) = &mut file.error {
                error.message = redactor.redact(&error.message).into_owned();
            }
        }
    }
}

impl HostDetail for TransferResult {
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
        record = record.bytes(self.bytes);
        if let Some(sha) = &self.sha256 {
            record = record.sha256(sha.clone());
        }
        if let Some(status) = self.status {
            record = record.action(status.as_str());
        }
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::ErrorKind;

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

    fn outcome(files: Vec<FileOutcome>) -> (TransferResult, Option<Failure>) {
        let mut outcome = TransferResult {
            files,
            ..TransferResult::default()
        };
        let error = outcome.settle(None).err();
        (outcome, error)
    }

    #[test]
    fn one_file_gives_the_host_its_digest() {
        let (o, error) = outcome(vec![file(TransferStatus::Written, None)]);
        assert!(error.is_none());
        assert_eq!(o.status, Some(TransferStatus::Written));
        assert_eq!(o.sha256.as_deref(), Some("ab"));
        assert_eq!(o.bytes, 3);
        let json = serde_json::to_value(&o).unwrap_or_default();
        assert_eq!(json["status"], "written");
        assert_eq!(json["files"][0]["kind"], "file");
    }

    #[test]
    fn all_unchanged_is_unchanged() {
        let (o, _) = outcome(vec![
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
        let (o, error) = outcome(vec![
            file(TransferStatus::Written, None),
            file(TransferStatus::Failed, Some(bad.clone())),
            file(TransferStatus::Failed, Some(bad)),
        ]);
        assert_eq!(o.status, None);
        let error = error.unwrap_or_else(|| Failure::new(ErrorKind::Io, ""));
        assert_eq!(error.kind, ErrorKind::Transfer);
        assert!(
            error
                .message
                .starts_with("2 of 3 entries failed; first: x: permission denied")
        );
    }
}
