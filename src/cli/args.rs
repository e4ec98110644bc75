//! The command line, as clap sees it. Parsing only: no I/O here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run commands on a fleet of Linux hosts over SSH: fast, safe by default,
/// machine-readable.
#[derive(Debug, Parser)]
#[command(
    name = "remex",
    version,
    after_help = "\
Examples:
  remex lab up --hosts 4                        start 4 local sshd hosts in ./lab
  remex --config lab/config.yml exec all -- uname -a
  remex exec 'web,!vm03' --timeout 30s -- systemctl is-active nginx
  remex --json exec all -- df -h /             one JSON document on stdout
  remex hosts check all                         reachability, host keys, auth
  remex upload all ./app.conf /etc/app/         atomic, verified copy to every host
  remex download all /var/log/syslog ./logs     into ./logs/<host>/syslog
  remex audit verify                            check the audit log's hash chain

Config: --config, else $REMEX_CONFIG, else ./configs/config.yml, else ~/.config/remex/config.yml.
Every action on a host is recorded first in the audit log (audit: in the config;
default ~/.local/state/remex/audit.jsonl). If it cannot be written, remex contacts no host.

Exit status: 0 every host succeeded, 1 some host failed, 2 usage, config or audit
log error (no host contacted), 130 interrupted. With --exit-zero: 0 whenever the
report was printed. With --json, an error that stops remex (exit 2) is printed on
stdout too, as {\"version\":2,\"operation\":…,\"error\":{\"kind\",\"message\"}}."
)]
pub struct Cli {
    /// Config file (default: $REMEX_CONFIG, ./configs/config.yml, ~/.config/remex/config.yml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print one JSON document on stdout instead of human output (also for
    /// an error that stops remex: `{"version","operation","error"}`).
    #[arg(long, global = true)]
    pub json: bool,
    /// Exit 0 whenever the command ran and printed its report, even when
    /// hosts failed (for callers that throw away the output of a failed
    /// command); 2 still means nothing ran (usage, config, audit log).
    #[arg(long, global = true)]
    pub exit_zero: bool,
    /// More log output on stderr (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Who is driving remex (a workflow or ticket name), recorded as
    /// `workflow` in every audit record next to the OS user.
    #[arg(long, global = true, env = "REMEX_ACTOR", value_name = "NAME")]
    pub actor: Option<String>,
    /// Log in as USER on every host (instead of each host's `user` or
    /// `remote_execution.default_user`).
    #[arg(long, short = 'l', global = true, value_name = "USER")]
    pub user: Option<String>,
    /// How long to wait for a host's TCP connect and SSH handshake
    /// (instead of `remote_execution.connect_timeout`), e.g. 3s.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_positive_duration)]
    pub connect_timeout: Option<Duration>,
    /// Reach every host through these jump hosts (instead of each host's
    /// `jump`), outermost first, comma-separated: VM names or
    /// [user@]host[:port], as `ssh -J`. `--jump none`: dial directly.
    #[arg(long, short = 'J', global = true, value_name = "HOPS")]
    pub jump: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The output options of `exec`, `script` and `action run`, for the
    /// other commands `None`.
    fn run_args(&self) -> Option<&ShowArgs> {
        match &self.command {
            Command::Exec(args) => Some(&args.run.show),
            Command::Script(args) => Some(&args.run.show),
            Command::Action(ActionCommand::Run(args)) => Some(&args.show),
            _ => None,
        }
    }

    /// Whether the command asks for `--ndjson` (exec, script, action run).
    pub fn ndjson(&self) -> bool {
        self.run_args().is_some_and(ShowArgs::wants_ndjson)
    }

    /// Whether the command asks for JSON output of any kind (`--json`,
    /// `--ndjson`, `--output json|ndjson`).
    pub fn machine_readable(&self) -> bool {
        self.json
            || self.ndjson()
            || self
                .run_args()
                .is_some_and(|run| run.output == Some(OutputFormat::Json))
    }

    /// The conflicts clap does not see: `--json` given before the
    /// subcommand with `--stream` or `--ndjson` after it (`--stream`
    /// would be silently ignored).
    pub fn check(&self) -> Result<(), clap::Error> {
        let Some(run) = self.run_args().filter(|_| self.json) else {
            return Ok(());
        };
        let other = if run.stream {
            "--stream"
        } else if run.wants_ndjson() {
            "--ndjson"
        } else if run.quiet {
            "--quiet"
        } else if run.output.is_some_and(|o| o != OutputFormat::Json) {
            "--output"
        } else {
            return Ok(());
        };
        let mut command = <Cli as clap::CommandFactory>::command();
        Err(command.error(
            clap::error::ErrorKind::ArgumentConflict,
            format!("the argument '--json' cannot be used with '{other}' (--stream is for human output; --ndjson prints one JSON line per host)"),
        ))
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command on the selected hosts.
    #[command(
        override_usage = "remex exec [OPTIONS] <TARGETS> -- <COMMAND>...
       remex exec [OPTIONS] <TARGETS> --raw <STRING>
       remex exec [OPTIONS] --request <FILE|->",
        after_help = "\
TARGETS is a comma-separated selector: host names (vm01), groups (web), `all`,
globs (vm0*), and exclusions (all,!vm03). Quote it in your shell when it holds `!` or `*`.

The words after `--` arrive on the remote side exactly as given: they are quoted
for the remote shell, never re-split or expanded. Use --raw for a shell string.

Examples:
  remex exec all -- uname -a
  remex exec 'web,!vm03' --parallel 16 -- systemctl restart nginx
  remex exec db --env PGUSER=app --cwd /srv/app -- ./migrate --check
  remex exec all --raw 'df -h / | tail -n 1'
  remex exec all --stdin payload.json -- tee /tmp/payload.json
  remex exec all --timeout none -- ./long-migration
  remex --json exec --request request.json       the whole request as JSON (see README)
  remex exec all --ndjson -- uptime               one JSON line per host as it finishes"
    )]
    Exec(ExecArgs),
    /// Copy a local script to the selected hosts, run it, and remove it.
    #[command(after_help = "\
