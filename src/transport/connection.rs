//! One authenticated SSH connection to one host, shared by every operation
//! on that host in a process (a channel per command).
//!
//! Connecting is: resolve and dial ([`crate::transport::tcp`]), the SSH handshake with
//! the host key checked against remex's known_hosts ([`HostKeyCheck`]), then
//! public-key authentication with the host's key file (its certificate
//! first, when one lies beside it), and the ssh-agent's keys when allowed.
//! The whole is bounded by the connect timeout. Each
//! step is a debug event with its timing (`-v`, see
//! [`crate::transport::steps`]).
//!
//! **Invariant:** a host key is accepted only when known_hosts pins it, or
//! when the policy is accept-new and known_hosts knows nothing of the host,
//! or when it comes in a host certificate an `@cert-authority` line
//! vouches for. Nothing here retries after an authentication or host-key
//! failure.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::client::{self, AuthResult, Handle};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::ssh_key::Certificate;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use russh::{Channel, ChannelMsg};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::host_certificate;
use super::host_key::{
    HostKey, HostKeyCheck, KnownHostsView, Recorder, Verdict, wants_certificate,
};
use super::identity::{
    Identity, IdentityError, KeyStore, PassphraseSource, certificate_path, certificate_problem,
    fingerprint,
};
use super::login::{Login, Password};
use super::steps::{ChannelClock, ms};
use super::tcp::{self, DialError};
use crate::config::HostKeyPolicy;
use crate::failure::{ErrorKind, Failure};

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
    /// `false` in an executor's options; [`Connection::open`] turns it on
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
}

/// An open session channel, holding one of the connection's slots.
pub(crate) struct Session {
    /// The channel.
    pub channel: Channel<client::Msg>,
    /// Released when the session is dropped.
    pub(crate) slot: OwnedSemaphorePermit,
}

/// Where a helper command's output goes, piece by piece (`true`: stderr).
pub(crate) type Output<'a> = dyn FnMut(bool, &[u8]) + Send + 'a;

impl Session {
    /// Asks the server to run `command` and waits for its answer: `true`
    /// once the command runs, `false` when the server refused it (an
    /// SFTP-only server does). Output that comes before the answer (usually
    /// none) goes to `output`. Use it before sending the command input: a
    /// server may drop the whole connection for data on a channel whose exec
    /// it refused (ProFTPD's mod_sftp does).
    pub(crate) async fn exec_confirmed(
        &mut self,
        command: &str,
        output: &mut Output<'_>,
    ) -> Result<bool, russh::Error> {
        self.channel.exec(true, command).await?;
        loop {
            match self.channel.wait().await {
                Some(ChannelMsg::Success) => return Ok(true),
                Some(ChannelMsg::Failure | ChannelMsg::Close) | None => return Ok(false),
                Some(ChannelMsg::Data { data }) => output(false, &data),
                Some(ChannelMsg::ExtendedData { data, .. }) => output(true, &data),
                Some(_) => {}
            }
        }
    }

