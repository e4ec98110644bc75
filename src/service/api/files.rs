//! `/v1/files`: uploads to many hosts and downloads from one, with the
//! CLI's atomic, verified transfers.
//!
//! An upload's bytes are first written to a private temp directory beside
//! the store (never under a name the client chose beyond a checked file
//! name), then sent to every host as `remex upload` sends them, then
//! deleted. A download fetches into a private temp directory — verified,
//! at most `service.limits.max_download` bytes — and streams the file back
//! with its SHA-256 (`Digest: sha-256=…`), or a directory as a tar stream
//! packed as it is sent.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::body::Body;
use axum::extract::{FromRequest as _, Multipart, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt as _;
use utoipa::{IntoParams, ToSchema};

use super::extract::{Params, RequestId, Wait, WaitQuery, body_stalled, multipart_error, stalled};
use super::openapi::Finished;
use super::rules::{FileMode, FileName, HostName, RemotePath, Selector, UploadPath};
use super::submit::{JobRequest, submit};
use crate::run::{Cancel, CancelHandle, Observer};
use crate::service::auth::{Caller, Scope};
use crate::service::error::{ApiError, ErrorBody, ErrorKind};
use crate::service::jobs::Work;
use crate::service::state::{AppState, Shared};
use crate::service::view::JobView;
use crate::transfer::{Download, Upload};

/// `POST /v1/files/upload`'s query: where the body goes.
#[derive(Debug, Default, Clone, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UploadQuery {
    /// Which hosts (a selector).
    #[param(required = true, value_type = Selector)]
    pub targets: Option<String>,
    /// The remote path: a file, or a directory to put it in (ending in `/`,
    /// or existing).
    #[param(required = true, value_type = UploadPath)]
    pub path: Option<String>,
    /// The file's name when `path` is a directory (default: the multipart
    /// file name).
    #[param(value_type = Option<FileName>)]
    pub name: Option<String>,
    /// The file's mode, octal (`0640`; default 0644).
    #[param(value_type = Option<FileMode>)]
    pub mode: Option<String>,
    /// Create missing parent directories.
    pub mkdir: Option<bool>,
    /// Leave hosts that hold the same bytes untouched.
    pub skip_identical: Option<bool>,
}

/// An upload's bytes, as they are sent (the schema of the raw body).
pub(crate) struct Bytes;

impl utoipa::PartialSchema for Bytes {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        super::rules::binary().into()
    }
}

impl ToSchema for Bytes {}

/// An upload as a multipart form: the file's bytes in its part `file`
/// (its file name is the default `name`). The document puts the other
/// fields in the query; the service also takes them as text parts before
/// `file` (as HTML forms and n8n's form-data send them), which override
/// the query's.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct UploadForm {
    /// The file's bytes.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Uploads the body (raw, or the `file` part of a multipart form) to the
/// same path on every selected host. What the query says is checked
/// before a byte is read.
#[utoipa::path(
    post,
    path = "/v1/files/upload",
    tag = "files",
    params(UploadQuery, WaitQuery),
    request_body(
        description = "The file's bytes, raw or as the `file` part of a multipart form",
        content(
            (Bytes = "application/octet-stream"),
            (UploadForm = "multipart/form-data"),
        )
    ),
    responses(
        (status = 200, description = "The job ended within `wait`: its report", body = Finished),
        (status = 202, description = "Accepted and under way", body = JobView),
        (status = 403, description = "The token lacks the scope `files:write`, or a selected host is outside its targets", body = ErrorBody),
        (status = 404, description = "`targets` names a host or group the inventory does not have, or selects none", body = ErrorBody),
        (status = 413, description = "Larger than `service.limits.max_body`", body = ErrorBody),
    )
)]
pub(crate) async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    wait: Wait,
    Params(query): Params<UploadQuery>,
    req: Request,
) -> Result<Response, ApiError> {
    caller.require(Scope::FilesWrite)?;
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    // Refused before a byte is read: what the query says (a form's text
    // parts may add to it: checked again once it is read).
    check_query(&query)?;
    if let Some(targets) = &query.targets {
        caller.reach(&state.executor, targets)?;
    }
    let limit = state.config.limits.max_body;
    // Refused before a byte is read when the client says it is too large.
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        super::extract::discard(req.into_body(), declared).await;
        return Err(ApiError::too_large(format!(
            "the upload is larger than service.limits.max_body ({limit} bytes)"
        )));
    }
    if !multipart {
        // Everything but the bytes is known: refused before they are read.
        required(&query)?;
        file_name(&query, None)?;
    }
    let spool = tempfile::Builder::new()
        .prefix("upload.")
        .tempdir_in(spool_dir(&state)?)
        .map_err(|e| ApiError::internal(format!("cannot make a temp directory: {e}")))?;
    let (query, file_name, local) = if multipart {
        let form = Multipart::from_request(req, &state)
            .await
            .map_err(|e| multipart_error(&e, e.status()))?;
        let (query, file_name, local) = receive_form(form, query, spool.path(), limit).await?;
        check_query(&query)?;
        caller.reach(&state.executor, required(&query)?.0)?;
        (query, file_name, local)
    } else {
        let name = file_name(&query, None)?;
        let local = spool.path().join(&name);
        receive(req.into_body(), &local, limit).await?;
        (query, name, local)
    };
    let mode = upload_mode(query.mode.as_deref())?;
    let job = UploadJob {
        query,
        file_name,
        local,
        mode,
        spool: Arc::new(spool),
    };
    submit(&state, &caller, &request_id, wait, &job).await
}

