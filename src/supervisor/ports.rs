//! The port pre-flight an actor runs before each start of its process (SPEC §3), and the
//! explanation of an early exit caused by a taken address.
//!
//! Owns the decision, for each declared port that something listens on:
//! - held by a process of this project that this supervisor does not run (tagged with this
//!   project's id and either this process's own name, or not a descendant of this
//!   supervisor): a leftover — its tree is stopped (stop signal `SIGTERM`, grace = this
//!   process's `stop_timeout`, then SIGKILL) and the start goes on;
//! - held by another process this supervisor runs, by a process procs cannot inspect, or by
//!   a foreign process without `--kill-port-owners`: a conflict — nothing is signalled and
//!   the start fails with a reason naming the port and the holder;
//! - held by a foreign process with `--kill-port-owners`: that process and its descendants
//!   (its own tree, not its whole process group) are stopped (SIGTERM, [`FOREIGN_GRACE`],
//!   SIGKILL) and the start goes on — unless it is pid 1, the supervisor or one of its
//!   ancestors, or another user's process: then it is a conflict saying why.
//!
//! Invariants: every holder of every declared port is classified before anything is
//! signalled, so a conflict on one port never leaves another port's holder killed. Waiting
//! is event-driven (pidfds, through `stop`); the socket table is then re-read, at most
//! [`ROUNDS`] times, so a holder that keeps coming back ends as a conflict, not a loop.

use std::time::Duration;

use crate::config::Process;
use crate::platform::{self, PortHolder};
use crate::ports::{self, Owner};
use crate::stop::{self, Scanner};

/// Grace between SIGTERM and SIGKILL for a foreign holder stopped by `--kill-port-owners`.
pub const FOREIGN_GRACE: Duration = Duration::from_secs(5);
/// How many times the socket table is re-read after stopping holders.
const ROUNDS: usize = 3;

/// What the pre-flight needs from its actor.
pub struct Preflight<'a> {
    pub spec: &'a Process,
    pub project_id: &'a str,
    /// Stop foreign holders (`procs up --kill-port-owners`).
    pub kill_foreign: bool,
    pub scanner: &'a Scanner,
}

/// A declared port could not be freed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// `port 8080 is held by pid 4242 (…)`.
    pub reason: String,
}

/// What to do about one holder.
enum Action {
    /// Our own leftover: stop its tree (as the process `name` of this project).
    StopStale { pid: i32, name: String },
    /// A foreign holder the user allowed us to stop.
    StopForeign { pid: i32 },
}

/// Is `pid` a descendant of this supervisor (one of the trees it runs)?
fn ours_now(pid: i32) -> bool {
    let me = std::process::id() as i32;
    let mut cur = pid;
    for _ in 0..256 {
        let Some(st) = platform::stat(cur) else {
            return false;
        };
        if st.ppid == me {
            return true;
        }
        if st.ppid <= 1 {
            return false;
        }
        cur = st.ppid;
    }
    false
}

/// Why `--kill-port-owners` must leave this holder alone, if it must: pid 1 (init, or the
/// main process of a container), the supervisor itself or one of its ancestors (the user's
/// shell, a CI runner), or a process of another user (root could kill it; it is not ours).
fn never_stopped(pid: i32, holder: &PortHolder) -> Option<String> {
    if pid == 1 {
        return Some("pid 1".to_owned());
    }
    let me = std::process::id() as i32;
    let mut cur = me;
    for _ in 0..256 {
        if cur == pid {
            return Some("the supervisor or a process it runs under".to_owned());
        }
        match platform::stat(cur) {
            Some(st) if st.ppid > 0 => cur = st.ppid,
            _ => break,
        }
    }
    if holder.uid != platform::current_uid() {
        return Some(format!("a process of another user ({})", holder.user));
    }
    None
}

/// Classify every holder of one port; `Err` on the first conflict.
fn plan_port(
    pf: &Preflight<'_>,
    port: u16,
    holders: &[PortHolder],
    actions: &mut Vec<Action>,
) -> Result<(), Conflict> {
    let conflict = || Conflict {
        reason: ports::held_message(port, holders),
    };
    let since = tokio::time::Instant::now();
    let mine = pf
        .scanner
        .members_of(pf.project_id, &pf.spec.name, None, since);
    let project = pf.scanner.members_of(pf.project_id, "", None, since);
    let refused = |refusal: String| Conflict {
        reason: format!(
            "{}; {} {refusal}: stop it yourself",
            ports::held_message(port, holders),
            ports::NEVER_STOPS
        ),
    };
    for h in holders {
        let Some(pid) = h.pid else {
            // Another user's process, which this user cannot even inspect.
            if pf.kill_foreign && h.uid != platform::current_uid() {
                return Err(refused(format!("a process of another user ({})", h.user)));
            }
            return Err(conflict());
        };
        let owner = match ports::owner(h, pf.project_id, &pf.spec.name) {
            Owner::Foreign if mine.contains(&pid) => Owner::Own,
            Owner::Foreign if project.contains(&pid) => Owner::Project,
            owner => owner,
        };
        match owner {
            Owner::Own => actions.push(Action::StopStale {
                pid,
                name: pf.spec.name.clone(),
            }),
            Owner::Project if !ours_now(pid) => actions.push(Action::StopStale {
                pid,
                name: h.process.clone().unwrap_or_default(),
            }),
            Owner::Foreign if pf.kill_foreign => {
                if let Some(refusal) = never_stopped(pid, h) {
                    return Err(refused(refusal));
                }
                actions.push(Action::StopForeign { pid });
            }
            // Another process this supervisor runs, or a foreign one without consent.
            Owner::Project | Owner::Foreign => return Err(conflict()),
        }
    }
    Ok(())
}

