//! The audited runner: the one path every operation takes.
//!
//! An operation is a small type implementing [`Operation`] (one host's work,
//! plus what its `start` records say) or [`LocalOperation`] (work on this
//! machine only: `keys generate`, `keys prune`). [`Executor::run`] and
//! [`Executor::run_local`] drive them and own everything else:
//!
//! 1. the run id, and the redactor: the config's patterns, the request's
//!    secrets and the caller's ([`RunContext::secrets`]);
//! 2. the `start` records of every host (or the one `start` record of a
//!    local operation), committed as one batch before anything else happens
//!    — when that fails the run is an [`Error::Audit`] and no host is
//!    contacted;
//! 3. the per-host wrapper: the run's own limit of hosts at once, a turn
//!    on the host (the pool's, shared by all runs; the work's state is
//!    allocated only then), a host skipped as `cancelled` when the run was
//!    cancelled before its turn,
//!    the observer's `started`/`done`, the connection dropped from the pool
//!    when the host failed with an I/O error, the host key pinned on first
//!    use recorded, the result redacted, and its `end` record (with the
//!    operation's change records before it) queued as soon as it is known;
//! 4. the run-wide details, redacted; every record written (off the async
//!    workers) before the report is returned.
//!
//! **Invariant:** what a run shows (results, output lines, error messages,
//! run-wide details) passes through the same redactor as its records.
//!
//! **Invariant:** every host that got a `start` record gets an `end`
//! record, whatever happened to it — unless the process dies first.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::cancel::{self, Cancel};
use super::context::{Observer, RunContext, Stream};
use super::executor::{Error, Executor};
use super::report::{Detail, HostReport, NoDetails, NoHost, RunReport, Summary, millis};
use crate::audit::{Event, Op, Record, Redactor, Stamp, Trail, new_run_id};
use crate::error_chain::chain;
use crate::failure::{ErrorKind, Failure};
use crate::transport::connection::{Connection, Keys};
use crate::transport::endpoint::Endpoint;
use crate::transport::identity::PassphraseSource;
use crate::transport::login::{Asker, Login};

/// Redaction of what a run shows.
pub(crate) trait Redact {
    /// Replaces secrets in every text this value shows.
    fn redact(&mut self, _redactor: &Redactor) {}
}

impl Redact for NoDetails {}

/// The operation-specific part of a host's result.
pub(crate) trait HostDetail: Serialize + Redact + Default + Send + Sync + 'static {
    /// `record` (the host's `end` record, with the common fields filled
    /// in) with this result's own fields.
    fn end_record(&self, record: Record) -> Record {
        record
    }

    /// The `key`/`host_key`/`file` records of what this host's run did,
    /// written before its `end` record. `host` is the `end` record before
    /// [`HostDetail::end_record`]: a change record is a copy with its own
    /// `event` and fields.
    fn changes(&self, _host: &Record) -> Vec<Record> {
        Vec::new()
    }
}

/// One operation over hosts, driven by [`Executor::run`].
pub(crate) trait Operation: Send + Sync + 'static {
    /// What one host's result holds besides the common fields.
    type Detail: HostDetail;
    /// What the report holds besides the results.
    type Details: Serialize + Redact + Default + Send + 'static;

    /// The operation, as the audit log names it.
    fn op(&self) -> Op;

    /// The request's literal secrets (redacted everywhere).
    fn secrets(&self) -> Vec<String> {
        Vec::new()
    }

    /// What every `start` record says about the request.
    fn describe(&self, record: Record) -> Record {
        record
    }

    /// Local work after the `start` records are on disk and before any host
    /// is contacted (generating a key, recording a rotation). A failure
    /// fails every host with it; none is contacted.
    fn prepare(&self, _run: &RunState) -> impl Future<Output = Result<(), Failure>> + Send {
        async { Ok(()) }
    }

    /// One host's work. A failure is the host's; what `detail` holds by
    /// then is reported either way.
    fn host(
        &self,
        host: &mut HostRun<'_>,
        detail: &mut Self::Detail,
    ) -> impl Future<Output = Result<(), Failure>> + Send;

    /// The run-wide details, once every host is done (and any local work
    /// after the hosts, recorded through `run`); by default none.
    fn finish(
        &self,
        _run: &RunState,
        _results: &[HostReport<Self::Detail>],
    ) -> impl Future<Output = Self::Details> + Send {
        async { Self::Details::default() }
    }
}

