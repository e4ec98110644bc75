//! remex: run commands on a fleet of Linux hosts over SSH.

pub mod audit;
pub mod cli;
pub mod config;
pub mod lab;
pub mod ops;
pub mod pattern;
pub mod quote;
pub mod run;
pub mod targets;
pub mod transport;
