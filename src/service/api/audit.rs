//! `/v1/audit`: reading and verifying the audit log.
//!
//! Reading needs `audit:read` and shows only what the token's targets
//! cover: the records of hosts within them. Records of no host (the
//! service's request records, local key operations) and of hosts outside
//! are shown to `admin` alone.
//!
//! Verifying needs `admin`: the hash chain links every record, of every
//! host and every request, so its verdict — and where a break is, with the
//! file, line and what it found there — speaks of records a token limited
//! to some hosts may not read, and a verdict over only its own records
//! would prove nothing (the chain cannot be checked with links missing).

use std::time::SystemTime;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::Params;
use super::rules::Time;
use crate::audit::{self, Filter, Record, VerifyReport};
use crate::error_chain::chain;
use crate::service::auth::{Caller, Scope};
use crate::service::error::{ApiError, ErrorBody};
use crate::service::state::AppState;

/// `GET /v1/audit`'s filters (as `remex audit show`'s).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// The host, with `*`/`?` wildcards.
    pub host: Option<String>,
    /// The operation (`exec`, `keys.deploy`), or a family (`keys`).
    pub op: Option<String>,
    /// At or after this time (RFC 3339, a date, or `1h`/`2d` ago).
    #[param(value_type = Option<Time>)]
    pub since: Option<String>,
    /// Before this time.
    #[param(value_type = Option<Time>)]
    pub until: Option<String>,
    /// Only `end` records of failures.
    pub failed: Option<bool>,
    /// One run's (one job's) records.
    pub run: Option<String>,
    /// The newest this many (1 to 10000; default 1000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<usize>,
}

/// The most records an answer holds.
pub(crate) const MAX_RECORDS: usize = 10_000;

/// Audit records.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditRecords {
    /// Oldest first.
    #[schema(value_type = Vec<Object>)]
    pub records: Vec<Record>,
    /// Whether older matching records were left out (`limit`).
    pub truncated: bool,
}

/// Audit records, filtered: those of the hosts within the token's targets
/// (`admin`: every record).
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses(
        (status = 200, body = AuditRecords),
        (status = 403, description = "The token lacks the scope `audit:read`", body = ErrorBody),
    ))]
pub(crate) async fn list_records(
    State(state): State<AppState>,
    caller: Caller,
    Params(query): Params<AuditQuery>,
) -> Result<axum::Json<AuditRecords>, ApiError> {
    caller.require(Scope::AuditRead)?;
    // `None`: every record (admin); else the hosts it may read.
    let readable: Option<std::collections::HashSet<String>> = if caller.has(Scope::Admin) {
        None
    } else {
        Some(
            caller
                .allowed(&state.executor)
                .map(|allowed| allowed.hosts().iter().cloned().collect())
                .unwrap_or_default(),
        )
    };
    let limit = query.limit.unwrap_or(1000);
    if !(1..=MAX_RECORDS).contains(&limit) {
        return Err(ApiError::field(
            "limit",
            format!("limit must be 1 to {MAX_RECORDS}"),
        ));
    }
    let now = SystemTime::now();
    let time = |field: &str, text: &Option<String>| {
        text.as_deref()
            .map(|t| audit::parse_time(t, now))
            .transpose()
            .map_err(|e| ApiError::field(field, e.to_string()))
    };
    let filter = Filter {
        host: query.host.clone(),
        op: query.op.clone(),
        since: time("since", &query.since)?,
        until: time("until", &query.until)?,
        failed_only: query.failed.unwrap_or(false),
        run: query.run.clone(),
    };
    let config = state.executor.config().audit.clone();
    let found = tokio::task::spawn_blocking(move || {
        let mut records: std::collections::VecDeque<Record> = std::collections::VecDeque::new();
        let mut truncated = false;
        for stored in audit::read_records(&config)? {
            let Ok(stored) = stored else { continue };
            let visible = match (&readable, &stored.record.host) {
                (None, _) => true,
                (Some(hosts), Some(host)) => hosts.contains(host),
                (Some(_), None) => false,
            };
            if visible && filter.matches(&stored.record) {
                records.push_back(stored.record);
                if records.len() > limit {
                    records.pop_front();
                    truncated = true;
                }
            }
        }
        Ok::<_, audit::AuditError>((records.into(), truncated))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(chain(&e)))?;
    Ok(axum::Json(AuditRecords {
        records: found.0,
        truncated: found.1,
    }))
}

/// `POST /v1/audit/verify`'s answer: the verification report, and whether
/// the chain is intact.
#[derive(Debug, Serialize)]
pub(crate) struct Verified {
    /// What `remex audit verify --json` reports.
    #[serde(flatten)]
    pub report: VerifyReport,
    /// Whether the chain is intact.
    pub ok: bool,
}

/// [`Verified`] as the document shows it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct Verification {
    /// Whether the chain is intact.
    ok: bool,
    /// The files walked, in order.
    files: Vec<String>,
    /// Records found intact, before the break if there is one.
    records: u64,
    /// `seq` of the last intact record (0: none).
    last_seq: u64,
    /// Whether hashes were checked as HMACs.
    keyed: bool,
    /// `seq` the head file names, when it was read.
    head_seq: Option<u64>,
    /// The first break, if any.
    #[schema(value_type = Option<Object>)]
    broken: Option<()>,
    /// Findings that are not tampering.
    #[schema(value_type = Vec<Object>)]
    notes: Vec<()>,
}

/// Checks the audit log's hash chain (as `remex audit verify`); `admin`
/// only: the chain spans every host's records.
#[utoipa::path(post, path = "/v1/audit/verify", tag = "audit",
    responses(
        (status = 200, description = "The verification report (as `remex --json audit verify`); `ok` says whether the chain is intact", body = Verification),
        (status = 403, description = "The token is not `admin`", body = ErrorBody)
    ))]
pub(crate) async fn verify_log(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Verified>, ApiError> {
    caller.require(Scope::Admin)?;
    let config = state.executor.config().audit.clone();
    let report = tokio::task::spawn_blocking(move || audit::verify(&config))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(chain(&e)))?;
    Ok(axum::Json(Verified {
        ok: report.ok(),
        report,
    }))
}
