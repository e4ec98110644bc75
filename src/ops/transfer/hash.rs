//! SHA-256 on the remote side: the command that computes it there, and
//! local hashing of files.

use std::io::Read as _;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::failure::{ErrorKind, Failure};
use crate::quote::quote;
use crate::transport::connection::Connection;

use super::access::Access;

/// What the remote command prints when the host has no hash tool.
const NO_HASHER: &str = "remex-no-hasher";

/// What every hash command prints first. Output without it came from
/// something other than the command: an SFTP-only account (`ForceCommand
/// internal-sftp`, which answers "This service allows sftp connections
/// only.") or a restricted shell. Such a host cannot hash either, so the copy
/// is read back over SFTP instead.
const RAN: &str = "remex-hash";

/// The shell command that prints the SHA-256 of `path` (of `len` bytes
/// from `offset`, when a range is given) on the remote host: `openssl dgst
/// -sha256`, else `sha256sum`, else `shasum -a 256`, reading the file on
/// stdin (so no file name reaches an option parser or the output). Prints
/// `remex-no-hasher` when none exists. Prints [`RAN`] first.
pub(super) fn command(path: &str, range: Option<(u64, u64)>) -> String {
    let source = match range {
        Some((0, len)) => format!("head -c {len} < {} | $h", quote(path)),
        Some((offset, len)) => format!(
            "tail -c +{} < {} | head -c {len} | $h",
            offset + 1,
            quote(path)
        ),
        None => format!("$h < {}", quote(path)),
    };
    format!("echo {RAN}; {} {source}", pick_hasher(""))
}

/// Shell that sets `$h` to the host's best SHA-256 tool (`openssl dgst
/// -sha256`, else `sha256sum`, else `shasum -a 256`); without one it prints
/// `remex-no-hasher`, runs `on_none` and exits 0.
fn pick_hasher(on_none: &str) -> String {
    format!(
        "if command -v openssl >/dev/null 2>&1; then h='openssl dgst -sha256 -r'; \
         elif command -v sha256sum >/dev/null 2>&1; then h=sha256sum; \
         elif command -v shasum >/dev/null 2>&1; then h='shasum -a 256'; \
         else echo {NO_HASHER}; {on_none}exit 0; fi;"
    )
}

/// The Python program behind [`Streaming`] when the host has `python3`:
/// it reads the file itself, in 1 MiB blocks, so the bytes cross no pipe
/// (hashlib uses OpenSSL, and so the CPU's SHA instructions). A short read
/// (the file is shorter than the writer said) is an error.
const STREAMING_PY: &str = "import sys, hashlib
h = hashlib.sha256()
f = open(sys.argv[1], 'rb', buffering=0)
buf = memoryview(bytearray(1 << 20))
while True:
    line = sys.stdin.readline()
    if not line:
        break
    left = int(line)
    while left > 0:
        n = f.readinto(buf[:min(left, len(buf))])
        if not n:
            sys.exit('remex: short read')
        h.update(buf[:n])
        left -= n
print(h.hexdigest())
";

/// The shell command behind [`Streaming`]: it opens `path` once and, for
/// each `LEN` line on stdin, hashes the next LEN bytes into one running
/// SHA-256, so the host hashes a file while it is still being written, each
/// stretch once the writer says it is complete. With `python3` the program
/// above reads the file directly; without it, `head -c LEN` feeds one hash
/// process through a pipe (costlier: every byte is copied twice more).
/// (`head -c` reads exactly LEN bytes from a file in GNU coreutils; a
/// `head` that reads ahead would give a wrong digest, which the caller
/// double-checks with [`command`].)
pub(super) fn streaming_command(path: &str) -> String {
    format!(
        "echo {RAN}; if command -v python3 >/dev/null 2>&1; then {}; fi; {}",
        streaming_python(path),
        streaming_pipe(path)
    )
}

/// The `python3` branch of [`streaming_command`].
fn streaming_python(path: &str) -> String {
    format!("exec python3 -c {} {}", quote(STREAMING_PY), quote(path))
}

/// The pipe branch of [`streaming_command`].
fn streaming_pipe(path: &str) -> String {
    // Without a tool, stdin (the stretch lengths) is drained first, so the
    // writer never blocks on it.
    format!(
        "{} exec 3< {path} || exit 1; \
         while read -r len; do head -c \"$len\" <&3; done | $h",
        pick_hasher("cat >/dev/null; "),
        path = quote(path)
    )
}

/// A hash of a file computed on the host while the file is being written:
/// [`Streaming::feed`] each completed stretch in order, then
/// [`Streaming::finish`] for the digest of all of them.
pub(super) struct Streaming {
    session: crate::transport::session::Session,
    path: String,
    /// Output that came before the server confirmed the command.
    early: Vec<u8>,
}

