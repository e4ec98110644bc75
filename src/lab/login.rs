//! The account a lab logs in as: the user running `up` (or, for root,
//! another one), or a password lab's throwaway user, created and marked
//! as this lab's.

use std::path::{Path, PathBuf};

use super::account;
use super::error::LabError;
use super::files::write_file;
use super::layout::Layout;
use super::spec::PasswordUser;
use super::state;

/// The account the lab logs in as, checked against who runs the lab.
pub(super) fn login_account(user: Option<&str>, euid: u32) -> Result<account::Account, LabError> {
    let lookup = |key: &str| -> Result<account::Account, LabError> {
        account::lookup(key)
            .map_err(|source| LabError::io("look up", Path::new("passwd"), source))?
            .ok_or_else(|| LabError::UnknownUser {
                user: key.to_owned(),
            })
    };
    let invoking = lookup(&euid.to_string())?;
    let Some(user) = user else {
        return Ok(invoking);
    };
    let account = lookup(user)?;
    if euid != 0 && account.uid != euid {
        return Err(LabError::UserNotPermitted {
            user: user.to_owned(),
            invoking: invoking.name,
        });
    }
    Ok(account)
}

/// The comment (GECOS) that marks a password lab's user as this lab's:
/// `remex-lab-` and a digest of the lab directory (a path may hold the
/// `:` and `,` that GECOS cannot).
pub(super) fn user_comment(layout: &Layout) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(layout.dir.as_os_str().as_encoded_bytes());
    format!(
        "remex-lab-{}",
        hex::encode(digest.get(..8).unwrap_or_default())
    )
}

/// Creates (or finds, left by this lab) the password lab's user and sets
/// its password; returns the account, the state to record, and the
/// password file when remex chose the password.
pub(super) fn password_account(
    layout: &Layout,
    user: &PasswordUser,
) -> Result<
    (
        account::Account,
        Option<state::PasswordUserState>,
        Option<PathBuf>,
    ),
    LabError,
> {
    let failed = |reason: String| LabError::PasswordUser {
        user: user.name.clone(),
        reason,
    };
    if user.name.is_empty()
        || user.name.starts_with('-')
        || !user
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b))
    {
        return Err(failed(
            "use lower-case letters, digits, `_` and `-`, not starting with `-`".to_owned(),
        ));
    }
    let mark = user_comment(layout);
    let existing = account::comment(&user.name).map_err(|e| failed(e.to_string()))?;
    let (account, created) = match existing {
        Some(comment) if comment == mark => (
            account::lookup(&user.name)
                .map_err(|e| failed(e.to_string()))?
                .ok_or_else(|| failed("it vanished".to_owned()))?,
            true,
        ),
        Some(_) => {
            return Err(LabError::UserExists {
                user: user.name.clone(),
            });
        }
        None => (
            account::create_user(&user.name, &mark).map_err(|e| failed(e.to_string()))?,
            true,
        ),
    };
    let (password, file) = match &user.password {
        Some(password) => (password.clone(), None),
        None => {
            use rand::distr::{Alphanumeric, SampleString as _};
            let password = Alphanumeric.sample_string(&mut rand::rng(), 24);
            let path = layout.password_file();
            write_file(&path, format!("{password}\n").as_bytes(), 0o600)?;
            (password, Some(path))
        }
    };
    account::set_password(&user.name, &password).map_err(|e| failed(e.to_string()))?;
    Ok((
        account,
        Some(state::PasswordUserState {
            name: user.name.clone(),
            created,
        }),
        file,
    ))
}
