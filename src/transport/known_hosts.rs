//! OpenSSH `known_hosts` files: parse, check an offered host key, append.
//!
//! russh ships a known_hosts checker, but it accepts keys listed on
//! `@revoked` lines, ignores wildcards and rejects tab-separated lines, so
//! remex carries its own. It follows OpenSSH 9.2 (`hostfile.c`, `match.c`
//! and the "SSH_KNOWN_HOSTS FILE FORMAT" section of sshd(8)):
//!
//! ```text
//! [@revoked|@cert-authority] host-patterns key-type base64-key [comment]
//! ```
//!
//! - Fields are separated by any run of spaces or tabs; blank lines and
//!   lines starting with `#` are ignored.
//! - `host-patterns` is a comma-separated list of patterns with `*` and `?`
//!   wildcards, matched case-insensitively against [`host_pattern`]
//!   (`host`, or `[host]:port` when the port is not 22). A `!pattern` that
//!   matches excludes the host from the line even if another pattern
//!   matches. A field starting with `|1|` is a hashed name instead:
//!   `|1|base64(salt)|base64(HMAC-SHA1(salt, host_pattern))`.
//! - A line that cannot be parsed is skipped with a warning, as OpenSSH does;
//!   it never hides the lines after it.
//!
//! **Invariant:** a key on an `@revoked` line whose patterns match the host
//! is refused, whatever the other lines say.
//!
//! **Invariant:** `@cert-authority` lines never pin a host key: they name
//! the CAs whose host certificates remex accepts for the matching hosts
//! ([`KnownHosts::cert_authorities`]; the certificate itself is judged in
//! [`crate::transport::host_certificate`]).
//!
//! **Invariant:** checking does no I/O; only [`KnownHosts::load`] and
//! [`append`] touch the file system.

use std::fs::{DirBuilder, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{HashAlg, PublicKey, ssh_key};
use sha1::Sha1;

use crate::error_chain::chain;
use crate::pattern::wildcard_match;

mod edit;

pub(crate) use edit::{forget, pin_replacing};

/// The port OpenSSH leaves out of known_hosts names.
const DEFAULT_PORT: u16 = 22;

/// The prefix of a hashed host name (`HASH_MAGIC` in OpenSSH).
const HASH_MAGIC: &str = "|1|";

/// The length of an HMAC-SHA1 salt and digest, in bytes.
const SHA1_LEN: usize = 20;

/// The result of checking an offered host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostKeyStatus {
    /// A non-revoked line for this host holds exactly this key.
    Trusted,
    /// No line names this host (only plain lines count: `@revoked` and
    /// `@cert-authority` lines do not pin a key).
    Unknown,
    /// Lines name this host, but none holds this key (any key type).
    Changed {
        /// SHA256 fingerprints (`SHA256:...`) of the keys on those lines, in
        /// file order, without duplicates.
        expected: Vec<String>,
        /// SHA256 fingerprint of the key the host offered.
        offered: String,
    },
    /// An `@revoked` line whose host pattern matches (commonly `*`) holds
    /// this key. Always refused; wins over any other match.
    Revoked {
        /// SHA256 fingerprint of the revoked key.
        fingerprint: String,
    },
}

/// A parsed known_hosts file.
///
/// Build one with [`KnownHosts::load`] (from disk) or [`KnownHosts::parse`]
/// (from text), then ask it about hosts with [`KnownHosts::check`].
#[derive(Debug, Clone)]
pub(crate) struct KnownHosts {
    /// Where the entries came from; kept so callers can name the file in
    /// messages ("add the key to ...").
    path: PathBuf,
    /// Every line that parsed, in file order. Order only matters for the
    /// order of fingerprints reported in [`HostKeyStatus::Changed`].
    entries: Vec<Entry>,
}

/// One parsed known_hosts line.
#[derive(Debug, Clone)]
struct Entry {
    /// `@revoked`, `@cert-authority` or neither: decides what a match means.
    marker: Marker,
    /// Which hosts this line is about.
    hosts: Hosts,
    /// The key on the line; its comment is never compared.
    key: PublicKey,
}

/// The optional marker that starts a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    /// A plain line: the key is pinned for the matching hosts.
    None,
    /// `@revoked`: the key is refused for the matching hosts.
    Revoked,
    /// `@cert-authority`: the key is a CA whose host certificates are
    /// accepted for the matching hosts; not a pin.
    CertAuthority,
}

/// The host-patterns field of a line.
#[derive(Debug, Clone)]
enum Hosts {
    /// A comma-separated pattern list, already split and lower-cased.
    Patterns(Vec<Pattern>),
    /// A hashed name, `|1|salt|hmac`, both parts base64-decoded.
    Hashed {
        /// The HMAC-SHA1 key.
        salt: Vec<u8>,
        /// HMAC-SHA1(salt, host_pattern(host, port)).
        hash: Vec<u8>,
    },
}

/// One entry of a pattern list.
#[derive(Debug, Clone)]
struct Pattern {
    /// `!pattern`: a match excludes the host from the whole line.
    negated: bool,
    /// The lower-cased glob, `*` and `?` wildcards, matched byte by byte as
    /// OpenSSH's `match_pattern` does.
    glob: String,
}

