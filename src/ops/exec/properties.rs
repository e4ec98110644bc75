//! Property tests of the request's parsing: for any body, `from_json` then
//! `to_exec` is an error naming a field (or the whole body), or an [`Exec`]
//! within every limit of `limits.rs` — never a panic.

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::command::Command;
use super::sudo::SudoMode;
use super::{Exec, MAX_COMMAND_LINE, RESERVED_ENV_PREFIX, RequestPolicy, RunRequest, run_tag};

/// Strings that probe the edges: NUL bytes, newlines, quotes, remex's own
/// names, non-ASCII, and lengths on both sides of the command-line limit.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-zA-Z0-9_ ./'\"$`\\\\-]{0,12}",
        2 => "[\\x00-\\x7f]{0,8}",
        1 => Just("REMEX_RUN_ID".to_owned()),
        1 => Just("REMEX_X".to_owned()),
        1 => Just("a\u{0}b".to_owned()),
        1 => Just("line\nbreak".to_owned()),
        1 => Just("é€😀".to_owned()),
        1 => (0usize..3).prop_map(|n| "'".repeat(n * 20_000 + 1)),
        1 => prop_oneof![
            Just(MAX_COMMAND_LINE - 200),
            Just(MAX_COMMAND_LINE),
            Just(MAX_COMMAND_LINE + 1),
            Just(300_000usize),
        ]
        .prop_map(|n| "x".repeat(n)),
    ]
}

/// Any JSON value, nested a little.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..4)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// A value of the shape a field wants, most of the time.
fn field(name: &'static str) -> BoxedStrategy<Value> {
    let words = prop::collection::vec(text().prop_map(Value::String), 0..4).prop_map(Value::Array);
    let env = prop::collection::vec((text(), text()), 0..3).prop_map(|pairs| {
        Value::Object(
            pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        )
    });
    let shaped: BoxedStrategy<Value> = match name {
        "targets" => prop_oneof![Just("vm01".into()), text().prop_map(Value::String)].boxed(),
        "command" => words.boxed(),
        "env" | "secret_env" => env.boxed(),
        "script" => (
            prop::option::of(text()),
            prop::option::of(text()),
            prop::collection::vec(text(), 0..3),
            prop::option::of(text()),
        )
            .prop_map(|(body, name, args, interpreter)| {
                let mut script = Map::new();
                if let Some(body) = body {
                    script.insert("body".into(), body.into());
                }
                if let Some(name) = name {
                    script.insert("name".into(), name.into());
                }
                script.insert("args".into(), args.into());
                if let Some(interpreter) = interpreter {
                    script.insert("interpreter".into(), interpreter.into());
                }
                Value::Object(script)
            })
            .boxed(),
        "sudo" => (prop::option::of(text()), prop::option::of(text()))
            .prop_map(|(user, password)| serde_json::json!({"user": user, "password": password}))
            .boxed(),
        "timeout" => prop_oneof![
            Just("30s".into()),
            Just("none".into()),
            Just(0.into()),
            text().prop_map(Value::String)
        ]
        .boxed(),
        "parallel" => prop_oneof![
            (0u32..4).prop_map(Value::from),
            any::<i64>().prop_map(Value::from)
        ]
        .boxed(),
        "pty" => any::<bool>().prop_map(Value::Bool).boxed(),
        "max_output" => prop_oneof![
            Just("1K".into()),
            Just("2M".into()),
            any::<u64>().prop_map(Value::from)
        ]
        .boxed(),
        _ => text().prop_map(Value::String).boxed(),
    };
    prop_oneof![9 => shaped, 1 => value()].boxed()
}

const FIELDS: [&str; 15] = [
    "targets",
    "command",
    "raw",
    "script",
    "timeout",
    "env",
    "secret_env",
    "cwd",
    "stdin",
    "sudo",
    "parallel",
    "pty",
    "max_output",
    "idempotency_key",
    "callback_url",
];

