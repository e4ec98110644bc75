//! The pure part of a lab: host names, loopback addresses, where each file
//! lives in the lab directory, and the text of the files the lab writes.
//!
//! **Invariant:** nothing here does I/O, so nothing here can fail except
//! on input that is out of range.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};

/// The most hosts one lab may have: one server process each, so a larger
/// number is more likely a typo than a lab.
pub const MAX_HOSTS: usize = 1000;

/// The first host address; `127.0.0.1` is left to whatever else runs on
/// the machine.
const FIRST_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// The name of host number `index` (0-based) in a lab of `hosts` hosts:
/// `vm01`, `vm02`, …, with at least two digits and as many as the largest
/// number needs, so names sort in host order.
pub(super) fn host_name(index: usize, hosts: usize) -> String {
    let width = hosts.max(1).to_string().len().max(2);
    format!("vm{:0width$}", index + 1)
}

/// The loopback address of host number `index` (0-based): `127.0.0.2`,
/// `127.0.0.3`, …, `127.0.0.254`, then `127.0.1.1`, …. Last octets 0 and
/// 255 are skipped so no host looks like a network or broadcast address.
/// `None` past the end of `127.0.0.0/8`.
pub(super) fn host_address(index: usize) -> Option<Ipv4Addr> {
    // Position in the sequence of usable last octets (1..=254) of
    // 127.0.0.0/8; position 0 is 127.0.0.1.
    let position = index.checked_add(usize::from(FIRST_ADDRESS.octets()[3] - 1))?;
    let block = position / 254;
    let octet = u8::try_from(position % 254 + 1).ok()?;
    let high = u8::try_from(block / 256).ok()?;
    let middle = u8::try_from(block % 256).ok()?;
    Some(Ipv4Addr::new(127, high, middle, octet))
}

/// The groups a host belongs to in `config.yml`: every host is in `lab`,
/// and in `odd` or `even` by its number (`vm01` is odd).
pub(super) fn host_groups(index: usize) -> [&'static str; 2] {
    if (index + 1) % 2 == 1 {
        ["lab", "odd"]
    } else {
        ["lab", "even"]
    }
}

/// One host as the rendered files need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HostLine {
    /// The host name, e.g. `vm01`.
    pub name: String,
    /// Where its server listens.
    pub listen: SocketAddrV4,
    /// Its host public key in OpenSSH form, `ssh-ed25519 AAAA…`, no comment.
    pub host_key: String,
}

/// Where each file of a lab lives, all under one absolute directory.
///
/// ```text
/// DIR/lab.json                 machine state: hosts, pids, port, server
/// DIR/config.yml               remex config for the lab
/// DIR/keys/id_ed25519(.pub)    the client key
/// DIR/authorized_keys          the client public key (OpenSSH servers)
/// DIR/known_hosts              one line per host
/// DIR/hosts/vm01/              host key, sshd_config, sshd.pid, sshd.log
/// DIR/audit/audit.jsonl        the lab's audit log (+ .head, .lock, rotated)
/// ```
#[derive(Debug, Clone)]
pub(super) struct Layout {
    /// The lab directory, absolute and canonical.
    pub dir: PathBuf,
}

/// The names `up` may find in a lab directory it is about to reuse; any
/// other entry means the directory belongs to someone else.
pub(super) const LAB_ENTRIES: &[&str] = &[
    "lab.json",
    "config.yml",
    "keys",
    "authorized_keys",
    "home",
    "known_hosts",
    "hosts",
    "audit",
    "password",
];

impl Layout {
    /// The machine state of the lab.
    pub(super) fn state(&self) -> PathBuf {
        self.dir.join("lab.json")
    }

    /// The remex config for the lab.
    pub(super) fn config(&self) -> PathBuf {
        self.dir.join("config.yml")
    }

    /// The directory of the client key (`key_storage_path`).
    pub(super) fn keys_dir(&self) -> PathBuf {
        self.dir.join("keys")
    }

    /// The client private key.
    pub(super) fn client_key(&self) -> PathBuf {
        self.keys_dir().join(CLIENT_KEY_NAME)
    }

