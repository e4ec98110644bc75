//! `/healthz`, `/v1/whoami`, `/metrics`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use crate::audit::format_ms;
use crate::service::auth::Caller;
use crate::service::metrics::Gauges;
use crate::service::state::AppState;

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// `ok`, or `shutting_down`.
    pub status: &'static str,
    /// remex's version.
    pub version: &'static str,
}

/// Whether the service is up (no token needed).
#[utoipa::path(get, path = "/healthz", tag = "service", security(()), responses((status = 200, body = Health)))]
pub(crate) async fn healthz(State(state): State<AppState>) -> axum::Json<Health> {
    axum::Json(Health {
        status: if state.jobs.closing() {
            "shutting_down"
        } else {
            "ok"
        },
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// `GET /v1/whoami`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WhoAmI {
    /// The token's name (the actor in the audit log).
    pub token: String,
    /// What it may do.
    pub scopes: Vec<String>,
    /// The hosts it may reach (a selector).
    pub targets: String,
    /// Those hosts, by name.
    pub hosts: Vec<String>,
    /// When it expires, if it does.
    pub expires: Option<String>,
}

/// The token the request came with: its scopes and hosts.
#[utoipa::path(get, path = "/v1/whoami", tag = "service", responses((status = 200, body = WhoAmI)))]
pub(crate) async fn whoami(State(state): State<AppState>, caller: Caller) -> axum::Json<WhoAmI> {
    let hosts = caller
        .allowed(&state.executor)
        .map(|allowed| allowed.hosts().to_vec())
        .unwrap_or_default();
    let token = caller.token;
    axum::Json(WhoAmI {
        hosts,
        token: token.name,
        scopes: token.scopes,
        targets: token.targets,
        expires: token.expires_ms.map(format_ms),
    })
}

/// Counters and gauges in Prometheus' text format (any valid token).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"))
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let gauges = Gauges {
        jobs_running: state.jobs.running(),
        connections_open: state.executor.open_connections(),
        connections_max: state.executor.config().remote_execution.max_parallel,
        hosts: state.executor.config().vms.len(),
        uptime: state.started.elapsed(),
        http_connections: state.gate.counts(),
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&gauges),
    )
}
