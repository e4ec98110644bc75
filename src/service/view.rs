//! [`JobView`]: a job as the API shows it — in answers, in listings and in
//! callbacks. No I/O: a view is made from a stored [`JobRecord`].

use serde::Serialize;
use utoipa::ToSchema;

use super::store::{JobRecord, JobState};
use crate::audit::format_ms;

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct JobView {
    /// Its id: also the `run_id` of its report and audit records.
    pub job_id: String,
    /// `queued`, `running`, `succeeded`, `failed` (some host failed),
    /// `cancelled`, `interrupted` (the service stopped meanwhile) or
    /// `error` (it could not start).
    pub state: JobState,
    /// `exec`, `script`, `upload`, `download`, `check`, `keys.deploy`, …
    pub operation: String,
    /// The selector it runs on.
    pub targets: String,
    /// The token that submitted it.
    pub actor: String,
    /// The id of the request that created it (`X-Request-Id` of that
    /// answer; the `request` of its audit records).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// When it was accepted (UTC, RFC 3339).
    pub created: String,
    /// When it started.
    pub started: Option<String>,
    /// When it ended.
    pub finished: Option<String>,
    /// The report's counts, once it ended.
    #[schema(value_type = Option<Object>)]
    pub summary: Option<serde_json::Value>,
    /// The report (the CLI's `--json` document: `results` per host), once
    /// it ended.
    #[schema(value_type = Option<Object>)]
    pub report: Option<serde_json::Value>,
    /// Why it could not run, or what an interruption left unknown.
    pub error: Option<String>,
    /// How the callback goes, if the job has one: `pending` (or `pending:
    /// attempt N of M failed: …`), then `delivered` or `failed after M
    /// attempts: HTTP 500` / `…: no answer` — never what the receiver said.
    pub callback: Option<String>,
    /// Where to follow it.
    pub links: Links,
}

/// Links of a job.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Links {
    /// `GET` the job (`?wait=30s` to wait for its end).
    #[serde(rename = "self")]
    pub this: String,
    /// `GET` its live events (Server-Sent Events).
    pub events: String,
    /// `POST` to cancel it.
    pub cancel: String,
}

impl JobView {
    /// The view of `job`, with its report once it has one.
    pub(crate) fn of(job: &JobRecord) -> JobView {
        let report: Option<serde_json::Value> = job
            .report
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok());
        let base = format!("/v1/jobs/{}", job.id);
        JobView {
            job_id: job.id.clone(),
            state: job.state,
            operation: job.operation.clone(),
            targets: job.targets.clone(),
            actor: job.token.clone(),
            request_id: job.request_id.clone(),
            created: format_ms(job.created_ms),
            started: job.started_ms.map(format_ms),
            finished: job.finished_ms.map(format_ms),
            summary: report.as_ref().and_then(|r| r.get("summary").cloned()),
            report,
            error: job.error.clone(),
            callback: job.callback_state.clone(),
            links: Links {
                this: base.clone(),
                events: format!("{base}/events"),
                cancel: format!("{base}/cancel"),
            },
        }
    }

    /// The view without the report (listings: get each job for it).
    pub(crate) fn without_report(self) -> JobView {
        JobView {
            report: None,
            ..self
        }
    }
}
