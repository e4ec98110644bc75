//! Requests that try to harm other jobs or outlive their own, against the
//! real `remex` (CLI and `remex serve`) and labs of real sshd:
//!
//! - fields sshd would drop the shared connection for (NUL bytes, command
//!   lines over its limit), duplicate keys, remex's own names — refused
//!   at the edge, naming the field, while another token's job runs on;
//! - commands that hide from the reaper (a changed or unset tag, orphans,
//!   new sessions, `exec`) — stopped on a timeout and a cancel;
//! - a shared connection cut from outside — every job on it fails saying
//!   so, and its processes are stopped through a new connection;
//! - `kill -9` of the service — at the restart, the interrupted jobs'
//!   processes are stopped before the jobs are marked, and audited;
//! - output without newlines — cut into marked pieces, in bounded memory;
//! - a batch of generated bodies — each a 4xx in the error shape with
//!   nothing run, or a valid run, and no other job harmed.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use proptest::test_runner::TestRunner;
use serde_json::{Map, Value, json};

use crate::served::{Served, error_of, json_of, runs_started, sse};
use crate::util::{TestLab, assert_no_process_left, assert_verifies, processes_matching, records};

/// The most the remote command line may hold (`remex::exec::MAX_COMMAND_LINE`).
const LIMIT: usize = remex::exec::MAX_COMMAND_LINE;

/// A number for this test's process names (`sleep <mark>1`, …), unique
/// among tests running at once.
fn mark(salt: u32) -> String {
    format!("8{:04}{salt}", std::process::id() % 10_000)
}

/// Kills, when dropped, whatever `sleep <mark>…` a failed test left
/// running (the lab's hosts are this machine).
struct Leftovers(Vec<String>);

