//! The key state file, `KEY_DIR/remex-keys.json`: which keys remex made,
//! which key each host uses, which keys are deployed where, and how far a
//! rotation got on each host.
//!
//! The key files themselves are the truth about which keys exist; the state
//! adds what the files cannot say (creation time, hosts, rotation progress).
//! A missing state file reads as empty. The file is replaced atomically
//! (temporary file, fsync, rename) and every read-modify-write holds an
//! exclusive lock on `KEY_DIR/.remex-keys.lock`, so two remex processes
//! cannot lose each other's updates. That lock covers one update; a key
//! operation's whole step on a host (several updates around remote edits)
//! holds the host's turn besides (`lock.rs`).
//!
//! Format (version 1), pretty-printed JSON, maps sorted by name:
//!
//! ```json
//! {
//!   "version": 1,
//!   "keys": {
//!     "deploy": { "type": "ssh-ed25519", "fingerprint": "SHA256:…",
//!                 "created": "2026-01-02T03:04:05Z" },
//!     "old.20260102T030405Z": { "type": "ssh-ed25519", "fingerprint": "SHA256:…",
//!                 "created": "2025-06-01T00:00:00Z",
//!                 "archived": "archive/old.20260102T030405Z" }
//!   },
//!   "hosts": {
//!     "vm01": { "current": "deploy", "deployed": ["deploy"] }
//!   },
//!   "rotations": {
//!     "vm02": { "old": "deploy", "new": "deploy-2", "step": "verified",
//!               "updated": "2026-01-02T03:04:09Z" }
//!   }
//! }
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::lock::{Mode, open_locked};
use super::{HostRotation, KeysError, state_path};
use crate::atomic_file;

/// The lock file taken around every read-modify-write of the state.
const LOCK_FILE: &str = ".remex-keys.lock";

/// The state format this build writes and the newest it reads.
pub(crate) const STATE_VERSION: u32 = 1;

/// Everything remex remembers about its keys and hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyState {
    /// Format version: a newer file is refused instead of misread.
    pub version: u32,
    /// Keys remex generated (or archived), by name.
    #[serde(default)]
    pub keys: BTreeMap<String, KeyRecord>,
    /// Per host: the key remex logs in with and the keys deployed there.
    #[serde(default)]
    pub hosts: BTreeMap<String, HostKeys>,
    /// Per host: an unfinished rotation, so a rerun resumes it.
    #[serde(default)]
    pub rotations: BTreeMap<String, HostRotation>,
}

impl Default for KeyState {
    fn default() -> Self {
        Self {
            version: STATE_VERSION,
            keys: BTreeMap::new(),
            hosts: BTreeMap::new(),
            rotations: BTreeMap::new(),
        }
    }
}

/// What the state remembers about one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The OpenSSH key type (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`).
    #[serde(rename = "type")]
    pub algorithm: String,
    /// `SHA256:…`, to notice a key file replaced behind remex's back.
    pub fingerprint: String,
    /// When remex generated it (UTC, RFC 3339): the files' mtime can change.
    pub created: String,
    /// Where the archived key now lives, relative to the key directory;
    /// `None` while the key is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<String>,
}

/// The keys of one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostKeys {
    /// The key remex logs in with (a key name in the key directory).
    pub current: String,
    /// Every key remex put in the host's authorized_keys and has not
    /// removed, in the order they were deployed.
    #[serde(default)]
    pub deployed: Vec<String>,
}

/// Reads the state; a missing file is an empty state.
pub(crate) fn load_state(dir: &Path) -> Result<KeyState, KeysError> {
    let path = state_path(dir);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(KeyState::default()),
        Err(e) => return Err(KeysError::io("read", &path)(e)),
    };
    parse_state(&path, &bytes)
}

/// Parses state file bytes, checking the version before the shape.
fn parse_state(path: &Path, bytes: &[u8]) -> Result<KeyState, KeysError> {
    let corrupt = |e: serde_json::Error| KeysError::StateCorrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(corrupt)?;
    let version = value
        .get("version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| KeysError::StateCorrupt {
            path: path.to_owned(),
            reason: "no numeric `version` field".to_owned(),
        })?;
    if version > u64::from(STATE_VERSION) {
        return Err(KeysError::StateTooNew {
            path: path.to_owned(),
            version: u32::try_from(version).unwrap_or(u32::MAX),
            supported: STATE_VERSION,
        });
    }
    serde_json::from_value(value).map_err(corrupt)
}

