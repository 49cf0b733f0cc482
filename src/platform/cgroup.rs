//! Linux cgroup v2: the membership that a daemon cannot shed.
//!
//! Owns: finding a usable cgroup v2 hierarchy for the project ([`detect`]: the unified mount,
//! also the hybrid `/sys/fs/cgroup/unified`, and the calling process's own cgroup in it), the
//! project cgroup `procs-<project id>/` with one leaf per process (`procs-<id>/<name>/`), a
//! [`Placement`] that moves a child into its leaf before it runs its program, reading the
//! members ([`members`], [`is_populated`]), `cgroup.kill` ([`kill`]), the tree's CPU time
//! ([`cpu_usec`]) and removing empty cgroups ([`remove`], [`remove_project`]).
//!
//! Must not: decide when to stop (that is `crate::stop`), or touch a cgroup that is not a
//! `procs-<id>` directory or one of its direct children.
//!
//! Invariants: a cgroup is only ever created under the calling process's own cgroup; the
//! project cgroup never holds a process itself (the kernel's no-internal-process rule), only
//! its leaves do; every path handed out is a child of a cgroup2 mount, with a name checked by
//! [`crate::names`] rules (the caller passes validated process names).

use std::fs;
use std::io::{self, Write as _};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// The environment variable that turns the cgroup mechanism off (documented in
/// `docs/architecture.md`): membership then comes from ancestry and tags.
pub const NO_CGROUP_ENV: &str = "PROCS_NO_CGROUP";

/// The prefix of every project cgroup procs creates.
pub const PROJECT_PREFIX: &str = "procs-";

/// Where the project's cgroup is, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detected {
    /// A writable cgroup v2 in which `procs-<id>/` can live.
    Usable {
        /// The cgroup the caller runs in (the parent of every project cgroup).
        parent: PathBuf,
    },
    /// No usable cgroup, and why (for `procs doctor`).
    Unusable { why: String },
}

/// The first cgroup2 mount in `/proc/self/mountinfo`.
fn cgroup2_mount() -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        // `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE SUPER`
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        (fstype == "cgroup2").then(|| left.split_whitespace().nth(4).map(unescape))?
    })
}

/// Undo mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt as _;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(digits) = std::str::from_utf8(&bytes[i + 1..i + 4])
            && let Ok(v) = u8::from_str_radix(digits, 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// The unified-hierarchy cgroup of `pid` (`0::/path` in `/proc/PID/cgroup`).
fn own_cgroup(pid: &str) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("0::").map(str::to_owned))
}

/// Find where this process may create the project cgroup. Honours [`NO_CGROUP_ENV`].
pub fn detect() -> Detected {
    if std::env::var_os(NO_CGROUP_ENV).is_some_and(|v| !v.is_empty() && v != "0") {
        return Detected::Unusable {
            why: format!("{NO_CGROUP_ENV} is set"),
        };
    }
    let Some(mount) = cgroup2_mount() else {
        return Detected::Unusable {
            why: "no cgroup v2 hierarchy is mounted".to_owned(),
        };
    };
    let Some(own) = own_cgroup("self") else {
        return Detected::Unusable {
            why: "this process is in no cgroup v2".to_owned(),
        };
    };
    let own = own.trim_start_matches('/');
    // Deleted cgroups show as `/path (deleted)`; a process in a removed cgroup cannot nest.
    if own.ends_with(" (deleted)") {
        return Detected::Unusable {
            why: "this process's cgroup was removed".to_owned(),
        };
    }
    let parent = if own.is_empty() {
        mount.clone()
    } else {
        mount.join(own)
    };
    if !writable(&parent) || !writable(&parent.join("cgroup.procs")) {
        return Detected::Unusable {
            why: format!(
                "the cgroup {} is not writable (not root, no delegated subtree)",
                parent.display()
            ),
        };
    }
    Detected::Usable { parent }
}

fn writable(path: &Path) -> bool {
    rustix::fs::access(path, rustix::fs::Access::WRITE_OK).is_ok()
}

/// `parent/procs-<project_id>`.
pub fn project_path(parent: &Path, project_id: &str) -> PathBuf {
    parent.join(format!("{PROJECT_PREFIX}{project_id}"))
}

/// Create the project cgroup (and nothing else); an existing one is fine.
pub fn create_project(path: &Path) -> io::Result<()> {
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err),
    }
}

/// Is `path` a cgroup directory (it has a `cgroup.procs`)?
pub fn exists(path: &Path) -> bool {
    path.join("cgroup.procs").is_file()
}

/// An open `cgroup.procs` of one process's leaf: writing `0` to it moves the writer.
#[derive(Debug)]
pub struct Placement {
    fd: OwnedFd,
}

