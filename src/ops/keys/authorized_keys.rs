//! Editing an `authorized_keys` file as text: add a key once, remove a key
//! everywhere, keep every other byte as it was.
//!
//! A line is read the way sshd reads it (`check_authkey_line` in OpenSSH's
//! `auth2-pubkeyfile.c`): leading blanks are skipped; empty lines and lines
//! starting with `#` are not keys; the line is first tried as
//! `TYPE BASE64 [COMMENT]`, and when that fails its first token is taken as
//! the options — a token that ends at the first space or tab outside double
//! quotes, where `\"` does not end a quote (`sshkey_advance_past_options`) —
//! followed by the key. So `command="echo a b",from="10.0.0.1" ssh-ed25519
//! AAAA… c` holds the key `ssh-ed25519 AAAA…`.
//!
//! Two lines hold the same key when their key blobs are equal (the blob
//! starts with the type name); options and comments do not matter. A
//! `cert-authority` line is not a login key — sshd refuses a plain key that
//! only appears on one — so it is neither counted as present nor removed.
//!
//! **Invariant:** these functions do no I/O and cannot fail; a public key is
//! validated once, when it becomes a [`KeyLine`].

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use russh::keys::PublicKey;

use crate::keydir::KeysError;

/// Base64 as OpenSSH's `b64_pton` reads it: standard alphabet, padding
/// optional.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A public key to add, find or remove, validated once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyLine {
    /// The line appended by [`add_key`]: the input without surrounding
    /// white space (options, if given, included).
    line: String,
    /// The key type token (`ssh-ed25519`, …).
    key_type: String,
    /// The decoded key blob: what identifies the key.
    blob: Vec<u8>,
}

impl KeyLine {
    /// Parses a public key line as found in a `.pub` file
    /// (`TYPE BASE64 [COMMENT]`), optionally preceded by authorized_keys
    /// options. Refuses more than one line and `cert-authority` lines.
    pub(crate) fn parse(line: &str) -> Result<Self, KeysError> {
        let invalid = |reason: &str| KeysError::InvalidPublicKey {
            reason: reason.to_owned(),
        };
        let line = line.trim();
        if line.is_empty() {
            return Err(invalid("it is empty"));
        }
        if line.contains(['\n', '\r']) {
            return Err(invalid("it is more than one line"));
        }
        let entry = parse_entry(line)
            .ok_or_else(|| invalid("no key type followed by a base64 key blob of that type"))?;
        if entry.cert_authority {
            return Err(invalid("a cert-authority line is not a login key"));
        }
        Ok(Self {
            line: line.to_owned(),
            key_type: entry.key_type.to_owned(),
            blob: entry.blob,
        })
    }

    /// The line for a public key: `TYPE BASE64 COMMENT`, as in its `.pub`.
    pub(crate) fn from_public_key(key: &PublicKey) -> Result<Self, KeysError> {
        let text = key.to_openssh().map_err(|e| KeysError::InvalidPublicKey {
            reason: e.to_string(),
        })?;
        Self::parse(&text)
    }

    /// The line as [`add_key`] appends it (for tests' expectations).
    #[cfg(test)]
    pub(crate) fn as_str(&self) -> &str {
        &self.line
    }
}

/// Adds `key` unless a line already holds it; returns the new text and
/// whether it changed. Other lines are kept byte for byte; a missing final
/// newline is added before the new line; the new line ends in CRLF when
/// the file's last line break is CRLF.
pub(crate) fn add_key(existing: &str, key: &KeyLine) -> (String, bool) {
    if contains_key(existing, key) {
        return (existing.to_owned(), false);
    }
    let eol = if last_line_is_crlf(existing) {
        "\r\n"
    } else {
        "\n"
    };
    let mut out = String::with_capacity(existing.len() + key.line.len() + 2);
    out.push_str(existing);
    if !existing.is_empty() && !existing.ends_with('\n') {
        out.push_str(eol);
    }
    out.push_str(&key.line);
    out.push_str(eol);
    (out, true)
}

/// Removes every line holding `key` (with or without options, any comment);
/// returns the new text and how many lines went. Everything else is kept
/// byte for byte.
pub(crate) fn remove_key(existing: &str, key: &KeyLine) -> (String, usize) {
    let mut removed = 0;
    let mut out = String::with_capacity(existing.len());
    for line in existing.split_inclusive('\n') {
        if line_holds(line, key) {
            removed += 1;
        } else {
            out.push_str(line);
        }
    }
    (out, removed)
}