impl Streaming {
    /// Starts the hashing command for `path` on a channel of its own.
    /// Fails when the host refuses to run it (an SFTP-only server): the
    /// caller then verifies another way, and nothing is sent to the refused
    /// channel.
    pub(super) async fn start(
        conn: &Connection,
        access: &Access,
        path: &str,
    ) -> Result<Streaming, Failure> {
        let mut session = conn.session().await?;
        let failure =
            |why: String| Failure::new(ErrorKind::Io, format!("hashing {path} on the host: {why}"));
        let mut early = Vec::new();
        let runs = access
            .start(&mut session, &streaming_command(path), &mut early)
            .await
            .map_err(|e| failure(e.to_string()))?;
        if !runs {
            return Err(failure("the host refused to run the command".to_owned()));
        }
        Ok(Streaming {
            session,
            path: path.to_owned(),
            early,
        })
    }

    /// The next `len` bytes are written: hash them.
    pub(super) async fn feed(&mut self, len: u64) -> Result<(), Failure> {
        let line = format!("{len}\n");
        self.session
            .channel
            .data(line.as_bytes())
            .await
            .map_err(|e| {
                Failure::new(
                    ErrorKind::Io,
                    format!("hashing {} on the host: {e}", self.path),
                )
            })
    }

    /// Stops the command (the upload failed): ends its input and closes the
    /// channel, so no remote process is left waiting.
    pub(super) async fn abort(self) {
        let _ = self.session.channel.eof().await;
        let _ = self.session.channel.close().await;
    }

    /// Ends the input and returns the digest; `Ok(None)`: no hash tool.
    pub(super) async fn finish(mut self) -> Result<Option<String>, Failure> {
        let path = self.path;
        let io = |e: russh::Error| {
            Failure::new(ErrorKind::Io, format!("hashing {path} on the host: {e}"))
        };
        let mut out = std::mem::take(&mut self.early);
        let status = self
            .session
            .finish(&mut |_, data| out.extend_from_slice(data))
            .await
            .map_err(io)?;
        interpret(&path, status, &out)
    }
}

/// The digest in a hash tool's output: the first word of 64 hex digits.
pub(super) fn parse(output: &str) -> Option<String> {
    output
        .split_whitespace()
        .map(|w| w.trim_start_matches('\\'))
        .find(|w| w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
}

/// Runs [`command`] on the host. `Ok(None)`: the host has no hash tool.
pub(super) async fn remote(
    conn: &Connection,
    access: &Access,
    path: &str,
    range: Option<(u64, u64)>,
) -> Result<Option<String>, Failure> {
    let (status, output) = access.run_helper(conn, &command(path, range), &[]).await?;
    interpret(path, status, &output)
}

/// What a hash command's exit status and output say: `Ok(None)` when the
/// host has no hash tool or did not run the command at all.
fn interpret(path: &str, status: Option<u32>, output: &[u8]) -> Result<Option<String>, Failure> {
    let text = String::from_utf8_lossy(output);
    let said = |word: &str| text.lines().any(|line| line.trim() == word);
    if !said(RAN) {
        tracing::debug!(path, output = %text.trim(), "the host runs no commands: reading back");
        return Ok(None);
    }
    if said(NO_HASHER) {
        return Ok(None);
    }
    match (status, parse(&text)) {
        (Some(0), Some(digest)) => Ok(Some(digest)),
        _ => Err(Failure::new(
            ErrorKind::Transfer,
            format!(
                "hashing {path} on the host failed (exit {}): {}",
                status.map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
                text.trim()
            ),
        )),
    }
}

/// SHA-256 of the first `limit` bytes of a local file (all of it when
/// `None`), with the hasher state, so a resumed upload can go on hashing.
/// Stops with an `Interrupted` error once `cancel` fires. Blocking: call it
/// on a blocking thread.
pub(super) fn local(
    path: &Path,
    limit: Option<u64>,
    cancel: Option<&crate::run::Cancel>,
) -> std::io::Result<(Sha256, u64)> {
    let file = std::fs::File::open(path)?;
    let mut reader: Box<dyn std::io::Read> = match limit {
        Some(n) => Box::new(file.take(n)),
        None => Box::new(file),
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        if cancel.is_some_and(crate::run::Cancel::is_cancelled) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "interrupted",
            ));
        }
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(buf.get(..n).unwrap_or_default());
        total += n as u64;
    }
    Ok((hasher, total))
}

/// [`local`] on a blocking thread (for async callers).
pub(super) async fn local_in_background(
    path: std::path::PathBuf,
    limit: Option<u64>,
    cancel: Option<crate::run::Cancel>,
) -> std::io::Result<(Sha256, u64)> {
    tokio::task::spawn_blocking(move || local(&path, limit, cancel.as_ref()))
        .await
        .unwrap_or_else(|err| Err(std::io::Error::other(err.to_string())))
}

