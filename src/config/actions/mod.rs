//! The `actions:` section: named commands with typed parameters — what a
//! workflow's token may run instead of anything at all.
//!
//! ```yaml
//! actions:
//!   restart-unit:
//!     description: Restart one of the web units
//!     command: [systemctl, restart, "{unit}"]
//!     params:
//!       unit: { type: enum, values: [nginx, php-fpm] }
//!     targets: web
//!     sudo: root
//!     timeout: 1m
//!   report:
//!     description: Summarise a report directory
//!     script: scripts/report.sh            # read when the action runs
//!     args: ["--days={days}", "{dir}"]
//!     env: { REPORT_TOKEN: "{token}" }
//!     params:
//!       dir: { type: path, under: [/srv/reports] }
//!       days: { type: int, min: 1, max: 90, default: 7 }
//!       token: { type: string, secret: true, pattern: "[A-Za-z0-9]{20,64}" }
//!     targets: "web,!vm03"
//!     max_parallel: 4
//!     approve: { count: 2, expires: 30m }
//! ```
//!
//! What an action becomes when it runs (the one `RunRequest`) is built in
//! `ops/action`; here are its types, the value rules of each param type
//! (`value.rs`, no I/O), the template words (`template.rs`) and the load
//! rules (`check.rs`), so a config that loads holds only actions that can
//! run.

mod check;
pub mod template;
mod value;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub(crate) use check::check_actions;
pub use template::{Piece, Template};
pub use value::DEFAULT_MAX_LENGTH;

/// One action (`actions.NAME`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// Its name, the key under `actions` (not a YAML field):
    /// `[a-z0-9][a-z0-9_-]{0,63}`.
    #[serde(skip)]
    pub name: String,
    /// What it does, for people and for the tools that list it. Required.
    pub description: String,
    /// The command's words, each a template (`{param}` placeholders,
    /// `{{`/`}}` for braces); each word reaches the host as one argument.
    /// Exactly one of `command` and `script`.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// A local script, read when the action runs (as `remex script` reads
    /// one) and run on each host. A relative path is relative to the
    /// config file's directory.
    #[serde(default)]
    pub script: Option<PathBuf>,
    /// With `script`: its argument words, templates like `command`'s.
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub args: Vec<String>,
    /// Environment of the command: name → template (`"{token}"`). Names
    /// follow the env rules of a run (letters, digits, `_`; `REMEX_*` is
    /// remex's own).
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub env: BTreeMap<String, String>,
    /// Its params, by name (`[a-z][a-z0-9_]{0,63}`).
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub params: BTreeMap<String, Param>,
    /// The hosts it may run on: a selector (`web,!vm03`). Required. A run
    /// may narrow it, never leave it.
    pub targets: String,
    /// How long the command may run. Default: `remote_execution.command_timeout`.
    #[serde(default, deserialize_with = "some_duration")]
    pub timeout: Option<Duration>,
    /// Run as this user through sudo. Default: as the login user.
    #[serde(default)]
    pub sudo: Option<String>,
    /// Most hosts worked on at once (a run may ask for fewer). Default:
    /// `remote_execution.max_parallel`.
    #[serde(default)]
    pub max_parallel: Option<usize>,
    /// Approvals needed before it runs (the service's two-person rule).
    /// Default: none.
    #[serde(default)]
    pub approve: Option<Approve>,
}

/// `actions.NAME.approve`: how many distinct approvers, and for how long a
/// run may wait for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approve {
    /// Distinct approvers needed (never the requester). At least 1.
    pub count: u32,
    /// How long a run waits for its approvals before it expires. Default: `1h`.
    #[serde(
        default = "default_expires",
        deserialize_with = "super::duration::deserialize"
    )]
    pub expires: Duration,
}

fn default_expires() -> Duration {
    Duration::from_secs(3600)
}

