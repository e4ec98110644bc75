//! `remex script` and `--sudo` against real sshd labs.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{
    SudoersDropIn, TestLab, ThrowawayUser, assert_every_host_ended, assert_no_process_left,
    assert_verifies, records, running_as_root, send_signal, wait_for,
};

fn result(run: &crate::util::Run) -> Value {
    run.json()["results"][0].clone()
}

fn write_script(lab: &TestLab, name: &str, text: &[u8]) -> PathBuf {
    let path = lab.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The staging directory a script printed as its first line.
fn staged_dir(stdout: &str) -> PathBuf {
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.contains("/remex-script."),
        "no staging dir in {stdout:?}"
    );
    PathBuf::from(first)
}

#[test]
fn arguments_arrive_exactly_and_the_directory_is_removed() {
    let lab = TestLab::new(2);
    let script = write_script(
        &lab,
        "args.sh",
        b"#!/bin/sh\ndirname \"$0\"\nprintf '%s\\0' \"$#\" \"$@\"\n",
    );
    let torture = [
        "a b",
        "",
        "it's",
        "\"dq\"",
        "$(touch /tmp/remex-pwned)",
        "`id`",
        ";",
        "*",
        "x\ny",
        "tab\there",
        "héllo ✓",
        "--",
        "-n",
        "\\",
    ];
    let run = lab
        .remex()
        .args(["--json", "script", "all"])
        .arg(&script)
        .arg("--")
        .args(torture)
        .run()
        .expect_code(0);
    let json = run.json();
    assert_eq!(json["operation"], "script");
    assert_eq!(json["script"]["name"], "args.sh");
    assert_eq!(
        json["script"]["size"],
        std::fs::metadata(&script).unwrap().len()
    );
    for r in json["results"].as_array().unwrap() {
        let out = r["stdout"].as_str().unwrap();
        let dir = staged_dir(out);
        let (_, rest) = out.split_once('\n').unwrap();
        let words: Vec<&str> = rest.split('\0').collect();
        assert_eq!(words[0], torture.len().to_string());
        assert_eq!(&words[1..=torture.len()], &torture[..]);
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    assert!(!Path::new("/tmp/remex-pwned").exists());
}

#[test]
fn the_directory_is_removed_after_failure_and_timeout() {
    let lab = TestLab::new(1);
    let failing = write_script(&lab, "fail.sh", b"dirname \"$0\"\nexit 7\n");
    let run = lab
        .remex()
        .args(["--json", "script", "vm01"])
        .arg(&failing)
        .run()
        .expect_code(1);
    let r = result(&run);
    assert_eq!(r["exit_code"], 7);
    assert_eq!(r["error"]["kind"], "exit");
    assert!(!staged_dir(r["stdout"].as_str().unwrap()).exists());

    let slow = write_script(
        &lab,
        "slow.sh",
        b"dirname \"$0\"\nsleep 7401 &\nsh -c 'sleep 7402' &\nsleep 7403\n",
    );
    let run = lab
        .remex()
        .args(["--json", "script", "vm01", "--timeout", "1s"])
        .arg(&slow)
        .run()
        .expect_code(1);
    let r = result(&run);
    assert_eq!(r["error"]["kind"], "timeout");
    assert!(!staged_dir(r["stdout"].as_str().unwrap()).exists());
    assert_no_process_left(&["sleep 7401", "sleep 7402", "sleep 7403"]);
}

#[test]
fn leftovers_of_lost_runs_are_removed_by_the_next_run() {
    let lab = TestLab::new(1);
    let tmp = std::env::var("TMPDIR").unwrap_or_else(|_| "/tmp".into());
    let old = PathBuf::from(&tmp).join(format!("remex-script.testold{}", std::process::id()));
    let young = PathBuf::from(&tmp).join(format!("remex-script.testnew{}", std::process::id()));
    for dir in [&old, &young] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(remex::exec::SCRIPT_MARKER), "").unwrap();
    }
    assert!(
        std::process::Command::new("touch")
            .args(["-d", "2 days ago"])
            .arg(&old)
            .status()
            .unwrap()
            .success()
    );
    let script = write_script(&lab, "noop.sh", b"true\n");
    lab.remex()
        .args(["script", "vm01"])
        .arg(&script)
        .run()
        .expect_code(0);
    assert!(!old.exists(), "a day-old leftover was kept");
    assert!(
        young.exists(),
        "a fresh directory (maybe a running script's) was removed"
    );
    std::fs::remove_dir_all(&young).unwrap();
}

