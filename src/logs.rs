//! Process logs on disk: reading the end of a file, `--since`, and following files
//! across appends, restarts and rotations.
//!
//! Owns: everything that reads `logs/NAME.log*`, and the names of rotated copies
//! ([`rotated_path`], [`rotation_temp_path`]). Writers are the children themselves (their
//! stdout/stderr are the file, `O_APPEND`) and the supervisor's `[procs]` event lines;
//! rotation (collapse of the front, or copytruncate) lives in the supervisor
//! (`supervisor/rotate.rs`), which documents the steps that [`Followed`] relies on.
//!
//! Invariants: every reader that looks at more than one file, or at `NAME.log.1` and an
//! offset into `NAME.log` ([`tail_lines`], [`Followed`]), does it under `LOCK_SH` on
//! `NAME.log`, which the rotator holds exclusively from the shift of the copies to the
//! rename of the new `.1`: a reader never sees the live file shifted or truncated with the
//! new copy not yet in place. Readers wait for the lock at most a moment (a stopped
//! supervisor cannot hang them; a dead one has released it): [`Followed`] then reads
//! nothing and tries again on its next call, [`tail_lines`] reads unlocked.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::platform;

/// `NAME.log.N`: the `n`-th newest rotated copy of the log at `path` (`n` ≥ 1).
pub fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{n}"));
    PathBuf::from(name)
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

/// How long a one-shot reader ([`tail_lines`]) waits for a rotation to release the lock.
const TAIL_PATIENCE: Duration = Duration::from_secs(1);
/// How long [`Followed::read_new`] waits for it before giving up until its next call.
const FOLLOW_PATIENCE: Duration = Duration::from_millis(200);
/// Most rotated copies [`Followed`] reads after missing several rotations.
const CATCH_UP_COPIES: u32 = 64;

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

/// The last `n` lines of a file, as text (lossy UTF-8), read from the end.
pub fn tail_file(path: &Path, n: usize) -> io::Result<String> {
    let lines = tail_lines(path, n)?;
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    Ok(text)
}

/// The last `n` lines of one run of a process: what `log` holds from byte `from` (where
/// that run started) up to the next run's `[procs] … started pid` line. Falls back to
/// the plain tail when the log is shorter than `from` (it was rotated since).
pub fn run_tail(path: &Path, from: u64, n: usize) -> io::Result<String> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut log = File::open(path)?;
    if log.metadata()?.len() < from {
        return tail_file(path, n);
    }
    log.seek(SeekFrom::Start(from))?;
    let mut buf = Vec::new();
    log.take(1 << 20).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<&str> = Vec::new();
    for line in text.lines() {
        let next_run = line.starts_with("[procs] ") && line.contains(" started pid ");
        if next_run && !lines.is_empty() {
            break;
        }
        lines.push(line);
    }
    if lines.len() > n {
        lines.drain(..lines.len() - n);
    }
    let mut out = lines.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    Ok(out)
}

