//! `procs down` and `procs stop`: through the supervisor when one answers; otherwise
//! the CLI takes the supervisor lock itself (so no supervisor can start meanwhile) and
//! stops every verified recorded process and every process tagged with this project's
//! id, with the same verified whole-tree stop the supervisor uses.
//!
//! The supervisor-less stop ([`stop_without_supervisor`]) is shared with the dashboard's
//! API and `procs mcp` (through [`super::ops`]), so their `down`/`stop` of a project whose
//! supervisor is gone stops its leftover processes exactly as `procs down` does.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use super::args::Global;
use super::out::Out;
use super::{project, render};
use crate::config::Config;
use crate::config::graph::Graph;
use crate::config::model::defaults;
use crate::control::protocol::Request;
use crate::error::{Error, exit};
use crate::membership::{Lineage, Membership};
use crate::paths::Paths;
use crate::platform;
use crate::registry::{self, Loaded, ProcState, Registry};
use crate::stop::{self, Scanner};

pub fn down(
    global: &Global,
    out: &Out,
    names: &[String],
    timeout: Option<Duration>,
    full: bool,
) -> anyhow::Result<i32> {
    let project = project::locate(global)?;
    let paths = &project.paths;
    let recorded = project::recorded_names(paths);
    check_names(
        global,
        &project,
        names,
        recorded.as_ref().unwrap_or(&BTreeSet::new()),
    )?;
    if let Ok(supervisor) = crate::control::client::ping(paths) {
        // A name of procs.yaml that the running stack does not have (added since the
        // last `up`) is not running: nothing to stop, and not an unknown name.
        let (names, not_running) = project::split_by_running_stack(recorded.as_ref(), names);
        for name in &not_running {
            if !out.quiet && !out.json {
                println!("{name}: not running (not in the running stack)");
            }
        }
        if names.is_empty() && !not_running.is_empty() {
            return Ok(exit::OK);
        }
        let names = names.as_slice();
        let timeout_ms = timeout.map(|t| t.as_millis() as u64);
        let request = if full {
            Request::Down {
                names: names.to_vec(),
                timeout_ms,
            }
        } else {
            Request::Stop {
                names: names.to_vec(),
                timeout_ms,
            }
        };
        let response = render::request(paths, request, out)?;
        let code = render::report(
            &response,
            out,
            if full { "down" } else { "stop" },
            Duration::ZERO,
        );
        if full && names.is_empty() {
            // The supervisor answers, then exits: return only once it is gone (and its
            // lock released), so a following `procs up` never meets a dying supervisor.
            platform::wait_exit(supervisor, Duration::from_secs(15));
            // It removed the project cgroup as it exited; one it could not remove is still
            // named in the registry it wrote last: say so here, not only in its log.
            if let Ok(Loaded::Ok(reg)) = registry::load(&paths.state_file, false)
                && let Some(path) = reg.cgroup.as_deref()
            {
                let (membership, _) =
                    Membership::for_cli(&paths.project_id, Some(path), None, None, Lineage::new());
                for err in membership.remove_cgroups() {
                    eprint!("{}", crate::error::render_warning(&err));
                }
            }
        }
        return code;
    }
    without_supervisor(global, out, paths, names, timeout)
}

/// Names recorded in the registry, defined in the config, or carried by a tagged process.
fn check_names(
    global: &Global,
    project: &project::Project,
    names: &[String],
    recorded: &BTreeSet<String>,
) -> anyhow::Result<()> {
    let paths = &project.paths;
    project::check_names(&project.file, names, recorded, || {
        let mut known: BTreeSet<String> = project::load(global)
            .map(|c| project::defined(&c))
            .unwrap_or_default();
        known.extend(
            platform::tagged_processes(Some(&paths.project_id))
                .into_iter()
                .filter_map(|t| t.process),
        );
        known
    })?;
    Ok(())
}

