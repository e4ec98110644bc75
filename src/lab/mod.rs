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
//! - `layout` — pure: host names and addresses, paths, file contents.
//! - `server` — binaries, host keys, start and readiness of one server.
//! - `process` — `/proc` inspection and signals, for `down` and `status`.
//! - `account` — passwd lookup, and the Dropbear authorized_keys line.
//! - `state` — `DIR/lab.json`, the state `down` and `status` read.
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
mod layout;
mod netns;
mod process;
mod server;
mod state;

use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use russh::keys::ssh_key;
use serde::{Deserialize, Serialize};

pub use layout::MAX_HOSTS;

use layout::Layout;
use state::{AuthorizedKey, HostState, LabState};

/// How many ports `up` tries when another process takes its port between
/// the check and the servers' bind.
const PORT_ATTEMPTS: usize = 5;

/// How long `up` waits for servers to be ready: this, plus
/// [`READY_TIMEOUT_PER_HOST`] per host.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// See [`READY_TIMEOUT`].
const READY_TIMEOUT_PER_HOST: Duration = Duration::from_millis(20);

/// How long a server may take to exit after SIGTERM before it gets
/// SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// The comment that marks the lab's key in an authorized_keys file.
const KEY_COMMENT: &str = "remex-lab";

/// Which SSH server the hosts of a lab run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    /// OpenSSH, `/usr/sbin/sshd` (Debian package `openssh-server`). Each
    /// host gets its own `sshd_config` whose `AuthorizedKeysFile` is
    /// `DIR/authorized_keys`, so nothing outside DIR is touched (except
    /// `/run/sshd`, created when running as root).
    #[default]
    OpenSsh,
    /// Dropbear, `/usr/sbin/dropbear` (Debian package `dropbear-bin`).
    ///
    /// Dropbear has no option for the authorized_keys path: it reads
    /// `~USER/.ssh/authorized_keys` of the login user. So `up` **appends
    /// the lab's client public key to that file** (creating `~/.ssh` 0700
    /// and the file 0600, owned by the user, if missing), as one line
    /// ending with the comment `remex-lab:DIR`, and `down` removes exactly
    /// that line again. Run Dropbear labs as a throwaway user (as the test
    /// suite does) if that file must not change.
    Dropbear,
}

impl ServerKind {
    /// The lower-case name used in `lab.json` and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenSsh => "openssh",
            Self::Dropbear => "dropbear",
        }
    }
}

impl std::fmt::Display for ServerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What lab to bring up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabSpec {
    /// The number of hosts, 1 to [`MAX_HOSTS`].
    pub hosts: usize,
    /// The lab directory. Created if missing; it may hold a stopped lab
    /// (which is replaced) but not a running one, nor files that are not
    /// a lab's. Its absolute path must not contain whitespace, quotes,
    /// `#` or `%` (they would need quoting in `sshd_config`).
    pub dir: PathBuf,
    /// The server every host runs. Default: [`ServerKind::OpenSsh`].
    pub server: ServerKind,
    /// The login user written to `config.yml`. Default (`None`): the user
    /// running `up`. Only root may set up a lab for another user, and that
    /// user must be able to read `DIR/authorized_keys` (OpenSSH), i.e.
    /// search every directory above it.
    pub user: Option<String>,
    /// A throwaway login user with a password (OpenSSH only, root only):
    /// see [`PasswordUser`]. Replaces `user`.
    pub password_user: Option<PasswordUser>,
    /// Put the hosts behind a bastion (OpenSSH only, root only): they
    /// listen in a network namespace of their own that only the extra host
    /// `bastion` can reach, and `config.yml` reaches them with
    /// `jump: bastion`. See `netns.rs`.
    pub bastion: bool,
    /// Sign every host key and the client key with a lab CA (OpenSSH
    /// only): the hosts trust the CA's user certificates and authorize no
    /// key, and known_hosts holds one `@cert-authority` line, no pins. See
    /// `ca.rs`.
    pub ca: bool,
}

/// The login user of a password lab, for trying `remex keys deploy` end to
/// end: the lab's hosts accept this user's password (sshd with PAM,
/// `password` and `keyboard-interactive`) and no key at first — the lab's
/// client key is not authorized, `DIR/authorized_keys` is empty.
///
/// `up` creates the user (`useradd -m`, comment `remex-lab-` + a digest of
/// DIR) unless a
/// user of that name with that comment exists (left by this lab), and
/// refuses a user that is not the lab's: it never sets the password of a
/// real account. `down` removes a user `up` created, home included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordUser {
    /// The login name.
    pub name: String,
    /// The password; `None`: a random one, written to `DIR/password`
    /// (mode 0600).
    pub password: Option<String>,
}

