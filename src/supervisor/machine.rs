//! The lifecycle of one process as a pure state machine (the diagram of `docs/lifecycle.md`).
//!
//! Owns: every rule that decides what happens to a process — when it is ready, when a
//! dependency's condition is met or has failed, what an exit leads to (completed, exited,
//! failed, crash loop, backoff and its delay), what a probe verdict does, what a start
//! timeout does — as [`transition`]: `(state, input) -> (state, effects)`. No I/O, no clock,
//! no randomness: times arrive as inputs (uptime, a jitter seed), so every transition is
//! unit-tested exactly. The actor (`service.rs`) turns the world into [`Input`]s, calls
//! [`transition`], and only performs the [`Effect`]s (logging, spawning, stopping, timers).
//! "Ready" ([`is_ready`]), "condition met" ([`condition`]) and "settled" ([`settled_bad`])
//! are defined here once, for the actor, its dependents and `up`.

use std::time::Duration;

use super::backoff;
use crate::config::{Condition, Process, RestartPolicy};
use crate::registry::ProcState;
pub use crate::registry::runs::{exit_succeeded, oneshot_end};

/// What everyone can see of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub state: ProcState,
    pub reason: Option<String>,
    pub pid: Option<i32>,
    pub pgid: Option<i32>,
    pub start_time: Option<u64>,
    pub started_at: Option<String>,
    pub restarts: u32,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub next_restart_at: Option<String>,
    /// Spawned at least once since the actor was created.
    pub started_once: bool,
    /// Has run and exited at least once (for `completed` conditions).
    pub exited_once: bool,
    pub waiting_for: Option<String>,
    /// The last start failed because a declared port was held by a foreign process.
    pub port_conflict: bool,
    /// What the port pre-flight did since the last `Start` (stopped a leftover or a
    /// foreign holder), for the `up` output.
    pub port_notes: Vec<String>,
    /// RFC 3339: when this status last changed (set by the actor on every change).
    pub changed_at: Option<String>,
    /// Was ready at least once since the last `Start` (a dependency's `healthy`
    /// condition is met by it, even if the moment was too short for a watcher to see).
    pub ready_once: bool,
    /// The last exit before the process was ready, since the last `Start`: `up` fails on
    /// it at once instead of waiting for its timeout.
    pub early_exit: Option<EarlyExit>,
    /// Order of the current run's spawn among all spawns of this supervisor (0: never
    /// spawned here, e.g. adopted): a dependent whose run is older than its dependency's
    /// was started before that dependency's restart (`depends_on … restart: true`).
    pub spawn_seq: u64,
}

static SPAWNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The next spawn's [`Status::spawn_seq`] (increasing, never 0).
pub fn next_spawn_seq() -> u64 {
    SPAWNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The [`Status::spawn_seq`] the next spawn will get: a run whose `spawn_seq` is below
/// this mark was spawned before it was taken.
pub fn spawn_mark() -> u64 {
    SPAWNS.load(std::sync::atomic::Ordering::Relaxed)
}

/// An exit before ready: why, and where that run's output starts in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlyExit {
    pub reason: String,
    pub log_offset: u64,
}

impl Status {
    pub fn new(state: ProcState) -> Self {
        Self {
            state,
            reason: None,
            pid: None,
            pgid: None,
            start_time: None,
            started_at: None,
            restarts: 0,
            exit_code: None,
            signal: None,
            next_restart_at: None,
            started_once: false,
            exited_once: false,
            waiting_for: None,
            port_conflict: false,
            port_notes: Vec::new(),
            ready_once: false,
            early_exit: None,
            spawn_seq: 0,
            changed_at: Some(crate::registry::now_rfc3339()),
        }
    }
}

/// Where a process is, with the data that state carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not started, or stopped by request (with survivors named); never restarted from here.
    Stopped { reason: Option<String> },
    /// Waiting for its dependencies.
    Pending { waiting_for: String },
    /// Spawned, not ready yet: its check has not passed (or it has not stayed up
    /// `ready_after`); `last_check` is what the last probe said.
    Starting {
        pid: i32,
        last_check: Option<String>,
    },
    /// Ready without a check (stayed up `ready_after`).
    Running { pid: i32 },
    /// Its check passes; `fails_in_row` consecutive failures so far.
    Healthy { pid: i32, fails_in_row: u32 },
    /// Was healthy, then `retries` checks in a row failed.
    Unhealthy { pid: i32, reason: String },
    /// Exited; restarted after `delay`.
    Backoff { delay: Duration, reason: String },
    /// Exited and stays down (`restart: no`, or a success under `on-failure`).
    Exited { reason: String },
    /// A oneshot that exited with a success code.
    Completed,
    /// procs gave up, always with a reason.
    Failed { reason: String, port_conflict: bool },
    /// An explicit stop is under way.
    Stopping { pid: i32 },
}

