//! Login accounts: who the lab logs in as, and — for Dropbear, which has
//! no `AuthorizedKeysFile` option — adding and removing the lab's line in
//! that account's `~/.ssh/authorized_keys`.
//!
//! Accounts are looked up with `getent passwd` (so NSS users work), or
//! in `/etc/passwd` when getent is missing. `libc::getpwuid` would need
//! `unsafe`, which this crate denies.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One passwd entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    /// The login name.
    pub name: String,
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// The home directory.
    pub home: PathBuf,
    /// The login shell (sshd runs commands with `SHELL -c`).
    pub shell: PathBuf,
}

/// The effective user id of this process (the owner of `/proc/self`).
pub(crate) fn effective_uid() -> io::Result<u32> {
    Ok(fs::metadata("/proc/self")?.uid())
}

/// The account with this name or uid; `Ok(None)` if there is none.
pub(crate) fn lookup(key: &str) -> io::Result<Option<Account>> {
    let output = Command::new("getent")
        .args(["passwd", key])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    let text = match output {
        Ok(output) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).into_owned()
        }
        // getent exits 2 when the key is not found.
        Ok(_) => return Ok(None),
        Err(error) if error.kind() == io::ErrorKind::NotFound => fs::read_to_string("/etc/passwd")?,
        Err(error) => return Err(error),
    };
    Ok(text
        .lines()
        .filter_map(parse_passwd_line)
        .find(|account| account.name == key || account.uid.to_string() == key))
}

/// Parses `name:password:uid:gid:gecos:home:shell`.
fn parse_passwd_line(line: &str) -> Option<Account> {
    let mut fields = line.split(':');
    let name = fields.next()?.to_owned();
    let _password = fields.next()?;
    let uid = fields.next()?.parse().ok()?;
    let gid = fields.next()?.parse().ok()?;
    let _gecos = fields.next()?;
    let home = PathBuf::from(fields.next()?);
    let shell = PathBuf::from(fields.next().unwrap_or_default());
    if name.is_empty() {
        return None;
    }
    Some(Account {
        name,
        uid,
        gid,
        home,
        shell,
    })
}

/// Appends `line` to `account`'s `~/.ssh/authorized_keys` unless it is
/// already there, creating `~/.ssh` (0700) and the file (0600) owned by
/// the account if missing. Returns the file's path.
///
/// The file is locked (`flock`) while it is read and written, so labs
/// started at the same time for the same account do not lose each
/// other's lines.
pub(crate) fn add_authorized_key(account: &Account, line: &str) -> io::Result<PathBuf> {
    let ssh_dir = account.home.join(".ssh");
    if !ssh_dir.exists() {
        fs::DirBuilder::new().mode(0o700).create(&ssh_dir)?;
        std::os::unix::fs::chown(&ssh_dir, Some(account.uid), Some(account.gid))?;
    }
    let path = ssh_dir.join("authorized_keys");
    let existed = path.exists();
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)?;
    if !existed {
        std::os::unix::fs::chown(&path, Some(account.uid), Some(account.gid))?;
    }
    file.lock()?;
    let text = read_all(&mut file)?;
    if text.lines().any(|existing| existing == line) {
        return Ok(path);
    }
    let separator = if text.is_empty() || text.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    file.seek(SeekFrom::End(0))?;
    file.write_all(format!("{separator}{line}\n").as_bytes())?;
    file.sync_all()?;
    Ok(path)
}

/// Removes every line equal to `line` from `path`, in place and under the
/// same lock as [`add_authorized_key`]. Returns whether one was there; a
/// missing file holds no line.
pub(crate) fn remove_authorized_key(path: &Path, line: &str) -> io::Result<bool> {
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(error),
    };
    file.lock()?;
    let text = read_all(&mut file)?;
    let Some(kept) = without_line(&text, line) else {
        return Ok(false);
    };
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(kept.as_bytes())?;
    file.sync_all()?;
    Ok(true)
}

/// `text` without the lines equal to `line`; `None` if there are none.
fn without_line(text: &str, line: &str) -> Option<String> {
    if !text.lines().any(|existing| existing == line) {
        return None;
    }
    Some(
        text.lines()
            .filter(|existing| *existing != line)
            .map(|existing| format!("{existing}\n"))
            .collect(),
    )
}

fn read_all(file: &mut File) -> io::Result<String> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_string(&mut text)?;
    Ok(text)
}

/// The GECOS (comment) field of user `name`; `Ok(None)` if no such user.
pub(crate) fn comment(name: &str) -> io::Result<Option<String>> {
    let output = Command::new("getent")
        .args(["passwd", name])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()?;
    if !output.status.success() {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text
        .lines()
        .filter(|line| line.split(':').next() == Some(name))
        .find_map(|line| line.split(':').nth(4).map(str::to_owned)))
}

