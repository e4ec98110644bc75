//! [`Work`]: what a job runs — one variant per operation the API offers,
//! and the one place that calls the [`Executor`] for them (mini-redis's
//! `Command::apply`: each command a small value, one place that drives
//! them).

use std::sync::Arc;

use serde::Serialize;

use crate::audit::Op;
use crate::exec::{Command, Exec};
use crate::keys::{DeployRequest, RevokeRequest, RotateRequest};
use crate::run::{Error as RunError, Executor, RunContext, RunReport, Summary};
use crate::targets::Selection;
use crate::transfer::Upload;
use crate::trust::TrustRequest;

/// What a job runs.
pub(crate) enum Work {
    /// `POST /v1/runs`: a command or a script.
    Exec(Exec),
    /// `POST /v1/files/upload`: the spooled file to every host.
    Upload {
        /// The upload.
        upload: Upload,
        /// The private directory the file was spooled to: removed as soon
        /// as the job is done with it.
        spool: Arc<tempfile::TempDir>,
    },
    /// `POST /v1/hosts/check`.
    Check,
    /// `POST /v1/hosts/trust`.
    Trust(TrustRequest),
    /// `POST /v1/keys/deploy`.
    Deploy(DeployRequest),
    /// `POST /v1/keys/rotate`.
    Rotate(RotateRequest),
    /// `POST /v1/keys/revoke`.
    Revoke(RevokeRequest),
}

impl Work {
    /// The operation, as the audit log and the job name it.
    pub(crate) fn op(&self) -> Op {
        match self {
            Work::Exec(exec) if matches!(exec.command, Command::Script { .. }) => Op::Script,
            Work::Exec(_) => Op::Exec,
            Work::Upload { .. } => Op::Upload,
            Work::Check => Op::Check,
            Work::Trust(_) => Op::HostsTrust,
            Work::Deploy(_) => Op::KeysDeploy,
            Work::Rotate(_) => Op::KeysRotate,
            Work::Revoke(_) => Op::KeysRevoke,
        }
    }

    /// Runs it on `hosts` under `ctx`. Each operation redacts its own
    /// secrets (a `secret_env` value, a sudo or login password) from what
    /// the run shows.
    pub(crate) async fn run(
        self,
        executor: &Executor,
        ctx: &RunContext,
        hosts: &Selection,
    ) -> Result<Finished, RunError> {
        Ok(match self {
            Work::Exec(exec) => Finished::of(&executor.exec(ctx, hosts, &exec).await?),
            Work::Upload { upload, spool } => {
                let report = executor.upload(ctx, hosts, &upload).await;
                // The spooled bytes go as soon as the hosts have them.
                drop(spool);
                Finished::of(&report?)
            }
            Work::Check => Finished::of(&executor.check(ctx, hosts).await?),
            Work::Trust(trust) => Finished::of(&executor.hosts_trust(ctx, hosts, &trust).await?),
            Work::Deploy(deploy) => Finished::of(&executor.keys_deploy(ctx, hosts, &deploy).await?),
            Work::Rotate(rotate) => Finished::of(&executor.keys_rotate(ctx, hosts, &rotate).await?),
            Work::Revoke(revoke) => Finished::of(&executor.keys_revoke(ctx, hosts, &revoke).await?),
        })
    }
}

/// What a finished run leaves: its report, and how it went.
#[derive(Debug, Clone)]
pub(crate) struct Finished {
    /// The report as JSON (the CLI's `--json` document), as the job keeps it.
    pub report: String,
    /// Its counts.
    pub summary: Summary,
    /// Whether every host succeeded.
    pub all_ok: bool,
    /// Whether a cancel stopped or skipped some host.
    pub cancelled: bool,
}

impl Finished {
    /// How `report` went.
    fn of<T: Serialize, D: Serialize>(report: &RunReport<T, D>) -> Finished {
        Finished {
            report: serde_json::to_string(report).unwrap_or_default(),
            summary: report.summary.clone(),
            all_ok: report.all_ok(),
            cancelled: report.cancelled(),
        }
    }
}
