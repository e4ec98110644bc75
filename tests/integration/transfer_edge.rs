//! `remex upload` and `remex download` at their edges, against real
//! servers: a host whose hash tools lie (verification must refuse the
//! file), Ctrl-C in the middle of a large transfer (the destination stays
//! as it was), and Dropbear (its external `sftp-server`, a throwaway user).
//!
//! Every lab host is this machine, so the tests look at the "remote" files
//! directly.

use std::io::Read as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::util::{
    Remex, TestLab, assert_every_host_ended, assert_no_process_uses, assert_verifies, records,
    send_signal, temp_files, wait_for, write,
};

const MIB: u64 = 1024 * 1024;

/// What the fake hash tools append to the bytes they are given before
/// hashing them: their digest is that of a file that is not there.
const CORRUPTION: &str = "corrupt";

/// The fake streaming hasher's answer, whatever it is given.
const PYTHON_LIE: &str = "5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e";

/// Creates `path` and its directory, for the test to fill.
fn create(path: &Path) -> std::fs::File {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::File::create(path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()))
}

/// Writes `len` bytes from /dev/urandom (no repeating pattern) to `path`.
pub fn random_file(path: &Path, len: u64) {
    let mut urandom = std::fs::File::open("/dev/urandom").unwrap().take(len);
    let copied = std::io::copy(&mut urandom, &mut create(path)).unwrap();
    assert_eq!(copied, len);
}

/// Puts an earlier version, `text`, at `path`: what a failed or
/// interrupted transfer must leave as it is.
fn old_file(path: &Path, text: &str) {
    write(path, text.as_bytes());
}

/// Asserts that `path` still holds exactly `text` (an [`old_file`]).
fn assert_holds(path: &Path, text: &str) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert!(
        bytes == text.as_bytes(),
        "{} was replaced: {} bytes now, not {text:?}",
        path.display(),
        bytes.len()
    );
}

/// Hex SHA-256 of a file's bytes followed by `suffix`.
pub fn digest_of(path: &Path, suffix: &[u8]) -> String {
    let mut hasher = Sha256::new();
    let mut file = std::fs::File::open(path).unwrap();
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hasher.update(suffix);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether two files hold the same bytes.
pub fn same_bytes(a: &Path, b: &Path) -> bool {
    std::fs::read(a).unwrap() == std::fs::read(b).unwrap()
}

/// remex's temp files (`.NAME.TAG.remex-part`) in `dir`.
pub fn leftovers(dir: &Path) -> Vec<PathBuf> {
    temp_files(dir).iter().map(|name| dir.join(name)).collect()
}

pub fn assert_no_leftovers(dir: &Path) {
    let left = leftovers(dir);
    assert!(left.is_empty(), "temp files left behind: {left:?}");
}

/// The result of `host` in a `--json` run's output.
pub fn result_of<'a>(json: &'a Value, host: &str) -> &'a Value {
    json["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {json}"))
        .iter()
        .find(|r| r["host"] == host)
        .unwrap_or_else(|| panic!("no result for {host} in {json}"))
}

pub fn message(result: &Value) -> &str {
    result["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {result}"))
}

/// `remex --json WORDS… PATHS…` against `lab`, expecting exit `code`:
/// its JSON output.
pub fn remex_json(lab: &TestLab, words: &[&str], paths: &[&Path], code: i32) -> Value {
    lab.remex()
        .arg("--json")
        .args(words)
        .args(paths)
        .run()
        .expect_code(code)
        .json()
}

/// A directory of hash tools that lie, put first in one host's `PATH`.
/// `openssl`, `sha256sum` and `shasum` hash their input with
/// [`CORRUPTION`] appended; `python3` (the streaming hasher) reads its
/// input and prints [`PYTHON_LIE`]. Each call is logged.
struct LyingTools {
    dir: PathBuf,
}

impl LyingTools {
    fn install(lab: &mut TestLab, host: &str) -> LyingTools {
        let dir = lab.path().join(format!("lying-tools-{host}"));
        std::fs::create_dir_all(&dir).unwrap();
        let tools = LyingTools { dir };
        for name in ["openssl", "sha256sum", "shasum"] {
            tools.script(
                name,
                &format!("{{ cat; printf {CORRUPTION}; }} | /usr/bin/sha256sum"),
            );
        }
        tools.script("python3", &format!("cat >/dev/null; echo {PYTHON_LIE}"));
        lab.put_first_in_path(host, &tools.dir);
        tools
    }

