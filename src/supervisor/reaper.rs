//! The one place that reaps children.
//!
//! The supervisor spawns children with `std::process` and never calls `wait` on them;
//! instead this task wakes on SIGCHLD, reaps every exited child with `waitpid(-1,
//! WNOHANG)` and hands each status to whoever registered for that pid. Reparented
//! orphans (we are a child subreaper) are reaped the same way and dropped, so no zombie
//! outlives a SIGCHLD.
//!
//! Children are spawned on worker threads (so that several `exec`s overlap), which opens
//! a window between a child's birth and the registration of its pid. Invariant: every
//! spawn happens inside a [`SpawnGuard`]; while any guard lives, a status with no waiter
//! is kept (it may be a child whose registration is on its way) and handed over by
//! [`Reaper::watch`]; when the last guard drops, what is left belonged to orphans and is
//! discarded. Checking for a waiter and keeping a status happen under one lock, and so do
//! checking for a kept status and registering a waiter, so no exit is ever lost.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;

use crate::platform::{self, ExitInfo};

#[derive(Default)]
struct Inner {
    waiters: HashMap<i32, oneshot::Sender<ExitInfo>>,
    /// Spawns in progress.
    in_flight: usize,
    /// Statuses reaped while a spawn was in progress, not yet claimed.
    early: HashMap<i32, ExitInfo>,
}

/// Dispatches exit statuses to the tasks waiting for them.
#[derive(Default)]
pub struct Reaper {
    inner: Mutex<Inner>,
    /// Woken after each reap that found an exit (a child's, or a re-parented orphan's).
    reaped: tokio::sync::Notify,
}

/// Held around a spawn and the registration of its pid.
pub struct SpawnGuard<'a> {
    reaper: &'a Reaper,
}

impl Drop for SpawnGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.reaper.inner.lock() {
            inner.in_flight = inner.in_flight.saturating_sub(1);
            if inner.in_flight == 0 {
                inner.early.clear();
            }
        }
    }
}

impl Reaper {
    /// Install the SIGCHLD handler and start the reaping task. Must run inside the
    /// runtime, before the first child is spawned.
    pub fn start() -> io::Result<Arc<Self>> {
        let reaper = Arc::new(Self::default());
        let mut sigchld = signal(SignalKind::child())?;
        let task = Arc::clone(&reaper);
        tokio::spawn(async move {
            task.reap();
            while sigchld.recv().await.is_some() {
                task.reap();
            }
        });
        Ok(reaper)
    }

    /// Announce a spawn; keep the guard until its pid is registered with [`Reaper::watch`].
    pub fn begin_spawn(&self) -> SpawnGuard<'_> {
        if let Ok(mut inner) = self.inner.lock() {
            inner.in_flight += 1;
        }
        SpawnGuard { reaper: self }
    }

    /// Register interest in `pid`'s exit (answered at once if it already exited).
    pub fn watch(&self, pid: i32) -> oneshot::Receiver<ExitInfo> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut inner) = self.inner.lock() {
            match inner.early.remove(&pid) {
                Some(info) => {
                    let _ = tx.send(info);
                }
                None => {
                    inner.waiters.insert(pid, tx);
                }
            }
        }
        rx
    }

    /// Wakes after the next reap that found an exit (one stored wake-up if none waits).
    pub async fn reaped(&self) {
        self.reaped.notified().await;
    }

    fn reap(&self) {
        let exits = platform::reap_any();
        if !exits.is_empty() {
            self.reaped.notify_one();
        }
        for (pid, info) in exits {
            let Ok(mut inner) = self.inner.lock() else {
                continue;
            };
            if let Some(tx) = inner.waiters.remove(&pid) {
                let _ = tx.send(info);
            } else if inner.in_flight > 0 {
                inner.early.insert(pid, info);
            }
        }
    }
}
