//! The supervisor's event stream (`subscribe` on the control socket), read straight off
//! the socket as newline-delimited JSON: one snapshot of every process, then every change
//! as it happens, a new snapshot when the set of processes changes, and the end of the
//! stream when the supervisor exits.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::harness::{Project, free_port};
use crate::lifecycle::pid_of;

const WAIT: Duration = Duration::from_secs(20);

/// A subscription: a reader thread hands every frame (or the end of the stream, `None`)
/// to the test.
struct Stream {
    frames: mpsc::Receiver<Option<Value>>,
    seen: Vec<Value>,
}

impl Stream {
    fn open(p: &Project) -> Self {
        let socket = p.state_dir().join("supervisor.sock");
        let mut stream = UnixStream::connect(&socket)
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", socket.display()));
        stream
            .write_all(b"{\"v\":1,\"request\":{\"op\":\"subscribe\"}}\n")
            .expect("send subscribe");
        let (tx, frames) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let frame = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("frame is not JSON ({e}): {line}"));
                if tx.send(Some(frame)).is_err() {
                    return;
                }
            }
            let _ = tx.send(None);
        });
        Self {
            frames,
            seen: Vec::new(),
        }
    }

    /// The next frame matching `what`, skipping others; panics after [`WAIT`].
    #[track_caller]
    fn until(&mut self, what: &str, mut matches: impl FnMut(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.frames.recv_timeout(left) {
                Ok(Some(frame)) => {
                    self.seen.push(frame.clone());
                    if matches(&frame) {
                        return frame;
                    }
                }
                Ok(None) => panic!("the stream ended before {what}; frames: {:#?}", self.seen),
                Err(err) => panic!(
                    "no frame with {what} within {WAIT:?} ({err}); frames: {:#?}",
                    self.seen
                ),
            }
        }
    }

    /// Waits for the end of the stream (the supervisor closed it).
    #[track_caller]
    fn until_end(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.frames.recv_timeout(left) {
                Ok(Some(frame)) => self.seen.push(frame),
                Ok(None) => return,
                Err(err) => panic!(
                    "the stream did not end within {WAIT:?} ({err}); frames: {:#?}",
                    self.seen
                ),
            }
        }
    }
}

fn is_event(frame: &Value, name: &str, state: &str) -> bool {
    frame["type"] == "event" && frame["name"] == name && frame["state"] == state
}

fn snapshot_entry<'a>(snapshot: &'a Value, name: &str) -> &'a Value {
    snapshot["processes"]
        .as_array()
        .and_then(|ps| ps.iter().find(|e| e["name"] == name))
        .unwrap_or_else(|| panic!("`{name}` missing from the snapshot: {snapshot:#}"))
}

fn config(port: u16, extra: &str) -> String {
    format!(
        r#"
processes:
  web:
    command: ["{{testd}}", "--listen", "{port}"]
    ports: [{port}]
  worker:
    command: "{{testd}} --print worker-up"
    restart: always
    depends_on: [web]
{extra}"#
    )
}

#[test]
fn subscribe_sends_every_process_once_then_each_change_as_it_happens() {
    let port = free_port();
    let mut p = Project::new().config(&config(port, ""));
    p.procs(["up"]).success();
    let web_pid = pid_of(&p, "web");
    let worker_pid = pid_of(&p, "worker");

    let mut stream = Stream::open(&p);
    let snapshot = stream.until("the first snapshot", |f| f["type"] == "snapshot");
    assert_eq!(
        stream.seen.len(),
        1,
        "the snapshot comes first: {:#?}",
        stream.seen
    );
    let names: Vec<&str> = snapshot["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, ["web", "worker"], "start order: {snapshot:#}");
    let web = snapshot_entry(&snapshot, "web");
    assert_eq!(web["state"], "healthy", "{web}");
    assert_eq!(web["pid"], web_pid, "{web}");
    assert_eq!(web["has_health"], true, "{web}");
    assert!(
        web["started_at"].is_string() && web["at"].is_string(),
        "{web}"
    );
    let worker = snapshot_entry(&snapshot, "worker");
    assert_eq!(worker["state"], "running", "{worker}");
    assert_eq!(worker["pid"], worker_pid, "{worker}");
    assert_eq!(worker["restarts"], 0, "{worker}");

    // A restart through the CLI: the stream shows the stop and the new pid.
    p.procs(["restart", "worker"]).success();
    stream.until("worker stopping", |f| is_event(f, "worker", "stopping"));
    stream.until("worker stopped", |f| is_event(f, "worker", "stopped"));
    let running = stream.until("worker running again", |f| is_event(f, "worker", "running"));
    let restarted_pid = running["pid"].as_i64().expect("pid") as i32;
    assert_ne!(restarted_pid, worker_pid, "{running}");
    assert_eq!(restarted_pid, pid_of(&p, "worker"), "{running}");

    // A crash: the restart policy brings it back, counted, with its exit in the stream.
    kill(Pid::from_raw(restarted_pid), Signal::SIGKILL).expect("kill worker");
    let exited = stream.until("worker's crash", |f| {
        f["type"] == "event" && f["name"] == "worker" && f["pid"].is_null()
    });
    assert_eq!(exited["signal"], 9, "{exited}");
    let back = stream.until("worker restarted by its policy", |f| {
        is_event(f, "worker", "running") && f["restarts"] == 1
    });
    assert_ne!(
        back["pid"].as_i64(),
        Some(i64::from(restarted_pid)),
        "{back}"
    );

    // A full down: every process stops in the stream, then the stream ends.
    p.procs(["down"]).success();
    stream.until("web stopped", |f| is_event(f, "web", "stopped"));
    stream.until_end();
    p.assert_no_survivors();
}

#[test]
fn subscribe_sends_a_new_snapshot_when_an_up_changes_the_set_of_processes() {
    let port = free_port();
    let mut p = Project::new().config(&config(port, ""));
    p.procs(["up"]).success();
    let mut stream = Stream::open(&p);
    stream.until("the first snapshot", |f| f["type"] == "snapshot");

    p.write_config(&config(
        port,
        "  extra:\n    command: \"{testd} --print extra-up\"\n",
    ));
    p.procs(["up"]).success();
    let snapshot = stream.until("a snapshot with `extra`", |f| {
        f["type"] == "snapshot"
            && f["processes"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|e| e["name"] == "extra"))
    });
    assert_eq!(snapshot["processes"].as_array().map(Vec::len), Some(3));
    stream.until("extra running", |f| is_event(f, "extra", "running"));

    p.procs(["down"]).success();
    stream.until_end();
    p.assert_no_survivors();
}

#[test]
fn two_subscribers_see_the_same_changes_and_one_hanging_up_does_not_disturb_the_other() {
    let port = free_port();
    let mut p = Project::new().config(&config(port, ""));
    p.procs(["up"]).success();
    let mut first = Stream::open(&p);
    first.until("the first snapshot", |f| f["type"] == "snapshot");
    {
        let mut second = Stream::open(&p);
        second.until("the second snapshot", |f| f["type"] == "snapshot");
    }
    p.procs(["stop", "worker"]).success();
    first.until("worker stopped", |f| is_event(f, "worker", "stopped"));
    p.procs(["status"]).success();
    p.procs(["down"]).success();
    first.until_end();
    p.assert_no_survivors();
}
