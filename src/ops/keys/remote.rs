//! The remote half of editing `~/.ssh/authorized_keys`: two shell commands
//! around a local, pure edit.
//!
//! 1. [`read_command`] prints a header line and the file:
//!    `remex-authorized-keys present LEN` + the LEN bytes of the file, or
//!    `remex-authorized-keys missing`. Anything a chatty login script prints
//!    before the header is skipped. [`RemoteFile::parse`] reads it back.
//! 2. The caller edits the text with [`super::authorized_keys`]; [`plan_edit`]
//!    does that and returns `None` when nothing changes (idempotent deploy).
//! 3. [`write_command`] reads exactly LEN bytes from stdin into a temporary
//!    file `~/.ssh/.authorized_keys.remex.XXXXXX` (mktemp, so 0600 from the
//!    start, in the same directory so the rename is atomic and the file gets
//!    the directory's SELinux context), checks the length, fsyncs it, and
//!    renames it over `authorized_keys` — creating `~/.ssh` with mode 0700
//!    first if it is missing. Just before the rename it hashes the current
//!    file (sha256sum, else `shasum -a 256`, else `openssl dgst -sha256`) and
//!    refuses when it is not the file the edit was based on: a concurrent
//!    change between read and write is detected instead of lost (the window
//!    left is the instant between that check and the rename).
//!
//! Both commands are `sh -c 'SCRIPT'`, so they run under a POSIX shell
//! whatever the login shell is; the only interpolated values (a length and a
//! hash) go through [`crate::quote::quote`]. A write that fails leaves the
//! file as it was, and its exit status says why ([`check_exit`]).
//!
//! remex edits `~/.ssh/authorized_keys` only; a server with another
//! `AuthorizedKeysFile` is caught by the login verification that follows a
//! deploy. A symlinked `authorized_keys` is refused, not replaced by a file.

use russh::keys::HashAlg;

use super::authorized_keys::{KeyLine, add_key, remove_key};
use crate::keydir::KeysError;
use crate::quote::quote;

/// The first word of the read command's header line.
const HEADER: &str = "remex-authorized-keys";

/// Exit status: the file changed since it was read; read and edit again.
pub(crate) const EXIT_CHANGED: u32 = 81;
/// Exit status: stdin held fewer bytes than announced; nothing was changed.
pub(crate) const EXIT_SHORT_INPUT: u32 = 82;
/// Exit status: no SHA-256 tool on the host to check for concurrent changes.
pub(crate) const EXIT_NO_HASH_TOOL: u32 = 83;
/// Exit status: `authorized_keys` is a symlink or not a regular file.
pub(crate) const EXIT_NOT_REGULAR: u32 = 84;

/// The POSIX sh script behind [`read_command`].
const READ_SCRIPT: &str = r#"f="${HOME:?}/.ssh/authorized_keys"
if [ -f "$f" ]; then
  n=$(wc -c < "$f" | tr -dc 0-9)
  [ -n "$n" ] || { printf 'remex: cannot read %s\n' "$f" >&2; exit 85; }
  printf 'remex-authorized-keys present %s\n' "$n"
  exec cat "$f"
elif [ -e "$f" ] || [ -h "$f" ]; then
  printf 'remex: %s is not a regular file; fix it by hand\n' "$f" >&2
  exit 84
else
  printf 'remex-authorized-keys missing\n'
fi
"#;

/// The POSIX sh script behind [`write_command`], after its two assignments
/// (`len=…`, `based_on=…`).
const WRITE_SCRIPT: &str = r#"umask 077
d="${HOME:?}/.ssh"
f="$d/authorized_keys"
fail() { printf 'remex: %s\n' "$2" >&2; exit "$1"; }
if command -v sha256sum >/dev/null 2>&1; then sha256() { sha256sum; }
elif command -v shasum >/dev/null 2>&1; then sha256() { shasum -a 256; }
elif command -v openssl >/dev/null 2>&1; then sha256() { openssl dgst -sha256 -r; }
else fail 83 "no sha256sum, shasum or openssl on this host to check $f for concurrent changes; install coreutils"
fi
if [ -h "$f" ] || { [ -e "$f" ] && [ ! -f "$f" ]; }; then
  fail 84 "$f is a symlink or not a regular file; remex does not replace it, edit it by hand"
