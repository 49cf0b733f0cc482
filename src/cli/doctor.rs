//! `procs doctor [--fix]`: find what a crash, a lost registry or a misbehaving daemon
//! left behind, and (with `--fix`) clean it, saying what was done.
//!
//! Checks: stale registry records (a live state whose pid is gone or reused), stale pid
//! files, tagged processes of this project that procs does not know (escapees, leftovers
//! after a lost registry), zombies whose parent is our supervisor, declared ports held by
//! processes outside this project, a dead supervisor's socket, and empty cgroups left by a
//! project whose supervisor is gone. It also says which membership mechanism is in use.
//!
//! Invariant: `--fix` acts only while it holds the supervisor lock — taken before anything
//! is examined and held until every fix is done — and no supervisor holds the project's
//! abstract socket. With a live supervisor (even one too slow to answer, or one whose
//! `.procs/` was deleted) it only reports: it never stops what a supervisor runs or is
//! starting, and never deletes a live socket. Holding the lock also keeps an `up` from
//! starting a supervisor in the middle of the fixes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::args::Global;
use super::out::Out;
use super::{launch, project};
use crate::config::model::defaults;
use crate::error::{Error, exit};
use crate::membership::Membership;
use crate::paths::Paths;
use crate::platform;
use crate::registry::{self, Loaded, ProcState};
use crate::stop::{self, Scanner};

struct Finding {
    what: String,
    hint: Option<String>,
    fixed: Option<String>,
    /// Not for `--fix`: only the user can act (a stranger holding a declared port).
    manual: bool,
}

impl Finding {
    /// A situation of the catalogue, on one line, with its hint.
    fn of(err: &Error) -> Self {
        Self {
            what: err.one_line(),
            hint: err.hint(),
            fixed: None,
            manual: false,
        }
    }
}

