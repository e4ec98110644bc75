//! [`Redactor`]: replaces secrets with `[REDACTED]` before text reaches the
//! audit log (and, through the CLI, stdout, stderr and logs).
//!
//! Three kinds of things are redacted, in this order:
//!
//! 1. **Literal secrets** the caller knows: `--secret-env K=V` values, sudo
//!    passwords. Every occurrence, anywhere. (A one-character secret
//!    redacts that character everywhere: secrets are taken at their word.)
//! 2. **Patterns**: [`DEFAULT_PATTERNS`], always, then the config's
//!    `audit.redact`. When a pattern has a capture group, only the first
//!    group's match is replaced, which keeps the key of `key=value`
//!    (`password=[REDACTED]`); without a group the whole match is.
//! 3. In an argv ([`Redactor::redact_argv`]), the word after a flag such as
//!    `--password` or `--token` (`mysql --password hunter2`).
//!
//! Matching is on bytes, so output that is not UTF-8 is redacted too. The
//! default patterns are ASCII case-insensitive and byte-oriented (`(?i-u)`),
//! so a value made of bytes that are not UTF-8 is still caught; they only
//! start and stop at ASCII characters, so valid UTF-8 stays valid.
//!
//! **Invariant:** a `Redactor`'s `Debug` output names no secret.

use std::borrow::Cow;
use std::fmt;

use regex::bytes::{Regex, RegexBuilder};

use super::error::AuditError;

/// What a secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Names that mark a value as secret in the default patterns.
macro_rules! secret_words {
    () => {
        "(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)"
    };
}

/// The patterns that always apply, each with one capture group around the
/// secret part:
///
/// - `key=value` where the key contains password, passwd, secret, token,
///   api_key/api-key/apikey, access_key or private_key, in any case and with
///   any prefix or suffix (`DB_PASSWORD=…`, `--token=…`, `?access_token=…`);
///   the value is a quoted string or runs to whitespace, `&`, `;` or `,`;
/// - the same keys as JSON members (`"password": "…"`);
/// - the same words as flags followed by a separate value
///   (`--password hunter2`);
/// - `Authorization:` and `Proxy-Authorization:` headers, to the end of the
///   line or quote;
/// - `X-…-Token:`/`X-…-Key:`/`X-…-Secret:` headers;
/// - `Bearer <token>`;
/// - the password in a URL (`https://user:PASSWORD@host`).
pub const DEFAULT_PATTERNS: &[&str] = &[
    concat!(
        r#"(?i-u)[a-z0-9_.-]*"#,
        secret_words!(),
        r#"[a-z0-9_.-]*\s*=\s*("[^"]*"|'[^']*'|[^\s"'&;,]+)"#
    ),
    concat!(
        r#"(?i-u)"[a-z0-9_.-]*"#,
        secret_words!(),
        r#"[a-z0-9_.-]*"\s*:\s*("(?:[^"\\]|\\.)*")"#
    ),
    concat!(
        r#"(?i-u)(?:^|\s)--?[a-z0-9_-]*"#,
        secret_words!(),
        r#"\s+("[^"]*"|'[^']*'|[^\s"'-][^\s"']*)"#
    ),
    r#"(?i-u)\b(?:proxy-)?authorization\s*:\s*([^\r\n"']+)"#,
    r#"(?i-u)\bx-[a-z0-9-]*(?:token|key|secret)\s*:\s*([^\r\n"']+)"#,
    r"(?i-u)\bbearer\s+([a-z0-9._~+/-]+=*)",
    r"(?i-u)\b[a-z][a-z0-9+.-]*://[^\s:/@]+:([^\s@/]+)@",
];

/// A flag whose next argv word is a secret.
const SECRET_FLAG: &str = concat!("(?i-u)^--?[a-z0-9_-]*", secret_words!(), "$");

/// Replaces secrets with [`REDACTED`]. Cheap to clone.
#[derive(Clone)]
pub struct Redactor {
    /// The literal secrets, longest first (kept to extend the set).
    secrets: Vec<String>,
    /// One regex matching any literal secret, when there are some.
    secret_regex: Option<Regex>,
    /// The patterns, defaults first.
    patterns: Vec<Regex>,
    /// [`SECRET_FLAG`].
    flag: Regex,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .field("patterns", &self.patterns.len())
            .finish()
    }
}

impl Redactor {
    /// A redactor for the default patterns, then `patterns` (the config's
    /// `audit.redact`), and the literal `secrets` (empty ones are ignored).
    ///
    /// # Errors
    ///
    /// [`AuditError::Pattern`] when a pattern is not a valid regex (config
    /// validation already refuses those).
    pub fn new(patterns: &[String], secrets: Vec<String>) -> Result<Redactor, AuditError> {
        let patterns = DEFAULT_PATTERNS
            .iter()
            .copied()
            .chain(patterns.iter().map(String::as_str))
            .map(compile)
            .collect::<Result<Vec<_>, _>>()?;
        let redactor = Redactor {
            secrets: Vec::new(),
            secret_regex: None,
            patterns,
            flag: compile(SECRET_FLAG)?,
        };
        redactor.with_secrets(secrets)
    }