    /// (Re)writes the fake `name`: log the call, then run `body`.
    fn script(&self, name: &str, body: &str) {
        let path = self.dir.join(name);
        let log = self.log_path();
        let text = format!(
            "#!/bin/sh\necho \"{name} $*\" >> '{}'\n{body}\n",
            log.display()
        );
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Makes the fake `openssl` honest (coreutils' `sha256sum` of its
    /// input), still logged.
    fn honest_openssl(&self) {
        self.script("openssl", "exec /usr/bin/sha256sum");
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("calls.log")
    }

    /// The tools called so far, one line each, and forgets them.
    fn take_calls(&self) -> String {
        let calls = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let _ = std::fs::remove_file(self.log_path());
        calls
    }
}

#[test]
fn a_host_whose_hash_disagrees_keeps_its_old_file_and_the_others_go_on() {
    let mut lab = TestLab::new(2);
    let tools = LyingTools::install(&mut lab, "vm02");
    let local = lab.path().join("release.bin");
    random_file(&local, 3 * MIB + 5);
    let sent = digest_of(&local, b"");
    let lie = digest_of(&local, CORRUPTION.as_bytes());
    let srv = lab.path().join("srv");
    let remote = srv.join("release.bin");
    old_file(&remote, "the old release\n");

    // The lying host alone: its file stays the old one, byte for byte.
    let json = remex_json(&lab, &["upload", "vm02"], &[&local, &remote], 1);
    let calls = tools.take_calls();
    assert!(
        !calls.is_empty(),
        "no fake hash tool ran on vm02: its PATH did not reach remex's commands"
    );
    assert!(!calls.contains("python3"), "{calls}");
    let r = result_of(&json, "vm02");
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["status"], Value::Null, "{r}");
    assert_eq!(r["error"]["kind"], "transfer", "{r}");
    let text = message(r);
    for needle in [
        remote.display().to_string(),
        "checksum mismatch".to_owned(),
        format!("sent {sent}"),
        format!("the host has {lie}"),
        "the destination was not replaced".to_owned(),
    ] {
        assert!(text.contains(&needle), "no {needle:?} in {text}");
    }
    assert_eq!(r["files"][0]["status"], "failed", "{r}");
    assert_eq!(r["files"][0]["error"]["kind"], "transfer", "{r}");
    assert_holds(&remote, "the old release\n");
    assert_no_leftovers(&srv);

    // With an honest host in the same run: it writes the file, the liar
    // fails alone.
    let json = remex_json(&lab, &["upload", "all"], &[&local, &remote], 1);
    let good = result_of(&json, "vm01");
    assert_eq!(good["ok"], true, "{good}");
    assert_eq!(good["status"], "written", "{good}");
    assert_eq!(good["sha256"], sent.as_str(), "{good}");
    let bad = result_of(&json, "vm02");
    assert_eq!(bad["error"]["kind"], "transfer", "{bad}");
    assert!(message(bad).contains("checksum mismatch"), "{bad}");
    assert_eq!(json["summary"]["ok"], 1, "{json}");
    assert_eq!(json["summary"]["failed"], 1, "{json}");
    // Both hosts share this filesystem: the file is the honest host's.
    assert!(same_bytes(&remote, &local));
    assert_no_leftovers(&srv);
}

#[test]
fn a_download_whose_hash_disagrees_writes_nothing_and_the_others_go_on() {
    let mut lab = TestLab::new(2);
    let tools = LyingTools::install(&mut lab, "vm02");
    let srv = lab.path().join("srv");
    let (a, b) = (srv.join("a.bin"), srv.join("b.bin"));
    random_file(&a, 3 * MIB);
    random_file(&b, 2 * MIB + 1);
    let back = lab.path().join("back");
    // vm02's copy of a.bin from an earlier run: it must survive.
    let old = back.join("vm02/a.bin");
    old_file(&old, "yesterday's a.bin\n");

    let json = remex_json(&lab, &["download", "all"], &[&a, &b, &back], 1);
    assert!(!tools.take_calls().is_empty(), "no fake hash tool ran");
    let good = result_of(&json, "vm01");
    assert_eq!(good["ok"], true, "{good}");
    assert!(same_bytes(&back.join("vm01/a.bin"), &a));
    assert!(same_bytes(&back.join("vm01/b.bin"), &b));
    let bad = result_of(&json, "vm02");
    assert_eq!(bad["error"]["kind"], "transfer", "{bad}");
    assert!(
        message(bad).contains("2 of 2 entries failed"),
        "{}",
        message(bad)
    );
    let files = bad["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{bad}");
    for (file, remote) in files.iter().zip([&a, &b]) {
        assert_eq!(file["status"], "failed", "{file}");
        let text = message(file);
        for needle in [
            remote.display().to_string(),
            "checksum mismatch".to_owned(),
            format!("received {}", digest_of(remote, b"")),
            format!("the host has {}", digest_of(remote, CORRUPTION.as_bytes())),
            "nothing was written".to_owned(),
        ] {
            assert!(text.contains(&needle), "no {needle:?} in {text}");
        }
    }
    assert_holds(&old, "yesterday's a.bin\n");
    assert!(!back.join("vm02/b.bin").exists());
    assert_no_leftovers(&back.join("vm02"));
    assert_no_leftovers(&back.join("vm01"));
}

/// A lab whose one host has lying hash tools, a local file large enough
/// to be hashed on the host while it is written (over one 64 MiB segment:
/// the host's `python3`, when it has one, reads it as it grows), and an
/// old file at the destination.
struct StreamingCase {
    lab: TestLab,
    tools: LyingTools,
    local: PathBuf,
    srv: PathBuf,
    remote: PathBuf,
}

impl StreamingCase {
    fn new() -> StreamingCase {
        let mut lab = TestLab::new(1);
        let tools = LyingTools::install(&mut lab, "vm01");
        let local = lab.path().join("image.bin");
        random_file(&local, 68 * MIB + 1);
        let srv = lab.path().join("srv");
        let remote = srv.join("image.bin");
        old_file(&remote, "the old image\n");
        StreamingCase {
            lab,
            tools,
            local,
            srv,
            remote,
        }
    }

