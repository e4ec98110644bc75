//! `remex exec` and `remex script`: a command (or a local script) on every
//! selected host — the remote command line, stdin, output capture, and a
//! timeout that really stops the remote process tree.
//!
//! # The remote command line
//!
//! sshd runs an exec request as `$SHELL -c STRING`. For an argv remex sends
//!
//! ```text
//! export REMEX_RUN_ID=<tag> 'K=V'…
//! cd -- DIR || exit 126
//! 'WORD' 'WORD'…
//! STATUS
//! ```
//!
//! and for a raw string (`--raw`)
//!
//! ```text
//! env REMEX_RUN_ID=<tag> 'K=V'… "${SHELL:-/bin/sh}" -c 'cd -- DIR || exit 126; RAW'
//! STATUS
//! ```
//!
//! where `STATUS` passes the command's exit status on, re-raising a signal
//! that killed it (`command.rs`): with a line after the command, the login
//! shell (bash would `exec` a last command) stays as long as the command
//! runs, with the tag on its command line — the reaper's anchor.
//!
//! so that `--env` reaches the command even when sshd's `AcceptEnv` refuses
//! it, a failing `--cwd` stops the command with status 126, and every process
//! of the command carries the run's tag in its initial environment (a
//! script's own shell included), and the command costs one shell start. The argv is quoted in [`crate::quote`]; a raw string reaches the
//! shell as is. What may go on the line — no NUL byte anywhere, at most
//! [`MAX_COMMAND_LINE`] bytes once quoted, no `REMEX_*` name in `env` — is
//! checked before any host is contacted (`limits.rs`): sshd drops the whole
//! connection, every other command on it included, for a line it cannot
//! parse.
//!
//! # Timeouts, cancels and lost connections
//!
//! When the timeout fires (or the run is cancelled), remex runs a small
//! reaper on a second channel of the same connection (`reaper.rs`): it finds
//! the command's processes by their tag, their session and their parentage
//! on `/proc`, sends them `TERM`, and `KILL`s what is left after 300 ms.
//! Then it sends the session a `KILL` signal request (sshd ≥ 8.1 and
//! Dropbear pass it on) for anything the reaper could not see, and closes
//! the channel. When the connection itself is lost while a command runs,
//! the host's failure says so (with the reason the transport saw) and remex
//! runs the reaper through a new connection. The tag is derived from the
//! run id and the host, so a service restarted after a crash stops its
//! interrupted jobs' processes the same way ([`Executor::stop_run`]). What
//! still escapes is said in `reaper.rs`.

//! # Layout
//!
//! - `request.rs` — [`RunRequest`], the one JSON request of a run (the
//!   service's `POST /v1/runs`, `exec --request`), and what an edge allows.
//! - `command.rs` — [`Exec`]: the command, how to run it, and its remote
//!   command line; `timeout.rs` — [`Timeout`].
//! - `limits.rs` — what sshd accepts of a command line.
//! - `run.rs` — one request on one open connection; `lines.rs` — its output
//!   cut into lines (long ones into pieces).
//! - `reaper.rs` — the tag, and stopping a run's remote processes.
//! - `result.rs` — [`ExecResult`] per host, [`ExecDetails`] per run.
//! - `script.rs` — staging a local script; `sudo.rs` — `--sudo`.
//! - `guard.rs` — [`ActionRun`]: what a named action adds to its run
//!   (name, params, secrets) and the check of its paths on the host.

mod command;
mod guard;
mod limits;
mod lines;
mod reaper;
mod request;
mod result;
mod run;
pub(crate) mod script;
pub(crate) mod sudo;
mod timeout;

#[cfg(test)]
mod properties;

pub use command::{Command, DEFAULT_MAX_OUTPUT, Exec};
pub use guard::{ActionRun, PATH_CHECK_STATUS, PathCheck};
pub(crate) use limits::env_name;
pub use limits::{MAX_COMMAND_LINE, RESERVED_ENV_PREFIX};
pub use lines::MAX_LINE;
pub use reaper::{StopReport, Stopped, TAG_VAR, run_tag};
pub use request::{ByteSize, RequestPolicy, RunRequest, ScriptRequest, SudoRequest};
pub use result::{ActionInfo, Captured, ExecDetails, ExecOutcome, ExecResult, ScriptInfo};
pub use script::{MARKER as SCRIPT_MARKER, Script};
pub use sudo::Sudo;
pub use timeout::Timeout;

use std::sync::Arc;
use std::time::Duration;

use crate::audit::{Op, Record};
use crate::failure::Failure;
use crate::run::report::{HostReport, RunReport};
use crate::run::runner::{HostRun, Operation, RunState};
use crate::run::{Error, Executor, RunContext};
use crate::targets::Targets;
use crate::transport::login::Login;

/// The report of `exec` and `script`.
pub type ExecReport = RunReport<ExecResult, ExecDetails>;

impl Executor {
    /// Runs `exec` on every host `targets` selects (the old module's
    /// `execute_remote_command`); one result per host.
    ///
    /// # Errors
    ///
    /// Before any host is contacted: an invalid request, a selector that
    /// selects nothing, or an audit log that cannot record the run.
    pub async fn exec(
        &self,
        ctx: &RunContext,
        targets: impl Into<Targets<'_>>,
        exec: &Exec,
    ) -> Result<ExecReport, Error> {
        exec.validate()?;
        let hosts = self.resolve(targets.into())?.hosts().to_vec();
        let timeout = exec
            .timeout
            .resolve(self.config().remote_execution.command_timeout);
        let op = ExecOp {
            exec: Arc::new(exec.clone()),
            timeout,
        };
        self.run(ctx, hosts, op).await
    }

