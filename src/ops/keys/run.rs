//! What the fleet-wide key operations (`deploy`, `rotate`, `revoke`) share:
//! the error that stops a run before any host is contacted, and small
//! helpers.

use std::path::{Path, PathBuf};

use russh::keys::PublicKey;

use super::KeysError;
use super::authorized_keys::KeyLine;
use super::generate::{private_key_path, public_key_path, validate_name};
use super::list::read_public_key;
use super::report::{KeyHostOutcome, KeyRef};
use super::state::{KeyState, load_state, update_state};
use crate::audit::Record;
use crate::run::executor::Executor;
use crate::targets::TargetError;
use crate::transport::identity::fingerprint;

/// Why a key operation could not start (exit status 2). A host's failure
/// is not one of these: it is in that host's [`KeyHostOutcome`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// A local step (key files, state file) failed.
    #[error(transparent)]
    Keys(#[from] KeysError),
    /// The selector selected nothing usable.
    #[error(transparent)]
    Targets(#[from] TargetError),
    /// The request cannot be carried out as given.
    #[error("{0}")]
    Invalid(String),
    /// The audit log cannot record the run: no host was contacted.
    #[error(transparent)]
    Audit(#[from] crate::run::executor::Error),
}

/// What a key operation's `start` records say: the key's name and
/// fingerprint.
pub(crate) fn key_details(key: &KeyRef) -> impl Fn(Record) -> Record + use<> {
    let (name, fingerprint) = (key.name.clone(), key.fingerprint.clone());
    move |record| record.key(name.clone()).fingerprint(fingerprint.clone())
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
    pub fn load(dir: &Path, name: &str, archived_too: bool) -> Result<Self, KeysError> {
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

/// A fresh outcome for `host`: not ok, nothing changed yet.
pub(crate) fn blank_outcome(executor: &Executor, host: &str) -> KeyHostOutcome {
    let endpoint = executor.endpoint(host).unwrap_or_default();
    KeyHostOutcome {
        host: host.to_owned(),
        address: endpoint.host,
        port: endpoint.port,
        user: endpoint.user,
        ok: false,
        changes: Vec::new(),
        uses: None,
        rotation_step: None,
        error: None,
    }
}

/// The key directory of the executor's config.
pub(crate) fn key_dir(executor: &Executor) -> PathBuf {
    executor.config().remote_execution.key_storage_path.clone()
}

/// [`update_state`] off the async threads (it waits for a file lock).
pub(crate) async fn update<T: Send + 'static>(
    dir: &Path,
    change: impl FnOnce(&mut KeyState) -> Result<T, KeysError> + Send + 'static,
) -> Result<T, KeysError> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || update_state(&dir, change))
        .await
        .map_err(|e| KeysError::Io {
            action: "update",
            path: PathBuf::from(super::state::STATE_FILE),
            source: std::io::Error::other(e.to_string()),
        })?
}

/// [`load_state`] off the async threads.
pub(crate) async fn load(dir: &Path) -> Result<KeyState, KeysError> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || load_state(&dir))
        .await
        .map_err(|e| KeysError::Io {
            action: "read",
            path: PathBuf::from(super::state::STATE_FILE),
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
