//! [`AuditLog`]: appends records to the chain, from any number of threads
//! and processes at once.
//!
//! # One append
//!
//! Under the process's mutex and the exclusive `flock` on `PATH.lock`:
//!
//! 1. Find where the chain ends ("resume"): if the log file is exactly as
//!    this writer left it (same inode and length), from memory; otherwise
//!    from the head file, then reading forward over any complete records
//!    written after the head (by a writer that crashed before updating it,
//!    or under `fsync: start`), checking that each is the next link. A
//!    partial last line (a write cut short by a crash or a full disk; it
//!    was never acknowledged) is truncated. Anything else that does not
//!    fit — the log shorter than the head says, a missing head, a line
//!    that is not the next record — is [`AuditError::Inconsistent`]:
//!    nothing is appended until someone looks.
//! 2. Fill in `v`, `seq`, `ts`, `prev`, the default `actor` and
//!    `orchestrator`; redact `argv`, `command`, `error`, `paths` and `key`; hash.
//! 3. Rotate when the line would take the file past `max_size`.
//! 4. Write the whole line with one `write_all` on an `O_APPEND` file.
//! 5. Under `fsync: always`, or for a `start` record: `fdatasync` the log,
//!    then replace the head file (written, synced, renamed).
//!
//! [`AuditLog::append_all`] does steps 2–4 for each record of a batch and
//! step 5 once: a fan-out's `start` records for 64 hosts cost one sync
//! (about 1 ms on an SSD-backed ext4) instead of 64 (about 40 ms).
//!
//! # Rotation
//!
//! The log is synced and renamed to `PATH.N` (N = highest existing + 1),
//! the head is rewritten to name that file, and the directory is synced;
//! only then is a fresh `PATH` created for the new record, whose `prev` is
//! the last hash of the rotated file. A crash at any step leaves a state
//! that the next resume recognises.
//!
//! Appending blocks (lock, write, fsync): from async code, call it from
//! `tokio::task::spawn_blocking` or accept a short block of the worker.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::AuditConfig;
use super::chain::{self, Sealer, ZERO_HASH, splice};
use super::error::AuditError;
use super::files::{LineReader, Locked, LogFiles};
use super::head::{Head, HeadState};
use super::origin;
use super::record::{Event, Record, SCHEMA_VERSION};
use super::redact::Redactor;
use super::time;
use crate::config::FsyncPolicy;

/// Where an appended record went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Its `seq` (0 when auditing is disabled).
    pub seq: u64,
    /// Its `hash` (empty when auditing is disabled).
    pub hash: String,
}

/// The audit log, open for appending. Cheap to clone: clones share one
/// writer. [`AuditLog::disabled`] gives one that records nothing.
#[derive(Debug, Clone)]
pub struct AuditLog {
    /// `None` when auditing is disabled.
    writer: Option<Arc<Writer>>,
}

/// An enabled log.
#[derive(Debug)]
struct Writer {
    /// The log's files.
    files: LogFiles,
    /// Hashes records (SHA-256 or HMAC).
    sealer: Sealer,
    /// When to force records to disk.
    fsync: FsyncPolicy,
    /// Rotation size.
    max_size: u64,
    /// Redacts `argv`, `command`, `error`, `paths` and `key` of every record.
    redactor: Redactor,
    /// Default `actor`: the local user.
    actor: String,
    /// Default `orchestrator`: this host's name.
    orchestrator: String,
    /// The lock file, open for the writer's life; `flock`ed around each
    /// append.
    lock: File,
    /// What this writer knows, behind the mutex that also keeps its own
    /// threads from taking the `flock` twice (a `flock` is per open file,
    /// not per thread).
    state: Mutex<State>,
}

/// A writer's memory between appends.
#[derive(Debug, Default)]
struct State {
    /// Where this writer left the chain, if nobody has written since.
    cache: Option<Tail>,
    /// Records were written without updating the head (`fsync: start`).
    uncommitted: bool,
}

/// The end of the chain, in the log file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tail {
    /// `seq` of the last record (0: none yet).
    seq: u64,
    /// Its `hash` (zeros: none yet).
    hash: String,
    /// The log file's device, inode and length after that record: if the
    /// file still matches, nobody has written since.
    dev: u64,
    ino: u64,
    len: u64,
}

