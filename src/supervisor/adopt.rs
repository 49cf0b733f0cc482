//! What a starting supervisor finds already running: the recovery rules.
//!
//! Owns: turning the registry left by a previous supervisor (or what is left of it) into
//! a list of processes to adopt instead of starting anew.
//! Rules, in order of trust:
//! 1. A registry record whose pid is alive with the recorded kernel start time and boot
//!    id is adopted, with its recorded config (so drift is still detected). Records that
//!    fail that check are stale and dropped: never signalled.
//! 2. A completed oneshot is carried over as completed (not run again while the stack is
//!    up) — unless the previous supervisor shut down cleanly (`procs down`).
//! 3. If the registry is corrupt or missing, the processes tagged with this project's id
//!    that lead their own process group are the main processes procs spawned (every child
//!    leads its group); a verified pid file picks the main one among several leaders of
//!    one name (a `setsid` grandchild leads its own group too), else the oldest wins.
//!    Their config is unknown, so the first `up` replaces them (verified tree stop, then a
//!    fresh start from the current file): never a duplicate, never a stale config.
//! 4. A oneshot's run record (`registry::runs`, written before it was spawned and by its
//!    waiting parent) is the truth about that oneshot, above the registry (whose coalesced
//!    writes may lag): a live waiting parent is adopted, a recorded exit is learned (the
//!    real code or signal, never guessed), a `starting` record whose waiting parent is found
//!    by its tags is adopted, and one with nothing behind it was never spawned. A waiting
//!    parent that was killed while its program lives on leaves that program to adopt (the
//!    pid it recorded, verified by start time, or found in its process group by its tags):
//!    never run again; its exit status is unknown once it ends.
//! 5. A process keeps the readiness it had: ready (healthy, running) stays ready, unhealthy
//!    stays unhealthy until its check passes, anything else starts over its wait. Run records
//!    count only while the stack is up: after a clean shutdown they are removed.

use std::collections::BTreeMap;
use std::path::Path;

use super::machine::Recorded;
use crate::config::Process;
use crate::paths::Paths;
use crate::platform;
use crate::platform::ExitInfo;
use crate::registry::runs::{self, RunRecord, RunState};
use crate::registry::{self, Loaded, ProcState, ProcessRecord};

/// A process to adopt (or a completed oneshot to carry over).
#[derive(Debug, Clone)]
pub struct Adoptable {
    /// `None` for a completed oneshot.
    pub pid: Option<i32>,
    pub start_time: u64,
    pub started_at: Option<String>,
    pub restarts: u32,
    /// The config it was started with, when the registry knew it.
    pub old_spec: Option<Process>,
    /// Its config hash; empty when unknown.
    pub old_hash: String,
    /// What to keep showing in `state.json` until the next `up` reconciles it.
    pub record: ProcessRecord,
    /// What it was when the previous supervisor died: ready (healthy, or running),
    /// unhealthy, or not ready yet.
    pub was: Recorded,
    /// A oneshot whose run ended while no supervisor watched: how (`None`: its waiting
    /// parent was killed before it could record).
    pub ended: Option<Ended>,
    /// Found through its run record: `old_hash` is what it runs, even without `old_spec`.
    pub from_run: bool,
}

/// How a oneshot's run ended, as its run record says.
#[derive(Debug, Clone, Copy)]
pub struct Ended {
    /// As its waiting parent recorded it; `None` if that parent was killed first.
    pub exit: Option<ExitInfo>,
    /// The previous supervisor saw the end (only its registry write was lost).
    pub seen: bool,
    /// It ended by an explicit stop.
    pub stopped: bool,
}

/// What the previous run left: adoptables, the project name if known, and notes for the log.
pub struct Found {
    pub adoptable: BTreeMap<String, Adoptable>,
    pub project: Option<String>,
    pub notes: Vec<String>,
}

