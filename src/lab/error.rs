//! [`LabError`]: why a lab operation failed, a variant per cause.

use std::io;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::time::Duration;

use russh::keys::ssh_key;

use super::layout::MAX_HOSTS;

/// Why a lab operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// A server program is not installed.
    #[error("{program} not found at {}: install it with `apt-get install -y {package}`", .path.display())]
    SshdMissing {
        /// `sshd`, `dropbear` or `dropbearconvert`.
        program: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// The Debian package that installs it.
        package: &'static str,
    },
    /// [`LabSpec::hosts`](super::LabSpec::hosts) is 0 or more than [`MAX_HOSTS`].
    #[error("a lab has 1 to {MAX_HOSTS} hosts, not {hosts}")]
    BadHostCount {
        /// The number asked for.
        hosts: usize,
    },
    /// The lab directory cannot be used.
    #[error("cannot use {} as a lab directory: {reason}", .dir.display())]
    BadDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// `up` found a running lab in the directory.
    #[error("a lab is already running in {dir}: run `remex lab down --dir {dir}` first", dir = .dir.display())]
    AlreadyRunning {
        /// The directory.
        dir: PathBuf,
    },
    /// `down` or `status` found no `lab.json`.
    #[error("no lab in {dir} (no lab.json): start one with `remex lab up --dir {dir}`", dir = .dir.display())]
    NoLab {
        /// The directory.
        dir: PathBuf,
    },
    /// The login user does not exist.
    #[error("unknown user `{user}`")]
    UnknownUser {
        /// The name (or uid) looked up.
        user: String,
    },
    /// A user other than root asked for a lab logging in as someone else:
    /// its servers, running as that user, could not log anyone else in.
    #[error(
        "a lab started by `{invoking}` can log in only as `{invoking}`, not `{user}`; start it as root to log in as another user"
    )]
    UserNotPermitted {
        /// The user asked for.
        user: String,
        /// The user running `up`.
        invoking: String,
    },
    /// No host of that name in the lab.
    #[error("no host `{name}` in the lab in {}", .dir.display())]
    UnknownHost {
        /// The name asked for.
        name: String,
        /// The lab directory.
        dir: PathBuf,
    },
    /// A file system or process operation failed.
    #[error("cannot {action} {}", .path.display())]
    Io {
        /// What was being done: `read`, `write`, `start`, ….
        action: &'static str,
        /// The file, directory or program.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Generating or encoding a key failed.
    #[error("cannot generate an ed25519 key")]
    Key {
        /// The error.
        #[source]
        source: ssh_key::Error,
    },
    /// `lab.json` cannot be read or written.
    #[error("bad lab state {}: {reason}; if no lab is running there, remove it", .path.display())]
    BadState {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `sshd -t` rejected a host's configuration.
    #[error("sshd rejects the configuration of {host} ({}):\n{message}", .path.display())]
    BadServerConfig {
        /// The host.
        host: String,
        /// Its `sshd_config`.
        path: PathBuf,
        /// What `sshd -t` said.
        message: String,
    },
    /// `dropbearconvert` failed on a host key.
    #[error("dropbearconvert cannot convert the host key of {host}:\n{message}")]
    KeyConversion {
        /// The host.
        host: String,
        /// What dropbearconvert said.
        message: String,
    },
    /// A server exited while starting.
    #[error("the server of {host} exited while starting ({status}); end of {}:\n{log_tail}", .log.display())]
    ServerExited {
        /// The host.
        host: String,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        log_tail: String,
    },
    /// A server did not become ready in time.
    #[error("the server of {host} did not answer with an SSH banner on {address} within {timeout:?}; end of {}:\n{log_tail}", .log.display())]
    NotReady {
        /// The host.
        host: String,
        /// Where it should listen.
        address: SocketAddrV4,
        /// How long `up` waited.
        timeout: Duration,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        log_tail: String,
    },
    /// Another process kept taking the port.
    #[error("no port stayed free on all {hosts} host addresses after {attempts} attempts")]
    NoFreePort {
        /// The number of hosts.
        hosts: usize,
        /// How many ports were tried.
        attempts: usize,
    },
    /// A host's port was taken while its server was stopped.
    #[error("cannot restart {host}: another process now listens on {address}")]
    PortTaken {
        /// The host.
        host: String,
        /// Its address.
        address: SocketAddrV4,
    },
    /// Servers survived SIGKILL.
    #[error("the servers of {} are still running after SIGKILL", .hosts.join(", "))]
    StillRunning {
        /// The hosts.
        hosts: Vec<String>,
    },
    /// The runtime dropped the task that was bringing the lab up.
    #[error("the lab start-up was cancelled")]
    Cancelled,
    /// A password lab was asked for without root.
    #[error(
        "a lab with --password-user needs root: it creates a local user and its sshd checks passwords through PAM; run it as root (in a VM or container you can throw away)"
    )]
    NeedsRoot,
    /// A bastion lab was asked for without root or with Dropbear.
    #[error(
        "a lab with --bastion needs root and OpenSSH: it puts the hosts in a network namespace (ip netns) that only the bastion can reach"
    )]
    BastionNeedsRootAndOpenSsh,
    /// Setting up the network namespace failed.
    #[error("cannot set up the lab's network namespace: `{command}` failed: {message}")]
    Netns {
        /// The `ip` command.
        command: String,
        /// What it said.
        message: String,
    },
    /// A CA lab was asked for with Dropbear.
    #[error("--ca works with OpenSSH labs only (leave out --server dropbear)")]
    CaNeedsOpenSsh,
    /// `ssh-keygen -s` failed.
    #[error("cannot sign the lab's keys with its CA (ssh-keygen -s): {message}")]
    Certificate {
        /// What ssh-keygen said.
        message: String,
    },
    /// A password lab was asked for with Dropbear.
    #[error("--password-user works with OpenSSH labs only (leave out --server dropbear)")]
    PasswordNeedsOpenSsh,
    /// The password user exists and is not this lab's.
    #[error(
        "user `{user}` already exists and was not created by this lab; pick another --password-user name (remex never sets the password of an existing account)"
    )]
    UserExists {
        /// The name.
        user: String,
    },
    /// Creating the user or setting its password failed.
    #[error("cannot set up the password user `{user}`: {reason}")]
    PasswordUser {
        /// The name.
        user: String,
        /// What failed.
        reason: String,
    },
}

impl LabError {
    pub(super) fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }

    pub(super) fn key(source: ssh_key::Error) -> Self {
        Self::Key { source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::server;

    #[test]
    fn a_missing_server_names_its_package() {
        let error = LabError::SshdMissing {
            program: "sshd",
            path: PathBuf::from(server::SSHD),
            package: "openssh-server",
        };
        assert_eq!(
            error.to_string(),
            "sshd not found at /usr/sbin/sshd: install it with `apt-get install -y openssh-server`"
        );
    }
}
