//! `POST /v1/runs`: a command or a script on the selected hosts, as
//! `remex exec` / `remex script` run them.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::body::JsonBody;
use super::jobs::{JobView, answer_job};
use super::{AppState, RequestId};
use crate::ops::exec::{Exec, Script, Sudo};
use crate::service::auth::{Caller, Scope};
use crate::service::error::ApiError;
use crate::service::jobs::{Finished, Submission, Work};
use crate::service::store::{self, JobRecord, JobState};

/// A run: exactly one of `command`, `raw` and `script`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunRequest {
    /// Which hosts: the CLI's selector grammar (`web,!db01`, `vm0*`, `all`).
    #[schema(example = "web,!db01")]
    pub targets: String,
    /// The command's words; each arrives as one argument, never re-split.
    #[serde(default)]
    #[schema(example = json!(["systemctl", "is-active", "nginx"]))]
    pub command: Option<Vec<String>>,
    /// A shell command line, run as is by the login shell.
    #[serde(default)]
    pub raw: Option<String>,
    /// A script to copy to each host, run and remove.
    #[serde(default)]
    pub script: Option<ScriptRequest>,
    /// How long the command may run (`30s`, `5m`, or `none`); default the
    /// config's `command_timeout`. The command and its children are
    /// stopped then.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Environment for the command.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Environment whose values are secrets: `[REDACTED]` in the report,
    /// the events, the audit log and the stored job.
    #[serde(default)]
    pub secret_env: BTreeMap<String, String>,
    /// Working directory; the command fails with status 126 when it is
    /// missing.
    #[serde(default)]
    pub cwd: Option<String>,
    /// Text for the command's stdin (the same for every host).
    #[serde(default)]
    pub stdin: Option<String>,
    /// Run as another user through sudo.
    #[serde(default)]
    pub sudo: Option<SudoRequest>,
    /// Hosts worked on at once (default: the service's whole budget).
    #[serde(default)]
    pub parallel: Option<u32>,
    /// The same key from the same token returns the same job instead of
    /// starting another (a retried request); with another body, 409.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Where to POST the finished job (signed with the token's callback
    /// secret): for n8n's Wait node.
    #[serde(default)]
    pub callback_url: Option<String>,
}

/// `script` of a run: the body inline, or the name of a script in
/// `service.scripts_dir`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScriptRequest {
    /// The script's text.
    #[serde(default)]
    pub body: Option<String>,
    /// With `body`: its file name (for messages and the audit log);
    /// without: the script of that name in `service.scripts_dir`.
    #[serde(default)]
    pub name: Option<String>,
    /// Its arguments, each arriving as one argument.
    #[serde(default)]
    pub args: Vec<String>,
    /// The interpreter (default: the `#!` line, else `/bin/sh`).
    #[serde(default)]
    pub interpreter: Option<String>,
}

/// `sudo` of a run.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SudoRequest {
    /// The user to run as (default `root`).
    #[serde(default)]
    pub user: Option<String>,
    /// The sudo password, when the host asks for one (a secret: it travels
    /// only on the command's stdin and is redacted everywhere).
    #[serde(default)]
    pub password: Option<String>,
}

/// `?wait=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct WaitQuery {
    /// Wait up to this long (`30s`) for the job to end: 200 with the job
    /// when it does, else 202 with its id and links.
    pub wait: Option<String>,
}

/// Starts a command or script on the selected hosts.
#[utoipa::path(
    post,
    path = "/v1/runs",
    tag = "runs",
    request_body = RunRequest,
    params(WaitQuery),
    responses(
        (status = 200, description = "The job ended within `wait`: its report", body = JobView),
        (status = 202, description = "Accepted and under way: poll `links.self` or follow `links.events`", body = JobView),
        (status = 400, description = "A bad request, naming the field; nothing ran", body = crate::service::error::ErrorBody),
        (status = 403, description = "The token lacks the scope, or a selected host is outside its targets", body = crate::service::error::ErrorBody),
        (status = 409, description = "The idempotency key was used with another body", body = crate::service::error::ErrorBody),
    )
)]
pub(crate) async fn create_run(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(request_id): Extension<RequestId>,
    Query(query): Query<WaitQuery>,
    JsonBody(request): JsonBody<RunRequest>,
) -> Result<Response, ApiError> {
    let wait = super::body::wait(query.wait.as_deref(), state.config.limits.max_wait)?;
    let scope = if request.script.is_some() {
        Scope::Script
    } else {
        Scope::Exec
    };
    caller.require(scope)?;
    let exec = exec_of(&state, &request)?;
    let selector = request.targets.clone();
    let job = NewJob {
        operation: if request.script.is_some() {
            "script"
        } else {
            "exec"
        },
        targets: &request.targets,
        request: &request,
        parallel: request.parallel.map(|p| p as usize),
        secrets: exec.secrets(),
        work: Box::new(move |executor, ctx| {
            Box::pin(async move {
                let report = executor.exec(&ctx, &selector, &exec).await?;
                Ok(Finished::of(&report))
            })
        }),
    };
    submit(&state, &caller, &request_id, wait, job).await
}

