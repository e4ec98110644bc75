//! The hash chain: how a record's `hash` is computed and found again.
//!
//! A record's line is its canonical JSON (see [`Record::canonical`]) with
//! `,"hash":"<64 hex>"` inserted before the closing `}`. So the canonical
//! bytes are recovered from a line without re-serializing anything: drop
//! that last member and put the `}` back ([`split`]). Verification hashes
//! exactly the bytes on disk, whatever a future serializer would do.
//!
//! `hash` is SHA-256 of the canonical bytes, or HMAC-SHA256 keyed with the
//! contents of `audit.hmac_key_path` ([`Sealer`]).
//!
//! [`Record::canonical`]: super::record::Record

use std::fmt;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::error::AuditError;

/// `prev` of the first record of a chain.
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Length of a hash in hex.
const HASH_HEX_LEN: usize = 64;

/// What goes before the hash in a line's last member.
const HASH_PREFIX: &[u8] = b",\"hash\":\"";

/// Length of `,"hash":"<64 hex>"}`.
const SUFFIX_LEN: usize = HASH_PREFIX.len() + HASH_HEX_LEN + 2;

/// The shortest HMAC key accepted, in bytes.
const MIN_KEY_LEN: usize = 16;

/// Domain separation for the head file's MAC, so a record hash can never be
/// passed off as a head MAC or the other way round.
const HEAD_MAC_CONTEXT: &[u8] = b"remex audit head v1\0";

/// Computes hashes: plain SHA-256, or HMAC-SHA256 when a key is set.
#[derive(Clone)]
pub(crate) struct Sealer {
    /// The HMAC key, when `audit.hmac_key_path` is set.
    key: Option<Vec<u8>>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("Sealer")
            .field("keyed", &self.key.is_some())
            .finish()
    }
}

impl Sealer {
    /// Plain SHA-256.
    pub(crate) fn plain() -> Sealer {
        Sealer { key: None }
    }

    /// HMAC-SHA256 with `key`.
    #[cfg(test)]
    pub(crate) fn keyed(key: &[u8]) -> Sealer {
        Sealer {
            key: Some(key.to_vec()),
        }
    }

    /// Reads the key from `path` (when given): at least 16 bytes once
    /// trailing whitespace is dropped (so `openssl rand -hex 32 > key`
    /// works), and not readable by group or others.
    pub(crate) fn load(path: Option<&Path>) -> Result<Sealer, AuditError> {
        let Some(path) = path else {
            return Ok(Sealer::plain());
        };
        let read_error = |source| AuditError::KeyRead {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_error)?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(AuditError::KeyUnfit {
                path: path.to_path_buf(),
                reason: format!(
                    "its permissions {mode:04o} let others read it; run `chmod 600 {}`",
                    path.display()
                ),
            });
        }
        let mut key = std::fs::read(path).map_err(read_error)?;
        while key.last().is_some_and(u8::is_ascii_whitespace) {
            key.pop();
        }
        if key.len() < MIN_KEY_LEN {
            return Err(AuditError::KeyUnfit {
                path: path.to_path_buf(),
                reason: format!(
                    "it holds {} bytes, fewer than {MIN_KEY_LEN}; make one with `openssl rand -hex 32 > {}`",
                    key.len(),
                    path.display()
                ),
            });
        }
        Ok(Sealer { key: Some(key) })
    }

    /// Whether hashes are HMACs.
    pub(crate) fn is_keyed(&self) -> bool {
        self.key.is_some()
    }

    /// The hash of canonical record bytes, lower-case hex.
    pub(crate) fn seal(&self, canonical: &[u8]) -> String {
        self.digest(&[canonical])
    }

    /// The head file's MAC over (seq, hash), or `None` without a key.
    pub(crate) fn head_mac(&self, seq: u64, hash: &str) -> Option<String> {
        self.key.as_ref()?;
        let seq = seq.to_string();
        Some(self.digest(&[HEAD_MAC_CONTEXT, seq.as_bytes(), b"\0", hash.as_bytes()]))
    }

    fn digest(&self, parts: &[&[u8]]) -> String {
        match &self.key {
            Some(key) => match Hmac::<Sha256>::new_from_slice(key) {
                Ok(mut mac) => {
                    for part in parts {
                        mac.update(part);
                    }
                    hex::encode(mac.finalize().into_bytes())
                }
                // HMAC takes keys of any length; this cannot happen, and a
                // hash that matches nothing is the safe answer if it did.
                Err(_) => String::new(),
            },
            None => {
                let mut sha = Sha256::new();
                for part in parts {
                    sha.update(part);
                }
                hex::encode(sha.finalize())
            }
        }
    }
}

