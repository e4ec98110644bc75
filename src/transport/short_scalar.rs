//! A workaround for NIST P-256 private keys whose secret scalar starts with
//! a zero byte followed by one under 0x80 (about one `ssh-keygen -t ecdsa`
//! key in 512).
//!
//! OpenSSH writes the scalar as an `mpint`, which drops leading zero bytes
//! (and adds one only before a byte of 0x80 or more), so such a key's scalar
//! is 31 bytes (or fewer) in the file. The key parser
//! russh pins (ssh-key 0.7.0-rc.11) refuses anything under 32 bytes with
//! "length invalid" (RustCrypto/SSH#350). When the parser fails, remex reads
//! the key itself: the `openssh-key-v1` container (decrypting it with the
//! parser's own KDF and cipher when it is encrypted), and, if it holds a
//! P-256 key, pads the scalar back to 32 bytes. Every other key, and every
//! other failure, keeps the parser's answer.

use russh::keys::PrivateKey;
use russh::keys::ssh_encoding::Decode as _;
use russh::keys::ssh_key::private::{EcdsaKeypair, EcdsaPrivateKey, KeypairData};
use russh::keys::ssh_key::public::EcdsaPublicKey;

const MAGIC: &[u8] = b"openssh-key-v1\0";
const P256: &str = "ecdsa-sha2-nistp256";

/// Why the fallback could not give a key either.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fallback {
    /// Not a P-256 key the workaround applies to: keep the parser's error.
    NotApplicable,
    /// The decrypted check numbers differ: the passphrase is wrong.
    BadPassphrase,
}

/// An unencrypted key in OpenSSH's text form, read despite a short scalar.
pub(crate) fn unencrypted(text: &str) -> Result<PrivateKey, Fallback> {
    let body: String = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body)
        .map_err(|_| Fallback::NotApplicable)?;
    let mut r = bytes.strip_prefix(MAGIC).ok_or(Fallback::NotApplicable)?;
    let mut next = || Vec::<u8>::decode(&mut r).map_err(|_| Fallback::NotApplicable);
    let (cipher, _kdf, _kdf_options) = (next()?, next()?, next()?);
    if cipher != b"none" {
        return Err(Fallback::NotApplicable);
    }
    let keys = u32::decode(&mut r).map_err(|_| Fallback::NotApplicable)?;
    if keys != 1 {
        return Err(Fallback::NotApplicable);
    }
    let _public = Vec::<u8>::decode(&mut r).map_err(|_| Fallback::NotApplicable)?;
    let section = Vec::<u8>::decode(&mut r).map_err(|_| Fallback::NotApplicable)?;
    private_section(&section)
}

/// An encrypted key (as parsed, still encrypted) decrypted with
/// `passphrase`, despite a short scalar.
pub(crate) fn decrypt(key: &PrivateKey, passphrase: &[u8]) -> Result<PrivateKey, Fallback> {
    if key.public_key().algorithm().as_str() != P256 {
        return Err(Fallback::NotApplicable);
    }
    let cipher = key.cipher();
    let (k, iv) = key
        .kdf()
        .derive_key_and_iv(cipher, passphrase)
        .map_err(|_| Fallback::NotApplicable)?;
    let mut buffer = key
        .key_data()
        .encrypted()
        .ok_or(Fallback::NotApplicable)?
        .to_vec();
    // OpenSSH encrypts keys with aes256-ctr, which has no tag; a tagged
    // cipher without its tag fails here and keeps the parser's error.
    cipher
        .decrypt(&k, &iv, &mut buffer, None)
        .map_err(|_| Fallback::NotApplicable)?;
    private_section(&buffer)
}

/// The private section: check numbers, then one key and its comment.
fn private_section(section: &[u8]) -> Result<PrivateKey, Fallback> {
    let mut r = section;
    let check = |r: &mut &[u8]| u32::decode(r).map_err(|_| Fallback::BadPassphrase);
    if check(&mut r)? != check(&mut r)? {
        return Err(Fallback::BadPassphrase);
    }
    let mut next = || Vec::<u8>::decode(&mut r).map_err(|_| Fallback::NotApplicable);
    let (kind, _curve, point, scalar, comment) = (next()?, next()?, next()?, next()?, next()?);
    if kind != P256.as_bytes() {
        return Err(Fallback::NotApplicable);
    }
    let first = scalar.iter().position(|b| *b != 0).unwrap_or(scalar.len());
    let digits = &scalar[first..];
    if digits.is_empty() || digits.len() > 32 {
        return Err(Fallback::NotApplicable);
    }
    let mut padded = [0u8; 32];
    padded[32 - digits.len()..].copy_from_slice(digits);
    let Ok(EcdsaPublicKey::NistP256(public)) = EcdsaPublicKey::from_sec1_bytes(&point) else {
        return Err(Fallback::NotApplicable);
    };
    let keypair = EcdsaKeypair::NistP256 {
        public,
        private: EcdsaPrivateKey::from(padded),
    };
    let comment = String::from_utf8_lossy(&comment).into_owned();
    PrivateKey::new(KeypairData::Ecdsa(keypair), comment).map_err(|_| Fallback::NotApplicable)
}