/// Writes the state atomically (mode 0600). Callers that read, change and
/// write should use [`update_state`], which also holds the lock.
pub(crate) fn save_state(dir: &Path, state: &KeyState) -> Result<(), KeysError> {
    let path = state_path(dir);
    let mut bytes = serde_json::to_vec_pretty(state).map_err(|e| KeysError::StateCorrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    bytes.push(b'\n');
    atomic_file::replace(&path, &bytes, 0o600).map_err(KeysError::io("write", &path))
}

/// Runs `change` on the current state under the state lock and saves the
/// result when `change` succeeds (nothing is written when it fails).
pub(crate) fn update_state<T>(
    dir: &Path,
    change: impl FnOnce(&mut KeyState) -> Result<T, KeysError>,
) -> Result<T, KeysError> {
    let _lock = lock_state(dir)?;
    let mut state = load_state(dir)?;
    let out = change(&mut state)?;
    save_state(dir, &state)?;
    Ok(out)
}

/// An exclusive lock on the key directory's state, released on drop.
#[derive(Debug)]
pub(crate) struct StateLock {
    /// The open lock file; closing it releases the `flock`.
    _file: File,
}

/// Takes the exclusive state lock, waiting for another remex to release it.
pub(crate) fn lock_state(dir: &Path) -> Result<StateLock, KeysError> {
    Ok(StateLock {
        _file: open_locked(&dir.join(LOCK_FILE), Mode::Exclusive)?,
    })
}

impl KeyState {
    /// Records a key remex generated.
    pub fn record_key(&mut self, name: &str, record: KeyRecord) {
        self.keys.insert(name.to_owned(), record);
    }

    /// Records that `key` is now in `host`'s authorized_keys; it becomes the
    /// key remex uses for the host when `use_it` is set or the host had none.
    pub fn record_deployed(&mut self, host: &str, key: &str, use_it: bool) {
        match self.hosts.get_mut(host) {
            Some(entry) => {
                if !entry.deployed.iter().any(|k| k == key) {
                    entry.deployed.push(key.to_owned());
                }
                if use_it {
                    key.clone_into(&mut entry.current);
                }
            }
            None => {
                self.hosts.insert(
                    host.to_owned(),
                    HostKeys {
                        current: key.to_owned(),
                        deployed: vec![key.to_owned()],
                    },
                );
            }
        }
    }

    /// Records that `key` was removed from `host`'s authorized_keys. When it
    /// was the key remex used, the earliest other deployed key that is not
    /// archived takes over; with none left the host is forgotten (remex has
    /// no key for it and falls back to the configured one).
    pub fn record_removed(&mut self, host: &str, key: &str) {
        let Some(entry) = self.hosts.get(host) else {
            return;
        };
        let next = (entry.current == key)
            .then(|| self.fallback_key(host, key))
            .flatten();
        let Some(entry) = self.hosts.get_mut(host) else {
            return;
        };
        entry.deployed.retain(|k| k != key);
        if entry.current == key {
            match next {
                Some(next) => entry.current = next,
                None => {
                    self.hosts.remove(host);
                }
            }
        }
    }

    /// Whether `key` can be logged in with: not moved to the archive (a key
    /// the state has no record of, e.g. copied in by hand, counts as
    /// usable). An archived key's private file is not where a login looks.
    pub fn usable(&self, key: &str) -> bool {
        self.keys.get(key).is_none_or(|r| r.archived.is_none())
    }

    /// The earliest key deployed on `host`, other than `key`, that remex can
    /// log in with: what takes over when `key` goes.
    pub fn fallback_key(&self, host: &str, key: &str) -> Option<String> {
        self.hosts
            .get(host)?
            .deployed
            .iter()
            .find(|k| k.as_str() != key && self.usable(k))
            .cloned()
    }

    /// Refuses to revoke the only key remex can use for `host` (the one it
    /// uses, with no other usable deployed key to fall back to), unless
    /// `force`.
    pub fn check_revoke(&self, host: &str, key: &str, force: bool) -> Result<(), KeysError> {
        let Some(entry) = self.hosts.get(host) else {
            return Ok(());
        };
        let fallback = self.fallback_key(host, key).is_some();
        if entry.current == key && !fallback && !force {
            return Err(KeysError::OnlyKey {
                name: key.to_owned(),
                host: host.to_owned(),
            });
        }
        Ok(())
    }

    /// Hosts whose current key is `key`, sorted.
    pub fn hosts_using(&self, key: &str) -> Vec<String> {
        self.hosts
            .iter()
            .filter(|(_, h)| h.current == key)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Hosts where `key` is deployed, sorted.
    pub fn hosts_with(&self, key: &str) -> Vec<String> {
        self.hosts
            .iter()
            .filter(|(_, h)| h.deployed.iter().any(|k| k == key))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Renames every reference to key `from` (its record and host lists).
    pub(crate) fn rename_key(&mut self, from: &str, to: &str) {
        if let Some(record) = self.keys.remove(from) {
            self.keys.insert(to.to_owned(), record);
        }
        for host in self.hosts.values_mut() {
            if host.current == from {
                to.clone_into(&mut host.current);
            }
            for k in &mut host.deployed {
                if k == from {
                    to.clone_into(k);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fp: &str) -> KeyRecord {
        KeyRecord {
            algorithm: "ssh-ed25519".to_owned(),
            fingerprint: fp.to_owned(),
            created: "2026-01-02T03:04:05Z".to_owned(),
            archived: None,
        }
    }

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
    }

    #[test]
    fn missing_file_is_empty_state() {
        let dir = tempdir();
        let state = load_state(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(state, KeyState::default());
        assert_eq!(state.version, STATE_VERSION);
    }

    #[test]
    fn round_trip_and_format() {
        let dir = tempdir();
        let mut state = KeyState::default();
        state.record_key("deploy", record("SHA256:abc"));
        state.record_deployed("vm01", "deploy", true);
        save_state(dir.path(), &state).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(load_state(dir.path()).ok(), Some(state));
        let text =
            std::fs::read_to_string(state_path(dir.path())).unwrap_or_else(|e| panic!("read: {e}"));
        let value: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("json: {e}"));
        assert_eq!(
            value,
            serde_json::json!({
                "version": 1,
                "keys": { "deploy": {
                    "type": "ssh-ed25519",
                    "fingerprint": "SHA256:abc",
                    "created": "2026-01-02T03:04:05Z"
                } },
                "hosts": { "vm01": { "current": "deploy", "deployed": ["deploy"] } },
                "rotations": {}
            })
        );
        assert!(text.ends_with("}\n"));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(state_path(dir.path()))
                .unwrap_or_else(|e| panic!("stat: {e}"))
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn unknown_fields_are_tolerated_newer_versions_refused() {
        let path = Path::new("/k/remex-keys.json");
        let ok = parse_state(path, br#"{"version":1,"future":true}"#);
        assert_eq!(ok.ok(), Some(KeyState::default()));
        let too_new = parse_state(path, br#"{"version":2,"keys":"different shape"}"#);
        assert!(
            matches!(too_new, Err(KeysError::StateTooNew { version: 2, .. })),
            "{too_new:?}"
        );
    }

    #[test]
    fn corrupt_state_is_an_error_naming_the_file() {
        let dir = tempdir();
        std::fs::write(state_path(dir.path()), "{not json").unwrap_or_else(|e| panic!("{e}"));
        let err = load_state(dir.path()).err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(err.contains("remex-keys.json is corrupt"), "{err}");
        assert!(err.contains("move it away"), "{err}");
        let no_version = parse_state(Path::new("s"), b"{}");
        assert!(matches!(no_version, Err(KeysError::StateCorrupt { .. })));
    }

    #[test]
    fn update_state_saves_only_on_success() {
        let dir = tempdir();
        update_state(dir.path(), |s| {
            s.record_key("a", record("SHA256:a"));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let failed: Result<(), _> = update_state(dir.path(), |s| {
            s.record_key("b", record("SHA256:b"));
            Err(KeysError::InvalidComment)
        });
        assert!(failed.is_err());
        let state = load_state(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(state.keys.keys().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn concurrent_updates_are_not_lost() {
        let dir = tempdir();
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let dir = dir.path().to_owned();
                std::thread::spawn(move || {
                    update_state(&dir, |s| {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        s.record_key(&format!("k{i}"), record("SHA256:x"));
                        Ok(())
                    })
                })
            })
            .collect();
        for t in threads {
            t.join()
                .unwrap_or_else(|_| panic!("thread panicked"))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let state = load_state(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(state.keys.len(), 8);
    }

    #[test]
    fn deployed_and_current_bookkeeping() {
        let mut s = KeyState::default();
        s.record_deployed("vm01", "a", false);
        assert_eq!(s.hosts["vm01"].current, "a", "first key becomes current");
        s.record_deployed("vm01", "b", false);
        s.record_deployed("vm01", "b", false);
        assert_eq!(s.hosts["vm01"].deployed, ["a", "b"], "no duplicates");
        assert_eq!(s.hosts["vm01"].current, "a");
        s.record_deployed("vm01", "b", true);
        assert_eq!(s.hosts["vm01"].current, "b");
        assert_eq!(s.hosts_using("b"), ["vm01"]);
        assert_eq!(s.hosts_with("a"), ["vm01"]);

        s.record_removed("vm01", "b");
        assert_eq!(s.hosts["vm01"].current, "a", "falls back to a deployed key");
        s.record_removed("vm01", "a");
        assert!(!s.hosts.contains_key("vm01"), "no key left: host forgotten");
        s.record_removed("nope", "a");
    }

    #[test]
    fn revoke_refuses_the_only_usable_key() {
        let mut s = KeyState::default();
        s.record_deployed("vm01", "a", true);
        let err = s.check_revoke("vm01", "a", false);
        assert!(matches!(err, Err(KeysError::OnlyKey { .. })), "{err:?}");
        let msg = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("--force"), "{msg}");
        assert!(s.check_revoke("vm01", "a", true).is_ok());
        s.record_deployed("vm01", "b", false);
        assert!(
            s.check_revoke("vm01", "a", false).is_ok(),
            "b is a fallback"
        );
        assert!(s.check_revoke("vm01", "b", false).is_ok(), "not current");
        assert!(s.check_revoke("unknown", "a", false).is_ok());
    }

    #[test]
    fn an_archived_key_never_takes_over() {
        // `old` was rotated away elsewhere and archived while still
        // deployed here: it is in the archive, not where a login looks.
        let mut s = KeyState::default();
        s.record_key("old", record("SHA256:o"));
        s.record_deployed("vm01", "cur", true);
        s.record_deployed("vm01", "old", false);
        s.rename_key("old", "old.1");
        if let Some(r) = s.keys.get_mut("old.1") {
            r.archived = Some("archive/old.1".to_owned());
        }
        assert!(!s.usable("old.1") && s.usable("cur") && s.usable("unrecorded"));
        assert_eq!(s.fallback_key("vm01", "cur"), None);
        assert!(
            matches!(
                s.check_revoke("vm01", "cur", false),
                Err(KeysError::OnlyKey { .. })
            ),
            "an archived key is no fallback"
        );
        s.record_deployed("vm01", "next", false);
        assert_eq!(s.fallback_key("vm01", "cur").as_deref(), Some("next"));
        s.record_removed("vm01", "cur");
        assert_eq!(s.hosts["vm01"].current, "next", "not the archived old.1");
        assert_eq!(s.hosts["vm01"].deployed, ["old.1", "next"]);
        // With only an archived key left, remex has no key for the host.
        s.record_removed("vm01", "next");
        assert!(!s.hosts.contains_key("vm01"));
    }

    #[test]
    fn rename_key_follows_every_reference() {
        let mut s = KeyState::default();
        s.record_key("old", record("SHA256:o"));
        s.record_deployed("vm01", "old", true);
        s.record_deployed("vm02", "new", true);
        s.record_deployed("vm02", "old", false);
        s.rename_key("old", "old.1");
        assert!(s.keys.contains_key("old.1") && !s.keys.contains_key("old"));
        assert_eq!(s.hosts["vm01"].current, "old.1");
        assert_eq!(s.hosts["vm02"].deployed, ["new", "old.1"]);
    }
}
