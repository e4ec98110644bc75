//! The local account: its user name (the default remote user) and home
//! directory (what `~` means in config paths).
//!
//! The environment is asked first (`$USER`, `$HOME`), then the password
//! database through `getpwuid_r(3)`, as OpenSSH does when `$HOME` is unset.

use std::env;
use std::path::PathBuf;

/// The local user name: `$USER`, else `$LOGNAME`, else the password
/// database entry of the current uid, else the uid as a number (which no
/// server will accept, so the failure shows up as an authentication error
/// naming that "user").
pub(crate) fn user_name() -> String {
    ["USER", "LOGNAME"]
        .into_iter()
        .filter_map(|var| env::var(var).ok())
        .find(|name| !name.is_empty())
        .or_else(|| passwd_entry().map(|entry| entry.name))
        .unwrap_or_else(current_uid)
}

/// The home directory: `$HOME`, else the password database entry of the
/// current uid.
pub(crate) fn home_dir() -> Option<PathBuf> {
    env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
        .or_else(|| passwd_entry().map(|entry| entry.home))
}

/// The parts of a `struct passwd` remex uses.
struct PasswdEntry {
    name: String,
    home: PathBuf,
}

#[cfg(unix)]
fn current_uid() -> String {
    #[allow(unsafe_code)]
    // SAFETY: getuid(2) takes no arguments, cannot fail and touches no memory
    // of ours.
    let uid = unsafe { libc::getuid() };
    uid.to_string()
}

#[cfg(not(unix))]
fn current_uid() -> String {
    String::from("unknown")
}

/// The password database entry of the current uid, via `getpwuid_r(3)`
/// (the reentrant form: other threads may be looking users up too).
#[cfg(unix)]
#[allow(unsafe_code)]
fn passwd_entry() -> Option<PasswdEntry> {
    use std::ffi::{CStr, OsStr};
    use std::os::unix::ffi::OsStrExt;

    // Strings of the entry live in `buf`; grow it while the call says ERANGE.
    let mut size = 4096;
    loop {
        let mut buf: Vec<libc::c_char> = vec![0; size];
        // SAFETY: `passwd` is a plain C struct for which all-zero bytes
        // (null pointers, zero ids) are a valid value.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the duration of the call, and
        // `buf.len()` is the true size of `buf`.
        let rc = unsafe {
            libc::getpwuid_r(
                libc::getuid(),
                &mut entry,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && size < 1 << 20 {
            size *= 2;
            continue;
        }
        if rc != 0 || result.is_null() || entry.pw_name.is_null() || entry.pw_dir.is_null() {
            return None;
        }
        // SAFETY: on success `pw_name` and `pw_dir` point to NUL-terminated
        // strings inside `buf`, which is still alive here.
        let (name, home) = unsafe { (CStr::from_ptr(entry.pw_name), CStr::from_ptr(entry.pw_dir)) };
        let name = name.to_str().ok()?.to_owned();
        let home = PathBuf::from(OsStr::from_bytes(home.to_bytes()));
        return Some(PasswdEntry { name, home });
    }
}

#[cfg(not(unix))]
fn passwd_entry() -> Option<PasswdEntry> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_user_name_and_a_home() {
        assert!(!user_name().is_empty());
        assert!(home_dir().is_some_and(|home| home.is_absolute()));
    }

    #[cfg(unix)]
    #[test]
    fn password_database_entry_is_usable() {
        // Containers sometimes run as a uid with no entry, which is the case
        // the fallbacks exist for; when there is one, it must be usable.
        if let Some(entry) = passwd_entry() {
            assert!(!entry.name.is_empty());
            assert!(entry.home.is_absolute(), "{}", entry.home.display());
        }
    }
}
