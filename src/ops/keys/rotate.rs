//! `remex keys rotate`: replace the key remex uses on each selected host by
//! a new one without ever leaving a host without a working key.
//!
//! The per-host steps and their order are [`super::rotation`]'s state
//! machine; this module drives them over the network and persists every
//! step in the state file before taking the next one:
//!
//! 1. deploy the new key, logging in with the key that works today;
//! 2. verify: a fresh login with the new key alone;
//! 3. record the new key as the host's key (local);
//! 4. remove the old key, logging in with the new one.
//!
//! A host that fails stops where it is — it keeps working with the key the
//! state names for it — and the report says which step it reached; the
//! next `remex keys rotate` on it resumes from that step (the rotation's new
//! key is reused, not regenerated). Old private keys that no host uses any
//! more are archived (`KEY_DIR/archive/`), not deleted, until `remex keys
//! prune`; keys the config names (`default_key`, a host's `key:`) are never
//! archived.
//!
//! Each host's steps run in the host's turn (`run::host_turn`): another
//! key operation on the host (in this process or another) waits until the
//! rotation is done there, and the rotation waits for one under way. At
//! its turn the rotation decides on the state as it is then
//! (`KeyState::next_rotation`): it begins the host's rotation there and
//! then (so a rotation in the state is one under way or one that stopped,
//! never one merely planned), resumes an unfinished one first (rebased on
//! the host's key of now if an operation that went first changed it), and
//! leaves a host that already uses this run's key alone. It never begins
//! with a key archived meanwhile; archiving waits for every host step
//! (`keydir/lock.rs`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use super::generate::{KeyKind, default_comment, generate};
use super::report::{ChangeAction, KeyDetails, KeyRef, KeyResult, KeysReport};
use super::rotation::{HostPlan, RotationAction, RotationEvent, plan_rotation};
use super::run::{LoadedKey, host_turn, key_dir, load, local_failure, record_key, update};
use super::session::{self, Edited};
use crate::audit::{Op, Record};
use crate::failure::{ErrorKind, Failure};
use crate::keydir::archive::archive;
use crate::keydir::timestamp::{self, now_rfc3339};
use crate::keydir::{ArchivedKey, HostRotation, KeysError, private_key_path, validate_name};
use crate::run::report::HostReport;
use crate::run::runner::{HostRun, Operation, RunState};
use crate::run::{Error, Executor, RunContext};
use crate::targets::Targets;
use crate::transport::login::Login;

/// What to rotate to.
#[derive(Debug, Clone, Default)]
pub struct RotateRequest {
    /// The new key's name; default `remex-YYYYMMDDTHHMMSSZ`. An existing
    /// key of that name is used as is; a missing one is generated. An
    /// unfinished rotation among the hosts always resumes with its own key.
    pub name: Option<String>,
    /// The type of a generated key.
    pub kind: KeyKind,
    /// Encrypts a generated private key.
    pub passphrase: Option<String>,
}

impl Executor {
    /// Rotates the key of every host `targets` selects; see the module
    /// docs.
    ///
    /// # Errors
    ///
    /// Before any host is contacted: an unreadable key state, a `--name`
    /// that conflicts with an unfinished rotation, a selector that selects
    /// nothing, or an audit log that cannot record the run.
    pub async fn keys_rotate(
        &self,
        ctx: &RunContext,
        targets: impl Into<Targets<'_>>,
        request: &RotateRequest,
    ) -> Result<KeysReport, Error> {
        let selection = self.resolve(targets.into())?;
        let hosts = selection.hosts().to_vec();
        let dir = key_dir(self);
        let config = self.config();
        let free: Vec<String> = hosts
            .iter()
            .filter(|h| config.vms.get(*h).is_some_and(|vm| vm.key.is_none()))
            .cloned()
            .collect();
        let state = load(&dir).await?;
        let plan = plan_rotation(&state, &free);
        let target = match (&plan.new_key, &request.name) {
            (Some(pending), Some(name)) if pending != name => {
                return Err(Error::Invalid(format!(
                    "an unfinished rotation to key `{pending}` is in progress on some of these hosts; \
                     run `remex keys rotate {}` without --name (or with --name {pending}) to finish it first",
                    selection.selector()
                )));
            }
            (Some(pending), _) => pending.clone(),
            (None, Some(name)) => name.clone(),
            (None, None) => format!("remex-{}", timestamp::compact(SystemTime::now())),
        };
        validate_name(&target)?;
        let starting = plan
            .hosts
            .iter()
            .any(|(_, p)| matches!(p, HostPlan::Start { .. }));
        let existing = LoadedKey::load(&dir, &target, false).ok();
        let generate = (starting && existing.is_none()).then(|| request.clone());
        if existing.is_none() && generate.is_none() {
            // Nothing to start and the key is gone: say so now.
            LoadedKey::load(&dir, &target, false)?;
        }
        let op = Rotate {
            target,
            generate,
            key: Mutex::new(existing),
            retired: Mutex::new(BTreeSet::new()),
        };
        self.run(ctx, hosts, op).await
    }
}

