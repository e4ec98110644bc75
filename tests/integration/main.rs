//! Integration tests: the real `remex` binary and the library against labs
//! of real sshd hosts (OpenSSH, and Dropbear for compatibility), each lab in
//! its own temp dir on loopback. One test binary, one harness (`util`).
//!
//! Nothing here skips: without sshd the tests fail with the install hint,
//! and tests that need root (throwaway users) fail loudly without it.

// Panicking is how a test fails loudly; the production lints do not apply.
// A test binary has no public API: `pub` means "used by the other files".
#![allow(
    dead_code,
    unreachable_pub,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod actions;
mod audit;
mod automation;
mod certs;
mod daily;
mod exec;
mod hostile;
mod hosts;
mod jump;
mod keys;
mod lab;
mod library;
mod proftpd;
mod proxy;
mod reach;
mod scale;
mod script;
mod served;
mod service;
mod signals;
mod ssh_config;
mod terminal;
mod transfer;
mod transfer_edge;
mod transfer_sudo;
mod util;
mod verbose;
