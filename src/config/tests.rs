#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

const FILE: &str = "configs/config.yml";
const HOME: &str = "/home/tester";

/// A VM section that passes every rule, to put before the line under test.
const ONE_VM: &str = "vms:\n  vm01: { host: 10.0.0.11 }\n";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_yaml_with_home(text, Path::new(FILE), Some(Path::new(HOME)))
}

fn parse_ok(text: &str) -> Config {
    parse(text).unwrap_or_else(|err| panic!("{err}"))
}

/// The Parse error for `text`, as (line, column, field, message).
fn parse_err(text: &str) -> (usize, usize, String, String) {
    match parse(text) {
        Err(ConfigError::Parse {
            path,
            line,
            column,
            field,
            message,
        }) => {
            assert_eq!(path, Path::new(FILE));
            (line, column, field, message)
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

/// The Invalid error for `text`, as (line, column, field, message).
fn invalid_err(text: &str) -> (Option<usize>, Option<usize>, String, String) {
    match parse(text) {
        Err(ConfigError::Invalid {
            path,
            line,
            column,
            field,
            message,
        }) => {
            assert_eq!(path, Path::new(FILE));
            (line, column, field, message)
        }
        other => panic!("expected an invalid-config error, got {other:?}"),
    }
}

fn home(rest: &str) -> PathBuf {
    Path::new(HOME).join(rest)
}

fn config_dir() -> PathBuf {
    std::path::absolute("configs").unwrap()
}

// ---- the format ----

#[test]
fn parses_the_documented_example() {
    let config = parse_ok(
        "vms:
  vm01: { host: 10.0.0.11, port: 22, user: ops, groups: [web] }
  vm02: { host: vm02.example.net, user: ops, groups: [web, db], key: deploy }
remote_execution:
  key_storage_path: ~/.ssh/remex_keys   # private keys remex uses
  default_key: id_ed25519
  default_user: ops
  known_hosts: ~/.ssh/remex_known_hosts
  host_key_policy: accept-new
  connect_timeout: 10s
  command_timeout: 5m
  max_parallel: 64
",
    );
    let vm01 = &config.vms["vm01"];
    assert_eq!(
        *vm01,
        Vm {
            host: "10.0.0.11".into(),
            port: 22,
            user: Some("ops".into()),
            groups: vec!["web".into()],
            key: None,
            jump: None,
            tuning: Default::default(),
            from_ssh_config: Default::default(),
        }
    );
    let vm02 = &config.vms["vm02"];
    assert_eq!(vm02.port, 22);
    assert_eq!(vm02.groups, ["web", "db"]);
    assert_eq!(vm02.key.as_deref(), Some("deploy"));

    let re = &config.remote_execution;
    assert_eq!(re.key_storage_path, home(".ssh/remex_keys"));
    assert_eq!(re.known_hosts, home(".ssh/remex_known_hosts"));
    assert_eq!(re.default_user.as_deref(), Some("ops"));
    assert_eq!(re.host_key_policy, HostKeyPolicy::AcceptNew);
    assert_eq!(re.connect_timeout, Duration::from_secs(10));
    assert_eq!(re.command_timeout, Duration::from_secs(300));
    assert_eq!(config.source, Path::new(FILE));

    assert_eq!(
        config.key_path_for(vm01),
        home(".ssh/remex_keys/id_ed25519")
    );
    assert_eq!(config.key_path_for(vm02), home(".ssh/remex_keys/deploy"));
}

#[test]
fn remote_execution_may_be_omitted_or_empty() {
    let expected = RemoteExecution {
        key_storage_path: home(".ssh/remex_keys"),
        known_hosts: home(".ssh/remex_known_hosts"),
        ..RemoteExecution::default()
    };
    for text in [
        ONE_VM.to_owned(),
        format!("{ONE_VM}remote_execution:\n"),
        format!("{ONE_VM}remote_execution: {{}}\n"),
    ] {
        assert_eq!(parse_ok(&text).remote_execution, expected, "{text}");
    }
    // The documented defaults.
    assert_eq!(expected.default_key, "id_ed25519");
    assert_eq!(expected.default_user, None);
    assert_eq!(expected.host_key_policy, HostKeyPolicy::Strict);
    assert_eq!(expected.connect_timeout, Duration::from_secs(10));
    assert_eq!(expected.command_timeout, Duration::from_secs(300));
    assert_eq!(expected.max_parallel, 64);
    assert!(expected.use_agent);
    assert_eq!(expected.max_sessions, 10);
    assert_eq!(expected.connect_retries, 2);
    assert!(expected.ciphers.is_empty());
}

#[test]
fn vm_defaults() {
    let config = parse_ok(ONE_VM);
    assert_eq!(
        config.vms["vm01"],
        Vm {
            host: "10.0.0.11".into(),
            port: 22,
            user: None,
            groups: vec![],
            key: None,
            jump: None,
            tuning: Default::default(),
            from_ssh_config: Default::default(),
        }
    );
}

#[test]
fn every_remote_execution_field_can_be_set() {
    let config = parse_ok(&format!(
        "{ONE_VM}remote_execution:
  use_agent: false
  max_sessions: 4
  connect_retries: 0
  ciphers: [aes128-gcm@openssh.com, chacha20-poly1305@openssh.com]
  max_parallel: 1
"
    ));
    let re = &config.remote_execution;
    assert!(!re.use_agent);
    assert_eq!(re.max_sessions, 4);
    assert_eq!(re.connect_retries, 0);
    assert_eq!(
        re.ciphers,
        ["aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"]
    );
    assert_eq!(re.max_parallel, 1);
}

#[test]
fn durations_accept_units_integers_and_strings() {
    let cases = [
        ("30s", 30_000),
        ("5m", 300_000),
        ("1h", 3_600_000),
        ("500ms", 500),
        ("1m30s", 90_000),
        ("45", 45_000),
        ("\"45\"", 45_000),
    ];
    for (yaml, millis) in cases {
        let config = parse_ok(&format!(
            "{ONE_VM}remote_execution:\n  command_timeout: {yaml}\n"
        ));
        assert_eq!(
            config.remote_execution.command_timeout,
            Duration::from_millis(millis),
            "{yaml}"
        );
    }
}

#[test]
fn the_example_file_parses_and_shows_the_defaults() {
    let text = include_str!("../../configs/config.example.yml");
    let example = parse_ok(text);
    assert_eq!(
        example.vms.keys().collect::<Vec<_>>(),
        ["vm01", "vm02", "vm03", "vm04"]
    );
    // Its remote_execution and audit sections spell out every default.
    assert_eq!(example.remote_execution, parse_ok(ONE_VM).remote_execution);
    assert_eq!(example.audit, parse_ok(ONE_VM).audit);
    assert_eq!(example.service, parse_ok(ONE_VM).service);
}

/// The field names a section accepts, read from the unknown-field error.
fn accepted_fields(text: &str) -> Vec<String> {
    let (.., message) = parse_err(text);
    let list = message
        .split_once("expected one of ")
        .map(|(_, list)| list)
        .unwrap_or_else(|| panic!("no field list in {message}"));
    list.split(", ")
        .map(|name| name.trim_matches('`').to_owned())
        .collect()
}

#[test]
fn the_example_file_documents_every_field() {
    let text = include_str!("../../configs/config.example.yml");
    let sections = accepted_fields("zzz: 1\n");
    let vm_fields = accepted_fields("vms:\n  vm01: { host: a, zzz: 1 }\n");
    let re_fields = accepted_fields(&format!("{ONE_VM}remote_execution: {{ zzz: 1 }}\n"));
    assert!(sections.len() >= 2 && vm_fields.len() >= 5 && re_fields.len() >= 12);
    for name in &sections {
        assert!(text.contains(&format!("\n{name}:")), "section {name}");
    }
    for name in &vm_fields {
        assert!(text.contains(&format!("    {name}: ")), "vm field {name}");
    }
    // Each remote_execution field is written out, or commented out when it
    // has no value by default.
    for name in &re_fields {
        assert!(
            text.contains(&format!("\n  {name}: ")) || text.contains(&format!("\n  # {name}: ")),
            "remote_execution field {name}"
        );
    }
    let audit_fields = accepted_fields(&format!("{ONE_VM}audit: {{ zzz: 1 }}\n"));
    assert_eq!(
        audit_fields,
        [
            "path",
            "enabled",
            "fsync",
            "max_size",
            "redact",
            "hmac_key_path"
        ]
    );
    let audit_section = &text[text.find("\naudit:").unwrap()..];
    for name in &audit_fields {
        assert!(
            audit_section.contains(&format!("\n  {name}: "))
                || audit_section.contains(&format!("\n  # {name}: ")),
            "audit field {name}"
        );
    }
}

// ---- error positions: file, line, column and field path ----

#[test]
fn unknown_field_in_a_flow_vm() {
    let text = "vms:\n  vm01: { host: a }\n  vm02: { host: b, prot: 22 }\n";
    let (line, column, field, message) = parse_err(text);
    assert_eq!((line, column), (3, 20));
    assert_eq!(field, "vms.vm02.prot");
    assert_eq!(
        message,
        "unknown field `prot`, expected one of `host`, `port`, `user`, `groups`, `key`, \
         `jump` (did you mean `port`?)"
    );
    assert_eq!(
        parse(text).unwrap_err().to_string(),
        format!("configs/config.yml:3:20: vms.vm02.prot: {message}")
    );
}

#[test]
fn unknown_field_in_a_block_vm() {
    let (line, column, field, message) = parse_err("vms:\n  vm01:\n    host: a\n    hostname: b\n");
    assert_eq!((line, column), (4, 5));
    assert_eq!(field, "vms.vm01.hostname");
    assert!(message.ends_with("(did you mean `host`?)"), "{message}");
}

#[test]
fn unknown_top_level_section() {
    let (line, column, field, message) =
        parse_err(&format!("{ONE_VM}remote_exec:\n  max_parallel: 3\n"));
    assert_eq!((line, column), (3, 1));
    assert_eq!(field, "remote_exec");
    assert_eq!(
        message,
        "unknown section `remote_exec`, expected one of `vms`, `groups`, `remote_execution`, \
         `audit`, `service`, `actions` (did you mean `remote_execution`?)"
    );
}

#[test]
fn unknown_field_far_from_any_name_gets_no_suggestion() {
    let (line, column, field, message) =
        parse_err(&format!("{ONE_VM}remote_execution:\n  xyzzy: 1\n"));
    assert_eq!((line, column), (4, 3));
    assert_eq!(field, "remote_execution.xyzzy");
    assert!(!message.contains("did you mean"), "{message}");
    assert!(message.contains("`max_parallel`"), "{message}");
}

#[test]
fn wrong_type_for_port() {
    let (line, column, field, message) =
        parse_err("vms:\n  vm01:\n    host: a\n    port: \"abc\"\n");
    assert_eq!((line, column), (4, 11));
    assert_eq!(field, "vms.vm01.port");
    assert_eq!(
        message,
        "invalid value `abc`: expected a port number from 1 to 65535"
    );

    let (line, column, field, message) = parse_err("vms:\n  vm01: { host: a, port: 70000 }\n");
    assert_eq!((line, column, field.as_str()), (2, 26, "vms.vm01.port"));
    assert!(message.starts_with("invalid value `70000`"), "{message}");
}

#[test]
fn wrong_shapes() {
    let (line, column, field, message) = parse_err("vms:\n  vm01:\n    host: a\n    groups: web\n");
    assert_eq!((line, column, field.as_str()), (4, 13, "vms.vm01.groups"));
    assert_eq!(message, "expected a list, e.g. `[web, db]`");

    let (line, column, field, _) =
        parse_err("vms:\n  vm01:\n    host: a\n    groups: [web, [x]]\n");
    assert_eq!(
        (line, column, field.as_str()),
        (4, 19, "vms.vm01.groups[1]")
    );

    let (line, column, field, message) = parse_err("vms: [a, b]\n");
    assert_eq!((line, column, field.as_str()), (1, 6, "vms"));
    assert_eq!(message, "expected a mapping (`key: value` pairs)");

    let (line, column, field, message) =
        parse_err(&format!("{ONE_VM}remote_execution:\n  use_agent: maybe\n"));
    assert_eq!((line, column), (4, 14));
    assert_eq!(field, "remote_execution.use_agent");
    assert_eq!(message, "invalid value `maybe`: expected `true` or `false`");

    let (line, column, field, message) =
        parse_err(&format!("{ONE_VM}remote_execution:\n  max_parallel: -1\n"));
    assert_eq!((line, column), (4, 17));
    assert_eq!(field, "remote_execution.max_parallel");
    assert_eq!(
        message,
        "invalid value `-1`: expected a whole number, 0 or more"
    );
}

#[test]
fn missing_host() {
    let (line, column, field, message) = parse_err("vms:\n  vm01:\n    port: 2\n");
    assert_eq!((line, column, field.as_str()), (3, 5, "vms.vm01"));
    assert_eq!(message, "missing required field `host`");
}

#[test]
fn bad_duration() {
    let text = format!("{ONE_VM}remote_execution:\n  max_parallel: 8\n  connect_timeout: 10x\n");
    let (line, column, field, message) = parse_err(&text);
    assert_eq!((line, column), (5, 20));
    assert_eq!(field, "remote_execution.connect_timeout");
    assert!(
        message.starts_with("invalid duration \"10x\": unknown unit \"x\"; "),
        "{message}"
    );
    assert!(parse(&text).unwrap_err().to_string().starts_with(
        "configs/config.yml:5:20: remote_execution.connect_timeout: invalid duration \"10x\""
    ));

    for (yaml, why) in [
        ("-3", "invalid duration -3: durations cannot be negative"),
        ("\"-3s\"", "durations cannot be negative"),
        ("1.5", "fractions are not supported"),
    ] {
        let (line, column, field, message) = parse_err(&format!(
            "{ONE_VM}remote_execution:\n  command_timeout: {yaml}\n"
        ));
        assert_eq!((line, column), (4, 20), "{yaml}");
        assert_eq!(field, "remote_execution.command_timeout");
        assert!(message.contains(why), "{yaml}: {message}");
    }
}

#[test]
fn bad_host_key_policy() {
    let (line, column, field, message) = parse_err(&format!(
        "{ONE_VM}remote_execution:\n  host_key_policy: lax\n"
    ));
    assert_eq!((line, column), (4, 20));
    assert_eq!(field, "remote_execution.host_key_policy");
    assert_eq!(
        message,
        "unknown value `lax`, expected one of `strict`, `accept-new`"
    );

    let (.., message) = parse_err(&format!(
        "{ONE_VM}remote_execution:\n  host_key_policy: accept_new\n"
    ));
    assert!(
        message.ends_with("(did you mean `accept-new`?)"),
        "{message}"
    );
}

#[test]
fn bad_yaml_syntax() {
    let (line, column, field, message) = parse_err("vms:\n  vm01: { host: a\n");
    assert_eq!((line, column), (2, 9));
    assert_eq!(field, "vms.vm01");
    assert_eq!(message, "unclosed bracket '{'");

    let (line, column, field, message) = parse_err("vms:\n  vm01:\n    host: a\n   port: 2\n");
    assert_eq!((line, column), (4, 4));
    assert_eq!(field, "vms");
    assert!(message.contains("block mapping"), "{message}");
}

#[test]
fn duplicate_key() {
    let (line, column, field, message) = parse_err("vms:\n  vm01:\n    host: a\n    host: b\n");
    assert_eq!((line, column), (4, 5));
    assert_eq!(field, "vms.vm01.host");
    assert_eq!(
        message,
        "duplicate key `host`: each key may appear only once"
    );
}

#[test]
fn document_level_errors_have_no_field() {
    let text = format!("{ONE_VM}---\nvms: {{}}\n");
    let (line, column, field, _) = parse_err(&text);
    assert_eq!((line, column, field.as_str()), (4, 1, ""));
    assert!(
        parse(&text)
            .unwrap_err()
            .to_string()
            .starts_with("configs/config.yml:4:1: only single")
    );

    let (line, column, field, message) = parse_err("just text\n");
    assert_eq!((line, column, field.as_str()), (1, 1, ""));
    assert_eq!(message, "expected a mapping (`key: value` pairs)");
}

#[test]
fn control_characters_in_messages_are_escaped() {
    let (.., field, message) = parse_err("vms:\n  vm01: { host: a, \"p\\e[2Jrt\": 1 }\n");
    assert!(!message.contains('\u{1b}'), "{message}");
    assert!(message.contains("\\u{1b}"), "{message}");
    // The field path is ours to print too.
    assert!(field.starts_with("vms.vm01."), "{field}");
}

#[test]
fn aliases_and_merge_keys_work() {
    let config = parse_ok(
        "vms:\n  vm01: &base { host: a, user: ops }\n  vm02: *base\n  vm03: { <<: *base, host: c }\n",
    );
    assert_eq!(config.vms["vm02"].host, "a");
    assert_eq!(config.vms["vm03"].host, "c");
    assert_eq!(config.vms["vm03"].user.as_deref(), Some("ops"));
}

// ---- rules ----

#[test]
fn no_vms_is_an_error() {
    for text in [
        "remote_execution:\n  max_parallel: 3\n",
        "vms:\n",
        "vms: {}\n",
    ] {
        let (_, _, field, message) = invalid_err(text);
        assert_eq!(field, "vms", "{text}");
        assert!(message.starts_with("no hosts configured: add at least one VM under `vms:`"));
    }
    // Where there is a `vms:` key, the error points at it.
    let (line, column, ..) = invalid_err("# fleet\nvms: {}\n");
    assert_eq!((line, column), (Some(2), Some(1)));
}

#[test]
fn an_empty_file_is_an_error() {
    for text in ["", "# nothing yet\n", "---\n"] {
        let err = parse(text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configs/config.yml: the config is empty: list your hosts under `vms:`, \
             e.g. `vms: { vm01: { host: 10.0.0.11 } }` \
             (configs/config.example.yml documents every field)"
        );
    }
}

#[test]
fn a_vm_may_not_be_named_all() {
    let text = "vms:\n  vm01: { host: a }\n  all: { host: b }\n";
    let (line, column, field, message) = invalid_err(text);
    assert_eq!((line, column), (Some(3), Some(3)));
    assert_eq!(field, "vms.all");
    assert!(
        message.starts_with("a VM may not be named `all`"),
        "{message}"
    );
    assert_eq!(
        parse(text).unwrap_err().to_string(),
        format!("configs/config.yml:3:3: vms.all: {message}")
    );
}

#[test]
fn names_may_not_contain_selector_syntax() {
    for name in ["'web,db'", "'!vm'", "'vm*'", "vm?", "vm 1", "\"vm\\t1\""] {
        let (line, column, field, message) =
            invalid_err(&format!("vms:\n  {name}: {{ host: a }}\n"));
        assert_eq!((line, column), (Some(2), Some(3)), "{name}");
        assert!(field.starts_with("vms."), "{field}");
        assert!(message.starts_with("VM name `"), "{message}");
        assert!(message.contains("target selectors"), "{message}");
    }
    for group in ["'a,b'", "'!a'", "'a*'", "'a?'", "'a b'", "''"] {
        let (line, column, field, message) = invalid_err(&format!(
            "vms:\n  vm01: {{ host: a, groups: [web, {group}] }}\n"
        ));
        assert_eq!((line, column), (Some(2), Some(34)), "{group}");
        assert_eq!(field, "vms.vm01.groups[1]");
        assert!(message.starts_with("group name "), "{message}");
    }
}

#[test]
fn groups_may_not_be_all_or_a_vm_name() {
    let (line, column, field, message) = invalid_err("vms:\n  vm01: { host: a, groups: [all] }\n");
    assert_eq!((line, column), (Some(2), Some(29)));
    assert_eq!(field, "vms.vm01.groups[0]");
    assert!(
        message.starts_with("a group may not be named `all`"),
        "{message}"
    );

    let (line, column, field, message) = invalid_err(
        "vms:\n  vm01: { host: a }\n  vm02:\n    host: b\n    groups:\n      - db\n      - vm01\n",
    );
    assert_eq!((line, column), (Some(7), Some(9)));
    assert_eq!(field, "vms.vm02.groups[1]");
    assert!(
        message.starts_with("group `vm01` has the same name as a VM"),
        "{message}"
    );
}

#[test]
fn host_and_port_rules() {
    let (line, column, field, message) = invalid_err("vms:\n  vm01: { host: '' }\n");
    assert_eq!(
        (line, column, field.as_str()),
        (Some(2), Some(17), "vms.vm01.host")
    );
    assert!(message.starts_with("host is empty"), "{message}");

    let (.., field, message) = invalid_err("vms:\n  vm01: { host: 'a b' }\n");
    assert_eq!(field, "vms.vm01.host");
    assert!(message.contains("whitespace"), "{message}");

    let (line, column, field, message) = invalid_err("vms:\n  vm01: { host: a, port: 0 }\n");
    assert_eq!(
        (line, column, field.as_str()),
        (Some(2), Some(26), "vms.vm01.port")
    );
    assert_eq!(message, "port 0 is not valid: use a port from 1 to 65535");
}

#[test]
fn limits_must_be_at_least_one() {
    for field in ["max_parallel", "max_sessions"] {
        let (line, column, path, message) =
            invalid_err(&format!("{ONE_VM}remote_execution:\n  {field}: 0\n"));
        assert_eq!(line, Some(4));
        assert_eq!(column, Some(field.len() + 5));
        assert_eq!(path, format!("remote_execution.{field}"));
        assert_eq!(message, format!("{field} must be at least 1"));
    }
}

#[test]
fn timeouts_must_not_be_zero() {
    for field in ["connect_timeout", "command_timeout"] {
        let (.., path, message) =
            invalid_err(&format!("{ONE_VM}remote_execution:\n  {field}: 0s\n"));
        assert_eq!(path, format!("remote_execution.{field}"));
        assert!(message.contains("more than zero"), "{message}");
    }
}

#[test]
fn empty_strings_are_refused() {
    for (text, field) in [
        ("vms:\n  vm01: { host: a, user: '' }\n", "vms.vm01.user"),
        ("vms:\n  vm01: { host: a, key: '' }\n", "vms.vm01.key"),
        (
            &format!("{ONE_VM}remote_execution:\n  default_key: ''\n"),
            "remote_execution.default_key",
        ),
        (
            &format!("{ONE_VM}remote_execution:\n  default_user: ''\n"),
            "remote_execution.default_user",
        ),
        (
            &format!("{ONE_VM}remote_execution:\n  key_storage_path: ''\n"),
            "remote_execution.key_storage_path",
        ),
        (
            &format!("{ONE_VM}remote_execution:\n  ciphers: ['aes128-ctr,aes256-ctr']\n"),
            "remote_execution.ciphers[0]",
        ),
    ] {
        let (line, _, path, _) = invalid_err(text);
        assert_eq!(path, field);
        assert!(line.is_some(), "{field}");
    }
}

#[test]
fn the_first_problem_in_the_file_is_reported() {
    let (line, _, field, _) = invalid_err(
        "vms:\n  zz: { host: a, port: 0 }\n  aa: { host: '' }\nremote_execution:\n  max_parallel: 0\n",
    );
    assert_eq!((line, field.as_str()), (Some(2), "vms.zz.port"));
}

// ---- paths and users ----

#[test]
fn relative_paths_are_relative_to_the_config_file() {
    let config = parse_ok(&format!(
        "{ONE_VM}remote_execution:\n  key_storage_path: keys\n  known_hosts: ../state/known_hosts\n"
    ));
    assert_eq!(
        config.remote_execution.key_storage_path,
        config_dir().join("keys")
    );
    assert_eq!(
        config.remote_execution.known_hosts,
        config_dir().join("../state/known_hosts")
    );

    // A file in the current directory resolves against it.
    let config = Config::from_yaml_with_home(
        &format!("{ONE_VM}remote_execution:\n  known_hosts: kh\n"),
        Path::new("remex.yml"),
        Some(Path::new(HOME)),
    )
    .unwrap();
    assert_eq!(
        config.remote_execution.known_hosts,
        std::path::absolute("kh").unwrap()
    );
}

#[test]
fn absolute_paths_and_tilde() {
    let config = parse_ok(&format!(
        "{ONE_VM}remote_execution:\n  key_storage_path: /etc/remex/keys\n  known_hosts: '~'\n"
    ));
    assert_eq!(
        config.remote_execution.key_storage_path,
        Path::new("/etc/remex/keys")
    );
    assert_eq!(config.remote_execution.known_hosts, Path::new(HOME));

    let (line, column, field, message) = invalid_err(&format!(
        "{ONE_VM}remote_execution:\n  known_hosts: ~bob/known_hosts\n"
    ));
    assert_eq!((line, column), (Some(4), Some(16)));
    assert_eq!(field, "remote_execution.known_hosts");
    assert!(message.contains("not `~user`"), "{message}");

    let err = Config::from_yaml_with_home(ONE_VM, Path::new(FILE), None).unwrap_err();
    assert!(err.to_string().contains("cannot expand `~`"), "{err}");
}

#[test]
fn key_paths() {
    let config = parse_ok(
        "vms:
  plain: { host: a }
  named: { host: a, key: deploy }
  nested: { host: a, key: team/deploy }
  absolute: { host: a, key: /etc/keys/k }
  tilde: { host: a, key: ~/other/k }
remote_execution:
  key_storage_path: /keys
",
    );
    let key = |name: &str| config.key_path_for(&config.vms[name]);
    assert_eq!(key("plain"), Path::new("/keys/id_ed25519"));
    assert_eq!(key("named"), Path::new("/keys/deploy"));
    assert_eq!(key("nested"), Path::new("/keys/team/deploy"));
    assert_eq!(key("absolute"), Path::new("/etc/keys/k"));
    assert_eq!(key("tilde"), home("other/k"));
    assert_eq!(
        config.vms["tilde"].key.as_deref(),
        Some(home("other/k").to_str().unwrap())
    );

    let config = parse_ok(&format!(
        "{ONE_VM}remote_execution:\n  default_key: ~/id_rsa\n"
    ));
    assert_eq!(config.key_path_for(&config.vms["vm01"]), home("id_rsa"));
}

#[test]
fn user_for_prefers_the_vm_then_the_default_then_the_local_user() {
    let config = parse_ok("vms:\n  a: { host: a, user: alice }\n  b: { host: b }\n");
    assert_eq!(config.user_for(&config.vms["a"]), "alice");
    assert_eq!(config.user_for(&config.vms["b"]), local::user_name());

    let config = parse_ok(
        "vms:\n  a: { host: a, user: alice }\n  b: { host: b }\nremote_execution:\n  default_user: ops\n",
    );
    assert_eq!(config.user_for(&config.vms["a"]), "alice");
    assert_eq!(config.user_for(&config.vms["b"]), "ops");
}

// ---- finding and reading the file ----

#[test]
fn default_locations_in_order() {
    assert_eq!(
        default_locations(Some(Path::new(HOME))),
        [
            PathBuf::from("configs/config.yml"),
            home(".config/remex/config.yml")
        ]
    );
    assert_eq!(
        default_locations(None),
        [PathBuf::from("configs/config.yml")]
    );
}

#[test]
fn not_found_lists_the_places_and_how_to_make_one() {
    let err = ConfigError::NotFound {
        searched: default_locations(Some(Path::new(HOME))),
    };
    let text = err.to_string();
    assert!(
        text.starts_with(
            "no config file found; looked in:\n  configs/config.yml\n  /home/tester/.config/remex/config.yml\n"
        ),
        "{text}"
    );
    assert!(text.contains("copy configs/config.example.yml"), "{text}");
    assert!(text.contains("`remex lab up`"), "{text}");
}

#[test]
fn load_and_discover_read_the_named_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("remex.yml");
    std::fs::write(
        &path,
        "vms:\n  vm01: { host: a }\nremote_execution:\n  known_hosts: kh\n",
    )
    .unwrap();
    for config in [
        Config::load(&path).unwrap(),
        Config::discover(Some(&path), None).unwrap(),
    ] {
        assert_eq!(config.source, path);
        assert_eq!(config.remote_execution.known_hosts, dir.path().join("kh"));
    }

    let missing = dir.path().join("missing.yml");
    let err = Config::discover(Some(&missing), None).unwrap_err();
    match &err {
        ConfigError::Read { path, source } => {
            assert_eq!(*path, missing);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected a read error, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!("cannot read the config file {}", missing.display())
    );

    // Errors name the file as it was given.
    std::fs::write(&path, "vms:\n  vm01: { host: a, prot: 1 }\n").unwrap();
    let err = Config::load(&path).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}:2:20: vms.vm01.prot: ", path.display())),
        "{err}"
    );
}

// ---- the audit section ----

#[test]
fn audit_defaults_resolve_under_home() {
    let config = parse_ok(ONE_VM);
    assert_eq!(
        config.audit,
        AuditConfig {
            path: home(".local/state/remex/audit.jsonl"),
            ..AuditConfig::default()
        }
    );
    assert!(config.audit.enabled);
    assert_eq!(config.audit.fsync, FsyncPolicy::Always);
    assert_eq!(config.audit.max_size, 100 << 20);
    assert!(config.audit.redact.is_empty());
    assert_eq!(config.audit.hmac_key_path, None);
    // An empty section is the defaults too.
    assert_eq!(parse_ok(&format!("{ONE_VM}audit:\n")).audit, config.audit);
}

#[test]
fn every_audit_field_can_be_set() {
    let config = parse_ok(&format!(
        "{ONE_VM}audit:
  path: logs/audit.jsonl
  enabled: false
  fsync: start
  max_size: 64K
  redact: ['pin=(\\d+)', 'ACME-[0-9A-F]{{8}}']
  hmac_key_path: ~/.config/remex/audit.key
"
    ));
    let audit = &config.audit;
    assert_eq!(audit.path, config_dir().join("logs/audit.jsonl"));
    assert!(!audit.enabled);
    assert_eq!(audit.fsync, FsyncPolicy::Start);
    assert_eq!(audit.max_size, 64 << 10);
    assert_eq!(audit.redact, [r"pin=(\d+)", "ACME-[0-9A-F]{8}"]);
    assert_eq!(
        audit.hmac_key_path.as_deref(),
        Some(home(".config/remex/audit.key").as_path())
    );
    // A size may be a plain number of bytes.
    let config = parse_ok(&format!("{ONE_VM}audit: {{ max_size: 1048576 }}\n"));
    assert_eq!(config.audit.max_size, 1 << 20);
}

#[test]
fn audit_shape_errors_say_where() {
    let (line, column, field, message) = parse_err(&format!(
        "{ONE_VM}audit:\n  fsync: always\n  max_sise: 1M\n"
    ));
    assert_eq!((line, column), (5, 3));
    assert_eq!(field, "audit.max_sise");
    assert!(
        message.starts_with("unknown field `max_sise`, expected one of `path`"),
        "{message}"
    );
    assert!(message.ends_with("(did you mean `max_size`?)"), "{message}");

    let (line, column, field, message) = parse_err(&format!("{ONE_VM}audit:\n  max_size: 10X\n"));
    assert_eq!((line, column, field.as_str()), (4, 13, "audit.max_size"));
    assert!(
        message.starts_with("invalid size \"10X\": unknown unit \"X\""),
        "{message}"
    );

    let (line, column, field, message) = parse_err(&format!("{ONE_VM}audit:\n  fsync: never\n"));
    assert_eq!((line, column, field.as_str()), (4, 10, "audit.fsync"));
    assert_eq!(
        message,
        "unknown value `never`, expected one of `always`, `start`"
    );

    let (.., field, message) = parse_err(&format!("{ONE_VM}audit:\n  max_size: -1\n"));
    assert_eq!(field, "audit.max_size");
    assert!(message.contains("cannot be negative"), "{message}");
}

#[test]
fn audit_rules() {
    let (line, column, field, message) = invalid_err(&format!(
        "{ONE_VM}audit:\n  redact:\n    - 'ok=(\\S+)'\n    - 'bad=(\\S+'\n"
    ));
    assert_eq!((line, column), (Some(6), Some(7)));
    assert_eq!(field, "audit.redact[1]");
    assert_eq!(
        message,
        "`bad=(\\S+` is not a valid regular expression: unclosed group"
    );

    let (line, column, field, message) = invalid_err(&format!("{ONE_VM}audit:\n  max_size: 100\n"));
    assert_eq!((line, column), (Some(4), Some(13)));
    assert_eq!(field, "audit.max_size");
    assert!(
        message.starts_with("max_size 100 is too small"),
        "{message}"
    );

    let (.., field, message) = invalid_err(&format!("{ONE_VM}audit:\n  redact: ['']\n"));
    assert_eq!(field, "audit.redact[0]");
    assert!(message.contains("empty"), "{message}");

    let (.., field, message) = invalid_err(&format!("{ONE_VM}audit:\n  path: ''\n"));
    assert_eq!(field, "audit.path");
    assert!(message.contains("empty"), "{message}");

    let (.., field, message) = invalid_err(&format!("{ONE_VM}audit:\n  hmac_key_path: ~bob/key\n"));
    assert_eq!(field, "audit.hmac_key_path");
    assert!(message.contains("not `~user`"), "{message}");
}

#[test]
fn jumps_name_vms_or_addresses_and_never_a_cycle() {
    let config = parse_ok(
        "vms:\n  bastion: { host: 10.0.0.1 }\n  \
         vm01: { host: 10.0.0.11, jump: bastion }\n  \
         vm02: { host: 10.0.0.12, jump: 'ops@gw.example.net:2222,bastion' }\n",
    );
    assert_eq!(
        config.jump_chain(&config.vms["vm01"]),
        Ok(vec![Hop::Vm("bastion".into())])
    );
    assert_eq!(
        config.jump_chain(&config.vms["vm02"]).map(|c| c.len()),
        Ok(2)
    );

    let (line, column, field, message) =
        invalid_err("vms:\n  a: { host: 10.0.0.1, jump: b }\n  b: { host: 10.0.0.2, jump: a }\n");
    assert_eq!((line, column), (Some(2), Some(30)));
    assert_eq!(field, "vms.a.jump");
    assert!(message.contains("cycle"), "{message}");
    let (_, _, field, message) = invalid_err("vms:\n  a: { host: 10.0.0.1, jump: a }\n");
    assert_eq!(field, "vms.a.jump");
    assert!(message.contains("its own jump host"), "{message}");
    let (_, _, _, message) = invalid_err("vms:\n  a: { host: 10.0.0.1, jump: 'gw:port' }\n");
    assert!(message.contains("neither a VM"), "{message}");
}

#[test]
fn keepalives_and_the_address_family_have_defaults_and_can_be_turned_off() {
    let config = parse_ok(ONE_VM);
    let re = &config.remote_execution;
    assert_eq!(re.keepalive_interval, Some(Duration::from_secs(15)));
    assert_eq!(re.keepalive_count_max, 3);
    assert_eq!(re.address_family, AddressFamily::Any);
    let config = parse_ok(&format!(
        "{ONE_VM}remote_execution:\n  keepalive_interval: none\n  address_family: inet6\n"
    ));
    assert_eq!(config.remote_execution.keepalive_interval, None);
    assert_eq!(config.remote_execution.address_family, AddressFamily::Inet6);
    let config = parse_ok(&format!(
        "{ONE_VM}remote_execution:\n  keepalive_interval: 2s\n"
    ));
    assert_eq!(
        config.remote_execution.keepalive_interval,
        Some(Duration::from_secs(2))
    );
    let (_, _, field, _) = parse_err(&format!(
        "{ONE_VM}remote_execution:\n  address_family: ipv6\n"
    ));
    assert_eq!(field, "remote_execution.address_family");
}

#[test]
fn a_group_jump_applies_to_its_vms_but_not_to_its_own_bastion_nor_over_a_vm_jump() {
    let config = parse_ok(
        "vms:\n  bastion: { host: 10.0.0.1, groups: [dc1] }\n  \
         vm01: { host: 10.0.0.11, groups: [dc1] }\n  \
         vm02: { host: 10.0.0.12, groups: [dc1], jump: 'gw:2222' }\n\
         groups:\n  dc1: { jump: bastion }\n",
    );
    let chain = |name: &str| {
        config
            .jump_chain(&config.vms[name])
            .unwrap_or_default()
            .iter()
            .map(|h| h.name().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(chain("vm01"), ["bastion"]);
    assert_eq!(chain("vm02"), ["gw:2222"]);
    assert!(chain("bastion").is_empty());

    let (_, _, field, message) =
        invalid_err(&format!("{ONE_VM}groups:\n  web: {{ jump: vm01 }}\n"));
    assert_eq!(field, "groups.web");
    assert!(message.contains("no VM is in group `web`"), "{message}");
    let (_, _, field, message) = invalid_err(
        "vms:\n  vm01: { host: 10.0.0.11, groups: [web] }\ngroups:\n  web: { jump: ',' }\n",
    );
    assert_eq!(field, "groups.web.jump");
    assert!(message.contains("empty"), "{message}");
}

#[test]
fn the_service_edge_limits_must_leave_room() {
    for (field, value, says) in [
        ("unauthenticated_per_minute", "0", "at least 1"),
        ("max_connections", "0", "at least 1"),
        ("max_connections_per_address", "0", "at least 1"),
        ("header_timeout", "0s", "at least 1s"),
        ("idle_timeout", "500ms", "at least 1s"),
        ("denied_audit_interval", "0s", "at least 1s"),
    ] {
        let (.., path, message) = invalid_err(&format!(
            "{ONE_VM}service:\n  limits:\n    {field}: {value}\n"
        ));
        assert_eq!(path, format!("service.limits.{field}"));
        assert!(message.contains(says), "{field}: {message}");
    }
}