/// A job a handler starts, once it checked the token's scope.
pub(crate) struct NewJob<'a, T> {
    /// The operation's name (`exec`, `upload`, `keys.deploy`, …).
    pub operation: &'a str,
    /// The selector it runs on.
    pub targets: &'a str,
    /// The request, as stored (secrets scrubbed on the way).
    pub request: &'a T,
    /// Hosts at once.
    pub parallel: Option<usize>,
    /// Secrets to redact.
    pub secrets: Vec<String>,
    /// The work.
    pub work: Work,
}

/// Starts `job` for `caller` — every selected host within the token's
/// targets, a retry (same idempotency key) answered with its first job —
/// and answers after waiting up to `wait`.
pub(crate) async fn submit<T: Serialize>(
    state: &AppState,
    caller: &Caller,
    request_id: &RequestId,
    wait: std::time::Duration,
    job: NewJob<'_, T>,
) -> Result<Response, ApiError> {
    caller.reach(&state.executor, job.targets)?;
    let record = new_job(caller, job.operation, job.targets, job.request, request_id)?;
    if let Some(existing) = same_request(state, &record).await? {
        return answer_job(state, existing, wait).await;
    }
    let submission = Submission {
        record,
        parallel: job.parallel,
        secrets: job.secrets,
        work: job.work,
    };
    start(state, caller, submission, wait).await
}

/// The `Exec` a request asks for: 400 naming the field that is wrong.
fn exec_of(state: &AppState, request: &RunRequest) -> Result<Exec, ApiError> {
    let mut exec = match (&request.command, &request.raw, &request.script) {
        (Some(argv), None, None) => {
            if argv.is_empty() {
                return Err(ApiError::field("command", "the command is empty"));
            }
            Exec::argv(argv.clone())
        }
        (None, Some(raw), None) => Exec::raw(raw.clone()),
        (None, None, Some(script)) => {
            Exec::script(load_script(state, script)?, script.args.clone())
        }
        (None, None, None) => {
            return Err(ApiError::field(
                "command",
                "say what to run: `command` (words), `raw` (a shell line) or `script`",
            ));
        }
        _ => {
            return Err(ApiError::field(
                "command",
                "give only one of `command`, `raw` and `script`",
            ));
        }
    };
    exec.env = request.env.clone().into_iter().collect();
    exec.secret_env = request.secret_env.clone().into_iter().collect();
    exec.cwd = request.cwd.clone();
    exec.max_output = usize::try_from(state.config.limits.max_output).unwrap_or(usize::MAX);
    if let Some(timeout) = &request.timeout {
        exec.timeout =
            Some(crate::config::parse_timeout(timeout).map_err(|e| ApiError::field("timeout", e))?);
    }
    if let Some(stdin) = &request.stdin {
        exec.stdin = Some(Arc::new(stdin.clone().into_bytes()));
    }
    if let Some(sudo) = &request.sudo {
        exec.sudo = Some(Sudo {
            user: sudo.user.clone(),
            password: sudo.password.clone().map(Arc::new),
        });
    }
    if request.parallel == Some(0) {
        return Err(ApiError::field("parallel", "parallel must be at least 1"));
    }
    exec.validate().map_err(|e| {
        let field = if e.contains("environment") {
            "env"
        } else {
            "command"
        };
        ApiError::field(field, e)
    })?;
    Ok(exec)
}