/// Whether some line holds `key` as a login key.
pub(crate) fn contains_key(existing: &str, key: &KeyLine) -> bool {
    existing
        .split_inclusive('\n')
        .any(|line| line_holds(line, key))
}

/// Whether the last line break in `text` is `\r\n` (an appended line
/// follows the convention of the lines just before it).
fn last_line_is_crlf(text: &str) -> bool {
    text.rfind('\n')
        .is_some_and(|i| i > 0 && text.as_bytes().get(i - 1) == Some(&b'\r'))
}

/// Whether one line (with its terminator) authorizes `key` for login.
fn line_holds(line: &str, key: &KeyLine) -> bool {
    parse_entry(strip_eol(line))
        .is_some_and(|entry| !entry.cert_authority && entry.blob == key.blob)
}

/// The line without its `\n` or `\r\n`.
fn strip_eol(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_suffix('\r').unwrap_or(line)
}

/// A key line of an authorized_keys file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry<'a> {
    /// The options token, if any.
    options: Option<&'a str>,
    /// Whether the options include `cert-authority`.
    cert_authority: bool,
    /// The key type token.
    key_type: &'a str,
    /// The decoded key blob.
    blob: Vec<u8>,
}

/// Reads one line (without its terminator) as sshd does; `None` for blank
/// lines, comments and anything that is not a key.
fn parse_entry(line: &str) -> Option<Entry<'_>> {
    let line = skip_blanks(line);
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    if let Some((key_type, blob)) = read_key(line) {
        return Some(Entry {
            options: None,
            cert_authority: false,
            key_type,
            blob,
        });
    }
    let end = advance_past_options(line)?;
    let (options, rest) = line.split_at(end);
    let (key_type, blob) = read_key(skip_blanks(rest))?;
    Some(Entry {
        options: Some(options),
        cert_authority: has_flag(options, "cert-authority"),
        key_type,
        blob,
    })
}

/// Skips spaces and tabs.
fn skip_blanks(s: &str) -> &str {
    s.trim_start_matches([' ', '\t'])
}

/// The byte offset of the first space or tab outside double quotes, as
/// `sshkey_advance_past_options`: `\"` is skipped whole; `None` when a
/// quote is left open.
fn advance_past_options(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut quoted = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if !quoted && (b == b' ' || b == b'\t') {
            return Some(i);
        }
        if b == b'\\' && bytes.get(i + 1) == Some(&b'"') {
            i += 1;
        } else if b == b'"' {
            quoted = !quoted;
        }
        i += 1;
    }
    (!quoted).then_some(i)
}

/// Whether the comma-separated `options` include the flag `name`
/// (case-insensitive, as sshd's `opt_flag`); commas inside quotes do not
/// separate.
fn has_flag(options: &str, name: &str) -> bool {
    let bytes = options.as_bytes();
    let mut quoted = false;
    let mut start = 0;
    let mut i = 0;
    let mut found = false;
    let mut check = |from: usize, to: usize| {
        found |= options
            .get(from..to)
            .is_some_and(|opt| opt.eq_ignore_ascii_case(name));
    };
    while let Some(&b) = bytes.get(i) {
        if b == b'\\' && bytes.get(i + 1) == Some(&b'"') {
            i += 1;
        } else if b == b'"' {
            quoted = !quoted;
        } else if b == b',' && !quoted {
            check(start, i);
            start = i + 1;
        }
        i += 1;
    }
    check(start, bytes.len());
    found
}

