//! The edge of `remex serve` attacked: requests without a token in floods,
//! to unique paths and with odd bytes; slow and idle connections; denied
//! floods and the audit log's size; `kill -9` right after answers; every
//! class of error and its shape; audit reads beyond a token's hosts.
//!
//! Requests here go over raw TCP where a client library would clean them
//! up (odd bytes, slow heads, a body that stops), from chosen loopback
//! source addresses where a test needs clients of their own.

use std::io::{ErrorKind as IoKind, Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::{Value, json};

use crate::served::{Served, error_of, json_of};
use crate::util::{TestLab, log_path, records};

/// A TCP connection to `addr` from the loopback address `from`.
fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: IpAddr = from.parse().unwrap();
    socket.bind(&SocketAddr::new(local, 0).into()).unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
}

/// An answer: status, headers (lower-case names), body.
type Answer = (u16, Vec<(String, String)>, Vec<u8>);

/// One answer read from `stream`: status, headers (lower-case names), body.
/// `None` when the server closed the connection first.
fn read_answer(stream: &mut TcpStream) -> Option<Answer> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(0) => return None,
            Ok(_) => head.push(byte[0]),
            Err(e) if e.kind() == IoKind::ConnectionReset => return None,
            Err(e) => panic!("reading an answer: {e}"),
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; length];
    stream.read_exact(&mut body).ok()?;
    Some((status, headers, body))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Asserts an answer is an error in the one shape, of `kind`.
fn assert_error_shape(status: u16, headers: &[(String, String)], body: &[u8], kinds: &[&str]) {
    let text = String::from_utf8_lossy(body);
    assert_eq!(
        header(headers, "content-type"),
        Some("application/json"),
        "{status}: {text}"
    );
    let json: Value = serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {text}"));
    let kind = json["error"]["kind"].as_str().unwrap_or_default();
    assert!(kinds.contains(&kind), "{status}: {json}");
    assert!(json["error"]["message"].is_string(), "{json}");
}

/// A one-host lab, `remex serve` on it with `service.limits` set to
/// `limits` (YAML flow mapping), and an `admin` token.
fn serve_with(limits: &str) -> (TestLab, Served, String) {
    let lab = TestLab::new(1);
    let config = lab.config_variant(
        "edge.yml",
        &[("service:\n", &format!("service:\n  limits: {limits}\n"))],
    );
    let served = Served::start(&config);
    let admin = served.token("admin", "admin", "all");
    (lab, served, admin)
}

/// The service's `remex_http_connections_open` gauge.
fn open_connections(served: &Served, token: &str) -> f64 {
    let metrics = served.get(token, "/metrics").text().unwrap();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("remex_http_connections_open "))
        .unwrap_or_else(|| panic!("no connection gauge:\n{metrics}"))
        .parse()
        .unwrap()
}

