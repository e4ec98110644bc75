//! remex called by programs (cron, CI, n8n's Execute Command): the request
//! as JSON (`--request`), errors as JSON documents, `--ndjson`,
//! `--exit-zero`, and listings whose envelope comes first.

use serde_json::Value;

use crate::util::{Remex, Run, TestLab};

/// The one JSON document on stdout of a run that stopped with exit 2.
fn error_document(run: &Run) -> Value {
    let json = run.json();
    assert_eq!(json["version"], 2, "{json}");
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{json}"
    );
    json
}

/// stdout as JSON lines.
fn lines(run: &Run) -> Vec<Value> {
    run.stdout()
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| {
                panic!(
                    "not a JSON line ({e}): {line}\n--- stderr\n{}",
                    run.stderr()
                )
            })
        })
        .collect()
}

#[test]
fn errors_that_stop_remex_are_json_documents_on_stdout_with_json() {
    let lab = TestLab::new(1);

    // A usage error of clap's, with the hint.
    let run = lab
        .remex()
        .args(["--json", "exec", "all", "uname", "-a"])
        .run()
        .expect_code(2);
    let json = error_document(&run);
    assert_eq!(json["operation"], "exec");
    assert_eq!(json["error"]["kind"], "usage");
    let message = json["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("unexpected argument 'uname'") && message.contains("exec all -- uname -a"),
        "{message}"
    );
    assert_eq!(run.stdout().lines().count(), 1, "{}", run.stdout());
    // The text still goes to stderr.
    assert!(
        run.stderr().contains("unexpected argument"),
        "{}",
        run.stderr()
    );

    // An unknown target: nothing ran.
    let run = lab
        .remex()
        .args(["exec", "vm99", "--json", "--", "true"])
        .run()
        .expect_code(2);
    let json = error_document(&run);
    assert_eq!(json["operation"], "exec");
    assert_eq!(json["error"]["kind"], "targets");
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("vm99")),
        "{json}"
    );

    // A config error, for a command whose report is named differently.
    let bad = lab.path().join("bad.yml");
    std::fs::write(&bad, "vms:\n  vm01: { host: 127.0.0.2, prot: 22 }\n").unwrap();
    let run = Remex::new()
        .arg("--config")
        .arg(&bad)
        .args(["--json", "hosts", "check"])
        .run()
        .expect_code(2);
    let json = error_document(&run);
    assert_eq!(json["operation"], "check");
    assert_eq!(json["error"]["kind"], "config");

    // --ndjson: the same document, on one line.
    let run = lab
        .remex()
        .args(["exec", "vm99", "--ndjson", "--", "true"])
        .run()
        .expect_code(2);
    assert_eq!(lines(&run).len(), 1);
    assert_eq!(lines(&run)[0]["error"]["kind"], "targets");

    // A command line that names no command.
    let run = Remex::new()
        .args(["--json", "--bogus"])
        .run()
        .expect_code(2);
    let json = error_document(&run);
    assert_eq!(json["operation"], Value::Null);
    assert_eq!(json["error"]["kind"], "usage");

    // Without --json, stdout stays empty; `--json` after `--` is the
    // command's own word.
    let run = lab
        .remex()
        .args(["exec", "vm99", "--", "jq", "--json"])
        .run()
        .expect_code(2);
    assert_eq!(run.stdout(), "");
}

#[test]
fn json_refuses_stream_instead_of_ignoring_it() {
    let lab = TestLab::new(1);
    for args in [
        &["--json", "exec", "all", "--stream", "--", "true"][..],
        &["exec", "all", "--stream", "--json", "--", "true"][..],
        &["exec", "all", "--stream", "--ndjson", "--", "true"][..],
        &["--json", "exec", "all", "--ndjson", "--", "true"][..],
    ] {
        let run = lab.remex().args(args).run().expect_code(2);
        let stderr = run.stderr();
        assert!(stderr.contains("cannot be used with"), "{args:?}: {stderr}");
        let json = error_document(&run);
        assert_eq!(json["error"]["kind"], "usage", "{args:?}");
    }
    // Each is fine on its own.
    lab.remex()
        .args(["exec", "all", "--stream", "--", "true"])
        .run()
        .expect_code(0);
}

