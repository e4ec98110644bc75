//! `remex serve` for the tests: the real binary on a free loopback port in
//! front of a lab, a real HTTP client, and the assertions on its answers.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value;

use crate::util::{Remex, TestLab, records, send_signal};

/// A running `remex serve`.
pub struct Served {
    pub child: Option<Child>,
    pub addr: SocketAddr,
    pub config: PathBuf,
    pub http: Client,
    /// What the server printed on stderr after "listening".
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Served {
    /// Starts `remex --config CONFIG serve` on a free loopback port.
    pub fn start(config: &Path) -> Served {
        let mut child = Remex::new()
            .arg("--config")
            .arg(config)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .spawn();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            assert!(
                Instant::now() < deadline,
                "remex serve never said where it listens"
            );
            let Some(Ok(line)) = lines.next() else {
                let out = child.wait_with_output().unwrap();
                panic!("remex serve stopped: {:?}", out.status);
            };
            if let Some(rest) = line.split("listening on ").nth(1) {
                let addr = rest.split_whitespace().next().unwrap();
                break addr.parse().unwrap();
            }
        };
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        // The client speaks plain HTTP here; reqwest still wants a TLS
        // provider chosen (the crate's own build uses *ring*).
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
        Served {
            child: Some(child),
            addr,
            config: config.to_owned(),
            http: Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A new token (`remex tokens create`).
    pub fn token(&self, name: &str, scopes: &str, targets: &str) -> String {
        let run = Remex::new()
            .arg("--config")
            .arg(&self.config)
            .args([
                "tokens",
                "create",
                name,
                "--scope",
                scopes,
                "--targets",
                targets,
            ])
            .run()
            .expect_code(0);
        run.stdout().trim().to_owned()
    }

    pub fn get(&self, token: &str, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .send()
            .unwrap()
    }

    pub fn post(&self, token: &str, path: &str, body: &Value) -> Response {
        self.post_raw(
            token,
            path,
            "application/json",
            body.to_string().into_bytes(),
        )
    }

    pub fn post_raw(&self, token: &str, path: &str, content_type: &str, body: Vec<u8>) -> Response {
        self.http
            .post(self.url(path))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .unwrap()
    }

    /// Stops it with SIGTERM and waits; its exit status.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        send_signal(&child, "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "remex serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The JSON of an answer with `status`.
pub fn json_of(response: Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let text = response.text().unwrap();
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts an error answer: `status`, the error shape, `kind`, `field`.
pub fn error_of(response: Response, status: u16, kind: &str, field: Option<&str>) -> String {
    let body = json_of(response, status);
    let error = &body["error"];
    assert_eq!(error["kind"], kind, "{body}");
    assert_eq!(error["field"].as_str(), field, "{body}");
    error["message"].as_str().unwrap().to_owned()
}

/// The number of runs the audit log has `start` records of.
pub fn runs_started(lab: &TestLab) -> usize {
    records(lab)
        .iter()
        .filter(|r| r["event"] == "start")
        .count()
}

/// One Server-Sent Event block (the text between blank lines) as (id,
/// kind, data); `None` for a comment or keep-alive.
pub fn sse_event(block: &str) -> Option<(u64, String, Value)> {
    let (mut id, mut kind, mut data) = (None, None, None);
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("event:") {
            kind = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("data:") {
            data = serde_json::from_str(v.trim()).ok();
        }
    }
    Some((id?, kind?, data?))
}

/// A token and its callback secret (`remex --json tokens create`).
pub fn token_with_secret(config: &Path, name: &str, scopes: &str) -> (String, String) {
    let made = Remex::new()
        .arg("--config")
        .arg(config)
        .args(["--json", "tokens", "create", name, "--scope", scopes])
        .run()
        .expect_code(0)
        .json();
    (
        made["token"].as_str().unwrap().to_owned(),
        made["callback_secret"].as_str().unwrap().to_owned(),
    )
}

/// Hex HMAC-SHA256, computed here independently of the service.
pub fn hmac_hex(key: &str, body: &[u8]) -> String {
    use hmac::{KeyInit as _, Mac as _};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A job's events as (id, kind, data), read until the stream ends.
pub fn sse(
    served: &Served,
    token: &str,
    job: &str,
    after: Option<u64>,
) -> Vec<(u64, String, Value)> {
    let mut request = served
        .http
        .get(served.url(&format!("/v1/jobs/{job}/events")))
        .header(AUTHORIZATION, format!("Bearer {token}"));
    if let Some(after) = after {
        request = request.header("Last-Event-ID", after.to_string());
    }
    let response = request.send().unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().unwrap();
    text.split("\n\n").filter_map(sse_event).collect()
}
