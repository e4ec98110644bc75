//! `POST /v1/runs`: a command or a script on the selected hosts, as
//! `remex exec` / `remex script` run them. The body is the library's
//! [`RunRequest`], the same JSON `remex exec --request` reads.

use axum::response::Response;

use super::extract::WaitQuery;
use super::submit::{JobCall, JobRequest};
use crate::exec::RunRequest;
use crate::service::auth::Scope;
use crate::service::error::ApiError;
use crate::service::jobs::Work;
use crate::service::state::Shared;

/// Starts a command or script on the selected hosts.
#[utoipa::path(
    post,
    path = "/v1/runs",
    tag = "runs",
    request_body = RunRequest,
    params(WaitQuery),
    responses(
        (status = 200, description = "The job ended within `wait`: its report", body = crate::service::view::JobView),
        (status = 202, description = "Accepted and under way: poll `links.self` or follow `links.events`", body = crate::service::view::JobView),
        (status = 400, description = "A bad request, naming the field; nothing ran", body = crate::service::error::ErrorBody),
        (status = 403, description = "The token lacks the scope, or a selected host is outside its targets", body = crate::service::error::ErrorBody),
        (status = 409, description = "The idempotency key was used with another body", body = crate::service::error::ErrorBody),
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
        Ok(Work::Exec(self.to_exec(&state.request_policy())?))
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
