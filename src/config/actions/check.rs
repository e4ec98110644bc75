//! The load rules of `actions:`: each problem names its field, so the
//! error reads `FILE:LINE:COLUMN: actions.NAME.FIELD: message`. No I/O (a
//! `script` is read when the action runs).

use std::collections::BTreeSet;

use super::template::{Template, is_param_name};
use super::value::normalized_path;
use super::{Action, Param, ParamType};
use crate::config::Config;
use crate::config::field_path::FieldPath;
use crate::config::validate::Problem;

/// Every rule the `actions:` section of `config` breaks.
pub(crate) fn check_actions(config: &Config, problems: &mut Vec<Problem>) {
    let section = FieldPath::keys(["actions"]);
    for (name, action) in &config.actions {
        let here = section.key(name);
        if !is_action_name(name) {
            problems.push(Problem::key(
                here.clone(),
                format!(
                    "`{name}` is not an action name: lower-case letters, digits, `-` and `_`, \
                     starting with a letter or digit, at most 64 characters"
                ),
            ));
        }
        check_action(config, name, action, &here, problems);
    }
}

/// `[a-z0-9][a-z0-9_-]{0,63}`.
fn is_action_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.len() <= 64
}

fn check_action(
    config: &Config,
    name: &str,
    action: &Action,
    here: &FieldPath,
    problems: &mut Vec<Problem>,
) {
    if action.description.trim().is_empty() {
        problems.push(Problem::value(
            here.key("description"),
            "the description is empty: say what the action does",
        ));
    }
    match (&action.command, &action.script) {
        (Some(_), Some(_)) => problems.push(Problem::key(
            here.key("script"),
            "give `command` or `script`, not both",
        )),
        (None, None) => problems.push(Problem::key(
            here.clone(),
            "say what the action runs: `command` (a list of words) or `script` (a local file)",
        )),
        (Some(command), None) if command.is_empty() => problems.push(Problem::value(
            here.key("command"),
            "the command is empty: list its words, e.g. `[systemctl, restart, nginx]`",
        )),
        (Some(_), None) if !action.args.is_empty() => problems.push(Problem::key(
            here.key("args"),
            "`args` are a script's arguments: put the words in `command`",
        )),
        (None, Some(script)) if script.as_os_str().is_empty() => problems.push(Problem::value(
            here.key("script"),
            "the script path is empty",
        )),
        _ => {}
    }
    let mut used = BTreeSet::new();
    let words_field = if action.command.is_some() {
        "command"
    } else {
        "args"
    };
    for (at, word) in action.words().iter().enumerate() {
        let field = here.key(words_field).index(at);
        check_template(name, action, word, field, &mut used, problems);
    }
    for (key, value) in &action.env {
        let field = here.key("env").key(key);
        if let Err(e) = crate::ops::exec::env_name("env", key) {
            problems.push(Problem::key(field.clone(), e.message));
        }
        check_template(name, action, value, field, &mut used, problems);
    }
    for (param_name, param) in &action.params {
        let field = here.key("params").key(param_name);
        if !is_param_name(param_name) {
            problems.push(Problem::key(
                field.clone(),
                format!(
                    "`{param_name}` is not a param name: lower-case letters, digits and `_`, \
                     starting with a letter, at most 64 characters"
                ),
            ));
        }
        check_param(param, &field, problems);
        if !used.contains(param_name.as_str()) {
            problems.push(Problem::key(
                field,
                format!(
                    "param `{param_name}` is used nowhere: put `{{{param_name}}}` in a word of \
                     the command, `args` or an `env` value, or remove it"
                ),
            ));
        }
    }
    check_settings(config, action, here, problems);
}

/// A template word: it parses, and every placeholder names a param.
fn check_template(
    name: &str,
    action: &Action,
    word: &str,
    field: FieldPath,
    used: &mut BTreeSet<String>,
    problems: &mut Vec<Problem>,
) {
    match Template::parse(word) {
        Err(why) => problems.push(Problem::value(field, format!("in `{word}`: {why}"))),
        Ok(template) => {
            for param in template.params() {
                if action.params.contains_key(param) {
                    used.insert(param.to_owned());
                } else {
                    problems.push(Problem::value(
                        field.clone(),
                        format!(
                            "`{word}`: the placeholder `{{{param}}}` names no param of action \
                             `{name}`; declare it under `params` (or write `{{{{` for a brace)"
                        ),
                    ));
                }
            }
        }
    }
}