impl Placement {
    /// Create (if needed) the leaf cgroup `leaf` and open its `cgroup.procs` for writing.
    pub fn open(leaf: &Path) -> io::Result<Self> {
        // The project cgroup may have been removed meanwhile (a `doctor --fix` elsewhere
        // takes empty ones for stale): make it again.
        if let Some(project) = leaf.parent() {
            create_project(project)?;
        }
        match fs::create_dir(leaf) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err),
        }
        let file = fs::OpenOptions::new()
            .write(true)
            .open(leaf.join("cgroup.procs"))?;
        Ok(Self { fd: file.into() })
    }

    /// The open `cgroup.procs`: the child writes `0` to it before it runs its program
    /// ([`crate::platform::spawn_child`]); if that fails, the spawn fails (a child outside its
    /// cgroup would be a member nobody sees).
    pub fn procs_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd as _;
        self.fd.as_fd()
    }
}

/// The live pids in the cgroup at `path` (none when it does not exist).
pub fn members(path: &Path) -> Vec<i32> {
    fs::read_to_string(path.join("cgroup.procs"))
        .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Does the cgroup (or a descendant of it) still hold a process? False when it is gone.
pub fn is_populated(path: &Path) -> bool {
    fs::read_to_string(path.join("cgroup.events")).is_ok_and(|text| {
        text.lines()
            .any(|l| l.split_whitespace().eq(["populated", "1"]))
    })
}

/// SIGKILL every process in the cgroup and its descendants, atomically with respect to forks
/// (`cgroup.kill`, Linux 5.14). Where the kernel has no `cgroup.kill`, SIGKILL each member
/// found (the caller repeats until [`is_populated`] is false).
pub fn kill(path: &Path) -> io::Result<()> {
    match fs::OpenOptions::new()
        .write(true)
        .open(path.join("cgroup.kill"))
    {
        Ok(mut file) => file.write_all(b"1"),
        Err(err) if err.kind() == io::ErrorKind::NotFound && exists(path) => {
            for pid in members(path) {
                let _ = super::kill(pid, super::Signal::KILL);
            }
            Ok(())
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

/// Total CPU time of the cgroup's processes, alive and exited, in microseconds.
pub fn cpu_usec(path: &Path) -> Option<u64> {
    let text = fs::read_to_string(path.join("cpu.stat")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse().ok())
}

/// Remove an empty cgroup. Gone already is success; a populated one is `EBUSY`.
pub fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_dir(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

/// The leaves of a project cgroup: `(process name, path)`.
pub fn leaves(project: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = fs::read_dir(project) else {
        return Vec::new();
    };
    let mut out: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Some((e.file_name().to_str()?.to_owned(), e.path())))
        .collect();
    out.sort();
    out
}

/// Remove every empty leaf of the project cgroup, then the project cgroup if it is empty.
/// Returns the cgroups that could not be removed (still populated, or an error).
pub fn remove_project(project: &Path) -> Vec<(PathBuf, io::Error)> {
    let mut failed = Vec::new();
    for (_, leaf) in leaves(project) {
        if let Err(err) = remove(&leaf) {
            failed.push((leaf, err));
        }
    }
    if failed.is_empty()
        && let Err(err) = remove(project)
    {
        failed.push((project.to_path_buf(), err));
    }
    failed
}

/// The project cgroups (`procs-*`) directly under `parent`: `(project id, path)`.
pub fn project_cgroups(parent: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut out: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            let id = name.strip_prefix(PROJECT_PREFIX)?.to_owned();
            Some((id, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// The unified cgroup `pid` is in, as a path under the cgroup2 mount.
pub fn cgroup_of(pid: i32) -> Option<PathBuf> {
    let mount = cgroup2_mount()?;
    let own = own_cgroup(&pid.to_string())?;
    let own = own.trim_start_matches('/');
    Some(if own.is_empty() {
        mount
    } else {
        mount.join(own)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape("/a\\040b"), PathBuf::from("/a b"));
        assert_eq!(unescape("/plain"), PathBuf::from("/plain"));
        assert_eq!(unescape("/end\\04"), PathBuf::from("/end\\04"));
    }

    #[test]
    fn project_path_is_prefixed() {
        assert_eq!(
            project_path(Path::new("/sys/fs/cgroup"), "abc"),
            PathBuf::from("/sys/fs/cgroup/procs-abc")
        );
    }

    #[test]
    fn a_missing_cgroup_has_no_members_and_is_not_populated() {
        let dir = Path::new("/nonexistent/cgroup");
        assert!(members(dir).is_empty());
        assert!(!is_populated(dir));
        assert!(kill(dir).is_ok());
        assert!(remove(dir).is_ok());
    }
}
