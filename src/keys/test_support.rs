//! Fixtures shared by the key modules' unit tests.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

/// A private temporary directory (0700, as a key directory must be).
pub fn tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .unwrap_or_else(|e| panic!("chmod: {e}"));
    dir
}

/// The permission bits of `path`.
pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}
