//! `remex hosts trust` and `remex hosts forget`: pinning host keys in
//! remex's known_hosts (`remote_execution.known_hosts`) on purpose, so that
//! strict checking is easy to live with.
//!
//! `trust` connects to each host just far enough to see its host key (the
//! handshake is broken off before authentication: nothing is logged in),
//! then pins the key when the operator confirms it, when it matches a
//! fingerprint given out of band (`--fingerprint`), or when told to
//! (`--yes`). A host whose pinned key changed is never re-pinned silently:
//! it needs `--replace`, and the report shows both fingerprints. A key on an
//! `@revoked` line is refused always.
//!
//! `forget` removes a host's pins (see `known_hosts::forget`). Both make the
//! executor see the change at once.
//!
//! Both return one outcome per host with the fingerprints involved, so an
//! audit record can say what trust changed.
//!
//! # JSON schema, version 2
//!
//! ```json
//! {"version":2,"operation":"hosts.trust","run_id":"…",
//!  "results":[{"host":"vm01","address":"127.0.0.2","port":22,"user":"ops",
//!              "ok":true,"duration_ms":20,"error":null,
//!              "key_type":"ssh-ed25519","fingerprint":"SHA256:…",
//!              "previous":[],"action":"pinned"}],
//!  "summary":{"total":1,"ok":1,"failed":0,"timed_out":0,"unreachable":0,"by_kind":{},"duration_ms":20}}
//! ```
//!
//! `action` is `pinned`, `replaced`, `already_pinned`, `declined` or `null`
//! (trust), `removed` or `not_pinned` (forget; then `previous` lists the
//! removed fingerprints and `fingerprint` is `null`).

use russh::keys::PublicKey;
use serde::Serialize;

use crate::audit::{Event, Op, Record};
use crate::error_chain::chain;
use crate::failure::{ErrorKind, Failure};
use crate::run::context::HostKeyOffer;
use crate::run::report::{NoDetails, RunReport};
use crate::run::runner::{HostDetail, HostRun, Operation, Redact, change_record};
use crate::run::{Error, Executor, RunContext};
use crate::targets::Targets;
use crate::transport::endpoint::Endpoint;
use crate::transport::identity::fingerprint;
use crate::transport::known_hosts::{self, HostKeyStatus, KnownHosts};

/// What happened to a host's pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustAction {
    /// The key was pinned (the host had no pin).
    Pinned,
    /// The old pins were replaced by this key (`--replace`).
    Replaced,
    /// The key was pinned already; nothing was written.
    AlreadyPinned,
    /// The operator answered no at the prompt; nothing was written.
    Declined,
    /// The host's pins were removed (`forget`).
    Removed,
    /// The host had no pin (`forget`); nothing was written.
    NotPinned,
    /// A scan (`scan_only`) saw this key, not pinned; nothing was written.
    Offered,
}

/// One host's `trust` or `forget`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TrustResult {
    /// The offered key's type (`trust`).
    pub key_type: Option<String>,
    /// The offered key's `SHA256:…` fingerprint (`trust`).
    pub fingerprint: Option<String>,
    /// Fingerprints pinned before (a changed key's old pins; `forget`: the
    /// pins removed).
    pub previous: Vec<String>,
    /// What was done.
    pub action: Option<TrustAction>,
}

impl Redact for TrustResult {}

impl TrustAction {
    /// The name used in JSON and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            TrustAction::Pinned => "pinned",
            TrustAction::Replaced => "replaced",
            TrustAction::AlreadyPinned => "already_pinned",
            TrustAction::Declined => "declined",
            TrustAction::Removed => "removed",
            TrustAction::NotPinned => "not_pinned",
            TrustAction::Offered => "offered",
        }
    }
}

