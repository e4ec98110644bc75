//! Whose files a transfer reads and writes: the login user's (SFTP as the
//! server starts it), or another user's through sudo (`--sudo`,
//! `--sudo-user`).
//!
//! Under sudo there is no SFTP subsystem to ask for: remex runs the host's
//! own `sftp-server` program as the target user on an exec channel
//! (`sudo -n -u USER -- /bin/sh -c 'cd HOME && exec SFTP_SERVER'`) and speaks
//! SFTP over that channel, exactly as sshd would have. Once per host, before
//! the first channel, it asks sudo how to run (see [`Sudo::prepare`]: no
//! password, or the password first on stdin) and, as the target user, where
//! `sftp-server` is and what the user's home is. Every helper command of the
//! transfer (remote hashing, the check for a temp file held open) runs the
//! same way, from the same directory, so relative and `~/` paths name the
//! same file on every channel: under the target user's home.
//!
//! **Invariant:** the sudo password travels only on a channel's stdin, ahead
//! of the protocol (sudo reads it a byte at a time up to the newline, and
//! the program it starts reads on from there).

use russh::ChannelMsg;

use crate::failure::{ErrorKind, Failure};
use crate::ops::exec::sudo::{Sudo, SudoMode};
use crate::quote::quote;
use crate::transport::connection::Connection;
use crate::transport::session::Session;

/// Where OpenSSH's `sftp-server` lives on the common systems (Debian and
/// Ubuntu; RHEL and Fedora; Arch, Alpine and SUSE; the BSDs), tried in
/// order before `command -v sftp-server`.
const SFTP_SERVERS: &[&str] = &[
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/lib/ssh/sftp-server",
    "/usr/libexec/ssh/sftp-server",
    "/usr/libexec/sftp-server",
    "/usr/lib/sftp-server",
    "/usr/local/libexec/sftp-server",
];

/// How one host's transfer reaches its files.
#[derive(Debug, Clone, Default)]
pub(super) struct Access {
    sudo: Option<SudoAccess>,
}

#[derive(Debug, Clone)]
struct SudoAccess {
    sudo: Sudo,
    mode: SudoMode,
    /// The target user's home: every channel starts there.
    home: String,
    /// The host's `sftp-server` program.
    sftp_server: String,
}

impl Access {
    /// Finds out, on `conn`'s host, how to act as `sudo`'s target user (no
    /// sudo: the login user, nothing to find out).
    pub(super) async fn prepare(conn: &Connection, sudo: Option<&Sudo>) -> Result<Access, Failure> {
        let Some(sudo) = sudo else {
            return Ok(Access::default());
        };
        let mode = sudo.prepare(conn).await?;
        let mut probe = String::from(
            "h=$(getent passwd \"$(id -u)\" | cut -d: -f6); [ -d \"$h\" ] || h=/; \
             echo \"home=$h\"; for p in",
        );
        for path in SFTP_SERVERS {
            probe.push(' ');
            probe.push_str(path);
        }
        probe.push_str(
            "; do [ -x \"$p\" ] && { echo \"sftp=$p\"; exit 0; }; done; \
             p=$(command -v sftp-server) && { echo \"sftp=$p\"; exit 0; }; exit 127",
        );
        let (status, out) = conn
            .run_helper(&sudo.wrap(mode, &probe), Some(&sudo.stdin_prefix(mode)))
            .await?;
        let out = String::from_utf8_lossy(&out);
        let said = |key: &str| {
            out.lines()
                .find_map(|line| line.strip_prefix(key))
                .map(str::to_owned)
        };
        let home = said("home=").unwrap_or_else(|| "/".to_owned());
        let Some(sftp_server) = said("sftp=").filter(|_| status == Some(0)) else {
            return Err(Failure::new(
                ErrorKind::Transfer,
                format!(
                    "transfers with sudo run the host's sftp-server program as `{}`, and there \
                     is none on this host (looked in {} and PATH); install it (Debian: \
                     openssh-sftp-server)",
                    sudo.target(),
                    SFTP_SERVERS.join(", ")
                ),
            ));
        };
        Ok(Access {
            sudo: Some(SudoAccess {
                sudo: sudo.clone(),
                mode,
                home,
                sftp_server,
            }),
        })
    }

