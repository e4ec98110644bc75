//! The runner's promises, checked without sshd: every selected host gets
//! one `start` and exactly one `end` audit record whatever became of it
//! (success, a failure, a panic, a timeout, a cancel before its turn, a
//! failed `prepare`), each `end` record says what the report says, the
//! summary counts the results, and the results come in selection order.
//!
//! The operation is a fake ([`Fake`]): what it does on a host is chosen by
//! the host's name, and it never asks for a connection
//! ([`HostRun::connection`]), so no host (all are 127.0.0.1 port 1) is
//! contacted.
//!
//! The clock is tokio's real one: a paused clock needs tokio's `test-util`
//! feature, which the crate does not enable. The one timed case waits
//! [`TIMEOUT`] (50 ms), and no assertion depends on how long anything took.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;

use super::{HostDetail, HostRun, Operation, Redact, RunState};
use crate::audit::{Event, Op, Record, read_records};
use crate::config::{AuditConfig, Config};
use crate::run::cancel::{self, Cancel, CancelHandle};
use crate::run::context::{Observer, RunContext};
use crate::run::executor::Executor;
use crate::run::report::{Detail, ErrorKind, Failure, HostReport, NoDetails, RunReport};

/// A secret in the failing host's message: the report and the audit log
/// must show `[REDACTED]` instead.
const SECRET: &str = "hunter2-runner-secret";

/// How long a `slow…` host's work may take before it reports a timeout.
const TIMEOUT: Duration = Duration::from_millis(50);

/// What [`Fake`] does on a host, chosen by the start of the host's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// `ok…`: succeeds.
    Succeed,
    /// `fail…`: fails with an `exit` failure whose message holds [`SECRET`].
    Fail,
    /// `panic…`: panics.
    Panic,
    /// `slow…`: works past [`TIMEOUT`], is stopped and reports a timeout.
    Slow,
    /// `cancel…`: cancels the run, then reports itself cancelled.
    Cancel,
}

impl Behaviour {
    /// The behaviour of host `name`.
    fn of(name: &str) -> Behaviour {
        [
            ("ok", Behaviour::Succeed),
            ("fail", Behaviour::Fail),
            ("panic", Behaviour::Panic),
            ("slow", Behaviour::Slow),
            ("cancel", Behaviour::Cancel),
        ]
        .into_iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map_or_else(|| panic!("no behaviour for host {name}"), |(_, b)| b)
    }
}

/// A fake operation: contacts no host, does on each what [`Behaviour::of`]
/// its name says.
struct Fake {
    /// Fired by a `cancel…` host.
    cancel: Option<CancelHandle>,
    /// When set, `prepare` fails with it (and so every host).
    prepare: Option<Failure>,
    /// The hosts whose work began, in that order, each with whether its
    /// `start` record was in the audit log by then.
    worked: Arc<Mutex<Vec<(String, bool)>>>,
}

impl Fake {
    /// A fake whose `prepare` succeeds and which cancels nothing.
    fn new() -> Fake {
        Fake {
            cancel: None,
            prepare: None,
            worked: Arc::default(),
        }
    }
}

/// What [`Fake`] did on a host.
#[derive(Debug, Default, Serialize)]
struct Worked {
    /// Its work began.
    began: bool,
}

impl Redact for Worked {}

impl HostDetail for Worked {}

impl Operation for Fake {
    type Detail = Worked;
    type Details = NoDetails;

    fn op(&self) -> Op {
        Op::Exec
    }

    async fn prepare(&self, _run: &RunState) -> Result<(), Failure> {
        self.prepare.clone().map_or(Ok(()), Err)
    }

    async fn host(&self, host: &mut HostRun<'_>, worked: &mut Worked) -> Result<(), Failure> {
        worked.began = true;
        let started = records(&host.executor().config().audit, host.run.run_id())
            .iter()
            .any(|record| {
                record.event == Event::Start && record.host.as_deref() == Some(host.name)
            });
        self.worked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((host.name.to_owned(), started));
        match Behaviour::of(host.name) {
            Behaviour::Succeed => Ok(()),
            Behaviour::Fail => Err(Failure::new(
                ErrorKind::Exit,
                format!("exited with status 3: bad token {SECRET}"),
            )),
            Behaviour::Panic => panic!("the fake operation panics on {}", host.name),
            Behaviour::Slow => {
                let work = tokio::time::sleep(Duration::from_secs(3600));
                match tokio::time::timeout(TIMEOUT, work).await {
                    Ok(()) => Ok(()),
                    Err(_) => Err(Failure::new(
                        ErrorKind::Timeout,
                        format!("still running after {TIMEOUT:?}: stopped"),
                    )),
                }
            }
            Behaviour::Cancel => {
                if let Some(handle) = &self.cancel {
                    handle.cancel();
                }
                cancel::cancelled(host.cancel()).await;
                Err(Failure::new(
                    ErrorKind::Cancelled,
                    "cancelled while working",
                ))
            }
        }
    }
}

/// An observer that notes `started` and `done`, in order.
#[derive(Default)]
struct Notes(Mutex<Vec<String>>);

