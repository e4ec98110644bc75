//! [`Exec`]: a command and how to run it, built like
//! `std::process::Command` (or from a [`super::RunRequest`]), and the
//! command line it becomes on the remote side (see the module docs of
//! [`crate::ops::exec`]).

use std::sync::Arc;

use super::guard::ActionRun;
use super::limits;
use super::reaper::TAG_VAR;
use super::script::{self, Script};
use super::sudo::{Sudo, SudoMode};
use super::timeout::Timeout;
use crate::quote;
use crate::run::RequestError;

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
    /// The named action this run is, when it is one: its name and params
    /// for the records (op `action`), its secrets, and the path checks
    /// the command line starts with (see `guard.rs`).
    pub action: Option<Arc<ActionRun>>,
}

impl std::fmt::Debug for Exec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // An action's secret params may sit in its words.
        let command = match self.action.as_deref().filter(|a| a.has_secrets()) {
            Some(action) => action.hide(&format!("{:?}", self.command)),
            None => format!("{:?}", self.command),
        };
        f.debug_struct("Exec")
            .field("command", &format_args!("{command}"))
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field(
                "secret_env",
                &self.secret_env.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("cwd", &self.cwd)
            .field("pty", &self.pty)
            .field("timeout", &self.timeout)
            .field("sudo", &self.sudo)
            .field("action", &self.action)
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
            action: None,
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
    /// values, the sudo password, and an action's secret params.
    pub fn secrets(&self) -> Vec<String> {
        let env = self.secret_env.iter().map(|(_, value)| value.clone());
        let sudo = self
            .sudo
            .as_ref()
            .and_then(|sudo| sudo.password.as_deref().cloned());
        let action = self.action.iter().flat_map(|a| a.secrets.iter().cloned());
        env.chain(sudo).chain(action).collect()
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

    /// Checks what can be checked before contacting any host, against
    /// what sshd and the remote side accept (see the `limits` module):
    /// an error names the request field at fault (`command[2]`, `raw`,
    /// `env`, `env.NAME`, `secret_env`, `cwd`, `script.args[0]`,
    /// `script.interpreter`, `sudo.user`, `sudo.password`).
    ///
    /// # Errors
    ///
    /// An empty command; a NUL byte in anything that reaches the remote
    /// command line; an environment variable name a shell cannot set, or
    /// one of remex's own (`REMEX_*`); a sudo password with a NUL or a
    /// newline; a command line longer than [`limits::MAX_COMMAND_LINE`]
    /// once quoted.
    pub fn validate(&self) -> Result<(), RequestError> {
        match &self.command {
            Command::Argv(argv) if argv.is_empty() => {
                return Err(RequestError::field("command", "the command is empty"));
            }
            Command::Argv(argv) => {
                for (at, word) in argv.iter().enumerate() {
                    limits::no_nul(format!("command[{at}]"), "the word", word)?;
                }
            }
            Command::Raw(raw) if raw.trim().is_empty() => {
                return Err(RequestError::field("raw", "the raw command is empty"));
            }
            Command::Raw(raw) => limits::no_nul("raw", "the command", raw)?,
            Command::Script { script, args } => {
                for (at, word) in args.iter().enumerate() {
                    limits::no_nul(format!("script.args[{at}]"), "the argument", word)?;
                }
                for word in &script.interpreter {
                    limits::no_nul(
                        "script.interpreter",
                        "the interpreter (`interpreter`, or the script's `#!` line)",
                        word,
                    )?;
                }
            }
        }
        let env = self.env.iter().map(|pair| ("env", pair));
        let secret_env = self.secret_env.iter().map(|pair| ("secret_env", pair));
        for (field, (key, value)) in env.chain(secret_env) {
            limits::env_name(field, key)?;
            limits::no_nul(format!("{field}.{key}"), "the value", value)?;
        }
        if let Some(cwd) = &self.cwd {
            limits::no_nul("cwd", "the directory", cwd)?;
        }
        if let Some(sudo) = &self.sudo {
            if let Some(user) = &sudo.user {
                limits::no_nul("sudo.user", "the user name", user)?;
            }
            if sudo
                .password
                .as_deref()
                .is_some_and(|password| password.contains(['\0', '\n']))
            {
                return Err(RequestError::field(
                    "sudo.password",
                    "the sudo password holds a NUL byte or a newline, which sudo cannot read",
                ));
            }
        }
        limits::line_fits(&self.longest_line(), self.largest_field())
    }

    /// The longest command line this request can become on a host: with a
    /// tag, the login shell, a staging directory of 256 bytes, and the
    /// sudo wrapping that quotes it once more.
    fn longest_line(&self) -> String {
        let tag = "0".repeat(super::reaper::run_tag("", "").len());
        let line = self.remote_command_with(&self.command, &tag, LOGIN_SHELL);
        let line = match &self.command {
            Command::Script { .. } => line.replace(SCRIPT_DIR, &"d".repeat(256)),
            _ => line,
        };
        match &self.sudo {
            Some(sudo) => as_sudo(sudo, SudoMode::Password, &line),
            None => line,
        }
    }

    /// The request field that adds the most to the command line, for an
    /// error that it is too long.
    fn largest_field(&self) -> &'static str {
        let quoted = |word: &String| quote::quote(word).len() + 1;
        let assignments = |env: &[(String, String)]| {
            env.iter()
                .map(|(key, value)| quote::quote(&format!("{key}={value}")).len() + 1)
                .sum::<usize>()
        };
        let command = match &self.command {
            Command::Argv(argv) => ("command", argv.iter().map(quoted).sum()),
            Command::Raw(raw) => ("raw", raw.len()),
            Command::Script { args, .. } => ("script.args", args.iter().map(quoted).sum()),
        };
        let sudo_user = self.sudo.as_ref().and_then(|sudo| sudo.user.as_ref());
        [
            command,
            ("env", assignments(&self.env)),
            ("secret_env", assignments(&self.secret_env)),
            ("cwd", self.cwd.as_ref().map_or(0, quoted)),
            ("sudo.user", sudo_user.map_or(0, quoted)),
        ]
        .into_iter()
        .max_by_key(|(_, size)| *size)
        .map_or("command", |(field, _)| field)
    }

    /// The string sent in the SSH exec request (see the module docs), for a
    /// login shell; under sudo it is wrapped by [`Sudo::wrap`].
    pub fn remote_command(&self, tag: &str) -> String {
        self.remote_command_with(&self.command, tag, LOGIN_SHELL)
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
        // An action's path checks come first: nothing runs when one fails.
        let checks = self
            .action
            .as_ref()
            .map(|action| action.check_lines())
            .unwrap_or_default();
        let line = match command {
            // The login shell exports, then runs the command — and stays
            // until it ends (the status line after it keeps bash and
            // others from `exec`ing the last command): a session leader
            // whose command line holds the tag, which the reaper finds
            // whatever the command does to its own environment.
            Command::Argv(argv) => format!(
                "export {assignments}\n{cd}{}\n{STATUS_LINE}",
                quote::join(argv)
            ),
            // A script may go on after any one of its commands is killed, so
            // the shell running it is started with the tag too.
            Command::Raw(raw) => format!(
                "env {assignments} {shell} -c {}\n{STATUS_LINE}",
                quote::quote(&format!("{cd}{raw}"))
            ),
            // A script is staged first and then run as an argv; this is
            // what runs it once staged (`<dir>` is the staging directory).
            Command::Script { script, args } => format!(
                "export {assignments}\n{cd}{}\n{STATUS_LINE}",
                quote::join(&script::run_argv(script, SCRIPT_DIR, args))
            ),
        };
        format!("{checks}{line}")
    }
}