impl LabSpec {
    /// A lab of `hosts` OpenSSH hosts in `dir`, logging in as the user
    /// running `up`.
    pub fn new(hosts: usize, dir: impl Into<PathBuf>) -> Self {
        Self {
            hosts,
            dir: dir.into(),
            server: ServerKind::default(),
            user: None,
            password_user: None,
            bastion: false,
            ca: false,
        }
    }
}

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
    /// [`LabSpec::hosts`] is 0 or more than [`MAX_HOSTS`].
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
    fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }

    fn key(source: ssh_key::Error) -> Self {
        Self::Key { source }
    }
}

/// Brings a lab up: see the module documentation. Runs [`up_blocking`] on
/// Tokio's blocking pool.
///
/// Dropping the returned future does not stop the start-up: the lab comes
/// up anyway, and `down` stops it.
pub async fn up(spec: &LabSpec) -> Result<Lab, LabError> {
    let spec = spec.clone();
    match tokio::task::spawn_blocking(move || up_blocking(&spec)).await {
        Ok(result) => result,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => Err(LabError::Cancelled),
    }
}

/// Brings a lab up, blocking until every host answers with an SSH banner
/// (or failing with the end of the failing host's log).
///
/// All servers are started first and then waited for, so 64 hosts take
/// about as long as one. The servers outlive the calling process; stop
/// them with [`down`].
pub fn up_blocking(spec: &LabSpec) -> Result<Lab, LabError> {
    if spec.hosts == 0 || spec.hosts > MAX_HOSTS {
        return Err(LabError::BadHostCount { hosts: spec.hosts });
    }
    let binaries = server::locate(spec.server)?;
    let layout = prepare_dir(&spec.dir)?;
    let euid = account::effective_uid()
        .map_err(|source| LabError::io("read", Path::new("/proc/self"), source))?;
    if spec.password_user.is_some() {
        if spec.server != ServerKind::OpenSsh {
            return Err(LabError::PasswordNeedsOpenSsh);
        }
        if euid != 0 {
            return Err(LabError::NeedsRoot);
        }
    }
    let (account, password_state, password_file) = match &spec.password_user {
        Some(user) => password_account(&layout, user)?,
        None => (login_account(spec.user.as_deref(), euid)?, None, None),
    };
    let password_auth = password_state.is_some();
    server::prepare_runtime(spec.server, euid)?;
    if spec.bastion && (euid != 0 || spec.server != ServerKind::OpenSsh) {
        return Err(LabError::BastionNeedsRootAndOpenSsh);
    }
    if spec.ca && spec.server != ServerKind::OpenSsh {
        return Err(LabError::CaNeedsOpenSsh);
    }

    let mut names: Vec<String> = (0..spec.hosts)
        .map(|index| layout::host_name(index, spec.hosts))
        .collect();
    let mut addresses: Vec<Ipv4Addr> = (0..spec.hosts)
        .map(|index| {
            layout::host_address(index).ok_or(LabError::BadHostCount { hosts: spec.hosts })
        })
        .collect::<Result<_, _>>()?;
    let namespace = spec.bastion.then(|| netns::Netns::for_dir(&layout.dir));
    if let Some(namespace) = &namespace {
        namespace.create()?;
        names.push(layout::BASTION.to_owned());
        addresses.push(namespace.bastion_addr);
    }

    let client_line = write_client_key(&layout)?;
    let lab_line = format!("{client_line} {KEY_COMMENT}:{}", layout.dir.display());
    // A password lab starts with no key authorized: first contact is by
    // password, as with a freshly installed machine.
    let shared_keys = if password_auth || spec.ca {
        String::new()
    } else {
        format!("{lab_line}\n")
    };
    server::write_file(&layout.authorized_keys(), shared_keys.as_bytes(), 0o644)?;
    let host_keys = server::write_host_keys(spec.server, &binaries, &layout, &names)?;
    let ca = if spec.ca {
        Some(ca::sign_all(
            &layout,
            &names,
            &addresses,
            &host_keys,
            &account.name,
        )?)
    } else {
        None
    };
    let authorized_key = match spec.server {
        ServerKind::OpenSsh => None,
        ServerKind::Dropbear => Some(AuthorizedKey {
            path: account.home.join(".ssh").join("authorized_keys"),
            line: lab_line,
        }),
    };
    let plan = Plan {
        kind: spec.server,
        server: &binaries.server,
        layout: &layout,
        names: &names,
        addresses: &addresses,
        user: &account.name,
        authorized_key: authorized_key.as_ref(),
        password_auth,
        password_user: password_state.as_ref(),
        home_owner: (euid == 0 && account.uid != 0).then_some((account.uid, account.gid)),
        shell: &account.shell,
        namespace: namespace.as_ref().map(|n| n.name.as_str()),
        ca: ca.as_ref().map(|ca| ca.public_path.as_path()),
    };
    let (port, children) = match start_all(&plan) {
        Ok(started) => started,
        Err(error) => {
            if let Some(namespace) = &namespace {
                netns::delete(&namespace.name);
            }
            return Err(error);
        }
    };
    let pids: Vec<u32> = children.iter().map(Child::id).collect();
    for child in children {
        server::reap_in_background(child);
    }

    let finish = || -> Result<(), LabError> {
        if let Some(entry) = &authorized_key {
            account::add_authorized_key(&account, &entry.line)
                .map_err(|source| LabError::io("add the lab key to", &entry.path, source))?;
        }
        let lines: Vec<layout::HostLine> = names
            .iter()
            .zip(&addresses)
            .zip(host_keys)
            .map(|((name, address), host_key)| layout::HostLine {
                name: name.clone(),
                listen: SocketAddrV4::new(*address, port),
                host_key,
            })
            .collect();
        let known = match &ca {
            Some(ca) => ca::known_hosts(ca, &addresses, port),
            None => layout::known_hosts(&lines),
        };
        server::write_file(&layout.known_hosts(), known.as_bytes(), 0o644)?;
        server::write_file(
            &layout.config(),
            layout::config_yml(&lines, &account.name, &layout, spec.bastion).as_bytes(),
            0o644,
        )
    };
    if let Err(error) = finish() {
        let _ = down(&layout.dir);
        return Err(error);
    }

    tracing::debug!(dir = %layout.dir.display(), port, hosts = spec.hosts, "lab is up");
    Ok(Lab {
        config_path: layout.config(),
        key_path: layout.client_key(),
        known_hosts_path: layout.known_hosts(),
        user: account.name,
        server: spec.server,
        password_file,
        namespace: namespace.map(|n| n.name),
        ca: ca.map(|ca| ca.public_path),
        hosts: names
            .into_iter()
            .zip(addresses)
            .zip(pids)
            .map(|((name, address), pid)| LabHost {
                name,
                address,
                port,
                pid,
            })
            .collect(),
        dir: layout.dir,
    })
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

impl Lab {
    /// The host named `name`.
    pub fn host(&self, name: &str) -> Option<&LabHost> {
        self.hosts.iter().find(|host| host.name == name)
    }

    /// Stops one host's server (and its open connections), as [`down`]
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

    /// Stops the lab: [`down`] on its directory.
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

/// Everything [`start_all`] needs.
struct Plan<'a> {
    kind: ServerKind,
    server: &'a Path,
    layout: &'a Layout,
    names: &'a [String],
    addresses: &'a [Ipv4Addr],
    user: &'a str,
    authorized_key: Option<&'a AuthorizedKey>,
    /// sshd accepts passwords (a password lab).
    password_auth: bool,
    /// The password lab's user, recorded in `lab.json` for `down`.
    password_user: Option<&'a state::PasswordUserState>,
    /// Who owns the hosts' `$HOME`s when the lab logs in as another user.
    home_owner: Option<(u32, u32)>,
    /// The login user's shell: which start files move a session to the
    /// host's `$HOME` depends on it.
    shell: &'a Path,
    /// The network namespace the servers run in (`--bastion`).
    namespace: Option<&'a str>,
    /// The lab CA's public key (`--ca`).
    ca: Option<&'a Path>,
}

/// Picks a port, starts every server on it and waits until all are
/// ready; starts over on a new port if one server finds its address
/// taken. Records the pids in `lab.json` as soon as the servers are
/// started, so that `down` can stop them even if this process dies.
fn start_all(plan: &Plan<'_>) -> Result<(u16, Vec<Child>), LabError> {
    let started = start_attempts(plan);
    if started.is_err() {
        // Whatever an earlier attempt recorded is dead by now.
        let _ = state::remove(&plan.layout.state());
    }
    started
}

/// The attempts of [`start_all`]; each one leaves no server running
/// unless it succeeds.
fn start_attempts(plan: &Plan<'_>) -> Result<(u16, Vec<Child>), LabError> {
    let timeout = READY_TIMEOUT
        + READY_TIMEOUT_PER_HOST
            .saturating_mul(u32::try_from(plan.names.len()).unwrap_or(u32::MAX));
    for attempt in 1..=PORT_ATTEMPTS {
        // Addresses in a namespace cannot be tried from here, and nothing
        // else listens there; the loopback ones are tried (harmlessly).
        let outside: Vec<Ipv4Addr> = plan
            .addresses
            .iter()
            .copied()
            .filter(|a| a.is_loopback())
            .collect();
        let port = server::pick_port(&outside)?;
        let pending: Vec<server::Pending<'_>> = plan
            .names
            .iter()
            .zip(plan.addresses)
            .map(|(name, address)| server::Pending {
                name,
                listen: SocketAddrV4::new(*address, port),
            })
            .collect();
        for host in &pending {
            server::write_config(plan, host.name, host.listen)?;
        }
        if let Some(first) = pending.first() {
            server::validate(plan.kind, plan.server, plan.layout, first.name)?;
        }

        let mut children = Vec::with_capacity(pending.len());
        for host in &pending {
            match server::spawn(
                plan.kind,
                plan.server,
                plan.layout,
                host.name,
                host.listen,
                plan.namespace,
            ) {
                Ok(child) => children.push(child),
                Err(error) => {
                    server::kill_all(&mut children);
                    return Err(error);
                }
            }
        }
        let state = LabState {
            version: state::VERSION,
            server: plan.kind,
            server_path: plan.server.to_owned(),
            port,
            user: plan.user.to_owned(),
            hosts: pending
                .iter()
                .zip(&children)
                .map(|(host, child)| HostState {
                    name: host.name.to_owned(),
                    address: *host.listen.ip(),
                    pid: child.id(),
                })
                .collect(),
            authorized_key: plan.authorized_key.cloned(),
            password_user: plan.password_user.cloned(),
            namespace: plan.namespace.map(str::to_owned),
        };
        if let Err(error) = state::write(&plan.layout.state(), &state) {
            server::kill_all(&mut children);
            return Err(error);
        }
        let probe = plan.namespace.is_none();
        match server::wait_ready(plan.layout, &mut children, &pending, timeout, probe) {
            server::Readiness::Ready => return Ok((port, children)),
            server::Readiness::PortTaken => {
                tracing::debug!(port, attempt, "lab port taken meanwhile; trying another");
                server::kill_all(&mut children);
            }
            server::Readiness::Failed(error) => {
                server::kill_all(&mut children);
                return Err(error);
            }
        }
    }
    Err(LabError::NoFreePort {
        hosts: plan.names.len(),
        attempts: PORT_ATTEMPTS,
    })
}

/// Creates the lab directory if needed and makes sure `up` may use it:
/// no running lab in it, no foreign files. A stopped lab's leftovers
/// (`lab.json` of a lab whose servers are gone, a Dropbear key line) are
/// cleaned up.
fn prepare_dir(dir: &Path) -> Result<Layout, LabError> {
    fs::create_dir_all(dir).map_err(|source| LabError::io("create", dir, source))?;
    let layout = existing_layout(dir)?;
    let Some(text) = layout.dir.to_str() else {
        return Err(bad_dir(&layout, "its path is not UTF-8"));
    };
    if let Some(c) = text
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '#' | '%' | '\\'))
    {
        return Err(bad_dir(&layout, &format!("its path contains {c:?}")));
    }
    match state::read(&layout.state())? {
        Some(state) => {
            let running = state
                .hosts
                .iter()
                .any(|host| process::is_lab_server(host.pid, &layout.host_marker(&host.name)));
            if running {
                return Err(LabError::AlreadyRunning { dir: layout.dir });
            }
            tracing::debug!(dir = %layout.dir.display(), "replacing a stopped lab");
            down(&layout.dir)?;
        }
        None => {
            let entries = fs::read_dir(&layout.dir)
                .map_err(|source| LabError::io("read", &layout.dir, source))?;
            for entry in entries {
                let entry = entry.map_err(|source| LabError::io("read", &layout.dir, source))?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if !layout::LAB_ENTRIES.contains(&name.as_ref())
                    && !name.starts_with("lab.json.tmp")
                {
                    return Err(bad_dir(
                        &layout,
                        &format!(
                            "it holds `{name}`, which is not part of a lab (use an empty or new directory)"
                        ),
                    ));
                }
            }
        }
    }
    Ok(layout)
}

