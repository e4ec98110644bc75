//! Client credentials: private keys from `key_storage_path`, checked and
//! decrypted once per process.
//!
//! A private key file readable by group or others is refused, as OpenSSH
//! refuses it ("UNPROTECTED PRIVATE KEY FILE"), with the `chmod` that fixes
//! it. An encrypted key is decrypted with `REMEX_KEY_PASSPHRASE`, or with a
//! passphrase asked once on the terminal when there is one.
//!
//! **Invariant:** no passphrase and no key material ever appears in an error
//! message or a log line; errors name the file and the fingerprint only.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::keys::{HashAlg, PrivateKey};

/// The environment variable holding the passphrase of encrypted keys.
pub const PASSPHRASE_ENV: &str = "REMEX_KEY_PASSPHRASE";

/// Why a private key could not be used.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityError {
    /// The key file does not exist.
    #[error(
        "private key {path} does not exist; put a key there, set `key`/`default_key` in the config, or start a lab with `remex lab up`"
    )]
    Missing {
        /// The key file.
        path: PathBuf,
    },
    /// The file is readable by group or others.
    #[error(
        "permissions {mode:04o} for private key {path} are too open; run `chmod 600 {path}` (it must not be readable by others)"
    )]
    TooOpen {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key is encrypted and no passphrase was available.
    #[error(
        "private key {path} is encrypted; set {PASSPHRASE_ENV} or run remex on a terminal to be asked for the passphrase"
    )]
    NeedsPassphrase {
        /// The key file.
        path: PathBuf,
    },
    /// The passphrase did not decrypt the key.
    #[error("wrong passphrase for private key {path}")]
    BadPassphrase {
        /// The key file.
        path: PathBuf,
    },
    /// The file could not be read or is not an OpenSSH private key.
    #[error("cannot load private key {path}: {reason}")]
    Unreadable {
        /// The key file.
        path: PathBuf,
        /// What went wrong (never the key's content).
        reason: String,
    },
}

/// Private keys loaded so far, shared by every connection of a process so a
/// passphrase is asked at most once per key.
#[derive(Default)]
pub struct KeyStore {
    /// Loaded keys, or the error loading them gave, by path.
    loaded: tokio::sync::Mutex<HashMap<PathBuf, Result<Arc<PrivateKey>, IdentityError>>>,
}

impl KeyStore {
    /// Loads (once) the private key at `path`.
    pub async fn load(&self, path: &Path) -> Result<Arc<PrivateKey>, IdentityError> {
        // Held across the passphrase prompt on purpose: the other hosts wait
        // for the one prompt instead of asking again.
        let mut loaded = self.loaded.lock().await;
        if let Some(result) = loaded.get(path) {
            return result.clone();
        }
        let path_owned = path.to_owned();
        let result = tokio::task::spawn_blocking(move || load_key(&path_owned))
            .await
            .unwrap_or_else(|e| {
                Err(IdentityError::Unreadable {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })
            })
            .map(Arc::new);
        loaded.insert(path.to_owned(), result.clone());
        result
    }
}

/// Reads, checks and decrypts one private key (blocking: it may prompt),
/// taking an encrypted key's passphrase from `REMEX_KEY_PASSPHRASE`, else
/// from a prompt when stdin is a terminal.
pub fn load_key(path: &Path) -> Result<PrivateKey, IdentityError> {
    let passphrase = std::env::var(PASSPHRASE_ENV).ok();
    let can_prompt = std::io::IsTerminal::is_terminal(&std::io::stdin());
    load_key_with(path, passphrase, can_prompt)
}

/// [`load_key`] with the passphrase source given explicitly.
pub fn load_key_with(
    path: &Path,
    passphrase: Option<String>,
    can_prompt: bool,
) -> Result<PrivateKey, IdentityError> {
    let unreadable = |reason: String| IdentityError::Unreadable {
        path: path.to_owned(),
        reason,
    };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(IdentityError::Missing {
                path: path.to_owned(),
            });
        }
        Err(e) => return Err(unreadable(e.to_string())),
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(IdentityError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
    let key = PrivateKey::from_openssh(text.trim()).map_err(|e| unreadable(e.to_string()))?;
    if !key.is_encrypted() {
        return Ok(key);
    }
    let passphrase = match passphrase {
        Some(p) => p,
        None if can_prompt => {
            rpassword::prompt_password(format!("passphrase for {}: ", path.display()))
                .map_err(|e| unreadable(e.to_string()))?
        }
        None => {
            return Err(IdentityError::NeedsPassphrase {
                path: path.to_owned(),
            });
        }
    };
    key.decrypt(passphrase.as_bytes())
        .map_err(|_| IdentityError::BadPassphrase {
            path: path.to_owned(),
        })
}

/// `SHA256:…` fingerprint of a key, the form OpenSSH prints.
pub fn fingerprint(key: &russh::keys::PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::{Algorithm, ssh_key::LineEnding};

    fn write_key(dir: &Path, name: &str, mode: u32, passphrase: Option<&str>) -> PathBuf {
        let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
            .unwrap_or_else(|e| panic!("generate: {e}"));
        let key = match passphrase {
            Some(p) => key
                .encrypt(&mut rand::rng(), p)
                .unwrap_or_else(|e| panic!("encrypt: {e}")),
            None => key,
        };
        let path = dir.join(name);
        let text = key
            .to_openssh(LineEnding::LF)
            .unwrap_or_else(|e| panic!("encode: {e}"));
        std::fs::write(&path, text.as_bytes()).unwrap_or_else(|e| panic!("write: {e}"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod: {e}"));
        path
    }

    #[test]
    fn a_private_key_readable_by_others_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = write_key(dir.path(), "k", 0o644, None);
        let err = load_key(&path).unwrap_err();
        assert!(matches!(err, IdentityError::TooOpen { mode: 0o644, .. }));
        assert!(
            err.to_string()
                .contains(&format!("chmod 600 {}", path.display()))
        );
        let path = write_key(dir.path(), "k2", 0o600, None);
        assert!(load_key(&path).is_ok());
    }

    #[test]
    fn missing_key_says_where() {
        let err = load_key(Path::new("/nonexistent/remex/key")).unwrap_err();
        assert!(
            err.to_string()
                .contains("/nonexistent/remex/key does not exist")
        );
    }

    #[test]
    fn encrypted_keys_need_the_right_passphrase() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = write_key(dir.path(), "enc", 0o600, Some("sesame"));
        let err = load_key_with(&path, None, false).unwrap_err();
        assert!(matches!(err, IdentityError::NeedsPassphrase { .. }));
        assert!(err.to_string().contains(PASSPHRASE_ENV));
        let err = load_key_with(&path, Some("not-sesame-42".into()), false).unwrap_err();
        assert!(matches!(err, IdentityError::BadPassphrase { .. }));
        assert!(!err.to_string().contains("not-sesame-42"));
        let key = load_key_with(&path, Some("sesame".into()), false);
        assert!(key.is_ok_and(|k| !k.is_encrypted()));
    }
}
