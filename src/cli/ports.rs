//! `procs ports`: every declared port of the config, whether it is listening, and who holds it.
//!
//! Works without a supervisor: the ports come from `procs.yaml`, the holders from the kernel's
//! socket table (`platform::port_holders`), and "ours" from the `PROCS_PROJECT_ID` tags or the
//! registry's verified pid of the declaring process. Read-only: nothing is signalled or written.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::args::Global;
use super::out::Out;
use super::project;
use crate::error::exit;
use crate::membership::Membership;
use crate::paths::Paths;
use crate::platform::{self, PortHolder};
use crate::ports::{self, Owner};
use crate::registry::{self, Loaded};

#[derive(Debug, Serialize)]
struct HolderJson {
    pid: Option<i32>,
    uid: u32,
    user: String,
    command: Option<String>,
    addr: String,
    /// `own` (the declaring process's tree), `project` (another process of this project) or
    /// `foreign`.
    owner: Owner,
    project: Option<String>,
    process: Option<String>,
}

#[derive(Debug, Serialize)]
struct PortJson {
    port: u16,
    host: Option<String>,
    process: String,
    listening: bool,
    holders: Vec<HolderJson>,
}

#[derive(Debug, Serialize)]
struct PortsJson {
    project: String,
    project_id: String,
    ports: Vec<PortJson>,
}

/// Classify with the tags, and with the registry's verified main pid of the declaring process
/// (and of the others) for holders that carry no tag.
fn classify(h: &PortHolder, project_id: &str, process: &str, members: &Members) -> Owner {
    let by_tag = ports::owner(h, project_id, process);
    if by_tag != Owner::Foreign {
        return by_tag;
    }
    let Some(pid) = h.pid else {
        return Owner::Foreign;
    };
    match members.by_pid.get(&pid) {
        Some(name) if name == process => Owner::Own,
        Some(_) => Owner::Project,
        None if members.project.contains(&pid) => Owner::Project,
        None => Owner::Foreign,
    }
}

/// The members of every process of the project (cgroup, lineage, verified main pids, tags).
struct Members {
    by_pid: BTreeMap<i32, String>,
    project: BTreeSet<i32>,
}

fn members(paths: &Paths, names: &[String]) -> Members {
    let reg = match registry::load(&paths.state_file, false) {
        Ok(Loaded::Ok(reg)) => Some(reg),
        _ => None,
    };
    let supervisor = reg
        .as_ref()
        .and_then(|r| r.supervisor.as_ref())
        .filter(|s| platform::is_alive_same(s.pid, s.start_time, &s.boot_id))
        .map(|s| s.pid);
    let (membership, _) = Membership::for_cli(
        &paths.project_id,
        reg.as_ref().and_then(|r| r.cgroup.as_deref()),
        reg.as_ref().and_then(|r| r.no_cgroup.as_deref()),
        supervisor,
        reg.as_ref()
            .map(registry::Registry::current_lineage)
            .unwrap_or_default(),
    );
    let tagged = platform::tagged_processes(Some(&paths.project_id));
    let table = platform::process_table();
    let mut by_pid = BTreeMap::new();
    for name in names {
        let main = reg
            .as_ref()
            .and_then(|r| r.processes.get(name))
            .and_then(registry::ProcessRecord::verified);
        for pid in membership.members_of(name, main, &tagged, &table) {
            by_pid.insert(pid, name.clone());
        }
    }
    let project = membership.members_of("", None, &tagged, &table);
    Members { by_pid, project }
}

pub fn ports(global: &Global, out: &Out) -> anyhow::Result<i32> {
    let config = project::load(global)?;
    let paths = Paths::new(&config.project_dir);
    let names: Vec<String> = config.processes.keys().cloned().collect();
    let members = members(&paths, &names);
    let mut rows = Vec::new();
    for spec in config.processes.values() {
        for port in &spec.ports {
            let holders = platform::port_holders(port.port);
            rows.push(PortJson {
                port: port.port,
                host: port.host.clone(),
                process: spec.name.clone(),
                listening: !holders.is_empty(),
                holders: holders
                    .into_iter()
                    .map(|h| HolderJson {
                        owner: classify(&h, &paths.project_id, &spec.name, &members),
                        pid: h.pid,
                        uid: h.uid,
                        user: h.user,
                        command: h.cmdline,
                        addr: h.addr,
                        project: h.project,
                        process: h.process,
                    })
                    .collect(),
            });
        }
    }
    rows.sort_by(|a, b| (a.port, &a.process).cmp(&(b.port, &b.process)));
    if out.json {
        let json = PortsJson {
            project: config.name.clone(),
            project_id: paths.project_id.clone(),
            ports: rows,
        };
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(exit::OK);
    }
    if rows.is_empty() {
        if !out.quiet {
            println!("no process in {} declares ports", config.file.display());
        }
        return Ok(exit::OK);
    }
    print!("{}", table(&rows));
    Ok(exit::OK)
}

fn table(rows: &[PortJson]) -> String {
    let width = rows
        .iter()
        .map(|r| r.process.len())
        .max()
        .unwrap_or(0)
        .max("PROCESS".len());
    let mut text = format!(
        "{:<6} {:<width$}  {:<9}  {:<7}  HOLDER\n",
        "PORT", "PROCESS", "LISTENING", "OWNER"
    );
    for r in rows {
        let listening = if r.listening { "yes" } else { "no" };
        if r.holders.is_empty() {
            text.push_str(&format!(
                "{:<6} {:<width$}  {listening:<9}  {:<7}  -\n",
                r.port, r.process, "-"
            ));
        }
        for (i, h) in r.holders.iter().enumerate() {
            let holder = PortHolder {
                pid: h.pid,
                uid: h.uid,
                user: h.user.clone(),
                cmdline: h.command.clone(),
                project_id: None,
                project: h.project.clone(),
                process: h.process.clone(),
                addr: h.addr.clone(),
            };
            let (port, process, listening) = if i == 0 {
                (r.port.to_string(), r.process.as_str(), listening)
            } else {
                (String::new(), "", "")
            };
            text.push_str(&format!(
                "{port:<6} {process:<width$}  {listening:<9}  {:<7}  {} on {}\n",
                h.owner.as_str(),
                ports::describe_holder(&holder),
                h.addr
            ));
        }
    }
    text
}