/// The script a request names.
fn load_script(state: &AppState, script: &ScriptRequest) -> Result<Script, ApiError> {
    let loaded = match (&script.body, &script.name) {
        (Some(body), name) => Script::from_bytes(
            name.clone().unwrap_or_else(|| "script".to_owned()),
            body.clone().into_bytes(),
        ),
        (None, Some(name)) => {
            let dir = state.config.scripts_dir.as_ref().ok_or_else(|| {
                ApiError::field(
                    "script.name",
                    "no scripts by name here: service.scripts_dir is not set; send `script.body`",
                )
            })?;
            if name.is_empty() || name.starts_with('.') || name.contains('/') || name.contains('\0')
            {
                return Err(ApiError::field(
                    "script.name",
                    format!("`{name}` is not a script name (no `/`, not starting with `.`)"),
                ));
            }
            Script::load(&dir.join(name)).map_err(|e| {
                ApiError::field(
                    "script.name",
                    format!("no script `{name}` in service.scripts_dir: {e}"),
                )
            })?
        }
        (None, None) => {
            return Err(ApiError::field(
                "script",
                "a script needs `body` (its text) or `name` (one in service.scripts_dir)",
            ));
        }
    };
    Ok(match &script.interpreter {
        Some(interpreter) => loaded.with_interpreter(interpreter.clone()),
        None => loaded,
    })
}

/// A new job record for `request` (secrets left out of what is stored).
pub(crate) fn new_job<T: Serialize>(
    caller: &Caller,
    operation: &str,
    targets: &str,
    request: &T,
    request_id: &RequestId,
) -> Result<JobRecord, ApiError> {
    let mut stored = serde_json::to_value(request).unwrap_or_default();
    let body_hash = super::super::auth::hex(&Sha256::digest(stored.to_string().as_bytes()));
    scrub(&mut stored);
    let mut kept = stored.to_string();
    if kept.len() > 64 * 1024 {
        kept = r#"{"note":"the request was larger than 64 KiB; not kept"}"#.to_owned();
    }
    let (idempotency_key, callback_url) = (
        stored["idempotency_key"].as_str().map(str::to_owned),
        stored["callback_url"].as_str().map(str::to_owned),
    );
    if let Some(url) = &callback_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(ApiError::field(
            "callback_url",
            "the callback URL must start with http:// or https://",
        ));
    }
    tracing::debug!(request = %request_id.0, "new {operation} job");
    Ok(JobRecord {
        id: crate::audit::new_run_id(),
        token: caller.token.name.clone(),
        operation: operation.to_owned(),
        targets: targets.to_owned(),
        state: JobState::Queued,
        request: kept,
        report: None,
        error: None,
        created_ms: crate::service::jobs::now_ms(),
        started_ms: None,
        finished_ms: None,
        idempotency_key,
        request_hash: body_hash,
        callback_url,
        callback_state: None,
    })
}

/// Removes what a stored request must not keep: secret values, the sudo
/// password, stdin (only its size stays).
fn scrub(request: &mut serde_json::Value) {
    if let Some(secret_env) = request
        .get_mut("secret_env")
        .and_then(|v| v.as_object_mut())
    {
        for value in secret_env.values_mut() {
            *value = "[REDACTED]".into();
        }
    }
    if let Some(sudo) = request.get_mut("sudo").and_then(|v| v.as_object_mut())
        && sudo.get("password").is_some_and(|p| !p.is_null())
    {
        sudo.insert("password".into(), "[REDACTED]".into());
    }
    if let Some(stdin) = request.get("stdin").and_then(|v| v.as_str()) {
        let size = stdin.len();
        request["stdin"] = format!("[{size} bytes]").into();
    }
    if let Some(password) = request.get_mut("password") {
        *password = "[REDACTED]".into();
    }
}

/// The job a retry of `record`'s request (same token, same idempotency
/// key) refers to; 409 when the key was used with another body.
pub(crate) async fn same_request(
    state: &AppState,
    record: &JobRecord,
) -> Result<Option<JobRecord>, ApiError> {
    let Some(key) = record.idempotency_key.clone() else {
        return Ok(None);
    };
    let token = record.token.clone();
    let existing = store::blocking(&state.store, move |s| s.job_by_key(&token, &key)).await?;
    match existing {
        Some(job) if job.request_hash == record.request_hash => Ok(Some(job)),
        Some(job) => Err(ApiError::conflict(format!(
            "idempotency key `{}` was used for job {} with another request; use a new key",
            record.idempotency_key.as_deref().unwrap_or_default(),
            job.id
        ))),
        None => Ok(None),
    }
}

/// Submits a job within the token's limit of jobs at once, and answers.
pub(crate) async fn start(
    state: &AppState,
    caller: &Caller,
    submission: Submission,
    wait: std::time::Duration,
) -> Result<Response, ApiError> {
    let limit = state.config.limits.jobs_per_token as usize;
    if state.jobs.running_for(&caller.token.name) >= limit {
        return Err(ApiError::rate_limited(format!(
            "token `{}` has {limit} jobs under way (service.limits.jobs_per_token); wait for one to end",
            caller.token.name
        )));
    }
    let job = state.jobs.submit(submission).await?;
    answer_job(state, job, wait).await
}