impl Tail {
    fn matches(&self, meta: &Metadata) -> bool {
        self.same_file(meta) && meta.len() == self.len
    }

    fn same_file(&self, meta: &Metadata) -> bool {
        meta.dev() == self.dev && meta.ino() == self.ino
    }
}

/// The result of a resume: the open log file and where the chain ends.
struct Position {
    /// The log file, open for appending (and reading).
    file: File,
    /// The end of the chain.
    tail: Tail,
    /// Whether the head file names the tail (`None`: not looked at).
    committed: Option<bool>,
}

impl AuditLog {
    /// Opens the log of `config` for appending: creates its directory (mode
    /// 0700) and file (0600) when missing, checks that the log continues its
    /// head file (repairing a torn last line and catching up with records a
    /// crashed writer did not commit), and rewrites the head, which proves
    /// the directory writable. With `enabled: false`, returns
    /// [`AuditLog::disabled`].
    ///
    /// # Errors
    ///
    /// Any [`AuditError`]: the directory cannot be created, a file cannot be
    /// opened or written (permission denied, read-only file system, disk
    /// full), the HMAC key is unusable, or the log is inconsistent. The
    /// caller must then contact no host (fail closed).
    pub fn open(config: &AuditConfig) -> Result<AuditLog, AuditError> {
        if !config.enabled {
            return Ok(AuditLog::disabled());
        }
        let files = LogFiles::new(&config.path)?;
        let sealer = Sealer::load(config.hmac_key_path.as_deref())?;
        let redactor = Redactor::from_config(config)?;
        create_dir(files.dir())?;
        let lock_path = files.lock();
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|source| AuditError::Open {
                path: lock_path,
                source,
            })?;
        let writer = Writer {
            files,
            sealer,
            fsync: config.fsync,
            max_size: config.max_size,
            redactor,
            actor: origin::local_actor(),
            orchestrator: origin::hostname(),
            lock,
            state: Mutex::new(State::default()),
        };
        writer.commit(true)?;
        Ok(AuditLog {
            writer: Some(Arc::new(writer)),
        })
    }

    /// A log that records nothing: for `audit.enabled: false` (labs and
    /// benchmarks; the CLI warns). `append` returns seq 0 and no hash.
    pub fn disabled() -> AuditLog {
        AuditLog { writer: None }
    }

    /// Whether records are kept.
    pub fn is_enabled(&self) -> bool {
        self.writer.is_some()
    }

    /// The log file, when enabled.
    pub fn path(&self) -> Option<&Path> {
        self.writer.as_ref().map(|w| w.files.current())
    }

    /// The redactor applied to every record (the config's patterns), to
    /// extend with a run's secrets ([`Redactor::with_secrets`]) and apply
    /// to records and output. `None` when disabled.
    pub fn redactor(&self) -> Option<&Redactor> {
        self.writer.as_ref().map(|w| &w.redactor)
    }

    /// Appends `record` to the chain and returns its `seq` and `hash`. For
    /// a `start` record (and for every record under `fsync: always`) the
    /// record is on disk, and the head names it, when this returns.
    ///
    /// # Errors
    ///
    /// Any [`AuditError`]; for a `start` record the caller must then not
    /// contact the host.
    pub fn append(&self, record: Record) -> Result<Appended, AuditError> {
        let mut appended = self.append_all(vec![record])?;
        Ok(appended.pop().unwrap_or(Appended {
            seq: 0,
            hash: String::new(),
        }))
    }

    /// Appends several records at once, in order, under one lock: one write
    /// per record, but one sync and one head update for the lot (when any
    /// of them needs it). This is how a fan-out commits the `start`
    /// records of all its hosts at the cost of one: every record is on
    /// disk when this returns, before any host is contacted.
    ///
    /// # Errors
    ///
    /// Any [`AuditError`]. Then none of the records counts as recorded
    /// (some may be in the log): contact none of their hosts.
    pub fn append_all(&self, records: Vec<Record>) -> Result<Vec<Appended>, AuditError> {
        match &self.writer {
            Some(writer) => writer.append_all(records),
            None => Ok(records
                .iter()
                .map(|_| Appended {
                    seq: 0,
                    hash: String::new(),
                })
                .collect()),
        }
    }

    /// Commits records written without forcing them to disk (`fsync:
    /// start`): syncs the log and updates the head. Call it at the end of a
    /// run; it is also tried when the last clone is dropped.
    ///
    /// # Errors
    ///
    /// Any [`AuditError`] from syncing or writing the head.
    pub fn sync(&self) -> Result<(), AuditError> {
        match &self.writer {
            Some(writer) => writer.commit(false),
            None => Ok(()),
        }
    }
}

