//! `remex hosts check`: for each host, whether it is reachable, whether its
//! host key is pinned, whether remex can log in, and the round trip of a
//! no-op command on the open connection.

use serde::Serialize;

use crate::audit::{Op, Record};
use crate::failure::{ErrorKind, Failure};
use crate::run::report::{NoDetails, RunReport};
use crate::run::runner::{HostDetail, HostRun, Operation, Redact};
use crate::run::{Error, Executor, RunContext};
use crate::targets::Targets;

/// One host's check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// Whether TCP and the SSH handshake got through.
    pub reachable: bool,
    /// `pinned`, `certified` (a host certificate an `@cert-authority` line
    /// vouches for), `unknown`, `changed`, `revoked`, `certificate` (a host
    /// certificate refused), `pin_failed` or `unreadable`.
    pub host_key: &'static str,
    /// SHA256 fingerprint of the verified host key.
    pub host_key_fingerprint: Option<String>,
    /// Whether authentication succeeded.
    pub auth: bool,
    /// Round trip of a no-op command on the open connection, in ms.
    pub rtt_ms: Option<f64>,
}

impl Default for CheckResult {
    fn default() -> Self {
        CheckResult {
            reachable: false,
            host_key: "unknown",
            host_key_fingerprint: None,
            auth: false,
            rtt_ms: None,
        }
    }
}

impl Redact for CheckResult {}

impl HostDetail for CheckResult {
    fn end_record(&self, mut record: Record) -> Record {
        if let Some(key) = &self.host_key_fingerprint {
            record = record.host_key(key.clone());
        }
        record
    }
}

/// The report of `hosts check`.
pub type CheckReport = RunReport<CheckResult>;

impl Executor {
    /// Checks each selected host: reachable, host key, authentication, and
    /// the round trip of a no-op command.
    ///
    /// # Errors
    ///
    /// A selector that selects nothing, or an audit log that cannot record
    /// the run.
    pub async fn check(
        &self,
        ctx: &RunContext,
        targets: impl Into<Targets<'_>>,
    ) -> Result<CheckReport, Error> {
        let selection = self.resolve(targets.into())?;
        let hosts = selection.hosts().to_vec();
        self.run(ctx, hosts, Check).await
    }
}

/// Whether known_hosts pins a key for the host.
fn pinned(host: &HostRun<'_>) -> bool {
    crate::transport::host_key::current(host.executor().known_hosts()).is_ok_and(|known| {
        !known
            .pinned(&host.endpoint.host, host.endpoint.port)
            .is_empty()
    })
}

/// `hosts check` as an operation of the runner.
struct Check;

impl Operation for Check {
    type Detail = CheckResult;
    type Details = NoDetails;

    fn op(&self) -> Op {
        Op::Check
    }

    async fn host(&self, host: &mut HostRun<'_>, check: &mut CheckResult) -> Result<(), Failure> {
        let conn = match host.connection().await {
            Ok(conn) => conn,
            Err(failure) => {
                check.reachable = !matches!(
                    failure.kind,
                    ErrorKind::Dns | ErrorKind::Connect | ErrorKind::ConnectTimeout
                );
                if let Some(problem) = &failure.host_key {
                    check.host_key = problem.state();
                } else if failure.kind == ErrorKind::Auth || pinned(host) {
                    // Auth comes after the key was accepted; unreached hosts
                    // report what known_hosts holds for them.
                    check.host_key = "pinned";
                }
                return Err(failure);
            }
        };
        check.reachable = true;
        check.host_key = if conn.host_key().is_certificate() {
            "certified"
        } else {
            "pinned"
        };
        check.host_key_fingerprint = Some(conn.host_key_fingerprint().to_owned());
        check.auth = true;
        let begun = std::time::Instant::now();
        conn.run_helper("true", None).await?;
        check.rtt_ms = Some(begun.elapsed().as_secs_f64() * 1000.0);
        Ok(())
    }
}
