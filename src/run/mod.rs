//! The run layer.

pub mod executor;
pub mod report;
