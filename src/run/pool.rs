//! [`Pool`]: the executor's open connections, one per host, reused by every
//! run, within one budget.
//!
//! # The budget
//!
//! `remote_execution.max_parallel` is the whole executor's budget of open
//! connections: every connection — pooled, or opened for one step such as a
//! key check or a host-key scan — holds one permit of one semaphore until it
//! is dropped. Two runs at once share it, so together they never have more
//! connections open than the budget. A connection kept in the pool for reuse
//! holds its permit while idle; when a new connection needs a permit and
//! none is free, the pool closes an idle one (one no host task is using) to
//! make room, and a host task that finishes with a connection while others
//! wait for a permit wakes one of them to do so.
//!
//! A host task holds at most one connection at a time, so nobody waits for
//! a permit while holding one: no deadlock.
//!
//! # One run
//!
//! An executor made for one run (the CLI's `exec`, `script`, `upload`,
//! `download`, `hosts check`: see [`crate::ExecutorBuilder::reuse_connections`])
//! keeps no idle connection: each host's is closed as soon as its host task
//! is done, so what a connection holds (russh keeps its buffers as large
//! as the largest burst it sent) is given back while the other hosts go on,
//! and a thousand hosts' uploads never hold a thousand connections' worth.
//! A jump host's connection stays while tunnels go through it.
//!
//! # Turns
//!
//! A host's connection carries at most `max_sessions` channels at once, so
//! more host tasks than that for one host (many runs at once, as in a
//! service) would only wait inside the operation. They wait for a *turn*
//! instead ([`Pool::turn`], `max_sessions` per host, shared by all runs)
//! before their work is even allocated: a waiting host task costs a few
//! hundred bytes, not the operation's whole state.
//!
//! # Staleness
//!
//! A pooled connection is reused only while it is open, the host's endpoint
//! (address, port, user, key) is still what the config and key state say,
//! and its host key is still trusted by known_hosts as it is now (a `hosts
//! forget`, an `@revoked` line or a changed pin since it was opened closes
//! it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::transport::connection::Connection;

/// A host's place in the pool: its open connection, once there is one. The
/// async mutex makes concurrent users of a host share one connection
/// attempt.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Connection>>>>;

/// Open connections by host name, within the budget.
pub(crate) struct Pool {
    /// One permit per open connection.
    budget: Arc<Semaphore>,
    /// The size of the budget.
    size: usize,
    /// One slot per host that had a connection.
    slots: Mutex<HashMap<String, Slot>>,
    /// Woken when a host task lets go of a pooled connection, so a task
    /// waiting for a permit can close that now idle connection.
    released: Notify,
    /// Host tasks working on a host at once, at most.
    turns_per_host: usize,
    /// Each host's turns.
    turns: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Whether a connection stays open, idle, once its host task is done
    /// (see "One run" in the module docs).
    keep_idle: bool,
}

impl Pool {
    /// An empty pool whose connections never number more than `budget`,
    /// with `turns_per_host` host tasks at once per host; `keep_idle`: see
    /// "One run" in the module docs.
    pub(crate) fn new(budget: usize, turns_per_host: usize, keep_idle: bool) -> Self {
        let size = budget.max(1);
        Pool {
            budget: Arc::new(Semaphore::new(size)),
            size,
            slots: Mutex::new(HashMap::new()),
            released: Notify::new(),
            turns_per_host: turns_per_host.max(1),
            turns: Mutex::new(HashMap::new()),
            keep_idle,
        }
    }

