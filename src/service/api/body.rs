//! What requests carry besides the token: JSON bodies (with the field at
//! fault named when they do not fit), `?wait=` durations, request ids.

use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use super::super::error::ApiError;
use super::AppState;

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
        parse(&bytes).map(JsonBody)
    }
}

/// `bytes` as a `T`, or the 400 naming the field.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => Ok(value),
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            let message = if inner.is_syntax() || inner.is_eof() {
                format!("the body is not JSON: {inner}")
            } else {
                format!("the JSON body does not fit: {inner}")
            };
            if inner.is_syntax() || inner.is_eof() || path.is_empty() || path == "." || path == "?"
            {
                Err(ApiError::bad_request(message))
            } else {
                Err(ApiError::field(path, message))
            }
        }
    }
}

/// `?wait=30s`: how long to wait for a job, at most `max`.
pub(crate) fn wait(
    text: Option<&str>,
    max: std::time::Duration,
) -> Result<std::time::Duration, ApiError> {
    let Some(text) = text else {
        return Ok(std::time::Duration::ZERO);
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
    Ok(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Shape {
        targets: String,
        command: Option<Vec<String>>,
        env: Option<std::collections::BTreeMap<String, String>>,
    }

    #[test]
    fn a_body_that_does_not_fit_names_the_field() {
        let e = parse::<Shape>(br#"{"targets": "all", "command": ["ls", 3]}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("command[1]"), "{e:?}");
        let e = parse::<Shape>(br#"{"targets": "all", "comand": ["ls"]}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("comand"), "{e:?}");
        assert!(e.message.contains("unknown field"), "{e:?}");
        let e = parse::<Shape>(br#"{"targets": 5}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("targets"), "{e:?}");
        let e = parse::<Shape>(b"{not json").unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert!(parse::<Shape>(br#"{"targets": "web"}"#).is_ok());
    }

    #[test]
    fn waits_are_durations_within_the_limit() {
        let max = std::time::Duration::from_secs(60);
        assert_eq!(wait(None, max).unwrap().as_secs(), 0);
        assert_eq!(wait(Some("30s"), max).unwrap().as_secs(), 30);
        assert_eq!(
            wait(Some("2m"), max).unwrap_err().field.as_deref(),
            Some("wait")
        );
        assert!(wait(Some("soon"), max).is_err());
    }
}