    /// The client public key.
    pub(super) fn client_public_key(&self) -> PathBuf {
        self.keys_dir().join(format!("{CLIENT_KEY_NAME}.pub"))
    }

    /// The `AuthorizedKeysFile` of the OpenSSH servers.
    pub(super) fn authorized_keys(&self) -> PathBuf {
        self.dir.join("authorized_keys")
    }

    /// `DIR/hosts/NAME/home`: `$HOME` of every session on an OpenSSH lab
    /// host, and where its sessions and SFTP start (see [`sshd_config`]), so the invoking user's shell rc files (a heavy `~/.bashrc`
    /// costs 100 ms and more per command) play no part in the lab or its
    /// benchmarks, and each host has its own `~/.ssh/authorized_keys` (which
    /// its sshd reads besides `DIR/authorized_keys`), as separate machines
    /// would — `remex keys deploy` and `rotate` edit it.
    pub(super) fn host_home(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("home")
    }

    /// `DIR/password`: the password of a lab's `--password-user`, when
    /// remex chose it (mode 0600).
    pub(super) fn password_file(&self) -> PathBuf {
        self.dir.join("password")
    }

    /// The known_hosts file naming every host.
    pub(super) fn known_hosts(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }

    /// The lab's audit log, in a directory of its own (the log keeps its
    /// head, lock and rotated files beside it).
    pub(super) fn audit_log(&self) -> PathBuf {
        self.dir.join("audit").join("audit.jsonl")
    }

    /// `DIR/service/service.db`: `remex serve`'s store for the lab.
    pub(super) fn service_store(&self) -> PathBuf {
        self.dir.join("service").join("service.db")
    }

    /// The directory of one host.
    pub(super) fn host_dir(&self, name: &str) -> PathBuf {
        self.dir.join("hosts").join(name)
    }

    /// What every command line of this host's server contains, and no
    /// other lab's does: the host directory with a trailing slash. `down`
    /// signals a pid only if its `/proc/PID/cmdline` contains it.
    pub(super) fn host_marker(&self, name: &str) -> String {
        format!("{}/", self.host_dir(name).display())
    }

    /// The host private key in OpenSSH format.
    pub(super) fn host_key(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("ssh_host_ed25519_key")
    }

    /// The host private key in Dropbear format.
    pub(super) fn dropbear_host_key(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("dropbear_ed25519_host_key")
    }

    /// The sshd configuration of one host.
    pub(super) fn sshd_config(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("sshd_config")
    }

    /// The pid file the server writes once it listens.
    pub(super) fn pid_file(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("sshd.pid")
    }

    /// The server's stderr (for Dropbear too).
    pub(super) fn log(&self, name: &str) -> PathBuf {
        self.host_dir(name).join("sshd.log")
    }
}

/// The file name of the client key, `default_key` in `config.yml`.
pub(super) const CLIENT_KEY_NAME: &str = "id_ed25519";

/// The text of an OpenSSH server's `sshd_config`. `authorized_keys` is
/// the lab's shared file, `home` the host's own `$HOME` (whose
/// `.ssh/authorized_keys` sshd reads too). With `password_auth`, sshd
/// checks passwords through PAM (`password` and `keyboard-interactive`).
///
/// Sessions and SFTP agree on `home`, as on a real host: SFTP starts
/// there (`internal-sftp -d`, so `~/x` and relative paths land there),
/// and a shell session moves there through the [`START_SCRIPT`] sshd
/// lets the login shell read (bash: `BASH_ENV`, or `~/.bashrc` where
/// bash reads it for sshd, and `~/.profile` as a login shell; zsh:
/// `~/.zshenv`; see [`start_env`]) — sshd itself starts every session in the login user's
/// real home directory, and has no option to change that short of a
/// `ForceCommand`, which would wrap every command and SFTP too.
pub(super) fn sshd_config(
    listen: SocketAddrV4,
    host_key: &Path,
    pid_file: &Path,
    authorized_keys: &Path,
    home: &Path,
    password_auth: bool,
    shell: &Path,
) -> String {
    let password = if password_auth { "yes" } else { "no" };
    let start = start_env(shell, home);
    format!(
        "# remex lab host, written by `remex lab up`\n\
         ListenAddress {listen}\n\
         HostKey {}\n\
         PidFile {}\n\
         AuthorizedKeysFile {} {}/.ssh/authorized_keys\n\
         StrictModes no\n\
         UsePAM {password}\n\
         PasswordAuthentication {password}\n\
         KbdInteractiveAuthentication {password}\n\
         PubkeyAuthentication yes\n\
         PermitRootLogin prohibit-password\n\
         MaxStartups 1000:30:1000\n\
         MaxSessions 64\n\
         LogLevel VERBOSE\n\
         Subsystem sftp internal-sftp -d {}\n\
         PrintMotd no\n\
         PrintLastLog no\n\
         UseDNS no\n\
         SetEnv HOME={}{start}\n",
        host_key.display(),
        pid_file.display(),
        authorized_keys.display(),
        home.display(),
        home.display(),
        home.display(),
    )
}