/// An operation that contacts no host, driven by [`Executor::run_local`]:
/// one `start` record, the work, one `end` record.
pub(crate) trait LocalOperation: Send + Sync + 'static {
    /// What the report holds (flattened beside the empty `results`).
    type Output: Serialize + Redact + Send + 'static;

    /// The operation, as the audit log names it.
    fn op(&self) -> Op;

    /// What the `start` record says about the request.
    fn describe(&self, record: Record) -> Record {
        record
    }

    /// The work; its change records go through `run`.
    fn run(&self, run: &RunState) -> impl Future<Output = Result<Self::Output, Failure>> + Send;
}

/// One run in progress: what its operation and host tasks share.
pub(crate) struct RunState {
    /// The executor it runs on.
    pub executor: Executor,
    /// The caller's settings.
    ctx: RunContext,
    /// Its records.
    trail: Trail,
    /// The caller's observer, behind the run's redactor.
    observer: Option<Arc<dyn Observer>>,
    /// The run's own limit of hosts at once.
    limit: Arc<Semaphore>,
    /// An encrypted key's passphrase: the caller's prompter.
    passphrase: PassphraseSource,
}

impl RunState {
    /// Writes the `start` records and sets up the run.
    async fn begin(
        executor: &Executor,
        ctx: &RunContext,
        op: Op,
        run: String,
        secrets: Vec<String>,
        starts: Vec<Record>,
    ) -> Result<RunState, Error> {
        let redactor = executor
            .redactor()
            .with_secrets(secrets.into_iter().chain(ctx.secrets.iter().cloned()))?;
        let stamp = Stamp {
            workflow: ctx.actor.clone(),
            request: ctx.request_id.clone(),
        };
        let trail = Trail::begin(executor.audit_log(), redactor, run, op, stamp, starts).await?;
        let observer = ctx.observer.clone().map(|inner| {
            Arc::new(Redacting {
                inner,
                redactor: trail.redactor().clone(),
            }) as Arc<dyn Observer>
        });
        let parallel = ctx
            .parallel
            .unwrap_or(usize::MAX)
            .clamp(1, executor.pool().size());
        let prompter = ctx.prompter.clone();
        Ok(RunState {
            executor: executor.clone(),
            ctx: ctx.clone(),
            trail,
            observer,
            limit: Arc::new(Semaphore::new(parallel)),
            passphrase: Arc::new(move |path| prompter.passphrase(path)),
        })
    }

    /// The run id.
    pub(crate) fn run_id(&self) -> &str {
        self.trail.run()
    }

    /// The run's redactor.
    pub(crate) fn redactor(&self) -> &Redactor {
        self.trail.redactor()
    }

    /// A blank record of this run.
    pub(crate) fn record(&self, event: Event) -> Record {
        self.trail.record(event)
    }

    /// Queues a record of this run (redacted, stamped with the actor).
    pub(crate) fn write(&self, record: Record) {
        self.trail.write(record);
    }

    /// The run's cancel signal.
    pub(crate) fn cancel(&self) -> Option<&Cancel> {
        self.ctx.cancel.as_ref()
    }

    /// Whether the run was cancelled.
    pub(crate) fn is_cancelled(&self) -> bool {
        cancel::is_cancelled(self.cancel())
    }

    /// The run's observer (redacting).
    pub(crate) fn observer(&self) -> Option<&Arc<dyn Observer>> {
        self.observer.as_ref()
    }

    /// How to ask for a password once (the caller's prompter).
    pub(crate) fn asker(&self) -> Asker {
        let prompter = self.ctx.prompter.clone();
        Arc::new(move |user| prompter.password(user))
    }

    /// The caller's prompter.
    pub(crate) fn prompter(&self) -> &Arc<dyn super::context::Prompter> {
        &self.ctx.prompter
    }

