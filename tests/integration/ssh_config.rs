//! `remote_execution.ssh_config`: hosts described in an OpenSSH client
//! config, reached with what it says (and what `ssh -G` says it says).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use serde_json::Value;

use crate::util::{Remex, TestLab};

/// Writes `text` as an ssh_config (0600, as ssh wants it).
fn ssh_config(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A config with only `vms` of its own; the rest as the lab's.
fn remex_config(lab: &TestLab, vms: &str, ssh: &Path) -> std::path::PathBuf {
    let text = lab.config_text();
    let rest = &text[text.find("remote_execution:").unwrap()..];
    let rest = rest.replacen(
        "remote_execution:\n",
        &format!("remote_execution:\n  ssh_config: {}\n", ssh.display()),
        1,
    );
    let path = lab.path().join("from-ssh.yml");
    std::fs::write(&path, format!("vms:\n{vms}{rest}")).unwrap();
    path
}

/// `ssh -G -F FILE ALIAS`: OpenSSH's own reading, keyword → value.
fn ssh_g(file: &Path, alias: &str) -> std::collections::HashMap<String, String> {
    let out = std::process::Command::new("ssh")
        .args(["-G", "-F"])
        .arg(file)
        .arg(alias)
        .output()
        .unwrap_or_else(|e| panic!("ssh (apt-get install -y openssh-client): {e}"));
    assert!(out.status.success(), "ssh -G: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `remex --config CONFIG ARGS…`, expecting exit `code`.
fn remex_with(config: &Path, args: &[&str], code: i32) -> crate::util::Run {
    Remex::new()
        .arg("--config")
        .arg(config)
        .args(args)
        .run()
        .expect_code(code)
}

fn host<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}

#[test]
fn hosts_take_address_user_port_and_key_from_ssh_config_as_ssh_reads_it() {
    let lab = TestLab::new(2);
    let port = lab.port();
    let ssh = lab.path().join("ssh_config");
    let key = lab.path().join("keys").join("id_ed25519");
    ssh_config(
        &ssh,
        &format!(
            "Host alpha\n  HostName 127.0.0.2\n  User root\n  IdentityFile {}\n\
             Host beta\n  HostName 127.0.0.3\n\
             Host beta\n  HostName 127.0.0.99\n\
             Host alpha beta\n  Port {port}\n  ConnectTimeout 7\n  ServerAliveInterval 5\n\
             Host *\n  Port 2\n  User nobody\n",
            key.display()
        ),
    );
    // The first value obtained wins: beta's HostName is the first block's,
    // alpha's port the `Host alpha beta` block's, not `Host *`'s.
    let config = remex_config(
        &lab,
        "  alpha: { host: alpha }\n  beta: { host: beta, user: root }\n",
        &ssh,
    );
    let list = remex_with(&config, &["--json", "hosts", "list"], 0).json();
    let alpha = host(&list, "alpha");
    let openssh = ssh_g(&ssh, "alpha");
    assert_eq!(alpha["address"], openssh["hostname"].as_str(), "{alpha}");
    assert_eq!(alpha["port"].to_string(), openssh["port"], "{alpha}");
    assert_eq!(alpha["user"], openssh["user"].as_str(), "{alpha}");
    let from = &alpha["from_ssh_config"];
    let file = ssh.display().to_string();
    assert_eq!(from["address"], format!("{file}:2"), "{alpha}");
    assert_eq!(from["user"], format!("{file}:3"), "{alpha}");
    assert_eq!(from["key"], format!("{file}:4"), "{alpha}");
    assert_eq!(from["port"], format!("{file}:10"), "{alpha}");
    assert_eq!(from["connect_timeout"], format!("{file}:11"), "{alpha}");
    // beta's own `user` wins over the file's.
    let beta = host(&list, "beta");
    assert_eq!(beta["user"], "root");
    assert!(beta["from_ssh_config"].get("user").is_none(), "{beta}");
    assert_eq!(beta["address"], ssh_g(&ssh, "beta")["hostname"].as_str());
    let text = remex_with(&config, &["hosts", "list"], 0).stdout();
    assert!(
        text.contains("FROM SSH_CONFIG") && text.contains(&format!("{file}:10")),
        "{text}"
    );

    // And they are reached that way.
    let json = remex_with(&config, &["--json", "exec", "all", "--", "true"], 0).json();
    assert_eq!(json["summary"]["ok"], 2, "{json}");

    // A ProxyCommand cannot be followed: refused with its line.
    ssh_config(&ssh, "Host alpha\n  ProxyCommand nc %h %p\n");
    let run = remex_with(&config, &["hosts", "list"], 2);
    assert!(
        run.stderr().contains("ProxyCommand") && run.stderr().contains(":2"),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_proxy_jump_in_ssh_config_goes_through_the_bastion_vm_it_names() {
    let lab = TestLab::behind_bastion(1);
    let port = lab.port();
    let text = lab.config_text();
    let bastion_addr = text
        .lines()
        .find(|l| l.trim_start().starts_with("bastion:"))
        .and_then(|l| l.split("host: ").nth(1))
        .and_then(|rest| rest.split(',').next())
        .unwrap()
        .to_owned();
    let ssh = lab.path().join("ssh_config");
    ssh_config(
        &ssh,
        &format!(
            "Host gw\n  HostName {bastion_addr}\n  Port {port}\n\
             Host 127.*\n  ProxyJump gw\n"
        ),
    );
    let config = remex_config(
        &lab,
        &format!("  gateway: {{ host: gw }}\n  vm01: {{ host: 127.0.0.2, port: {port} }}\n"),
        &ssh,
    );
    let list = remex_with(&config, &["--json", "hosts", "list"], 0).json();
    assert_eq!(
        host(&list, "vm01")["jump"],
        serde_json::json!(["gateway"]),
        "{list}"
    );
    let json = remex_with(&config, &["--json", "exec", "vm01", "--", "true"], 0).json();
    assert_eq!(json["results"][0]["ok"], true, "{json}");
}
