//! Test harness: labs of real sshd hosts (built by the library's own lab
//! code, each in its own temp dir) and a runner for the real `remex` binary.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use remex::lab::{self, Lab, LabSpec, ServerKind};

/// A lab in a temp dir, stopped when dropped.
pub struct TestLab {
    pub lab: Lab,
    /// Keeps the directory alive; removed on drop.
    pub dir: tempfile::TempDir,
}

impl TestLab {
    /// The fingerprint OpenSSH prints for a host's key (what an operator
    /// would read on the host's console).
    pub fn host_fingerprint(&self, host: &str) -> String {
        let key = self
            .path()
            .join("hosts")
            .join(host)
            .join("ssh_host_ed25519_key");
        let out = Command::new("ssh-keygen")
            .arg("-l")
            .arg("-f")
            .arg(&key)
            .output()
            .unwrap_or_else(|e| panic!("ssh-keygen: {e}"));
        assert!(out.status.success(), "ssh-keygen -l: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("no fingerprint in {text}"))
            .to_owned()
    }

    /// Generates a key with ssh-keygen in the lab's key dir and authorizes
    /// it on every lab host; returns the config that uses it.
    pub fn authorize_new_key(&self, name: &str, keygen_args: &[&str]) -> PathBuf {
        let path = self.path().join("keys").join(name);
        let status = Command::new("ssh-keygen")
            .args(["-q", "-C", name, "-f"])
            .arg(&path)
            .args(keygen_args)
            .status()
            .unwrap_or_else(|e| panic!("ssh-keygen: {e}"));
        assert!(status.success(), "ssh-keygen {keygen_args:?} failed");
        let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        let authorized = self.path().join("authorized_keys");
        let mut text = std::fs::read_to_string(&authorized).unwrap();
        text.push_str(&public);
        std::fs::write(&authorized, text).unwrap();
        self.config_variant(
            &format!("{name}.yml"),
            &[("default_key: id_ed25519", &format!("default_key: {name}"))],
        )
    }
}

impl TestLab {
    /// Starts `hosts` OpenSSH hosts. Fails loudly (with the install hint)
    /// when sshd is missing: tests never skip for lack of a server.
    pub fn new(hosts: usize) -> TestLab {
        TestLab::with(hosts, ServerKind::OpenSsh, None)
    }

    pub fn with(hosts: usize, server: ServerKind, user: Option<String>) -> TestLab {
        let other_user = user.is_some();
        TestLab::start(other_user, |dir| LabSpec {
            server,
            user,
            ..LabSpec::new(hosts, dir)
        })
    }

    /// A lab of `hosts` OpenSSH hosts behind the extra host `bastion`: they
    /// listen in a network namespace that only the bastion reaches
    /// (`remex lab up --bastion`). Needs root.
    pub fn behind_bastion(hosts: usize) -> TestLab {
        assert!(
            running_as_root(),
            "THIS TEST NEEDS ROOT: a bastion lab puts its hosts in a network namespace (ip netns). CI runs it as root."
        );
        TestLab::start(false, |dir| LabSpec {
            bastion: true,
            ..LabSpec::new(hosts, dir)
        })
    }

    /// A lab whose host keys and client key a lab CA signed (`remex lab up
    /// --ca`), behind a bastion too when `bastion` (which needs root).
    pub fn with_ca(hosts: usize, bastion: bool) -> TestLab {
        TestLab::start(false, |dir| LabSpec {
            ca: true,
            bastion,
            ..LabSpec::new(hosts, dir)
        })
    }

    /// Starts the lab `spec` describes for a fresh temp dir. `other_user`:
    /// the lab logs in as another user, who must be able to read inside.
    fn start(other_user: bool, spec: impl FnOnce(&Path) -> LabSpec) -> TestLab {
        let dir = tempfile::Builder::new()
            .prefix("remex-test-lab-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temp dir: {e}"));
        if other_user {
            // sshd reads authorized_keys as the login user.
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let spec = spec(dir.path());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("tokio: {e}"));
        let lab = runtime
            .block_on(lab::up(&spec))
            .unwrap_or_else(|e| panic!("\n\nSTARTING THE TEST LAB FAILED: {e}\n\n"));
        TestLab { lab, dir }
    }

