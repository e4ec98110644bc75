//! The TCP leg of a connection: resolve, dial with retries, and keep ACKs
//! prompt.
//!
//! Two latency fixes live here, both measured against OpenSSH 9.2:
//! `TCP_NODELAY` on our side (russh leaves Nagle on, which costs a 40 ms
//! stall per command), and `TCP_QUICKACK` re-armed after every read. sshd
//! leaves Nagle on for non-pty sessions, so a delayed ACK from us would hold
//! its next small packet for ~40 ms; Linux clears quick-ACK mode on its own,
//! so it has to be set again after each read.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::config::AddressFamily;

/// Why no TCP connection could be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum DialError {
    /// The name did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Dns {
        /// The name as configured.
        host: String,
        /// The resolver's answer.
        #[source]
        source: io::Error,
    },
    /// Every address refused, reset or could not be reached.
    #[error("cannot connect to {addr}: {source}{}", attempts_text(*.attempts))]
    Connect {
        /// The last address tried.
        addr: SocketAddr,
        /// How many attempts were made.
        attempts: u32,
        /// The last error.
        #[source]
        source: io::Error,
    },
}

fn attempts_text(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

/// Whether a connect error is worth retrying: the network said no for now
/// (refused, reset, unreachable), as opposed to a permanent answer.
fn is_transient(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | HostUnreachable
            | NetworkUnreachable
            | NotConnected
    )
}

/// Resolves `host:port` and connects, retrying transient errors `retries`
/// times with exponential backoff (200 ms, 400 ms, …). The caller bounds the
/// whole with its connect timeout.
pub(crate) async fn dial(
    host: &str,
    port: u16,
    retries: u32,
    family: AddressFamily,
) -> Result<QuickAck, DialError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| DialError::Dns {
            host: host.to_owned(),
            source,
        })?
        .filter(|addr| match family {
            AddressFamily::Any => true,
            AddressFamily::Inet => addr.is_ipv4(),
            AddressFamily::Inet6 => addr.is_ipv6(),
        })
        .collect();
    if addrs.is_empty() {
        return Err(DialError::Dns {
            host: host.to_owned(),
            source: io::Error::new(
                io::ErrorKind::NotFound,
                format!("no {family} address (address_family)"),
            ),
        });
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut last = None;
        for &addr in &addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(QuickAck::new(stream)),
                Err(e) => last = Some((addr, e)),
            }
        }
        let Some((addr, source)) = last else {
            return Err(DialError::Dns {
                host: host.to_owned(),
                source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
            });
        };
        if attempt > retries || !is_transient(&source) {
            return Err(DialError::Connect {
                addr,
                attempts: attempt,
                source,
            });
        }
        let backoff = Duration::from_millis(200) * 2u32.saturating_pow(attempt - 1);
        tracing::debug!(%addr, %source, ?backoff, "connect failed, retrying");
        tokio::time::sleep(backoff).await;
    }
}

/// A TCP stream with `TCP_NODELAY` set and `TCP_QUICKACK` re-armed after
/// every read.
pub(crate) struct QuickAck {
    /// The socket.
    inner: TcpStream,
}

impl QuickAck {
    fn new(inner: TcpStream) -> Self {
        if let Err(e) = inner.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY: {e}");
        }
        let stream = QuickAck { inner };
        stream.arm();
        stream
    }

    /// The address the socket is connected to.
    pub(crate) fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    fn arm(&self) {
        // Best effort: only Linux has quick-ACK, and a failure costs latency,
        // not correctness.
        #[cfg(target_os = "linux")]
        if let Err(e) = socket2::SockRef::from(&self.inner).set_tcp_quickack(true) {
            tracing::trace!("TCP_QUICKACK: {e}");
        }
    }
}

impl AsyncRead for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.arm();
        }
        poll
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_port_is_refused_after_the_retries() {
        // Bind then drop, so the port is (almost certainly) closed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
            l.local_addr()
                .map(|a| a.port())
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let err = dial("127.0.0.1", port, 1, AddressFamily::Any).await.err();
        match err {
            Some(DialError::Connect {
                attempts, source, ..
            }) => {
                assert_eq!(attempts, 2);
                assert_eq!(source.kind(), io::ErrorKind::ConnectionRefused);
            }
            other => panic!("expected a refused connect, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_unresolvable_name_is_a_dns_error() {
        let err = dial("no-such-host.invalid", 22, 3, AddressFamily::Any)
            .await
            .err();
        assert!(matches!(err, Some(DialError::Dns { .. })), "{err:?}");
    }
}
