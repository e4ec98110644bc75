//! Removing pins from a known_hosts file (`remex hosts forget`, and
//! `remex hosts trust --replace`), keeping every other line byte for byte.
//!
//! The file is replaced atomically ([`crate::atomic_file::replace`]:
//! temporary file in the same directory, fsync, rename) while holding the same exclusive lock [`super::append`]
//! takes. Both lock through [`lock_current`], which re-opens the file when
//! it was replaced while waiting for the lock, so an append never lands in
//! a file that a concurrent replace just unlinked.
//!
//! What counts as a pin of `host:port`: a plain line (no marker) whose
//! host field matches the name OpenSSH writes for it ([`super::host_pattern`]):
//!
//! - a hashed name: the line is removed;
//! - a list of literal names: the matching names are taken out of the list,
//!   and the line is removed when none is left;
//! - a list with a wildcard that matches: kept (it pins other hosts too);
//!   its line number is reported so the operator can edit it by hand.
//!
//! `@revoked` and `@cert-authority` lines are never touched: forgetting a
//! pin must not un-revoke a key.

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use russh::keys::PublicKey;

use super::{Hosts, KnownHostsError, Marker, fingerprint, host_pattern, parse_line};
use crate::atomic_file;

/// What an edit of the pins of one host did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PinEdit {
    /// Fingerprints of the pins removed (a key listed twice appears once).
    pub removed: Vec<String>,
    /// Line numbers (1-based) of wildcard lines that still match the host.
    pub wildcard_lines: Vec<usize>,
    /// Whether a new pin was written.
    pub added: bool,
}

/// Opens `path` (creating it 0600 when `create`) and takes its exclusive
/// lock; if the file was replaced while waiting, opens the new one.
/// `Ok(None)`: the file does not exist and `create` is false.
pub(super) fn lock_current(path: &Path, create: bool) -> io::Result<Option<File>> {
    loop {
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .mode(0o600)
            .open(path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !create => return Ok(None),
            Err(e) => return Err(e),
        };
        file.lock()?;
        let held = file.metadata()?;
        match std::fs::metadata(path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => return Ok(Some(file)),
            // Replaced or removed while we waited: lock the current file.
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
}

/// Removes the pins of `host:port` from the file (see the module docs).
/// A missing file has no pins.
pub(crate) fn forget(path: &Path, host: &str, port: u16) -> Result<PinEdit, KnownHostsError> {
    edit(path, host, port, None)
}

/// Replaces the pins of `host:port` by one for `key`, in one atomic
/// replace (`remex hosts trust --replace`). Creates the file (0600) and its
/// directory (0700) when missing.
pub(crate) fn pin_replacing(
    path: &Path,
    host: &str,
    port: u16,
    key: &PublicKey,
) -> Result<PinEdit, KnownHostsError> {
    edit(path, host, port, Some(key))
}

fn edit(
    path: &Path,
    host: &str,
    port: u16,
    key: Option<&PublicKey>,
) -> Result<PinEdit, KnownHostsError> {
    let write_error = |source| KnownHostsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let new_line = match key {
        Some(key) => {
            super::ensure_parent(path)?;
            Some(super::pin_line(path, host, port, key)?)
        }
        None => None,
    };
    let Some(mut file) = lock_current(path, key.is_some()).map_err(write_error)? else {
        return Ok(PinEdit::default());
    };
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0)).map_err(write_error)?;
    file.read_to_end(&mut bytes).map_err(write_error)?;
    let text = String::from_utf8_lossy(&bytes);
    let (mut kept, mut edit) = without_pins(&text, &host_pattern(host, port));
    if let Some(line) = &new_line {
        if !kept.is_empty() && !kept.ends_with('\n') {
            kept.push('\n');
        }
        kept.push_str(line);
        edit.added = true;
    }
    if kept.as_bytes() == bytes.as_slice() {
        return Ok(edit);
    }
    if text.as_bytes() != bytes.as_slice() {
        // Not UTF-8: rewriting would replace bytes on other lines.
        return Err(write_error(io::Error::new(
            io::ErrorKind::InvalidData,
            "the file is not UTF-8 text; edit it by hand",
        )));
    }
    let mode = file.metadata().map_err(write_error)?.permissions().mode() & 0o7777;
    atomic_file::replace(path, kept.as_bytes(), mode).map_err(write_error)?;
    drop(file);
    Ok(edit)
}