/// An upload received: the fields it came with (what its job keeps) and
/// the spooled file.
#[derive(Clone, Serialize)]
struct UploadJob {
    /// The query's fields.
    #[serde(flatten)]
    query: UploadQuery,
    /// The file's name.
    file_name: String,
    /// The spooled file.
    #[serde(skip)]
    local: PathBuf,
    /// The mode the file gets.
    #[serde(skip)]
    mode: u32,
    /// Its private directory, removed once the job is done with it.
    #[serde(skip)]
    spool: Arc<tempfile::TempDir>,
}

impl JobRequest for UploadJob {
    fn scope(&self) -> Scope {
        Scope::FilesWrite
    }

    fn targets(&self) -> &str {
        self.query.targets.as_deref().unwrap_or_default()
    }

    fn work(&self, _: &Shared) -> Result<Work, ApiError> {
        let path = self.query.path.clone().unwrap_or_default();
        let mut upload = Upload::new(vec![self.local.clone()], &path);
        upload.mkdir = self.query.mkdir.unwrap_or(false);
        upload.options.skip_identical = self.query.skip_identical.unwrap_or(false);
        upload.mode = Some(self.mode);
        Ok(Work::Upload {
            upload,
            spool: self.spool.clone(),
        })
    }
}

/// The mode `text` names (the document's octal pattern; default 0644).
fn upload_mode(text: Option<&str>) -> Result<u32, ApiError> {
    let Some(text) = text else {
        return Ok(0o644);
    };
    super::rules::matches(super::rules::MODE, text)
        .then(|| u32::from_str_radix(text, 8).ok())
        .flatten()
        .ok_or_else(|| {
            ApiError::field(
                "mode",
                format!(
                    "`{}` is not an octal mode such as 0640",
                    text.escape_default()
                ),
            )
        })
}

/// The query's (or the form's) `targets` and `path`, which an upload
/// needs.
fn required(query: &UploadQuery) -> Result<(&str, &str), ApiError> {
    let targets = query
        .targets
        .as_deref()
        .ok_or_else(|| ApiError::field("targets", "say which hosts: `targets=web`"))?;
    let path = query
        .path
        .as_deref()
        .ok_or_else(|| ApiError::field("path", "say where: `path=/etc/app/app.conf`"))?;
    Ok((targets, path))
}

/// The checks of the fields given so far: a remote path the service
/// writes (not ending in `.` or `..`), an octal mode.
fn check_query(query: &UploadQuery) -> Result<(), ApiError> {
    if let Some(path) = &query.path {
        check_remote(path)?;
        if !super::rules::matches(super::rules::NOT_DOTS, path) {
            return Err(ApiError::field(
                "path",
                "the remote path ends in `.` or `..`: name the file, or the directory ending in `/`",
            ));
        }
    }
    upload_mode(query.mode.as_deref()).map(|_| ())
}

/// Where uploads are spooled: `uploads/` beside the store (0700).
fn spool_dir(state: &AppState) -> Result<PathBuf, ApiError> {
    let dir = state
        .config
        .store
        .parent()
        .unwrap_or(Path::new("."))
        .join("uploads");
    std::fs::create_dir_all(&dir)
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        })
        .map_err(|e| ApiError::internal(format!("cannot make {}: {e}", dir.display())))?;
    Ok(dir)
}

