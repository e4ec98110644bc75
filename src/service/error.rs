//! [`ApiError`]: every error the API answers, in one JSON shape:
//!
//! ```json
//! {"error": {"kind": "bad_request", "message": "…", "field": "timeout"}}
//! ```
//!
//! `kind` is stable for scripts; [`ErrorKind`] is the one table between
//! kinds and HTTP statuses, used for answers and for the audit records of
//! requests alike. `field` names the request field at fault, when one is.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error_chain::chain;
use crate::run::{Error as RunError, Failure, RequestError};
use crate::targets::TargetError;

/// The class of an error answer: its `kind` and its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ErrorKind {
    /// 400: the request is wrong (the field is named when one is).
    BadRequest,
    /// 401: no valid token.
    Unauthorized,
    /// 403: the token may not do this, or not on these hosts; the
    /// callback receiver is not allowed; the host refused the path (a
    /// download).
    Forbidden,
    /// 404: no such job, route, host, group, script or remote file (the
    /// field that named it is given).
    NotFound,
    /// 405: the path exists, not with this method.
    MethodNotAllowed,
    /// 408: the request's body stopped coming (`service.limits.idle_timeout`).
    Timeout,
    /// 409: the job has ended, or an idempotency key was reused.
    Conflict,
    /// 413: the body is larger than the limits allow.
    TooLarge,
    /// 429: too many requests or jobs for the token.
    RateLimited,
    /// 502: the host failed (a download).
    HostFailed,
    /// 503: shutting down, or the audit log cannot record.
    Unavailable,
    /// 500: the service's own fault.
    Internal,
}

impl ErrorKind {
    /// Every kind, with its status: the one table.
    const TABLE: [(ErrorKind, StatusCode); 12] = [
        (ErrorKind::BadRequest, StatusCode::BAD_REQUEST),
        (ErrorKind::Unauthorized, StatusCode::UNAUTHORIZED),
        (ErrorKind::Forbidden, StatusCode::FORBIDDEN),
        (ErrorKind::NotFound, StatusCode::NOT_FOUND),
        (ErrorKind::MethodNotAllowed, StatusCode::METHOD_NOT_ALLOWED),
        (ErrorKind::Timeout, StatusCode::REQUEST_TIMEOUT),
        (ErrorKind::Conflict, StatusCode::CONFLICT),
        (ErrorKind::TooLarge, StatusCode::PAYLOAD_TOO_LARGE),
        (ErrorKind::RateLimited, StatusCode::TOO_MANY_REQUESTS),
        (ErrorKind::HostFailed, StatusCode::BAD_GATEWAY),
        (ErrorKind::Unavailable, StatusCode::SERVICE_UNAVAILABLE),
        (ErrorKind::Internal, StatusCode::INTERNAL_SERVER_ERROR),
    ];

    /// Its HTTP status.
    pub(crate) fn status(self) -> StatusCode {
        Self::TABLE
            .iter()
            .find(|(kind, _)| *kind == self)
            .map_or(StatusCode::INTERNAL_SERVER_ERROR, |(_, status)| *status)
    }

    /// The kind of an error answered with `status` (a 4xx the table does
    /// not list is a `bad_request`, anything else `internal`).
    pub(crate) fn of_status(status: StatusCode) -> ErrorKind {
        Self::TABLE
            .iter()
            .find(|(_, s)| *s == status)
            .map(|(kind, _)| *kind)
            .unwrap_or(if status.is_client_error() {
                ErrorKind::BadRequest
            } else {
                ErrorKind::Internal
            })
    }

