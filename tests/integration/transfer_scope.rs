//! Path scopes (`transfer::Options::scope`) and special modes
//! (`Options::special_modes`), through the library as the service uses
//! it, against real sshd. The lab's hosts are sshd processes on this
//! machine, so each test lays out symlinks and files in its temp dir and
//! checks the file system directly: nothing may appear outside the scope.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use remex::transfer::{Download, PathScope, Upload};
use remex::{Config, ErrorKind, Executor, Failure, RunContext};

use crate::util::{TestLab, ThrowawayUser, running_as_root};

/// A lab of one host, an executor on it, and a tree:
/// `area/allowed/` (the scope), `area/outside/` (holding `secret.txt`),
/// `area/allowed/inner/` (a directory inside).
struct Scoped {
    lab: TestLab,
    runtime: tokio::runtime::Runtime,
    executor: Executor,
    /// `area/allowed`, canonical.
    allowed: PathBuf,
    /// `area/outside`, canonical.
    outside: PathBuf,
    /// A local file to upload.
    local: PathBuf,
}

const SECRET: &str = "SECRET-outside-the-scope-7f3a";
const PAYLOAD: &str = "report rows from the workflow\n";

impl Scoped {
    fn new() -> Scoped {
        let lab = TestLab::new(1);
        let area = std::fs::canonicalize(lab.path()).unwrap().join("area");
        let allowed = area.join("allowed");
        let outside = area.join("outside");
        std::fs::create_dir_all(allowed.join("inner")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), SECRET).unwrap();
        let local = lab.path().join("payload.txt");
        std::fs::write(&local, PAYLOAD).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let executor = Executor::new(Config::load(&lab.config()).unwrap()).unwrap();
        Scoped {
            lab,
            runtime,
            executor,
            allowed,
            outside,
            local,
        }
    }

    /// `allowed/**`.
    fn scope(&self) -> PathScope {
        PathScope::parse(&format!("{}/**", self.allowed.display())).unwrap()
    }

    fn upload_with(&self, upload: &Upload) -> Result<(), Failure> {
        let report = self
            .runtime
            .block_on(self.executor.upload(&RunContext::new(), "vm01", upload))
            .unwrap();
        match report.results[0].error.clone() {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }

    /// Uploads the payload to `dest` under the scope.
    fn upload(&self, dest: &str) -> Result<(), Failure> {
        let mut upload = Upload::new(vec![self.local.clone()], dest);
        upload.options.scope = Some(self.scope());
        self.upload_with(&upload)
    }

    /// Uploads the payload to `dest` under the scope, with `--mkdir`.
    fn upload_mkdir(&self, dest: &str) -> Result<(), Failure> {
        let mut upload = Upload::new(vec![self.local.clone()], dest);
        upload.mkdir = true;
        upload.options.scope = Some(self.scope());
        self.upload_with(&upload)
    }

    /// Downloads `source` (recursively) under `scope` into a fresh local
    /// directory: the host's failure, and every byte that arrived.
    fn download_in(&self, source: &str, scope: Option<PathScope>) -> (Option<Failure>, String) {
        let local = tempfile::tempdir_in(self.lab.path()).unwrap();
        let mut download = Download::new(vec![source.to_owned()], local.path());
        download.recursive = true;
        download.options.scope = scope;
        let report = self
            .runtime
            .block_on(
                self.executor
                    .download(&RunContext::new(), "vm01", &download),
            )
            .unwrap();
        (report.results[0].error.clone(), all_bytes(local.path()))
    }

    fn download(&self, source: &str) -> (Option<Failure>, String) {
        self.download_in(source, Some(self.scope()))
    }

    /// Asserts that downloading `source` is refused, naming it, and
    /// that nothing arrived.
    fn read_denied(&self, source: &str) {
        let (failure, bytes) = self.download(source);
        assert_denied_failure(&failure.expect("refused"), source);
        assert!(bytes.is_empty(), "{source}: bytes came down");
    }

    fn path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.allowed.display())
    }

    /// Asserts that `outside/` holds only `secret.txt`, unchanged.
    fn outside_untouched(&self) {
        let names = names_in(&self.outside);
        assert_eq!(names, ["secret.txt"], "written outside the scope");
        let secret = std::fs::read_to_string(self.outside.join("secret.txt")).unwrap();
        assert_eq!(secret, SECRET);
    }
}