/// Whether `text` is a hash as written in the log: 64 lower-case hex digits.
pub(crate) fn is_hash(text: &str) -> bool {
    text.len() == HASH_HEX_LEN && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The line for canonical bytes and their hash, with its `\n`.
pub(crate) fn splice(canonical: &[u8], hash: &str) -> Vec<u8> {
    let body = canonical.strip_suffix(b"}").unwrap_or(canonical);
    let mut line = Vec::with_capacity(body.len() + SUFFIX_LEN + 1);
    line.extend_from_slice(body);
    line.extend_from_slice(HASH_PREFIX);
    line.extend_from_slice(hash.as_bytes());
    line.extend_from_slice(b"\"}\n");
    line
}

/// Splits a line (without its `\n`) into its canonical bytes and its
/// `hash`, or `None` when it does not end with a well-formed `hash` member.
pub(crate) fn split(line: &[u8]) -> Option<(Vec<u8>, &str)> {
    let cut = line.len().checked_sub(SUFFIX_LEN)?;
    let (body, suffix) = line.split_at(cut);
    let rest = suffix.strip_prefix(HASH_PREFIX)?;
    let (hash, close) = rest.split_at(HASH_HEX_LEN);
    if close != b"\"}" || !body.starts_with(b"{") || body.len() < 2 {
        return None;
    }
    let hash = std::str::from_utf8(hash).ok().filter(|h| is_hash(h))?;
    let mut canonical = Vec::with_capacity(body.len() + 1);
    canonical.extend_from_slice(body);
    canonical.push(b'}');
    Some((canonical, hash))
}

/// The members of a record that link it into the chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub(crate) struct Link {
    /// Schema version.
    pub(crate) v: u32,
    /// Position in the chain.
    pub(crate) seq: u64,
    /// Hash of the record before.
    pub(crate) prev: String,
}

/// Why a line is not a sound record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LineProblem {
    /// It does not end with a well-formed `hash` member.
    NoHash,
    /// Its hash is not the hash of its content.
    HashMismatch,
    /// Its hash matches but it is not a record (a hand-made line).
    NotARecord(String),
}

impl fmt::Display for LineProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineProblem::NoHash => f.write_str("the line does not end with a well-formed `hash`"),
            LineProblem::HashMismatch => f.write_str("its hash does not match its content"),
            LineProblem::NotARecord(why) => write!(f, "it is not a record: {why}"),
        }
    }
}

/// Checks a line's hash with `sealer` and reads its chain members,
/// returning them with the hash.
pub(crate) fn read_link<'a>(
    line: &'a [u8],
    sealer: &Sealer,
) -> Result<(Link, &'a str), LineProblem> {
    let (canonical, hash) = split(line).ok_or(LineProblem::NoHash)?;
    if sealer.seal(&canonical) != hash {
        return Err(LineProblem::HashMismatch);
    }
    let link: Link = serde_json::from_slice(&canonical)
        .map_err(|err| LineProblem::NotARecord(err.to_string()))?;
    Ok((link, hash))
}

/// The `seq` a line claims, without checking anything else.
pub(crate) fn claimed_seq(line: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Seq {
        seq: u64,
    }
    serde_json::from_slice::<Seq>(line).ok().map(|s| s.seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_and_hmac_known_answers() {
        // FIPS 180-2 and RFC 4231 test case 2.
        assert_eq!(
            Sealer::plain().seal(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            Sealer::keyed(b"Jefe").seal(b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(ZERO_HASH.len(), 64);
        assert!(is_hash(ZERO_HASH));
    }

    #[test]
    fn splice_and_split_are_inverse() {
        let canonical = br#"{"v":1,"seq":3,"prev":"x"}"#;
        let hash = Sealer::plain().seal(canonical);
        let line = splice(canonical, &hash);
        assert_eq!(
            line,
            format!("{{\"v\":1,\"seq\":3,\"prev\":\"x\",\"hash\":\"{hash}\"}}\n").into_bytes()
        );
        let (back, found) = split(line.strip_suffix(b"\n").unwrap()).unwrap();
        assert_eq!(back, canonical);
        assert_eq!(found, hash);
    }

    #[test]
    fn split_refuses_lines_without_a_proper_hash() {
        let good = format!("{{\"a\":1,\"hash\":\"{ZERO_HASH}\"}}");
        assert!(split(good.as_bytes()).is_some());
        for bad in [
            String::new(),
            "{}".to_owned(),
            good.replace("\"hash\"", "\"hasH\""),
            good.replace("0000\"}", "000G\"}"),
            good.replace("0000\"}", "000A\"}"),
            good.replacen('{', "[", 1),
            format!("{good} "),
            format!(",\"hash\":\"{ZERO_HASH}\"}}"),
        ] {
            assert!(split(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    #[test]
    fn key_file_rules() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "0123456789abcdef0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Sealer::load(Some(&path)).unwrap_err().to_string();
        assert!(
            err.contains("permissions 0644") && err.contains("chmod 600"),
            "{err}"
        );

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let sealer = Sealer::load(Some(&path)).unwrap();
        assert!(sealer.is_keyed());
        // The trailing newline is not part of the key.
        assert_eq!(
            sealer.seal(b"x"),
            Sealer::keyed(b"0123456789abcdef0123456789abcdef").seal(b"x")
        );
        assert!(!format!("{sealer:?}").contains("0123"));

        std::fs::write(&path, "short\n").unwrap();
        let err = Sealer::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("fewer than 16"), "{err}");

        let err = Sealer::load(Some(&dir.path().join("none"))).unwrap_err();
        assert!(matches!(err, AuditError::KeyRead { .. }), "{err}");
        assert!(!Sealer::load(None).unwrap().is_keyed());
    }
}
