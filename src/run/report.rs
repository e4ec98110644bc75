//! What a fan-out returns: one outcome per host, and the JSON schema of
//! `--json`.
//!
//! A host's failure is data here, not an `Err`: the run goes on for the other
//! hosts and the caller decides what a failure means. These are the boundary
//! types of the library, so they (and only they) derive `Serialize`.
//!
//! # JSON schema, version 1
//!
//! ```json
//! {"version":1,"operation":"exec",
//!  "results":[{"host":"vm01","address":"127.0.0.2","port":22,"user":"ops",
//!              "ok":true,"exit_code":0,"signal":null,
//!              "stdout":"…","stderr":"…","truncated":false,
//!              "duration_ms":12,"error":null}],
//!  "summary":{"total":1,"ok":1,"failed":0,"timed_out":0,"unreachable":0,
//!             "duration_ms":15}}
//! ```
//!
//! `stdout` and `stderr` are UTF-8 strings. When a stream's bytes are not
//! valid UTF-8, the string holds them with every invalid sequence replaced by
//! U+FFFD, and `stdout_base64` / `stderr_base64` carries the exact bytes
//! (standard base64 with padding); the `_base64` fields are absent otherwise.

use std::time::Duration;

use base64::Engine as _;
use serde::{Serialize, Serializer};

/// The version of the JSON schema; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Why a host did not succeed. Stable names: scripts match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The host name did not resolve.
    Dns,
    /// The TCP connection failed (refused, reset, unreachable) or the SSH
    /// handshake broke off.
    Connect,
    /// Connecting (TCP and SSH handshake) took longer than `connect_timeout`.
    ConnectTimeout,
    /// The server refused every credential remex offered, or no credential
    /// could be loaded.
    Auth,
    /// The host key is unknown (strict policy), changed, or revoked.
    HostKey,
    /// The command ran longer than its timeout and was stopped.
    Timeout,
    /// The command exited with a non-zero status.
    Exit,
    /// The command was killed by a signal.
    Signal,
    /// Reading local input (such as `--stdin`) failed, or the connection broke
    /// while the command ran.
    Io,
    /// The server did something remex cannot work with (a refused channel or
    /// exec request, a session closed without an exit status).
    Protocol,
    /// sudo refused: the user may not sudo, the password is wrong, or one is
    /// needed and none was given.
    Sudo,
    /// remex was interrupted (Ctrl-C); the remote command was stopped.
    Cancelled,
    /// Copying a script (or file) to the host, or cleaning it up, failed.
    Transfer,
}

impl ErrorKind {
    /// The name used in JSON and in human output.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Dns => "dns",
            ErrorKind::Connect => "connect",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::Auth => "auth",
            ErrorKind::HostKey => "host_key",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Exit => "exit",
            ErrorKind::Signal => "signal",
            ErrorKind::Io => "io",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Sudo => "sudo",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Transfer => "transfer",
        }
    }

    /// Whether the host was never reached (so nothing ran there).
    pub fn is_unreachable(self) -> bool {
        matches!(
            self,
            ErrorKind::Dns
                | ErrorKind::Connect
                | ErrorKind::ConnectTimeout
                | ErrorKind::Auth
                | ErrorKind::HostKey
        )
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A host's failure: its class and a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The class of failure, for scripts.
    pub kind: ErrorKind,
    /// What happened and, where remex knows, what to do about it.
    pub message: String,
    /// For a [`ErrorKind::HostKey`] failure: why the key was refused, typed,
    /// for callers that act on it (`hosts check`, `hosts trust`). Not in the
    /// JSON: the message says it for people, `kind` for scripts.
    #[serde(skip)]
    pub host_key: Option<HostKeyProblem>,
}

impl Failure {
    /// A failure of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
            host_key: None,
        }
    }

    /// A host-key refusal: kind [`ErrorKind::HostKey`], with its reason.
    pub fn host_key(problem: HostKeyProblem, message: impl Into<String>) -> Self {
        Failure {
            kind: ErrorKind::HostKey,
            message: message.into(),
            host_key: Some(problem),
        }
    }
}

/// Why a host key was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostKeyProblem {
    /// known_hosts has no line for the host (strict policy).
    Unknown {
        /// `SHA256:…` of the offered key.
        offered: String,
        /// Its type, e.g. `ssh-ed25519`.
        algorithm: String,
    },
    /// known_hosts pins other keys for the host.
    Changed {
        /// The pinned keys' fingerprints.
        expected: Vec<String>,
        /// The offered key's fingerprint.
        offered: String,
    },
    /// The offered key is on an `@revoked` line.
    Revoked {
        /// Its fingerprint.
        fingerprint: String,
    },
    /// The host offered a certificate; remex pins plain keys only.
    Certificate,
    /// accept-new could not write the pin.
    PinFailed,
}

