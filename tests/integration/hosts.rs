//! `remex hosts trust` and `remex hosts forget` against labs of real
//! OpenSSH sshd hosts.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::util::TestLab;

fn first(json: &Value) -> &Value {
    &json["results"][0]
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn forget_then_trust_with_a_fingerprint_or_yes() {
    let lab = TestLab::new(2);
    let known_hosts = lab.lab.known_hosts_path.clone();
    // Lines around the pins that must survive byte for byte.
    let original = read(&known_hosts);
    let (vm01_line, vm02_line) = {
        let lines: Vec<&str> = original.lines().collect();
        (format!("{}\n", lines[0]), format!("{}\n", lines[1]))
    };
    assert!(vm01_line.starts_with("[127.0.0.2]:"), "{original}");
    let other = "# other pins\n|1|abcdefghijklmnopqrstuvwxyzA=|abcdefghijklmnopqrstuvwxyzA= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBFJ0gRTGH2WmjCkmCF1AI0WHX5ahmgmu4fHJiRLwKyl\n";
    std::fs::write(
        &known_hosts,
        format!("{other}{original}\t# tail without newline"),
    )
    .unwrap();

    let run = lab
        .remex()
        .args(["--json", "hosts", "forget", "vm01"])
        .run()
        .expect_code(0);
    let json = run.json();
    assert_eq!(json["operation"], "hosts.forget");
    assert_eq!(first(&json)["action"], "removed");
    assert_eq!(first(&json)["previous"][0], lab.host_fingerprint("vm01"));
    assert_eq!(
        read(&known_hosts),
        format!("{other}{vm02_line}\t# tail without newline")
    );
    // Strict checking now refuses vm01 and says how to fix it.
    let run = lab
        .remex()
        .args(["--json", "exec", "vm01", "--", "true"])
        .run()
        .expect_code(1);
    let error = first(&run.json())["error"].clone();
    assert_eq!(error["kind"], "host_key");
    assert!(
        error["message"].as_str().unwrap().contains(&format!(
            "`remex --config {} hosts trust vm01`",
            lab.config().display()
        )),
        "{error}"
    );
    let run = lab
        .remex()
        .args(["--json", "hosts", "check", "vm01"])
        .run()
        .expect_code(1);
    assert_eq!(first(&run.json())["host_key"], "unknown");

    // No terminal, no --yes, no --fingerprint: refused before contacting.
    let run = lab
        .remex()
        .args(["hosts", "trust", "vm01"])
        .run()
        .expect_code(2);
    assert!(
        run.stderr().contains("--fingerprint SHA256:"),
        "{}",
        run.stderr()
    );
    assert!(run.stderr().contains("--yes"), "{}", run.stderr());

    // A fingerprint that does not match pins nothing.
    let wrong = lab.host_fingerprint("vm02");
    let run = lab
        .remex()
        .args(["--json", "hosts", "trust", "vm01", "--fingerprint", &wrong])
        .run()
        .expect_code(1);
    let result = first(&run.json()).clone();
    assert_eq!(result["ok"], false);
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not the --fingerprint")
    );
    assert_eq!(
        read(&known_hosts),
        format!("{other}{vm02_line}\t# tail without newline")
    );

    // The right one pins it (the file's other bytes untouched).
    let right = lab.host_fingerprint("vm01");
    let run = lab
        .remex()
        .args(["--json", "hosts", "trust", "vm01", "--fingerprint", &right])
        .run()
        .expect_code(0);
    let result = first(&run.json()).clone();
    assert_eq!(result["action"], "pinned");
    assert_eq!(result["fingerprint"], right);
    assert_eq!(result["key_type"], "ssh-ed25519");
    let text = read(&known_hosts);
    assert!(
        text.starts_with(&format!("{other}{vm02_line}\t# tail without newline\n")),
        "{text}"
    );
    lab.remex()
        .args(["exec", "all", "--", "true"])
        .run()
        .expect_code(0);

    // --yes on pinned hosts changes nothing.
    let run = lab
        .remex()
        .args(["--json", "hosts", "trust", "all", "--yes"])
        .run()
        .expect_code(0);
    for result in run.json()["results"].as_array().unwrap() {
        assert_eq!(result["action"], "already_pinned", "{result}");
    }
    assert_eq!(read(&known_hosts), text);
}

