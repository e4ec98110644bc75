//! `Include`: the paths and globs it names, read in order, nested at
//! most [`MAX_INCLUDE_DEPTH`] deep.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::error::{Refusal, SshConfigError};
use super::line::{At, Line};
use super::loader::{FileError, Loader, read_config_file};
use crate::pattern::wildcard_match;

/// Deepest nesting of `Include`s (OpenSSH's `READCONF_MAX_DEPTH`).
const MAX_INCLUDE_DEPTH: usize = 16;

impl Loader<'_> {
    /// Reads the files an `Include` line names (already split into
    /// `args`), each parsed at `depth + 1`.
    pub(super) fn include(
        &mut self,
        args: &[String],
        at: At,
        depth: usize,
    ) -> Result<Vec<Vec<Line>>, SshConfigError> {
        let from = self.file(at.file);
        let fail = |refusal: Refusal| refusal.at(from.clone(), at.line, "Include");
        if args.is_empty() {
            return Err(fail(Refusal::invalid("missing argument")));
        }
        let mut included = Vec::new();
        for arg in args {
            let pattern = include_pattern(arg, self.home).map_err(fail)?;
            for path in glob(&pattern).map_err(fail)? {
                if depth + 1 > MAX_INCLUDE_DEPTH {
                    return Err(fail(Refusal::invalid(format!(
                        "Includes nested more than {MAX_INCLUDE_DEPTH} deep (does a file include itself?)"
                    ))));
                }
                let text = match read_config_file(&path) {
                    Ok(Some(text)) => text,
                    // ssh reads nothing from a directory.
                    Ok(None) => continue,
                    // Gone since the glob: ssh skips it too.
                    Err(FileError::Io(err)) if err.kind() == io::ErrorKind::NotFound => continue,
                    Err(FileError::Io(source)) => {
                        return Err(SshConfigError::IncludeRead {
                            file: from,
                            line: at.line,
                            path,
                            source,
                        });
                    }
                    Err(FileError::Permissions) => {
                        return Err(SshConfigError::Permissions { path });
                    }
                };
                let file = self.files.len();
                self.files.push(path);
                included.push(self.parse(&text, file, depth + 1)?);
            }
        }
        Ok(included)
    }
}

/// The glob an `Include` argument stands for: `~` is `home`, a relative
/// path is under `home/.ssh` (OpenSSH's rule for user configs).
fn include_pattern(arg: &str, home: &Path) -> Result<PathBuf, Refusal> {
    if arg.is_empty() {
        return Err(Refusal::invalid("empty path"));
    }
    if arg.contains('[') {
        return Err(Refusal::unsupported(format!(
            "`{arg}`: remex's Include globs have `*` and `?` but no `[...]` classes"
        )));
    }
    if let Some(rest) = arg.strip_prefix('~') {
        return match rest.strip_prefix('/') {
            Some(rest) => Ok(home.join(rest)),
            None if rest.is_empty() => Ok(home.to_path_buf()),
            None => Err(Refusal::unsupported(format!(
                "`{arg}`: `~user` is not expanded; write the full path"
            ))),
        };
    }
    let path = Path::new(arg);
    Ok(if path.is_absolute() {
        path.to_path_buf()
    } else {
        home.join(".ssh").join(path)
    })
}

/// The existing paths `pattern` (absolute) matches, in byte order, as
/// glob(3) finds them: `*` and `?` within one component, hidden names only
/// for a component that starts with `.`.
fn glob(pattern: &Path) -> Result<Vec<PathBuf>, Refusal> {
    let Some(text) = pattern.to_str() else {
        return Err(Refusal::unsupported(format!(
            "`{}`: the path is not UTF-8",
            pattern.display()
        )));
    };
    let mut found = vec![PathBuf::from("/")];
    for component in text.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        if !component.contains(['*', '?']) {
            next = found.iter().map(|dir| dir.join(component)).collect();
        } else {
            for dir in &found {
                let Ok(entries) = fs::read_dir(dir) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    // glob(3) sees bytes; names that are not UTF-8 are
                    // skipped rather than matched lossily.
                    let Some(name) = name.to_str() else { continue };
                    if name.starts_with('.') && !component.starts_with('.') {
                        continue;
                    }
                    if wildcard_match(component, name) {
                        next.push(dir.join(name));
                    }
                }
            }
        }
        found = next;
    }
    found.retain(|path| path.exists());
    found.sort_by(|a, b| {
        a.as_os_str()
            .as_encoded_bytes()
            .cmp(b.as_os_str().as_encoded_bytes())
    });
    Ok(found)
}
