//! Following one log like `tail -F`, each line with its time: `procs logs -f`, `procs up
//! --attach`, `log` health checks.
//!
//! Owns: [`Followed`]. Must not: write anything. Invariants: each line is returned once, in
//! order, with a time that never decreases; see [`Followed`] for the rotations it follows.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::index::{Index, index_path, mtime_ms};
use super::{
    FOLLOW_PATIENCE, FileId, Line, MAX_COPIES, compressed_path, file_id, read_from, read_gz,
    rotated_path, rotation_in_progress,
};

/// The identity of copy `n` of the log at `path`: that of its index (which compression
/// leaves alone, so a copy keeps its identity when it becomes `.gz`), else of the copy.
fn copy_id(path: &Path, n: u32) -> Option<FileId> {
    let plain = rotated_path(path, n);
    file_id(&index_path(&plain))
        .or_else(|| file_id(&plain))
        .or_else(|| file_id(&compressed_path(path, n)))
}

/// Copy `n`'s content (plain, else decompressed) and index.
fn read_copy(path: &Path, n: u32) -> Option<(Vec<u8>, Index)> {
    let plain = rotated_path(path, n);
    let (bytes, meta) = match fs::read(&plain) {
        Ok(bytes) => (bytes, fs::metadata(&plain).ok()?),
        Err(_) => read_gz(&compressed_path(path, n)).ok()?,
    };
    let index = Index::load(&plain, bytes.len() as u64, mtime_ms(&meta));
    Some((bytes, index))
}
use crate::platform;

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
///
/// Times come from the index of the file each line starts in; bytes the supervisor has not
/// indexed yet get the log's mtime (within a moment of their write).
pub struct Followed {
    pub name: String,
    pub path: PathBuf,
    offset: u64,
    inode: u64,
    /// Identity of `NAME.log.1` when last looked at.
    rotated: Option<FileId>,
    carry: Vec<u8>,
    /// The time of the first byte of `carry`.
    carry_time: i64,
    /// The time of the last line returned.
    last_time: i64,
    index: LiveIndex,
}

/// Most bytes one [`Followed::read_new`] reads from one file.
const READ_LIMIT: u64 = 16 * 1024 * 1024;

/// The live log's index, read incrementally (it only grows between rotations, which
/// replace it).
#[derive(Default)]
struct LiveIndex {
    ino: Option<u64>,
    bytes: Vec<u8>,
}