The script runs from a private temporary directory (mktemp -d, mode 0700) that
is removed afterwards: after success, failure, timeout and Ctrl-C. Leftovers of a
lost connection (remex-script.* in $TMPDIR or /tmp with a .remex-script marker,
older than a day) are removed by the next run on that host.

The interpreter is --interpreter, else the script's #! line, else /bin/sh. The
arguments after `--` arrive exactly as given, one argv entry each.

Examples:
  remex script all ./collect-facts.sh
  remex script web ./deploy.sh --timeout 10m -- --release 2024.11 'notes with spaces'
  remex script db ./report.py --interpreter /usr/bin/python3 --sudo-user postgres
  remex --json script all ./check.sh --sudo --sudo-password-env SUDO_PASS")]
    Script(ScriptArgs),
    /// Copy local files (or, with -r, directories) to the selected hosts.
    #[command(
        override_usage = "remex upload [OPTIONS] <TARGETS> <LOCAL>... <REMOTE>",
        after_help = "\
The last path is REMOTE. Ending in `/`, naming an existing directory, or with
several LOCAL paths, it is a directory to copy into (as with cp); otherwise it is
the new file's name. A relative REMOTE (or ~/...) starts in the login directory.

Every file is written to .NAME.TAG.remex-part next to its destination, flushed
(fsync), checked by SHA-256 against the host's own copy, and renamed over the
destination in one step: the destination is never half written. On failure the
temp file is removed (kept with --resume, which continues from it next time).

Examples:
  remex upload all ./app.conf /etc/app/
  remex upload web ./release.tar.gz /srv/releases/ --mkdir --mode 0640
  remex upload 'db,!db03' -r ./migrations /srv/app/ --skip-identical
  remex --json upload all ./big.iso /data/ --resume

Exit status: 0 every host succeeded, 1 some host failed, 2 usage or config error,
130 interrupted."
    )]
    Upload(UploadArgs),
    /// Copy remote files (or, with -r, directories) from the selected hosts
    /// into LOCAL_DIR/<host>/.
    #[command(
        override_usage = "remex download [OPTIONS] <TARGETS> <REMOTE>... <LOCAL_DIR>",
        after_help = "\
The last path is LOCAL_DIR. Each host's files land in LOCAL_DIR/<host>/<name>, so
hosts never overwrite each other; --flat writes to LOCAL_DIR/<name> and needs
exactly one host. Files are written to a temp file, flushed, checked by SHA-256
against the host's copy, and renamed into place.

Nothing is written outside LOCAL_DIR: remote names such as `..`, symlinks whose
target is absolute or climbs out with `..`, and writes through local symlinks are
refused per entry. Symlinks inside the tree are copied as symlinks.

Examples:
  remex download all /var/log/syslog ./logs
  remex download web -r /etc/nginx ./configs
  remex download vm01 --flat /etc/os-release .

Exit status: 0 every host succeeded, 1 some host failed, 2 usage or config error,
130 interrupted."
    )]
    Download(DownloadArgs),
    /// Named actions of the config: list them, run one with typed params.
    #[command(subcommand)]
    Action(ActionCommand),
    /// Inspect the inventory: list hosts, check them, pin or forget their host keys.
    #[command(subcommand)]
    Hosts(HostsCommand),
    /// Client keys: generate, list, deploy, rotate, revoke, prune.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// A local lab of real OpenSSH sshd hosts on loopback, for trying remex.
    #[command(subcommand)]
    Lab(LabCommand),
    /// Read and check the audit log: verify its hash chain, tail it, search it.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The Remote Execution Service: remex over an HTTP JSON API, for n8n and other automation.
    #[command(after_help = "\
Listens on service.listen (default 127.0.0.1:7878) until SIGTERM or Ctrl-C, then
stops accepting, cancels (or, with service.on_shutdown: finish, waits for) the jobs
under way, writes every audit record, and exits 0. Jobs, tokens and output are kept
in service.store (SQLite; default ~/.local/state/remex/service.db).

Every request needs a token: make one with `remex tokens create`.

