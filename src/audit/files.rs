//! The files that make up one audit log, and reading them line by line.
//!
//! For `audit.path` = `DIR/audit.jsonl`:
//!
//! | file | what |
//! |---|---|
//! | `DIR/audit.jsonl` | the log being written |
//! | `DIR/audit.jsonl.1`, `.2`, … | rotated files, **oldest first**: rotation renames the log to the next free number, so a file keeps its name forever |
//! | `DIR/audit.jsonl.head` | [`Head`](super::head::Head): the last committed record |
//! | `DIR/audit.jsonl.head.tmp` | the next head while it is written |
//! | `DIR/audit.jsonl.lock` | the cross-process lock (`flock`): exclusive to write, shared to take a consistent snapshot for reading |
//!
//! The whole chain is the rotated files in increasing number, then the log.

use std::fs::File;
use std::io::{self, BufRead as _, BufReader, Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use super::error::AuditError;
use super::head::{Head, HeadState};

/// The paths of one audit log.
#[derive(Debug, Clone)]
pub(crate) struct LogFiles {
    /// The log being written (`audit.path`).
    current: PathBuf,
    /// Its directory.
    dir: PathBuf,
    /// Its file name, which every other file's name starts with.
    name: String,
}

/// One file of a [`Snapshot`]: open, with the length it had then.
#[derive(Debug)]
pub(crate) struct SnapFile {
    /// Where it was (a rotation may rename it later; the handle follows).
    pub(crate) path: PathBuf,
    /// Open for reading.
    pub(crate) file: File,
    /// Its length when the snapshot was taken; later appends are not read.
    pub(crate) len: u64,
}

/// The log's files and head as they were at one instant (taken under the
/// shared lock, so no writer was half-way through an append or rotation).
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// Every file of the chain, oldest first.
    pub(crate) files: Vec<SnapFile>,
    /// The head file.
    pub(crate) head: HeadState,
}

/// Holds a `flock` until dropped.
pub(crate) struct Locked<'a>(&'a File);