/// `text` without the pins of `name` (a [`host_pattern`]), and what went.
fn without_pins(text: &str, name: &str) -> (String, PinEdit) {
    let mut out = String::with_capacity(text.len());
    let mut edit = PinEdit::default();
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let body = line.trim_end_matches(['\n', '\r']);
        let entry = match parse_line(body) {
            Ok(Some(entry)) if entry.marker == Marker::None && entry.hosts.matches(name) => entry,
            _ => {
                out.push_str(line);
                continue;
            }
        };
        let fp = fingerprint(&entry.key);
        match &entry.hosts {
            Hosts::Hashed { .. } => {}
            Hosts::Patterns(patterns) => {
                let wildcard = patterns
                    .iter()
                    .any(|p| !p.negated && p.glob.contains(['*', '?']));
                if wildcard {
                    edit.wildcard_lines.push(index + 1);
                    out.push_str(line);
                    continue;
                }
                if let Some(rewritten) = without_name(line, name) {
                    out.push_str(&rewritten);
                }
            }
        }
        if !edit.removed.contains(&fp) {
            edit.removed.push(fp);
        }
    }
    (out, edit)
}

/// The line with `name` taken out of its literal host list; `None` when
/// no positive name is left (the line goes).
fn without_name(line: &str, name: &str) -> Option<String> {
    let start = line.len() - line.trim_start_matches([' ', '\t']).len();
    let rest = line.get(start..)?;
    let end = rest.find([' ', '\t']).unwrap_or(rest.len());
    let field = rest.get(..end)?;
    let kept: Vec<&str> = field
        .split(',')
        .filter(|p| p.to_ascii_lowercase() != name)
        .collect();
    if !kept.iter().any(|p| !p.starts_with('!')) {
        return None;
    }
    Some(format!(
        "{}{}{}",
        line.get(..start)?,
        kept.join(","),
        rest.get(end..)?
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use russh::keys::{Algorithm, PrivateKey};

    fn key() -> PublicKey {
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
            .unwrap()
            .public_key()
            .clone()
    }

    fn line(hosts: &str, key: &PublicKey) -> String {
        format!("{hosts} {}", key.to_openssh().unwrap())
    }

    #[test]
    fn forget_keeps_every_other_byte() {
        let (a, b, c) = (key(), key(), key());
        let text = format!(
            "# comment\r\n{}\n\t{}  trailing\n@revoked {}\n{}\n{}",
            line("[127.0.0.2]:2222", &a),
            line("[127.0.0.3]:2222,[127.0.0.2]:2222,other", &b),
            line("[127.0.0.2]:2222", &c),
            line("[127.0.0.*]:2222", &c),
            line("[127.0.0.4]:2222", &c),
        );
        let (out, edit) = without_pins(&text, "[127.0.0.2]:2222");
        assert_eq!(
            out,
            format!(
                "# comment\r\n\t{}  trailing\n@revoked {}\n{}\n{}",
                line("[127.0.0.3]:2222,other", &b),
                line("[127.0.0.2]:2222", &c),
                line("[127.0.0.*]:2222", &c),
                line("[127.0.0.4]:2222", &c),
            )
        );
        assert_eq!(edit.removed, [fingerprint(&a), fingerprint(&b)]);
        assert_eq!(edit.wildcard_lines, [5]);
    }

    #[test]
    fn hashed_names_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let a = key();
        // `ssh-keygen -H` form of "vm1" with a fixed salt.
        let salt = [7u8; 20];
        let hash = super::super::hash_host(&salt, "vm1").unwrap();
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let hashed = format!("|1|{}|{}", b64.encode(salt), b64.encode(hash));
        std::fs::write(
            &path,
            format!("{}\n{}\n", line(&hashed, &a), line("vm2", &a)),
        )
        .unwrap();
        let edit = forget(&path, "vm1", 22).unwrap();
        assert_eq!(edit.removed, [fingerprint(&a)]);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", line("vm2", &a))
        );
    }

    #[test]
    fn replace_swaps_the_pin_and_keeps_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        let (old, new) = (key(), key());
        std::fs::write(&path, line("vm1", &old)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let edit = pin_replacing(&path, "vm1", 22, &new).unwrap();
        assert!(edit.added);
        assert_eq!(edit.removed, [fingerprint(&old)]);
        let known = super::super::KnownHosts::load(&path).unwrap();
        assert_eq!(
            known.check("vm1", 22, &new),
            super::super::HostKeyStatus::Trusted
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        assert!(forget(&dir.path().join("missing"), "vm1", 22).unwrap() == PinEdit::default());
    }
}
