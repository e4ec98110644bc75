//! Client credentials: private keys from `key_storage_path`, checked and
//! decrypted once while their file is unchanged, and the OpenSSH user
//! certificate beside a key (`K-cert.pub` for the key `K`, OpenSSH's
//! naming), read again when it changes.
//!
//! A private key file readable by group or others is refused, as OpenSSH
//! refuses it ("UNPROTECTED PRIVATE KEY FILE"), with the `chmod` that fixes
//! it. An encrypted key is decrypted with the passphrase its caller's
//! [`PassphraseSource`] gives (the CLI: `REMEX_KEY_PASSPHRASE` or a prompt;
//! a service: none). This module reads no environment variable and asks
//! nobody.
//!
//! A certificate that cannot be used (unreadable, not a user certificate,
//! for another key, expired or not yet valid) is never an error: the key
//! is offered alone, and `-v` says why (see [`certificate_problem`]).
//!
//! **Invariant:** no passphrase and no key material ever appears in an error
//! message or a log line; errors name the file and the fingerprint only.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::keys::ssh_key::Certificate;
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::{HashAlg, PrivateKey};

use crate::fresh::Stamp;

use super::short_scalar;

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
    #[error("private key {path} is encrypted; {why}")]
    NeedsPassphrase {
        /// The key file.
        path: PathBuf,
        /// Why there was no passphrase, and where one can come from.
        why: String,
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

/// Gives the passphrase of an encrypted key file, or says why there is
/// none. Called on a blocking thread: it may prompt.
pub(crate) type PassphraseSource = Arc<dyn Fn(&Path) -> Result<String, String> + Send + Sync>;

/// A private key and the user certificate beside it, if any.
#[derive(Clone)]
pub(crate) struct Identity {
    /// The decrypted key.
    pub key: Arc<PrivateKey>,
    /// `K-cert.pub` beside the key file `K`: `None` when there is no such
    /// file, else the certificate or why it cannot be used.
    pub certificate: Option<Result<Arc<Certificate>, String>>,
}

/// Private keys loaded so far, shared by every connection of an executor,
/// so a key is decrypted (and its passphrase asked) once while its file is
/// unchanged, and its certificate parsed once while that file is. A failed
/// load is not kept: the next connection tries again.
#[derive(Default)]
pub(crate) struct KeyStore {
    /// Loaded keys by path.
    loaded: tokio::sync::Mutex<HashMap<PathBuf, Loaded>>,
}

/// A loaded key and the stamp of the file it came from, and the
/// certificate beside it read with the stamp of its file (only a usable
/// one is kept).
type Loaded = (
    Option<Stamp>,
    Arc<PrivateKey>,
    Option<(Stamp, Arc<Certificate>)>,
);

impl KeyStore {
    /// The private key at `path`: the one loaded before while the file is
    /// unchanged, else loaded now (asking `passphrase` if it is encrypted);
    /// with the certificate beside it as that file is now.
    pub(crate) async fn load(
        &self,
        path: &Path,
        passphrase: &PassphraseSource,
    ) -> Result<Identity, IdentityError> {
        // Held across the passphrase prompt on purpose: the other hosts wait
        // for the one prompt instead of asking again.
        let mut loaded = self.loaded.lock().await;
        let stamp = Stamp::of(path);
        if let Some((seen, key, cached)) = loaded.get_mut(path)
            && *seen == stamp
        {
            let certificate = certificate_now(path, key, cached);
            return Ok(Identity {
                key: key.clone(),
                certificate,
            });
        }
        let (path_owned, passphrase) = (path.to_owned(), passphrase.clone());
        let key =
            tokio::task::spawn_blocking(move || load_key_with(&path_owned, |p| passphrase(p)))
                .await
                .unwrap_or_else(|e| {
                    Err(IdentityError::Unreadable {
                        path: path.to_owned(),
                        reason: e.to_string(),
                    })
                })
                .map(Arc::new)?;
        let mut cached = None;
        let certificate = certificate_now(path, &key, &mut cached);
        loaded.insert(path.to_owned(), (stamp, key.clone(), cached));
        Ok(Identity { key, certificate })
    }
}

/// The certificate beside the key at `key_path` as its file is now: the
/// `cached` one while the file is unchanged, else read again (and kept in
/// `cached` when usable). A small file, read on the caller's thread.
fn certificate_now(
    key_path: &Path,
    key: &PrivateKey,
    cached: &mut Option<(Stamp, Arc<Certificate>)>,
) -> Option<Result<Arc<Certificate>, String>> {
    let path = certificate_path(key_path);
    let Some(stamp) = Stamp::of(&path) else {
        *cached = None;
        return None;
    };
    if let Some((seen, cert)) = cached.as_ref()
        && *seen == stamp
    {
        return Some(Ok(cert.clone()));
    }
    *cached = None;
    let read = load_certificate(&path, key).map(Arc::new);
    if let Ok(cert) = &read {
        *cached = Some((stamp, cert.clone()));
    }
    Some(read)
}

/// Where OpenSSH looks for the certificate of the key at `key_path`: the
/// same name with `-cert.pub` appended.
pub(crate) fn certificate_path(key_path: &Path) -> PathBuf {
    let mut name = key_path.as_os_str().to_owned();
    name.push("-cert.pub");
    PathBuf::from(name)
}

/// Reads the certificate file at `path` and checks that it is a user
/// certificate of `key`; the error says why not (never key material).
fn load_certificate(path: &Path, key: &PrivateKey) -> Result<Certificate, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    let cert = Certificate::from_openssh(text.trim())
        .map_err(|e| format!("not an OpenSSH certificate: {e}"))?;
    if cert.cert_type() != CertType::User {
        return Err("it is a host certificate, not a user certificate".to_owned());
    }
    if cert.public_key() != key.public_key().key_data() {
        let certified = russh::keys::PublicKey::new(cert.public_key().clone(), "");
        return Err(format!(
            "it certifies another key ({}), not this one ({})",
            fingerprint(&certified),
            fingerprint(key.public_key())
        ));
    }
    Ok(cert)
}

