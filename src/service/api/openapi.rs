//! The OpenAPI document: the contract a client (or a fuzzer) may hold the
//! service to. The paths come from the handlers' attributes; this file
//! holds the frame, the answers every authenticated operation can give
//! ([`Answers`]: the guard's 401, 429, 500 and 503, a bad request's 400,
//! a body's 408 and 413 — all in the one error shape), the rules between
//! fields that field attributes cannot say ([`Rules`]: exactly one of
//! `command`, `raw` and `script`; a key type and its sizes; …), and the
//! schemas of what a finished job answers ([`Finished`]).
//!
//! The run request's schema is the library's type's, refined here for
//! what this service accepts (the patterns of `rules.rs`, no local
//! script path): the library's request serves the command line as well,
//! whose rules differ.

use utoipa::ToSchema;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, AnyOfBuilder, ArrayItems, Object, ObjectBuilder,
    OneOfBuilder, Schema, Type,
};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

use super::rules;
use crate::service::view::JobView;

/// The document's frame.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "remex",
        description = "The Remote Execution Service: run commands and scripts on a fleet of Linux hosts over SSH, move files, manage keys — audited. Every request needs `Authorization: Bearer rmx_…` (`remex tokens create`) except `/healthz` and this document.\n\nEvery error is `{\"error\": {\"kind\", \"message\", \"field\"}}` with `Content-Type: application/json`. A query parameter given with an empty value (`?wait=`) counts as left out. A path with a method it does not take is 405 with `Allow`.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(
        crate::service::error::ErrorBody,
        crate::service::jobs::HostStarted,
        crate::service::jobs::Output,
        crate::service::jobs::JobFinished,
        Report,
        Finished,
        rules::Duration,
        rules::Time,
        rules::HostName,
        rules::RemotePath,
        rules::UploadPath,
        rules::FileName,
        rules::FileMode,
        rules::Cursor,
        rules::EventId,
    ))
)]
pub(crate) struct ApiDoc;

/// Declares the bearer-token scheme.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, api: &mut OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("rmx_ token")
                    .build(),
            ),
        );
    }
}

/// Completes the document once the handlers' paths are in it: the
/// answers every operation can give besides its own, and the rules
/// between fields.
pub(crate) fn complete(api: &mut OpenApi) {
    use utoipa::Modify as _;
    Answers.modify(api);
    Rules.modify(api);
}

