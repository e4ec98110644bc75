use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::*;
use crate::audit::{Note, Op, Stored, read_records, verify};

/// Set in a child process: what `child_appender` should do.
const CHILD_ENV: &str = "REMEX_AUDIT_TEST_CHILD";

fn config(dir: &Path) -> AuditConfig {
    AuditConfig {
        path: dir.join("state/remex/audit.jsonl"),
        ..AuditConfig::default()
    }
}

fn start(host: &str) -> Record {
    Record::new(Event::Start, Op::Exec, "run-1")
        .host(host)
        .address("10.0.0.1")
        .port(22_u16)
        .user("ops")
        .argv(["uptime"])
}

fn end(host: &str) -> Record {
    Record::new(Event::End, Op::Exec, "run-1")
        .host(host)
        .exit_code(0_u32)
        .duration_ms(5_u64)
}

fn records(config: &AuditConfig) -> Vec<Stored> {
    read_records(config).unwrap().map(Result::unwrap).collect()
}

fn seqs(config: &AuditConfig) -> Vec<u64> {
    records(config).iter().map(|s| s.record.seq).collect()
}

fn assert_intact(config: &AuditConfig, records: u64) -> crate::audit::VerifyReport {
    let report = verify(config).unwrap();
    assert!(report.ok(), "{:?}", report.broken);
    assert_eq!(report.records, records, "{report:?}");
    report
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn head(config: &AuditConfig) -> Head {
    match Head::read(&LogFiles::new(&config.path).unwrap().head()).unwrap() {
        HeadState::Present(head) => head,
        other => panic!("no head: {other:?}"),
    }
}

fn is_inconsistent(err: &AuditError, why: &str) -> bool {
    matches!(err, AuditError::Inconsistent { reason, .. } if reason.contains(why))
}

#[test]
fn open_creates_a_private_directory_and_file_and_appends_a_chain() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let log = AuditLog::open(&config).unwrap();
    assert!(log.is_enabled());
    assert_eq!(log.path(), Some(config.path.as_path()));
    let state_dir = config.path.parent().unwrap();
    assert_eq!(mode(state_dir), 0o700);
    assert_eq!(mode(&config.path), 0o600);
    assert_eq!(
        mode(&dir.path().join("state/remex/audit.jsonl.head")),
        0o600
    );
    assert_eq!(head(&config).seq, 0);

    let first = log.append(start("vm01")).unwrap();
    let second = log.append(end("vm01")).unwrap();
    assert_eq!((first.seq, second.seq), (1, 2));
    let stored = records(&config);
    assert_eq!(stored[0].record.prev, ZERO_HASH);
    assert_eq!(stored[0].record.hash, first.hash);
    assert_eq!(stored[1].record.prev, first.hash);
    assert_eq!(stored[1].record.v, 1);
    assert_eq!(stored[1].record.actor, origin::local_actor());
    assert_eq!(stored[1].record.orchestrator, origin::hostname());
    assert!(time::parse_rfc3339(&stored[1].record.ts).is_ok());
    assert_eq!(head(&config).seq, 2);
    assert_eq!(head(&config).hash, second.hash);
    assert_intact(&config, 2);

    // A second writer continues the same chain.
    drop(log);
    let log = AuditLog::open(&config).unwrap();
    assert_eq!(log.append(start("vm02")).unwrap().seq, 3);
    assert_intact(&config, 3);
}