impl State {
    /// The state name everyone sees.
    pub fn proc_state(&self) -> ProcState {
        match self {
            Self::Stopped { .. } => ProcState::Stopped,
            Self::Pending { .. } => ProcState::Pending,
            Self::Starting { .. } => ProcState::Starting,
            Self::Running { .. } => ProcState::Running,
            Self::Healthy { .. } => ProcState::Healthy,
            Self::Unhealthy { .. } => ProcState::Unhealthy,
            Self::Backoff { .. } => ProcState::Backoff,
            Self::Exited { .. } => ProcState::Exited,
            Self::Completed => ProcState::Completed,
            Self::Failed { .. } => ProcState::Failed,
            Self::Stopping { .. } => ProcState::Stopping,
        }
    }

    /// The reason shown with the state, if it carries one.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Unhealthy { reason, .. }
            | Self::Backoff { reason, .. }
            | Self::Exited { reason }
            | Self::Failed { reason, .. } => Some(reason),
            Self::Stopped { reason } => reason.as_deref(),
            _ => None,
        }
    }

    fn pid(&self) -> Option<i32> {
        match self {
            Self::Starting { pid, .. }
            | Self::Running { pid }
            | Self::Healthy { pid, .. }
            | Self::Unhealthy { pid, .. }
            | Self::Stopping { pid } => Some(*pid),
            _ => None,
        }
    }
}

/// Counts that outlive single states.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Consecutive exits before `min_uptime`.
    pub quick_failures: u32,
    /// Restarts since the actor exists.
    pub restarts: u32,
}

/// What a dependency's state means for a dependent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepState {
    Met,
    Waiting(String),
    Failed(String),
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// `up`/`start` asked for it.
    Start,
    /// Its dependencies, as [`condition`] judges them.
    Deps(Vec<DepState>),
    /// The child runs.
    Spawned { pid: i32 },
    /// Spawning failed.
    SpawnFailed { reason: String },
    /// A declared port could not be freed (the pre-flight's reason).
    PortConflict { reason: String },
    /// It has stayed up `ready_after`.
    StayedUp,
    /// A probe passed.
    ProbePass,
    /// A probe failed, saying why.
    ProbeFail(String),
    /// `start_timeout` passed without a first passing probe.
    StartTimeout,
    /// The main process exited.
    Exited(ExitFacts),
    /// The backoff delay passed.
    BackoffOver,
    /// A process found running after a supervisor restart (SIGKILL) is taken over, with
    /// what the registry says it was when the old supervisor died.
    Adopted { pid: i32, was: Recorded },
    /// An explicit stop.
    Stop,
    /// The stop finished: how (`stopped (exited with code 0)`), and the pids still alive.
    StopDone {
        message: String,
        survivors: Vec<i32>,
    },
}

/// What the registry said an adopted process was when its supervisor died.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Not ready yet (starting, or anything that is not one of the others).
    NotReady,
    /// Ready: `healthy`, or `running` (stayed up `ready_after`).
    Ready,
    /// Its check had failed `retries` times in a row after it was healthy: it is not
    /// ready, and stays unhealthy until its check passes again.
    Unhealthy { reason: String },
}

impl Recorded {
    /// What a recorded state means for adoption.
    pub fn from_state(state: ProcState, reason: Option<&str>) -> Self {
        match state {
            ProcState::Healthy | ProcState::Running => Self::Ready,
            ProcState::Unhealthy => Self::Unhealthy {
                reason: reason.unwrap_or("unhealthy").to_owned(),
            },
            _ => Self::NotReady,
        }
    }
}

/// What the actor knows about an exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitFacts {
    /// `exited with code 3`, `killed by signal SIGKILL`.
    pub reason: String,
    /// An exit code in `success_exit_codes`.
    pub success: bool,
    pub uptime: Duration,
    /// The log says an address was in use: why, and whether a foreign process holds it.
    pub port_in_use: Option<(String, bool)>,
    /// For the backoff jitter.
    pub seed: u64,
}

/// What the actor must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Append a `[procs]` event line to the process's log.
    Log(String),
    /// Free the declared ports and spawn (answered by `Spawned`, `SpawnFailed` or
    /// `PortConflict`).
    Spawn,
    /// Stop the running tree (verified whole-tree stop).
    StopTree,
    /// Arm the backoff timer (answered by `BackoffOver`).
    Sleep(Duration),
}

/// Does `spec` have something that decides health (a check, or declared ports)?
pub fn has_health(spec: &Process) -> bool {
    spec.healthcheck.is_some() || !spec.ports.is_empty()
}

/// Without a health check, must it stay up `ready_after` before it is ready?
pub fn settles(spec: &Process) -> bool {
    !has_health(spec) && !spec.oneshot && !spec.ready_after.is_zero()
}

/// Is the process ready, as `up` means it: `completed` for a oneshot, `healthy` with a
/// check or ports, `running` (stayed up `ready_after`) otherwise.
pub fn is_ready(spec: &Process, s: &Status) -> bool {
    if spec.oneshot {
        return s.state == ProcState::Completed;
    }
    if has_health(spec) {
        s.state == ProcState::Healthy
    } else {
        matches!(s.state, ProcState::Running | ProcState::Healthy)
    }
}

