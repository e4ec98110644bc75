//! The `remex` binary against labs of real OpenSSH sshd hosts.

use std::time::Duration;

use crate::util::{Remex, TestLab, assert_no_process_left};
use serde_json::Value;

/// Asserts that the first host of a `--json` run failed with `kind` and a
/// message containing `needle`.
fn assert_first_error(run: &crate::util::Run, kind: &str, needle: &str) {
    let json = run.json();
    let error = &results(&json)[0]["error"];
    assert_eq!(error["kind"], kind, "{error}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "no {needle:?} in {error}");
}

fn results(json: &Value) -> &Vec<Value> {
    json["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results array in {json}"))
}

#[test]
fn exec_runs_on_every_host_and_prints_prefixed_lines() {
    let lab = TestLab::new(6);
    let run = lab
        .remex()
        .args(["exec", "all", "--", "echo", "hello from", "remex"])
        .run()
        .expect_code(0);
    let stdout = run.stdout();
    for host in &lab.lab.hosts {
        assert!(
            stdout.contains(&format!("{}: hello from remex\n", host.name)),
            "no line for {} in:\n{stdout}",
            host.name
        );
    }
    assert_eq!(stdout.lines().count(), 6, "{stdout}");
    assert!(run.stderr().contains("6 hosts: 6 ok"), "{}", run.stderr());
}

