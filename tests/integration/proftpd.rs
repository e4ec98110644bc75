//! ProFTPD's `mod_sftp`: a real SSH server of another lineage that speaks
//! SFTP only and refuses every exec request ("exec request failed" to
//! OpenSSH's `ssh`), as SFTP appliances do. remex must still move files to
//! it, verified (by reading the copy back), and must say at once, not hang,
//! when a command is refused.

use std::io::Read as _;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::transfer_edge::round_trip_by_read_back;
use crate::util::{Remex, TestLab, ssh_keygen, write};

const PROFTPD: &str = "/usr/sbin/proftpd";
const MOD_SFTP: &str = "/usr/lib/proftpd/mod_sftp.so";

/// A ProFTPD `mod_sftp` server on 127.0.0.1 that lets the lab's key in as
/// root, started for one test and stopped (with its sessions) when dropped.
struct SftpOnly {
    child: Child,
    port: u16,
    /// Its log, for failure messages.
    log: PathBuf,
}

impl SftpOnly {
    /// Starts the server next to `lab`: its key in `lab`'s dir, the lab's
    /// client key authorized (in the RFC 4716 form mod_sftp reads).
    fn start(lab: &TestLab) -> SftpOnly {
        assert!(
            Path::new(PROFTPD).exists() && Path::new(MOD_SFTP).exists(),
            "ProFTPD with mod_sftp is missing; install it with: \
             apt-get install -y proftpd-core proftpd-mod-crypto (scripts/test.sh does)"
        );
        let dir = lab.path().join("proftpd");
        std::fs::create_dir_all(dir.join("keys")).unwrap();
        ssh_keygen(
            &["-q", "-t", "ed25519", "-N", "", "-f"],
            &dir.join("host_key"),
        );
        let authorized = ssh_keygen(&["-e", "-f"], &lab.path().join("keys/id_ed25519.pub"));
        write(&dir.join("keys/root"), authorized.as_bytes());
        // A port can be taken between picking and binding: try again.
        for _ in 0..5 {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|l| l.local_addr())
                .unwrap()
                .port();
            let config = dir.join("proftpd.conf");
            write(&config, server_config(&dir, port).as_bytes());
            let log = dir.join("proftpd.log");
            let child = Command::new(PROFTPD)
                .args(["-n", "-c"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&log).unwrap())
                .stderr(Stdio::from(
                    std::fs::File::create(dir.join("stderr")).unwrap(),
                ))
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {PROFTPD}: {e}"));
            let mut server = SftpOnly { child, port, log };
            if server.wait_until_listening() {
                return server;
            }
        }
        panic!("ProFTPD did not come up; see {}", dir.display());
    }

    /// Waits (up to 10 s) until the server greets as mod_sftp; false when
    /// it exited (its port was taken).
    fn wait_until_listening(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut greeting = [0; 16];
                if stream.read_exact(&mut greeting).is_ok()
                    && greeting.starts_with(b"SSH-2.0-mod_sftp")
                {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "ProFTPD did not greet on port {}: {}",
            self.port,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// A config for `lab` whose vm01 is this server (and whose known_hosts
    /// pins its key).
    fn config(&self, lab: &TestLab) -> PathBuf {
        let key = std::fs::read_to_string(lab.path().join("proftpd/host_key.pub")).unwrap();
        let key: Vec<&str> = key.split_whitespace().take(2).collect();
        let mut known = std::fs::read_to_string(&lab.lab.known_hosts_path).unwrap();
        known.push_str(&format!("[127.0.0.1]:{} {}\n", self.port, key.join(" ")));
        std::fs::write(&lab.lab.known_hosts_path, known).unwrap();
        lab.config_variant(
            "proftpd.yml",
            &[(
                &format!("host: 127.0.0.2, port: {}", lab.port()),
                &format!("host: 127.0.0.1, port: {}", self.port),
            )],
        )
    }
}

impl Drop for SftpOnly {
    /// Stops the server and every session it forked (one process group).
    fn drop(&mut self) {
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .status();
        }
        let _ = self.child.wait();
    }
}

/// A standalone ProFTPD that serves SFTP only, on 127.0.0.1:`port`, with
/// all its state in `dir`; root may log in with a key from `dir/keys/root`.
fn server_config(dir: &Path, port: u16) -> String {
    let dir = dir.display();
    format!(
        "ServerType standalone
DefaultServer on
Port {port}
DefaultAddress 127.0.0.1
SocketBindTight on
User root
Group root
PidFile {dir}/proftpd.pid
ScoreboardFile {dir}/scoreboard
DelayTable none
WtmpLog off
UseReverseDNS off
RootLogin on
UseFtpUsers off
RequireValidShell off
LoadModule mod_sftp.c
SFTPEngine on
SFTPLog {dir}/sftp.log
SFTPHostKey {dir}/host_key
SFTPAuthorizedUserKeys file:{dir}/keys/%u
SFTPAuthMethods publickey
"
    )
}

#[test]
fn an_sftp_server_that_refuses_commands_gets_verified_transfers_and_a_clear_exec_error() {
    let lab = TestLab::new(1);
    let server = SftpOnly::start(&lab);
    let config = server.config(&lab);
    let remex = || Remex::new().arg("--config").arg(&config).arg("--json");

    // A command, with and without input: refused at once, as `protocol`,
    // not left to time out.
    for input in [None, Some(&b"some input\n"[..])] {
        let mut exec = remex().args(["exec", "vm01", "--timeout", "2m"]);
        if let Some(bytes) = input {
            exec = exec.args(["--stdin", "-"]).stdin(bytes);
        }
        let run = exec.args(["--", "cat"]).run().expect_code(1);
        let error = &run.json()["results"][0]["error"];
        assert_eq!(error["kind"], "protocol", "{error}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("refused the exec request"),
            "{error}"
        );
    }
    // Deploying a key needs a command on the host: a clear refusal.
    remex()
        .args(["keys", "generate", "--name", "second"])
        .run()
        .expect_code(0);
    let run = remex()
        .args(["keys", "deploy", "vm01", "--name", "second"])
        .run()
        .expect_code(1);
    let error = &run.json()["results"][0]["error"];
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("refused to run"),
        "{error}"
    );

    // Files: one large enough for the streaming hash (over 64 MiB), one for
    // the whole-file hash; both fall back to reading the copy back.
    round_trip_by_read_back(lab.path(), &remex);
}