/// A param's own rules: the fields of its type only, and a default that
/// is a value of it.
fn check_param(param: &Param, field: &FieldPath, problems: &mut Vec<Problem>) {
    let kind = param.kind;
    let only = |present: bool, what: &str, types: &[ParamType], problems: &mut Vec<Problem>| {
        if present && !types.contains(&kind) {
            let names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
            problems.push(Problem::key(
                field.key(what),
                format!(
                    "`{what}` applies to type {} only, not {}",
                    names.join(" and "),
                    kind.as_str()
                ),
            ));
        }
    };
    only(
        param.pattern.is_some(),
        "pattern",
        &[ParamType::String],
        problems,
    );
    only(
        param.max_length.is_some(),
        "max_length",
        &[ParamType::String, ParamType::Path],
        problems,
    );
    only(
        param.values.is_some(),
        "values",
        &[ParamType::Enum],
        problems,
    );
    only(param.min.is_some(), "min", &[ParamType::Int], problems);
    only(param.max.is_some(), "max", &[ParamType::Int], problems);
    only(param.under.is_some(), "under", &[ParamType::Path], problems);
    if param.max_length == Some(0) {
        problems.push(Problem::value(
            field.key("max_length"),
            "max_length 0 admits nothing; use at least 1",
        ));
    }
    if let (Some(min), Some(max)) = (param.min, param.max)
        && min > max
    {
        problems.push(Problem::value(
            field.key("max"),
            format!("max {max} is less than min {min}"),
        ));
    }
    match kind {
        ParamType::Enum => check_values(param, field, problems),
        ParamType::Path => check_under(param, field, problems),
        _ => {}
    }
    if param.required == Some(true) && param.default.is_some() {
        problems.push(Problem::key(
            field.key("required"),
            "a param with a `default` is never missing: leave out `required: true`",
        ));
    }
    if let Some(default) = &param.default
        && let Err(why) = param.check(default)
    {
        problems.push(Problem::value(
            field.key("default"),
            format!("the default is not a valid {}: {why}", kind.as_str()),
        ));
    }
}

/// `values` of an `enum`: there, distinct, each a valid value.
fn check_values(param: &Param, field: &FieldPath, problems: &mut Vec<Problem>) {
    let Some(values) = &param.values else {
        problems.push(Problem::key(
            field.clone(),
            "an enum needs `values`: the list of values allowed",
        ));
        return;
    };
    if values.is_empty() {
        problems.push(Problem::value(
            field.key("values"),
            "`values` is empty: list the values allowed",
        ));
    }
    let mut seen = BTreeSet::new();
    for (at, value) in values.iter().enumerate() {
        let here = field.key("values").index(at);
        if !seen.insert(value) {
            problems.push(Problem::value(here, format!("`{value}` is listed twice")));
        } else if value.chars().any(char::is_control) {
            problems.push(Problem::value(here, "the value holds a control character"));
        } else if value.starts_with('-') && !param.allow_dash {
            problems.push(Problem::value(
                here,
                format!(
                    "`{value}` starts with `-`, which a command could read as an option; \
                     set `allow_dash: true` if that is meant"
                ),
            ));
        }
    }
}

/// `under` of a `path`: there, each prefix absolute and normalized.
fn check_under(param: &Param, field: &FieldPath, problems: &mut Vec<Problem>) {
    let Some(under) = &param.under else {
        problems.push(Problem::key(
            field.clone(),
            "a path needs `under`: the absolute directories its values must stay in",
        ));
        return;
    };
    if under.is_empty() {
        problems.push(Problem::value(
            field.key("under"),
            "`under` is empty: list the directories values must stay in",
        ));
    }
    for (at, prefix) in under.iter().enumerate() {
        let why = if prefix.chars().any(char::is_control) {
            Some("the prefix holds a control character".to_owned())
        } else {
            normalized_path(prefix).err()
        };
        if let Some(why) = why {
            problems.push(Problem::value(
                field.key("under").index(at),
                format!("`{prefix}`: {why}"),
            ));
        }
    }
}

/// `targets`, `timeout`, `sudo`, `max_parallel`, `approve`.
fn check_settings(config: &Config, action: &Action, here: &FieldPath, problems: &mut Vec<Problem>) {
    if action.targets.trim().is_empty() {
        problems.push(Problem::value(
            here.key("targets"),
            "targets is empty: name the hosts the action may run on, e.g. `web`",
        ));
    } else if let Err(e) = config.select(&action.targets) {
        problems.push(Problem::value(here.key("targets"), e.to_string()));
    }
    if action.timeout.is_some_and(|t| t.is_zero()) {
        problems.push(Problem::value(
            here.key("timeout"),
            "timeout 0 would stop the command at once; use e.g. `30s`, or leave it out",
        ));
    }
    if let Some(user) = &action.sudo
        && (user.is_empty()
            || user.starts_with('-')
            || user.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        problems.push(Problem::value(
            here.key("sudo"),
            format!("`{user}` is not a user name"),
        ));
    }
    if action.max_parallel == Some(0) {
        problems.push(Problem::value(
            here.key("max_parallel"),
            "max_parallel must be at least 1",
        ));
    }
    if let Some(approve) = &action.approve {
        if approve.count == 0 {
            problems.push(Problem::value(
                here.key("approve").key("count"),
                "count must be at least 1 (leave `approve` out for none)",
            ));
        }
        if approve.expires.is_zero() {
            problems.push(Problem::value(
                here.key("approve").key("expires"),
                "expires 0 would expire every run at once; use e.g. `1h`",
            ));
        }
    }
}
