//! What `remex keys deploy|rotate|revoke` return: one outcome per host with
//! every change made there, each naming the key and its fingerprint (so an
//! audit record can be written from it), and the `--json` schema.
//!
//! # JSON schema, version 1
//!
//! ```json
//! {"version":1,"operation":"keys_deploy",
//!  "key":{"name":"deploy","type":"ssh-ed25519","fingerprint":"SHA256:…"},
//!  "results":[{"host":"vm01","address":"127.0.0.2","port":22,"user":"ops",
//!              "ok":true,
//!              "changes":[{"action":"added","key":"deploy","fingerprint":"SHA256:…"},
//!                         {"action":"verified","key":"deploy","fingerprint":"SHA256:…"},
//!                         {"action":"now_used","key":"deploy","fingerprint":"SHA256:…"}],
//!              "uses":"deploy","rotation_step":null,"error":null}],
//!  "archived":[],
//!  "summary":{"total":1,"ok":1,"failed":0,"duration_ms":80}}
//! ```
//!
//! `operation` is `keys_deploy`, `keys_rotate` or `keys_revoke`; `action` is
//! one of [`ChangeAction`]'s names; `uses` is the key remex logs in to the
//! host with after the run (`null`: the configured key); `rotation_step`
//! (rotate only) is where an unfinished rotation stands on the host;
//! `error` is `{"kind","message"}` as in `remex exec`'s schema.

use serde::Serialize;

use super::archive::ArchivedKey;
use crate::run::report::{Failure, SCHEMA_VERSION};

use super::rotation::RotationStep;

/// A key, as reports name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRef {
    /// Its name in the key directory.
    pub name: String,
    /// The OpenSSH key type.
    #[serde(rename = "type")]
    pub algorithm: String,
    /// `SHA256:…`.
    pub fingerprint: String,
}

/// What happened to a key on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeAction {
    /// The key was added to `~/.ssh/authorized_keys`.
    Added,
    /// It was there already; the file was not touched.
    AlreadyPresent,
    /// A fresh login with this key alone succeeded.
    Verified,
    /// remex now logs in to the host with this key (state file updated).
    NowUsed,
    /// The key's lines were removed from `~/.ssh/authorized_keys`.
    Removed,
    /// The key was not in `~/.ssh/authorized_keys`; nothing was written.
    NotPresent,
}

/// One change on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyChange {
    /// What happened.
    pub action: ChangeAction,
    /// The key's name.
    pub key: String,
    /// The key's fingerprint.
    pub fingerprint: String,
}

/// One host's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyHostOutcome {
    /// The host's name in the config.
    pub host: String,
    /// Address as configured.
    pub address: String,
    /// SSH port.
    pub port: u16,
    /// Remote user whose authorized_keys was edited.
    pub user: String,
    /// Whether everything asked was done on this host.
    pub ok: bool,
    /// What changed, in order (also when the host failed part-way).
    pub changes: Vec<KeyChange>,
    /// The key remex logs in with after the run; `None`: the configured key.
    pub uses: Option<String>,
    /// Rotate only: the step an unfinished rotation stands at.
    pub rotation_step: Option<RotationStep>,
    /// What went wrong, and what to do.
    pub error: Option<Failure>,
}

impl ChangeAction {
    /// The name used in JSON and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeAction::Added => "added",
            ChangeAction::AlreadyPresent => "already_present",
            ChangeAction::Verified => "verified",
            ChangeAction::NowUsed => "now_used",
            ChangeAction::Removed => "removed",
            ChangeAction::NotPresent => "not_present",
        }
    }
}

impl crate::run::executor::AuditEnd for KeyHostOutcome {
    fn changes(&self, host: &crate::audit::Record) -> Vec<crate::audit::Record> {
        self.changes
            .iter()
            .map(|change| {
                crate::run::executor::change_record(
                    host,
                    crate::audit::Event::Key,
                    change.action.as_str(),
                    &change.fingerprint,
                    Some(&change.key),
                )
            })
            .collect()
    }

    fn end_record(&self, record: crate::audit::Record) -> crate::audit::Record {
        crate::run::executor::with_failure(record, self.error.as_ref())
    }
}

impl KeyHostOutcome {
    /// Records a change.
    pub(crate) fn push(&mut self, action: ChangeAction, key: &KeyRef) {
        self.changes.push(KeyChange {
            action,
            key: key.name.clone(),
            fingerprint: key.fingerprint.clone(),
        });
    }
}

/// Counts over a run.
pub type KeysSummary = crate::run::report::Counts;

/// The result of `keys deploy`, `keys rotate` or `keys revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeysReport {
    /// Schema version.
    pub version: u32,
    /// `keys_deploy`, `keys_rotate` or `keys_revoke`.
    pub operation: &'static str,
    /// The run id of the run's audit records.
    pub run: String,
    /// The key deployed, rotated to, or revoked.
    pub key: KeyRef,
    /// One per host, in inventory order.
    pub results: Vec<KeyHostOutcome>,
    /// Keys moved to the archive by this run (rotate: keys no host uses
    /// any more).
    pub archived: Vec<ArchivedKey>,
    /// Counts.
    pub summary: KeysSummary,
    /// Set when some of the run's audit records could not be written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_error: Option<String>,
}

impl KeysReport {
    /// A report over `results`.
    pub(crate) fn new(
        operation: &'static str,
        key: KeyRef,
        results: Vec<KeyHostOutcome>,
        elapsed: std::time::Duration,
    ) -> Self {
        Self {
            version: SCHEMA_VERSION,
            operation,
            key,
            summary: KeysSummary::of(results.iter().map(|r| r.ok), elapsed),
            results,
            archived: Vec::new(),
            run: String::new(),
            audit_error: None,
        }
    }

    /// This report with the run id and audit error of `audited`'s run.
    pub(crate) fn audited(mut self, run: String, audit_error: Option<String>) -> Self {
        self.run = run;
        self.audit_error = audit_error;
        self
    }

    /// Whether every host succeeded.
    pub fn all_ok(&self) -> bool {
        self.summary.failed == 0
    }
}
