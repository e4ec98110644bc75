//! The `service:` section: how `remex serve` listens, where it keeps its
//! jobs, and its limits. Optional: every field has a default, and a config
//! without it serves on `127.0.0.1:7878` with a SQLite store beside the
//! audit log.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{duration, size};

/// `remex serve`'s settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// Address and port to listen on. Default: `127.0.0.1:7878` (loopback
    /// only: put TLS in front, or set `tls`, before listening elsewhere).
    /// `remex serve --listen` overrides it.
    pub listen: String,
    /// HTTPS instead of HTTP. Default: none.
    pub tls: Option<TlsConfig>,
    /// The job store (SQLite). Default: `~/.local/state/remex/service.db`.
    /// A relative path is relative to the config file's directory.
    pub store: PathBuf,
    /// How long finished jobs (with their output) are kept. Default: `7d`.
    #[serde(deserialize_with = "duration::deserialize")]
    pub retain: Duration,
    /// Local scripts a request may run by name (`"script": {"name": …}`).
    /// Default: none (only inline scripts).
    pub scripts_dir: Option<PathBuf>,
    /// What a SIGTERM or SIGINT does to jobs still running: `cancel` them
    /// (their remote commands are stopped, every `end` record written;
    /// default) or let them `finish` (new requests get 503 meanwhile).
    pub on_shutdown: OnShutdown,
    /// Limits per request and per token.
    pub limits: Limits,
    /// Where a job's `callback_url` may point, and how callbacks are
    /// tried. Default: nowhere (a request with a `callback_url` is 400).
    pub callbacks: CallbacksConfig,
}

/// `service.callbacks`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallbacksConfig {
    /// The receivers a `callback_url` may name: URL prefixes
    /// (`http://127.0.0.1:5678/webhook/`: same scheme, host and port, a
    /// path below this one) or `host:port` (any path, http or https).
    /// Default: none, so callbacks are off until the operator names one.
    /// Checked when `remex serve` starts.
    pub allow: Vec<String>,
    /// Tries per callback, the first at once, then 1 s, 2 s, 4 s, …
    /// apart. Default: 6.
    pub attempts: u32,
    /// How long one try may take, connecting included. Default: `10s`.
    #[serde(deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
}

/// What a shutdown does to running jobs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnShutdown {
    /// Stop them as Ctrl-C stops a CLI run.
    #[default]
    Cancel,
    /// Wait until they end.
    Finish,
}

/// `service.tls`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by one of these
    /// CAs (PEM), as well as a token. Default: none.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// `service.limits`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// The largest request body (uploads included). Default: `1G`.
    #[serde(deserialize_with = "size::deserialize")]
    pub max_body: u64,
    /// The largest JSON request body. Default: `10M`.
    #[serde(deserialize_with = "size::deserialize")]
    pub max_json: u64,
    /// Output kept per stream per host (stdout, stderr) in a job's report
    /// and its live events; the rest is cut and marked `truncated`.
    /// Default: `1M`.
    #[serde(deserialize_with = "size::deserialize")]
    pub max_output: u64,
    /// Requests per minute per token. Default: 600.
    pub requests_per_minute: u32,
    /// Jobs per token running at once. Default: 16.
    pub jobs_per_token: u32,
    /// The longest `?wait=` a request may ask for. Default: `5m`.
    #[serde(deserialize_with = "duration::deserialize")]
    pub max_wait: Duration,
    /// The largest download (`GET /v1/files/download`; a directory: all
    /// its files together). The file is fetched and verified before its
    /// first byte is sent, so this bounds the disk a download takes;
    /// larger is 413. Default: `1G`.
    #[serde(deserialize_with = "size::deserialize")]
    pub max_download: u64,
    /// Requests per minute per client address without a valid token (none,
    /// a malformed, unknown, revoked or expired one; and
    /// `/v1/openapi.json`); beyond it they are answered 429 without a look
    /// at the store. IPv6 clients count per /64. Default: 60.
    pub unauthenticated_per_minute: u32,
    /// Requests denied before a handler (401, 429) are audited once per
    /// client address, reason and this interval: the first at once, the
    /// rest as one record with their `count` when the interval ends.
    /// Default: `1m`.
    #[serde(deserialize_with = "duration::deserialize")]
    pub denied_audit_interval: Duration,
    /// How long a client may take to send a request's head, counted from
    /// when the connection opens or its previous answer was sent (so it is
    /// also how long a kept-alive connection may sit idle). Default: `10s`.
    #[serde(deserialize_with = "duration::deserialize")]
    pub header_timeout: Duration,
    /// How long a request body or an answer may make no progress (the
    /// client sends nothing, or reads nothing) before the connection is
    /// closed. Default: `60s`.
    #[serde(deserialize_with = "duration::deserialize")]
    pub idle_timeout: Duration,
    /// Connections open at once; one more is closed as soon as it is
    /// accepted. Default: 1024.
    pub max_connections: usize,
    /// Connections open at once from one client address (IPv6: one /64).
    /// Default: 256.
    pub max_connections_per_address: usize,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            listen: "127.0.0.1:7878".to_owned(),
            tls: None,
            store: PathBuf::from("~/.local/state/remex/service.db"),
            retain: Duration::from_secs(7 * 24 * 3600),
            scripts_dir: None,
            on_shutdown: OnShutdown::Cancel,
            limits: Limits::default(),
            callbacks: CallbacksConfig::default(),
        }
    }
}

impl Default for CallbacksConfig {
    fn default() -> Self {
        CallbacksConfig {
            allow: Vec::new(),
            attempts: 6,
            timeout: Duration::from_secs(10),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 1 << 30,
            max_json: 10 << 20,
            max_output: 1 << 20,
            requests_per_minute: 600,
            jobs_per_token: 16,
            max_wait: Duration::from_secs(300),
            max_download: 1 << 30,
            unauthenticated_per_minute: 60,
            denied_audit_interval: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_connections_per_address: 256,
        }
    }
}