/// The names in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every regular file's bytes below `dir` (symlinks not followed).
fn all_bytes(dir: &Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push_str(&String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out
}

/// Asserts a refusal: kind `denied`, naming `requested`, never the secret.
fn assert_denied(result: Result<(), Failure>, requested: &str) {
    let failure = result.expect_err("refused");
    assert_denied_failure(&failure, requested);
}

fn assert_denied_failure(failure: &Failure, requested: &str) {
    assert_eq!(failure.kind, ErrorKind::Denied, "{failure:?}");
    assert!(
        failure.message.contains(requested),
        "the refusal does not name {requested}: {}",
        failure.message
    );
    assert!(!failure.message.contains(SECRET), "{}", failure.message);
}

fn symlink(target: impl AsRef<Path>, link: impl AsRef<Path>) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[test]
fn inside_the_scope_files_are_written_and_read_and_its_directory_is_one() {
    let s = Scoped::new();
    s.upload(&s.path("a.txt")).unwrap();
    assert_eq!(
        std::fs::read_to_string(s.allowed.join("a.txt")).unwrap(),
        PAYLOAD
    );
    // Into the scope's own directory (a directory destination).
    s.upload(&format!("{}/", s.allowed.display())).unwrap();
    assert_eq!(
        std::fs::read_to_string(s.allowed.join("payload.txt")).unwrap(),
        PAYLOAD
    );
    // With --mkdir, directories made inside.
    s.upload_mkdir(&s.path("new/deeper/b.txt")).unwrap();
    assert!(s.allowed.join("new/deeper/b.txt").is_file());
    // A symlink inside that leads inside is followed for the directory.
    symlink("inner", s.allowed.join("to-inner"));
    s.upload(&s.path("to-inner/c.txt")).unwrap();
    assert!(s.allowed.join("inner/c.txt").is_file());

    // A tree with a symlink inside, uploaded twice: the second run
    // replaces the link (the rename replaces it, never writes through).
    let tree = s.lab.path().join("linked");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("f.txt"), PAYLOAD).unwrap();
    symlink("f.txt", tree.join("ln"));
    let mut upload = Upload::new(vec![tree.clone()], format!("{}/", s.allowed.display()));
    upload.recursive = true;
    upload.options.scope = Some(s.scope());
    s.upload_with(&upload).unwrap();
    std::fs::remove_file(tree.join("ln")).unwrap();
    symlink("./f.txt", tree.join("ln"));
    s.upload_with(&upload).unwrap();
    let link = std::fs::read_link(s.allowed.join("linked/ln")).unwrap();
    assert_eq!(link, Path::new("./f.txt"));

    // Read back: a file, and the scope's directory itself, recursively;
    // the outcome names the path as requested.
    let (failure, bytes) = s.download(&s.path("a.txt"));
    assert!(failure.is_none(), "{failure:?}");
    assert_eq!(bytes, PAYLOAD);
    let (failure, bytes) = s.download(&s.allowed.display().to_string());
    assert!(failure.is_none(), "{failure:?}");
    assert_eq!(bytes.matches(PAYLOAD).count(), 5, "{bytes}");
    assert!(!s.allowed.join("linked/linked").exists());
    let (failure, bytes) = s.download(&s.path("to-inner/c.txt"));
    assert!(failure.is_none(), "{failure:?}");
    assert_eq!(bytes, PAYLOAD);
    s.outside_untouched();

    // The scope's directory is not an entry to replace: a file named
    // exactly like it is refused (it would change its parent, outside).
    let root_scope = PathScope::parse(&format!("{}/**", s.allowed.join("inner").display()));
    let mut upload = Upload::new(vec![s.local.clone()], s.path("inner"));
    upload.options.scope = Some(root_scope.unwrap());
    // `inner` exists as a directory, so this copies into it: allowed.
    s.upload_with(&upload).unwrap();
    assert!(s.allowed.join("inner/payload.txt").is_file());
    std::fs::remove_dir_all(s.allowed.join("inner")).unwrap();
    let failure = s.upload_with(&upload).expect_err("the entry itself");
    assert_denied_failure(&failure, &s.path("inner"));
    assert!(!s.allowed.join("inner").exists());
}

