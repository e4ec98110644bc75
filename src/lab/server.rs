//! The server of one lab host, OpenSSH `sshd` or Dropbear: its binaries,
//! host keys, configuration, start and readiness.
//!
//! Every host runs its own server process, in its own process group (so
//! it outlives `remex lab up` and ignores the terminal's Ctrl-C), with
//! stdin from /dev/null and stdout and stderr appended to
//! `DIR/hosts/NAME/sshd.log`.
//!
//! A host is *ready* when (1) its server has written its pid file, which
//! both servers do only after binding the listening socket, so the
//! address is ours and not another lab's, and (2) a TCP connection to it
//! receives an `SSH-2.0-` banner.

use std::fs::{self, File};
use std::io::{self, BufRead as _, BufReader, Read as _};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::unix::fs::DirBuilderExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::error::LabError;
use super::files::write_file;
use super::keygen::{generate_key, public_line, write_private_key};
use super::layout::{self, Layout};
use super::plan::Plan;
use super::programs::{output_text, run_all};
use super::spec::ServerKind;
use super::{ca, netns};

/// Where OpenSSH's server is; sshd re-executes itself, so the path must
/// be absolute.
pub(super) const SSHD: &str = "/usr/sbin/sshd";
/// Where Dropbear's server is.
pub(super) const DROPBEAR: &str = "/usr/sbin/dropbear";
/// The OpenSSH → Dropbear key converter.
pub(super) const DROPBEARCONVERT: &str = "/usr/bin/dropbearconvert";
/// The directory a root sshd needs for privilege separation.
const PRIVSEP_DIR: &str = "/run/sshd";

/// How long one readiness probe may take to connect or to read a banner.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// How often readiness is checked again.
const POLL: Duration = Duration::from_millis(10);
/// How many lines of a server's log an error quotes.
const LOG_TAIL_LINES: usize = 20;

/// The programs a server kind needs.
#[derive(Debug, Clone)]
pub(super) struct Binaries {
    /// The server itself.
    pub server: PathBuf,
    /// `dropbearconvert`, for Dropbear labs only.
    pub convert: Option<PathBuf>,
}

/// Finds the programs `kind` needs, or says which package to install.
pub(super) fn locate(kind: ServerKind) -> Result<Binaries, LabError> {
    let require = |program: &'static str, path: &str, package: &'static str| {
        let path = PathBuf::from(path);
        if path.is_file() {
            Ok(path)
        } else {
            Err(LabError::SshdMissing {
                program,
                path,
                package,
            })
        }
    };
    Ok(match kind {
        ServerKind::OpenSsh => Binaries {
            server: require("sshd", SSHD, "openssh-server")?,
            convert: None,
        },
        ServerKind::Dropbear => Binaries {
            server: require("dropbear", DROPBEAR, "dropbear-bin")?,
            convert: Some(require("dropbearconvert", DROPBEARCONVERT, "dropbear-bin")?),
        },
    })
}

/// Creates `/run/sshd` (0755) if an OpenSSH lab runs as root and it is
/// missing: sshd refuses to start without it.
pub(super) fn prepare_runtime(kind: ServerKind, euid: u32) -> Result<(), LabError> {
    if kind != ServerKind::OpenSsh || euid != 0 || Path::new(PRIVSEP_DIR).is_dir() {
        return Ok(());
    }
    match fs::DirBuilder::new().mode(0o755).create(PRIVSEP_DIR) {
        Err(error) if error.kind() != io::ErrorKind::AlreadyExists => {
            Err(LabError::io("create", Path::new(PRIVSEP_DIR), error))
        }
        _ => Ok(()),
    }
}

/// Gives every host a directory and a new host key, and returns each
/// host's public key line (for known_hosts). Dropbear keys are converted
/// with `dropbearconvert`, all hosts at once.
pub(super) fn write_host_keys(
    kind: ServerKind,
    binaries: &Binaries,
    layout: &Layout,
    names: &[String],
) -> Result<Vec<String>, LabError> {
    let mut public_keys = Vec::with_capacity(names.len());
    for name in names {
        let dir = layout.host_dir(name);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&dir)
            .map_err(|source| LabError::io("create", &dir, source))?;
        let key = generate_key()?;
        write_private_key(&key, &layout.host_key(name))?;
        public_keys.push(public_line(&key)?);
    }
    if let (ServerKind::Dropbear, Some(convert)) = (kind, &binaries.convert) {
        let commands = names.iter().map(|name| {
            let output = layout.dropbear_host_key(name);
            // dropbearconvert refuses to overwrite.
            let _ = fs::remove_file(&output);
            let mut command = Command::new(convert);
            command
                .arg("openssh")
                .arg("dropbear")
                .arg(layout.host_key(name))
                .arg(output);
            command
        });
        for (name, output) in names.iter().zip(run_all(commands)) {
            let output = output.map_err(|source| LabError::io("run", convert, source))?;
            if !output.status.success() {
                return Err(LabError::KeyConversion {
                    host: name.clone(),
                    message: output_text(&output),
                });
            }
        }
    }
    Ok(public_keys)
}

