#![allow(clippy::unwrap_used, clippy::panic)]

use serde_json::{Map, Value, json};

use super::*;
use crate::exec::Command;

pub(super) const VMS: &str = "vms:\n  vm01: { host: 10.0.0.11, groups: [web] }\n  vm02: { host: 10.0.0.12, groups: [web] }\n  vm03: { host: 10.0.0.13 }\n";

pub(super) fn config(actions: &str) -> Config {
    Config::from_yaml(
        &format!("{VMS}actions:\n{actions}"),
        std::path::Path::new("config.yml"),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn params(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

const REPORT: &str = r#"  report:
    description: Summarise a report directory
    command: [report, "{dir}", "--days={days}", "{unit}", "{flag}", "--token={token}"]
    env: { TOKEN: "{token}", UNIT: "{unit}" }
    params:
      dir: { type: path, under: [/srv/reports] }
      days: { type: int, min: 1, max: 90, default: 7 }
      unit: { type: enum, values: [nginx, php-fpm] }
      flag: { type: string, pattern: "[a-z]+", required: false }
      token: { type: string, secret: true }
    targets: web
    timeout: 90s
    sudo: postgres
    max_parallel: 3
"#;

fn field(config: &Config, value: Value, targets: Option<&str>) -> String {
    let action = &config.actions["report"];
    match action.prepare(config, &params(value), targets) {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.field(),
    }
}

#[test]
fn a_run_becomes_one_request() {
    let config = config(REPORT);
    let action = &config.actions["report"];
    let prepared = action
        .prepare(
            &config,
            &params(json!({"dir": "/srv/reports/2024", "unit": "nginx", "token": "s3cret-t0ken"})),
            Some("vm02"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let request = &prepared.request;
    assert_eq!(request.targets, "vm02");
    assert_eq!(
        request.command.as_deref().unwrap_or_default(),
        [
            "report",
            "/srv/reports/2024",
            "--days=7",
            "nginx",
            "--token=s3cret-t0ken"
        ],
        "the optional `flag` left out drops its word"
    );
    assert_eq!(request.env.get("UNIT").map(String::as_str), Some("nginx"));
    assert_eq!(
        request.secret_env.get("TOKEN").map(String::as_str),
        Some("s3cret-t0ken")
    );
    assert_eq!(
        request.timeout,
        Timeout::After(std::time::Duration::from_secs(90))
    );
    assert_eq!(request.parallel.map(NonZeroU32::get), Some(3));
    assert_eq!(
        request.sudo.as_ref().and_then(|s| s.user.as_deref()),
        Some("postgres")
    );
    assert_eq!(
        prepared.params,
        BTreeMap::from([
            ("days".to_owned(), json!(7)),
            ("dir".to_owned(), json!("/srv/reports/2024")),
            ("token".to_owned(), json!("[REDACTED]")),
            ("unit".to_owned(), json!("nginx")),
        ])
    );
    // What a job keeps, and what Debug prints, hold no secret.
    let kept = serde_json::to_string(&request.redacted()).unwrap_or_default();
    assert!(!kept.contains("s3cret-t0ken"), "{kept}");
    assert!(kept.contains("--token=[REDACTED]"), "{kept}");
    assert!(!format!("{request:?}").contains("s3cret-t0ken"));
    assert!(format!("{request:?}").contains("--token=[REDACTED]"));
    // The exec carries the action: op, secrets, path check.
    let exec = request
        .to_exec(&crate::exec::RequestPolicy::command_line(None))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(exec.command, Command::Argv(_)));
    assert!(exec.secrets().contains(&"s3cret-t0ken".to_owned()));
    assert!(!format!("{exec:?}").contains("s3cret-t0ken"));
    let line = exec.remote_command("tag");
    assert!(line.starts_with("remex_real()"), "{line}");
    assert!(
        line.contains("remex_check params.dir /srv/reports/2024 /srv/reports\n"),
        "{line}"
    );
    // A caller's own parallel limit only lowers the action's.
    let lower = prepared.clone().with_parallel(NonZeroU32::MIN);
    assert_eq!(lower.request.parallel, NonZeroU32::new(1));
    let higher = prepared.with_parallel(NonZeroU32::new(50).unwrap());
    assert_eq!(higher.request.parallel, NonZeroU32::new(3));
}

#[test]
fn every_error_names_its_field() {
    let config = config(REPORT);
    let good = json!({"dir": "/srv/reports/x", "unit": "nginx", "token": "t"});
    assert_eq!(field(&config, good.clone(), None), "ok");
    let with = |key: &str, value: Value| {
        let mut params = good.clone();
        params[key] = value;
        params
    };
    for (value, want) in [
        (with("dir", json!("/srv/reports/../etc")), "params.dir"),
        (with("dir", json!("/srv/reports-old")), "params.dir"),
        (with("dir", json!("/srv/reports/a\nb")), "params.dir"),
        (with("dir", json!(7)), "params.dir"),
        (with("days", json!(91)), "params.days"),
        (with("days", json!("7")), "params.days"),
        (with("days", json!(7.5)), "params.days"),
        (with("unit", json!("nginx;id")), "params.unit"),
        (with("flag", json!("-rf")), "params.flag"),
        (with("flag", json!("$(id)")), "params.flag"),
        (with("token", json!("-x")), "ok"),
        (with("token", json!("a\u{0}b")), "params.token"),
        (with("token", json!("a`id`b;c$(d)")), "ok"),
        (with("nope", json!("x")), "params.nope"),
        (
            json!({"dir": "/srv/reports/x", "token": "t"}),
            "params.unit",
        ),
    ] {
        assert_eq!(field(&config, value.clone(), None), want, "{value}");
    }
    assert_eq!(field(&config, good.clone(), Some("vm03")), "targets");
    assert_eq!(field(&config, good.clone(), Some("web,vm03")), "targets");
    assert_eq!(field(&config, good.clone(), Some("nosuch")), "targets");
    assert_eq!(field(&config, good, Some("vm01")), "ok");
    let action = &config.actions["report"];
    let outside = action
        .prepare(
            &config,
            &params(json!({"dir": "/srv/reports", "unit": "nginx", "token": "t"})),
            Some("all"),
        )
        .unwrap_err();
    assert!(
        matches!(&outside, ActionError::Targets { outside, .. } if outside == &["vm03"]),
        "{outside:?}"
    );
    // No secret in an error message.
    let secret = action
        .prepare(
            &config,
            &params(json!({"dir": "/srv/reports", "unit": "nginx", "token": "hunter2\n"})),
            None,
        )
        .unwrap_err();
    assert!(!secret.to_string().contains("hunter2"), "{secret}");
    let request_error = RequestError::from(secret);
    assert_eq!(request_error.field.as_deref(), Some("params.token"));
}

#[test]
fn a_dash_counts_where_it_starts_a_word() {
    let config = config(
        r#"  grep:
    description: Search
    command: [grep, "{pattern}", "--max-count={count}", "{a}{b}", "{file}"]
    params:
      pattern: { type: string, allow_dash: true }
      count: { type: int }
      a: { type: string, required: false }
      b: { type: string, default: "" }
      file: { type: path, under: [/var/log] }
    targets: web
"#,
    );
    let action = &config.actions["grep"];
    let run = |value: Value| {
        action
            .prepare(&config, &params(value), None)
            .map(|p| p.request.command.unwrap_or_default())
            .map_err(|e| e.field())
    };
    let words = run(json!({"pattern": "-e", "count": -1, "file": "/var/log/x"}));
    assert_eq!(
        words,
        Ok(vec![
            "grep".to_owned(),
            "-e".to_owned(),
            "--max-count=-1".to_owned(),
            "/var/log/x".to_owned()
        ]),
        "a word with an optional param left out is left out"
    );
    assert_eq!(
        run(json!({"pattern": "x", "count": 1, "a": "", "b": "-v", "file": "/var/log/x"})),
        Err("params.b".to_owned())
    );
    assert!(
        run(json!({"pattern": "x", "count": 1, "a": "x", "b": "-v", "file": "/var/log/x"})).is_ok()
    );
}

#[test]
fn command_line_params_are_typed() {
    let config = config(REPORT);
    let action = &config.actions["report"];
    let pairs = |list: &[(&str, &str)]| {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>()
    };
    let params = action
        .params_from_text(&pairs(&[("days", "12"), ("unit", "nginx")]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(params.get("days"), Some(&json!(12)));
    for (bad, want) in [
        (pairs(&[("days", "12x")]), "params.days"),
        (pairs(&[("nope", "1")]), "params.nope"),
        (pairs(&[("unit", "a"), ("unit", "b")]), "params.unit"),
    ] {
        assert_eq!(
            action
                .params_from_text(&bad)
                .map_err(|e| e.field())
                .err()
                .as_deref(),
            Some(want)
        );
    }
}

#[test]
fn the_schema_says_what_prepare_takes() {
    let config = config(REPORT);
    let schema = config.actions["report"].params_schema();
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["required"], json!(["dir", "token", "unit"]));
    let p = &schema["properties"];
    assert_eq!(p["days"]["type"], "integer");
    assert_eq!(
        (p["days"]["minimum"].clone(), p["days"]["maximum"].clone()),
        (json!(1), json!(90))
    );
    assert_eq!(p["days"]["default"], 7);
    assert_eq!(p["unit"]["enum"], json!(["nginx", "php-fpm"]));
    assert_eq!(p["flag"]["allOf"][0]["pattern"], "^(?:[a-z]+)$");
    assert_eq!(p["flag"]["maxLength"], 4096);
    assert_eq!(p["token"]["writeOnly"], true);
    assert_eq!(p["token"]["format"], "password");
    assert_eq!(p["dir"]["x-remex-under"], json!(["/srv/reports"]));
    assert_eq!(p["dir"]["pattern"], schema::PATH_PATTERN);
    assert_eq!(p["dir"]["not"], json!({"pattern": "^-"}));
    assert!(
        p["token"].get("not").is_none(),
        "`--token={{token}}` starts no word"
    );
    let list = ActionList::of(&config);
    assert_eq!(list.actions[0].params_schema, schema);
}
