//! `/v1/hosts`: the inventory, checks, and host-key trust in two steps.

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::body::JsonBody;
use super::runs::{NewJob, WaitQuery, submit};
use super::{AppState, RequestId};
use crate::config::HostEntry;
use crate::ops::trust::TrustRequest;
use crate::service::auth::{Caller, Scope};
use crate::service::error::ApiError;
use crate::service::jobs::Finished;

/// `GET /v1/hosts?targets=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct HostsQuery {
    /// Only the hosts this selector selects.
    pub targets: Option<String>,
}

/// The hosts a token may reach.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HostsView {
    /// In inventory order.
    #[schema(value_type = Vec<Object>)]
    pub hosts: Vec<HostEntry>,
}

/// The inventory: the hosts the token may reach (`targets` narrows it).
#[utoipa::path(get, path = "/v1/hosts", tag = "hosts", params(HostsQuery), responses((status = 200, body = HostsView)))]
pub(crate) async fn list_hosts(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<HostsQuery>,
) -> Result<axum::Json<HostsView>, ApiError> {
    caller.require(Scope::Hosts)?;
    let wanted = match &query.targets {
        Some(selector) => Some(
            state
                .executor
                .select(selector)
                .map_err(|e| ApiError::field("targets", e.to_string()))?,
        ),
        None => None,
    };
    let hosts = state
        .executor
        .config()
        .host_list()
        .hosts
        .into_iter()
        .filter(|h| caller.sees(&state.executor, &h.name))
        .filter(|h| wanted.as_ref().is_none_or(|w| w.contains(&h.name)))
        .collect();
    Ok(axum::Json(HostsView { hosts }))
}

/// `POST /v1/hosts/check`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckRequest {
    /// Which hosts (a selector).
    pub targets: String,
}

/// Checks the selected hosts: reachable, host key, login, round trip.
#[utoipa::path(
    post,
    path = "/v1/hosts/check",
    tag = "hosts",
    request_body = CheckRequest,
    params(WaitQuery),
    responses((status = 200, description = "The report"), (status = 202, body = super::jobs::JobView))
)]
pub(crate) async fn check_hosts(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(request_id): Extension<RequestId>,
    Query(query): Query<WaitQuery>,
    JsonBody(request): JsonBody<CheckRequest>,
) -> Result<Response, ApiError> {
    let wait = super::body::wait(query.wait.as_deref(), state.config.limits.max_wait)?;
    caller.require(Scope::Hosts)?;
    let selector = request.targets.clone();
    let job = NewJob {
        operation: "check",
        targets: &request.targets,
        request: &request,
        parallel: None,
        secrets: Vec::new(),
        work: Box::new(move |executor, ctx| {
            Box::pin(async move {
                let report = executor.check(&ctx, &selector).await?;
                Ok(Finished::of(&report))
            })
        }),
    };
    submit(&state, &caller, &request_id, wait, job).await
}

/// `POST /v1/hosts/trust`: first `scan` (see the keys the hosts offer,
/// write nothing), check the fingerprints out of band, then trust with
/// `fingerprints`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrustHostsRequest {
    /// Which hosts (a selector).
    pub targets: String,
    /// Only report the offered keys (`action: offered`); pin nothing.
    #[serde(default)]
    pub scan: bool,
    /// Pin a host's key only when it is one of these (`SHA256:…`).
    #[serde(default)]
    pub fingerprints: Vec<String>,
    /// Replace the pin of a host whose key changed (with `fingerprints`).
    #[serde(default)]
    pub replace: bool,
    /// Same as for runs.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// Scans host keys, or pins the ones given by fingerprint.
#[utoipa::path(
    post,
    path = "/v1/hosts/trust",
    tag = "hosts",
    request_body = TrustHostsRequest,
    params(WaitQuery),
    responses((status = 200, description = "The report"), (status = 202, body = super::jobs::JobView), (status = 400, body = crate::service::error::ErrorBody))
)]
pub(crate) async fn trust_hosts(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(request_id): Extension<RequestId>,
    Query(query): Query<WaitQuery>,
    JsonBody(request): JsonBody<TrustHostsRequest>,
) -> Result<Response, ApiError> {
    let wait = super::body::wait(query.wait.as_deref(), state.config.limits.max_wait)?;
    caller.require(Scope::Hosts)?;
    if !request.scan && request.fingerprints.is_empty() {
        return Err(ApiError::field(
            "fingerprints",
            "say which keys to pin (`fingerprints`, checked out of band), or `scan: true` to see them first",
        ));
    }
    if let Some(bad) = request
        .fingerprints
        .iter()
        .find(|f| !f.starts_with("SHA256:"))
    {
        return Err(ApiError::field(
            "fingerprints",
            format!("`{bad}` is not a SHA256 fingerprint as `ssh-keygen -l` prints it"),
        ));
    }
    let selector = request.targets.clone();
    let trust = TrustRequest {
        fingerprints: request.fingerprints.clone(),
        yes: false,
        replace: request.replace,
        scan_only: request.scan,
    };
    let job = NewJob {
        operation: "hosts.trust",
        targets: &request.targets,
        request: &request,
        parallel: None,
        secrets: Vec::new(),
        work: Box::new(move |executor, ctx| {
            Box::pin(async move {
                let report = executor.hosts_trust(&ctx, &selector, &trust).await?;
                Ok(Finished::of(&report))
            })
        }),
    };
    submit(&state, &caller, &request_id, wait, job).await
}
