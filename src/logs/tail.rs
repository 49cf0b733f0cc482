//! The last lines of a log with their times: `procs logs` (with `-n`, `--since`,
//! `--until`, `--grep`), the failure tail of `procs up`, the supervisor's log on errors.
//!
//! Owns: reading a log backwards, then its rotated copies newest first, as one text (a
//! collapse cuts on a block boundary, so a line often starts at the end of `.1` and ends
//! in `NAME.log`); the time of a line is that of its first byte ([`super::index`]).
//!
//! Invariants: lines come out oldest first, their times never decrease; a query stops
//! reading at the first line older than `since` (times never decrease, so all before it are
//! older too) or once it has `lines` lines. It reads at most 64 KiB past what it returns
//! from a plain file.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead as _, Read, Seek, SeekFrom};
use std::path::Path;

use super::index::{Index, mtime_ms};
use super::{Line, MAX_COPIES, TAIL_PATIENCE, compressed_path, rotated_path};
use crate::platform;

/// Which lines of a log to read.
pub struct Query<'a> {
    /// The last this many lines (of those that pass the other tests).
    pub lines: usize,
    /// Only lines written at or after this time (Unix ms).
    pub since: Option<i64>,
    /// Only lines written at or before this time (Unix ms).
    pub until: Option<i64>,
    /// Only lines whose text passes this test.
    pub keep: &'a dyn Fn(&str) -> bool,
    /// Read the live log only up to this offset (where a follower started: no line is
    /// printed twice, none missed between the tail and the follow).
    pub end: Option<u64>,
}

impl Query<'_> {
    /// The last `lines` lines, whatever their time or text.
    pub fn last(lines: usize) -> Query<'static> {
        Query {
            lines,
            since: None,
            until: None,
            keep: &|_| true,
            end: None,
        }
    }
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

/// Is `line` the first line of a run (the `[procs] started pid N` line a child writes
/// before it execs)?
fn starts_a_run(line: &str) -> bool {
    line.starts_with("[procs] ") && line.contains(" started pid ")
}

/// `lines` as text, one a line.
fn joined(lines: impl IntoIterator<Item = String>) -> String {
    let mut out = String::new();
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The last `n` lines of one run of a process: what `log` holds from byte `from` (where
/// that run started) up to the next run's `[procs] … started pid` line, or the end of the
/// log. Reads the run forward, keeping only `n` lines. Falls back to
/// [`current_run_tail`] when the log is shorter than `from` (it was rotated since).
pub fn run_tail(path: &Path, from: u64, n: usize) -> io::Result<String> {
    let mut log = File::open(path)?;
    if log.metadata()?.len() < from {
        return current_run_tail(path, n);
    }
    log.seek(SeekFrom::Start(from))?;
    let mut reader = io::BufReader::new(log);
    let mut lines: VecDeque<String> = VecDeque::with_capacity(n.min(1024) + 1);
    let mut buf = Vec::new();
    let mut first = true;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&buf);
        let line = text.strip_suffix('\n').unwrap_or(&text);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if starts_a_run(line) && !first {
            break;
        }
        first = false;
        lines.push_back(line.to_owned());
        if lines.len() > n {
            lines.pop_front();
        }
    }
    Ok(joined(lines))
}

/// The last `n` lines of the current run of a process: the tail of `log`, from its last
/// `[procs] … started pid` line on if that is among them (never an earlier run's output).
pub fn current_run_tail(path: &Path, n: usize) -> io::Result<String> {
    let mut lines = tail_lines(path, n)?;
    if let Some(start) = lines.iter().rposition(|l| starts_a_run(l)) {
        lines.drain(..start);
    }
    Ok(joined(lines))
}

/// The last `n` lines of a log (continued into its copies when it holds fewer).
pub fn tail_lines(path: &Path, n: usize) -> io::Result<Vec<String>> {
    Ok(tail(path, &Query::last(n))?
        .into_iter()
        .map(|l| l.text)
        .collect())
}

