//! [`Head`]: the file next to the log (`PATH.head`) naming the last record
//! committed to disk, so that removing records from the end of the log is
//! detected.
//!
//! ```json
//! {"v":1,"seq":812,"hash":"5e0c…","file":"audit.jsonl","size":40960,"mac":"…"}
//! ```
//!
//! It is replaced atomically (written to `PATH.head.tmp`, forced to disk,
//! renamed), and only after the log data it names has been forced to disk,
//! so after any crash the head is at or behind the log, never ahead of it.
//! With an HMAC key it carries `mac`, an HMAC over `seq` and `hash`.

use std::fs::OpenOptions;
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::chain::{Sealer, ZERO_HASH};
use super::error::AuditError;
use super::record::SCHEMA_VERSION;

/// The head file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    /// Format version, 1.
    pub v: u32,
    /// `seq` of the last committed record; 0 before the first.
    pub seq: u64,
    /// `hash` of that record; 64 zeros before the first.
    pub hash: String,
    /// Name (in the log's directory) of the file holding that record: the
    /// log file, or a rotated `PATH.N` right after a rotation. Lets the
    /// writer find where uncommitted records start.
    pub file: String,
    /// Length of that file just after that record.
    pub size: u64,
    /// HMAC of `seq` and `hash` when the log is keyed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// What was found where the head file should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeadState {
    /// No head file.
    Missing,
    /// A head file that is not a head (the reason says why).
    Invalid(String),
    /// A head.
    Present(Head),
}

impl Head {
    /// The head of an empty log whose records will go to `file`.
    pub(crate) fn genesis(file: &str, sealer: &Sealer) -> Head {
        Head::new(0, ZERO_HASH.to_owned(), file.to_owned(), 0, sealer)
    }

    /// A head naming record `seq` with `hash`, ending at `size` in `file`.
    pub(crate) fn new(seq: u64, hash: String, file: String, size: u64, sealer: &Sealer) -> Head {
        let mac = sealer.head_mac(seq, &hash);
        Head {
            v: SCHEMA_VERSION,
            seq,
            hash,
            file,
            size,
            mac,
        }
    }

    /// Why this head cannot be trusted with `sealer`, if it cannot: a bad
    /// version, a missing or wrong MAC, or a MAC on a log read without a key.
    pub(crate) fn problem(&self, sealer: &Sealer) -> Option<String> {
        if self.v != SCHEMA_VERSION {
            return Some(format!("head file version {} is not supported", self.v));
        }
        match (&self.mac, sealer.head_mac(self.seq, &self.hash)) {
            (None, None) => None,
            (Some(found), Some(want)) if *found == want => None,
            (Some(_), Some(_)) => Some(
                "the head file's MAC does not match: it was edited, or written with another HMAC key"
                    .to_owned(),
            ),
            (None, Some(_)) => Some(
                "the head file has no MAC although audit.hmac_key_path is set: it was replaced, or the log was started without the key"
                    .to_owned(),
            ),
            (Some(_), None) => Some(
                "the log was written with an HMAC key: set audit.hmac_key_path".to_owned(),
            ),
        }
    }

    /// Reads the head file at `path`.
    pub(crate) fn read(path: &Path) -> Result<HeadState, AuditError> {
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(HeadState::Missing),
            Err(source) => {
                return Err(AuditError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Ok(match serde_json::from_slice::<Head>(&text) {
            Ok(head) => HeadState::Present(head),
            Err(err) => HeadState::Invalid(format!("the head file is not valid: {err}")),
        })
    }

    /// Replaces the head file at `path` atomically, via `tmp`: write,
    /// rename. Callers sync the log first, so the head never names a record
    /// that is not on disk. The head itself is not forced to disk (that
    /// would double the cost of every commit, the price of a command): a
    /// crash of remex cannot lose it (the page cache survives), and a power
    /// failure leaves either an older head, which the writer catches up
    /// from, or — on a file system that does not order a replace-by-rename
    /// after the new file's data, unlike ext4 — an empty one, which
    /// `verify` reports as `head invalid` and the writer refuses (fail
    /// closed) until someone has looked. (So not
    /// [`crate::atomic_file::replace`], which forces the file and its
    /// directory to disk.)
    pub(crate) fn write(&self, path: &Path, tmp: &Path) -> Result<(), AuditError> {
        let write_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| AuditError::Write { path, source }
        };
        let mut text =
            serde_json::to_vec(self).map_err(|err| write_error(tmp)(io::Error::other(err)))?;
        text.push(b'\n');
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(tmp)
            .map_err(write_error(tmp))?;
        file.write_all(&text).map_err(write_error(tmp))?;
        drop(file);
        std::fs::rename(tmp, path).map_err(write_error(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_reads_and_checks_the_mac() {
        let dir = tempfile::tempdir().unwrap();
        let (path, tmp) = (dir.path().join("h"), dir.path().join("h.tmp"));
        assert_eq!(Head::read(&path).unwrap(), HeadState::Missing);

        let keyed = Sealer::keyed(b"0123456789abcdef");
        let head = Head::new(7, "ab".repeat(32), "audit.jsonl".into(), 99, &keyed);
        head.write(&path, &tmp).unwrap();
        assert!(!tmp.exists());
        let HeadState::Present(back) = Head::read(&path).unwrap() else {
            panic!("no head")
        };
        assert_eq!(back, head);
        assert_eq!(back.problem(&keyed), None);
        assert!(
            back.problem(&Sealer::plain())
                .unwrap()
                .contains("set audit.hmac_key_path")
        );
        let other = Sealer::keyed(b"fedcba9876543210");
        assert!(back.problem(&other).unwrap().contains("does not match"));

        let plain = Head::genesis("audit.jsonl", &Sealer::plain());
        assert_eq!(plain.problem(&Sealer::plain()), None);
        assert!(plain.problem(&keyed).unwrap().contains("no MAC"));

        std::fs::write(&path, "{\"v\":1}").unwrap();
        assert!(matches!(Head::read(&path).unwrap(), HeadState::Invalid(_)));
    }
}
