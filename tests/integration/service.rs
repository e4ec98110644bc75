//! `remex serve` as a client sees it: the real binary on a loopback port in
//! front of a lab of real sshd, called with a real HTTP client.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::{Value, json};

use crate::served::{Served, error_of, hmac_hex, json_of, runs_started, sse, token_with_secret};
use crate::util::{
    Remex, TestLab, assert_every_host_ended, assert_no_process_left, assert_verifies,
    processes_matching, records,
};

#[test]
fn a_run_waits_for_its_report_or_answers_202_and_is_followed() {
    let lab = TestLab::new(3);
    let mut served = Served::start(&lab.config());
    let token = served.token("n8n", "exec,script", "all");

    // Waited for: 200 with the CLI's report, one failed host as data.
    let report = json_of(
        served.post(
            &token,
            "/v1/runs?wait=30s",
            &json!({"targets": "all", "command": ["sh", "-c", "echo out-$1; exit $2", "x", "A", "0"]}),
        ),
        200,
    );
    assert_eq!(report["version"], 2);
    assert_eq!(report["operation"], "exec");
    assert_eq!(report["summary"]["ok"], 3, "{report}");
    assert_eq!(report["results"][0]["stdout"], "out-A\n");
    let failing = json_of(
        served.post(
            &token,
            "/v1/runs?wait=30s",
            &json!({"targets": "vm01,vm02", "command": ["false"]}),
        ),
        200,
    );
    assert_eq!(failing["summary"]["failed"], 2);
    assert_eq!(failing["results"][0]["error"]["kind"], "exit");

    // Not waited for: 202 with the job's links; the job ends on its own.
    let accepted = served.post(
        &token,
        "/v1/runs",
        &json!({"targets": "vm01", "command": ["sleep", "0.5"]}),
    );
    assert_eq!(accepted.status().as_u16(), 202);
    let location = accepted.headers()["location"].to_str().unwrap().to_owned();
    let job = accepted.json::<Value>().unwrap();
    assert!(
        matches!(job["state"].as_str(), Some("queued" | "running")),
        "{job}"
    );
    assert_eq!(job["links"]["self"], location.as_str());
    let done = json_of(served.get(&token, &format!("{location}?wait=30s")), 200);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["report"]["summary"]["ok"], 1);
    assert_eq!(done["report"]["run_id"], done["job_id"]);

    // A script, inline.
    let script = json_of(
        served.post(
            &token,
            "/v1/runs?wait=30s",
            &json!({"targets": "vm02", "script": {"body": "#!/bin/sh\necho \"args: $*\"\n", "args": ["a b", "c"]}}),
        ),
        200,
    );
    assert_eq!(script["operation"], "script");
    assert_eq!(script["results"][0]["stdout"], "args: a b c\n");

    // Listed, newest first, with a next link when there may be more.
    let page = json_of(served.get(&token, "/v1/jobs?limit=2"), 200);
    let jobs = page["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0]["operation"], "script");
    let next = page["next"].as_str().unwrap().to_owned();
    let rest = json_of(served.get(&token, &next), 200);
    assert_eq!(rest["jobs"].as_array().unwrap().len(), 2);
    let failed = json_of(served.get(&token, "/v1/jobs?state=failed"), 200);
    assert_eq!(failed["jobs"].as_array().unwrap().len(), 1);

    // Every request is in the audit log, with the token's name.
    assert_eq!(served.stop(), Some(0));
    let all = records(&lab);
    let requests: Vec<_> = all.iter().filter(|r| r["event"] == "request").collect();
    assert!(requests.len() >= 7, "{requests:#?}");
    assert!(
        requests.iter().all(|r| r["workflow"] == "n8n"),
        "{requests:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r["action"] == "POST /v1/runs" && r["status"] == 202)
    );
    let run_records = all.iter().filter(|r| r["run"] == done["job_id"]).count();
    assert_eq!(run_records, 2, "the job's start and end records");
    assert_verifies(&lab);
}

