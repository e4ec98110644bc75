//! `upload`: local files to every selected host, one host per task.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh_sftp::protocol::{FileAttributes, OpenFlags};
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

use crate::audit::{Op, Record};
use crate::failure::{ErrorKind, Failure};
use crate::run::cancel::Cancel;
use crate::run::report::NoDetails;
use crate::run::runner::{HostRun, Operation};
use crate::run::{Error, Executor, RunContext};
use crate::targets::Targets;
use crate::transport::connection::Connection;

use super::access::Access;
use super::local::{self, LocalEntry};
use super::pipeline::{self, PipeError, Progress, Target};
use super::scope;
use super::sftp::{S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, Sftp};
use super::{
    EntryKind, FileOutcome, Options, READBACK_MAX, TransferReport, TransferResult, TransferStatus,
    Upload, VerifyBy, Watch, hash, names,
};

/// Chunks per verification segment (255 KiB × 256 ≈ 64 MiB).
const SEGMENT_CHUNKS: u64 = 256;

/// An upload ready to run on hosts: the request and what the local side
/// holds, walked once for all hosts.
#[derive(Debug)]
struct UploadPlan {
    /// The request.
    pub upload: Upload,
    /// Every file, directory and symlink to send, directories first.
    entries: Vec<LocalEntry>,
    /// Bytes of all files.
    total: u64,
    /// The memory budget shared by every host of the run.
    budget: pipeline::Budget,
    /// With several hosts, each local file is hashed once for all of them
    /// (not once per host: that would cost the orchestrator a SHA-256 of
    /// every file per host).
    shared: Option<SharedDigests>,
    /// Why every host fails at once, before it is contacted: a mode with
    /// setuid/setgid/sticky bits when `special_modes` is off.
    refusal: Option<Failure>,
}

/// The SHA-256 of a local file as one hashing thread will report it.
type DigestCell = watch::Receiver<Option<Result<String, String>>>;

/// Local files hashed once per run, each by one blocking thread started by
/// the first host that needs it; every host waits for the same digest.
///
/// A host sends the bytes it reads itself, so if the file changes during
/// the run, the host's copy and this digest differ and verification fails:
/// a host that passes holds exactly the bytes this digest names.
#[derive(Debug, Default)]
struct SharedDigests(std::sync::Mutex<HashMap<PathBuf, DigestCell>>);

impl SharedDigests {
    /// Where the digest of `path` will appear: hashing starts now, on a
    /// blocking thread, unless a host started it already.
    fn start(&self, path: &Path, cancel: Option<&Cancel>) -> DigestCell {
        let mut cells = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cells
            .entry(path.to_owned())
            .or_insert_with(|| {
                let (tx, rx) = watch::channel(None);
                let (path, cancel) = (path.to_owned(), cancel.cloned());
                tokio::spawn(async move {
                    let digest = hash::local_in_background(path, None, cancel)
                        .await
                        .map(|(hasher, _)| hash::finish(hasher))
                        .map_err(|e| e.to_string());
                    let _ = tx.send(Some(digest));
                });
                rx
            })
            .clone()
    }

    /// The digest of `path` (see [`SharedDigests::start`]).
    async fn of(&self, path: &Path, cancel: Option<&Cancel>) -> Result<String, String> {
        let mut cell = self.start(path, cancel);
        match cell.wait_for(Option::is_some).await {
            Ok(digest) => digest
                .clone()
                .unwrap_or_else(|| Err("no digest".to_owned())),
            Err(_) => Err("the hashing thread stopped".to_owned()),
        }
    }
}

impl UploadPlan {
    /// Checks the request and walks the local sources. Errors (a missing
    /// source, a directory without `-r`) are usage errors: nothing was sent.
    fn new(upload: &Upload) -> Result<UploadPlan, String> {
        if upload.sources.is_empty() {
            return Err("nothing to upload: name at least one local file".to_owned());
        }
        if upload.destination.is_empty() {
            return Err("the remote destination is empty".to_owned());
        }
        if let Some(mode) = upload.mode
            && mode > 0o7777
        {
            return Err(format!("--mode {mode:o} is not a file mode (0000-7777)"));
        }
        let entries = local::walk(&upload.sources, upload.recursive, upload.follow_symlinks)?;
        let total = entries.iter().map(|e| e.size).sum();
        let refusal = if upload.options.special_modes {
            None
        } else {
            special_mode_refusal(upload, &entries)
        };
        Ok(UploadPlan {
            upload: upload.clone(),
            entries,
            total,
            budget: pipeline::budget(upload.options.memory_budget, upload.options.chunk),
            shared: None,
            refusal,
        })
    }

    /// Hash each local file once for all hosts (worth it with more than
    /// one host; [`Executor::upload`] decides).
    fn hash_once(&mut self) {
        self.shared = Some(SharedDigests::default());
    }

