//! `remex lab`: a local lab of real SSH servers on loopback addresses, for
//! the quickstart, the test suite and the benchmarks.
//!
//! A lab of N hosts is N server processes (OpenSSH `sshd` by default, or
//! Dropbear), one per host, each with its own ed25519 host key and
//! listening on its own address — `vm01` on 127.0.0.2, `vm02` on
//! 127.0.0.3, … — all on one port. Next to them the lab writes a client
//! key, a known_hosts file and a remex `config.yml`, so that
//!
//! ```text
//! remex lab up --hosts 3 --dir /tmp/lab
//! remex --config /tmp/lab/config.yml run lab -- uname -a
//! remex lab down --dir /tmp/lab
//! ```
//!
//! works with strict host-key checking and nothing else set up.
//!
//! # Parts
//!
//! - `spec` — [`LabSpec`]: what lab to bring up; `error` — [`LabError`].
//! - `up` — [`up()`] in named steps: checks, hosts, keys, servers, the
//!   client's files; the directory made ready. `start` — every server on
//!   one port, ready (another port when one is taken), following a `plan`.
//! - `down` — [`down()`]; `status` — [`status()`]; `dir` — opening an
//!   existing lab's directory.
//! - `layout` — pure: host names and addresses, paths, file contents.
//! - `server` — binaries, host keys, start and readiness of one server.
//! - `process` — `/proc` inspection and signals, for `down` and `status`.
//! - `account` — passwd lookup, and the Dropbear authorized_keys line;
//!   `login` — the account a lab logs in as (a password lab's user).
//! - `state` — `DIR/lab.json`, the state `down` and `status` read.
//! - `netns` — a bastion lab's network namespace; `ca` — a CA lab's
//!   certificates.
//! - `keygen` (ed25519 keys), `files` (files with their modes),
//!   `programs` (helper programs run at once): shared by `up`, `server`
//!   and `ca`.
//!
//! # The lab directory
//!
//! ```text
//! DIR/lab.json                     machine state (see below), atomic
//! DIR/config.yml                   remex config: vms, groups, keys
//! DIR/keys/id_ed25519(.pub)        client key (dir 0700, key 0600)
//! DIR/authorized_keys              client public key (OpenSSH servers)
//! DIR/known_hosts                  `[127.0.0.2]:PORT ssh-ed25519 AAAA…`
//! DIR/hosts/vm01/sshd_config       OpenSSH only
//! DIR/hosts/vm01/ssh_host_ed25519_key   host key (+ Dropbear form)
//! DIR/hosts/vm01/sshd.pid          written by the server once listening
//! DIR/hosts/vm01/sshd.log          the server's stderr
//! DIR/hosts/vm01/home/             OpenSSH only: the host's $HOME, where
//!                                  sessions and SFTP start
//! ```
//!
//! `lab.json` records the server kind and binary, the port, the user and
//! every host's pid. `down` removes it and leaves the rest, so the logs
//! can still be read; `up` on the same directory reuses it.
//!
//! **Invariant:** `down`, `status` and [`Lab::stop_host`] signal a pid
//! only while `/proc/PID/cmdline` shows that host's own server (its
//! command line names `DIR/hosts/NAME/`), so a pid reused by an unrelated
//! process is never touched.
//!
//! **Invariant:** two labs never share an address and port: a port is
//! used only after it was bound on every host address, and a host counts
//! as started only once its server wrote its pid file, which it does
//! after binding. A lab that loses a race for its port starts again on
//! another one.
//!
//! **Invariant:** nothing in a lab depends on the login user's shell rc
//! files: the servers are started directly, never through a shell.

pub(crate) mod account;
mod ca;
mod dir;
mod down;
mod error;
mod files;
mod keygen;
mod layout;
mod login;
mod netns;
mod plan;
mod process;
mod programs;
mod server;
mod spec;
mod start;
mod state;
mod status;
mod up;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::Child;

use serde::Serialize;

pub use down::{DownReport, down};
pub use error::LabError;
pub use layout::MAX_HOSTS;
pub use spec::{LabSpec, PasswordUser, ServerKind};
pub use status::{HostStatus, LabStatus, status};
pub use up::{up, up_blocking};

use down::STOP_GRACE;
use layout::Layout;
use start::READY_TIMEOUT;
use state::LabState;

/// One host of a lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabHost {
    /// Its name in `config.yml`: `vm01`, `vm02`, ….
    pub name: String,
    /// Its loopback address: 127.0.0.2, 127.0.0.3, ….
    pub address: Ipv4Addr,
    /// Its port, the same for every host of a lab.
    pub port: u16,
    /// The pid of its server process.
    pub pid: u32,
}

impl LabHost {
    /// Where its server listens.
    pub fn socket_addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.address, self.port)
    }
}