#[test]
fn records_are_redacted_and_filled_in() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuditConfig {
        redact: vec![r"pin=(\d+)".into()],
        ..config(dir.path())
    };
    let log = AuditLog::open(&config).unwrap();
    let secret = log
        .redactor()
        .unwrap()
        .with_secrets(["hunter2".to_owned()])
        .unwrap();
    let mut record = start("vm01")
        .argv(["mysql", "--password", "x1", "token=abc", "pin=1234"])
        .command("echo hunter2 Authorization: Basic Zm9v")
        .error("bad password=letmein")
        .actor("ci-bot")
        .workflow("nightly");
    record.command = record.command.map(|c| secret.redact(&c).into_owned());
    log.append(record).unwrap();
    let stored = &records(&config)[0].record;
    assert_eq!(
        stored.argv.as_deref().unwrap(),
        [
            "mysql",
            "--password",
            "[REDACTED]",
            "token=[REDACTED]",
            "pin=[REDACTED]"
        ]
    );
    assert_eq!(
        stored.command.as_deref(),
        Some("echo [REDACTED] Authorization: [REDACTED]")
    );
    assert_eq!(stored.error.as_deref(), Some("bad password=[REDACTED]"));
    assert_eq!(stored.actor, "ci-bot");
    assert_eq!(stored.workflow.as_deref(), Some("nightly"));
    // Every field but the chain's hex digests, which may hold `abc` or
    // `1234` by chance.
    let text = std::fs::read_to_string(&config.path).unwrap();
    let mut fields: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    if let Some(fields) = fields.as_object_mut() {
        fields.remove("prev");
        fields.remove("hash");
    }
    let fields = fields.to_string();
    for secret in ["x1", "abc", "1234", "hunter2", "Zm9v", "letmein"] {
        assert!(!fields.contains(secret), "{secret} in {fields}");
    }
}

#[test]
fn disabled_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuditConfig {
        enabled: false,
        ..config(dir.path())
    };
    let log = AuditLog::open(&config).unwrap();
    assert!(!log.is_enabled());
    assert_eq!(
        log.append(start("vm01")).unwrap(),
        Appended {
            seq: 0,
            hash: String::new()
        }
    );
    log.sync().unwrap();
    assert!(!dir.path().join("state").exists());
    assert!(!AuditLog::disabled().is_enabled());
}

#[test]
fn open_fails_closed_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    // The directory cannot be created: a file is in the way.
    std::fs::write(dir.path().join("state"), "").unwrap();
    let err = AuditLog::open(&config(dir.path())).unwrap_err();
    assert!(matches!(err, AuditError::CreateDir { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("cannot create the audit log directory "),
        "{err}"
    );
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("Not a directory"), "{source}");

    // Disk full: the log becomes /dev/full, where every write fails.
    let dir = tempfile::tempdir().unwrap();
    let config = self::config(dir.path());
    let log = AuditLog::open(&config).unwrap();
    std::fs::remove_file(&config.path).unwrap();
    std::os::unix::fs::symlink("/dev/full", &config.path).unwrap();
    let err = log.append(start("vm01")).unwrap_err();
    assert!(matches!(err, AuditError::Write { .. }), "{err}");
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("No space left on device"), "{source}");

    // Permission denied. Root may write anywhere, so as root the open runs
    // in a child process with the uid and gid of `nobody` (setpriv).
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    let path = locked.join("sub").join("audit.jsonl");
    let root = crate::lab::account::effective_uid().unwrap() == 0;
    let message = if root {
        let output = child_command(&path, 1, "denied", "always")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(!output.status.success(), "the unprivileged open succeeded");
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr)
    } else {
        let config = AuditConfig {
            path,
            ..AuditConfig::default()
        };
        let err = AuditLog::open(&config).unwrap_err();
        format!("{err:?}")
    };
    assert!(
        message.contains("CreateDir") && message.contains("PermissionDenied"),
        "{message}"
    );
}

#[test]
fn a_bad_hmac_key_fails_open() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuditConfig {
        hmac_key_path: Some(dir.path().join("missing.key")),
        ..config(dir.path())
    };
    let err = AuditLog::open(&config).unwrap_err();
    assert!(matches!(err, AuditError::KeyRead { .. }), "{err}");
    assert!(!config.path.exists(), "nothing written");
}