pub fn doctor(global: &Global, out: &Out, fix_requested: bool) -> anyhow::Result<i32> {
    let project = project::locate(global)?;
    let paths = project.paths;
    let config = project::load(global).ok();
    // `--fix` holds the lock for the whole run; a live supervisor turns it into a report.
    let fix_lock = if fix_requested {
        lock_out_supervisors(&paths)
    } else {
        None
    };
    let fix = fix_lock.is_some();
    let supervised = !fix && (launch::running(&paths) || !launch::lock_is_free(&paths));
    let mut findings: Vec<Finding> = Vec::new();
    let mut registry = match registry::load(&paths.state_file, false)? {
        Loaded::Ok(reg) => Some(reg),
        Loaded::Missing => None,
        Loaded::Corrupt { error, .. } => {
            findings.push(Finding {
                hint: None,
                what: format!("the registry is corrupt: {error}"),
                fixed: None,
                manual: false,
            });
            None
        }
    };
    // Stale records and what they cover.
    let mut known: BTreeSet<String> = BTreeSet::new();
    let mut stale = Vec::new();
    if let Some(reg) = &registry {
        for (name, rec) in &reg.processes {
            if rec.verified().is_some() {
                known.insert(name.clone());
            } else if rec.pid.is_some() {
                stale.push(name.clone());
                findings.push(Finding {
                    hint: None,
                    what: format!(
                        "stale record: `{name}` says pid {:?} ({}), which is gone or reused",
                        rec.pid, rec.state
                    ),
                    fixed: None,
                    manual: false,
                });
            }
        }
    }
    // Stale pid files.
    let mut stale_pid_files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&paths.pids_dir) {
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let Some(name) = file.strip_suffix(".pid") else {
                continue;
            };
            let pid: Option<i32> = std::fs::read_to_string(entry.path())
                .ok()
                .and_then(|s| s.trim().parse().ok());
            let live = registry
                .as_ref()
                .and_then(|r| r.processes.get(name))
                .and_then(registry::ProcessRecord::verified);
            if pid.is_none() || pid != live {
                stale_pid_files.push(entry.path());
                findings.push(Finding {
                    hint: None,
                    what: format!("stale pid file {} (pid {pid:?})", entry.path().display()),
                    fixed: None,
                    manual: false,
                });
            }
        }
    }
    let supervisor = registry
        .as_ref()
        .and_then(|r| r.supervisor.as_ref())
        .filter(|s| platform::is_alive_same(s.pid, s.start_time, &s.boot_id))
        .map(|s| s.pid);
    let (membership, warnings) = Membership::for_cli(
        &paths.project_id,
        registry.as_ref().and_then(|r| r.cgroup.as_deref()),
        registry.as_ref().and_then(|r| r.no_cgroup.as_deref()),
        supervisor,
        registry
            .as_ref()
            .map(registry::Registry::current_lineage)
            .unwrap_or_default(),
    );
    for warning in &warnings {
        findings.push(Finding::of(warning));
    }
    // Members nobody supervises: tagged processes, cgroup members and recorded descendants
    // of process names with no verified record.
    let tagged = platform::tagged_processes(Some(&paths.project_id));
    let table = platform::process_table();
    let mut unknown: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    let mut names: BTreeSet<String> = tagged.iter().filter_map(|t| t.process.clone()).collect();
    names.extend(membership.known_names());
    for name in &names {
        let supervised_name = supervisor.is_some()
            && registry
                .as_ref()
                .is_some_and(|r| r.processes.contains_key(name));
        if known.contains(name) || supervised_name {
            continue;
        }
        let pids = membership.members_of(name, None, &tagged, &table);
        if !pids.is_empty() {
            unknown.insert(name.clone(), pids.into_iter().collect());
        }
    }
    for (name, pids) in &unknown {
        let cmds: Vec<String> = pids
            .iter()
            .map(|p| format!("{p} ({})", platform::cmdline(*p).unwrap_or_default()))
            .collect();
        findings.push(Finding {
            hint: None,
            what: format!(
                "processes of `{name}` that procs does not supervise: {}",
                cmds.join(", ")
            ),
            fixed: None,
            manual: false,
        });
    }
    let project_members = membership.members_of("", None, &tagged, &table);
    let membership = Arc::new(membership);
    // This project's cgroup with no supervisor to use it: empty (left behind), or holding
    // processes procs never put there (in the project cgroup itself: never signalled).
    let mut stale_cgroups = Vec::new();
    if supervisor.is_none()
        && let Some(project) = membership.project_cgroup()
        && platform::cgroup::exists(project)
    {
        let strangers = with_commands(platform::cgroup::own_procs(project));
        if !strangers.is_empty() {
            findings.push(Finding::of(&Error::CgroupNotRemoved {
                path: project.to_path_buf(),
                error: String::new(),
                strangers,
            }));
        } else if !platform::cgroup::is_populated(project) {
            findings.push(Finding::of(&Error::CgroupLeftBehind {
                path: project.to_path_buf(),
                project_dir: Some(paths.project_dir.clone()),
                dir_gone: false,
                ours: true,
                holds: Vec::new(),
            }));
            stale_cgroups.push(project.to_path_buf());
        }
    }
    // Other projects' cgroups beside ours that no supervisor uses: named (a note), never
    // touched — `--fix` cleans only this project's.
    let notes: Vec<Finding> = left_behind_elsewhere(&paths.project_id)
        .iter()
        .map(Finding::of)
        .collect();
    // Zombies whose parent is our supervisor.
    if let Some(sup) = registry.as_ref().and_then(|r| r.supervisor.as_ref())
        && platform::is_alive_same(sup.pid, sup.start_time, &sup.boot_id)
    {
        let zombies = platform::children_zombies(sup.pid);
        if !zombies.is_empty() {
            findings.push(Finding {
                hint: None,
                what: format!("zombie children of the supervisor (pid {}): {zombies:?}; it reaps them on the next SIGCHLD", sup.pid),
                fixed: None,
                manual: false,
            });
        }
    }
    // Declared ports held by others.
    if let Some(config) = &config {
        for spec in config.processes.values() {
            for port in &spec.ports {
                for holder in platform::port_holders(port.port) {
                    if holder.project_id.as_deref() == Some(paths.project_id.as_str())
                        || holder.pid.is_some_and(|p| project_members.contains(&p))
                    {
                        continue;
                    }
                    let who = holder.pid.map_or_else(
                        || format!("a process of user {} we cannot inspect", holder.user),
                        |pid| {
                            format!(
                                "pid {pid} ({}, user {})",
                                holder.cmdline.clone().unwrap_or_default(),
                                holder.user
                            )
                        },
                    );
                    findings.push(Finding {
                        hint: Some(
                            "stop that process, or run `procs up --kill-port-owners` to have \
                             procs stop it; `--fix` never stops a process that is not the \
                             project's"
                                .to_owned(),
                        ),
                        what: format!(
                            "port {} declared by `{}` is held by {who}",
                            port.port, spec.name
                        ),
                        fixed: None,
                        manual: true,
                    });
                }
            }
        }
    }
    // A dead supervisor's socket.
    let stale_socket = !supervised && paths.socket.exists();
    if stale_socket {
        findings.push(Finding {
            hint: None,
            what: format!(
                "stale socket {} (no supervisor answers)",
                paths.socket.display()
            ),
            fixed: None,
            manual: false,
        });
    }

    let report_only = fix_requested && !fix;
    if fix {
        apply_fixes(
            &paths,
            config.as_ref(),
            supervised,
            &mut registry,
            &stale,
            &stale_pid_files,
            &unknown,
            stale_socket,
            &mut findings,
            &membership,
        )?;
        // This project's cgroup, emptied by the fixes above, goes too (no supervisor uses it).
        if supervisor.is_none()
            && membership
                .project_cgroup()
                .is_some_and(platform::cgroup::exists)
        {
            let failed = membership.remove_cgroups();
            for path in &stale_cgroups {
                if failed.is_empty() {
                    mark_finding(&mut findings, &path.display().to_string(), "removed");
                }
            }
            for err in &failed {
                findings.push(Finding::of(err));
            }
        }
    }
    let mechanism = membership.mechanism().describe();
    if out.json {
        let list: Vec<serde_json::Value> = findings
            .iter()
            .map(|f| serde_json::json!({ "problem": f.what, "fixed": f.fixed, "hint": f.hint }))
            .collect();
        let notes: Vec<serde_json::Value> = notes
            .iter()
            .map(|f| serde_json::json!({ "note": f.what, "hint": f.hint }))
            .collect();
        println!(
            "{}",
            serde_json::json!({ "membership": mechanism, "findings": list, "notes": notes })
        );
    } else if findings.is_empty() {
        println!("{mechanism}");
        print_notes(&notes);
        println!("no problems found");
    } else {
        println!("{mechanism}");
        print_notes(&notes);
        if report_only {
            println!(
                "note: a supervisor runs for this project, so `--fix` only reports (the \
                 supervisor owns its processes and the registry); run `procs down` first"
            );
        }
        for f in &findings {
            println!("problem: {}", f.what);
            match (&f.fixed, &f.hint) {
                (Some(done), _) => println!("  fixed: {done}"),
                (None, Some(hint)) => println!("  hint: {hint}"),
                (None, None) => {}
            }
        }
        if !fix_requested && findings.iter().any(|f| !f.manual) {
            println!("hint: run `procs doctor --fix` to clean these up");
        }
    }
    let unfixed = findings.iter().any(|f| f.fixed.is_none());
    Ok(if unfixed { exit::FAILED } else { exit::OK })
}

