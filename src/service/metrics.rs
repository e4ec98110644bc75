//! `/metrics`: counters and gauges in Prometheus' text format (version
//! 0.0.4), written by hand — a dozen lines do not need a crate.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// What the service counts.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    inner: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    /// Requests by route and status.
    requests: BTreeMap<(String, u16), u64>,
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
}

impl Metrics {
    /// Counts an answered request.
    pub(crate) fn request(&self, route: &str, status: u16, took: Duration) {
        let mut counts = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *counts
            .requests
            .entry((route.to_owned(), status))
            .or_default() += 1;
        counts.request_seconds += took.as_secs_f64();
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
                "remex_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
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
            let _ = writeln!(out, "remex_jobs_total{{state=\"{state}\"}} {n}");
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
                "remex_uptime_seconds",
                "Seconds since the service started.",
                gauges.uptime.as_secs_f64(),
            ),
        ] {
            header(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}

/// A metric's `# HELP` and `# TYPE` lines.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}
