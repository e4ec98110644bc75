//! What a caller reading `--json` (or `--ndjson`) gets when remex stops
//! before it has a report (exit status 2): one JSON document on stdout,
//! in the envelope of every other document.
//!
//! ```json
//! {"version":2,"operation":"exec","error":{"kind":"usage","message":"…"}}
//! ```
//!
//! `operation` is the name the command's report would have had (`exec`,
//! `check`, `keys.deploy`, …), or `null` when the command line named none.
//! `kind` is one of `usage` (the command line or a `--request` is wrong, or
//! the library refused the request), `config`, `targets` (the selector
//! selects nothing usable), `known_hosts`, `keys`, `audit` (the audit log
//! cannot record the run, so nothing ran), a failure kind of the report
//! schema for `keys generate` and `keys prune` (which contact no host), or
//! `error` (anything else).

use serde::Serialize;

/// A usage problem the CLI itself found (beyond what clap checks): exit 2,
/// `kind: usage`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Usage(pub String);

/// The document printed on stdout for an error that stops remex.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorReport<'a> {
    /// The schema version, as in every report.
    version: u32,
    /// The operation the command line asked for, as its report names it.
    operation: Option<&'a str>,
    /// What went wrong.
    error: ErrorBody<'a>,
}

/// `error` of an [`ErrorReport`].
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    /// The class, for scripts (see the module docs).
    kind: &'static str,
    /// The message remex printed on stderr, without `remex: error: `.
    message: &'a str,
}

impl<'a> ErrorReport<'a> {
    /// An error of `kind` while running `operation`.
    pub(crate) fn new(operation: Option<&'a str>, kind: &'static str, message: &'a str) -> Self {
        ErrorReport {
            version: remex::SCHEMA_VERSION,
            operation,
            error: ErrorBody { kind, message },
        }
    }
}

/// The `kind` of an error that stopped a command.
pub(crate) fn kind_of(error: &anyhow::Error) -> &'static str {
    if error.downcast_ref::<Usage>().is_some() {
        return "usage";
    }
    if error.downcast_ref::<remex::config::ConfigError>().is_some() {
        return "config";
    }
    if error
        .downcast_ref::<remex::targets::TargetError>()
        .is_some()
    {
        return "targets";
    }
    if error.downcast_ref::<remex::KnownHostsError>().is_some() {
        return "known_hosts";
    }
    match error.downcast_ref::<remex::Error>() {
        Some(remex::Error::Config(_)) => "config",
        Some(remex::Error::Targets(_)) => "targets",
        Some(remex::Error::KnownHosts(_)) => "known_hosts",
        Some(remex::Error::Invalid(_) | remex::Error::Request(_)) => "usage",
        Some(remex::Error::Keys(_)) => "keys",
        Some(remex::Error::Audit(_)) => "audit",
        Some(remex::Error::Failed(failure)) => failure.kind.as_str(),
        _ => "error",
    }
}
