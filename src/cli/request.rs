//! `remex exec --request FILE|-`: the whole request as one JSON object, so
//! a program calling remex passes targets, argv and environment as data —
//! nothing of it is pasted into a shell string on this machine.
//!
//! The fields are those of the service's `POST /v1/runs` body, where they
//! exist, and a few of the command line's:
//!
//! ```json
//! {"targets": "web,!db01",
//!  "command": ["systemctl", "is-active", "nginx"],   // or "raw": "…", or "script": {…}
//!  "timeout": "30s",                                  // or "none"
//!  "env": {"LC_ALL": "C"}, "secret_env": {"TOKEN": "…"},
//!  "cwd": "/srv/app", "stdin": "text for the command",
//!  "sudo": {"user": "postgres", "password": "…"},
//!  "parallel": 8, "pty": false, "max_output": "1M"}
//! ```
//!
//! `script` is `{"path": "./local.sh"}` or `{"body": "#!/bin/sh\n…",
//! "name": "x.sh"}`, with `args` and `interpreter`. Unknown fields are
//! refused, and every error names the field (`command[1]`).

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use remex::{Exec, Script, Sudo};

use super::error_report::Usage;

/// A run: targets and exactly one of `command`, `raw` and `script`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunRequest {
    /// Which hosts: the selector grammar (`web,!db01`, `vm0*`, `all`).
    pub targets: String,
    /// The command's words; each arrives as one argument, never re-split.
    #[serde(default)]
    command: Option<Vec<String>>,
    /// A shell command line, run as is by the login shell (`--raw`).
    #[serde(default)]
    raw: Option<String>,
    /// A script to copy to each host, run and remove.
    #[serde(default)]
    script: Option<ScriptRequest>,
    /// `30s`, `5m`, or `none` (default: the config's `command_timeout`).
    #[serde(default)]
    timeout: Option<String>,
    /// Environment for the command.
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Environment whose values are secrets (`[REDACTED]` in output, the
    /// report and the audit log).
    #[serde(default)]
    secret_env: BTreeMap<String, String>,
    /// Working directory on the host.
    #[serde(default)]
    cwd: Option<String>,
    /// Text for the command's stdin (the same for every host).
    #[serde(default)]
    stdin: Option<String>,
    /// Run as another user through sudo.
    #[serde(default)]
    sudo: Option<SudoRequest>,
    /// Hosts worked on at once (default: `max_parallel`).
    #[serde(default)]
    pub parallel: Option<u32>,
    /// Request a pseudo-terminal (`--pty`).
    #[serde(default)]
    pty: bool,
    /// Cap on each of stdout and stderr per host: bytes, or a size such as
    /// `"512K"` (default 16M).
    #[serde(default)]
    max_output: Option<Size>,
}

/// `script` of a request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptRequest {
    /// A local script file (relative to remex's working directory).
    #[serde(default)]
    path: Option<PathBuf>,
    /// Or the script's text.
    #[serde(default)]
    body: Option<String>,
    /// With `body`: its name, for messages and the audit log.
    #[serde(default)]
    name: Option<String>,
    /// Its arguments, each arriving as one argument.
    #[serde(default)]
    args: Vec<String>,
    /// The interpreter (default: the `#!` line, else `/bin/sh`).
    #[serde(default)]
    interpreter: Option<String>,
}

/// `sudo` of a request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SudoRequest {
    /// The user to run as (default `root`).
    #[serde(default)]
    user: Option<String>,
    /// The sudo password, when the host asks for one (sent on stdin only).
    #[serde(default)]
    password: Option<String>,
}

/// `max_output`: a number of bytes or a size string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Size {
    /// Bytes.
    Bytes(u64),
    /// `512K`, `16M`.
    Text(String),
}

