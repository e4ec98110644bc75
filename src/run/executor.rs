//! The executor: a config, the connections it has opened, and fan-outs over
//! a selection of hosts.
//!
//! Concurrency has one documented limit: at most `parallel` hosts are worked
//! on at once (a semaphore; default `max_parallel`), each host in its own
//! task of a `JoinSet`. Connections are opened on first use and kept for the
//! life of the executor, so a second operation on a host reuses the
//! connection (a channel per command). One failed host never stops the
//! others: its failure is recorded in its outcome.
//!
//! Every operation that contacts hosts is audited: before any host is
//! contacted the `start` records of all selected hosts are committed to the
//! audit log as one batch, and each host's `end` record is written as it
//! finishes (see [`crate::audit::Trail`]). When the `start` batch cannot be
//! written the operation fails with [`Error::Audit`] and no host is
//! contacted. What the run shows (output, error messages) is redacted with
//! the same redactor as its records.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::audit::{self, AuditError, AuditLog, Event, Op, Record, Redactor, Trail};
use crate::config::{Config, ConfigError, Vm};
use crate::ops::exec::script::Script;
use crate::ops::exec::{self, Command, Exec, Observer, Stream};
use crate::run::report::{Captured, ErrorKind, Failure, HostOutcome, Report, ScriptInfo, millis};
use crate::targets::{self, Candidate, TargetError};
use crate::transport::connection::{ConnectOptions, Connection, Endpoint};
use crate::transport::identity::KeyStore;
use crate::transport::known_hosts::{HostKeyStatus, KnownHosts, KnownHostsError};

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
    /// The audit log could not be opened or written: no host was
    /// contacted (fail closed).
    #[error("the audit log cannot record this run, so no host was contacted")]
    Audit(#[from] AuditError),
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
    /// Where every action is recorded.
    audit: AuditLog,
    /// The config's redaction patterns (also when auditing is off: output
    /// is redacted either way).
    redactor: Redactor,
    /// Per host, the key the key state file (`remex-keys.json`) says remex
    /// uses there, for hosts without an explicit `key:` in the config.
    state_keys: HashMap<String, std::path::PathBuf>,
    /// One slot per host: its open connection, once there is one. The async
    /// mutex makes concurrent users of a host share one connection attempt.
    pool: std::sync::Mutex<HashMap<String, Slot>>,
}

/// A host's place in the pool: empty until connected.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Connection>>>>;

