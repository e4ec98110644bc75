//! The HTTP API under `/v1`: handlers that only translate (parse,
//! authorize, call the library, answer), the guard every request passes,
//! and the OpenAPI document generated from the handlers.

pub(crate) mod audit;
pub(crate) mod extract;
pub(crate) mod files;
pub(crate) mod hosts;
pub(crate) mod jobs;
pub(crate) mod keys;
pub(crate) mod meta;
pub(crate) mod openapi;
pub(crate) mod rules;
pub(crate) mod runs;
pub(crate) mod submit;

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use tower_http::timeout::TimeoutBody;

use super::auth::{self, Caller};
use super::denied::Reason;
use super::error::ApiError;
use super::requests::{CLIENT_CLOSED, Entry};
use super::state::AppState;
use super::store;
use extract::RequestId;

/// Every route, and the OpenAPI document describing them.
pub(crate) fn routes() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut api) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(runs::create_run))
        .routes(routes!(jobs::list_jobs))
        .routes(routes!(jobs::get_job))
        .routes(routes!(jobs::job_events))
        .routes(routes!(jobs::cancel_job))
        .routes(routes!(files::upload))
        .routes(routes!(files::download))
        .routes(routes!(hosts::list_hosts))
        .routes(routes!(hosts::check_hosts))
        .routes(routes!(hosts::trust_hosts))
        .routes(routes!(keys::list_keys))
        .routes(routes!(keys::deploy_key))
        .routes(routes!(keys::rotate_keys))
        .routes(routes!(keys::revoke_key))
        .routes(routes!(audit::list_records))
        .routes(routes!(audit::verify_log))
        .routes(routes!(meta::whoami))
        .routes(routes!(meta::healthz))
        .routes(routes!(meta::metrics))
        .split_for_parts();
    openapi::complete(&mut api);
    (router, api)
}

/// Paths anyone may call: nothing behind them acts or tells secrets.
fn open(path: &str) -> bool {
    matches!(path, "/healthz" | "/v1/openapi.json")
}

/// 404 in the error shape, for a path no route matches (reached only with
/// a valid token: the guard answers 401 first).
pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such path; see /v1/openapi.json for the API")
}

/// 405 in the error shape, for a route's path with a method it lacks.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        super::error::ErrorKind::MethodNotAllowed,
        "this path does not take this method; see /v1/openapi.json",
    )
}

/// A request the guard refuses before any handler: the answer, and why.
struct Denied {
    answer: ApiError,
    reason: Reason,
    /// The token's name, when the request named a known token.
    token: Option<String>,
}

/// Every request passes here: its id; 503 while shutting down; the token
/// (401 without a valid one, 429 over its rate or, without a valid token,
/// over its address's rate) — for every path but the open ones, whether or
/// not a route or its handler asks for the [`Caller`] (deny by default: an
/// unknown path without a token is a 401 too, so nobody learns which paths
/// exist, and it costs no more than any other refusal); a request body
/// that stops coming for `idle_timeout` fails; then, after the handler,
/// metrics and the request's audit record, on disk before the answer goes
/// out (denied requests coalesced, see `denied.rs`).
pub(crate) async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let begun = Instant::now();
    let id = new_request_id();
    let client_request = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned);
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let action = Entry::action(req.method().as_str(), req.uri().path());
    let entry = Entry {
        id: id.clone(),
        client_request,
        token: None,
        action,
        status: CLIENT_CLOSED,
        client,
        reason: None,
        count: None,
    };
    let recorded = route.as_deref() != Some("/healthz");
    let (response, entry) = match admit(&state, req.headers(), route.as_deref(), client).await {
        Ok(caller) => {
            let entry = Entry {
                token: caller.as_ref().map(|c| c.token.name.clone()),
                ..entry
            };
            if let Some(caller) = caller {
                req.extensions_mut().insert(caller);
            }
            req.extensions_mut().insert(RequestId(id.clone()));
            let idle = state.config.limits.idle_timeout;
            let req = req.map(|body| Body::new(TimeoutBody::new(idle, body)));
            // Admitted: recorded as `client_closed` if the client hangs
            // up before the answer (hyper then drops this future).
            let mut hangup = Hangup {
                state: &state,
                entry: recorded.then(|| Entry {
                    reason: Some("client_closed"),
                    ..entry.clone()
                }),
            };
            let response = next.run(req).await;
            hangup.entry = None;
            let entry = Entry {
                status: response.status(),
                ..entry
            };
            (response, entry)
        }
        Err(denied) => {
            let response = denied.answer.into_response();
            let entry = Entry {
                token: denied.token,
                status: response.status(),
                reason: Some(denied.reason.as_str()),
                ..entry
            };
            (response, entry)
        }
    };
    state
        .metrics
        .request(route.as_deref(), entry.status.as_u16(), begun.elapsed());
    if entry.reason.is_some() {
        state.metrics.denied(entry.reason.unwrap_or_default());
        for entry in state.denials.note(entry, Instant::now()) {
            state.requests.record(&entry).await;
        }
    } else if recorded {
        state.requests.record(&entry).await;
    }
    let mut response = response;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// An admitted request under way: recorded, unanswered, if the client