impl LiveIndex {
    fn refresh(&mut self, log: &Path, meta: &fs::Metadata) -> Index {
        let path = index_path(log);
        match fs::metadata(&path) {
            Ok(m) if Some(m.ino()) == self.ino && m.len() >= self.bytes.len() as u64 => {
                let more = read_from(&path, self.bytes.len() as u64, m.len());
                self.bytes.extend_from_slice(&more);
            }
            Ok(m) => {
                self.ino = Some(m.ino());
                self.bytes = fs::read(&path).unwrap_or_default();
            }
            Err(_) => {
                self.ino = None;
                self.bytes.clear();
            }
        }
        Index::parse(&self.bytes, meta.len(), mtime_ms(meta))
    }
}

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
        let rotated = copy_id(&path, 1);
        let (len, inode) = fs::metadata(&path).map_or((0, 0), |m| (m.len(), m.ino()));
        let offset = offset.unwrap_or(len);
        Self {
            name: name.to_owned(),
            path,
            offset,
            inode,
            rotated,
            carry: Vec::new(),
            carry_time: i64::MIN,
            last_time: i64::MIN,
            index: LiveIndex::default(),
        }
    }

    /// The offset in the live log the next read starts from.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Has `NAME.log.1` been replaced since we last looked (a rotation finished)?
    fn rotated_since(&self) -> Option<FileId> {
        copy_id(&self.path, 1).filter(|id| Some(*id) != self.rotated)
    }

    /// Complete new lines since the last call.
    pub fn read_new(&mut self) -> Vec<String> {
        self.read_new_timed().into_iter().map(|l| l.text).collect()
    }

    /// Complete new lines since the last call, with their times.
    pub fn read_new_timed(&mut self) -> Vec<Line> {
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
        let Ok(meta) = fs::metadata(&self.path) else {
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
            let index = self.index.refresh(&self.path, &meta);
            let buf = read_from(&self.path, self.offset, READ_LIMIT);
            let base = self.offset;
            self.offset += buf.len() as u64;
            self.push(&buf, base, &index, &mut lines);
        }
        lines
    }

    /// Rotations happened since the last look (`.1` is now `id`): read what we had not
    /// read of the old file from the new copies, oldest first, and move the offset into
    /// the live file. Each copy is the front of the log as it was then (all of it after a
    /// copytruncate, a block-aligned part after a collapse), so an offset past a copy's
    /// length is that much further into what came after it.
    fn catch_up(&mut self, id: FileId, lines: &mut Vec<Line>) {
        // The copy that was `.1` last time has moved to `.k`: `.k-1` … `.1` are new. If it
        // cannot be found (there was none when we started, or it was dropped by `keep`),
        // every copy there is came after our last look.
        let previous = self.rotated.map(|old| old.ino);
        let mut new_copies = Vec::new();
        for n in 1..=MAX_COPIES {
            match copy_id(&self.path, n) {
                Some(found) if Some(found.ino) == previous => break,
                Some(_) => new_copies.push(n),
                None => break,
            }
        }
        for &n in new_copies.iter().rev() {
            let Some((bytes, index)) = read_copy(&self.path, n) else {
                // Gone (dropped by `keep` or `max_age` meanwhile): nothing to read.
                continue;
            };
            let len = bytes.len() as u64;
            if self.offset < len {
                let start = usize::try_from(self.offset).unwrap_or(usize::MAX);
                let end = bytes.len().min(start.saturating_add(READ_LIMIT as usize));
                let base = self.offset;
                self.push(&bytes[start..end], base, &index, lines);
            }
            self.offset = self.offset.saturating_sub(len);
        }
        self.rotated = Some(id);
    }

    /// Split `bytes` (from `base` in a file whose index is `index`) into lines, the first
    /// continuing `carry`.
    fn push(&mut self, bytes: &[u8], base: u64, index: &Index, lines: &mut Vec<Line>) {
        let mut start = 0;
        if self.carry.is_empty() && !bytes.is_empty() {
            self.carry_time = index.time_of(base);
        }
        while let Some(len) = bytes[start..].iter().position(|b| *b == b'\n') {
            let end = start + len;
            let mut text = std::mem::take(&mut self.carry);
            text.extend_from_slice(&bytes[start..end]);
            let time = self.carry_time.max(self.last_time);
            self.last_time = time;
            lines.push(Line {
                time,
                text: String::from_utf8_lossy(&text).into_owned(),
            });
            start = end + 1;
            self.carry_time = index.time_of(base + start as u64);
        }
        self.carry.extend_from_slice(&bytes[start..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::index::{self, Record};

    #[test]
    fn a_follower_that_started_before_any_rotation_reads_every_copy_made_since() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        fs::write(&path, "a\n").expect("write");
        let mut follow = Followed::at_end("a", path.clone());
        // Two rotations (copytruncate-style) before the follower looks again.
        fs::write(rotated_path(&path, 1), "a\nb\n").expect("write");
        fs::rename(rotated_path(&path, 1), rotated_path(&path, 2)).expect("shift");
        fs::write(rotated_path(&path, 1), "c\n").expect("write");
        fs::write(&path, "d\n").expect("write");
        assert_eq!(follow.read_new(), vec!["b", "c", "d"]);
    }

    #[test]
    fn follow_survives_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        fs::write(&path, "old\n").expect("write");
        let mut f = Followed::at_end("a", path.clone());
        fs::write(&path, "old\nnew 1\npart").expect("write");
        assert_eq!(f.read_new(), vec!["new 1"]);
        fs::rename(&path, dir.path().join("a.log.1")).expect("rename");
        fs::write(&path, "fresh\n").expect("write");
        assert_eq!(f.read_new(), vec!["fresh"]);
    }

    #[test]
    fn followed_lines_carry_the_times_of_the_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        fs::write(&path, "").expect("write");
        let mut f = Followed::at_end("a", path.clone());
        fs::write(&path, "one\ntw").expect("write");
        index::write(
            &path,
            &[
                Record {
                    offset: 4,
                    time: 100,
                },
                Record {
                    offset: 6,
                    time: 200,
                },
            ],
        )
        .expect("index");
        let got = f.read_new_timed();
        assert_eq!(
            got,
            [Line {
                time: 100,
                text: "one".into()
            }]
        );
        fs::write(&path, "one\ntwo\nthree\n").expect("write");
        // The index file grows: the follower reads only its new records.
        index::write(
            &path,
            &[
                Record {
                    offset: 4,
                    time: 100,
                },
                Record {
                    offset: 6,
                    time: 200,
                },
                Record {
                    offset: 14,
                    time: 50,
                },
            ],
        )
        .expect("index");
        let got = f.read_new_timed();
        assert_eq!(
            got,
            [
                Line {
                    time: 200,
                    text: "two".into()
                },
                Line {
                    time: 200,
                    text: "three".into()
                }
            ],
            "a line takes its first byte's time; a clock step back is clamped"
        );
    }
}
