//! What the service accepts, as JSON Schema: the patterns and bounds of
//! the OpenAPI document, in one place. Where the service checks a value
//! itself (`wait`, a cursor, `mode`), it checks it with the very pattern
//! the document shows ([`matches`]), so the two cannot disagree; where a
//! library parser decides (a selector, a timeout, a size, a key name), the
//! pattern describes exactly what that parser accepts, and the tests
//! below hold the two together on the edge cases.
//!
//! The patterns are written in the subset of regular-expression syntax
//! that ECMA-262 (JSON Schema's dialect), Python (the fuzzers') and the
//! `regex` crate read alike: no lookaround, `\uXXXX` escapes, `$` only at
//! the end. A pattern is unanchored in JSON Schema, so each says `^…$`
//! where it means the whole value.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use regex::Regex;
use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, ArrayBuilder, ArrayItems, Object, ObjectBuilder, Schema,
    SchemaFormat, Type,
};
use utoipa::openapi::{KnownFormat, RefOr};

/// What Rust's `str::trim` removes (Unicode `White_Space`), as the body
/// of a character class.
macro_rules! ws {
    () => {
        r"\t\n\x0B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"
    };
}

/// One number of a duration's part: bounded so that no duration the
/// pattern admits overflows (leading zeros are free).
macro_rules! part {
    ($unit:literal) => {
        concat!("0*[0-9]{1,11}", $unit)
    };
}

/// A duration as `config::parse_duration` reads it, without surrounding
/// spaces: whole seconds, or parts with units largest first, each once.
macro_rules! duration {
    () => {
        concat!(
            "0*[0-9]{1,19}",
            "|",
            part!("d"),
            "(?:",
            part!("h"),
            ")?(?:",
            part!("m"),
            ")?(?:",
            part!("s"),
            ")?(?:",
            part!("ms"),
            ")?",
            "|",
            part!("h"),
            "(?:",
            part!("m"),
            ")?(?:",
            part!("s"),
            ")?(?:",
            part!("ms"),
            ")?",
            "|",
            part!("m"),
            "(?:",
            part!("s"),
            ")?(?:",
            part!("ms"),
            ")?",
            "|",
            part!("s"),
            "(?:",
            part!("ms"),
            ")?",
            "|",
            part!("ms")
        )
    };
}

/// A term of a selector: after trimming, and after a leading `!` and
/// trimming again, something is left (the name, which the inventory then
/// decides on: an unknown one is a 404, not a 400).
macro_rules! term {
    () => {
        concat!(
            "[",
            ws!(),
            "]*(?:!?[",
            ws!(),
            "]*[^,",
            ws!(),
            "!]|![",
            ws!(),
            "]*!)[^,]*"
        )
    };
}

/// `wait` (and any duration the service reads itself): `30s`, `1m30s`,
/// `500ms`, or whole seconds.
pub(crate) const DURATION: &str = concat!("^(?:", duration!(), ")$");

/// A selector (`web,!db01`, `vm0*`, `all`): comma-separated terms, none
/// empty.
pub(crate) const SELECTOR: &str = concat!("^", term!(), "(?:,", term!(), ")*$");

/// A run's `timeout` as text: a duration or `none` (any case), spaces
/// around allowed; [`NONZERO`] besides.
pub(crate) const TIMEOUT: &str = concat!(
    "^[",
    ws!(),
    "]*(?:[Nn][Oo][Nn][Ee]|",
    duration!(),
    ")[",
    ws!(),
    "]*$"
);

/// With [`TIMEOUT`]: not zero (a timeout of 0 would stop the command at
/// once).
pub(crate) const NONZERO: &str = "[1-9]|[Nn][Oo][Nn][Ee]";

/// A time as `audit::parse_time` reads it when it is not a date: a
/// duration ago.
pub(crate) const AGO: &str = concat!("^[", ws!(), "]*(?:", duration!(), ")[", ws!(), "]*$");

/// A size as `config::parse_size` reads it: bytes, or a number and a unit
/// of 1024s; bounded so that none overflows.
pub(crate) const SIZE: &str = concat!(
    "^[",
    ws!(),
    "]*(?:0*[0-9]{1,19}(?:[",
    ws!(),
    "]*B)?|0*[0-9]{1,16}[",
    ws!(),
    "]*(?:K|KiB)|0*[0-9]{1,13}[",
    ws!(),
    "]*(?:M|MiB)|0*[0-9]{1,10}[",
    ws!(),
    "]*(?:G|GiB))[",
    ws!(),
    "]*$"
);

