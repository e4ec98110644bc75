//! Actions: a named command of the config's `actions:` with typed params
//! ([`crate::config::Action`]) becomes **the one run request** — a
//! [`RunRequest`] — through [`Action::prepare`]; the CLI (`remex action
//! run`) and the service run it as they run any request, so it is
//! validated, audited, reported and cancelled the same way.
//!
//! ```no_run
//! # fn demo(config: &remex::Config) -> Result<(), remex::action::ActionError> {
//! let action = remex::action::find(config, "restart-unit")?;
//! let params = serde_json::json!({"unit": "nginx"});
//! let params = params.as_object().cloned().unwrap_or_default();
//! let prepared = action.prepare(config, &params, Some("vm01"))?;
//! // prepared.request: a RunRequest for exactly the hosts allowed, with
//! // the action's timeout, sudo user and max_parallel, its name and
//! // params for the audit log, and its path checks for the host.
//! # Ok(()) }
//! ```
//!
//! What `prepare` promises: every param declared, given once, of its type
//! (JSON types strictly), free of control characters, within its
//! bounds; no param value starts a word with `-` unless the param says
//! `allow_dash`; no host outside the action's `targets`; each `path`
//! param under its prefixes as text, and checked again on the host before
//! the command starts (`ops/exec/guard.rs`). Every error names its field
//! (`params.NAME`, `targets`) in an [`ActionError`].
//!
//! # Layout
//!
//! - `mod.rs` — [`Action::prepare`], [`Prepared`], [`ActionError`],
//!   [`find`], [`ActionList`] (what `remex action list` prints).
//! - `schema.rs` — [`Action::params_schema`], the JSON Schema of the params.

mod schema;

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::audit::REDACTED;
use crate::config::actions::{Piece, Template};
use crate::config::{Action, Config, ParamType};
use crate::exec::{ActionRun, PathCheck, RunRequest, ScriptRequest, SudoRequest, Timeout};
use crate::run::RequestError;

/// Why an action cannot run as asked; nothing was contacted. Each names
/// the request field at fault ([`ActionError::field`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ActionError {
    /// No action of that name in the config (field `name`).
    #[error("{}", unknown_message(.name, .known))]
    Unknown {
        /// The name asked for.
        name: String,
        /// The actions the config has.
        known: Vec<String>,
    },
    /// A param is unknown, missing, given twice, or its value does not fit
    /// (field `params.NAME`). The message names the param, never a secret
    /// value.
    #[error("param `{name}`: {message}")]
    Param {
        /// The param's name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The targets do not resolve, or select hosts outside the action's
    /// `targets` (field `targets`).
    #[error("{message}")]
    Targets {
        /// The hosts selected outside the action's targets (empty when the
        /// selector itself is wrong).
        outside: Vec<String>,
        /// What is wrong.
        message: String,
    },
    /// The action's script cannot be read (field `script`).
    #[error("{message}")]
    Script {
        /// What is wrong.
        message: String,
    },
}

fn unknown_message(name: &str, known: &[String]) -> String {
    if known.is_empty() {
        return format!("no action `{name}`: the config has no `actions:`");
    }
    format!("no action `{name}`; the config has: {}", known.join(", "))
}

impl ActionError {
    /// The request field at fault: `name`, `params.NAME`, `targets`,
    /// `script`.
    pub fn field(&self) -> String {
        match self {
            ActionError::Unknown { .. } => "name".to_owned(),
            ActionError::Param { name, .. } => format!("params.{name}"),
            ActionError::Targets { .. } => "targets".to_owned(),
            ActionError::Script { .. } => "script".to_owned(),
        }
    }

    fn param(name: &str, message: impl Into<String>) -> ActionError {
        ActionError::Param {
            name: name.to_owned(),
            message: message.into(),
        }
    }
}

impl From<ActionError> for RequestError {
    fn from(e: ActionError) -> RequestError {
        RequestError::field(e.field(), e.to_string())
    }
}

/// The action named `name` in `config`.
///
/// # Errors
///
/// [`ActionError::Unknown`], listing the actions there are.
pub fn find<'a>(config: &'a Config, name: &str) -> Result<&'a Action, ActionError> {
    config
        .actions
        .get(name)
        .ok_or_else(|| ActionError::Unknown {
            name: name.to_owned(),
            known: config.actions.keys().cloned().collect(),
        })
}

/// An action ready to run: the request it became, and what records and
/// answers may show of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The action's name.
    pub name: String,
    /// The run request: `targets` the hosts selected (a comma-separated
    /// list of names, within the action's targets), the command or script,
    /// env (secret params' env in `secret_env`), timeout, sudo, `parallel`
    /// (the action's `max_parallel`), and `action` (name, params, secrets,
    /// path checks) — which the JSON form does not carry: run it from
    /// here, never from a copy read back.
    pub request: RunRequest,
    /// The params as records show them: every value given or defaulted,
    /// secret ones `[REDACTED]`.
    pub params: BTreeMap<String, Value>,
}