impl HostDetail for TrustResult {
    /// `host_key` records: the key pinned (`pinned`, or `replaced` after a
    /// record per old pin `unpinned`), or each pin `removed` by `forget`.
    fn changes(&self, host: &Record) -> Vec<Record> {
        let record = |action: &str, fingerprint: &str| {
            change_record(host, Event::HostKey, action, fingerprint, None)
        };
        match (self.action, &self.fingerprint) {
            (Some(TrustAction::Pinned), Some(new)) => vec![record("pinned", new)],
            (Some(TrustAction::Replaced), Some(new)) => self
                .previous
                .iter()
                .map(|old| record("unpinned", old))
                .chain([record("replaced", new)])
                .collect(),
            (Some(TrustAction::Removed), _) => self
                .previous
                .iter()
                .map(|old| record("removed", old))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn end_record(&self, mut record: Record) -> Record {
        if let Some(fingerprint) = &self.fingerprint {
            record = record.host_key(fingerprint.clone());
        }
        if let Some(action) = self.action {
            record = record.action(action.as_str());
        }
        record
    }
}

/// The report of `hosts trust` and `hosts forget`.
pub type TrustReport = RunReport<TrustResult>;

/// How `trust` decides.
#[derive(Debug, Clone, Default)]
pub struct TrustRequest {
    /// Pin only keys with one of these fingerprints (`SHA256:…`), obtained
    /// out of band; no prompt.
    pub fingerprints: Vec<String>,
    /// Pin what the hosts offer without asking (automation).
    pub yes: bool,
    /// Replace the pins of hosts whose key changed.
    pub replace: bool,
    /// Only look: report each host's key (`offered`, with `previous` when
    /// it changed) and write nothing — the first step of a two-step trust
    /// (check the fingerprint out of band, then trust it with
    /// `fingerprints`).
    pub scan_only: bool,
}

impl Executor {
    /// Connects to each selected host far enough to see its host key, and
    /// pins the keys that `request` accepts, or (without `yes` and
    /// fingerprints) that the run's [`crate::Prompter`] confirms, one host
    /// at a time.
    ///
    /// # Errors
    ///
    /// A selector that selects nothing, or an audit log that cannot record
    /// the run.
    pub async fn hosts_trust(
        &self,
        ctx: &RunContext,
        targets: impl Into<Targets<'_>>,
        request: &TrustRequest,
    ) -> Result<TrustReport, Error> {
        let selection = self.resolve(targets.into())?;
        let hosts = selection.hosts().to_vec();
        let op = Trust {
            request: request.clone(),
            deciding: tokio::sync::Mutex::new(()),
        };
        self.run(ctx, hosts, op).await
    }

    /// Removes the pins of every selected host from remex's known_hosts.
    ///
    /// # Errors
    ///
    /// A selector that selects nothing, or an audit log that cannot record
    /// the run.
    pub async fn hosts_forget(
        &self,
        ctx: &RunContext,
        targets: impl Into<Targets<'_>>,
    ) -> Result<TrustReport, Error> {
        let selection = self.resolve(targets.into())?;
        let hosts = selection.hosts().to_vec();
        self.run(ctx, hosts, Forget).await
    }
}

/// `hosts trust` as an operation of the runner.
struct Trust {
    request: TrustRequest,
    /// One decision (prompt, pin) at a time.
    deciding: tokio::sync::Mutex<()>,
}

impl Operation for Trust {
    type Detail = TrustResult;
    type Details = NoDetails;

    fn op(&self) -> Op {
        Op::HostsTrust
    }

    async fn host(&self, host: &mut HostRun<'_>, outcome: &mut TrustResult) -> Result<(), Failure> {
        let key = host.scan().await?;
        let _one_at_a_time = self.deciding.lock().await;
        let executor = host.executor().clone();
        let prompter = host.run.prompter().clone();
        let endpoint = host.endpoint.clone();
        let request = self.request.clone();
        let mut decided = outcome.clone();
        let result = tokio::task::spawn_blocking(move || {
            let confirm = |offer: &HostKeyOffer| prompter.trust(offer);
            let result = decide(&executor, &endpoint, &key, &request, &confirm, &mut decided);
            (result, decided)
        })
        .await
        .map_err(|e| Failure::new(ErrorKind::Io, e.to_string()))?;
        *outcome = result.1;
        result.0
    }
}

/// `hosts forget` as an operation of the runner.
struct Forget;

impl Operation for Forget {
    type Detail = TrustResult;
    type Details = NoDetails;

    fn op(&self) -> Op {
        Op::HostsForget
    }

    async fn host(&self, host: &mut HostRun<'_>, outcome: &mut TrustResult) -> Result<(), Failure> {
        let executor = host.executor().clone();
        let path = executor.connect_options().known_hosts_path.clone();
        let (p, h, port) = (path.clone(), host.endpoint.host.clone(), host.endpoint.port);
        let edited = tokio::task::spawn_blocking(move || known_hosts::forget(&p, &h, port))
            .await
            .map_err(|e| Failure::new(ErrorKind::Io, e.to_string()))?;
        executor.known_hosts_changed();
        let edit = edited.map_err(|e| Failure::new(ErrorKind::Io, chain(&e)))?;
        outcome.previous = edit.removed;
        outcome.action = Some(if outcome.previous.is_empty() {
            TrustAction::NotPinned
        } else {
            TrustAction::Removed
        });
        if edit.wildcard_lines.is_empty() {
            return Ok(());
        }
        let lines: Vec<String> = edit
            .wildcard_lines
            .iter()
            .map(ToString::to_string)
            .collect();
        Err(Failure::new(
            ErrorKind::HostKey,
            format!(
                "{} is still pinned by wildcard lines of {} (line {}); they pin other hosts too, so edit them by hand",
                host.name,
                path.display(),
                lines.join(", ")
            ),
        ))
    }
}

/// Decides whether to pin `key` for `endpoint`, and pins it (blocking:
/// it may prompt, and it takes known_hosts' lock).
fn decide(
    executor: &Executor,
    endpoint: &Endpoint,
    key: &PublicKey,
    request: &TrustRequest,
    confirm: &dyn Fn(&HostKeyOffer) -> bool,
    outcome: &mut TrustResult,
) -> Result<(), Failure> {
    let path = &executor.connect_options().known_hosts_path;
    let name = &endpoint.name;
    let offered = fingerprint(key);
    outcome.key_type = Some(key.algorithm().as_str().to_owned());
    outcome.fingerprint = Some(offered.clone());
    let io = |e: known_hosts::KnownHostsError| Failure::new(ErrorKind::Io, chain(&e));
    // Read now, not when the executor started: an earlier host of this
    // run, or another remex, may have pinned meanwhile.
    let known = KnownHosts::load(path).map_err(io)?;
    let replacing = match known.check(&endpoint.host, endpoint.port, key) {
        HostKeyStatus::Trusted => {
            outcome.action = Some(TrustAction::AlreadyPinned);
            return Ok(());
        }
        HostKeyStatus::Revoked { fingerprint } => {
            return Err(Failure::new(
                ErrorKind::HostKey,
                format!(
                    "{name} offers host key {fingerprint}, which is marked @revoked in {}; remex never trusts it (remove the @revoked line by hand if that is really wanted)",
                    path.display()
                ),
            ));
        }
        HostKeyStatus::Changed { expected, .. } => {
            outcome.previous.clone_from(&expected);
            if request.scan_only {
                outcome.action = Some(TrustAction::Offered);
                return Ok(());
            }
            if !request.replace {
                return Err(Failure::new(
                    ErrorKind::HostKey,
                    format!(
                        "HOST KEY CHANGED for {name}: pinned {}, offered {offered}. This may be an attack; \
                         if the host was reinstalled, check {offered} out of band and run \
                         `remex hosts trust {name} --replace --fingerprint FINGERPRINT` with the fingerprint you checked",
                        expected.join(" or ")
                    ),
                ));
            }
            true
        }
        HostKeyStatus::Unknown if request.scan_only => {
            outcome.action = Some(TrustAction::Offered);
            return Ok(());
        }
        HostKeyStatus::Unknown => false,
    };
    let offer = HostKeyOffer {
        host: name.clone(),
        address: format!("{}:{}", endpoint.host, endpoint.port),
        key_type: key.algorithm().as_str().to_owned(),
        fingerprint: offered.clone(),
        previous: outcome.previous.clone(),
    };
    let accepted = if !request.fingerprints.is_empty() {
        if !request.fingerprints.contains(&offered) {
            return Err(Failure::new(
                ErrorKind::HostKey,
                format!(
                    "{name} offers host key {offered}, which is not the --fingerprint given ({}); not pinned. \
                     Check which key the host really has (on its console: `ssh-keygen -l -f /etc/ssh/ssh_host_ed25519_key.pub`)",
                    request.fingerprints.join(", ")
                ),
            ));
        }
        true
    } else {
        request.yes || confirm(&offer)
    };
    if !accepted {
        outcome.action = Some(TrustAction::Declined);
        return Err(Failure::new(
            ErrorKind::HostKey,
            format!("{name}: host key {offered} not trusted (declined); nothing was written"),
        ));
    }
    let pinned = if replacing {
        known_hosts::pin_replacing(path, &endpoint.host, endpoint.port, key).map(drop)
    } else {
        known_hosts::append(path, &endpoint.host, endpoint.port, key)
    };
    executor.known_hosts_changed();
    pinned.map_err(io)?;
    outcome.action = Some(if replacing {
        TrustAction::Replaced
    } else {
        TrustAction::Pinned
    });
    tracing::info!(host = %name, fingerprint = %offered, replaced = replacing, "pinned host key");
    Ok(())
}
