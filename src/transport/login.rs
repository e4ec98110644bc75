//! What a connection may authenticate with: a key file, the ssh-agent, a
//! password — the credentials of one connection attempt.
//!
//! Everyday operations log in with the host's key (and the agent, when
//! allowed); `remex keys deploy` may also log in with a password, for the
//! first contact with a host, and the verification after a deploy or a
//! rotation logs in with one key file and nothing else.
//!
//! A password is tried with SSH `password` authentication first, then
//! `keyboard-interactive` (what sshd offers with PAM), answering every
//! hidden prompt with it.
//!
//! **Invariant:** a password is in no message, log line or `Debug` output;
//! it travels only inside the SSH authentication request.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::OnceCell;

/// A password, redacted in `Debug`.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    /// The password itself, for the authentication request only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

/// Where a password comes from.
#[derive(Debug, Clone)]
pub enum PasswordSource {
    /// Given up front (`--password-env VAR`).
    Given(Arc<Password>),
    /// Asked on the terminal the first time a host needs it, then reused
    /// for every host of the run (the hosts wait for the one prompt).
    Prompt(Arc<OnceCell<Password>>),
}

impl PasswordSource {
    /// A source that prompts once on the terminal when first needed.
    pub fn prompt() -> Self {
        Self::Prompt(Arc::new(OnceCell::new()))
    }

    /// The password, prompting for it if this is the first use.
    pub async fn get(&self, user: &str) -> Result<Password, String> {
        match self {
            Self::Given(password) => Ok(Password::clone(password)),
            Self::Prompt(cell) => {
                let prompt = format!("password for {user} on the hosts: ");
                cell.get_or_try_init(|| async move {
                    tokio::task::spawn_blocking(move || rpassword::prompt_password(prompt))
                        .await
                        .map_err(|e| e.to_string())?
                        .map(Password::new)
                        .map_err(|e| format!("cannot read the password from the terminal: {e}"))
                })
                .await
                .cloned()
            }
        }
    }
}

/// The credentials of one connection attempt, tried in this order: the key
/// file, the agent's keys, the password.
#[derive(Debug, Clone, Default)]
pub struct Login {
    /// A private key file (`IdentityFile`); `None`: no key file.
    pub key: Option<PathBuf>,
    /// Try the ssh-agent's keys when `SSH_AUTH_SOCK` is set.
    pub agent: bool,
    /// A password for `password` / `keyboard-interactive` authentication.
    pub password: Option<PasswordSource>,
}

impl Login {
    /// One key file and nothing else (`IdentitiesOnly=yes`, no password):
    /// how remex checks that a key really logs in.
    pub fn key_only(path: impl Into<PathBuf>) -> Self {
        Self {
            key: Some(path.into()),
            agent: false,
            password: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show_in_debug() {
        let login = Login {
            key: None,
            agent: false,
            password: Some(PasswordSource::Given(Arc::new(Password::new("hunter2-x")))),
        };
        let text = format!("{login:?}");
        assert!(!text.contains("hunter2-x"), "{text}");
        assert!(text.contains("REDACTED"), "{text}");
    }

    #[tokio::test]
    async fn a_given_password_is_returned() {
        let source = PasswordSource::Given(Arc::new(Password::new("pw")));
        let got = source.get("u").await.map(|p| p.expose().to_owned());
        assert_eq!(got.as_deref(), Ok("pw"));
    }
}
