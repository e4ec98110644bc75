//! The `remex` command: parse, call the library, render, and map the outcome
//! to an exit status (0 every host succeeded, 1 some host failed, 2 usage,
//! config or audit log error, 130 interrupted).

// The argument structs' doc comments are `--help` text, written for a
// terminal (`LOCAL_DIR/<host>/`, `[REDACTED]`), not rustdoc markup.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]

pub mod args;
mod audit;
pub mod hosts;
pub mod keys;
pub mod render;
pub mod transfer;

use std::io::{IsTerminal as _, Read as _};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::Parser as _;
use serde::Serialize;

use crate::config::Config;
use crate::lab;
use crate::ops::exec::script::Script;
use crate::ops::exec::sudo::Sudo;
use crate::ops::exec::{Cancel, Exec};
use crate::run::executor::Executor;
use args::{Cli, Command, ExecArgs, HostsCommand, LabCommand, RunArgs, ScriptArgs, Server};

/// How a run ended, as the exit status scripts see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Every host succeeded (exit 0).
    Success,
    /// At least one host failed (exit 1).
    HostFailed,
    /// Interrupted by Ctrl-C; remote commands were stopped (exit 130).
    Interrupted,
    /// The run happened but some of its audit records could not be written
    /// (exit 2; the error was printed).
    AuditIncomplete,
}

impl Status {
    /// How a fan-out ended: interrupted, all hosts ok, or some failed.
    pub fn of_run(cancelled: bool, all_ok: bool) -> Status {
        if cancelled {
            Status::Interrupted
        } else if all_ok {
            Status::Success
        } else {
            Status::HostFailed
        }
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with status 0; usage errors exit 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("remex: error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(Status::Success) => ExitCode::SUCCESS,
        Ok(Status::HostFailed) => ExitCode::from(1),
        Ok(Status::Interrupted) => ExitCode::from(130),
        Ok(Status::AuditIncomplete) => ExitCode::from(2),
        Err(e) => {
            eprintln!("remex: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "remex=warn",
        1 => "remex=debug",
        _ => "remex=trace,russh=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<Status> {
    let global = Global {
        config: cli.config.as_deref(),
        json: cli.json,
        actor: cli.actor.as_deref(),
    };
    match cli.command {
        Command::Exec(args) => exec(&global, args).await,
        Command::Script(args) => script(&global, args).await,
        Command::Upload(args) => transfer::upload(&global, args).await,
        Command::Download(args) => transfer::download(&global, args).await,
        Command::Hosts(HostsCommand::List) => hosts_list(global.config, global.json),
        Command::Hosts(HostsCommand::Check { targets }) => hosts_check(&global, &targets).await,
        Command::Hosts(HostsCommand::Trust(args)) => hosts::trust(&global, args).await,
        Command::Hosts(HostsCommand::Forget { targets }) => hosts::forget(&global, &targets).await,
        Command::Keys(command) => keys::run(&global, command).await,
        Command::Lab(command) => lab(command, global.json).await,
        Command::Audit(command) => audit::run(&global, command).await,
    }
}

/// The options every subcommand sees.
struct Global<'a> {
    /// `--config`.
    config: Option<&'a std::path::Path>,
    /// `--json`.
    json: bool,
    /// `--actor` / `REMEX_ACTOR`.
    actor: Option<&'a str>,
}

impl Global<'_> {
    /// The audit log of `config`, for operations that contact no host
    /// (local key changes), recording `--actor`.
    fn audit_log(&self, config: &Config) -> Result<crate::audit::AuditLog> {
        let log = crate::audit::AuditLog::open(&config.audit)
            .context("the audit log cannot record this operation, so nothing was done")?;
        log.set_workflow(self.actor.map(str::to_owned));
        Ok(log)
    }

    /// An executor for `config`, recording `--actor` in the audit log.
    fn executor(&self, config: Config) -> Result<Executor> {
        let executor = Executor::new(config)?;
        executor.set_actor(self.actor.map(str::to_owned));
        Ok(executor)
    }
}

fn load_config(path: Option<&std::path::Path>) -> Result<Config> {
    Ok(Config::discover(path)?)
}

/// The exit status of a run over hosts: `audit_error` first (the run is
/// not fully recorded), then Ctrl-C, then the hosts' results.
fn run_status(audit_error: Option<&str>, cancelled: bool, all_ok: bool) -> Status {
    if let Some(error) = audit_error {
        eprintln!("remex: error: {error}: the run's `end` records are incomplete");
        Status::AuditIncomplete
    } else {
        Status::of_run(cancelled, all_ok)
    }
}

fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value).context("writing JSON to stdout")?;
    use std::io::Write as _;
    writeln!(out).context("writing JSON to stdout")?;
    Ok(())
}