#[test]
fn a_changed_host_key_needs_replace_and_a_revoked_one_is_never_trusted() {
    let mut lab = TestLab::new(2);
    let known_hosts = lab.lab.known_hosts_path.clone();
    let old = lab.host_fingerprint("vm02");
    // vm02 is "reinstalled": a new host key.
    let key = lab.path().join("hosts/vm02/ssh_host_ed25519_key");
    std::fs::remove_file(&key).unwrap();
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(status.success());
    lab.lab.stop_host("vm02").unwrap();
    lab.lab.start_host("vm02").unwrap();
    let new = lab.host_fingerprint("vm02");
    assert_ne!(old, new);

    let run = lab
        .remex()
        .args(["--json", "hosts", "check", "vm02"])
        .run()
        .expect_code(1);
    assert_eq!(first(&run.json())["host_key"], "changed");

    // --yes alone does not replace a changed key: both fingerprints shown.
    let before = read(&known_hosts);
    let run = lab
        .remex()
        .args(["--json", "hosts", "trust", "vm02", "--yes"])
        .run()
        .expect_code(1);
    let result = first(&run.json()).clone();
    let message = result["error"]["message"].as_str().unwrap();
    assert!(message.contains("HOST KEY CHANGED"), "{message}");
    assert!(
        message.contains(&old) && message.contains(&new),
        "{message}"
    );
    assert!(message.contains("--replace"), "{message}");
    assert_eq!(result["previous"][0], old);
    assert_eq!(result["fingerprint"], new);
    assert_eq!(read(&known_hosts), before);

    let run = lab
        .remex()
        .args([
            "--json",
            "hosts",
            "trust",
            "vm02",
            "--replace",
            "--fingerprint",
            &new,
        ])
        .run()
        .expect_code(0);
    let result = first(&run.json()).clone();
    assert_eq!(result["action"], "replaced");
    assert_eq!(result["previous"][0], old);
    let text = read(&known_hosts);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.starts_with(before.lines().next().unwrap()),
        "vm01's pin kept first"
    );
    lab.remex()
        .args(["exec", "all", "--", "true"])
        .run()
        .expect_code(0);

    // A key marked @revoked is refused, even with --yes --replace.
    let public = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&key)
        .output()
        .unwrap();
    let public = String::from_utf8_lossy(&public.stdout).trim().to_owned();
    std::fs::write(&known_hosts, format!("@revoked * {public}\n{}", before)).unwrap();
    let run = lab
        .remex()
        .args(["--json", "hosts", "trust", "vm02", "--yes", "--replace"])
        .run()
        .expect_code(1);
    let message = first(&run.json())["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("@revoked"), "{message}");
    let run = lab
        .remex()
        .args(["--json", "hosts", "check", "vm02"])
        .run()
        .expect_code(1);
    assert_eq!(first(&run.json())["host_key"], "revoked");
}

#[test]
fn exec_and_hosts_check_count_the_hosts_by_what_became_of_them() {
    let lab = TestLab::new(4);
    let port = lab.port();
    let user = lab.lab.user.clone();
    // vm02 is reached but refused for its host key (not pinned, strict).
    lab.unpin("127.0.0.3");
    // Nothing answers at vm03's address; vm04 is reached but refuses the
    // login of a user it does not know.
    let closed = crate::util::closed_port();
    let config = lab.config_variant(
        "classes.yml",
        &[
            (
                &format!("host: 127.0.0.4, port: {port}"),
                &format!("host: 127.0.0.1, port: {closed}"),
            ),
            (
                &format!("host: 127.0.0.5, port: {port}, user: {user}"),
                &format!("host: 127.0.0.5, port: {port}, user: remex-nobody"),
            ),
        ],
    );
    let remex = || crate::util::Remex::new().arg("--config").arg(&config);

    let run = remex()
        .args(["exec", "all", "--", "true"])
        .run()
        .expect_code(1);
    let stderr = run.stderr();
    assert!(
        stderr.contains("4 hosts: 1 ok, 1 unreachable, 1 auth failed, 1 host key refused in "),
        "{stderr}"
    );
    assert!(stderr.contains("failed: vm02,vm03,vm04"), "{stderr}");
    let json = remex()
        .args(["--json", "exec", "all", "--", "true"])
        .run()
        .expect_code(1)
        .json();
    assert_eq!(json["summary"]["unreachable"], 1, "{json}");
    assert_eq!(
        json["summary"]["by_kind"],
        serde_json::json!({"connect": 1, "auth": 1, "host_key": 1})
    );

    // hosts check tells the same story in the same words.
    let run = remex().args(["hosts", "check", "all"]).run().expect_code(1);
    let stderr = run.stderr();
    assert!(
        stderr.contains("4 hosts: 1 ok, 1 unreachable, 1 auth failed, 1 host key refused in "),
        "{stderr}"
    );
}