#[test]
fn json_has_the_documented_shape() {
    let lab = TestLab::new(2);
    let run = lab
        .remex()
        .args([
            "--json",
            "exec",
            "vm01,vm02",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2",
        ])
        .run()
        .expect_code(0);
    let json = run.json();
    assert_eq!(json["version"], 2);
    assert_eq!(json["operation"], "exec");
    assert!(
        json["run_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{json}"
    );
    assert_eq!(json["summary"]["total"], 2);
    assert_eq!(json["summary"]["ok"], 2);
    assert_eq!(json["summary"]["failed"], 0);
    let first = &results(&json)[0];
    assert_eq!(first["host"], "vm01");
    assert_eq!(first["address"], "127.0.0.2");
    assert_eq!(first["port"], lab.port());
    assert_eq!(first["ok"], true);
    assert_eq!(first["exit_code"], 0);
    assert_eq!(first["signal"], Value::Null);
    assert_eq!(first["stdout"], "out\n");
    assert_eq!(first["stderr"], "err\n");
    assert_eq!(first["truncated"], false);
    assert!(first["duration_ms"].is_u64());
    assert_eq!(first["error"], Value::Null);
    assert!(first.get("stdout_base64").is_none());
    assert_eq!(results(&json)[1]["host"], "vm02");
    // Nothing but the JSON document on stdout.
    assert_eq!(run.stdout().lines().count(), 1);
}

#[test]
fn a_failing_host_does_not_stop_the_others_and_exits_1() {
    let lab = TestLab::new(3);
    let run = lab
        .remex()
        .args([
            "--json",
            "exec",
            "all",
            "--raw",
            r#"case "$SSH_CONNECTION" in *" 127.0.0.3 "*) exit 3;; esac; echo fine"#,
        ])
        .run()
        .expect_code(1);
    let json = run.json();
    let res = results(&json);
    assert_eq!(res[0]["stdout"], "fine\n");
    assert_eq!(res[1]["ok"], false);
    assert_eq!(res[1]["exit_code"], 3);
    assert_eq!(res[1]["error"]["kind"], "exit");
    assert_eq!(res[2]["ok"], true);
    assert_eq!(json["summary"]["failed"], 1);
}

#[test]
fn output_is_capped_and_flagged() {
    let lab = TestLab::new(1);
    let run = lab
        .remex()
        .args([
            "--json",
            "exec",
            "vm01",
            "--max-output",
            "1000",
            "--",
            "head",
            "-c",
            "100000",
            "/dev/zero",
        ])
        .run()
        .expect_code(0);
    let json = run.json();
    let first = &results(&json)[0];
    assert_eq!(first["truncated"], true);
    assert_eq!(first["stdout"].as_str().map(str::len), Some(1000));
}

#[test]
fn non_utf8_output_survives_in_base64() {
    let lab = TestLab::new(1);
    let run = lab
        .remex()
        .args(["--json", "exec", "vm01", "--", "printf", r"a\377\376b"])
        .run()
        .expect_code(0);
    let json = run.json();
    let first = &results(&json)[0];
    assert_eq!(first["stdout"], "a\u{FFFD}\u{FFFD}b");
    assert_eq!(first["stdout_base64"], "Yf/+Yg==");
}

#[test]
fn stdin_env_and_cwd_reach_the_command() {
    let lab = TestLab::new(2);
    let input = lab.path().join("input.txt");
    std::fs::write(&input, "line one\nline two\n").unwrap_or_else(|e| panic!("{e}"));
    let run = lab
        .remex()
        .args(["--json", "exec", "all", "--stdin"])
        .arg(&input)
        .args(["--", "cat"])
        .run()
        .expect_code(0);
    for r in results(&run.json()) {
        assert_eq!(r["stdout"], "line one\nline two\n");
    }

    let run = lab
        .remex()
        .args(["--json", "exec", "vm01", "--stdin", "-", "--", "wc", "-c"])
        .stdin(b"12345")
        .run()
        .expect_code(0);
    assert_eq!(
        results(&run.json())[0]["stdout"].as_str().map(str::trim),
        Some("5")
    );

    let run = lab
        .remex()
        .args([
            "--json",
            "exec",
            "vm01",
            "--env",
            "GREETING=hello 'world' $(id)",
            "--env",
            "EMPTY=",
            "--cwd",
            "/tmp",
            "--",
            "sh",
            "-c",
            r#"printf '%s|%s|%s' "$GREETING" "${EMPTY-unset}" "$(pwd)""#,
        ])
        .run()
        .expect_code(0);
    assert_eq!(
        results(&run.json())[0]["stdout"],
        "hello 'world' $(id)||/tmp"
    );

    let run = lab
        .remex()
        .args([
            "--json",
            "exec",
            "vm01",
            "--cwd",
            "/nonexistent/dir",
            "--",
            "true",
        ])
        .run()
        .expect_code(1);
    assert_eq!(results(&run.json())[0]["exit_code"], 126);
}

#[test]
fn arguments_arrive_literally() {
    let lab = TestLab::new(1);
    let tricky = [
        "a b",
        "it's",
        "$(touch /tmp/remex-pwned)",
        "`id`",
        ";",
        "*",
        "",
        "x\ny",
        "héllo",
    ];
    let run = lab
        .remex()
        .args(["--json", "exec", "vm01", "--", "printf", "%s\\0"])
        .args(tricky)
        .run()
        .expect_code(0);
    let out = results(&run.json())[0]["stdout"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let words: Vec<&str> = out.split('\0').collect();
    assert_eq!(&words[..tricky.len()], &tricky[..]);
}

#[test]
fn a_timeout_stops_the_remote_command_and_its_children() {
    let lab = TestLab::new(2);
    // A child in the background, a grandchild in a new session, and the
    // foreground sleep: all must be gone after the timeout.
    let script = "sleep 7301 & setsid sleep 7302 & sh -c 'sleep 7303' & sleep 7304; echo never";
    let run = lab
        .remex()
        .args(["--json", "exec", "all", "--timeout", "1s", "--raw", script])
        .run()
        .expect_code(1);
    let json = run.json();
    for r in results(&json) {
        assert_eq!(r["error"]["kind"], "timeout", "{r}");
        assert_eq!(r["ok"], false);
    }
    assert_eq!(json["summary"]["timed_out"], 2);
    assert!(
        run.elapsed < Duration::from_secs(20),
        "took {:?}",
        run.elapsed
    );
    assert_no_process_left(&["sleep 7301", "sleep 7302", "sleep 7303", "sleep 7304"]);
}

#[test]
fn connect_timeout_against_a_silent_port() {
    let lab = TestLab::new(1);
    // Accepts TCP and never says a word: the SSH banner never comes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let _holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let config = lab.config_variant(
        "silent.yml",
        &[
            (
                &format!("host: 127.0.0.2, port: {}", lab.port()),
                &format!("host: 127.0.0.1, port: {port}"),
            ),
            ("connect_timeout: 10s", "connect_timeout: 1s"),
        ],
    );
    let run = Remex::new()
        .arg("--config")
        .arg(&config)
        .args(["--json", "exec", "vm01", "--", "true"])
        .run()
        .expect_code(1);
    let json = run.json();
    assert_eq!(results(&json)[0]["error"]["kind"], "connect_timeout");
    assert!(
        run.elapsed < Duration::from_secs(10),
        "took {:?}",
        run.elapsed
    );
}

#[test]
fn a_closed_port_is_a_connect_error() {
    let lab = TestLab::new(1);
    let port = crate::util::closed_port();
    let config = lab.config_variant(
        "closed.yml",
        &[(
            &format!("host: 127.0.0.2, port: {}", lab.port()),
            &format!("host: 127.0.0.1, port: {port}"),
        )],
    );
    let run = Remex::new()
        .arg("--config")
        .arg(&config)
        .args(["--json", "exec", "vm01", "--", "true"])
        .run()
        .expect_code(1);
    assert_first_error(&run, "connect", "refused");
    assert_eq!(run.json()["summary"]["unreachable"], 1);
}

/// The known_hosts line of a lab host, and the file.
fn known_hosts(lab: &TestLab) -> (std::path::PathBuf, String) {
    let path = lab.path().join("known_hosts");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    (path, text)
}

#[test]
fn unknown_host_keys_are_refused_under_strict() {
    let lab = TestLab::new(1);
    let (path, _) = known_hosts(&lab);
    std::fs::write(&path, "").unwrap_or_else(|e| panic!("{e}"));
    let run = lab
        .remex()
        .args(["--json", "exec", "all", "--", "true"])
        .run()
        .expect_code(1);
    let json = run.json();
    let error = &results(&json)[0]["error"];
    assert_eq!(error["kind"], "host_key");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("unknown") && message.contains("SHA256:"),
        "{message}"
    );
    // Nothing was pinned by a strict run.
    assert_eq!(std::fs::read_to_string(&path).unwrap_or_default(), "");
}