/// What `SetEnv` adds besides `HOME` so that `shell` reads the
/// [`START_SCRIPT`] and acts on it: bash reads `BASH_ENV` for `bash -c`
/// (Debian's bash reads `~/.bashrc` instead when sshd starts it), zsh
/// reads `~/.zshenv` anyway. Nothing for other shells: `sh -c` reads no
/// file, and a marker left set would move a bash the user starts later.
fn start_env(shell: &Path, home: &Path) -> String {
    match shell.file_name().and_then(|name| name.to_str()) {
        Some("bash") => format!(" {START_VAR}=1 BASH_ENV={}/.bashrc", home.display()),
        Some("zsh") => format!(" {START_VAR}=1"),
        _ => String::new(),
    }
}

/// Set for each session by the lab's sshd, and unset by [`START_SCRIPT`]
/// once it moved the session to `$HOME`: only the shell sshd starts
/// moves, not a shell the user starts later in another directory.
const START_VAR: &str = "REMEX_LAB_START";

/// The start files the lab writes into each OpenSSH host's `$HOME`, each
/// with [`START_SCRIPT`]: the files the login shells read (see
/// [`sshd_config`]).
pub(super) const START_FILES: &[&str] = &[".bashrc", ".zshenv", ".profile"];

/// What a lab host's shell start files say: move a session sshd started
/// to `$HOME`. POSIX sh, so that bash, zsh and sh read it alike.
pub(super) const START_SCRIPT: &str = "\
# Written by `remex lab up`. The lab's sshd starts every session in the login
# user's real home; this moves it to this host's own $HOME, where SFTP starts
# too (a separate machine's session would start there).
if [ -n \"${REMEX_LAB_START-}\" ]; then unset REMEX_LAB_START BASH_ENV; cd -- \"$HOME\" || :; fi
";

/// The arguments of a Dropbear server: foreground (`-F`), log to stderr
/// (`-E`), no password logins (`-s`).
pub(super) fn dropbear_args(listen: SocketAddrV4, host_key: &Path, pid_file: &Path) -> Vec<String> {
    vec![
        "-F".to_owned(),
        "-E".to_owned(),
        "-s".to_owned(),
        "-p".to_owned(),
        listen.to_string(),
        "-r".to_owned(),
        host_key.display().to_string(),
        "-P".to_owned(),
        pid_file.display().to_string(),
    ]
}

/// The known_hosts text: one `[ADDR]:PORT ssh-ed25519 AAAA…` line per host.
pub(super) fn known_hosts(hosts: &[HostLine]) -> String {
    let mut text = String::new();
    for host in hosts {
        let name = if host.listen.port() == 22 {
            host.listen.ip().to_string()
        } else {
            format!("[{}]:{}", host.listen.ip(), host.listen.port())
        };
        let _ = writeln!(text, "{name} {}", host.host_key);
    }
    text
}

/// The name of the bastion host of a `--bastion` lab (in group `bastions`).
pub(super) const BASTION: &str = "bastion";

/// The text of `config.yml`; with `bastion`, every host but the bastion
/// is reached through it.
pub(super) fn config_yml(hosts: &[HostLine], user: &str, layout: &Layout, bastion: bool) -> String {
    let mut text = String::from("# remex lab config, written by `remex lab up`\nvms:\n");
    for (index, host) in hosts.iter().enumerate() {
        let (groups, jump) = if host.name == BASTION {
            ("bastions".to_owned(), "")
        } else if bastion {
            (host_groups(index).join(", "), ", jump: bastion")
        } else {
            (host_groups(index).join(", "), "")
        };
        let _ = writeln!(
            text,
            "  {}: {{ host: {}, port: {}, user: {}, groups: [{groups}]{jump} }}",
            yaml_scalar(&host.name),
            host.listen.ip(),
            host.listen.port(),
            yaml_scalar(user),
        );
    }
    let _ = write!(
        text,
        "remote_execution:\n  \
         key_storage_path: {}\n  \
         default_key: {CLIENT_KEY_NAME}\n  \
         known_hosts: {}\n  \
         host_key_policy: strict\n  \
         connect_timeout: 10s\n  \
         command_timeout: 5m\n  \
         max_parallel: 64\n  \
         use_agent: false\n\
         audit:\n  \
         path: {}\n\
         service:\n  \
         store: {}\n",
        yaml_scalar(&layout.keys_dir().display().to_string()),
        yaml_scalar(&layout.known_hosts().display().to_string()),
        yaml_scalar(&layout.audit_log().display().to_string()),
        yaml_scalar(&layout.service_store().display().to_string()),
    );
    text
}

/// `value` as a YAML scalar: plain when that reads back as the same
/// string, else double-quoted (a JSON string is a valid YAML one).
fn yaml_scalar(value: &str) -> String {
    const RESERVED: &[&str] = &[
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~",
    ];
    let safe = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '+'))
        && value.starts_with(|c: char| c.is_ascii_alphanumeric() || matches!(c, '/' | '_'))
        && value.chars().any(|c| c.is_ascii_alphabetic())
        && !RESERVED.contains(&value.to_ascii_lowercase().as_str());
    if safe {
        value.to_owned()
    } else {
        serde_json::Value::from(value).to_string()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn names_have_two_digits_or_as_many_as_the_largest_number() {
        assert_eq!(host_name(0, 1), "vm01");
        assert_eq!(host_name(8, 64), "vm09");
        assert_eq!(host_name(98, 99), "vm99");
        assert_eq!(host_name(0, 100), "vm001");
        assert_eq!(host_name(99, 100), "vm100");
        assert_eq!(host_name(999, 1000), "vm1000");
    }

    #[test]
    fn addresses_start_at_127_0_0_2_and_skip_0_and_255() {
        assert_eq!(host_address(0), Some(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(host_address(1), Some(Ipv4Addr::new(127, 0, 0, 3)));
        assert_eq!(host_address(252), Some(Ipv4Addr::new(127, 0, 0, 254)));
        assert_eq!(host_address(253), Some(Ipv4Addr::new(127, 0, 1, 1)));
        assert_eq!(host_address(253 + 254), Some(Ipv4Addr::new(127, 0, 2, 1)));
        let addresses: Vec<_> = (0..MAX_HOSTS).filter_map(host_address).collect();
        assert_eq!(addresses.len(), MAX_HOSTS);
        let mut unique = addresses.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), MAX_HOSTS);
        assert!(
            addresses
                .iter()
                .all(|a| a.octets()[0] == 127 && !matches!(a.octets()[3], 0 | 255))
        );
    }

    #[test]
    fn addresses_end_with_127_0_0_0_slash_8() {
        let last = 254 * 256 * 256 - 2;
        assert_eq!(host_address(last), Some(Ipv4Addr::new(127, 255, 255, 254)));
        assert_eq!(host_address(last + 1), None);
        assert_eq!(host_address(usize::MAX), None);
    }

    #[test]
    fn groups_are_lab_and_odd_or_even() {
        assert_eq!(host_groups(0), ["lab", "odd"]);
        assert_eq!(host_groups(1), ["lab", "even"]);
    }

    fn two_hosts() -> Vec<HostLine> {
        (0..2)
            .map(|i| HostLine {
                name: host_name(i, 2),
                listen: SocketAddrV4::new(host_address(i).unwrap(), 40123),
                host_key: format!("ssh-ed25519 KEY{i}"),
            })
            .collect()
    }

    #[test]
    fn config_yml_has_the_documented_shape() {
        let layout = Layout {
            dir: PathBuf::from("/tmp/lab"),
        };
        let text = config_yml(&two_hosts(), "root", &layout, false);
        assert_eq!(
            text,
            "# remex lab config, written by `remex lab up`\n\
             vms:\n  \
             vm01: { host: 127.0.0.2, port: 40123, user: root, groups: [lab, odd] }\n  \
             vm02: { host: 127.0.0.3, port: 40123, user: root, groups: [lab, even] }\n\
             remote_execution:\n  \
             key_storage_path: /tmp/lab/keys\n  \
             default_key: id_ed25519\n  \
             known_hosts: /tmp/lab/known_hosts\n  \
             host_key_policy: strict\n  \
             connect_timeout: 10s\n  \
             command_timeout: 5m\n  \
             max_parallel: 64\n  \
             use_agent: false\n\
             audit:\n  \
             path: /tmp/lab/audit/audit.jsonl\n\
             service:\n  \
             store: /tmp/lab/service/service.db\n"
        );
    }

    #[test]
    fn known_hosts_uses_bracketed_names_with_the_port() {
        assert_eq!(
            known_hosts(&two_hosts()),
            "[127.0.0.2]:40123 ssh-ed25519 KEY0\n[127.0.0.3]:40123 ssh-ed25519 KEY1\n"
        );
    }

    #[test]
    fn yaml_scalars_are_quoted_when_plain_would_change_them() {
        assert_eq!(yaml_scalar("root"), "root");
        assert_eq!(yaml_scalar("remex-lab-1a2b"), "remex-lab-1a2b");
        assert_eq!(yaml_scalar("/tmp/x.y/keys"), "/tmp/x.y/keys");
        assert_eq!(yaml_scalar("yes"), "\"yes\"");
        assert_eq!(yaml_scalar("1000"), "\"1000\"");
        assert_eq!(yaml_scalar("/tmp/a b: c"), "\"/tmp/a b: c\"");
        assert_eq!(yaml_scalar("-x"), "\"-x\"");
    }

    #[test]
    fn sshd_config_listens_on_one_address() {
        let text = sshd_config(
            SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 40123),
            Path::new("/l/hosts/vm01/ssh_host_ed25519_key"),
            Path::new("/l/hosts/vm01/sshd.pid"),
            Path::new("/l/authorized_keys"),
            Path::new("/l/hosts/vm01/home"),
            false,
            Path::new("/bin/bash"),
        );
        assert!(text.contains("\nListenAddress 127.0.0.2:40123\n"));
        assert!(text.contains(
            "\nSetEnv HOME=/l/hosts/vm01/home REMEX_LAB_START=1 BASH_ENV=/l/hosts/vm01/home/.bashrc\n"
        ));
        assert!(text.contains("\nSubsystem sftp internal-sftp -d /l/hosts/vm01/home\n"));
        assert!(START_SCRIPT.contains(START_VAR));
        assert!(text.contains(
            "\nAuthorizedKeysFile /l/authorized_keys /l/hosts/vm01/home/.ssh/authorized_keys\n"
        ));
        assert!(text.contains("\nPasswordAuthentication no\n"));
        assert_eq!(text.matches("ListenAddress").count(), 1);
        let text = sshd_config(
            SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 40123),
            Path::new("/k"),
            Path::new("/p"),
            Path::new("/a"),
            Path::new("/h"),
            true,
            Path::new("/bin/sh"),
        );
        assert!(text.contains("\nSetEnv HOME=/h\n"), "{text}");
        for line in [
            "UsePAM yes",
            "PasswordAuthentication yes",
            "KbdInteractiveAuthentication yes",
        ] {
            assert!(text.contains(&format!("\n{line}\n")), "{line}");
        }
    }

    #[test]
    fn markers_of_two_hosts_do_not_contain_each_other() {
        let layout = Layout {
            dir: PathBuf::from("/l"),
        };
        assert_eq!(layout.host_marker("vm01"), "/l/hosts/vm01/");
        assert!(
            !layout
                .host_marker("vm010")
                .contains(&layout.host_marker("vm01"))
        );
    }
}