Examples:
  remex tokens create n8n --scope exec,files:write --targets web
  remex serve
  curl -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \\
       -d '{\"targets\":\"web\",\"command\":[\"uptime\"]}' 'http://127.0.0.1:7878/v1/runs?wait=30s'
  remex serve --print-openapi > docs/openapi.json")]
    Serve(ServeArgs),
    /// Tokens for `remex serve`: create (shown once), list, revoke.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Print a shell completion script.
    #[command(after_help = "\
Examples:
  remex completions bash > /etc/bash_completion.d/remex
  remex completions zsh > \"${fpath[1]}/_remex\"
  remex completions fish > ~/.config/fish/completions/remex.fish")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print remex's man page (roff), or write it and one per command to a directory.
    #[command(after_help = "\
Examples:
  remex man | man -l -
  remex man --dir /usr/local/share/man/man1      remex.1, remex-exec.1, …")]
    Man {
        /// Write remex.1 and a page per command (remex-exec.1, …) into DIR.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// `remex action …`.
#[derive(Debug, Subcommand)]
pub enum ActionCommand {
    /// List the config's actions: name, description, targets, params.
    #[command(after_help = "\
With --json, each action carries `params_schema`: the JSON Schema of its params
(what `action run` and the service accept), for forms and AI-agent tools.

Examples:
  remex action list
  remex --json action list | jq '.actions[].params_schema'")]
    List,
    /// Run a named action of the config with typed params.
    #[command(after_help = "\
An action is defined in the config's `actions:` section: its command (or script),
its typed params, the hosts it may run on, its timeout and sudo user. A run gives
only the params (and may narrow the hosts): every value is checked against its
type before any host is contacted, fills one word of the command (never a shell),
and may not start a word with `-` unless the action allows it. A `path` param is
also checked on the host, through symlinks, before the command starts.

The report, --json and the exit status are those of `remex exec`; the audit log
records the action's name and its params (secret ones as [REDACTED]).

Example (config):
  actions:
    restart-unit:
      description: Restart one of the web units
      command: [systemctl, restart, \"{unit}\"]
      params:
        unit: { type: enum, values: [nginx, php-fpm] }
      targets: web
      sudo: root

Examples:
  remex action run restart-unit web --param unit=nginx
  remex action run restart-unit vm01 --param unit=php-fpm --json
  remex action run report web --param dir=/srv/reports/2024 --param days=7

Exit status: 0 every host succeeded, 1 some host failed, 2 usage, config or param
error (nothing ran), 130 interrupted.")]
    Run(ActionRunArgs),
}

/// `remex action run`.
#[derive(Debug, Args)]
pub struct ActionRunArgs {
    /// The action's name (`remex action list` shows them).
    pub name: String,
    /// Which of the action's hosts: names, groups, `all`, globs,
    /// `!exclusions` (default: all of the action's targets). A host outside
    /// the action's targets is refused.
    pub targets: Option<String>,
    /// A param's value (repeatable): NAME=VALUE. An int is decimal digits,
    /// a bool `true` or `false`.
    #[arg(long = "param", short = 'P', value_name = "NAME=VALUE", value_parser = parse_env)]
    pub params: Vec<(String, String)>,
    /// Hosts worked on at once (at most the action's max_parallel).
    #[arg(long, short = 'p', value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub parallel: Option<u32>,
    /// How to print the report.
    #[command(flatten)]
    pub show: ShowArgs,
}

/// `remex exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Which hosts: names, groups, `all`, globs, `!exclusions`, comma-separated.
    #[arg(required_unless_present = "request")]
    pub targets: Option<String>,
    /// The command and its arguments (after `--`).
    #[arg(
        last = true,
        value_name = "COMMAND",
        required_unless_present_any = ["raw", "request"]
    )]
    pub argv: Vec<String>,
    /// One shell string, passed to the remote shell as is (instead of `-- COMMAND`).
    #[arg(long, value_name = "STRING", conflicts_with = "argv")]
    pub raw: Option<String>,
    /// Read the whole request (targets, command or raw or script, env,
    /// timeout, cwd, stdin, sudo, parallel, …) as one JSON object from FILE
    /// or `-` (stdin), with the field names of the service's `POST /v1/runs`;
    /// nothing of it passes through a shell. Output options (--json,
    /// --ndjson, --stream, --exit-zero) still come from the command line.
    #[arg(
        long,
        value_name = "FILE|-",
        conflicts_with_all = [
            "targets", "argv", "raw", "parallel", "timeout", "env", "secret_env",
            "cwd", "stdin", "pty", "max_output", "sudo", "sudo_user", "sudo_password_env",
        ]
    )]
    pub request: Option<PathBuf>,
    /// How to run it.
    #[command(flatten)]
    pub run: RunArgs,
}