/// Why the user certificate `cert` cannot be offered at `now` (seconds
/// since the epoch): expired or not valid yet. Its principals are the
/// server's to judge (`AuthorizedPrincipalsFile` may map any of them to
/// the login user).
pub(crate) fn certificate_problem(cert: &Certificate, now: u64) -> Option<String> {
    use super::host_certificate::show_time;
    if now < cert.valid_after() {
        Some(format!(
            "it is not valid yet (valid from {})",
            show_time(cert.valid_after())
        ))
    } else if now >= cert.valid_before() {
        Some(format!("it expired at {}", show_time(cert.valid_before())))
    } else {
        None
    }
}

/// Reads, checks and decrypts one private key (blocking), taking an
/// encrypted key's passphrase from `passphrase`.
pub(crate) fn load_key_with(
    path: &Path,
    passphrase: impl FnOnce(&Path) -> Result<String, String>,
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
    let key = match PrivateKey::from_openssh(text.trim()) {
        Ok(key) => key,
        Err(e) => return short_scalar::unencrypted(&text).map_err(|_| unreadable(e.to_string())),
    };
    if !key.is_encrypted() {
        return Ok(key);
    }
    let passphrase = passphrase(path).map_err(|why| IdentityError::NeedsPassphrase {
        path: path.to_owned(),
        why,
    })?;
    let bad = || IdentityError::BadPassphrase {
        path: path.to_owned(),
    };
    key.decrypt(passphrase.as_bytes())
        .or_else(|_| short_scalar::decrypt(&key, passphrase.as_bytes()).map_err(|_| bad()))
}

