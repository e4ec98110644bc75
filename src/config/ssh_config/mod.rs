//! OpenSSH client config files (`~/.ssh/config`, ssh_config(5)): what they
//! say about one host alias, and where each value comes from.
//!
//! [`SshConfig::load`] reads a file and the files its `Include`s name;
//! [`SshConfig::resolve`] walks it for one alias as `ssh` does and returns
//! the [`HostSettings`] remex uses, each value [`Sourced`] with its file and
//! line, so a listing can say "port 2222 (from ~/.ssh/config:14)".
//!
//! ```
//! use std::path::Path;
//! use remex::config::ssh_config::{LocalAccount, SshConfig};
//!
//! let text = "Host web*\n  User deploy\n  Port 2222\nHost *\n  Port 22\n";
//! let config = SshConfig::parse(text, Path::new("/home/me/.ssh/config"), Path::new("/home/me"))?;
//! let me = LocalAccount { user: "me".into(), home: "/home/me".into() };
//! let web1 = config.resolve("web1", &me)?;
//! let port = web1.port.expect("set by the first block");
//! assert_eq!((port.value, port.line), (2222, 3)); // the first value obtained wins
//! # Ok::<(), remex::config::ssh_config::SshConfigError>(())
//! ```
//!
//! # What is read
//!
//! `Host`, `Match`, `Include`, and the values `HostName`, `User`, `Port`,
//! `IdentityFile`, `CertificateFile`, `ProxyJump`, `ProxyCommand`,
//! `ConnectTimeout`, `ServerAliveInterval`, `ServerAliveCountMax` and
//! `AddressFamily`. Every other keyword is skipped (OpenSSH has about a
//! hundred); those in blocks that applied to the host are listed in
//! [`HostSettings::ignored`], for a debug line.
//!
//! # The rules (OpenSSH's `readconf.c`, checked against `ssh -G` 9.2)
//!
//! - **Lines.** Keywords are case-insensitive; `Key value`, `Key=value` and
//!   `Key = value` are the same. Arguments are split on blanks; `"..."` and
//!   `'...'` quote, `\` escapes a quote, a `\` or a blank; a `#` that starts
//!   an argument comments out the rest of the line (`a#b` is one argument).
//!   A keyword with no argument, extra arguments after a one-value keyword,
//!   or a quote left open is an error.
//! - **`Host`** patterns (`*`, `?`, `!negated`, several per line) match the
//!   alias as typed, case-sensitively. A block applies when one pattern
//!   matches and no negated one does (so `Host !a` alone applies to
//!   nothing). Lines before the first `Host` or `Match` apply to every host.
//! - **`Match`** takes `all`, `host`, `originalhost`, `user` and `localuser`,
//!   each negatable with `!`, all of which must hold. `host` matches the
//!   `HostName` obtained *so far* (its `%h` expanded), else the alias;
//!   `originalhost` the alias; both case-insensitively, with
//!   comma-separated lists such as `a*,!ab`. `user` matches the `User`
//!   obtained so far, else the local user; `localuser` the local user.
//! - **First obtained value wins** for every one-value keyword, across
//!   blocks in file order and into `Include`d files at the point of
//!   inclusion. `IdentityFile` and `CertificateFile` accumulate in order
//!   (an exact duplicate is dropped; at most 100 each). `ProxyJump` and
//!   `ProxyCommand` exclude each other: whichever comes first wins, and
//!   `ProxyCommand none` blocks later `ProxyJump`s too; but `ProxyJump
//!   none` blocks only later `ProxyJump`s, a later `ProxyCommand` still
//!   applies (OpenSSH 9.2 does this; `ssh -G` shows it).
//!   `ConnectTimeout none` and `ServerAliveInterval none` obtain nothing,
//!   so a later line may still set them.
//! - **`Include`** takes paths or globs (`*`, `?`); a relative one is under
//!   `~/.ssh` (remex reads user configs only). Matches are read in byte
//!   order, hidden files only when the pattern's component starts with
//!   `.`; no match is not an error; directories are skipped. An included
//!   file starts in the including block's state, and a `Host` or `Match`
//!   inside it ends with it. Nesting deeper than 16 is an error (a file
//!   including itself ends there).
//! - **Values are checked in every block**, whether it applies or not
//!   (`Port abc` under `Host nomatch` is an error, as in `ssh`), at load.
//! - **Tokens** are expanded after the whole walk, when every value is
//!   known. `HostName`: `%h` (the alias) and `%%`; the result is lower-cased.
//!   `IdentityFile`, `CertificateFile`: a leading `~`, then `%d` (home),
//!   `%u` (local user), `%h` (the host name), `%r` (the remote user), `%p`
//!   (the port), `%n` (the alias), `%j` (the last jump host, else empty)
//!   and `%%`. An unknown token is an error when the value is used, as in
//!   `ssh`.
//! - Files writable by group or others, or owned by someone other than you
//!   or root, are refused, as `ssh` refuses them (remex checks the top file
//!   too, as `ssh` does for `~/.ssh/config`, not for `ssh -F FILE`).
//!
//! # What remex refuses, and what it does not model
//!
//! Refused with [`SshConfigError::Unsupported`] naming file and line,
//! rather than guessed: `Match exec`, `canonical`, `localnetwork`,
//! `tagged`, `version`, `sessiontype` and `command`, when the host's
//! outcome depends on them (a line whose other criteria already fail is
//! fine); `Match final` anywhere (it makes `ssh` read the whole file a
//! second time); the tokens `%C`, `%L`, `%i`, `%k`, `%l`; `${VAR}`; `~user`.
//! A `Match` criterion OpenSSH does not know is an
//! [`SshConfigError::Invalid`], as in `ssh`; so is a `Port` that is not a
//! number (`ssh` would also look a service name up in `/etc/services`).
//!
//! Not modelled: `CanonicalizeHostname` (its DNS lookups and second pass)
//! and `HostKeyAlias`; a keyword `ssh` would reject as unknown is skipped
//! like any other, so a typo such as `Prot 2222` shows only in
//! [`HostSettings::ignored`]; `User` is taken literally (newer OpenSSH
//! expands tokens in it); `Include` globs have no `[...]` classes (refused)
//! and skip file names that are not UTF-8.
//!
//! # Layout
//!
//! - `mod.rs` (this file): the public types and the entry points
//!   [`SshConfig::load`], [`SshConfig::parse`] and [`SshConfig::resolve`].
//! - `error.rs`: [`SshConfigError`], and `Refusal` (what is wrong with a
//!   line before its file and line are known).
//! - `keyword.rs`: the keywords remex understands.
//! - `line.rs`: the parsed form, a `Line` per line that means something.
//! - `loader.rs`: text → lines, values checked; config files read as `ssh`
//!   reads them (owner and mode checked).
//! - `lexer.rs`: OpenSSH's `strdelim` and `argv_split`.
//! - `include.rs`: `Include` paths and globs, and their nesting.
//! - `criteria.rs`: `Host` patterns and `Match` criteria, parsed and
//!   matched.
//! - `values.rs`: the values of the keywords remex uses, checked.
//! - `resolver.rs`: the walk for one alias.
//! - `tokens.rs`: `%` tokens and `~`.
//! - `tests.rs`: the rules, one test each. `vs_openssh.rs`: tricky files
//!   resolved by remex and by `ssh -G` (and `ssh -v` for expanded key
//!   paths), compared.
//!
//! **Invariant:** [`SshConfig::resolve`] does no I/O and reads no
//! environment: files are read by `load`/`parse`, and the local account
//! comes in as a [`LocalAccount`].
//!
//! **Invariant:** every value in [`HostSettings`] carries the file and line
//! of the line that set it.

