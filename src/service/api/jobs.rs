//! `/v1/jobs`: listing jobs, one job (`?wait=`), its live events
//! (Server-Sent Events, resumable with `Last-Event-ID`), and cancelling it.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, StreamExt as _};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::{self, error::RecvError};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Params, PathParam, Wait, WaitQuery};
use super::rules::{Cursor, EventId};
use super::submit::waited;
use crate::service::auth::{Caller, Scope};
use crate::service::error::{ApiError, ErrorBody};
use crate::service::state::AppState;
use crate::service::store::{self, EventRecord, JobFilter, JobRecord, JobState, Store};
use crate::service::view::JobView;

/// `GET /v1/jobs`'s filters and page.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only jobs in this state.
    #[param(value_type = Option<JobState>)]
    pub state: Option<String>,
    /// Only this operation (`exec`, `upload`, …).
    pub operation: Option<String>,
    /// Only this token's jobs (an `admin` token may name any; others see
    /// only their own).
    pub actor: Option<String>,
    /// At most this many (1 to 500; default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// The page after this cursor (from the previous page's `next`).
    #[param(value_type = Option<Cursor>)]
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
    responses(
        (status = 200, body = JobPage),
        (status = 403, description = "`actor` names another token, and this one is not `admin`", body = ErrorBody),
    )
)]
pub(crate) async fn list_jobs(
    State(state): State<AppState>,
    caller: Caller,
    Params(query): Params<ListQuery>,
) -> Result<axum::Json<JobPage>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::field(
            "limit",
            format!("limit must be 1 to {MAX_PAGE}"),
        ));
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

/// The most jobs a page holds.
pub(crate) const MAX_PAGE: usize = 500;

/// A cursor `CREATED-ID` (the document's pattern, nothing else).
fn parse_cursor(cursor: &str) -> Result<(i64, String), ApiError> {
    super::rules::matches(super::rules::CURSOR, cursor)
        .then(|| cursor.split_once('-'))
        .flatten()
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
    responses(
        (status = 200, description = "The job (once it ended, or after `wait`)", body = JobView),
        (status = 404, description = "No such job (or another token's)", body = ErrorBody),
    )
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
        (status = 404, description = "No such job (or another token's)", body = ErrorBody),
        (status = 409, description = "The job had ended already", body = ErrorBody),
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
/// an `id`; reconnect with `Last-Event-ID` to resume after it. A reader
/// slower than the job gets every event all the same, in order: what it
/// fell behind on is read from the store.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/events",
    tag = "jobs",
    params(
        ("id" = String, Path, description = "The job id"),
        ResumeHeader
    ),
    responses(
        (status = 200, description = "text/event-stream of the job's events", content_type = "text/event-stream"),
        (status = 400, description = "`Last-Event-ID` is not an event's id", body = ErrorBody),
        (status = 404, description = "No such job (or another token's)", body = ErrorBody),
    )
)]
pub(crate) async fn job_events(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let after = last_event_id(&headers)?;
    let job = visible_job(&state, &caller, &id).await?;
    // Subscribe first, then read the store: an event is either stored
    // before the read or sent after the subscription (see `events.rs`).
    let live = if job.state.is_final() {
        None
    } else {
        state.jobs.subscribe(&id)
    };
    let follow = Follow {
        store: state.store.clone(),
        job: id,
        live,
        last: after,
        queue: VecDeque::new(),
        catching_up: true,
        done: false,
    };
    let events = stream::unfold(follow, Follow::next).map(sse);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// The headers `GET /v1/jobs/{id}/events` reads (the document's; read by
/// [`last_event_id`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct ResumeHeader {
    /// Resume after this event (its `id`); without it, from the start.
    #[param(rename = "Last-Event-ID", value_type = Option<EventId>, nullable = false)]
    last_event_id: Option<u64>,
}

/// `Last-Event-ID`: the event to resume after (0, the start, when it is
/// missing); 400 naming the header when it is not an event's id (digits,
/// at most `i64::MAX`; not empty, which an EventSource never sends),
/// rather than a stream from the start the client did not ask for.
fn last_event_id(headers: &HeaderMap) -> Result<u64, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(0);
    };
    let bad = || {
        ApiError::field(
            "Last-Event-ID",
            "`Last-Event-ID` must be the `id` of an event of this stream (digits)",
        )
    };
    let text = value.to_str().map_err(|_| bad())?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse::<i64>()
        .ok()
        .and_then(|id| u64::try_from(id).ok())
        .ok_or_else(bad)
}

/// Events read from the store at once while catching up.
const PAGE: usize = 1000;

/// A reader of a job's events: from the store until it caught up, then
/// live; back to the store whenever the live channel left it behind (the
/// channel keeps the last 1,024 events: a reader slower than that lags),
/// so it sends every event once, in order, without a gap.
struct Follow {
    /// Where every event is, before it is sent live.
    store: Arc<dyn Store>,
    /// The job.
    job: String,
    /// Its live events, while it runs.
    live: Option<broadcast::Receiver<EventRecord>>,
    /// The last event sent (or `Last-Event-ID`).
    last: u64,
    /// Events read, not sent yet.
    queue: VecDeque<EventRecord>,
    /// Reading the store until it has no more (at first, and after a lag).
    catching_up: bool,
    /// `job_finished` was sent: the stream ends.
    done: bool,
}

impl Follow {
    /// The next event, in order; `None` once the job's last was sent (or
    /// the store failed: the client resumes with `Last-Event-ID`).
    async fn next(mut self) -> Option<(EventRecord, Follow)> {
        loop {
            if self.done {
                return None;
            }
            if let Some(event) = self.queue.pop_front() {
                if event.seq <= self.last {
                    continue;
                }
                self.last = event.seq;
                self.done = event.kind == "job_finished";
                return Some((event, self));
            }
            if self.catching_up {
                let (job, after) = (self.job.clone(), self.last);
                let page =
                    match store::blocking(&self.store, move |s| s.events_after(&job, after, PAGE))
                        .await
                    {
                        Ok(page) => page,
                        Err(e) => {
                            tracing::error!(job = %self.job, "cannot read the job's events: {e}");
                            return None;
                        }
                    };
                self.catching_up = page.len() == PAGE;
                if page.is_empty() && self.live.is_none() {
                    return None;
                }
                self.queue.extend(page);
                continue;
            }
            let live = self.live.as_mut()?;
            match live.recv().await {
                Ok(event) if event.seq <= self.last => {}
                Ok(event) if event.seq == self.last + 1 => self.queue.push_back(event),
                // A gap or a lag: the store has what was missed.
                Ok(_) | Err(RecvError::Lagged(_)) => self.catching_up = true,
                // The job ended: the rest is in the store.
                Err(RecvError::Closed) => {
                    self.live = None;
                    self.catching_up = true;
                }
            }
        }
    }
}

/// A stored event as an SSE event.
fn sse(event: EventRecord) -> Result<Event, Infallible> {
    Ok(Event::default()
        .id(event.seq.to_string())
        .event(event.kind)
        .data(event.data))
}
