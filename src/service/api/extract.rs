//! What a handler asks of a request besides its path: who is calling
//! ([`Caller`]), the request's id ([`RequestId`]), `?wait=` ([`Wait`]), a
//! query string ([`Params`]) and a JSON body ([`JsonBody`]) — extractors,
//! so a handler's signature says what it needs, and every one of them
//! refuses in the one error shape (never axum's plain-text rejections).
//!
//! The caller is authenticated by the guard every request passes (see
//! `api/mod.rs`), not here: every route but the open ones is closed to a
//! request without a valid token even if its handler never asks who
//! called (deny by default). The extractor hands the handler that caller.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
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

/// The request's id, remex's own (set by the guard; a client's
/// `X-Request-Id` is kept beside it, never in its place). In the request's
/// audit record, its job's stored record and every audit record of that
/// job's run.
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
    /// How long to wait for the job to end.
    #[param(value_type = Option<super::rules::Duration>)]
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
        let Params(query) = Params::<WaitQuery>::from_request_parts(parts, state).await?;
        Wait::parse(query.wait.as_deref(), state.config.limits.max_wait)
    }
}

impl Wait {
    /// `text` (the document's duration pattern, nothing else) as a wait,
    /// cut to `max`: a schema cannot know the configured limit, so a
    /// longer wait is not an error — the job is answered 202 after `max`
    /// and polled, as after any wait it outlives.
    fn parse(text: Option<&str>, max: Duration) -> Result<Wait, ApiError> {
        let Some(text) = text else {
            return Ok(Wait(Duration::ZERO));
        };
        if !super::rules::matches(super::rules::DURATION, text) {
            return Err(ApiError::field(
                "wait",
                format!(
                    "`wait={}` is not a duration: write a whole number with a unit, largest first \
                     (`30s`, `1m30s`, `500ms`), or whole seconds",
                    text.escape_default()
                ),
            ));
        }
        let wait = crate::config::parse_duration(text).map_err(|e| ApiError::field("wait", e))?;
        Ok(Wait(wait.min(max)))
    }
}

/// A query string of type `T`: a value that does not fit answers 400
/// naming its parameter (`limit`), in the error shape. A parameter given
/// with an empty value (`?limit=&wait=`) counts as left out, as most
/// clients mean it (and as OpenAPI tools send an optional parameter they
/// have no value for); a required one is then missing.
pub(crate) struct Params<T>(pub T);

impl<T: DeserializeOwned> FromRequestParts<AppState> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        params(parts.uri.query().unwrap_or_default())
    }
}

/// `query` without its empty parameters, read as `T`.
fn params<T: DeserializeOwned>(query: &str) -> Result<Params<T>, ApiError> {
    let given: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            pair.split_once('=')
                .is_some_and(|(_, value)| !value.is_empty())
        })
        .collect();
    let uri: axum::http::Uri = format!("/?{}", given.join("&"))
        .parse()
        .map_err(|_| ApiError::bad_request("the query string is not valid"))?;
    Query::<T>::try_from_uri(&uri)
        .map(|Query(query)| Params(query))
        .map_err(|e| query_error(&e))
}

/// A path parameter of type `T` (a job's id): one that does not fit (bytes
/// that are not UTF-8) answers 400 in the error shape.
pub(crate) struct PathParam<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for PathParam<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| PathParam(value))
            .map_err(|e| ApiError::bad_request(format!("the path: {}", e.body_text())))
    }
}

/// The answer for a query string that does not fit: the parameter and
/// serde's reason, found by type in the rejection's sources.
fn query_error(e: &QueryRejection) -> ApiError {
    type PathError = serde_path_to_error::Error<serde::de::value::Error>;
    let found = sources(e).find_map(|s| s.downcast_ref::<PathError>());
    match found {
        Some(e) => {
            let path = e.path().to_string();
            if path.is_empty() || path == "." {
                ApiError::bad_request(format!("the query string: {}", e.inner()))
            } else {
                ApiError::field(path.clone(), format!("`{path}`: {}", e.inner()))
            }
        }
        None => ApiError::bad_request("the query string is not valid"),
    }
}

/// `e` and its sources.
fn sources<'e>(
    e: &'e (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'e (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
}

