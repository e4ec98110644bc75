use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use super::*;
use crate::audit::record::{Event, Op, Record};
use crate::audit::{AuditLog, FsyncPolicy};

/// A record with every field set, so each can be tampered with.
fn full(i: u64) -> Record {
    Record::new(Event::End, Op::Upload, format!("run-{i}"))
        .workflow("deploy")
        .host(format!("vm{i:02}"))
        .address("10.0.0.11")
        .port(2222_u16)
        .user("ops")
        .host_key("SHA256:hostkey")
        .argv(["cp", "a", "b"])
        .command("cp a b")
        .script_sha256("ab".repeat(32))
        .paths(["/local/a", "/remote/b"])
        .bytes(1234_u64)
        .sha256("cd".repeat(32))
        .exit_code(7_u32)
        .signal("TERM")
        .error_kind("exit")
        .error("failed")
        .duration_ms(99_u64)
        .fingerprint("SHA256:keyprint")
}

/// A log of `n` full records.
fn log_of(dir: &Path, n: u64, key: Option<&Path>) -> AuditConfig {
    let config = AuditConfig {
        path: dir.join("audit.jsonl"),
        hmac_key_path: key.map(Path::to_path_buf),
        ..AuditConfig::default()
    };
    let log = AuditLog::open(&config).unwrap();
    for i in 1..=n {
        log.append(full(i)).unwrap();
    }
    config
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(
        path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
}

fn broken(config: &AuditConfig) -> Break {
    let report = verify(config).unwrap();
    match report.broken {
        Some(brk) => brk,
        None => panic!("verify passed: {report:?}"),
    }
}

/// Asserts the break's file, line, expected seq and kind.
fn assert_break(brk: &Break, file: &Path, line: Option<usize>, seq: u64, kind: BreakKind) {
    assert_eq!(
        (brk.file.as_path(), brk.line, brk.seq, brk.kind),
        (file, line, seq, kind),
        "{brk}"
    );
}

/// A byte of `text` at `at` replaced by a different byte of the same class,
/// so that the JSON stays well-formed.
fn flip(text: &str, at: usize) -> String {
    let mut bytes = text.as_bytes().to_vec();
    bytes[at] = match bytes[at] {
        b'9' => b'0',
        b'0'..=b'8' => bytes[at] + 1,
        b'f' => b'e',
        b'z' => b'y',
        b'a'..=b'y' => bytes[at] + 1,
        b'Z' => b'Y',
        b'A'..=b'Y' => bytes[at] + 1,
        b'/' | b':' | b'.' | b'-' => b'_',
        other => panic!("flip {:?}", other as char),
    };
    String::from_utf8(bytes).unwrap()
}

#[test]
fn an_intact_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let config = log_of(dir.path(), 6, None);
    let report = verify(&config).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(
        (report.records, report.last_seq, report.head_seq),
        (6, 6, Some(6))
    );
    assert_eq!(report.files, std::slice::from_ref(&config.path));
    assert!(report.notes.is_empty() && !report.keyed);
}

#[test]
fn an_empty_or_absent_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuditConfig {
        path: dir.path().join("none/audit.jsonl"),
        ..AuditConfig::default()
    };
    let report = verify(&config).unwrap();
    assert!(report.ok() && report.records == 0 && report.files.is_empty());
    // Opened, nothing appended.
    let config = log_of(dir.path(), 0, None);
    let report = verify(&config).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.head_seq, Some(0));
}

#[test]
fn a_changed_byte_in_any_member_is_an_edit_of_that_record() {
    let dir = tempfile::tempdir().unwrap();
    let config = log_of(dir.path(), 5, None);
    let original = lines(&config.path);
    let line3 = &original[2];
    let members: Vec<String> =
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line3)
            .unwrap()
            .keys()
            .cloned()
            .collect();
    assert_eq!(members.len(), 28, "every field is set: {members:?}");
    let mut tried = 0;
    for member in &members {
        let key_at = line3.find(&format!("\"{member}\":")).unwrap();
        let value_at = key_at + member.len() + 3;
        // A byte of the value (inside the quotes or brackets when there
        // are some), and a byte of the name.
        let value_byte = match line3.as_bytes()[value_at] {
            b'"' => value_at + 1,
            b'[' => value_at + 2,
            _ => value_at,
        };
        for at in [value_byte, key_at + 1] {
            let mut tampered = original.clone();
            tampered[2] = flip(line3, at);
            write_lines(&config.path, &tampered);
            let brk = broken(&config);
            assert_break(&brk, &config.path, Some(3), 3, BreakKind::Edited);
            assert!(
                brk.to_string().contains("audit.jsonl:3: record 3: edited"),
                "{brk}"
            );
            tried += 1;
        }
    }
    assert_eq!(tried, 56);
}

