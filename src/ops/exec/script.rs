//! Running a local script on hosts: the script travels over the connection,
//! runs from a private directory, and the directory is removed afterwards.
//!
//! On each host remex
//!
//! 1. removes its own leftovers from runs whose connection was lost: entries
//!    of `${TMPDIR:-/tmp}` named `remex-script.*`, owned by the user, holding
//!    a `.remex-script` marker, and older than [`LEFTOVER_AGE_MINUTES`];
//! 2. creates a directory with `mktemp -d` (mode 0700) holding the marker,
//!    and writes the script into it from the channel's stdin (binary-safe);
//! 3. runs it (see below) with exactly the given arguments;
//! 4. removes the directory — after success, failure, timeout and Ctrl-C.
//!
//! The interpreter is, in order: `--interpreter`; the script's `#!` line
//! (split as Linux does: the interpreter path and at most one argument); or
//! `/bin/sh`. remex runs `INTERPRETER [ARG] SCRIPT ARGS…` itself rather than
//! executing the file, so a `noexec` /tmp does not matter. With sudo every
//! step runs as the target user, so the directory belongs to that user.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::quote;

/// Leftover script directories older than this are removed (24 hours).
pub(crate) const LEFTOVER_AGE_MINUTES: u32 = 24 * 60;

/// The marker file that identifies a directory as remex's.
pub const MARKER: &str = ".remex-script";

/// A local script, loaded once and sent to every host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// File name, for messages (`deploy.sh`).
    pub name: String,
    /// The bytes, sent as they are.
    pub content: Arc<Vec<u8>>,
    /// Hex SHA-256 of `content`.
    pub sha256: String,
    /// The argv prefix that runs it (interpreter and its argument).
    pub interpreter: Vec<String>,
}

impl Script {
    /// Loads `path`, choosing the interpreter from its `#!` line (or `/bin/sh`).
    pub fn load(path: &Path) -> std::io::Result<Script> {
        let content = std::fs::read(path)?;
        let name = path
            .file_name()
            .map_or_else(|| "script".to_owned(), |n| n.to_string_lossy().into_owned());
        Ok(Script::from_bytes(name, content))
    }

    /// A script from bytes.
    pub fn from_bytes(name: impl Into<String>, content: Vec<u8>) -> Script {
        let sha256 = hex::encode(Sha256::digest(&content));
        let interpreter = shebang(&content).unwrap_or_else(|| vec!["/bin/sh".to_owned()]);
        Script {
            name: name.into(),
            content: Arc::new(content),
            sha256,
            interpreter,
        }
    }

    /// Overrides the interpreter (`--interpreter /usr/bin/python3`).
    pub fn with_interpreter(mut self, interpreter: impl Into<String>) -> Script {
        self.interpreter = vec![interpreter.into()];
        self
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.content.len() as u64
    }
}

/// The interpreter of a `#!` line, split as Linux's binfmt_script does: the
/// path, then everything after it (trimmed) as at most one argument.
pub(crate) fn shebang(content: &[u8]) -> Option<Vec<String>> {
    let rest = content.strip_prefix(b"#!")?;
    let line = rest.split(|&b| b == b'\n').next()?;
    let line = String::from_utf8_lossy(line);
    let line = line.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\r');
    let (path, arg) = match line.find([' ', '\t']) {
        Some(at) => (&line[..at], line[at..].trim_matches([' ', '\t'])),
        None => (line, ""),
    };
    if path.is_empty() {
        return None;
    }
    let mut argv = vec![path.to_owned()];
    if !arg.is_empty() {
        argv.push(arg.to_owned());
    }
    Some(argv)
}

