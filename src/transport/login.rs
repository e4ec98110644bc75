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

/// Where a login password comes from (`remex keys deploy`).
#[derive(Debug, Clone)]
pub enum PasswordSource {
    /// Given up front (`--password-env VAR`).
    Given(Arc<Password>),
    /// Asked from the run's [`crate::Prompter`] the first time a host needs
    /// it, then reused for every host of the run.
    Ask,
}

/// A run's password: given, or asked once when first needed (the hosts
/// wait for the one answer).
pub(crate) struct PasswordCell {
    /// The answer, once there is one (an error too: asked once per run).
    cell: OnceCell<Result<Password, String>>,
    /// How to ask (blocking; the run's prompter).
    ask: Option<Asker>,
}

/// Asks for the password of a user (blocking).
pub(crate) type Asker = Arc<dyn Fn(&str) -> Result<String, String> + Send + Sync>;

impl PasswordCell {
    /// The password of `source`, asking through `ask` when it says so.
    pub(crate) fn new(source: &PasswordSource, ask: Asker) -> Self {
        match source {
            PasswordSource::Given(password) => Self {
                cell: OnceCell::new_with(Some(Ok(Password::clone(password)))),
                ask: None,
            },
            PasswordSource::Ask => Self {
                cell: OnceCell::new(),
                ask: Some(ask),
            },
        }
    }

    /// The password, asking for it if this is the first use.
    pub(crate) async fn get(&self, user: &str) -> Result<Password, String> {
        self.cell
            .get_or_init(|| async {
                let Some(ask) = self.ask.clone() else {
                    return Err("no password was given".to_owned());
                };
                let user = user.to_owned();
                tokio::task::spawn_blocking(move || ask(&user))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|answer| answer.map(Password::new))
            })
            .await
            .clone()
    }
}

/// The credentials of one connection attempt, tried in this order: the key
/// file, the agent's keys, the password.
#[derive(Clone, Default)]
pub(crate) struct Login {
    /// A private key file (`IdentityFile`); `None`: no key file.
    pub key: Option<PathBuf>,
    /// Try the ssh-agent's keys (when the executor has an agent socket).
    pub agent: bool,
    /// A password for `password` / `keyboard-interactive` authentication.
    pub password: Option<Arc<PasswordCell>>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("key", &self.key)
            .field("agent", &self.agent)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

impl Login {
    /// One key file and nothing else (`IdentitiesOnly=yes`, no password):
    /// how remex checks that a key really logs in.
    pub(crate) fn key_only(path: impl Into<PathBuf>) -> Self {
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

    fn given(password: &str) -> PasswordCell {
        let source = PasswordSource::Given(Arc::new(Password::new(password)));
        PasswordCell::new(&source, Arc::new(|_: &str| Err("not asked".into())))
    }

    #[test]
    fn passwords_never_show_in_debug() {
        let login = Login {
            key: None,
            agent: false,
            password: Some(Arc::new(given("hunter2-x"))),
        };
        let text = format!("{login:?}");
        assert!(!text.contains("hunter2-x"), "{text}");
        assert!(text.contains("REDACTED"), "{text}");
    }

    #[tokio::test]
    async fn a_given_password_is_returned() {
        let got = given("pw").get("u").await.map(|p| p.expose().to_owned());
        assert_eq!(got.as_deref(), Ok("pw"));
    }

    #[tokio::test]
    async fn an_asked_password_is_asked_once() {
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = asked.clone();
        let cell = PasswordCell::new(
            &PasswordSource::Ask,
            Arc::new(move |user: &str| {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(format!("pw-of-{user}"))
            }),
        );
        for _ in 0..3 {
            let got = cell.get("ops").await.map(|p| p.expose().to_owned());
            assert_eq!(got.as_deref(), Ok("pw-of-ops"));
        }
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
