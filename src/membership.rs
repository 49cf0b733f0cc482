//! Membership: the one answer to "which processes belong to process X, or to the project".
//!
//! Owns: the choice of mechanism ([`Mechanism`]: a cgroup v2 per process where one can be
//! used, else ancestry under the subreaper supervisor), the recorded lineage (pids and kernel
//! start times of descendants the supervisor saw, kept in the registry so that a later command
//! finds them after a supervisor SIGKILL), and [`Membership::members_of`], used by the stop,
//! the port rules (own listeners, the pre-flight, `procs ports`), `status` and `doctor`.
//!
//! Sources, in order of strength: the process's cgroup leaf (a member cannot leave it); the
//! lineage — descendants of the main pid by ppid, and recorded ones whose start time still
//! matches; the `PROCS_*` tag in the initial environment (lost when a daemon rewrites its
//! title or clears its environment). A process's members are the union, plus the live
//! descendants of every member. The project's members (name `""`) are every process's, plus
//! the supervisor's children it cannot attribute (orphans re-parented to the subreaper).
//!
//! Must not: signal anything (that is `crate::stop`), or call the system itself (that is
//! `crate::platform`).
//!
//! Invariants: pid 1, the calling process and the supervisor are never members; a recorded
//! pid counts only while the live process has the recorded start time and boot id; a tagged
//! process of another user is never a member (the tag scan reads only our own), while a
//! cgroup member or a descendant is one whoever it runs as (only we can put a process there).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::platform::{self, ProcStat, Tagged, cgroup};

/// How membership is established for this project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    /// A cgroup v2 per process under `project` (`…/procs-<id>/<name>`).
    Cgroup { project: PathBuf },
    /// Ancestry (subreaper), recorded lineage and tags; `why` there is no cgroup.
    Lineage { why: String },
}

impl Mechanism {
    /// The line `procs doctor` prints.
    pub fn describe(&self) -> String {
        match self {
            Self::Cgroup { project } => format!(
                "membership: cgroup v2 at {} (one cgroup per process; nothing a daemon does takes it out)",
                project.display()
            ),
            Self::Lineage { why } => format!(
                "membership: no writable cgroup ({why}): tracking by ancestry and tags; a process that clears its environment after the supervisor dies cannot be found"
            ),
        }
    }
}

/// One recorded member: a descendant the supervisor saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Recorded {
    pub pid: i32,
    pub start_time: u64,
}

/// Recorded lineage: process name (`""` for the project's unattributed members) → members.
pub type Lineage = BTreeMap<String, BTreeSet<Recorded>>;

/// The membership of one project's processes.
#[derive(Debug)]
pub struct Membership {
    mechanism: Mechanism,
    /// The live supervisor, whose unattributed children are the project's.
    supervisor: Option<i32>,
    lineage: Mutex<Lineage>,
    boot_id: String,
}

impl Default for Membership {
    fn default() -> Self {
        Self::new(
            Mechanism::Lineage {
                why: "not set up".to_owned(),
            },
            None,
            Lineage::new(),
        )
    }
}

impl Membership {
    pub fn new(mechanism: Mechanism, supervisor: Option<i32>, lineage: Lineage) -> Self {
        Self {
            mechanism,
            supervisor,
            lineage: Mutex::new(lineage),
            boot_id: platform::boot_id().to_owned(),
        }
    }

    /// The supervisor's membership: a project cgroup under its own cgroup when one can be
    /// created, else lineage (the supervisor is then the subreaper of the stack).
    pub fn for_supervisor(project_id: &str, lineage: Lineage) -> Self {
        let mechanism = match cgroup::detect() {
            cgroup::Detected::Usable { parent } => {
                let project = cgroup::project_path(&parent, project_id);
                match cgroup::create_project(&project) {
                    Ok(()) => Mechanism::Cgroup { project },
                    Err(err) => Mechanism::Lineage {
                        why: format!("cannot create the cgroup {}: {err}", project.display()),
                    },
                }
            }
            cgroup::Detected::Unusable { why } => Mechanism::Lineage { why },
        };
        Self::new(
            mechanism,
            Some(std::process::id() as i32),
            Self::verified(lineage),
        )
    }