/// The layout of an existing directory, with its canonical path.
fn existing_layout(dir: &Path) -> Result<Layout, LabError> {
    let dir = fs::canonicalize(dir).map_err(|source| LabError::io("open", dir, source))?;
    Ok(Layout { dir })
}

fn bad_dir(layout: &Layout, reason: &str) -> LabError {
    LabError::BadDir {
        dir: layout.dir.clone(),
        reason: reason.to_owned(),
    }
}

/// The account the lab logs in as, checked against who runs the lab.
fn login_account(user: Option<&str>, euid: u32) -> Result<account::Account, LabError> {
    let lookup = |key: &str| -> Result<account::Account, LabError> {
        account::lookup(key)
            .map_err(|source| LabError::io("look up", Path::new("passwd"), source))?
            .ok_or_else(|| LabError::UnknownUser {
                user: key.to_owned(),
            })
    };
    let invoking = lookup(&euid.to_string())?;
    let Some(user) = user else {
        return Ok(invoking);
    };
    let account = lookup(user)?;
    if euid != 0 && account.uid != euid {
        return Err(LabError::UserNotPermitted {
            user: user.to_owned(),
            invoking: invoking.name,
        });
    }
    Ok(account)
}

/// The comment (GECOS) that marks a password lab's user as this lab's:
/// `remex-lab-` and a digest of the lab directory (a path may hold the
/// `:` and `,` that GECOS cannot).
fn user_comment(layout: &Layout) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(layout.dir.as_os_str().as_encoded_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("remex-lab-{hex}")
}

