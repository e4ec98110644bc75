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
//! This file, in order: the public types; the loader (lines → `Line`s,
//! values checked, `Include`s read); the lexer (OpenSSH's `strdelim` and
//! `argv_split`); the resolver (the walk for one alias); token expansion;
//! value parsers. `ssh_config/tests.rs`: the rules, one test each.
//! `ssh_config/vs_openssh.rs`: tricky files resolved by remex and by
//! `ssh -G` (and `ssh -v` for expanded key paths), compared.
//!
//! **Invariant:** [`SshConfig::resolve`] does no I/O and reads no
//! environment: files are read by `load`/`parse`, and the local account
//! comes in as a [`LocalAccount`].
//!
//! **Invariant:** every value in [`HostSettings`] carries the file and line
//! of the line that set it.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::pattern::wildcard_match;

/// Deepest nesting of `Include`s (OpenSSH's `READCONF_MAX_DEPTH`).
const MAX_INCLUDE_DEPTH: usize = 16;

/// Most `IdentityFile`s, and most `CertificateFile`s, for one host
/// (OpenSSH's `SSH_MAX_IDENTITY_FILES` and `SSH_MAX_CERTIFICATE_FILES`).
const MAX_KEY_FILES: usize = 100;

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

/// Why an ssh_config could not be read, or not answered for a host.
///
/// Errors about a line name it: `FILE:LINE: KEYWORD: message`, e.g.
/// `/home/me/.ssh/config:14: Port: bad port "abc": give a number from 1 to 65535`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SshConfigError {
    /// The file given to [`SshConfig::load`] could not be read, or is not
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

// ---------------------------------------------------------------------------
// The parsed form.

/// A place in the config: a file (index into `SshConfig::files`) and line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct At {
    /// Index into `SshConfig::files`.
    file: usize,
    /// Line number, from 1.
    line: usize,
}

/// One line that means something (comments and blank lines are dropped).
#[derive(Debug, Clone)]
enum Line {
    /// `Host PATTERN...`: starts a block.
    Host { patterns: Vec<HostPattern> },
    /// `Match CRITERIA...`: starts a block.
    Match { criteria: Vec<Criterion>, at: At },
    /// `Include ...`: the lines of each file found, in order.
    Include { files: Vec<Vec<Line>> },
    /// A keyword remex uses, with its checked value.
    Set { setting: Setting, at: At },
    /// A keyword remex does not use, as written.
    Ignored { keyword: String, at: At },
}

/// One pattern of a `Host` line.
#[derive(Debug, Clone)]
struct HostPattern {
    /// Written with a leading `!`: a match excludes the block.
    negated: bool,
    /// The pattern, `!` removed.
    pattern: String,
}

/// One criterion of a `Match` line.
#[derive(Debug, Clone)]
struct Criterion {
    /// Written with a leading `!`.
    negated: bool,
    /// What it tests.
    test: Test,
}

/// What a `Match` criterion tests.
#[derive(Debug, Clone)]
enum Test {
    /// `all`.
    All,
    /// `host LIST`: the host name so far, else the alias.
    Host(String),
    /// `originalhost LIST`: the alias.
    OriginalHost(String),
    /// `user LIST`: the remote user so far, else the local user.
    User(String),
    /// `localuser LIST`: the local user.
    LocalUser(String),
    /// A criterion `ssh` knows and remex cannot evaluate (`exec`, ...),
    /// lower-cased.
    Unsupported(String),
}

/// A value of a keyword remex uses, checked.
#[derive(Debug, Clone)]
enum Setting {
    HostName(String),
    User(String),
    Port(u16),
    IdentityFile(String),
    CertificateFile(String),
    /// Empty for `none`.
    ProxyJump(Vec<JumpHost>),
    /// As written; `none` included.
    ProxyCommand(String),
    /// `None` for `none`.
    ConnectTimeout(Option<Duration>),
    /// `None` for `none`.
    ServerAliveInterval(Option<Duration>),
    ServerAliveCountMax(u32),
    AddressFamily(AddressFamily),
}

/// The keywords remex understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyword {
    Host,
    Match,
    Include,
    HostName,
    User,
    Port,
    IdentityFile,
    CertificateFile,
    ProxyJump,
    ProxyCommand,
    ConnectTimeout,
    ServerAliveInterval,
    ServerAliveCountMax,
    AddressFamily,
}