/// One file to read backwards: a plain file or decompressed bytes.
enum Content {
    File(File),
    Bytes(Vec<u8>),
}

struct Source {
    content: Content,
    len: u64,
    index: Index,
}

impl Source {
    fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let index = Index::load(path, meta.len(), mtime_ms(&meta));
        Ok(Self {
            content: Content::File(file),
            len: meta.len(),
            index,
        })
    }

    /// The `n`-th rotated copy of the log at `path`, plain or compressed, if there is one
    /// that can be read (an unreadable `.gz` ends the copies there).
    fn copy(path: &Path, n: u32) -> Option<Self> {
        let plain = rotated_path(path, n);
        if let Ok(source) = Self::open(&plain) {
            return Some(source);
        }
        let (bytes, meta) = super::read_gz(&compressed_path(path, n)).ok()?;
        let len = bytes.len() as u64;
        Some(Self {
            index: Index::load(&plain, len, mtime_ms(&meta)),
            content: Content::Bytes(bytes),
            len,
        })
    }

    fn read_at(&mut self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        match &mut self.content {
            Content::File(f) => {
                f.seek(SeekFrom::Start(pos))?;
                f.read_exact(buf)
            }
            Content::Bytes(bytes) => {
                let start = usize::try_from(pos).unwrap_or(usize::MAX);
                let part = bytes
                    .get(start..start + buf.len())
                    .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
                buf.copy_from_slice(part);
                Ok(())
            }
        }
    }
}

/// The lines of the log at `path` that `query` asks for, oldest first, with their times.
pub fn tail(path: &Path, query: &Query) -> io::Result<Vec<Line>> {
    // All files as of one moment: no rotation between the reads. Without the lock (a
    // rotator stuck holding it), the result may miss or repeat one rotation's worth.
    let _lock = platform::lock_shared(path, TAIL_PATIENCE).ok().flatten();
    let mut source = Source::open(path)?;
    source.len = source.len.min(query.end.unwrap_or(u64::MAX));
    let mut scan = Scan {
        query,
        out: Vec::new(),
        newest: i64::MAX,
        done: query.lines == 0,
    };
    let mut carry = Carry::default();
    let mut n = 0;
    // An unreadable part only costs the older lines.
    while let Ok(first) = scan.file(&mut source, std::mem::take(&mut carry)) {
        carry = first;
        if scan.done {
            break;
        }
        // The next older copy. One gone missing (deleted by hand, an unreadable `.gz`)
        // costs its own lines only: the copies past it are read too.
        let mut older = None;
        let mut gap = false;
        while older.is_none() && n < MAX_COPIES {
            n += 1;
            older = Source::copy(path, n);
            gap |= older.is_none();
        }
        // The first fragment of the oldest file, or of one before a gap, is a line of its
        // own (what it continued is gone).
        if (older.is_none() || gap) && !carry.bytes.is_empty() {
            let fragment = std::mem::take(&mut carry);
            scan.emit(fragment.time, &fragment.bytes);
        }
        match older {
            Some(older) if !scan.done => source = older,
            _ => break,
        }
    }
    scan.out.reverse();
    Ok(scan.out)
}

/// The start of a newer file, up to its first newline: the end of a line that began in the
/// older file (or a line of its own if the older file ends with a newline).
#[derive(Default)]
struct Carry {
    bytes: Vec<u8>,
    time: i64,
}

struct Scan<'q, 'k> {
    query: &'q Query<'k>,
    /// Newest first.
    out: Vec<Line>,
    /// The time of the last line emitted (times never increase going back).
    newest: i64,
    done: bool,
}