#[test]
fn accept_new_pins_on_first_use_then_trusts() {
    let lab = TestLab::new(2);
    let (path, original) = known_hosts(&lab);
    std::fs::write(&path, "").unwrap_or_else(|e| panic!("{e}"));
    let config = lab.config_variant(
        "accept.yml",
        &[("host_key_policy: strict", "host_key_policy: accept-new")],
    );
    let remex = || Remex::new().arg("--config").arg(&config);
    remex()
        .args(["exec", "all", "--", "true"])
        .run()
        .expect_code(0);
    let pinned = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(pinned.lines().count(), 2, "{pinned}");
    for line in original.lines() {
        let key = line.split_whitespace().nth(2).unwrap_or("?");
        assert!(pinned.contains(key), "{key} not pinned in:\n{pinned}");
    }
    remex()
        .args(["exec", "all", "--", "true"])
        .run()
        .expect_code(0);
    assert_eq!(std::fs::read_to_string(&path).unwrap_or_default(), pinned);
}

#[test]
fn a_changed_host_key_is_refused_with_both_fingerprints() {
    let lab = TestLab::new(2);
    let (path, text) = known_hosts(&lab);
    // Give vm01's pin vm02's key: vm01 now offers a key that differs from its pin.
    let lines: Vec<&str> = text.lines().collect();
    let vm02_key: Vec<&str> = lines[1].split_whitespace().skip(1).collect();
    let vm01_pattern = lines[0].split_whitespace().next().unwrap_or_default();
    std::fs::write(
        &path,
        format!("{vm01_pattern} {}\n{}\n", vm02_key.join(" "), lines[1]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for policy in ["strict", "accept-new"] {
        let config = lab.config_variant(
            &format!("{policy}.yml"),
            &[(
                "host_key_policy: strict",
                &format!("host_key_policy: {policy}"),
            )],
        );
        let run = Remex::new()
            .arg("--config")
            .arg(&config)
            .args(["--json", "exec", "all", "--", "true"])
            .run()
            .expect_code(1);
        let json = run.json();
        let error = &results(&json)[0]["error"];
        assert_eq!(error["kind"], "host_key");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains("CHANGED"), "{message}");
        assert_eq!(message.matches("SHA256:").count(), 2, "{message}");
        assert_eq!(results(&json)[1]["ok"], true);
    }
}

#[test]
fn a_revoked_host_key_is_refused_even_when_pinned() {
    let lab = TestLab::new(1);
    let (path, text) = known_hosts(&lab);
    let key: Vec<&str> = text.split_whitespace().skip(1).take(2).collect();
    std::fs::write(&path, format!("{text}@revoked * {}\n", key.join(" ")))
        .unwrap_or_else(|e| panic!("{e}"));
    let run = lab
        .remex()
        .args(["--json", "exec", "all", "--", "true"])
        .run()
        .expect_code(1);
    assert_first_error(&run, "host_key", "@revoked");
}

#[test]
fn auth_failure_is_reported_as_auth() {
    let lab = TestLab::new(1);
    // A valid key that the hosts don't know.
    let other = lab.path().join("keys").join("stranger");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap_or_else(|e| panic!("ssh-keygen: {e}"));
    assert!(status.success());
    let config = lab.config_variant(
        "stranger.yml",
        &[("default_key: id_ed25519", "default_key: stranger")],
    );
    let run = Remex::new()
        .arg("--config")
        .arg(&config)
        .args(["--json", "exec", "all", "--", "true"])
        .run()
        .expect_code(1);
    assert_first_error(&run, "auth", "stranger");
}

#[test]
fn a_private_key_readable_by_others_is_refused() {
    let lab = TestLab::new(1);
    let key = lab.path().join("keys").join("id_ed25519");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .unwrap_or_else(|e| panic!("{e}"));
    let run = lab
        .remex()
        .args(["--json", "exec", "all", "--", "true"])
        .run()
        .expect_code(1);
    assert_first_error(&run, "auth", "chmod 600");
}

#[test]
fn usage_and_config_errors_exit_2() {
    let lab = TestLab::new(1);
    let run = lab
        .remex()
        .args(["exec", "vm1", "--", "true"])
        .run()
        .expect_code(2);
    assert!(
        run.stderr().contains("did you mean `vm01`"),
        "{}",
        run.stderr()
    );
    lab.remex().args(["exec", "all"]).run().expect_code(2);
    lab.remex()
        .args(["exec", "all", "--timeout", "soon", "--", "true"])
        .run()
        .expect_code(2);

    let bad = lab.path().join("bad.yml");
    std::fs::write(&bad, "vms:\n  vm01: { host: 127.0.0.2, prot: 22 }\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let run = Remex::new()
        .arg("--config")
        .arg(&bad)
        .args(["exec", "all", "--", "true"])
        .run()
        .expect_code(2);
    let stderr = run.stderr();
    assert!(
        stderr.contains(&format!("{}:2:", bad.display())),
        "{stderr}"
    );
    assert!(stderr.contains("prot"), "{stderr}");

    let run = Remex::new()
        .current_dir(lab.path())
        .env("HOME", lab.path())
        .args(["hosts", "list"])
        .run()
        .expect_code(2);
    assert!(
        run.stderr().contains("configs/config.yml"),
        "{}",
        run.stderr()
    );
}

#[test]
fn hosts_list_and_check() {
    let lab = TestLab::new(3);
    let run = lab
        .remex()
        .args(["--json", "hosts", "list"])
        .run()
        .expect_code(0);
    let json = run.json();
    let hosts = json["hosts"].as_array().cloned().unwrap_or_default();
    assert_eq!(hosts.len(), 3);
    assert_eq!(hosts[0]["name"], "vm01");
    assert_eq!(hosts[0]["address"], "127.0.0.2");

    let run = lab.remex().args(["hosts", "list"]).run().expect_code(0);
    assert!(run.stdout().starts_with("NAME"), "{}", run.stdout());

    let run = lab
        .remex()
        .args(["--json", "hosts", "check", "all"])
        .run()
        .expect_code(0);
    let json = run.json();
    for r in results(&json) {
        assert_eq!(r["reachable"], true);
        assert_eq!(r["host_key"], "pinned");
        assert_eq!(r["auth"], true);
        assert!(r["rtt_ms"].is_f64(), "{r}");
        assert!(
            r["host_key_fingerprint"]
                .as_str()
                .unwrap_or_default()
                .starts_with("SHA256:")
        );
    }

    let (path, _) = known_hosts(&lab);
    std::fs::write(&path, "").unwrap_or_else(|e| panic!("{e}"));
    let run = lab
        .remex()
        .args(["--json", "hosts", "check", "vm02"])
        .run()
        .expect_code(1);
    let json = run.json();
    assert_eq!(results(&json)[0]["host_key"], "unknown");
    assert_eq!(results(&json)[0]["reachable"], true);
    assert_eq!(results(&json)[0]["auth"], false);
}

#[test]
fn stream_mode_prints_whole_prefixed_lines() {
    let lab = TestLab::new(3);
    let run = lab
        .remex()
        .args([
            "exec",
            "all",
            "--stream",
            "--",
            "sh",
            "-c",
            "for i in 1 2 3; do echo line$i; sleep 0.1; done",
        ])
        .run()
        .expect_code(0);
    let stdout = run.stdout();
    assert_eq!(stdout.lines().count(), 9, "{stdout}");
    for line in stdout.lines() {
        assert!(
            ["vm01: line", "vm02: line", "vm03: line"]
                .iter()
                .any(|p| line.starts_with(p)),
            "mixed line: {line:?}"
        );
    }
}

#[test]
fn one_connection_serves_many_commands_in_a_process() {
    let lab = TestLab::new(1);
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        let config = remex::Config::load(&lab.config()).unwrap_or_else(|e| panic!("{e}"));
        let executor = remex::Executor::new(config).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..20 {
            let report = executor
                .exec(
                    &remex::RunContext::new(),
                    "vm01",
                    &remex::Exec::argv(["echo", &i.to_string()]),
                )
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(report.all_ok(), "{report:?}");
            assert_eq!(
                report.results[0].detail.stdout.bytes,
                format!("{i}\n").as_bytes()
            );
        }
        executor.close().await;
    });
    assert_eq!(lab.logins("vm01"), 1, "{}", lab.sshd_log("vm01"));
}

