//! `remex action list|run` against a lab of real sshd hosts: an action
//! runs as `exec` runs (same report, same audit), and every value that
//! breaks its type is refused naming the param — with nothing run on the
//! host, which the tests check on the hosts' filesystem (the lab's hosts
//! are local sshd processes).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::util::{Run, TestLab, records};

/// The secret the tests pass, to look for where it must not be.
const SECRET: &str = "s3cretTOKENvalue42";

/// A lab of two hosts whose config has the test actions, writing below
/// `area` (where the `mark` action may write) of the lab's directory.
struct ActionLab {
    lab: TestLab,
    config: PathBuf,
    area: PathBuf,
    outside: PathBuf,
}

impl ActionLab {
    fn new() -> ActionLab {
        let lab = TestLab::new(2);
        let area = lab.path().join("area");
        let outside = lab.path().join("outside");
        std::fs::create_dir_all(area.join("in")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        // Symlinks inside `area` that lead out of it: to `/`, and to a
        // directory beside it.
        std::os::unix::fs::symlink("/", area.join("root")).unwrap();
        std::os::unix::fs::symlink(&outside, area.join("out")).unwrap();
        let area_text = area.display().to_string();
        let actions = format!(
            r#"
actions:
  mark:
    description: Write a marker file into a directory
    command: [sh, -c, 'printf "%s|%s|%s" "$1" "$3" "$TOKEN" > "$2/marker"; echo "wrote $1 $4"', sh, "{{text}}", "{{dir}}", "{{count}}", "--token={{token}}"]
    env: {{ TOKEN: "{{token}}" }}
    params:
      text: {{ type: string, pattern: "[a-z0-9 ]{{1,20}}" }}
      dir: {{ type: path, under: ["{area_text}"] }}
      count: {{ type: int, min: 1, max: 3, default: 1 }}
      token: {{ type: string, secret: true, required: false }}
    targets: vm01
  free:
    description: Echo a word that no pattern limits
    command: [sh, -c, 'printf "%s" "$1" > "$2/free"', sh, "{{word}}", "{{dir}}"]
    params:
      word: {{ type: string }}
      dir: {{ type: path, under: ["{area_text}"] }}
    targets: all
"#
        );
        let config = lab.path().join("actions.yml");
        std::fs::write(&config, format!("{}{actions}", lab.config_text())).unwrap();
        ActionLab {
            lab,
            config,
            area,
            outside,
        }
    }

    fn remex(&self, args: &[&str]) -> Run {
        crate::util::Remex::new()
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .run()
    }

    /// Every file below the lab's `area` and `outside` directories (the
    /// symlinks not followed).
    fn written(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for dir in [&self.area, &self.outside] {
            walk(dir, &mut found);
        }
        found
    }
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            walk(&entry.path(), found);
        } else if kind.is_file() {
            found.push(entry.path());
        }
    }
}

fn top_keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

#[test]
fn an_action_runs_and_reports_as_exec_does() {
    let lab = ActionLab::new();
    let dir = lab.area.join("in").display().to_string();
    let run = lab
        .remex(&[
            "--json",
            "action",
            "run",
            "mark",
            "vm01",
            "--param",
            "text=hello world",
            "--param",
            &format!("dir={dir}"),
            "--param",
            "count=3",
            "--param",
            &format!("token={SECRET}"),
        ])
        .expect_code(0);
    let report = run.json();
    assert_eq!(
        std::fs::read_to_string(lab.area.join("in/marker")).unwrap(),
        format!("hello world|3|{SECRET}"),
        "the command ran with the values as single words"
    );
    assert_eq!(report["operation"], "action");
    assert_eq!(report["action"]["name"], "mark");
    assert_eq!(
        report["action"]["params"],
        json!({"count": 3, "dir": dir, "text": "hello world", "token": "[REDACTED]"})
    );
    let result = &report["results"][0];
    assert_eq!(result["host"], "vm01");
    assert!(
        result["detail"].is_null(),
        "the detail is flattened: {result}"
    );
    assert_eq!(
        result["stdout"], "wrote hello world --token=[REDACTED]\n",
        "{result}"
    );
    // The same shape as `remex exec`: the envelope and each result.
    let exec = lab
        .remex(&["--json", "exec", "vm01", "--", "echo", "hi"])
        .expect_code(0)
        .json();
    let mut envelope = top_keys(&report);
    envelope.retain(|k| k != "action");
    assert_eq!(envelope, top_keys(&exec));
    assert_eq!(top_keys(result), top_keys(&exec["results"][0]));
    // The audit log: op `action`, its name and params, no secret anywhere.
    let log = std::fs::read_to_string(crate::util::log_path(&lab.lab)).unwrap();
    assert!(!log.contains(SECRET), "the secret is in the audit log");
    assert!(!run.stdout().contains(SECRET) && !run.stderr().contains(SECRET));
    let run_id = report["run_id"].as_str().unwrap();
    let mine: Vec<Value> = records(&lab.lab)
        .into_iter()
        .filter(|r| r["run"] == run_id)
        .collect();
    assert_eq!(mine.len(), 2, "{mine:?}");
    for record in &mine {
        assert_eq!(record["op"], "action", "{record}");
    }
    // The start record says which action, with which params (as a start
    // record of exec says which command).
    assert_eq!(mine[0]["event"], "start");
    assert_eq!(mine[0]["action"], "mark");
    assert_eq!(mine[0]["params"]["token"], "[REDACTED]");
    assert_eq!(mine[0]["params"]["text"], "hello world");
    assert!(
        mine[0]["argv"]
            .as_array()
            .unwrap()
            .contains(&json!("--token=[REDACTED]")),
        "{}",
        mine[0]
    );
    crate::util::assert_verifies(&lab.lab);
    // The human report, like exec's.
    let human = lab.remex(&[
        "action",
        "run",
        "mark",
        "--param",
        "text=again",
        "--param",
        &format!("dir={dir}"),
    ]);
    let human = human.expect_code(0);
    // The optional token left out, its word is left out too.
    assert!(
        human.stdout().contains("vm01: wrote again \n"),
        "{}",
        human.stdout()
    );
    assert!(human.stderr().contains("1 ok"), "{}", human.stderr());
}