/// Hold the supervisor lock for the duration of the work: the registry is ours to write.
fn take_lock(paths: &Paths) -> anyhow::Result<platform::FileLock> {
    paths.ensure_dirs()?;
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&paths.supervisor_lock)
        .context("cannot open the supervisor lock")?;
    // A supervisor that was just killed lets go of the lock only once its last thread has
    // exited, a little after its pid stops answering; one that is starting takes its socket
    // a moment after the lock. Either way, give it a moment before calling it stuck.
    platform::lock_exclusive(&paths.supervisor_lock, LOCK_GRACE)
        .context("cannot lock the supervisor lock")?
        .ok_or_else(|| {
            Error::SupervisorUnresponsive {
                waited: LOCK_GRACE,
                log: paths.supervisor_log.clone(),
            }
            .into()
        })
}

/// How long `down` waits for the lock of a supervisor that does not answer.
const LOCK_GRACE: Duration = Duration::from_secs(3);

struct LocalTarget {
    name: String,
    pid: Option<i32>,
    signal: i32,
    timeout: Duration,
}

fn without_supervisor(
    global: &Global,
    out: &Out,
    paths: &Paths,
    names: &[String],
    timeout: Option<Duration>,
) -> anyhow::Result<i32> {
    let config = project::load(global).ok();
    let wanted = stop_without_supervisor(paths, config.as_ref(), names, timeout)?;
    if !out.quiet && !out.json {
        if wanted.is_empty() {
            println!("nothing to stop");
        } else {
            println!("stopped (no supervisor was running): {}", wanted.join(", "));
        }
    }
    Ok(exit::OK)
}