#[test]
fn a_request_on_stdin_passes_everything_literally_and_runs_nothing_here() {
    let lab = TestLab::new(2);
    let dir = lab.path().join("markers");
    std::fs::create_dir(&dir).unwrap();
    let marker = |n: u32| dir.join(format!("m{n}")).display().to_string();
    let words = [
        "%s\n".to_owned(),
        format!("; touch {}", marker(1)),
        format!("$(touch {})", marker(2)),
        format!("`touch {}`", marker(3)),
        format!("a\nb && touch {}", marker(4)),
        "'single' \"double\" $HOME * \\".to_owned(),
    ];
    let mut command = vec!["printf".to_owned()];
    command.extend(words.iter().cloned());
    let request = serde_json::json!({
        "targets": "vm02",
        "command": command,
        "env": {"X": format!("$(touch {})", marker(5))},
        "cwd": "/tmp",
        "stdin": format!("`touch {}`", marker(6)),
    });
    let run = lab
        .remex()
        .args(["--json", "exec", "--request", "-"])
        .stdin(request.to_string().as_bytes())
        .run()
        .expect_code(0);
    let json = run.json();
    let result = &json["results"][0];
    assert_eq!(result["host"], "vm02");
    let expected: String = words[1..].iter().map(|w| format!("{w}\n")).collect();
    assert_eq!(result["stdout"], expected.as_str());

    // env and stdin arrive as data too.
    let request = serde_json::json!({
        "targets": "vm01",
        "command": ["sh", "-c", "printf '%s|' \"$X\"; cat"],
        "env": {"X": format!("$(touch {})", marker(7))},
        "stdin": format!("`touch {}`", marker(8)),
    });
    let run = lab
        .remex()
        .args(["--json", "exec", "--request", "-"])
        .stdin(request.to_string().as_bytes())
        .run()
        .expect_code(0);
    assert_eq!(
        run.json()["results"][0]["stdout"],
        format!("$(touch {})|`touch {}`", marker(7), marker(8))
    );

    // Shell syntax in the targets is a selector that selects nothing: exit
    // 2, no host contacted, nothing run here.
    for targets in [
        format!("vm01;touch {}", marker(9)),
        format!("vm01,$(touch {})", marker(10)),
        format!("`touch {}`", marker(11)),
        format!("vm01\ntouch {}", marker(12)),
    ] {
        let request = serde_json::json!({"targets": targets, "command": ["true"]});
        let run = lab
            .remex()
            .args(["--json", "exec", "--request", "-"])
            .stdin(request.to_string().as_bytes())
            .run()
            .expect_code(2);
        assert_eq!(
            error_document(&run)["error"]["kind"],
            "targets",
            "{targets:?}"
        );
    }

    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "marker files appeared: {left:?}");
}

#[test]
fn a_request_file_carries_timeout_script_and_limits() {
    let lab = TestLab::new(2);
    let write = |name: &str, request: Value| {
        let path = lab.path().join(name);
        std::fs::write(&path, request.to_string()).unwrap();
        path
    };

    // timeout, max_output, parallel, raw.
    let path = write(
        "timeout.json",
        serde_json::json!({
            "targets": "all", "raw": "head -c 5000 /dev/zero | tr '\\0' x; sleep 5",
            "timeout": "1s", "max_output": "1K", "parallel": 1,
        }),
    );
    let run = lab
        .remex()
        .args(["--json", "exec", "--request"])
        .arg(&path)
        .run()
        .expect_code(1);
    let json = run.json();
    assert_eq!(json["summary"]["timed_out"], 2, "{json}");
    let result = &json["results"][0];
    assert_eq!(result["truncated"], true, "{result}");
    assert_eq!(result["stdout"].as_str().map(str::len), Some(1024));

    // A script by its text, with arguments.
    let path = write(
        "script.json",
        serde_json::json!({
            "targets": "vm01",
            "script": {"body": "#!/bin/sh\necho \"args: $# $1\"\n", "name": "s.sh", "args": ["a b", "c"]},
        }),
    );
    let run = lab
        .remex()
        .args(["--json", "exec", "--request"])
        .arg(&path)
        .run()
        .expect_code(0);
    let json = run.json();
    assert_eq!(json["operation"], "script");
    assert_eq!(json["results"][0]["stdout"], "args: 2 a b\n");

    // Errors name the field; the command line cannot add to a request.
    let path = write(
        "bad.json",
        serde_json::json!({"targets": "vm01", "command": ["echo", 3]}),
    );
    let run = lab
        .remex()
        .args(["--json", "exec", "--request"])
        .arg(&path)
        .run()
        .expect_code(2);
    let json = error_document(&run);
    assert_eq!(json["error"]["kind"], "usage");
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("command[1]")),
        "{json}"
    );
    lab.remex()
        .args(["exec", "--request"])
        .arg(&path)
        .args(["--timeout", "5s"])
        .run()
        .expect_code(2);
    lab.remex()
        .args(["exec", "vm01", "--request"])
        .arg(&path)
        .run()
        .expect_code(2);
}