impl Writer {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state no worse than a
        // crash would: the cache is only a shortcut, re-checked on use.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn append_all(&self, records: Vec<Record>) -> Result<Vec<Appended>, AuditError> {
        let mut state = self.state();
        let _locked = Locked::exclusive(&self.lock, &self.files.lock())?;
        let result = self.append_locked(&mut state, records);
        if result.is_err() {
            state.cache = None;
        }
        result
    }

    fn append_locked(
        &self,
        state: &mut State,
        records: Vec<Record>,
    ) -> Result<Vec<Appended>, AuditError> {
        let Position { mut file, tail, .. } = self.resume(state, false)?;
        let Tail {
            mut seq,
            mut hash,
            mut len,
            ..
        } = tail;
        let mut durable = false;
        let mut appended = Vec::with_capacity(records.len());
        for record in records {
            durable |= self.fsync == FsyncPolicy::Always || record.event == Event::Start;
            let (line, next_hash) = self.seal(record, seq + 1, &hash)?;
            if len > 0 && len.saturating_add(line.len() as u64) > self.max_size {
                self.rotate(&file, seq, &hash, len)?;
                file = self.open_current()?;
                len = 0;
            }
            if let Err(source) = file.write_all(&line) {
                // Take back a partial line now rather than at the next
                // resume.
                let _ = file.set_len(len);
                return Err(self.write_error(source));
            }
            len += line.len() as u64;
            seq += 1;
            hash = next_hash;
            appended.push(Appended {
                seq,
                hash: hash.clone(),
            });
        }
        if appended.is_empty() {
            return Ok(appended);
        }
        let meta = file.metadata().map_err(|source| self.write_error(source))?;
        if durable {
            file.sync_data()
                .map_err(|source| self.write_error(source))?;
            self.write_head(seq, &hash, self.files.name(), len)?;
            state.uncommitted = false;
        } else {
            state.uncommitted = true;
        }
        state.cache = Some(Tail {
            seq,
            hash,
            dev: meta.dev(),
            ino: meta.ino(),
            len,
        });
        Ok(appended)
    }

    /// Fills in `record` as number `seq` after `prev`, redacts it, and
    /// returns its line and hash.
    fn seal(
        &self,
        mut record: Record,
        seq: u64,
        prev: &str,
    ) -> Result<(Vec<u8>, String), AuditError> {
        record.v = SCHEMA_VERSION;
        record.seq = seq;
        record.ts = time::format_ms(time::now_ms());
        prev.clone_into(&mut record.prev);
        record.hash.clear();
        if record.actor.is_empty() {
            record.actor.clone_from(&self.actor);
        }
        if record.orchestrator.is_empty() {
            record.orchestrator.clone_from(&self.orchestrator);
        }
        self.redactor.redact_record(&mut record);
        let canonical = record
            .canonical()
            .map_err(|err| self.write_error(io::Error::other(err)))?;
        let hash = self.sealer.seal(&canonical);
        Ok((splice(&canonical, &hash), hash))
    }

    /// Makes the head name the end of the chain, after syncing the log.
    /// `always` rewrites it even when it already does (at open: proves the
    /// directory writable).
    fn commit(&self, always: bool) -> Result<(), AuditError> {
        let mut state = self.state();
        let _locked = Locked::exclusive(&self.lock, &self.files.lock())?;
        let result = (|| {
            let position = self.resume(&state, true)?;
            if always || position.committed != Some(true) {
                position
                    .file
                    .sync_data()
                    .map_err(|source| self.write_error(source))?;
                let tail = &position.tail;
                self.write_head(tail.seq, &tail.hash, self.files.name(), tail.len)?;
            }
            state.cache = Some(position.tail);
            state.uncommitted = false;
            Ok(())
        })();
        if result.is_err() {
            state.cache = None;
        }
        result
    }

    /// Finds the end of the chain (see the module docs). `check_head`
    /// reads the head even when the cache says nobody wrote since.
    fn resume(&self, state: &State, check_head: bool) -> Result<Position, AuditError> {
        let current = self.files.current();
        let meta = metadata(current)?;
        if !check_head
            && let (Some(meta), Some(cache)) = (&meta, &state.cache)
            && cache.matches(meta)
        {
            let file = self.open_current()?;
            return Ok(Position {
                file,
                tail: cache.clone(),
                committed: None,
            });
        }

        let (head, on_disk) = match Head::read(&self.files.head())? {
            HeadState::Present(head) => {
                if let Some(problem) = head.problem(&self.sealer) {
                    return Err(self.inconsistent(problem));
                }
                if !chain::is_hash(&head.hash) {
                    return Err(self.inconsistent("the head file's hash is not a hash".to_owned()));
                }
                (head, true)
            }
            HeadState::Invalid(why) => return Err(self.inconsistent(why)),
            HeadState::Missing => {
                if meta.is_some() || !self.files.rotated()?.is_empty() {
                    return Err(self.inconsistent(format!(
                        "the head file {} is missing although the log exists: it was deleted, \
                         so records removed from the end would go unnoticed",
                        self.files.head().display()
                    )));
                }
                (Head::genesis(self.files.name(), &self.sealer), false)
            }
        };
        // Where the records not yet named by the head start in the log
        // file, and the link before them.
        let mut repointed = false;
        let (start, mut seq, mut hash) = match (&meta, &state.cache) {
            (Some(meta), Some(cache))
                if cache.same_file(meta) && meta.len() >= cache.len && cache.seq >= head.seq =>
            {
                (cache.len, cache.seq, cache.hash.clone())
            }
            _ if self.files.is_current(&head.file) => match &meta {
                None if head.seq == 0 => (0, 0, ZERO_HASH.to_owned()),
                None => {
                    // A rotation renamed the log and stopped before the
                    // head named the rotated file.
                    let newest = self.files.rotated()?.pop();
                    match newest {
                        Some((_, path))
                            if metadata(&path)?.is_some_and(|m| m.len() == head.size) =>
                        {
                            repointed = true;
                            (0, head.seq, head.hash.clone())
                        }
                        _ => {
                            return Err(self.inconsistent(format!(
                                "the log file is missing but the head file names record {}",
                                head.seq
                            )));
                        }
                    }
                }
                Some(meta) if meta.len() < head.size => {
                    return Err(self.inconsistent(format!(
                        "the log file is {} bytes but the head file says record {} ends at byte {}: \
                         records were removed from its end",
                        meta.len(),
                        head.seq,
                        head.size
                    )));
                }
                Some(_) => (head.size, head.seq, head.hash.clone()),
            },
            _ => {
                let Some(path) = self.files.resolve(&head.file) else {
                    return Err(self.inconsistent(format!(
                        "the head file names `{}`, which is not a file of this log",
                        head.file
                    )));
                };
                match metadata(&path)? {
                    Some(rotated) if rotated.len() == head.size => (0, head.seq, head.hash.clone()),
                    // The rotation's rename was lost (power failure) but
                    // the head's was not: the records are still in the log.
                    None if meta.as_ref().is_some_and(|m| m.len() == head.size) => {
                        repointed = true;
                        (head.size, head.seq, head.hash.clone())
                    }
                    Some(rotated) => {
                        return Err(self.inconsistent(format!(
                            "{} is {} bytes but the head file says {}",
                            path.display(),
                            rotated.len(),
                            head.size
                        )));
                    }
                    None => {
                        return Err(self.inconsistent(format!(
                            "{}, named by the head file, is missing",
                            path.display()
                        )));
                    }
                }
            }
        };

        // Catch up with complete records after `start`; cut a torn tail.
        let file = self.open_current()?;
        let len = file
            .metadata()
            .map_err(|source| self.read_error(current, source))?
            .len();
        let reading = file
            .try_clone()
            .map_err(|source| self.read_error(current, source))?;
        let mut reader = LineReader::new(reading, current, start, len, 1)?;
        let mut end = start;
        while let Some(line) = reader.next_line()? {
            if !line.complete {
                file.set_len(line.offset)
                    .map_err(|source| self.write_error(source))?;
                tracing::warn!(
                    log = %current.display(),
                    bytes = line.bytes.len(),
                    "removed the partial last line of an interrupted audit write"
                );
                break;
            }
            match chain::read_link(&line.bytes, &self.sealer) {
                Ok((link, found)) if link.seq == seq + 1 && link.prev == hash => {
                    seq = link.seq;
                    hash = found.to_owned();
                    end = line.offset + line.bytes.len() as u64 + 1;
                }
                Ok((link, _)) => {
                    return Err(self.inconsistent(format!(
                        "the record at byte {} of the log is seq {}, but the chain ends at seq {}",
                        line.offset, link.seq, seq
                    )));
                }
                Err(problem) => {
                    return Err(self.inconsistent(format!(
                        "the line at byte {} of the log, after the last committed record, \
                         is not the next record: {problem}",
                        line.offset
                    )));
                }
            }
        }
        let meta = file
            .metadata()
            .map_err(|source| self.read_error(current, source))?;
        let committed = on_disk && !repointed && head.seq == seq && head.hash == hash;
        Ok(Position {
            file,
            tail: Tail {
                seq,
                hash,
                dev: meta.dev(),
                ino: meta.ino(),
                len: end,
            },
            committed: Some(committed),
        })
    }

    /// Renames the full log to the next `PATH.N` and points the head at it.
    /// `seq`, `hash` and `len` describe the last record in `file`.
    fn rotate(&self, file: &File, seq: u64, hash: &str, len: u64) -> Result<(), AuditError> {
        file.sync_all().map_err(|source| self.write_error(source))?;
        let number = self.files.rotated()?.last().map_or(1, |(n, _)| n + 1);
        let name = self.files.rotated_name(number);
        let rotated = self.files.dir().join(&name);
        std::fs::rename(self.files.current(), &rotated).map_err(|source| AuditError::Write {
            path: rotated.clone(),
            source,
        })?;
        self.write_head(seq, hash, &name, len)?;
        sync_dir(self.files.dir())
    }

    fn write_head(&self, seq: u64, hash: &str, file: &str, size: u64) -> Result<(), AuditError> {
        Head::new(seq, hash.to_owned(), file.to_owned(), size, &self.sealer)
            .write(&self.files.head(), &self.files.head_tmp())
    }

    /// Opens (creating, mode 0600) the log file for appending and reading.
    fn open_current(&self) -> Result<File, AuditError> {
        OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(self.files.current())
            .map_err(|source| AuditError::Open {
                path: self.files.current().to_path_buf(),
                source,
            })
    }

    fn inconsistent(&self, reason: String) -> AuditError {
        AuditError::Inconsistent {
            path: self.files.current().to_path_buf(),
            reason,
        }
    }

    fn write_error(&self, source: io::Error) -> AuditError {
        AuditError::Write {
            path: self.files.current().to_path_buf(),
            source,
        }
    }

    fn read_error(&self, path: &Path, source: io::Error) -> AuditError {
        AuditError::Read {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let uncommitted = self.state().uncommitted;
        if uncommitted && let Err(err) = self.commit(false) {
            tracing::warn!("could not commit the audit log: {err}");
        }
    }
}

/// The metadata of `path`, or `None` when it does not exist.
fn metadata(path: &Path) -> Result<Option<Metadata>, AuditError> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AuditError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Creates `dir` and its missing parents with mode 0700.
fn create_dir(dir: &Path) -> Result<(), AuditError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| AuditError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })
}

/// Forces `dir`'s entries (renames) to disk.
fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| AuditError::Write {
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests;
