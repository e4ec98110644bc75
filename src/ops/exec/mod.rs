//! Running one command on one host: the remote command line, stdin, output
//! capture, and a timeout that really stops the remote process tree.
//!
//! # The remote command line
//!
//! sshd runs an exec request as `$SHELL -c STRING`. For an argv remex sends
//!
//! ```text
//! export REMEX_RUN_ID=<tag> 'K=V'…
//! cd -- DIR || exit 126
//! 'WORD' 'WORD'…
//! ```
//!
//! and for a raw string (`--raw`)
//!
//! ```text
//! exec env REMEX_RUN_ID=<tag> 'K=V'… "${SHELL:-/bin/sh}" -c 'cd -- DIR || exit 126; RAW'
//! ```
//!
//! so that `--env` reaches the command even when sshd's `AcceptEnv` refuses
//! it, a failing `--cwd` stops the command with status 126, and every process
//! of the command carries a tag in its initial environment (a script's own
//! shell included; an argv's shell has nothing left to run once the command
//! is gone, so it needs none, and the command costs one shell start). The
//! argv is quoted in [`crate::quote`]; a raw string reaches the shell as is.
//!
//! # Timeouts
//!
//! When the timeout fires, remex runs a small reaper on a second channel of
//! the same connection: it finds every process whose environment carries the
//! tag (`/proc/PID/environ`), sends it `TERM`, and `KILL`s what is left after
//! 300 ms. Then it sends the session a `KILL` signal request (sshd ≥ 8.1 and
//! Dropbear pass it on) for anything the reaper could not see, and closes the
//! channel. Processes that start a
//! new session *and* scrub their environment escape this (as they escape any
//! tool short of a cgroup); everything else, children and grandchildren
//! included, is gone when the outcome is reported.

use std::sync::Arc;
use std::time::Duration;

use russh::{ChannelMsg, Sig};
use tokio::time::Instant;

use crate::quote;
use crate::run::report::{Captured, ErrorKind, Failure};
use crate::transport::connection::Connection;
pub mod script;
pub mod sudo;

use crate::ops::exec::sudo::{Sudo, SudoMode};
use script::Script;

/// The environment variable that tags every process of a remex command.
pub const TAG_VAR: &str = "REMEX_RUN_ID";

/// Default cap on each of stdout and stderr: 16 MiB.
pub const DEFAULT_MAX_OUTPUT: usize = 16 * 1024 * 1024;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Words quoted for the remote shell, so each arrives as one argument.
    Argv(Vec<String>),
    /// One shell string passed as is (`--raw`).
    Raw(String),
    /// A local script, copied to the host, run with these arguments, and
    /// removed (see [`crate::ops::exec::script`]).
    Script {
        /// The script.
        script: Script,
        /// Its arguments, each arriving as one argv entry.
        args: Vec<String>,
    },
}

/// Cancels a run (Ctrl-C): remote commands are stopped like a timeout, and
/// hosts not yet started are skipped.
#[derive(Clone, Debug)]
pub struct Cancel(tokio::sync::watch::Receiver<bool>);

/// The sending side of a [`Cancel`].
#[derive(Debug)]
pub struct CancelHandle(tokio::sync::watch::Sender<bool>);