/// The file's name: `name`, else the multipart file name, else the last
/// part of `path` — a plain name, never a path.
pub(crate) fn file_name(query: &UploadQuery, from_form: Option<&str>) -> Result<String, ApiError> {
    let from_path = query
        .path
        .as_deref()
        .filter(|p| !p.ends_with('/'))
        .and_then(|p| p.rsplit('/').next());
    let (field, name) = match (&query.name, from_form, from_path) {
        (Some(name), _, _) => ("name", name.as_str()),
        (None, Some(name), _) => ("file", name),
        (None, None, Some(name)) => ("path", name),
        (None, None, None) => {
            return Err(ApiError::field(
                "name",
                "`path` names a directory: give the file's `name`",
            ));
        }
    };
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\0')
        || name.len() > super::rules::MAX_FILE_NAME
    {
        return Err(ApiError::field(
            field,
            format!("`{name}` is not a file name (no `/`, not `.` or `..`)"),
        ));
    }
    Ok(name.to_owned())
}

/// A remote path the service accepts: not empty, no NUL.
fn check_remote(path: &str) -> Result<(), ApiError> {
    if path.is_empty() || path.contains('\0') {
        return Err(ApiError::field(
            "path",
            "the remote path is empty or holds a NUL byte",
        ));
    }
    Ok(())
}

/// Writes `body` to `local`, at most `limit` bytes (413 beyond).
async fn receive(body: Body, local: &Path, limit: u64) -> Result<u64, ApiError> {
    let mut file = tokio::fs::File::create(local)
        .await
        .map_err(|e| ApiError::internal(format!("cannot spool the upload: {e}")))?;
    let mut stream = body.into_data_stream();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            if body_stalled(&e) {
                stalled()
            } else {
                ApiError::bad_request(format!("reading the body: {e}"))
            }
        })?;
        total += chunk.len() as u64;
        if total > limit {
            return Err(ApiError::too_large(format!(
                "the upload is larger than service.limits.max_body ({limit} bytes)"
            )));
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| ApiError::internal(format!("cannot spool the upload: {e}")))?;
    }
    file.sync_all()
        .await
        .map_err(|e| ApiError::internal(format!("cannot spool the upload: {e}")))?;
    Ok(total)
}

/// Reads a multipart form: text parts override the query's fields, the
/// `file` part is spooled.
async fn receive_form(
    mut form: Multipart,
    mut query: UploadQuery,
    spool: &Path,
    limit: u64,
) -> Result<(UploadQuery, String, PathBuf), ApiError> {
    let mut spooled = None;
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| multipart_error(&e, e.status()))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            let file_name = file_name(&query, field.file_name())?;
            let local = spool.join(&file_name);
            let mut file = tokio::fs::File::create(&local)
                .await
                .map_err(|e| ApiError::internal(format!("cannot spool the upload: {e}")))?;
            let mut total = 0u64;
            while let Some(chunk) = field
                .chunk()
                .await
                .map_err(|e| multipart_error(&e, e.status()))?
            {
                total += chunk.len() as u64;
                if total > limit {
                    return Err(ApiError::too_large(format!(
                        "the upload is larger than service.limits.max_body ({limit} bytes)"
                    )));
                }
                file.write_all(&chunk)
                    .await
                    .map_err(|e| ApiError::internal(format!("cannot spool the upload: {e}")))?;
            }
            spooled = Some((file_name, local));
            continue;
        }
        let text = field.text().await.map_err(|e| {
            let status = e.status();
            match multipart_error(&e, status) {
                bad if bad.kind == ErrorKind::BadRequest => {
                    ApiError::field(name.clone(), format!("not text: {}", e.body_text()))
                }
                other => other,
            }
        })?;
        let flag = |t: &str| matches!(t, "true" | "1" | "yes" | "on");
        match name.as_str() {
            "targets" => query.targets = Some(text),
            "path" => query.path = Some(text),
            "name" => query.name = Some(text),
            "mode" => query.mode = Some(text),
            "mkdir" => query.mkdir = Some(flag(&text)),
            "skip_identical" => query.skip_identical = Some(flag(&text)),
            other => {
                return Err(ApiError::field(
                    other,
                    format!(
                        "unknown form field `{other}` (targets, path, name, mode, mkdir, skip_identical, file)"
                    ),
                ));
            }
        }
    }
    let (file_name, local) =
        spooled.ok_or_else(|| ApiError::field("file", "the form has no `file` part"))?;
    Ok((query, file_name, local))
}

/// `GET /v1/files/download`'s query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DownloadQuery {
    /// The host (one name).
    #[param(value_type = HostName)]
    pub host: String,
    /// The remote file, or directory (sent as a tar stream).
    #[param(value_type = RemotePath)]
    pub path: String,
}

