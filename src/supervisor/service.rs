//! One actor per process: the only owner of that process's child.
//!
//! Owns: carrying out the decisions of the pure state machine (`machine.rs`, SPEC §2):
//! the child (spawned here or adopted), its probes, its restarts, its stops; the actor
//! turns events into machine inputs and performs the effects. It learns about exits from the reaper (or a pidfd for an
//! adopted process) and about commands from its mailbox; it publishes every change of
//! its [`Status`] on a watch channel (dependents and `up` waiters read it), on the event
//! broadcast, and marks the registry dirty.
//!
//! ```text
//!  idle ──start──▶ pending ──deps met──▶ starting ──probe ok──▶ healthy ◀──▶ unhealthy
//!                    │ dep failed           │ (no check) ─▶ running             │
//!                    ▼                      ▼ exit                              ▼ exit / restart
//!                  failed ◀── crash loop ── backoff ◀── exit (restart policy) ──┘
//!  any live state ──stop──▶ stopping ──tree gone──▶ stopped
//! ```

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::backoff;
use super::health::{self, ProbeTask, Verdict};
use super::ports;
use super::reaper::Reaper;
use super::spawn::{self, Context};
use crate::config::{Condition, Process};
use crate::control::protocol::Event;
use crate::paths::Paths;
use crate::platform::{ExitInfo, PidFd};
use crate::registry::{self, ProcState};
use crate::stop::{self, Scanner};

pub use super::machine::{EarlyExit, Status};

/// Supervisor-wide services every actor uses.
pub struct Shared {
    pub paths: Arc<Paths>,
    pub reaper: Arc<Reaper>,
    pub scanner: Arc<Scanner>,
    pub events: broadcast::Sender<Event>,
    pub dirty: Arc<Notify>,
    pub boot_id: String,
    /// Spawns running at once (each waits for its child's `exec`).
    pub spawn_slots: tokio::sync::Semaphore,
}

/// How long a `daemon: true` process's pid file may take to name its daemon after the main
/// process exited 0 (without a pid file the daemon is known at that exit, or never).
const DAEMON_WAIT: Duration = Duration::from_secs(10);
/// What a `daemon: true` process waits for until its main process exits.
const DAEMON_WAITING: &str = "its main process to exit 0, leaving its daemon";

/// A dependency as seen by a pending dependent.
pub struct DepWatch {
    pub name: String,
    pub condition: Condition,
    pub rx: watch::Receiver<Status>,
}

/// How a stop ended, for the requester.
#[derive(Debug, Clone, Default)]
pub struct StopOutcome {
    pub survivors: Vec<i32>,
    /// SIGKILL was needed after this grace period.
    pub killed_after: Option<Duration>,
}

/// Mailbox messages.
pub enum Cmd {
    /// Start (after `deps` are met) unless already started. `ack` is answered once the
    /// actor has left `stopped` (so a waiter never mistakes the old state for the outcome).
    Start {
        deps: Vec<DepWatch>,
        /// Stop foreign holders of declared ports at the next start (`--kill-port-owners`).
        kill_port_owners: bool,
        ack: oneshot::Sender<()>,
    },
    /// Stop the tree; the actor stays, idle.
    Stop {
        timeout: Option<Duration>,
        reply: oneshot::Sender<StopOutcome>,
    },
    /// Stop the tree, answer, and end the actor.
    Shutdown {
        timeout: Option<Duration>,
        reply: oneshot::Sender<StopOutcome>,
    },
}

/// The orchestrator's handle on an actor.
pub struct Handle {
    pub spec: Arc<Process>,
    /// `spec` as stored in the registry, serialized once.
    pub stored: Option<crate::registry::StoredSpec>,
    pub hash: String,
    pub tx: mpsc::UnboundedSender<Cmd>,
    pub status: watch::Receiver<Status>,
    pub task: JoinHandle<()>,
}

/// What a previous supervisor left, to take over instead of starting anew.
#[derive(Debug, Clone)]
pub enum Adopt {
    /// A live process (verified pid), with what it was when that supervisor died.
    Running {
        pid: i32,
        start_time: u64,
        started_at: Option<String>,
        restarts: u32,
        was: machine::Recorded,
    },
    /// A oneshot whose run ended while no supervisor watched: how it ended, as its waiting
    /// parent recorded it (`None`: the waiting parent was killed before it could record).
    Ended {
        exit: Option<ExitInfo>,
        /// The previous supervisor saw the end (only its registry write was lost).
        seen: bool,
        /// It ended by an explicit stop.
        stopped: bool,
        started_at: Option<String>,
        restarts: u32,
    },
}

use super::machine::{self, DepState, human};
pub use super::machine::{has_health, settles};

/// The event that publishes `status` of `spec` (what subscribers and `up` waiters see).
pub fn event(spec: &Process, s: &Status) -> Event {
    Event {
        name: spec.name.clone(),
        state: s.state,
        reason: s.reason.clone(),
        pid: s.pid,
        waiting_for: s.waiting_for.clone(),
        restarts: s.restarts,
        exit_code: s.exit_code,
        signal: s.signal,
        started_at: s.started_at.clone(),
        next_restart_at: s.next_restart_at.clone(),
        has_health: has_health(spec),
        at: s.changed_at.clone(),
        ports: spec.ports.iter().map(|p| p.port).collect(),
    }
}

/// Start an actor for `spec`.
pub fn spawn_actor(
    spec: Arc<Process>,
    hash: String,
    ctx: Arc<Context>,
    shared: Arc<Shared>,
    initial: Status,
    adopt: Option<Adopt>,
) -> Handle {
    let (tx, rx) = mpsc::unbounded_channel();
    let (status_tx, status_rx) = watch::channel(initial);
    let log = shared.paths.log_file(&spec.name);
    let mut actor = Actor {
        spec: Arc::clone(&spec),
        hash: hash.clone(),
        ctx,
        shared,
        log,
        status: status_tx,
        rx,
        quick_failures: 0,
        kill_port_owners: false,
    };
    let mode = actor.first_mode(adopt);
    let task = tokio::spawn(actor.run(mode));
    Handle {
        stored: crate::registry::StoredSpec::new(&*spec),
        spec,
        hash,
        tx,
        status: status_rx,
        task,
    }
}

enum Exit {
    Child(oneshot::Receiver<ExitInfo>),
    Adopted(PidFd),
}

