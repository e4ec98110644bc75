//! Retiring keys: [`archive`] moves a key out of use into
//! `KEY_DIR/archive/NAME.TIMESTAMP` (+ `.pub`); [`prune`] deletes archived
//! keys for good.
//!
//! A rotated-away key is archived, not deleted, so an operator can still
//! log in with it if something went wrong; `remex keys prune` ends that.
//! Archiving refuses a key a host still uses or an unfinished rotation
//! needs; pruning keeps a key still deployed somewhere (its `.pub` is what
//! `remex keys revoke` needs to remove it) unless forced. Callers hold the
//! whole directory (`lock::KeyLocks::whole_dir`) around both, so no host's
//! key step sees a key move under it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use super::{
    ARCHIVE_DIR, KeysError, archive_dir, ensure_key_dir, private_key_path, public_key_path,
    timestamp, update_state, validate_name,
};
use crate::atomic_file;

/// A key moved into the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArchivedKey {
    /// The name it had.
    pub name: String,
    /// Its name in the archive (and in the state file from now on):
    /// `NAME.YYYYMMDDTHHMMSSZ`.
    pub archived_name: String,
    /// The archived private key.
    pub private_path: PathBuf,
    /// The archived public key, when there was one.
    pub public_path: Option<PathBuf>,
}

impl ArchivedKey {
    /// Replaces secrets in its names and paths.
    pub(crate) fn redact(&mut self, redactor: &crate::audit::Redactor) {
        let path = |p: &mut PathBuf| {
            if let std::borrow::Cow::Owned(text) = redactor.redact(&p.to_string_lossy()) {
                *p = PathBuf::from(text);
            }
        };
        self.name = redactor.redact(&self.name).into_owned();
        self.archived_name = redactor.redact(&self.archived_name).into_owned();
        path(&mut self.private_path);
        if let Some(public) = &mut self.public_path {
            path(public);
        }
    }
}

/// Moves key `name` (private key and `.pub`) into `KEY_DIR/archive` (0700)
/// as `NAME.TIMESTAMP`, and renames it so in the state. Refuses a key that a
/// host uses or that an unfinished rotation still needs.
pub(crate) fn archive(dir: &Path, name: &str) -> Result<ArchivedKey, KeysError> {
    validate_name(name)?;
    update_state(dir, |state| {
        let private = private_key_path(dir, name);
        if std::fs::symlink_metadata(&private).is_err() {
            return Err(KeysError::NotFound {
                name: name.to_owned(),
                dir: dir.to_owned(),
            });
        }
        let users = state.hosts_using(name);
        if !users.is_empty() {
            return Err(KeysError::StillInUse {
                name: name.to_owned(),
                why: "the key remex uses on",
                hosts: users.join(", "),
            });
        }
        let rotating: Vec<&str> = state
            .rotations
            .iter()
            .filter(|(_, r)| r.new == name || r.old.as_deref() == Some(name))
            .map(|(host, _)| host.as_str())
            .collect();
        if !rotating.is_empty() {
            return Err(KeysError::StillInUse {
                name: name.to_owned(),
                why: "part of an unfinished rotation on",
                hosts: rotating.join(", "),
            });
        }

        let archive = archive_dir(dir);
        ensure_key_dir(&archive)?;
        let stamp = timestamp::compact(SystemTime::now());
        let public = public_key_path(dir, name);
        let has_public = std::fs::symlink_metadata(&public).is_ok();
        // A second archive of the same name within a second gets a suffix;
        // `move_new` refuses to overwrite anyway.
        let mut n = 1;
        let archived_name = loop {
            let candidate = if n == 1 {
                format!("{name}.{stamp}")
            } else {
                format!("{name}.{stamp}-{n}")
            };
            let taken = [
                private_key_path(&archive, &candidate),
                public_key_path(&archive, &candidate),
            ]
            .iter()
            .any(|p| std::fs::symlink_metadata(p).is_ok());
            if !taken {
                break candidate;
            }
            n += 1;
        };
        let private_to = private_key_path(&archive, &archived_name);
        let public_to = public_key_path(&archive, &archived_name);
        atomic_file::move_new(&private, &private_to).map_err(KeysError::io("archive", &private))?;
        if has_public && let Err(e) = atomic_file::move_new(&public, &public_to) {
            // Put the private key back: archive all or nothing.
            let _ = atomic_file::move_new(&private_to, &private);
            return Err(KeysError::io("archive", &public)(e));
        }

        state.rename_key(name, &archived_name);
        if let Some(record) = state.keys.get_mut(&archived_name) {
            record.archived = Some(format!("{ARCHIVE_DIR}/{archived_name}"));
        }
        tracing::info!(key = name, archived = %archived_name, "archived key");
        Ok(ArchivedKey {
            name: name.to_owned(),
            archived_name,
            private_path: private_to,
            public_path: has_public.then_some(public_to),
        })
    })
}

