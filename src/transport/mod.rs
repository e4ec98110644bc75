//! The transport: reaching one host over SSH. Nothing here knows about runs,
//! audit records or reports beyond the [`crate::failure::Failure`] a failed
//! step becomes. **Invariant:** nothing here imports `crate::run` or
//! `crate::ops`: the layers above use the transport, never the reverse.
//!
//! - `tcp.rs` — resolve and dial, retrying transient errors only.
//! - `endpoint.rs` — [`Endpoint`]: where and as whom to connect.
//! - `options.rs` — `ConnectOptions` (the same for every host of a run),
//!   the cipher preference, and russh's client config built from them.
//! - `handshake.rs` — the one dial-(or tunnel-)and-handshake path, also for
//!   a host-key scan.
//! - `auth.rs` — authentication: certificate, key file, agent, password;
//!   `rsa_cert.rs` — the SHA-2 signer of an RSA user certificate.
//! - `connection.rs` — `Connection`, one authenticated russh connection:
//!   open (bounded by the connect timeout), scan, session slots, helper
//!   commands, shutdown; `session.rs` — `Session`, an open session channel.
//! - `host_key.rs` — the handshake's host-key check against known_hosts as
//!   it is now, and the scan's recorder.
//! - `host_certificate.rs` — whether known_hosts' `@cert-authority` lines
//!   vouch for a host certificate (CA, validity, principal, revocation).
//! - `known_hosts.rs` (+ `known_hosts/edit.rs`) — remex's OpenSSH-format
//!   known_hosts: matching, pinning, forgetting.
//! - `identity.rs` — private keys and the user certificates beside them:
//!   permission check, decryption, the store of loaded keys.
//! - `short_scalar.rs` — reads P-256 keys whose scalar OpenSSH wrote in
//!   fewer than 32 bytes, which the key parser refuses.
//! - `login.rs` — the credentials of one connection attempt.
//! - `steps.rs` — what `-v` shows: each step of a connection, with timings.

mod auth;
pub(crate) mod connection;
pub(crate) mod endpoint;
mod handshake;
pub(crate) mod host_certificate;
pub(crate) mod host_key;
pub(crate) mod identity;
pub(crate) mod known_hosts;
pub(crate) mod login;
pub(crate) mod options;
mod rsa_cert;
pub(crate) mod session;
mod short_scalar;
pub(crate) mod steps;
pub(crate) mod tcp;

pub use endpoint::Endpoint;
pub use identity::IdentityError;
pub use known_hosts::KnownHostsError;
pub use login::{Password, PasswordSource};