impl Cancel {
    /// A new cancel signal and its handle.
    pub fn new() -> (CancelHandle, Cancel) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (CancelHandle(tx), Cancel(rx))
    }

    /// Whether the run was cancelled.
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves when the run is cancelled (never, if the handle is dropped
    /// without cancelling).
    pub async fn cancelled(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|cancelled| *cancelled).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl CancelHandle {
    /// Cancels the run.
    pub fn cancel(&self) {
        let _ = self.0.send(true);
    }
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Watches a run as it happens (for `--stream` and progressive output).
pub trait Observer: Send + Sync {
    /// A whole line (without its `\n`) arrived from `host`; a last line without
    /// a newline is delivered when the stream ends.
    fn line(&self, _host: &str, _stream: Stream, _line: &[u8]) {}
    /// `host` is finished.
    fn done(&self, _outcome: &crate::run::report::HostOutcome) {}
}

/// A command and how to run it, built like `std::process::Command`.
///
/// ```
/// use remex::ops::exec::Exec;
/// use std::time::Duration;
/// let exec = Exec::argv(["systemctl", "restart", "nginx"])
///     .env("LC_ALL", "C")
///     .timeout(Duration::from_secs(30));
/// ```
#[derive(Clone)]
pub struct Exec {
    /// The command.
    pub command: Command,
    /// Extra environment, set by `env` on the remote side (not `SendEnv`:
    /// sshd's `AcceptEnv` cannot refuse it).
    pub env: Vec<(String, String)>,
    /// Environment like `env` whose values are secrets (`--secret-env`):
    /// set the same way, and replaced by `[REDACTED]` in audit records,
    /// output and error messages.
    pub secret_env: Vec<(String, String)>,
    /// Working directory; the command fails with status 126 if `cd` fails.
    pub cwd: Option<String>,
    /// Bytes fed to the command's stdin, the same for every host; `None`
    /// closes stdin at once.
    pub stdin: Option<Arc<Vec<u8>>>,
    /// Ask for a pseudo-terminal (`ssh -t`). stdout and stderr are merged.
    pub pty: bool,
    /// Per-command timeout; `None` uses the config's `command_timeout`.
    pub timeout: Option<Duration>,
    /// Cap on each of stdout and stderr, in bytes ([`DEFAULT_MAX_OUTPUT`]).
    pub max_output: usize,
    /// Receives lines and completions as they happen.
    pub observer: Option<Arc<dyn Observer>>,
    /// Run as another user through sudo (`--sudo`, `--sudo-user`).
    pub sudo: Option<Sudo>,
    /// Stops the run early (Ctrl-C).
    pub cancel: Option<Cancel>,
}

impl std::fmt::Debug for Exec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exec")
            .field("command", &self.command)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field(
                "secret_env",
                &self.secret_env.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("cwd", &self.cwd)
            .field("pty", &self.pty)
            .field("timeout", &self.timeout)
            .field("sudo", &self.sudo)
            .finish_non_exhaustive()
    }
}

impl Exec {
    fn new(command: Command) -> Self {
        Exec {
            command,
            env: Vec::new(),
            secret_env: Vec::new(),
            cwd: None,
            stdin: None,
            pty: false,
            timeout: None,
            max_output: DEFAULT_MAX_OUTPUT,
            observer: None,
            sudo: None,
            cancel: None,
        }
    }

    /// Runs a local script with `args` (see [`crate::ops::exec::script`]).
    pub fn script<I, S>(script: Script, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Exec::new(Command::Script {
            script,
            args: args.into_iter().map(Into::into).collect(),
        })
    }

    /// Runs as another user through sudo.
    pub fn sudo(mut self, sudo: Sudo) -> Self {
        self.sudo = Some(sudo);
        self
    }

    /// Runs `argv`: each word arrives as one argument, never re-split or
    /// expanded.
    pub fn argv<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Exec::new(Command::Argv(argv.into_iter().map(Into::into).collect()))
    }

    /// Runs one shell string as is: the caller is responsible for quoting.
    pub fn raw(script: impl Into<String>) -> Self {
        Exec::new(Command::Raw(script.into()))
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Adds an environment variable whose value is a secret: it is set like
    /// [`Exec::env`] and redacted from audit records and output.
    pub fn secret_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.secret_env.push((key.into(), value.into()));
        self
    }

    /// The literal secrets of this request, for redaction: `secret_env`
    /// values and the sudo password.
    pub fn secrets(&self) -> Vec<String> {
        let env = self.secret_env.iter().map(|(_, value)| value.clone());
        let sudo = self
            .sudo
            .as_ref()
            .and_then(|sudo| sudo.password.as_deref().cloned());
        env.chain(sudo).collect()
    }

    /// Sets the working directory.
    pub fn cwd(mut self, dir: impl Into<String>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Feeds `bytes` to stdin.
    pub fn stdin(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = Some(Arc::new(bytes));
        self
    }

    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Requests a pseudo-terminal.
    pub fn pty(mut self, pty: bool) -> Self {
        self.pty = pty;
        self
    }

    /// Sets the output cap.
    pub fn max_output(mut self, bytes: usize) -> Self {
        self.max_output = bytes;
        self
    }

    /// Sets the observer.
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Checks what can be checked before contacting any host.
    pub fn validate(&self) -> Result<(), String> {
        if let Command::Argv(argv) = &self.command
            && argv.is_empty()
        {
            return Err("no command given".into());
        }
        if let Command::Raw(raw) = &self.command
            && raw.trim().is_empty()
        {
            return Err("the raw command is empty".into());
        }
        for (key, _) in self.env.iter().chain(&self.secret_env) {
            let mut chars = key.chars();
            let valid = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!(
                    "invalid environment variable name `{key}`: use letters, digits and `_`, not starting with a digit"
                ));
            }
        }
        Ok(())
    }

    /// The string sent in the SSH exec request (see the module docs), for a
    /// login shell; under sudo it is wrapped by [`Sudo::wrap`].
    pub fn remote_command(&self, tag: &str) -> String {
        self.remote_command_with(&self.command, tag, "\"${SHELL:-/bin/sh}\"")
    }

    /// [`Exec::remote_command`] for `command`, running raw strings in `shell`.
    fn remote_command_with(&self, command: &Command, tag: &str, shell: &str) -> String {
        // `TAG=… 'K=v'…`: each assignment one quoted word.
        let mut assignments = format!("{TAG_VAR}={tag}");
        for (key, value) in self.env.iter().chain(&self.secret_env) {
            assignments.push(' ');
            assignments.push_str(&quote::quote(&format!("{key}={value}")));
        }
        let cd = self
            .cwd
            .as_ref()
            .map(|dir| format!("cd -- {} || exit 126\n", quote::quote(dir)))
            .unwrap_or_default();
        match command {
            // One simple command: the login shell exports, then runs it. The
            // shell itself is left untagged, but it has nothing to do after
            // the command, so killing the command ends it; and a command
            // costs one shell start, not two.
            Command::Argv(argv) => format!("export {assignments}\n{cd}{}", quote::join(argv)),
            // A script may go on after any one of its commands is killed, so
            // the shell running it is started with the tag too.
            Command::Raw(raw) => format!(
                "exec env {assignments} {shell} -c {}",
                quote::quote(&format!("{cd}{raw}"))
            ),
            // A script is staged first and then run as an argv; this is
            // what runs it once staged (`<dir>` is the staging directory).
            Command::Script { script, args } => format!(
                "export {assignments}\n{cd}{}",
                quote::join(&script::run_argv(script, "<dir>", args))
            ),
        }
    }
}