async fn exec(global: &Global<'_>, args: ExecArgs) -> Result<Status> {
    let exec = match args.raw {
        Some(raw) => Exec::raw(raw),
        None => Exec::argv(args.argv),
    };
    run_on_hosts(global, &args.targets, exec, &args.run).await
}

async fn script(global: &Global<'_>, args: ScriptArgs) -> Result<Status> {
    let mut script = Script::load(&args.script)
        .with_context(|| format!("cannot read the script {}", args.script.display()))?;
    if let Some(interpreter) = args.interpreter {
        script = script.with_interpreter(interpreter);
    }
    let exec = Exec::script(script, args.args);
    run_on_hosts(global, &args.targets, exec, &args.run).await
}

/// The common part of `exec` and `script`: options, Ctrl-C, output.
async fn run_on_hosts(
    global: &Global<'_>,
    targets: &str,
    mut exec: Exec,
    run: &RunArgs,
) -> Result<Status> {
    let json = global.json;
    let mut config = load_config(global.config)?;
    if let Some(parallel) = run.parallel {
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
    if !json {
        let width = hosts.iter().map(|h| h.chars().count()).max().unwrap_or(0);
        exec.observer = Some(Arc::new(render::Printer::new(width, run.stream)));
    }
    // Ctrl-C stops the remote commands (and cleans up scripts) instead of
    // leaving them running; a second Ctrl-C exits at once.
    let (cancel, interrupt) = cancel_on_ctrl_c("stopping remote commands");
    exec.cancel = Some(cancel);
    let report = executor.exec(targets, &exec).await;
    interrupt.abort();
    let report = report?;
    executor.close().await;
    if json {
        print_json(&report)?;
    } else {
        eprintln!("{}", render::summary(&report));
    }
    Ok(run_status(
        report.audit_error.as_deref(),
        report.cancelled(),
        report.all_ok(),
    ))
}

/// A cancel signal that the first Ctrl-C fires (saying it is `stopping`
/// what), and the task watching for it (abort it when the run is over); a
/// second Ctrl-C exits at once with status 130.
fn cancel_on_ctrl_c(stopping: &'static str) -> (Cancel, tokio::task::JoinHandle<()>) {
    let (handle, cancel) = Cancel::new();
    let watch = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("remex: interrupted; {stopping} (Ctrl-C again to quit at once)");
            handle.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    (cancel, watch)
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

fn hosts_list(config: Option<&std::path::Path>, json: bool) -> Result<Status> {
    let config = load_config(config)?;
    #[derive(Serialize)]
    struct Host<'a> {
        name: &'a str,
        address: &'a str,
        port: u16,
        user: String,
        groups: &'a [String],
    }
    let hosts: Vec<Host<'_>> = config
        .vms
        .iter()
        .map(|(name, vm)| Host {
            name,
            address: &vm.host,
            port: vm.port,
            user: config.user_for(vm),
            groups: &vm.groups,
        })
        .collect();
    if json {
        #[derive(Serialize)]
        struct Listing<'a> {
            version: u32,
            operation: &'static str,
            config: &'a std::path::Path,
            hosts: Vec<Host<'a>>,
        }
        print_json(&Listing {
            version: crate::run::report::SCHEMA_VERSION,
            operation: "hosts_list",
            config: &config.source,
            hosts,
        })?;
    } else {
        let rows: Vec<Vec<String>> = hosts
            .iter()
            .map(|h| {
                vec![
                    h.name.to_owned(),
                    format!("{}:{}", h.address, h.port),
                    h.user.clone(),
                    h.groups.join(","),
                ]
            })
            .collect();
        println!(
            "{}",
            render::table(&["NAME", "ADDRESS", "USER", "GROUPS"], &rows)
        );
    }
    Ok(Status::Success)
}

async fn hosts_check(global: &Global<'_>, targets: &str) -> Result<Status> {
    let json = global.json;
    let executor = global.executor(load_config(global.config)?)?;
    let report = executor.check(targets).await?;
    executor.close().await;
    if json {
        print_json(&report)?;
    } else {
        let rows: Vec<Vec<String>> = report
            .results
            .iter()
            .map(|c| {
                vec![
                    c.host.clone(),
                    format!("{}:{}", c.address, c.port),
                    yes_no(c.reachable),
                    c.host_key.to_owned(),
                    yes_no(c.auth),
                    c.rtt_ms
                        .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1}ms")),
                    c.error
                        .as_ref()
                        .map_or_else(String::new, |f| format!("[{}] {}", f.kind, f.message)),
                ]
            })
            .collect();
        println!(
            "{}",
            render::table(
                &[
                    "HOST",
                    "ADDRESS",
                    "REACHABLE",
                    "HOST-KEY",
                    "AUTH",
                    "RTT",
                    "PROBLEM"
                ],
                &rows
            )
        );
        eprintln!(
            "{} hosts: {} ok, {} with problems",
            report.summary.total, report.summary.ok, report.summary.failed
        );
    }
    Ok(run_status(
        report.audit_error.as_deref(),
        false,
        report.summary.failed == 0,
    ))
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

