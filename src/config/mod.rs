//! remex's YAML config: the fleet (`vms`) and how to reach it
//! (`remote_execution`).
//!
//! ```yaml
//! vms:
//!   vm01: { host: 10.0.0.11, port: 22, user: ops, groups: [web] }
//!   vm02: { host: vm02.example.net, user: ops, groups: [web, db], key: deploy }
//! remote_execution:          # optional, and so is each field in it
//!   key_storage_path: ~/.ssh/remex_keys
//!   default_key: id_ed25519
//!   known_hosts: ~/.ssh/remex_known_hosts
//!   host_key_policy: strict  # strict | accept-new
//!   connect_timeout: 10s
//!   command_timeout: 5m
//!   max_parallel: 64
//! audit:                     # optional, and so is each field in it
//!   path: ~/.local/state/remex/audit.jsonl
//!   fsync: always            # always | start
//!   max_size: 100M
//! ```
//!
//! `configs/config.example.yml` documents every field.
//!
//! # Where the config comes from
//!
//! [`Config::discover`] takes the first of: `--config FILE`, `$REMEX_CONFIG`,
//! `./configs/config.yml`, `~/.config/remex/config.yml`.
//!
//! # Paths
//!
//! In `key_storage_path`, `known_hosts`, `default_key`, a VM's `key`,
//! `audit.path` and `audit.hmac_key_path`, a leading `~` or `~/` means the
//! home directory (`$HOME`, else the password database); `~user/` is
//! refused. Relative `key_storage_path`, `known_hosts`, `audit.path` and
//! `audit.hmac_key_path` are relative to the directory of the config file,
//! not the current directory. Relative key names are inside `key_storage_path`.
//! After loading, these paths are absolute.
//!
//! # Errors
//!
//! Every error about the file's content says where: file, line, column and
//! the path of the field (`vms.vm02.prot`), see [`ConfigError`]. Unknown
//! fields are errors, with the closest known name suggested.
//!
//! # Layout
//!
//! - `mod.rs`: the config types, loading and discovery.
//! - `duration.rs`: [`parse_duration`] and the `Duration` fields' format.
//! - `size.rs`: [`parse_size`] and the byte-size fields' format.
//! - `audit.rs`: the `audit:` section, [`AuditConfig`].
//! - `error.rs`: [`ConfigError`], and wording for serde-saphyr's errors.
//! - `field_path.rs`: field paths (`vms.vm02.port`) for errors.
//! - `source_map.rs`: where a field sits in the text, for rule errors.
//! - `validate.rs`: the rules beyond the shape (names, ranges).
//! - `actions/`: the `actions:` section — named commands with typed
//!   params ([`Action`]), their template words and value rules.
//! - `local.rs`: the local user name and home directory.
//!
//! To add a top-level section (e.g. `audit:`), add one field to [`Config`]
//! with `#[serde(default, deserialize_with = "null_as_default")]` and a type
//! that derives `Deserialize` with `deny_unknown_fields`; error positions
//! and field paths come for free. Add its rules to `validate.rs`.
//!
//! **Invariant:** a `Config` returned by [`Config::from_yaml`] has passed
//! every rule in `validate.rs`, and its paths are absolute.

pub mod actions;
mod audit;
mod duration;
mod error;
mod field_path;
mod from_ssh;
mod jump;
mod local;
mod service;
mod size;
mod source_map;
pub mod ssh_config;
mod validate;
pub(crate) mod whole;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub use actions::{Action, Approve, Param, ParamPattern, ParamType};
pub use audit::{AuditConfig, FsyncPolicy};
pub use duration::{format_duration, parse_duration};
pub use error::ConfigError;
pub use jump::{Hop, join_host_port, parse_chain, parse_host_port};
pub use service::{CallbacksConfig, Limits, OnShutdown, ServiceConfig, TlsConfig};
pub(crate) use size::deserialize as deserialize_size;
pub use size::parse_size;