#[test]
fn dot_dot_cannot_leave_the_scope() {
    let s = Scoped::new();
    for dest in [
        s.path("../outside/x.txt"),
        s.path("inner/../../outside/x.txt"),
        s.path("inner/../../allowed-not/../outside/x.txt"),
        format!("{}/../x.txt", s.allowed.display()),
    ] {
        assert_denied(s.upload(&dest), &dest);
    }
    // With --mkdir, no directory is made outside either.
    let dest = s.path("../outside/made/x.txt");
    assert_denied(s.upload_mkdir(&dest), &dest);
    for source in [
        s.path("../outside/secret.txt"),
        s.path("inner/../../outside/secret.txt"),
        s.path("../outside"),
        s.path("../../area"),
        // Missing outside: the same refusal, not "no such file".
        s.path("../outside/missing.txt"),
        s.path("../nowhere/missing.txt"),
    ] {
        s.read_denied(&source);
    }
    // Missing inside: not found.
    let (failure, _) = s.download(&s.path("missing.txt"));
    let failure = failure.expect("missing");
    assert!(failure.not_found, "{failure:?}");
    s.outside_untouched();
}

#[test]
fn symlinks_to_the_root_or_outside_are_refused_for_reads_and_writes() {
    let s = Scoped::new();
    symlink("/", s.allowed.join("root"));
    symlink(&s.outside, s.allowed.join("out"));
    symlink("../outside", s.allowed.join("out-relative"));
    symlink(s.outside.join("secret.txt"), s.allowed.join("secret-link"));
    let through_root = s.path(&format!("root{}", s.outside.display()));
    for dest in [
        format!("{through_root}/x.txt"),
        s.path("out/x.txt"),
        s.path("out-relative/x.txt"),
        s.path("root/tmp/x.txt"),
    ] {
        assert_denied(s.upload(&dest), &dest);
    }
    for source in [
        format!("{through_root}/secret.txt"),
        s.path("out/secret.txt"),
        s.path("out"),
        s.path("out-relative/secret.txt"),
        s.path("secret-link"),
        s.path("root"),
        s.path("root/etc/hostname"),
    ] {
        s.read_denied(&source);
    }
    // A recursive download of the scope records the links as links (or
    // refuses them), never reads through them.
    let (_, bytes) = s.download(&s.allowed.display().to_string());
    assert!(!bytes.contains(SECRET));
    // An upload may not create a symlink leading out either.
    let tree = s.lab.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    symlink("/etc", tree.join("escape"));
    let mut upload = Upload::new(vec![tree.clone()], s.path("tree"));
    upload.recursive = true;
    upload.options.scope = Some(s.scope());
    assert_denied(s.upload_with(&upload), &s.path("tree/escape"));
    assert!(!s.allowed.join("tree/escape").exists());
    s.outside_untouched();
}

#[test]
fn a_symlinked_parent_directory_is_refused() {
    let s = Scoped::new();
    std::fs::create_dir_all(s.allowed.join("a")).unwrap();
    symlink(&s.outside, s.allowed.join("a/sub"));
    let dest = s.path("a/sub/x.txt");
    assert_denied(s.upload(&dest), &dest);
    // Directories made with --mkdir below it: refused, none made outside.
    assert_denied(
        s.upload_mkdir(&s.path("a/sub/new/x.txt")),
        &s.path("a/sub/new"),
    );
    // A recursive upload into it.
    let tree = s.lab.path().join("tree");
    std::fs::create_dir_all(tree.join("d")).unwrap();
    std::fs::write(tree.join("d/f.txt"), PAYLOAD).unwrap();
    let mut upload = Upload::new(vec![tree], s.path("a/sub/"));
    upload.recursive = true;
    upload.options.scope = Some(s.scope());
    assert_eq!(
        s.upload_with(&upload).expect_err("refused").kind,
        ErrorKind::Denied
    );
    s.read_denied(&s.path("a/sub/secret.txt"));
    s.outside_untouched();
}

