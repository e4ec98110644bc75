//! Writing the lab's files with their modes.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use super::error::LabError;

/// Writes `contents` to `path` (replacing it) and sets its mode.
pub(super) fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), LabError> {
    let result = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .and_then(|mut file| {
            file.write_all(contents)?;
            file.set_permissions(fs::Permissions::from_mode(mode))
        });
    result.map_err(|source| LabError::io("write", path, source))
}
