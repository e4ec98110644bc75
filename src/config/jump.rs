//! Jump hosts (`vms.NAME.jump`, `--jump`): the text of a chain, and the
//! hops it names.
//!
//! A chain is comma-separated, outermost hop first, as OpenSSH's
//! `ProxyJump`. Each hop is a VM of the inventory (reached with its own
//! user, key, port and host key) or `[user@]host[:port]` (`[IPv6]:port`)
//! for a host outside it (remex's default user and key). The first hop is
//! reached the way it is reached on its own (so a VM hop with a `jump` of
//! its own goes through that first); each later hop through the one before.
//!
//! **Invariant:** a validated config has no cycle: no VM is reached
//! through itself.

use std::collections::BTreeSet;

use super::{Config, Vm};

/// One hop of a jump chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hop {
    /// A VM of the inventory, by name.
    Vm(String),
    /// A host outside the inventory.
    Address {
        /// The login user; `None`: the default user.
        user: Option<String>,
        /// Name or address (an IPv6 address without brackets).
        host: String,
        /// TCP port (default 22).
        port: u16,
        /// The hop as written, its name in messages.
        text: String,
    },
}

impl Hop {
    /// The hop's name in messages: the VM name, or the text as written.
    pub fn name(&self) -> &str {
        match self {
            Hop::Vm(name) => name,
            Hop::Address { text, .. } => text,
        }
    }
}

/// Parses a chain, naming each VM hop found in `vms`.
///
/// # Errors
///
/// Why a part is not a hop: empty, or not `[user@]host[:port]`.
pub fn parse_chain(text: &str, is_vm: &dyn Fn(&str) -> bool) -> Result<Vec<Hop>, String> {
    text.split(',')
        .map(|part| parse_hop(part.trim(), is_vm))
        .collect()
}

fn parse_hop(part: &str, is_vm: &dyn Fn(&str) -> bool) -> Result<Hop, String> {
    if part.is_empty() {
        return Err("a hop is empty (two commas, or a comma at an end)".to_owned());
    }
    if is_vm(part) {
        return Ok(Hop::Vm(part.to_owned()));
    }
    let (user, rest) = match part.split_once('@') {
        Some((user, rest)) if !user.is_empty() => (Some(user.to_owned()), rest),
        Some(_) => return Err(format!("`{part}`: the user before `@` is empty")),
        None => (None, part),
    };
    let (host, port) = parse_host_port(rest).ok_or_else(|| {
        format!(
            "`{part}` is neither a VM in `vms` nor [user@]host[:port] (a name, an IPv4 \
             address, or [IPv6]:port)"
        )
    })?;
    Ok(Hop::Address {
        user,
        host,
        port,
        text: part.to_owned(),
    })
}

/// `host[:port]`: a name, an IPv4 address, or an IPv6 address (in
/// brackets when a port follows; bare without one), and the port (default
/// 22, never 0). `None` when it is none of these.
pub fn parse_host_port(text: &str) -> Option<(String, u16)> {
    let port_of = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0);
    let (host, port) = if let Some(inner) = text.strip_prefix('[') {
        let (host, after) = inner.split_once(']')?;
        match after.strip_prefix(':') {
            Some(port) => (host, port_of(port)?),
            None if after.is_empty() => (host, 22),
            None => return None,
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) if !port.contains(':') => (host, port_of(port)?),
            // Several colons: a bare IPv6 address, no port.
            _ => (text, 22),
        }
    };
    let name_like = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
    (!host.is_empty() && host.chars().all(name_like)).then(|| (host.to_owned(), port))
}

