//! [`RsaCertSigner`]: signs a user-certificate authentication with an RSA
//! key under SHA-2, which russh's own certificate authentication does not
//! (it signs with SHA-1, which OpenSSH 8.8 and later refuse).

use std::sync::Arc;

use russh::keys::agent::AgentIdentity;
use russh::keys::{HashAlg, PrivateKey};

/// Signs the authentication with an RSA key's certificate under the hash
/// the server accepts (`rsa-sha2-512-cert-v01@openssh.com` or `-256`):
/// russh's `authenticate_openssh_cert` names an RSA certificate
/// `ssh-rsa-cert-v01@openssh.com` and signs with SHA-1, which OpenSSH
/// 8.8 and later refuse.
pub(super) struct RsaCertSigner(pub(super) Arc<PrivateKey>);

/// Why [`RsaCertSigner`] did not sign.
#[derive(Debug)]
pub(super) enum SignFailed {
    /// The connection's event loop is gone.
    Lost,
    /// The key could not sign (not RSA, or the signature failed).
    Key(String),
}

impl From<russh::SendError> for SignFailed {
    fn from(_: russh::SendError) -> Self {
        SignFailed::Lost
    }
}

impl russh::Signer for RsaCertSigner {
    type Error = SignFailed;

    fn auth_sign(
        &mut self,
        _: &AgentIdentity,
        hash: Option<HashAlg>,
        to_sign: Vec<u8>,
    ) -> impl std::future::Future<Output = Result<Vec<u8>, SignFailed>> + Send {
        std::future::ready(sign_rsa(&self.0, hash, to_sign))
    }
}

/// `to_sign` with its signature by `key` under `hash` appended, as the
/// SSH wire format wants it (a string holding the encoded signature).
fn sign_rsa(
    key: &PrivateKey,
    hash: Option<HashAlg>,
    mut to_sign: Vec<u8>,
) -> Result<Vec<u8>, SignFailed> {
    use russh::keys::signature::Signer as _;
    use russh::keys::ssh_encoding::Encode as _;
    let russh::keys::ssh_key::private::KeypairData::Rsa(rsa) = key.key_data() else {
        return Err(SignFailed::Key("not an RSA key".to_owned()));
    };
    let key_error = |e: russh::keys::ssh_key::Error| SignFailed::Key(e.to_string());
    let signature: russh::keys::ssh_key::Signature = (rsa, hash)
        .try_sign(&to_sign)
        .map_err(|e| SignFailed::Key(e.to_string()))?;
    let blob = signature.encode_vec().map_err(|e| key_error(e.into()))?;
    blob.as_slice()
        .encode(&mut to_sign)
        .map_err(|e| key_error(e.into()))?;
    Ok(to_sign)
}
