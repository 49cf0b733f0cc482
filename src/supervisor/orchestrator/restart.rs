//! Restarts as operations: `procs restart [NAME…]` (rolling, in dependency order) and the
//! restarts `depends_on: {db: {condition: healthy, restart: true}}` asks for.
//!
//! Owns: the restart plan (which processes, in which order), running it one process at a
//! time, and the cascade task that restarts a dependent after its dependency was restarted.
//! Must not: decide a single process's lifecycle (the actors and `machine.rs` do) or write
//! the registry (the orchestrator's writer does).
//!
//! Guarantees of a restart operation (`procs restart`, the dashboard's project restart):
//! - the plan is the start order (dependencies before dependents); without names it is every
//!   process of the current config that is not `disabled` (and any disabled one that runs);
//!   with names it is those and, transitively, their running `restart: true` dependents;
//! - one process at a time: a process is stopped only once the one before it is ready again
//!   (`healthy`, `running` after `ready_after`, `completed` for a oneshot), so at any moment
//!   at most one process of the plan is down, and no dependent is ever down together with
//!   its dependency;
//! - the first process that is not ready again stops the operation: the rest of the plan
//!   is left running as it was, and the answer names it (exit 1) and what was not restarted.
//!
//! Invariant of the cascade: a dependent is restarted only when it runs, its current run
//! was spawned before its `restart: true` dependency's current run (`Status::spawn_seq`),
//! and that run meets the dependency's condition — a state, not an event, so a late or
//! repeated look never restarts anything twice. The cascade waits while a restart
//! operation runs (the operation restarts the dependents itself, in order).

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;

use super::Orchestrator;
use crate::config::graph::Graph;
use crate::config::{Condition, Process};
use crate::control::protocol::{Outcome, Response, UpRequest};
use crate::error::exit;
use crate::registry::ProcState;
use crate::supervisor::machine::{self, Status};
use crate::supervisor::service::{Cmd, DepWatch};

/// The cascade's switch: running restart operations pause it.
pub struct Cascades {
    /// Restart operations under way.
    paused: watch::Sender<u32>,
    started: std::sync::atomic::AtomicBool,
}

impl Cascades {
    pub fn new() -> Self {
        Self {
            paused: watch::Sender::new(0),
            started: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn pause(&self) -> Paused<'_> {
        self.paused.send_modify(|n| *n += 1);
        Paused(self)
    }
}

/// While held, the cascade waits.
struct Paused<'a>(&'a Cascades);

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        self.0.paused.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The processes a restart of `names` touches, in `order` (the start order): without names
/// every process that is not `disabled` or is `live`; with names those and, transitively,
/// their `live` dependents with `restart: true` on one of them.
pub fn plan(
    config: &crate::config::Config,
    order: &[String],
    names: &[String],
    live: &dyn Fn(&str) -> bool,
) -> Vec<String> {
    let chosen: BTreeSet<String> = if names.is_empty() {
        config
            .processes
            .values()
            .filter(|p| !p.disabled || live(&p.name))
            .map(|p| p.name.clone())
            .collect()
    } else {
        let mut chosen: BTreeSet<String> = names.iter().cloned().collect();
        loop {
            let more: Vec<String> = config
                .processes
                .values()
                .filter(|p| !chosen.contains(&p.name) && live(&p.name))
                .filter(|p| {
                    p.depends_on
                        .iter()
                        .any(|d| d.restart && chosen.contains(&d.name))
                })
                .map(|p| p.name.clone())
                .collect();
            if more.is_empty() {
                break chosen;
            }
            chosen.extend(more);
        }
    };
    order
        .iter()
        .filter(|n| chosen.contains(*n))
        .cloned()
        .collect()
}

/// Does `s` (of `spec`) meet `condition` with its current run?
fn met_now(spec: &Process, condition: Condition, s: &Status) -> bool {
    match condition {
        Condition::Started => s.pid.is_some() && runs(s.state),
        Condition::Healthy => machine::is_ready(spec, s),
        Condition::Completed => matches!(s.state, ProcState::Completed | ProcState::Exited),
        Condition::CompletedSuccessfully => s.state == ProcState::Completed,
    }
}

/// A state in which the process's current run is alive and not being stopped.
fn runs(state: ProcState) -> bool {
    matches!(
        state,
        ProcState::Starting | ProcState::Running | ProcState::Healthy | ProcState::Unhealthy
    )
}