#[test]
fn a_line_that_is_no_longer_json_is_an_edit() {
    let dir = tempfile::tempdir().unwrap();
    let config = log_of(dir.path(), 4, None);
    let mut tampered = lines(&config.path);
    tampered[1] = tampered[1].replacen("\"run\"", "\"run", 1);
    write_lines(&config.path, &tampered);
    let brk = broken(&config);
    assert_break(&brk, &config.path, Some(2), 2, BreakKind::Edited);
}

#[test]
fn a_deleted_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = log_of(dir.path(), 6, None);
    let mut tampered = lines(&config.path);
    tampered.remove(2);
    write_lines(&config.path, &tampered);
    let brk = broken(&config);
    assert_break(&brk, &config.path, Some(3), 3, BreakKind::DeletedOrInserted);
    assert_eq!(brk.found_seq, Some(4));
    assert!(brk.detail.contains("record 3 is missing"), "{brk}");

    // The first line.
    let mut tampered = lines(&config.path);
    write_lines(&config.path, &tampered.split_off(1));
    let brk = broken(&config);
    assert_break(&brk, &config.path, Some(1), 1, BreakKind::DeletedOrInserted);
    assert!(brk.detail.contains("starts at seq 2"), "{brk}");
}

#[test]
fn an_inserted_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = log_of(dir.path(), 6, None);
    let original = lines(&config.path);

    // A copy of an earlier line.
    let mut tampered = original.clone();
    tampered.insert(4, original[1].clone());
    write_lines(&config.path, &tampered);
    let brk = broken(&config);
    assert_break(&brk, &config.path, Some(5), 5, BreakKind::DeletedOrInserted);
    assert_eq!(brk.found_seq, Some(2));

    // A copy of the line that follows it.
    let mut tampered = original.clone();
    tampered.insert(3, original[4].clone());
    write_lines(&config.path, &tampered);
    let brk = broken(&config);
    assert_break(&brk, &config.path, Some(4), 4, BreakKind::DeletedOrInserted);

    // A forged record with a correct hash (no key needed without HMAC),
    // taking seq 4: the genuine record 4 no longer fits after it.
    let prev: Record = serde_json::from_str(&original[2]).unwrap();
    let mut forged = full(99);
    forged.seq = 4;
    forged.ts = prev.ts.clone();
    forged.actor = prev.actor.clone();
    forged.orchestrator = prev.orchestrator.clone();
    forged.prev = prev.hash.clone();
    let canonical = forged.canonical().unwrap();
    let hash = Sealer::plain().seal(&canonical);
    let line = String::from_utf8(chain::splice(&canonical, &hash)).unwrap();
    let mut tampered = original.clone();
    tampered.insert(3, line.trim_end().to_owned());
    write_lines(&config.path, &tampered);
    let brk = broken(&config);
    assert_break(&brk, &config.path, Some(5), 5, BreakKind::DeletedOrInserted);
    assert_eq!(brk.found_seq, Some(4));
}

#[test]
fn two_lines_swapped() {
    let dir = tempfile::tempdir().unwrap();
    let config = log_of(dir.path(), 6, None);
    let original = lines(&config.path);
    let mut tampered = original.clone();
    tampered.swap(2, 3);
    write_lines(&config.path, &tampered);
    let brk = broken(&config);
    assert_break(&brk, &config.path, Some(3), 3, BreakKind::Swapped);
    assert_eq!(brk.found_seq, Some(4));

    // The last two.
    let mut tampered = original.clone();
    tampered.swap(4, 5);
    write_lines(&config.path, &tampered);
    let brk = broken(&config);
    assert_break(&brk, &config.path, Some(5), 5, BreakKind::Swapped);
}

