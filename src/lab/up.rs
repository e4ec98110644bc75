//! [`up`]: bringing a lab up, in named steps — [`setup`] (checks and
//! local preparation, the directory made ready by [`prepare_dir`], in the
//! order they happen), [`hosts`] (names, addresses, the bastion's
//! namespace), [`write_keys`] (client key, authorized_keys, host keys, CA
//! certificates), [`start`] (every server, ready) and
//! [`write_client_files`] (known_hosts and `config.yml`, or the lab is
//! stopped again).

use std::fs;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Child;

use super::ca::{self, LabCa};
use super::dir::existing_layout;
use super::down::down;
use super::error::LabError;
use super::files::write_file;
use super::keygen::{generate_key, public_line, write_private_key};
use super::layout::{self, Layout, MAX_HOSTS};
use super::login::{login_account, password_account};
use super::plan::Plan;
use super::spec::{LabSpec, ServerKind};
use super::start::start_all;
use super::state::{self, AuthorizedKey};
use super::{Lab, LabHost, account, netns, process, server};

/// The comment that marks the lab's key in an authorized_keys file.
const KEY_COMMENT: &str = "remex-lab";

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
    let setup = setup(spec)?;
    let hosts = hosts(spec, &setup.layout)?;
    let keys = write_keys(spec, &setup, &hosts)?;
    let (port, pids) = start(spec, &setup, &hosts, &keys)?;
    if let Err(error) = write_client_files(spec, &setup, &hosts, &keys, port) {
        let _ = down(&setup.layout.dir);
        return Err(error);
    }

    tracing::debug!(dir = %setup.layout.dir.display(), port, hosts = spec.hosts, "lab is up");
    let Setup {
        layout,
        account,
        password_file,
        ..
    } = setup;
    let Hosts {
        names,
        addresses,
        namespace,
    } = hosts;
    Ok(Lab {
        config_path: layout.config(),
        key_path: layout.client_key(),
        known_hosts_path: layout.known_hosts(),
        user: account.name,
        server: spec.server,
        password_file,
        namespace: namespace.map(|n| n.name),
        ca: keys.ca.map(|ca| ca.public_path),
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

/// What `up` knows before it writes a key: the programs, the directory,
/// who runs it and whom the lab logs in as.
struct Setup {
    /// The server programs of the spec's kind.
    binaries: server::Binaries,
    /// The lab directory, ready for a new lab.
    layout: Layout,
    /// The effective uid of this process (root may do more).
    euid: u32,
    /// The login account of the lab.
    account: account::Account,
    /// A password lab's user, recorded in `lab.json` for `down`.
    password_state: Option<state::PasswordUserState>,
    /// `DIR/password`, when `up` chose the password.
    password_file: Option<PathBuf>,
}

/// The hosts of the lab, in order: the spec's, then `bastion` if any.
struct Hosts {
    /// `vm01`, `vm02`, … (and `bastion`).
    names: Vec<String>,
    /// Each host's address, in the order of `names`.
    addresses: Vec<Ipv4Addr>,
    /// The network namespace the hosts listen in (`--bastion`), created.
    namespace: Option<netns::Netns>,
}

/// The keys `up` wrote before starting the servers.
struct Keys {
    /// Each host's public key line, in the order of the hosts.
    host_keys: Vec<String>,
    /// The lab CA (`--ca`), its certificates made.
    ca: Option<LabCa>,
    /// A Dropbear lab's line for the login user's authorized_keys.
    authorized_key: Option<AuthorizedKey>,
}

/// Checks the spec against this machine and prepares what does not depend
/// on the hosts: the programs, the directory, the login account (a
/// password lab's user created), `/run/sshd`. In this order, so that each
/// check fails as it always has.
fn setup(spec: &LabSpec) -> Result<Setup, LabError> {
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
    server::prepare_runtime(spec.server, euid)?;
    if spec.bastion && (euid != 0 || spec.server != ServerKind::OpenSsh) {
        return Err(LabError::BastionNeedsRootAndOpenSsh);
    }
    if spec.ca && spec.server != ServerKind::OpenSsh {
        return Err(LabError::CaNeedsOpenSsh);
    }
    Ok(Setup {
        binaries,
        layout,
        euid,
        account,
        password_state,
        password_file,
    })
}

/// The hosts' names and addresses; for a bastion lab, the namespace
/// (created now) and the host `bastion`.
fn hosts(spec: &LabSpec, layout: &Layout) -> Result<Hosts, LabError> {
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
    Ok(Hosts {
        names,
        addresses,
        namespace,
    })
}

/// Writes the client key, the shared authorized_keys, every host's key
/// and (`--ca`) the CA's certificates.
fn write_keys(spec: &LabSpec, setup: &Setup, hosts: &Hosts) -> Result<Keys, LabError> {
    let layout = &setup.layout;
    let client_line = write_client_key(layout)?;
    let lab_line = format!("{client_line} {KEY_COMMENT}:{}", layout.dir.display());
    // A password lab starts with no key authorized: first contact is by
    // password, as with a freshly installed machine.
    let shared_keys = if setup.password_state.is_some() || spec.ca {
        String::new()
    } else {
        format!("{lab_line}\n")
    };
    write_file(&layout.authorized_keys(), shared_keys.as_bytes(), 0o644)?;
    let host_keys = server::write_host_keys(spec.server, &setup.binaries, layout, &hosts.names)?;
    let ca = if spec.ca {
        Some(ca::sign_all(
            layout,
            &hosts.names,
            &hosts.addresses,
            &host_keys,
            &setup.account.name,
        )?)
    } else {
        None
    };
    let authorized_key = match spec.server {
        ServerKind::OpenSsh => None,
        ServerKind::Dropbear => Some(AuthorizedKey {
            path: setup.account.home.join(".ssh").join("authorized_keys"),
            line: lab_line,
        }),
    };
    Ok(Keys {
        host_keys,
        ca,
        authorized_key,
    })
}

/// Starts every server and waits until all are ready; returns the port
/// and the servers' pids. On failure no server runs and a bastion lab's
/// namespace is deleted.
fn start(
    spec: &LabSpec,
    setup: &Setup,
    hosts: &Hosts,
    keys: &Keys,
) -> Result<(u16, Vec<u32>), LabError> {
    let account = &setup.account;
    let plan = Plan {
        kind: spec.server,
        server: &setup.binaries.server,
        layout: &setup.layout,
        names: &hosts.names,
        addresses: &hosts.addresses,
        user: &account.name,
        authorized_key: keys.authorized_key.as_ref(),
        password_auth: setup.password_state.is_some(),
        password_user: setup.password_state.as_ref(),
        home_owner: (setup.euid == 0 && account.uid != 0).then_some((account.uid, account.gid)),
        shell: &account.shell,
        namespace: hosts.namespace.as_ref().map(|n| n.name.as_str()),
        ca: keys.ca.as_ref().map(|ca| ca.public_path.as_path()),
    };
    let (port, children) = match start_all(&plan) {
        Ok(started) => started,
        Err(error) => {
            if let Some(namespace) = &hosts.namespace {
                netns::delete(&namespace.name);
            }
            return Err(error);
        }
    };
    let pids: Vec<u32> = children.iter().map(Child::id).collect();
    for child in children {
        server::reap_in_background(child);
    }
    Ok((port, pids))
}

/// Writes what a client of the running lab needs: a Dropbear lab's line
/// in the login user's authorized_keys, known_hosts (pins, or the CA's
/// `@cert-authority` line) and `config.yml`.
fn write_client_files(
    spec: &LabSpec,
    setup: &Setup,
    hosts: &Hosts,
    keys: &Keys,
    port: u16,
) -> Result<(), LabError> {
    let layout = &setup.layout;
    if let Some(entry) = &keys.authorized_key {
        account::add_authorized_key(&setup.account, &entry.line)
            .map_err(|source| LabError::io("add the lab key to", &entry.path, source))?;
    }
    let lines: Vec<layout::HostLine> = hosts
        .names
        .iter()
        .zip(&hosts.addresses)
        .zip(&keys.host_keys)
        .map(|((name, address), host_key)| layout::HostLine {
            name: name.clone(),
            listen: SocketAddrV4::new(*address, port),
            host_key: host_key.clone(),
        })
        .collect();
    let known = match &keys.ca {
        Some(ca) => ca::known_hosts(ca, &hosts.addresses, port),
        None => layout::known_hosts(&lines),
    };
    write_file(&layout.known_hosts(), known.as_bytes(), 0o644)?;
    write_file(
        &layout.config(),
        layout::config_yml(&lines, &setup.account.name, layout, spec.bastion).as_bytes(),
        0o644,
    )
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

/// A [`LabError::BadDir`] for `layout`'s directory, saying `reason`.
fn bad_dir(layout: &Layout, reason: &str) -> LabError {
    LabError::BadDir {
        dir: layout.dir.clone(),
        reason: reason.to_owned(),
    }
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
    let key = generate_key()?;
    write_private_key(&key, &layout.client_key())?;
    let line = public_line(&key)?;
    write_file(
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
    fn paths_sshd_config_cannot_hold_are_refused() {
        let temp = tempfile::tempdir().unwrap();
        for name in ["with space", "per%cent", "hash#"] {
            let error = prepare_dir(&temp.path().join(name)).unwrap_err();
            assert!(matches!(error, LabError::BadDir { .. }), "{name}: {error}");
        }
        assert!(prepare_dir(&temp.path().join("fine-dir_1.x")).is_ok());
    }
}
