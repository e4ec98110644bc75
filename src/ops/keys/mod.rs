//! The client-key lifecycle: generate, list, deploy, rotate, revoke,
//! archive, prune — the local, testable core of `remex keys`.
//!
//! Keys live in the key directory (`remote_execution.key_storage_path`,
//! 0700): `NAME` (OpenSSH private key, 0600) and `NAME.pub` (0644), the
//! state file `remex-keys.json` (which host uses which key, rotation
//! progress) and `archive/` (keys rotated away, until pruned).
//!
//! # Layout
//!
//! - `generate.rs` — [`generate()`] a key pair; [`KeyKind`], name checks, the
//!   default comment `remex@HOST`, the key directory's permissions.
//! - `state.rs` — [`KeyState`], the state file (atomic writes under a lock).
//! - `list.rs` — [`list()`]: keys on disk joined with the state ([`KeyInfo`],
//!   the `--json` boundary type).
//! - `authorized_keys.rs` — pure text edits of an authorized_keys file:
//!   [`add_key`], [`remove_key`], [`contains_key`] on a [`KeyLine`].
//! - `remote.rs` — the shell commands that read and atomically replace
//!   `~/.ssh/authorized_keys` on a host, with a compare-and-swap guard
//!   ([`read_command`], [`plan_edit`], [`write_command`], [`check_exit`]).
//! - `rotation.rs` — the per-host rotation state machine that never leaves a
//!   host without a working key ([`RotationStep`], [`plan_rotation`]).
//! - `archive.rs` — [`archive()`] a retired key, [`prune`] the archive.
//! - `atomic_file.rs`, `timestamp.rs`, `error.rs` — helpers and
//!   [`KeysError`].
//! - `resolve.rs` — which key remex logs in to a host with: the config's
//!   `key:`, else the state file's current key, else `default_key`.
//!
//! The fleet-wide operations, over the network (each returns a
//! [`KeysReport`] with one outcome per host, every change naming the key and
//! its fingerprint):
//!
//! - `deploy.rs` — [`deploy()`]: add a key, verify a fresh login with it.
//! - `rotate.rs` — [`rotate()`]: drive the rotation state machine per host.
//! - `revoke.rs` — [`revoke()`]: remove a key, refusing the only usable one.
//! - `session.rs` — the authorized_keys edit and the login check on a
//!   connection; `run.rs` — what the three share ([`RunError`]);
//!   `report.rs` — the boundary types and their `--json` schema.
//!
//! # Deploying a key (what the network layer does with these parts)
//!
//! ```text
//! KeyLine::from_public_key(&key)           // once
//! per host: run read_command()             → RemoteFile::parse(stdout)
//!           plan_edit(&file, Edit::Add(&k)) → None: already there
//!           run plan.command with plan.stdin → check_exit(status, stderr)
//!           verify: a fresh login with the new key only
//!           update_state(dir, |s| s.record_deployed(host, name, true))
//! ```
//!
//! **Invariant:** no passphrase or private key material appears in an error
//! or log line; keys are named by name, path or fingerprint.

mod atomic_file;
mod timestamp;

pub mod archive;
pub mod authorized_keys;
pub mod deploy;
pub mod error;
pub mod generate;
pub mod list;
pub mod remote;
pub mod report;
pub mod resolve;
pub mod revoke;
pub mod rotate;
pub mod rotation;
pub mod run;
pub mod session;
pub mod state;

pub use archive::{ArchivedKey, PruneReport, PrunedKey, archive, prune};
pub use authorized_keys::{KeyLine, add_key, contains_key, remove_key};
pub use deploy::{DeployRequest, deploy};
pub use error::KeysError;
pub use generate::{GeneratedKey, KeyKind, default_comment, generate, validate_name};
pub use list::{KeyInfo, list, read_public_key};
pub use remote::{
    BasedOn, Edit, RemoteEditError, RemoteFile, WritePlan, check_exit, plan_edit, read_command,
    write_command,
};
pub use report::{ChangeAction, KeyChange, KeyHostOutcome, KeyRef, KeysReport, KeysSummary};
pub use revoke::{RevokeRequest, revoke};
pub use rotate::{RotateRequest, rotate};
pub use rotation::{
    HostPlan, HostRotation, RotationAction, RotationEvent, RotationPlan, RotationStep,
    plan_rotation,
};
pub use run::RunError;
pub use state::{HostKeys, KeyRecord, KeyState, load_state, save_state, update_state};
pub use timestamp::now_rfc3339;

#[cfg(test)]
mod test_support;
