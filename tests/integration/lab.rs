//! `remex lab` against real servers: OpenSSH `sshd` and Dropbear on
//! loopback, checked with the real OpenSSH client.
//!
//! These tests never skip. Without `/usr/sbin/sshd` they fail with the
//! install hint; the Dropbear test fails unless it runs as root, because
//! it creates a throwaway login user.

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use remex::lab::{self, Lab, LabError, LabHost, LabSpec, ServerKind};

use crate::util::{ThrowawayUser, running_as_root};

/// Brings a lab up, failing the test with the error's message (which
/// carries the install hint when a server is missing).
async fn up(spec: &LabSpec) -> (Lab, Down) {
    match lab::up(spec).await {
        Ok(lab) => {
            let down = Down(lab.dir.clone());
            (lab, down)
        }
        Err(error) => panic!("remex lab up failed: {error}"),
    }
}

/// Stops the lab when the test ends, passed or failed.
struct Down(PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = lab::down(&self.0);
    }
}

/// `ssh … USER@HOST echo hi` with the lab's key and known_hosts and strict
/// host-key checking; `-F /dev/null` keeps the caller's ssh config out.
fn ssh_echo_hi(lab: &Lab, host: &LabHost) -> Output {
    Command::new("ssh")
        .arg("-F")
        .arg("/dev/null")
        .arg("-i")
        .arg(&lab.key_path)
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            lab.known_hosts_path.display()
        ))
        .args(["-o", "StrictHostKeyChecking=yes"])
        .args(["-o", "BatchMode=yes"])
        .args(["-o", "IdentitiesOnly=yes"])
        .args(["-o", "ConnectTimeout=10"])
        .arg("-p")
        .arg(host.port.to_string())
        .arg(format!("{}@{}", lab.user, host.address))
        .args(["echo", "hi"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| {
            panic!("cannot run ssh (apt-get install -y openssh-client): {error}")
        })
}

fn assert_echo_hi(lab: &Lab, host: &LabHost) {
    let output = ssh_echo_hi(lab, host);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "hi\n",
        "ssh to {} ({}:{}) failed: {}\nserver log:\n{}",
        host.name,
        host.address,
        host.port,
        String::from_utf8_lossy(&output.stderr),
        fs::read_to_string(lab.dir.join("hosts").join(&host.name).join("sshd.log"))
            .unwrap_or_default(),
    );
}

