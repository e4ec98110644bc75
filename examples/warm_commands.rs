//! Runs N commands one after another over one connection, the way a
//! long-lived process (a workflow worker, the future service) uses remex.
//! Used by `bench/run.sh`; also a small example of the library API.
//!
//! ```text
//! cargo run --release --example warm_commands -- CONFIG HOST [N]
//! ```

// An example program prints its results.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::Instant;

use remex::{Config, Exec, Executor, RunContext};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(config), Some(host)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: warm_commands CONFIG HOST [N]");
    };
    let n: usize = args.next().map_or(Ok(200), |s| s.parse())?;
    let executor = Executor::new(Config::load(config.as_ref())?)?;
    let ctx = RunContext::new();

    // The first command pays for connecting and authenticating.
    let cold = Instant::now();
    let report = executor.exec(&ctx, &host, &Exec::argv(["true"])).await?;
    anyhow::ensure!(
        report.all_ok(),
        "first command failed: {:?}",
        report.results
    );
    let cold = cold.elapsed();

    let warm = Instant::now();
    for _ in 0..n {
        let report = executor.exec(&ctx, &host, &Exec::argv(["true"])).await?;
        anyhow::ensure!(report.all_ok(), "command failed: {:?}", report.results);
    }
    let warm = warm.elapsed();
    executor.close().await;
    println!(
        "cold_ms={:.2} warm_total_ms={:.2} warm_per_command_ms={:.3} n={n}",
        cold.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 1e3 / n as f64
    );
    Ok(())
}
