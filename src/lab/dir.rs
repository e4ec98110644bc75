//! Opening the directory of an existing lab, for `down`, `status` and
//! `up` (which first makes it ready: `up.rs`).

use std::fs;
use std::path::Path;

use super::error::LabError;
use super::layout::Layout;

/// The layout of an existing directory, with its canonical path.
pub(super) fn existing_layout(dir: &Path) -> Result<Layout, LabError> {
    let dir = fs::canonicalize(dir).map_err(|source| LabError::io("open", dir, source))?;
    Ok(Layout { dir })
}