/// A file's bytes (with `Digest: sha-256=…` and `X-Remex-Sha256`), or a
/// directory as a tar stream, from one host. The file is fetched and
/// verified before its first byte is sent (so the digest headers are
/// true and a client never gets a short file that looks whole), at most
/// `service.limits.max_download` bytes of it: larger is 413, and nothing of
/// it stays on disk.
#[utoipa::path(
    get,
    path = "/v1/files/download",
    tag = "files",
    params(DownloadQuery),
    responses(
        (status = 200, description = "The file (`application/octet-stream`, with `Digest`), or a directory as a tar stream (`application/x-tar`)",
            content(("application/octet-stream"), ("application/x-tar"))),
        (status = 403, description = "The token lacks the scope `files:read` or may not reach the host; or the host refused the path (permission denied, not a regular file or directory)", body = ErrorBody),
        (status = 404, description = "No such host in the inventory, or no such path on it", body = ErrorBody),
        (status = 413, description = "Larger than `service.limits.max_download`", body = ErrorBody),
        (status = 502, description = "The host failed: it could not be reached, or the connection or login failed", body = ErrorBody)
    )
)]
pub(crate) async fn download(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    Params(query): Params<DownloadQuery>,
) -> Result<Response, ApiError> {
    caller.require(Scope::FilesRead)?;
    check_remote(&query.path)?;
    if !state.executor.config().vms.contains_key(&query.host) {
        return Err(ApiError::missing(
            "host",
            format!("no host named `{}`", query.host.escape_default()),
        ));
    }
    let host = caller.reach(&state.executor, &query.host)?;
    let spool = tempfile::Builder::new()
        .prefix("download.")
        .tempdir_in(spool_dir(&state)?)
        .map_err(|e| ApiError::internal(format!("cannot make a temp directory: {e}")))?;
    let mut download = Download::new(vec![query.path.clone()], spool.path());
    download.flat = true;
    download.recursive = true;
    let limit = state.config.limits.max_download;
    let (stop, cancel) = Cancel::new();
    let size_limit = Arc::new(SizeLimit::new(limit, stop));
    let ctx = crate::run::RunContext::new()
        .actor(caller.token.name.clone())
        .request_id(request_id.0.clone())
        .cancel(cancel)
        .observer(size_limit.clone());
    let report = state.executor.download(&ctx, &host, &download).await?;
    if size_limit.exceeded() {
        return Err(ApiError {
            field: Some("path".to_owned()),
            ..ApiError::too_large(format!(
                "`{}` on {} is larger than service.limits.max_download ({limit} bytes); \
                 nothing was kept",
                query.path, query.host
            ))
        });
    }
    let Some(host) = report.results.first() else {
        return Err(ApiError::internal("the download reported no host"));
    };
    if let Some(failure) = &host.error {
        if failure.not_found {
            return Err(ApiError::missing(
                "path",
                format!("{}: {}", query.host, failure.message),
            ));
        }
        if failure.refused {
            return Err(ApiError {
                field: Some("path".to_owned()),
                ..ApiError::forbidden(format!("{} refused: {}", query.host, failure.message))
            });
        }
        return Err(ApiError::host_failed(failure));
    }
    let Some(first) = std::fs::read_dir(spool.path())
        .ok()
        .and_then(|mut entries| entries.next())
        .and_then(Result::ok)
    else {
        return Err(ApiError::internal("the download left nothing"));
    };
    let local = first.path();
    let name = first.file_name().to_string_lossy().into_owned();
    if local.is_dir() {
        return Ok(tar_stream(spool, local, name));
    }
    let sha256 = host.detail.sha256.clone().unwrap_or_default();
    let file = tokio::fs::File::open(&local)
        .await
        .map_err(|e| ApiError::internal(format!("cannot read the download: {e}")))?;
    let length = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let stream = file_stream(file, spool);
    let digest = hex_to_base64(&sha256);
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", name.replace('"', "")),
            ),
            (
                header::HeaderName::from_static("digest"),
                format!("sha-256={digest}"),
            ),
            (header::HeaderName::from_static("x-remex-sha256"), sha256),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Stops a download once it would pass `service.limits.max_download`:
/// when the files it is about to fetch (`expect`, before their bytes) or
/// the bytes it fetched (`advance`: a file that grows) add up to more.
struct SizeLimit {
    /// The limit, in bytes.
    limit: u64,
    /// Bytes of the files announced so far.
    expected: AtomicU64,
    /// Bytes fetched so far.
    moved: AtomicU64,
    /// Stops the download.
    stop: CancelHandle,
    /// Set once the limit was passed.
    exceeded: AtomicBool,
}

