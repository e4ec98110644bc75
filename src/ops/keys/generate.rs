//! `remex keys generate`: a new key pair in the key directory.
//!
//! The private key is OpenSSH's format (`-----BEGIN OPENSSH PRIVATE KEY-----`,
//! encrypted with bcrypt-pbkdf + aes256-ctr when a passphrase is given, as
//! `ssh-keygen -N` does) in `DIR/NAME`, mode 0600 from the moment the file
//! exists; the public key is one line in `DIR/NAME.pub`, mode 0644. The
//! directory must be private (0700; it is created so). An existing file is
//! never overwritten, even by a concurrent generate: see
//! [`crate::atomic_file`].

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::{KeypairData, RsaKeypair};
use russh::keys::{Algorithm, EcdsaCurve, PrivateKey, PublicKey};

use crate::atomic_file;
use crate::keydir::{
    KeyRecord, KeysError, ensure_key_dir, private_key_path, public_key_path, timestamp,
    update_state, validate_name,
};
use crate::transport::identity::fingerprint;

/// The RSA size used when none is given (`ssh-keygen`'s default too).
pub(crate) const DEFAULT_RSA_BITS: u32 = 3072;
/// The smallest RSA key remex generates (NIST: 2048 is good until 2030 only).
pub(crate) const MIN_RSA_BITS: u32 = 3072;
/// The largest RSA key OpenSSH accepts.
pub(crate) const MAX_RSA_BITS: u32 = 16384;

/// Which kind of key to generate (`ssh-keygen -t TYPE -b BITS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyKind {
    /// `ssh-ed25519`: the default; small, fast, no parameters.
    #[default]
    Ed25519,
    /// `ecdsa-sha2-nistp{256,384,521}`; `bits` is 256, 384 or 521.
    Ecdsa {
        /// Curve size.
        bits: u16,
    },
    /// `ssh-rsa` (signing with rsa-sha2-256/512); `bits` ≥ 3072.
    Rsa {
        /// Modulus size.
        bits: u32,
    },
}

impl KeyKind {
    /// The kind for `--type TYPE [--bits N]`: `ed25519` (no bits), `ecdsa`
    /// (256 by default, 384, 521) or `rsa` (3072 by default, up to 16384).
    pub fn from_parts(key_type: &str, bits: Option<u32>) -> Result<Self, KeysError> {
        let kind = match (key_type.to_ascii_lowercase().as_str(), bits) {
            ("ed25519", None) => Self::Ed25519,
            ("ed25519", Some(_)) => {
                return Err(unsupported(
                    "ed25519 keys have a fixed size; leave out --bits",
                ));
            }
            ("ecdsa", bits) => Self::Ecdsa {
                bits: u16::try_from(bits.unwrap_or(256)).unwrap_or(0),
            },
            ("rsa", bits) => Self::Rsa {
                bits: bits.unwrap_or(DEFAULT_RSA_BITS),
            },
            (other, _) => {
                return Err(unsupported(&format!(
                    "unknown key type `{other}`; use ed25519 (the default), ecdsa or rsa"
                )));
            }
        };
        kind.validate()?;
        Ok(kind)
    }

    /// Checks the size: ECDSA 256/384/521, RSA 3072..=16384.
    pub fn validate(self) -> Result<(), KeysError> {
        match self {
            Self::Ed25519
            | Self::Ecdsa {
                bits: 256 | 384 | 521,
            } => Ok(()),
            Self::Ecdsa { bits } => Err(unsupported(&format!(
                "ecdsa keys are 256, 384 or 521 bits, not {bits}; pass --bits 256, 384 or 521"
            ))),
            Self::Rsa { bits } if (MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) => Ok(()),
            Self::Rsa { bits } => Err(unsupported(&format!(
                "rsa keys must have {MIN_RSA_BITS} to {MAX_RSA_BITS} bits, not {bits}; pass --bits {DEFAULT_RSA_BITS} or more, or use ed25519"
            ))),
        }
    }