mod criteria;
mod error;
mod include;
mod keyword;
mod lexer;
mod line;
mod loader;
mod resolver;
mod tokens;
mod values;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use error::Refusal;
pub use error::SshConfigError;
use keyword::Keyword;
use line::{At, Line};
use loader::{FileError, Loader, read_config_file};
use resolver::{Obtained, Resolver};

/// An OpenSSH client config, with the files its `Include`s name, parsed
/// and checked; [`SshConfig::resolve`] answers for one host.
///
/// `Default` is the empty config (no file), which resolves every host to
/// nothing set.
#[derive(Debug, Clone, Default)]
pub struct SshConfig {
    /// The top file's lines in order; an `Include` line holds the lines of
    /// the files it read, so the walk follows the text.
    lines: Vec<Line>,
    /// Every file read, the top one first: [`At::file`] indexes it, and
    /// [`Sourced::file`] is cloned from it.
    files: Vec<PathBuf>,
    /// The first `Match final`, which makes `ssh` read the config twice,
    /// the second time matching `Host` against the final host name;
    /// [`SshConfig::resolve`] refuses every host when there is one.
    final_pass: Option<At>,
}

/// The local account, for what ssh_config says about "you": `~` and `%d`
/// (the home directory), `%u` and `Match localuser` (the user name), and
/// the remote user when no `User` is set.
///
/// OpenSSH takes both from the password database (`getpwuid`), not from
/// `$HOME`; remex's CLI passes `$USER`/`$HOME` first, like its own config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAccount {
    /// The local user name (`%u`, `Match localuser`, default remote user).
    pub user: String,
    /// The home directory (`~`, `%d`).
    pub home: PathBuf,
}