fi
[ -d "$d" ] || mkdir -m 700 "$d" || fail 85 "cannot create $d"
tmp=$(mktemp "$d/.authorized_keys.remex.XXXXXX") || fail 85 "cannot create a temporary file in $d"
trap 'rm -f "$tmp"' EXIT
trap 'exit 85' HUP INT TERM
head -c "$len" > "$tmp" || fail 85 "cannot write $tmp"
got=$(wc -c < "$tmp" | tr -dc 0-9)
[ "$got" = "$len" ] || fail 82 "expected $len bytes on stdin, got $got; $f left unchanged"
chmod 600 "$tmp" || fail 85 "cannot chmod $tmp"
if command -v sync >/dev/null 2>&1; then sync "$tmp" 2>/dev/null || sync; fi
if [ -f "$f" ]; then
  now=$(sha256 < "$f") || fail 85 "cannot read $f"
  now=${now%%[!0-9a-f]*}
else
  now=missing
fi
[ "$now" = "$based_on" ] || fail 81 "$f changed since remex read it; $f left unchanged, run the command again"
mv -f "$tmp" "$f" || fail 85 "cannot replace $f"
if command -v sync >/dev/null 2>&1; then sync "$d" 2>/dev/null || :; fi
exit 0
"#;

/// The remote command that prints `authorized_keys` with its header:
/// `sh -c 'SCRIPT'`. Exit status 0, or [`EXIT_NOT_REGULAR`], or 85 when a
/// file operation failed (message on stderr).
pub(crate) fn read_command() -> String {
    format!("sh -c {}", quote(READ_SCRIPT))
}

/// The POSIX sh script behind [`write_command`].
pub(crate) fn write_script(new_content_len: usize, based_on: &BasedOn) -> String {
    format!(
        "len={}\nbased_on={}\n{WRITE_SCRIPT}",
        quote(&new_content_len.to_string()),
        quote(&based_on.token())
    )
}

/// The remote command that replaces `authorized_keys` with exactly
/// `new_content_len` bytes read from stdin, unless the file is no longer the
/// one described by `based_on`. See [`check_exit`] for its exit statuses.
pub(crate) fn write_command(new_content_len: usize, based_on: &BasedOn) -> String {
    format!("sh -c {}", quote(&write_script(new_content_len, based_on)))
}

/// The state of `authorized_keys` that an edit was based on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BasedOn {
    /// There was no file.
    Missing,
    /// The file's content had this SHA-256 (lower-case hex).
    Sha256(String),
}

impl BasedOn {
    /// The word the write script compares with the current file's hash.
    fn token(&self) -> String {
        match self {
            Self::Missing => "missing".to_owned(),
            Self::Sha256(hex) => hex.clone(),
        }
    }
}

/// `authorized_keys` as the read command found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RemoteFile {
    /// No file (nor `~/.ssh`, perhaps).
    Missing,
    /// The file's exact content (possibly empty).
    Present(String),
}