impl Notes {
    /// What was noted so far.
    fn taken(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Notes `note`.
    fn note(&self, note: String) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(note);
    }
}

impl Observer for Notes {
    fn started(&self, host: &str) {
        self.note(format!("started {host}"));
    }

    fn done(&self, host: &HostReport<dyn Detail>) {
        let kind = host
            .error
            .as_ref()
            .map_or("ok", |failure| failure.kind.as_str());
        self.note(format!("done {} {kind}", host.host));
    }
}

/// An executor for hosts that are never contacted, its files (audit log,
/// known_hosts, keys) in a temporary directory.
struct Fleet {
    /// Holds the files; removed when the fleet is dropped.
    _dir: tempfile::TempDir,
    /// The executor, with one VM per host name, all at 127.0.0.1 port 1.
    executor: Executor,
}

impl Fleet {
    /// A fleet of `hosts`.
    fn new(hosts: &[&str]) -> Fleet {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut yaml = String::from("vms:\n");
        for host in hosts {
            yaml.push_str(&format!("  {host}: {{ host: 127.0.0.1, port: 1 }}\n"));
        }
        yaml.push_str(
            "remote_execution:\n  known_hosts: known_hosts\n  key_storage_path: keys\n\
             audit:\n  path: audit/audit.jsonl\n",
        );
        let config = Config::from_yaml(&yaml, &dir.path().join("config.yml"))
            .unwrap_or_else(|e| panic!("{e}"));
        let executor = Executor::new(config).unwrap_or_else(|e| panic!("{e}"));
        Fleet {
            _dir: dir,
            executor,
        }
    }

    /// Runs `op` on `hosts`, in that order, under `ctx`.
    async fn run(&self, ctx: &RunContext, hosts: &[&str], op: Fake) -> RunReport<Worked> {
        let hosts = hosts.iter().map(|host| (*host).to_owned()).collect();
        self.executor
            .run(ctx, hosts, op)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The whole audit log, as text.
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.executor.config().audit.path)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The records of run `run` in the log of `audit`, in the order written.
fn records(audit: &AuditConfig, run: &str) -> Vec<Record> {
    read_records(audit)
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|stored| stored.unwrap_or_else(|e| panic!("{e}")).record)
        .filter(|record| record.run == run)
        .collect()
}

/// Each host's error kind (`ok` for none) and message, in report order.
fn outcomes(report: &RunReport<Worked>) -> Vec<(&str, &str, &str)> {
    report
        .results
        .iter()
        .map(|result| match &result.error {
            None => (result.host.as_str(), "ok", ""),
            Some(failure) => (
                result.host.as_str(),
                failure.kind.as_str(),
                failure.message.as_str(),
            ),
        })
        .collect()
}

/// The summary's counts other than the duration: total, ok, failed,
/// timed out, unreachable, and by kind.
fn counts(report: &RunReport<Worked>) -> (usize, usize, usize, usize, usize, Vec<(&str, usize)>) {
    let summary = &report.summary;
    let by_kind = summary
        .by_kind
        .iter()
        .map(|(kind, n)| (kind.as_str(), *n))
        .collect();
    (
        summary.total,
        summary.ok,
        summary.failed,
        summary.timed_out,
        summary.unreachable,
        by_kind,
    )
}

/// Checks what every run promises: one result per host of `hosts`, in
/// that order; in the log, for each host, a `start` record and then
/// exactly one `end` record of the run, whose error kind and message are
/// the report's; no other record of the run.
fn assert_one_end_per_host(fleet: &Fleet, hosts: &[&str], report: &RunReport<Worked>) {
    let reported: Vec<&str> = report.results.iter().map(|r| r.host.as_str()).collect();
    assert_eq!(reported, hosts, "one result per host, in selection order");
    assert_eq!(report.operation, Op::Exec);
    assert_eq!(report.audit_error, None);
    assert!(!report.run_id.is_empty());

    let records = records(&fleet.executor.config().audit, &report.run_id);
    let mut by_host: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for record in &records {
        assert_eq!(record.op, Op::Exec, "{record:?}");
        let host = record
            .host
            .as_deref()
            .unwrap_or_else(|| panic!("a record without a host: {record:?}"));
        by_host.entry(host).or_default().push(record);
    }
    let recorded: Vec<&str> = by_host.keys().copied().collect();
    let mut selected = hosts.to_vec();
    selected.sort_unstable();
    assert_eq!(recorded, selected, "records for exactly the selected hosts");

    for result in &report.results {
        let host = result.host.as_str();
        let of_host = by_host.get(host).cloned().unwrap_or_default();
        let events: Vec<Event> = of_host.iter().map(|record| record.event).collect();
        assert_eq!(events, [Event::Start, Event::End], "{host}");
        let Some(end) = of_host.last() else {
            panic!("{host}: no end record");
        };
        assert_eq!(
            end.error_kind.as_deref(),
            result.error.as_ref().map(|failure| failure.kind.as_str()),
            "{host}: the end record's error kind"
        );
        assert_eq!(
            end.error.as_deref(),
            result
                .error
                .as_ref()
                .map(|failure| failure.message.as_str()),
            "{host}: the end record's message"
        );
    }
}