/// Whether `pid` is no longer a server of the lab in `dir` (gone, a
/// zombie, or reused by another program).
fn server_gone(pid: u32, dir: &Path) -> bool {
    match fs::read(format!("/proc/{pid}/cmdline")) {
        Err(_) => true,
        Ok(bytes) => !String::from_utf8_lossy(&bytes).contains(&*dir.to_string_lossy()),
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().mode() & 0o777
}

#[tokio::test]
async fn openssh_lab_of_three_hosts_logs_in_with_strict_host_keys() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("lab");
    let (mut lab, _down) = up(&LabSpec::new(3, &dir)).await;

    let names: Vec<&str> = lab.hosts.iter().map(|host| host.name.as_str()).collect();
    assert_eq!(names, ["vm01", "vm02", "vm03"]);
    let addresses: Vec<String> = lab.hosts.iter().map(|h| h.address.to_string()).collect();
    assert_eq!(addresses, ["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
    let port = lab.hosts[0].port;
    assert!(lab.hosts.iter().all(|host| host.port == port));
    assert_eq!(lab.config_path, lab.dir.join("config.yml"));

    // The files the rest of remex relies on.
    assert_eq!(mode(&lab.dir.join("keys")), 0o700);
    assert_eq!(mode(&lab.key_path), 0o600);
    assert!(
        fs::read_to_string(&lab.key_path)
            .unwrap()
            .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----")
    );
    let known_hosts = fs::read_to_string(&lab.known_hosts_path).unwrap();
    assert_eq!(known_hosts.lines().count(), 3);
    assert!(
        known_hosts.starts_with(&format!("[127.0.0.2]:{port} ssh-ed25519 AAAA")),
        "{known_hosts}"
    );
    let config = fs::read_to_string(&lab.config_path).unwrap();
    assert!(
        config.contains(&format!(
            "  vm02: {{ host: 127.0.0.3, port: {port}, user: {}, groups: [lab, even] }}\n",
            lab.user
        )),
        "{config}"
    );
    assert!(config.contains(&format!("  key_storage_path: {}/keys\n", lab.dir.display())));
    assert!(config.contains("  host_key_policy: strict\n"));
    assert!(lab.dir.join("lab.json").is_file());
    for name in names {
        assert!(lab.dir.join("hosts").join(name).join("sshd.log").is_file());
    }

    // Every host answers with its own key, the one in known_hosts.
    for host in &lab.hosts {
        assert_echo_hi(&lab, host);
    }

    let status = lab::status(&dir).unwrap();
    assert!(status.all_running(), "{status:?}");
    assert_eq!(status.hosts.len(), 3);
    assert_eq!(status.hosts[1].name, "vm02");
    assert_eq!(status.hosts[1].pid, lab.hosts[1].pid);

    // One host down: unreachable, the others unaffected; then back.
    lab.stop_host("vm02").unwrap();
    let status = lab::status(&dir).unwrap();
    let running: Vec<bool> = status.hosts.iter().map(|host| host.running).collect();
    assert_eq!(running, [true, false, true]);
    assert!(!ssh_echo_hi(&lab, &lab.hosts[1]).status.success());
    assert_echo_hi(&lab, &lab.hosts[2]);
    lab.start_host("vm02").unwrap();
    assert!(lab::status(&dir).unwrap().all_running());
    assert_echo_hi(&lab, &lab.hosts[1]);
    assert!(matches!(
        lab.stop_host("vm09"),
        Err(LabError::UnknownHost { .. })
    ));

    let pids: Vec<u32> = lab.hosts.iter().map(|host| host.pid).collect();
    let report = lab::down(&dir).unwrap();
    assert_eq!(report.stopped, ["vm01", "vm02", "vm03"], "{report:?}");
    assert!(report.killed.is_empty() && report.not_running.is_empty());
    for pid in pids {
        assert!(server_gone(pid, &lab.dir), "server {pid} still running");
    }
    assert!(!lab.dir.join("lab.json").exists());
    assert!(
        lab.dir.join("hosts/vm01/sshd.log").is_file(),
        "logs are kept"
    );
    let error = lab::status(&dir).unwrap_err();
    assert!(matches!(error, LabError::NoLab { .. }), "{error}");
    let error = lab::down(&dir).unwrap_err();
    assert!(matches!(error, LabError::NoLab { .. }), "{error}");
}

#[tokio::test]
async fn two_labs_come_up_in_parallel_without_colliding() {
    let temp = tempfile::tempdir().unwrap();
    let (spec_a, spec_b) = (
        LabSpec::new(4, temp.path().join("a")),
        LabSpec::new(4, temp.path().join("b")),
    );
    let (first, second) = tokio::join!(lab::up(&spec_a), lab::up(&spec_b));
    let first = first.unwrap_or_else(|error| panic!("first lab: {error}"));
    let _first_down = Down(first.dir.clone());
    let second = second.unwrap_or_else(|error| panic!("second lab: {error}"));
    let _second_down = Down(second.dir.clone());

    assert_ne!(first.hosts[0].port, second.hosts[0].port);
    for lab in [&first, &second] {
        for host in &lab.hosts {
            assert_echo_hi(lab, host);
        }
    }
    lab::down(&first.dir).unwrap();
    assert!(lab::status(&second.dir).unwrap().all_running());
}

#[tokio::test]
async fn up_refuses_a_running_lab_and_replaces_a_stopped_one() {
    let temp = tempfile::tempdir().unwrap();
    let spec = LabSpec::new(2, temp.path());
    let (lab, _down) = up(&spec).await;

    let error = lab::up(&spec).await.unwrap_err();
    assert!(matches!(error, LabError::AlreadyRunning { .. }), "{error}");
    assert!(
        error.to_string().contains(&format!(
            "run `remex lab down --dir {}` first",
            lab.dir.display()
        )),
        "{error}"
    );

    // Servers gone behind the lab's back: lab.json is stale, and replaced.
    lab.stop_host("vm01").unwrap();
    lab.stop_host("vm02").unwrap();
    let (again, _down_again) = up(&spec).await;
    assert!(lab::status(&again.dir).unwrap().all_running());
    assert_echo_hi(&again, &again.hosts[1]);
    assert_ne!(
        fs::read_to_string(&again.key_path).unwrap(),
        "",
        "a new client key"
    );
}

#[tokio::test]
async fn up_refuses_a_directory_that_is_not_a_lab() {
    let temp = tempfile::tempdir().unwrap();
    fs::write(temp.path().join("notes.txt"), "mine").unwrap();
    let error = lab::up(&LabSpec::new(1, temp.path())).await.unwrap_err();
    assert!(matches!(error, LabError::BadDir { .. }), "{error}");
    assert!(error.to_string().contains("notes.txt"), "{error}");

    let error = lab::up(&LabSpec::new(0, temp.path().join("x")))
        .await
        .unwrap_err();
    assert!(
        matches!(error, LabError::BadHostCount { hosts: 0 }),
        "{error}"
    );
}

#[tokio::test]
async fn dropbear_lab_logs_in_as_a_throwaway_user() {
    assert!(
        running_as_root(),
        "THIS TEST NEEDS ROOT: it creates a throwaway user with useradd so that the Dropbear \
         lab (which must add its key to the login user's ~/.ssh/authorized_keys) never touches \
         a real account. Run `cargo test --test lab` as root (e.g. in the dev container)."
    );
    let temp = tempfile::tempdir().unwrap();
    // The user's home is inside; the user must be able to reach it.
    fs::set_permissions(temp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let user = ThrowawayUser::create(temp.path());

    let spec = LabSpec {
        server: ServerKind::Dropbear,
        user: Some(user.name.clone()),
        ..LabSpec::new(3, temp.path().join("lab"))
    };
    let started = Instant::now();
    let (lab, _down) = up(&spec).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(lab.user, user.name);
    assert_eq!(lab.server, ServerKind::Dropbear);

    let authorized_keys = user.home.join(".ssh/authorized_keys");
    let text = fs::read_to_string(&authorized_keys).unwrap();
    let marker = format!("remex-lab:{}", lab.dir.display());
    assert_eq!(
        text.lines().filter(|line| line.ends_with(&marker)).count(),
        1,
        "{text}"
    );
    assert_eq!(mode(&authorized_keys), 0o600);
    assert_eq!(mode(&user.home.join(".ssh")), 0o700);
    let owner = fs::metadata(&authorized_keys).unwrap().uid();
    assert_eq!(owner, fs::metadata(&user.home).unwrap().uid());

    for host in &lab.hosts {
        assert_echo_hi(&lab, host);
    }
    let cmdline = fs::read(format!("/proc/{}/cmdline", lab.hosts[0].pid)).unwrap();
    assert!(String::from_utf8_lossy(&cmdline).starts_with("/usr/sbin/dropbear\0"));

    let pids: Vec<u32> = lab.hosts.iter().map(|host| host.pid).collect();
    let report = lab::down(&lab.dir).unwrap();
    assert_eq!(report.stopped.len(), 3, "{report:?}");
    assert_eq!(
        report.authorized_key_removed.as_deref(),
        Some(&*authorized_keys)
    );
    for pid in pids {
        assert!(server_gone(pid, &lab.dir), "dropbear {pid} still running");
    }
    let text = fs::read_to_string(&authorized_keys).unwrap();
    assert!(!text.contains(&marker), "{text}");
}

/// The line of `lab up`'s hints that starts with `label`, without it.
fn hint<'a>(stderr: &'a str, label: &str) -> &'a str {
    stderr
        .lines()
        .find_map(|line| line.strip_prefix(label))
        .unwrap_or_else(|| panic!("no `{label}` line in:\n{stderr}"))
        .trim()
}

/// Runs a hint line as a user pasting it would: through `sh -c`, with
/// `path` as `PATH`.
fn run_hint(line: &str, path: &std::ffi::OsStr) -> Output {
    Command::new("sh")
        .args(["-c", line])
        .env("PATH", path)
        .env_remove("REMEX_CONFIG")
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `lab up` prints `try:` and `stop:` commands that work when pasted: with
/// `remex` on PATH being this binary they say `remex`; without it (a build
/// in target/, not installed) they name the binary by its path.
#[test]
fn lab_up_hints_run_as_printed() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_remex"));
    let system_path = std::env::var_os("PATH").unwrap_or_default();
    let installed = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&bin, installed.path().join("remex")).unwrap();
    let mut with_remex = std::ffi::OsString::from(installed.path());
    with_remex.push(":");
    with_remex.push(&system_path);

    for (path, expect_plain) in [(system_path.clone(), false), (with_remex, true)] {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("lab");
        let _down = Down(dir.clone());
        let up = crate::util::Remex::new()
            .env("PATH", &path)
            .args(["lab", "up", "--hosts", "1", "--dir"])
            .arg(&dir)
            .run()
            .expect_code(0);
        let stderr = up.stderr();
        let (try_line, stop_line) = (hint(&stderr, "try:"), hint(&stderr, "stop:"));
        let program = try_line.split(' ').next().unwrap();
        if expect_plain {
            assert_eq!(program, "remex", "{stderr}");
        } else {
            assert_eq!(Path::new(program), bin.canonicalize().unwrap(), "{stderr}");
        }

        let tried = run_hint(try_line, &path);
        let stdout = String::from_utf8_lossy(&tried.stdout);
        assert!(
            tried.status.success() && stdout.starts_with("vm01: Linux "),
            "`{try_line}` failed: {stdout}{}",
            String::from_utf8_lossy(&tried.stderr)
        );
        let stopped = run_hint(stop_line, &path);
        assert!(stopped.status.success(), "`{stop_line}`: {stopped:?}");
        assert!(
            !dir.join("lab.json").exists(),
            "`{stop_line}` left the lab up"
        );
    }
}

