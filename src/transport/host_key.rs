//! The handshake's view of the host key: [`HostKeyCheck`] judges the key a
//! host offers against remex's known_hosts as it is *now* (read again when
//! the file changed, see [`crate::fresh`]), pins it under accept-new, and
//! remembers why it refused; [`Recorder`] only notes the key (for `hosts
//! trust`, which decides itself).
//!
//! A host certificate (offered only when remex asked for one, see
//! [`wants_certificate`]) is judged by
//! [`crate::transport::host_certificate`]: an `@cert-authority` line
//! vouches for it, and nothing is pinned.
//!
//! **Invariant:** a host key is accepted only when known_hosts pins it, or
//! when the policy is accept-new and known_hosts knows nothing of the host,
//! or when it comes in a valid host certificate of a CA known_hosts trusts
//! for the host. A changed or `@revoked` key, and a certificate of a
//! `@revoked` CA, are refused under every policy; a certificate is never
//! pinned.

use std::path::Path;
use std::sync::{Arc, Mutex};

use russh::client;
use russh::keys::ssh_key::Certificate;
use russh::keys::{PublicKey, PublicKeyOrCertificate};

use super::endpoint::Endpoint;
use super::host_certificate::{self, CertificateStatus, show_time};
use super::identity::fingerprint;
use super::known_hosts::{self, HostKeyStatus, KnownHosts};
use super::steps::ChannelClock;
use crate::config::HostKeyPolicy;
use crate::error_chain::chain;
use crate::failure::{Failure, HostKeyProblem};
use crate::fresh::Fresh;

/// remex's known_hosts, read again when the file changes.
pub(crate) type KnownHostsView = Fresh<KnownHosts>;

/// The current known_hosts, or the host-key failure of not being able to
/// read it.
pub(crate) fn current(known: &KnownHostsView) -> Result<Arc<KnownHosts>, Failure> {
    known.get(KnownHosts::load).map_err(|e| {
        Failure::host_key(
            HostKeyProblem::Unreadable,
            format!("cannot check the host key: {}", chain(&e)),
        )
    })
}

/// Whether to ask `endpoint` for a host certificate: when known_hosts, as
/// it is now, has an `@cert-authority` line for it. OpenSSH likewise
/// orders its host-key algorithms by what known_hosts holds for the host;
/// remex asks for a certificate only where one can be checked, so a host
/// with a certificate and a plain pin keeps showing its plain key.
pub(crate) fn wants_certificate(known: &KnownHostsView, endpoint: &Endpoint) -> bool {
    current(known).is_ok_and(|known| {
        !known
            .cert_authorities(&endpoint.host, endpoint.port)
            .is_empty()
    })
}

/// What a host proved itself with: a plain host key, or a host certificate
/// (whose key signed the key exchange).
#[derive(Debug, Clone)]
pub(crate) enum HostKey {
    /// A plain key, pinned in known_hosts.
    Plain(PublicKey),
    /// A certificate, vouched for by an `@cert-authority` line.
    Certified(Box<Certificate>),
}

impl HostKey {
    /// The key that signed the key exchange (for a certificate, the key in
    /// it): what fingerprints and audit records name.
    pub(crate) fn public_key(&self) -> PublicKey {
        match self {
            HostKey::Plain(key) => key.clone(),
            HostKey::Certified(cert) => PublicKey::new(cert.public_key().clone(), ""),
        }
    }

    /// Whether it is a certificate.
    pub(crate) fn is_certificate(&self) -> bool {
        matches!(self, HostKey::Certified(_))
    }

    /// `-v`: `key TYPE SHA256:…` or `certificate TYPE SHA256:… (ID …)`.
    pub(crate) fn describe(&self) -> String {
        match self {
            HostKey::Plain(key) => format!("key {} {}", key.algorithm(), fingerprint(key)),
            HostKey::Certified(cert) => {
                format!("certificate {}", host_certificate::describe(cert))
            }
        }
    }
}

