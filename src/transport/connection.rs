//! One authenticated SSH connection to one host, shared by every operation
//! on that host in a process (a channel per command).
//!
//! Connecting is: resolve and dial ([`crate::transport::tcp`]), the SSH
//! handshake with the host key checked against remex's known_hosts
//! ([`HostKeyCheck`]; `handshake.rs`), then public-key authentication with
//! the host's key file (its certificate first, when one lies beside it),
//! and the ssh-agent's keys when allowed (`auth.rs`). The whole is bounded
//! by the connect timeout ([`ConnectOptions`]). Each step is a debug event
//! with its timing (`-v`, see [`crate::transport::steps`]).
//!
//! **Invariant:** a host key is accepted only when known_hosts pins it, or
//! when the policy is accept-new and known_hosts knows nothing of the host,
//! or when it comes in a host certificate an `@cert-authority` line
//! vouches for. Nothing here retries after an authentication or host-key
//! failure.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::Channel;
use russh::client::{self, Handle};
use russh::keys::PublicKey;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::auth::{authenticate, authenticate_password, log_authenticated, refused};
use super::endpoint::Endpoint;
use super::handshake::{Jump, handshake, handshake_failure, log_host_key};
use super::host_key::{
    HostKey, HostKeyCheck, KnownHostsView, Recorder, Verdict, wants_certificate,
};
use super::identity::{KeyStore, PassphraseSource, fingerprint};
use super::login::Login;
use super::options::ConnectOptions;
use super::session::Session;
use super::steps::{ChannelClock, ms};
use crate::failure::{ErrorKind, Failure};

/// An authenticated connection.
pub(crate) struct Connection {
    /// The russh session handle; channels are opened on it.
    handle: Handle<HostKeyCheck>,
    /// Free channel slots (the server's MaxSessions).
    sessions: Arc<Semaphore>,
    /// The host key (or host certificate) that was verified; a pooled
    /// connection is reused only while known_hosts still accepts it.
    host_key: HostKey,
    /// The SHA256 fingerprint of the key (for a certificate, of the key in
    /// it).
    host_key_fingerprint: String,
    /// Whether this connection pinned the host key (accept-new), until
    /// someone takes the news.
    pinned_now: std::sync::atomic::AtomicBool,
    /// Who we connected to.
    endpoint: Endpoint,
    /// The place this connection takes in the executor's connection budget
    /// (`max_parallel`), given back when it is dropped.
    budget: Mutex<Option<OwnedSemaphorePermit>>,
    /// The jump host's connection this one is tunnelled through: kept open
    /// while this one is.
    via: Option<Arc<Connection>>,
    /// Why the connection ended, once it did (set by its handler).
    lost: Arc<Mutex<Option<String>>>,
}

/// What connecting needs besides the endpoint and the credentials: the
/// executor's known_hosts view and loaded keys, and where an encrypted key's
/// passphrase comes from.
pub(crate) struct Keys<'a> {
    /// remex's known_hosts, as it is now.
    pub known: &'a Arc<KnownHostsView>,
    /// Private keys loaded so far.
    pub store: &'a KeyStore,
    /// The passphrase of an encrypted key (the run's prompter).
    pub passphrase: &'a PassphraseSource,
}

