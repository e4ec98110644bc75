//! Reading the log back: every record in order ([`read_records`]), the
//! last few ([`tail`]), and new ones as they come ([`Follower`]).
//!
//! Reading does not verify (that is [`super::verify`]): a line that is not
//! a record is returned as an [`AuditError::Corrupt`] item and reading goes
//! on. An incomplete last line (a write in progress, or interrupted) is
//! skipped.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;

use super::AuditConfig;
use super::error::AuditError;
use super::files::{Line, LineReader, LogFiles, SnapFile};
use super::record::Record;

/// A record read from the log, with where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The file it is in (as named when reading started).
    pub file: PathBuf,
    /// Its line in that file, from 1.
    pub line: usize,
    /// The record.
    pub record: Record,
}

/// Every record of the log, oldest first: see [`read_records`].
pub struct Records {
    /// Files not started yet.
    files: VecDeque<SnapFile>,
    /// The file being read.
    reading: Option<(PathBuf, LineReader)>,
}

/// Every record of the log of `config`, oldest first, across rotated files.
/// The files are taken as they are now; records appended later are not
/// read.
///
/// # Errors
///
/// When the files cannot be listed or opened. Items are errors for lines
/// that are not records ([`AuditError::Corrupt`]) and read failures.
pub fn read_records(config: &AuditConfig) -> Result<Records, AuditError> {
    let files = LogFiles::new(&config.path)?.snapshot()?.files;
    Ok(Records {
        files: files.into(),
        reading: None,
    })
}

impl Iterator for Records {
    type Item = Result<Stored, AuditError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.reading.is_none() {
                let snap = self.files.pop_front()?;
                let path = snap.path.clone();
                match LineReader::whole(snap) {
                    Ok(reader) => self.reading = Some((path, reader)),
                    Err(err) => return Some(Err(err)),
                }
            }
            let (path, reader) = self.reading.as_mut()?;
            match reader.next_line() {
                Ok(Some(line)) if line.complete => return Some(parse(path, &line)),
                // An incomplete line is the last one.
                Ok(Some(_) | None) => self.reading = None,
                Err(err) => {
                    self.reading = None;
                    return Some(Err(err));
                }
            }
        }
    }
}

/// The record on `line` of `path`.
fn parse(path: &std::path::Path, line: &Line) -> Result<Stored, AuditError> {
    match serde_json::from_slice::<Record>(&line.bytes) {
        Ok(record) => Ok(Stored {
            file: path.to_path_buf(),
            line: line.number,
            record,
        }),
        Err(err) => Err(AuditError::Corrupt {
            path: path.to_path_buf(),
            line: line.number,
            reason: err.to_string(),
        }),
    }
}

/// The last `n` items of [`read_records`], oldest first. Reads the newest
/// files first and stops once it has `n`.
///
/// # Errors
///
/// As [`read_records`].
pub fn tail(config: &AuditConfig, n: usize) -> Result<Vec<Result<Stored, AuditError>>, AuditError> {
    let files = LogFiles::new(&config.path)?.snapshot()?.files;
    let mut found: VecDeque<Result<Stored, AuditError>> = VecDeque::new();
    for snap in files.into_iter().rev() {
        if found.len() >= n {
            break;
        }
        let records = Records {
            files: VecDeque::from([snap]),
            reading: None,
        };
        let mut in_file: VecDeque<_> = records.collect();
        while in_file.len() + found.len() > n {
            in_file.pop_front();
        }
        while let Some(item) = in_file.pop_back() {
            found.push_front(item);
        }
    }
    Ok(found.into())
}

/// Returns records as they are appended, following rotations: call
/// [`Follower::poll`] every so often (e.g. every 200 ms for `remex audit
/// tail --follow`).
pub struct Follower {
    /// The log's files.
    files: LogFiles,
    /// The file being followed (it keeps being read after a rotation
    /// renames it), its device and inode, and the offset of the next line.
    following: Option<(File, u64, u64, u64)>,
    /// Line number of the next line in that file.
    line: usize,
    /// Records up to this `seq` are not returned.
    after_seq: u64,
}

impl Follower {
    /// A follower of the log of `config` that returns records with a `seq`
    /// above `after_seq` (0: all of the current file; the last `seq` shown
    /// by [`tail`] to continue from there). It starts at the beginning of
    /// the current log file; records of already-rotated files are not
    /// returned.
    pub fn new(config: &AuditConfig, after_seq: u64) -> Result<Follower, AuditError> {
        Ok(Follower {
            files: LogFiles::new(&config.path)?,
            following: None,
            line: 1,
            after_seq,
        })
    }

