//! Resource-update notifications: after `resources/subscribe` to `procs://status`, every
//! state change the supervisor's event stream carries becomes one
//! `notifications/resources/updated` for that resource.
//!
//! Owns: the notifier thread (one at a time), its own subscription socket, and the shared
//! stdout every line of the session is written through.
//! Invariants: stdout gets whole lines only (one lock per line), so a notification never
//! splits an answer. The thread blocks on the stream (no polling): it ends when the
//! supervisor exits (after one last notification: the stack is down) or when the client
//! unsubscribes or the session ends (its socket is shut down). A supervisor started later
//! is subscribed to at the next request of the session.

use std::io::{self, BufRead, BufReader, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde_json::json;

use crate::control::client;
use crate::control::protocol::Response;
use crate::paths::Paths;

/// The resource whose updates can be subscribed to: the `status` tool's answer.
pub const STATUS_URI: &str = "procs://status";

/// The session's stdout, shared by the request loop and the notifier.
#[derive(Clone)]
pub struct Out(Arc<Mutex<io::Stdout>>);

impl Out {
    pub fn stdout() -> Self {
        Self(Arc::new(Mutex::new(io::stdout())))
    }

    /// Write one protocol message as one line, flushed.
    pub fn line(&self, message: &str) -> io::Result<()> {
        let mut out = self
            .0
            .lock()
            .map_err(|_| io::Error::other("stdout lock poisoned"))?;
        writeln!(out, "{message}")?;
        out.flush()
    }
}

struct Running {
    /// A handle on the thread's socket, to end it.
    socket: UnixStream,
    /// Set by [`Notifier::stop`] before it shuts the socket: write nothing more.
    cancel: Arc<AtomicBool>,
    ended: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Whether the client subscribed, and the thread serving it while a supervisor runs.
#[derive(Default)]
pub struct Notifier {
    subscribed: bool,
    running: Option<Running>,
}

impl Notifier {
    /// `resources/subscribe` to [`STATUS_URI`].
    pub fn subscribe(&mut self, paths: &Paths, out: &Out) {
        self.subscribed = true;
        self.ensure(paths, out);
    }

    /// `resources/unsubscribe`.
    pub fn unsubscribe(&mut self) {
        self.subscribed = false;
        self.stop();
    }

    /// While subscribed, have a thread on the stream if a supervisor runs (called at
    /// every request: a supervisor started since is picked up then).
    pub fn ensure(&mut self, paths: &Paths, out: &Out) {
        if !self.subscribed {
            return;
        }
        if self
            .running
            .as_ref()
            .is_some_and(|r| r.ended.load(Ordering::Acquire))
        {
            self.stop();
        }
        if self.running.is_none() {
            self.running = start(paths, out.clone());
        }
    }

    /// End the thread (if any) and wait for it.
    pub fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.cancel.store(true, Ordering::Release);
            let _ = r.socket.shutdown(Shutdown::Both);
            let _ = r.thread.join();
        }
    }
}

fn start(paths: &Paths, out: Out) -> Option<Running> {
    let stream = client::subscribe(paths).ok()?.into_stream();
    let socket = stream.try_clone().ok()?;
    let ended = Arc::new(AtomicBool::new(false));
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&ended);
    let cancelled = Arc::clone(&cancel);
    let thread = std::thread::Builder::new()
        .name("mcp-notify".into())
        .spawn(move || {
            relay(stream, &out, &cancelled);
            flag.store(true, Ordering::Release);
        })
        .ok()?;
    Some(Running {
        socket,
        cancel,
        ended,
        thread,
    })
}

/// Notify once per frame after the first snapshot (which is the state already read), and
/// once more when the stream ends by the supervisor's exit; nothing once `cancel` is set.
fn relay(stream: UnixStream, out: &Out, cancel: &AtomicBool) {
    let notification = json!({
        "jsonrpc": "2.0",
        "method": "notifications/resources/updated",
        "params": { "uri": STATUS_URI },
    })
    .to_string();
    let mut first = true;
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        match serde_json::from_str::<Response>(&line) {
            Ok(Response::Snapshot(_)) if first => first = false,
            Ok(Response::Snapshot(_) | Response::Event(_)) => {
                if cancel.load(Ordering::Acquire) || out.line(&notification).is_err() {
                    return;
                }
            }
            _ => return,
        }
    }
    // End of file: the supervisor exited (or we shut the socket: then `cancel` is set).
    if !cancel.load(Ordering::Acquire) {
        let _ = out.line(&notification);
    }
}