/// Whether `e` is (or was caused by) a request body that stopped coming
/// for `service.limits.idle_timeout` (the guard's timeout on bodies).
pub(crate) fn body_stalled(e: &(dyn std::error::Error + 'static)) -> bool {
    sources(e).any(|s| s.is::<tower_http::timeout::TimeoutError>())
}

/// 408 for a request body that stopped coming.
pub(crate) fn stalled() -> ApiError {
    ApiError::new(
        crate::service::error::ErrorKind::Timeout,
        "the request body stopped coming (service.limits.idle_timeout)",
    )
}

/// The answer for a multipart form that could not be read: 408 when it
/// stalled, else axum's status for it (413 over `max_body`, 400 for a
/// malformed form; an unknown read failure is a 400 too, not the
/// service's fault).
pub(crate) fn multipart_error(
    e: &(dyn std::error::Error + 'static),
    status: axum::http::StatusCode,
) -> ApiError {
    use crate::service::error::ErrorKind;
    if body_stalled(e) {
        return stalled();
    }
    match ErrorKind::of_status(status) {
        ErrorKind::TooLarge => {
            ApiError::too_large("the upload is larger than service.limits.max_body")
        }
        _ => ApiError::bad_request(format!(
            "the multipart form: {}",
            crate::error_chain::chain(e)
        )),
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
        let too_large = || {
            ApiError::too_large(format!(
                "the JSON body is larger than service.limits.max_json ({limit} bytes)"
            ))
        };
        let declared = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            discard(req.into_body(), declared).await;
            return Err(too_large());
        }
        // The only failures are the limit and a stalled (or broken) body.
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|e| {
                if body_stalled(&e) {
                    stalled()
                } else {
                    too_large()
                }
            })?;
        Ok(JsonBody(crate::run::request_error::from_json(&bytes)?))
    }
}

/// What of a refused body remex still reads, and for how long: see
/// [`discard`].
const LINGER_BYTES: u64 = 64 << 20;
const LINGER_TIME: Duration = Duration::from_secs(5);

/// Reads and drops the body of a request refused before it was read (a
/// declared length over a limit), so that a client still sending it reads
/// the 413 rather than a reset connection — the refusal is useless if it
/// never arrives (nginx's "lingering close"). At most [`LINGER_BYTES`],
/// for at most [`LINGER_TIME`]: a larger body is left unread and the
/// connection closes, as before.
pub(crate) async fn discard(body: axum::body::Body, declared: Option<u64>) {
    use futures_util::StreamExt as _;
    if declared.is_some_and(|n| n > LINGER_BYTES) {
        return;
    }
    let mut stream = body.into_data_stream();
    let mut read = 0u64;
    let _ = tokio::time::timeout(LINGER_TIME, async {
        while let Some(Ok(chunk)) = stream.next().await {
            read = read.saturating_add(chunk.len() as u64);
            if read > LINGER_BYTES {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Typed {
        limit: Option<usize>,
        failed: Option<bool>,
    }

    fn typed(query: &str) -> Result<Typed, ApiError> {
        params::<Typed>(query).map(|Params(q)| q)
    }

    #[test]
    fn a_query_value_of_the_wrong_type_names_its_parameter() {
        assert!(typed("limit=5&failed=true").is_ok());
        for (query, field) in [
            ("limit=x", "limit"),
            ("limit=-1", "limit"),
            ("limit=99999999999999999999999", "limit"),
            ("failed=maybe", "failed"),
            ("limit=1&failed=%FF", "failed"),
        ] {
            let e = typed(query).unwrap_err();
            assert_eq!(e.kind, crate::service::error::ErrorKind::BadRequest);
            assert_eq!(e.field.as_deref(), Some(field), "{query}: {e:?}");
        }
    }

    #[test]
    fn an_empty_parameter_is_a_parameter_left_out() {
        for query in [
            "",
            "limit=",
            "limit=&failed=",
            "failed&limit",
            "&&",
            "=",
            "limit=&x=",
        ] {
            let Typed { limit, failed } = typed(query).unwrap_or_else(|e| panic!("{query}: {e:?}"));
            assert_eq!((limit, failed), (None, None), "{query}");
        }
        let Typed { limit, failed } =
            typed("limit=&failed=true&limit=").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((limit, failed), (None, Some(true)));
        // A space is a value, not nothing.
        assert_eq!(
            typed("limit=%20").unwrap_err().field.as_deref(),
            Some("limit")
        );
    }

    #[test]
    fn waits_are_durations_cut_to_the_limit() {
        let max = Duration::from_secs(60);
        let wait = |text| Wait::parse(text, max);
        assert_eq!(wait(None), Ok(Wait(Duration::ZERO)));
        assert_eq!(wait(Some("30s")), Ok(Wait(Duration::from_secs(30))));
        assert_eq!(wait(Some("0")), Ok(Wait(Duration::ZERO)));
        assert_eq!(wait(Some("2m")), Ok(Wait(max)));
        assert_eq!(wait(Some("9999999999999999999")), Ok(Wait(max)));
        for bad in [
            "soon",
            " 30s",
            "30s ",
            "1s1m",
            "-1s",
            "1.5s",
            "30 s",
            "99999999999999999999",
        ] {
            assert_eq!(
                wait(Some(bad)).unwrap_err().field.as_deref(),
                Some("wait"),
                "{bad:?}"
            );
        }
    }
}
