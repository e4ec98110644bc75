//! [`SshConfigError`], what a caller is told, and [`Refusal`], what is
//! wrong with a line before its file and line are known.

use std::io;
use std::path::PathBuf;

/// Why an ssh_config could not be read, or not answered for a host.
///
/// Errors about a line name it: `FILE:LINE: KEYWORD: message`, e.g.
/// `/home/me/.ssh/config:14: Port: bad port "abc": give a number from 1 to 65535`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SshConfigError {
    /// The file given to [`SshConfig::load`](super::SshConfig::load) could not be read, or is not
    /// UTF-8.
    #[error("cannot read the ssh config file {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },

    /// A file an `Include` found could not be read, or is not UTF-8.
    #[error("{}:{}: Include: cannot read {}", .file.display(), .line, .path.display())]
    IncludeRead {
        /// The file with the `Include` line.
        file: PathBuf,
        /// The `Include` line, from 1.
        line: usize,
        /// The included file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },

    /// A file is writable by group or others, or owned by someone other
    /// than the user or root: `ssh` refuses to read it, and so does remex.
    #[error(
        "bad owner or permissions on {}: an ssh config must be owned by you (or root) and writable only by its owner (chmod go-w)",
        .path.display()
    )]
    Permissions {
        /// The file.
        path: PathBuf,
    },

    /// A line `ssh` refuses too: a bad value (`Port abc`,
    /// `ConnectTimeout -1`), a keyword with no or too many arguments, a
    /// quote left open, an unknown `Match` criterion, `Include`s nested too
    /// deep, an unknown `%` token.
    #[error("{}:{}: {}: {}", .file.display(), .line, .keyword, .message)]
    Invalid {
        /// The file of the line.
        file: PathBuf,
        /// The line, from 1.
        line: usize,
        /// The keyword, as ssh_config(5) spells it when remex knows it.
        keyword: String,
        /// What is wrong, and what was expected.
        message: String,
    },

    /// A line `ssh` accepts but remex cannot follow faithfully (`Match
    /// exec`, `Match final`, a `%l` token, `${VAR}`, `~user`, ...), so it
    /// refuses rather than guess.
    #[error("{}:{}: {}: {}", .file.display(), .line, .keyword, .message)]
    Unsupported {
        /// The file of the line.
        file: PathBuf,
        /// The line, from 1.
        line: usize,
        /// The keyword, as ssh_config(5) spells it.
        keyword: String,
        /// What remex does not do, and what to write instead.
        message: String,
    },
}

/// What is wrong with a line, before the line is known: becomes an
/// [`SshConfigError::Invalid`] or [`SshConfigError::Unsupported`].
#[derive(Debug)]
pub(super) struct Refusal {
    /// `ssh` accepts it; remex does not follow it.
    pub(super) unsupported: bool,
    /// What is wrong.
    pub(super) message: String,
}

impl Refusal {
    pub(super) fn invalid(message: impl Into<String>) -> Refusal {
        Refusal {
            unsupported: false,
            message: message.into(),
        }
    }

    pub(super) fn unsupported(message: impl Into<String>) -> Refusal {
        Refusal {
            unsupported: true,
            message: message.into(),
        }
    }

    pub(super) fn at(self, file: PathBuf, line: usize, keyword: &str) -> SshConfigError {
        let keyword = keyword.to_owned();
        let message = self.message;
        if self.unsupported {
            SshConfigError::Unsupported {
                file,
                line,
                keyword,
                message,
            }
        } else {
            SshConfigError::Invalid {
                file,
                line,
                keyword,
                message,
            }
        }
    }
}