/// The server's resident memory, in KiB.
fn rss_kib(served: &Served) -> u64 {
    let pid = served.child.as_ref().unwrap().id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// The request line's target for the `i`th path of a flood: unique, and
/// every few with bytes that break naive label or log writers.
fn odd_path(i: usize) -> Vec<u8> {
    let unique = format!("{i:x}-{:016x}", rand::random::<u64>());
    match i % 8 {
        0 => format!("/{unique}").into_bytes(),
        1 => format!("/v1/jobs/{unique}\"\\").into_bytes(),
        2 => format!("/%22%5C%0A%00%FF/{unique}").into_bytes(),
        3 => [b"/\xc3\xa9\xff".as_slice(), unique.as_bytes()].concat(),
        4 => format!("/{unique}/{}", "x".repeat(6000)).into_bytes(),
        5 => format!("/v1/jobs/{unique}/../../../etc/passwd").into_bytes(),
        6 => format!("/metrics?{unique}=\"}}").into_bytes(),
        _ => format!("/v1/{{id}}/{unique}%7B%7D").into_bytes(),
    }
}

#[test]
fn a_flood_without_a_token_to_unique_and_odd_paths_costs_nothing_that_grows() {
    let (lab, served, admin) = serve_with("{ denied_audit_interval: 5s }");
    let log = log_path(&lab);
    let flood = |n: usize, first: usize| {
        // Answers by status; `refused` counts requests hyper itself threw
        // out (a request line it cannot parse) and the connections it
        // closed after them.
        let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
        let mut refused = 0;
        let mut stream = connect_from("127.0.0.7", served.addr);
        for i in first..first + n {
            let mut request = b"GET ".to_vec();
            request.extend(odd_path(i));
            request.extend(b" HTTP/1.1\r\nHost: remex\r\n\r\n");
            stream.write_all(&request).unwrap();
            match read_answer(&mut stream) {
                Some((status, headers, body)) => {
                    if status == 400 && body.is_empty() {
                        // hyper's own refusal of a malformed request line.
                        refused += 1;
                    } else {
                        assert_error_shape(
                            status,
                            &headers,
                            &body,
                            &["unauthorized", "rate_limited"],
                        );
                        *by_status.entry(status).or_default() += 1;
                    }
                    if header(&headers, "connection") == Some("close") || body.is_empty() {
                        stream = connect_from("127.0.0.7", served.addr);
                    }
                }
                None => {
                    refused += 1;
                    stream = connect_from("127.0.0.7", served.addr);
                }
            }
        }
        (by_status, refused)
    };

    // Warm up, then measure what 6,000 more cost.
    let (warm, _) = flood(300, 0);
    let rss_before = rss_kib(&served);
    let log_before = std::fs::metadata(&log).unwrap().len();
    let began = Instant::now();
    let (by_status, refused) = flood(6000, 300);
    let minutes = began.elapsed().as_secs_f64() / 60.0;
    let rss_after = rss_kib(&served);
    eprintln!(
        "flood: {by_status:?}, {refused} refused by hyper; RSS {rss_before} → {rss_after} KiB"
    );

    // The address's rate: after the first minute's 60, only 429s (plus
    // what the rate refills while the flood runs).
    let unauthorized = by_status.get(&401).copied().unwrap_or(0);
    assert!(
        (unauthorized as f64) <= 60.0 * minutes + 2.0,
        "{unauthorized} requests without a token were let through to 401 in {minutes:.2} min: {by_status:?}"
    );
    assert!(
        by_status.get(&429).copied().unwrap_or(0) > 4000,
        "{by_status:?}"
    );
    // The server did not grow with the paths.
    assert!(
        rss_after < rss_before + 30 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB over 6,000 unique paths"
    );

    // Metrics: one series for every unmatched path, every line valid.
    let metrics = served.get(&admin, "/metrics").text().unwrap();
    let series: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("remex_requests_total"))
        .collect();
    assert!(series.len() < 12, "{series:#?}");
    assert!(
        series
            .iter()
            .any(|l| l.starts_with("remex_requests_total{route=\"unmatched\",status=\"429\"}")),
        "{metrics}"
    );
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        assert!(!line.contains('\\') && !line.contains("etc"), "{line}");
        let value = line.rsplit_once(' ').map(|(_, v)| v).unwrap_or_default();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }

    // The audit log: a few records per interval (5s) for the whole flood,
    // whose counts add up to every request it denied: the first of each
    // interval at once, the rest as one record when the interval ends.
    let answered: usize = warm.values().chain(by_status.values()).sum();
    let deadline = Instant::now() + Duration::from_secs(60);
    let denied = loop {
        let denied: Vec<Value> = records(&lab)
            .into_iter()
            .filter(|r| r["event"] == "request" && r["address"] == "127.0.0.7")
            .collect();
        let counted: u64 = denied.iter().map(|r| r["count"].as_u64().unwrap()).sum();
        if counted as usize >= answered || Instant::now() > deadline {
            break denied;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let counted: u64 = denied.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(
        counted as usize, answered,
        "every denied request is counted once in the records"
    );
    // Per interval: two reasons, each its first record and its rest.
    let intervals = began.elapsed().as_secs() / 5 + 3;
    assert!(
        denied.len() as u64 <= 4 * intervals,
        "{} records for {answered} requests: {denied:#?}",
        denied.len()
    );
    for record in &denied {
        assert!(
            ["no_token", "client_rate"].contains(&record["error"].as_str().unwrap()),
            "{record}"
        );
        assert!(record["action"].as_str().unwrap().len() <= 1100, "{record}");
    }
    let grown = std::fs::metadata(&log).unwrap().len() - log_before;
    assert!(
        grown < 2048 * denied.len() as u64 && grown < 256 * 1024,
        "the audit log grew {grown} bytes"
    );

    // Still serving, and the chain is intact.
    json_of(served.get(&admin, "/v1/whoami"), 200);
    crate::util::assert_verifies(&lab);
}

/// Whether the server closed `stream` (end of stream or reset), rather
/// than leaving it open past the stream's read timeout.
fn closed(mut stream: &TcpStream) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == IoKind::ConnectionReset => return true,
            Err(e) if matches!(e.kind(), IoKind::WouldBlock | IoKind::TimedOut) => return false,
            Err(e) => panic!("{e}"),
        }
    }
}