/// Each OpenSSH lab host has its own home: SFTP's `~` and relative paths
/// and a command's `~` and working directory are all that home, as on a
/// separate machine, and not the login user's real home.
#[test]
fn exec_and_sftp_agree_on_each_hosts_home() {
    let lab = crate::util::TestLab::new(2);
    let local = tempfile::tempdir().unwrap();
    for host in ["vm01", "vm02"] {
        for (name, remote) in [("tilde", "~/a.txt"), ("relative", "b.txt")] {
            let file = local.path().join(format!("{host}-{name}"));
            fs::write(&file, format!("{host} {name}\n")).unwrap();
            lab.remex()
                .args(["upload", host])
                .arg(&file)
                .arg(remote)
                .run()
                .expect_code(0);
        }
    }
    let run = lab
        .remex()
        .args([
            "exec",
            "all",
            "--raw",
            "cat ~/a.txt a.txt ~/b.txt b.txt; pwd",
        ])
        .run()
        .expect_code(0);
    for host in ["vm01", "vm02"] {
        let home = lab.path().join("hosts").join(host).join("home");
        let tilde = format!("{host}: {host} tilde\n");
        let relative = format!("{host}: {host} relative\n");
        let expected = format!(
            "{tilde}{tilde}{relative}{relative}{host}: {}\n",
            home.display()
        );
        assert!(run.stdout().contains(&expected), "{}", run.stdout());
        assert!(home.join("a.txt").is_file() && home.join("b.txt").is_file());
    }
}

