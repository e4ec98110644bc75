//! `remex serve`: the Remote Execution Service — the library's operations
//! over an HTTP/1.1 JSON API, for n8n and other automation.
//!
//! One process, one [`Executor`] (one SSH connection per host, shared by
//! every job), one embedded store (SQLite) for tokens, jobs and their
//! events. Every request needs a token (`remex tokens create`) that holds
//! the operation's scope and reaches every selected host; every request is
//! audited, allowed or not; every job is in the store before it is
//! answered, so none is lost silently: a job under way when the service
//! dies is `interrupted` at the next start, once what is left of its
//! remote processes was stopped. One service per store: a second one on
//! the same store refuses to start (`store/lock.rs`).
//!
//! # Layout
//!
//! - `api/` — the handlers (`runs`, `jobs`, `files`, `hosts`, `keys`,
//!   `audit`, `meta`), each only translating; `submit.rs`, the one path
//!   from a request to a job; `extract.rs`, what handlers ask of a request
//!   (the caller, `?wait=`, JSON bodies); `mod.rs`, the guard every request
//!   passes (token, rate, audit record) and the OpenAPI document built
//!   from the handlers.
//! - `jobs/` — running jobs (`Work`: what each runs), their
//!   events, waiting, cancelling, draining.
//! - `view.rs` — a job as the API shows it; `state.rs` — what handlers
//!   share.
//! - `store/` — the [`Store`] contract and its SQLite backend.
//! - `auth.rs` — tokens and scopes; `tokens.rs` — `remex tokens`;
//!   `requests.rs` — request records; `denied.rs` — the rate and the
//!   coalesced records of requests without a valid token;
//!   `connections.rs` — how many connections, and unread answers;
//!   `callbacks/` — signed callbacks to the receivers the operator allows;
//!   `metrics.rs` — `/metrics`; `error.rs` — the one error shape;
//!   `tls.rs` — HTTPS.

mod api;
mod auth;
mod callbacks;
mod connections;
mod denied;
mod error;
mod jobs;
mod metrics;
mod requests;
mod state;
mod store;
pub(crate) mod tls;
pub mod tokens;
mod view;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use store::sqlite::Sqlite;
pub use store::{Store, StoreError, TokenRecord};

use crate::config::OnShutdown;
use crate::run::Executor;

/// Why the service could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listen address could not be bound, or TLS set up.
    #[error("{0}")]
    Listen(String),
    /// A setting of `service:` cannot work (the message names it).
    #[error("{0}")]
    Config(String),
}

/// What `remex serve` needs besides the executor.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Listen here instead of `service.listen` (`--listen`).
    pub listen: Option<SocketAddr>,
    /// Told the bound address once listening (a test binds port 0).
    pub on_listening: Option<std::sync::mpsc::Sender<SocketAddr>>,
}