/// Look at the registry, the pid files and the tagged processes.
pub fn find(paths: &Paths) -> Found {
    let mut notes = Vec::new();
    let loaded = match registry::load(&paths.state_file, true) {
        Ok(loaded) => loaded,
        Err(err) => {
            notes.push(format!(
                "cannot read the registry: {err}; rebuilding from running processes"
            ));
            Loaded::Missing
        }
    };
    match loaded {
        Loaded::Ok(reg) => {
            // A clean shutdown (`procs down`) clears the supervisor record: the stack was
            // down, so completed oneshots run again. Otherwise the supervisor died while
            // the stack was up, and they stay completed.
            let crashed = reg.supervisor.is_some();
            let mut adoptable = BTreeMap::new();
            for (name, rec) in reg.processes {
                if let Some(pid) = rec.verified() {
                    adoptable.insert(name, from_record(rec, Some(pid)));
                } else if crashed && rec.oneshot && rec.state == ProcState::Completed {
                    adoptable.insert(name, from_record(rec, None));
                } else if rec.pid.is_some() && rec.state.is_live() {
                    notes.push(format!(
                        "`{name}`: recorded pid {:?} is gone or reused; dropped",
                        rec.pid
                    ));
                }
            }
            let tagged = from_tags(paths);
            if crashed {
                merge_runs(paths, &mut adoptable, &tagged);
            } else {
                runs::clear(&paths.runs_dir);
            }
            // Processes of ours the registry did not know (spawned just before a crash).
            for (name, a) in tagged {
                adoptable.entry(name).or_insert(a);
            }
            Found {
                adoptable,
                project: Some(reg.project),
                notes,
            }
        }
        Loaded::Corrupt { kept, error } => {
            notes.push(format!(
                "the registry was corrupt ({error}); kept as {}; rebuilt from pid files and tagged processes",
                kept.display()
            ));
            Found {
                adoptable: from_runs_and_tags(paths),
                project: None,
                notes,
            }
        }
        Loaded::Missing => Found {
            adoptable: from_runs_and_tags(paths),
            project: None,
            notes,
        },
    }
}

/// Without a registry: the run records (whatever the registry would have said about
/// oneshots), then the tagged processes.
fn from_runs_and_tags(paths: &Paths) -> BTreeMap<String, Adoptable> {
    let tagged = from_tags(paths);
    let mut adoptable = BTreeMap::new();
    merge_runs(paths, &mut adoptable, &tagged);
    for (name, a) in tagged {
        adoptable.entry(name).or_insert(a);
    }
    adoptable
}

/// Apply rule 4: each oneshot's run record replaces what the registry said about it.
fn merge_runs(
    paths: &Paths,
    adoptable: &mut BTreeMap<String, Adoptable>,
    tagged: &BTreeMap<String, Adoptable>,
) {
    for (name, run) in runs::read_all(&paths.runs_dir) {
        let known = adoptable.remove(&name);
        if let Some(a) = from_run(paths, &name, &run, known.as_ref(), tagged.get(&name)) {
            adoptable.insert(name, a);
        } else if let Some(known) = known {
            adoptable.insert(name, known);
        }
    }
}