/// Must `dependent` (status `me`) be restarted because of `dep` (status `theirs`)?
pub fn cascade_due(me: &Status, dep_spec: &Process, condition: Condition, theirs: &Status) -> bool {
    runs(me.state) && theirs.spawn_seq > me.spawn_seq && met_now(dep_spec, condition, theirs)
}

impl Orchestrator {
    /// Start the cascade task once (it lives as long as the orchestrator).
    pub(super) fn ensure_cascade(self: &Arc<Self>) {
        if self
            .cascades
            .started
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        let weak = Arc::downgrade(self);
        let events = self.shared.events.subscribe();
        let paused = self.cascades.paused.subscribe();
        tokio::spawn(cascade(weak, events, paused));
    }

    /// The processes the cascade must restart now, in start order.
    fn due(&self) -> Vec<String> {
        let state = self.state();
        let services = &state.services;
        let mut due = Vec::new();
        for (name, h) in services {
            if !h.spec.depends_on.iter().any(|d| d.restart) {
                continue;
            }
            let me = h.status.borrow();
            let restart = h.spec.depends_on.iter().filter(|d| d.restart).any(|d| {
                services
                    .get(&d.name)
                    .is_some_and(|dh| cascade_due(&me, &dh.spec, d.condition, &dh.status.borrow()))
            });
            if restart {
                due.push(name.clone());
            }
        }
        due
    }

    /// Restart `name` for the cascade, if it is still due once no other operation runs.
    async fn cascade_restart(&self, name: &str) {
        let _guard = self.ops.lock().await;
        if *self.cascades.paused.borrow() > 0 || !self.due().iter().any(|n| n == name) {
            return;
        }
        tracing::info!(
            name,
            "restarting: a `restart: true` dependency was restarted"
        );
        let Some(tx) = self.state().services.get(name).map(|h| h.tx.clone()) else {
            return;
        };
        let (reply, stopped) = oneshot::channel();
        if tx
            .send(Cmd::Stop {
                timeout: None,
                reply,
            })
            .is_err()
        {
            return;
        }
        let _ = stopped.await;
        let deps = self.dep_watches(name);
        let (ack, acked) = oneshot::channel();
        if tx
            .send(Cmd::Start {
                deps,
                kill_port_owners: false,
                ack,
            })
            .is_ok()
        {
            let _ = acked.await;
        }
    }

    /// What `name` waits for when it starts.
    fn dep_watches(&self, name: &str) -> Vec<DepWatch> {
        let state = self.state();
        let services = &state.services;
        let Some(h) = services.get(name) else {
            return Vec::new();
        };
        h.spec
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
    }