/// One param of an action (`actions.NAME.params.PARAM`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Param {
    /// Its type. Required.
    #[serde(rename = "type")]
    pub kind: ParamType,
    /// What it means, for people and the JSON Schema.
    #[serde(default)]
    pub description: Option<String>,
    /// Whether a run must give it. Default: true, unless it has a
    /// `default`. An optional param without a default that a run leaves
    /// out drops the words (and env entries) that use it.
    #[serde(default)]
    pub required: Option<bool>,
    /// The value when a run gives none; must itself be a valid value.
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    /// A secret: `[REDACTED]` in audit records, reports and job records.
    #[serde(default)]
    pub secret: bool,
    /// Allow a value that puts a `-` at the start of a word (it could be
    /// read as an option: argument injection). Default: false.
    #[serde(default)]
    pub allow_dash: bool,
    /// `string`: a regular expression the whole value must match.
    #[serde(default)]
    pub pattern: Option<ParamPattern>,
    /// `string`, `path`: the most characters. Default: 4096.
    #[serde(default)]
    pub max_length: Option<usize>,
    /// `enum`: the values allowed.
    #[serde(default)]
    pub values: Option<Vec<String>>,
    /// `int`: the least value.
    #[serde(default)]
    pub min: Option<i64>,
    /// `int`: the greatest value.
    #[serde(default)]
    pub max: Option<i64>,
    /// `path`: absolute, normalized prefixes; a value must be one of them
    /// or below one, component by component, and its real path on the host
    /// too. Required for `path`.
    #[serde(default)]
    pub under: Option<Vec<String>>,
}

/// The type of a param.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// Text without control characters, at most `max_length`, matching
    /// `pattern` when there is one. JSON: a string.
    String,
    /// One of `values`. JSON: a string.
    Enum,
    /// A whole number within `min`..=`max`. JSON: an integer (the command
    /// line: decimal digits).
    Int,
    /// `true` or `false`. JSON: a boolean.
    Bool,
    /// An absolute, normalized path under one of `under`. JSON: a string.
    Path,
}

impl ParamType {
    /// The name in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Enum => "enum",
            ParamType::Int => "int",
            ParamType::Bool => "bool",
            ParamType::Path => "path",
        }
    }
}

/// A param's `pattern`: the text as written, and the regex anchored to
/// match the whole value.
#[derive(Debug, Clone)]
pub struct ParamPattern {
    /// As written in the config.
    pub source: String,
    /// `\A(?:source)\z`.
    regex: regex::Regex,
}

impl ParamPattern {
    /// Compiles `source` to match whole values only.
    ///
    /// # Errors
    ///
    /// Not a valid regular expression.
    pub fn new(source: &str) -> Result<ParamPattern, String> {
        let regex = regex::Regex::new(&format!(r"\A(?:{source})\z"))
            .map_err(|e| super::validate::regex_reason(&e))?;
        Ok(ParamPattern {
            source: source.to_owned(),
            regex,
        })
    }

    /// Whether the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

impl PartialEq for ParamPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for ParamPattern {}

impl<'de> Deserialize<'de> for ParamPattern {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let source = String::deserialize(de)?;
        ParamPattern::new(&source).map_err(|why| {
            serde::de::Error::custom(format!(
                "`{source}` is not a valid regular expression: {why}"
            ))
        })
    }
}

/// A duration that is there (`timeout: 30s`).
fn some_duration<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Duration>, D::Error> {
    super::duration::deserialize(de).map(Some)
}

impl Action {
    /// Whether a run must give `name` (declared, required, no default).
    pub fn requires(&self, name: &str) -> bool {
        self.params.get(name).is_some_and(Param::is_required)
    }

    /// The template words of its argv: `command`, or a script's `args`.
    pub fn words(&self) -> &[String] {
        self.command.as_deref().unwrap_or(&self.args)
    }
}

impl Param {
    /// Required: `required`, else true unless there is a `default`.
    pub fn is_required(&self) -> bool {
        self.required.unwrap_or(self.default.is_none())
    }
}

#[cfg(test)]
mod tests;
