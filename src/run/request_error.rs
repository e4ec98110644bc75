//! [`RequestError`]: a request that does not fit, with the field at fault —
//! what the CLI's `--request` prints after `field …:` and what the
//! service answers as `400 {"error": {"field": …}}`.
//!
//! One type for every edge, so that a field is named the same way however
//! the request arrived, and nobody has to guess the field from a message.

use serde::de::DeserializeOwned;

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
/// `T` says so (`deny_unknown_fields`), and an error names the field that
/// does not fit (`command[1]`, `env.FOO`).
///
/// # Errors
///
/// Not JSON, trailing data, or a field of the wrong shape.
pub(crate) fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RequestError> {
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
        assert_eq!(
            from_json::<Shape>(br#"{"targets": 5}"#)
                .unwrap_err()
                .with_field(),
            "field `targets`: the JSON body does not fit: invalid type: integer `5`, expected a string at line 1 column 13"
        );
    }
}
