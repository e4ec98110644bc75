//! [`Shared`]: what every handler of the service shares — the executor,
//! the jobs, the store, the settings, the request log, the counters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use super::connections::Gate;
use super::denied::Denials;
use super::error::ApiError;
use super::jobs::Jobs;
use super::metrics::Metrics;
use super::requests::RequestLog;
use super::store::Store;
use crate::config::ServiceConfig;
use crate::exec::RequestPolicy;
use crate::run::Executor;

/// What every handler shares.
pub(crate) type AppState = Arc<Shared>;

/// The service's state.
pub(crate) struct Shared {
    /// Runs everything, with one connection per host for every job.
    pub executor: Executor,
    /// Jobs under way and their store.
    pub jobs: Arc<Jobs>,
    /// Tokens, jobs, events.
    pub store: Arc<dyn Store>,
    /// `service:` of the config.
    pub config: ServiceConfig,
    /// The audit records of requests.
    pub requests: RequestLog,
    /// The rate of requests without a valid token per client address, and
    /// the coalescing of denied requests' records.
    pub denials: Denials,
    /// The limits on open connections (`max_connections`).
    pub gate: Arc<Gate>,
    /// Requests per token in the current minute.
    rate: Mutex<HashMap<String, (Instant, u32)>>,
    /// When the service started.
    pub started: Instant,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
}

impl Shared {
    /// The state of a service.
    pub(crate) fn new(
        executor: Executor,
        jobs: Arc<Jobs>,
        config: ServiceConfig,
        requests: RequestLog,
        metrics: Arc<Metrics>,
    ) -> Shared {
        Shared {
            gate: Gate::new(
                config.limits.max_connections,
                config.limits.max_connections_per_address,
                config.limits.idle_timeout,
            ),
            denials: Denials::new(
                config.limits.unauthenticated_per_minute,
                config.limits.denied_audit_interval,
            ),
            store: jobs.store().clone(),
            executor,
            jobs,
            config,
            requests,
            rate: Mutex::new(HashMap::new()),
            started: Instant::now(),
            metrics,
        }
    }

    /// What a run request may ask for here: no local script (only a body,
    /// or a name in `service.scripts_dir`), at most
    /// `service.limits.max_output` of output per stream.
    pub(crate) fn request_policy(&self) -> RequestPolicy {
        let max_output = usize::try_from(self.config.limits.max_output).unwrap_or(usize::MAX);
        RequestPolicy {
            local_scripts: false,
            scripts_dir: self.config.scripts_dir.clone(),
            default_max_output: max_output,
            max_output_limit: max_output,
        }
    }

    /// 429 when `token` used up its requests of this minute.
    pub(crate) fn count_request(&self, token: &str) -> Result<(), ApiError> {
        let limit = self.config.limits.requests_per_minute;
        let mut rate = self.rate.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let entry = rate.entry(token.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0).as_secs() >= 60 {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 > limit {
            return Err(ApiError::rate_limited(format!(
                "token `{token}` made more than {limit} requests this minute \
                 (service.limits.requests_per_minute); try again in a minute"
            )));
        }
        Ok(())
    }
}