impl Keyword {
    /// Every keyword, for lookups.
    const ALL: [Keyword; 14] = [
        Keyword::Host,
        Keyword::Match,
        Keyword::Include,
        Keyword::HostName,
        Keyword::User,
        Keyword::Port,
        Keyword::IdentityFile,
        Keyword::CertificateFile,
        Keyword::ProxyJump,
        Keyword::ProxyCommand,
        Keyword::ConnectTimeout,
        Keyword::ServerAliveInterval,
        Keyword::ServerAliveCountMax,
        Keyword::AddressFamily,
    ];

    /// The keyword as ssh_config(5) spells it.
    fn name(self) -> &'static str {
        match self {
            Keyword::Host => "Host",
            Keyword::Match => "Match",
            Keyword::Include => "Include",
            Keyword::HostName => "HostName",
            Keyword::User => "User",
            Keyword::Port => "Port",
            Keyword::IdentityFile => "IdentityFile",
            Keyword::CertificateFile => "CertificateFile",
            Keyword::ProxyJump => "ProxyJump",
            Keyword::ProxyCommand => "ProxyCommand",
            Keyword::ConnectTimeout => "ConnectTimeout",
            Keyword::ServerAliveInterval => "ServerAliveInterval",
            Keyword::ServerAliveCountMax => "ServerAliveCountMax",
            Keyword::AddressFamily => "AddressFamily",
        }
    }

    /// The keyword written `word`, in any case.
    fn find(word: &str) -> Option<Keyword> {
        Keyword::ALL
            .into_iter()
            .find(|keyword| keyword.name().eq_ignore_ascii_case(word))
    }
}

/// What is wrong with a line, before the line is known: becomes an
/// [`SshConfigError::Invalid`] or [`SshConfigError::Unsupported`].
#[derive(Debug)]
struct Refusal {
    /// `ssh` accepts it; remex does not follow it.
    unsupported: bool,
    /// What is wrong.
    message: String,
}

impl Refusal {
    fn invalid(message: impl Into<String>) -> Refusal {
        Refusal {
            unsupported: false,
            message: message.into(),
        }
    }

    fn unsupported(message: impl Into<String>) -> Refusal {
        Refusal {
            unsupported: true,
            message: message.into(),
        }
    }

