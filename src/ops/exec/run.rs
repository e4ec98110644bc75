//! Running one exec request on one open connection: stdin, output capture,
//! the timeout and cancel that stop the remote process tree (see the module
//! docs of [`crate::ops::exec`]), and a script's staging and cleanup.

use std::sync::Arc;
use std::time::Duration;

use russh::{ChannelMsg, Sig};
use tokio::time::Instant;

use super::command::{Command, Exec, TAG_VAR};
use super::result::Captured;
use super::script::{self, Script};
use super::sudo::{Sudo, SudoMode};
use crate::failure::{ErrorKind, Failure};
use crate::run::cancel::{self, Cancel};
use crate::run::context::{Observer, Stream};
use crate::transport::connection::Connection;

/// Where a command runs, for how long, and who watches it: the host's
/// name, the timeout, the run's cancel signal and observer.
#[derive(Clone, Copy)]
pub(crate) struct Watch<'a> {
    /// The host's name (for messages and the observer).
    pub host: &'a str,
    /// Stops the command when it runs longer; `None`: never.
    pub timeout: Option<Duration>,
    /// Stops the command like a timeout.
    pub cancel: Option<&'a Cancel>,
    /// Gets the output lines as they arrive.
    pub observer: Option<&'a Arc<dyn Observer>>,
}

#[derive(Debug, Default)]
pub(crate) struct Ran {
    /// Exit status, if it exited.
    pub(crate) exit_code: Option<u32>,
    /// Signal name, if a signal ended it.
    pub(crate) signal: Option<String>,
    /// Standard output, capped.
    pub(crate) stdout: Captured,
    /// Standard error, capped.
    pub(crate) stderr: Captured,
    /// Why it did not succeed.
    pub(crate) error: Option<Failure>,
}

impl Ran {
    /// A run that failed before the command started.
    pub(crate) fn failed(failure: Failure) -> Ran {
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
    hex::encode(bytes)
}

/// Sudo as decided for one host: who, and how to invoke it.
type SudoPlan<'a> = Option<(&'a Sudo, SudoMode)>;

/// Runs `exec` on `conn`. `timeout` is the effective timeout (the request's
/// or the config's). Never returns `Err`: every failure is in the outcome.
pub(crate) async fn run(conn: &Connection, exec: &Exec, watch: Watch<'_>) -> Ran {
    let sudo = match &exec.sudo {
        Some(sudo) => match sudo.prepare(conn).await {
            Ok(mode) => Some((sudo, mode)),
            Err(failure) => return Ran::failed(failure),
        },
        None => None,
    };
    match &exec.command {
        Command::Script { script, args } => run_script(conn, exec, script, args, sudo, watch).await,
        command => run_command(conn, exec, command, sudo, watch).await,
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
    watch: Watch<'_>,
) -> Ran {
    let host = watch.host;
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
    let mut ran = run_command(conn, exec, &command, sudo, watch).await;
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
    watch: Watch<'_>,
) -> Ran {
    let (host, timeout) = (watch.host, watch.timeout);
    let session = match conn.session().await {
        Ok(session) => session,
        Err(failure) => return Ran::failed(failure),
    };
    let tag = new_tag();
    // `_slot` keeps the connection's session slot until this command is done.
    let crate::transport::session::Session {
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
    // A timeout beyond what the clock can say is none.
    let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
    let mut lines = [Lines::default(), Lines::default()];
    let emit = |stream: Stream, line: &[u8]| {
        if let Some(observer) = watch.observer {
            observer.line(host, stream, line);
        }
    };
    let observed: Option<&EmitLine<'_>> = watch.observer.map(|_| &emit as _);
    let mut stopped: Option<Failure> = None;
    let mut closed = false;
    let cancelled = cancel::cancelled(watch.cancel);
    tokio::pin!(cancelled);
    loop {
        let msg = tokio::select! {
            msg = reader.wait() => msg,
            () = until(deadline) => {
                stopped = Some(Failure::new(
                    ErrorKind::Timeout,
                    format!(
                        "command did not finish within {}; remex stopped it and its child processes",
                        humane(timeout.unwrap_or_default())
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
        if let Some(msg) = &msg
            && keep_output(msg, &mut ran, &mut lines, exec.max_output, observed)
        {
            continue;
        }
        match msg {
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
    feeder.abort();

    if let Some(failure) = stopped {
        stop_remote(conn, &writer, &tag, sudo).await;
        // What the command printed before it was stopped may still be on
        // its way (the reaper took a moment): keep it for the report, until
        // the server closes the channel or a moment has passed.
        let grace = Instant::now() + STOPPED_OUTPUT_GRACE;
        loop {
            let msg = tokio::select! {
                msg = reader.wait() => msg,
                () = tokio::time::sleep_until(grace) => break,
            };
            match msg {
                Some(ChannelMsg::Close) | None => break,
                Some(msg) => {
                    keep_output(&msg, &mut ran, &mut lines, exec.max_output, observed);
                }
            }
        }
        lines[0].finish(|l| emit(Stream::Stdout, l));
        lines[1].finish(|l| emit(Stream::Stderr, l));
        ran.error = Some(failure);
        return ran;
    }
    lines[0].finish(|l| emit(Stream::Stdout, l));
    lines[1].finish(|l| emit(Stream::Stderr, l));
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
/// Sleeps until `deadline`, or forever without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Hands a whole line of output to the observer.
type EmitLine<'a> = dyn Fn(Stream, &[u8]) + Sync + 'a;

/// How long output is still taken after remex stopped a command.
const STOPPED_OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// Keeps a message's output (stdout, stderr) in `ran`, and hands its whole
/// lines to `emit` when there is an observer; whether it was output.
fn keep_output(
    msg: &ChannelMsg,
    ran: &mut Ran,
    lines: &mut [Lines; 2],
    max_output: usize,
    emit: Option<&EmitLine<'_>>,
) -> bool {
    let (buffer, at, stream, data) = match msg {
        ChannelMsg::Data { data } => (&mut ran.stdout, 0, Stream::Stdout, data),
        ChannelMsg::ExtendedData { data, ext: 1 } => (&mut ran.stderr, 1, Stream::Stderr, data),
        _ => return false,
    };
    buffer.push(data, max_output);
    if let Some(emit) = emit {
        lines[at].push(data, |l| emit(stream, l));
    }
    true
}

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
pub(crate) fn humane(d: Duration) -> String {
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