/// What one command did on one host.
#[derive(Debug, Default)]
pub struct Ran {
    /// Exit status, if it exited.
    pub exit_code: Option<u32>,
    /// Signal name, if a signal ended it.
    pub signal: Option<String>,
    /// Standard output, capped.
    pub stdout: Captured,
    /// Standard error, capped.
    pub stderr: Captured,
    /// Why it did not succeed.
    pub error: Option<Failure>,
}

impl Ran {
    /// A run that failed before the command started.
    pub fn failed(failure: Failure) -> Ran {
        Ran {
            error: Some(failure),
            ..Ran::default()
        }
    }
}

/// Splits a byte stream into lines for an [`Observer`].
#[derive(Default)]
struct Lines {
    pending: Vec<u8>,
}

impl Lines {
    fn push(&mut self, data: &[u8], mut emit: impl FnMut(&[u8])) {
        self.pending.extend_from_slice(data);
        let mut start = 0;
        while let Some(offset) = self.pending[start..].iter().position(|&b| b == b'\n') {
            emit(&self.pending[start..start + offset]);
            start += offset + 1;
        }
        self.pending.drain(..start);
    }

    fn finish(&mut self, mut emit: impl FnMut(&[u8])) {
        if !self.pending.is_empty() {
            emit(&self.pending);
            self.pending.clear();
        }
    }
}

/// A fresh random tag for [`TAG_VAR`].
fn new_tag() -> String {
    let bytes: [u8; 12] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Sudo as decided for one host: who, and how to invoke it.
type SudoPlan<'a> = Option<(&'a Sudo, SudoMode)>;

/// Runs `exec` on `conn`. `timeout` is the effective timeout (the request's
/// or the config's). Never returns `Err`: every failure is in the outcome.
pub async fn run(conn: &Connection, exec: &Exec, host: &str, timeout: Duration) -> Ran {
    let sudo = match &exec.sudo {
        Some(sudo) => match sudo.prepare(conn).await {
            Ok(mode) => Some((sudo, mode)),
            Err(failure) => return Ran::failed(failure),
        },
        None => None,
    };
    match &exec.command {
        Command::Script { script, args } => {
            run_script(conn, exec, script, args, sudo, host, timeout).await
        }
        command => run_command(conn, exec, command, sudo, host, timeout).await,
    }
}

