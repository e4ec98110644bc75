//! What every run returns: one [`RunReport`] envelope with one
//! [`HostReport`] per host, and the failure classes. These are the boundary
//! types of the library: they (and the operations' detail types) derive or
//! implement `Serialize`, and their JSON is the `--json` schema.
//!
//! A host's failure is data here, not an `Err`: the run goes on for the other
//! hosts and the caller decides what a failure means.
//!
//! # JSON schema, version 2
//!
//! Every operation prints the same envelope:
//!
//! ```json
//! {"version":2,"operation":"exec","run_id":"20261205T101530Z-3f9a2c1d",
//!  "results":[{"host":"vm01","address":"127.0.0.2","port":22,"user":"ops",
//!              "ok":true,"duration_ms":12,"error":null,
//!              "exit_code":0,"signal":null,"stdout":"…","stderr":"…",
//!              "truncated":false,"host_key":"SHA256:…"}],
//!  "summary":{"total":1,"ok":1,"failed":0,"timed_out":0,"unreachable":0,
//!             "by_kind":{},"duration_ms":15}}
//! ```
//!
//! - `operation` is the audit log's name of the operation ([`Op`]): `exec`,
//!   `script`, `check`, `upload`, `download`, `keys.generate`,
//!   `keys.deploy`, `keys.rotate`, `keys.revoke`, `keys.prune`,
//!   `hosts.trust`, `hosts.forget`.
//! - `run_id` is in every audit record of the run (`remex audit show --run`).
//! - Each result has the common fields `host`, `address`, `port`, `user`,
//!   `ok`, `duration_ms` and `error` (`null`, or `{"kind","message"}` with
//!   `kind` one of [`ErrorKind`]'s names), then the operation's own fields.
//! - An operation may add run-wide fields beside `results` (`script` for
//!   `script`, `key` and `archived` for the key operations, `key` for
//!   `keys.generate`, `removed` and `kept` for `keys.prune`).
//! - `audit_error` is present only when some of the run's audit records
//!   could not be written.

use std::any::Any;
use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::audit::Op;
pub use crate::failure::{ErrorKind, Failure, HostKeyProblem};

/// The version of the JSON schema; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 2;

/// The operation-specific part of one host's result, as observers see it
/// (see [`crate::Observer::done`]): downcast it to the operation's type
/// (`ExecResult`, `TransferResult`, …) or turn it into JSON.
pub trait Detail: Any + Send + Sync {
    /// This detail as [`Any`], to downcast to the operation's type.
    fn as_any(&self) -> &dyn Any;
    /// The detail's JSON fields (what `--json` shows beside the common
    /// fields of a result).
    fn to_json(&self) -> serde_json::Value;
}

impl<T: Serialize + Send + Sync + 'static> Detail for T {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// One host's result: the fields every operation has, and the operation's
/// own `detail` (flattened into the same JSON object).
///
/// An observer gets it as `HostReport<dyn Detail>`.
#[derive(Debug, Clone)]
pub struct HostReport<T: ?Sized> {
    /// The host's name in the config.
    pub host: String,
    /// The address remex connects to, as configured (name or IP).
    pub address: String,
    /// The SSH port.
    pub port: u16,
    /// The remote user.
    pub user: String,
    /// Wall time from the start of this host's work to its end, connecting
    /// included.
    pub duration: Duration,
    /// Why the host did not succeed; `None` means success.
    pub error: Option<Failure>,
    /// What the operation did on the host.
    pub detail: T,
}

impl<T: ?Sized> HostReport<T> {
    /// Whether the host succeeded.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

impl<T: Serialize> Serialize for HostReport<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a, T> {
            host: &'a str,
            address: &'a str,
            port: u16,
            user: &'a str,
            ok: bool,
            duration_ms: u64,
            error: Option<&'a Failure>,
            #[serde(flatten)]
            detail: &'a T,
        }
        Wire {
            host: &self.host,
            address: &self.address,
            port: self.port,
            user: &self.user,
            ok: self.ok(),
            duration_ms: millis(self.duration),
            error: self.error.as_ref(),
            detail: &self.detail,
        }
        .serialize(serializer)
    }
}

