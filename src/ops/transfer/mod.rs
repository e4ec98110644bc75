//! `remex upload` and `remex download`: fast, verified, atomic file transfer
//! over SFTP on each host's existing connection.
//!
//! # Layout
//!
//! - `mod.rs` (here): the requests ([`Upload`], [`Download`], [`Options`])
//!   and the progress hook ([`TransferObserver`]).
//! - [`report`]: the per-host and per-file outcomes and the JSON schema.
//! - `sftp.rs`: an SFTP session on a channel of a [`crate::transport::connection::Connection`],
//!   with errors turned into `transfer` failures that name the path.
//! - `pipeline.rs`: many SFTP reads or writes in flight, over one or more
//!   channels, with bounded memory, hashing while streaming.
//! - `names.rs`: temp names and the path-safety rules of downloads.
//! - `hash.rs`: the remote SHA-256 command and its fallback.
//! - `local.rs`: the local tree walk (upload) and local atomic files (download).
//! - `upload.rs`, `download.rs`: one host's transfer, and the fan-outs
//!   [`crate::run::executor::Executor::upload`] / [`crate::run::executor::Executor::download`].
//!
//! # Atomicity
//!
//! A file is never written in place. An upload writes
//! `DIR/.NAME.TAG.remex-part` in the destination's own directory (so the
//! final rename stays on one filesystem; TAG is 8 hex digits of the SHA-256
//! of the host's name in the config, so hosts sharing a filesystem, such as
//! an NFS home, never share a temp file), fsyncs it (`fsync@openssh.com`), verifies it, sets its mode,
//! and renames it over `DIR/NAME` with `posix-rename@openssh.com` (a plain
//! SFTP rename fails when the target exists). A download does the same
//! locally: temp file, `fsync`, `rename`, `fsync` of the directory. On any
//! failure the temp file is removed, so the destination is exactly as before;
//! only `--resume` keeps it (deliberately: it is what the next `--resume` run
//! continues from). The temp name is fixed per host and destination, so a run
//! after a lost connection (which could not clean up) finds the leftover
//! and, when no process on the host has it open (`/proc/PID/fd`), replaces
//! it: nothing accumulates. The temp file is created exclusively; when
//! another upload to the same path of the same host has it open, this run
//! writes `.NAME.TAG.RANDOM.remex-part` of its own instead, so two runs never
//! write one temp file (each renames a complete, verified file; the last one
//! wins). `--resume` always uses the fixed name, which is what it resumes.
//!
//! **Invariant:** the destination is replaced only by a complete file whose
//! SHA-256 matched (unless `--no-verify`), and only by a rename.
//!
//! # Verification
//!
//! The SHA-256 of the bytes sent (or received) is computed while streaming
//! and compared with the SHA-256 of the file on the other side, computed
//! there: `openssl dgst -sha256` when the host has it (it uses the CPU's SHA
//! instructions; coreutils' `sha256sum` on Debian 12 does not and is ~4×
//! slower), else `sha256sum`, else `shasum -a 256`. When none exists, when
//! the host runs no commands (an SFTP-only account; see `hash::RAN`), or
//! when `max_sessions` is 1 (no channel is free for the command), remex
//! reads the file back over SFTP and hashes it locally. Files up to
//! [`READBACK_MAX`] are always verified by reading them back: for small files
//! that is cheaper than starting a remote process. A mismatch is a
//! `transfer` error and the destination is not replaced.
//!
//! A large upload (over one 64 MiB segment) is hashed on the host *while it
//! is written*: one remote command opens the temp file and, each time the
//! server has acknowledged every write of the next segment, hashes those
//! bytes into one running SHA-256 (`python3`'s hashlib reading the file
//! itself when the host has it; else `head -c` piped into the tools above,
//! which costs two more copies of every byte). The check then costs little
//! wall time (only the last segment is hashed after the data); a failed or
//! differing streaming hash is checked again with a plain hash of the file. A download's remote
//! hash runs on a second channel while the bytes flow.
//!
//! # Symlinks
//!
//! In recursive transfers a symlink is copied as a symlink with the same
//! target (`-L`/`--follow-symlinks` on upload copies what it points to).
//! A download refuses, per entry, a remote symlink whose target is absolute
//! or leads outside the host's download directory, and never writes through
//! a symlink: every directory it writes into is a real directory it created
//! or found as one.

