//! [`Record`]: one line of the audit log, schema version 1.
//!
//! A record is one JSON object on one line. Its members appear in the
//! order of [`Record`]'s fields; optional members are left out when they
//! have no value; `hash` is always last. See the module documentation of
//! [`crate::audit`] for the schema and the hash.
//!
//! No I/O here.

use serde::{Deserialize, Serialize};

/// The schema version written in every record's `v`.
pub const SCHEMA_VERSION: u32 = 1;

/// What happened: the moment in an action a record marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// An action is about to start on a host: written (and, under every
    /// `fsync` policy, forced to disk) before anything is sent to it.
    Start,
    /// An action ended on a host, with its outcome.
    End,
    /// A client key changed: generated, archived or pruned locally, or
    /// added to, verified on or removed from a host; `action` says which,
    /// `key` and `fingerprint` name the key.
    Key,
    /// A host key was pinned, replaced or forgotten (`hosts.trust`,
    /// `hosts.forget`, or pinned on first use under `accept-new`);
    /// `action` says which, `fingerprint` (and `host_key`) hold its
    /// fingerprint.
    HostKey,
    /// One file, directory or symlink of a transfer: `paths` [source,
    /// destination], `bytes` moved, `sha256`, and `action` (`written`,
    /// `unchanged`, `failed`).
    File,
    /// A request to `remex serve` (allowed or denied): `action` is the
    /// method and path, `status` the HTTP status, `workflow` the token's
    /// name.
    Request,
}

impl Event {
    /// The name written in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Start => "start",
            Event::End => "end",
            Event::Key => "key",
            Event::HostKey => "host_key",
            Event::File => "file",
            Event::Request => "request",
        }
    }
}

/// Which remex operation a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Op {
    /// `remex exec`: a command (argv or raw shell string).
    #[serde(rename = "exec")]
    Exec,
    /// `remex script`: a local script run remotely (`script_sha256`).
    #[serde(rename = "script")]
    Script,
    /// The remote processes of an `exec` or `script` run were stopped
    /// after the fact (a service restarted after a crash): same `run` id.
    #[serde(rename = "exec.stop")]
    ExecStop,
    /// `remex upload`: `paths` = [local, remote], `bytes`, `sha256`.
    #[serde(rename = "upload")]
    Upload,
    /// `remex download`: `paths` = [remote, local], `bytes`, `sha256`.
    #[serde(rename = "download")]
    Download,
    /// `remex check`: connect and authenticate only.
    #[serde(rename = "check")]
    Check,
    /// A key pair was generated.
    #[serde(rename = "keys.generate")]
    KeysGenerate,
    /// A public key was added to a host's `authorized_keys`.
    #[serde(rename = "keys.deploy")]
    KeysDeploy,
    /// A key was replaced by a new one on a host.
    #[serde(rename = "keys.rotate")]
    KeysRotate,
    /// A public key was removed from a host's `authorized_keys`.
    #[serde(rename = "keys.revoke")]
    KeysRevoke,
    /// Unused key files were removed.
    #[serde(rename = "keys.prune")]
    KeysPrune,
    /// A host key was added to remex's known_hosts.
    #[serde(rename = "hosts.trust")]
    HostsTrust,
    /// A host key was removed from remex's known_hosts.
    #[serde(rename = "hosts.forget")]
    HostsForget,
    /// A request to `remex serve`'s API.
    #[serde(rename = "api")]
    Api,
    /// A named action from the config's `actions:` (`remex action run`):
    /// `action` names it, `params` holds its params (secret ones
    /// `[REDACTED]`), `argv` the words it became.
    #[serde(rename = "action")]
    Action,
}

impl Op {
    /// Every operation, for listings and `--op` completion.
    pub const ALL: [Op; 15] = [
        Op::Exec,
        Op::Script,
        Op::ExecStop,
        Op::Upload,
        Op::Download,
        Op::Check,
        Op::KeysGenerate,
        Op::KeysDeploy,
        Op::KeysRotate,
        Op::KeysRevoke,
        Op::KeysPrune,
        Op::HostsTrust,
        Op::HostsForget,
        Op::Api,
        Op::Action,
    ];

    /// The name written in the log, e.g. `keys.deploy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Exec => "exec",
            Op::Script => "script",
            Op::ExecStop => "exec.stop",
            Op::Upload => "upload",
            Op::Download => "download",
            Op::Check => "check",
            Op::KeysGenerate => "keys.generate",
            Op::KeysDeploy => "keys.deploy",
            Op::KeysRotate => "keys.rotate",
            Op::KeysRevoke => "keys.revoke",
            Op::KeysPrune => "keys.prune",
            Op::HostsTrust => "hosts.trust",
            Op::HostsForget => "hosts.forget",
            Op::Api => "api",
            Op::Action => "action",
        }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One audit record. Build it with [`Record::new`] and the setters, then
