//! Finding and stopping a run's remote processes: on a timeout or a
//! cancel, after a lost connection (through a new one), and — for a
//! service that died — after a restart ([`Executor::stop_run`]).
//!
//! # The tag
//!
//! Every command of run `R` on host `H` carries `REMEX_RUN_ID=<tag>` in
//! its environment, where the tag is [`run_tag`]`(R, H)`: 32 hex digits of
//! a SHA-256 of the run id and the host name. It is derived, never
//! random, so a process that only knows the run id (a service restarted
//! after a crash, from its job store) finds the same processes; it names
//! the host, so that hosts sharing one machine (the lab) never stop each
//! other's commands. No request field reaches it: the request's `env`
//! may set no `REMEX_*` name ([`super::RESERVED_ENV_PREFIX`]), and the
//! assignment comes first on the command line.
//!
//! # What the reaper stops
//!
//! The reaper is a small POSIX shell script run on its own channel (as the
//! sudo target user when the command ran under sudo). It works on
//! `/proc`, in up to four rounds (`TERM`, then `KILL` 300 ms apart):
//!
//! 1. **anchors**: every process whose initial environment holds the exact
//!    entry `REMEX_RUN_ID=<tag>`, and every process whose command line
//!    holds it — the login shell sshd started for the command, whose `-c`
//!    string holds the assignment, and which stays until the command ends
//!    (the command line's last line keeps it from being replaced by the
//!    command, see `command.rs`): an anchor the command cannot remove, even
//!    by `exec`ing an untagged program;
//! 2. **their descendants**: every process whose parent chain leads to an
//!    anchor or to a process already found — a child that changed or
//!    unset the tag, or started a session of its own (`setsid`), while its
//!    parent lives;
//! 3. **their sessions**: every process in a session whose leader was
//!    found — OpenSSH starts each command in a session of its own, led by
//!    the login shell, so this catches a child that dropped the tag even
//!    once orphaned (its parent gone), and the sessions a descendant
//!    started in turn. A session whose leader is not the command's (a
//!    server that starts commands in its own session, as Dropbear does
//!    without a pty) is never taken whole.
//!
//! The reaper never signals itself (its script builds the needle at run
//! time, so its own command line does not hold it). Then the
//! command's channel is sent a `KILL` signal request (sshd ≥ 8.1 and
//! Dropbear pass it on) for systems without `/proc`.
//!
//! **What still escapes:** a process that leaves the command's session
//! (`setsid`, a daemon's double fork), *and* drops or changes the tag,
//! *and* loses every ancestor the reaper can see before it runs — what
//! escapes any tool short of a cgroup; on a server that does not give each
//! command a session of its own (Dropbear without a pty), an orphan that
//! dropped the tag. A process of another user than the one the reaper runs
//! as (a `su` inside the command) cannot be signalled.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::sudo::{Sudo, SudoMode};
use crate::audit::{Op, Record};
use crate::failure::{ErrorKind, Failure};
use crate::run::report::{NoDetails, RunReport};
use crate::run::runner::{HostDetail, HostRun, Operation, Redact};
use crate::run::{Error, Executor, RunContext};
use crate::targets::Targets;
use crate::transport::connection::Connection;

/// The environment variable that tags every process of a remex command.
pub const TAG_VAR: &str = "REMEX_RUN_ID";

/// The tag of run `run`'s command on host `host` (see the module docs):
/// what `REMEX_RUN_ID` holds, 32 lower-case hex digits.
pub fn run_tag(run: &str, host: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"remex run tag\0")
        .chain_update(run.as_bytes())
        .chain_update(b"\0")
        .chain_update(host.as_bytes())
        .finalize();
    hex::encode(&digest[..16])
}

/// The reaper for `tag` (hex only: it is put in the script as is). It
/// prints `stopped N`, the number of processes it signalled.
pub(crate) fn script(tag: &str) -> String {
    // The needle is put together at run time, so that this script's own
    // command line does not hold it.
    format!(
        r#"n={TAG_VAR}; n="$n={tag}"
st() {{
  s=
  {{ read -r s < "/proc/$1/stat"; }} 2>/dev/null || return 1
  s=${{s##*) }}
  # The fields after the command name: numbers and a state letter.
  set -- $s
  pp=$2 sd=$4
}}
me=$$ sids=" " all=" " count=0 sig=TERM
for round in 1 2 3 4; do
  marked=" "
  for f in $(grep -lzxF -e "$n" /proc/[0-9]*/environ 2>/dev/null) \
           $(grep -laF -e "$n" /proc/[0-9]*/cmdline 2>/dev/null); do
    p=${{f#/proc/}}; p=${{p%%/*}}
    marked="$marked$p "
  done
  table=$(for d in /proc/[0-9]*; do p=${{d#/proc/}}; st "$p" && echo "$p $pp $sd"; done)
  while :; do
    grew=
    while read -r p pp sd; do
      [ -n "$p" ] && [ "$p" != "$me" ] && [ "$p" -gt 1 ] || continue
      case "$marked" in
        *" $p "*) ;;
        *) case "$marked" in
             *" $pp "*) ;;
             *) case "$sids" in *" $sd "*) ;; *) continue ;; esac ;;
           esac
           marked="$marked$p "; grew=1 ;;
      esac
      if [ "$p" = "$sd" ]; then
        case "$sids" in *" $sd "*) ;; *) sids="$sids$sd "; grew=1 ;; esac
      fi
    done <<EOF
$table
EOF
    [ -n "$grew" ] || break
  done
  pids=
  while read -r p pp sd; do
    [ -n "$p" ] && [ "$p" != "$me" ] && [ "$p" -gt 1 ] || continue
    case "$marked" in
      *" $p "*) pids="$pids $p"
        case "$all" in *" $p "*) ;; *) all="$all$p "; count=$((count + 1)) ;; esac ;;
    esac
  done <<EOF