#[test]
fn a_final_symlink_is_refused_and_posix_rename_replaces_rather_than_follows() {
    let s = Scoped::new();
    symlink(s.outside.join("secret.txt"), s.allowed.join("link"));
    std::fs::write(s.allowed.join("inner/kept.txt"), "inside").unwrap();
    symlink(s.allowed.join("inner/kept.txt"), s.allowed.join("link-in"));
    // For a write, a final symlink is refused even when it leads inside.
    for name in ["link", "link-in"] {
        let dest = s.path(name);
        assert_denied(s.upload(&dest), &dest);
        assert!(s.allowed.join(name).is_symlink());
    }
    assert_eq!(
        std::fs::read_to_string(s.allowed.join("inner/kept.txt")).unwrap(),
        "inside"
    );
    // For a read: the host resolves it; out is refused, in is read.
    s.read_denied(&s.path("link"));
    let (failure, bytes) = s.download(&s.path("link-in"));
    assert!(failure.is_none(), "{failure:?}");
    assert_eq!(bytes, "inside");
    s.outside_untouched();

    // What the scoped upload relies on when a symlink appears at the final
    // name after the check: OpenSSH's posix-rename replaces the link, the
    // file it pointed to is untouched (here without a scope, which does
    // not look at the final name).
    let upload = Upload::new(vec![s.local.clone()], s.path("link"));
    s.upload_with(&upload).unwrap();
    let meta = std::fs::symlink_metadata(s.allowed.join("link")).unwrap();
    assert!(meta.is_file(), "the link was followed, not replaced");
    assert_eq!(
        std::fs::read_to_string(s.allowed.join("link")).unwrap(),
        PAYLOAD
    );
    s.outside_untouched();
}

#[test]
fn setuid_setgid_and_sticky_modes_need_special_modes() {
    let s = Scoped::new();
    for mode in [0o4755, 0o2755, 0o1644, 0o6755] {
        let dest = s.path(&format!("m{mode:o}"));
        let mut upload = Upload::new(vec![s.local.clone()], &dest);
        upload.mode = Some(mode);
        upload.options.special_modes = false;
        let failure = s.upload_with(&upload).expect_err("refused");
        assert_eq!(failure.kind, ErrorKind::Denied, "{failure:?}");
        assert!(
            failure.message.contains(&format!("{mode:04o}")),
            "the refusal does not name the mode: {}",
            failure.message
        );
        assert!(!Path::new(&dest).exists(), "written despite the refusal");
    }
    // Kept from the local files in a recursive upload: a setuid file, a
    // sticky directory.
    for (what, special) in [("file", "f.txt"), ("dir", "d")] {
        let tree = s.lab.path().join(format!("tree-{what}"));
        std::fs::create_dir_all(tree.join("d")).unwrap();
        std::fs::write(tree.join("f.txt"), PAYLOAD).unwrap();
        let mode = if what == "file" { 0o4755 } else { 0o1777 };
        std::fs::set_permissions(tree.join(special), std::fs::Permissions::from_mode(mode))
            .unwrap();
        let mut upload = Upload::new(vec![tree], s.path(&format!("t-{what}")));
        upload.recursive = true;
        upload.options.special_modes = false;
        let failure = s.upload_with(&upload).expect_err(what);
        assert_eq!(failure.kind, ErrorKind::Denied, "{what}: {failure:?}");
        assert!(!s.allowed.join(format!("t-{what}")).exists(), "{what}");
    }
    // An ordinary mode is fine without them; with them, setuid is set.
    let mut upload = Upload::new(vec![s.local.clone()], s.path("plain"));
    upload.mode = Some(0o755);
    upload.options.special_modes = false;
    s.upload_with(&upload).unwrap();
    let mut upload = Upload::new(vec![s.local.clone()], s.path("suid"));
    upload.mode = Some(0o4755);
    s.upload_with(&upload).unwrap();
    let mode = std::fs::metadata(s.allowed.join("suid"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o4755);
}

/// Swaps `link` between `inside` and `outside` (each an atomic rename of
/// a fresh symlink over it) until `stop`, counting the swaps.
fn swap_link(
    link: PathBuf,
    targets: [PathBuf; 2],
    stop: Arc<AtomicBool>,
    swaps: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let temp = link.with_extension("swap");
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            let _ = std::fs::remove_file(&temp);
            symlink(&targets[i % 2], &temp);
            std::fs::rename(&temp, &link).unwrap();
            swaps.fetch_add(1, Ordering::SeqCst);
            i += 1;
        }
    })
}