#[test]
fn exec_works_against_dropbear() {
    // Field order matters: the lab goes down before its user is removed.
    let (lab, user, _parent) = TestLab::dropbear(3);
    let run = lab
        .remex()
        .args([
            "--json",
            "exec",
            "all",
            "--env",
            "X=a b",
            "--",
            "sh",
            "-c",
            r#"printf '%s %s' "$(id -un)" "$X""#,
        ])
        .run()
        .expect_code(0);
    let json = run.json();
    assert_eq!(json["summary"]["ok"], 3);
    for r in results(&json) {
        assert_eq!(r["stdout"], format!("{} a b", user.name));
    }
    let run = lab
        .remex()
        .args(["--json", "exec", "vm02", "--", "sh", "-c", "exit 4"])
        .run()
        .expect_code(1);
    assert_eq!(results(&run.json())[0]["exit_code"], 4);
    let run = lab
        .remex()
        .args([
            "--json",
            "exec",
            "vm01",
            "--timeout",
            "1s",
            "--",
            "sleep",
            "7311",
        ])
        .run()
        .expect_code(1);
    assert_eq!(results(&run.json())[0]["error"]["kind"], "timeout");
    assert_no_process_left(&["sleep 7311"]);
    drop(lab);
}

#[test]
fn a_timeout_stops_an_argv_command_and_its_children() {
    let lab = TestLab::new(1);
    let run = lab
        .remex()
        .args(["--json", "exec", "vm01", "--timeout", "500ms", "--"])
        .args([
            "sh",
            "-c",
            "sleep 7321 & setsid sleep 7322 & exec sleep 7323",
        ])
        .run()
        .expect_code(1);
    assert_eq!(results(&run.json())[0]["error"]["kind"], "timeout");
    assert_no_process_left(&["sleep 7321", "sleep 7322", "sleep 7323"]);
}

