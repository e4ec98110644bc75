//! The one path from a request to a job: [`submit`] checks the token's
//! scope, builds the [`Work`], resolves the hosts once (within the
//! token's targets), makes the job's record (the request kept with its
//! secrets replaced), answers a retry with its first job, holds the
//! token's limit of jobs, starts the job and answers — every handler that
//! starts a job calls it with its [`JobRequest`].

use std::time::Duration;

use axum::extract::{FromRequest, FromRequestParts as _, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest as _, Sha256};

use super::extract::{JsonBody, RequestId, Wait};
use crate::audit::Redactor;
use crate::service::auth::{Caller, Scope};
use crate::service::error::ApiError;
use crate::service::jobs::{NewJob, Work, now_ms};
use crate::service::state::{AppState, Shared};
use crate::service::store::{self, JobRecord, JobState};
use crate::service::view::JobView;
use crate::targets::Selection;

/// The most of a request a job record keeps (64 KiB); a larger one is
/// replaced by a note.
const KEPT_REQUEST: usize = 64 * 1024;

/// A request body that becomes a job.
pub(crate) trait JobRequest: Serialize + Clone {
    /// The scope a token needs for it.
    fn scope(&self) -> Scope;

    /// The selector it runs on.
    fn targets(&self) -> &str;

    /// What it runs, as this service allows it; 400 naming the field when
    /// it cannot run. Checked before any host is selected.
    fn work(&self, state: &Shared) -> Result<Work, ApiError>;

    /// The key that makes a retry of it return the first job.
    fn idempotency_key(&self) -> Option<&str> {
        None
    }

    /// Where to POST the finished job.
    fn callback_url(&self) -> Option<&str> {
        None
    }

    /// Hosts worked on at once, if the request says.
    fn parallel(&self) -> Option<usize> {
        None
    }

    /// A copy fit to keep in the job's record: secrets replaced.
    fn redacted(&self) -> Self {
        self.clone()
    }
}

/// A request for a job, as a handler receives it: the caller, the
/// request's id, `?wait=` and the JSON body. A handler that starts a job
/// is then one line: `call.submit().await`.
pub(crate) struct JobCall<R> {
    /// The service.
    state: AppState,
    /// Who asks.
    caller: Caller,
    /// The request's id.
    request_id: RequestId,
    /// How long to wait for the job.
    wait: Wait,
    /// The body.
    request: R,
}

impl<R: JobRequest + DeserializeOwned> FromRequest<AppState> for JobCall<R> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let caller = Caller::from_request_parts(&mut parts, state).await?;
        let request_id = RequestId::from_request_parts(&mut parts, state).await?;
        let wait = Wait::from_request_parts(&mut parts, state).await?;
        let JsonBody(request) =
            JsonBody::<R>::from_request(Request::from_parts(parts, body), state).await?;
        Ok(JobCall {
            state: state.clone(),
            caller,
            request_id,
            wait,
            request,
        })
    }
}

impl<R: JobRequest> JobCall<R> {
    /// Starts the job and answers (see [`submit`]).
    pub(crate) async fn submit(self) -> Result<Response, ApiError> {
        submit(
            &self.state,
            &self.caller,
            &self.request_id,
            self.wait,
            &self.request,
        )
        .await
    }
}

/// Starts `request` as a job of `caller` and answers, after waiting up to
/// `wait` for it: 200 with the report once it ended, else 202 with the job.
pub(crate) async fn submit<R: JobRequest>(
    state: &AppState,
    caller: &Caller,
    request_id: &RequestId,
    wait: Wait,
    request: &R,
) -> Result<Response, ApiError> {
    caller.require(request.scope())?;
    let work = request.work(state)?;
    if let Some(url) = request.callback_url() {
        state.jobs.callbacks().check(url)?;
    }
    let hosts = caller.reach(&state.executor, request.targets())?;
    let mut record = record(caller, &work, &hosts, request, state.executor.redactor())?;
    record.request_id = Some(request_id.0.clone());
    tracing::debug!(request = %request_id.0, job = %record.id, "new {} job", record.operation);
    if let Some(existing) = same_request(state, &record).await? {
        return answer(state, existing, wait).await;
    }
    let limit = state.config.limits.jobs_per_token as usize;
    if state.jobs.running_for(&caller.token.name) >= limit {
        return Err(ApiError::rate_limited(format!(
            "token `{}` has {limit} jobs under way (service.limits.jobs_per_token); wait for one to end",
            caller.token.name
        )));
    }
    let job = NewJob {
        record,
        work,
        hosts,
        parallel: request.parallel(),
    };
    let job = state.jobs.submit(job).await?;
    answer(state, job, wait).await
}