/// Settled without being ready: `up` stops waiting for it (an exit before ready counts,
/// whatever the restart policy does next).
pub fn settled_bad(s: &Status) -> bool {
    s.early_exit.is_some()
        || matches!(
            s.state,
            ProcState::Failed | ProcState::Exited | ProcState::Stopped
        )
}

/// Is `condition` met by the dependency `name` in status `s`?
pub fn condition(name: &str, condition: Condition, s: &Status) -> DepState {
    if s.state == ProcState::Failed
        && !(matches!(condition, Condition::Completed) && s.exited_once)
        && !(matches!(condition, Condition::Started) && s.started_once)
    {
        return DepState::Failed(format!("dependency `{name}` failed"));
    }
    match condition {
        Condition::Started if s.started_once => DepState::Met,
        Condition::Started => DepState::Waiting(format!("`{name}` to start")),
        Condition::Healthy => {
            if s.ready_once || s.state == ProcState::Completed {
                DepState::Met
            } else if s.exited_once && matches!(s.state, ProcState::Exited) {
                DepState::Failed(format!("dependency `{name}` exited"))
            } else {
                DepState::Waiting(format!("`{name}` to be healthy"))
            }
        }
        Condition::Completed => {
            if s.exited_once && !s.state.is_live() && s.state != ProcState::Backoff {
                DepState::Met
            } else {
                DepState::Waiting(format!("`{name}` to complete"))
            }
        }
        Condition::CompletedSuccessfully => match s.state {
            ProcState::Completed => DepState::Met,
            ProcState::Exited if s.exited_once => {
                DepState::Failed(format!("dependency `{name}` did not complete successfully"))
            }
            _ => DepState::Waiting(format!("`{name}` to complete successfully")),
        },
    }
}

/// A duration as the messages write it (`500ms`, `10s`, `1m 30s`).
pub fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
}

