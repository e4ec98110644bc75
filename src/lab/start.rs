//! Starting every server of a lab on one port, and starting over on
//! another port when one is taken meanwhile.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Child;
use std::time::Duration;

use super::error::LabError;
use super::plan::Plan;
use super::server;
use super::state::{self, HostState, LabState};

/// How many ports `up` tries when another process takes its port between
/// the check and the servers' bind.
const PORT_ATTEMPTS: usize = 5;

/// How long `up` waits for servers to be ready: this, plus
/// [`READY_TIMEOUT_PER_HOST`] per host.
pub(super) const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// See [`READY_TIMEOUT`].
const READY_TIMEOUT_PER_HOST: Duration = Duration::from_millis(20);

/// Picks a port, starts every server on it and waits until all are
/// ready; starts over on a new port if one server finds its address
/// taken. Records the pids in `lab.json` as soon as the servers are
/// started, so that `down` can stop them even if this process dies.
pub(super) fn start_all(plan: &Plan<'_>) -> Result<(u16, Vec<Child>), LabError> {
    let started = start_attempts(plan);
    if started.is_err() {
        // Whatever an earlier attempt recorded is dead by now.
        let _ = state::remove(&plan.layout.state());
    }
    started
}

/// The attempts of [`start_all`]; each one leaves no server running
/// unless it succeeds.
fn start_attempts(plan: &Plan<'_>) -> Result<(u16, Vec<Child>), LabError> {
    let timeout = READY_TIMEOUT
        + READY_TIMEOUT_PER_HOST
            .saturating_mul(u32::try_from(plan.names.len()).unwrap_or(u32::MAX));
    for attempt in 1..=PORT_ATTEMPTS {
        // Addresses in a namespace cannot be tried from here, and nothing
        // else listens there; the loopback ones are tried (harmlessly).
        let outside: Vec<Ipv4Addr> = plan
            .addresses
            .iter()
            .copied()
            .filter(|a| a.is_loopback())
            .collect();
        let port = server::pick_port(&outside)?;
        let pending: Vec<server::Pending<'_>> = plan
            .names
            .iter()
            .zip(plan.addresses)
            .map(|(name, address)| server::Pending {
                name,
                listen: SocketAddrV4::new(*address, port),
            })
            .collect();
        for host in &pending {
            server::write_config(plan, host.name, host.listen)?;
        }
        if let Some(first) = pending.first() {
            server::validate(plan.kind, plan.server, plan.layout, first.name)?;
        }

        let mut children = Vec::with_capacity(pending.len());
        for host in &pending {
            match server::spawn(
                plan.kind,
                plan.server,
                plan.layout,
                host.name,
                host.listen,
                plan.namespace,
            ) {
                Ok(child) => children.push(child),
                Err(error) => {
                    server::kill_all(&mut children);
                    return Err(error);
                }
            }
        }
        let state = LabState {
            version: state::VERSION,
            server: plan.kind,
            server_path: plan.server.to_owned(),
            port,
            user: plan.user.to_owned(),
            hosts: pending
                .iter()
                .zip(&children)
                .map(|(host, child)| HostState {
                    name: host.name.to_owned(),
                    address: *host.listen.ip(),
                    pid: child.id(),
                })
                .collect(),
            authorized_key: plan.authorized_key.cloned(),
            password_user: plan.password_user.cloned(),
            namespace: plan.namespace.map(str::to_owned),
        };
        if let Err(error) = state::write(&plan.layout.state(), &state) {
            server::kill_all(&mut children);
            return Err(error);
        }
        let probe = plan.namespace.is_none();
        match server::wait_ready(plan.layout, &mut children, &pending, timeout, probe) {
            server::Readiness::Ready => return Ok((port, children)),
            server::Readiness::PortTaken => {
                tracing::debug!(port, attempt, "lab port taken meanwhile; trying another");
                server::kill_all(&mut children);
            }
            server::Readiness::Failed(error) => {
                server::kill_all(&mut children);
                return Err(error);
            }
        }
    }
    Err(LabError::NoFreePort {
        hosts: plan.names.len(),
        attempts: PORT_ATTEMPTS,
    })
}