/// hangs up (hyper then drops the guard's future) — a job it started has
/// its own records, and the request still has one. (A request without a
/// valid token that hangs up leaves nothing: it did nothing, and a flood
/// of them must not write a record each.)
struct Hangup<'s> {
    state: &'s AppState,
    /// `None` once the request is answered.
    entry: Option<Entry>,
}

impl Drop for Hangup<'_> {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            self.state.requests.record_later(&entry);
        }
    }
}

/// The caller of a request that needs one, or why not.
async fn admit(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    route: Option<&str>,
    client: Option<IpAddr>,
) -> Result<Option<Caller>, Denied> {
    let healthz = route == Some("/healthz");
    if state.jobs.closing() && !healthz {
        return Err(Denied {
            answer: ApiError::unavailable(
                "the service is shutting down; try again when it is back",
            ),
            reason: Reason::Closing,
            token: None,
        });
    }
    if healthz {
        return Ok(None);
    }
    if route.is_some_and(open) {
        return match over_rate(state, client, None) {
            Some(denied) => Err(denied),
            None => Ok(None),
        };
    }
    // Refused without a valid token: 401, or 429 over the address's rate.
    let refuse = |reason: Reason, token: Option<String>, message: String| {
        over_rate(state, client, token.clone()).unwrap_or(Denied {
            answer: ApiError::unauthorized(message),
            reason,
            token,
        })
    };
    let Some(header) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(refuse(
            Reason::NoToken,
            None,
            "no token: send `Authorization: Bearer rmx_…` (make one with `remex tokens create`)"
                .to_owned(),
        ));
    };
    let Some(token) = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
    else {
        return Err(refuse(
            Reason::MalformedToken,
            None,
            "the Authorization header must be `Bearer rmx_…`".to_owned(),
        ));
    };
    if !auth::well_formed(token) {
        return Err(refuse(
            Reason::MalformedToken,
            None,
            "this is not a remex token (rmx_ and 49 characters, with a checksum): was it cut short?"
                .to_owned(),
        ));
    }
    let hash = auth::hash(token);
    let record = store::blocking(&state.store, move |s| s.token_by_hash(&hash))
        .await
        .map_err(|e| Denied {
            answer: e.into(),
            reason: Reason::UnknownToken,
            token: None,
        })?;
    let Some(record) = record else {
        return Err(refuse(
            Reason::UnknownToken,
            None,
            "unknown token".to_owned(),
        ));
    };
    if record.revoked_ms.is_some() {
        let message = format!("token `{}` was revoked", record.name);
        return Err(refuse(Reason::RevokedToken, Some(record.name), message));
    }
    if record
        .expires_ms
        .is_some_and(|expires| expires <= super::jobs::now_ms())
    {
        let message = format!(
            "token `{}` expired; make a new one with `remex tokens create`",
            record.name
        );
        return Err(refuse(Reason::ExpiredToken, Some(record.name), message));
    }
    if let Err(answer) = state.count_request(&record.name) {
        return Err(Denied {
            answer,
            reason: Reason::TokenRate,
            token: Some(record.name),
        });
    }
    Ok(Some(Caller { token: record }))
}

/// 429 when `client` is over its rate of requests without a valid token
/// (counting this one when it is not).
fn over_rate(state: &AppState, client: Option<IpAddr>, token: Option<String>) -> Option<Denied> {
    if state.denials.allow(client) {
        return None;
    }
    Some(Denied {
        answer: ApiError::rate_limited(format!(
            "too many requests without a valid token from this address \
             (service.limits.unauthenticated_per_minute: {}); try again in a minute",
            state.config.limits.unauthenticated_per_minute
        )),
        reason: Reason::ClientRate,
        token,
    })
}

/// A fresh request id.
fn new_request_id() -> String {
    let random: [u8; 8] = rand::random();
    format!("req-{}", hex::encode(random))
}