#[test]
fn rotation_continues_the_chain_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuditConfig {
        max_size: 4096,
        ..config(dir.path())
    };
    let log = AuditLog::open(&config).unwrap();
    for i in 0..60 {
        log.append(start(&format!("vm{i:02}"))).unwrap();
    }
    let files = LogFiles::new(&config.path).unwrap();
    let rotated = files.rotated().unwrap();
    assert!(rotated.len() >= 3, "{rotated:?}");
    assert_eq!(rotated[0].0, 1);
    for (_, path) in &rotated {
        let len = std::fs::metadata(path).unwrap().len();
        assert!(len <= 4096 && len > 3000, "{} is {len}", path.display());
    }
    let stored = records(&config);
    assert_eq!(
        stored.iter().map(|s| s.record.seq).collect::<Vec<_>>(),
        (1..=60).collect::<Vec<_>>()
    );
    // The first record of each new file links to the last of the one before.
    for pair in stored.windows(2) {
        assert_eq!(pair[1].record.prev, pair[0].record.hash);
        if pair[1].file != pair[0].file {
            assert_eq!(pair[1].line, 1);
        }
    }
    let report = assert_intact(&config, 60);
    assert_eq!(report.files.len(), rotated.len() + 1);
    assert_eq!(head(&config).file, "audit.jsonl");
}

#[test]
fn a_batch_is_appended_in_order_and_committed_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuditConfig {
        fsync: FsyncPolicy::Start,
        max_size: 4096,
        ..config(dir.path())
    };
    let log = AuditLog::open(&config).unwrap();
    log.append(end("before")).unwrap();
    assert_eq!(head(&config).seq, 0, "an end record waits for a commit");
    // Enough start records to rotate in the middle of the batch.
    let batch: Vec<Record> = (0..40).map(|i| start(&format!("vm{i:02}"))).collect();
    let appended = log.append_all(batch).unwrap();
    assert_eq!(
        appended.iter().map(|a| a.seq).collect::<Vec<_>>(),
        (2..=41).collect::<Vec<_>>()
    );
    assert_eq!(head(&config).seq, 41);
    assert_eq!(head(&config).hash, appended[39].hash);
    assert!(dir.path().join("state/remex/audit.jsonl.1").exists());
    let stored = records(&config);
    assert_eq!(stored[1].record.host.as_deref(), Some("vm00"));
    assert_eq!(stored[40].record.host.as_deref(), Some("vm39"));
    assert!(assert_intact(&config, 41).notes.is_empty());

    // End records only: written, not committed.
    log.append_all(vec![end("a"), end("b")]).unwrap();
    assert_eq!(head(&config).seq, 41);
    assert!(log.append_all(Vec::new()).unwrap().is_empty());
    assert_eq!(
        AuditLog::disabled()
            .append_all(vec![end("a"), end("b")])
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn a_crash_during_rotation_is_recovered() {
    // Each case leaves the files as a crash at one step of a rotation
    // would, then checks that a new writer continues and verify passes.
    type Crash = fn(&AuditConfig, &LogFiles);
    let cases: [(&str, Crash); 3] = [
        ("renamed, head not yet updated", |config, files| {
            std::fs::rename(&config.path, files.dir().join(files.rotated_name(1))).unwrap();
        }),
        (
            "renamed and head updated, no new file yet",
            |config, files| {
                let head = head(config);
                let name = files.rotated_name(1);
                std::fs::rename(&config.path, files.dir().join(&name)).unwrap();
                Head { file: name, ..head }
                    .write(&files.head(), &files.head_tmp())
                    .unwrap();
            },
        ),
        ("head updated but the rename lost", |config, files| {
            let head = head(config);
            Head {
                file: files.rotated_name(1),
                ..head
            }
            .write(&files.head(), &files.head_tmp())
            .unwrap();
        }),
    ];
    for (name, crash) in cases {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let files = LogFiles::new(&config.path).unwrap();
        let log = AuditLog::open(&config).unwrap();
        for i in 0..3 {
            log.append(start(&format!("vm{i}"))).unwrap();
        }
        drop(log);
        crash(&config, &files);
        let log = AuditLog::open(&config).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(log.append(end("vm0")).unwrap().seq, 4, "{name}");
        let report = verify(&config).unwrap();
        assert!(report.ok(), "{name}: {:?}", report.broken);
        assert_eq!(report.records, 4, "{name}");
        assert_eq!(seqs(&config), [1, 2, 3, 4], "{name}");
    }
}

#[test]
fn a_torn_last_line_is_noted_then_removed_by_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let log = AuditLog::open(&config).unwrap();
    for host in ["a", "b", "c"] {
        log.append(start(host)).unwrap();
    }
    let before = std::fs::read(&config.path).unwrap();
    // A write cut short: half of a record, no newline.
    let mut file = OpenOptions::new().append(true).open(&config.path).unwrap();
    file.write_all(&before[..before.len() / 6]).unwrap();
    drop(file);
    let report = assert_intact(&config, 3);
    assert!(
        matches!(report.notes[..], [Note::TornTail { line: 4, .. }]),
        "{:?}",
        report.notes
    );

    // The same writer (its cache no longer matches) and a new one both
    // repair it.
    assert_eq!(log.append(end("a")).unwrap().seq, 4);
    let after = std::fs::read(&config.path).unwrap();
    assert_eq!(&after[..before.len()], &before[..]);
    assert!(after.ends_with(b"\n"));
    let report = assert_intact(&config, 4);
    assert!(report.notes.is_empty(), "{:?}", report.notes);

    let mut file = OpenOptions::new().append(true).open(&config.path).unwrap();
    file.write_all(b"{\"v\":1,\"se").unwrap();
    drop(file);
    drop(log);
    let log = AuditLog::open(&config).unwrap();
    assert_eq!(log.append(end("b")).unwrap().seq, 5);
    assert_intact(&config, 5);
}

