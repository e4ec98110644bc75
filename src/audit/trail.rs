//! [`Trail`]: the records of one run — every host's `start` record
//! committed before any host is contacted, and `end` records written as
//! hosts finish.
//!
//! # Group commit
//!
//! [`Trail::begin`] appends the `start` records of all the run's hosts as
//! one batch ([`AuditLog::append_all`]): one `fdatasync` for the lot, and
//! the call returns only when they are on disk. `end` records go through a
//! channel to one writer thread, which takes every record waiting when it
//! wakes and appends them as one batch: when 64 hosts finish together,
//! their `end` records cost one sync, not 64, and no host task ever waits
//! for the disk. Under `fsync: always` each batch is on disk before the
//! writer takes the next one; under `fsync: start` the batches are
//! committed by [`Trail::finish`]. Either way `finish` returns only when
//! every `end` record is written, so a run's report is never printed
//! before its records.
//!
//! A crash between a host finishing and its batch being written loses that
//! host's `end` record, never its `start` record: the log then shows the
//! action as begun and not known to have ended, which is what happened as
//! far as the log can tell.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;

use super::error::AuditError;
use super::log::AuditLog;
use super::record::{Event, Op, Record};
use super::redact::Redactor;
use super::time;

/// The records of one run. Shared by the run's host tasks (`&Trail` or an
/// `Arc`); [`Trail::finish`] once they are done.
#[derive(Debug)]
pub struct Trail {
    /// The run id: in every record of the run, and in its report.
    run: String,
    /// The operation.
    op: Op,
    /// Redacts records with the run's secrets as well as the config's
    /// patterns.
    redactor: Redactor,
    /// Who runs the run, in every record.
    stamp: Stamp,
    /// Feeds the writer thread; taken by `finish`.
    sender: Mutex<Option<Sender<Record>>>,
    /// The writer thread; `None` when the log is disabled.
    writer: Mutex<Option<JoinHandle<Result<(), AuditError>>>>,
    /// The log, for the final commit.
    log: AuditLog,
}

impl Trail {
    /// Starts run `run` of operation `op`: appends `starts` (one `start`
    /// record per host, as [`Trail::record`] makes them) as one batch, on
    /// disk when this returns, and starts the writer of `end` records.
    /// `redactor` is the config's, extended with the run's literal secrets;
    /// `stamp` names who runs it, in every record. The append runs on a
    /// blocking thread, never on the async workers.
    ///
    /// # Errors
    ///
    /// Any [`AuditError`] from the append: then no record counts as
    /// written, and the caller must contact no host (fail closed).
    pub async fn begin(
        log: &AuditLog,
        redactor: Redactor,
        run: String,
        op: Op,
        stamp: Stamp,
        starts: Vec<Record>,
    ) -> Result<Trail, AuditError> {
        let starts: Vec<Record> = starts
            .into_iter()
            .map(|mut record| {
                stamp.apply(&mut record);
                redactor.redact_record(&mut record);
                record
            })
            .collect();
        let batch_log = log.clone();
        tokio::task::spawn_blocking(move || batch_log.append_all(starts))
            .await
            .map_err(|e| AuditError::Write {
                path: log_path(log),
                source: std::io::Error::other(e.to_string()),
            })??;
        let (sender, writer) = if log.is_enabled() {
            let (sender, receiver) = mpsc::channel();
            let writer_log = log.clone();
            let writer = std::thread::Builder::new()
                .name("remex-audit".into())
                .spawn(move || write_batches(&writer_log, &receiver))
                .map_err(|source| AuditError::Write {
                    path: log_path(log),
                    source,
                })?;
            (Some(sender), Some(writer))
        } else {
            (None, None)
        };
        Ok(Trail {
            run,
            op,
            redactor,
            stamp,
            sender: Mutex::new(sender),
            writer: Mutex::new(writer),
            log: log.clone(),
        })
    }

    /// The run id.
    pub fn run(&self) -> &str {
        &self.run
    }

    /// The redactor of this run: apply it to anything of the run that is
    /// shown (output, error messages).
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// A blank record of this run's operation.
    pub fn record(&self, event: Event) -> Record {
        Record::new(event, self.op, self.run.clone())
    }

    /// Queues a record (an `end` record, as a host finishes) for the
    /// writer. Errors surface in [`Trail::finish`].
    pub fn write(&self, mut record: Record) {
        self.stamp.apply(&mut record);
        // The run's secrets; the log redacts again with the config's
        // patterns, which is harmless.
        self.redactor.redact_record(&mut record);
        if let Some(sender) = self
            .sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            // A send fails only when the writer has stopped after an
            // error, which `finish` reports.
            let _ = sender.send(record);
        }
    }

    /// Waits until every queued record is written and committed (on a
    /// blocking thread).
    ///
    /// # Errors
    ///
    /// The first [`AuditError`] the writer met, or one from the commit:
    /// some `end` records of the run may be missing from the log.
    pub async fn finish(&self) -> Result<(), AuditError> {
        drop(
            self.sender
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let log = self.log.clone();
        let joined = tokio::task::spawn_blocking(move || {
            if let Some(writer) = writer {
                match writer.join() {
                    Ok(result) => result?,
                    Err(_) => {
                        return Err(AuditError::Write {
                            path: log_path(&log),
                            source: std::io::Error::other("the audit writer thread panicked"),
                        });
                    }
                }
            }
            log.sync()
        })
        .await;
        joined.map_err(|e| AuditError::Write {
            path: log_path(&self.log),
            source: std::io::Error::other(e.to_string()),
        })?
    }
}

