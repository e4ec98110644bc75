//! `remex exec` and `remex script`.

use std::io::{IsTerminal as _, Read as _};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use remex::exec::{Command, RequestPolicy, RunRequest};
use remex::{Config, Detail, Exec, ExecReport, ExecResult, HostReport, Observer, Script, Stream};

use super::args::{ExecArgs, OutputFormat, RunArgs, ScriptArgs, ShowArgs};
use super::error_report::Usage;
use super::invocation::Invocation;
use super::render::Style;
use super::signals::Interrupts;
use super::{Global, Status, ndjson, print_json, render, run_status};

/// `remex exec TARGETS -- ARGV…`, `--raw STRING`, or `--request FILE|-`.
pub(super) async fn exec(global: &Global<'_>, args: ExecArgs) -> Result<Status> {
    if let Some(path) = &args.request {
        let (request, source) = read_request(path)?;
        let run = RunArgs {
            parallel: request.parallel.map(std::num::NonZeroU32::get),
            ..args.run
        };
        let exec = |config: &Config| {
            let policy = RequestPolicy::command_line(config.service.scripts_dir.clone());
            request
                .to_exec(&policy)
                .map_err(|e| Usage(format!("{source}: {}", e.with_field())).into())
        };
        return run_on_hosts(global, &request.targets, exec, &run).await;
    }
    let exec = match args.raw {
        Some(raw) => Exec::raw(raw),
        None => Exec::argv(args.argv),
    };
    let targets = args.targets.unwrap_or_default();
    run_on_hosts(global, &targets, |_| options(exec, &args.run), &args.run).await
}

/// `--request FILE|-`: the request, and how to name its source in errors.
/// The fields only the service acts on are refused, not ignored.
fn read_request(path: &Path) -> Result<(RunRequest, String)> {
    let (bytes, source) = if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| Usage(format!("--request -: reading stdin: {e}")))?;
        (bytes, "--request -".to_owned())
    } else {
        let bytes =
            std::fs::read(path).map_err(|e| Usage(format!("--request {}: {e}", path.display())))?;
        (bytes, format!("--request {}", path.display()))
    };
    let request = RunRequest::from_json(&bytes)
        .map_err(|e| Usage(format!("{source}: {}", e.with_field())))?;
    for (field, given) in [
        ("idempotency_key", request.idempotency_key.is_some()),
        ("callback_url", request.callback_url.is_some()),
    ] {
        if given {
            return Err(Usage(format!(
                "{source}: field `{field}`: only `remex serve` acts on it (the command line runs \
                 the request once and prints its report); leave it out here"
            ))
            .into());
        }
    }
    Ok((request, source))
}

/// `remex script TARGETS SCRIPT -- ARGS…`.
pub(super) async fn script(global: &Global<'_>, args: ScriptArgs) -> Result<Status> {
    let mut script = Script::load(&args.script)
        .with_context(|| format!("cannot read the script {}", args.script.display()))?;
    if let Some(interpreter) = args.interpreter {
        script = script.with_interpreter(interpreter);
    }
    let exec = Exec::script(script, args.args);
    run_on_hosts(
        global,
        &args.targets,
        |_| options(exec, &args.run),
        &args.run,
    )
    .await
}

/// `exec` with the command line's options: env, cwd, timeout, stdin, sudo, ….
fn options(mut exec: Exec, run: &RunArgs) -> Result<Exec> {
    exec.env = run.env.clone();
    exec.secret_env = run.secret_env.clone();
    exec.cwd = run.cwd.clone();
    exec.pty = run.pty;
    exec.timeout = run.timeout.unwrap_or_default();
    exec.max_output = run.max_output;
    if let Some(path) = &run.stdin {
        exec.stdin = Some(Arc::new(read_stdin_arg(path)?));
    }
    exec.sudo = run.sudo.sudo()?;
    Ok(exec)
}

/// The common part of `exec` and `script`: the config, then
/// [`run_with_config`].
async fn run_on_hosts(
    global: &Global<'_>,
    targets: &str,
    exec: impl FnOnce(&Config) -> Result<Exec>,
    run: &RunArgs,
) -> Result<Status> {
    let config = global.config()?;
    run_with_config(global, config, targets, exec, &run.show, run.parallel).await
}

