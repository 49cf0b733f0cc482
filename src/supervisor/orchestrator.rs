//! The orchestrator: the supervisor's one owner of "what should run".
//!
//! Owns: the set of actors (one per process of the current config), reconciliation of a
//! new config against them (`up`), ordered stops (`down`, `stop`), and the registry
//! writer. Lifecycle requests are serialized by one async lock for their reconcile
//! phase; waiting for readiness happens outside it, so `status`-like requests and a
//! second `up` never queue behind a slow health check.
//! Invariant: the registry on disk is written only from here, from a snapshot of the
//! actors' published statuses, coalescing bursts of changes into one write.
//! State: everything the orchestrator knows (the actors, the config, the adoptables, the
//! supervisor record) is one [`State`] behind one lock, taken for short sections that never
//! `.await` and never do I/O; a poisoned lock is taken over, not skipped (every section
//! leaves the state whole). The registry writer is a task that alone owns what was written
//! (the pid files), so writes never contend with requests.

mod restart;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;

use super::adopt::{self, Adoptable};
use super::rotate;
use super::service::{self, Adopt, Cmd, DepWatch, Handle, Shared, Status, StopOutcome};
use super::spawn::Context;
use crate::config::graph::Graph;
use crate::config::{Condition, Config, Process};
use crate::control::protocol::{
    ErrorBody, Event, Outcome, ProcessOutcome, Response, Snapshot, UpRequest,
};
use crate::error::exit;
use crate::registry::{self, ProcState, ProcessRecord, Registry, SupervisorRecord};

/// Longest wait, after `up` saw a failure, for the dependents that fail with it to say so.
const CONSEQUENCES: Duration = Duration::from_secs(2);
/// Once one process of an `up` failed, how long the others get to settle (become ready
/// or fail too) so that the verdict names each one's real state, not a snapshot of the
/// moment of the first failure ("`typo` is pending" while it had exited 127).
const OTHERS_GRACE: Duration = Duration::from_secs(2);

/// Shortest pause between two background registry writes.
const WRITE_INTERVAL: Duration = Duration::from_millis(50);

/// What the orchestrator knows, behind its one lock.
struct State {
    services: BTreeMap<String, Handle>,
    config: Option<Config>,
    /// The environment of the last `procs up` (used by `start`/`restart`).
    env: BTreeMap<String, String>,
    supervisor: Option<SupervisorRecord>,
    /// The project's name and id.
    project: (String, String),
    /// Processes found running at startup, adopted by the first `up` (SPEC §5).
    adoptable: BTreeMap<String, Adoptable>,
}

/// A request for a registry write now, answered once it is on disk.
type WriteNow = oneshot::Sender<()>;

/// The supervisor's state.
pub struct Orchestrator {
    pub shared: Arc<Shared>,
    state: Mutex<State>,
    /// Serializes lifecycle operations (their reconcile phase); not a state lock.
    ops: tokio::sync::Mutex<()>,
    /// Requests to the registry writer task ([`Orchestrator::save_now`]).
    write_now: mpsc::UnboundedSender<WriteNow>,
    /// Set once a full `down` finished: the server stops and the supervisor exits.
    pub shutdown: Arc<Notify>,
    /// The log rotation policies of the current config, for the rotation task.
    pub log_policies: watch::Sender<rotate::Policies>,
    /// Bumped whenever the set of actors changed (subscribers then get a new snapshot).
    members: watch::Sender<u64>,
    /// `depends_on … restart: true`, and its pause during restart operations.
    cascades: restart::Cascades,
}

/// The pid each `pids/NAME.pid` holds, as the registry writer last wrote it.
type PidFiles = BTreeMap<String, Option<i32>>;

/// Write `registry` and bring `pids/NAME.pid` in line with it, touching only the pid files
/// whose pid changed. Pid files are written here, on the writer's thread, rather than by
/// the actor at spawn time: creating a file (a new inode) per spawn was a measurable part
/// of starting a large stack, on the one thread that spawns. Actors still remove a pid file
/// as soon as their process is gone.
fn write_registry(paths: &crate::paths::Paths, registry: &Registry, files: &mut PidFiles) {
    if let Err(err) = registry::save(&paths.state_file, registry) {
        tracing::error!("cannot write the registry: {err}");
    }
    for (name, rec) in &registry.processes {
        if files.get(name) == Some(&rec.pid) {
            continue;
        }
        let path = paths.pid_file(name);
        match registry::write_pid_file(&path, rec.pid) {
            Ok(()) => {
                files.insert(name.clone(), rec.pid);
            }
            Err(err) => tracing::warn!("cannot write {}: {err}", path.display()),
        }
    }
}