/// `remex script`.
#[derive(Debug, Args)]
pub struct ScriptArgs {
    /// Which hosts: names, groups, `all`, globs, `!exclusions`, comma-separated.
    pub targets: String,
    /// The local script to copy to each host, run, and remove.
    #[arg(value_name = "LOCAL_SCRIPT")]
    pub script: PathBuf,
    /// The script's arguments (after `--`), each arriving as one argument.
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
    /// Run the script with this interpreter instead of its `#!` line
    /// (default: the `#!` line, else /bin/sh).
    #[arg(long, value_name = "PATH")]
    pub interpreter: Option<String>,
    /// How to run it.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Options shared by `exec` and `script`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub adhoc: AdHoc,
    /// Hosts worked on at once (default: remote_execution.max_parallel).
    #[arg(long, short = 'p', value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub parallel: Option<u32>,
    /// Stop the command after this long, and its child processes with it
    /// (30s, 5m, 1h; `none`: never; default: remote_execution.command_timeout).
    /// 0 is refused: it would stop the command at once.
    #[arg(long, short = 't', value_name = "DURATION|none", value_parser = remex::exec::Timeout::parse)]
    pub timeout: Option<remex::exec::Timeout>,
    /// Set an environment variable for the command (repeatable); works even
    /// when sshd's AcceptEnv refuses it.
    #[arg(long = "env", short = 'e', value_name = "K=V", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Like --env, for a secret: the value is replaced by [REDACTED] in the
    /// audit log, in remex's output and in its error messages (repeatable).
    /// `--secret-env K` (no `=`) takes the value of $K from remex's own
    /// environment, so it need not appear on a command line.
    #[arg(long = "secret-env", value_name = "K=V|K", value_parser = parse_secret_env)]
    pub secret_env: Vec<(String, String)>,
    /// Working directory on the host; the command fails with status 126 if it does not exist.
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// Feed this file (or `-` for remex's own stdin) to every host's command.
    #[arg(long, value_name = "FILE|-")]
    pub stdin: Option<PathBuf>,
    /// Request a pseudo-terminal (stdout and stderr are merged).
    #[arg(long)]
    pub pty: bool,
    /// Cap on each of stdout and stderr per host (bytes; K, M, G suffixes);
    /// what is cut is flagged `truncated`. Lower it when the caller reads
    /// the report into a small buffer (the report holds every host's output).
    #[arg(long, value_name = "BYTES", default_value = "16M", value_parser = parse_size)]
    pub max_output: usize,
    /// How to print the report.
    #[command(flatten)]
    pub show: ShowArgs,
    /// Run as another user through sudo.
    #[command(flatten)]
    pub sudo: SudoArgs,
}

/// How `exec`, `script` and `action run` print their report.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Print lines as they arrive (prefixed by host) instead of each host's
    /// output when it finishes. Human output only: refused with --json and
    /// --ndjson.
    #[arg(long, conflicts_with_all = ["json", "ndjson"])]
    pub stream: bool,
    /// Print one JSON line per host as it finishes (the object of --json's
    /// `results[]`), then one line with the run's `version`, `operation`,
    /// `run_id` and `summary`.
    #[arg(long, conflicts_with = "json")]
    pub ndjson: bool,
    /// How to print the hosts' output: `lines` (default: `HOST: line`),
    /// `oneline` (one line per host, newlines as `\n`, for grep and sort),
    /// `json` (as --json) or `ndjson` (as --ndjson).
    #[arg(long, short = 'o', value_enum, value_name = "FORMAT", conflicts_with_all = ["ndjson", "stream"])]
    pub output: Option<OutputFormat>,
    /// Print only what failed and the summary (successful hosts' output is
    /// left out).
    #[arg(long, short = 'q', conflicts_with_all = ["ndjson", "stream"])]
    pub quiet: bool,
}

/// `--sudo`, `--sudo-user`, `--sudo-password-env`: of `exec`, `script`,
/// `upload` and `download`.
#[derive(Debug, Args)]
pub struct SudoArgs {
    /// As root through `sudo` (non-interactive: never waits for a prompt).
    /// Transfers then read and write as root: files are root's, relative
    /// paths are in root's home.
    #[arg(long)]
    pub sudo: bool,
    /// As USER through `sudo` (implies --sudo).
    #[arg(long, value_name = "USER")]
    pub sudo_user: Option<String>,
    /// Read the sudo password from this environment variable; it is sent on
    /// stdin only, never on a command line or in output.
    #[arg(long, value_name = "VAR")]
    pub sudo_password_env: Option<String>,
}

impl SudoArgs {
    /// The sudo request, when any of the flags is given.
    pub fn sudo(&self) -> anyhow::Result<Option<remex::Sudo>> {
        use anyhow::Context as _;
        if !(self.sudo || self.sudo_user.is_some() || self.sudo_password_env.is_some()) {
            return Ok(None);
        }
        let password = match &self.sudo_password_env {
            Some(var) => Some(std::sync::Arc::new(std::env::var(var).with_context(
                || format!("--sudo-password-env {var}: the environment variable {var} is not set"),
            )?)),
            None => None,
        };
        Ok(Some(remex::Sudo {
            user: self.sudo_user.clone(),
            password,
        }))
    }
}

