//! `remex upload` and `remex download` against labs of real OpenSSH sshd
//! hosts. Every lab host is this machine, so the tests read and write the
//! "remote" files directly to check them — and hosts share a filesystem, as
//! hosts with an NFS home do.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::proxy::CutProxy;
use crate::util::{Remex, Run, TestLab, ThrowawayUser, running_as_root, temp_files, write};

/// remex's default bytes per SFTP request (`remex::transfer::DEFAULT_CHUNK`).
const CHUNK: usize = remex::transfer::DEFAULT_CHUNK;

/// Deterministic pseudo-random bytes (xorshift), fast enough for 100 MB.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn results(run: &Run) -> Vec<Value> {
    let json = run.json();
    json["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {json}"))
        .clone()
}

/// `remex --config LAB --json WORDS… PATHS…`, expecting exit `code`.
fn run_json(
    lab: &TestLab,
    words: &[&str],
    paths: &[&dyn AsRef<std::ffi::OsStr>],
    code: i32,
) -> Run {
    run_json_with(&lab.config(), words, paths, code)
}

/// [`run_json`] with another config (such as one through a proxy).
fn run_json_with(
    config: &Path,
    words: &[&str],
    paths: &[&dyn AsRef<std::ffi::OsStr>],
    code: i32,
) -> Run {
    Remex::new()
        .arg("--config")
        .arg(config)
        .arg("--json")
        .args(words)
        .args(paths.iter().map(|p| p.as_ref()))
        .run()
        .expect_code(code)
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

#[test]
fn upload_and_download_keep_every_byte_at_chunk_edges() {
    let lab = TestLab::new(1);
    let src = lab.path().join("src");
    let sizes = [
        0,
        1,
        CHUNK - 1,
        CHUNK,
        CHUNK + 1,
        3 * CHUNK - 1,
        3 * CHUNK,
        3 * CHUNK + 1,
    ];
    let mut locals = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let path = src.join(format!("f{i}-{size}"));
        write(&path, &bytes(*size, i as u64 + 7));
        locals.push(path);
    }
    let remote = lab.path().join("remote");
    let run = lab
        .remex()
        .args(["--json", "upload", "vm01"])
        .args(&locals)
        .arg(format!("{}/", remote.display()))
        .arg("--mkdir")
        .run()
        .expect_code(0);
    let r = &results(&run)[0];
    assert_eq!(r["status"], "written");
    assert_eq!(r["files"].as_array().unwrap().len(), sizes.len());
    for (local, file) in locals.iter().zip(r["files"].as_array().unwrap()) {
        let data = std::fs::read(local).unwrap();
        let name = local.file_name().unwrap();
        let uploaded = std::fs::read(remote.join(name)).unwrap();
        assert!(
            uploaded == data,
            "{} differs after upload",
            name.to_string_lossy()
        );
        assert_eq!(file["sha256"], sha256(&data));
        assert_eq!(file["size"], data.len());
        assert_eq!(file["status"], "written");
    }
    assert!(temp_files(&remote).is_empty(), "{:?}", temp_files(&remote));

    let back = lab.path().join("back");
    let remotes: Vec<PathBuf> = locals
        .iter()
        .map(|l| remote.join(l.file_name().unwrap()))
        .collect();
    let run = lab
        .remex()
        .args(["--json", "download", "vm01"])
        .args(&remotes)
        .arg(&back)
        .run()
        .expect_code(0);
    assert_eq!(results(&run)[0]["status"], "written");
    for local in &locals {
        let name = local.file_name().unwrap();
        let got = std::fs::read(back.join("vm01").join(name)).unwrap();
        assert!(
            got == std::fs::read(local).unwrap(),
            "{name:?} differs after download"
        );
    }
    assert!(temp_files(&back.join("vm01")).is_empty());
}

