//! `remex exec` and `remex script`.

use std::io::{IsTerminal as _, Read as _};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use remex::{Exec, Script, Sudo};

use super::args::{ExecArgs, RunArgs, ScriptArgs};
use super::signals::Interrupts;
use super::{Global, Status, print_json, render, run_status};

/// `remex exec TARGETS -- ARGV…` or `--raw STRING`.
pub(super) async fn exec(global: &Global<'_>, args: ExecArgs) -> Result<Status> {
    let exec = match args.raw {
        Some(raw) => Exec::raw(raw),
        None => Exec::argv(args.argv),
    };
    run_on_hosts(global, &args.targets, exec, &args.run).await
}

/// `remex script TARGETS SCRIPT -- ARGS…`.
pub(super) async fn script(global: &Global<'_>, args: ScriptArgs) -> Result<Status> {
    let mut script = Script::load(&args.script)
        .with_context(|| format!("cannot read the script {}", args.script.display()))?;
    if let Some(interpreter) = args.interpreter {
        script = script.with_interpreter(interpreter);
    }
    let exec = Exec::script(script, args.args);
    run_on_hosts(global, &args.targets, exec, &args.run).await
}

/// The common part of `exec` and `script`: options, signals, output.
async fn run_on_hosts(
    global: &Global<'_>,
    targets: &str,
    mut exec: Exec,
    run: &RunArgs,
) -> Result<Status> {
    let json = global.json;
    let mut config = global.config()?;
    if let Some(parallel) = run.parallel {
        // One run per process: its limit is the process's budget.
        config.remote_execution.max_parallel = parallel as usize;
    }
    let executor = global.executor(config)?;
    let hosts = executor.select(targets)?;
    exec.env = run.env.clone();
    exec.secret_env = run.secret_env.clone();
    exec.cwd = run.cwd.clone();
    exec.pty = run.pty;
    exec.timeout = run.timeout;
    exec.max_output = run.max_output;
    if let Some(path) = &run.stdin {
        exec.stdin = Some(Arc::new(read_stdin_arg(path)?));
    }
    if run.sudo || run.sudo_user.is_some() || run.sudo_password_env.is_some() {
        let password = match &run.sudo_password_env {
            Some(var) => Some(Arc::new(std::env::var(var).with_context(|| {
                format!("--sudo-password-env {var}: the environment variable {var} is not set")
            })?)),
            None => None,
        };
        exec.sudo = Some(Sudo {
            user: run.sudo_user.clone(),
            password,
        });
    }
    // A signal stops the remote commands (and cleans up scripts) instead of
    // leaving them running; a second one exits at once.
    let interrupts = Interrupts::watch("stopping remote commands")?;
    let mut ctx = global.context(&interrupts);
    if !json {
        let width = render::name_width(hosts.iter().map(String::as_str));
        ctx = ctx.observer(Arc::new(render::Printer::new(width, run.stream)));
    }
    let report = executor.exec(&ctx, targets, &exec).await?;
    executor.close().await;
    if json {
        print_json(&report)?;
    } else {
        eprintln!("{}", render::summary(&report));
    }
    Ok(run_status(
        report.audit_error.as_deref(),
        &interrupts,
        report.all_ok(),
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