/// A request body: `targets` and one of `command`, `raw` and `script`
/// most of the time, some other fields, and now and then a duplicate key,
/// an unknown field or trailing bytes — or bytes that are not JSON at all.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let some = |names: &'static [&'static str]| {
        prop::sample::select(names)
            .prop_flat_map(|name| field(name).prop_map(move |v| (name.to_owned(), v)))
    };
    let fields = (
        prop::option::weighted(0.9, field("targets")),
        prop::option::weighted(0.9, some(&["command", "raw", "script"])),
        prop::collection::vec(
            prop_oneof![9 => some(&FIELDS[1..]), 1 => (text(), value())],
            0..4,
        ),
    )
        .prop_map(|(targets, what, rest)| {
            let mut fields: Vec<(String, Value)> = Vec::new();
            fields.extend(targets.map(|t| ("targets".to_owned(), t)));
            fields.extend(what);
            fields.extend(rest);
            fields
        });
    let object = (
        fields,
        prop::bool::weighted(0.1),
        prop::option::weighted(0.1, "[ }x{\\]]{1,3}"),
    )
        .prop_map(|(fields, duplicate, trailing)| {
            let mut pairs = fields;
            if duplicate && let Some(first) = pairs.first().cloned() {
                pairs.push(first);
            }
            let mut text = String::from("{");
            for (at, (key, value)) in pairs.iter().enumerate() {
                if at > 0 {
                    text.push(',');
                }
                text.push_str(&Value::String(key.clone()).to_string());
                text.push(':');
                text.push_str(&value.to_string());
            }
            text.push('}');
            text.push_str(trailing.as_deref().unwrap_or_default());
            text.into_bytes()
        });
    prop_oneof![19 => object, 1 => prop::collection::vec(any::<u8>(), 0..64)]
}

/// The service's policy, without a scripts directory (no file is read).
fn policy() -> RequestPolicy {
    RequestPolicy {
        local_scripts: false,
        scripts_dir: None,
        default_max_output: 1 << 20,
        max_output_limit: 1 << 20,
    }
}

