//! The OpenAPI document is the contract: the real `remex serve` answers
//! only what its own `/v1/openapi.json` says each operation answers, in
//! the shapes it says; and what the document promises about odd inputs
//! (empty query values, `Last-Event-ID`, whole numbers written `2.0`,
//! `Allow` on a 405) holds. Schemathesis (`tests/schemathesis/run.sh`)
//! generates thousands of requests from the document; these are the
//! cases a reader can see, each a class.

use reqwest::Method;
use reqwest::blocking::Response;
use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};

use crate::served::{Served, error_of, json_of};
use crate::util::TestLab;

/// The document the service serves.
fn document(served: &Served) -> Value {
    let response = served
        .http
        .get(served.url("/v1/openapi.json"))
        .send()
        .unwrap();
    json_of(response, 200)
}

/// Asserts that `response` (to `method` on the document's `template`) has
/// a status the document lists for that operation, and that an error is
/// in the error shape with a `kind`; returns the status.
fn documented(doc: &Value, method: &str, template: &str, response: Response) -> u16 {
    let status = response.status().as_u16();
    let text = response.text().unwrap();
    let answers = &doc["paths"][template][method]["responses"];
    assert!(
        answers.is_object(),
        "{method} {template} is not in the document"
    );
    assert!(
        answers.get(status.to_string()).is_some(),
        "{method} {template} answered {status}, which its document does not list: {text}"
    );
    if status >= 400 {
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert!(body["error"]["kind"].is_string(), "{text}");
        assert!(body["error"]["message"].is_string(), "{text}");
    }
    status
}

