//! The loader: config text → [`Line`]s, every value checked, and the
//! files `ssh` would refuse to read (owner, mode) refused.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::criteria::{Test, host_patterns, match_criteria};
use super::error::{Refusal, SshConfigError};
use super::keyword::Keyword;
use super::lexer::{split_args, split_keyword};
use super::line::{At, Line};
use super::values::setting;

/// State shared by the files of one load.
pub(super) struct Loader<'h> {
    /// Where a relative `Include` and `~` point (`home/.ssh`, `home`).
    pub(super) home: &'h Path,
    /// Every file read so far, the top one first.
    pub(super) files: Vec<PathBuf>,
    /// The first `Match final` seen.
    pub(super) final_pass: Option<At>,
}

impl Loader<'_> {
    /// The lines of `text`, file number `file`, read at `depth` (0 for the
    /// top file).
    pub(super) fn parse(
        &mut self,
        text: &str,
        file: usize,
        depth: usize,
    ) -> Result<Vec<Line>, SshConfigError> {
        let path = self.file(file);
        let mut lines = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let at = At {
                file,
                line: index + 1,
            };
            let Some((word, rest)) = split_keyword(raw) else {
                continue;
            };
            let keyword = Keyword::find(word);
            let fail = |refusal: Refusal| {
                let name = keyword.map_or(word, |keyword| keyword.name());
                refusal.at(path.clone(), at.line, name)
            };
            if rest.is_empty() {
                return Err(fail(Refusal::invalid("no argument after the keyword")));
            }
            let args = split_args(rest).map_err(fail)?;
            let line = match keyword {
                None => Line::Ignored {
                    keyword: word.to_owned(),
                    at,
                },
                Some(Keyword::Host) => Line::Host {
                    patterns: host_patterns(&args).map_err(fail)?,
                },
                Some(Keyword::Match) => {
                    let criteria = match_criteria(&args).map_err(fail)?;
                    if self.final_pass.is_none()
                        && criteria
                            .iter()
                            .any(|c| matches!(&c.test, Test::Unsupported(name) if name == "final"))
                    {
                        self.final_pass = Some(at);
                    }
                    Line::Match { criteria, at }
                }
                Some(Keyword::Include) => Line::Include {
                    files: self.include(&args, at, depth)?,
                },
                Some(keyword) => Line::Set {
                    setting: setting(keyword, &args, rest).map_err(fail)?,
                    at,
                },
            };
            lines.push(line);
        }
        Ok(lines)
    }

    /// The path of file number `file`.
    pub(super) fn file(&self, file: usize) -> PathBuf {
        self.files.get(file).cloned().unwrap_or_default()
    }
}

/// Why a config file could not be read.
pub(super) enum FileError {
    Io(io::Error),
    Permissions,
}

/// The text of the config file at `path`; `None` for a directory. Refuses
/// a file `ssh` would refuse for its owner or mode.
pub(super) fn read_config_file(path: &Path) -> Result<Option<String>, FileError> {
    use std::io::Read as _;
    let mut file = fs::File::open(path).map_err(FileError::Io)?;
    let meta = file.metadata().map_err(FileError::Io)?;
    if meta.is_dir() {
        return Ok(None);
    }
    if !safe_owner_and_mode(&meta) {
        return Err(FileError::Permissions);
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(FileError::Io)?;
    Ok(Some(text))
}

/// OpenSSH's check on config files: owned by root or the user, and not
/// writable by group or others.
#[cfg(unix)]
fn safe_owner_and_mode(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    #[allow(unsafe_code)]
    // SAFETY: getuid(2) takes no arguments, cannot fail and touches no memory
    // of ours.
    let uid = unsafe { libc::getuid() };
    (meta.uid() == 0 || meta.uid() == uid) && meta.mode() & 0o022 == 0
}

#[cfg(not(unix))]
fn safe_owner_and_mode(_meta: &fs::Metadata) -> bool {
    true
}
