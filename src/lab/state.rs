//! `DIR/lab.json`: what a running lab is made of, so that `down` and
//! `status` (usually another process) know which pids are the lab's.
//!
//! ```json
//! {
//!   "version": 1,
//!   "server": "openssh",
//!   "server_path": "/usr/sbin/sshd",
//!   "port": 40123,
//!   "user": "root",
//!   "hosts": [{ "name": "vm01", "address": "127.0.0.2", "pid": 4242 }],
//!   "authorized_key": null,
//!   "password_user": { "name": "remex-demo", "created": true }
//! }
//! ```
//!
//! `authorized_key` is set for Dropbear labs only: the file and the exact
//! line `up` appended to it, which `down` removes.
//!
//! **Invariant:** the file is replaced atomically (write a temporary file,
//! then rename), so a reader sees the old state or the new one, never half.

use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::LabError;
use super::spec::ServerKind;

/// The schema version of `lab.json`.
pub(super) const VERSION: u32 = 1;

/// The whole of `lab.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct LabState {
    /// [`VERSION`] when written; a file with another version is refused.
    pub version: u32,
    /// Which server every host runs.
    pub server: ServerKind,
    /// The server binary, so `start_host` runs the same one.
    pub server_path: PathBuf,
    /// The port every host listens on.
    pub port: u16,
    /// The login user the lab was set up for.
    pub user: String,
    /// One entry per host, in host order.
    pub hosts: Vec<HostState>,
    /// The line `up` added to a user's authorized_keys (Dropbear only).
    pub authorized_key: Option<AuthorizedKey>,
    /// The `--password-user` of the lab, which `down` removes when `up`
    /// created it.
    #[serde(default)]
    pub password_user: Option<PasswordUserState>,
    /// The network namespace the servers run in (`--bastion`), which
    /// `down` deletes.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// The throwaway login user of a password lab.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct PasswordUserState {
    /// Its name.
    pub name: String,
    /// Whether `up` created it (then `down` removes it, home included).
    pub created: bool,
}

/// One host of `lab.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct HostState {
    /// The host name, e.g. `vm01`.
    pub name: String,
    /// Its loopback address.
    pub address: Ipv4Addr,
    /// The pid of its server when last started.
    pub pid: u32,
}

/// A line `up` appended to a file outside the lab directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct AuthorizedKey {
    /// The file, e.g. `/home/u/.ssh/authorized_keys`.
    pub path: PathBuf,
    /// The exact line, without its newline.
    pub line: String,
}

/// Reads `path`; `Ok(None)` if it does not exist.
pub(super) fn read(path: &Path) -> Result<Option<LabState>, LabError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LabError::io("read", path, source)),
    };
    let state: LabState = serde_json::from_str(&text).map_err(|source| LabError::BadState {
        path: path.to_owned(),
        reason: source.to_string(),
    })?;
    if state.version != VERSION {
        return Err(LabError::BadState {
            path: path.to_owned(),
            reason: format!("version {} is not {VERSION}", state.version),
        });
    }
    Ok(Some(state))
}

/// Replaces `path` with `state`, atomically.
pub(super) fn write(path: &Path, state: &LabState) -> Result<(), LabError> {
    let mut text = serde_json::to_string_pretty(state).map_err(|source| LabError::BadState {
        path: path.to_owned(),
        reason: source.to_string(),
    })?;
    text.push('\n');
    crate::atomic_file::replace(path, text.as_bytes(), 0o600)
        .map_err(|source| LabError::io("write", path, source))
}

/// Removes `path`; not an error if it is already gone.
pub(super) fn remove(path: &Path) -> Result<(), LabError> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            Err(LabError::io("remove", path, error))
        }
        _ => Ok(()),
    }
}
