//! Moving a file's bytes with many SFTP requests in flight.
//!
//! Upload: one blocking thread reads the local file in chunks and hashes
//! them in order; each SFTP channel has a worker that takes the next chunk
//! and sends it as a write at its offset, keeping up to `depth` writes
//! unacknowledged. Several channels multiply the server's per-channel
//! receive window (2 MiB on OpenSSH), which is what limits one channel at
//! high round-trip times.
//!
//! Download: up to `depth` reads in flight on one channel (remex's own
//! receive window is large); replies are taken in offset order and handed
//! to a blocking thread that writes and hashes them.
//!
//! **Invariant:** memory is bounded whatever the file's size: per host by
//! `channels × depth × chunk` plus a queue of a few chunks, and across the
//! hosts of a run by one [`Budget`] that every request draws on before it
//! is issued.

use std::collections::{HashMap, VecDeque};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::StatusCode;
use sha2::{Digest as _, Sha256};
use tokio::sync::{Mutex, mpsc};
use tokio::task::{JoinHandle, JoinSet};

use crate::run::Cancel;

use super::sftp::is_status;

/// Reports bytes received (download).
pub(super) type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// Reports an acknowledged write: its offset and length (upload).
pub(super) type OnAck = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// A stretch at the start of an upload that the server has acknowledged
/// in full: from here on the host can hash it while the rest moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Segment {
    /// Where it starts.
    pub offset: u64,
    /// Its length.
    pub len: u64,
}

/// Tracks an upload in fixed-size segments and reports them in order, each
/// once every write in it (and before it) is acknowledged.
pub(super) struct Segments {
    /// Segment length (a multiple of the chunk, so no write spans two).
    len: u64,
    /// The file's size.
    size: u64,
    /// Bytes acknowledged per segment index, and the next index to report.
    state: std::sync::Mutex<(HashMap<u64, u64>, u64)>,
    /// Where ready segments go.
    ready: mpsc::UnboundedSender<Segment>,
}

impl Segments {
    /// Segments of `len` bytes over a file of `size`; ready ones arrive on
    /// the receiver, in order, which ends when the upload's pipeline is done.
    pub(super) fn new(len: u64, size: u64) -> (Arc<Segments>, mpsc::UnboundedReceiver<Segment>) {
        let (ready, rx) = mpsc::unbounded_channel();
        let segments = Segments {
            len: len.max(1),
            size,
            state: std::sync::Mutex::new((HashMap::new(), 0)),
            ready,
        };
        (Arc::new(segments), rx)
    }

    fn seg_len(&self, index: u64) -> u64 {
        self.len.min(self.size.saturating_sub(index * self.len))
    }

    fn acked(&self, offset: u64, len: u64) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        *state.0.entry(offset / self.len).or_default() += len;
        loop {
            let next = state.1;
            let want = self.seg_len(next);
            if want == 0 || state.0.get(&next) != Some(&want) {
                break;
            }
            state.0.remove(&next);
            state.1 += 1;
            let _ = self.ready.send(Segment {
                offset: next * self.len,
                len: want,
            });
        }
    }
}

/// Why a pipeline stopped.
#[derive(Debug)]
pub(super) enum PipeError {
    /// Reading or writing the local file failed.
    Local(std::io::Error),
    /// An SFTP request failed.
    Remote(SftpError),
    /// The run was cancelled.
    Cancelled,
}

/// A chunk of the file and its offset.
/// A chunk of the file, and its share of the memory budget (taken before
/// it was read, given back once the server acknowledged it).
type Chunk = (u64, Vec<u8>, Option<tokio::sync::OwnedSemaphorePermit>);

/// The queue of chunks the channels' workers take from.
type SharedQueue = Arc<Mutex<mpsc::Receiver<Chunk>>>;

/// An open remote file on one SFTP channel.
#[derive(Clone)]
pub(super) struct Target {
    /// The channel's session.
    pub raw: Arc<RawSftpSession>,
    /// The file's handle on that session.
    pub handle: String,
    /// The run's memory budget (see [`Budget`]).
    pub budget: Budget,
}

/// Bytes of file data in flight (sent and not yet acknowledged, or
/// requested and not yet written) across every host of a run, in KiB
/// permits: each request takes its share before it is issued and gives it
/// back when done, so memory stays bounded however many hosts run at once.
pub(super) type Budget = Arc<tokio::sync::Semaphore>;

/// A budget of `bytes` (at least one request of `chunk` bytes).
pub(super) fn budget(bytes: usize, chunk: usize) -> Budget {
    Arc::new(tokio::sync::Semaphore::new(bytes.max(chunk).div_ceil(1024)))
}

/// Takes `len` bytes' worth of `budget`.
async fn reserve(budget: &Budget, len: u64) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let kib = u32::try_from(len.div_ceil(1024)).unwrap_or(u32::MAX);
    budget.clone().acquire_many_owned(kib).await.ok()
}

/// What an upload sent.
pub(super) struct Sent {
    /// The hasher after the last byte (covering any resumed prefix too);
    /// `None` when the caller hashes the file elsewhere.
    pub hasher: Option<Sha256>,
    /// The file's length as sent (offset after the last byte).
    pub end: u64,
}