    /// The SHA-256 of a local file: the run's shared digest, or hashed now.
    async fn local_digest(
        &self,
        e: &LocalEntry,
        cancel: Option<&Cancel>,
    ) -> Result<String, Failure> {
        let digest = match &self.shared {
            Some(shared) => shared.of(&e.path, cancel).await,
            None => hash::local_in_background(e.path.clone(), None, cancel.cloned())
                .await
                .map(|(hasher, _)| hash::finish(hasher))
                .map_err(|err| err.to_string()),
        };
        digest.map_err(|err| {
            Failure::new(ErrorKind::Transfer, format!("{}: {err}", e.path.display()))
        })
    }
}

impl Executor {
    /// Uploads `upload.sources` to `upload.destination` on every host
    /// `selector` selects; one result per host. See [`crate::ops::transfer`]
    /// for the guarantees.
    ///
    /// # Errors
    ///
    /// Before any host is contacted: a missing source, a directory without
    /// `recursive`, a selector that selects nothing, or an audit log that
    /// cannot record the run.
    pub async fn upload(
        &self,
        ctx: &RunContext,
        targets: impl Into<Targets<'_>>,
        upload: &Upload,
    ) -> Result<TransferReport, Error> {
        let selection = self.resolve(targets.into())?;
        let hosts = selection.hosts().to_vec();
        let at_once = hosts
            .len()
            .min(
                ctx.parallel
                    .unwrap_or(self.config().remote_execution.max_parallel),
            )
            .max(1);
        let mut upload = upload.clone();
        upload.options.chunk = chunk_for(&upload.options, at_once);
        let mut plan = UploadPlan::new(&upload).map_err(Error::Invalid)?;
        if hosts.len() > 1 {
            plan.hash_once();
        }
        self.run(ctx, hosts, plan).await
    }
}

/// The refusal of the first entry that would get setuid/setgid/sticky
/// bits: a file's mode (`mode`, else its local mode), a directory's
/// local mode.
fn special_mode_refusal(upload: &Upload, entries: &[LocalEntry]) -> Option<Failure> {
    entries.iter().find_map(|e| {
        let mode = match e.kind {
            EntryKind::File => upload.mode.unwrap_or(e.mode),
            EntryKind::Dir => e.mode,
            EntryKind::Symlink => return None,
        };
        (mode & scope::SPECIAL_MODE_BITS != 0)
            .then(|| scope::special_mode(&e.path.display().to_string(), mode))
    })
}

/// Bytes per write request when `at_once` hosts upload together: the
/// option, made smaller when that many hosts' requests would not fit the
/// memory budget, so that each host still has one in flight (never under
/// 32 KiB). russh keeps each connection's encrypted output buffer as large
/// as the largest request it carried, so this bounds those buffers too:
/// a thousand hosts at 255 KiB each held ~360 MB of them.
fn chunk_for(options: &super::Options, at_once: usize) -> usize {
    const FLOOR: usize = 32 * 1024;
    let fair = options.memory_budget / at_once.max(1) / 4096 * 4096;
    options.chunk.min(fair.max(FLOOR))
}

impl Operation for UploadPlan {
    type Detail = TransferResult;
    type Details = NoDetails;

    fn op(&self) -> Op {
        Op::Upload
    }

    fn secrets(&self) -> Vec<String> {
        self.upload.options.secrets()
    }

    /// The sources, then the destination; the sudo target.
    fn describe(&self, record: Record) -> Record {
        let upload = &self.upload;
        let record = record.paths(
            upload
                .sources
                .iter()
                .map(|p| p.display().to_string())
                .chain([upload.destination.clone()]),
        );
        upload.options.describe(record)
    }

    async fn host(
        &self,
        host: &mut HostRun<'_>,
        detail: &mut TransferResult,
    ) -> Result<(), Failure> {
        if let Some(refusal) = &self.refusal {
            return Err(refusal.clone());
        }
        if let Some(observer) = host.observer() {
            observer.expect(host.name, self.total);
        }
        let name = host.name;
        super::on_host(host, detail, |conn, watch| async move {
            let mut files = Vec::new();
            let result = run(&conn, self, name, &watch, &mut files).await;
            (files, result)
        })
        .await
    }
}