/// give it to [`crate::audit::AuditLog::append`], which fills in `v`,
/// `seq`, `ts`, `prev` and `hash` (and `actor`/`orchestrator` when left
/// empty) and redacts `argv`, `command`, `error`, `paths` and `key`.
///
/// The field order is the order of the members in the log, and part of the
/// hash: do not reorder fields; add new ones (with a new schema version)
/// before `prev`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Schema version, [`SCHEMA_VERSION`]. Set by `append`.
    pub v: u32,
    /// Position in the whole chain, from 1, across rotated files. Set by
    /// `append`.
    pub seq: u64,
    /// When the record was written: UTC, RFC 3339 with milliseconds. Set
    /// by `append`.
    pub ts: String,
    /// The run this record belongs to (the run id that also tags remote
    /// processes), so a run's records can be found together.
    pub run: String,
    /// The local OS user who ran remex. Default: filled in by `append`.
    pub actor: String,
    /// The name a workflow gave itself (`--actor`, `REMEX_ACTOR`), when it
    /// did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// The orchestrator machine's host name. Default: filled in by
    /// `append`.
    pub orchestrator: String,
    /// What happened.
    pub event: Event,
    /// In which operation.
    pub op: Op,
    /// The host's name in the inventory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The address connected to (IP or DNS name, as configured or
    /// resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The SSH port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The remote user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The user the command ran as through sudo (`--sudo`: `root`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sudo: Option<String>,
    /// The host key's fingerprint (`SHA256:…`), once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
    /// The command's words, redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// A raw shell command line (`--raw`), redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// SHA-256 (hex) of a script's content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_sha256: Option<String>,
    /// Files involved: for transfers [source, destination]; for key
    /// operations the key files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// Bytes moved (transfers) or sent as stdin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// SHA-256 (hex) of the content moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The remote command's exit status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<u32>,
    /// The signal that ended the remote command (`TERM`, `KILL`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// The failure class (`report::ErrorKind::as_str`: `connect`, `auth`,
    /// `timeout`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    /// The failure message, redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long the action took on this host, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// For key operations: the key's fingerprint (`SHA256:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// `key` and `host_key` records: the key's name (client keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `key` and `host_key` records: what changed (`generated`, `added`,
    /// `verified`, `now_used`, `removed`, `archived`, `pruned`, `pinned`,
    /// `replaced`, `forgotten`, …). Records of op `action`: the action's
    /// name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Records of op `action`: its params by name (a secret one
    /// `[REDACTED]`; string values redacted like `argv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// The request that started the run, when a caller gave it an id (a
    /// service's request id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// `request` records: the HTTP status of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `request` records: the `X-Request-Id` the client sent, as it sent
    /// it (when sane). Never the record's `request`, which is remex's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request: Option<String>,
    /// `request` records of denied requests, which are coalesced: how many
    /// requests (from one client address, for one reason) this record
    /// stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// `hash` of the previous record in the chain; 64 zeros for the first.
    /// Set by `append`.
    pub prev: String,
    /// SHA-256 (or HMAC-SHA256 with `audit.hmac_key_path`), lower-case hex,
    /// of this record's line without its `hash` member. Set by `append`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
}

/// Setters for the optional fields: `record.host("vm01").port(22)`.
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {
        $(
            $(#[$doc])*
            #[must_use]
            pub fn $name(mut self, value: impl Into<$ty>) -> Self {
                self.$name = Some(value.into());
                self
            }
        )*
    };
}

impl Record {
    /// A record of `event` in operation `op` of run `run`, with every
    /// optional field empty.
    pub fn new(event: Event, op: Op, run: impl Into<String>) -> Record {
        Record {
            v: SCHEMA_VERSION,
            seq: 0,
            ts: String::new(),
            run: run.into(),
            actor: String::new(),
            workflow: None,
            orchestrator: String::new(),
            event,
            op,
            host: None,
            address: None,
            port: None,
            user: None,
            sudo: None,
            host_key: None,
            argv: None,
            command: None,
            script_sha256: None,
            paths: None,
            bytes: None,
            sha256: None,
            exit_code: None,
            signal: None,
            error_kind: None,
            error: None,
            duration_ms: None,
            fingerprint: None,
            key: None,
            action: None,
            params: None,
            request: None,
            status: None,
            client_request: None,
            count: None,
            prev: String::new(),
            hash: String::new(),
        }
    }

