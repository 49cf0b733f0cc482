//! Oneshot run records: `.procs/runs/NAME.json`, the durable truth about a oneshot's run.
//!
//! Owns: the format of a run record and its atomic, fsynced writes, and what a run's end
//! means ([`exit_succeeded`], [`oneshot_end`]: the one rule for live and learned exits). Three writers, in order,
//! for one run: the supervisor writes `starting` (with the config hash) before it spawns;
//! the oneshot's waiting parent (`procs __oneshot`, see `supervisor/waiter.rs`) writes
//! `running` (its own pid and kernel start time) before it starts the program, `running` with
//! the program's pid and start time once it runs, and `exited`
//! (the program's real exit code or signal) once it reaped it. Each write replaces the file
//! atomically, so a reader sees one of those states, never a mix, and a supervisor SIGKILL at
//! any instruction loses nothing: the waiting parent outlives it.
//! Invariants: a record exists only while the stack is up — a clean shutdown removes every
//! record ([`clear`]); a record is trusted only together with its waiting parent's identity
//! (pid, start time, boot id), like a registry record.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::atomic;
use crate::platform::{self, ExitInfo};
use crate::registry::ProcState;

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// The supervisor is about to spawn the waiting parent.
    Starting,
    /// The waiting parent runs (and is about to start, or waits for, the program).
    Running,
    /// The program exited; `code` or `signal` says how.
    Exited,
}

/// One oneshot run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub state: RunState,
    /// The config hash the run was started with.
    pub hash: String,
    /// The waiting parent (the process procs supervises for this oneshot).
    #[serde(default)]
    pub pid: Option<i32>,
    #[serde(default)]
    pub start_time: Option<u64>,
    #[serde(default)]
    pub boot_id: Option<String>,
    #[serde(default)]
    pub code: Option<i32>,
    #[serde(default)]
    pub signal: Option<i32>,
    /// RFC 3339.
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub ended_at: Option<String>,
    /// The supervisor saw this run end and handled it (it was not learned after a crash).
    #[serde(default)]
    pub seen: bool,
    /// It ended by an explicit stop (`down`, `stop`, `restart`).
    #[serde(default)]
    pub stopped: bool,
    /// The program the waiting parent started (its pid and kernel start time), recorded
    /// once it runs: if the waiting parent is killed, the program may live on, and a new
    /// supervisor adopts it instead of running it again.
    #[serde(default)]
    pub program_pid: Option<i32>,
    #[serde(default)]
    pub program_start_time: Option<u64>,
}

impl RunRecord {
    /// The record the supervisor writes just before it spawns the waiting parent.
    pub fn starting(hash: &str) -> Self {
        Self {
            state: RunState::Starting,
            hash: hash.to_owned(),
            pid: None,
            start_time: None,
            boot_id: None,
            code: None,
            signal: None,
            started_at: None,
            ended_at: None,
            seen: false,
            stopped: false,
            program_pid: None,
            program_start_time: None,
        }
    }

    /// How the program ended, once `exited`.
    pub fn exit(&self) -> Option<ExitInfo> {
        if self.state != RunState::Exited {
            return None;
        }
        match (self.code, self.signal) {
            (Some(code), _) => Some(ExitInfo::Code(code)),
            (None, Some(sig)) => Some(ExitInfo::Signal(sig)),
            (None, None) => None,
        }
    }

    /// Is the waiting parent this record names alive (same pid, start time and boot)?
    pub fn parent_alive(&self) -> bool {
        match (self.pid, self.start_time, self.boot_id.as_deref()) {
            (Some(pid), Some(start), Some(boot)) => platform::is_alive_same(pid, start, boot),
            _ => false,
        }
    }

    /// Is the program this record names alive (same pid, start time and boot)?
    pub fn program_alive(&self) -> Option<(i32, u64)> {
        match (
            self.program_pid,
            self.program_start_time,
            self.boot_id.as_deref(),
        ) {
            (Some(pid), Some(start), Some(boot)) if platform::is_alive_same(pid, start, boot) => {
                Some((pid, start))
            }
            _ => None,
        }
    }

    /// Does this record describe the run of `pid` started at `start_time` — its waiting
    /// parent, or (adopted after that parent was killed) its program?
    pub fn is_run_of(&self, pid: i32, start_time: u64) -> bool {
        let same = |p: Option<i32>, s: Option<u64>| {
            p == Some(pid) && (start_time == 0 || s == Some(start_time))
        };
        same(self.pid, self.start_time) || same(self.program_pid, self.program_start_time)
    }
}

/// Is `exit` a success: an exit code in `success_exit_codes`? A signal, or an exit whose
/// status is unknown, never is. The one rule for every exit — one this supervisor saw,
/// and one learned from a run record after a crash.
pub fn exit_succeeded(success_exit_codes: &[i32], exit: Option<ExitInfo>) -> bool {
    matches!(exit, Some(ExitInfo::Code(code)) if success_exit_codes.contains(&code))
}