fn print_notes(notes: &[Finding]) {
    for note in notes {
        println!("note: {}", note.what);
        if let Some(hint) = &note.hint {
            println!("  hint: {hint}");
        }
    }
}

fn with_commands(pids: Vec<i32>) -> Vec<(i32, String)> {
    pids.into_iter()
        .map(|pid| (pid, platform::cmdline(pid).unwrap_or_default()))
        .collect()
}

/// The project cgroups beside this project's (under the caller's cgroup) that no supervisor
/// uses: none answers on the abstract socket its owner's supervisor would hold, and the
/// project index knows no live supervisor for it.
fn left_behind_elsewhere(project_id: &str) -> Vec<Error> {
    use std::os::unix::fs::MetadataExt as _;
    let platform::cgroup::Detected::Usable { parent } = platform::cgroup::detect() else {
        return Vec::new();
    };
    let index = crate::index::load();
    let mut out = Vec::new();
    for (id, path) in platform::cgroup::project_cgroups(&parent) {
        if id == project_id {
            continue;
        }
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if platform::connect_abstract(&crate::paths::singleton_name(meta.uid(), &id)).is_ok() {
            continue;
        }
        let known = index
            .iter()
            .find(|e| crate::paths::project_id(&e.project_dir) == id);
        let live = known.is_some_and(|e| {
            matches!(
                registry::load(&e.state_dir.join("state.json"), false),
                Ok(Loaded::Ok(reg)) if reg.supervisor.as_ref().is_some_and(|s| platform::is_alive_same(s.pid, s.start_time, &s.boot_id))
            )
        });
        if live {
            continue;
        }
        out.push(Error::CgroupLeftBehind {
            holds: with_commands(platform::cgroup::members(&path)),
            project_dir: known.map(|e| e.project_dir.clone()),
            dir_gone: known.is_some_and(|e| !e.project_dir.exists()),
            ours: false,
            path,
        });
    }
    out
}

