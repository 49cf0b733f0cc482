//! Process logs on disk: their time index, reading the end of a log with the time of each
//! line, and following logs across appends, restarts and rotations.
//!
//! Owns: everything that reads `logs/NAME.log*`, the names of the files beside a log
//! ([`rotated_path`], [`rotation_temp_path`], [`index_path`]) and the index format
//! ([`index`]). Writers are the children themselves (their stdout/stderr are the file,
//! `O_APPEND`), the supervisor's `[procs]` event lines, and the supervisor's log watcher,
//! which appends to the index; rotation (collapse of the front, or copytruncate) lives in
//! the supervisor (`supervisor/rotate.rs`), which documents the steps that [`Followed`]
//! relies on.
//!
//! One concept per file: `index.rs` (byte offset → time), `tail.rs` (the last lines of a
//! log and its copies, `--since`/`--until`), `follow.rs` ([`Followed`], `tail -F` with
//! times).
//!
//! Invariants: every reader that looks at more than one file, or at `NAME.log.1` and an
//! offset into `NAME.log` ([`tail`], [`Followed`]), does it under `LOCK_SH` on
//! `NAME.log`, which the rotator holds exclusively from the shift of the copies to the
//! rename of the new `.1` and its index: a reader never sees the live file shifted or
//! truncated with the new copy not yet in place. Readers wait for the lock at most a moment
//! (a stopped supervisor cannot hang them; a dead one has released it): [`Followed`] then
//! reads nothing and tries again on its next call, [`tail`] reads unlocked. The times of
//! the lines of one log never decrease, across its copies too.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

mod follow;
pub mod index;
mod tail;

pub use follow::Followed;
pub use index::{index_path, millis, system_time};
pub use tail::{Query, current_run_tail, run_tail, tail, tail_file, tail_lines};

/// One line of a log and the time it was written (Unix ms, see [`index`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub time: i64,
    pub text: String,
}

/// `NAME.log.N`: the `n`-th newest rotated copy of the log at `path` (`n` ≥ 1).
pub fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// `NAME.log.N.gz`: the `n`-th newest rotated copy, compressed (`logs.compress`).
pub fn compressed_path(path: &Path, n: u32) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{n}.gz"));
    PathBuf::from(name)
}

/// The decompressed content of a gzip file, and the file's metadata.
fn read_gz(path: &Path) -> std::io::Result<(Vec<u8>, std::fs::Metadata)> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(file).read_to_end(&mut bytes)?;
    Ok((bytes, meta))
}

/// `NAME.log.rotating`: where a rotation copies the log before the copy is renamed to
/// `NAME.log.1`. It exists only while a rotation is in progress (or after a supervisor
/// died in the middle of one).
pub fn rotation_temp_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".rotating");
    PathBuf::from(name)
}

/// Is a rotation of the log at `path` in progress? A copy that has not been written to
/// for a while is the leftover of a supervisor that died mid-rotation, not a rotation.
fn rotation_in_progress(path: &Path) -> bool {
    const STALE: Duration = Duration::from_secs(2);
    std::fs::metadata(rotation_temp_path(path))
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().map_or(true, |age| age < STALE))
}

/// How long a one-shot reader ([`tail`]) waits for a rotation to release the lock.
const TAIL_PATIENCE: Duration = Duration::from_secs(1);
/// How long [`Followed::read_new`] waits for it before giving up until its next call.
const FOLLOW_PATIENCE: Duration = Duration::from_millis(200);
/// Most rotated copies a reader looks at: the most `logs.keep` may be.
pub(crate) const MAX_COPIES: u32 = 1000;

/// Identity of a file: inode and change time (a rename updates the change time, so an
/// inode number reused by a later copy still reads as a different file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    ino: u64,
    ctime: i64,
    ctime_nsec: i64,
}

fn file_id(path: &Path) -> Option<FileId> {
    std::fs::metadata(path).ok().map(|m| FileId {
        ino: m.ino(),
        ctime: m.ctime(),
        ctime_nsec: m.ctime_nsec(),
    })
}

/// Up to `limit` bytes of `path` from `offset` (nothing if it cannot be read).
fn read_from(path: &Path, offset: u64, limit: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Ok(mut file) = File::open(path)
        && file.seek(SeekFrom::Start(offset)).is_ok()
    {
        let _ = file.take(limit).read_to_end(&mut buf);
    }
    buf
}

/// Timestamp of a `[procs] <rfc3339> …` event line.
pub fn event_time(line: &str) -> Option<SystemTime> {
    let rest = line.strip_prefix("[procs] ")?;
    let stamp = rest.split_whitespace().next()?;
    humantime::parse_rfc3339(stamp).ok()
}

/// The message of a `[procs] <rfc3339> MESSAGE` event line.
pub fn event_message(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("[procs] ")?;
    let (stamp, message) = rest.split_once(' ')?;
    humantime::parse_rfc3339(stamp).ok()?;
    Some(message)
}

/// `now - duration`.
pub fn cutoff(duration: Duration) -> SystemTime {
    SystemTime::now()
        .checked_sub(duration)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// `time` as RFC 3339 UTC with milliseconds (`2026-12-02T16:49:22.123Z`).
pub fn format_time(time: i64) -> String {
    humantime::format_rfc3339_millis(system_time(time)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_give_their_message() {
        assert_eq!(
            event_message("[procs] 2020-01-01T00:00:00Z started pid 1"),
            Some("started pid 1")
        );
        assert_eq!(event_message("[procs] not an event"), None);
        assert_eq!(event_message("plain output"), None);
        assert_eq!(format_time(1_500), "1970-01-01T00:00:01.500Z");
    }
}