impl Scan<'_, '_> {
    /// Read `source` backwards, emitting its lines (the last joined with `carry`); returns
    /// its first fragment, for the next older file.
    fn file(&mut self, source: &mut Source, carry: Carry) -> io::Result<Carry> {
        const CHUNK: u64 = 64 * 1024;
        // The bytes from `line_start` to the end of the line being assembled (in this
        // file; `carry` follows them).
        let mut line: Vec<u8> = Vec::new();
        let mut end = source.len;
        let mut first = true;
        let mut carry = Some(carry);
        let mut pos = source.len;
        while pos > 0 && !self.done {
            let step = CHUNK.min(pos);
            pos -= step;
            let mut chunk = vec![0; usize::try_from(step).unwrap_or(0)];
            source.read_at(pos, &mut chunk)?;
            let mut right = chunk.len();
            while let Some(nl) = chunk[..right].iter().rposition(|b| *b == b'\n') {
                let start = pos + nl as u64 + 1;
                let mut text = chunk[nl + 1..right].to_vec();
                text.extend_from_slice(&line);
                line.clear();
                let time = if start < end || carry.as_ref().is_none_or(|c| c.bytes.is_empty()) {
                    source.index.time_of(start)
                } else {
                    carry.as_ref().map_or(0, |c| c.time)
                };
                if let Some(c) = carry.take() {
                    text.extend_from_slice(&c.bytes);
                }
                // The empty "line" after a final newline is no line.
                if !(first && text.is_empty()) {
                    self.emit(time, &text);
                }
                first = false;
                end = start - 1;
                right = nl;
                if self.done {
                    break;
                }
            }
            let mut rest = chunk[..right].to_vec();
            rest.extend_from_slice(&line);
            line = rest;
        }
        if self.done {
            return Ok(Carry::default());
        }
        // The first fragment of this file (`line`, from offset 0), plus what followed it.
        let time = if line.is_empty() {
            carry.as_ref().map_or(source.index.time_of(0), |c| c.time)
        } else {
            source.index.time_of(0)
        };
        if let Some(c) = carry.take() {
            line.extend_from_slice(&c.bytes);
        }
        Ok(Carry { bytes: line, time })
    }

    fn emit(&mut self, time: i64, text: &[u8]) {
        let time = time.min(self.newest);
        self.newest = time;
        if let Some(since) = self.query.since
            && time < since
        {
            self.done = true;
            return;
        }
        if self.query.until.is_some_and(|until| time > until) {
            return;
        }
        let text = String::from_utf8_lossy(text);
        if (self.query.keep)(&text) {
            self.out.push(Line {
                time,
                text: text.into_owned(),
            });
            if self.out.len() >= self.query.lines {
                self.done = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::index::{self, Record};
    use super::*;

    fn texts(lines: &[Line]) -> Vec<&str> {
        lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn a_run_tail_is_the_end_of_that_run_however_long_it_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        let mut text = String::from("[procs] started pid 1\nold run\n");
        let from = text.len() as u64;
        text.push_str("[procs] started pid 2\n");
        // More than a MiB of output before the error that matters.
        for i in 0..40_000 {
            text.push_str(&format!("progress line number {i:08}\n"));
        }
        text.push_str("FATAL: the reason\n[procs] started pid 3\nnext run\n");
        std::fs::write(&path, &text).expect("write");
        let tail = run_tail(&path, from, 2).expect("tail");
        assert_eq!(tail, "progress line number 00039999\nFATAL: the reason\n");
        let all = run_tail(&path, from, 100_000).expect("tail");
        assert!(
            all.starts_with("[procs] started pid 2\n"),
            "its own start line"
        );
        assert_eq!(all.lines().count(), 40_002, "the run, not the next one");
        assert_eq!(run_tail(&path, from, 0).expect("tail"), "");
        // Rotated since (the log is shorter than `from`): the current run's tail.
        std::fs::write(&path, "x\n[procs] started pid 3\nnext run\n").expect("write");
        assert_eq!(
            run_tail(&path, 1 << 30, 20).expect("tail"),
            "[procs] started pid 3\nnext run\n"
        );
    }

    #[test]
    fn the_current_run_tail_never_shows_an_earlier_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        std::fs::write(
            &path,
            "stale 1\nstale 2\n[procs] 2026-01-01T00:00:00Z started pid 9\nnew 1\nnew 2\n",
        )
        .expect("write");
        assert_eq!(
            current_run_tail(&path, 20).expect("tail"),
            "[procs] 2026-01-01T00:00:00Z started pid 9\nnew 1\nnew 2\n"
        );
        assert_eq!(current_run_tail(&path, 1).expect("tail"), "new 2\n");
        std::fs::write(&path, "no start line\n").expect("write");
        assert_eq!(current_run_tail(&path, 5).expect("tail"), "no start line\n");
    }

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
        let big: String = (0..20_000).fold(String::new(), |mut acc, i| {
            acc.push_str(&format!("a longer line number {i}\n"));
            acc
        });
        std::fs::write(&path, big).expect("write");
        let all = tail_lines(&path, 50_000).expect("tail");
        assert_eq!(all.len(), 20_000, "across many chunks");
        assert_eq!(all[12_345], "a longer line number 12345");
    }

    #[test]
    fn tail_continues_into_the_rotated_copies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        std::fs::write(rotated_path(&path, 2), "older\n").expect("write");
        std::fs::write(rotated_path(&path, 1), "old 1\nold 2\nold 3\n").expect("write");
        std::fs::write(&path, "new 1\npartial").expect("write");
        assert_eq!(
            tail_lines(&path, 4).expect("tail"),
            vec!["old 2", "old 3", "new 1", "partial"]
        );
        assert_eq!(tail_lines(&path, 1).expect("tail"), vec!["partial"]);
        assert_eq!(tail_lines(&path, 0).expect("tail"), Vec::<String>::new());
        assert_eq!(tail_lines(&path, 10).expect("tail").len(), 6);
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
        assert_eq!(tail_lines(&path, 9).expect("tail").len(), 4);
        assert!(tail_lines(&dir.path().join("none.log"), 2).is_err());
    }