/// The local user name (`$USER`, else `$LOGNAME`, else the password
/// database), for the audit log's `actor`.
pub(crate) use local::user_name;

use field_path::FieldPath;
use source_map::{Position, SourceMap};
use validate::{Part, Problem};

/// The environment variable naming the config file, used when `--config`
/// is not given.
pub const CONFIG_ENV: &str = "REMEX_CONFIG";

/// The whole config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The fleet, by VM name. Names are what target selectors match (with
    /// group names and `all`), so they may not be `all` nor contain `,` `!`
    /// `*` `?` or whitespace. Required: at least one VM.
    #[serde(default, deserialize_with = "null_as_default")]
    pub vms: BTreeMap<String, Vm>,
    /// Settings shared by the VMs of a group, by group name (a group that
    /// some VM lists in its `groups`). Optional.
    #[serde(default, deserialize_with = "null_as_default")]
    pub groups: BTreeMap<String, Group>,
    /// How remex connects and runs commands. Optional: every field has a
    /// default.
    #[serde(default, deserialize_with = "null_as_default")]
    pub remote_execution: RemoteExecution,
    /// The audit log: where, how durable, what to redact. Optional: every
    /// field has a default, and auditing is on.
    #[serde(default, deserialize_with = "null_as_default")]
    pub audit: AuditConfig,
    /// `remex serve`: where it listens, where it keeps its jobs, its
    /// limits. Optional: every field has a default.
    #[serde(default, deserialize_with = "null_as_default")]
    pub service: ServiceConfig,
    /// Named commands with typed params, by name: what a workflow may run
    /// instead of anything (`remex action run`, the service's actions).
    /// Optional. See [`actions`].
    #[serde(default, deserialize_with = "null_as_default")]
    pub actions: BTreeMap<String, Action>,
    /// The file the config was read from (not a YAML field). Relative paths
    /// in the config were resolved against its directory.
    #[serde(skip)]
    pub source: PathBuf,
}

/// One host of the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vm {
    /// IP address or DNS name to connect to. Required. OpenSSH: `HostName`.
    pub host: String,
    /// SSH port, 1 to 65535. Default: 22. OpenSSH: `Port` (`ssh -p`).
    #[serde(default = "default_port")]
    pub port: u16,
    /// Remote user name. Default: `remote_execution.default_user`, else the
    /// local user name; see [`Config::user_for`]. OpenSSH: `User` (`ssh -l`).
    #[serde(default)]
    pub user: Option<String>,
    /// Groups this VM belongs to, for target selectors (`remex exec web -- …`).
    /// Default: none. Same naming rules as VM names, and a group may not
    /// share a VM's name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub groups: Vec<String>,
    /// Key file name inside key_storage_path, overriding default_key. An
    /// absolute path (or one starting with `~`) is used as is. Default:
    /// none, meaning `default_key`. OpenSSH: `IdentityFile` (`ssh -i`).
    #[serde(default)]
    pub key: Option<String>,
    /// Jump hosts to reach this VM through, outermost first, comma-separated:
    /// VM names from `vms` (each with its own user, key, port and host key)
    /// or `[user@]host[:port]` (`[IPv6]:port`), e.g. `bastion` or
    /// `ops@gw.example.net:2222,bastion`. Default: none (dial directly).
    /// OpenSSH: `ProxyJump` (`ssh -J`).
    #[serde(default)]
    pub jump: Option<String>,
    /// Per-host connection settings (not a YAML field: from
    /// `remote_execution.ssh_config`).
    #[serde(skip)]
    pub tuning: HostTuning,
    /// The values taken from `remote_execution.ssh_config` (not a YAML
    /// field): field name (`address`, `user`, `port`, `key`, `jump`, …) →
    /// `FILE:LINE`.
    #[serde(skip)]
    pub from_ssh_config: BTreeMap<String, String>,
}

