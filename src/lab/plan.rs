//! [`Plan`]: what starting a lab's servers needs to know, decided by `up`
//! before any server starts.

use std::net::Ipv4Addr;
use std::path::Path;

use super::layout::Layout;
use super::spec::ServerKind;
use super::state::{self, AuthorizedKey};

/// Everything [`start_all`](super::start::start_all) needs.
pub(super) struct Plan<'a> {
    /// The server every host runs.
    pub(super) kind: ServerKind,
    /// Its program.
    pub(super) server: &'a Path,
    /// Where the lab's files are.
    pub(super) layout: &'a Layout,
    /// The hosts, in order.
    pub(super) names: &'a [String],
    /// Each host's address, in the order of `names`.
    pub(super) addresses: &'a [Ipv4Addr],
    /// The login user, recorded in `lab.json`.
    pub(super) user: &'a str,
    /// A Dropbear lab's line in the login user's authorized_keys, recorded
    /// in `lab.json` for `down` to remove.
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
