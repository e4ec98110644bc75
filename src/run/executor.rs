//! [`Executor`]: one config, the state a long-lived process keeps for it
//! (open connections, loaded keys, the views of known_hosts and the key
//! state file), and the operations, each a method that runs through the
//! one audited runner ([`super::runner`]).
//!
//! An executor is cheap to clone and meant to be shared: a service keeps
//! one for weeks and runs many requests on it at once. Nothing it caches
//! goes stale: known_hosts and the key state are read again when their
//! files change, a loaded key when its file changes, and a failure is never
//! cached.

use std::path::PathBuf;
use std::sync::Arc;

use crate::audit::{AuditError, AuditLog, Redactor};
use crate::config::{Config, ConfigError, Hop, Vm};
use crate::failure::Failure;
use crate::fresh::Fresh;
use crate::keydir::lock::KeyLocks;
use crate::keydir::resolve::host_key;
use crate::keydir::{KeyState, KeysError, load_state, state_path};
use crate::run::pool::Pool;
use crate::targets::{Selection, TargetError, Targets};
use crate::transport::endpoint::Endpoint;
use crate::transport::host_key::{self, KnownHostsView};
use crate::transport::identity::KeyStore;
use crate::transport::known_hosts::KnownHostsError;
use crate::transport::options::{ConnectOptions, ssh_config};

