//! Authentication on a connection whose handshake is done: the key file's
//! user certificate, then the key file, then the ssh-agent's keys, and —
//! when every public key was refused — the password (`password`, then
//! `keyboard-interactive`). Nothing here retries a refused credential.

use std::sync::Arc;
use std::time::Instant;

use russh::client::{AuthResult, Handle};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::ssh_key::Certificate;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg};

use super::endpoint::Endpoint;
use super::host_certificate;
use super::host_key::HostKeyCheck;
use super::identity::{
    Identity, IdentityError, certificate_path, certificate_problem, fingerprint,
};
use super::login::Password;
use super::rsa_cert::{RsaCertSigner, SignFailed};
use super::steps::ms;
use crate::failure::{ErrorKind, Failure};

/// The failure when every credential was refused.
pub(super) fn refused(endpoint: &Endpoint, tried: &[String]) -> Failure {
    let what = if tried.is_empty() {
        "no credential (no key file, agent or password to offer)".to_owned()
    } else {
        tried.join(" and ")
    };
    Failure::new(
        ErrorKind::Auth,
        format!(
            "{} refused authentication as `{}` with {what}; deploy a key with `remex keys deploy {}` or fix `user`/`key` in the config",
            endpoint.address(),
            endpoint.user,
            endpoint.name
        ),
    )
}

/// Public-key authentication: the key file's certificate, then the key
/// file, then the agent's keys. Returns `None` when logged in, else what
/// was tried (for the message, or for a password to follow). A key file
/// that exists but cannot be used (too open, encrypted without a
/// passphrase, corrupt) is an error of its own, not skipped; a missing one
/// is skipped when something else can be tried. A certificate that cannot
/// be used or is refused is skipped (`-v` says why).
pub(super) async fn authenticate(
    handle: &mut Handle<HostKeyCheck>,
    endpoint: &Endpoint,
    key_path: Option<&std::path::Path>,
    key: Option<Result<Identity, IdentityError>>,
    agent: Option<&std::path::Path>,
    password_follows: bool,
) -> Result<Option<Vec<String>>, Failure> {
    let auth_failure = |message: String| Failure::new(ErrorKind::Auth, message);
    let user = endpoint.user.as_str();
    let started = Instant::now();
    let mut tried = Vec::new();
    match key {
        Some(Ok(identity)) => {
            if let Some(path) = key_path
                && let Some(cert) = usable_certificate(endpoint, path, &identity)
            {
                let cert_path = certificate_path(path).display().to_string();
                let what = host_certificate::describe(&cert);
                let cert = Certificate::clone(&cert);
                let accepted = if identity.key.algorithm().is_rsa() {
                    let hash = handle
                        .best_supported_rsa_hash()
                        .await
                        .map_err(lost)?
                        .flatten()
                        .or(Some(HashAlg::Sha256));
                    let mut signer = RsaCertSigner(identity.key.clone());
                    match handle
                        .authenticate_certificate_with(user, cert, hash, &mut signer)
                        .await
                    {
                        Ok(result) => matches!(result, AuthResult::Success),
                        Err(SignFailed::Lost) => return Err(lost(russh::Error::SendError)),
                        Err(SignFailed::Key(why)) => {
                            tracing::debug!(
                                "{}: cannot sign with the certificate {cert_path}: {why}",
                                endpoint.name
                            );
                            false
                        }
                    }
                } else {
                    let result = handle
                        .authenticate_openssh_cert(user, identity.key.clone(), cert)
                        .await
                        .map_err(lost)?;
                    matches!(result, AuthResult::Success)
                };
                if accepted {
                    let method = format!("publickey certificate {cert_path} ({what})");
                    log_authenticated(endpoint, &method, started);
                    return Ok(None);
                }
                tracing::debug!(
                    "{}: certificate {cert_path} refused; trying the key alone",
                    endpoint.name
                );
                tried.push(format!("{cert_path} (certificate {what})"));
            }
            let key = identity.key;
            let hash = if key.algorithm().is_rsa() {
                handle
                    .best_supported_rsa_hash()
                    .await
                    .map_err(lost)?
                    .flatten()
                    .or(Some(HashAlg::Sha256))
            } else {
                None
            };
            let fp = format!("{} {}", key.algorithm(), fingerprint(key.public_key()));
            let result = handle
                .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key, hash))
                .await
                .map_err(lost)?;
            let path = key_path
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            if matches!(result, AuthResult::Success) {
                let method = format!("publickey {path} ({fp})");
                log_authenticated(endpoint, &method, started);
                return Ok(None);
            }
            tried.push(format!("{path} ({fp})"));
        }
        Some(Err(IdentityError::Missing { .. })) if agent.is_some() || password_follows => {}
        Some(Err(e)) => return Err(auth_failure(e.to_string())),
        None => {}
    }
    if let Some(socket) = agent {
        match try_agent(handle, user, socket).await {
            Ok(true) => {
                log_authenticated(endpoint, "publickey (a key of the ssh-agent)", started);
                return Ok(None);
            }
            Ok(false) => tried.push("the ssh-agent's keys".to_owned()),
            Err(message) => tried.push(format!("the ssh-agent ({message})")),
        }
    }
    if !password_follows {
        return Err(refused(endpoint, &tried));
    }
    Ok(Some(tried))
}