/// `SHA256:…` fingerprint of a key, the form OpenSSH prints.
pub(crate) fn fingerprint(key: &russh::keys::PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::{Algorithm, ssh_key::LineEnding};

    fn none(_: &Path) -> Result<String, String> {
        Err("none".into())
    }

    fn given(passphrase: &str) -> impl FnOnce(&Path) -> Result<String, String> + '_ {
        move |_| Ok(passphrase.to_owned())
    }

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
        let err = load_key_with(&path, none).unwrap_err();
        assert!(matches!(err, IdentityError::TooOpen { mode: 0o644, .. }));
        assert!(
            err.to_string()
                .contains(&format!("chmod 600 {}", path.display()))
        );
        let path = write_key(dir.path(), "k2", 0o600, None);
        assert!(load_key_with(&path, none).is_ok());
    }

    #[test]
    fn missing_key_says_where() {
        let err = load_key_with(Path::new("/nonexistent/remex/key"), none).unwrap_err();
        assert!(
            err.to_string()
                .contains("/nonexistent/remex/key does not exist")
        );
    }

    /// An OpenSSH P-256 key file whose scalar starts with a zero byte and
    /// then a byte under 0x80, written as OpenSSH writes it: an mpint of 31
    /// bytes (about one key in 512).
    fn short_scalar_key(path: &Path) -> russh::keys::PublicKey {
        use russh::keys::ssh_encoding::Encode as _;
        use russh::keys::{EcdsaCurve, ssh_key::private::KeypairData};
        let key = loop {
            let key = PrivateKey::random(
                &mut rand::rng(),
                Algorithm::Ecdsa {
                    curve: EcdsaCurve::NistP256,
                },
            )
            .unwrap_or_else(|e| panic!("generate: {e}"));
            if let KeypairData::Ecdsa(ecdsa) = key.key_data()
                && ecdsa.private_key_bytes()[0] == 0
                && ecdsa.private_key_bytes()[1] < 0x80
            {
                break key;
            }
        };
        let KeypairData::Ecdsa(ecdsa) = key.key_data() else {
            unreachable!()
        };
        let scalar = ecdsa.private_key_bytes();
        let first = scalar.iter().position(|b| *b != 0).unwrap_or(0);
        let point = ecdsa.public_key_bytes().to_vec();
        let put = |out: &mut Vec<u8>, bytes: &[u8]| {
            bytes.encode(out).unwrap_or_else(|e| panic!("{e}"));
        };
        let mut public = Vec::new();
        for field in [&b"ecdsa-sha2-nistp256"[..], b"nistp256", &point] {
            put(&mut public, field);
        }
        let mut section = vec![0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a];
        for field in [
            &b"ecdsa-sha2-nistp256"[..],
            b"nistp256",
            &point,
            &scalar[first..],
            b"c",
        ] {
            put(&mut section, field);
        }
        let mut pad = 1u8;
        while section.len() % 8 != 0 {
            section.push(pad);
            pad += 1;
        }
        let mut file = b"openssh-key-v1\0".to_vec();
        for field in [&b"none"[..], b"none", b""] {
            put(&mut file, field);
        }
        1u32.encode(&mut file).unwrap_or_else(|e| panic!("{e}"));
        put(&mut file, &public);
        put(&mut file, &section);
        let body = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &file);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(70)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        let text = format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
            lines.join("\n")
        );
        std::fs::write(path, text).unwrap_or_else(|e| panic!("write: {e}"));
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("chmod: {e}"));
        key.public_key().clone()
    }

    /// `ssh-keygen ARGS`, which must succeed: its stdout.
    fn ssh_keygen(args: &[&str]) -> String {
        let out = std::process::Command::new("ssh-keygen")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("ssh-keygen (apt-get install openssh-client): {e}"));
        assert!(out.status.success(), "ssh-keygen {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn a_p256_key_whose_scalar_starts_with_zero_loads_plain_and_encrypted() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("short");
        let public = short_scalar_key(&path);
        let file = path.to_str().unwrap_or_default();
        // OpenSSH reads the file as a valid key with that public half, and
        // the key parser alone refuses it (the bug worked around).
        let derived = ssh_keygen(&["-y", "-f", file]);
        assert_eq!(
            derived.split_whitespace().nth(1),
            public
                .to_openssh()
                .ok()
                .as_deref()
                .and_then(|l| l.split_whitespace().nth(1))
        );
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(PrivateKey::from_openssh(&text).is_err());
        let key = load_key_with(&path, none).unwrap_or_else(|e| panic!("{e}"));
        signs_for(&key, &public);

        // Encrypted by OpenSSH itself (aes256-ctr, bcrypt KDF).
        ssh_keygen(&["-p", "-q", "-P", "", "-N", "sesame-77", "-f", file]);
        let err = load_key_with(&path, given("wrong-77")).unwrap_err();
        assert!(matches!(err, IdentityError::BadPassphrase { .. }), "{err}");
        let key = load_key_with(&path, given("sesame-77")).unwrap_or_else(|e| panic!("{e}"));
        signs_for(&key, &public);
    }

    /// `key` is the private half of `public`: what it signs, `public` verifies.
    fn signs_for(key: &PrivateKey, public: &russh::keys::PublicKey) {
        assert_eq!(key.public_key().key_data(), public.key_data());
        let signature = key
            .sign("remex-test", HashAlg::Sha256, b"message")
            .unwrap_or_else(|e| panic!("sign: {e}"));
        public
            .verify("remex-test", b"message", &signature)
            .unwrap_or_else(|e| panic!("the loaded key does not sign for its public key: {e}"));
    }

    #[test]
    fn encrypted_keys_need_the_right_passphrase() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = write_key(dir.path(), "enc", 0o600, Some("sesame"));
        let err = load_key_with(&path, |_| Err("set it somewhere".into())).unwrap_err();
        assert!(matches!(err, IdentityError::NeedsPassphrase { .. }));
        assert!(
            err.to_string().ends_with("is encrypted; set it somewhere"),
            "{err}"
        );
        let err = load_key_with(&path, given("not-sesame-42")).unwrap_err();
        assert!(matches!(err, IdentityError::BadPassphrase { .. }));
        assert!(!err.to_string().contains("not-sesame-42"));
        let key = load_key_with(&path, given("sesame"));
        assert!(key.is_ok_and(|k| !k.is_encrypted()));
    }

    #[tokio::test]
    async fn the_store_keeps_a_key_while_its_file_is_unchanged_and_no_failure() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = write_key(dir.path(), "k", 0o600, Some("pw"));
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let answer = Arc::new(std::sync::Mutex::new("wrong".to_owned()));
        let source: PassphraseSource = {
            let (asked, answer) = (asked.clone(), answer.clone());
            Arc::new(move |_: &Path| {
                asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(answer.lock().map(|a| a.clone()).unwrap_or_default())
            })
        };
        let store = KeyStore::default();
        assert!(store.load(&path, &source).await.is_err());
        *answer.lock().unwrap_or_else(|e| panic!("{e}")) = "pw".to_owned();
        let first = store
            .load(&path, &source)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let again = store
            .load(&path, &source)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(Arc::ptr_eq(&first.key, &again.key));
        assert!(first.certificate.is_none());
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 2);
        // A new key in the same place (a rotation) is loaded anew.
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
        let path = write_key(dir.path(), "k", 0o600, None);
        let new = store
            .load(&path, &source)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(new.key.public_key(), first.key.public_key());
    }

    /// A test CA in `dir` (made once) signs `key`'s public half with
    /// `args`: `key-cert.pub`.
    fn certify(dir: &Path, key: &Path, args: &[&str]) -> PathBuf {
        let ca = dir.join("ca");
        let ca_file = ca.to_str().unwrap_or_default();
        if !ca.exists() {
            ssh_keygen(&["-q", "-t", "ed25519", "-N", "", "-f", ca_file]);
        }
        let public = key.with_extension("pub");
        let derived = ssh_keygen(&["-y", "-f", key.to_str().unwrap_or_default()]);
        std::fs::write(&public, derived).unwrap_or_else(|e| panic!("{e}"));
        let mut all = vec!["-q", "-s", ca_file, "-I", "unit"];
        all.extend_from_slice(args);
        all.push(public.to_str().unwrap_or_default());
        ssh_keygen(&all);
        certificate_path(key)
    }

    #[test]
    fn the_certificate_is_the_key_path_with_cert_pub_appended() {
        assert_eq!(
            certificate_path(Path::new("/k/id_ed25519")),
            Path::new("/k/id_ed25519-cert.pub")
        );
        assert_eq!(
            certificate_path(Path::new("/k/deploy.key")),
            Path::new("/k/deploy.key-cert.pub")
        );
    }

    #[tokio::test]
    async fn the_store_reads_the_certificate_beside_the_key_as_it_is_now() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = write_key(dir.path(), "k", 0o600, None);
        let source: PassphraseSource = Arc::new(none);
        let store = KeyStore::default();
        let plain = store
            .load(&path, &source)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(plain.certificate.is_none());

        // A certificate that appears later is seen, with the cached key.
        let cert_path = certify(dir.path(), &path, &["-n", "root", "-V", "+1h"]);
        let first = store
            .load(&path, &source)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(Arc::ptr_eq(&first.key, &plain.key));
        let Some(Ok(cert)) = first.certificate.clone() else {
            panic!("no certificate loaded");
        };
        assert_eq!(cert.valid_principals(), ["root"]);
        let again = store
            .load(&path, &source)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let Some(Ok(same)) = again.certificate else {
            panic!("certificate lost");
        };
        assert!(Arc::ptr_eq(&cert, &same), "read again though unchanged");

        // A broken one is an explanation, not an error, and is not kept.
        std::fs::write(&cert_path, "garbage\n").unwrap_or_else(|e| panic!("{e}"));
        let broken = store
            .load(&path, &source)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let Some(Err(why)) = broken.certificate else {
            panic!("a broken certificate was used");
        };
        assert!(why.starts_with("not an OpenSSH certificate"), "{why}");

        // A re-signed one replaces it.
        certify(dir.path(), &path, &["-n", "deploy", "-V", "+1h"]);
        let renewed = store
            .load(&path, &source)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let Some(Ok(cert)) = renewed.certificate else {
            panic!("renewed certificate not loaded");
        };
        assert_eq!(cert.valid_principals(), ["deploy"]);

        // And a removed one is gone.
        std::fs::remove_file(&cert_path).unwrap_or_else(|e| panic!("{e}"));
        let gone = store
            .load(&path, &source)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(gone.certificate.is_none());
    }

    #[test]
    fn only_a_user_certificate_of_this_key_is_used() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = write_key(dir.path(), "k", 0o600, None);
        let key = load_key_with(&path, none).unwrap_or_else(|e| panic!("{e}"));
        let cert_path = certify(dir.path(), &path, &["-h", "-n", "web1"]);
        let why = load_certificate(&cert_path, &key).unwrap_err();
        assert_eq!(why, "it is a host certificate, not a user certificate");

        let other = write_key(dir.path(), "other", 0o600, None);
        let other_cert = certify(dir.path(), &other, &["-n", "root"]);
        let why = load_certificate(&other_cert, &key).unwrap_err();
        assert!(
            why.starts_with("it certifies another key (SHA256:"),
            "{why}"
        );
        assert!(
            load_certificate(
                &other_cert,
                &load_key_with(&other, none).unwrap_or_else(|e| panic!("{e}"))
            )
            .is_ok()
        );
    }

    #[test]
    fn a_certificate_is_offered_only_within_its_validity() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = write_key(dir.path(), "k", 0o600, None);
        let key = load_key_with(&path, none).unwrap_or_else(|e| panic!("{e}"));
        // 2030-01-01T00:00:00Z to 2030-01-02T00:00:00Z.
        let cert_path = certify(
            dir.path(),
            &path,
            &["-n", "root", "-V", "20300101:20300102"],
        );
        let cert = load_certificate(&cert_path, &key).unwrap_or_else(|e| panic!("{e}"));
        let (after, before) = (1_893_456_000, 1_893_542_400);
        assert_eq!(
            certificate_problem(&cert, after - 1).as_deref(),
            Some("it is not valid yet (valid from 2030-01-01T00:00:00Z)")
        );
        assert_eq!(certificate_problem(&cert, after), None);
        assert_eq!(certificate_problem(&cert, before - 1), None);
        assert_eq!(
            certificate_problem(&cert, before).as_deref(),
            Some("it expired at 2030-01-02T00:00:00Z")
        );
    }
}