    #[test]
    fn lines_get_the_time_of_their_first_byte_across_copies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        let copy = rotated_path(&path, 1);
        // `.1`: "a\n" at 100, "b\nc" at 200; live: "c\n" (the rest of c) at 300, "d\n" at 400.
        std::fs::write(&copy, "a\nb\nc").expect("write");
        index::write(
            &copy,
            &[
                Record {
                    offset: 2,
                    time: 100,
                },
                Record {
                    offset: 5,
                    time: 200,
                },
            ],
        )
        .expect("index");
        std::fs::write(&path, "c\nd\n").expect("write");
        index::write(
            &path,
            &[
                Record {
                    offset: 2,
                    time: 300,
                },
                Record {
                    offset: 4,
                    time: 400,
                },
            ],
        )
        .expect("index");
        let all = tail(&path, &Query::last(10)).expect("tail");
        assert_eq!(texts(&all), ["a", "b", "cc", "d"]);
        assert_eq!(
            all.iter().map(|l| l.time).collect::<Vec<_>>(),
            [100, 200, 200, 400]
        );
        let window = Query {
            lines: 10,
            since: Some(150),
            until: Some(300),
            keep: &|_| true,
            end: None,
        };
        assert_eq!(texts(&tail(&path, &window).expect("tail")), ["b", "cc"]);
        let grep = Query {
            lines: 1,
            since: None,
            until: None,
            keep: &|t: &str| t != "d",
            end: None,
        };
        assert_eq!(texts(&tail(&path, &grep).expect("tail")), ["cc"]);
    }

    #[test]
    fn a_clock_stepped_back_across_a_rotation_never_reorders_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        let copy = rotated_path(&path, 1);
        std::fs::write(&copy, "a\nb\n").expect("write");
        index::write(
            &copy,
            &[
                Record {
                    offset: 2,
                    time: 1000,
                },
                Record {
                    offset: 4,
                    time: 2000,
                },
            ],
        )
        .expect("index");
        std::fs::write(&path, "c\n").expect("write");
        index::write(
            &path,
            &[Record {
                offset: 2,
                time: 1500,
            }],
        )
        .expect("index");
        let all = tail(&path, &Query::last(10)).expect("tail");
        assert_eq!(texts(&all), ["a", "b", "c"]);
        assert!(all.windows(2).all(|w| w[0].time <= w[1].time), "{all:?}");
    }
}