    /// The redactor for the config's patterns, with no literal secrets yet.
    ///
    /// # Errors
    ///
    /// As [`Redactor::new`].
    pub fn from_config(config: &super::AuditConfig) -> Result<Redactor, AuditError> {
        Redactor::new(&config.redact, Vec::new())
    }

    /// This redactor with more literal secrets (a run's `--secret-env`
    /// values and sudo password).
    ///
    /// # Errors
    ///
    /// [`AuditError::Pattern`] if the secrets are too many or too long to
    /// compile into one matcher (megabytes of them).
    pub fn with_secrets(
        &self,
        secrets: impl IntoIterator<Item = String>,
    ) -> Result<Redactor, AuditError> {
        let mut all = self.secrets.clone();
        all.extend(secrets.into_iter().filter(|secret| !secret.is_empty()));
        // Longest first, so that of two overlapping secrets the longer one
        // is replaced whole (the regex takes the first alternative).
        all.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        all.dedup();
        let secret_regex = if all.is_empty() {
            None
        } else {
            let alternation = all
                .iter()
                .map(|secret| regex::escape(secret))
                .collect::<Vec<_>>()
                .join("|");
            let regex = RegexBuilder::new(&alternation)
                .unicode(false)
                .size_limit(64 << 20)
                .build()
                .map_err(|source| AuditError::Pattern {
                    // Never the secrets themselves.
                    pattern: format!("<{} literal secrets>", all.len()),
                    source: Box::new(source),
                })?;
            Some(regex)
        };
        Ok(Redactor {
            secrets: all,
            secret_regex,
            patterns: self.patterns.clone(),
            flag: self.flag.clone(),
        })
    }

    /// `text` with every secret replaced.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.redact_bytes(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            Cow::Owned(bytes) => Cow::Owned(match String::from_utf8(bytes) {
                Ok(text) => text,
                // Matches start and end on character boundaries of valid
                // UTF-8, so this does not happen; be safe anyway.
                Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
            }),
        }
    }

    /// `data` with every secret replaced.
    pub fn redact_bytes<'a>(&self, data: &'a [u8]) -> Cow<'a, [u8]> {
        let mut text = Cow::Borrowed(data);
        if let Some(regex) = &self.secret_regex
            && let Some(replaced) = replace(regex, &text)
        {
            text = Cow::Owned(replaced);
        }
        for regex in &self.patterns {
            if let Some(replaced) = replace(regex, &text) {
                text = Cow::Owned(replaced);
            }
        }
        text
    }

    /// Redacts the members of `record` that can hold secrets: `argv`
    /// ([`Redactor::redact_argv`]), `command`, `error`, the `paths` of a
    /// transfer or a key, a `key` name, and an action's string `params`.
    pub fn redact_record(&self, record: &mut super::Record) {
        for value in record.params.iter_mut().flat_map(|p| p.values_mut()) {
            if let serde_json::Value::String(text) = value {
                *text = self.redact(text).into_owned();
            }
        }
        if let Some(argv) = &record.argv {
            record.argv = Some(self.redact_argv(argv));
        }
        for text in [&mut record.command, &mut record.error, &mut record.key]
            .into_iter()
            .flatten()
            .chain(record.paths.iter_mut().flatten())
        {
            *text = self.redact(text).into_owned();
        }
    }

    /// `argv` with every secret replaced in each word, and the word after a
    /// secret-naming flag (`--password`, `--api-key`, …) replaced whole.
    pub fn redact_argv(&self, argv: &[String]) -> Vec<String> {
        let mut out = Vec::with_capacity(argv.len());
        let mut hide_next = false;
        for word in argv {
            if hide_next {
                out.push(REDACTED.to_owned());
            } else {
                out.push(self.redact(word).into_owned());
            }
            hide_next = self.flag.is_match(word.as_bytes());
        }
        out
    }
}

/// Compiles one pattern.
fn compile(pattern: &str) -> Result<Regex, AuditError> {
    Regex::new(pattern).map_err(|source| AuditError::Pattern {
        pattern: pattern.to_owned(),
        source: Box::new(source),
    })
}

