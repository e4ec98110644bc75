#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! The rules of `ssh_config`, one test each. `vs_openssh.rs` checks the
//! same rules against `ssh -G` itself.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use super::lexer::split_args;
use super::*;

const ORIGIN: &str = "/home/me/.ssh/config";
const HOME: &str = "/home/me";

fn me() -> LocalAccount {
    LocalAccount {
        user: "me".to_owned(),
        home: PathBuf::from(HOME),
    }
}

fn parse(text: &str) -> Result<SshConfig, SshConfigError> {
    SshConfig::parse(text, Path::new(ORIGIN), Path::new(HOME))
}

fn parse_ok(text: &str) -> SshConfig {
    parse(text).unwrap_or_else(|err| panic!("{err}"))
}

fn resolve(text: &str, alias: &str) -> HostSettings {
    parse_ok(text)
        .resolve(alias, &me())
        .unwrap_or_else(|err| panic!("{err}"))
}

/// The port and the line that set it.
fn port(text: &str, alias: &str) -> Option<(u16, usize)> {
    resolve(text, alias)
        .port
        .map(|port| (port.value, port.line))
}

/// The `Invalid` error of parsing `text`: (line, keyword, message).
fn invalid(text: &str) -> (usize, String, String) {
    match parse(text) {
        Err(SshConfigError::Invalid {
            file,
            line,
            keyword,
            message,
        }) => {
            assert_eq!(file, Path::new(ORIGIN));
            (line, keyword, message)
        }
        other => panic!("expected an invalid-line error for {text:?}, got {other:?}"),
    }
}

/// The error of resolving `alias` in `text`, which parses.
fn resolve_err(text: &str, alias: &str) -> SshConfigError {
    match parse_ok(text).resolve(alias, &me()) {
        Err(err) => err,
        Ok(settings) => panic!("expected an error for {alias}, got {settings:?}"),
    }
}

fn args(text: &str) -> Vec<String> {
    split_args(text).unwrap_or_else(|refusal| panic!("{}", refusal.message))
}

/// A temporary home with `files` (path under it → text), each mode 0644.
fn home_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = home.path().join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        write(&path, text);
    }
    home
}

/// Writes `text` to `path`, mode 0644 (whatever the umask).
fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
}

/// Loads `home/.ssh/config` with `home` as the home directory.
fn load(home: &Path) -> Result<SshConfig, SshConfigError> {
    SshConfig::load(&home.join(".ssh/config"), home)
}

fn load_resolve(home: &Path, alias: &str) -> HostSettings {
    let account = LocalAccount {
        user: "me".to_owned(),
        home: home.to_path_buf(),
    };
    load(home)
        .unwrap_or_else(|err| panic!("{err}"))
        .resolve(alias, &account)
        .unwrap_or_else(|err| panic!("{err}"))
}

// --- Lines -----------------------------------------------------------------

#[test]
fn keyword_and_value_may_be_separated_by_blanks_or_one_equals_sign() {
    for line in [
        "Port 2222",
        "Port=2222",
        "Port = 2222",
        "Port =2222",
        "Port= 2222",
        "\tPORT\t2222",
        "  port 2222   # a comment",
        "port 2222\r",
    ] {
        assert_eq!(port(line, "a"), Some((2222, 1)), "{line:?}");
    }
}

