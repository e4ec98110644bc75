//! One authenticated SSH connection to one host, shared by every operation
//! on that host in a process (a channel per command).
//!
//! Connecting is: resolve and dial ([`crate::tcp`]), the SSH handshake with
//! the host key checked against remex's known_hosts ([`HostKeyCheck`]), then
//! public-key authentication with the host's key file, and the ssh-agent's
//! keys when allowed. The whole is bounded by the connect timeout.
//!
//! **Invariant:** a host key is accepted only when known_hosts pins it, or
//! when the policy is accept-new and known_hosts knows nothing of the host.
//! Nothing here retries after an authentication or host-key failure.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, AuthResult, Handle};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{Channel, ChannelMsg};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::HostKeyPolicy;
use crate::identity::{IdentityError, KeyStore, fingerprint};
use crate::known_hosts::{self, HostKeyStatus, KnownHosts};
use crate::report::{ErrorKind, Failure};
use crate::tcp::{self, DialError};

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
}

/// How to connect; the same for every host of a run.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
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
    /// Try the ssh-agent's keys when `SSH_AUTH_SOCK` is set
    /// (`IdentitiesOnly=no`).
    pub use_agent: bool,
    /// Channels open at once on one connection; sshd refuses more than its
    /// `MaxSessions` (default 10).
    pub max_sessions: usize,
    /// Cipher preference (`Ciphers`); empty means [`default_ciphers`].
    pub ciphers: Vec<String>,
}

/// remex's cipher preference: AES-GCM first on CPUs with AES instructions
/// (measured ~1.4× chacha20-poly1305's throughput there), chacha20 first
/// elsewhere.
pub fn default_ciphers() -> Vec<russh::cipher::Name> {
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
pub fn ssh_config(options: &ConnectOptions) -> Result<client::Config, String> {
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
        keepalive_interval: Some(Duration::from_secs(30)),
        ..client::Config::default()
    };
    config.preferred.cipher = ciphers.into();
    Ok(config)
}

/// The handshake's view of the host key: checks it and remembers why it was
/// refused, so the error can say.
pub struct HostKeyCheck {
    endpoint: Endpoint,
    known: Arc<KnownHosts>,
    policy: HostKeyPolicy,
    known_hosts_path: PathBuf,
    /// What the check concluded: the accepted key's fingerprint, or the
    /// refusal.
    verdict: Arc<Mutex<Option<Result<String, Failure>>>>,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let verdict = match offered {
            PublicKeyOrCertificate::PublicKey { key, .. } => self.judge(key),
            PublicKeyOrCertificate::Certificate(_) => Err(Failure::new(
                ErrorKind::HostKey,
                "the host presented a certificate; remex pins plain host keys only",
            )),
        };
        let accepted = verdict.is_ok();
        if let Ok(mut slot) = self.verdict.lock() {
            *slot = Some(verdict);
        }
        Ok(accepted)
    }
}

impl HostKeyCheck {
    fn judge(&self, key: &PublicKey) -> Result<String, Failure> {
        let Endpoint {
            name, host, port, ..
        } = &self.endpoint;
        let offered = fingerprint(key);
        let path = self.known_hosts_path.display();
        let refuse = |message: String| Err(Failure::new(ErrorKind::HostKey, message));
        match self.known.check(host, *port, key) {
            HostKeyStatus::Trusted => Ok(offered),
            HostKeyStatus::Revoked { fingerprint } => refuse(format!(
                "host key {fingerprint} of {name} ({host}:{port}) is marked @revoked in {path}; refusing to connect"
            )),
            HostKeyStatus::Changed { expected, offered } => refuse(format!(
                "HOST KEY CHANGED for {name} ({host}:{port}): expected {}, offered {offered}. \
                 This may be an attack; if the host was reinstalled, remove the old pin from {path} \
                 and pin the new key after checking it out of band",
                expected.join(" or ")
            )),
            HostKeyStatus::Unknown => match self.policy {
                HostKeyPolicy::AcceptNew => {
                    known_hosts::append(&self.known_hosts_path, host, *port, key).map_err(|e| {
                        Failure::new(
                            ErrorKind::HostKey,
                            format!("cannot pin the host key of {name}: {e}"),
                        )
                    })?;
                    tracing::info!(host = %name, %offered, "pinned new host key (accept-new)");
                    Ok(offered)
                }
                HostKeyPolicy::Strict => refuse(format!(
                    "host key of {name} ({host}:{port}) is unknown: {offered} ({}) is not pinned in {path}; \
                     check it and add it there (or set host_key_policy: accept-new to pin on first use)",
                    key.algorithm()
                )),
            },
        }
    }
}