/// `command` as the (sudo) target user runs it, and what its stdin must
/// start with (the sudo password, when one is needed).
fn as_target(sudo: SudoPlan<'_>, command: String) -> (String, Vec<u8>) {
    match sudo {
        Some((sudo, mode)) => (sudo.wrap(mode, &command), sudo.stdin_prefix(mode)),
        None => (command, Vec::new()),
    }
}

/// Stages `script`, runs it, and removes it again whatever happened.
async fn run_script(
    conn: &Connection,
    exec: &Exec,
    script: &Script,
    args: &[String],
    sudo: SudoPlan<'_>,
    host: &str,
    timeout: Duration,
) -> Ran {
    let (stage, mut stdin) = as_target(sudo, script::stage_command());
    stdin.extend_from_slice(&script.content);
    let dir = match conn.run_helper(&stage, Some(&stdin)).await {
        Ok((Some(0), out)) => String::from_utf8_lossy(&out)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned(),
        Ok((status, out)) => {
            return Ran::failed(Failure::new(
                ErrorKind::Transfer,
                format!(
                    "could not copy {} to a temporary directory on {host} (status {status:?}): {}",
                    script.name,
                    String::from_utf8_lossy(&out).trim()
                ),
            ));
        }
        Err(failure) => return Ran::failed(failure),
    };
    if !dir.contains("/remex-script.") {
        return Ran::failed(Failure::new(
            ErrorKind::Transfer,
            format!(
                "staging {} on {host} printed no directory: {dir:?}",
                script.name
            ),
        ));
    }
    let command = Command::Argv(script::run_argv(script, &dir, args));
    let mut ran = run_command(conn, exec, &command, sudo, host, timeout).await;
    let (cleanup, stdin) = as_target(sudo, script::cleanup_command(&dir));
    let cleaned = tokio::time::timeout(
        Duration::from_secs(30),
        conn.run_helper(&cleanup, Some(&stdin)),
    )
    .await;
    if !matches!(cleaned, Ok(Ok((Some(0), _)))) {
        tracing::warn!(%host, %dir, "could not remove the script directory; the next run removes it after a day");
        if ran.error.is_none() {
            ran.error = Some(Failure::new(
                ErrorKind::Transfer,
                format!("the script ran, but its directory {dir} could not be removed from {host}"),
            ));
        }
    }
    ran
}