#[test]
fn fsync_start_commits_start_records_and_groups_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuditConfig {
        fsync: FsyncPolicy::Start,
        ..config(dir.path())
    };
    let log = AuditLog::open(&config).unwrap();
    log.append(start("a")).unwrap();
    assert_eq!(head(&config).seq, 1);
    log.append(end("a")).unwrap();
    log.append(end("b")).unwrap();
    assert_eq!(head(&config).seq, 1, "not committed yet");
    let report = assert_intact(&config, 3);
    assert_eq!(report.notes, [Note::Uncommitted { records: 2 }]);
    log.sync().unwrap();
    assert_eq!(head(&config).seq, 3);
    assert!(assert_intact(&config, 3).notes.is_empty());

    // Dropping the last clone commits too.
    log.append(end("c")).unwrap();
    let clone = log.clone();
    drop(log);
    assert_eq!(head(&config).seq, 3);
    drop(clone);
    assert_eq!(head(&config).seq, 4);
}

#[test]
fn records_a_crashed_writer_did_not_commit_are_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuditConfig {
        fsync: FsyncPolicy::Start,
        ..config(dir.path())
    };
    let log = AuditLog::open(&config).unwrap();
    log.append(start("a")).unwrap();
    log.append(end("a")).unwrap();
    log.append(end("b")).unwrap();
    // Die without committing (no Drop), as a killed process would.
    std::mem::forget(log);
    assert_eq!(head(&config).seq, 1);

    let other = AuditLog::open(&config).unwrap();
    assert_eq!(head(&config).seq, 3, "open commits what it found");
    assert_eq!(other.append(start("c")).unwrap().seq, 4);
    assert!(assert_intact(&config, 4).notes.is_empty());
}

