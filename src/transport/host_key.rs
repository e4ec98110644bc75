//! The handshake's view of the host key: [`HostKeyCheck`] judges the key a
//! host offers against remex's known_hosts as it is *now* (read again when
//! the file changed, see [`crate::fresh`]), pins it under accept-new, and
//! remembers why it refused; [`Recorder`] only notes the key (for `hosts
//! trust`, which decides itself).
//!
//! **Invariant:** a host key is accepted only when known_hosts pins it, or
//! when the policy is accept-new and known_hosts knows nothing of the host.
//! A changed or `@revoked` key is refused under every policy.

use std::path::Path;
use std::sync::{Arc, Mutex};

use russh::client;
use russh::keys::{PublicKey, PublicKeyOrCertificate};

use super::connection::Endpoint;
use super::identity::fingerprint;
use super::known_hosts::{self, HostKeyStatus, KnownHosts};
use super::steps::ChannelClock;
use crate::config::HostKeyPolicy;
use crate::fresh::Fresh;
use crate::run::report::{Failure, HostKeyProblem};

/// remex's known_hosts, read again when the file changes.
pub(crate) type KnownHostsView = Fresh<KnownHosts>;

/// The current known_hosts, or the host-key failure of not being able to
/// read it.
pub(crate) fn current(known: &KnownHostsView) -> Result<Arc<KnownHosts>, Failure> {
    known.get(KnownHosts::load).map_err(|e| {
        Failure::host_key(
            HostKeyProblem::Unreadable,
            format!(
                "cannot check the host key: {}",
                known_hosts::error_chain(&e)
            ),
        )
    })
}

/// What a [`HostKeyCheck`] concluded.
#[derive(Debug, Clone)]
pub(crate) struct Verdict {
    /// The accepted key, or why it was refused.
    pub outcome: Result<PublicKey, Failure>,
    /// Set when the key was unknown and pinned now (accept-new): a trust
    /// change, which the audit log records.
    pub pinned: bool,
}

/// Judges the offered host key during the handshake; afterwards, as the
/// connection's handler, it logs what the server says of each channel
/// (`-v`, see [`crate::transport::steps`]).
pub(crate) struct HostKeyCheck {
    /// Whom we are connecting to.
    pub endpoint: Endpoint,
    /// remex's known_hosts.
    pub known: Arc<KnownHostsView>,
    /// strict or accept-new.
    pub policy: HostKeyPolicy,
    /// The verdict, for the caller once the handshake is over.
    pub verdict: Arc<Mutex<Option<Verdict>>>,
    /// When each channel opened, for the `-v` lines of how it exited.
    pub channels: ChannelClock,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let verdict = match offered {
            PublicKeyOrCertificate::PublicKey { key, .. } => self.judge(key),
            PublicKeyOrCertificate::Certificate(_) => Verdict {
                outcome: Err(Failure::host_key(
                    HostKeyProblem::Certificate,
                    "the host presented a certificate; remex pins plain host keys only",
                )),
                pinned: false,
            },
        };
        let accepted = verdict.outcome.is_ok();
        if let Ok(mut slot) = self.verdict.lock() {
            *slot = Some(verdict);
        }
        Ok(accepted)
    }

    async fn channel_open_confirmation(
        &mut self,
        id: russh::ChannelId,
        _max_packet_size: u32,
        _window_size: u32,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        self.channels.opened(id);
        Ok(())
    }

    async fn exit_status(
        &mut self,
        channel: russh::ChannelId,
        exit_status: u32,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        self.channels
            .exited(channel, &format!("exit status {exit_status}"));
        Ok(())
    }

    async fn exit_signal(
        &mut self,
        channel: russh::ChannelId,
        signal_name: russh::Sig,
        _core_dumped: bool,
        _error_message: &str,
        _lang_tag: &str,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        self.channels
            .exited(channel, &format!("killed by signal {signal_name:?}"));
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: russh::ChannelId,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        self.channels.closed(channel);
        Ok(())
    }
}

