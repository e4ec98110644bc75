//! The client-key lifecycle: generate, list, deploy, rotate, revoke,
//! archive, prune — the local, testable core of `remex keys`.
//!
//! Keys live in the key directory (`remote_execution.key_storage_path`,
//! 0700): `NAME` (OpenSSH private key, 0600) and `NAME.pub` (0644), the
//! state file `remex-keys.json` (which host uses which key, rotation
//! progress) and `archive/` (keys rotated away, until pruned). The
//! directory itself — its paths and name checks, the state file
//! ([`KeyState`]), the archive, which key a host logs in with, and
//! [`KeysError`] — is `crate::keydir`, below the run layer; this module
//! re-exports its public types.
//!
//! # Layout
//!
//! - `generate.rs` — `generate()` a key pair; [`KeyKind`], the default
//!   comment `remex@HOST`.
//! - `list.rs` — [`crate::Executor::keys_list`]: keys on disk joined with the
//!   state and the config ([`KeyListing`], the `--json` boundary type).
//! - `authorized_keys.rs` — pure text edits of an authorized_keys file:
//!   `add_key`, `remove_key`, `contains_key` on a `KeyLine`.
//! - `remote.rs` — the shell commands that read and atomically replace
//!   `~/.ssh/authorized_keys` on a host, with a compare-and-swap guard
//!   (`read_command`, `plan_edit`, `write_command`, `check_exit`).
//! - `rotation.rs` — the per-host rotation state machine that never leaves a
//!   host without a working key (moving a [`HostRotation`] from
//!   [`RotationStep`] to step, `plan_rotation`).
//! - `local.rs` — [`crate::Executor::keys_generate`] and
//!   [`crate::Executor::keys_prune`]: the audited runs that contact no host.
//!
//! The fleet-wide operations, over the network (each returns a
//! [`KeysReport`] with one result per host, every change naming the key and
//! its fingerprint):
//!
//! - `deploy.rs` — [`crate::Executor::keys_deploy`]: add a key, verify a
//!   fresh login with it.
//! - `rotate.rs` — [`crate::Executor::keys_rotate`]: drive the rotation
//!   state machine per host.
//! - `revoke.rs` — [`crate::Executor::keys_revoke`]: remove a key, refusing
//!   the only usable one.
//! - `session.rs` — the authorized_keys edit and the login check on a
//!   connection; `run.rs` — what the three share; `report.rs` — the
//!   boundary types and their `--json` schema.
//!
//! # Deploying a key (what the network layer does with these parts)
//!
//! ```text
//! KeyLine::from_public_key(&key)           // once
//! per host: host_turn(host)                — held to the end of the step
//!           run read_command()             → RemoteFile::parse(stdout)
//!           plan_edit(&file, Edit::Add(&k)) → None: already there
//!           run plan.command with plan.stdin → check_exit(status, stderr)
//!           verify: a fresh login with the new key only
//!           update_state(dir, |s| s.record_deployed(host, name, true))
//! ```
//!
//! **Invariant:** key-state changes are serialized per host: deploy, rotate
//! and revoke do each host's whole step (read the state, edit
//! authorized_keys, write the state) in the host's turn (`run::host_turn`,
//! `keydir/lock.rs`: in one process and across processes) and decide on
//! the state read in that turn; archive and prune wait for every step.
//!
//! **Invariant:** no passphrase or private key material appears in an error
//! or log line; keys are named by name, path or fingerprint.

pub(crate) mod authorized_keys;
mod deploy;
pub(crate) mod generate;
pub(crate) mod list;
mod local;
pub(crate) mod remote;
mod report;
mod revoke;
mod rotate;
pub(crate) mod rotation;
mod run;
mod session;

pub use crate::keydir::{
    ArchivedKey, HostKeys, HostRotation, KeyRecord, KeyState, KeysError, PruneReport, PrunedKey,
    RotationStep, validate_name,
};
pub use deploy::DeployRequest;
pub use generate::KeyKind;
pub use list::{HostKeyUse, KeyInfo, KeyListing};
pub use local::{GenerateReport, GenerateRequest, Generated, PruneRunReport};
pub use report::{ChangeAction, KeyChange, KeyDetails, KeyRef, KeyResult, KeysReport};
pub use revoke::RevokeRequest;
pub use rotate::RotateRequest;
