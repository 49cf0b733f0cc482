//! `procs ls`: every project on this machine with a registry, and what runs there.
//!
//! Projects whose registry is gone are dropped from the index (`index::prune`); a project
//! whose directory is gone while its registry lives on (a state dir outside the project) is
//! hidden unless `--all` or something of it still runs, and then marked `gone`.

use serde::Serialize;

use super::out::Out;
use crate::error::exit;
use crate::index;
use crate::platform;
use crate::registry::{self, Loaded};

#[derive(Debug, Serialize)]
struct Row {
    name: String,
    project_dir: String,
    supervisor_running: bool,
    supervisor_pid: Option<i32>,
    running: usize,
    processes: usize,
    /// The project directory no longer exists.
    gone: bool,
}

pub fn ls(out: &Out, all: bool) -> i32 {
    let _ = index::prune();
    let mut rows = Vec::new();
    for entry in index::load() {
        let Ok(Loaded::Ok(reg)) = registry::load(&entry.state_dir.join("state.json"), false) else {
            continue;
        };
        let supervisor_pid = reg
            .supervisor
            .as_ref()
            .filter(|s| platform::is_alive_same(s.pid, s.start_time, &s.boot_id))
            .map(|s| s.pid);
        let running = reg
            .processes
            .values()
            .filter(|r| r.verified().is_some())
            .count();
        let gone = !entry.project_dir.is_dir();
        if gone && !all && supervisor_pid.is_none() && running == 0 {
            continue;
        }
        rows.push(Row {
            name: if reg.project.is_empty() {
                entry.name.clone()
            } else {
                reg.project.clone()
            },
            project_dir: entry.project_dir.display().to_string(),
            supervisor_running: supervisor_pid.is_some(),
            supervisor_pid,
            running,
            processes: reg.processes.len(),
            gone,
        });
    }
    if out.json {
        println!("{}", serde_json::json!({ "projects": rows }));
        return exit::OK;
    }
    if rows.is_empty() {
        if !out.quiet {
            println!("no projects with a registry on this machine");
        }
        return exit::OK;
    }
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    println!(
        "{:<width$}  {:<11} {:>8}  DIRECTORY",
        "NAME", "SUPERVISOR", "RUNNING"
    );
    for r in rows {
        let sup = r
            .supervisor_pid
            .map_or_else(|| "stopped".to_owned(), |p| format!("pid {p}"));
        println!(
            "{:<width$}  {:<11} {:>8}  {}{}",
            r.name,
            sup,
            format!("{}/{}", r.running, r.processes),
            r.project_dir,
            if r.gone { " (directory gone)" } else { "" }
        );
    }
    exit::OK
}