pub mod report;

mod download;
mod hash;
mod local;
mod names;
mod pipeline;
mod sftp;
mod upload;

pub use download::DownloadPlan;
pub use upload::UploadPlan;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::ops::exec::Cancel;

pub use report::{EntryKind, FileOutcome, TransferOutcome, TransferReport, TransferStatus};

/// Files up to this size are verified by reading them back over SFTP rather
/// than by a remote hash command (cheaper for small files).
pub const READBACK_MAX: u64 = 1024 * 1024;

/// Default bytes per SFTP read or write request: 255 KiB, the most
/// OpenSSH's sftp-server accepts in one request (`limits@openssh.com`
/// reports 261120); smaller when the server's limits say so.
pub const DEFAULT_CHUNK: usize = 255 * 1024;

/// How a transfer behaves; the same for every host of a run.
#[derive(Clone)]
pub struct Options {
    /// Compare SHA-256 end to end before replacing the destination
    /// (default `true`; `--no-verify` turns it off).
    pub verify: bool,
    /// Leave a destination that already has the same size and SHA-256
    /// untouched and report it `unchanged` (`--skip-identical`).
    pub skip_identical: bool,
    /// Continue from what an earlier run's temp file holds, after checking
    /// that prefix by hash; keep the temp file on failure (`--resume`).
    pub resume: bool,
    /// How long one SFTP request (a write, a read, fsync, rename) may wait
    /// for its reply before the host's transfer fails as stalled. Default
    /// 60 s: russh-sftp's own 10 s is too short for an fsync of a large file
    /// on a slow disk, and a dead peer is still noticed within a minute.
    pub request_timeout: Duration,
    /// SFTP channels one large upload is spread over (default 4). sshd gives
    /// each channel a 2 MiB receive window, which caps one channel at
    /// 2 MiB per round trip; more channels multiply that at high RTT. Extra
    /// channels are only opened when the connection has free session slots,
    /// and not with `resume` (one channel's writes land in order, so an
    /// interrupted temp file is a clean prefix to continue from).
    pub channels: usize,
    /// Read requests in flight (default 64 × 255 KiB ≈ remex's 16 MiB
    /// receive window: enough to keep a 20 ms path full at 800 MB/s).
    pub reads_in_flight: usize,
    /// Write requests in flight per channel (default 16 × 255 KiB ≈ 4 MiB:
    /// twice sshd's 2 MiB channel window, so the window never runs dry;
    /// more would only queue in local buffers).
    pub writes_in_flight: usize,
    /// Bytes per request (default [`DEFAULT_CHUNK`]; capped by the server's
    /// limits).
    pub chunk: usize,
    /// Bytes of file data in flight at once across all hosts of a run
    /// (default 64 MiB): bounds memory however many hosts run in parallel;
    /// one host alone stays well under it (4 channels × 16 × 255 KiB).
    pub memory_budget: usize,
    /// Files larger than this are spread over `channels` (default 32 MiB).
    pub multi_channel_threshold: u64,
    /// How to verify when verifying.
    pub verify_by: VerifyBy,
    /// Receives progress as it happens (the CLI's progress bars).
    pub observer: Option<Arc<dyn TransferObserver>>,
    /// Stops the run early (Ctrl-C); temp files are removed.
    pub cancel: Option<Cancel>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            verify: true,
            skip_identical: false,
            resume: false,
            request_timeout: Duration::from_secs(60),
            channels: 4,
            reads_in_flight: 64,
            writes_in_flight: 16,
            chunk: DEFAULT_CHUNK,
            memory_budget: 64 * 1024 * 1024,
            multi_channel_threshold: 32 * 1024 * 1024,
            verify_by: VerifyBy::Auto,
            observer: None,
            cancel: None,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("verify", &self.verify)
            .field("skip_identical", &self.skip_identical)
            .field("resume", &self.resume)
            .field("request_timeout", &self.request_timeout)
            .field("channels", &self.channels)
            .field("reads_in_flight", &self.reads_in_flight)
            .field("writes_in_flight", &self.writes_in_flight)
            .field("chunk", &self.chunk)
            .field("verify_by", &self.verify_by)
            .finish_non_exhaustive()
    }
}

