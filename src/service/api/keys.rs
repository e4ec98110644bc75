//! `/v1/keys`: the client-key lifecycle (scope `keys`).

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::JsonBody;
use super::runs::{NewJob, WaitQuery, submit};
use super::{AppState, RequestId};
use crate::ops::keys::{DeployRequest, KeyKind, RevokeRequest, RotateRequest};
use crate::service::auth::{Caller, Scope};
use crate::service::error::ApiError;
use crate::service::jobs::{Finished, Work};
use crate::transport::{Password, PasswordSource};

/// The keys, which key each host uses, and rotations under way.
#[utoipa::path(get, path = "/v1/keys", tag = "keys", responses((status = 200, description = "As `remex --json keys list`")))]
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    caller.require(Scope::Keys)?;
    let executor = state.executor.clone();
    let listing = tokio::task::spawn_blocking(move || executor.keys_list())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut value = serde_json::to_value(crate::run::Listing {
        operation: "keys.list",
        body: &listing,
    })
    .unwrap_or_default();
    // Only the hosts this token may reach.
    if let Some(hosts) = value.get_mut("hosts").and_then(|h| h.as_array_mut()) {
        hosts.retain(|h| {
            h["host"]
                .as_str()
                .is_some_and(|name| caller.sees(&state.executor, name))
        });
    }
    Ok(axum::Json(value))
}

/// `POST /v1/keys/deploy`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeployKeyRequest {
    /// Which hosts.
    pub targets: String,
    /// The key's name in the key directory.
    pub name: String,
    /// Log in with this password where keys are refused (a secret).
    #[serde(default)]
    pub password: Option<String>,
    /// Same as for runs.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `POST /v1/keys/rotate`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateKeysRequest {
    /// Which hosts.
    pub targets: String,
    /// The new key's name (default `remex-<time>`).
    #[serde(default)]
    pub name: Option<String>,
    /// `ed25519` (default), `ecdsa` or `rsa`.
    #[serde(default, rename = "type")]
    pub key_type: Option<String>,
    /// The size for `ecdsa` / `rsa`.
    #[serde(default)]
    pub bits: Option<u32>,
    /// Same as for runs.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `POST /v1/keys/revoke`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeKeyRequest {
    /// Which hosts.
    pub targets: String,
    /// The key to remove.
    pub name: String,
    /// Also when it is the only key remex can use on a host.
    #[serde(default)]
    pub force: bool,
    /// Same as for runs.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// Adds a key to the hosts' authorized_keys and verifies a login with it.
#[utoipa::path(post, path = "/v1/keys/deploy", tag = "keys", request_body = DeployKeyRequest, params(WaitQuery),
    responses((status = 200, description = "The report"), (status = 202, body = super::jobs::JobView)))]
pub(crate) async fn deploy_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(request_id): Extension<RequestId>,
    Query(query): Query<WaitQuery>,
    JsonBody(request): JsonBody<DeployKeyRequest>,
) -> Result<Response, ApiError> {
    let deploy = DeployRequest {
        name: request.name.clone(),
        bootstrap_key: None,
        password: request
            .password
            .clone()
            .map(|p| PasswordSource::Given(Arc::new(Password::new(p)))),
    };
    let secrets: Vec<String> = request.password.iter().cloned().collect();
    let selector = request.targets.clone();
    let work: Work = Box::new(move |executor, ctx| {
        Box::pin(async move {
            let report = executor.keys_deploy(&ctx, &selector, &deploy).await?;
            Ok(Finished::of(&report))
        })
    });
    let job = NewJob {
        operation: "keys.deploy",
        targets: &request.targets,
        request: &request,
        parallel: None,
        secrets,
        work,
    };
    key_job(&state, &caller, &request_id, &query, job).await
}

/// Replaces the key remex uses on the hosts, never locking one out.
#[utoipa::path(post, path = "/v1/keys/rotate", tag = "keys", request_body = RotateKeysRequest, params(WaitQuery),
    responses((status = 200, description = "The report"), (status = 202, body = super::jobs::JobView)))]
pub(crate) async fn rotate_keys(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(request_id): Extension<RequestId>,
    Query(query): Query<WaitQuery>,
    JsonBody(request): JsonBody<RotateKeysRequest>,
) -> Result<Response, ApiError> {
    let kind = KeyKind::from_parts(
        request.key_type.as_deref().unwrap_or("ed25519"),
        request.bits,
    )
    .map_err(|e| ApiError::field("type", e.to_string()))?;
    let rotate = RotateRequest {
        name: request.name.clone(),
        kind,
        passphrase: None,
    };
    let selector = request.targets.clone();
    let work: Work = Box::new(move |executor, ctx| {
        Box::pin(async move {
            let report = executor.keys_rotate(&ctx, &selector, &rotate).await?;
            Ok(Finished::of(&report))
        })
    });
    let job = NewJob {
        operation: "keys.rotate",
        targets: &request.targets,
        request: &request,
        parallel: None,
        secrets: Vec::new(),
        work,
    };
    key_job(&state, &caller, &request_id, &query, job).await
}

/// Removes a key from the hosts' authorized_keys.
#[utoipa::path(post, path = "/v1/keys/revoke", tag = "keys", request_body = RevokeKeyRequest, params(WaitQuery),
    responses((status = 200, description = "The report"), (status = 202, body = super::jobs::JobView)))]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(request_id): Extension<RequestId>,
    Query(query): Query<WaitQuery>,
    JsonBody(request): JsonBody<RevokeKeyRequest>,
) -> Result<Response, ApiError> {
    let revoke = RevokeRequest {
        name: request.name.clone(),
        force: request.force,
    };
    let selector = request.targets.clone();
    let work: Work = Box::new(move |executor, ctx| {
        Box::pin(async move {
            let report = executor.keys_revoke(&ctx, &selector, &revoke).await?;
            Ok(Finished::of(&report))
        })
    });
    let job = NewJob {
        operation: "keys.revoke",
        targets: &request.targets,
        request: &request,
        parallel: None,
        secrets: Vec::new(),
        work,
    };
    key_job(&state, &caller, &request_id, &query, job).await
}

/// What the three key operations share: the `keys` scope, then the job.
async fn key_job<T: Serialize>(
    state: &AppState,
    caller: &Caller,
    request_id: &RequestId,
    query: &WaitQuery,
    job: NewJob<'_, T>,
) -> Result<Response, ApiError> {
    let wait = super::body::wait(query.wait.as_deref(), state.config.limits.max_wait)?;
    caller.require(Scope::Keys)?;
    submit(state, caller, request_id, wait, job).await
}