#[test]
fn ndjson_prints_each_host_as_it_finishes_then_the_summary() {
    let lab = TestLab::new(3);
    let run = lab
        .remex()
        .args([
            "exec",
            "all",
            "--ndjson",
            "--raw",
            r#"case "$SSH_CONNECTION" in *" 127.0.0.2 "*) sleep 1;; *" 127.0.0.3 "*) exit 3;; esac; echo done"#,
        ])
        .run()
        .expect_code(1);
    let lines = lines(&run);
    assert_eq!(lines.len(), 4, "{}", run.stdout());
    // vm01 sleeps: its line comes after the others, not in inventory order.
    assert_eq!(lines[2]["host"], "vm01", "{}", run.stdout());
    let vm02 = lines.iter().find(|l| l["host"] == "vm02").unwrap();
    assert_eq!(vm02["ok"], false);
    assert_eq!(vm02["exit_code"], 3);
    assert_eq!(vm02["error"]["kind"], "exit");
    let vm03 = lines.iter().find(|l| l["host"] == "vm03").unwrap();
    assert_eq!(vm03["stdout"], "done\n");
    // Each host line has the fields of --json's results[].
    for key in [
        "address",
        "port",
        "user",
        "duration_ms",
        "signal",
        "truncated",
    ] {
        assert!(vm03.get(key).is_some(), "no {key} in {vm03}");
    }
    let end = &lines[3];
    assert_eq!(end["version"], 2);
    assert_eq!(end["operation"], "exec");
    assert!(end["run_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(end["summary"]["total"], 3);
    assert_eq!(end["summary"]["failed"], 1);
    assert!(end.get("results").is_none(), "{end}");
    // Human output is off: no host-prefixed lines, no summary text.
    assert!(!run.stderr().contains("hosts:"), "{}", run.stderr());
}

#[test]
fn exit_zero_exits_0_whenever_a_report_was_printed() {
    let lab = TestLab::new(2);
    let failing = ["exec", "all", "--raw", "exit 3"];
    lab.remex().args(failing).run().expect_code(1);
    let run = lab
        .remex()
        .args(["--json", "--exit-zero"])
        .args(failing)
        .run()
        .expect_code(0);
    assert_eq!(run.json()["summary"]["failed"], 2);
    lab.remex()
        .args(failing)
        .arg("--exit-zero")
        .run()
        .expect_code(0);
    // Nothing ran: still 2.
    lab.remex()
        .args(["--exit-zero", "exec", "nohost", "--", "true"])
        .run()
        .expect_code(2);
}

#[test]
fn listings_put_version_and_operation_first() {
    let lab = TestLab::new(1);
    let dir = lab.path().display().to_string();
    for args in [
        vec!["keys", "list"],
        vec!["hosts", "list"],
        vec!["lab", "status", "--dir", dir.as_str()],
        vec!["audit", "tail"],
    ] {
        let run = lab.remex().arg("--json").args(&args).run().expect_code(0);
        let operation = args[..2].join(".");
        let start = format!(r#"{{"version":2,"operation":"{operation}","#);
        assert!(
            run.stdout().starts_with(&start),
            "{args:?}: {}",
            run.stdout()
        );
    }
}
