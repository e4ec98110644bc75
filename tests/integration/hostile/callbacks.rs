//! Where a callback may go and what it may tell; what a second service, a
//! slow reader of events, a large download and a bad key name may do.
//!
//! - Callbacks go only to receivers the operator allows, however the URL is
//!   spelled; no redirect is followed; the job tells nothing of what
//!   answered; the signature carries its time (the README's n8n snippet
//!   checks it); a slow receiver holds no shutdown and its callback, like a
//!   crashed service's, is delivered after the next start.
//! - One `remex serve` per store: a second one refuses to start and leaves
//!   the first one's running jobs alone.
//! - A slow SSE reader gets every event, in order, without a gap.
//! - A download over `service.limits.max_download` is 413 and leaves
//!   nothing on disk.
//! - A key name the key directory refuses is 400 naming `name`; no job.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};

use crate::served::{
    Served, error_of, hmac_hex, json_of, runs_started, sse_event, token_with_secret,
};
use crate::util::{Remex, TestLab, processes_matching};

/// How a [`Receiver`] answers the next requests.
#[derive(Clone)]
enum Mode {
    /// An HTTP answer: status, extra header lines, body.
    Answer(u16, Vec<String>, String),
    /// Read the request, never answer, keep the connection open.
    Hang,
    /// Not HTTP: write a banner and close, as an SSH server would.
    Banner(&'static str),
}

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Call {
    /// Header lines, names in lower case (`x-remex-job: …`).
    headers: Vec<String>,
    body: Vec<u8>,
}

impl Call {
    fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}: ");
        self.headers
            .iter()
            .find_map(|h| h.strip_prefix(&prefix).map(str::to_owned))
    }
}

/// A callback receiver on a loopback port: answers as its mode says now,
/// and keeps every request (and counts every connection).
struct Receiver {
    port: u16,
    mode: Arc<Mutex<Mode>>,
    calls: Arc<Mutex<Vec<Call>>>,
    connections: Arc<AtomicUsize>,
}

