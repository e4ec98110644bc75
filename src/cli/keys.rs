//! `remex keys …`: the client-key lifecycle on the command line.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::{Global, Status, load_config, print_json, render};
use crate::audit::{self, Event, Op, Record};
use crate::config::Config;
use crate::ops::keys::resolve::{KeySource, host_key};
use crate::ops::keys::{self, KeyKind, KeysReport};
use crate::transport::login::{Password, PasswordSource};

/// `remex keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate a key pair in remote_execution.key_storage_path.
    #[command(after_help = "\
The private key is OpenSSH's format, mode 0600, in a 0700 directory; the public
key is NAME.pub beside it, with the comment remex@<this host>. An existing key
is never overwritten.

Examples:
  remex keys generate --name deploy
  remex keys generate --name legacy --type rsa --bits 4096
  KEY_PASS=… remex keys generate --name ops --passphrase-env KEY_PASS")]
    Generate(GenerateArgs),
    /// List the keys: type, fingerprint, created, where deployed, which host uses which.
    List,
    /// Add a key to the hosts' ~/.ssh/authorized_keys and verify a login with it.
    #[command(after_help = "\
Logs in with whatever works today: --bootstrap-key, else the host's usual key;
then the ssh-agent (when use_agent); then a password (--password-env, or a
prompt when stdin is a terminal; password and keyboard-interactive auth).
Adds the key unless present (other lines kept byte for byte; the file replaced
atomically), then opens a fresh connection with the new key alone. From then
on remex logs in to the host with that key.

Examples:
  remex keys deploy all --name deploy --password-env SSH_PASS
  remex keys deploy web --name deploy --bootstrap-key ~/.ssh/id_ed25519")]
    Deploy(DeployArgs),
    /// Replace the key remex uses on the hosts by a new one, never locking a host out.
    #[command(after_help = "\
Per host: deploy the new key (logging in with the current one), verify a login
with the new key alone, record it as the host's key, remove the old key. A host
that fails keeps working with its current key; run the same command again to
finish. Old private keys are archived (KEY_DIR/archive) until `remex keys prune`.

Examples:
  remex keys rotate all
  remex keys rotate web --name deploy-2025")]
    Rotate(RotateArgs),
    /// Remove a key from the hosts' ~/.ssh/authorized_keys.
    #[command(after_help = "\
Refuses, per host, to revoke the only key remex can use there unless --force.

Examples:
  remex keys revoke all --name old-laptop
  remex keys revoke vm03 --name deploy --force")]
    Revoke(RevokeArgs),
    /// Delete archived keys (kept after rotations) for good.
    Prune {
        /// Delete archived keys that are still deployed on some host too.
        #[arg(long)]
        force: bool,
    },
}

/// `remex keys generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Key name, its file name in key_storage_path (default: remote_execution.default_key).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The key's type and size.
    #[command(flatten)]
    pub kind: KindArgs,
}

/// `--type`, `--bits`, `--passphrase-env`.
#[derive(Debug, Args)]
pub struct KindArgs {
    /// Key type: ed25519 (default), ecdsa or rsa.
    #[arg(long = "type", value_name = "TYPE", default_value = "ed25519")]
    pub key_type: String,
    /// Key size: ecdsa 256 (default), 384, 521; rsa 3072 (default) to 16384.
    #[arg(long, value_name = "N")]
    pub bits: Option<u32>,
    /// Encrypt the private key with the passphrase in this environment variable
    /// (remex then reads it from REMEX_KEY_PASSPHRASE or a prompt).
    #[arg(long, value_name = "VAR")]
    pub passphrase_env: Option<String>,
}

/// `remex keys deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Which hosts: names, groups, `all`, globs, `!exclusions`, comma-separated.
    pub targets: String,
    /// The key to deploy (default: remote_execution.default_key).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Log in with this private key to deploy (instead of the host's usual key).
    #[arg(long, value_name = "PATH")]
    pub bootstrap_key: Option<PathBuf>,
    /// Log in with the password in this environment variable when keys are refused.
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
}

/// `remex keys rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Which hosts.
    pub targets: String,
    /// Name of the new key (default: remex-<UTC timestamp>); an unfinished
    /// rotation resumes with its own key.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The new key's type and size.
    #[command(flatten)]
    pub kind: KindArgs,
}

/// `remex keys revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Which hosts.
    pub targets: String,
    /// The key to remove (as `remex keys list` names it).
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// Revoke even when it is the only key remex can use for a host.
    #[arg(long)]
    pub force: bool,
}