impl SizeLimit {
    /// A limit of `limit` bytes that cancels through `stop`.
    fn new(limit: u64, stop: CancelHandle) -> SizeLimit {
        SizeLimit {
            limit,
            expected: AtomicU64::new(0),
            moved: AtomicU64::new(0),
            stop,
            exceeded: AtomicBool::new(false),
        }
    }

    /// Whether the download passed the limit (and was stopped).
    fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::SeqCst)
    }

    /// Adds `bytes` to `counter`; stops the download past the limit.
    fn add(&self, counter: &AtomicU64, bytes: u64) {
        let total = counter
            .fetch_add(bytes, Ordering::SeqCst)
            .saturating_add(bytes);
        if total > self.limit && !self.exceeded.swap(true, Ordering::SeqCst) {
            self.stop.cancel();
        }
    }
}

impl Observer for SizeLimit {
    fn expect(&self, _host: &str, bytes: u64) {
        self.add(&self.expected, bytes);
    }

    fn advance(&self, _host: &str, bytes: u64) {
        self.add(&self.moved, bytes);
    }
}

/// The bytes of `file`, keeping `spool` (and so the file) until they are
/// sent.
fn file_stream(
    file: tokio::fs::File,
    spool: tempfile::TempDir,
) -> impl futures_util::Stream<Item = std::io::Result<axum::body::Bytes>> + Send {
    futures_util::stream::unfold((file, Some(spool)), |(mut file, spool)| async move {
        use tokio::io::AsyncReadExt as _;
        let mut buf = vec![0u8; CHUNK];
        match file.read(&mut buf).await {
            Ok(0) => {
                drop(spool);
                None
            }
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(axum::body::Bytes::from(buf)), (file, spool)))
            }
            Err(e) => Some((Err(e), (file, None))),
        }
    })
}

/// Bytes per piece of a download's body.
const CHUNK: usize = 256 * 1024;

/// A directory as a tar stream, packed as it is sent (no second copy on
/// disk); the spool is removed once it is packed. A failure midway cuts
/// the stream (the client sees a body without its end).
fn tar_stream(spool: tempfile::TempDir, dir: PathBuf, name: String) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<axum::body::Bytes>>(4);
    let entry = name.clone();
    tokio::task::spawn_blocking(move || {
        let errors = tx.clone();
        let mut builder = tar::Builder::new(Pieces {
            tx,
            buf: Vec::with_capacity(CHUNK),
        });
        builder.follow_symlinks(false);
        let packed = builder
            .append_dir_all(&entry, &dir)
            .and_then(|()| builder.into_inner())
            .and_then(|mut pieces| pieces.flush());
        drop(spool);
        if let Err(e) = packed {
            tracing::warn!("the tar stream of {} stopped: {e}", dir.display());
            let _ = errors.blocking_send(Err(e));
        }
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/x-tar".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}.tar\"", name.replace('"', "")),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// What the tar writer writes, in pieces of [`CHUNK`] bytes, to the body.
struct Pieces {
    /// The body's side.
    tx: tokio::sync::mpsc::Sender<std::io::Result<axum::body::Bytes>>,
    /// Bytes not sent yet.
    buf: Vec<u8>,
}

impl Pieces {
    /// Sends what is buffered; `BrokenPipe` once the client is gone.
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(axum::body::Bytes::from(piece)))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl std::io::Write for Pieces {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// A hex digest as standard base64 (the `Digest` header's form).
fn hex_to_base64(hex: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(hex::decode(hex).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_names_never_paths() {
        let query = |path: &str, name: Option<&str>| UploadQuery {
            path: Some(path.into()),
            name: name.map(Into::into),
            ..UploadQuery::default()
        };
        assert_eq!(
            file_name(&query("/etc/app.conf", None), None).unwrap(),
            "app.conf"
        );
        assert_eq!(
            file_name(&query("/etc/", None), Some("x.bin")).unwrap(),
            "x.bin"
        );
        for bad in ["..", ".", "a/b", ""] {
            let e = file_name(&query("/etc/", Some(bad)), None).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("name"), "{bad}");
        }
        let e = file_name(&query("/etc/", None), Some("../../etc/passwd")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("file"));
        assert!(file_name(&query("/etc/", None), None).is_err());
    }

    #[test]
    fn digests_convert() {
        // SHA-256 of "abc".
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(
            hex_to_base64(hex),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }
}