#[test]
fn arguments_split_on_blanks_with_quotes_escapes_and_comments() {
    assert_eq!(args(r#""a b" c"#), ["a b", "c"]);
    assert_eq!(args(r#"'x"y'"#), [r#"x"y"#]);
    assert_eq!(args(r"a\ b"), ["a b"]);
    assert_eq!(args(r#"a\"b"#), [r#"a"b"#]);
    assert_eq!(args(r"a\\b"), [r"a\b"]);
    // Not an escape: the backslash stays.
    assert_eq!(args(r"a\qb"), [r"a\qb"]);
    assert_eq!(args("'2''2'"), ["22"]);
    // `#` ends the line only where an argument starts.
    assert_eq!(args(r##""/x y/%h"#c"##), ["/x y/%h#c"]);
    assert_eq!(args("a #c d"), ["a"]);
    assert_eq!(args("#c"), Vec::<String>::new());
    assert_eq!(args("a\t\tb"), ["a", "b"]);
}

#[test]
fn quoted_values_are_read_whole() {
    let settings = resolve(
        "HostName \"quoted name\"\nUser a\\ b\nIdentityFile \"/keys/my key\"\n",
        "a",
    );
    assert_eq!(settings.host_name.unwrap().value, "quoted name");
    assert_eq!(settings.user.unwrap().value, "a b");
    assert_eq!(settings.identity_files[0].value, Path::new("/keys/my key"));
}

#[test]
fn a_quote_left_open_is_an_error_naming_file_and_line() {
    let (line, keyword, message) = invalid("# header\n\nHost *\n  User \"unterminated\n");
    assert_eq!((line, keyword.as_str()), (4, "User"));
    assert!(message.contains("quote"), "{message}");
}

#[test]
fn a_keyword_without_argument_is_an_error() {
    for text in ["Port", "Port=", "Port #2222", "Host *\n  HostName \"\""] {
        let (_, keyword, message) = invalid(text);
        assert!(
            keyword == "Port" || keyword == "HostName",
            "{text:?}: {keyword}"
        );
        assert!(message.contains("argument"), "{text:?}: {message}");
    }
}

#[test]
fn extra_arguments_after_a_value_are_an_error() {
    let (line, keyword, message) = invalid("Host *\n  Port 22 33\n");
    assert_eq!((line, keyword.as_str()), (2, "Port"));
    assert!(message.contains("extra argument `33`"), "{message}");
}

#[test]
fn blank_and_comment_lines_count_for_line_numbers() {
    let text = "# comment\n\n   \n\t# indented comment\nHost a\n\n  Port 7\n";
    assert_eq!(port(text, "a"), Some((7, 7)));
}

#[test]
fn errors_display_file_line_keyword_and_message() {
    let err = parse("Host a\n  Port abc\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "/home/me/.ssh/config:2: Port: bad port \"abc\": give a number from 1 to 65535 \
         (remex does not look service names up in /etc/services)"
    );
}

// --- Host ------------------------------------------------------------------

#[test]
fn host_patterns_take_wildcards_and_several_per_line() {
    let text = "Host web? db*\n  Port 1\n";
    assert_eq!(port(text, "web1"), Some((1, 2)));
    assert_eq!(port(text, "dbmain"), Some((1, 2)));
    assert_eq!(port(text, "db"), Some((1, 2)));
    assert_eq!(port(text, "web10"), None);
    assert_eq!(port(text, "web"), None);
}

#[test]
fn a_negated_host_pattern_excludes_the_block() {
    let text = "Host * !bastion\n  Port 1\nHost !a\n  Port 2\n";
    assert_eq!(port(text, "web"), Some((1, 2)));
    assert_eq!(port(text, "bastion"), None, "negated and no other block");
    // A line of only negated patterns applies to nothing.
    assert_eq!(port("Host !a\n  Port 2\n", "b"), None);
}

#[test]
fn host_patterns_match_the_alias_as_typed() {
    let text = "Host MyHost\n  Port 1\n";
    assert_eq!(port(text, "MyHost"), Some((1, 2)));
    assert_eq!(port(text, "myhost"), None);
}

#[test]
fn the_first_obtained_value_wins_across_blocks() {
    let text = "\
Host web*
  User deploy
Host web1
  User other
  Port 2201
Host *
  Port 22
  User fallback
";
    let web1 = resolve(text, "web1");
    let user = web1.user.unwrap();
    assert_eq!((user.value.as_str(), user.line), ("deploy", 2));
    assert_eq!(web1.port.map(|p| (p.value, p.line)), Some((2201, 5)));
    let db = resolve(text, "db");
    assert_eq!(db.user.map(|u| u.value), Some("fallback".to_owned()));
    assert_eq!(db.port.map(|p| p.value), Some(22));
    // Within one block too.
    assert_eq!(port("Port 1\nPort 2\n", "a"), Some((1, 1)));
}

#[test]
fn lines_before_the_first_host_apply_to_every_host() {
    let text = "Port 9\nHost a\n  Port 1\n";
    assert_eq!(port(text, "a"), Some((9, 1)));
}

#[test]
fn nothing_set_is_none_and_the_empty_config_sets_nothing() {
    assert_eq!(
        resolve("Host other\n  Port 1\n", "a"),
        HostSettings::default()
    );
    let empty = SshConfig::default().resolve("a", &me()).unwrap();
    assert_eq!(empty, HostSettings::default());
}

// --- Values ----------------------------------------------------------------

#[test]
fn ports_must_be_numbers_from_1_to_65535() {
    assert_eq!(port("Port 65535", "a"), Some((65535, 1)));
    for bad in ["0", "65536", "abc", "-1", "22x", "ssh"] {
        let (line, keyword, message) = invalid(&format!("Port {bad}"));
        assert_eq!((line, keyword.as_str()), (1, "Port"));
        assert!(
            message.starts_with(&format!("bad port \"{bad}\"")),
            "{message}"
        );
    }
}

#[test]
fn bad_values_are_errors_in_blocks_that_do_not_apply() {
    // As in ssh: every line is checked, whichever host is asked for.
    let (line, keyword, _) = invalid("Host nomatch\n  Port 0\n");
    assert_eq!((line, keyword.as_str()), (2, "Port"));
    let (line, keyword, _) = invalid("Host nomatch\n  ConnectTimeout -1\n");
    assert_eq!((line, keyword.as_str()), (2, "ConnectTimeout"));
}

#[test]
fn times_take_seconds_or_units_and_none_obtains_nothing() {
    let time = |value: &str| {
        resolve(&format!("ConnectTimeout {value}\n"), "a")
            .connect_timeout
            .map(|t| t.value)
    };
    assert_eq!(time("30"), Some(Duration::from_secs(30)));
    assert_eq!(time("1m30s"), Some(Duration::from_secs(90)));
    assert_eq!(time("1H5S"), Some(Duration::from_secs(3605)));
    assert_eq!(time("2w1d"), Some(Duration::from_secs(15 * 86_400)));
    assert_eq!(time("1m30"), Some(Duration::from_secs(90)));
    assert_eq!(time("0"), Some(Duration::ZERO));
    assert_eq!(time("none"), None);
    // `none` leaves the value unset, so a later line still sets it.
    let later = resolve("ServerAliveInterval none\nServerAliveInterval 9\n", "a");
    let interval = later.server_alive_interval.unwrap();
    assert_eq!((interval.value, interval.line), (Duration::from_secs(9), 2));
    for bad in [
        "-1",
        "1x",
        "m",
        "1.5",
        "2147483648",
        "99999999999999999999",
        "NONE",
    ] {
        let (line, keyword, message) = invalid(&format!("ConnectTimeout {bad}"));
        assert_eq!((line, keyword.as_str()), (1, "ConnectTimeout"), "{bad}");
        assert!(message.starts_with("invalid time"), "{message}");
    }
}

#[test]
fn server_alive_count_max_is_a_whole_number() {
    let count = resolve("ServerAliveCountMax 0\n", "a").server_alive_count_max;
    assert_eq!(count.map(|c| c.value), Some(0));
    for bad in ["-1", "x", "+3", "2147483648"] {
        let (_, keyword, _) = invalid(&format!("ServerAliveCountMax {bad}"));
        assert_eq!(keyword, "ServerAliveCountMax");
    }
}

#[test]
fn address_family_is_any_inet_or_inet6_in_any_case() {
    let family = |value: &str| {
        resolve(&format!("AddressFamily {value}\n"), "a")
            .address_family
            .map(|f| f.value)
    };
    assert_eq!(family("any"), Some(AddressFamily::Any));
    assert_eq!(family("INET"), Some(AddressFamily::Inet));
    assert_eq!(family("Inet6"), Some(AddressFamily::Inet6));
    let (_, keyword, message) = invalid("AddressFamily ipv6");
    assert_eq!(keyword, "AddressFamily");
    assert!(message.contains("any, inet or inet6"), "{message}");
}

#[test]
fn unknown_keywords_are_listed_only_for_blocks_that_apply() {
    let text = "ForwardAgent yes\nHost a\n  StrictHostKeyChecking no\nHost b\n  Prot 2222\n";
    let ignored: Vec<_> = resolve(text, "a")
        .ignored
        .into_iter()
        .map(|k| (k.value, k.line))
        .collect();
    assert_eq!(
        ignored,
        [
            ("ForwardAgent".to_owned(), 1),
            ("StrictHostKeyChecking".to_owned(), 3)
        ]
    );
    assert_eq!(resolve(text, "b").ignored.len(), 2);
}

// --- HostName and key files ------------------------------------------------

#[test]
fn host_name_expands_h_to_the_alias_and_is_lower_cased() {
    let text = "Host *\n  HostName %h.Example.NET\n";
    let host = resolve(text, "Web1").host_name.unwrap();
    assert_eq!((host.value.as_str(), host.line), ("web1.example.net", 2));
    let host = resolve("HostName 100%%.x\n", "a").host_name.unwrap();
    assert_eq!(host.value, "100%.x");
}

#[test]
fn host_name_with_another_token_fails_when_used() {
    let text = "Host a\n  HostName %p.x\n";
    match resolve_err(text, "a") {
        SshConfigError::Invalid {
            line,
            keyword,
            message,
            ..
        } => {
            assert_eq!((line, keyword.as_str()), (2, "HostName"));
            assert!(message.contains("unknown token %p"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Like ssh, only when the value is used.
    assert_eq!(resolve(text, "b").host_name, None);
}

#[test]
fn identity_files_accumulate_in_order_without_duplicates() {
    let text = "\
Host a
  IdentityFile /k/one
  IdentityFile /k/two
Host *
  IdentityFile /k/one
  IdentityFile /k/three
";
    let files: Vec<_> = resolve(text, "a")
        .identity_files
        .into_iter()
        .map(|f| (f.value, f.line))
        .collect();
    assert_eq!(
        files,
        [
            (PathBuf::from("/k/one"), 2),
            (PathBuf::from("/k/two"), 3),
            (PathBuf::from("/k/three"), 6)
        ]
    );
}

#[test]
fn key_file_tokens_are_expanded_after_every_value_is_known() {
    // %r needs the User set *after* the IdentityFile line; %h the HostName.
    let text = "\
Host web?
  IdentityFile ~/.ssh/id_%r@%h
  IdentityFile %d/k_%u_%%_%n_%p_%j
  CertificateFile \"~/certs/%h cert.pub\"
Host *
  HostName %h.EXAMPLE.net
  User Deploy
  Port 2200
  ProxyJump j1,ops@j2:2022
";
    let settings = resolve(text, "webA");
    let files: Vec<_> = settings
        .identity_files
        .iter()
        .map(|f| f.value.clone())
        .collect();
    assert_eq!(
        files,
        [
            PathBuf::from("/home/me/.ssh/id_Deploy@weba.example.net"),
            PathBuf::from("/home/me/k_me_%_webA_2200_j2"),
        ]
    );
    assert_eq!(
        settings.certificate_files[0].value,
        Path::new("/home/me/certs/weba.example.net cert.pub")
    );
    // Without HostName, User or Port: the alias (lower-cased), the local
    // user, 22; no jump host.
    let plain = resolve("IdentityFile /k/%h_%r_%p_%j.\n", "Web");
    assert_eq!(plain.identity_files[0].value, Path::new("/k/web_me_22_."));
}

#[test]
fn a_tilde_alone_or_before_a_name_is_the_home_directory() {
    let files: Vec<_> = resolve(
        "IdentityFile ~\nIdentityFile ~key\nIdentityFile rel/key\n",
        "a",
    )
    .identity_files
    .into_iter()
    .map(|f| f.value)
    .collect();
    // OpenSSH's tilde_expand: `~x` is the home's `x`; relative stays relative.
    assert_eq!(
        files,
        [
            PathBuf::from("/home/me/"),
            PathBuf::from("/home/me/key"),
            PathBuf::from("rel/key")
        ]
    );
}

#[test]
fn key_file_tokens_remex_cannot_expand_are_refused_when_used() {
    for (value, unsupported, needle) in [
        ("/k/%l", true, "%l"),
        ("/k/%C", true, "%C"),
        ("${HOME}/k", true, "environment variables"),
        ("~other/k", true, "~user"),
        ("/k/%z", false, "unknown token %z"),
        ("/k/50%", false, "lone %"),
    ] {
        let text = format!("Host a\n  IdentityFile {value}\n");
        let (is_unsupported, line, message) = match resolve_err(&text, "a") {
            SshConfigError::Unsupported {
                line,
                message,
                keyword,
                ..
            } => {
                assert_eq!(keyword, "IdentityFile");
                (true, line, message)
            }
            SshConfigError::Invalid {
                line,
                message,
                keyword,
                ..
            } => {
                assert_eq!(keyword, "IdentityFile");
                (false, line, message)
            }
            other => panic!("{other:?}"),
        };
        assert_eq!((is_unsupported, line), (unsupported, 2), "{value}");
        assert!(message.contains(needle), "{value}: {message}");
        // Another host never uses the line.
        assert!(parse_ok(&text).resolve("b", &me()).is_ok());
    }
}

#[test]
fn at_most_100_key_files() {
    let text: String = (0..101).map(|i| format!("IdentityFile /k/{i}\n")).collect();
    match resolve_err(&text, "a") {
        SshConfigError::Invalid { line, keyword, .. } => {
            assert_eq!((line, keyword.as_str()), (101, "IdentityFile"));
        }
        other => panic!("{other:?}"),
    }
}

// --- ProxyJump and ProxyCommand --------------------------------------------

fn jump(user: Option<&str>, host: &str, port: Option<u16>) -> JumpHost {
    JumpHost {
        user: user.map(str::to_owned),
        host: host.to_owned(),
        port,
    }
}

#[test]
fn proxy_jump_is_a_chain_of_hops() {
    let hops = resolve("ProxyJump j1,ops@j2:2022,ssh://u@h3:99/,[::1]:7\n", "a")
        .proxy_jump
        .unwrap();
    assert_eq!(
        hops.value,
        [
            jump(None, "j1", None),
            jump(Some("ops"), "j2", Some(2022)),
            jump(Some("u"), "h3", Some(99)),
            jump(None, "::1", Some(7)),
        ]
    );
    let shown: Vec<String> = hops.value.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["j1", "ops@j2:2022", "u@h3:99", "[::1]:7"]);
    // The user ends at the last `@` (OpenSSH's parse_user_host_port).
    let hops = resolve("ProxyJump a@b@h\n", "a").proxy_jump.unwrap().value;
    assert_eq!(hops, [jump(Some("a@b"), "h", None)]);
}

#[test]
fn proxy_jump_none_disables_later_ones() {
    let text = "Host a\n  ProxyJump none\nHost *\n  ProxyJump bastion\n";
    let none = resolve(text, "a").proxy_jump.unwrap();
    assert_eq!((none.value.len(), none.line), (0, 2));
    assert_eq!(
        resolve("ProxyJump NONE\n", "a").proxy_jump.unwrap().value,
        []
    );
    assert_eq!(resolve(text, "b").proxy_jump.unwrap().value.len(), 1);
}

#[test]
fn proxy_jump_and_proxy_command_exclude_each_other() {
    // Whichever comes first wins; `ProxyCommand none` blocks ProxyJump too.
    let command_first = resolve("ProxyCommand nc %h %p\nProxyJump j\n", "a");
    assert_eq!(command_first.proxy_jump, None);
    assert_eq!(command_first.proxy_command.unwrap().value, "nc %h %p");
    let none_first = resolve("ProxyCommand none\nProxyJump j\n", "a");
    assert_eq!(
        (none_first.proxy_jump, none_first.proxy_command),
        (None, None)
    );
    let jump_first = resolve("ProxyJump j\nProxyCommand nc %h %p\n", "a");
    assert_eq!(jump_first.proxy_command, None);
    assert_eq!(
        jump_first.proxy_jump.unwrap().value,
        [jump(None, "j", None)]
    );
    // But `ProxyJump none` leaves room for a later ProxyCommand (ssh 9.2).
    let jump_none = resolve("ProxyJump none\nProxyJump j\nProxyCommand nc %h %p\n", "a");
    assert_eq!(
        jump_none.proxy_jump.map(|j| (j.value, j.line)),
        Some((vec![], 1))
    );
    assert_eq!(jump_none.proxy_command.map(|c| c.line), Some(3));
    // The command is the rest of the line, quotes and all.
    let quoted = resolve("ProxyCommand=sh -c 'nc %h %p'\n", "a");
    assert_eq!(quoted.proxy_command.unwrap().value, "sh -c 'nc %h %p'");
}

#[test]
fn bad_jump_hosts_are_errors() {
    for bad in ["a,,b", "a,", "u@h:0", "@h", "h/22", "h:x", "[::1", "[::1]x"] {
        let (line, keyword, message) = invalid(&format!("Host *\n  ProxyJump {bad}\n"));
        assert_eq!((line, keyword.as_str()), (2, "ProxyJump"), "{bad}");
        assert!(message.starts_with("invalid jump host"), "{bad}: {message}");
    }
}

// --- Match -----------------------------------------------------------------

#[test]
fn match_all_applies_to_every_host() {
    assert_eq!(
        port("Host nomatch\nMatch all\n  Port 3\n", "a"),
        Some((3, 3))
    );
    assert_eq!(port("Match !all\n  Port 3\n", "a"), None);
}

#[test]
fn match_host_tests_the_host_name_obtained_so_far() {
    let text = "\
Host a
  HostName real
Match host real
  Port 1111
Match host a
  Port 2222
  User u1
Match originalhost a
  User u2
";
    let settings = resolve(text, "a");
    assert_eq!(settings.port.map(|p| p.value), Some(1111));
    assert_eq!(settings.user.map(|u| u.value), Some("u2".to_owned()));
    // Before a HostName is obtained, `host` is the alias.
    assert_eq!(port("Match host a\n  Port 5\n", "a"), Some((5, 2)));
    // HostName's %h is expanded for the test.
    assert_eq!(
        port("HostName %h.lan\nMatch host *.lan\n  Port 5\n", "a"),
        Some((5, 3))
    );
}

#[test]
fn match_host_takes_lists_and_negation_case_insensitively() {
    let text = "Match host a*,!ab\n  Port 1\nMatch !host x*\n  Port 2\n";
    assert_eq!(port(text, "ac"), Some((1, 2)));
    assert_eq!(port(text, "ab"), Some((2, 4)));
    assert_eq!(port(text, "xy"), None);
    assert_eq!(
        port("Match host MyHost\n  Port 1\n", "MYHOST"),
        Some((1, 2))
    );
    assert_eq!(
        port("Match originalhost MyH*\n  Port 1\n", "myhost"),
        Some((1, 2))
    );
}

#[test]
fn match_user_tests_the_user_so_far_and_localuser_the_local_one() {
    let text = "\
Match user bob
  Port 71
Host *
  User bob
Match user bob
  Port 73
";
    assert_eq!(port(text, "a"), Some((73, 6)));
    assert_eq!(port("Match user me\n  Port 5\n", "a"), Some((5, 2)));
    assert_eq!(port("Match localuser m?\n  Port 5\n", "a"), Some((5, 2)));
    assert_eq!(
        port("Match localuser Me\n  Port 5\n", "a"),
        None,
        "case-sensitive"
    );
    // All criteria must hold.
    assert_eq!(
        port("Match host a localuser me\n  Port 5\n", "a"),
        Some((5, 2))
    );
    assert_eq!(port("Match host a localuser you\n  Port 5\n", "a"), None);
}

#[test]
fn match_lines_ssh_refuses_are_errors() {
    for (text, needle) in [
        ("Match all host a", "cannot be combined"),
        ("Match host a user b all", "cannot be combined"),
        ("Match foo a", "unknown criterion `foo`"),
        ("Match host", "missing argument for `host`"),
        ("Match !", "unknown criterion"),
    ] {
        let (line, keyword, message) = invalid(text);
        assert_eq!((line, keyword.as_str()), (1, "Match"), "{text}");
        assert!(message.contains(needle), "{text}: {message}");
    }
    // OpenSSH accepts `all` after exactly one criterion.
    assert_eq!(port("Match host a all\n  Port 5\n", "a"), Some((5, 2)));
}

#[test]
fn match_exec_is_refused_only_when_the_outcome_depends_on_it() {
    let text = "Match host web* exec \"test -f /x\"\n  Port 5\nHost *\n  Port 6\n";
    match resolve_err(text, "web1") {
        SshConfigError::Unsupported {
            line,
            keyword,
            message,
            ..
        } => {
            assert_eq!((line, keyword.as_str()), (1, "Match"));
            assert!(message.contains("`Match exec`"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // For db1 the `host` criterion already fails: no need to run anything.
    assert_eq!(port(text, "db1"), Some((6, 4)));
    // Same for the other criteria remex cannot evaluate.
    for criterion in ["canonical", "localnetwork 10.0.0.0/8", "tagged x"] {
        let text = format!("Match {criterion}\n  Port 5\n");
        assert!(
            matches!(resolve_err(&text, "a"), SshConfigError::Unsupported { .. }),
            "{criterion}"
        );
    }
}

#[test]
fn match_final_is_refused_for_every_host() {
    // It makes ssh read everything twice, so no host's answer is sure.
    let text = "Host a\n  Port 1\nHost nomatch\nMatch host nomatch final\n  Port 5\n";
    match resolve_err(text, "a") {
        SshConfigError::Unsupported { line, keyword, .. } => {
            assert_eq!((line, keyword.as_str()), (4, "Match"));
        }
        other => panic!("{other:?}"),
    }
}

// --- Include and files -----------------------------------------------------

#[test]
fn relative_includes_are_under_home_ssh_and_globs_read_in_order() {
    let home = home_with(&[
        (
            ".ssh/config",
            "Host a\n  Include conf.d/*.conf\n  HostName ha\nHost *\n  User star\n  Port 9\n",
        ),
        (".ssh/conf.d/20-z.conf", "Port 1002\nUser fromz\n"),
        (".ssh/conf.d/10-a.conf", "Port 1001\nHost b\n  User fromb\n"),
        (".ssh/conf.d/.hidden.conf", "Port 1003\n"),
        (".ssh/conf.d/notes.txt", "Port 1004\n"),
    ]);
    let a = load_resolve(home.path(), "a");
    let port = a.port.unwrap();
    assert_eq!(
        (port.value, port.file, port.line),
        (1001, home.path().join(".ssh/conf.d/10-a.conf"), 1)
    );
    // `Host b` ended with 10-a.conf: 20-z.conf starts in `Host a`'s block,
    // and so does the line after the Include.
    let user = a.user.unwrap();
    assert_eq!((user.value.as_str(), user.line), ("fromz", 2));
    assert_eq!(a.host_name.unwrap().value, "ha");
    // The Include sits in `Host a`'s block: nothing in it applies to b.
    let b = load_resolve(home.path(), "b");
    assert_eq!(b.user.map(|u| u.value), Some("star".to_owned()));
    assert_eq!(b.port.map(|p| p.value), Some(9));
}

#[test]
fn includes_take_absolute_paths_tilde_and_globs_in_directories() {
    let home = home_with(&[
        (".ssh/hosts/one/x.conf", "Host one\n  Port 1\n"),
        (".ssh/hosts/two/x.conf", "Host two\n  Port 2\n"),
        ("other/top.conf", "Host three\n  Port 3\n"),
    ]);
    let top = format!(
        "Include ~/.ssh/hosts/*/x.conf {}/oth?r/*.conf /nonexistent/*.conf\n",
        home.path().display()
    );
    write(&home.path().join(".ssh/config"), &top);
    for (alias, expected) in [("one", 1), ("two", 2), ("three", 3)] {
        assert_eq!(
            load_resolve(home.path(), alias).port.map(|p| p.value),
            Some(expected)
        );
    }
}

#[test]
fn a_match_inside_an_include_does_not_leak_out() {
    let home = home_with(&[
        (".ssh/config", "Host a\n  Include inc\n  User after\n"),
        (".ssh/inc", "Match host zz\n  Port 5\n"),
    ]);
    let a = load_resolve(home.path(), "a");
    assert_eq!(a.user.map(|u| u.value), Some("after".to_owned()));
    assert_eq!(a.port, None);
}

#[test]
fn includes_in_blocks_that_do_not_apply_contribute_nothing() {
    let home = home_with(&[
        (
            ".ssh/config",
            "Host nomatch\n  Include inc\nHost *\n  Port 8\n",
        ),
        (".ssh/inc", "Port 5\nHost *\n  User inc\n"),
    ]);
    let a = load_resolve(home.path(), "a");
    assert_eq!((a.port.map(|p| p.value), a.user), (Some(8), None));
}

#[test]
fn included_files_are_checked_even_when_they_do_not_apply() {
    let home = home_with(&[
        (".ssh/config", "# top\nHost nomatch\n  Include inc\n"),
        (".ssh/inc", "\nPort abc\n"),
    ]);
    match load(home.path()).unwrap_err() {
        SshConfigError::Invalid {
            file,
            line,
            keyword,
            ..
        } => {
            assert_eq!(
                (file, line, keyword.as_str()),
                (home.path().join(".ssh/inc"), 2, "Port")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn includes_nested_too_deep_are_an_error_at_the_include_line() {
    let home = home_with(&[(".ssh/config", "# a file including itself\nInclude config\n")]);
    match load(home.path()).unwrap_err() {
        SshConfigError::Invalid {
            file,
            line,
            keyword,
            message,
        } => {
            assert_eq!(
                (file, line, keyword.as_str()),
                (home.path().join(".ssh/config"), 2, "Include")
            );
            assert!(message.contains("more than 16 deep"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn sixteen_nested_includes_are_fine() {
    let mut files: Vec<(String, String)> = (1..=16)
        .map(|i| (format!(".ssh/f{i}"), format!("Include f{}\n", i + 1)))
        .collect();
    files.push((".ssh/f17".to_owned(), String::new()));
    files.push((".ssh/config".to_owned(), "Include f1\nPort 3\n".to_owned()));
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    // config (0) → f1 (1) → ... → f16 (16) → f17 would be 17.
    let home = home_with(&files);
    assert!(matches!(
        load(home.path()),
        Err(SshConfigError::Invalid { line: 1, .. })
    ));
    fs::write(home.path().join(".ssh/f16"), "").unwrap();
    assert_eq!(
        load_resolve(home.path(), "a").port.map(|p| p.value),
        Some(3)
    );
}

#[test]
fn include_directories_are_skipped_and_missing_files_are_fine() {
    let home = home_with(&[(".ssh/config", "Include conf.d /nonexistent\nPort 4\n")]);
    fs::create_dir(home.path().join(".ssh/conf.d")).unwrap();
    assert_eq!(
        load_resolve(home.path(), "a").port.map(|p| p.value),
        Some(4)
    );
}

#[test]
fn include_paths_remex_cannot_follow_are_refused() {
    for (arg, needle) in [("~root/x", "~user"), ("conf.[ab]", "[...]")] {
        match parse(&format!("Include {arg}\n")).unwrap_err() {
            SshConfigError::Unsupported {
                line,
                keyword,
                message,
                ..
            } => {
                assert_eq!((line, keyword.as_str()), (1, "Include"));
                assert!(message.contains(needle), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn files_writable_by_others_are_refused() {
    let home = home_with(&[(".ssh/config", "Include inc\n"), (".ssh/inc", "Port 1\n")]);
    let inc = home.path().join(".ssh/inc");
    fs::set_permissions(&inc, fs::Permissions::from_mode(0o666)).unwrap();
    match load(home.path()).unwrap_err() {
        SshConfigError::Permissions { path } => assert_eq!(path, inc),
        other => panic!("{other:?}"),
    }
    fs::set_permissions(&inc, fs::Permissions::from_mode(0o644)).unwrap();
    let config = home.path().join(".ssh/config");
    fs::set_permissions(&config, fs::Permissions::from_mode(0o620)).unwrap();
    assert!(matches!(
        load(home.path()),
        Err(SshConfigError::Permissions { .. })
    ));
}

#[test]
fn a_missing_file_is_a_read_error_saying_not_found() {
    let home = tempfile::tempdir().unwrap();
    match load(home.path()).unwrap_err() {
        SshConfigError::Read { path, source } => {
            assert_eq!(path, home.path().join(".ssh/config"));
            assert_eq!(source.kind(), io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn sourced_values_name_their_file_and_line() {
    let home = home_with(&[
        (".ssh/config", "Host a\n  Include extra\n"),
        (".ssh/extra", "\n\n  Port 2222\n"),
    ]);
    let port = load_resolve(home.path(), "a").port.unwrap();
    let expected = format!("{}:3", home.path().join(".ssh/extra").display());
    assert_eq!(port.location(), expected);
}
