//! [`RunRequest`]: a command or script run as one JSON object — the body of
//! the service's `POST /v1/runs`, the file of `remex exec --request`, and
//! what a library caller may deserialize — one type, so a field cannot
//! mean two things at two edges.
//!
//! ```json
//! {"targets": "web,!db01",
//!  "command": ["systemctl", "is-active", "nginx"],
//!  "timeout": "30s",
//!  "env": {"LC_ALL": "C"}, "secret_env": {"TOKEN": "…"},
//!  "cwd": "/srv/app", "stdin": "text for the command",
//!  "sudo": {"user": "postgres", "password": "…"},
//!  "parallel": 8, "pty": false, "max_output": "1M"}
//! ```
//!
//! Exactly one of `command` (words), `raw` (a shell line) and `script`
//! (`{"body": "…", "name": "x.sh"}`, `{"name": "x.sh"}` from the scripts
//! directory, or — on the command line only — `{"path": "./x.sh"}`), with
//! `args` and `interpreter`. Unknown fields are refused; every error names
//! the field ([`RequestError`]). What an edge allows beyond the fields (a
//! local script path, the most output) is its [`RequestPolicy`].

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::command::{DEFAULT_MAX_OUTPUT, Exec};
use super::script::Script;
use super::sudo::Sudo;
use super::timeout::Timeout;
use crate::run::RequestError;

// Its `Debug` shows no secret: `env` and `secret_env` by name, stdin by size.
/// A run: `targets` and exactly one of `command`, `raw` and `script`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// Which hosts: the selector grammar (`web,!db01`, `vm0*`, `all`).
    #[cfg_attr(feature = "service", schema(example = "web,!db01"))]
    pub targets: String,
    /// The command's words; each arrives as one argument, never re-split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "service", schema(example = json!(["systemctl", "is-active", "nginx"])))]
    pub command: Option<Vec<String>>,
    /// A shell command line, run as is by the login shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// A script to copy to each host, run and remove.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<ScriptRequest>,
    /// How long the command may run (`30s`, `5m`, or `none`); default the
    /// config's `command_timeout`. The command and its children are
    /// stopped then.
    #[serde(default, skip_serializing_if = "Timeout::is_default")]
    #[cfg_attr(feature = "service", schema(value_type = Option<String>, example = "30s"))]
    pub timeout: Timeout,
    /// Environment for the command.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Environment whose values are secrets: `[REDACTED]` in the report,
    /// the events, the audit log and a stored job.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_env: BTreeMap<String, String>,
    /// Working directory; the command fails with status 126 when it is
    /// missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Text for the command's stdin (the same for every host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// Run as another user through sudo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sudo: Option<SudoRequest>,
    /// Hosts worked on at once (default: `max_parallel`, the whole budget).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::config::whole::optional_nonzero_u32"
    )]
    #[cfg_attr(feature = "service", schema(value_type = Option<u32>, minimum = 1))]
    pub parallel: Option<NonZeroU32>,
    /// Ask for a pseudo-terminal (`ssh -t`): stdout and stderr merged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pty: bool,
    /// Cap on each of stdout and stderr per host: bytes, or a size such as
    /// `"512K"` (default, and most: the edge's — 16M for the command line,
    /// `service.limits.max_output` for the service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "service", schema(value_type = Option<String>, example = "512K"))]
    pub max_output: Option<ByteSize>,
    /// Service only: the same key from the same token returns the same job
    /// instead of starting another (a retried request); with another body,
    /// 409. The command line refuses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Service only: where to POST the finished job (signed with the
    /// token's callback secret), for n8n's Wait node. The command line
    /// refuses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// Set by `Action::prepare` only, never from JSON: the named action
    /// this request is (its name and params for the records, its secret
    /// values, the checks of its paths on the host). A request written
    /// out and read back has lost it: run a prepared action from memory,
    /// or prepare it again.
    #[serde(skip)]
    pub action: Option<Arc<super::ActionRun>>,
}