impl RunRequest {
    /// Reads a request from `path`, or from stdin for `-`.
    pub(crate) fn read(path: &Path) -> anyhow::Result<RunRequest> {
        let (bytes, source) = if path.as_os_str() == "-" {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| Usage(format!("--request -: reading stdin: {e}")))?;
            (bytes, "--request -".to_owned())
        } else {
            let bytes = std::fs::read(path)
                .map_err(|e| Usage(format!("--request {}: {e}", path.display())))?;
            (bytes, format!("--request {}", path.display()))
        };
        Self::parse(&bytes).map_err(|e| Usage(format!("{source}: {e}")).into())
    }

    /// Parses a request, naming the field that does not fit.
    fn parse(bytes: &[u8]) -> Result<RunRequest, String> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let request: RunRequest = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                e.inner().to_string()
            } else {
                format!("field `{path}`: {}", e.inner())
            }
        })?;
        de.end().map_err(|e| e.to_string())?;
        Ok(request)
    }

    /// The [`Exec`] the request asks for.
    pub(crate) fn exec(&self) -> anyhow::Result<Exec> {
        let usage = |field: &str, why: String| Usage(format!("--request: field `{field}`: {why}"));
        let mut exec = match (&self.command, &self.raw, &self.script) {
            (Some(argv), None, None) => Exec::argv(argv.clone()),
            (None, Some(raw), None) => Exec::raw(raw.clone()),
            (None, None, Some(script)) => Exec::script(script.load()?, script.args.clone()),
            (None, None, None) => {
                return Err(usage(
                    "command",
                    "say what to run: `command` (words), `raw` (a shell line) or `script`".into(),
                )
                .into());
            }
            _ => {
                return Err(usage(
                    "command",
                    "give only one of `command`, `raw` and `script`".into(),
                )
                .into());
            }
        };
        exec.env = self.env.clone().into_iter().collect();
        exec.secret_env = self.secret_env.clone().into_iter().collect();
        exec.cwd = self.cwd.clone();
        exec.pty = self.pty;
        if let Some(timeout) = &self.timeout {
            exec.timeout =
                Some(remex::config::parse_timeout(timeout).map_err(|e| usage("timeout", e))?);
        }
        if let Some(size) = &self.max_output {
            exec.max_output = match size {
                Size::Bytes(n) => usize::try_from(*n).unwrap_or(usize::MAX),
                Size::Text(text) => {
                    super::args::parse_size(text).map_err(|e| usage("max_output", e))?
                }
            };
        }
        if let Some(stdin) = &self.stdin {
            exec.stdin = Some(Arc::new(stdin.clone().into_bytes()));
        }
        if let Some(sudo) = &self.sudo {
            exec.sudo = Some(Sudo {
                user: sudo.user.clone(),
                password: sudo.password.clone().map(Arc::new),
            });
        }
        if self.parallel == Some(0) {
            return Err(usage("parallel", "parallel must be at least 1".into()).into());
        }
        Ok(exec)
    }
}

impl ScriptRequest {
    /// The script: the local file `path`, or `body`.
    fn load(&self) -> anyhow::Result<Script> {
        let script = match (&self.path, &self.body) {
            (Some(path), None) => Script::load(path).map_err(|e| {
                Usage(format!(
                    "--request: field `script.path`: cannot read the script {}: {e}",
                    path.display()
                ))
            })?,
            (None, Some(body)) => Script::from_bytes(
                self.name.clone().unwrap_or_else(|| "script".to_owned()),
                body.clone().into_bytes(),
            ),
            _ => {
                return Err(Usage(
                    "--request: field `script`: give one of `path` (a local file) and `body` (its text)"
                        .to_owned(),
                )
                .into());
            }
        };
        Ok(match &self.interpreter {
            Some(interpreter) => script.with_interpreter(interpreter.clone()),
            None => script,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_becomes_an_exec() {
        let request = RunRequest::parse(
            br#"{"targets":"web","command":["printf","%s\n","$(id)"],"timeout":"none",
                "env":{"A":"b"},"max_output":"1K","parallel":2}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let exec = request.exec().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            exec.command,
            remex::exec::Command::Argv(vec!["printf".into(), "%s\n".into(), "$(id)".into()])
        );
        assert_eq!(exec.timeout, Some(std::time::Duration::MAX));
        assert_eq!(exec.env, [("A".to_owned(), "b".to_owned())]);
        assert_eq!(exec.max_output, 1024);
        assert_eq!(request.parallel, Some(2));
    }

    #[test]
    fn errors_name_the_field() {
        let err = |json: &str| match RunRequest::parse(json.as_bytes()) {
            Ok(request) => request
                .exec()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default(),
            Err(e) => e,
        };
        assert!(err(r#"{"targets":"a","command":["x",1]}"#).contains("`command[1]`"));
        assert!(err(r#"{"targets":"a","comand":["x"]}"#).contains("unknown field `comand`"));
        assert!(err(r#"{"command":["x"]}"#).contains("missing field `targets`"));
        assert!(err(r#"{"targets":"a","command":["x"],"raw":"y"}"#).contains("only one of"));
        assert!(err(r#"{"targets":"a","command":["x"],"timeout":"0"}"#).contains("`timeout`"));
        assert!(err(r#"{"targets":"a","command":["x"]} {}"#).contains("trailing"));
    }
}
