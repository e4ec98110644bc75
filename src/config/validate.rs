//! Rules a config must follow beyond its shape. No I/O: these look at
//! the deserialized values only, and say which field breaks which rule.

use super::Config;
use super::audit::MIN_MAX_SIZE;
use super::field_path::FieldPath;

/// Characters that mean something in a target selector (`web,!vm03`,
/// `vm0*`), so host and group names may not contain them. Whitespace is
/// refused as well.
pub(crate) const SELECTOR_CHARS: [char; 4] = [',', '!', '*', '?'];

/// The selector that names every VM.
const ALL: &str = "all";

/// Which part of a mapping entry a [`Problem`] is about, for its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// The key, e.g. a VM's name.
    Key,
    /// The value.
    Value,
}

/// A broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// The offending field.
    pub(crate) field: FieldPath,
    /// Whether the key or the value is wrong.
    pub(crate) part: Part,
    /// What is wrong and how to fix it.
    pub(crate) message: String,
}

impl Problem {
    pub(crate) fn value(field: FieldPath, message: impl Into<String>) -> Self {
        Problem {
            field,
            part: Part::Value,
            message: message.into(),
        }
    }

    pub(crate) fn key(field: FieldPath, message: impl Into<String>) -> Self {
        Problem {
            field,
            part: Part::Key,
            message: message.into(),
        }
    }
}

/// Every rule `config` breaks (empty when it is valid).
pub(crate) fn check(config: &Config) -> Vec<Problem> {
    let mut problems = Vec::new();
    check_vms(config, &mut problems);
    check_groups(config, &mut problems);
    check_remote_execution(config, &mut problems);
    check_audit(config, &mut problems);
    check_service(config, &mut problems);
    super::actions::check_actions(config, &mut problems);
    problems
}

fn check_vms(config: &Config, problems: &mut Vec<Problem>) {
    let vms = FieldPath::keys(["vms"]);
    if config.vms.is_empty() {
        problems.push(Problem::key(
            vms.clone(),
            "no hosts configured: add at least one VM under `vms:`, \
             e.g. `vm01: { host: 10.0.0.11, groups: [web] }`",
        ));
    }
    for (name, vm) in &config.vms {
        let here = vms.key(name);
        if let Some(why) = name_problem(name, "VM name") {
            problems.push(Problem::key(here.clone(), why));
        } else if name == ALL {
            problems.push(Problem::key(
                here.clone(),
                "a VM may not be named `all`: `all` selects every VM; rename it",
            ));
        }
        let host = vm.host.trim();
        if host.is_empty() {
            problems.push(Problem::value(
                here.key("host"),
                "host is empty: give an IP address or a DNS name",
            ));
        } else if host.chars().any(char::is_whitespace) {
            problems.push(Problem::value(
                here.key("host"),
                format!("host `{}` contains whitespace", vm.host),
            ));
        }
        if vm.port == 0 {
            problems.push(Problem::value(
                here.key("port"),
                "port 0 is not valid: use a port from 1 to 65535",
            ));
        }
        if vm.user.as_deref().is_some_and(str::is_empty) {
            problems.push(Problem::value(
                here.key("user"),
                "user is empty: leave `user` out to use `remote_execution.default_user`",
            ));
        }
        if config.has_jump(vm)
            && let Some(why) = config.jump_problem(name)
        {
            let at = if vm.jump.is_some() {
                here.key("jump")
            } else {
                here.clone()
            };
            problems.push(Problem::value(at, why));
        }
        if vm.key.as_deref().is_some_and(str::is_empty) {
            problems.push(Problem::value(
                here.key("key"),
                "key is empty: leave `key` out to use `remote_execution.default_key`",
            ));
        }
        for (i, group) in vm.groups.iter().enumerate() {
            let at = here.key("groups").index(i);
            if let Some(why) = name_problem(group, "group name") {
                problems.push(Problem::value(at, why));
            } else if group == ALL {
                problems.push(Problem::value(
                    at,
                    "a group may not be named `all`: `all` already selects every VM",
                ));
            } else if config.vms.contains_key(group) {
                problems.push(Problem::value(
                    at,
                    format!(
                        "group `{group}` has the same name as a VM: a target selector \
                         could not tell them apart; rename one of them"
                    ),
                ));
            }
        }
    }
}

/// `groups.NAME`: a group some VM is in, with a `jump` that parses.
fn check_groups(config: &Config, problems: &mut Vec<Problem>) {
    let groups = FieldPath::keys(["groups"]);
    for (name, group) in &config.groups {
        let here = groups.key(name);
        if !config.vms.values().any(|vm| vm.groups.contains(name)) {
            problems.push(Problem::key(
                here.clone(),
                format!(
                    "no VM is in group `{name}`: add it to a VM's `groups`, or remove this entry"
                ),
            ));
        }
        if let Some(text) = &group.jump
            && let Err(why) = super::jump::parse_chain(text, &|hop| config.vms.contains_key(hop))
        {
            problems.push(Problem::value(here.key("jump"), why));
        }
    }
}

/// Why `name` cannot be a VM or group name, if it cannot.
fn name_problem(name: &str, what: &str) -> Option<String> {
    if name.is_empty() {
        return Some(format!("{what} is empty"));
    }
    let bad = name
        .chars()
        .find(|c| SELECTOR_CHARS.contains(c) || c.is_whitespace())?;
    let shown = if bad.is_whitespace() {
        "whitespace".to_owned()
    } else {
        format!("`{bad}`")
    };
    Some(format!(
        "{what} `{name}` contains {shown}: names may not contain `,` `!` `*` `?` \
         or whitespace, which have a meaning in target selectors"
    ))
}