    setters! {
        /// Sets `workflow`.
        workflow: String;
        /// Sets `host`.
        host: String;
        /// Sets `address`.
        address: String;
        /// Sets `port`.
        port: u16;
        /// Sets `user`.
        user: String;
        /// Sets `sudo`.
        sudo: String;
        /// Sets `host_key`.
        host_key: String;
        /// Sets `command` (redacted by `append`).
        command: String;
        /// Sets `script_sha256`.
        script_sha256: String;
        /// Sets `bytes`.
        bytes: u64;
        /// Sets `sha256`.
        sha256: String;
        /// Sets `exit_code`.
        exit_code: u32;
        /// Sets `signal`.
        signal: String;
        /// Sets `error_kind`.
        error_kind: String;
        /// Sets `error` (redacted by `append`).
        error: String;
        /// Sets `duration_ms`.
        duration_ms: u64;
        /// Sets `fingerprint`.
        fingerprint: String;
        /// Sets `key`.
        key: String;
        /// Sets `action`.
        action: String;
        /// Sets `params` (string values redacted by `append`).
        params: std::collections::BTreeMap<String, serde_json::Value>;
        /// Sets `request`.
        request: String;
        /// Sets `status`.
        status: u16;
        /// Sets `client_request`.
        client_request: String;
        /// Sets `count`.
        count: u64;
    }

    /// Sets `actor` (default: the local user name).
    #[must_use]
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }

    /// Sets `orchestrator` (default: this machine's host name).
    #[must_use]
    pub fn orchestrator(mut self, name: impl Into<String>) -> Self {
        self.orchestrator = name.into();
        self
    }

    /// Sets `argv` (redacted by `append`).
    #[must_use]
    pub fn argv<I: IntoIterator<Item = S>, S: Into<String>>(mut self, argv: I) -> Self {
        self.argv = Some(argv.into_iter().map(Into::into).collect());
        self
    }

    /// Sets `paths`.
    #[must_use]
    pub fn paths<I: IntoIterator<Item = S>, S: Into<String>>(mut self, paths: I) -> Self {
        self.paths = Some(paths.into_iter().map(Into::into).collect());
        self
    }

    /// Whether this record reports a failure: an `end` record with a
    /// non-zero exit code, a signal or an error.
    pub fn failed(&self) -> bool {
        self.event == Event::End
            && (self.exit_code.is_some_and(|code| code != 0)
                || self.signal.is_some()
                || self.error_kind.is_some()
                || self.error.is_some())
    }

    /// The canonical bytes that `hash` covers: the record serialized
    /// without `hash`. serde_json writes struct fields in declaration order
    /// with no whitespace, and escapes control characters, so this is
    /// deterministic and holds no newline.
    pub(crate) fn canonical(&self) -> Result<Vec<u8>, serde_json::Error> {
        if self.hash.is_empty() {
            serde_json::to_vec(self)
        } else {
            let mut unsealed = self.clone();
            unsealed.hash.clear();
            serde_json::to_vec(&unsealed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_record_leaves_out_absent_fields_in_a_fixed_order() {
        let record = Record::new(Event::Start, Op::Exec, "r1")
            .actor("alice")
            .orchestrator("orch");
        let text = String::from_utf8(record.canonical().unwrap()).unwrap();
        assert_eq!(
            text,
            r#"{"v":1,"seq":0,"ts":"","run":"r1","actor":"alice","orchestrator":"orch","event":"start","op":"exec","prev":""}"#
        );
    }

    #[test]
    fn every_field_round_trips() {
        let record = Record::new(Event::End, Op::KeysDeploy, "r2")
            .actor("bob")
            .orchestrator("orch")
            .workflow("nightly")
            .host("vm01")
            .address("10.0.0.11")
            .port(2222_u16)
            .user("ops")
            .host_key("SHA256:abc")
            .argv(["echo", "hi\nthere"])
            .command("echo hi")
            .script_sha256("00ff")
            .paths(["/a", "/b"])
            .bytes(12_u64)
            .sha256("11ee")
            .exit_code(3_u32)
            .signal("TERM")
            .error_kind("exit")
            .error("boom")
            .duration_ms(42_u64)
            .fingerprint("SHA256:def");
        let bytes = record.canonical().unwrap();
        assert!(!bytes.contains(&b'\n'), "one line");
        let back: Record = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, record);
        assert!(back.failed());
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains(r#""op":"keys.deploy""#), "{text}");
        assert!(
            text.ends_with(r#""fingerprint":"SHA256:def","prev":""}"#),
            "{text}"
        );
    }

    #[test]
    fn failed_means_an_end_with_a_bad_outcome() {
        let end = || Record::new(Event::End, Op::Exec, "r");
        assert!(!end().exit_code(0_u32).failed());
        assert!(end().exit_code(1_u32).failed());
        assert!(end().signal("KILL").failed());
        assert!(end().error_kind("timeout").failed());
        assert!(!Record::new(Event::Start, Op::Exec, "r").error("x").failed());
    }

    #[test]
    fn op_names_match_serde() {
        for op in Op::ALL {
            assert_eq!(
                serde_json::to_string(&op).unwrap(),
                format!("\"{}\"", op.as_str())
            );
        }
        for event in [Event::Start, Event::End, Event::Key, Event::HostKey] {
            assert_eq!(
                serde_json::to_string(&event).unwrap(),
                format!("\"{event}\"")
            );
        }
    }
}