    /// Its name in answers and audit records.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Conflict => "conflict",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::HostFailed => "host_failed",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// Its class, which gives the status.
    pub kind: ErrorKind,
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
    /// `bad_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `method_not_allowed`, `timeout`, `conflict`, `too_large`,
    /// `rate_limited`, `host_failed`, `unavailable` or `internal`.
    pub kind: ErrorKind,
    /// What went wrong and, where the service knows, what to do.
    pub message: String,
    /// The request field at fault (`timeout`, `env.FOO`, `command[1]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// An error of `kind`.
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let message = message.into();
        if kind == ErrorKind::Internal {
            tracing::error!("internal error: {message}");
        }
        ApiError {
            kind,
            message,
            field: None,
        }
    }

    /// 400, naming `field`.
    pub(crate) fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            field: Some(field.into()),
            ..Self::new(ErrorKind::BadRequest, message)
        }
    }

    /// 400.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    /// 401.
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthorized, message)
    }

    /// 403.
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }

    /// 404.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// 404 for what `field` names: a host, a script.
    pub(crate) fn missing(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            field: Some(field.into()),
            ..Self::not_found(message)
        }
    }

    /// The answer for a selector in `field` that does not select: 400
    /// when it is malformed (an empty term), else 404 — it names a host
    /// or group the inventory does not have, or selects none of them.
    pub(crate) fn targets(field: &str, e: &TargetError) -> Self {
        match e {
            TargetError::EmptyTerm { .. } => ApiError::field(field, e.to_string()),
            _ => ApiError::missing(field, e.to_string()),
        }
    }

    /// 409.
    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    /// 413.
    pub(crate) fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::TooLarge, message)
    }

    /// 429.
    pub(crate) fn rate_limited(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::RateLimited, message)
    }

    /// 502: the host failed (a download).
    pub(crate) fn host_failed(failure: &Failure) -> Self {
        Self::new(
            ErrorKind::HostFailed,
            format!("the host failed ({}): {}", failure.kind, failure.message),
        )
    }

    /// 503.
    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// 500: the service's own fault (the store, a task); logged.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Its HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        self.kind.status()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            error: ErrorDetail {
                kind: self.kind,
                message: self.message,
                field: self.field,
            },
        };
        (status, axum::Json(body)).into_response()
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        match e.field {
            Some(field) => ApiError::field(field, e.message),
            None => ApiError::bad_request(e.message),
        }
    }
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Targets(e) => ApiError::targets("targets", &e),
            RunError::Request(e) => e.into(),
            RunError::Invalid(message) => ApiError::bad_request(message),
            RunError::Keys(e) => ApiError::bad_request(e.to_string()),
            RunError::Failed(failure) => ApiError::bad_request(failure.message),
            RunError::Audit(e) => ApiError::unavailable(format!(
                "the audit log cannot record this run, so no host was contacted: {}",
                chain(&e)
            )),
            other => ApiError::internal(chain(&other)),
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
    fn kinds_and_statuses_are_one_table() {
        for (kind, status) in ErrorKind::TABLE {
            assert_eq!(kind.status(), status);
            assert_eq!(ErrorKind::of_status(status), kind);
            let json = serde_json::to_value(kind).unwrap_or_default();
            assert_eq!(json, kind.as_str());
        }
        assert_eq!(
            ErrorKind::of_status(StatusCode::IM_A_TEAPOT),
            ErrorKind::BadRequest
        );
        assert_eq!(
            ErrorKind::of_status(StatusCode::GATEWAY_TIMEOUT),
            ErrorKind::Internal
        );
    }

    #[test]
    fn the_answer_names_the_field() {
        let e = ApiError::field("timeout", "not a duration");
        assert_eq!(e.status().as_u16(), 400);
        let body = ErrorBody {
            error: ErrorDetail {
                kind: e.kind,
                message: e.message.clone(),
                field: e.field.clone(),
            },
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap_or_default(),
            serde_json::json!({"error": {"kind": "bad_request", "message": "not a duration", "field": "timeout"}})
        );
        let from_request: ApiError = RequestError::field("env.1A", "bad name").into();
        assert_eq!(from_request.field.as_deref(), Some("env.1A"));
        let whole: ApiError = RequestError::whole("not JSON").into();
        assert_eq!((whole.kind, whole.field), (ErrorKind::BadRequest, None));
    }

    #[test]
    fn a_selector_is_malformed_or_names_what_is_not_there() {
        let empty = TargetError::EmptyTerm {
            selector: "a,,b".into(),
        };
        let e = ApiError::targets("targets", &empty);
        assert_eq!(
            (e.status().as_u16(), e.field.as_deref()),
            (400, Some("targets"))
        );
        for missing in [
            TargetError::Unknown {
                name: "vm9".into(),
                suggestion: None,
            },
            TargetError::NoMatch {
                pattern: "x*".into(),
            },
            TargetError::Empty {
                selector: "a,!a".into(),
            },
        ] {
            let e = ApiError::targets("targets", &missing);
            assert_eq!(
                (e.status().as_u16(), e.field.as_deref()),
                (404, Some("targets"))
            );
        }
    }
}
