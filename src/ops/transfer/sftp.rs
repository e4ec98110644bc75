//! An SFTP session on a channel of a host's connection, and the mapping of
//! SFTP errors to `transfer` failures that name the path and the server's
//! reason.
//!
//! remex drives russh-sftp's `RawSftpSession` directly (not its `File`): it
//! needs many requests in flight across several channels, `fsync@openssh.com`
//! and `posix-rename@openssh.com`, and the status of every close.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::client::rawsession::Limits;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use tokio::sync::OwnedSemaphorePermit;

use crate::failure::{ErrorKind, Failure};
use crate::transport::connection::Connection;
use crate::transport::session::Session;

use super::Options;
use super::access::Access;

/// SFTP packets remex accepts from the server: a read reply of one chunk
/// plus headers, with room to spare.
const MAX_PACKET: u32 = 512 * 1024;

/// Type bits of a mode (`S_IFMT`) and the kinds remex handles.
pub(crate) const S_IFMT: u32 = 0o170_000;
pub(crate) const S_IFDIR: u32 = 0o040_000;
pub(crate) const S_IFREG: u32 = 0o100_000;
pub(crate) const S_IFLNK: u32 = 0o120_000;

/// One SFTP session, holding one of the connection's session slots.
pub(crate) struct Sftp {
    /// The protocol client; shared with the tasks that carry requests.
    pub raw: Arc<RawSftpSession>,
    /// Bytes per read or write request (the option, capped by the server's
    /// `limits@openssh.com`).
    pub chunk: usize,
    /// How long a request may wait for its reply.
    pub timeout: Duration,
    /// Extensions the server announced (`fsync@openssh.com`, …).
    extensions: HashMap<String, String>,
    /// The session slot, released when the session is dropped.
    _slot: OwnedSemaphorePermit,
}

impl Sftp {
    /// Opens an SFTP session on a new channel, waiting for a free slot.
    pub(super) async fn open(
        conn: &Connection,
        access: &Access,
        options: &Options,
    ) -> Result<Sftp, Failure> {
        let session = conn.session().await?;
        Sftp::start(session, access, &conn.endpoint().name, options).await
    }

    /// Opens an extra SFTP session if a slot is free and the server agrees.
    pub(super) async fn try_open(
        conn: &Connection,
        access: &Access,
        options: &Options,
    ) -> Option<Sftp> {
        let session = conn.try_session().await?;
        Sftp::start(session, access, &conn.endpoint().name, options)
            .await
            .ok()
    }

    async fn start(
        mut session: Session,
        access: &Access,
        host: &str,
        options: &Options,
    ) -> Result<Sftp, Failure> {
        let started = access.start_sftp(&mut session).await.map_err(|e| {
            Failure::new(
                ErrorKind::Io,
                format!("starting SFTP on {host}: the connection broke: {e}"),
            )
        })?;
        if !started {
            let refused = match access.sudo_target() {
                None => format!(
                    "{host} refused the SFTP subsystem; enable it in sshd_config \
                     (`Subsystem sftp internal-sftp` or the path of sftp-server)"
                ),
                Some(user) => format!("{host} refused to run sftp-server as `{user}` through sudo"),
            };
            return Err(Failure::new(ErrorKind::Transfer, refused));
        }
        let Session { channel, slot } = session;
        let config = russh_sftp::client::Config {
            max_packet_len: MAX_PACKET,
            request_timeout_secs: options.request_timeout.as_secs().max(1),
            ..russh_sftp::client::Config::default()
        };
        let mut raw = RawSftpSession::new_with_config(channel.into_stream(), config);
        let version = raw.init().await.map_err(|e| {
            Failure::new(
                ErrorKind::Transfer,
                format!(
                    "starting SFTP on {host}: {}",
                    reason(&e, options.request_timeout)
                ),
            )
        })?;
        let mut chunk = options.chunk.max(1);
        if version.extensions.contains_key("limits@openssh.com")
            && let Ok(limits) = raw.limits().await
        {
            let limits = Limits::from(limits);
            for cap in [limits.write_len, limits.read_len].into_iter().flatten() {
                chunk = chunk.min(usize::try_from(cap).unwrap_or(usize::MAX));
            }
            raw.set_limits(limits);
        }
        Ok(Sftp {
            raw: Arc::new(raw),
            chunk,
            timeout: options.request_timeout,
            extensions: version.extensions,
            _slot: slot,
        })
    }

