//! A load generator for `remex serve`, used by `bench/serve.sh`.
//!
//! ```text
//! api_load latency URL TOKEN TARGETS N          N runs of `true`, one after another
//! api_load load URL TOKEN TARGETS CLIENTS SECS  CLIENTS clients submitting runs for SECS
//! api_load list URL TOKEN N                     N × GET /v1/jobs?limit=50
//! ```
//!
//! Each prints one line of `key=value` figures (milliseconds).

// An example program prints its results.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .pool_max_idle_per_host(512)
        .build()?;
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["latency", url, token, targets, n] => {
            let n: usize = n.parse()?;
            let mut took = Vec::with_capacity(n);
            for _ in 0..n {
                let begun = Instant::now();
                let report = run(&client, url, token, targets, 30).await?;
                took.push(begun.elapsed());
                if report["summary"]["failed"] != 0 {
                    bail!("a run failed: {report}");
                }
            }
            println!("{}", figures(&mut took));
        }
        ["load", url, token, targets, clients, secs] => {
            let (clients, secs): (usize, u64) = (clients.parse()?, secs.parse()?);
            let until = Instant::now() + Duration::from_secs(secs);
            let client = Arc::new(client);
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..clients {
                let (client, url, token, targets) = (
                    client.clone(),
                    url.to_string(),
                    token.to_string(),
                    targets.to_string(),
                );
                tasks.spawn(async move {
                    let mut took = Vec::new();
                    let mut jobs = Vec::new();
                    let mut errors = 0usize;
                    while Instant::now() < until {
                        let begun = Instant::now();
                        match run(&client, &url, &token, &targets, 120).await {
                            Ok(report) if report["summary"]["failed"] == 0 => {
                                took.push(begun.elapsed());
                                jobs.push(report["run_id"].as_str().unwrap_or_default().to_owned());
                            }
                            Ok(report) => {
                                errors += 1;
                                eprintln!("failed: {}", report["summary"]);
                            }
                            Err(e) => {
                                errors += 1;
                                eprintln!("error: {e:#}");
                            }
                        }
                    }
                    (took, jobs, errors)
                });
            }
            let (mut took, mut jobs, mut errors) = (Vec::new(), Vec::new(), 0);
            while let Some(done) = tasks.join_next().await {
                let (t, j, e) = done?;
                took.extend(t);
                jobs.extend(j);
                errors += e;
            }
            // No job lost: every one answered is in the store, succeeded.
            let mut lost = 0;
            for id in &jobs {
                let job: Value = client
                    .get(format!("{url}/v1/jobs/{id}"))
                    .bearer_auth(token)
                    .send()
                    .await?
                    .json()
                    .await?;
                if job["state"] != "succeeded" {
                    lost += 1;
                }
            }
            println!(
                "jobs={} errors={errors} lost={lost} per_second={:.1} {}",
                jobs.len(),
                jobs.len() as f64 / Duration::from_secs(secs).as_secs_f64(),
                figures(&mut took)
            );
        }
        ["list", url, token, n] => {
            let n: usize = n.parse()?;
            let mut took = Vec::with_capacity(n);
            for _ in 0..n {
                let begun = Instant::now();
                let page: Value = client
                    .get(format!("{url}/v1/jobs?limit=50"))
                    .bearer_auth(token)
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                took.push(begun.elapsed());
                if page["jobs"].as_array().map_or(0, Vec::len) != 50 {
                    bail!("a page held fewer than 50 jobs");
                }
            }
            println!("{}", figures(&mut took));
        }
        _ => bail!(
            "usage: api_load latency URL TOKEN TARGETS N | load URL TOKEN TARGETS CLIENTS SECS | list URL TOKEN N"
        ),
    }
    Ok(())
}

/// `POST /v1/runs?wait=` of `true` on `targets`; the report.
async fn run(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    targets: &str,
    wait: u64,
) -> anyhow::Result<Value> {
    let answer = client
        .post(format!("{url}/v1/runs?wait={wait}s"))
        .bearer_auth(token)
        .json(&json!({"targets": targets, "command": ["true"]}))
        .send()
        .await
        .context("POST /v1/runs")?;
    let status = answer.status();
    let body: Value = answer.json().await?;
    if status.as_u16() != 200 {
        bail!("{status}: {body}");
    }
    Ok(body)
}

/// `n=… p50_ms=… p99_ms=… max_ms=…`.
fn figures(took: &mut [Duration]) -> String {
    took.sort();
    let at = |q: f64| {
        let i = ((took.len() as f64 - 1.0) * q).round() as usize;
        took.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    format!(
        "n={} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        took.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    )
}