/// The last `n` lines of a log; when it holds fewer (it was just rotated), the rest
/// comes from the end of `NAME.log.1`. The two are read as one text: a collapse cuts on a
/// block boundary, so a line often starts at the end of `.1` and ends in `NAME.log`.
pub fn tail_lines(path: &Path, n: usize) -> io::Result<Vec<String>> {
    // Both files as of one moment: no rotation between the two reads. Without the lock
    // (a rotator stuck holding it), the result may miss or repeat one rotation's worth.
    let _lock = platform::lock_shared(path, TAIL_PATIENCE).ok().flatten();
    let mut log = File::open(path)?;
    let mut buf = Vec::new();
    let mut newlines = 0;
    if n > 0
        && !prepend_tail(&mut log, n, &mut buf, &mut newlines)?
        && let Ok(mut older) = File::open(rotated_path(path, 1))
    {
        // An unreadable copy only costs the older lines.
        let _ = prepend_tail(&mut older, n, &mut buf, &mut newlines);
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    if lines.len() > n {
        lines.drain(..lines.len() - n);
    }
    Ok(lines)
}

/// Put the end of `file` in front of `buf`, backwards chunk by chunk, until `buf` holds
/// more than `n` newlines (`newlines` counts them): then its last `n` lines are whole.
/// Returns whether it got there before the start of the file.
fn prepend_tail(
    file: &mut File,
    n: usize,
    buf: &mut Vec<u8>,
    newlines: &mut usize,
) -> io::Result<bool> {
    const CHUNK: u64 = 64 * 1024;
    let mut pos = file.metadata()?.len();
    while pos > 0 {
        let step = CHUNK.min(pos);
        pos -= step;
        file.seek(SeekFrom::Start(pos))?;
        let mut chunk = vec![0; step as usize];
        file.read_exact(&mut chunk)?;
        *newlines += chunk.split(|b| *b == b'\n').count() - 1;
        chunk.extend_from_slice(buf);
        *buf = chunk;
        if *newlines > n {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Timestamp of a `[procs] <rfc3339> …` event line.
pub fn event_time(line: &str) -> Option<SystemTime> {
    let rest = line.strip_prefix("[procs] ")?;
    let stamp = rest.split_whitespace().next()?;
    humantime::parse_rfc3339(stamp).ok()
}

/// Keep the lines written after `cutoff`. Child output carries no timestamps, so
/// this keeps everything after the last `[procs]` event line older than the cutoff
/// (and nothing if the file was last written before it).
pub fn since(lines: Vec<String>, path: &Path, cutoff: SystemTime) -> Vec<String> {
    if let Ok(meta) = std::fs::metadata(path)
        && meta.modified().is_ok_and(|m| m < cutoff)
    {
        return Vec::new();
    }
    let start = lines
        .iter()
        .rposition(|l| event_time(l).is_some_and(|t| t < cutoff))
        .map_or(0, |i| i + 1);
    lines.into_iter().skip(start).collect()
}

/// `now - duration`.
pub fn cutoff(duration: Duration) -> SystemTime {
    SystemTime::now()
        .checked_sub(duration)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Follows one log file like `tail -F`: new bytes as they are appended, across
/// rotations and restarts. Each call looks under `LOCK_SH` on the log (see the module
/// docs), so a rotation is either wholly before or wholly after it.
///
/// * A rotation is recognised by the new identity of `NAME.log.1`. Each copy is the front
///   of the log as it was (all of it after a copytruncate, whole blocks after a collapse):
///   with `.1` of length `L`, what we had not read of it is `.1` from our offset (if below
///   `L`), and our offset in the live file becomes `offset - L`, or 0 if that is negative
///   (always 0 after a copytruncate).
/// * Several rotations since the last call: the previous `.1`, found by its inode as `.k`,
///   tells that `.k-1` … `.1` are new; each is read that way, oldest first. No line is read
///   twice, and none is skipped unless we fell more than `keep` rotations behind (or the
///   previous `.1` cannot be found: then only `.1` is taken as new).
/// * A file that shrank with no new copy (truncated by someone else, or a rotation with
///   `keep: 0`) is read from its start; a replaced file (new inode: moved away and
///   recreated) too. A shrink while `NAME.log.rotating` is fresh is left for later: a
///   rotator that does not take the lock (an older supervisor) is between its truncation
///   and its rename.
pub struct Followed {
    pub name: String,
    pub path: PathBuf,
    rotated_path: PathBuf,
    offset: u64,
    inode: u64,
    /// Identity of `NAME.log.1` when last looked at.
    rotated: Option<FileId>,
    carry: Vec<u8>,
}

/// Most bytes one [`Followed::read_new`] reads from one file.
const READ_LIMIT: u64 = 16 * 1024 * 1024;

impl Followed {
    /// Start at the current end of `path`.
    pub fn at_end(name: &str, path: PathBuf) -> Self {
        Self::start(name, path, None)
    }

    /// Start at `offset` in `path` (an end of file seen earlier, with no rotation since).
    pub fn at_offset(name: &str, path: PathBuf, offset: u64) -> Self {
        Self::start(name, path, Some(offset))
    }

    fn start(name: &str, path: PathBuf, offset: Option<u64>) -> Self {
        let _lock = platform::lock_shared(&path, FOLLOW_PATIENCE).ok().flatten();
        let rotated_path = rotated_path(&path, 1);
        let rotated = file_id(&rotated_path);
        let (len, inode) = std::fs::metadata(&path).map_or((0, 0), |m| (m.len(), m.ino()));
        let offset = offset.unwrap_or(len);
        Self {
            name: name.to_owned(),
            path,
            rotated_path,
            offset,
            inode,
            rotated,
            carry: Vec::new(),
        }
    }

    /// Has `NAME.log.1` been replaced since we last looked (a rotation finished)?
    fn rotated_since(&self) -> Option<FileId> {
        file_id(&self.rotated_path).filter(|id| Some(*id) != self.rotated)
    }

    /// Complete new lines since the last call.
    pub fn read_new(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        let _lock = match platform::lock_shared(&self.path, FOLLOW_PATIENCE) {
            Ok(Some(lock)) => Some(lock),
            // A rotator holds the lock for longer than it should (stopped?): look again
            // next time rather than read a half-rotated log.
            Ok(None) => return lines,
            // No log (yet): nothing to lock, and nothing for a rotation to change.
            Err(_) => None,
        };
        if let Some(id) = self.rotated_since() {
            self.catch_up(id, &mut lines);
        }
        let Ok(meta) = std::fs::metadata(&self.path) else {
            return lines;
        };
        if meta.ino() != self.inode {
            self.inode = meta.ino();
            self.offset = 0;
            self.carry.clear();
        } else if meta.len() < self.offset {
            // Shrunk with no new `.1`: truncated by someone else or by a `keep: 0`
            // rotation — unless a rotator that does not take the lock (a supervisor of an
            // older version) is between its truncation and its rename.
            if rotation_in_progress(&self.path) {
                return lines;
            }
            self.offset = 0;
            self.carry.clear();
        }
        if meta.len() > self.offset {
            let buf = read_from(&self.path, self.offset, READ_LIMIT);
            self.offset += buf.len() as u64;
            self.push(&buf, &mut lines);
        }
        lines
    }

    /// Rotations happened since the last look (`.1` is now `id`): read what we had not
    /// read of the old file from the new copies, oldest first, and move the offset into
    /// the live file. Each copy is the front of the log as it was then (all of it after a
    /// copytruncate, a block-aligned part after a collapse), so an offset past a copy's
    /// length is that much further into what came after it.
    fn catch_up(&mut self, id: FileId, lines: &mut Vec<String>) {
        // The copy that was `.1` last time has moved to `.k`: `.k-1` … `.1` are new. If it
        // cannot be found (there was none when we started, or it was dropped by `keep`),
        // every copy there is came after our last look.
        let previous = self.rotated.map(|old| old.ino);
        let mut new_copies = Vec::new();
        for n in 1..=CATCH_UP_COPIES {
            let copy = rotated_path(&self.path, n);
            match std::fs::metadata(&copy) {
                Ok(m) if Some(m.ino()) == previous => break,
                Ok(_) => new_copies.push(copy),
                Err(_) => break,
            }
        }
        for copy in new_copies.iter().rev() {
            let len = std::fs::metadata(copy).map_or(0, |m| m.len());
            if self.offset < len {
                let rest = read_from(copy, self.offset, (len - self.offset).min(READ_LIMIT));
                self.push(&rest, lines);
            }
            self.offset = self.offset.saturating_sub(len);
        }
        self.rotated = Some(id);
    }

    fn push(&mut self, bytes: &[u8], lines: &mut Vec<String>) {
        self.carry.extend_from_slice(bytes);
        let mut consumed = 0;
        while let Some(end) = self.carry[consumed..].iter().position(|b| *b == b'\n') {
            let line = &self.carry[consumed..consumed + end];
            lines.push(String::from_utf8_lossy(line).into_owned());
            consumed += end + 1;
        }
        self.carry.drain(..consumed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_reads_only_the_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        let text: String = (0..1000).fold(String::new(), |mut acc, i| {
            acc.push_str(&format!("line {i}\n"));
            acc
        });
        std::fs::write(&path, text).expect("write");
        assert_eq!(
            tail_lines(&path, 3).expect("tail"),
            vec!["line 997", "line 998", "line 999"]
        );
        assert_eq!(tail_lines(&path, 5000).expect("tail").len(), 1000);
    }

    #[test]
    fn a_follower_that_started_before_any_rotation_reads_every_copy_made_since() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        std::fs::write(&path, "a\n").expect("write");
        let mut follow = Followed::at_end("a", path.clone());
        // Two rotations (copytruncate-style) before the follower looks again.
        std::fs::write(rotated_path(&path, 1), "a\nb\n").expect("write");
        std::fs::rename(rotated_path(&path, 1), rotated_path(&path, 2)).expect("shift");
        std::fs::write(rotated_path(&path, 1), "c\n").expect("write");
        std::fs::write(&path, "d\n").expect("write");
        assert_eq!(follow.read_new(), vec!["b", "c", "d"]);
    }

    #[test]
    fn tail_continues_into_the_rotated_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        std::fs::write(rotated_path(&path, 1), "old 1\nold 2\nold 3\n").expect("write");
        std::fs::write(&path, "new 1\n").expect("write");
        assert_eq!(
            tail_lines(&path, 3).expect("tail"),
            vec!["old 2", "old 3", "new 1"]
        );
        assert_eq!(tail_lines(&path, 1).expect("tail"), vec!["new 1"]);
        assert_eq!(tail_lines(&path, 0).expect("tail"), Vec::<String>::new());
    }

    #[test]
    fn tail_joins_a_line_cut_by_a_collapse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        std::fs::write(rotated_path(&path, 1), "old\nwhole\nhal").expect("write");
        std::fs::write(&path, "f\nnew\n").expect("write");
        assert_eq!(
            tail_lines(&path, 3).expect("tail"),
            vec!["whole", "half", "new"]
        );
        assert_eq!(tail_lines(&path, 2).expect("tail"), vec!["half", "new"]);
        assert!(tail_lines(&dir.path().join("none.log"), 2).is_err());
    }

    #[test]
    fn follow_survives_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        std::fs::write(&path, "old\n").expect("write");
        let mut f = Followed::at_end("a", path.clone());
        std::fs::write(&path, "old\nnew 1\npart").expect("write");
        assert_eq!(f.read_new(), vec!["new 1"]);
        std::fs::rename(&path, dir.path().join("a.log.1")).expect("rename");
        std::fs::write(&path, "fresh\n").expect("write");
        assert_eq!(f.read_new(), vec!["fresh"]);
    }

    #[test]
    fn since_keeps_lines_after_the_last_old_event() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        std::fs::write(&path, "x\n").expect("write");
        let lines = vec![
            "[procs] 2020-01-01T00:00:00Z started pid 1".to_owned(),
            "old output".to_owned(),
            "[procs] 2020-01-02T00:00:00Z started pid 2".to_owned(),
            "newer output".to_owned(),
        ];
        let cutoff = humantime::parse_rfc3339("2020-01-01T12:00:00Z").expect("time");
        assert_eq!(
            since(lines, &path, cutoff),
            vec![
                "old output",
                "[procs] 2020-01-02T00:00:00Z started pid 2",
                "newer output"
            ]
        );
    }
}
