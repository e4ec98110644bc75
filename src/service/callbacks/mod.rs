//! Callbacks: when a job with a `callback_url` ends, its report is POSTed
//! there (what n8n's Wait node "On Webhook Call" waits for).
//!
//! - Only to receivers the operator allows (`service.callbacks.allow`,
//!   see `policy.rs`): checked when the request comes (400 naming
//!   `callback_url`) and again when delivering; the receiver's name is
//!   resolved once per connection, its addresses checked, and the
//!   connection made to those addresses only. Redirects are not followed;
//!   no proxy is used.
//! - The body is the job's JSON (as `GET /v1/jobs/{id}` answers). Headers:
//!   `X-Remex-Job` (the job id) and `X-Remex-Signature: t=UNIX,v1=HEX`,
//!   HEX the HMAC-SHA256 of `UNIX.BODY` with the token's callback secret
//!   (shown when the token was made), UNIX the time of the try in seconds:
//!   the receiver checks the signature and that the time is recent, so a
//!   captured callback cannot be replayed later.
//! - What the receiver answers stays with remex: the job shows only the
//!   delivery's state — `pending: …`, `delivered`, `failed after N
//!   attempts: HTTP 500` or `…: no answer` — never a body or an error text
//!   that tells what listens at an address.
//! - `service.callbacks.attempts` tries (1 s, 2 s, 4 s, … apart), each at
//!   most `service.callbacks.timeout`. A callback not settled (the service
//!   stopped or died meanwhile) stays pending in the store and is
//!   delivered when the service starts again: at least once. A shutdown
//!   waits at most [`SHUTDOWN_GRACE`] for deliveries under way.

mod policy;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hmac::{KeyInit as _, Mac as _};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub(crate) use policy::Policy;
use policy::{Receiver, Refused, Resolver};

use super::error::ApiError;
use super::store::{self, JobRecord, Store};
use super::view::JobView;
use crate::config::CallbacksConfig;

/// The signature header.
pub(crate) const SIGNATURE: &str = "X-Remex-Signature";

/// How long a shutdown waits for deliveries under way; what is not
/// delivered by then stays pending for the next start.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Deliveries at once (the others wait their turn).
const AT_ONCE: usize = 16;

/// The longest pause between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Delivers callbacks.
pub(crate) struct Callbacks {
    /// Where callbacks may go.
    policy: Arc<Policy>,
    /// The HTTP client (one connection pool for every delivery): no
    /// redirects, no proxy, the policy's resolver.
    client: Option<reqwest::Client>,
    /// Deliveries under way, so a shutdown can wait for them, then stop
    /// them.
    tasks: Mutex<JoinSet<()>>,
    /// Bounds the deliveries at once.
    at_once: Arc<Semaphore>,
    /// Tries per callback.
    attempts: u32,
    /// The pause before the second try (doubling each time).
    backoff: Duration,
}

impl Callbacks {
    /// Deliveries as `service.callbacks` says.
    ///
    /// # Errors
    ///
    /// An entry of `allow` that is not a receiver (the message names it).
    pub(crate) fn new(config: &CallbacksConfig) -> Result<Callbacks, String> {
        let policy = Policy::new(&config.allow)?;
        super::tls::install_provider();
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Resolver)
            .build()
            .map_err(|e| tracing::error!("callbacks are off: {e}"))
            .ok();
        Ok(Callbacks {
            policy: Arc::new(policy),
            client,
            tasks: Mutex::new(JoinSet::new()),
            at_once: Arc::new(Semaphore::new(AT_ONCE)),
            attempts: config.attempts.max(1),
            backoff: Duration::from_secs(1),
        })
    }

    /// 400 naming `callback_url` unless the policy allows `url`.
    pub(crate) fn check(&self, url: &str) -> Result<(), ApiError> {
        self.policy
            .check(url)
            .map(|_| ())
            .map_err(|why| ApiError::field("callback_url", why))
    }

    /// Starts delivering `job`'s report to its `callback_url`.
    pub(crate) fn deliver(&self, store: Arc<dyn Store>, job: JobRecord) {
        let Some(client) = self.client.clone() else {
            return;
        };
        if job.callback_url.is_none() {
            return;
        }
        let delivery = Delivery {
            client,
            policy: self.policy.clone(),
            store,
            attempts: self.attempts,
            backoff: self.backoff,
        };
        let at_once = self.at_once.clone();
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget deliveries that are over.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            let Ok(_turn) = at_once.acquire_owned().await else {
                return;
            };
            delivery.run(job).await;
        });
    }

    /// Delivers the callbacks a stopped service left pending (at start).
    pub(crate) async fn resume(&self, store: &Arc<dyn Store>) -> Result<(), store::StoreError> {
        let pending = store::blocking(store, |s| s.pending_callbacks()).await?;
        if !pending.is_empty() {
            tracing::info!("{} callbacks left pending: delivering them", pending.len());
        }
        for job in pending {
            self.deliver(store.clone(), job);
        }
        Ok(())
    }

    /// Waits at most [`SHUTDOWN_GRACE`] for the deliveries under way, then
    /// stops the rest: they stay pending in the store for the next start.
    pub(crate) async fn drain(&self) {
        let mut tasks =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        let all = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_GRACE, all).await.is_err() {
            tracing::warn!(
                "{} callbacks not delivered within {} s of the shutdown: they stay pending \
                 and are delivered when the service starts again",
                tasks.len(),
                SHUTDOWN_GRACE.as_secs()
            );
            tasks.shutdown().await;
        }
    }
}

