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
pub(crate) mod runs;
pub(crate) mod submit;

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{self, Caller};
use super::error::ApiError;
use super::state::AppState;
use super::store;
use extract::RequestId;

/// The OpenAPI document's frame; the paths come from the handlers.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "remex",
        description = "The Remote Execution Service: run commands and scripts on a fleet of Linux hosts over SSH, move files, manage keys — audited. Every request needs `Authorization: Bearer rmx_…` (`remex tokens create`) except `/healthz` and this document.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(
        super::error::ErrorBody,
        super::jobs::HostStarted,
        super::jobs::Output,
        super::jobs::JobFinished
    ))
)]
struct ApiDoc;

/// Declares the bearer-token scheme.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("rmx_ token")
                    .build(),
            ),
        );
    }
}

/// Every route, and the OpenAPI document describing them.
pub(crate) fn routes() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
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
        .split_for_parts()
}

/// Paths anyone may call: nothing behind them acts or tells secrets.
fn open(path: &str) -> bool {
    matches!(path, "/healthz" | "/v1/openapi.json")
}

/// Every request passes here: its id; 503 while shutting down; the token
/// (401 without a valid one, 429 over the rate) — for every route but the
/// open ones, whether or not its handler asks for the [`Caller`]; then,
/// after the handler, an audit record of the request, allowed or not.
pub(crate) async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let begun = Instant::now();
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(new_request_id, str::to_owned);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| req.uri().path().to_owned(), |m| m.as_str().to_owned());
    let action = format!("{} {}", req.method(), req.uri().path());
    let mut token_name = None;
    let response = match admit(&state, req.headers(), &route).await {
        Ok(caller) => {
            if let Some(caller) = caller {
                token_name = Some(caller.token.name.clone());
                req.extensions_mut().insert(caller);
            }
            req.extensions_mut().insert(RequestId(id.clone()));
            next.run(req).await
        }
        Err(denied) => denied.into_response(),
    };
    let status = response.status();
    state
        .metrics
        .request(&route, status.as_u16(), begun.elapsed());
    if route != "/healthz" {
        state.requests.record(token_name, &id, &action, status);
    }
    let mut response = response;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The caller of a request that needs one, or why not.
async fn admit(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    route: &str,
) -> Result<Option<Caller>, ApiError> {
    if state.jobs.closing() && route != "/healthz" {
        return Err(ApiError::unavailable(
            "the service is shutting down; try again when it is back",
        ));
    }
    if open(route) {
        return Ok(None);
    }
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::unauthorized(
                "no token: send `Authorization: Bearer rmx_…` (make one with `remex tokens create`)",
            )
        })?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer rmx_…`"))?;
    if !auth::well_formed(token) {
        return Err(ApiError::unauthorized(
            "this is not a remex token (rmx_ and 49 characters, with a checksum): was it cut short?",
        ));
    }
    let hash = auth::hash(token);
    let record = store::blocking(&state.store, move |s| s.token_by_hash(&hash))
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown token"))?;
    if record.revoked_ms.is_some() {
        return Err(ApiError::unauthorized(format!(
            "token `{}` was revoked",
            record.name
        )));
    }
    if record
        .expires_ms
        .is_some_and(|expires| expires <= super::jobs::now_ms())
    {
        return Err(ApiError::unauthorized(format!(
            "token `{}` expired; make a new one with `remex tokens create`",
            record.name
        )));
    }
    state.count_request(&record.name)?;
    Ok(Some(Caller { token: record }))
}

/// A fresh request id.
fn new_request_id() -> String {
    let random: [u8; 8] = rand::random();
    format!("req-{}", hex::encode(random))
}