#[test]
fn the_writer_refuses_a_log_that_does_not_continue_its_head() {
    let setup = || {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let log = AuditLog::open(&config).unwrap();
        for host in ["a", "b", "c"] {
            log.append(start(host)).unwrap();
        }
        drop(log);
        (dir, config)
    };
    let files = |config: &AuditConfig| LogFiles::new(&config.path).unwrap();

    // The head deleted.
    let (_dir, config) = setup();
    std::fs::remove_file(files(&config).head()).unwrap();
    let err = AuditLog::open(&config).unwrap_err();
    assert!(is_inconsistent(&err, "head file"), "{err}");
    assert!(
        err.to_string().contains("run `remex audit verify`"),
        "{err}"
    );

    // The last record removed.
    let (_dir, config) = setup();
    let text = std::fs::read_to_string(&config.path).unwrap();
    let kept: Vec<&str> = text.lines().take(2).collect();
    std::fs::write(&config.path, format!("{}\n", kept.join("\n"))).unwrap();
    let err = AuditLog::open(&config).unwrap_err();
    assert!(is_inconsistent(&err, "removed from its end"), "{err}");

    // The log file deleted.
    let (_dir, config) = setup();
    std::fs::remove_file(&config.path).unwrap();
    let err = AuditLog::open(&config).unwrap_err();
    assert!(is_inconsistent(&err, "log file is missing"), "{err}");

    // A foreign line after the last record.
    let (_dir, config) = setup();
    let mut file = OpenOptions::new().append(true).open(&config.path).unwrap();
    file.write_all(b"{\"v\":1,\"seq\":4}\n").unwrap();
    let err = AuditLog::open(&config).unwrap_err();
    assert!(is_inconsistent(&err, "not the next record"), "{err}");

    // The same, noticed by a writer that was already open.
    let (_dir, config) = setup();
    let log = AuditLog::open(&config).unwrap();
    let mut file = OpenOptions::new().append(true).open(&config.path).unwrap();
    file.write_all(b"junk\n").unwrap();
    let err = log.append(start("d")).unwrap_err();
    assert!(is_inconsistent(&err, "not the next record"), "{err}");

    // Keyed config on a plain log, and a plain config on a keyed log.
    let (dir, config) = setup();
    let key = dir.path().join("key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let keyed = AuditConfig {
        hmac_key_path: Some(key.clone()),
        ..config.clone()
    };
    let err = AuditLog::open(&keyed).unwrap_err();
    assert!(is_inconsistent(&err, "no MAC"), "{err}");
    let keyed = AuditConfig {
        path: dir.path().join("keyed/audit.jsonl"),
        hmac_key_path: Some(key),
        ..config.clone()
    };
    AuditLog::open(&keyed).unwrap().append(start("a")).unwrap();
    let plain = AuditConfig {
        hmac_key_path: None,
        ..keyed
    };
    let err = AuditLog::open(&plain).unwrap_err();
    assert!(is_inconsistent(&err, "set audit.hmac_key_path"), "{err}");
}

#[test]
fn two_writers_in_threads_keep_one_contiguous_chain() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuditConfig {
        max_size: 64 << 10,
        ..config(dir.path())
    };
    drop(AuditLog::open(&config).unwrap());
    let threads: Vec<_> = ["t1", "t2"]
        .into_iter()
        .map(|name| {
            let config = config.clone();
            std::thread::spawn(move || {
                // Each thread has its own writer, lock file handle and cache.
                let log = AuditLog::open(&config).unwrap();
                (0..500)
                    .map(|_| log.append(start(name)).unwrap().seq)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<u64> = Vec::new();
    for thread in threads {
        let mine = thread.join().unwrap();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "in order");
        all.extend(mine);
    }
    all.sort_unstable();
    assert_eq!(all, (1..=1000).collect::<Vec<_>>(), "unique and contiguous");
    assert_intact(&config, 1000);
    assert_eq!(seqs(&config), (1..=1000).collect::<Vec<_>>());
}

#[test]
fn one_writer_shared_by_threads() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let log = AuditLog::open(&config).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..50 {
                    log.append(start("x")).unwrap();
                }
            });
        }
    });
    assert_intact(&config, 200);
}