/// The invariants of an accepted request's [`Exec`].
fn check(exec: &Exec) {
    let tag = run_tag("20260101T000000Z-00000000", "vm01");
    let line = exec.remote_command(&tag);
    let line = match &exec.command {
        // The staging directory's usual length.
        Command::Script { .. } => line.replace("<dir>", "/tmp/remex-script.AbCdEfGh"),
        _ => line,
    };
    let line = match &exec.sudo {
        Some(sudo) => sudo.wrap(SudoMode::Password, &line),
        None => line,
    };
    assert!(line.len() <= MAX_COMMAND_LINE, "{} bytes", line.len());
    assert!(!line.contains('\0'), "a NUL byte on the command line");
    for (key, value) in exec.env.iter().chain(&exec.secret_env) {
        assert!(!key.starts_with(RESERVED_ENV_PREFIX), "{key}");
        assert!(
            !key.is_empty() && !key.contains(['\0', '=', ' ']),
            "{key:?}"
        );
        assert!(!value.contains('\0'));
    }
    if let Some(password) = exec.sudo.as_ref().and_then(|s| s.password.as_deref()) {
        assert!(!password.contains(['\0', '\n']));
    }
    assert!(exec.max_output <= 1 << 20);
    assert!(exec.validate().is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_body_is_a_named_error_or_a_valid_exec(body in body()) {
        match RunRequest::from_json(&body) {
            Err(e) => {
                prop_assert!(!e.message.is_empty());
                prop_assert!(e.field.as_deref().is_none_or(|f| !f.is_empty()), "{e:?}");
            }
            Ok(request) => match request.to_exec(&policy()) {
                Err(e) => {
                    prop_assert!(e.field.as_deref().is_some_and(|f| !f.is_empty()), "{e:?}");
                    prop_assert!(!e.message.is_empty());
                }
                Ok(exec) => check(&exec),
            },
        }
    }
}

#[test]
fn a_request_at_the_limit_runs_and_one_byte_more_is_refused() {
    // `export REMEX_RUN_ID=<32 hex>\n` then the quoted word.
    let overhead = Exec::argv(["x"]).remote_command(&run_tag("r", "h")).len() - 1;
    let fits = Exec::argv(["x".repeat(MAX_COMMAND_LINE - overhead)]);
    assert_eq!(
        fits.remote_command(&run_tag("r", "h")).len(),
        MAX_COMMAND_LINE
    );
    assert!(fits.validate().is_ok());
    let over = Exec::argv(["x".repeat(MAX_COMMAND_LINE - overhead + 1)]);
    let e = over.validate().unwrap_err();
    assert_eq!(e.field.as_deref(), Some("command"));
    assert!(e.message.contains(&MAX_COMMAND_LINE.to_string()), "{e:?}");
    // Quoting counts: a word of quotes grows fourfold on the line.
    let quotes = Exec::argv(["'".repeat(MAX_COMMAND_LINE / 3)]);
    assert_eq!(
        quotes.validate().unwrap_err().field.as_deref(),
        Some("command")
    );
    // The field that adds the most is named.
    let env = Exec::argv(["true"]).env("BIG", "y".repeat(MAX_COMMAND_LINE));
    assert_eq!(env.validate().unwrap_err().field.as_deref(), Some("env"));
    let sudo = Exec::argv(["true"]).sudo(super::Sudo {
        user: Some("u".repeat(MAX_COMMAND_LINE)),
        password: None,
    });
    assert_eq!(
        sudo.validate().unwrap_err().field.as_deref(),
        Some("sudo.user")
    );
}

#[test]
fn every_field_that_reaches_the_line_refuses_a_nul() {
    let cases = [
        (
            r#"{"targets":"a","command":["ok","b\u0000"]}"#,
            "command[1]",
        ),
        (r#"{"targets":"a","raw":"echo \u0000"}"#, "raw"),
        (
            r#"{"targets":"a","command":["x"],"env":{"A":"\u0000"}}"#,
            "env.A",
        ),
        (
            r#"{"targets":"a","command":["x"],"env":{"A\u0000":"v"}}"#,
            "env",
        ),
        (
            r#"{"targets":"a","command":["x"],"secret_env":{"T":"s\u0000"}}"#,
            "secret_env.T",
        ),
        (
            r#"{"targets":"a","command":["x"],"cwd":"/tmp\u0000"}"#,
            "cwd",
        ),
        (
            r#"{"targets":"a","script":{"body":"x","args":["\u0000"]}}"#,
            "script.args[0]",
        ),
        (
            r#"{"targets":"a","script":{"body":"x","interpreter":"/bin/sh\u0000"}}"#,
            "script.interpreter",
        ),
        (
            r##"{"targets":"a","script":{"body":"#!/bin/sh\u0000x\n"}}"##,
            "script.interpreter",
        ),
        (
            r#"{"targets":"a","command":["x"],"sudo":{"user":"r\u0000"}}"#,
            "sudo.user",
        ),
        (
            r#"{"targets":"a","command":["x"],"sudo":{"password":"p\u0000"}}"#,
            "sudo.password",
        ),
        (
            r#"{"targets":"a","command":["x"],"sudo":{"password":"p\nq"}}"#,
            "sudo.password",
        ),
        (
            r#"{"targets":"a","command":["x"],"env":{"REMEX_RUN_ID":"x"}}"#,
            "env",
        ),
        (
            r#"{"targets":"a","command":["x"],"secret_env":{"REMEX_OTHER":"x"}}"#,
            "secret_env",
        ),
    ];
    for (json, want) in cases {
        let field = RunRequest::from_json(json.as_bytes())
            .and_then(|r| r.to_exec(&policy()))
            .err()
            .and_then(|e| e.field);
        assert_eq!(field.as_deref(), Some(want), "{json}");
    }
    // Binary stdin and a script body with NUL bytes are fine: they travel
    // on the channel.
    let ok = RunRequest::from_json(br#"{"targets":"a","command":["cat"],"stdin":"\u0000\u0001"}"#)
        .and_then(|r| r.to_exec(&policy()));
    assert!(ok.is_ok(), "{ok:?}");
    let ok = RunRequest::from_json(br#"{"targets":"a","script":{"body":"echo\n\u0000"}}"#)
        .and_then(|r| r.to_exec(&policy()));
    assert!(ok.is_ok(), "{ok:?}");
}