use crate::plan::config_hash;

use super::machine::{is_ready, settled_bad as is_settled_bad};

impl Orchestrator {
    pub fn new(shared: Arc<Shared>, project: String, project_id: String) -> Arc<Self> {
        let (write_now, requests) = mpsc::unbounded_channel();
        let orch = Arc::new(Self {
            shared,
            state: Mutex::new(State {
                services: BTreeMap::new(),
                config: None,
                env: BTreeMap::new(),
                supervisor: None,
                project: (project, project_id),
                adoptable: BTreeMap::new(),
            }),
            ops: tokio::sync::Mutex::new(()),
            write_now,
            shutdown: Arc::new(Notify::new()),
            log_policies: watch::Sender::new(rotate::Policies::new()),
            members: watch::Sender::new(0),
            cascades: restart::Cascades::new(),
        });
        orch.start_registry_writer(requests);
        orch
    }

    /// The one lock on the orchestrator's state. Never held across an `.await` (the guard
    /// is not `Send`, so the compiler refuses it) nor during I/O. A panic while it was held
    /// poisons it; every section leaves the state whole, so it is taken over.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The project's name as currently known.
    pub fn project_name(&self) -> String {
        self.state().project.0.clone()
    }

    /// Hand over what the previous supervisor left running.
    pub fn set_adoptable(&self, found: BTreeMap<String, Adoptable>) {
        self.state().adoptable = found;
    }

    /// Record (or clear, at shutdown) the supervisor in the registry's next snapshot.
    pub fn set_supervisor(&self, record: Option<SupervisorRecord>) {
        self.state().supervisor = record;
    }