/// `keys rotate` as an operation of the runner.
struct Rotate {
    /// The new key's name.
    target: String,
    /// Generate the new key first (with this request's type and
    /// passphrase): no such key exists yet and some host starts a rotation.
    generate: Option<RotateRequest>,
    /// The new key, once it exists.
    key: Mutex<Option<LoadedKey>>,
    /// Old keys of hosts that finished: archived when nothing needs them.
    retired: Mutex<BTreeSet<String>>,
}

impl Rotate {
    /// The new key's name and fingerprint (the fingerprint once the key
    /// exists).
    fn key_ref(&self) -> KeyRef {
        match self
            .key
            .lock()
            .ok()
            .and_then(|k| k.as_ref().map(|k| k.key_ref.clone()))
        {
            Some(key) => key,
            None => KeyRef {
                name: self.target.clone(),
                algorithm: String::new(),
                fingerprint: String::new(),
            },
        }
    }
}

impl Operation for Rotate {
    type Detail = KeyResult;
    type Details = KeyDetails;

    fn op(&self) -> Op {
        Op::KeysRotate
    }

    fn describe(&self, record: Record) -> Record {
        let key = self.key_ref();
        let record = record.key(key.name);
        if key.fingerprint.is_empty() {
            record
        } else {
            record.fingerprint(key.fingerprint)
        }
    }

    /// Generates the new key if needed. Each host's rotation is begun (and
    /// saved) at the host's turn, before the host is contacted: a rotation
    /// in the state is one under way or one that stopped, never one merely
    /// planned, so an operation that goes first on a host is not refused
    /// for a rotation that has not started there.
    async fn prepare(&self, run: &RunState) -> Result<(), Failure> {
        let executor = &run.executor;
        let dir = key_dir(executor);
        if let Some(request) = &self.generate {
            let (into, name, kind, passphrase) = (
                dir.clone(),
                self.target.clone(),
                request.kind,
                request.passphrase.clone(),
            );
            tokio::task::spawn_blocking(move || {
                generate(
                    &into,
                    &name,
                    kind,
                    passphrase.as_deref(),
                    &default_comment(),
                )
            })
            .await
            .map_err(|e| Failure::new(ErrorKind::Keys, format!("key generation failed: {e}")))?
            .map_err(|e| local_failure(&e))?;
            let key = LoadedKey::load(&dir, &self.target, false).map_err(|e| local_failure(&e))?;
            let fingerprint = &key.key_ref.fingerprint;
            record_key(
                run,
                "generated",
                &self.target,
                fingerprint,
                [&key.private_path],
            );
            if let Ok(mut slot) = self.key.lock() {
                *slot = Some(key);
            }
        }
        Ok(())
    }