    fn upload(&self, code: i32) -> Value {
        let json = remex_json(
            &self.lab,
            &["upload", "vm01"],
            &[&self.local, &self.remote],
            code,
        );
        result_of(&json, "vm01").clone()
    }
}

#[test]
fn a_large_upload_is_refused_when_the_streaming_and_the_whole_file_hash_disagree() {
    let case = StreamingCase::new();
    let r = case.upload(1);
    let calls = case.tools.take_calls();
    assert!(
        calls.contains("python3"),
        "no streaming hash ran: {calls:?}"
    );
    assert_eq!(r["error"]["kind"], "transfer", "{r}");
    let text = message(&r);
    assert!(text.contains("checksum mismatch"), "{text}");
    // The whole-file hash decided, not the streaming one.
    assert!(
        text.contains(&format!(
            "the host has {}",
            digest_of(&case.local, CORRUPTION.as_bytes())
        )),
        "{text}"
    );
    assert!(!text.contains(PYTHON_LIE), "{text}");
    assert_holds(&case.remote, "the old image\n");
    assert_no_leftovers(&case.srv);
}

#[test]
fn a_streaming_hash_that_disagrees_is_checked_again_before_failing_the_upload() {
    // Only the streaming hasher lies: the plain hash of the whole file
    // clears the file, and it is written.
    let case = StreamingCase::new();
    case.tools.honest_openssl();
    let r = case.upload(0);
    let calls = case.tools.take_calls();
    assert!(
        calls.contains("python3") && calls.contains("openssl"),
        "{calls:?}"
    );
    let sent = digest_of(&case.local, b"");
    assert_eq!(r["sha256"], sent.as_str(), "{r}");
    assert_eq!(digest_of(&case.remote, b""), sent);
    assert_no_leftovers(&case.srv);
}

/// Starts `remex --json OP vm01 FROM TO` against `lab`, in the background.
fn spawn_json(lab: &TestLab, op: &str, from: &Path, to: &Path) -> std::process::Child {
    lab.remex()
        .args(["--json", op, "vm01"])
        .arg(from)
        .arg(to)
        .spawn()
}

/// Waits until a remex temp file in `dir` holds at least `bytes`, then
/// sends `signal` to `child` and returns its output.
fn interrupt_once_under_way(
    child: std::process::Child,
    signal: &str,
    dir: &Path,
    bytes: u64,
) -> std::process::Output {
    let what = format!("{bytes} bytes in a temp file in {}", dir.display());
    interrupt_when(child, signal, &what, || {
        leftovers(dir)
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .any(|m| m.len() >= bytes)
    })
}

/// Waits until `ready` says so, then sends `signal` to `child` and returns
/// its output. Panics (after killing it) if that never happens.
fn interrupt_when(
    mut child: std::process::Child,
    signal: &str,
    what: &str,
    ready: impl FnMut() -> bool,
) -> std::process::Output {
    wait_for(&mut child, what, ready);
    send_signal(&child, signal);
    child.wait_with_output().unwrap()
}

/// The signals a run stops on, and remex's exit status for each.
const SIGNALS: [(&str, i32); 3] = [("INT", 130), ("TERM", 143), ("HUP", 129)];

/// Asserts that a `--json` run stopped by a signal exited with `code` and
/// says so, that the audit log has its `end` record, and returns its one
/// result.
fn interrupted_result(lab: &TestLab, out: &std::process::Output, code: i32) -> Value {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(
        out.status.code(),
        Some(code),
        "--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(stderr.contains("remex: interrupted"), "{stderr}");
    let json: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout}"));
    let r = result_of(&json, "vm01").clone();
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["error"]["kind"], "cancelled", "{r}");
    assert!(message(&r).contains("interrupted"), "{r}");
    assert_eq!(r["files"][0]["status"], "failed", "{r}");
    let records = records(lab);
    let ends = assert_every_host_ended(&records, json["run_id"].as_str().unwrap(), &["vm01"]);
    assert_eq!(ends[0]["error_kind"], "cancelled", "{:?}", ends[0]);
    r
}