/// Runs one argv or raw command on its own channel.
async fn run_command(
    conn: &Connection,
    exec: &Exec,
    command: &Command,
    sudo: SudoPlan<'_>,
    host: &str,
    timeout: Duration,
) -> Ran {
    let session = match conn.session().await {
        Ok(session) => session,
        Err(failure) => return Ran::failed(failure),
    };
    let tag = new_tag();
    // `_slot` keeps the connection's session slot until this command is done.
    let crate::transport::connection::Session {
        channel,
        slot: _slot,
    } = session;
    let io = |what: &str, e: russh::Error| Failure::new(ErrorKind::Io, format!("{what}: {e}"));
    if exec.pty
        && let Err(e) = channel.request_pty(false, "xterm", 80, 24, 0, 0, &[]).await
    {
        return Ran::failed(io("requesting a pty", e));
    }
    // sudo resets SHELL to the target user's login shell (nologin for
    // service users), so raw strings run in /bin/sh there.
    let shell = if sudo.is_some() {
        "/bin/sh"
    } else {
        "\"${SHELL:-/bin/sh}\""
    };
    let (remote, stdin_prefix) = as_target(sudo, exec.remote_command_with(command, &tag, shell));
    if let Err(e) = channel.exec(true, remote).await {
        return Ran::failed(io("sending the command", e));
    }
    let (mut reader, writer) = channel.split();
    let writer = Arc::new(writer);
    // Input waits for the server to confirm the exec (see
    // `Session::exec_confirmed`); a bare EOF needs no wait.
    let (confirm, confirmed) = tokio::sync::oneshot::channel::<()>();
    let mut confirm = Some(confirm);
    let feeder = {
        let writer = writer.clone();
        let stdin = exec.stdin.clone();
        tokio::spawn(async move {
            if (!stdin_prefix.is_empty() || stdin.is_some()) && confirmed.await.is_err() {
                return Ok(());
            }
            if !stdin_prefix.is_empty() {
                writer.data(&stdin_prefix[..]).await?;
            }
            if let Some(bytes) = stdin {
                writer.data(&bytes[..]).await?;
            }
            writer.eof().await
        })
    };

    let mut ran = Ran::default();
    let deadline = Instant::now() + timeout;
    let mut lines = [Lines::default(), Lines::default()];
    let emit = |stream: Stream, line: &[u8]| {
        if let Some(observer) = &exec.observer {
            observer.line(host, stream, line);
        }
    };
    let mut stopped: Option<Failure> = None;
    let mut closed = false;
    let cancelled = async {
        match &exec.cancel {
            Some(cancel) => cancel.cancelled().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(cancelled);
    loop {
        let msg = tokio::select! {
            msg = reader.wait() => msg,
            () = tokio::time::sleep_until(deadline) => {
                stopped = Some(Failure::new(
                    ErrorKind::Timeout,
                    format!(
                        "command did not finish within {}; remex stopped it and its child processes",
                        humane(timeout)
                    ),
                ));
                break;
            }
            () = &mut cancelled => {
                stopped = Some(Failure::new(
                    ErrorKind::Cancelled,
                    "interrupted; remex stopped the command and its child processes",
                ));
                break;
            }
        };
        match msg {
            Some(ChannelMsg::Data { data }) => {
                ran.stdout.push(&data, exec.max_output);
                if exec.observer.is_some() {
                    lines[0].push(&data, |l| emit(Stream::Stdout, l));
                }
            }
            Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                ran.stderr.push(&data, exec.max_output);
                if exec.observer.is_some() {
                    lines[1].push(&data, |l| emit(Stream::Stderr, l));
                }
            }
            Some(ChannelMsg::ExitStatus { exit_status }) => ran.exit_code = Some(exit_status),
            Some(ChannelMsg::Success) => {
                if let Some(confirm) = confirm.take() {
                    let _ = confirm.send(());
                }
            }
            Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                ran.signal = Some(signal_text(&signal_name));
            }
            Some(ChannelMsg::Failure) => {
                ran.error = Some(Failure::new(
                    ErrorKind::Protocol,
                    format!("{host} refused the exec request"),
                ));
                // Nothing will run, and the server need not close the
                // channel: waiting on would last until the timeout.
                break;
            }
            Some(ChannelMsg::Close) => {
                closed = true;
                break;
            }
            Some(_) => {}
            None => break,
        }
    }
    lines[0].finish(|l| emit(Stream::Stdout, l));
    lines[1].finish(|l| emit(Stream::Stderr, l));
    feeder.abort();

    if let Some(failure) = stopped {
        stop_remote(conn, &writer, &tag, sudo).await;
        ran.error = Some(failure);
        return ran;
    }
    if !closed {
        let _ = writer.close().await;
    }
    if ran.error.is_none() {
        ran.error = match (ran.exit_code, &ran.signal) {
            (Some(0), _) => None,
            (Some(code), _) => Some(Failure::new(
                ErrorKind::Exit,
                format!("command exited with status {code}"),
            )),
            (None, Some(signal)) => Some(Failure::new(
                ErrorKind::Signal,
                format!("command was killed by signal {signal}"),
            )),
            (None, None) if closed => Some(Failure::new(
                ErrorKind::Protocol,
                "the session closed without an exit status",
            )),
            (None, None) => Some(Failure::new(
                ErrorKind::Io,
                "the connection was lost while the command ran",
            )),
        };
    }
    ran
}

