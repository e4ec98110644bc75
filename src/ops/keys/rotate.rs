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

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::archive::{ArchivedKey, archive};
use super::generate::{KeyKind, default_comment, generate, private_key_path};
use super::report::{ChangeAction, KeyHostOutcome, KeysReport};
use super::rotation::{HostPlan, HostRotation, RotationAction, RotationEvent, plan_rotation};
use super::run::{LoadedKey, RunError, blank_outcome, key_details, key_dir, load, update};
use super::session::{self, Edited};
use super::{KeysError, now_rfc3339, timestamp};
use crate::audit::{Event, Op, Record};
use crate::run::executor::{AuditEnd, Executor};
use crate::run::report::{ErrorKind, Failure};
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

/// Rotates the key of every host `selector` selects; see the module docs.
pub async fn rotate(
    executor: &Executor,
    selector: &str,
    request: &RotateRequest,
) -> Result<KeysReport, RunError> {
    let hosts = executor.select(selector)?;
    let dir = key_dir(executor);
    let started = Instant::now();
    let config = executor.config();
    let (pinned, free): (Vec<String>, Vec<String>) = hosts
        .iter()
        .cloned()
        .partition(|h| config.vms.get(h).is_some_and(|vm| vm.key.is_some()));

    let state = load(&dir).await?;
    let plan = plan_rotation(&state, &free);
    let target = match (&plan.new_key, &request.name) {
        (Some(pending), Some(name)) if pending != name => {
            return Err(RunError::Invalid(format!(
                "an unfinished rotation to key `{pending}` is in progress on some of these hosts; \
                 run `remex keys rotate {selector}` without --name (or with --name {pending}) to finish it first"
            )));
        }
        (Some(pending), _) => pending.clone(),
        (None, Some(name)) => name.clone(),
        (None, None) => format!("remex-{}", timestamp::compact(SystemTime::now())),
    };
    let starting = plan
        .hosts
        .iter()
        .any(|(_, p)| matches!(p, HostPlan::Start { .. }));
    let run = crate::audit::new_run_id();
    let generating = starting && !private_key_path(&dir, &target).exists();
    if generating {
        let (dir, name, kind, passphrase) = (
            dir.clone(),
            target.clone(),
            request.kind,
            request.passphrase.clone(),
        );
        tokio::task::spawn_blocking(move || {
            generate(&dir, &name, kind, passphrase.as_deref(), &default_comment())
        })
        .await
        .map_err(|e| RunError::Invalid(format!("key generation failed: {e}")))??;
    }
    let target_key = LoadedKey::load(&dir, &target, false)?;
    if generating {
        executor.record(
            Record::new(Event::Key, Op::KeysRotate, run.clone())
                .action("generated")
                .key(target.clone())
                .fingerprint(target_key.key_ref.fingerprint.clone())
                .paths([target_key.private_path.display().to_string()]),
        )?;
    }

    // Every host's rotation is recorded before any host is contacted, so
    // an interrupted run always leaves something to resume.
    let now = now_rfc3339();
    let plans = plan.hosts.clone();
    let new_name = target.clone();
    let begun: Vec<(String, Result<Option<HostRotation>, KeysError>)> =
        update(&dir, move |state| {
            Ok(plans
                .into_iter()
                .map(|(host, plan)| {
                    let result = match plan {
                        HostPlan::Resume(rotation) => Ok(Some(rotation)),
                        HostPlan::AlreadyRotated { .. } => Ok(None),
                        HostPlan::Start { .. } => {
                            state.begin_rotation(&host, &new_name, &now).map(Some)
                        }
                    };
                    (host, result)
                })
                .collect())
        })
        .await?;

    let mut outcomes: Vec<KeyHostOutcome> = Vec::new();
    let mut work = Vec::new();
    for host in &pinned {
        let mut outcome = blank_outcome(executor, host);
        let key = config.vms.get(host).and_then(|vm| vm.key.clone());
        outcome.uses = key.clone();
        outcome.error = Some(Failure::new(
            ErrorKind::Auth,
            format!(
                "{host} has `key: {}` in the config, so remex always uses that key there; \
                 remove `key:` from vms.{host} to let remex rotate its key",
                key.unwrap_or_default()
            ),
        ));
        outcomes.push(outcome);
    }
    for (host, result) in begun {
        let mut outcome = blank_outcome(executor, &host);
        match result {
            Ok(Some(rotation)) => work.push((host, rotation)),
            Ok(None) => {
                outcome.ok = true;
                outcome.uses = Some(target.clone());
                outcomes.push(outcome);
            }
            Err(e) => {
                outcome.error = Some(Failure::new(ErrorKind::Auth, format!("{host}: {e}")));
                outcome.uses = state.hosts.get(&host).map(|h| h.current.clone());
                outcomes.push(outcome);
            }
        }
    }

    let rotations: Arc<Vec<(String, HostRotation)>> = Arc::new(work);
    let names: Vec<String> = rotations.iter().map(|(h, _)| h.clone()).collect();
    let shared = rotations.clone();
    let run_dir = dir.clone();
    let trail = executor.begin_run(
        run,
        Op::KeysRotate,
        &names,
        Vec::new(),
        key_details(&target_key.key_ref),
    )?;
    let (worked, mut audit_error) = executor
        .fan_out_audited(&trail, names, move |executor, host, _trail| {
            let rotation = shared
                .iter()
                .find(|(h, _)| *h == host)
                .map(|(_, r)| r.clone());
            let dir = run_dir.clone();
            async move {
                let mut outcome = blank_outcome(&executor, &host);
                if let Some(rotation) = rotation {
                    let old = rotation.old.clone();
                    match rotate_one(&executor, &host, &dir, rotation, &mut outcome).await {
                        Ok(()) => outcome.ok = true,
                        Err(failure) => outcome.error = Some(failure),
                    }
                    Rotated { outcome, old }
                } else {
                    Rotated { outcome, old: None }
                }
            }
        })
        .await;
    let mut retired = BTreeSet::new();
    for Rotated { outcome, old } in worked {
        if outcome.ok
            && let Some(old) = old
        {
            retired.insert(old);
        }
        outcomes.push(outcome);
    }
    let order: Vec<&String> = hosts.iter().collect();
    outcomes.sort_by_key(|o| order.iter().position(|h| **h == o.host));

    let archived = archive_retired(executor, &dir, retired).await;
    let state = load(&dir).await.unwrap_or_default();
    for key in &archived {
        let fingerprint = state
            .keys
            .get(&key.archived_name)
            .map(|k| k.fingerprint.clone())
            .unwrap_or_default();
        let record = Record::new(Event::Key, Op::KeysRotate, trail.run())
            .action("archived")
            .key(key.name.clone())
            .fingerprint(fingerprint)
            .paths([key.private_path.display().to_string()]);
        if let Err(err) = executor.record(record) {
            audit_error.get_or_insert_with(|| format!("{:#}", anyhow::Error::from(err)));
        }
    }
    let mut report = KeysReport::new(
        "keys_rotate",
        target_key.key_ref,
        outcomes,
        started.elapsed(),
    )
    .audited(trail.run().to_owned(), audit_error);
    report.archived = archived;
    Ok(report)
}