/// `remex upload`.
#[derive(Debug, Args)]
pub struct UploadArgs {
    #[command(flatten)]
    pub adhoc: AdHoc,
    /// Which hosts: names, groups, `all`, globs, `!exclusions`, comma-separated.
    pub targets: String,
    /// Local files or directories, then the remote destination.
    #[arg(value_name = "PATH", num_args = 2.., required = true)]
    pub paths: Vec<std::ffi::OsString>,
    /// Copy directories (recursively).
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// Copy what symlinks point to instead of the links themselves.
    #[arg(short = 'L', long)]
    pub follow_symlinks: bool,
    /// Mode of the uploaded files, in octal (default: the local file's mode).
    #[arg(long, value_name = "OCTAL", value_parser = parse_mode)]
    pub mode: Option<u32>,
    /// Also keep the local modification time (the mode is kept by default).
    #[arg(long)]
    pub preserve: bool,
    /// Create missing parent directories of REMOTE.
    #[arg(long)]
    pub mkdir: bool,
    /// How to transfer.
    #[command(flatten)]
    pub transfer: TransferArgs,
}

/// `remex download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    #[command(flatten)]
    pub adhoc: AdHoc,
    /// Which hosts: names, groups, `all`, globs, `!exclusions`, comma-separated.
    pub targets: String,
    /// Remote files or directories, then the local directory.
    #[arg(value_name = "PATH", num_args = 2.., required = true)]
    pub paths: Vec<std::ffi::OsString>,
    /// Copy directories (recursively).
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// Write into LOCAL_DIR itself instead of LOCAL_DIR/<host>/ (one host only).
    #[arg(long)]
    pub flat: bool,
    /// Keep the remote mode and modification time (default: the remote mode
    /// without group/other write and set-id bits, and the current time).
    #[arg(long)]
    pub preserve: bool,
    /// How to transfer.
    #[command(flatten)]
    pub transfer: TransferArgs,
}

/// Options shared by `upload` and `download`.
#[derive(Debug, Args)]
pub struct TransferArgs {
    /// Read and write as another user through sudo.
    #[command(flatten)]
    pub sudo: SudoArgs,
    /// Hosts worked on at once (default: remote_execution.max_parallel).
    #[arg(long, short = 'p', value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub parallel: Option<u32>,
    /// Do not compare SHA-256 with the copy on the other side.
    #[arg(long)]
    pub no_verify: bool,
    /// Leave destinations that already have the same size and SHA-256
    /// untouched (reported as `unchanged`).
    #[arg(long)]
    pub skip_identical: bool,
    /// Continue an interrupted transfer from its temp file (checked by hash
    /// first); keep the temp file if this run fails too.
    #[arg(long)]
    pub resume: bool,
    /// How long one SFTP request may wait for the server's reply before the
    /// host's transfer fails as stalled (default 60s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg)]
    pub request_timeout: Option<Duration>,
    /// A secret that may show in paths or messages: replaced by [REDACTED]
    /// in remex's output and the audit log (repeatable). `K=V` gives the
    /// value; `K` takes the value of $K from remex's own environment.
    #[arg(long = "secret-env", value_name = "K=V|K", value_parser = parse_secret_env)]
    pub secret_env: Vec<(String, String)>,
}

/// `--secret-env` for commands that run no remote command.
#[derive(Debug, Args)]
pub struct SecretArgs {
    /// A secret that may show in names or messages: replaced by [REDACTED]
    /// in remex's output and the audit log (repeatable). `K=V` gives the
    /// value; `K` takes the value of $K from remex's own environment.
    #[arg(long = "secret-env", value_name = "K=V|K", value_parser = parse_secret_env)]
    pub secret_env: Vec<(String, String)>,
}

/// `remex hosts …`.
#[derive(Debug, Subcommand)]
pub enum HostsCommand {
    /// List the hosts of the config (or those TARGETS selects): name, address, user, groups.
    #[command(after_help = "\
Examples:
  remex hosts list                      the whole inventory
  remex hosts list 'web,!vm03'          what a selector picks, before running anything")]
    List {
        /// Which hosts (default: all).
        #[arg(default_value = "all")]
        targets: String,
    },
    /// Check each selected host: reachable, host key pinned, auth, round trip.
    Check {
        /// Which hosts (default: all).
        #[arg(default_value = "all")]
        targets: String,
    },
    /// Show each host's key (type, SHA256 fingerprint) and pin it in remex's known_hosts.
    #[command(after_help = "\
Pins after you confirm at the prompt, or when the key matches --fingerprint (a
value you got out of band), or with --yes. Without a terminal, pass one of the
two. A host whose pinned key changed is refused unless --replace.

Examples:
  remex hosts trust all                          asks per host
  remex hosts trust vm01 --fingerprint SHA256:abc…
  remex hosts trust lab --yes                    automation on a trusted network
  remex hosts trust vm03 --replace --fingerprint SHA256:new…")]
    Trust(TrustArgs),
    /// Remove the hosts' pins from remex's known_hosts (other lines are kept as they are).
    Forget {
        /// Which hosts.
        targets: String,
    },
}

/// `remex hosts trust`.
#[derive(Debug, Args)]
pub(crate) struct TrustArgs {
    #[command(flatten)]
    pub adhoc: AdHoc,
    /// Which hosts: names, groups, `all`, globs, `!exclusions`, comma-separated.
    pub targets: String,
    /// Pin only a key with this fingerprint (SHA256:…, obtained out of band,
    /// e.g. `ssh-keygen -l -f /etc/ssh/ssh_host_ed25519_key.pub` on the host's
    /// console); repeatable. No prompt.
    #[arg(long, value_name = "SHA256:…")]
    pub fingerprint: Vec<String>,
    /// Pin whatever key each host offers, without asking (automation on a
    /// network you trust).
    #[arg(long)]
    pub yes: bool,
    /// Replace the pin of a host whose key changed (shows both fingerprints).
    #[arg(long)]
    pub replace: bool,
}