impl Connection {
    /// Connects and authenticates with `login`'s credentials (key file,
    /// then agent, then password). Dialing, the handshake and public-key
    /// authentication are bounded by `options.connect_timeout`; a password
    /// prompt is not (the person typing gets their time), the password
    /// exchange after it is again.
    pub(crate) async fn open(
        endpoint: &Endpoint,
        options: &ConnectOptions,
        keys: &Keys<'_>,
        login: &Login,
        via: Option<Arc<Connection>>,
    ) -> Result<Connection, Failure> {
        let options = &*options.for_endpoint(endpoint);
        // Loaded before the clock starts: it may prompt for a passphrase.
        let key = match &login.key {
            Some(path) => Some(keys.store.load(path, keys.passphrase).await),
            None => None,
        };
        let verdict = Arc::new(Mutex::new(None));
        let lost = Arc::new(Mutex::new(None));
        let check = HostKeyCheck {
            endpoint: endpoint.clone(),
            known: keys.known.clone(),
            policy: options.host_key_policy,
            verdict: verdict.clone(),
            channels: ChannelClock::new(&endpoint.name),
            lost: lost.clone(),
        };
        let agent = login.agent.then_some(options.agent.as_deref()).flatten();
        let password_possible = login.password.is_some();
        let with_certificates;
        let options = if wants_certificate(keys.known, endpoint) {
            with_certificates = ConnectOptions {
                host_certificates: true,
                ..options.clone()
            };
            &with_certificates
        } else {
            options
        };
        let attempt = async {
            let mut handle = handshake(
                endpoint,
                options,
                check,
                via.as_deref().map(Connection::jump),
            )
            .await?
            .map_err(|e| handshake_failure(endpoint, &e, &verdict))?;
            log_host_key(endpoint, &verdict);
            let tried = authenticate(
                &mut handle,
                endpoint,
                login.key.as_deref(),
                key,
                agent,
                password_possible,
            )
            .await?;
            Ok::<_, Failure>((handle, tried))
        };
        let (mut handle, tried) = within(options, endpoint, attempt).await?;
        if let Some(mut tried) = tried {
            // Public keys did not do it: the password is the last resort.
            let Some(source) = &login.password else {
                return Err(refused(endpoint, &tried));
            };
            let password = source
                .get(&endpoint.user)
                .await
                .map_err(|message| Failure::new(ErrorKind::Auth, message))?;
            let started = Instant::now();
            let accepted = within(
                options,
                endpoint,
                authenticate_password(&mut handle, &endpoint.user, &password),
            )
            .await?;
            if let Some(method) = accepted {
                log_authenticated(endpoint, method, started);
            } else {
                tried.push("the password (password and keyboard-interactive)".to_owned());
                return Err(refused(endpoint, &tried));
            }
        }
        let Some(Verdict {
            outcome: Ok(host_key),
            pinned,
        }) = verdict.lock().ok().and_then(|v| v.clone())
        else {
            return Err(Failure::new(
                ErrorKind::Protocol,
                format!("{}: logged in without a verified host key", endpoint.name),
            ));
        };
        Ok(Connection {
            handle,
            sessions: Arc::new(Semaphore::new(options.max_sessions.max(1))),
            host_key_fingerprint: fingerprint(&host_key.public_key()),
            host_key,
            pinned_now: std::sync::atomic::AtomicBool::new(pinned),
            endpoint: endpoint.clone(),
            budget: Mutex::new(None),
            via,
            lost,
        })
    }

    /// Connects far enough to see the host key `endpoint` offers, then
    /// breaks off: nothing is authenticated, nothing pinned (`hosts trust`).
    pub(crate) async fn scan(
        endpoint: &Endpoint,
        options: &ConnectOptions,
        via: Option<&Connection>,
    ) -> Result<PublicKey, Failure> {
        let options = &*options.for_endpoint(endpoint);
        let seen = Arc::new(Mutex::new(None));
        let recorder = Recorder { seen: seen.clone() };
        // The recorder refuses every key, so the handshake ends in an error
        // once the key was seen; the key, not the result, is what counts.
        within(options, endpoint, async {
            handshake(endpoint, options, recorder, via.map(Connection::jump))
                .await
                .map(drop)
        })
        .await?;
        let seen = seen.lock().map(|mut s| s.take()).ok().flatten();
        match seen {
            Some(Some(key)) => Ok(key),
            Some(None) => Err(Failure::new(
                ErrorKind::HostKey,
                format!(
                    "{} presented a host certificate, which remex does not pin; \
                     trust its CA instead: add `@cert-authority PATTERN CA-PUBLIC-KEY` to {}",
                    endpoint.name,
                    options.known_hosts_path.display()
                ),
            )),
            None => Err(Failure::new(
                ErrorKind::Connect,
                format!(
                    "SSH handshake with {} failed before the host key was offered",
                    endpoint.address()
                ),
            )),
        }
    }

    /// Makes this connection hold `permit` (its place in the executor's
    /// connection budget) until it is dropped.
    pub(crate) fn hold(&self, permit: OwnedSemaphorePermit) {
        if let Ok(mut budget) = self.budget.lock() {
            *budget = Some(permit);
        }
    }

    /// Opens a session channel, waiting for a free slot.
    ///
    /// sshd frees a session's place in its `MaxSessions` table a moment after
    /// the channel's close, so an open that follows a close closely can be
    /// refused though the count is within the limit: a refused open is
    /// retried a few times with a short backoff before it is an error.
    pub(crate) async fn session(&self) -> Result<Session, Failure> {
        let slot = self
            .sessions
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Failure::new(ErrorKind::Io, "connection is shutting down"))?;
        let mut backoff = Duration::from_millis(5);
        let mut retries = 6;
        let started = Instant::now();
        loop {
            match self.handle.channel_open_session().await {
                Ok(channel) => {
                    self.log_channel(&channel, started);
                    return Ok(Session { channel, slot });
                }
                Err(russh::Error::ChannelOpenFailure(_)) if retries > 0 => {
                    retries -= 1;
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(e) => {
                    return Err(Failure::new(
                        ErrorKind::Protocol,
                        format!(
                            "{} refused a session channel: {e} (is sshd's MaxSessions lower than remote_execution.max_sessions?)",
                            self.endpoint.name
                        ),
                    ));
                }
            }
        }
    }