#[test]
fn rsa_ecdsa_and_encrypted_keys_authenticate() {
    let lab = TestLab::new(1);
    for (name, args) in [
        ("rsa3072", &["-t", "rsa", "-b", "3072", "-N", ""][..]),
        ("ecdsa256", &["-t", "ecdsa", "-b", "256", "-N", ""][..]),
        ("ecdsa384", &["-t", "ecdsa", "-b", "384", "-N", ""][..]),
    ] {
        let config = lab.authorize_new_key(name, args);
        Remex::new()
            .arg("--config")
            .arg(&config)
            .args(["exec", "all", "--", "true"])
            .run()
            .expect_code(0);
    }

    let config = lab.authorize_new_key("encrypted", &["-t", "ed25519", "-N", "open sesame"]);
    let run = || {
        Remex::new()
            .arg("--config")
            .arg(&config)
            .args(["--json", "exec", "all", "--", "true"])
    };
    // No passphrase and no terminal: a clear auth error naming the variable.
    let out = run().run().expect_code(1);
    let json = out.json();
    let error = &results(&json)[0]["error"];
    assert_eq!(error["kind"], "auth");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("REMEX_KEY_PASSPHRASE"),
        "{error}"
    );
    // A wrong one is refused without being echoed anywhere.
    let out = run()
        .env("REMEX_KEY_PASSPHRASE", "not-the-passphrase-42")
        .run()
        .expect_code(1);
    assert!(
        !out.stdout().contains("not-the-passphrase-42")
            && !out.stderr().contains("not-the-passphrase-42")
    );
    run()
        .env("REMEX_KEY_PASSPHRASE", "open sesame")
        .run()
        .expect_code(0);
}

