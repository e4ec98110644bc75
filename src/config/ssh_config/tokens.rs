//! `%` tokens (`%h`, `%r`, `%d`, …) and a leading `~`, expanded in
//! `HostName`, `IdentityFile` and `CertificateFile` once every value is
//! known.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use super::Sourced;
use super::error::{Refusal, SshConfigError};
use super::keyword::Keyword;

/// What a `%` token stands for.
pub(super) enum Token<'a> {
    /// Its text.
    Value(Cow<'a, OsStr>),
    /// A token `ssh` expands here and remex does not.
    Unsupported,
    /// Not a token `ssh` knows here.
    Unknown,
}

/// Expands `%x` tokens with `value`; `%%` is `%`.
pub(super) fn expand_tokens<'a>(
    text: &str,
    value: impl Fn(char) -> Token<'a>,
) -> Result<OsString, Refusal> {
    let mut out = OsString::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            let mut buf = [0; 4];
            out.push(c.encode_utf8(&mut buf));
            continue;
        }
        match chars.next() {
            None => return Err(Refusal::invalid(format!("`{text}` ends with a lone %"))),
            Some('%') => out.push("%"),
            Some(token) => match value(token) {
                Token::Value(text) => out.push(text),
                Token::Unsupported => {
                    return Err(Refusal::unsupported(format!(
                        "remex does not expand the token %{token}; write the value out"
                    )));
                }
                Token::Unknown => return Err(Refusal::invalid(format!("unknown token %{token}"))),
            },
        }
    }
    Ok(out)
}

/// What the tokens of `IdentityFile` and `CertificateFile` stand for.
pub(super) struct KeyFileTokens<'a> {
    /// `~` and `%d`.
    pub(super) home: &'a Path,
    /// `%u`.
    pub(super) local_user: &'a str,
    /// `%h`: the host name, lower-cased.
    pub(super) host: String,
    /// `%r`.
    pub(super) remote_user: &'a str,
    /// `%n`.
    pub(super) alias: &'a str,
    /// `%p`.
    pub(super) port: String,
    /// `%j`: the last jump host, else empty.
    pub(super) jump_host: &'a str,
}

/// Expands `~` and the tokens of each key file.
pub(super) fn expand_key_files(
    files: &[Sourced<String>],
    tokens: &KeyFileTokens<'_>,
    keyword: Keyword,
) -> Result<Vec<Sourced<PathBuf>>, SshConfigError> {
    files
        .iter()
        .map(|file| {
            let value = expand_key_file(&file.value, tokens)
                .map_err(|refusal| refusal.at(file.file.clone(), file.line, keyword.name()))?;
            Ok(Sourced {
                value,
                file: file.file.clone(),
                line: file.line,
            })
        })
        .collect()
}

/// `~` first, then `%` tokens, as `ssh` expands an `IdentityFile`.
fn expand_key_file(text: &str, tokens: &KeyFileTokens<'_>) -> Result<PathBuf, Refusal> {
    if text.contains("${") {
        return Err(Refusal::unsupported(format!(
            "`{text}`: remex does not expand environment variables (${{...}}); write the path out"
        )));
    }
    let mut path = OsString::new();
    let mut rest = text;
    if let Some(after) = text.strip_prefix('~') {
        // OpenSSH: `~/x` and (oddly) `~x` are the home directory's `x`;
        // `~user/x` is another user's.
        rest = match after.find('/') {
            Some(0) => &after[1..],
            Some(_) => {
                return Err(Refusal::unsupported(format!(
                    "`{text}`: `~user` is not expanded; write the full path"
                )));
            }
            None => after,
        };
        path.push(tokens.home);
        if !tokens.home.as_os_str().as_encoded_bytes().ends_with(b"/") {
            path.push("/");
        }
    }
    let expanded = expand_tokens(rest, |token| match token {
        'd' => Token::Value(tokens.home.as_os_str().into()),
        'u' => Token::Value(OsStr::new(tokens.local_user).into()),
        'h' => Token::Value(OsStr::new(tokens.host.as_str()).into()),
        'r' => Token::Value(OsStr::new(tokens.remote_user).into()),
        'n' => Token::Value(OsStr::new(tokens.alias).into()),
        'p' => Token::Value(OsStr::new(tokens.port.as_str()).into()),
        'j' => Token::Value(OsStr::new(tokens.jump_host).into()),
        'C' | 'L' | 'i' | 'k' | 'l' => Token::Unsupported,
        _ => Token::Unknown,
    })?;
    path.push(expanded);
    Ok(PathBuf::from(path))
}
