//! [`ConfigError`], and how a serde-saphyr error becomes one.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use serde_saphyr::{Error as YamlError, MessageFormatter as _, UserMessageFormatter};

use super::field_path::{FieldPath, Segment};
use super::source_map::{Position, SourceMap};

/// Why a config could not be found, read or accepted.
///
/// Every error about the file's content names the file, and the line,
/// column and field path when they are known:
///
/// ```text
/// configs/config.yml:7:20: remote_execution.connect_timeout: invalid duration "10x": unknown unit "x"; write ...
/// configs/config.yml:3:26: vms.vm02.prot: unknown field `prot`, expected one of `host`, `port`, `user`, `groups`, `key` (did you mean `port`?)
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No config file was found. The message lists every place remex
    /// looked, in order, and says how to make one (copy
    /// `configs/config.example.yml`, or run `remex lab up` for a local lab).
    #[error("{}", not_found_message(.searched))]
    NotFound {
        /// The candidate files, in the order they were tried.
        searched: Vec<PathBuf>,
    },

    /// The config file exists (or was named explicitly) but could not be
    /// read, or is not UTF-8.
    #[error("cannot read the config file {}", .path.display())]
    Read {
        /// The file remex tried to read.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },

    /// The file is not valid YAML, or does not have the config's shape: an
    /// unknown field, a value of the wrong type, a bad duration.
    ///
    /// Displays as `{path}:{line}:{column}: {field}: {message}`; the
    /// `{field}: ` part is left out when the error is about the document as a
    /// whole (`field` is empty).
    #[error("{}:{}:{}: {}{}", .path.display(), .line, .column, field_prefix(.field), .message)]
    Parse {
        /// The config file.
        path: PathBuf,
        /// Line of the error, from 1.
        line: usize,
        /// Column of the error, from 1, in characters.
        column: usize,
        /// Path of the field being read, e.g. `vms.vm02.port` or
        /// `vms.vm01.groups[1]`; empty for the document as a whole.
        field: String,
        /// What is wrong, and what was expected.
        message: String,
    },

    /// The file parsed, but a value breaks a rule: no VMs, a VM named `all`,
    /// a name with selector characters, `max_parallel: 0`, ...
    ///
    /// Displays like [`ConfigError::Parse`]; `:{line}:{column}` is left out
    /// when the position is unknown.
    #[error("{}{}: {}{}", .path.display(), position_text(*.line, *.column), field_prefix(.field), .message)]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// Line of the offending key or value, from 1, when known.
        line: Option<usize>,
        /// Column of the offending key or value, from 1, when known.
        column: Option<usize>,
        /// Path of the offending field, e.g. `remote_execution.max_parallel`.
        field: String,
        /// What is wrong, and how to fix it.
        message: String,
    },
}

fn not_found_message(searched: &[PathBuf]) -> String {
    let mut text = String::from("no config file found; looked in:");
    for path in searched {
        let _ = write!(text, "\n  {}", path.display());
    }
    text.push_str(
        "\nto make one, copy configs/config.example.yml to configs/config.yml and list your hosts \
         under `vms:` (or pass --config FILE, or set REMEX_CONFIG); \
         to try remex on a local lab of sshd hosts, run `remex lab up` and use lab/config.yml",
    );
    text
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}: ")
    }
}

fn position_text(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(":{line}:{column}"),
        (Some(line), None) => format!(":{line}"),
        _ => String::new(),
    }
}

/// Turns a serde-saphyr error into [`ConfigError::Parse`].
///
/// `field` is the path `serde_path_to_error` recorded (the root when no
/// value was being read). serde-saphyr's position is used when it has one;
/// otherwise the position of `field` (or its closest ancestor) in `text`.
pub(super) fn parse_error(
    path: &Path,
    text: &str,
    err: &YamlError,
    mut field: FieldPath,
) -> ConfigError {
    let inner = original(err);
    // A duplicate key is caught before the key is read: name it.
    if let YamlError::DuplicateMappingKey { key: Some(key), .. } = inner
        && field.last() != Some(&Segment::Key(key.clone()))
    {
        field = field.key(key);
    }
    let map = SourceMap::build(text);
    let position = err
        .location()
        .and_then(|at| {
            Some(Position {
                line: usize::try_from(at.line()).ok()?,
                column: usize::try_from(at.column()).ok()?,
            })
        })
        .or_else(|| map.nearest_position(&field))
        .unwrap_or(Position { line: 1, column: 1 });
    let message = describe(inner, &field, &map, position);
    ConfigError::Parse {
        path: path.to_path_buf(),
        line: position.line,
        column: position.column,
        field: field.to_string(),
        message: sanitize(&message),
    }
}