/// A Dropbear lab has no per-host home (Dropbear cannot set `HOME` nor
/// SFTP's start directory): every host's sessions and SFTP use the login
/// user's real home, so they agree, and the hosts share it.
#[test]
fn dropbear_hosts_share_the_login_users_home_for_exec_and_sftp() {
    let (lab, user, _parent) = crate::util::TestLab::dropbear(2);
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("a.txt");
    fs::write(&file, "from vm01\n").unwrap();
    lab.remex()
        .args(["upload", "vm01"])
        .arg(&file)
        .arg("~/a.txt")
        .run()
        .expect_code(0);
    let run = lab
        .remex()
        .args(["exec", "all", "--raw", "cat ~/a.txt a.txt; pwd"])
        .run()
        .expect_code(0);
    for host in ["vm01", "vm02"] {
        let expected = format!(
            "{host}: from vm01\n{host}: from vm01\n{host}: {}\n",
            user.home.display()
        );
        assert!(run.stdout().contains(&expected), "{}", run.stdout());
    }
    assert!(user.home.join("a.txt").is_file());
}

#[test]
fn a_ca_lab_logs_in_by_certificates_with_no_pin_and_no_authorized_key() {
    // Behind a bastion too: the bastion's certificate is checked the same way.
    let lab = crate::util::TestLab::with_ca(2, true);
    let known = std::fs::read_to_string(lab.path().join("known_hosts")).unwrap();
    assert!(
        known.lines().all(|l| l.starts_with("@cert-authority ")),
        "pins in a CA lab's known_hosts:\n{known}"
    );
    assert_eq!(
        std::fs::read_to_string(lab.path().join("authorized_keys")).unwrap(),
        "",
        "a CA lab authorizes no key"
    );
    let json = lab
        .remex()
        .args(["--json", "hosts", "check"])
        .run()
        .expect_code(0)
        .json();
    for result in json["results"].as_array().unwrap() {
        assert_eq!(result["host_key"], "certified", "{result}");
        assert_eq!(result["auth"], true, "{result}");
    }
    // Without the certificate the key alone is refused: it was the way in.
    std::fs::remove_file(lab.path().join("keys").join("id_ed25519-cert.pub")).unwrap();
    let json = lab
        .remex()
        .args(["--json", "exec", "bastion", "--", "true"])
        .run()
        .expect_code(1)
        .json();
    assert_eq!(json["results"][0]["error"]["kind"], "auth", "{json}");
}
