//! The certificate authority of a `remex lab up --ca` lab: every host key
//! and the client key are signed by one lab CA (with OpenSSH's own
//! `ssh-keygen -s`), the hosts trust user certificates of that CA
//! (`TrustedUserCAKeys`, and no key is authorized), and remex's known_hosts
//! holds one `@cert-authority` line instead of a pin per host.
//!
//! ```text
//! DIR/ca/ca, ca.pub                    the CA key (private 0600)
//! DIR/hosts/vmNN/ssh_host_ed25519_key-cert.pub   host certificate
//! DIR/keys/id_ed25519-cert.pub         the client's user certificate
//! ```
//!
//! Certificates are valid from five minutes ago for ten years; a host's
//! principal is its address (what remex dials), the client's the login user.

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::error::LabError;
use super::files::write_file;
use super::keygen::{generate_key, public_line, write_private_key};
use super::layout::Layout;
use super::programs::{output_text, run_all};
use crate::transport::identity::certificate_path;

/// How long the lab's certificates are valid.
const VALIDITY: &str = "-5m:+520w";

/// The lab CA, once its certificates are made.
pub(super) struct LabCa {
    /// `DIR/ca/ca.pub`.
    pub public_path: PathBuf,
    /// Its public line (`ssh-ed25519 AAAA…`), for known_hosts.
    pub public_line: String,
}

/// Makes the CA and signs the hosts' keys (host certificates, principal:
/// the address) and the client key (a user certificate for `user`).
pub(super) fn sign_all(
    layout: &Layout,
    names: &[String],
    addresses: &[Ipv4Addr],
    host_keys: &[String],
    user: &str,
) -> Result<LabCa, LabError> {
    let dir = layout.dir.join("ca");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|source| LabError::io("create", &dir, source))?;
    let ca = generate_key()?;
    let ca_path = dir.join("ca");
    write_private_key(&ca, &ca_path)?;
    let public_line = public_line(&ca)?;
    let public_path = dir.join("ca.pub");
    write_file(&public_path, format!("{public_line}\n").as_bytes(), 0o644)?;

    let mut commands = Vec::with_capacity(names.len() + 1);
    for ((name, address), key) in names.iter().zip(addresses).zip(host_keys) {
        let public = pub_path(&layout.host_key(name));
        write_file(&public, format!("{key}\n").as_bytes(), 0o644)?;
        commands.push(sign(
            &ca_path,
            &format!("remex-lab-{name}"),
            &["-h", "-n", &address.to_string()],
            &public,
        ));
    }
    commands.push(sign(
        &ca_path,
        "remex-lab-client",
        &["-n", user],
        &layout.client_public_key(),
    ));
    for output in run_all(commands.into_iter()) {
        let output =
            output.map_err(|source| LabError::io("run", Path::new("ssh-keygen"), source))?;
        if !output.status.success() {
            return Err(LabError::Certificate {
                message: output_text(&output),
            });
        }
    }
    Ok(LabCa {
        public_path,
        public_line,
    })
}

/// `ssh-keygen -s CA -I ID FLAGS -V … KEY.pub`: writes `KEY-cert.pub`.
fn sign(ca: &Path, id: &str, flags: &[&str], public: &Path) -> Command {
    let mut command = Command::new("ssh-keygen");
    command
        .arg("-q")
        .arg("-s")
        .arg(ca)
        .args(["-I", id])
        .args(flags)
        .args(["-V", VALIDITY])
        .arg(public);
    command
}

/// `KEY.pub` beside `KEY`.
fn pub_path(key: &Path) -> PathBuf {
    let mut name = key.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// The `sshd_config` lines of a host of a CA lab.
pub(super) fn sshd_lines(host_key: &Path, ca_public: &Path) -> String {
    format!(
        "HostCertificate {}\nTrustedUserCAKeys {}\n",
        // Where `ssh-keygen -s` wrote the certificate of `KEY.pub`.
        certificate_path(host_key).display(),
        ca_public.display()
    )
}

/// remex's known_hosts for a CA lab: one `@cert-authority` line for every
/// host address on `port` (no pins).
pub(super) fn known_hosts(ca: &LabCa, addresses: &[Ipv4Addr], port: u16) -> String {
    let mut patterns: Vec<String> = Vec::new();
    for address in addresses {
        let [a, b, ..] = address.octets();
        let pattern = format!("[{a}.{b}.*]:{port}");
        if !patterns.contains(&pattern) {
            patterns.push(pattern);
        }
    }
    format!(
        "@cert-authority {} {}\n",
        patterns.join(","),
        ca.public_line
    )
}
