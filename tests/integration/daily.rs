//! The daily-use options of the CLI (issue "operator polish", item 11):
//! completions and man pages, `hosts list TARGETS`, `--user`,
//! `--connect-timeout`, `--quiet` and `--output`.

use std::time::Duration;

use crate::util::{Remex, TestLab};

#[test]
fn completions_and_man_pages_come_from_the_same_definitions_as_help() {
    for (shell, marker) in [
        ("bash", "_remex()"),
        ("zsh", "#compdef remex"),
        ("fish", "complete -c remex"),
    ] {
        let run = Remex::new()
            .args(["completions", shell])
            .run()
            .expect_code(0);
        let script = run.stdout();
        assert!(script.contains(marker), "{shell}: {script:.200}");
        assert!(
            script.contains("exec") && script.contains("connect-timeout"),
            "{shell}"
        );
    }
    let page = Remex::new().arg("man").run().expect_code(0).stdout();
    assert!(page.contains(".TH remex 1"), "{page:.200}");
    let dir = tempfile::tempdir().unwrap();
    Remex::new()
        .args(["man", "--dir"])
        .arg(dir.path())
        .run()
        .expect_code(0);
    let exec = std::fs::read_to_string(dir.path().join("remex-exec.1")).unwrap();
    assert!(exec.contains(r"\-\-timeout"), "{exec:.300}");
    // A reader that stops early is not an error.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} completions bash | head -n 1",
            env!("CARGO_BIN_EXE_remex")
        ))
        .output()
        .unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
}

#[test]
fn hosts_list_previews_what_a_selector_picks() {
    let lab = TestLab::new(3);
    let run = lab
        .remex()
        .args(["hosts", "list", "odd"])
        .run()
        .expect_code(0);
    let out = run.stdout();
    assert!(
        out.contains("vm01") && out.contains("vm03") && !out.contains("vm02"),
        "{out}"
    );
    let json = lab
        .remex()
        .args(["--json", "hosts", "list", "all,!vm01"])
        .run()
        .expect_code(0)
        .json();
    let names: Vec<&str> = json["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["name"].as_str())
        .collect();
    assert_eq!(names, ["vm02", "vm03"]);
    let run = lab
        .remex()
        .args(["hosts", "list", "vm09"])
        .run()
        .expect_code(2);
    assert!(run.stderr().contains("vm09"), "{}", run.stderr());
}

#[test]
fn user_and_connect_timeout_override_the_config_for_one_command() {
    let lab = TestLab::new(1);
    let run = lab
        .remex()
        .args([
            "--user",
            "remex-nobody",
            "--json",
            "exec",
            "vm01",
            "--",
            "true",
        ])
        .run()
        .expect_code(1);
    let json = run.json();
    assert_eq!(json["results"][0]["user"], "remex-nobody", "{json}");
    assert_eq!(json["results"][0]["error"]["kind"], "auth", "{json}");

    // A port that accepts TCP but never says a word of SSH: the lab's
    // connect_timeout is 10s; --connect-timeout 1s gives up sooner.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let config = lab.config_variant(
        "silent.yml",
        &[(
            &format!("host: 127.0.0.2, port: {}", lab.port()),
            &format!("host: 127.0.0.1, port: {port}"),
        )],
    );
    let run = Remex::new()
        .arg("--config")
        .arg(&config)
        .args([
            "--connect-timeout",
            "1s",
            "--json",
            "exec",
            "vm01",
            "--",
            "true",
        ])
        .run()
        .expect_code(1);
    let json = run.json();
    assert_eq!(
        json["results"][0]["error"]["kind"], "connect_timeout",
        "{json}"
    );
    assert!(
        run.elapsed < Duration::from_secs(8),
        "took {:?}",
        run.elapsed
    );
    let run = lab
        .remex()
        .args(["--connect-timeout", "0", "exec", "vm01", "--", "true"])
        .run()
        .expect_code(2);
    assert!(run.stderr().contains("5s"), "{}", run.stderr());
}

/// A command that fails on vm02 only (each lab host has its own `$HOME`).
const FAILS_ON_VM02: &str = r#"case "$HOME" in */vm02/*) echo bad; echo why >&2; exit 3;; esac; printf 'one\ntwo\n'; echo note >&2"#;

#[test]
fn quiet_prints_only_what_failed_and_the_summary() {
    let lab = TestLab::new(3);
    let run = lab
        .remex()
        .args(["exec", "all", "-q", "--raw", FAILS_ON_VM02])
        .run()
        .expect_code(1);
    assert_eq!(run.stdout(), "vm02: bad\n");
    let stderr = run.stderr();
    assert!(
        stderr.contains("vm02: why") && !stderr.contains("note"),
        "{stderr}"
    );
    assert!(
        stderr.contains("3 hosts: 2 ok, 1 exited non-zero"),
        "{stderr}"
    );
}

#[test]
fn output_oneline_gives_each_host_one_line_and_json_formats_are_the_flags() {
    let lab = TestLab::new(3);
    let run = lab
        .remex()
        .args(["exec", "all", "--output", "oneline", "--raw", FAILS_ON_VM02])
        .run()
        .expect_code(1);
    let mut lines: Vec<String> = run.stdout().lines().map(str::to_owned).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            r"vm01: [ok] one\ntwo [stderr] note",
            r"vm02: [exit: command exited with status 3] bad [stderr] why",
            r"vm03: [ok] one\ntwo [stderr] note",
        ]
    );
    // --output json is --json; --output ndjson is --ndjson.
    let json = lab
        .remex()
        .args(["exec", "all", "-o", "json", "--", "true"])
        .run()
        .expect_code(0)
        .json();
    assert_eq!(json["summary"]["ok"], 3);
    let run = lab
        .remex()
        .args(["exec", "all", "-o", "ndjson", "--", "true"])
        .run()
        .expect_code(0);
    assert_eq!(run.stdout().lines().count(), 4, "{}", run.stdout());
    // Human formats and --json contradict each other.
    for human in [&["-o", "oneline"][..], &["-q"]] {
        lab.remex()
            .args(["--json", "exec", "all"])
            .args(human)
            .args(["--", "true"])
            .run()
            .expect_code(2);
    }
}

#[test]
fn ad_hoc_hosts_are_reached_by_address_and_their_host_keys_are_still_checked() {
    let lab = TestLab::new(2);
    let port = lab.port();
    // vm02's address, named by address (outside the inventory) and with its
    // pin removed: an ad-hoc host whose key is unknown.
    lab.unpin("127.0.0.3");
    let known = format!("127.0.0.2:{port}");
    let unknown = format!("127.0.0.3:{port}");
    let json = lab
        .remex()
        .args(["--json", "exec", "--host", &known, "--host", &unknown])
        .arg(format!("{known},adhoc"))
        .args(["--", "echo", "hi"])
        .run()
        .expect_code(1)
        .json();
    let results = json["results"].as_array().unwrap();
    let of = |name: &str| results.iter().find(|r| r["host"] == name).unwrap();
    assert_eq!(results.len(), 2, "{json}");
    assert_eq!(of(&known)["stdout"], "hi\n", "{json}");
    assert_eq!(of(&unknown)["error"]["kind"], "host_key", "{json}");
    // Something that is not an address is refused before anything runs.
    let run = lab
        .remex()
        .args(["exec", "--host", "a;touch x", "all", "--", "true"])
        .run()
        .expect_code(2);
    assert!(run.stderr().contains("is not ADDR"), "{}", run.stderr());
}
