//! The network namespace of a lab behind a bastion (`remex lab up
//! --bastion`): the hosts listen on the namespace's own loopback, which
//! nothing outside it can reach; the bastion listens on the namespace's end
//! of a veth pair, which the orchestrator reaches over a link-local /30.
//! So the hosts can be reached only through the bastion, as on a real
//! private network.
//!
//! Names and addresses come from a digest of the lab directory: one lab,
//! one namespace (`remex-lab-XXXXXXXX`), and labs in different directories
//! do not collide. Needs root and iproute2 (`ip`).
//!
//! **Invariant:** `down` deletes the namespace (and with it the veth pair)
//! after its servers are stopped; `create` first deletes a namespace of the
//! same name left by a lab that was not brought down.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};

use sha2::{Digest as _, Sha256};

use super::error::LabError;

/// The namespace and veth pair of one lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Netns {
    /// `remex-lab-XXXXXXXX`.
    pub name: String,
    /// The veth end in the orchestrator's namespace.
    host_if: String,
    /// The veth end inside the namespace.
    ns_if: String,
    /// The orchestrator's address on the link.
    host_addr: Ipv4Addr,
    /// The bastion's address: the namespace's end of the link.
    pub bastion_addr: Ipv4Addr,
}

impl Netns {
    /// The namespace of the lab in `dir`.
    pub(super) fn for_dir(dir: &Path) -> Netns {
        let digest = Sha256::digest(dir.as_os_str().as_encoded_bytes());
        let tag = hex::encode(&digest[..4]);
        // 169.254.A.B/30, A in 1..=254 but not 169 (cloud metadata lives at
        // 169.254.169.254): link-local, never routed, never a real network.
        let mut a = 1 + digest[4] % 254;
        if a == 169 {
            a = 170;
        }
        let b = (digest[5] % 64) * 4;
        Netns {
            name: format!("remex-lab-{tag}"),
            host_if: format!("rxh{tag}"),
            ns_if: format!("rxn{tag}"),
            host_addr: Ipv4Addr::new(169, 254, a, b + 1),
            bastion_addr: Ipv4Addr::new(169, 254, a, b + 2),
        }
    }

    /// Creates the namespace, its loopback, and the veth link to it.
    pub(super) fn create(&self) -> Result<(), LabError> {
        delete(&self.name);
        let host = format!("{}/30", self.host_addr);
        let bastion = format!("{}/30", self.bastion_addr);
        let ns = self.name.as_str();
        let steps: [&[&str]; 7] = [
            &["netns", "add", ns],
            &["-n", ns, "link", "set", "lo", "up"],
            &[
                "link",
                "add",
                &self.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &self.ns_if,
                "netns",
                ns,
            ],
            &["addr", "add", &host, "dev", &self.host_if],
            &["link", "set", &self.host_if, "up"],
            &["-n", ns, "addr", "add", &bastion, "dev", &self.ns_if],
            &["-n", ns, "link", "set", &self.ns_if, "up"],
        ];
        for args in steps {
            if let Err(error) = ip(args) {
                delete(ns);
                return Err(error);
            }
        }
        Ok(())
    }
}

/// `program` run inside namespace `ns` (`ip netns exec NS PROGRAM`: the
/// pid is the program's, `ip` execs it).
pub(super) fn command(ns: &str, program: &Path) -> Command {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", ns]).arg(program);
    command
}

/// Deletes namespace `ns` (its veth pair goes with it); nothing if absent.
pub(super) fn delete(ns: &str) {
    let _ = Command::new("ip")
        .args(["netns", "del", ns])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Runs `ip ARGS`.
fn ip(args: &[&str]) -> Result<(), LabError> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Io {
            action: "run (install iproute2)",
            path: "ip".into(),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(LabError::Netns {
        command: format!("ip {}", args.join(" ")),
        message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_linux_limits_and_addresses_share_a_link_local_slash_30() {
        let netns = Netns::for_dir(Path::new("/tmp/some/lab"));
        assert!(netns.host_if.len() <= 15 && netns.ns_if.len() <= 15);
        assert!(netns.name.starts_with("remex-lab-"));
        let [h0, h1, h2, h3] = netns.host_addr.octets();
        let [b0, b1, b2, b3] = netns.bastion_addr.octets();
        assert_eq!((h0, h1, h2), (b0, b1, b2));
        assert_eq!((h0, h1), (169, 254));
        assert_ne!(h2, 169);
        assert_eq!((h3 % 4, b3), (1, h3 + 1));
        assert_ne!(Netns::for_dir(Path::new("/tmp/other/lab")).name, netns.name);
    }
}