#[test]
fn the_tail_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let config = log_of(dir.path(), 6, None);
    let original = lines(&config.path);
    write_lines(&config.path, &original[..4]);
    let brk = broken(&config);
    assert_break(&brk, &config.path, Some(5), 5, BreakKind::Truncated);
    assert!(brk.detail.contains("records 5 to 6 were removed"), "{brk}");

    // Cut in the middle of the last line.
    let text = original.join("\n");
    std::fs::write(&config.path, &text[..text.len() - 30]).unwrap();
    let report = verify(&config).unwrap();
    let brk = report.broken.unwrap();
    assert_break(&brk, &config.path, Some(6), 6, BreakKind::Truncated);
    assert!(matches!(report.notes[..], [Note::TornTail { line: 6, .. }]));

    // The whole file.
    std::fs::remove_file(&config.path).unwrap();
    let brk = broken(&config);
    assert_break(&brk, &config.path, Some(1), 1, BreakKind::Truncated);
}

#[test]
fn the_head_deleted_or_edited() {
    let dir = tempfile::tempdir().unwrap();
    let config = log_of(dir.path(), 3, None);
    let files = LogFiles::new(&config.path).unwrap();
    let head_text = std::fs::read_to_string(files.head()).unwrap();

    std::fs::remove_file(files.head()).unwrap();
    let brk = broken(&config);
    assert_break(&brk, &files.head(), None, 4, BreakKind::HeadMissing);

    std::fs::write(files.head(), "{not json").unwrap();
    assert_eq!(broken(&config).kind, BreakKind::HeadInvalid);

    // The head moved back to an earlier record, with the wrong hash.
    std::fs::write(files.head(), head_text.replace("\"seq\":3", "\"seq\":2")).unwrap();
    let brk = broken(&config);
    assert_break(&brk, &config.path, Some(2), 2, BreakKind::Edited);

    // The last record replaced by one with a recomputed hash.
    std::fs::write(files.head(), &head_text).unwrap();
    let mut tampered = lines(&config.path);
    let mut last: Record = serde_json::from_str(&tampered[2]).unwrap();
    last.host = Some("elsewhere".into());
    last.hash.clear();
    let canonical = last.canonical().unwrap();
    let hash = Sealer::plain().seal(&canonical);
    tampered[2] = String::from_utf8(chain::splice(&canonical, &hash))
        .unwrap()
        .trim_end()
        .to_owned();
    write_lines(&config.path, &tampered);
    let brk = broken(&config);
    assert_break(&brk, &config.path, Some(3), 3, BreakKind::Edited);
    assert!(
        brk.detail.contains("not the one the head file names"),
        "{brk}"
    );
}

fn key_file(dir: &Path) -> std::path::PathBuf {
    let key = dir.join("audit.key");
    std::fs::write(&key, "6f1d2a0b9c8e7f6a5b4c3d2e1f0a9b8c\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    key
}

#[test]
fn a_keyed_log_verifies_only_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let config = log_of(dir.path(), 4, Some(&key));
    let report = verify(&config).unwrap();
    assert!(report.ok() && report.keyed, "{report:?}");

    let without = AuditConfig {
        hmac_key_path: None,
        ..config.clone()
    };
    let brk = broken(&without);
    assert_break(&brk, &config.path, Some(1), 1, BreakKind::Edited);
    assert!(brk.detail.contains("set audit.hmac_key_path"), "{brk}");
}

#[test]
fn a_keyed_log_rewritten_without_the_key_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let config = log_of(dir.path(), 4, Some(&key));
    let files = LogFiles::new(&config.path).unwrap();

    // Someone without the key edits record 3 and rebuilds the whole chain
    // and head with plain SHA-256, as they would for an unkeyed log.
    let mut prev = ZERO_HASH.to_owned();
    let mut rebuilt = Vec::new();
    for (i, line) in lines(&config.path).iter().enumerate() {
        let mut record: Record = serde_json::from_str(line).unwrap();
        if i == 2 {
            record.argv = Some(vec!["rm".into(), "-rf".into(), "/".into()]);
        }
        record.prev = prev.clone();
        record.hash.clear();
        let canonical = record.canonical().unwrap();
        let hash = Sealer::plain().seal(&canonical);
        rebuilt.push(
            String::from_utf8(chain::splice(&canonical, &hash))
                .unwrap()
                .trim_end()
                .to_owned(),
        );
        prev = hash;
    }
    write_lines(&config.path, &rebuilt);
    let size = std::fs::metadata(&config.path).unwrap().len();
    crate::audit::Head::new(4, prev, "audit.jsonl".into(), size, &Sealer::plain())
        .write(&files.head(), &files.head_tmp())
        .unwrap();

    // Unkeyed, the forgery is consistent; with the key it is not.
    let plain = AuditConfig {
        hmac_key_path: None,
        ..config.clone()
    };
    assert!(
        verify(&plain).unwrap().ok(),
        "without HMAC a rewrite is undetectable"
    );
    let brk = broken(&config);
    assert_break(&brk, &config.path, Some(1), 1, BreakKind::Edited);
    assert!(brk.detail.contains("without the HMAC key"), "{brk}");

    // Only the head forged (the log intact): its MAC gives it away.
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let config = log_of(dir.path(), 4, Some(&key));
    let files = LogFiles::new(&config.path).unwrap();
    let third: Record = serde_json::from_str(&lines(&config.path)[2]).unwrap();
    write_lines(&config.path, &lines(&config.path)[..3]);
    crate::audit::Head::new(3, third.hash, "audit.jsonl".into(), 0, &Sealer::plain())
        .write(&files.head(), &files.head_tmp())
        .unwrap();
    let brk = broken(&config);
    assert_break(&brk, &files.head(), None, 4, BreakKind::HeadInvalid);
}

