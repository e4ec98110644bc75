//! What `remex keys deploy|rotate|revoke` return: one outcome per host with
//! every change made there, each naming the key and its fingerprint (so an
//! audit record can be written from it), and the `--json` schema.
//!
//! # JSON schema, version 2
//!
//! ```json
//! {"version":2,"operation":"keys.deploy","run_id":"…",
//!  "key":{"name":"deploy","type":"ssh-ed25519","fingerprint":"SHA256:…"},
//!  "archived":[],
//!  "results":[{"host":"vm01","address":"127.0.0.2","port":22,"user":"ops",
//!              "ok":true,"duration_ms":80,"error":null,
//!              "changes":[{"action":"added","key":"deploy","fingerprint":"SHA256:…"},
//!                         {"action":"verified","key":"deploy","fingerprint":"SHA256:…"},
//!                         {"action":"now_used","key":"deploy","fingerprint":"SHA256:…"}],
//!              "uses":"deploy","rotation_step":null}],
//!  "summary":{"total":1,"ok":1,"failed":0,"timed_out":0,"unreachable":0,"by_kind":{},"duration_ms":80}}
//! ```
//!
//! `operation` is `keys.deploy`, `keys.rotate` or `keys.revoke`; `action` is
//! one of [`ChangeAction`]'s names; `uses` is the key remex logs in to the
//! host with after the run (`null`: the configured key); `rotation_step`
//! (rotate only) is where an unfinished rotation stands on the host;
//! `error` is `{"kind","message"}` as in `remex exec`'s schema.

use serde::Serialize;

use crate::audit::{Event, Record, Redactor};
use crate::keydir::{ArchivedKey, RotationStep};
use crate::run::report::RunReport;
use crate::run::runner::{HostDetail, Redact, change_record};

/// A key, as reports name it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
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

/// One host's key changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeyResult {
    /// What changed, in order (also when the host failed part-way).
    pub changes: Vec<KeyChange>,
    /// The key remex logs in with after the run; `None`: the configured key.
    pub uses: Option<String>,
    /// Rotate only: the step an unfinished rotation stands at.
    pub rotation_step: Option<RotationStep>,
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

impl Redact for KeyResult {
    fn redact(&mut self, redactor: &Redactor) {
        for change in &mut self.changes {
            change.key = redactor.redact(&change.key).into_owned();
        }
        if let Some(uses) = &mut self.uses {
            *uses = redactor.redact(uses).into_owned();
        }
    }
}

impl HostDetail for KeyResult {
    /// One `key` record per change.
    fn changes(&self, host: &Record) -> Vec<Record> {
        self.changes
            .iter()
            .map(|change| {
                change_record(
                    host,
                    Event::Key,
                    change.action.as_str(),
                    &change.fingerprint,
                    Some(&change.key),
                )
            })
            .collect()
    }
}

impl KeyResult {
    /// Records a change.
    pub(crate) fn push(&mut self, action: ChangeAction, key: &KeyRef) {
        self.changes.push(KeyChange {
            action,
            key: key.name.clone(),
            fingerprint: key.fingerprint.clone(),
        });
    }
}

/// What a key operation's report holds beside the results.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeyDetails {
    /// The key deployed, rotated to, or revoked.
    pub key: KeyRef,
    /// Keys moved to the archive by this run (rotate: keys no host uses
    /// any more).
    pub archived: Vec<ArchivedKey>,
}

impl KeyDetails {
    /// The details of a run on `key` that archived nothing.
    pub(crate) fn of(key: &KeyRef) -> Self {
        KeyDetails {
            key: key.clone(),
            archived: Vec::new(),
        }
    }
}

impl Redact for KeyDetails {
    fn redact(&mut self, redactor: &Redactor) {
        self.key.name = redactor.redact(&self.key.name).into_owned();
        for key in &mut self.archived {
            key.redact(redactor);
        }
    }
}

/// The result of `keys deploy`, `keys rotate` or `keys revoke`.
pub type KeysReport = RunReport<KeyResult, KeyDetails>;
