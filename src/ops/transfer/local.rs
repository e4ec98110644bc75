//! The local side: walking what an upload sends, and the directories and
//! atomic files a download writes.
//!
//! A download's temp file is not [`crate::atomic_file`]'s: it is streamed
//! (not written from memory), kept for `--resume`, and renamed only after
//! its SHA-256 matched; only the directory fsync after the rename is shared.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use super::EntryKind;
use crate::atomic_file::sync_parent;

/// One thing an upload sends.
#[derive(Debug, Clone)]
pub(super) struct LocalEntry {
    /// Where it is.
    pub path: PathBuf,
    /// Its path below the destination: the source's own name first, then
    /// the names below it (for a directory source).
    pub rel: Vec<String>,
    /// File, directory or symlink.
    pub kind: EntryKind,
    /// Size in bytes (files).
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Modification time, seconds since the epoch (saturated to `u32` as
    /// SFTP v3 carries it).
    pub mtime: u32,
    /// A symlink's target.
    pub link: Option<String>,
}

/// Walks the sources of an upload: every file, directory (before its
/// contents, names sorted) and symlink. Errors name the path: they stop the
/// run before any host is contacted.
pub(super) fn walk(
    sources: &[PathBuf],
    recursive: bool,
    follow: bool,
) -> Result<Vec<LocalEntry>, String> {
    let mut entries = Vec::new();
    for source in sources {
        let name = source
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| *n != "..")
            .ok_or_else(|| {
                format!(
                    "{}: name a file or directory (its last component becomes the remote name; \
                     names must be UTF-8)",
                    source.display()
                )
            })?
            .to_owned();
        visit(source, vec![name], recursive, follow, true, &mut entries)?;
    }
    Ok(entries)
}

fn visit(
    path: &Path,
    rel: Vec<String>,
    recursive: bool,
    follow: bool,
    top: bool,
    out: &mut Vec<LocalEntry>,
) -> Result<(), String> {
    let meta = if follow || top {
        fs::metadata(path)
    } else {
        fs::symlink_metadata(path)
    }
    .map_err(|e| format!("{}: {e}", path.display()))?;
    let kind = if meta.file_type().is_symlink() {
        EntryKind::Symlink
    } else if meta.is_dir() {
        EntryKind::Dir
    } else if meta.is_file() {
        EntryKind::File
    } else {
        return Err(format!(
            "{}: not a regular file, directory or symlink",
            path.display()
        ));
    };
    if kind == EntryKind::Dir && !recursive {
        return Err(format!(
            "{}: is a directory (use -r to copy directories)",
            path.display()
        ));
    }
    let link = if kind == EntryKind::Symlink {
        let target = fs::read_link(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Some(
            target
                .to_str()
                .ok_or_else(|| format!("{}: the link's target is not UTF-8", path.display()))?
                .to_owned(),
        )
    } else {
        None
    };
    out.push(LocalEntry {
        path: path.to_owned(),
        rel: rel.clone(),
        kind,
        size: if kind == EntryKind::File {
            meta.len()
        } else {
            0
        },
        mode: meta.mode() & 0o7777,
        mtime: u32::try_from(meta.mtime().max(0)).unwrap_or(u32::MAX),
        link,
    });
    if kind == EntryKind::Dir {
        let mut names = Vec::new();
        for entry in fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))? {
            let entry = entry.map_err(|e| format!("{}: {e}", path.display()))?;
            let name = entry.file_name().into_string().map_err(|raw| {
                format!(
                    "{}: the name {raw:?} is not UTF-8, which SFTP cannot carry",
                    path.display()
                )
            })?;
            names.push(name);
        }
        names.sort();
        for name in names {
            let mut below = rel.clone();
            below.push(name.clone());
            visit(&path.join(&name), below, recursive, follow, false, out)?;
        }
    }
    Ok(())
}

/// Makes `root/rel…` a chain of real directories, creating what is
/// missing (mode 0755) and refusing any component that is a symlink or not
/// a directory, so nothing is ever written through a link.
pub(super) fn real_dir(root: &Path, rel: &[String]) -> io::Result<PathBuf> {
    let mut path = root.to_owned();
    for part in rel {
        path.push(part);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(io::Error::other(format!(
                    "{} is a symlink; refusing to write through it",
                    path.display()
                )));
            }
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "{} exists and is not a directory",
                    path.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new().mode(0o755).create(&path)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(path)
}

/// Opens a download's temp file: a new one (an old leftover is removed
/// first), or with `resume_at`, the existing one positioned at that length.
pub(super) fn open_temp(temp: &Path, resume_at: u64) -> io::Result<File> {
    use std::io::Seek as _;
    if resume_at > 0 {
        let mut file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(temp)?;
        file.set_len(resume_at)?;
        file.seek(io::SeekFrom::Start(resume_at))?;
        return Ok(file);
    }
    match fs::remove_file(temp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(temp)
}

/// Finishes a download: flushes the temp file, gives it its mode (and
/// mtime), renames it over `dest`, and flushes the directory so the rename
/// survives a crash.
pub(super) fn commit(
    file: File,
    temp: &Path,
    dest: &Path,
    mode: u32,
    mtime: Option<u32>,
) -> io::Result<()> {
    file.sync_all()?;
    file.set_permissions(fs::Permissions::from_mode(mode & 0o7777))?;
    if let Some(mtime) = mtime {
        file.set_modified(UNIX_EPOCH + Duration::from_secs(u64::from(mtime)))?;
    }
    drop(file);
    fs::rename(temp, dest)?;
    sync_parent(dest)
}

/// Creates a symlink at `dest` atomically (a temp link renamed over it).
pub(super) fn symlink(target: &str, temp: &Path, dest: &Path) -> io::Result<()> {
    match fs::remove_file(temp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::os::unix::fs::symlink(target, temp)?;
    fs::rename(temp, dest)?;
    sync_parent(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_dirs_before_their_contents_and_keeps_links() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let top = dir.path().join("top");
        fs::create_dir_all(top.join("b/empty")).unwrap_or_else(|e| panic!("{e}"));
        fs::write(top.join("a.txt"), b"a").unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink("a.txt", top.join("link")).unwrap_or_else(|e| panic!("{e}"));
        let entries =
            walk(std::slice::from_ref(&top), true, false).unwrap_or_else(|e| panic!("{e}"));
        let rels: Vec<String> = entries.iter().map(|e| e.rel.join("/")).collect();
        assert_eq!(
            rels,
            ["top", "top/a.txt", "top/b", "top/b/empty", "top/link"]
        );
        assert_eq!(entries[4].kind, EntryKind::Symlink);
        assert_eq!(entries[4].link.as_deref(), Some("a.txt"));
        assert!(walk(&[top], false, false).is_err_and(|e| e.contains("use -r")));
    }

    #[test]
    fn real_dir_refuses_symlinks() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink("/tmp", dir.path().join("evil"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(real_dir(dir.path(), &["evil".into(), "x".into()]).is_err());
        let made =
            real_dir(dir.path(), &["ok".into(), "x".into()]).unwrap_or_else(|e| panic!("{e}"));
        assert!(made.is_dir());
    }
}