/// Connection settings of one host that differ from `remote_execution`'s
/// (from an ssh_config `Host` block). `None`: as `remote_execution` says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostTuning {
    /// `ConnectTimeout`.
    pub connect_timeout: Option<Duration>,
    /// `ServerAliveInterval` (`Some(None)`: off).
    pub keepalive_interval: Option<Option<Duration>>,
    /// `ServerAliveCountMax`.
    pub keepalive_count_max: Option<u32>,
    /// `AddressFamily`.
    pub address_family: Option<AddressFamily>,
}

/// Settings of a group of VMs (`groups.NAME`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Jump hosts for the group's VMs that have no `jump` of their own (a
    /// VM in several groups takes the first of its groups that has one;
    /// the group's own jump hosts are never reached through themselves).
    /// Same form as [`Vm::jump`]. OpenSSH: `ProxyJump` in a `Host` block.
    #[serde(default)]
    pub jump: Option<String>,
}

/// How remex connects to the fleet and runs commands.
///
/// `Default` gives the documented defaults with paths not yet resolved
/// (`~/.ssh/remex_keys`); [`Config::from_yaml`] resolves them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteExecution {
    /// Directory of the private keys remex uses (and later generates).
    /// Default: `~/.ssh/remex_keys`. Relative paths are relative to the
    /// config file's directory.
    pub key_storage_path: PathBuf,
    /// Key file used for VMs without a `key`, inside `key_storage_path`.
    /// Default: `id_ed25519`. OpenSSH: `IdentityFile` (`ssh -i`).
    pub default_key: String,
    /// Remote user for VMs without a `user`. Default: none, meaning the
    /// local user name (`$USER`, else the password database), as `ssh`
    /// does. OpenSSH: `User` (`ssh -l`).
    pub default_user: Option<String>,
    /// remex's own file of pinned host keys, in OpenSSH `known_hosts`
    /// format; `~/.ssh/known_hosts` is not read. Default:
    /// `~/.ssh/remex_known_hosts`. OpenSSH: `UserKnownHostsFile`.
    pub known_hosts: PathBuf,
    /// What to do with a host key that `known_hosts` does not list.
    /// Default: `strict`. OpenSSH: `StrictHostKeyChecking`.
    pub host_key_policy: HostKeyPolicy,
    /// Time allowed to open the TCP connection and finish the SSH handshake
    /// and authentication. Default: 10s. OpenSSH: `ConnectTimeout`.
    #[serde(deserialize_with = "duration::deserialize")]
    pub connect_timeout: Duration,
    /// Time allowed for one command on one host, after which it is reported
    /// as timed out. Default: 5m. OpenSSH: none.
    #[serde(deserialize_with = "duration::deserialize")]
    pub command_timeout: Duration,
    /// Most hosts worked on at once. Default: 64; at least 1. OpenSSH:
    /// none (like `pssh -p`).
    pub max_parallel: usize,
    /// Try the keys of a running ssh-agent (when `SSH_AUTH_SOCK` is set)
    /// before the key files. Default: true. OpenSSH: the opposite of
    /// `IdentitiesOnly=yes`.
    pub use_agent: bool,
    /// Most channels (commands, transfers) open at once on one connection.
    /// Default: 10, sshd's own `MaxSessions` default; at least 1. OpenSSH:
    /// `MaxSessions` (server side).
    pub max_sessions: usize,
    /// Retries after a transient network error (connection refused, reset,
    /// host unreachable), never after an authentication or host-key
    /// failure. Default: 2. OpenSSH: `ConnectionAttempts` (which counts
    /// the first attempt too).
    pub connect_retries: u32,
    /// Ciphers to offer, most preferred first, e.g.
    /// `aes128-gcm@openssh.com`. Default: empty, meaning remex's built-in
    /// preference (AES-GCM first on CPUs with AES instructions). OpenSSH:
    /// `Ciphers` (`ssh -c`).
    pub ciphers: Vec<String>,
    /// How often to check that a quiet connection is still alive (an SSH
    /// keepalive request), so long commands through NATs and bastions
    /// survive and a dead peer is noticed. `none` turns it off. Default:
    /// 15s. OpenSSH: `ServerAliveInterval`.
    #[serde(deserialize_with = "duration::deserialize_optional")]
    pub keepalive_interval: Option<Duration>,
    /// Unanswered keepalives after which the connection counts as dead: a
    /// dead peer is noticed within `keepalive_interval` × this. Default: 3;
    /// at least 1. OpenSSH: `ServerAliveCountMax`.
    pub keepalive_count_max: u32,
    /// Which addresses of a host name to dial: `any` (default), `inet`
    /// (IPv4 only) or `inet6` (IPv6 only). OpenSSH: `AddressFamily`.
    pub address_family: AddressFamily,
    /// An OpenSSH client config to read (opt-in), e.g. `~/.ssh/config`:
    /// each VM's `host` is looked up there as an alias, and its `HostName`,
    /// `User`, `Port`, `IdentityFile`, `ProxyJump`, `ConnectTimeout`,
    /// `ServerAliveInterval`, `ServerAliveCountMax` and `AddressFamily`
    /// apply where the VM sets nothing. Default: none (not read).
    pub ssh_config: Option<PathBuf>,
}

