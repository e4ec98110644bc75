//! [`Plan`]: what starting a lab's servers needs to know, decided by `up`
//! before any server starts.

use std::net::Ipv4Addr;
use std::path::Path;

use super::layout::Layout;
use super::spec::ServerKind;
use super::state::{self, AuthorizedKey};

/// Everything [`start_all`](super::start::start_all) needs.
pub(super) struct Plan<'a> {
    pub(super) kind: ServerKind,
    pub(super) server: &'a Path,
    pub(super) layout: &'a Layout,
    pub(super) names: &'a [String],
    pub(super) addresses: &'a [Ipv4Addr],
    pub(super) user: &'a str,
    pub(super) authorized_key: Option<&'a AuthorizedKey>,
    /// sshd accepts passwords (a password lab).
    pub(super) password_auth: bool,
    /// The password lab's user, recorded in `lab.json` for `down`.
    pub(super) password_user: Option<&'a state::PasswordUserState>,
    /// Who owns the hosts' `$HOME`s when the lab logs in as another user.
    pub(super) home_owner: Option<(u32, u32)>,
    /// The login user's shell: which start files move a session to the
    /// host's `$HOME` depends on it.
    pub(super) shell: &'a Path,
    /// The network namespace the servers run in (`--bastion`).
    pub(super) namespace: Option<&'a str>,
    /// The lab CA's public key (`--ca`).
    pub(super) ca: Option<&'a Path>,
}
