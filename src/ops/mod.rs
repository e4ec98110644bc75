//! The operations: each one a small type the runner drives (see
//! [`crate::run`]), and the [`crate::Executor`] method that starts it.
//!
//! - `exec/` — `exec` and `script`: a command or a local script on every
//!   host (with `sudo`).
//! - `action/` — named actions of the config: params → the one run
//!   request (`Action::prepare`), their JSON Schema.
//! - `check.rs` — `hosts check`.
//! - `transfer/` — `upload` and `download` over SFTP.
//! - `keys/` — the client-key lifecycle: generate, deploy, rotate, revoke,
//!   prune, list.
//! - `trust.rs` — `hosts trust` and `hosts forget`: pinning host keys.

pub mod action;
pub mod check;
pub mod exec;
pub mod keys;
pub mod transfer;
pub mod trust;
