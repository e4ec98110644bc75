//! The document holds what the service promises: every answer an
//! operation can give, in the error shape; every limit the service
//! enforces; requests the service takes are valid and those it refuses
//! are not (on samples, with the validator Schemathesis uses); what it
//! answers conforms.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::service::api::{audit, jobs, keys, rules, runs};
use crate::service::error::{ApiError, ErrorBody, ErrorDetail};

/// The document, as `/v1/openapi.json` serves it.
fn document() -> Value {
    serde_json::from_str(&crate::service::openapi_json()).unwrap_or_default()
}

/// Every operation: its method, path and object.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            found.push((method.clone(), path.clone(), op.clone()));
        }
    }
    found
}

/// Whether `op` needs a token.
fn authenticated(op: &Value) -> bool {
    op.get("security") != Some(&json!([{}]))
}

/// A validator of `schema`, whose `$ref`s point into the document.
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let root = json!({"components": doc["components"], "allOf": [schema]});
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("{schema}: {e}"))
}

/// A validator of the component schema `name`.
fn component(doc: &Value, name: &str) -> jsonschema::Validator {
    validator(
        doc,
        &json!({"$ref": format!("#/components/schemas/{name}")}),
    )
}

/// The answer `status` of `method path`.
fn answer<'d>(doc: &'d Value, method: &str, path: &str, status: &str) -> &'d Value {
    &doc["paths"][path][method]["responses"][status]
}

/// The schema of parameter `name` of `method path`.
fn parameter<'d>(doc: &'d Value, method: &str, path: &str, name: &str) -> &'d Value {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
}

/// The error shape's reference.
fn error_shape() -> Value {
    json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}})
}

#[test]
fn every_authenticated_operation_documents_the_guard_answers_in_the_error_shape() {
    let doc = document();
    let mut checked = 0;
    for (method, path, op) in operations(&doc) {
        if !authenticated(&op) {
            assert_eq!(path, "/healthz", "only /healthz is open");
            continue;
        }
        for status in ["401", "429", "500", "503"] {
            assert_eq!(
                op["responses"][status]["content"],
                error_shape(),
                "{method} {path} {status}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 18, "{checked} operations");
}

#[test]
fn every_error_answer_is_the_error_shape() {
    let doc = document();
    for (method, path, op) in operations(&doc) {
        for (status, response) in op["responses"].as_object().into_iter().flatten() {
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    response["content"],
                    error_shape(),
                    "{method} {path} {status}"
                );
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{method} {path} {status}: no description"
                );
            }
        }
    }
    // And what the service sends as an error is that shape.
    let errors = component(&doc, "ErrorBody");
    for e in [
        ApiError::field("limit", "limit must be 1 to 500"),
        ApiError::not_found("no job `x`"),
        ApiError::internal("the store"),
    ] {
        let body = ErrorBody {
            error: ErrorDetail {
                kind: e.kind,
                message: e.message,
                field: e.field,
            },
        };
        let json = serde_json::to_value(&body).unwrap_or_default();
        assert!(errors.is_valid(&json), "{json}");
    }
}

#[test]
fn what_an_operation_reads_can_be_refused_and_says_so() {
    let doc = document();
    for (method, path, op) in operations(&doc) {
        if !authenticated(&op) {
            continue;
        }
        let body = op.get("requestBody").is_some();
        let params = op["parameters"].as_array().is_some_and(|p| !p.is_empty());
        let has = |status: &str| op["responses"].get(status).is_some();
        assert_eq!(has("400"), body || params, "{method} {path} 400");
        assert_eq!(has("408"), body, "{method} {path} 408");
        // (A download's 413 is its own: the file is too large.)
        assert!(!body || has("413"), "{method} {path} 413");
        // An operation that starts a job answers 200 with its report or
        // 202 with the job; one with an idempotency key may conflict.
        if op["responses"].get("202").is_some() && path != "/v1/jobs/{id}/cancel" {
            assert_eq!(
                op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/Finished",
                "{method} {path}"
            );
            assert_eq!(
                op["responses"]["202"]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/JobView",
                "{method} {path}"
            );
            assert!(has("404"), "{method} {path}: unknown targets");
            assert!(has("403"), "{method} {path}: scope and targets");
        }
        let keyed = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .and_then(|r| r.rsplit('/').next())
            .is_some_and(|name| {
                serde_json::to_string(&doc["components"]["schemas"][name])
                    .is_ok_and(|s| s.contains("idempotency_key"))
            });
        assert!(!keyed || has("409"), "{method} {path}: 409");
    }
    for path in [
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/events",
        "/v1/jobs/{id}/cancel",
    ] {
        let method = if path.ends_with("cancel") {
            "post"
        } else {
            "get"
        };
        assert!(answer(&doc, method, path, "404").is_object(), "{path}");
    }
}

