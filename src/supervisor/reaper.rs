//! The one place that reaps children.
//!
//! The supervisor spawns children with `std::process` and never calls `wait` on them;
//! instead this task wakes on SIGCHLD, reaps every exited child with `waitpid(-1,
//! WNOHANG)` and hands each status to whoever registered for that pid. Reparented
//! orphans (we are a child subreaper) are reaped the same way and dropped, so no zombie
//! outlives a SIGCHLD.
//! Invariant: register a pid right after spawning it, with no `.await` in between. The
//! runtime is single-threaded, so the reaper cannot run in that window.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;

use crate::platform::{self, ExitInfo};

/// Dispatches exit statuses to the tasks waiting for them.
#[derive(Default)]
pub struct Reaper {
    waiters: Mutex<HashMap<i32, oneshot::Sender<ExitInfo>>>,
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

    /// Register interest in `pid`'s exit.
    pub fn watch(&self, pid: i32) -> oneshot::Receiver<ExitInfo> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut waiters) = self.waiters.lock() {
            waiters.insert(pid, tx);
        }
        rx
    }

    fn reap(&self) {
        for (pid, info) in platform::reap_any() {
            let waiter = self.waiters.lock().ok().and_then(|mut w| w.remove(&pid));
            if let Some(tx) = waiter {
                let _ = tx.send(info);
            }
        }
    }
}
