//! `remex keys deploy`: put a key in each selected host's
//! `~/.ssh/authorized_keys` — ssh-copy-id for a fleet — and prove it works.
//!
//! Per host: log in with whatever works today (a bootstrap key, the host's
//! usual key, the agent, a password), add the key unless a line already
//! holds it (other lines kept byte for byte, the file replaced atomically),
//! then open a **fresh** connection with the new key alone. Only when that
//! login succeeds does the state file record the key as deployed there and
//! as the key remex uses for the host. A host that fails does not stop the
//! others; running the command again is safe (deploying twice leaves one
//! line).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::report::{ChangeAction, KeysReport};
use super::run::{LoadedKey, RunError, blank_outcome, key_details, key_dir, update};
use super::session::{self, Edited};
use crate::audit::Op;
use crate::run::executor::Executor;
use crate::run::report::{ErrorKind, Failure};
use crate::transport::login::{Login, PasswordSource};

/// What to deploy, and how to get in.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    /// The key's name in the key directory.
    pub name: String,
    /// Log in with this private key instead of the host's usual one
    /// (`--bootstrap-key`).
    pub bootstrap_key: Option<PathBuf>,
    /// Try a password after the keys (`--password-env`, or a prompt).
    pub password: Option<PasswordSource>,
}

/// Deploys key `request.name` to every host `selector` selects.
pub async fn deploy(
    executor: &Executor,
    selector: &str,
    request: &DeployRequest,
) -> Result<KeysReport, RunError> {
    let hosts = executor.select(selector)?;
    let dir = key_dir(executor);
    let loaded = LoadedKey::load(&dir, &request.name, false)?;
    let key_ref = loaded.key_ref.clone();
    let key = Arc::new(loaded);
    let secrets = match &request.password {
        Some(PasswordSource::Given(password)) => vec![password.expose().to_owned()],
        _ => Vec::new(),
    };
    let request = Arc::new(request.clone());
    let started = Instant::now();
    let audited = executor
        .audited(
            Op::KeysDeploy,
            hosts,
            secrets,
            key_details(&key_ref),
            move |executor, host, _trail| {
                let key = key.clone();
                let request = request.clone();
                let dir = dir.clone();
                async move {
                    let mut outcome = blank_outcome(&executor, &host);
                    match deploy_one(&executor, &host, &key, &request, &dir, &mut outcome).await {
                        Ok(()) => outcome.ok = true,
                        Err(failure) => outcome.error = Some(failure),
                    }
                    outcome
                }
            },
        )
        .await?;
    Ok(
        KeysReport::new("keys_deploy", key_ref, audited.results, started.elapsed())
            .audited(audited.run, audited.audit_error),
    )
}

async fn deploy_one(
    executor: &Executor,
    host: &str,
    key: &LoadedKey,
    request: &DeployRequest,
    dir: &std::path::Path,
    outcome: &mut super::report::KeyHostOutcome,
) -> Result<(), Failure> {
    let usual = executor.endpoint(host).map(|e| e.key_path);
    let login = Login {
        key: request.bootstrap_key.clone().or(usual),
        agent: executor.config().remote_execution.use_agent,
        password: request.password.clone(),
    };
    let conn = executor.open_with(host, &login).await?;
    let edited = session::add(&conn, &key.line).await;
    conn.close().await;
    match edited? {
        Edited::Added => outcome.push(ChangeAction::Added, &key.key_ref),
        _ => outcome.push(ChangeAction::AlreadyPresent, &key.key_ref),
    }
    session::verify_login(executor, host, &key.private_path)
        .await
        .map_err(|failure| match failure.kind {
            ErrorKind::Auth => Failure::new(
                ErrorKind::Auth,
                format!(
                    "{host}: the key `{}` is in ~/.ssh/authorized_keys but a login with it failed ({}); \
                     does sshd read another AuthorizedKeysFile, or refuse {} keys?",
                    key.key_ref.name, failure.message, key.key_ref.algorithm
                ),
            ),
            _ => failure,
        })?;
    outcome.push(ChangeAction::Verified, &key.key_ref);
    let pinned = executor
        .config()
        .vms
        .get(host)
        .is_some_and(|vm| vm.key.is_some());
    let (name, host_owned) = (key.key_ref.name.clone(), host.to_owned());
    let (before, used) = update(dir, move |state| {
        let before = state.hosts.get(&host_owned).map(|h| h.current.clone());
        state.record_deployed(&host_owned, &name, !pinned);
        Ok((
            before,
            state.hosts.get(&host_owned).map(|h| h.current.clone()),
        ))
    })
    .await
    .map_err(|e| Failure::new(ErrorKind::Io, e.to_string()))?;
    if pinned {
        outcome.uses = executor
            .config()
            .vms
            .get(host)
            .and_then(|vm| vm.key.clone());
    } else {
        if used.as_deref() == Some(key.key_ref.name.as_str()) && before != used {
            outcome.push(ChangeAction::NowUsed, &key.key_ref);
        }
        outcome.uses = used;
    }
    Ok(())
}