    fn at(self, file: PathBuf, line: usize, keyword: &str) -> SshConfigError {
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

// ---------------------------------------------------------------------------
// The loader: text → lines, values checked, Includes read.

/// State shared by the files of one load.
struct Loader<'h> {
    /// Where a relative `Include` and `~` point (`home/.ssh`, `home`).
    home: &'h Path,
    /// Every file read so far, the top one first.
    files: Vec<PathBuf>,
    /// The first `Match final` seen.
    final_pass: Option<At>,
}

impl Loader<'_> {
    /// The lines of `text`, file number `file`, read at `depth` (0 for the
    /// top file).
    fn parse(
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
    fn file(&self, file: usize) -> PathBuf {
        self.files.get(file).cloned().unwrap_or_default()
    }

    /// Reads the files an `Include` line names (already split into
    /// `args`), each parsed at `depth + 1`.
    fn include(
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

/// Why a config file could not be read.
enum FileError {
    Io(io::Error),
    Permissions,
}

/// The text of the config file at `path`; `None` for a directory. Refuses
/// a file `ssh` would refuse for its owner or mode.
fn read_config_file(path: &Path) -> Result<Option<String>, FileError> {
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

/// The patterns of a `Host` line.
fn host_patterns(args: &[String]) -> Result<Vec<HostPattern>, Refusal> {
    if args.is_empty() {
        return Err(Refusal::invalid("missing argument"));
    }
    args.iter()
        .map(|arg| {
            if arg.is_empty() {
                return Err(Refusal::invalid("empty pattern"));
            }
            let (negated, pattern) = match arg.strip_prefix('!') {
                Some(pattern) => (true, pattern),
                None => (false, arg.as_str()),
            };
            Ok(HostPattern {
                negated,
                pattern: pattern.to_owned(),
            })
        })
        .collect()
}

/// The criteria of a `Match` line, with OpenSSH's rules: `all` alone (or
/// after one other criterion), an argument for every criterion but `all`,
/// `canonical` and `final`, at least one criterion.
fn match_criteria(args: &[String]) -> Result<Vec<Criterion>, Refusal> {
    let mut criteria = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (negated, name) = match arg.strip_prefix('!') {
            Some(name) => (true, name),
            None => (false, arg.as_str()),
        };
        let name = name.to_ascii_lowercase();
        if name == "all" {
            if criteria.len() > 1 || args.next().is_some() {
                return Err(Refusal::invalid(format!(
                    "`{arg}` cannot be combined with other Match criteria"
                )));
            }
            criteria.push(Criterion {
                negated,
                test: Test::All,
            });
            return Ok(criteria);
        }
        let test = match name.as_str() {
            "canonical" | "final" => Test::Unsupported(name),
            "host" | "originalhost" | "user" | "localuser" | "exec" | "localnetwork" | "tagged"
            | "version" | "sessiontype" | "command" => {
                let Some(list) = args.next().filter(|list| !list.is_empty()) else {
                    return Err(Refusal::invalid(format!("missing argument for `{name}`")));
                };
                match name.as_str() {
                    "host" => Test::Host(list.clone()),
                    "originalhost" => Test::OriginalHost(list.clone()),
                    "user" => Test::User(list.clone()),
                    "localuser" => Test::LocalUser(list.clone()),
                    _ => Test::Unsupported(name),
                }
            }
            _ => {
                return Err(Refusal::invalid(format!(
                    "unknown criterion `{name}`; known: all, canonical, final, exec, host, \
                     originalhost, user, localuser, localnetwork, tagged"
                )));
            }
        };
        criteria.push(Criterion { negated, test });
    }
    if criteria.is_empty() {
        return Err(Refusal::invalid("one or more criteria required"));
    }
    Ok(criteria)
}

/// The checked value of `keyword` from its arguments `args` (`rest`: the
/// line after the keyword, for `ProxyCommand`, which takes it whole).
fn setting(keyword: Keyword, args: &[String], rest: &str) -> Result<Setting, Refusal> {
    if keyword == Keyword::ProxyCommand {
        let command = rest.trim_start_matches([' ', '\t', '\r', '\n', '=']);
        return Ok(Setting::ProxyCommand(command.to_owned()));
    }
    let value = match args {
        [] => return Err(Refusal::invalid("missing argument")),
        [value] if value.is_empty() => return Err(Refusal::invalid("missing argument")),
        [value] => value.as_str(),
        [_, extra, ..] => {
            return Err(Refusal::invalid(format!(
                "extra argument `{extra}` at the end of the line (quote a value with blanks)"
            )));
        }
    };
    Ok(match keyword {
        Keyword::HostName => Setting::HostName(value.to_owned()),
        Keyword::User => Setting::User(value.to_owned()),
        Keyword::Port => Setting::Port(parse_port(value)?),
        Keyword::IdentityFile => Setting::IdentityFile(value.to_owned()),
        Keyword::CertificateFile => Setting::CertificateFile(value.to_owned()),
        Keyword::ProxyJump => Setting::ProxyJump(parse_jump(value)?),
        Keyword::ConnectTimeout => Setting::ConnectTimeout(parse_time_or_none(value)?),
        Keyword::ServerAliveInterval => Setting::ServerAliveInterval(parse_time_or_none(value)?),
        Keyword::ServerAliveCountMax => Setting::ServerAliveCountMax(parse_count(value)?),
        Keyword::AddressFamily => Setting::AddressFamily(parse_address_family(value)?),
        Keyword::Host | Keyword::Match | Keyword::Include | Keyword::ProxyCommand => {
            return Err(Refusal::invalid("not a value keyword"));
        }
    })
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

// ---------------------------------------------------------------------------
// The lexer: OpenSSH's `strdelim` (the keyword) and `argv_split` (the rest).

/// Splits a line into its keyword and the rest (after blanks or one `=`);
/// `None` for a blank line or a comment. The rest is empty when the
/// keyword has no argument.
fn split_keyword(raw: &str) -> Option<(&str, &str)> {
    const BLANKS: [char; 4] = [' ', '\t', '\r', '\n'];
    let line = raw
        .trim_end_matches([' ', '\t', '\r', '\n', '\x0c'])
        .trim_start_matches(BLANKS);
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line
        .find([' ', '\t', '\r', '\n', '='])
        .unwrap_or(line.len());
    let (word, rest) = line.split_at(end);
    // One `=` may separate the keyword from its value, with blanks around.
    let rest = match rest.strip_prefix('=') {
        Some(rest) => rest.trim_start_matches(BLANKS),
        None => {
            let rest = rest.trim_start_matches(BLANKS);
            rest.strip_prefix('=')
                .unwrap_or(rest)
                .trim_start_matches(BLANKS)
        }
    };
    Some((word, rest))
}

/// Splits the arguments of a line: blanks separate; `"` and `'` quote; `\`
/// escapes a quote, a `\`, or (outside quotes) a blank; a `#` starting an
/// argument ends the line.
fn split_args(rest: &str) -> Result<Vec<String>, Refusal> {
    let mut args = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.next_if(|&c| c == ' ' || c == '\t').is_some() {}
        match chars.peek() {
            None | Some('#') => return Ok(args),
            Some(_) => {}
        }
        let mut arg = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            match (c, quote) {
                ('\\', _) => match chars.peek() {
                    Some(&next)
                        if next == '\''
                            || next == '"'
                            || next == '\\'
                            || (quote.is_none() && next == ' ') =>
                    {
                        arg.push(next);
                        chars.next();
                    }
                    // Not an escape: the `\` stays.
                    _ => arg.push('\\'),
                },
                (' ' | '\t', None) => break,
                ('"' | '\'', None) => quote = Some(c),
                (c, Some(q)) if c == q => quote = None,
                (c, _) => arg.push(c),
            }
        }
        if quote.is_some() {
            return Err(Refusal::invalid("invalid quotes: a quote is not closed"));
        }
        args.push(arg);
    }
}

// ---------------------------------------------------------------------------
// The resolver: the walk for one alias.

/// The values obtained so far in a walk, raw (tokens not expanded).
#[derive(Default)]
struct Obtained {
    host_name: Option<Sourced<String>>,
    user: Option<Sourced<String>>,
    port: Option<Sourced<u16>>,
    identity_files: Vec<Sourced<String>>,
    certificate_files: Vec<Sourced<String>>,
    /// `ProxyJump`; set only while `proxy_command` is empty.
    proxy_jump: Option<Sourced<Vec<JumpHost>>>,
    /// `ProxyCommand`; a `ProxyJump` with hops sets it to `none`, as `ssh`
    /// does, so that no later `ProxyCommand` applies.
    proxy_command: Option<Sourced<String>>,
    connect_timeout: Option<Sourced<Duration>>,
    server_alive_interval: Option<Sourced<Duration>>,
    server_alive_count_max: Option<Sourced<u32>>,
    address_family: Option<Sourced<AddressFamily>>,
    ignored: Vec<Sourced<String>>,
}

/// One walk of a config for one alias.
struct Resolver<'a> {
    config: &'a SshConfig,
    /// The name as typed.
    alias: &'a str,
    local: &'a LocalAccount,
    got: Obtained,
}

impl Resolver<'_> {
    /// Applies `lines`; `active` says whether the current block applies,
    /// and is what `Host` and `Match` lines set.
    fn walk(&mut self, lines: &[Line], active: &mut bool) -> Result<(), SshConfigError> {
        for line in lines {
            match line {
                Line::Host { patterns } => *active = host_matches(patterns, self.alias),
                Line::Match { criteria, at } => *active = self.match_holds(criteria, *at)?,
                // An Include in a block that does not apply: ssh reads it
                // with every Host and Match failing, so nothing in it applies.
                Line::Include { .. } if !*active => {}
                Line::Include { files } => {
                    for lines in files {
                        self.walk(lines, active)?;
                        // A block opened in an included file ends with it.
                        *active = true;
                    }
                }
                Line::Set { setting, at } if *active => self.obtain(setting, *at)?,
                Line::Ignored { keyword, at } if *active => {
                    let ignored = self.config.sourced(keyword.clone(), *at);
                    self.got.ignored.push(ignored);
                }
                Line::Set { .. } | Line::Ignored { .. } => {}
            }
        }
        Ok(())
    }

