//! The executor: a config, the connections it has opened, and fan-outs over
//! a selection of hosts.
//!
//! Concurrency has one documented limit: at most `parallel` hosts are worked
//! on at once (a semaphore; default `max_parallel`), each host in its own
//! task of a `JoinSet`. Connections are opened on first use and kept for the
//! life of the executor, so a second operation on a host reuses the
//! connection (a channel per command). One failed host never stops the
//! others: its failure is recorded in its outcome.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::config::{Config, ConfigError, Vm};
use crate::connection::{ConnectOptions, Connection, Endpoint};
use crate::exec::{self, Command, Exec};
use crate::identity::KeyStore;
use crate::known_hosts::{HostKeyStatus, KnownHosts, KnownHostsError};
use crate::report::{Captured, ErrorKind, Failure, HostOutcome, Report, ScriptInfo, millis};
use crate::script::Script;
use crate::targets::{self, Candidate, TargetError};

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
    /// The request itself is invalid (empty command, bad `--env` name, …).
    #[error("{0}")]
    Invalid(String),
}

/// Runs operations on the hosts of one config.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

struct Inner {
    /// The inventory and settings.
    config: Config,
    /// How to connect, derived from the config.
    options: ConnectOptions,
    /// Hosts worked on at once.
    parallel: usize,
    /// remex's pinned host keys, read once.
    known: Arc<KnownHosts>,
    /// Private keys loaded so far.
    keys: KeyStore,
    /// One slot per host: its open connection, once there is one. The async
    /// mutex makes concurrent users of a host share one connection attempt.
    pool: std::sync::Mutex<HashMap<String, Slot>>,
}

/// A host's place in the pool: empty until connected.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Connection>>>>;

