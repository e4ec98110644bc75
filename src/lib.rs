//! remex: run commands on a fleet of Linux hosts over SSH, move files to and
//! from them, and manage the keys that let it in — audited, and safe by
//! default.
//!
//! ```no_run
//! use remex::{Config, Exec, Executor, RunContext};
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let executor = Executor::new(Config::load("lab/config.yml".as_ref())?)?;
//! let ctx = RunContext::new().actor("nightly-report");
//! let report = executor.exec(&ctx, "web,!vm03", &Exec::argv(["uptime"])).await?;
//! for host in &report.results {
//!     println!("{}: {}", host.host, host.detail.stdout.text());
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`run`] — the run layer: [`Executor`], the audited runner every
//!   operation goes through, [`RunContext`], [`RunReport`].
//! - `ops/` — the operations: [`exec`], [`action`], [`check`], [`transfer`],
//!   [`keys`], [`trust`].
//! - `transport/` — reaching a host: TCP, the SSH connection, host keys,
//!   private keys.
//! - `keydir/` — the key directory: key files, the key state file, the
//!   archive, which key a host logs in with (public types re-exported in
//!   [`keys`]).
//! - base modules every layer may use: `failure` ([`Failure`]),
//!   `atomic_file`, `error_chain`, `fresh`, `pattern`, [`quote`].
//! - [`audit`] — the tamper-evident audit log.
//! - [`config`] — the YAML config; [`targets`] — the selector grammar and
//!   the [`Selection`] a selector resolves to, once.
//! - `lab` (feature `lab`) — local labs of real sshd hosts; `service`
//!   (feature `service`) — `remex serve`.
//!
//! A run's request as data is a [`RunRequest`]: the same JSON as the
//! command line's `exec --request` and the service's `POST /v1/runs`.
//!
//! # Features
//!
//! The default, `cli`, builds the `remex` binary with the lab and the
//! service. A program that only uses the library depends on remex with
//! `default-features = false`: no lab, service or CLI, and none of their
//! crates (axum, rusqlite, reqwest, clap, anyhow).

mod atomic_file;
pub mod audit;
pub mod config;
mod error_chain;
mod failure;
mod fresh;
mod keydir;
#[cfg(feature = "lab")]
pub mod lab;
mod ops;
mod pattern;
pub mod quote;
pub mod run;
#[cfg(feature = "service")]
pub mod service;
pub mod targets;
#[cfg(test)]
mod test_support;
mod transport;

pub use config::Config;
pub use ops::{action, check, exec, keys, transfer, trust};
pub use run::{
    Cancel, CancelHandle, Detail, Error, ErrorKind, Executor, ExecutorBuilder, Failure,
    HostKeyOffer, HostKeyProblem, HostReport, Listing, NoDetails, NoHost, NoPrompter, Observer,
    Prompter, RequestError, RunContext, RunReport, SCHEMA_VERSION, Stream, Summary,
};
pub use targets::{Selection, Targets};
pub use transport::{Endpoint, IdentityError, KnownHostsError, Password, PasswordSource};

pub use exec::{Exec, ExecReport, ExecResult, RunRequest, Script, Sudo, Timeout};