impl Executor {
    /// An executor for `config`. It works on at most
    /// `remote_execution.max_parallel` hosts at once (`--parallel` sets that
    /// field before building the executor), and opens the audit log of the
    /// config's `audit:` section.
    ///
    /// # Errors
    ///
    /// [`Error::Audit`] when the audit log cannot be opened (fail closed);
    /// [`Error::KnownHosts`], [`Error::Invalid`] for a bad cipher list.
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
        crate::transport::connection::ssh_config(&options).map_err(Error::Invalid)?;
        let known = Arc::new(KnownHosts::load(&re.known_hosts)?);
        let parallel = re.max_parallel;
        let redactor = Redactor::from_config(&config.audit)?;
        let audit = AuditLog::open(&config.audit)?;
        if !audit.is_enabled() {
            tracing::warn!(
                "auditing is off (audit.enabled: false in {}): nothing this run does is recorded; \
                 meant for labs and benchmarks only",
                config.source.display()
            );
        }
        let state_keys = crate::ops::keys::resolve::state_keys(&config);
        Ok(Executor {
            inner: Arc::new(Inner {
                config,
                options,
                parallel,
                known,
                keys: KeyStore::default(),
                audit,
                redactor,
                state_keys,
                pool: std::sync::Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The config this executor runs on.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The audit log every operation is recorded in.
    pub fn audit_log(&self) -> &AuditLog {
        &self.inner.audit
    }

    /// Names the workflow driving remex (`--actor`, `REMEX_ACTOR`): written
    /// as `workflow` in every audit record, next to the OS user.
    pub fn set_actor(&self, name: Option<String>) {
        self.inner.audit.set_workflow(name);
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
    ///
    /// # Errors
    ///
    /// Before any host is contacted: an invalid request, a selector that
    /// selects nothing, or an audit log that cannot record the run.
    pub async fn exec(&self, selector: &str, exec: &Exec) -> Result<Report, Error> {
        exec.validate().map_err(Error::Invalid)?;
        let hosts = self.select(selector)?;
        let (op, operation) = match &exec.command {
            Command::Script { .. } => (Op::Script, "script"),
            _ => (Op::Exec, "exec"),
        };
        let trail = self.begin(op, &hosts, exec.secrets(), |record| {
            request_details(record, exec)
        })?;
        let mut exec = exec.clone();
        if let Some(inner) = exec.observer.take() {
            exec.observer = Some(Arc::new(Redacting {
                inner,
                redactor: trail.redactor().clone(),
            }));
        }
        let script_info = match &exec.command {
            Command::Script { script, .. } => Some(ScriptInfo {
                name: script.name.clone(),
                sha256: script.sha256.clone(),
                size: script.size(),
            }),
            _ => None,
        };
        let exec = Arc::new(exec);
        let timeout = exec
            .timeout
            .unwrap_or(self.inner.config.remote_execution.command_timeout);
        let started = Instant::now();
        let (results, audit_error) = self
            .fan_out_audited(&trail, hosts, move |this, name, trail| {
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
                            outcome.host_key = Some(conn.host_key_fingerprint().to_owned());
                            outcome.pinned_host_key = conn.take_pinned_host_key();
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
                    redact_outcome(trail.redactor(), &mut outcome);
                    if let Some(observer) = &exec.observer {
                        observer.done(&outcome);
                    }
                    outcome
                }
            })
            .await;
        let mut report = Report::new(operation, results, started.elapsed());
        report.run = trail.run().to_owned();
        report.audit_error = audit_error;
        report.script = script_info;
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
        let trail = self.begin(Op::Check, &hosts, Vec::new(), |record| record)?;
        let started = Instant::now();
        let (results, audit_error) = self
            .fan_out_audited(&trail, hosts, |this, name, trail| async move {
                let mut check = this.check_one(&name).await;
                if let Some(failure) = &mut check.error {
                    failure.message = trail.redactor().redact(&failure.message).into_owned();
                }
                check
            })
            .await;
        Ok(CheckReport {
            version: crate::run::report::SCHEMA_VERSION,
            operation: "check",
            run: trail.run().to_owned(),
            audit_error,
            summary: CheckSummary::of(results.iter().map(|c| c.error.is_none()), started.elapsed()),
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
                if let Some(problem) = &failure.host_key {
                    check.host_key = problem.state();
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

    /// Starts an audited run of `op` on `hosts`: commits one `start` record
    /// per host (address, port, user, then what `details` adds) before
    /// returning. `secrets` are the run's literal secrets, redacted from its
    /// records and from what it shows.
    ///
    /// # Errors
    ///
    /// [`Error::Audit`]: nothing was recorded; contact no host.
    pub fn begin(
        &self,
        op: Op,
        hosts: &[String],
        secrets: Vec<String>,
        details: impl Fn(Record) -> Record,
    ) -> Result<Arc<Trail>, Error> {
        self.begin_run(audit::new_run_id(), op, hosts, secrets, details)
    }

    /// [`Executor::begin`] with a run id chosen beforehand (for an
    /// operation that records local steps, such as generating a key,
    /// before it contacts hosts).
    ///
    /// # Errors
    ///
    /// [`Error::Audit`]: nothing was recorded; contact no host.
    pub fn begin_run(
        &self,
        run: String,
        op: Op,
        hosts: &[String],
        secrets: Vec<String>,
        details: impl Fn(Record) -> Record,
    ) -> Result<Arc<Trail>, Error> {
        let redactor = self.inner.redactor.with_secrets(secrets)?;
        let starts = hosts
            .iter()
            .map(|name| details(self.host_record(Record::new(Event::Start, op, run.clone()), name)))
            .collect();
        let trail = Trail::begin(&self.inner.audit, redactor, run, op, starts)?;
        Ok(Arc::new(trail))
    }

    /// Appends one record of a local step (a key generated, archived or
    /// pruned; a pin removed), redacted with the config's patterns and on
    /// disk when this returns (under `fsync: always`).
    ///
    /// # Errors
    ///
    /// [`Error::Audit`] when it cannot be written.
    pub fn record(&self, record: Record) -> Result<(), Error> {
        self.inner.audit.append(record)?;
        Ok(())
    }

    /// `record` with `name`'s inventory name, address, port and user.
    pub fn host_record(&self, record: Record, name: &str) -> Record {
        let endpoint = self.endpoint_or_blank(name);
        record
            .host(name)
            .address(endpoint.host)
            .port(endpoint.port)
            .user(endpoint.user)
    }

    /// An audited fan-out in one call: [`Executor::begin`], then
    /// [`Executor::fan_out_audited`]. Returns the results, the run id, and
    /// why some `end` records are missing, if they are.
    ///
    /// # Errors
    ///
    /// [`Error::Audit`] when the `start` records could not be written: no
    /// host was contacted.
    pub async fn audited<T, F, Fut>(
        &self,
        op: Op,
        hosts: Vec<String>,
        secrets: Vec<String>,
        details: impl Fn(Record) -> Record,
        work: F,
    ) -> Result<Audited<T>, Error>
    where
        T: AuditEnd + Send + 'static,
        F: Fn(Executor, String, Arc<Trail>) -> Fut,
        Fut: std::future::Future<Output = T> + Send + 'static,
    {
        let trail = self.begin(op, &hosts, secrets, details)?;
        let (results, audit_error) = self.fan_out_audited(&trail, hosts, work).await;
        Ok(Audited {
            results,
            run: trail.run().to_owned(),
            audit_error,
        })
    }

    /// `Executor::fan_out` inside an audited run: each host's result
    /// becomes its `end` record as it finishes ([`AuditEnd`]). Returns the
    /// results and, when some `end` records could not be written, why.
    pub async fn fan_out_audited<T, F, Fut>(
        &self,
        trail: &Arc<Trail>,
        hosts: Vec<String>,
        work: F,
    ) -> (Vec<T>, Option<String>)
    where
        T: AuditEnd + Send + 'static,
        F: Fn(Executor, String, Arc<Trail>) -> Fut,
        Fut: std::future::Future<Output = T> + Send + 'static,
    {
        let results = self
            .fan_out(hosts, |this, name| {
                let trail = trail.clone();
                let job = work(this.clone(), name.clone(), trail.clone());
                async move {
                    let result = job.await;
                    this.end_host(&trail, &name, &result);
                    result
                }
            })
            .await;
        (results, self.finish(trail))
    }

    /// Writes host `name`'s change records and `end` record for `result`.
    pub fn end_host(&self, trail: &Trail, name: &str, result: &impl AuditEnd) {
        let end = self.host_record(trail.record(Event::End), name);
        for change in result.changes(&end) {
            trail.write(change);
        }
        trail.write(result.end_record(end));
    }

    /// Waits until the run's records are written; why some are missing,
    /// if they are (also logged).
    pub fn finish(&self, trail: &Trail) -> Option<String> {
        trail.finish().err().map(|err| {
            let message = format!("{:#}", anyhow::Error::from(err));
            tracing::error!(
                "{message}; some `end` records of run {} are missing",
                trail.run()
            );
            message
        })
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

    /// Where and as whom to connect to `name`. The key is the config's
    /// `key:` for the host when it has one, else the key the key state file
    /// records for the host (after `remex keys deploy`/`rotate`), else
    /// `default_key` (see [`crate::ops::keys::resolve`]).
    pub fn endpoint(&self, name: &str) -> Option<Endpoint> {
        let config = &self.inner.config;
        let vm: &Vm = config.vms.get(name)?;
        let key_path = match (&vm.key, self.inner.state_keys.get(name)) {
            (None, Some(path)) => path.clone(),
            _ => config.key_path_for(vm),
        };
        Some(Endpoint {
            name: name.to_owned(),
            host: vm.host.clone(),
            port: vm.port,
            user: config.user_for(vm),
            key_path,
        })
    }

    /// A new connection to `name` (not from the pool, not kept) that logs
    /// in with `login` instead of the host's usual credentials: `remex keys`
    /// uses it to bootstrap with a password and to prove that a key works.
    pub async fn open_with(
        &self,
        name: &str,
        login: &crate::transport::login::Login,
    ) -> Result<Connection, Failure> {
        let endpoint = self.endpoint(name).ok_or_else(|| {
            Failure::new(
                ErrorKind::Connect,
                format!("no host named `{name}` in the config"),
            )
        })?;
        Connection::open_with(
            &endpoint,
            &self.inner.options,
            self.inner.known.clone(),
            &self.inner.keys,
            login,
        )
        .await
    }

    /// How this executor connects (timeouts, host-key policy, known_hosts).
    pub fn connect_options(&self) -> &ConnectOptions {
        &self.inner.options
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
            host_key: None,
            pinned_host_key: false,
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

/// The outcome of [`Executor::audited`].
#[derive(Debug)]
pub struct Audited<T> {
    /// One per host, in selection order.
    pub results: Vec<T>,
    /// The run id of the records.
    pub run: String,
    /// Set when some `end` records could not be written.
    pub audit_error: Option<String>,
}

/// What a host's result adds to its `end` audit record (which already
/// names the host).
pub trait AuditEnd {
    /// `record` with this result's outcome filled in.
    fn end_record(&self, record: Record) -> Record;

    /// The `key`/`host_key` records of what this host's run changed (keys
    /// added or removed, host keys pinned), written before its `end`
    /// record. `host` is the `end` record before [`AuditEnd::end_record`]:
    /// a change record is a copy with its own `event`, `fingerprint`,
    /// `key` and `action`.
    fn changes(&self, _host: &Record) -> Vec<Record> {
        Vec::new()
    }
}

/// A `key` or `host_key` record for `host`: `action` on the key with
/// `fingerprint` (and, for client keys, `key` name).
pub fn change_record(
    host: &Record,
    event: Event,
    action: &str,
    fingerprint: &str,
    key: Option<&str>,
) -> Record {
    let mut record = host.clone().action(action).fingerprint(fingerprint);
    record.event = event;
    if event == Event::HostKey {
        record = record.host_key(fingerprint);
    }
    if let Some(key) = key {
        record = record.key(key);
    }
    record
}

/// `record` with `failure`'s kind and message, if there is one.
pub fn with_failure(mut record: Record, failure: Option<&Failure>) -> Record {
    if let Some(failure) = failure {
        record = record
            .error_kind(failure.kind.as_str())
            .error(failure.message.clone());
    }
    record
}

impl AuditEnd for HostOutcome {
    fn changes(&self, host: &Record) -> Vec<Record> {
        match (&self.host_key, self.pinned_host_key) {
            (Some(fingerprint), true) => vec![change_record(
                host,
                Event::HostKey,
                "pinned",
                fingerprint,
                None,
            )],
            _ => Vec::new(),
        }
    }

    fn end_record(&self, mut record: Record) -> Record {
        record = record.duration_ms(millis(self.duration));
        if let Some(key) = &self.host_key {
            record = record.host_key(key.clone());
        }
        if let Some(code) = self.exit_code {
            record = record.exit_code(code);
        }
        if let Some(signal) = &self.signal {
            record = record.signal(signal.clone());
        }
        with_failure(record, self.error.as_ref())
    }
}

impl AuditEnd for HostCheck {
    fn end_record(&self, mut record: Record) -> Record {
        if let Some(key) = &self.host_key_fingerprint {
            record = record.host_key(key.clone());
        }
        if let Some(rtt) = self.rtt_ms {
            // Whole milliseconds, rounded up so a check that ran is not 0.
            record = record.duration_ms(rtt.ceil() as u64);
        }
        with_failure(record, self.error.as_ref())
    }
}

/// What a `start` record says about an exec or script request: the command
/// (argv or raw string; a script's name, SHA-256 and arguments), the sudo
/// target, and the size of stdin.
fn request_details(mut record: Record, exec: &Exec) -> Record {
    record = match &exec.command {
        Command::Argv(argv) => record.argv(argv.iter().cloned()),
        Command::Raw(raw) => record.command(raw.clone()),
        Command::Script { script, args } => record
            .argv(std::iter::once(script.name.clone()).chain(args.iter().cloned()))
            .script_sha256(script.sha256.clone())
            .paths([script.name.clone()]),
    };
    if let Some(sudo) = &exec.sudo {
        record = record.sudo(sudo.target());
    }
    if let Some(stdin) = &exec.stdin {
        record = record.bytes(stdin.len() as u64);
    }
    record
}

/// `outcome` with secrets replaced in its output and error message.
fn redact_outcome(redactor: &Redactor, outcome: &mut HostOutcome) {
    for captured in [&mut outcome.stdout, &mut outcome.stderr] {
        if let std::borrow::Cow::Owned(bytes) = redactor.redact_bytes(&captured.bytes) {
            captured.bytes = bytes;
        }
    }
    if let Some(failure) = &mut outcome.error {
        failure.message = redactor.redact(&failure.message).into_owned();
    }
}

/// An [`Observer`] that sees lines with secrets replaced.
struct Redacting {
    inner: Arc<dyn Observer>,
    redactor: Redactor,
}

impl Observer for Redacting {
    fn line(&self, host: &str, stream: Stream, line: &[u8]) {
        self.inner
            .line(host, stream, &self.redactor.redact_bytes(line));
    }

    fn done(&self, outcome: &HostOutcome) {
        // The executor redacts outcomes before `done`.
        self.inner.done(outcome);
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

/// Counts over a check (`ok`: hosts fully usable).
pub type CheckSummary = crate::run::report::Counts;

/// The result of `hosts check`, in the same envelope as [`Report`].
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Schema version.
    pub version: u32,
    /// `"check"`.
    pub operation: &'static str,
    /// The run id of the check's audit records.
    pub run: String,
    /// Set when some audit records could not be written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_error: Option<String>,
    /// One per host.
    pub results: Vec<HostCheck>,
    /// Counts.
    pub summary: CheckSummary,
}