/// Text with something besides white space (a raw command line).
pub(crate) const NOT_BLANK: &str = concat!("[^", ws!(), "]");

/// An environment variable's name.
pub(crate) const ENV_NAME: &str = "^[A-Za-z_][A-Za-z0-9_]*$";

/// Text without a NUL byte (sshd drops the connection for one in a
/// command line: `exec::MAX_COMMAND_LINE`'s module says why).
pub(crate) const NUL_FREE: &str = r"^[^\u0000]*$";

/// A sudo password: no NUL byte, no newline (sudo reads one line).
pub(crate) const PASSWORD: &str = r"^[^\u0000\n]*$";

/// A script body whose `#!` line, if it has one, holds no NUL byte (it
/// becomes the command line's interpreter).
pub(crate) const SHEBANG: &str = r"^(?:$|[^#]|#$|#[^!]|#![^\u0000\n]*(?:\n|$))";

/// Text without a NUL byte, not empty.
pub(crate) const NO_NUL: &str = r"^[^\u0000]+$";

/// A script of `service.scripts_dir`, by name: a plain file name, not
/// hidden.
pub(crate) const SCRIPT_NAME: &str = r"^[^./\u0000][^/\u0000]*$";

/// A key's name: letters, digits, `.`, `_`, `-`, not starting with `.`, at
/// most 128 bytes (`keydir::validate_name`).
pub(crate) const KEY_NAME: &str = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$";

/// With [`KEY_NAME`]: not ending with `.pub` (a public key's file).
pub(crate) const NOT_PUB: &str = r"(?:[^b]|[^u]b|[^p]ub|[^.]pub|^b|^ub|^pub)$";

/// A host key's fingerprint as `ssh-keygen -l` prints it.
pub(crate) const FINGERPRINT: &str = "^SHA256:";

/// A cursor from a `next` link: the creation time in milliseconds, `-`,
/// a job id.
pub(crate) const CURSOR: &str = "^[0-9]{1,18}-";

/// A file mode in octal (`0640`), at most `7777`.
pub(crate) const MODE: &str = "^0*[0-7]{1,4}$";

/// A remote path whose last part can be a file's name: not `.` or `..`.
pub(crate) const NOT_DOTS: &str = r"(?:[^.]|[^./]\.|[^/]\.\.)$";

/// A plain file name: no `/`, no NUL.
pub(crate) const FILE_NAME: &str = r"^[^/\u0000]+$";

/// The longest file name (bytes) an upload may give.
pub(crate) const MAX_FILE_NAME: usize = 255;

/// Whether `text` matches `pattern` (one of this module's, which the
/// tests compile), each compiled once.
pub(crate) fn matches(pattern: &'static str, text: &str) -> bool {
    static COMPILED: LazyLock<Mutex<HashMap<&'static str, Regex>>> =
        LazyLock::new(Default::default);
    let mut compiled = COMPILED.lock().unwrap_or_else(PoisonError::into_inner);
    if !compiled.contains_key(pattern) {
        match Regex::new(pattern) {
            Ok(regex) => {
                compiled.insert(pattern, regex);
            }
            Err(e) => {
                tracing::error!("the pattern {pattern:?} does not compile: {e}");
                return false;
            }
        }
    }
    compiled
        .get(pattern)
        .is_some_and(|regex| regex.is_match(text))
}

/// A pattern matching every text except `word` itself (JSON Schema's
/// `not` without lookaround, which utoipa cannot write).
pub(crate) fn not_exactly(word: &str) -> String {
    not_starting(word, Some(r"[\s\S]"))
}

/// A pattern matching every text that does not start with `word`.
pub(crate) fn not_prefixed(word: &str) -> String {
    not_starting(word, None)
}

/// A pattern matching every text that leaves `word` before its end, or
/// (`after`) goes on past it with what `after` matches.
fn not_starting(word: &str, after: Option<&str>) -> String {
    let mut pattern: Option<String> = after.map(str::to_owned);
    for c in word.chars().rev() {
        let literal = regex::escape(&c.to_string());
        let class = match c {
            '\\' | ']' | '^' | '-' | '[' => format!("\\{c}"),
            _ => c.to_string(),
        };
        pattern = Some(match pattern {
            Some(rest) => format!("(?:$|[^{class}]|{literal}{rest})"),
            None => format!("(?:$|[^{class}])"),
        });
    }
    format!("^{}", pattern.unwrap_or_default())
}