#[test]
fn hostile_values_are_refused_and_nothing_runs() {
    let lab = ActionLab::new();
    let dir = format!("dir={}", lab.area.join("in").display());
    let area = lab.area.display().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["text=a;id".into(), dir.clone()], "params.text"),
        (vec!["text=$(id)".into(), dir.clone()], "params.text"),
        (vec!["text=`id`".into(), dir.clone()], "params.text"),
        (vec!["text=a\nb".into(), dir.clone()], "params.text"),
        (vec!["text=-rf".into(), dir.clone()], "params.text"),
        (
            vec!["text=ok".into(), format!("dir={area}/in/../../outside")],
            "params.dir",
        ),
        (
            vec!["text=ok".into(), format!("dir={area}-old")],
            "params.dir",
        ),
        (
            vec!["text=ok".into(), format!("dir={area}/in/\u{1b}[2J")],
            "params.dir",
        ),
        (vec!["text=ok".into(), "dir=/etc".into()], "params.dir"),
        (
            vec!["text=ok".into(), dir.clone(), "count=4".into()],
            "params.count",
        ),
        (
            vec!["text=ok".into(), dir.clone(), "count=0".into()],
            "params.count",
        ),
        (
            vec!["text=ok".into(), dir.clone(), "count=1.5".into()],
            "params.count",
        ),
        (
            vec!["text=ok".into(), dir.clone(), "nope=1".into()],
            "params.nope",
        ),
        (vec![dir.clone()], "params.text"),
        (
            vec!["text=ok".into(), dir.clone(), "text=again".into()],
            "params.text",
        ),
    ];
    for (params, field) in &cases {
        let mut args = vec!["--json", "action", "run", "mark", "vm01"];
        for param in params {
            args.push("--param");
            args.push(param);
        }
        let run = lab.remex(&args).expect_code(2);
        assert!(
            run.stderr().contains(&format!("field `{field}`")),
            "{params:?}: {}",
            run.stderr()
        );
        let error = run.json();
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(field)),
            "{error}"
        );
    }
    // A free string reaches the command as one word, shell syntax and all.
    let free = lab.remex(&[
        "action",
        "run",
        "free",
        "vm02",
        "--param",
        "word=a;$(id)`id`|b",
        "--param",
        &dir,
    ]);
    free.expect_code(0);
    assert_eq!(
        std::fs::read_to_string(lab.area.join("in/free")).unwrap(),
        "a;$(id)`id`|b"
    );
    std::fs::remove_file(lab.area.join("in/free")).unwrap();
    // Through the library: NUL, and JSON values of the wrong type.
    let config = remex::Config::load(&lab.config).unwrap();
    let action = remex::action::find(&config, "mark").unwrap();
    let in_dir = lab.area.join("in").display().to_string();
    for (params, field) in [
        (json!({"text": "a\u{0}b", "dir": in_dir}), "params.text"),
        (
            json!({"text": "ok", "dir": format!("{in_dir}\u{0}")}),
            "params.dir",
        ),
        (
            json!({"text": "ok", "dir": in_dir, "count": "2"}),
            "params.count",
        ),
        (
            json!({"text": "ok", "dir": in_dir, "count": 2.0}),
            "params.count",
        ),
        (json!({"text": 7, "dir": in_dir}), "params.text"),
        (
            json!({"text": "ok", "dir": in_dir, "token": true}),
            "params.token",
        ),
    ] {
        let params = params.as_object().cloned().unwrap();
        let refused = action.prepare(&config, &params, None).unwrap_err();
        assert_eq!(refused.field(), field, "{params:?}");
    }
    assert_eq!(lab.written(), Vec::<PathBuf>::new(), "something ran");
    // Nothing reached the audit log either: no run of `mark` started (the
    // one `free` run has its start and end).
    let logged: Vec<Value> = records(&lab.lab)
        .into_iter()
        .filter(|r| r["op"] == "action")
        .collect();
    assert_eq!(logged.len(), 2, "{logged:?}");
    assert!(logged.iter().all(|r| r["action"] != "mark"), "{logged:?}");
}