/// An archived key `keys prune` looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrunedKey {
    /// Its archived name.
    pub name: String,
    /// Its files (deleted, or kept).
    pub files: Vec<PathBuf>,
    /// Hosts whose authorized_keys still hold it, per the state.
    pub deployed_to: Vec<String>,
}

/// What `keys prune` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Archived keys deleted.
    pub removed: Vec<PrunedKey>,
    /// Archived keys kept because they are still deployed somewhere (run
    /// `remex keys revoke HOSTS --name NAME`, or prune with `force`).
    pub kept: Vec<PrunedKey>,
}

/// Deletes the archived keys (and their state records). A key the state
/// says is still deployed on some host is kept unless `force`, since its
/// `.pub` is what a revoke needs.
pub(crate) fn prune(dir: &Path, force: bool) -> Result<PruneReport, KeysError> {
    let archive = archive_dir(dir);
    if !archive.is_dir() {
        return Ok(PruneReport::default());
    }
    update_state(dir, |state| {
        let mut report = PruneReport::default();
        for (name, files) in archived_files(&archive)? {
            let deployed_to = state.hosts_with(&name);
            let key = PrunedKey {
                name: name.clone(),
                files,
                deployed_to,
            };
            if !key.deployed_to.is_empty() && !force {
                report.kept.push(key);
                continue;
            }
            for file in &key.files {
                match std::fs::remove_file(file) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(KeysError::io("remove", file)(e)),
                }
            }
            state.keys.remove(&name);
            for host in &key.deployed_to {
                state.record_removed(host, &name);
            }
            report.removed.push(key);
        }
        Ok(report)
    })
}

