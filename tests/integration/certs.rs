//! OpenSSH certificates against real sshd: a user certificate beside the
//! key logs in where only its CA is trusted (`TrustedUserCAKeys`), and a
//! host certificate (`HostCertificate`) is accepted through an
//! `@cert-authority` line of known_hosts with no pin for the host — and
//! refused, with the reason, when expired, for another principal, from an
//! unknown CA or from a revoked one. The CAs are made with `ssh-keygen`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{TestLab, ssh_keygen};

/// A test certificate authority: a key pair made by `ssh-keygen` in its own
/// temp dir, which signs with `ssh-keygen -s`.
struct Ca {
    dir: tempfile::TempDir,
}

impl Ca {
    fn new() -> Ca {
        let ca = Ca {
            dir: tempfile::tempdir().unwrap(),
        };
        ssh_keygen(
            &["-q", "-t", "ed25519", "-N", "", "-C", "test-ca", "-f"],
            &ca.key(),
        );
        ca
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("ca")
    }

    /// The CA's public key file, for `TrustedUserCAKeys`.
    fn public_file(&self) -> PathBuf {
        self.dir.path().join("ca.pub")
    }

    /// The `TYPE BASE64` of the CA's public key, for known_hosts lines.
    fn public(&self) -> String {
        let text = std::fs::read_to_string(self.public_file()).unwrap();
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Signs the public key `public` (`K.pub`, certificate `K-cert.pub`)
    /// with `ARGS` (`-n PRINCIPALS -V VALIDITY`, `-h` for a host).
    fn sign(&self, public: &Path, args: &[&str]) -> PathBuf {
        let ca = self.key();
        let mut all = vec!["-q", "-s", ca.to_str().unwrap(), "-I", "remex-test"];
        all.extend_from_slice(args);
        ssh_keygen(&all, public);
        let name = public.file_name().unwrap().to_str().unwrap();
        public.with_file_name(name.replace(".pub", "-cert.pub"))
    }
}

fn result<'a>(json: &'a Value, host: &str) -> &'a Value {
    json["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["host"] == host)
        .unwrap_or_else(|| panic!("no result for {host} in {json}"))
}

