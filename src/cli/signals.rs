//! Ctrl-C, SIGTERM and SIGHUP: one input to the run.
//!
//! The first of them cancels the run: remote commands are stopped (the
//! reaper), staged scripts and transfer temp files removed, hosts not yet
//! started skipped, every `end` record written, the report printed, and
//! remex exits with 128 + the signal's number (130, 143, 129). A second one
//! exits at once with that status. SIGTERM is what `timeout`, systemd, CI
//! cancellation and service managers send; SIGHUP what a closed terminal
//! sends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use anyhow::{Context as _, Result};
use remex::{Cancel, CancelHandle};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// Watches for the signals that stop a run, while the run lasts.
pub(crate) struct Interrupts {
    /// The run's cancel signal.
    cancel: Cancel,
    /// The number of the first signal that came (0: none).
    first: Arc<AtomicU8>,
    /// The watcher; stopped when the run is over.
    watcher: tokio::task::JoinHandle<()>,
}

impl Interrupts {
    /// Starts watching; the first signal cancels the run, telling the user
    /// remex is `stopping` something ("stopping remote commands").
    pub(crate) fn watch(stopping: &'static str) -> Result<Interrupts> {
        let (handle, cancel) = Cancel::new();
        let first = Arc::new(AtomicU8::new(0));
        let listen = |kind, name| signal(kind).with_context(|| format!("cannot watch for {name}"));
        let signals = Signals {
            int: listen(SignalKind::interrupt(), "SIGINT")?,
            term: listen(SignalKind::terminate(), "SIGTERM")?,
            hup: listen(SignalKind::hangup(), "SIGHUP")?,
        };
        let watcher = tokio::spawn(watch(signals, handle, first.clone(), stopping));
        Ok(Interrupts {
            cancel,
            first,
            watcher,
        })
    }

    /// The cancel signal to give the run.
    pub(crate) fn cancel(&self) -> Cancel {
        self.cancel.clone()
    }

    /// 128 + the number of the signal that stopped the run, if one did.
    pub(crate) fn exit_code(&self) -> Option<u8> {
        match self.first.load(Ordering::SeqCst) {
            0 => None,
            number => Some(128 + number),
        }
    }
}

impl Drop for Interrupts {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// The signals watched.
struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

async fn watch(mut signals: Signals, handle: CancelHandle, first: Arc<AtomicU8>, stopping: &str) {
    loop {
        let (number, name, again) = tokio::select! {
            _ = signals.int.recv() => (2, "Ctrl-C", "Ctrl-C"),
            _ = signals.term.recv() => (15, "SIGTERM", "SIGTERM"),
            _ = signals.hup.recv() => (1, "SIGHUP", "SIGHUP"),
        };
        if first
            .compare_exchange(0, number, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            eprintln!("remex: interrupted ({name}); {stopping} ({again} again to quit at once)");
            handle.cancel();
        } else {
            std::process::exit(128 + i32::from(first.load(Ordering::SeqCst)));
        }
    }
}
