//! Turns on a key directory: the key operations that touch a host's key
//! state never interleave.
//!
//! A key operation's work on one host — read the state, change the host's
//! authorized_keys, write the state — is one **host step**. Two host steps
//! on the same host (deploy, rotate, revoke: from two runs of one executor,
//! or from two remex processes) take turns; steps on different hosts run
//! at once. Archiving and pruning rename and delete keys that host steps
//! may be using, so they take the **whole directory**: they wait until no
//! host step is under way, and host steps wait for them.
//!
//! The lock order is always: the directory (shared for a host step,
//! exclusive for archive/prune), then one host, then — briefly, inside —
//! the state file's own lock (`state.rs`). A host step holds one host at a
//! time and never waits for the directory while holding a host, so the
//! order cannot deadlock.
//!
//! Each lock has two halves:
//!
//! - in this process, tokio locks hung off the executor ([`KeyLocks`]), so
//!   a waiting run parks a task, not a thread, and an archive is not starved
//!   by a stream of host steps (tokio's `RwLock` is fair: once a writer
//!   waits, new readers queue behind it);
//! - across processes, `flock(2)` on files in `KEY_DIR/.locks/` (0700):
//!   `keydir.lock` (shared or exclusive) and one `host-NAME.lock` per host
//!   (the name with bytes other than letters, digits, `.`, `_`, `-` written
//!   `%XX`). The files stay: removing a lock file while another process
//!   waits on it would split the lock in two. The kernel releases a lock
//!   when its process dies, so a crash leaves nothing to clean up.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex, PoisonError};

use tokio::sync::{Mutex, OwnedMutexGuard, OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use super::KeysError;

/// The lock files' directory inside the key directory.
const LOCK_DIR: &str = ".locks";

/// The whole-directory lock file inside [`LOCK_DIR`].
const DIR_LOCK: &str = "keydir.lock";

/// The locks of one key directory in this process. Held by the executor
/// (one per process and key directory; no global state).
#[derive(Debug)]
pub(crate) struct KeyLocks {
    /// The key directory.
    dir: PathBuf,
    /// Host steps read, archive and prune write.
    whole: Arc<RwLock<()>>,
    /// One lock per host that had a step; at most the inventory's size.
    hosts: StdMutex<HashMap<String, Arc<Mutex<()>>>>,
}

/// A host's turn: while it lives, no other host step on the host and no
/// archive or prune runs, in this process or another. Fields drop in
/// order: the host's locks, then the directory's.
#[derive(Debug)]
pub(crate) struct HostTurn {
    _host_file: FileLock,
    _host: OwnedMutexGuard<()>,
    _dir_file: FileLock,
    _dir: OwnedRwLockReadGuard<()>,
}

/// The whole key directory: no host step runs while it lives.
#[derive(Debug)]
pub(crate) struct DirTurn {
    _file: FileLock,
    _dir: OwnedRwLockWriteGuard<()>,
}

/// An open lock file holding a `flock`; closing it releases the lock.
#[derive(Debug)]
struct FileLock {
    _file: File,
}

/// Shared or exclusive.
#[derive(Debug, Clone, Copy)]
pub(super) enum Mode {
    Shared,
    Exclusive,
}

impl KeyLocks {
    /// The locks of key directory `dir` (nothing is opened yet).
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            whole: Arc::new(RwLock::new(())),
            hosts: StdMutex::new(HashMap::new()),
        }
    }

    /// Waits for `host`'s turn (see the module docs).
    pub(crate) async fn host(&self, host: &str) -> Result<HostTurn, KeysError> {
        let dir = self.whole.clone().read_owned().await;
        let dir_file = lock_file(self.dir.clone(), DIR_LOCK.to_owned(), Mode::Shared).await?;
        let mutex = self
            .hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(host.to_owned())
            .or_default()
            .clone();
        let host_guard = mutex.lock_owned().await;
        let host_file = lock_file(self.dir.clone(), host_lock_name(host), Mode::Exclusive).await?;
        Ok(HostTurn {
            _host_file: host_file,
            _host: host_guard,
            _dir_file: dir_file,
            _dir: dir,
        })
    }

    /// Waits until no host step is under way, then holds them all off.
    pub(crate) async fn whole_dir(&self) -> Result<DirTurn, KeysError> {
        let dir = self.whole.clone().write_owned().await;
        let file = lock_file(self.dir.clone(), DIR_LOCK.to_owned(), Mode::Exclusive).await?;
        Ok(DirTurn {
            _file: file,
            _dir: dir,
        })
    }
}

/// `flock`s `KEY_DIR/.locks/NAME` in a blocking thread (it may wait for
/// another process). Dropping the future before it is granted releases it
/// as soon as it is.
async fn lock_file(dir: PathBuf, name: String, mode: Mode) -> Result<FileLock, KeysError> {
    let path = dir.join(LOCK_DIR).join(name);
    let joined = path.clone();
    tokio::task::spawn_blocking(move || {
        // Created 0700 when missing; an existing key directory is taken as
        // it is (its permissions are checked where keys are written).
        let locks = dir.join(LOCK_DIR);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&locks)
            .map_err(KeysError::io("create", &locks))?;
        Ok(FileLock {
            _file: open_locked(&path, mode)?,
        })
    })
    .await
    .map_err(|e| KeysError::Io {
        action: "lock",
        path: joined,
        source: std::io::Error::other(e.to_string()),
    })?
}