/// Make every declared port of `pf.spec` free, or say why it cannot be. `say` receives
/// each thing done (for the process log and the `up` output).
pub async fn preflight(pf: &Preflight<'_>, mut say: impl FnMut(String)) -> Result<(), Conflict> {
    if pf.spec.ports.is_empty() {
        return Ok(());
    }
    let mut last = None;
    for _ in 0..ROUNDS {
        let mut actions = Vec::new();
        let mut held = Vec::new();
        for port in &pf.spec.ports {
            let holders = platform::port_holders(port.port);
            if holders.is_empty() {
                continue;
            }
            plan_port(pf, port.port, &holders, &mut actions)?;
            held.push((port.port, holders));
        }
        if held.is_empty() {
            return Ok(());
        }
        for (port, holders) in &held {
            let what = ports::held_message(*port, holders);
            let foreign = holders
                .iter()
                .any(|h| ports::owner(h, pf.project_id, &pf.spec.name) == Owner::Foreign);
            let why = if foreign {
                "stopping it (--kill-port-owners)"
            } else {
                "stopping it (left over from an earlier run)"
            };
            say(format!("{what}: {why}"));
        }
        let mut survivors = Vec::new();
        for action in &actions {
            match action {
                Action::StopStale { pid, name } => {
                    survivors.extend(stop_stale(pf, *pid, name).await);
                }
                Action::StopForeign { pid } => {
                    survivors.extend(stop::stop_process(*pid, FOREIGN_GRACE).await.survivors);
                }
            }
        }
        if !survivors.is_empty() {
            let pids: Vec<String> = survivors.iter().map(ToString::to_string).collect();
            let (port, holders) = &held[0];
            return Err(Conflict {
                reason: format!(
                    "{}, and it survived SIGKILL (pids {})",
                    ports::held_message(*port, holders),
                    pids.join(", ")
                ),
            });
        }
        last = Some(held);
    }
    // Still held after ROUNDS stops: whatever holds it keeps coming back.
    let (port, holders) = last
        .and_then(|held| held.into_iter().next())
        .unwrap_or_default();
    Err(Conflict {
        reason: format!(
            "{} (it keeps coming back after being stopped)",
            ports::held_message(port, &holders)
        ),
    })
}

/// Stop a leftover tree of this project: the holder, its group when it leads one, and every
/// process tagged with this project and `name`.
async fn stop_stale(pf: &Preflight<'_>, pid: i32, name: &str) -> Vec<i32> {
    if name.is_empty() {
        // Without a process name the tag cannot find the tree: stop the holder itself.
        return stop::stop_process(pid, pf.spec.stop_timeout)
            .await
            .survivors;
    }
    let leads = platform::stat(pid).is_some_and(|s| s.pgid == pid);
    let target = stop::Target {
        project_id: pf.project_id,
        name,
        pid: leads.then_some(pid),
        pgid: leads.then_some(pid),
        signal: Some(platform::Signal::TERM.number()),
        timeout: pf.spec.stop_timeout,
    };
    stop::stop_tree(&target, None, pf.scanner).await.survivors
}

/// Why a process that exited before it was ready failed, when its last log lines say an
/// address was in use: the port and its holder (`None` when the log says nothing of the
/// kind). The second value is true when a foreign process holds it (a port conflict that a
/// restart cannot fix).
pub fn explain_early_exit(
    spec: &Process,
    project_id: &str,
    log_tail: &str,
) -> Option<(String, bool)> {
    let declared: Vec<u16> = spec.ports.iter().map(|p| p.port).collect();
    // The port a `tcp`/`http` check probes is where the process is meant to listen, declared
    // or not.
    let mut expected = declared.clone();
    if let Some(port) = probe_port(spec)
        && !expected.contains(&port)
    {
        expected.push(port);
    }
    let mut candidates = ports::ports_in_use_from_log(log_tail, &expected)?;
    if candidates.is_empty() {
        let command = match &spec.command {
            crate::config::Command::Shell(script) => script.clone(),
            crate::config::Command::Argv(argv) => argv.join(" "),
        };
        candidates = ports::ports_in_command(&command);
    }
    if candidates.is_empty() {
        return Some((
            "address already in use (declare the port under `ports:` so procs can name its \
             holder)"
                .to_owned(),
            false,
        ));
    }
    for port in &candidates {
        let holders = platform::port_holders(*port);
        if holders.is_empty() {
            continue;
        }
        let foreign = holders
            .iter()
            .any(|h| ports::owner(h, project_id, &spec.name) == Owner::Foreign);
        let mut why = ports::held_message(*port, &holders);
        if !declared.contains(port) {
            why.push_str(" (declare it under `ports:` to have procs check it before each start)");
        }
        return Some((why, foreign));
    }
    let list: Vec<String> = candidates.iter().map(ToString::to_string).collect();
    Some((
        format!(
            "address already in use (port {}; nothing holds it any more)",
            list.join(", ")
        ),
        false,
    ))
}

/// The port a `tcp` or `http` health check connects to.
fn probe_port(spec: &Process) -> Option<u16> {
    match &spec.healthcheck.as_ref()?.probe {
        crate::config::Probe::Tcp { port, .. } => Some(*port),
        crate::config::Probe::Http { url, .. } => Some(url.port()),
        _ => None,
    }
}