impl HostKeyCheck {
    fn judge(&self, key: &PublicKey) -> Verdict {
        let refused = |failure| Verdict {
            outcome: Err(failure),
            pinned: false,
        };
        let known = match current(&self.known) {
            Ok(known) => known,
            Err(failure) => return refused(failure),
        };
        match judge(&self.endpoint, &known, key) {
            Ok(()) => Verdict {
                outcome: Ok(key.clone()),
                pinned: false,
            },
            Err(failure) if self.policy == HostKeyPolicy::AcceptNew && is_unknown(&failure) => {
                match self.pin(key) {
                    Ok(()) => Verdict {
                        outcome: Ok(key.clone()),
                        pinned: true,
                    },
                    Err(failure) => refused(failure),
                }
            }
            Err(failure) => refused(failure),
        }
    }

    /// Pins an unknown key (accept-new) and makes this process see it.
    fn pin(&self, key: &PublicKey) -> Result<(), Failure> {
        let Endpoint {
            name, host, port, ..
        } = &self.endpoint;
        let path: &Path = self.known.path();
        let pinned = known_hosts::append(path, host, *port, key);
        self.known.invalidate();
        pinned.map_err(|e| {
            Failure::host_key(
                HostKeyProblem::PinFailed,
                format!("cannot pin the host key of {name}: {e}"),
            )
        })?;
        tracing::info!(host = %name, offered = %fingerprint(key), "pinned new host key (accept-new)");
        Ok(())
    }
}

fn is_unknown(failure: &Failure) -> bool {
    matches!(failure.host_key, Some(HostKeyProblem::Unknown { .. }))
}

/// Whether `known` lets remex in to `endpoint` offering `key` (strict
/// policy); the refusal says why and what to do.
pub(crate) fn judge(
    endpoint: &Endpoint,
    known: &KnownHosts,
    key: &PublicKey,
) -> Result<(), Failure> {
    let Endpoint {
        name, host, port, ..
    } = endpoint;
    let offered = fingerprint(key);
    let path = known.path().display();
    let trust = format!("remex hosts trust {name}");
    match known.check(host, *port, key) {
        HostKeyStatus::Trusted => Ok(()),
        HostKeyStatus::Revoked { fingerprint } => Err(Failure::host_key(
            HostKeyProblem::Revoked {
                fingerprint: fingerprint.clone(),
            },
            format!(
                "host key {fingerprint} of {name} ({host}:{port}) is marked @revoked in {path}; refusing to connect"
            ),
        )),
        HostKeyStatus::Changed { expected, offered } => {
            let message = format!(
                "HOST KEY CHANGED for {name} ({host}:{port}): expected {}, offered {offered}. \
                 This may be an attack; if the host was reinstalled, check the new key out of band \
                 and run `{trust} --replace --fingerprint FINGERPRINT` with the fingerprint you checked",
                expected.join(" or ")
            );
            Err(Failure::host_key(
                HostKeyProblem::Changed { expected, offered },
                message,
            ))
        }
        HostKeyStatus::Unknown => Err(Failure::host_key(
            HostKeyProblem::Unknown {
                offered: offered.clone(),
                algorithm: key.algorithm().as_str().to_owned(),
            },
            format!(
                "host key of {name} ({host}:{port}) is unknown: {offered} ({}) is not pinned in {path}; \
                 check it and run `{trust}` (or set host_key_policy: accept-new to pin on first use)",
                key.algorithm()
            ),
        )),
    }
}

/// A handshake handler that notes the offered key and refuses it: `hosts
/// trust` sees the key without logging in.
pub(crate) struct Recorder {
    /// `Some(Some(key))`: a plain key; `Some(None)`: a certificate.
    pub seen: Arc<Mutex<Option<Option<PublicKey>>>>,
}

impl client::Handler for Recorder {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match offered {
            PublicKeyOrCertificate::PublicKey { key, .. } => Some(key.clone()),
            PublicKeyOrCertificate::Certificate(_) => None,
        };
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(key);
        }
        Ok(false)
    }
}