$table
EOF
  [ -n "$pids" ] || break
  kill -s $sig $pids 2>/dev/null
  sleep 0.3
  sig=KILL
done
echo "stopped $count"
"#
    )
}

/// Runs the reaper for `tag` on `conn` (as the sudo target user with
/// `sudo`); how many processes it signalled.
pub(crate) async fn reap(
    conn: &Connection,
    tag: &str,
    sudo: Option<(&Sudo, SudoMode)>,
) -> Result<u32, Failure> {
    let reaper = script(tag);
    let (reaper, stdin) = match sudo {
        Some((sudo, mode)) => (sudo.wrap(mode, &reaper), sudo.stdin_prefix(mode)),
        None => (reaper, Vec::new()),
    };
    let host = &conn.endpoint().name;
    let ran = tokio::time::timeout(REAPER_TIMEOUT, conn.run_helper(&reaper, Some(&stdin)))
        .await
        .map_err(|_| {
            Failure::new(
                ErrorKind::Timeout,
                format!(
                    "the process reaper on {host} did not finish within {}s",
                    REAPER_TIMEOUT.as_secs()
                ),
            )
        })??;
    let out = String::from_utf8_lossy(&ran.1);
    let stopped = out
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("stopped "))
        .and_then(|n| n.trim().parse().ok());
    match (ran.0, stopped) {
        (Some(0), Some(stopped)) => Ok(stopped),
        (status, _) => Err(Failure::new(
            ErrorKind::Protocol,
            format!(
                "the process reaper on {host} failed (status {status:?}): {}",
                out.trim()
            ),
        )),
    }
}

/// How long the reaper may take (it sleeps 0.9 s at most; the rest is
/// reading `/proc`).
const REAPER_TIMEOUT: Duration = Duration::from_secs(20);

/// What stopping a run's processes did on one host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stopped {
    /// How many processes of the run were signalled (0: none was left).
    pub processes: u32,
    /// Why some may have been out of reach (sudo needed a password).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Redact for Stopped {}

impl HostDetail for Stopped {
    fn end_record(&self, record: Record) -> Record {
        record.action(format!("stopped {} processes", self.processes))
    }
}

/// The report of [`Executor::stop_run`].
pub type StopReport = RunReport<Stopped, NoDetails>;

impl Executor {
    /// Stops whatever is left of run `ctx.run_id`'s commands on the hosts
    /// `targets` selects (see the module docs): for a caller that lost
    /// track of a run — a service restarted after a crash finds its jobs'
    /// processes by their job ids. `sudo_user`: the user the run's
    /// commands ran as through sudo; the reaper runs as that user when
    /// sudo lets it without a password, else as the login user.
    ///
    /// Audited as operation `exec.stop` of the same run id.
    ///
    /// # Errors
    ///
    /// No run id in `ctx`; a selector that selects nothing; an audit log
    /// that cannot record.
    pub async fn stop_run(
        &self,
        ctx: &RunContext,
        targets: impl Into<Targets<'_>>,
        sudo_user: Option<String>,
    ) -> Result<StopReport, Error> {
        if ctx.run_id.is_none() {
            return Err(Error::Invalid(
                "stopping a run's processes needs its run id".to_owned(),
            ));
        }
        let hosts = self.resolve(targets.into())?.hosts().to_vec();
        let sudo = sudo_user.map(|user| {
            Arc::new(Sudo {
                user: Some(user),
                password: None,
            })
        });
        self.run(ctx, hosts, StopOp { sudo }).await
    }
}

/// [`Executor::stop_run`] as an operation of the runner.
struct StopOp {
    /// sudo to the user the run's commands ran as.
    sudo: Option<Arc<Sudo>>,
}

impl Operation for StopOp {
    type Detail = Stopped;
    type Details = NoDetails;

    fn op(&self) -> Op {
        Op::ExecStop
    }

    fn describe(&self, record: Record) -> Record {
        match &self.sudo {
            Some(sudo) => record.action("stop").sudo(sudo.target()),
            None => record.action("stop"),
        }
    }

