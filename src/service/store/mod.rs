//! The service's store: tokens, jobs, their events (the live output a
//! client can resume), and idempotency keys.
//!
//! [`Store`] is the contract; [`sqlite::Sqlite`] (an embedded file, WAL, one
//! writer) is the default and the only backend so far. A backend for
//! several orchestrators (Postgres) implements the same trait.
//!
//! Every method is blocking: callers on async threads go through
//! [`blocking`]. Times are milliseconds since the Unix epoch.

mod lock;
pub(crate) mod sqlite;

pub(crate) use lock::StoreLock;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened, read or written.
    #[error("the service store {path}: {message}")]
    Db {
        /// The store's file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A unique value exists already (a token name).
    #[error("{0} exists already")]
    Exists(String),
    /// No such thing.
    #[error("no {0}")]
    NotFound(String),
    /// Another `remex serve` holds the store.
    #[error(
        "the service store {path} is in use by {holder}; one `remex serve` per store \
         (stop that one first, or give this one another `service.store`)"
    )]
    InUse {
        /// The store's file.
        path: String,
        /// Who holds it (`remex serve, pid 4242 on host01, since …`).
        holder: String,
    },
}

/// A token as the store keeps it: never the token itself, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    /// Its unique name: the actor of everything done with it.
    pub name: String,
    /// Hex SHA-256 of the token.
    #[serde(skip)]
    pub hash: String,
    /// What it may do (`exec`, `files:read`, …, `admin`).
    pub scopes: Vec<String>,
    /// The hosts it may reach: a selector (`web,!db01`; `all`).
    pub targets: String,
    /// When it was made.
    pub created_ms: i64,
    /// When it stops working, if ever.
    pub expires_ms: Option<i64>,
    /// When it was revoked, if it was.
    pub revoked_ms: Option<i64>,
    /// The key that signs this token's callbacks (HMAC-SHA256).
    #[serde(skip)]
    pub callback_secret: String,
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Accepted, not started yet.
    Queued,
    /// Running on its hosts.
    Running,
    /// Finished; every host succeeded.
    Succeeded,
    /// Finished; some host failed (see the report).
    Failed,
    /// Stopped by a cancel request or the service's shutdown.
    Cancelled,
    /// The service stopped while it ran (a crash, `kill -9`): what is
    /// known is kept, the rest is lost.
    Interrupted,
    /// It could not start (the audit log could not record it, …).
    Error,
}

impl JobState {
    /// The name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Interrupted => "interrupted",
            JobState::Error => "error",
        }
    }

    /// The state named `name`.
    pub fn parse(name: &str) -> Option<JobState> {
        [
            JobState::Queued,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Cancelled,
            JobState::Interrupted,
            JobState::Error,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }

    /// Whether the job is over.
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

/// One job: a run submitted through the API.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// Its id, which is also the run id of its audit records.
    pub id: String,
    /// The name of the token that submitted it.
    pub token: String,
    /// The operation (`exec`, `script`, `upload`, …).
    pub operation: String,
    /// The selector it ran on.
    pub targets: String,
    /// Where it stands.
    pub state: JobState,
    /// The request as submitted (JSON, secrets removed).
    pub request: String,
    /// The report (JSON, the CLI's `--json` document) once finished.
    pub report: Option<String>,
    /// Why it could not run, for `error`; what happened, for `interrupted`.
    pub error: Option<String>,
    /// When it was accepted, started and finished.
    pub created_ms: i64,
    /// When it started running.
    pub started_ms: Option<i64>,
    /// When it ended.
    pub finished_ms: Option<i64>,
    /// The idempotency key it was submitted with.
    pub idempotency_key: Option<String>,
    /// Hex SHA-256 of the request body, to tell a retry from a conflict.
    pub request_hash: String,
    /// Where to POST the finished report.
    pub callback_url: Option<String>,
    /// How the callback went: `None` or `pending…` while it is not
    /// settled, then `delivered` or `failed…`.
    pub callback_state: Option<String>,
    /// The id of the API request that created it (its `request` audit
    /// record's, and the `request` of its run's records).
    pub request_id: Option<String>,
}

/// One event of a job, in order: what the live stream sends and a client
/// resumes from (`Last-Event-ID` is `seq`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// The job.
    pub job: String,
    /// Its place in the job's events, from 1.
    pub seq: u64,
    /// `host_started`, `output`, `host_finished`, `job_finished`.
    pub kind: String,
    /// The event's JSON.
    pub data: String,
}

/// Which jobs to list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only this operation.
    pub operation: Option<String>,
    /// Only this token's (its name: the actor).
    pub actor: Option<String>,
    /// Only jobs before this cursor (`created_ms`, `id`), newest first.
    pub before: Option<(i64, String)>,
    /// At most this many.
    pub limit: usize,
}

/// The store's contract. Implementations are shared by every request.
pub trait Store: Send + Sync {
    /// Adds a token; [`StoreError::Exists`] when the name is taken.
    fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError>;
    /// The token whose SHA-256 is `hash`.
    fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// Every token, by name.
    fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;
    /// Marks token `name` revoked at `at_ms`; [`StoreError::NotFound`].
    fn revoke_token(&self, name: &str, at_ms: i64) -> Result<(), StoreError>;

    /// Adds a job.
    fn insert_job(&self, job: &JobRecord) -> Result<(), StoreError>;
    /// Replaces a job's record (its state, report, times).
    fn update_job(&self, job: &JobRecord) -> Result<(), StoreError>;
    /// Job `id`.
    fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError>;
    /// The jobs `filter` selects, newest first.
    fn jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>, StoreError>;
    /// The job token `token` submitted with idempotency key `key`.
    fn job_by_key(&self, token: &str, key: &str) -> Result<Option<JobRecord>, StoreError>;
    /// Marks every queued or running job `interrupted` (at start-up, after
    /// a crash); returns them.
    fn interrupt_unfinished(&self, at_ms: i64) -> Result<Vec<JobRecord>, StoreError>;
    /// Deletes jobs (and their events) that finished before `before_ms`;
    /// how many.
    fn sweep(&self, before_ms: i64) -> Result<usize, StoreError>;

    /// Sets job `id`'s `callback_state`.
    fn set_callback_state(&self, id: &str, state: &str) -> Result<(), StoreError>;
    /// The finished jobs whose callback is not settled (its state `None`
    /// or `pending…`): what a stopped service left to deliver.
    fn pending_callbacks(&self) -> Result<Vec<JobRecord>, StoreError>;

    /// Appends events (in one transaction).
    fn append_events(&self, events: &[EventRecord]) -> Result<(), StoreError>;
    /// Job `job`'s events after `after` (0: all), in order, at most
    /// `limit` of them.
    fn events_after(
        &self,
        job: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError>;
}

/// Runs a store call on a blocking thread.
pub(crate) async fn blocking<T, F>(store: &Arc<dyn Store>, call: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
{
    let store = store.clone();
    tokio::task::spawn_blocking(move || call(&*store))
        .await
        .map_err(|e| StoreError::Db {
            path: String::new(),
            message: e.to_string(),
        })?
}