    /// A Dropbear lab logging in as a throwaway user (Dropbear reads only
    /// `~USER/.ssh/authorized_keys`, so the lab never touches a real
    /// account). Needs root; fails loudly otherwise.
    pub fn dropbear(hosts: usize) -> (TestLab, ThrowawayUser, tempfile::TempDir) {
        assert!(
            running_as_root(),
            "THIS TEST NEEDS ROOT: it creates a throwaway user for the Dropbear lab. \
             Run the suite as root (CI does)."
        );
        let parent = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        let user = ThrowawayUser::create(parent.path());
        let lab = TestLab::with(hosts, ServerKind::Dropbear, Some(user.name.clone()));
        (lab, user, parent)
    }

    /// An OpenSSH lab whose hosts accept `password` for a throwaway user
    /// the lab creates (and `down` removes), and no key at first. Needs
    /// root; fails loudly otherwise.
    pub fn password(hosts: usize, password: &str) -> TestLab {
        assert!(
            running_as_root(),
            "THIS TEST NEEDS ROOT: the password lab creates a throwaway user with a password \
             and its sshd checks it through PAM. Run the suite as root (CI does)."
        );
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("remex-pw-{:x}{:x}", std::process::id(), nanos);
        TestLab::start(true, |dir| LabSpec {
            password_user: Some(lab::PasswordUser {
                name,
                password: Some(password.to_owned()),
            }),
            ..LabSpec::new(hosts, dir)
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A host's own `~/.ssh/authorized_keys` (its sshd reads it besides the
    /// lab's shared file).
    pub fn host_authorized_keys(&self, host: &str) -> PathBuf {
        self.path()
            .join("hosts")
            .join(host)
            .join("home/.ssh/authorized_keys")
    }

    /// Empties the lab's shared authorized_keys, so that only the keys in
    /// each host's own file log in.
    pub fn drop_lab_key(&self) {
        std::fs::write(self.path().join("authorized_keys"), "")
            .unwrap_or_else(|e| panic!("emptying the lab's authorized_keys: {e}"));
    }

    /// Whether OpenSSH's own client logs in to `host` with the private key
    /// at `key` and nothing else.
    pub fn ssh_logs_in(&self, host: &str, key: &Path) -> bool {
        let h = self
            .lab
            .host(host)
            .unwrap_or_else(|| panic!("no lab host {host}"));
        let output = Command::new("ssh")
            .args([
                "-F",
                "/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
            ])
            .args([
                "-o",
                "PasswordAuthentication=no",
                "-o",
                "KbdInteractiveAuthentication=no",
            ])
            .args(["-o", "StrictHostKeyChecking=yes"])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.lab.known_hosts_path.display()
            ))
            .arg("-i")
            .arg(key)
            .arg("-p")
            .arg(h.port.to_string())
            .arg(format!("{}@{}", self.lab.user, h.address))
            .arg("true")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running ssh: {e}"));
        output.status.success()
    }

    /// Replaces a line of a host's sshd_config and restarts the host.
    pub fn reconfigure(&mut self, host: &str, from: &str, to: &str) {
        let path = self.path().join("hosts").join(host).join("sshd_config");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{} has no `{from}`", path.display());
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        self.restart(host);
    }

    /// Adds `lines` to a host's sshd_config (where no `Match` block can
    /// scope them) and restarts the host: `TrustedUserCAKeys`,
    /// `HostCertificate`, ….
    pub fn add_sshd_config(&mut self, host: &str, lines: &[String]) {
        let anchor = "PubkeyAuthentication yes\n";
        self.reconfigure(host, anchor, &format!("{anchor}{}\n", lines.join("\n")));
    }

    /// Restarts a host's sshd, which reads its config, keys and
    /// certificates again.
    pub fn restart(&mut self, host: &str) {
        self.lab.stop_host(host).unwrap_or_else(|e| panic!("{e}"));
        self.lab.start_host(host).unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn config(&self) -> PathBuf {
        self.lab.config_path.clone()
    }

    pub fn port(&self) -> u16 {
        self.lab.hosts.first().map(|h| h.port).unwrap_or_default()
    }

    /// `remex --config <this lab's config> ARGS…`.
    pub fn remex(&self) -> Remex {
        Remex::new().args(["--config"]).arg(self.config())
    }

    /// The lab's config text.
    pub fn config_text(&self) -> String {
        std::fs::read_to_string(self.config()).unwrap_or_else(|e| panic!("reading config: {e}"))
    }

    /// Writes a variant of the lab's config to `name` in the lab dir, with
    /// `from` replaced by `to`, and returns its path.
    pub fn config_variant(&self, name: &str, edits: &[(&str, &str)]) -> PathBuf {
        let mut text = self.config_text();
        for (from, to) in edits {
            assert!(text.contains(from), "config has no `{from}`:\n{text}");
            text = text.replacen(from, to, 1);
        }
        let path = self.path().join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing config: {e}"));
        path
    }

    /// Removes the known_hosts pins of the host at `address` (other lines
    /// stay): remex then refuses its key under the strict policy.
    pub fn unpin(&self, address: &str) {
        let path = self.path().join("known_hosts");
        let needle = format!("[{address}]");
        let kept: String = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
            .lines()
            .filter(|line| !line.contains(&needle))
            .map(|line| format!("{line}\n"))
            .collect();
        std::fs::write(&path, kept).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// The sshd log of a lab host.
    pub fn sshd_log(&self, host: &str) -> String {
        let path = self.path().join("hosts").join(host).join("sshd.log");
        std::fs::read_to_string(&path).unwrap_or_default()
    }

    /// How many logins a lab host's sshd accepted so far (one per SSH
    /// connection remex made to it).
    pub fn logins(&self, host: &str) -> usize {
        self.sshd_log(host).matches("Accepted publickey").count()
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        if let Err(e) = lab::down(self.dir.path()) {
            eprintln!(
                "stopping the test lab in {}: {e}",
                self.dir.path().display()
            );
        }
    }
}

/// A `remex` invocation.
pub struct Remex {
    cmd: Command,
    stdin: Option<Vec<u8>>,
}

impl Remex {
    pub fn new() -> Remex {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_remex"));
        // Tests never depend on the invoking user's environment.
        cmd.env_remove("REMEX_CONFIG")
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("RUST_LOG")
            .env_remove("REMEX_KEY_PASSPHRASE");
        Remex { cmd, stdin: None }
    }

    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Remex {
        self.cmd.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Remex
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Remex {
        self.cmd.env(key, value);
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Remex {
        self.cmd.current_dir(dir);
        self
    }

    pub fn stdin(mut self, bytes: &[u8]) -> Remex {
        self.stdin = Some(bytes.to_vec());
        self
    }

    pub fn run(mut self) -> Run {
        use std::io::Write as _;
        self.cmd
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = self
            .cmd
            .spawn()
            .unwrap_or_else(|e| panic!("running remex: {e}"));
        if let (Some(bytes), Some(mut pipe)) = (self.stdin, child.stdin.take()) {
            // remex may exit before reading it all (a failed run): the
            // test's own checks on the output then say what went wrong.
            match pipe.write_all(&bytes) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    panic!("writing remex's stdin: {e}")
                }
                _ => {}
            }
        }
        let output = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("waiting for remex: {e}"));
        Run {
            output,
            elapsed: started.elapsed(),
        }
    }
}

/// A finished `remex` run.
pub struct Run {
    pub output: Output,
    pub elapsed: Duration,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Asserts the exit status, showing the output when it differs.
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(
            self.code(),
            code,
            "remex exited {} (expected {code})\n--- stdout\n{}\n--- stderr\n{}",
            self.code(),
            self.stdout(),
            self.stderr()
        );
        self
    }

    /// Parses stdout as one JSON document.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.output.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e})\n--- stdout\n{}\n--- stderr\n{}",
                self.stdout(),
                self.stderr()
            )
        })
    }
}