impl Prepared {
    /// Works on at most `parallel` hosts at once (a caller's own limit):
    /// the lower of it and the action's `max_parallel`.
    #[must_use]
    pub fn with_parallel(mut self, parallel: NonZeroU32) -> Prepared {
        self.request.parallel = Some(match self.request.parallel {
            Some(cap) => cap.min(parallel),
            None => parallel,
        });
        self
    }
}

/// One param's value in a run: as its placeholders take it, and as the
/// records show it.
struct Filled {
    /// The text placeholders take.
    text: String,
    /// Whether it may start a word with `-`.
    allow_dash: bool,
}

impl Action {
    /// `--param NAME=TEXT` pairs of the command line as the JSON params
    /// [`Action::prepare`] takes (an `int` from decimal digits, a `bool`
    /// from `true`/`false`).
    ///
    /// # Errors
    ///
    /// An unknown param, one given twice, text that is not of its type.
    pub fn params_from_text(
        &self,
        pairs: &[(String, String)],
    ) -> Result<Map<String, Value>, ActionError> {
        let mut params = Map::new();
        for (name, text) in pairs {
            let param = self
                .params
                .get(name)
                .ok_or_else(|| self.unknown_param(name))?;
            let value = param
                .from_text(text)
                .map_err(|why| ActionError::param(name, why))?;
            if params.insert(name.clone(), value).is_some() {
                return Err(ActionError::param(name, "given more than once"));
            }
        }
        Ok(params)
    }

    fn unknown_param(&self, name: &str) -> ActionError {
        let shown = crate::run::request_error::shown(name);
        let takes = if self.params.is_empty() {
            format!("action `{}` takes no params", self.name)
        } else {
            let names: Vec<&str> = self.params.keys().map(String::as_str).collect();
            format!("action `{}` takes: {}", self.name, names.join(", "))
        };
        ActionError::Param {
            name: shown.clone(),
            message: format!("no param `{shown}`; {takes}"),
        }
    }

    /// The run request this action becomes with `params` on `targets`
    /// (`None`: all of the action's targets), hosts resolved in `config`.
    ///
    /// # Errors
    ///
    /// [`ActionError::Param`] for an unknown, missing or invalid param (the
    /// first in name order), [`ActionError::Targets`] for a selector that
    /// does not resolve or selects a host outside the action's targets,
    /// [`ActionError::Script`] for a script that cannot be read.
    pub fn prepare(
        &self,
        config: &Config,
        params: &Map<String, Value>,
        targets: Option<&str>,
    ) -> Result<Prepared, ActionError> {
        if let Some(name) = params.keys().find(|name| !self.params.contains_key(*name)) {
            return Err(self.unknown_param(name));
        }
        let mut filled = BTreeMap::new();
        let mut shown = BTreeMap::new();
        let mut secrets = Vec::new();
        let mut path_checks = Vec::new();
        for (name, param) in &self.params {
            let Some(value) = params.get(name).or(param.default.as_ref()) else {
                if param.is_required() {
                    return Err(ActionError::param(name, "missing: the action requires it"));
                }
                continue;
            };
            let text = param
                .check(value)
                .map_err(|why| ActionError::param(name, why))?;
            if param.secret {
                shown.insert(name.clone(), Value::String(REDACTED.to_owned()));
                secrets.push(text.clone());
            } else {
                shown.insert(name.clone(), value.clone());
            }
            if param.kind == ParamType::Path {
                path_checks.push(PathCheck {
                    field: format!("params.{name}"),
                    path: text.clone(),
                    under: param.under.clone().unwrap_or_default(),
                });
            }
            filled.insert(
                name.as_str(),
                Filled {
                    text,
                    allow_dash: param.allow_dash,
                },
            );
        }
        let mut words = Vec::new();
        for word in self.words() {
            if let Some(text) = render(word, &filled, true)? {
                words.push(text);
            }
        }
        let mut env = BTreeMap::new();
        let mut secret_env = BTreeMap::new();
        for (key, value) in &self.env {
            let Some(text) = render(value, &filled, false)? else {
                continue;
            };
            let secret = template(value)?
                .params()
                .any(|p| self.params.get(p).is_some_and(|param| param.secret));
            if secret {
                secret_env.insert(key.clone(), text);
            } else {
                env.insert(key.clone(), text);
            }
        }
        let (command, script) = match &self.script {
            None => (Some(words), None),
            Some(path) => (None, Some(self.script_request(path, words)?)),
        };
        let request = RunRequest {
            targets: self.hosts(config, targets)?.join(","),
            command,
            script,
            timeout: self.timeout.map_or(Timeout::Default, Timeout::After),
            env,
            secret_env,
            sudo: self.sudo.as_ref().map(|user| SudoRequest {
                user: Some(user.clone()),
                password: None,
            }),
            parallel: self
                .max_parallel
                .and_then(|n| NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX))),
            action: Some(Arc::new(ActionRun {
                name: self.name.clone(),
                params: shown.clone(),
                secrets,
                path_checks,
            })),
            ..RunRequest::default()
        };
        Ok(Prepared {
            name: self.name.clone(),
            request,
            params: shown,
        })
    }

    /// The hosts of `targets` (default: the action's), all within the
    /// action's targets.
    fn hosts(&self, config: &Config, targets: Option<&str>) -> Result<Vec<String>, ActionError> {
        let allowed = config
            .select(&self.targets)
            .map_err(|e| ActionError::Targets {
                outside: Vec::new(),
                message: format!("the action's targets `{}`: {e}", self.targets),
            })?;
        let Some(targets) = targets else {
            return Ok(allowed.hosts().to_vec());
        };
        let asked = config.select(targets).map_err(|e| ActionError::Targets {
            outside: Vec::new(),
            message: e.to_string(),
        })?;
        let outside: Vec<String> = asked
            .outside(&allowed)
            .into_iter()
            .map(str::to_owned)
            .collect();
        if !outside.is_empty() {
            return Err(ActionError::Targets {
                message: format!(
                    "action `{}` may run only on `{}` ({}); not on {}",
                    self.name,
                    self.targets,
                    allowed.hosts().join(","),
                    outside.join(", ")
                ),
                outside,
            });
        }
        Ok(asked.hosts().to_vec())
    }

    /// The script, read now, with its argument words.
    fn script_request(
        &self,
        path: &std::path::Path,
        args: Vec<String>,
    ) -> Result<ScriptRequest, ActionError> {
        let body = std::fs::read(path)
            .map_err(|e| format!("cannot read the script {}: {e}", path.display()))
            .and_then(|bytes| {
                String::from_utf8(bytes)
                    .map_err(|_| format!("the script {} is not UTF-8 text", path.display()))
            })
            .map_err(|message| ActionError::Script { message })?;
        let name = path
            .file_name()
            .map_or_else(|| "script".to_owned(), |n| n.to_string_lossy().into_owned());
        Ok(ScriptRequest {
            body: Some(body),
            name: Some(name),
            args,
            ..ScriptRequest::default()
        })
    }
}