/// `remex keys …`.
#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Generate a key pair in remote_execution.key_storage_path.
    #[command(after_help = "\
The private key is OpenSSH's format, mode 0600, in a 0700 directory; the public
key is NAME.pub beside it, with the comment remex@<this host>. An existing key
is never overwritten.

Examples:
  remex keys generate --name deploy
  remex keys generate --name legacy --type rsa --bits 4096
  KEY_PASS=… remex keys generate --name ops --passphrase-env KEY_PASS")]
    Generate(GenerateArgs),
    /// List the keys: type, fingerprint, created, where deployed, which host uses which.
    List,
    /// Add a key to the hosts' ~/.ssh/authorized_keys and verify a login with it.
    #[command(after_help = "\
Logs in with whatever works today: --bootstrap-key, else the host's usual key;
then the ssh-agent (when use_agent); then a password (--password-env, or a
prompt when stdin is a terminal; password and keyboard-interactive auth).
Adds the key unless present (other lines kept byte for byte; the file replaced
atomically), then opens a fresh connection with the new key alone. From then
on remex logs in to the host with that key.

Examples:
  remex keys deploy all --name deploy --password-env SSH_PASS
  remex keys deploy web --name deploy --bootstrap-key ~/.ssh/id_ed25519")]
    Deploy(DeployArgs),
    /// Replace the key remex uses on the hosts by a new one, never locking a host out.
    #[command(after_help = "\
Per host: deploy the new key (logging in with the current one), verify a login
with the new key alone, record it as the host's key, remove the old key. A host
that fails keeps working with its current key; run the same command again to
finish. Old private keys are archived (KEY_DIR/archive) until `remex keys prune`.

Examples:
  remex keys rotate all
  remex keys rotate web --name deploy-2025")]
    Rotate(RotateArgs),
    /// Remove a key from the hosts' ~/.ssh/authorized_keys.
    #[command(after_help = "\
Refuses, per host, to revoke the only key remex can use there unless --force.

Examples:
  remex keys revoke all --name old-laptop
  remex keys revoke vm03 --name deploy --force")]
    Revoke(RevokeArgs),
    /// Delete archived keys (kept after rotations) for good.
    Prune {
        /// Delete archived keys that are still deployed on some host too.
        #[arg(long)]
        force: bool,
    },
}

/// `remex keys generate`.
#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// Key name, its file name in key_storage_path (default: remote_execution.default_key).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The key's type and size.
    #[command(flatten)]
    pub kind: KindArgs,
}

/// `--type`, `--bits`, `--passphrase-env`.
#[derive(Debug, Args)]
pub(crate) struct KindArgs {
    /// Key type: ed25519 (default), ecdsa or rsa.
    #[arg(long = "type", value_name = "TYPE", default_value = "ed25519")]
    pub key_type: String,
    /// Key size: ecdsa 256 (default), 384, 521; rsa 3072 (default) to 16384.
    #[arg(long, value_name = "N")]
    pub bits: Option<u32>,
    /// Encrypt the private key with the passphrase in this environment variable
    /// (remex then reads it from REMEX_KEY_PASSPHRASE or a prompt).
    #[arg(long, value_name = "VAR")]
    pub passphrase_env: Option<String>,
}

/// `remex keys deploy`.
#[derive(Debug, Args)]
pub(crate) struct DeployArgs {
    /// Which hosts: names, groups, `all`, globs, `!exclusions`, comma-separated.
    pub targets: String,
    /// The key to deploy (default: remote_execution.default_key).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Log in with this private key to deploy (instead of the host's usual key).
    #[arg(long, value_name = "PATH")]
    pub bootstrap_key: Option<PathBuf>,
    /// Log in with the password in this environment variable when keys are refused.
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
    /// Secrets to redact.
    #[command(flatten)]
    pub secrets: SecretArgs,
}

/// `remex keys rotate`.
#[derive(Debug, Args)]
pub(crate) struct RotateArgs {
    /// Which hosts.
    pub targets: String,
    /// Name of the new key (default: remex-<UTC timestamp>); an unfinished
    /// rotation resumes with its own key.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The new key's type and size.
    #[command(flatten)]
    pub kind: KindArgs,
    /// Secrets to redact.
    #[command(flatten)]
    pub secrets: SecretArgs,
}

/// `remex keys revoke`.
#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    /// Which hosts.
    pub targets: String,
    /// The key to remove (as `remex keys list` names it).
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// Revoke even when it is the only key remex can use for a host.
    #[arg(long)]
    pub force: bool,
    /// Secrets to redact.
    #[command(flatten)]
    pub secrets: SecretArgs,
}

impl ShowArgs {
    /// Whether one JSON line per host is asked for (`--ndjson` or
    /// `--output ndjson`).
    pub fn wants_ndjson(&self) -> bool {
        self.ndjson || self.output == Some(OutputFormat::Ndjson)
    }
}