/// One job's callback, tried until it is settled.
struct Delivery {
    /// The shared client.
    client: reqwest::Client,
    /// Where callbacks may go (checked again: the config may have changed
    /// since the job was accepted).
    policy: Arc<Policy>,
    /// Where the job and its token are.
    store: Arc<dyn Store>,
    /// Tries.
    attempts: u32,
    /// The first pause.
    backoff: Duration,
}

impl Delivery {
    /// Delivers `job`'s callback and records how it went.
    async fn run(self, job: JobRecord) {
        self.record(&job.id, "pending".to_owned()).await;
        let state = self.send(&job).await;
        self.record(&job.id, state).await;
    }

    /// Records the callback's state of job `id`.
    async fn record(&self, id: &str, state: String) {
        let key = id.to_owned();
        let done = store::blocking(&self.store, move |s| s.set_callback_state(&key, &state)).await;
        if let Err(e) = done {
            tracing::error!(job = %id, "cannot record the callback's state: {e}");
        }
    }

    /// Tries the delivery; its final state.
    async fn send(&self, job: &JobRecord) -> String {
        let Some(receiver) = job
            .callback_url
            .as_deref()
            .and_then(|url| self.policy.check(url).ok())
        else {
            return "failed: service.callbacks.allow does not name this receiver (any more)"
                .to_owned();
        };
        let token = job.token.clone();
        let secret = store::blocking(&self.store, move |s| s.tokens())
            .await
            .ok()
            .and_then(|tokens| tokens.into_iter().find(|t| t.name == token))
            .map(|t| t.callback_secret)
            .filter(|secret| !secret.is_empty());
        let Some(secret) = secret else {
            return "failed: the job's token is gone; nothing to sign the callback with".to_owned();
        };
        let body = match serde_json::to_string(&JobView::of(job)) {
            Ok(body) => body,
            Err(e) => return format!("failed: cannot make the body: {e}"),
        };
        let mut wait = self.backoff;
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            match self.try_once(job, &receiver, &secret, &body).await {
                Ok(()) => {
                    tracing::info!(job = %job.id, attempt, "callback delivered");
                    return "delivered".to_owned();
                }
                Err(why) => last = why,
            }
            if attempt < self.attempts {
                let state = format!(
                    "pending: attempt {attempt} of {} failed: {last}",
                    self.attempts
                );
                self.record(&job.id, state).await;
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_BACKOFF);
            }
        }
        format!("failed after {} attempts: {last}", self.attempts)
    }

    /// One try: `Err` says what the job may show of a failure (the status,
    /// never the answer's body nor the error's text, which the log gets).
    async fn try_once(
        &self,
        job: &JobRecord,
        receiver: &Receiver,
        secret: &str,
        body: &str,
    ) -> Result<(), String> {
        let sent = self
            .client
            .post(receiver.url.clone())
            .header("content-type", "application/json")
            .header("X-Remex-Job", &job.id)
            .header(SIGNATURE, signature(secret, unix_now(), body.as_bytes()))
            .body(body.to_owned())
            .send()
            .await;
        match sent {
            Ok(answer) if answer.status().is_success() => Ok(()),
            Ok(answer) => {
                let status = answer.status();
                tracing::warn!(job = %job.id, "callback answered {status}");
                Err(if status.is_redirection() {
                    format!("HTTP {} (redirects are not followed)", status.as_u16())
                } else {
                    format!("HTTP {}", status.as_u16())
                })
            }
            Err(e) => {
                let refused =
                    std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
                        e.source()
                    })
                    .any(|e| e.is::<Refused>());
                let e = e.without_url();
                tracing::warn!(job = %job.id, "callback failed: {}", crate::error_chain::chain(&e));
                Err(if refused {
                    Refused.to_string()
                } else {
                    "no answer".to_owned()
                })
            }
        }
    }
}

/// Seconds since the Unix epoch, now.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `X-Remex-Signature` value of `body` sent at `t`: `t=T,v1=HEX`, HEX
/// the HMAC-SHA256 of `T.BODY` with `secret` (the scheme Stripe uses).
pub(crate) fn signature(secret: &str, t: u64, body: &[u8]) -> String {
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    format!("t={t},v1={}", sign(secret, &signed))
}

/// Hex HMAC-SHA256 of `data` with `secret`.
pub(crate) fn sign(secret: &str, data: &[u8]) -> String {
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_signature_covers_its_time_and_body() {
        let at = signature("s", 1_700_000_000, b"{}");
        assert_eq!(
            at,
            format!("t=1700000000,v1={}", sign("s", b"1700000000.{}"))
        );
        assert_ne!(at, signature("s", 1_700_000_001, b"{}"));
        assert_ne!(at, signature("s", 1_700_000_000, b"{ }"));
    }
}
