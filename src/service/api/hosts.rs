//! `/v1/hosts`: the inventory, checks, and host-key trust in two steps.

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Params, WaitQuery};
use super::openapi::Finished;
use super::rules::{Fingerprint, Selector};
use super::submit::{JobCall, JobRequest};
use crate::config::HostEntry;
use crate::service::auth::{Caller, Scope};
use crate::service::error::{ApiError, ErrorBody};
use crate::service::jobs::Work;
use crate::service::state::{AppState, Shared};
use crate::service::view::JobView;
use crate::trust::TrustRequest;

/// `GET /v1/hosts?targets=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct HostsQuery {
    /// Only the hosts this selector selects.
    #[param(value_type = Option<Selector>)]
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
#[utoipa::path(get, path = "/v1/hosts", tag = "hosts", params(HostsQuery), responses(
    (status = 200, body = HostsView),
    (status = 403, description = "The token lacks the scope `hosts`", body = ErrorBody),
    (status = 404, description = "`targets` names a host or group the inventory does not have, or selects none", body = ErrorBody),
))]
pub(crate) async fn list_hosts(
    State(state): State<AppState>,
    caller: Caller,
    Params(query): Params<HostsQuery>,
) -> Result<axum::Json<HostsView>, ApiError> {
    caller.require(Scope::Hosts)?;
    let wanted = match &query.targets {
        Some(selector) => Some(
            state
                .executor
                .select(selector)
                .map_err(|e| ApiError::targets("targets", &e))?,
        ),
        None => None,
    };
    let allowed = caller.allowed(&state.executor);
    let hosts = state
        .executor
        .config()
        .host_list()
        .hosts
        .into_iter()
        .filter(|h| allowed.as_ref().is_some_and(|a| a.contains(&h.name)))
        .filter(|h| wanted.as_ref().is_none_or(|w| w.contains(&h.name)))
        .collect();
    Ok(axum::Json(HostsView { hosts }))
}

/// `POST /v1/hosts/check`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckRequest {
    /// Which hosts (a selector).
    #[schema(value_type = Selector)]
    pub targets: String,
}

/// Checks the selected hosts: reachable, host key, login, round trip.
#[utoipa::path(
    post,
    path = "/v1/hosts/check",
    tag = "hosts",
    request_body = CheckRequest,
    params(WaitQuery),
    responses(
        (status = 200, description = "The job ended within `wait`: its report", body = Finished),
        (status = 202, description = "Accepted and under way", body = JobView),
        (status = 403, description = "The token lacks the scope, or a selected host is outside its targets", body = ErrorBody),
        (status = 404, description = "`targets` names a host or group the inventory does not have, or selects none", body = ErrorBody),
    )
)]
pub(crate) async fn check_hosts(call: JobCall<CheckRequest>) -> Result<Response, ApiError> {
    call.submit().await
}

impl JobRequest for CheckRequest {
    fn scope(&self) -> Scope {
        Scope::Hosts
    }

    fn targets(&self) -> &str {
        &self.targets
    }

    fn work(&self, _: &Shared) -> Result<Work, ApiError> {
        Ok(Work::Check)
    }
}

/// `POST /v1/hosts/trust`: first `scan` (see the keys the hosts offer,
/// write nothing), check the fingerprints out of band, then trust with
/// `fingerprints`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrustHostsRequest {
    /// Which hosts (a selector).
    #[schema(value_type = Selector)]
    pub targets: String,
    /// Only report the offered keys (`action: offered`); pin nothing.
    #[serde(default)]
    pub scan: bool,
    /// Pin a host's key only when it is one of these (`SHA256:…`).
    #[serde(default)]
    #[schema(value_type = Vec<Fingerprint>)]
    pub fingerprints: Vec<String>,
    /// Replace the pin of a host whose key changed (with `fingerprints`).
    #[serde(default)]
    pub replace: bool,
    /// Same as for runs.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

impl TrustHostsRequest {
    /// The trust it asks for: a scan, or fingerprints to pin.
    pub(crate) fn trust(&self) -> Result<TrustRequest, ApiError> {
        if !self.scan && self.fingerprints.is_empty() {
            return Err(ApiError::field(
                "fingerprints",
                "say which keys to pin (`fingerprints`, checked out of band), or `scan: true` to see them first",
            ));
        }
        if let Some(bad) = self.fingerprints.iter().find(|f| !f.starts_with("SHA256:")) {
            return Err(ApiError::field(
                "fingerprints",
                format!(
                    "`{}` is not a SHA256 fingerprint as `ssh-keygen -l` prints it",
                    bad.escape_default()
                ),
            ));
        }
        Ok(TrustRequest {
            fingerprints: self.fingerprints.clone(),
            yes: false,
            replace: self.replace,
            scan_only: self.scan,
        })
    }
}

/// Scans host keys, or pins the ones given by fingerprint.
#[utoipa::path(
    post,
    path = "/v1/hosts/trust",
    tag = "hosts",
    request_body = TrustHostsRequest,
    params(WaitQuery),
    responses(
        (status = 200, description = "The job ended within `wait`: its report", body = Finished),
        (status = 202, description = "Accepted and under way", body = JobView),
        (status = 403, description = "The token lacks the scope, or a selected host is outside its targets", body = ErrorBody),
        (status = 404, description = "`targets` names a host or group the inventory does not have, or selects none", body = ErrorBody),
        (status = 409, description = "The idempotency key was used with another body", body = ErrorBody),
    )
)]
pub(crate) async fn trust_hosts(call: JobCall<TrustHostsRequest>) -> Result<Response, ApiError> {
    call.submit().await
}

impl JobRequest for TrustHostsRequest {
    fn scope(&self) -> Scope {
        Scope::Hosts
    }

    fn targets(&self) -> &str {
        &self.targets
    }

    fn work(&self, _: &Shared) -> Result<Work, ApiError> {
        Ok(Work::Trust(self.trust()?))
    }

    fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }
}
