//! [`RequestLog`]: one audit record per API request — allowed or denied —
//! with the token's name (`workflow`), the request id (`request`), the
//! method and path (`action`) and the answer's HTTP status (`status`).
//!
//! Records go through a channel to one writer thread that appends whatever
//! is waiting as one batch (one sync for many requests), so a request never
//! waits for the disk for its own record. What a request *does* on hosts is
//! recorded by its run, whose `start` records are on disk before any host
//! is contacted, as for the CLI.

use std::sync::Mutex;
use std::sync::mpsc::{self, Sender};

use axum::http::StatusCode;

use super::error::ErrorKind;
use crate::audit::{AuditLog, Event, Op, Record};
use crate::error_chain::chain;

/// The writer of request records.
pub(crate) struct RequestLog {
    /// Feeds the writer thread; `None` once closed.
    sender: Mutex<Option<Sender<Record>>>,
    /// The writer thread.
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl RequestLog {
    /// Starts the writer on `log`.
    pub(crate) fn start(log: AuditLog) -> RequestLog {
        let (sender, receiver) = mpsc::channel::<Record>();
        let writer = std::thread::Builder::new()
            .name("remex-requests".into())
            .spawn(move || {
                while let Ok(first) = receiver.recv() {
                    let mut batch = vec![first];
                    batch.extend(receiver.try_iter());
                    if let Err(e) = log.append_all(batch) {
                        tracing::error!(
                            "cannot record API requests in the audit log: {}",
                            chain(&e)
                        );
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

    /// Records request `id` (`action`: method and path) of token `token`
    /// (`None`: no valid token), answered with `status`.
    pub(crate) fn record(&self, token: Option<String>, id: &str, action: &str, status: StatusCode) {
        let mut record = Record::new(Event::Request, Op::Api, id)
            .request(id)
            .action(action)
            .status(status.as_u16());
        record.workflow = token;
        if status.is_client_error() || status.is_server_error() {
            record = record.error_kind(ErrorKind::of_status(status).as_str());
        }
        if let Ok(guard) = self.sender.lock()
            && let Some(sender) = guard.as_ref()
        {
            let _ = sender.send(record);
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
