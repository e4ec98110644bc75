//! Property tests: the JSON Schema of an action's params and
//! `Action::prepare` accept the same values — generated from the schema's
//! own patterns, and mutated with what breaks a command (`;`, `$(…)`,
//! backticks, newlines, NUL, a leading `-`, `..`) or of the wrong JSON
//! type. (A `path`'s prefixes are the schema's `x-remex-under`, which a
//! generic validator does not read: the test says them as a pattern too.)

#![allow(clippy::unwrap_used, clippy::panic)]

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::tests::config;

const ACTION: &str = r#"  deploy:
    description: Deploy a release
    command: [deploy, "{name}", "{env}", "--count={count}", "{free}", "{dir}", "{force}"]
    env: { DEPLOY_TOKEN: "{token}" }
    params:
      name: { type: string, pattern: "[a-z][a-z0-9_.-]{0,30}" }
      env: { type: enum, values: [staging, production] }
      count: { type: int, min: -5, max: 50, required: false }
      free: { type: string, max_length: 40, default: "x" }
      dir: { type: path, under: [/srv/releases], max_length: 60 }
      force: { type: bool, default: false }
      token: { type: string, secret: true, pattern: "[A-Za-z0-9]{8,32}" }
    targets: web
"#;

/// What breaks a command line, a word, or a path.
const HOSTILE: &[&str] = &[
    ";",
    "$(id)",
    "`id`",
    "\n",
    "\u{0}",
    "\r",
    "\u{1b}[2J",
    "-",
    "--",
    "..",
    "/..",
    "/./",
    "//",
    "|",
    "&&",
    "'",
    "\"",
    " ",
    "*",
    "\u{85}",
];

/// A value from the pattern of `regex`, or one of them mutated.
fn text(regex: &'static str) -> impl Strategy<Value = String> {
    let good = || proptest::string::string_regex(regex).unwrap();
    prop_oneof![
        3 => good(),
        2 => (good(), proptest::sample::select(HOSTILE), any::<prop::sample::Index>()).prop_map(
            |(base, bad, at)| {
                let mut chars: Vec<char> = base.chars().collect();
                let at = at.index(chars.len() + 1);
                let tail: String = chars.split_off(at).into_iter().collect();
                format!("{}{bad}{tail}", chars.into_iter().collect::<String>())
            }
        ),
        1 => good().prop_map(|base| format!("-{base}")),
        1 => "\\PC{0,50}",
    ]
}

/// A JSON value: mostly `string`, sometimes of another type.
fn value(string: impl Strategy<Value = String> + 'static) -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => string.prop_map(Value::String),
        1 => any::<i32>().prop_map(Value::from),
        1 => Just(json!(1.5)),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
        1 => Just(json!(["a"])),
    ]
}

/// Params for the action: each present or not, plus maybe an unknown one.
fn params() -> impl Strategy<Value = Map<String, Value>> {
    let name = value(text("[a-z][a-z0-9_.-]{0,30}"));
    let env = value(prop_oneof![
        Just("staging".to_owned()),
        Just("production".to_owned()),
        text("[a-z]{1,12}")
    ]);
    let count = prop_oneof![
        4 => (-8_i64..60).prop_map(Value::from),
        1 => value(text("-?[0-9]{1,3}")),
    ];
    let free = value(text("[^\\x00-\\x1f\\x7f-\\x9f]{0,45}"));
    let dir =
        value(text("(/[a-z0-9._-]{1,12}){0,4}").prop_map(|rest| format!("/srv/releases{rest}")));
    let force =
        prop_oneof![3 => any::<bool>().prop_map(Value::Bool), 1 => value(Just("true".to_owned()))];
    let token = value(text("[A-Za-z0-9]{8,32}"));
    let maybe = |s: BoxedStrategy<Value>| proptest::option::weighted(0.85, s);
    (
        (
            maybe(name.boxed()),
            maybe(env.boxed()),
            maybe(count.boxed()),
        ),
        (
            maybe(free.boxed()),
            maybe(dir.boxed()),
            maybe(force.boxed()),
        ),
        maybe(token.boxed()),
        proptest::option::weighted(0.05, Just(json!("x"))),
    )
        .prop_map(|((name, env, count), (free, dir, force), token, extra)| {
            let mut params = Map::new();
            for (key, value) in [
                ("name", name),
                ("env", env),
                ("count", count),
                ("free", free),
                ("dir", dir),
                ("force", force),
                ("token", token),
                ("unknown", extra),
            ] {
                if let Some(value) = value {
                    params.insert(key.to_owned(), value);
                }
            }
            params
        })
}

