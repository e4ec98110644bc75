//! The audit log: a tamper-evident, crash-safe JSON Lines record of every
//! action remex takes.
//!
//! ```no_run
//! use remex::audit::{AuditLog, Event, Op, Record};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let config = remex::config::AuditConfig::default();
//! let log = AuditLog::open(&config)?; // fails closed: contact no host on Err
//! let run = "r-20261124-0001";
//! log.append(Record::new(Event::Start, Op::Exec, run).host("vm01").port(22_u16).argv(["uptime"]))?;
//! // ... run the command ...
//! log.append(Record::new(Event::End, Op::Exec, run).host("vm01").exit_code(0_u32).duration_ms(41_u64))?;
//! log.sync()?; // group commit under `fsync: start`
//! # Ok(()) }
//! ```
//!
//! # Format
//!
//! One JSON object per line (JSON Lines, UTF-8), schema version 1. Members
//! appear in this order; those marked `?` are left out when they have no
//! value:
//!
//! | member | type | meaning |
//! |---|---|---|
//! | `v` | 1 | schema version |
//! | `seq` | integer | position in the chain, from 1, contiguous across rotated files |
//! | `ts` | string | UTC time of writing, RFC 3339 with milliseconds: `2026-11-24T01:02:03.456Z` |
//! | `run` | string | run id |
//! | `actor` | string | local OS user |
//! | `workflow`? | string | name a workflow gave itself (`--actor`, `REMEX_ACTOR`) |
//! | `orchestrator` | string | host name of the machine running remex |
//! | `event` | `start` \| `end` \| `key` \| `host_key` \| `file` \| `request` | what happened |
//! | `op` | `exec` \| `script` \| `upload` \| `download` \| `check` \| `keys.generate` \| `keys.deploy` \| `keys.rotate` \| `keys.revoke` \| `keys.prune` \| `hosts.trust` \| `hosts.forget` \| `api` | in which operation |
//! | `host`? `address`? `port`? `user`? | | inventory name, address (`request` records: the client's), SSH port, remote user |
//! | `sudo`? | string | the user a command ran as through sudo (`--sudo`: `root`) |
//! | `host_key`? | string | host key fingerprint, `SHA256:…` |
//! | `argv`? / `command`? | list / string | the command's words or raw shell line, **redacted** |
//! | `script_sha256`? | hex | SHA-256 of a script |
//! | `paths`? `bytes`? `sha256`? | | files (transfers: [source, destination]), bytes moved, their SHA-256 |
//! | `exit_code`? `signal`? | | how the remote command ended |
//! | `error_kind`? `error`? | | failure class (`connect`, `auth`, `timeout`, …) and message, redacted |
//! | `duration_ms`? | integer | how long the action took on the host |
//! | `fingerprint`? | string | key operations: the key's fingerprint |
//! | `key`? `action`? | string | `key`/`host_key` records: the key's name, what changed (`added`, `removed`, `pinned`, …) |
//! | `request`? | string | the id of the request that started the run (a service's request id) |
//! | `status`? | integer | `request` records: the answer's HTTP status |
//! | `client_request`? | string | `request` records: the client's own `X-Request-Id` |
//! | `count`? | integer | `request` records of denied requests: how many requests the record stands for |
//! | `prev` | hex | `hash` of the previous record; 64 zeros for the first |
//! | `hash` | hex | this record's hash, always the last member |
//!
//! A `start` record is written before anything is sent to the host, and an
//! `end` record with the outcome after. A `start` without an `end` means
//! remex stopped (was killed, or the machine failed) while the action was
//! under way — or before it began.
//!
//! # The chain
//!
//! `hash` = SHA-256, lower-case hex, of the record's **canonical bytes**:
//! the line exactly as written, without its trailing `,"hash":"…"` member
//! and newline, i.e. `line[..len - 75] + "}"`. The writer produces those
//! bytes with serde_json from [`Record`], whose field order is fixed, with
//! no whitespace; the verifier never re-serializes, it hashes the bytes on
//! disk. With `audit.hmac_key_path`, `hash` is HMAC-SHA256 with that key
//! instead.
//!
//! Next to the log, the **head file** (`PATH.head`) names the last record
//! committed to disk (`seq`, `hash`, the file holding it and that file's
//! length; with a key, an HMAC over `seq` and `hash`). It is replaced
//! atomically after each commit, and never names data that is not on disk
//! yet.
//!
//! # Durability and concurrency
//!
//! Each append holds an exclusive `flock` on `PATH.lock` (so processes
//! never interleave records or fork the chain), writes the whole line with
//! one `write` on an `O_APPEND` file, and, under `fsync: always` (default)
//! or for a `start` record under `fsync: start`, `fdatasync`s the log and
//! then replaces the head (written and renamed, not itself synced: one
//! disk flush per commit; see `head.rs` for what a power failure can do to
//! it) before returning. Under `fsync: start` the other records are
//! committed together by [`AuditLog::sync`] at the end of the run.
//! [`AuditLog::append_all`] writes a batch (e.g. the `start` records of
//! every host of a fan-out) with one sync and one head update.
//!
//! A crash (`kill -9`) leaves at worst a partial last line, never
//! acknowledged to the caller: [`verify`] notes it, and the next append
//! removes it. A crash between writing a record and updating the head
//! leaves a complete record the head does not name yet: the next append
//! checks it links correctly and carries on after it. A power failure under
//! `fsync: start` can lose the records written since the last commit, and
//! under either policy can leave the head file older than the log (the
//! writer catches up) or, on file systems that do not order a rename after
//! the renamed file's data (ext4 does), empty (`head invalid`: the writer
//! refuses until someone has looked).
//!
//! # Fail closed
//!
//! [`AuditLog::open`] creates the directory (0700) and file (0600) when
//! missing and fails with a typed [`AuditError`] saying why (cannot create
//! the directory, permission denied, read-only file system, disk full, a
//! bad HMAC key, an inconsistent log). A failed `start` append is the same:
//! the caller must not contact the host. The writer also refuses to append
//! to a log that does not continue its head (truncated, head deleted,
//! foreign lines after the head, key setting changed): the message says to
//! run `remex audit verify`, and that moving the log files aside starts a
//! new chain.
//!
//! # Rotation
//!
//! When a record would take the log past `max_size`, the log is renamed to
//! `PATH.N` (N = highest existing + 1, so `PATH.1` is the oldest and names
//! never change) and the chain continues in a fresh `PATH`, whose first
//! record's `prev` is the last hash of the rotated file. remex never deletes
//! rotated files.
//!
//! # What [`verify`] detects, and what it does not
//!
//! Detected, reporting the first broken record (file, line, seq, kind):
//!
//! - any changed byte in a record: `edited`, at that line (any member,
//!   including `seq`, `prev` and `hash` themselves);
//! - a deleted record (or a whole rotated file deleted, or the oldest
//!   files): `deleted or inserted`, at the line where the gap is;
//! - an inserted or duplicated line: `deleted or inserted`, at that line
//!   (a forged line with a recomputed hash is caught at the next record,
//!   whose `seq` or `prev` no longer fits);
//! - two adjacent lines swapped: `swapped`, at the first of them;
//! - records removed from the end (the whole log file too): `truncated`,
//!   where the first missing record should be;
//! - the head file deleted (`head missing`) or edited (`head invalid` with
//!   a key; without one, `truncated`/`edited` when it no longer fits);
//! - with a key: a chain rewritten by someone without the key (hashes
//!   recomputed as plain SHA-256 or with another key): `edited` at line 1.
//!
//! Not detected:
//!
//! - **Without a key, a complete rewrite.** Anyone who can write the log
//!   and its head can rebuild a consistent chain with different contents
//!   (the hashes are public). The chain proves internal consistency, not
//!   authorship: use `hmac_key_path` with the key readable by fewer people
//!   than the log, and/or ship records off the machine.
//! - **Deleting everything**: the log, its rotated files and its head
//!   together look like a log never written. Truncating the log *and*
//!   rewriting the head to match is undetectable without a key; with a key
//!   it needs a copy of an older head file (replay).
//! - **Records not yet committed** (see [`Note::Uncommitted`]): under
//!   `fsync: start`, the records written since the last commit can be
//!   removed from the end without a trace.
//! - **Someone with the key** (or root on the machine holding it) can
//!   forge anything. And a record says what remex was asked and told, not
//!   what the remote host really did.
//!
//! # Redaction
//!
//! [`AuditLog::append`] redacts `argv`, `command`, `error`, `paths` and `key` with the
//! config's patterns ([`DEFAULT_PATTERNS`] plus `audit.redact`); the
//! caller adds a run's literal secrets (`--secret-env` values, sudo
//! passwords) with [`Redactor::with_secrets`] on [`AuditLog::redactor`] and
//! redacts records and output with it. See [`Redactor`].
//!
//! # Layout
//!
//! - `record.rs`: [`Record`], [`Event`], [`Op`] — the schema.
//! - `chain.rs`: canonical bytes, SHA-256/HMAC, splitting a line.
//! - `head.rs`: the head file.
//! - `files.rs`: the log's file names, rotation numbering, snapshots,
//!   reading lines.
//! - `log.rs`: [`AuditLog`], the writer.
//! - `verify.rs`: [`verify`] and its [`VerifyReport`].
//! - `redact.rs`: [`Redactor`].
//! - `read.rs`: [`read_records`], [`tail`], [`Follower`].
//! - `filter.rs`: [`Filter`] and `--since`/`--until` parsing.
//! - `time.rs`: RFC 3339 timestamps.
//! - `trail.rs`: [`Trail`], one run's records: the `start` batch, then
//!   `end` records group-committed by a writer thread.
//! - `origin.rs`: the local user and host name.
//! - `error.rs`: [`AuditError`].
//!
//! **Invariant:** nothing is sent to a host unless its `start` record is on
//! disk (enforced by the caller: it contacts no host when `open` or a
//! `start` append fails).
//!
//! **Invariant:** the head file never names a record that is not on disk.

mod chain;
mod error;
mod files;
mod filter;
mod head;
mod log;
mod origin;
mod read;
mod record;
mod redact;
mod time;
mod trail;
mod verify;

pub use crate::config::{AuditConfig, FsyncPolicy};
pub use chain::ZERO_HASH;
pub use error::AuditError;
pub use filter::{Filter, parse_time};
pub use head::Head;
pub use log::{Appended, AuditLog};
pub use origin::{hostname, local_actor};
pub use read::{Follower, Records, Stored, read_records, tail};
pub use record::{Event, Op, Record, SCHEMA_VERSION};
pub use redact::{DEFAULT_PATTERNS, REDACTED, Redactor};
pub use time::{format_ms, ms_to_system, parse_rfc3339, system_to_ms};
pub use trail::{Stamp, Trail, new_run_id};
pub use verify::{Break, BreakKind, Note, VerifyReport, verify};
