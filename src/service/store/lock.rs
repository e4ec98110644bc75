//! [`StoreLock`]: one `remex serve` per embedded store.
//!
//! A service takes its store's jobs for its own: at start it marks every
//! job left `queued` or `running` as `interrupted` (a crash left them), and
//! it runs the jobs it accepts. A second service on the same store would
//! take the first one's running jobs for a crash. So `serve` holds an
//! exclusive lock (`flock`, through [`File::try_lock`]) on `STORE.lock`
//! beside the store (the store's real path: a symlink leads to the same
//! lock) for its whole life, and writes there who holds it. The kernel
//! drops the lock when the process ends, however it ends; the file stays
//! (removing it would let two services lock two different files).
//! `remex tokens` does not take it: it only adds and revokes tokens.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use super::StoreError;

/// The lock a running service holds on its store.
#[derive(Debug)]
pub(crate) struct StoreLock {
    /// The open, locked file: closing it releases the lock.
    _file: File,
    /// Where it is.
    path: PathBuf,
}

impl StoreLock {
    /// Locks `store` (which exists) for this process, or says who holds
    /// it: [`StoreError::InUse`].
    ///
    /// # Errors
    ///
    /// Another process holds the lock, or the lock file cannot be made.
    pub(crate) fn acquire(store: &Path) -> Result<StoreLock, StoreError> {
        let db = |message: String| StoreError::Db {
            path: store.display().to_string(),
            message,
        };
        let real = store
            .canonicalize()
            .map_err(|e| db(format!("cannot resolve its path: {e}")))?;
        let mut name = real.file_name().unwrap_or_default().to_owned();
        name.push(".lock");
        let path = real.with_file_name(name);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| db(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(StoreError::InUse {
                    path: real.display().to_string(),
                    holder: if holder.is_empty() {
                        "another remex serve (starting: it has not said which yet)".to_owned()
                    } else {
                        holder.to_owned()
                    },
                });
            }
            Err(TryLockError::Error(e)) => {
                return Err(db(format!("cannot lock {}: {e}", path.display())));
            }
        }
        let holder = format!(
            "remex serve, pid {} on {}, since {}\n",
            std::process::id(),
            crate::audit::hostname(),
            crate::audit::format_ms(crate::audit::system_to_ms(std::time::SystemTime::now()))
        );
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(holder.as_bytes()))
            .map_err(|e| db(format!("cannot write {}: {e}", path.display())))?;
        Ok(StoreLock { _file: file, path })
    }

    /// The lock file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_told_who_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("service.db");
        std::fs::write(&store, b"").unwrap();
        let first = StoreLock::acquire(&store).unwrap();
        assert_eq!(
            first.path(),
            dir.path().canonicalize().unwrap().join("service.db.lock")
        );
        // Through a symlinked directory: the same store, the same lock.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        for path in [store.clone(), link.join("service.db")] {
            match StoreLock::acquire(&path) {
                Err(StoreError::InUse { holder, .. }) => {
                    assert!(
                        holder.contains(&format!("pid {}", std::process::id())),
                        "{holder}"
                    );
                    assert!(holder.contains(" since "), "{holder}");
                }
                other => panic!("{other:?}"),
            }
        }
        drop(first);
        let again = StoreLock::acquire(&link.join("service.db")).unwrap();
        let said = std::fs::read_to_string(again.path()).unwrap();
        assert_eq!(said.lines().count(), 1, "{said}");
    }
}
