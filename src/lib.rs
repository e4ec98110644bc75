//! remex: run commands on a fleet of Linux hosts over SSH.

pub mod config;
pub mod known_hosts;
pub mod lab;
pub mod pattern;
pub mod quote;
pub mod targets;
pub mod report;
pub mod identity;
pub mod tcp;
pub mod connection;
pub mod executor;
pub mod exec;
pub mod cli;
