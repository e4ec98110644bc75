//! `remex keys list`: the keys in the key directory (and its archive),
//! joined with what the state file knows about them.
//!
//! A key is a file `NAME` with a `NAME.pub` beside it; only the public half
//! is read. Keys remex did not generate (copied in by hand) are listed too,
//! with their file's modification time as `created`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use russh::keys::PublicKey;
use serde::Serialize;

use crate::keydir::{
    KeyState, KeysError, archive_dir, load_state, private_key_path, public_key_path, timestamp,
    validate_name,
};
use crate::transport::identity::fingerprint;

/// One key, as `remex keys list` shows it (`--json`: an array of these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// The key's name (its file name).
    pub name: String,
    /// The OpenSSH key type, e.g. `ssh-ed25519`.
    #[serde(rename = "type")]
    pub algorithm: String,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// The public key's comment.
    pub comment: String,
    /// When it was generated (UTC, RFC 3339): from the state file, else the
    /// private key file's modification time.
    pub created: String,
    /// The private key file.
    pub path: PathBuf,
    /// The public key file (`NAME.pub`).
    pub public_path: PathBuf,
    /// Whether it is in the archive (rotated away, kept until pruned).
    pub archived: bool,
    /// Hosts whose authorized_keys hold it, per the state file.
    pub deployed_to: Vec<String>,
    /// Hosts remex logs in to with it.
    pub used_by: Vec<String>,
}

/// Which key remex logs in to a host with, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostKeyUse {
    /// The host's name in the config.
    pub host: String,
    /// The key's name (or its path, when it is outside the key directory).
    pub key: String,
    /// The private key file.
    pub path: PathBuf,
    /// `config_key` (the host's `key:`), `state` (deployed or rotated to by
    /// remex) or `default_key`.
    pub source: &'static str,
}

/// `remex keys list`: the keys, which host uses which, and unfinished
/// rotations.
#[derive(Debug, Clone, Serialize)]
pub struct KeyListing {
    /// The key directory.
    pub key_storage_path: PathBuf,
    /// Active keys, then archived ones, each sorted by name.
    pub keys: Vec<KeyInfo>,
    /// One per host of the inventory.
    pub hosts: Vec<HostKeyUse>,
    /// Per host: a rotation that has not finished.
    pub rotations_in_progress: std::collections::BTreeMap<String, super::HostRotation>,
}

impl crate::run::Executor {
    /// The keys in the key directory, which key each host uses, and the
    /// rotations in progress.
    ///
    /// # Errors
    ///
    /// The key directory or the state file cannot be read.
    pub fn keys_list(&self) -> Result<KeyListing, KeysError> {
        let config = self.config();
        let dir = &config.remote_execution.key_storage_path;
        let keys = list(dir)?;
        let state = load_state(dir)?;
        let hosts = config
            .vms
            .iter()
            .map(|(name, vm)| {
                let used = crate::keydir::resolve::host_key(config, &state, name, vm);
                HostKeyUse {
                    host: name.clone(),
                    key: used
                        .name
                        .clone()
                        .unwrap_or_else(|| used.path.display().to_string()),
                    path: used.path,
                    source: match used.source {
                        crate::keydir::resolve::KeySource::Pinned => "config_key",
                        crate::keydir::resolve::KeySource::State => "state",
                        crate::keydir::resolve::KeySource::Default => "default_key",
                    },
                }
            })
            .collect();
        Ok(KeyListing {
            key_storage_path: dir.clone(),
            keys,
            hosts,
            rotations_in_progress: state.rotations,
        })
    }
}

/// Lists the keys in `dir`, then the archived ones, each sorted by name. A
/// missing directory has no keys; an unreadable `.pub` is skipped with a
/// warning.
pub(crate) fn list(dir: &Path) -> Result<Vec<KeyInfo>, KeysError> {
    let state = load_state(dir)?;
    let mut keys = scan(dir, false, &state)?;
    keys.extend(scan(&archive_dir(dir), true, &state)?);
    Ok(keys)
}

/// The keys in one directory.
fn scan(dir: &Path, archived: bool, state: &KeyState) -> Result<Vec<KeyInfo>, KeysError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(KeysError::io("read", dir)(e)),
    };
    let mut keys = Vec::new();
    for entry in entries {
        let entry = entry.map_err(KeysError::io("read", dir))?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(".pub")) else {
            continue;
        };
        if validate_name(name).is_err() {
            continue;
        }
        let private = private_key_path(dir, name);
        let Ok(meta) = std::fs::metadata(&private) else {
            continue; // a lone .pub is not a key remex can use
        };
        if !meta.is_file() {
            continue;
        }
        let public = match read_public(&entry.path()) {
            Ok(key) => key,
            Err(e) => {
                tracing::warn!("skipping key `{name}`: {e}");
                continue;
            }
        };
        let record = state.keys.get(name);
        let created = match record {
            Some(r) => r.created.clone(),
            None => timestamp::rfc3339(meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)),
        };
        let fp = fingerprint(&public);
        if let Some(r) = record.filter(|r| r.fingerprint != fp) {
            tracing::warn!(
                "key `{name}` has fingerprint {fp}, but remex generated {}; it was replaced by hand",
                r.fingerprint
            );
        }
        keys.push(KeyInfo {
            name: name.to_owned(),
            algorithm: public.algorithm().as_str().to_owned(),
            fingerprint: fp,
            comment: public.comment().to_string(),
            created,
            path: private,
            public_path: entry.path(),
            archived,
            deployed_to: state.hosts_with(name),
            used_by: state.hosts_using(name),
        });
    }
    keys.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(keys)
}