    /// Whether the server announced extension `name`.
    pub(super) fn has(&self, name: &str) -> bool {
        self.extensions.contains_key(name)
    }

    /// A `transfer` failure for `what` on `path`.
    pub(super) fn failure(&self, what: &str, path: &str, e: &SftpError) -> Failure {
        failure(what, path, e, self.timeout)
    }

    /// `lstat`: attributes of `path` itself; `Ok(None)` when it does not exist.
    pub(super) async fn lstat(&self, path: &str) -> Result<Option<FileAttributes>, Failure> {
        match self.raw.lstat(path).await {
            Ok(attrs) => Ok(Some(attrs.attrs)),
            Err(e) if is_status(&e, StatusCode::NoSuchFile) => Ok(None),
            Err(e) => Err(self.failure("examining", path, &e)),
        }
    }

    /// `stat`: attributes of what `path` leads to; `Ok(None)` when nothing.
    pub(super) async fn stat(&self, path: &str) -> Result<Option<FileAttributes>, Failure> {
        match self.raw.stat(path).await {
            Ok(attrs) => Ok(Some(attrs.attrs)),
            Err(e) if is_status(&e, StatusCode::NoSuchFile) => Ok(None),
            Err(e) => Err(self.failure("examining", path, &e)),
        }
    }

    /// Opens `path` with `flags`; a new file gets `mode`.
    pub(super) async fn open_file(
        &self,
        path: &str,
        flags: OpenFlags,
        mode: u32,
    ) -> Result<String, Failure> {
        let attrs = FileAttributes {
            permissions: Some(mode),
            ..FileAttributes::empty()
        };
        let what = if flags.contains(OpenFlags::CREATE) {
            "creating"
        } else if flags.contains(OpenFlags::WRITE) {
            "opening for writing"
        } else {
            "opening"
        };
        self.raw
            .open(path, flags, attrs)
            .await
            .map(|h| h.handle)
            .map_err(|e| self.failure(what, path, &e))
    }

    /// Closes a handle and checks the server's answer (a close can report a
    /// write error that happened late).
    pub(super) async fn close(&self, handle: &str, path: &str) -> Result<(), Failure> {
        self.raw
            .close(handle)
            .await
            .map(drop)
            .map_err(|e| self.failure("closing", path, &e))
    }

    /// Flushes a written file to the disk (`fsync@openssh.com`); a server
    /// without the extension is logged and skipped.
    pub(super) async fn fsync(&self, handle: &str, path: &str) -> Result<(), Failure> {
        if !self.has("fsync@openssh.com") {
            tracing::warn!(path, "the server has no fsync@openssh.com; not flushing");
            return Ok(());
        }
        self.raw
            .fsync(handle)
            .await
            .map(drop)
            .map_err(|e| self.failure("flushing (fsync)", path, &e))
    }

    /// Sets mode and, when given, the modification (and access) time.
    pub(super) async fn set_attrs(
        &self,
        handle: &str,
        path: &str,
        mode: u32,
        mtime: Option<u32>,
    ) -> Result<(), Failure> {
        let attrs = FileAttributes {
            permissions: Some(mode & 0o7777),
            atime: mtime,
            mtime,
            ..FileAttributes::empty()
        };
        self.raw
            .fsetstat(handle, attrs)
            .await
            .map(drop)
            .map_err(|e| self.failure("setting the mode of", path, &e))
    }