/// Which address family to dial (YAML and ssh_config: `any`, `inet`,
/// `inet6`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressFamily {
    /// IPv4 or IPv6, in the resolver's order.
    #[default]
    Any,
    /// IPv4 only.
    Inet,
    /// IPv6 only.
    Inet6,
}

impl std::fmt::Display for AddressFamily {
    /// The keyword value: `any`, `inet`, `inet6`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AddressFamily::Any => "any",
            AddressFamily::Inet => "inet",
            AddressFamily::Inet6 => "inet6",
        })
    }
}

/// What to do when a host offers a key that `known_hosts` does not list.
///
/// A key that differs from the one listed is refused under both policies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    /// Refuse the host (YAML `strict`, the default). OpenSSH:
    /// `StrictHostKeyChecking=yes`.
    #[default]
    Strict,
    /// Trust the key on first use and append it to `known_hosts` (YAML
    /// `accept-new`). OpenSSH: `StrictHostKeyChecking=accept-new`.
    AcceptNew,
}

fn default_port() -> u16 {
    22
}

impl Default for RemoteExecution {
    fn default() -> Self {
        RemoteExecution {
            key_storage_path: PathBuf::from("~/.ssh/remex_keys"),
            default_key: String::from("id_ed25519"),
            default_user: None,
            known_hosts: PathBuf::from("~/.ssh/remex_known_hosts"),
            host_key_policy: HostKeyPolicy::Strict,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(5 * 60),
            max_parallel: 64,
            use_agent: true,
            max_sessions: 10,
            connect_retries: 2,
            ciphers: Vec::new(),
            keepalive_interval: Some(Duration::from_secs(15)),
            keepalive_count_max: 3,
            address_family: AddressFamily::Any,
            ssh_config: None,
        }
    }
}

/// Reads an empty value (`remote_execution:` with nothing under it) as the
/// default, like a missing one.
fn null_as_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

impl Config {
    /// Finds and loads the config: `explicit` (--config) if given, else
    /// `from_env` (the CLI passes $REMEX_CONFIG; the library reads no
    /// environment variable), else ./configs/config.yml, else
    /// ~/.config/remex/config.yml.
    ///
    /// # Errors
    ///
    /// [`ConfigError::NotFound`] when no candidate exists (an explicit or
    /// `$REMEX_CONFIG` file that is missing is a [`ConfigError::Read`]
    /// instead), else whatever [`Config::load`] returns.
    pub fn discover(
        explicit: Option<&Path>,
        from_env: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        if let Some(path) = explicit.or(from_env) {
            return Config::load(path);
        }
        let searched = default_locations(local::home_dir().as_deref());
        match searched.iter().find(|path| path.is_file()) {
            Some(path) => Config::load(path),
            None => Err(ConfigError::NotFound { searched }),
        }
    }

