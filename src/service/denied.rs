//! [`Denials`]: what a request without a valid token may cost.
//!
//! - **A rate per client address** (`service.limits.unauthenticated_per_minute`,
//!   governor's GCRA keyed by [`client_key`]: IPv4 address or IPv6 /64):
//!   requests with no token, a malformed, unknown, revoked or expired one,
//!   and to `/v1/openapi.json`, are counted against their address; over
//!   the rate they are answered 429 — before the store is asked about a
//!   malformed or missing token, after it for a well-formed one (a valid
//!   token is never counted against its address, so a flood from one
//!   address does not lock out the workflows calling from it). A refused
//!   request costs the limiter nothing: GCRA counts only what it lets by.
//! - **Coalesced audit records**: a denied request is still audited, but
//!   per client address, reason (and token name, when known) only the
//!   first of each `service.limits.denied_audit_interval` is recorded at
//!   once; the others are counted, and one record with their `count` is
//!   written when the interval ends ([`Denials::due`], from the service's
//!   sweeper, and at shutdown). So a flood adds at most two records per
//!   address and reason per interval, and at most [`MAX_WINDOWS`] windows
//!   are open: past that, new addresses share one window per reason (its
//!   record has no `address`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::connections::client_key;
use super::requests::Entry;

/// The most coalescing windows open at once.
pub(crate) const MAX_WINDOWS: usize = 4096;

/// Why the guard denied a request before any handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Reason {
    /// No `Authorization` header.
    NoToken,
    /// Not `Bearer rmx_…`, or a token whose checksum does not match.
    MalformedToken,
    /// Well-formed, but no such token.
    UnknownToken,
    /// A revoked token.
    RevokedToken,
    /// An expired token.
    ExpiredToken,
    /// Over `unauthenticated_per_minute` for its address.
    ClientRate,
    /// A valid token over its `requests_per_minute`.
    TokenRate,
    /// The service is shutting down.
    Closing,
}

impl Reason {
    /// Its name in audit records (`error`) and metrics.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::NoToken => "no_token",
            Reason::MalformedToken => "malformed_token",
            Reason::UnknownToken => "unknown_token",
            Reason::RevokedToken => "revoked_token",
            Reason::ExpiredToken => "expired_token",
            Reason::ClientRate => "client_rate",
            Reason::TokenRate => "token_rate",
            Reason::Closing => "closing",
        }
    }
}

/// What one window of denied requests is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    /// The client (`None`: the shared window of clients past
    /// [`MAX_WINDOWS`]).
    client: Option<IpAddr>,
    reason: &'static str,
    /// The token's name, when the request named a known token.
    token: Option<String>,
}

/// Denied requests of one key within one interval, after the first.
#[derive(Debug)]
struct Window {
    /// When its first request came.
    opened: Instant,
    /// The first request after the first: the record of the rest.
    rest: Option<Entry>,
}

/// The rate of unauthenticated requests per address, and the coalescing of
/// denied requests' records.
#[derive(Debug)]
pub(crate) struct Denials {
    /// Per client key.
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// Open windows.
    windows: Mutex<HashMap<Key, Window>>,
    /// `denied_audit_interval`.
    interval: Duration,
}

impl Denials {
    /// `per_minute` requests per client without a valid token; records
    /// coalesced over `interval`.
    pub(crate) fn new(per_minute: u32, interval: Duration) -> Denials {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        Denials {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            windows: Mutex::new(HashMap::new()),
            interval,
        }
    }