struct Running {
    pid: i32,
    exit: Exit,
    started: Instant,
    /// Size of the log when this run started: the early-exit explanation reads after it.
    log_offset: u64,
    probes: Option<(JoinHandle<()>, mpsc::Receiver<Verdict>)>,
    /// Ready at least once in this run (check passed, or stayed up `ready_after`).
    healthy_once: bool,
    fails_in_row: u32,
    start_deadline: Option<Instant>,
    /// `daemon: true`: the main process exited 0 and `pid` is now its daemon.
    daemonized: bool,
    /// `daemon: true`: the last verdict of the check while the main process still ran
    /// (applied once the daemon is known: until then the process is not ready).
    early_verdict: Option<Verdict>,
    /// Without a check: when it will have stayed up `ready_after`.
    ready_at: Option<Instant>,
}

enum Mode {
    Idle,
    Pending(Vec<DepWatch>),
    Running(Running),
    Backoff(Instant),
    Exit,
}

struct Actor {
    spec: Arc<Process>,
    /// The config hash of `spec` (a oneshot's run record carries it).
    hash: String,
    ctx: Arc<Context>,
    shared: Arc<Shared>,
    log: PathBuf,
    status: watch::Sender<Status>,
    rx: mpsc::UnboundedReceiver<Cmd>,
    quick_failures: u32,
    /// Set by a `Start` from `up --kill-port-owners`; consumed by the next pre-flight.
    kill_port_owners: bool,
}

fn dep_state(dep: &DepWatch) -> DepState {
    machine::condition(&dep.name, dep.condition, &dep.rx.borrow())
}