#[test]
fn every_reference_resolves() {
    fn walk(doc: &Value, value: &Value, at: &str) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    let pointer = target.trim_start_matches('#');
                    assert!(
                        doc.pointer(pointer).is_some(),
                        "{at}: {target} does not resolve"
                    );
                }
                for (key, inner) in map {
                    walk(doc, inner, &format!("{at}/{key}"));
                }
            }
            Value::Array(items) => {
                for (i, inner) in items.iter().enumerate() {
                    walk(doc, inner, &format!("{at}/{i}"));
                }
            }
            _ => {}
        }
    }
    let doc = document();
    walk(&doc, &doc, "");
}

#[test]
fn the_limits_the_service_enforces_are_in_the_schema() {
    let doc = document();
    let limit = parameter(&doc, "get", "/v1/jobs", "limit");
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], jobs::MAX_PAGE);
    let limit = parameter(&doc, "get", "/v1/audit", "limit");
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], audit::MAX_RECORDS);
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["Duration"]["pattern"], rules::DURATION);
    assert_eq!(schemas["Selector"]["pattern"], rules::SELECTOR);
    assert_eq!(schemas["Cursor"]["pattern"], rules::CURSOR);
    assert_eq!(schemas["FileMode"]["pattern"], rules::MODE);
    assert_eq!(schemas["HostName"]["minLength"], 1);
    assert_eq!(schemas["RemotePath"]["pattern"], rules::NO_NUL);
    // Every `wait` is a duration, every `targets` a selector, wherever
    // they are.
    for (method, path, op) in operations(&doc) {
        for param in op["parameters"].as_array().into_iter().flatten() {
            let expected = match param["name"].as_str() {
                Some("wait") => "#/components/schemas/Duration",
                Some("targets") => "#/components/schemas/Selector",
                Some("cursor") => "#/components/schemas/Cursor",
                _ => continue,
            };
            assert_eq!(param["schema"]["$ref"], expected, "{method} {path}");
        }
    }
    let text = serde_json::to_string(schemas).unwrap_or_default();
    let targets = text.matches(r#""targets":{"#).count();
    let selectors = text
        .matches(r##""targets":{"$ref":"#/components/schemas/Selector""##)
        .count();
    // JobView's `targets` is what a job ran on, WhoAmI's a token's: not
    // a request's.
    assert_eq!(targets, selectors + 2, "`targets` not a Selector");
    let run = &schemas["RunRequest"]["allOf"][0]["properties"];
    assert_eq!(run["parallel"]["minimum"], 1);
    assert_eq!(run["parallel"]["maximum"], u32::MAX);
    assert_eq!(run["command"]["minItems"], 1);
    assert_eq!(
        run["env"]["propertyNames"]["allOf"][0]["pattern"],
        rules::ENV_NAME
    );
    assert_eq!(
        run["env"]["additionalProperties"]["pattern"],
        rules::NUL_FREE
    );
    assert_eq!(run["command"]["items"]["pattern"], rules::NUL_FREE);
    assert_eq!(
        run["raw"]["anyOf"][0]["allOf"][0]["pattern"],
        rules::NOT_BLANK
    );
    let timeout = serde_json::to_string(&run["timeout"]).unwrap_or_default();
    assert!(timeout.contains(&serde_json::to_string(rules::TIMEOUT).unwrap_or_default()));
    let size = serde_json::to_string(&run["max_output"]).unwrap_or_default();
    assert!(size.contains(&serde_json::to_string(rules::SIZE).unwrap_or_default()));
    // The service reads no local script: not in its document.
    assert!(schemas["ScriptRequest"]["allOf"][0]["properties"]["path"].is_null());
}

/// The service's run policy, with a scripts directory holding `ok.sh`.
fn policy(scripts: &std::path::Path) -> crate::exec::RequestPolicy {
    crate::exec::RequestPolicy {
        local_scripts: false,
        scripts_dir: Some(scripts.to_owned()),
        default_max_output: 1 << 20,
        max_output_limit: 1 << 20,
    }
}

/// Whether the service refuses `body` as a bad request (400): not JSON
/// of the type, a selector with an empty term, or what the type's own
/// checks refuse. (A 404 — an unknown host, a script not there — is a
/// valid request about something missing.)
fn refused<T: serde::de::DeserializeOwned>(
    body: &Value,
    check: impl Fn(&T) -> Result<(), ApiError>,
) -> bool {
    let Ok(request) = crate::run::request_error::from_json::<T>(body.to_string().as_bytes()) else {
        return true;
    };
    let targets = body["targets"].as_str().unwrap_or_default();
    let inventory: Vec<crate::targets::Candidate<'_>> = ["a", "b", "web"]
        .iter()
        .map(|name| crate::targets::Candidate { name, groups: &[] })
        .collect();
    if let Err(e) = crate::targets::select(targets, &inventory)
        && ApiError::targets("targets", &e).status().as_u16() == 400
    {
        return true;
    }
    check(&request).is_err_and(|e| e.status().as_u16() == 400)
}

#[test]
fn the_run_request_schema_takes_what_the_service_takes() {
    let doc = document();
    let schema = component(&doc, "RunRequest");
    let scripts = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(scripts.path().join("ok.sh"), "echo ok\n").unwrap_or_else(|e| panic!("{e}"));
    let policy = policy(scripts.path());
    let check = |r: &crate::exec::RunRequest| runs::exec_of(r, &policy).map(|_| ());
    let samples = [
        json!({"targets": "all", "command": ["ls", "-l"]}),
        json!({"targets": "web", "raw": "uptime"}),
        json!({"targets": "a,!b", "script": {"body": "echo hi", "name": "x.sh", "args": ["1"]}}),
        json!({"targets": "all", "script": {"name": "ok.sh"}}),
        json!({"targets": "all", "script": {"name": "missing.sh"}}),
        json!({"targets": "all", "command": ["x"], "timeout": "30s", "max_output": "512K"}),
        json!({"targets": "all", "command": ["x"], "timeout": " none ", "max_output": 7}),
        json!({"targets": "all", "command": ["x"], "timeout": 30, "parallel": 4294967295u64}),
        json!({"targets": "all", "command": ["x"], "max_output": "2G"}),
        json!({"targets": "all", "command": ["x"], "env": {"A_1": "v"}, "secret_env": {"_T": "s"}}),
        json!({"targets": "all", "command": null, "raw": "x", "script": null, "sudo": null}),
        json!({"targets": "all", "command": ["x"], "sudo": {"user": "pg", "password": "p"}}),
        json!({"targets": "all", "command": ["x"], "idempotency_key": "k", "callback_url": "http://x/"}),
        json!({"targets": "vm9", "command": ["x"]}),
        // Refused.
        json!({"targets": "", "command": ["x"]}),
        json!({"targets": "a,,b", "command": ["x"]}),
        json!({"targets": "all"}),
        json!({"targets": "all", "command": null}),
        json!({"targets": "all", "command": []}),
        json!({"targets": "all", "command": ["x"], "raw": "y"}),
        json!({"targets": "all", "raw": " \t"}),
        json!({"targets": "all", "command": ["x"], "timeout": "0s"}),
        json!({"targets": "all", "command": ["x"], "timeout": 0}),
        json!({"targets": "all", "command": ["x"], "timeout": "soon"}),
        json!({"targets": "all", "command": ["x"], "timeout": 1.5}),
        json!({"targets": "all", "command": ["x"], "max_output": "1Q"}),
        json!({"targets": "all", "command": ["x"], "max_output": -1}),
        json!({"targets": "all", "command": ["x"], "parallel": 0}),
        json!({"targets": "all", "command": ["x"], "parallel": 4294967296u64}),
        json!({"targets": "all", "command": ["x"], "env": {"1A": "x"}}),
        json!({"targets": "all", "command": ["x"], "secret_env": {"A=B": "x"}}),
        json!({"targets": "all", "command": ["x"], "colour": "red"}),
        json!({"targets": "all", "script": {}}),
        json!({"targets": "all", "script": {"path": "/etc/passwd"}}),
        json!({"targets": "all", "script": {"name": "../ok.sh"}}),
        json!({"targets": "all", "script": {"name": ".hidden"}}),
        json!({"targets": "all", "script": {"body": null, "name": null}}),
        json!({"targets": 7, "command": ["x"]}),
        // What the command line cannot carry: a NUL byte anywhere in it,
        // remex's own environment names, a password sudo cannot read.
        json!({"targets": "all", "command": ["x", "a\u{0}b"]}),
        json!({"targets": "all", "raw": "echo \u{0}"}),
        json!({"targets": "all", "command": ["x"], "env": {"A": "\u{0}"}}),
        json!({"targets": "all", "command": ["x"], "secret_env": {"T": "s\u{0}"}}),
        json!({"targets": "all", "command": ["x"], "env": {"REMEX_RUN_ID": "x"}}),
        json!({"targets": "all", "command": ["x"], "secret_env": {"REMEX_": "x"}}),
        json!({"targets": "all", "command": ["x"], "cwd": "/tmp\u{0}"}),
        json!({"targets": "all", "command": ["x"], "sudo": {"user": "r\u{0}"}}),
        json!({"targets": "all", "command": ["x"], "sudo": {"password": "a\nb"}}),
        json!({"targets": "all", "script": {"body": "echo", "args": ["\u{0}"]}}),
        json!({"targets": "all", "script": {"body": "echo", "interpreter": "sh\u{0}"}}),
        json!({"targets": "all", "script": {"body": "#!/bin/sh\u{0}\necho"}}),
        // And what it can.
        json!({"targets": "all", "command": ["x", ""], "env": {"REMEX": "x", "remex_x": "y"}}),
        json!({"targets": "all", "script": {"body": "#!/bin/sh\necho \u{0}", "args": [""]}}),
        json!({"targets": "all", "command": ["x"], "stdin": "\u{0}", "sudo": {"password": "p w"}}),
    ];
    for body in samples {
        let service = !refused(&body, check);
        assert_eq!(schema.is_valid(&body), service, "{body}");
    }
}

#[test]
fn the_other_request_schemas_take_what_the_service_takes() {
    let doc = document();
    let trust = component(&doc, "TrustHostsRequest");
    let check = |r: &crate::service::api::hosts::TrustHostsRequest| r.trust().map(|_| ());
    for body in [
        json!({"targets": "all", "scan": true}),
        json!({"targets": "all", "fingerprints": ["SHA256:abc"], "replace": true}),
        json!({"targets": "all", "scan": true, "fingerprints": []}),
        json!({"targets": "all"}),
        json!({"targets": "all", "scan": false, "fingerprints": []}),
        json!({"targets": "all", "fingerprints": ["MD5:ab"]}),
        json!({"targets": "", "scan": true}),
    ] {
        assert_eq!(trust.is_valid(&body), !refused(&body, check), "{body}");
    }
    let rotate = component(&doc, "RotateKeysRequest");
    let check = |r: &keys::RotateKeysRequest| r.rotation().map(|_| ());
    for body in [
        json!({"targets": "all"}),
        json!({"targets": "all", "type": "ED25519", "name": "k2"}),
        json!({"targets": "all", "type": "ecdsa"}),
        json!({"targets": "all", "type": "Ecdsa", "bits": 384}),
        json!({"targets": "all", "type": "rsa", "bits": 3072}),
        json!({"targets": "all", "type": "rsa", "bits": null}),
        json!({"targets": "all", "type": null, "bits": null}),
        json!({"targets": "all", "bits": 256}),
        json!({"targets": "all", "type": "ed25519", "bits": 256}),
        json!({"targets": "all", "type": "ecdsa", "bits": 255}),
        json!({"targets": "all", "type": "rsa", "bits": 2048}),
        json!({"targets": "all", "type": "rsa", "bits": 16385}),
        json!({"targets": "all", "type": "dsa"}),
        json!({"targets": "all", "name": "x.pub"}),
        json!({"targets": "all", "name": "archive"}),
    ] {
        assert_eq!(rotate.is_valid(&body), !refused(&body, check), "{body}");
    }
    let deploy = component(&doc, "DeployKeyRequest");
    let check = |r: &keys::DeployKeyRequest| keys::key_name(&r.name);
    for body in [
        json!({"targets": "all", "name": "demo", "password": "p"}),
        json!({"targets": "all", "name": "demo.2026"}),
        json!({"targets": "all", "name": ""}),
        json!({"targets": "all", "name": "../x"}),
        json!({"targets": "all", "name": "remex-keys.json"}),
        json!({"targets": "all"}),
        json!({"targets": "all", "name": "demo", "force": true}),
    ] {
        assert_eq!(deploy.is_valid(&body), !refused(&body, check), "{body}");
    }
}

#[test]
fn what_a_finished_job_answers_conforms() {
    use crate::audit::Op;
    use crate::run::{ErrorKind, Failure, HostReport, RunReport, Summary};
    let doc = document();
    let finished = component(&doc, "Finished");
    let results = vec![
        HostReport {
            host: "vm01".into(),
            address: "127.0.0.2".into(),
            port: 22,
            user: "ops".into(),
            duration: Duration::from_millis(7),
            error: None,
            detail: json!({"exit_code": 0, "stdout": "hi\n"}),
        },
        HostReport {
            host: "vm02".into(),
            address: "127.0.0.3".into(),
            port: 22,
            user: "ops".into(),
            duration: Duration::from_millis(9),
            error: Some(Failure::new(ErrorKind::Connect, "refused")),
            detail: json!({"exit_code": null}),
        },
    ];
    let summary = Summary::tally(
        results.iter().map(|r| r.error.as_ref()),
        Duration::from_secs(1),
    );
    let report = RunReport {
        operation: Op::Exec,
        run_id: "r1".into(),
        details: crate::run::NoDetails {},
        results,
        summary,
        audit_error: None,
    };
    let json = serde_json::to_value(&report).unwrap_or_default();
    assert!(finished.is_valid(&json), "{json}");
    assert!(component(&doc, "Report").is_valid(&json), "{json}");
    let job = crate::service::store::JobRecord {
        id: "j1".into(),
        token: "t".into(),
        operation: "exec".into(),
        targets: "all".into(),
        state: crate::service::store::JobState::Error,
        request: "{}".into(),
        report: None,
        error: Some("it could not start".into()),
        created_ms: 1,
        started_ms: None,
        finished_ms: Some(2),
        idempotency_key: None,
        request_hash: String::new(),
        callback_url: None,
        callback_state: None,
        request_id: Some("req-1".into()),
    };
    let view = serde_json::to_value(crate::service::view::JobView::of(&job)).unwrap_or_default();
    assert!(finished.is_valid(&view), "{view}");
    assert!(component(&doc, "JobView").is_valid(&view), "{view}");
    // Not both: a report is no job, a job no report.
    assert!(!component(&doc, "JobView").is_valid(&json));
    assert!(!component(&doc, "Report").is_valid(&view));
}

#[test]
fn listings_and_verdicts_conform() {
    let doc = document();
    let listing = crate::run::Listing {
        operation: "keys.list",
        body: crate::keys::KeyListing {
            key_storage_path: "/keys".into(),
            keys: Vec::new(),
            hosts: Vec::new(),
            rotations_in_progress: BTreeMap::new(),
        },
    };
    let json = serde_json::to_value(&listing).unwrap_or_default();
    assert!(component(&doc, "KeysListing").is_valid(&json), "{json}");
    let verdict = audit::Verified {
        report: crate::audit::VerifyReport {
            files: vec!["/var/log/remex/audit.jsonl".into()],
            records: 3,
            last_seq: 3,
            keyed: false,
            head_seq: Some(3),
            broken: None,
            notes: Vec::new(),
        },
        ok: true,
    };
    let json = serde_json::to_value(&verdict).unwrap_or_default();
    assert!(component(&doc, "Verification").is_valid(&json), "{json}");
}

#[test]
fn parameters_take_what_the_service_takes() {
    let doc = document();
    let wait = validator(&doc, &parameter(&doc, "post", "/v1/runs", "wait")["schema"]);
    for good in ["30s", "1m30s", "0", "500ms", "99999999999d"] {
        assert!(wait.is_valid(&json!(good)), "{good}");
    }
    for bad in ["", "soon", " 30s", "1s1m", "1.5s"] {
        assert!(!wait.is_valid(&json!(bad)), "{bad}");
    }
    let time = component(&doc, "Time");
    let now = std::time::SystemTime::now();
    for text in [
        "2026-11-24T01:02:03Z",
        "2026-11-24T01:02:03.456+02:00",
        "2026-11-24",
        "1h",
        "2d3h",
        "99999d",
        "2026-13-01",
        "2026-02-30",
        "yesterday",
        "",
        "1 h",
    ] {
        assert_eq!(
            time.is_valid(&json!(text)),
            crate::audit::parse_time(text, now).is_ok(),
            "{text:?}"
        );
    }
    let name = component(&doc, "FileName");
    for text in ["app.conf", "..x", "x..", "...", ".", "..", "a/b", ""] {
        let query = crate::service::api::files::UploadQuery {
            path: Some("/srv/".into()),
            name: Some(text.into()),
            ..Default::default()
        };
        assert_eq!(
            name.is_valid(&json!(text)),
            crate::service::api::files::file_name(&query, None).is_ok(),
            "{text:?}"
        );
    }
}