    /// Writes every queued record; why some are missing, if they are.
    async fn finish(&self) -> Option<String> {
        let finished = self.trail.finish().await;
        finished.err().map(|err| {
            let message = chain(&err);
            tracing::error!(
                "{message}; some records of run {} are missing",
                self.trail.run()
            );
            message
        })
    }
}

/// One host's work in a run: what [`Operation::host`] gets.
pub(crate) struct HostRun<'a> {
    /// The run.
    pub run: &'a RunState,
    /// The host's name in the config.
    pub name: &'a str,
    /// Where and as whom to connect, as the config and key state say now.
    pub endpoint: Endpoint,
    /// The pooled connection this host's work holds, once it asked for it.
    lease: Option<Arc<Connection>>,
    /// The fingerprint of a host key one of this host's connections pinned
    /// on first use (accept-new): recorded as a change.
    pinned: Option<String>,
}

impl HostRun<'_> {
    /// The executor.
    pub(crate) fn executor(&self) -> &Executor {
        &self.run.executor
    }

    /// The run's cancel signal.
    pub(crate) fn cancel(&self) -> Option<&Cancel> {
        self.run.cancel()
    }

    /// The run's observer.
    pub(crate) fn observer(&self) -> Option<&Arc<dyn Observer>> {
        self.run.observer()
    }

    /// The host's connection, from the pool or opened now (with the host's
    /// usual credentials), held until this host's work is done.
    pub(crate) async fn connection(&mut self) -> Result<Arc<Connection>, Failure> {
        if let Some(conn) = &self.lease {
            return Ok(conn.clone());
        }
        let endpoint = self.endpoint.clone();
        let conn = self.pooled(&endpoint).await?;
        self.lease = Some(conn.clone());
        Ok(conn)
    }

    /// `endpoint`'s pooled connection, or a new one (pooled) with its usual
    /// credentials: this host's, or a jump host's on the way to it. A jump
    /// host's connection is shared by every host behind it.
    fn pooled<'a>(
        &'a mut self,
        endpoint: &'a Endpoint,
    ) -> Pin<Box<dyn Future<Output = Result<Arc<Connection>, Failure>> + Send + 'a>> {
        Box::pin(async move {
            let executor = self.run.executor.clone();
            let slot = executor.pool().slot(&endpoint.name);
            let mut slot = slot.lock().await;
            if let Some(conn) = slot.as_ref() {
                if self.reusable(conn, endpoint) {
                    return Ok(conn.clone());
                }
                tracing::debug!(host = %endpoint.name, "not reusing the pooled connection: closed or stale");
                if let Some(stale) = slot.take() {
                    super::pool::shutdown(stale).await;
                }
            }
            let login = Login {
                key: Some(endpoint.key_path.clone()),
                agent: true,
                password: None,
            };
            let conn = self.open_to(endpoint, &login).await?;
            // A key pinned on first use is this host's news (a jump host's
            // is its own, when it is run).
            if endpoint.name == self.endpoint.name && conn.take_pinned_host_key() {
                self.pinned = Some(conn.host_key_fingerprint().to_owned());
            }
            let conn = Arc::new(conn);
            *slot = Some(conn.clone());
            Ok(conn)
        })
    }

    /// Whether a pooled connection may serve `endpoint` now: open, by the
    /// same route, and its host key still trusted.
    fn reusable(&self, conn: &Connection, endpoint: &Endpoint) -> bool {
        !conn.is_closed()
            && conn.endpoint().same_route(endpoint)
            && self
                .run
                .executor
                .still_trusted(endpoint, conn.host_key())
                .is_ok()
    }

    /// A new connection to this host (not pooled) that logs in with
    /// `login`; it holds a place in the executor's connection budget until
    /// dropped. `remex keys` uses it to bootstrap with a password and to
    /// prove that a key works.
    pub(crate) async fn open_with(&mut self, login: &Login) -> Result<Connection, Failure> {
        let endpoint = self.endpoint.clone();
        let conn = self.open_to(&endpoint, login).await?;
        if conn.take_pinned_host_key() {
            self.pinned = Some(conn.host_key_fingerprint().to_owned());
        }
        Ok(conn)
    }

    /// A new connection to `endpoint`, through its jump hosts' pooled
    /// connections. A direct one holds a place in the executor's
    /// connection budget (a socket); a tunnelled one is a channel of its
    /// jump host's connection and needs none.
    async fn open_to(&mut self, endpoint: &Endpoint, login: &Login) -> Result<Connection, Failure> {
        let via = self.jump(endpoint).await?;
        let executor = self.run.executor.clone();
        let permit = socket_permit(&executor, via.as_deref()).await;
        let keys = Keys {
            known: executor.known_hosts(),
            store: executor.key_store(),
            passphrase: &self.run.passphrase,
        };
        let conn =
            Connection::open(endpoint, executor.connect_options(), &keys, login, via).await?;
        if let Some(permit) = permit {
            conn.hold(permit);
        }
        Ok(conn)
    }

    /// The connection of `endpoint`'s jump host, if it has one; its failure
    /// names the hop.
    async fn jump(&mut self, endpoint: &Endpoint) -> Result<Option<Arc<Connection>>, Failure> {
        let Some(hop) = &endpoint.via else {
            return Ok(None);
        };
        match self.pooled(hop).await {
            Ok(conn) => Ok(Some(conn)),
            Err(failure) => Err(Failure::new(
                failure.kind,
                format!(
                    "jump host {} (on the way to {}): {}",
                    hop.name, endpoint.name, failure.message
                ),
            )),
        }
    }

    /// The host key this host offers, without logging in (`hosts trust`).
    pub(crate) async fn scan(&mut self) -> Result<russh::keys::PublicKey, Failure> {
        let endpoint = self.endpoint.clone();
        let via = self.jump(&endpoint).await?;
        let executor = &self.run.executor;
        let _permit = socket_permit(executor, via.as_deref()).await;
        Connection::scan(&endpoint, executor.connect_options(), via.as_deref()).await
    }

    /// Lets go of the pooled connection.
    fn release(&mut self) {
        if self.lease.take().is_some() {
            self.run.executor.pool().released();
        }
    }
}