/// What the run record `run` of oneshot `name` says to adopt (`None`: nothing ran).
fn from_run(
    paths: &Paths,
    name: &str,
    run: &RunRecord,
    known: Option<&Adoptable>,
    tagged: Option<&Adoptable>,
) -> Option<Adoptable> {
    // The registry's record of the same run gives the config it ran with.
    let same = known.filter(|k| k.old_hash == run.hash);
    let mut rec = same.map_or_else(
        || ProcessRecord::new(ProcState::Running, paths.log_file(name)),
        |k| k.record.clone(),
    );
    rec.oneshot = true;
    rec.config_hash.clone_from(&run.hash);
    let mut a = Adoptable {
        pid: None,
        start_time: 0,
        started_at: run.started_at.clone(),
        restarts: same.map_or(0, |k| k.restarts),
        old_spec: same.and_then(|k| k.old_spec.clone()),
        old_hash: run.hash.clone(),
        record: rec,
        was: Recorded::NotReady,
        ended: None,
        from_run: true,
    };
    let orphan = if run.state == RunState::Running && !run.parent_alive() {
        run.program_alive().or_else(|| {
            orphan_program(
                run,
                name,
                &platform::tagged_processes(Some(&paths.project_id)),
            )
        })
    } else {
        None
    };
    match run.state {
        RunState::Exited => {
            let exit = run.exit();
            a.ended = Some(Ended {
                exit,
                seen: run.seen,
                stopped: run.stopped,
            });
            // The codes of the config it ran with, when the registry knew it.
            let codes = same
                .and_then(|k| k.old_spec.as_ref())
                .map_or_else(|| vec![0], |spec| spec.success_exit_codes.clone());
            a.record.state = super::machine::oneshot_end(&codes, exit, run.stopped);
            a.record.exit_code = run.code;
            a.record.signal = run.signal;
            a.record.pid = None;
            a.record.reason = exit.map(|e| e.to_string());
        }
        RunState::Running if run.parent_alive() => {
            a.pid = run.pid;
            a.start_time = run.start_time.unwrap_or(0);
            a.record.state = ProcState::Running;
            a.record.pid = run.pid;
            a.record.pgid = run.pid;
            a.record.start_time = run.start_time;
            a.record.boot_id.clone_from(&run.boot_id);
        }
        // The waiting parent was killed (SIGKILL) but its program lives on: it is adopted
        // (verified by its start time), never run again; its exit status, once it ends,
        // cannot be learned (it is nobody's child here) and is reported as unknown.
        RunState::Running if orphan.is_some() => {
            let (pid, start_time) = orphan?;
            a.pid = Some(pid);
            a.start_time = start_time;
            a.record.state = ProcState::Running;
            a.record.pid = Some(pid);
            a.record.pgid = platform::stat(pid).map(|st| st.pgid);
            a.record.start_time = Some(start_time);
            a.record.boot_id = Some(platform::boot_id().to_owned());
            a.record.reason = Some("its waiting parent was killed; the program runs on".to_owned());
        }
        RunState::Running => {
            a.ended = Some(Ended {
                exit: None,
                seen: false,
                stopped: false,
            });
            a.record.state = ProcState::Failed;
            a.record.pid = None;
            a.record.reason = Some("status unknown: its waiting parent was killed".to_owned());
        }
        // The supervisor died between this record and the waiting parent's first write:
        // the waiting parent, if it was spawned, is found by its tags.
        RunState::Starting => {
            let t = tagged?;
            a.pid = t.pid;
            a.start_time = t.start_time;
            a.started_at.clone_from(&t.started_at);
            a.record.state = ProcState::Running;
            a.record.pid = t.pid;
            a.record.pgid = t.pid;
            a.record.start_time = Some(t.start_time);
            a.record.boot_id = Some(platform::boot_id().to_owned());
        }
    }
    Some(a)
}

/// The program of a run whose waiting parent is gone, found by its tags when the run record
/// does not name it (the waiting parent was killed before it could write it): a live process
/// tagged with the oneshot's name, in the waiting parent's process group (a group outlives
/// its leader, and its id is not reused while it has members), started after the waiting
/// parent; the oldest such process is the program.
fn orphan_program(run: &RunRecord, name: &str, tagged: &[platform::Tagged]) -> Option<(i32, u64)> {
    let (Some(parent), Some(parent_start)) = (run.pid, run.start_time) else {
        return None;
    };
    tagged
        .iter()
        .filter(|t| {
            t.pgid == parent
                && t.pid != parent
                && t.process.as_deref() == Some(name)
                && t.start_time >= parent_start
        })
        .min_by_key(|t| (t.start_time, t.pid))
        .map(|t| (t.pid, t.start_time))
}

fn from_record(rec: ProcessRecord, pid: Option<i32>) -> Adoptable {
    Adoptable {
        was: Recorded::from_state(rec.state, rec.reason.as_deref()),
        ended: None,
        from_run: false,
        pid,
        start_time: rec.start_time.unwrap_or(0),
        started_at: rec.started_at.clone(),
        restarts: rec.restarts,
        old_spec: rec
            .spec
            .as_ref()
            .and_then(crate::registry::StoredSpec::value)
            .and_then(|v| serde_json::from_value(v).ok()),
        old_hash: rec.config_hash.clone(),
        record: rec,
    }
}