/// The error under serde-saphyr's snippet and alias wrappers.
fn original(err: &YamlError) -> &YamlError {
    match err {
        YamlError::WithSnippet { error, .. } | YamlError::AliasError { error, .. } => {
            original(error)
        }
        other => other,
    }
}

/// The message for `err`, without serde-saphyr's "at line X, column Y".
fn describe(err: &YamlError, field: &FieldPath, map: &SourceMap, at: Position) -> String {
    match err {
        YamlError::SerdeUnknownField {
            field: name,
            expected,
            ..
        } => {
            // A field one level down from the root is a whole section.
            let what = if field.parent().is_some_and(|p| p.is_root()) {
                "section"
            } else {
                "field"
            };
            unknown_name(what, name, expected)
        }
        YamlError::SerdeUnknownVariant {
            variant, expected, ..
        } => unknown_name("value", variant, expected),
        YamlError::SerdeMissingField { field: name, .. } => {
            format!("missing required field `{name}`")
        }
        YamlError::InvalidScalar { ty, .. } => {
            let expected = expected_scalar(ty, field);
            match map.scalar_at(at) {
                Some(found) => format!("invalid value `{found}`: expected {expected}"),
                None => format!("invalid value: expected {expected}"),
            }
        }
        YamlError::Unexpected { expected, .. } => match *expected {
            "mapping start" => "expected a mapping (`key: value` pairs)".to_owned(),
            "sequence start" => "expected a list, e.g. `[web, db]`".to_owned(),
            "string scalar" => "expected a single value, not a list or mapping".to_owned(),
            other => format!("expected {other}"),
        },
        YamlError::DuplicateMappingKey { key, .. } => match key {
            Some(key) => format!("duplicate key `{key}`: each key may appear only once"),
            None => "duplicate key: each key may appear only once".to_owned(),
        },
        YamlError::Message { msg, .. } => msg.clone(),
        other => UserMessageFormatter.format_message(other).into_owned(),
    }
}

/// "unknown field `prot`, expected one of `host`, `port` (did you mean `port`?)"
fn unknown_name(what: &str, name: &str, expected: &[&str]) -> String {
    let mut text = format!("unknown {what} `{name}`, ");
    match expected {
        [] => text.push_str("none are allowed here"),
        [only] => {
            let _ = write!(text, "expected `{only}`");
        }
        _ => {
            let list: Vec<String> = expected.iter().map(|e| format!("`{e}`")).collect();
            let _ = write!(text, "expected one of {}", list.join(", "));
        }
    }
    if let Some(close) = closest(name, expected) {
        let _ = write!(text, " (did you mean `{close}`?)");
    }
    text
}

/// The expected name most similar to `name`, if one is similar enough to
/// be a likely typo.
pub(super) fn closest<'a>(name: &str, expected: &[&'a str]) -> Option<&'a str> {
    let name = name.to_lowercase().replace('-', "_");
    expected
        .iter()
        .map(|candidate| {
            let normal = candidate.replace('-', "_");
            (strsim::jaro_winkler(&name, &normal), *candidate)
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|(a, _), (b, _)| a.total_cmp(b))
        .map(|(_, candidate)| candidate)
}

/// What a scalar of Rust type `ty` must look like, in words.
fn expected_scalar(ty: &str, field: &FieldPath) -> String {
    if ty == "u16" && matches!(field.last(), Some(Segment::Key(key)) if key == "port") {
        return "a port number from 1 to 65535".to_owned();
    }
    match ty {
        "u8" => "a whole number from 0 to 255".to_owned(),
        "u16" => "a whole number from 0 to 65535".to_owned(),
        "u32" => "a whole number from 0 to 4294967295".to_owned(),
        "u64" | "u128" | "usize" => "a whole number, 0 or more".to_owned(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "bool" | "boolean" => "`true` or `false`".to_owned(),
        other => format!("a value of type {other}"),
    }
}

/// Escapes control characters, so text from the file cannot move the
/// cursor or fake a new line in a terminal.
fn sanitize(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
