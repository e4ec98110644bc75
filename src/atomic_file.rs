//! Writing a local file's whole content so that a reader sees the old
//! content or the new, never a half-written file, and so that a concurrent
//! writer cannot clobber a key: the one place remex does it (the key files
//! and the key state, known_hosts edits).
//!
//! Both writers put the bytes in a temporary file in the target's own
//! directory (created 0600 and given its final mode before any byte is
//! written, so a private key is never readable by others, not even for a
//! moment), fsync it, then either hard-link it to the final name — which
//! fails when that name exists: create-new semantics — or rename it over
//! the final name. The directory is fsynced afterwards so the new name
//! survives a crash.
//!
//! Not here, on purpose: a download's temp file (`ops/transfer/local.rs`),
//! streamed, kept for `--resume` and renamed only after its SHA-256
//! matched — it shares only [`sync_parent`]; the audit head file
//! (`audit/head.rs`), replaced by rename without an fsync, the price of
//! every commit; renames on a remote host over SFTP.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The marker in temporary file names; listings skip dot-files anyway.
const TEMP_MARKER: &str = ".remex-tmp-";

/// Writes `contents` to `path`, which must not exist yet (else
/// `ErrorKind::AlreadyExists`), with permission bits `mode`.
pub(crate) fn write_new(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let temp = write_temp(path, contents, mode)?;
    let linked = std::fs::hard_link(&temp, path);
    // The temporary name goes either way; on success `path` holds the inode.
    let removed = std::fs::remove_file(&temp);
    linked?;
    removed?;
    sync_parent(path)
}

/// Replaces `path` (or creates it) with `contents` and permission bits `mode`.
pub(crate) fn replace(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let temp = write_temp(path, contents, mode)?;
    if let Err(e) = std::fs::rename(&temp, path) {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    sync_parent(path)
}

/// Moves `from` to `to` (same file system) unless `to` exists
/// (`ErrorKind::AlreadyExists`): a rename would silently replace it.
pub(crate) fn move_new(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::hard_link(from, to)?;
    std::fs::remove_file(from)?;
    sync_parent(to)?;
    sync_parent(from)
}

/// Creates `.NAME.remex-tmp-RANDOM` beside `path` (0600, then exactly
/// `mode`), writes and fsyncs `contents`, and returns its path. Removes it
/// again on failure.
fn write_temp(path: &Path, contents: &[u8], mode: u32) -> io::Result<PathBuf> {
    let dir = parent(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(
        ".{name}{TEMP_MARKER}{:016x}",
        rand::random::<u64>()
    ));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)?;
    let written = (|| {
        // Exactly `mode` (the umask may take bits away; a kept file's mode
        // may be wider than 0600) before any byte is written.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    Ok(temp)
}

/// The directory holding `path` (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// fsyncs the directory holding `path` so a new or renamed entry is durable.
pub(crate) fn sync_parent(path: &Path) -> io::Result<()> {
    File::open(parent(path))?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::mode;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read_dir: {e}"))
            .map(|e| {
                e.unwrap_or_else(|e| panic!("entry: {e}"))
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn write_new_creates_with_mode_and_refuses_existing() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("k");
        write_new(&path, b"one", 0o600).unwrap_or_else(|e| panic!("write: {e}"));
        assert_eq!(std::fs::read(&path).ok(), Some(b"one".to_vec()));
        assert_eq!(mode(&path), 0o600);
        let err = write_new(&path, b"two", 0o600).err();
        assert_eq!(err.map(|e| e.kind()), Some(io::ErrorKind::AlreadyExists));
        assert_eq!(std::fs::read(&path).ok(), Some(b"one".to_vec()));
        assert_eq!(entries(dir.path()), ["k"], "no temporary file left");
    }

    #[test]
    fn write_new_gives_the_public_key_mode() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("k.pub");
        write_new(&path, b"pub", 0o644).unwrap_or_else(|e| panic!("write: {e}"));
        assert_eq!(mode(&path), 0o644);
    }

    #[test]
    fn replace_overwrites_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("state.json");
        replace(&path, b"a", 0o600).unwrap_or_else(|e| panic!("replace: {e}"));
        replace(&path, b"b", 0o600).unwrap_or_else(|e| panic!("replace: {e}"));
        assert_eq!(std::fs::read(&path).ok(), Some(b"b".to_vec()));
        assert_eq!(entries(dir.path()), ["state.json"]);
    }

    #[test]
    fn replace_gives_exactly_the_mode_asked_for() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("known_hosts");
        replace(&path, b"a", 0o644).unwrap_or_else(|e| panic!("replace: {e}"));
        assert_eq!(mode(&path), 0o644);
        replace(&path, b"b", 0o600).unwrap_or_else(|e| panic!("replace: {e}"));
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn move_new_refuses_to_clobber() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "A").unwrap_or_else(|e| panic!("write: {e}"));
        std::fs::write(&b, "B").unwrap_or_else(|e| panic!("write: {e}"));
        let err = move_new(&a, &b).err();
        assert_eq!(err.map(|e| e.kind()), Some(io::ErrorKind::AlreadyExists));
        assert_eq!(std::fs::read_to_string(&b).ok().as_deref(), Some("B"));
        std::fs::remove_file(&b).unwrap_or_else(|e| panic!("rm: {e}"));
        move_new(&a, &b).unwrap_or_else(|e| panic!("move: {e}"));
        assert_eq!(entries(dir.path()), ["b"]);
        assert_eq!(std::fs::read_to_string(&b).ok().as_deref(), Some("A"));
    }
}
