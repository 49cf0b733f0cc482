//! One actor per process: the only owner of that process's child.
//!
//! Owns: the process's state machine (SPEC §2), its child (spawned here or adopted),
//! its probes, its restarts. It learns about exits from the reaper (or a pidfd for an
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
use crate::config::{Condition, Process, RestartPolicy};
use crate::control::protocol::Event;
use crate::paths::Paths;
use crate::platform::{ExitInfo, PidFd};
use crate::registry::{self, ProcState};
use crate::stop::{self, Scanner};

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
            changed_at: Some(registry::now_rfc3339()),
        }
    }
}

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

/// How long a `daemon: true` process's daemon (or its pid file) may take to appear after the
/// main process exited 0.
const DAEMON_WAIT: Duration = Duration::from_secs(10);
/// How often the daemon's pid file is looked at meanwhile.
const DAEMON_POLL: Duration = Duration::from_millis(20);

/// A dependency as seen by a pending dependent.
pub struct DepWatch {
    pub name: String,
    pub condition: Condition,
    pub has_health: bool,
    pub rx: watch::Receiver<Status>,
}

/// How a stop ended, for the requester.
#[derive(Debug, Clone, Default)]
pub struct StopOutcome {
    pub survivors: Vec<i32>,
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

/// A live process found in the registry to adopt instead of starting anew.
#[derive(Debug, Clone)]
pub struct Adopt {
    pub pid: i32,
    pub start_time: u64,
    pub started_at: Option<String>,
    pub restarts: u32,
}

/// Does `spec` have something that decides health (a check, or declared ports)?
pub fn has_health(spec: &Process) -> bool {
    spec.healthcheck.is_some() || !spec.ports.is_empty()
}

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
    let actor = Actor {
        spec: Arc::clone(&spec),
        ctx,
        shared,
        log,
        status: status_tx,
        rx,
        quick_failures: 0,
        kill_port_owners: false,
    };
    let task = tokio::spawn(actor.run(adopt));
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
    healthy_once: bool,
    fails_in_row: u32,
    start_deadline: Option<Instant>,
    /// `daemon: true`: the main process exited 0 and `pid` is now its daemon.
    daemonized: bool,
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
    ctx: Arc<Context>,
    shared: Arc<Shared>,
    log: PathBuf,
    status: watch::Sender<Status>,
    rx: mpsc::UnboundedReceiver<Cmd>,
    quick_failures: u32,
    /// Set by a `Start` from `up --kill-port-owners`; consumed by the next pre-flight.
    kill_port_owners: bool,
}

enum DepState {
    Met,
    Waiting(String),
    Failed(String),
}