/// Sends `path` from offset `start` to the remote file open on every
/// target, continuing `hasher` (which covers `..start`; `None`: no hashing
/// here, the caller has the file hashed once for all hosts). With `segments`
/// (only from offset 0), each segment is reported, in order, once it is
/// acknowledged.
#[allow(clippy::too_many_arguments)]
pub(super) async fn upload(
    path: &Path,
    start: u64,
    hasher: Option<Sha256>,
    targets: &[Target],
    chunk: usize,
    depth: usize,
    on_ack: OnAck,
    segments: Option<Arc<Segments>>,
    cancel: Option<&Cancel>,
) -> Result<Sent, PipeError> {
    // A short queue; the budget bounds what is read and not yet acknowledged.
    let (tx, rx) = mpsc::channel::<Chunk>(4);
    let on_ack: OnAck = match segments {
        Some(segments) => Arc::new(move |offset, len| {
            segments.acked(offset, len);
            on_ack(offset, len);
        }),
        None => on_ack,
    };
    let budget = targets.first().map(|t| t.budget.clone());
    let reader = spawn_reader(path.to_owned(), start, hasher, chunk, budget, tx);
    let rx = Arc::new(Mutex::new(rx));
    let mut workers = JoinSet::new();
    for target in targets {
        workers.spawn(write_worker(
            target.clone(),
            rx.clone(),
            depth.max(1),
            on_ack.clone(),
        ));
    }
    drop(rx);
    drop(on_ack);
    let all = async {
        while let Some(joined) = workers.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(PipeError::Remote(e)),
                Err(e) => {
                    return Err(PipeError::Remote(SftpError::UnexpectedBehavior(
                        e.to_string(),
                    )));
                }
            }
        }
        Ok(())
    };
    let outcome = match cancel {
        Some(cancel) => tokio::select! {
            r = all => r,
            () = cancel.cancelled() => Err(PipeError::Cancelled),
        },
        None => all.await,
    };
    if let Err(e) = outcome {
        // Workers stop with the set; the reader stops at its next send.
        workers.abort_all();
        return Err(e);
    }
    match reader.await {
        Ok(Ok((hasher, end))) => Ok(Sent { hasher, end }),
        Ok(Err(e)) => Err(PipeError::Local(e)),
        Err(e) => Err(PipeError::Local(std::io::Error::other(e.to_string()))),
    }
}

/// Reads the file chunk by chunk on a blocking thread. Each chunk takes its
/// share of `budget` *before* it is read, so what waits in the queue counts
/// too: a thousand hosts' uploads hold at most the budget, not a queue of
/// chunks each.
fn spawn_reader(
    path: PathBuf,
    start: u64,
    mut hasher: Option<Sha256>,
    chunk: usize,
    budget: Option<Budget>,
    tx: mpsc::Sender<Chunk>,
) -> JoinHandle<std::io::Result<(Option<Sha256>, u64)>> {
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(start))?;
        let mut offset = start;
        loop {
            let want = (chunk as u64).min(len.saturating_sub(offset)).max(1);
            let share = match &budget {
                Some(budget) => Some(
                    runtime
                        .block_on(reserve(budget, want))
                        .ok_or_else(|| std::io::Error::other("upload stopped"))?,
                ),
                None => None,
            };
            // Read into fresh capacity: no zeroing, no intermediate copy.
            let mut buf = Vec::with_capacity(chunk);
            let n = std::io::Read::by_ref(&mut file)
                .take(chunk as u64)
                .read_to_end(&mut buf)?;
            if n == 0 {
                break;
            }
            if let Some(hasher) = hasher.as_mut() {
                hasher.update(&buf);
            }
            if tx.blocking_send((offset, buf, share)).is_err() {
                return Err(std::io::Error::other("upload stopped"));
            }
            offset += n as u64;
            if n < chunk {
                break;
            }
        }
        Ok((hasher, offset))
    })
}

/// A write in flight: its offset, length and acknowledgement.
type InFlight = (
    u64,
    u64,
    JoinHandle<Result<russh_sftp::protocol::Status, SftpError>>,
);

async fn write_worker(
    target: Target,
    rx: SharedQueue,
    depth: usize,
    on_ack: OnAck,
) -> Result<(), SftpError> {
    let mut in_flight: VecDeque<InFlight> = VecDeque::with_capacity(depth);
    loop {
        let next = rx.lock().await.recv().await;
        let Some((offset, data, share)) = next else {
            break;
        };
        if in_flight.len() >= depth
            && let Some(oldest) = in_flight.pop_front()
        {
            settle(oldest, &on_ack).await?;
        }
        let len = data.len() as u64;
        let raw = target.raw.clone();
        let handle = target.handle.clone();
        in_flight.push_back((
            offset,
            len,
            tokio::spawn(async move {
                let written = raw.write(handle, offset, data).await;
                drop(share);
                written
            }),
        ));
    }
    while let Some(oldest) = in_flight.pop_front() {
        settle(oldest, &on_ack).await?;
    }
    Ok(())
}

