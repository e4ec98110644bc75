//! [`Policy`]: where a callback may go — the receivers the operator names
//! in `service.callbacks.allow` — and [`Resolver`], which resolves a
//! receiver's name once, keeps only the addresses remex calls back to, and
//! hands exactly those to the connection (so a name cannot point somewhere
//! else between the check and the connection).
//!
//! An entry is a URL prefix (`http://127.0.0.1:5678/webhook/`: the same
//! scheme, host and port, and a path at or below this one, `/` by `/`) or
//! `host:port` (any path, `http` or `https`). URLs are compared as the HTTP
//! client parses them (WHATWG: `HTTP://LOCALHOST:80/a/../b` is
//! `http://localhost/b`, `http://2130706433/` is `http://127.0.0.1/`), so a
//! spelling cannot sneak past an entry. Whatever the entries say, remex
//! never calls back to an unspecified, link-local (`169.254.0.0/16`, where
//! cloud metadata services live; `fe80::/10`), multicast or broadcast
//! address, nor to a loopback address that a name other than `localhost`
//! resolves to; a URL with a user or password is refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;

/// The receivers callbacks may go to.
#[derive(Debug, Default)]
pub(crate) struct Policy {
    /// `service.callbacks.allow`, parsed.
    allowed: Vec<Allowed>,
}

/// One entry of `service.callbacks.allow`.
#[derive(Debug)]
struct Allowed {
    /// `http` or `https`; `None` for a `host:port` entry (either).
    scheme: Option<String>,
    /// The host, as the client will dial it.
    host: Host,
    /// The port (the scheme's default when the entry names none).
    port: u16,
    /// The path a callback URL's path must be at or below; `None` for a
    /// `host:port` entry (any path).
    path: Option<String>,
}

/// A host of a URL: an address, or a name (lower case, as parsed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    /// An IP address, dialed as written.
    Ip(IpAddr),
    /// A name, resolved by [`Resolver`].
    Name(String),
}

/// Where a callback goes: its URL, once the policy allowed it.
#[derive(Debug, Clone)]
pub(crate) struct Receiver {
    /// The URL to POST to.
    pub url: Url,
}

