//! The key operations that contact no host: `keys generate` and `keys
//! prune`. Each is one audited run of its own: a `start` record, the work
//! (with a `key` record per key made or deleted), an `end` record.

use serde::Serialize;

use super::generate::{KeyKind, default_comment, generate};
use super::list::KeyInfo;
use super::run::{key_dir, record_key};
use crate::audit::{Op, Record, Redactor};
use crate::error_chain::chain;
use crate::failure::{ErrorKind, Failure};
use crate::keydir::archive::prune;
use crate::keydir::{KeysError, PruneReport, load_state};
use crate::run::report::{NoHost, RunReport};
use crate::run::runner::{LocalOperation, Redact, RunState};
use crate::run::{Error, Executor, RunContext};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    /// The key's name, its file name in the key directory.
    pub name: String,
    /// Its type and size.
    pub kind: KeyKind,
    /// Encrypt the private key with this passphrase.
    pub passphrase: Option<String>,
}

/// What `keys generate` reports beside the (empty) results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Generated {
    /// The key made, as `keys list` shows it.
    pub key: KeyInfo,
}

impl Redact for Generated {
    fn redact(&mut self, redactor: &Redactor) {
        self.key.name = redactor.redact(&self.key.name).into_owned();
    }
}

impl Redact for PruneReport {}

/// The report of `keys generate`.
pub type GenerateReport = RunReport<NoHost, Generated>;

/// The report of `keys prune`.
pub type PruneRunReport = RunReport<NoHost, PruneReport>;

impl Executor {
    /// Generates a key pair in the key directory (OpenSSH format, 0600 in a
    /// 0700 directory; an existing key is never overwritten).
    ///
    /// # Errors
    ///
    /// [`Error::Audit`] when the run cannot be recorded (nothing was done);
    /// [`Error::Failed`] when the key could not be made (recorded too).
    pub async fn keys_generate(
        &self,
        ctx: &RunContext,
        request: &GenerateRequest,
    ) -> Result<GenerateReport, Error> {
        let ctx = match &request.passphrase {
            Some(passphrase) => ctx.clone().secret(passphrase.clone()),
            None => ctx.clone(),
        };
        self.run_local(&ctx, Generate(request.clone())).await
    }

    /// Deletes archived keys (kept after rotations) for good; keys still
    /// deployed somewhere are kept unless `force`.
    ///
    /// # Errors
    ///
    /// [`Error::Audit`] when the run cannot be recorded (nothing was done);
    /// [`Error::Failed`] when the archive or the state could not be read or
    /// changed (recorded too).
    pub async fn keys_prune(&self, ctx: &RunContext, force: bool) -> Result<PruneRunReport, Error> {
        self.run_local(ctx, Prune { force }).await
    }
}

struct Generate(GenerateRequest);

impl LocalOperation for Generate {
    type Output = Generated;

    fn op(&self) -> Op {
        Op::KeysGenerate
    }

    fn describe(&self, record: Record) -> Record {
        record.key(self.0.name.clone())
    }

    async fn run(&self, run: &RunState) -> Result<Generated, Failure> {
        let dir = key_dir(&run.executor);
        let GenerateRequest {
            name,
            kind,
            passphrase,
        } = self.0.clone();
        let key = tokio::task::spawn_blocking(move || {
            generate(&dir, &name, kind, passphrase.as_deref(), &default_comment())
        })
        .await
        .map_err(|e| Failure::new(ErrorKind::Keys, format!("key generation: {e}")))?
        .map_err(|e| Failure::new(ErrorKind::Keys, chain(&e)))?;
        run.executor.key_state_changed();
        record_key(
            run,
            "generated",
            &key.name,
            &key.fingerprint,
            [&key.private_path],
        );
        Ok(Generated {
            key: KeyInfo {
                name: key.name,
                algorithm: key.public_key.algorithm().as_str().to_owned(),
                fingerprint: key.fingerprint,
                comment: key.public_key.comment().to_string(),
                created: key.created,
                path: key.private_path,
                public_path: key.public_path,
                archived: false,
                deployed_to: Vec::new(),
                used_by: Vec::new(),
            },
        })
    }
}

struct Prune {
    force: bool,
}

impl LocalOperation for Prune {
    type Output = PruneReport;

    fn op(&self) -> Op {
        Op::KeysPrune
    }

    async fn run(&self, run: &RunState) -> Result<PruneReport, Failure> {
        let dir = key_dir(&run.executor);
        let force = self.force;
        let failure = |e: KeysError| Failure::new(ErrorKind::Keys, e.to_string());
        // No host step may run while archived keys are deleted (a revoke
        // may be about to read one's `.pub`).
        let _whole = run
            .executor
            .key_locks()
            .whole_dir()
            .await
            .map_err(failure)?;
        let (before, report) = tokio::task::spawn_blocking(move || {
            // Fingerprints, by archived name, for the records of what is
            // deleted.
            let before = load_state(&dir)?;
            let report = prune(&dir, force)?;
            Ok::<_, KeysError>((before, report))
        })
        .await
        .map_err(|e| Failure::new(ErrorKind::Keys, format!("pruning: {e}")))?
        .map_err(failure)?;
        run.executor.key_state_changed();
        for key in &report.removed {
            let fingerprint = before
                .keys
                .get(&key.name)
                .map(|k| k.fingerprint.clone())
                .unwrap_or_default();
            record_key(run, "pruned", &key.name, &fingerprint, &key.files);
        }
        Ok(report)
    }
}