    /// The records appended since the last poll (complete lines only).
    ///
    /// # Errors
    ///
    /// When the log cannot be read; a line that is not a record comes back
    /// as an [`AuditError::Corrupt`] item.
    pub fn poll(&mut self) -> Result<Vec<Result<Stored, AuditError>>, AuditError> {
        let mut out = Vec::new();
        loop {
            let current = self.files.current().to_path_buf();
            if self.following.is_none() {
                let file = match File::open(&current) {
                    Ok(file) => file,
                    Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(out),
                    Err(source) => {
                        return Err(AuditError::Read {
                            path: current,
                            source,
                        });
                    }
                };
                let meta = file.metadata().map_err(|source| AuditError::Read {
                    path: current.clone(),
                    source,
                })?;
                self.following = Some((file, meta.dev(), meta.ino(), 0));
                self.line = 1;
            }
            // Has the followed file been rotated away? Check before reading
            // it, so nothing written to it before the rotation is missed.
            let rotated = match std::fs::metadata(&current) {
                Ok(meta) => self
                    .following
                    .as_ref()
                    .is_some_and(|(_, dev, ino, _)| (meta.dev(), meta.ino()) != (*dev, *ino)),
                Err(err) if err.kind() == io::ErrorKind::NotFound => true,
                Err(source) => {
                    return Err(AuditError::Read {
                        path: current,
                        source,
                    });
                }
            };
            self.drain(&current, &mut out)?;
            if !rotated {
                return Ok(out);
            }
            // Files rotated after ours (several rotations between two
            // polls), then the new log.
            let ours = self.following.take().map(|(_, dev, ino, _)| (dev, ino));
            let rotated = self.files.rotated()?;
            let newer = rotated
                .iter()
                .position(|(_, path)| {
                    std::fs::metadata(path).is_ok_and(|meta| Some((meta.dev(), meta.ino())) == ours)
                })
                .map_or(&[][..], |index| rotated.get(index + 1..).unwrap_or(&[]));
            for (_, path) in newer {
                let file = File::open(path).map_err(|source| AuditError::Read {
                    path: path.clone(),
                    source,
                })?;
                self.following = Some((file, 0, 0, 0));
                self.line = 1;
                self.drain(path, &mut out)?;
            }
            self.following = None;
        }
    }

    /// Reads the complete lines after the followed file's offset.
    fn drain(
        &mut self,
        path: &std::path::Path,
        out: &mut Vec<Result<Stored, AuditError>>,
    ) -> Result<(), AuditError> {
        let Some((file, _, _, offset)) = self.following.as_mut() else {
            return Ok(());
        };
        let handle = file.try_clone().map_err(|source| AuditError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut reader = LineReader::new(handle, path, *offset, u64::MAX, self.line)?;
        while let Some(line) = reader.next_line()? {
            if !line.complete {
                break;
            }
            *offset = line.offset + line.bytes.len() as u64 + 1;
            self.line = line.number + 1;
            match parse(path, &line) {
                Ok(stored) if stored.record.seq <= self.after_seq => {}
                Ok(stored) => {
                    self.after_seq = stored.record.seq;
                    out.push(Ok(stored));
                }
                Err(err) => out.push(Err(err)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditLog, Event, Op};

    fn config(dir: &std::path::Path) -> AuditConfig {
        AuditConfig {
            path: dir.join("audit.jsonl"),
            max_size: 4096,
            ..AuditConfig::default()
        }
    }

    fn append(log: &AuditLog, host: &str) -> u64 {
        log.append(
            Record::new(Event::Start, Op::Exec, "run1")
                .host(host)
                .argv(["uptime"]),
        )
        .unwrap()
        .seq
    }

    #[test]
    fn reads_across_rotated_files_and_tails() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let log = AuditLog::open(&config).unwrap();
        for i in 0..40 {
            append(&log, &format!("vm{i:02}"));
        }
        assert!(dir.path().join("audit.jsonl.2").exists(), "rotated twice");
        let all: Vec<Stored> = read_records(&config).unwrap().map(Result::unwrap).collect();
        assert_eq!(
            all.iter().map(|s| s.record.seq).collect::<Vec<_>>(),
            (1..=40).collect::<Vec<_>>()
        );
        assert_eq!(all[0].file, dir.path().join("audit.jsonl.1"));
        assert_eq!(all[0].line, 1);
        assert_eq!(all[39].record.host.as_deref(), Some("vm39"));

        for n in [0, 1, 5, 25, 40, 100] {
            let last: Vec<u64> = tail(&config, n)
                .unwrap()
                .into_iter()
                .map(|s| s.unwrap().record.seq)
                .collect();
            let want: Vec<u64> = (1..=40).skip(40_usize.saturating_sub(n)).collect();
            assert_eq!(last, want, "tail {n}");
        }
    }

    #[test]
    fn a_bad_line_is_an_error_item_and_reading_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let log = AuditLog::open(&config).unwrap();
        append(&log, "a");
        drop(log);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&config.path)
            .unwrap();
        io::Write::write_all(&mut file, b"not json\n").unwrap();
        let log = AuditLog::open(&config);
        assert!(log.is_err(), "the writer refuses a log with a foreign line");
        // A record after it, added by hand, and a partial line.
        let items: Vec<_> = read_records(&config).unwrap().collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        let err = items[1].as_ref().unwrap_err().to_string();
        assert!(err.contains("audit.jsonl:2: not an audit record"), "{err}");
        io::Write::write_all(&mut file, b"{\"partial").unwrap();
        assert_eq!(read_records(&config).unwrap().count(), 2);
    }

    #[test]
    fn follower_sees_new_records_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let mut follower = Follower::new(&config, 0).unwrap();
        assert!(follower.poll().unwrap().is_empty(), "no log yet");
        let log = AuditLog::open(&config).unwrap();
        append(&log, "a");
        append(&log, "b");
        let seqs = |items: Vec<Result<Stored, AuditError>>| -> Vec<u64> {
            items.into_iter().map(|s| s.unwrap().record.seq).collect()
        };
        assert_eq!(seqs(follower.poll().unwrap()), [1, 2]);
        assert!(follower.poll().unwrap().is_empty());
        // Enough to rotate at least once between polls.
        for i in 0..30 {
            append(&log, &format!("h{i}"));
        }
        assert!(dir.path().join("audit.jsonl.1").exists());
        assert_eq!(seqs(follower.poll().unwrap()), (3..=32).collect::<Vec<_>>());

        // Starting after a seq skips what was already shown.
        let mut follower = Follower::new(&config, 31).unwrap();
        let got = seqs(follower.poll().unwrap());
        assert_eq!(got, [32]);
    }
}
