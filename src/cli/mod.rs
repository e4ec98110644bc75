//! The `remex` command: parse, call the library, render, and map the outcome
//! to an exit status (0 every host succeeded, 1 some host failed, 2 usage,
//! config or audit log error, 130/143/129 interrupted by SIGINT/SIGTERM/
//! SIGHUP; with `--exit-zero`, 0 whenever the report was printed).
//!
//! An error that stops a command (exit 2) is printed on stderr, and with
//! `--json` or `--ndjson` also on stdout as an [`error_report::ErrorReport`]
//! — clap's usage errors included.
//!
//! Only translation happens here: arguments become a request and a
//! [`RunContext`] (the actor, the signals' cancel, the terminal prompter,
//! the printer), the library runs it, the report is rendered. The CLI
//! writes no audit record and builds no JSON by hand: `--json` prints the
//! library's report types.

// The argument structs' doc comments are `--help` text, written for a
// terminal (`LOCAL_DIR/<host>/`, `[REDACTED]`), not rustdoc markup.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]

mod action;
mod args;
mod audit;
mod error_report;
mod exec;
mod hosts;
mod invocation;
mod keys;
mod lab;
mod manuals;
mod ndjson;
mod prompt;
mod render;
mod serve;
mod signals;
mod transfer;
mod usage;

use std::ffi::OsString;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::{CommandFactory as _, FromArgMatches as _};
use serde::Serialize;

use args::{Cli, Command, HostsCommand};
use error_report::ErrorReport;
use invocation::Invocation;
use remex::{Config, Executor, Listing, RunContext};
use signals::Interrupts;

/// How a run ended, as the exit status scripts see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Every host succeeded (exit 0).
    Success,
    /// At least one host failed (exit 1).
    HostFailed,
    /// Stopped by a signal; remote commands were stopped, every `end`
    /// record written (exit 128 + the signal's number).
    Interrupted(u8),
    /// The run happened but some of its audit records could not be written
    /// (exit 2; the error was printed).
    AuditIncomplete,
}

/// Entry point of the binary.
pub(crate) fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let parsed = Cli::command()
        .try_get_matches_from(&argv)
        .and_then(|matches| {
            let cli = Cli::from_arg_matches(&matches)?;
            cli.check()?;
            Ok((usage::operation_of_matches(&matches), cli))
        });
    let (operation, cli) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return usage_error(e, &argv),
    };
    let outcome = Outcome {
        operation,
        json: cli.machine_readable(),
        exit_zero: cli.exit_zero,
        invocation: Invocation::new(cli.config.as_deref()),
    };
    init_tracing(cli.verbose);
    if !matches!(cli.command, Command::Serve(_)) {
        crate::tune_malloc();
    }
    crate::raise_open_file_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return outcome
                .failed(&anyhow::Error::new(e).context("cannot start the async runtime"));
        }
    };
    let invocation = outcome.invocation.clone();
    match runtime.block_on(run(cli, &invocation)) {
        Ok(status) => outcome.status(status),
        Err(e) => outcome.failed(&e),
    }
}

/// A command line clap refused (or `--help`, `--version`): printed as clap
/// prints it, with remex's hint, and with `--json` also as an
/// [`ErrorReport`] on stdout.
fn usage_error(error: clap::Error, argv: &[OsString]) -> ExitCode {
    // Help and version go to stdout with status 0; usage errors exit 2.
    if !error.use_stderr() {
        let _ = error.print();
        return ExitCode::SUCCESS;
    }
    let error = usage::with_hint(error, argv);
    let _ = error.print();
    if usage::wants_json(argv) {
        let operation = usage::operation_of_args(argv);
        let message = usage::one_line(&error);
        let _ = print_json(&ErrorReport::new(operation.as_deref(), "usage", &message));
    }
    ExitCode::from(2)
}

/// How a parsed command line wants its end reported.
struct Outcome {
    /// The operation it names, for an [`ErrorReport`].
    operation: Option<String>,
    /// `--json` or `--ndjson`: an error is reported on stdout too.
    json: bool,
    /// `--exit-zero`.
    exit_zero: bool,
    /// For the commands suggested in error messages.
    invocation: Invocation,
}