/// What a [`HostKeyCheck`] concluded.
#[derive(Debug, Clone)]
pub(crate) struct Verdict {
    /// The accepted key, or why it was refused.
    pub outcome: Result<HostKey, Failure>,
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
    /// Why the connection ended, once it did: the server's disconnect
    /// message or the transport's error (what a command that was running
    /// on it reports).
    pub lost: Arc<Mutex<Option<String>>>,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let verdict = match offered {
            PublicKeyOrCertificate::PublicKey { key, .. } => self.judge(key),
            PublicKeyOrCertificate::Certificate(cert) => {
                let key = HostKey::Certified(Box::new(cert.clone()));
                // Never pinned: a certificate is trusted through its CA or
                // not at all.
                let outcome = current(&self.known)
                    .and_then(|known| judge(&self.endpoint, &known, &key))
                    .map(|()| key);
                Verdict {
                    outcome,
                    pinned: false,
                }
            }
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

    async fn disconnected(
        &mut self,
        reason: client::DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        let (why, result) = match reason {
            client::DisconnectReason::ReceivedDisconnect(info) => (
                format!(
                    "the server disconnected ({:?}{}{})",
                    info.reason_code,
                    if info.message.is_empty() { "" } else { ": " },
                    info.message
                ),
                Ok(()),
            ),
            client::DisconnectReason::Error(e) => (e.to_string(), Err(e)),
        };
        tracing::debug!("{}: connection ended: {why}", self.endpoint.name);
        if let Ok(mut lost) = self.lost.lock() {
            lost.get_or_insert(why);
        }
        result
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
        match judge_key(&self.endpoint, &known, key) {
            Ok(()) => Verdict {
                outcome: Ok(HostKey::Plain(key.clone())),
                pinned: false,
            },
            Err(failure) if self.policy == HostKeyPolicy::AcceptNew && is_unknown(&failure) => {
                match self.pin(key) {
                    Ok(()) => Verdict {
                        outcome: Ok(HostKey::Plain(key.clone())),
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

/// Whether `known` lets remex in to `endpoint` offering `key` now (strict
/// policy: nothing is pinned); the refusal says why and what to do.
pub(crate) fn judge(endpoint: &Endpoint, known: &KnownHosts, key: &HostKey) -> Result<(), Failure> {
    match key {
        HostKey::Plain(key) => judge_key(endpoint, known, key),
        HostKey::Certified(cert) => judge_certificate(endpoint, known, cert, unix_now()),
    }
}

/// Seconds since the epoch, now (0 if the clock is before it, which fails
/// every certificate's window but one valid from the epoch).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether `known` vouches for the host certificate `cert` of `endpoint` at
/// `now`. A certificate whose CA known_hosts does not trust for the host is
/// still accepted when the key in it is pinned for the host (OpenSSH
/// retries with the plain key too); every other refusal is final.
fn judge_certificate(
    endpoint: &Endpoint,
    known: &KnownHosts,
    cert: &Certificate,
    now: u64,
) -> Result<(), Failure> {
    let Endpoint {
        name, host, port, ..
    } = endpoint;
    let path = known.path().display();
    let what = format!("host certificate of {name} ({host}:{port})");
    let refuse = |message: String| Err(Failure::host_key(HostKeyProblem::Certificate, message));
    match host_certificate::check(known, host, *port, cert, now) {
        // `-v` says so once, when the connection is made (`log_host_key`).
        CertificateStatus::Trusted { .. } => Ok(()),
        CertificateStatus::Revoked { fingerprint, ca } => Err(Failure::host_key(
            HostKeyProblem::Revoked {
                fingerprint: fingerprint.clone(),
            },
            format!(
                "{what}: its {} {fingerprint} is marked @revoked in {path}; refusing to connect",
                if ca { "CA" } else { "key" }
            ),
        )),
        CertificateStatus::UnknownCa { ca } => {
            let inner = PublicKey::new(cert.public_key().clone(), "");
            if known.check(host, *port, &inner) == HostKeyStatus::Trusted {
                tracing::debug!(
                    "{name}: the CA {ca} of the host certificate is not trusted for it, but the key in it is pinned"
                );
                return Ok(());
            }
            refuse(format!(
                "{what} is signed by an unknown CA {ca}: no @cert-authority line of {path} trusts it for {host}; \
                 if you trust that CA, add `@cert-authority PATTERN CA-PUBLIC-KEY` for it"
            ))
        }
        CertificateStatus::NotHost => refuse(format!(
            "{what} is a user certificate, not a host certificate; refusing to connect"
        )),
        CertificateStatus::BadSignature => refuse(format!(
            "{what} does not verify with the CA it names; refusing to connect"
        )),
        CertificateStatus::NotYetValid { valid_after } => refuse(format!(
            "{what} is not valid yet: valid from {} (check the clocks)",
            show_time(valid_after)
        )),
        CertificateStatus::Expired { valid_before } => refuse(format!(
            "{what} expired at {}; the host needs a new certificate (`ssh-keygen -s CA -h -n {host} -V …`)",
            show_time(valid_before)
        )),
        CertificateStatus::WrongPrincipal { principals } => refuse(if principals.is_empty() {
            format!(
                "{what} names no principal; remex requires {host}, the host it dialed, among them (sign with `-n {host}`)"
            )
        } else {
            format!(
                "{what} is for the principals {} and not for {host}, the host remex dialed (wrong principal)",
                principals.join(", ")
            )
        }),
        CertificateStatus::CriticalOptions { names } => refuse(format!(
            "{what} has critical options ({}), which a host certificate may not have; refusing to connect",
            names.join(", ")
        )),
    }
}

/// Whether `known` lets remex in to `endpoint` offering the plain `key`
/// (strict policy); the refusal says why and what to do.
fn judge_key(endpoint: &Endpoint, known: &KnownHosts, key: &PublicKey) -> Result<(), Failure> {
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
/// trust` sees the key without logging in. It never asks for a host
/// certificate, so it sees the host's plain key.
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