    /// Keep `state.json` in step with the actors (a task started with the orchestrator, in
    /// the runtime): one write per burst of changes, and one
    /// right away for each [`Orchestrator::save_now`]. The task alone owns the pid files'
    /// bookkeeping, so writes are serialized without a lock.
    fn start_registry_writer(self: &Arc<Self>, mut requests: mpsc::UnboundedReceiver<WriteNow>) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut pid_files = PidFiles::default();
            let mut waiting: Vec<WriteNow> = Vec::new();
            loop {
                if waiting.is_empty() {
                    tokio::select! {
                        () = me.shared.dirty.notified() => {}
                        request = requests.recv() => match request {
                            Some(ack) => waiting.push(ack),
                            None => return,
                        },
                    }
                }
                while let Ok(ack) = requests.try_recv() {
                    waiting.push(ack);
                }
                let snapshot = me.snapshot();
                let paths = Arc::clone(&me.shared.paths);
                pid_files = tokio::task::spawn_blocking(move || {
                    write_registry(&paths, &snapshot, &mut pid_files);
                    pid_files
                })
                .await
                .unwrap_or_default();
                for ack in waiting.drain(..) {
                    let _ = ack.send(());
                }
                // At most one background write per WRITE_INTERVAL while changes keep
                // coming (a burst of 500 starts is a handful of writes, not hundreds of new
                // inodes); the changes of the pause are written right after it. A
                // `save_now` is served at once. Whatever a crash loses of that window is
                // found again through the processes' tags and the oneshots' run records.
                tokio::select! {
                    () = tokio::time::sleep(WRITE_INTERVAL) => {}
                    request = requests.recv() => if let Some(ack) = request {
                        waiting.push(ack);
                    },
                }
            }
        });
    }

    /// Ask the registry writer for a write (something outside the actors changed).
    pub fn mark_dirty(&self) {
        self.shared.dirty.notify_one();
    }

    /// The main pid of every process that runs, for the lineage record.
    pub fn mains(&self) -> Vec<(String, i32)> {
        self.state()
            .services
            .iter()
            .filter_map(|(name, h)| Some((name.clone(), h.status.borrow().pid?)))
            .collect()
    }

    /// Write the registry now and return once it is on disk (the registry writer task
    /// does it; before that task runs, or after it is gone, it is written here).
    pub async fn save_now(&self) {
        let (ack, written) = oneshot::channel();
        if self.write_now.send(ack).is_ok() && written.await.is_ok() {
            return;
        }
        let snapshot = self.snapshot();
        let paths = Arc::clone(&self.shared.paths);
        let _ = tokio::task::spawn_blocking(move || {
            write_registry(&paths, &snapshot, &mut PidFiles::default());
        })
        .await;
    }

    fn snapshot(&self) -> Registry {
        let state = self.state();
        let (project, project_id) = &state.project;
        let now = registry::now_rfc3339();
        let mut reg = Registry::new(project, &self.shared.paths.project_dir, project_id);
        reg.supervisor.clone_from(&state.supervisor);
        for (name, handle) in &state.services {
            let s = handle.status.borrow().clone();
            let mut rec = ProcessRecord::new(s.state, self.shared.paths.log_file(name));
            rec.reason = s.reason;
            rec.pid = s.pid;
            rec.pgid = s.pgid;
            rec.start_time = s.start_time;
            rec.boot_id = s.pid.map(|_| self.shared.boot_id.clone());
            rec.config_hash.clone_from(&handle.hash);
            rec.restarts = s.restarts;
            rec.exit_code = s.exit_code;
            rec.signal = s.signal;
            rec.ports = handle.spec.ports.iter().map(|p| p.port).collect();
            rec.oneshot = handle.spec.oneshot;
            rec.started_at = s.started_at;
            rec.updated_at = Some(now.clone());
            rec.next_restart_at = s.next_restart_at;
            rec.has_health = service::has_health(&handle.spec);
            rec.spec.clone_from(&handle.stored);
            reg.processes.insert(name.clone(), rec);
        }
        for (name, a) in &state.adoptable {
            reg.processes
                .entry(name.clone())
                .or_insert_with(|| a.record.clone());
        }
        drop(state);
        let membership = self.shared.scanner.membership();
        reg.cgroup = membership.existing_cgroup();
        reg.no_cgroup = membership.no_cgroup_reason().map(str::to_owned);
        reg.lineage = membership.lineage();
        if !reg.lineage.is_empty() {
            reg.lineage_boot_id = Some(self.shared.boot_id.clone());
        }
        reg
    }

    fn error(code: i32, message: String, hint: Option<String>) -> Response {
        Response::Error(ErrorBody {
            message,
            code,
            hint,
        })
    }

    /// Handle `up`: reconcile, start the selection, stream progress, answer.
    pub async fn up(self: &Arc<Self>, req: UpRequest, out: mpsc::Sender<Response>) {
        self.ensure_cascade();
        let graph = match Graph::new(&req.config) {
            Ok(graph) => graph,
            Err(err) => {
                let _ = out
                    .send(Self::error(exit::USAGE, err.to_string(), None))
                    .await;
                return;
            }
        };
        if let Some(name) = req
            .names
            .iter()
            .find(|n| !req.config.processes.contains_key(*n))
        {
            let err = crate::error::Error::UnknownProcess {
                name: name.clone(),
                file: req.config.file.clone(),
                known: req.config.processes.keys().cloned().collect(),
            };
            let _ = out.send(Response::Error((&err).into())).await;
            return;
        }
        let selection = crate::plan::selection(&req.config, &graph, &req.names, req.no_deps);
        let order: Vec<String> = graph.start_order();
        let mut events = self.shared.events.subscribe();
        let first_spawn = super::machine::spawn_mark();
        let notes = {
            let _guard = self.ops.lock().await;
            self.state().project.0.clone_from(&req.config.name);
            let ctx = Arc::new(Context {
                project: req.config.name.clone(),
                project_id: self.shared.paths.project_id.clone(),
                ambient_env: req.env.clone(),
            });
            // Before anything starts, so that a first burst of output is rotated too.
            let policies = rotate::policies(&req.config);
            self.log_policies.send_if_modified(|current| {
                let changed = *current != policies;
                *current = policies;
                changed
            });
            let notes = self
                .reconcile(&req.config, &order, &selection, &req, &ctx)
                .await;
            {
                let mut state = self.state();
                state.config = Some(req.config.clone());
                state.env.clone_from(&req.env);
            }
            notes
        };
        let wanted: Vec<String> = order
            .iter()
            .filter(|n| selection.contains(*n))
            .cloned()
            .collect();
        // A oneshot pulled in only as a dependency whose dependents all wait for
        // `completed` (any exit code) is done once it exited, whatever its code.
        let tolerated: BTreeSet<String> = wanted
            .iter()
            .filter(|name| !req.names.contains(*name))
            .filter(|name| req.config.processes.get(*name).is_some_and(|p| p.oneshot))
            .filter(|name| {
                let uses: Vec<Condition> = wanted
                    .iter()
                    .filter_map(|d| req.config.processes.get(d))
                    .flat_map(|d| {
                        d.depends_on
                            .iter()
                            .filter(|dep| dep.name == **name)
                            .map(|dep| dep.condition)
                    })
                    .collect();
                !uses.is_empty() && uses.iter().all(|c| *c == Condition::Completed)
            })
            .cloned()
            .collect();
        let ready = |spec: &Process, s: &Status| {
            is_ready(spec, s)
                || (tolerated.contains(&spec.name)
                    && s.exited_once
                    && !s.state.is_live()
                    && s.state != ProcState::Backoff)
        };
        let mut timed_out = false;
        if req.wait {
            let deadline = Instant::now() + Duration::from_millis(req.timeout_ms);
            let wait_end = relay_until(&mut events, &out, &selection, deadline, || {
                self.settled(&wanted, &ready)
            })
            .await;
            timed_out = wait_end == Relayed::Deadline;
            // A failure ended the wait: the others get a moment to settle too, so the
            // verdict is each one's real state (the restart policies go on meanwhile).
            if wait_end == Relayed::Done {
                let until = deadline.min(Instant::now() + OTHERS_GRACE);
                relay_until(&mut events, &out, &selection, until, || {
                    self.all_settled(&wanted, &ready)
                })
                .await;
            }
        }
        if req.wait && !timed_out {
            // A failure's consequences (dependents failing with it) are part of the verdict:
            // never report a dependent as pending that is about to fail.
            let until = Instant::now() + CONSEQUENCES;
            relay_until(&mut events, &out, &selection, until, || {
                !self.propagating(&wanted)
            })
            .await;
            while let Ok(ev) = events.try_recv() {
                if selection.contains(&ev.name) {
                    let _ = out.send(Response::Event(ev)).await;
                }
            }
        }
        // `--no-wait`: accepted and not already failed is success.
        let wait = req.wait;
        let mut outcome = self.outcome(&wanted, first_spawn, |spec, s| {
            ready(spec, s) || (!wait && !is_settled_bad(s))
        });
        outcome.notes = notes;
        outcome.notes.extend(self.port_notes(&wanted));
        outcome.timed_out = timed_out;
        // Whatever the CLI does next (`status`, a script reading state.json) sees this.
        self.save_now().await;
        let _ = out.send(Response::Done(outcome)).await;
    }

    /// Serve a subscription (`Request::Subscribe`): a snapshot, then every change, until
    /// the client hangs up (`out` closed). Events are whole statuses, so one that was
    /// queued before the snapshot was taken and arrives after it is corrected by the next.
    pub async fn subscribe(&self, out: mpsc::Sender<Response>) {
        let mut events = self.shared.events.subscribe();
        let mut members = self.members.subscribe();
        members.mark_unchanged();
        if out.send(self.stream_snapshot()).await.is_err() {
            return;
        }
        loop {
            let frame = tokio::select! {
                () = out.closed() => return,
                ev = events.recv() => match ev {
                    Ok(ev) => Response::Event(ev),
                    // Too slow a reader lost events: a snapshot makes it whole again.
                    Err(broadcast::error::RecvError::Lagged(_)) => self.stream_snapshot(),
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                changed = members.changed() => match changed {
                    Ok(()) => self.stream_snapshot(),
                    Err(_) => return,
                },
            };
            if out.send(frame).await.is_err() {
                return;
            }
        }
    }

    /// Every actor's status, in start order, as a subscription frame.
    fn stream_snapshot(&self) -> Response {
        let state = self.state();
        let project = state.project.0.clone();
        let order: Vec<String> = state
            .config
            .as_ref()
            .and_then(|c| Graph::new(c).ok())
            .map(|g| g.start_order())
            .unwrap_or_default();
        let mut processes = Vec::new();
        {
            let services = &state.services;
            let mut names: Vec<&String> =
                order.iter().filter(|n| services.contains_key(*n)).collect();
            names.extend(services.keys().filter(|n| !order.contains(n)));
            for name in names {
                if let Some(h) = services.get(name) {
                    processes.push(service::event(&h.spec, &h.status.borrow()));
                }
            }
        }
        Response::Snapshot(Snapshot {
            project,
            supervisor_pid: std::process::id() as i32,
            processes,
        })
    }

    /// What the port pre-flights of `names` did (`web: port 8080 is held by …: stopping it`).
    fn port_notes(&self, names: &[String]) -> Vec<String> {
        let state = self.state();
        let services = &state.services;
        names
            .iter()
            .filter_map(|name| Some((name, services.get(name)?)))
            .flat_map(|(name, h)| {
                let notes = h.status.borrow().port_notes.clone();
                notes.into_iter().map(move |n| format!("{name}: {n}"))
            })
            .collect()
    }

    /// Is a process of `wanted` still pending on a dependency that already failed (its
    /// actor is about to mark it failed)?
    fn propagating(&self, wanted: &[String]) -> bool {
        let state = self.state();
        let services = &state.services;
        wanted.iter().filter_map(|n| services.get(n)).any(|h| {
            h.status.borrow().state == ProcState::Pending
                && h.spec.depends_on.iter().any(|d| {
                    services.get(&d.name).is_some_and(|dh| {
                        matches!(
                            super::machine::condition(&d.name, d.condition, &dh.status.borrow()),
                            super::machine::DepState::Failed(_)
                        )
                    })
                })
        })
    }

    fn settled(&self, wanted: &[String], ready: &dyn Fn(&Process, &Status) -> bool) -> bool {
        let state = self.state();
        let services = &state.services;
        let mut all_ready = true;
        for name in wanted {
            let Some(h) = services.get(name) else {
                continue;
            };
            let s = h.status.borrow();
            let ok = ready(&h.spec, &s);
            if !ok && is_settled_bad(&s) {
                return true;
            }
            all_ready &= ok;
        }
        all_ready
    }

    /// Is every process of `wanted` either ready or settled without being ready?
    fn all_settled(&self, wanted: &[String], ready: &dyn Fn(&Process, &Status) -> bool) -> bool {
        let state = self.state();
        wanted.iter().all(|name| {
            state.services.get(name).is_none_or(|h| {
                let s = h.status.borrow();
                ready(&h.spec, &s) || is_settled_bad(&s)
            })
        })
    }

    /// The verdict on `names`; a process not `ok` whose run is older than `first_spawn` and
    /// that no longer runs did not run for this request at all (`not_run`).
    fn outcome(
        &self,
        names: &[String],
        first_spawn: u64,
        ok: impl Fn(&Process, &Status) -> bool,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        let state = self.state();
        let services = &state.services;
        for name in names {
            let Some(h) = services.get(name) else {
                continue;
            };
            let s = h.status.borrow();
            let ok = ok(&h.spec, &s);
            // Not ready after an exit: that exit is the news, whatever the restart policy
            // does next (it goes on in the background; `status` shows it).
            let early = s.early_exit.as_ref().filter(|_| !ok);
            let reason = match early {
                Some(e) if s.state.is_live() || s.state == ProcState::Backoff => Some(format!(
                    "{} before it was ready (restarting in the background)",
                    e.reason
                )),
                Some(e) if s.reason.is_none() => Some(format!("{} before it was ready", e.reason)),
                _ => s
                    .reason
                    .clone()
                    .or_else(|| s.waiting_for.clone().map(|w| format!("waiting for {w}")))
                    .or_else(|| (!ok).then(|| still(s.state).to_owned())),
            };
            outcome.processes.push(ProcessOutcome {
                name: name.clone(),
                state: s.state,
                reason,
                pid: s.pid,
                ok,
                port_conflict: s.port_conflict,
                log: self.shared.paths.log_file(name).display().to_string(),
                log_from: early.map(|e| e.log_offset),
                not_run: !ok
                    && early.is_none()
                    && s.spawn_seq < first_spawn
                    && !s.state.is_live()
                    && s.state != ProcState::Backoff,
            });
        }
        outcome
    }

    async fn reconcile(
        &self,
        config: &Config,
        order: &[String],
        selection: &BTreeSet<String>,
        req: &UpRequest,
        ctx: &Arc<Context>,
    ) -> Vec<String> {
        let no_deps = req.no_deps;
        let mut notes = self.adopt(config, ctx).await;
        // Processes gone from the file, and changed ones, are stopped first (dependents
        // before their dependencies).
        let mut retire = Vec::new();
        let mut removed = Vec::new();
        {
            let state = self.state();
            for (name, handle) in &state.services {
                match config.processes.get(name) {
                    None => {
                        notes.push(format!("{name}: stopped (removed from the config)"));
                        removed.push(name.clone());
                        retire.push(name.clone());
                    }
                    Some(spec) if config_hash(spec) != handle.hash => {
                        let live = handle.status.borrow().state.is_live()
                            || handle.status.borrow().state == ProcState::Completed;
                        if live && selection.contains(name) {
                            let old = serde_json::to_value(&*handle.spec).unwrap_or_default();
                            let reasons = crate::plan::diff_reasons(&old, spec);
                            notes.push(format!("{name}: restarted ({})", reasons.join(", ")));
                        }
                        retire.push(name.clone());
                    }
                    Some(_) => {}
                }
            }
        }
        // File IO happens outside the state lock (it is held for short sections only).
        for name in &removed {
            registry::runs::remove(&self.shared.paths.run_file(name));
        }
        let mut membership_changed = !retire.is_empty();
        let mut stop_order: Vec<String> = retire.clone();
        stop_order.sort_by_key(|n| std::cmp::Reverse(order.iter().position(|o| o == n)));
        for name in stop_order {
            let handle = self.state().services.remove(&name);
            if let Some(handle) = handle {
                let (tx, rx) = oneshot::channel();
                if handle
                    .tx
                    .send(Cmd::Shutdown {
                        timeout: None,
                        reply: tx,
                    })
                    .is_ok()
                {
                    let _ = rx.await;
                }
                // The actor ends right after answering; its child tree is gone.
                let _ = handle.task.await;
            }
        }
        // Every process of the config gets an actor (idle ones show as stopped).
        for name in order {
            let Some(spec) = config.processes.get(name) else {
                continue;
            };
            let exists = self.state().services.contains_key(name);
            if !exists {
                let handle = service::spawn_actor(
                    Arc::new(spec.clone()),
                    config_hash(spec),
                    Arc::clone(ctx),
                    Arc::clone(&self.shared),
                    Status::new(ProcState::Stopped),
                    None,
                );
                self.state().services.insert(name.clone(), handle);
                membership_changed = true;
            }
        }
        if membership_changed {
            self.members.send_modify(|generation| *generation += 1);
        }
        // Start what is selected and not already running (or completed, for oneshots).
        let mut acks = Vec::new();
        {
            let state = self.state();
            let services = &state.services;
            for name in order.iter().filter(|n| selection.contains(*n)) {
                let Some(handle) = services.get(name) else {
                    continue;
                };
                let state = handle.status.borrow().state;
                let keep = state.is_live()
                    || matches!(state, ProcState::Pending | ProcState::Backoff)
                    || (handle.spec.oneshot && state == ProcState::Completed);
                if keep {
                    continue;
                }
                let deps = if no_deps {
                    Vec::new()
                } else {
                    handle
                        .spec
                        .depends_on
                        .iter()
                        .filter_map(|d| {
                            services.get(&d.name).map(|dh| DepWatch {
                                name: d.name.clone(),
                                condition: d.condition,
                                rx: dh.status.clone(),
                            })
                        })
                        .collect()
                };
                let (ack, acked) = oneshot::channel();
                let start = Cmd::Start {
                    deps,
                    kill_port_owners: req.kill_port_owners,
                    ack,
                };
                if handle.tx.send(start).is_ok() {
                    acks.push(acked);
                }
            }
        }
        for acked in acks {
            let _ = acked.await;
        }
        notes
    }

    /// Turn what the previous supervisor left into actors (same pids), before the usual
    /// reconciliation compares their config with the new one.
    async fn adopt(&self, config: &Config, ctx: &Arc<Context>) -> Vec<String> {
        let found = std::mem::take(&mut self.state().adoptable);
        let mut notes = Vec::new();
        for (name, a) in found {
            let Some(spec) = config.processes.get(&name) else {
                registry::runs::remove(&self.shared.paths.run_file(&name));
                if let Some(pid) = a.pid {
                    self.stop_unknown(&name, pid, a.old_spec.as_ref()).await;
                    notes.push(format!("{name}: stopped (removed from the config)"));
                }
                continue;
            };
            // Found by its tags after the registry was lost: what it runs is unknown, so
            // it is replaced by an instance of the current config (never duplicated).
            if a.old_hash.is_empty() {
                if let Some(pid) = a.pid {
                    self.stop_unknown(&name, pid, Some(spec)).await;
                    notes.push(format!(
                        "{name}: stopped pid {pid}, left over from an earlier run with an unknown config (the registry was lost); starting it anew"
                    ));
                }
                continue;
            }
            let (actor_spec, hash) = match a.old_spec.clone() {
                // The recorded spec is what runs: its hash, computed now (a hash written
                // by an older version may have covered what no longer restarts, `logs`).
                Some(old) if !a.old_hash.is_empty() => {
                    let hash = config_hash(&old);
                    (old, hash)
                }
                // A run record names the hash it ran with: a changed config is then seen as
                // drift (and the oneshot run again), an unchanged one is kept.
                None if a.from_run => (spec.clone(), a.old_hash.clone()),
                _ => (spec.clone(), config_hash(spec)),
            };
            let mut actor_ctx = Arc::clone(ctx);
            if let Some(mut env) = a.pid.and_then(adopt::ambient_env) {
                for key in actor_spec.env.keys() {
                    env.remove(key);
                }
                actor_ctx = Arc::new(Context {
                    project: ctx.project.clone(),
                    project_id: ctx.project_id.clone(),
                    ambient_env: env,
                });
            }
            let (status, adoption) = if let Some(pid) = a.pid {
                notes.push(format!("{name}: adopted pid {pid}"));
                let adoption = Adopt::Running {
                    pid,
                    start_time: a.start_time,
                    started_at: a.started_at.clone(),
                    restarts: a.restarts,
                    was: a.was.clone(),
                };
                (Status::new(ProcState::Stopped), Some(adoption))
            } else if let Some(ended) = a.ended {
                let adoption = Adopt::Ended {
                    exit: ended.exit,
                    seen: ended.seen,
                    stopped: ended.stopped,
                    started_at: a.started_at.clone(),
                    restarts: a.restarts,
                };
                (Status::new(ProcState::Stopped), Some(adoption))
            } else {
                let mut status = Status::new(ProcState::Completed);
                status.started_once = true;
                status.exited_once = true;
                status.exit_code = a.record.exit_code;
                (status, None)
            };
            let handle = service::spawn_actor(
                Arc::new(actor_spec),
                hash,
                actor_ctx,
                Arc::clone(&self.shared),
                status,
                adoption,
            );
            self.state().services.insert(name, handle);
        }
        notes
    }

    /// Stop a process procs found running but has no actor for (verified whole tree); the
    /// name `""` with pid 0 stops every member of the project no process claims.
    async fn stop_unknown(&self, name: &str, pid: i32, spec: Option<&Process>) {
        let pid = (pid > 0).then_some(pid);
        let target = crate::stop::Target {
            project_id: &self.shared.paths.project_id,
            name,
            pid,
            pgid: pid,
            signal: Some(spec.map_or(crate::platform::Signal::TERM.number(), |s| {
                s.stop_signal.number
            })),
            timeout: spec.map_or(crate::config::model::defaults::STOP_TIMEOUT, |s| {
                s.stop_timeout
            }),
        };
        let report = crate::stop::stop_tree(&target, None, &self.shared.scanner).await;
        if !name.is_empty() {
            let _ = registry::write_pid_file(&self.shared.paths.pid_file(name), None);
        }
        if !report.survivors.is_empty() {
            tracing::warn!(name, survivors = ?report.survivors, "processes survived the stop");
        }
    }

    /// Stop `names` (all when empty) dependents first; each wave in parallel.
    pub async fn stop(
        self: &Arc<Self>,
        names: &[String],
        timeout: Option<Duration>,
        shutdown: bool,
        out: &mpsc::Sender<Response>,
    ) -> Result<Outcome, Response> {
        let _guard = self.ops.lock().await;
        // Without a cgroup, what a supervisor SIGKILL during this stop would leave must be
        // on record first.
        if super::lineage::record(self.shared.scanner.membership(), self.mains()).await {
            self.save_now().await;
        }
        if names.is_empty() {
            let found = std::mem::take(&mut self.state().adoptable);
            for (name, a) in found {
                if let Some(pid) = a.pid {
                    self.stop_unknown(&name, pid, a.old_spec.as_ref()).await;
                }
            }
        }
        let known: Vec<String> = self.state().services.keys().cloned().collect();
        if let Some(name) = names.iter().find(|n| !known.contains(n)) {
            let file = self.state().config.as_ref().map(|c| c.file.clone());
            let err = crate::error::Error::UnknownProcess {
                name: name.clone(),
                file: file.unwrap_or_else(|| self.shared.paths.project_dir.join("procs.yaml")),
                known,
            };
            return Err(Response::Error((&err).into()));
        }
        let targets: BTreeSet<String> = if names.is_empty() {
            known.iter().cloned().collect()
        } else {
            names.iter().cloned().collect()
        };
        let config = self.state().config.clone();
        let layers: Vec<Vec<String>> = match config.as_ref().map(Graph::new) {
            Some(Ok(graph)) => graph.layers(),
            _ => vec![known.clone()],
        };
        let mut events = self.shared.events.subscribe();
        let mut outcomes: BTreeMap<String, StopOutcome> = BTreeMap::new();
        for layer in layers.iter().rev() {
            let mut waits = Vec::new();
            {
                let state = self.state();
                let services = &state.services;
                for name in layer.iter().filter(|n| targets.contains(*n)) {
                    let Some(handle) = services.get(name) else {
                        continue;
                    };
                    let (tx, rx) = oneshot::channel();
                    let cmd = if shutdown {
                        Cmd::Shutdown { timeout, reply: tx }
                    } else {
                        Cmd::Stop { timeout, reply: tx }
                    };
                    if handle.tx.send(cmd).is_ok() {
                        waits.push((name.clone(), rx));
                    }
                }
            }
            for (name, mut rx) in waits {
                loop {
                    tokio::select! {
                        res = &mut rx => {
                            outcomes.insert(name.clone(), res.unwrap_or_default());
                            break;
                        }
                        ev = events.recv() => if let Ok(ev) = ev && targets.contains(&ev.name) {
                            let _ = out.send(Response::Event(ev)).await;
                        },
                    }
                }
            }
        }
        if names.is_empty() {
            // What no process can claim any more (orphans re-parented to the supervisor,
            // leaves of processes the config no longer names) goes with the stack.
            self.stop_unknown("", 0, None).await;
        }
        // The last changes (the final `stopped`) may still be queued: show them too.
        while let Ok(ev) = events.try_recv() {
            if targets.contains(&ev.name) {
                let _ = out.send(Response::Event(ev)).await;
            }
        }
        let order: Vec<String> = layers
            .iter()
            .flatten()
            .filter(|n| targets.contains(*n))
            .cloned()
            .collect();
        let mut outcome = self.outcome(&order, 0, |_, s| !s.state.is_live() && s.pid.is_none());
        for p in &mut outcome.processes {
            let Some(o) = outcomes.get(&p.name) else {
                continue;
            };
            if !o.survivors.is_empty() {
                p.ok = false;
            }
            if let Some(after) = o.killed_after {
                outcome.notes.push(format!(
                    "{}: killed after the {} stop timeout",
                    p.name,
                    humantime::format_duration(after)
                ));
            }
        }
        self.save_now().await;
        Ok(outcome)
    }

    /// Start named processes of the current config (with their dependencies).
    pub async fn start(
        self: &Arc<Self>,
        names: Vec<String>,
        timeout_ms: u64,
        out: mpsc::Sender<Response>,
    ) {
        let config = self.state().config.clone();
        let Some(config) = config else {
            let _ = out
                .send(Self::error(
                    exit::FAILED,
                    "the supervisor has no config yet".into(),
                    Some("run `procs up` first".into()),
                ))
                .await;
            return;
        };
        let ctx_env = self.state().env.clone();
        let req = UpRequest {
            config,
            env: ctx_env,
            names,
            no_deps: false,
            wait: true,
            timeout_ms,
            kill_port_owners: false,
        };
        self.up(req, out).await;
    }
}