    /// The user files are read and written as, when it is not the login user.
    pub(super) fn sudo_target(&self) -> Option<&str> {
        self.sudo.as_ref().map(|s| s.sudo.target())
    }

    /// `command` (a POSIX shell script) as this access runs it, and what its
    /// stdin must start with.
    pub(super) fn command(&self, command: &str) -> (String, Vec<u8>) {
        match &self.sudo {
            None => (command.to_owned(), Vec::new()),
            Some(s) => (
                s.sudo.wrap(
                    s.mode,
                    &format!("cd {} || exit 1; {command}", quote(&s.home)),
                ),
                s.sudo.stdin_prefix(s.mode),
            ),
        }
    }

    /// Runs a helper `command` to its end: exit status and output.
    pub(super) async fn run_helper(
        &self,
        conn: &Connection,
        command: &str,
        stdin: &[u8],
    ) -> Result<(Option<u32>, Vec<u8>), Failure> {
        let (command, mut input) = self.command(command);
        input.extend_from_slice(stdin);
        let stdin = (!input.is_empty()).then_some(input.as_slice());
        conn.run_helper(&command, stdin).await
    }

    /// Starts `command` on `session`'s channel and sends what its stdin
    /// must start with; `Ok(false)`: the host refused to run it. Output
    /// that came first goes to `early`.
    pub(super) async fn start(
        &self,
        session: &mut Session,
        command: &str,
        early: &mut Vec<u8>,
    ) -> Result<bool, russh::Error> {
        let (command, prefix) = self.command(command);
        let runs = session
            .exec_confirmed(&command, &mut |_, data| early.extend_from_slice(data))
            .await?;
        if runs && !prefix.is_empty() {
            session.channel.data(prefix.as_slice()).await?;
        }
        Ok(runs)
    }

    /// Starts SFTP on `session`'s channel: the server's subsystem, or
    /// `sftp-server` as the sudo target user. `Ok(false)`: refused.
    pub(super) async fn start_sftp(&self, session: &mut Session) -> Result<bool, russh::Error> {
        match &self.sudo {
            None => {
                session.channel.request_subsystem(true, "sftp").await?;
                loop {
                    match session.channel.wait().await {
                        Some(ChannelMsg::Success) => return Ok(true),
                        Some(ChannelMsg::Failure | ChannelMsg::Close | ChannelMsg::Eof) | None => {
                            return Ok(false);
                        }
                        Some(_) => {}
                    }
                }
            }
            Some(s) => {
                let mut early = Vec::new();
                let runs = self
                    .start(
                        session,
                        &format!("exec {}", quote(&s.sftp_server)),
                        &mut early,
                    )
                    .await?;
                if !early.is_empty() {
                    tracing::debug!(output = %String::from_utf8_lossy(&early), "sftp-server said");
                }
                Ok(runs)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn commands_run_from_the_target_home_and_the_password_is_only_stdin() {
        let access = Access {
            sudo: Some(SudoAccess {
                sudo: Sudo {
                    user: Some("app".into()),
                    password: Some(Arc::new("pw-123".into())),
                },
                mode: SudoMode::Password,
                home: "/home/app dir".into(),
                sftp_server: "/usr/lib/openssh/sftp-server".into(),
            }),
        };
        let (command, stdin) = access.command("echo hi");
        assert_eq!(
            command,
            r"sudo -k -S -p '' -u app -- /bin/sh -c 'cd '\''/home/app dir'\'' || exit 1; echo hi'"
        );
        assert_eq!(stdin, b"pw-123\n");
        assert!(!format!("{access:?}").contains("pw-123"));
        assert_eq!(access.sudo_target(), Some("app"));

        let plain = Access::default();
        assert_eq!(plain.command("echo hi"), ("echo hi".to_owned(), Vec::new()));
        assert_eq!(plain.sudo_target(), None);
    }
}
