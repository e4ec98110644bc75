//! What each param type accepts: [`Param::check`] turns a JSON value into
//! the text its placeholders take, or says why it does not fit. The same
//! rules check a `default` when the config loads and a run's value when it
//! is prepared. No I/O (a `path`'s real path is checked on the host, see
//! `ops/exec/guard.rs`).

use serde_json::Value;

use super::{Param, ParamType};

/// A `string` or `path` value's most characters when `max_length` says
/// nothing.
pub const DEFAULT_MAX_LENGTH: usize = 4096;

impl Param {
    /// The most characters of a `string` or `path` value.
    pub fn max_length(&self) -> usize {
        self.max_length.unwrap_or(DEFAULT_MAX_LENGTH)
    }

    /// `value` as its placeholders take it (`42`, `true`, the text), when
    /// it fits this param.
    ///
    /// # Errors
    ///
    /// Why it does not, in words that name no secret: the wrong JSON type,
    /// a control character, too long, no match for `pattern`, not one of
    /// `values`, out of `min`..=`max`, a path that is not absolute and
    /// normalized or not under `under`.
    pub fn check(&self, value: &Value) -> Result<String, String> {
        match self.kind {
            ParamType::Int => {
                let Some(number) = value.as_i64() else {
                    return Err(match value {
                        Value::Number(_) => {
                            "expected a whole number (an integer within 64 bits)".to_owned()
                        }
                        other => format!("expected an integer, got {}", json_type(other)),
                    });
                };
                if let Some(min) = self.min.filter(|min| number < *min) {
                    return Err(format!("{number} is less than the least value, {min}"));
                }
                if let Some(max) = self.max.filter(|max| number > *max) {
                    return Err(format!("{number} is more than the greatest value, {max}"));
                }
                Ok(number.to_string())
            }
            ParamType::Bool => match value {
                Value::Bool(b) => Ok(b.to_string()),
                other => Err(format!("expected a boolean, got {}", json_type(other))),
            },
            ParamType::String | ParamType::Enum | ParamType::Path => {
                let Value::String(text) = value else {
                    return Err(format!("expected a string, got {}", json_type(value)));
                };
                self.check_text(text)?;
                Ok(text.clone())
            }
        }
    }

    /// The rules of a string-like value.
    fn check_text(&self, text: &str) -> Result<(), String> {
        if let Some(c) = text.chars().find(|c| c.is_control()) {
            return Err(format!(
                "the value holds a control character ({}), which no value may hold",
                c.escape_default()
            ));
        }
        if self.kind == ParamType::Enum {
            let values = self.values.as_deref().unwrap_or_default();
            if !values.iter().any(|allowed| allowed == text) {
                return Err(format!(
                    "not one of the allowed values: {}",
                    values.join(", ")
                ));
            }
            return Ok(());
        }
        let length = text.chars().count();
        if length > self.max_length() {
            return Err(format!(
                "the value is {length} characters long; at most {} are allowed",
                self.max_length()
            ));
        }
        if let Some(pattern) = &self.pattern
            && !pattern.matches(text)
        {
            return Err(format!(
                "the value does not match the pattern `{}`",
                pattern.source
            ));
        }
        if self.kind == ParamType::Path {
            normalized_path(text)?;
            let under = self.under.as_deref().unwrap_or_default();
            if !under.iter().any(|prefix| is_under(text, prefix)) {
                return Err(format!(
                    "the path is not under {}",
                    under
                        .iter()
                        .map(|p| format!("`{p}`"))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ));
            }
        }
        Ok(())
    }

    /// A `--param NAME=TEXT` of the command line as the JSON value it
    /// stands for: an `int` from decimal digits (with an optional `-`), a
    /// `bool` from `true`/`false`, the text for the rest.
    ///
    /// # Errors
    ///
    /// Text that is not a number or a boolean where one is expected.
    pub fn from_text(&self, text: &str) -> Result<Value, String> {
        match self.kind {
            ParamType::Int => {
                let digits = text.strip_prefix('-').unwrap_or(text);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err("expected a whole number in decimal digits".to_owned());
                }
                text.parse::<i64>()
                    .map(Value::from)
                    .map_err(|_| "the number does not fit in 64 bits".to_owned())
            }
            ParamType::Bool => match text {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err("expected `true` or `false`".to_owned()),
            },
            ParamType::String | ParamType::Enum | ParamType::Path => {
                Ok(Value::String(text.to_owned()))
            }
        }
    }
}