/// Asserts that no process matching any of `needles` is left, allowing the
/// kernel up to 3 s to finish killing and reaping (remex reports a timeout
/// only after its reaper ran).
pub fn assert_no_process_left(needles: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left: Vec<_> = needles
            .iter()
            .flat_map(|needle| processes_matching(needle))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "remote processes survived the timeout: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// PIDs of local processes whose command line contains `needle` (the lab's
/// hosts are this machine, so their processes are visible here).
pub fn processes_matching(needle: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push((pid, cmdline));
        }
    }
    found
}

/// A login user that exists for one test: created with `useradd`, removed
/// (with its home) when dropped, whatever the test's outcome.
pub struct ThrowawayUser {
    pub name: String,
    pub home: PathBuf,
}

impl ThrowawayUser {
    pub fn create(parent: &Path) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("remex-lab-{:x}{:x}", std::process::id(), nanos);
        let home = parent.join("home");
        // `-p '*'`: no password, but not a locked account either.
        let status = Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", "-p", "*", "-d"])
            .arg(&home)
            .arg(&name)
            .status()
            .unwrap_or_else(|error| panic!("cannot run useradd: {error}"));
        assert!(status.success(), "useradd {name} failed: {status}");
        Self { name, home }
    }
}

impl Drop for ThrowawayUser {
    fn drop(&mut self) {
        let removed = Command::new("userdel")
            .args(["-r", &self.name])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !removed {
            let _ = Command::new("userdel")
                .args(["-r", "-f", &self.name])
                .status();
        }
    }
}