    async fn host(&self, host: &mut HostRun<'_>, outcome: &mut KeyResult) -> Result<(), Failure> {
        let name = host.name.to_owned();
        let configured = host
            .executor()
            .config()
            .vms
            .get(&name)
            .and_then(|vm| vm.key.clone());
        if let Some(key) = configured {
            outcome.uses = Some(key.clone());
            return Err(Failure::new(
                ErrorKind::Auth,
                format!(
                    "{name} has `key: {key}` in the config, so remex always uses that key there; \
                     remove `key:` from vms.{name} to let remex rotate its key"
                ),
            ));
        }
        let _turn = host_turn(host).await?;
        let executor = host.executor().clone();
        let dir = key_dir(&executor);
        // At most: an unfinished rotation to another key, then this run's.
        for _ in 0..3 {
            let (host_name, target, key_dir) = (name.clone(), self.target.clone(), dir.clone());
            let next = update(&executor, move |state| {
                let exists = || match LoadedKey::load(&key_dir, &target, false) {
                    Ok(_) => Ok(()),
                    Err(KeysError::NotFound { .. }) => Err(KeysError::KeyGone {
                        name: target.clone(),
                        dir: key_dir.clone(),
                    }),
                    Err(e) => Err(e),
                };
                state.next_rotation(&host_name, &target, exists, &now_rfc3339())
            })
            .await;
            let rotation = match next {
                Ok(Some(rotation)) => rotation,
                Ok(None) => {
                    outcome.rotation_step = None;
                    outcome.uses = Some(self.target.clone());
                    return Ok(());
                }
                Err(e) => {
                    outcome.uses = executor
                        .key_state()
                        .hosts
                        .get(&name)
                        .map(|h| h.current.clone());
                    return Err(Failure::new(ErrorKind::Keys, format!("{name}: {e}")));
                }
            };
            let old = rotation.old.clone();
            rotate_one(host, rotation, outcome).await?;
            if let (Some(old), Ok(mut retired)) = (old, self.retired.lock()) {
                retired.insert(old);
            }
        }
        Ok(())
    }

    /// Archives the old keys that no host needs any more, with a `key`
    /// record each.
    async fn finish(&self, run: &RunState, _results: &[HostReport<KeyResult>]) -> KeyDetails {
        let executor = &run.executor;
        let dir = key_dir(executor);
        let retired = self.retired.lock().map(|r| r.clone()).unwrap_or_default();
        let archived = archive_retired(executor, &dir, retired).await;
        let state = executor.key_state();
        for key in &archived {
            let fingerprint = state
                .keys
                .get(&key.archived_name)
                .map(|k| k.fingerprint.clone())
                .unwrap_or_default();
            record_key(
                run,
                "archived",
                &key.name,
                &fingerprint,
                [&key.private_path],
            );
        }
        KeyDetails {
            key: self.key_ref(),
            archived,
        }
    }
}

/// Drives one host's rotation to the end, persisting each step.
async fn rotate_one(
    run: &mut HostRun<'_>,
    mut rotation: HostRotation,
    outcome: &mut KeyResult,
) -> Result<(), Failure> {
    let executor = run.executor().clone();
    let dir = key_dir(&executor);
    let dir = dir.as_path();
    let host = run.name;
    loop {
        outcome.rotation_step = Some(rotation.step);
        outcome.uses = rotation.login_key().map(str::to_owned);
        let result = match rotation.next_action() {
            RotationAction::Deploy { key, login } => {
                deploy_step(run, dir, &key, login.as_deref(), outcome).await
            }
            RotationAction::Verify { key } => {
                let new = load_key(dir, &key)?;
                match session::verify_login(run, &new.private_path).await {
                    Ok(()) => {
                        outcome.push(ChangeAction::Verified, &new.key_ref);
                        Ok(RotationEvent::Verified)
                    }
                    Err(failure) if failure.kind == ErrorKind::Auth => {
                        // Deploy again next time (the old key still works).
                        let _ = advance(&executor, host, RotationEvent::VerifyFailed).await;
                        outcome.rotation_step = Some(super::RotationStep::Generated);
                        return Err(stopped(
                            host,
                            &rotation,
                            &format!(
                                "{host} refused the new key `{key}` ({}): {}",
                                new.key_ref.fingerprint, failure.message
                            ),
                        ));
                    }
                    Err(failure) => Err(failure),
                }
            }
            RotationAction::Record { key } => {
                let new = load_key(dir, &key)?;
                outcome.push(ChangeAction::NowUsed, &new.key_ref);
                Ok(RotationEvent::Recorded)
            }
            RotationAction::RemoveOld { key, login } => {
                let old = LoadedKey::load(dir, &key, true).map_err(|e| local_failure(&e))?;
                let conn = run
                    .open_with(&Login::key_only(private_key_path(dir, &login)))
                    .await;
                match conn {
                    Ok(conn) => {
                        let edited = session::remove(&conn, &old.line).await;
                        conn.shutdown().await;
                        edited.map(|edited| {
                            let action = match edited {
                                Edited::Removed(_) => ChangeAction::Removed,
                                _ => ChangeAction::NotPresent,
                            };
                            outcome.push(action, &old.key_ref);
                            RotationEvent::OldRemoved
                        })
                    }
                    Err(failure) => Err(failure),
                }
            }
            RotationAction::Done => {
                outcome.rotation_step = None;
                outcome.uses = Some(rotation.new.clone());
                return Ok(());
            }
        };
        let event = result.map_err(|failure| stopped(host, &rotation, &failure.message))?;
        rotation.step = advance(&executor, host, event)
            .await
            .map_err(|failure| stopped(host, &rotation, &failure.message))?;
    }
}

