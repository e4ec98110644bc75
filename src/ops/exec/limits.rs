//! What sshd and the remote side accept of a command, checked before any
//! host is contacted — so that no request can break the connection every
//! job on a host shares.
//!
//! # Why these limits
//!
//! remex sends a command in one SSH `exec` request; sshd runs it as
//! `$SHELL -c LINE`. Two things on the remote side refuse a line:
//!
//! - **A NUL byte.** OpenSSH reads the line with `sshpkt_get_cstring`,
//!   which refuses an embedded NUL as "invalid format"; `session_exec_req`
//!   then calls `sshpkt_fatal` and sshd **drops the whole connection**
//!   (`session_exec_req: parse packet: invalid format`), failing every
//!   other command on it. No word, name, value, directory or user that
//!   reaches the line may hold one. (stdin is bytes on the channel: a NUL
//!   there is fine.)
//! - **Its size.** sshd passes the line as one argument to `execve`, and
//!   Linux refuses an argument of `MAX_ARG_STRLEN` (32 pages: 131,072
//!   bytes with its terminating NUL) or more — the command fails with
//!   "Argument list too long". Past OpenSSH's packet limit
//!   (`PACKET_MAX_SIZE`, 256 KiB in `packet.c`) sshd drops the connection
//!   ("Bad packet length"). Measured against the lab's OpenSSH 9.2 on Linux
//!   6.x (`ssh host` with the line split over several arguments): 131,071
//!   bytes run, 131,072 fail with "Argument list too long", 262,144 drop
//!   the connection. So the line, **after quoting** (and wrapped for sudo),
//!   may be at most [`MAX_COMMAND_LINE`] bytes.
//!
//! Large data belongs on stdin (or in a script's body, which travels on
//! stdin): neither has a limit of its own beyond the edge's body size.
//!
//! Every check runs in [`super::Exec::validate`] (the CLI, the service and
//! the library all go through it) and names the request field at fault;
//! the line actually sent is checked again by [`sendable`] just before it
//! goes out (a script's staging directory is only known then).

use crate::failure::{ErrorKind, Failure};
use crate::run::RequestError;
use crate::run::request_error::shown;

/// The longest remote command line remex sends: 131,071 bytes (Linux's
/// `MAX_ARG_STRLEN` less its NUL; see the module docs).
pub const MAX_COMMAND_LINE: usize = 128 * 1024 - 1;

/// Environment names starting with this are remex's own (`REMEX_RUN_ID`,
/// the tag its reaper finds a command's processes by): a request may set
/// none of them.
pub const RESERVED_ENV_PREFIX: &str = "REMEX_";

/// `Err` naming `field` when `text` holds a NUL byte; `what` says what the
/// field is, for the message (never the value: it may be a secret).
pub(crate) fn no_nul(field: impl Into<String>, what: &str, text: &str) -> Result<(), RequestError> {
    if text.contains('\0') {
        return Err(RequestError::field(
            field,
            format!(
                "{what} holds a NUL byte, which sshd refuses (and drops the connection for); send binary data on `stdin`"
            ),
        ));
    }
    Ok(())
}

/// `Err` naming `field` when `key` cannot be an environment variable name
/// of the command: not a shell name, or one of remex's own.
pub(crate) fn env_name(field: &str, key: &str) -> Result<(), RequestError> {
    let mut chars = key.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(RequestError::field(
            field,
            format!(
                "invalid environment variable name `{}`: use letters, digits and `_`, not starting with a digit",
                shown(key)
            ),
        ));
    }
    if key.starts_with(RESERVED_ENV_PREFIX) {
        return Err(RequestError::field(
            field,
            format!(
                "`{key}` is reserved: remex sets `{RESERVED_ENV_PREFIX}*` variables itself (it finds a command's processes by `REMEX_RUN_ID`)"
            ),
        ));
    }
    Ok(())
}

/// `Err` naming `field` (the part of the request that adds the most to
/// it) when the command line `line` is longer than [`MAX_COMMAND_LINE`].
pub(crate) fn line_fits(line: &str, field: &str) -> Result<(), RequestError> {
    if line.len() > MAX_COMMAND_LINE {
        return Err(RequestError::field(
            field,
            format!(
                "the remote command line would be {} bytes once quoted; sshd runs it as one argument of `$SHELL -c`, and Linux takes at most {MAX_COMMAND_LINE}: send large data on `stdin` (or as a script's `body`)",
                line.len()
            ),
        ));
    }
    Ok(())
}

/// Whether `line` may go out in an exec request: the last check before it
/// is sent, for what only the host could tell (a long `$TMPDIR` of a
/// staged script).
pub(crate) fn sendable(line: &str, host: &str) -> Result<(), Failure> {
    if line.contains('\0') || line.len() > MAX_COMMAND_LINE {
        return Err(Failure::new(
            ErrorKind::Protocol,
            format!(
                "the command line for {host} would be {} bytes{}; remex sends at most {MAX_COMMAND_LINE} bytes without a NUL byte, so it was not sent",
                line.len(),
                if line.contains('\0') {
                    " with a NUL byte"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_shell_names_and_not_remex_own() {
        for good in ["A", "_x1", "PATH", "remex_run_id", "REMEX"] {
            assert!(env_name("env", good).is_ok(), "{good}");
        }
        for bad in ["", "1A", "A-B", "A B", "A=B", "A\0", "é"] {
            assert!(env_name("env", bad).is_err(), "{bad:?}");
        }
        let long = env_name("env", &"-".repeat(100_000)).unwrap_err();
        assert!(long.message.len() < 300, "{}", long.message.len());
        for reserved in ["REMEX_RUN_ID", "REMEX_", "REMEX_ANYTHING"] {
            let e = env_name("secret_env", reserved).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("secret_env"));
            assert!(e.message.contains("reserved"), "{e:?}");
        }
    }

    #[test]
    fn the_line_limit_is_inclusive() {
        let at = "a".repeat(MAX_COMMAND_LINE);
        assert!(line_fits(&at, "raw").is_ok());
        assert!(sendable(&at, "h").is_ok());
        let over = "a".repeat(MAX_COMMAND_LINE + 1);
        assert_eq!(
            line_fits(&over, "raw").unwrap_err().field.as_deref(),
            Some("raw")
        );
        assert!(sendable(&over, "h").is_err());
        assert!(sendable("echo \0", "h").is_err());
    }

    #[test]
    fn a_nul_is_named_without_the_value() {
        let e = no_nul("env.TOKEN", "the value", "s3cret\0").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("env.TOKEN"));
        assert!(!e.message.contains("s3cret"), "{e:?}");
        assert!(no_nul("cwd", "the directory", "/tmp").is_ok());
    }
}