impl RemoteFile {
    /// Parses the read command's stdout. Refuses content that is not UTF-8
    /// (remex would not be able to keep it byte for byte) and truncated
    /// output.
    pub(crate) fn parse(stdout: &[u8]) -> Result<Self, KeysError> {
        let bad = |reason: String| KeysError::RemoteOutput { reason };
        let start = find_header(stdout).ok_or_else(|| {
            bad(format!(
                "no `{HEADER}` line; is the login shell a POSIX shell?"
            ))
        })?;
        let rest = stdout.get(start..).unwrap_or_default();
        let eol = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| bad("the header line is cut off".to_owned()))?;
        let header = std::str::from_utf8(rest.get(..eol).unwrap_or_default())
            .map_err(|_| bad("the header line is not text".to_owned()))?;
        let body = rest.get(eol + 1..).unwrap_or_default();
        let words: Vec<&str> = header.split(' ').collect();
        match words.as_slice() {
            [_, "missing"] => Ok(Self::Missing),
            [_, "present", len] => {
                let len: usize = len
                    .parse()
                    .map_err(|_| bad(format!("bad length `{len}` in the header")))?;
                let content = body.get(..len).ok_or_else(|| {
                    bad(format!(
                        "announced {len} bytes of authorized_keys, got {}",
                        body.len()
                    ))
                })?;
                let text = String::from_utf8(content.to_vec()).map_err(|_| {
                    bad("~/.ssh/authorized_keys is not UTF-8 text; remex edits only UTF-8 files, fix it by hand".to_owned())
                })?;
                Ok(Self::Present(text))
            }
            _ => Err(bad(format!("unexpected header `{header}`"))),
        }
    }

    /// The text to edit: the content, or nothing for a missing file.
    pub(crate) fn content(&self) -> &str {
        match self {
            Self::Missing => "",
            Self::Present(text) => text,
        }
    }

    /// What a write based on this read must find to go ahead.
    pub(crate) fn based_on(&self) -> BasedOn {
        match self {
            Self::Missing => BasedOn::Missing,
            Self::Present(text) => {
                BasedOn::Sha256(hex::encode(HashAlg::Sha256.digest(text.as_bytes())))
            }
        }
    }
}

/// Offset of the header line: at the start, or at the start of a line.
fn find_header(stdout: &[u8]) -> Option<usize> {
    let needle = format!("{HEADER} ");
    let needle = needle.as_bytes();
    (0..stdout.len()).find(|&i| {
        (i == 0 || stdout.get(i - 1) == Some(&b'\n'))
            && stdout.get(i..).is_some_and(|rest| rest.starts_with(needle))
    })
}

/// A change to make to `authorized_keys`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Edit<'a> {
    /// Add the key unless present (deploy, rotate).
    Add(&'a KeyLine),
    /// Remove every line holding the key (revoke, rotate).
    Remove(&'a KeyLine),
}

/// What to run to apply an edit: the command and the bytes for its stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WritePlan {
    /// The remote command ([`write_command`]).
    pub command: String,
    /// The new file content, to send on stdin, then EOF.
    pub stdin: Vec<u8>,
    /// Whether the key was added.
    pub added: bool,
    /// How many lines were removed.
    pub removed: usize,
}

/// Applies `edit` to the file as read; `None` when the file already is as
/// wanted (the key present for `Add`, absent for `Remove`), so nothing needs
/// writing.
pub(crate) fn plan_edit(file: &RemoteFile, edit: Edit<'_>) -> Option<WritePlan> {
    let (text, added, removed) = match edit {
        Edit::Add(key) => {
            let (text, added) = add_key(file.content(), key);
            (text, added, 0)
        }
        Edit::Remove(key) => {
            let (text, removed) = remove_key(file.content(), key);
            (text, false, removed)
        }
    };
    if !added && removed == 0 {
        return None;
    }
    Some(WritePlan {
        command: write_command(text.len(), &file.based_on()),
        stdin: text.into_bytes(),
        added,
        removed,
    })
}

/// Why the read or write command failed on a host (a per-host outcome, not
/// a reason to stop the run).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RemoteEditError {
    /// Someone changed the file between read and write.
    #[error(
        "~/.ssh/authorized_keys changed while remex was editing it; nothing was written, run the command again"
    )]
    Changed,
    /// The new content did not all arrive.
    #[error(
        "the new authorized_keys did not arrive whole; nothing was written, run the command again"
    )]
    ShortInput,
    /// No way to hash the file on the host.
    #[error(
        "the host has no sha256sum, shasum or openssl to check authorized_keys for concurrent changes; install coreutils"
    )]
    NoHashTool,
    /// The file is a symlink or something other than a regular file.
    #[error(
        "~/.ssh/authorized_keys is a symlink or not a regular file; remex does not replace it, edit it by hand"
    )]
    NotRegularFile,
    /// Another failure; the script's stderr says which.
    #[error("editing ~/.ssh/authorized_keys failed (exit status {code}): {stderr}")]
    Failed {
        /// The exit status.
        code: u32,
        /// The script's last stderr line, trimmed.
        stderr: String,
    },
}

