//! [`RequestLog`]: one audit record per API request — allowed or denied —
//! with the token's name (`workflow`), remex's request id (`request`), the
//! client's own `X-Request-Id` (`client_request`), the client's address
//! (`address`), the method and path (`action`) and the answer's HTTP status
//! (`status`). Requests denied before a handler are coalesced
//! (`denied.rs`): their records carry a `count`.
//!
//! A request's record is in the audit log **before** its answer is sent:
//! the guard waits for it. Records go through a channel to one writer
//! thread that appends whatever is waiting as one batch — one write per
//! record, one sync for the batch (group commit) — so many requests share
//! a sync and a crash (`kill -9`) right after an answer loses no record of
//! it. Under `audit.fsync: start` a record is written but not forced to
//! disk, as a run's `end` records are. What a request *does* on hosts is
//! recorded by its run, whose `start` records are on disk before any host
//! is contacted, as for the CLI.
//!
//! When the audit log cannot record, the answer is sent all the same and
//! the failure logged: the request already happened (a job accepted and
//! then answered 503 would be retried as a second job), and whatever it
//! does on a host fails closed on its own `start` records.

use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::mpsc::{self, Sender};

use axum::http::StatusCode;
use tokio::sync::oneshot;

use super::error::ErrorKind;
use crate::audit::{AuditLog, Event, Op, Record};
use crate::error_chain::chain;

/// The most of a request's path a record keeps (a path can be as long as
/// the HTTP head allows).
const MAX_ACTION: usize = 1024;

/// The most records one append takes, so one sync never waits for an
/// unbounded batch.
const MAX_BATCH: usize = 1024;

/// The status recorded for a request whose client hung up before it was
/// answered (nginx's 499): its handler's work may have begun.
pub(crate) const CLIENT_CLOSED: StatusCode = match StatusCode::from_u16(499) {
    Ok(status) => status,
    Err(_) => StatusCode::BAD_REQUEST,
};

/// What a request record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// remex's id of the request.
    pub id: String,
    /// The client's `X-Request-Id`, when it sent a sane one.
    pub client_request: Option<String>,
    /// The token's name, when the request came with a known one.
    pub token: Option<String>,
    /// Method and path.
    pub action: String,
    /// The answer's status.
    pub status: StatusCode,
    /// The client's address (`None`: unknown, or a coalesced record of
    /// many addresses).
    pub client: Option<IpAddr>,
    /// Why it was not answered by a handler: the guard's reason for
    /// denying it (`no_token`, …), or `client_closed`.
    pub reason: Option<&'static str>,
    /// How many requests the record stands for (coalesced denials).
    pub count: Option<u64>,
}

impl Entry {
    /// `action` for a request: the method and the path, cut to
    /// [`MAX_ACTION`] bytes.
    pub(crate) fn action(method: &str, path: &str) -> String {
        let mut end = path.len().min(MAX_ACTION);
        while !path.is_char_boundary(end) {
            end -= 1;
        }
        let cut = if end < path.len() { "…" } else { "" };
        format!("{method} {}{cut}", path.get(..end).unwrap_or_default())
    }

    /// Its audit record.
    fn record(&self) -> Record {
        let mut record = Record::new(Event::Request, Op::Api, self.id.clone())
            .request(self.id.clone())
            .action(self.action.clone())
            .status(self.status.as_u16());
        record.workflow.clone_from(&self.token);
        record.address = self.client.map(|ip| ip.to_string());
        record.client_request.clone_from(&self.client_request);
        record.count = self.count;
        if (self.status.is_client_error() || self.status.is_server_error())
            && self.status != CLIENT_CLOSED
        {
            record = record.error_kind(ErrorKind::of_status(self.status).as_str());
        }
        if let Some(reason) = self.reason {
            record = record.error(reason);
        }
        record
    }
}

/// A record for the writer, and who waits for it.
type Job = (Record, Option<oneshot::Sender<bool>>);