    /// Ends the command's input, then hands its output to `output` until
    /// the channel closes: the exit status, if the server sent one. A
    /// refused exec (the only request of a helper that wants a reply) ends
    /// it at once, without a status: nothing will run, and the server need
    /// not close the channel.
    pub(crate) async fn finish(
        &mut self,
        output: &mut Output<'_>,
    ) -> Result<Option<u32>, russh::Error> {
        self.channel.eof().await?;
        let mut status = None;
        while let Some(msg) = self.channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => output(false, &data),
                ChannelMsg::ExtendedData { data, .. } => output(true, &data),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::Close | ChannelMsg::Failure => break,
                _ => {}
            }
        }
        Ok(status)
    }
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
        let check = HostKeyCheck {
            endpoint: endpoint.clone(),
            known: keys.known.clone(),
            policy: options.host_key_policy,
            verdict: verdict.clone(),
            channels: ChannelClock::new(&endpoint.name),
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
            let mut handle = handshake(endpoint, options, check, via.as_deref())
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
            handshake(endpoint, options, recorder, via).await.map(drop)
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

    /// Whether the connection has gone away.
    pub(crate) fn is_closed(&self) -> bool {
        self.handle.is_closed()
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

/// Dials `endpoint` and runs the SSH handshake with `handler` judging the
/// host key: the one way remex reaches a host. A failed dial is the
/// failure (`dns` or `connect`); the handshake's own result is the
/// caller's to read.
async fn handshake<H>(
    endpoint: &Endpoint,
    options: &ConnectOptions,
    handler: H,
    via: Option<&Connection>,
) -> Result<Result<Handle<H>, russh::Error>, Failure>
where
    H: client::Handler<Error = russh::Error> + Send + 'static,
{
    let config =
        Arc::new(ssh_config(options).map_err(|message| Failure::new(ErrorKind::Connect, message))?);
    let started = Instant::now();
    if let Some(jump) = via {
        let tunnel = jump.tunnel(endpoint).await?;
        tracing::debug!(
            "{}: tunnel to {} through {} opened in {}",
            endpoint.name,
            endpoint.address(),
            jump.endpoint.name,
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

impl Connection {
    /// A `direct-tcpip` channel from this (jump) host to `target`'s address:
    /// the next hop's SSH connection runs inside it. Not a session: sshd's
    /// `MaxSessions` does not count it.
    async fn tunnel(&self, target: &Endpoint) -> Result<Channel<client::Msg>, Failure> {
        let port = u32::from(target.port);
        self.handle
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
                        self.endpoint.name,
                        target.address(),
                        target.name
                    ),
                )
            })
    }
}

/// `-v`: the host key the handshake accepted, and why.
fn log_host_key(endpoint: &Endpoint, verdict: &Mutex<Option<Verdict>>) {
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

/// `-v`: the authentication method that got remex in, and how long
/// authenticating took since `started`.
fn log_authenticated(endpoint: &Endpoint, method: &str, started: Instant) {
    tracing::debug!(
        "{}: authenticated as {} with {method} in {}",
        endpoint.name,
        endpoint.user,
        ms(started.elapsed())
    );
}

fn dial_failure(e: &DialError) -> Failure {
    match e {
        DialError::Dns { .. } => Failure::new(ErrorKind::Dns, e.to_string()),
        _ => Failure::new(ErrorKind::Connect, e.to_string()),
    }
}

fn handshake_failure(
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

/// The failure when every credential was refused.
fn refused(endpoint: &Endpoint, tried: &[String]) -> Failure {
    let what = if tried.is_empty() {
        "no credential (no key file, agent or password to offer)".to_owned()
    } else {
        tried.join(" and ")
    };
    Failure::new(
        ErrorKind::Auth,
        format!(
            "{} refused authentication as `{}` with {what}; deploy a key with `remex keys deploy {}` or fix `user`/`key` in the config",
            endpoint.address(),
            endpoint.user,
            endpoint.name
        ),
    )
}

/// Public-key authentication: the key file's certificate, then the key
/// file, then the agent's keys. Returns `None` when logged in, else what
/// was tried (for the message, or for a password to follow). A key file
/// that exists but cannot be used (too open, encrypted without a
/// passphrase, corrupt) is an error of its own, not skipped; a missing one
/// is skipped when something else can be tried. A certificate that cannot
/// be used or is refused is skipped (`-v` says why).
async fn authenticate(
    handle: &mut Handle<HostKeyCheck>,
    endpoint: &Endpoint,
    key_path: Option<&std::path::Path>,
    key: Option<Result<Identity, IdentityError>>,
    agent: Option<&std::path::Path>,
    password_follows: bool,
) -> Result<Option<Vec<String>>, Failure> {
    let auth_failure = |message: String| Failure::new(ErrorKind::Auth, message);
    let user = endpoint.user.as_str();
    let started = Instant::now();
    let mut tried = Vec::new();
    match key {
        Some(Ok(identity)) => {
            if let Some(path) = key_path
                && let Some(cert) = usable_certificate(endpoint, path, &identity)
            {
                let cert_path = certificate_path(path).display().to_string();
                let what = host_certificate::describe(&cert);
                let cert = Certificate::clone(&cert);
                let accepted = if identity.key.algorithm().is_rsa() {
                    let hash = handle
                        .best_supported_rsa_hash()
                        .await
                        .map_err(lost)?
                        .flatten()
                        .or(Some(HashAlg::Sha256));
                    let mut signer = RsaCertSigner(identity.key.clone());
                    match handle
                        .authenticate_certificate_with(user, cert, hash, &mut signer)
                        .await
                    {
                        Ok(result) => matches!(result, AuthResult::Success),
                        Err(SignFailed::Lost) => return Err(lost(russh::Error::SendError)),
                        Err(SignFailed::Key(why)) => {
                            tracing::debug!(
                                "{}: cannot sign with the certificate {cert_path}: {why}",
                                endpoint.name
                            );
                            false
                        }
                    }
                } else {
                    let result = handle
                        .authenticate_openssh_cert(user, identity.key.clone(), cert)
                        .await
                        .map_err(lost)?;
                    matches!(result, AuthResult::Success)
                };
                if accepted {
                    let method = format!("publickey certificate {cert_path} ({what})");
                    log_authenticated(endpoint, &method, started);
                    return Ok(None);
                }
                tracing::debug!(
                    "{}: certificate {cert_path} refused; trying the key alone",
                    endpoint.name
                );
                tried.push(format!("{cert_path} (certificate {what})"));
            }
            let key = identity.key;
            let hash = if key.algorithm().is_rsa() {
                handle
                    .best_supported_rsa_hash()
                    .await
                    .map_err(lost)?
                    .flatten()
                    .or(Some(HashAlg::Sha256))
            } else {
                None
            };
            let fp = format!("{} {}", key.algorithm(), fingerprint(key.public_key()));
            let result = handle
                .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key, hash))
                .await
                .map_err(lost)?;
            let path = key_path
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            if matches!(result, AuthResult::Success) {
                let method = format!("publickey {path} ({fp})");
                log_authenticated(endpoint, &method, started);
                return Ok(None);
            }
            tried.push(format!("{path} ({fp})"));
        }
        Some(Err(IdentityError::Missing { .. })) if agent.is_some() || password_follows => {}
        Some(Err(e)) => return Err(auth_failure(e.to_string())),
        None => {}
    }
    if let Some(socket) = agent {
        match try_agent(handle, user, socket).await {
            Ok(true) => {
                log_authenticated(endpoint, "publickey (a key of the ssh-agent)", started);
                return Ok(None);
            }
            Ok(false) => tried.push("the ssh-agent's keys".to_owned()),
            Err(message) => tried.push(format!("the ssh-agent ({message})")),
        }
    }
    if !password_follows {
        return Err(refused(endpoint, &tried));
    }
    Ok(Some(tried))
}

/// The certificate beside the key file at `key_path`, if there is one and
/// it can be offered now; else `None`, with a `-v` line saying why a
/// certificate that is there cannot be used.
fn usable_certificate(
    endpoint: &Endpoint,
    key_path: &std::path::Path,
    identity: &Identity,
) -> Option<Arc<Certificate>> {
    let why = match identity.certificate.as_ref()? {
        Ok(cert) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            match certificate_problem(cert, now) {
                None => return Some(cert.clone()),
                Some(why) => why,
            }
        }
        Err(why) => why.clone(),
    };
    tracing::debug!(
        "{}: not offering the certificate {}: {why}; trying the key alone",
        endpoint.name,
        certificate_path(key_path).display()
    );
    None
}