#[test]
fn ssh_agent_keys_are_used_when_allowed() {
    let lab = TestLab::new(1);
    let socket = lab.path().join("agent.sock");
    let mut agent = std::process::Command::new("ssh-agent")
        .args(["-D", "-a"])
        .arg(&socket)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("ssh-agent: {e}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !socket.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "ssh-agent did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let key = lab.path().join("keys").join("id_ed25519");
    let added = std::process::Command::new("ssh-add")
        .arg(&key)
        .env("SSH_AUTH_SOCK", &socket)
        .output()
        .unwrap_or_else(|e| panic!("ssh-add: {e}"));
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    // The config names a key file that does not exist: only the agent can help.
    let agent_config = lab.config_variant(
        "agent.yml",
        &[
            ("default_key: id_ed25519", "default_key: not-there"),
            ("use_agent: false", "use_agent: true"),
        ],
    );
    Remex::new()
        .arg("--config")
        .arg(&agent_config)
        .env("SSH_AUTH_SOCK", &socket)
        .args(["exec", "all", "--", "true"])
        .run()
        .expect_code(0);
    // With use_agent: false the same agent is not asked.
    let no_agent = lab.config_variant(
        "no-agent.yml",
        &[("default_key: id_ed25519", "default_key: not-there")],
    );
    let run = Remex::new()
        .arg("--config")
        .arg(&no_agent)
        .env("SSH_AUTH_SOCK", &socket)
        .args(["--json", "exec", "all", "--", "true"])
        .run()
        .expect_code(1);
    assert_eq!(results(&run.json())[0]["error"]["kind"], "auth");
    let _ = agent.kill();
    let _ = agent.wait();
}

#[test]
fn pty_is_opt_in() {
    let lab = TestLab::new(1);
    let run = lab
        .remex()
        .args(["--json", "exec", "vm01", "--", "tty"])
        .run()
        .expect_code(1);
    assert_eq!(results(&run.json())[0]["stdout"], "not a tty\n");
    let run = lab
        .remex()
        .args(["--json", "exec", "vm01", "--pty", "--", "tty"])
        .run()
        .expect_code(0);
    let out = results(&run.json())[0]["stdout"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(out.starts_with("/dev/pts/"), "{out:?}");
}

#[test]
fn concurrent_commands_on_one_connection_respect_max_sessions() {
    // sshd allows 4 sessions per connection here; 24 concurrent commands on one
    // host must queue for remex's session slots instead of being refused.
    let lab = TestLab::new(1);
    for host in &lab.lab.hosts {
        let cfg = lab
            .path()
            .join("hosts")
            .join(&host.name)
            .join("sshd_config");
        let text = std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("MaxSessions 64", "MaxSessions 4");
        std::fs::write(&cfg, text).unwrap();
    }
    let mut lab = lab;
    lab.lab.stop_host("vm01").unwrap();
    lab.lab.start_host("vm01").unwrap();
    let run_all = |max_sessions: usize| -> Vec<bool> {
        let config = lab.config_variant(
            &format!("sessions{max_sessions}.yml"),
            &[(
                "use_agent: false",
                &format!("use_agent: false\n  max_sessions: {max_sessions}"),
            )],
        );
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let config = remex::Config::load(&config).unwrap();
            let executor = remex::Executor::new(config).unwrap();
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..24 {
                let executor = executor.clone();
                tasks.spawn(async move {
                    let exec = remex::Exec::argv(["sleep", "0.2"]);
                    let report = executor
                        .exec(&remex::RunContext::new(), "vm01", &exec)
                        .await
                        .unwrap();
                    if let Some(error) = &report.results[0].error {
                        eprintln!("ERR {error:?}");
                    }
                    report.all_ok()
                });
            }
            let mut oks = Vec::new();
            while let Some(ok) = tasks.join_next().await {
                oks.push(ok.unwrap());
            }
            executor.close().await;
            oks
        })
    };
    let within = run_all(4);
    assert!(within.iter().all(|ok| *ok), "{within:?}");
    // Without the limit, sshd refuses the excess: the limit is what made the
    // first run pass.
    let beyond = run_all(24);
    assert!(
        beyond.iter().any(|ok| !*ok),
        "sshd accepted 24 sessions; the test proves nothing"
    );
}

