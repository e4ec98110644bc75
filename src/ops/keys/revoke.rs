//! `remex keys revoke`: remove a key from the selected hosts'
//! `~/.ssh/authorized_keys`.
//!
//! remex refuses, per host, to revoke the only key it can use there — the
//! key it logs in with, when no other key remex deployed could take over
//! (or, for a host the state file does not know, the configured key) —
//! unless `force`. When the key being revoked is the one in use and another
//! deployed key exists, remex logs in with that other key to do the
//! removal, which proves the fallback works before the state switches to
//! it. An archived key is no fallback: it is not where a login looks.
//!
//! Each host's step holds the host's turn (`run::host_turn`) and decides on
//! the key state as it is then, not as it was when the run began: a revoke
//! that waited for a rotation sees the rotation's result (the key it
//! replaced is gone already: `not_present`; the key it put in place is now
//! the only one: refused without `force`). A key archived while the revoke
//! waited is found under its archived name, so the state and the host stay
//! in step. A revoke never archives a key.

use super::report::{ChangeAction, KeyDetails, KeyResult, KeysReport};
use super::run::{
    LoadedKey, host_turn, key_details, key_dir, load, local_failure, update, used_key,
};
use super::session::{self, Edited};
use crate::audit::{Op, Record};
use crate::failure::{ErrorKind, Failure};
use crate::keydir::{KeyState, private_key_path};
use crate::run::report::HostReport;
use crate::run::runner::{HostRun, Operation, RunState};
use crate::run::{Error, Executor, RunContext};
use crate::targets::Targets;
use crate::transport::login::Login;

/// What to revoke.
#[derive(Debug, Clone)]
pub struct RevokeRequest {
    /// The key's name (an archived key's archived name works too).
    pub name: String,
    /// Revoke even the only key remex can use for a host.
    pub force: bool,
}

impl Executor {
    /// Revokes key `request.name` on every host `targets` selects.
    ///
    /// # Errors
    ///
    /// Before any host is contacted: a key that is not in the key directory
    /// (or its archive), an unreadable key state, a selector that selects
    /// nothing, or an audit log that cannot record the run.
    pub async fn keys_revoke(
        &self,
        ctx: &RunContext,
        targets: impl Into<Targets<'_>>,
        request: &RevokeRequest,
    ) -> Result<KeysReport, Error> {
        let selection = self.resolve(targets.into())?;
        let hosts = selection.hosts().to_vec();
        let dir = key_dir(self);
        let key = LoadedKey::load(&dir, &request.name, true)?;
        // Readable now, so a broken state stops the run before any host;
        // each host reads it again at its turn.
        load(&dir).await?;
        let op = Revoke {
            key,
            force: request.force,
        };
        self.run(ctx, hosts, op).await
    }
}

/// `keys revoke` as an operation of the runner.
struct Revoke {
    key: LoadedKey,
    force: bool,
}

impl Operation for Revoke {
    type Detail = KeyResult;
    type Details = KeyDetails;

    fn op(&self) -> Op {
        Op::KeysRevoke
    }

    fn describe(&self, record: Record) -> Record {
        key_details(record, &self.key.key_ref)
    }

    async fn host(&self, host: &mut HostRun<'_>, outcome: &mut KeyResult) -> Result<(), Failure> {
        let _turn = host_turn(host).await?;
        let state = load(&key_dir(host.executor()))
            .await
            .map_err(|e| local_failure(&e))?;
        outcome.uses = used_key(&state, host.executor(), host.name);
        revoke_one(host, &self.key, &state, self.force, outcome).await
    }

    async fn finish(&self, _run: &RunState, _results: &[HostReport<KeyResult>]) -> KeyDetails {
        KeyDetails::of(&self.key.key_ref)
    }
}

/// The name the state knows `key` by now: its own, or — archived while
/// this run waited — its archived name (the same fingerprint). `None` when
/// the state's key of that name is another key (the loaded one archived
/// and pruned, and a new one made under its name): the state then holds
/// nothing of the loaded key to update.
fn name_in(state: &KeyState, key: &LoadedKey) -> Option<String> {
    let (name, fingerprint) = (&key.key_ref.name, &key.key_ref.fingerprint);
    match state.keys.get(name) {
        Some(r) if &r.fingerprint == fingerprint => return Some(name.clone()),
        None if !state.keys.values().any(|r| &r.fingerprint == fingerprint) => {
            // Not a key remex made (copied in by hand): known by its name.
            return Some(name.clone());
        }
        _ => {}
    }
    state
        .keys
        .iter()
        .find(|(_, r)| &r.fingerprint == fingerprint)
        .map(|(archived, _)| archived.clone())
}

/// Removes `key` from one host, deciding on `state` (read at the host's
/// turn).
async fn revoke_one(
    run: &mut HostRun<'_>,
    key: &LoadedKey,
    state: &KeyState,
    force: bool,
    outcome: &mut KeyResult,
) -> Result<(), Failure> {
    let known_as = name_in(state, key);
    let name = known_as.as_deref().unwrap_or(&key.key_ref.name);
    let executor = run.executor().clone();
    let host = run.name;
    let dir = key_dir(&executor);
    let config = executor.config();
    let Some(vm) = config.vms.get(host) else {
        return Err(Failure::new(
            ErrorKind::Connect,
            format!("no host `{host}`"),
        ));
    };
    let configured = config.key_path_for(vm);
    let pinned = vm.key.is_some();
    let only_key = || {
        Failure::new(
            ErrorKind::Auth,
            format!(
                "key `{name}` is the only key remex can use for {host}; \
                 rotate to another key first (`remex keys rotate {host}`), or pass --force to revoke it anyway"
            ),
        )
    };
    if state
        .pending_rotation(host)
        .is_some_and(|r| r.new == name || r.old.as_deref() == Some(name))
        && !force
    {
        return Err(Failure::new(
            ErrorKind::Auth,
            format!(
                "key `{name}` is part of an unfinished rotation on {host}; run `remex keys rotate {host}` to finish it first, or pass --force"
            ),
        ));
    }
    // The key to log in with: one that is not being revoked, if any.
    let login = if pinned || !state.hosts.contains_key(host) {
        if configured == key.private_path && !force {
            return Err(only_key());
        }
        configured
    } else {
        state
            .check_revoke(host, name, force)
            .map_err(|_| only_key())?;
        // The key in use when it stays, else the one that takes over.
        let other = state
            .hosts
            .get(host)
            .map(|h| h.current.clone())
            .filter(|k| k != name && state.usable(k))
            .or_else(|| state.fallback_key(host, name));
        match other {
            Some(other) => private_key_path(&dir, &other),
            None => key.private_path.clone(),
        }
    };
    let conn = run
        .open_with(&Login {
            key: Some(login),
            agent: true,
            password: None,
        })
        .await?;
    let edited = session::remove(&conn, &key.line).await;
    conn.shutdown().await;
    let action = match edited? {
        Edited::Removed(_) => ChangeAction::Removed,
        _ => ChangeAction::NotPresent,
    };
    outcome.push(action, &key.key_ref);
    let host_owned = host.to_owned();
    let now_used = update(&executor, move |state| {
        if let Some(name) = known_as {
            state.record_removed(&host_owned, &name);
        }
        Ok(state.hosts.get(&host_owned).map(|h| h.current.clone()))
    })
    .await
    .map_err(|e| local_failure(&e))?;
    if !pinned {
        outcome.uses = now_used;
    }
    Ok(())
}