#[test]
fn tokens_and_scopes_deny_by_default() {
    let lab = TestLab::new(3);
    let served = Served::start(&lab.config());
    let odd = served.token("odd-only", "exec", "odd");
    let reader = served.token("reader", "audit:read", "all");
    let started = runs_started(&lab);
    let run = |token: &str, targets: &str| {
        served.post(
            token,
            "/v1/runs?wait=30s",
            &json!({"targets": targets, "command": ["true"]}),
        )
    };

    // No token, a made-up one, a cut one: 401.
    let anonymous = served
        .http
        .post(served.url("/v1/runs"))
        .header(CONTENT_TYPE, "application/json")
        .body("{}")
        .send()
        .unwrap();
    error_of(anonymous, 401, "unauthorized", None);
    error_of(run("rmx_nope", "odd"), 401, "unauthorized", None);
    error_of(run(&odd[..odd.len() - 1], "odd"), 401, "unauthorized", None);

    // A scope it lacks: 403 naming it.
    let message = error_of(run(&reader, "all"), 403, "forbidden", None);
    assert!(message.contains("`exec`"), "{message}");
    let message = error_of(
        served.post(
            &odd,
            "/v1/runs",
            &json!({"targets": "odd", "script": {"body": "true"}}),
        ),
        403,
        "forbidden",
        None,
    );
    assert!(message.contains("`script`"), "{message}");

    // Hosts outside its targets: by name, through `all`, through a glob.
    for targets in ["vm02", "all", "vm0*", "odd,vm02"] {
        let message = error_of(run(&odd, targets), 403, "forbidden", None);
        assert!(message.contains("vm02"), "{targets}: {message}");
    }
    assert_eq!(
        runs_started(&lab),
        started,
        "a denied request ran something"
    );
    // Inside them: allowed.
    let report = json_of(run(&odd, "odd"), 200);
    assert_eq!(report["summary"]["ok"], 2);

    // Revoked and expired tokens: 401.
    Remex::new()
        .arg("--config")
        .arg(lab.config())
        .args(["tokens", "revoke", "odd-only"])
        .run()
        .expect_code(0);
    let message = error_of(run(&odd, "odd"), 401, "unauthorized", None);
    assert!(message.contains("revoked"), "{message}");
    let brief = Remex::new()
        .arg("--config")
        .arg(lab.config())
        .args([
            "tokens",
            "create",
            "brief",
            "--scope",
            "exec",
            "--expires",
            "1s",
        ])
        .run()
        .expect_code(0)
        .stdout()
        .trim()
        .to_owned();
    std::thread::sleep(Duration::from_millis(1100));
    let message = error_of(run(&brief, "all"), 401, "unauthorized", None);
    assert!(message.contains("expired"), "{message}");

    // Denied requests are audited too.
    let denied: Vec<_> = records(&lab)
        .into_iter()
        .filter(|r| r["event"] == "request" && r["status"] == 403)
        .collect();
    assert!(denied.len() >= 6, "{denied:#?}");
    assert!(denied.iter().any(|r| r["workflow"] == "odd-only"));
}