/// Runs `uploads` uploads of the payload to `allowed/swing/f{i}`, all at
/// once on one executor, while `swing` flips between `inner` and
/// `outside`; the failures.
fn race_uploads(s: &Scoped, scope: Option<PathScope>, uploads: usize) -> Vec<Failure> {
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicUsize::new(0));
    symlink(s.allowed.join("inner"), s.allowed.join("swing"));
    let swapper = swap_link(
        s.allowed.join("swing"),
        [s.allowed.join("inner"), s.outside.clone()],
        stop.clone(),
        swaps.clone(),
    );
    let mut runs = tokio::task::JoinSet::new();
    for i in 0..uploads {
        let mut upload = Upload::new(vec![s.local.clone()], s.path(&format!("swing/f{i}")));
        upload.options.scope = scope.clone();
        let executor = s.executor.clone();
        runs.spawn_on(
            async move {
                executor
                    .upload(&RunContext::new(), "vm01", &upload)
                    .await
                    .unwrap()
            },
            s.runtime.handle(),
        );
    }
    let reports = s.runtime.block_on(runs.join_all());
    stop.store(true, Ordering::SeqCst);
    swapper.join().unwrap();
    assert!(swaps.load(Ordering::SeqCst) > 100, "the link hardly moved");
    std::fs::remove_file(s.allowed.join("swing")).unwrap();
    reports
        .into_iter()
        .filter_map(|r| r.results[0].error.clone())
        .collect()
}

#[test]
fn a_link_swapped_between_check_and_write_never_carries_a_write_outside() {
    let s = Scoped::new();
    let uploads = 60;
    let failures = race_uploads(&s, Some(s.scope()), uploads);
    s.outside_untouched();
    for failure in &failures {
        assert_eq!(failure.kind, ErrorKind::Denied, "{failure:?}");
        assert!(failure.message.contains("/swing/f"), "{}", failure.message);
    }
    // Every upload that did not fail landed inside, whole.
    let landed = names_in(&s.allowed.join("inner"));
    assert_eq!(
        landed.len() + failures.len(),
        uploads,
        "{landed:?} {failures:?}"
    );
    for name in &landed {
        let bytes = std::fs::read_to_string(s.allowed.join("inner").join(name)).unwrap();
        assert_eq!(bytes, PAYLOAD, "{name}");
    }
    assert!(
        !landed.iter().any(|n| n.contains("remex-part")),
        "a temp file was left: {landed:?}"
    );

    // The same race without a scope does write outside: the test races.
    race_uploads(&s, None, 30);
    assert!(
        names_in(&s.outside).len() > 1,
        "no unscoped upload went through the link: the race is not a race"
    );
}

