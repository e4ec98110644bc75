//! `/metrics`: counters and gauges in Prometheus' text format (version
//! 0.0.4), written by hand — a dozen lines do not need a crate.
//!
//! Bounded: a request is counted under its route's template
//! (`/v1/jobs/{id}`), never its path; every path no route matches shares
//! the one label [`UNMATCHED`], so no client can add a series. Every label
//! value is escaped as the text format says (`\\`, `\"`, `\n`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// The route label of a request no route matched.
pub(crate) const UNMATCHED: &str = "unmatched";

/// What the service counts.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    inner: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    /// Requests by route template (or [`UNMATCHED`]) and status.
    requests: BTreeMap<(String, u16), u64>,
    /// Requests the guard denied before any handler, by reason.
    denied: BTreeMap<&'static str, u64>,
    /// Seconds spent answering, and how many answers.
    request_seconds: f64,
    /// Jobs ended, by state.
    jobs: BTreeMap<&'static str, u64>,
    /// Seconds jobs ran, and how many.
    job_seconds: f64,
}

/// Gauges read at scrape time.
pub(crate) struct Gauges {
    /// Jobs under way.
    pub jobs_running: usize,
    /// SSH connections open.
    pub connections_open: usize,
    /// The budget of connections (`max_parallel`).
    pub connections_max: usize,
    /// Hosts in the inventory.
    pub hosts: usize,
    /// Seconds since the service started.
    pub uptime: Duration,
    /// HTTP connections open, and refused at a limit so far.
    pub http_connections: (usize, u64),
}

impl Metrics {
    /// Counts an answered request of `route`: a route's template, or
    /// `None` when no route matched.
    pub(crate) fn request(&self, route: Option<&str>, status: u16, took: Duration) {
        let route = route.unwrap_or(UNMATCHED);
        let mut counts = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match counts.requests.get_mut(&(route.to_owned(), status)) {
            Some(n) => *n += 1,
            None => {
                counts.requests.insert((route.to_owned(), status), 1);
            }
        }
        counts.request_seconds += took.as_secs_f64();
    }

    /// Counts a request the guard denied for `reason`.
    pub(crate) fn denied(&self, reason: &'static str) {
        let mut counts = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *counts.denied.entry(reason).or_default() += 1;
    }

    /// Counts a job that ended in `state` after `took`.
    pub(crate) fn job(&self, state: &'static str, took: Duration) {
        let mut counts = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *counts.jobs.entry(state).or_default() += 1;
        counts.job_seconds += took.as_secs_f64();
    }

    /// The text Prometheus scrapes.
    pub(crate) fn render(&self, gauges: &Gauges) -> String {
        let counts = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        header(
            &mut out,
            "remex_requests_total",
            "counter",
            "API requests answered, by route and status.",
        );
        for ((route, status), n) in &counts.requests {
            let _ = writeln!(
                out,
                "remex_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        header(
            &mut out,
            "remex_requests_denied_total",
            "counter",
            "Requests denied before any handler (no valid token, over a rate), by reason.",
        );
        for (reason, n) in &counts.denied {
            let _ = writeln!(
                out,
                "remex_requests_denied_total{{reason=\"{}\"}} {n}",
                escape(reason)
            );
        }
        header(
            &mut out,
            "remex_request_seconds",
            "summary",
            "Time spent answering API requests.",
        );
        let requests: u64 = counts.requests.values().sum();
        let _ = writeln!(out, "remex_request_seconds_sum {}", counts.request_seconds);
        let _ = writeln!(out, "remex_request_seconds_count {requests}");
        header(
            &mut out,
            "remex_jobs_total",
            "counter",
            "Jobs ended, by state.",
        );
        for (state, n) in &counts.jobs {
            let _ = writeln!(out, "remex_jobs_total{{state=\"{}\"}} {n}", escape(state));
        }
        header(&mut out, "remex_job_seconds", "summary", "Time jobs ran.");
        let jobs: u64 = counts.jobs.values().sum();
        let _ = writeln!(out, "remex_job_seconds_sum {}", counts.job_seconds);
        let _ = writeln!(out, "remex_job_seconds_count {jobs}");
        for (name, help, value) in [
            (
                "remex_jobs_running",
                "Jobs under way.",
                gauges.jobs_running as f64,
            ),
            (
                "remex_connections_open",
                "SSH connections open.",
                gauges.connections_open as f64,
            ),
            (
                "remex_connections_max",
                "The connection budget (max_parallel).",
                gauges.connections_max as f64,
            ),
            (
                "remex_hosts",
                "Hosts in the inventory.",
                gauges.hosts as f64,
            ),
            (
                "remex_http_connections_open",
                "HTTP connections open (service.limits.max_connections).",
                gauges.http_connections.0 as f64,
            ),
            (
                "remex_uptime_seconds",
                "Seconds since the service started.",
                gauges.uptime.as_secs_f64(),
            ),
        ] {
            header(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        }
        header(
            &mut out,
            "remex_http_connections_refused_total",
            "counter",
            "HTTP connections closed on arrival at service.limits.max_connections(_per_address).",
        );
        let _ = writeln!(
            out,
            "remex_http_connections_refused_total {}",
            gauges.http_connections.1
        );
        out
    }
}

/// `value` as a label value of the text format: `\`, `"` and line feeds
/// escaped.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A metric's `# HELP` and `# TYPE` lines.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges() -> Gauges {
        Gauges {
            jobs_running: 0,
            connections_open: 0,
            connections_max: 1,
            hosts: 1,
            uptime: Duration::ZERO,
            http_connections: (0, 0),
        }
    }

    #[test]
    fn unmatched_paths_share_one_series() {
        let metrics = Metrics::default();
        for _ in 0..1000 {
            metrics.request(None, 401, Duration::ZERO);
        }
        metrics.request(Some("/v1/jobs/{id}"), 200, Duration::ZERO);
        let text = metrics.render(&gauges());
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("remex_requests_total"))
            .collect();
        assert_eq!(
            series,
            [
                "remex_requests_total{route=\"/v1/jobs/{id}\",status=\"200\"} 1",
                "remex_requests_total{route=\"unmatched\",status=\"401\"} 1000",
            ]
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("a\nb"), "a\\nb");
        let metrics = Metrics::default();
        metrics.request(Some("/x\"\\\n{y}"), 404, Duration::ZERO);
        let text = metrics.render(&gauges());
        // Every sample line parses: name, labels whose quoted values end
        // where the format says, a number.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(sample_parses(line), "{line:?} in\n{text}");
        }
        assert!(text.contains(r#"route="/x\"\\\n{y}""#), "{text}");
    }

    /// Whether `line` is `name{label="value",…} number` with every value
    /// escaped as the text format requires.
    fn sample_parses(line: &str) -> bool {
        let (series, value) = match line.rsplit_once(' ') {
            Some(parts) => parts,
            None => return false,
        };
        if value.parse::<f64>().is_err() {
            return false;
        }
        let Some((_, labels)) = series.split_once('{') else {
            return !series.contains(['"', '}']);
        };
        let Some(mut rest) = labels.strip_suffix('}') else {
            return false;
        };
        while !rest.is_empty() {
            let Some((_, after)) = rest.split_once("=\"") else {
                return false;
            };
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\' | '"' | 'n')) => {}
                        _ => return false,
                    },
                    Some((i, '"')) => break i,
                    Some((_, '\n')) | None => return false,
                    Some(_) => {}
                }
            };
            rest = after.get(end + 1..).unwrap_or_default();
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
        true
    }
}