/// Waits for a write's acknowledgement and reports it.
async fn settle((offset, len, ack): InFlight, on_ack: &OnAck) -> Result<(), SftpError> {
    match ack.await {
        Ok(Ok(_)) => {
            on_ack(offset, len);
            Ok(())
        }
        Ok(Err(e)) => Err(e),
        Err(e) => Err(SftpError::UnexpectedBehavior(e.to_string())),
    }
}

/// What a download received.
pub(super) struct Received {
    /// The hasher after the last byte (covering any resumed prefix too).
    pub hasher: Sha256,
    /// Offset after the last byte received.
    pub end: u64,
    /// The local file, when there was one.
    pub file: Option<std::fs::File>,
}

/// Reads the remote file open as `target` from `start` to its end
/// (expected at `size`; a file that grew or shrank is read to its real
/// end), writing to `sink` (positioned at `start`) when given and
/// continuing `hasher`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn download(
    target: &Target,
    start: u64,
    size: u64,
    sink: Option<std::fs::File>,
    hasher: Sha256,
    chunk: usize,
    depth: usize,
    progress: Progress,
    cancel: Option<&Cancel>,
) -> Result<Received, PipeError> {
    let (tx, rx) = mpsc::channel::<Vec<u8>>(8);
    let writer = spawn_writer(sink, hasher, rx);
    let fetch = fetch(target, start, size, chunk, depth.max(1), tx, progress);
    let fetched = match cancel {
        Some(cancel) => tokio::select! {
            r = fetch => r,
            () = cancel.cancelled() => Err(PipeError::Cancelled),
        },
        None => fetch.await,
    };
    let written = writer.await;
    let end = fetched?;
    match written {
        Ok(Ok((hasher, file))) => Ok(Received { hasher, end, file }),
        Ok(Err(e)) => Err(PipeError::Local(e)),
        Err(e) => Err(PipeError::Local(std::io::Error::other(e.to_string()))),
    }
}

fn spawn_writer(
    mut sink: Option<std::fs::File>,
    mut hasher: Sha256,
    mut rx: mpsc::Receiver<Vec<u8>>,
) -> JoinHandle<std::io::Result<(Sha256, Option<std::fs::File>)>> {
    tokio::task::spawn_blocking(move || {
        while let Some(data) = rx.blocking_recv() {
            if let Some(file) = sink.as_mut() {
                file.write_all(&data)?;
            }
            hasher.update(&data);
        }
        Ok((hasher, sink))
    })
}

async fn fetch(
    target: &Target,
    start: u64,
    size: u64,
    chunk: usize,
    depth: usize,
    tx: mpsc::Sender<Vec<u8>>,
    progress: Progress,
) -> Result<u64, PipeError> {
    type Reply = JoinHandle<Result<russh_sftp::protocol::Data, SftpError>>;
    type Share = Option<tokio::sync::OwnedSemaphorePermit>;
    let chunk_len = u32::try_from(chunk).unwrap_or(u32::MAX);
    let mut pending: VecDeque<(u64, Reply, Share)> = VecDeque::with_capacity(depth);
    let mut next = start;
    let mut received = start;
    loop {
        // Request up to the expected end, plus one read there that should
        // answer EOF (or data, if the file grew).
        let limit = size.max(received);
        while pending.len() < depth && next <= limit {
            // Wait for budget only with nothing of our own in flight (so no
            // two hosts ever wait on each other); otherwise take what is free
            // and go on with the replies.
            let share = if pending.is_empty() {
                reserve(&target.budget, u64::from(chunk_len)).await
            } else {
                let kib = chunk_len.div_ceil(1024);
                match target.budget.clone().try_acquire_many_owned(kib) {
                    Ok(share) => Some(share),
                    Err(_) => break,
                }
            };
            let raw = target.raw.clone();
            let handle = target.handle.clone();
            let offset = next;
            pending.push_back((
                offset,
                tokio::spawn(async move { raw.read(handle, offset, chunk_len).await }),
                share,
            ));
            next += u64::from(chunk_len);
        }
        let Some((offset, reply, _share)) = pending.pop_front() else {
            return Ok(received);
        };
        let data = match reply.await {
            Ok(Ok(data)) => data.data,
            Ok(Err(e)) if is_status(&e, StatusCode::Eof) => return Ok(received),
            Ok(Err(e)) => return Err(PipeError::Remote(e)),
            Err(e) => {
                return Err(PipeError::Remote(SftpError::UnexpectedBehavior(
                    e.to_string(),
                )));
            }
        };
        let n = data.len() as u64;
        if n == 0 {
            return Ok(received);
        }
        debug_assert_eq!(offset, received);
        received = offset + n;
        if tx.send(data).await.is_err() {
            // The writer failed; its error is what the caller reports.
            return Ok(received);
        }
        progress(n);
        if n < u64::from(chunk_len) {
            // A short read: what was requested after it may start at the
            // wrong offset. Drop it and continue from here.
            pending.clear();
            next = received;
        }
    }
}