/// The common part of `exec`, `script` and `action run`: the request (made
/// by `exec` once the targets are known: `--stdin -` is read only then),
/// signals, the run, output.
pub(super) async fn run_with_config(
    global: &Global<'_>,
    mut config: Config,
    targets: &str,
    exec: impl FnOnce(&Config) -> Result<Exec>,
    run: &ShowArgs,
    parallel: Option<u32>,
) -> Result<Status> {
    let json = global.json || run.output == Some(OutputFormat::Json);
    let ndjson = run.wants_ndjson();
    if let Some(parallel) = parallel {
        // One run per process: its limit is the process's budget.
        config.remote_execution.max_parallel = parallel as usize;
    }
    let executor = global.one_run_executor(config)?;
    let selection = executor.select(targets)?;
    let exec = exec(executor.config())?;
    // A signal stops the remote commands (and cleans up scripts) instead of
    // leaving them running; a second one exits at once.
    let interrupts = Interrupts::watch("stopping remote commands")?;
    let mut ctx = global.context(&interrupts);
    let invocation = global.invocation.clone();
    if ndjson {
        ctx = ctx.observer(Arc::new(ndjson::Printer::new(invocation)));
    } else if !json {
        let width = render::name_width(selection.hosts().iter().map(String::as_str));
        let style = if run.stream {
            Style::Stream
        } else if run.quiet {
            Style::Quiet
        } else if run.output == Some(OutputFormat::Oneline) {
            Style::Oneline
        } else {
            Style::Lines
        };
        let printer = render::Printer::new(width, style);
        ctx = ctx.observer(Arc::new(Suggesting {
            inner: printer,
            invocation,
        }));
    }
    let mut report = executor.exec(&ctx, &selection, &exec).await?;
    executor.close().await;
    global.invocation.rewrite_report(&mut report);
    if ndjson {
        print_json(&ndjson::End::of(&report))?;
    } else if json {
        print_json(&report)?;
    } else {
        if let Some(hint) = raw_hint(global.invocation, targets, &exec, &report) {
            eprintln!("{hint}");
        }
        eprintln!("{}", render::summary(&report));
    }
    Ok(run_status(
        report.audit_error.as_deref(),
        &interrupts,
        report.all_ok(),
    ))
}

/// The human printer, with the commands suggested in failure messages
/// carrying the user's `--config` (see [`Invocation`]).
struct Suggesting<O> {
    /// The printer.
    inner: O,
    /// How remex was invoked.
    invocation: Invocation,
}

impl<O: Observer> Observer for Suggesting<O> {
    fn started(&self, host: &str) {
        self.inner.started(host);
    }

    fn line(&self, host: &str, stream: Stream, line: &[u8]) {
        self.inner.line(host, stream, line);
    }

    fn wants_lines(&self, host: &str, stream: Stream) -> bool {
        self.inner.wants_lines(host, stream)
    }

    fn done(&self, outcome: &HostReport<dyn Detail>) {
        let rewritten = outcome.error.as_ref().and_then(|failure| {
            let message = self.invocation.rewrite(&failure.message);
            matches!(message, std::borrow::Cow::Owned(_)).then(|| message.into_owned())
        });
        let result = outcome.detail.as_any().downcast_ref::<ExecResult>();
        let (Some(message), Some(result), Some(failure)) = (rewritten, result, &outcome.error)
        else {
            return self.inner.done(outcome);
        };
        let mut failure = failure.clone();
        failure.message = message;
        let copy = HostReport {
            host: outcome.host.clone(),
            address: outcome.address.clone(),
            port: outcome.port,
            user: outcome.user.clone(),
            duration: outcome.duration,
            error: Some(failure),
            detail: result.clone(),
        };
        self.inner.done(&copy as &HostReport<dyn Detail>);
    }
}

/// The hint for a command word that holds shell syntax (`'ls -l | head'`
/// after `--`) when a host answered 127 (command not found): the words after
/// `--` reach no shell, so the host looked for a program of that name.
fn raw_hint(
    invocation: &Invocation,
    targets: &str,
    exec: &Exec,
    report: &ExecReport,
) -> Option<String> {
    let Command::Argv(argv) = &exec.command else {
        return None;
    };
    let first = argv.first()?;
    let shell_syntax = first
        .chars()
        .any(|c| c.is_whitespace() || "|&;<>()$`\\\"'*?[]{}~#=".contains(c));
    let not_found = report
        .results
        .iter()
        .any(|r| r.detail.exit_code == Some(127));
    if !(shell_syntax && not_found) {
        return None;
    }
    let raw = if argv.len() == 1 {
        first.clone()
    } else {
        argv.join(" ")
    };
    let suggestion = invocation.command(&format!(
        "exec {} --raw {}",
        remex::quote::quote(targets),
        remex::quote::quote(&raw)
    ));
    Some(format!(
        "hint: {} was run as one program name: the words after `--` reach no shell; \
         for a shell command line (pipes, `;`, `&&`, redirections, `$VAR`) use --raw: {suggestion}",
        remex::quote::quote(first)
    ))
}

fn read_stdin_arg(path: &std::path::Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        if std::io::stdin().is_terminal() {
            eprintln!("remex: reading the command's input from the terminal; end it with Ctrl-D");
        }
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading stdin for --stdin -")?;
    } else {
        bytes = std::fs::read(path)
            .with_context(|| format!("reading --stdin file {}", path.display()))?;
    }
    Ok(bytes)
}
