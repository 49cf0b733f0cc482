//! Requests, responses and events exchanged over the control socket, one JSON object
//! per line. A request gets zero or more `event` frames and then exactly one final frame
//! (`pong`, `done` or `error`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::registry::ProcState;

/// Bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;

/// What the CLI sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestFrame {
    pub v: u32,
    pub request: Request,
}

/// One request per command.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Is the supervisor alive, and which protocol does it speak?
    Ping,
    /// Reconcile with `config` and start the selection; stream progress until every
    /// selected process is ready, one failed, or the timeout passed (unless `wait` is off).
    Up(UpRequest),
    /// Stop the named processes (all when empty) in reverse dependency order; with no
    /// names the supervisor exits after answering.
    Down {
        names: Vec<String>,
        timeout_ms: Option<u64>,
    },
    /// Start stopped processes (dependencies must already be satisfied or get started).
    Start { names: Vec<String>, timeout_ms: u64 },
    /// Stop processes without removing them from the stack.
    Stop {
        names: Vec<String>,
        timeout_ms: Option<u64>,
    },
    /// Restart one process at a time in dependency order, each ready again before the next
    /// is stopped: the named ones and their running `restart: true` dependents, or (no
    /// names) the whole stack — a rolling restart.
    Restart { names: Vec<String>, timeout_ms: u64 },
    /// Watch the stack: the answer is a [`Response::Snapshot`] of every process, then an
    /// [`Response::Event`] for every change as it happens, and a new snapshot whenever the
    /// set of processes changes (an `up` with another config). The stream has no final
    /// frame: it ends when the client closes the connection or the supervisor exits.
    Subscribe,
}

/// Parameters of `up`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpRequest {
    pub config: Config,
    /// The environment `procs up` was invoked with (lowest layer of every child's env).
    pub env: BTreeMap<String, String>,
    /// Named processes (empty = every process not `disabled`).
    pub names: Vec<String>,
    pub no_deps: bool,
    pub wait: bool,
    pub timeout_ms: u64,
    pub kill_port_owners: bool,
}

/// What the supervisor answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    Pong {
        pid: i32,
        version: u32,
    },
    Event(Event),
    /// The whole stack at one moment (see [`Request::Subscribe`]); not a final frame.
    Snapshot(Snapshot),
    Done(Outcome),
    Error(ErrorBody),
}

impl Response {
    /// Whether this frame ends the answer to a request (`event` and `snapshot` do not).
    pub fn is_final(&self) -> bool {
        !matches!(self, Self::Event(_) | Self::Snapshot(_))
    }
}

/// A process changed state: its whole published status after the change, so a reader
/// never needs the frames before it (the newest event of a process is its state).
/// Fields after `waiting_for` were added with `subscribe`; an older supervisor omits them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub name: String,
    pub state: ProcState,
    pub reason: Option<String>,
    pub pid: Option<i32>,
    /// What the process waits for (`pending` on dependencies, `starting` on a check).
    pub waiting_for: Option<String>,
    /// Restarts since the process was (re)created by an `up`.
    #[serde(default)]
    pub restarts: u32,
    /// Exit code / signal of the last exit.
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub signal: Option<i32>,
    /// RFC 3339: when the current pid started.
    #[serde(default)]
    pub started_at: Option<String>,
    /// RFC 3339: when the next restart is due (state `backoff`).
    #[serde(default)]
    pub next_restart_at: Option<String>,
    /// The process has a health check (or declared ports): `healthy`/`unhealthy` apply.
    #[serde(default)]
    pub has_health: bool,
    /// RFC 3339: when this status was published (for a snapshot: when it was last changed).
    #[serde(default)]
    pub at: Option<String>,
    /// The ports the process declares (`ports:`), as `status --json` lists them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
}

#[cfg(test)]
impl Event {
    /// An event with only a name, a state and a pid (tests of its readers).
    pub fn sample(name: &str, state: ProcState, pid: Option<i32>) -> Self {
        Self {
            name: name.to_owned(),
            state,
            reason: None,
            pid,
            waiting_for: None,
            restarts: 0,
            exit_code: None,
            signal: None,
            started_at: None,
            next_restart_at: None,
            has_health: false,
            at: None,
            ports: Vec::new(),
        }
    }
}

/// Every process of the stack, in start order, as one frame of a subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub project: String,
    /// The supervisor's pid.
    pub supervisor_pid: i32,
    pub processes: Vec<Event>,
}

/// Final answer of a lifecycle request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcome {
    /// Each process the request concerned, in start order, with its final state.
    pub processes: Vec<ProcessOutcome>,
    /// Reconciliation notes (`web: restarted (env.COLOR changed)`).
    pub notes: Vec<String>,
    /// The wait ended because the timeout passed.
    pub timed_out: bool,
}

/// One process in an [`Outcome`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessOutcome {
    pub name: String,
    pub state: ProcState,
    pub reason: Option<String>,
    pub pid: Option<i32>,
    /// The request wanted this process ready (or stopped) and it is.
    pub ok: bool,
    /// A declared port was held by a foreign process.
    pub port_conflict: bool,
    pub log: String,
    /// Where the output of the run that `reason` is about starts in `log` (an exit
    /// before ready): the failure shows that run's lines only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_from: Option<u64>,
    /// Not ready, and did not run at all for this request (stopped or never started
    /// meanwhile): its log holds nothing of this request, so no tail is shown.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_run: bool,
}

/// An error the supervisor could not turn into an outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: String,
    pub code: i32,
    pub hint: Option<String>,
}

impl From<&crate::error::Error> for ErrorBody {
    /// A catalogue situation as the supervisor answers it: the same words as the CLI's.
    fn from(err: &crate::error::Error) -> Self {
        Self {
            message: err.to_string(),
            code: err.code(),
            hint: err.hint(),
        }
    }
}