    /// Whether a request without a valid token from `ip` is within its
    /// address's rate (and counts it when it is).
    pub(crate) fn allow(&self, ip: Option<IpAddr>) -> bool {
        let key = ip.map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), client_key);
        self.limiter.check_key(&key).is_ok()
    }

    /// Notes the denied request `entry` (its `reason` set); returns
    /// the records to write now: its own when it is the first of its
    /// window, and the record of an earlier window that has ended.
    pub(crate) fn note(&self, entry: Entry, now: Instant) -> Vec<Entry> {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let mut key = Key {
            client: entry.client.map(client_key),
            reason: entry.reason.unwrap_or_default(),
            token: entry.token.clone(),
        };
        if !windows.contains_key(&key) && windows.len() >= MAX_WINDOWS {
            key.client = None;
        }
        let mut write = Vec::new();
        if let Some(window) = windows.get_mut(&key) {
            if now.duration_since(window.opened) < self.interval {
                match &mut window.rest {
                    Some(rest) => rest.count = Some(rest.count.unwrap_or(1) + 1),
                    None => {
                        window.rest = Some(Entry {
                            count: Some(1),
                            client: key.client,
                            ..entry
                        });
                    }
                }
                return write;
            }
            if let Some(rest) = windows.remove(&key).and_then(|w| w.rest) {
                write.push(rest);
            }
        }
        windows.insert(
            key.clone(),
            Window {
                opened: now,
                rest: None,
            },
        );
        write.push(Entry {
            count: Some(1),
            client: key.client,
            ..entry
        });
        write
    }

    /// Ends the windows whose interval is over (`all`: every window, at
    /// shutdown): the records of their rest. Also forgets the addresses
    /// the limiter no longer needs.
    pub(crate) fn due(&self, now: Instant, all: bool) -> Vec<Entry> {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let mut write = Vec::new();
        windows.retain(|_, window| {
            let over = all || now.duration_since(window.opened) >= self.interval;
            if over && let Some(rest) = window.rest.take() {
                write.push(rest);
            }
            !over
        });
        drop(windows);
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        write
    }

    /// How often [`Denials::due`] should run.
    pub(crate) fn tick(&self) -> Duration {
        (self.interval / 4).max(Duration::from_millis(250))
    }

    /// Windows open, and addresses the limiter keeps.
    #[cfg(test)]
    fn sizes(&self) -> (usize, usize) {
        let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        (windows.len(), self.limiter.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn denied(ip: &str, reason: Reason, id: &str) -> Entry {
        Entry {
            id: id.to_owned(),
            client_request: None,
            token: None,
            action: format!("GET /{id}"),
            status: StatusCode::UNAUTHORIZED,
            client: ip.parse().ok(),
            reason: Some(reason.as_str()),
            count: None,
        }
    }

    #[test]
    fn a_flood_from_one_address_is_two_records_per_interval() {
        let denials = Denials::new(60, Duration::from_secs(60));
        let t0 = Instant::now();
        let mut written = Vec::new();
        for i in 0..10_000 {
            written.extend(denials.note(
                denied("10.0.0.1", Reason::NoToken, &format!("r{i}")),
                t0 + Duration::from_millis(i),
            ));
        }
        assert_eq!(written.len(), 1, "only the first at once");
        assert_eq!(written[0].id, "r0");
        assert_eq!(written[0].count, Some(1));
        assert!(denials.due(t0 + Duration::from_secs(30), false).is_empty());
        let rest = denials.due(t0 + Duration::from_secs(61), false);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].id, "r1", "the first of the rest stands for them");
        assert_eq!(rest[0].count, Some(9_999));
        // Every request is counted exactly once.
        let total: u64 = written.iter().chain(&rest).filter_map(|e| e.count).sum();
        assert_eq!(total, 10_000);
        assert_eq!(denials.sizes().0, 0, "the window is gone");
    }

    #[test]
    fn addresses_reasons_and_tokens_have_windows_of_their_own() {
        let denials = Denials::new(60, Duration::from_secs(60));
        let now = Instant::now();
        let mut first = 0;
        for (ip, reason, token) in [
            ("10.0.0.1", Reason::NoToken, None),
            ("10.0.0.2", Reason::NoToken, None),
            ("10.0.0.1", Reason::ClientRate, None),
            ("10.0.0.1", Reason::RevokedToken, Some("a")),
            ("10.0.0.1", Reason::RevokedToken, Some("b")),
            // The same /64: one client.
            ("2001:db8::1", Reason::NoToken, None),
            ("2001:db8::2", Reason::NoToken, None),
        ] {
            let mut entry = denied(ip, reason, "r");
            entry.token = token.map(str::to_owned);
            first += denials.note(entry, now).len();
        }
        assert_eq!(first, 6);
    }

    #[test]
    fn a_window_that_ended_is_written_when_its_key_comes_back() {
        let denials = Denials::new(60, Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(
            denials
                .note(denied("10.0.0.1", Reason::NoToken, "a"), t0)
                .len(),
            1
        );
        assert!(
            denials
                .note(denied("10.0.0.1", Reason::NoToken, "b"), t0)
                .is_empty()
        );
        let later = denials.note(
            denied("10.0.0.1", Reason::NoToken, "c"),
            t0 + Duration::from_secs(60),
        );
        let ids: Vec<(&str, Option<u64>)> =
            later.iter().map(|e| (e.id.as_str(), e.count)).collect();
        assert_eq!(ids, [("b", Some(1)), ("c", Some(1))]);
    }

    #[test]
    fn many_addresses_share_one_window_past_the_cap() {
        let denials = Denials::new(60, Duration::from_secs(60));
        let now = Instant::now();
        let mut written = 0;
        for i in 0..(MAX_WINDOWS + 5000) {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000_u32 + i as u32).to_string();
            written += denials.note(denied(&ip, Reason::NoToken, "r"), now).len();
        }
        assert_eq!(denials.sizes().0, MAX_WINDOWS + 1);
        assert_eq!(written, MAX_WINDOWS + 1);
        let rest = denials.due(now, true);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].client, None);
        assert_eq!(rest[0].count, Some(4999));
    }

    #[test]
    fn the_rate_is_per_address_and_forgotten_when_idle() {
        let denials = Denials::new(5, Duration::from_secs(60));
        let a = "10.0.0.1".parse().ok();
        let allowed = (0..50).filter(|_| denials.allow(a)).count();
        assert_eq!(allowed, 5, "a burst of the per-minute rate, then 429");
        assert!(denials.allow("10.0.0.2".parse().ok()), "another address");
        assert!(
            denials.allow("2001:db8::1".parse().ok())
                && !(0..10).all(|_| denials.allow("2001:db8::2".parse().ok())),
            "one /64 is one client"
        );
    }
}