#[test]
fn shebang_interpreter_stdin_env_and_cwd() {
    let lab = TestLab::new(1);
    let py = write_script(
        &lab,
        "hello.py",
        b"#!/usr/bin/env python3\nimport os, sys\nprint('py', sys.argv[1], os.environ['GREETING'], os.getcwd(), sys.stdin.read().strip())\n",
    );
    let input = lab.path().join("in.txt");
    std::fs::write(&input, "from stdin\n").unwrap();
    let run = lab
        .remex()
        .args([
            "--json",
            "script",
            "vm01",
            "--env",
            "GREETING=hi there",
            "--cwd",
            "/tmp",
            "--stdin",
        ])
        .arg(&input)
        .arg(&py)
        .args(["--", "arg one"])
        .run()
        .expect_code(0);
    assert_eq!(
        result(&run)["stdout"],
        "py arg one hi there /tmp from stdin\n"
    );

    // No shebang: /bin/sh. --interpreter overrides both.
    let bashism = write_script(
        &lab,
        "which.sh",
        b"if [ -n \"$BASH_VERSION\" ]; then echo bash; else echo sh; fi\n",
    );
    let run = lab
        .remex()
        .args(["--json", "script", "vm01"])
        .arg(&bashism)
        .run()
        .expect_code(0);
    assert_eq!(result(&run)["stdout"], "sh\n");
    let run = lab
        .remex()
        .args(["--json", "script", "vm01", "--interpreter", "/bin/bash"])
        .arg(&bashism)
        .run()
        .expect_code(0);
    assert_eq!(result(&run)["stdout"], "bash\n");
}

#[test]
fn a_large_script_arrives_byte_for_byte() {
    let lab = TestLab::new(1);
    // 1 MiB: a line that prints the script's own digest, then a comment of
    // every byte value except newline (binary-safe transport).
    let mut text = b"sha256sum \"$0\" | cut -d' ' -f1; exit 0\n#".to_vec();
    let filler: Vec<u8> = (0..=255u8).filter(|b| *b != b'\n').collect();
    while text.len() < 1 << 20 {
        text.extend_from_slice(&filler);
    }
    let script = write_script(&lab, "big.sh", &text);
    let run = lab
        .remex()
        .args(["--json", "script", "vm01"])
        .arg(&script)
        .run()
        .expect_code(0);
    let json = run.json();
    let local = json["script"]["sha256"].as_str().unwrap().to_owned();
    assert_eq!(json["results"][0]["stdout"].as_str().unwrap().trim(), local);
    assert_eq!(json["script"]["size"], text.len());
}

#[test]
fn a_missing_script_is_a_usage_error() {
    let lab = TestLab::new(1);
    let run = lab
        .remex()
        .args(["script", "all", "/nonexistent/x.sh"])
        .run()
        .expect_code(2);
    assert!(
        run.stderr().contains("/nonexistent/x.sh"),
        "{}",
        run.stderr()
    );
}

