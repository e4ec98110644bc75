//! `remote_execution.ssh_config`: what an OpenSSH client config says about
//! each VM, for the values the remex config leaves open.
//!
//! A VM's `host` is the alias looked up, as if typed after `ssh`. Its
//! `HostName` becomes the address dialed; `User`, `Port`, the first
//! `IdentityFile` that exists (else the first), `ProxyJump`, and the
//! per-host `ConnectTimeout`, `ServerAliveInterval`, `ServerAliveCountMax`
//! and `AddressFamily` apply where the VM (and its groups, for `jump`) set
//! nothing. remex's own values always win; `port: 22` counts as unset. Each
//! value taken is recorded in [`Vm::from_ssh_config`] with its file and
//! line, for `remex hosts list`.
//!
//! A `ProxyJump` hop that is a VM's name, or a VM's `host` alias, is that
//! VM (with its own settings); any other hop is `[user@]host[:port]` with
//! remex's default key. A `ProxyCommand` cannot be run by remex: such a
//! host is refused with the line, rather than dialed directly.

use std::collections::BTreeMap;
use std::path::Path;

use super::field_path::FieldPath;
use super::ssh_config::{HostSettings, LocalAccount, SshConfig};
use super::validate::Problem;
use super::{Config, HostTuning, local};

impl Config {
    /// Applies the `ssh_config` file, if one is set (its path already
    /// resolved): see the module docs.
    pub(super) fn apply_ssh_config(&mut self, home: Option<&Path>) -> Vec<Problem> {
        let Some(path) = self.remote_execution.ssh_config.clone() else {
            return Vec::new();
        };
        let field = FieldPath::keys(["remote_execution", "ssh_config"]);
        let home = home.map_or_else(|| Path::new("/").to_path_buf(), Path::to_path_buf);
        let file = match SshConfig::load(&path, &home) {
            Ok(file) => file,
            Err(e) => return vec![Problem::value(field, e.to_string())],
        };
        let account = LocalAccount {
            user: local::user_name(),
            home,
        };
        // A hop that is some VM's alias is that VM.
        let by_alias: BTreeMap<String, String> = self
            .vms
            .iter()
            .map(|(name, vm)| (vm.host.clone(), name.clone()))
            .collect();
        let mut problems = Vec::new();
        let names: Vec<String> = self.vms.keys().cloned().collect();
        for name in names {
            let alias = self.vms[&name].host.clone();
            let settings = match file.resolve(&alias, &account) {
                Ok(settings) => settings,
                Err(e) => {
                    problems.push(Problem::value(
                        FieldPath::keys(["vms", &name]),
                        e.to_string(),
                    ));
                    continue;
                }
            };
            if let Some(command) = &settings.proxy_command {
                problems.push(Problem::value(
                    FieldPath::keys(["vms", &name]),
                    format!(
                        "{} gives `{alias}` a ProxyCommand, which remex cannot run; \
                         use ProxyJump (or `jump:`) instead",
                        command.location()
                    ),
                ));
                continue;
            }
            let jump_is_set = self.has_jump(&self.vms[&name]);
            let jump = settings.proxy_jump.as_ref().map(|hops| {
                let text = hops
                    .value
                    .iter()
                    .map(|hop| {
                        // A bare hop naming a VM's alias or name is that VM.
                        let bare = hop.user.is_none() && hop.port.is_none();
                        match by_alias.get(&hop.host) {
                            Some(vm) if bare => vm.clone(),
                            _ if bare && self.vms.contains_key(&hop.host) => hop.host.clone(),
                            _ => hop.to_string(),
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(",");
                (text, hops.location())
            });
            let Some(vm) = self.vms.get_mut(&name) else {
                continue;
            };
            apply(vm, &settings, jump, jump_is_set);
        }
        problems
    }
}

/// Takes what `settings` says where `vm` says nothing.
fn apply(
    vm: &mut super::Vm,
    settings: &HostSettings,
    jump: Option<(String, String)>,
    jump_is_set: bool,
) {
    let mut from = BTreeMap::new();
    if let Some(name) = &settings.host_name {
        vm.host.clone_from(&name.value);
        from.insert("address".to_owned(), name.location());
    }
    if vm.user.is_none()
        && let Some(user) = &settings.user
    {
        vm.user = Some(user.value.clone());
        from.insert("user".to_owned(), user.location());
    }
    if vm.port == 22
        && let Some(port) = &settings.port
    {
        vm.port = port.value;
        from.insert("port".to_owned(), port.location());
    }
    if vm.key.is_none() {
        let files = &settings.identity_files;
        if let Some(key) = files.iter().find(|f| f.value.exists()).or(files.first()) {
            vm.key = Some(key.value.display().to_string());
            from.insert("key".to_owned(), key.location());
        }
    }
    if !jump_is_set && let Some((text, location)) = jump {
        // `ProxyJump none`: dialed directly, as ssh would.
        if !text.is_empty() {
            vm.jump = Some(text);
        }
        from.insert("jump".to_owned(), location);
    }
    let mut tuning = HostTuning::default();
    if let Some(timeout) = &settings.connect_timeout
        && !timeout.value.is_zero()
    {
        tuning.connect_timeout = Some(timeout.value);
        from.insert("connect_timeout".to_owned(), timeout.location());
    }
    if let Some(interval) = &settings.server_alive_interval {
        tuning.keepalive_interval = Some(Some(interval.value).filter(|d| !d.is_zero()));
        from.insert("keepalive_interval".to_owned(), interval.location());
    }
    if let Some(count) = &settings.server_alive_count_max {
        tuning.keepalive_count_max = Some(count.value);
        from.insert("keepalive_count_max".to_owned(), count.location());
    }
    if let Some(family) = &settings.address_family {
        tuning.address_family = Some(family.value);
        from.insert("address_family".to_owned(), family.location());
    }
    vm.tuning = tuning;
    vm.from_ssh_config = from;
}