/// A place in the executor's connection budget for a connection made
/// directly (a socket); none through a jump host (a channel of its
/// connection).
async fn socket_permit(
    executor: &Executor,
    via: Option<&Connection>,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    match via {
        None => Some(executor.pool().permit().await),
        Some(_) => None,
    }
}

impl Executor {
    /// Runs `op` on `hosts` (in selection order) under `ctx`: see the
    /// module docs.
    ///
    /// # Errors
    ///
    /// [`Error::Audit`] when the `start` records cannot be written: no host
    /// was contacted.
    pub(crate) async fn run<O: Operation>(
        &self,
        ctx: &RunContext,
        hosts: Vec<String>,
        op: O,
    ) -> Result<RunReport<O::Detail, O::Details>, Error> {
        let started = Instant::now();
        let op = Arc::new(op);
        let run_id = ctx.run_id.clone().unwrap_or_else(new_run_id);
        let starts = hosts
            .iter()
            .map(|name| {
                op.describe(
                    self.host_record(Record::new(Event::Start, op.op(), run_id.clone()), name),
                )
            })
            .collect();
        let run =
            Arc::new(RunState::begin(self, ctx, op.op(), run_id, op.secrets(), starts).await?);
        let prepared = op.prepare(&run).await.err();

        let mut tasks = JoinSet::new();
        let mut names = HashMap::new();
        for (index, name) in hosts.iter().enumerate() {
            let (run, op, prepared, name) =
                (run.clone(), op.clone(), prepared.clone(), name.clone());
            let task =
                tasks.spawn(async move { (index, one_host(&run, &*op, &name, prepared).await) });
            names.insert(task.id(), (index, hosts[index].clone()));
        }
        let mut results: Vec<(usize, HostReport<O::Detail>)> = Vec::with_capacity(hosts.len());
        while let Some(joined) = tasks.join_next_with_id().await {
            match joined {
                Ok((_, pair)) => results.push(pair),
                Err(e) => {
                    // A panicking host task is a bug; the host still gets a
                    // result and an `end` record.
                    tracing::error!("a host task failed: {e}");
                    if let Some((index, name)) = names.get(&e.id()) {
                        let mut report = blank(self, name);
                        report.error = Some(Failure::new(
                            ErrorKind::Protocol,
                            format!("internal error in remex while working on {name}: {e}"),
                        ));
                        end(&run, &report, None);
                        if let Some(observer) = run.observer() {
                            observer.done(&report as &HostReport<dyn Detail>);
                        }
                        // Its connection may be mid-exchange: never reused.
                        self.pool().forget(name);
                        results.push((*index, report));
                    }
                }
            }
        }
        results.sort_by_key(|(index, _)| *index);
        let results: Vec<HostReport<O::Detail>> = results.into_iter().map(|(_, r)| r).collect();
        let mut details = op.finish(&run, &results).await;
        details.redact(run.redactor());
        let audit_error = run.finish().await;
        Ok(RunReport {
            operation: op.op(),
            run_id: run.run_id().to_owned(),
            details,
            summary: Summary::tally(results.iter().map(|r| r.error.as_ref()), started.elapsed()),
            results,
            audit_error,
        })
    }