/// Creates (or finds, left by this lab) the password lab's user and sets
/// its password; returns the account, the state to record, and the
/// password file when remex chose the password.
fn password_account(
    layout: &Layout,
    user: &PasswordUser,
) -> Result<
    (
        account::Account,
        Option<state::PasswordUserState>,
        Option<PathBuf>,
    ),
    LabError,
> {
    let failed = |reason: String| LabError::PasswordUser {
        user: user.name.clone(),
        reason,
    };
    if user.name.is_empty()
        || user.name.starts_with('-')
        || !user
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b))
    {
        return Err(failed(
            "use lower-case letters, digits, `_` and `-`, not starting with `-`".to_owned(),
        ));
    }
    let mark = user_comment(layout);
    let existing = account::comment(&user.name).map_err(|e| failed(e.to_string()))?;
    let (account, created) = match existing {
        Some(comment) if comment == mark => (
            account::lookup(&user.name)
                .map_err(|e| failed(e.to_string()))?
                .ok_or_else(|| failed("it vanished".to_owned()))?,
            true,
        ),
        Some(_) => {
            return Err(LabError::UserExists {
                user: user.name.clone(),
            });
        }
        None => (
            account::create_user(&user.name, &mark).map_err(|e| failed(e.to_string()))?,
            true,
        ),
    };
    let (password, file) = match &user.password {
        Some(password) => (password.clone(), None),
        None => {
            use rand::distr::{Alphanumeric, SampleString as _};
            let password = Alphanumeric.sample_string(&mut rand::rng(), 24);
            let path = layout.password_file();
            server::write_file(&path, format!("{password}\n").as_bytes(), 0o600)?;
            (password, Some(path))
        }
    };
    account::set_password(&user.name, &password).map_err(|e| failed(e.to_string()))?;
    Ok((
        account,
        Some(state::PasswordUserState {
            name: user.name.clone(),
            created,
        }),
        file,
    ))
}