    /// Reads and parses the config file at `path`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Read`] if the file cannot be read or is not UTF-8,
    /// else whatever [`Config::from_yaml`] returns.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_yaml(&text, path)
    }

    /// Parses YAML text; `path` is used for error messages and to resolve
    /// relative paths.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Parse`] when the text is not YAML or not shaped like
    /// a config; [`ConfigError::Invalid`] when it breaks a rule (no VMs, a
    /// bad name, `max_parallel: 0`, ...).
    pub fn from_yaml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Config::from_yaml_with_home(text, path, local::home_dir().as_deref())
    }

    /// [`Config::from_yaml`] with `~` meaning `home`, so tests can pick it.
    fn from_yaml_with_home(
        text: &str,
        path: &Path,
        home: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        // Records the path of the value that failed, see `field_path.rs`.
        let mut track = serde_path_to_error::Track::new();
        let parsed = serde_saphyr::with_deserializer_from_str(text, |de| {
            Option::<Config>::deserialize(serde_path_to_error::Deserializer::new(de, &mut track))
        });
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(err) => {
                let field = FieldPath::from(&track.path());
                return Err(error::parse_error(path, text, &err, field));
            }
        };
        let Some(mut config) = parsed else {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                line: None,
                column: None,
                field: String::new(),
                message: "the config is empty: list your hosts under `vms:`, \
                          e.g. `vms: { vm01: { host: 10.0.0.11 } }` \
                          (configs/config.example.yml documents every field)"
                    .to_owned(),
            });
        };
        config.source = path.to_path_buf();
        for (name, action) in &mut config.actions {
            action.name.clone_from(name);
        }
        let mut problems = validate::check(&config);
        problems.extend(config.resolve_paths(home));
        if problems.is_empty() && config.remote_execution.ssh_config.is_some() {
            problems.extend(config.apply_ssh_config(home));
            // Jumps taken from the ssh_config must not make a cycle either
            // (the config's own were checked with the rest).
            for name in config.vms.keys() {
                if let Some(why) = config.jump_problem(name) {
                    problems.push(validate::Problem::value(
                        FieldPath::keys(["vms", name]),
                        why,
                    ));
                }
            }
        }
        if problems.is_empty() {
            return Ok(config);
        }
        // Report the problem that comes first in the file.
        let map = SourceMap::build(text);
        let first = problems
            .into_iter()
            .map(|problem| (locate(&map, &problem), problem))
            .min_by_key(|(at, _)| at.map_or((usize::MAX, usize::MAX), |at| (at.line, at.column)));
        match first {
            Some((at, problem)) => Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                line: at.map(|at| at.line),
                column: at.map(|at| at.column),
                field: problem.field.to_string(),
                message: problem.message,
            }),
            None => Ok(config),
        }
    }

    /// The hosts `selector` picks (the [`crate::targets`] grammar), in
    /// inventory order.
    ///
    /// # Errors
    ///
    /// A selector that names nothing in the inventory, or selects nothing.
    pub fn select(
        &self,
        selector: &str,
    ) -> Result<crate::targets::Selection, crate::targets::TargetError> {
        let candidates: Vec<crate::targets::Candidate<'_>> = self
            .vms
            .iter()
            .map(|(name, vm)| crate::targets::Candidate {
                name,
                groups: &vm.groups,
            })
            .collect();
        crate::targets::Selection::new(selector, &candidates)
    }

    /// The inventory as `remex hosts list` shows it.
    pub fn host_list(&self) -> HostList {
        HostList {
            config: self.source.clone(),
            hosts: self
                .vms
                .iter()
                .map(|(name, vm)| HostEntry {
                    name: name.clone(),
                    address: vm.host.clone(),
                    port: vm.port,
                    user: self.user_for(vm),
                    groups: vm.groups.clone(),
                    jump: self
                        .jump_chain(vm)
                        .unwrap_or_default()
                        .iter()
                        .map(|hop| hop.name().to_owned())
                        .collect(),
                    from_ssh_config: vm.from_ssh_config.clone(),
                })
                .collect(),
        }
    }

    /// The effective user for a VM: vm.user, else default_user, else the
    /// local user.
    pub fn user_for(&self, vm: &Vm) -> String {
        vm.user.clone().unwrap_or_else(|| self.default_user())
    }

    /// The user of hosts that name none: `default_user`, else the local
    /// user name.
    pub fn default_user(&self) -> String {
        self.remote_execution
            .default_user
            .clone()
            .unwrap_or_else(local::user_name)
    }

    /// Path of the private key for a VM: key_storage_path joined with
    /// vm.key or default_key (an absolute vm.key is used as is).
    pub fn key_path_for(&self, vm: &Vm) -> PathBuf {
        let name = vm
            .key
            .as_deref()
            .unwrap_or(&self.remote_execution.default_key);
        // `join` keeps an absolute `name` as is.
        self.remote_execution.key_storage_path.join(name)
    }

    /// Expands `~` and makes relative paths absolute (relative to the
    /// config file's directory), returning what could not be resolved.
    fn resolve_paths(&mut self, home: Option<&Path>) -> Vec<Problem> {
        let base = self
            .source
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
        let section = FieldPath::keys(["remote_execution"]);
        let mut problems = Vec::new();
        let re = &mut self.remote_execution;
        for (field, value) in [
            ("key_storage_path", Some(&mut re.key_storage_path)),
            ("known_hosts", Some(&mut re.known_hosts)),
            ("ssh_config", re.ssh_config.as_mut()),
        ] {
            let Some(value) = value else { continue };
            match resolve_path(value, &base, home) {
                Ok(resolved) => *value = resolved,
                Err(why) => problems.push(Problem::value(section.key(field), why)),
            }
        }
        let audit = &mut self.audit;
        let audit_paths = [
            ("path", Some(&mut audit.path)),
            ("hmac_key_path", audit.hmac_key_path.as_mut()),
        ];
        for (field, value) in audit_paths {
            let Some(value) = value else { continue };
            match resolve_path(value, &base, home) {
                Ok(resolved) => *value = resolved,
                Err(why) => problems.push(Problem::value(FieldPath::keys(["audit", field]), why)),
            }
        }
        let service = &mut self.service;
        let (tls_cert, tls_key, tls_ca) = match &mut service.tls {
            Some(tls) => (
                Some(&mut tls.cert),
                Some(&mut tls.key),
                tls.client_ca.as_mut(),
            ),
            None => (None, None, None),
        };
        let service_paths = [
            (vec!["service", "store"], Some(&mut service.store)),
            (vec!["service", "scripts_dir"], service.scripts_dir.as_mut()),
            (vec!["service", "tls", "cert"], tls_cert),
            (vec!["service", "tls", "key"], tls_key),
            (vec!["service", "tls", "client_ca"], tls_ca),
        ];
        for (field, value) in service_paths {
            let Some(value) = value else { continue };
            match resolve_path(value, &base, home) {
                Ok(resolved) => *value = resolved,
                Err(why) => problems.push(Problem::value(FieldPath::keys(field), why)),
            }
        }
        for (name, action) in &mut self.actions {
            let Some(script) = &mut action.script else {
                continue;
            };
            if script.as_os_str().is_empty() {
                continue;
            }
            match resolve_path(script, &base, home) {
                Ok(resolved) => *script = resolved,
                Err(why) => problems.push(Problem::value(
                    FieldPath::keys(["actions", name, "script"]),
                    why,
                )),
            }
        }
        // Key names stay names; only `~` is expanded.
        if let Err(why) = expand_key(&mut re.default_key, home) {
            problems.push(Problem::value(section.key("default_key"), why));
        }
        for (name, vm) in &mut self.vms {
            if let Some(key) = &mut vm.key
                && let Err(why) = expand_key(key, home)
            {
                problems.push(Problem::value(FieldPath::keys(["vms", name, "key"]), why));
            }
        }
        problems
    }
}

