//! The live view `procs mcp` answers `status` from: one subscription to the project's
//! supervisor (`Request::Subscribe`), kept open across tool calls.
//!
//! Owns: the subscription socket, the bytes of a frame not yet complete, and the view
//! (the last snapshot with every later event applied).
//! Invariants: nothing here polls. The socket is read only when a tool call asks for the
//! state, without blocking, taking whatever frames the supervisor sent since (the first
//! snapshot is awaited once, with a deadline). An ended stream (the supervisor exited)
//! drops the subscription; the next call subscribes again, and with no supervisor to
//! subscribe to the caller falls back to the registry, as `procs status` does.

use std::io::{self, Read as _};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::control::MAX_FRAME;
use crate::control::client;
use crate::control::protocol::{Response, Snapshot};
use crate::paths::Paths;

/// How long a new subscription may take to deliver its first snapshot.
const SNAPSHOT_PATIENCE: Duration = Duration::from_secs(5);

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// An open subscription and the view it keeps.
struct Subscription {
    stream: UnixStream,
    /// Bytes after the last complete frame.
    partial: Vec<u8>,
    view: Snapshot,
}

/// Whether the stream is still open after reading what it had.
enum Drained {
    Open,
    Ended,
}

impl Subscription {
    /// Subscribe and wait for the snapshot; `None` when no supervisor answers.
    fn open(paths: &Paths) -> Option<Self> {
        let stream = client::subscribe(paths).ok()?.into_stream();
        let mut sub = Self {
            stream,
            partial: Vec::new(),
            view: Snapshot::default(),
        };
        let deadline = Instant::now() + SNAPSHOT_PATIENCE;
        let mut snapshot = false;
        while !snapshot {
            let left = deadline.checked_duration_since(Instant::now())?;
            sub.stream.set_read_timeout(Some(left)).ok()?;
            let mut buf = [0u8; READ_CHUNK];
            let n = match sub.stream.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => n,
            };
            sub.partial.extend_from_slice(&buf[..n]);
            snapshot = sub.apply_complete_frames()?;
        }
        sub.stream.set_nonblocking(true).ok()?;
        Some(sub)
    }

    /// Read every byte the supervisor sent since the last call, without waiting.
    fn drain(&mut self) -> Drained {
        let mut buf = [0u8; READ_CHUNK];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Drained::Ended,
                Ok(n) => self.partial.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Drained::Ended,
            }
        }
        match self.apply_complete_frames() {
            Some(_) => Drained::Open,
            None => Drained::Ended,
        }
    }

    /// Apply every complete frame in `partial`; `Some(true)` if one was a snapshot,
    /// `None` if the stream is not a subscription's (a bad or oversized frame).
    fn apply_complete_frames(&mut self) -> Option<bool> {
        let mut snapshot = false;
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            match serde_json::from_slice::<Response>(&line).ok()? {
                Response::Snapshot(s) => {
                    self.view = s;
                    snapshot = true;
                }
                Response::Event(ev) => apply_event(&mut self.view, ev),
                _ => return None,
            }
        }
        (self.partial.len() <= MAX_FRAME).then_some(snapshot)
    }
}

/// A process's newest event is its whole state: replace its entry (a process not in
/// the snapshot yet is appended; the next snapshot puts it in start order).
fn apply_event(view: &mut Snapshot, ev: crate::control::protocol::Event) {
    match view.processes.iter_mut().find(|p| p.name == ev.name) {
        Some(p) => *p = ev,
        None => view.processes.push(ev),
    }
}

/// The subscription of one `procs mcp` session, opened on demand.
#[derive(Default)]
pub struct Live {
    sub: Option<Subscription>,
}

impl Live {
    /// The supervisor's current view of the stack, or `None` when no supervisor runs
    /// (or none answers a subscription): the caller then reads the registry.
    pub fn view(&mut self, paths: &Paths) -> Option<&Snapshot> {
        if let Some(sub) = &mut self.sub
            && matches!(sub.drain(), Drained::Ended)
        {
            self.sub = None;
        }
        if self.sub.is_none() {
            self.sub = Subscription::open(paths);
        }
        self.sub.as_ref().map(|s| &s.view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::Event;
    use crate::registry::ProcState;

    fn ev(name: &str, state: ProcState, pid: Option<i32>) -> Event {
        Event::sample(name, state, pid)
    }

    fn frame(r: &Response) -> Vec<u8> {
        let mut b = serde_json::to_vec(r).expect("serializes");
        b.push(b'\n');
        b
    }

    #[test]
    fn frames_split_anywhere_apply_in_order_and_events_replace_their_process() {
        let (a, _b) = UnixStream::pair().expect("pair");
        let mut sub = Subscription {
            stream: a,
            partial: Vec::new(),
            view: Snapshot::default(),
        };
        let mut bytes = frame(&Response::Snapshot(Snapshot {
            project: "p".into(),
            supervisor_pid: 7,
            processes: vec![
                ev("db", ProcState::Running, Some(10)),
                ev("web", ProcState::Running, Some(11)),
            ],
        }));
        bytes.extend(frame(&Response::Event(ev(
            "web",
            ProcState::Stopping,
            Some(11),
        ))));
        bytes.extend(frame(&Response::Event(ev(
            "web",
            ProcState::Running,
            Some(12),
        ))));
        bytes.extend(frame(&Response::Event(ev("new", ProcState::Pending, None))));
        let (head, tail) = bytes.split_at(bytes.len() - 7);
        sub.partial.extend_from_slice(head);
        assert_eq!(sub.apply_complete_frames(), Some(true));
        assert_eq!(sub.view.processes.len(), 2, "the last frame is incomplete");
        sub.partial.extend_from_slice(tail);
        assert_eq!(sub.apply_complete_frames(), Some(false));
        let pids: Vec<(&str, Option<i32>)> = sub
            .view
            .processes
            .iter()
            .map(|p| (p.name.as_str(), p.pid))
            .collect();
        assert_eq!(
            pids,
            [("db", Some(10)), ("web", Some(12)), ("new", None)],
            "{:?}",
            sub.view
        );
        assert!(sub.partial.is_empty());
    }

    #[test]
    fn a_final_frame_or_garbage_ends_the_subscription() {
        let (a, _b) = UnixStream::pair().expect("pair");
        let mut sub = Subscription {
            stream: a,
            partial: b"not json\n".to_vec(),
            view: Snapshot::default(),
        };
        assert_eq!(sub.apply_complete_frames(), None);
        sub.partial = frame(&Response::Pong { pid: 1, version: 1 });
        assert_eq!(sub.apply_complete_frames(), None);
    }

    #[test]
    fn a_closed_stream_is_ended_and_an_idle_one_open() {
        let (a, b) = UnixStream::pair().expect("pair");
        a.set_nonblocking(true).expect("nonblocking");
        let mut sub = Subscription {
            stream: a,
            partial: Vec::new(),
            view: Snapshot::default(),
        };
        assert!(matches!(sub.drain(), Drained::Open), "nothing sent yet");
        drop(b);
        assert!(matches!(sub.drain(), Drained::Ended));
    }
}