/// Step 1: add the new key, logging in with the one that works today.
async fn deploy_step(
    run: &mut HostRun<'_>,
    dir: &Path,
    key: &str,
    login: Option<&str>,
    outcome: &mut KeyResult,
) -> Result<RotationEvent, Failure> {
    let new = load_key(dir, key)?;
    let config = run.executor().config();
    let login_path: PathBuf = match login {
        Some(name) => private_key_path(dir, name),
        None => config
            .vms
            .get(run.name)
            .map(|vm| config.key_path_for(vm))
            .unwrap_or_default(),
    };
    let conn = run
        .open_with(&Login {
            key: Some(login_path),
            agent: true,
            password: None,
        })
        .await?;
    let edited = session::add(&conn, &new.line).await;
    conn.shutdown().await;
    let action = match edited? {
        Edited::Added => ChangeAction::Added,
        _ => ChangeAction::AlreadyPresent,
    };
    outcome.push(action, &new.key_ref);
    Ok(RotationEvent::Deployed)
}

fn load_key(dir: &Path, name: &str) -> Result<LoadedKey, Failure> {
    LoadedKey::load(dir, name, false).map_err(|e| local_failure(&e))
}

/// Persists `event` for `host`; returns the new step.
async fn advance(
    executor: &Executor,
    host: &str,
    event: RotationEvent,
) -> Result<super::RotationStep, Failure> {
    let host = host.to_owned();
    update(executor, move |state| {
        state.advance_rotation(&host, event, &now_rfc3339())
    })
    .await
    .map_err(|e| local_failure(&e))
}

/// The failure of a rotation that stopped on `host`: what happened, which
/// key still works there, and how to finish.
fn stopped(host: &str, rotation: &HostRotation, why: &str) -> Failure {
    let works = match rotation.login_key() {
        Some(key) => format!("key `{key}`"),
        None => "the configured key".to_owned(),
    };
    let kind = ErrorKind::Auth;
    Failure::new(
        kind,
        format!(
            "rotation to `{}` stopped on {host} after step `{}`: {why}; \
             {host} still uses {works}, which still logs in; run `remex keys rotate {host}` again to finish",
            rotation.new, rotation.step
        ),
    )
}

/// Archives the old keys of finished rotations that nothing needs any
/// more: no host uses them, no rotation refers to them, the config does not
/// name them, and remex generated them.
async fn archive_retired(
    executor: &Executor,
    dir: &Path,
    retired: BTreeSet<String>,
) -> Vec<ArchivedKey> {
    let config = executor.config();
    let mut named: BTreeSet<String> = config
        .vms
        .values()
        .filter_map(|vm| vm.key.clone())
        .collect();
    named.insert(config.remote_execution.default_key.clone());
    if retired.is_empty() {
        return Vec::new();
    }
    // No host step may run while keys move to the archive.
    let _whole = match executor.key_locks().whole_dir().await {
        Ok(turn) => turn,
        Err(e) => {
            tracing::warn!("not archiving the rotated-away keys: {e}");
            return Vec::new();
        }
    };
    let Ok(state) = load(dir).await else {
        return Vec::new();
    };
    let mut archived = Vec::new();
    for name in retired {
        let generated = state.keys.get(&name).is_some_and(|r| r.archived.is_none());
        if named.contains(&name) || !generated || !state.hosts_using(&name).is_empty() {
            continue;
        }
        let (dir, key) = (dir.to_owned(), name.clone());
        match tokio::task::spawn_blocking(move || archive(&dir, &key)).await {
            Ok(Ok(done)) => archived.push(done),
            Ok(Err(e)) => tracing::debug!("not archiving `{name}`: {e}"),
            Err(e) => tracing::warn!("archiving `{name}`: {e}"),
        }
    }
    archived
}
