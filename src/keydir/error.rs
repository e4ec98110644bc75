//! `KeysError`: why a local step of the key lifecycle failed.
//!
//! Every message is lower-case and says what to do. No message carries a
//! passphrase or key material: keys are named by their name, path or
//! fingerprint only.

use std::path::PathBuf;

use super::RotationStep;

/// Why a key operation on the orchestrator failed (a remote host's failure
/// is reported separately, as `RemoteEditError`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeysError {
    /// The key name is not usable as a file name in the key directory.
    #[error(
        "invalid key name `{name}`: {reason}; use letters, digits, `.`, `_` and `-`, not starting with `.`"
    )]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The comment would break the one-line `.pub` format.
    #[error("invalid key comment: it must be one line without control characters")]
    InvalidComment,
    /// A key type/size combination remex does not generate.
    #[error("{reason}")]
    UnsupportedKind {
        /// What is wrong and what to pass instead.
        reason: String,
    },
    /// An empty passphrase was given (it would silently mean "unencrypted").
    #[error(
        "the passphrase is empty; set the variable to a non-empty passphrase, or leave out --passphrase-env for an unencrypted key"
    )]
    EmptyPassphrase,
    /// A file of the key to create already exists.
    #[error("key `{name}` already exists at {path}; pick another --name or remove it first")]
    AlreadyExists {
        /// The key name.
        name: String,
        /// The file that is in the way.
        path: PathBuf,
    },
    /// The named key has no files in the key directory.
    #[error("key `{name}` not found in {dir}; run `remex keys list` to see the keys")]
    NotFound {
        /// The key name.
        name: String,
        /// The directory searched.
        dir: PathBuf,
    },
    /// The key directory is accessible by group or others.
    #[error(
        "permissions {mode:04o} for key directory {path} are too open; run `chmod 700 {path}` (private keys must not be reachable by others)"
    )]
    DirTooOpen {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key storage path exists but is not a directory.
    #[error("{path} is not a directory; point key_storage_path at a directory")]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// A file-system operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What remex was doing ("create", "read", "rename", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// ssh-key failed to generate, encrypt or encode the key.
    #[error("cannot generate the {algorithm} key: {reason}")]
    Generate {
        /// The key type.
        algorithm: String,
        /// ssh-key's reason (never key material).
        reason: String,
    },
    /// Text that should be an OpenSSH public key line is not one.
    #[error(
        "not an OpenSSH public key line ({reason}); expected `TYPE BASE64 [COMMENT]` as in a .pub file"
    )]
    InvalidPublicKey {
        /// What is wrong.
        reason: String,
    },
    /// A `.pub` file could not be parsed.
    #[error(
        "cannot read public key {path}: {reason}; regenerate it with `ssh-keygen -y -f` on the private key"
    )]
    BadPublicKeyFile {
        /// The `.pub` file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The state file is not valid JSON of the expected shape.
    #[error(
        "key state file {path} is corrupt ({reason}); fix it or move it away (remex then rebuilds the key list from the key files, but forgets which hosts use which key)"
    )]
    StateCorrupt {
        /// The state file.
        path: PathBuf,
        /// The JSON error.
        reason: String,
    },
    /// The state file was written by a newer remex.
    #[error(
        "key state file {path} has version {version}, newer than this remex understands ({supported}); upgrade remex"
    )]
    StateTooNew {
        /// The state file.
        path: PathBuf,
        /// Its version.
        version: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The key is still needed (a host uses it, or a rotation is half done).
    #[error("key `{name}` is still {why} {hosts}; finish `remex keys rotate` there first")]
    StillInUse {
        /// The key name.
        name: String,
        /// How it is used ("the key remex uses on", ...).
        why: &'static str,
        /// The hosts, comma-separated.
        hosts: String,
    },
    /// Revoking would leave remex without a key for the host.
    #[error(
        "key `{name}` is the only key remex can use for {host}; rotate to another key first, or pass --force to revoke it anyway"
    )]
    OnlyKey {
        /// The key name.
        name: String,
        /// The host.
        host: String,
    },
    /// The output of the authorized_keys read command is not what it prints.
    #[error("unexpected output from the authorized_keys read command: {reason}")]
    RemoteOutput {
        /// What is wrong.
        reason: String,
    },
    /// A rotation event that the host's current step does not allow.
    #[error("rotation on {host}: `{event}` is not allowed after step `{from}`")]
    RotationTransition {
        /// The host.
        host: String,
        /// Its recorded step.
        from: RotationStep,
        /// The refused event.
        event: &'static str,
    },
    /// An event for a host that has no rotation in progress.
    #[error("no key rotation in progress for {host}; start one with `remex keys rotate`")]
    NoRotation {
        /// The host.
        host: String,
    },
    /// A key an operation loaded left the key directory (archived, or
    /// replaced by another of the same name) while the operation waited
    /// for its turn on a host.
    #[error(
        "key `{name}` is no longer the key this run loaded from {dir} (another remex archived or replaced it meanwhile); run `remex keys list` and try again with a key that is there"
    )]
    KeyGone {
        /// The key name.
        name: String,
        /// The key directory.
        dir: PathBuf,
    },
    /// A rotation to the key the host already uses.
    #[error("{host} already uses key `{name}`; rotate to a new key")]
    SameKey {
        /// The host.
        host: String,
        /// The key.
        name: String,
    },
}

impl KeysError {
    /// An [`KeysError::Io`] for `action` on `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}
