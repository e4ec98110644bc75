//! What the fleet-wide key operations (`deploy`, `rotate`, `revoke`) share:
//! the key they work with, and access to the key state file.

use std::path::{Path, PathBuf};

use russh::keys::PublicKey;

use super::authorized_keys::KeyLine;
use super::list::read_public_key;
use super::report::KeyRef;
use crate::audit::{Event, Record};
use crate::failure::{ErrorKind, Failure};
use crate::keydir::lock::HostTurn;
use crate::keydir::{
    KeyState, KeysError, STATE_FILE, load_state, private_key_path, public_key_path, update_state,
    validate_name,
};
use crate::run::runner::{HostRun, RunState};
use crate::run::{Executor, cancel};
use crate::transport::identity::fingerprint;

/// What a key operation's `start` records say: the key's name and
/// fingerprint.
pub(crate) fn key_details(record: Record, key: &KeyRef) -> Record {
    record
        .key(key.name.clone())
        .fingerprint(key.fingerprint.clone())
}

/// A key of the key directory, loaded for an operation.
#[derive(Debug, Clone)]
pub(crate) struct LoadedKey {
    /// Name, type, fingerprint.
    pub key_ref: KeyRef,
    /// The line to add or remove.
    pub line: KeyLine,
    /// The private key file (it may be missing for a revoke).
    pub private_path: PathBuf,
}

impl LoadedKey {
    /// Key `name` from `dir`: active keys only, or (`archived_too`) from
    /// the archive as well.
    pub(super) fn load(dir: &Path, name: &str, archived_too: bool) -> Result<Self, KeysError> {
        validate_name(name)?;
        let public = if archived_too {
            read_public_key(dir, name)?
        } else {
            let path = public_key_path(dir, name);
            if !path.exists() || !private_key_path(dir, name).exists() {
                return Err(KeysError::NotFound {
                    name: name.to_owned(),
                    dir: dir.to_owned(),
                });
            }
            read_public_key(dir, name)?
        };
        Self::from_public(dir, name, &public)
    }

    /// Checks that key `name` in `dir` is still the key loaded (active, the
    /// same fingerprint): another remex may have archived it, or archived
    /// it and generated another of the same name, while this run waited
    /// for a host's turn.
    pub(super) fn check_still_in(&self, dir: &Path) -> Result<(), KeysError> {
        let name = &self.key_ref.name;
        match Self::load(dir, name, false) {
            Ok(now) if now.key_ref.fingerprint == self.key_ref.fingerprint => Ok(()),
            Ok(_) | Err(KeysError::NotFound { .. }) => Err(KeysError::KeyGone {
                name: name.clone(),
                dir: dir.to_owned(),
            }),
            Err(e) => Err(e),
        }
    }

    fn from_public(dir: &Path, name: &str, public: &PublicKey) -> Result<Self, KeysError> {
        Ok(Self {
            key_ref: KeyRef {
                name: name.to_owned(),
                algorithm: public.algorithm().as_str().to_owned(),
                fingerprint: fingerprint(public),
            },
            line: KeyLine::from_public_key(public)?,
            private_path: private_key_path(dir, name),
        })
    }
}

/// Waits for `run`'s host's turn: until it is dropped, no other key
/// operation changes this host's keys (in this process or another) and no
/// key is archived or pruned (`keydir/lock.rs`). Every deploy, rotate and
/// revoke holds it across its whole host step — read the state, change
/// authorized_keys, write the state. The host's endpoint is read again
/// once it is this run's turn: the operation that went first may have
/// changed the key remex logs in with. A run cancelled while it waits
/// stops waiting; the host is reported not started.
pub(crate) async fn host_turn(run: &mut HostRun<'_>) -> Result<HostTurn, Failure> {
    let executor = run.executor().clone();
    let turn = tokio::select! {
        turn = executor.key_locks().host(run.name) => turn.map_err(|e| local_failure(&e))?,
        () = cancel::cancelled(run.cancel()) => return Err(Failure::not_started()),
    };
    run.endpoint = executor.endpoint_or_blank(run.name);
    Ok(turn)
}

/// The key directory of the executor's config.
pub(crate) fn key_dir(executor: &Executor) -> PathBuf {
    executor.config().remote_execution.key_storage_path.clone()
}

/// [`update_state`] off the async threads (it waits for a file lock);
/// the executor sees the change at once.
pub(crate) async fn update<T: Send + 'static>(
    executor: &Executor,
    change: impl FnOnce(&mut KeyState) -> Result<T, KeysError> + Send + 'static,
) -> Result<T, KeysError> {
    let dir = key_dir(executor);
    let updated = tokio::task::spawn_blocking(move || update_state(&dir, change))
        .await
        .map_err(|e| KeysError::Io {
            action: "update",
            path: PathBuf::from(STATE_FILE),
            source: std::io::Error::other(e.to_string()),
        });
    executor.key_state_changed();
    updated?
}

/// [`load_state`] off the async threads.
pub(crate) async fn load(dir: &Path) -> Result<KeyState, KeysError> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || load_state(&dir))
        .await
        .map_err(|e| KeysError::Io {
            action: "read",
            path: PathBuf::from(STATE_FILE),
            source: std::io::Error::other(e.to_string()),
        })?
}

/// The key remex uses for `host` now, as the state file says (`None`: the
/// configured key).
pub(crate) fn used_key(state: &KeyState, executor: &Executor, host: &str) -> Option<String> {
    let vm = executor.config().vms.get(host)?;
    if vm.key.is_some() {
        return vm.key.clone();
    }
    state.hosts.get(host).map(|h| h.current.clone())
}

/// Records a change this machine made to key `name` (`generated`,
/// `archived`, `pruned`), with its fingerprint and files, in `run`.
pub(crate) fn record_key<P: AsRef<Path>>(
    run: &RunState,
    action: &str,
    name: &str,
    fingerprint: &str,
    files: impl IntoIterator<Item = P>,
) {
    run.write(
        run.record(Event::Key)
            .action(action)
            .key(name)
            .fingerprint(fingerprint)
            .paths(files.into_iter().map(|f| f.as_ref().display().to_string())),
    );
}

/// A local step (key files, the state file) that failed on a host's way.
pub(crate) fn local_failure(e: &KeysError) -> Failure {
    Failure::new(ErrorKind::Keys, e.to_string())
}