impl Drop for Leftovers {
    fn drop(&mut self) {
        for mark in &self.0 {
            for (pid, _) in processes_matching(&format!("sleep {mark}")) {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

/// Waits (20 s at most) until every one of `needles` is a running
/// process's command line (exactly, so a shell quoting it does not count).
fn wait_running(needles: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let missing: Vec<&String> = needles
            .iter()
            .filter(|needle| {
                !processes_matching(needle)
                    .iter()
                    .any(|(_, cmd)| cmd.trim() == needle.as_str())
            })
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "never started: {missing:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `sleep` commands of `mark`, numbered `1..=count`.
fn sleeps(mark: &str, count: u32) -> Vec<String> {
    (1..=count).map(|n| format!("sleep {mark}{n}")).collect()
}

/// Asserts none of `needles` runs (the kernel gets 3 s to finish).
fn assert_gone(needles: &[String]) {
    let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
    assert_no_process_left(&needles);
}

/// A shell line whose children hide from the tag every way a command can
/// by itself: a changed tag, an unset one, an orphan, a new session, no
/// environment at all, and the tagged process replaced by an untagged one.
fn hiding(mark: &str) -> String {
    format!(
        "REMEX_RUN_ID=x sleep {mark}1 & env -u REMEX_RUN_ID sleep {mark}2 & \
         (env -u REMEX_RUN_ID sleep {mark}3 &); setsid env -u REMEX_RUN_ID sleep {mark}4 & \
         nohup env -i sleep {mark}5 >/dev/null 2>&1 & exec env -u REMEX_RUN_ID sleep {mark}6"
    )
}

/// Starts a job of [`hiding`] on every host; its id, once its processes
/// run.
fn start_hiding(served: &Served, token: &str, mark: &str) -> String {
    let accepted = json_of(
        served.post(
            token,
            "/v1/runs",
            &json!({"targets": "all", "raw": hiding(mark)}),
        ),
        202,
    );
    wait_running(&sleeps(mark, 6));
    accepted["job_id"].as_str().unwrap().to_owned()
}

/// `(pid, parent pid)` of every process.
fn process_table() -> Vec<(u32, u32)> {
    let mut table = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
        if let Some(ppid) = after.split(' ').nth(1).and_then(|p| p.parse().ok()) {
            table.push((pid, ppid));
        }
    }
    table
}

/// Kills (SIGKILL) the sshd processes serving lab host `host`'s
/// connections — a connection cut from outside; the commands they started
/// go on running. How many it killed.
fn cut_connections(lab: &TestLab, host: &str) -> usize {
    let pid_file = lab.path().join("hosts").join(host).join("sshd.pid");
    let listener: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let table = process_table();
    let children: Vec<u32> = table
        .iter()
        .filter(|(_, ppid)| *ppid == listener)
        .map(|(pid, _)| *pid)
        .collect();
    // The connection's processes: the listener's children and theirs
    // that are sshd (privilege separation), not the commands below them.
    let mut sshd = Vec::new();
    for pid in children {
        sshd.push(pid);
        for (child, ppid) in &table {
            let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
            if *ppid == pid && cmdline.starts_with(b"sshd:") {
                sshd.push(*child);
            }
        }
    }
    for pid in &sshd {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    sshd.len()
}

/// Job `id` once it ended (waits up to 60 s).
fn ended(served: &Served, token: &str, id: &str) -> Value {
    let job = json_of(served.get(token, &format!("/v1/jobs/{id}?wait=60s")), 200);
    assert!(
        !matches!(job["state"].as_str(), Some("queued" | "running")),
        "{job}"
    );
    job
}

#[test]
fn fields_sshd_would_drop_the_connection_for_are_refused_and_harm_no_other_job() {
    let lab = TestLab::new(2);
    let served = Served::start(&lab.config());
    let victim = served.token("victim", "exec", "all");
    let attacker = served.token("attacker", "exec,script", "all");
    let m = mark(1);
    let _leftovers = Leftovers(vec![m.clone()]);
    // Another token's job, running on vm01's shared connection throughout.
    let running = json_of(
        served.post(
            &victim,
            "/v1/runs",
            &json!({"targets": "vm01", "command": ["sh", "-c", "echo begin; sleep 8.$1; echo end-$1", "x", m]}),
        ),
        202,
    );
    wait_running(&[format!("sleep 8.{m}")]);
    let started = runs_started(&lab);
    let big = |n: usize| "a".repeat(n);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"command": ["echo", "a\u{0}b"]}), "command[1]"),
        (json!({"raw": "echo a\u{0}b"}), "raw"),
        (
            json!({"command": ["true"], "env": {"A": "x\u{0}"}}),
            "env.A",
        ),
        (json!({"command": ["true"], "env": {"A\u{0}": "x"}}), "env"),
        (
            json!({"command": ["true"], "secret_env": {"T": "s\u{0}"}}),
            "secret_env.T",
        ),
        (json!({"command": ["true"], "cwd": "/tmp\u{0}"}), "cwd"),
        (
            json!({"script": {"body": "echo", "args": ["\u{0}"]}}),
            "script.args[0]",
        ),
        (
            json!({"script": {"body": "echo", "interpreter": "/bin/sh\u{0}"}}),
            "script.interpreter",
        ),
        (
            json!({"script": {"body": "#!/bin/sh\u{0}\necho"}}),
            "script.interpreter",
        ),
        (
            json!({"command": ["true"], "sudo": {"user": "ro\u{0}ot"}}),
            "sudo.user",
        ),
        (
            json!({"command": ["true"], "sudo": {"password": "p\u{0}"}}),
            "sudo.password",
        ),
        (
            json!({"command": ["true"], "sudo": {"password": "p\nq"}}),
            "sudo.password",
        ),
        (json!({"command": ["echo", big(LIMIT)]}), "command"),
        (json!({"command": vec![big(10_000); 14]}), "command"),
        (
            json!({"command": ["echo", "'".repeat(LIMIT / 3)]}),
            "command",
        ),
        (json!({"raw": format!("true #{}", big(300_000))}), "raw"),
        (
            json!({"command": ["true"], "env": {"A": big(LIMIT)}}),
            "env",
        ),
        (
            json!({"command": ["true"], "secret_env": {"A": big(LIMIT)}}),
            "secret_env",
        ),
        (json!({"command": ["true"], "cwd": big(LIMIT)}), "cwd"),
        (
            json!({"script": {"body": "echo", "args": [big(LIMIT)]}}),
            "script.args",
        ),
        (
            json!({"command": ["true"], "sudo": {"user": big(LIMIT)}}),
            "sudo.user",
        ),
        (
            json!({"command": ["true"], "env": {"REMEX_RUN_ID": "x"}}),
            "env",
        ),
        (
            json!({"command": ["true"], "secret_env": {"REMEX_ANYTHING": "x"}}),
            "secret_env",
        ),
    ];
    for (mut body, field) in cases {
        body["targets"] = json!("vm01");
        let sent = served.post(&attacker, "/v1/runs?wait=30s", &body);
        let message = error_of(sent, 400, "bad_request", Some(field));
        assert!(!message.contains("s\u{0}"), "{message}");
    }
    // Duplicate keys, in the request and in a map: refused, naming them.
    for (text, field) in [
        (
            r#"{"targets":"vm02","targets":"vm01","command":["true"]}"#,
            "targets",
        ),
        (
            r#"{"targets":"vm01","command":["true"],"env":{"A":"1","A":"2"}}"#,
            "env.A",
        ),
    ] {
        let sent = served.post_raw(
            &attacker,
            "/v1/runs?wait=30s",
            "application/json",
            text.into(),
        );
        error_of(sent, 400, "bad_request", Some(field));
    }
    assert_eq!(runs_started(&lab), started, "a refused request ran");

    // Just under the limit is fine: the limit is sshd's, not smaller.
    let near = json_of(
        served.post(
            &attacker,
            "/v1/runs?wait=30s",
            &json!({"targets": "vm01", "command": ["sh", "-c", "printf %s \"$1\" | wc -c", "x", big(LIMIT - 200)]}),
        ),
        200,
    );
    assert_eq!(near["results"][0]["ok"], true, "{}", near["results"][0]);
    assert_eq!(
        near["results"][0]["stdout"].as_str().unwrap().trim(),
        (LIMIT - 200).to_string()
    );

    // The other token's job went on undisturbed on the same connection.
    let job = ended(&served, &victim, running["job_id"].as_str().unwrap());
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(
        job["report"]["results"][0]["stdout"],
        format!("begin\nend-{m}\n")
    );
    let log = lab.sshd_log("vm01");
    for broken in [
        "invalid format",
        "Bad packet length",
        "Connection corrupted",
    ] {
        assert!(!log.contains(broken), "sshd: {broken}\n{log}");
    }
    assert_eq!(
        lab.sshd_log("vm01").matches("Accepted publickey").count(),
        1,
        "the shared connection was dropped and made again"
    );
}

#[test]
fn the_command_line_refuses_remex_names_nul_bytes_and_oversized_lines() {
    let lab = TestLab::new(1);
    let m = mark(2);
    let _leftovers = Leftovers(vec![m.clone()]);
    // The attack of the issue: a tag set by hand, to escape the reaper.
    let run = lab
        .remex()
        .args(["exec", "vm01", "--env", "REMEX_RUN_ID=x", "--timeout", "2s"])
        .args(["--", "sh", "-c"])
        .arg(format!("sleep {m}1 & sleep {m}2"))
        .run()
        .expect_code(2);
    assert!(
        run.stderr().contains("`REMEX_RUN_ID` is reserved"),
        "{}",
        run.stderr()
    );
    for name in ["REMEX_", "REMEX_HOST"] {
        lab.remex()
            .args(["exec", "vm01", "--env", &format!("{name}=x"), "--", "true"])
            .run()
            .expect_code(2);
    }
    // The same request as a file: NUL bytes and oversized lines, named.
    for (request, field) in [
        (
            json!({"targets": "vm01", "command": ["echo", "a\u{0}"]}),
            "command[1]",
        ),
        (
            json!({"targets": "vm01", "raw": "a".repeat(LIMIT + 1)}),
            "raw",
        ),
        (
            json!({"targets": "vm01", "command": ["true"], "cwd": "\u{0}"}),
            "cwd",
        ),
    ] {
        let run = lab
            .remex()
            .args(["exec", "--request", "-"])
            .stdin(request.to_string().as_bytes())
            .run()
            .expect_code(2);
        assert!(
            run.stderr().contains(&format!("`{field}`")),
            "{field}: {}",
            run.stderr()
        );
    }
    assert_eq!(runs_started(&lab), 0, "a refused request ran");
    assert!(processes_matching(&format!("sleep {m}1")).is_empty());
}

#[test]
fn a_timeout_stops_every_process_that_hides_from_the_tag() {
    let lab = TestLab::new(1);
    for (n, mode) in ["argv", "raw", "pty", "sudo"].into_iter().enumerate() {
        let m = mark(3 + n as u32);
        let _leftovers = Leftovers(vec![m.clone()]);
        let line = hiding(&m);
        let mut remex = lab
            .remex()
            .args(["--json", "exec", "vm01", "--timeout", "3s"]);
        remex = match mode {
            "argv" => remex.args(["--", "sh", "-c", &line]),
            "raw" => remex.args(["--raw", &line]),
            "pty" => remex.args(["--pty", "--", "sh", "-c", &line]),
            _ => remex.args(["--sudo", "--", "sh", "-c", &line]),
        };
        let run = remex.run();
        let result = &run.json()["results"][0];
        assert_eq!(result["error"]["kind"], "timeout", "{mode}: {result}");
        assert!(
            result["error"]["message"]
                .as_str()
                .unwrap()
                .contains("remex stopped it and its child processes"),
            "{mode}: {result}"
        );
        assert_gone(&sleeps(&m, 6));
    }
}

#[test]
fn a_cancelled_job_stops_every_process_that_hides_from_the_tag() {
    let lab = TestLab::new(2);
    let served = Served::start(&lab.config());
    let token = served.token("ops", "exec", "all");
    let m = mark(8);
    let _leftovers = Leftovers(vec![m.clone()]);
    let job = start_hiding(&served, &token, &m);
    let cancelled = served.post(&token, &format!("/v1/jobs/{job}/cancel"), &json!({}));
    assert_eq!(cancelled.status().as_u16(), 202);
    let done = ended(&served, &token, &job);
    assert_eq!(done["state"], "cancelled", "{done}");
    assert_gone(&sleeps(&m, 6));
}

#[test]
fn a_connection_cut_from_outside_fails_every_job_on_it_and_stops_their_processes() {
    let lab = TestLab::new(1);
    let served = Served::start(&lab.config());
    let one = served.token("one", "exec", "all");
    let two = served.token("two", "exec", "all");
    let (m1, m2) = (mark(9), mark(0));
    let _leftovers = Leftovers(vec![m1.clone(), m2.clone()]);
    let first = json_of(
        served.post(
            &one,
            "/v1/runs",
            &json!({"targets": "vm01", "command": ["sh", "-c", format!("sleep {m1}1 & sleep {m1}2")]}),
        ),
        202,
    );
    let second = json_of(
        served.post(
            &two,
            "/v1/runs",
            &json!({"targets": "vm01", "raw": hiding(&m2)}),
        ),
        202,
    );
    let mut all = sleeps(&m1, 2);
    all.extend(sleeps(&m2, 6));
    wait_running(&all);
    assert!(
        cut_connections(&lab, "vm01") > 0,
        "no sshd connection to cut"
    );
    for (token, job) in [(&one, &first), (&two, &second)] {
        let done = ended(&served, token, job["job_id"].as_str().unwrap());
        assert_eq!(done["state"], "failed", "{done}");
        let error = &done["report"]["results"][0]["error"];
        assert_eq!(error["kind"], "io", "{error}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("the connection was lost while the command ran"),
            "{message}"
        );
        assert!(message.contains("through a new connection"), "{message}");
    }
    assert_gone(&all);
    // The service goes on: the next job gets a fresh connection.
    let next = json_of(
        served.post(
            &one,
            "/v1/runs?wait=30s",
            &json!({"targets": "vm01", "command": ["true"]}),
        ),
        200,
    );
    assert_eq!(next["summary"]["ok"], 1, "{next}");
}

#[test]
fn a_restart_after_kill_9_stops_the_interrupted_jobs_processes_before_marking_them() {
    let lab = TestLab::new(2);
    let mut served = Served::start(&lab.config());
    let token = served.token("ops", "exec,script", "all");
    let m = mark(7);
    let _leftovers = Leftovers(vec![m.clone()]);
    let job = start_hiding(&served, &token, &m);
    served.kill();
    std::thread::sleep(Duration::from_secs(1));
    // They outlive the service (so this test can fail)…
    wait_running(&sleeps(&m, 6));
    // …until it starts again: it answers only once they are stopped.
    let served = Served::start(&lab.config());
    assert_gone(&sleeps(&m, 6));
    let done = json_of(served.get(&token, &format!("/v1/jobs/{job}")), 200);
    assert_eq!(done["state"], "interrupted", "{done}");
    let error = done["error"].as_str().unwrap();
    for host in ["vm01 (", "vm02 ("] {
        assert!(error.contains(host), "{error}");
    }
    assert!(error.contains("processes)"), "{error}");
    let events = sse(&served, &token, &job, None);
    let last = events.last().unwrap();
    assert_eq!(last.1, "job_finished");
    assert_eq!(last.2["state"], "interrupted");
    // Audited as `exec.stop` of the job's run, one start and end per host.
    let all = records(&lab);
    let stops: Vec<&Value> = all
        .iter()
        .filter(|r| r["run"] == job.as_str() && r["op"] == "exec.stop")
        .collect();
    for host in ["vm01", "vm02"] {
        let of = |event: &str| {
            stops
                .iter()
                .filter(|r| r["host"] == host && r["event"] == event)
                .count()
        };
        assert_eq!((of("start"), of("end")), (1, 1), "{host}: {stops:#?}");
    }
    assert!(
        stops.iter().any(|r| r["event"] == "end"
            && r["action"]
                .as_str()
                .is_some_and(|a| a.starts_with("stopped "))),
        "{stops:#?}"
    );
    assert_verifies(&lab);
}

#[test]
fn output_without_newlines_comes_in_marked_pieces_in_bounded_memory() {
    let lab = TestLab::new(1);
    let served = Served::start(&lab.config());
    let token = served.token("ops", "exec", "all");
    let piece = remex::exec::MAX_LINE;
    // A long line, then a short one: pieces of MAX_LINE marked `cut`, the
    // rest of the line unmarked, then the next line.
    let report = json_of(
        served.post(
            &token,
            "/v1/runs?wait=60s",
            &json!({"targets": "vm01", "command": ["sh", "-c", "head -c 200000 /dev/zero | tr '\\0' x; echo; echo next"]}),
        ),
        200,
    );
    let job = report["run_id"].as_str().unwrap();
    let output: Vec<Value> = sse(&served, &token, job, None)
        .into_iter()
        .filter(|(_, kind, _)| kind == "output")
        .map(|(_, _, data)| data)
        .collect();
    let shape: Vec<(usize, bool)> = output
        .iter()
        .map(|o| (o["line"].as_str().unwrap().len(), o["cut"] == true))
        .collect();
    let rest = 200_000 - 3 * piece;
    assert_eq!(
        shape,
        [
            (piece, true),
            (piece, true),
            (piece, true),
            (rest, false),
            (4, false)
        ],
    );

    // 24 MiB without a newline cost no more memory than 24 MiB in lines of
    // 100 (the whole line was held before: 24 MiB more at least; the
    // margin of 16 MiB is for the allocator's moods on a loaded machine:
    // 12 MiB more has been seen), with
    // every line handed on as it comes (`--stream`; the service stops
    // handing lines on past its `max_output`).
    let peak_of = |command: &str| {
        let out = std::process::Command::new("/usr/bin/time")
            .args(["-f", "%M"])
            .arg(env!("CARGO_BIN_EXE_remex"))
            .arg("--config")
            .arg(lab.config())
            .args([
                "exec",
                "vm01",
                "--stream",
                "--max-output",
                "1M",
                "--",
                "sh",
                "-c",
                command,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let kb: u64 = stderr
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap();
        kb / 1024
    };
    let stream = "head -c 25165824 /dev/zero | tr '\\0' x";
    let lines = peak_of(&format!("{stream} | fold -w 100"));
    let one_line = peak_of(stream);
    assert!(
        one_line < lines + 16,
        "peak RSS {one_line} MiB for one long line, {lines} MiB for the same bytes in lines"
    );
}

/// Strings for generated bodies: harmless as arguments, environment,
/// directories and stdin — and the edges (NUL, remex's names, sizes).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-zA-Z0-9_ ./'\"$-]{0,10}",
        1 => Just("REMEX_RUN_ID".to_owned()),
        1 => Just("a\u{0}b".to_owned()),
        1 => Just("x\ny".to_owned()),
        1 => prop_oneof![Just(LIMIT - 300), Just(LIMIT + 1)].prop_map(|n| "x".repeat(n)),
    ]
}

/// What a generated body runs: only harmless programs (the lab's hosts are
/// this machine), with generated arguments.
fn what() -> impl Strategy<Value = (String, Value)> {
    let program = prop::sample::select(vec!["true", "false", "echo", "printf"]);
    prop_oneof![
        (program, prop::collection::vec(text(), 0..3)).prop_map(|(program, args)| {
            let mut argv = vec![program.to_owned()];
            argv.extend(args);
            ("command".to_owned(), json!(argv))
        }),
        prop::sample::select(vec![
            "true".to_owned(),
            "echo raw; exit 3".to_owned(),
            "echo \"$REMEX_RUN_ID\" | wc -c".to_owned(),
            "true \u{0}".to_owned(),
            format!("true #{}", "x".repeat(LIMIT)),
        ])
        .prop_map(|raw| ("raw".to_owned(), json!(raw))),
        (
            prop::sample::select(vec!["echo s", "#!/bin/sh\nexit 0\n", "#!/bin/sh\u{0}\n"]),
            prop::collection::vec(text(), 0..2),
            prop::option::of(prop::sample::select(vec!["/bin/sh", "/bin/sh\u{0}"])),
        )
            .prop_map(|(body, args, interpreter)| {
                let mut script = json!({"body": body, "args": args});
                if let Some(interpreter) = interpreter {
                    script["interpreter"] = json!(interpreter);
                }
                ("script".to_owned(), script)
            }),
    ]
}

/// A generated body for `POST /v1/runs`: what to run, some of the other
/// fields with generated values, and now and then an unknown or duplicate
/// key.
fn body() -> impl Strategy<Value = String> {
    let name = || prop_oneof![3 => "[A-Z_][A-Z0-9_]{0,6}", 1 => text()];
    let env = move || prop::collection::vec((name(), text()), 0..3);
    (
        prop::sample::select(vec!["vm01", "vm01", "vm01", "vm01", "vm0*", "nope", ""]),
        prop::option::weighted(0.95, what()),
        prop::option::weighted(0.3, env()),
        prop::option::weighted(0.2, env()),
        prop::option::weighted(0.2, text()),
        prop::option::weighted(0.2, text()),
        prop::option::weighted(0.1, (prop::option::of(text()), prop::option::of(text()))),
        prop::option::weighted(0.3, prop::sample::select(vec!["3s", "0", "none!", "1m"])),
        prop::option::weighted(0.2, any::<bool>()),
        prop::option::weighted(0.1, "[a-z]{1,8}"),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(
                targets,
                what,
                env,
                secret_env,
                cwd,
                stdin,
                sudo,
                timeout,
                pty,
                unknown,
                duplicate,
            )| {
                let mut fields: Vec<(String, Value)> = vec![("targets".into(), json!(targets))];
                fields.extend(what);
                let map = |pairs: Vec<(String, String)>| {
                    Value::Object(
                        pairs
                            .into_iter()
                            .map(|(k, v)| (k, json!(v)))
                            .collect::<Map<_, _>>(),
                    )
                };
                fields.extend(env.map(|e| ("env".into(), map(e))));
                fields.extend(secret_env.map(|e| ("secret_env".into(), map(e))));
                fields.extend(cwd.map(|c| ("cwd".into(), json!(c))));
                fields.extend(stdin.map(|s| ("stdin".into(), json!(s))));
                fields.extend(sudo.map(|(user, password)| {
                    ("sudo".into(), json!({"user": user, "password": password}))
                }));
                fields.push(("timeout".into(), json!(timeout.unwrap_or("5s"))));
                fields.extend(pty.map(|p| ("pty".into(), json!(p))));
                fields.extend(unknown.map(|u| (u, json!(1))));
                if duplicate {
                    fields.push(fields[0].clone());
                }
                let members: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{}:{v}", json!(k)))
                    .collect();
                format!("{{{}}}", members.join(","))
            },
        )
}

#[test]
fn generated_bodies_are_each_a_4xx_with_nothing_run_or_a_valid_run() {
    let lab = TestLab::new(2);
    let served = Served::start(&lab.config());
    let token = served.token("fuzz", "exec,script", "all");
    let bystander = served.token("bystander", "exec", "all");
    let m = mark(6);
    // Another token's job on the same host and connection, all along: it
    // ends when the batch is done (or after 5 minutes, should the test
    // fail before).
    let go = lab.path().join(format!("go-{m}"));
    let running = json_of(
        served.post(
            &bystander,
            "/v1/runs",
            &json!({"targets": "vm01", "timeout": "none", "command": ["sh", "-c", "i=0; while [ ! -e \"$1\" ] && [ $i -lt 3000 ]; do sleep 0.1; i=$((i + 1)); done; echo survived", "x", go]}),
        ),
        202,
    );
    // Its `start` record is on disk before the batch counts them.
    let deadline = Instant::now() + Duration::from_secs(20);
    while runs_started(&lab) == 0 {
        assert!(Instant::now() < deadline, "the bystander never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut runner = TestRunner::deterministic();
    let strategy = body();
    let (mut refused, mut ran) = (0, 0);
    for _ in 0..150 {
        let text = strategy.new_tree(&mut runner).unwrap().current();
        let before = runs_started(&lab);
        let answer = served.post_raw(
            &token,
            "/v1/runs?wait=60s",
            "application/json",
            text.clone().into_bytes(),
        );
        let status = answer.status().as_u16();
        let body: Value = serde_json::from_str(&answer.text().unwrap())
            .unwrap_or_else(|e| panic!("{status}, not JSON ({e}) for {text:.300}"));
        match status {
            400..=499 => {
                let error = &body["error"];
                assert!(error["kind"].is_string(), "{body} for {text:.300}");
                assert!(error["message"].is_string(), "{body}");
                assert!(
                    error["field"].is_string() || error["field"].is_null(),
                    "{body}"
                );
                assert_eq!(
                    runs_started(&lab),
                    before,
                    "a refused body ran: {text:.300}"
                );
                refused += 1;
            }
            200 => {
                assert_eq!(body["version"], 2, "{body}");
                let results = body["results"].as_array().unwrap();
                assert!(!results.is_empty(), "{body}");
                for result in results {
                    let kind = result["error"]["kind"].as_str().unwrap_or("none");
                    assert!(
                        !matches!(kind, "io" | "protocol"),
                        "{result} for {text:.300}"
                    );
                }
                ran += 1;
            }
            other => panic!("{other}: {body} for {text:.300}"),
        }
    }
    assert!(refused >= 20 && ran >= 20, "refused {refused}, ran {ran}");
    std::fs::write(&go, "").unwrap();
    let job = ended(&served, &bystander, running["job_id"].as_str().unwrap());
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["report"]["results"][0]["stdout"], "survived\n");
}

#[test]
fn a_jobs_stored_request_keeps_no_secret_the_audit_log_hides() {
    let lab = TestLab::new(1);
    let served = Served::start(&lab.config());
    let token = served.token("ops", "exec", "all");
    let secrets = ["hunter2-x7", "tok-sekrit-1", "pw-sekrit-2", "env-sekrit-3"];
    let report = json_of(
        served.post(
            &token,
            "/v1/runs?wait=30s",
            &json!({
                "targets": "vm01",
                "command": ["true", "password=hunter2-x7", "--token", "tok-sekrit-1"],
                "env": {"URL": "https://u:pw-sekrit-2@h"},
                "secret_env": {"T": "env-sekrit-3"},
            }),
        ),
        200,
    );
    assert_eq!(report["summary"]["ok"], 1, "{report}");
    // Nothing of them in the store's files (the database and its WAL), nor
    // in the audit log.
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(lab.path().join("service"))
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .collect();
    files.push(crate::util::log_path(&lab));
    assert!(files.len() >= 2, "{files:?}");
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        for secret in secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} in {}",
                file.display()
            );
        }
    }
}