#[test]
fn a_signal_in_the_middle_of_an_upload_leaves_the_old_file() {
    let lab = TestLab::new(1);
    let local = lab.path().join("big.bin");
    random_file(&local, 300 * MIB);
    let srv = lab.path().join("srv");
    let remote = srv.join("big.bin");
    old_file(&remote, "the old big.bin\n");
    // Ctrl-C, and what `timeout`, systemd and a closed terminal send.
    for (signal, code) in SIGNALS {
        let child = spawn_json(&lab, "upload", &local, &remote);
        let out = interrupt_once_under_way(child, signal, &srv, 8 * MIB);
        let r = interrupted_result(&lab, &out, code);
        assert!(
            message(&r).contains("the destination was not replaced"),
            "{signal}: {r}"
        );
        assert_holds(&remote, "the old big.bin\n");
        assert_no_leftovers(&srv);
        assert_no_leftovers(lab.path());
        // Nothing on the host still hashes or holds the temp file.
        assert_no_process_uses(&srv);
    }
    assert_verifies(&lab);
}

#[test]
fn ctrl_c_in_the_middle_of_a_download_writes_nothing() {
    let lab = TestLab::new(1);
    let srv = lab.path().join("srv");
    let remote = srv.join("big.bin");
    random_file(&remote, 300 * MIB);
    let before = std::fs::metadata(&remote).unwrap();
    let back = lab.path().join("back");
    let child = spawn_json(&lab, "download", &remote, &back);
    let out = interrupt_once_under_way(child, "INT", &back.join("vm01"), 8 * MIB);
    let r = interrupted_result(&lab, &out, 130);
    assert!(message(&r).contains("nothing was written"), "{r}");
    assert!(!back.join("vm01/big.bin").exists());
    assert_no_leftovers(&back.join("vm01"));
    assert_no_leftovers(&srv);
    let after = std::fs::metadata(&remote).unwrap();
    assert_eq!(
        (after.len(), after.mtime(), after.mtime_nsec()),
        (before.len(), before.mtime(), before.mtime_nsec())
    );
    // The host's SFTP session and hash command are gone.
    assert_no_process_uses(&srv);
}