impl Receiver {
    fn start(mode: Mode) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(mode));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (m, c, n) = (mode.clone(), calls.clone(), connections.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                n.fetch_add(1, Ordering::SeqCst);
                let (m, c) = (m.clone(), c.clone());
                std::thread::spawn(move || serve_one(stream, &m, &c));
            }
        });
        Receiver {
            port,
            mode,
            calls,
            connections,
        }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Waits until it got `n` requests.
    fn wait_for_calls(&self, n: usize) -> Vec<Call> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let calls = self.calls();
            if calls.len() >= n {
                return calls;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver got {} requests, not {n}",
                calls.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn serve_one(mut stream: TcpStream, mode: &Mutex<Mode>, calls: &Mutex<Vec<Call>>) {
    let mode = mode.lock().unwrap().clone();
    if let Mode::Banner(banner) = mode {
        let _ = stream.write_all(banner.as_bytes());
        return;
    }
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end().to_owned();
        if line.is_empty() {
            break;
        }
        let line = match line.split_once(": ") {
            Some((name, value)) => format!("{}: {value}", name.to_ascii_lowercase()),
            None => line,
        };
        headers.push(line);
    }
    let length: usize = headers
        .iter()
        .find_map(|h| h.strip_prefix("content-length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    calls.lock().unwrap().push(Call { headers, body });
    match mode {
        Mode::Answer(status, extra, body) => {
            let mut head = format!(
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            for line in extra {
                head.push_str(&line);
                head.push_str("\r\n");
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body.as_bytes());
        }
        Mode::Hang => std::thread::sleep(Duration::from_secs(3600)),
        Mode::Banner(_) => {}
    }
}

fn ok() -> Mode {
    Mode::Answer(200, Vec::new(), String::new())
}

/// The lab's config with `service:` lines added.
fn config_with(lab: &TestLab, name: &str, service: &str) -> std::path::PathBuf {
    lab.config_variant(name, &[("service:\n", &format!("service:\n{service}"))])
}

/// A run of `echo done` on vm01 calling back to `url`; its job id.
fn job_calling_back(served: &Served, token: &str, url: &str) -> String {
    let report = json_of(
        served.post(
            token,
            "/v1/runs?wait=30s",
            &json!({"targets": "vm01", "command": ["echo", "done"], "callback_url": url}),
        ),
        200,
    );
    report["run_id"].as_str().unwrap().to_owned()
}

/// The job's `callback` once `settled` says so.
fn callback_state(
    served: &Served,
    token: &str,
    job: &str,
    settled: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let view = json_of(served.get(token, &format!("/v1/jobs/{job}")), 200);
        if let Some(state) = view["callback"].as_str()
            && settled(state)
        {
            return state.to_owned();
        }
        assert!(Instant::now() < deadline, "{view}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A run asking to call back to `url`, refused: 400 naming
/// `callback_url` (malformed or not allowed alike: the issue's contract).
/// The message.
fn refused_callback(served: &Served, token: &str, url: &str) -> String {
    error_of(
        served.post(
            token,
            "/v1/runs",
            &json!({"targets": "vm01", "command": ["true"], "callback_url": url}),
        ),
        400,
        "bad_request",
        Some("callback_url"),
    )
}

fn jobs_listed(served: &Served, token: &str) -> usize {
    json_of(served.get(token, "/v1/jobs?limit=500"), 200)["jobs"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn a_callback_goes_only_where_the_operator_allows_however_it_is_spelled() {
    let lab = TestLab::new(1);
    let receiver = Receiver::start(ok());
    let port = receiver.port;

    // By default callbacks are off: 400 naming the field, with the hint.
    let served = Served::start(&lab.config());
    let token = served.token("n8n", "exec", "all");
    for url in [
        format!("http://127.0.0.1:{port}/webhook/x"),
        "http://localhost:22/".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
    ] {
        let message = refused_callback(&served, &token, &url);
        assert!(message.contains("service.callbacks.allow"), "{message}");
    }
    assert_eq!(
        jobs_listed(&served, &token),
        0,
        "a refused request made a job"
    );
    drop(served);

    // A bad entry: the service does not start, naming it.
    let bad = config_with(
        &lab,
        "bad.yml",
        "  callbacks: { allow: [\"localhost:1\", \"http://169.254.169.254/\"] }\n",
    );
    let refused = Remex::new()
        .arg("--config")
        .arg(&bad)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .run();
    assert_ne!(refused.code(), 0);
    assert!(
        refused.stderr().contains("service.callbacks.allow[1]"),
        "{}",
        refused.stderr()
    );

    // One receiver allowed: every other spelling, host, port, scheme or
    // path is refused before a job is made, and nothing reaches it.
    let config = config_with(
        &lab,
        "allow.yml",
        &format!("  callbacks: {{ allow: [\"http://127.0.0.1:{port}/webhook\"] }}\n"),
    );
    let served = Served::start(&config);
    let started = runs_started(&lab);
    for url in [
        format!("http://127.0.0.1:{port}/webhookx"),
        format!("http://127.0.0.1:{port}/"),
        format!("http://127.0.0.1:{port}/webhook/../admin"),
        format!("http://127.0.0.1:{port}/webhook/%2e%2e/admin"),
        format!("https://127.0.0.1:{port}/webhook/x"),
        format!("http://localhost:{port}/webhook/x"),
        format!("http://127.0.0.2:{port}/webhook/x"),
        format!("http://[::1]:{port}/webhook/x"),
        format!("http://[::ffff:127.0.0.1]:{port}/webhook/x"),
        format!("http://127.0.0.1:{port}0/webhook/x"),
        "http://127.0.0.1:22/webhook/x".to_owned(),
        format!("http://127.0.0.1:{port}@127.0.0.1:22/webhook/x"),
        format!("http://user:pw@127.0.0.1:{port}/webhook/x"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[fe80::1]/".to_owned(),
        "http://0.0.0.0:22/".to_owned(),
        format!("file:///etc/passwd#127.0.0.1:{port}/webhook"),
        format!("gopher://127.0.0.1:{port}/webhook"),
        "not a url".to_owned(),
    ] {
        refused_callback(&served, &token, &url);
    }
    assert_eq!(
        jobs_listed(&served, &token),
        0,
        "a refused request made a job"
    );
    assert_eq!(runs_started(&lab), started, "a refused request ran");
    assert_eq!(receiver.connections(), 0, "a refused URL was called");

    // The allowed one, spelled otherwise (case, dot segments, the address
    // as a number), is the same receiver and is called.
    for url in [
        format!("HTTP://127.0.0.1:{port}/webhook/a"),
        format!("http://127.0.0.1:{port}/other/../webhook/b"),
        format!("http://2130706433:{port}/webhook/c"),
    ] {
        let job = job_calling_back(&served, &token, &url);
        assert_eq!(
            callback_state(&served, &token, &job, |s| !s.starts_with("pending")),
            "delivered"
        );
    }
    let paths: Vec<String> = receiver
        .calls()
        .iter()
        .map(|c| c.headers[0].clone())
        .collect();
    assert_eq!(
        paths,
        [
            "POST /webhook/a HTTP/1.1",
            "POST /webhook/b HTTP/1.1",
            "POST /webhook/c HTTP/1.1"
        ]
    );
}

#[test]
fn a_callback_follows_no_redirect_and_the_job_tells_nothing_of_the_receiver() {
    let lab = TestLab::new(1);
    let elsewhere = Receiver::start(ok());
    let redirects = Receiver::start(Mode::Answer(
        307,
        vec![format!(
            "location: http://127.0.0.1:{}/stolen",
            elsewhere.port
        )],
        "SECRET-REDIRECT-BODY".into(),
    ));
    let errors = Receiver::start(Mode::Answer(
        500,
        vec!["x-banner: SECRET-HEADER".into()],
        "root:x:0:0:SECRET-500-BODY".into(),
    ));
    let ssh = Receiver::start(Mode::Banner("SSH-2.0-OpenSSH_9.2p1 SECRET-BANNER\r\n"));
    // Allowed, but nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let allow: Vec<String> = [
        elsewhere.port,
        redirects.port,
        errors.port,
        ssh.port,
        closed_port,
    ]
    .iter()
    .map(|p| format!("\"127.0.0.1:{p}\""))
    .collect();
    let config = config_with(
        &lab,
        "receivers.yml",
        &format!(
            "  callbacks: {{ allow: [{}], attempts: 2, timeout: 5s }}\n",
            allow.join(", ")
        ),
    );
    let served = Served::start(&config);
    let token = served.token("n8n", "exec", "all");
    let url = |port: u16| format!("http://127.0.0.1:{port}/hook");

    let redirected = job_calling_back(&served, &token, &url(redirects.port));
    let failed = job_calling_back(&served, &token, &url(errors.port));
    let banner = job_calling_back(&served, &token, &url(ssh.port));
    let nobody = job_calling_back(&served, &token, &url(closed_port));
    let settled = |s: &str| s.starts_with("failed");
    assert_eq!(
        callback_state(&served, &token, &redirected, settled),
        "failed after 2 attempts: HTTP 307 (redirects are not followed)"
    );
    assert_eq!(
        callback_state(&served, &token, &failed, settled),
        "failed after 2 attempts: HTTP 500"
    );
    // An SSH server and a closed port look the same: no port scanning.
    assert_eq!(
        callback_state(&served, &token, &banner, settled),
        "failed after 2 attempts: no answer"
    );
    assert_eq!(
        callback_state(&served, &token, &nobody, settled),
        "failed after 2 attempts: no answer"
    );
    assert_eq!(redirects.calls().len(), 2);
    assert_eq!(errors.calls().len(), 2);
    assert_eq!(elsewhere.connections(), 0, "a redirect was followed");
    // Nothing the receivers said is anywhere the caller can read.
    for job in [&redirected, &failed, &banner, &nobody] {
        let view = served
            .get(&token, &format!("/v1/jobs/{job}"))
            .text()
            .unwrap();
        let listed = served.get(&token, "/v1/jobs").text().unwrap();
        let events = served
            .get(&token, &format!("/v1/jobs/{job}/events"))
            .text()
            .unwrap();
        for text in [view, listed, events] {
            for secret in ["SECRET", "root:x", "OpenSSH", "stolen", "refused"] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
        }
    }
}

/// The README's n8n Code node snippet, verbatim.
fn readme_snippet() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let after = readme
        .split_once("<!-- verify-callback:")
        .expect("the README has the verify-callback snippet")
        .1;
    let code = after.split_once("```js\n").unwrap().1;
    code.split_once("```").unwrap().0.to_owned()
}

/// Runs the README's snippet with node as n8n's Code node runs it, on what
/// a Webhook node with *Raw Body* makes of `call`; its output, or the
/// error it threw.
fn run_snippet(secret: &str, signature: &str, body: &[u8]) -> Result<Value, String> {
    use base64::Engine as _;
    let snippet = readme_snippet().replace("YOUR_CALLBACK_SECRET", secret);
    let item = json!({
        "json": {"headers": {"x-remex-signature": signature, "content-type": "application/json"},
                 "params": {}, "query": {}, "body": {}},
        "binary": {"data": {"data": base64::engine::general_purpose::STANDARD.encode(body),
                            "mimeType": "application/json"}},
    });
    let program = format!(
        "const item = {item};\n\
         const $input = {{ first: () => item, all: () => [item] }};\n\
         const ctx = {{ helpers: {{ getBinaryDataBuffer: async (i, name) =>\n\
             Buffer.from(item.binary[name].data, 'base64') }} }};\n\
         (async function () {{\n{snippet}\n}}).call(ctx).then(\n\
           (out) => console.log(JSON.stringify(out)),\n\
           (err) => {{ console.error(err.message); process.exit(1); }});\n"
    );
    let out = std::process::Command::new("node")
        .arg("-e")
        .arg(&program)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("node (apt-get install nodejs): {e}"));
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn a_callback_signature_carries_its_time_and_the_readme_snippet_refuses_replays() {
    let lab = TestLab::new(1);
    let receiver = Receiver::start(ok());
    let config = config_with(
        &lab,
        "n8n.yml",
        &format!(
            "  callbacks: {{ allow: [\"localhost:{}\"] }}\n",
            receiver.port
        ),
    );
    let served = Served::start(&config);
    let (token, secret) = token_with_secret(&config, "n8n", "exec");
    // Through a name: `localhost` is resolved, and may be loopback.
    let job = job_calling_back(
        &served,
        &token,
        &format!("http://localhost:{}/webhook-waiting/42", receiver.port),
    );
    let call = receiver.wait_for_calls(1).remove(0);
    assert_eq!(call.header("x-remex-job").as_deref(), Some(job.as_str()));
    let signature = call.header("x-remex-signature").unwrap();
    let (t, v1) = signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .unwrap_or_else(|| panic!("not t=…,v1=…: {signature}"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let t: u64 = t.parse().unwrap();
    assert!(t.abs_diff(now) < 120, "t={t}, now {now}");
    let signed = [format!("{t}.").as_bytes(), &call.body].concat();
    assert_eq!(v1, hmac_hex(&secret, &signed));
    // The body alone is not what is signed: a time cannot be swapped in.
    assert_ne!(v1, hmac_hex(&secret, &call.body));

    // The README's snippet takes it…
    let job_json = run_snippet(&secret, &signature, &call.body).unwrap();
    assert_eq!(job_json[0]["json"]["job_id"], job.as_str());
    assert_eq!(
        job_json[0]["json"]["report"]["results"][0]["stdout"],
        "done\n"
    );
    // …and refuses a replay an hour later (signed right, then), a changed
    // body, another secret, and no signature.
    let old = now - 3600;
    let replay = format!(
        "t={old},v1={}",
        hmac_hex(
            &secret,
            &[format!("{old}.").as_bytes(), &call.body].concat()
        )
    );
    let why = run_snippet(&secret, &replay, &call.body).unwrap_err();
    assert!(why.contains("too old"), "{why}");
    let mut changed = call.body.clone();
    changed.extend_from_slice(b" ");
    let why = run_snippet(&secret, &signature, &changed).unwrap_err();
    assert!(why.contains("bad signature"), "{why}");
    let why = run_snippet("another secret", &signature, &call.body).unwrap_err();
    assert!(why.contains("bad signature"), "{why}");
    assert!(run_snippet(&secret, "", &call.body).is_err());
}

#[test]
fn a_slow_receiver_holds_no_shutdown_and_undelivered_callbacks_survive_restarts() {
    let lab = TestLab::new(1);
    let receiver = Receiver::start(Mode::Hang);
    let config = config_with(
        &lab,
        "slow.yml",
        &format!(
            "  callbacks: {{ allow: [\"127.0.0.1:{}\"], attempts: 3, timeout: 10m }}\n",
            receiver.port
        ),
    );
    let url = format!("http://127.0.0.1:{}/hook", receiver.port);

    // A receiver that never answers: SIGTERM still stops the service
    // promptly (`stop` allows 30 s; a try may take 10 minutes here).
    let mut served = Served::start(&config);
    let token = served.token("n8n", "exec", "all");
    let held = job_calling_back(&served, &token, &url);
    receiver.wait_for_calls(1);
    let stopping = Instant::now();
    assert_eq!(served.stop(), Some(0), "{}", served.log.lock().unwrap());
    assert!(
        stopping.elapsed() < Duration::from_secs(30),
        "the shutdown took {:?}",
        stopping.elapsed()
    );

    // Started again with the receiver answering: delivered.
    receiver.set(ok());
    let mut served = Served::start(&config);
    assert_eq!(
        callback_state(&served, &token, &held, |s| !s.starts_with("pending")),
        "delivered"
    );
    let calls = receiver.wait_for_calls(2);
    assert_eq!(
        calls[1].header("x-remex-job").as_deref(),
        Some(held.as_str())
    );

    // A receiver that refuses, then the service dies (`kill -9`) between
    // tries: the callback is delivered after the next start.
    receiver.set(Mode::Answer(503, Vec::new(), String::new()));
    let crashed = job_calling_back(&served, &token, &url);
    receiver.wait_for_calls(3);
    served.kill();
    receiver.set(ok());
    let served = Served::start(&config);
    assert_eq!(
        callback_state(&served, &token, &crashed, |s| !s.starts_with("pending")),
        "delivered"
    );
    let calls = receiver.wait_for_calls(4);
    assert!(
        calls[3..]
            .iter()
            .any(|c| c.header("x-remex-job").as_deref() == Some(crashed.as_str())),
        "{calls:?}"
    );
}

/// `remex serve` on `config`, expected to refuse to start: its stderr.
fn refused_to_serve(config: &Path) -> String {
    let mut child = Remex::new()
        .arg("--config")
        .arg(config)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .spawn();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            assert!(!status.success(), "a second service started: {stderr}");
            return stderr;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "a second service on the same store kept running: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_second_service_on_the_same_store_refuses_to_start_and_leaves_the_first_ones_jobs() {
    let lab = TestLab::new(1);
    let mut first = Served::start(&lab.config());
    let token = first.token("ops", "exec", "all");
    let flag = lab.path().join("go-7333");
    let accepted = json_of(
        first.post(
            &token,
            "/v1/runs",
            &json!({"targets": "vm01", "raw": format!(
                "while [ ! -e {} ]; do sleep 0.1; done; echo done-7333", flag.display())}),
        ),
        202,
    );
    let job = accepted["job_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while processes_matching("go-7333").is_empty() {
        assert!(Instant::now() < deadline, "the job never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = first.child.as_ref().unwrap().id();

    // The same store, and the same store through a symlinked directory.
    let store = lab.path().join("service");
    let link = lab.path().join("service-link");
    std::os::unix::fs::symlink(&store, &link).unwrap();
    let text = std::fs::read_to_string(lab.config()).unwrap();
    let through_link = lab.config_variant(
        "through-link.yml",
        &[(&store.display().to_string(), &link.display().to_string())],
    );
    assert_ne!(std::fs::read_to_string(&through_link).unwrap(), text);
    for config in [lab.config(), through_link] {
        let said = refused_to_serve(&config);
        assert!(
            said.contains(&format!("in use by remex serve, pid {pid} on ")),
            "{said}"
        );
        assert!(said.contains(" since "), "{said}");
    }

    // The first one's job was not taken for a crash's: it runs on, ends.
    let view = json_of(first.get(&token, &format!("/v1/jobs/{job}")), 200);
    assert_eq!(view["state"], "running", "{view}");
    std::fs::write(&flag, b"").unwrap();
    let view = json_of(first.get(&token, &format!("/v1/jobs/{job}?wait=60s")), 200);
    assert_eq!(view["state"], "succeeded", "{view}");
    assert_eq!(view["report"]["results"][0]["stdout"], "done-7333\n");

    // Once it is gone (however it went), the store is free again.
    first.kill();
    let again = Served::start(&lab.config());
    let view = json_of(again.get(&token, &format!("/v1/jobs/{job}")), 200);
    assert_eq!(view["state"], "succeeded", "{view}");
}

/// Reads a job's SSE stream from `response`: every (id, kind, line) until
/// the stream ends; `pause` before each read of `chunk` bytes.
fn read_events(
    mut response: reqwest::blocking::Response,
    chunk: usize,
    pause: impl Fn(usize) -> Duration,
) -> Vec<(u64, String, Value)> {
    let mut events = Vec::new();
    let mut pending = String::new();
    let mut buf = vec![0u8; chunk];
    let mut reads = 0;
    loop {
        std::thread::sleep(pause(reads));
        reads += 1;
        let n = response.read(&mut buf).unwrap();
        if n == 0 {
            return events;
        }
        pending.push_str(std::str::from_utf8(&buf[..n]).unwrap());
        while let Some((block, rest)) = pending.split_once("\n\n") {
            events.extend(sse_event(block));
            pending = rest.to_owned();
        }
    }
}

/// Every id from `first` to the last, once, in order; the last is
/// `job_finished`; the output lines are 1..=lines in order.
fn assert_complete(events: &[(u64, String, Value)], first: u64, lines: u64, who: &str) {
    let ids: Vec<u64> = events.iter().map(|e| e.0).collect();
    let last = *ids.last().unwrap_or_else(|| panic!("{who}: no events"));
    let gaps: Vec<_> = ids
        .windows(2)
        .filter(|w| w[1] != w[0] + 1)
        .take(5)
        .collect();
    assert!(
        ids[0] == first && gaps.is_empty(),
        "{who}: {} events, ids from {} to {last}, first gaps {gaps:?}",
        ids.len(),
        ids[0]
    );
    assert_eq!(events.last().unwrap().1, "job_finished", "{who}");
    let output: Vec<u64> = events
        .iter()
        .filter(|e| e.1 == "output")
        .map(|e| e.2["line"].as_str().unwrap().parse().unwrap())
        .collect();
    let want_from = lines + 1 - output.len() as u64;
    assert!(
        output.iter().copied().eq(want_from..=lines),
        "{who}: output lines out of order or missing ({} of {lines})",
        output.len()
    );
}

#[test]
fn a_slow_event_reader_gets_every_event_in_order_without_a_gap() {
    let lab = TestLab::new(1);
    // The slow reader leaves its answer unread until the job ends, which on
    // a loaded machine takes longer than the default `idle_timeout` (an
    // answer nobody reads for that long is closed: see `hostile/edge.rs`).
    let config = config_with(
        &lab,
        "many.yml",
        "  limits: { max_output: 16M, idle_timeout: 10m }\n",
    );
    let served = Served::start(&config);
    let token = served.token("ops", "exec", "all");
    let lines: u64 = 100_000;
    let accepted = json_of(
        served.post(
            &token,
            "/v1/runs",
            &json!({"targets": "vm01", "command": ["seq", "1", lines.to_string()]}),
        ),
        202,
    );
    let job = accepted["job_id"].as_str().unwrap().to_owned();
    let open = |after: Option<u64>| {
        let mut request = served
            .http
            .get(served.url(&format!("/v1/jobs/{job}/events")))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .timeout(Duration::from_secs(600));
        if let Some(after) = after {
            request = request.header("Last-Event-ID", after.to_string());
        }
        let response = request.send().unwrap();
        assert_eq!(response.status().as_u16(), 200);
        response
    };
    // Both subscribe while the job runs: one reads at once, the other
    // reads nothing until the job has ended (the live channel and the
    // socket buffers overflow meanwhile), then 4 KiB at a time.
    let (fast, slow) = (open(None), open(None));
    let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slow_reader = {
        let ended = ended.clone();
        std::thread::spawn(move || {
            read_events(slow, 4096, move |reads| {
                while reads == 0 && !ended.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                if reads < 200 {
                    Duration::from_millis(5)
                } else {
                    Duration::ZERO
                }
            })
        })
    };
    let fast_events = read_events(fast, 64 * 1024, |_| Duration::ZERO);
    let view = json_of(
        served.get(&token, &format!("/v1/jobs/{job}?wait=120s")),
        200,
    );
    assert_eq!(view["state"], "succeeded", "{view}");
    ended.store(true, Ordering::SeqCst);
    let slow_events = slow_reader.join().unwrap();
    assert_complete(&fast_events, 1, lines, "the fast reader");
    assert_complete(&slow_events, 1, lines, "the slow reader");
    assert_eq!(slow_events.len() as u64, lines + 3);
    // Resuming after an event: the rest, from the next one.
    let resumed = read_events(open(Some(50_000)), 64 * 1024, |_| Duration::ZERO);
    assert_complete(&resumed, 50_001, lines, "the resumed reader");
}

#[test]
fn a_download_over_the_limit_is_413_and_leaves_nothing_on_disk() {
    let lab = TestLab::new(1);
    let config = config_with(&lab, "small.yml", "  limits: { max_download: 64K }\n");
    let served = Served::start(&config);
    let token = served.token("reader", "files:read", "all");
    let dir = lab.path().join("downloads");
    std::fs::create_dir_all(dir.join("tree")).unwrap();
    std::fs::write(dir.join("small.bin"), vec![7u8; 60 * 1024]).unwrap();
    std::fs::write(dir.join("big.bin"), vec![7u8; 1024 * 1024]).unwrap();
    // 100 GiB that take no disk: refused from its size, before its bytes.
    let sparse = std::fs::File::create(dir.join("sparse.bin")).unwrap();
    sparse.set_len(100 << 30).unwrap();
    for i in 0..3 {
        std::fs::write(dir.join(format!("tree/part{i}")), vec![b'x'; 30 * 1024]).unwrap();
    }
    let spool = lab.path().join("service/uploads");
    let get = |path: &Path| {
        served.get(
            &token,
            &format!("/v1/files/download?host=vm01&path={}", path.display()),
        )
    };
    for over in ["big.bin", "sparse.bin", "tree"] {
        let message = error_of(get(&dir.join(over)), 413, "too_large", Some("path"));
        assert!(message.contains("max_download"), "{message}");
        let left: Vec<_> = std::fs::read_dir(&spool).unwrap().collect();
        assert!(left.is_empty(), "{over}: the spool keeps {left:?}");
    }
    // Under the limit: the bytes, their digest; a small tree as a tar.
    let response = get(&dir.join("small.bin"));
    assert_eq!(response.status().as_u16(), 200);
    let digest = response.headers()["x-remex-sha256"]
        .to_str()
        .unwrap()
        .to_owned();
    let bytes = response.bytes().unwrap();
    assert_eq!(bytes.len(), 60 * 1024);
    assert_eq!(
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
        digest
    );
    std::fs::remove_file(dir.join("tree/part2")).unwrap();
    let response = get(&dir.join("tree"));
    assert_eq!(response.status().as_u16(), 200);
    let tar = response.bytes().unwrap();
    let listing = lab.path().join("tree.tar");
    std::fs::write(&listing, &tar).unwrap();
    let out = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&listing)
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && names.contains("tree/part0") && names.contains("tree/part1"),
        "{names}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&spool).unwrap().next().is_some() {
        assert!(Instant::now() < deadline, "the spool was not emptied");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_key_name_the_key_directory_refuses_is_400_naming_it_and_makes_no_job() {
    let lab = TestLab::new(1);
    let served = Served::start(&lab.config());
    let token = served.token("keys", "keys", "all");
    let started = runs_started(&lab);
    let long = "k".repeat(300);
    for name in [
        "",
        "../x",
        "a/b",
        ".hidden",
        "x y",
        "k.pub",
        "archive",
        "remex-keys.json",
        "é",
        "a\u{0}b",
        long.as_str(),
    ] {
        for (path, body) in [
            ("/v1/keys/deploy", json!({"targets": "vm01", "name": name})),
            ("/v1/keys/rotate", json!({"targets": "vm01", "name": name})),
            ("/v1/keys/revoke", json!({"targets": "vm01", "name": name})),
        ] {
            let message = error_of(
                served.post(&token, &format!("{path}?wait=30s"), &body),
                400,
                "bad_request",
                Some("name"),
            );
            assert!(
                message.contains("not a key name"),
                "{path} {name:?}: {message}"
            );
            assert!(!message.contains(&long), "the message repeats the name");
        }
    }
    assert_eq!(
        jobs_listed(&served, &token),
        0,
        "a refused request made a job"
    );
    assert_eq!(runs_started(&lab), started, "a refused request ran");
}
