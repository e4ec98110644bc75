//! The SSH handshake: dial the host (or open a tunnel to it through its
//! jump host), exchange keys, and let a handler judge the host key — the
//! one way remex reaches a host, for a login and for a scan alike — and
//! reading back what the host-key check decided.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use russh::Channel;
use russh::client::{self, Handle};

use super::endpoint::Endpoint;
use super::host_key::{HostKeyCheck, Verdict};
use super::options::{ConnectOptions, ssh_config};
use super::steps::ms;
use super::tcp::{self, DialError};
use crate::failure::{ErrorKind, Failure};

/// The jump host a connection is tunnelled through: its SSH session, and
/// its name for messages.
pub(super) struct Jump<'a> {
    /// The jump host's authenticated session.
    pub handle: &'a Handle<HostKeyCheck>,
    /// The jump host's name in the config.
    pub name: &'a str,
}

/// Dials `endpoint` and runs the SSH handshake with `handler` judging the
/// host key: the one way remex reaches a host. A failed dial is the
/// failure (`dns` or `connect`); the handshake's own result is the
/// caller's to read.
pub(super) async fn handshake<H>(
    endpoint: &Endpoint,
    options: &ConnectOptions,
    handler: H,
    via: Option<Jump<'_>>,
) -> Result<Result<Handle<H>, russh::Error>, Failure>
where
    H: client::Handler<Error = russh::Error> + Send + 'static,
{
    let config =
        Arc::new(ssh_config(options).map_err(|message| Failure::new(ErrorKind::Connect, message))?);
    let started = Instant::now();
    if let Some(jump) = via {
        let tunnel = tunnel(&jump, endpoint).await?;
        tracing::debug!(
            "{}: tunnel to {} through {} opened in {}",
            endpoint.name,
            endpoint.address(),
            jump.name,
            ms(started.elapsed())
        );
        let started = Instant::now();
        let handle = client::connect_stream(config, tunnel.into_stream(), handler).await;
        log_kex(endpoint, &handle, started);
        return Ok(handle);
    }
    let stream = tcp::dial(
        &endpoint.host,
        endpoint.port,
        options.retries,
        options.address_family,
    )
    .await
    .map_err(|e| dial_failure(&e))?;
    let peer = stream
        .peer_addr()
        .map_or_else(|_| endpoint.address(), |a| a.to_string());
    tracing::debug!(
        "{}: tcp connected to {peer} in {}",
        endpoint.name,
        ms(started.elapsed())
    );
    let started = Instant::now();
    let handle = client::connect_stream(config, stream, handler).await;
    log_kex(endpoint, &handle, started);
    Ok(handle)
}

/// `-v`: the key exchange is done.
fn log_kex<T>(endpoint: &Endpoint, handle: &Result<T, russh::Error>, started: Instant) {
    if handle.is_ok() {
        tracing::debug!(
            "{}: key exchange done in {}",
            endpoint.name,
            ms(started.elapsed())
        );
    }
}

/// A `direct-tcpip` channel from the jump host to `target`'s address: the
/// next hop's SSH connection runs inside it. Not a session: sshd's
/// `MaxSessions` does not count it.
async fn tunnel(jump: &Jump<'_>, target: &Endpoint) -> Result<Channel<client::Msg>, Failure> {
    let port = u32::from(target.port);
    jump.handle
        .channel_open_direct_tcpip(target.host.clone(), port, "127.0.0.1", 0)
        .await
        .map_err(|e| {
            let why = match e {
                russh::Error::ChannelOpenFailure(reason) => format!("{reason:?}"),
                other => other.to_string(),
            };
            Failure::new(
                ErrorKind::Connect,
                format!(
                    "jump host {} could not open a connection to {}: {why} \
                     (is sshd's AllowTcpForwarding off there, or is {} down?)",
                    jump.name,
                    target.address(),
                    target.name
                ),
            )
        })
}

/// `-v`: the host key the handshake accepted, and why.
pub(super) fn log_host_key(endpoint: &Endpoint, verdict: &Mutex<Option<Verdict>>) {
    if let Ok(Some(Verdict {
        outcome: Ok(key),
        pinned,
    })) = verdict.lock().as_deref()
    {
        let how = if *pinned {
            "unknown, pinned now (accept-new)"
        } else if key.is_certificate() {
            "signed by a CA of known_hosts (@cert-authority)"
        } else {
            "matches known_hosts"
        };
        tracing::debug!("{}: host {} {how}", endpoint.name, key.describe());
    }
}

/// A failed dial as a host's failure: `dns` when the name did not
/// resolve, else `connect`.
fn dial_failure(e: &DialError) -> Failure {
    match e {
        DialError::Dns { .. } => Failure::new(ErrorKind::Dns, e.to_string()),
        _ => Failure::new(ErrorKind::Connect, e.to_string()),
    }
}

/// A failed handshake as a host's failure: the host-key check's refusal
/// when it refused the key, else a `connect` failure naming the address.
pub(super) fn handshake_failure(
    endpoint: &Endpoint,
    e: &russh::Error,
    verdict: &Mutex<Option<Verdict>>,
) -> Failure {
    if let Ok(Some(Verdict {
        outcome: Err(refusal),
        ..
    })) = verdict.lock().map(|v| v.clone())
    {
        return refusal;
    }
    Failure::new(
        ErrorKind::Connect,
        format!("SSH handshake with {} failed: {e}", endpoint.address()),
    )
}