    /// Waits for a turn to work on host `name`: see the module docs.
    pub(crate) async fn turn(&self, name: &str) -> Option<OwnedSemaphorePermit> {
        let turns = self
            .turns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.turns_per_host)))
            .clone();
        turns.acquire_owned().await.ok()
    }

    /// The budget: connections open at once, at most.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Connections open now (pooled, or opened for one step).
    pub(crate) fn open(&self) -> usize {
        self.size - self.budget.available_permits()
    }

    /// The slot of host `name`.
    pub(crate) fn slot(&self, name: &str) -> Slot {
        self.lock().entry(name.to_owned()).or_default().clone()
    }

    /// A permit for one more open connection: waits until one is free,
    /// closing idle pooled connections to make room.
    pub(crate) async fn permit(&self) -> OwnedSemaphorePermit {
        loop {
            // Registered before looking, so a release in between is not
            // missed.
            let released = self.released.notified();
            if let Ok(permit) = self.budget.clone().try_acquire_owned() {
                return permit;
            }
            if self.close_idle().await {
                continue;
            }
            tokio::select! {
                permit = self.budget.clone().acquire_owned() => {
                    if let Ok(permit) = permit {
                        return permit;
                    }
                }
                () = released => {}
            }
        }
    }

    /// A host task let go of a pooled connection: if a task is waiting for
    /// a permit, it may now close that connection.
    pub(crate) fn released(&self) {
        self.released.notify_one();
    }

    /// A host task is done with host `name`: unless the pool keeps idle
    /// connections, closes the host's (when nobody else uses it: another
    /// host task, or a tunnel to a host behind it).
    pub(crate) async fn done_with(&self, name: &str) {
        if self.keep_idle {
            return;
        }
        let slot = self.lock().get(name).cloned();
        if let Some(slot) = slot {
            self.take_from(&slot, "its host is done").await;
        }
    }

    /// Closes one pooled connection that no host task is using (a dead one
    /// first); whether there was one.
    async fn close_idle(&self) -> bool {
        let slots: Vec<Slot> = self.lock().values().cloned().collect();
        let mut candidate: Option<Slot> = None;
        for slot in slots {
            // A slot that is locked is being connected or checked: busy.
            let Ok(guard) = slot.try_lock() else {
                continue;
            };
            // Only the pool holds it: no host task is using it.
            let Some(conn) = guard.as_ref().filter(|c| Arc::strong_count(c) == 1) else {
                continue;
            };
            let dead = conn.is_closed();
            drop(guard);
            if dead {
                candidate = Some(slot);
                break;
            }
            candidate.get_or_insert(slot);
        }
        match candidate {
            Some(slot) => self.take_from(&slot, "making room").await,
            None => false,
        }
    }

    /// Takes the connection out of `slot` if it is still idle, and closes
    /// it (`why`, for the log); whether it did.
    async fn take_from(&self, slot: &Slot, why: &str) -> bool {
        let conn = {
            let Ok(mut guard) = slot.try_lock() else {
                return false;
            };
            if guard.as_ref().is_none_or(|c| Arc::strong_count(c) != 1) {
                return false;
            }
            guard.take()
        };
        match conn {
            Some(conn) => {
                tracing::debug!(host = %conn.endpoint().name, "closing an idle connection: {why}");
                shutdown(conn).await;
                true
            }
            None => false,
        }
    }

    /// Drops host `name`'s pooled connection so the next use reconnects.
    pub(crate) fn forget(&self, name: &str) {
        self.lock().remove(name);
    }

    /// Closes every pooled connection, all at once (a thousand one after
    /// the other would add their round trips to the end of every run):
    /// connections through jump hosts first, deepest first, then the jump
    /// hosts' own, so no tunnel is cut from under its connection.
    pub(crate) async fn close(&self) {
        let slots: Vec<Slot> = self.lock().drain().map(|(_, slot)| slot).collect();
        let mut conns = Vec::with_capacity(slots.len());
        for slot in slots {
            if let Some(conn) = slot.lock().await.take() {
                conns.push(conn);
            }
        }
        let mut depths: Vec<usize> = conns.iter().map(|c| c.hops()).collect();
        depths.sort_unstable();
        depths.dedup();
        for depth in depths.into_iter().rev() {
            let (now, later): (Vec<_>, Vec<_>) = conns.into_iter().partition(|c| c.hops() == depth);
            conns = later;
            let mut closing = tokio::task::JoinSet::new();
            for conn in now {
                closing.spawn(shutdown(conn));
            }
            closing.join_all().await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Closes a connection taken out of the pool: waits for its socket to go
/// when nobody else holds it, else only asks the server to close.
pub(crate) async fn shutdown(conn: Arc<Connection>) {
    match Arc::try_unwrap(conn) {
        Ok(conn) => conn.shutdown().await,
        Err(shared) => shared.close().await,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Pool;

    #[tokio::test]
    async fn a_host_has_max_sessions_turns_shared_by_all_runs_and_hosts_do_not_wait_for_each_other()
    {
        let pool = Pool::new(4, 2, true);
        let first = pool.turn("vm01").await;
        let second = pool.turn("vm01").await;
        assert!(first.is_some() && second.is_some());
        // A third task on vm01 waits; vm02 does not.
        let third = tokio::time::timeout(Duration::from_millis(50), pool.turn("vm01")).await;
        assert!(third.is_err(), "a third turn on vm01 while two are taken");
        assert!(pool.turn("vm02").await.is_some());
        // A turn given back is the next task's.
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(5), pool.turn("vm01")).await;
        assert!(matches!(third, Ok(Some(_))));
    }
}