/// The one transition function. Inputs that mean nothing in a state leave it unchanged.
pub fn transition(
    spec: &Process,
    counters: &mut Counters,
    state: State,
    input: Input,
) -> (State, Vec<Effect>) {
    use Input as I;
    use State as S;
    match (state, input) {
        // A start request for what is live, pending or backing off changes nothing.
        (
            s @ (S::Pending { .. }
            | S::Starting { .. }
            | S::Running { .. }
            | S::Healthy { .. }
            | S::Unhealthy { .. }
            | S::Backoff { .. }
            | S::Stopping { .. }),
            I::Start,
        ) => (s, vec![]),
        (_, I::Start) => {
            counters.quick_failures = 0;
            (
                S::Pending {
                    waiting_for: String::new(),
                },
                vec![],
            )
        }
        (S::Pending { .. }, I::Deps(deps)) => {
            let mut waiting = Vec::new();
            for dep in deps {
                match dep {
                    DepState::Met => {}
                    DepState::Waiting(what) => waiting.push(what),
                    DepState::Failed(reason) => {
                        return (
                            S::Failed {
                                reason: reason.clone(),
                                port_conflict: false,
                            },
                            vec![Effect::Log(format!("not started: {reason}"))],
                        );
                    }
                }
            }
            if waiting.is_empty() {
                (
                    S::Pending {
                        waiting_for: String::new(),
                    },
                    vec![Effect::Spawn],
                )
            } else {
                (
                    S::Pending {
                        waiting_for: waiting.join(", "),
                    },
                    vec![],
                )
            }
        }
        (S::Pending { .. } | S::Backoff { .. }, I::Spawned { pid }) => {
            if has_health(spec) || settles(spec) {
                (
                    S::Starting {
                        pid,
                        last_check: None,
                    },
                    vec![],
                )
            } else {
                (S::Running { pid }, vec![])
            }
        }
        (_, I::SpawnFailed { reason }) => {
            let reason = format!("cannot start: {reason}");
            (
                S::Failed {
                    reason: reason.clone(),
                    port_conflict: false,
                },
                vec![Effect::Log(reason)],
            )
        }
        (_, I::PortConflict { reason }) => (
            S::Failed {
                reason: reason.clone(),
                port_conflict: true,
            },
            vec![Effect::Log(format!("not started: {reason}"))],
        ),
        // Adoption takes over what runs as it was: a process that was healthy stays healthy
        // (its `log` check's line is older than the new supervisor: it is not looked for
        // again), one that was unhealthy stays unhealthy until its check passes (never
        // healthy by adoption), one that was not ready yet goes on starting (its checks and
        // its `start_timeout` start again), a oneshot runs until its exit is learned.
        (S::Stopped { .. }, I::Adopted { pid, was }) => {
            let state = match was {
                _ if spec.oneshot => S::Running { pid },
                Recorded::Ready if has_health(spec) => S::Healthy {
                    pid,
                    fails_in_row: 0,
                },
                Recorded::Unhealthy { reason } if has_health(spec) => S::Unhealthy { pid, reason },
                Recorded::NotReady | Recorded::Unhealthy { .. }
                    if has_health(spec) || settles(spec) =>
                {
                    S::Starting {
                        pid,
                        last_check: None,
                    }
                }
                // Ready without a check, or nothing left to wait for.
                Recorded::Ready | Recorded::NotReady | Recorded::Unhealthy { .. } => {
                    S::Running { pid }
                }
            };
            (
                state,
                vec![Effect::Log(format!(
                    "adopted pid {pid} after a supervisor restart"
                ))],
            )
        }
        (S::Starting { pid, .. }, I::StayedUp) if !has_health(spec) => (S::Running { pid }, vec![]),
        (S::Starting { pid, .. }, I::ProbePass) => (
            S::Healthy {
                pid,
                fails_in_row: 0,
            },
            vec![Effect::Log("healthy".to_owned())],
        ),
        (S::Healthy { pid, .. } | S::Unhealthy { pid, .. }, I::ProbePass) => (
            S::Healthy {
                pid,
                fails_in_row: 0,
            },
            vec![],
        ),
        (S::Starting { pid, .. }, I::ProbeFail(why)) => (
            S::Starting {
                pid,
                last_check: Some(why),
            },
            vec![],
        ),
        (S::Healthy { pid, fails_in_row }, I::ProbeFail(why)) => {
            let retries = spec.healthcheck.as_ref().map_or(3, |c| c.retries.max(1));
            let fails_in_row = fails_in_row + 1;
            if fails_in_row < retries {
                return (S::Healthy { pid, fails_in_row }, vec![]);
            }
            let reason = format!("unhealthy: {why}");
            let mut effects = vec![Effect::Log(reason.clone())];
            if spec.restart != RestartPolicy::No {
                effects.push(Effect::Log(
                    "restarting because the process turned unhealthy".to_owned(),
                ));
                effects.push(Effect::StopTree);
                effects.push(Effect::Spawn);
                counters.restarts += 1;
            }
            (S::Unhealthy { pid, reason }, effects)
        }
        (S::Starting { last_check, .. }, I::StartTimeout) => {
            let limit = spec
                .healthcheck
                .as_ref()
                .map_or(crate::config::model::defaults::START_TIMEOUT, |c| {
                    c.start_timeout
                });
            let reason = format!(
                "not healthy within {} (last check: {})",
                human(limit),
                last_check.unwrap_or_default()
            );
            (
                S::Failed {
                    reason: reason.clone(),
                    port_conflict: false,
                },
                vec![Effect::Log(reason), Effect::StopTree],
            )
        }
        (
            S::Starting { .. } | S::Running { .. } | S::Healthy { .. } | S::Unhealthy { .. },
            I::Exited(facts),
        ) => on_exit(spec, counters, &facts),
        (S::Backoff { .. }, I::BackoffOver) => {
            counters.restarts += 1;
            (
                S::Pending {
                    waiting_for: String::new(),
                },
                vec![Effect::Spawn],
            )
        }
        (s, I::Stop) => match s.pid() {
            Some(pid) => (S::Stopping { pid }, vec![Effect::StopTree]),
            None if matches!(s, S::Pending { .. } | S::Backoff { .. }) => {
                (S::Stopped { reason: None }, vec![])
            }
            None => (s, vec![]),
        },
        (S::Stopping { .. }, I::StopDone { message, survivors }) => {
            if survivors.is_empty() {
                (S::Stopped { reason: None }, vec![Effect::Log(message)])
            } else {
                let pids: Vec<String> = survivors.iter().map(ToString::to_string).collect();
                let reason = format!("survived the stop: pids {}", pids.join(", "));
                (
                    S::Stopped {
                        reason: Some(reason.clone()),
                    },
                    vec![Effect::Log(reason)],
                )
            }
        }
        (s, _) => (s, vec![]),
    }
}

