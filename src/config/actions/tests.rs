#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;

use crate::config::{Config, ConfigError, ParamType};

const FILE: &str = "configs/config.yml";
const VMS: &str = "vms:\n  vm01: { host: 10.0.0.11, groups: [web] }\n  vm02: { host: 10.0.0.12 }\n";

fn parse(actions: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(&format!("{VMS}actions:\n{actions}"), Path::new(FILE))
}

/// `(line, field, message)` of the error `actions` gives.
fn error(actions: &str) -> (usize, String, String) {
    match parse(actions) {
        Err(ConfigError::Invalid {
            line: Some(line),
            field,
            message,
            ..
        })
        | Err(ConfigError::Parse {
            line,
            field,
            message,
            ..
        }) => (line, field, message),
        other => panic!("expected an error with a line for\n{actions}\ngot {other:?}"),
    }
}

#[test]
fn a_full_action_loads() {
    let config = parse(
        r#"  report:
    description: Summarise reports
    script: scripts/report.sh
    args: ["--days={days}", "{dir}", "{{literal}}"]
    env: { TOKEN: "{token}", MODE: "{verbose}" }
    params:
      dir: { type: path, under: [/srv/reports, /tmp], description: Where }
      days: { type: int, min: 1, max: 90, default: 7 }
      token: { type: string, secret: true, pattern: "[A-Za-z0-9]{8,64}", max_length: 64 }
      verbose: { type: bool, required: false }
    targets: web
    timeout: 2m
    sudo: postgres
    max_parallel: 4
    approve: { count: 2 }
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let action = &config.actions["report"];
    assert_eq!(action.name, "report");
    assert_eq!(action.params["days"].kind, ParamType::Int);
    assert!(!action.requires("days") && action.requires("dir") && !action.requires("verbose"));
    let approve = action.approve.unwrap_or_else(|| panic!("no approve"));
    assert_eq!((approve.count, approve.expires.as_secs()), (2, 3600));
    // The script is relative to the config file's directory.
    assert_eq!(
        action.script.as_deref(),
        Some(
            std::path::absolute("configs/scripts/report.sh")
                .unwrap()
                .as_path()
        )
    );
}

#[test]
fn each_bad_definition_names_its_line_and_field() {
    let cases: &[(&str, usize, &str, &str)] = &[
        (
            "  Bad_Name: { description: x, command: [id], targets: web }\n",
            5,
            "actions.Bad_Name",
            "not an action name",
        ),
        (
            "  a:\n    description: x\n    command: [echo, \"{nope}\"]\n    targets: web\n",
            7,
            "actions.a.command[1]",
            "names no param of action `a`",
        ),
        (
            "  a:\n    description: x\n    command: [echo, \"{x\"]\n    targets: web\n    params: { x: { type: string } }\n",
            7,
            "actions.a.command[1]",
            "not closed",
        ),
        (
            "  a:\n    description: x\n    command: [echo]\n    targets: web\n    params:\n      unused: { type: string }\n",
            10,
            "actions.a.params.unused",
            "used nowhere",
        ),
        (
            "  a:\n    description: x\n    command: [echo, \"{n}\"]\n    targets: web\n    params:\n      n: { type: int, min: 1, max: 5, default: 9 }\n",
            10,
            "actions.a.params.n.default",
            "not a valid int",
        ),
        (
            "  a:\n    description: x\n    command: [echo, \"{s}\"]\n    targets: web\n    params:\n      s: { type: string, pattern: \"[a-\" }\n",
            10,
            "actions.a.params.s.pattern",
            "not a valid regular expression",
        ),
        (
            "  a:\n    description: x\n    command: [ls, \"{p}\"]\n    targets: web\n    params:\n      p: { type: path, under: [srv/reports] }\n",
            10,
            "actions.a.params.p.under[0]",
            "not absolute",
        ),
        (
            "  a:\n    description: x\n    command: [ls, \"{p}\"]\n    targets: web\n    params:\n      p: { type: path, under: [/srv/../etc] }\n",
            10,
            "actions.a.params.p.under[0]",
            "`..`",
        ),
        (
            "  a:\n    description: x\n    command: [ls, \"{p}\"]\n    targets: web\n    params:\n      p: { type: path }\n",
            10,
            "actions.a.params.p",
            "needs `under`",
        ),
        (
            "  a:\n    description: x\n    command: [ls, \"{p}\"]\n    targets: web\n    params:\n      p: { type: string, min: 3 }\n",
            10,
            "actions.a.params.p.min",
            "applies to type int only",
        ),
        (
            "  a:\n    description: x\n    command: [ls, \"{p}\"]\n    targets: web\n    params:\n      p: { type: enum, values: [a, -rf] }\n",
            10,
            "actions.a.params.p.values[1]",
            "starts with `-`",
        ),
        (
            "  a:\n    description: x\n    command: [ls]\n    targets: nosuchhost\n",
            8,
            "actions.a.targets",
            "unknown host or group",
        ),
        (
            "  a:\n    description: x\n    command: [ls]\n    script: x.sh\n    targets: web\n",
            8,
            "actions.a.script",
            "not both",
        ),
        (
            "  a:\n    description: x\n    command: [ls]\n    env: { REMEX_RUN_ID: x }\n    targets: web\n",
            8,
            "actions.a.env.REMEX_RUN_ID",
            "reserved",
        ),
        (
            "  a:\n    description: x\n    command: [ls]\n    targets: web\n    approve: { count: 0 }\n",
            9,
            "actions.a.approve.count",
            "at least 1",
        ),
        (
            "  a:\n    description: x\n    command: [ls]\n    targets: web\n    max_parallel: 0\n",
            9,
            "actions.a.max_parallel",
            "at least 1",
        ),
        (
            "  a:\n    description: x\n    command: [ls]\n    targets: web\n    params:\n      p: { type: number }\n",
            10,
            "actions.a.params.p.type",
            "unknown value `number`",
        ),
        (
            "  a:\n    description: x\n    command: [ls]\n    targets: web\n    sudo: \"-u root\"\n",
            9,
            "actions.a.sudo",
            "not a user name",
        ),
    ];
    for (actions, line, field, needle) in cases {
        let (at, got_field, message) = error(actions);
        assert_eq!(
            (at, got_field.as_str()),
            (*line, *field),
            "{actions}\n{message}"
        );
        assert!(message.contains(needle), "{actions}\n{message}");
    }
    // The whole error reads FILE:LINE:COLUMN: FIELD: message.
    let text =
        parse("  a:\n    description: x\n    command: [echo, \"{nope}\"]\n    targets: web\n")
            .unwrap_err()
            .to_string();
    assert!(
        text.starts_with("configs/config.yml:7:") && text.contains("actions.a.command[1]: "),
        "{text}"
    );
}