#[test]
fn a_file_swapped_for_a_symlink_between_check_and_open_is_never_read() {
    let s = Scoped::new();
    let file = s.allowed.join("report.txt");
    std::fs::write(&file, "inside").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicUsize::new(0));
    // Flip report.txt between a regular file and a symlink to the secret.
    let swapper = {
        let (file, secret, stop, swaps) = (
            file.clone(),
            s.outside.join("secret.txt"),
            stop.clone(),
            swaps.clone(),
        );
        std::thread::spawn(move || {
            let (as_file, as_link) = (file.with_extension("f"), file.with_extension("l"));
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                if i.is_multiple_of(2) {
                    let _ = std::fs::remove_file(&as_link);
                    symlink(&secret, &as_link);
                    std::fs::rename(&as_link, &file).unwrap();
                } else {
                    std::fs::write(&as_file, "inside").unwrap();
                    std::fs::rename(&as_file, &file).unwrap();
                }
                swaps.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
        })
    };
    let source = file.display().to_string();
    let (mut read, mut refused) = (0, 0);
    for _ in 0..60 {
        let (failure, bytes) = s.download(&source);
        assert!(
            !bytes.contains(SECRET),
            "the secret was read through the swap"
        );
        match failure {
            None => {
                assert_eq!(bytes, "inside");
                read += 1;
            }
            // sshd's own realpath may meet the swap half-way (it lstats a
            // link, then readlink finds a file: EINVAL, "bad message"):
            // that download fails before anything is opened, which is as
            // safe as a refusal.
            Some(failure) if failure.kind == ErrorKind::Transfer => {
                assert!(
                    failure
                        .message
                        .starts_with(&format!("resolving {source}: ")),
                    "{failure:?}"
                );
                assert!(!failure.message.contains(SECRET), "{}", failure.message);
            }
            Some(failure) => {
                assert_denied_failure(&failure, &source);
                refused += 1;
            }
        }
    }
    // Without a scope the same race reads the secret: the test races.
    let leaked = (0..300).any(|_| s.download_in(&source, None).1.contains(SECRET));
    stop.store(true, Ordering::SeqCst);
    swapper.join().unwrap();
    assert!(swaps.load(Ordering::SeqCst) > 100);
    assert!(
        refused > 0,
        "read {read}, refused {refused}: the race is not a race"
    );
    assert!(leaked, "no unscoped download went through the link");
}

#[test]
fn with_sudo_the_scope_is_resolved_by_the_sudo_sftp_server() {
    assert!(
        running_as_root(),
        "THIS TEST NEEDS ROOT: it creates a throwaway user. CI runs it as root."
    );
    let parent = tempfile::tempdir().unwrap();
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let user = ThrowawayUser::create(parent.path());
    // The lab logs in as root, whose sudo needs no password.
    let s = Scoped::new();
    let home = std::fs::canonicalize(&user.home).unwrap();
    let allowed = home.join("allowed");
    std::fs::create_dir_all(&allowed).unwrap();
    let owner = std::fs::metadata(&home).unwrap();
    std::os::unix::fs::chown(&allowed, Some(owner_uid(&owner)), Some(owner_gid(&owner))).unwrap();
    symlink(&s.outside, allowed.join("out"));
    let scope = PathScope::parse(&format!("{}/**", allowed.display())).unwrap();
    let sudo = remex::Sudo {
        user: Some(user.name.clone()),
        password: None,
    };
    // Relative paths are the sudo user's home: resolved by that server.
    let mut upload = Upload::new(vec![s.local.clone()], "allowed/x.txt");
    upload.options.scope = Some(scope.clone());
    upload.options.sudo = Some(sudo.clone());
    s.upload_with(&upload).unwrap();
    assert!(allowed.join("x.txt").is_file());
    let mut upload = Upload::new(vec![s.local.clone()], "allowed/out/x.txt");
    upload.options.scope = Some(scope.clone());
    upload.options.sudo = Some(sudo.clone());
    assert_denied(s.upload_with(&upload), "allowed/out/x.txt");
    let local = tempfile::tempdir_in(s.lab.path()).unwrap();
    let mut download = Download::new(vec!["allowed/out/secret.txt".to_owned()], local.path());
    download.options.scope = Some(scope);
    download.options.sudo = Some(sudo);
    let report = s
        .runtime
        .block_on(s.executor.download(&RunContext::new(), "vm01", &download))
        .unwrap();
    assert_denied_failure(
        report.results[0].error.as_ref().expect("refused"),
        "allowed/out/secret.txt",
    );
    assert!(!all_bytes(local.path()).contains(SECRET));
    s.outside_untouched();
}

fn owner_uid(meta: &std::fs::Metadata) -> u32 {
    std::os::unix::fs::MetadataExt::uid(meta)
}

fn owner_gid(meta: &std::fs::Metadata) -> u32 {
    std::os::unix::fs::MetadataExt::gid(meta)
}