/// `Ok` when `path` is absolute and normalized: no empty, `.` or `..`
/// component, no trailing `/` (but `/` itself).
pub(crate) fn normalized_path(path: &str) -> Result<(), String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err("the path is not absolute (it must start with `/`)".to_owned());
    };
    if rest.is_empty() {
        return Ok(());
    }
    for component in rest.split('/') {
        match component {
            "" => {
                return Err("the path is not normalized: it holds `//` or ends with `/`".to_owned());
            }
            "." | ".." => {
                return Err(format!(
                    "the path is not normalized: it holds a `{component}` component"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether `path` is `prefix` or below it, component by component
/// (`/srv/reports` does not admit `/srv/reports-old`). Both normalized.
pub(crate) fn is_under(path: &str, prefix: &str) -> bool {
    prefix == "/"
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The JSON type of `value`, for a message.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a fractional number",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::actions::ParamPattern;

    fn param(kind: ParamType) -> Param {
        Param {
            kind,
            description: None,
            required: None,
            default: None,
            secret: false,
            allow_dash: false,
            pattern: None,
            max_length: None,
            values: None,
            min: None,
            max: None,
            under: None,
        }
    }

    #[test]
    fn json_types_are_strict() {
        let int = Param {
            min: Some(1),
            max: Some(10),
            ..param(ParamType::Int)
        };
        assert_eq!(int.check(&json!(3)).as_deref(), Ok("3"));
        for bad in [
            json!("3"),
            json!(3.0),
            json!(true),
            json!(null),
            json!(0),
            json!(11),
        ] {
            assert!(int.check(&bad).is_err(), "{bad}");
        }
        let boolean = param(ParamType::Bool);
        assert_eq!(boolean.check(&json!(false)).as_deref(), Ok("false"));
        assert!(boolean.check(&json!("true")).is_err());
        let string = param(ParamType::String);
        assert!(string.check(&json!(1)).is_err());
        assert!(string.check(&json!(["a"])).is_err());
    }

    #[test]
    fn text_rules() {
        let string = Param {
            pattern: ParamPattern::new("[a-z]+").ok(),
            max_length: Some(5),
            ..param(ParamType::String)
        };
        assert!(string.check(&json!("abcde")).is_ok());
        for bad in ["abcdef", "ab1", "ab\ncd", "", "a;b", "ab\u{1b}"] {
            assert!(string.check(&json!(bad)).is_err(), "{bad:?}");
        }
        // The pattern matches the whole value, whatever its own anchors.
        let alternation = Param {
            pattern: ParamPattern::new("a|b$").ok(),
            ..param(ParamType::String)
        };
        assert!(alternation.check(&json!("a")).is_ok());
        assert!(alternation.check(&json!("ax")).is_err());
        assert!(alternation.check(&json!("xb")).is_err());
        let free = param(ParamType::String);
        for bad in ["a\u{0}b", "a\rb", "a\tb", "\u{7f}", "\u{9b}"] {
            assert!(free.check(&json!(bad)).is_err(), "{bad:?}");
        }
        assert!(free.check(&json!("x".repeat(4096))).is_ok());
        assert!(free.check(&json!("x".repeat(4097))).is_err());
        let choice = Param {
            values: Some(vec!["nginx".into(), "php-fpm".into()]),
            ..param(ParamType::Enum)
        };
        assert!(choice.check(&json!("php-fpm")).is_ok());
        assert!(choice.check(&json!("nginx ")).is_err());
    }

    #[test]
    fn paths_are_absolute_normalized_and_under_a_prefix() {
        let path = Param {
            under: Some(vec!["/srv/reports".into(), "/tmp".into()]),
            ..param(ParamType::Path)
        };
        for good in [
            "/srv/reports",
            "/srv/reports/a",
            "/tmp/x/y.txt",
            "/srv/reports/..a",
        ] {
            assert!(path.check(&json!(good)).is_ok(), "{good}");
        }
        for bad in [
            "srv/reports/a",
            "/srv/reports-old",
            "/srv/reports/../etc",
            "/srv/reports/./a",
            "/srv/reports//a",
            "/srv/reports/",
            "/srv",
            "/",
            "/etc/passwd",
            "",
        ] {
            assert!(path.check(&json!(bad)).is_err(), "{bad}");
        }
        let root = Param {
            under: Some(vec!["/".into()]),
            ..param(ParamType::Path)
        };
        assert!(root.check(&json!("/etc")).is_ok());
        assert!(root.check(&json!("/")).is_ok());
    }

    #[test]
    fn command_line_text() {
        let int = param(ParamType::Int);
        assert_eq!(int.from_text("-12"), Ok(json!(-12)));
        for bad in ["", "-", "+1", " 1", "1.0", "0x10", "99999999999999999999"] {
            assert!(int.from_text(bad).is_err(), "{bad}");
        }
        assert_eq!(param(ParamType::Bool).from_text("true"), Ok(json!(true)));
        assert!(param(ParamType::Bool).from_text("yes").is_err());
        assert_eq!(param(ParamType::Path).from_text("/x"), Ok(json!("/x")));
    }
}