/// `host:port` as people write it: an IPv6 address in brackets. The
/// inverse of [`parse_host_port`] for a port given.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl Config {
    /// The jump chain of `vm` (empty without `jump`).
    ///
    /// # Errors
    ///
    /// Why its `jump` does not parse.
    pub fn jump_chain(&self, vm: &Vm) -> Result<Vec<Hop>, String> {
        match self.jump_of(vm).map(str::trim) {
            None | Some("") => Ok(Vec::new()),
            Some(text) => parse_chain(text, &|name| self.vms.contains_key(name)),
        }
    }

    /// The jump text that applies to `vm`: its own `jump`, else that of the
    /// first of its groups that has one and does not name `vm` as a hop (a
    /// group's bastion may be in the group).
    fn jump_of<'a>(&'a self, vm: &'a Vm) -> Option<&'a str> {
        if let Some(own) = vm.jump.as_deref() {
            return Some(own);
        }
        let is_vm = |name: &str| self.vms.contains_key(name);
        let is_this_vm = |hop: &Hop| match hop {
            Hop::Vm(name) => self.vms.get(name).is_some_and(|v| std::ptr::eq(v, vm)),
            Hop::Address { .. } => false,
        };
        vm.groups
            .iter()
            .filter_map(|group| self.groups.get(group)?.jump.as_deref())
            .find(|text| parse_chain(text, &is_vm).is_ok_and(|hops| !hops.iter().any(is_this_vm)))
    }

    /// Whether `vm` is reached through jump hosts (its own or a group's).
    pub(crate) fn has_jump(&self, vm: &Vm) -> bool {
        self.jump_of(vm).is_some()
    }

    /// Why VM `name`'s jumps do not work, if they do not: a hop that does
    /// not parse, or a VM reached through itself.
    pub(crate) fn jump_problem(&self, name: &str) -> Option<String> {
        let mut seen = BTreeSet::new();
        self.walk(name, &mut seen).err()
    }

    /// Follows `name`'s chain: the first hop's own chain, recursively.
    fn walk<'a>(&'a self, name: &'a str, seen: &mut BTreeSet<&'a str>) -> Result<(), String> {
        let Some(vm) = self.vms.get(name) else {
            return Ok(());
        };
        if !seen.insert(name) {
            return Err(format!(
                "`{name}` would be reached through itself (a cycle of `jump`s)"
            ));
        }
        let chain = self.jump_chain(vm)?;
        for hop in &chain {
            if let Hop::Vm(hop) = hop
                && hop == name
            {
                return Err(format!("`{name}` cannot be its own jump host"));
            }
        }
        if let Some(Hop::Vm(first)) = chain.first() {
            let first = self
                .vms
                .get_key_value(first.as_str())
                .map(|(k, _)| k.as_str());
            if let Some(first) = first {
                self.walk(first, seen)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Hop>, String> {
        parse_chain(text, &|name| name == "bastion")
    }

    #[test]
    fn hops_are_vms_or_addresses_with_user_and_port() {
        assert_eq!(parse("bastion"), Ok(vec![Hop::Vm("bastion".into())]));
        let hops =
            parse("ops@gw.example.net:2222, bastion,[::1]:2200,10.0.0.1").unwrap_or_default();
        assert_eq!(
            hops,
            vec![
                Hop::Address {
                    user: Some("ops".into()),
                    host: "gw.example.net".into(),
                    port: 2222,
                    text: "ops@gw.example.net:2222".into()
                },
                Hop::Vm("bastion".into()),
                Hop::Address {
                    user: None,
                    host: "::1".into(),
                    port: 2200,
                    text: "[::1]:2200".into()
                },
                Hop::Address {
                    user: None,
                    host: "10.0.0.1".into(),
                    port: 22,
                    text: "10.0.0.1".into()
                },
            ]
        );
    }

    #[test]
    fn bad_hops_say_what_is_wrong() {
        for (text, says) in [
            ("bastion,", "empty"),
            ("@gw", "user before `@` is empty"),
            ("gw:0", "neither a VM"),
            ("gw:http", "neither a VM"),
            ("g w", "neither a VM"),
            ("[::1", "neither a VM"),
        ] {
            let error = parse(text).err().unwrap_or_default();
            assert!(error.contains(says), "{text}: {error}");
        }
    }
}