/// Hex of a finished hasher.
pub(super) fn finish(hasher: Sha256) -> String {
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_tool() {
        let d = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(parse(&format!("{d}  -\n")).as_deref(), Some(d));
        assert_eq!(parse(&format!("{d} *stdin\n")).as_deref(), Some(d));
        assert_eq!(parse(&format!("\\{d}  -\n")).as_deref(), Some(d));
        assert_eq!(parse("SHA2-256(stdin)= nothing"), None);
    }

    #[test]
    fn the_command_quotes_the_path_and_runs_in_sh() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("it's $(x) a file");
        std::fs::write(&path, b"test").unwrap_or_else(|e| panic!("{e}"));
        let p = path.to_string_lossy().into_owned();
        for (range, expect) in [
            (
                None,
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            ),
            (
                Some((0, 1)),
                "e3b98a4da31a127d4bde6e43033f66ba274cab0eb7eb1c70ec41402bf6273dd8",
            ),
            // "es"
            (
                Some((1, 2)),
                "c0bc1e08f9743b2d50d5f1607503bf4e849af0e729fca896515bea955d70a33e",
            ),
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(command(&p, range))
                .output()
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(out.status.success(), "{out:?}");
            assert_eq!(
                parse(&String::from_utf8_lossy(&out.stdout)).as_deref(),
                Some(expect)
            );
        }
    }

    /// Runs `command` in `sh` with `input` on its stdin.
    fn sh_with_input(command: &str, input: &[u8]) -> std::process::Output {
        use std::io::Write as _;
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        if let Some(mut stdin) = child.stdin.take() {
            // A command may exit without reading its input (no hash tool):
            // the write then fails with a broken pipe, which is no error.
            match stdin.write_all(input) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("{e}"),
                _ => {}
            }
        }
        child.wait_with_output().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_streaming_command_hashes_stretches_in_order() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("-a 'b' $(x)");
        std::fs::write(&path, b"test").unwrap_or_else(|e| panic!("{e}"));
        let path = path.to_string_lossy().into_owned();
        for (name, command) in [
            ("python", streaming_python(&path)),
            ("pipe", streaming_pipe(&path)),
            ("either", streaming_command(&path)),
        ] {
            let out = sh_with_input(&command, b"3\n1\n");
            assert!(out.status.success(), "{name}: {out:?}");
            assert_eq!(
                parse(&String::from_utf8_lossy(&out.stdout)).as_deref(),
                Some("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
                "{name}"
            );
        }
        let out = sh_with_input(&streaming_command(&path), b"4\n");
        assert_eq!(verdict(&out), Ok(Some(TEST_SHA256.to_owned())), "{out:?}");
        let out = sh_with_input(&command(&path, None), b"");
        assert_eq!(verdict(&out), Ok(Some(TEST_SHA256.to_owned())), "{out:?}");
    }

    /// SHA-256 of `test`.
    const TEST_SHA256: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    /// What [`interpret`] makes of a finished command.
    fn verdict(out: &std::process::Output) -> Result<Option<String>, String> {
        let status = out.status.code().and_then(|c| u32::try_from(c).ok());
        interpret("f", status, &out.stdout).map_err(|f| f.message)
    }

    #[test]
    fn a_host_that_runs_no_commands_is_read_back_but_a_failing_hash_is_an_error() {
        // What sshd's `ForceCommand internal-sftp` answers to any command.
        let sftp_only = b"This service allows sftp connections only.\n";
        assert_eq!(interpret("f", Some(1), sftp_only).ok(), Some(None));
        assert_eq!(interpret("f", None, b"").ok(), Some(None));
        // The command ran and the hash failed: an error that says why.
        let denied = format!("{RAN}\nsh: 1: cannot open f: Permission denied\n");
        let error = interpret("f", Some(2), denied.as_bytes())
            .err()
            .map(|f| f.message)
            .unwrap_or_default();
        assert!(error.contains("Permission denied"), "{error}");
        let bad = format!("{RAN}\nnot a digest\n");
        assert!(interpret("f", Some(0), bad.as_bytes()).is_err());
    }

    #[test]
    fn without_a_hash_tool_the_commands_say_so() {
        // A PATH with `cat` and `head` but no hash tool.
        let bin = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for tool in ["cat", "head"] {
            std::os::unix::fs::symlink(format!("/usr/bin/{tool}"), bin.path().join(tool))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        for command in [
            command("/etc/hostname", None),
            streaming_command("/etc/hostname"),
        ] {
            let out = sh_with_input(&format!("PATH={}; {command}", bin.path().display()), b"3\n");
            assert!(out.status.success(), "{out:?}");
            assert!(String::from_utf8_lossy(&out.stdout).contains(NO_HASHER));
            assert_eq!(verdict(&out), Ok(None), "{out:?}");
        }
    }

    #[test]
    fn the_python_hasher_refuses_a_short_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("f");
        std::fs::write(&path, b"test").unwrap_or_else(|e| panic!("{e}"));
        let out = sh_with_input(&streaming_python(&path.to_string_lossy()), b"5\n");
        assert!(!out.status.success(), "{out:?}");
        assert_eq!(parse(&String::from_utf8_lossy(&out.stdout)), None);
    }

    #[test]
    fn local_hash_of_a_prefix() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("f");
        std::fs::write(&path, b"test").unwrap_or_else(|e| panic!("{e}"));
        let (h, n) = local(&path, Some(1), None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n, 1);
        assert_eq!(
            finish(h),
            "e3b98a4da31a127d4bde6e43033f66ba274cab0eb7eb1c70ec41402bf6273dd8"
        );
    }
}
