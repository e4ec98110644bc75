//! Callbacks: when a job with a `callback_url` ends, its report is POSTed
//! there (what n8n's Wait node "On Webhook Call" waits for).
//!
//! The body is the job's JSON (as `GET /v1/jobs/{id}` answers). Headers:
//! `X-Remex-Job` (the job id) and `X-Remex-Signature: sha256=HEX`, the
//! HMAC-SHA256 of the body with the token's callback secret (shown when the
//! token was made), so the receiver can tell the call came from this
//! service. A failed delivery (no answer, or not 2xx) is tried again after
//! 1, 2, 4, 8 and 16 s; the outcome is recorded in the job
//! (`callback_state`: `delivered`, or `failed: …`).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hmac::{KeyInit as _, Mac as _};
use tokio::task::JoinSet;

use super::store::{self, JobRecord, Store};
use super::view::JobView;

/// The signature header.
pub(crate) const SIGNATURE: &str = "X-Remex-Signature";

/// Deliveries under way.
#[derive(Default)]
pub(crate) struct Callbacks {
    /// The HTTP client (one connection pool for every delivery).
    client: Option<reqwest::Client>,
    /// Deliveries under way, so a shutdown can wait for them.
    tasks: Mutex<JoinSet<()>>,
    /// How long to wait between tries (shorter in tests).
    backoff: Duration,
}

impl Callbacks {
    /// Deliveries with an HTTP client that gives up on an answer after
    /// 30 s, and `backoff` before the first retry (doubling each time).
    pub(crate) fn new(backoff: Duration) -> Callbacks {
        super::tls::install_provider();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| tracing::error!("callbacks are off: {e}"))
            .ok();
        Callbacks {
            client,
            tasks: Mutex::new(JoinSet::new()),
            backoff,
        }
    }

    /// Starts delivering `job`'s report to its `callback_url`.
    pub(crate) fn deliver(&self, store: Arc<dyn Store>, job: JobRecord) {
        let (Some(client), Some(url)) = (self.client.clone(), job.callback_url.clone()) else {
            return;
        };
        let backoff = self.backoff;
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget deliveries that are over.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            let state = send(&client, &store, &job, &url, backoff).await;
            let mut record = job;
            record.callback_state = Some(state);
            let id = record.id.clone();
            if let Err(e) = store::blocking(&store, move |s| s.update_job(&record)).await {
                tracing::error!(job = %id, "cannot record the callback's outcome: {e}");
            }
        });
    }

    /// Waits (at most a minute) for the deliveries under way.
    pub(crate) async fn drain(&self) {
        let mut tasks =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        let all = async { while tasks.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(Duration::from_secs(60), all).await;
    }
}

/// Tries the delivery; what happened, for `callback_state`.
async fn send(
    client: &reqwest::Client,
    store: &Arc<dyn Store>,
    job: &JobRecord,
    url: &str,
    backoff: Duration,
) -> String {
    let token = job.token.clone();
    let secret = store::blocking(store, move |s| s.tokens())
        .await
        .ok()
        .and_then(|tokens| tokens.into_iter().find(|t| t.name == token))
        .map(|t| t.callback_secret)
        .unwrap_or_default();
    let body = serde_json::to_string(&JobView::of(job)).unwrap_or_default();
    let signature = sign(&secret, body.as_bytes());
    let mut wait = backoff;
    let mut last = String::new();
    for attempt in 1..=6 {
        let sent = client
            .post(url)
            .header("content-type", "application/json")
            .header("X-Remex-Job", &job.id)
            .header(SIGNATURE, format!("sha256={signature}"))
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(answer) if answer.status().is_success() => {
                tracing::info!(job = %job.id, attempt, "callback delivered");
                return "delivered".to_owned();
            }
            Ok(answer) => last = format!("answered {}", answer.status()),
            Err(e) => last = e.to_string(),
        }
        tracing::warn!(job = %job.id, attempt, "callback to {url} failed: {last}");
        if attempt < 6 {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    format!("failed after 6 attempts: {last}")
}

/// Hex HMAC-SHA256 of `body` with `secret`.
pub(crate) fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
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
}