/// Sends every entry of `plan` to one host.
async fn run(
    conn: &Connection,
    plan: &UploadPlan,
    host: &str,
    watch: &Watch,
    files: &mut Vec<FileOutcome>,
) -> Result<(), Failure> {
    let options = &plan.upload.options;
    let access = Access::prepare(conn, options.sudo.as_ref()).await?;
    let sftp = Sftp::open(conn, &access, options).await?;
    let dest = names::remote_path(&plan.upload.destination);
    if let Some(scope) = &options.scope {
        // Nothing about a destination outside the scope is looked at (its
        // existence, its type), not even to word the refusal.
        scope::check_destination(&sftp, scope, &dest).await?;
    }
    let into = resolve(&sftp, plan, &dest).await?;
    let mut me = HostUpload {
        conn,
        access,
        plan,
        options,
        watch,
        host,
        sftp,
        extra: Vec::new(),
        extra_tried: false,
    };
    for entry in &plan.entries {
        let remote = remote_for(&dest, into, &entry.rel);
        let result = match me.place(entry, &remote).await {
            Ok(target) => match entry.kind {
                EntryKind::File => me.file(entry, &target).await,
                EntryKind::Dir => me.dir(entry, &target).await,
                EntryKind::Symlink => me.symlink(entry, &target).await,
            },
            Err(failure) => Err(failure),
        };
        match result {
            Ok(mut done) => {
                done.remote = remote;
                files.push(done);
            }
            Err(failure) => {
                let fatal = matches!(failure.kind, ErrorKind::Io | ErrorKind::Cancelled);
                files.push(FileOutcome {
                    kind: entry.kind,
                    local: entry.path.clone(),
                    remote,
                    size: entry.size,
                    bytes: 0,
                    sha256: None,
                    status: TransferStatus::Failed,
                    error: Some(failure.clone()),
                });
                if fatal {
                    return Err(failure);
                }
            }
        }
    }
    Ok(())
}

/// Where an entry goes: into the destination directory (`into`) under its
/// own name, or (one source, destination not a directory) as the
/// destination itself.
fn remote_for(dest: &str, into: bool, rel: &[String]) -> String {
    let below = if into {
        rel.join("/")
    } else {
        rel.get(1..).unwrap_or_default().join("/")
    };
    if below.is_empty() {
        dest.trim_end_matches('/').to_owned()
    } else {
        names::join(dest, &below)
    }
}

/// Decides whether the destination is a directory to copy into (as `cp`
/// does), creating it or its parent with `--mkdir`.
async fn resolve(sftp: &Sftp, plan: &UploadPlan, dest: &str) -> Result<bool, Failure> {
    let upload = &plan.upload;
    let must_be_dir = upload.sources.len() > 1 || dest.ends_with('/');
    let bad = |message: String| Err(Failure::new(ErrorKind::Transfer, message));
    match sftp.stat(dest).await? {
        Some(a) if a.permissions.unwrap_or(0) & S_IFMT == S_IFDIR => Ok(true),
        Some(_) if must_be_dir => bad(format!("{dest} exists and is not a directory")),
        Some(_)
            if plan
                .entries
                .first()
                .is_some_and(|e| e.kind == EntryKind::Dir) =>
        {
            bad(format!(
                "{dest} exists and is not a directory; cannot copy a directory over it"
            ))
        }
        Some(_) => Ok(false),
        None if must_be_dir => {
            if upload.mkdir {
                mkdir_all(sftp, plan, dest).await?;
                Ok(true)
            } else {
                bad(format!(
                    "{dest}: no such directory on the host (add --mkdir to create it)"
                ))
            }
        }
        None => {
            let (parent, _) = names::split(dest);
            if upload.mkdir {
                mkdir_all(sftp, plan, &parent).await?;
            } else if sftp.stat(&parent).await?.is_none() {
                return bad(format!(
                    "{parent}: no such directory on the host (add --mkdir to create it)"
                ));
            }
            Ok(false)
        }
    }
}

/// `mkdir -p`, under the transfer's scope when it has one.
async fn mkdir_all(sftp: &Sftp, plan: &UploadPlan, path: &str) -> Result<(), Failure> {
    match &plan.upload.options.scope {
        Some(scope) => scope::mkdir_all(sftp, scope, path).await,
        None => sftp.mkdir_all(path).await,
    }
}

/// One host's upload in progress.
struct HostUpload<'a> {
    conn: &'a Connection,
    /// Whose files: the login user's, or sudo's target user's.
    access: Access,
    plan: &'a UploadPlan,
    options: &'a Options,
    /// The run's cancel signal and observer.
    watch: &'a Watch,
    host: &'a str,
    /// The main SFTP session: metadata, renames, and the first channel of
    /// every file's data.
    sftp: Sftp,
    /// Extra SFTP sessions for large files, opened on first need.
    extra: Vec<Sftp>,
    /// Whether extra sessions were tried already.
    extra_tried: bool,
}

