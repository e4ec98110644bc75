//! [`Exec`]: a command and how to run it, built like
//! `std::process::Command` (or from a [`super::RunRequest`]), and the
//! command line it becomes on the remote side (see the module docs of
//! [`crate::ops::exec`]).

use std::sync::Arc;

use super::script::{self, Script};
use super::sudo::Sudo;
use super::timeout::Timeout;
use crate::quote;
use crate::run::RequestError;

/// The environment variable that tags every process of a remex command.
pub const TAG_VAR: &str = "REMEX_RUN_ID";

/// Default cap on each of stdout and stderr: 16 MiB.
pub const DEFAULT_MAX_OUTPUT: usize = 16 * 1024 * 1024;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Words quoted for the remote shell, so each arrives as one argument.
    Argv(Vec<String>),
    /// One shell string passed as is (`--raw`).
    Raw(String),
    /// A local script, copied to the host, run with these arguments, and
    /// removed (see the `script` module docs).
    Script {
        /// The script.
        script: Script,
        /// Its arguments, each arriving as one argv entry.
        args: Vec<String>,
    },
}

/// A command and how to run it, built like `std::process::Command`.
///
/// ```
/// use remex::Exec;
/// use std::time::Duration;
/// let exec = Exec::argv(["systemctl", "restart", "nginx"])
///     .env("LC_ALL", "C")
///     .timeout(Duration::from_secs(30));
/// ```
#[derive(Clone)]
pub struct Exec {
    /// The command.
    pub command: Command,
    /// Extra environment, set by `env` on the remote side (not `SendEnv`:
    /// sshd's `AcceptEnv` cannot refuse it).
    pub env: Vec<(String, String)>,
    /// Environment like `env` whose values are secrets (`--secret-env`):
    /// set the same way, and replaced by `[REDACTED]` in audit records,
    /// output and error messages.
    pub secret_env: Vec<(String, String)>,
    /// Working directory; the command fails with status 126 if `cd` fails.
    pub cwd: Option<String>,
    /// Bytes fed to the command's stdin, the same for every host; `None`
    /// closes stdin at once.
    pub stdin: Option<Arc<Vec<u8>>>,
    /// Ask for a pseudo-terminal (`ssh -t`). stdout and stderr are merged.
    pub pty: bool,
    /// How long the command may run (default: the config's
    /// `command_timeout`).
    pub timeout: Timeout,
    /// Cap on each of stdout and stderr, in bytes ([`DEFAULT_MAX_OUTPUT`]).
    pub max_output: usize,
    /// Run as another user through sudo (`--sudo`, `--sudo-user`).
    pub sudo: Option<Sudo>,
}

impl std::fmt::Debug for Exec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exec")
            .field("command", &self.command)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field(
                "secret_env",
                &self.secret_env.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("cwd", &self.cwd)
            .field("pty", &self.pty)
            .field("timeout", &self.timeout)
            .field("sudo", &self.sudo)
            .finish_non_exhaustive()
    }
}

impl Exec {
    fn new(command: Command) -> Self {
        Exec {
            command,
            env: Vec::new(),
            secret_env: Vec::new(),
            cwd: None,
            stdin: None,
            pty: false,
            timeout: Timeout::Default,
            max_output: DEFAULT_MAX_OUTPUT,
            sudo: None,
        }
    }

    /// Runs a local script with `args` (see [`Script`]).
    pub fn script<I, S>(script: Script, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Exec::new(Command::Script {
            script,
            args: args.into_iter().map(Into::into).collect(),
        })
    }

    /// Runs as another user through sudo.
    pub fn sudo(mut self, sudo: Sudo) -> Self {
        self.sudo = Some(sudo);
        self
    }

