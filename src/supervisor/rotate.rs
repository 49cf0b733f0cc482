//! Size-based rotation of the logs in `.procs/logs/`, done from outside the writers.
//!
//! Owns: deciding when a log is over its `logs.max_size` and rotating it
//! (`NAME.log` → `NAME.log.1` → … → `NAME.log.keep`, the oldest dropped). Must not: hold
//! a log open between rotations, write into a log, or block the supervisor's runtime
//! (copies run on the blocking pool).
//!
//! **Why copytruncate.** Children write straight into `NAME.log` through their own
//! `O_APPEND` descriptors (see `spawn.rs`): output never passes through the supervisor, so
//! a process keeps running and logging when the supervisor dies. A rename-based rotation
//! cannot work with that: the children would go on writing into the renamed file. So
//! the log is copied, then truncated in place, and the children's next `O_APPEND` write
//! lands at the new end (offset 0). The supervisor's own `procs.log` (its stderr, also
//! `O_APPEND`) is rotated the same way with a fixed policy ([`SUPERVISOR_POLICY`]).
//!
//! **Steps of one rotation** ([`rotate_once`]), in this order, which `logs::Followed`
//! relies on:
//! 1. copy `NAME.log` into `NAME.log.rotating` (in-kernel `copy_file_range` through
//!    `std::io::copy`, from offset 0 to the end of file);
//! 2. shift the old copies: delete `.keep`, rename `.N` → `.N+1`;
//! 3. copy again from where step 1 stopped, to the end of file: the bytes appended during
//!    steps 1 and 2;
//! 4. truncate `NAME.log` to 0 — right after step 3 saw the end of file;
//! 5. rename `NAME.log.rotating` to `NAME.log.1`.
//!
//! **Invariants.** At most `keep` rotated copies exist, plus `NAME.log.rotating` while a
//! rotation runs; one rotation per file at a time; bytes are never duplicated; every byte
//! in `NAME.log` at step 3's end of file is in `NAME.log.1`; a renamed `.1` always means
//! `NAME.log` was already truncated (step 4 before 5).
//!
//! **Limits.** (a) A write that lands between step 3 reaching the end of file and step 4
//! taking the inode lock is lost, as is the rest of a write the copy caught half done. For
//! an ordinary logger the window is one `ftruncate(2)` call, microseconds; a writer that
//! saturates the file keeps taking the inode lock first and can make the truncation wait
//! for milliseconds, losing what it writes meantime (measured: up to 10 MiB of a 256 MiB
//! burst at 1 GB/s). Closing the window needs the writers' cooperation (stopping them with
//! `SIGSTOP` would be visible to them and to their parents) or
//! `FALLOC_FL_COLLAPSE_RANGE` (ext4/XFS only; see `docs/architecture.md`). (b) Rotation is asynchronous: the
//! size is checked when inotify reports a write, so a writer faster than the check
//! overshoots `max_size` by what it wrote in the meantime; `NAME.log.1` holds whatever was
//! there at rotation time, not exactly `max_size` bytes, and rotations never split lines
//! on purpose (a copy may end mid-line if the writer was mid-line). (c) Nothing rotates
//! while no supervisor runs; the first check after startup catches up. (d) A supervisor
//! killed between steps 4 and 5 leaves the copy as `NAME.log.rotating`, which the next
//! rotation of that log overwrites.
//!
//! **Trigger.** One task watches the logs directory with inotify (`IN_MODIFY`) through
//! the runtime's reactor: no polling, no timer. After a wakeup it drains the whole queue
//! and stats each touched log once, so a fast writer costs a bounded number of wakeups
//! (the kernel merges identical queued events) and no work per byte. A policy change (a
//! new `procs up`) and the end of a rotation re-check every known log.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{Config, LogPolicy};
use crate::logs::{rotated_path, rotation_temp_path};
use crate::paths::Paths;
use crate::platform::DirEvents;

/// The rotation policy of each process log, by process name.
pub type Policies = BTreeMap<String, LogPolicy>;

/// The policy of the supervisor's own `procs.log`.
pub const SUPERVISOR_POLICY: LogPolicy = LogPolicy {
    max_size: 10 * 1024 * 1024,
    keep: 3,
};

/// The policies of every process of `config`.
pub fn policies(config: &Config) -> Policies {
    config
        .processes
        .iter()
        .map(|(name, p)| (name.clone(), p.logs))
        .collect()
}

/// Rotate the log at `path` once, keeping `keep` older copies (none: just truncate).
/// Returns the number of bytes moved to `NAME.log.1`. See the module docs for the steps.
pub fn rotate_once(path: &Path, keep: u32) -> io::Result<u64> {
    let mut log = OpenOptions::new().read(true).write(true).open(path)?;
    if keep == 0 {
        let len = log.metadata()?.len();
        log.set_len(0)?;
        return Ok(len);
    }
    let temp = rotation_temp_path(path);
    let mut copy = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)?;
    let result = copy_and_truncate(path, keep, &mut log, &mut copy);
    if result.is_err() {
        let _ = fs::remove_file(&temp);
        return result;
    }
    fs::rename(&temp, rotated_path(path, 1))?;
    result
}

