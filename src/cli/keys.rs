//! `remex keys …`: the client-key lifecycle on the command line.

use std::io::IsTerminal as _;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use remex::keys::{
    DeployRequest, GenerateRequest, KeyKind, KeysReport, RevokeRequest, RotateRequest,
};
use remex::{Config, Password, PasswordSource};

use super::args::{DeployArgs, KeysCommand, KindArgs, RevokeArgs, RotateArgs};
use super::signals::Interrupts;
use super::{Global, Status, print_json, print_listing, render, run_status};

/// Runs `remex keys …`.
pub(super) async fn run(global: &Global<'_>, command: KeysCommand) -> Result<Status> {
    let config = global.config()?;
    match command {
        KeysCommand::List => list(global, &config),
        command => {
            let executor = global.executor(config)?;
            let interrupts = Interrupts::watch("stopping")?;
            let mut ctx = global.context(&interrupts);
            if let KeysCommand::Deploy(DeployArgs { secrets, .. })
            | KeysCommand::Rotate(RotateArgs { secrets, .. })
            | KeysCommand::Revoke(RevokeArgs { secrets, .. }) = &command
            {
                for (_, value) in &secrets.secret_env {
                    ctx = ctx.secret(value.clone());
                }
            }
            let json = global.json;
            let config = executor.config();
            let report = match command {
                KeysCommand::Generate(args) => {
                    let request = GenerateRequest {
                        name: name_or_default(config, args.name)?,
                        kind: KeyKind::from_parts(&args.kind.key_type, args.kind.bits)?,
                        passphrase: passphrase(&args.kind)?,
                    };
                    let report = executor.keys_generate(&ctx, &request).await?;
                    let key = &report.details.key;
                    if json {
                        print_json(&report)?;
                    } else {
                        println!(
                            "generated {} key `{}`: {}\n  private key: {}\n  public key:  {}",
                            key.algorithm,
                            key.name,
                            key.fingerprint,
                            key.path.display(),
                            key.public_path.display()
                        );
                        eprintln!(
                            "next: `{}` (add --password-env VAR for first contact)",
                            global
                                .invocation
                                .command(&format!("keys deploy TARGETS --name {}", key.name))
                        );
                    }
                    return Ok(run_status(report.audit_error.as_deref(), &interrupts, true));
                }
                KeysCommand::Prune { force } => {
                    let report = executor.keys_prune(&ctx, force).await?;
                    if json {
                        print_json(&report)?;
                    } else {
                        let pruned = &report.details;
                        for key in &pruned.removed {
                            println!("deleted archived key `{}`", key.name);
                        }
                        for key in &pruned.kept {
                            eprintln!(
                                "kept archived key `{}`: still deployed on {}; run `{}` first, or prune --force",
                                key.name,
                                key.deployed_to.join(","),
                                global.invocation.command(&format!(
                                    "keys revoke {} --name {}",
                                    key.deployed_to.join(","),
                                    key.name
                                ))
                            );
                        }
                        eprintln!(
                            "{} archived keys deleted, {} kept",
                            pruned.removed.len(),
                            pruned.kept.len()
                        );
                    }
                    return Ok(run_status(report.audit_error.as_deref(), &interrupts, true));
                }
                KeysCommand::Deploy(args) => {
                    let password = match &args.password_env {
                        Some(var) => Some(PasswordSource::Given(Arc::new(Password::new(
                            env_secret("--password-env", var)?,
                        )))),
                        None if std::io::stdin().is_terminal() => Some(PasswordSource::Ask),
                        None => None,
                    };
                    let request = DeployRequest {
                        name: name_or_default(config, args.name)?,
                        bootstrap_key: args.bootstrap_key,
                        password,
                    };
                    executor.keys_deploy(&ctx, &args.targets, &request).await?
                }
                KeysCommand::Rotate(args) => {
                    let request = RotateRequest {
                        name: args.name,
                        kind: KeyKind::from_parts(&args.kind.key_type, args.kind.bits)?,
                        passphrase: passphrase(&args.kind)?,
                    };
                    executor.keys_rotate(&ctx, &args.targets, &request).await?
                }
                KeysCommand::Revoke(args) => {
                    let request = RevokeRequest {
                        name: args.name,
                        force: args.force,
                    };
                    executor.keys_revoke(&ctx, &args.targets, &request).await?
                }
                KeysCommand::List => unreachable!("handled above"),
            };
            finish(global, report, &interrupts)
        }
    }
}