    /// The OpenSSH key type name (`ssh-ed25519`, `ecdsa-sha2-nistp256`, …).
    pub fn algorithm_name(self) -> &'static str {
        match self {
            Self::Ed25519 => "ssh-ed25519",
            Self::Ecdsa { bits: 384 } => "ecdsa-sha2-nistp384",
            Self::Ecdsa { bits: 521 } => "ecdsa-sha2-nistp521",
            Self::Ecdsa { .. } => "ecdsa-sha2-nistp256",
            Self::Rsa { .. } => "ssh-rsa",
        }
    }

    /// Makes a fresh, unencrypted key of this kind.
    fn random_key(self) -> Result<PrivateKey, KeysError> {
        let failed = |e: russh::keys::ssh_key::Error| KeysError::Generate {
            algorithm: self.algorithm_name().to_owned(),
            reason: e.to_string(),
        };
        let mut rng = rand::rng();
        match self {
            Self::Ed25519 => PrivateKey::random(&mut rng, Algorithm::Ed25519).map_err(failed),
            Self::Ecdsa { bits } => {
                let curve = match bits {
                    384 => EcdsaCurve::NistP384,
                    521 => EcdsaCurve::NistP521,
                    _ => EcdsaCurve::NistP256,
                };
                PrivateKey::random(&mut rng, Algorithm::Ecdsa { curve }).map_err(failed)
            }
            // `PrivateKey::random` would pick ssh-key's default size (4096).
            Self::Rsa { bits } => {
                let size = usize::try_from(bits).unwrap_or(usize::MAX);
                let pair = RsaKeypair::random(&mut rng, size).map_err(failed)?;
                PrivateKey::new(KeypairData::from(pair), "").map_err(failed)
            }
        }
    }
}

/// An [`KeysError::UnsupportedKind`].
fn unsupported(reason: &str) -> KeysError {
    KeysError::UnsupportedKind {
        reason: reason.to_owned(),
    }
}

/// What [`generate`] made.
#[derive(Debug, Clone)]
pub(crate) struct GeneratedKey {
    /// The key's name (its file name in the key directory).
    pub name: String,
    /// `DIR/NAME`, the private key (0600).
    pub private_path: PathBuf,
    /// `DIR/NAME.pub`, the public key line (0644).
    pub public_path: PathBuf,
    /// The public key, with its comment.
    pub public_key: PublicKey,
    /// `SHA256:…`.
    pub fingerprint: String,
    /// Creation time (UTC, RFC 3339), as recorded in the state file.
    pub created: String,
}

/// The default key comment, `remex@<orchestrator hostname>`.
pub(crate) fn default_comment() -> String {
    format!("remex@{}", hostname())
}

/// This machine's host name, from the kernel or `/etc/hostname`.
fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|text| text.trim().to_owned())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Generates a key pair `DIR/NAME` + `DIR/NAME.pub` and records it in the
/// state file. `passphrase` encrypts the private key; `comment` goes in the
/// public key (see [`default_comment`]). Refuses to overwrite either file.
///
/// Blocking and, for RSA, slow (a random prime search: about 1.5–2.5 s for
/// 3072 bits even in a debug build, more for bigger keys); callers on an
/// async runtime should run it in `spawn_blocking`.
pub(crate) fn generate(
    dir: &Path,
    name: &str,
    kind: KeyKind,
    passphrase: Option<&str>,
    comment: &str,
) -> Result<GeneratedKey, KeysError> {
    validate_name(name)?;
    kind.validate()?;
    if comment.chars().any(char::is_control) {
        return Err(KeysError::InvalidComment);
    }
    if passphrase == Some("") {
        return Err(KeysError::EmptyPassphrase);
    }
    ensure_key_dir(dir)?;
    let private_path = private_key_path(dir, name);
    let public_path = public_key_path(dir, name);
    // Checked early for a clear error before a slow generation; the
    // create-new writes below are what actually guarantee no overwrite.
    refuse_existing(name, &[&private_path, &public_path])?;

    let failed = |e: russh::keys::ssh_key::Error| KeysError::Generate {
        algorithm: kind.algorithm_name().to_owned(),
        reason: e.to_string(),
    };
    let mut key = kind.random_key()?;
    key.set_comment(comment);
    let public_key = key.public_key().clone();
    let public_line = public_key.to_openssh().map_err(failed)?;
    let key = match passphrase {
        Some(p) => key.encrypt(&mut rand::rng(), p).map_err(failed)?,
        None => key,
    };
    let private_text = key.to_openssh(LineEnding::LF).map_err(failed)?;

    let created = timestamp::rfc3339(SystemTime::now());
    let fingerprint = fingerprint(&public_key);
    update_state(dir, |state| {
        write_pair(
            name,
            &private_path,
            private_text.as_bytes(),
            &public_path,
            format!("{public_line}\n").as_bytes(),
        )?;
        state.record_key(
            name,
            KeyRecord {
                algorithm: kind.algorithm_name().to_owned(),
                fingerprint: fingerprint.clone(),
                created: created.clone(),
                archived: None,
            },
        );
        Ok(())
    })?;
    tracing::info!(key = name, %fingerprint, "generated key");
    Ok(GeneratedKey {
        name: name.to_owned(),
        private_path,
        public_path,
        public_key,
        fingerprint,
        created,
    })
}

