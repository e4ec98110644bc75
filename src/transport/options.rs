//! [`ConnectOptions`]: how remex connects — the same for every host of a
//! run, but for a host's own tuning ([`ConnectOptions::for_endpoint`]) —,
//! remex's cipher preference ([`default_ciphers`]), and the russh client
//! config built from them ([`ssh_config`]).

use std::path::PathBuf;
use std::time::Duration;

use russh::client;

use super::endpoint::Endpoint;
use crate::config::HostKeyPolicy;

/// How to connect; the same for every host of a run.
#[derive(Debug, Clone)]
pub(crate) struct ConnectOptions {
    /// Bound on dialing, the handshake and authentication together
    /// (`ConnectTimeout`, default 10 s).
    pub connect_timeout: Duration,
    /// Extra attempts after a refused, reset or unreachable TCP connect
    /// (`ConnectionAttempts` − 1, default 2).
    pub retries: u32,
    /// Host-key policy (`StrictHostKeyChecking`: `yes` or `accept-new`).
    pub host_key_policy: HostKeyPolicy,
    /// The known_hosts file that accept-new pins new keys into
    /// (`UserKnownHostsFile`).
    pub known_hosts_path: PathBuf,
    /// The ssh-agent's socket whose keys are tried after the key file
    /// (`IdentityAgent`; `IdentitiesOnly=no`); `None`: no agent. The CLI
    /// passes `SSH_AUTH_SOCK` when `use_agent` is on.
    pub agent: Option<PathBuf>,
    /// Channels open at once on one connection; sshd refuses more than its
    /// `MaxSessions` (default 10).
    pub max_sessions: usize,
    /// Cipher preference (`Ciphers`); empty means [`default_ciphers`].
    pub ciphers: Vec<String>,
    /// Keepalive interval (`ServerAliveInterval`); `None`: off.
    pub keepalive_interval: Option<Duration>,
    /// Unanswered keepalives before the connection is dead
    /// (`ServerAliveCountMax`).
    pub keepalive_count_max: u32,
    /// Which addresses to dial (`AddressFamily`).
    pub address_family: crate::config::AddressFamily,
    /// Whether to ask for a host certificate: the `*-cert-v01@openssh.com`
    /// host-key algorithms ahead of the plain ones (`HostKeyAlgorithms`).
    /// `false` in an executor's options; `Connection::open` turns it on
    /// for a host that known_hosts has an `@cert-authority` line for.
    pub host_certificates: bool,
}

impl ConnectOptions {
    /// The options for `endpoint`: these, with its own tuning applied.
    pub(crate) fn for_endpoint(&self, endpoint: &Endpoint) -> std::borrow::Cow<'_, ConnectOptions> {
        let tuning = &endpoint.tuning;
        if *tuning == crate::config::HostTuning::default() {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut options = self.clone();
        if let Some(timeout) = tuning.connect_timeout {
            options.connect_timeout = timeout;
        }
        if let Some(interval) = tuning.keepalive_interval {
            options.keepalive_interval = interval;
        }
        if let Some(count) = tuning.keepalive_count_max {
            options.keepalive_count_max = count;
        }
        if let Some(family) = tuning.address_family {
            options.address_family = family;
        }
        std::borrow::Cow::Owned(options)
    }
}

/// remex's cipher preference: AES-GCM first on CPUs with AES instructions
/// (measured ~1.4× chacha20-poly1305's throughput there), chacha20 first
/// elsewhere.
pub(crate) fn default_ciphers() -> Vec<russh::cipher::Name> {
    use russh::cipher::{AES_128_CTR, AES_128_GCM, AES_256_CTR, AES_256_GCM, CHACHA20_POLY1305};
    if has_aes_instructions() {
        vec![
            AES_128_GCM,
            AES_256_GCM,
            CHACHA20_POLY1305,
            AES_128_CTR,
            AES_256_CTR,
        ]
    } else {
        vec![
            CHACHA20_POLY1305,
            AES_128_GCM,
            AES_256_GCM,
            AES_128_CTR,
            AES_256_CTR,
        ]
    }
}

fn has_aes_instructions() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// Builds russh's client config from the options (ciphers, windows).
pub(crate) fn ssh_config(options: &ConnectOptions) -> Result<client::Config, String> {
    let ciphers = if options.ciphers.is_empty() {
        default_ciphers()
    } else {
        options
            .ciphers
            .iter()
            .map(|name| {
                russh::cipher::Name::try_from(name.as_str())
                    .map_err(|()| format!("unknown cipher `{name}` in remote_execution.ciphers"))
            })
            .collect::<Result<_, _>>()?
    };
    let mut config = client::Config {
        nodelay: true,
        // A large window keeps bulk output flowing at high RTT.
        window_size: 16 * 1024 * 1024,
        // Larger packets from the server (sshd honours what we advertise):
        // fewer packets, MACs and wakeups per byte on bulk downloads.
        maximum_packet_size: 256 * 1024,
        keepalive_interval: options.keepalive_interval,
        keepalive_max: options.keepalive_count_max.max(1) as usize,
        ..client::Config::default()
    };
    config.preferred.cipher = ciphers.into();
    if options.host_certificates {
        // The certificate variant of each host-key algorithm, advertised
        // ahead of the plain ones; not SHA-1 RSA (`ssh-rsa-cert-v01`),
        // which OpenSSH no longer offers either.
        config.preferred.host_key_certificates = config
            .preferred
            .key
            .iter()
            .filter(|a| !matches!(a, russh::keys::Algorithm::Rsa { hash: None }))
            .cloned()
            .collect::<Vec<_>>()
            .into();
    }
    Ok(config)
}