    /// Whether a `Match` line holds, as far as the walk has come.
    fn match_holds(&self, criteria: &[Criterion], at: At) -> Result<bool, SshConfigError> {
        let mut holds = true;
        let mut undecided: Option<&str> = None;
        for criterion in criteria {
            let result = match &criterion.test {
                Test::All => true,
                Test::Host(list) => {
                    let host = match &self.got.host_name {
                        Some(raw) => self.expand_host_name(raw)?,
                        None => self.alias.to_owned(),
                    };
                    match_list(&host.to_ascii_lowercase(), list, true)
                }
                Test::OriginalHost(list) => {
                    match_list(&self.alias.to_ascii_lowercase(), list, true)
                }
                Test::User(list) => {
                    let user = self
                        .got
                        .user
                        .as_ref()
                        .map_or(&self.local.user, |user| &user.value);
                    match_list(user, list, false)
                }
                Test::LocalUser(list) => match_list(&self.local.user, list, false),
                Test::Unsupported(name) => {
                    undecided.get_or_insert(name.as_str());
                    continue;
                }
            };
            if result == criterion.negated {
                holds = false;
            }
        }
        match undecided {
            // The other criteria fail: the block does not apply, whatever
            // the undecided one says.
            Some(_) if !holds => Ok(false),
            Some(name) => Err(self.config.error(
                at,
                Keyword::Match,
                Refusal::unsupported(format!(
                    "remex cannot evaluate `Match {name}`, and whether this block applies to `{}` \
                     depends on it; use `Match host` or `Host` for hosts remex reaches",
                    self.alias
                )),
            )),
            None => Ok(holds),
        }
    }