/// An error answer: `description`, in the one error shape.
pub(crate) fn error(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

/// The answers the guard and the extractors give, added to every
/// operation that can give them (an operation's own description of one
/// stays):
///
/// - every operation behind a token: 401 (no valid token), 429 (over the
///   token's rate, or without a valid token over the address's), 500 (the
///   service's own fault), 503 (shutting down, or the audit log cannot
///   record);
/// - with a parameter or a body: 400, naming the field;
/// - with a body: 408 (it stopped coming), 413 (larger than the limits).
struct Answers;

impl utoipa::Modify for Answers {
    fn modify(&self, api: &mut OpenApi) {
        for item in api.paths.paths.values_mut() {
            let path_params = item.parameters.as_ref().is_some_and(|p| !p.is_empty());
            for op in operations(item) {
                empty_is_left_out(op);
                if !authenticated(op) {
                    continue;
                }
                let answers = &mut op.responses.responses;
                let mut add = |status: &str, description: &str| {
                    answers
                        .entry(status.to_owned())
                        .or_insert_with(|| error(description));
                };
                add(
                    "401",
                    "No valid token: none, malformed, unknown, revoked or expired",
                );
                add(
                    "429",
                    "Over the token's rate (`service.limits.requests_per_minute`) or its jobs under way, \
                     or — without a valid token — over the address's rate",
                );
                add("500", "The service's own fault (its store); logged");
                add(
                    "503",
                    "The service is shutting down, or the audit log cannot record: nothing was done",
                );
                let body = op.request_body.is_some();
                let params = path_params || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
                if body || params {
                    add(
                        "400",
                        "A bad request, naming the field (`field`); nothing was done",
                    );
                }
                if body {
                    add(
                        "408",
                        "The body stopped coming for `service.limits.idle_timeout`",
                    );
                    add(
                        "413",
                        "The body is larger than `service.limits.max_json` (JSON) or `max_body` (an upload)",
                    );
                }
            }
        }
    }
}

/// Says of each optional query parameter of `op` that it may be given
/// empty (`?wait=`), which the service reads as left out (`Params`):
/// `allowEmptyValue`, which utoipa does not write.
fn empty_is_left_out(op: &mut Operation) {
    use utoipa::openapi::Required;
    use utoipa::openapi::extensions::Extensions;
    use utoipa::openapi::path::ParameterIn;
    for param in op.parameters.iter_mut().flatten() {
        let RefOr::T(param) = param else { continue };
        if param.parameter_in == ParameterIn::Query && param.required == Required::False {
            param
                .extensions
                .get_or_insert_with(Extensions::default)
                .insert("allowEmptyValue".to_owned(), true.into());
        }
    }
}

/// The operations of a path.
fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Whether `op` needs a token: it does unless it says `security: [{}]`.
fn authenticated(op: &Operation) -> bool {
    match &op.security {
        None => true,
        Some(requirements) => !requirements
            .iter()
            .any(|r| serde_json::to_value(r).is_ok_and(|v| v == serde_json::json!({}))),
    }
}

/// The rules between fields, and the run request as this service takes
/// it.
struct Rules;

impl utoipa::Modify for Rules {
    fn modify(&self, api: &mut OpenApi) {
        let Some(components) = api.components.as_mut() else {
            return;
        };
        let schemas = &mut components.schemas;
        refine(schemas, "RunRequest", run_request);
        refine(schemas, "ScriptRequest", script_request);
        refine(schemas, "SudoRequest", sudo_request);
        refine(schemas, "RotateKeysRequest", rotate_request);
        refine(schemas, "TrustHostsRequest", trust_request);
    }
}

/// Replaces the object schema `name` with what `rule` makes of it.
fn refine(
    schemas: &mut std::collections::BTreeMap<String, RefOr<Schema>>,
    name: &str,
    rule: fn(Object) -> Schema,
) {
    if let Some(RefOr::T(Schema::Object(object))) = schemas.remove(name) {
        schemas.insert(name.to_owned(), RefOr::T(rule(object)));
    } else {
        tracing::error!("the OpenAPI document has no object schema {name}");
    }
}

/// The object property `name` of `object`.
fn property<'o>(object: &'o mut Object, name: &str) -> Option<&'o mut Object> {
    match object.properties.get_mut(name) {
        Some(RefOr::T(Schema::Object(property))) => Some(property),
        _ => None,
    }
}

/// The largest integer a field of 64 unsigned bits takes.
const U64_MAX: usize = usize::MAX;