/// Why a line was skipped.
#[derive(Debug, thiserror::Error)]
enum LineError {
    #[error("unknown marker {0:?}")]
    UnknownMarker(String),
    #[error("more than one marker")]
    TwoMarkers,
    #[error("missing key type")]
    MissingKeyType,
    #[error("missing key data")]
    MissingKeyData,
    #[error("malformed hashed host name")]
    BadHash,
    #[error("unsupported key type {0:?}")]
    UnsupportedKeyType(String),
    #[error("invalid or unsupported {key_type:?} key")]
    BadKey {
        key_type: String,
        #[source]
        source: ssh_key::Error,
    },
}

/// Errors reading or writing a known_hosts file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KnownHostsError {
    /// The file exists but could not be read.
    #[error("cannot read known_hosts file {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// The directory that should hold the file could not be created.
    #[error("cannot create directory {}", .path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// The file could not be opened, locked, written or synced.
    #[error("cannot write known_hosts file {}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// The key could not be encoded in OpenSSH format.
    #[error("cannot encode host key for known_hosts file {}", .path.display())]
    Encode {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: ssh_key::Error,
    },
    /// The host name would not be a single literal name on a known_hosts
    /// line (empty, whitespace, control characters, `,*?!|`, or a leading
    /// `#` or `@`), so writing it could pin other hosts or corrupt the file.
    #[error("cannot write host {host:?} to known_hosts file {}: not a plain host name", .path.display())]
    InvalidHost {
        /// The file.
        path: PathBuf,
        /// The rejected host name.
        host: String,
    },
}