/// The value of the sample `name` in `/metrics`.
fn metric(served: &Served, token: &str, name: &str) -> f64 {
    let metrics = served.get(token, "/metrics").text().unwrap();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name}:\n{metrics}"))
        .parse()
        .unwrap()
}

#[test]
fn connections_past_the_limits_are_closed_at_once() {
    // A long header timeout: every admitted connection stays open for the
    // whole test, so what is closed was refused.
    let (_lab, served, admin) =
        serve_with("{ header_timeout: 60s, max_connections: 20, max_connections_per_address: 8 }");
    // The scrapes' own connection, kept alive throughout.
    assert_eq!(
        metric(&served, &admin, "remex_http_connections_refused_total"),
        0.0
    );
    let refused_reaches = |n: f64| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while metric(&served, &admin, "remex_http_connections_refused_total") < n {
            assert!(
                Instant::now() < deadline,
                "fewer than {n} connections refused"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let still_open = |streams: &mut [TcpStream]| {
        streams
            .iter_mut()
            .filter(|s| {
                s.set_read_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                !closed(s)
            })
            .count()
    };
    let batch = |from: &str| -> Vec<TcpStream> {
        (0..12).map(|_| connect_from(from, served.addr)).collect()
    };

    // Per address: 12 from one address, 8 stay.
    let mut first = batch("127.0.0.21");
    refused_reaches(4.0);
    assert_eq!(still_open(&mut first), 8);
    // Another address is not held back by it.
    let mut second = batch("127.0.0.22");
    refused_reaches(8.0);
    assert_eq!(still_open(&mut second), 8);
    // In all: 20 places, one the scrapes', 16 taken: 3 more.
    let mut third = batch("127.0.0.23");
    refused_reaches(17.0);
    assert_eq!(still_open(&mut third), 3);
    assert_eq!(metric(&served, &admin, "remex_http_connections_open"), 20.0);
    let over = connect_from("127.0.0.24", served.addr);
    assert!(
        closed(&over),
        "a connection past max_connections stayed open"
    );

    // Places come back when connections close.
    drop((first, second, third));
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&served, &admin, "remex_http_connections_open") > 1.0 {
        assert!(Instant::now() < deadline, "places were not given back");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut again = batch("127.0.0.21");
    assert_eq!(still_open(&mut again), 8);
}

#[test]
fn slow_heads_and_idle_connections_are_closed_by_the_header_timeout() {
    let (_lab, served, admin) = serve_with("{ header_timeout: 3s }");
    // Slow heads: clients each dribbling a request head, one byte every
    // half second; the server closes every one before its head is done,
    // never answering it.
    let head = b"GET /v1/whoami HTTP/1.1\r\nHost: remex\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let slow: Vec<std::thread::JoinHandle<(usize, bool)>> = (0..10)
        .map(|i| {
            let addr = served.addr;
            std::thread::spawn(move || {
                let mut stream = connect_from(&format!("127.0.1.{}", 1 + i % 4), addr);
                let mut sent = 0;
                for byte in head {
                    if stream.write_all(&[*byte]).is_err() {
                        break;
                    }
                    sent += 1;
                    std::thread::sleep(Duration::from_millis(500));
                }
                let mut buf = Vec::new();
                let _ = stream.read_to_end(&mut buf);
                (sent, String::from_utf8_lossy(&buf).contains(" 200 "))
            })
        })
        .collect();
    // Idle connections: opened, nothing sent — or one request answered,
    // then kept alive and left idle.
    let mut idle: Vec<TcpStream> = (0..10)
        .map(|i| {
            let mut stream = connect_from(&format!("127.0.2.{}", 1 + i % 4), served.addr);
            if i % 2 == 0 {
                stream
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: remex\r\n\r\n")
                    .unwrap();
                let (status, ..) = read_answer(&mut stream).unwrap();
                assert_eq!(status, 200);
            }
            stream
        })
        .collect();
    for (i, stream) in slow.into_iter().enumerate() {
        let (sent, answered) = stream.join().unwrap();
        assert!(!answered, "slow client {i} was answered");
        assert!(sent < head.len(), "slow client {i} sent its whole head");
    }
    for stream in &mut idle {
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        assert!(
            closed(stream),
            "an idle connection was kept past the header timeout"
        );
    }
    // Every place given back: the gauge counts only the scrape's own.
    let deadline = Instant::now() + Duration::from_secs(30);
    while open_connections(&served, &admin) > 1.0 {
        assert!(Instant::now() < deadline, "connections still open");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn kill_9_right_after_answers_keeps_every_request_record_and_links_jobs() {
    let lab = TestLab::new(1);
    let mut served = Served::start(&lab.config());
    let token = served.token("burst", "exec", "all");

    // A job: its stored record, view and run records carry the request id.
    let response = served
        .http
        .post(served.url("/v1/runs?wait=30s"))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header("x-request-id", "n8n-exec-1")
        .json(&json!({"targets": "vm01", "command": ["true"]}))
        .send()
        .unwrap();
    let job_request = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(job_request, "n8n-exec-1", "the client chose the request id");
    let report = json_of(response, 200);
    let job_id = report["run_id"].as_str().unwrap().to_owned();
    let view = json_of(served.get(&token, &format!("/v1/jobs/{job_id}")), 200);
    assert_eq!(view["request_id"], job_request.as_str(), "{view}");

    // A client that hangs up while its job runs: the request still has a
    // record (status 499, `client_closed`), and the job its own.
    let mut stream = connect_from("127.0.0.1", served.addr);
    let body = r#"{"targets": "vm01", "command": ["sleep", "2"]}"#;
    let head = format!(
        "POST /v1/runs?wait=60s HTTP/1.1\r\nHost: remex\r\nAuthorization: Bearer {token}\r\n\
         X-Request-Id: hung-up\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !records(&lab)
        .iter()
        .any(|r| r["event"] == "start" && r["argv"][0] == "sleep")
    {
        assert!(Instant::now() < deadline, "the job never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(stream);
    let hung_up = loop {
        let found = records(&lab)
            .into_iter()
            .find(|r| r["event"] == "request" && r["client_request"] == "hung-up");
        if let Some(record) = found {
            break record;
        }
        assert!(
            Instant::now() < deadline,
            "no record of the request whose client hung up"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(hung_up["status"], 499, "{hung_up}");
    assert_eq!(hung_up["error"], "client_closed", "{hung_up}");
    assert_eq!(hung_up["workflow"], "burst", "{hung_up}");

    // A burst from 8 clients, each with its own X-Request-Id — and two of
    // them claiming the job's request id and the same id as each other.
    let answered: Vec<(String, String)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let (served, token, job_request) = (&served, &token, &job_request);
                scope.spawn(move || {
                    (0..40)
                        .map(|i| {
                            let theirs = match (w, i) {
                                (0, 0) | (1, 0) => job_request.clone(),
                                // Not a sane id: not recorded.
                                (2, 0) => "with \"quotes\" and spaces".to_owned(),
                                (3, 0) => "x".repeat(129),
                                _ => format!("c{w}-{i}"),
                            };
                            let response = served
                                .http
                                .get(served.url("/v1/whoami"))
                                .header(AUTHORIZATION, format!("Bearer {token}"))
                                .header("x-request-id", &theirs)
                                .send()
                                .unwrap();
                            assert_eq!(response.status().as_u16(), 200);
                            let ours = response.headers()["x-request-id"]
                                .to_str()
                                .unwrap()
                                .to_owned();
                            (ours, theirs)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    served.kill();

    let all = records(&lab);
    let by_request: std::collections::HashMap<&str, &Value> = all
        .iter()
        .filter(|r| r["event"] == "request")
        .map(|r| (r["request"].as_str().unwrap(), r))
        .collect();
    for (ours, theirs) in &answered {
        let record = by_request
            .get(ours.as_str())
            .unwrap_or_else(|| panic!("request {ours} was answered but has no record"));
        if theirs.len() > 128 || theirs.contains(' ') {
            assert!(record.get("client_request").is_none(), "{record}");
        } else {
            assert_eq!(record["client_request"], theirs.as_str(), "{record}");
        }
        assert_eq!(record["status"], 200);
        assert_eq!(record["address"], "127.0.0.1");
    }
    let ids: std::collections::HashSet<&str> = answered.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(ids.len(), answered.len(), "request ids are unique");
    assert!(!ids.contains(job_request.as_str()));
    // The job's request record and its run's records share the request id.
    let of_job: Vec<&Value> = all
        .iter()
        .filter(|r| r["request"] == job_request.as_str())
        .collect();
    assert!(
        of_job
            .iter()
            .any(|r| r["event"] == "request" && r["client_request"] == "n8n-exec-1")
    );
    assert!(
        of_job
            .iter()
            .any(|r| r["event"] == "start" && r["run"] == job_id.as_str())
    );
    assert!(
        of_job
            .iter()
            .any(|r| r["event"] == "end" && r["run"] == job_id.as_str())
    );
    crate::util::assert_verifies(&lab);
}

#[test]
fn every_error_answers_in_the_one_shape_with_its_status() {
    let (lab, served, admin) = serve_with("{ max_body: 64K, max_json: 4K, idle_timeout: 2s }");
    let check =
        |response: reqwest::blocking::Response, status: u16, kind: &str, field: Option<&str>| {
            assert_eq!(
                response.headers()[CONTENT_TYPE],
                "application/json",
                "{status} {kind}"
            );
            error_of(response, status, kind, field)
        };
    let get = |path: &str| served.get(&admin, path);
    let anonymous = |method: reqwest::Method, path: &str| {
        served
            .http
            .request(method, served.url(path))
            .send()
            .unwrap()
    };

    // Query strings of the wrong type, on every handler that takes one.
    check(get("/v1/audit?limit=x"), 400, "bad_request", Some("limit"));
    check(
        get("/v1/audit?failed=maybe"),
        400,
        "bad_request",
        Some("failed"),
    );
    check(get("/v1/audit?limit=0"), 400, "bad_request", Some("limit"));
    check(get("/v1/jobs?limit=-3"), 400, "bad_request", Some("limit"));
    check(
        get("/v1/jobs/nope?wait=soon"),
        400,
        "bad_request",
        Some("wait"),
    );
    let run = |query: &str| {
        served.post(
            &admin,
            &format!("/v1/runs{query}"),
            &json!({"targets": "vm01", "command": ["true"]}),
        )
    };
    check(run("?wait=1.5s"), 400, "bad_request", Some("wait"));
    // (A wait past `max_wait` is cut to it: hostile/contract.rs.)
    check(run("?wait=%FF"), 400, "bad_request", Some("wait"));
    check(
        get("/v1/files/download?host=vm01"),
        400,
        "bad_request",
        None,
    );
    // Odd bytes in a path parameter.
    check(get("/v1/jobs/%FF%FE"), 400, "bad_request", None);

    // Unknown paths and wrong methods, with a token: 404, 405.
    check(get("/v1/nope"), 404, "not_found", None);
    check(get("/v2/runs"), 404, "not_found", None);
    let delete = served
        .http
        .delete(served.url("/v1/runs"))
        .header(AUTHORIZATION, format!("Bearer {admin}"))
        .send()
        .unwrap();
    check(delete, 405, "method_not_allowed", None);
    let put_metrics = served
        .http
        .put(served.url("/metrics"))
        .header(AUTHORIZATION, format!("Bearer {admin}"))
        .send()
        .unwrap();
    check(put_metrics, 405, "method_not_allowed", None);
    // Without a token, an unknown path is a 401 like any other (deny by
    // default: nobody learns which paths exist), in the same shape.
    check(
        anonymous(reqwest::Method::GET, "/v1/nope"),
        401,
        "unauthorized",
        None,
    );
    check(
        anonymous(reqwest::Method::DELETE, "/v1/runs"),
        401,
        "unauthorized",
        None,
    );

    // Bodies: JSON over max_json, raw and multipart uploads over
    // max_body: 413; a malformed form: 400.
    let big = json!({"targets": "vm01", "command": ["echo", "x".repeat(8 << 10)]});
    check(
        served.post(&admin, "/v1/runs", &big),
        413,
        "too_large",
        None,
    );
    // Uploads over max_body, raw and multipart, with their length
    // declared (refused before a byte is read) or chunked (refused once
    // past the limit). Over raw TCP: the whole request is written before
    // the answer is read, as a client that streams its body would.
    let upload_over = |content_type: &str, chunked: bool| {
        let boundary = "zz";
        let mut body = Vec::new();
        if content_type.starts_with("multipart") {
            body.extend(format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"targets\"\r\n\r\nvm01\r\n\
                 --{boundary}\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\n/tmp/big\r\n\
                 --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big\"\r\n\r\n"
            ).bytes());
            body.extend(vec![b'x'; 100 << 10]);
            body.extend(format!("\r\n--{boundary}--\r\n").bytes());
        } else {
            body.extend(vec![b'x'; 100 << 10]);
        }
        let framing = if chunked {
            "Transfer-Encoding: chunked".to_owned()
        } else {
            format!("Content-Length: {}", body.len())
        };
        let mut request = format!(
            "POST /v1/files/upload?targets=vm01&path=/tmp/big HTTP/1.1\r\nHost: remex\r\n\
             Authorization: Bearer {admin}\r\nContent-Type: {content_type}; boundary={boundary}\r\n\
             {framing}\r\n\r\n"
        )
        .into_bytes();
        if chunked {
            for chunk in body.chunks(16 << 10) {
                request.extend(format!("{:x}\r\n", chunk.len()).bytes());
                request.extend(chunk);
                request.extend(b"\r\n");
            }
            request.extend(b"0\r\n\r\n");
        } else {
            request.extend(body);
        }
        let mut stream = connect_from("127.0.0.1", served.addr);
        stream.write_all(&request).unwrap();
        let (status, headers, body) = read_answer(&mut stream).expect("an answer");
        assert_eq!(
            status,
            413,
            "{content_type} chunked={chunked}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_error_shape(status, &headers, &body, &["too_large"]);
    };
    for content_type in ["application/octet-stream", "multipart/form-data"] {
        for chunked in [false, true] {
            upload_over(content_type, chunked);
        }
    }
    check(
        served.post_raw(
            &admin,
            "/v1/files/upload?path=/tmp/x",
            "multipart/form-data; boundary=zz",
            b"--zz\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc".to_vec(),
        ),
        400,
        "bad_request",
        None,
    );
    check(
        served.post_raw(
            &admin,
            "/v1/files/upload",
            "multipart/form-data",
            b"no boundary".to_vec(),
        ),
        400,
        "bad_request",
        None,
    );

    // A body that stops coming: 408 after idle_timeout, in the shape.
    for (path, content_type) in [
        ("/v1/runs", "application/json"),
        (
            "/v1/files/upload?targets=vm01&path=/tmp/slow",
            "application/octet-stream",
        ),
        (
            "/v1/files/upload?targets=vm01&path=/tmp/slow",
            "multipart/form-data; boundary=zz",
        ),
    ] {
        let mut stream = connect_from("127.0.0.1", served.addr);
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: remex\r\nAuthorization: Bearer {admin}\r\n\
             Content-Type: {content_type}\r\nContent-Length: 1000\r\n\r\n{{\"targets\""
        );
        stream.write_all(head.as_bytes()).unwrap();
        let (status, headers, body) =
            read_answer(&mut stream).expect("an answer to a stalled body");
        assert_eq!(status, 408, "{}", String::from_utf8_lossy(&body));
        assert_error_shape(status, &headers, &body, &["timeout"]);
    }
    // Nothing ran.
    assert_eq!(crate::served::runs_started(&lab), 0);
}

#[test]
fn audit_reads_show_only_the_token_s_hosts_and_verify_is_admin_only() {
    let lab = TestLab::new(3);
    let served = Served::start(&lab.config());
    let admin = served.token("admin", "admin", "all");
    let one = served.token("vm01-reader", "audit:read", "vm01");
    let all_hosts = served.token("hosts-reader", "audit:read", "all");
    json_of(
        served.post(
            &admin,
            "/v1/runs?wait=60s",
            &json!({"targets": "all", "command": ["true"]}),
        ),
        200,
    );
    let hosts_of = |token: &str, query: &str| -> Vec<Value> {
        let page = json_of(served.get(token, &format!("/v1/audit{query}")), 200);
        page["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["host"].clone())
            .collect()
    };
    // The limited token: vm01's records only; no request records (no
    // host), whatever it filters on.
    let seen = hosts_of(&one, "");
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|h| h == "vm01"), "{seen:?}");
    assert!(hosts_of(&one, "?host=vm02").is_empty());
    assert!(hosts_of(&one, "?host=vm*").iter().all(|h| h == "vm01"));
    assert!(hosts_of(&one, "?op=api").is_empty());
    // All hosts, but not admin: every host, still no host-less record.
    let seen = hosts_of(&all_hosts, "");
    for host in ["vm01", "vm02", "vm03"] {
        assert!(seen.iter().any(|h| h == host), "{host}: {seen:?}");
    }
    assert!(seen.iter().all(|h| h.is_string()), "{seen:?}");
    // Admin: everything, request records included.
    let seen = hosts_of(&admin, "");
    assert!(
        seen.iter().any(Value::is_null),
        "no request records for admin"
    );
    for host in ["vm02", "vm03"] {
        assert!(seen.iter().any(|h| h == host), "{host}: {seen:?}");
    }

    // Verify: admin only.
    for token in [&one, &all_hosts] {
        let message = error_of(
            served.post(token, "/v1/audit/verify", &json!({})),
            403,
            "forbidden",
            None,
        );
        assert!(message.contains("`admin`"), "{message}");
    }
    let verified = json_of(served.post(&admin, "/v1/audit/verify", &json!({})), 200);
    assert_eq!(verified["ok"], true, "{verified}");
}

#[test]
fn an_answer_nobody_reads_closes_its_connection_after_the_idle_time() {
    let (_lab, served, admin) = serve_with("{ idle_timeout: 2s }");
    let big = format!("/tmp/remex-unread-{:016x}", rand::random::<u64>());
    let made = json_of(
        served.post(
            &admin,
            "/v1/runs?wait=60s",
            &json!({"targets": "vm01", "raw": format!("head -c 67108864 /dev/zero > {big}")}),
        ),
        200,
    );
    assert_eq!(made["summary"]["ok"], 1, "{made}");
    let open_connections = || open_connections(&served, &admin);
    let before = open_connections();

    // Ask for 64 MiB and read only the head of the answer.
    let mut stream = connect_from("127.0.0.41", served.addr);
    let request = format!(
        "GET /v1/files/download?host=vm01&path={big} HTTP/1.1\r\nHost: remex\r\nAuthorization: Bearer {admin}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut head = [0u8; 1024];
    let n = stream.read(&mut head).unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));
    // The connection (admitted: it was answered) is held open by us,
    // unread; the server ends it.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let open = open_connections();
        if open <= before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the unread answer's connection is still open ({open} open, {before} before)"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // What we can still read ends well short of 64 MiB.
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(rest.len() < 60 << 20, "{} bytes came", rest.len());
    let _ = std::fs::remove_file(&big);
}