/// A value and the line that set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    /// The value, tokens expanded.
    pub value: T,
    /// The file of the line: the path given to [`SshConfig::load`] (or
    /// `parse`), or an included file's path as its `Include` glob found it.
    pub file: PathBuf,
    /// The line number in `file`, from 1.
    pub line: usize,
}

impl<T> Sourced<T> {
    /// `FILE:LINE`, for messages such as "port 2222 (from FILE:LINE)".
    pub fn location(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// What an ssh_config says about one host: each value `None` (or empty)
/// when no line that applied set it, with what `ssh` then uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostSettings {
    /// `HostName`, with `%h` expanded to the alias and lower-cased, as
    /// `ssh` connects to it. `None`: `ssh` uses the alias, lower-cased.
    pub host_name: Option<Sourced<String>>,
    /// `User`, as written. `None`: the local user.
    pub user: Option<Sourced<String>>,
    /// `Port`. `None`: 22.
    pub port: Option<Sourced<u16>>,
    /// `IdentityFile`s, in order, `~` and tokens expanded (relative paths
    /// stay relative, as in `ssh`). Empty: `ssh` tries its defaults
    /// (`~/.ssh/id_rsa`, `~/.ssh/id_ecdsa`, `~/.ssh/id_ed25519`, ...).
    pub identity_files: Vec<Sourced<PathBuf>>,
    /// `CertificateFile`s, in order, expanded like `identity_files`.
    /// Empty: none (`ssh` then also tries `KEY-cert.pub`-style names).
    pub certificate_files: Vec<Sourced<PathBuf>>,
    /// `ProxyJump`: the jump hosts, first hop first. `Some` with an empty
    /// list for `ProxyJump none`; `None` when absent or when a
    /// `ProxyCommand` came first. When it has hops, `proxy_command` is
    /// `None`.
    pub proxy_jump: Option<Sourced<Vec<JumpHost>>>,
    /// `ProxyCommand`, the rest of its line as written (tokens not
    /// expanded); `None` when absent, `none`, or when a `ProxyJump` with
    /// hops came first. When `Some`, `ssh` uses it (even after `ProxyJump
    /// none`). remex cannot run one; its caller decides what to do.
    pub proxy_command: Option<Sourced<String>>,
    /// `ConnectTimeout`. `None`: the system's TCP connect timeout. Zero
    /// is kept as written; `ssh` treats it like `None`.
    pub connect_timeout: Option<Sourced<Duration>>,
    /// `ServerAliveInterval`. `None` or zero: no keepalive messages.
    pub server_alive_interval: Option<Sourced<Duration>>,
    /// `ServerAliveCountMax`: keepalives unanswered before `ssh` gives up.
    /// `None`: 3.
    pub server_alive_count_max: Option<Sourced<u32>>,
    /// `AddressFamily`. `None`: [`AddressFamily::Any`].
    pub address_family: Option<Sourced<AddressFamily>>,
    /// Keywords remex does not use, as written, from the lines that applied
    /// to this host, in the order `ssh` read them (e.g. `ForwardAgent`).
    pub ignored: Vec<Sourced<String>>,
}

/// One hop of a `ProxyJump`: `[user@]host[:port]` or
/// `ssh://[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpHost {
    /// The user to log in as on the jump host; `None`: its own config's.
    pub user: Option<String>,
    /// The jump host's name or address (an alias, resolved in turn by
    /// `ssh`), without IPv6 brackets.
    pub host: String,
    /// The port; `None`: its own config's.
    pub port: Option<u16>,
}