impl HostKeyProblem {
    /// `unknown`, `changed`, `revoked`, `certificate` or `pin_failed`.
    pub fn state(&self) -> &'static str {
        match self {
            Self::Unknown { .. } => "unknown",
            Self::Changed { .. } => "changed",
            Self::Revoked { .. } => "revoked",
            Self::Certificate => "certificate",
            Self::PinFailed => "pin_failed",
        }
    }
}

/// The captured bytes of one output stream, capped at `--max-output`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// The bytes kept, at most the cap.
    pub bytes: Vec<u8>,
    /// Whether bytes beyond the cap were dropped.
    pub truncated: bool,
}

impl Captured {
    /// Appends `data`, keeping at most `cap` bytes in all.
    pub fn push(&mut self, data: &[u8], cap: usize) {
        let room = cap.saturating_sub(self.bytes.len());
        if data.len() > room {
            self.truncated = true;
        }
        self.bytes.extend_from_slice(&data[..data.len().min(room)]);
    }

    /// The bytes as text, invalid UTF-8 replaced by U+FFFD.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes)
    }
}

/// The outcome of one operation on one host.
#[derive(Debug, Clone)]
pub struct HostOutcome {
    /// The host's name in the config.
    pub host: String,
    /// The address remex connected to, as configured (name or IP).
    pub address: String,
    /// The SSH port.
    pub port: u16,
    /// The remote user.
    pub user: String,
    /// Exit status, when the command exited.
    pub exit_code: Option<u32>,
    /// Signal name (such as `KILL`), when the command was killed by one.
    pub signal: Option<String>,
    /// Standard output.
    pub stdout: Captured,
    /// Standard error (empty with `--pty`, where the two are merged).
    pub stderr: Captured,
    /// Wall time from the start of this host's work to its end, connecting
    /// included.
    pub duration: Duration,
    /// Why the host did not succeed; `None` means success.
    pub error: Option<Failure>,
    /// The host key's SHA256 fingerprint, once the host was reached.
    pub host_key: Option<String>,
    /// Whether this run pinned the host key (accept-new): recorded in the
    /// audit log as a trust change.
    pub pinned_host_key: bool,
}

impl HostOutcome {
    /// Whether the host succeeded.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

impl Serialize for HostOutcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            host: &'a str,
            address: &'a str,
            port: u16,
            user: &'a str,
            ok: bool,
            exit_code: Option<u32>,
            signal: Option<&'a str>,
            stdout: std::borrow::Cow<'a, str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            stdout_base64: Option<String>,
            stderr: std::borrow::Cow<'a, str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            stderr_base64: Option<String>,
            truncated: bool,
            duration_ms: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            host_key: Option<&'a str>,
            error: Option<&'a Failure>,
        }
        let base64_unless_utf8 = |c: &Captured| {
            std::str::from_utf8(&c.bytes)
                .is_err()
                .then(|| base64::engine::general_purpose::STANDARD.encode(&c.bytes))
        };
        Wire {
            host: &self.host,
            address: &self.address,
            port: self.port,
            user: &self.user,
            ok: self.ok(),
            exit_code: self.exit_code,
            signal: self.signal.as_deref(),
            stdout: self.stdout.text(),
            stdout_base64: base64_unless_utf8(&self.stdout),
            stderr: self.stderr.text(),
            stderr_base64: base64_unless_utf8(&self.stderr),
            truncated: self.stdout.truncated || self.stderr.truncated,
            duration_ms: millis(self.duration),
            host_key: self.host_key.as_deref(),
            error: self.error.as_ref(),
        }
        .serialize(serializer)
    }
}

/// Counts over a run whose hosts either succeed or fail, with no command
/// to time out: `hosts check`, the `keys` operations, `hosts trust/forget`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Hosts worked on.
    pub total: usize,
    /// Hosts where everything was done.
    pub ok: usize,
    /// Hosts with an error.
    pub failed: usize,
    /// Wall time of the run.
    pub duration_ms: u64,
}

impl Counts {
    /// Counts over the hosts of a run, given whether each succeeded.
    pub fn of(oks: impl IntoIterator<Item = bool>, elapsed: Duration) -> Counts {
        let (total, ok) = oks.into_iter().fold((0, 0), |(total, ok), host_ok| {
            (total + 1, ok + usize::from(host_ok))
        });
        Counts {
            total,
            ok,
            failed: total - ok,
            duration_ms: millis(elapsed),
        }
    }
}

/// Counts over a report's outcomes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Hosts selected.
    pub total: usize,
    /// Hosts that succeeded.
    pub ok: usize,
    /// Hosts that did not (timed out and unreachable ones included).
    pub failed: usize,
    /// Hosts whose command was stopped by the timeout.
    pub timed_out: usize,
    /// Hosts never reached (dns, connect, connect_timeout, auth, host_key).
    pub unreachable: usize,
    /// Wall time of the whole run.
    pub duration_ms: u64,
}

