//! `procs status` (`ps`): the registry, verified against the live system.
//!
//! Works with or without a supervisor: it reads `state.json` and checks each recorded
//! pid's identity (kernel start time, boot id). CPU and memory come from our own pids
//! only; nothing scans the whole process table.

use std::time::SystemTime;

use serde::Serialize;

use super::args::Global;
use super::out::Out;
use super::{project, render};
use crate::control::protocol::Snapshot;
use crate::error::exit;
use crate::membership::Membership;
use crate::paths::Paths;
use crate::platform;
use crate::registry::{self, Loaded, ProcState, ProcessRecord, Registry};

#[derive(Debug, Serialize)]
pub(super) struct SupervisorJson {
    pub running: bool,
    pub pid: Option<i32>,
}

#[derive(Debug, Serialize)]
pub(super) struct ProcessJson {
    pub name: String,
    pub state: ProcState,
    reason: Option<String>,
    pid: Option<i32>,
    pgid: Option<i32>,
    supervised: bool,
    started_at: Option<String>,
    restarts: u32,
    exit_code: Option<i32>,
    signal: Option<i32>,
    ports: Vec<u16>,
    cpu_percent: Option<f64>,
    memory_bytes: Option<u64>,
    /// Live processes in the tree (the main one and every member).
    processes: Option<usize>,
    log: String,
    next_restart_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct StatusJson {
    project: String,
    project_dir: String,
    project_id: String,
    pub supervisor: SupervisorJson,
    pub processes: Vec<ProcessJson>,
}

/// A record as it really is: a live state whose pid does not check out is not running.
/// `verified` is the recorded pid if the live process is the recorded one.
pub(super) fn effective(
    rec: &ProcessRecord,
    verified: Option<i32>,
    supervised: bool,
) -> (ProcState, Option<String>, Option<i32>) {
    if rec.state.is_live() && verified.is_none() {
        let reason = if supervised {
            "not running (its exit was not recorded yet)"
        } else {
            "not running (it exited while no supervisor was watching)"
        };
        return (ProcState::Exited, Some(reason.to_owned()), None);
    }
    if !supervised
        && matches!(
            rec.state,
            ProcState::Pending | ProcState::Backoff | ProcState::Starting
        )
    {
        return (
            ProcState::Stopped,
            Some("the supervisor is not running".to_owned()),
            None,
        );
    }
    (rec.state, rec.reason.clone(), verified)
}

/// State, reason, exit code and signal learned from a run record.
type Learned = (ProcState, Option<String>, Option<i32>, Option<i32>);

/// How a oneshot's run ended while no supervisor watched, as its waiting parent recorded it
/// (`registry::runs`): the state, reason, code and signal to show instead of a guess.
fn learned_end(paths: &Paths, name: &str, rec: &ProcessRecord) -> Option<Learned> {
    let run = crate::registry::runs::read(&paths.run_file(name))?;
    let exit = run.exit()?;
    if run.stopped {
        return None;
    }
    if rec.pid.is_some() && run.pid != rec.pid {
        return None;
    }
    let success_codes: Vec<i32> = rec
        .spec
        .as_ref()
        .and_then(crate::registry::StoredSpec::value)
        .and_then(|v| serde_json::from_value(v["success_exit_codes"].clone()).ok())
        .unwrap_or_else(|| vec![0]);
    let state = crate::registry::runs::oneshot_end(&success_codes, Some(exit), false);
    Some((
        state,
        Some(if run.seen {
            exit.to_string()
        } else {
            format!("{exit} while no supervisor was running")
        }),
        run.code,
        run.signal,
    ))
}

/// Records for the live processes tagged with this project's id, one per process name:
/// its main pid is the tagged one whose parent is not tagged with the same name.
fn found_by_tags(paths: &Paths) -> std::collections::BTreeMap<String, ProcessRecord> {
    let tagged = platform::tagged_processes(Some(&paths.project_id));
    let boot_id = platform::boot_id();
    let mut found = std::collections::BTreeMap::new();
    for t in &tagged {
        let Some(name) = t.process.as_deref() else {
            continue;
        };
        let parent_same = tagged
            .iter()
            .any(|p| p.pid == t.ppid && p.process.as_deref() == Some(name));
        if parent_same {
            continue;
        }
        let mut rec = ProcessRecord::new(ProcState::Running, paths.log_file(name));
        rec.reason = Some("found by its tags: the registry is missing".to_owned());
        rec.pid = Some(t.pid);
        rec.pgid = Some(t.pgid);
        rec.start_time = Some(t.start_time);
        rec.boot_id = Some(boot_id.to_owned());
        let keep = found
            .get(name)
            .is_none_or(|old: &ProcessRecord| old.pid.is_some_and(|p| t.pid < p));
        if keep {
            found.insert(name.to_owned(), rec);
        }
    }
    found
}

fn uptime(started_at: Option<&str>) -> String {
    let Some(started) = started_at.and_then(|s| humantime::parse_rfc3339(s).ok()) else {
        return "-".to_owned();
    };
    let secs = SystemTime::now()
        .duration_since(started)
        .map_or(0, |d| d.as_secs());
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 86400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

pub(super) fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1}G", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1}M", n as f64 / f64::from(1u32 << 20)),
        n => format!("{}K", n / 1024),
    }
}