    /// Applies one value, if nothing obtained it before.
    fn obtain(&mut self, setting: &Setting, at: At) -> Result<(), SshConfigError> {
        let config = self.config;
        let got = &mut self.got;
        let sourced = |value| config.sourced(value, at);
        match setting {
            Setting::HostName(value) => first(&mut got.host_name, || sourced(value.clone())),
            Setting::User(value) => first(&mut got.user, || sourced(value.clone())),
            Setting::Port(port) => first(&mut got.port, || config.sourced(*port, at)),
            Setting::IdentityFile(path) => {
                add_key_file(
                    config,
                    &mut got.identity_files,
                    path,
                    at,
                    Keyword::IdentityFile,
                )?;
            }
            Setting::CertificateFile(path) => {
                add_key_file(
                    config,
                    &mut got.certificate_files,
                    path,
                    at,
                    Keyword::CertificateFile,
                )?;
            }
            // OpenSSH's parse_jump: only when neither is set yet.
            Setting::ProxyJump(hops) if got.proxy_jump.is_none() && got.proxy_command.is_none() => {
                got.proxy_jump = Some(config.sourced(hops.clone(), at));
                if !hops.is_empty() {
                    got.proxy_command = Some(config.sourced("none".to_owned(), at));
                }
            }
            Setting::ProxyJump(_) => {}
            Setting::ProxyCommand(command) => {
                first(&mut got.proxy_command, || sourced(command.clone()))
            }
            Setting::ConnectTimeout(Some(time)) => {
                first(&mut got.connect_timeout, || config.sourced(*time, at))
            }
            Setting::ServerAliveInterval(Some(time)) => {
                first(&mut got.server_alive_interval, || config.sourced(*time, at));
            }
            // `none` obtains nothing: a later line may still set a value.
            Setting::ConnectTimeout(None) | Setting::ServerAliveInterval(None) => {}
            Setting::ServerAliveCountMax(count) => {
                first(&mut got.server_alive_count_max, || {
                    config.sourced(*count, at)
                });
            }
            Setting::AddressFamily(family) => {
                first(&mut got.address_family, || config.sourced(*family, at))
            }
        }
        Ok(())
    }

    /// `HostName` with `%h` expanded to the alias (not yet lower-cased).
    fn expand_host_name(&self, raw: &Sourced<String>) -> Result<String, SshConfigError> {
        expand_tokens(&raw.value, |token| match token {
            'h' => Token::Value(OsStr::new(self.alias).into()),
            _ => Token::Unknown,
        })
        .map(|expanded| expanded.to_string_lossy().into_owned())
        .map_err(|refusal| {
            Refusal {
                message: format!("{} (HostName expands only %h and %%)", refusal.message),
                ..refusal
            }
            .at(raw.file.clone(), raw.line, Keyword::HostName.name())
        })
    }