/// A template word of the config (checked when it loaded).
fn template(word: &str) -> Result<Template, ActionError> {
    Template::parse(word).map_err(|message| ActionError::Script {
        message: format!("the action's word `{word}`: {message}"),
    })
}

/// `word` with its placeholders filled; `None` when it uses a param left
/// out. For an argv word (`argv`), a param's value may not put a `-` at
/// its start unless the param allows it.
fn render(
    word: &str,
    filled: &BTreeMap<&str, Filled>,
    argv: bool,
) -> Result<Option<String>, ActionError> {
    let mut text = String::new();
    for piece in template(word)?.pieces {
        match piece {
            Piece::Text(literal) => text.push_str(&literal),
            Piece::Param(name) => {
                let Some(value) = filled.get(name.as_str()) else {
                    return Ok(None);
                };
                if argv && text.is_empty() && value.text.starts_with('-') && !value.allow_dash {
                    return Err(ActionError::param(
                        &name,
                        format!(
                            "the value starts with `-`, and would start the word `{word}`, where \
                             a command reads an option (argument injection); this param does not \
                             allow it (allow_dash)"
                        ),
                    ));
                }
                text.push_str(&value.text);
            }
        }
    }
    Ok(Some(text))
}

/// `remex action list`: the actions of a config.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionList {
    /// The actions, by name.
    pub actions: Vec<ActionEntry>,
}

/// One action of an [`ActionList`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionEntry {
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// The hosts it may run on (its selector).
    pub targets: String,
    /// `command` or `script`.
    pub runs: &'static str,
    /// Its params, by name: type, required, secret, default, description.
    pub params: Vec<ParamEntry>,
    /// Approvals it needs before it runs (0: none).
    pub approvals: u32,
    /// The JSON Schema of its params ([`Action::params_schema`]).
    pub params_schema: Value,
}

/// One param of an [`ActionEntry`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamEntry {
    /// Its name.
    pub name: String,
    /// Its type: `string`, `enum`, `int`, `bool`, `path`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Whether a run must give it.
    pub required: bool,
    /// Whether it is a secret.
    pub secret: bool,
    /// Its default, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// What it means.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl ActionList {
    /// The actions of `config`, in name order.
    pub fn of(config: &Config) -> ActionList {
        ActionList {
            actions: config.actions.values().map(ActionEntry::of).collect(),
        }
    }
}

impl ActionEntry {
    /// What a listing shows of `action`.
    pub fn of(action: &Action) -> ActionEntry {
        ActionEntry {
            name: action.name.clone(),
            description: action.description.clone(),
            targets: action.targets.clone(),
            runs: if action.script.is_some() {
                "script"
            } else {
                "command"
            },
            params: action
                .params
                .iter()
                .map(|(name, param)| ParamEntry {
                    name: name.clone(),
                    kind: param.kind.as_str(),
                    required: param.is_required(),
                    secret: param.secret,
                    default: param.default.clone().map(|default| {
                        if param.secret {
                            Value::String(REDACTED.to_owned())
                        } else {
                            default
                        }
                    }),
                    description: param.description.clone(),
                })
                .collect(),
            approvals: action.approve.map_or(0, |a| a.count),
            params_schema: action.params_schema(),
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;