impl KnownHosts {
    /// Reads and parses the file; a missing file is an empty set (not an
    /// error). Unparseable lines are skipped with a `tracing::warn` naming
    /// file:line (OpenSSH skips them too). Bytes that are not UTF-8 are
    /// replaced, so they can only make their own line fail to match.
    ///
    /// # Errors
    ///
    /// [`KnownHostsError::Read`] if the file exists but cannot be read.
    pub(crate) fn load(path: &Path) -> Result<KnownHosts, KnownHostsError> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Self::parse(&String::from_utf8_lossy(&bytes), path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(KnownHosts {
                path: path.to_path_buf(),
                entries: Vec::new(),
            }),
            Err(source) => Err(KnownHostsError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parses text (the `path` is only used in warnings and kept for
    /// [`KnownHosts::path`]).
    #[must_use]
    pub(crate) fn parse(text: &str, path: &Path) -> KnownHosts {
        let mut entries = Vec::new();
        for (index, line) in text.lines().enumerate() {
            match parse_line(line) {
                Ok(Some(entry)) => entries.push(entry),
                Ok(None) => {}
                Err(e) => tracing::warn!(
                    "{}:{}: skipping unparseable known_hosts line: {}",
                    path.display(),
                    index.saturating_add(1),
                    chain(&e),
                ),
            }
        }
        KnownHosts {
            path: path.to_path_buf(),
            entries,
        }
    }

    /// The file these entries were read from (or that `parse` was told).
    #[must_use]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Checks the key offered by `host` (as written in the config: a name or
    /// IP) on `port`.
    ///
    /// `Revoked` wins over everything; then `Trusted` if any plain line holds
    /// the key; then `Changed` if plain lines name the host; else `Unknown`.
    #[must_use]
    pub(crate) fn check(&self, host: &str, port: u16, key: &PublicKey) -> HostKeyStatus {
        let name = host_pattern(host, port);
        let mut trusted = false;
        let mut expected: Vec<String> = Vec::new();
        for entry in self.entries.iter().filter(|e| e.hosts.matches(&name)) {
            let same = entry.key.key_data() == key.key_data();
            match entry.marker {
                Marker::Revoked if same => {
                    return HostKeyStatus::Revoked {
                        fingerprint: fingerprint(key),
                    };
                }
                Marker::Revoked | Marker::CertAuthority => {}
                Marker::None if same => trusted = true,
                Marker::None => push_unique(&mut expected, fingerprint(&entry.key)),
            }
        }
        if trusted {
            HostKeyStatus::Trusted
        } else if expected.is_empty() {
            HostKeyStatus::Unknown
        } else {
            HostKeyStatus::Changed {
                expected,
                offered: fingerprint(key),
            }
        }
    }

    /// SHA256 fingerprints of the (non-revoked, non-CA) keys pinned for
    /// host:port, for display (`hosts check`). In file order, without
    /// duplicates. A pinned key that is also revoked is still listed here;
    /// [`KnownHosts::check`] refuses it.
    #[must_use]
    pub(crate) fn pinned(&self, host: &str, port: u16) -> Vec<String> {
        let name = host_pattern(host, port);
        let mut pins = Vec::new();
        for entry in &self.entries {
            if entry.marker == Marker::None && entry.hosts.matches(&name) {
                push_unique(&mut pins, fingerprint(&entry.key));
            }
        }
        pins
    }
}

impl KnownHosts {
    /// The CA keys of the `@cert-authority` lines that apply to `host` on
    /// `port`, in file order, without duplicates. A line applies when its
    /// patterns match the host's known_hosts name ([`host_pattern`]: what
    /// OpenSSH looks up) or, off port 22, the bare `host` as well, so that
    /// `@cert-authority *.example.net` covers the hosts of that domain on
    /// any port; a `!pattern` matching either form excludes the host.
    #[must_use]
    pub(crate) fn cert_authorities(&self, host: &str, port: u16) -> Vec<&PublicKey> {
        let names = cert_names(host, port);
        let mut authorities: Vec<&PublicKey> = Vec::new();
        for entry in &self.entries {
            if entry.marker == Marker::CertAuthority
                && entry.hosts.matches_any(&names)
                && !authorities
                    .iter()
                    .any(|k| k.key_data() == entry.key.key_data())
            {
                authorities.push(&entry.key);
            }
        }
        authorities
    }

    /// Whether an `@revoked` line that applies to `host` on `port` (matched
    /// as in [`KnownHosts::cert_authorities`]) holds `key`: for a host
    /// certificate, the key in it or its CA.
    #[must_use]
    pub(crate) fn is_revoked(&self, host: &str, port: u16, key: &ssh_key::public::KeyData) -> bool {
        let names = cert_names(host, port);
        self.entries.iter().any(|entry| {
            entry.marker == Marker::Revoked
                && entry.key.key_data() == key
                && entry.hosts.matches_any(&names)
        })
    }
}

/// The names a host's `@cert-authority` and `@revoked` lines are matched
/// against: its known_hosts name, and off port 22 its bare name too.
fn cert_names(host: &str, port: u16) -> Vec<String> {
    let name = host_pattern(host, port);
    if port == DEFAULT_PORT {
        vec![name]
    } else {
        vec![name, host.to_ascii_lowercase()]
    }
}

impl Hosts {
    /// Does this field name `name` (the output of [`host_pattern`])?
    fn matches(&self, name: &str) -> bool {
        self.matches_any(std::slice::from_ref(&name))
    }

    /// Does this field name one of `names` — with no negated pattern
    /// matching any of them?
    fn matches_any(&self, names: &[impl AsRef<str>]) -> bool {
        match self {
            Hosts::Patterns(patterns) => match_pattern_list(names, patterns),
            Hosts::Hashed { salt, hash } => names
                .iter()
                .any(|name| hash_host(salt, name.as_ref()).as_deref() == Some(hash)),
        }
    }
}

/// The name OpenSSH writes for host:port: `host` when port is 22, else
/// `[host]:port`.
///
/// The host is lower-cased (ASCII only), as ssh does before it looks a host
/// up or writes it, so hashed entries made by OpenSSH match.
#[must_use]
pub(crate) fn host_pattern(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == DEFAULT_PORT {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// Appends `pattern key-type base64` (the key's OpenSSH encoding, no comment)
/// to the file; creates the parent dir (mode 0700) and file (mode 0600) if
/// missing; one `write_all` of the whole line, then fsync. Used by the
/// accept-new policy.
///
/// Holds an exclusive advisory lock (`flock`, through [`File::lock`]) while
/// appending so two remex processes don't interleave. If the file does not
/// end with a newline, one is written first so the new line stays whole.
/// An existing file or directory keeps its mode. The name is written in
/// clear, like OpenSSH with `HashKnownHosts no`.
///
/// # Errors
///
/// [`KnownHostsError::InvalidHost`] if `host` is not a plain name (it would
/// become a pattern); [`KnownHostsError::CreateDir`] or
/// [`KnownHostsError::Write`] if the directory or the file cannot be created,
/// locked, written or synced; [`KnownHostsError::Encode`] if the key cannot
/// be encoded.
pub(crate) fn append(
    path: &Path,
    host: &str,
    port: u16,
    key: &PublicKey,
) -> Result<(), KnownHostsError> {
    let entry = pin_line(path, host, port, key)?;
    ensure_parent(path)?;
    let write_error = |source| KnownHostsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = edit::lock_current(path, true)
        .map_err(write_error)?
        .ok_or_else(|| write_error(io::ErrorKind::NotFound.into()))?;
    let line = if ends_without_newline(&mut file).map_err(write_error)? {
        format!("\n{entry}")
    } else {
        entry
    };
    file.seek(SeekFrom::End(0)).map_err(write_error)?;
    file.write_all(line.as_bytes()).map_err(write_error)?;
    file.sync_all().map_err(write_error)?;
    // Closing the file releases the lock; unlock explicitly so an error
    // there is not silently lost.
    file.unlock().map_err(write_error)
}

/// The line pinning `key` for `host:port`: `pattern key-type base64\n`.
fn pin_line(
    path: &Path,
    host: &str,
    port: u16,
    key: &PublicKey,
) -> Result<String, KnownHostsError> {
    if !is_plain_host(host) {
        return Err(KnownHostsError::InvalidHost {
            path: path.to_path_buf(),
            host: host.to_owned(),
        });
    }
    let blob = key.to_bytes().map_err(|source| KnownHostsError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(format!(
        "{} {} {}\n",
        host_pattern(host, port),
        key.algorithm().as_str(),
        BASE64.encode(blob)
    ))
}

/// Creates the file's directory (0700) when missing.
fn ensure_parent(path: &Path) -> Result<(), KnownHostsError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| KnownHostsError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
    }
    Ok(())
}

/// Is the file non-empty with a last byte other than `\n`?
fn ends_without_newline(file: &mut File) -> io::Result<bool> {
    if file.metadata()?.len() == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last != *b"\n")
}

/// Can `host` be written as a single literal name on a known_hosts line?
fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && !host.starts_with(['#', '@'])
        && !host.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, ',' | '*' | '?' | '!' | '|')
        })
}