    /// The settings, tokens expanded now that every value is known.
    fn finish(self) -> Result<HostSettings, SshConfigError> {
        let host_name = match &self.got.host_name {
            Some(raw) => Some(Sourced {
                value: self.expand_host_name(raw)?.to_ascii_lowercase(),
                file: raw.file.clone(),
                line: raw.line,
            }),
            None => None,
        };
        let got = self.got;
        let proxy_jump = got.proxy_jump;
        // ssh compares `none` case-sensitively here (ProxyJump: not).
        let proxy_command = got.proxy_command.filter(|command| command.value != "none");
        let tokens = KeyFileTokens {
            home: &self.local.home,
            local_user: &self.local.user,
            host: host_name.as_ref().map_or_else(
                || self.alias.to_ascii_lowercase(),
                |host| host.value.clone(),
            ),
            remote_user: got
                .user
                .as_ref()
                .map_or(&self.local.user, |user| &user.value),
            alias: self.alias,
            port: got.port.as_ref().map_or(22, |port| port.value).to_string(),
            jump_host: proxy_jump
                .as_ref()
                .and_then(|jump| jump.value.last())
                .map_or("", |hop| hop.host.as_str()),
        };
        let identity_files = expand_key_files(&got.identity_files, &tokens, Keyword::IdentityFile)?;
        let certificate_files =
            expand_key_files(&got.certificate_files, &tokens, Keyword::CertificateFile)?;
        Ok(HostSettings {
            host_name,
            user: got.user,
            port: got.port,
            identity_files,
            certificate_files,
            proxy_jump,
            proxy_command,
            connect_timeout: got.connect_timeout,
            server_alive_interval: got.server_alive_interval,
            server_alive_count_max: got.server_alive_count_max,
            address_family: got.address_family,
            ignored: got.ignored,
        })
    }
}

/// Sets `slot` unless a value was obtained before: OpenSSH's rule.
fn first<T>(slot: &mut Option<T>, value: impl FnOnce() -> T) {
    if slot.is_none() {
        *slot = Some(value());
    }
}

/// Adds an `IdentityFile` or `CertificateFile`, unless the same text was
/// added before; at most [`MAX_KEY_FILES`].
fn add_key_file(
    config: &SshConfig,
    files: &mut Vec<Sourced<String>>,
    path: &str,
    at: At,
    keyword: Keyword,
) -> Result<(), SshConfigError> {
    if files.len() >= MAX_KEY_FILES {
        return Err(config.error(
            at,
            keyword,
            Refusal::invalid(format!(
                "too many files for one host (at most {MAX_KEY_FILES})"
            )),
        ));
    }
    if !files.iter().any(|file| file.value == path) {
        files.push(config.sourced(path.to_owned(), at));
    }
    Ok(())
}

/// Whether a `Host` line's patterns select `alias`: one matches and no
/// negated one does.
fn host_matches(patterns: &[HostPattern], alias: &str) -> bool {
    let mut matched = false;
    for pattern in patterns {
        if wildcard_match(&pattern.pattern, alias) {
            if pattern.negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

/// OpenSSH's `match_pattern_list`: whether `text` matches one of the
/// comma-separated patterns of `list` and none of its `!negated` ones;
/// patterns are lower-cased first when `lowercase`.
fn match_list(text: &str, list: &str, lowercase: bool) -> bool {
    let mut positive = false;
    for pattern in list.split(',') {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(pattern) => (true, pattern),
            None => (false, pattern),
        };
        let pattern = if lowercase {
            pattern.to_ascii_lowercase()
        } else {
            pattern.to_owned()
        };
        if wildcard_match(&pattern, text) {
            if negated {
                return false;
            }
            positive = true;
        }
    }
    positive
}

// ---------------------------------------------------------------------------
// Tokens.

/// What a `%` token stands for.
enum Token<'a> {
    /// Its text.
    Value(Cow<'a, OsStr>),
    /// A token `ssh` expands here and remex does not.
    Unsupported,
    /// Not a token `ssh` knows here.
    Unknown,
}

/// Expands `%x` tokens with `value`; `%%` is `%`.
fn expand_tokens<'a>(text: &str, value: impl Fn(char) -> Token<'a>) -> Result<OsString, Refusal> {
    let mut out = OsString::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            let mut buf = [0; 4];
            out.push(c.encode_utf8(&mut buf));
            continue;
        }
        match chars.next() {
            None => return Err(Refusal::invalid(format!("`{text}` ends with a lone %"))),
            Some('%') => out.push("%"),
            Some(token) => match value(token) {
                Token::Value(text) => out.push(text),
                Token::Unsupported => {
                    return Err(Refusal::unsupported(format!(
                        "remex does not expand the token %{token}; write the value out"
                    )));
                }
                Token::Unknown => return Err(Refusal::invalid(format!("unknown token %{token}"))),
            },
        }
    }
    Ok(out)
}