    async fn host(&self, host: &mut HostRun<'_>, detail: &mut Stopped) -> Result<(), Failure> {
        let conn = host.connection().await?;
        let tag = run_tag(host.run.run_id(), host.name);
        let mode = match &self.sudo {
            Some(sudo) => match sudo.prepare(&conn).await {
                Ok(mode) => Some((&**sudo, mode)),
                Err(failure) => {
                    detail.note = Some(format!(
                        "stopped only the login user's processes: {}",
                        failure.message
                    ));
                    None
                }
            },
            None => None,
        };
        detail.processes = reap(&conn, &tag, mode).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_derived_per_run_and_host() {
        let tag = run_tag("20261124T101530Z-3f9a2c1d", "vm01");
        assert_eq!(tag.len(), 32);
        assert!(tag.bytes().all(|b| b.is_ascii_hexdigit()), "{tag}");
        assert_eq!(tag, run_tag("20261124T101530Z-3f9a2c1d", "vm01"));
        assert_ne!(tag, run_tag("20261124T101530Z-3f9a2c1d", "vm02"));
        assert_ne!(tag, run_tag("20261124T101530Z-3f9a2c1e", "vm01"));
        // The separator keeps (run, host) pairs apart.
        assert_ne!(run_tag("ab", "c"), run_tag("a", "bc"));
    }

    #[test]
    fn the_script_does_not_hold_its_own_needle() {
        let tag = run_tag("r", "h");
        let text = script(&tag);
        assert!(!text.contains(&format!("{TAG_VAR}={tag}")));
        assert!(text.contains(&tag));
    }

    /// Local processes whose command line holds `needle` (not the shells
    /// whose `-c` string holds it).
    fn running_pids(needle: &str) -> Vec<u32> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            if let Ok(raw) = std::fs::read(entry.path().join("cmdline")) {
                let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
                if cmdline.contains(needle) && !cmdline.contains(" -c ") {
                    found.extend(entry.file_name().to_string_lossy().parse::<u32>());
                }
            }
        }
        found
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs the reaper for `tag` here; how many processes it signalled.
    fn reap_here(tag: &str) -> u32 {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script(tag))
            .output()
            .unwrap_or_else(|e| panic!("sh: {e}"));
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim()
            .strip_prefix("stopped ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{text}"))
    }

    /// A command whose children change or drop the tag, orphan
    /// themselves, start a session of their own, or replace the tagged
    /// process — run as sshd runs it: the login shell (bash, which would
    /// `exec` a last command), in a session of its own (OpenSSH) or in the
    /// server's (`own_session: false`, as Dropbear without a pty). The
    /// reaper, run here with a real `sh` on this machine's `/proc`, stops
    /// them all (but, without a session, the orphan that dropped the tag),
    /// and leaves a process of another tag alone.
    fn reaps(own_session: bool) {
        let id = std::process::id();
        let tag = run_tag(&format!("unit-{id}-{own_session}"), "local");
        let other = run_tag(&format!("unit-{id}-{own_session}"), "other");
        // Unique sleep lengths, to find the processes again.
        let m = format!("9{:05}{}", id % 100_000, u8::from(own_session));
        let inner = format!(
            "REMEX_RUN_ID=x sleep {m}1 & env -u REMEX_RUN_ID sleep {m}2 & \\
             (env -u REMEX_RUN_ID sleep {m}3 &); setsid env -u REMEX_RUN_ID sleep {m}4 & \\
             nohup env -i sleep {m}5 >/dev/null 2>&1 & exec env -u REMEX_RUN_ID sleep {m}6"
        );
        let spawn = |exec: crate::exec::Exec, tag: &str| {
            let line = exec.remote_command(tag);
            let mut command = if own_session {
                let mut command = std::process::Command::new("setsid");
                command.arg("bash");
                command
            } else {
                std::process::Command::new("bash")
            };
            command
                .args(["-c", &line])
                .spawn()
                .unwrap_or_else(|e| panic!("bash: {e}"))
        };
        let mut ours = spawn(crate::exec::Exec::argv(["sh", "-c", &inner]), &tag);
        let mut theirs = spawn(crate::exec::Exec::argv(["sleep", &format!("{m}7")]), &other);
        wait_until("the command's processes to start", || {
            (1..=7).all(|n| !running_pids(&format!("sleep {m}{n}")).is_empty())
        });
        assert!(reap_here(&tag) >= 6);
        let escaping: &[u32] = if own_session { &[] } else { &[3] };
        wait_until("every process of the command to be gone", || {
            (1..=6)
                .filter(|n| !escaping.contains(n))
                .all(|n| running_pids(&format!("sleep {m}{n}")).is_empty())
        });
        let _ = ours.wait();
        assert!(
            !running_pids(&format!("sleep {m}7")).is_empty(),
            "the reaper stopped a process of another tag"
        );
        let _ = theirs.kill();
        let _ = theirs.wait();
        reap_here(&other);
        for n in escaping {
            for pid in running_pids(&format!("sleep {m}{n}")) {
                let _ = std::process::Command::new("kill")
                    .arg(pid.to_string())
                    .status();
            }
        }
    }

    #[test]
    fn the_reaper_stops_what_hides_from_its_tag() {
        reaps(true);
    }

    #[test]
    fn without_a_session_of_its_own_only_an_untagged_orphan_escapes() {
        reaps(false);
    }
}