impl<'a> Locked<'a> {
    /// Takes the exclusive lock on `file`, waiting for it.
    pub(crate) fn exclusive(file: &'a File, path: &Path) -> Result<Locked<'a>, AuditError> {
        file.lock().map_err(|source| AuditError::Lock {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Locked(file))
    }

    /// Takes a shared lock on `file`, waiting for it.
    fn shared(file: &'a File, path: &Path) -> Result<Locked<'a>, AuditError> {
        file.lock_shared().map_err(|source| AuditError::Lock {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Locked(file))
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // Closing the file would release it too; an error here leaves
        // nothing to do.
        let _ = self.0.unlock();
    }
}

impl LogFiles {
    /// The files of the log at `path`.
    pub(crate) fn new(path: &Path) -> Result<LogFiles, AuditError> {
        let bad = |reason: &str| AuditError::BadPath {
            path: path.to_path_buf(),
            reason: reason.to_owned(),
        };
        let name = path
            .file_name()
            .ok_or_else(|| bad("it does not name a file"))?
            .to_str()
            .ok_or_else(|| bad("the file name is not UTF-8"))?
            .to_owned();
        let dir = path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Ok(LogFiles {
            current: path.to_path_buf(),
            dir,
            name,
        })
    }

    /// The log being written.
    pub(crate) fn current(&self) -> &Path {
        &self.current
    }

    /// The directory of every file.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log's file name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The head file.
    pub(crate) fn head(&self) -> PathBuf {
        self.dir.join(format!("{}.head", self.name))
    }

    /// Where the next head is written before it replaces the head.
    pub(crate) fn head_tmp(&self) -> PathBuf {
        self.dir.join(format!("{}.head.tmp", self.name))
    }

    /// The lock file.
    pub(crate) fn lock(&self) -> PathBuf {
        self.dir.join(format!("{}.lock", self.name))
    }

    /// The name of rotated file number `n`.
    pub(crate) fn rotated_name(&self, n: u64) -> String {
        format!("{}.{n}", self.name)
    }

    /// The number of a rotated file's name, if `file_name` is one.
    fn rotated_number(&self, file_name: &str) -> Option<u64> {
        let digits = file_name.strip_prefix(&self.name)?.strip_prefix('.')?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// The path of a file the head names, when it is the log or one of its
    /// rotated files (a head naming anything else is not trusted).
    pub(crate) fn resolve(&self, file_name: &str) -> Option<PathBuf> {
        (file_name == self.name || self.rotated_number(file_name).is_some())
            .then(|| self.dir.join(file_name))
    }

    /// Whether `file_name` is the log being written.
    pub(crate) fn is_current(&self, file_name: &str) -> bool {
        file_name == self.name
    }

    /// The rotated files, oldest (lowest number) first.
    pub(crate) fn rotated(&self) -> Result<Vec<(u64, PathBuf)>, AuditError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(AuditError::Read {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| AuditError::Read {
                path: self.dir.clone(),
                source,
            })?;
            if let Some(n) = entry
                .file_name()
                .to_str()
                .and_then(|name| self.rotated_number(name))
            {
                found.push((n, entry.path()));
            }
        }
        found.sort();
        Ok(found)
    }

    /// Every file of the chain that exists, oldest first.
    pub(crate) fn in_order(&self) -> Result<Vec<PathBuf>, AuditError> {
        let mut files: Vec<PathBuf> = self.rotated()?.into_iter().map(|(_, path)| path).collect();
        if self.current.exists() {
            files.push(self.current.clone());
        }
        Ok(files)
    }

    /// Opens every file of the chain and reads the head, under the shared
    /// lock when the lock file exists (a log never written has none).
    pub(crate) fn snapshot(&self) -> Result<Snapshot, AuditError> {
        let lock_path = self.lock();
        let lock_file = match File::open(&lock_path) {
            Ok(file) => Some(file),
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(AuditError::Open {
                    path: lock_path,
                    source,
                });
            }
        };
        let _locked = match &lock_file {
            Some(file) => Some(Locked::shared(file, &lock_path)?),
            None => None,
        };
        let mut files = Vec::new();
        for path in self.in_order()? {
            let file = match File::open(&path) {
                Ok(file) => file,
                // Gone between listing and opening: only without a lock.
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(AuditError::Read { path, source }),
            };
            let len = file
                .metadata()
                .map_err(|source| AuditError::Read {
                    path: path.clone(),
                    source,
                })?
                .len();
            files.push(SnapFile { path, file, len });
        }
        let head = Head::read(&self.head())?;
        Ok(Snapshot { files, head })
    }
}

/// One line of a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    /// Line number in its file, from 1.
    pub(crate) number: usize,
    /// Byte offset of its start in the file.
    pub(crate) offset: u64,
    /// Its bytes, without the `\n`.
    pub(crate) bytes: Vec<u8>,
    /// Whether it ended with `\n` (only the last line of a file can be
    /// incomplete: a write that was cut short).
    pub(crate) complete: bool,
}

/// Reads a file line by line, up to a given length.
pub(crate) struct LineReader {
    /// The file, limited to the bytes to read.
    reader: BufReader<io::Take<File>>,
    /// The file's path, for errors.
    path: PathBuf,
    /// Number of the last line returned.
    number: usize,
    /// Offset of the next line.
    offset: u64,
}

impl LineReader {
    /// Reads `file` from `start` to `end` (byte offsets); line numbers
    /// start at `first_number`.
    pub(crate) fn new(
        mut file: File,
        path: &Path,
        start: u64,
        end: u64,
        first_number: usize,
    ) -> Result<LineReader, AuditError> {
        file.seek(SeekFrom::Start(start))
            .map_err(|source| AuditError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(LineReader {
            reader: BufReader::with_capacity(64 << 10, file.take(end.saturating_sub(start))),
            path: path.to_path_buf(),
            number: first_number.saturating_sub(1),
            offset: start,
        })
    }

    /// A whole snapshot file, from its first line.
    pub(crate) fn whole(snap: SnapFile) -> Result<LineReader, AuditError> {
        LineReader::new(snap.file, &snap.path, 0, snap.len, 1)
    }

    /// The next line, or `None` at the end.
    pub(crate) fn next_line(&mut self) -> Result<Option<Line>, AuditError> {
        let mut bytes = Vec::new();
        let read = self
            .reader
            .read_until(b'\n', &mut bytes)
            .map_err(|source| AuditError::Read {
                path: self.path.clone(),
                source,
            })?;
        if read == 0 {
            return Ok(None);
        }
        let offset = self.offset;
        self.offset += read as u64;
        self.number += 1;
        let complete = bytes.last() == Some(&b'\n');
        if complete {
            bytes.pop();
        }
        Ok(Some(Line {
            number: self.number,
            offset,
            bytes,
            complete,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_rotated_files_in_numeric_order() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::new(&dir.path().join("audit.jsonl")).unwrap();
        assert_eq!(files.head(), dir.path().join("audit.jsonl.head"));
        assert_eq!(files.lock(), dir.path().join("audit.jsonl.lock"));
        assert_eq!(files.rotated_name(3), "audit.jsonl.3");
        for name in [
            "audit.jsonl.10",
            "audit.jsonl.2",
            "audit.jsonl.head",
            "audit.jsonl.lock",
            "audit.jsonl.head.tmp",
            "audit.jsonl.",
            "audit.jsonl.1x",
            "other.jsonl.1",
        ] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        assert_eq!(
            files.in_order().unwrap(),
            [
                dir.path().join("audit.jsonl.2"),
                dir.path().join("audit.jsonl.10"),
            ]
        );
        std::fs::write(files.current(), "").unwrap();
        assert_eq!(files.in_order().unwrap().last().unwrap(), files.current());
        assert_eq!(
            files.resolve("audit.jsonl.7"),
            Some(dir.path().join("audit.jsonl.7"))
        );
        assert_eq!(files.resolve("../etc/passwd"), None);
        assert_eq!(files.resolve("audit.jsonl.head"), None);
    }

    #[test]
    fn reads_lines_with_offsets_and_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "ab\n\ncd\nef").unwrap();
        let mut reader = LineReader::new(File::open(&path).unwrap(), &path, 0, 10, 1).unwrap();
        let mut lines = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            lines.push((line.number, line.offset, line.bytes, line.complete));
        }
        assert_eq!(
            lines,
            [
                (1, 0, b"ab".to_vec(), true),
                (2, 3, b"".to_vec(), true),
                (3, 4, b"cd".to_vec(), true),
                (4, 7, b"ef".to_vec(), false),
            ]
        );
        // From an offset, up to a length.
        let mut reader = LineReader::new(File::open(&path).unwrap(), &path, 4, 8, 3).unwrap();
        let line = reader.next_line().unwrap().unwrap();
        assert_eq!(
            (line.number, line.bytes, line.complete),
            (3, b"cd".to_vec(), true)
        );
        let line = reader.next_line().unwrap().unwrap();
        assert_eq!(
            (line.number, line.bytes, line.complete),
            (4, b"e".to_vec(), false)
        );
        assert_eq!(reader.next_line().unwrap(), None);
    }
}