/// What the tokens of `IdentityFile` and `CertificateFile` stand for.
struct KeyFileTokens<'a> {
    /// `~` and `%d`.
    home: &'a Path,
    /// `%u`.
    local_user: &'a str,
    /// `%h`: the host name, lower-cased.
    host: String,
    /// `%r`.
    remote_user: &'a str,
    /// `%n`.
    alias: &'a str,
    /// `%p`.
    port: String,
    /// `%j`: the last jump host, else empty.
    jump_host: &'a str,
}

/// Expands `~` and the tokens of each key file.
fn expand_key_files(
    files: &[Sourced<String>],
    tokens: &KeyFileTokens<'_>,
    keyword: Keyword,
) -> Result<Vec<Sourced<PathBuf>>, SshConfigError> {
    files
        .iter()
        .map(|file| {
            let value = expand_key_file(&file.value, tokens)
                .map_err(|refusal| refusal.at(file.file.clone(), file.line, keyword.name()))?;
            Ok(Sourced {
                value,
                file: file.file.clone(),
                line: file.line,
            })
        })
        .collect()
}

/// `~` first, then `%` tokens, as `ssh` expands an `IdentityFile`.
fn expand_key_file(text: &str, tokens: &KeyFileTokens<'_>) -> Result<PathBuf, Refusal> {
    if text.contains("${") {
        return Err(Refusal::unsupported(format!(
            "`{text}`: remex does not expand environment variables (${{...}}); write the path out"
        )));
    }
    let mut path = OsString::new();
    let mut rest = text;
    if let Some(after) = text.strip_prefix('~') {
        // OpenSSH: `~/x` and (oddly) `~x` are the home directory's `x`;
        // `~user/x` is another user's.
        rest = match after.find('/') {
            Some(0) => &after[1..],
            Some(_) => {
                return Err(Refusal::unsupported(format!(
                    "`{text}`: `~user` is not expanded; write the full path"
                )));
            }
            None => after,
        };
        path.push(tokens.home);
        if !tokens.home.as_os_str().as_encoded_bytes().ends_with(b"/") {
            path.push("/");
        }
    }
    let expanded = expand_tokens(rest, |token| match token {
        'd' => Token::Value(tokens.home.as_os_str().into()),
        'u' => Token::Value(OsStr::new(tokens.local_user).into()),
        'h' => Token::Value(OsStr::new(tokens.host.as_str()).into()),
        'r' => Token::Value(OsStr::new(tokens.remote_user).into()),
        'n' => Token::Value(OsStr::new(tokens.alias).into()),
        'p' => Token::Value(OsStr::new(tokens.port.as_str()).into()),
        'j' => Token::Value(OsStr::new(tokens.jump_host).into()),
        'C' | 'L' | 'i' | 'k' | 'l' => Token::Unsupported,
        _ => Token::Unknown,
    })?;
    path.push(expanded);
    Ok(PathBuf::from(path))
}

// ---------------------------------------------------------------------------
// Values.

/// `Port`: 1 to 65535.
fn parse_port(value: &str) -> Result<u16, Refusal> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return match value.parse::<u16>() {
            Ok(port) if port > 0 => Ok(port),
            _ => Err(Refusal::invalid(format!(
                "bad port {value:?}: give a number from 1 to 65535"
            ))),
        };
    }
    Err(Refusal::invalid(format!(
        "bad port {value:?}: give a number from 1 to 65535 (remex does not look service names up in /etc/services)"
    )))
}

