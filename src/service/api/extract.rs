//! What a handler asks of a request besides its path: who is calling
//! ([`Caller`]), the request's id ([`RequestId`]), `?wait=` ([`Wait`]) and
//! a JSON body ([`JsonBody`]) — extractors, so a handler's signature says
//! what it needs.
//!
//! The caller is authenticated by the guard every request passes (see
//! `api/mod.rs`), not here: every route but the open ones is closed to a
//! request without a valid token even if its handler never asks who
//! called (deny by default). The extractor hands the handler that caller.

use std::time::Duration;

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

use crate::service::auth::Caller;
use crate::service::error::ApiError;
use crate::service::state::AppState;

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::unauthorized(
                "no token: send `Authorization: Bearer rmx_…` (make one with `remex tokens create`)",
            )
        })
    }
}

/// The request's id: the client's `X-Request-Id` when it is sane, else a
/// new one (set by the guard). In every audit record of the request and
/// its job.
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub String);

impl FromRequestParts<AppState> for RequestId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .ok_or_else(|| ApiError::internal("the request has no id"))
    }
}

/// `?wait=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct WaitQuery {
    /// Wait up to this long (`30s`) for the job to end: 200 when it does,
    /// else 202 with its id and links.
    pub wait: Option<String>,
}

/// How long to wait for a job (`?wait=30s`; zero without one), at most
/// `service.limits.max_wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wait(pub Duration);

impl FromRequestParts<AppState> for Wait {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Query(query) = Query::<WaitQuery>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::field("wait", e.body_text()))?;
        Wait::parse(query.wait.as_deref(), state.config.limits.max_wait)
    }
}

impl Wait {
    /// `text` as a wait of at most `max`.
    fn parse(text: Option<&str>, max: Duration) -> Result<Wait, ApiError> {
        let Some(text) = text else {
            return Ok(Wait(Duration::ZERO));
        };
        let wait = crate::config::parse_duration(text).map_err(|e| ApiError::field("wait", e))?;
        if wait > max {
            return Err(ApiError::field(
                "wait",
                format!(
                    "wait {text} is longer than service.limits.max_wait ({}s); poll /v1/jobs/ID instead",
                    max.as_secs()
                ),
            ));
        }
        Ok(Wait(wait))
    }
}

/// A JSON body of type `T`, at most `service.limits.max_json` bytes, with
/// unknown fields refused. A body that does not fit answers 400 naming the
/// field (`timeout`, `env.FOO`, `command[1]`), 413 when too large.
pub(crate) struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let json_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let mime = v.split(';').next().unwrap_or_default().trim();
                mime == "application/json" || mime.ends_with("+json")
            });
        if !json_type {
            return Err(ApiError::bad_request(
                "the body must be JSON: send `Content-Type: application/json`",
            ));
        }
        let limit = usize::try_from(state.config.limits.max_json).unwrap_or(usize::MAX);
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| {
                ApiError::too_large(format!(
                    "the JSON body is larger than service.limits.max_json ({limit} bytes)"
                ))
            })?;
        Ok(JsonBody(crate::run::request_error::from_json(&bytes)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_durations_within_the_limit() {
        let max = Duration::from_secs(60);
        let wait = |text| Wait::parse(text, max);
        assert_eq!(wait(None), Ok(Wait(Duration::ZERO)));
        assert_eq!(wait(Some("30s")), Ok(Wait(Duration::from_secs(30))));
        assert_eq!(wait(Some("2m")).unwrap_err().field.as_deref(), Some("wait"));
        assert_eq!(
            wait(Some("soon")).unwrap_err().field.as_deref(),
            Some("wait")
        );
    }
}