/// `data` with the first capture group (or, without groups, the whole
/// match) of every match replaced; `None` when nothing matched.
fn replace(regex: &Regex, data: &[u8]) -> Option<Vec<u8>> {
    let has_group = regex.captures_len() > 1;
    let mut out = Vec::new();
    let mut copied = 0;
    let mut changed = false;
    for caps in regex.captures_iter(data) {
        let part = if has_group { caps.get(1) } else { caps.get(0) };
        let Some(part) = part.filter(|part| !part.is_empty() && part.start() >= copied) else {
            continue;
        };
        out.extend_from_slice(data.get(copied..part.start())?);
        out.extend_from_slice(REDACTED.as_bytes());
        copied = part.end();
        changed = true;
    }
    if !changed {
        return None;
    }
    out.extend_from_slice(data.get(copied..)?);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Redactor {
        Redactor::new(&[], Vec::new()).unwrap()
    }

    #[test]
    fn literal_secrets_are_replaced_everywhere() {
        let r = Redactor::new(
            &[],
            vec!["hunter2".into(), String::new(), "s3cr3t-longer".into()],
        )
        .unwrap();
        assert_eq!(
            r.redact("echo hunter2; echo xhunter2x s3cr3t-longer"),
            "echo [REDACTED]; echo x[REDACTED]x [REDACTED]"
        );
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
        // The longer of two overlapping secrets wins.
        let r = Redactor::new(&[], vec!["abc".into(), "abcdef".into()]).unwrap();
        assert_eq!(r.redact("1abcdef2abc3"), "1[REDACTED]2[REDACTED]3");
        // Regex metacharacters in a secret are literal.
        let r = Redactor::new(&[], vec!["a.b*c".into()]).unwrap();
        assert_eq!(r.redact("a.b*c axbbc"), "[REDACTED] axbbc");
        // Added later, for one run.
        let r = defaults().with_secrets(["pw1".to_owned()]).unwrap();
        let r = r.with_secrets(["pw2".to_owned()]).unwrap();
        assert_eq!(r.redact("pw1 pw2"), "[REDACTED] [REDACTED]");
        assert!(!format!("{r:?}").contains("pw1"), "{r:?}");
    }

    #[test]
    fn key_value_patterns_keep_the_key() {
        let r = defaults();
        let cases = [
            (
                "mysql --password=hunter2 db",
                "mysql --password=[REDACTED] db",
            ),
            ("PASSWD=abc ./run", "PASSWD=[REDACTED] ./run"),
            (
                "export DB_PASSWORD='a b c'",
                "export DB_PASSWORD=[REDACTED]",
            ),
            (
                "curl 'https://x/?access_token=abc&x=1'",
                "curl 'https://x/?access_token=[REDACTED]&x=1'",
            ),
            ("token = xyz", "token = [REDACTED]"),
            (
                "client_secret=\"q w\" next",
                "client_secret=[REDACTED] next",
            ),
            (
                "api_key=K1 api-key=K2 apikey=K3",
                "api_key=[REDACTED] api-key=[REDACTED] apikey=[REDACTED]",
            ),
            (
                r#"{"password": "p\"w", "user": "u"}"#,
                r#"{"password": [REDACTED], "user": "u"}"#,
            ),
            ("keep user=alice mode=fast", "keep user=alice mode=fast"),
        ];
        for (text, want) in cases {
            assert_eq!(r.redact(text), want, "{text}");
        }
    }

    #[test]
    fn headers_bearer_flags_and_urls() {
        let r = defaults();
        let cases = [
            (
                r#"curl -H "Authorization: Basic dXNlcjpwYXNz" https://x"#,
                r#"curl -H "Authorization: [REDACTED]" https://x"#,
            ),
            (
                "proxy-authorization: Digest abc",
                "proxy-authorization: [REDACTED]",
            ),
            (
                "curl -H 'X-Api-Key: abc123' u",
                "curl -H 'X-Api-Key: [REDACTED]' u",
            ),
            (
                "token is Bearer abc.def-ghi== ok",
                "token is Bearer [REDACTED] ok",
            ),
            (
                "app --api-token tok123 --verbose",
                "app --api-token [REDACTED] --verbose",
            ),
            ("app --token --verbose", "app --token --verbose"),
            (
                "git clone https://bob:pa55@github.com/x",
                "git clone https://bob:[REDACTED]@github.com/x",
            ),
            ("ssh user@host", "ssh user@host"),
        ];
        for (text, want) in cases {
            assert_eq!(r.redact(text), want, "{text}");
        }
    }

    #[test]
    fn config_patterns_with_and_without_a_group() {
        let r = Redactor::new(
            &[r"pin:(\d+)".into(), r"ACME-[0-9A-F]{8}".into()],
            Vec::new(),
        )
        .unwrap();
        assert_eq!(
            r.redact("pin:1234 key ACME-DEADBEEF password=x"),
            "pin:[REDACTED] key [REDACTED] password=[REDACTED]"
        );
        let err = Redactor::new(&["(".into()], Vec::new()).unwrap_err();
        assert!(
            err.to_string().contains("invalid redact pattern `(`"),
            "{err}"
        );
    }

    #[test]
    fn argv_words_and_the_word_after_a_secret_flag() {
        let r = defaults().with_secrets(["s3".to_owned()]).unwrap();
        let argv: Vec<String> = [
            "mysql",
            "--password",
            "hunter2",
            "-u",
            "root",
            "--token=t",
            "x-s3-y",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            r.redact_argv(&argv),
            [
                "mysql",
                "--password",
                "[REDACTED]",
                "-u",
                "root",
                "--token=[REDACTED]",
                "x-[REDACTED]-y"
            ]
        );
    }

    #[test]
    fn bytes_that_are_not_utf8() {
        let r = defaults().with_secrets(["pw".to_owned()]).unwrap();
        let data = b"\xff\xfe pw token=\xff\xfe end";
        assert_eq!(
            &*r.redact_bytes(data),
            b"\xff\xfe [REDACTED] token=[REDACTED] end"
        );
    }
}