/// Resolves when any of the receivers sees a new value (closed senders never resolve).
async fn any_changed(deps: &mut [DepWatch]) {
    let mut futs: Vec<Pin<Box<dyn std::future::Future<Output = bool> + Send + '_>>> = deps
        .iter_mut()
        .map(|d| {
            Box::pin(async move { d.rx.changed().await.is_ok() })
                as Pin<Box<dyn std::future::Future<Output = bool> + Send + '_>>
        })
        .collect();
    std::future::poll_fn(|cx| {
        for fut in &mut futs {
            if let std::task::Poll::Ready(true) = fut.as_mut().poll(cx) {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await;
}

fn exit_reason(info: ExitInfo) -> String {
    match info {
        ExitInfo::Code(code) => format!("exited with code {code}"),
        ExitInfo::Signal(sig) => match crate::platform::signal_name(sig) {
            Some(name) => format!("killed by signal {name}"),
            None => format!("killed by signal {sig}"),
        },
    }
}

/// The last 64 KiB of `log` written after `offset` (what the current run printed).
fn read_after(log: &std::path::Path, offset: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(log) else {
        return String::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let from = if len < offset {
        0
    } else {
        offset.max(len.saturating_sub(64 * 1024))
    };
    let mut buf = Vec::new();
    if file.seek(SeekFrom::Start(from)).is_err() || file.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Where the run of `pid` starts in `log`: the offset of its `[procs] … started pid N` line
/// (the last one, in the last MiB), if it is there.
fn run_start_offset(log: &std::path::Path, pid: i32) -> Option<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(log).ok()?;
    let len = file.metadata().ok()?.len();
    let from = len.saturating_sub(1024 * 1024);
    file.seek(SeekFrom::Start(from)).ok()?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf).ok()?;
    let needle = format!(" started pid {pid}\n");
    let at = buf
        .windows(needle.len())
        .rposition(|w| w == needle.as_bytes())?;
    let line = buf[..at]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    Some(from + line as u64)
}

impl Actor {
    fn set(&self, change: impl FnOnce(&mut Status)) {
        let mut changed = false;
        self.status.send_if_modified(|s| {
            let before = s.clone();
            change(s);
            changed = *s != before;
            if changed {
                s.changed_at = Some(registry::now_rfc3339());
            }
            changed
        });
        if changed {
            let event = event(&self.spec, &self.status.borrow());
            let _ = self.shared.events.send(event);
            self.shared.dirty.notify_one();
        }
    }

    fn event(&self, message: &str) {
        spawn::log_event(&self.log, message);
    }

    /// The counters the machine reads (the restart count lives in the status).
    fn counters(&self) -> machine::Counters {
        machine::Counters {
            quick_failures: self.quick_failures,
            restarts: self.status.borrow().restarts,
        }
    }

    /// Perform the `Log` effects; true if the machine asked for a spawn.
    fn log_effects(&self, effects: &[machine::Effect]) -> bool {
        let mut spawn = false;
        for effect in effects {
            match effect {
                machine::Effect::Log(line) => self.event(line),
                machine::Effect::Spawn => spawn = true,
                machine::Effect::StopTree | machine::Effect::Sleep(_) => {}
            }
        }
        spawn
    }

    /// Does this run's output hold a line matching the `log` check?
    fn ready_line_written(&self, run: &Running) -> bool {
        let Some(crate::config::HealthCheck {
            probe: crate::config::Probe::Log(pattern),
            ..
        }) = &self.spec.healthcheck
        else {
            return false;
        };
        let Ok(regex) = regex::Regex::new(pattern) else {
            return false;
        };
        read_after(&self.log, run.log_offset)
            .lines()
            .any(|line| !line.starts_with("[procs] ") && regex.is_match(line))
    }

    /// The first mode: idle, or what adoption found (decided before the actor task runs, so
    /// the status the orchestrator reads right after is already the adopted one).
    fn first_mode(&mut self, adopt: Option<Adopt>) -> Mode {
        match adopt {
            Some(Adopt::Running {
                pid,
                start_time,
                started_at,
                restarts,
                was,
            }) => self.adopt(pid, start_time, started_at, restarts, was),
            Some(Adopt::Ended {
                exit,
                seen,
                stopped,
                started_at,
                restarts,
            }) => self.adopted_end(exit, seen, stopped, started_at, restarts),
            None => Mode::Idle,
        }
    }

    async fn run(mut self, mode: Mode) {
        let mut mode = mode;
        loop {
            mode = match mode {
                Mode::Exit => return,
                Mode::Idle => match self.rx.recv().await {
                    None => return,
                    Some(cmd) => self.on_cmd(cmd, None).await,
                },
                Mode::Pending(deps) => self.pending(deps).await,
                Mode::Running(run) => self.running(run).await,
                Mode::Backoff(until) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => {
                            let mut counters = self.counters();
                            let _ = machine::transition(
                                &self.spec,
                                &mut counters,
                                machine::State::Backoff { delay: Duration::ZERO, reason: String::new() },
                                machine::Input::BackoffOver,
                            );
                            self.set(|s| { s.restarts = counters.restarts; s.next_restart_at = None; });
                            self.start_child().await
                        }
                        cmd = self.rx.recv() => match cmd {
                            None => return,
                            Some(Cmd::Start { ack, kill_port_owners, .. }) => {
                                self.kill_port_owners |= kill_port_owners;
                                let _ = ack.send(());
                                Mode::Backoff(until)
                            }
                            Some(cmd) => self.on_cmd(cmd, None).await,
                        },
                    }
                }
            };
        }
    }

    /// Handle a command outside of the running state (or with `run` when running).
    async fn on_cmd(&mut self, cmd: Cmd, run: Option<Running>) -> Mode {
        match cmd {
            Cmd::Start {
                deps,
                kill_port_owners,
                ack,
            } => {
                if let Some(run) = run {
                    let _ = ack.send(());
                    Mode::Running(run)
                } else {
                    let mut counters = self.counters();
                    let _ = machine::transition(
                        &self.spec,
                        &mut counters,
                        machine::State::Stopped { reason: None },
                        machine::Input::Start,
                    );
                    self.quick_failures = counters.quick_failures;
                    self.kill_port_owners = kill_port_owners;
                    self.set(|s| {
                        s.state = ProcState::Pending;
                        s.reason = None;
                        s.port_conflict = false;
                        s.port_notes.clear();
                        s.exit_code = None;
                        s.signal = None;
                        s.started_once = false;
                        s.exited_once = false;
                        s.ready_once = false;
                        s.early_exit = None;
                    });
                    let _ = ack.send(());
                    Mode::Pending(deps)
                }
            }
            Cmd::Stop { timeout, reply } => {
                let outcome = self.stop(run, timeout).await;
                let _ = reply.send(outcome);
                Mode::Idle
            }
            Cmd::Shutdown { timeout, reply } => {
                let outcome = self.stop(run, timeout).await;
                let _ = reply.send(outcome);
                Mode::Exit
            }
        }
    }

    async fn pending(&mut self, mut deps: Vec<DepWatch>) -> Mode {
        loop {
            let judged: Vec<DepState> = deps
                .iter_mut()
                .map(|dep| {
                    dep.rx.borrow_and_update();
                    dep_state(dep)
                })
                .collect();
            let (next, effects) = machine::transition(
                &self.spec,
                &mut self.counters(),
                machine::State::Pending {
                    waiting_for: String::new(),
                },
                machine::Input::Deps(judged),
            );
            let spawn = self.log_effects(&effects);
            if let machine::State::Failed { reason, .. } = next {
                self.set(|s| {
                    s.state = ProcState::Failed;
                    s.reason = Some(reason);
                    s.waiting_for = None;
                });
                return Mode::Idle;
            }
            if spawn {
                self.set(|s| s.waiting_for = None);
                return self.start_child().await;
            }
            let machine::State::Pending { waiting_for: what } = next else {
                return Mode::Idle;
            };
            self.set(|s| {
                s.state = ProcState::Pending;
                s.waiting_for = Some(what);
            });
            tokio::select! {
                () = any_changed(&mut deps) => {}
                cmd = self.rx.recv() => match cmd {
                    None => return Mode::Exit,
                    Some(Cmd::Start {
                        ack,
                        kill_port_owners,
                        ..
                    }) => {
                        self.kill_port_owners |= kill_port_owners;
                        let _ = ack.send(());
                    }
                    Some(cmd) => return self.on_cmd(cmd, None).await,
                },
            }
        }
    }

    /// Free the declared ports (SPEC §3), then spawn. A port that cannot be freed makes
    /// the process `failed` with `port_conflict` set, and nothing is spawned.
    async fn start_child(&mut self) -> Mode {
        let spec = Arc::clone(&self.spec);
        if !spec.ports.is_empty() {
            let kill_foreign = std::mem::take(&mut self.kill_port_owners);
            self.set(|s| {
                s.waiting_for = Some("declared ports to be free".to_owned());
            });
            let pf = ports::Preflight {
                spec: &spec,
                project_id: &self.ctx.project_id,
                kill_foreign,
                scanner: &self.shared.scanner,
            };
            let mut said = Vec::new();
            let result = ports::preflight(&pf, |line| {
                spawn::log_event(&self.log, &line);
                said.push(line);
            })
            .await;
            if !said.is_empty() {
                self.set(|s| {
                    s.port_notes.extend(said);
                    let extra = s.port_notes.len().saturating_sub(10);
                    s.port_notes.drain(..extra);
                });
            }
            if let Err(conflict) = result {
                let (next, effects) = machine::transition(
                    &spec,
                    &mut self.counters(),
                    machine::State::Pending {
                        waiting_for: String::new(),
                    },
                    machine::Input::PortConflict {
                        reason: conflict.reason,
                    },
                );
                self.log_effects(&effects);
                let reason = next.reason().map(str::to_owned);
                self.set(|s| {
                    s.state = next.proc_state();
                    s.reason = reason;
                    s.port_conflict = true;
                    s.pid = None;
                    s.pgid = None;
                    s.waiting_for = None;
                });
                return Mode::Idle;
            }
        }
        let log_offset = std::fs::metadata(&self.log).map_or(0, |m| m.len());
        // Spawning waits for the child's `exec`; a few run side by side on worker
        // threads so that bringing up hundreds of processes uses every core.
        let spawned = {
            let _slot = self.shared.spawn_slots.acquire().await.ok();
            let (spec, ctx, log, reaper) = (
                Arc::clone(&spec),
                Arc::clone(&self.ctx),
                self.log.clone(),
                Arc::clone(&self.shared.reaper),
            );
            let leaf = self.shared.scanner.membership().leaf(&spec.name);
            let record = spec
                .oneshot
                .then(|| (self.shared.paths.run_file(&spec.name), self.hash.clone()));
            tokio::task::spawn_blocking(move || {
                // A oneshot's run is on disk (fsync) before it is spawned, and runs under a
                // waiting parent that records its exit: a supervisor SIGKILL at any moment
                // neither runs it twice nor loses how it ended (`registry::runs`).
                let waiter = match &record {
                    Some((path, hash)) => {
                        registry::runs::write(path, &registry::runs::RunRecord::starting(hash))?;
                        Some(spawn::Waiter { record: path, hash })
                    }
                    None => None,
                };
                spawn::spawn(
                    &spec,
                    &spec.command,
                    &ctx,
                    &log,
                    &reaper,
                    leaf.as_deref(),
                    waiter.as_ref(),
                )
            })
            .await
            .unwrap_or_else(|err| Err(std::io::Error::other(err)))
        };
        let child = match spawned {
            Ok(child) => child,
            Err(err) => {
                let (next, effects) = machine::transition(
                    &spec,
                    &mut self.counters(),
                    machine::State::Pending {
                        waiting_for: String::new(),
                    },
                    machine::Input::SpawnFailed {
                        reason: err.to_string(),
                    },
                );
                self.log_effects(&effects);
                let reason = next.reason().map(str::to_owned);
                self.set(|s| {
                    s.state = next.proc_state();
                    s.reason = reason;
                    s.pid = None;
                    s.pgid = None;
                });
                return Mode::Idle;
            }
        };
        let pid = child.pid;
        self.set(|s| s.port_conflict = false);
        // The `[procs] started pid N` line was written by the child itself, before its
        // `exec`, so it precedes everything the program prints.
        let checked = has_health(&spec);
        let settling = settles(&spec);
        let start_time = child.start_time;
        let (next, _) = machine::transition(
            &spec,
            &mut self.counters(),
            machine::State::Pending {
                waiting_for: String::new(),
            },
            machine::Input::Spawned { pid },
        );
        // A `daemon: true` process is not ready before its daemon is known.
        let state = if spec.daemon {
            ProcState::Starting
        } else {
            next.proc_state()
        };
        self.set(|s| {
            s.state = state;
            if s.state == ProcState::Running {
                s.ready_once = true;
            }
            s.reason = None;
            s.pid = Some(pid);
            s.pgid = Some(pid);
            s.start_time = Some(start_time);
            s.started_at = Some(registry::now_rfc3339());
            s.spawn_seq = machine::next_spawn_seq();
            s.started_once = true;
            s.exit_code = None;
            s.signal = None;
            s.waiting_for = if spec.daemon {
                Some(DAEMON_WAITING.to_owned())
            } else if checked {
                health::describe(&spec)
            } else if settling {
                Some(format!("it to stay up {}", human(spec.ready_after)))
            } else {
                None
            };
        });
        let mut run = self.watch_running(pid, Exit::Child(child.exit), log_offset, false);
        if spec.daemon {
            // Ready is decided once the daemon is known (`Self::daemon_known`).
        } else if settling {
            run.ready_at = Some(run.started + spec.ready_after);
        } else if !checked {
            run.healthy_once = true;
        }
        Mode::Running(run)
    }

    fn watch_running(&self, pid: i32, exit: Exit, log_offset: u64, passed: bool) -> Running {
        let spec = &self.spec;
        let (probes, start_deadline) = if has_health(spec) {
            let (tx, rx) = mpsc::channel(4);
            let task = ProbeTask {
                spec: Arc::clone(spec),
                ctx: Arc::clone(&self.ctx),
                reaper: Arc::clone(&self.shared.reaper),
                log: self.log.clone(),
                log_offset,
                pid,
                scanner: Arc::clone(&self.shared.scanner),
                passed,
            };
            let join = tokio::spawn(health::run(task, tx));
            let limit = spec
                .healthcheck
                .as_ref()
                .map_or(crate::config::model::defaults::START_TIMEOUT, |c| {
                    c.start_timeout
                });
            (Some((join, rx)), Some(Instant::now() + limit))
        } else {
            (None, None)
        };
        Running {
            pid,
            exit,
            started: Instant::now(),
            log_offset,
            probes,
            healthy_once: false,
            fails_in_row: 0,
            start_deadline,
            daemonized: false,
            early_verdict: None,
            ready_at: None,
        }
    }

    /// Take over a live process the previous supervisor started (its verified pid), in the
    /// state the machine gives it (`Input::Adopted`).
    fn adopt(
        &mut self,
        pid: i32,
        start_time: u64,
        started_at: Option<String>,
        restarts: u32,
        was: machine::Recorded,
    ) -> Mode {
        // Opened only if the pid is still the process that started at the recorded time: a
        // pid reused since the registry was read is never watched or signalled.
        let Ok(Some(fd)) = PidFd::open_verified(pid, start_time) else {
            return Mode::Idle;
        };
        let (next, effects) = machine::transition(
            &self.spec,
            &mut self.counters(),
            machine::State::Stopped { reason: None },
            machine::Input::Adopted { pid, was },
        );
        self.log_effects(&effects);
        let state = next.proc_state();
        let reason = next.reason().map(str::to_owned);
        let now_ready = matches!(state, ProcState::Running | ProcState::Healthy);
        let spec = Arc::clone(&self.spec);
        // A oneshot's program adopted after its waiting parent was killed stays in that
        // parent's group; everything else adopted leads its own.
        let group = if spec.oneshot {
            crate::platform::stat(pid).map_or(pid, |st| st.pgid)
        } else {
            pid
        };
        self.set(|s| {
            s.state = state;
            s.reason = reason;
            s.pid = Some(pid);
            s.pgid = Some(group);
            s.start_time = Some(start_time);
            s.started_at = started_at;
            s.restarts = restarts;
            s.started_once = true;
            s.ready_once = now_ready && !spec.oneshot;
            s.waiting_for = if state == ProcState::Starting {
                health::describe(&spec)
                    .or_else(|| Some(format!("it to stay up {}", human(spec.ready_after))))
            } else {
                None
            };
        });
        // A check that has not passed yet reads this run's output from its first line (a
        // ready line printed while no supervisor watched counts); one that passed is not
        // looked for again.
        let log_offset = if state == ProcState::Starting {
            run_start_offset(&self.log, pid)
        } else {
            None
        }
        .unwrap_or_else(|| std::fs::metadata(&self.log).map_or(0, |m| m.len()));
        // An unhealthy process had passed its check in this run (then failed it): its
        // probes go on at `interval`, without a start timeout, until one passes again.
        let unhealthy = state == ProcState::Unhealthy;
        let passed = state == ProcState::Healthy || unhealthy;
        let mut run = self.watch_running(pid, Exit::Adopted(fd), log_offset, passed);
        // The pid a `daemon: true` process recorded is its daemon's.
        run.daemonized = spec.daemon;
        if passed {
            run.start_deadline = None;
        }
        run.healthy_once = now_ready || unhealthy;
        if state == ProcState::Starting && !has_health(&spec) {
            run.ready_at = Some(run.started + spec.ready_after);
        }
        Mode::Running(run)
    }

    /// A oneshot that ended while no supervisor watched: adopted, then its learned exit goes
    /// through the machine like any exit.
    fn adopted_end(
        &mut self,
        exit: Option<ExitInfo>,
        seen: bool,
        stopped: bool,
        started_at: Option<String>,
        restarts: u32,
    ) -> Mode {
        let (code, signal) = match exit {
            Some(ExitInfo::Code(c)) => (Some(c), None),
            Some(ExitInfo::Signal(s)) => (None, Some(s)),
            None => (None, None),
        };
        if stopped {
            // Stopped by request before the supervisor died: still stopped.
            self.set(|s| {
                s.state = ProcState::Stopped;
                s.started_at = started_at;
                s.restarts = restarts;
                s.started_once = true;
                s.exited_once = true;
                s.exit_code = code;
                s.signal = signal;
            });
            return Mode::Idle;
        }
        let mut counters = self.counters();
        counters.restarts = restarts;
        let (adopted, effects) = machine::transition(
            &self.spec,
            &mut counters,
            machine::State::Stopped { reason: None },
            machine::Input::Adopted {
                pid: 0,
                was: machine::Recorded::NotReady,
            },
        );
        drop(effects);
        let reason = exit.map_or_else(
            || "exited (status unknown: its waiting parent was killed)".to_owned(),
            exit_reason,
        );
        let success = machine::exit_succeeded(&self.spec.success_exit_codes, exit);
        let facts = machine::ExitFacts {
            reason: if seen {
                reason
            } else {
                format!("{reason} while no supervisor was running")
            },
            success,
            uptime: Duration::ZERO,
            port_in_use: None,
            seed: backoff::seed(),
        };
        let (next, effects) = machine::transition(
            &self.spec,
            &mut counters,
            adopted,
            machine::Input::Exited(facts),
        );
        self.quick_failures = counters.quick_failures;
        self.log_effects(&effects);
        let state = next.proc_state();
        let reason = next.reason().map(str::to_owned);
        self.set(|s| {
            s.state = state;
            s.reason = reason;
            s.started_at = started_at;
            s.restarts = restarts;
            s.started_once = true;
            s.exited_once = true;
            s.exit_code = code;
            s.signal = signal;
        });
        match next {
            machine::State::Backoff { delay, .. } => Mode::Backoff(Instant::now() + delay),
            _ => Mode::Idle,
        }
    }

    async fn running(&mut self, mut run: Running) -> Mode {
        loop {
            let deadline = run.start_deadline;
            let ready_at = run.ready_at;
            let exit = async {
                match &mut run.exit {
                    Exit::Child(rx) => rx.await.ok(),
                    Exit::Adopted(fd) => {
                        let _ = fd.exited().await;
                        None
                    }
                }
            };
            tokio::select! {
                info = exit => return self.on_exit(run, info).await,
                cmd = self.rx.recv() => match cmd {
                    None => return Mode::Exit,
                    Some(cmd) => return self.on_cmd(cmd, Some(run)).await,
                },
                verdict = async {
                    match run.probes.as_mut() {
                        Some((_, rx)) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Some(verdict) = verdict
                        && let Some(next) = self.on_verdict(&mut run, verdict).await
                    {
                        return next;
                    }
                }
                () = async {
                    match ready_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    run.ready_at = None;
                    let (next, _) = machine::transition(
                        &self.spec,
                        &mut self.counters(),
                        machine::State::Starting { pid: run.pid, last_check: None },
                        machine::Input::StayedUp,
                    );
                    if next.proc_state() == ProcState::Running {
                        run.healthy_once = true;
                        self.set(|s| {
                            s.state = ProcState::Running;
                            s.ready_once = true;
                            s.waiting_for = None;
                        });
                    }
                }
                () = async {
                    match deadline {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    let last_check = self.status.borrow().waiting_for.clone();
                    let (next, effects) = machine::transition(
                        &self.spec,
                        &mut self.counters(),
                        machine::State::Starting { pid: run.pid, last_check },
                        machine::Input::StartTimeout,
                    );
                    self.log_effects(&effects);
                    if effects.contains(&machine::Effect::StopTree) {
                        self.stop(Some(run), None).await;
                    }
                    let reason = next.reason().map(str::to_owned);
                    self.set(|s| { s.state = next.proc_state(); s.reason = reason; });
                    return Mode::Idle;
                }
            }
        }
    }

    async fn on_verdict(&mut self, run: &mut Running, verdict: Verdict) -> Option<Mode> {
        if self.spec.daemon && !run.daemonized {
            run.early_verdict = Some(verdict);
            return None;
        }
        let status = self.status.borrow().clone();
        let current = if !run.healthy_once {
            machine::State::Starting {
                pid: run.pid,
                last_check: None,
            }
        } else if status.state == ProcState::Unhealthy {
            machine::State::Unhealthy {
                pid: run.pid,
                reason: status.reason.clone().unwrap_or_default(),
            }
        } else {
            machine::State::Healthy {
                pid: run.pid,
                fails_in_row: run.fails_in_row,
            }
        };
        let input = match verdict {
            Verdict::Pass => machine::Input::ProbePass,
            Verdict::Fail(why) => machine::Input::ProbeFail(why),
        };
        let (next, effects) = machine::transition(&self.spec, &mut self.counters(), current, input);
        self.log_effects(&effects);
        match next {
            machine::State::Starting { last_check, .. } => {
                self.set(|s| s.waiting_for = last_check);
                None
            }
            machine::State::Healthy { fails_in_row, .. } => {
                run.fails_in_row = fails_in_row;
                run.start_deadline = None;
                run.healthy_once = true;
                if status.state != ProcState::Healthy {
                    self.set(|s| {
                        s.state = ProcState::Healthy;
                        s.reason = None;
                        s.waiting_for = None;
                        s.ready_once = true;
                    });
                }
                None
            }
            machine::State::Unhealthy { reason, .. } => {
                if status.state != ProcState::Unhealthy {
                    self.set(|s| {
                        s.state = ProcState::Unhealthy;
                        s.reason = Some(reason);
                    });
                }
                if !effects.contains(&machine::Effect::StopTree) {
                    return None;
                }
                let old = std::mem::replace(
                    run,
                    Running {
                        pid: 0,
                        exit: Exit::Child(oneshot::channel().1),
                        started: Instant::now(),
                        log_offset: 0,
                        probes: None,
                        healthy_once: false,
                        fails_in_row: 0,
                        start_deadline: None,
                        daemonized: false,
                        early_verdict: None,
                        ready_at: None,
                    },
                );
                self.stop(Some(old), None).await;
                self.set(|s| s.restarts += 1);
                Some(self.start_child().await)
            }
            _ => None,
        }
    }

    /// Did the exited run leave anything: its process group, or a member? A run this
    /// supervisor spawned into its cgroup leaf (or that run's daemon) has every process it
    /// made in that leaf — the kernel keeps a process and everything it forks in its cgroup
    /// — so the leaf's `populated` flag answers, without reading every process's
    /// environment and stat; any other run (adopted, lineage mode, a leaf that is gone)
    /// asks the membership's full scan.
    fn run_left_members(&self, run: &Running) -> bool {
        if crate::platform::group_exists(run.pid) {
            return true;
        }
        let spawned_here = matches!(run.exit, Exit::Child(_)) || run.daemonized;
        if spawned_here
            && let Some(leaf) = self.shared.scanner.membership().leaf(&self.spec.name)
            && crate::platform::cgroup::exists(&leaf)
        {
            return crate::platform::cgroup::is_populated(&leaf);
        }
        !self
            .shared
            .scanner
            .members_of(&self.ctx.project_id, &self.spec.name, None, Instant::now())
            .is_empty()
    }

    async fn on_exit(&mut self, mut run: Running, info: Option<ExitInfo>) -> Mode {
        // A oneshot's waiting parent recorded the program's real exit: it is the truth (an
        // adopted one's exit is known only from there).
        let record = if self.spec.oneshot {
            let start_time = self.status.borrow().start_time.unwrap_or(0);
            registry::runs::read(&self.shared.paths.run_file(&self.spec.name))
                .filter(|rec| rec.is_run_of(run.pid, start_time))
        } else {
            None
        };
        // The waiting parent was killed (SIGKILL) before it recorded an exit, and its program
        // lives on: the program is watched from now on (by a verified pidfd), never left
        // running unsupervised for a later `up` to run again; its exit status will be unknown.
        if let Some(rec) = &record
            && rec.state == registry::runs::RunState::Running
            && rec.pid == Some(run.pid)
            && let Some((pid, start_time)) = rec.program_alive()
            && let Ok(Some(fd)) = PidFd::open_verified(pid, start_time)
        {
            self.event(&format!(
                "its waiting parent was killed; watching its program, pid {pid} (its exit status will be unknown)"
            ));
            self.set(|s| {
                s.pid = Some(pid);
                s.start_time = Some(start_time);
            });
            run.pid = pid;
            run.exit = Exit::Adopted(fd);
            return Mode::Running(run);
        }
        let info = record.and_then(|rec| rec.exit()).or(info);
        if self.spec.oneshot {
            self.mark_run_seen(run.pid, info, false).await;
        }
        if self.spec.daemon && matches!(info, Some(ExitInfo::Code(0))) {
            let main_start = self.status.borrow().start_time.unwrap_or(0);
            if run.daemonized {
                // The daemon exited 0 and left a successor: it was the intermediate of a
                // double fork (fork, setsid, fork, exit), not the daemon. A daemon that dies
                // (a signal, a failure) or leaves nothing is an exit like any other.
                let gone = run.pid;
                if self.take_daemon(&mut run, main_start, Duration::ZERO).await {
                    self.event(&format!(
                        "pid {gone} exited 0 and left pid {}: that is the daemon",
                        run.pid
                    ));
                    return Mode::Running(run);
                }
            } else {
                if self.take_daemon(&mut run, main_start, DAEMON_WAIT).await {
                    self.event(&format!(
                        "the main process exited 0; its daemon runs as pid {}",
                        run.pid
                    ));
                    return self.daemon_known(run).await;
                }
                self.event("`daemon: true`, but the main process exited 0 and left no daemon");
            }
        }
        if let Some((join, _)) = run.probes.take() {
            join.abort();
        }
        // A ready line written just before the exit counts: the probe may not have read
        // it yet, so the log of this run is read once more, to the end.
        if !run.healthy_once && self.ready_line_written(&run) {
            run.healthy_once = true;
            self.event("healthy");
            self.set(|s| {
                s.state = ProcState::Healthy;
                s.reason = None;
                s.waiting_for = None;
                s.ready_once = true;
            });
        }
        // The main process is gone; what it left in its group would be an orphan holding
        // ports and memory. A long-running process's tree goes with it (and a restart
        // waits for that). A oneshot may legitimately leave a daemon behind (`pg_ctl
        // start`): that stays, and is stopped with the stack.
        if !self.spec.oneshot && self.run_left_members(&run) {
            self.clear_leftovers(run.pid).await;
        }
        let _ = registry::write_pid_file(&self.shared.paths.pid_file(&self.spec.name), None);
        let spec = Arc::clone(&self.spec);
        let reason = info.map_or_else(
            || "exited (status unknown: adopted process)".to_owned(),
            exit_reason,
        );
        let success = machine::exit_succeeded(&spec.success_exit_codes, info);
        let (code, signal) = match info {
            Some(ExitInfo::Code(c)) => (Some(c), None),
            Some(ExitInfo::Signal(s)) => (None, Some(s)),
            None => (None, None),
        };
        let uptime = run.started.elapsed();
        // Exited before it was ready, and the log says an address was taken: name the port
        // and its holder instead of a bare exit code.
        let in_use = if !run.healthy_once && !success {
            let tail = read_after(&self.log, run.log_offset);
            ports::explain_early_exit(&spec, &self.ctx.project_id, &tail)
        } else {
            None
        };
        let early = !(run.healthy_once || (spec.oneshot && success));
        let shown = match &in_use {
            Some((why, _)) => format!("{reason}: {why}"),
            None => reason.clone(),
        };
        self.set(|s| {
            s.pid = None;
            s.pgid = None;
            s.start_time = None;
            s.exit_code = code;
            s.signal = signal;
            s.exited_once = true;
            s.waiting_for = None;
            if early {
                s.early_exit = Some(EarlyExit {
                    reason: shown,
                    log_offset: run.log_offset,
                });
            }
        });
        // What the exit leads to is the machine's decision; this only carries it out.
        let mut counters = machine::Counters {
            quick_failures: self.quick_failures,
            restarts: self.status.borrow().restarts,
        };
        let facts = machine::ExitFacts {
            reason,
            success,
            uptime,
            port_in_use: in_use,
            seed: backoff::seed(),
        };
        let (next, effects) = machine::transition(
            &spec,
            &mut counters,
            machine::State::Running { pid: run.pid },
            machine::Input::Exited(facts),
        );
        self.quick_failures = counters.quick_failures;
        let mut sleep = None;
        for effect in effects {
            match effect {
                machine::Effect::Log(line) => self.event(&line),
                machine::Effect::Sleep(delay) => sleep = Some(delay),
                machine::Effect::Spawn | machine::Effect::StopTree => {}
            }
        }
        let state = next.proc_state();
        let reason = next.reason().map(str::to_owned);
        let port_conflict = matches!(
            next,
            machine::State::Failed {
                port_conflict: true,
                ..
            }
        );
        match sleep {
            // The backoff branch counts the restart and runs the pre-flight.
            Some(delay) if delay.is_zero() => {
                self.set(|s| s.reason = reason);
                Mode::Backoff(Instant::now())
            }
            Some(delay) => {
                let at = std::time::SystemTime::now() + delay;
                self.set(|s| {
                    s.state = state;
                    s.reason = reason;
                    s.next_restart_at = Some(humantime::format_rfc3339_seconds(at).to_string());
                });
                Mode::Backoff(Instant::now() + delay)
            }
            None => {
                self.set(|s| {
                    s.state = state;
                    s.reason = reason;
                    if port_conflict {
                        s.port_conflict = true;
                    }
                });
                Mode::Idle
            }
        }
    }

    /// Find the daemon of a `daemon: true` process (see [`Self::find_daemon`]; the pid file
    /// waited for up to `wait`) and make it this run's pid: a member of the process from now
    /// on, whatever the mechanism (the probes, started for the main process, ask the
    /// membership). A daemon that is the supervisor's child (re-parented to the subreaper)
    /// is watched through the reaper, so that its exit status is known; any other through
    /// a pidfd. Returns whether one was found.
    async fn take_daemon(&mut self, run: &mut Running, main_start: u64, wait: Duration) -> bool {
        let reaper = Arc::clone(&self.shared.reaper);
        let me = std::process::id() as i32;
        // Not the daemon: the one that just exited, and candidates gone before they could be
        // watched (a double fork's intermediate may exit between the look and the watch:
        // then its successor is looked for).
        let mut not: BTreeSet<i32> = run.daemonized.then_some(run.pid).into_iter().collect();
        let mut wait = wait;
        let (pid, start_time, seen, exit, guard) = loop {
            let Some((pid, start_time)) = self.find_daemon(main_start, wait, &not).await else {
                return false;
            };
            wait = Duration::ZERO;
            // From here until the daemon is watched, an exit reaped is kept for `watch`,
            // never dropped as an orphan's; a candidate seen alive (or as a zombie) after
            // this point has its status delivered.
            let guard = reaper.begin_spawn();
            let seen = crate::platform::stat(pid).filter(|st| st.start_time == start_time);
            let exit = match &seen {
                Some(st) if st.ppid == me => Some(Exit::Child(reaper.watch(pid))),
                _ => match PidFd::open_verified(pid, start_time) {
                    Ok(Some(fd))
                        if crate::platform::is_alive_same(
                            pid,
                            start_time,
                            &self.shared.boot_id,
                        ) =>
                    {
                        Some(Exit::Adopted(fd))
                    }
                    _ => None,
                },
            };
            match exit {
                Some(exit) => break (pid, start_time, seen, exit, guard),
                None => {
                    not.insert(pid);
                }
            }
        };
        drop(guard);
        self.shared
            .scanner
            .membership()
            .adopt(&self.spec.name, pid, start_time);
        let group = seen.map(|st| st.pgid);
        self.set(|s| {
            s.pid = Some(pid);
            s.pgid = group;
            s.start_time = Some(start_time);
        });
        run.pid = pid;
        run.exit = exit;
        run.daemonized = true;
        true
    }

    /// A `daemon: true` process's daemon is known: now it can be ready — through its check
    /// (a verdict given while the main process ran counts), after `ready_after`, or at once.
    async fn daemon_known(&mut self, mut run: Running) -> Mode {
        if has_health(&self.spec) {
            self.set(|s| s.waiting_for = health::describe(&self.spec));
            if let Some(verdict) = run.early_verdict.take()
                && let Some(next) = self.on_verdict(&mut run, verdict).await
            {
                return next;
            }
        } else if settles(&self.spec) {
            run.ready_at = Some(Instant::now() + self.spec.ready_after);
            let wait = format!("it to stay up {}", human(self.spec.ready_after));
            self.set(|s| s.waiting_for = Some(wait));
        } else {
            run.healthy_once = true;
            self.set(|s| {
                s.state = ProcState::Running;
                s.ready_once = true;
                s.waiting_for = None;
            });
        }
        Mode::Running(run)
    }

    /// The daemon a `daemon: true` process started, once its main process (started at
    /// `main_start`, in clock ticks) exited 0: the pid in `pid_file` when one is declared and
    /// that pid (its first line) is a member, else the oldest member. Members are the process's (cgroup,
    /// lineage, tags) and, without a cgroup, the supervisor's untagged children started after
    /// the main process (the daemon re-parented to the subreaper). Waits up to
    /// [`DAEMON_WAIT`] for the pid file to name a member.
    async fn find_daemon(
        &self,
        main_start: u64,
        wait: Duration,
        not: &BTreeSet<i32>,
    ) -> Option<(i32, u64)> {
        let deadline = Instant::now() + wait;
        // Watched before the first look, so that a write between that look and the wait is
        // not missed. A directory that cannot be watched (it does not exist) leaves the one
        // look at the exit.
        let watch = self
            .spec
            .pid_file
            .as_deref()
            .and_then(|file| crate::platform::FileChanges::entry(file).ok());
        loop {
            if let Some(found) = self.look_for_daemon(main_start, not.clone()).await {
                return Some(found);
            }
            if wait.is_zero() {
                return None;
            }
            // Without a pid file the look at the main's exit is the answer: whatever the
            // main forked is a member by then (in its leaf, or re-parented to us before
            // its exit is reaped).
            let watch = watch.as_ref()?;
            match tokio::time::timeout_at(deadline, watch.changed()).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) | Err(_) => return None,
            }
        }
    }

    /// One look for the daemon (see [`Self::find_daemon`]).
    async fn look_for_daemon(&self, main_start: u64, not: BTreeSet<i32>) -> Option<(i32, u64)> {
        let scanner = Arc::clone(&self.shared.scanner);
        let (project_id, name) = (self.ctx.project_id.clone(), self.spec.name.clone());
        let pid_file = self.spec.pid_file.clone();
        tokio::task::spawn_blocking(move || {
            let mut members = scanner.members_of(&project_id, &name, None, Instant::now());
            let table = crate::platform::process_table();
            let me = std::process::id() as i32;
            if scanner.membership().project_cgroup().is_none() {
                members.extend(
                    table
                        .iter()
                        .filter(|st| st.ppid == me && st.start_time >= main_start)
                        .filter(|st| {
                            crate::platform::environ_map(st.pid).is_none_or(|env| {
                                env.get(spawn::ENV_PROCESS).is_none_or(|n| *n == name)
                            })
                        })
                        .map(|st| st.pid),
                );
            }
            members.retain(|pid| !not.contains(pid));
            let start = |pid: i32| {
                table
                    .iter()
                    .find(|st| st.pid == pid)
                    .map(|st| (pid, st.start_time))
            };
            match pid_file {
                Some(file) => std::fs::read_to_string(file)
                    .ok()
                    .and_then(|t| t.lines().next()?.trim().parse::<i32>().ok())
                    .filter(|pid| members.contains(pid))
                    .and_then(start),
                None => members
                    .iter()
                    .filter_map(|&pid| start(pid))
                    .min_by_key(|&(pid, st)| (st, pid)),
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// A oneshot's run ended under this supervisor: say so in its run record (durably), so
    /// that a supervisor started after a crash does not take it for an exit nobody saw.
    async fn mark_run_seen(&self, pid: i32, exit: Option<ExitInfo>, stopped: bool) {
        let path = self.shared.paths.run_file(&self.spec.name);
        let start_time = self.status.borrow().start_time.unwrap_or(0);
        let _ = tokio::task::spawn_blocking(move || {
            registry::runs::mark_seen(&path, pid, start_time, exit, stopped);
        })
        .await;
    }

    /// Stop what is left of a tree whose main process exited.
    async fn clear_leftovers(&mut self, pgid: i32) {
        let target = stop::Target {
            project_id: &self.ctx.project_id,
            name: &self.spec.name,
            pid: None,
            pgid: Some(pgid),
            signal: Some(self.spec.stop_signal.number),
            timeout: self.spec.stop_timeout,
        };
        let report = stop::stop_tree(&target, None, &self.shared.scanner).await;
        let mut message = "stopped what the exited process left in its process group".to_owned();
        if report.killed {
            message.push_str(" (killed after the stop timeout)");
        }
        self.event(&message);
    }

    /// Stop what an exited, failed or completed run left behind (a oneshot's daemon, a
    /// self-daemonizing command's copies): every member the membership still finds.
    async fn stop_leftovers(&mut self, timeout: Option<Duration>) {
        let target = stop::Target {
            project_id: &self.ctx.project_id,
            name: &self.spec.name,
            pid: None,
            pgid: None,
            signal: Some(self.spec.stop_signal.number),
            timeout: timeout.unwrap_or(self.spec.stop_timeout),
        };
        let since = Instant::now();
        let found = self
            .shared
            .scanner
            .members_of(target.project_id, target.name, None, since);
        if found.is_empty() {
            return;
        }
        let report = stop::stop_tree(&target, None, &self.shared.scanner).await;
        let mut message = format!(
            "stopped what an earlier run left behind (pids {})",
            found
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        if !report.survivors.is_empty() {
            message = format!("leftovers survived the stop: pids {:?}", report.survivors);
        }
        self.event(&message);
    }

    /// Stop whatever runs (verified whole-tree stop) and become `stopped`.
    async fn stop(&mut self, run: Option<Running>, timeout: Option<Duration>) -> StopOutcome {
        let Some(mut run) = run else {
            self.stop_leftovers(timeout).await;
            let state = self.status.borrow().state;
            let waiting = match state {
                ProcState::Pending | ProcState::Starting => machine::State::Pending {
                    waiting_for: String::new(),
                },
                ProcState::Backoff => machine::State::Backoff {
                    delay: Duration::ZERO,
                    reason: String::new(),
                },
                _ => machine::State::Completed,
            };
            let (next, _) = machine::transition(
                &self.spec,
                &mut self.counters(),
                waiting,
                machine::Input::Stop,
            );
            if next.proc_state() == ProcState::Stopped {
                self.set(|s| {
                    s.state = ProcState::Stopped;
                    s.reason = None;
                    s.waiting_for = None;
                    s.next_restart_at = None;
                });
            }
            return StopOutcome::default();
        };
        if let Some((join, _)) = run.probes.take() {
            join.abort();
        }
        let spec = Arc::clone(&self.spec);
        self.set(|s| {
            s.state = ProcState::Stopping;
            s.waiting_for = None;
        });
        let signal = match &spec.stop_command {
            Some(command) => {
                self.event(&format!("stopping with {}", spawn::describe(command)));
                if let Err(err) = spawn::spawn_helper(
                    &spec,
                    command,
                    &self.ctx,
                    Some(&self.log),
                    &self.shared.reaper,
                ) {
                    self.event(&format!(
                        "cannot run the stop command: {err}; sending {}",
                        spec.stop_signal.name
                    ));
                    Some(spec.stop_signal.number)
                } else {
                    None
                }
            }
            None => Some(spec.stop_signal.number),
        };
        // A oneshot's program watched after its waiting parent was killed is in that
        // parent's group (which outlives it): the stop signals that group.
        let pgid = if spec.oneshot {
            self.status.borrow().pgid.unwrap_or(run.pid)
        } else {
            run.pid
        };
        let target = stop::Target {
            project_id: &self.ctx.project_id,
            name: &spec.name,
            pid: Some(run.pid),
            pgid: Some(pgid),
            signal,
            timeout: timeout.unwrap_or(spec.stop_timeout),
        };
        let report = match &mut run.exit {
            Exit::Child(rx) => stop::stop_tree(&target, Some(rx), &self.shared.scanner).await,
            Exit::Adopted(_) => stop::stop_tree(&target, None, &self.shared.scanner).await,
        };
        let _ = registry::write_pid_file(&self.shared.paths.pid_file(&spec.name), None);
        if spec.oneshot {
            self.mark_run_seen(run.pid, report.exit, true).await;
        }
        let killed_after = report.killed.then_some(target.timeout);
        let mut message = match report.exit {
            Some(info) => format!("stopped ({})", exit_reason(info)),
            None => "stopped".to_owned(),
        };
        if report.killed {
            message.push_str(&format!(
                "; killed after the {} stop timeout",
                human(target.timeout)
            ));
        }
        let (next, effects) = machine::transition(
            &spec,
            &mut self.counters(),
            machine::State::Stopping { pid: run.pid },
            machine::Input::StopDone {
                message,
                survivors: report.survivors.clone(),
            },
        );
        self.log_effects(&effects);
        let reason = next.reason().map(str::to_owned);
        self.set(|s| {
            s.state = ProcState::Stopped;
            s.reason.clone_from(&reason);
            s.pid = None;
            s.pgid = None;
            s.start_time = None;
            s.waiting_for = None;
            s.next_restart_at = None;
        });
        StopOutcome {
            survivors: report.survivors,
            killed_after,
        }
    }
}