/// The registry of `paths` (an empty one when missing or corrupt, completed with the
/// processes found by their tags when it is lost).
pub(super) fn load_registry(paths: &Paths) -> anyhow::Result<Registry> {
    let loaded = registry::load(&paths.state_file, false).map_err(|source| {
        crate::error::Error::RegistryUnreadable {
            path: paths.state_file.clone(),
            source,
        }
    })?;
    let lost = !matches!(loaded, Loaded::Ok(_));
    let mut registry = match loaded {
        Loaded::Ok(reg) => reg,
        Loaded::Missing => Registry::new(
            paths
                .project_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
                .as_str(),
            &paths.project_dir,
            &paths.project_id,
        ),
        Loaded::Corrupt { error, .. } => {
            eprintln!(
                "warning: {} is corrupt ({error}); `procs up` or `procs down` will rebuild it",
                paths.state_file.display()
            );
            Registry::new("", &paths.project_dir, &paths.project_id)
        }
    };
    // Without a registry, the processes still carry their tags: find them, never claim
    // that nothing runs.
    if lost {
        for (name, rec) in found_by_tags(paths) {
            registry.processes.entry(name).or_insert(rec);
        }
    }
    Ok(registry)
}

/// What `status --json` prints for `names` (all when empty), verified against the system.
pub(super) fn collect(paths: &Paths, registry: &Registry, names: &[String]) -> StatusJson {
    let supervisor_pid = registry
        .supervisor
        .as_ref()
        .filter(|s| platform::is_alive_same(s.pid, s.start_time, &s.boot_id))
        .map(|s| s.pid);
    let supervised = supervisor_pid.is_some();
    let selected: Vec<(&String, &ProcessRecord)> = registry
        .processes
        .iter()
        .filter(|(name, _)| names.is_empty() || names.contains(name))
        .collect();
    // One read of /proc/PID/stat per process checks its identity (pid, kernel start time,
    // boot id: `ProcessRecord::verified`) and gives its usage.
    let boot_id = platform::boot_id();
    let mut identities = Vec::new();
    for (_, rec) in &selected {
        if let (Some(pid), Some(start), Some(boot)) =
            (rec.pid, rec.start_time, rec.boot_id.as_deref())
            && boot == boot_id
        {
            identities.push((pid, start));
        }
    }
    let mut usages = platform::verified_usages(&identities, boot_id).into_iter();
    // CPU, memory and a process count are the whole tree's: every member, from the cgroup
    // leaf where it is the whole answer, else from one process table (no environment
    // reads: the cgroup and the ancestry suffice for a live main pid).
    let (membership, _) = Membership::for_cli(
        &paths.project_id,
        registry.cgroup.as_deref(),
        registry.no_cgroup.as_deref(),
        supervisor_pid,
        registry.current_lineage(),
    );
    // The whole process table is read only for a process whose cgroup leaf is not the
    // whole answer (lineage mode, recorded lineage, an adopted main outside its leaf).
    let table: std::cell::OnceCell<Vec<platform::ProcStat>> = std::cell::OnceCell::new();
    let mut rows = Vec::with_capacity(selected.len());
    for (name, rec) in selected {
        let usage = match (rec.pid, rec.start_time, rec.boot_id.as_deref()) {
            (Some(_), Some(_), Some(boot)) if boot == boot_id => usages.next().flatten(),
            _ => None,
        };
        let verified = usage.and(rec.pid);
        let tree = usage.map(|main| tree_usage(&membership, name, verified, main, &table));
        let count = tree.map(|(_, count)| count);
        let usage = tree.map(|(usage, _)| usage);
        let (mut state, mut reason, pid) = effective(rec, verified, supervised);
        let (mut exit_code, mut signal) = (rec.exit_code, rec.signal);
        if rec.oneshot
            && !supervised
            && registry.supervisor.is_some()
            && pid.is_none()
            && let Some(learned) = learned_end(paths, name, rec)
        {
            (state, reason, exit_code, signal) = learned;
        }
        rows.push(ProcessJson {
            name: name.clone(),
            state,
            reason,
            pid,
            pgid: pid.and(rec.pgid),
            supervised: supervised && pid.is_some(),
            started_at: pid.and(rec.started_at.clone()),
            restarts: rec.restarts,
            exit_code,
            signal,
            ports: rec.ports.clone(),
            cpu_percent: usage.as_ref().map(rounded_cpu),
            memory_bytes: usage.map(|u| u.memory_bytes),
            processes: count,
            log: rec.log.display().to_string(),
            next_restart_at: rec
                .next_restart_at
                .clone()
                .filter(|_| state == ProcState::Backoff),
        });
    }
    StatusJson {
        project: registry.project.clone(),
        project_dir: paths.project_dir.display().to_string(),
        project_id: paths.project_id.clone(),
        supervisor: SupervisorJson {
            running: supervised,
            pid: supervisor_pid,
        },
        processes: rows,
    }
}