/// What a process that is not ready, and says nothing more, is doing.
fn still(state: ProcState) -> &'static str {
    match state {
        ProcState::Pending => "not started yet",
        ProcState::Starting => "still starting",
        ProcState::Running => "running, not ready yet",
        ProcState::Unhealthy => "its health check is failing",
        ProcState::Stopping => "being stopped",
        ProcState::Stopped => "by a `down` or `stop` before it was ready",
        _ => "not ready",
    }
}

/// How [`relay_until`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relayed {
    /// Its condition held.
    Done,
    /// `until` passed first.
    Deadline,
    /// The event stream closed (the supervisor is going away).
    Closed,
}

/// Relay the events of `selection` to `out` until `done()` holds, `until` passes or the
/// stream closes. Every event already queued is relayed before `done` is asked, so the
/// client sees each change that led to the answer.
async fn relay_until(
    events: &mut broadcast::Receiver<Event>,
    out: &mpsc::Sender<Response>,
    selection: &BTreeSet<String>,
    until: Instant,
    done: impl Fn() -> bool,
) -> Relayed {
    loop {
        while let Ok(ev) = events.try_recv() {
            if selection.contains(&ev.name) {
                let _ = out.send(Response::Event(ev)).await;
            }
        }
        if done() {
            return Relayed::Done;
        }
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => if selection.contains(&ev.name) {
                    let _ = out.send(Response::Event(ev)).await;
                },
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return Relayed::Closed,
            },
            () = tokio::time::sleep_until(until) => return Relayed::Deadline,
        }
    }
}