fn copy_and_truncate(path: &Path, keep: u32, log: &mut File, copy: &mut File) -> io::Result<u64> {
    let mut copied = io::copy(log, copy)?;
    shift(path, keep)?;
    copied += io::copy(log, copy)?;
    log.set_len(0)?;
    Ok(copied)
}

/// Make room for a new `NAME.log.1`: drop `.keep`, rename `.N` to `.N+1`.
fn shift(path: &Path, keep: u32) -> io::Result<()> {
    let ignore_missing = |r: io::Result<()>| match r {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    };
    ignore_missing(fs::remove_file(rotated_path(path, keep)))?;
    for n in (1..keep).rev() {
        ignore_missing(fs::rename(rotated_path(path, n), rotated_path(path, n + 1)))?;
    }
    Ok(())
}

/// Start the rotation task for the logs of `paths`, with the process policies that
/// `policies` publishes (the orchestrator sends a new map on each `procs up`).
/// Shortest pause between two looks at the logs while writes keep coming.
const CHECK_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

pub fn start(paths: &Paths, policies: watch::Receiver<Policies>) -> io::Result<()> {
    let events = DirEvents::new(&paths.logs_dir)?;
    let supervisor_log = paths
        .supervisor_log
        .file_name()
        .map(OsStr::to_owned)
        .unwrap_or_default();
    let rotator = Rotator {
        dir: paths.logs_dir.clone(),
        supervisor_log,
        policies,
        busy: BTreeSet::new(),
        jobs: JoinSet::new(),
    };
    tokio::spawn(rotator.run(events));
    Ok(())
}

struct Rotator {
    dir: PathBuf,
    /// `procs.log`.
    supervisor_log: OsString,
    policies: watch::Receiver<Policies>,
    /// Logs with a rotation in flight (checked again when it ends).
    busy: BTreeSet<OsString>,
    jobs: JoinSet<(OsString, io::Result<u64>)>,
}