fn read_pid_file(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Main processes found by their tags (group leaders), one per process name.
fn from_tags(paths: &Paths) -> BTreeMap<String, Adoptable> {
    let mut found: BTreeMap<String, platform::Tagged> = BTreeMap::new();
    for t in platform::tagged_processes(Some(&paths.project_id)) {
        let Some(name) = t.process.clone() else {
            continue;
        };
        if t.pid != t.pgid {
            continue;
        }
        let from_pid_file = read_pid_file(&paths.pid_file(&name)) == Some(t.pid);
        match found.get(&name) {
            Some(seen) if read_pid_file(&paths.pid_file(&name)) == Some(seen.pid) => {}
            Some(seen) if !from_pid_file && seen.start_time <= t.start_time => {}
            _ => {
                found.insert(name, t);
            }
        }
    }
    found
        .into_iter()
        .map(|(name, t)| {
            let mut rec = ProcessRecord::new(ProcState::Running, paths.log_file(&name));
            rec.pid = Some(t.pid);
            rec.pgid = Some(t.pgid);
            rec.start_time = Some(t.start_time);
            rec.boot_id = Some(platform::boot_id().to_owned());
            rec.reason = Some("adopted after the registry was lost".to_owned());
            let a = Adoptable {
                pid: Some(t.pid),
                start_time: t.start_time,
                started_at: None,
                restarts: 0,
                old_spec: None,
                old_hash: String::new(),
                record: rec,
                was: Recorded::NotReady,
                ended: None,
                from_run: false,
            };
            (name, a)
        })
        .collect()
}

/// The environment an adopted process was started with, without procs' own tags: the
/// base layer for its restarts.
pub fn ambient_env(pid: i32) -> Option<BTreeMap<String, String>> {
    let mut env = platform::environ_map(pid)?;
    for key in [
        platform::ENV_PROJECT,
        platform::ENV_PROJECT_ID,
        platform::ENV_PROCESS,
    ] {
        env.remove(key);
    }
    Some(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> Paths {
        Paths::with_state_dir(
            Path::new("/nonexistent/project"),
            "/nonexistent/.procs".into(),
        )
    }

    fn exited(code: i32) -> RunRecord {
        let mut run = RunRecord::starting("h1");
        run.state = RunState::Exited;
        run.pid = Some(i32::MAX - 3);
        run.start_time = Some(5);
        run.code = Some(code);
        run
    }

    fn known(hash: &str, restarts: u32) -> Adoptable {
        let mut a = from_record(
            ProcessRecord::new(ProcState::Running, "seed.log".into()),
            None,
        );
        a.old_hash = hash.to_owned();
        a.restarts = restarts;
        a
    }

    #[test]
    fn a_record_keeps_its_real_readiness_unhealthy_is_not_ready() {
        let mut rec = ProcessRecord::new(ProcState::Unhealthy, "web.log".into());
        rec.reason = Some("unhealthy: refused".into());
        assert_eq!(
            from_record(rec, Some(5)).was,
            Recorded::Unhealthy {
                reason: "unhealthy: refused".into()
            }
        );
        for (state, was) in [
            (ProcState::Healthy, Recorded::Ready),
            (ProcState::Running, Recorded::Ready),
            (ProcState::Starting, Recorded::NotReady),
        ] {
            let rec = ProcessRecord::new(state, "web.log".into());
            assert_eq!(from_record(rec, Some(5)).was, was, "{state:?}");
        }
    }

    #[test]
    fn a_recorded_exit_is_learned_with_the_hash_it_ran_with() {
        let p = paths();
        let a = from_run(&p, "seed", &exited(3), None, None).expect("adoptable");
        assert_eq!(a.pid, None);
        assert_eq!(a.ended.map(|e| e.exit), Some(Some(ExitInfo::Code(3))));
        assert_eq!(a.record.state, ProcState::Failed);
        assert_eq!(a.record.exit_code, Some(3));
        assert_eq!(a.old_hash, "h1");
        assert!(a.from_run && a.record.oneshot);
        let a = from_run(&p, "seed", &exited(0), None, None).expect("adoptable");
        assert_eq!(a.record.state, ProcState::Completed);
    }

    #[test]
    fn a_recorded_exit_is_completed_when_its_code_is_a_success_code_of_its_config() {
        let p = paths();
        let mut same = known("h1", 0);
        let mut spec: Process = serde_json::from_value(serde_json::json!({
            "name": "seed", "command": "true", "cwd": "/", "env": {}, "depends_on": [],
            "healthcheck": null, "ports": [], "restart": "no",
            "backoff": {"initial": "500ms", "max": "30s"}, "max_restarts": 2,
            "min_uptime": "10s", "ready_after": "1s", "oneshot": true,
            "success_exit_codes": [0, 3],
            "stop_signal": {"name": "SIGTERM", "number": 15}, "stop_timeout": "10s",
            "stop_command": null, "disabled": false, "logs": {"max_size": 1024, "keep": 1}
        }))
        .expect("a process");
        spec.oneshot = true;
        same.old_spec = Some(spec);
        let a = from_run(&p, "seed", &exited(3), Some(&same), None).expect("adoptable");
        assert_eq!(a.record.state, ProcState::Completed, "3 is a success code");
        let a = from_run(&p, "seed", &exited(1), Some(&same), None).expect("adoptable");
        assert_eq!(a.record.state, ProcState::Failed);
        let a = from_run(&p, "seed", &exited(3), None, None).expect("adoptable");
        assert_eq!(a.record.state, ProcState::Failed, "unknown config: only 0");
    }

    #[test]
    fn the_registry_record_of_the_same_run_gives_its_restarts_another_run_does_not() {
        let p = paths();
        let same = known("h1", 4);
        let a = from_run(&p, "seed", &exited(0), Some(&same), None).expect("adoptable");
        assert_eq!(a.restarts, 4);
        let other = known("h0", 4);
        let a = from_run(&p, "seed", &exited(0), Some(&other), None).expect("adoptable");
        assert_eq!(a.restarts, 0);
        assert_eq!(a.old_hash, "h1", "the run record says what ran");
    }

    #[test]
    fn a_run_stopped_by_request_stays_stopped() {
        let mut run = exited(0);
        run.code = None;
        run.signal = Some(15);
        run.seen = true;
        run.stopped = true;
        let a = from_run(&paths(), "seed", &run, None, None).expect("adoptable");
        assert_eq!(a.record.state, ProcState::Stopped);
        let ended = a.ended.expect("ended");
        assert!(ended.stopped && ended.seen);
    }

    #[test]
    fn a_waiting_parent_gone_without_a_record_is_unknown_never_guessed() {
        let mut run = exited(0);
        run.state = RunState::Running;
        run.code = None;
        run.boot_id = Some(platform::boot_id().to_owned());
        let a = from_run(&paths(), "seed", &run, None, None).expect("adoptable");
        assert_eq!(a.ended.map(|e| e.exit), Some(None));
        assert_eq!(a.record.state, ProcState::Failed);
    }

    fn tagged(pid: i32, group: i32, start_time: u64, process: &str) -> platform::Tagged {
        platform::Tagged {
            pid,
            ppid: 1,
            pgid: group,
            start_time,
            project_id: "p".into(),
            project: None,
            process: Some(process.into()),
        }
    }

    #[test]
    fn the_orphaned_program_of_a_killed_waiting_parent_is_found_in_its_group() {
        let mut run = exited(0);
        run.state = RunState::Running;
        run.pid = Some(40);
        run.start_time = Some(100);
        let found = [
            tagged(41, 99, 150, "seed"), // another group
            tagged(42, 40, 90, "seed"),  // older than the waiting parent: not its program
            tagged(43, 40, 120, "other"),
            tagged(45, 40, 130, "seed"), // the program's child
            tagged(44, 40, 110, "seed"), // the program
        ];
        assert_eq!(orphan_program(&run, "seed", &found), Some((44, 110)));
        assert_eq!(orphan_program(&run, "seed", &found[..3]), None);
        run.start_time = None;
        assert_eq!(orphan_program(&run, "seed", &found), None);
    }

    #[test]
    fn a_run_is_the_run_of_its_waiting_parent_or_of_its_program() {
        let mut run = exited(0);
        run.pid = Some(40);
        run.start_time = Some(100);
        run.program_pid = Some(44);
        run.program_start_time = Some(110);
        assert!(run.is_run_of(40, 100));
        assert!(run.is_run_of(44, 110));
        assert!(run.is_run_of(44, 0));
        assert!(!run.is_run_of(44, 111));
        assert!(!run.is_run_of(45, 110));
    }

    #[test]
    fn a_starting_record_is_adopted_through_the_tags_or_was_never_spawned() {
        let p = paths();
        let run = RunRecord::starting("h1");
        assert!(from_run(&p, "seed", &run, None, None).is_none());
        let mut tagged = known("", 0);
        tagged.pid = Some(77);
        tagged.start_time = 9;
        let a = from_run(&p, "seed", &run, None, Some(&tagged)).expect("adoptable");
        assert_eq!((a.pid, a.start_time), (Some(77), 9));
        assert_eq!(a.old_hash, "h1");
        assert!(a.ended.is_none());
    }
}
