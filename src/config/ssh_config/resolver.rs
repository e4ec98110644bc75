//! The resolver: one walk of a config for one alias, as `ssh` walks it —
//! the first value obtained wins, key files accumulate, tokens are
//! expanded last.

use std::ffi::OsStr;
use std::time::Duration;

use super::criteria::{Criterion, Test, host_matches, match_list};
use super::error::{Refusal, SshConfigError};
use super::keyword::Keyword;
use super::line::{At, Line};
use super::tokens::{KeyFileTokens, Token, expand_key_files, expand_tokens};
use super::values::Setting;
use super::{AddressFamily, HostSettings, JumpHost, LocalAccount, Sourced, SshConfig};

/// Most `IdentityFile`s, and most `CertificateFile`s, for one host
/// (OpenSSH's `SSH_MAX_IDENTITY_FILES` and `SSH_MAX_CERTIFICATE_FILES`).
const MAX_KEY_FILES: usize = 100;

/// The values obtained so far in a walk, raw (tokens not expanded).
#[derive(Default)]
pub(super) struct Obtained {
    host_name: Option<Sourced<String>>,
    user: Option<Sourced<String>>,
    port: Option<Sourced<u16>>,
    identity_files: Vec<Sourced<String>>,
    certificate_files: Vec<Sourced<String>>,
    /// `ProxyJump`; set only while `proxy_command` is empty.
    proxy_jump: Option<Sourced<Vec<JumpHost>>>,
    /// `ProxyCommand`; a `ProxyJump` with hops sets it to `none`, as `ssh`
    /// does, so that no later `ProxyCommand` applies.
    proxy_command: Option<Sourced<String>>,
    connect_timeout: Option<Sourced<Duration>>,
    server_alive_interval: Option<Sourced<Duration>>,
    server_alive_count_max: Option<Sourced<u32>>,
    address_family: Option<Sourced<AddressFamily>>,
    ignored: Vec<Sourced<String>>,
}

/// One walk of a config for one alias.
pub(super) struct Resolver<'a> {
    pub(super) config: &'a SshConfig,
    /// The name as typed.
    pub(super) alias: &'a str,
    pub(super) local: &'a LocalAccount,
    pub(super) got: Obtained,
}

