//! The values of the keywords remex uses ([`Setting`]), checked as `ssh`
//! checks them: ports, times, counts, address families, jump hosts.

use std::time::Duration;

use super::error::Refusal;
use super::keyword::Keyword;
use super::{AddressFamily, JumpHost};

/// A value of a keyword remex uses, checked.
#[derive(Debug, Clone)]
pub(super) enum Setting {
    HostName(String),
    User(String),
    Port(u16),
    IdentityFile(String),
    CertificateFile(String),
    /// Empty for `none`.
    ProxyJump(Vec<JumpHost>),
    /// As written; `none` included.
    ProxyCommand(String),
    /// `None` for `none`.
    ConnectTimeout(Option<Duration>),
    /// `None` for `none`.
    ServerAliveInterval(Option<Duration>),
    ServerAliveCountMax(u32),
    AddressFamily(AddressFamily),
}

/// The checked value of `keyword` from its arguments `args` (`rest`: the
/// line after the keyword, for `ProxyCommand`, which takes it whole).
pub(super) fn setting(keyword: Keyword, args: &[String], rest: &str) -> Result<Setting, Refusal> {
    if keyword == Keyword::ProxyCommand {
        let command = rest.trim_start_matches([' ', '\t', '\r', '\n', '=']);
        return Ok(Setting::ProxyCommand(command.to_owned()));
    }
    let value = match args {
        [] => return Err(Refusal::invalid("missing argument")),
        [value] if value.is_empty() => return Err(Refusal::invalid("missing argument")),
        [value] => value.as_str(),
        [_, extra, ..] => {
            return Err(Refusal::invalid(format!(
                "extra argument `{extra}` at the end of the line (quote a value with blanks)"
            )));
        }
    };
    Ok(match keyword {
        Keyword::HostName => Setting::HostName(value.to_owned()),
        Keyword::User => Setting::User(value.to_owned()),
        Keyword::Port => Setting::Port(parse_port(value)?),
        Keyword::IdentityFile => Setting::IdentityFile(value.to_owned()),
        Keyword::CertificateFile => Setting::CertificateFile(value.to_owned()),
        Keyword::ProxyJump => Setting::ProxyJump(parse_jump(value)?),
        Keyword::ConnectTimeout => Setting::ConnectTimeout(parse_time_or_none(value)?),
        Keyword::ServerAliveInterval => Setting::ServerAliveInterval(parse_time_or_none(value)?),
        Keyword::ServerAliveCountMax => Setting::ServerAliveCountMax(parse_count(value)?),
        Keyword::AddressFamily => Setting::AddressFamily(parse_address_family(value)?),
        Keyword::Host | Keyword::Match | Keyword::Include | Keyword::ProxyCommand => {
            return Err(Refusal::invalid("not a value keyword"));
        }
    })
}

/// `Port`: 1 to 65535.
fn parse_port(value: &str) -> Result<u16, Refusal> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return match value.parse::<u16>() {
            Ok(port) if port > 0 => Ok(port),
            _ => Err(Refusal::invalid(format!(
                "bad port {value:?}: give a number from 1 to 65535"
            ))),
        };
    }
    Err(Refusal::invalid(format!(
        "bad port {value:?}: give a number from 1 to 65535 (remex does not look service names up in /etc/services)"
    )))
}

/// `ConnectTimeout`, `ServerAliveInterval`: OpenSSH's `convtime` (`30`,
/// `30s`, `1m30s`, units s, m, h, d, w in either case), or `none`.
fn parse_time_or_none(value: &str) -> Result<Option<Duration>, Refusal> {
    if value == "none" {
        return Ok(None);
    }
    convtime(value).map(|secs| Some(Duration::from_secs(secs))).ok_or_else(|| {
        Refusal::invalid(format!(
            "invalid time {value:?}: give seconds, or a number with a unit (s, m, h, d, w) such as 30s or 1m30s, or `none`"
        ))
    })
}

/// OpenSSH's `convtime`: seconds, at most `i32::MAX`.
fn convtime(value: &str) -> Option<u64> {
    const MAX: u64 = i32::MAX as u64;
    if value.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut rest = value;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let (number, after) = rest.split_at(digits);
        let number: u64 = number.parse().ok().filter(|&n| n <= MAX)?;
        let mut units = after.chars();
        let multiplier = match units.next() {
            None => 1,
            Some('s' | 'S') => 1,
            Some('m' | 'M') => 60,
            Some('h' | 'H') => 3600,
            Some('d' | 'D') => 86_400,
            Some('w' | 'W') => 604_800,
            Some(_) => return None,
        };
        rest = units.as_str();
        total = total.checked_add(number.checked_mul(multiplier)?)?;
        if total > MAX {
            return None;
        }
    }
    Some(total)
}

/// `ServerAliveCountMax`: 0 to `i32::MAX`.
fn parse_count(value: &str) -> Result<u32, Refusal> {
    value
        .parse::<u32>()
        .ok()
        .filter(|&n| i32::try_from(n).is_ok() && value.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            Refusal::invalid(format!(
                "invalid count {value:?}: give a whole number, 0 or more"
            ))
        })
}

/// `AddressFamily`: `any`, `inet` or `inet6`, in any case.
fn parse_address_family(value: &str) -> Result<AddressFamily, Refusal> {
    match value.to_ascii_lowercase().as_str() {
        "any" => Ok(AddressFamily::Any),
        "inet" => Ok(AddressFamily::Inet),
        "inet6" => Ok(AddressFamily::Inet6),
        _ => Err(Refusal::invalid(format!(
            "unsupported value {value:?}: give any, inet or inet6"
        ))),
    }
}

/// `ProxyJump`: `none`, or comma-separated hops (`[user@]host[:port]` or
/// `ssh://[user@]host[:port]`), each checked as `ssh` checks them. A `#`
/// ends the value.
fn parse_jump(value: &str) -> Result<Vec<JumpHost>, Refusal> {
    let spec = value.split('#').next().unwrap_or_default().trim_end();
    if spec.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    spec.split(',')
        .map(|hop| {
            parse_hop(hop).ok_or_else(|| {
                Refusal::invalid(format!(
                    "invalid jump host {hop:?} in {value:?}: write [user@]host[:port] or ssh://[user@]host[:port], comma-separated, or none"
                ))
            })
        })
        .collect()
}

/// One `ProxyJump` hop, or `None` when `ssh` would refuse it.
fn parse_hop(hop: &str) -> Option<JumpHost> {
    let (user, host_port) = match hop.strip_prefix("ssh://") {
        // A URI: the user ends at the first `@`; a trailing `/` is allowed.
        Some(uri) => {
            let uri = uri.strip_suffix('/').unwrap_or(uri);
            match uri.split_once('@') {
                Some((user, rest)) => (Some(user), rest),
                None => (None, uri),
            }
        }
        // `user@host`: the user ends at the last `@`.
        None => match hop.rsplit_once('@') {
            Some((user, rest)) => (Some(user), rest),
            None => (None, hop),
        },
    };
    if user.is_some_and(str::is_empty) {
        return None;
    }
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() || host.contains('/') {
        return None;
    }
    let port = match port {
        None | Some("") => None,
        Some(port) => Some(parse_port(port).ok()?),
    };
    Some(JumpHost {
        user: user.map(str::to_owned),
        host: host.to_owned(),
        port,
    })
}