fn check_remote_execution(config: &Config, problems: &mut Vec<Problem>) {
    let section = FieldPath::keys(["remote_execution"]);
    let re = &config.remote_execution;
    if re.default_key.is_empty() {
        problems.push(Problem::value(
            section.key("default_key"),
            "default_key is empty: name a key file inside key_storage_path, e.g. `id_ed25519`",
        ));
    }
    if re.default_user.as_deref().is_some_and(str::is_empty) {
        problems.push(Problem::value(
            section.key("default_user"),
            "default_user is empty: leave it out to use your local user name",
        ));
    }
    for (field, value) in [
        ("connect_timeout", re.connect_timeout),
        ("command_timeout", re.command_timeout),
    ] {
        if value.is_zero() {
            problems.push(Problem::value(
                section.key(field),
                format!("{field} must be more than zero, e.g. `30s`"),
            ));
        }
    }
    for (field, value) in [
        ("max_parallel", re.max_parallel),
        ("max_sessions", re.max_sessions),
    ] {
        if value == 0 {
            problems.push(Problem::value(
                section.key(field),
                format!("{field} must be at least 1"),
            ));
        }
    }
    for (i, cipher) in re.ciphers.iter().enumerate() {
        if cipher.is_empty() || cipher.contains(',') || cipher.chars().any(char::is_whitespace) {
            problems.push(Problem::value(
                section.key("ciphers").index(i),
                format!(
                    "`{cipher}` is not a cipher name: list each cipher as its own item, \
                     e.g. `[aes128-gcm@openssh.com, chacha20-poly1305@openssh.com]`"
                ),
            ));
        }
    }
}

fn check_audit(config: &Config, problems: &mut Vec<Problem>) {
    let section = FieldPath::keys(["audit"]);
    let audit = &config.audit;
    if audit.max_size < MIN_MAX_SIZE {
        problems.push(Problem::value(
            section.key("max_size"),
            format!(
                "max_size {} is too small: the log is rotated at this size; use at least 4K, e.g. `100M`",
                audit.max_size
            ),
        ));
    }
    for (i, pattern) in audit.redact.iter().enumerate() {
        let at = section.key("redact").index(i);
        if pattern.is_empty() {
            problems.push(Problem::value(at, "the pattern is empty: remove it"));
        } else if let Err(err) = regex::bytes::Regex::new(pattern) {
            problems.push(Problem::value(
                at,
                format!(
                    "`{pattern}` is not a valid regular expression: {}",
                    regex_reason(&err)
                ),
            ));
        }
    }
}

fn check_service(config: &Config, problems: &mut Vec<Problem>) {
    let section = FieldPath::keys(["service"]);
    let service = &config.service;
    if service.listen.parse::<std::net::SocketAddr>().is_err() {
        problems.push(Problem::value(
            section.key("listen"),
            format!(
                "`{}` is not an address and port; use e.g. `127.0.0.1:7878` or `[::1]:7878`",
                service.listen
            ),
        ));
    }
    let limits = section.key("limits");
    let l = &service.limits;
    for (field, value, least) in [
        ("max_body", l.max_body, 1024),
        ("max_json", l.max_json, 1024),
        ("max_output", l.max_output, 1024),
        ("requests_per_minute", u64::from(l.requests_per_minute), 1),
        ("jobs_per_token", u64::from(l.jobs_per_token), 1),
        ("max_download", l.max_download, 1024),
        (
            "unauthenticated_per_minute",
            u64::from(l.unauthenticated_per_minute),
            1,
        ),
        ("max_connections", l.max_connections as u64, 1),
        (
            "max_connections_per_address",
            l.max_connections_per_address as u64,
            1,
        ),
    ] {
        if value < least {
            problems.push(Problem::value(
                limits.key(field),
                format!("{field} {value} is too small; use at least {least}"),
            ));
        }
    }
    for (field, value) in [
        ("header_timeout", l.header_timeout),
        ("idle_timeout", l.idle_timeout),
        ("denied_audit_interval", l.denied_audit_interval),
    ] {
        if value < std::time::Duration::from_secs(1) {
            problems.push(Problem::value(
                limits.key(field),
                format!("{field} must be at least 1s"),
            ));
        }
    }
    if service.retain.is_zero() {
        problems.push(Problem::value(
            section.key("retain"),
            "retain 0 would delete every job as it ends; use e.g. `7d`",
        ));
    }
    let callbacks = section.key("callbacks");
    if service.callbacks.attempts == 0 {
        problems.push(Problem::value(
            callbacks.key("attempts"),
            "attempts 0 would never call back; use at least 1",
        ));
    }
    if service.callbacks.timeout.is_zero() {
        problems.push(Problem::value(
            callbacks.key("timeout"),
            "timeout 0 would give every try up at once; use e.g. `10s`",
        ));
    }
}

/// The one-line reason of a regex error (its `Display` draws the pattern
/// with a caret over several lines).
pub(crate) fn regex_reason(err: &regex::Error) -> String {
    let text = err.to_string();
    let last = text.lines().rev().find(|line| !line.trim().is_empty());
    last.map_or(text.clone(), |line| {
        line.trim().trim_start_matches("error: ").to_owned()
    })
}