/// [`KeysError::AlreadyExists`] for the first of `paths` that exists (even
/// as a dangling symlink).
fn refuse_existing(name: &str, paths: &[&Path]) -> Result<(), KeysError> {
    for path in paths {
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(KeysError::AlreadyExists {
                name: name.to_owned(),
                path: path.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// Writes the private key (0600) then the public key (0644), both
/// create-new; if the public key cannot be written the private key is
/// removed again, so a failed generate leaves nothing behind.
fn write_pair(
    name: &str,
    private_path: &Path,
    private: &[u8],
    public_path: &Path,
    public: &[u8],
) -> Result<(), KeysError> {
    let exists = |path: &Path| {
        let path = path.to_owned();
        move |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeysError::AlreadyExists {
                    name: name.to_owned(),
                    path,
                }
            } else {
                KeysError::io("write", path)(e)
            }
        }
    };
    atomic_file::write_new(private_path, private, 0o600).map_err(exists(private_path))?;
    if let Err(e) = atomic_file::write_new(public_path, public, 0o644) {
        let _ = std::fs::remove_file(private_path);
        return Err(exists(public_path)(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{mode, ssh_keygen, tempdir};
    use crate::transport::identity::load_key_with;
    use std::ffi::OsStr;
    use std::os::unix::fs::PermissionsExt as _;
    use std::process::Command;

    /// `ssh-keygen -l -f PATH`: OpenSSH's own reading of the file.
    fn ssh_keygen_l(path: &Path) -> String {
        ssh_keygen([OsStr::new("-l"), OsStr::new("-f"), path.as_os_str()])
    }

    /// Checks everything `generate` promises about the files it wrote.
    fn check_generated(
        key: &GeneratedKey,
        dir: &Path,
        kind_suffix: &str,
        passphrase: Option<&str>,
    ) {
        assert_eq!(mode(dir), 0o700);
        assert_eq!(mode(&key.private_path), 0o600);
        assert_eq!(mode(&key.public_path), 0o644);
        let listing = ssh_keygen_l(&key.public_path);
        assert!(listing.contains(&key.fingerprint), "{listing}");
        assert!(listing.contains("remex@test"), "{listing}");
        assert!(listing.trim_end().ends_with(kind_suffix), "{listing}");
        // ssh-keygen reads the private key too (it derives the public part).
        if passphrase.is_none() {
            let listing = ssh_keygen_l(&key.private_path);
            assert!(listing.contains(&key.fingerprint), "{listing}");
        }
        let loaded = load_key_with(&key.private_path, |_| {
            passphrase.map(str::to_owned).ok_or_else(String::new)
        })
        .unwrap_or_else(|e| panic!("load_key: {e}"));
        assert_eq!(fingerprint(loaded.public_key()), key.fingerprint);
        let state = crate::keydir::load_state(dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(state.keys[&key.name].fingerprint, key.fingerprint);
        assert_eq!(state.keys[&key.name].created, key.created);
    }

    #[test]
    fn ed25519_is_readable_by_ssh_keygen_and_identity() {
        let tmp = tempdir();
        let dir = tmp.path().join("keys");
        let key = generate(&dir, "deploy", KeyKind::Ed25519, None, "remex@test")
            .unwrap_or_else(|e| panic!("generate: {e}"));
        check_generated(&key, &dir, "(ED25519)", None);
        let text = std::fs::read_to_string(&key.private_path).unwrap_or_default();
        assert!(text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
        let public = std::fs::read_to_string(&key.public_path).unwrap_or_default();
        assert!(public.starts_with("ssh-ed25519 AAAA") && public.ends_with(" remex@test\n"));
    }

    #[test]
    fn ecdsa_sizes() {
        let tmp = tempdir();
        for (bits, suffix) in [(256, "(ECDSA)"), (384, "(ECDSA)"), (521, "(ECDSA)")] {
            let name = format!("ec{bits}");
            let key = generate(
                tmp.path(),
                &name,
                KeyKind::Ecdsa { bits },
                None,
                "remex@test",
            )
            .unwrap_or_else(|e| panic!("generate: {e}"));
            check_generated(&key, tmp.path(), suffix, None);
            let listing = ssh_keygen_l(&key.public_path);
            assert!(listing.starts_with(&format!("{bits} SHA256:")), "{listing}");
        }
    }

    #[test]
    fn encrypted_key_needs_its_passphrase() {
        let tmp = tempdir();
        let key = generate(
            tmp.path(),
            "secret",
            KeyKind::Ed25519,
            Some("pw one"),
            "remex@test",
        )
        .unwrap_or_else(|e| panic!("generate: {e}"));
        check_generated(&key, tmp.path(), "(ED25519)", Some("pw one"));
        let wrong = load_key_with(&key.private_path, |_| Ok("nope".to_owned()));
        assert!(wrong.is_err());
        // OpenSSH agrees it is encrypted and decrypts it with the passphrase.
        let derived = ssh_keygen([
            OsStr::new("-y"),
            OsStr::new("-P"),
            OsStr::new("pw one"),
            OsStr::new("-f"),
            key.private_path.as_os_str(),
        ]);
        let public = std::fs::read_to_string(&key.public_path).unwrap_or_default();
        let blob = |s: &str| s.split_whitespace().nth(1).map(str::to_owned);
        assert_eq!(blob(&derived), blob(&public));
        let out = Command::new("ssh-keygen")
            .args(["-y", "-P", "", "-f"])
            .arg(&key.private_path)
            .output()
            .unwrap_or_else(|e| panic!("ssh-keygen: {e}"));
        assert!(
            !out.status.success(),
            "an empty passphrase must not open it"
        );
    }

    /// RSA generation is the slow one (a random prime search; about 1 s
    /// for 3072 bits here, with the prime crates optimised even in the test
    /// build: see `Cargo.toml`'s profile), so it runs once,
    /// at the minimum and default size, in the normal suite — no `#[ignore]`
    /// and no release-only test needed. It prints how long it took.
    #[test]
    fn rsa_3072() {
        let tmp = tempdir();
        let started = std::time::Instant::now();
        let key = generate(
            tmp.path(),
            "rsa",
            KeyKind::Rsa { bits: 3072 },
            None,
            "remex@test",
        )
        .unwrap_or_else(|e| panic!("generate: {e}"));
        tracing::debug!("rsa 3072 generation took {:?}", started.elapsed());
        check_generated(&key, tmp.path(), "(RSA)", None);
        let listing = ssh_keygen_l(&key.public_path);
        assert!(listing.starts_with("3072 SHA256:"), "{listing}");
    }

    #[test]
    fn refuses_to_overwrite_either_file() {
        let tmp = tempdir();
        let dir = tmp.path();
        let first = generate(dir, "k", KeyKind::Ed25519, None, "remex@test")
            .unwrap_or_else(|e| panic!("generate: {e}"));
        let before = std::fs::read(&first.private_path).unwrap_or_default();
        let again = generate(dir, "k", KeyKind::Ed25519, None, "remex@test");
        let msg = again.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("key `k` already exists at"), "{msg}");
        assert!(
            msg.contains("pick another --name or remove it first"),
            "{msg}"
        );
        assert_eq!(
            std::fs::read(&first.private_path).unwrap_or_default(),
            before
        );

        // Only the .pub in the way: still refused, nothing written.
        std::fs::write(dir.join("lone.pub"), "x").unwrap_or_else(|e| panic!("{e}"));
        let err = generate(dir, "lone", KeyKind::Ed25519, None, "remex@test");
        assert!(
            matches!(err, Err(KeysError::AlreadyExists { ref path, .. }) if path.ends_with("lone.pub"))
        );
        assert!(!dir.join("lone").exists());
    }

    #[test]
    fn write_pair_refuses_and_cleans_up_when_the_pub_appears_concurrently() {
        let tmp = tempdir();
        let (private, public) = (tmp.path().join("k"), tmp.path().join("k.pub"));
        std::fs::write(&public, "someone else's").unwrap_or_else(|e| panic!("{e}"));
        let err = write_pair("k", &private, b"secret", &public, b"pub");
        assert!(
            matches!(err, Err(KeysError::AlreadyExists { .. })),
            "{err:?}"
        );
        assert!(
            !private.exists(),
            "the private key written first is removed"
        );
        assert_eq!(
            std::fs::read_to_string(&public).ok().as_deref(),
            Some("someone else's")
        );
    }

    #[test]
    fn concurrent_generates_of_one_name_produce_one_key() {
        let tmp = tempdir();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let dir = tmp.path().to_owned();
                std::thread::spawn(move || {
                    generate(&dir, "race", KeyKind::Ed25519, None, "remex@test").is_ok()
                })
            })
            .collect();
        let wins = threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|_| panic!("thread panicked")))
            .filter(|won| *won)
            .count();
        assert_eq!(wins, 1, "exactly one generate may create the key");
    }

    #[test]
    fn a_key_dir_open_to_others_gets_no_key() {
        let tmp = tempdir();
        let nested = tmp.path().join("a/b/keys");
        generate(&nested, "k", KeyKind::Ed25519, None, "c").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode(&nested), 0o700);

        let open = tmp.path().join("open");
        std::fs::create_dir(&open).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        let err = generate(&open, "k", KeyKind::Ed25519, None, "c");
        let msg = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains(&format!("run `chmod 700 {}`", open.display())),
            "{msg}"
        );
        assert!(!open.join("k").exists());
    }

    #[test]
    fn a_bad_name_gets_no_key() {
        let tmp = tempdir();
        let err = generate(tmp.path(), "../escape", KeyKind::Ed25519, None, "c");
        assert!(matches!(err, Err(KeysError::InvalidName { .. })));
    }

    #[test]
    fn kinds_from_cli_parts() {
        assert_eq!(
            KeyKind::from_parts("ed25519", None).ok(),
            Some(KeyKind::Ed25519)
        );
        assert_eq!(
            KeyKind::from_parts("ECDSA", None).ok(),
            Some(KeyKind::Ecdsa { bits: 256 })
        );
        assert_eq!(
            KeyKind::from_parts("rsa", None).ok(),
            Some(KeyKind::Rsa { bits: 3072 })
        );
        assert_eq!(
            KeyKind::from_parts("rsa", Some(4096)).ok(),
            Some(KeyKind::Rsa { bits: 4096 })
        );
        for (t, bits) in [
            ("rsa", Some(2048)),
            ("rsa", Some(20000)),
            ("ecdsa", Some(512)),
            ("ed25519", Some(256)),
            ("dsa", None),
        ] {
            let err = KeyKind::from_parts(t, bits);
            assert!(
                matches!(err, Err(KeysError::UnsupportedKind { .. })),
                "{t} {bits:?}"
            );
        }
        let msg = KeyKind::from_parts("rsa", Some(2048))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("pass --bits 3072 or more"), "{msg}");
    }

    #[test]
    fn bad_comment_and_empty_passphrase_are_refused() {
        let tmp = tempdir();
        let err = generate(tmp.path(), "k", KeyKind::Ed25519, None, "two\nlines");
        assert!(matches!(err, Err(KeysError::InvalidComment)));
        let err = generate(tmp.path(), "k", KeyKind::Ed25519, Some(""), "c");
        assert!(matches!(err, Err(KeysError::EmptyPassphrase)));
        assert!(!tmp.path().join("k").exists());
    }

    #[test]
    fn default_comment_names_this_host() {
        let comment = default_comment();
        let expected = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        assert_eq!(comment, format!("remex@{expected}"));
        assert!(!comment.ends_with('@'));
    }
}