impl Rotator {
    async fn run(mut self, events: DirEvents) {
        let mut touched = self.known_logs();
        loop {
            let checked = !touched.is_empty();
            for name in std::mem::take(&mut touched) {
                self.check(name);
            }
            if checked {
                // Under a write storm, look at most every CHECK_PAUSE: meanwhile the
                // kernel merges the events of each file into one, so the supervisor's
                // cost no longer grows with the writer's speed.
                tokio::time::sleep(CHECK_PAUSE).await;
            }
            tokio::select! {
                found = events.next() => match found {
                    Ok(found) if found.overflow => touched = self.known_logs(),
                    Ok(found) => touched = found.names,
                    Err(err) => {
                        tracing::error!("log rotation stopped: cannot read inotify events: {err}");
                        return;
                    }
                },
                changed = self.policies.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    touched = self.known_logs();
                }
                Some(joined) = self.jobs.join_next() => {
                    let Ok((name, result)) = joined else { continue };
                    self.busy.remove(&name);
                    match result {
                        Ok(bytes) => tracing::info!(
                            "rotated {}: {bytes} bytes moved to the first copy",
                            name.to_string_lossy()
                        ),
                        Err(err) => tracing::warn!(
                            "cannot rotate {}: {err}",
                            name.to_string_lossy()
                        ),
                    }
                    touched.insert(name);
                }
            }
        }
    }

    /// File names of every log with a policy.
    fn known_logs(&self) -> BTreeSet<OsString> {
        let mut names: BTreeSet<OsString> = self
            .policies
            .borrow()
            .keys()
            .map(|n| OsString::from(format!("{n}.log")))
            .collect();
        names.insert(self.supervisor_log.clone());
        names
    }

    fn policy(&self, file: &OsStr) -> Option<LogPolicy> {
        let process = file.to_str()?.strip_suffix(".log")?;
        if let Some(policy) = self.policies.borrow().get(process) {
            return Some(*policy);
        }
        (file == self.supervisor_log).then_some(SUPERVISOR_POLICY)
    }

    /// Rotate `file` on the blocking pool if it is over its limit.
    fn check(&mut self, file: OsString) {
        let Some(policy) = self.policy(&file) else {
            return;
        };
        if self.busy.contains(&file) {
            return;
        }
        let path = self.dir.join(&file);
        let Ok(meta) = fs::metadata(&path) else {
            return;
        };
        if meta.len() <= policy.max_size {
            return;
        }
        self.busy.insert(file.clone());
        self.jobs
            .spawn_blocking(move || (file, rotate_once(&path, policy.keep)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        fs::write(path, text).expect("write");
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap_or_else(|_| "<missing>".to_owned())
    }

    #[test]
    fn rotation_shifts_copies_and_keeps_at_most_keep() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("web.log");
        for round in 1..=5 {
            write(&log, &format!("round {round}\n"));
            let moved = rotate_once(&log, 2).expect("rotate");
            assert_eq!(moved, format!("round {round}\n").len() as u64);
            assert_eq!(read(&log), "", "truncated in place");
        }
        assert_eq!(read(&rotated_path(&log, 1)), "round 5\n");
        assert_eq!(read(&rotated_path(&log, 2)), "round 4\n");
        assert!(!rotated_path(&log, 3).exists(), "never more than keep");
        assert!(!rotation_temp_path(&log).exists());
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["web.log", "web.log.1", "web.log.2"]);
    }

    #[test]
    fn rotation_keeps_the_inode_so_appending_writers_go_on() {
        use std::io::Write as _;
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("web.log");
        let mut writer = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open");
        writer.write_all(&vec![b'a'; 100_000]).expect("write");
        let inode = fs::metadata(&log).expect("meta").ino();
        assert_eq!(rotate_once(&log, 3).expect("rotate"), 100_000);
        writer.write_all(b"after\n").expect("write");
        assert_eq!(fs::metadata(&log).expect("meta").ino(), inode);
        assert_eq!(read(&log), "after\n", "the writer continues at offset 0");
        assert_eq!(
            fs::metadata(rotated_path(&log, 1)).expect("meta").len(),
            100_000
        );
    }

    #[test]
    fn keep_zero_only_truncates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("web.log");
        write(&log, "old\n");
        assert_eq!(rotate_once(&log, 0).expect("rotate"), 4);
        assert_eq!(read(&log), "");
        assert!(!rotated_path(&log, 1).exists());
    }

    #[test]
    fn shifting_tolerates_gaps_and_drops_only_the_oldest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("web.log");
        write(&log, "new\n");
        write(&rotated_path(&log, 2), "two\n");
        write(&rotated_path(&log, 3), "three\n");
        rotate_once(&log, 3).expect("rotate");
        assert_eq!(read(&rotated_path(&log, 1)), "new\n");
        assert!(!rotated_path(&log, 2).exists(), "there was no .1 to shift");
        assert_eq!(read(&rotated_path(&log, 3)), "two\n");
        assert!(!rotated_path(&log, 4).exists());
    }

    #[test]
    fn a_missing_log_is_an_error_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("web.log");
        assert!(rotate_once(&log, 2).is_err());
        assert_eq!(fs::read_dir(dir.path()).expect("read dir").count(), 0);
    }

    fn append(path: &Path, text: &str) {
        use std::io::Write as _;
        OpenOptions::new()
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .expect("append");
    }

    #[test]
    fn a_follower_reads_every_line_once_across_a_copytruncate() {
        use crate::logs::Followed;
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("web.log");
        write(&log, "before\n");
        let mut f = Followed::at_end("web", log.clone());
        append(&log, "one\n");
        assert_eq!(f.read_new(), ["one"]);
        append(&log, "two\nthr");
        rotate_once(&log, 2).expect("rotate");
        // The writer finishes its line in the new file, which grows past the old offset
        // before the follower looks again.
        append(
            &log,
            "ee\nnew 1, long enough to pass the old offset\nnew 2\n",
        );
        assert_eq!(
            f.read_new(),
            [
                "two",
                "three",
                "new 1, long enough to pass the old offset",
                "new 2"
            ]
        );
        assert_eq!(f.read_new(), Vec::<String>::new());
        rotate_once(&log, 2).expect("rotate");
        append(&log, "x\n");
        assert_eq!(f.read_new(), ["x"]);
    }

    #[test]
    fn a_follower_waits_while_a_rotation_is_in_progress() {
        use crate::logs::Followed;
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("web.log");
        write(&log, "a\nb\n");
        let mut f = Followed::at_end("web", log.clone());
        append(&log, "c\n");
        // Steps 1-4 of a rotation done, the rename not yet: the copy is not `.1` yet.
        fs::copy(&log, rotation_temp_path(&log)).expect("copy");
        write(&log, "");
        append(&log, "d\ne\nf\ng\n");
        assert_eq!(f.read_new(), Vec::<String>::new(), "holds off");
        fs::rename(rotation_temp_path(&log), rotated_path(&log, 1)).expect("rename");
        assert_eq!(f.read_new(), ["c", "d", "e", "f", "g"]);
    }

    #[test]
    fn a_follower_rereads_a_log_truncated_without_a_copy() {
        use crate::logs::Followed;
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("web.log");
        write(&log, "old line\n");
        let mut f = Followed::at_end("web", log.clone());
        rotate_once(&log, 0).expect("truncate");
        append(&log, "new\n");
        assert_eq!(f.read_new(), ["new"]);
    }
}