/// Parses one line: `Ok(None)` for blank lines and comments.
fn parse_line(line: &str) -> Result<Option<Entry>, LineError> {
    let rest = line.trim_start_matches([' ', '\t']);
    if rest.is_empty() || rest.starts_with('#') {
        return Ok(None);
    }
    let mut fields = rest.split([' ', '\t']).filter(|f| !f.is_empty());

    let first = fields.next().ok_or(LineError::MissingKeyType)?;
    let (marker, hosts) = match first {
        "@revoked" => (Marker::Revoked, fields.next()),
        "@cert-authority" => (Marker::CertAuthority, fields.next()),
        m if m.starts_with('@') => return Err(LineError::UnknownMarker(m.to_owned())),
        hosts => (Marker::None, Some(hosts)),
    };
    // OpenSSH allows one marker; a second one is an error, not a pattern.
    let hosts = hosts.ok_or(LineError::MissingKeyType)?;
    if hosts.starts_with('@') {
        return Err(LineError::TwoMarkers);
    }
    let hosts = parse_hosts(hosts)?;

    let key_type = fields
        .next()
        .filter(|t| !t.starts_with('#'))
        .ok_or(LineError::MissingKeyType)?;
    let key_data = fields.next().ok_or(LineError::MissingKeyData)?;
    // The comment, if any, is ignored.
    let key = PublicKey::from_openssh(&format!("{key_type} {key_data}")).map_err(|source| {
        LineError::BadKey {
            key_type: key_type.to_owned(),
            source,
        }
    })?;
    // ssh-key accepts any `name@domain` algorithm as an opaque key; OpenSSH
    // does not know such keys and skips the line, so do we.
    if key.key_data().is_other() || key.key_data().is_certificate() {
        return Err(LineError::UnsupportedKeyType(key_type.to_owned()));
    }

    Ok(Some(Entry { marker, hosts, key }))
}

/// Parses the host-patterns field: a hashed name or a pattern list.
fn parse_hosts(field: &str) -> Result<Hosts, LineError> {
    // Like OpenSSH, a field starting with `|` is a hashed name as a whole.
    if field.starts_with('|') {
        let (salt, hash) = field
            .strip_prefix(HASH_MAGIC)
            .and_then(|rest| rest.split_once('|'))
            .ok_or(LineError::BadHash)?;
        let salt = BASE64.decode(salt).map_err(|_| LineError::BadHash)?;
        let hash = BASE64.decode(hash).map_err(|_| LineError::BadHash)?;
        if salt.len() != SHA1_LEN || hash.len() != SHA1_LEN {
            return Err(LineError::BadHash);
        }
        return Ok(Hosts::Hashed { salt, hash });
    }
    let patterns = field
        .split(',')
        .map(|p| match p.strip_prefix('!') {
            Some(glob) => Pattern {
                negated: true,
                glob: glob.to_ascii_lowercase(),
            },
            None => Pattern {
                negated: false,
                glob: p.to_ascii_lowercase(),
            },
        })
        .collect();
    Ok(Hosts::Patterns(patterns))
}

/// OpenSSH's `match_pattern_list` for lower-cased names: true if some
/// pattern matches one of them and no negated pattern matches any.
fn match_pattern_list(names: &[impl AsRef<str>], patterns: &[Pattern]) -> bool {
    let mut positive = false;
    for pattern in patterns {
        if names
            .iter()
            .any(|name| wildcard_match(&pattern.glob, name.as_ref()))
        {
            if pattern.negated {
                return false;
            }
            positive = true;
        }
    }
    positive
}

/// HMAC-SHA1(key = salt, data = name), as in OpenSSH's `host_hash`.
fn hash_host(salt: &[u8], name: &str) -> Option<Vec<u8>> {
    let mut mac = Hmac::<Sha1>::new_from_slice(salt).ok()?;
    mac.update(name.as_bytes());
    Some(mac.finalize().into_bytes().to_vec())
}