fn dep_state(dep: &DepWatch) -> DepState {
    let s = dep.rx.borrow();
    let name = &dep.name;
    if s.state == ProcState::Failed
        && !(matches!(dep.condition, Condition::Completed) && s.exited_once)
        && !(matches!(dep.condition, Condition::Started) && s.started_once)
    {
        return DepState::Failed(format!("dependency `{name}` failed"));
    }
    match dep.condition {
        Condition::Started if s.started_once => DepState::Met,
        Condition::Started => DepState::Waiting(format!("`{name}` to start")),
        Condition::Healthy => {
            let ok = if dep.has_health {
                s.state == ProcState::Healthy
            } else {
                s.state == ProcState::Running
            };
            if ok || s.state == ProcState::Completed {
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

fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
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

    async fn run(mut self, adopt: Option<Adopt>) {
        let mut mode = match adopt {
            Some(adopt) => self.adopt(&adopt),
            None => Mode::Idle,
        };
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
                            self.set(|s| { s.restarts += 1; s.next_restart_at = None; });
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
                    self.quick_failures = 0;
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
            let mut waiting = Vec::new();
            for dep in &mut deps {
                dep.rx.borrow_and_update();
                match dep_state(dep) {
                    DepState::Met => {}
                    DepState::Waiting(what) => waiting.push(what),
                    DepState::Failed(reason) => {
                        self.event(&format!("not started: {reason}"));
                        self.set(|s| {
                            s.state = ProcState::Failed;
                            s.reason = Some(reason);
                            s.waiting_for = None;
                        });
                        return Mode::Idle;
                    }
                }
            }
            if waiting.is_empty() {
                self.set(|s| s.waiting_for = None);
                return self.start_child().await;
            }
            let what = waiting.join(", ");
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
                self.event(&format!("not started: {}", conflict.reason));
                self.set(|s| {
                    s.state = ProcState::Failed;
                    s.reason = Some(conflict.reason);
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
            tokio::task::spawn_blocking(move || {
                spawn::spawn(&spec, &spec.command, &ctx, &log, &reaper, leaf.as_deref())
            })
            .await
            .unwrap_or_else(|err| Err(std::io::Error::other(err)))
        };
        let child = match spawned {
            Ok(child) => child,
            Err(err) => {
                let reason = format!("cannot start: {err}");
                self.event(&reason);
                self.set(|s| {
                    s.state = ProcState::Failed;
                    s.reason = Some(reason);
                    s.pid = None;
                    s.pgid = None;
                });
                return Mode::Idle;
            }
        };
        let pid = child.pid;
        self.set(|s| s.port_conflict = false);
        self.event(&format!("started pid {pid}"));
        let checked = has_health(&spec);
        let start_time = child.start_time;
        self.set(|s| {
            s.state = if checked {
                ProcState::Starting
            } else {
                ProcState::Running
            };
            s.reason = None;
            s.pid = Some(pid);
            s.pgid = Some(pid);
            s.start_time = Some(start_time);
            s.started_at = Some(registry::now_rfc3339());
            s.started_once = true;
            s.exit_code = None;
            s.signal = None;
            s.waiting_for = if checked {
                health::describe(&spec)
            } else {
                None
            };
        });
        Mode::Running(self.watch_running(pid, Exit::Child(child.exit), log_offset))
    }

    fn watch_running(&self, pid: i32, exit: Exit, log_offset: u64) -> Running {
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
        }
    }

    fn adopt(&mut self, adopt: &Adopt) -> Mode {
        let Ok(Some(fd)) = PidFd::open(adopt.pid) else {
            return Mode::Idle;
        };
        self.event(&format!(
            "adopted pid {} after a supervisor restart",
            adopt.pid
        ));
        let checked = has_health(&self.spec);
        self.set(|s| {
            s.state = if checked {
                ProcState::Starting
            } else {
                ProcState::Running
            };
            s.pid = Some(adopt.pid);
            s.pgid = Some(adopt.pid);
            s.start_time = Some(adopt.start_time);
            s.started_at.clone_from(&adopt.started_at);
            s.restarts = adopt.restarts;
            s.started_once = true;
            s.waiting_for = if checked {
                health::describe(&self.spec)
            } else {
                None
            };
        });
        let log_offset = std::fs::metadata(&self.log).map_or(0, |m| m.len());
        Mode::Running(self.watch_running(adopt.pid, Exit::Adopted(fd), log_offset))
    }

    async fn running(&mut self, mut run: Running) -> Mode {
        loop {
            let deadline = run.start_deadline;
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
                    match deadline {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    let limit = self.spec.healthcheck.as_ref()
                        .map_or(crate::config::model::defaults::START_TIMEOUT, |c| c.start_timeout);
                    let last = self.status.borrow().waiting_for.clone().unwrap_or_default();
                    let reason = format!("not healthy within {} (last check: {last})", human(limit));
                    self.event(&reason);
                    self.stop(Some(run), None).await;
                    self.set(|s| { s.state = ProcState::Failed; s.reason = Some(reason); });
                    return Mode::Idle;
                }
            }
        }
    }

    async fn on_verdict(&mut self, run: &mut Running, verdict: Verdict) -> Option<Mode> {
        let state = self.status.borrow().state;
        match verdict {
            Verdict::Pass => {
                run.fails_in_row = 0;
                run.start_deadline = None;
                if !run.healthy_once {
                    self.event("healthy");
                }
                run.healthy_once = true;
                if state != ProcState::Healthy {
                    self.set(|s| {
                        s.state = ProcState::Healthy;
                        s.reason = None;
                        s.waiting_for = None;
                    });
                }
                None
            }
            Verdict::Fail(why) => {
                if !run.healthy_once {
                    self.set(|s| s.waiting_for = Some(why));
                    return None;
                }
                run.fails_in_row += 1;
                let retries = self
                    .spec
                    .healthcheck
                    .as_ref()
                    .map_or(3, |c| c.retries.max(1));
                if run.fails_in_row < retries || state == ProcState::Unhealthy {
                    return None;
                }
                let reason = format!("unhealthy: {why}");
                self.event(&reason);
                self.set(|s| {
                    s.state = ProcState::Unhealthy;
                    s.reason = Some(reason);
                });
                if self.spec.restart == RestartPolicy::No {
                    return None;
                }
                self.event("restarting because the process turned unhealthy");
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
                    },
                );
                self.stop(Some(old), None).await;
                self.set(|s| s.restarts += 1);
                Some(self.start_child().await)
            }
        }
    }

    async fn on_exit(&mut self, mut run: Running, info: Option<ExitInfo>) -> Mode {
        if self.spec.daemon && !run.daemonized && matches!(info, Some(ExitInfo::Code(0))) {
            let main_start = self.status.borrow().start_time.unwrap_or(0);
            if let Some((pid, start_time)) = self.find_daemon(main_start).await
                && let Ok(Some(fd)) = PidFd::open(pid)
                && crate::platform::is_alive_same(pid, start_time, &self.shared.boot_id)
            {
                self.event(&format!(
                    "the main process exited 0; its daemon runs as pid {pid}"
                ));
                let pgid = crate::platform::stat(pid).map(|st| st.pgid);
                self.set(|s| {
                    s.pid = Some(pid);
                    s.pgid = pgid;
                    s.start_time = Some(start_time);
                });
                run.pid = pid;
                run.exit = Exit::Adopted(fd);
                run.daemonized = true;
                return Mode::Running(run);
            }
            self.event("`daemon: true`, but the main process exited 0 and left no daemon");
        }
        if let Some((join, _)) = run.probes.take() {
            join.abort();
        }
        // The main process is gone; what it left in its group would be an orphan holding
        // ports and memory. A long-running process's tree goes with it (and a restart
        // waits for that). A oneshot may legitimately leave a daemon behind (`pg_ctl
        // start`): that stays, and is stopped with the stack.
        if !self.spec.oneshot
            && (crate::platform::group_exists(run.pid)
                || !self
                    .shared
                    .scanner
                    .members_of(&self.ctx.project_id, &self.spec.name, None, Instant::now())
                    .is_empty())
        {
            self.clear_leftovers(run.pid).await;
        }
        let _ = registry::write_pid_file(&self.shared.paths.pid_file(&self.spec.name), None);
        let spec = Arc::clone(&self.spec);
        let reason = info.map_or_else(
            || "exited (status unknown: adopted process)".to_owned(),
            exit_reason,
        );
        let success = match info {
            Some(ExitInfo::Code(code)) => spec.success_exit_codes.contains(&code),
            _ => false,
        };
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
        let reason = match &in_use {
            Some((why, _)) => format!("{reason}: {why}"),
            None => reason,
        };
        self.set(|s| {
            s.pid = None;
            s.pgid = None;
            s.start_time = None;
            s.exit_code = code;
            s.signal = signal;
            s.exited_once = true;
            s.waiting_for = None;
        });
        if let Some((_, true)) = in_use {
            // A foreign holder: restarting cannot help (the next pre-flight would say the same).
            self.event(&reason);
            self.set(|s| {
                s.state = ProcState::Failed;
                s.reason = Some(reason);
                s.port_conflict = true;
            });
            return Mode::Idle;
        }
        if spec.oneshot && success {
            self.event(&format!("{reason}: completed"));
            self.set(|s| {
                s.state = ProcState::Completed;
                s.reason = None;
            });
            return Mode::Idle;
        }
        let restart = match spec.restart {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => !success,
            RestartPolicy::No => false,
        };
        if !restart {
            self.event(&reason);
            let state = if spec.oneshot {
                ProcState::Failed
            } else {
                ProcState::Exited
            };
            self.set(|s| {
                s.state = state;
                s.reason = Some(reason);
            });
            return Mode::Idle;
        }
        if uptime < spec.min_uptime {
            self.quick_failures += 1;
        } else {
            self.quick_failures = 0;
        }
        if self.quick_failures > spec.max_restarts {
            let restarts = self.status.borrow().restarts;
            let why = format!(
                "crash loop: {reason} {} times in a row within {} of starting ({restarts} restarts)",
                self.quick_failures,
                human(spec.min_uptime)
            );
            self.event(&why);
            self.set(|s| {
                s.state = ProcState::Failed;
                s.reason = Some(why);
            });
            return Mode::Idle;
        }
        let delay = backoff::delay(&spec.backoff, self.quick_failures.max(1), backoff::seed());
        let at = std::time::SystemTime::now() + delay;
        let why = format!("{reason}, restarting in {}", human(delay));
        self.event(&why);
        if delay.is_zero() {
            self.set(|s| {
                s.reason = Some(reason);
            });
            // The backoff branch counts the restart and runs the pre-flight.
            return Mode::Backoff(Instant::now());
        }
        self.set(|s| {
            s.state = ProcState::Backoff;
            s.reason = Some(why);
            s.next_restart_at = Some(humantime::format_rfc3339_seconds(at).to_string());
        });
        Mode::Backoff(Instant::now() + delay)
    }

    /// The daemon a `daemon: true` process started, once its main process (started at
    /// `main_start`, in clock ticks) exited 0: the pid in `pid_file` when one is declared and
    /// that pid is a member, else the oldest member. Members are the process's (cgroup,
    /// lineage, tags) and, without a cgroup, the supervisor's untagged children started after
    /// the main process (the daemon re-parented to the subreaper). Waits up to
    /// [`DAEMON_WAIT`] for the pid file to name a member.
    async fn find_daemon(&self, main_start: u64) -> Option<(i32, u64)> {
        let deadline = Instant::now() + DAEMON_WAIT;
        loop {
            let scanner = Arc::clone(&self.shared.scanner);
            let (project_id, name) = (self.ctx.project_id.clone(), self.spec.name.clone());
            let pid_file = self.spec.pid_file.clone();
            let found = tokio::task::spawn_blocking(move || {
                let mut members = scanner.members_of(&project_id, &name, None, Instant::now());
                let table = crate::platform::process_table();
                let me = std::process::id() as i32;
                if scanner.membership().project_cgroup().is_none() {
                    members.extend(
                        table
                            .iter()
                            .filter(|st| st.ppid == me && st.start_time >= main_start)
                            .filter(|st| {
                                crate::platform::environ_map(st.pid)
                                    .is_none_or(|env| !env.contains_key(spawn::ENV_PROCESS))
                            })
                            .map(|st| st.pid),
                    );
                }
                let start = |pid: i32| {
                    table
                        .iter()
                        .find(|st| st.pid == pid)
                        .map(|st| (pid, st.start_time))
                };
                match pid_file {
                    Some(file) => std::fs::read_to_string(file)
                        .ok()
                        .and_then(|t| t.trim().parse::<i32>().ok())
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
            .flatten();
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(DAEMON_POLL).await;
        }
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
            if matches!(
                state,
                ProcState::Pending | ProcState::Backoff | ProcState::Starting
            ) {
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
                let script = match command {
                    crate::config::Command::Shell(s) => s.clone(),
                    crate::config::Command::Argv(argv) => argv.join(" "),
                };
                self.event(&format!("stopping with `{script}`"));
                if let Err(err) = spawn::spawn_helper(
                    &spec,
                    &script,
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
        let target = stop::Target {
            project_id: &self.ctx.project_id,
            name: &spec.name,
            pid: Some(run.pid),
            pgid: Some(run.pid),
            signal,
            timeout: timeout.unwrap_or(spec.stop_timeout),
        };
        let report = match &mut run.exit {
            Exit::Child(rx) => stop::stop_tree(&target, Some(rx), &self.shared.scanner).await,
            Exit::Adopted(_) => stop::stop_tree(&target, None, &self.shared.scanner).await,
        };
        let _ = registry::write_pid_file(&self.shared.paths.pid_file(&spec.name), None);
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
        let reason = if report.survivors.is_empty() {
            None
        } else {
            let pids: Vec<String> = report.survivors.iter().map(ToString::to_string).collect();
            Some(format!("survived the stop: pids {}", pids.join(", ")))
        };
        self.event(reason.as_deref().unwrap_or(&message));
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
        }
    }
}