/// Writes a new client key pair to `DIR/keys` and returns its public line.
fn write_client_key(layout: &Layout) -> Result<String, LabError> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let keys = layout.keys_dir();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&keys)
        .and_then(|()| fs::set_permissions(&keys, fs::Permissions::from_mode(0o700)))
        .map_err(|source| LabError::io("create", &keys, source))?;
    let key = server::generate_key()?;
    server::write_private_key(&key, &layout.client_key())?;
    let line = server::public_line(&key)?;
    server::write_file(
        &layout.client_public_key(),
        format!("{line} {KEY_COMMENT}\n").as_bytes(),
        0o644,
    )?;
    Ok(line)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

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

    #[test]
    fn paths_sshd_config_cannot_hold_are_refused() {
        let temp = tempfile::tempdir().unwrap();
        for name in ["with space", "per%cent", "hash#"] {
            let error = prepare_dir(&temp.path().join(name)).unwrap_err();
            assert!(matches!(error, LabError::BadDir { .. }), "{name}: {error}");
        }
        assert!(prepare_dir(&temp.path().join("fine-dir_1.x")).is_ok());
    }

    #[test]
    fn lab_state_serializes_server_kinds_in_lower_case() {
        assert_eq!(
            serde_json::to_string(&ServerKind::OpenSsh).unwrap(),
            "\"openssh\""
        );
        assert_eq!(
            serde_json::from_str::<ServerKind>("\"dropbear\"").unwrap(),
            ServerKind::Dropbear
        );
    }
}