/// Why a run could not start at all (as opposed to a host failing).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The config could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The selector selected nothing usable.
    #[error(transparent)]
    Targets(#[from] TargetError),
    /// The known_hosts file could not be read.
    #[error(transparent)]
    KnownHosts(#[from] KnownHostsError),
    /// A field of the request is invalid (an empty command, a bad `--env`
    /// name, a timeout of zero): the error names it.
    #[error(transparent)]
    Request(#[from] super::RequestError),
    /// The request itself is invalid (a missing key, a script that cannot
    /// be read, …).
    #[error("{0}")]
    Invalid(String),
    /// A local step of a key operation failed before any host was
    /// contacted.
    #[error(transparent)]
    Keys(#[from] KeysError),
    /// An operation that contacts no host (`keys generate`, `keys prune`)
    /// failed; its `end` record says so too.
    #[error("{}", .0.message)]
    Failed(Failure),
    /// The audit log could not be opened or written: no host was
    /// contacted (fail closed).
    #[error("the audit log cannot record this run, so no host was contacted")]
    Audit(#[from] AuditError),
}

/// Runs operations on the hosts of one config. Clones share everything.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

struct Inner {
    /// The inventory and settings.
    config: Config,
    /// How to connect, derived from the config.
    options: ConnectOptions,
    /// remex's pinned host keys, read again when the file changes.
    known: Arc<KnownHostsView>,
    /// The key state file (which key each host uses after a deploy or a
    /// rotation), read again when it changes.
    key_state: Fresh<KeyState>,
    /// Private keys loaded so far.
    keys: KeyStore,
    /// Whose turn it is to change a host's keys (key-state changes are
    /// serialized per host: `keydir/lock.rs`).
    key_locks: KeyLocks,
    /// Where every action is recorded.
    audit: AuditLog,
    /// The config's redaction patterns (also when auditing is off: output
    /// is redacted either way).
    redactor: Redactor,
    /// Open connections, within the `max_parallel` budget.
    pool: Pool,
}

/// Builds an [`Executor`] with what the config cannot say.
#[derive(Debug)]
pub struct ExecutorBuilder {
    config: Config,
    agent: Option<PathBuf>,
    reuse_connections: bool,
}

impl ExecutorBuilder {
    /// The ssh-agent socket whose keys are tried after the key file, when
    /// the config's `use_agent` is on (`SSH_AUTH_SOCK` for the CLI). The
    /// library reads no environment variable itself.
    pub fn agent_socket(mut self, socket: Option<PathBuf>) -> Self {
        self.agent = socket;
        self
    }

    /// Whether a host's connection stays open after its host task, for the
    /// next run to reuse (default `true`: a service's runs share them). A
    /// program that makes one run turns it off: each connection is then
    /// closed as soon as its host is done, which frees its buffers while
    /// the other hosts go on (a 1 MiB upload to 1,000 hosts at
    /// `max_parallel: 1000`: 320 MB at peak, not 478 MB) and leaves the end
    /// of the run nothing to close.
    pub fn reuse_connections(mut self, reuse: bool) -> Self {
        self.reuse_connections = reuse;
        self
    }

    /// The executor. It works on at most `remote_execution.max_parallel`
    /// connections at once, in all its runs together, and opens the audit
    /// log of the config's `audit:` section.
    ///
    /// # Errors
    ///
    /// [`Error::Audit`] when the audit log cannot be opened (fail closed);
    /// [`Error::KnownHosts`] when known_hosts cannot be read;
    /// [`Error::Invalid`] for a bad cipher list or jump chain (a config
    /// changed after it was validated, e.g. by `--jump`).
    pub fn build(self) -> Result<Executor, Error> {
        let config = self.config;
        for (name, vm) in &config.vms {
            if config.has_jump(vm)
                && let Some(why) = config.jump_problem(name)
            {
                return Err(Error::Invalid(format!("vms.{name}.jump: {why}")));
            }
        }
        let re = &config.remote_execution;
        let options = ConnectOptions {
            connect_timeout: re.connect_timeout,
            retries: re.connect_retries,
            host_key_policy: re.host_key_policy,
            known_hosts_path: re.known_hosts.clone(),
            agent: self.agent.filter(|_| re.use_agent),
            max_sessions: re.max_sessions,
            ciphers: re.ciphers.clone(),
            keepalive_interval: re.keepalive_interval,
            keepalive_count_max: re.keepalive_count_max,
            address_family: re.address_family,
            host_certificates: false,
        };
        ssh_config(&options).map_err(Error::Invalid)?;
        let known = Arc::new(KnownHostsView::new(&re.known_hosts));
        // Read now so a broken file is reported before any host; read again
        // whenever it changes.
        known.get(crate::transport::known_hosts::KnownHosts::load)?;
        let key_state = Fresh::new(state_path(&re.key_storage_path));
        let key_locks = KeyLocks::new(&re.key_storage_path);
        let pool = Pool::new(re.max_parallel, re.max_sessions, self.reuse_connections);
        let redactor = Redactor::from_config(&config.audit)?;
        let audit = AuditLog::open(&config.audit)?;
        if !audit.is_enabled() {
            tracing::warn!(
                "auditing is off (audit.enabled: false in {}): nothing this run does is recorded; \
                 meant for labs and benchmarks only",
                config.source.display()
            );
        }
        Ok(Executor {
            inner: Arc::new(Inner {
                config,
                options,
                known,
                key_state,
                keys: KeyStore::default(),
                key_locks,
                audit,
                redactor,
                pool,
            }),
        })
    }
}

impl Executor {
    /// An executor for `config`, without an ssh-agent (see
    /// [`Executor::builder`]).
    ///
    /// # Errors
    ///
    /// See [`ExecutorBuilder::build`].
    pub fn new(config: Config) -> Result<Executor, Error> {
        Self::builder(config).build()
    }

    /// A builder, for what the config cannot say (the agent socket).
    pub fn builder(config: Config) -> ExecutorBuilder {
        ExecutorBuilder {
            config,
            agent: None,
            reuse_connections: true,
        }
    }

    /// The config this executor runs on.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The audit log every operation is recorded in.
    pub fn audit_log(&self) -> &AuditLog {
        &self.inner.audit
    }

    /// The host names `selector` selects, in inventory order.
    ///
    /// # Errors
    ///
    /// A selector that names nothing in the inventory, or selects nothing.
    pub fn select(&self, selector: &str) -> Result<Selection, TargetError> {
        self.inner.config.select(selector)
    }

    /// The hosts an operation runs on: `targets` resolved now, or a
    /// selection made before (each of its hosts still in the inventory).
    ///
    /// # Errors
    ///
    /// A selector that selects nothing; a selection naming a host this
    /// executor's inventory does not hold.
    pub(crate) fn resolve(&self, targets: Targets<'_>) -> Result<Selection, TargetError> {
        match targets {
            Targets::Selector(selector) => self.select(selector),
            Targets::Selection(selection) => {
                if let Some(missing) = selection
                    .hosts()
                    .iter()
                    .find(|host| !self.inner.config.vms.contains_key(*host))
                {
                    return Err(TargetError::Unknown {
                        name: missing.clone(),
                        suggestion: None,
                    });
                }
                Ok(selection.clone())
            }
        }
    }

    /// Where and as whom remex connects to `name` now. The key is the
    /// config's `key:` for the host when it has one, else the key the key
    /// state file records for the host (after `remex keys deploy`/`rotate`),
    /// else `default_key` (see [`crate::keys`]).
    pub fn endpoint(&self, name: &str) -> Option<Endpoint> {
        let config = &self.inner.config;
        let vm: &Vm = config.vms.get(name)?;
        let key_path = match &vm.key {
            Some(_) => config.key_path_for(vm),
            None => {
                let state = self.key_state();
                host_key(config, &state, name, vm).path
            }
        };
        Some(Endpoint {
            name: name.to_owned(),
            host: vm.host.clone(),
            port: vm.port,
            user: config.user_for(vm),
            key_path,
            via: self.jump_endpoint(vm),
            tuning: vm.tuning,
        })
    }

    /// The endpoint of the last hop of `vm`'s jump chain (itself reached
    /// through the hops before it; the first hop as on its own). A chain
    /// that does not parse was refused when the config was validated.
    fn jump_endpoint(&self, vm: &Vm) -> Option<Box<Endpoint>> {
        let config = &self.inner.config;
        let chain = config.jump_chain(vm).ok()?;
        let mut via: Option<Box<Endpoint>> = None;
        for (i, hop) in chain.iter().enumerate() {
            let mut endpoint = match hop {
                Hop::Vm(name) => self.endpoint(name)?,
                Hop::Address {
                    user,
                    host,
                    port,
                    text,
                } => Endpoint {
                    name: text.clone(),
                    host: host.clone(),
                    port: *port,
                    user: user.clone().unwrap_or_else(|| config.default_user()),
                    key_path: config
                        .remote_execution
                        .key_storage_path
                        .join(&config.remote_execution.default_key),
                    via: None,
                    tuning: crate::config::HostTuning::default(),
                },
            };
            if i > 0 {
                endpoint.via = via.take();
            }
            via = Some(Box::new(endpoint));
        }
        via
    }

    /// [`Executor::endpoint`] for a name that selection produced (so it
    /// exists); a blank endpoint otherwise, never a panic.
    pub(crate) fn endpoint_or_blank(&self, name: &str) -> Endpoint {
        self.endpoint(name).unwrap_or_else(|| Endpoint {
            name: name.to_owned(),
            ..Endpoint::default()
        })
    }

    /// The key state as the file says now; an unreadable file counts as
    /// empty (a broken key directory must not stop `remex exec`), with a
    /// warning.
    pub(crate) fn key_state(&self) -> Arc<KeyState> {
        let dir = &self.inner.config.remote_execution.key_storage_path;
        self.inner
            .key_state
            .get(|_| load_state(dir))
            .unwrap_or_else(|e| {
                tracing::warn!("ignoring the key state: {e}");
                Arc::new(KeyState::default())
            })
    }

    /// This process changed the key state file: see it at once.
    pub(crate) fn key_state_changed(&self) {
        self.inner.key_state.invalidate();
    }

    /// remex's known_hosts, read again when it changes.
    pub(crate) fn known_hosts(&self) -> &Arc<KnownHostsView> {
        &self.inner.known
    }

    /// This process changed known_hosts: see it at once.
    pub(crate) fn known_hosts_changed(&self) {
        self.inner.known.invalidate();
    }

    /// Whether known_hosts, as it is now, still trusts the host key of an
    /// open connection to `endpoint`.
    pub(crate) fn still_trusted(
        &self,
        endpoint: &Endpoint,
        key: &host_key::HostKey,
    ) -> Result<(), Failure> {
        let known = host_key::current(&self.inner.known)?;
        host_key::judge(endpoint, &known, key)
    }

    /// How this executor connects (timeouts, host-key policy, known_hosts).
    pub(crate) fn connect_options(&self) -> &ConnectOptions {
        &self.inner.options
    }

    /// The key directory's locks: a host's turn for a key step, the whole
    /// directory's for archive and prune.
    pub(crate) fn key_locks(&self) -> &KeyLocks {
        &self.inner.key_locks
    }

    /// Private keys loaded so far.
    pub(crate) fn key_store(&self) -> &KeyStore {
        &self.inner.keys
    }

    /// The config's redactor (runs extend it with their secrets).
    pub(crate) fn redactor(&self) -> &Redactor {
        &self.inner.redactor
    }

    /// The open connections.
    pub(crate) fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Connections open now, in all runs (at most `max_parallel`).
    pub fn open_connections(&self) -> usize {
        self.inner.pool.open()
    }

    /// Closes every open connection (the next run reconnects).
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }
}