#[test]
fn a_symlink_out_of_under_stops_the_command_on_the_host() {
    let lab = ActionLab::new();
    let area = lab.area.display().to_string();
    let outside = lab.outside.display().to_string();
    // Through a link to `/`, and through a link beside the area.
    for dir in [format!("{area}/root{outside}"), format!("{area}/out")] {
        let run = lab.remex(&[
            "--json",
            "action",
            "run",
            "free",
            "vm01,vm02",
            "--param",
            "word=x",
            "--param",
            &format!("dir={dir}"),
        ]);
        let report = run.expect_code(1).json();
        for result in report["results"].as_array().unwrap() {
            let error = &result["error"];
            assert_eq!(error["kind"], "path_scope", "{result}");
            let message = error["message"].as_str().unwrap();
            assert!(message.starts_with("params.dir: "), "{message}");
            assert!(message.contains(&outside), "{message}");
            assert!(message.contains("nothing ran"), "{message}");
        }
        assert_eq!(
            lab.written(),
            Vec::<PathBuf>::new(),
            "the command ran: {dir}"
        );
    }
    // A link that stays inside is followed.
    std::os::unix::fs::symlink(lab.area.join("in"), lab.area.join("alias")).unwrap();
    lab.remex(&[
        "action",
        "run",
        "free",
        "vm01",
        "--param",
        "word=y",
        "--param",
        &format!("dir={area}/alias"),
    ])
    .expect_code(0);
    assert_eq!(
        std::fs::read_to_string(lab.area.join("in/free")).unwrap(),
        "y"
    );
}

#[test]
fn hosts_outside_the_actions_targets_are_refused() {
    let lab = ActionLab::new();
    let dir = format!("dir={}", lab.area.join("in").display());
    for targets in ["vm02", "all", "vm01,vm02"] {
        let run = lab
            .remex(&[
                "action", "run", "mark", targets, "--param", "text=ok", "--param", &dir,
            ])
            .expect_code(2);
        assert!(run.stderr().contains("field `targets`"), "{}", run.stderr());
        assert!(run.stderr().contains("vm02"), "{}", run.stderr());
    }
    lab.remex(&["action", "run", "nosuch", "vm01"])
        .expect_code(2);
    assert_eq!(lab.written(), Vec::<PathBuf>::new());
}

#[test]
fn action_list_shows_params_and_their_schema() {
    let lab = ActionLab::new();
    let list = lab
        .remex(&["--json", "action", "list"])
        .expect_code(0)
        .json();
    assert_eq!(list["operation"], "action.list");
    let mark = list["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "mark")
        .unwrap();
    assert_eq!(mark["name"], "mark");
    assert_eq!(mark["targets"], "vm01");
    let schema = &mark["params_schema"];
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["properties"]["count"]["type"], "integer");
    assert_eq!(schema["properties"]["token"]["writeOnly"], true);
    let human = lab.remex(&["action", "list"]).expect_code(0);
    assert!(
        human.stdout().contains("count: int=1"),
        "{}",
        human.stdout()
    );
    assert!(
        human.stdout().contains("token: string? (secret)"),
        "{}",
        human.stdout()
    );
}

#[test]
fn config_errors_in_actions_name_file_and_line() {
    let lab = TestLab::new(1);
    let base = lab.config_text();
    let line_of =
        |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    for (actions, needle, field) in [
        (
            "actions:\n  a:\n    description: x\n    command: [echo, \"{nope}\"]\n    targets: vm01\n",
            "{nope}",
            "actions.a.command[1]",
        ),
        (
            "actions:\n  a:\n    description: x\n    command: [echo, \"{n}\"]\n    targets: vm01\n    params:\n      n: { type: int, max: 3, default: 5 }\n",
            "default: 5",
            "actions.a.params.n.default",
        ),
        (
            "actions:\n  a:\n    description: x\n    command: [ls, \"{p}\"]\n    targets: vm01\n    params:\n      p: { type: path, under: [relative/dir] }\n",
            "relative/dir",
            "actions.a.params.p.under[0]",
        ),
        (
            "actions:\n  a:\n    description: x\n    command: [ls]\n    targets: vm01\n    timeout: soon\n",
            "timeout: soon",
            "actions.a.timeout",
        ),
    ] {
        let text = format!("{base}{actions}");
        let path = lab.path().join("bad.yml");
        std::fs::write(&path, &text).unwrap();
        let run = crate::util::Remex::new()
            .arg("--config")
            .arg(&path)
            .args(["action", "list"])
            .run()
            .expect_code(2);
        let want = format!("{}:{}:", path.display(), line_of(&text, needle));
        assert!(
            run.stderr().contains(&want),
            "want {want} in {}",
            run.stderr()
        );
        assert!(
            run.stderr().contains(field),
            "want {field} in {}",
            run.stderr()
        );
    }
}