/// `ConnectTimeout`, `ServerAliveInterval`: OpenSSH's `convtime` (`30`,
/// `30s`, `1m30s`, units s, m, h, d, w in either case), or `none`.
fn parse_time_or_none(value: &str) -> Result<Option<Duration>, Refusal> {
    if value == "none" {
        return Ok(None);
    }
    convtime(value).map(|secs| Some(Duration::from_secs(secs))).ok_or_else(|| {
        Refusal::invalid(format!(
            "invalid time {value:?}: give seconds, or a number with a unit (s, m, h, d, w) such as 30s or 1m30s, or `none`"
        ))
    })
}

/// OpenSSH's `convtime`: seconds, at most `i32::MAX`.
fn convtime(value: &str) -> Option<u64> {
    const MAX: u64 = i32::MAX as u64;
    if value.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut rest = value;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let (number, after) = rest.split_at(digits);
        let number: u64 = number.parse().ok().filter(|&n| n <= MAX)?;
        let mut units = after.chars();
        let multiplier = match units.next() {
            None => 1,
            Some('s' | 'S') => 1,
            Some('m' | 'M') => 60,
            Some('h' | 'H') => 3600,
            Some('d' | 'D') => 86_400,
            Some('w' | 'W') => 604_800,
            Some(_) => return None,
        };
        rest = units.as_str();
        total = total.checked_add(number.checked_mul(multiplier)?)?;
        if total > MAX {
            return None;
        }
    }
    Some(total)
}

/// `ServerAliveCountMax`: 0 to `i32::MAX`.
fn parse_count(value: &str) -> Result<u32, Refusal> {
    value
        .parse::<u32>()
        .ok()
        .filter(|&n| i32::try_from(n).is_ok() && value.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            Refusal::invalid(format!(
                "invalid count {value:?}: give a whole number, 0 or more"
            ))
        })
}

/// `AddressFamily`: `any`, `inet` or `inet6`, in any case.
fn parse_address_family(value: &str) -> Result<AddressFamily, Refusal> {
    match value.to_ascii_lowercase().as_str() {
        "any" => Ok(AddressFamily::Any),
        "inet" => Ok(AddressFamily::Inet),
        "inet6" => Ok(AddressFamily::Inet6),
        _ => Err(Refusal::invalid(format!(
            "unsupported value {value:?}: give any, inet or inet6"
        ))),
    }
}

/// `ProxyJump`: `none`, or comma-separated hops (`[user@]host[:port]` or
/// `ssh://[user@]host[:port]`), each checked as `ssh` checks them. A `#`
/// ends the value.
fn parse_jump(value: &str) -> Result<Vec<JumpHost>, Refusal> {
    let spec = value.split('#').next().unwrap_or_default().trim_end();
    if spec.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    spec.split(',')
        .map(|hop| {
            parse_hop(hop).ok_or_else(|| {
                Refusal::invalid(format!(
                    "invalid jump host {hop:?} in {value:?}: write [user@]host[:port] or ssh://[user@]host[:port], comma-separated, or none"
                ))
            })
        })
        .collect()
}

/// One `ProxyJump` hop, or `None` when `ssh` would refuse it.
fn parse_hop(hop: &str) -> Option<JumpHost> {
    let (user, host_port) = match hop.strip_prefix("ssh://") {
        // A URI: the user ends at the first `@`; a trailing `/` is allowed.
        Some(uri) => {
            let uri = uri.strip_suffix('/').unwrap_or(uri);
            match uri.split_once('@') {
                Some((user, rest)) => (Some(user), rest),
                None => (None, uri),
            }
        }
        // `user@host`: the user ends at the last `@`.
        None => match hop.rsplit_once('@') {
            Some((user, rest)) => (Some(user), rest),
            None => (None, hop),
        },
    };
    if user.is_some_and(str::is_empty) {
        return None;
    }
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() || host.contains('/') {
        return None;
    }
    let port = match port {
        None | Some("") => None,
        Some(port) => Some(parse_port(port).ok()?),
    };
    Some(JumpHost {
        user: user.map(str::to_owned),
        host: host.to_owned(),
        port,
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod vs_openssh;
