//! [`status`]: whether the server of each host of a lab is running.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::dir::existing_layout;
use super::error::LabError;
use super::spec::ServerKind;
use super::{process, state};

/// What [`status`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabStatus {
    /// The lab directory.
    pub dir: PathBuf,
    /// `DIR/config.yml`.
    #[serde(rename = "config")]
    pub config_path: PathBuf,
    /// The server the hosts run.
    pub server: ServerKind,
    /// The login user.
    pub user: String,
    /// One entry per host, in order.
    pub hosts: Vec<HostStatus>,
}

impl LabStatus {
    /// Whether every host's server is running.
    pub fn all_running(&self) -> bool {
        self.hosts.iter().all(|host| host.running)
    }
}

/// One host in a [`LabStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostStatus {
    /// The host name.
    pub name: String,
    /// Its loopback address.
    pub address: Ipv4Addr,
    /// Its port.
    pub port: u16,
    /// The pid its server had when last started.
    pub pid: u32,
    /// Whether that pid is alive and still this host's server.
    pub running: bool,
}

/// Reports, per host, whether its server is running.
pub fn status(dir: &Path) -> Result<LabStatus, LabError> {
    let layout = existing_layout(dir)?;
    let state = state::read(&layout.state())?.ok_or_else(|| LabError::NoLab {
        dir: layout.dir.clone(),
    })?;
    Ok(LabStatus {
        config_path: layout.config(),
        server: state.server,
        user: state.user.clone(),
        hosts: state
            .hosts
            .iter()
            .map(|host| HostStatus {
                name: host.name.clone(),
                address: host.address,
                port: state.port,
                pid: host.pid,
                running: process::is_lab_server(host.pid, &layout.host_marker(&host.name)),
            })
            .collect(),
        dir: layout.dir,
    })
}