#[test]
fn rotated_files_are_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuditConfig {
        path: dir.path().join("audit.jsonl"),
        max_size: 4096,
        ..AuditConfig::default()
    };
    let log = AuditLog::open(&config).unwrap();
    for i in 1..=30 {
        log.append(full(i)).unwrap();
    }
    let report = verify(&config).unwrap();
    assert!(report.ok(), "{report:?}");
    assert!(report.files.len() >= 4, "{:?}", report.files);

    // A rotated file in the middle deleted.
    let second = dir.path().join("audit.jsonl.2");
    let first_of_third: Record =
        serde_json::from_str(&lines(&dir.path().join("audit.jsonl.3"))[0]).unwrap();
    let first_of_second: Record = serde_json::from_str(&lines(&second)[0]).unwrap();
    std::fs::remove_file(&second).unwrap();
    let brk = broken(&config);
    assert_break(
        &brk,
        &dir.path().join("audit.jsonl.3"),
        Some(1),
        first_of_second.seq,
        BreakKind::DeletedOrInserted,
    );
    assert_eq!(brk.found_seq, Some(first_of_third.seq));
    assert!(
        brk.detail.contains("a rotated file may have been deleted"),
        "{brk}"
    );

    // The oldest file deleted.
    std::fs::remove_file(dir.path().join("audit.jsonl.1")).unwrap();
    let brk = broken(&config);
    assert_break(
        &brk,
        &dir.path().join("audit.jsonl.3"),
        Some(1),
        1,
        BreakKind::DeletedOrInserted,
    );
}

#[test]
fn uncommitted_records_and_a_torn_tail_are_notes_not_breaks() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuditConfig {
        path: dir.path().join("audit.jsonl"),
        fsync: FsyncPolicy::Start,
        ..AuditConfig::default()
    };
    let log = AuditLog::open(&config).unwrap();
    log.append(Record::new(Event::Start, Op::Exec, "r"))
        .unwrap();
    log.append(full(2)).unwrap();
    log.append(full(3)).unwrap();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&config.path)
        .unwrap();
    std::io::Write::write_all(&mut file, b"{\"v\":1,\"seq\":4,\"ts\"").unwrap();
    let report = verify(&config).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.notes.len(), 2, "{:?}", report.notes);
    assert!(matches!(
        report.notes[0],
        Note::TornTail {
            line: 4,
            bytes: 19,
            ..
        }
    ));
    assert_eq!(report.notes[1], Note::Uncommitted { records: 2 });
    assert!(report.notes[1].to_string().contains("2 record(s)"));
    std::mem::forget(log);

    // Records after the head that do not chain are a break, not a note.
    let mut tampered = lines(&config.path);
    tampered.truncate(3);
    tampered[2] = tampered[1].clone();
    write_lines(&config.path, &tampered);
    let brk = broken(&config);
    assert_break(&brk, &config.path, Some(3), 3, BreakKind::DeletedOrInserted);
}

#[test]
fn the_report_serializes_for_json_output() {
    let dir = tempfile::tempdir().unwrap();
    let config = log_of(dir.path(), 3, None);
    let mut tampered = lines(&config.path);
    tampered.swap(0, 1);
    write_lines(&config.path, &tampered);
    let report = verify(&config).unwrap();
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["broken"]["kind"], "swapped");
    assert_eq!(json["broken"]["line"], 1);
    assert_eq!(json["broken"]["seq"], 1);
    assert_eq!(json["records"], 0);
}