/// One decimal of CPU percent, as `status --json` shows it.
fn rounded_cpu(u: &platform::Usage) -> f64 {
    (u.cpu_percent * 10.0).round() / 10.0
}

/// CPU, memory and the live process count of `name`'s whole tree, given the usage of its
/// main pid `main_pid`: every member, from the cgroup leaf where it is the whole answer,
/// else from one process table (read at most once per call through `table`).
fn tree_usage(
    membership: &Membership,
    name: &str,
    main_pid: Option<i32>,
    main: platform::Usage,
    table: &std::cell::OnceCell<Vec<platform::ProcStat>>,
) -> (platform::Usage, usize) {
    let members: Vec<i32> = membership
        .leaf_members(name, main_pid)
        .unwrap_or_else(|| {
            membership.members_of(
                name,
                main_pid,
                &[],
                table.get_or_init(platform::process_table),
            )
        })
        .into_iter()
        .filter(|p| Some(*p) != main_pid)
        .collect();
    let count = 1 + members.len();
    let usage = platform::usages(&members)
        .into_iter()
        .flatten()
        .fold(main, |sum, u| platform::Usage {
            cpu_percent: sum.cpu_percent + u.cpu_percent,
            memory_bytes: sum.memory_bytes + u.memory_bytes,
        });
    (usage, count)
}

/// The project cgroup the processes of a live view run in: the parent of a main pid's
/// cgroup leaf, when it is this project's (`None`: lineage mechanism, or nothing runs).
fn live_project_cgroup(paths: &Paths, view: &Snapshot) -> Option<std::path::PathBuf> {
    view.processes.iter().filter_map(|p| p.pid).find_map(|pid| {
        let leaf = platform::cgroup::cgroup_of(pid)?;
        let project = leaf.parent()?.to_path_buf();
        platform::cgroup::is_project_cgroup(&project, &paths.project_id).then_some(project)
    })
}