    /// The membership a CLI command sees: the cgroup the registry names (or the one this
    /// project would have under the caller's cgroup), the recorded lineage and the
    /// recorded supervisor. Returns warnings to print (a recorded cgroup that is gone).
    pub fn for_cli(
        project_id: &str,
        recorded_cgroup: Option<&Path>,
        supervisor: Option<i32>,
        lineage: Lineage,
    ) -> (Self, Vec<String>) {
        let mut warnings = Vec::new();
        let mut found = None;
        if let Some(path) = recorded_cgroup {
            if cgroup::exists(path) {
                found = Some(path.to_path_buf());
            } else {
                warnings.push(format!(
                    "the registry names the cgroup {}, which no longer exists: finding members by ancestry and tags",
                    path.display()
                ));
            }
        }
        let detected = cgroup::detect();
        if found.is_none()
            && let cgroup::Detected::Usable { parent } = &detected
        {
            let path = cgroup::project_path(parent, project_id);
            if cgroup::exists(&path) {
                found = Some(path);
            }
        }
        let mechanism = match (found, detected) {
            (Some(project), _) => Mechanism::Cgroup { project },
            (None, cgroup::Detected::Usable { parent }) => Mechanism::Cgroup {
                project: cgroup::project_path(&parent, project_id),
            },
            (None, cgroup::Detected::Unusable { why }) => Mechanism::Lineage { why },
        };
        (
            Self::new(mechanism, supervisor, Self::verified(lineage)),
            warnings,
        )
    }

    fn verified(mut lineage: Lineage) -> Lineage {
        let boot = platform::boot_id();
        for members in lineage.values_mut() {
            members.retain(|r| platform::is_alive_same(r.pid, r.start_time, boot));
        }
        lineage.retain(|_, m| !m.is_empty());
        lineage
    }

    pub fn mechanism(&self) -> &Mechanism {
        &self.mechanism
    }

    /// The project cgroup, when the cgroup mechanism is in use.
    pub fn project_cgroup(&self) -> Option<&Path> {
        match &self.mechanism {
            Mechanism::Cgroup { project } => Some(project),
            Mechanism::Lineage { .. } => None,
        }
    }

    /// The cgroup leaf of process `name`, when the cgroup mechanism is in use.
    pub fn leaf(&self, name: &str) -> Option<PathBuf> {
        if name.is_empty() || !crate::names::is_valid(name) {
            return None;
        }
        self.project_cgroup().map(|p| p.join(name))
    }

    /// The live members of process `name` from its cgroup leaf alone, when that is the whole
    /// answer of [`Self::members_of`] without tags: the cgroup mechanism is in use, the leaf
    /// exists, nothing is recorded for `name`, and `main` (if any) is in the leaf — the
    /// kernel keeps every descendant of a leaf's member in the leaf, so no process table is
    /// needed. `None` otherwise (ask [`Self::members_of`]).
    pub fn leaf_members(&self, name: &str, main: Option<i32>) -> Option<BTreeSet<i32>> {
        let leaf = self.leaf(name)?;
        if !cgroup::exists(&leaf) {
            return None;
        }
        if self
            .lineage
            .lock()
            .ok()
            .is_none_or(|l| l.get(name).is_some_and(|m| !m.is_empty()))
        {
            return None;
        }
        let mut out: BTreeSet<i32> = cgroup::members(&leaf).into_iter().collect();
        if main.is_some_and(|pid| !out.contains(&pid)) {
            return None;
        }
        self.exclude(&mut out);
        Some(out)
    }

    /// The recorded lineage (verified members only), for the registry.
    pub fn lineage(&self) -> Lineage {
        self.lineage.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Names that have a cgroup leaf or recorded members (a process the config may no
    /// longer name, whose leftovers are still the project's).
    pub fn known_names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self
            .project_cgroup()
            .map(cgroup::leaves)
            .unwrap_or_default()
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| crate::names::is_valid(n))
            .collect();
        if let Ok(l) = self.lineage.lock() {
            names.extend(l.keys().filter(|k| !k.is_empty()).cloned());
        }
        names
    }