impl Policy {
    /// The policy of `service.callbacks.allow`.
    ///
    /// # Errors
    ///
    /// An entry that is neither a URL prefix nor `host:port`, or names an
    /// address remex never calls back to; the message names the entry
    /// (`service.callbacks.allow[1]`).
    pub(crate) fn new(allow: &[String]) -> Result<Policy, String> {
        let allowed = allow
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                Allowed::parse(entry)
                    .map_err(|why| format!("service.callbacks.allow[{i}]: `{entry}`: {why}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Policy { allowed })
    }

    /// Whether `url` may receive callbacks: the message of a refusal says
    /// why (without repeating the URL), for the 400 that names
    /// `callback_url`.
    pub(crate) fn check(&self, url: &str) -> Result<Receiver, String> {
        if self.allowed.is_empty() {
            return Err(
                "callbacks are off: `service.callbacks.allow` names no receiver. \
                 The operator allows one in the config, e.g. for n8n on this machine \
                 `service: { callbacks: { allow: [\"http://127.0.0.1:5678/webhook\"] } }`"
                    .to_owned(),
            );
        }
        let url = Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("the callback URL must start with http:// or https://".to_owned());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("a callback URL may not carry a user or password".to_owned());
        }
        let (host, port) = host_port(&url).ok_or("the callback URL names no host")?;
        if let Host::Ip(ip) = &host
            && let Some(why) = never(*ip)
        {
            return Err(format!("remex never calls back to {why} addresses"));
        }
        if self.allowed.iter().any(|a| a.admits(&url, &host, port)) {
            Ok(Receiver { url })
        } else {
            Err(
                "no entry of `service.callbacks.allow` names this scheme, host, port \
                 and path; the operator adds the receiver there"
                    .to_owned(),
            )
        }
    }
}

impl Allowed {
    /// An entry: `scheme://host[:port][/path]` or `host:port`.
    fn parse(entry: &str) -> Result<Allowed, String> {
        let prefix = entry.contains("://");
        let url = if prefix {
            Url::parse(entry)
        } else {
            Url::parse(&format!("http://{entry}"))
        }
        .map_err(|e| format!("not a URL prefix or host:port ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("a receiver is http:// or https://".to_owned());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("remove the user and password".to_owned());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("a prefix ends before any `?` or `#`".to_owned());
        }
        let (host, port) = host_port(&url).ok_or("it names no host")?;
        if let Host::Ip(ip) = &host
            && let Some(why) = never(*ip)
        {
            return Err(format!("remex never calls back to {why} addresses"));
        }
        if prefix {
            return Ok(Allowed {
                scheme: Some(url.scheme().to_owned()),
                host,
                port,
                path: Some(url.path().to_owned()),
            });
        }
        if url.port().is_none() || entry.contains('/') {
            return Err(
                "write a URL prefix (`http://host:port/path`) or `host:port` (with the port)"
                    .to_owned(),
            );
        }
        Ok(Allowed {
            scheme: None,
            host,
            port,
            path: None,
        })
    }

    /// Whether the entry admits `url` (whose host and port are given).
    fn admits(&self, url: &Url, host: &Host, port: u16) -> bool {
        let scheme = self.scheme.as_deref().is_none_or(|s| s == url.scheme());
        let path = self
            .path
            .as_deref()
            .is_none_or(|prefix| path_within(url.path(), prefix));
        scheme && self.host == *host && self.port == port && path
    }
}

/// Whether `path` is `prefix` or below it: `/webhook` admits `/webhook`
/// and `/webhook/x`, not `/webhookx`; `/webhook/` admits what starts with
/// it.
fn path_within(path: &str, prefix: &str) -> bool {
    if prefix.ends_with('/') {
        return path.starts_with(prefix);
    }
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// A URL's host and port (the scheme's default when it names none).
pub(crate) fn host_port(url: &Url) -> Option<(Host, u16)> {
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => Host::Ip(IpAddr::V6(v6.parse().ok()?)),
        None => match host.parse::<Ipv4Addr>() {
            Ok(v4) => Host::Ip(IpAddr::V4(v4)),
            Err(_) => Host::Name(host.to_ascii_lowercase()),
        },
    };
    Some((host, port))
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`) or NAT64
/// (`64:ff9b::a.b.c.d`) IPv6 address, else the address itself: the class
/// of an address is that of where it leads.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let [a, b, c, d, e, f, g, h] = v6.segments();
            if [a, b, c, d, e, f] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [g1, g2] = g.to_be_bytes();
                let [h1, h2] = h.to_be_bytes();
                return IpAddr::V4(Ipv4Addr::new(g1, g2, h1, h2));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// Why remex never calls back to `ip`, when it never does: the class.
fn never(ip: IpAddr) -> Option<&'static str> {
    match unmapped(ip) {
        IpAddr::V4(v4) => {
            if v4.octets()[0] == 0 {
                Some("unspecified (0.0.0.0/8)")
            } else if v4.is_link_local() {
                Some("link-local (169.254.0.0/16, where cloud metadata services live)")
            } else if v4.is_multicast() {
                Some("multicast")
            } else if v4.is_broadcast() {
                Some("broadcast")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6.is_unspecified() {
                Some("unspecified (::)")
            } else if v6.is_unicast_link_local() {
                Some("link-local (fe80::/10)")
            } else if v6.is_multicast() {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

/// Whether a callback to `name` may connect to `ip`, one of the addresses
/// `name` resolved to: never to the classes of [`never`], and to a
/// loopback address only when the name is `localhost` (a public name that
/// suddenly resolves to 127.0.0.1 is a rebinding attack, not a receiver).
fn may_connect(name: &str, ip: IpAddr) -> bool {
    let ip = unmapped(ip);
    if never(ip).is_some() {
        return false;
    }
    let loopback = match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6 == Ipv6Addr::LOCALHOST,
    };
    !loopback || name == "localhost" || name.ends_with(".localhost")
}

/// A receiver's name resolved to no address remex calls back to.
#[derive(Debug, thiserror::Error)]
#[error("the receiver's address is not one remex calls back to")]
pub(crate) struct Refused;

/// The callbacks' resolver: the system's (`getaddrinfo`), then only the
/// addresses [`may_connect`] admits; the client connects to what it
/// returns, and to nothing else.
#[derive(Debug, Default)]
pub(crate) struct Resolver;

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_ascii_lowercase();
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let usable: Vec<SocketAddr> = found.filter(|a| may_connect(&name, a.ip())).collect();
            if usable.is_empty() {
                return Err(Box::new(Refused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(usable.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str]) -> Policy {
        Policy::new(&allow.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        let why = Policy::default()
            .check("http://127.0.0.1:5678/webhook/x")
            .unwrap_err();
        assert!(why.contains("service.callbacks.allow"), "{why}");
    }

    #[test]
    fn a_prefix_admits_its_scheme_host_port_and_paths_below() {
        let p = policy(&["http://127.0.0.1:5678/webhook"]);
        for ok in [
            "http://127.0.0.1:5678/webhook",
            "http://127.0.0.1:5678/webhook/abc?x=1",
            "HTTP://127.0.0.1:5678/webhook/abc",
            // The same address, spelled as a number.
            "http://2130706433:5678/webhook/a",
            "http://127.0.0.1:5678/other/../webhook/a",
        ] {
            assert!(p.check(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://127.0.0.1:5678/webhookx",
            "http://127.0.0.1:5678/",
            "http://127.0.0.1:5678/webhook/../admin",
            "http://127.0.0.1:5678/webhook/%2e%2e/admin",
            "https://127.0.0.1:5678/webhook/a",
            "http://127.0.0.1:56789/webhook/a",
            "http://127.0.0.1:22/webhook/a",
            "http://127.0.0.1/webhook/a",
            "http://localhost:5678/webhook/a",
            "http://127.0.0.2:5678/webhook/a",
            "http://[::1]:5678/webhook/a",
            "http://127.0.0.1:5678@evil.example/webhook/a",
            "http://user:pw@127.0.0.1:5678/webhook/a",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:169.254.169.254]/",
            "file:///etc/passwd",
            "gopher://127.0.0.1:5678/webhook",
            "not a url",
        ] {
            assert!(p.check(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn a_host_port_entry_admits_any_path_on_that_host_and_port() {
        let p = policy(&["n8n.internal:443", "[::1]:8080"]);
        assert!(p.check("https://n8n.internal/webhook/x").is_ok());
        assert!(p.check("http://N8N.internal:443/x").is_ok());
        assert!(p.check("http://[::1]:8080/a").is_ok());
        assert!(p.check("https://n8n.internal:8443/x").is_err());
        assert!(p.check("https://n8n.internal.evil.example/x").is_err());
        assert!(p.check("http://127.0.0.1:8080/a").is_err());
    }

    #[test]
    fn entries_are_checked_naming_the_one_at_fault() {
        for bad in [
            "n8n.internal",
            "http://169.254.169.254/",
            "0.0.0.0:80",
            "ftp://x:21/",
            "http://u:p@x/",
            "http://x/?a=b",
            "x:80/path",
        ] {
            let why = Policy::new(&["localhost:1".to_owned(), bad.to_owned()]).unwrap_err();
            assert!(
                why.starts_with("service.callbacks.allow[1]"),
                "{bad}: {why}"
            );
        }
    }

    #[test]
    fn resolved_addresses_of_refused_classes_are_never_connected_to() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(may_connect("n8n.internal", ip("10.0.0.5")));
        assert!(may_connect("n8n.internal", ip("203.0.113.7")));
        assert!(may_connect("localhost", ip("127.0.0.1")));
        assert!(may_connect("localhost", ip("::1")));
        for (name, bad) in [
            ("n8n.internal", "127.0.0.1"),
            ("n8n.internal", "::1"),
            ("n8n.internal", "::ffff:127.0.0.1"),
            ("n8n.internal", "169.254.169.254"),
            ("localhost", "169.254.169.254"),
            ("n8n.internal", "::ffff:169.254.169.254"),
            ("n8n.internal", "64:ff9b::a9fe:a9fe"),
            ("n8n.internal", "fe80::1"),
            ("n8n.internal", "0.0.0.0"),
            ("n8n.internal", "::"),
            ("n8n.internal", "224.0.0.1"),
            ("n8n.internal", "255.255.255.255"),
        ] {
            assert!(!may_connect(name, ip(bad)), "{name} -> {bad}");
        }
    }
}