    /// Whether opening this connection pinned the host's key (accept-new
    /// policy, key unknown until now); true once, for the first caller, so
    /// the pin is reported (and audited) once.
    pub(crate) fn take_pinned_host_key(&self) -> bool {
        self.pinned_now
            .swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    /// A session channel if a slot is free right now and the server grants
    /// the channel; `None` otherwise (for optional extra channels, such as
    /// the additional SFTP channels of a large upload).
    pub(crate) async fn try_session(&self) -> Option<Session> {
        let slot = self.sessions.clone().try_acquire_owned().ok()?;
        let started = Instant::now();
        let channel = self.handle.channel_open_session().await.ok()?;
        self.log_channel(&channel, started);
        Some(Session { channel, slot })
    }

    /// `-v`: a channel opened, `started` being when it was asked for.
    fn log_channel(&self, channel: &Channel<client::Msg>, started: Instant) {
        tracing::debug!(
            "{}: channel {} opened in {}",
            self.endpoint.name,
            channel.id(),
            ms(started.elapsed())
        );
    }

    /// Session slots free right now.
    pub(crate) fn free_sessions(&self) -> usize {
        self.sessions.available_permits()
    }

    /// SHA256 fingerprint of the verified host key.
    pub(crate) fn host_key_fingerprint(&self) -> &str {
        &self.host_key_fingerprint
    }

    /// The verified host key or certificate.
    pub(crate) fn host_key(&self) -> &HostKey {
        &self.host_key
    }

    /// How many jump hosts this connection goes through.
    pub(crate) fn hops(&self) -> usize {
        self.via.as_ref().map_or(0, |via| via.hops() + 1)
    }

    /// Whom this connection reaches.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// This connection as the jump host of another: the next hop's
    /// handshake tunnels through it.
    fn jump(&self) -> Jump<'_> {
        Jump {
            handle: &self.handle,
            name: &self.endpoint.name,
        }
    }

    /// Whether the connection has gone away.
    pub(crate) fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Why the connection ended (the server's disconnect message, or the
    /// transport's error), once it did and the reason is known.
    pub(crate) fn lost_reason(&self) -> Option<String> {
        self.lost.lock().ok().and_then(|lost| lost.clone())
    }

    /// Runs one of remex's own helper commands (never user input) on a
    /// fresh channel, feeding it `stdin`, and returns its exit status and
    /// its stdout and stderr together.
    pub(crate) async fn run_helper(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> Result<(Option<u32>, Vec<u8>), Failure> {
        let mut session = self.session().await?;
        let io = |e: russh::Error| Failure::new(ErrorKind::Io, e.to_string());
        tracing::debug!(channel = ?session.channel.id(), "helper command");
        let mut out = Vec::new();
        let mut collect = |_: bool, data: &[u8]| out.extend_from_slice(data);
        if let Some(bytes) = stdin {
            // Input only once the command runs (see `exec_confirmed`).
            if !session
                .exec_confirmed(command, &mut collect)
                .await
                .map_err(io)?
            {
                return Ok((None, out));
            }
            session.channel.data(bytes).await.map_err(io)?;
        } else {
            session.channel.exec(true, command).await.map_err(io)?;
        }
        let status = session.finish(&mut collect).await.map_err(io)?;
        Ok((status, out))
    }

    /// Closes the connection politely (others may still hold it: their
    /// next use fails).
    pub(crate) async fn close(&self) {
        tracing::debug!("{}: disconnecting", self.endpoint.name);
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }

    /// Closes the connection and waits (a moment at most) until its socket
    /// is gone, then gives its place in the budget back: a new connection
    /// that takes the place never overlaps this one.
    pub(crate) async fn shutdown(self) {
        self.close().await;
        let Connection {
            handle,
            budget,
            via,
            ..
        } = self;
        // The tunnel goes with the handle; the jump host's connection
        // stays pooled for others.
        drop(via);
        let _ = tokio::time::timeout(Duration::from_secs(2), handle).await;
        drop(budget);
    }
}

/// Runs `work` within the connect timeout.
async fn within<T>(
    options: &ConnectOptions,
    endpoint: &Endpoint,
    work: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(options.connect_timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(Failure::new(
            ErrorKind::ConnectTimeout,
            format!(
                "connecting to {} took longer than {:?} (connect_timeout)",
                endpoint.address(),
                options.connect_timeout
            ),
        )),
    }
}
