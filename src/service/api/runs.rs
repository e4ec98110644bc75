//! `POST /v1/runs`: a command or a script on the selected hosts, as
//! `remex exec` / `remex script` run them. The body is the library's
//! [`RunRequest`], the same JSON `remex exec --request` reads.

use axum::response::Response;

use super::extract::WaitQuery;
use super::openapi::Finished;
use super::submit::{JobCall, JobRequest};
use crate::exec::{ByteSize, Exec, RequestPolicy, RunRequest, ScriptRequest};
use crate::service::auth::Scope;
use crate::service::error::{ApiError, ErrorBody};
use crate::service::jobs::Work;
use crate::service::state::Shared;
use crate::service::view::JobView;

/// Starts a command or script on the selected hosts.
#[utoipa::path(
    post,
    path = "/v1/runs",
    tag = "runs",
    request_body = RunRequest,
    params(WaitQuery),
    responses(
        (status = 200, description = "The job ended within `wait`: its report (or, when it could not run, the job with its `error`)", body = Finished),
        (status = 202, description = "Accepted and under way: poll `links.self` or follow `links.events`", body = JobView),
        (status = 400, description = "A bad request, naming the field (a `callback_url` that `service.callbacks.allow` does not name, too); nothing ran", body = ErrorBody),
        (status = 403, description = "The token lacks the scope (`exec`, or `script` for a script), or a selected host is outside its targets", body = ErrorBody),
        (status = 404, description = "`targets` names a host or group the inventory does not have (or selects none), or `script.name` is not in `service.scripts_dir`", body = ErrorBody),
        (status = 409, description = "The idempotency key was used with another body", body = ErrorBody),
    )
)]
pub(crate) async fn create_run(call: JobCall<RunRequest>) -> Result<Response, ApiError> {
    call.submit().await
}

impl JobRequest for RunRequest {
    fn scope(&self) -> Scope {
        if self.is_script() {
            Scope::Script
        } else {
            Scope::Exec
        }
    }

    fn targets(&self) -> &str {
        &self.targets
    }

    fn work(&self, state: &Shared) -> Result<Work, ApiError> {
        Ok(Work::Exec(exec_of(self, &state.request_policy())?))
    }

    fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }

    fn callback_url(&self) -> Option<&str> {
        self.callback_url.as_deref()
    }

    fn parallel(&self) -> Option<usize> {
        RunRequest::parallel(self)
    }

    fn redacted(&self) -> Self {
        RunRequest::redacted(self)
    }
}

/// The command `request` runs, as `policy` (the service's) allows it: a
/// script by name must be in `service.scripts_dir` (404 when it is not),
/// and a `max_output` larger than `service.limits.max_output` is cut to
/// it (the document cannot know the configured limit; a cap is still a
/// cap).
pub(crate) fn exec_of(request: &RunRequest, policy: &RequestPolicy) -> Result<Exec, ApiError> {
    if let Some(name) = request.script.as_ref().and_then(script_by_name) {
        script_in_dir(policy.scripts_dir.as_deref(), name)?;
    }
    let limit = policy.max_output_limit as u64;
    let mut request = request.clone();
    request.max_output = request
        .max_output
        .map(|ByteSize(bytes)| ByteSize(bytes.min(limit)));
    Ok(request.to_exec(policy)?)
}

/// The name of a script asked for by name alone, when it is a plain name
/// (others are refused by the request's own checks, naming the field).
fn script_by_name(script: &ScriptRequest) -> Option<&str> {
    let name = script.name.as_deref()?;
    let alone = script.body.is_none() && script.path.is_none();
    (alone && super::rules::matches(super::rules::SCRIPT_NAME, name)).then_some(name)
}

/// 404 naming `script.name` when `dir` has no script `name`.
fn script_in_dir(dir: Option<&std::path::Path>, name: &str) -> Result<(), ApiError> {
    let Some(dir) = dir else {
        return Err(ApiError::missing(
            "script.name",
            "no scripts by name here: service.scripts_dir is not set; send `script.body`",
        ));
    };
    if !dir.join(name).is_file() {
        return Err(ApiError::missing(
            "script.name",
            format!(
                "no script `{}` in service.scripts_dir",
                name.escape_default()
            ),
        ));
    }
    Ok(())
}
