//! Process logs on disk: reading the end of a file, `--since`, and following files
//! across appends, restarts and rotations.
//!
//! Owns: everything that reads `logs/NAME.log*`. Writers are the children themselves
//! (their stdout/stderr are the file, `O_APPEND`) and the supervisor's `[procs]` event
//! lines; rotation lives in the supervisor.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The last `n` lines of a file, as text (lossy UTF-8), read from the end.
pub fn tail_file(path: &Path, n: usize) -> io::Result<String> {
    let lines = tail_lines(path, n)?;
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    Ok(text)
}

/// The last `n` lines of a file.
pub fn tail_lines(path: &Path, n: usize) -> io::Result<Vec<String>> {
    const CHUNK: u64 = 64 * 1024;
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut pos = len;
    let mut buf: Vec<u8> = Vec::new();
    while pos > 0 {
        let step = CHUNK.min(pos);
        pos -= step;
        file.seek(SeekFrom::Start(pos))?;
        let mut chunk = vec![0; step as usize];
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
        let newlines = buf.split(|b| *b == b'\n').count() - 1;
        if newlines > n {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    if lines.len() > n {
        lines.drain(..lines.len() - n);
    }
    Ok(lines)
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

/// Follows one log file like `tail -F`: new bytes as they are appended; a new file
/// (rotation: inode changed, or the file shrank) is read from its start.
pub struct Followed {
    pub name: String,
    pub path: PathBuf,
    offset: u64,
    inode: u64,
    carry: Vec<u8>,
}

impl Followed {
    /// Start at the current end of `path`.
    pub fn at_end(name: &str, path: PathBuf) -> Self {
        let (offset, inode) = std::fs::metadata(&path).map_or((0, 0), |m| (m.len(), m.ino()));
        Self {
            name: name.to_owned(),
            path,
            offset,
            inode,
            carry: Vec::new(),
        }
    }

    /// Complete new lines since the last call.
    pub fn read_new(&mut self) -> Vec<String> {
        let Ok(meta) = std::fs::metadata(&self.path) else {
            return Vec::new();
        };
        if meta.ino() != self.inode || meta.len() < self.offset {
            // Rotated or truncated: the old file's tail was read before the rename,
            // or is lost with it; start the new file from its beginning.
            self.inode = meta.ino();
            self.offset = 0;
            self.carry.clear();
        }
        if meta.len() == self.offset {
            return Vec::new();
        }
        let Ok(mut file) = File::open(&self.path) else {
            return Vec::new();
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut buf = Vec::new();
        let Ok(read) = file.take(16 * 1024 * 1024).read_to_end(&mut buf) else {
            return Vec::new();
        };
        self.offset += read as u64;
        self.carry.extend_from_slice(&buf);
        let mut lines = Vec::new();
        while let Some(end) = self.carry.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.carry.drain(..=end).collect();
            lines.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
        lines
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
