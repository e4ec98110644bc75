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
//! `forget` removes a host's pins (see [`crate::transport::known_hosts::forget`]).
//!
//! Both return one outcome per host with the fingerprints involved, so an
//! audit record can say what trust changed.
//!
//! # JSON schema, version 1
//!
//! ```json
//! {"version":1,"operation":"hosts_trust",
//!  "results":[{"host":"vm01","address":"127.0.0.2","port":22,"ok":true,
//!              "key_type":"ssh-ed25519","fingerprint":"SHA256:…",
//!              "previous":[],"action":"pinned","error":null}],
//!  "summary":{"total":1,"ok":1,"failed":0,"duration_ms":20}}
//! ```
//!
//! `action` is `pinned`, `replaced`, `already_pinned`, `declined` or `null`
//! (trust), `removed` or `not_pinned` (forget; then `previous` lists the
//! removed fingerprints and `fingerprint` is `null`).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use russh::client;
use russh::keys::{PublicKey, PublicKeyOrCertificate};
use serde::Serialize;

use crate::audit::{Event, Op, Record, Trail};
use crate::run::executor::{self, AuditEnd, Executor, change_record, with_failure};
use crate::run::report::{ErrorKind, Failure, SCHEMA_VERSION};
use crate::transport::connection::{Endpoint, ssh_config};
use crate::transport::identity::fingerprint;
use crate::transport::known_hosts::{self, HostKeyStatus, KnownHosts, error_chain};

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
}

/// One host's outcome of `trust` or `forget`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostTrust {
    /// The host's name in the config.
    pub host: String,
    /// Address as configured.
    pub address: String,
    /// SSH port.
    pub port: u16,
    /// Whether the host ends up as asked (pinned, or forgotten).
    pub ok: bool,
    /// The offered key's type (`trust`).
    pub key_type: Option<String>,
    /// The offered key's `SHA256:…` fingerprint (`trust`).
    pub fingerprint: Option<String>,
    /// Fingerprints pinned before (a changed key's old pins; `forget`: the
    /// pins removed).
    pub previous: Vec<String>,
    /// What was done.
    pub action: Option<TrustAction>,
    /// Why not, and what to do.
    pub error: Option<Failure>,
}

impl HostTrust {
    /// Nothing done yet for `endpoint`.
    fn blank(endpoint: &Endpoint) -> Self {
        Self {
            host: endpoint.name.clone(),
            address: endpoint.host.clone(),
            port: endpoint.port,
            ok: false,
            key_type: None,
            fingerprint: None,
            previous: Vec::new(),
            action: None,
            error: None,
        }
    }
}

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
        }
    }
}

impl AuditEnd for HostTrust {
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
        with_failure(record, self.error.as_ref())
    }
}

/// Counts over a run (`ok`: hosts done as asked).
pub type TrustSummary = crate::run::report::Counts;

/// The result of `hosts trust` or `hosts forget`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrustReport {
    /// Schema version.
    pub version: u32,
    /// `hosts_trust` or `hosts_forget`.
    pub operation: &'static str,
    /// The run id of the run's audit records.
    pub run: String,
    /// One per host, in inventory order.
    pub results: Vec<HostTrust>,
    /// Counts.
    pub summary: TrustSummary,
    /// Set when some of the run's audit records could not be written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_error: Option<String>,
}

impl TrustReport {
    fn new(
        operation: &'static str,
        results: Vec<HostTrust>,
        started: Instant,
        run: &Trail,
        audit_error: Option<String>,
    ) -> Self {
        Self {
            version: SCHEMA_VERSION,
            operation,
            run: run.run().to_owned(),
            audit_error,
            summary: TrustSummary::of(results.iter().map(|r| r.ok), started.elapsed()),
            results,
        }
    }

    /// Whether every host ended up as asked.
    pub fn all_ok(&self) -> bool {
        self.summary.failed == 0
    }
}

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
}

/// A key a host offered, for the confirmation prompt.
#[derive(Debug, Clone)]
pub struct Offer {
    /// The host's name.
    pub host: String,
    /// `address:port`.
    pub address: String,
    /// The key's type.
    pub key_type: String,
    /// Its fingerprint.
    pub fingerprint: String,
    /// The fingerprints pinned now, when the key changed.
    pub previous: Vec<String>,
}

/// Connects to each selected host, shows its key to `confirm` (unless
/// `request` decides), and pins the accepted keys. `confirm` is called
/// once per host needing a decision, in inventory order.
pub async fn trust(
    executor: &Executor,
    selector: &str,
    request: &TrustRequest,
    confirm: &mut dyn FnMut(&Offer) -> bool,
) -> Result<TrustReport, executor::Error> {
    let hosts = executor.select(selector)?;
    let trail = executor.begin(Op::HostsTrust, &hosts, Vec::new(), |r| r)?;
    let started = Instant::now();
    let scanned = executor
        .fan_out(hosts, |executor, host| async move {
            let endpoint = executor.endpoint(&host).unwrap_or_default();
            let key = scan(&executor, &endpoint).await;
            (endpoint, key)
        })
        .await;
    let path = executor.connect_options().known_hosts_path.clone();
    let mut results = Vec::new();
    for (endpoint, key) in scanned {
        let mut outcome = HostTrust::blank(&endpoint);
        match key {
            Ok(key) => {
                if let Err(failure) = decide(&path, &endpoint, &key, request, confirm, &mut outcome)
                {
                    outcome.error = Some(failure);
                }
            }
            Err(failure) => outcome.error = Some(failure),
        }
        executor.end_host(&trail, &outcome.host, &outcome);
        results.push(outcome);
    }
    let audit_error = executor.finish(&trail);
    Ok(TrustReport::new(
        "hosts_trust",
        results,
        started,
        &trail,
        audit_error,
    ))
}

