//! [`RequestError`]: a request that does not fit, with the field at fault —
//! what the CLI's `--request` prints after `field …:` and what the
//! service answers as `400 {"error": {"field": …}}`.
//!
//! One type for every edge, so that a field is named the same way however
//! the request arrived, and nobody has to guess the field from a message.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// Why a request was refused before any host was contacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    /// The request field at fault, as a path (`timeout`, `env.FOO`,
    /// `command[1]`, `script.name`); `None` when the request as a whole is
    /// wrong (not JSON at all).
    pub field: Option<String>,
    /// What is wrong and, where remex knows, what to do instead.
    pub message: String,
}

impl RequestError {
    /// An error of `field`.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> RequestError {
        RequestError {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// An error of the request as a whole.
    pub fn whole(message: impl Into<String>) -> RequestError {
        RequestError {
            field: None,
            message: message.into(),
        }
    }

    /// `field …: message`, for a person reading one line.
    pub fn with_field(&self) -> String {
        match &self.field {
            Some(field) => format!("field `{field}`: {}", self.message),
            None => self.message.clone(),
        }
    }
}

/// `bytes` as one JSON value of type `T`: unknown fields are refused where
/// `T` says so (`deny_unknown_fields`), a key given twice in any object
/// (maps included) is refused, and an error names the field that does not
/// fit (`command[1]`, `env.FOO`).
///
/// # Errors
///
/// Not JSON, trailing data, a duplicate key, or a field of the wrong shape.
pub(crate) fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RequestError> {
    no_duplicate_keys(bytes)?;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return RequestError::whole(format!("the body is not JSON: {inner}"));
        }
        let message = format!("the JSON body does not fit: {inner}");
        if path.is_empty() || path == "." || path == "?" {
            RequestError::whole(message)
        } else {
            RequestError::field(path, message)
        }
    })?;
    de.end()
        .map_err(|e| RequestError::whole(format!("the body is not JSON: {e}")))?;
    Ok(value)
}

/// Walks `bytes` as JSON and refuses an object that names a key twice —
/// which serde would take silently for a map (the last value wins), so
/// that two readers of one body (a proxy, remex) could see two requests.
fn no_duplicate_keys(bytes: &[u8]) -> Result<(), RequestError> {
    let path = RefCell::new(Vec::new());
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let walked = Unique {
        path: &path,
        duplicate: &duplicate,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    match (walked, duplicate.into_inner()) {
        (_, Some((field, key))) => Err(RequestError::field(
            field,
            format!(
                "the key `{}` is given twice in one object; give each key once",
                shown(&key)
            ),
        )),
        (Err(e), None) => Err(RequestError::whole(format!("the body is not JSON: {e}"))),
        (Ok(()), None) => Ok(()),
    }
}

/// At most 64 characters of `text`, escaped, for a message.
pub(crate) fn shown(text: &str) -> String {
    let mut shown: String = text
        .chars()
        .take(64)
        .collect::<String>()
        .escape_default()
        .to_string();
    if text.chars().nth(64).is_some() {
        shown.push('…');
    }
    shown
}

/// One step of a path into a JSON value.
enum Step {
    /// A key of an object.
    Key(String),
    /// An index of an array.
    Index(usize),
}

/// `path` written as `serde_path_to_error` writes it: `env.FOO`,
/// `command[1]`.
fn written(path: &[Step]) -> String {
    let mut text = String::new();
    for step in path {
        match step {
            Step::Key(key) => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(key);
            }
            Step::Index(at) => text.push_str(&format!("[{at}]")),
        }
    }
    text
}

/// A JSON value checked for duplicate keys at every depth. The path to the
/// value is kept as a stack (written out only for an error), so checking
/// costs time linear in the body.
#[derive(Clone, Copy)]
struct Unique<'a> {
    /// Where the walk is.
    path: &'a RefCell<Vec<Step>>,
    /// The first duplicate found: its path and key.
    duplicate: &'a RefCell<Option<(String, String)>>,
}

impl<'de> DeserializeSeed<'de> for Unique<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut at = 0;
        loop {
            self.path.borrow_mut().push(Step::Index(at));
            let next = seq.next_element_seed(self);
            self.path.borrow_mut().pop();
            if next?.is_none() {
                return Ok(());
            }
            at += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                let mut path = self.path.borrow_mut();
                path.push(Step::Key(key.clone()));
                *self.duplicate.borrow_mut() = Some((written(&path), key));
                return Err(de::Error::custom("duplicate key"));
            }
            seen.insert(key.clone());
            self.path.borrow_mut().push(Step::Key(key));
            let value = map.next_value_seed(self);
            self.path.borrow_mut().pop();
            value?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Shape {
        targets: String,
        command: Option<Vec<String>>,
        env: Option<std::collections::BTreeMap<String, String>>,
    }

    #[test]
    fn a_body_that_does_not_fit_names_the_field() {
        let field = |json: &str| from_json::<Shape>(json.as_bytes()).unwrap_err().field;
        assert_eq!(
            field(r#"{"targets": "all", "command": ["ls", 3]}"#).as_deref(),
            Some("command[1]")
        );
        assert_eq!(
            field(r#"{"targets": "all", "env": {"A": 1}}"#).as_deref(),
            Some("env.A")
        );
        let e = from_json::<Shape>(br#"{"targets": "all", "comand": ["ls"]}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("comand"));
        assert!(e.message.contains("unknown field"), "{e:?}");
        assert_eq!(field(r#"{"targets": 5}"#).as_deref(), Some("targets"));
        assert_eq!(field("{not json"), None);
        assert_eq!(field(r#"{"targets": "a"} {}"#), None);
        assert!(from_json::<Shape>(br#"{"targets": "web"}"#).is_ok());
        assert_eq!(field(r#"{"targets": "a", "env": {"A": "1"}} x"#), None);
        assert_eq!(
            from_json::<Shape>(br#"{"targets": 5}"#)
                .unwrap_err()
                .with_field(),
            "field `targets`: the JSON body does not fit: invalid type: integer `5`, expected a string at line 1 column 13"
        );
    }

    #[test]
    fn a_key_given_twice_is_refused_at_every_depth() {
        let dup = |json: &str| {
            let e = from_json::<Shape>(json.as_bytes()).unwrap_err();
            assert!(e.message.contains("twice"), "{json}: {e:?}");
            e.field
        };
        assert_eq!(
            dup(r#"{"targets": "a", "targets": "b"}"#).as_deref(),
            Some("targets")
        );
        assert_eq!(
            dup(r#"{"targets": "a", "env": {"A": "1", "B": "2", "A": "3"}}"#).as_deref(),
            Some("env.A")
        );
        // Inside an array, and in a field remex does not know (refused
        // for the duplicate first: the body is ambiguous either way).
        assert_eq!(
            dup(r#"{"targets": "a", "x": [{}, {"k": 1, "k": 2}]}"#).as_deref(),
            Some("x[1].k")
        );
        // The same key in two objects is fine.
        assert!(
            from_json::<Shape>(br#"{"targets": "a", "env": {"A": "1"}, "command": ["A"]}"#).is_ok()
        );
        let long = "k".repeat(1000);
        let e = from_json::<Shape>(
            format!(r#"{{"env": {{"{long}": "1", "{long}": "2"}}}}"#).as_bytes(),
        )
        .unwrap_err();
        assert!(e.message.len() < 200, "{e:?}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!(
            r#"{{"targets": "a", "x": {}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(from_json::<Shape>(deep.as_bytes()).unwrap_err().field, None);
    }
}