/// The error of `host` in a run's JSON: its kind and message.
fn error(json: &Value, host: &str) -> (String, String) {
    let error = &result(json, host)["error"];
    (
        error["kind"].as_str().unwrap_or_default().to_owned(),
        error["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// (a) A user certificate beside the key is offered first; a host that
/// trusts only the CA lets remex in with it, a host that refuses it lets
/// remex in with the key alone, and without a usable certificate (none,
/// expired, unreadable) the CA-only host refuses remex.
#[test]
fn a_user_certificate_logs_in_where_only_its_ca_is_trusted() {
    let mut lab = TestLab::new(2);
    let ca = Ca::new();
    let user = lab.lab.user.clone();
    // No shared authorized_keys: vm01 trusts only the CA, vm02 only the
    // key (in its own authorized_keys) and no CA.
    lab.drop_lab_key();
    let keys = lab.path().join("keys");
    let public = keys.join("id_ed25519.pub");
    let vm02_keys = lab.host_authorized_keys("vm02");
    std::fs::create_dir_all(vm02_keys.parent().unwrap()).unwrap();
    std::fs::copy(&public, &vm02_keys).unwrap();
    lab.add_sshd_config(
        "vm01",
        &[format!("TrustedUserCAKeys {}", ca.public_file().display())],
    );

    // Without a certificate: vm01 refuses remex.
    let run = lab
        .remex()
        .args(["--json", "exec", "all", "--", "true"])
        .run()
        .expect_code(1);
    let json = run.json();
    let (kind, message) = error(&json, "vm01");
    assert_eq!(kind, "auth", "{json}");
    assert!(message.contains("refused authentication"), "{message}");
    assert_eq!(result(&json, "vm02")["ok"], true, "{json}");

    // With one: both let remex in, vm01 with the certificate, vm02 with
    // the key after refusing the certificate.
    let cert = ca.sign(&public, &["-n", &user, "-V", "+1h"]);
    assert_eq!(cert, keys.join("id_ed25519-cert.pub"));
    let run = lab
        .remex()
        .args(["-v", "--json", "exec", "all", "--", "echo", "in"])
        .run()
        .expect_code(0);
    let json = run.json();
    assert_eq!(result(&json, "vm01")["stdout"], "in\n", "{json}");
    let stderr = run.stderr();
    for line in [
        format!(
            "vm01: authenticated as {user} with publickey certificate {} (ssh-ed25519-cert-v01@openssh.com SHA256:",
            cert.display()
        ),
        format!(
            "vm02: certificate {} refused; trying the key alone",
            cert.display()
        ),
        format!(
            "vm02: authenticated as {user} with publickey {} (ssh-ed25519 SHA256:",
            keys.join("id_ed25519").display()
        ),
    ] {
        assert!(stderr.contains(&line), "no `{line}` in:\n{stderr}");
    }

    // An expired certificate is not offered; -v says why.
    ca.sign(&public, &["-n", &user, "-V", "20200101:20200102"]);
    let run = lab
        .remex()
        .args(["-v", "--json", "exec", "all", "--", "true"])
        .run()
        .expect_code(1);
    let json = run.json();
    assert_eq!(error(&json, "vm01").0, "auth", "{json}");
    assert_eq!(result(&json, "vm02")["ok"], true, "{json}");
    let stderr = run.stderr();
    let line = format!(
        "vm01: not offering the certificate {}: it expired at 2020-01-02T00:00:00Z; trying the key alone",
        cert.display()
    );
    assert!(stderr.contains(&line), "no `{line}` in:\n{stderr}");

    // Neither is one that cannot be read as a certificate.
    std::fs::write(&cert, "ssh-ed25519-cert-v01@openssh.com AAAAnot-a-cert\n").unwrap();
    let run = lab
        .remex()
        .args(["-v", "--json", "exec", "all", "--", "true"])
        .run()
        .expect_code(1);
    let json = run.json();
    assert_eq!(error(&json, "vm01").0, "auth", "{json}");
    assert_eq!(result(&json, "vm02")["ok"], true, "{json}");
    let stderr = run.stderr();
    assert!(
        stderr.contains("vm02: not offering the certificate ")
            && stderr.contains("not an OpenSSH certificate"),
        "{stderr}"
    );

    // A certificate for a principal the host does not let in is refused,
    // and the key alone does not get in either: both were tried.
    ca.sign(&public, &["-n", "somebody-else", "-V", "+1h"]);
    let run = lab
        .remex()
        .args(["--json", "exec", "vm01", "--", "true"])
        .run()
        .expect_code(1);
    let json = run.json();
    let (kind, message) = error(&json, "vm01");
    assert_eq!(kind, "auth", "{json}");
    assert!(
        message.contains(&format!(
            "{} (certificate ssh-ed25519-cert-v01",
            cert.display()
        )),
        "{message}"
    );
}

/// An RSA key's certificate is signed with SHA-2 (`rsa-sha2-*-cert`):
/// OpenSSH refuses the SHA-1 `ssh-rsa-cert-v01` signature.
#[test]
fn an_rsa_user_certificate_logs_in() {
    let mut lab = TestLab::new(1);
    let ca = Ca::new();
    let user = lab.lab.user.clone();
    lab.drop_lab_key();
    lab.add_sshd_config(
        "vm01",
        &[format!("TrustedUserCAKeys {}", ca.public_file().display())],
    );
    let key = lab.path().join("keys").join("rsa");
    ssh_keygen(&["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"], &key);
    let config = lab.config_variant(
        "rsa.yml",
        &[("default_key: id_ed25519", "default_key: rsa")],
    );
    let cert = ca.sign(&key.with_extension("pub"), &["-n", &user, "-V", "+1h"]);
    let run = crate::util::Remex::new()
        .arg("--config")
        .arg(&config)
        .args(["-v", "exec", "vm01", "--", "true"])
        .run()
        .expect_code(0);
    let line = format!(
        "vm01: authenticated as {user} with publickey certificate {} (ssh-rsa-cert-v01@openssh.com SHA256:",
        cert.display()
    );
    assert!(
        run.stderr().contains(&line),
        "no `{line}` in:\n{}",
        run.stderr()
    );
    let log = lab.sshd_log("vm01");
    assert!(
        log.contains("Accepted publickey for ") && log.contains("RSA-CERT"),
        "{log}"
    );
}

/// A lab of one host whose sshd presents a host certificate signed by `ca`
/// with `args`, and whose known_hosts pin is removed.
fn certified_host(ca: &Ca, args: &[&str]) -> (TestLab, PathBuf) {
    let mut lab = TestLab::new(1);
    let host_key = lab.path().join("hosts/vm01/ssh_host_ed25519_key");
    let public = ca.dir.path().join("vm01.pub");
    let text = ssh_keygen(&["-y", "-f"], &host_key);
    std::fs::write(&public, text).unwrap();
    let cert = ca.sign(&public, args);
    lab.add_sshd_config("vm01", &[format!("HostCertificate {}", cert.display())]);
    lab.unpin("127.0.0.2");
    (lab, public)
}

/// Replaces the lab's known_hosts with `text`.
fn set_known_hosts(lab: &TestLab, text: &str) {
    std::fs::write(&lab.lab.known_hosts_path, text).unwrap();
}

/// `exec vm01 -- true` must fail with kind `host_key`: its message.
fn refused(lab: &TestLab) -> String {
    let run = lab
        .remex()
        .args(["--json", "exec", "vm01", "--", "true"])
        .run()
        .expect_code(1);
    let json = run.json();
    let (kind, message) = error(&json, "vm01");
    assert_eq!(kind, "host_key", "{json}");
    message
}

/// (b) A host certificate is accepted through an `@cert-authority` line
/// with no pin for the host (and none is written, even under accept-new);
/// refused when expired, for another principal or from another CA; a
/// host that no `@cert-authority` line names is asked for its plain key
/// as before.
#[test]
fn a_host_certificate_is_trusted_through_its_ca_without_a_pin() {
    let ca = Ca::new();
    let (mut lab, public) = certified_host(&ca, &["-h", "-n", "127.0.0.2", "-V", "+1h"]);
    let port = lab.port();
    // The bare name matches off port 22 as well as `[127.0.0.2]:PORT`.
    for pattern in ["127.0.0.*".to_owned(), format!("[127.0.0.2]:{port}")] {
        let known = format!("@cert-authority {pattern} {}\n", ca.public());
        set_known_hosts(&lab, &known);
        let run = lab
            .remex()
            .args(["-v", "--json", "exec", "vm01", "--", "echo", "ok"])
            .run()
            .expect_code(0);
        assert_eq!(result(&run.json(), "vm01")["stdout"], "ok\n");
        let stderr = run.stderr();
        assert!(
            stderr.contains("vm01: host certificate ssh-ed25519-cert-v01@openssh.com SHA256:")
                && stderr.contains("signed by a CA of known_hosts (@cert-authority)"),
            "{stderr}"
        );
        assert_eq!(
            std::fs::read_to_string(&lab.lab.known_hosts_path).unwrap(),
            known
        );
    }
    // accept-new pins nothing either, and `hosts check` says how the host
    // is trusted.
    let known = format!("@cert-authority * {}\n", ca.public());
    set_known_hosts(&lab, &known);
    let accept_new = lab.config_variant(
        "accept-new.yml",
        &[("host_key_policy: strict", "host_key_policy: accept-new")],
    );
    let run = crate::util::Remex::new()
        .arg("--config")
        .arg(&accept_new)
        .args(["--json", "hosts", "check", "vm01"])
        .run()
        .expect_code(0);
    let json = run.json();
    assert_eq!(result(&json, "vm01")["host_key"], "certified", "{json}");
    assert_eq!(
        result(&json, "vm01")["host_key_fingerprint"],
        lab.host_fingerprint("vm01")
    );
    assert_eq!(
        std::fs::read_to_string(&lab.lab.known_hosts_path).unwrap(),
        known
    );

    // Expired.
    ca.sign(
        &public,
        &["-h", "-n", "127.0.0.2", "-V", "20200101:20200102"],
    );
    lab.restart("vm01");
    let message = refused(&lab);
    assert!(
        message.contains("host certificate of vm01 (127.0.0.2:")
            && message.contains("expired at 2020-01-02T00:00:00Z"),
        "{message}"
    );
    let run = lab
        .remex()
        .args(["--json", "hosts", "check", "vm01"])
        .run()
        .expect_code(1);
    assert_eq!(result(&run.json(), "vm01")["host_key"], "certificate");

    // For another principal.
    ca.sign(&public, &["-h", "-n", "127.0.0.99,web9", "-V", "+1h"]);
    lab.restart("vm01");
    let message = refused(&lab);
    assert!(
        message.contains("is for the principals 127.0.0.99, web9 and not for 127.0.0.2")
            && message.contains("wrong principal"),
        "{message}"
    );

    // From a CA known_hosts does not trust for the host.
    let other = Ca::new();
    other.sign(&public, &["-h", "-n", "127.0.0.2", "-V", "+1h"]);
    lab.restart("vm01");
    let message = refused(&lab);
    assert!(
        message.contains("is signed by an unknown CA SHA256:")
            && message.contains("@cert-authority"),
        "{message}"
    );

    // Without an `@cert-authority` line for the host remex asks for the
    // plain key, which is unknown now that its pin is gone.
    set_known_hosts(&lab, &format!("@cert-authority 10.* {}\n", ca.public()));
    let message = refused(&lab);
    assert!(
        message.contains("host key of vm01") && message.contains("is unknown"),
        "{message}"
    );
}

/// (c) A certificate of a CA on an `@revoked` line is refused, though an
/// `@cert-authority` line trusts that CA.
#[test]
fn a_host_certificate_of_a_revoked_ca_is_refused() {
    let ca = Ca::new();
    let (lab, _) = certified_host(&ca, &["-h", "-n", "127.0.0.2", "-V", "+1h"]);
    set_known_hosts(
        &lab,
        &format!(
            "@cert-authority * {ca_key}\n@revoked * {ca_key}\n",
            ca_key = ca.public()
        ),
    );
    let message = refused(&lab);
    assert!(
        message.contains("its CA SHA256:") && message.contains("is marked @revoked"),
        "{message}"
    );
    let run = lab
        .remex()
        .args(["--json", "hosts", "check", "vm01"])
        .run()
        .expect_code(1);
    assert_eq!(result(&run.json(), "vm01")["host_key"], "revoked");
}