/// `--host ADDR[:PORT]` of the commands that contact hosts.
#[derive(Debug, Clone, Default, Args)]
pub struct AdHoc {
    /// A host that is not in the config, for this command (repeatable):
    /// ADDR or ADDR:PORT, selected in TARGETS by that same text (and by the
    /// group `adhoc`). Its host key is checked like any other's.
    #[arg(long = "host", id = "adhoc", value_name = "ADDR[:PORT]", value_parser = parse_adhoc_host)]
    pub hosts: Vec<(String, u16)>,
}

/// `--output`: how `exec` and `script` print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// `HOST: line` for every line, stdout and stderr apart.
    Lines,
    /// One line per host: `HOST: [ok] output\nmore output`.
    Oneline,
    /// One JSON document (as `--json`).
    Json,
    /// One JSON line per host as it finishes, then a summary (as `--ndjson`).
    Ndjson,
}

/// `remex lab …`.
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Start N local hosts (real sshd on 127.0.0.2, 127.0.0.3, …) and write DIR/config.yml.
    Up {
        /// Number of hosts.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=4000))]
        hosts: u32,
        /// Lab directory.
        #[arg(long, default_value = "lab")]
        dir: PathBuf,
        /// SSH server to run.
        #[arg(long, value_enum, default_value_t = Server::Openssh)]
        server: Server,
        /// Log in as this throwaway local user, created (with a password) for
        /// the lab and removed by `lab down`; the hosts accept its password and
        /// no key, so `remex keys deploy` can be tried end to end. Needs root.
        #[arg(long, value_name = "NAME")]
        password_user: Option<String>,
        /// The password for --password-user, from this environment variable
        /// (default: a random one, written to DIR/password, mode 0600).
        #[arg(long, value_name = "VAR", requires = "password_user")]
        password_env: Option<String>,
        /// Put the hosts behind a bastion: they listen in a network
        /// namespace only the extra host `bastion` can reach, and
        /// config.yml reaches them with `jump: bastion`. Needs root and
        /// iproute2.
        #[arg(long)]
        bastion: bool,
        /// Sign the host keys and the client key with a lab CA: the hosts
        /// accept the client's certificate (no key is authorized) and
        /// known_hosts holds one @cert-authority line instead of pins.
        #[arg(long)]
        ca: bool,
    },
    /// Stop the processes a lab started (and nothing else).
    Down {
        /// Lab directory.
        #[arg(long, default_value = "lab")]
        dir: PathBuf,
    },
    /// Show which lab hosts are running.
    Status {
        /// Lab directory.
        #[arg(long, default_value = "lab")]
        dir: PathBuf,
    },
}

/// `remex audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the whole hash chain (rotated files too) and report the first
    /// record that breaks it.
    #[command(after_help = "\
Detected: any edited byte, a deleted, inserted or duplicated line, two swapped
lines, records cut from the end, a deleted or edited head file; with
audit.hmac_key_path, a chain rebuilt without the key. Not detected without a
key: a complete, consistent rewrite of the log and its head.

Exit status: 0 the chain is intact, 1 it is broken (the first break is named
with its file, line and record number), 2 the log cannot be read.")]
    Verify,
    /// Print the last records; --follow keeps printing new ones.
    Tail {
        /// How many records.
        #[arg(short = 'n', long, default_value_t = 20, value_name = "N")]
        lines: usize,
        /// Keep printing records as they are written (Ctrl-C to stop); with
        /// --json, one record per line.
        #[arg(short, long)]
        follow: bool,
    },
    /// Print the records that match every filter given.
    #[command(after_help = "\
Times are RFC 3339 (2026-11-24T10:00:00Z), a date (2026-11-24, midnight UTC),
or a duration back from now (30m, 2h, 1d).

Examples:
  remex audit show --host 'web*' --since 1d
  remex audit show --op keys --failed
  remex --json audit show --run 20261124T101530Z-3f9a2c1d")]
    Show {
        /// Only this host (wildcards allowed: web*).
        #[arg(long, value_name = "HOST")]
        host: Option<String>,
        /// Only this operation (exec, script, upload, download, check,
        /// keys.deploy, …), or a family (keys, hosts).
        #[arg(long, value_name = "OP")]
        op: Option<String>,
        /// Only records at or after this time.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only records before this time.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Only `end` records of failures (non-zero exit, signal, error).
        #[arg(long)]
        failed: bool,
        /// Only one run's records (the `run` of a report).
        #[arg(long, value_name = "ID")]
        run: Option<String>,
    },
}

/// The SSH server a lab runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Server {
    /// OpenSSH's sshd (Debian: openssh-server).
    Openssh,
    /// Dropbear (Debian: dropbear-bin); logs in as the invoking user.
    Dropbear,
}

/// `remex serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Listen here instead of service.listen (e.g. 127.0.0.1:8080; port 0 picks a free one).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Print the OpenAPI document of the API and exit.
    #[arg(long)]
    pub print_openapi: bool,
}

