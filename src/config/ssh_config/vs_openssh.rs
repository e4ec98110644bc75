#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! remex's reading of tricky ssh_config files against OpenSSH's own.
//!
//! For each case, the files are written under a temporary home and read
//! by [`SshConfig::load`]; then, for each alias, `ssh -G -F FILE ALIAS`
//! prints what OpenSSH resolved, and `ssh -v` (with `ProxyCommand=true`,
//! so nothing leaves the machine) prints the key and certificate paths it
//! expanded. Every keyword remex reads is compared, **with OpenSSH's
//! defaults modelled** where the file sets nothing: `hostname` is the
//! alias lower-cased, `user` the local user, `port` 22, `connecttimeout`
//! `none`, `serveraliveinterval` 0, `serveralivecountmax` 3,
//! `addressfamily` `any`, no `proxyjump`/`proxycommand`/`certificatefile`
//! line, and `identityfile` only `~/.ssh/id_*` defaults.
//!
//! Two homes, as in OpenSSH: `ssh` runs with `HOME` set to the temporary
//! home, which is where `Include` looks (`~/.ssh/...`, through glob(3));
//! `~` and `%d` in `IdentityFile` come from the password database, so
//! remex resolves with the [`LocalAccount`] that `ssh` itself reports
//! (asked once, with `IdentityFile=%d/…/%u`). `ssh -v` may create
//! `~/.ssh` in that home, as any `ssh` run does; it writes nothing else.
//!
//! A second test gives files `ssh` refuses, and checks remex refuses them
//! too, at the same line when `ssh` names one.
//!
//! Without `ssh` these tests fail (they never skip).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Output};
use std::sync::OnceLock;

use super::*;

const INSTALL: &str = "these tests compare with OpenSSH's client, which is missing: apt-get install -y openssh-client";