impl Summary {
    /// Counts over the hosts of a run, given each host's failure (`None`:
    /// it succeeded).
    pub fn tally<'a>(
        failures: impl IntoIterator<Item = Option<&'a Failure>>,
        elapsed: Duration,
    ) -> Summary {
        let mut summary = Summary {
            duration_ms: millis(elapsed),
            ..Summary::default()
        };
        for failure in failures {
            summary.total += 1;
            match failure {
                None => summary.ok += 1,
                Some(failure) => {
                    summary.failed += 1;
                    if failure.kind == ErrorKind::Timeout {
                        summary.timed_out += 1;
                    }
                    if failure.kind.is_unreachable() {
                        summary.unreachable += 1;
                    }
                }
            }
        }
        summary
    }
}

/// The script a `script` run sent to every host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScriptInfo {
    /// Its file name.
    pub name: String,
    /// Hex SHA-256 of its bytes.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The result of one operation over a set of hosts.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub version: u32,
    /// `"exec"` for commands, `"script"` for scripts.
    pub operation: &'static str,
    /// The run id: every audit record of this run carries it
    /// (`remex audit show --run ID`).
    pub run: String,
    /// For `script`: what was run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<ScriptInfo>,
    /// One outcome per selected host, in selection order.
    pub results: Vec<HostOutcome>,
    /// Counts over `results`.
    pub summary: Summary,
    /// Set when some of the run's audit records could not be written (the
    /// actions happened; the log is missing their `end` records).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_error: Option<String>,
}

impl Report {
    /// Builds a report, computing the summary.
    pub fn new(operation: &'static str, results: Vec<HostOutcome>, elapsed: Duration) -> Self {
        let summary = Summary::tally(results.iter().map(|r| r.error.as_ref()), elapsed);
        Report {
            version: SCHEMA_VERSION,
            operation,
            run: String::new(),
            script: None,
            results,
            summary,
            audit_error: None,
        }
    }

    /// Whether any host was interrupted by a cancel (Ctrl-C).
    pub fn cancelled(&self) -> bool {
        self.results.iter().any(|r| {
            r.error
                .as_ref()
                .is_some_and(|f| f.kind == ErrorKind::Cancelled)
        })
    }

    /// Whether every host succeeded.
    pub fn all_ok(&self) -> bool {
        self.summary.failed == 0
    }
}

/// Whole milliseconds, saturating.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_of_hosts_that_succeed_or_fail() {
        let counts = Counts::of([true, false, true], Duration::from_millis(1500));
        assert_eq!(
            serde_json::to_value(&counts).unwrap_or_default(),
            serde_json::json!({"total": 3, "ok": 2, "failed": 1, "duration_ms": 1500})
        );
        assert_eq!(Counts::of([], Duration::ZERO).failed, 0);
    }

    fn outcome(stdout: &[u8], error: Option<Failure>) -> HostOutcome {
        HostOutcome {
            host: "vm01".into(),
            address: "127.0.0.2".into(),
            port: 22,
            user: "ops".into(),
            exit_code: Some(0),
            signal: None,
            stdout: Captured {
                bytes: stdout.to_vec(),
                truncated: false,
            },
            stderr: Captured::default(),
            duration: Duration::from_millis(7),
            error,
            host_key: None,
            pinned_host_key: false,
        }
    }

    #[test]
    fn capture_keeps_at_most_the_cap() {
        let mut c = Captured::default();
        c.push(b"hello", 8);
        assert!(!c.truncated);
        c.push(b"world", 8);
        assert_eq!(c.bytes, b"hellowor");
        assert!(c.truncated);
    }

    #[test]
    fn utf8_output_has_no_base64_twin() {
        let json = serde_json::to_value(outcome(b"hi\n", None)).unwrap_or_default();
        assert_eq!(json["stdout"], "hi\n");
        assert!(json.get("stdout_base64").is_none());
        assert_eq!(json["ok"], true);
        assert_eq!(json["duration_ms"], 7);
        assert!(json["error"].is_null());
    }

    #[test]
    fn non_utf8_output_is_lossy_text_plus_exact_base64() {
        let json = serde_json::to_value(outcome(b"a\xffb", None)).unwrap_or_default();
        assert_eq!(json["stdout"], "a\u{FFFD}b");
        assert_eq!(json["stdout_base64"], "Yf9i");
    }

    #[test]
    fn summary_counts_classes() {
        let results = vec![
            outcome(b"", None),
            outcome(b"", Some(Failure::new(ErrorKind::Timeout, "t"))),
            outcome(b"", Some(Failure::new(ErrorKind::Connect, "c"))),
        ];
        let report = Report::new("exec", results, Duration::from_secs(1));
        assert_eq!(report.summary.ok, 1);
        assert_eq!(report.summary.failed, 2);
        assert_eq!(report.summary.timed_out, 1);
        assert_eq!(report.summary.unreachable, 1);
        assert!(!report.all_ok());
        let json = serde_json::to_value(&report).unwrap_or_default();
        assert_eq!(json["error"], serde_json::Value::Null);
        assert_eq!(json["results"][1]["error"]["kind"], "timeout");
        assert_eq!(json["version"], 1);
    }
}
