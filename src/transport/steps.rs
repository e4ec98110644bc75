//! What `-v` shows of a connection: each step (TCP connect, key exchange
//! with the host key verified, authentication, every channel opened and
//! how its command exited) as a debug event naming the host, with the
//! time the step took. An operator reads them to see where a slow or
//! failing host spends its time, as with `ssh -v`.
//!
//! The steps of one connection's setup are logged where they happen
//! (`connection.rs`); the channel events come from the server at any time,
//! so the handshake's handler ([`crate::transport::host_key::HostKeyCheck`])
//! keeps a [`ChannelClock`] and logs them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use russh::ChannelId;

/// A duration the way the steps print it: milliseconds, one decimal.
pub(crate) fn ms(elapsed: Duration) -> String {
    format!("{:.1} ms", elapsed.as_secs_f64() * 1000.0)
}

/// When each open channel of one connection was opened, to tell how long
/// its command ran.
#[derive(Debug, Default)]
pub(crate) struct ChannelClock {
    /// The host's name in the config, for the log lines.
    host: String,
    /// Open channels and when the server confirmed each.
    opened: HashMap<ChannelId, Instant>,
}

impl ChannelClock {
    /// A clock for the channels of `host`.
    pub(crate) fn new(host: &str) -> Self {
        Self {
            host: host.to_owned(),
            opened: HashMap::new(),
        }
    }

    /// The server confirmed channel `id`.
    pub(crate) fn opened(&mut self, id: ChannelId) {
        self.opened.insert(id, Instant::now());
    }

    /// The command on channel `id` ended as `how` ("exit status 0").
    pub(crate) fn exited(&self, id: ChannelId, how: &str) {
        let ran = self
            .opened
            .get(&id)
            .map(|opened| format!(" after {}", ms(opened.elapsed())))
            .unwrap_or_default();
        tracing::debug!("{}: channel {id}: {how}{ran}", self.host);
    }

    /// The server closed channel `id`.
    pub(crate) fn closed(&mut self, id: ChannelId) {
        self.opened.remove(&id);
        tracing::trace!("{}: channel {id} closed", self.host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_in_milliseconds() {
        assert_eq!(ms(Duration::from_micros(1_250)), "1.2 ms");
        assert_eq!(ms(Duration::from_secs(2)), "2000.0 ms");
    }
}