#[test]
fn a_command_without_the_separator_gets_a_hint_to_add_it() {
    let lab = TestLab::new(1);
    let run = lab
        .remex()
        .args(["exec", "all", "uname", "-a"])
        .run()
        .expect_code(2);
    let stderr = run.stderr();
    assert!(stderr.contains("unexpected argument 'uname'"), "{stderr}");
    let config = lab.config().display().to_string();
    assert!(
        stderr.contains("tip: ")
            && stderr.contains(&format!("remex --config {config} exec all -- uname -a")),
        "{stderr}"
    );
    // Options between the targets and the command stay where they were;
    // `script` takes its LOCAL_SCRIPT first.
    let run = lab
        .remex()
        .args(["script", "all", "./x.sh", "--timeout", "5s", "one", "two"])
        .run()
        .expect_code(2);
    assert!(
        run.stderr()
            .contains("script all ./x.sh --timeout 5s -- one two"),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_command_word_with_shell_syntax_that_is_not_found_hints_at_raw() {
    let lab = TestLab::new(2);
    let run = lab
        .remex()
        .args(["exec", "all", "--", "ls -l | head -n 1"])
        .run()
        .expect_code(1);
    let stderr = run.stderr();
    let config = lab.config().display().to_string();
    assert_eq!(stderr.matches("hint:").count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "use --raw: remex --config {config} exec all --raw 'ls -l | head -n 1'"
        )),
        "{stderr}"
    );
    // The hint is right: --raw runs it.
    lab.remex()
        .args(["exec", "all", "--raw", "ls -l / | head -n 1"])
        .run()
        .expect_code(0);
    // A plain missing program gets no hint, and neither does --json.
    let run = lab
        .remex()
        .args(["exec", "all", "--", "no-such-program-here"])
        .run()
        .expect_code(1);
    assert!(!run.stderr().contains("hint:"), "{}", run.stderr());
    let run = lab
        .remex()
        .args(["--json", "exec", "all", "--", "ls -l | head -n 1"])
        .run()
        .expect_code(1);
    assert_eq!(results(&run.json())[0]["exit_code"], 127);
    assert!(!run.stderr().contains("hint:"), "{}", run.stderr());
}