/// Counts over a run's hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Hosts selected.
    pub total: usize,
    /// Hosts that succeeded.
    pub ok: usize,
    /// Hosts that did not (timed out and unreachable ones included).
    pub failed: usize,
    /// Hosts whose command was stopped by the timeout.
    pub timed_out: usize,
    /// Hosts the network never got remex to (dns, connect,
    /// connect_timeout); host-key and authentication failures are counted
    /// in `by_kind` only.
    pub unreachable: usize,
    /// Failed hosts by error kind (`{"exit": 2, "auth": 1}`); kinds with no
    /// host are left out.
    pub by_kind: BTreeMap<ErrorKind, usize>,
    /// Wall time of the whole run.
    pub duration_ms: u64,
}

impl Summary {
    /// Counts over the hosts of a run, given each host's failure (`None`:
    /// it succeeded).
    pub fn tally<'a>(
        failures: impl IntoIterator<Item = Option<&'a Failure>>,
        elapsed: Duration,
    ) -> Summary {
        let mut summary = Summary {
            duration_ms: millis(elapsed),
            ..Summary::default()
        };
        for failure in failures {
            summary.total += 1;
            match failure {
                None => summary.ok += 1,
                Some(failure) => {
                    summary.failed += 1;
                    *summary.by_kind.entry(failure.kind).or_default() += 1;
                    if failure.kind == ErrorKind::Timeout {
                        summary.timed_out += 1;
                    }
                    if failure.kind.is_unreachable() {
                        summary.unreachable += 1;
                    }
                }
            }
        }
        summary
    }
}

/// The run-wide part of a report for operations that have none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NoDetails {}

/// The per-host part of a report for operations that contact no host
/// (`keys generate`, `keys prune`): their `results` are empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NoHost {}

/// The result of one run: the envelope every operation's report shares.
/// `T` is the operation's per-host detail, `D` its run-wide fields.
#[derive(Debug, Clone)]
pub struct RunReport<T, D = NoDetails> {
    /// Which operation ran (its audit name).
    pub operation: Op,
    /// The run id: every audit record of this run carries it.
    pub run_id: String,
    /// What the operation adds beside the results (flattened in JSON).
    pub details: D,
    /// One per selected host, in selection order.
    pub results: Vec<HostReport<T>>,
    /// Counts over `results`.
    pub summary: Summary,
    /// Set when some of the run's audit records could not be written (the
    /// actions happened; the log is missing some of their records).
    pub audit_error: Option<String>,
}

impl<T, D> RunReport<T, D> {
    /// Whether every host succeeded.
    pub fn all_ok(&self) -> bool {
        self.summary.failed == 0
    }

    /// Whether any host was stopped or skipped by a cancel.
    pub fn cancelled(&self) -> bool {
        self.results.iter().any(|r| {
            r.error
                .as_ref()
                .is_some_and(|f| f.kind == ErrorKind::Cancelled)
        })
    }
}

impl<T: Serialize, D: Serialize> Serialize for RunReport<T, D> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a, T, D> {
            version: u32,
            operation: Op,
            run_id: &'a str,
            #[serde(flatten)]
            details: &'a D,
            results: &'a [HostReport<T>],
            summary: &'a Summary,
            #[serde(skip_serializing_if = "Option::is_none")]
            audit_error: Option<&'a str>,
        }
        Wire {
            version: SCHEMA_VERSION,
            operation: self.operation,
            run_id: &self.run_id,
            details: &self.details,
            results: &self.results,
            summary: &self.summary,
            audit_error: self.audit_error.as_deref(),
        }
        .serialize(serializer)
    }
}

