//! [`Endpoint`]: where and as whom remex connects to one host — address,
//! port, user, key file, the jump host it is reached through, and the
//! host's own connect tuning.

use std::path::PathBuf;

/// Where and as whom to connect: one host of the inventory, resolved.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    /// The host's name in the config (for messages).
    pub name: String,
    /// DNS name or IP address (`HostName`).
    pub host: String,
    /// TCP port (`Port`, default 22).
    pub port: u16,
    /// Remote user (`User`).
    pub user: String,
    /// Private key file (`IdentityFile`).
    pub key_path: PathBuf,
    /// The jump host this host is reached through (`ProxyJump`): its own
    /// endpoint, itself maybe reached through another. `None`: dialed
    /// directly.
    pub via: Option<Box<Endpoint>>,
    /// This host's own connect timeout, keepalives and address family
    /// (from an ssh_config), where they differ from the run's.
    pub tuning: crate::config::HostTuning,
}

impl Endpoint {
    /// Whether `other` reaches the same server the same way: address, port,
    /// user, key, and the same jump hosts.
    pub(crate) fn same_route(&self, other: &Endpoint) -> bool {
        self.host == other.host
            && self.port == other.port
            && self.user == other.user
            && self.key_path == other.key_path
            && match (&self.via, &other.via) {
                (None, None) => true,
                (Some(a), Some(b)) => a.name == b.name && a.same_route(b),
                _ => false,
            }
    }

    /// `host:port`, with an IPv6 address in brackets.
    pub(crate) fn address(&self) -> String {
        crate::config::join_host_port(&self.host, self.port)
    }
}
