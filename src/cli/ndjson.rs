//! `--ndjson`: one JSON line per host as it finishes, then one line for the
//! run — for callers that read results as they come, or cannot hold the
//! whole report at once.
//!
//! A host's line is the object of `--json`'s `results[]`, serialized by the
//! library's own [`HostReport`] (its fields, then the operation's). The
//! last line is the envelope without `results`:
//!
//! ```json
//! {"host":"vm01","address":"127.0.0.2","port":22,"user":"ops","ok":true,"duration_ms":12,"error":null,"exit_code":0,…}
//! {"version":2,"operation":"exec","run_id":"…","summary":{"total":1,"ok":1,…}}
//! ```
//!
//! A reader tells them apart by `host` (a result) and `summary` (the end).
//! An error that stops the run before any host (exit 2) is the one line of
//! an [`super::error_report::ErrorReport`].

use std::sync::Mutex;

use serde::Serialize;

use remex::audit::Op;
use remex::{Detail, HostReport, Observer, RunReport, Summary};

use super::invocation::Invocation;

/// Prints each finished host as one JSON line on stdout.
pub(crate) struct Printer {
    /// Rewrites the commands suggested in error messages.
    invocation: Invocation,
    /// Serialises the lines of host tasks that finish at once.
    lock: Mutex<()>,
}

impl Printer {
    /// A printer whose suggested commands carry `invocation`'s options.
    pub(crate) fn new(invocation: Invocation) -> Self {
        Printer {
            invocation,
            lock: Mutex::new(()),
        }
    }
}

impl Observer for Printer {
    fn done(&self, outcome: &HostReport<dyn Detail>) {
        let mut error = outcome.error.clone();
        if let Some(failure) = &mut error {
            failure.message = self.invocation.rewrite(&failure.message).into_owned();
        }
        let line = HostReport {
            host: outcome.host.clone(),
            address: outcome.address.clone(),
            port: outcome.port,
            user: outcome.user.clone(),
            duration: outcome.duration,
            error,
            detail: outcome.detail.to_json(),
        };
        let _guard = self.lock.lock();
        // A closed stdout is not worth failing a host over; the run's end
        // line reports the write error.
        let _ = super::print_json(&line);
    }
}

/// The last line: the run's envelope without `results`.
#[derive(Debug, Serialize)]
pub(crate) struct End<'a, D> {
    /// The schema version.
    version: u32,
    /// The operation (its audit name).
    operation: Op,
    /// The run id.
    run_id: &'a str,
    /// The operation's run-wide fields (`script` for `script`).
    #[serde(flatten)]
    details: &'a D,
    /// Counts over the hosts.
    summary: &'a Summary,
    /// Set when some audit records could not be written.
    #[serde(skip_serializing_if = "Option::is_none")]
    audit_error: Option<&'a str>,
}

impl<'a, D> End<'a, D> {
    /// The end line of `report`.
    pub(crate) fn of<T>(report: &'a RunReport<T, D>) -> Self {
        End {
            version: remex::SCHEMA_VERSION,
            operation: report.operation,
            run_id: &report.run_id,
            details: &report.details,
            summary: &report.summary,
            audit_error: report.audit_error.as_deref(),
        }
    }
}
