//! remex: run commands on a fleet of Linux hosts over SSH.

pub mod audit;
pub mod cli;
pub mod config;
pub mod connection;
pub mod exec;
pub mod executor;
pub mod host_keys;
pub mod identity;
pub mod keys;
pub mod known_hosts;
pub mod lab;
pub mod login;
pub mod pattern;
pub mod quote;
pub mod report;
pub mod script;
pub mod sudo;
pub mod targets;
pub mod tcp;
pub mod transfer;
