//! What `exec` and `script` report per host ([`ExecResult`]) and per run
//! ([`ExecDetails`]), with their JSON.
//!
//! `stdout` and `stderr` are UTF-8 strings. When a stream's bytes are not
//! valid UTF-8, the string holds them with every invalid sequence replaced
//! by U+FFFD, and `stdout_base64` / `stderr_base64` carries the exact bytes
//! (standard base64 with padding); the `_base64` fields are absent
//! otherwise.

use base64::Engine as _;
use serde::{Serialize, Serializer};

use crate::audit::{Record, Redactor};
use crate::run::runner::{HostDetail, Redact};

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

    fn redact(&mut self, redactor: &Redactor) {
        if let std::borrow::Cow::Owned(bytes) = redactor.redact_bytes(&self.bytes) {
            self.bytes = bytes;
        }
    }
}

/// One host's command: how it ended and what it printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecResult {
    /// Exit status, when the command exited.
    pub exit_code: Option<u32>,
    /// Signal name (such as `KILL`), when the command was killed by one.
    pub signal: Option<String>,
    /// Standard output.
    pub stdout: Captured,
    /// Standard error (empty with `--pty`, where the two are merged).
    pub stderr: Captured,
    /// The host key's SHA256 fingerprint, once the host was reached.
    pub host_key: Option<String>,
}

impl Serialize for ExecResult {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            exit_code: Option<u32>,
            signal: Option<&'a str>,
            stdout: std::borrow::Cow<'a, str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            stdout_base64: Option<String>,
            stderr: std::borrow::Cow<'a, str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            stderr_base64: Option<String>,
            truncated: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            host_key: Option<&'a str>,
        }
        let base64_unless_utf8 = |c: &Captured| {
            std::str::from_utf8(&c.bytes)
                .is_err()
                .then(|| base64::engine::general_purpose::STANDARD.encode(&c.bytes))
        };
        Wire {
            exit_code: self.exit_code,
            signal: self.signal.as_deref(),
            stdout: self.stdout.text(),
            stdout_base64: base64_unless_utf8(&self.stdout),
            stderr: self.stderr.text(),
            stderr_base64: base64_unless_utf8(&self.stderr),
            truncated: self.stdout.truncated || self.stderr.truncated,
            host_key: self.host_key.as_deref(),
        }
        .serialize(serializer)
    }
}

impl ExecResult {
    /// How the command ended, without what it printed: for a caller that
    /// got the output line by line already (the service's `host_finished`
    /// event).
    pub fn outcome(&self) -> ExecOutcome<'_> {
        ExecOutcome {
            exit_code: self.exit_code,
            signal: self.signal.as_deref(),
            truncated: self.stdout.truncated || self.stderr.truncated,
            host_key: self.host_key.as_deref(),
        }
    }
}

/// [`ExecResult`] without the output: its JSON is the result's but for
/// `stdout`, `stderr` and their `_base64` twins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ExecOutcome<'a> {
    /// Exit status, when the command exited.
    pub exit_code: Option<u32>,
    /// Signal name, when the command was killed by one.
    pub signal: Option<&'a str>,
    /// Whether output beyond the cap was dropped.
    pub truncated: bool,
    /// The host key's SHA256 fingerprint, once the host was reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_key: Option<&'a str>,
}

impl Redact for ExecResult {
    fn redact(&mut self, redactor: &Redactor) {
        self.stdout.redact(redactor);
        self.stderr.redact(redactor);
    }
}

impl HostDetail for ExecResult {
    fn end_record(&self, mut record: Record) -> Record {
        if let Some(key) = &self.host_key {
            record = record.host_key(key.clone());
        }
        if let Some(code) = self.exit_code {
            record = record.exit_code(code);
        }
        if let Some(signal) = &self.signal {
            record = record.signal(signal.clone());
        }
        record
    }
}

/// What a `script` run, or an action, adds to its report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExecDetails {
    /// For `script`: what was run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<ScriptInfo>,
    /// For an action (`operation: "action"`): which, with which params.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionInfo>,
}

/// The action a run was: its name and its params (a secret one as
/// `[REDACTED]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionInfo {
    /// The action's name.
    pub name: String,
    /// Its params as the audit records show them.
    pub params: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Redact for ExecDetails {}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn result(stdout: &[u8]) -> ExecResult {
        ExecResult {
            exit_code: Some(0),
            stdout: Captured {
                bytes: stdout.to_vec(),
                truncated: false,
            },
            ..ExecResult::default()
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
        let json = serde_json::to_value(result(b"hi\n")).unwrap_or_default();
        assert_eq!(json["stdout"], "hi\n");
        assert!(json.get("stdout_base64").is_none());
        assert_eq!(json["exit_code"], 0);
        assert!(json.get("host_key").is_none());
    }

    #[test]
    fn the_outcome_is_the_result_without_output() {
        let mut full = serde_json::to_value(result(b"a\xffb")).unwrap_or_default();
        let outcome = serde_json::to_value(result(b"a\xffb").outcome()).unwrap_or_default();
        if let Some(fields) = full.as_object_mut() {
            for output in ["stdout", "stderr", "stdout_base64", "stderr_base64"] {
                fields.remove(output);
            }
        }
        assert_eq!(outcome, full);
    }

    #[test]
    fn non_utf8_output_is_lossy_text_plus_exact_base64() {
        let json = serde_json::to_value(result(b"a\xffb")).unwrap_or_default();
        assert_eq!(json["stdout"], "a\u{FFFD}b");
        assert_eq!(json["stdout_base64"], "Yf9i");
    }
}