pub fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

impl ThrowawayUser {
    /// Sets the user's password (with chpasswd).
    pub fn set_password(&self, password: &str) {
        use std::io::Write as _;
        let mut child = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("chpasswd: {e}"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{}:{password}\n", self.name).as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "chpasswd failed");
    }
}

/// A sudoers drop-in for one test, removed when dropped.
pub struct SudoersDropIn {
    path: PathBuf,
}

impl SudoersDropIn {
    /// Installs `rule` (checked with `visudo -c` first) as
    /// /etc/sudoers.d/remex-test-NAME.
    pub fn install(name: &str, rule: &str) -> SudoersDropIn {
        let staged = std::env::temp_dir().join(format!("remex-sudoers-{name}"));
        std::fs::write(&staged, format!("{rule}\n")).unwrap();
        let check = Command::new("visudo")
            .arg("-cf")
            .arg(&staged)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "bad sudoers rule {rule:?}: {check:?}"
        );
        let path = PathBuf::from(format!("/etc/sudoers.d/remex-test-{name}"));
        std::fs::copy(&staged, &path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o440)).unwrap();
        let _ = std::fs::remove_file(&staged);
        SudoersDropIn { path }
    }
}

impl Drop for SudoersDropIn {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl TestLab {
    /// Puts `dir` first in the `PATH` of every session on the OpenSSH lab
    /// host `host` (an `sshd_config` `SetEnv`, which overrides sshd's
    /// default `PATH`; the login shell runs with `-c`, so no profile resets
    /// it), and restarts the host. A test's fake tools there shadow the
    /// real ones for remex's remote commands.
    pub fn put_first_in_path(&mut self, host: &str, dir: &Path) {
        let config = self.path().join("hosts").join(host).join("sshd_config");
        let text = std::fs::read_to_string(&config).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("SetEnv HOME="))
            .unwrap_or_else(|| panic!("{} sets no HOME:\n{text}", config.display()))
            .to_owned();
        let path = format!(
            "{line} PATH={}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            dir.display()
        );
        self.reconfigure(host, &line, &path);
    }
}