#[test]
fn bad_input_gets_a_4xx_naming_the_field_and_nothing_runs() {
    let lab = TestLab::new(2);
    let small = lab.config_variant(
        "small.yml",
        &[(
            "service:\n",
            "service:\n  limits: { max_json: 64K, max_body: 1M }\n",
        )],
    );
    let served = Served::start(&small);
    let token = served.token("t", "exec,script,files:write,files:read", "all");
    let started = runs_started(&lab);
    let bad = |body: &str, field: Option<&str>| {
        let response = served.post_raw(
            &token,
            "/v1/runs",
            "application/json",
            body.as_bytes().to_vec(),
        );
        error_of(response, 400, "bad_request", field)
    };
    bad("{not json", None);
    bad(
        r#"{"targets": "all", "command": ["ls"], "colour": "red"}"#,
        Some("colour"),
    );
    bad(
        r#"{"targets": "all", "command": ["ls", 3]}"#,
        Some("command[1]"),
    );
    bad(r#"{"targets": 7, "command": ["ls"]}"#, Some("targets"));
    bad(
        r#"{"targets": "all", "command": ["ls"], "timeout": "soon"}"#,
        Some("timeout"),
    );
    bad(r#"{"targets": "all"}"#, Some("command"));
    bad(
        r#"{"targets": "all", "command": ["ls"], "raw": "ls"}"#,
        Some("command"),
    );
    bad(
        r#"{"targets": "all", "command": ["ls"], "env": {"1BAD": "x"}}"#,
        Some("env"),
    );
    // A selector that names no host of the inventory: a valid request
    // about something missing, 404 naming the field.
    let message = error_of(
        served.post(
            &token,
            "/v1/runs",
            &json!({"targets": "vm9", "command": ["ls"]}),
        ),
        404,
        "not_found",
        Some("targets"),
    );
    assert!(message.contains("vm9"), "{message}");
    bad(
        r#"{"targets": "all", "script": {"name": "../etc/passwd"}}"#,
        Some("script.name"),
    );
    let message = error_of(
        served.post_raw(&token, "/v1/runs", "text/plain", b"ls".to_vec()),
        400,
        "bad_request",
        None,
    );
    assert!(message.contains("Content-Type"), "{message}");
    // Over the limits: 413.
    let huge = format!(
        r#"{{"targets": "all", "command": ["echo", "{}"]}}"#,
        "x".repeat(100 * 1024)
    );
    let response = served.post_raw(&token, "/v1/runs", "application/json", huge.into_bytes());
    error_of(response, 413, "too_large", None);
    let response = served.post_raw(
        &token,
        "/v1/files/upload?targets=all&path=/tmp/big.bin",
        "application/octet-stream",
        vec![7u8; 10 << 20],
    );
    error_of(response, 413, "too_large", None);
    // A file name that is a path: refused before anything is written.
    let response = served.post_raw(
        &token,
        "/v1/files/upload?targets=all&path=/tmp/&name=../../etc/passwd",
        "application/octet-stream",
        b"x".to_vec(),
    );
    error_of(response, 400, "bad_request", Some("name"));
    let response = served.get(&token, "/v1/files/download?host=vm09&path=/etc/hostname");
    error_of(response, 404, "not_found", Some("host"));
    let response = served.get(&token, "/v1/jobs?limit=0");
    error_of(response, 400, "bad_request", Some("limit"));
    let response = served.get(&token, "/v1/jobs/nope");
    error_of(response, 404, "not_found", None);
    assert_eq!(runs_started(&lab), started, "a bad request ran something");
}

#[test]
fn events_stream_in_order_resume_and_cancel_stops_the_remote_process() {
    let lab = TestLab::new(2);
    let served = Served::start(&lab.config());
    let token = served.token("ops", "exec", "all");

    // A finished job's events, then the same after event 2.
    let report = json_of(
        served.post(
            &token,
            "/v1/runs?wait=30s",
            &json!({"targets": "all", "command": ["sh", "-c", "echo one; echo two >&2"]}),
        ),
        200,
    );
    let job = report["run_id"].as_str().unwrap().to_owned();
    let events = sse(&served, &token, &job, None);
    let kinds: Vec<&str> = events.iter().map(|(_, kind, _)| kind.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"host_started"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"job_finished"), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "host_finished").count(), 2);
    let ids: Vec<u64> = events.iter().map(|(id, _, _)| *id).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    for host in ["vm01", "vm02"] {
        let of_host: Vec<&str> = events
            .iter()
            .filter(|(_, _, data)| data["host"] == host)
            .map(|(_, kind, data)| match kind.as_str() {
                "output" => data["line"].as_str().unwrap_or("?"),
                other => other,
            })
            .collect();
        assert_eq!(of_host.first(), Some(&"host_started"), "{of_host:?}");
        assert_eq!(of_host.last(), Some(&"host_finished"), "{of_host:?}");
        assert!(
            of_host.contains(&"one") && of_host.contains(&"two"),
            "{of_host:?}"
        );
    }
    let resumed = sse(&served, &token, &job, Some(2));
    assert_eq!(resumed.first().map(|e| e.0), Some(3));
    assert_eq!(resumed.len(), events.len() - 2);

    // A job under way: live events, then a cancel stops its processes.
    let accepted = json_of(
        served.post(
            &token,
            "/v1/runs",
            &json!({"targets": "all", "command": ["sh", "-c", "echo started; sleep 7319"]}),
        ),
        202,
    );
    let job = accepted["job_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    while processes_matching("sleep 7319")
        .iter()
        .filter(|(_, c)| c.trim() == "sleep 7319")
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "the job never started its commands"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let cancelled = served
        .http
        .post(served.url(&format!("/v1/jobs/{job}/cancel")))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .unwrap();
    assert_eq!(cancelled.status().as_u16(), 202);
    let events = sse(&served, &token, &job, None);
    let last = events.last().unwrap();
    assert_eq!(last.1, "job_finished");
    assert_eq!(last.2["state"], "cancelled", "{:?}", last.2);
    assert!(
        events
            .iter()
            .any(|(_, kind, data)| kind == "output" && data["line"] == "started")
    );
    assert_no_process_left(&["sleep 7319"]);
    let done = json_of(served.get(&token, &format!("/v1/jobs/{job}")), 200);
    assert_eq!(done["state"], "cancelled");
    let records = records(&lab);
    for end in assert_every_host_ended(&records, &job, &["vm01", "vm02"]) {
        assert_eq!(end["error_kind"], "cancelled", "{end}");
    }
    // Cancelling again: it has ended.
    let again = served
        .http
        .post(served.url(&format!("/v1/jobs/{job}/cancel")))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .unwrap();
    error_of(again, 409, "conflict", None);
}

#[test]
fn idempotent_retries_return_the_same_job_and_output_is_capped() {
    let lab = TestLab::new(1);
    let capped = lab.config_variant(
        "capped.yml",
        &[("service:\n", "service:\n  limits: { max_output: 4K }\n")],
    );
    let served = Served::start(&capped);
    let token = served.token("ci", "exec", "all");
    let body =
        json!({"targets": "vm01", "command": ["echo", "once"], "idempotency_key": "deploy-42"});
    let first = json_of(served.post(&token, "/v1/runs?wait=30s", &body), 200);
    let again = json_of(served.post(&token, "/v1/runs?wait=30s", &body), 200);
    assert_eq!(first["run_id"], again["run_id"]);
    let other =
        json!({"targets": "vm01", "command": ["echo", "twice"], "idempotency_key": "deploy-42"});
    error_of(
        served.post(&token, "/v1/runs", &other),
        409,
        "conflict",
        None,
    );
    let starts = records(&lab)
        .iter()
        .filter(|r| r["event"] == "start" && r["op"] == "exec")
        .count();
    assert_eq!(starts, 1, "the retry ran again");

    // 1 MiB of output against a 4 KiB cap: cut and marked, no crash.
    let big = json_of(
        served.post(
            &token,
            "/v1/runs?wait=30s",
            &json!({"targets": "vm01", "command": ["sh", "-c", "head -c 1048576 /dev/zero | tr '\\\\0' x | fold -w 100"]}),
        ),
        200,
    );
    let result = &big["results"][0];
    assert_eq!(result["truncated"], true, "{}", result["stderr"]);
    assert!(result["stdout"].as_str().unwrap().len() <= 4096);
    let events = sse(&served, &token, big["run_id"].as_str().unwrap(), None);
    let output: Vec<_> = events
        .iter()
        .filter(|(_, kind, _)| kind == "output")
        .collect();
    assert!(output.len() < 60, "{} output events", output.len());
    assert!(
        output
            .last()
            .is_some_and(|(_, _, data)| data["truncated"] == true)
    );
    json_of(served.get(&token, "/healthz"), 200);
}

#[test]
fn a_killed_service_marks_its_jobs_interrupted_and_sigterm_drains() {
    let lab = TestLab::new(2);
    let mut served = Served::start(&lab.config());
    let token = served.token("ops", "exec", "all");
    let accepted = json_of(
        served.post(
            &token,
            "/v1/runs",
            &json!({"targets": "all", "command": ["sleep", "7320"]}),
        ),
        202,
    );
    let lost = accepted["job_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    while processes_matching("sleep 7320")
        .iter()
        .filter(|(_, c)| c.trim() == "sleep 7320")
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "the job never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    served.kill();
    // Reaped by hand here (what the restart reaps by itself is tested in
    // hostile/exec.rs); the job is not lost.
    for (pid, cmd) in processes_matching("sleep 7320") {
        if cmd.trim() == "sleep 7320" {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
    }
    let mut served = Served::start(&lab.config());
    let job = json_of(served.get(&token, &format!("/v1/jobs/{lost}")), 200);
    assert_eq!(job["state"], "interrupted", "{job}");
    let events = sse(&served, &token, &lost, None);
    assert_eq!(events.last().map(|e| e.1.as_str()), Some("job_finished"));
    assert_verifies(&lab);

    // SIGTERM: a job under way is cancelled, its records written, exit 0.
    let accepted = json_of(
        served.post(
            &token,
            "/v1/runs",
            &json!({"targets": "all", "command": ["sleep", "7321"]}),
        ),
        202,
    );
    let drained = accepted["job_id"].as_str().unwrap().to_owned();
    while processes_matching("sleep 7321")
        .iter()
        .filter(|(_, c)| c.trim() == "sleep 7321")
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline + Duration::from_secs(20),
            "the job never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(served.stop(), Some(0), "{}", served.log.lock().unwrap());
    assert_no_process_left(&["sleep 7321"]);
    let records = records(&lab);
    for end in assert_every_host_ended(&records, &drained, &["vm01", "vm02"]) {
        assert_eq!(end["error_kind"], "cancelled", "{end}");
    }
    assert_verifies(&lab);
    let served = Served::start(&lab.config());
    let job = json_of(served.get(&token, &format!("/v1/jobs/{drained}")), 200);
    assert_eq!(job["state"], "cancelled", "{job}");
}

#[test]
fn files_hosts_keys_and_audit_over_http() {
    let lab = TestLab::new(2);
    let served = Served::start(&lab.config());
    let token = served.token("admin", "admin", "all");
    let srv = lab.path().join("srv");

    // Upload, raw body: to every host, verified, atomically.
    let report = json_of(
        served.post_raw(
            &token,
            &format!(
                "/v1/files/upload?targets=all&path={}/app.conf&mkdir=true&wait=30s",
                srv.display()
            ),
            "application/octet-stream",
            b"listen 8080\n".to_vec(),
        ),
        200,
    );
    assert_eq!(report["operation"], "upload");
    assert_eq!(report["summary"]["ok"], 2, "{report}");
    assert_eq!(
        std::fs::read(srv.join("app.conf")).unwrap(),
        b"listen 8080\n"
    );
    // Multipart, as n8n sends binary data.
    let form = reqwest::blocking::multipart::Form::new()
        .text("targets", "vm01")
        .text("path", format!("{}/", srv.display()))
        .part(
            "file",
            reqwest::blocking::multipart::Part::bytes(b"from a form\n".to_vec())
                .file_name("form.txt"),
        );
    let response = served
        .http
        .post(served.url("/v1/files/upload?wait=30s"))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .multipart(form)
        .send()
        .unwrap();
    let report = json_of(response, 200);
    assert_eq!(report["summary"]["ok"], 1, "{report}");
    assert_eq!(
        std::fs::read(srv.join("form.txt")).unwrap(),
        b"from a form\n"
    );

    // Download: the bytes and their SHA-256.
    let response = served.get(
        &token,
        &format!(
            "/v1/files/download?host=vm02&path={}/app.conf",
            srv.display()
        ),
    );
    assert_eq!(response.status().as_u16(), 200);
    let digest = response.headers()["x-remex-sha256"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        response.headers()["digest"]
            .to_str()
            .unwrap()
            .starts_with("sha-256=")
    );
    let bytes = response.bytes().unwrap();
    assert_eq!(&bytes[..], b"listen 8080\n");
    assert_eq!(digest.len(), 64);
    // A directory comes as a tar stream.
    let response = served.get(
        &token,
        &format!("/v1/files/download?host=vm01&path={}", srv.display()),
    );
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-tar");
    let tar = response.bytes().unwrap();
    assert!(
        tar.windows(8).any(|w| w == b"app.conf"),
        "no app.conf in the tar"
    );
    let missing = served.get(
        &token,
        "/v1/files/download?host=vm01&path=/nonexistent/remex",
    );
    error_of(missing, 404, "not_found", Some("path"));

    // Hosts: the inventory, a check, host-key trust in two steps.
    let hosts = json_of(served.get(&token, "/v1/hosts?targets=odd"), 200);
    assert_eq!(hosts["hosts"].as_array().unwrap().len(), 1);
    let check = json_of(
        served.post(
            &token,
            "/v1/hosts/check?wait=30s",
            &json!({"targets": "all"}),
        ),
        200,
    );
    assert_eq!(check["operation"], "check");
    assert_eq!(check["results"][0]["auth"], true);
    Remex::new()
        .arg("--config")
        .arg(lab.config())
        .args(["hosts", "forget", "vm02"])
        .run()
        .expect_code(0);
    let scan = json_of(
        served.post(
            &token,
            "/v1/hosts/trust?wait=30s",
            &json!({"targets": "vm02", "scan": true}),
        ),
        200,
    );
    let offered = scan["results"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(scan["results"][0]["action"], "offered");
    assert_eq!(offered, lab.host_fingerprint("vm02"));
    let trusted = json_of(
        served.post(
            &token,
            "/v1/hosts/trust?wait=30s",
            &json!({"targets": "vm02", "fingerprints": [offered]}),
        ),
        200,
    );
    assert_eq!(trusted["results"][0]["action"], "pinned", "{trusted}");

    // Keys: list, rotate, revoke.
    let keys = json_of(served.get(&token, "/v1/keys"), 200);
    assert_eq!(keys["operation"], "keys.list");
    let rotated = json_of(
        served.post(
            &token,
            "/v1/keys/rotate?wait=60s",
            &json!({"targets": "vm01", "name": "k2"}),
        ),
        200,
    );
    assert_eq!(rotated["summary"]["ok"], 1, "{rotated}");
    assert!(lab.ssh_logs_in("vm01", &lab.path().join("keys/k2")));

    // Audit: filtered records and verification.
    let audit = json_of(served.get(&token, "/v1/audit?op=upload"), 200);
    assert!(
        audit["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["op"] == "upload")
    );
    let verified = json_of(served.post(&token, "/v1/audit/verify", &json!({})), 200);
    assert_eq!(verified["ok"], true, "{verified}");

    // Who am I, metrics, the OpenAPI document.
    let me = json_of(served.get(&token, "/v1/whoami"), 200);
    assert_eq!(me["token"], "admin");
    let metrics = served.get(&token, "/metrics").text().unwrap();
    assert!(
        metrics.contains("remex_jobs_total{state=\"succeeded\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("remex_connections_open"), "{metrics}");
    let openapi = served
        .http
        .get(served.url("/v1/openapi.json"))
        .send()
        .unwrap();
    let openapi: Value = openapi.json().unwrap();
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(openapi["paths"]["/v1/runs"]["post"].is_object());
}

#[test]
fn a_finished_job_calls_back_with_a_signed_report() {
    let lab = TestLab::new(1);
    // The receiver: refuses the first call (the service tries again),
    // takes the second. The operator allows it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = lab.config_variant(
        "callbacks.yml",
        &[(
            "service:\n",
            &format!("service:\n  callbacks: {{ allow: [\"http://127.0.0.1:{port}/webhook\"] }}\n"),
        )],
    );
    let served = Served::start(&config);
    let (token, secret) = token_with_secret(&config, "n8n", "exec");
    let receiver = std::thread::spawn(move || {
        let mut calls = Vec::new();
        for (status, _) in [("503 Service Unavailable", 0), ("200 OK", 1)] {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                headers.push(line.trim().to_owned());
            }
            let length: usize = headers
                .iter()
                .find_map(|h| {
                    h.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap();
            let mut body = vec![0u8; length];
            std::io::Read::read_exact(&mut reader, &mut body).unwrap();
            std::io::Write::write_all(
                &mut stream,
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
            calls.push((headers, body));
        }
        calls
    });
    let accepted = json_of(
        served.post(
            &token,
            "/v1/runs",
            &json!({"targets": "vm01", "command": ["echo", "done"],
                    "callback_url": format!("http://127.0.0.1:{port}/webhook")}),
        ),
        202,
    );
    let job = accepted["job_id"].as_str().unwrap().to_owned();
    let calls = receiver.join().unwrap();
    let (headers, body) = &calls[1];
    let signature = headers
        .iter()
        .find_map(|h| {
            h.strip_prefix("x-remex-signature: ")
                .or_else(|| h.strip_prefix("X-Remex-Signature: "))
        })
        .unwrap_or_else(|| panic!("no signature in {headers:?}"));
    // `t=UNIX,v1=HEX`: HEX the HMAC of `UNIX.BODY`; UNIX is now.
    let (t, v1) = signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .unwrap_or_else(|| panic!("not t=…,v1=…: {signature}"));
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    assert_eq!(v1, hmac_hex(&secret, &signed));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let t: u64 = t.parse().unwrap();
    assert!(t.abs_diff(now) < 120, "t={t}, now {now}");
    let delivered: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(delivered["job_id"], job.as_str());
    assert_eq!(delivered["state"], "succeeded");
    assert_eq!(delivered["report"]["results"][0]["stdout"], "done\n");
    // The job records how it went.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let view = json_of(served.get(&token, &format!("/v1/jobs/{job}")), 200);
        if view["callback"] == "delivered" {
            break;
        }
        assert!(Instant::now() < deadline, "{view}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `openssl` with `args`, in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let status = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl {args:?}");
}

/// `curl` with `args`: its exit status and output.
fn curl(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn tls_with_client_certificates_admits_only_signed_clients() {
    let lab = TestLab::new(1);
    let dir = lab.path().join("tls");
    std::fs::create_dir_all(&dir).unwrap();
    let ca_ext = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n";
    std::fs::write(dir.join("ca.ext"), ca_ext).unwrap();
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=remex test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    for who in ["server", "client"] {
        openssl(
            &dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{who}.key"),
                "-out",
                &format!("{who}.csr"),
                "-subj",
                &format!("/CN={who}"),
            ],
        );
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{who}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{who}.crt"),
                "-days",
                "2",
                "-extfile",
                &format!("{who}.ext"),
            ],
        );
    }
    let config = lab.config_variant(
        "tls.yml",
        &[(
            "service:\n",
            &format!(
                "service:\n  tls: {{ cert: {d}/server.crt, key: {d}/server.key, client_ca: {d}/ca.crt }}\n",
                d = dir.display()
            ),
        )],
    );
    let served = Served::start(&config);
    let url = format!("https://127.0.0.1:{}/healthz", served.addr.port());
    let ca = dir.join("ca.crt").display().to_string();
    let (code, out) = curl(&["--cacert", &ca, &url]);
    assert_ne!(code, 0, "a client without a certificate got in: {out}");
    let (cert, key) = (
        dir.join("client.crt").display().to_string(),
        dir.join("client.key").display().to_string(),
    );
    let (code, out) = curl(&["--cacert", &ca, "--cert", &cert, "--key", &key, &url]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"ok\""), "{out}");
    // Plain HTTP on the TLS port: refused.
    let (code, _) = curl(&[&format!("http://127.0.0.1:{}/healthz", served.addr.port())]);
    assert_ne!(code, 0);
}

#[test]
fn a_token_over_its_rate_or_its_jobs_at_once_gets_429() {
    let lab = TestLab::new(1);
    let limited = lab.config_variant(
        "limited.yml",
        &[(
            "service:\n",
            "service:\n  limits: { requests_per_minute: 5, jobs_per_token: 1 }\n",
        )],
    );
    let served = Served::start(&limited);
    let token = served.token("busy", "exec", "all");
    let first = json_of(
        served.post(
            &token,
            "/v1/runs",
            &json!({"targets": "vm01", "command": ["sleep", "2"]}),
        ),
        202,
    );
    let message = error_of(
        served.post(
            &token,
            "/v1/runs",
            &json!({"targets": "vm01", "command": ["true"]}),
        ),
        429,
        "rate_limited",
        None,
    );
    assert!(message.contains("jobs under way"), "{message}");
    let _ = first;
    let mut limited = false;
    for _ in 0..6 {
        let response = served.get(&token, "/v1/whoami");
        if response.status().as_u16() == 429 {
            limited = true;
            break;
        }
    }
    assert!(
        limited,
        "no 429 after more requests than requests_per_minute"
    );
}

#[test]
fn one_request_file_runs_on_the_command_line_and_as_the_body_of_post_runs() {
    let lab = TestLab::new(2);
    let scripts = lab.path().join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::write(
        scripts.join("greet.sh"),
        "#!/bin/sh\necho \"hi $1 from $(pwd) $GREETING\"\n",
    )
    .unwrap();
    let config = lab.config_variant(
        "scripts.yml",
        &[(
            "service:\n",
            &format!("service:\n  scripts_dir: {}\n", scripts.display()),
        )],
    );
    let served = Served::start(&config);
    let token = served.token("both", "exec,script", "all");
    let both_ways = |name: &str, request: Value| -> (Value, Value) {
        let file = lab.path().join(name);
        std::fs::write(&file, request.to_string()).unwrap();
        let cli = Remex::new()
            .arg("--config")
            .arg(&config)
            .args(["--json", "exec", "--request"])
            .arg(&file)
            .run()
            .json();
        let body = std::fs::read(&file).unwrap();
        let http = json_of(
            served.post_raw(&token, "/v1/runs?wait=30s", "application/json", body),
            200,
        );
        (cli, http)
    };
    let same = |cli: &Value, http: &Value, fields: &[&str]| {
        assert_eq!(cli["operation"], http["operation"]);
        assert_eq!(cli["summary"]["ok"], http["summary"]["ok"], "{cli}\n{http}");
        for (a, b) in cli["results"]
            .as_array()
            .unwrap()
            .iter()
            .zip(http["results"].as_array().unwrap())
        {
            for field in fields {
                assert_eq!(a[field], b[field], "{field}: {a}\n{b}");
            }
        }
    };

    // Every field the README's example uses, pty and max_output included.
    let (cli, http) = both_ways(
        "command.json",
        json!({
            "targets": "all",
            "command": ["sh", "-c", "cat; printf ' %s %s %s' \"$1\" \"$LC_ALL\" \"$TOKEN\"; pwd", "x", "$(id)"],
            "timeout": "30s",
            "env": {"LC_ALL": "C"}, "secret_env": {"TOKEN": "s3cr3t-value"},
            "cwd": "/tmp", "stdin": "from-stdin",
            "parallel": 1, "pty": false, "max_output": "1M",
        }),
    );
    same(
        &cli,
        &http,
        &["host", "ok", "exit_code", "stdout", "truncated"],
    );
    assert_eq!(
        cli["results"][0]["stdout"], "from-stdin $(id) C [REDACTED]/tmp\n",
        "{cli}"
    );

    // A terminal, and a cap on the output.
    let (cli, http) = both_ways(
        "pty.json",
        json!({"targets": "vm01", "raw": "test -t 1 && echo tty; head -c 3000 /dev/zero | tr '\\0' y",
               "pty": true, "max_output": "1K"}),
    );
    same(&cli, &http, &["ok", "truncated", "stdout"]);
    assert_eq!(http["results"][0]["truncated"], true, "{http}");
    assert!(
        http["results"][0]["stdout"]
            .as_str()
            .is_some_and(|s| s.starts_with("tty") && s.len() == 1024),
        "{http}"
    );

    // A script of the scripts directory, by name, with arguments.
    let (cli, http) = both_ways(
        "script.json",
        json!({"targets": "all", "script": {"name": "greet.sh", "args": ["you"]},
               "cwd": "/tmp", "env": {"GREETING": "hello"}}),
    );
    same(&cli, &http, &["host", "ok", "stdout"]);
    assert_eq!(http["operation"], "script");
    assert_eq!(http["results"][1]["stdout"], "hi you from /tmp hello\n");

    // What only one edge may do is refused there, naming the field.
    let local = lab.path().join("local.json");
    std::fs::write(
        &local,
        json!({"targets": "vm01", "script": {"path": scripts.join("greet.sh")}}).to_string(),
    )
    .unwrap();
    let ran = Remex::new()
        .arg("--config")
        .arg(&config)
        .args(["--json", "exec", "--request"])
        .arg(&local)
        .run()
        .expect_code(0);
    let stdout = ran.json()["results"][0]["stdout"].clone();
    assert!(
        stdout.as_str().is_some_and(|s| s.starts_with("hi  from /")),
        "{stdout}"
    );
    error_of(
        served.post_raw(
            &token,
            "/v1/runs",
            "application/json",
            std::fs::read(&local).unwrap(),
        ),
        400,
        "bad_request",
        Some("script.path"),
    );
    let keyed = lab.path().join("keyed.json");
    std::fs::write(
        &keyed,
        json!({"targets": "vm01", "command": ["true"], "idempotency_key": "k1"}).to_string(),
    )
    .unwrap();
    let refused = Remex::new()
        .arg("--config")
        .arg(&config)
        .args(["exec", "--request"])
        .arg(&keyed)
        .run()
        .expect_code(2);
    assert!(
        refused.stderr().contains("field `idempotency_key`"),
        "{}",
        refused.stderr()
    );
    // A cap past `service.limits.max_output` is cut to it (the document
    // cannot know the limit; a cap is still a cap): the run is taken.
    let over = json!({"targets": "vm01", "command": ["true"], "max_output": "2G"});
    let report = json_of(served.post(&token, "/v1/runs?wait=30s", &over), 200);
    assert_eq!(report["summary"]["ok"], 1, "{report}");
}