/// Reads `TYPE BASE64` at the start of `s` (as `sshkey_read`): the type must
/// be followed by blanks and a base64 blob whose first SSH string is the
/// type itself. Returns the type and the decoded blob.
fn read_key(s: &str) -> Option<(&str, Vec<u8>)> {
    let type_end = s.find([' ', '\t'])?;
    let (key_type, rest) = s.split_at(type_end);
    let rest = skip_blanks(rest);
    let blob_end = rest.find([' ', '\t']).unwrap_or(rest.len());
    let encoded = rest.get(..blob_end)?;
    if key_type.is_empty() || encoded.is_empty() {
        return None;
    }
    let blob = BASE64.decode(encoded).ok()?;
    let len_bytes: [u8; 4] = blob.get(..4)?.try_into().ok()?;
    let len = usize::try_from(u32::from_be_bytes(len_bytes)).ok()?;
    let name = blob.get(4..4usize.checked_add(len)?)?;
    (name == key_type.as_bytes()).then_some((key_type, blob))
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::{Algorithm, PrivateKey};

    /// A fresh public key line `ssh-ed25519 AAAA… comment`.
    fn new_key(comment: &str) -> String {
        let mut key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
            .unwrap_or_else(|e| panic!("generate: {e}"));
        key.set_comment(comment);
        key.public_key()
            .to_openssh()
            .unwrap_or_else(|e| panic!("encode: {e}"))
    }

    /// `TYPE BASE64` of a line, without the comment.
    fn bare(line: &str) -> String {
        line.split(' ').take(2).collect::<Vec<_>>().join(" ")
    }

    fn key_line(line: &str) -> KeyLine {
        KeyLine::parse(line).unwrap_or_else(|e| panic!("parse {line:?}: {e}"))
    }

    #[test]
    fn add_to_empty_and_idempotent() {
        let line = new_key("me@host");
        let key = key_line(&line);
        let (once, changed) = add_key("", &key);
        assert!(changed);
        assert_eq!(once, format!("{line}\n"));
        let (twice, changed) = add_key(&once, &key);
        assert!(!changed);
        assert_eq!(twice, once, "adding twice leaves one line");
    }

    #[test]
    fn other_lines_are_kept_byte_for_byte() {
        let other = new_key("other");
        let existing = format!(
            "# managed by hand\n\n  \t\nno-pty,from=\"10.0.0.0/8\" {other}\r\n#{other}\n   \n"
        );
        let key = key_line(&new_key("new"));
        let (out, changed) = add_key(&existing, &key);
        assert!(changed);
        assert_eq!(out, format!("{existing}{}\n", key.as_str()));
    }

    #[test]
    fn missing_final_newline_is_added_first() {
        let other = new_key("other");
        let key = key_line(&new_key("new"));
        let (out, _) = add_key(&other, &key);
        assert_eq!(out, format!("{other}\n{}\n", key.as_str()));
    }

    #[test]
    fn crlf_files_get_crlf_lines() {
        let other = new_key("other");
        let key = key_line(&new_key("new"));
        let (out, _) = add_key(&format!("{other}\r\n"), &key);
        assert_eq!(out, format!("{other}\r\n{}\r\n", key.as_str()));
        let (out, _) = add_key(&format!("{other}\r\n# no eol"), &key);
        assert_eq!(out, format!("{other}\r\n# no eol\r\n{}\r\n", key.as_str()));
    }

    #[test]
    fn same_key_is_found_whatever_the_options_and_comment() {
        let line = new_key("original");
        let key = key_line(&line);
        let b = bare(&line);
        let variants = [
            line.clone(),
            b.clone(),
            format!("{b} a different comment with spaces"),
            format!("{b}\r"),
            format!("{b} comment\r"),
            format!("   \t{b}"),
            b.replacen(' ', "\t", 1),
            format!("no-pty {b}"),
            format!("from=\"10.0.0.1\",no-pty {line}"),
            format!("command=\"echo a b\",from=\"10.0.0.1\" {b} c"),
            format!(r#"command="echo \"a, b\" c",no-agent-forwarding {b}"#),
            format!(r#"environment="A=x y",command="printf '%s\n' \"q\"" {b}"#),
            format!("restrict,command=\"ssh-ed25519 AAAA fake\" {b}"),
            format!("NO-PTY\t{b} tabbed"),
        ];
        for variant in variants {
            assert!(contains_key(&variant, &key), "not found in {variant:?}");
            assert!(
                contains_key(&format!("{variant}\n"), &key),
                "{variant:?}\\n"
            );
            let (out, changed) = add_key(&format!("{variant}\n"), &key);
            assert!(!changed, "duplicated {variant:?}");
            assert_eq!(out, format!("{variant}\n"));
        }
    }

    #[test]
    fn lines_that_do_not_authorize_the_key() {
        let line = new_key("k");
        let key = key_line(&line);
        let b = bare(&line);
        let other = new_key("other");
        let not_keys = [
            format!("#{line}"),
            format!("  # {line}"),
            format!("cert-authority {b}"),
            format!("Cert-Authority,principals=\"a,b\" {b}"),
            // An unterminated quote: sshd rejects the line ("invalid key
            // option string").
            format!("command=\"echo {b}"),
            other.clone(),
            // The type token must match the blob's own type.
            b.replacen("ssh-ed25519", "ssh-rsa", 1),
            // A key type with no blob after it.
            "ssh-ed25519".to_owned(),
            format!("{}!!", b),
            String::new(),
        ];
        for text in not_keys {
            assert!(!contains_key(&text, &key), "wrongly found in {text:?}");
            let (out, removed) = remove_key(&format!("{text}\n"), &key);
            assert_eq!((out, removed), (format!("{text}\n"), 0), "{text:?}");
        }
    }

    #[test]
    fn remove_takes_every_copy_and_keeps_the_rest() {
        let line = new_key("k");
        let key = key_line(&line);
        let b = bare(&line);
        let other = new_key("other");
        let existing = format!(
            "# header\r\n{line}\nfrom=\"a b\" {other}\n\ncommand=\"x\" {b} old\r\ncert-authority {b}\n{b}"
        );
        let (out, removed) = remove_key(&existing, &key);
        assert_eq!(removed, 3);
        assert_eq!(
            out,
            format!("# header\r\nfrom=\"a b\" {other}\n\ncert-authority {b}\n")
        );
        assert!(!contains_key(&out, &key));
        let (again, removed) = remove_key(&out, &key);
        assert_eq!((again.as_str(), removed), (out.as_str(), 0));
    }

    #[test]
    fn add_then_remove_restores_the_file() {
        let other = new_key("other");
        let key = key_line(&new_key("k"));
        for existing in [
            String::new(),
            format!("{other}\n"),
            format!("# c\r\n{other}\r\n"),
        ] {
            let (added, _) = add_key(&existing, &key);
            let (restored, removed) = remove_key(&added, &key);
            assert_eq!(removed, 1);
            assert_eq!(restored, existing);
        }
    }

    #[test]
    fn key_line_parsing() {
        let line = new_key("c");
        assert_eq!(key_line(&format!("  {line}\n")).as_str(), line);
        assert_eq!(key_line(&line).key_type, "ssh-ed25519");
        let with_options = format!("no-pty {line}");
        assert_eq!(key_line(&with_options).as_str(), with_options);
        for bad in [
            String::new(),
            "   ".to_owned(),
            "garbage".to_owned(),
            format!("{line}\n{line}"),
            format!("cert-authority {line}"),
            bare(&line).replacen("ssh-ed25519", "ssh-rsa", 1),
        ] {
            let err = KeyLine::parse(&bad);
            assert!(
                matches!(err, Err(KeysError::InvalidPublicKey { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn from_public_key_matches_the_pub_line() {
        let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
            .unwrap_or_else(|e| panic!("generate: {e}"));
        let parsed = KeyLine::from_public_key(key.public_key()).unwrap_or_else(|e| panic!("{e}"));
        let text = key.public_key().to_openssh().unwrap_or_default();
        assert_eq!(parsed, key_line(&text));
    }

    #[test]
    fn option_scanner_follows_openssh() {
        assert_eq!(advance_past_options("a,b c"), Some(3));
        assert_eq!(advance_past_options(r#"command="a b" k"#), Some(13));
        assert_eq!(advance_past_options(r#"c="a \" b" k"#), Some(10));
        assert_eq!(advance_past_options("c=\"open"), None);
        assert_eq!(advance_past_options("flag"), Some(4));
        assert!(has_flag("no-pty,cert-authority", "cert-authority"));
        assert!(!has_flag(r#"command="x,cert-authority""#, "cert-authority"));
        assert!(!has_flag("cert-authority-ish", "cert-authority"));
    }

    /// `ssh-keygen -l -f FILE` reads an authorized_keys file with sshd's
    /// parser; it must see exactly the keys we see, line by line.
    #[test]
    fn agrees_with_ssh_keygen_on_which_lines_are_keys() {
        let keys: Vec<String> = (0..4).map(|i| new_key(&format!("k{i}"))).collect();
        let lines = [
            keys[0].clone(),
            "# comment".to_owned(),
            String::new(),
            format!(r#"command="echo \"a b\", c",from="10.0.0.1" {}"#, keys[1]),
            format!("no-pty\t{}", bare(&keys[2])),
            format!("cert-authority,principals=\"x,y\" {}", keys[3]),
            format!("  environment=\"A=b c\" {}", bare(&keys[0])),
        ];
        let text = lines.join("\n") + "\n";
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("authorized_keys");
        std::fs::write(&path, &text).unwrap_or_else(|e| panic!("write: {e}"));
        let listed = crate::test_support::ssh_keygen([
            std::ffi::OsStr::new("-l"),
            std::ffi::OsStr::new("-f"),
            path.as_os_str(),
        ]);
        let theirs: Vec<String> = listed
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
            .collect();
        let ours: Vec<String> = lines
            .iter()
            .filter_map(|l| parse_entry(l))
            .map(|e| {
                let key = PublicKey::from_bytes(&e.blob).unwrap_or_else(|e| panic!("{e}"));
                crate::transport::identity::fingerprint(&key)
            })
            .collect();
        assert_eq!(ours.len(), 5);
        assert_eq!(ours, theirs);
    }
}
