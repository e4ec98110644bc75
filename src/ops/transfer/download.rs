//! `download`: remote files from every selected host into
//! `LOCAL_DIR/<host>/`, one host per task.
//!
//! Everything a host sends is untrusted: names from its directory listings
//! are checked before they become local names, symlinks must stay inside
//! the host's directory, and nothing is written through a local symlink.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh_sftp::protocol::{FileAttributes, OpenFlags};
use sha2::{Digest as _, Sha256};

use crate::audit::{Op, Record};
use crate::failure::{ErrorKind, Failure};
use crate::run::report::NoDetails;
use crate::run::runner::{HostRun, Operation};
use crate::run::{Error, Executor, RunContext};
use crate::targets::Targets;
use crate::transport::connection::Connection;

use super::access::Access;
use super::local;
use super::pipeline::{self, PipeError, Progress, Target};
use super::scope;
use super::sftp::{S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, Sftp};
use super::upload::read_back;
use super::{
    Download, EntryKind, FileOutcome, Options, READBACK_MAX, TransferReport, TransferResult,
    TransferStatus, VerifyBy, Watch, hash, names,
};

/// A download ready to run on hosts.
#[derive(Debug)]
struct DownloadPlan {
    /// The request.
    download: Download,
    /// The memory budget shared by every host of the run.
    budget: pipeline::Budget,
}

impl DownloadPlan {
    /// Checks the request: every REMOTE must end in a usable name (`..`,
    /// `/` and the like are refused: they name no file).
    fn new(download: &Download) -> Result<DownloadPlan, String> {
        if download.sources.is_empty() {
            return Err("nothing to download: name at least one remote path".to_owned());
        }
        if download.local_dir.as_os_str().is_empty() {
            return Err("the local directory is empty".to_owned());
        }
        for source in &download.sources {
            let (_, name) = names::split(&names::remote_path(source));
            names::check_entry_name(&name).map_err(|why| {
                format!("REMOTE `{source}` ends in {why}: name a file or directory")
            })?;
        }
        Ok(DownloadPlan {
            download: download.clone(),
            budget: pipeline::budget(download.options.memory_budget, download.options.chunk),
        })
    }
}

impl Executor {
    /// Downloads `download.sources` from every host `targets` selects
    /// into `download.local_dir/<host>/`; one result per host. See
    /// [`crate::ops::transfer`].
    ///
    /// # Errors
    ///
    /// Before any host is contacted: a bad request, `flat` with more than
    /// one host, a local directory that cannot be created, a selector that
    /// selects nothing, or an audit log that cannot record the run.
    pub async fn download(
        &self,
        ctx: &RunContext,
        targets: impl Into<Targets<'_>>,
        download: &Download,
    ) -> Result<TransferReport, Error> {
        let plan = DownloadPlan::new(download).map_err(Error::Invalid)?;
        let selection = self.resolve(targets.into())?;
        let hosts = selection.hosts().to_vec();
        if download.flat && hosts.len() != 1 {
            return Err(Error::Invalid(format!(
                "--flat needs exactly one host, but `{}` selects {}; without --flat \
                 each host's files go to LOCAL_DIR/<host>/",
                selection.selector(),
                hosts.len()
            )));
        }
        std::fs::create_dir_all(&download.local_dir).map_err(|e| {
            Error::Invalid(format!(
                "cannot create the local directory {}: {e}",
                download.local_dir.display()
            ))
        })?;
        self.run(ctx, hosts, plan).await
    }
}

impl Operation for DownloadPlan {
    type Detail = TransferResult;
    type Details = NoDetails;

    fn op(&self) -> Op {
        Op::Download
    }

    fn secrets(&self) -> Vec<String> {
        self.download.options.secrets()
    }

    /// The sources, then the local directory; the sudo target.
    fn describe(&self, record: Record) -> Record {
        let download = &self.download;
        let record = record.paths(
            download
                .sources
                .iter()
                .cloned()
                .chain([download.local_dir.display().to_string()]),
        );
        download.options.describe(record)
    }

    async fn host(
        &self,
        host: &mut HostRun<'_>,
        detail: &mut TransferResult,
    ) -> Result<(), Failure> {
        let name = host.name;
        super::on_host(host, detail, |conn, watch| async move {
            let mut files = Vec::new();
            let result = run(&conn, self, name, &watch, &mut files).await;
            (files, result)
        })
        .await
    }
}