/// How the copy on the other side is hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyBy {
    /// A remote hash command for large files, reading back for small ones
    /// and when the host has no hash command (see the module docs).
    #[default]
    Auto,
    /// Always read the file back over SFTP and hash it locally (the
    /// fallback; selectable so it can be tested on hosts that have hashers).
    ReadBack,
}

/// `remex upload`: local files or directories to the same path on every host.
#[derive(Debug, Clone)]
pub struct Upload {
    /// Local files (and directories, with `recursive`).
    pub sources: Vec<PathBuf>,
    /// The remote path. Ending in `/`, naming an existing directory, or
    /// with several sources, it is a directory to copy into (as with `cp`).
    pub destination: String,
    /// Copy directories (`-r`).
    pub recursive: bool,
    /// Copy what symlinks point to instead of the links (`-L`).
    pub follow_symlinks: bool,
    /// Mode of uploaded files (`--mode 0640`); default: the local file's
    /// mode (permission bits).
    pub mode: Option<u32>,
    /// Also keep the local modification time (`--preserve`; the mode is
    /// kept by default).
    pub preserve_times: bool,
    /// Create missing parent directories of the destination (`--mkdir`).
    pub mkdir: bool,
    /// How to transfer.
    pub options: Options,
}

impl Upload {
    /// An upload of `sources` to `destination` with default options.
    pub fn new(sources: Vec<PathBuf>, destination: impl Into<String>) -> Self {
        Upload {
            sources,
            destination: destination.into(),
            recursive: false,
            follow_symlinks: false,
            mode: None,
            preserve_times: false,
            mkdir: false,
            options: Options::default(),
        }
    }
}

/// `remex download`: remote files or directories from every host into
/// `LOCAL_DIR/<host>/` (or `LOCAL_DIR/` itself with `flat`, one host only).
#[derive(Debug, Clone)]
pub struct Download {
    /// Remote paths.
    pub sources: Vec<String>,
    /// The local directory; created when missing.
    pub local_dir: PathBuf,
    /// Copy directories (`-r`).
    pub recursive: bool,
    /// Write into `local_dir` directly instead of `local_dir/<host>`; only
    /// allowed when one host is selected (`--flat`).
    pub flat: bool,
    /// Keep the remote mode and modification time (`--preserve`); without
    /// it a file gets the remote permission bits minus group/other write.
    pub preserve: bool,
    /// How to transfer.
    pub options: Options,
}

impl Download {
    /// A download of `sources` into `local_dir` with default options.
    pub fn new(sources: Vec<String>, local_dir: impl Into<PathBuf>) -> Self {
        Download {
            sources,
            local_dir: local_dir.into(),
            recursive: false,
            flat: false,
            preserve: false,
            options: Options::default(),
        }
    }
}

/// Watches transfers as they happen (progress bars). Called from host
/// tasks: implementations must be cheap and must not block.
pub trait TransferObserver: Send + Sync {
    /// `host` will move `bytes` more bytes (called once it knows them;
    /// may be called again, e.g. per directory walked).
    fn expect(&self, _host: &str, _bytes: u64) {}
    /// `host` moved `bytes` more bytes.
    fn advance(&self, _host: &str, _bytes: u64) {}
    /// `host` is finished.
    fn done(&self, _outcome: &TransferOutcome) {}
}

