//! Tokens and scopes: who may do what, on which hosts.
//!
//! A token is `rmx_` + 43 base62 characters (256 random bits) + 6 base62
//! characters of checksum (the first 32 bits of the SHA-256 of the random
//! part), so a typo or a truncated paste is told apart from a wrong token
//! without a database lookup. It is shown once, when made; the store keeps
//! only its SHA-256.
//!
//! A request is allowed only when its token is known, not expired, not
//! revoked, holds the operation's scope (`admin` holds every scope), and
//! every host the request selects is among the token's targets. Everything
//! else is denied.

use sha2::{Digest as _, Sha256};

use super::error::ApiError;
use super::store::TokenRecord;
use crate::run::Executor;
use crate::targets::Selection;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Scope {
    /// `POST /v1/runs` with a command.
    Exec,
    /// `POST /v1/runs` with a script.
    Script,
    /// Downloads.
    FilesRead,
    /// Uploads.
    FilesWrite,
    /// The key lifecycle.
    Keys,
    /// The inventory, checks and host-key trust.
    Hosts,
    /// Reading the audit log.
    AuditRead,
    /// Everything, and every token's jobs.
    Admin,
}

impl Scope {
    /// Every scope, in the order `--help` lists them.
    pub(crate) const ALL: [Scope; 8] = [
        Scope::Exec,
        Scope::Script,
        Scope::FilesRead,
        Scope::FilesWrite,
        Scope::Keys,
        Scope::Hosts,
        Scope::AuditRead,
        Scope::Admin,
    ];

    /// Its name in tokens and errors.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scope::Exec => "exec",
            Scope::Script => "script",
            Scope::FilesRead => "files:read",
            Scope::FilesWrite => "files:write",
            Scope::Keys => "keys",
            Scope::Hosts => "hosts",
            Scope::AuditRead => "audit:read",
            Scope::Admin => "admin",
        }
    }

    /// The scope named `name`.
    pub(crate) fn parse(name: &str) -> Result<Scope, String> {
        Scope::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown scope `{name}`; scopes are {}", names.join(", "))
            })
    }
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `bytes` as a big-endian number in base 62, `width` digits.
fn base62(bytes: &[u8], width: usize) -> String {
    let mut digits = bytes.to_vec();
    let mut out = Vec::with_capacity(width);
    for _ in 0..width {
        // Long division of `digits` by 62.
        let mut remainder = 0u32;
        for d in &mut digits {
            let value = remainder * 256 + u32::from(*d);
            *d = u8::try_from(value / 62).unwrap_or(0);
            remainder = value % 62;
        }
        out.push(BASE62.get(remainder as usize).copied().unwrap_or(b'0'));
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// The prefix of every token.
pub(crate) const PREFIX: &str = "rmx_";
const BODY: usize = 43;
const CHECK: usize = 6;

fn checksum(body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    base62(digest.get(..4).unwrap_or_default(), CHECK)
}

/// A new token: 256 random bits.
pub(crate) fn new_token() -> String {
    let random: [u8; 32] = rand::random();
    let body = base62(&random, BODY);
    format!("{PREFIX}{body}{}", checksum(&body))
}

/// A new secret for signing callbacks.
pub(crate) fn new_secret() -> String {
    let random: [u8; 32] = rand::random();
    format!("rmxcb_{}", base62(&random, BODY))
}

/// Hex SHA-256 of a token: what the store keeps.
pub(crate) fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `token` is shaped like a remex token with a valid checksum.
pub(crate) fn well_formed(token: &str) -> bool {
    let Some(rest) = token.strip_prefix(PREFIX) else {
        return false;
    };
    if rest.len() != BODY + CHECK || !rest.bytes().all(|b| BASE62.contains(&b)) {
        return false;
    }
    let (body, check) = rest.split_at(BODY);
    checksum(body) == check
}

/// The token a request came with, found in the store and allowed to act.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The token's record.
    pub token: TokenRecord,
}

impl Caller {
    /// Whether the token holds `scope`.
    pub(crate) fn has(&self, scope: Scope) -> bool {
        self.token
            .scopes
            .iter()
            .any(|s| s == scope.as_str() || s == Scope::Admin.as_str())
    }

    /// 403 unless the token holds `scope`.
    pub(crate) fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.has(scope) {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "token `{}` lacks the scope `{}` (it has: {})",
            self.token.name,
            scope.as_str(),
            self.token.scopes.join(", ")
        )))
    }

    /// The hosts `selector` selects, when every one of them is among the
    /// token's targets: 400 for a malformed selector, 404 for one that
    /// names a host or group the inventory lacks (or selects nothing), 403
    /// naming the hosts outside. The selection is what the job records and
    /// runs.
    pub(crate) fn reach(&self, executor: &Executor, selector: &str) -> Result<Selection, ApiError> {
        let selection = executor
            .select(selector)
            .map_err(|e| ApiError::targets("targets", &e))?;
        let outside = match self.allowed(executor) {
            Some(allowed) => selection.outside(&allowed),
            None => selection.hosts().iter().map(String::as_str).collect(),
        };
        if !outside.is_empty() {
            return Err(ApiError::forbidden(format!(
                "token `{}` may reach only `{}`; `{selector}` selects {} outside it",
                self.token.name,
                self.token.targets,
                outside.join(", ")
            )));
        }
        Ok(selection)
    }

    /// The hosts the token may reach now (none when its selector selects
    /// nothing in the inventory as it is).
    pub(crate) fn allowed(&self, executor: &Executor) -> Option<Selection> {
        executor.select(&self.token.targets).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_checked() {
        let token = new_token();
        assert!(token.starts_with("rmx_"), "{token}");
        assert_eq!(token.len(), 4 + BODY + CHECK);
        assert!(well_formed(&token));
        assert_ne!(new_token(), token);
        // One character off, or cut short: refused before any lookup.
        let mut typo = token.clone().into_bytes();
        let last = typo.len() - 10;
        typo[last] = if typo[last] == b'a' { b'b' } else { b'a' };
        assert!(!well_formed(&String::from_utf8(typo).unwrap_or_default()));
        assert!(!well_formed(&token[..token.len() - 1]));
        assert!(!well_formed("rmx_"));
        assert_eq!(hash(&token).len(), 64);
    }

    #[test]
    fn base62_is_big_endian() {
        assert_eq!(base62(&[0], 3), "000");
        assert_eq!(base62(&[61], 2), "0z");
        assert_eq!(base62(&[62], 2), "10");
        assert_eq!(base62(&[1, 0], 2), "48"); // 256 = 4·62 + 8
    }

    #[test]
    fn scopes_parse_and_admin_holds_them_all() {
        assert_eq!(Scope::parse("files:read"), Ok(Scope::FilesRead));
        assert!(Scope::parse("root").unwrap_err().contains("exec, script"));
        let caller = |scopes: &[&str]| Caller {
            token: TokenRecord {
                name: "t".into(),
                hash: String::new(),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                targets: "all".into(),
                created_ms: 0,
                expires_ms: None,
                revoked_ms: None,
                callback_secret: String::new(),
            },
        };
        assert!(caller(&["exec"]).require(Scope::Exec).is_ok());
        let denied = caller(&["exec"]).require(Scope::Keys).unwrap_err();
        assert_eq!(denied.status().as_u16(), 403);
        assert!(denied.message.contains("`keys`"), "{}", denied.message);
        assert!(caller(&["admin"]).require(Scope::Keys).is_ok());
    }
}
