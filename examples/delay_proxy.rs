//! A user-space TCP proxy that adds latency, for benchmarks on loopback
//! (the kernel here has no `tc netem`). Each direction is delayed by half
//! the round-trip time; bandwidth is not limited (data is queued with its
//! due time, not throttled).
//!
//!     delay_proxy LISTEN_ADDR UPSTREAM_ADDR RTT_MS
//!     delay_proxy 127.0.0.2:0 127.0.0.2:2222 20
//!
//! Prints the address it listens on as the first line of stdout.

// An example program prints its results.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, upstream, rtt] = args.as_slice() else {
        eprintln!("usage: delay_proxy LISTEN_ADDR UPSTREAM_ADDR RTT_MS");
        std::process::exit(2);
    };
    let upstream: SocketAddr = upstream.parse()?;
    let one_way = Duration::from_micros(rtt.parse::<u64>()? * 500);
    let listener = TcpListener::bind(listen.as_str()).await?;
    println!("{}", listener.local_addr()?);
    loop {
        let (client, _) = listener.accept().await?;
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::join!(relay(cr, sw, one_way), relay(sr, cw, one_way));
        });
    }
}

/// Copies `from` to `to`, each chunk leaving `delay` after it arrived.
async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(8192);
    let reader = async move {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let chunk = buf.get(..n).unwrap_or_default().to_vec();
                    if tx.send((Instant::now() + delay, chunk)).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