/// The `SHA256:...` fingerprint OpenSSH prints for a key.
fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Pushes `item` unless it is already in `list`.
fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use russh::keys::{Algorithm, PrivateKey};
    use std::os::unix::fs::PermissionsExt;

    /// An ed25519 key made by `ssh-keygen -t ed25519 -C fixture`.
    const ED_FIXTURE: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICGFkO34jDewQjqfMko5Wwc0ItzCXFoGKqELG89HeT5J fixture";
    /// Its fingerprint, as printed by `ssh-keygen -lf`.
    const ED_FIXTURE_FP: &str = "SHA256:pnH8X7fwkQ5TqBVoUT4a/2WL7ShjGDClKSqHnS7ACFE";
    /// An ecdsa key made by `ssh-keygen -t ecdsa -C ecfix`.
    const EC_FIXTURE: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBNQCPvBZFGVM5SaxbVQ/4BRrKddB6R2iF97Wp56t79/3LLKQdjPcj6vf6BkWtRhs5RRd0lv4WrDfPuczQdYGWzo= ecfix";
    /// Its fingerprint, as printed by `ssh-keygen -lf`.
    const EC_FIXTURE_FP: &str = "SHA256:vspRberd2XIcUhoSmbG07b4DkB5EtmT5cSUElJQ5ldE";
    /// An rsa key made by `ssh-keygen -t rsa -b 2048 -C rsafix`.
    const RSA_FIXTURE: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCvvWUe+dmUtqJuruJwTRfqc3AxjC6ti5B8sAgEQELc93/n1mlWZO9bk0qAORz6bq5lZN+aEPyVR97b7N1TeUCkZIQ81UcS+q1xNTgFcxIUrEWbV5G1bX5yKX1mSGSqv+mL6wwEOmLxK7RKrZWfo5KJTyqn5e3djvAvst4zdxmBY7C2Mey5+BRhU2J/pDq0lnf+mku1ABw99/Q6MtTo5t/ORFDgzfYJpsSB1N/Vji4nzibQ3oPgSyWvTk9Ba4DWma84kFU4O6cxfyNzA5XM2NlCvDDozpy++3BptkC5/DWOc5UZZZ76k0dm8f6XQo8kC7cHDVtn1wq8ayPzUkBaGMMn rsafix";
    /// `ssh-keygen -H` output for `web1.example.com ED_FIXTURE` and
    /// `[web1.example.com]:2222 ED_FIXTURE` (checked with `ssh-keygen -F`).
    const HASHED_FIXTURE: &str = "\
|1|AS5KQ1s++VRUB7JINg3uFWAXfoI=|O8RH2mYmjQIGyDLgcGtHJhSUGfo= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICGFkO34jDewQjqfMko5Wwc0ItzCXFoGKqELG89HeT5J
|1|HZ0ORjYc00uQHTVQNv9m8HG9f1k=|1BfC9ExwD68lxwMwheZu+jynjjk= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICGFkO34jDewQjqfMko5Wwc0ItzCXFoGKqELG89HeT5J
";

    fn new_key() -> PublicKey {
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
            .unwrap()
            .public_key()
            .clone()
    }

    fn fixture(line: &str) -> PublicKey {
        PublicKey::from_openssh(line).unwrap()
    }

    /// `type base64` of a key, as it appears on a known_hosts line.
    fn openssh(key: &PublicKey) -> String {
        let mut key = key.clone();
        key.set_comment("");
        key.to_openssh().unwrap()
    }

    fn parse(text: &str) -> KnownHosts {
        KnownHosts::parse(text, Path::new("test_known_hosts"))
    }

    fn fp(key: &PublicKey) -> String {
        fingerprint(key)
    }

    #[test]
    fn plain_host_on_port_22() {
        let key = new_key();
        let kh = parse(&format!("web1 {} some comment\n", openssh(&key)));
        assert_eq!(kh.check("web1", 22, &key), HostKeyStatus::Trusted);
        assert_eq!(kh.check("WEB1", 22, &key), HostKeyStatus::Trusted);
        assert_eq!(kh.check("web2", 22, &key), HostKeyStatus::Unknown);
        assert_eq!(kh.check("web", 22, &key), HostKeyStatus::Unknown);
        assert_eq!(kh.pinned("web1", 22), vec![fp(&key)]);
    }

    #[test]
    fn port_in_brackets_is_distinct_from_plain_name() {
        let plain = new_key();
        let ported = new_key();
        let kh = parse(&format!(
            "web1 {}\n[web1]:2222 {}\n",
            openssh(&plain),
            openssh(&ported)
        ));
        assert_eq!(kh.check("web1", 22, &plain), HostKeyStatus::Trusted);
        assert_eq!(kh.check("web1", 2222, &ported), HostKeyStatus::Trusted);
        assert_eq!(
            kh.check("web1", 2222, &plain),
            HostKeyStatus::Changed {
                expected: vec![fp(&ported)],
                offered: fp(&plain),
            }
        );
        assert_eq!(kh.check("web1", 2200, &plain), HostKeyStatus::Unknown);
        // `[web1]:22` is never written by OpenSSH and does not match port 22.
        let kh = parse(&format!("[web1]:22 {}\n", openssh(&plain)));
        assert_eq!(kh.check("web1", 22, &plain), HostKeyStatus::Unknown);
    }

    #[test]
    fn host_pattern_matches_openssh() {
        assert_eq!(host_pattern("web1", 22), "web1");
        assert_eq!(host_pattern("Web1.Example.COM", 22), "web1.example.com");
        assert_eq!(host_pattern("10.0.0.1", 2222), "[10.0.0.1]:2222");
        assert_eq!(host_pattern("::1", 22), "::1");
        assert_eq!(host_pattern("::1", 2222), "[::1]:2222");
    }

    #[test]
    fn tabs_and_runs_of_spaces_separate_fields() {
        let key = new_key();
        let encoded = openssh(&key);
        let (key_type, data) = encoded.split_once(' ').unwrap();
        let text = format!(
            "  web1\t{key_type}\t{data}\tcomment\nweb2 \t  {key_type}   \t{data}\n\t@revoked\t \tweb3\t{key_type} {data}\r\n"
        );
        let kh = parse(&text);
        assert_eq!(kh.check("web1", 22, &key), HostKeyStatus::Trusted);
        assert_eq!(kh.check("web2", 22, &key), HostKeyStatus::Trusted);
        assert_eq!(
            kh.check("web3", 22, &key),
            HostKeyStatus::Revoked {
                fingerprint: fp(&key)
            }
        );
    }

    #[test]
    fn wildcards_star_and_question_mark() {
        let key = new_key();
        let kh = parse(&format!(
            "*.example.net {k}\nweb?.lan {k}\n[127.0.0.*]:2222 {k}\n",
            k = openssh(&key)
        ));
        assert_eq!(kh.check("a.example.net", 22, &key), HostKeyStatus::Trusted);
        assert_eq!(
            kh.check("a.b.example.net", 22, &key),
            HostKeyStatus::Trusted
        );
        assert_eq!(kh.check("A.EXAMPLE.NET", 22, &key), HostKeyStatus::Trusted);
        assert_eq!(kh.check("example.net", 22, &key), HostKeyStatus::Unknown);
        // The wildcard applies to the whole name, so `[a.example.net]:2222`
        // does not end in `.example.net`.
        assert_eq!(
            kh.check("a.example.net", 2222, &key),
            HostKeyStatus::Unknown
        );
        assert_eq!(kh.check("web1.lan", 22, &key), HostKeyStatus::Trusted);
        assert_eq!(kh.check("web.lan", 22, &key), HostKeyStatus::Unknown);
        assert_eq!(kh.check("web12.lan", 22, &key), HostKeyStatus::Unknown);
        assert_eq!(kh.check("127.0.0.5", 2222, &key), HostKeyStatus::Trusted);
        assert_eq!(kh.check("127.0.0.5", 22, &key), HostKeyStatus::Unknown);
        assert_eq!(kh.check("127.0.0.5", 2223, &key), HostKeyStatus::Unknown);
    }

    #[test]
    fn negation_excludes_host_from_the_line() {
        let key = new_key();
        let kh = parse(&format!(
            "*.example.net,!bad.example.net {}\n",
            openssh(&key)
        ));
        assert_eq!(
            kh.check("good.example.net", 22, &key),
            HostKeyStatus::Trusted
        );
        assert_eq!(
            kh.check("bad.example.net", 22, &key),
            HostKeyStatus::Unknown
        );
        assert_eq!(
            kh.check("BAD.example.net", 22, &key),
            HostKeyStatus::Unknown
        );
        assert!(kh.pinned("bad.example.net", 22).is_empty());
        // Order does not matter, and a negation alone matches nothing.
        let kh = parse(&format!(
            "!bad.example.net,*.example.net {k}\n!web1 {k}\n",
            k = openssh(&key)
        ));
        assert_eq!(
            kh.check("bad.example.net", 22, &key),
            HostKeyStatus::Unknown
        );
        assert_eq!(kh.check("ok.example.net", 22, &key), HostKeyStatus::Trusted);
        assert_eq!(kh.check("web2", 22, &key), HostKeyStatus::Unknown);
    }

    #[test]
    fn hashed_entry_built_here() {
        let key = new_key();
        let salt = [7u8; SHA1_LEN];
        let hash = hash_host(&salt, "[web1.example.com]:2222").unwrap();
        let line = format!(
            "|1|{}|{} {}\n",
            BASE64.encode(salt),
            BASE64.encode(hash),
            openssh(&key)
        );
        let kh = parse(&line);
        assert_eq!(
            kh.check("web1.example.com", 2222, &key),
            HostKeyStatus::Trusted
        );
        assert_eq!(
            kh.check("Web1.Example.com", 2222, &key),
            HostKeyStatus::Trusted
        );
        assert_eq!(
            kh.check("web1.example.com", 22, &key),
            HostKeyStatus::Unknown
        );
        assert_eq!(
            kh.check("web2.example.com", 2222, &key),
            HostKeyStatus::Unknown
        );
    }

    #[test]
    fn hashed_entries_from_ssh_keygen() {
        let key = fixture(ED_FIXTURE);
        let kh = parse(HASHED_FIXTURE);
        assert_eq!(
            kh.check("web1.example.com", 22, &key),
            HostKeyStatus::Trusted
        );
        assert_eq!(
            kh.check("web1.example.com", 2222, &key),
            HostKeyStatus::Trusted
        );
        assert_eq!(
            kh.check("web2.example.com", 22, &key),
            HostKeyStatus::Unknown
        );
        assert_eq!(kh.pinned("web1.example.com", 22), vec![ED_FIXTURE_FP]);
        let other = new_key();
        assert_eq!(
            kh.check("web1.example.com", 22, &other),
            HostKeyStatus::Changed {
                expected: vec![ED_FIXTURE_FP.to_owned()],
                offered: fp(&other),
            }
        );
    }

    #[test]
    fn malformed_hashed_names_are_skipped() {
        let key = new_key();
        let k = openssh(&key);
        let text = format!(
            "|2|AS5KQ1s++VRUB7JINg3uFWAXfoI=|O8RH2mYmjQIGyDLgcGtHJhSUGfo= {k}\n\
             |1|not base64!|O8RH2mYmjQIGyDLgcGtHJhSUGfo= {k}\n\
             |1|AAAA|O8RH2mYmjQIGyDLgcGtHJhSUGfo= {k}\n\
             |1|AS5KQ1s++VRUB7JINg3uFWAXfoI= {k}\n\
             web1 {k}\n"
        );
        let kh = parse(&text);
        assert_eq!(kh.entries.len(), 1);
        assert_eq!(kh.check("web1", 22, &key), HostKeyStatus::Trusted);
    }

    #[test]
    fn revoked_wins_over_trusted_line() {
        let key = new_key();
        let k = openssh(&key);
        for text in [
            format!("web1 {k}\n@revoked web1 {k}\n"),
            format!("@revoked web1 {k}\nweb1 {k}\n"),
        ] {
            let kh = parse(&text);
            assert_eq!(
                kh.check("web1", 22, &key),
                HostKeyStatus::Revoked {
                    fingerprint: fp(&key)
                }
            );
            // The revoked line does not apply to other hosts.
            assert_eq!(kh.check("web2", 22, &key), HostKeyStatus::Unknown);
        }
    }

    #[test]
    fn revoked_with_star_applies_to_every_host() {
        let revoked = new_key();
        let good = new_key();
        let kh = parse(&format!(
            "@revoked * {}\nweb1 {}\n",
            openssh(&revoked),
            openssh(&good)
        ));
        let refused = HostKeyStatus::Revoked {
            fingerprint: fp(&revoked),
        };
        assert_eq!(kh.check("web1", 22, &revoked), refused);
        assert_eq!(kh.check("anything", 22, &revoked), refused);
        assert_eq!(kh.check("anything", 2222, &revoked), refused);
        assert_eq!(kh.check("web1", 22, &good), HostKeyStatus::Trusted);
        // A revoked line for a different key neither trusts nor names a host.
        assert_eq!(kh.check("web2", 22, &good), HostKeyStatus::Unknown);
        assert_eq!(kh.pinned("web1", 22), vec![fp(&good)]);
    }

    #[test]
    fn cert_authority_lines_are_tolerated_not_pins() {
        let ca = new_key();
        let host = new_key();
        let kh = parse(&format!(
            "@cert-authority *.example.net {}\nweb1.example.net {}\n",
            openssh(&ca),
            openssh(&host)
        ));
        assert_eq!(kh.entries.len(), 2);
        assert_eq!(
            kh.check("web2.example.net", 22, &ca),
            HostKeyStatus::Unknown
        );
        assert!(kh.pinned("web2.example.net", 22).is_empty());
        assert_eq!(
            kh.check("web1.example.net", 22, &ca),
            HostKeyStatus::Changed {
                expected: vec![fp(&host)],
                offered: fp(&ca),
            }
        );
        assert_eq!(kh.pinned("web1.example.net", 22), vec![fp(&host)]);
    }

    #[test]
    fn cert_authorities_match_the_bracketed_and_the_bare_name() {
        let (ca1, ca2, ca3) = (new_key(), new_key(), new_key());
        let salt = [9u8; SHA1_LEN];
        let hashed = |name: &str| {
            format!(
                "|1|{}|{}",
                BASE64.encode(salt),
                BASE64.encode(hash_host(&salt, name).unwrap())
            )
        };
        let kh = parse(&format!(
            "@cert-authority *.example.net,!bad.example.net {a}\n\
             @cert-authority web1.example.net {a}\n\
             @cert-authority {h} {b}\n\
             @cert-authority [db1]:2222 {c}\n\
             @revoked [web1.example.net]:2222 {b}\n",
            a = openssh(&ca1),
            b = openssh(&ca2),
            c = openssh(&ca3),
            h = hashed("web1.example.net"),
        ));
        let fps = |host: &str, port: u16| -> Vec<String> {
            kh.cert_authorities(host, port)
                .into_iter()
                .map(fp)
                .collect()
        };
        // Duplicates once, in file order; a hashed bare name off port 22.
        assert_eq!(fps("web1.example.net", 22), vec![fp(&ca1), fp(&ca2)]);
        assert_eq!(fps("web1.example.net", 2222), vec![fp(&ca1), fp(&ca2)]);
        // A negation on the bare name holds on every port.
        assert!(fps("bad.example.net", 2222).is_empty());
        // `[db1]:2222` is for that port only.
        assert_eq!(fps("db1", 2222), vec![fp(&ca3)]);
        assert!(fps("db1", 22).is_empty());
        // Plain lines are no CAs, and CA lines no pins.
        assert_eq!(kh.check("db1", 2222, &ca3), HostKeyStatus::Unknown);
        assert!(kh.is_revoked("web1.example.net", 2222, ca2.key_data()));
        assert!(!kh.is_revoked("web1.example.net", 22, ca2.key_data()));
        assert!(!kh.is_revoked("web1.example.net", 2222, ca1.key_data()));
    }

    #[test]
    fn bad_markers_are_skipped() {
        let key = new_key();
        let k = openssh(&key);
        let kh = parse(&format!(
            "@trusted web1 {k}\n@revoked @revoked web1 {k}\n@revoked\n@revoked web1\nweb2 {k}\n"
        ));
        assert_eq!(kh.entries.len(), 1);
        assert_eq!(kh.check("web1", 22, &key), HostKeyStatus::Unknown);
        assert_eq!(kh.check("web2", 22, &key), HostKeyStatus::Trusted);
    }

    #[test]
    fn changed_key_reports_both_fingerprints() {
        let pinned = fixture(ED_FIXTURE);
        let offered = new_key();
        let kh = parse(&format!(
            "web1 {}\n# duplicate lines are reported once\nweb1,web2 {}\n",
            openssh(&pinned),
            openssh(&pinned)
        ));
        let status = kh.check("web1", 22, &offered);
        assert_eq!(
            status,
            HostKeyStatus::Changed {
                expected: vec![ED_FIXTURE_FP.to_owned()],
                offered: fp(&offered),
            }
        );
        let HostKeyStatus::Changed { offered: shown, .. } = status else {
            unreachable!()
        };
        assert!(shown.starts_with("SHA256:"), "{shown}");
        assert_eq!(kh.pinned("web1", 22), vec![ED_FIXTURE_FP]);
    }

    #[test]
    fn other_key_type_for_same_host_is_changed() {
        let ec = fixture(EC_FIXTURE);
        let rsa = fixture(RSA_FIXTURE);
        let ed = fixture(ED_FIXTURE);
        let kh = parse(&format!("web1 {}\nweb1 {}\n", openssh(&ec), openssh(&rsa)));
        assert_eq!(kh.check("web1", 22, &ec), HostKeyStatus::Trusted);
        assert_eq!(kh.check("web1", 22, &rsa), HostKeyStatus::Trusted);
        assert_eq!(
            kh.check("web1", 22, &ed),
            HostKeyStatus::Changed {
                expected: vec![EC_FIXTURE_FP.to_owned(), fp(&rsa)],
                offered: ED_FIXTURE_FP.to_owned(),
            }
        );
    }

    #[test]
    fn comment_on_the_key_is_not_compared() {
        // The fixture line keeps its `fixture` comment; the offered key has
        // a different one.
        let mut offered = fixture(ED_FIXTURE);
        offered.set_comment("something else");
        let kh = parse(&format!("web1 {ED_FIXTURE}\n"));
        assert_eq!(kh.check("web1", 22, &offered), HostKeyStatus::Trusted);
    }

    #[test]
    fn garbage_lines_do_not_hide_later_lines() {
        let key = new_key();
        let k = openssh(&key);
        let (key_type, data) = k.split_once(' ').unwrap();
        let text = format!(
            "web1\n\
             web1 {key_type}\n\
             web1 {key_type} !!!notbase64!!!\n\
             web1 ssh-foo {data}\n\
             web1 foo@example.com {data}\n\
             web1 ecdsa-sha2-nistp256 {data}\n\
             web1 {key_type} {truncated}\n\
             web1 # comment instead of key\n\
             \u{0}\u{1}\u{ff}\n\
             web1 {k}\n",
            truncated = data.get(..data.len() - 8).unwrap()
        );
        let kh = parse(&text);
        assert_eq!(kh.entries.len(), 1);
        assert_eq!(kh.check("web1", 22, &key), HostKeyStatus::Trusted);
        assert_eq!(kh.pinned("web1", 22), vec![fp(&key)]);
    }

    /// A `tracing` writer that keeps everything in memory.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn skipped_lines_are_warned_about_with_file_and_line() {
        let key = new_key();
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let kh = tracing::subscriber::with_default(subscriber, || {
            KnownHosts::parse(
                &format!("# fine\nweb1 ssh-ed25519 !!!\nweb1 {}\n", openssh(&key)),
                Path::new("/etc/remex/known_hosts"),
            )
        });
        assert_eq!(kh.check("web1", 22, &key), HostKeyStatus::Trusted);
        let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(logs.lines().count(), 1, "{logs}");
        assert!(logs.contains("WARN"), "{logs}");
        assert!(logs.contains("/etc/remex/known_hosts:2: "), "{logs}");
    }

    #[test]
    fn comments_and_blank_lines_are_ignored() {
        let key = new_key();
        let text = format!(
            "# known hosts\n\n   \n\t# indented comment web1 {k}\n#web1 {k}\nweb1 {k} # trailing words\n",
            k = openssh(&key)
        );
        let kh = parse(&text);
        assert_eq!(kh.entries.len(), 1);
        assert_eq!(kh.check("web1", 22, &key), HostKeyStatus::Trusted);
        assert!(parse("").entries.is_empty());
        assert!(parse("# only a comment").entries.is_empty());
    }

    #[test]
    fn missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope").join("known_hosts");
        let kh = KnownHosts::load(&path).unwrap();
        assert!(kh.entries.is_empty());
        assert_eq!(kh.path(), path);
        assert_eq!(kh.check("web1", 22, &new_key()), HostKeyStatus::Unknown);
    }

    #[test]
    fn unreadable_path_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        // A directory cannot be read as a file.
        let err = KnownHosts::load(dir.path()).unwrap_err();
        assert!(matches!(err, KnownHostsError::Read { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&dir.path().display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn load_reads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(&path, HASHED_FIXTURE).unwrap();
        let kh = KnownHosts::load(&path).unwrap();
        assert_eq!(
            kh.check("web1.example.com", 22, &fixture(ED_FIXTURE)),
            HostKeyStatus::Trusted
        );
    }

    #[test]
    fn append_then_check_is_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let ssh_dir = dir.path().join("dot-ssh");
        let path = ssh_dir.join("known_hosts");
        let first = new_key();
        let second = new_key();

        append(&path, "Web1.Example.com", 22, &first).unwrap();
        append(&path, "10.0.0.7", 2222, &second).unwrap();

        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&ssh_dir), 0o700);
        assert_eq!(mode(&path), 0o600);

        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!(
                "web1.example.com {}\n[10.0.0.7]:2222 {}\n",
                openssh(&first),
                openssh(&second)
            )
        );
        let kh = KnownHosts::load(&path).unwrap();
        assert_eq!(
            kh.check("web1.example.com", 22, &first),
            HostKeyStatus::Trusted
        );
        assert_eq!(kh.check("10.0.0.7", 2222, &second), HostKeyStatus::Trusted);
        assert_eq!(kh.check("10.0.0.7", 22, &second), HostKeyStatus::Unknown);
    }

    #[test]
    fn append_keeps_a_line_whole_after_a_missing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let old = new_key();
        let new = new_key();
        std::fs::write(&path, format!("web1 {}", openssh(&old))).unwrap();
        append(&path, "web2", 22, &new).unwrap();
        let kh = KnownHosts::load(&path).unwrap();
        assert_eq!(kh.check("web1", 22, &old), HostKeyStatus::Trusted);
        assert_eq!(kh.check("web2", 22, &new), HostKeyStatus::Trusted);
    }

    #[test]
    fn append_refuses_names_that_are_not_literal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let key = new_key();
        for host in [
            "", "*", "a,b", "web 1", "web\n1", "!web1", "|1|x", "#web1", "@revoked",
        ] {
            let err = append(&path, host, 22, &key).unwrap_err();
            assert!(
                matches!(err, KnownHostsError::InvalidHost { .. }),
                "{host:?}: {err:?}"
            );
        }
        assert!(!path.exists());
    }
}
