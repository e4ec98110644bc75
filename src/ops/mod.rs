//! The operations.

pub mod exec;
pub mod keys;
pub mod transfer;
pub mod trust;