async fn run(
    conn: &Connection,
    plan: &DownloadPlan,
    host: &str,
    watch: &Watch,
    files: &mut Vec<FileOutcome>,
) -> Result<(), Failure> {
    let download = &plan.download;
    let options = &download.options;
    let root = if download.flat {
        download.local_dir.clone()
    } else {
        names::check_entry_name(host).map_err(|why| {
            Failure::new(
                ErrorKind::Transfer,
                format!("the host name cannot be a directory name: {why}"),
            )
        })?;
        local::real_dir(&download.local_dir, &[host.to_owned()])
            .map_err(|e| local_failure(&download.local_dir.join(host), &e))?
    };
    let access = Access::prepare(conn, options.sudo.as_ref()).await?;
    let sftp = Sftp::open(conn, &access, options).await?;
    let me = HostDownload {
        conn,
        access,
        budget: plan.budget.clone(),
        options,
        watch,
        host,
        preserve: download.preserve,
        root,
        sftp,
    };
    for source in &download.sources {
        let requested = names::remote_path(source);
        let (_, name) = names::split(&requested);
        let rel = vec![name];
        let found = match &options.scope {
            Some(scope) => scope::place_for_read(&me.sftp, scope, &requested).await,
            None => me
                .sftp
                .stat(&requested)
                .await
                .map(|attrs| attrs.map(|attrs| (requested.clone(), attrs))),
        };
        let remote = requested;
        let (real, attrs) = match found {
            Ok(Some(found)) => found,
            Ok(None) => {
                let missing = Failure::not_found(
                    ErrorKind::Transfer,
                    format!("{remote}: no such file or directory"),
                );
                me.record(files, EntryKind::File, &rel, &remote, Err(missing))?;
                continue;
            }
            Err(failure) => {
                me.record(files, EntryKind::File, &rel, &remote, Err(failure))?;
                continue;
            }
        };
        match attrs.permissions.unwrap_or(0) & S_IFMT {
            S_IFREG => {
                let done = me.file(&real, &rel, &attrs).await.map(|mut done| {
                    done.remote.clone_from(&remote);
                    done
                });
                me.record(files, EntryKind::File, &rel, &remote, done)?;
            }
            S_IFDIR if download.recursive => me.tree(&real, &remote, rel, files).await?,
            S_IFDIR => {
                let refusal = Failure::refused(
                    ErrorKind::Transfer,
                    format!("{remote}: is a directory (use -r to copy directories)"),
                );
                me.record(files, EntryKind::Dir, &rel, &remote, Err(refusal))?;
            }
            _ => {
                let refusal = Failure::refused(
                    ErrorKind::Transfer,
                    format!("{remote}: not a regular file or directory"),
                );
                me.record(files, EntryKind::File, &rel, &remote, Err(refusal))?;
            }
        }
    }
    Ok(())
}

/// One host's download in progress.
struct HostDownload<'a> {
    conn: &'a Connection,
    /// Whose files: the login user's, or sudo's target user's.
    access: Access,
    budget: pipeline::Budget,
    options: &'a Options,
    /// The run's cancel signal and observer.
    watch: &'a Watch,
    host: &'a str,
    preserve: bool,
    /// `LOCAL_DIR/<host>` (or `LOCAL_DIR` with `--flat`); nothing is
    /// written outside it.
    root: PathBuf,
    sftp: Sftp,
}

