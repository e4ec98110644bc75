//! The network half of an authorized_keys edit, on an open connection: run
//! [`read_command`], plan the edit, run the write with the new content on
//! stdin, retry when the file changed in between. And the login check that
//! proves a key works: a fresh connection with that key alone.

use super::authorized_keys::KeyLine;
use super::remote::{Edit, RemoteEditError, RemoteFile, check_exit, plan_edit, read_command};
use crate::failure::{ErrorKind, Failure};
use crate::run::runner::HostRun;
use crate::transport::connection::Connection;
use crate::transport::login::Login;

/// How often an edit is retried when the file changes between read and
/// write (another remex, or a person, editing it too).
const ATTEMPTS: usize = 3;

/// What an edit did to the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Edited {
    /// The key was added.
    Added,
    /// The key was there already; nothing was written.
    AlreadyPresent,
    /// This many lines holding the key were removed.
    Removed(usize),
    /// The key was not there; nothing was written.
    NotPresent,
}

/// Adds `key` to the remote user's `~/.ssh/authorized_keys` (creating
/// `~/.ssh` 0700 and the file 0600 when missing) unless it is there.
pub(crate) async fn add(conn: &Connection, key: &KeyLine) -> Result<Edited, Failure> {
    edit(conn, Edit::Add(key)).await
}

/// Removes every line holding `key` from `~/.ssh/authorized_keys`.
pub(crate) async fn remove(conn: &Connection, key: &KeyLine) -> Result<Edited, Failure> {
    edit(conn, Edit::Remove(key)).await
}

async fn edit(conn: &Connection, edit: Edit<'_>) -> Result<Edited, Failure> {
    let host = &conn.endpoint().name;
    for attempt in 1..=ATTEMPTS {
        let (code, stdout, stderr) = run(conn, &read_command(), None).await?;
        check_exit(code, &stderr).map_err(|e| edit_failure(host, &e))?;
        let file = RemoteFile::parse(&stdout).map_err(|e| {
            Failure::new(
                ErrorKind::Protocol,
                format!("{host}: reading ~/.ssh/authorized_keys: {e}"),
            )
        })?;
        let Some(plan) = plan_edit(&file, edit) else {
            return Ok(match edit {
                Edit::Add(_) => Edited::AlreadyPresent,
                Edit::Remove(_) => Edited::NotPresent,
            });
        };
        let (code, _, stderr) = run(conn, &plan.command, Some(&plan.stdin)).await?;
        match check_exit(code, &stderr) {
            Ok(()) => {
                return Ok(if plan.added {
                    Edited::Added
                } else {
                    Edited::Removed(plan.removed)
                });
            }
            Err(RemoteEditError::Changed) if attempt < ATTEMPTS => {
                tracing::debug!(%host, attempt, "authorized_keys changed meanwhile; again");
            }
            Err(e) => return Err(edit_failure(host, &e)),
        }
    }
    Err(edit_failure(host, &RemoteEditError::Changed))
}

fn edit_failure(host: &str, e: &RemoteEditError) -> Failure {
    Failure::new(ErrorKind::Exit, format!("{host}: {e}"))
}

/// Runs one of remex's own scripts; returns exit status, stdout, stderr.
async fn run(
    conn: &Connection,
    command: &str,
    stdin: Option<&[u8]>,
) -> Result<(u32, Vec<u8>, Vec<u8>), Failure> {
    let mut session = conn.session().await?;
    let io = |e: russh::Error| Failure::new(ErrorKind::Io, format!("connection broke: {e}"));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut collect = |stderr: bool, data: &[u8]| {
        if stderr { &mut err } else { &mut out }.extend_from_slice(data);
    };
    if !session
        .exec_confirmed(command, &mut collect)
        .await
        .map_err(io)?
    {
        return Err(Failure::new(
            ErrorKind::Protocol,
            "the host refused to run remex's authorized_keys command (an SFTP-only account?)",
        ));
    }
    if let Some(bytes) = stdin {
        session.channel.data(bytes).await.map_err(io)?;
    }
    let status = session.finish(&mut collect).await.map_err(io)?;
    let status = status.ok_or_else(|| {
        Failure::new(
            ErrorKind::Protocol,
            "the authorized_keys command ended without an exit status (connection lost?)",
        )
    })?;
    Ok((status, out, err))
}

/// Opens a fresh connection to `host` that authenticates with the private
/// key at `path` and nothing else (no agent, no password), then closes it:
/// proof that the key logs in.
pub(crate) async fn verify_login(
    host: &mut HostRun<'_>,
    path: &std::path::Path,
) -> Result<(), Failure> {
    let conn = host.open_with(&Login::key_only(path)).await?;
    conn.shutdown().await;
    Ok(())
}
