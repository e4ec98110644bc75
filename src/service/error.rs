//! [`ApiError`]: every error the API answers, in one JSON shape:
//!
//! ```json
//! {"error": {"kind": "bad_request", "message": "…", "field": "timeout"}}
//! ```
//!
//! `kind` is stable for scripts and follows the status: `bad_request` 400,
//! `unauthorized` 401, `forbidden` 403, `not_found` 404, `conflict` 409,
//! `too_large` 413, `rate_limited` 429, `host_failed` 502 (a download's
//! host failed), `unavailable` 503, `internal` 500.
//! `field` names the request field at fault, when one is.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for people.
    pub message: String,
    /// The request field at fault.
    pub field: Option<String>,
}

/// The JSON of an error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What an error answer says.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail {
    /// `bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `too_large`, `rate_limited`, `unavailable` or `internal`.
    pub kind: &'static str,
    /// What went wrong and, where the service knows, what to do.
    pub message: String,
    /// The request field at fault (`timeout`, `env.FOO`, `command[1]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            field: None,
        }
    }

    /// 400, naming `field`.
    pub(super) fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            field: Some(field.into()),
            ..Self::new(StatusCode::BAD_REQUEST, message)
        }
    }

    /// 400.
    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401.
    pub(super) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 403.
    pub(super) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 404.
    pub(super) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 409.
    pub(super) fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// 413.
    pub(super) fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    /// 429.
    pub(super) fn rate_limited(message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, message)
    }

    /// 502: the host failed (a download).
    pub(super) fn host_failed(failure: &crate::run::Failure) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            format!("the host failed ({}): {}", failure.kind, failure.message),
        )
    }

    /// 503.
    pub(super) fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// 500: the service's own fault (the store, a task); logged.
    pub(super) fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        tracing::error!("internal error: {message}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The `kind` of this error's status.
    pub(super) fn kind(&self) -> &'static str {
        match self.status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::CONFLICT => "conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::TOO_MANY_REQUESTS => "rate_limited",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            StatusCode::BAD_GATEWAY => "host_failed",
            _ => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = self.kind();
        let body = ErrorBody {
            error: ErrorDetail {
                kind,
                message: self.message,
                field: self.field,
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<crate::run::Error> for ApiError {
    fn from(e: crate::run::Error) -> Self {
        use crate::run::Error;
        match e {
            Error::Targets(e) => ApiError::field("targets", e.to_string()),
            Error::Invalid(message) => ApiError::bad_request(message),
            Error::Keys(e) => ApiError::bad_request(e.to_string()),
            Error::Failed(failure) => ApiError::bad_request(failure.message),
            Error::Audit(e) => ApiError::unavailable(format!(
                "the audit log cannot record this run, so no host was contacted: {:#}",
                anyhow::Error::from(e)
            )),
            other => ApiError::internal(format!("{:#}", anyhow::Error::from(other))),
        }
    }
}

impl From<super::store::StoreError> for ApiError {
    fn from(e: super::store::StoreError) -> Self {
        ApiError::internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_status_and_the_field_is_named() {
        let e = ApiError::field("timeout", "not a duration");
        assert_eq!((e.status.as_u16(), e.kind()), (400, "bad_request"));
        let body = ErrorBody {
            error: ErrorDetail {
                kind: e.kind(),
                message: e.message.clone(),
                field: e.field.clone(),
            },
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap_or_default(),
            serde_json::json!({"error": {"kind": "bad_request", "message": "not a duration", "field": "timeout"}})
        );
        assert_eq!(ApiError::forbidden("x").kind(), "forbidden");
        assert_eq!(ApiError::too_large("x").kind(), "too_large");
    }
}
