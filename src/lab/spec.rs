//! What lab to bring up: [`LabSpec`], the [`ServerKind`] its hosts run and
//! a password lab's [`PasswordUser`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Which SSH server the hosts of a lab run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    /// OpenSSH, `/usr/sbin/sshd` (Debian package `openssh-server`). Each
    /// host gets its own `sshd_config` whose `AuthorizedKeysFile` is
    /// `DIR/authorized_keys`, so nothing outside DIR is touched (except
    /// `/run/sshd`, created when running as root).
    #[default]
    OpenSsh,
    /// Dropbear, `/usr/sbin/dropbear` (Debian package `dropbear-bin`).
    ///
    /// Dropbear has no option for the authorized_keys path: it reads
    /// `~USER/.ssh/authorized_keys` of the login user. So `up` **appends
    /// the lab's client public key to that file** (creating `~/.ssh` 0700
    /// and the file 0600, owned by the user, if missing), as one line
    /// ending with the comment `remex-lab:DIR`, and `down` removes exactly
    /// that line again. Run Dropbear labs as a throwaway user (as the test
    /// suite does) if that file must not change.
    Dropbear,
}

impl ServerKind {
    /// The lower-case name used in `lab.json` and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenSsh => "openssh",
            Self::Dropbear => "dropbear",
        }
    }
}

impl std::fmt::Display for ServerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What lab to bring up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabSpec {
    /// The number of hosts, 1 to [`MAX_HOSTS`](super::MAX_HOSTS).
    pub hosts: usize,
    /// The lab directory. Created if missing; it may hold a stopped lab
    /// (which is replaced) but not a running one, nor files that are not
    /// a lab's. Its absolute path must not contain whitespace, quotes,
    /// `#` or `%` (they would need quoting in `sshd_config`).
    pub dir: PathBuf,
    /// The server every host runs. Default: [`ServerKind::OpenSsh`].
    pub server: ServerKind,
    /// The login user written to `config.yml`. Default (`None`): the user
    /// running `up`. Only root may set up a lab for another user, and that
    /// user must be able to read `DIR/authorized_keys` (OpenSSH), i.e.
    /// search every directory above it.
    pub user: Option<String>,
    /// A throwaway login user with a password (OpenSSH only, root only):
    /// see [`PasswordUser`]. Replaces `user`.
    pub password_user: Option<PasswordUser>,
    /// Put the hosts behind a bastion (OpenSSH only, root only): they
    /// listen in a network namespace of their own that only the extra host
    /// `bastion` can reach, and `config.yml` reaches them with
    /// `jump: bastion`. See `netns.rs`.
    pub bastion: bool,
    /// Sign every host key and the client key with a lab CA (OpenSSH
    /// only): the hosts trust the CA's user certificates and authorize no
    /// key, and known_hosts holds one `@cert-authority` line, no pins. See
    /// `ca.rs`.
    pub ca: bool,
}

/// The login user of a password lab, for trying `remex keys deploy` end to
/// end: the lab's hosts accept this user's password (sshd with PAM,
/// `password` and `keyboard-interactive`) and no key at first — the lab's
/// client key is not authorized, `DIR/authorized_keys` is empty.
///
/// `up` creates the user (`useradd -m`, comment `remex-lab-` + a digest of
/// DIR) unless a
/// user of that name with that comment exists (left by this lab), and
/// refuses a user that is not the lab's: it never sets the password of a
/// real account. `down` removes a user `up` created, home included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordUser {
    /// The login name.
    pub name: String,
    /// The password; `None`: a random one, written to `DIR/password`
    /// (mode 0600).
    pub password: Option<String>,
}

impl LabSpec {
    /// A lab of `hosts` OpenSSH hosts in `dir`, logging in as the user
    /// running `up`.
    pub fn new(hosts: usize, dir: impl Into<PathBuf>) -> Self {
        Self {
            hosts,
            dir: dir.into(),
            server: ServerKind::default(),
            user: None,
            password_user: None,
            bastion: false,
            ca: false,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn lab_state_serializes_server_kinds_in_lower_case() {
        assert_eq!(
            serde_json::to_string(&ServerKind::OpenSsh).unwrap(),
            "\"openssh\""
        );
        assert_eq!(
            serde_json::from_str::<ServerKind>("\"dropbear\"").unwrap(),
            ServerKind::Dropbear
        );
    }
}
