//! `remex serve` attacked: a careless or hostile caller, and processes
//! that die. Each file tries one class of attack against the real binary
//! and a lab of real sshd, and asserts what must hold.
//!
//! - `edge.rs` — requests without a token, floods, slow clients, malformed
//!   requests and error shapes.
//! - `exec.rs` — requests that try to harm other jobs or outlive their own
//!   (NUL bytes, huge commands, reserved names, lost connections, `kill -9`).
//! - `callbacks.rs` — where a callback may go, and what it may tell; a
//!   second service on one store; slow event readers; large downloads;
//!   bad key names.
//! - `contract.rs` — every answer is one the OpenAPI document lists, and
//!   what it says of odd inputs holds.

mod callbacks;
mod contract;
mod edge;
mod exec;