/// Where a oneshot's ended run leaves it, as the lifecycle's transition (`supervisor/machine.rs`) decides for a oneshot's exit:
/// `stopped` if it ended by an explicit stop, `completed` if [`exit_succeeded`], else
/// `failed` (a oneshot is never restarted).
pub fn oneshot_end(success_exit_codes: &[i32], exit: Option<ExitInfo>, stopped: bool) -> ProcState {
    if stopped {
        ProcState::Stopped
    } else if exit_succeeded(success_exit_codes, exit) {
        ProcState::Completed
    } else {
        ProcState::Failed
    }
}

/// The supervisor handled the end of the run of waiting parent `pid` (started at
/// `start_time`): mark its record `seen` (and `stopped`), with `exit` if the waiting parent
/// could not record one (it was killed by SIGKILL with its group). Other runs' records are
/// left alone.
pub fn mark_seen(path: &Path, pid: i32, start_time: u64, exit: Option<ExitInfo>, stopped: bool) {
    let Some(mut record) = read(path).filter(|r| r.is_run_of(pid, start_time)) else {
        return;
    };
    if record.state != RunState::Exited {
        record.state = RunState::Exited;
        (record.code, record.signal) = match exit {
            Some(ExitInfo::Code(code)) => (Some(code), None),
            Some(ExitInfo::Signal(sig)) => (None, Some(sig)),
            None => (None, None),
        };
        record.ended_at = Some(super::now_rfc3339());
    }
    record.seen = true;
    record.stopped = stopped;
    let _ = write(path, &record);
}

/// Replace the record at `path` (temp file, fsync, rename, fsync of the directory).
pub fn write(path: &Path, record: &RunRecord) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(record).map_err(io::Error::other)?;
    bytes.push(b'\n');
    atomic::write(path, &bytes, true)
}

/// The record at `path`, if there is a readable one.
pub fn read(path: &Path) -> Option<RunRecord> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Every record in `dir`, by process name.
pub fn read_all(dir: &Path) -> std::collections::BTreeMap<String, RunRecord> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        if let Some(record) = read(&entry.path()) {
            out.insert(name.to_owned(), record);
        }
    }
    out
}

/// Remove every record in `dir` (the stack was brought down: the next `up` runs its
/// oneshots again).
pub fn clear(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let _ = std::fs::remove_file(entry.path());
    }
}

/// Remove the record of one process (it left the config).
pub fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_say_how_the_program_ended() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("seed.json");
        let mut rec = RunRecord::starting("abc");
        write(&path, &rec).expect("write");
        assert_eq!(read(&path), Some(rec.clone()));
        assert_eq!(rec.exit(), None);
        rec.state = RunState::Exited;
        rec.code = Some(3);
        rec.pid = Some(42);
        rec.start_time = Some(7);
        write(&path, &rec).expect("write");
        let back = read(&path).expect("a record");
        assert_eq!(back.exit(), Some(ExitInfo::Code(3)));
        assert!(back.is_run_of(42, 7) && !back.is_run_of(42, 8) && !back.is_run_of(41, 7));
        rec.code = None;
        rec.signal = Some(9);
        assert_eq!(rec.exit(), Some(ExitInfo::Signal(9)));
        assert_eq!(read_all(dir.path()).keys().collect::<Vec<_>>(), ["seed"]);
        clear(dir.path());
        assert!(read_all(dir.path()).is_empty());
    }

    #[test]
    fn a_run_the_supervisor_saw_end_is_marked_seen_and_other_runs_are_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("seed.json");
        let mut rec = RunRecord::starting("h");
        rec.state = RunState::Running;
        rec.pid = Some(10);
        rec.start_time = Some(20);
        write(&path, &rec).expect("write");
        mark_seen(&path, 11, 20, Some(ExitInfo::Code(0)), false);
        assert_eq!(read(&path), Some(rec.clone()), "another run: untouched");
        // Killed with its group before it could record: the supervisor's exit is written.
        mark_seen(&path, 10, 20, Some(ExitInfo::Signal(9)), true);
        let back = read(&path).expect("a record");
        assert!(back.seen && back.stopped);
        assert_eq!(back.exit(), Some(ExitInfo::Signal(9)));
        // A recorded exit is kept: the waiting parent's is the program's own.
        rec.state = RunState::Exited;
        rec.code = Some(3);
        write(&path, &rec).expect("write");
        mark_seen(&path, 10, 20, Some(ExitInfo::Code(0)), false);
        let back = read(&path).expect("a record");
        assert!(back.seen && !back.stopped);
        assert_eq!(back.exit(), Some(ExitInfo::Code(3)));
    }

    #[test]
    fn a_dead_or_unnamed_parent_is_not_alive() {
        let mut rec = RunRecord::starting("h");
        assert!(!rec.parent_alive());
        rec.pid = Some(i32::MAX - 1);
        rec.start_time = Some(1);
        rec.boot_id = Some(platform::boot_id().to_owned());
        assert!(!rec.parent_alive());
    }
}