/// Runs the service on `executor` until `shutdown` resolves, then drains:
/// new requests get 503, jobs under way are cancelled (or, with
/// `service.on_shutdown: finish`, allowed to end), their records written,
/// callbacks under way get at most 5 s (the rest stay pending for the next
/// start), and the server stops.
///
/// # Errors
///
/// The store cannot be opened or another `remex serve` holds it
/// ([`StoreError::InUse`]), an entry of `service.callbacks.allow` is not a
/// receiver, or the address cannot be bound.
pub async fn serve(
    executor: Executor,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServiceError> {
    let config = executor.config().service.clone();
    let callbacks = callbacks::Callbacks::new(&config.callbacks).map_err(ServiceError::Config)?;
    let store: Arc<dyn Store> = Arc::new(Sqlite::open(&config.store)?);
    // Held until `serve` returns: a second service on this store refuses
    // to start, before it could take this one's jobs for a crash's.
    let lock = store::StoreLock::acquire(&config.store)?;
    tracing::debug!("holding {}", lock.path().display());
    // A crash's leftovers: their remote processes stopped first, then
    // the jobs marked `interrupted`.
    jobs::stop_interrupted(&executor, &store).await?;
    store::blocking(&store, jobs::interrupt_unfinished).await?;
    callbacks.resume(&store).await?;
    let metrics = Arc::new(metrics::Metrics::default());
    let max_output = usize::try_from(config.limits.max_output).unwrap_or(usize::MAX);
    let jobs = Arc::new(jobs::Jobs::new(
        executor.clone(),
        store.clone(),
        max_output,
        callbacks,
        metrics.clone(),
    ));
    let requests = requests::RequestLog::start(executor.audit_log().clone());
    let state = Arc::new(state::Shared::new(
        executor.clone(),
        jobs.clone(),
        config.clone(),
        requests,
        metrics,
    ));
    let gate = state.gate.clone();
    let (router, openapi) = api::routes();
    let openapi = Arc::new(openapi);
    let app = router
        .route(
            "/v1/openapi.json",
            axum::routing::get(move || {
                let openapi = openapi.clone();
                async move { axum::Json((*openapi).clone()) }
            }),
        )
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::guard,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(
            usize::try_from(config.limits.max_body).unwrap_or(usize::MAX),
        ))
        .with_state(state.clone());

    let addr = match options.listen {
        Some(addr) => addr,
        None => config.listen.parse().map_err(|e| {
            ServiceError::Listen(format!("service.listen `{}`: {e}", config.listen))
        })?,
    };
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| ServiceError::Listen(format!("cannot listen on {addr}: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| ServiceError::Listen(e.to_string()))?;
    let bound = listener
        .local_addr()
        .map_err(|e| ServiceError::Listen(e.to_string()))?;
    let handle = axum_server::Handle::new();
    let sweeper = tokio::spawn(sweep(store.clone(), config.retain));
    let coalescer = tokio::spawn(write_denied(state.clone()));
    let draining = {
        let (handle, jobs) = (handle.clone(), jobs.clone());
        let cancel = config.on_shutdown == OnShutdown::Cancel;
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!(
                "shutting down: no new requests; {} jobs under way",
                jobs.running()
            );
            jobs.shutdown(cancel).await;
            handle.graceful_shutdown(Some(Duration::from_secs(5)));
        })
    };
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    let server = axum_server::from_tcp(listener)
        .map_err(|e| ServiceError::Listen(e.to_string()))?
        .handle(handle);
    let server = http_limits(server, &config.limits);
    let served = match &config.tls {
        Some(tls) => {
            let rustls = tls::server_config(tls).map_err(ServiceError::Listen)?;
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(
                axum_server::tls_rustls::RustlsConfig::from_config(rustls),
            )
            .handshake_timeout(config.limits.header_timeout)
            .acceptor(axum_server::accept::DefaultAcceptor);
            let server = server.acceptor(connections::Limited {
                gate,
                inner: acceptor,
            });
            if let Some(tell) = &options.on_listening {
                let _ = tell.send(bound);
            }
            tracing::info!("listening on https://{bound}");
            server.serve(service).await
        }
        None => {
            let server = server.acceptor(connections::Limited {
                gate,
                inner: axum_server::accept::DefaultAcceptor,
            });
            if let Some(tell) = &options.on_listening {
                let _ = tell.send(bound);
            }
            tracing::info!("listening on http://{bound}");
            server.serve(service).await
        }
    };
    draining.abort();
    sweeper.abort();
    coalescer.abort();
    for entry in state.denials.due(std::time::Instant::now(), true) {
        state.requests.record(&entry).await;
    }
    // Jobs that a failing server left behind still end and are recorded.
    jobs.shutdown(true).await;
    state.requests.close();
    executor.close().await;
    served.map_err(|e| ServiceError::Listen(e.to_string()))
}

/// The API's OpenAPI 3.1 document, as `/v1/openapi.json` serves it and
/// `docs/openapi.json` holds it.
pub fn openapi_json() -> String {
    let (_, api) = api::routes();
    api.to_pretty_json().unwrap_or_default()
}

/// hyper's limits on a connection: HTTP/1 only; the request's head within
/// `header_timeout` of the connection opening or its previous answer
/// (hyper's header read timeout, and axum-server's first-request timeout,
/// which also bounds the protocol detection before it).
fn http_limits<A>(
    mut server: axum_server::Server<std::net::SocketAddr, A>,
    limits: &crate::config::Limits,
) -> axum_server::Server<std::net::SocketAddr, A> {
    server
        .http_builder()
        .http1()
        .header_read_timeout(limits.header_timeout);
    server
        .http1_only()
        .first_request_timeout(limits.header_timeout)
}

/// Writes the coalesced records of denied requests whose interval ended.
async fn write_denied(state: state::AppState) {
    let mut every = tokio::time::interval(state.denials.tick());
    loop {
        every.tick().await;
        for entry in state.denials.due(std::time::Instant::now(), false) {
            state.requests.record(&entry).await;
        }
    }
}

/// Deletes finished jobs older than `retain`, hourly.
async fn sweep(store: Arc<dyn Store>, retain: Duration) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every.tick().await;
        let before = jobs::now_ms() - i64::try_from(retain.as_millis()).unwrap_or(i64::MAX);
        match store::blocking(&store, move |s| s.sweep(before)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("deleted {n} jobs older than service.retain"),
            Err(e) => tracing::error!("cannot sweep old jobs: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_committed_openapi_document_is_up_to_date() {
        let committed = include_str!("../../docs/openapi.json");
        assert!(
            committed.trim_end() == super::openapi_json().trim_end(),
            "docs/openapi.json is out of date: run `cargo run -- serve --print-openapi > docs/openapi.json`"
        );
    }
}