/// Step 1 and 2 on the host: clean leftovers, make the directory, write the
/// script from stdin, print the directory. Runs as the (sudo) target user.
pub(crate) fn stage_command() -> String {
    format!(
        "set -e; umask 077; t=${{TMPDIR:-/tmp}}; \
         for d in \"$t\"/remex-script.*; do \
           [ -f \"$d/{MARKER}\" ] && [ -O \"$d\" ] && [ -n \"$(find \"$d\" -maxdepth 0 -mmin +{LEFTOVER_AGE_MINUTES} 2>/dev/null)\" ] && rm -rf -- \"$d\"; \
         done; \
         d=$(mktemp -d \"$t/remex-script.XXXXXXXX\"); : > \"$d/{MARKER}\"; \
         cat > \"$d/script\"; printf '%s\\n' \"$d\""
    )
}

/// Step 4: remove the directory (only if it still holds the marker).
pub(crate) fn cleanup_command(dir: &str) -> String {
    let dir = quote::quote(dir);
    format!("[ ! -f {dir}/{MARKER} ] || rm -rf -- {dir}")
}

/// The argv that runs the staged script with `args`.
pub(crate) fn run_argv(script: &Script, dir: &str, args: &[String]) -> Vec<String> {
    let mut argv = script.interpreter.clone();
    argv.push(format!("{dir}/script"));
    argv.extend(args.iter().cloned());
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebangs_split_like_linux() {
        assert_eq!(
            shebang(b"#!/bin/bash\necho"),
            Some(vec!["/bin/bash".into()])
        );
        assert_eq!(
            shebang(b"#! /usr/bin/env python3 -u\n"),
            Some(vec!["/usr/bin/env".into(), "python3 -u".into()])
        );
        assert_eq!(shebang(b"#!/bin/sh\r\n"), Some(vec!["/bin/sh".into()]));
        assert_eq!(shebang(b"echo hi\n"), None);
        assert_eq!(shebang(b"#!\n"), None);
        assert_eq!(shebang(b""), None);
    }

    #[test]
    fn scripts_default_to_sh_and_know_their_digest() {
        let s = Script::from_bytes("x", b"echo hi\n".to_vec());
        assert_eq!(s.interpreter, ["/bin/sh"]);
        assert_eq!(
            s.sha256,
            // `printf 'echo hi\n' | sha256sum`
            "ab08508fdf5ca4da5c4995987bc41c56c048aaa5eeb046417ae4049b7d40286e"
        );
        assert_eq!(s.size(), 8);
        let s = s.with_interpreter("/usr/bin/python3");
        assert_eq!(s.interpreter, ["/usr/bin/python3"]);
    }

    /// Runs the staging and cleanup scripts with a real `sh` in a temp dir.
    #[test]
    fn staging_and_cleanup_work_in_a_real_shell() {
        let tmp = tempfile::tempdir().unwrap();
        // A stale leftover (marker, old) and a fresh one (kept).
        let stale = tmp.path().join("remex-script.stale");
        let fresh = tmp.path().join("remex-script.fresh");
        let foreign = tmp.path().join("remex-script.foreign");
        for d in [&stale, &fresh, &foreign] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(stale.join(MARKER), "").unwrap();
        std::fs::write(fresh.join(MARKER), "").unwrap();
        let old = std::process::Command::new("touch")
            .args(["-d", "2 days ago"])
            .arg(&stale)
            .arg(&foreign)
            .status()
            .unwrap();
        assert!(old.success());

        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(stage_command())
            .env("TMPDIR", tmp.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"\x00binary\xff")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let dir = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert!(dir.starts_with(&tmp.path().join("remex-script.").display().to_string()));
        assert_eq!(
            std::fs::read(format!("{dir}/script")).unwrap(),
            b"\x00binary\xff"
        );
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert!(!stale.exists(), "stale leftover kept");
        assert!(fresh.exists(), "fresh directory removed");
        assert!(
            foreign.exists(),
            "a directory without the marker was removed"
        );

        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(cleanup_command(&dir))
            .status()
            .unwrap();
        assert!(status.success());
        assert!(!Path::new(&dir).exists());
    }
}
