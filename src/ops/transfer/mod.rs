//! `remex upload` and `remex download`: fast, verified, atomic file transfer
//! over SFTP on each host's existing connection.
//!
//! # Layout
//!
//! - `mod.rs` (here): the requests ([`Upload`], [`Download`], [`Options`]),
//!   and what one host's transfer shares with the run (cancel, progress).
//! - `report.rs`: the per-host and per-file results and the JSON schema.
//! - `access.rs`: whose files: the login user's, or another user's through
//!   sudo (`sftp-server` run as that user on an exec channel).
//! - `sftp.rs`: an SFTP session on a channel of a host's connection,
//!   with errors turned into `transfer` failures that name the path.
//! - `pipeline.rs`: many SFTP reads or writes in flight, over one or more
//!   channels, with bounded memory, hashing while streaming.
//! - `names.rs`: temp names and the path-safety rules of downloads.
//! - `hash.rs`: the remote SHA-256 command and its fallback.
//! - `scope.rs`: [`PathScope`], the paths a transfer may touch, checked on
//!   the host's real paths; setuid/setgid/sticky modes refused.
//! - `local.rs`: the local tree walk (upload) and local atomic files (download).
//! - `upload.rs`, `download.rs`: one host's transfer, and the operations
//!   [`crate::Executor::upload`] / [`crate::Executor::download`].
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

mod access;
mod download;
mod hash;
mod local;
mod names;
mod pipeline;
mod report;
mod scope;
mod sftp;
mod upload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::audit::Record;
use crate::failure::Failure;
use crate::ops::exec::Sudo;
use crate::run::cancel::{self, Cancel};
use crate::run::context::Observer;
use crate::run::runner::HostRun;
use crate::transport::connection::Connection;

pub use report::{EntryKind, FileOutcome, TransferReport, TransferResult, TransferStatus};
pub use scope::{PathScope, SPECIAL_MODE_BITS, ScopeError};

/// Files up to this size are verified by reading them back over SFTP rather
/// than by a remote hash command (cheaper for small files).
pub const READBACK_MAX: u64 = 1024 * 1024;

/// Default bytes per SFTP read or write request: 255 KiB, the most
/// OpenSSH's sftp-server accepts in one request (`limits@openssh.com`
/// reports 261120); smaller when the server's limits say so.
pub const DEFAULT_CHUNK: usize = 255 * 1024;

/// How a transfer behaves; the same for every host of a run.
#[derive(Debug, Clone)]
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
    /// Read and write as another user through sudo (`--sudo`,
    /// `--sudo-user`): files are created by, and owned by, that user, and
    /// relative and `~/` paths are in that user's home. See `access.rs`.
    pub sudo: Option<Sudo>,
    /// The paths this transfer may read or write on the hosts (the
    /// service sets it from the token's `paths`); `None` (the default):
    /// any path the login (or sudo) user may. Each path is checked as the
    /// host resolves it; a path outside fails the file (or the host) with
    /// [`crate::ErrorKind::Denied`]. See `scope.rs` for how symlinks and
    /// races are handled.
    pub scope: Option<PathScope>,
    /// Whether an upload may give files and directories setuid, setgid or
    /// sticky bits ([`SPECIAL_MODE_BITS`]), by `mode` or kept from the
    /// local files. Default `true` (the command line's behaviour); the
    /// service passes `false` unless the token has `files:special`. When
    /// `false`, an upload that would set one fails on every host with
    /// [`crate::ErrorKind::Denied`] before the host is contacted.
    pub special_modes: bool,
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
            sudo: None,
            scope: None,
            special_modes: true,
        }
    }
}

impl Options {
    /// What must never be shown or recorded: the sudo password.
    fn secrets(&self) -> Vec<String> {
        self.sudo
            .iter()
            .filter_map(|sudo| sudo.password.as_deref().cloned())
            .collect()
    }

    /// The sudo target, in the run's `start` record.
    fn describe(&self, record: Record) -> Record {
        match &self.sudo {
            Some(sudo) => record.sudo(sudo.target()),
            None => record,
        }
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

/// What one host's transfer shares with its run: the cancel signal (temp
/// files are removed) and the observer (progress).
#[derive(Clone, Default)]
pub(crate) struct Watch {
    /// The run's cancel signal.
    pub cancel: Option<Cancel>,
    /// The run's observer.
    pub observer: Option<Arc<dyn Observer>>,
}

impl Watch {
    /// The run's cancel and observer, for host `host`.
    fn of(host: &HostRun<'_>) -> Watch {
        Watch {
            cancel: host.cancel().cloned(),
            observer: host.observer().cloned(),
        }
    }

    fn is_cancelled(&self) -> bool {
        cancel::is_cancelled(self.cancel.as_ref())
    }
}

/// One host's transfer, start to end: connect (or reuse the connection),
/// run `work` on it, and settle the result (status, bytes, the host's
/// failure).
async fn on_host<F, Fut>(
    host: &mut HostRun<'_>,
    detail: &mut TransferResult,
    work: F,
) -> Result<(), Failure>
where
    F: FnOnce(Arc<Connection>, Watch) -> Fut,
    Fut: std::future::Future<Output = (Vec<FileOutcome>, Result<(), Failure>)>,
{
    let watch = Watch::of(host);
    let conn = host.connection().await?;
    let (files, result) = work(conn, watch).await;
    detail.files = files;
    detail.settle(result.err())
}

/// Runs `work` (a remote hash, a read-back) unless the run is cancelled
/// first: then the `cancelled` failure, at once, without waiting for the
/// host. So Ctrl-C during verification never waits for a long hash, and the
/// caller never goes on to replace the destination.
async fn unless_cancelled<T>(
    watch: &Watch,
    cancelled: impl FnOnce() -> Failure,
    work: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    match &watch.cancel {
        Some(cancel) => tokio::select! {
            biased;
            () = cancel.cancelled() => Err(cancelled()),
            done = work => done,
        },
        None => work.await,
    }
}