/// Parses one `.pub` file.
fn read_public(path: &Path) -> Result<PublicKey, KeysError> {
    let bad = |reason: String| KeysError::BadPublicKeyFile {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    PublicKey::from_openssh(text.trim()).map_err(|e| bad(e.to_string()))
}

/// The public key of key `name`: `DIR/NAME.pub`, or the archived
/// `DIR/archive/NAME.pub` (revoking a rotated-away key needs it).
pub(crate) fn read_public_key(dir: &Path, name: &str) -> Result<PublicKey, KeysError> {
    validate_name(name)?;
    for path in [
        public_key_path(dir, name),
        public_key_path(&archive_dir(dir), name),
    ] {
        if path.exists() {
            return read_public(&path);
        }
    }
    Err(KeysError::NotFound {
        name: name.to_owned(),
        dir: dir.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keydir::archive::archive;
    use crate::keydir::update_state;
    use crate::ops::keys::generate::{KeyKind, generate};
    use crate::test_support::tempdir;

    #[test]
    fn missing_dir_lists_nothing() {
        let tmp = tempdir();
        assert_eq!(list(&tmp.path().join("none")).ok(), Some(Vec::new()));
    }

    #[test]
    fn lists_generated_foreign_and_archived_keys() {
        let tmp = tempdir();
        let dir = tmp.path();
        let a = generate(dir, "a", KeyKind::Ed25519, None, "remex@test")
            .unwrap_or_else(|e| panic!("{e}"));
        generate(dir, "b", KeyKind::Ecdsa { bits: 256 }, None, "remex@test")
            .unwrap_or_else(|e| panic!("{e}"));
        generate(dir, "old", KeyKind::Ed25519, None, "remex@test")
            .unwrap_or_else(|e| panic!("{e}"));
        let archived = archive(dir, "old").unwrap_or_else(|e| panic!("{e}"));
        // A key made by ssh-keygen and copied in: no state record.
        let foreign = dir.join("foreign");
        let mut args: Vec<&std::ffi::OsStr> =
            ["-q", "-t", "ed25519", "-N", "", "-C", "by-hand", "-f"]
                .iter()
                .map(std::ffi::OsStr::new)
                .collect();
        args.push(foreign.as_os_str());
        crate::test_support::ssh_keygen(args);
        // Noise that is not a key.
        std::fs::write(dir.join("lonely.pub"), "ssh-ed25519 AAAA")
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("notes.txt"), "x").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("broken"), "x").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("broken.pub"), "not a key").unwrap_or_else(|e| panic!("{e}"));
        update_state(dir, |s| {
            s.record_deployed("vm01", "a", true);
            s.record_deployed("vm02", "b", true);
            s.record_deployed("vm02", "a", false);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));

        let keys = list(dir).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(
            names,
            ["a", "b", "foreign", archived.archived_name.as_str()]
        );
        let ka = &keys[0];
        assert_eq!(ka.algorithm, "ssh-ed25519");
        assert_eq!(ka.fingerprint, a.fingerprint);
        assert_eq!(ka.created, a.created);
        assert_eq!(ka.comment, "remex@test");
        assert_eq!(ka.deployed_to, ["vm01", "vm02"]);
        assert_eq!(ka.used_by, ["vm01"]);
        assert!(!ka.archived);
        assert_eq!(keys[1].algorithm, "ecdsa-sha2-nistp256");
        assert_eq!(keys[1].used_by, ["vm02"]);
        assert_eq!(keys[2].comment, "by-hand");
        assert!(keys[2].created.ends_with('Z'), "mtime fallback");
        assert!(keys[3].archived);

        let json = serde_json::to_value(&keys[0]).unwrap_or_else(|e| panic!("{e}"));
        let mut fields: Vec<&str> = json
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "archived",
                "comment",
                "created",
                "deployed_to",
                "fingerprint",
                "name",
                "path",
                "public_path",
                "type",
                "used_by"
            ]
        );
    }

    #[test]
    fn public_keys_are_found_in_the_archive_too() {
        let tmp = tempdir();
        let dir = tmp.path();
        let k = generate(dir, "k", KeyKind::Ed25519, None, "c").unwrap_or_else(|e| panic!("{e}"));
        let archived = archive(dir, "k").unwrap_or_else(|e| panic!("{e}"));
        let public =
            read_public_key(dir, &archived.archived_name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fingerprint(&public), k.fingerprint);
        assert!(matches!(
            read_public_key(dir, "k"),
            Err(KeysError::NotFound { .. })
        ));
        assert!(matches!(
            read_public_key(dir, "../x"),
            Err(KeysError::InvalidName { .. })
        ));
    }
}