/// The places [`Config::discover`] looks when neither `--config` nor
/// `$REMEX_CONFIG` is given, in order.
fn default_locations(home: Option<&Path>) -> Vec<PathBuf> {
    let mut places = vec![PathBuf::from("configs/config.yml")];
    if let Some(home) = home {
        places.push(home.join(".config/remex/config.yml"));
    }
    places
}

/// Expands a leading `~`, then makes a relative path absolute from `base`.
fn resolve_path(path: &Path, base: &Path, home: Option<&Path>) -> Result<PathBuf, String> {
    if path.as_os_str().is_empty() {
        return Err("the path is empty".to_owned());
    }
    let path = expand_tilde(path, home)?;
    Ok(if path.is_absolute() {
        path
    } else {
        base.join(path)
    })
}

/// Expands a leading `~` in a key name, leaving other names alone.
fn expand_key(key: &mut String, home: Option<&Path>) -> Result<(), String> {
    if !key.starts_with('~') {
        return Ok(());
    }
    let expanded = expand_tilde(Path::new(key.as_str()), home)?;
    *key = expanded
        .into_os_string()
        .into_string()
        .map_err(|_| "the home directory is not valid UTF-8".to_owned())?;
    Ok(())
}

/// `~` and `~/rest` become `home` and `home/rest`; other paths are
/// returned unchanged.
fn expand_tilde(path: &Path, home: Option<&Path>) -> Result<PathBuf, String> {
    let mut components = path.components();
    let Some(std::path::Component::Normal(first)) = components.next() else {
        return Ok(path.to_path_buf());
    };
    if first == "~" {
        let home = home.ok_or_else(|| {
            "cannot expand `~`: $HOME is not set and the home directory is unknown".to_owned()
        })?;
        return Ok(home.join(components.as_path()));
    }
    if first.to_string_lossy().starts_with('~') {
        return Err(format!(
            "`{}`: only `~` and `~/...` are expanded, not `~user`; write the full path",
            path.display()
        ));
    }
    Ok(path.to_path_buf())
}