/// The writer of request records.
pub(crate) struct RequestLog {
    /// Feeds the writer thread; `None` once closed.
    sender: Mutex<Option<Sender<Job>>>,
    /// The writer thread.
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl RequestLog {
    /// Starts the writer on `log`.
    pub(crate) fn start(log: AuditLog) -> RequestLog {
        let (sender, receiver) = mpsc::channel::<Job>();
        let writer = std::thread::Builder::new()
            .name("remex-requests".into())
            .spawn(move || {
                while let Ok(first) = receiver.recv() {
                    let mut batch = vec![first];
                    batch.extend(receiver.try_iter().take(MAX_BATCH - 1));
                    let (records, waiting): (Vec<Record>, Vec<_>) = batch.into_iter().unzip();
                    let written = match log.append_all(records) {
                        Ok(_) => true,
                        Err(e) => {
                            tracing::error!(
                                "cannot record API requests in the audit log: {}",
                                chain(&e)
                            );
                            false
                        }
                    };
                    for done in waiting.into_iter().flatten() {
                        let _ = done.send(written);
                    }
                }
            })
            .map_err(|e| tracing::error!("cannot start the request recorder: {e}"))
            .ok();
        RequestLog {
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(writer),
        }
    }

    /// Records `entry`; returns once the record is in the log (`true`), or
    /// could not be written (`false`, logged).
    pub(crate) async fn record(&self, entry: &Entry) -> bool {
        let (done, written) = oneshot::channel();
        if !self.send((entry.record(), Some(done))) {
            return false;
        }
        written.await.unwrap_or(false)
    }

    /// Records `entry` without waiting for it (a request whose answer
    /// will never be sent).
    pub(crate) fn record_later(&self, entry: &Entry) {
        self.send((entry.record(), None));
    }

    /// Hands `record` to the writer; whether it took it.
    fn send(&self, job: Job) -> bool {
        match self.sender.lock() {
            Ok(guard) => guard.as_ref().is_some_and(|s| s.send(job).is_ok()),
            Err(_) => false,
        }
    }

    /// Writes what is waiting and stops the writer.
    pub(crate) fn close(&self) {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        if let Ok(mut writer) = self.writer.lock()
            && let Some(writer) = writer.take()
        {
            let _ = writer.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditConfig, read_records};

    fn entry(id: &str) -> Entry {
        Entry {
            id: id.to_owned(),
            client_request: Some("their-id".to_owned()),
            token: Some("n8n".to_owned()),
            action: Entry::action("GET", "/v1/jobs"),
            status: StatusCode::OK,
            client: "127.0.0.1".parse().ok(),
            reason: None,
            count: None,
        }
    }

    #[test]
    fn long_paths_are_cut_on_a_character_boundary() {
        assert_eq!(Entry::action("GET", "/a"), "GET /a");
        let long = format!("/{}", "é".repeat(MAX_ACTION));
        let action = Entry::action("GET", &long);
        assert!(action.len() <= MAX_ACTION + 8, "{}", action.len());
        assert!(action.ends_with('…'));
    }

    #[test]
    fn the_record_keeps_remex_s_id_and_the_client_s_apart() {
        let record = entry("req-1").record();
        assert_eq!(record.request.as_deref(), Some("req-1"));
        assert_eq!(record.run, "req-1");
        assert_eq!(record.client_request.as_deref(), Some("their-id"));
        assert_eq!(record.address.as_deref(), Some("127.0.0.1"));
        let denied = Entry {
            status: StatusCode::UNAUTHORIZED,
            reason: Some("no_token"),
            count: Some(3),
            ..entry("req-2")
        }
        .record();
        assert_eq!(denied.error_kind.as_deref(), Some("unauthorized"));
        assert_eq!(denied.error.as_deref(), Some("no_token"));
        assert_eq!(denied.count, Some(3));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_record_is_in_the_log_when_record_returns() {
        let dir = crate::test_support::tempdir();
        let config = AuditConfig {
            path: dir.path().join("audit.jsonl"),
            ..AuditConfig::default()
        };
        let log = RequestLog::start(crate::audit::AuditLog::open(&config).unwrap());
        let log = std::sync::Arc::new(log);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..100 {
            let (log, config) = (log.clone(), config.clone());
            tasks.spawn(async move {
                let id = format!("req-{i}");
                assert!(log.record(&entry(&id)).await);
                // In the file at once, whatever else is being written.
                let found = read_records(&config)
                    .unwrap()
                    .filter_map(Result::ok)
                    .any(|s| s.record.request.as_deref() == Some(id.as_str()));
                assert!(found, "{id} is not in the log when record returned");
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        log.close();
    }
}