/// Signs the authentication with an RSA key's certificate under the hash
/// the server accepts (`rsa-sha2-512-cert-v01@openssh.com` or `-256`):
/// russh's `authenticate_openssh_cert` names an RSA certificate
/// `ssh-rsa-cert-v01@openssh.com` and signs with SHA-1, which OpenSSH
/// 8.8 and later refuse.
struct RsaCertSigner(Arc<PrivateKey>);

/// Why [`RsaCertSigner`] did not sign.
#[derive(Debug)]
enum SignFailed {
    /// The connection's event loop is gone.
    Lost,
    /// The key could not sign (not RSA, or the signature failed).
    Key(String),
}

impl From<russh::SendError> for SignFailed {
    fn from(_: russh::SendError) -> Self {
        SignFailed::Lost
    }
}

impl russh::Signer for RsaCertSigner {
    type Error = SignFailed;

    fn auth_sign(
        &mut self,
        _: &AgentIdentity,
        hash: Option<HashAlg>,
        to_sign: Vec<u8>,
    ) -> impl std::future::Future<Output = Result<Vec<u8>, SignFailed>> + Send {
        std::future::ready(sign_rsa(&self.0, hash, to_sign))
    }
}

/// `to_sign` with its signature by `key` under `hash` appended, as the
/// SSH wire format wants it (a string holding the encoded signature).
fn sign_rsa(
    key: &PrivateKey,
    hash: Option<HashAlg>,
    mut to_sign: Vec<u8>,
) -> Result<Vec<u8>, SignFailed> {
    use russh::keys::signature::Signer as _;
    use russh::keys::ssh_encoding::Encode as _;
    let russh::keys::ssh_key::private::KeypairData::Rsa(rsa) = key.key_data() else {
        return Err(SignFailed::Key("not an RSA key".to_owned()));
    };
    let key_error = |e: russh::keys::ssh_key::Error| SignFailed::Key(e.to_string());
    let signature: russh::keys::ssh_key::Signature = (rsa, hash)
        .try_sign(&to_sign)
        .map_err(|e| SignFailed::Key(e.to_string()))?;
    let blob = signature.encode_vec().map_err(|e| key_error(e.into()))?;
    blob.as_slice()
        .encode(&mut to_sign)
        .map_err(|e| key_error(e.into()))?;
    Ok(to_sign)
}

