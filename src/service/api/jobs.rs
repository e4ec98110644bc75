//! `/v1/jobs`: listing jobs, one job (`?wait=`), its live events
//! (Server-Sent Events, resumable with `Last-Event-ID`), and cancelling it.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt as _};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Params, PathParam, Wait, WaitQuery};
use super::submit::waited;
use crate::service::auth::{Caller, Scope};
use crate::service::error::ApiError;
use crate::service::state::AppState;
use crate::service::store::{self, EventRecord, JobFilter, JobRecord, JobState};
use crate::service::view::JobView;

/// `GET /v1/jobs`'s filters and page.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only jobs in this state.
    pub state: Option<String>,
    /// Only this operation (`exec`, `upload`, …).
    pub operation: Option<String>,
    /// Only this token's jobs (an `admin` token may name any; others see
    /// only their own).
    pub actor: Option<String>,
    /// At most this many (1 to 500; default 50).
    pub limit: Option<usize>,
    /// The page after this cursor (from the previous page's `next`).
    pub cursor: Option<String>,
}

/// A page of jobs.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JobPage {
    /// The jobs, newest first (without their reports: get each job for it).
    pub jobs: Vec<JobView>,
    /// The next page, when there may be one.
    pub next: Option<String>,
}

/// Lists jobs, newest first.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    tag = "jobs",
    params(ListQuery),
    responses((status = 200, body = JobPage), (status = 400, body = crate::service::error::ErrorBody))
)]
pub(crate) async fn list_jobs(
    State(state): State<AppState>,
    caller: Caller,
    Params(query): Params<ListQuery>,
) -> Result<axum::Json<JobPage>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "limit must be 1 to 500"));
    }
    let job_state = match &query.state {
        Some(name) => Some(JobState::parse(name).ok_or_else(|| {
            ApiError::field(
                "state",
                format!("`{name}` is not a job state (queued, running, succeeded, failed, cancelled, interrupted, error)"),
            )
        })?),
        None => None,
    };
    let actor = if caller.has(Scope::Admin) {
        query.actor.clone()
    } else {
        if query
            .actor
            .as_ref()
            .is_some_and(|a| *a != caller.token.name)
        {
            return Err(ApiError::forbidden(format!(
                "token `{}` sees only its own jobs (an admin token sees all)",
                caller.token.name
            )));
        }
        Some(caller.token.name.clone())
    };
    let before = match &query.cursor {
        Some(cursor) => Some(parse_cursor(cursor)?),
        None => None,
    };
    let filter = JobFilter {
        state: job_state,
        operation: query.operation.clone(),
        actor,
        before,
        limit,
    };
    let jobs = store::blocking(&state.store, move |s| s.jobs(&filter)).await?;
    let next = (jobs.len() == limit)
        .then(|| jobs.last())
        .flatten()
        .map(|last| {
            let mut link = format!(
                "/v1/jobs?limit={limit}&cursor={}-{}",
                last.created_ms, last.id
            );
            for (name, value) in [
                ("state", &query.state),
                ("operation", &query.operation),
                ("actor", &query.actor),
            ] {
                if let Some(value) = value {
                    link.push_str(&format!("&{name}={value}"));
                }
            }
            link
        });
    let jobs = jobs
        .iter()
        .map(|j| JobView::of(j).without_report())
        .collect();
    Ok(axum::Json(JobPage { jobs, next }))
}

/// A cursor `CREATED-ID`.
fn parse_cursor(cursor: &str) -> Result<(i64, String), ApiError> {
    cursor
        .split_once('-')
        .and_then(|(ms, id)| Some((ms.parse().ok()?, id.to_owned())))
        .ok_or_else(|| ApiError::field("cursor", "not a cursor from a `next` link"))
}

/// A job the caller may see: its own, or any for `admin`; 404 otherwise
/// (another token's job is not told apart from a missing one).
async fn visible_job(state: &AppState, caller: &Caller, id: &str) -> Result<JobRecord, ApiError> {
    let key = id.to_owned();
    let job = store::blocking(&state.store, move |s| s.job(&key)).await?;
    match job {
        Some(job) if job.token == caller.token.name || caller.has(Scope::Admin) => Ok(job),
        _ => Err(ApiError::not_found(format!("no job `{id}`"))),
    }
}

/// One job: its state, summary and report (`?wait=` for its end).
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    params(("id" = String, Path, description = "The job id"), WaitQuery),
    responses((status = 200, body = JobView), (status = 404, body = crate::service::error::ErrorBody))
)]
pub(crate) async fn get_job(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<String>,
    Wait(wait): Wait,
) -> Result<axum::Json<JobView>, ApiError> {
    let job = visible_job(&state, &caller, &id).await?;
    let job = waited(&state, job, wait).await?;
    Ok(axum::Json(JobView::of(&job)))
}

/// Cancels a job: its remote commands are stopped as Ctrl-C stops them.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/cancel",
    tag = "jobs",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 202, description = "Cancelling: follow the job to its end", body = JobView),
        (status = 409, description = "The job had ended already", body = crate::service::error::ErrorBody),
        (status = 404, body = crate::service::error::ErrorBody)
    )
)]
pub(crate) async fn cancel_job(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<String>,
) -> Result<Response, ApiError> {
    let job = visible_job(&state, &caller, &id).await?;
    if job.state.is_final() || !state.jobs.cancel(&id) {
        return Err(ApiError::conflict(format!(
            "job {id} has ended ({}); nothing to cancel",
            job.state.as_str()
        )));
    }
    Ok((StatusCode::ACCEPTED, axum::Json(JobView::of(&job))).into_response())
}

/// A job's events as Server-Sent Events: `host_started`, `output`,
/// `host_finished`, then `job_finished` (the stream ends there). Each has
/// an `id`; reconnect with `Last-Event-ID` to resume after it.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/events",
    tag = "jobs",
    params(
        ("id" = String, Path, description = "The job id"),
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this event")
    ),
    responses((status = 200, description = "text/event-stream of the job's events", content_type = "text/event-stream"))
)]
pub(crate) async fn job_events(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let job = visible_job(&state, &caller, &id).await?;
    let after: u64 = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    // Subscribe first, then read the store: an event is either stored
    // before the read or sent after the subscription (see `jobs.rs`).
    let live = if job.state.is_final() {
        None
    } else {
        state.jobs.subscribe(&id)
    };
    let key = id.clone();
    let stored = store::blocking(&state.store, move |s| s.events_after(&key, after)).await?;
    let mut last = stored.last().map_or(after, |e| e.seq);
    let ended = stored.iter().any(|e| e.kind == "job_finished");
    let history = stream::iter(stored.into_iter().map(sse));
    let rest = match live {
        Some(receiver) if !ended => {
            let live = tokio_stream::wrappers::BroadcastStream::new(receiver)
                .filter_map(move |event| {
                    let keep = match event {
                        Ok(event) if event.seq > last => {
                            last = event.seq;
                            Some(event)
                        }
                        _ => None,
                    };
                    async move { keep }
                })
                .scan(false, |done, event| {
                    // Stop after `job_finished`.
                    if *done {
                        return std::future::ready(None);
                    }
                    *done = event.kind == "job_finished";
                    std::future::ready(Some(event))
                })
                .map(sse);
            live.boxed()
        }
        _ => stream::empty().boxed(),
    };
    let events: std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>> =
        Box::pin(history.chain(rest));
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// A stored event as an SSE event.
fn sse(event: EventRecord) -> Result<Event, Infallible> {
    Ok(Event::default()
        .id(event.seq.to_string())
        .event(event.kind)
        .data(event.data))
}