    /// `procs restart [NAME…]`: the plan of the module docs, one process at a time.
    pub async fn restart(
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
        if let Some(name) = names.iter().find(|n| !config.processes.contains_key(*n)) {
            let err = crate::error::Error::UnknownProcess {
                name: name.clone(),
                file: config.file.clone(),
                known: config.processes.keys().cloned().collect(),
            };
            let _ = out.send(Response::Error((&err).into())).await;
            return;
        }
        let graph = match Graph::new(&config) {
            Ok(graph) => graph,
            Err(err) => {
                let _ = out
                    .send(Self::error(exit::USAGE, err.to_string(), None))
                    .await;
                return;
            }
        };
        let _paused = self.cascades.pause();
        let plan = self.plan(&config, &graph.start_order(), &names);
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        let env = self.state().env.clone();
        let mut result = Outcome::default();
        for (i, name) in plan.iter().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            let step = self.restart_one(&config, &env, name, left, &out).await;
            let step = match step {
                Ok(step) => step,
                Err(response) => {
                    let _ = out.send(response).await;
                    return;
                }
            };
            let ok = !step.timed_out && step.processes.iter().all(|p| p.ok);
            result.notes.extend(step.notes);
            result.timed_out |= step.timed_out;
            result.processes.extend(step.processes);
            if !ok {
                let rest = &plan[i + 1..];
                if !rest.is_empty() {
                    result.notes.push(format!(
                        "not restarted: {} (the restart stopped at `{name}`)",
                        rest.join(", ")
                    ));
                }
                break;
            }
        }
        self.save_now().await;
        let _ = out.send(Response::Done(result)).await;
    }

    /// The processes a restart of `names` (all when empty) touches, in start order.
    fn plan(
        &self,
        config: &crate::config::Config,
        order: &[String],
        names: &[String],
    ) -> Vec<String> {
        let live = |name: &str| {
            self.state()
                .services
                .get(name)
                .is_some_and(|h| h.status.borrow().state.is_live())
        };
        plan(config, order, names, &live)
    }

    /// Stop `name`, start it again (its dependencies as `up` would) and wait until it is
    /// ready, forwarding every event; the outcome covers `name` only.
    async fn restart_one(
        self: &Arc<Self>,
        config: &crate::config::Config,
        env: &std::collections::BTreeMap<String, String>,
        name: &str,
        left: Duration,
        out: &mpsc::Sender<Response>,
    ) -> Result<Outcome, Response> {
        let stopped = self.stop(&[name.to_owned()], None, false, out).await?;
        if stopped.processes.iter().any(|p| !p.ok) {
            return Ok(stopped);
        }
        // Started here, not by `up`'s reconciliation: that one keeps a completed oneshot,
        // which a restart runs again. `up` then waits for it (and starts what it needs).
        let tx = self.state().services.get(name).map(|h| h.tx.clone());
        if let Some(tx) = tx {
            let (ack, acked) = oneshot::channel();
            let deps = self.dep_watches(name);
            if tx
                .send(Cmd::Start {
                    deps,
                    kill_port_owners: false,
                    ack,
                })
                .is_ok()
            {
                let _ = acked.await;
            }
        }
        let req = UpRequest {
            config: config.clone(),
            env: env.clone(),
            names: vec![name.to_owned()],
            no_deps: false,
            wait: true,
            timeout_ms: left.as_millis() as u64,
            kill_port_owners: false,
        };
        let (tx, mut rx) = mpsc::channel(64);
        let forward = async {
            let mut last = None;
            while let Some(frame) = rx.recv().await {
                match frame {
                    Response::Event(_) => {
                        let _ = out.send(frame).await;
                    }
                    other => last = Some(other),
                }
            }
            last
        };
        let ((), last) = tokio::join!(self.up(req, tx), forward);
        match last {
            Some(Response::Done(mut outcome)) => {
                outcome.processes.retain(|p| p.name == name);
                let mut notes = stopped.notes;
                notes.append(&mut outcome.notes);
                outcome.notes = notes;
                Ok(outcome)
            }
            Some(other) => Err(other),
            None => Err(Self::error(
                exit::FAILED,
                format!("restarting `{name}` gave no answer"),
                None,
            )),
        }
    }
}