/// Runs `work` (one host's upload or download) on every host, audited: a
/// `start` record per host naming `paths` (sources, then the
/// destination) before any host is contacted, then each host's `file` and
/// `end` records as it finishes.
async fn audited_transfer<F, Fut>(
    executor: &crate::run::executor::Executor,
    op: crate::audit::Op,
    hosts: Vec<String>,
    paths: Vec<String>,
    work: F,
) -> Result<TransferReport, crate::run::executor::Error>
where
    F: Fn(crate::run::executor::Executor, String) -> Fut,
    Fut: std::future::Future<Output = TransferOutcome> + Send + 'static,
{
    let started = std::time::Instant::now();
    let audited = executor
        .audited(
            op,
            hosts,
            Vec::new(),
            |record| record.paths(paths.iter().cloned()),
            move |this, name, _trail| work(this, name),
        )
        .await?;
    Ok(
        TransferReport::new(op.as_str(), audited.results, started.elapsed())
            .audited(audited.run, audited.audit_error),
    )
}

/// One host's transfer, start to end: connect (or reuse the connection),
/// run `work` on it, and settle the outcome (status, bytes, error,
/// duration); a lost connection is dropped from the pool. Never fails as a
/// whole: a failure is in the outcome.
async fn on_host<F, Fut>(
    executor: &crate::run::executor::Executor,
    name: &str,
    options: &Options,
    work: F,
) -> TransferOutcome
where
    F: FnOnce(Arc<crate::transport::connection::Connection>) -> Fut,
    Fut: std::future::Future<Output = (Vec<FileOutcome>, Result<(), crate::run::report::Failure>)>,
{
    let begun = std::time::Instant::now();
    let mut outcome = blank_outcome(executor, name);
    if is_cancelled(options) {
        outcome.error = Some(not_started());
    } else {
        match executor.connection(name).await {
            Ok(conn) => {
                let (files, result) = work(conn).await;
                outcome.files = files;
                if let Err(failure) = result {
                    if failure.kind == crate::run::report::ErrorKind::Io {
                        executor.forget(name);
                    }
                    outcome.error = Some(failure);
                }
            }
            Err(failure) => outcome.error = Some(failure),
        }
    }
    outcome.settle();
    outcome.duration = begun.elapsed();
    if let Some(observer) = &options.observer {
        observer.done(&outcome);
    }
    outcome
}

/// An outcome for `name` with nothing done yet.
fn blank_outcome(executor: &crate::run::executor::Executor, name: &str) -> TransferOutcome {
    let endpoint = executor.endpoint(name).unwrap_or_default();
    TransferOutcome {
        host: name.to_owned(),
        address: endpoint.host,
        port: endpoint.port,
        user: endpoint.user,
        status: None,
        bytes: 0,
        sha256: None,
        files: Vec::new(),
        duration: Duration::ZERO,
        error: None,
    }
}

fn is_cancelled(options: &Options) -> bool {
    options.cancel.as_ref().is_some_and(Cancel::is_cancelled)
}

/// Runs `work` (a remote hash, a read-back) unless the run is cancelled
/// first: then the `cancelled` failure, at once, without waiting for the
/// host. So Ctrl-C during verification never waits for a long hash, and the
/// caller never goes on to replace the destination.
async fn unless_cancelled<T>(
    options: &Options,
    cancelled: impl FnOnce() -> crate::run::report::Failure,
    work: impl std::future::Future<Output = Result<T, crate::run::report::Failure>>,
) -> Result<T, crate::run::report::Failure> {
    match &options.cancel {
        Some(cancel) => tokio::select! {
            biased;
            () = cancel.cancelled() => Err(cancelled()),
            done = work => done,
        },
        None => work.await,
    }
}

fn not_started() -> crate::run::report::Failure {
    crate::run::report::Failure::new(
        crate::run::report::ErrorKind::Cancelled,
        "interrupted before this host was contacted",
    )
}