impl HostUpload<'_> {
    /// Where entry `e` is written for the requested path `remote`: that
    /// path, or under a scope, its real directory on the host and its name
    /// (see `scope.rs`), checked.
    async fn place(&self, e: &LocalEntry, remote: &str) -> Result<String, Failure> {
        let Some(scope) = &self.options.scope else {
            return Ok(remote.to_owned());
        };
        let (real_dir, name) = scope::place_for_write(&self.sftp, scope, remote, e.kind).await?;
        if e.kind == EntryKind::Symlink
            && !scope::link_allowed(scope, &real_dir, e.link.as_deref().unwrap_or_default())
        {
            return Err(Failure::refused(
                ErrorKind::Denied,
                format!(
                    "{remote}: the symlink points outside the paths this transfer may write \
                     (to {:?}); not created",
                    e.link.as_deref().unwrap_or_default()
                ),
            ));
        }
        Ok(names::join(&real_dir, &name))
    }

    /// Under a scope, checks that the temp file is still where it was
    /// written (see [`scope::confirm_temp`]) just before the rename.
    async fn confirm(&self, temp: &str, remote: &str) -> Result<(), Failure> {
        if self.options.scope.is_none() {
            return Ok(());
        }
        let (real_dir, _) = names::split(remote);
        scope::confirm_temp(&self.sftp, &real_dir, temp, remote).await
    }

    async fn file(&mut self, e: &LocalEntry, remote: &str) -> Result<FileOutcome, Failure> {
        let mut out = FileOutcome {
            kind: EntryKind::File,
            local: e.path.clone(),
            remote: remote.to_owned(),
            size: e.size,
            bytes: 0,
            sha256: None,
            status: TransferStatus::Written,
            error: None,
        };
        if self.options.skip_identical
            && let Some(digest) = self.identical(e, remote).await?
        {
            self.advance(e.size);
            out.status = TransferStatus::Unchanged;
            out.sha256 = Some(digest);
            return Ok(out);
        }
        let (dir, name) = names::split(remote);
        let usual = names::join(&dir, &names::temp_name(&name, self.host));
        let (start, hasher) = self.resume_point(e, &usual).await?;
        if start > 0 {
            self.advance(start);
        }
        let claimed = if self.options.resume && !(self.options.scope.is_some() && start == 0) {
            if self.options.scope.is_some() {
                self.reopen_checked(&usual).await
            } else {
                let mut flags = OpenFlags::WRITE | OpenFlags::CREATE;
                if start == 0 {
                    flags |= OpenFlags::TRUNCATE;
                }
                let handle = self.sftp.open_file(&usual, flags, 0o600).await;
                handle.map(|h| (usual, h))
            }
        } else {
            self.claim_temp(&dir, &name, usual).await
        };
        let (temp, handle) = claimed.map_err(|mut failure| {
            failure.message = format!("{remote}: {}", failure.message);
            failure
        })?;
        let sent = match self.send(e, remote, &temp, &handle, start, hasher).await {
            Ok(sent) => sent,
            Err(failure) => {
                self.discard(&temp).await;
                return Err(failure);
            }
        };
        out.bytes = sent.1;
        let digest = sent.0;
        if self.options.verify && !sent.2 {
            let checked = super::unless_cancelled(
                self.watch,
                || interrupted(remote),
                self.remote_digest(&temp, e.size),
            );
            match checked.await {
                Ok(theirs) if theirs == digest => {}
                Ok(theirs) => {
                    // The temp file is wrong: resuming from it is pointless.
                    let _ = self.sftp.remove(&temp).await;
                    let theirs = if self.options.scope.is_some() {
                        // What was hashed may not be the temp file (a
                        // symlink swapped in): its digest is not shown.
                        "a different digest"
                    } else {
                        theirs.as_str()
                    };
                    return Err(mismatch(remote, &digest, theirs));
                }
                Err(failure) => {
                    self.discard(&temp).await;
                    return Err(failure);
                }
            }
        }
        // The last moment a Ctrl-C can still keep the old file.
        if self.watch.is_cancelled() {
            self.discard(&temp).await;
            return Err(interrupted(remote));
        }
        self.confirm(&temp, remote).await?;
        if let Err(failure) = self.sftp.posix_rename(&temp, remote).await {
            self.discard(&temp).await;
            return Err(failure);
        }
        out.sha256 = Some(digest);
        Ok(out)
    }

    /// Opens an earlier run's temp file `temp` to resume it, under a scope:
    /// never created or truncated through the path (a symlink put there
    /// would lead outside), and the handle must be the regular file `lstat`
    /// found.
    async fn reopen_checked(&self, temp: &str) -> Result<(String, String), Failure> {
        let before = self.sftp.lstat(temp).await?.ok_or_else(|| {
            Failure::new(
                ErrorKind::Transfer,
                format!("{temp}: the temp file went missing"),
            )
        })?;
        let handle = self.sftp.open_file(temp, OpenFlags::WRITE, 0o600).await?;
        if let Err(failure) = scope::confirm_open(&self.sftp, &handle, temp, &before, temp).await {
            let _ = self.sftp.close(&handle, temp).await;
            return Err(failure);
        }
        Ok((temp.to_owned(), handle))
    }

    /// Creates this upload's temp file, exclusively, and opens it: under
    /// the usual name (`usual`) when that is free, or is a leftover no
    /// process on the host has open (a lost connection's; it is replaced);
    /// under a name of this run's own when another upload to the same
    /// destination is writing it. So two runs never write one temp file.
    async fn claim_temp(
        &self,
        dir: &str,
        name: &str,
        usual: String,
    ) -> Result<(String, String), Failure> {
        let exclusive = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::EXCLUDE;
        let first = match self.sftp.open_file(&usual, exclusive, 0o600).await {
            Ok(handle) => return Ok((usual, handle)),
            Err(failure) => failure,
        };
        if self.sftp.lstat(&usual).await?.is_none() {
            return Err(first);
        }
        if !self.open_on_host(&usual).await {
            self.sftp.remove(&usual).await?;
            if let Ok(handle) = self.sftp.open_file(&usual, exclusive, 0o600).await {
                return Ok((usual, handle));
            }
        }
        let own = names::join(dir, &names::unique_temp_name(name, self.host));
        tracing::info!(
            host = self.host,
            temp = usual,
            own,
            "another upload to the same destination is under way; using a temp file of our own"
        );
        let handle = self.sftp.open_file(&own, exclusive, 0o600).await?;
        Ok((own, handle))
    }

    /// Whether some process on the host has `path` open (Linux: one of the
    /// `/proc/PID/fd` links the user can see is that file). When that
    /// cannot be told, the answer is yes: the caller then stays clear.
    async fn open_on_host(&self, path: &str) -> bool {
        if self.conn.free_sessions() == 0 {
            return true;
        }
        let command = format!(
            "t={}; for f in /proc/[0-9]*/fd/*; do [ \"$f\" -ef \"$t\" ] && {{ echo open; exit 0; }}; done; echo closed",
            crate::quote::quote(path)
        );
        match self.access.run_helper(self.conn, &command, &[]).await {
            Ok((_, out)) => String::from_utf8_lossy(&out).trim() != "closed",
            Err(_) => true,
        }
    }

    /// The file's digest when the destination already has the same size
    /// and SHA-256.
    async fn identical(&self, e: &LocalEntry, remote: &str) -> Result<Option<String>, Failure> {
        let Some(attrs) = self.sftp.lstat(remote).await? else {
            return Ok(None);
        };
        if attrs.permissions.unwrap_or(0) & S_IFMT != S_IFREG || attrs.size != Some(e.size) {
            return Ok(None);
        }
        let (ours, theirs) = tokio::join!(
            self.plan.local_digest(e, self.watch.cancel.as_ref()),
            self.remote_digest(remote, e.size)
        );
        let ours = ours?;
        Ok((ours == theirs?).then_some(ours))
    }

    /// Where to start: after what an earlier run's temp file holds, when
    /// `--resume` is on and that prefix matches the local file by hash.
    async fn resume_point(&self, e: &LocalEntry, temp: &str) -> Result<(u64, Sha256), Failure> {
        if !self.options.resume {
            return Ok((0, Sha256::new()));
        }
        let held = match self.sftp.lstat(temp).await? {
            Some(a) if a.permissions.unwrap_or(0) & S_IFMT == S_IFREG => a.size.unwrap_or(0),
            _ => 0,
        };
        if held == 0 || held > e.size {
            return Ok((0, Sha256::new()));
        }
        let ours = hash::local_in_background(e.path.clone(), Some(held), None)
            .await
            .map_err(|err| local_failure(&e.path, &err))?;
        let theirs = self.remote_digest(temp, held).await?;
        if hash::finish(ours.0.clone()) == theirs {
            tracing::info!(host = self.host, temp, held, "resuming");
            Ok((held, ours.0))
        } else {
            tracing::info!(
                host = self.host,
                temp,
                "the temp file does not match; starting over"
            );
            Ok((0, Sha256::new()))
        }
    }

    /// Streams the file into the open temp file, then flushes it, sets its
    /// mode (and mtime) and closes it, checking every step. Returns the
    /// digest, the bytes sent, and whether the host already verified every
    /// byte (segment by segment).
    async fn send(
        &mut self,
        e: &LocalEntry,
        remote: &str,
        temp: &str,
        handle: &str,
        start: u64,
        hasher: Sha256,
    ) -> Result<(String, u64, bool), Failure> {
        let mut targets = vec![Target {
            raw: self.sftp.raw.clone(),
            handle: handle.to_owned(),
            budget: self.plan.budget.clone(),
        }];
        let mut extra_handles = Vec::new();
        // With --resume, one channel: its writes land in order, so a cut
        // leaves a temp file that is a clean prefix to continue from.
        // Under a scope, one channel too: an extra channel opens the temp
        // file again by its path, which a symlink swapped in could divert.
        if !self.options.resume
            && self.options.scope.is_none()
            && e.size.saturating_sub(start) > self.options.multi_channel_threshold
        {
            self.open_extra().await;
            for sftp in &self.extra {
                if let Ok(h) = sftp.open_file(temp, OpenFlags::WRITE, 0o600).await {
                    targets.push(Target {
                        raw: sftp.raw.clone(),
                        handle: h.clone(),
                        budget: self.plan.budget.clone(),
                    });
                    extra_handles.push((sftp, h));
                }
            }
        }
        let chunk = extra_handles
            .iter()
            .map(|(s, _)| s.chunk)
            .fold(self.sftp.chunk, usize::min);
        // A large file is hashed on the host while it is being written (each
        // stretch once acknowledged), so verifying costs little extra time.
        let segment_len = chunk as u64 * SEGMENT_CHUNKS;
        let mut streaming = None;
        if self.options.verify
            && self.options.verify_by == VerifyBy::Auto
            && start == 0
            && e.size > segment_len
            && self.conn.free_sessions() > 0
        {
            match hash::Streaming::start(self.conn, &self.access, temp).await {
                Ok(hasher) => streaming = Some(hasher),
                Err(failure) => tracing::debug!("no streaming hash: {}", failure.message),
            }
        }
        let (segments, ready) = match streaming {
            Some(_) => {
                let (segments, ready) = pipeline::Segments::new(segment_len, e.size);
                (Some(segments), Some(ready))
            }
            None => (None, None),
        };
        // With several hosts, the file is hashed once for all of them
        // (not while sending); a resumed upload goes on with its own hasher.
        let hasher = match &self.plan.shared {
            Some(shared) if start == 0 => {
                // Hashed alongside the sending, ready (or nearly) when the
                // host's copy is.
                shared.start(&e.path, self.watch.cancel.as_ref());
                None
            }
            _ => Some(hasher),
        };
        let progress = self.progress();
        let sending = pipeline::upload(
            &e.path,
            start,
            hasher,
            &targets,
            chunk,
            self.options.writes_in_flight,
            Arc::new(move |_, n| progress(n)),
            segments,
            self.watch.cancel.as_ref(),
        );
        let (sent, theirs) = match (streaming, ready) {
            (Some(mut streaming), Some(mut ready)) => {
                let follow = async {
                    let mut fed = Ok(());
                    while let Some(segment) = ready.recv().await {
                        if fed.is_ok() {
                            fed = streaming.feed(segment.len).await;
                        }
                    }
                    fed
                };
                let (sent, fed) = tokio::join!(sending, follow);
                let theirs = match (&sent, fed) {
                    (Ok(_), Ok(())) => Some(streaming.finish().await),
                    (Ok(_), Err(failure)) => {
                        streaming.abort().await;
                        Some(Err(failure))
                    }
                    (Err(_), _) => {
                        streaming.abort().await;
                        None
                    }
                };
                (sent, theirs)
            }
            _ => (sending.await, None),
        };
        let mut closed = Ok(());
        for (sftp, h) in extra_handles {
            closed = closed.and(sftp.close(&h, temp).await);
        }
        let finished = match (sent, closed) {
            (Err(err), _) => Err(self.pipe_failure(err, e, remote, temp).await),
            (Ok(_), Err(failure)) => Err(failure),
            (Ok(sent), Ok(())) if sent.end != e.size => Err(Failure::new(
                ErrorKind::Transfer,
                format!(
                    "{}: the local file changed size while being sent ({} bytes, now {}); \
                     the destination was not replaced",
                    e.path.display(),
                    e.size,
                    sent.end
                ),
            )),
            (Ok(sent), Ok(())) => {
                let digest = match sent.hasher {
                    Some(hasher) => Ok(hash::finish(hasher)),
                    None => self.plan.local_digest(e, self.watch.cancel.as_ref()).await,
                };
                match digest {
                    Ok(digest) => {
                        let verified = streaming_verified(theirs, &digest, temp);
                        self.finish(e, remote, temp, handle)
                            .await
                            .map(|()| (digest, sent.end - start, verified))
                    }
                    Err(failure) => Err(failure),
                }
            }
        };
        if finished.is_err() {
            let _ = self.sftp.close(handle, temp).await;
        }
        finished
    }

    /// fsync, mode and mtime, close: each checked.
    async fn finish(
        &self,
        e: &LocalEntry,
        remote: &str,
        temp: &str,
        handle: &str,
    ) -> Result<(), Failure> {
        if let Err(failure) = self.sftp.fsync(handle, temp).await {
            return Err(self.full_hint(failure, remote, temp, e.size).await);
        }
        let mode = self.plan.upload.mode.unwrap_or(e.mode);
        let mtime = self.plan.upload.preserve_times.then_some(e.mtime);
        self.sftp.set_attrs(handle, temp, mode, mtime).await?;
        match self.sftp.close(handle, temp).await {
            Ok(()) => Ok(()),
            Err(failure) => Err(self.full_hint(failure, remote, temp, e.size).await),
        }
    }

    /// A server's generic failure while writing, on a filesystem without
    /// room for the file, is called what it is (OpenSSH's sftp-server sends
    /// plain "Failure" for ENOSPC).
    async fn full_hint(
        &self,
        mut failure: Failure,
        remote: &str,
        temp: &str,
        size: u64,
    ) -> Failure {
        if failure.kind == ErrorKind::Transfer
            && let Some(free) = self.sftp.free_bytes(temp).await
            && free < size
        {
            failure.message = format!(
                "writing {remote}: no space left on the host's filesystem \
                 ({free} bytes free, the file needs {size})"
            );
        }
        failure
            .message
            .push_str("; the destination was not replaced");
        failure
    }

    async fn dir(&self, e: &LocalEntry, remote: &str) -> Result<FileOutcome, Failure> {
        let mode = e.mode | 0o700;
        let created = self.sftp.mkdir(remote, mode).await?;
        if created {
            // mkdir's mode passes through the server's umask; set it exactly.
            let attrs = FileAttributes {
                permissions: Some(mode),
                ..FileAttributes::empty()
            };
            self.sftp
                .raw
                .setstat(remote, attrs)
                .await
                .map_err(|err| self.sftp.failure("setting the mode of", remote, &err))?;
        }
        Ok(FileOutcome {
            kind: EntryKind::Dir,
            local: e.path.clone(),
            remote: remote.to_owned(),
            size: 0,
            bytes: 0,
            sha256: None,
            status: if created {
                TransferStatus::Written
            } else {
                TransferStatus::Unchanged
            },
            error: None,
        })
    }

    async fn symlink(&self, e: &LocalEntry, remote: &str) -> Result<FileOutcome, Failure> {
        let target = e.link.clone().unwrap_or_default();
        let mut out = FileOutcome {
            kind: EntryKind::Symlink,
            local: e.path.clone(),
            remote: remote.to_owned(),
            size: 0,
            bytes: 0,
            sha256: None,
            status: TransferStatus::Written,
            error: None,
        };
        if let Some(a) = self.sftp.lstat(remote).await?
            && a.permissions.unwrap_or(0) & S_IFMT == S_IFLNK
            && self.sftp.readlink(remote).await? == target
        {
            out.status = TransferStatus::Unchanged;
            return Ok(out);
        }
        let (dir, name) = names::split(remote);
        let temp = names::join(&dir, &names::temp_name(&name, self.host));
        self.sftp.remove(&temp).await?;
        self.sftp.symlink(&temp, &target).await?;
        self.confirm(&temp, remote).await?;
        if let Err(failure) = self.sftp.posix_rename(&temp, remote).await {
            let _ = self.sftp.remove(&temp).await;
            return Err(failure);
        }
        Ok(out)
    }

    /// Opens the extra SFTP channels for large files, once per host,
    /// leaving one session slot free for the verification command.
    async fn open_extra(&mut self) {
        if self.extra_tried {
            return;
        }
        self.extra_tried = true;
        let want = self.options.channels.saturating_sub(1);
        for _ in 0..want {
            if self.conn.free_sessions() < 2 {
                break;
            }
            match Sftp::try_open(self.conn, &self.access, self.options).await {
                Some(sftp) => self.extra.push(sftp),
                None => break,
            }
        }
        tracing::debug!(
            host = self.host,
            channels = self.extra.len() + 1,
            "upload channels"
        );
    }

    /// The SHA-256 of a remote file of `size` bytes: a remote hash command
    /// for large files, reading it back otherwise (see the module docs).
    async fn remote_digest(&self, path: &str, size: u64) -> Result<String, Failure> {
        if self.options.verify_by == VerifyBy::Auto
            && size > READBACK_MAX
            && self.conn.free_sessions() > 0
            && let Some(digest) = hash::remote(self.conn, &self.access, path, None).await?
        {
            return Ok(digest);
        }
        read_back(
            &self.sftp,
            path,
            size,
            self.options,
            self.watch,
            &self.plan.budget,
            None,
        )
        .await
    }

    /// Removes the temp file after a failure, unless `--resume` keeps it
    /// for the next run.
    async fn discard(&self, temp: &str) {
        if self.options.resume {
            tracing::info!(host = self.host, temp, "keeping the temp file for --resume");
            return;
        }
        if let Err(failure) = self.sftp.remove(temp).await {
            tracing::warn!(host = self.host, temp, "{}", failure.message);
        }
    }

    fn progress(&self) -> Progress {
        let observer = self.watch.observer.clone();
        let host = self.host.to_owned();
        Arc::new(move |n| {
            if let Some(observer) = &observer {
                observer.advance(&host, n);
            }
        })
    }

    fn advance(&self, n: u64) {
        if let Some(observer) = &self.watch.observer {
            observer.advance(self.host, n);
        }
    }

    /// A failure of the data stream, naming the destination; a generic
    /// server failure on a nearly full filesystem is called what it is.
    async fn pipe_failure(
        &self,
        err: PipeError,
        e: &LocalEntry,
        remote: &str,
        temp: &str,
    ) -> Failure {
        match err {
            PipeError::Cancelled => interrupted(remote),
            PipeError::Local(err) => local_failure(&e.path, &err),
            PipeError::Remote(err) => {
                let failure = self.sftp.failure("writing", remote, &err);
                self.full_hint(failure, remote, temp, e.size).await
            }
        }
    }
}

