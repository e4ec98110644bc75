//! [`Gate`]: how many connections the service holds open, and for how
//! long an answer may sit unread.
//!
//! An axum-server acceptor, run for every accepted TCP connection before
//! TLS and HTTP: past `service.limits.max_connections` in all, or
//! `max_connections_per_address` from one client (IPv6: one /64), the
//! connection is closed at once — holding it until a place frees would let
//! a client keep any number of sockets (and file descriptors) open. A
//! connection that is let in holds its place ([`Ticket`]) until it closes.
//!
//! Its stream ([`Guarded`]) also ends a connection whose writes make no
//! progress for `idle_timeout`: a client that asks for an answer and never
//! reads it. (A request's head is bounded by hyper's header timeout, its
//! body by the guard's idle timeout on the body; see `api/mod.rs`.)

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// The client a connection or request counts against: its IPv4 address,
/// or the /64 network of its IPv6 address (one host usually holds a whole
/// /64, so counting single IPv6 addresses would count nothing).
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                for s in segments.iter_mut().skip(4) {
                    *s = 0;
                }
                IpAddr::V6(segments.into())
            }
        },
    }
}

/// The connection limits, shared by every connection.
#[derive(Debug)]
pub(crate) struct Gate {
    /// Open connections by client, and in all.
    open: Mutex<Open>,
    /// `max_connections`.
    max: usize,
    /// `max_connections_per_address`.
    max_per_client: usize,
    /// `idle_timeout`: the longest a write may wait for the client.
    idle: Duration,
}

#[derive(Debug, Default)]
struct Open {
    /// Every open connection.
    total: usize,
    /// Open connections per client (entries removed at zero, so the map
    /// holds at most `max_connections` entries).
    by_client: HashMap<IpAddr, usize>,
    /// Connections closed on arrival because a limit was reached.
    refused: u64,
}

impl Gate {
    /// Limits of `max` connections, `max_per_client` from one client, and
    /// writes that may wait `idle` for the client.
    pub(crate) fn new(max: usize, max_per_client: usize, idle: Duration) -> Arc<Gate> {
        Arc::new(Gate {
            open: Mutex::new(Open::default()),
            max,
            max_per_client,
            idle,
        })
    }

    fn open(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for a connection from `ip`, unless a limit is reached.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Ticket> {
        let client = client_key(ip);
        let mut open = self.open();
        let mine = open.by_client.get(&client).copied().unwrap_or(0);
        if open.total >= self.max || mine >= self.max_per_client {
            open.refused += 1;
            return None;
        }
        open.total += 1;
        open.by_client.insert(client, mine + 1);
        Some(Ticket {
            gate: self.clone(),
            client,
        })
    }

    /// Connections open now, and refused so far.
    pub(crate) fn counts(&self) -> (usize, u64) {
        let open = self.open();
        (open.total, open.refused)
    }
}

/// A connection's place; given back when dropped.
#[derive(Debug)]
pub(crate) struct Ticket {
    gate: Arc<Gate>,
    client: IpAddr,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self.gate.open();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_client.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_client.remove(&self.client);
            }
        }
    }
}

/// The acceptor: [`Gate::admit`], then the inner acceptor (TLS, or none).
#[derive(Debug, Clone)]
pub(crate) struct Limited<A> {
    /// The limits.
    pub gate: Arc<Gate>,
    /// What runs on the admitted stream.
    pub inner: A,
}

impl<A, S> Accept<TcpStream, S> for Limited<A>
where
    A: Accept<Guarded<TcpStream>, S> + Clone + Send + 'static,
    A::Future: Send + 'static,
    A::Stream: Send,
    A::Service: Send,
    S: Send + 'static,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(A::Stream, A::Service)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let ticket = stream.peer_addr().ok().and_then(|peer| {
            let ticket = self.gate.admit(peer.ip());
            if ticket.is_none() {
                tracing::debug!("connection from {peer} refused: service.limits.max_connections");
            }
            ticket
        });
        let Some(ticket) = ticket else {
            // Dropping the stream closes it now.
            return Box::pin(std::future::ready(Err(io::Error::other(
                "too many connections (service.limits.max_connections)",
            ))));
        };
        let guarded = Guarded {
            inner: stream,
            idle: self.gate.idle,
            stalled: None,
            _ticket: ticket,
        };
        Box::pin(self.inner.accept(guarded, service))
    }
}

/// An admitted connection's stream: holds its place, and fails a write
/// that waits longer than `idle` for the client to read.
#[derive(Debug)]
pub(crate) struct Guarded<S> {
    inner: S,
    idle: Duration,
    /// Armed while a write is pending.
    stalled: Option<Pin<Box<Sleep>>>,
    /// The place, given back when the connection closes.
    _ticket: Ticket,
}

impl<S> Guarded<S> {
    /// What a write (or flush) polled: progress disarms the idle timer,
    /// `Pending` arms it, or fails once it ran out.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let idle = self.idle;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client read nothing for service.limits.idle_timeout",
        )))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(client_key(ip("10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(client_key(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(
            client_key(ip("2001:db8:1:2:ffff::1")),
            client_key(ip("2001:db8:1:2::9"))
        );
        assert_ne!(
            client_key(ip("2001:db8:1:3::1")),
            client_key(ip("2001:db8:1:2::1"))
        );
        assert_eq!(client_key(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
    }

    #[test]
    fn places_are_limited_in_all_and_per_client_and_given_back() {
        let gate = Gate::new(3, 2, Duration::from_secs(1));
        let a1 = gate.admit(ip("10.0.0.1"));
        let a2 = gate.admit(ip("10.0.0.1"));
        assert!(a1.is_some() && a2.is_some());
        assert!(gate.admit(ip("10.0.0.1")).is_none(), "per client");
        let b1 = gate.admit(ip("10.0.0.2"));
        assert!(b1.is_some());
        assert!(gate.admit(ip("10.0.0.3")).is_none(), "in all");
        assert_eq!(gate.counts(), (3, 2));
        drop(a1);
        assert!(gate.admit(ip("10.0.0.3")).is_some(), "a place came back");
        drop((a2, b1));
        assert_eq!(gate.counts().0, 0);
        assert!(gate.open().by_client.is_empty(), "no entry kept at zero");
    }

    #[tokio::test]
    async fn a_write_the_client_never_reads_fails_after_the_idle_time() {
        use tokio::io::AsyncWriteExt as _;
        let gate = Gate::new(1, 1, Duration::from_millis(200));
        let Some(ticket) = gate.admit(ip("10.0.0.1")) else {
            panic!("no place");
        };
        // A pipe of 64 bytes that nobody reads.
        let (ours, _theirs) = tokio::io::duplex(64);
        let mut stream = Guarded {
            inner: ours,
            idle: gate.idle,
            stalled: None,
            _ticket: ticket,
        };
        let began = tokio::time::Instant::now();
        let err = stream.write_all(&[0; 1024]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(began.elapsed() >= Duration::from_millis(200));
        drop(stream);
        assert_eq!(gate.counts().0, 0, "the place is given back");
    }
}