/// A string.
pub(crate) fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// A string matching `pattern`.
pub(crate) fn text(pattern: &str) -> ObjectBuilder {
    string().pattern(Some(pattern))
}

/// A string matching every one of `patterns` (JSON Schema has one
/// `pattern` per schema).
pub(crate) fn all_of(description: Option<&str>, patterns: &[&str]) -> Schema {
    let mut all = AllOfBuilder::new().description(description);
    for pattern in patterns {
        all = all.item(text(pattern));
    }
    all.build().into()
}

/// An integer from `min` to `max`.
pub(crate) fn integer(min: usize, max: usize) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(min))
        .maximum(Some(max))
}

/// Binary data (a raw upload, a multipart file).
pub(crate) fn binary() -> Object {
    string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
        .content_media_type("application/octet-stream")
        .build()
}

/// A list of `items`.
pub(crate) fn list(items: impl Into<RefOr<Schema>>) -> ArrayBuilder {
    ArrayBuilder::new().items(ArrayItems::RefOrSchema(Box::new(items.into())))
}

/// A named schema of the document's components, for `value_type =` in
/// the handlers' and types' attributes (which keep their own
/// description and whether they are required).
macro_rules! named {
    ($(#[$doc:meta])* $name:ident => $schema:expr) => {
        $(#[$doc])*
        pub(crate) struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                RefOr::T(Schema::from($schema))
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

named! {
    /// `wait`.
    Duration => text(DURATION).description(Some(
        "A duration: a whole number with a unit, largest first (`30s`, `1m30s`, `500ms`), \
         or whole seconds.",
    )).build()
}

named! {
    /// A selector.
    Selector => text(SELECTOR).description(Some(
        "Which hosts: a selector (`web,!db01`, `vm0*`, `all`) — comma-separated names, \
         groups and patterns, `!` excluding; none empty. Naming a host or group the \
         inventory does not have, or selecting none, is a 404.",
    )).build()
}

named! {
    /// A key's name.
    KeyName => all_of(
        Some("A key's name in the key directory: letters, digits, `.`, `_`, `-`, not starting with `.`, not ending with `.pub`, at most 128 bytes; not `remex-keys.json` or `archive`."),
        &[
            KEY_NAME,
            NOT_PUB,
            &not_exactly(crate::keydir::STATE_FILE),
            &not_exactly(crate::keydir::ARCHIVE_DIR),
        ],
    )
}

named! {
    /// An event's id.
    EventId => integer(0, i64::MAX as usize).description(Some(
        "An event's `id` (digits, at most 9223372036854775807).",
    )).build()
}

named! {
    /// A cursor.
    Cursor => text(CURSOR).description(Some(
        "A page's cursor, as the previous page's `next` gives it.",
    )).build()
}

named! {
    /// A file mode.
    FileMode => text(MODE).description(Some("A file mode in octal (`0640`), at most `7777`.")).build()
}

named! {
    /// A file name.
    FileName => AllOfBuilder::new()
        .description(Some(
            "A plain file name: no `/`, not `.` or `..`, at most 255 bytes.",
        ))
        .item(text(FILE_NAME).max_length(Some(MAX_FILE_NAME)))
        .item(text(&not_exactly(".")))
        .item(text(&not_exactly("..")))
        .build()
}

named! {
    /// A remote path an upload writes.
    UploadPath => all_of(
        Some("A remote path whose last part is not `.` or `..` (no NUL)."),
        &[NO_NUL, NOT_DOTS],
    )
}

named! {
    /// A remote path.
    RemotePath => text(NO_NUL).description(Some("A remote path (no NUL).")).build()
}

named! {
    /// A host's name.
    HostName => string()
        .min_length(Some(1))
        .description(Some(
            "A host's name in the inventory (another is a 404).",
        ))
        .build()
}

named! {
    /// A time for the audit's filters.
    Time => AnyOfBuilder::new()
        .description(Some(
            "A time: RFC 3339 (`2026-11-24T01:02:03Z`), a date (`2026-11-24`, midnight UTC), \
             or a duration ago (`1h`, `2d`; further back than 1970 means 1970).",
        ))
        .item(string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))))
        .item(string().format(Some(SchemaFormat::KnownFormat(KnownFormat::Date))))
        .item(text(AGO))
        .build()
}

named! {
    /// A host key's fingerprint.
    Fingerprint => text(FINGERPRINT).description(Some(
        "A host key's fingerprint as `ssh-keygen -l` prints it (`SHA256:…`).",
    )).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is(pattern: &str, text: &str) -> bool {
        Regex::new(pattern)
            .unwrap_or_else(|e| panic!("{pattern}: {e}"))
            .is_match(text)
    }

    #[test]
    fn every_pattern_compiles_and_reads_alike_in_every_dialect() {
        for pattern in [
            DURATION,
            SELECTOR,
            TIMEOUT,
            NONZERO,
            AGO,
            SIZE,
            NOT_BLANK,
            ENV_NAME,
            NO_NUL,
            NUL_FREE,
            PASSWORD,
            SHEBANG,
            SCRIPT_NAME,
            KEY_NAME,
            NOT_PUB,
            FINGERPRINT,
            CURSOR,
            MODE,
            NOT_DOTS,
            FILE_NAME,
        ] {
            assert!(Regex::new(pattern).is_ok(), "{pattern}");
            // Nothing another dialect reads differently: no lookaround, no
            // `\x{…}`, no `\z`, no Unicode classes.
            for unportable in [
                "(?=", "(?!", "(?<", r"\x{", r"\z", r"\A", r"\p{", r"\d", r"\w",
            ] {
                assert!(!pattern.contains(unportable), "{pattern}: {unportable}");
            }
        }
    }

    #[test]
    fn durations_are_what_parse_duration_reads() {
        for good in [
            "0",
            "30",
            "30s",
            "500ms",
            "1m30s",
            "1d2h3m4s5ms",
            "2h5ms",
            "1h1s",
            "007s",
            "9999999999999999999",
            "99999999999d99999999999h99999999999m99999999999s99999999999ms",
        ] {
            assert!(is(DURATION, good), "{good}");
            assert!(crate::config::parse_duration(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            " 30s",
            "30s ",
            "1s1m",
            "1m1m",
            "1.5s",
            "-1s",
            "30x",
            "s",
            "1 s",
            "1ms1s",
            "1S",
            "１s",
            "99999999999999999999",
        ] {
            assert!(!is(DURATION, bad), "{bad:?}");
        }
    }

    #[test]
    fn timeouts_are_what_the_library_reads() {
        use crate::exec::Timeout;
        let schema = |text: &str| is(TIMEOUT, text) && is(NONZERO, text);
        for text in [
            "30s",
            " 5m ",
            "none",
            "NoNe",
            "\u{3000}none\t",
            "1",
            "0s1ms",
            "1ms",
            "0",
            "0s",
            "00",
            "0m0s",
            "",
            "none!",
            "non",
            "5 s",
            "1s1s",
            "\u{FEFF}1s",
            "1h ",
            "\u{0085}1s",
        ] {
            assert_eq!(schema(text), Timeout::parse(text).is_ok(), "{text:?}");
        }
    }

    #[test]
    fn sizes_are_what_parse_size_reads() {
        for text in [
            "512K",
            "1 M",
            " 2GiB ",
            "7B",
            "7 B",
            "0",
            "100",
            "1KiB",
            "9999999999G",
            "9999999999999999999",
            "1k",
            "1.5M",
            "-1",
            "",
            "K",
            "1 KB",
            "1MB",
            "1\u{2003}K",
            "1Ki B",
        ] {
            assert_eq!(
                is(SIZE, text),
                crate::config::parse_size(text).is_ok(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn selectors_are_refused_only_for_an_empty_term() {
        let selectors = [
            "all",
            "web,!db01",
            "vm0*",
            " a , b ",
            "!a",
            "! a",
            "!!",
            "a!",
            "a b",
            "\u{FEFF}",
            "",
            " ",
            "!",
            "! ",
            "a,",
            ",a",
            "a,,b",
            "a, ,b",
            "a,!",
            "\u{00A0}",
            "!\u{3000}",
            "a,\t!\t,b",
        ];
        // Every name the selectors use is a host, so that only their
        // shape can be refused.
        let mut names: Vec<String> = vec!["vm01".into(), "other".into()];
        for selector in selectors {
            for term in selector.split(',') {
                let name = term.trim();
                let name = name.strip_prefix('!').unwrap_or(name).trim();
                if !name.is_empty() {
                    names.push(name.to_owned());
                }
            }
        }
        let inventory: Vec<crate::targets::Candidate<'_>> = names
            .iter()
            .map(|name| crate::targets::Candidate { name, groups: &[] })
            .collect();
        for selector in selectors {
            let empty = matches!(
                crate::targets::select(selector, &inventory),
                Err(crate::targets::TargetError::EmptyTerm { .. })
            );
            assert_eq!(is(SELECTOR, selector), !empty, "{selector:?}");
        }
    }

    #[test]
    fn key_names_are_what_the_key_directory_takes() {
        let state = not_exactly(crate::keydir::STATE_FILE);
        let archive = not_exactly(crate::keydir::ARCHIVE_DIR);
        let schema = |name: &str| {
            [KEY_NAME, NOT_PUB, &state, &archive]
                .iter()
                .all(|p| is(p, name))
        };
        let long = "k".repeat(128);
        let longer = "k".repeat(129);
        for name in [
            "demo",
            "a.b-c_d",
            "pub",
            "b",
            "ub",
            "xpub",
            "a.pu",
            "-x",
            "_",
            &long,
            "",
            ".x",
            "a/b",
            "a.pub",
            ".pub",
            "archive",
            "archive2",
            "archiv",
            "remex-keys.json",
            "remex-keys.jso",
            "é",
            "a b",
            &longer,
        ] {
            assert_eq!(
                schema(name),
                crate::keydir::validate_name(name).is_ok(),
                "{name:?}"
            );
        }
    }

    #[test]
    fn not_prefixed_refuses_the_word_and_what_goes_on_from_it() {
        let pattern = not_prefixed(crate::exec::RESERVED_ENV_PREFIX);
        for name in ["", "R", "REMEX", "REMEXX", "remex_x", "XREMEX_", "A"] {
            assert!(is(&pattern, name), "{name}");
        }
        for name in ["REMEX_", "REMEX_RUN_ID", "REMEX__"] {
            assert!(!is(&pattern, name), "{name}");
        }
    }

    #[test]
    fn words_are_what_the_command_line_takes() {
        for (pattern, good, bad) in [
            (NUL_FREE, &["", "a b", "\n", "é"][..], &["\0", "a\0b"][..]),
            (PASSWORD, &["", "p ss"][..], &["a\nb", "\0"][..]),
            (
                SHEBANG,
                &["", "echo\0", "#", "#x\0", "#!/bin/sh\n\0", "#!/bin/sh"][..],
                &["#!/bin/sh\0\n", "#!\0"][..],
            ),
        ] {
            for text in good {
                assert!(is(pattern, text), "{pattern} {text:?}");
            }
            for text in bad {
                assert!(!is(pattern, text), "{pattern} {text:?}");
            }
        }
    }

    #[test]
    fn not_exactly_refuses_the_word_alone() {
        for word in ["archive", "remex-keys.json", ".", "..", "a]b^-c\\"] {
            let pattern = not_exactly(word);
            assert!(!is(&pattern, word), "{word}");
            for other in ["", "x", "archive ", "archiv", ".x", "...", "a]b^-c"] {
                assert_eq!(is(&pattern, other), other != word, "{word} {other:?}");
            }
            assert!(is(&pattern, &format!("{word}x")));
            assert!(is(&pattern, &format!("x{word}")));
        }
    }

    #[test]
    fn the_service_own_patterns() {
        assert!(is(CURSOR, "1700000000000-20261207T212335Z-3dc41430"));
        for bad in ["", "-5-x", "+5-x", "x-1", "5", "1234567890123456789-x"] {
            assert!(!is(CURSOR, bad), "{bad}");
        }
        for good in ["644", "0640", "4755", "0", "00000644"] {
            assert!(is(MODE, good), "{good}");
        }
        for bad in ["", "8", "+644", "10000", "0o644", "64 4"] {
            assert!(!is(MODE, bad), "{bad}");
        }
        for good in [
            "/etc/app.conf",
            "/srv/reports/",
            "x.",
            "...",
            "..a",
            "a..",
            "x",
        ] {
            assert!(is(NOT_DOTS, good), "{good}");
        }
        for bad in [".", "..", "/a/.", "/a/..", "/.."] {
            assert!(!is(NOT_DOTS, bad), "{bad}");
        }
    }
}