/// A lab that is up.
#[derive(Debug, Clone, Serialize)]
pub struct Lab {
    /// The lab directory, absolute.
    pub dir: PathBuf,
    /// `DIR/config.yml`, the remex config for the lab.
    #[serde(rename = "config")]
    pub config_path: PathBuf,
    /// `DIR/keys/id_ed25519`, the client private key.
    pub key_path: PathBuf,
    /// `DIR/known_hosts`, naming every host with its key.
    pub known_hosts_path: PathBuf,
    /// The login user.
    pub user: String,
    /// The server the hosts run.
    pub server: ServerKind,
    /// The hosts, in order.
    pub hosts: Vec<LabHost>,
    /// `DIR/password`, when `up` chose the password of a password lab.
    pub password_file: Option<PathBuf>,
    /// The network namespace the hosts listen in (`--bastion`): their
    /// addresses are its loopback, reachable only through the host
    /// `bastion`.
    pub namespace: Option<String>,
    /// The lab CA's public key (`--ca`), which `known_hosts` trusts.
    pub ca: Option<PathBuf>,
}

impl Lab {
    /// The host named `name`.
    pub fn host(&self, name: &str) -> Option<&LabHost> {
        self.hosts.iter().find(|host| host.name == name)
    }

    /// Stops one host's server (and its open connections), as [`down()`]
    /// does, so that the host becomes unreachable: connections to it are
    /// refused. The rest of the lab keeps running; [`Lab::start_host`]
    /// brings the host back. Blocks for up to a few seconds.
    pub fn stop_host(&self, name: &str) -> Result<(), LabError> {
        let layout = Layout {
            dir: self.dir.clone(),
        };
        let (state, index) = self.state_of(name)?;
        let Some(host) = state.hosts.get(index) else {
            return Err(self.unknown_host(name));
        };
        let outcome = process::stop(&[(host.pid, layout.host_marker(&host.name))], STOP_GRACE);
        if outcome.still_running.is_empty() {
            Ok(())
        } else {
            Err(LabError::StillRunning {
                hosts: vec![host.name.clone()],
            })
        }
    }

    /// Starts one host's server again, with its old key, address and port,
    /// and waits until it is ready. Does nothing if it is running. Fails
    /// with [`LabError::PortTaken`] if another process took its address
    /// meanwhile. Blocks for up to 10 s.
    ///
    /// It rewrites `lab.json` with the new pid, so calls for hosts of the
    /// same lab must not run at the same time.
    pub fn start_host(&mut self, name: &str) -> Result<(), LabError> {
        let layout = Layout {
            dir: self.dir.clone(),
        };
        let (mut state, index) = self.state_of(name)?;
        let Some(host) = state.hosts.get_mut(index) else {
            return Err(self.unknown_host(name));
        };
        if process::is_lab_server(host.pid, &layout.host_marker(&host.name)) {
            return Ok(());
        }
        let listen = SocketAddrV4::new(host.address, state.port);
        let child = server::spawn(
            state.server,
            &state.server_path,
            &layout,
            name,
            listen,
            state.namespace.as_deref(),
        )?;
        let mut children = vec![child];
        let pending = [server::Pending { name, listen }];
        let probe = state.namespace.is_none();
        match server::wait_ready(&layout, &mut children, &pending, READY_TIMEOUT, probe) {
            server::Readiness::Ready => {}
            server::Readiness::PortTaken => {
                server::kill_all(&mut children);
                return Err(LabError::PortTaken {
                    host: name.to_owned(),
                    address: listen,
                });
            }
            server::Readiness::Failed(error) => {
                server::kill_all(&mut children);
                return Err(error);
            }
        }
        let pid = children.first().map_or(0, Child::id);
        host.pid = pid;
        for child in children {
            server::reap_in_background(child);
        }
        state::write(&layout.state(), &state)?;
        if let Some(host) = self.hosts.iter_mut().find(|host| host.name == name) {
            host.pid = pid;
        }
        Ok(())
    }

    /// Stops the lab: [`down()`] on its directory.
    pub fn down(&self) -> Result<DownReport, LabError> {
        down(&self.dir)
    }

    /// The lab's state and the index of host `name` in it.
    fn state_of(&self, name: &str) -> Result<(LabState, usize), LabError> {
        let layout = Layout {
            dir: self.dir.clone(),
        };
        let state = state::read(&layout.state())?.ok_or_else(|| LabError::NoLab {
            dir: self.dir.clone(),
        })?;
        let index = state
            .hosts
            .iter()
            .position(|host| host.name == name)
            .ok_or_else(|| self.unknown_host(name))?;
        Ok((state, index))
    }

    fn unknown_host(&self, name: &str) -> LabError {
        LabError::UnknownHost {
            name: name.to_owned(),
            dir: self.dir.clone(),
        }
    }
}
