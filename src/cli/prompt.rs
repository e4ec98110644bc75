//! The terminal's answers to a run's questions: the CLI's [`Prompter`].
//!
//! - A key's passphrase: `REMEX_KEY_PASSPHRASE`, else asked once per key on
//!   the terminal (without echo) and reused for every host.
//! - The hosts' password (`keys deploy` without `--password-env`): asked
//!   once per run on the terminal.
//! - Whether to pin a host key (`hosts trust` without `--yes` or
//!   `--fingerprint`): `y` or `yes`; anything else is no.
//!
//! Without a terminal nothing is asked: the answer says how to give it.

use std::collections::HashMap;
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use remex::{HostKeyOffer, Prompter};

/// The environment variable holding the passphrase of encrypted keys.
pub(crate) const PASSPHRASE_ENV: &str = "REMEX_KEY_PASSPHRASE";

/// Answers from the environment and the terminal.
pub(crate) struct Terminal {
    /// `REMEX_KEY_PASSPHRASE`, read once.
    passphrase: Option<String>,
    /// Passphrases typed so far, by key file: a key is asked for once.
    typed: Mutex<HashMap<PathBuf, String>>,
    /// Whether stdin is a terminal to ask on.
    interactive: bool,
}

impl Terminal {
    pub(crate) fn new() -> Self {
        Terminal {
            passphrase: std::env::var(PASSPHRASE_ENV).ok(),
            typed: Mutex::new(HashMap::new()),
            interactive: std::io::stdin().is_terminal(),
        }
    }
}

impl Prompter for Terminal {
    fn passphrase(&self, path: &Path) -> Result<String, String> {
        if let Some(passphrase) = &self.passphrase {
            return Ok(passphrase.clone());
        }
        let mut typed = self.typed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(passphrase) = typed.get(path) {
            return Ok(passphrase.clone());
        }
        if !self.interactive {
            return Err(format!(
                "set {PASSPHRASE_ENV} or run remex on a terminal to be asked for the passphrase"
            ));
        }
        let passphrase = rpassword::prompt_password(format!("passphrase for {}: ", path.display()))
            .map_err(|e| format!("cannot read the passphrase from the terminal: {e}"))?;
        typed.insert(path.to_owned(), passphrase.clone());
        Ok(passphrase)
    }

    fn password(&self, user: &str) -> Result<String, String> {
        if !self.interactive {
            return Err(
                "no password: pass --password-env VAR, or run remex on a terminal to be asked"
                    .to_owned(),
            );
        }
        rpassword::prompt_password(format!("password for {user} on the hosts: "))
            .map_err(|e| format!("cannot read the password from the terminal: {e}"))
    }

    fn trust(&self, offer: &HostKeyOffer) -> bool {
        if !self.interactive {
            return false;
        }
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "{} ({}) offers host key {} {}",
            offer.host, offer.address, offer.key_type, offer.fingerprint
        );
        if !offer.previous.is_empty() {
            let _ = writeln!(
                err,
                "  THE PINNED KEY CHANGED: pinned {}; answering yes replaces it",
                offer.previous.join(" and ")
            );
        }
        let _ = write!(err, "trust it? [y/N] ");
        let _ = err.flush();
        let mut answer = String::new();
        if std::io::stdin().lock().read_line(&mut answer).is_err() {
            return false;
        }
        matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
    }
}