/// Reads a remote file back over SFTP and hashes it: verification when the
/// host has no hash tool, and for small files.
///
/// With `checked` (a download under a scope: the file's `lstat` when its
/// path was checked), the file opened must be that one
/// ([`scope::confirm_open`]), not what a symlink swapped in leads to.
pub(super) async fn read_back(
    sftp: &Sftp,
    path: &str,
    size: u64,
    options: &Options,
    watch: &Watch,
    budget: &pipeline::Budget,
    checked: Option<&FileAttributes>,
) -> Result<String, Failure> {
    let handle = sftp.open_file(path, OpenFlags::READ, 0).await?;
    if let Some(before) = checked
        && let Err(failure) = scope::confirm_open(sftp, &handle, path, before, path).await
    {
        let _ = sftp.close(&handle, path).await;
        return Err(failure);
    }
    let target = Target {
        raw: sftp.raw.clone(),
        handle: handle.clone(),
        budget: budget.clone(),
    };
    let read = pipeline::download(
        &target,
        0,
        size,
        None,
        Sha256::new(),
        sftp.chunk,
        options.reads_in_flight,
        Arc::new(|_| {}),
        watch.cancel.as_ref(),
    )
    .await;
    let closed = sftp.close(&handle, path).await;
    match read {
        Ok(received) => closed.map(|()| hash::finish(received.hasher)),
        Err(PipeError::Remote(err)) => Err(sftp.failure("reading back", path, &err)),
        Err(PipeError::Cancelled) => Err(Failure::new(
            ErrorKind::Cancelled,
            format!("{path}: interrupted"),
        )),
        Err(PipeError::Local(err)) => Err(Failure::new(ErrorKind::Transfer, err.to_string())),
    }
}

