//! Jump hosts (`jump:`, `--jump`): hosts that only a bastion can reach.
//!
//! The labs here come from `remex lab up --bastion`: vm01… listen on the
//! loopback of a network namespace of their own, which the orchestrator
//! cannot reach (the direct path is refused); the host `bastion` listens
//! on the namespace's end of a veth link. Every test checks the direct
//! path is closed before it trusts a success through the bastion.

use serde_json::Value;

use crate::transfer_edge::result_of as result;
use crate::util::{TestLab, log_path, records, ssh_keygen, write};

/// The client address each host saw (`$SSH_CONNECTION`'s first word).
fn client_address(json: &Value, host: &str) -> String {
    let r = result(json, host);
    assert_eq!(r["ok"], true, "{r}");
    r["stdout"]
        .as_str()
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Uploads `len` bytes to vm03 as `name` and downloads them back, with
/// `extra` arguments (the jump hosts), checking the bytes both times.
fn round_trip(lab: &TestLab, extra: &[&str], name: &str, len: usize) {
    let local = lab.path().join(name);
    let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    write(&local, &bytes);
    let remote = lab.path().join("remote").join(name);
    std::fs::create_dir_all(remote.parent().unwrap()).unwrap();
    let transfer = |op: &str, from: &std::path::Path, to: &std::path::Path| {
        lab.remex()
            .args(extra)
            .args(["--json", op, "vm03"])
            .arg(from)
            .arg(to)
            .run()
            .expect_code(0);
    };
    transfer("upload", &local, &remote);
    assert_eq!(std::fs::read(&remote).unwrap(), bytes);
    let back = lab.path().join("back");
    transfer("download", &remote, &back);
    assert_eq!(std::fs::read(back.join("vm03").join(name)).unwrap(), bytes);
}

fn assert_direct_path_is_closed(lab: &TestLab) {
    let json = lab
        .remex()
        .args(["--json", "--jump", "none", "--connect-timeout", "3s"])
        .args(["exec", "vm01", "--", "true"])
        .run()
        .expect_code(1)
        .json();
    assert_eq!(result(&json, "vm01")["error"]["kind"], "connect", "{json}");
}

#[test]
fn hosts_behind_a_bastion_run_commands_scripts_and_transfers_through_one_connection() {
    let lab = TestLab::behind_bastion(3);
    assert_direct_path_is_closed(&lab);
    // `hosts list` shows the way to each host.
    let out = lab
        .remex()
        .args(["hosts", "list"])
        .run()
        .expect_code(0)
        .stdout();
    assert!(out.contains("VIA"), "{out}");
    let json = lab
        .remex()
        .args(["--json", "hosts", "list"])
        .run()
        .expect_code(0)
        .json();
    let jumps: Vec<String> = json["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| format!("{}<{}", h["name"].as_str().unwrap(), h["jump"]))
        .collect();
    assert_eq!(
        jumps,
        [
            "bastion<[]",
            r#"vm01<["bastion"]"#,
            r#"vm02<["bastion"]"#,
            r#"vm03<["bastion"]"#
        ]
    );

    let before = lab.logins("bastion");
    let json = lab
        .remex()
        .args(["--json", "exec", "vm01,vm02,vm03", "--"])
        .args(["sh", "-c", "echo $SSH_CONNECTION"])
        .run()
        .expect_code(0)
        .json();
    for host in ["vm01", "vm02", "vm03"] {
        // The hosts saw the bastion's side of the namespace, not us.
        let from = client_address(&json, host);
        assert!(from.starts_with("127."), "{host} saw {from}");
    }
    assert_eq!(
        lab.logins("bastion") - before,
        1,
        "three hosts, one bastion connection"
    );
    // The bastion itself is reached directly, over the veth link.
    let json = lab
        .remex()
        .args(["--json", "exec", "bastion", "--"])
        .args(["sh", "-c", "echo $SSH_CONNECTION"])
        .run()
        .expect_code(0)
        .json();
    assert!(client_address(&json, "bastion").starts_with("169.254."));

    // A script and both transfers take the same path.
    let script = lab.path().join("hello.sh");
    write(&script, b"echo script-ran-on $1\n");
    let json = lab
        .remex()
        .args(["--json", "script", "vm02"])
        .arg(&script)
        .args(["--", "vm02"])
        .run()
        .expect_code(0)
        .json();
    assert_eq!(result(&json, "vm02")["stdout"], "script-ran-on vm02\n");
    round_trip(&lab, &[], "payload.bin", 3 * 1024 * 1024);
    // The audit trail is the same as for direct hosts.
    assert!(
        records(&lab)
            .iter()
            .any(|r| r["host"] == "vm03" && r["op"] == "download" && r["event"] == "end")
    );
    assert!(log_path(&lab).exists());
}

#[test]
fn two_jumps_chain_through_each_hop_and_a_hop_down_is_named() {
    let mut lab = TestLab::behind_bastion(3);
    assert_direct_path_is_closed(&lab);
    // vm03 through the bastion, then vm01.
    let via_vm01 = |lab: &TestLab| {
        lab.remex()
            .args([
                "--json",
                "--connect-timeout",
                "5s",
                "--jump",
                "bastion,vm01",
            ])
            .args(["exec", "vm03", "--", "true"])
            .run()
    };
    let before = lab.logins("vm01");
    via_vm01(&lab).expect_code(0);
    assert_eq!(lab.logins("vm01") - before, 1, "vm01 was not a hop");

    lab.lab.stop_host("vm01").unwrap();
    let json = via_vm01(&lab).expect_code(1).json();
    let error = &result(&json, "vm03")["error"];
    assert_eq!(error["kind"], "connect", "{json}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("jump host vm01"), "{message}");
    lab.lab.start_host("vm01").unwrap();
    via_vm01(&lab).expect_code(0);

    // A script and files both ways over the two hops too.
    let script = lab.path().join("far.sh");
    write(&script, b"echo far-script $1\n");
    let json = lab
        .remex()
        .args(["--jump", "bastion,vm01", "--json", "script", "vm03"])
        .arg(&script)
        .args(["--", "two-hops"])
        .run()
        .expect_code(0)
        .json();
    assert_eq!(result(&json, "vm03")["stdout"], "far-script two-hops\n");
    round_trip(
        &lab,
        &["--jump", "bastion,vm01"],
        "two-hops.bin",
        2 * 1024 * 1024 + 3,
    );
}

#[test]
fn a_bastion_that_is_down_or_whose_key_changed_fails_every_host_behind_it_and_names_it() {
    let lab = TestLab::behind_bastion(2);
    assert_direct_path_is_closed(&lab);
    let run = || {
        lab.remex()
            .args([
                "--json",
                "--connect-timeout",
                "5s",
                "exec",
                "vm01,vm02",
                "--",
                "true",
            ])
            .run()
            .expect_code(1)
            .json()
    };

    // The bastion's key changed: every host behind it is refused, none is
    // contacted, and the message names the bastion.
    let known = lab.path().join("known_hosts");
    let original = std::fs::read_to_string(&known).unwrap();
    let other = lab.path().join("other_host_key");
    ssh_keygen(&["-t", "ed25519", "-N", "", "-q", "-f"], &other);
    let other_key = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let other_key: Vec<&str> = other_key.split_whitespace().take(2).collect();
    let swapped: String = original
        .lines()
        .map(|line| {
            if line.starts_with("[169.254.") {
                format!(
                    "{} {}\n",
                    line.split_whitespace().next().unwrap(),
                    other_key.join(" ")
                )
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    std::fs::write(&known, swapped).unwrap();
    let json = run();
    for host in ["vm01", "vm02"] {
        let error = &result(&json, host)["error"];
        assert_eq!(error["kind"], "host_key", "{json}");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains("jump host bastion"), "{message}");
        assert!(message.contains("HOST KEY CHANGED"), "{message}");
    }
    std::fs::write(&known, &original).unwrap();

    // A changed key behind the bastion refuses that host only.
    let vm02_line = original
        .lines()
        .find(|l| l.starts_with("[127.0.0.3]"))
        .unwrap()
        .to_owned();
    let pattern = vm02_line.split_whitespace().next().unwrap();
    std::fs::write(
        &known,
        original.replace(&vm02_line, &format!("{pattern} {}", other_key.join(" "))),
    )
    .unwrap();
    let json = lab
        .remex()
        .args(["--json", "exec", "vm01,vm02", "--", "true"])
        .run()
        .expect_code(1)
        .json();
    assert_eq!(result(&json, "vm01")["ok"], true, "{json}");
    let error = &result(&json, "vm02")["error"];
    assert_eq!(error["kind"], "host_key", "{json}");
    assert!(
        !error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("jump host")
    );
    std::fs::write(&known, &original).unwrap();

    // The bastion is down: each host fails, naming the hop.
    lab.lab.stop_host("bastion").unwrap();
    let json = run();
    for host in ["vm01", "vm02"] {
        let error = &result(&json, host)["error"];
        assert_eq!(error["kind"], "connect", "{json}");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains("jump host bastion"), "{message}");
    }
}
