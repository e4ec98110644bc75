//! Why a host did not succeed: [`Failure`] — its class ([`ErrorKind`]),
//! a message a person can act on, and for a refused host key the typed
//! reason ([`HostKeyProblem`]).
//!
//! A host's failure is data, not an `Err`: every layer that can fail for
//! one host (the transport, the operations, the runner) returns it, and the
//! run's report carries it (`error` in the `--json` schema, see
//! [`crate::run::report`]). It lives below every layer so each can reach it
//! without importing the one above; `run::report` re-exports it.

use serde::Serialize;

/// Why a host did not succeed. Stable names: scripts match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
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
    /// The run was cancelled (Ctrl-C, SIGTERM, SIGHUP, or a caller's
    /// cancel); the remote command was stopped.
    Cancelled,
    /// Copying a script (or file) to the host, or cleaning it up, failed.
    Transfer,
    /// A local step of a key operation failed (key files, the key state
    /// file).
    Keys,
    /// remex refused what the request asks, under the limits its caller
    /// set: a path that resolves on the host outside the paths allowed
    /// (`transfer::Options::scope`; an action's `path` param through a
    /// symlink out of its `under`), or a mode with setuid/setgid/sticky
    /// bits (`special_modes`). Nothing was read, written or run.
    Denied,
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
            ErrorKind::Keys => "keys",
            ErrorKind::Denied => "denied",
        }
    }

    /// Whether the network never got remex to the host's SSH server (`dns`,
    /// `connect`, `connect_timeout`). A host refused for its host key or
    /// for authentication was reached: `hosts check` shows it reachable.
    pub fn is_unreachable(self) -> bool {
        matches!(
            self,
            ErrorKind::Dns | ErrorKind::Connect | ErrorKind::ConnectTimeout
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
    /// The path the request named does not exist on the host (a
    /// download's source). Not in the JSON (the message says it): for
    /// callers that act on it, such as the service's 404.
    #[serde(skip)]
    pub not_found: bool,
    /// The host answered, and refused the path asked for: permission
    /// denied, or not a file remex copies (a device, a socket); or remex
    /// refused it under the caller's limits ([`ErrorKind::Denied`]). Not in
    /// the JSON (the message says it): for callers that act on it, such
    /// as the service's 403 — the host is fine, the request is not.
    #[serde(skip)]
    pub refused: bool,
}

impl Failure {
    /// A failure of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
            host_key: None,
            not_found: false,
            refused: false,
        }
    }

    /// A host-key refusal: kind [`ErrorKind::HostKey`], with its reason.
    pub fn host_key(problem: HostKeyProblem, message: impl Into<String>) -> Self {
        Failure {
            host_key: Some(problem),
            ..Failure::new(ErrorKind::HostKey, message)
        }
    }

    /// A failure because the path asked for does not exist on the host.
    pub fn not_found(kind: ErrorKind, message: impl Into<String>) -> Self {
        Failure {
            not_found: true,
            ..Failure::new(kind, message)
        }
    }

    /// A failure because the host refused the path asked for.
    pub fn refused(kind: ErrorKind, message: impl Into<String>) -> Self {
        Failure {
            refused: true,
            ..Failure::new(kind, message)
        }
    }

    /// The failure of a host the run never got to: it was cancelled first.
    pub(crate) fn not_started() -> Self {
        Failure::new(
            ErrorKind::Cancelled,
            "interrupted before this host was contacted",
        )
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
    /// The offered key, or the CA of the offered host certificate, is on an
    /// `@revoked` line.
    Revoked {
        /// Its fingerprint.
        fingerprint: String,
    },
    /// The host offered a host certificate that known_hosts does not vouch
    /// for: its CA is on no `@cert-authority` line for the host, or it is
    /// expired, not yet valid, for other principals, not a host
    /// certificate, or badly signed. The message says which. (A
    /// certificate is never pinned.)
    Certificate,
    /// accept-new could not write the pin.
    PinFailed,
    /// remex's known_hosts file could not be read.
    Unreadable,
}

impl HostKeyProblem {
    /// `unknown`, `changed`, `revoked`, `certificate`, `pin_failed` or
    /// `unreadable`.
    pub fn state(&self) -> &'static str {
        match self {
            Self::Unknown { .. } => "unknown",
            Self::Changed { .. } => "changed",
            Self::Revoked { .. } => "revoked",
            Self::Certificate => "certificate",
            Self::PinFailed => "pin_failed",
            Self::Unreadable => "unreadable",
        }
    }
}
