//! `remex upload` and `remex download`: options, signals, progress bars,
//! and output.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use remex::transfer::{Download, Options, TransferReport, TransferResult, TransferStatus, Upload};
use remex::{Detail, Executor, HostReport, Observer, RunContext, Selection};

use super::args::{DownloadArgs, TransferArgs, UploadArgs};
use super::invocation::Invocation;
use super::signals::Interrupts;
use super::{Global, Status, print_json, run_status};

/// `remex upload TARGETS LOCAL... REMOTE`.
pub(super) async fn upload(global: &Global<'_>, args: UploadArgs) -> Result<Status> {
    let (remote, locals) = args
        .paths
        .split_last()
        .context("name at least one LOCAL path and the REMOTE destination")?;
    let remote = remote_arg(remote)?;
    let mut upload = Upload::new(locals.iter().map(PathBuf::from).collect(), &remote);
    upload.recursive = args.recursive;
    upload.follow_symlinks = args.follow_symlinks;
    upload.mode = args.mode;
    upload.preserve_times = args.preserve;
    upload.mkdir = args.mkdir;
    let run = Run::prepare(global, &args.targets, &args.transfer)?;
    upload.options = run.options.clone();
    let report = run.executor.upload(&run.ctx, &run.hosts, &upload).await;
    run.finish(report, global.json).await
}

/// `remex download TARGETS REMOTE... LOCAL_DIR`.
pub(super) async fn download(global: &Global<'_>, args: DownloadArgs) -> Result<Status> {
    let (local, remotes) = args
        .paths
        .split_last()
        .context("name at least one REMOTE path and the LOCAL_DIR")?;
    let remotes = remotes
        .iter()
        .map(|r| remote_arg(r))
        .collect::<Result<Vec<_>>>()?;
    let mut download = Download::new(remotes, PathBuf::from(local));
    download.recursive = args.recursive;
    download.flat = args.flat;
    download.preserve = args.preserve;
    let run = Run::prepare(global, &args.targets, &args.transfer)?;
    download.options = run.options.clone();
    let report = run.executor.download(&run.ctx, &run.hosts, &download).await;
    run.finish(report, global.json).await
}

/// A REMOTE argument as SFTP carries it: UTF-8 text.
fn remote_arg(remote: &std::ffi::OsStr) -> Result<String> {
    remote
        .to_str()
        .map(str::to_owned)
        .with_context(|| format!("REMOTE {remote:?} is not UTF-8, which SFTP cannot carry"))
}

/// What upload and download share: the executor, options, signals and bars.
struct Run {
    executor: Executor,
    /// The hosts, selected once.
    hosts: Selection,
    options: Options,
    ctx: RunContext,
    bars: Option<Arc<Bars>>,
    interrupts: Interrupts,
    width: usize,
    /// Suggested commands repeat the user's `--config`.
    invocation: Invocation,
}

impl Run {
    fn prepare(global: &Global<'_>, targets: &str, args: &TransferArgs) -> Result<Run> {
        let json = global.json;
        let mut config = global.config()?;
        if let Some(parallel) = args.parallel {
            config.remote_execution.max_parallel = parallel as usize;
        }
        let executor = global.one_run_executor(config)?;
        let hosts = executor.select(targets)?;
        let width = hosts
            .hosts()
            .iter()
            .map(|h| h.chars().count())
            .max()
            .unwrap_or(0);
        let mut options = Options {
            verify: !args.no_verify,
            skip_identical: args.skip_identical,
            resume: args.resume,
            sudo: args.sudo.sudo()?,
            ..Options::default()
        };
        if let Some(timeout) = args.request_timeout {
            if timeout.as_secs() == 0 {
                bail!("--request-timeout must be at least 1s");
            }
            options.request_timeout = timeout;
        }
        // A signal stops the transfers (temp files are removed) instead of
        // leaving them half done.
        let interrupts = Interrupts::watch("stopping transfers")?;
        let mut ctx = global.context(&interrupts);
        for (_, value) in &args.secret_env {
            ctx = ctx.secret(value.clone());
        }
        let bars = (!json && std::io::stderr().is_terminal())
            .then(|| Arc::new(Bars::new(hosts.hosts(), width)));
        if let Some(bars) = &bars {
            ctx = ctx.observer(bars.clone());
        }
        Ok(Run {
            executor,
            hosts,
            options,
            ctx,
            bars,
            interrupts,
            width,
            invocation: global.invocation.clone(),
        })
    }