    /// Runs the local operation `op` under `ctx`: one `start` record, the
    /// work, one `end` record.
    ///
    /// # Errors
    ///
    /// [`Error::Audit`] when the `start` record cannot be written (nothing
    /// was done); [`Error::Failed`] when the work failed (the `end` record
    /// says so too).
    pub(crate) async fn run_local<O: LocalOperation>(
        &self,
        ctx: &RunContext,
        op: O,
    ) -> Result<RunReport<NoHost, O::Output>, Error> {
        let started = Instant::now();
        let run_id = ctx.run_id.clone().unwrap_or_else(new_run_id);
        let start = op.describe(Record::new(Event::Start, op.op(), run_id.clone()));
        let run = RunState::begin(self, ctx, op.op(), run_id, Vec::new(), vec![start]).await?;
        let done = op.run(&run).await;
        let mut end = run
            .record(Event::End)
            .duration_ms(millis(started.elapsed()));
        if let Err(failure) = &done {
            end = with_failure(end, Some(failure));
        }
        run.write(end);
        let audit_error = run.finish().await;
        let mut details = done.map_err(|mut failure| {
            failure.message = run.redactor().redact(&failure.message).into_owned();
            Error::Failed(failure)
        })?;
        details.redact(run.redactor());
        Ok(RunReport {
            operation: op.op(),
            run_id: run.run_id().to_owned(),
            details,
            results: Vec::new(),
            summary: Summary::tally(std::iter::empty(), started.elapsed()),
            audit_error,
        })
    }

    /// `record` with `name`'s inventory name, address, port and user.
    fn host_record(&self, record: Record, name: &str) -> Record {
        let endpoint = self.endpoint_or_blank(name);
        record
            .host(name)
            .address(endpoint.host)
            .port(endpoint.port)
            .user(endpoint.user)
    }
}

/// A result for `name` with nothing done yet.
fn blank<T: Default>(executor: &Executor, name: &str) -> HostReport<T> {
    let endpoint = executor.endpoint_or_blank(name);
    HostReport {
        host: name.to_owned(),
        address: endpoint.host,
        port: endpoint.port,
        user: endpoint.user,
        duration: std::time::Duration::ZERO,
        error: None,
        detail: T::default(),
    }
}

/// The per-host wrapper: see the module docs.
async fn one_host<O: Operation>(
    run: &RunState,
    op: &O,
    name: &str,
    prepared: Option<Failure>,
) -> HostReport<O::Detail> {
    let _turn = run.limit.clone().acquire_owned().await;
    // A turn on the host (shared with other runs); a cancelled run stops
    // waiting and reports the host not started.
    let _host_turn = tokio::select! {
        turn = run.executor.pool().turn(name) => turn,
        () = cancel::cancelled(run.cancel()) => None,
    };
    // The work's state is allocated only now: a host task waiting for its
    // turns stays small (thousands wait at once in a busy service).
    Box::pin(work_on_host(run, op, name, prepared)).await
}

