//! [`Jobs`]: runs accepted by the API, each on the service's one
//! [`Executor`], recorded in the store from the moment they are accepted.
//!
//! A job's life: `queued` (in the store before the answer goes out) →
//! `running` → `succeeded` / `failed` (some host failed) / `cancelled` /
//! `error` (it could not start). A job still under way when the service
//! dies is `interrupted` at the next start: never silently lost.
//!
//! - `work.rs` — [`Work`]: what a job runs, and the one place that calls
//!   the executor for it.
//! - `events.rs` — the job's events, numbered, stored, then sent live.

mod events;
mod work;

pub(crate) use events::{HostStarted, JobFinished, Output};
pub(crate) use work::Work;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio_util::task::TaskTracker;

use super::callbacks::Callbacks;
use super::error::ApiError;
use super::metrics::Metrics;
use super::store::{self, EventRecord, JobRecord, JobState, Store};
use crate::error_chain::chain;
use crate::run::{Cancel, CancelHandle, Executor, RunContext};
use crate::targets::Selection;

/// A job to start: its record (state `queued`) and what it runs.
pub(crate) struct NewJob {
    /// The record to store.
    pub record: JobRecord,
    /// What it runs.
    pub work: Work,
    /// The hosts it runs on, as authorized.
    pub hosts: Selection,
    /// Hosts worked on at once, if the request says.
    pub parallel: Option<usize>,
}

/// A job under way.
struct Live {
    /// Stops it.
    cancel: CancelHandle,
    /// Its events, after they are stored.
    events: broadcast::Sender<EventRecord>,
    /// Its final record, once it ends.
    done: watch::Sender<Option<JobRecord>>,
}

/// The jobs of the service.
pub(crate) struct Jobs {
    /// Runs every job.
    executor: Executor,
    /// Where jobs and events are kept.
    store: Arc<dyn Store>,
    /// Jobs under way, by id.
    live: Mutex<HashMap<String, Arc<Live>>>,
    /// Jobs under way per token, for `jobs_per_token`.
    per_token: Mutex<HashMap<String, usize>>,
    /// Set once a shutdown began: no new job is accepted.
    closing: AtomicBool,
    /// Output kept per stream per host in events.
    max_output: usize,
    /// Every job's task, so a shutdown can wait for them all.
    tasks: TaskTracker,
    /// Delivers finished reports to `callback_url`s.
    callbacks: Callbacks,
    /// Counts jobs as they end.
    metrics: Arc<Metrics>,
}

impl Jobs {
    /// Jobs on `executor`, kept in `store`.
    pub(crate) fn new(
        executor: Executor,
        store: Arc<dyn Store>,
        max_output: usize,
        callbacks: Callbacks,
        metrics: Arc<Metrics>,
    ) -> Jobs {
        Jobs {
            executor,
            store,
            live: Mutex::new(HashMap::new()),
            per_token: Mutex::new(HashMap::new()),
            closing: AtomicBool::new(false),
            max_output,
            tasks: TaskTracker::new(),
            callbacks,
            metrics,
        }
    }

    /// The store.
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The callbacks' deliveries (and where they may go).
    pub(crate) fn callbacks(&self) -> &Callbacks {
        &self.callbacks
    }

    /// Whether a shutdown began.
    pub(crate) fn closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Jobs of `token` under way.
    pub(crate) fn running_for(&self, token: &str) -> usize {
        lock(&self.per_token).get(token).copied().unwrap_or(0)
    }

    /// Jobs under way.
    pub(crate) fn running(&self) -> usize {
        lock(&self.live).len()
    }

    /// Stores the job as `queued` and starts it. Returns once it is in the
    /// store.
    pub(crate) async fn submit(self: &Arc<Self>, job: NewJob) -> Result<JobRecord, ApiError> {
        if self.closing() {
            return Err(ApiError::unavailable(
                "the service is shutting down; try again when it is back",
            ));
        }
        let record = job.record.clone();
        let stored = record.clone();
        store::blocking(&self.store, move |s| s.insert_job(&stored)).await?;
        let (cancel_handle, cancel) = Cancel::new();
        let (events, _) = broadcast::channel(1024);
        let (done, _) = watch::channel(None);
        let live = Arc::new(Live {
            cancel: cancel_handle,
            events,
            done,
        });
        lock(&self.live).insert(record.id.clone(), live.clone());
        *lock(&self.per_token)
            .entry(record.token.clone())
            .or_default() += 1;
        let this = self.clone();
        self.tasks
            .spawn(async move { this.run(job, live, cancel).await });
        Ok(record)
    }

