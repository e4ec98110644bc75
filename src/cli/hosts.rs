//! `remex hosts list|check|trust|forget`.

use std::io::IsTerminal as _;

use anyhow::{Result, bail};
use remex::trust::{TrustAction, TrustReport, TrustRequest};

use super::args::TrustArgs;
use super::signals::Interrupts;
use super::{Global, Status, print_json, print_listing, render, run_status};

/// `remex hosts list`.
pub(super) fn list(global: &Global<'_>, targets: &str) -> Result<Status> {
    let config = global.config()?;
    let selected = config.select(targets)?;
    let mut list = config.host_list();
    list.hosts.retain(|h| selected.contains(&h.name));
    if global.json {
        print_listing("hosts.list", &list)?;
    } else {
        let jumps = list.hosts.iter().any(|h| !h.jump.is_empty());
        let sourced = list.hosts.iter().any(|h| !h.from_ssh_config.is_empty());
        let rows: Vec<Vec<String>> = list
            .hosts
            .iter()
            .map(|h| {
                let mut row = vec![
                    h.name.clone(),
                    remex::config::join_host_port(&h.address, h.port),
                    h.user.clone(),
                    h.groups.join(","),
                ];
                if jumps {
                    row.push(h.jump.join(","));
                }
                if sourced {
                    row.push(from_ssh_config(&h.from_ssh_config));
                }
                row
            })
            .collect();
        let mut headers = vec!["NAME", "ADDRESS", "USER", "GROUPS"];
        if jumps {
            headers.push("VIA");
        }
        if sourced {
            headers.push("FROM SSH_CONFIG");
        }
        println!("{}", render::table(&headers, &rows));
    }
    Ok(Status::Success)
}

/// `port,user: FILE:3 key: FILE:5`: the values a host took from the
/// ssh_config, grouped by the line they came from.
fn from_ssh_config(from: &std::collections::BTreeMap<String, String>) -> String {
    let mut by_line: Vec<(&str, Vec<&str>)> = Vec::new();
    for (field, line) in from {
        match by_line.iter_mut().find(|(l, _)| *l == line) {
            Some((_, fields)) => fields.push(field),
            None => by_line.push((line, vec![field])),
        }
    }
    by_line
        .iter()
        .map(|(line, fields)| format!("{}: {line}", fields.join(",")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `remex hosts check`.
pub(super) async fn check(global: &Global<'_>, targets: &str) -> Result<Status> {
    let executor = global.one_run_executor(global.config()?)?;
    let interrupts = Interrupts::watch("stopping the checks")?;
    let mut report = executor
        .check(&global.context(&interrupts), targets)
        .await?;
    executor.close().await;
    global.invocation.rewrite_report(&mut report);
    if global.json {
        print_json(&report)?;
    } else {
        let rows: Vec<Vec<String>> = report
            .results
            .iter()
            .map(|c| {
                let d = &c.detail;
                vec![
                    c.host.clone(),
                    remex::config::join_host_port(&c.address, c.port),
                    yes_no(d.reachable),
                    d.host_key.to_owned(),
                    yes_no(d.auth),
                    d.rtt_ms
                        .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1}ms")),
                    c.error
                        .as_ref()
                        .map_or_else(String::new, |f| format!("[{}] {}", f.kind, f.message)),
                ]
            })
            .collect();
        println!(
            "{}",
            render::table(
                &[
                    "HOST",
                    "ADDRESS",
                    "REACHABLE",
                    "HOST-KEY",
                    "AUTH",
                    "RTT",
                    "PROBLEM"
                ],
                &rows
            )
        );
        eprintln!("{}", super::render::summary(&report));
    }
    Ok(run_status(
        report.audit_error.as_deref(),
        &interrupts,
        report.all_ok(),
    ))
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

/// `remex hosts trust`.
pub(super) async fn trust(global: &Global<'_>, args: TrustArgs) -> Result<Status> {
    for fp in &args.fingerprint {
        if !fp.starts_with("SHA256:") {
            bail!(
                "--fingerprint {fp}: expected a SHA256 fingerprint as `ssh-keygen -l` prints it (SHA256:…)"
            );
        }
    }
    if !args.yes && args.fingerprint.is_empty() && !std::io::stdin().is_terminal() {
        bail!(
            "remex hosts trust asks before pinning a host key, but stdin is not a terminal; \
             pass --fingerprint SHA256:… (checked out of band) or --yes (trust what the hosts offer)"
        );
    }
    let executor = global.executor(global.config()?)?;
    let request = TrustRequest {
        fingerprints: args.fingerprint,
        yes: args.yes,
        replace: args.replace,
        scan_only: false,
    };
    let interrupts = Interrupts::watch("stopping")?;
    let report = executor
        .hosts_trust(&global.context(&interrupts), &args.targets, &request)
        .await?;
    finish(global, report, &interrupts)
}

/// `remex hosts forget`.
pub(super) async fn forget(global: &Global<'_>, targets: &str) -> Result<Status> {
    let executor = global.executor(global.config()?)?;
    let interrupts = Interrupts::watch("stopping")?;
    let report = executor
        .hosts_forget(&global.context(&interrupts), targets)
        .await?;
    finish(global, report, &interrupts)
}

fn finish(global: &Global<'_>, mut report: TrustReport, interrupts: &Interrupts) -> Result<Status> {
    global.invocation.rewrite_report(&mut report);
    if global.json {
        print_json(&report)?;
    } else {
        let width = render::name_width(report.results.iter().map(|r| r.host.as_str()));
        for r in &report.results {
            let host = &r.host;
            let d = &r.detail;
            let key = format!(
                "{} {}",
                d.key_type.as_deref().unwrap_or(""),
                d.fingerprint.as_deref().unwrap_or("")
            );
            let line = match d.action {
                Some(TrustAction::Pinned) => Some(format!("pinned {key}")),
                Some(TrustAction::Replaced) => {
                    Some(format!("replaced {} by {key}", d.previous.join(" and ")))
                }
                Some(TrustAction::AlreadyPinned) => Some(format!("already pinned: {key}")),
                Some(TrustAction::Removed) => Some(format!("forgot {}", d.previous.join(" and "))),
                Some(TrustAction::NotPinned) => Some("had no pin".to_owned()),
                Some(TrustAction::Offered) => Some(format!("offers {key}")),
                Some(TrustAction::Declined) | None => None,
            };
            if let Some(line) = line {
                println!("{host:<width$}: {line}");
            }
            if let Some(failure) = &r.error {
                eprintln!("{host:<width$}: [{}] {}", failure.kind, failure.message);
            }
        }
        eprintln!("{}", super::render::summary(&report));
    }
    Ok(run_status(
        report.audit_error.as_deref(),
        interrupts,
        report.all_ok(),
    ))
}
