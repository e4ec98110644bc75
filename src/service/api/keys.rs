//! `/v1/keys`: the client-key lifecycle (scope `keys`).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::WaitQuery;
use super::openapi::Finished;
use super::rules::{KeyName, Selector};
use super::submit::{JobCall, JobRequest};
use crate::keys::{
    DeployRequest, KeyKind, KeyListing, KeysError, RevokeRequest, RotateRequest, validate_name,
};
use crate::run::Listing;
use crate::service::auth::{Caller, Scope};
use crate::service::error::{ApiError, ErrorBody};
use crate::service::jobs::Work;
use crate::service::state::{AppState, Shared};
use crate::service::view::JobView;
use crate::transport::{Password, PasswordSource};

/// The keys, which key each host uses, and rotations under way: of the
/// hosts this token may reach.
#[utoipa::path(get, path = "/v1/keys", tag = "keys", responses(
    (status = 200, description = "As `remex --json keys list`", body = KeysListing),
    (status = 403, description = "The token lacks the scope `keys`", body = ErrorBody),
))]
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Listing<KeyListing>>, ApiError> {
    caller.require(Scope::Keys)?;
    let executor = state.executor.clone();
    let mut listing = tokio::task::spawn_blocking(move || executor.keys_list())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let allowed = caller.allowed(&state.executor);
    let reaches = |host: &str| allowed.as_ref().is_some_and(|a| a.contains(host));
    listing.hosts.retain(|h| reaches(&h.host));
    listing
        .rotations_in_progress
        .retain(|host, _| reaches(host));
    Ok(axum::Json(Listing {
        operation: "keys.list",
        body: listing,
    }))
}

/// `GET /v1/keys`: the listing `remex --json keys list` prints.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct KeysListing {
    /// The schema's version.
    version: u32,
    /// `keys.list`.
    operation: String,
    /// The key directory.
    key_storage_path: String,
    /// Active keys, then archived ones, each sorted by name.
    #[schema(value_type = Vec<Object>)]
    keys: Vec<()>,
    /// Which key each host (of those the token may reach) uses.
    #[schema(value_type = Vec<Object>)]
    hosts: Vec<()>,
    /// Per host: a rotation that has not finished.
    #[schema(value_type = Object)]
    rotations_in_progress: (),
}

// No `Debug`: it holds a password.
/// `POST /v1/keys/deploy`.
#[derive(Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeployKeyRequest {
    /// Which hosts.
    #[schema(value_type = Selector)]
    pub targets: String,
    /// The key's name in the key directory.
    #[schema(value_type = KeyName)]
    pub name: String,
    /// Log in with this password where keys are refused (a secret).
    #[serde(default)]
    pub password: Option<String>,
    /// Same as for runs.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `POST /v1/keys/rotate`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateKeysRequest {
    /// Which hosts.
    #[schema(value_type = Selector)]
    pub targets: String,
    /// The new key's name (default `remex-<time>`).
    #[serde(default)]
    #[schema(value_type = Option<KeyName>)]
    pub name: Option<String>,
    /// `ed25519` (default), `ecdsa` or `rsa`.
    #[serde(default, rename = "type")]
    pub key_type: Option<String>,
    /// The size for `ecdsa` / `rsa`.
    #[serde(default, deserialize_with = "crate::config::whole::optional_u32")]
    pub bits: Option<u32>,
    /// Same as for runs.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// `POST /v1/keys/revoke`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeKeyRequest {
    /// Which hosts.
    #[schema(value_type = Selector)]
    pub targets: String,
    /// The key to remove.
    #[schema(value_type = KeyName)]
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
    responses(
        (status = 200, description = "The job ended within `wait`: its report", body = Finished),
        (status = 202, description = "Accepted and under way", body = JobView),
        (status = 403, description = "The token lacks the scope `keys`, or a selected host is outside its targets", body = ErrorBody),
        (status = 404, description = "`targets` names a host or group the inventory does not have, or selects none", body = ErrorBody),
        (status = 409, description = "The idempotency key was used with another body", body = ErrorBody),
    ))]
pub(crate) async fn deploy_key(call: JobCall<DeployKeyRequest>) -> Result<Response, ApiError> {
    call.submit().await
}

