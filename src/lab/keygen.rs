//! The lab's ed25519 keys (host keys, the client key, a CA's key):
//! generated, their public lines, and their private files.

use std::path::Path;

use russh::keys::{Algorithm, PrivateKey, ssh_key};

use super::error::LabError;
use super::files::write_file;

/// A new ed25519 key.
pub(super) fn generate_key() -> Result<PrivateKey, LabError> {
    PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).map_err(LabError::key)
}

/// `key`'s public half as `ssh-ed25519 AAAA…`, without a comment.
pub(super) fn public_line(key: &PrivateKey) -> Result<String, LabError> {
    let mut public = key.public_key().clone();
    public.set_comment("");
    Ok(public
        .to_openssh()
        .map_err(LabError::key)?
        .trim()
        .to_owned())
}

/// Writes `key` to `path` in OpenSSH format, mode 0600.
pub(super) fn write_private_key(key: &PrivateKey, path: &Path) -> Result<(), LabError> {
    let text = key
        .to_openssh(ssh_key::LineEnding::LF)
        .map_err(LabError::key)?;
    write_file(path, text.as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn public_lines_have_no_comment() {
        let mut key = generate_key().unwrap();
        key.set_comment("someone@somewhere");
        let line = public_line(&key).unwrap();
        assert!(line.starts_with("ssh-ed25519 AAAA"), "{line}");
        assert_eq!(line.split(' ').count(), 2, "{line}");
    }
}