impl Remex {
    /// Starts remex without waiting (stdin empty, stdout and stderr
    /// piped), for tests that act while it runs, such as sending SIGINT.
    pub fn spawn(mut self) -> std::process::Child {
        self.cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running remex: {e}"))
    }
}

/// Local processes (pid, command line) that name `dir` on their command
/// line or hold a file below it open: what a lab host may still run for a
/// transfer there (a hash command, an SFTP session's open handle).
pub fn processes_using(dir: &Path) -> Vec<(u32, String)> {
    let mut found = processes_matching(&dir.display().to_string());
    let holders = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|proc| {
            std::fs::read_dir(proc.path().join("fd"))
                .into_iter()
                .flatten()
                .flatten()
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|to| to.starts_with(dir)))
        });
    for proc in holders {
        let Ok(pid) = proc.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid != std::process::id() && found.iter().all(|(p, _)| *p != pid) {
            let cmdline = std::fs::read(proc.path().join("cmdline")).unwrap_or_default();
            found.push((pid, String::from_utf8_lossy(&cmdline).replace('\0', " ")));
        }
    }
    found
}

/// Asserts that no process uses `dir` (see [`processes_using`]), allowing
/// sshd up to 3 s to end the sessions of a client that just exited.
pub fn assert_no_process_uses(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left = processes_using(dir);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes still use {}: {left:?}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Writes `data` to `path`, creating its directory.
pub fn write(path: &Path, data: &[u8]) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(path, data).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// Names in `dir` that are remex temp files.
pub fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".remex-part"))
                .collect()
        })
        .unwrap_or_default()
}