/// An exit of a running process: completed, exited, failed (port conflict, oneshot,
/// crash loop) or backoff.
fn on_exit(spec: &Process, counters: &mut Counters, facts: &ExitFacts) -> (State, Vec<Effect>) {
    let reason = match &facts.port_in_use {
        Some((why, _)) => format!("{}: {why}", facts.reason),
        None => facts.reason.clone(),
    };
    if let Some((_, true)) = &facts.port_in_use {
        // A foreign holder: restarting cannot help.
        return (
            State::Failed {
                reason: reason.clone(),
                port_conflict: true,
            },
            vec![Effect::Log(reason)],
        );
    }
    if spec.oneshot && facts.success {
        return (
            State::Completed,
            vec![Effect::Log(format!("{reason}: completed"))],
        );
    }
    let restart = match spec.restart {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => !facts.success,
        RestartPolicy::No => false,
    };
    if !restart {
        let state = if spec.oneshot {
            State::Failed {
                reason: reason.clone(),
                port_conflict: false,
            }
        } else {
            State::Exited {
                reason: reason.clone(),
            }
        };
        return (state, vec![Effect::Log(reason)]);
    }
    if facts.uptime < spec.min_uptime {
        counters.quick_failures += 1;
    } else {
        counters.quick_failures = 0;
    }
    if counters.quick_failures > spec.max_restarts {
        let why = format!(
            "crash loop: {reason} {} times in a row within {} of starting ({} restarts)",
            counters.quick_failures,
            human(spec.min_uptime),
            counters.restarts
        );
        return (
            State::Failed {
                reason: why.clone(),
                port_conflict: false,
            },
            vec![Effect::Log(why)],
        );
    }
    let delay = backoff::delay(&spec.backoff, counters.quick_failures.max(1), facts.seed);
    let why = format!("{reason}, restarting in {}", human(delay));
    (
        State::Backoff {
            delay,
            reason: if delay.is_zero() { reason } else { why.clone() },
        },
        vec![Effect::Log(why), Effect::Sleep(delay)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Command;
    use crate::platform::ExitInfo;

    fn spec() -> Process {
        let mut p: Process = serde_json::from_value(serde_json::json!({
            "name": "web",
            "command": "true",
            "cwd": "/",
            "env": {},
            "depends_on": [],
            "healthcheck": null,
            "ports": [],
            "restart": "on-failure",
            "backoff": {"initial": "500ms", "max": "30s"},
            "max_restarts": 2,
            "min_uptime": "10s",
            "ready_after": "1s",
            "oneshot": false,
            "success_exit_codes": [0],
            "stop_signal": {"name": "SIGTERM", "number": 15},
            "stop_timeout": "10s",
            "stop_command": null,
            "disabled": false,
            "logs": {"max_size": 1024, "keep": 1}
        }))
        .expect("a process");
        p.command = Command::Shell("true".into());
        p
    }

    fn checked() -> Process {
        let mut p = spec();
        p.healthcheck = Some(crate::config::HealthCheck {
            probe: crate::config::Probe::Log("ready".into()),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            retries: 2,
            start_timeout: Duration::from_mins(1),
        });
        p
    }

    fn exit(code: i32, uptime_s: u64) -> Input {
        Input::Exited(ExitFacts {
            reason: format!("exited with code {code}"),
            success: code == 0,
            uptime: Duration::from_secs(uptime_s),
            port_in_use: None,
            seed: 0,
        })
    }

    fn step(spec: &Process, state: State, input: Input) -> (State, Vec<Effect>) {
        transition(spec, &mut Counters::default(), state, input)
    }

    fn pending() -> State {
        State::Pending {
            waiting_for: String::new(),
        }
    }

    #[test]
    fn start_from_stopped_is_pending_and_resets_the_quick_failures() {
        let mut c = Counters {
            quick_failures: 4,
            restarts: 2,
        };
        let (s, e) = transition(
            &spec(),
            &mut c,
            State::Stopped { reason: None },
            Input::Start,
        );
        assert_eq!(s, pending());
        assert!(e.is_empty());
        assert_eq!(c.quick_failures, 0);
        assert_eq!(c.restarts, 2);
    }

    #[test]
    fn start_while_live_changes_nothing() {
        let s = State::Running { pid: 7 };
        assert_eq!(step(&spec(), s.clone(), Input::Start), (s, vec![]));
    }

    #[test]
    fn deps_met_spawn_waiting_waits_failed_fails() {
        let (s, e) = step(&spec(), pending(), Input::Deps(vec![DepState::Met]));
        assert_eq!((s, e), (pending(), vec![Effect::Spawn]));
        let (s, e) = step(
            &spec(),
            pending(),
            Input::Deps(vec![DepState::Waiting("`db` to be healthy".into())]),
        );
        assert_eq!(
            s,
            State::Pending {
                waiting_for: "`db` to be healthy".into()
            }
        );
        assert!(e.is_empty());
        let (s, _) = step(
            &spec(),
            pending(),
            Input::Deps(vec![DepState::Failed("dependency `db` failed".into())]),
        );
        assert_eq!(s.proc_state(), ProcState::Failed);
        assert_eq!(s.reason(), Some("dependency `db` failed"));
    }

    #[test]
    fn spawned_is_starting_until_ready_after_or_running_with_zero() {
        let (s, _) = step(&spec(), pending(), Input::Spawned { pid: 9 });
        assert_eq!(s.proc_state(), ProcState::Starting);
        let (s, _) = step(&spec(), s, Input::StayedUp);
        assert_eq!(s, State::Running { pid: 9 });
        let mut instant = spec();
        instant.ready_after = Duration::ZERO;
        let (s, _) = step(&instant, pending(), Input::Spawned { pid: 9 });
        assert_eq!(s, State::Running { pid: 9 });
    }

    #[test]
    fn spawn_failures_and_port_conflicts_fail() {
        let (s, _) = step(
            &spec(),
            pending(),
            Input::SpawnFailed {
                reason: "No such file".into(),
            },
        );
        assert_eq!(s.reason(), Some("cannot start: No such file"));
        let (s, _) = step(
            &spec(),
            pending(),
            Input::PortConflict {
                reason: "port 80 is held".into(),
            },
        );
        assert!(matches!(
            s,
            State::Failed {
                port_conflict: true,
                ..
            }
        ));
    }

    #[test]
    fn a_passing_probe_makes_it_healthy_and_failures_before_that_are_remembered() {
        let spec = checked();
        let starting = State::Starting {
            pid: 3,
            last_check: None,
        };
        let (s, _) = step(&spec, starting.clone(), Input::ProbeFail("refused".into()));
        assert_eq!(
            s,
            State::Starting {
                pid: 3,
                last_check: Some("refused".into())
            }
        );
        let (s, e) = step(&spec, starting, Input::ProbePass);
        assert_eq!(
            s,
            State::Healthy {
                pid: 3,
                fails_in_row: 0
            }
        );
        assert_eq!(e, vec![Effect::Log("healthy".into())]);
        // A process with a check never becomes ready by staying up.
        let s = State::Starting {
            pid: 3,
            last_check: None,
        };
        assert_eq!(step(&spec, s.clone(), Input::StayedUp).0, s);
    }

    #[test]
    fn retries_failures_in_a_row_make_it_unhealthy_and_restart_it() {
        let spec = checked();
        let mut c = Counters::default();
        let healthy = State::Healthy {
            pid: 3,
            fails_in_row: 0,
        };
        let (s, e) = transition(&spec, &mut c, healthy, Input::ProbeFail("x".into()));
        assert_eq!(
            s,
            State::Healthy {
                pid: 3,
                fails_in_row: 1
            }
        );
        assert!(e.is_empty());
        let (s, e) = transition(&spec, &mut c, s, Input::ProbeFail("x".into()));
        assert_eq!(s.proc_state(), ProcState::Unhealthy);
        assert!(e.contains(&Effect::StopTree) && e.contains(&Effect::Spawn));
        assert_eq!(c.restarts, 1);
        // Passing again heals it.
        let (s, _) = transition(&spec, &mut c, s, Input::ProbePass);
        assert_eq!(s.proc_state(), ProcState::Healthy);
    }

    #[test]
    fn unhealthy_under_restart_no_is_not_restarted() {
        let mut spec = checked();
        spec.restart = RestartPolicy::No;
        let healthy = State::Healthy {
            pid: 3,
            fails_in_row: 1,
        };
        let (s, e) = step(&spec, healthy, Input::ProbeFail("x".into()));
        assert_eq!(s.proc_state(), ProcState::Unhealthy);
        assert!(!e.contains(&Effect::StopTree));
    }

    #[test]
    fn start_timeout_fails_with_the_last_check_and_stops_the_tree() {
        let s = State::Starting {
            pid: 3,
            last_check: Some("connection refused".into()),
        };
        let (s, e) = step(&checked(), s, Input::StartTimeout);
        assert_eq!(
            s.reason(),
            Some("not healthy within 1m (last check: connection refused)")
        );
        assert!(e.contains(&Effect::StopTree));
    }

    #[test]
    fn an_exit_backs_off_then_restarts() {
        let mut c = Counters::default();
        let (s, e) = transition(&spec(), &mut c, State::Running { pid: 3 }, exit(1, 0));
        assert_eq!(
            s,
            State::Backoff {
                delay: Duration::from_millis(500),
                reason: "exited with code 1, restarting in 500ms".into()
            }
        );
        assert!(e.contains(&Effect::Sleep(Duration::from_millis(500))));
        assert_eq!(c.quick_failures, 1);
        let (s, e) = transition(&spec(), &mut c, s, Input::BackoffOver);
        assert_eq!((s, e), (pending(), vec![Effect::Spawn]));
        assert_eq!(c.restarts, 1);
    }

    #[test]
    fn a_long_run_resets_the_quick_failures() {
        let mut c = Counters {
            quick_failures: 2,
            restarts: 2,
        };
        let (s, _) = transition(&spec(), &mut c, State::Running { pid: 3 }, exit(1, 60));
        assert_eq!(s.proc_state(), ProcState::Backoff);
        assert_eq!(c.quick_failures, 0);
    }

    #[test]
    fn more_than_max_restarts_quick_failures_is_a_crash_loop() {
        let mut c = Counters {
            quick_failures: 2,
            restarts: 2,
        };
        let (s, _) = transition(&spec(), &mut c, State::Running { pid: 3 }, exit(1, 0));
        assert_eq!(
            s.reason(),
            Some(
                "crash loop: exited with code 1 3 times in a row within 10s of starting (2 restarts)"
            )
        );
    }

    #[test]
    fn exits_under_each_policy() {
        // on-failure: success stays down.
        let (s, _) = step(&spec(), State::Running { pid: 3 }, exit(0, 0));
        assert_eq!(
            s,
            State::Exited {
                reason: "exited with code 0".into()
            }
        );
        // no: any exit stays down.
        let mut no = spec();
        no.restart = RestartPolicy::No;
        let (s, _) = step(&no, State::Running { pid: 3 }, exit(1, 0));
        assert_eq!(s.proc_state(), ProcState::Exited);
        // always: even success restarts.
        let mut always = spec();
        always.restart = RestartPolicy::Always;
        let (s, _) = step(&always, State::Running { pid: 3 }, exit(0, 60));
        assert_eq!(s.proc_state(), ProcState::Backoff);
    }

    #[test]
    fn a_oneshot_completes_or_fails() {
        let mut one = spec();
        one.oneshot = true;
        one.restart = RestartPolicy::No;
        let (s, _) = step(&one, State::Running { pid: 3 }, exit(0, 0));
        assert_eq!(s, State::Completed);
        let (s, _) = step(&one, State::Running { pid: 3 }, exit(2, 0));
        assert_eq!(s.proc_state(), ProcState::Failed);
    }

    #[test]
    fn success_is_a_code_in_success_exit_codes_the_same_for_live_and_learned_exits() {
        let codes = [0, 3];
        assert!(exit_succeeded(&codes, Some(ExitInfo::Code(0))));
        assert!(exit_succeeded(&codes, Some(ExitInfo::Code(3))));
        assert!(!exit_succeeded(&codes, Some(ExitInfo::Code(1))));
        assert!(!exit_succeeded(&codes, Some(ExitInfo::Signal(3))));
        assert!(!exit_succeeded(&codes, None));
        assert!(!exit_succeeded(&[3], Some(ExitInfo::Code(0))));
        assert_eq!(
            oneshot_end(&codes, Some(ExitInfo::Code(3)), false),
            ProcState::Completed
        );
        assert_eq!(
            oneshot_end(&[0], Some(ExitInfo::Code(3)), false),
            ProcState::Failed
        );
        assert_eq!(oneshot_end(&codes, None, false), ProcState::Failed);
        assert_eq!(
            oneshot_end(&codes, Some(ExitInfo::Code(0)), true),
            ProcState::Stopped
        );
        // The machine, given that verdict, agrees for a oneshot.
        let mut one = spec();
        one.oneshot = true;
        one.restart = RestartPolicy::No;
        one.success_exit_codes = codes.to_vec();
        for code in [0, 1, 3] {
            let exit = Some(ExitInfo::Code(code));
            let input = Input::Exited(ExitFacts {
                reason: format!("exited with code {code}"),
                success: exit_succeeded(&one.success_exit_codes, exit),
                uptime: Duration::ZERO,
                port_in_use: None,
                seed: 0,
            });
            let (s, _) = step(&one, State::Running { pid: 3 }, input);
            assert_eq!(
                s.proc_state(),
                oneshot_end(&one.success_exit_codes, exit, false),
                "code {code}"
            );
        }
    }

    #[test]
    fn an_address_in_use_by_a_foreign_process_fails_without_restart() {
        let input = Input::Exited(ExitFacts {
            reason: "exited with code 1".into(),
            success: false,
            uptime: Duration::ZERO,
            port_in_use: Some(("port 80 is held by nginx (pid 4)".into(), true)),
            seed: 0,
        });
        let (s, e) = step(&spec(), State::Running { pid: 3 }, input);
        assert!(matches!(
            s,
            State::Failed {
                port_conflict: true,
                ..
            }
        ));
        assert!(!e.iter().any(|e| matches!(e, Effect::Sleep(_))));
    }

    #[test]
    fn stop_stops_what_runs_and_cancels_what_waits() {
        let (s, e) = step(
            &spec(),
            State::Healthy {
                pid: 3,
                fails_in_row: 0,
            },
            Input::Stop,
        );
        assert_eq!(
            (s.clone(), e),
            (State::Stopping { pid: 3 }, vec![Effect::StopTree])
        );
        let (s, e) = step(
            &spec(),
            s,
            Input::StopDone {
                message: "stopped (exited with code 0)".into(),
                survivors: vec![],
            },
        );
        assert_eq!(s, State::Stopped { reason: None });
        assert_eq!(e, vec![Effect::Log("stopped (exited with code 0)".into())]);
        for waiting in [
            pending(),
            State::Backoff {
                delay: Duration::ZERO,
                reason: String::new(),
            },
        ] {
            assert_eq!(
                step(&spec(), waiting, Input::Stop),
                (State::Stopped { reason: None }, vec![])
            );
        }
        let (s, e) = step(
            &spec(),
            State::Stopping { pid: 3 },
            Input::StopDone {
                message: "stopped".into(),
                survivors: vec![8, 9],
            },
        );
        assert_eq!(s.reason(), Some("survived the stop: pids 8, 9"));
        assert_eq!(e, vec![Effect::Log("survived the stop: pids 8, 9".into())]);
    }

    #[test]
    fn adoption_keeps_what_was_ready_ready_and_restarts_the_wait_for_the_rest() {
        let stopped = State::Stopped { reason: None };
        // Healthy before the supervisor died: healthy now, no check to pass again.
        let (s, e) = step(
            &checked(),
            stopped.clone(),
            Input::Adopted {
                pid: 5,
                was: Recorded::Ready,
            },
        );
        assert_eq!(
            s,
            State::Healthy {
                pid: 5,
                fails_in_row: 0
            }
        );
        assert_eq!(
            e,
            vec![Effect::Log(
                "adopted pid 5 after a supervisor restart".into()
            )]
        );
        // Not healthy yet: starting, its check decides.
        let (s, _) = step(
            &checked(),
            stopped.clone(),
            Input::Adopted {
                pid: 5,
                was: Recorded::NotReady,
            },
        );
        assert_eq!(
            s,
            State::Starting {
                pid: 5,
                last_check: None
            }
        );
        // Without a check: running if it was, else it must stay up `ready_after` again.
        let (s, _) = step(
            &spec(),
            stopped.clone(),
            Input::Adopted {
                pid: 5,
                was: Recorded::Ready,
            },
        );
        assert_eq!(s, State::Running { pid: 5 });
        let (s, _) = step(
            &spec(),
            stopped.clone(),
            Input::Adopted {
                pid: 5,
                was: Recorded::NotReady,
            },
        );
        assert_eq!(s.proc_state(), ProcState::Starting);
        // Adoption means nothing to a process that is already supervised.
        let live = State::Running { pid: 3 };
        assert_eq!(
            step(
                &spec(),
                live.clone(),
                Input::Adopted {
                    pid: 5,
                    was: Recorded::Ready,
                }
            ),
            (live, vec![])
        );
    }

    #[test]
    fn an_adopted_oneshot_runs_until_its_learned_exit_completes_or_fails_it() {
        let mut one = spec();
        one.oneshot = true;
        one.restart = RestartPolicy::No;
        let adopted = || {
            step(
                &one,
                State::Stopped { reason: None },
                Input::Adopted {
                    pid: 8,
                    was: Recorded::NotReady,
                },
            )
            .0
        };
        assert_eq!(adopted(), State::Running { pid: 8 });
        // The exit its waiting parent recorded, learned by the new supervisor.
        assert_eq!(step(&one, adopted(), exit(0, 0)).0, State::Completed);
        let (s, e) = step(&one, adopted(), exit(3, 0));
        assert_eq!(s.reason(), Some("exited with code 3"));
        assert_eq!(s.proc_state(), ProcState::Failed);
        assert_eq!(e, vec![Effect::Log("exited with code 3".into())]);
    }

    #[test]
    fn an_adopted_unhealthy_process_stays_unhealthy_until_its_check_passes() {
        let was = Recorded::from_state(ProcState::Unhealthy, Some("unhealthy: refused"));
        let (s, _) = step(
            &checked(),
            State::Stopped { reason: None },
            Input::Adopted { pid: 5, was },
        );
        assert_eq!(
            s,
            State::Unhealthy {
                pid: 5,
                reason: "unhealthy: refused".into()
            }
        );
        assert_eq!(s.proc_state(), ProcState::Unhealthy);
        // Failing checks change nothing (no restart: it was handled when it turned
        // unhealthy), no start timeout applies, and a passing check heals it.
        assert_eq!(
            step(&checked(), s.clone(), Input::ProbeFail("refused".into())),
            (s.clone(), vec![])
        );
        assert_eq!(
            step(&checked(), s.clone(), Input::StartTimeout),
            (s.clone(), vec![])
        );
        assert_eq!(
            step(&checked(), s, Input::ProbePass).0,
            State::Healthy {
                pid: 5,
                fails_in_row: 0
            }
        );
        // What each recorded state means.
        assert_eq!(
            Recorded::from_state(ProcState::Healthy, None),
            Recorded::Ready
        );
        assert_eq!(
            Recorded::from_state(ProcState::Running, None),
            Recorded::Ready
        );
        assert_eq!(
            Recorded::from_state(ProcState::Starting, None),
            Recorded::NotReady
        );
    }

    #[test]
    fn an_adopted_healthy_process_is_never_failed_by_a_start_timeout() {
        let (s, _) = step(
            &checked(),
            State::Stopped { reason: None },
            Input::Adopted {
                pid: 5,
                was: Recorded::Ready,
            },
        );
        let (after, e) = step(&checked(), s.clone(), Input::StartTimeout);
        assert_eq!((after, e), (s, vec![]));
    }

    #[test]
    fn conditions_and_readiness() {
        let mut s = Status::new(ProcState::Running);
        assert_eq!(
            condition("db", Condition::Healthy, &s),
            DepState::Waiting("`db` to be healthy".into())
        );
        s.ready_once = true;
        assert_eq!(condition("db", Condition::Healthy, &s), DepState::Met);
        s.started_once = true;
        assert_eq!(condition("db", Condition::Started, &s), DepState::Met);
        let mut done = Status::new(ProcState::Exited);
        done.exited_once = true;
        assert_eq!(condition("m", Condition::Completed, &done), DepState::Met);
        assert!(matches!(
            condition("m", Condition::CompletedSuccessfully, &done),
            DepState::Failed(_)
        ));
        let mut failed = Status::new(ProcState::Failed);
        failed.exited_once = true;
        assert!(matches!(
            condition("m", Condition::Healthy, &failed),
            DepState::Failed(_)
        ));
        assert_eq!(condition("m", Condition::Completed, &failed), DepState::Met);

        let spec = spec();
        assert!(!is_ready(&spec, &Status::new(ProcState::Starting)));
        assert!(is_ready(&spec, &Status::new(ProcState::Running)));
        assert!(!is_ready(&checked(), &Status::new(ProcState::Running)));
        let mut early = Status::new(ProcState::Backoff);
        assert!(!settled_bad(&early));
        early.early_exit = Some(EarlyExit {
            reason: "exited with code 3".into(),
            log_offset: 0,
        });
        assert!(settled_bad(&early));
    }
}