#[tokio::test]
async fn every_host_gets_one_end_record_whatever_became_of_it() {
    let hosts = ["slow", "ok-1", "fail", "panic", "ok-2"];
    let fleet = Fleet::new(&hosts);
    let op = Fake::new();
    let worked = op.worked.clone();
    let notes = Arc::new(Notes::default());
    let ctx = RunContext::new().secret(SECRET).observer(notes.clone());

    let report = fleet.run(&ctx, &hosts, op).await;

    assert_one_end_per_host(&fleet, &hosts, &report);
    // The observer hears of every host's end, the panicked one's too.
    let mut done: Vec<String> = notes
        .taken()
        .into_iter()
        .filter(|note| note.starts_with("done "))
        .collect();
    done.sort();
    assert_eq!(
        done,
        [
            "done fail exit",
            "done ok-1 ok",
            "done ok-2 ok",
            "done panic protocol",
            "done slow timeout"
        ]
    );
    let outcomes = outcomes(&report);
    assert_eq!(
        outcomes[..3],
        [
            ("slow", "timeout", "still running after 50ms: stopped"),
            ("ok-1", "ok", ""),
            ("fail", "exit", "exited with status 3: bad token [REDACTED]"),
        ]
    );
    let (host, kind, message) = outcomes[3];
    assert_eq!((host, kind), ("panic", "protocol"));
    assert!(
        message.starts_with("internal error in remex while working on panic: "),
        "{message}"
    );
    assert_eq!(outcomes[4], ("ok-2", "ok", ""));
    assert_eq!(
        counts(&report),
        (
            5,
            2,
            3,
            1,
            0,
            vec![("timeout", 1), ("exit", 1), ("protocol", 1)]
        )
    );
    // The panicking host's work began, but its report is a blank one.
    let began: Vec<bool> = report.results.iter().map(|r| r.detail.began).collect();
    assert_eq!(began, [true, true, true, false, true]);
    // Every host's work began after its `start` record was on disk.
    let mut worked = worked
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    worked.sort();
    let on_disk = |host: &str| (host.to_owned(), true);
    assert_eq!(
        worked,
        ["fail", "ok-1", "ok-2", "panic", "slow"].map(on_disk)
    );
    let log = fleet.log_text();
    assert!(log.contains("[REDACTED]"), "{log}");
    assert!(!log.contains(SECRET), "{log}");
}

#[tokio::test]
async fn a_cancelled_run_ends_the_hosts_it_never_started() {
    let hosts = ["ok-1", "cancel", "ok-2", "ok-3"];
    let fleet = Fleet::new(&hosts);
    let (handle, cancel) = Cancel::new();
    let mut op = Fake::new();
    op.cancel = Some(handle);
    let worked = op.worked.clone();
    let notes = Arc::new(Notes::default());
    // One host at a time: `ok-2` and `ok-3` wait for their turn until
    // `cancel` has cancelled the run.
    let ctx = RunContext::new()
        .parallel(1)
        .cancel(cancel)
        .observer(notes.clone());

    let report = fleet.run(&ctx, &hosts, op).await;

    assert_one_end_per_host(&fleet, &hosts, &report);
    let skipped = "interrupted before this host was contacted";
    assert_eq!(
        outcomes(&report),
        [
            ("ok-1", "ok", ""),
            ("cancel", "cancelled", "cancelled while working"),
            ("ok-2", "cancelled", skipped),
            ("ok-3", "cancelled", skipped),
        ]
    );
    assert_eq!(counts(&report), (4, 1, 3, 0, 0, vec![("cancelled", 3)]));
    assert!(report.cancelled());
    let worked: Vec<String> = worked
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|(host, _)| host.clone())
        .collect();
    assert_eq!(
        worked,
        ["ok-1", "cancel"],
        "no work on a host after the cancel"
    );
    assert_eq!(
        notes.taken(),
        [
            "started ok-1",
            "done ok-1 ok",
            "started cancel",
            "done cancel cancelled",
            "done ok-2 cancelled",
            "done ok-3 cancelled",
        ]
    );
}

#[tokio::test]
async fn a_failed_prepare_fails_every_host_without_working_on_any() {
    let hosts = ["ok-1", "fail", "ok-2"];
    let fleet = Fleet::new(&hosts);
    let mut op = Fake::new();
    op.prepare = Some(Failure::new(ErrorKind::Keys, "cannot write the key state"));
    let worked = op.worked.clone();

    let report = fleet.run(&RunContext::new(), &hosts, op).await;

    assert_one_end_per_host(&fleet, &hosts, &report);
    let failed = "cannot write the key state";
    assert_eq!(
        outcomes(&report),
        [
            ("ok-1", "keys", failed),
            ("fail", "keys", failed),
            ("ok-2", "keys", failed),
        ]
    );
    assert_eq!(counts(&report), (3, 0, 3, 0, 0, vec![("keys", 3)]));
    assert!(
        worked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    );
}
