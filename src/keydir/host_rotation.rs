//! One host's key rotation as the state file records it (`rotations` in
//! `remex-keys.json`): the key being replaced, the new key, and the last
//! step done. The state machine that moves a host from step to step, and
//! the invariant it keeps, live with the operation
//! (`ops/keys/rotation.rs`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// How far the rotation got on one host. Ordered as the steps happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RotationStep {
    /// The new key exists locally; the host does not know it yet.
    Generated,
    /// The new key is in the host's authorized_keys.
    Deployed,
    /// A fresh connection with the new key alone logged in.
    Verified,
    /// The state names the new key as the host's current key.
    Recorded,
    /// The old key is gone from authorized_keys: finished.
    OldRemoved,
}

impl fmt::Display for RotationStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Generated => "generated",
            Self::Deployed => "deployed",
            Self::Verified => "verified",
            Self::Recorded => "recorded",
            Self::OldRemoved => "old-removed",
        })
    }
}

/// One host's rotation in progress, as persisted in the state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRotation {
    /// The key being replaced; `None` for the key from the config, which is
    /// replaced as remex's key but left in authorized_keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    /// The key replacing it.
    pub new: String,
    /// The last step completed.
    pub step: RotationStep,
    /// When that step completed (UTC, RFC 3339), to tell stale rotations.
    pub updated: String,
}