/// Writes a host's server configuration for `listen` (OpenSSH only;
/// Dropbear takes everything as arguments), and creates the host's `$HOME`
/// with its shell start files (owned by `home_owner` when given: a lab for
/// another login user); a CA lab's hosts also get their certificate and
/// the CA they trust.
pub(super) fn write_config(
    plan: &Plan<'_>,
    name: &str,
    listen: SocketAddrV4,
) -> Result<(), LabError> {
    if plan.kind != ServerKind::OpenSsh {
        return Ok(());
    }
    let layout = plan.layout;
    let home = layout.host_home(name);
    let mut text = layout::sshd_config(
        listen,
        &layout.host_key(name),
        &layout.pid_file(name),
        &layout.authorized_keys(),
        &home,
        plan.password_auth,
        plan.shell,
    );
    if let Some(ca_public) = plan.ca {
        text.push_str(&ca::sshd_lines(&layout.host_key(name), ca_public));
    }
    fs::create_dir_all(&home).map_err(|source| LabError::io("create", &home, source))?;
    let mut owned = vec![home.clone()];
    for name in layout::START_FILES {
        let file = home.join(name);
        write_file(&file, layout::START_SCRIPT.as_bytes(), 0o644)?;
        owned.push(file);
    }
    if let Some((uid, gid)) = plan.home_owner {
        for path in owned {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                .map_err(|source| LabError::io("chown", &path, source))?;
        }
    }
    write_file(&layout.sshd_config(name), text.as_bytes(), 0o644)
}

/// Checks a host's configuration with `sshd -t` (OpenSSH only) and
/// returns sshd's own message if it rejects it. `up` checks the first
/// host only: every host's file is made by the same code and differs only
/// in its address and paths, and a server that still fails to start is
/// reported with the end of its log.
pub(super) fn validate(
    kind: ServerKind,
    server: &Path,
    layout: &Layout,
    name: &str,
) -> Result<(), LabError> {
    if kind != ServerKind::OpenSsh {
        return Ok(());
    }
    let config = layout.sshd_config(name);
    let output = Command::new(server)
        .arg("-t")
        .arg("-f")
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::io("run", server, source))?;
    if output.status.success() {
        return Ok(());
    }
    Err(LabError::BadServerConfig {
        host: name.to_owned(),
        path: config,
        message: output_text(&output),
    })
}

/// Starts a host's server. Removes its old pid file first, so that the
/// pid file is proof that this server bound the address.
pub(super) fn spawn(
    kind: ServerKind,
    server: &Path,
    layout: &Layout,
    name: &str,
    listen: SocketAddrV4,
    namespace: Option<&str>,
) -> Result<Child, LabError> {
    let pid_file = layout.pid_file(name);
    match fs::remove_file(&pid_file) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            return Err(LabError::io("remove", &pid_file, error));
        }
        _ => {}
    }
    let log_path = layout.log(name);
    let log =
        File::create(&log_path).map_err(|source| LabError::io("create", &log_path, source))?;
    let stdout = log
        .try_clone()
        .map_err(|source| LabError::io("open", &log_path, source))?;
    let mut command = match namespace {
        Some(ns) => netns::command(ns, server),
        None => Command::new(server),
    };
    match kind {
        ServerKind::OpenSsh => {
            command
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(layout.sshd_config(name));
        }
        ServerKind::Dropbear => {
            command.args(layout::dropbear_args(
                listen,
                &layout.dropbear_host_key(name),
                &pid_file,
            ));
        }
    }
    command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(log)
        .process_group(0)
        .spawn()
        .map_err(|source| LabError::io("start", server, source))
}

/// Lets a thread wait for `child`, so that once it exits it does not
/// stay a zombie of this process (which would keep its pid "alive" for a
/// `down` called from this process). When this process exits first, the
/// server is re-parented and the init process reaps it.
pub(super) fn reap_in_background(mut child: Child) {
    let spawned = thread::Builder::new()
        .name(format!("remex-lab-reap-{}", child.id()))
        .stack_size(64 * 1024)
        .spawn(move || {
            let _ = child.wait();
        });
    if let Err(error) = spawned {
        tracing::debug!(%error, "cannot start a reaper thread; the server will be reaped on exit");
    }
}

/// Stops servers this call started and still holds: SIGKILL and wait.
pub(super) fn kill_all(children: &mut Vec<Child>) {
    for child in children.iter_mut() {
        let _ = child.kill();
    }
    for mut child in children.drain(..) {
        let _ = child.wait();
    }
}

/// A host to wait for.
#[derive(Debug, Clone)]
pub(super) struct Pending<'a> {
    /// Its name.
    pub name: &'a str,
    /// Where its server should listen.
    pub listen: SocketAddrV4,
}

/// How waiting for servers ended.
#[derive(Debug)]
pub(super) enum Readiness {
    /// Every server listens and sent its banner.
    Ready,
    /// A server could not bind: another process took the port meanwhile.
    PortTaken,
    /// A server failed for another reason.
    Failed(LabError),
}