    /// Runs `argv`: each word arrives as one argument, never re-split or
    /// expanded.
    pub fn argv<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Exec::new(Command::Argv(argv.into_iter().map(Into::into).collect()))
    }

    /// Runs one shell string as is: the caller is responsible for quoting.
    pub fn raw(script: impl Into<String>) -> Self {
        Exec::new(Command::Raw(script.into()))
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Adds an environment variable whose value is a secret: it is set like
    /// [`Exec::env`] and redacted from audit records and output.
    pub fn secret_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.secret_env.push((key.into(), value.into()));
        self
    }

    /// The literal secrets of this request, for redaction: `secret_env`
    /// values and the sudo password.
    pub fn secrets(&self) -> Vec<String> {
        let env = self.secret_env.iter().map(|(_, value)| value.clone());
        let sudo = self
            .sudo
            .as_ref()
            .and_then(|sudo| sudo.password.as_deref().cloned());
        env.chain(sudo).collect()
    }

    /// Sets the working directory.
    pub fn cwd(mut self, dir: impl Into<String>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Feeds `bytes` to stdin.
    pub fn stdin(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = Some(Arc::new(bytes));
        self
    }

    /// Sets the timeout: a [`std::time::Duration`], or a [`Timeout`]
    /// (`Timeout::Never`).
    pub fn timeout(mut self, timeout: impl Into<Timeout>) -> Self {
        self.timeout = timeout.into();
        self
    }

    /// Requests a pseudo-terminal.
    pub fn pty(mut self, pty: bool) -> Self {
        self.pty = pty;
        self
    }

    /// Sets the output cap.
    pub fn max_output(mut self, bytes: usize) -> Self {
        self.max_output = bytes;
        self
    }

    /// Checks what can be checked before contacting any host; an error
    /// names the request field at fault (`command`, `raw`, `env`,
    /// `secret_env`).
    ///
    /// # Errors
    ///
    /// An empty command, or an environment variable name a shell cannot
    /// set.
    pub fn validate(&self) -> Result<(), RequestError> {
        if let Command::Argv(argv) = &self.command
            && argv.is_empty()
        {
            return Err(RequestError::field("command", "the command is empty"));
        }
        if let Command::Raw(raw) = &self.command
            && raw.trim().is_empty()
        {
            return Err(RequestError::field("raw", "the raw command is empty"));
        }
        let env = self.env.iter().map(|(key, _)| ("env", key));
        let secret_env = self.secret_env.iter().map(|(key, _)| ("secret_env", key));
        for (field, key) in env.chain(secret_env) {
            let mut chars = key.chars();
            let valid = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(RequestError::field(
                    field,
                    format!(
                        "invalid environment variable name `{key}`: use letters, digits and `_`, not starting with a digit"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The string sent in the SSH exec request (see the module docs), for a
    /// login shell; under sudo it is wrapped by [`Sudo::wrap`].
    pub fn remote_command(&self, tag: &str) -> String {
        self.remote_command_with(&self.command, tag, "\"${SHELL:-/bin/sh}\"")
    }

    /// [`Exec::remote_command`] for `command`, running raw strings in `shell`.
    pub(crate) fn remote_command_with(&self, command: &Command, tag: &str, shell: &str) -> String {
        // `TAG=… 'K=v'…`: each assignment one quoted word.
        let mut assignments = format!("{TAG_VAR}={tag}");
        for (key, value) in self.env.iter().chain(&self.secret_env) {
            assignments.push(' ');
            assignments.push_str(&quote::quote(&format!("{key}={value}")));
        }
        let cd = self
            .cwd
            .as_ref()
            .map(|dir| format!("cd -- {} || exit 126\n", quote::quote(dir)))
            .unwrap_or_default();
        match command {
            // One simple command: the login shell exports, then runs it. The
            // shell itself is left untagged, but it has nothing to do after
            // the command, so killing the command ends it; and a command
            // costs one shell start, not two.
            Command::Argv(argv) => format!("export {assignments}\n{cd}{}", quote::join(argv)),
            // A script may go on after any one of its commands is killed, so
            // the shell running it is started with the tag too.
            Command::Raw(raw) => format!(
                "exec env {assignments} {shell} -c {}",
                quote::quote(&format!("{cd}{raw}"))
            ),
            // A script is staged first and then run as an argv; this is
            // what runs it once staged (`<dir>` is the staging directory).
            Command::Script { script, args } => format!(
                "export {assignments}\n{cd}{}",
                quote::join(&script::run_argv(script, "<dir>", args))
            ),
        }
    }
}

/// What one command did on one host.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_command_quotes_everything_once() {
        let exec = Exec::argv(["printf", "%s\\n", "a b", "$(id)"])
            .env("GREETING", "hello world")
            .cwd("/tmp/my dir");
        assert_eq!(
            exec.remote_command("abc"),
            "export REMEX_RUN_ID=abc 'GREETING=hello world'\n\
             cd -- '/tmp/my dir' || exit 126\n\
             printf '%s\\n' 'a b' '$(id)'"
        );
        let exec = Exec::raw("echo $HOME | wc -c").env("A", "1").cwd("/tmp");
        assert_eq!(
            exec.remote_command("abc"),
            "exec env REMEX_RUN_ID=abc 'A=1' \"${SHELL:-/bin/sh}\" -c 'cd -- /tmp || exit 126\n\
             echo $HOME | wc -c'"
        );
    }

    #[test]
    fn remote_command_runs_in_a_real_shell() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let exec = Exec::argv([
            "sh",
            "-c",
            "printf '%s|%s|%s' \"$GREETING\" \"$1\" \"$(pwd)\"",
            "x",
            "$HOME;`id`",
        ])
        .env("GREETING", "it's 'quoted'")
        .cwd(dir.path().to_string_lossy());
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(exec.remote_command("t1"))
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text,
            format!("it's 'quoted'|$HOME;`id`|{}", dir.path().display())
        );
    }

    #[test]
    fn a_failing_cwd_stops_the_command() {
        let exec = Exec::argv(["echo", "ran"]).cwd("/nonexistent/remex");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(exec.remote_command("t2"))
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.status.code(), Some(126));
        assert!(out.stdout.is_empty());
    }

    #[test]
    fn validation() {
        assert!(Exec::argv(Vec::<String>::new()).validate().is_err());
        assert!(Exec::raw("  ").validate().is_err());
        assert!(Exec::argv(["true"]).env("1BAD", "x").validate().is_err());
        assert!(Exec::argv(["true"]).env("A-B", "x").validate().is_err());
        assert!(Exec::argv(["true"]).env("_OK1", "x").validate().is_ok());
        let field = |exec: Exec| exec.validate().err().and_then(|e| e.field);
        assert_eq!(
            field(Exec::argv(["true"]).secret_env("A B", "x")).as_deref(),
            Some("secret_env")
        );
        assert_eq!(field(Exec::raw(" ")).as_deref(), Some("raw"));
    }
}