/// Stops a timed-out command and everything it started (see module docs).
async fn stop_remote(
    conn: &Connection,
    writer: &russh::ChannelWriteHalf<russh::client::Msg>,
    tag: &str,
    sudo: SudoPlan<'_>,
) {
    let reaper = format!(
        "sig=TERM; for round in 1 2 3 4; do \
           pids=$(grep -lzxF {TAG_VAR}={tag} /proc/[0-9]*/environ 2>/dev/null | sed 's,^/proc/\\([0-9]*\\)/environ$,\\1,'); \
           [ -n \"$pids\" ] || exit 0; kill -$sig $pids 2>/dev/null; sleep 0.3; sig=KILL; \
         done"
    );
    // The reaper runs before anything else touches the timed-out session:
    // Dropbear (2022.83) closes a just-opened channel when a signalled
    // session ends at the same moment, which would drop the reaper unrun.
    // Under sudo the processes belong to the target user: reap as that user.
    let (reaper, stdin) = as_target(sudo, reaper);
    let host = &conn.endpoint().name;
    match tokio::time::timeout(
        Duration::from_secs(10),
        conn.run_helper(&reaper, Some(&stdin)),
    )
    .await
    {
        Ok(Ok((Some(0), _))) => {}
        Ok(Ok((status, _))) => {
            tracing::warn!(%host, ?status, "the process reaper did not finish cleanly after a timeout");
        }
        Ok(Err(failure)) => tracing::warn!(
            %host,
            "could not run the process reaper after a timeout: {}",
            failure.message
        ),
        Err(_) => tracing::warn!(%host, "the process reaper timed out"),
    }
    // Belt and braces for what the reaper cannot see (no /proc): sshd ≥ 8.1
    // and Dropbear signal the session's process (group).
    let _ = writer.signal(Sig::KILL).await;
    let _ = writer.close().await;
}

fn signal_text(sig: &Sig) -> String {
    match sig {
        Sig::Custom(name) => name.clone(),
        other => format!("{other:?}"),
    }
}

/// `1.5s`, `2m`, … for messages.
pub fn humane(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) && ms >= 60_000 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_command_quotes_everything_once() {
        let exec = Exec::argv(["printf", "%s\\n", "a b", "$(id)"])
            .env("GREETING", "hello world")
            .cwd("/tmp/my dir");
        assert_eq!(
            exec.remote_command("abc"),
            "export REMEX_RUN_ID=abc 'GREETING=hello world'\n\
             cd -- '/tmp/my dir' || exit 126\n\
             printf '%s\\n' 'a b' '$(id)'"
        );
        let exec = Exec::raw("echo $HOME | wc -c").env("A", "1").cwd("/tmp");
        assert_eq!(
            exec.remote_command("abc"),
            "exec env REMEX_RUN_ID=abc 'A=1' \"${SHELL:-/bin/sh}\" -c 'cd -- /tmp || exit 126\n\
             echo $HOME | wc -c'"
        );
    }

    #[test]
    fn remote_command_runs_in_a_real_shell() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let exec = Exec::argv([
            "sh",
            "-c",
            "printf '%s|%s|%s' \"$GREETING\" \"$1\" \"$(pwd)\"",
            "x",
            "$HOME;`id`",
        ])
        .env("GREETING", "it's 'quoted'")
        .cwd(dir.path().to_string_lossy());
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(exec.remote_command("t1"))
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text,
            format!("it's 'quoted'|$HOME;`id`|{}", dir.path().display())
        );
    }

    #[test]
    fn a_failing_cwd_stops_the_command() {
        let exec = Exec::argv(["echo", "ran"]).cwd("/nonexistent/remex");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(exec.remote_command("t2"))
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.status.code(), Some(126));
        assert!(out.stdout.is_empty());
    }

    #[test]
    fn validation() {
        assert!(Exec::argv(Vec::<String>::new()).validate().is_err());
        assert!(Exec::raw("  ").validate().is_err());
        assert!(Exec::argv(["true"]).env("1BAD", "x").validate().is_err());
        assert!(Exec::argv(["true"]).env("A-B", "x").validate().is_err());
        assert!(Exec::argv(["true"]).env("_OK1", "x").validate().is_ok());
    }

    #[test]
    fn lines_split_across_chunks() {
        let mut lines = Lines::default();
        let mut got: Vec<Vec<u8>> = Vec::new();
        lines.push(b"ab", |l| got.push(l.to_vec()));
        lines.push(b"c\nde\n\nf", |l| got.push(l.to_vec()));
        lines.finish(|l| got.push(l.to_vec()));
        assert_eq!(
            got,
            vec![b"abc".to_vec(), b"de".to_vec(), b"".to_vec(), b"f".to_vec()]
        );
    }

    #[test]
    fn humane_durations() {
        assert_eq!(humane(Duration::from_secs(2)), "2s");
        assert_eq!(humane(Duration::from_secs(300)), "5m");
        assert_eq!(humane(Duration::from_millis(1500)), "1.5s");
    }
}