#[test]
fn upload_download_and_skip_identical_work_against_dropbear() {
    // Field order matters: the lab goes down before its user is removed.
    let (lab, user, _parent) = TestLab::dropbear(1);
    assert!(
        Path::new("/usr/lib/sftp-server").exists(),
        "Dropbear runs /usr/lib/sftp-server for SFTP and it is missing: \
         install it with `apt-get install openssh-sftp-server`"
    );
    let owner = std::fs::metadata(&user.home).unwrap();
    // A directory the throwaway user owns, as its files on a real host.
    let srv = user.home.join("srv");
    std::fs::create_dir_all(&srv).unwrap();
    std::os::unix::fs::chown(&srv, Some(owner.uid()), Some(owner.gid())).unwrap();

    let local = lab.path().join("tool.bin");
    random_file(&local, 5 * MIB + 3);
    std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o750)).unwrap();
    let sent = digest_of(&local, b"");
    let remote = srv.join("tool.bin");
    let json = remex_json(&lab, &["upload", "vm01"], &[&local, &remote], 0);
    let r = result_of(&json, "vm01");
    assert_eq!(r["user"], user.name.as_str(), "{r}");
    assert_eq!(r["status"], "written", "{r}");
    assert_eq!(r["sha256"], sent.as_str(), "{r}");
    assert_eq!(r["bytes"], 5 * MIB + 3, "{r}");
    assert!(same_bytes(&remote, &local));
    let meta = std::fs::metadata(&remote).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o750);
    assert_eq!(meta.uid(), owner.uid(), "not written as the login user");
    assert_no_leftovers(&srv);

    // Again with --skip-identical: the file is left alone.
    let json = remex_json(
        &lab,
        &["upload", "vm01", "--skip-identical"],
        &[&local, &remote],
        0,
    );
    let r = result_of(&json, "vm01");
    assert_eq!(r["status"], "unchanged", "{r}");
    assert_eq!(r["bytes"], 0, "{r}");
    assert_eq!(r["sha256"], sent.as_str(), "{r}");
    assert_eq!(std::fs::metadata(&remote).unwrap().ino(), meta.ino());

    // Down again: a remote file with group write loses it (no
    // --preserve), and with --preserve keeps its mode exactly.
    let shared = srv.join("shared.bin");
    random_file(&shared, 3 * MIB + 7);
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o664)).unwrap();
    let shared_sum = digest_of(&shared, b"");
    let back = lab.path().join("back");
    let json = remex_json(&lab, &["download", "vm01"], &[&remote, &shared, &back], 0);
    let r = result_of(&json, "vm01");
    assert_eq!(r["status"], "written", "{r}");
    let files = r["files"].as_array().unwrap();
    assert_eq!(files[0]["sha256"], sent.as_str(), "{r}");
    assert_eq!(files[1]["sha256"], shared_sum.as_str(), "{r}");
    let down = back.join("vm01");
    assert!(same_bytes(&down.join("tool.bin"), &local));
    assert!(same_bytes(&down.join("shared.bin"), &shared));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(&down.join("tool.bin")), 0o750);
    assert_eq!(mode(&down.join("shared.bin")), 0o644);
    assert_no_leftovers(&down);
    let tool_inode = std::fs::metadata(down.join("tool.bin")).unwrap().ino();

    let json = remex_json(
        &lab,
        &["download", "vm01", "--skip-identical"],
        &[&remote, &shared, &back],
        0,
    );
    let r = result_of(&json, "vm01");
    assert_eq!(r["status"], "unchanged", "{r}");
    assert_eq!(r["bytes"], 0, "{r}");

    assert_eq!(
        std::fs::metadata(down.join("tool.bin")).unwrap().ino(),
        tool_inode,
        "an identical local file was rewritten"
    );

    let exact = lab.path().join("exact");
    remex_json(
        &lab,
        &["download", "vm01", "--preserve"],
        &[&shared, &exact],
        0,
    );
    assert_eq!(mode(&exact.join("vm01/shared.bin")), 0o664);
    assert!(same_bytes(&exact.join("vm01/shared.bin"), &shared));
    assert_no_leftovers(&exact.join("vm01"));
}

/// Waits until the fake tools' log names `tool`, then sends SIGINT to
/// `child` and returns its output.
fn interrupt_once_called(
    child: std::process::Child,
    tools: &LyingTools,
    tool: &str,
) -> std::process::Output {
    interrupt_when(child, "INT", &format!("a call of {tool}"), || {
        std::fs::read_to_string(tools.log_path()).is_ok_and(|calls| calls.contains(tool))
    })
}