impl Resolver<'_> {
    /// Applies `lines`; `active` says whether the current block applies,
    /// and is what `Host` and `Match` lines set.
    pub(super) fn walk(&mut self, lines: &[Line], active: &mut bool) -> Result<(), SshConfigError> {
        for line in lines {
            match line {
                Line::Host { patterns } => *active = host_matches(patterns, self.alias),
                Line::Match { criteria, at } => *active = self.match_holds(criteria, *at)?,
                // An Include in a block that does not apply: ssh reads it
                // with every Host and Match failing, so nothing in it applies.
                Line::Include { .. } if !*active => {}
                Line::Include { files } => {
                    for lines in files {
                        self.walk(lines, active)?;
                        // A block opened in an included file ends with it.
                        *active = true;
                    }
                }
                Line::Set { setting, at } if *active => self.obtain(setting, *at)?,
                Line::Ignored { keyword, at } if *active => {
                    let ignored = self.config.sourced(keyword.clone(), *at);
                    self.got.ignored.push(ignored);
                }
                Line::Set { .. } | Line::Ignored { .. } => {}
            }
        }
        Ok(())
    }

    /// Whether a `Match` line holds, as far as the walk has come.
    fn match_holds(&self, criteria: &[Criterion], at: At) -> Result<bool, SshConfigError> {
        let mut holds = true;
        let mut undecided: Option<&str> = None;
        for criterion in criteria {
            let result = match &criterion.test {
                Test::All => true,
                Test::Host(list) => {
                    let host = match &self.got.host_name {
                        Some(raw) => self.expand_host_name(raw)?,
                        None => self.alias.to_owned(),
                    };
                    match_list(&host.to_ascii_lowercase(), list, true)
                }
                Test::OriginalHost(list) => {
                    match_list(&self.alias.to_ascii_lowercase(), list, true)
                }
                Test::User(list) => {
                    let user = self
                        .got
                        .user
                        .as_ref()
                        .map_or(&self.local.user, |user| &user.value);
                    match_list(user, list, false)
                }
                Test::LocalUser(list) => match_list(&self.local.user, list, false),
                Test::Unsupported(name) => {
                    undecided.get_or_insert(name.as_str());
                    continue;
                }
            };
            if result == criterion.negated {
                holds = false;
            }
        }
        match undecided {
            // The other criteria fail: the block does not apply, whatever
            // the undecided one says.
            Some(_) if !holds => Ok(false),
            Some(name) => Err(self.config.error(
                at,
                Keyword::Match,
                Refusal::unsupported(format!(
                    "remex cannot evaluate `Match {name}`, and whether this block applies to `{}` \
                     depends on it; use `Match host` or `Host` for hosts remex reaches",
                    self.alias
                )),
            )),
            None => Ok(holds),
        }
    }

    /// Applies one value, if nothing obtained it before.
    fn obtain(&mut self, setting: &Setting, at: At) -> Result<(), SshConfigError> {
        let config = self.config;
        let got = &mut self.got;
        let sourced = |value| config.sourced(value, at);
        match setting {
            Setting::HostName(value) => first(&mut got.host_name, || sourced(value.clone())),
            Setting::User(value) => first(&mut got.user, || sourced(value.clone())),
            Setting::Port(port) => first(&mut got.port, || config.sourced(*port, at)),
            Setting::IdentityFile(path) => {
                add_key_file(
                    config,
                    &mut got.identity_files,
                    path,
                    at,
                    Keyword::IdentityFile,
                )?;
            }
            Setting::CertificateFile(path) => {
                add_key_file(
                    config,
                    &mut got.certificate_files,
                    path,
                    at,
                    Keyword::CertificateFile,
                )?;
            }
            // OpenSSH's parse_jump: only when neither is set yet.
            Setting::ProxyJump(hops) if got.proxy_jump.is_none() && got.proxy_command.is_none() => {
                got.proxy_jump = Some(config.sourced(hops.clone(), at));
                if !hops.is_empty() {
                    got.proxy_command = Some(config.sourced("none".to_owned(), at));
                }
            }
            Setting::ProxyJump(_) => {}
            Setting::ProxyCommand(command) => {
                first(&mut got.proxy_command, || sourced(command.clone()))
            }
            Setting::ConnectTimeout(Some(time)) => {
                first(&mut got.connect_timeout, || config.sourced(*time, at))
            }
            Setting::ServerAliveInterval(Some(time)) => {
                first(&mut got.server_alive_interval, || config.sourced(*time, at));
            }
            // `none` obtains nothing: a later line may still set a value.
            Setting::ConnectTimeout(None) | Setting::ServerAliveInterval(None) => {}
            Setting::ServerAliveCountMax(count) => {
                first(&mut got.server_alive_count_max, || {
                    config.sourced(*count, at)
                });
            }
            Setting::AddressFamily(family) => {
                first(&mut got.address_family, || config.sourced(*family, at))
            }
        }
        Ok(())
    }

    /// `HostName` with `%h` expanded to the alias (not yet lower-cased).
    fn expand_host_name(&self, raw: &Sourced<String>) -> Result<String, SshConfigError> {
        expand_tokens(&raw.value, |token| match token {
            'h' => Token::Value(OsStr::new(self.alias).into()),
            _ => Token::Unknown,
        })
        .map(|expanded| expanded.to_string_lossy().into_owned())
        .map_err(|refusal| {
            Refusal {
                message: format!("{} (HostName expands only %h and %%)", refusal.message),
                ..refusal
            }
            .at(raw.file.clone(), raw.line, Keyword::HostName.name())
        })
    }

    /// The settings, tokens expanded now that every value is known.
    pub(super) fn finish(self) -> Result<HostSettings, SshConfigError> {
        let host_name = match &self.got.host_name {
            Some(raw) => Some(Sourced {
                value: self.expand_host_name(raw)?.to_ascii_lowercase(),
                file: raw.file.clone(),
                line: raw.line,
            }),
            None => None,
        };
        let got = self.got;
        let proxy_jump = got.proxy_jump;
        // ssh compares `none` case-sensitively here (ProxyJump: not).
        let proxy_command = got.proxy_command.filter(|command| command.value != "none");
        let tokens = KeyFileTokens {
            home: &self.local.home,
            local_user: &self.local.user,
            host: host_name.as_ref().map_or_else(
                || self.alias.to_ascii_lowercase(),
                |host| host.value.clone(),
            ),
            remote_user: got
                .user
                .as_ref()
                .map_or(&self.local.user, |user| &user.value),
            alias: self.alias,
            port: got.port.as_ref().map_or(22, |port| port.value).to_string(),
            jump_host: proxy_jump
                .as_ref()
                .and_then(|jump| jump.value.last())
                .map_or("", |hop| hop.host.as_str()),
        };
        let identity_files = expand_key_files(&got.identity_files, &tokens, Keyword::IdentityFile)?;
        let certificate_files =
            expand_key_files(&got.certificate_files, &tokens, Keyword::CertificateFile)?;
        Ok(HostSettings {
            host_name,
            user: got.user,
            port: got.port,
            identity_files,
            certificate_files,
            proxy_jump,
            proxy_command,
            connect_timeout: got.connect_timeout,
            server_alive_interval: got.server_alive_interval,
            server_alive_count_max: got.server_alive_count_max,
            address_family: got.address_family,
            ignored: got.ignored,
        })
    }
}

/// Sets `slot` unless a value was obtained before: OpenSSH's rule.
fn first<T>(slot: &mut Option<T>, value: impl FnOnce() -> T) {
    if slot.is_none() {
        *slot = Some(value());
    }
}

/// Adds an `IdentityFile` or `CertificateFile`, unless the same text was
/// added before; at most [`MAX_KEY_FILES`].
fn add_key_file(
    config: &SshConfig,
    files: &mut Vec<Sourced<String>>,
    path: &str,
    at: At,
    keyword: Keyword,
) -> Result<(), SshConfigError> {
    if files.len() >= MAX_KEY_FILES {
        return Err(config.error(
            at,
            keyword,
            Refusal::invalid(format!(
                "too many files for one host (at most {MAX_KEY_FILES})"
            )),
        ));
    }
    if !files.iter().any(|file| file.value == path) {
        files.push(config.sourced(path.to_owned(), at));
    }
    Ok(())
}
