//! `remex lab up|down|status`: local labs of real sshd hosts.

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
            let config = lab.config_path.display();
            if let Some(file) = &lab.password_file {
                eprintln!(
                    "password lab: log in as `{user}` with the password in {file} (no key is authorized yet); try:\n  \
                     remex --config {config} keys generate --name demo\n  \
                     REMEX_PASSWORD=$(cat {file}) remex --config {config} keys deploy all --name demo --password-env REMEX_PASSWORD\n  \
                     remex --config {config} exec all -- id",
                    user = lab.user,
                    file = file.display(),
                );
            }
            eprintln!(
                "lab is up: {} hosts, logging in as {}\ntry:  remex --config {config} exec all -- uname -a\nstop: remex lab down --dir {}",
                lab.hosts.len(),
                lab.user,
                lab.dir.display()
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