/// Replaces the key remex uses on the hosts, never locking one out.
#[utoipa::path(post, path = "/v1/keys/rotate", tag = "keys", request_body = RotateKeysRequest, params(WaitQuery),
    responses(
        (status = 200, description = "The job ended within `wait`: its report", body = Finished),
        (status = 202, description = "Accepted and under way", body = JobView),
        (status = 403, description = "The token lacks the scope `keys`, or a selected host is outside its targets", body = ErrorBody),
        (status = 404, description = "`targets` names a host or group the inventory does not have, or selects none", body = ErrorBody),
        (status = 409, description = "The idempotency key was used with another body", body = ErrorBody),
    ))]
pub(crate) async fn rotate_keys(call: JobCall<RotateKeysRequest>) -> Result<Response, ApiError> {
    call.submit().await
}

/// Removes a key from the hosts' authorized_keys.
#[utoipa::path(post, path = "/v1/keys/revoke", tag = "keys", request_body = RevokeKeyRequest, params(WaitQuery),
    responses(
        (status = 200, description = "The job ended within `wait`: its report", body = Finished),
        (status = 202, description = "Accepted and under way", body = JobView),
        (status = 403, description = "The token lacks the scope `keys`, or a selected host is outside its targets", body = ErrorBody),
        (status = 404, description = "`targets` names a host or group the inventory does not have, or selects none", body = ErrorBody),
        (status = 409, description = "The idempotency key was used with another body", body = ErrorBody),
    ))]
pub(crate) async fn revoke_key(call: JobCall<RevokeKeyRequest>) -> Result<Response, ApiError> {
    call.submit().await
}

/// 400 naming `name` when the key directory would refuse `name` (checked
/// before a job is made). The message does not repeat the name: it may be
/// anything a caller sent.
pub(crate) fn key_name(name: &str) -> Result<(), ApiError> {
    match validate_name(name) {
        Ok(()) => Ok(()),
        Err(KeysError::InvalidName { reason, .. }) => Err(ApiError::field(
            "name",
            format!(
                "not a key name: {reason}; use letters, digits, `.`, `_` and `-`, \
                 not starting with `.`"
            ),
        )),
        Err(e) => Err(ApiError::field("name", e.to_string())),
    }
}

impl JobRequest for DeployKeyRequest {
    fn scope(&self) -> Scope {
        Scope::Keys
    }

    fn targets(&self) -> &str {
        &self.targets
    }

    fn work(&self, _: &Shared) -> Result<Work, ApiError> {
        key_name(&self.name)?;
        Ok(Work::Deploy(DeployRequest {
            name: self.name.clone(),
            bootstrap_key: None,
            password: self
                .password
                .clone()
                .map(|p| PasswordSource::Given(Arc::new(Password::new(p)))),
        }))
    }

    fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }

    fn redacted(&self) -> Self {
        DeployKeyRequest {
            password: self.password.as_ref().map(|_| "[REDACTED]".to_owned()),
            ..self.clone()
        }
    }
}

impl RotateKeysRequest {
    /// The rotation it asks for: a key name that the key directory takes,
    /// a key type and a size it has.
    pub(crate) fn rotation(&self) -> Result<RotateRequest, ApiError> {
        if let Some(name) = &self.name {
            key_name(name)?;
        }
        let kind = KeyKind::from_parts(self.key_type.as_deref().unwrap_or("ed25519"), self.bits)
            .map_err(|e| ApiError::field("type", e.to_string()))?;
        Ok(RotateRequest {
            name: self.name.clone(),
            kind,
            passphrase: None,
        })
    }
}

impl JobRequest for RotateKeysRequest {
    fn scope(&self) -> Scope {
        Scope::Keys
    }

    fn targets(&self) -> &str {
        &self.targets
    }

    fn work(&self, _: &Shared) -> Result<Work, ApiError> {
        Ok(Work::Rotate(self.rotation()?))
    }

    fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }
}

impl JobRequest for RevokeKeyRequest {
    fn scope(&self) -> Scope {
        Scope::Keys
    }

    fn targets(&self) -> &str {
        &self.targets
    }

    fn work(&self, _: &Shared) -> Result<Work, ApiError> {
        key_name(&self.name)?;
        Ok(Work::Revoke(RevokeRequest {
            name: self.name.clone(),
            force: self.force,
        }))
    }

    fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }
}