#[test]
fn sudo_runs_exec_and_script_as_another_user() {
    assert!(
        running_as_root(),
        "THIS TEST NEEDS ROOT (the lab logs in as root, whose sudo needs no password). CI runs it as root."
    );
    let lab = TestLab::new(1);
    let run = lab
        .remex()
        .args([
            "--json",
            "exec",
            "vm01",
            "--sudo-user",
            "nobody",
            "--",
            "id",
            "-un",
        ])
        .run()
        .expect_code(0);
    assert_eq!(result(&run)["stdout"], "nobody\n");
    let script = write_script(&lab, "who.sh", b"dirname \"$0\"\nid -un\nsleep 7411\n");
    let run = lab
        .remex()
        .args([
            "--json",
            "script",
            "vm01",
            "--sudo-user",
            "nobody",
            "--timeout",
            "1s",
        ])
        .arg(&script)
        .run()
        .expect_code(1);
    let r = result(&run);
    assert_eq!(r["error"]["kind"], "timeout");
    let out = r["stdout"].as_str().unwrap();
    assert!(out.ends_with("nobody\n"), "{out}");
    assert!(!staged_dir(out).exists());
    assert_no_process_left(&["sleep 7411"]);
}

#[test]
fn sudo_with_a_password_never_shows_it() {
    assert!(
        running_as_root(),
        "THIS TEST NEEDS ROOT: it creates a throwaway user with a password and a sudoers drop-in. CI runs it as root."
    );
    let parent = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        parent.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let user = ThrowawayUser::create(parent.path());
    let password = "s3cret-Pa55-remex";
    user.set_password(password);
    let _rule = SudoersDropIn::install(&user.name, &format!("{} ALL=(ALL) ALL", user.name));
    let lab = TestLab::with(1, remex::lab::ServerKind::OpenSsh, Some(user.name.clone()));

    let run_as_root = |env: Option<&str>| {
        let mut remex = lab.remex().args(["--json", "exec", "vm01", "--sudo"]);
        if let Some(value) = env {
            remex = remex
                .env("REMEX_TEST_SUDO_PW", value)
                .args(["--sudo-password-env", "REMEX_TEST_SUDO_PW"]);
        }
        remex
            .args(["--stdin", "-", "--", "sh", "-c", "id -u; cat"])
            .stdin(b"payload line\n")
            .run()
    };
    // Without a password: a clear sudo error, no hang.
    let run = run_as_root(None).expect_code(1);
    let r = result(&run);
    assert_eq!(r["error"]["kind"], "sudo");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--sudo-password-env"),
        "{r}"
    );
    // A wrong one: refused, not echoed.
    let run = run_as_root(Some("wrong-Pa55-remex")).expect_code(1);
    assert_eq!(result(&run)["error"]["kind"], "sudo");
    assert!(!run.stdout().contains("wrong-Pa55") && !run.stderr().contains("wrong-Pa55"));
    // The right one: runs as root, and the password is in no output (the
    // command's own stdin starts after it).
    let run = run_as_root(Some(password)).expect_code(0);
    assert_eq!(result(&run)["stdout"], "0\npayload line\n");
    assert!(!run.stdout().contains(password) && !run.stderr().contains(password));
    drop(lab);
}

#[test]
fn a_signal_stops_the_script_and_removes_its_directory() {
    let lab = TestLab::new(1);
    let script = write_script(
        &lab,
        "long.sh",
        b"dirname \"$0\"\nsleep 7421 &\nsleep 7422\n",
    );
    // Ctrl-C, and what `timeout`, systemd and a closed terminal send.
    for (signal, code) in [("INT", 130), ("TERM", 143), ("HUP", 129)] {
        let mut child = lab
            .remex()
            .args(["--json", "script", "vm01"])
            .arg(&script)
            .spawn();
        // Wait until the script runs on the host, then stop remex.
        wait_for(&mut child, "the script running", || {
            !crate::util::processes_matching("sleep 7422").is_empty()
        });
        send_signal(&child, signal);
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{signal}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        let r = &json["results"][0];
        assert_eq!(r["error"]["kind"], "cancelled");
        assert!(!staged_dir(r["stdout"].as_str().unwrap()).exists());
        assert_no_process_left(&["sleep 7421", "sleep 7422"]);
        let records = records(&lab);
        assert_every_host_ended(&records, json["run_id"].as_str().unwrap(), &["vm01"]);
    }
    assert_verifies(&lab);
}