impl Outcome {
    /// The exit status of a command that ran to its end: with
    /// `--exit-zero`, 0 whatever the hosts did (the report says it).
    fn status(&self, status: Status) -> ExitCode {
        if self.exit_zero {
            return ExitCode::SUCCESS;
        }
        match status {
            Status::Success => ExitCode::SUCCESS,
            Status::HostFailed => ExitCode::from(1),
            Status::Interrupted(code) => ExitCode::from(code),
            Status::AuditIncomplete => ExitCode::from(2),
        }
    }

    /// Reports an error that stopped the command: exit 2.
    fn failed(&self, error: &anyhow::Error) -> ExitCode {
        let text = format!("{error:#}");
        let message = self.invocation.rewrite(&text);
        eprintln!("remex: error: {message}");
        if self.json {
            let kind = error_report::kind_of(error);
            let _ = print_json(&ErrorReport::new(self.operation.as_deref(), kind, &message));
        }
        ExitCode::from(2)
    }
}

/// Logs on stderr: remex's own events at the level `-v` asks for (`-v`:
/// each connection's steps with timings, `-vv`: everything). russh stays
/// silent unless `RUST_LOG` names it: it reports remex's deliberate
/// 256 KiB packet size as an ERROR on every connection, and its debug
/// lines are protocol internals an operator cannot act on.
fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "remex=warn",
        1 => "remex=debug",
        _ => "remex=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(colour_on_stderr())
        .try_init();
}

/// Whether stderr may carry colour: only a terminal, and not when
/// `NO_COLOR` is set (<https://no-color.org>). Logs in a file, n8n or cron
/// stay plain text. (indicatif's bars follow the same rules.)
fn colour_on_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `--jump HOPS`: every VM is reached through HOPS, except the VMs that
/// are hops themselves (they keep their own `jump`); `none`: every VM is
/// dialed directly.
fn apply_jump(config: &mut Config, jump: &str) -> Result<()> {
    if jump.trim().eq_ignore_ascii_case("none") {
        for vm in config.vms.values_mut() {
            vm.jump = None;
        }
        return Ok(());
    }
    let hops = remex::config::parse_chain(jump, &|name| config.vms.contains_key(name))
        .map_err(|why| anyhow::anyhow!("--jump {jump}: {why}"))?;
    for (name, vm) in &mut config.vms {
        if !hops.iter().any(|hop| hop.name() == name) {
            vm.jump = Some(jump.to_owned());
        }
    }
    Ok(())
}

