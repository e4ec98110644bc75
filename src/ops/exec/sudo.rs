//! Running a command as another user with `sudo`, without ever hanging on a
//! password prompt and without the password on any command line.
//!
//! Before the first command on a host remex asks sudo, on its own channel,
//! whether the target user is reachable without a password:
//! `sudo -k -n -u USER -- true` (`-k` ignores cached credentials, so the
//! answer holds for every later command). If not, and a password was given
//! (`--sudo-password-env VAR`), it checks the password the same way with
//! `sudo -k -S -p '' -u USER -- true`, the password on stdin. Every command
//! then runs as `sudo -n …` or `sudo -k -S -p '' …` with the password as the
//! first line of its stdin. A refusal (not allowed, wrong password, password
//! needed but none given) is a per-host failure of kind `sudo`.
//!
//! **Invariant:** the password travels only on a channel's stdin; it is in
//! no command line, message, log line or `Debug` output.

use std::sync::Arc;

use crate::failure::{ErrorKind, Failure};
use crate::quote;
use crate::transport::connection::Connection;

/// Run as `user` (root when `None`) through sudo.
#[derive(Clone, Default)]
pub struct Sudo {
    /// The target user (`sudo -u`); `None` means root.
    pub user: Option<String>,
    /// The sudo password, when the user's sudo rule needs one.
    pub password: Option<Arc<String>>,
}

impl std::fmt::Debug for Sudo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sudo")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// How sudo will be invoked on one host, once [`Sudo::prepare`] found out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SudoMode {
    /// The rule needs no password: `sudo -n`.
    NoPassword,
    /// The password is fed on stdin: `sudo -k -S -p ''`.
    Password,
}

impl Sudo {
    /// The user commands run as: `user`, or `root`.
    pub fn target(&self) -> &str {
        self.user.as_deref().unwrap_or("root")
    }

    /// The sudo prefix for `mode`, ending in `--`.
    fn prefix(&self, mode: SudoMode) -> String {
        self.prefix_with(match mode {
            SudoMode::NoPassword => "-n",
            SudoMode::Password => "-k -S -p ''",
        })
    }

    /// `sudo FLAGS -u TARGET --`.
    fn prefix_with(&self, flags: &str) -> String {
        format!("sudo {flags} -u {} --", quote::quote(self.target()))
    }

    /// `inner` (a POSIX shell script) run as the target user.
    pub fn wrap(&self, mode: SudoMode, inner: &str) -> String {
        format!("{} /bin/sh -c {}", self.prefix(mode), quote::quote(inner))
    }

    /// What goes on stdin before the command's own input.
    pub fn stdin_prefix(&self, mode: SudoMode) -> Vec<u8> {
        match (mode, &self.password) {
            (SudoMode::Password, Some(password)) => {
                let mut bytes = Vec::with_capacity(password.len() + 1);
                bytes.extend_from_slice(password.as_bytes());
                bytes.push(b'\n');
                bytes
            }
            _ => Vec::new(),
        }
    }

    /// Finds out how to invoke sudo on `conn`'s host (see the module docs).
    pub(crate) async fn prepare(&self, conn: &Connection) -> Result<SudoMode, Failure> {
        let target = self.target();
        let probe = format!(
            "LC_ALL=C {} true",
            self.prefix(SudoMode::NoPassword)
                .replacen("sudo -n", "sudo -k -n", 1)
        );
        let (status, output) = conn.run_helper(&probe, None).await?;
        if status == Some(0) {
            return Ok(SudoMode::NoPassword);
        }
        let reason = String::from_utf8_lossy(&output).trim().to_owned();
        let needs_password = reason.contains("password is required");
        if !needs_password {
            return Err(refused(target, &reason, status));
        }
        if self.password.is_none() {
            return Err(Failure::new(
                ErrorKind::Sudo,
                format!(
                    "sudo to `{target}` needs a password on this host; pass it with --sudo-password-env VAR"
                ),
            ));
        }
        let check = format!("LC_ALL=C {} true", self.prefix(SudoMode::Password));
        let stdin = self.stdin_prefix(SudoMode::Password);
        let (status, output) = conn.run_helper(&check, Some(&stdin)).await?;
        if status == Some(0) {
            return Ok(SudoMode::Password);
        }
        let reason = String::from_utf8_lossy(&output).trim().to_owned();
        Err(refused(target, &reason, status))
    }
}

fn refused(target: &str, reason: &str, status: Option<u32>) -> Failure {
    let reason = if reason.is_empty() {
        format!("exit status {status:?}")
    } else {
        // sudo's own words, minus the prompt noise.
        reason
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let hint = if reason.contains("incorrect password") || reason.contains("Sorry, try again") {
        " (wrong sudo password)"
    } else if reason.contains("command not found") || reason.contains("sudo: not found") {
        " (sudo is not installed on the host)"
    } else {
        ""
    };
    Failure::new(
        ErrorKind::Sudo,
        format!("sudo to `{target}` was refused{hint}: {reason}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_quotes_user_and_script() {
        let sudo = Sudo {
            user: Some("app user".into()),
            password: None,
        };
        assert_eq!(
            sudo.wrap(SudoMode::NoPassword, "echo 'hi'"),
            r"sudo -n -u 'app user' -- /bin/sh -c 'echo '\''hi'\'''"
        );
        let root = Sudo::default();
        assert_eq!(
            root.wrap(SudoMode::Password, "id"),
            "sudo -k -S -p '' -u root -- /bin/sh -c id"
        );
    }

    #[test]
    fn the_password_goes_only_to_stdin_and_never_to_debug() {
        let sudo = Sudo {
            user: None,
            password: Some(Arc::new("hunter2-xyz".into())),
        };
        assert_eq!(sudo.stdin_prefix(SudoMode::Password), b"hunter2-xyz\n");
        assert!(sudo.stdin_prefix(SudoMode::NoPassword).is_empty());
        assert!(!sudo.wrap(SudoMode::Password, "id").contains("hunter2"));
        assert!(!format!("{sudo:?}").contains("hunter2"));
    }

    #[test]
    fn refusals_explain_themselves() {
        let f = refused("root", "sudo: 1 incorrect password attempt", Some(1));
        assert_eq!(f.kind, ErrorKind::Sudo);
        assert!(f.message.contains("wrong sudo password"), "{}", f.message);
        let f = refused("nobody", "", Some(1));
        assert!(f.message.contains("exit status"), "{}", f.message);
    }
}