impl Remex {
    /// Starts remex with a pseudo-terminal as its stdin, stdout and stderr,
    /// as when a person runs it (via util-linux `script`), for the paths
    /// that only a terminal opens: prompts and progress bars.
    pub fn on_a_terminal(self) -> Terminal {
        let argv: Vec<String> = std::iter::once(self.cmd.get_program())
            .chain(self.cmd.get_args())
            .map(|word| word.to_string_lossy().into_owned())
            .collect();
        let line = remex::quote::join(&argv);
        let mut script = Command::new("script");
        // `tty` first: the terminal's name, for `Terminal::wait_for_hidden_input`.
        script.args(["-qec", &format!("tty; exec {line}"), "/dev/null"]);
        for (key, value) in self.cmd.get_envs() {
            match value {
                Some(value) => script.env(key, value),
                None => script.env_remove(key),
            };
        }
        if let Some(dir) = self.cmd.get_current_dir() {
            script.current_dir(dir);
        }
        let mut child = script
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("running script(1) (util-linux): {e}"));
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut stdout = child.stdout.take().unwrap();
        let sink = output.clone();
        let reader = std::thread::spawn(move || {
            use std::io::Read as _;
            let mut buf = [0; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let mut terminal = Terminal {
            stdin: child.stdin.take(),
            child,
            output,
            reader: Some(reader),
            tty: String::new(),
        };
        terminal.wait_for("/dev/pts/");
        terminal.tty = terminal
            .output()
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        terminal
    }
}

/// remex running on a pseudo-terminal; see [`Remex::on_a_terminal`].
pub struct Terminal {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    output: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    /// Copies script's output into `output`; ends when script exits.
    reader: Option<std::thread::JoinHandle<()>>,
    /// The terminal's device, `/dev/pts/N`.
    tty: String,
}

impl Terminal {
    /// Everything written to the terminal so far (and what was typed, where
    /// the terminal echoed it).
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Waits (up to 30 s) until `needle` has been written to the terminal.
    pub fn wait_for(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.output().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "{needle:?} never appeared on the terminal: {:?}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (up to 30 s) until the terminal no longer echoes what is typed,
    /// as a password prompt must, so that a test can tell whether a secret
    /// it types would have shown.
    pub fn wait_for_hidden_input(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new("stty")
                .args(["-a", "-F", &self.tty])
                .output()
                .unwrap_or_else(|e| panic!("stty: {e}"));
            let settings = String::from_utf8_lossy(&out.stdout);
            if settings.split_whitespace().any(|flag| flag == "-echo") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} kept echoing input: {settings} {:?}",
                self.tty,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Types `line` and Enter.
    pub fn type_line(&mut self, line: &str) {
        use std::io::Write as _;
        let stdin = self.stdin.as_mut().expect("typing after finish");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .unwrap_or_else(|e| panic!("typing on the terminal: {e}"));
        stdin.flush().unwrap();
    }

    /// Waits (up to 60 s) for remex to exit: its exit code and everything
    /// the terminal showed.
    pub fn finish(mut self) -> (i32, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("remex did not exit: {:?}", self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        drop(self.stdin.take());
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        (status.code().unwrap_or(-1), self.output())
    }
}

impl Drop for Terminal {
    /// A failed test leaves nothing running: script(1) is killed, and remex
    /// gets the hangup of its closed terminal.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `ssh-keygen ARGS KEY`, which must succeed: its stdout.
pub fn ssh_keygen(args: &[&str], key: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .args(args)
        .arg(key)
        .output()
        .unwrap_or_else(|e| panic!("ssh-keygen: {e}"));
    assert!(
        out.status.success(),
        "ssh-keygen {args:?} {} failed: {}",
        key.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The lab's audit log.
pub fn log_path(lab: &TestLab) -> PathBuf {
    lab.path().join("audit").join("audit.jsonl")
}

/// Every record of the lab's audit log (current file only), as JSON.
pub fn records(lab: &TestLab) -> Vec<serde_json::Value> {
    records_at(&log_path(lab))
}

/// Every record of the audit log at `path`, as JSON.
pub fn records_at(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// The records of run `run`.
pub fn of_run<'a>(records: &'a [serde_json::Value], run: &str) -> Vec<&'a serde_json::Value> {
    records.iter().filter(|r| r["run"] == run).collect()
}

/// Asserts `remex audit verify` passes on the lab's log.
pub fn assert_verifies(lab: &TestLab) -> serde_json::Value {
    let run = lab
        .remex()
        .args(["--json", "audit", "verify"])
        .run()
        .expect_code(0);
    let report = run.json();
    assert_eq!(report["ok"], true, "{report}");
    report
}

/// Asserts that run `run` has one `start` and one `end` record for each of
/// `hosts`, and returns the `end` records.
pub fn assert_every_host_ended<'a>(
    records: &'a [serde_json::Value],
    run: &str,
    hosts: &[&str],
) -> Vec<&'a serde_json::Value> {
    let mine = of_run(records, run);
    let mut ends = Vec::new();
    for host in hosts {
        let of = |event: &str| {
            mine.iter()
                .filter(|r| r["host"] == *host && r["event"] == event)
                .copied()
                .collect::<Vec<_>>()
        };
        assert_eq!(of("start").len(), 1, "{host}: {mine:#?}");
        let end = of("end");
        assert_eq!(end.len(), 1, "{host}: {mine:#?}");
        ends.extend(end);
    }
    ends
}

/// Sends signal `name` (`INT`, `TERM`, `HUP`) to `child`.
pub fn send_signal(child: &std::process::Child, name: &str) {
    send_signal_to(child.id(), name);
}

/// Sends signal `name` (`TERM`, `STOP`, …) to process `pid`.
pub fn send_signal_to(pid: u32, name: &str) {
    let sent = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap_or_else(|e| panic!("kill: {e}"));
    assert!(sent.success(), "kill -{name} {pid}");
}

/// Waits up to 20 s until `ready` says so; panics naming `what` (after
/// killing `child` and showing its output) if that never happens or the
/// child exits first.
pub fn wait_for(child: &mut std::process::Child, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            let mut out = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut stderr, &mut out);
            }
            panic!("never saw {what}; remex's stderr:\n{out}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port nothing listens on (bound, then let go).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("finding a free port: {e}"))
}
