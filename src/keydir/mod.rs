//! The key directory (`remote_execution.key_storage_path`, 0700): remex's
//! client keys and what it knows about them.
//!
//! ```text
//! KEY_DIR/NAME              private key, OpenSSH format (0600)
//! KEY_DIR/NAME.pub          its public key line (0644)
//! KEY_DIR/remex-keys.json   the key state (which key each host uses, …)
//! KEY_DIR/archive/          keys rotated away, until pruned
//! KEY_DIR/.locks/            lock files: one host's key step at a time
//! ```
//!
//! It sits below the run layer: the executor reads the state and resolves
//! each host's key through it, and the key operations (`ops/keys`) build
//! the lifecycle on it.
//!
//! - `mod.rs` — the directory's names and paths, [`validate_name`],
//!   [`ensure_key_dir`].
//! - `state.rs` — [`KeyState`], the state file (atomic writes under a
//!   lock).
//! - `host_rotation.rs` — [`HostRotation`], one host's rotation as the
//!   state file records it (the state machine that drives it is
//!   `ops/keys/rotation.rs`).
//! - `archive.rs` — `archive()` a retired key, `prune` the archive.
//! - `lock.rs` — [`lock::KeyLocks`]: a host's turn (key-state changes are
//!   serialized per host, in one process and across processes) and the
//!   whole directory's (archive, prune).
//! - `resolve.rs` — which key remex logs in to a host with.
//! - `timestamp.rs` — the state file's and the archive's UTC timestamps.
//! - `error.rs` — [`KeysError`].
//!
//! **Invariant:** nothing here imports `run` or `ops`.

use std::path::{Path, PathBuf};

pub(crate) mod archive;
mod error;
mod host_rotation;
pub(crate) mod lock;
pub(crate) mod resolve;
pub(crate) mod state;
pub(crate) mod timestamp;

pub use archive::{ArchivedKey, PruneReport, PrunedKey};
pub use error::KeysError;
pub use host_rotation::{HostRotation, RotationStep};
pub use state::{HostKeys, KeyRecord, KeyState};

pub(crate) use state::{load_state, update_state};

/// The state file's name inside the key directory.
pub(crate) const STATE_FILE: &str = "remex-keys.json";

/// The archive's directory name inside the key directory.
pub(crate) const ARCHIVE_DIR: &str = "archive";

/// `DIR/remex-keys.json`, the state file of a key directory.
pub(crate) fn state_path(dir: &Path) -> PathBuf {
    dir.join(STATE_FILE)
}

/// `DIR/archive`.
pub(crate) fn archive_dir(dir: &Path) -> PathBuf {
    dir.join(ARCHIVE_DIR)
}

/// The longest key name: a file name (255 bytes) with room for `.pub`,
/// an archive's `.TIMESTAMP` and a temp file's suffix.
pub(crate) const MAX_NAME: usize = 128;

/// Checks a key name: non-empty, at most [`MAX_NAME`] bytes,
/// `[A-Za-z0-9._-]`, not starting with `.` (so no `/`, no `..`, no hidden
/// or temporary file names).
pub fn validate_name(name: &str) -> Result<(), KeysError> {
    let invalid = |reason| KeysError::InvalidName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.len() > MAX_NAME {
        return Err(invalid(
            "it is longer than 128 bytes (with `.pub` and an archive's time it must stay a file name)",
        ));
    }
    if name.starts_with('.') {
        return Err(invalid("it starts with `.`"));
    }
    if name.contains('/') {
        return Err(invalid("it contains `/`"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(invalid(
            "it contains a character other than letters, digits, `.`, `_`, `-`",
        ));
    }
    if name.ends_with(".pub") {
        return Err(invalid("it ends with `.pub`, the public key's suffix"));
    }
    if name == STATE_FILE || name == ARCHIVE_DIR {
        return Err(invalid("remex uses that name for its own files"));
    }
    Ok(())
}

/// `DIR/NAME`.
pub(crate) fn private_key_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// `DIR/NAME.pub`.
pub(crate) fn public_key_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.pub"))
}

/// Creates the key directory (0700; missing parents with default modes), or
/// checks an existing one: it must be a directory that group and others
/// cannot enter (`chmod 700`), as remex keeps private keys in it.
pub(crate) fn ensure_key_dir(dir: &Path) -> Result<(), KeysError> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err(KeysError::NotADirectory {
            path: dir.to_owned(),
        }),
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(KeysError::DirTooOpen {
                    path: dir.to_owned(),
                    mode,
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(KeysError::io("create", parent))?;
            }
            match std::fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => Ok(()),
                // Created concurrently: check it like an existing one.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => ensure_key_dir(dir),
                Err(e) => Err(KeysError::io("create", dir)(e)),
            }
        }
        Err(e) => Err(KeysError::io("inspect", dir)(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use crate::test_support::{mode, tempdir};

    #[test]
    fn key_dir_permissions() {
        let tmp = tempdir();
        let nested = tmp.path().join("a/b/keys");
        ensure_key_dir(&nested).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode(&nested), 0o700);

        let open = tmp.path().join("open");
        std::fs::create_dir(&open).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        let msg = ensure_key_dir(&open)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            msg.contains(&format!("run `chmod 700 {}`", open.display())),
            "{msg}"
        );

        let file = tmp.path().join("file");
        std::fs::write(&file, "").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            ensure_key_dir(&file),
            Err(KeysError::NotADirectory { .. })
        ));
    }

    #[test]
    fn names_are_validated() {
        for good in [
            "deploy",
            "id_ed25519",
            "k-2026.01",
            "A1",
            &"k".repeat(MAX_NAME),
        ] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".hidden",
            "..",
            "a/b",
            "../x",
            "sp ace",
            "ü",
            "k.pub",
            "archive",
            "remex-keys.json",
            &"k".repeat(MAX_NAME + 1),
        ] {
            assert!(
                matches!(validate_name(bad), Err(KeysError::InvalidName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn paths_inside_the_key_directory() {
        let dir = Path::new("/k");
        assert_eq!(private_key_path(dir, "deploy"), Path::new("/k/deploy"));
        assert_eq!(public_key_path(dir, "deploy"), Path::new("/k/deploy.pub"));
        assert_eq!(state_path(dir), Path::new("/k/remex-keys.json"));
        assert_eq!(archive_dir(dir), Path::new("/k/archive"));
    }
}