/// `schema` with each `x-remex-under` also said as a pattern a generic
/// validator reads: one of the prefixes, then `/` or the end.
fn with_prefixes(mut schema: Value) -> Value {
    let Some(properties) = schema["properties"].as_object_mut() else {
        return schema;
    };
    for property in properties.values_mut() {
        let Some(under) = property
            .get("x-remex-under")
            .and_then(Value::as_array)
            .cloned()
        else {
            continue;
        };
        let any: Vec<Value> = under
            .iter()
            .filter_map(Value::as_str)
            .map(|prefix| json!({"pattern": format!("^{}(?:/|$)", regex::escape(prefix))}))
            .collect();
        property["anyOf"] = Value::Array(any);
    }
    schema
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// The schema and `prepare` agree on every value; what they accept
    /// holds no control character, starts no word with `-`, and keeps
    /// every path normalized under its prefix.
    #[test]
    fn the_schema_and_prepare_agree(params in params()) {
        let config = config(ACTION);
        let action = &config.actions["deploy"];
        let schema = with_prefixes(action.params_schema());
        let validator = jsonschema::validator_for(&schema).unwrap();
        let object = Value::Object(params.clone());
        let prepared = action.prepare(&config, &params, None);
        prop_assert_eq!(
            validator.is_valid(&object),
            prepared.is_ok(),
            "schema and prepare disagree on {}: {:?}",
            object,
            prepared.as_ref().err()
        );
        match prepared {
            Ok(prepared) => {
                let words = prepared.request.command.unwrap_or_default();
                for word in words.iter().skip(1) {
                    prop_assert!(!word.chars().any(char::is_control), "{:?}", word);
                    prop_assert!(!word.starts_with('-') || word.starts_with("--count="), "{:?}", word);
                }
                if let Some(Value::String(dir)) = params.get("dir") {
                    prop_assert!(dir == "/srv/releases" || dir.starts_with("/srv/releases/"));
                    prop_assert!(!dir.split('/').any(|c| c == ".." || c == "."));
                }
                prop_assert!(!prepared.request.env.contains_key("DEPLOY_TOKEN"));
            }
            Err(e) => {
                // Every refusal names a param, and no secret.
                let field = e.field();
                prop_assert!(field.starts_with("params."), "{}", field);
                if let Some(Value::String(token)) = params.get("token")
                    && token.len() > 3
                {
                    prop_assert!(!e.to_string().contains(token.as_str()));
                }
            }
        }
    }
}

/// The classes of hostile value, each in each string-like param: refused,
/// naming the param.
#[test]
fn hostile_values_are_refused_naming_the_param() {
    let config = config(ACTION);
    let action = &config.actions["deploy"];
    let good =
        json!({"name": "web", "env": "staging", "dir": "/srv/releases/r1", "token": "abcdefgh12"});
    for bad in [
        "x;id", "$(id)", "`id`", "x\ny", "x\u{0}", "-x", "..", "x\ry",
    ] {
        for (param, value) in [
            ("name", bad.to_owned()),
            ("env", bad.to_owned()),
            ("token", bad.to_owned()),
            ("dir", format!("/srv/releases/{bad}")),
        ] {
            let mut params = good.as_object().cloned().unwrap_or_default();
            params.insert(param.to_owned(), json!(value));
            let refused = action.prepare(&config, &params, None);
            // A path component may be `$(id)` or `-x`: it names a file,
            // reaching no shell and starting with `/`.
            let harmless_in_path = param == "dir" && ["$(id)", "`id`", "-x", "x;id"].contains(&bad);
            if harmless_in_path {
                assert!(refused.is_ok(), "{param}={value:?}");
                continue;
            }
            let field = refused.err().map(|e| e.field());
            assert_eq!(
                field.as_deref(),
                Some(format!("params.{param}").as_str()),
                "{value:?}"
            );
        }
    }
}