/// Runs `remex keys …`.
pub(super) async fn run(global: &Global<'_>, command: KeysCommand) -> Result<Status> {
    let config = load_config(global.config)?;
    let json = global.json;
    match command {
        KeysCommand::Generate(args) => generate(global, &config, args).await,
        KeysCommand::List => list(&config, json),
        KeysCommand::Deploy(args) => deploy(global, config, args).await,
        KeysCommand::Rotate(args) => rotate(global, config, args).await,
        KeysCommand::Revoke(args) => revoke(global, config, args).await,
        KeysCommand::Prune { force } => prune(global, &config, force),
    }
}

/// `--name`, else `default_key` when it is a plain key name.
fn name_or_default(config: &Config, name: Option<String>) -> Result<String> {
    if let Some(name) = name {
        return Ok(name);
    }
    let default = &config.remote_execution.default_key;
    if keys::validate_name(default).is_err() {
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

async fn generate(global: &Global<'_>, config: &Config, args: GenerateArgs) -> Result<Status> {
    let json = global.json;
    let name = name_or_default(config, args.name)?;
    let kind = KeyKind::from_parts(&args.kind.key_type, args.kind.bits)?;
    let passphrase = passphrase(&args.kind)?;
    let dir = config.remote_execution.key_storage_path.clone();
    let comment = keys::default_comment();
    let log = global.audit_log(config)?;
    let run = audit::new_run_id();
    log.append(Record::new(Event::Start, Op::KeysGenerate, run.clone()).key(name.clone()))?;
    let key = tokio::task::spawn_blocking(move || {
        keys::generate(&dir, &name, kind, passphrase.as_deref(), &comment)
    })
    .await
    .context("key generation")?;
    let key = match key {
        Ok(key) => key,
        Err(err) => {
            let err = anyhow::Error::from(err);
            log.append(
                Record::new(Event::End, Op::KeysGenerate, run)
                    .error_kind("keys")
                    .error(format!("{err:#}")),
            )?;
            return Err(err);
        }
    };
    log.append(
        Record::new(Event::Key, Op::KeysGenerate, run)
            .action("generated")
            .key(key.name.clone())
            .fingerprint(key.fingerprint.clone())
            .paths([key.private_path.display().to_string()]),
    )?;
    if json {
        print_json(&serde_json::json!({
            "version": crate::run::report::SCHEMA_VERSION,
            "operation": "keys_generate",
            "name": key.name,
            "type": key.public_key.algorithm().as_str(),
            "fingerprint": key.fingerprint,
            "comment": key.public_key.comment().to_string(),
            "created": key.created,
            "private_key": key.private_path,
            "public_key": key.public_path,
        }))?;
    } else {
        println!(
            "generated {} key `{}`: {}\n  private key: {}\n  public key:  {}",
            key.public_key.algorithm().as_str(),
            key.name,
            key.fingerprint,
            key.private_path.display(),
            key.public_path.display()
        );
        eprintln!(
            "next: remex keys deploy TARGETS --name {} (add --password-env VAR for first contact)",
            key.name
        );
    }
    Ok(Status::Success)
}

fn list(config: &Config, json: bool) -> Result<Status> {
    let dir = &config.remote_execution.key_storage_path;
    let keys = keys::list(dir)?;
    let state = keys::load_state(dir)?;
    #[derive(Serialize)]
    struct HostUse {
        host: String,
        key: String,
        path: PathBuf,
        source: &'static str,
    }
    let hosts: Vec<HostUse> = config
        .vms
        .iter()
        .map(|(name, vm)| {
            let used = host_key(config, &state, name, vm);
            HostUse {
                host: name.clone(),
                key: used
                    .name
                    .clone()
                    .unwrap_or_else(|| used.path.display().to_string()),
                path: used.path,
                source: match used.source {
                    KeySource::Pinned => "config_key",
                    KeySource::State => "state",
                    KeySource::Default => "default_key",
                },
            }
        })
        .collect();
    if json {
        print_json(&serde_json::json!({
            "version": crate::run::report::SCHEMA_VERSION,
            "operation": "keys_list",
            "key_storage_path": dir,
            "keys": keys,
            "hosts": hosts,
            "rotations_in_progress": state.rotations,
        }))?;
        return Ok(Status::Success);
    }
    let rows: Vec<Vec<String>> = keys
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
    let rows: Vec<Vec<String>> = hosts
        .iter()
        .map(|h| vec![h.host.clone(), h.key.clone(), h.source.to_owned()])
        .collect();
    println!(
        "\n{}",
        render::table(&["HOST", "USES-KEY", "BECAUSE"], &rows)
    );
    for (host, rotation) in &state.rotations {
        eprintln!(
            "unfinished rotation on {host}: to `{}` (after step `{}`); run `remex keys rotate {host}` to finish it",
            rotation.new, rotation.step
        );
    }
    if keys.is_empty() {
        eprintln!(
            "no keys in {}; create one with `remex keys generate --name NAME`",
            dir.display()
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

async fn deploy(global: &Global<'_>, config: Config, args: DeployArgs) -> Result<Status> {
    let name = name_or_default(&config, args.name)?;
    let password = match &args.password_env {
        Some(var) => Some(PasswordSource::Given(Arc::new(Password::new(env_secret(
            "--password-env",
            var,
        )?)))),
        None if std::io::stdin().is_terminal() => Some(PasswordSource::prompt()),
        None => None,
    };
    if let Some(path) = &args.bootstrap_key
        && !path.exists()
    {
        bail!("--bootstrap-key {}: no such file", path.display());
    }
    let executor = global.executor(config)?;
    let request = keys::DeployRequest {
        name,
        bootstrap_key: args.bootstrap_key,
        password,
    };
    let report = keys::deploy(&executor, &args.targets, &request).await?;
    finish(&report, global.json)
}

async fn rotate(global: &Global<'_>, config: Config, args: RotateArgs) -> Result<Status> {
    let request = keys::RotateRequest {
        name: args.name,
        kind: KeyKind::from_parts(&args.kind.key_type, args.kind.bits)?,
        passphrase: passphrase(&args.kind)?,
    };
    let executor = global.executor(config)?;
    let report = keys::rotate(&executor, &args.targets, &request).await?;
    finish(&report, global.json)
}

async fn revoke(global: &Global<'_>, config: Config, args: RevokeArgs) -> Result<Status> {
    let executor = global.executor(config)?;
    let request = keys::RevokeRequest {
        name: args.name,
        force: args.force,
    };
    let report = keys::revoke(&executor, &args.targets, &request).await?;
    finish(&report, global.json)
}

/// Prints a deploy/rotate/revoke report and maps it to the exit status.
fn finish(report: &KeysReport, json: bool) -> Result<Status> {
    if json {
        print_json(report)?;
    } else {
        let width = render::name_width(report.results.iter().map(|r| r.host.as_str()));
        for outcome in &report.results {
            // Each key's fingerprint is shown the first time it appears.
            let mut shown: Vec<&str> = Vec::new();
            let changes: Vec<String> = outcome
                .changes
                .iter()
                .map(|c| {
                    let action = serde_json::to_value(c.action)
                        .ok()
                        .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
                        .unwrap_or_default();
                    if shown.contains(&c.key.as_str()) {
                        action
                    } else {
                        shown.push(&c.key);
                        format!("{action} `{}` ({})", c.key, c.fingerprint)
                    }
                })
                .collect();
            let host = &outcome.host;
            if !changes.is_empty() || outcome.ok {
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
        for archived in &report.archived {
            eprintln!(
                "archived key `{}` as {} (delete it with `remex keys prune`)",
                archived.name,
                archived.private_path.display()
            );
        }
        let s = &report.summary;
        eprintln!("{}", super::hosts::counts(s.total, s.ok, s.failed));
        let failed: Vec<&str> = report
            .results
            .iter()
            .filter(|r| !r.ok)
            .map(|r| r.host.as_str())
            .collect();
        if !failed.is_empty() {
            eprintln!("failed: {}", failed.join(","));
        }
    }
    Ok(super::run_status(
        report.audit_error.as_deref(),
        false,
        report.all_ok(),
    ))
}

fn prune(global: &Global<'_>, config: &Config, force: bool) -> Result<Status> {
    let json = global.json;
    let dir = &config.remote_execution.key_storage_path;
    let log = global.audit_log(config)?;
    let run = audit::new_run_id();
    log.append(Record::new(Event::Start, Op::KeysPrune, run.clone()))?;
    // Fingerprints, by archived name, for the records of what is deleted.
    let before = keys::load_state(dir)?;
    let report = keys::prune(dir, force)?;
    for key in &report.removed {
        let fingerprint = before
            .keys
            .get(&key.name)
            .map(|k| k.fingerprint.clone())
            .unwrap_or_default();
        log.append(
            Record::new(Event::Key, Op::KeysPrune, run.clone())
                .action("pruned")
                .key(key.name.clone())
                .fingerprint(fingerprint)
                .paths(key.files.iter().map(|f| f.display().to_string())),
        )?;
    }
    if json {
        print_json(&serde_json::json!({
            "version": crate::run::report::SCHEMA_VERSION,
            "operation": "keys_prune",
            "removed": report.removed,
            "kept": report.kept,
        }))?;
    } else {
        for key in &report.removed {
            println!("deleted archived key `{}`", key.name);
        }
        for key in &report.kept {
            eprintln!(
                "kept archived key `{}`: still deployed on {}; run `remex keys revoke {} --name {}` first, or prune --force",
                key.name,
                key.deployed_to.join(","),
                key.deployed_to.join(","),
                key.name
            );
        }
        eprintln!(
            "{} archived keys deleted, {} kept",
            report.removed.len(),
            report.kept.len()
        );
    }
    Ok(Status::Success)
}