impl HostDownload<'_> {
    /// The local path of `rel` below the root.
    fn local_path(&self, rel: &[String]) -> PathBuf {
        rel.iter().fold(self.root.clone(), |p, part| p.join(part))
    }

    /// Records an entry's result; returns the failure when it ends the
    /// host's run (the connection is gone, or Ctrl-C).
    fn record(
        &self,
        files: &mut Vec<FileOutcome>,
        kind: EntryKind,
        rel: &[String],
        remote: &str,
        result: Result<FileOutcome, Failure>,
    ) -> Result<(), Failure> {
        match result {
            Ok(done) => {
                files.push(done);
                Ok(())
            }
            Err(failure) => {
                files.push(FileOutcome {
                    kind,
                    local: self.local_path(rel),
                    remote: remote.to_owned(),
                    size: 0,
                    bytes: 0,
                    sha256: None,
                    status: TransferStatus::Failed,
                    error: Some(failure.clone()),
                });
                if matches!(failure.kind, ErrorKind::Io | ErrorKind::Cancelled) {
                    Err(failure)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// A directory and everything below it, depth first, names sorted.
    /// `top` is the path read (under a scope, the host's real path of the
    /// requested one, `shown`), and what the outcomes name below is built
    /// from `shown`: the report does not tell where a symlink led.
    async fn tree(
        &self,
        top: &str,
        shown: &str,
        top_rel: Vec<String>,
        files: &mut Vec<FileOutcome>,
    ) -> Result<(), Failure> {
        let mut stack = vec![(top.to_owned(), shown.to_owned(), top_rel)];
        while let Some((real, remote, rel)) = stack.pop() {
            let made = local::real_dir(&self.root, &rel)
                .map(|path| FileOutcome {
                    kind: EntryKind::Dir,
                    local: path,
                    remote: remote.clone(),
                    size: 0,
                    bytes: 0,
                    sha256: None,
                    status: TransferStatus::Written,
                    error: None,
                })
                .map_err(|e| local_failure(&self.local_path(&rel), &e));
            let ok = made.is_ok();
            self.record(files, EntryKind::Dir, &rel, &remote, made)?;
            if !ok {
                continue;
            }
            let mut entries = match self.sftp.read_dir(&real).await {
                Ok(entries) => entries,
                Err(failure) => {
                    if let Some(last) = files.last_mut() {
                        last.status = TransferStatus::Failed;
                        last.error = Some(failure.clone());
                    }
                    if failure.kind == ErrorKind::Io {
                        return Err(failure);
                    }
                    continue;
                }
            };
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut subdirs = Vec::new();
            for (name, attrs) in entries {
                if name == "." || name == ".." {
                    continue;
                }
                let child = names::join(&remote, &name);
                let child_real = names::join(&real, &name);
                let mut child_rel = rel.clone();
                if let Err(why) = names::check_entry_name(&name) {
                    let refusal = Failure::refused(
                        ErrorKind::Transfer,
                        format!("{remote}: refusing the entry {name:?} the host listed: {why}"),
                    );
                    self.record(files, EntryKind::File, &rel, &child, Err(refusal))?;
                    continue;
                }
                child_rel.push(name);
                let kind = attrs.permissions.unwrap_or(0) & S_IFMT;
                if let Some(scope) = &self.options.scope {
                    let admitted = if kind == S_IFDIR {
                        scope.allows_dir(&child_real)
                    } else {
                        scope.allows(&child_real)
                    };
                    if !admitted {
                        let refusal = scope::outside(&child, "read");
                        self.record(files, EntryKind::File, &child_rel, &child, Err(refusal))?;
                        continue;
                    }
                }
                let shown = |done: Result<FileOutcome, Failure>| {
                    done.map(|mut done| {
                        done.remote.clone_from(&child);
                        done
                    })
                };
                match kind {
                    S_IFDIR => subdirs.push((child_real, child, child_rel)),
                    S_IFREG => {
                        let done = shown(self.file(&child_real, &child_rel, &attrs).await);
                        self.record(files, EntryKind::File, &child_rel, &child, done)?;
                    }
                    S_IFLNK => {
                        let done = shown(self.link(&child_real, &child_rel).await);
                        self.record(files, EntryKind::Symlink, &child_rel, &child, done)?;
                    }
                    _ => {
                        let refusal = Failure::refused(
                            ErrorKind::Transfer,
                            format!("{child}: not a regular file, directory or symlink; skipped"),
                        );
                        self.record(files, EntryKind::File, &child_rel, &child, Err(refusal))?;
                    }
                }
            }
            stack.extend(subdirs.into_iter().rev());
        }
        Ok(())
    }

    /// The directory an entry goes into (a real directory below the root)
    /// and the entry's local name.
    fn place(&self, rel: &[String]) -> Result<(PathBuf, String), Failure> {
        let (name, dirs) = rel.split_last().ok_or_else(|| {
            Failure::new(ErrorKind::Transfer, "an entry without a name".to_owned())
        })?;
        let dir = local::real_dir(&self.root, dirs)
            .map_err(|e| local_failure(&self.local_path(dirs), &e))?;
        Ok((dir, name.clone()))
    }

    async fn link(&self, remote: &str, rel: &[String]) -> Result<FileOutcome, Failure> {
        let target = self.sftp.readlink(remote).await?;
        let depth = rel.len().saturating_sub(1);
        if !names::link_stays_inside(depth, &target) {
            return Err(Failure::new(
                ErrorKind::Transfer,
                format!(
                    "{remote}: refusing the symlink to {target:?}: it points outside {} \
                     (absolute, or climbs out with `..`)",
                    self.root.display()
                ),
            ));
        }
        let (dir, name) = self.place(rel)?;
        let dest = dir.join(&name);
        let mut out = FileOutcome {
            kind: EntryKind::Symlink,
            local: dest.clone(),
            remote: remote.to_owned(),
            size: 0,
            bytes: 0,
            sha256: None,
            status: TransferStatus::Written,
            error: None,
        };
        if std::fs::read_link(&dest).is_ok_and(|t| t.as_os_str() == target.as_str()) {
            out.status = TransferStatus::Unchanged;
            return Ok(out);
        }
        let temp = dir.join(names::temp_name(&name, self.host));
        local::symlink(&target, &temp, &dest).map_err(|e| local_failure(&dest, &e))?;
        Ok(out)
    }

    async fn file(
        &self,
        remote: &str,
        rel: &[String],
        attrs: &FileAttributes,
    ) -> Result<FileOutcome, Failure> {
        let (dir, name) = self.place(rel)?;
        let dest = dir.join(&name);
        let temp = dir.join(names::temp_name(&name, self.host));
        let size = attrs.size.unwrap_or(0);
        let perms = attrs.permissions.unwrap_or(0o644);
        let mode = if self.preserve {
            perms & 0o7777
        } else {
            perms & 0o755
        };
        let mtime = if self.preserve { attrs.mtime } else { None };
        self.expect(size);
        let mut out = FileOutcome {
            kind: EntryKind::File,
            local: dest.clone(),
            remote: remote.to_owned(),
            size,
            bytes: 0,
            sha256: None,
            status: TransferStatus::Written,
            error: None,
        };
        if self.options.skip_identical
            && let Some(digest) = self.identical(remote, &dest, size).await?
        {
            self.advance(size);
            out.status = TransferStatus::Unchanged;
            out.sha256 = Some(digest);
            return Ok(out);
        }
        let (start, hasher) = self.resume_point(remote, &temp, size).await?;
        if start > 0 {
            self.advance(start);
        }
        let file = local::open_temp(&temp, start).map_err(|e| local_failure(&temp, &e))?;
        let result = self.fetch(remote, attrs, file, start, size, hasher).await;
        let (file, digest, end) = match result {
            Ok(fetched) => fetched,
            Err(failure) => {
                self.discard(&temp);
                return Err(failure);
            }
        };
        // The last moment a Ctrl-C can still leave nothing written.
        if self.watch.is_cancelled() {
            self.discard(&temp);
            return Err(interrupted(remote));
        }
        let (temp2, dest2) = (temp.clone(), dest.clone());
        let committed =
            tokio::task::spawn_blocking(move || local::commit(file, &temp2, &dest2, mode, mtime))
                .await
                .map_err(|e| Failure::new(ErrorKind::Transfer, e.to_string()))
                .and_then(|r| r.map_err(|e| local_failure(&dest, &e)));
        if let Err(failure) = committed {
            self.discard(&temp);
            return Err(failure);
        }
        out.bytes = end - start;
        out.size = end;
        out.sha256 = Some(digest);
        Ok(out)
    }

    /// Streams the remote file into the temp file and verifies it: the
    /// remote hash runs on a second channel while the bytes flow.
    async fn fetch(
        &self,
        remote: &str,
        attrs: &FileAttributes,
        file: std::fs::File,
        start: u64,
        size: u64,
        hasher: Sha256,
    ) -> Result<(std::fs::File, String, u64), Failure> {
        let handle = self.sftp.open_file(remote, OpenFlags::READ, 0).await?;
        if self.options.scope.is_some()
            && let Err(failure) =
                scope::confirm_open(&self.sftp, &handle, remote, attrs, remote).await
        {
            let _ = self.sftp.close(&handle, remote).await;
            return Err(failure);
        }
        let target = Target {
            raw: self.sftp.raw.clone(),
            handle: handle.clone(),
            budget: self.budget.clone(),
        };
        let remote_hash = self.options.verify
            && self.options.verify_by == VerifyBy::Auto
            && size > READBACK_MAX
            && self.conn.free_sessions() > 0;
        let stream = pipeline::download(
            &target,
            start,
            size,
            Some(file),
            hasher,
            self.sftp.chunk,
            self.options.reads_in_flight,
            self.progress(),
            self.watch.cancel.as_ref(),
        );
        let (received, theirs) = if remote_hash {
            let hashed = super::unless_cancelled(
                self.watch,
                || interrupted(remote),
                hash::remote(self.conn, &self.access, remote, None),
            );
            let (received, theirs) = tokio::join!(stream, hashed);
            (received, Some(theirs))
        } else {
            (stream.await, None)
        };
        let closed = self.sftp.close(&handle, remote).await;
        let received = match received {
            Ok(received) => received,
            Err(PipeError::Cancelled) => return Err(interrupted(remote)),
            Err(PipeError::Local(e)) => return Err(local_failure(&self.root, &e)),
            Err(PipeError::Remote(e)) => return Err(self.sftp.failure("reading", remote, &e)),
        };
        closed?;
        let digest = hash::finish(received.hasher);
        let file = received
            .file
            .ok_or_else(|| Failure::new(ErrorKind::Transfer, "the local file went missing"))?;
        if self.options.verify {
            let theirs = match theirs {
                Some(Err(failure)) => return Err(failure),
                Some(Ok(Some(theirs))) => theirs,
                Some(Ok(None)) | None => {
                    read_back(
                        &self.sftp,
                        remote,
                        received.end,
                        self.options,
                        self.watch,
                        &self.budget,
                        self.options.scope.as_ref().map(|_| attrs),
                    )
                    .await?
                }
            };
            if theirs != digest {
                // Under a scope, what the hash read may not be the file
                // opened (a symlink swapped in): its digest is not shown.
                let theirs = if self.options.scope.is_some() {
                    "a different digest"
                } else {
                    theirs.as_str()
                };
                return Err(Failure::new(
                    ErrorKind::Transfer,
                    format!(
                        "{remote}: checksum mismatch (received {digest}, the host has {theirs}; \
                         did the file change during the download?); nothing was written"
                    ),
                ));
            }
        }
        Ok((file, digest, received.end))
    }

    /// The digest when the local file already has the remote file's size
    /// and SHA-256.
    async fn identical(
        &self,
        remote: &str,
        dest: &Path,
        size: u64,
    ) -> Result<Option<String>, Failure> {
        match std::fs::symlink_metadata(dest) {
            Ok(meta) if meta.is_file() && meta.len() == size => {}
            _ => return Ok(None),
        }
        let (ours, _) = hash::local_in_background(dest.to_owned(), None, None)
            .await
            .map_err(|e| local_failure(dest, &e))?;
        let ours = hash::finish(ours);
        let theirs = self.remote_digest(remote, size).await?;
        Ok((ours == theirs).then_some(ours))
    }

    /// Where to start: after what the local temp file holds, when
    /// `--resume` is on and the host's file starts with the same bytes
    /// (checked with a remote hash of that prefix; without a hash tool on
    /// the host the download starts over).
    async fn resume_point(
        &self,
        remote: &str,
        temp: &Path,
        size: u64,
    ) -> Result<(u64, Sha256), Failure> {
        if !self.options.resume {
            return Ok((0, Sha256::new()));
        }
        let held = match std::fs::symlink_metadata(temp) {
            Ok(meta) if meta.is_file() => meta.len(),
            _ => 0,
        };
        if held == 0 || held > size || self.conn.free_sessions() == 0 {
            return Ok((0, Sha256::new()));
        }
        let (ours, _) = hash::local_in_background(temp.to_owned(), None, None)
            .await
            .map_err(|e| local_failure(temp, &e))?;
        match hash::remote(self.conn, &self.access, remote, Some((0, held))).await? {
            Some(theirs) if theirs == hash::finish(ours.clone()) => {
                tracing::info!(host = self.host, remote, held, "resuming");
                Ok((held, ours))
            }
            _ => Ok((0, Sha256::new())),
        }
    }

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
            &self.budget,
            None,
        )
        .await
    }

    /// Removes the temp file after a failure, unless `--resume` keeps it.
    fn discard(&self, temp: &Path) {
        if self.options.resume {
            return;
        }
        if let Err(e) = std::fs::remove_file(temp)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(host = self.host, temp = %temp.display(), "cannot remove: {e}");
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

    fn expect(&self, n: u64) {
        if let Some(observer) = &self.watch.observer {
            observer.expect(self.host, n);
        }
    }

    fn advance(&self, n: u64) {
        if let Some(observer) = &self.watch.observer {
            observer.advance(self.host, n);
        }
    }
}

fn local_failure(path: &Path, err: &std::io::Error) -> Failure {
    Failure::new(
        ErrorKind::Transfer,
        format!("writing {}: {err}", path.display()),
    )
}

/// The failure of a file the run was interrupted during.
fn interrupted(remote: &str) -> Failure {
    Failure::new(
        ErrorKind::Cancelled,
        format!("{remote}: interrupted; nothing was written"),
    )
}
