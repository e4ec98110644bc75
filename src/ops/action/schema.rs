//! [`Action::params_schema`]: the JSON Schema (draft 2020-12) of an
//! action's params, so that a form (the n8n node) or an AI agent's tool
//! can render and check them before asking. What it admits,
//! [`Action::prepare`] admits, but for what only the host can tell (a
//! `path`'s real path) — the property tests hold them to that.

use serde_json::{Map, Value, json};

use crate::audit::REDACTED;
use crate::config::actions::{Piece, Template};
use crate::config::{Action, Param, ParamType};

/// A path as `prepare` takes it, for the schema: absolute, no empty, `.`
/// or `..` component, no trailing `/` (but `/`), no control character.
/// (Without look-ahead, so ECMA-262 and Rust's regex read it alike: a
/// component starts with a character other than `.`, or is `.` and more
/// that is not a `.`, or `..` and more.)
pub(crate) const PATH_PATTERN: &str = concat!(
    r"^(?:/|(?:/(?:",
    r"[^/.\x00-\x1f\x7f-\x9f][^/\x00-\x1f\x7f-\x9f]*",
    r"|\.[^/.\x00-\x1f\x7f-\x9f][^/\x00-\x1f\x7f-\x9f]*",
    r"|\.\.[^/\x00-\x1f\x7f-\x9f]+",
    r"))+)$"
);

/// No control character, for free strings (JSON Schema cannot say it
/// otherwise).
pub(crate) const NO_CONTROL: &str = r"^[^\x00-\x1f\x7f-\x9f]*$";

impl Action {
    /// The JSON Schema of this action's params: `type: object`,
    /// `properties` (one per param), `required`, `additionalProperties:
    /// false`. A `string` param is a string with `maxLength`, and its
    /// `pattern` anchored (`^(?:…)$`) — or, without one, a pattern that
    /// refuses control characters; `enum` lists its values; `int` is an
    /// `integer` with `minimum`/`maximum`; `bool` a `boolean`; `path` a
    /// string with the pattern of an absolute, normalized path and its
    /// prefixes in `x-remex-under`; a secret has `writeOnly: true` and
    /// `format: password`; `default` and `description` when given
    /// (a secret's default shown as `[REDACTED]`).
    ///
    /// A param that can start an argv word and does not `allow_dash` may
    /// not start with `-` there: its schema says `not: {pattern: "^-"}`
    /// (an `int`: `minimum` at least 0).
    pub fn params_schema(&self) -> Value {
        let properties: Map<String, Value> = self
            .params
            .iter()
            .map(|(name, param)| {
                let no_dash = !param.allow_dash && self.starts_a_word(name);
                (name.clone(), param_schema(param, no_dash))
            })
            .collect();
        let required: Vec<&String> = self
            .params
            .iter()
            .filter(|(_, param)| param.is_required())
            .map(|(name, _)| name)
            .collect();
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": self.name,
            "description": self.description,
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        })
    }
}

impl Action {
    /// Whether param `name` can put the first character of an argv word:
    /// it comes first in a word, or after other placeholders only (which
    /// may be empty).
    pub(crate) fn starts_a_word(&self, name: &str) -> bool {
        self.words().iter().any(|word| {
            let Ok(template) = Template::parse(word) else {
                return false;
            };
            for piece in &template.pieces {
                match piece {
                    Piece::Param(p) if p == name => return true,
                    Piece::Param(_) => {}
                    Piece::Text(_) => return false,
                }
            }
            false
        })
    }
}

/// One param's schema; `no_dash`: its value may not start with `-`.
fn param_schema(param: &Param, no_dash: bool) -> Value {
    let mut schema = Map::new();
    let mut set = |key: &str, value: Value| {
        schema.insert(key.to_owned(), value);
    };
    match param.kind {
        ParamType::String => {
            set("type", json!("string"));
            set("maxLength", json!(param.max_length()));
            match &param.pattern {
                Some(pattern) => {
                    // Both must hold: the author's pattern, and no control
                    // character (which `prepare` refuses whatever the
                    // pattern says).
                    set(
                        "allOf",
                        json!([
                            {"pattern": format!("^(?:{})$", pattern.source)},
                            {"pattern": NO_CONTROL},
                        ]),
                    );
                }
                None => set("pattern", json!(NO_CONTROL)),
            }
        }
        ParamType::Enum => {
            set("type", json!("string"));
            set("enum", json!(param.values.clone().unwrap_or_default()));
        }
        ParamType::Int => {
            set("type", json!("integer"));
            let least = param.min.unwrap_or(i64::MIN);
            set("minimum", json!(if no_dash { least.max(0) } else { least }));
            set("maximum", json!(param.max.unwrap_or(i64::MAX)));
        }
        ParamType::Bool => set("type", json!("boolean")),
        ParamType::Path => {
            set("type", json!("string"));
            set("maxLength", json!(param.max_length()));
            set("pattern", json!(PATH_PATTERN));
            set(
                "x-remex-under",
                json!(param.under.clone().unwrap_or_default()),
            );
        }
    }
    if param.secret {
        set("writeOnly", json!(true));
        set("format", json!("password"));
    }
    if let Some(default) = &param.default {
        let shown = if param.secret {
            json!(REDACTED)
        } else {
            default.clone()
        };
        set("default", shown);
    }
    if let Some(description) = &param.description {
        set("description", json!(description));
    }
    if no_dash && matches!(param.kind, ParamType::String | ParamType::Path) {
        set("not", json!({"pattern": "^-"}));
    }
    Value::Object(schema)
}
