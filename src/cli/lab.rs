//! `remex lab up|down|status`: local labs of real sshd hosts.

use std::path::{Path, PathBuf};

use anyhow::Result;
use remex::lab;

use super::args::{LabCommand, Server};
use super::{Status, print_listing, render};

/// Runs `remex lab …`.
pub(super) async fn run(command: LabCommand, json: bool) -> Result<Status> {
    match command {
        LabCommand::Up {
            hosts,
            dir,
            server,
            password_user,
            password_env,
            bastion,
            ca,
        } => {
            let password = password_env
                .as_deref()
                .map(|var| super::keys::env_secret("--password-env", var))
                .transpose()?;
            let spec = lab::LabSpec {
                hosts: hosts as usize,
                dir,
                server: match server {
                    Server::Openssh => lab::ServerKind::OpenSsh,
                    Server::Dropbear => lab::ServerKind::Dropbear,
                },
                user: None,
                password_user: password_user.map(|name| lab::PasswordUser { name, password }),
                bastion,
                ca,
            };
            let lab = lab::up(&spec).await?;
            if json {
                print_listing("lab.up", &lab)?;
                return Ok(Status::Success);
            }
            let table: Vec<Vec<String>> = lab
                .hosts
                .iter()
                .map(|h| {
                    vec![
                        h.name.clone(),
                        h.socket_addr().to_string(),
                        h.pid.to_string(),
                    ]
                })
                .collect();
            println!("{}", render::table(&["NAME", "ADDRESS", "PID"], &table));
            let remex = invocation();
            let config = quote_path(&lab.config_path);
            if let Some(file) = &lab.password_file {
                eprintln!(
                    "password lab: log in as `{user}` with the password in {file} (no key is authorized yet); try:\n  \
                     {remex} --config {config} keys generate --name demo\n  \
                     REMEX_PASSWORD=$(cat {file}) {remex} --config {config} keys deploy all --name demo --password-env REMEX_PASSWORD\n  \
                     {remex} --config {config} exec all -- id",
                    user = lab.user,
                    file = quote_path(file),
                );
            }
            if let Some(ca) = &lab.ca {
                eprintln!(
                    "the hosts trust certificates of the lab CA {}: the client key has one \
                     (keys/id_ed25519-cert.pub), no key is authorized, and known_hosts holds \
                     one @cert-authority line instead of pins",
                    quote_path(ca)
                );
            }
            if let Some(namespace) = &lab.namespace {
                eprintln!(
                    "the hosts listen in the network namespace {namespace}: only `bastion` reaches them \
                     (config.yml has `jump: bastion`); `{remex} --config {config} --jump none exec vm01 -- true` \
                     shows the direct path refused"
                );
            }
            eprintln!(
                "lab is up: {} hosts, logging in as {}\ntry:  {remex} --config {config} exec all -- uname -a\nstop: {remex} lab down --dir {}",
                lab.hosts.len(),
                lab.user,
                quote_path(&lab.dir)
            );
            Ok(Status::Success)
        }
        LabCommand::Down { dir } => {
            let report = lab::down(&dir)?;
            if json {
                print_listing("lab.down", &report)?;
            } else {
                let stopped = report.stopped.len() + report.killed.len();
                eprintln!(
                    "lab in {} is down: {stopped} servers stopped, {} were not running",
                    report.dir.display(),
                    report.not_running.len()
                );
            }
            Ok(Status::Success)
        }
        LabCommand::Status { dir } => {
            let status = lab::status(&dir)?;
            if json {
                print_listing("lab.status", &status)?;
            } else {
                let rows: Vec<Vec<String>> = status
                    .hosts
                    .iter()
                    .map(|h| {
                        vec![
                            h.name.clone(),
                            format!("{}:{}", h.address, h.port),
                            h.pid.to_string(),
                            if h.running { "running" } else { "stopped" }.to_owned(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    render::table(&["NAME", "ADDRESS", "PID", "STATE"], &rows)
                );
                eprintln!("config: {}", status.config_path.display());
            }
            Ok(if status.all_running() {
                Status::Success
            } else {
                Status::HostFailed
            })
        }
    }
}

/// How the hint lines `up` prints call remex, so that they work as printed:
/// `remex` when that name on `PATH` is this very program, else this
/// program's own path (a fresh build in `target/`, or an older install
/// shadowing it on `PATH`, would make a plain `remex` fail or run another
/// version).
fn invocation() -> String {
    let Ok(this) = std::env::current_exe().and_then(|exe| exe.canonicalize()) else {
        return "remex".to_owned();
    };
    match on_path("remex") {
        Some(found) if found.canonicalize().is_ok_and(|found| found == this) => "remex".to_owned(),
        _ => quote_path(&this),
    }
}

/// The first executable file called `name` in a directory of `PATH`, as
/// the shell would find it.
fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|file| {
            file.metadata()
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

/// A path as one shell word, for a line meant to be copied.
fn quote_path(path: &Path) -> String {
    remex::quote::quote(&path.to_string_lossy())
}