/// Runs a parsed command line.
async fn run(cli: Cli, invocation: &Invocation) -> Result<Status> {
    let adhoc = match &cli.command {
        Command::Exec(args) => args.run.adhoc.clone(),
        Command::Script(args) => args.run.adhoc.clone(),
        Command::Upload(args) => args.adhoc.clone(),
        Command::Download(args) => args.adhoc.clone(),
        Command::Hosts(HostsCommand::Trust(args)) => args.adhoc.clone(),
        _ => args::AdHoc::default(),
    };
    let global = Global {
        config: cli.config.as_deref(),
        json: cli.json,
        actor: cli.actor.as_deref(),
        user: cli.user.as_deref(),
        hosts: &adhoc.hosts,
        connect_timeout: cli.connect_timeout,
        jump: cli.jump.as_deref(),
        invocation,
    };
    match cli.command {
        Command::Exec(args) => exec::exec(&global, args).await,
        Command::Action(command) => action::run(&global, command).await,
        Command::Script(args) => exec::script(&global, args).await,
        Command::Upload(args) => transfer::upload(&global, args).await,
        Command::Download(args) => transfer::download(&global, args).await,
        Command::Hosts(HostsCommand::List { targets }) => hosts::list(&global, &targets),
        Command::Hosts(HostsCommand::Check { targets }) => hosts::check(&global, &targets).await,
        Command::Hosts(HostsCommand::Trust(args)) => hosts::trust(&global, args).await,
        Command::Hosts(HostsCommand::Forget { targets }) => hosts::forget(&global, &targets).await,
        Command::Keys(command) => keys::run(&global, command).await,
        Command::Lab(command) => lab::run(command, global.json).await,
        Command::Audit(command) => audit::run(&global, command).await,
        Command::Serve(args) => serve::serve(&global, args).await,
        Command::Tokens(command) => serve::tokens(&global, command),
        Command::Completions { shell } => manuals::completions(shell).map(|()| Status::Success),
        Command::Man { dir } => manuals::man(dir.as_deref()).map(|()| Status::Success),
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
    /// `--user`: every host's login user.
    user: Option<&'a str>,
    /// `--host`: hosts outside the config, for this command.
    hosts: &'a [(String, u16)],
    /// `--connect-timeout`.
    connect_timeout: Option<std::time::Duration>,
    /// `--jump`: every host's jump hosts.
    jump: Option<&'a str>,
    /// How remex was invoked, for the commands suggested in messages.
    invocation: &'a Invocation,
}

impl Global<'_> {
    /// The config: `--config`, else `$REMEX_CONFIG`, else the default places.
    fn config(&self) -> Result<Config> {
        let from_env = std::env::var_os(remex::config::CONFIG_ENV)
            .filter(|path| !path.is_empty())
            .map(std::path::PathBuf::from);
        let mut config = Config::discover(self.config, from_env.as_deref())?;
        for (address, port) in self.hosts {
            let name = if *port == 22 {
                address.clone()
            } else {
                remex::config::join_host_port(address, *port)
            };
            config.vms.entry(name).or_insert_with(|| remex::config::Vm {
                host: address.clone(),
                port: *port,
                user: None,
                groups: vec!["adhoc".to_owned()],
                key: None,
                jump: None,
                tuning: Default::default(),
                from_ssh_config: Default::default(),
            });
        }
        if let Some(user) = self.user {
            for vm in config.vms.values_mut() {
                vm.user = Some(user.to_owned());
            }
        }
        if let Some(timeout) = self.connect_timeout {
            config.remote_execution.connect_timeout = timeout;
        }
        if let Some(jump) = self.jump {
            apply_jump(&mut config, jump)?;
        }
        Ok(config)
    }

    /// An executor for `config`, with the ssh-agent of `SSH_AUTH_SOCK`.
    fn executor(&self, config: Config) -> Result<Executor> {
        Ok(self.builder(config).build()?)
    }

    /// An executor for a command that makes one run (`exec`, `script`,
    /// `upload`, `download`, `hosts check`): each host's connection closes
    /// as soon as the host is done.
    fn one_run_executor(&self, config: Config) -> Result<Executor> {
        Ok(self.builder(config).reuse_connections(false).build()?)
    }

    /// The builder both start from: `config` and `SSH_AUTH_SOCK`'s agent.
    fn builder(&self, config: Config) -> remex::ExecutorBuilder {
        let agent = std::env::var_os("SSH_AUTH_SOCK").map(std::path::PathBuf::from);
        Executor::builder(config).agent_socket(agent)
    }

    /// A run's context: `--actor`, the terminal prompter, and the cancel
    /// of `interrupts`.
    fn context(&self, interrupts: &Interrupts) -> RunContext {
        let mut ctx = RunContext::new()
            .prompter(Arc::new(prompt::Terminal::new()))
            .cancel(interrupts.cancel());
        ctx.actor = self.actor.map(str::to_owned);
        ctx
    }
}

/// The exit status of a run over hosts: `audit_error` first (the run is
/// not fully recorded), then a signal, then the hosts' results.
fn run_status(audit_error: Option<&str>, interrupts: &Interrupts, all_ok: bool) -> Status {
    if let Some(error) = audit_error {
        eprintln!("remex: error: {error}: the run's records are incomplete");
        Status::AuditIncomplete
    } else if let Some(code) = interrupts.exit_code() {
        Status::Interrupted(code)
    } else if all_ok {
        Status::Success
    } else {
        Status::HostFailed
    }
}

fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value).context("writing JSON to stdout")?;
    use std::io::Write as _;
    writeln!(out).context("writing JSON to stdout")?;
    Ok(())
}

/// Prints `body` as `{"version", "operation", ...}`.
fn print_listing<T: Serialize>(operation: &'static str, body: T) -> Result<()> {
    print_json(&Listing { operation, body })
}
