//! Running one exec request on one open connection: stdin, output capture,
//! the timeout and cancel that stop the remote process tree (see the module
//! docs of [`crate::ops::exec`]), and a script's staging and cleanup.

use std::sync::Arc;
use std::time::Duration;

use russh::{ChannelMsg, Sig};
use tokio::time::Instant;

use super::command::{Command, Exec, LOGIN_SHELL, as_sudo};
use super::limits;
use super::lines::Lines;
use super::reaper;
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
    /// The tag of the command's processes ([`reaper::run_tag`] of the run
    /// and the host).
    pub tag: &'a str,
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
    /// The connection was lost while the command may still run, and its
    /// processes were not stopped: stop them through a new connection.
    pub(crate) unreaped: bool,
    /// How sudo was invoked, when it was (for a reaper run later).
    pub(crate) sudo: Option<SudoMode>,
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
    let mut ran = match &exec.command {
        Command::Script { script, args } => run_script(conn, exec, script, args, sudo, watch).await,
        command => run_command(conn, exec, command, sudo, watch).await,
    };
    ran.sudo = sudo.map(|(_, mode)| mode);
    ran
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
    let (host, timeout, tag) = (watch.host, watch.timeout, watch.tag);
    // sudo resets SHELL to the target user's login shell (nologin for
    // service users), so raw strings run in /bin/sh there.
    let shell = if sudo.is_some() {
        "/bin/sh"
    } else {
        LOGIN_SHELL
    };
    let line = exec.remote_command_with(command, tag, shell);
    let (remote, stdin_prefix) = match sudo {
        Some((sudo, mode)) => (as_sudo(sudo, mode, &line), sudo.stdin_prefix(mode)),
        None => (line, Vec::new()),
    };
    // Never an exec request sshd would drop the shared connection for.
    if let Err(failure) = limits::sendable(&remote, host) {
        return Ran::failed(failure);
    }
    let session = match conn.session().await {
        Ok(session) => session,
        Err(failure) => return Ran::failed(failure),
    };
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
    let emit = |stream: Stream, line: &[u8], cut: bool| {
        if let Some(observer) = watch.observer {
            if cut {
                observer.line_cut(host, stream, line);
            } else {
                observer.line(host, stream, line);
            }
        }
    };
    let wanted = |stream: Stream| {
        watch
            .observer
            .is_some_and(|observer| observer.wants_lines(host, stream))
    };
    let observed: Option<Observed<'_>> = watch.observer.map(|_| Observed {
        emit: &emit,
        wanted: &wanted,
    });
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
                    format!("command did not finish within {}", humane(timeout.unwrap_or_default())),
                ));
                break;
            }
            () = &mut cancelled => {
                stopped = Some(Failure::new(ErrorKind::Cancelled, "interrupted"));
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
    let finish = |lines: &mut [Lines; 2]| {
        for (at, stream) in [(0, Stream::Stdout), (1, Stream::Stderr)] {
            if wanted(stream) {
                lines[at].finish(|l, cut| emit(stream, l, cut));
            }
        }
    };

    if let Some(mut failure) = stopped {
        let it = if failure.kind == ErrorKind::Cancelled {
            "the command"
        } else {
            "it"
        };
        match stop_remote(conn, &writer, tag, sudo).await {
            Ok(_) => failure
                .message
                .push_str(&format!("; remex stopped {it} and its child processes")),
            Err(_) if conn.is_closed() => {
                // The connection went away under the command: the caller
                // stops it through a new one.
                ran.unreaped = true;
                failure.message.push_str(&format!("; {}", lost(conn)));
            }
            Err(why) => failure.message.push_str(&format!(
                "; remex could not make sure {it} and its child processes stopped: {}",
                why.message
            )),
        }
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
        finish(&mut lines);
        ran.error = Some(failure);
        return ran;
    }
    finish(&mut lines);
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
            (None, None) => {
                // The command may still run on the host: the caller stops
                // it through a new connection.
                ran.unreaped = true;
                Some(Failure::new(ErrorKind::Io, lost(conn)))
            }
        };
    }
    ran
}

/// "the connection was lost while the command ran (WHY)".
fn lost(conn: &Connection) -> String {
    match conn.lost_reason() {
        Some(why) => format!("the connection was lost while the command ran ({why})"),
        None => "the connection was lost while the command ran".to_owned(),
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Hands a whole line of output (or, `true`, a piece of a long one) to the
/// observer.
type EmitLine<'a> = dyn Fn(Stream, &[u8], bool) + Sync + 'a;

/// The observer's side of the output: where lines go, and whether a
/// stream's lines are still wanted.
#[derive(Clone, Copy)]
struct Observed<'a> {
    /// Hands a line on.
    emit: &'a EmitLine<'a>,
    /// Whether the observer still wants a stream's lines.
    wanted: &'a (dyn Fn(Stream) -> bool + Sync + 'a),
}

/// How long output is still taken after remex stopped a command.
const STOPPED_OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// Keeps a message's output (stdout, stderr) in `ran`, and hands its whole
/// lines to the observer while it wants them; whether it was output.
fn keep_output(
    msg: &ChannelMsg,
    ran: &mut Ran,
    lines: &mut [Lines; 2],
    max_output: usize,
    observed: Option<Observed<'_>>,
) -> bool {
    let (buffer, at, stream, data) = match msg {
        ChannelMsg::Data { data } => (&mut ran.stdout, 0, Stream::Stdout, data),
        ChannelMsg::ExtendedData { data, ext: 1 } => (&mut ran.stderr, 1, Stream::Stderr, data),
        _ => return false,
    };
    buffer.push(data, max_output);
    if let Some(observed) = observed
        && (observed.wanted)(stream)
    {
        lines[at].push(data, |l, cut| (observed.emit)(stream, l, cut));
    }
    true
}

/// Stops a timed-out or cancelled command and everything it started (see
/// the `reaper` module): the reaper on a second channel of the same
/// connection, then a `KILL` signal request on the command's channel for
/// what the reaper cannot see (no `/proc`), and the channel closed.
async fn stop_remote(
    conn: &Connection,
    writer: &russh::ChannelWriteHalf<russh::client::Msg>,
    tag: &str,
    sudo: SudoPlan<'_>,
) -> Result<u32, Failure> {
    // The reaper runs before anything else touches the timed-out session:
    // Dropbear (2022.83) closes a just-opened channel when a signalled
    // session ends at the same moment, which would drop the reaper unrun.
    // Under sudo the processes belong to the target user: reap as that user.
    let reaped = reaper::reap(conn, tag, sudo).await;
    if let Err(failure) = &reaped {
        tracing::warn!(host = %conn.endpoint().name, "could not run the process reaper: {}", failure.message);
    }
    // Belt and braces for what the reaper cannot see (no /proc): sshd ≥ 8.1
    // and Dropbear signal the session's process (group).
    let _ = writer.signal(Sig::KILL).await;
    let _ = writer.close().await;
    reaped
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
    fn humane_durations() {
        assert_eq!(humane(Duration::from_secs(2)), "2s");
        assert_eq!(humane(Duration::from_secs(300)), "5m");
        assert_eq!(humane(Duration::from_millis(1500)), "1.5s");
    }
}