/// Whether the host's streaming hash (`theirs`) verified every byte. Only
/// a digest equal to ours counts; a differing one (a `head` that reads
/// ahead would cause this) or a failed hashing command is double-checked
/// by the caller with a plain hash of the whole file.
fn streaming_verified(
    theirs: Option<Result<Option<String>, Failure>>,
    digest: &str,
    temp: &str,
) -> bool {
    match theirs {
        Some(Ok(Some(theirs))) if theirs == digest => true,
        Some(Ok(Some(theirs))) => {
            tracing::warn!(temp, %theirs, "the streaming hash differs; checking the whole file");
            false
        }
        Some(Err(failure)) => {
            tracing::warn!(
                temp,
                "the streaming hash failed ({}); checking the whole file",
                failure.message
            );
            false
        }
        Some(Ok(None)) | None => false,
    }
}

/// The failure of a file the run was interrupted during.
fn interrupted(remote: &str) -> Failure {
    Failure::new(
        ErrorKind::Cancelled,
        format!("{remote}: interrupted; the destination was not replaced"),
    )
}

fn mismatch(remote: &str, ours: &str, theirs: &str) -> Failure {
    Failure::new(
        ErrorKind::Transfer,
        format!(
            "{remote}: checksum mismatch after writing (sent {ours}, the host has {theirs}); \
             the destination was not replaced"
        ),
    )
}

fn local_failure(path: &std::path::Path, err: &std::io::Error) -> Failure {
    Failure::new(
        ErrorKind::Transfer,
        format!("reading {}: {err}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_hosts_at_once_share_the_budget_with_smaller_requests() {
        let options = super::super::Options::default();
        assert_eq!(chunk_for(&options, 1), options.chunk);
        assert_eq!(chunk_for(&options, 64), options.chunk);
        assert_eq!(chunk_for(&options, 1000), 65536);
        assert_eq!(chunk_for(&options, 100_000), 32 * 1024);
    }

    #[test]
    fn destinations_follow_cp() {
        let rel = |parts: &[&str]| parts.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(remote_for("/srv/", true, &rel(&["a.txt"])), "/srv/a.txt");
        assert_eq!(remote_for("/srv", true, &rel(&["d", "x"])), "/srv/d/x");
        assert_eq!(
            remote_for("/srv/b.txt", false, &rel(&["a.txt"])),
            "/srv/b.txt"
        );
        assert_eq!(remote_for("/srv/new", false, &rel(&["d"])), "/srv/new");
        assert_eq!(
            remote_for("/srv/new", false, &rel(&["d", "x"])),
            "/srv/new/x"
        );
    }
}