fn mark_finding(findings: &mut [Finding], needle: &str, done: &str) {
    for f in findings
        .iter_mut()
        .filter(|f| f.what.contains(needle) && f.fixed.is_none())
    {
        f.fixed = Some(done.to_owned());
    }
}

/// Take the supervisor lock for a `--fix` run, if no supervisor lives: `None` when one holds
/// the lock (answering or not) or the project's abstract socket (its `.procs/` was deleted).
fn lock_out_supervisors(paths: &Paths) -> Option<std::fs::File> {
    paths.ensure_dirs().ok()?;
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&paths.supervisor_lock)
        .ok()?;
    lock.try_lock().ok()?;
    if platform::connect_abstract(&paths.singleton).is_ok() {
        return None;
    }
    Some(lock)
}

#[allow(
    clippy::too_many_arguments,
    reason = "one call site; the pieces are the findings"
)]
fn apply_fixes(
    paths: &Paths,
    config: Option<&crate::config::Config>,
    supervised: bool,
    registry: &mut Option<registry::Registry>,
    stale: &[String],
    stale_pid_files: &[std::path::PathBuf],
    unknown: &BTreeMap<String, Vec<i32>>,
    stale_socket: bool,
    findings: &mut [Finding],
    membership: &Arc<Membership>,
) -> anyhow::Result<()> {
    let mark = |findings: &mut [Finding], needle: &str, done: String| {
        for f in findings
            .iter_mut()
            .filter(|f| f.what.contains(needle) && f.fixed.is_none())
        {
            f.fixed = Some(done.clone());
        }
    };
    // Leftover processes: stop each tree (verified by tag).
    if !unknown.is_empty() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let scanner = Arc::new(Scanner::new(Arc::clone(membership)));
        for (name, pids) in unknown {
            let spec = config.and_then(|c| c.processes.get(name));
            let signal = spec.map_or(platform::Signal::TERM.number(), |s| s.stop_signal.number);
            let timeout = spec.map_or(defaults::STOP_TIMEOUT, |s| s.stop_timeout);
            let leader = pids.first().copied();
            let target = stop::Target {
                project_id: &paths.project_id,
                name,
                pid: leader,
                pgid: leader
                    .and_then(|p| platform::stat(p).map(|s| s.pgid))
                    .filter(|g| Some(*g) == leader),
                signal: Some(signal),
                timeout,
            };
            let report = runtime.block_on(stop::stop_tree(&target, None, &scanner));
            let done = if report.survivors.is_empty() {
                format!("stopped {pids:?}")
            } else {
                format!("stopped, but {:?} survived", report.survivors)
            };
            mark(findings, &format!("processes of `{name}`"), done);
        }
    }
    for path in stale_pid_files {
        if std::fs::remove_file(path).is_ok() {
            mark(findings, &path.display().to_string(), "removed".to_owned());
        }
    }
    if stale_socket && std::fs::remove_file(&paths.socket).is_ok() {
        mark(findings, "stale socket", "removed".to_owned());
    }
    if !stale.is_empty() {
        if supervised {
            return Ok(());
        }
        // The caller holds the supervisor lock: we are the registry's only writer.
        if let Some(reg) = registry.as_mut() {
            for name in stale {
                if let Some(rec) = reg.processes.get_mut(name) {
                    rec.state = if rec.state.is_live() {
                        ProcState::Exited
                    } else {
                        rec.state
                    };
                    rec.reason =
                        Some("its pid was gone or reused (cleaned by `procs doctor`)".to_owned());
                    rec.pid = None;
                    rec.pgid = None;
                    rec.start_time = None;
                    mark(
                        findings,
                        &format!("`{name}` says pid"),
                        "record cleared".to_owned(),
                    );
                }
            }
            registry::save(&paths.state_file, reg)?;
        }
    }
    Ok(())
}