fn decide(
    path: &std::path::Path,
    endpoint: &Endpoint,
    key: &PublicKey,
    request: &TrustRequest,
    confirm: &mut dyn FnMut(&Offer) -> bool,
    outcome: &mut HostTrust,
) -> Result<(), Failure> {
    let name = &endpoint.name;
    let offered = fingerprint(key);
    outcome.key_type = Some(key.algorithm().as_str().to_owned());
    outcome.fingerprint = Some(offered.clone());
    let io = |e: known_hosts::KnownHostsError| Failure::new(ErrorKind::Io, error_chain(&e));
    // Read now, not when the executor started: an earlier host of this
    // run, or another remex, may have pinned meanwhile.
    let known = KnownHosts::load(path).map_err(io)?;
    let replacing = match known.check(&endpoint.host, endpoint.port, key) {
        HostKeyStatus::Trusted => {
            outcome.ok = true;
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
        HostKeyStatus::Unknown => false,
    };
    let offer = Offer {
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
    if replacing {
        known_hosts::pin_replacing(path, &endpoint.host, endpoint.port, key).map_err(io)?;
        outcome.action = Some(TrustAction::Replaced);
    } else {
        known_hosts::append(path, &endpoint.host, endpoint.port, key).map_err(io)?;
        outcome.action = Some(TrustAction::Pinned);
    }
    tracing::info!(host = %name, fingerprint = %offered, replaced = replacing, "pinned host key");
    outcome.ok = true;
    Ok(())
}

/// Removes the pins of every selected host from remex's known_hosts.
pub async fn forget(executor: &Executor, selector: &str) -> Result<TrustReport, executor::Error> {
    let hosts = executor.select(selector)?;
    let trail = executor.begin(Op::HostsForget, &hosts, Vec::new(), |r| r)?;
    let started = Instant::now();
    let path = executor.connect_options().known_hosts_path.clone();
    let mut results = Vec::new();
    for host in hosts {
        let endpoint = Endpoint {
            name: host.clone(),
            ..executor.endpoint(&host).unwrap_or_default()
        };
        let mut outcome = HostTrust::blank(&endpoint);
        let (p, h, port) = (path.clone(), endpoint.host.clone(), endpoint.port);
        let edited = tokio::task::spawn_blocking(move || known_hosts::forget(&p, &h, port)).await;
        match edited {
            Ok(Ok(edit)) => {
                outcome.previous = edit.removed;
                outcome.action = Some(if outcome.previous.is_empty() {
                    TrustAction::NotPinned
                } else {
                    TrustAction::Removed
                });
                if edit.wildcard_lines.is_empty() {
                    outcome.ok = true;
                } else {
                    let lines: Vec<String> = edit
                        .wildcard_lines
                        .iter()
                        .map(ToString::to_string)
                        .collect();
                    outcome.error = Some(Failure::new(
                        ErrorKind::HostKey,
                        format!(
                            "{host} is still pinned by wildcard lines of {} (line {}); they pin other hosts too, so edit them by hand",
                            path.display(),
                            lines.join(", ")
                        ),
                    ));
                }
            }
            Ok(Err(e)) => outcome.error = Some(Failure::new(ErrorKind::Io, error_chain(&e))),
            Err(e) => outcome.error = Some(Failure::new(ErrorKind::Io, e.to_string())),
        }
        executor.end_host(&trail, &outcome.host, &outcome);
        results.push(outcome);
    }
    let audit_error = executor.finish(&trail);
    Ok(TrustReport::new(
        "hosts_forget",
        results,
        started,
        &trail,
        audit_error,
    ))
}

/// Connects far enough to see the host key, then breaks off (nothing is
/// authenticated, nothing pinned).
async fn scan(executor: &Executor, endpoint: &Endpoint) -> Result<PublicKey, Failure> {
    let options = executor.connect_options();
    let config =
        Arc::new(ssh_config(options).map_err(|message| Failure::new(ErrorKind::Connect, message))?);
    let seen = Arc::new(Mutex::new(None));
    let handler = Recorder { seen: seen.clone() };
    let attempt = async {
        let stream = crate::transport::tcp::dial(&endpoint.host, endpoint.port, options.retries)
            .await
            .map_err(|e| Failure::new(ErrorKind::Connect, e.to_string()))?;
        // The handler refuses every key, so this ends in an error once the
        // key was seen; the key, not the result, is what counts.
        let _ = client::connect_stream(config, stream, handler).await;
        Ok::<_, Failure>(())
    };
    match tokio::time::timeout(options.connect_timeout, attempt).await {
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
    }
    let seen = seen.lock().map(|mut s| s.take()).ok().flatten();
    match seen {
        Some(Some(key)) => Ok(key),
        Some(None) => Err(Failure::new(
            ErrorKind::HostKey,
            format!(
                "{} presented a host certificate; remex pins plain host keys only",
                endpoint.name
            ),
        )),
        None => Err(Failure::new(
            ErrorKind::Connect,
            format!(
                "SSH handshake with {}:{} failed before the host key was offered",
                endpoint.host, endpoint.port
            ),
        )),
    }
}

/// A handshake handler that notes the offered key and refuses it.
struct Recorder {
    /// `Some(Some(key))`: a plain key; `Some(None)`: a certificate.
    seen: Arc<Mutex<Option<Option<PublicKey>>>>,
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