    /// Runs the local script at `path` with `args` on every selected host
    /// (the old module's `execute_remote_script`), with the settings of
    /// `options` (env, cwd, stdin, timeout, sudo, …; its command is replaced).
    ///
    /// # Errors
    ///
    /// As [`Executor::exec`], and a script that cannot be read.
    pub async fn script(
        &self,
        ctx: &RunContext,
        targets: impl Into<Targets<'_>>,
        path: &std::path::Path,
        args: &[String],
        options: &Exec,
    ) -> Result<ExecReport, Error> {
        let script = Script::load(path).map_err(|e| {
            Error::Invalid(format!("cannot read the script {}: {e}", path.display()))
        })?;
        let mut exec = options.clone();
        exec.command = Command::Script {
            script,
            args: args.to_vec(),
        };
        self.exec(ctx, targets, &exec).await
    }
}

/// After a lost connection: runs the reaper for `tag` through a new
/// connection to the host; what it did, for the host's failure message.
async fn stop_through_new_connection(
    host: &mut HostRun<'_>,
    tag: &str,
    sudo: Option<(&Sudo, sudo::SudoMode)>,
) -> String {
    let login = Login {
        key: Some(host.endpoint.key_path.clone()),
        agent: true,
        password: None,
    };
    let conn = match host.open_with(&login).await {
        Ok(conn) => conn,
        Err(failure) => {
            return format!(
                "; remex could not connect again to stop its processes, which may still run: {}",
                failure.message
            );
        }
    };
    let stopped = reaper::reap(&conn, tag, sudo).await;
    conn.shutdown().await;
    match stopped {
        Ok(0) => "; no process of it was left (checked through a new connection)".to_owned(),
        Ok(n) => format!("; remex stopped its {n} remaining processes through a new connection"),
        Err(failure) => format!(
            "; remex connected again but could not stop its processes, which may still run: {}",
            failure.message
        ),
    }
}

/// `exec` and `script` as an operation of the runner.
struct ExecOp {
    exec: Arc<Exec>,
    /// The timeout in effect; `None`: never.
    timeout: Option<Duration>,
}

impl Operation for ExecOp {
    type Detail = ExecResult;
    type Details = ExecDetails;

    fn op(&self) -> Op {
        match &self.exec.command {
            _ if self.exec.action.is_some() => Op::Action,
            Command::Script { .. } => Op::Script,
            _ => Op::Exec,
        }
    }

    fn secrets(&self) -> Vec<String> {
        self.exec.secrets()
    }

    /// The command (argv or raw string; a script's name, SHA-256 and
    /// arguments), the sudo target, and the size of stdin.
    fn describe(&self, mut record: Record) -> Record {
        let exec = &self.exec;
        record = match &exec.command {
            Command::Argv(argv) => record.argv(argv.iter().cloned()),
            Command::Raw(raw) => record.command(raw.clone()),
            Command::Script { script, args } => record
                .argv(std::iter::once(script.name.clone()).chain(args.iter().cloned()))
                .script_sha256(script.sha256.clone())
                .paths([script.name.clone()]),
        };
        if let Some(sudo) = &exec.sudo {
            record = record.sudo(sudo.target());
        }
        if let Some(stdin) = &exec.stdin {
            record = record.bytes(stdin.len() as u64);
        }
        if let Some(action) = &exec.action {
            record = record
                .action(action.name.clone())
                .params(action.params.clone());
        }
        record
    }

    async fn host(&self, host: &mut HostRun<'_>, detail: &mut ExecResult) -> Result<(), Failure> {
        let conn = host.connection().await?;
        detail.host_key = Some(conn.host_key_fingerprint().to_owned());
        let tag = run_tag(host.run.run_id(), host.name);
        let watch = run::Watch {
            host: host.name,
            tag: &tag,
            timeout: self.timeout,
            cancel: host.cancel(),
            observer: host.observer(),
        };
        let ran = run::run(&conn, &self.exec, watch).await;
        drop(conn);
        detail.exit_code = ran.exit_code;
        detail.signal = ran.signal;
        detail.stdout = ran.stdout;
        detail.stderr = ran.stderr;
        let mut error = ran.error;
        if let Some(refused) = self
            .exec
            .action
            .as_ref()
            .and_then(|action| action.refusal(detail.exit_code, &detail.stderr.bytes))
        {
            error = Some(refused);
        }
        if ran.unreaped
            && let Some(failure) = &mut error
        {
            let sudo = self.exec.sudo.as_ref().zip(ran.sudo);
            let stopped = stop_through_new_connection(host, &tag, sudo).await;
            failure.message.push_str(&stopped);
        }
        error.map_or(Ok(()), Err)
    }

    async fn finish(&self, _run: &RunState, _results: &[HostReport<ExecResult>]) -> ExecDetails {
        let script = match &self.exec.command {
            Command::Script { script, .. } => Some(ScriptInfo {
                name: script.name.clone(),
                sha256: script.sha256.clone(),
                size: script.size(),
            }),
            _ => None,
        };
        let action = self.exec.action.as_ref().map(|action| ActionInfo {
            name: action.name.clone(),
            params: action.params.clone(),
        });
        ExecDetails { script, action }
    }
}