impl std::fmt::Debug for RunRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // An action's secret params may sit in its words.
        let hidden;
        let words = match self.action.as_deref().filter(|a| a.has_secrets()) {
            Some(_) => {
                hidden = self.redacted();
                &hidden
            }
            None => self,
        };
        f.debug_struct("RunRequest")
            .field("targets", &self.targets)
            .field("command", &words.command)
            .field("raw", &self.raw)
            .field("script", &words.script)
            .field("timeout", &self.timeout)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("secret_env", &self.secret_env.keys().collect::<Vec<_>>())
            .field("cwd", &self.cwd)
            .field("stdin", &self.stdin.as_ref().map(String::len))
            .field("sudo", &self.sudo)
            .field("parallel", &self.parallel)
            .field("pty", &self.pty)
            .field("max_output", &self.max_output)
            .field("idempotency_key", &self.idempotency_key)
            .field("callback_url", &self.callback_url)
            .field("action", &self.action)
            .finish()
    }
}

/// `script` of a run: its text (`body`), a script of the scripts directory
/// (`name` alone), or a file on the machine running remex (`path`, the
/// command line only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ScriptRequest {
    /// The script's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// With `body`: its file name (for messages and the audit log);
    /// alone: the script of that name in `service.scripts_dir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The command line only (`remex exec --request`): a local script file,
    /// relative to remex's working directory. The service refuses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "service", schema(value_type = Option<String>))]
    pub path: Option<PathBuf>,
    /// Its arguments, each arriving as one argument.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// The interpreter (default: the `#!` line, else `/bin/sh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
}

/// `sudo` of a run.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "service", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SudoRequest {
    /// The user to run as (default `root`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The sudo password, when the host asks for one (a secret: it travels
    /// only on the command's stdin and is redacted everywhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl std::fmt::Debug for SudoRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SudoRequest")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// A size in bytes: a number, or a string such as `"512K"` or `"16M"` (as
/// sizes in the config are written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        crate::config::deserialize_size(de).map(ByteSize)
    }
}

/// What the edge that received a [`RunRequest`] allows, beyond its fields.
#[derive(Debug, Clone)]
pub struct RequestPolicy {
    /// Whether `script.path` may name a file on this machine: yes for the
    /// command line (its user's own files), never for the service (a
    /// caller must not read the orchestrator's files).
    pub local_scripts: bool,
    /// Where `script.name` alone finds its script (`service.scripts_dir`);
    /// without one, such a request is refused.
    pub scripts_dir: Option<PathBuf>,
    /// `max_output` when the request gives none.
    pub default_max_output: usize,
    /// The largest `max_output` a request may ask for.
    pub max_output_limit: usize,
}

impl RequestPolicy {
    /// The command line's: local scripts allowed, 16M of output by
    /// default, no limit.
    pub fn command_line(scripts_dir: Option<PathBuf>) -> RequestPolicy {
        RequestPolicy {
            local_scripts: true,
            scripts_dir,
            default_max_output: DEFAULT_MAX_OUTPUT,
            max_output_limit: usize::MAX,
        }
    }
}

impl RunRequest {
    /// Reads a request from JSON, naming the field that does not fit.
    ///
    /// # Errors
    ///
    /// Not JSON, an unknown field, a field of the wrong shape or value.
    pub fn from_json(bytes: &[u8]) -> Result<RunRequest, RequestError> {
        crate::run::request_error::from_json(bytes)
    }

    /// Whether it runs a script (the service's `script` scope) rather than
    /// a command (`exec`).
    pub fn is_script(&self) -> bool {
        self.script.is_some()
    }