/// Stop `names` (empty: the whole project, and whatever no process claims) with no
/// supervisor running: under the supervisor lock, by the registry's verified pids and by
/// membership (tags, cgroup, lineage), in reverse dependency order of `config` when there
/// is one. Records them stopped and answers the names it stopped; processes that survive
/// are [`Error::Survivors`]. Warnings (a corrupt registry, a cgroup left) go to stderr.
pub fn stop_without_supervisor(
    paths: &Paths,
    config: Option<&Config>,
    names: &[String],
    timeout: Option<Duration>,
) -> anyhow::Result<Vec<String>> {
    let _lock = take_lock(paths)?;
    let mut registry = match registry::load(&paths.state_file, true)? {
        Loaded::Ok(reg) => Some(reg),
        Loaded::Missing => None,
        Loaded::Corrupt { kept, error } => {
            eprintln!(
                "warning: the registry was corrupt ({error}); kept as {}; stopping every process tagged with this project's id",
                kept.display()
            );
            None
        }
    };
    let (membership, warnings) = Membership::for_cli(
        &paths.project_id,
        registry.as_ref().and_then(|r| r.cgroup.as_deref()),
        registry.as_ref().and_then(|r| r.no_cgroup.as_deref()),
        None,
        registry
            .as_ref()
            .map(Registry::current_lineage)
            .unwrap_or_default(),
    );
    for warning in &warnings {
        eprint!("{}", crate::error::render_warning(warning));
    }
    let tagged = platform::tagged_processes(Some(&paths.project_id));
    let mut all: BTreeSet<String> = tagged.iter().filter_map(|t| t.process.clone()).collect();
    all.extend(membership.known_names());
    if let Some(reg) = &registry {
        all.extend(reg.processes.keys().cloned());
    }
    let wanted: BTreeSet<String> = if names.is_empty() {
        all.clone()
    } else {
        names.iter().cloned().collect()
    };
    let mut targets: BTreeMap<String, LocalTarget> = BTreeMap::new();
    for name in &wanted {
        let rec = registry.as_ref().and_then(|r| r.processes.get(name));
        let spec = config.and_then(|c| c.processes.get(name));
        let signal = spec.map_or(platform::Signal::TERM.number(), |s| s.stop_signal.number);
        let stop_timeout =
            timeout.unwrap_or_else(|| spec.map_or(defaults::STOP_TIMEOUT, |s| s.stop_timeout));
        targets.insert(
            name.clone(),
            LocalTarget {
                name: name.clone(),
                pid: rec.and_then(registry::ProcessRecord::verified),
                signal,
                timeout: stop_timeout,
            },
        );
    }
    let layers: Vec<Vec<String>> = match config.map(Graph::new) {
        Some(Ok(graph)) => {
            let mut layers = graph.layers();
            let placed: BTreeSet<String> = layers.iter().flatten().cloned().collect();
            layers.push(
                targets
                    .keys()
                    .filter(|n| !placed.contains(*n))
                    .cloned()
                    .collect(),
            );
            layers
        }
        _ => vec![targets.keys().cloned().collect()],
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let membership = Arc::new(membership);
    let scanner = Arc::new(Scanner::new(Arc::clone(&membership)));
    let project_id = paths.project_id.clone();
    let mut survivors: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    runtime.block_on(async {
        for layer in layers.iter().rev() {
            let mut tasks = Vec::new();
            for name in layer {
                let Some(t) = targets.get(name) else { continue };
                let (name, pid, signal, timeout) = (t.name.clone(), t.pid, t.signal, t.timeout);
                let scanner = Arc::clone(&scanner);
                let project_id = project_id.clone();
                tasks.push(tokio::spawn(async move {
                    let target = stop::Target {
                        project_id: &project_id,
                        name: &name,
                        pid,
                        pgid: pid,
                        signal: Some(signal),
                        timeout,
                    };
                    let report = stop::stop_tree(&target, None, &scanner).await;
                    (name.clone(), report.survivors)
                }));
            }
            for task in tasks {
                if let Ok((name, left)) = task.await
                    && !left.is_empty()
                {
                    survivors.insert(name, left);
                }
            }
        }
        if names.is_empty() {
            // Whatever no process claims (recorded orphans, leaves of removed processes).
            let target = stop::Target {
                project_id: &project_id,
                name: "",
                pid: None,
                pgid: None,
                signal: Some(platform::Signal::TERM.number()),
                timeout: timeout.unwrap_or(defaults::STOP_TIMEOUT),
            };
            let report = stop::stop_tree(&target, None, &scanner).await;
            if !report.survivors.is_empty() {
                survivors.insert("(project)".to_owned(), report.survivors);
            }
        }
    });
    if names.is_empty() && survivors.is_empty() {
        for err in membership.remove_cgroups() {
            eprint!("{}", crate::error::render_warning(&err));
        }
    }
    let reg = registry.get_or_insert_with(|| {
        let project = config.map_or_else(String::new, |c| c.name.clone());
        Registry::new(&project, &paths.project_dir, &paths.project_id)
    });
    reg.supervisor = None;
    // A killed supervisor's socket file: no supervisor can hold it (we hold the lock, and
    // none answers on the abstract socket either).
    if platform::connect_abstract(&paths.singleton).is_err() {
        let _ = std::fs::remove_file(&paths.socket);
    }
    reg.lineage = membership.lineage();
    if names.is_empty() {
        // A cgroup that could not be removed stays named, so `doctor` finds it again.
        reg.cgroup = membership.existing_cgroup();
        reg.lineage.clear();
    }
    for name in &wanted {
        let _ = registry::write_pid_file(&paths.pid_file(name), None);
        let rec = reg.processes.entry(name.clone()).or_insert_with(|| {
            registry::ProcessRecord::new(ProcState::Stopped, paths.log_file(name))
        });
        rec.state = ProcState::Stopped;
        rec.reason = survivors
            .get(name)
            .map(|p| format!("survived the stop: pids {p:?}"));
        rec.pid = None;
        rec.pgid = None;
        rec.start_time = None;
        rec.updated_at = Some(registry::now_rfc3339());
    }
    registry::save(&paths.state_file, reg).context("cannot write the registry")?;
    // What was brought down runs its oneshots again at the next `up`.
    if names.is_empty() {
        registry::runs::clear(&paths.runs_dir);
    } else {
        for name in &wanted {
            registry::runs::remove(&paths.run_file(name));
        }
    }
    if !survivors.is_empty() {
        return Err(Error::Survivors {
            survivors: survivors.into_iter().collect(),
        }
        .into());
    }
    Ok(wanted.into_iter().collect())
}