/// Archived keys by name, each with its files (`NAME`, `NAME.pub`), sorted.
fn archived_files(archive: &Path) -> Result<BTreeMap<String, Vec<PathBuf>>, KeysError> {
    let mut keys: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let entries = std::fs::read_dir(archive).map_err(KeysError::io("read", archive))?;
    for entry in entries {
        let entry = entry.map_err(KeysError::io("read", archive))?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        // Dot-files are not keys (a crash may leave a temporary file).
        if file_name.starts_with('.') {
            continue;
        }
        let name = file_name.strip_suffix(".pub").unwrap_or(file_name);
        keys.entry(name.to_owned()).or_default().push(entry.path());
    }
    for files in keys.values_mut() {
        files.sort();
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keydir::{HostRotation, KeyRecord, RotationStep, load_state};
    use crate::test_support::tempdir;
    use std::os::unix::fs::PermissionsExt as _;

    /// A key's two files (what `keys generate` writes; archiving does not
    /// read them) and its record in the state.
    fn new_key(dir: &Path, name: &str) {
        update_state(dir, |state| {
            let write = |path: PathBuf, mode| {
                atomic_file::write_new(&path, name.as_bytes(), mode)
                    .map_err(KeysError::io("write", path))
            };
            write(private_key_path(dir, name), 0o600)?;
            write(public_key_path(dir, name), 0o644)?;
            state.record_key(
                name,
                KeyRecord {
                    algorithm: "ssh-ed25519".to_owned(),
                    fingerprint: format!("SHA256:{name}"),
                    created: "2026-01-02T03:04:05Z".to_owned(),
                    archived: None,
                },
            );
            Ok(())
        })
        .unwrap_or_else(|e| panic!("new key: {e}"));
    }

    #[test]
    fn archive_moves_both_files_and_renames_in_state() {
        let tmp = tempdir();
        let dir = tmp.path();
        new_key(dir, "old");
        let fingerprint = load_state(dir)
            .map(|s| s.keys["old"].fingerprint.clone())
            .ok();
        let archived = archive(dir, "old").unwrap_or_else(|e| panic!("{e}"));
        assert!(!dir.join("old").exists() && !dir.join("old.pub").exists());
        assert!(archived.private_path.is_file());
        assert!(archived.public_path.as_ref().is_some_and(|p| p.is_file()));
        assert!(archived.archived_name.starts_with("old.20"));
        assert!(archived.archived_name.ends_with('Z'));
        let mode = std::fs::metadata(archive_dir(dir))
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(mode, 0o700);
        let private_mode = std::fs::metadata(&archived.private_path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(private_mode, 0o600, "mode kept");

        let state = load_state(dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(!state.keys.contains_key("old"));
        let record = &state.keys[&archived.archived_name];
        assert_eq!(Some(record.fingerprint.clone()), fingerprint);
        assert_eq!(
            record.archived.as_deref(),
            Some(format!("archive/{}", archived.archived_name).as_str())
        );

        // The name is free again, and a second archive gets its own name.
        new_key(dir, "old");
        let second = archive(dir, "old").unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(second.archived_name, archived.archived_name);
        assert!(second.private_path.is_file() && archived.private_path.is_file());
    }

    #[test]
    fn archive_refuses_keys_in_use() {
        let tmp = tempdir();
        let dir = tmp.path();
        new_key(dir, "k");
        update_state(dir, |s| {
            s.record_deployed("vm01", "k", true);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let msg = archive(dir, "k")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            msg,
            "key `k` is still the key remex uses on vm01; finish `remex keys rotate` there first"
        );
        assert!(dir.join("k").exists());

        new_key(dir, "next");
        update_state(dir, |s| {
            let rotation = HostRotation {
                old: Some("k".to_owned()),
                new: "next".to_owned(),
                step: RotationStep::Generated,
                updated: "2026-01-02T03:04:05Z".to_owned(),
            };
            s.rotations.insert("vm01".to_owned(), rotation);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let err = archive(dir, "next");
        assert!(matches!(err, Err(KeysError::StillInUse { why, .. }) if why.contains("rotation")));

        let err = archive(dir, "missing");
        assert!(matches!(err, Err(KeysError::NotFound { .. })));
    }

    #[test]
    fn prune_deletes_archived_keys_but_keeps_deployed_ones() {
        let tmp = tempdir();
        let dir = tmp.path();
        new_key(dir, "gone");
        new_key(dir, "still-out-there");
        new_key(dir, "active");
        let gone = archive(dir, "gone").unwrap_or_else(|e| panic!("{e}"));
        update_state(dir, |s| {
            s.record_deployed("vm01", "active", true);
            s.record_deployed("vm01", "still-out-there", false);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let out = archive(dir, "still-out-there").unwrap_or_else(|e| panic!("{e}"));

        let report = prune(dir, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.removed.len(), 1);
        assert_eq!(report.removed[0].name, gone.archived_name);
        assert_eq!(report.removed[0].files.len(), 2);
        assert!(!gone.private_path.exists());
        assert_eq!(report.kept.len(), 1);
        assert_eq!(report.kept[0].deployed_to, ["vm01"]);
        assert!(out.private_path.exists());
        assert!(dir.join("active").exists(), "active keys are never pruned");
        let state = load_state(dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(!state.keys.contains_key(&gone.archived_name));

        let forced = prune(dir, true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(forced.removed.len(), 1);
        assert!(!out.private_path.exists());
        let state = load_state(dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(state.hosts["vm01"].deployed, ["active"]);

        assert_eq!(prune(dir, false).ok(), Some(PruneReport::default()));
    }

    #[test]
    fn prune_without_archive_does_nothing() {
        let tmp = tempdir();
        assert_eq!(prune(tmp.path(), false).ok(), Some(PruneReport::default()));
        assert!(!tmp.path().join("remex-keys.json").exists());
    }
}