    /// Runs one job to its end.
    async fn run(self: Arc<Self>, job: NewJob, live: Arc<Live>, cancel: Cancel) {
        let NewJob {
            record: mut job,
            work,
            hosts,
            parallel,
        } = job;
        let (events, writer) = events::writer(self.store.clone(), &job.id, live.events.clone());
        job.state = JobState::Running;
        job.started_ms = Some(now_ms());
        self.save(&job).await;
        let observer = events::JobObserver::new(events.clone(), self.max_output);
        let mut ctx = RunContext::new()
            .actor(job.token.clone())
            .request_id(job.request_id.clone().unwrap_or_else(|| job.id.clone()))
            .cancel(cancel.clone())
            .observer(Arc::new(observer));
        ctx.run_id = Some(job.id.clone());
        ctx.parallel = parallel;
        let mut summary = None;
        match work.run(&self.executor, &ctx, &hosts).await {
            Ok(finished) => {
                job.state = if finished.cancelled || cancel.is_cancelled() {
                    JobState::Cancelled
                } else if finished.all_ok {
                    JobState::Succeeded
                } else {
                    JobState::Failed
                };
                job.report = Some(finished.report);
                summary = Some(finished.summary);
            }
            Err(e) => {
                job.state = JobState::Error;
                job.error = Some(chain(&e));
            }
        }
        job.finished_ms = Some(now_ms());
        let took = job.finished_ms.unwrap_or_default() - job.started_ms.unwrap_or_default();
        self.metrics.job(
            job.state.as_str(),
            Duration::from_millis(u64::try_from(took).unwrap_or(0)),
        );
        let end = JobFinished {
            job_id: job.id.clone(),
            state: job.state,
            summary,
            error: job.error.clone(),
        };
        events.send("job_finished", &end);
        drop(events);
        drop(ctx);
        let _ = writer.await;
        self.save(&job).await;
        lock(&self.live).remove(&job.id);
        if let Some(count) = lock(&self.per_token).get_mut(&job.token) {
            *count = count.saturating_sub(1);
        }
        if job.callback_url.is_some() {
            self.callbacks.deliver(self.store.clone(), job.clone());
        }
        let _ = live.done.send(Some(job));
    }

    /// Writes a job's record, logging (not failing) when the store refuses.
    async fn save(&self, job: &JobRecord) {
        let record = job.clone();
        if let Err(e) = store::blocking(&self.store, move |s| s.update_job(&record)).await {
            tracing::error!(job = %job.id, "cannot record the job's state: {e}");
        }
    }