    /// The [`Exec`] this request asks for, as `policy` allows it; every
    /// error names its field. The script, if any, is read now.
    ///
    /// # Errors
    ///
    /// Not exactly one of `command`, `raw` and `script`; an empty command;
    /// a script that cannot be read or is not allowed; an invalid
    /// environment name; `max_output` above the policy's limit.
    pub fn to_exec(&self, policy: &RequestPolicy) -> Result<Exec, RequestError> {
        let mut exec = match (&self.command, &self.raw, &self.script) {
            (Some(argv), None, None) => Exec::argv(argv.clone()),
            (None, Some(raw), None) => Exec::raw(raw.clone()),
            (None, None, Some(script)) => Exec::script(script.load(policy)?, script.args.clone()),
            (None, None, None) => {
                return Err(RequestError::field(
                    "command",
                    "say what to run: `command` (words), `raw` (a shell line) or `script`",
                ));
            }
            _ => {
                return Err(RequestError::field(
                    "command",
                    "give only one of `command`, `raw` and `script`",
                ));
            }
        };
        exec.env = self.env.clone().into_iter().collect();
        exec.secret_env = self.secret_env.clone().into_iter().collect();
        exec.cwd = self.cwd.clone();
        exec.pty = self.pty;
        exec.timeout = self.timeout;
        exec.max_output = match self.max_output {
            None => policy.default_max_output,
            Some(ByteSize(bytes)) => {
                let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
                if bytes > policy.max_output_limit {
                    return Err(RequestError::field(
                        "max_output",
                        format!(
                            "max_output may be at most {} bytes here (service.limits.max_output)",
                            policy.max_output_limit
                        ),
                    ));
                }
                bytes
            }
        };
        exec.stdin = self
            .stdin
            .as_ref()
            .map(|stdin| Arc::new(stdin.clone().into_bytes()));
        exec.sudo = self.sudo.as_ref().map(|sudo| Sudo {
            user: sudo.user.clone(),
            password: sudo.password.clone().map(Arc::new),
        });
        exec.action = self.action.clone();
        exec.validate()?;
        Ok(exec)
    }

    /// Hosts at once, if the request says.
    pub fn parallel(&self) -> Option<usize> {
        self.parallel.map(|p| p.get() as usize)
    }

    /// A copy fit to keep (a job record): secret values and the sudo
    /// password replaced by `[REDACTED]`, stdin by its size; an action's
    /// secret params wherever they went (words, arguments, env values).
    pub fn redacted(&self) -> RunRequest {
        let mut kept = self.clone();
        if let Some(action) = self.action.as_deref().filter(|a| a.has_secrets()) {
            let words = kept.command.iter_mut().flatten();
            let args = kept.script.iter_mut().flat_map(|s| s.args.iter_mut());
            for text in words
                .chain(args)
                .chain(kept.env.values_mut())
                .chain(kept.secret_env.values_mut())
            {
                *text = action.hide(text);
            }
        }
        for value in kept.secret_env.values_mut() {
            *value = "[REDACTED]".to_owned();
        }
        if let Some(sudo) = &mut kept.sudo
            && sudo.password.is_some()
        {
            sudo.password = Some("[REDACTED]".to_owned());
        }
        if let Some(stdin) = &mut kept.stdin {
            *stdin = format!("[{} bytes]", stdin.len());
        }
        kept
    }
}

impl ScriptRequest {
    /// The script: `body`, the file `path` (when the policy allows local
    /// scripts), or `name` in the scripts directory.
    fn load(&self, policy: &RequestPolicy) -> Result<Script, RequestError> {
        let script = match (&self.body, &self.path, &self.name) {
            (Some(body), None, name) => Script::from_bytes(
                name.clone().unwrap_or_else(|| "script".to_owned()),
                body.clone().into_bytes(),
            ),
            (None, Some(path), None) => {
                if !policy.local_scripts {
                    return Err(RequestError::field(
                        "script.path",
                        "the service reads no local file: send the script's text as `script.body`, or the `name` of one in service.scripts_dir",
                    ));
                }
                Script::load(path).map_err(|e| {
                    RequestError::field(
                        "script.path",
                        format!("cannot read the script {}: {e}", path.display()),
                    )
                })?
            }
            (None, None, Some(name)) => from_scripts_dir(policy.scripts_dir.as_deref(), name)?,
            (None, None, None) => {
                return Err(RequestError::field(
                    "script",
                    "a script needs `body` (its text), `name` (one in service.scripts_dir) or, on the command line, `path`",
                ));
            }
            _ => {
                return Err(RequestError::field(
                    "script",
                    "give one of `body` (with an optional `name`), `name` alone, and `path`",
                ));
            }
        };
        Ok(match &self.interpreter {
            Some(interpreter) => script.with_interpreter(interpreter.clone()),
            None => script,
        })
    }
}

