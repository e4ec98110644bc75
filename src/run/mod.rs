//! The run layer: what every operation shares.
//!
//! - `executor.rs` — [`Executor`]: the config, the views of known_hosts and
//!   the key state, loaded keys, and the connection pool of a (possibly
//!   long-lived) process.
//! - `pool.rs` — the open connections, one per host, within the
//!   `max_parallel` budget shared by every run.
//! - `runner.rs` — the audited runner every operation goes through: `start`
//!   records, the per-host wrapper, `end` records, redaction, cancellation.
//! - `context.rs` — [`RunContext`]: a run's actor, limit, cancel, secrets,
//!   [`Prompter`] and [`Observer`].
//! - `cancel.rs` — [`Cancel`], the one way to stop a run.
//! - `request_error.rs` — [`RequestError`]: a request refused, naming the
//!   field at fault.
//! - `report.rs` — [`RunReport`], [`HostReport`], [`Failure`]: the one report
//!   envelope and its JSON schema.

pub(crate) mod cancel;
pub(crate) mod context;
pub(crate) mod executor;
pub(crate) mod pool;
pub(crate) mod report;
pub(crate) mod request_error;
pub(crate) mod runner;

pub use cancel::{Cancel, CancelHandle};
pub use context::{HostKeyOffer, NoPrompter, Observer, Prompter, RunContext, Stream};
pub use executor::{Error, Executor, ExecutorBuilder};
pub use report::{
    Detail, ErrorKind, Failure, HostKeyProblem, HostReport, Listing, NoDetails, NoHost, RunReport,
    SCHEMA_VERSION, Summary,
};
pub use request_error::RequestError;
