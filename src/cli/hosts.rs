//! `remex hosts trust` and `remex hosts forget`: pinning host keys.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use anyhow::{Result, bail};
use clap::Args;

use super::{Global, Status, load_config, print_json, render};
use crate::ops::trust::{self, Offer, TrustAction, TrustReport, TrustRequest};

/// `remex hosts trust`.
#[derive(Debug, Args)]
pub struct TrustArgs {
    /// Which hosts: names, groups, `all`, globs, `!exclusions`, comma-separated.
    pub targets: String,
    /// Pin only a key with this fingerprint (SHA256:…, obtained out of band,
    /// e.g. `ssh-keygen -l -f /etc/ssh/ssh_host_ed25519_key.pub` on the host's
    /// console); repeatable. No prompt.
    #[arg(long, value_name = "SHA256:…")]
    pub fingerprint: Vec<String>,
    /// Pin whatever key each host offers, without asking (automation on a
    /// network you trust).
    #[arg(long)]
    pub yes: bool,
    /// Replace the pin of a host whose key changed (shows both fingerprints).
    #[arg(long)]
    pub replace: bool,
}

/// Runs `remex hosts trust`.
pub(super) async fn trust(global: &Global<'_>, args: TrustArgs) -> Result<Status> {
    for fp in &args.fingerprint {
        if !fp.starts_with("SHA256:") {
            bail!(
                "--fingerprint {fp}: expected a SHA256 fingerprint as `ssh-keygen -l` prints it (SHA256:…)"
            );
        }
    }
    let interactive = std::io::stdin().is_terminal();
    if !args.yes && args.fingerprint.is_empty() && !interactive {
        bail!(
            "remex hosts trust asks before pinning a host key, but stdin is not a terminal; \
             pass --fingerprint SHA256:… (checked out of band) or --yes (trust what the hosts offer)"
        );
    }
    let executor = global.executor(load_config(global.config)?)?;
    let request = TrustRequest {
        fingerprints: args.fingerprint,
        yes: args.yes,
        replace: args.replace,
    };
    let mut confirm = |offer: &Offer| tokio::task::block_in_place(|| ask(offer));
    let report = trust::trust(&executor, &args.targets, &request, &mut confirm).await?;
    finish(&report, global.json)
}

/// Runs `remex hosts forget`.
pub(super) async fn forget(global: &Global<'_>, targets: &str) -> Result<Status> {
    let executor = global.executor(load_config(global.config)?)?;
    let report = trust::forget(&executor, targets).await?;
    finish(&report, global.json)
}

/// Asks on the terminal whether to trust `offer`.
fn ask(offer: &Offer) -> bool {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "{} ({}) offers host key {} {}",
        offer.host, offer.address, offer.key_type, offer.fingerprint
    );
    if !offer.previous.is_empty() {
        let _ = writeln!(
            err,
            "  THE PINNED KEY CHANGED: pinned {}; answering yes replaces it",
            offer.previous.join(" and ")
        );
    }
    let _ = write!(err, "trust it? [y/N] ");
    let _ = err.flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

fn finish(report: &TrustReport, json: bool) -> Result<Status> {
    if json {
        print_json(report)?;
    } else {
        let width = render::name_width(report.results.iter().map(|r| r.host.as_str()));
        for r in &report.results {
            let host = &r.host;
            let key = format!(
                "{} {}",
                r.key_type.as_deref().unwrap_or(""),
                r.fingerprint.as_deref().unwrap_or("")
            );
            let line = match r.action {
                Some(TrustAction::Pinned) => Some(format!("pinned {key}")),
                Some(TrustAction::Replaced) => {
                    Some(format!("replaced {} by {key}", r.previous.join(" and ")))
                }
                Some(TrustAction::AlreadyPinned) => Some(format!("already pinned: {key}")),
                Some(TrustAction::Removed) => Some(format!("forgot {}", r.previous.join(" and "))),
                Some(TrustAction::NotPinned) => Some("had no pin".to_owned()),
                Some(TrustAction::Declined) | None => None,
            };
            if let Some(line) = line {
                println!("{host:<width$}: {line}");
            }
            if let Some(failure) = &r.error {
                eprintln!("{host:<width$}: [{}] {}", failure.kind, failure.message);
            }
        }
        let s = &report.summary;
        eprintln!("{}", counts(s.total, s.ok, s.failed));
    }
    Ok(super::run_status(
        report.audit_error.as_deref(),
        false,
        report.all_ok(),
    ))
}

/// `3 hosts: 2 ok, 1 failed`.
pub(super) fn counts(total: usize, ok: usize, failed: usize) -> String {
    let hosts = if total == 1 { "host" } else { "hosts" };
    format!("{total} {hosts}: {ok} ok, {failed} failed")
}