/// `POST /v1/runs`'s body: the library's `RunRequest` with the patterns
/// its parsers hold it to, without what the service refuses, and exactly
/// one of `command`, `raw` and `script` (given, not `null`).
fn run_request(mut object: Object) -> Schema {
    let mut selector = Ref::from_schema_name("Selector");
    selector.description = property(&mut object, "targets")
        .and_then(|t| t.description.clone())
        .unwrap_or_default();
    object
        .properties
        .insert("targets".to_owned(), RefOr::Ref(selector));
    if let Some(RefOr::T(Schema::Array(command))) = object.properties.get_mut("command") {
        command.min_items = Some(1);
    }
    words(&mut object, "command");
    replace(&mut object, "raw", |description| {
        AnyOfBuilder::new()
            .description(description)
            .item(rules::all_of(None, &[rules::NOT_BLANK, rules::NUL_FREE]))
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .build()
            .into()
    });
    let reserved = rules::not_prefixed(crate::exec::RESERVED_ENV_PREFIX);
    for env in ["env", "secret_env"] {
        if let Some(env) = property(&mut object, env) {
            env.property_names = Some(Box::new(rules::all_of(None, &[rules::ENV_NAME, &reserved])));
            env.additional_properties = Some(Box::new(AdditionalProperties::RefOr(RefOr::T(
                rules::text(rules::NUL_FREE).build().into(),
            ))));
        }
    }
    if let Some(cwd) = property(&mut object, "cwd") {
        cwd.pattern = Some(rules::NUL_FREE.to_owned());
    }
    if let Some(parallel) = property(&mut object, "parallel") {
        parallel.format = None;
        parallel.maximum = Some(u32::MAX.into());
    }
    replace(&mut object, "timeout", |description| {
        AnyOfBuilder::new()
            .description(description)
            .item(rules::all_of(None, &[rules::TIMEOUT, rules::NONZERO]))
            .item(rules::integer(1, U64_MAX))
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .build()
            .into()
    });
    replace(&mut object, "max_output", |description| {
        AnyOfBuilder::new()
            .description(description.map(|d| {
                format!("{d} A larger cap than `service.limits.max_output` is cut to it.")
            }))
            .item(rules::text(rules::SIZE))
            .item(rules::integer(0, U64_MAX))
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .build()
            .into()
    });
    if let Some(callback) = property(&mut object, "callback_url") {
        let said = callback.description.clone().unwrap_or_default();
        callback.description = Some(format!(
            "{said} A receiver `service.callbacks.allow` does not name (or any, while callbacks are off) is a 400 naming `callback_url`: the allow-list is the operator's, so no schema can hold it."
        ));
    }
    let given = |field: &str, kind: Type| {
        ObjectBuilder::new()
            .required(field)
            .property(field, ObjectBuilder::new().schema_type(kind))
    };
    AllOfBuilder::new()
        .description(object.description.clone())
        .item(object)
        .item(
            OneOfBuilder::new()
                .item(given("command", Type::Array))
                .item(given("raw", Type::String))
                .item(given("script", Type::Object)),
        )
        .build()
        .into()
}

/// The words of array property `name`: no NUL byte in any.
fn words(object: &mut Object, name: &str) {
    if let Some(RefOr::T(Schema::Array(array))) = object.properties.get_mut(name) {
        array.items =
            ArrayItems::RefOrSchema(Box::new(rules::text(rules::NUL_FREE).build().into()));
    }
}

/// A run's `sudo`: a user and a password that the command line can carry.
fn sudo_request(mut object: Object) -> Schema {
    if let Some(user) = property(&mut object, "user") {
        user.pattern = Some(rules::NUL_FREE.to_owned());
    }
    if let Some(password) = property(&mut object, "password") {
        password.pattern = Some(rules::PASSWORD.to_owned());
    }
    object.into()
}

/// Replaces property `name` with `make(its description)`.
fn replace(object: &mut Object, name: &str, make: impl FnOnce(Option<String>) -> Schema) {
    let description = property(object, name).and_then(|p| p.description.clone());
    object
        .properties
        .insert(name.to_owned(), RefOr::T(make(description)));
}

/// A run's `script`: its text (`body`, with a `name` for messages), or a
/// script of `service.scripts_dir` by `name` alone (one that is not there
/// is a 404); never a local `path`, which the service refuses.
fn script_request(mut object: Object) -> Schema {
    object.properties.shift_remove("path");
    words(&mut object, "args");
    for (name, pattern) in [("interpreter", rules::NUL_FREE), ("body", rules::SHEBANG)] {
        if let Some(field) = property(&mut object, name) {
            field.pattern = Some(pattern.to_owned());
        }
    }
    object.description = Some(
        "`script` of a run: its text (`body`, with an optional `name` for messages), or a \
         script of `service.scripts_dir` by `name` alone (one that is not there is a 404)."
            .to_owned(),
    );
    let by_text = ObjectBuilder::new()
        .required("body")
        .property("body", rules::string());
    let by_name = ObjectBuilder::new()
        .required("name")
        .property("name", rules::text(rules::SCRIPT_NAME))
        .property("body", ObjectBuilder::new().schema_type(Type::Null));
    AllOfBuilder::new()
        .description(object.description.clone())
        .item(object)
        .item(OneOfBuilder::new().item(by_text).item(by_name))
        .build()
        .into()
}

