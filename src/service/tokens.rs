//! Token administration, for `remex tokens`: what the store needs, and
//! the token shown once.

use super::{Store, StoreError, TokenRecord};

/// A token just made: the secret parts are shown once.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// `rmx_…`: give it to the client; it is not stored.
    pub token: String,
    /// The key that signs this token's callbacks.
    pub callback_secret: String,
    /// What was stored.
    pub record: TokenRecord,
}

/// Makes token `name` with `scopes` reaching `targets`, expiring at
/// `expires_ms`.
///
/// # Errors
///
/// An unknown scope; a name taken; the store.
pub fn create(
    store: &dyn Store,
    name: &str,
    scopes: &[String],
    targets: &str,
    expires_ms: Option<i64>,
    now_ms: i64,
) -> Result<NewToken, String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(format!(
            "`{name}` is not a token name: letters, digits, `-`, `_`, `.`, up to 64"
        ));
    }
    if scopes.is_empty() {
        return Err("give the token at least one --scope".to_owned());
    }
    for scope in scopes {
        super::auth::Scope::parse(scope)?;
    }
    let token = super::auth::new_token();
    let callback_secret = super::auth::new_secret();
    let record = TokenRecord {
        name: name.to_owned(),
        hash: super::auth::hash(&token),
        scopes: scopes.to_vec(),
        targets: targets.to_owned(),
        created_ms: now_ms,
        expires_ms,
        revoked_ms: None,
        callback_secret: callback_secret.clone(),
    };
    store.insert_token(&record).map_err(|e| match e {
        StoreError::Exists(_) => {
            format!("a token named `{name}` exists; revoke it or pick another name")
        }
        other => other.to_string(),
    })?;
    Ok(NewToken {
        token,
        callback_secret,
        record,
    })
}

/// Every scope's name.
pub fn scopes() -> Vec<&'static str> {
    super::auth::Scope::ALL.iter().map(|s| s.as_str()).collect()
}