#[test]
fn timeout_none_means_no_timeout_and_zero_is_refused() {
    let lab = TestLab::new(1);
    let config = lab.config_variant(
        "short.yml",
        &[("command_timeout: 5m", "command_timeout: 1s")],
    );
    let remex = || Remex::new().arg("--config").arg(&config);
    let run = remex()
        .args(["--json", "exec", "vm01", "--", "sleep", "2"])
        .run()
        .expect_code(1);
    assert_first_error(&run, "timeout", "1s");
    for none in ["none", "NONE"] {
        remex()
            .args(["exec", "vm01", "--timeout", none, "--", "sleep", "2"])
            .run()
            .expect_code(0);
    }
    let script = lab.path().join("slow.sh");
    std::fs::write(&script, "sleep 2\n").unwrap_or_else(|e| panic!("{e}"));
    remex()
        .args(["script", "vm01"])
        .arg(&script)
        .args(["-t", "none"])
        .run()
        .expect_code(0);
    for zero in ["0", "0s", "0ms"] {
        let run = remex()
            .args(["exec", "vm01", "-t", zero, "--", "true"])
            .run()
            .expect_code(2);
        assert!(
            run.stderr().contains("would stop the command at once")
                && run.stderr().contains("`none`"),
            "{}",
            run.stderr()
        );
    }
}

#[test]
fn suggested_commands_carry_the_config_the_user_passed() {
    let lab = TestLab::new(1);
    let (path, _) = known_hosts(&lab);
    std::fs::write(&path, "").unwrap_or_else(|e| panic!("{e}"));
    let config = lab.config().display().to_string();
    let with_config = format!("`remex --config {config} hosts trust vm01`");

    let run = lab
        .remex()
        .args(["exec", "vm01", "--", "true"])
        .run()
        .expect_code(1);
    assert!(run.stderr().contains(&with_config), "{}", run.stderr());
    let run = lab
        .remex()
        .args(["--json", "exec", "vm01", "--", "true"])
        .run()
        .expect_code(1);
    assert_first_error(&run, "host_key", &with_config);
    let run = lab
        .remex()
        .args(["hosts", "check", "vm01"])
        .run()
        .expect_code(1);
    assert!(run.stdout().contains(&with_config), "{}", run.stdout());
    let run = lab
        .remex()
        .args(["exec", "vm01", "--ndjson", "--", "true"])
        .run()
        .expect_code(1);
    assert!(run.stdout().contains(&with_config), "{}", run.stdout());

    // The pasted suggestion works.
    let run = lab
        .remex()
        .args(["hosts", "trust", "vm01", "--yes"])
        .run()
        .expect_code(0);
    assert!(run.stdout().contains("pinned"), "{}", run.stdout());

    // With $REMEX_CONFIG the suggestion needs no --config.
    std::fs::write(&path, "").unwrap_or_else(|e| panic!("{e}"));
    let run = Remex::new()
        .env("REMEX_CONFIG", lab.config())
        .args(["exec", "vm01", "--", "true"])
        .run()
        .expect_code(1);
    assert!(
        run.stderr().contains("run `remex hosts trust vm01`"),
        "{}",
        run.stderr()
    );
}
