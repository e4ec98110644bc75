//! A TCP proxy the test controls, between remex and a lab's sshd: it
//! forwards both directions and, after a given number of bytes in all,
//! drops the connection (both sockets shut down), like a network cut.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use crate::util::TestLab;

/// A running proxy; stops accepting when dropped.
pub struct CutProxy {
    /// Where remex connects.
    pub addr: SocketAddr,
    /// Bytes forwarded so far (both directions, all connections).
    pub forwarded: Arc<AtomicU64>,
    /// Whether a connection was cut.
    pub cut: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl CutProxy {
    /// Listens on `listen_ip`:ephemeral and forwards to `upstream`, cutting
    /// every connection once `cut_after` bytes went through in all.
    pub fn start(listen_ip: &str, upstream: SocketAddr, cut_after: u64) -> CutProxy {
        let listener =
            TcpListener::bind((listen_ip, 0)).unwrap_or_else(|e| panic!("proxy bind: {e}"));
        let addr = listener.local_addr().unwrap();
        let forwarded = Arc::new(AtomicU64::new(0));
        let cut = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, c, s) = (forwarded.clone(), cut.clone(), stop.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let (f, c) = (f.clone(), c.clone());
                    thread::spawn(move || pump(from, to, &f, &c, cut_after));
                }
            }
        });
        CutProxy {
            addr,
            forwarded,
            cut,
            stop,
        }
    }

    /// A config for `lab` whose vm01 goes through this proxy (its pinned
    /// host key pinned for the proxy's address too).
    pub fn config_for(&self, lab: &TestLab, name: &str) -> std::path::PathBuf {
        let host = &lab.lab.hosts[0];
        let from = format!("host: {}, port: {}", host.address, host.port);
        let to = format!("host: {}, port: {}", self.addr.ip(), self.addr.port());
        let known = lab.path().join("known_hosts");
        let text = std::fs::read_to_string(&known).unwrap();
        let prefix = format!("[{}]:{} ", host.address, host.port);
        let line = text
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no known_hosts line for {prefix}in {text}"));
        let extra = line.replacen(
            &prefix,
            &format!("[{}]:{} ", self.addr.ip(), self.addr.port()),
            1,
        );
        std::fs::write(&known, format!("{text}{extra}\n")).unwrap();
        lab.config_variant(name, &[(&from, &to)])
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, total: &AtomicU64, cut: &AtomicBool, limit: u64) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let before = total.fetch_add(n as u64, Ordering::SeqCst);
        if before + n as u64 > limit {
            cut.store(true, Ordering::SeqCst);
            break;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