    async fn finish(
        self,
        report: Result<TransferReport, remex::Error>,
        json: bool,
    ) -> Result<Status> {
        if let Some(bars) = &self.bars {
            bars.clear();
        }
        let mut report = report?;
        self.executor.close().await;
        self.invocation.rewrite_report(&mut report);
        if json {
            print_json(&report)?;
        } else {
            for outcome in &report.results {
                print_outcome(outcome, self.width);
            }
            eprintln!("{}", summary(&report));
        }
        Ok(run_status(
            report.audit_error.as_deref(),
            &self.interrupts,
            report.all_ok(),
        ))
    }
}

/// One line per host (stdout), and one per failed entry (stderr).
fn print_outcome(outcome: &HostReport<TransferResult>, width: usize) {
    let host = &outcome.host;
    let secs = outcome.duration.as_secs_f64();
    let result = &outcome.detail;
    match (&outcome.error, result.status) {
        (None, Some(status)) => {
            let what = match status {
                TransferStatus::Unchanged => "unchanged",
                _ => "written",
            };
            let files = result.files.len();
            let entries = if files == 1 { "entry" } else { "entries" };
            // Bytes and a rate only when bytes moved: an unchanged host
            // moved none.
            let mut line = if result.bytes == 0 {
                format!("{host:<width$}: {what} {files} {entries} in {secs:.2}s")
            } else {
                format!(
                    "{host:<width$}: {what} {files} {entries}, {} in {secs:.2}s ({}/s)",
                    human_bytes(result.bytes),
                    human_bytes((result.bytes as f64 / secs.max(0.001)) as u64),
                )
            };
            if let Some(digest) = &result.sha256 {
                line.push_str(&format!(" sha256 {digest}"));
            }
            println!("{line}");
        }
        (Some(failure), _) => {
            for file in &result.files {
                if let Some(error) = &file.error
                    && error.message != failure.message
                {
                    eprintln!("{host:<width$}: [{}] {}", error.kind, error.message);
                }
            }
            eprintln!("{host:<width$}: [{}] {}", failure.kind, failure.message);
        }
        (None, None) => {}
    }
}

/// The run's summary with the bytes moved (`1.0 MiB sent`).
fn summary(report: &TransferReport) -> String {
    let bytes: u64 = report.results.iter().map(|r| r.detail.bytes).sum();
    let moved = format!(
        "{} {}",
        human_bytes(bytes),
        if report.operation == remex::audit::Op::Upload {
            "sent"
        } else {
            "received"
        }
    );
    super::render::summary_with(report, Some(&moved))
}

fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// Progress on a terminal: one bar per host and a total.
struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    hosts: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    fn new(hosts: &[String], width: usize) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(&format!(
            "{{prefix:<{width}}} [{{bar:30}}] {{bytes:>10}}/{{total_bytes:<10}} {{bytes_per_sec:>12}} eta {{eta}} {{msg}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let mut map = HashMap::new();
        for host in hosts {
            let bar = multi.add(ProgressBar::new(0).with_style(style.clone()));
            bar.set_prefix(host.clone());
            map.insert(host.clone(), bar);
        }
        let total = multi.add(ProgressBar::new(0).with_style(style));
        total.set_prefix("total");
        Bars {
            multi,
            total,
            hosts: Mutex::new(map),
        }
    }

    fn with_bar(&self, host: &str, f: impl FnOnce(&ProgressBar)) {
        if let Ok(map) = self.hosts.lock()
            && let Some(bar) = map.get(host)
        {
            f(bar);
        }
    }

    /// Removes the bars before the results are printed.
    fn clear(&self) {
        if let Ok(map) = self.hosts.lock() {
            for bar in map.values() {
                bar.finish_and_clear();
            }
        }
        self.total.finish_and_clear();
        let _ = self.multi.clear();
    }
}

impl Observer for Bars {
    fn expect(&self, host: &str, bytes: u64) {
        self.with_bar(host, |bar| bar.inc_length(bytes));
        self.total.inc_length(bytes);
    }

    fn advance(&self, host: &str, bytes: u64) {
        self.with_bar(host, |bar| bar.inc(bytes));
        self.total.inc(bytes);
    }

    fn done(&self, outcome: &HostReport<dyn Detail>) {
        self.with_bar(&outcome.host, |bar| {
            bar.finish_with_message(if outcome.ok() { "done" } else { "FAILED" });
        });
    }
}