    /// Renames `from` over `to`, replacing it atomically
    /// (`posix-rename@openssh.com`).
    pub(super) async fn posix_rename(&self, from: &str, to: &str) -> Result<(), Failure> {
        if !self.has("posix-rename@openssh.com") {
            return Err(Failure::new(
                ErrorKind::Transfer,
                format!(
                    "renaming onto {to}: the server lacks posix-rename@openssh.com, \
                     so remex cannot replace the file atomically"
                ),
            ));
        }
        let mut data = Vec::with_capacity(from.len() + to.len() + 8);
        for s in [from, to] {
            data.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_be_bytes());
            data.extend_from_slice(s.as_bytes());
        }
        let packet = self
            .raw
            .extended("posix-rename@openssh.com", data)
            .await
            .map_err(|e| self.failure("renaming onto", to, &e))?;
        match packet {
            russh_sftp::protocol::Packet::Status(s) if s.status_code == StatusCode::Ok => Ok(()),
            russh_sftp::protocol::Packet::Status(s) => {
                Err(self.failure("renaming onto", to, &SftpError::Status(s)))
            }
            _ => Err(Failure::new(
                ErrorKind::Protocol,
                format!("renaming onto {to}: unexpected reply to posix-rename"),
            )),
        }
    }

    /// Removes a file; a missing file is fine.
    pub(super) async fn remove(&self, path: &str) -> Result<(), Failure> {
        match self.raw.remove(path).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, StatusCode::NoSuchFile) => Ok(()),
            Err(e) => Err(self.failure("removing", path, &e)),
        }
    }

    /// Creates a directory with `mode`; an existing directory is fine.
    /// Returns whether it was created.
    pub(super) async fn mkdir(&self, path: &str, mode: u32) -> Result<bool, Failure> {
        let attrs = FileAttributes {
            permissions: Some(mode & 0o7777),
            ..FileAttributes::empty()
        };
        match self.raw.mkdir(path, attrs).await {
            Ok(_) => Ok(true),
            Err(e) => match self.stat(path).await {
                Ok(Some(a)) if a.permissions.unwrap_or(0) & S_IFMT == S_IFDIR => Ok(false),
                _ => Err(self.failure("creating the directory", path, &e)),
            },
        }
    }

    /// `mkdir -p`.
    pub(super) async fn mkdir_all(&self, path: &str) -> Result<(), Failure> {
        let mut prefix = String::new();
        if path.starts_with('/') {
            prefix.push('/');
        }
        for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
            if !prefix.is_empty() && !prefix.ends_with('/') {
                prefix.push('/');
            }
            prefix.push_str(part);
            match self.stat(&prefix).await? {
                Some(a) if a.permissions.unwrap_or(0) & S_IFMT == S_IFDIR => {}
                Some(_) => {
                    return Err(Failure::new(
                        ErrorKind::Transfer,
                        format!("creating {path}: {prefix} exists and is not a directory"),
                    ));
                }
                None => {
                    self.mkdir(&prefix, 0o755).await?;
                }
            }
        }
        Ok(())
    }

    /// Creates a symlink at `link` pointing to `target`. OpenSSH's server
    /// takes the two paths in the opposite order of the SFTP draft (it is
    /// the reference everyone follows), so they are swapped here.
    pub(super) async fn symlink(&self, link: &str, target: &str) -> Result<(), Failure> {
        self.raw
            .symlink(target, link)
            .await
            .map(drop)
            .map_err(|e| self.failure("creating the symlink", link, &e))
    }

    /// The target of a symlink.
    pub(super) async fn readlink(&self, path: &str) -> Result<String, Failure> {
        let name = self
            .raw
            .readlink(path)
            .await
            .map_err(|e| self.failure("reading the symlink", path, &e))?;
        name.files
            .into_iter()
            .next()
            .map(|f| f.filename)
            .ok_or_else(|| {
                Failure::new(
                    ErrorKind::Protocol,
                    format!("reading the symlink {path}: empty reply"),
                )
            })
    }

    /// The entries of a directory (names as the server sent them, `.` and
    /// `..` included), with their `lstat` attributes.
    pub(super) async fn read_dir(
        &self,
        path: &str,
    ) -> Result<Vec<(String, FileAttributes)>, Failure> {
        let handle = self
            .raw
            .opendir(path)
            .await
            .map_err(|e| self.failure("listing", path, &e))?
            .handle;
        let mut entries = Vec::new();
        let result = loop {
            match self.raw.readdir(handle.as_str()).await {
                Ok(name) => entries.extend(name.files.into_iter().map(|f| (f.filename, f.attrs))),
                Err(e) if is_status(&e, StatusCode::Eof) => break Ok(()),
                Err(e) => break Err(self.failure("listing", path, &e)),
            }
        };
        let closed = self.close(&handle, path).await;
        result.and(closed).map(|()| entries)
    }

    /// Free bytes for unprivileged users on the filesystem of `path`, when
    /// the server can say (`statvfs@openssh.com`).
    pub(super) async fn free_bytes(&self, path: &str) -> Option<u64> {
        if !self.has("statvfs@openssh.com") {
            return None;
        }
        let st = self.raw.statvfs(path).await.ok()?;
        Some(st.blocks_avail.saturating_mul(st.fragment_size))
    }
}

