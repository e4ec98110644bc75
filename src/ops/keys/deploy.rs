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
//!
//! The whole host step holds the host's turn (`run::host_turn`): a deploy
//! waits for another key operation on the host to finish, then logs in
//! with the key the state names *then*, and refuses a key that was
//! archived (or replaced) meanwhile instead of recording it.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use super::report::{ChangeAction, KeyDetails, KeyResult, KeysReport};
use super::run::{LoadedKey, host_turn, key_details, key_dir, local_failure, update};
use super::session::{self, Edited};
use crate::audit::{Op, Record};
use crate::failure::{ErrorKind, Failure};
use crate::run::report::HostReport;
use crate::run::runner::{HostRun, Operation, RunState};
use crate::run::{Error, Executor, RunContext};
use crate::targets::Targets;
use crate::transport::login::{Login, PasswordCell, PasswordSource};

/// What to deploy, and how to get in.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    /// The key's name in the key directory.
    pub name: String,
    /// Log in with this private key instead of the host's usual one
    /// (`--bootstrap-key`).
    pub bootstrap_key: Option<PathBuf>,
    /// Try a password after the keys (`--password-env`, or asked from the
    /// run's prompter).
    pub password: Option<PasswordSource>,
}

impl Executor {
    /// Deploys key `request.name` to every host `targets` selects.
    ///
    /// # Errors
    ///
    /// Before any host is contacted: a key that is not in the key
    /// directory, a selector that selects nothing, or an audit log that
    /// cannot record the run.
    pub async fn keys_deploy(
        &self,
        ctx: &RunContext,
        targets: impl Into<Targets<'_>>,
        request: &DeployRequest,
    ) -> Result<KeysReport, Error> {
        let selection = self.resolve(targets.into())?;
        let hosts = selection.hosts().to_vec();
        if let Some(path) = &request.bootstrap_key
            && !path.exists()
        {
            return Err(Error::Invalid(format!(
                "--bootstrap-key {}: no such file",
                path.display()
            )));
        }
        let key = LoadedKey::load(&key_dir(self), &request.name, false)?;
        let op = Deploy {
            key,
            request: request.clone(),
            password: OnceLock::new(),
        };
        self.run(ctx, hosts, op).await
    }
}

/// `keys deploy` as an operation of the runner.
struct Deploy {
    key: LoadedKey,
    request: DeployRequest,
    /// The run's password, once the run has begun (asked once for all
    /// hosts).
    password: OnceLock<Arc<PasswordCell>>,
}

impl Operation for Deploy {
    type Detail = KeyResult;
    type Details = KeyDetails;

    fn op(&self) -> Op {
        Op::KeysDeploy
    }

    fn secrets(&self) -> Vec<String> {
        match &self.request.password {
            Some(PasswordSource::Given(password)) => vec![password.expose().to_owned()],
            _ => Vec::new(),
        }
    }

    fn describe(&self, record: Record) -> Record {
        key_details(record, &self.key.key_ref)
    }

    async fn prepare(&self, run: &RunState) -> Result<(), Failure> {
        if let Some(source) = &self.request.password {
            let _ = self
                .password
                .set(Arc::new(PasswordCell::new(source, run.asker())));
        }
        Ok(())
    }

    async fn host(&self, host: &mut HostRun<'_>, outcome: &mut KeyResult) -> Result<(), Failure> {
        let key = &self.key;
        let _turn = host_turn(host).await?;
        key.check_still_in(&key_dir(host.executor()))
            .map_err(|e| local_failure(&e))?;
        let login = Login {
            key: self
                .request
                .bootstrap_key
                .clone()
                .or(Some(host.endpoint.key_path.clone())),
            agent: true,
            password: self.password.get().cloned(),
        };
        let conn = host.open_with(&login).await?;
        let edited = session::add(&conn, &key.line).await;
        conn.shutdown().await;
        match edited? {
            Edited::Added => outcome.push(ChangeAction::Added, &key.key_ref),
            _ => outcome.push(ChangeAction::AlreadyPresent, &key.key_ref),
        }
        let name = host.name.to_owned();
        session::verify_login(host, &key.private_path)
            .await
            .map_err(|failure| match failure.kind {
                ErrorKind::Auth => Failure::new(
                    ErrorKind::Auth,
                    format!(
                        "{name}: the key `{}` is in ~/.ssh/authorized_keys but a login with it failed ({}); \
                         does sshd read another AuthorizedKeysFile, or refuse {} keys?",
                        key.key_ref.name, failure.message, key.key_ref.algorithm
                    ),
                ),
                _ => failure,
            })?;
        outcome.push(ChangeAction::Verified, &key.key_ref);
        let executor = host.executor();
        let configured = executor
            .config()
            .vms
            .get(&name)
            .and_then(|vm| vm.key.clone());
        let pinned = configured.is_some();
        let (key_name, host_owned) = (key.key_ref.name.clone(), name.clone());
        let (before, used) = update(executor, move |state| {
            let before = state.hosts.get(&host_owned).map(|h| h.current.clone());
            state.record_deployed(&host_owned, &key_name, !pinned);
            Ok((
                before,
                state.hosts.get(&host_owned).map(|h| h.current.clone()),
            ))
        })
        .await
        .map_err(|e| local_failure(&e))?;
        if pinned {
            outcome.uses = configured;
        } else {
            if used.as_deref() == Some(key.key_ref.name.as_str()) && before != used {
                outcome.push(ChangeAction::NowUsed, &key.key_ref);
            }
            outcome.uses = used;
        }
        Ok(())
    }

    async fn finish(&self, _run: &RunState, _results: &[HostReport<KeyResult>]) -> KeyDetails {
        KeyDetails::of(&self.key.key_ref)
    }
}
