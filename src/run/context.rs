//! [`RunContext`]: what the caller decides about one run besides the request
//! itself — who runs it, how many hosts at once, how to stop it, who answers
//! its questions, who watches it. It travels with the run: two runs of one
//! [`crate::Executor`] at the same time each keep their own.
//!
//! The library never prompts and never reads the environment for a secret:
//! a run that needs a passphrase, a password or a yes asks its
//! [`Prompter`]. The CLI's prompter reads `REMEX_KEY_PASSPHRASE` and asks on
//! the terminal; [`NoPrompter`] (the default, and what a service uses)
//! answers nothing.

use std::path::Path;
use std::sync::Arc;

use super::cancel::Cancel;
use super::report::{Detail, HostReport};

/// The settings of one run that are not part of its request.
#[derive(Clone)]
pub struct RunContext {
    /// Who drives the run (a workflow, a ticket, a service client): written
    /// as `workflow` in every audit record of the run, next to the OS user.
    pub actor: Option<String>,
    /// The request that started the run (a service's request id): written
    /// as `request` in every audit record of the run.
    pub request_id: Option<String>,
    /// The run id to use (a service makes its job id the run id); `None`:
    /// a fresh one. It must be unique: every record of the run carries it.
    pub run_id: Option<String>,
    /// Hosts worked on at once in this run (`--parallel`); `None`: the
    /// executor's whole budget (`max_parallel`). The budget is shared by
    /// every run of the executor, so this only ever lowers it.
    pub parallel: Option<usize>,
    /// Stops the run early (see [`Cancel`]).
    pub cancel: Option<Cancel>,
    /// Literal secrets to replace by `[REDACTED]` in everything the run
    /// shows and records, beside the request's own (`--secret-env` values,
    /// passwords) and the config's patterns.
    pub secrets: Vec<String>,
    /// Answers the run's questions (passphrase, password, host-key trust).
    pub prompter: Arc<dyn Prompter>,
    /// Watches the run as it happens (output lines, progress, hosts done).
    pub observer: Option<Arc<dyn Observer>>,
}

impl Default for RunContext {
    fn default() -> Self {
        RunContext {
            actor: None,
            request_id: None,
            run_id: None,
            parallel: None,
            cancel: None,
            secrets: Vec::new(),
            prompter: Arc::new(NoPrompter),
            observer: None,
        }
    }
}

impl std::fmt::Debug for RunContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("actor", &self.actor)
            .field("request_id", &self.request_id)
            .field("run_id", &self.run_id)
            .field("parallel", &self.parallel)
            .field("cancel", &self.cancel)
            .field(
                "secrets",
                &format_args!("[{} REDACTED]", self.secrets.len()),
            )
            .finish_non_exhaustive()
    }
}

impl RunContext {
    /// A context with no actor, no limit of its own, no cancel, no
    /// prompter and no observer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the actor.
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Sets the request id.
    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// Sets the run's own limit of hosts at once.
    pub fn parallel(mut self, hosts: usize) -> Self {
        self.parallel = Some(hosts);
        self
    }

    /// Sets the cancel signal.
    pub fn cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// Adds a literal secret to redact.
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secrets.push(secret.into());
        self
    }

    /// Sets the prompter.
    pub fn prompter(mut self, prompter: Arc<dyn Prompter>) -> Self {
        self.prompter = prompter;
        self
    }

    /// Sets the observer.
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }
}

/// Answers the questions a run may have. Every method is called on a
/// blocking thread and may block (a terminal prompt); the defaults answer
/// nothing.
pub trait Prompter: Send + Sync {
    /// The passphrase of the encrypted private key at `path`, or why there
    /// is none (shown in the host's error, e.g. "set REMEX_KEY_PASSPHRASE").
    /// Asked when a connection needs the key; a key is decrypted once per
    /// executor while its file is unchanged.
    fn passphrase(&self, _path: &Path) -> Result<String, String> {
        Err("no passphrase was given".to_owned())
    }

    /// The password of `user` on the hosts, or why there is none; asked at
    /// most once per run (`keys deploy` to hosts that take no key yet).
    fn password(&self, _user: &str) -> Result<String, String> {
        Err("no password was given".to_owned())
    }

    /// Whether to pin the host key `offer` shows (`hosts trust` without
    /// `--yes` or `--fingerprint`). Called one host at a time.
    fn trust(&self, _offer: &HostKeyOffer) -> bool {
        false
    }
}

/// A prompter that answers nothing: encrypted keys need their passphrase
/// elsewhere, passwords must be given, and no host key is trusted on
/// request.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPrompter;

impl Prompter for NoPrompter {}

/// A host key a host offered, for [`Prompter::trust`].
#[derive(Debug, Clone)]
pub struct HostKeyOffer {
    /// The host's name.
    pub host: String,
    /// `address:port`.
    pub address: String,
    /// The key's type.
    pub key_type: String,
    /// Its fingerprint.
    pub fingerprint: String,
    /// The fingerprints pinned now, when the key changed.
    pub previous: Vec<String>,
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Watches a run as it happens: the CLI's host-prefixed output and progress
/// bars, a service's live events. Called from the hosts' tasks: an
/// implementation must be cheap and must not block. Everything it is given
/// has passed through the run's redactor.
pub trait Observer: Send + Sync {
    /// Work on `host` begins (after it got its turn under the parallelism
    /// limit).
    fn started(&self, _host: &str) {}
    /// A whole line (without its `\n`) of a command's output arrived from
    /// `host`; a last line without a newline is delivered when the stream
    /// ends.
    fn line(&self, _host: &str, _stream: Stream, _line: &[u8]) {}
    /// A piece of a line longer than [`crate::exec::MAX_LINE`] bytes
    /// arrived from `host`: the line goes on in the next `line_cut` or
    /// `line` of this stream. By default handed on as a line.
    fn line_cut(&self, host: &str, stream: Stream, piece: &[u8]) {
        self.line(host, stream, piece);
    }
    /// Whether `line` and `line_cut` of `host`'s `stream` are of use now;
    /// once `false` it stays so, and the run stops splitting (and
    /// redacting) that stream's output for the observer. Default: `true`.
    fn wants_lines(&self, _host: &str, _stream: Stream) -> bool {
        true
    }
    /// `host` will move `bytes` more bytes (transfers; may be called again,
    /// e.g. per directory walked).
    fn expect(&self, _host: &str, _bytes: u64) {}
    /// `host` moved `bytes` more bytes.
    fn advance(&self, _host: &str, _bytes: u64) {}
    /// `host` is finished: its result, as the report will hold it.
    fn done(&self, _host: &HostReport<dyn Detail>) {}
}