/// Whether `e` is a status reply with `code`.
pub(crate) fn is_status(e: &SftpError, code: StatusCode) -> bool {
    matches!(e, SftpError::Status(s) if s.status_code == code)
}

/// A failure for `what` on `path`: `transfer` for the server's refusals,
/// `io` when the connection is gone.
pub(crate) fn failure(what: &str, path: &str, e: &SftpError, timeout: Duration) -> Failure {
    let kind = match e {
        SftpError::Status(_) | SftpError::Timeout | SftpError::Limited(_) => ErrorKind::Transfer,
        SftpError::UnexpectedPacket => ErrorKind::Protocol,
        SftpError::IO(_) | SftpError::UnexpectedBehavior(_) => ErrorKind::Io,
    };
    let mut message = format!("{what} {path}: {}", reason(e, timeout));
    if is_status(e, StatusCode::NoSuchFile) && path.contains(char::REPLACEMENT_CHARACTER) {
        // The SFTP library decodes names as UTF-8, replacing what is not:
        // such a name cannot be asked for again.
        message.push_str(
            " (the host's name for it is not valid UTF-8, which remex's SFTP cannot carry)",
        );
    }
    if is_status(e, StatusCode::PermissionDenied) {
        return Failure::refused(kind, message);
    }
    Failure::new(kind, message)
}

/// The server's reason, in words.
pub(crate) fn reason(e: &SftpError, timeout: Duration) -> String {
    match e {
        SftpError::Status(s) => {
            let text = match s.status_code {
                StatusCode::NoSuchFile => "no such file or directory",
                StatusCode::PermissionDenied => "permission denied",
                StatusCode::Eof => "unexpected end of file",
                StatusCode::OpUnsupported => "operation not supported by the server",
                StatusCode::BadMessage => "the server says: bad message",
                StatusCode::Failure => "the server reports a failure",
                _ => "error",
            };
            let message = s.error_message.trim();
            let generic = message.is_empty()
                || message.eq_ignore_ascii_case(&s.status_code.to_string())
                || message.eq_ignore_ascii_case(text);
            if generic {
                text.to_owned()
            } else {
                format!("{text} ({message})")
            }
        }
        SftpError::Timeout => format!(
            "no reply within {}s (the transfer stalled; --request-timeout)",
            timeout.as_secs()
        ),
        SftpError::Limited(m) => format!("over the server's limits: {m}"),
        SftpError::UnexpectedPacket => "unexpected reply from the server".to_owned(),
        SftpError::IO(m) => format!("the connection broke ({m})"),
        SftpError::UnexpectedBehavior(m) => format!("the connection broke ({m})"),
    }
}
