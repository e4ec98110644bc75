//! A job's events — `host_started`, `output`, `host_finished`,
//! `job_finished` — their JSON, the [`Observer`] that turns a run into
//! them, and the writer that numbers them, stores them and only then sends
//! them to live listeners (so a listener that reads the store after
//! subscribing misses nothing, and `Last-Event-ID` resumes from the store).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use crate::exec::ExecResult;
use crate::run::report::millis;
use crate::run::{Detail, Failure, HostReport, Observer, Stream, Summary};
use crate::service::store::{self, EventRecord, JobState, Store};

/// `host_started`: work on a host begins.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct HostStarted {
    /// The host.
    pub host: String,
}

/// `output`: a line of a command's output (or, past
/// `service.limits.max_output`, one event saying the rest is cut). A line
/// longer than 64 KiB comes in pieces of at most 64 KiB, each but the last
/// with `cut: true`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Output {
    /// The host.
    pub host: String,
    /// `stdout` or `stderr`.
    pub stream: &'static str,
    /// The line, without its newline (invalid UTF-8 replaced).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
    /// Set on a piece of a line longer than 64 KiB: the line goes on in
    /// the next `output` event of this stream.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cut: bool,
    /// Set once: the rest of this stream is not sent.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// `host_finished`: a host's result, as in the report's `results`, but
/// without the output (it came as `output` events).
#[derive(Debug, Serialize)]
struct HostFinished<'a, D: Serialize> {
    /// The operation's own fields.
    #[serde(flatten)]
    detail: D,
    /// The host.
    host: &'a str,
    /// Whether it succeeded.
    ok: bool,
    /// How long its work took.
    duration_ms: u64,
    /// Why it failed.
    error: Option<&'a Failure>,
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
    pub summary: Option<Summary>,
    /// Why it could not run.
    pub error: Option<String>,
}

/// An event on its way to the writer: its kind and JSON.
type Event = (&'static str, String);

/// Sends a job's events to its writer.
#[derive(Clone)]
pub(crate) struct EventSender(mpsc::UnboundedSender<Event>);

impl EventSender {
    /// Sends an event of `kind`.
    pub(crate) fn send<T: Serialize>(&self, kind: &'static str, data: &T) {
        let json = serde_json::to_string(data).unwrap_or_default();
        let _ = self.0.send((kind, json));
    }
}

/// Starts the task that numbers, stores and then broadcasts job `job`'s
/// events; it ends once every sender is dropped.
pub(crate) fn writer(
    store: Arc<dyn Store>,
    job: &str,
    live: broadcast::Sender<EventRecord>,
) -> (EventSender, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let job = job.to_owned();
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
                    data,
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
    (EventSender(tx), writer)
}

/// Turns what a run reports as it happens into the job's events.
pub(crate) struct JobObserver {
    /// Where the events go.
    events: EventSender,
    /// Output kept per stream per host in events.
    max_output: usize,
    /// Output bytes sent so far per (host, stream).
    kept: Mutex<HashMap<(String, &'static str), usize>>,
}

impl JobObserver {
    /// An observer sending to `events`, at most `max_output` bytes of
    /// output per stream per host.
    pub(crate) fn new(events: EventSender, max_output: usize) -> JobObserver {
        JobObserver {
            events,
            max_output,
            kept: Mutex::new(HashMap::new()),
        }
    }
}

impl Observer for JobObserver {
    fn started(&self, host: &str) {
        let event = HostStarted {
            host: host.to_owned(),
        };
        self.events.send("host_started", &event);
    }

    fn line(&self, host: &str, stream: Stream, line: &[u8]) {
        self.output(host, stream, line, false);
    }

    fn line_cut(&self, host: &str, stream: Stream, piece: &[u8]) {
        self.output(host, stream, piece, true);
    }

    /// Until `max_output` bytes of the stream were sent.
    fn wants_lines(&self, host: &str, stream: Stream) -> bool {
        let stream = stream_name(stream);
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.get(&(host.to_owned(), stream))
            .is_none_or(|sent| *sent < self.max_output)
    }

    fn done(&self, host: &HostReport<dyn Detail>) {
        match host.detail.as_any().downcast_ref::<ExecResult>() {
            Some(exec) => self.finished(host, exec.outcome()),
            None => self.finished(host, host.detail.to_json()),
        }
    }
}

/// `stdout` or `stderr`, as events name a stream.
fn stream_name(stream: Stream) -> &'static str {
    match stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    }
}

impl JobObserver {
    /// Sends an `output` event of a line (or, `cut`, a piece of one),
    /// until `max_output` bytes of the stream were sent.
    fn output(&self, host: &str, stream: Stream, line: &[u8], cut: bool) {
        let stream = stream_name(stream);
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let sent = kept.entry((host.to_owned(), stream)).or_default();
        if *sent >= self.max_output {
            return;
        }
        *sent += line.len() + usize::from(!cut);
        let truncated = *sent > self.max_output;
        let event = Output {
            host: host.to_owned(),
            stream,
            line: (!truncated).then(|| String::from_utf8_lossy(line).into_owned()),
            cut: cut && !truncated,
            truncated,
        };
        self.events.send("output", &event);
    }

    /// Sends `host_finished` for `host`, with `detail` as its own fields.
    fn finished<D: Serialize>(&self, host: &HostReport<dyn Detail>, detail: D) {
        let event = HostFinished {
            detail,
            host: &host.host,
            ok: host.ok(),
            duration_ms: millis(host.duration),
            error: host.error.as_ref(),
        };
        self.events.send("host_finished", &event);
    }
}