/// `line` run as the sudo target user: wrapped by [`Sudo::wrap`], with the
/// status line after it, so that the login shell stays as the session's
/// anchor there too.
pub(crate) fn as_sudo(sudo: &Sudo, mode: SudoMode, line: &str) -> String {
    format!("{}\n{STATUS_LINE}", sudo.wrap(mode, line))
}

/// The last line of every remote command line: the login shell waits for
/// the command instead of being replaced by it, and passes its status on
/// — re-raising, on itself, a signal that ended the command (those that
/// end a process without a core dump: HUP, INT, KILL, USR1, USR2, PIPE,
/// ALRM, TERM), so that a killed command is reported as killed. (A shell
/// cannot tell `exit 130` from death by `INT`: both are reported as the
/// signal.)
pub(crate) const STATUS_LINE: &str =
    "s=$?; case $s in 129|130|137|138|140|141|142|143) kill -$((s - 128)) $$;; esac; exit $s";

/// How a raw string's shell is named on the command line: the login
/// shell.
pub(crate) const LOGIN_SHELL: &str = "\"${SHELL:-/bin/sh}\"";

/// Where a staged script's directory goes in [`Exec::remote_command`]
/// (the directory is only known once the script is staged).
const SCRIPT_DIR: &str = "<dir>";

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
            format!(
                "export REMEX_RUN_ID=abc 'GREETING=hello world'\n\
                 cd -- '/tmp/my dir' || exit 126\n\
                 printf '%s\\n' 'a b' '$(id)'\n{STATUS_LINE}"
            )
        );
        let exec = Exec::raw("echo $HOME | wc -c").env("A", "1").cwd("/tmp");
        assert_eq!(
            exec.remote_command("abc"),
            format!(
                "env REMEX_RUN_ID=abc 'A=1' \"${{SHELL:-/bin/sh}}\" -c 'cd -- /tmp || exit 126\n\
                 echo $HOME | wc -c'\n{STATUS_LINE}"
            )
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

    /// The login shell stays while the command runs, passes its exit
    /// status on, and dies of the signal that killed the command — in
    /// dash and in bash (which would otherwise `exec` the last command).
    #[test]
    fn the_login_shell_stays_and_passes_the_outcome_on() {
        use std::os::unix::process::ExitStatusExt as _;
        for shell in ["sh", "bash"] {
            let outcome = |exec: Exec| {
                std::process::Command::new(shell)
                    .arg("-c")
                    .arg(exec.remote_command("t3"))
                    .output()
                    .unwrap_or_else(|e| panic!("{shell}: {e}"))
            };
            let out = outcome(Exec::argv(["sh", "-c", "echo $$ $PPID; exit 3"]));
            assert_eq!(out.status.code(), Some(3), "{shell}");
            let pids = String::from_utf8_lossy(&out.stdout).into_owned();
            let (own, parent) = pids.trim().split_once(' ').unwrap_or_default();
            assert_ne!(own, parent, "{shell}: the command replaced the login shell");
            for (signal, number) in [("TERM", 15), ("KILL", 9), ("INT", 2)] {
                let out = outcome(Exec::argv(["sh", "-c", &format!("kill -{signal} $$")]));
                assert_eq!(out.status.signal(), Some(number), "{shell} {signal}");
            }
            let out = outcome(Exec::raw("kill -TERM $$"));
            assert_eq!(out.status.signal(), Some(15), "{shell} raw");
            let out = outcome(Exec::raw("exit 4"));
            assert_eq!(out.status.code(), Some(4), "{shell} raw");
        }
    }
}