/// The certificate beside the key file at `key_path`, if there is one and
/// it can be offered now; else `None`, with a `-v` line saying why a
/// certificate that is there cannot be used.
fn usable_certificate(
    endpoint: &Endpoint,
    key_path: &std::path::Path,
    identity: &Identity,
) -> Option<Arc<Certificate>> {
    let why = match identity.certificate.as_ref()? {
        Ok(cert) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            match certificate_problem(cert, now) {
                None => return Some(cert.clone()),
                Some(why) => why,
            }
        }
        Err(why) => why.clone(),
    };
    tracing::debug!(
        "{}: not offering the certificate {}: {why}; trying the key alone",
        endpoint.name,
        certificate_path(key_path).display()
    );
    None
}

/// A russh error during authentication: the connection is gone.
fn lost(e: russh::Error) -> Failure {
    Failure::new(
        ErrorKind::Connect,
        format!("connection lost during authentication: {e}"),
    )
}

/// `password` authentication, then `keyboard-interactive` answering every
/// hidden prompt with the password (what sshd asks through PAM). Returns
/// the method the server accepted, if any.
pub(super) async fn authenticate_password(
    handle: &mut Handle<HostKeyCheck>,
    user: &str,
    password: &Password,
) -> Result<Option<&'static str>, Failure> {
    use russh::client::KeyboardInteractiveAuthResponse as Kbd;
    let result = handle
        .authenticate_password(user, password.expose())
        .await
        .map_err(lost)?;
    if result.success() {
        return Ok(Some("password"));
    }
    let mut response = handle
        .authenticate_keyboard_interactive_start(user, None)
        .await
        .map_err(lost)?;
    // PAM may ask more than once (a password, then an info message); a
    // bound keeps a server that keeps asking from looping forever.
    for _ in 0..8 {
        match response {
            Kbd::Success => return Ok(Some("keyboard-interactive")),
            Kbd::Failure { .. } => return Ok(None),
            Kbd::InfoRequest { prompts, .. } => {
                let answers = prompts
                    .iter()
                    .map(|p| {
                        if p.echo {
                            String::new()
                        } else {
                            password.expose().to_owned()
                        }
                    })
                    .collect();
                response = handle
                    .authenticate_keyboard_interactive_respond(answers)
                    .await
                    .map_err(lost)?;
            }
        }
    }
    Ok(None)
}

/// Offers the ssh-agent's keys (at `socket`) one after the other: `true`
/// once the server accepts one; `Err` when the agent cannot be asked.
async fn try_agent(
    handle: &mut Handle<HostKeyCheck>,
    user: &str,
    socket: &std::path::Path,
) -> Result<bool, String> {
    let mut agent = AgentClient::connect_uds(socket)
        .await
        .map_err(|e| e.to_string())?;
    let identities = agent
        .request_identities()
        .await
        .map_err(|e| e.to_string())?;
    for identity in identities {
        let AgentIdentity::PublicKey { key, .. } = identity else {
            continue;
        };
        let hash = if key.algorithm().is_rsa() {
            Some(HashAlg::Sha256)
        } else {
            None
        };
        match handle
            .authenticate_publickey_with(user, key, hash, &mut agent)
            .await
        {
            Ok(AuthResult::Success) => return Ok(true),
            Ok(_) => {}
            Err(e) => tracing::debug!("agent signing failed: {e}"),
        }
    }
    Ok(false)
}

/// `-v`: the authentication method that got remex in, and how long
/// authenticating took since `started`.
pub(super) fn log_authenticated(endpoint: &Endpoint, method: &str, started: Instant) {
    tracing::debug!(
        "{}: authenticated as {} with {method} in {}",
        endpoint.name,
        endpoint.user,
        ms(started.elapsed())
    );
}