/// A set of files under a temporary home (`.ssh/config` is the one read)
/// and the aliases to resolve. `{HOME}` in a file stands for the home.
struct Case {
    name: &'static str,
    /// (path under the home, mode, text).
    files: &'static [(&'static str, u32, &'static str)],
    aliases: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "overlapping Host blocks, several patterns, ?, negation, first value wins",
        files: &[(
            ".ssh/config",
            0o644,
            "\
# The first value obtained wins, block after block.
Host web? db*
  User deploy
  Port 2201
Host web1
  User other
  HostName %h.Internal.example.com
  ConnectTimeout 1m30s
Host * !bastion
  ProxyJump bastion
  ServerAliveInterval 15
Host bastion
  HostName 203.0.113.7
  User=jump
  Port = 2222
Host *
  Port 22
  ServerAliveCountMax 5
  AddressFamily inet
",
        )],
        aliases: &["web1", "web12", "dbmain", "bastion", "other", "WEB1"],
    },
    Case {
        name: "Match host (the HostName so far), originalhost, user, localuser, all, negation",
        files: &[(
            ".ssh/config",
            0o644,
            "\
Host a
  HostName real.example.com
Match host real.example.com
  Port 1111
Match host a
  Port 2222
Match originalhost a
  User u2
Match !host *.example.com,b
  ConnectTimeout 7
Match user u2
  ServerAliveInterval 20
Match localuser * host b*,!bz
  AddressFamily inet6
Match host MyHost all
  Port 3333
Match all
  ServerAliveCountMax 9
",
        )],
        aliases: &["a", "b", "bee", "bz", "MyHost", "c.example.com"],
    },
    Case {
        name: "Include: relative under ~/.ssh with a glob, absolute, ~, block scope, hidden files",
        files: &[
            (
                ".ssh/config",
                0o644,
                "\
Host a
  Include conf.d/*.conf
  HostName ha
Host b
  Include {HOME}/abs/*.conf
Host *
  User star
  Port 9
  Include ~/.ssh/tail
",
            ),
            (
                ".ssh/conf.d/10-a.conf",
                0o644,
                "Port 1001\nHost b\n  User fromb\n",
            ),
            (".ssh/conf.d/20-z.conf", 0o644, "Port 1002\nUser fromz\n"),
            (".ssh/conf.d/.hidden.conf", 0o644, "Port 1003\n"),
            (".ssh/conf.d/skip.txt", 0o644, "Port 1004\n"),
            (
                "abs/x.conf",
                0o644,
                "ConnectTimeout 5\nMatch host b\n  Port 4000\n",
            ),
            (".ssh/tail", 0o644, "CertificateFile ~/certs/%h.pub\n"),
        ],
        aliases: &["a", "b", "c"],
    },
    Case {
        name: "an Include in a block that does not apply; a Match inside an Include",
        files: &[
            (
                ".ssh/config",
                0o644,
                "Host nomatch\n  Include skipped\nHost a\n  Include inc\n  User after\nHost *\n  Port 8\n",
            ),
            (".ssh/skipped", 0o644, "Port 5\nHost *\n  User skipped\n"),
            (".ssh/inc", 0o644, "Match host zz\n  Port 5\n"),
        ],
        aliases: &["a", "b", "zz"],
    },
    Case {
        name: "%h in HostName; IdentityFile and CertificateFile with ~, %r, %h, %d, %u, %n, %p, %%",
        files: &[(
            ".ssh/config",
            0o644,
            "\
Host web?
  IdentityFile ~/.ssh/id_%r@%h
  CertificateFile \"~/certs/%h cert.pub\"
  IdentityFile=%d/k_%u_%%_%n_%p
Host *
  HostName %h.EXAMPLE.net
  User Deploy
  Port 2200
  IdentityFile /etc/remex-test/shared_key
  IdentityFile ~/.ssh/id_%r@%h
  CertificateFile /etc/remex-test/c2
",
        )],
        aliases: &["webA", "webB", "other", "Web1"],
    },
    Case {
        name: "ProxyJump chains and none; ProxyCommand and ProxyJump exclude each other",
        files: &[(
            ".ssh/config",
            0o644,
            "\
Host direct
  ProxyJump none
Host cmd
  ProxyCommand nc %h %p
Host cmdnone
  ProxyCommand none
Host chain
  ProxyJump ops@j1:2022,j2,ssh://u@j3:99
Host v6
  ProxyJump [2001:db8::1]:2200
Host *
  ProxyJump bastion.example.com
  ProxyCommand used only after ProxyJump none
",
        )],
        aliases: &["direct", "cmd", "cmdnone", "chain", "v6", "other"],
    },
    Case {
        name: "Key=value, quotes, escapes, tabs, comments, none then a value",
        files: &[(
            ".ssh/config",
            0o644,
            "\
HOSTNAME=\"Quoted Name\"
Host *   # a comment after the patterns
\tUser\t=\t\"a b\"
  IdentityFile \"/etc/remex test/key one\" # a comment
  IdentityFile /etc/remex\\ test/key#two
  Port '2''2''2'
  ServerAliveInterval=1M5s
  ConnectTimeout none
  ConnectTimeout 0
",
        )],
        aliases: &["x"],
    },
];

/// Files `ssh` refuses; remex must refuse them too.
const REFUSED: &[Case] = &[
    Case {
        name: "a bad port in a block that does not apply",
        files: &[(".ssh/config", 0o644, "Host nomatch\n  Port 0\n")],
        aliases: &["a"],
    },
    Case {
        name: "extra arguments",
        files: &[(".ssh/config", 0o644, "Host *\n\n  Port 22 33\n")],
        aliases: &["a"],
    },
    Case {
        name: "a negative time",
        files: &[(".ssh/config", 0o644, "ConnectTimeout -1\n")],
        aliases: &["a"],
    },
    Case {
        name: "a quote left open",
        files: &[(".ssh/config", 0o644, "Host *\n  User \"x\n")],
        aliases: &["a"],
    },
    Case {
        name: "an empty jump host",
        files: &[(".ssh/config", 0o644, "Host *\n  ProxyJump a,,b\n")],
        aliases: &["a"],
    },
    Case {
        name: "all with other criteria",
        files: &[(".ssh/config", 0o644, "Match all host a\n  Port 1\n")],
        aliases: &["a"],
    },
    Case {
        name: "an unknown Match criterion",
        files: &[(".ssh/config", 0o644, "Host a\nMatch nosuch x\n  Port 1\n")],
        aliases: &["a"],
    },
    Case {
        name: "a bad AddressFamily",
        files: &[(".ssh/config", 0o644, "AddressFamily ipv9\n")],
        aliases: &["a"],
    },
    Case {
        name: "an included file writable by others",
        files: &[
            (".ssh/config", 0o644, "Include inc\n"),
            (".ssh/inc", 0o666, "Port 1\n"),
        ],
        aliases: &["a"],
    },
    Case {
        name: "a file that includes itself",
        files: &[(".ssh/config", 0o644, "Include config\n")],
        aliases: &["a"],
    },
    Case {
        name: "an unknown token in HostName",
        files: &[(".ssh/config", 0o644, "Host a\n  HostName %p.example.com\n")],
        aliases: &["a"],
    },
];

#[test]
fn remex_resolves_like_openssh() {
    let account = ssh_account();
    let mut mismatches = Vec::new();
    let mut compared = 0;
    for case in CASES {
        let home = write_case(case);
        let config_path = home.path().join(".ssh/config");
        let config = SshConfig::load(&config_path, home.path())
            .unwrap_or_else(|err| panic!("{}: {err}", case.name));
        for alias in case.aliases {
            let settings = config
                .resolve(alias, account)
                .unwrap_or_else(|err| panic!("{} / {alias}: {err}", case.name));
            let openssh = ssh_g(&config_path, home.path(), alias);
            let (identities, certificates) = ssh_v_key_files(&config_path, home.path(), alias);
            for (keyword, remex, ssh) in compare(
                alias,
                &settings,
                account,
                &openssh,
                identities,
                certificates,
            ) {
                compared += 1;
                if remex != ssh {
                    mismatches.push(format!(
                        "{} / {alias} / {keyword}:\n    remex:   {remex:?}\n    OpenSSH: {ssh:?}",
                        case.name
                    ));
                }
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {compared} values differ from OpenSSH's:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    // 7 cases, 29 aliases, 11 keywords each.
    assert_eq!(compared, 29 * 11);
}

#[test]
fn remex_refuses_what_openssh_refuses() {
    let account = ssh_account();
    for case in REFUSED {
        let home = write_case(case);
        let config_path = home.path().join(".ssh/config");
        let alias = case.aliases[0];
        let ssh = ssh(&config_path, home.path(), &["-G", alias]);
        let ssh_says = String::from_utf8_lossy(&ssh.stderr).into_owned();
        assert!(
            !ssh.status.success(),
            "{}: OpenSSH accepts this; the case is wrong",
            case.name
        );
        let remex = SshConfig::load(&config_path, home.path())
            .and_then(|config| config.resolve(alias, account));
        let err = match remex {
            Err(err) => err.to_string(),
            Ok(settings) => panic!(
                "{}: OpenSSH refuses it ({ssh_says}) but remex resolved {settings:?}",
                case.name
            ),
        };
        // "FILE line N: ..." in OpenSSH, "FILE:N: ..." in remex.
        if let Some(line) = ssh_says
            .split(" line ")
            .nth(1)
            .and_then(|rest| rest.split(':').next())
            .and_then(|n| n.parse::<usize>().ok())
        {
            assert!(
                err.contains(&format!(":{line}: ")),
                "{}: OpenSSH says line {line} ({ssh_says}), remex says: {err}",
                case.name
            );
        }
    }
}

/// (keyword, remex's value, OpenSSH's value) for each keyword remex reads,
/// with OpenSSH's defaults for what the file does not set.
fn compare(
    alias: &str,
    settings: &HostSettings,
    account: &LocalAccount,
    openssh: &BTreeMap<String, Vec<String>>,
    identities: Vec<String>,
    certificates: Vec<String>,
) -> Vec<(&'static str, Vec<String>, Vec<String>)> {
    let one = |value: String| vec![value];
    let ssh = |keyword: &str| openssh.get(keyword).cloned().unwrap_or_default();
    let paths = |files: &[Sourced<PathBuf>]| -> Vec<String> {
        files
            .iter()
            .map(|f| f.value.display().to_string())
            .collect()
    };
    let host_name = settings
        .host_name
        .as_ref()
        .map_or_else(|| alias.to_ascii_lowercase(), |h| h.value.clone());
    let user = settings
        .user
        .as_ref()
        .map_or_else(|| account.user.clone(), |u| u.value.clone());
    let port = settings.port.as_ref().map_or(22, |p| p.value);
    let seconds = |time: &Option<Sourced<Duration>>, unset: &str| {
        time.as_ref()
            .map_or_else(|| unset.to_owned(), |t| t.value.as_secs().to_string())
    };
    let jump: Vec<String> = match &settings.proxy_jump {
        Some(jump) if !jump.value.is_empty() => {
            let hops: Vec<String> = jump.value.iter().map(ToString::to_string).collect();
            vec![hops.join(",")]
        }
        _ => Vec::new(),
    };
    // Without IdentityFile, ssh lists its defaults; remex lists nothing.
    let (remex_identities, ssh_identities) = if settings.identity_files.is_empty() {
        let defaults = ssh("identityfile")
            .iter()
            .all(|file| file.starts_with("~/.ssh/id_"));
        (
            Vec::new(),
            if defaults {
                Vec::new()
            } else {
                ssh("identityfile")
            },
        )
    } else {
        (paths(&settings.identity_files), identities)
    };
    vec![
        ("hostname", one(host_name), ssh("hostname")),
        ("user", one(user), ssh("user")),
        ("port", one(port.to_string()), ssh("port")),
        (
            "connecttimeout",
            one(seconds(&settings.connect_timeout, "none")),
            ssh("connecttimeout"),
        ),
        (
            "serveraliveinterval",
            one(seconds(&settings.server_alive_interval, "0")),
            ssh("serveraliveinterval"),
        ),
        (
            "serveralivecountmax",
            one(settings
                .server_alive_count_max
                .as_ref()
                .map_or(3, |c| c.value)
                .to_string()),
            ssh("serveralivecountmax"),
        ),
        (
            "addressfamily",
            one(settings
                .address_family
                .as_ref()
                .map_or(AddressFamily::Any, |f| f.value)
                .to_string()),
            ssh("addressfamily"),
        ),
        ("proxyjump", jump, ssh("proxyjump")),
        (
            "proxycommand",
            settings
                .proxy_command
                .iter()
                .map(|c| c.value.clone())
                .collect(),
            ssh("proxycommand"),
        ),
        ("identityfile (expanded)", remex_identities, ssh_identities),
        (
            "certificatefile (expanded)",
            paths(&settings.certificate_files),
            certificates,
        ),
    ]
}

/// Writes a case's files under a new temporary home.
fn write_case(case: &Case) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let home_text = home.path().display().to_string();
    for (path, mode, text) in case.files {
        let path = home.path().join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text.replace("{HOME}", &home_text)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).unwrap();
    }
    home
}

/// Runs `ssh -F config ARGS` with `HOME=home`, no agent, and no system-wide
/// config (`-F` skips it).
fn ssh(config: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new("ssh")
        .arg("-F")
        .arg(config)
        .args(args)
        .env("HOME", home)
        .env_remove("SSH_AUTH_SOCK")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run ssh ({err}); {INSTALL}"))
}

/// `ssh -G`'s answer: keyword → values, in order.
fn ssh_g(config: &Path, home: &Path, alias: &str) -> BTreeMap<String, Vec<String>> {
    let out = ssh(config, home, &["-G", alias]);
    assert!(
        out.status.success(),
        "ssh -G {alias} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((keyword, value)) = line.split_once(' ') {
            values
                .entry(keyword.to_owned())
                .or_default()
                .push(value.to_owned());
        }
    }
    values
}

/// The identity and certificate files `ssh -v` says it tries, expanded;
/// the `-cert` variant `ssh` adds after each identity file is left out.
/// `ProxyCommand=true` stands in for the network (`-o` comes before the
/// file, so it wins): ssh expands the paths, then the "connection" ends.
fn ssh_v_key_files(config: &Path, home: &Path, alias: &str) -> (Vec<String>, Vec<String>) {
    let out = ssh(
        config,
        home,
        &[
            "-v",
            "-o",
            "ProxyCommand=true",
            "-o",
            "BatchMode=yes",
            alias,
            "true",
        ],
    );
    let log = String::from_utf8_lossy(&out.stderr);
    let mut identities: Vec<String> = Vec::new();
    let mut certificates = Vec::new();
    for line in log.lines() {
        let path_of = |prefix: &str| {
            line.strip_prefix(prefix)
                .and_then(|rest| rest.rsplit_once(" type "))
                .map(|(path, _)| path.to_owned())
        };
        if let Some(path) = path_of("debug1: identity file ") {
            let is_cert_variant = identities
                .last()
                .is_some_and(|last| path == format!("{last}-cert"));
            if !is_cert_variant {
                identities.push(path);
            }
        } else if let Some(path) = path_of("debug1: certificate file ") {
            certificates.push(path);
        }
    }
    (identities, certificates)
}

/// The local account as `ssh` sees it (`%u`, and `%d` for `~`), asked
/// once: `ssh -v` with `IdentityFile=%d/remex-probe/%u`.
fn ssh_account() -> &'static LocalAccount {
    static ACCOUNT: OnceLock<LocalAccount> = OnceLock::new();
    ACCOUNT.get_or_init(|| {
        let probe = tempfile::tempdir().unwrap();
        let out = ssh(
            Path::new("/dev/null"),
            probe.path(),
            &[
                "-v",
                "-o",
                "ProxyCommand=true",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentityFile=%d/remex-probe/%u",
                "probe",
                "true",
            ],
        );
        let log = String::from_utf8_lossy(&out.stderr);
        let found = log.lines().find_map(|line| {
            let path = line
                .strip_prefix("debug1: identity file ")?
                .rsplit_once(" type ")?
                .0;
            let (home, user) = path.rsplit_once("/remex-probe/")?;
            Some(LocalAccount {
                user: user.to_owned(),
                home: PathBuf::from(if home.is_empty() { "/" } else { home }),
            })
        });
        found.unwrap_or_else(|| panic!("ssh -v did not list the probe identity file:\n{log}"))
    })
}