/// What `status --json` prints for `names` (all when empty), from a supervisor's
/// subscription (its snapshot with every later event applied) instead of the registry:
/// the state is the supervisor's own, read from no file; CPU, memory, the process count
/// and the pgid are read from /proc now, as [`collect`] does (metrics are not state).
pub(super) fn collect_live(paths: &Paths, view: &Snapshot, names: &[String]) -> StatusJson {
    let cgroup = live_project_cgroup(paths, view);
    let (membership, _) = Membership::for_cli(
        &paths.project_id,
        cgroup.as_deref(),
        None,
        Some(view.supervisor_pid),
        crate::membership::Lineage::new(),
    );
    let table: std::cell::OnceCell<Vec<platform::ProcStat>> = std::cell::OnceCell::new();
    let rows = view
        .processes
        .iter()
        .filter(|p| names.is_empty() || names.contains(&p.name))
        .map(|p| {
            let stat = p.pid.and_then(platform::stat).filter(|s| !s.is_zombie());
            let main = p.pid.and_then(platform::usage);
            let tree = main.map(|main| tree_usage(&membership, &p.name, p.pid, main, &table));
            ProcessJson {
                name: p.name.clone(),
                state: p.state,
                reason: p.reason.clone(),
                pid: p.pid,
                pgid: stat.map(|s| s.pgid),
                supervised: p.pid.is_some(),
                started_at: p.pid.and(p.started_at.clone()),
                restarts: p.restarts,
                exit_code: p.exit_code,
                signal: p.signal,
                ports: p.ports.clone(),
                cpu_percent: tree.as_ref().map(|(u, _)| rounded_cpu(u)),
                memory_bytes: tree.map(|(u, _)| u.memory_bytes),
                processes: tree.map(|(_, count)| count),
                log: paths.log_file(&p.name).display().to_string(),
                next_restart_at: p
                    .next_restart_at
                    .clone()
                    .filter(|_| p.state == ProcState::Backoff),
            }
        })
        .collect();
    StatusJson {
        project: view.project.clone(),
        project_dir: paths.project_dir.display().to_string(),
        project_id: paths.project_id.clone(),
        supervisor: SupervisorJson {
            running: true,
            pid: Some(view.supervisor_pid),
        },
        processes: rows,
    }
}

pub fn status(global: &Global, out: &Out, names: &[String]) -> anyhow::Result<i32> {
    let project = project::locate(global)?;
    let paths = &project.paths;
    let registry = load_registry(paths)?;
    let recorded = registry.processes.keys().cloned().collect();
    project::check_names(&project.file, names, &recorded, || {
        project::load_file(&project)
            .map(|c| project::defined(&c))
            .unwrap_or_default()
    })?;
    let json = collect(paths, &registry, names);
    if out.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(exit::OK);
    }
    let supervised = json.supervisor.running;
    let rows = json.processes;
    if rows.is_empty() {
        if !out.quiet {
            println!("no processes recorded for this project; run `procs up`");
        }
        return Ok(exit::OK);
    }
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let mut text = String::new();
    text.push_str(&format!(
        "{:<width$}  {:<10} {:>7} {:>7} {:>4} {:>6} {:>7}  {:<12} {}\n",
        "NAME", "STATE", "PID", "UPTIME", "RST", "CPU%", "MEM", "PORTS", "REASON"
    ));
    for r in &rows {
        let (c, reset) = if out.color {
            (render::state_color(r.state), "\x1b[0m")
        } else {
            ("", "")
        };
        let ports: Vec<String> = r.ports.iter().map(ToString::to_string).collect();
        let mut reason = r.reason.clone().unwrap_or_default();
        if let Some(at) = &r.next_restart_at {
            reason = format!("{reason} (next try {at})");
        }
        text.push_str(&format!(
            "{:<width$}  {c}{:<10}{reset} {:>7} {:>7} {:>4} {:>6} {:>7}  {:<12} {}\n",
            r.name,
            r.state.as_str(),
            r.pid.map_or("-".to_owned(), |p| p.to_string()),
            if r.pid.is_some() {
                uptime(r.started_at.as_deref())
            } else {
                "-".to_owned()
            },
            r.restarts,
            r.cpu_percent.map_or("-".to_owned(), |c| format!("{c:.1}")),
            r.memory_bytes.map_or("-".to_owned(), bytes),
            if ports.is_empty() {
                "-".to_owned()
            } else {
                ports.join(",")
            },
            reason,
        ));
    }
    if !supervised && !out.quiet && rows.iter().any(|r| r.pid.is_some()) {
        text.push_str(
            "supervisor: not running (processes above are unsupervised; `procs up` adopts them)\n",
        );
    }
    print!("{text}");
    Ok(exit::OK)
}