/// The script `name` of the scripts directory `dir`: a plain file name,
/// never a path out of it.
fn from_scripts_dir(dir: Option<&Path>, name: &str) -> Result<Script, RequestError> {
    let dir = dir.ok_or_else(|| {
        RequestError::field(
            "script.name",
            "no scripts by name here: service.scripts_dir is not set; send `script.body`",
        )
    })?;
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\0']) {
        return Err(RequestError::field(
            "script.name",
            format!("`{name}` is not a script name (no `/`, not starting with `.`)"),
        ));
    }
    Script::load(&dir.join(name)).map_err(|e| {
        RequestError::field(
            "script.name",
            format!("no script `{name}` in service.scripts_dir: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::exec::Command;

    fn policy() -> RequestPolicy {
        RequestPolicy::command_line(None)
    }

    fn field(json: &str, policy: &RequestPolicy) -> Option<String> {
        match RunRequest::from_json(json.as_bytes()) {
            Ok(request) => request.to_exec(policy).err().and_then(|e| e.field),
            Err(e) => e.field,
        }
    }

    #[test]
    fn a_request_becomes_an_exec() {
        let request = RunRequest::from_json(
            br#"{"targets":"web","command":["printf","%s\n","$(id)"],"timeout":"none",
                "env":{"A":"b"},"max_output":"1K","parallel":2,"pty":true}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let exec = request.to_exec(&policy()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            exec.command,
            Command::Argv(vec!["printf".into(), "%s\n".into(), "$(id)".into()])
        );
        assert_eq!(exec.timeout, Timeout::Never);
        assert_eq!(exec.env, [("A".to_owned(), "b".to_owned())]);
        assert_eq!(exec.max_output, 1024);
        assert!(exec.pty);
        assert_eq!(request.parallel(), Some(2));
        let bytes = RunRequest::from_json(br#"{"targets":"a","raw":"id","max_output":512}"#)
            .and_then(|r| r.to_exec(&policy()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bytes.max_output, 512);
        assert_eq!(bytes.timeout, Timeout::Default);
        assert_eq!(bytes.command, Command::Raw("id".into()));
    }

    #[test]
    fn errors_name_the_field() {
        let cli = policy();
        for (json, want) in [
            (r#"{"targets":"a","command":["x",1]}"#, "command[1]"),
            (r#"{"targets":"a","comand":["x"]}"#, "comand"),
            (r#"{"targets":"a","command":["x"],"raw":"y"}"#, "command"),
            (r#"{"targets":"a"}"#, "command"),
            (r#"{"targets":"a","command":[]}"#, "command"),
            (r#"{"targets":"a","raw":"  "}"#, "raw"),
            (
                r#"{"targets":"a","command":["x"],"timeout":"0"}"#,
                "timeout",
            ),
            (
                r#"{"targets":"a","command":["x"],"timeout":"soon"}"#,
                "timeout",
            ),
            (
                r#"{"targets":"a","command":["x"],"parallel":0}"#,
                "parallel",
            ),
            (
                r#"{"targets":"a","command":["x"],"parallel":-1}"#,
                "parallel",
            ),
            (
                r#"{"targets":"a","command":["x"],"max_output":"1Q"}"#,
                "max_output",
            ),
            (r#"{"targets":"a","command":["x"],"env":{"1A":"x"}}"#, "env"),
            (
                r#"{"targets":"a","command":["x"],"secret_env":{"A=B":"x"}}"#,
                "secret_env",
            ),
            (
                r#"{"targets":"a","command":["x"],"sudo":{"pass":"x"}}"#,
                "sudo.pass",
            ),
            (r#"{"targets":"a","script":{}}"#, "script"),
            (
                r#"{"targets":"a","script":{"body":"x","path":"y"}}"#,
                "script",
            ),
            (r#"{"targets":"a","script":{"name":"x.sh"}}"#, "script.name"),
            (
                r#"{"targets":"a","script":{"path":"/nonexistent/x.sh"}}"#,
                "script.path",
            ),
        ] {
            assert_eq!(field(json, &cli).as_deref(), Some(want), "{json}");
        }
        let missing = RunRequest::from_json(br#"{"command":["x"]}"#).unwrap_err();
        assert!(
            missing.message.contains("missing field `targets`"),
            "{missing:?}"
        );
        let trailing = RunRequest::from_json(br#"{"targets":"a","command":["x"]} {}"#);
        assert!(trailing.unwrap_err().message.contains("trailing"));
    }

    #[test]
    fn the_service_reads_no_local_script_and_caps_output() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("ok.sh"), "echo ok\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join(".hidden"), "x").unwrap_or_else(|e| panic!("{e}"));
        let service = RequestPolicy {
            local_scripts: false,
            scripts_dir: Some(dir.path().to_owned()),
            default_max_output: 1 << 20,
            max_output_limit: 1 << 20,
        };
        let local = format!(
            r#"{{"targets":"a","script":{{"path":"{}"}}}}"#,
            dir.path().join("ok.sh").display()
        );
        assert_eq!(field(&local, &service).as_deref(), Some("script.path"));
        for name in [
            "../ok.sh",
            ".hidden",
            "",
            "a/ok.sh",
            "missing.sh",
            "ok.sh\u{0}",
        ] {
            let json = serde_json::json!({"targets": "a", "script": {"name": name}}).to_string();
            assert_eq!(
                field(&json, &service).as_deref(),
                Some("script.name"),
                "{name:?}"
            );
        }
        let named =
            RunRequest::from_json(br#"{"targets":"a","script":{"name":"ok.sh","args":["1"]}}"#)
                .and_then(|r| r.to_exec(&service))
                .unwrap_or_else(|e| panic!("{e}"));
        let Command::Script { script, args } = &named.command else {
            panic!("not a script: {:?}", named.command);
        };
        assert_eq!(
            (script.name.as_str(), args.as_slice()),
            ("ok.sh", ["1".to_owned()].as_slice())
        );
        assert_eq!(named.max_output, 1 << 20);
        let big = r#"{"targets":"a","command":["x"],"max_output":"2M"}"#;
        assert_eq!(field(big, &service).as_deref(), Some("max_output"));
        assert_eq!(field(big, &policy()), None);
    }

    #[test]
    fn a_kept_copy_holds_no_secret() {
        let request = RunRequest::from_json(
            br#"{"targets":"a","command":["x"],"secret_env":{"T":"s3cret"},
                "sudo":{"user":"pg","password":"hunter2"},"stdin":"private",
                "env":{"A":"visible"},"timeout":"90s"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let kept = serde_json::to_string(&request.redacted()).unwrap_or_default();
        for secret in ["s3cret", "hunter2", "private"] {
            assert!(!kept.contains(secret), "{kept}");
        }
        assert!(kept.contains(r#""stdin":"[7 bytes]""#), "{kept}");
        assert!(kept.contains(r#""A":"visible""#), "{kept}");
        assert!(kept.contains(r#""timeout":"1m30s""#), "{kept}");
        // What is kept reads back as a request.
        let again = RunRequest::from_json(kept.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.timeout, Timeout::After(Duration::from_secs(90)));
        let debug = format!("{request:?}");
        for secret in ["s3cret", "hunter2", "private", "visible"] {
            assert!(!debug.contains(secret), "{debug}");
        }
    }
}