/// The state a host-key refusal reports: `changed`, `revoked` or `unknown`
/// (kept beside the messages of [`HostKeyCheck::judge`] that it reads).
pub fn host_key_state(failure: &Failure) -> &'static str {
    if failure.message.starts_with("HOST KEY CHANGED") {
        "changed"
    } else if failure.message.contains("is marked @revoked") {
        "revoked"
    } else {
        "unknown"
    }
}

/// An authenticated connection.
pub struct Connection {
    /// The russh session handle; channels are opened on it.
    handle: Handle<HostKeyCheck>,
    /// Free channel slots (the server's MaxSessions).
    sessions: Arc<Semaphore>,
    /// SHA256 fingerprint of the host key that was verified.
    host_key: String,
    /// Who we connected to.
    endpoint: Endpoint,
}

/// An open session channel, holding one of the connection's slots.
pub struct Session {
    /// The channel.
    pub channel: Channel<client::Msg>,
    /// Released when the session is dropped.
    pub(crate) slot: OwnedSemaphorePermit,
}

impl Connection {
    /// Connects and authenticates, within `options.connect_timeout`.
    pub async fn open(
        endpoint: &Endpoint,
        options: &ConnectOptions,
        known: Arc<KnownHosts>,
        keys: &KeyStore,
    ) -> Result<Connection, Failure> {
        let config = Arc::new(
            ssh_config(options).map_err(|message| Failure::new(ErrorKind::Connect, message))?,
        );
        // Loaded before the clock starts: it may prompt for a passphrase.
        let key = keys.load(&endpoint.key_path).await;
        let verdict = Arc::new(Mutex::new(None));
        let check = HostKeyCheck {
            endpoint: endpoint.clone(),
            known,
            policy: options.host_key_policy,
            known_hosts_path: options.known_hosts_path.clone(),
            verdict: verdict.clone(),
        };
        let attempt = async {
            let stream = tcp::dial(&endpoint.host, endpoint.port, options.retries)
                .await
                .map_err(|e| dial_failure(&e))?;
            let mut handle = client::connect_stream(config, stream, check)
                .await
                .map_err(|e| handshake_failure(endpoint, &e, &verdict))?;
            authenticate(&mut handle, endpoint, key, options.use_agent).await?;
            Ok::<_, Failure>(handle)
        };
        let handle = match tokio::time::timeout(options.connect_timeout, attempt).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(Failure::new(
                    ErrorKind::ConnectTimeout,
                    format!(
                        "connecting to {}:{} took longer than {:?} (connect_timeout)",
                        endpoint.host, endpoint.port, options.connect_timeout
                    ),
                ));
            }
        };
        let host_key = match verdict.lock().map(|v| v.clone()) {
            Ok(Some(Ok(fp))) => fp,
            _ => String::new(),
        };
        Ok(Connection {
            handle,
            sessions: Arc::new(Semaphore::new(options.max_sessions.max(1))),
            host_key,
            endpoint: endpoint.clone(),
        })
    }

    /// Opens a session channel, waiting for a free slot.
    ///
    /// sshd frees a session's place in its `MaxSessions` table a moment after
    /// the channel's close, so an open that follows a close closely can be
    /// refused though the count is within the limit: a refused open is
    /// retried a few times with a short backoff before it is an error.
    pub async fn session(&self) -> Result<Session, Failure> {
        let slot = self
            .sessions
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Failure::new(ErrorKind::Io, "connection is shutting down"))?;
        let mut backoff = Duration::from_millis(5);
        let mut retries = 6;
        loop {
            match self.handle.channel_open_session().await {
                Ok(channel) => return Ok(Session { channel, slot }),
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

    /// A session channel if a slot is free right now and the server grants
    /// the channel; `None` otherwise (for optional extra channels, such as
    /// the additional SFTP channels of a large upload).
    pub async fn try_session(&self) -> Option<Session> {
        let slot = self.sessions.clone().try_acquire_owned().ok()?;
        let channel = self.handle.channel_open_session().await.ok()?;
        Some(Session { channel, slot })
    }

    /// Session slots free right now.
    pub fn free_sessions(&self) -> usize {
        self.sessions.available_permits()
    }

    /// SHA256 fingerprint of the verified host key.
    pub fn host_key_fingerprint(&self) -> &str {
        &self.host_key
    }

    /// Whom this connection reaches.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Whether the connection has gone away.
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Runs one of remex's own helper commands (never user input) on a
    /// fresh channel, feeding it `stdin`, and returns its exit status and
    /// its stdout and stderr together.
    pub async fn run_helper(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> Result<(Option<u32>, Vec<u8>), Failure> {
        let mut session = self.session().await?;
        let io = |e: russh::Error| Failure::new(ErrorKind::Io, e.to_string());
        tracing::debug!(channel = ?session.channel.id(), "helper command");
        session.channel.exec(true, command).await.map_err(io)?;
        if let Some(bytes) = stdin {
            session.channel.data(bytes).await.map_err(io)?;
        }
        session.channel.eof().await.map_err(io)?;
        let mut status = None;
        let mut out = Vec::new();
        while let Some(msg) = session.channel.wait().await {
            match msg {
                ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } => {
                    out.extend_from_slice(&data);
                }
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        Ok((status, out))
    }

    /// Closes the connection politely.
    pub async fn close(&self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
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
    verdict: &Mutex<Option<Result<String, Failure>>>,
) -> Failure {
    if let Ok(Some(Err(refusal))) = verdict.lock().map(|v| v.clone()) {
        return refusal;
    }
    Failure::new(
        ErrorKind::Connect,
        format!(
            "SSH handshake with {}:{} failed: {e}",
            endpoint.host, endpoint.port
        ),
    )
}

/// Public-key authentication: the host's key file first, then the agent's
/// keys. A key file that exists but cannot be used (too open, encrypted
/// without a passphrase, corrupt) is an error of its own, not skipped.
async fn authenticate(
    handle: &mut Handle<HostKeyCheck>,
    endpoint: &Endpoint,
    key: Result<Arc<PrivateKey>, IdentityError>,
    use_agent: bool,
) -> Result<(), Failure> {
    let auth_failure = |message: String| Failure::new(ErrorKind::Auth, message);
    let ssh_failure = |e: russh::Error| {
        Failure::new(
            ErrorKind::Connect,
            format!("connection lost during authentication: {e}"),
        )
    };
    let user = endpoint.user.as_str();
    let mut tried = Vec::new();
    match key {
        Ok(key) => {
            let hash = if key.algorithm().is_rsa() {
                handle
                    .best_supported_rsa_hash()
                    .await
                    .map_err(ssh_failure)?
                    .flatten()
                    .or(Some(HashAlg::Sha256))
            } else {
                None
            };
            let fp = fingerprint(key.public_key());
            let result = handle
                .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key, hash))
                .await
                .map_err(ssh_failure)?;
            if matches!(result, AuthResult::Success) {
                return Ok(());
            }
            tried.push(format!("{} ({fp})", endpoint.key_path.display()));
        }
        Err(IdentityError::Missing { .. }) if use_agent && agent_available() => {}
        Err(e) => return Err(auth_failure(e.to_string())),
    }
    if use_agent && agent_available() {
        match try_agent(handle, user).await {
            Ok(true) => return Ok(()),
            Ok(false) => tried.push("the ssh-agent's keys".to_owned()),
            Err(message) => tried.push(format!("the ssh-agent ({message})")),
        }
    }
    Err(auth_failure(format!(
        "{}:{} refused authentication as `{user}` with {}; deploy the key to the host's authorized_keys or fix `user`/`key` in the config",
        endpoint.host,
        endpoint.port,
        tried.join(" and ")
    )))
}

fn agent_available() -> bool {
    std::env::var_os("SSH_AUTH_SOCK").is_some()
}

async fn try_agent(handle: &mut Handle<HostKeyCheck>, user: &str) -> Result<bool, String> {
    let mut agent = AgentClient::connect_env()
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