/// A russh error during authentication: the connection is gone.
fn lost(e: russh::Error) -> Failure {
    Failure::new(
        ErrorKind::Connect,
        format!("connection lost during authentication: {e}"),
    )
}

/// `password` authentication, then `keyboard-interactive` answering every
/// hidden prompt with the password (what sshd asks through PAM). Returns
/// the method the server accepted, if any.
async fn authenticate_password(
    handle: &mut Handle<HostKeyCheck>,
    user: &str,
    password: &Password,
) -> Result<Option<&'static str>, Failure> {
    use russh::client::KeyboardInteractiveAuthResponse as Kbd;
    let result = handle
        .authenticate_password(user, password.expose())
        .await
        .map_err(lost)?;
    if result.success() {
        return Ok(Some("password"));
    }
    let mut response = handle
        .authenticate_keyboard_interactive_start(user, None)
        .await
        .map_err(lost)?;
    // PAM may ask more than once (a password, then an info message); a
    // bound keeps a server that keeps asking from looping forever.
    for _ in 0..8 {
        match response {
            Kbd::Success => return Ok(Some("keyboard-interactive")),
            Kbd::Failure { .. } => return Ok(None),
            Kbd::InfoRequest { prompts, .. } => {
                let answers = prompts
                    .iter()
                    .map(|p| {
                        if p.echo {
                            String::new()
                        } else {
                            password.expose().to_owned()
                        }
                    })
                    .collect();
                response = handle
                    .authenticate_keyboard_interactive_respond(answers)
                    .await
                    .map_err(lost)?;
            }
        }
    }
    Ok(None)
}

async fn try_agent(
    handle: &mut Handle<HostKeyCheck>,
    user: &str,
    socket: &std::path::Path,
) -> Result<bool, String> {
    let mut agent = AgentClient::connect_uds(socket)
        .await
        .map_err(|e| e.to_string())?;
    let identities = agent
        .request_identities()
        .await
        .map_err(|e| e.to_string())?;
    for identity in identities {
        let AgentIdentity::PublicKey { key, .. } = identity else {
            continue;
        };
        let hash = if key.algorithm().is_rsa() {
            Some(HashAlg::Sha256)
        } else {
            None
        };
        match handle
            .authenticate_publickey_with(user, key, hash, &mut agent)
            .await
        {
            Ok(AuthResult::Success) => return Ok(true),
            Ok(_) => {}
            Err(e) => tracing::debug!("agent signing failed: {e}"),
        }
    }
    Ok(false)
}