#[test]
fn every_answer_is_one_the_document_lists_for_its_operation() {
    let lab = TestLab::new(1);
    let served = Served::start(&lab.config());
    let doc = document(&served);
    let admin = served.token("admin", "admin", "all");
    let narrow = served.token("narrow", "exec", "vm01");
    let send = |token: &str, method: Method, path: &str, body: Option<Value>| {
        let mut request = served
            .http
            .request(method, served.url(path))
            .header(AUTHORIZATION, format!("Bearer {token}"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().unwrap()
    };
    let job = json_of(
        served.post(
            &admin,
            "/v1/runs?wait=30s",
            &json!({"targets": "vm01", "command": ["true"]}),
        ),
        200,
    )["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = |body: Value| Some(body);
    // (token, method, document template, concrete path, body): every
    // class of answer — taken, waited for, refused for its shape, its
    // scope, what it names, a conflict, no token — on every operation.
    let cases: Vec<(&str, Method, &str, String, Option<Value>)> = vec![
        ("", Method::GET, "/v1/jobs", "/v1/jobs".into(), None),
        (
            "bad",
            Method::POST,
            "/v1/runs",
            "/v1/runs".into(),
            run(json!({})),
        ),
        (
            &admin,
            Method::GET,
            "/v1/jobs",
            "/v1/jobs?limit=0".into(),
            None,
        ),
        (
            &admin,
            Method::GET,
            "/v1/jobs",
            "/v1/jobs?cursor=x".into(),
            None,
        ),
        (
            &narrow,
            Method::GET,
            "/v1/jobs",
            "/v1/jobs?actor=admin".into(),
            None,
        ),
        (
            &admin,
            Method::GET,
            "/v1/jobs/{id}",
            format!("/v1/jobs/{job}"),
            None,
        ),
        (
            &admin,
            Method::GET,
            "/v1/jobs/{id}",
            "/v1/jobs/nope".into(),
            None,
        ),
        (
            &admin,
            Method::POST,
            "/v1/jobs/{id}/cancel",
            format!("/v1/jobs/{job}/cancel"),
            None,
        ),
        (
            &admin,
            Method::POST,
            "/v1/jobs/{id}/cancel",
            "/v1/jobs/nope/cancel".into(),
            None,
        ),
        (
            &admin,
            Method::GET,
            "/v1/jobs/{id}/events",
            "/v1/jobs/nope/events".into(),
            None,
        ),
        (
            &admin,
            Method::POST,
            "/v1/runs",
            "/v1/runs".into(),
            run(json!({"targets": "vm01", "command": ["true"]})),
        ),
        (
            &admin,
            Method::POST,
            "/v1/runs",
            "/v1/runs?wait=30s".into(),
            run(json!({"targets": "vm01", "raw": "false"})),
        ),
        (
            &admin,
            Method::POST,
            "/v1/runs",
            "/v1/runs".into(),
            run(json!({"targets": "vm9", "command": ["true"]})),
        ),
        (
            &admin,
            Method::POST,
            "/v1/runs",
            "/v1/runs".into(),
            run(json!({"targets": "vm01", "command": []})),
        ),
        (
            &admin,
            Method::POST,
            "/v1/runs",
            "/v1/runs".into(),
            run(json!({"targets": "vm01", "script": {"name": "x.sh"}})),
        ),
        (
            &admin,
            Method::POST,
            "/v1/runs",
            "/v1/runs".into(),
            run(
                json!({"targets": "vm01", "command": ["true"], "callback_url": "http://127.0.0.1:9/x"}),
            ),
        ),
        (
            &narrow,
            Method::POST,
            "/v1/runs",
            "/v1/runs".into(),
            run(json!({"targets": "all", "raw": "true"})),
        ),
        (
            &narrow,
            Method::POST,
            "/v1/runs",
            "/v1/runs".into(),
            run(json!({"targets": "vm01", "script": {"body": "true"}})),
        ),
        (
            &admin,
            Method::POST,
            "/v1/runs",
            "/v1/runs".into(),
            run(json!({"targets": "vm01", "command": ["true"], "idempotency_key": "k"})),
        ),
        (
            &admin,
            Method::POST,
            "/v1/runs",
            "/v1/runs".into(),
            run(json!({"targets": "vm01", "command": ["false"], "idempotency_key": "k"})),
        ),
        (
            &admin,
            Method::GET,
            "/v1/hosts",
            "/v1/hosts?targets=nothing*".into(),
            None,
        ),
        (
            &admin,
            Method::GET,
            "/v1/hosts",
            "/v1/hosts?targets=a,,b".into(),
            None,
        ),
        (&narrow, Method::GET, "/v1/hosts", "/v1/hosts".into(), None),
        (
            &admin,
            Method::POST,
            "/v1/hosts/check",
            "/v1/hosts/check?wait=30s".into(),
            run(json!({"targets": "vm01"})),
        ),
        (
            &admin,
            Method::POST,
            "/v1/hosts/trust",
            "/v1/hosts/trust".into(),
            run(json!({"targets": "vm01"})),
        ),
        (
            &admin,
            Method::POST,
            "/v1/keys/revoke",
            "/v1/keys/revoke".into(),
            run(json!({"targets": "vm01", "name": "x.pub"})),
        ),
        (
            &admin,
            Method::POST,
            "/v1/keys/rotate",
            "/v1/keys/rotate".into(),
            run(json!({"targets": "vm01", "type": "rsa", "bits": 1024})),
        ),
        (&narrow, Method::GET, "/v1/keys", "/v1/keys".into(), None),
        (
            &admin,
            Method::GET,
            "/v1/files/download",
            "/v1/files/download?host=vm9&path=/etc/hostname".into(),
            None,
        ),
        (
            &admin,
            Method::GET,
            "/v1/files/download",
            "/v1/files/download?host=vm01&path=/nonexistent/remex".into(),
            None,
        ),
        (
            &admin,
            Method::GET,
            "/v1/files/download",
            "/v1/files/download?host=vm01&path=/etc/hostname".into(),
            None,
        ),
        (
            &admin,
            Method::GET,
            "/v1/audit",
            "/v1/audit?since=soon".into(),
            None,
        ),
        (
            &narrow,
            Method::POST,
            "/v1/audit/verify",
            "/v1/audit/verify".into(),
            None,
        ),
        (&admin, Method::GET, "/v1/whoami", "/v1/whoami".into(), None),
        (&admin, Method::GET, "/metrics", "/metrics".into(), None),
    ];
    let mut statuses = std::collections::BTreeSet::new();
    for (token, method, template, path, body) in cases {
        let response = send(token, method.clone(), &path, body);
        let method = method.as_str().to_lowercase();
        statuses.insert(documented(&doc, &method, template, response));
    }
    // The sweep saw every class it means to (a case that stopped
    // reaching its class would hide an undocumented answer).
    for status in [200, 202, 400, 401, 403, 404, 409] {
        assert!(statuses.contains(&status), "no {status} in {statuses:?}");
    }
}

#[test]
fn what_the_document_says_of_odd_inputs_holds() {
    let lab = TestLab::new(1);
    let served = Served::start(&lab.config());
    let token = served.token("admin", "admin", "all");

    // An optional query parameter given empty is left out
    // (`allowEmptyValue`): as n8n sends an expression that came out empty.
    let all = json_of(served.get(&token, "/v1/hosts"), 200);
    assert_eq!(json_of(served.get(&token, "/v1/hosts?targets="), 200), all);
    json_of(
        served.get(&token, "/v1/jobs?limit=&cursor=&state=&actor="),
        200,
    );
    json_of(
        served.get(&token, "/v1/audit?since=&until=&limit=&failed="),
        200,
    );
    let body = json!({"targets": "vm01", "command": ["true"]});
    let job = json_of(served.post(&token, "/v1/runs?wait=", &body), 202);
    // A required one given empty is missing.
    error_of(
        served.get(&token, "/v1/files/download?host=&path=/etc/hostname"),
        400,
        "bad_request",
        None,
    );

    // A wait past `service.limits.max_wait` is cut to it (the document
    // cannot know the limit): the run is answered, not refused.
    let waited = served.post(&token, "/v1/runs?wait=1000d", &body);
    assert!(matches!(waited.status().as_u16(), 200 | 202), "{waited:?}");

    // `Last-Event-ID`: an event's id, or the stream refuses to guess.
    let events = format!("/v1/jobs/{}/events", job["job_id"].as_str().unwrap());
    let resume = |value: &str| {
        served
            .http
            .get(served.url(&events))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header("Last-Event-ID", value)
            .send()
            .unwrap()
    };
    for bad in [
        "",
        "abc",
        "-1",
        "1.0",
        "0x10",
        "9223372036854775808",
        "99999999999999999999",
    ] {
        error_of(resume(bad), 400, "bad_request", Some("Last-Event-ID"));
    }
    let after_one = resume("1");
    assert_eq!(after_one.status().as_u16(), 200);
    let text = after_one.text().unwrap();
    assert!(!text.contains("id: 1\n"), "event 1 sent again: {text}");
    assert!(text.contains("job_finished"), "{text}");

    // A whole number is one with or without `.0` (JSON's numbers, and the
    // document's `integer`); a fraction is refused naming its field.
    let report = json_of(
        served.post(
            &token,
            "/v1/runs?wait=30s",
            &json!({"targets": "vm01", "command": ["true"], "parallel": 1.0,
                    "max_output": 1024.0, "timeout": 30.0}),
        ),
        200,
    );
    assert_eq!(report["summary"]["ok"], 1, "{report}");
    for (field, value) in [
        ("parallel", json!(1.5)),
        ("max_output", json!(0.5)),
        ("timeout", json!(2.5)),
    ] {
        let mut body = json!({"targets": "vm01", "command": ["true"]});
        body[field] = value;
        error_of(
            served.post(&token, "/v1/runs", &body),
            400,
            "bad_request",
            Some(field),
        );
    }

    // 405 says which methods the path takes.
    for (method, path, allowed) in [
        (Method::DELETE, "/v1/runs", "POST"),
        (Method::PUT, "/v1/jobs/x", "GET"),
        (Method::GET, "/v1/keys/rotate", "POST"),
    ] {
        let response = served
            .http
            .request(method.clone(), served.url(path))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .send()
            .unwrap();
        let allow = response
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            allow.split(',').any(|m| m.trim() == allowed),
            "{method} {path}: Allow {allow:?}"
        );
        error_of(response, 405, "method_not_allowed", None);
    }
}