    /// Cancels job `id`; whether it was under way.
    pub(crate) fn cancel(&self, id: &str) -> bool {
        match lock(&self.live).get(id) {
            Some(live) => {
                live.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Job `id` as it stands, waiting up to `wait` for it to end.
    pub(crate) async fn wait(
        &self,
        id: &str,
        wait: Duration,
    ) -> Result<Option<JobRecord>, store::StoreError> {
        let live = lock(&self.live).get(id).cloned();
        if let Some(live) = live
            && !wait.is_zero()
        {
            let mut done = live.done.subscribe();
            let ended = tokio::time::timeout(wait, done.wait_for(Option::is_some)).await;
            if let Ok(Ok(record)) = ended
                && let Some(record) = record.clone()
            {
                return Ok(Some(record));
            }
        }
        let id = id.to_owned();
        store::blocking(&self.store, move |s| s.job(&id)).await
    }

    /// A live subscription to job `id`'s events, if it is under way.
    pub(crate) fn subscribe(&self, id: &str) -> Option<broadcast::Receiver<EventRecord>> {
        lock(&self.live).get(id).map(|live| live.events.subscribe())
    }

    /// Stops accepting jobs; cancels those under way when `cancel`, then
    /// waits until every one has ended (and written its records), and for
    /// the callbacks under way.
    pub(crate) async fn shutdown(&self, cancel: bool) {
        self.closing.store(true, Ordering::SeqCst);
        if cancel {
            for live in lock(&self.live).values() {
                live.cancel.cancel();
            }
        }
        self.tasks.close();
        self.tasks.wait().await;
        self.callbacks.drain().await;
    }
}

/// Marks every job a stopped service left `queued` or `running` as
/// `interrupted` (at start-up, after a crash, once [`stop_interrupted`]
/// stopped what was left of them), and ends its events as a finished
/// job's end.
pub(crate) fn interrupt_unfinished(store: &dyn Store) -> Result<(), store::StoreError> {
    for job in store.interrupt_unfinished(now_ms())? {
        tracing::warn!(job = %job.id, "job was under way when the service stopped: marked interrupted");
        end_events(
            store,
            &job.id,
            "the service stopped while the job was under way".to_owned(),
        );
    }
    Ok(())
}

/// Ends job `id`'s events with its `job_finished` as `interrupted`.
fn end_events(store: &dyn Store, id: &str, error: String) {
    let next = store
        .events_after(id, 0, usize::MAX)
        .map(|events| events.last().map_or(1, |e| e.seq + 1))
        .unwrap_or(1);
    let end = JobFinished {
        job_id: id.to_owned(),
        state: JobState::Interrupted,
        summary: None,
        error: Some(error),
    };
    let event = EventRecord {
        job: id.to_owned(),
        seq: next,
        kind: "job_finished".into(),
        data: serde_json::to_string(&end).unwrap_or_default(),
    };
    if let Err(e) = store.append_events(&[event]) {
        tracing::error!(job = %id, "cannot end its events: {e}");
    }
}

/// At start-up, before anything is marked `interrupted`: for every `exec`
/// and `script` job a crash left `running`, stops what is left of its
/// remote processes on every host it may have reached — the hosts of its
/// `host_started` events and those its selector selects now — found by
/// the job's id, which is its run id (`Executor::stop_run`, audited as
/// `exec.stop` records of that run); then marks it `interrupted`, saying
/// what was stopped where. The other jobs are left to
/// [`interrupt_unfinished`].
pub(crate) async fn stop_interrupted(
    executor: &Executor,
    store: &Arc<dyn Store>,
) -> Result<(), store::StoreError> {
    let filter = store::JobFilter {
        state: Some(JobState::Running),
        limit: usize::MAX >> 1,
        ..store::JobFilter::default()
    };
    let running = store::blocking(store, move |s| s.jobs(&filter)).await?;
    let stopping = running
        .into_iter()
        .filter(|job| matches!(job.operation.as_str(), "exec" | "script"))
        .map(|job| async move {
            let id = job.id.clone();
            let hosts = store::blocking(store, move |s| s.events_after(&id, 0, usize::MAX))
                .await
                .map(|events| reached(executor, &job, &events))
                .unwrap_or_default();
            let note = stop_one(executor, &job, hosts).await;
            (job, note)
        });
    for (mut job, note) in futures_util::future::join_all(stopping).await {
        tracing::warn!(job = %job.id, "job was under way when the service stopped: {note}; marked interrupted");
        job.state = JobState::Interrupted;
        job.finished_ms = Some(now_ms());
        job.error = Some(format!(
            "the service stopped while the job was under way; {note}"
        ));
        let error = job.error.clone().unwrap_or_default();
        store::blocking(store, move |s| {
            s.update_job(&job)?;
            end_events(s, &job.id, error);
            Ok(())
        })
        .await?;
    }
    Ok(())
}

/// The hosts `job` may have reached, in inventory order: those its events
/// say it started on, and those its selector selects now (a host's
/// `host_started` event may not have been stored before the crash).
fn reached(executor: &Executor, job: &JobRecord, events: &[EventRecord]) -> Vec<String> {
    let started: std::collections::HashSet<String> = events
        .iter()
        .filter(|event| event.kind == "host_started")
        .filter_map(|event| serde_json::from_str::<serde_json::Value>(&event.data).ok())
        .filter_map(|data| data["host"].as_str().map(str::to_owned))
        .collect();
    let selected = executor
        .select(&job.targets)
        .map(|selection| selection.hosts().to_vec())
        .unwrap_or_default();
    executor
        .config()
        .vms
        .keys()
        .filter(|name| started.contains(*name) || selected.contains(name))
        .cloned()
        .collect()
}

/// Stops what is left of `job` on `hosts`; what was done, for its record.
async fn stop_one(executor: &Executor, job: &JobRecord, hosts: Vec<String>) -> String {
    if hosts.is_empty() {
        return "it had reached no host".to_owned();
    }
    let sudo_user = crate::exec::RunRequest::from_json(job.request.as_bytes())
        .ok()
        .and_then(|request| request.sudo)
        .map(|sudo| sudo.user.unwrap_or_else(|| "root".to_owned()));
    let mut ctx = RunContext::new().actor(job.token.clone());
    ctx.run_id = Some(job.id.clone());
    let report = match executor
        .stop_run(&ctx, hosts.join(",").as_str(), sudo_user)
        .await
    {
        Ok(report) => report,
        Err(e) => return format!("remex could not stop its remote processes: {}", chain(&e)),
    };
    let each: Vec<String> = report
        .results
        .iter()
        .map(|host| match &host.error {
            None => match host.detail.processes {
                0 => format!("{} (none was left)", host.host),
                n => format!("{} ({n} processes)", host.host),
            },
            Some(failure) => format!("{} (could not stop them: {})", host.host, failure.message),
        })
        .collect();
    format!(
        "at the next start remex stopped what was left of its remote processes: {} (audit: `exec.stop` records of run {})",
        each.join(", "),
        job.id
    )
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> i64 {
    crate::audit::system_to_ms(std::time::SystemTime::now())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