#[test]
fn ctrl_c_while_the_host_verifies_keeps_the_old_file_and_writes_nothing() {
    let mut lab = TestLab::new(1);
    let tools = LyingTools::install(&mut lab, "vm01");
    // A host that takes its time to hash (and lets go of the file at once,
    // so only remex's own cleanup decides what is left).
    tools.script("openssl", "exec 0</dev/null; exec sleep 31");
    let srv = lab.path().join("srv");

    // Upload: interrupted while the host hashes the temp file.
    let local = lab.path().join("release.bin");
    random_file(&local, 3 * MIB);
    let remote = srv.join("release.bin");
    old_file(&remote, "the old release\n");
    let child = spawn_json(&lab, "upload", &local, &remote);
    let out = interrupt_once_called(child, &tools, "openssl");
    let r = interrupted_result(&lab, &out, 130);
    assert!(
        message(&r).contains("the destination was not replaced"),
        "{r}"
    );
    assert_holds(&remote, "the old release\n");
    assert_no_leftovers(&srv);
    tools.take_calls();

    // Download: interrupted while the host hashes the source.
    let back = lab.path().join("back");
    let child = spawn_json(&lab, "download", &local, &back);
    let out = interrupt_once_called(child, &tools, "openssl");
    let r = interrupted_result(&lab, &out, 130);
    assert!(message(&r).contains("nothing was written"), "{r}");
    assert!(!back.join("vm01/release.bin").exists());
    assert_no_leftovers(&back.join("vm01"));
}

#[test]
fn an_sftp_only_host_is_verified_by_reading_the_copy_back() {
    // `ForceCommand internal-sftp`: the host runs no command (remex's hash
    // commands get "This service allows sftp connections only."), so
    // remex verifies by reading the file back over SFTP: large files too,
    // through the streaming path (over 64 MiB) and the whole-file one.
    let mut lab = TestLab::new(1);
    lab.reconfigure(
        "vm01",
        "PrintMotd no",
        "PrintMotd no\nForceCommand internal-sftp",
    );
    let refused = lab
        .remex()
        .args(["exec", "vm01", "--", "true"])
        .run()
        .expect_code(1);
    assert!(
        refused.stdout().contains("sftp connections only"),
        "{}",
        refused.stdout()
    );
    round_trip_by_read_back(lab.path(), &|| lab.remex().arg("--json"));
}

/// Uploads a tree of a 65 MiB file (the streaming hash's path) and a 3 MiB
/// one (the whole-file hash's) to vm01 of a host that runs no commands, so
/// both are verified by reading them back; uploads it again with
/// `--skip-identical` (`unchanged`) and downloads it: every byte arrives,
/// both ways. `remex` gives a `--json` invocation for that host; the files
/// live below `dir`.
pub fn round_trip_by_read_back(dir: &Path, remex: &dyn Fn() -> Remex) {
    let tree = dir.join("tree");
    random_file(&tree.join("big.bin"), 65 * MIB);
    random_file(&tree.join("mid.bin"), 3 * MIB);
    let srv = dir.join("srv");
    std::fs::create_dir_all(&srv).unwrap();
    let run_json = |words: &[&str], paths: &[&Path]| {
        remex().args(words).args(paths).run().expect_code(0).json()
    };

    let json = run_json(&["upload", "-r", "vm01"], &[&tree, &srv]);
    let r = result_of(&json, "vm01");
    assert_eq!(r["status"], "written", "{r}");
    for name in ["big.bin", "mid.bin"] {
        assert!(
            same_bytes(&tree.join(name), &srv.join("tree").join(name)),
            "{name} arrived different"
        );
    }
    assert_no_leftovers(&srv.join("tree"));

    // Unchanged when the host's copy is the same, by the same read-back.
    let json = run_json(
        &["upload", "-r", "--skip-identical", "vm01"],
        &[&tree, &srv],
    );
    assert_eq!(result_of(&json, "vm01")["status"], "unchanged", "{json}");

    let back = dir.join("back");
    let json = run_json(&["download", "-r", "vm01"], &[&srv.join("tree"), &back]);
    assert_eq!(result_of(&json, "vm01")["status"], "written", "{json}");
    for name in ["big.bin", "mid.bin"] {
        assert!(
            same_bytes(&tree.join(name), &back.join("vm01/tree").join(name)),
            "{name} came back different"
        );
    }
}
