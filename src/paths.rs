//! Where a project's files live: the project id, the state directory and every path in it.
//!
//! Owns: the layout of `.procs/` (SPEC §4) and the user-level index path. Pure path
//! arithmetic plus directory creation with private permissions; no other I/O.
//! Invariant: the project id depends only on the canonical project directory, so it is
//! stable across runs and survives a deleted `.procs/`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::platform;

/// Longest socket path we use directly (`sun_path` holds 108 bytes including the NUL).
const MAX_SOCKET_PATH: usize = 100;

/// Every path of one project.
#[derive(Debug, Clone)]
pub struct Paths {
    pub project_dir: PathBuf,
    pub project_id: String,
    pub state_dir: PathBuf,
    pub logs_dir: PathBuf,
    pub pids_dir: PathBuf,
    /// Oneshot run records (`registry::runs`).
    pub runs_dir: PathBuf,
    pub state_file: PathBuf,
    pub supervisor_lock: PathBuf,
    pub socket: PathBuf,
    /// The abstract socket (`@procs/UID/ID`) the supervisor holds for its whole life: the
    /// singleton that survives a deleted `.procs/`, and a second way to reach it.
    pub singleton: String,
    pub supervisor_log: PathBuf,
}

impl Paths {
    /// Paths for the project in `project_dir` (canonical). `PROCS_STATE_DIR` overrides
    /// the state directory.
    pub fn new(project_dir: &Path) -> Self {
        let state_dir = match std::env::var_os(crate::env_vars::ENV_STATE_DIR) {
            Some(dir) if !dir.is_empty() => project_dir.join(dir),
            _ => project_dir.join(".procs"),
        };
        Self::with_state_dir(project_dir, state_dir)
    }

    pub fn with_state_dir(project_dir: &Path, state_dir: PathBuf) -> Self {
        let project_id = project_id(project_dir);
        let mut socket = state_dir.join("supervisor.sock");
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            socket = runtime_dir().join(format!("{project_id}.sock"));
        }
        Self {
            project_dir: project_dir.to_path_buf(),
            logs_dir: state_dir.join("logs"),
            pids_dir: state_dir.join("pids"),
            runs_dir: state_dir.join("runs"),
            state_file: state_dir.join("state.json"),
            supervisor_lock: state_dir.join("supervisor.lock"),
            supervisor_log: state_dir.join("logs").join("procs.log"),
            socket,
            singleton: singleton_name(platform::current_uid(), &project_id),
            state_dir,
            project_id,
        }
    }

    /// The log file of process `name`.
    pub fn log_file(&self, name: &str) -> PathBuf {
        self.logs_dir.join(format!("{name}.log"))
    }

    /// The pid file of process `name`.
    pub fn pid_file(&self, name: &str) -> PathBuf {
        self.pids_dir.join(format!("{name}.pid"))
    }

    /// The run record of oneshot `name`.
    pub fn run_file(&self, name: &str) -> PathBuf {
        self.runs_dir.join(format!("{name}.json"))
    }

    /// Create `.procs/` (0700, with a `.gitignore` holding `*`), `logs/`, `pids/` and `runs/`.
    pub fn ensure_dirs(&self) -> io::Result<()> {
        create_private_dir(&self.state_dir)?;
        let gitignore = self.state_dir.join(".gitignore");
        if !gitignore.exists() {
            fs::write(&gitignore, "*\n")?;
        }
        create_private_dir(&self.logs_dir)?;
        create_private_dir(&self.pids_dir)?;
        create_private_dir(&self.runs_dir)?;
        if let Some(parent) = self.socket.parent() {
            create_private_dir(parent)?;
        }
        Ok(())
    }
}

/// Create a private directory (0700, ours, not a link); see [`platform::ensure_private_dir`].
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    platform::ensure_private_dir(dir)
}

/// FNV-1a, 64 bits: a stable, dependency-free hash for ids and config hashes (not for
/// anything adversarial).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The abstract socket name the supervisor of project `project_id`, run by `uid`, holds
/// for as long as it lives (whatever happened to its state directory).
pub fn singleton_name(uid: u32, project_id: &str) -> String {
    format!("procs/{uid}/{project_id}")
}

/// Stable 64-bit hash (16 hex digits) of the canonical project directory. (procs 0.1 used
/// 32 bits — the two halves folded — and two sibling directories collided within about
/// 90,000 names; [`crate::platform::same_project`] still recognises those tags.)
pub fn project_id(project_dir: &Path) -> String {
    format!("{:016x}", fnv1a(project_dir.as_os_str().as_encoded_bytes()))
}

/// Directory for sockets whose natural path would be too long.
fn runtime_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("procs"),
        _ => PathBuf::from(format!("/tmp/procs-{}", platform::current_uid())),
    }
}

/// `$XDG_STATE_HOME/procs/projects.json` (default `~/.local/state/procs/projects.json`).
pub fn user_index_file() -> PathBuf {
    let base = match std::env::var_os("XDG_STATE_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let home =
                std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
            home.join(".local").join("state")
        }
    };
    base.join("procs").join("projects.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_id_is_stable_and_64_bits() {
        let a = project_id(Path::new("/home/alice/shop"));
        assert_eq!(a, project_id(Path::new("/home/alice/shop")));
        assert_ne!(a, project_id(Path::new("/home/alice/shop2")));
        assert_eq!(a.len(), 16);
        assert!(crate::platform::same_project(
            format!("{:08x}", {
                let h = u64::from_str_radix(&a, 16).expect("hex");
                (h >> 32) ^ (h & 0xffff_ffff)
            })
            .as_bytes(),
            &a
        ));
    }

    #[test]
    fn long_state_dirs_put_the_socket_elsewhere() {
        let long = PathBuf::from("/tmp").join("x".repeat(120));
        let paths = Paths::with_state_dir(&long, long.join(".procs"));
        assert!(paths.socket.as_os_str().len() <= MAX_SOCKET_PATH + 20);
        assert!(!paths.socket.starts_with(&long));
    }
}
