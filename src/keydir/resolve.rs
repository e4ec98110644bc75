//! Which key remex logs in to a host with.
//!
//! Precedence, highest first:
//!
//! 1. the host's own `key:` in the config (`vms.NAME.key`): an explicit
//!    choice the operator made for that host, always honoured — `remex keys
//!    rotate` refuses such a host rather than work around it;
//! 2. the key the state file (`remex-keys.json`) records as the host's
//!    current key, after `remex keys deploy` or `rotate` verified that it
//!    logs in — so a rotation takes effect without editing the config;
//! 3. `remote_execution.default_key`.
//!
//! A state key whose private key file is gone is skipped with a warning
//! (falling back to the config), and so is an unreadable state file: a
//! broken key directory must not stop `remex exec`.

use std::path::PathBuf;

use super::{KeyState, private_key_path};
use crate::config::{Config, Vm};

/// Where the key remex uses for a host comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeySource {
    /// The host's `key:` in the config.
    Pinned,
    /// The state file's current key for the host.
    State,
    /// `remote_execution.default_key`.
    Default,
}

/// The key remex uses for one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostKey {
    /// The private key file.
    pub path: PathBuf,
    /// Its name in the key directory, when it is there (a `key:` may be an
    /// absolute path elsewhere).
    pub name: Option<String>,
    /// Where the choice came from.
    pub source: KeySource,
}

/// The key remex uses for host `name` (configured as `vm`), given the state.
pub(crate) fn host_key(config: &Config, state: &KeyState, name: &str, vm: &Vm) -> HostKey {
    let dir = &config.remote_execution.key_storage_path;
    if vm.key.is_none()
        && let Some(entry) = state.hosts.get(name)
    {
        let path = private_key_path(dir, &entry.current);
        if path.exists() {
            return HostKey {
                path,
                name: Some(entry.current.clone()),
                source: KeySource::State,
            };
        }
        tracing::warn!(
            "{name}: the key state names key `{}`, but {} is missing; using the configured key",
            entry.current,
            path.display()
        );
    }
    let path = config.key_path_for(vm);
    let name_in_dir = (path.parent() == Some(dir.as_path()))
        .then(|| path.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .flatten();
    HostKey {
        path,
        name: name_in_dir,
        source: if vm.key.is_some() {
            KeySource::Pinned
        } else {
            KeySource::Default
        },
    }
}