/// The record of a new job: `queued`, the request kept without its
/// secrets (its own, then every string through `redactor`, the config's
/// patterns — as the audit log keeps it), the hash of the request as sent
/// (a retry is told from a conflict by it).
fn record<R: JobRequest>(
    caller: &Caller,
    work: &Work,
    hosts: &Selection,
    request: &R,
    redactor: &Redactor,
) -> Result<JobRecord, ApiError> {
    let sent = serde_json::to_string(request).unwrap_or_default();
    let request_hash = hex::encode(Sha256::digest(sent.as_bytes()));
    let mut kept = serde_json::to_value(request.redacted()).unwrap_or_default();
    redact_strings(&mut kept, redactor);
    let mut kept = kept.to_string();
    if kept.len() > KEPT_REQUEST {
        kept = r#"{"note":"the request was larger than 64 KiB; not kept"}"#.to_owned();
    }
    let callback_url = request.callback_url().map(str::to_owned);
    Ok(JobRecord {
        id: crate::audit::new_run_id(),
        token: caller.token.name.clone(),
        operation: work.op().as_str().to_owned(),
        targets: hosts.selector().to_owned(),
        state: JobState::Queued,
        request: kept,
        report: None,
        error: None,
        created_ms: now_ms(),
        started_ms: None,
        finished_ms: None,
        idempotency_key: request.idempotency_key().map(str::to_owned),
        request_hash,
        callback_url,
        callback_state: None,
        request_id: None,
    })
}

/// Every string in `value` (object keys aside: they are names) with the
/// secrets `redactor` knows replaced — one string at a time, and an array
/// of strings as an argv (the word after `--password` too), as the audit
/// log redacts a command.
fn redact_strings(value: &mut serde_json::Value, redactor: &Redactor) {
    match value {
        serde_json::Value::String(text) => {
            if let std::borrow::Cow::Owned(redacted) = redactor.redact(text) {
                *text = redacted;
            }
        }
        serde_json::Value::Array(items) => {
            let words: Option<Vec<String>> = items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect();
            match words {
                Some(words) => {
                    *items = redactor
                        .redact_argv(&words)
                        .into_iter()
                        .map(serde_json::Value::String)
                        .collect();
                }
                None => {
                    for item in items {
                        redact_strings(item, redactor);
                    }
                }
            }
        }
        serde_json::Value::Object(fields) => {
            for field in fields.values_mut() {
                redact_strings(field, redactor);
            }
        }
        _ => {}
    }
}

/// The job a retry of `record`'s request (same token, same idempotency
/// key) refers to; 409 when the key was used with another body.
async fn same_request(state: &AppState, record: &JobRecord) -> Result<Option<JobRecord>, ApiError> {
    let Some(key) = record.idempotency_key.clone() else {
        return Ok(None);
    };
    let token = record.token.clone();
    let existing = store::blocking(&state.store, move |s| s.job_by_key(&token, &key)).await?;
    match existing {
        Some(job) if job.request_hash == record.request_hash => Ok(Some(job)),
        Some(job) => Err(ApiError::conflict(format!(
            "idempotency key `{}` was used for job {} with another request; use a new key",
            record.idempotency_key.as_deref().unwrap_or_default(),
            job.id
        ))),
        None => Ok(None),
    }
}

/// The answer for a job after waiting up to `wait`: 200 with the report
/// (or, when it has none, the job) once it ended, else 202 with the job
/// and a `Location`.
async fn answer(state: &AppState, job: JobRecord, Wait(wait): Wait) -> Result<Response, ApiError> {
    let job = waited(state, job, wait).await?;
    let view = JobView::of(&job);
    if !job.state.is_final() {
        let location = view.links.this.clone();
        let mut response = (StatusCode::ACCEPTED, axum::Json(view)).into_response();
        if let Ok(value) = location.parse() {
            response.headers_mut().insert(header::LOCATION, value);
        }
        return Ok(response);
    }
    Ok(match view.report {
        Some(report) => (StatusCode::OK, axum::Json(report)).into_response(),
        None => (StatusCode::OK, axum::Json(view)).into_response(),
    })
}

/// `job` once it ended, or as it stands after `wait`.
pub(crate) async fn waited(
    state: &AppState,
    job: JobRecord,
    wait: Duration,
) -> Result<JobRecord, ApiError> {
    if job.state.is_final() || wait.is_zero() {
        return Ok(job);
    }
    Ok(state.jobs.wait(&job.id, wait).await?.unwrap_or(job))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_request_is_redacted_like_the_audit_log() {
        let redactor = Redactor::new(&[r"(tok_[a-z0-9]+)".to_owned()], Vec::new())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut kept = serde_json::json!({
            "targets": "all",
            "command": ["mysql", "--password", "hunter2", "password=s3cret", "-e", "select 1"],
            "raw": "curl -H 'x: tok_abc123'",
            "env": {"URL": "https://u:password=pw1@h", "PLAIN": "visible"},
            "script": {"args": ["tok_zzz9", 5]},
            "pty": true,
        });
        redact_strings(&mut kept, &redactor);
        let text = kept.to_string();
        for secret in ["hunter2", "s3cret", "tok_abc123", "pw1", "tok_zzz9"] {
            assert!(!text.contains(secret), "{secret}: {text}");
        }
        for kept_word in ["mysql", "--password", "select 1", "visible", "\"pty\":true"] {
            assert!(text.contains(kept_word), "{kept_word}: {text}");
        }
        assert_eq!(kept["script"]["args"][1], 5);
    }
}