impl Executor {
    /// An executor for `config`. It works on at most
    /// `remote_execution.max_parallel` hosts at once (`--parallel` sets that
    /// field before building the executor).
    pub fn new(config: Config) -> Result<Executor, Error> {
        let re = &config.remote_execution;
        let options = ConnectOptions {
            connect_timeout: re.connect_timeout,
            retries: re.connect_retries,
            host_key_policy: re.host_key_policy,
            known_hosts_path: re.known_hosts.clone(),
            use_agent: re.use_agent,
            max_sessions: re.max_sessions,
            ciphers: re.ciphers.clone(),
        };
        crate::connection::ssh_config(&options).map_err(Error::Invalid)?;
        let known = Arc::new(KnownHosts::load(&re.known_hosts)?);
        let parallel = re.max_parallel;
        Ok(Executor {
            inner: Arc::new(Inner {
                config,
                options,
                parallel,
                known,
                keys: KeyStore::default(),
                pool: std::sync::Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The config this executor runs on.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The host names `selector` selects, in inventory order.
    pub fn select(&self, selector: &str) -> Result<Vec<String>, TargetError> {
        let vms = &self.inner.config.vms;
        let candidates: Vec<Candidate<'_>> = vms
            .iter()
            .map(|(name, vm)| Candidate {
                name,
                groups: &vm.groups,
            })
            .collect();
        targets::select(selector, &candidates)
    }

    /// Runs `exec` on every host `selector` selects; one outcome per host.
    pub async fn exec(&self, selector: &str, exec: &Exec) -> Result<Report, Error> {
        exec.validate().map_err(Error::Invalid)?;
        let hosts = self.select(selector)?;
        let request = exec;
        let exec = Arc::new(exec.clone());
        let timeout = exec
            .timeout
            .unwrap_or(self.inner.config.remote_execution.command_timeout);
        let started = Instant::now();
        let results = self
            .fan_out(hosts, move |this, name| {
                let exec = exec.clone();
                async move {
                    let begun = Instant::now();
                    let mut outcome = this.blank_outcome(&name);
                    let cancelled = exec.cancel.as_ref().is_some_and(|c| c.is_cancelled());
                    let connection = if cancelled {
                        Err(Failure::new(
                            ErrorKind::Cancelled,
                            "interrupted before this host was contacted",
                        ))
                    } else {
                        this.connection(&name).await
                    };
                    match connection {
                        Ok(conn) => {
                            let ran = exec::run(&conn, &exec, &name, timeout).await;
                            outcome.exit_code = ran.exit_code;
                            outcome.signal = ran.signal;
                            outcome.stdout = ran.stdout;
                            outcome.stderr = ran.stderr;
                            outcome.error = ran.error;
                            if matches!(&outcome.error, Some(f) if f.kind == ErrorKind::Io) {
                                this.forget(&name);
                            }
                        }
                        Err(failure) => outcome.error = Some(failure),
                    }
                    outcome.duration = begun.elapsed();
                    if let Some(observer) = &exec.observer {
                        observer.done(&outcome);
                    }
                    outcome
                }
            })
            .await;
        let report = match &request.command {
            Command::Script { script, .. } => {
                let mut report = Report::new("script", results, started.elapsed());
                report.script = Some(ScriptInfo {
                    name: script.name.clone(),
                    sha256: script.sha256.clone(),
                    size: script.size(),
                });
                report
            }
            _ => Report::new("exec", results, started.elapsed()),
        };
        Ok(report)
    }

    /// Runs the local script at `path` with `args` on every selected host
    /// (the old module's `execute_remote_script`), with the settings of
    /// `options` (env, cwd, stdin, timeout, sudo, …; its command is replaced).
    pub async fn script(
        &self,
        selector: &str,
        path: &std::path::Path,
        args: &[String],
        options: &Exec,
    ) -> Result<Report, Error> {
        let script = Script::load(path).map_err(|e| {
            Error::Invalid(format!("cannot read the script {}: {e}", path.display()))
        })?;
        let mut exec = options.clone();
        exec.command = Command::Script {
            script,
            args: args.to_vec(),
        };
        self.exec(selector, &exec).await
    }

    /// Checks each selected host: reachable, host key, authentication, and
    /// the round trip of a no-op command.
    pub async fn check(&self, selector: &str) -> Result<CheckReport, Error> {
        let hosts = self.select(selector)?;
        let started = Instant::now();
        let results = self
            .fan_out(
                hosts,
                |this, name| async move { this.check_one(&name).await },
            )
            .await;
        let ok = results.iter().filter(|c| c.error.is_none()).count();
        Ok(CheckReport {
            version: crate::report::SCHEMA_VERSION,
            operation: "check",
            summary: CheckSummary {
                total: results.len(),
                ok,
                failed: results.len() - ok,
                duration_ms: millis(started.elapsed()),
            },
            results,
        })
    }

    async fn check_one(&self, name: &str) -> HostCheck {
        let endpoint = self.endpoint_or_blank(name);
        let mut check = HostCheck {
            host: name.to_owned(),
            address: endpoint.host.clone(),
            port: endpoint.port,
            user: endpoint.user.clone(),
            reachable: false,
            host_key: "unknown",
            host_key_fingerprint: None,
            auth: false,
            rtt_ms: None,
            error: None,
        };
        match self.connection(name).await {
            Ok(conn) => {
                check.reachable = true;
                check.host_key = "pinned";
                check.host_key_fingerprint = Some(conn.host_key_fingerprint().to_owned());
                check.auth = true;
                let begun = Instant::now();
                match conn.run_helper("true", None).await {
                    Ok(_) => check.rtt_ms = Some(begun.elapsed().as_secs_f64() * 1000.0),
                    Err(failure) => check.error = Some(failure),
                }
            }
            Err(failure) => {
                check.reachable = !matches!(
                    failure.kind,
                    ErrorKind::Dns | ErrorKind::Connect | ErrorKind::ConnectTimeout
                );
                if failure.kind == ErrorKind::HostKey {
                    check.host_key = crate::connection::host_key_state(&failure);
                } else if failure.kind == ErrorKind::Auth
                    || !self
                        .inner
                        .known
                        .pinned(&endpoint.host, endpoint.port)
                        .is_empty()
                {
                    // Auth comes after the key was accepted; unreached hosts
                    // report what known_hosts holds for them.
                    check.host_key = "pinned";
                }
                check.error = Some(failure);
            }
        }
        check
    }

    /// Runs `work` for every host, at most `parallel` at once, and returns
    /// the results in the order of `hosts`.
    pub(crate) async fn fan_out<T, F, Fut>(&self, hosts: Vec<String>, work: F) -> Vec<T>
    where
        T: Send + 'static,
        F: Fn(Executor, String) -> Fut,
        Fut: std::future::Future<Output = T> + Send + 'static,
    {
        let limit = Arc::new(Semaphore::new(self.inner.parallel));
        let mut tasks = JoinSet::new();
        for (index, name) in hosts.into_iter().enumerate() {
            let limit = limit.clone();
            let job = work(self.clone(), name);
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                (index, job.await)
            });
        }
        let mut results: Vec<(usize, T)> = Vec::with_capacity(tasks.len());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(pair) => results.push(pair),
                // A panicking host task is a bug; keep the others' results.
                Err(e) => tracing::error!("a host task failed: {e}"),
            }
        }
        results.sort_by_key(|(index, _)| *index);
        results.into_iter().map(|(_, result)| result).collect()
    }

    /// The connection to `name`, opened on first use and reused afterwards.
    pub async fn connection(&self, name: &str) -> Result<Arc<Connection>, Failure> {
        let slot = {
            let mut pool = self
                .inner
                .pool
                .lock()
                .map_err(|_| Failure::new(ErrorKind::Io, "connection pool poisoned"))?;
            pool.entry(name.to_owned()).or_default().clone()
        };
        let mut slot = slot.lock().await;
        if let Some(conn) = slot.as_ref()
            && !conn.is_closed()
        {
            return Ok(conn.clone());
        }
        let endpoint = self.endpoint(name).ok_or_else(|| {
            Failure::new(
                ErrorKind::Connect,
                format!("no host named `{name}` in the config"),
            )
        })?;
        let conn = Arc::new(
            Connection::open(
                &endpoint,
                &self.inner.options,
                self.inner.known.clone(),
                &self.inner.keys,
            )
            .await?,
        );
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Drops a host's connection so the next use reconnects.
    pub(crate) fn forget(&self, name: &str) {
        if let Ok(mut pool) = self.inner.pool.lock() {
            pool.remove(name);
        }
    }

    /// Closes every open connection.
    pub async fn close(&self) {
        let slots: Vec<_> = match self.inner.pool.lock() {
            Ok(mut pool) => pool.drain().map(|(_, slot)| slot).collect(),
            Err(_) => return,
        };
        for slot in slots {
            if let Some(conn) = slot.lock().await.take() {
                conn.close().await;
            }
        }
    }

    /// Where and as whom to connect to `name`.
    pub fn endpoint(&self, name: &str) -> Option<Endpoint> {
        let config = &self.inner.config;
        let vm: &Vm = config.vms.get(name)?;
        Some(Endpoint {
            name: name.to_owned(),
            host: vm.host.clone(),
            port: vm.port,
            user: config.user_for(vm),
            key_path: config.key_path_for(vm),
        })
    }

    /// [`Executor::endpoint`] for a name that selection produced (so it
    /// exists); a blank endpoint otherwise, never a panic.
    fn endpoint_or_blank(&self, name: &str) -> Endpoint {
        self.endpoint(name).unwrap_or_else(|| Endpoint {
            name: name.to_owned(),
            ..Endpoint::default()
        })
    }

    fn blank_outcome(&self, name: &str) -> HostOutcome {
        let endpoint = self.endpoint_or_blank(name);
        HostOutcome {
            host: name.to_owned(),
            address: endpoint.host,
            port: endpoint.port,
            user: endpoint.user,
            exit_code: None,
            signal: None,
            stdout: Captured::default(),
            stderr: Captured::default(),
            duration: Duration::ZERO,
            error: None,
        }
    }

    /// The pinned-key status of a host as known_hosts sees a given key.
    pub fn host_key_status(
        &self,
        name: &str,
        key: &russh::keys::PublicKey,
    ) -> Option<HostKeyStatus> {
        let endpoint = self.endpoint(name)?;
        Some(self.inner.known.check(&endpoint.host, endpoint.port, key))
    }
}

/// `remex hosts check`: one line per host.
#[derive(Debug, Clone, Serialize)]
pub struct HostCheck {
    /// The host's name.
    pub host: String,
    /// Address as configured.
    pub address: String,
    /// SSH port.
    pub port: u16,
    /// Remote user.
    pub user: String,
    /// Whether TCP and the SSH handshake got through.
    pub reachable: bool,
    /// `pinned`, `unknown`, `changed` or `revoked`.
    pub host_key: &'static str,
    /// SHA256 fingerprint of the verified host key.
    pub host_key_fingerprint: Option<String>,
    /// Whether authentication succeeded.
    pub auth: bool,
    /// Round trip of a no-op command on the open connection, in ms.
    pub rtt_ms: Option<f64>,
    /// What went wrong, if anything.
    pub error: Option<Failure>,
}

/// Counts over a check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckSummary {
    /// Hosts checked.
    pub total: usize,
    /// Hosts fully usable.
    pub ok: usize,
    /// Hosts with a problem.
    pub failed: usize,
    /// Wall time of the check.
    pub duration_ms: u64,
}

/// The result of `hosts check`, in the same envelope as [`Report`].
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Schema version.
    pub version: u32,
    /// `"check"`.
    pub operation: &'static str,
    /// One per host.
    pub results: Vec<HostCheck>,
    /// Counts.
    pub summary: CheckSummary,
}
