//! `remex keys revoke`: remove a key from the selected hosts'
//! `~/.ssh/authorized_keys`.
//!
//! remex refuses, per host, to revoke the only key it can use there — the
//! key it logs in with, when no other key remex deployed could take over
//! (or, for a host the state file does not know, the configured key) —
//! unless `force`. When the key being revoked is the one in use and another
//! deployed key exists, remex logs in with that other key to do the
//! removal, which proves the fallback works before the state switches to
//! it.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::generate::private_key_path;
use super::report::{ChangeAction, KeyHostOutcome, KeysReport};
use super::run::{
    LoadedKey, RunError, blank_outcome, key_details, key_dir, load, update, used_key,
};
use super::session::{self, Edited};
use super::state::KeyState;
use crate::audit::Op;
use crate::run::executor::Executor;
use crate::run::report::{ErrorKind, Failure};
use crate::transport::login::Login;

/// What to revoke.
#[derive(Debug, Clone)]
pub struct RevokeRequest {
    /// The key's name (an archived key's archived name works too).
    pub name: String,
    /// Revoke even the only key remex can use for a host.
    pub force: bool,
}

/// Revokes key `request.name` on every host `selector` selects.
pub async fn revoke(
    executor: &Executor,
    selector: &str,
    request: &RevokeRequest,
) -> Result<KeysReport, RunError> {
    let hosts = executor.select(selector)?;
    let dir = key_dir(executor);
    let key = Arc::new(LoadedKey::load(&dir, &request.name, true)?);
    let state = Arc::new(load(&dir).await?);
    let force = request.force;
    let started = Instant::now();
    let shared_key = key.clone();
    let audited = executor
        .audited(
            Op::KeysRevoke,
            hosts,
            Vec::new(),
            key_details(&key.key_ref),
            move |executor, host, _trail| {
                let key = shared_key.clone();
                let state = state.clone();
                let dir = key_dir(&executor);
                async move {
                    let mut outcome = blank_outcome(&executor, &host);
                    outcome.uses = used_key(&state, &executor, &host);
                    match revoke_one(&executor, &host, &key, &state, &dir, force, &mut outcome)
                        .await
                    {
                        Ok(()) => outcome.ok = true,
                        Err(failure) => outcome.error = Some(failure),
                    }
                    outcome
                }
            },
        )
        .await?;
    Ok(KeysReport::new(
        "keys_revoke",
        key.key_ref.clone(),
        audited.results,
        started.elapsed(),
    )
    .audited(audited.run, audited.audit_error))
}

async fn revoke_one(
    executor: &Executor,
    host: &str,
    key: &LoadedKey,
    state: &KeyState,
    dir: &Path,
    force: bool,
    outcome: &mut KeyHostOutcome,
) -> Result<(), Failure> {
    let name = key.key_ref.name.as_str();
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
        let entry = state.hosts.get(host);
        let other = entry.and_then(|h| {
            std::iter::once(&h.current)
                .chain(h.deployed.iter())
                .find(|k| k.as_str() != name)
                .cloned()
        });
        match other {
            Some(other) => private_key_path(dir, &other),
            None => key.private_path.clone(),
        }
    };
    let conn = executor
        .open_with(
            host,
            &Login {
                key: Some(login),
                agent: config.remote_execution.use_agent,
                password: None,
            },
        )
        .await?;
    let edited = session::remove(&conn, &key.line).await;
    conn.close().await;
    let action = match edited? {
        Edited::Removed(_) => ChangeAction::Removed,
        _ => ChangeAction::NotPresent,
    };
    outcome.push(action, &key.key_ref);
    let (host_owned, name_owned) = (host.to_owned(), name.to_owned());
    let now_used = update(dir, move |state| {
        state.record_removed(&host_owned, &name_owned);
        Ok(state.hosts.get(&host_owned).map(|h| h.current.clone()))
    })
    .await
    .map_err(|e| Failure::new(ErrorKind::Io, e.to_string()))?;
    if !pinned {
        outcome.uses = now_used;
    }
    Ok(())
}
