//! [`Fresh`]: a value read from a file and read again when the file
//! changes — how a long-lived process sees a `hosts forget`, a `trust` or a
//! `keys rotate` done by another process, without reading the file on every
//! use.
//!
//! A file is taken as unchanged while its device, inode, size, mtime and
//! ctime are (an atomic replace makes a new inode; an edit in place moves
//! the size or the times). A load that fails is not kept: the next use
//! tries again. A writer in this process calls [`Fresh::invalidate`] after
//! its own change, so the change is seen at once even within one tick of a
//! coarse file-system clock.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// What identifies one version of a file; `None` for a missing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    /// The stamp of the file at `path` now; `None` when it is missing (or
    /// its metadata cannot be read, which the load will then report).
    pub(crate) fn of(path: &Path) -> Option<Stamp> {
        let meta = std::fs::metadata(path).ok()?;
        let ns = |secs: i64, nanos: i64| i128::from(secs) * 1_000_000_000 + i128::from(nanos);
        Some(Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        })
    }
}

/// A value loaded from the file at a path, reloaded when the file changes.
#[derive(Debug)]
pub(crate) struct Fresh<T> {
    /// The file.
    path: PathBuf,
    /// The last value loaded, and the file's stamp before that load.
    cached: Mutex<Option<(Option<Stamp>, Arc<T>)>>,
}

impl<T> Fresh<T> {
    /// Nothing loaded yet from `path`.
    pub(crate) fn new(path: impl Into<PathBuf>) -> Self {
        Fresh {
            path: path.into(),
            cached: Mutex::new(None),
        }
    }

    /// The file this value comes from.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The value for the file as it is now: the cached one while the file
    /// is unchanged, else `load(path)` (whose error is returned, not kept).
    pub(crate) fn get<E>(&self, load: impl FnOnce(&Path) -> Result<T, E>) -> Result<Arc<T>, E> {
        // The stamp is taken before the load: a change during the load
        // makes the next call load again rather than keep a stale value.
        let stamp = Stamp::of(&self.path);
        if let Some((seen, value)) = self.lock().as_ref()
            && *seen == stamp
        {
            return Ok(value.clone());
        }
        let value = Arc::new(load(&self.path)?);
        *self.lock() = Some((stamp, value.clone()));
        Ok(value)
    }

    /// Forgets the cached value: the next [`Fresh::get`] loads again.
    pub(crate) fn invalidate(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Option<Stamp>, Arc<T>)>> {
        self.cached.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn read(loads: &AtomicUsize) -> impl Fn(&Path) -> Result<String, String> + '_ {
        move |path| {
            loads.fetch_add(1, Ordering::SeqCst);
            std::fs::read_to_string(path).map_err(|e| e.to_string())
        }
    }

    #[test]
    fn an_unchanged_file_is_read_once_and_a_changed_one_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "one").unwrap();
        let fresh = Fresh::new(&path);
        let loads = AtomicUsize::new(0);
        assert_eq!(*fresh.get(read(&loads)).unwrap(), "one");
        assert_eq!(*fresh.get(read(&loads)).unwrap(), "one");
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        // Replaced atomically (a new inode), as remex's own writers do.
        let next = dir.path().join("f.new");
        std::fs::write(&next, "two").unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert_eq!(*fresh.get(read(&loads)).unwrap(), "two");
        // Appended in place.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"+"))
            .unwrap();
        assert_eq!(*fresh.get(read(&loads)).unwrap(), "two+");
        assert_eq!(loads.load(Ordering::SeqCst), 3);
        fresh.invalidate();
        assert_eq!(*fresh.get(read(&loads)).unwrap(), "two+");
        assert_eq!(loads.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn a_failed_load_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing");
        let fresh = Fresh::new(&path);
        let loads = AtomicUsize::new(0);
        assert!(fresh.get(read(&loads)).is_err());
        assert!(fresh.get(read(&loads)).is_err());
        assert_eq!(loads.load(Ordering::SeqCst), 2);
        std::fs::write(&path, "here").unwrap();
        assert_eq!(*fresh.get(read(&loads)).unwrap(), "here");
    }
}