impl fmt::Display for JumpHost {
    /// `[user@]host[:port]`, IPv6 addresses in brackets, as `ssh -G`
    /// prints the last hop.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// `AddressFamily`: the config's own type (`remote_execution.address_family`).
pub use super::AddressFamily;

impl SshConfig {
    /// Reads the ssh_config file at `path` and every file its `Include`s
    /// name; `home` is where a relative `Include` (under `home/.ssh`) and
    /// `~` in an `Include` point.
    ///
    /// # Errors
    ///
    /// [`SshConfigError::Read`] when `path` cannot be read (a missing file
    /// has [`io::ErrorKind::NotFound`] as its source),
    /// [`SshConfigError::Permissions`] for an unsafe file, else whatever
    /// [`SshConfig::parse`] returns.
    pub fn load(path: &Path, home: &Path) -> Result<SshConfig, SshConfigError> {
        let read_error = |source| SshConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let text = read_config_file(path)
            .map_err(|err| match err {
                FileError::Io(source) => read_error(source),
                FileError::Permissions => SshConfigError::Permissions {
                    path: path.to_path_buf(),
                },
            })?
            .ok_or_else(|| read_error(io::Error::other("it is a directory")))?;
        SshConfig::parse(&text, path, home)
    }

    /// Parses ssh_config text as if read from `origin` (which errors and
    /// [`Sourced::file`] name); its `Include`s are read from disk as in
    /// [`SshConfig::load`].
    ///
    /// # Errors
    ///
    /// [`SshConfigError::Invalid`] for the first line `ssh` would refuse,
    /// in every block whether it applies or not;
    /// [`SshConfigError::IncludeRead`] or [`SshConfigError::Permissions`]
    /// for an included file; [`SshConfigError::Unsupported`] for an
    /// `Include` remex cannot follow (`~user`, `[...]`).
    pub fn parse(text: &str, origin: &Path, home: &Path) -> Result<SshConfig, SshConfigError> {
        let mut loader = Loader {
            home,
            files: vec![origin.to_path_buf()],
            final_pass: None,
        };
        let lines = loader.parse(text, 0, 0)?;
        Ok(SshConfig {
            lines,
            files: loader.files,
            final_pass: loader.final_pass,
        })
    }

    /// What the config says about `alias` (the name as typed after `ssh`),
    /// for the user `local`.
    ///
    /// # Errors
    ///
    /// [`SshConfigError::Unsupported`] when the answer depends on what remex
    /// cannot evaluate (`Match exec`, `Match final`, a `%l` token, ...);
    /// [`SshConfigError::Invalid`] for an unknown `%` token in a value that
    /// applies (`ssh` fails on it only when it uses the value, too).
    pub fn resolve(
        &self,
        alias: &str,
        local: &LocalAccount,
    ) -> Result<HostSettings, SshConfigError> {
        if let Some(at) = self.final_pass {
            return Err(self.error(
                at,
                Keyword::Match,
                Refusal::unsupported(
                    "`Match final` makes ssh read the whole config a second time with the final \
                     host name; remex does not, so it cannot say what applies to any host",
                ),
            ));
        }
        let mut resolver = Resolver {
            config: self,
            alias,
            local,
            got: Obtained::default(),
        };
        let mut active = true;
        resolver.walk(&self.lines, &mut active)?;
        resolver.finish()
    }

    /// The path of file number `file`.
    fn file(&self, file: usize) -> PathBuf {
        self.files.get(file).cloned().unwrap_or_default()
    }

    /// `value`, sourced at `at`.
    fn sourced<T>(&self, value: T, at: At) -> Sourced<T> {
        Sourced {
            value,
            file: self.file(at.file),
            line: at.line,
        }
    }

    /// The error for `refusal` at `at`.
    fn error(&self, at: At, keyword: Keyword, refusal: Refusal) -> SshConfigError {
        refusal.at(self.file(at.file), at.line, keyword.name())
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod vs_openssh;