/// Maps the exit status (and stderr) of the read or write command to a
/// result.
pub(crate) fn check_exit(code: u32, stderr: &[u8]) -> Result<(), RemoteEditError> {
    match code {
        0 => Ok(()),
        EXIT_CHANGED => Err(RemoteEditError::Changed),
        EXIT_SHORT_INPUT => Err(RemoteEditError::ShortInput),
        EXIT_NO_HASH_TOOL => Err(RemoteEditError::NoHashTool),
        EXIT_NOT_REGULAR => Err(RemoteEditError::NotRegularFile),
        // 85 (a file operation failed) and anything else: the script's
        // own words.
        code => Err(RemoteEditError::Failed {
            code,
            stderr: String::from_utf8_lossy(stderr)
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message")
                .trim()
                .to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::mode;
    use russh::keys::{Algorithm, PrivateKey};
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    /// A temporary HOME, as a remote user's.
    struct Home {
        dir: tempfile::TempDir,
    }

    /// What a command did.
    struct Ran {
        code: u32,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    }

    impl Home {
        fn new() -> Self {
            Self {
                dir: tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}")),
            }
        }

        fn ssh(&self) -> PathBuf {
            self.dir.path().join(".ssh")
        }

        fn keys_file(&self) -> PathBuf {
            self.ssh().join("authorized_keys")
        }

        /// Runs `command` the way sshd does: `SHELL -c COMMAND`, here with
        /// `sh` (dash on Debian) as the login shell, HOME set, `stdin` fed.
        fn run(&self, command: &str, stdin: &[u8]) -> Ran {
            self.run_with(command, stdin, None)
        }

        fn run_with(&self, command: &str, stdin: &[u8], path: Option<&Path>) -> Ran {
            let mut cmd = Command::new("/bin/sh");
            cmd.arg("-c")
                .arg(command)
                .env("HOME", self.dir.path())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            if let Some(path) = path {
                cmd.env("PATH", path);
            }
            let mut child = cmd.spawn().unwrap_or_else(|e| panic!("sh: {e}"));
            if let Some(mut input) = child.stdin.take() {
                // The script may exit before reading everything.
                let _ = input.write_all(stdin);
            }
            let out = child
                .wait_with_output()
                .unwrap_or_else(|e| panic!("wait: {e}"));
            Ran {
                code: out
                    .status
                    .code()
                    .and_then(|c| u32::try_from(c).ok())
                    .unwrap_or(999),
                stdout: out.stdout,
                stderr: out.stderr,
            }
        }

        /// The read command, parsed.
        fn read(&self) -> RemoteFile {
            let ran = self.run(&read_command(), b"");
            check_exit(ran.code, &ran.stderr).unwrap_or_else(|e| panic!("read: {e}"));
            RemoteFile::parse(&ran.stdout).unwrap_or_else(|e| panic!("parse: {e}"))
        }

        /// Read, edit, write: the whole flow; `Ok(false)` when nothing to do.
        fn edit(&self, edit: Edit<'_>) -> Result<bool, RemoteEditError> {
            let file = self.read();
            let Some(plan) = plan_edit(&file, edit) else {
                return Ok(false);
            };
            let ran = self.run(&plan.command, &plan.stdin);
            check_exit(ran.code, &ran.stderr).map(|()| true)
        }

        fn content(&self) -> String {
            std::fs::read_to_string(self.keys_file()).unwrap_or_else(|e| panic!("read: {e}"))
        }

        fn write_file(&self, text: &str) {
            std::fs::create_dir_all(self.ssh()).unwrap_or_else(|e| panic!("mkdir: {e}"));
            std::fs::write(self.keys_file(), text).unwrap_or_else(|e| panic!("write: {e}"));
        }

        /// Entries of ~/.ssh, to check no temporary file is left behind.
        fn ssh_entries(&self) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(self.ssh())
                .unwrap_or_else(|e| panic!("read_dir: {e}"))
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    fn new_key(comment: &str) -> KeyLine {
        let mut key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
            .unwrap_or_else(|e| panic!("generate: {e}"));
        key.set_comment(comment);
        KeyLine::from_public_key(key.public_key()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn read_distinguishes_missing_empty_and_content() {
        let home = Home::new();
        assert_eq!(home.read(), RemoteFile::Missing);
        home.write_file("");
        assert_eq!(home.read(), RemoteFile::Present(String::new()));
        let text = "# a\r\nno-pty ssh-ed25519 AAAA x\n\n  trailing without newline";
        home.write_file(text);
        assert_eq!(home.read(), RemoteFile::Present(text.to_owned()));
    }

    #[test]
    fn deploy_into_a_home_without_ssh_dir() {
        let home = Home::new();
        let key = new_key("remex@test");
        assert_eq!(home.edit(Edit::Add(&key)), Ok(true));
        assert_eq!(home.content(), format!("{}\n", key.as_str()));
        assert_eq!(mode(&home.ssh()), 0o700);
        assert_eq!(mode(&home.keys_file()), 0o600);
        assert_eq!(home.ssh_entries(), ["authorized_keys"], "no temp file left");
        // Twice: nothing to write, one line.
        assert_eq!(home.edit(Edit::Add(&key)), Ok(false));
        assert_eq!(home.content(), format!("{}\n", key.as_str()));
    }

    #[test]
    fn deploy_keeps_other_lines_and_revoke_restores_them() {
        let home = Home::new();
        let other = new_key("other");
        let original = format!(
            "# hand-made\r\ncommand=\"echo 'a b'\",from=\"10.0.0.1\" {}\n\n{}",
            other.as_str(),
            "cert-authority ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDuM9/2rOH8BvJkJjG5Di2oM5YzOSvC7UwCWXdBqT4Dx ca"
        );
        home.write_file(&original);
        std::fs::set_permissions(home.keys_file(), std::fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
        let key = new_key("remex@test");
        assert_eq!(home.edit(Edit::Add(&key)), Ok(true));
        assert_eq!(home.content(), format!("{original}\n{}\n", key.as_str()));
        assert_eq!(mode(&home.keys_file()), 0o600, "tightened to 0600");
        assert_eq!(home.edit(Edit::Remove(&key)), Ok(true));
        assert_eq!(home.content(), format!("{original}\n"));
        assert_eq!(home.edit(Edit::Remove(&key)), Ok(false));
        assert_eq!(home.ssh_entries(), ["authorized_keys"]);
    }

    #[test]
    fn a_home_with_spaces_and_quotes() {
        let outer = Home::new();
        let odd = outer.dir.path().join("it's a \"home\" $x");
        std::fs::create_dir(&odd).unwrap_or_else(|e| panic!("{e}"));
        let key = new_key("k");
        let run = |command: &str, stdin: &[u8]| {
            let mut child = Command::new("/bin/sh")
                .arg("-c")
                .arg(command)
                .env("HOME", &odd)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("sh: {e}"));
            if let Some(mut input) = child.stdin.take() {
                let _ = input.write_all(stdin);
            }
            child.wait_with_output().unwrap_or_else(|e| panic!("{e}"))
        };
        let out = run(&read_command(), b"");
        let file = RemoteFile::parse(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
        let plan = plan_edit(&file, Edit::Add(&key)).unwrap_or_else(|| panic!("a change"));
        let out = run(&plan.command, &plan.stdin);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let written = std::fs::read_to_string(odd.join(".ssh/authorized_keys"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(written, format!("{}\n", key.as_str()));
    }

    #[test]
    fn removing_the_last_key_leaves_an_empty_file() {
        let home = Home::new();
        let key = new_key("k");
        home.write_file(&format!("{}\n", key.as_str()));
        assert_eq!(home.edit(Edit::Remove(&key)), Ok(true));
        assert_eq!(home.content(), "");
        assert_eq!(home.read(), RemoteFile::Present(String::new()));
    }

    #[test]
    fn a_concurrent_change_is_detected_and_nothing_is_written() {
        let home = Home::new();
        home.write_file("# before\n");
        let file = home.read();
        let key = new_key("k");
        let plan = plan_edit(&file, Edit::Add(&key)).unwrap_or_else(|| panic!("a change"));
        // Someone else edits between our read and our write.
        home.write_file("# before\n# someone else\n");
        let ran = home.run(&plan.command, &plan.stdin);
        assert_eq!(ran.code, EXIT_CHANGED);
        assert_eq!(
            check_exit(ran.code, &ran.stderr),
            Err(RemoteEditError::Changed)
        );
        assert_eq!(home.content(), "# before\n# someone else\n");
        assert_eq!(home.ssh_entries(), ["authorized_keys"], "temp file removed");

        // The file appearing where there was none is a change too.
        let home = Home::new();
        let plan = plan_edit(&home.read(), Edit::Add(&key)).unwrap_or_else(|| panic!("change"));
        home.write_file("# created meanwhile\n");
        let ran = home.run(&plan.command, &plan.stdin);
        assert_eq!(ran.code, EXIT_CHANGED);
        assert_eq!(home.content(), "# created meanwhile\n");

        // And the file disappearing.
        let home = Home::new();
        home.write_file("# here\n");
        let plan = plan_edit(&home.read(), Edit::Add(&key)).unwrap_or_else(|| panic!("change"));
        std::fs::remove_file(home.keys_file()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(home.run(&plan.command, &plan.stdin).code, EXIT_CHANGED);
        assert!(!home.keys_file().exists());
    }

    #[test]
    fn short_input_writes_nothing() {
        let home = Home::new();
        home.write_file("# keep\n");
        let based_on = home.read().based_on();
        let ran = home.run(&write_command(100, &based_on), b"# only a few bytes\n");
        assert_eq!(
            ran.code,
            EXIT_SHORT_INPUT,
            "{}",
            String::from_utf8_lossy(&ran.stderr)
        );
        assert_eq!(home.content(), "# keep\n");
        assert_eq!(home.ssh_entries(), ["authorized_keys"]);
    }

    #[test]
    fn reads_exactly_the_announced_bytes() {
        let home = Home::new();
        let based_on = home.read().based_on();
        let ran = home.run(&write_command(6, &based_on), b"# new\nEXTRA BYTES");
        assert_eq!(ran.code, 0, "{}", String::from_utf8_lossy(&ran.stderr));
        assert_eq!(home.content(), "# new\n");
    }

    #[test]
    fn a_symlinked_file_is_not_replaced() {
        let home = Home::new();
        std::fs::create_dir_all(home.ssh()).unwrap_or_else(|e| panic!("{e}"));
        let real = home.dir.path().join("managed_keys");
        std::fs::write(&real, "# managed elsewhere\n").unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(&real, home.keys_file()).unwrap_or_else(|e| panic!("{e}"));
        let key = new_key("k");
        assert_eq!(
            home.edit(Edit::Add(&key)),
            Err(RemoteEditError::NotRegularFile)
        );
        assert!(
            std::fs::symlink_metadata(home.keys_file())
                .map(|m| m.file_type().is_symlink())
                .unwrap_or(false)
        );
        assert_eq!(
            std::fs::read_to_string(&real).ok().as_deref(),
            Some("# managed elsewhere\n")
        );

        // A directory in its place: the read itself refuses.
        let home = Home::new();
        std::fs::create_dir_all(home.keys_file()).unwrap_or_else(|e| panic!("{e}"));
        let ran = home.run(&read_command(), b"");
        assert_eq!(
            check_exit(ran.code, &ran.stderr),
            Err(RemoteEditError::NotRegularFile)
        );
    }

    #[test]
    fn no_hash_tool_is_a_distinct_failure() {
        let home = Home::new();
        // A PATH with the tools the script needs except any SHA-256 tool.
        let bin = home.dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap_or_else(|e| panic!("{e}"));
        for tool in [
            "sh", "head", "wc", "tr", "mktemp", "chmod", "mv", "rm", "mkdir", "cat",
        ] {
            let found = ["/usr/bin", "/bin"]
                .iter()
                .map(|d| Path::new(d).join(tool))
                .find(|p| p.exists())
                .unwrap_or_else(|| panic!("{tool} not installed"));
            std::os::unix::fs::symlink(found, bin.join(tool)).unwrap_or_else(|e| panic!("{e}"));
        }
        let ran = home.run_with(&write_command(0, &BasedOn::Missing), b"", Some(&bin));
        assert_eq!(
            ran.code,
            EXIT_NO_HASH_TOOL,
            "{}",
            String::from_utf8_lossy(&ran.stderr)
        );
        assert!(!home.ssh().exists(), "nothing created");
        assert_eq!(
            check_exit(ran.code, &ran.stderr),
            Err(RemoteEditError::NoHashTool)
        );
    }

    #[test]
    fn based_on_hash_matches_sha256sum() {
        let home = Home::new();
        let text = "ssh-ed25519 AAAA x\n# ü\n";
        home.write_file(text);
        let out = Command::new("sha256sum")
            .arg(home.keys_file())
            .output()
            .unwrap_or_else(|e| panic!("sha256sum: {e}"));
        let theirs = String::from_utf8_lossy(&out.stdout);
        let theirs = theirs.split(' ').next().unwrap_or_default();
        assert_eq!(
            RemoteFile::Present(text.to_owned()).based_on(),
            BasedOn::Sha256(theirs.to_owned())
        );
    }

    #[test]
    fn scripts_run_under_bash_too() {
        let home = Home::new();
        let key = new_key("k");
        let plan = plan_edit(&home.read(), Edit::Add(&key)).unwrap_or_else(|| panic!("a change"));
        let out = Command::new("bash")
            .arg("--posix")
            .arg("-c")
            .arg(&plan.command)
            .env("HOME", home.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                if let Some(mut input) = child.stdin.take() {
                    input.write_all(&plan.stdin)?;
                }
                child.wait_with_output()
            })
            .unwrap_or_else(|e| panic!("bash: {e}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(home.content(), format!("{}\n", key.as_str()));
    }

    #[test]
    fn parse_skips_login_noise_and_checks_lengths() {
        let ok = RemoteFile::parse(b"Welcome!\nremex-authorized-keys present 3\nab\n");
        assert_eq!(ok.ok(), Some(RemoteFile::Present("ab\n".to_owned())));
        let ok = RemoteFile::parse(b"remex-authorized-keys missing\n");
        assert_eq!(ok.ok(), Some(RemoteFile::Missing));
        for bad in [
            &b""[..],
            b"nothing here\n",
            b"xremex-authorized-keys missing\n",
            b"remex-authorized-keys present 10\nshort",
            b"remex-authorized-keys present x\n",
            b"remex-authorized-keys present 2\n\xff\xfe",
            b"remex-authorized-keys what\n",
            b"remex-authorized-keys missing",
        ] {
            let err = RemoteFile::parse(bad);
            assert!(
                matches!(err, Err(KeysError::RemoteOutput { .. })),
                "{bad:?}: {err:?}"
            );
        }
        let msg = RemoteFile::parse(b"remex-authorized-keys present 1\n\xff")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("not UTF-8"), "{msg}");
    }

    #[test]
    fn interpolated_values_are_quoted() {
        let cmd = write_script(12, &BasedOn::Sha256("abc".to_owned()));
        assert!(cmd.starts_with("len=12\nbased_on=abc\n"), "{cmd}");
        // A hostile "hash" cannot escape its quotes.
        let cmd = write_command(0, &BasedOn::Sha256("x'; touch pwned; '".to_owned()));
        let home = Home::new();
        let ran = home.run(&cmd, b"");
        assert_eq!(ran.code, EXIT_CHANGED);
        assert!(!Path::new("pwned").exists() && !home.dir.path().join("pwned").exists());
    }

    #[test]
    fn exit_statuses_map_to_errors() {
        assert_eq!(check_exit(0, b""), Ok(()));
        assert_eq!(
            check_exit(1, b"noise\nmv: cannot move\n\n"),
            Err(RemoteEditError::Failed {
                code: 1,
                stderr: "mv: cannot move".to_owned()
            })
        );
        assert_eq!(
            check_exit(EXIT_SHORT_INPUT, b""),
            Err(RemoteEditError::ShortInput)
        );
    }
}