/// `remex tokens …`.
#[derive(Debug, Subcommand)]
pub(crate) enum TokensCommand {
    /// Make a token; it is printed once and only its SHA-256 is kept.
    #[command(after_help = "\
Scopes: exec, script, files:read, files:write, keys, hosts, audit:read, admin
(admin holds every scope and sees every token's jobs).

A request is allowed only when the token holds the operation's scope and every
host it selects is within --targets. The callback secret signs the token's
callbacks (X-Remex-Signature: sha256=HMAC).

Examples:
  remex tokens create n8n --scope exec,script,files:write --targets 'web,!db01' --expires 90d
  remex tokens create ops-admin --scope admin")]
    Create {
        /// The token's name: the actor of everything done with it.
        name: String,
        /// What it may do, comma-separated.
        #[arg(long, value_delimiter = ',', required = true, value_name = "SCOPES")]
        scope: Vec<String>,
        /// The hosts it may reach: a selector (default all).
        #[arg(long, default_value = "all", value_name = "TARGETS")]
        targets: String,
        /// When it stops working, from now (e.g. 90d, 12h); default never.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg)]
        expires: Option<Duration>,
    },
    /// List the tokens (never the tokens themselves).
    List,
    /// Revoke a token: it stops working at once.
    Revoke {
        /// Its name.
        name: String,
    },
}

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    remex::config::parse_duration(s)
}

/// `--host ADDR[:PORT]`: an address (a name, IPv4, or `[IPv6]`) and the
/// port (default 22).
pub(crate) fn parse_adhoc_host(s: &str) -> Result<(String, u16), String> {
    remex::config::parse_host_port(s).ok_or_else(|| {
        format!("`{s}` is not ADDR or ADDR:PORT (a name, an IPv4 address, or [IPv6]:PORT)")
    })
}

/// A duration that is more than zero (a zero connect timeout would fail
/// every host at once).
fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let duration = remex::config::parse_duration(s)?;
    if duration.is_zero() {
        return Err(format!(
            "{s:?} would give up at once; give a duration such as 5s"
        ));
    }
    Ok(duration)
}

/// Parses an octal file mode: `0640`, `640`, `0o640`.
fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("`{s}` is not an octal file mode (such as 0640)"))
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not K=V"))?;
    Ok((key.to_owned(), value.to_owned()))
}

/// `K=V`, or `K` alone for the value of `$K`. Error messages never show the
/// value.
pub(crate) fn parse_secret_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) => Ok((key.to_owned(), value.to_owned())),
        None => std::env::var(s).map(|value| (s.to_owned(), value)).map_err(|_| {
            format!("`{s}` has no `=`, and there is no environment variable {s} to take the value from")
        }),
    }
}

/// Parses a size as the config writes it (`1048576`, `512K`, `16M`, `1G`,
/// `64MiB`): one grammar for the command line, `--request` and the config.
pub fn parse_size(s: &str) -> Result<usize, String> {
    remex::config::parse_size(s).map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("16M"), Ok(16 << 20));
        assert_eq!(parse_size("2KiB"), Ok(2048));
        assert!(parse_size("12X").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn exec_keeps_words_after_the_separator() {
        let cli = Cli::try_parse_from([
            "remex", "exec", "all", "--env", "A=b=c", "--", "echo", "--json", "a b",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let Command::Exec(args) = cli.command else {
            panic!("not exec");
        };
        assert_eq!(args.argv, ["echo", "--json", "a b"]);
        assert_eq!(args.run.env, [("A".to_owned(), "b=c".to_owned())]);
        assert!(!cli.json);
    }

    #[test]
    fn script_takes_its_arguments_after_the_separator() {
        let cli = Cli::try_parse_from([
            "remex",
            "script",
            "web",
            "./x.sh",
            "--sudo-user",
            "nobody",
            "--",
            "--flag",
            "",
            "a b",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let Command::Script(args) = cli.command else {
            panic!("not script");
        };
        assert_eq!(args.args, ["--flag", "", "a b"]);
        assert_eq!(args.run.sudo.sudo_user.as_deref(), Some("nobody"));
    }

    #[test]
    fn upload_and_download_take_their_paths() {
        let cli = Cli::try_parse_from([
            "remex", "upload", "all", "a", "b", "/srv/", "--mode", "0640", "-r", "--resume",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let Command::Upload(args) = cli.command else {
            panic!("not upload");
        };
        assert_eq!(args.paths.len(), 3);
        assert_eq!(args.mode, Some(0o640));
        assert!(args.recursive && args.transfer.resume);
        assert!(Cli::try_parse_from(["remex", "upload", "all", "only-one"]).is_err());
        assert!(
            Cli::try_parse_from(["remex", "upload", "all", "a", "b", "--mode", "999"]).is_err()
        );
        let cli = Cli::try_parse_from(["remex", "download", "vm01", "/etc/hosts", "out", "--flat"])
            .unwrap_or_else(|e| panic!("{e}"));
        let Command::Download(args) = cli.command else {
            panic!("not download");
        };
        assert!(args.flat);
        assert_eq!(args.paths, ["/etc/hosts", "out"]);
    }

    #[test]
    fn exec_needs_a_command() {
        assert!(Cli::try_parse_from(["remex", "exec", "all"]).is_err());
        assert!(Cli::try_parse_from(["remex", "exec", "all", "--raw", "ls | wc -l"]).is_ok());
    }
}
