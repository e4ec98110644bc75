//! [`Jobs`]: runs accepted by the API, each on the service's one
//! [`Executor`], recorded in the store from the moment they are accepted.
//!
//! A job's life: `queued` (in the store before the answer goes out) →
//! `running` → `succeeded` / `failed` (some host failed) / `cancelled` /
//! `error` (it could not start). A job still under way when the service
//! dies is `interrupted` at the next start: never silently lost.
//!
//! While it runs, a job's events (`host_started`, `output`,
//! `host_finished`, `job_finished`) are numbered, written to the store in
//! batches, and only then sent to live listeners — so a listener that
//! reads the store after subscribing misses nothing, and `Last-Event-ID`
//! resumes from the store.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{broadcast, mpsc, watch};

use super::store::{self, EventRecord, JobRecord, JobState, Store};
use crate::run::{
    Cancel, CancelHandle, Detail, Error as RunError, Executor, HostReport, Observer, RunContext,
    RunReport, Stream,
};

/// What a finished run leaves: its report as JSON, and how it went.
#[derive(Debug, Clone)]
pub(crate) struct Finished {
    /// The report (the CLI's `--json` document).
    pub report: serde_json::Value,
    /// Whether every host succeeded.
    pub all_ok: bool,
    /// Whether a cancel stopped or skipped some host.
    pub cancelled: bool,
}

impl Finished {
    /// How `report` went.
    pub(super) fn of<T: Serialize, D: Serialize>(report: &RunReport<T, D>) -> Finished {
        Finished {
            report: serde_json::to_value(report).unwrap_or_default(),
            all_ok: report.all_ok(),
            cancelled: report.cancelled(),
        }
    }
}

/// A job's work: an `Executor` call under the job's context.
pub(crate) type Work = Box<
    dyn FnOnce(
            Executor,
            RunContext,
        ) -> Pin<Box<dyn Future<Output = Result<Finished, RunError>> + Send>>
        + Send,
>;

/// What the API hands over to start a job.
pub(crate) struct Submission {
    /// The record to store (state `queued`).
    pub record: JobRecord,
    /// Hosts worked on at once, if the request says.
    pub parallel: Option<usize>,
    /// Secrets of the request, redacted everywhere.
    pub secrets: Vec<String>,
    /// The work.
    pub work: Work,
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
    /// Woken when a job ends (for the shutdown's wait).
    ended: tokio::sync::Notify,
    /// Delivers finished reports to `callback_url`s.
    callbacks: super::callbacks::Callbacks,
    /// Counts jobs as they end.
    metrics: Arc<super::metrics::Metrics>,
}

impl Jobs {
    /// Jobs on `executor`, kept in `store`.
    pub(crate) fn new(
        executor: Executor,
        store: Arc<dyn Store>,
        max_output: usize,
        callbacks: super::callbacks::Callbacks,
        metrics: Arc<super::metrics::Metrics>,
    ) -> Jobs {
        Jobs {
            executor,
            store,
            live: Mutex::new(HashMap::new()),
            per_token: Mutex::new(HashMap::new()),
            closing: AtomicBool::new(false),
            max_output,
            ended: tokio::sync::Notify::new(),
            callbacks,
            metrics,
        }
    }

    /// The store.
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
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
    pub(crate) async fn submit(
        self: &Arc<Self>,
        submission: Submission,
    ) -> Result<JobRecord, super::error::ApiError> {
        let Submission {
            record,
            parallel,
            secrets,
            work,
        } = submission;
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
        let job = record.clone();
        tokio::spawn(async move {
            this.run(job, live, cancel, parallel, secrets, work).await;
        });
        Ok(record)
    }