    /// The live members of process `name` (of the whole project when `name` is empty), with
    /// `main` its verified main pid, from one tag scan and one process table.
    pub fn members_of(
        &self,
        name: &str,
        main: Option<i32>,
        tagged: &[Tagged],
        table: &[ProcStat],
    ) -> BTreeSet<i32> {
        let live: HashMap<i32, &ProcStat> = table.iter().map(|s| (s.pid, s)).collect();
        let mut roots: BTreeSet<i32> = BTreeSet::new();
        if let Some(pid) = main {
            roots.insert(pid);
        }
        let whole = name.is_empty();
        if whole {
            if let Some(project) = self.project_cgroup() {
                for (_, leaf) in cgroup::leaves(project) {
                    roots.extend(cgroup::members(&leaf));
                }
            }
        } else if let Some(leaf) = self.leaf(name) {
            roots.extend(cgroup::members(&leaf));
        }
        roots.extend(
            tagged
                .iter()
                .filter(|t| whole || t.process.as_deref() == Some(name))
                .map(|t| t.pid),
        );
        if let Ok(lineage) = self.lineage.lock() {
            for (owner, members) in lineage.iter() {
                if whole || owner == name {
                    roots.extend(
                        members
                            .iter()
                            .filter(|r| {
                                live.get(&r.pid)
                                    .is_some_and(|s| s.start_time == r.start_time)
                            })
                            .map(|r| r.pid),
                    );
                }
            }
        }
        if whole && let Some(sup) = self.supervisor {
            roots.extend(table.iter().filter(|s| s.ppid == sup).map(|s| s.pid));
        }
        let mut out = descend(&roots, table);
        out.retain(|pid| live.contains_key(pid));
        self.exclude(&mut out);
        out
    }

    fn exclude(&self, pids: &mut BTreeSet<i32>) {
        pids.remove(&1);
        pids.remove(&(std::process::id() as i32));
        if let Some(sup) = self.supervisor {
            pids.remove(&sup);
        }
        pids.retain(|p| *p > 1);
    }

    /// Record the descendants of each `(name, main pid)` and attribute the supervisor's other
    /// children (orphans re-parented to it): by tag when it is intact, else to the project
    /// (`""`). Drops members that are gone.
    /// Returns whether the lineage changed (the registry is then written).
    pub fn record(
        &self,
        mains: &[(String, i32)],
        table: &[ProcStat],
        tag_of: impl Fn(i32) -> Option<String>,
    ) -> bool {
        let live: HashMap<i32, &ProcStat> = table.iter().map(|s| (s.pid, s)).collect();
        let Ok(mut lineage) = self.lineage.lock() else {
            return false;
        };
        let before = lineage.clone();
        for members in lineage.values_mut() {
            members.retain(|r| {
                live.get(&r.pid)
                    .is_some_and(|s| s.start_time == r.start_time)
            });
        }
        let mains_set: BTreeSet<i32> = mains.iter().map(|(_, p)| *p).collect();
        let add = |name: &str, pid: i32, lineage: &mut Lineage| {
            if let Some(s) = live.get(&pid) {
                lineage
                    .entry(name.to_owned())
                    .or_default()
                    .insert(Recorded {
                        pid,
                        start_time: s.start_time,
                    });
            }
        };
        for (name, main) in mains {
            let roots: BTreeSet<i32> = std::iter::once(*main).collect();
            for pid in descend(&roots, table) {
                if pid != *main {
                    add(name, pid, &mut lineage);
                }
            }
        }
        if let Some(sup) = self.supervisor {
            let attributed: BTreeSet<i32> = lineage.values().flatten().map(|r| r.pid).collect();
            let orphans: Vec<i32> = table
                .iter()
                .filter(|s| s.ppid == sup && !mains_set.contains(&s.pid))
                .map(|s| s.pid)
                .filter(|p| !attributed.contains(p))
                .collect();
            for orphan in orphans {
                let owner = tag_of(orphan)
                    .filter(|n| crate::names::is_valid(n))
                    .unwrap_or_default();
                let roots: BTreeSet<i32> = std::iter::once(orphan).collect();
                for pid in descend(&roots, table) {
                    add(&owner, pid, &mut lineage);
                }
            }
        }
        lineage.retain(|_, m| !m.is_empty());
        *lineage != before
    }