/// The cascade task: on every status change, restart what is due (module docs).
async fn cascade(
    orch: Weak<Orchestrator>,
    mut events: broadcast::Receiver<crate::control::protocol::Event>,
    mut paused: watch::Receiver<u32>,
) {
    loop {
        if *paused.borrow_and_update() == 0 {
            let Some(me) = orch.upgrade() else {
                return;
            };
            for name in me.due() {
                me.cascade_restart(&name).await;
            }
        }
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
            changed = paused.changed() => if changed.is_err() {
                return;
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: ProcState, pid: Option<i32>, seq: u64) -> Status {
        let mut s = Status::new(state);
        s.pid = pid;
        s.spawn_seq = seq;
        s
    }

    fn spec() -> Process {
        let mut p: Process = serde_json::from_value(serde_json::json!({
            "name": "db", "command": "true", "cwd": "/", "env": {}, "depends_on": [],
            "healthcheck": null, "ports": [], "restart": "on-failure",
            "backoff": {"initial": "1s", "max": "2s"}, "max_restarts": 3, "min_uptime": "1s",
            "ready_after": "0s", "oneshot": false, "success_exit_codes": [0],
            "stop_signal": {"number": 15, "name": "SIGTERM"}, "stop_timeout": "1s",
            "stop_command": null, "disabled": false,
            "logs": {"max_size": 1, "keep": 1}
        }))
        .expect("a process");
        p.oneshot = false;
        p
    }

    /// `(name, [(dependency, restart)], disabled)` of each process.
    type Spec<'a> = (&'a str, &'a [(&'a str, bool)], bool);

    fn config(procs: &[Spec]) -> crate::config::Config {
        let processes = procs
            .iter()
            .map(|(name, deps, disabled)| {
                let mut p = spec();
                p.name = (*name).to_owned();
                p.disabled = *disabled;
                p.depends_on = deps
                    .iter()
                    .map(|(d, restart)| crate::config::Dependency {
                        name: (*d).to_owned(),
                        condition: Condition::Healthy,
                        restart: *restart,
                    })
                    .collect();
                ((*name).to_owned(), p)
            })
            .collect();
        crate::config::Config {
            name: "t".into(),
            project_dir: "/".into(),
            file: "/procs.yaml".into(),
            override_file: None,
            processes,
        }
    }

    #[test]
    fn the_plan_is_the_start_order_of_what_a_restart_touches() {
        // db <- web (restart: true) <- worker (restart: true on web); db <- other (plain);
        // tool is disabled.
        let c = config(&[
            ("db", &[], false),
            ("web", &[("db", true)], false),
            ("worker", &[("web", true)], false),
            ("other", &[("db", false)], false),
            ("tool", &[], true),
        ]);
        let order: Vec<String> = ["db", "tool", "web", "other", "worker"]
            .map(String::from)
            .to_vec();
        let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let all_live = |_: &str| true;
        assert_eq!(
            plan(&c, &order, &[], &|n| n != "tool"),
            names(&["db", "web", "other", "worker"]),
            "the whole stack but what is disabled and idle"
        );
        assert_eq!(
            plan(&c, &order, &[], &all_live),
            names(&["db", "tool", "web", "other", "worker"]),
            "a disabled process that runs is restarted too"
        );
        assert_eq!(
            plan(&c, &order, &names(&["db"]), &all_live),
            names(&["db", "web", "worker"]),
            "restart: true dependents, transitively, in order"
        );
        assert_eq!(
            plan(&c, &order, &names(&["db"]), &|n| n != "web"),
            names(&["db"]),
            "a dependent that does not run is not started by a restart"
        );
        assert_eq!(
            plan(&c, &order, &names(&["other", "web"]), &all_live),
            names(&["web", "other", "worker"])
        );
    }

    #[test]
    fn a_dependent_older_than_its_ready_dependency_is_due() {
        let db = status(ProcState::Running, Some(10), 5);
        let web = status(ProcState::Healthy, Some(11), 2);
        assert!(cascade_due(&web, &spec(), Condition::Healthy, &db));
        assert!(cascade_due(&web, &spec(), Condition::Started, &db));
    }

    #[test]
    fn nothing_is_due_while_the_dependency_is_not_back_or_once_the_dependent_is_newer() {
        let web = status(ProcState::Healthy, Some(11), 2);
        for db in [
            status(ProcState::Starting, Some(10), 5),
            status(ProcState::Backoff, None, 5),
            status(ProcState::Failed, None, 5),
            status(ProcState::Stopped, None, 5),
        ] {
            assert!(
                !cascade_due(&web, &spec(), Condition::Healthy, &db),
                "{db:?}"
            );
        }
        let db = status(ProcState::Running, Some(10), 5);
        let newer = status(ProcState::Healthy, Some(12), 6);
        assert!(!cascade_due(&newer, &spec(), Condition::Healthy, &db));
        // Adopted both (never spawned here): nothing to do.
        let (db0, web0) = (
            status(ProcState::Running, Some(10), 0),
            status(ProcState::Running, Some(11), 0),
        );
        assert!(!cascade_due(&web0, &spec(), Condition::Healthy, &db0));
    }

    #[test]
    fn a_dependent_that_does_not_run_is_never_restarted_by_the_cascade() {
        let db = status(ProcState::Running, Some(10), 5);
        for state in [
            ProcState::Stopped,
            ProcState::Stopping,
            ProcState::Pending,
            ProcState::Backoff,
            ProcState::Failed,
        ] {
            let web = status(state, None, 2);
            assert!(
                !cascade_due(&web, &spec(), Condition::Healthy, &db),
                "{state:?}"
            );
        }
    }

    #[test]
    fn completed_conditions_are_met_by_the_new_run_exiting() {
        let web = status(ProcState::Running, Some(11), 2);
        let done = status(ProcState::Completed, None, 5);
        let exited = status(ProcState::Exited, None, 5);
        assert!(cascade_due(&web, &spec(), Condition::Completed, &done));
        assert!(cascade_due(&web, &spec(), Condition::Completed, &exited));
        assert!(cascade_due(
            &web,
            &spec(),
            Condition::CompletedSuccessfully,
            &done
        ));
        assert!(!cascade_due(
            &web,
            &spec(),
            Condition::CompletedSuccessfully,
            &exited
        ));
    }
}