/// `POST /v1/keys/rotate`: a key type (any case) and the sizes it takes.
fn rotate_request(object: Object) -> Schema {
    let null = || ObjectBuilder::new().schema_type(Type::Null);
    let ed25519 = ObjectBuilder::new()
        .property(
            "type",
            AnyOfBuilder::new()
                .item(null())
                .item(rules::text("^[Ee][Dd]25519$")),
        )
        .property("bits", null());
    let ecdsa = ObjectBuilder::new()
        .required("type")
        .property("type", rules::text("^[Ee][Cc][Dd][Ss][Aa]$"))
        .property(
            "bits",
            AnyOfBuilder::new().item(null()).item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .enum_values(Some([256, 384, 521])),
            ),
        );
    let rsa = ObjectBuilder::new()
        .required("type")
        .property("type", rules::text("^[Rr][Ss][Aa]$"))
        .property(
            "bits",
            AnyOfBuilder::new().item(null()).item(rules::integer(
                crate::ops::keys::generate::MIN_RSA_BITS as usize,
                crate::ops::keys::generate::MAX_RSA_BITS as usize,
            )),
        );
    AllOfBuilder::new()
        .description(object.description.clone())
        .item(object)
        .item(OneOfBuilder::new().item(ed25519).item(ecdsa).item(rsa))
        .build()
        .into()
}

/// `POST /v1/hosts/trust`: `scan`, or fingerprints to pin.
fn trust_request(object: Object) -> Schema {
    let scan = ObjectBuilder::new().required("scan").property(
        "scan",
        ObjectBuilder::new()
            .schema_type(Type::Boolean)
            .enum_values(Some([true])),
    );
    let pin = ObjectBuilder::new().required("fingerprints").property(
        "fingerprints",
        rules::list(Ref::from_schema_name("Fingerprint")).min_items(Some(1)),
    );
    AllOfBuilder::new()
        .description(object.description.clone())
        .item(object)
        .item(AnyOfBuilder::new().item(scan).item(pin))
        .build()
        .into()
}

/// What a finished job answers (200): its report, or — when it could not
/// run, so has none — the job.
#[derive(ToSchema)]
#[serde(untagged)]
// Never built: the document's description of what is sent.
#[allow(dead_code, clippy::large_enum_variant)]
pub(crate) enum Finished {
    /// The report.
    Report(Report),
    /// The job, with its `error`.
    Job(JobView),
}

/// A report: the CLI's `--json` document (`version` 2), with the
/// operation's own fields besides these.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct Report {
    /// The schema's version.
    version: u32,
    /// The operation, as the audit log names it (`exec`, `upload`,
    /// `keys.deploy`, …).
    operation: String,
    /// The run's id (the job's).
    run_id: String,
    /// One per host, in selection order.
    results: Vec<HostResult>,
    /// The counts.
    summary: Summary,
    /// Set when the audit log could not record all of the run.
    #[schema(nullable = false)]
    audit_error: Option<String>,
}

/// One host's result, with the operation's own fields besides these
/// (`exit_code`, `stdout`, …).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct HostResult {
    /// The host.
    host: String,
    /// Where it was reached.
    address: String,
    /// Its port.
    port: u16,
    /// The user logged in as.
    user: String,
    /// Whether it succeeded.
    ok: bool,
    /// How long it took.
    duration_ms: u64,
    /// Why it failed.
    error: Option<HostFailure>,
}

/// A host's failure.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct HostFailure {
    /// Its class (`connect`, `auth`, `timeout`, `exit_status`, `transfer`, …).
    kind: String,
    /// What happened.
    message: String,
}

/// A report's counts.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct Summary {
    /// Hosts.
    total: u64,
    /// Hosts that succeeded.
    ok: u64,
    /// Hosts that failed.
    failed: u64,
    /// Hosts that timed out.
    timed_out: u64,
    /// Hosts not reached.
    unreachable: u64,
    /// Failures by class.
    by_kind: std::collections::BTreeMap<String, u64>,
    /// How long the run took.
    duration_ms: u64,
}

#[cfg(test)]
mod tests;
