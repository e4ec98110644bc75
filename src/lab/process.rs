//! The lab's server processes as seen through `/proc`, and signals sent
//! with kill(1) (`unsafe_code` is denied in this crate, so no `libc::kill`).
//!
//! **Invariant:** a pid is signalled only while its `/proc/PID/cmdline`
//! contains the host's marker (see `Layout::host_marker`), or, for the
//! per-connection children of a server, while its parent is such a
//! server. A pid that the kernel reused for something else is left alone.

use std::collections::HashMap;
use std::fs;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How often to look again while waiting for processes to exit.
const POLL: Duration = Duration::from_millis(20);

/// A signal to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Signal {
    /// Ask to exit.
    Term,
    /// Force exit.
    Kill,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Self::Term => "TERM",
            Self::Kill => "KILL",
        }
    }
}

/// The command line of `pid` with arguments joined by spaces; `None` if
/// there is no such process. A zombie's is empty.
pub(super) fn cmdline(pid: u32) -> Option<String> {
    let bytes = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let text = String::from_utf8_lossy(&bytes).replace('\0', " ");
    Some(text.trim_end().to_owned())
}

/// Whether `pid` is alive and its command line contains `marker`.
pub(super) fn is_lab_server(pid: u32, marker: &str) -> bool {
    pid > 1 && cmdline(pid).is_some_and(|line| line.contains(marker))
}

/// The parent pid of `pid`, from `/proc/PID/stat`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "PID (COMM) STATE PPID …": COMM may hold spaces and parentheses,
    // so split after its last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Every live process's children, by parent pid, from one scan of `/proc`.
pub(super) fn children_by_parent() -> HashMap<u32, Vec<u32>> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return children;
    };
    for pid in entries.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
        if let Some(parent) = parent_of(pid) {
            children.entry(parent).or_default().push(pid);
        }
    }
    children
}

/// Sends `signal` to `pids` with one kill(1). A process that is already
/// gone is not an error, so failures are ignored; callers check with
/// [`is_lab_server`] afterwards.
pub(super) fn signal(pids: &[u32], signal: Signal) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-s", signal.name(), "--"])
        .args(pids.iter().map(u32::to_string))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Stops servers: each `(pid, marker)` whose command line still shows its
/// marker, with its per-connection children, gets SIGTERM, then SIGKILL
/// if it has not exited after `grace`.
pub(super) fn stop(servers: &[(u32, String)], grace: Duration) -> StopOutcome {
    let mut outcome = StopOutcome::default();
    let mut pending = Vec::new();
    let mut targets = Vec::new();
    let children = children_by_parent();
    for (index, (pid, marker)) in servers.iter().enumerate() {
        if !is_lab_server(*pid, marker) {
            outcome.not_running.push(index);
            continue;
        }
        targets.extend(children.get(pid).into_iter().flatten());
        targets.push(*pid);
        pending.push(index);
    }
    signal(&targets, Signal::Term);
    let gone = |index: &usize| {
        servers
            .get(*index)
            .is_none_or(|(pid, marker)| !is_lab_server(*pid, marker))
    };
    let deadline = Instant::now() + grace;
    while !pending.iter().all(gone) && Instant::now() < deadline {
        thread::sleep(POLL);
    }
    let (stopped, forced): (Vec<usize>, Vec<usize>) = pending.into_iter().partition(gone);
    outcome.stopped = stopped;
    let targets: Vec<u32> = forced
        .iter()
        .filter_map(|index| servers.get(*index).map(|(pid, _)| *pid))
        .collect();
    signal(&targets, Signal::Kill);
    let deadline = Instant::now() + Duration::from_secs(2);
    while !forced.iter().all(gone) && Instant::now() < deadline {
        thread::sleep(POLL);
    }
    let (killed, alive): (Vec<usize>, Vec<usize>) = forced.into_iter().partition(gone);
    outcome.killed = killed;
    outcome.still_running = alive;
    outcome
}

/// What [`stop`] did, as indexes into its `servers`.
#[derive(Debug, Default)]
pub(super) struct StopOutcome {
    /// Exited after SIGTERM.
    pub stopped: Vec<usize>,
    /// Needed SIGKILL.
    pub killed: Vec<usize>,
    /// Was not running (or the pid is now someone else's).
    pub not_running: Vec<usize>,
    /// Still running even after SIGKILL.
    pub still_running: Vec<usize>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn own_process_is_seen_with_its_parent() {
        let me = std::process::id();
        assert!(cmdline(me).is_some());
        assert!(parent_of(me).is_some());
        let parent = parent_of(me).unwrap();
        assert!(children_by_parent()[&parent].contains(&me));
    }

    #[test]
    fn a_pid_without_the_marker_is_not_a_lab_server() {
        let me = std::process::id();
        assert!(!is_lab_server(me, "/no/such/lab/hosts/vm01/"));
        assert!(!is_lab_server(0, ""));
        assert!(!is_lab_server(1, ""));
    }

    #[test]
    fn stop_leaves_foreign_processes_alone() {
        let mut child = spawn_sleep();
        let pid = child.id();
        let outcome = stop(
            &[(pid, "/no/such/lab/".to_owned())],
            Duration::from_millis(100),
        );
        assert_eq!(outcome.not_running, vec![0]);
        assert!(child.try_wait().unwrap().is_none(), "sleep was signalled");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Spawns `sleep 30` and waits until `/proc` shows it as such: spawn can
    /// return while the kernel still reports the parent's command line.
    fn spawn_sleep() -> std::process::Child {
        let child = Command::new("sleep").arg("30").spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !is_lab_server(child.id(), "sleep 30") {
            assert!(Instant::now() < deadline, "sleep never showed up in /proc");
            thread::sleep(Duration::from_millis(1));
        }
        child
    }

    #[test]
    fn stop_terminates_a_matching_process() {
        let mut child = spawn_sleep();
        let pid = child.id();
        let reaper = thread::spawn(move || child.wait());
        let outcome = stop(&[(pid, "sleep 30".to_owned())], Duration::from_secs(3));
        assert_eq!(outcome.stopped, vec![0], "{outcome:?}");
        assert!(!reaper.join().unwrap().unwrap().success());
    }
}