/// Where a rule violation is in the text, if the source map knows.
fn locate(map: &SourceMap, problem: &Problem) -> Option<Position> {
    match problem.part {
        Part::Key => map.key_position(&problem.field),
        Part::Value => map.value_position(&problem.field),
    }
    // A value left out (defaulted) has no position; its key's section might.
    .or_else(|| {
        problem
            .field
            .parent()
            .and_then(|parent| map.key_position(&parent))
    })
}

#[cfg(test)]
mod tests;

/// `remex hosts list`: the inventory of a config.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostList {
    /// The config file it comes from.
    pub config: PathBuf,
    /// The hosts, in inventory order.
    pub hosts: Vec<HostEntry>,
}

/// One host of a [`HostList`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostEntry {
    /// Its name in the config.
    pub name: String,
    /// Its address.
    pub address: String,
    /// Its SSH port.
    pub port: u16,
    /// The remote user.
    pub user: String,
    /// Its groups.
    pub groups: Vec<String>,
    /// The jump hosts it is reached through, outermost first (empty:
    /// dialed directly).
    pub jump: Vec<String>,
    /// The values taken from `remote_execution.ssh_config`: field →
    /// `FILE:LINE` (empty without one).
    pub from_ssh_config: BTreeMap<String, String>,
}
