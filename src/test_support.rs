//! Fixtures shared by unit tests (the key directory's, the key operations',
//! atomic files').

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

/// A private temporary directory (0700, as a key directory must be).
pub(crate) fn tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .unwrap_or_else(|e| panic!("chmod: {e}"));
    dir
}

/// The permission bits of `path`.
pub(crate) fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Runs the real `ssh-keygen ARGS…`, fails the test unless it succeeds, and
/// returns its stdout.
pub(crate) fn ssh_keygen<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<S> = args.into_iter().collect();
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    let out = Command::new("ssh-keygen")
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("ssh-keygen: {e}"));
    assert!(
        out.status.success(),
        "ssh-keygen {} failed: {}",
        shown.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
