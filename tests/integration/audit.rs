//! The audit log as remex writes it: a start record per host before it is
//! contacted, an end record with the outcome, redaction, fail-closed,
//! concurrency and crashes, and `remex audit verify|tail|show`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{Remex, TestLab, assert_verifies, log_path, of_run, records, running_as_root};

#[test]
fn every_host_gets_a_start_record_before_its_end_record() {
    let lab = TestLab::new(3);
    let run = lab
        .remex()
        .args([
            "--json",
            "--actor",
            "n8n-deploy",
            "exec",
            "all",
            "--",
            "echo",
            "hi",
        ])
        .run()
        .expect_code(0);
    let report = run.json();
    let id = report["run_id"].as_str().unwrap().to_owned();
    assert!(!id.is_empty(), "{report}");
    let all = records(&lab);
    let mine = of_run(&all, &id);
    assert_eq!(mine.len(), 6, "{all:#?}");
    // All starts are committed as one batch before any host is contacted.
    for (i, record) in mine.iter().enumerate() {
        let expected = if i < 3 { "start" } else { "end" };
        assert_eq!(record["event"], expected, "{record}");
        assert_eq!(record["op"], "exec");
        assert_eq!(record["workflow"], "n8n-deploy");
        assert!(record["actor"].as_str().is_some_and(|a| !a.is_empty()));
        assert!(
            record["orchestrator"]
                .as_str()
                .is_some_and(|a| !a.is_empty())
        );
    }
    for host in ["vm01", "vm02", "vm03"] {
        let start = mine
            .iter()
            .find(|r| r["host"] == host && r["event"] == "start")
            .unwrap();
        assert_eq!(start["argv"], serde_json::json!(["echo", "hi"]));
        assert_eq!(start["port"], lab.port());
        assert!(start["address"].as_str().unwrap().starts_with("127.0."));
        assert!(start["user"].is_string());
        let end = mine
            .iter()
            .find(|r| r["host"] == host && r["event"] == "end")
            .unwrap();
        assert_eq!(end["exit_code"], 0);
        assert!(end["duration_ms"].is_u64());
        let host_key = end["host_key"].as_str().unwrap();
        assert!(host_key.starts_with("SHA256:"), "{end}");
        let reported = report["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["host"] == host)
            .unwrap();
        assert_eq!(reported["host_key"], host_key);
    }
    // The chain, and reading it back by run.
    assert_verifies(&lab);
    let shown = lab
        .remex()
        .args(["--json", "audit", "show", "--run", &id])
        .run()
        .expect_code(0)
        .json();
    assert_eq!(shown["records"].as_array().unwrap().len(), 6);
    let human = lab
        .remex()
        .args(["audit", "show", "--run", &id, "--host", "vm02"])
        .run()
        .expect_code(0)
        .stdout();
    assert_eq!(human.lines().count(), 2, "{human}");
    assert!(human.contains(" start exec vm02 "), "{human}");
    assert!(human.contains("exit 0"), "{human}");
}

#[test]
fn scripts_checks_and_failures_are_recorded_with_their_outcome() {
    let lab = TestLab::new(2);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("facts.sh");
    std::fs::write(&script, "#!/bin/sh\necho \"$1\"\nexit 3\n").unwrap();
    lab.remex()
        .args(["script", "vm01"])
        .arg(&script)
        .args(["--", "an arg"])
        .run()
        .expect_code(1);
    lab.remex()
        .args(["hosts", "check", "all"])
        .run()
        .expect_code(0);
    lab.lab.stop_host("vm02").unwrap();
    lab.remex()
        .args(["exec", "vm02", "--", "true"])
        .run()
        .expect_code(1);

    let all = records(&lab);
    let sha = {
        use sha2::Digest as _;
        hex(&sha2::Sha256::digest(std::fs::read(&script).unwrap()))
    };
    let start = all
        .iter()
        .find(|r| r["op"] == "script" && r["event"] == "start")
        .unwrap();
    assert_eq!(start["script_sha256"], sha.as_str());
    assert_eq!(start["argv"], serde_json::json!(["facts.sh", "an arg"]));
    let end = all
        .iter()
        .find(|r| r["op"] == "script" && r["event"] == "end")
        .unwrap();
    assert_eq!(end["exit_code"], 3);
    assert_eq!(end["error_kind"], "exit");
    let checks: Vec<_> = all.iter().filter(|r| r["op"] == "check").collect();
    assert_eq!(checks.len(), 4, "a start and an end per host");
    let unreachable = all
        .iter()
        .find(|r| r["op"] == "exec" && r["event"] == "end" && r["host"] == "vm02")
        .unwrap();
    assert_eq!(unreachable["error_kind"], "connect", "{unreachable}");

    let failed = lab
        .remex()
        .args(["--json", "audit", "show", "--failed"])
        .run()
        .expect_code(0)
        .json();
    let failed = failed["records"].as_array().unwrap();
    assert_eq!(failed.len(), 2, "{failed:#?}");
    assert_verifies(&lab);

    let tail = lab
        .remex()
        .args(["audit", "tail", "-n", "3"])
        .run()
        .expect_code(0)
        .stdout();
    assert_eq!(tail.lines().count(), 3, "{tail}");
    assert!(tail.lines().last().unwrap().contains("[connect]"), "{tail}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Each kind of secret is replaced in the log, in stdout (human and JSON)
/// and in stderr, even with trace logging.
#[test]
fn secrets_are_redacted_in_the_log_and_the_output() {
    let lab = TestLab::new(1);
    let config = lab.config_variant(
        "redact.yml",
        &[("audit:\n", "audit:\n  redact: ['internal-[0-9]{6}']\n")],
    );
    let secret = "s3cr3t-V4LUE-from-env";
    let cases: Vec<(Vec<&str>, &str)> = vec![
        // --secret-env K=V: the value, wherever it shows up.
        (
            vec![
                "--secret-env",
                "API_TOKEN_X=s3cr3t-V4LUE-from-env",
                "--",
                "sh",
                "-c",
                "echo got $API_TOKEN_X; echo s3cr3t-V4LUE-from-env >&2; exit 1",
            ],
            secret,
        ),
        // --secret-env K: the value of $K in remex's environment.
        (
            vec![
                "--secret-env",
                "TEST_SECRET_FROM_ENV",
                "--",
                "echo",
                "s3cr3t-V4LUE-from-env",
            ],
            secret,
        ),
        // A default pattern, in argv and output.
        (
            vec!["--", "echo", "password=hunter2-xyzzy"],
            "hunter2-xyzzy",
        ),
        (
            vec!["--", "echo", "Authorization: Basic Zm9vOmJhcg=="],
            "Zm9vOmJhcg==",
        ),
        // The config's own pattern.
        (
            vec!["--raw", "echo ticket internal-123456 done"],
            "internal-123456",
        ),
    ];
    for (args, hidden) in cases {
        for json in [false, true] {
            let mut remex = Remex::new()
                .arg("--config")
                .arg(&config)
                .arg("-vv")
                .env("TEST_SECRET_FROM_ENV", secret);
            if json {
                remex = remex.arg("--json");
            }
            let run = remex.args(["exec", "vm01"]).args(&args).run();
            assert!(run.code() == 0 || run.code() == 1, "{}", run.stderr());
            let (stdout, stderr) = (run.stdout(), run.stderr());
            assert!(
                !stdout.contains(hidden),
                "{args:?}: stdout shows it:\n{stdout}"
            );
            assert!(
                !stderr.contains(hidden),
                "{args:?}: stderr shows it:\n{stderr}"
            );
            assert!(
                stdout.contains("[REDACTED]"),
                "{args:?}: the output says where:\n{stdout}"
            );
        }
    }
    let text = std::fs::read_to_string(log_path(&lab)).unwrap();
    for hidden in [secret, "hunter2-xyzzy", "Zm9vOmJhcg==", "internal-123456"] {
        assert!(!text.contains(hidden), "the log holds {hidden}:\n{text}");
    }
    assert!(text.contains("password=[REDACTED]"), "{text}");
    assert!(
        text.contains("internal-[REDACTED]") || text.contains("[REDACTED] done"),
        "{text}"
    );
    assert_verifies(&lab);
}

#[test]
fn a_secret_env_value_never_appears_in_a_usage_error() {
    let run = Remex::new()
        .args([
            "exec",
            "all",
            "--secret-env",
            "1BAD=topsecret-zz",
            "--",
            "true",
        ])
        .run()
        .expect_code(2);
    assert!(!run.stderr().contains("topsecret-zz"), "{}", run.stderr());
    let run = Remex::new()
        .args([
            "exec",
            "all",
            "--secret-env",
            "NO_EQUALS_AND_UNSET_XYZ",
            "--",
            "true",
        ])
        .run()
        .expect_code(2);
    assert!(
        run.stderr().contains("NO_EQUALS_AND_UNSET_XYZ"),
        "{}",
        run.stderr()
    );
}

/// The lab hosts' sshd logs now, to compare with later.
fn sshd_logs(lab: &TestLab) -> Vec<String> {
    lab.lab
        .hosts
        .iter()
        .map(|host| lab.sshd_log(&host.name))
        .collect()
}

/// The lab hosts' sshd logs show no connection since `before` (the lab's
/// own readiness probe came before).
fn assert_no_connection_since(lab: &TestLab, before: &[String]) {
    for (host, before) in lab.lab.hosts.iter().zip(before) {
        let log = lab.sshd_log(&host.name);
        let new = log.strip_prefix(before.as_str()).unwrap_or(&log);
        assert!(
            !new.contains("Connection from"),
            "{} was contacted:\n{new}",
            host.name
        );
    }
}

#[test]
fn an_unwritable_log_means_no_host_is_contacted() {
    let lab = TestLab::new(2);
    let before = sshd_logs(&lab);
    // The log's directory would be under a regular file.
    let blocker = lab.path().join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let config = lab.config_variant(
        "blocked.yml",
        &[(
            &format!("path: {}", log_path(&lab).display()),
            &format!("path: {}/audit.jsonl", blocker.display()),
        )],
    );
    for args in [
        vec!["exec", "all", "--", "true"],
        vec!["hosts", "check", "all"],
    ] {
        let run = Remex::new()
            .arg("--config")
            .arg(&config)
            .args(&args)
            .run()
            .expect_code(2);
        let stderr = run.stderr();
        assert!(stderr.contains("audit log"), "{stderr}");
        assert!(stderr.contains("no host was contacted"), "{stderr}");
        assert!(
            stderr.contains("cannot create the audit log directory")
                && stderr.contains("File exists"),
            "the reason: {stderr}"
        );
    }
    assert_no_connection_since(&lab, &before);
}

/// A mounted tmpfs, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(options: &str) -> Tmpfs {
        assert!(
            running_as_root(),
            "THIS TEST NEEDS ROOT: it mounts a small tmpfs. Run the suite as root (CI does)."
        );
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount -t tmpfs -o {options} failed");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_or_read_only_disk_means_no_host_is_contacted() {
    let lab = TestLab::new(1);
    let before = sshd_logs(&lab);
    // Read-only: nothing can be created.
    let read_only = Tmpfs::mount("size=1m,ro");
    // Full: the log opens (its files exist), then the disk fills up.
    let full = Tmpfs::mount("size=64k");
    let mut filler = std::fs::File::create(full.path().join("filler")).unwrap();
    let chunk = vec![0_u8; 4096];
    while std::io::Write::write_all(&mut filler, &chunk).is_ok() {}
    drop(filler);
    for fs in [&read_only, &full] {
        let config = lab.config_variant(
            "disk.yml",
            &[(
                &format!("path: {}", log_path(&lab).display()),
                &format!("path: {}/audit.jsonl", fs.path().display()),
            )],
        );
        let run = Remex::new()
            .arg("--config")
            .arg(&config)
            .args(["exec", "all", "--", "true"])
            .run()
            .expect_code(2);
        let stderr = run.stderr();
        assert!(stderr.contains("audit log"), "{stderr}");
        assert!(
            stderr.contains("Read-only file system") || stderr.contains("No space left on device"),
            "the reason: {stderr}"
        );
        assert!(stderr.contains("no host was contacted"), "{stderr}");
    }
    assert_no_connection_since(&lab, &before);
}

/// Two remex processes at a time, again and again: one contiguous chain,
/// no record torn, every operation recorded.
#[test]
fn concurrent_remex_processes_keep_one_chain() {
    let lab = TestLab::new(8);
    const RUNS: usize = 32; // per process: 32 runs × 8 hosts = 256 operations
    let workers: Vec<_> = (0..2)
        .map(|worker| {
            let config = lab.config();
            std::thread::spawn(move || {
                for _ in 0..RUNS {
                    Remex::new()
                        .arg("--config")
                        .arg(&config)
                        .args(["--actor", &format!("worker-{worker}")])
                        .args(["exec", "all", "--", "true"])
                        .run()
                        .expect_code(0);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let report = assert_verifies(&lab);
    let total = 2 * RUNS * 8 * 2;
    assert_eq!(report["records"], total, "{report}");
    let all = records(&lab);
    let seqs: Vec<u64> = all.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=total as u64).collect::<Vec<_>>());
    for worker in ["worker-0", "worker-1"] {
        let ends = all
            .iter()
            .filter(|r| r["workflow"] == worker && r["event"] == "end" && r["exit_code"] == 0)
            .count();
        assert_eq!(ends, RUNS * 8, "{worker}");
    }
}

#[test]
fn kill_9_mid_run_leaves_a_valid_chain_with_the_start_records() {
    let lab = TestLab::new(3);
    let mut child = Command::new(env!("CARGO_BIN_EXE_remex"))
        .arg("--config")
        .arg(lab.config())
        .args(["exec", "all", "--", "sleep", "4"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the hosts run the command, then kill remex outright.
    let deadline = Instant::now() + Duration::from_secs(20);
    while crate::util::processes_matching("sleep 4").len() < 3 {
        assert!(Instant::now() < deadline, "the commands never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let all = records(&lab);
    let starts = all.iter().filter(|r| r["event"] == "start").count();
    let ends = all.iter().filter(|r| r["event"] == "end").count();
    assert_eq!((starts, ends), (3, 0), "{all:#?}");
    assert_verifies(&lab);
    // The next run carries the chain on.
    lab.remex()
        .args(["exec", "all", "--", "true"])
        .run()
        .expect_code(0);
    let report = assert_verifies(&lab);
    assert_eq!(report["records"], 9);
}

/// `remex audit verify`'s output, asserting that it found a break.
fn verify_broken(lab: &TestLab) -> String {
    lab.remex()
        .args(["audit", "verify"])
        .run()
        .expect_code(1)
        .stdout()
}

#[test]
fn verify_names_the_record_that_was_tampered_with() {
    let lab = TestLab::new(2);
    for _ in 0..2 {
        lab.remex()
            .args(["exec", "all", "--", "true"])
            .run()
            .expect_code(0);
    }
    let path = log_path(&lab);
    let original = std::fs::read_to_string(&path).unwrap();
    // Record 7, the second run's first end record: change its exit code.
    let mut lines: Vec<String> = original.lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 8);
    assert!(lines[6].contains("\"exit_code\":0"), "{}", lines[6]);
    lines[6] = lines[6].replace("\"exit_code\":0", "\"exit_code\":1");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let out = verify_broken(&lab);
    assert!(out.contains("BROKEN"), "{out}");
    assert!(out.contains("audit.jsonl:7"), "names the line: {out}");
    assert!(out.contains("edited"), "{out}");
    assert!(out.contains("records 1 to 6 are intact"), "{out}");
    let json = lab
        .remex()
        .args(["--json", "audit", "verify"])
        .run()
        .expect_code(1)
        .json();
    assert_eq!(json["ok"], false);
    assert_eq!(json["broken"]["seq"], 7);
    assert_eq!(json["broken"]["line"], 7);
    assert_eq!(json["broken"]["kind"], "edited");

    // The last record cut off: verify says so, and the writer refuses to
    // go on from a log that does not continue its head (fail closed).
    let cut: String = original.lines().take(7).map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, cut).unwrap();
    let out = verify_broken(&lab);
    assert!(out.contains("truncated"), "{out}");
    let run = lab
        .remex()
        .args(["exec", "all", "--", "true"])
        .run()
        .expect_code(2);
    // The suggestion carries the --config the command was given.
    assert!(
        run.stderr().contains(&format!(
            "`remex --config {} audit verify`",
            lab.config().display()
        )),
        "{}",
        run.stderr()
    );

    // Restored, but the head file deleted.
    std::fs::write(&path, &original).unwrap();
    assert_verifies(&lab);
    let head = path.with_file_name("audit.jsonl.head");
    std::fs::remove_file(&head).unwrap();
    let out = verify_broken(&lab);
    assert!(out.contains("head missing"), "{out}");
}

#[test]
fn turning_auditing_off_is_loud() {
    let lab = TestLab::new(1);
    let config = lab.config_variant("off.yml", &[("audit:\n", "audit:\n  enabled: false\n")]);
    let run = Remex::new()
        .arg("--config")
        .arg(&config)
        .args(["exec", "all", "--", "true"])
        .run()
        .expect_code(0);
    assert!(run.stderr().contains("auditing is off"), "{}", run.stderr());
    assert!(records(&lab).is_empty());
}

#[test]
fn the_log_is_private() {
    let lab = TestLab::new(1);
    lab.remex()
        .args(["exec", "all", "--", "true"])
        .run()
        .expect_code(0);
    let path = log_path(&lab);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
}

#[test]
fn tail_follow_prints_records_as_they_are_written() {
    use std::io::BufRead as _;
    let lab = TestLab::new(1);
    // Records from before are not repeated by `-n 0`.
    lab.remex()
        .args(["exec", "all", "--", "true"])
        .run()
        .expect_code(0);
    let mut follower = Command::new(env!("CARGO_BIN_EXE_remex"))
        .arg("--config")
        .arg(lab.config())
        .args(["--json", "audit", "tail", "-n", "0", "--follow"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Give the follower time to read where the log ends (were it late, it
    // would skip the new records: the test would fail, not pass).
    std::thread::sleep(Duration::from_millis(500));
    let stdout = follower.stdout.take().unwrap();
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if sender.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let report = lab
        .remex()
        .args(["--json", "exec", "all", "--", "true"])
        .run()
        .expect_code(0)
        .json();
    let run = report["run_id"].as_str().unwrap().to_owned();
    let mut events = Vec::new();
    while events.len() < 2 {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("the follower printed nothing new within 20 s");
        let record: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(record["run"], run.as_str(), "{record}");
        events.push(record["event"].as_str().unwrap().to_owned());
    }
    assert_eq!(events, ["start", "end"]);
    follower.kill().unwrap();
    follower.wait().unwrap();
}

#[test]
fn a_rotated_log_verifies_as_one_chain() {
    let lab = TestLab::new(4);
    let config = lab.config_variant("small.yml", &[("audit:\n", "audit:\n  max_size: 4K\n")]);
    for _ in 0..6 {
        Remex::new()
            .arg("--config")
            .arg(&config)
            .args(["exec", "all", "--", "true"])
            .run()
            .expect_code(0);
    }
    let report = Remex::new()
        .arg("--config")
        .arg(&config)
        .args(["--json", "audit", "verify"])
        .run()
        .expect_code(0)
        .json();
    assert_eq!(report["records"], 48, "{report}");
    assert!(report["files"].as_array().unwrap().len() > 2, "{report}");
    let shown = Remex::new()
        .arg("--config")
        .arg(&config)
        .args(["--json", "audit", "show", "--op", "exec"])
        .run()
        .expect_code(0)
        .json();
    assert_eq!(shown["records"].as_array().unwrap().len(), 48);
}

/// The records of operation `op` with `event`, as (host, action,
/// fingerprint) triples.
fn changes(all: &[Value], op: &str, event: &str) -> Vec<(String, String, String)> {
    all.iter()
        .filter(|r| r["op"] == op && r["event"] == event)
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (text("host"), text("action"), text("fingerprint"))
        })
        .collect()
}

#[test]
fn key_operations_and_host_key_changes_are_recorded_with_fingerprints() {
    let lab = TestLab::new(2);
    let generated = lab
        .remex()
        .args([
            "--json",
            "--actor",
            "rotation-job",
            "keys",
            "generate",
            "--name",
            "ops2",
        ])
        .run()
        .expect_code(0)
        .json();
    let fingerprint = generated["key"]["fingerprint"].as_str().unwrap().to_owned();
    let deployed = lab
        .remex()
        .args(["--json", "keys", "deploy", "all", "--name", "ops2"])
        .run()
        .expect_code(0)
        .json();
    let run = deployed["run_id"].as_str().unwrap().to_owned();

    let all = records(&lab);
    let generate = changes(&all, "keys.generate", "key");
    assert_eq!(
        generate,
        [(String::new(), "generated".to_owned(), fingerprint.clone())]
    );
    assert!(
        all.iter()
            .any(|r| r["op"] == "keys.generate" && r["workflow"] == "rotation-job")
    );
    let mine = of_run(&all, &run);
    let starts: Vec<_> = mine.iter().filter(|r| r["event"] == "start").collect();
    assert_eq!(starts.len(), 2);
    for start in &starts {
        assert_eq!(start["fingerprint"], fingerprint.as_str(), "{start}");
        assert_eq!(start["key"], "ops2");
    }
    for host in ["vm01", "vm02"] {
        let actions: Vec<String> = changes(&all, "keys.deploy", "key")
            .into_iter()
            .filter(|(h, _, fp)| h == host && *fp == fingerprint)
            .map(|(_, action, _)| action)
            .collect();
        assert_eq!(actions, ["added", "verified", "now_used"], "{host}");
    }

    // Host keys: forget a pin, trust it again, and pin on first use.
    let pinned = host_key_of(&lab, "vm01");
    lab.remex()
        .args(["hosts", "forget", "vm01"])
        .run()
        .expect_code(0);
    lab.remex()
        .args(["hosts", "trust", "vm01", "--yes"])
        .run()
        .expect_code(0);
    lab.remex()
        .args(["hosts", "forget", "vm02"])
        .run()
        .expect_code(0);
    let accept_new = lab.config_variant(
        "accept-new.yml",
        &[("host_key_policy: strict", "host_key_policy: accept-new")],
    );
    Remex::new()
        .arg("--config")
        .arg(&accept_new)
        .args(["exec", "vm02", "--", "true"])
        .run()
        .expect_code(0);
    let all = records(&lab);
    assert_eq!(
        changes(&all, "hosts.forget", "host_key")[0],
        ("vm01".to_owned(), "removed".to_owned(), pinned.clone())
    );
    assert_eq!(
        changes(&all, "hosts.trust", "host_key"),
        [("vm01".to_owned(), "pinned".to_owned(), pinned)]
    );
    let vm02 = host_key_of(&lab, "vm02");
    assert_eq!(
        changes(&all, "exec", "host_key"),
        [("vm02".to_owned(), "pinned".to_owned(), vm02)]
    );
    assert_verifies(&lab);
}

/// A lab host's key fingerprint, as `remex hosts check` reports it.
fn host_key_of(lab: &TestLab, host: &str) -> String {
    let check = lab
        .remex()
        .args(["--json", "hosts", "check", host])
        .run()
        .expect_code(0)
        .json();
    check["results"][0]["host_key_fingerprint"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn transfers_are_recorded_per_file_with_their_digest() {
    let lab = TestLab::new(2);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("app.conf");
    std::fs::write(&local, "listen 8080\n").unwrap();
    let sha = {
        use sha2::Digest as _;
        hex(&sha2::Sha256::digest(b"listen 8080\n"))
    };
    let remote_dir = tempfile::tempdir().unwrap();
    let remote = remote_dir.path().join("app.conf");
    let up = lab
        .remex()
        .args(["--json", "upload", "all"])
        .arg(&local)
        .arg(&remote)
        .run()
        .expect_code(0)
        .json();
    let back = dir.path().join("back");
    let down = lab
        .remex()
        .args(["--json", "download", "vm01"])
        .arg(&remote)
        .arg(&back)
        .run()
        .expect_code(0)
        .json();
    let all = records(&lab);
    for (report, op, hosts) in [(&up, "upload", 2), (&down, "download", 1)] {
        let mine = of_run(&all, report["run_id"].as_str().unwrap());
        let count = |event: &str| mine.iter().filter(|r| r["event"] == event).count();
        assert_eq!(
            (count("start"), count("file"), count("end")),
            (hosts, hosts, hosts),
            "{op}"
        );
        for record in &mine {
            assert_eq!(record["op"], op);
        }
        for file in mine.iter().filter(|r| r["event"] == "file") {
            assert_eq!(file["sha256"], sha.as_str(), "{file}");
            assert_eq!(file["bytes"], 12);
            assert_eq!(file["action"], "written");
            let paths = file["paths"].as_array().unwrap();
            let (source, destination) = (paths[0].as_str().unwrap(), paths[1].as_str().unwrap());
            if op == "upload" {
                assert_eq!(source, local.display().to_string());
                assert_eq!(destination, remote.display().to_string());
            } else {
                assert_eq!(source, remote.display().to_string());
                assert!(
                    destination.starts_with(&back.display().to_string()),
                    "{destination}"
                );
            }
        }
        for end in mine.iter().filter(|r| r["event"] == "end") {
            assert_eq!(end["sha256"], sha.as_str(), "{end}");
        }
    }
    assert_verifies(&lab);
}

/// The events of run `run`, in order.
fn events(all: &[Value], run: &str) -> Vec<String> {
    of_run(all, run)
        .iter()
        .map(|r| r["event"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn generate_and_prune_are_runs_with_a_start_and_an_end() {
    let lab = TestLab::new(1);
    let remex = |args: &[&str], code: i32| lab.remex().args(args).run().expect_code(code);

    // A key made: start, the key, end.
    let made = remex(&["--json", "keys", "generate", "--name", "k1"], 0).json();
    let run = made["run_id"].as_str().unwrap();
    assert_eq!(made["operation"], "keys.generate");
    let all = records(&lab);
    assert_eq!(events(&all, run), ["start", "key", "end"]);
    let start = of_run(&all, run)[0];
    assert_eq!(start["key"], "k1", "{start}");
    assert!(start.get("host").is_none(), "{start}");
    assert!(of_run(&all, run)[2].get("error").is_none());

    // A key that exists already: refused, and the end record says why.
    let refused = remex(&["keys", "generate", "--name", "k1"], 2);
    assert!(refused.stderr().contains("k1"), "{}", refused.stderr());
    let all = records(&lab);
    let last = all.last().unwrap();
    assert_eq!(last["event"], "end", "{last}");
    assert_eq!(last["op"], "keys.generate", "{last}");
    assert_eq!(last["error_kind"], "keys", "{last}");
    assert_eq!(
        events(&all, last["run"].as_str().unwrap()),
        ["start", "end"]
    );

    // Rotated away, then pruned: start, the key deleted, end.
    remex(&["keys", "deploy", "vm01", "--name", "k1"], 0);
    remex(&["keys", "rotate", "vm01", "--name", "k2"], 0);
    let pruned = remex(&["--json", "keys", "prune"], 0).json();
    assert_eq!(pruned["operation"], "keys.prune");
    assert_eq!(pruned["removed"].as_array().unwrap().len(), 1, "{pruned}");
    let all = records(&lab);
    let run = pruned["run_id"].as_str().unwrap();
    assert_eq!(events(&all, run), ["start", "key", "end"]);
    assert_eq!(of_run(&all, run)[1]["action"], "pruned");
    assert_verifies(&lab);
}

#[test]
fn a_secret_given_to_a_transfer_or_a_key_operation_is_redacted_in_what_it_shows() {
    let lab = TestLab::new(1);
    let secret = "tok3n-Secret-7731";
    let local = lab.path().join("report.txt");
    std::fs::write(&local, "numbers\n").unwrap();
    let remote = lab.path().join(format!("srv/{secret}/report.txt"));
    let shown = |run: &crate::util::Run| format!("{}{}", run.stdout(), run.stderr());

    // A transfer whose path holds the secret: JSON, human output and the
    // audit log show [REDACTED].
    for json in [true, false] {
        let mut remex = lab.remex().env("UPLOAD_TOKEN", secret);
        if json {
            remex = remex.arg("--json");
        }
        let run = remex
            .args(["upload", "vm01", "--mkdir", "--secret-env", "UPLOAD_TOKEN"])
            .arg(&local)
            .arg(&remote)
            .run()
            .expect_code(0);
        assert!(!shown(&run).contains(secret), "{}", shown(&run));
        if json {
            let files = &run.json()["results"][0]["files"];
            assert!(
                files[0]["remote"].as_str().unwrap().contains("[REDACTED]"),
                "{files}"
            );
        }
    }
    assert_eq!(std::fs::read_to_string(&remote).unwrap(), "numbers\n");
    let back = lab.path().join("back");
    let run = lab
        .remex()
        .env("UPLOAD_TOKEN", secret)
        .args(["--json", "download", "vm01", "--secret-env", "UPLOAD_TOKEN"])
        .arg(&remote)
        .arg(&back)
        .run()
        .expect_code(0);
    assert!(!shown(&run).contains(secret), "{}", shown(&run));

    // A key operation naming the secret (a rotation to a key named after
    // it): shown redacted, recorded redacted.
    for (json, key) in [
        (true, format!("k-{secret}")),
        (false, format!("k2-{secret}")),
    ] {
        let mut remex = lab.remex().env("KEY_TOKEN", secret);
        if json {
            remex = remex.arg("--json");
        }
        let run = remex
            .args(["keys", "rotate", "vm01", "--name", &key])
            .args(["--secret-env", "KEY_TOKEN"])
            .run()
            .expect_code(0);
        assert!(!shown(&run).contains(secret), "{}", shown(&run));
        if json {
            let report = run.json();
            assert_eq!(report["key"]["name"], "k-[REDACTED]", "{report}");
        }
    }
    let log = std::fs::read_to_string(log_path(&lab)).unwrap();
    assert!(!log.contains(secret), "the audit log holds the secret");
    assert_verifies(&lab);
}