/// The per-host wrapper's work, once the host's turn came.
async fn work_on_host<O: Operation>(
    run: &RunState,
    op: &O,
    name: &str,
    prepared: Option<Failure>,
) -> HostReport<O::Detail> {
    let begun = Instant::now();
    let executor = &run.executor;
    let mut report = blank::<O::Detail>(executor, name);
    let mut pinned = None;
    if let Some(failure) = prepared {
        report.error = Some(failure);
    } else if run.is_cancelled() {
        report.error = Some(Failure::not_started());
    } else {
        if let Some(observer) = run.observer() {
            observer.started(name);
        }
        let mut host = HostRun {
            run,
            name,
            endpoint: executor.endpoint_or_blank(name),
            lease: None,
            pinned: None,
        };
        if let Err(failure) = op.host(&mut host, &mut report.detail).await {
            if failure.kind == ErrorKind::Io {
                executor.pool().forget(name);
            }
            report.error = Some(failure);
        }
        pinned = host.pinned.take();
        host.release();
    }
    report.duration = begun.elapsed();
    redact_report(run.redactor(), &mut report);
    end(run, &report, pinned.as_deref());
    if let Some(observer) = run.observer() {
        observer.done(&report as &HostReport<dyn Detail>);
    }
    executor.pool().done_with(name).await;
    report
}

/// Redacts a host's result: its error message and its detail.
fn redact_report<T: HostDetail>(redactor: &Redactor, report: &mut HostReport<T>) {
    if let Some(failure) = &mut report.error {
        failure.message = redactor.redact(&failure.message).into_owned();
    }
    report.detail.redact(redactor);
}

/// Queues a host's change records (a host key `pinned` on first use, then
/// the operation's) and its `end` record.
fn end<T: HostDetail>(run: &RunState, report: &HostReport<T>, pinned: Option<&str>) {
    let host = run
        .executor
        .host_record(run.record(Event::End), &report.host);
    if let Some(fingerprint) = pinned {
        run.write(change_record(
            &host,
            Event::HostKey,
            "pinned",
            fingerprint,
            None,
        ));
    }
    for change in report.detail.changes(&host) {
        run.write(change);
    }
    let record = with_failure(
        host.duration_ms(millis(report.duration)),
        report.error.as_ref(),
    );
    run.write(report.detail.end_record(record));
}

/// A `key` or `host_key` record for `host`: `action` on the key with
/// `fingerprint` (and, for client keys, `key` name).
pub(crate) fn change_record(
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
pub(crate) fn with_failure(mut record: Record, failure: Option<&Failure>) -> Record {
    if let Some(failure) = failure {
        record = record
            .error_kind(failure.kind.as_str())
            .error(failure.message.clone());
    }
    record
}

/// An [`Observer`] that sees lines with secrets replaced.
struct Redacting {
    inner: Arc<dyn Observer>,
    redactor: Redactor,
}

impl Observer for Redacting {
    fn started(&self, host: &str) {
        self.inner.started(host);
    }

    fn line(&self, host: &str, stream: Stream, line: &[u8]) {
        self.inner
            .line(host, stream, &self.redactor.redact_bytes(line));
    }

    fn line_cut(&self, host: &str, stream: Stream, piece: &[u8]) {
        self.inner
            .line_cut(host, stream, &self.redactor.redact_bytes(piece));
    }

    fn wants_lines(&self, host: &str, stream: Stream) -> bool {
        self.inner.wants_lines(host, stream)
    }

    fn expect(&self, host: &str, bytes: u64) {
        self.inner.expect(host, bytes);
    }

    fn advance(&self, host: &str, bytes: u64) {
        self.inner.advance(host, bytes);
    }

    fn done(&self, host: &HostReport<dyn Detail>) {
        // The runner redacts results before `done`.
        self.inner.done(host);
    }
}

#[cfg(test)]
mod tests;