#[test]
fn a_file_over_100_mb_round_trips_over_several_channels() {
    let lab = TestLab::new(1);
    let size = 100 * 1024 * 1024 + 3;
    let data = bytes(size, 42);
    let digest = sha256(&data);
    let local = lab.path().join("big.bin");
    write(&local, &data);
    drop(data);
    let remote = lab.path().join("remote/big.copy");
    std::fs::create_dir_all(remote.parent().unwrap()).unwrap();
    // An old file at the destination is replaced as a whole.
    write(&remote, b"old contents");
    let run = run_json(&lab, &["upload", "vm01"], &[&local, &remote], 0);
    let r = &results(&run)[0];
    assert_eq!(r["sha256"], digest.as_str());
    assert_eq!(r["bytes"], size);
    // The file went over more than one SFTP channel (sshd logs each
    // subsystem request).
    let sftp_sessions = lab
        .sshd_log("vm01")
        .matches("Starting session: subsystem")
        .count();
    assert!(
        sftp_sessions >= 2,
        "one SFTP channel only:\n{}",
        lab.sshd_log("vm01")
    );
    // It was hashed on the host (by one command following the writes).
    let commands = lab
        .sshd_log("vm01")
        .matches("Starting session: command")
        .count();
    assert!(
        commands >= 1,
        "no hash command ran:\n{}",
        lab.sshd_log("vm01")
    );
    let uploaded = std::fs::read(&remote).unwrap();
    assert_eq!(uploaded.len(), size);
    assert_eq!(sha256(&uploaded), digest);
    drop(uploaded);

    let back = lab.path().join("back");
    let run = run_json(&lab, &["download", "vm01"], &[&remote, &back], 0);
    assert_eq!(results(&run)[0]["sha256"], digest.as_str());
    let got = std::fs::read(back.join("vm01/big.copy")).unwrap();
    assert_eq!(sha256(&got), digest);
}

#[test]
fn many_hosts_at_once_each_write_their_own_temp_file() {
    let lab = TestLab::new(8);
    let data = bytes(3 * CHUNK + 17, 5);
    let local = lab.path().join("conf.bin");
    write(&local, &data);
    // All lab hosts share this machine's filesystem (like an NFS home):
    // eight hosts replace the same file at once and it ends up whole.
    let remote_dir = lab.path().join("shared");
    std::fs::create_dir_all(&remote_dir).unwrap();
    let run = run_json(
        &lab,
        &["upload", "all", "--parallel", "8"],
        &[&local, &format!("{}/", remote_dir.display())],
        0,
    );
    let res = results(&run);
    assert_eq!(res.len(), 8);
    for r in &res {
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["sha256"], sha256(&data));
    }
    assert!(std::fs::read(remote_dir.join("conf.bin")).unwrap() == data);
    assert!(
        temp_files(&remote_dir).is_empty(),
        "{:?}",
        temp_files(&remote_dir)
    );

    let back = lab.path().join("back");
    run_json(
        &lab,
        &["download", "all"],
        &[&remote_dir.join("conf.bin"), &back],
        0,
    );
    for host in &lab.lab.hosts {
        let got = std::fs::read(back.join(&host.name).join("conf.bin")).unwrap();
        assert!(got == data, "{} got other bytes", host.name);
    }
}