/// Who runs a run: written into every record of it.
#[derive(Debug, Clone, Default)]
pub struct Stamp {
    /// `workflow`: the name the caller gave itself (`--actor`).
    pub workflow: Option<String>,
    /// `request`: the id of the request that started the run.
    pub request: Option<String>,
}

impl Stamp {
    fn apply(&self, record: &mut Record) {
        if record.workflow.is_none() {
            record.workflow.clone_from(&self.workflow);
        }
        if record.request.is_none() {
            record.request.clone_from(&self.request);
        }
    }
}

/// A fresh run id: the UTC time to the second and 32 random bits,
/// `20261124T101530Z-3f9a2c1d` — sortable, and unique enough to find a
/// run's records with `remex audit show --run`.
pub fn new_run_id() -> String {
    let stamp: String = time::format_ms(time::now_ms())
        .chars()
        .take(19)
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let random: u32 = rand::random();
    format!("{stamp}Z-{random:08x}")
}

/// The writer thread: appends whatever is waiting as one batch, until the
/// channel closes; stops at the first error.
fn write_batches(log: &AuditLog, receiver: &Receiver<Record>) -> Result<(), AuditError> {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        batch.extend(receiver.try_iter());
        log.append_all(batch)?;
    }
    Ok(())
}

fn log_path(log: &AuditLog) -> std::path::PathBuf {
    log.path()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditConfig, read_records, verify};

    fn config(dir: &std::path::Path) -> AuditConfig {
        AuditConfig {
            path: dir.join("audit.jsonl"),
            ..AuditConfig::default()
        }
    }

    #[test]
    fn run_ids_are_sortable_stamps_with_a_random_part() {
        let id = new_run_id();
        let (stamp, random) = id.split_once("Z-").unwrap();
        assert_eq!(stamp.len(), 15, "{id}");
        assert_eq!(stamp.as_bytes()[8], b'T', "{id}");
        assert_eq!(random.len(), 8, "{id}");
        assert_ne!(new_run_id(), id);
    }

    #[tokio::test]
    async fn starts_then_ends_with_the_run_secrets_redacted_and_the_actor_in_each() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let log = AuditLog::open(&config).unwrap();
        let redactor = Redactor::from_config(&config)
            .unwrap()
            .with_secrets(["hunter2".to_owned()])
            .unwrap();
        let starts = ["vm01", "vm02"]
            .iter()
            .map(|host| {
                Record::new(Event::Start, Op::Exec, "r1")
                    .host(*host)
                    .argv(["echo", "hunter2"])
            })
            .collect();
        let stamp = Stamp {
            workflow: Some("nightly".into()),
            request: Some("req-7".into()),
        };
        let trail = Trail::begin(&log, redactor, "r1".into(), Op::Exec, stamp, starts)
            .await
            .unwrap();
        // The starts are on disk before `begin` returns.
        assert_eq!(read_records(&config).unwrap().count(), 2);
        for host in ["vm02", "vm01"] {
            trail.write(trail.record(Event::End).host(host).error("failed: hunter2"));
        }
        trail.finish().await.unwrap();
        let records: Vec<Record> = read_records(&config)
            .unwrap()
            .map(|stored| stored.unwrap().record)
            .collect();
        assert_eq!(records.len(), 4);
        let text = std::fs::read_to_string(&config.path).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(records[0].argv.as_deref().unwrap()[1], "[REDACTED]");
        assert_eq!(records[2].error.as_deref(), Some("failed: [REDACTED]"));
        assert!(records.iter().all(|r| r.run == "r1"));
        assert!(
            records
                .iter()
                .all(|r| r.workflow.as_deref() == Some("nightly"))
        );
        assert!(
            records
                .iter()
                .all(|r| r.request.as_deref() == Some("req-7"))
        );
        assert!(verify(&config).unwrap().ok());
    }

    #[tokio::test]
    async fn a_failing_start_batch_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let log = AuditLog::open(&config).unwrap();
        std::fs::remove_file(&config.path).unwrap();
        std::os::unix::fs::symlink("/dev/full", &config.path).unwrap();
        let redactor = Redactor::from_config(&config).unwrap();
        let starts = vec![Record::new(Event::Start, Op::Exec, "r1").host("vm01")];
        let err = Trail::begin(
            &log,
            redactor,
            "r1".into(),
            Op::Exec,
            Stamp::default(),
            starts,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, AuditError::Write { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_disabled_log_takes_records_and_writes_nothing() {
        let log = AuditLog::disabled();
        let redactor = Redactor::new(&[], Vec::new()).unwrap();
        let trail = Trail::begin(
            &log,
            redactor,
            "r1".into(),
            Op::Check,
            Stamp::default(),
            Vec::new(),
        )
        .await
        .unwrap();
        trail.write(trail.record(Event::End).host("vm01"));
        trail.finish().await.unwrap();
    }
}