async fn lab(command: LabCommand, json: bool) -> Result<Status> {
    match command {
        LabCommand::Up {
            hosts,
            dir,
            server,
            password_user,
            password_env,
        } => {
            let password = password_env
                .as_deref()
                .map(|var| keys::env_secret("--password-env", var))
                .transpose()?;
            let spec = lab::LabSpec {
                hosts: hosts as usize,
                dir,
                server: match server {
                    Server::Openssh => lab::ServerKind::OpenSsh,
                    Server::Dropbear => lab::ServerKind::Dropbear,
                },
                user: None,
                password_user: password_user.map(|name| lab::PasswordUser { name, password }),
            };
            let lab = lab::up(&spec).await?;
            let rows: Vec<(String, String, u32)> = lab
                .hosts
                .iter()
                .map(|h| (h.name.clone(), h.socket_addr().to_string(), h.pid))
                .collect();
            if json {
                print_json(&serde_json::json!({
                    "version": crate::run::report::SCHEMA_VERSION,
                    "operation": "lab_up",
                    "dir": lab.dir,
                    "config": lab.config_path,
                    "user": lab.user,
                    "password_file": lab.password_file,
                    "hosts": rows.iter().map(|(name, address, pid)| serde_json::json!({
                        "name": name, "address": address, "pid": pid,
                    })).collect::<Vec<_>>(),
                }))?;
            } else {
                let table: Vec<Vec<String>> = rows
                    .into_iter()
                    .map(|(name, address, pid)| vec![name, address, pid.to_string()])
                    .collect();
                println!("{}", render::table(&["NAME", "ADDRESS", "PID"], &table));
                let config = lab.config_path.display();
                if let Some(file) = &lab.password_file {
                    eprintln!(
                        "password lab: log in as `{user}` with the password in {file} (no key is authorized yet); try:\n  \
                         remex --config {config} keys generate --name demo\n  \
                         REMEX_PASSWORD=$(cat {file}) remex --config {config} keys deploy all --name demo --password-env REMEX_PASSWORD\n  \
                         remex --config {config} exec all -- id",
                        user = lab.user,
                        file = file.display(),
                    );
                }
                eprintln!(
                    "lab is up: {} hosts, logging in as {}\ntry:  remex --config {config} exec all -- uname -a\nstop: remex lab down --dir {}",
                    lab.hosts.len(),
                    lab.user,
                    lab.dir.display()
                );
            }
            Ok(Status::Success)
        }
        LabCommand::Down { dir } => {
            let report = lab::down(&dir)?;
            if json {
                print_json(&serde_json::json!({
                    "version": crate::run::report::SCHEMA_VERSION,
                    "operation": "lab_down",
                    "dir": report.dir,
                    "stopped": report.stopped,
                    "killed": report.killed,
                    "not_running": report.not_running,
                }))?;
            } else {
                let stopped = report.stopped.len() + report.killed.len();
                eprintln!(
                    "lab in {} is down: {stopped} servers stopped, {} were not running",
                    report.dir.display(),
                    report.not_running.len()
                );
            }
            Ok(Status::Success)
        }
        LabCommand::Status { dir } => {
            let status = lab::status(&dir)?;
            if json {
                print_json(&serde_json::json!({
                    "version": crate::run::report::SCHEMA_VERSION,
                    "operation": "lab_status",
                    "dir": status.dir,
                    "config": status.config_path,
                    "user": status.user,
                    "hosts": status.hosts.iter().map(|h| serde_json::json!({
                        "name": h.name, "address": format!("{}:{}", h.address, h.port),
                        "pid": h.pid, "running": h.running,
                    })).collect::<Vec<_>>(),
                }))?;
            } else {
                let rows: Vec<Vec<String>> = status
                    .hosts
                    .iter()
                    .map(|h| {
                        vec![
                            h.name.clone(),
                            format!("{}:{}", h.address, h.port),
                            h.pid.to_string(),
                            if h.running { "running" } else { "stopped" }.to_owned(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    render::table(&["NAME", "ADDRESS", "PID", "STATE"], &rows)
                );
                eprintln!("config: {}", status.config_path.display());
            }
            Ok(if status.all_running() {
                Status::Success
            } else {
                Status::HostFailed
            })
        }
    }
}