#[test]
fn directories_round_trip_with_empty_dirs_symlinks_and_modes() {
    let lab = TestLab::new(1);
    let tree = lab.path().join("tree");
    write(&tree.join("top.txt"), b"top\n");
    write(&tree.join("a/b/deep.bin"), &bytes(CHUNK + 5, 9));
    write(&tree.join("a/script.sh"), b"#!/bin/sh\necho hi\n");
    std::fs::create_dir_all(tree.join("empty")).unwrap();
    std::fs::create_dir_all(tree.join("private")).unwrap();
    write(&tree.join("private/secret"), b"s");
    std::os::unix::fs::symlink("a/b/deep.bin", tree.join("link-to-deep")).unwrap();
    std::os::unix::fs::symlink("../top.txt", tree.join("a/up-link")).unwrap();
    std::fs::set_permissions(
        tree.join("a/script.sh"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    std::fs::set_permissions(
        tree.join("private/secret"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(tree.join("private"), std::fs::Permissions::from_mode(0o700)).unwrap();

    let dest = lab.path().join("dest");
    let run = run_json(
        &lab,
        &["upload", "vm01", "-r"],
        &[&tree, &format!("{}/", dest.display()), &"--mkdir"],
        0,
    );
    let files = results(&run)[0]["files"].as_array().unwrap().clone();
    let kinds: Vec<&str> = files.iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert!(
        kinds.contains(&"dir") && kinds.contains(&"symlink") && kinds.contains(&"file"),
        "{kinds:?}"
    );
    let up = dest.join("tree");
    assert_eq!(std::fs::read(up.join("top.txt")).unwrap(), b"top\n");
    assert!(std::fs::read(up.join("a/b/deep.bin")).unwrap() == bytes(CHUNK + 5, 9));
    assert!(up.join("empty").is_dir());
    assert_eq!(
        std::fs::read_link(up.join("link-to-deep")).unwrap(),
        Path::new("a/b/deep.bin")
    );
    assert_eq!(
        std::fs::read_link(up.join("a/up-link")).unwrap(),
        Path::new("../top.txt")
    );
    assert_eq!(mode(&up.join("a/script.sh")), 0o750);
    assert_eq!(mode(&up.join("private/secret")), 0o600);
    assert_eq!(mode(&up.join("private")), 0o700);

    // Again: every file and link is there, so with --skip-identical
    // nothing is written.
    let run = run_json(
        &lab,
        &["upload", "vm01", "-r", "--skip-identical"],
        &[&tree, &format!("{}/", dest.display())],
        0,
    );
    let r = &results(&run)[0];
    assert_eq!(r["status"], "unchanged", "{r}");
    assert_eq!(r["bytes"], 0);
    // People read: no bytes and no rate when nothing moved.
    let run = lab
        .remex()
        .args(["upload", "vm01", "-r", "--skip-identical"])
        .arg(&tree)
        .arg(format!("{}/", dest.display()))
        .run()
        .expect_code(0);
    let line = run.stdout();
    assert!(
        line.starts_with("vm01: unchanged ")
            && line.contains(" entries in ")
            && !line.contains("B/s"),
        "{line}"
    );
    assert!(
        run.stderr().starts_with("1 host: 1 ok; 0 B sent in "),
        "{}",
        run.stderr()
    );

    // And back down: the same tree under LOCAL_DIR/vm01/.
    let back = lab.path().join("back");
    run_json(
        &lab,
        &["download", "vm01", "-r", "--preserve"],
        &[&up, &back],
        0,
    );
    let down = back.join("vm01/tree");
    assert!(std::fs::read(down.join("a/b/deep.bin")).unwrap() == bytes(CHUNK + 5, 9));
    assert!(down.join("empty").is_dir());
    assert_eq!(
        std::fs::read_link(down.join("link-to-deep")).unwrap(),
        Path::new("a/b/deep.bin")
    );
    assert_eq!(std::fs::read(down.join("a/up-link")).unwrap(), b"top\n");
    assert_eq!(mode(&down.join("a/script.sh")), 0o750);
    assert_eq!(mode(&down.join("private/secret")), 0o600);
}

#[test]
fn skip_identical_leaves_an_equal_file_alone_and_rewrites_a_different_one() {
    let lab = TestLab::new(2);
    let local = lab.path().join("app.conf");
    write(&local, b"setting = 1\n");
    let remote = lab.path().join("etc/app.conf");
    std::fs::create_dir_all(remote.parent().unwrap()).unwrap();
    let upload = || {
        run_json(
            &lab,
            &["upload", "vm01", "--skip-identical"],
            &[&local, &remote],
            0,
        )
    };
    assert_eq!(results(&upload())[0]["status"], "written");
    let inode = std::fs::metadata(&remote).unwrap().ino();
    let r = &results(&upload())[0];
    assert_eq!(r["status"], "unchanged");
    assert_eq!(r["bytes"], 0);
    assert_eq!(r["files"][0]["status"], "unchanged");
    assert_eq!(r["sha256"], sha256(b"setting = 1\n"));
    assert_eq!(
        std::fs::metadata(&remote).unwrap().ino(),
        inode,
        "the file was rewritten"
    );
    // Several hosts (the local file is hashed once for all): each finds it
    // identical.
    let run = run_json(
        &lab,
        &["upload", "all", "--skip-identical"],
        &[&local, &remote],
        0,
    );
    for r in &results(&run) {
        assert_eq!(r["status"], "unchanged", "{r}");
        assert_eq!(r["sha256"], sha256(b"setting = 1\n"), "{r}");
    }
    // Same size, other bytes: written.
    write(&local, b"setting = 2\n");
    assert_eq!(results(&upload())[0]["status"], "written");
    assert_eq!(std::fs::read(&remote).unwrap(), b"setting = 2\n");

    // Downloads too.
    let back = lab.path().join("back");
    let download = || {
        run_json(
            &lab,
            &["download", "vm01", "--skip-identical"],
            &[&remote, &back],
            0,
        )
    };
    assert_eq!(results(&download())[0]["status"], "written");
    assert_eq!(results(&download())[0]["status"], "unchanged");
}

#[test]
fn a_cut_connection_leaves_the_destination_as_it_was_and_no_temp_file_after_the_next_run() {
    let lab = TestLab::new(1);
    let data = bytes(24 * 1024 * 1024, 77);
    let local = lab.path().join("release.bin");
    write(&local, &data);
    let dir = lab.path().join("srv");
    let remote = dir.join("release.bin");
    write(&remote, b"the old release");
    let proxy = CutProxy::start(
        "127.0.0.2",
        lab.lab.hosts[0].socket_addr().into(),
        4 * 1024 * 1024,
    );
    let config = proxy.config_for(&lab, "via-proxy.yml");
    let run = run_json_with(&config, &["upload", "vm01"], &[&local, &remote], 1);
    assert!(
        proxy.cut.load(std::sync::atomic::Ordering::SeqCst),
        "the proxy never cut"
    );
    let r = &results(&run)[0];
    assert_eq!(r["ok"], false);
    assert!(
        ["io", "transfer"].contains(&r["error"]["kind"].as_str().unwrap()),
        "{r}"
    );
    assert_eq!(std::fs::read(&remote).unwrap(), b"the old release");

    // Downloads through the cut leave nothing behind locally either.
    let back = lab.path().join("back");
    let run = run_json_with(&config, &["download", "vm01"], &[&local, &back], 1);
    assert_eq!(results(&run)[0]["ok"], false);
    assert!(!back.join("vm01/release.bin").exists());
    assert!(
        temp_files(&back.join("vm01")).is_empty(),
        "{:?}",
        temp_files(&back.join("vm01"))
    );

    // The next successful run replaces the file and leaves no temp file.
    run_json(&lab, &["upload", "vm01"], &[&local, &remote], 0);
    assert!(std::fs::read(&remote).unwrap() == data);
    assert!(temp_files(&dir).is_empty(), "{:?}", temp_files(&dir));
}

#[test]
fn resume_continues_from_what_the_cut_transfer_left() {
    let lab = TestLab::new(1);
    let size = 24 * 1024 * 1024;
    let data = bytes(size, 99);
    let local = lab.path().join("image.bin");
    write(&local, &data);
    let dir = lab.path().join("images");
    std::fs::create_dir_all(&dir).unwrap();
    let remote = dir.join("image.bin");
    let proxy = CutProxy::start(
        "127.0.0.2",
        lab.lab.hosts[0].socket_addr().into(),
        10 * 1024 * 1024,
    );
    let config = proxy.config_for(&lab, "via-proxy.yml");
    run_json_with(
        &config,
        &["upload", "vm01", "--resume"],
        &[&local, &remote],
        1,
    );
    assert!(!remote.exists());
    let temps = temp_files(&dir);
    assert_eq!(temps.len(), 1, "--resume keeps the temp file: {temps:?}");
    let held = std::fs::metadata(dir.join(&temps[0])).unwrap().len();
    assert!(held > 0, "nothing arrived before the cut");

    let run = run_json(&lab, &["upload", "vm01", "--resume"], &[&local, &remote], 0);
    let r = &results(&run)[0];
    assert_eq!(r["sha256"], sha256(&data));
    assert_eq!(
        r["bytes"],
        size as u64 - held,
        "did not continue from {held}: {r}"
    );
    assert!(std::fs::read(&remote).unwrap() == data);
    assert!(temp_files(&dir).is_empty());

    // A temp file that does not match the local file is not trusted:
    // the upload starts over and the result is still right.
    let other = lab.path().join("other.bin");
    write(&other, &bytes(size, 1));
    let temp = dir.join(temps[0].replacen("image.bin", "other.bin", 1));
    write(&temp, &bytes(1024 * 1024, 2));
    let remote_other = dir.join("other.bin");
    let run = run_json(
        &lab,
        &["upload", "vm01", "--resume"],
        &[&other, &remote_other],
        0,
    );
    assert_eq!(results(&run)[0]["bytes"], size as u64);
    assert!(std::fs::read(&remote_other).unwrap() == bytes(size, 1));
}

/// A small tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "remex-test"])
            .arg(path)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a tmpfs on {} failed",
            path.display()
        );
        Tmpfs(path.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_remote_disk_is_a_clear_error_and_the_old_file_stays() {
    assert!(
        running_as_root(),
        "THIS TEST NEEDS ROOT: it mounts a small tmpfs as the remote disk. CI runs it as root."
    );
    let lab = TestLab::new(1);
    let disk = lab.path().join("small-disk");
    let _tmpfs = Tmpfs::mount(&disk, "1m");
    let remote = disk.join("data.bin");
    write(&remote, &bytes(100 * 1024, 3));
    let local = lab.path().join("data.bin");
    write(&local, &bytes(3 * 1024 * 1024, 4));
    let run = run_json(&lab, &["upload", "vm01"], &[&local, &remote], 1);
    let r = &results(&run)[0];
    assert_eq!(r["error"]["kind"], "transfer", "{r}");
    let message = r["error"]["message"].as_str().unwrap();
    assert!(message.contains("no space left"), "{message}");
    assert!(message.contains(&remote.display().to_string()), "{message}");
    assert!(std::fs::read(&remote).unwrap() == bytes(100 * 1024, 3));
    assert!(temp_files(&disk).is_empty(), "{:?}", temp_files(&disk));
}

#[test]
fn downloads_never_write_outside_the_local_dir() {
    let lab = TestLab::new(1);
    let remote = lab.path().join("hostile");
    write(&remote.join("fine.txt"), b"fine");
    write(&remote.join("sub/inner.txt"), b"inner");
    std::os::unix::fs::symlink("/etc/passwd", remote.join("absolute-link")).unwrap();
    std::os::unix::fs::symlink("../../../../outside.txt", remote.join("sub/climbing-link"))
        .unwrap();
    std::os::unix::fs::symlink("sub/../..", remote.join("sneaky-link")).unwrap();
    std::os::unix::fs::symlink("fine.txt", remote.join("good-link")).unwrap();
    let local = lab.path().join("collected");
    let run = run_json(&lab, &["download", "vm01", "-r"], &[&remote, &local], 1);
    let r = &results(&run)[0];
    assert_eq!(r["error"]["kind"], "transfer");
    let files = r["files"].as_array().unwrap();
    let refused: Vec<&Value> = files.iter().filter(|f| f["status"] == "failed").collect();
    assert_eq!(refused.len(), 3, "{r}");
    for f in &refused {
        assert!(
            f["error"]["message"]
                .as_str()
                .unwrap()
                .contains("points outside"),
            "{f}"
        );
    }
    let root = local.join("vm01/hostile");
    assert_eq!(std::fs::read(root.join("fine.txt")).unwrap(), b"fine");
    assert_eq!(std::fs::read(root.join("sub/inner.txt")).unwrap(), b"inner");
    assert_eq!(
        std::fs::read_link(root.join("good-link")).unwrap(),
        Path::new("fine.txt")
    );
    for name in ["absolute-link", "sneaky-link", "sub/climbing-link"] {
        assert!(
            std::fs::symlink_metadata(root.join(name)).is_err(),
            "{name} was created"
        );
    }

    // A local symlink planted in the host's directory is never written
    // through.
    let elsewhere = lab.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::remove_dir_all(root.join("sub")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, root.join("sub")).unwrap();
    let run = run_json(&lab, &["download", "vm01", "-r"], &[&remote, &local], 1);
    let r = &results(&run)[0];
    let through = r["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("refusing to write through it"))
        })
        .count();
    assert_eq!(through, 1, "{r}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);

    // REMOTE arguments: `..` and `/` name no file; `../x` lands as `x`.
    for bad in ["..", "/", "/tmp/.."] {
        let run = lab
            .remex()
            .args(["download", "vm01", bad])
            .arg(&local)
            .run()
            .expect_code(2);
        assert!(
            run.stderr().contains("name a file or directory"),
            "{}",
            run.stderr()
        );
    }
    // Relative to the host's home, where SFTP starts (hosts/vm01/home).
    let relative = "../../../hostile/fine.txt";
    let run = lab
        .remex()
        .args(["--json", "download", "vm01", relative])
        .arg(lab.path().join("flat"))
        .arg("--flat")
        .run()
        .expect_code(0);
    assert_eq!(
        results(&run)[0]["files"][0]["local"],
        lab.path().join("flat/fine.txt").display().to_string()
    );
}

#[test]
fn permission_denied_names_the_path_and_other_hosts_carry_on() {
    assert!(
        running_as_root(),
        "THIS TEST NEEDS ROOT: it creates a throwaway user who lacks permissions. CI runs it as root."
    );
    let parent = tempfile::tempdir().unwrap();
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let user = ThrowawayUser::create(parent.path());
    let lab = TestLab::with(2, remex::lab::ServerKind::OpenSsh, Some(user.name.clone()));
    // root's directory: the user may not write there.
    let locked = lab.path().join("locked");
    std::fs::create_dir_all(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    let local = lab.path().join("x.conf");
    write(&local, b"x");
    let run = run_json(
        &lab,
        &["upload", "all"],
        &[&local, &format!("{}/", locked.display())],
        1,
    );
    for r in results(&run) {
        assert_eq!(r["error"]["kind"], "transfer", "{r}");
        let message = r["error"]["message"].as_str().unwrap();
        assert!(message.contains("permission denied"), "{message}");
        assert!(
            message.contains(&locked.join("x.conf").display().to_string()),
            "{message}"
        );
    }

    // A file only root may read: a per-host error; the readable one still
    // arrives.
    let secret = lab.path().join("secret");
    write(&secret, b"s");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let open = lab.path().join("open");
    write(&open, b"o");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let back = lab.path().join("back");
    let run = run_json(&lab, &["download", "vm01"], &[&secret, &open, &back], 1);
    let r = &results(&run)[0];
    let message = r["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("permission denied") && message.contains("secret"),
        "{message}"
    );
    assert_eq!(std::fs::read(back.join("vm01/open")).unwrap(), b"o");
    assert!(!back.join("vm01/secret").exists());
}

#[test]
fn usage_errors_exit_2_and_remote_errors_name_what_is_missing() {
    let lab = TestLab::new(2);
    let local = lab.path().join("a.txt");
    write(&local, b"a");
    // A missing local file: nothing is contacted.
    let run = lab
        .remex()
        .args(["upload", "all", "/nonexistent/file", "/tmp/"])
        .run()
        .expect_code(2);
    assert!(
        run.stderr().contains("/nonexistent/file"),
        "{}",
        run.stderr()
    );
    // A directory without -r.
    let run = lab
        .remex()
        .args(["upload", "all"])
        .arg(lab.path())
        .arg("/tmp/x")
        .run()
        .expect_code(2);
    assert!(run.stderr().contains("use -r"), "{}", run.stderr());
    // --flat with two hosts.
    let run = lab
        .remex()
        .args(["download", "all", "--flat"])
        .arg(&local)
        .arg(lab.path().join("out"))
        .run()
        .expect_code(2);
    assert!(
        run.stderr().contains("--flat needs exactly one host"),
        "{}",
        run.stderr()
    );
    // A missing remote directory, without --mkdir.
    let missing = lab.path().join("no/such/dir");
    let run = run_json(
        &lab,
        &["upload", "vm01"],
        &[&local, &format!("{}/", missing.display())],
        1,
    );
    let message = results(&run)[0]["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("--mkdir") && message.contains("no/such/dir"),
        "{message}"
    );
    // A missing remote file on download.
    let run = run_json(
        &lab,
        &["download", "vm01"],
        &[&lab.path().join("nope.txt"), &lab.path().join("out")],
        1,
    );
    let r = &results(&run)[0];
    assert_eq!(r["error"]["kind"], "transfer");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no such file"),
        "{r}"
    );
    // Human output: a line per host and a summary.
    let run = lab
        .remex()
        .args(["upload", "all", "--mode", "0600"])
        .arg(&local)
        .arg(lab.path().join("copy.txt"))
        .run()
        .expect_code(0);
    assert!(
        run.stdout().contains("vm01: written 1 entry"),
        "{}",
        run.stdout()
    );
    assert!(run.stderr().contains("2 hosts: 2 ok; "), "{}", run.stderr());
    assert_eq!(mode(&lab.path().join("copy.txt")), 0o600);
}

#[test]
fn the_read_back_fallback_verifies_too() {
    // Hosts without sha256sum/shasum/openssl are verified by reading the
    // file back; the lab has the tools, so the library is told to use the
    // fallback.
    let lab = TestLab::new(1);
    let data = bytes(3 * 1024 * 1024 + 1, 11);
    let local = lab.path().join("f.bin");
    write(&local, &data);
    let remote = lab.path().join("f.copy");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = runtime.block_on(async {
        let config = remex::Config::load(&lab.config()).unwrap();
        let executor = remex::Executor::new(config).unwrap();
        let mut upload =
            remex::transfer::Upload::new(vec![local.clone()], remote.display().to_string());
        upload.options.verify_by = remex::transfer::VerifyBy::ReadBack;
        let report = executor
            .upload(&remex::RunContext::new(), "vm01", &upload)
            .await
            .unwrap();
        executor.close().await;
        report
    });
    assert!(report.all_ok(), "{:?}", report.results[0].error);
    assert_eq!(
        report.results[0].detail.sha256.as_deref(),
        Some(sha256(&data).as_str())
    );
    assert!(std::fs::read(&remote).unwrap() == data);
    // No remote command ran: every session sshd started was SFTP.
    let log = lab.sshd_log("vm01");
    assert!(log.contains("Starting session: subsystem"), "{log}");
    assert_eq!(log.matches("Starting session: command").count(), 0, "{log}");
}

#[test]
fn a_tiny_memory_budget_shared_by_many_hosts_still_moves_everything() {
    // One request's worth of budget for four hosts at once: every host
    // waits its turn for each chunk, none waits on another forever.
    let lab = TestLab::new(4);
    let data = bytes(6 * CHUNK + 3, 21);
    let local = lab.path().join("budget.bin");
    write(&local, &data);
    let remote = lab.path().join("budget.copy");
    let back = lab.path().join("back");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (up, down) = runtime.block_on(async {
        let config = remex::Config::load(&lab.config()).unwrap();
        let executor = remex::Executor::new(config).unwrap();
        let mut upload =
            remex::transfer::Upload::new(vec![local.clone()], remote.display().to_string());
        upload.options.memory_budget = 1;
        let up = executor
            .upload(&remex::RunContext::new(), "all", &upload)
            .await
            .unwrap();
        let mut download =
            remex::transfer::Download::new(vec![remote.display().to_string()], back.clone());
        download.options.memory_budget = 1;
        let down = executor
            .download(&remex::RunContext::new(), "all", &download)
            .await
            .unwrap();
        executor.close().await;
        (up, down)
    });
    assert!(up.all_ok(), "{:?}", up.results);
    assert!(down.all_ok(), "{:?}", down.results);
    assert!(std::fs::read(&remote).unwrap() == data);
    for host in &lab.lab.hosts {
        assert!(std::fs::read(back.join(&host.name).join("budget.copy")).unwrap() == data);
    }
}

/// `.NAME.TAG.remex-part`: the temp name remex uses for `name` on `host`
/// (TAG: 8 hex digits of the SHA-256 of the host's name).
fn usual_temp_name(name: &str, host: &str) -> String {
    format!(".{name}.{}.remex-part", &sha256(host.as_bytes())[..8])
}

/// A process that holds a file open until dropped.
struct Holder(std::process::Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_upload_never_writes_a_temp_file_another_upload_has_open() {
    let lab = TestLab::new(1);
    let data = bytes(3 * 1024 * 1024 + 5, 91);
    let local = lab.path().join("app.bin");
    write(&local, &data);
    let dir = lab.path().join("srv");
    let remote = dir.join("app.bin");
    write(&remote, b"old");
    // Another upload to the same destination is under way: its temp file
    // is open on the host (here: by a process holding it).
    let theirs = dir.join(usual_temp_name("app.bin", "vm01"));
    write(&theirs, b"another upload's bytes");
    let mut holder = Holder(
        Command::new("sh")
            .arg("-c")
            .arg("exec 3<\"$1\"; echo held; exec sleep 60")
            .arg("holder")
            .arg(&theirs)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut held = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.0.stdout.take().unwrap()),
        &mut held,
    )
    .unwrap();
    assert_eq!(held.trim(), "held");

    let run = run_json(&lab, &["upload", "vm01"], &[&local, &remote], 0);
    let r = &results(&run)[0];
    assert_eq!(r["ok"], true, "{r}");
    assert!(std::fs::read(&remote).unwrap() == data);
    // The other upload's temp file is untouched; ours is gone.
    assert_eq!(std::fs::read(&theirs).unwrap(), b"another upload's bytes");
    assert_eq!(temp_files(&dir), vec![usual_temp_name("app.bin", "vm01")]);
    drop(holder);

    // Nobody has it open any more: a leftover, which the next run replaces
    // (and so removes).
    write(&remote, b"old");
    run_json(&lab, &["upload", "vm01"], &[&local, &remote], 0);
    assert!(std::fs::read(&remote).unwrap() == data);
    assert!(temp_files(&dir).is_empty(), "{:?}", temp_files(&dir));
}

#[test]
fn a_remote_name_that_is_not_utf8_fails_alone_and_says_why() {
    use std::os::unix::ffi::OsStrExt as _;
    let lab = TestLab::new(1);
    let dir = lab.path().join("logs");
    write(&dir.join("good.txt"), b"good");
    write(
        &dir.join(std::ffi::OsStr::from_bytes(b"b\xffd.txt")),
        b"bad name",
    );
    let back = lab.path().join("back");
    let run = run_json(&lab, &["download", "vm01", "-r"], &[&dir, &back], 1);
    let r = &results(&run)[0];
    let failed: Vec<&Value> = r["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{r}");
    let message = failed[0]["error"]["message"].as_str().unwrap();
    assert!(message.contains("not valid UTF-8"), "{message}");
    assert_eq!(
        std::fs::read(back.join("vm01/logs/good.txt")).unwrap(),
        b"good"
    );
}

/// Runs `remex ARGS…` on a terminal: everything it showed there.
fn on_a_terminal(args: &[&str]) -> String {
    let (code, shown) = Remex::new().args(args).on_a_terminal().finish();
    assert_eq!(code, 0, "{shown:?}");
    shown
}

#[test]
fn progress_bars_show_on_a_terminal_only() {
    let lab = TestLab::new(2);
    let local = lab.path().join("big.bin");
    write(&local, &bytes(32 * 1024 * 1024, 3));
    let dir = lab.path().join("srv");
    std::fs::create_dir_all(&dir).unwrap();
    let remote = format!("{}/", dir.display());
    let config = lab.config();
    let config = config.to_str().unwrap();
    let local = local.to_str().unwrap();

    // A terminal: a bar per host (bytes, rate, ETA) and a total.
    let shown = on_a_terminal(&["--config", config, "upload", "all", local, &remote]);
    for needle in ["vm01", "vm02", "total", "eta ", "MiB/s"] {
        assert!(shown.contains(needle), "no {needle:?} in {shown:?}");
    }
    // --json on a terminal, and no terminal at all: no bars.
    let json = on_a_terminal(&[
        "--config", config, "--json", "upload", "all", local, &remote,
    ]);
    assert!(!json.contains("eta "), "{json:?}");
    let piped = lab
        .remex()
        .args(["upload", "all", local, &remote])
        .run()
        .expect_code(0);
    assert!(!piped.stderr().contains("eta "), "{}", piped.stderr());
}
