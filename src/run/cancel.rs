//! [`Cancel`]: the one way to stop a run early. The CLI fires it on Ctrl-C,
//! SIGTERM and SIGHUP; a service fires it when a job is cancelled or the
//! service shuts down.
//!
//! A cancelled run stops its remote commands like a timeout does (the
//! reaper), removes staged scripts and transfer temp files, skips hosts not
//! yet started (`cancelled`, "interrupted before this host was
//! contacted"), and still writes every host's `end` record.

/// The receiving side: passed into a run ([`crate::RunContext::cancel`]).
#[derive(Clone, Debug)]
pub struct Cancel(tokio::sync::watch::Receiver<bool>);

/// The sending side of a [`Cancel`].
#[derive(Debug)]
pub struct CancelHandle(tokio::sync::watch::Sender<bool>);

impl Cancel {
    /// A new cancel signal and its handle.
    pub fn new() -> (CancelHandle, Cancel) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (CancelHandle(tx), Cancel(rx))
    }

    /// Whether the run was cancelled.
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when the run is cancelled (never, if the handle is dropped
    /// without cancelling).
    pub async fn cancelled(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|cancelled| *cancelled).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl CancelHandle {
    /// Cancels the run.
    pub fn cancel(&self) {
        let _ = self.0.send(true);
    }

    /// Whether [`CancelHandle::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }
}

/// `Some(cancel)`'s [`Cancel::cancelled`], or never for `None`.
pub(crate) async fn cancelled(cancel: Option<&Cancel>) {
    match cancel {
        Some(cancel) => cancel.cancelled().await,
        None => std::future::pending().await,
    }
}

/// Whether `cancel` is set and fired.
pub(crate) fn is_cancelled(cancel: Option<&Cancel>) -> bool {
    cancel.is_some_and(Cancel::is_cancelled)
}
