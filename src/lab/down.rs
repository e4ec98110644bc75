//! [`down`]: stopping a lab and undoing what `up` did outside its
//! directory, and the [`DownReport`] of what it did.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::dir::existing_layout;
use super::error::LabError;
use super::login::user_comment;
use super::{account, netns, process, state};

/// How long a server may take to exit after SIGTERM before it gets
/// SIGKILL.
pub(super) const STOP_GRACE: Duration = Duration::from_secs(3);

/// What [`down`] did. Each list holds host names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DownReport {
    /// The lab directory (left in place, with its logs).
    pub dir: PathBuf,
    /// Hosts whose server exited on SIGTERM.
    pub stopped: Vec<String>,
    /// Hosts whose server needed SIGKILL.
    pub killed: Vec<String>,
    /// Hosts whose server was not running any more.
    pub not_running: Vec<String>,
    /// For a Dropbear lab: the authorized_keys file the lab's line was
    /// removed from (`None` if there was no line to remove).
    pub authorized_key_removed: Option<PathBuf>,
    /// For a password lab: the user removed (`None`: none was created).
    pub user_removed: Option<String>,
}

/// Stops the lab in `dir`: every host's server (and its per-connection
/// children) gets SIGTERM, and SIGKILL if it has not exited after 3 s.
/// Only processes whose command line shows they are this lab's servers
/// are signalled. Removes a Dropbear lab's authorized_keys line and
/// `lab.json`; the rest of the directory stays, logs included.
///
/// Blocks for up to a few seconds.
pub fn down(dir: &Path) -> Result<DownReport, LabError> {
    let layout = existing_layout(dir)?;
    let state = state::read(&layout.state())?.ok_or_else(|| LabError::NoLab {
        dir: layout.dir.clone(),
    })?;
    let servers: Vec<(u32, String)> = state
        .hosts
        .iter()
        .map(|host| (host.pid, layout.host_marker(&host.name)))
        .collect();
    let outcome = process::stop(&servers, STOP_GRACE);
    let names = |indexes: &[usize]| -> Vec<String> {
        indexes
            .iter()
            .filter_map(|index| state.hosts.get(*index).map(|host| host.name.clone()))
            .collect()
    };
    if !outcome.still_running.is_empty() {
        return Err(LabError::StillRunning {
            hosts: names(&outcome.still_running),
        });
    }
    let mut report = DownReport {
        dir: layout.dir.clone(),
        stopped: names(&outcome.stopped),
        killed: names(&outcome.killed),
        not_running: names(&outcome.not_running),
        authorized_key_removed: None,
        user_removed: None,
    };
    if let Some(entry) = &state.authorized_key {
        let removed = account::remove_authorized_key(&entry.path, &entry.line)
            .map_err(|source| LabError::io("remove the lab key from", &entry.path, source))?;
        if removed {
            report.authorized_key_removed = Some(entry.path.clone());
        }
    }
    if let Some(user) = state.password_user.as_ref().filter(|u| u.created) {
        // Only a user that still carries this lab's mark.
        let ours = account::comment(&user.name)
            .ok()
            .flatten()
            .is_some_and(|c| c == user_comment(&layout));
        if ours {
            account::remove_user(&user.name).map_err(|e| LabError::PasswordUser {
                user: user.name.clone(),
                reason: e.to_string(),
            })?;
            report.user_removed = Some(user.name.clone());
        }
        let _ = fs::remove_file(layout.password_file());
    }
    if let Some(namespace) = &state.namespace {
        netns::delete(namespace);
    }
    state::remove(&layout.state())?;
    Ok(report)
}
