//! The transport: reaching a host over SSH.

pub mod connection;
pub mod identity;
pub mod known_hosts;
pub mod login;
pub mod tcp;