/// One host's rotation and the key it retired there (if it finished).
struct Rotated {
    outcome: KeyHostOutcome,
    old: Option<String>,
}

impl AuditEnd for Rotated {
    fn changes(&self, host: &Record) -> Vec<Record> {
        self.outcome.changes(host)
    }

    fn end_record(&self, record: Record) -> Record {
        self.outcome.end_record(record)
    }
}

/// Drives one host's rotation to the end, persisting each step.
async fn rotate_one(
    executor: &Executor,
    host: &str,
    dir: &Path,
    mut rotation: HostRotation,
    outcome: &mut KeyHostOutcome,
) -> Result<(), Failure> {
    loop {
        outcome.rotation_step = Some(rotation.step);
        outcome.uses = rotation.login_key().map(str::to_owned);
        let result = match rotation.next_action() {
            RotationAction::Deploy { key, login } => {
                deploy_step(executor, host, dir, &key, login.as_deref(), outcome).await
            }
            RotationAction::Verify { key } => {
                let new = load_key(dir, &key)?;
                match session::verify_login(executor, host, &new.private_path).await {
                    Ok(()) => {
                        outcome.push(ChangeAction::Verified, &new.key_ref);
                        Ok(RotationEvent::Verified)
                    }
                    Err(failure) if failure.kind == ErrorKind::Auth => {
                        // Deploy again next time (the old key still works).
                        let _ = advance(dir, host, RotationEvent::VerifyFailed).await;
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
                let old = LoadedKey::load(dir, &key, true).map_err(local)?;
                let conn = executor
                    .open_with(host, &Login::key_only(private_key_path(dir, &login)))
                    .await;
                match conn {
                    Ok(conn) => {
                        let edited = session::remove(&conn, &old.line).await;
                        conn.close().await;
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
        rotation.step = advance(dir, host, event)
            .await
            .map_err(|failure| stopped(host, &rotation, &failure.message))?;
    }
}

/// Step 1: add the new key, logging in with the one that works today.
async fn deploy_step(
    executor: &Executor,
    host: &str,
    dir: &Path,
    key: &str,
    login: Option<&str>,
    outcome: &mut KeyHostOutcome,
) -> Result<RotationEvent, Failure> {
    let new = load_key(dir, key)?;
    let login_path: PathBuf = match login {
        Some(name) => private_key_path(dir, name),
        None => executor
            .config()
            .vms
            .get(host)
            .map(|vm| executor.config().key_path_for(vm))
            .unwrap_or_default(),
    };
    let conn = executor
        .open_with(
            host,
            &Login {
                key: Some(login_path),
                agent: executor.config().remote_execution.use_agent,
                password: None,
            },
        )
        .await?;
    let edited = session::add(&conn, &new.line).await;
    conn.close().await;
    let action = match edited? {
        Edited::Added => ChangeAction::Added,
        _ => ChangeAction::AlreadyPresent,
    };
    outcome.push(action, &new.key_ref);
    Ok(RotationEvent::Deployed)
}

fn load_key(dir: &Path, name: &str) -> Result<LoadedKey, Failure> {
    LoadedKey::load(dir, name, false).map_err(local)
}

fn local(e: KeysError) -> Failure {
    Failure::new(ErrorKind::Io, e.to_string())
}

/// Persists `event` for `host`; returns the new step.
async fn advance(
    dir: &Path,
    host: &str,
    event: RotationEvent,
) -> Result<super::RotationStep, Failure> {
    let host = host.to_owned();
    update(dir, move |state| {
        state.advance_rotation(&host, event, &now_rfc3339())
    })
    .await
    .map_err(local)
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
