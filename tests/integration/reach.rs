//! Reaching hosts over IPv6, and noticing a dead peer by keepalives.

use std::time::{Duration, Instant};

use crate::util::{TestLab, send_signal_to, wait_for};

/// The pids of every process below `parent` (children, grandchildren, …).
fn descendants(parent: u32) -> Vec<u32> {
    // (pid, parent pid) of every process: field 4 of /proc/PID/stat, after
    // the command name in parentheses.
    let table: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = Vec::new();
    let mut frontier = vec![parent];
    while let Some(pid) = frontier.pop() {
        for (child, _) in table.iter().filter(|(_, ppid)| *ppid == pid) {
            found.push(*child);
            frontier.push(*child);
        }
    }
    found
}

#[test]
fn a_frozen_peer_is_noticed_within_the_keepalive_bound() {
    let lab = TestLab::new(1);
    let config = lab.config_variant(
        "keepalive.yml",
        &[(
            "remote_execution:\n",
            "remote_execution:\n  keepalive_interval: 1s\n  keepalive_count_max: 2\n",
        )],
    );
    let mut child = crate::util::Remex::new()
        .arg("--config")
        .arg(&config)
        .args(["--json", "exec", "vm01", "--", "sleep", "7431"])
        .spawn();
    // The command runs under the host's sshd (remex's own command line
    // mentions it too, so look only there).
    let listener = lab.lab.hosts[0].pid;
    let sleeping = || {
        descendants(listener).iter().any(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.starts_with(b"sleep\x007431"))
        })
    };
    wait_for(&mut child, "the command running", sleeping);
    // Freeze the host's side of the connection: it answers nothing more.
    let frozen = descendants(listener);
    assert!(
        !frozen.is_empty(),
        "no session process under sshd {listener}"
    );
    for pid in &frozen {
        send_signal_to(*pid, "STOP");
    }
    let frozen_at = Instant::now();
    let out = child.wait_with_output().unwrap();
    let noticed = frozen_at.elapsed();
    // remex stopped the command through a new connection: some of these
    // are gone already.
    for pid in &frozen {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &pid.to_string()])
            .status();
    }
    for pid in descendants(listener) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    // 1 s × 2 keepalives, plus scheduling; the command would run for hours.
    assert!(
        noticed < Duration::from_secs(20),
        "a frozen peer went unnoticed for {noticed:?}"
    );
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = &json["results"][0]["error"];
    assert_eq!(error["kind"], "io", "{json}");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("connection was lost"),
        "{json}"
    );
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("through a new connection"),
        "{json}"
    );
}

#[test]
fn hosts_are_reached_over_ipv6_by_config_and_by_host_and_the_family_is_honoured() {
    let mut lab = TestLab::new(1);
    let port = lab.port();
    let v4 = format!("ListenAddress 127.0.0.2:{port}");
    lab.reconfigure("vm01", &v4, &format!("{v4}\nListenAddress [::1]:{port}"));
    // Pin the same host key under its IPv6 name, as OpenSSH writes it.
    let known = lab.path().join("known_hosts");
    let text = std::fs::read_to_string(&known).unwrap();
    let key = text
        .lines()
        .find(|l| l.starts_with("[127.0.0.2]"))
        .and_then(|l| l.split_once(' '))
        .map(|(_, key)| key.to_owned())
        .unwrap();
    std::fs::write(&known, format!("{text}[::1]:{port} {key}\n")).unwrap();

    let config = lab.config_variant("v6.yml", &[("host: 127.0.0.2", "host: \"::1\"")]);
    let json = crate::util::Remex::new()
        .arg("--config")
        .arg(&config)
        .args([
            "--json",
            "exec",
            "vm01",
            "--",
            "sh",
            "-c",
            "echo $SSH_CONNECTION",
        ])
        .run()
        .expect_code(0)
        .json();
    let seen = json["results"][0]["stdout"].as_str().unwrap_or_default();
    assert!(seen.starts_with("::1 "), "{seen}");
    assert_eq!(json["results"][0]["address"], "::1");

    // An ad-hoc host in brackets, named as written.
    let adhoc = format!("[::1]:{port}");
    let json = lab
        .remex()
        .args(["--json", "exec", "--host", &adhoc, &adhoc, "--", "true"])
        .run()
        .expect_code(0)
        .json();
    assert_eq!(json["results"][0]["host"], adhoc.as_str(), "{json}");

    // IPv4 only: an IPv6 address has nothing to dial.
    let config = lab.config_variant(
        "v4-only.yml",
        &[
            ("host: 127.0.0.2", "host: \"::1\""),
            (
                "remote_execution:\n",
                "remote_execution:\n  address_family: inet\n",
            ),
        ],
    );
    let json = crate::util::Remex::new()
        .arg("--config")
        .arg(&config)
        .args(["--json", "exec", "vm01", "--", "true"])
        .run()
        .expect_code(1)
        .json();
    let error = &json["results"][0]["error"];
    assert_eq!(error["kind"], "dns", "{json}");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no inet address"),
        "{json}"
    );
}