/// The envelope of what is not a run and writes no audit record: listings
/// (`hosts list`, `keys list`), the lab's commands, and `audit verify`,
/// `audit tail`, `audit show`. Its JSON is `{"version", "operation", ...}`
/// with the body's fields beside them.
#[derive(Debug, Clone)]
pub struct Listing<T> {
    /// What it lists, e.g. `hosts.list`, `lab.status`.
    pub operation: &'static str,
    /// The content.
    pub body: T,
}

impl<T: Serialize> Serialize for Listing<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a, T> {
            version: u32,
            operation: &'a str,
            #[serde(flatten)]
            body: &'a T,
        }
        Wire {
            version: SCHEMA_VERSION,
            operation: self.operation,
            body: &self.body,
        }
        .serialize(serializer)
    }
}

/// Whole milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Serialize)]
    struct Exit {
        exit_code: Option<u32>,
    }

    fn host(error: Option<Failure>) -> HostReport<Exit> {
        HostReport {
            host: "vm01".into(),
            address: "127.0.0.2".into(),
            port: 22,
            user: "ops".into(),
            duration: Duration::from_millis(7),
            error,
            detail: Exit { exit_code: Some(0) },
        }
    }

    #[test]
    fn a_host_is_the_common_fields_and_its_detail_in_one_object() {
        let json = serde_json::to_value(host(None)).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({"host": "vm01", "address": "127.0.0.2", "port": 22,
                "user": "ops", "ok": true, "duration_ms": 7, "error": null, "exit_code": 0})
        );
    }

    #[test]
    fn the_envelope_counts_classes_and_names_the_operation_as_the_audit_log_does() {
        let results = vec![
            host(None),
            host(Some(Failure::new(ErrorKind::Timeout, "t"))),
            host(Some(Failure::new(ErrorKind::Connect, "c"))),
        ];
        let summary = Summary::tally(
            results.iter().map(|r| r.error.as_ref()),
            Duration::from_secs(1),
        );
        let report = RunReport {
            operation: Op::KeysDeploy,
            run_id: "r1".into(),
            details: NoDetails {},
            results,
            summary,
            audit_error: None,
        };
        assert!(!report.all_ok());
        assert!(!report.cancelled());
        let json = serde_json::to_value(&report).unwrap_or_default();
        assert_eq!(json["version"], 2);
        assert_eq!(json["operation"], "keys.deploy");
        assert_eq!(json["run_id"], "r1");
        assert_eq!(json["summary"]["ok"], 1);
        assert_eq!(json["summary"]["failed"], 2);
        assert_eq!(json["summary"]["timed_out"], 1);
        assert_eq!(json["summary"]["unreachable"], 1);
        assert_eq!(
            json["summary"]["by_kind"],
            serde_json::json!({"connect": 1, "timeout": 1})
        );
        assert_eq!(json["results"][1]["error"]["kind"], "timeout");
        assert!(json.get("audit_error").is_none());
    }

    #[test]
    fn host_key_and_auth_failures_reached_the_host_and_are_counted_by_kind() {
        let failures = [
            Failure::new(ErrorKind::HostKey, "h"),
            Failure::new(ErrorKind::Auth, "a"),
            Failure::new(ErrorKind::Auth, "a"),
            Failure::new(ErrorKind::Dns, "d"),
        ];
        let summary = Summary::tally(failures.iter().map(Some), Duration::ZERO);
        assert_eq!((summary.failed, summary.unreachable), (4, 1));
        let by_kind: Vec<(ErrorKind, usize)> = summary.by_kind.into_iter().collect();
        assert_eq!(
            by_kind,
            [
                (ErrorKind::Dns, 1),
                (ErrorKind::Auth, 2),
                (ErrorKind::HostKey, 1)
            ]
        );
    }

    #[test]
    fn an_observer_sees_the_detail_as_its_own_type() {
        let report = host(None);
        let seen: &HostReport<dyn Detail> = &report;
        let exit = seen.detail.as_any().downcast_ref::<Exit>();
        assert_eq!(exit.and_then(|e| e.exit_code), Some(0));
        assert_eq!(seen.detail.to_json()["exit_code"], 0);
    }
}