    /// Runs one job to its end.
    async fn run(
        self: Arc<Self>,
        mut job: JobRecord,
        live: Arc<Live>,
        cancel: Cancel,
        parallel: Option<usize>,
        secrets: Vec<String>,
        work: Work,
    ) {
        let (sender, writer) = self.event_writer(&job.id, live.events.clone());
        job.state = JobState::Running;
        job.started_ms = Some(now_ms());
        self.save(&job).await;
        let observer = Arc::new(JobObserver {
            events: sender.clone(),
            max_output: self.max_output,
            kept: Mutex::new(HashMap::new()),
        });
        let mut ctx = RunContext::new()
            .actor(job.token.clone())
            .request_id(job.id.clone())
            .cancel(cancel.clone())
            .observer(observer);
        ctx.run_id = Some(job.id.clone());
        ctx.parallel = parallel;
        ctx.secrets = secrets;
        let outcome = work(self.executor.clone(), ctx).await;
        match outcome {
            Ok(finished) => {
                job.state = if finished.cancelled || cancel.is_cancelled() {
                    JobState::Cancelled
                } else if finished.all_ok {
                    JobState::Succeeded
                } else {
                    JobState::Failed
                };
                job.report = Some(finished.report.to_string());
            }
            Err(e) => {
                job.state = JobState::Error;
                job.error = Some(format!("{:#}", anyhow::Error::from(e)));
            }
        }
        job.finished_ms = Some(now_ms());
        let took = job.finished_ms.unwrap_or_default() - job.started_ms.unwrap_or_default();
        self.metrics.job(
            job.state.as_str(),
            Duration::from_millis(u64::try_from(took).unwrap_or(0)),
        );
        let summary = job
            .report
            .as_deref()
            .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok())
            .map(|r| r["summary"].clone());
        let end = JobFinished {
            job_id: job.id.clone(),
            state: job.state,
            summary,
            error: job.error.clone(),
        };
        let _ = sender.send(("job_finished", to_json(&end)));
        drop(sender);
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
        self.ended.notify_waiters();
    }

    /// Writes a job's record, logging (not failing) when the store refuses.
    async fn save(&self, job: &JobRecord) {
        let record = job.clone();
        if let Err(e) = store::blocking(&self.store, move |s| s.update_job(&record)).await {
            tracing::error!(job = %job.id, "cannot record the job's state: {e}");
        }
    }

    /// The task that numbers, stores and then broadcasts a job's events.
    fn event_writer(
        &self,
        job: &str,
        live: broadcast::Sender<EventRecord>,
    ) -> (EventSender, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<(&'static str, serde_json::Value)>();
        let (store, job) = (self.store.clone(), job.to_owned());
        let writer = tokio::spawn(async move {
            let seq = AtomicU64::new(0);
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                }
                let records: Vec<EventRecord> = batch
                    .into_iter()
                    .map(|(kind, data)| EventRecord {
                        job: job.clone(),
                        seq: seq.fetch_add(1, Ordering::SeqCst) + 1,
                        kind: kind.to_owned(),
                        data: data.to_string(),
                    })
                    .collect();
                let stored = records.clone();
                if let Err(e) = store::blocking(&store, move |s| s.append_events(&stored)).await {
                    tracing::error!(%job, "cannot record the job's events: {e}");
                }
                for record in records {
                    let _ = live.send(record);
                }
            }
        });
        (tx, writer)
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
    /// waits until every one has ended (and written its records).
    pub(crate) async fn shutdown(&self, cancel: bool) {
        self.closing.store(true, Ordering::SeqCst);
        if cancel {
            for live in lock(&self.live).values() {
                live.cancel.cancel();
            }
        }
        loop {
            let ended = self.ended.notified();
            if lock(&self.live).is_empty() {
                break;
            }
            ended.await;
        }
        self.callbacks.drain().await;
    }
}

/// `host_started`: work on a host begins.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct HostStarted {
    /// The host.
    pub host: String,
}

/// `output`: a line of a command's output (or, past
/// `service.limits.max_output`, one event saying the rest is cut).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Output {
    /// The host.
    pub host: String,
    /// `stdout` or `stderr`.
    pub stream: &'static str,
    /// The line, without its newline (invalid UTF-8 replaced).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
    /// Set once: the rest of this stream is not sent.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// `job_finished`: the last event of a job.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct JobFinished {
    /// The job.
    pub job_id: String,
    /// How it ended.
    pub state: JobState,
    /// The report's counts.
    #[schema(value_type = Option<Object>)]
    pub summary: Option<serde_json::Value>,
    /// Why it could not run.
    pub error: Option<String>,
}

/// `value` as JSON.
fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

/// Sends an event (kind, data) to a job's writer.
type EventSender = mpsc::UnboundedSender<(&'static str, serde_json::Value)>;

/// Turns what a run reports as it happens into the job's events.
struct JobObserver {
    events: EventSender,
    /// Output kept per stream per host in events.
    max_output: usize,
    /// Output bytes sent so far per (host, stream).
    kept: Mutex<HashMap<(String, &'static str), usize>>,
}

impl Observer for JobObserver {
    fn started(&self, host: &str) {
        let event = HostStarted {
            host: host.to_owned(),
        };
        let _ = self.events.send(("host_started", to_json(&event)));
    }

    fn line(&self, host: &str, stream: Stream, line: &[u8]) {
        let stream = match stream {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        };
        let mut kept = lock(&self.kept);
        let sent = kept.entry((host.to_owned(), stream)).or_default();
        if *sent >= self.max_output {
            return;
        }
        *sent += line.len() + 1;
        let truncated = *sent > self.max_output;
        let event = Output {
            host: host.to_owned(),
            stream,
            line: (!truncated).then(|| String::from_utf8_lossy(line).into_owned()),
            truncated,
        };
        let _ = self.events.send(("output", to_json(&event)));
    }

    fn done(&self, host: &HostReport<dyn Detail>) {
        let mut data = host.detail.to_json();
        if let Some(fields) = data.as_object_mut() {
            // The output came as `output` events.
            for field in ["stdout", "stderr", "stdout_base64", "stderr_base64"] {
                fields.remove(field);
            }
            fields.insert("host".into(), host.host.clone().into());
            fields.insert("ok".into(), host.ok().into());
            fields.insert(
                "duration_ms".into(),
                crate::run::report::millis(host.duration).into(),
            );
            fields.insert(
                "error".into(),
                serde_json::to_value(&host.error).unwrap_or_default(),
            );
        }
        let _ = self.events.send(("host_finished", data));
    }
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> i64 {
    crate::audit::system_to_ms(std::time::SystemTime::now())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