/// Waits until every server in `children` (in the order of `hosts`) is
/// ready, or one fails, or `deadline` passes. `probe`: also wait for its
/// SSH banner (not for servers in a network namespace).
pub(super) fn wait_ready(
    layout: &Layout,
    children: &mut [Child],
    hosts: &[Pending<'_>],
    timeout: Duration,
    probe: bool,
) -> Readiness {
    let deadline = Instant::now() + timeout;
    for (child, host) in children.iter_mut().zip(hosts) {
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    let log = layout.log(host.name);
                    let log_tail = log_tail(&log);
                    if is_bind_failure(&log_tail) {
                        return Readiness::PortTaken;
                    }
                    return Readiness::Failed(LabError::ServerExited {
                        host: host.name.to_owned(),
                        status: status.to_string(),
                        log,
                        log_tail,
                    });
                }
                Ok(None) => {}
                Err(source) => {
                    return Readiness::Failed(LabError::io(
                        "wait for the server of",
                        &layout.host_dir(host.name),
                        source,
                    ));
                }
            }
            // sshd writes its pid file once it listens; a server in a
            // namespace cannot be probed from here, the pid file must do.
            if wrote_pid_file(&layout.pid_file(host.name), child.id())
                && (!probe || sends_banner(host.listen))
            {
                break;
            }
            if Instant::now() >= deadline {
                let log = layout.log(host.name);
                return Readiness::Failed(LabError::NotReady {
                    host: host.name.to_owned(),
                    address: host.listen,
                    timeout,
                    log_tail: log_tail(&log),
                    log,
                });
            }
            thread::sleep(POLL);
        }
    }
    Readiness::Ready
}

/// Whether the pid file holds `pid`.
fn wrote_pid_file(path: &Path, pid: u32) -> bool {
    fs::read_to_string(path).is_ok_and(|text| text.trim().parse() == Ok(pid))
}

/// Whether a connection to `address` receives an `SSH-2.0-` banner line.
fn sends_banner(address: SocketAddrV4) -> bool {
    let Ok(stream) = TcpStream::connect_timeout(&SocketAddr::V4(address), PROBE_TIMEOUT) else {
        return false;
    };
    if stream.set_read_timeout(Some(PROBE_TIMEOUT)).is_err() {
        return false;
    }
    let mut line = Vec::new();
    // RFC 4253 allows lines before the banner; a lab server sends none.
    let read = BufReader::new(stream.take(256)).read_until(b'\n', &mut line);
    read.is_ok() && line.starts_with(b"SSH-2.0-")
}

/// Whether a server's log says it could not bind its address.
fn is_bind_failure(log: &str) -> bool {
    [
        "Address already in use",
        "Cannot bind any address",
        "No listening ports available",
        "Failed listening",
    ]
    .iter()
    .any(|needle| log.contains(needle))
}

/// The last lines of a log file, for error messages.
pub(super) fn log_tail(path: &Path) -> String {
    let Ok(bytes) = fs::read(path) else {
        return "(no log)".to_owned();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(LOG_TAIL_LINES);
    let tail = lines.get(start..).unwrap_or_default().join("\n");
    if tail.is_empty() {
        "(empty log)".to_owned()
    } else {
        tail
    }
}

/// Finds a port that is free on every address: the kernel picks a free
/// port on 127.0.0.1, then each address is bound on it to check. A later
/// race with another process is caught when a server fails to bind.
pub(super) fn pick_port(addresses: &[Ipv4Addr]) -> Result<u16, LabError> {
    const TRIES: usize = 20;
    for _ in 0..TRIES {
        let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|source| LabError::io("bind", Path::new("127.0.0.1:0"), source))?;
        let port = probe
            .local_addr()
            .map_err(|source| LabError::io("bind", Path::new("127.0.0.1:0"), source))?
            .port();
        let held: Result<Vec<TcpListener>, io::Error> = addresses
            .iter()
            .map(|address| TcpListener::bind((*address, port)))
            .collect();
        if held.is_ok() {
            return Ok(port);
        }
    }
    Err(LabError::NoFreePort {
        hosts: addresses.len(),
        attempts: TRIES,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn bind_failures_of_both_servers_are_recognised() {
        assert!(is_bind_failure(
            "Bind to port 4 on 127.0.0.2 failed: Address already in use.\nCannot bind any address."
        ));
        assert!(is_bind_failure(
            "[9] Early exit: No listening ports available."
        ));
        assert!(!is_bind_failure(
            "Missing privilege separation directory: /run/sshd"
        ));
    }

    #[test]
    fn a_picked_port_is_free_on_every_address() {
        let addresses: Vec<Ipv4Addr> = (0..8).filter_map(layout::host_address).collect();
        let port = pick_port(&addresses).unwrap();
        for address in addresses {
            drop(TcpListener::bind((address, port)).unwrap());
        }
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let text: String = (0..30).map(|i| format!("line {i}\n")).collect();
        fs::write(&path, text).unwrap();
        let tail = log_tail(&path);
        assert!(tail.starts_with("line 10\n"), "{tail}");
        assert!(tail.ends_with("line 29"), "{tail}");
        assert_eq!(log_tail(&dir.path().join("missing")), "(no log)");
    }
}