/// Starts this test binary running only `child_appender`, which appends
/// `count` records (0: until killed) to the log at `path`, printing
/// `ACK <seq>` after each.
fn spawn_child(path: &Path, count: usize, name: &str, fsync: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(child_args())
        .env(CHILD_ENV, child_spec(path, count, name, fsync))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// What `child_appender` reads from [`CHILD_ENV`].
fn child_spec(path: &Path, count: usize, name: &str, fsync: &str) -> String {
    format!("{}\n{count}\n{name}\n{fsync}", path.display())
}

/// The arguments that make this test binary run only `child_appender`.
fn child_args() -> [&'static str; 5] {
    [
        "--exact",
        "audit::log::tests::child_appender",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]
}

/// [`spawn_child`] as the user `nobody`, through `setpriv` (the caller is
/// root): for what root is allowed and others are not.
fn child_command(path: &Path, count: usize, name: &str, fsync: &str) -> Command {
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(std::env::current_exe().unwrap())
        .args(child_args())
        .env(CHILD_ENV, child_spec(path, count, name, fsync));
    command
}

#[test]
#[ignore = "run by other tests in a child process"]
fn child_appender() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.split('\n');
    let path = PathBuf::from(parts.next().unwrap());
    let count: usize = parts.next().unwrap().parse().unwrap();
    let name = parts.next().unwrap().to_owned();
    let fsync = match parts.next().unwrap() {
        "start" => FsyncPolicy::Start,
        _ => FsyncPolicy::Always,
    };
    let config = AuditConfig {
        path,
        fsync,
        max_size: 64 << 10,
        ..AuditConfig::default()
    };
    let log = AuditLog::open(&config).unwrap();
    let mut out = std::io::stdout().lock();
    let mut i = 0;
    while count == 0 || i < count {
        let seq = log.append(start(&name)).unwrap().seq;
        writeln!(out, "ACK {seq}").unwrap();
        out.flush().unwrap();
        i += 1;
    }
}

/// The seqs a child acknowledged, read from its stdout until `until` of
/// them (or the end).
fn acks(child: &mut Child, until: usize) -> Vec<u64> {
    let stdout = child.stdout.as_mut().unwrap();
    let mut seen = Vec::new();
    let mut line = String::new();
    let mut reader = BufReader::new(stdout);
    while seen.len() < until {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        // libtest prints `test NAME ... ` on the same line as the first.
        if let Some((_, seq)) = line.trim().rsplit_once("ACK ") {
            seen.push(seq.parse().unwrap());
        }
    }
    seen
}

#[test]
fn two_processes_keep_one_contiguous_chain() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuditConfig {
        max_size: 64 << 10,
        ..config(dir.path())
    };
    let mut children = [
        spawn_child(&config.path, 500, "p1", "always"),
        spawn_child(&config.path, 500, "p2", "always"),
    ];
    let mut all = Vec::new();
    for child in &mut children {
        let mine = acks(child, usize::MAX);
        assert!(child.wait().unwrap().success());
        assert_eq!(mine.len(), 500);
        assert!(mine.windows(2).all(|w| w[0] < w[1]));
        all.extend(mine);
    }
    all.sort_unstable();
    assert_eq!(all, (1..=1000).collect::<Vec<_>>(), "unique and contiguous");
    let report = assert_intact(&config, 1000);
    assert!(report.files.len() > 1, "rotated while both wrote");
    let stored = records(&config);
    for name in ["p1", "p2"] {
        let count = stored
            .iter()
            .filter(|s| s.record.host.as_deref() == Some(name))
            .count();
        assert_eq!(count, 500, "{name}");
    }
}

#[test]
fn kill_9_mid_run_leaves_a_valid_chain_with_every_acknowledged_record() {
    for fsync in ["always", "start"] {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let mut child = spawn_child(&config.path, 0, "victim", fsync);
        let acked = acks(&mut child, 50);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert_eq!(acked.len(), 50, "{fsync}");

        let report = verify(&config).unwrap();
        assert!(report.ok(), "{fsync}: {:?}", report.broken);
        assert!(report.records >= 50, "{fsync}: {report:?}");
        let present = seqs(&config);
        for seq in &acked {
            assert!(
                present.contains(seq),
                "{fsync}: acknowledged {seq} is missing"
            );
        }
        assert!(
            records(&config)
                .iter()
                .all(|s| s.record.event == Event::Start),
            "the in-flight start records are there"
        );

        // The next run carries on.
        let log = AuditLog::open(&config).unwrap();
        let next = log.append(start("after")).unwrap().seq;
        assert_eq!(next, report.records + 1, "{fsync}");
        assert_intact(&config, next);
    }
}