/// Opens (creating, 0600) lock file `path` and `flock`s it, waiting for
/// other holders; closing the file releases the lock.
pub(super) fn open_locked(path: &Path, mode: Mode) -> Result<File, KeysError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(KeysError::io("open", path))?;
    match mode {
        Mode::Shared => file.lock_shared(),
        Mode::Exclusive => file.lock(),
    }
    .map_err(KeysError::io("lock", path))?;
    Ok(file)
}

/// `host-NAME.lock`, with every byte of NAME other than ASCII letters,
/// digits, `.`, `_` and `-` written `%XX` (so two names never share a file
/// and none leaves the directory).
fn host_lock_name(host: &str) -> String {
    let mut name = String::from("host-");
    for b in host.bytes() {
        if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
            name.push(char::from(b));
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    name.push_str(".lock");
    name
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::test_support::{mode, tempdir};

    #[test]
    fn host_lock_names_are_distinct_and_stay_in_the_directory() {
        assert_eq!(host_lock_name("vm01"), "host-vm01.lock");
        assert_eq!(host_lock_name("db.eu-1_a"), "host-db.eu-1_a.lock");
        assert_eq!(host_lock_name("a/b"), "host-a%2Fb.lock");
        assert_eq!(host_lock_name("../x"), "host-..%2Fx.lock");
        assert_eq!(host_lock_name("a%2Fb"), "host-a%252Fb.lock");
        assert_eq!(host_lock_name("ü"), "host-%C3%BC.lock");
        assert_ne!(host_lock_name("a/b"), host_lock_name("a%2Fb"));
    }

    /// Runs `steps` tasks, each taking `host(i % hosts)`'s turn and
    /// counting how many tasks are inside on the same host at once.
    async fn most_at_once_per_host(locks: Arc<KeyLocks>, steps: usize, hosts: usize) -> usize {
        let inside: Arc<Vec<AtomicUsize>> =
            Arc::new((0..hosts).map(|_| AtomicUsize::new(0)).collect());
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..steps {
            let (locks, inside, most) = (locks.clone(), inside.clone(), most.clone());
            tasks.spawn(async move {
                let host = i % hosts;
                let _turn = locks
                    .host(&format!("vm{host}"))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let now = inside[host].fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                inside[host].fetch_sub(1, Ordering::SeqCst);
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap_or_else(|e| panic!("{e}"));
        }
        most.load(Ordering::SeqCst)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_step_per_host_at_a_time_many_hosts_at_once() {
        let tmp = tempdir();
        let locks = Arc::new(KeyLocks::new(tmp.path()));
        assert_eq!(most_at_once_per_host(locks.clone(), 24, 3).await, 1);

        // Different hosts do not wait for each other.
        let a = locks.host("vm0").await.unwrap_or_else(|e| panic!("{e}"));
        let b = tokio::time::timeout(Duration::from_secs(30), locks.host("vm1")).await;
        assert!(matches!(b, Ok(Ok(_))), "another host's turn waited");
        drop(a);

        assert_eq!(mode(&tmp.path().join(LOCK_DIR)), 0o700);
    }

    /// Starts `wait` (a lock being taken) and checks that it is still
    /// waiting a moment later; then runs `release` and checks that it is
    /// granted. (A slow machine only makes the first check easier.)
    async fn waits_until_released<F>(wait: F, release: impl FnOnce(), what: &str)
    where
        F: Future<Output = Result<(), KeysError>> + Send + 'static,
    {
        let waiting = tokio::spawn(wait);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "{what}");
        release();
        let granted = tokio::time::timeout(Duration::from_secs(30), waiting).await;
        assert!(matches!(granted, Ok(Ok(Ok(())))), "{what}: {granted:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_processes_worth_of_locks_take_turns_too() {
        // Two `KeyLocks` on one directory share nothing in memory, like two
        // processes: only the lock files keep them apart.
        let tmp = tempdir();
        let first = Arc::new(KeyLocks::new(tmp.path()));
        let second = Arc::new(KeyLocks::new(tmp.path()));
        let turn = first.host("vm0").await.unwrap_or_else(|e| panic!("{e}"));
        let other = second.clone();
        let wait = async move { other.host("vm0").await.map(drop) };
        waits_until_released(wait, || drop(turn), "the other process got vm0's turn").await;

        // The whole directory waits for a host step in the other process,
        // and host steps wait for it.
        let step = second.host("vm1").await.unwrap_or_else(|e| panic!("{e}"));
        let other = first.clone();
        let wait = async move { other.whole_dir().await.map(drop) };
        waits_until_released(wait, || drop(step), "archived during a host step").await;

        let whole = first.whole_dir().await.unwrap_or_else(|e| panic!("{e}"));
        let other = second.clone();
        let wait = async move { other.host("vm2").await.map(drop) };
        waits_until_released(wait, || drop(whole), "a host step ran during an archive").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn an_archive_waiting_is_not_starved_by_later_host_steps() {
        let tmp = tempdir();
        let locks = Arc::new(KeyLocks::new(tmp.path()));
        let step = locks.host("vm0").await.unwrap_or_else(|e| panic!("{e}"));
        let archive = tokio::spawn({
            let locks = locks.clone();
            async move { locks.whole_dir().await.map(drop) }
        });
        // Let the archive queue up, then a step on another host comes.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let later = locks.clone();
        let wait = async move { later.host("vm1").await.map(drop) };
        waits_until_released(wait, || drop(step), "a later step overtook the archive").await;
        let archived = tokio::time::timeout(Duration::from_secs(30), archive).await;
        assert!(matches!(archived, Ok(Ok(Ok(())))), "{archived:?}");
    }
}