/// `--name`, else `default_key` when it is a plain key name.
fn name_or_default(config: &Config, name: Option<String>) -> Result<String> {
    if let Some(name) = name {
        return Ok(name);
    }
    let default = &config.remote_execution.default_key;
    if remex::keys::validate_name(default).is_err() {
        bail!(
            "remote_execution.default_key `{default}` is not a key name in key_storage_path; pass --name NAME"
        );
    }
    Ok(default.clone())
}

/// The value of environment variable `var`, named by option `flag`.
pub(super) fn env_secret(flag: &str, var: &str) -> Result<String> {
    std::env::var(var)
        .with_context(|| format!("{flag} {var}: the environment variable {var} is not set"))
}

fn passphrase(kind: &KindArgs) -> Result<Option<String>> {
    kind.passphrase_env
        .as_deref()
        .map(|var| env_secret("--passphrase-env", var))
        .transpose()
}

fn list(global: &Global<'_>, config: &Config) -> Result<Status> {
    let executor = global.executor(config.clone())?;
    let listing = executor.keys_list()?;
    if global.json {
        print_listing("keys.list", &listing)?;
        return Ok(Status::Success);
    }
    let rows: Vec<Vec<String>> = listing
        .keys
        .iter()
        .map(|k| {
            vec![
                if k.archived {
                    format!("{} (archived)", k.name)
                } else {
                    k.name.clone()
                },
                k.algorithm.clone(),
                k.fingerprint.clone(),
                k.created.clone(),
                dash(&k.deployed_to.join(",")),
                dash(&k.used_by.join(",")),
            ]
        })
        .collect();
    println!(
        "{}",
        render::table(
            &[
                "NAME",
                "TYPE",
                "FINGERPRINT",
                "CREATED",
                "DEPLOYED-TO",
                "USED-BY"
            ],
            &rows
        )
    );
    let rows: Vec<Vec<String>> = listing
        .hosts
        .iter()
        .map(|h| vec![h.host.clone(), h.key.clone(), h.source.to_owned()])
        .collect();
    println!(
        "\n{}",
        render::table(&["HOST", "USES-KEY", "BECAUSE"], &rows)
    );
    for (host, rotation) in &listing.rotations_in_progress {
        eprintln!(
            "unfinished rotation on {host}: to `{}` (after step `{}`); run `{}` to finish it",
            rotation.new,
            rotation.step,
            global.invocation.command(&format!("keys rotate {host}"))
        );
    }
    if listing.keys.is_empty() {
        eprintln!(
            "no keys in {}; create one with `{}`",
            listing.key_storage_path.display(),
            global.invocation.command("keys generate --name NAME")
        );
    }
    Ok(Status::Success)
}

fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s.to_owned()
    }
}

/// Prints a deploy/rotate/revoke report and maps it to the exit status.
fn finish(global: &Global<'_>, mut report: KeysReport, interrupts: &Interrupts) -> Result<Status> {
    global.invocation.rewrite_report(&mut report);
    if global.json {
        print_json(&report)?;
    } else {
        let width = render::name_width(report.results.iter().map(|r| r.host.as_str()));
        for outcome in &report.results {
            // Each key's fingerprint is shown the first time it appears.
            let mut shown: Vec<&str> = Vec::new();
            let changes: Vec<String> = outcome
                .detail
                .changes
                .iter()
                .map(|c| {
                    let action = c.action.as_str().replace('_', " ");
                    if shown.contains(&c.key.as_str()) {
                        action
                    } else {
                        shown.push(&c.key);
                        format!("{action} `{}` ({})", c.key, c.fingerprint)
                    }
                })
                .collect();
            let host = &outcome.host;
            if !changes.is_empty() || outcome.ok() {
                let text = if changes.is_empty() {
                    "nothing to do".to_owned()
                } else {
                    changes.join(", ")
                };
                println!("{host:<width$}: {text}");
            }
            if let Some(failure) = &outcome.error {
                eprintln!("{host:<width$}: [{}] {}", failure.kind, failure.message);
            }
        }
        for archived in &report.details.archived {
            eprintln!(
                "archived key `{}` as {} (delete it with `{}`)",
                archived.name,
                archived.private_path.display(),
                global.invocation.command("keys prune")
            );
        }
        eprintln!("{}", super::render::summary(&report));
    }
    Ok(run_status(
        report.audit_error.as_deref(),
        interrupts,
        report.all_ok(),
    ))
}