/// Creates login user `name` (`useradd -m -s SHELL -c COMMENT`), so the
/// comment marks it as the lab's. Root only. Its shell is bash where
/// installed: a lab host's start files move a session to the host's
/// `$HOME` for bash and zsh, but `sh -c` reads no start file.
pub(crate) fn create_user(name: &str, comment: &str) -> io::Result<Account> {
    let shell = if Path::new("/bin/bash").is_file() {
        "/bin/bash"
    } else {
        "/bin/sh"
    };
    run_tool(
        Command::new("useradd")
            .args(["-m", "-s", shell, "-c", comment])
            .arg(name),
        "useradd",
    )?;
    lookup(name)?.ok_or_else(|| io::Error::other(format!("useradd did not create {name}")))
}

/// Sets `name`'s password with `chpasswd` (the password on its stdin, never
/// on a command line).
pub(crate) fn set_password(name: &str, password: &str) -> io::Result<()> {
    let mut child = Command::new("chpasswd")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(format!("{name}:{password}\n").as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "chpasswd failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// Removes user `name` and its home (`userdel -r`).
pub(crate) fn remove_user(name: &str) -> io::Result<()> {
    run_tool(Command::new("userdel").args(["-r", name]), "userdel")
}

fn run_tool(command: &mut Command, tool: &str) -> io::Result<()> {
    let output = command.stdin(Stdio::null()).output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{tool} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn passwd_lines_parse() {
        assert_eq!(
            parse_passwd_line("root:x:0:0:root:/root:/bin/bash"),
            Some(Account {
                name: "root".to_owned(),
                uid: 0,
                gid: 0,
                home: PathBuf::from("/root"),
                shell: PathBuf::from("/bin/bash"),
            })
        );
        assert_eq!(parse_passwd_line("broken:x:zero:0::/:/bin/sh"), None);
        assert_eq!(parse_passwd_line(""), None);
    }

    #[test]
    fn this_process_has_an_account() {
        let uid = effective_uid().unwrap();
        let account = lookup(&uid.to_string()).unwrap().unwrap();
        assert_eq!(account.uid, uid);
        assert_eq!(lookup(&account.name).unwrap(), Some(account));
        assert_eq!(lookup("remex-no-such-user-x9").unwrap(), None);
    }

    #[test]
    fn only_the_exact_line_is_removed() {
        let text = "ssh-ed25519 A other\nssh-ed25519 B remex-lab:/l\nssh-ed25519 B remex-lab:/l2\n";
        assert_eq!(
            without_line(text, "ssh-ed25519 B remex-lab:/l").as_deref(),
            Some("ssh-ed25519 A other\nssh-ed25519 B remex-lab:/l2\n")
        );
        assert_eq!(without_line(text, "ssh-ed25519 C"), None);
    }

    #[test]
    fn add_then_remove_leaves_other_lines() {
        let home = tempfile::tempdir().unwrap();
        let uid = effective_uid().unwrap();
        let account = Account {
            name: "me".to_owned(),
            uid,
            gid: fs::metadata(home.path()).unwrap().gid(),
            home: home.path().to_owned(),
            shell: PathBuf::from("/bin/sh"),
        };
        fs::create_dir(home.path().join(".ssh")).unwrap();
        let path = home.path().join(".ssh/authorized_keys");
        fs::write(&path, "ssh-ed25519 A mine").unwrap();
        assert_eq!(
            add_authorized_key(&account, "ssh-ed25519 B lab").unwrap(),
            path
        );
        add_authorized_key(&account, "ssh-ed25519 B lab").unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "ssh-ed25519 A mine\nssh-ed25519 B lab\n"
        );
        assert!(remove_authorized_key(&path, "ssh-ed25519 B lab").unwrap());
        assert!(!remove_authorized_key(&path, "ssh-ed25519 B lab").unwrap());
        assert_eq!(fs::read_to_string(&path).unwrap(), "ssh-ed25519 A mine\n");
    }

    #[test]
    fn add_creates_ssh_dir_and_file_private() {
        let home = tempfile::tempdir().unwrap();
        let account = Account {
            name: "me".to_owned(),
            uid: effective_uid().unwrap(),
            gid: fs::metadata(home.path()).unwrap().gid(),
            home: home.path().to_owned(),
            shell: PathBuf::from("/bin/sh"),
        };
        let path = add_authorized_key(&account, "ssh-ed25519 B lab").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&home.path().join(".ssh")), 0o700);
        assert_eq!(mode(&path), 0o600);
    }
}