    /// Forget the recorded members of `name` (after a verified stop of its tree).
    pub fn forget(&self, name: &str) {
        if let Ok(mut lineage) = self.lineage.lock() {
            if name.is_empty() {
                lineage.clear();
            } else {
                lineage.remove(name);
            }
        }
    }

    /// The boot these records belong to.
    pub fn boot_id(&self) -> &str {
        &self.boot_id
    }
}

/// `roots` and every live descendant of them (by ppid) in `table`.
pub fn descend(roots: &BTreeSet<i32>, table: &[ProcStat]) -> BTreeSet<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for s in table {
        children.entry(s.ppid).or_default().push(s.pid);
    }
    let mut out = roots.clone();
    let mut queue: Vec<i32> = roots.iter().copied().collect();
    while let Some(parent) = queue.pop() {
        for &child in children.get(&parent).into_iter().flatten() {
            if out.insert(child) {
                queue.push(child);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(pid: i32, parent: i32, start: u64) -> ProcStat {
        ProcStat {
            pid,
            comm: "x".to_owned(),
            ppid: parent,
            pgid: pid,
            sid: pid,
            state: 'S',
            start_time: start,
            utime_ticks: 0,
            stime_ticks: 0,
            rss_bytes: 0,
            kernel_thread: false,
        }
    }

    fn tag(pid: i32, name: &str) -> Tagged {
        Tagged {
            pid,
            ppid: 1,
            pgid: pid,
            start_time: 0,
            project_id: "p".to_owned(),
            project: None,
            process: Some(name.to_owned()),
        }
    }

    fn lineage_only(sup: i32) -> Membership {
        Membership::new(
            Mechanism::Lineage {
                why: "test".to_owned(),
            },
            Some(sup),
            Lineage::new(),
        )
    }

    #[test]
    fn members_are_the_main_its_descendants_and_its_tagged_processes() {
        let m = lineage_only(100);
        let table = [
            st(100, 1, 1),
            st(200, 100, 2),
            st(201, 200, 3),
            st(300, 1, 4),
            st(301, 300, 5),
            st(400, 1, 6),
        ];
        let tagged = [tag(300, "web"), tag(400, "db")];
        let web = m.members_of("web", Some(200), &tagged, &table);
        assert_eq!(web, [200, 201, 300, 301].into_iter().collect());
        let db = m.members_of("db", None, &tagged, &table);
        assert_eq!(db, [400].into_iter().collect());
    }

    #[test]
    fn recorded_lineage_survives_reparenting_and_pid_reuse_is_refused() {
        let m = lineage_only(100);
        // web's main 200 has a double-forked daemon 201 (child of 200 for now).
        let table = [st(100, 1, 1), st(200, 100, 2), st(201, 200, 3)];
        assert!(m.record(&[("web".to_owned(), 200)], &table, |_| None));
        // The main exits and the daemon is re-parented to init (supervisor gone).
        let table = [st(201, 1, 3)];
        let web = m.members_of("web", None, &[], &table);
        assert_eq!(web, [201].into_iter().collect());
        // The pid is reused by a stranger: not a member.
        let table = [st(201, 1, 99)];
        assert!(m.members_of("web", None, &[], &table).is_empty());
        assert!(m.members_of("", None, &[], &table).is_empty());
    }

    #[test]
    fn the_supervisors_unattributed_children_are_the_projects_and_never_itself() {
        let m = lineage_only(100);
        let table = [
            st(100, 1, 1),
            st(200, 100, 2),
            st(500, 100, 7),
            st(501, 500, 8),
        ];
        assert!(m.record(&[("web".to_owned(), 200)], &table, |_| None));
        let all = m.members_of("", None, &[], &table);
        assert_eq!(all, [200, 500, 501].into_iter().collect());
        assert!(!m.members_of("web", Some(200), &[], &table).contains(&500));
        assert_eq!(m.lineage().get("").map(BTreeSet::len), Some(2));
        // An orphan with an intact tag goes to its process.
        let m = lineage_only(100);
        assert!(m.record(&[], &table, |p| (p == 500).then(|| "web".to_owned())));
        assert!(m.members_of("web", None, &[], &table).contains(&501));
    }
}
