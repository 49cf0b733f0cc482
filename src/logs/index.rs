//! The time index beside each log: `NAME.log.idx` (and `NAME.log.N.idx` beside each
//! rotated copy), mapping byte offsets of the log to the time they were written.
//!
//! Owns: the index format, reading it (validated against its log), appending to it, and
//! splitting it when the log's front moves to a copy. The supervisor's log watcher
//! (`supervisor/rotate.rs`) is the only writer; every reader of logs uses [`Index::time_of`].
//!
//! **Format** (docs/architecture.md, *Time index*): the 8 bytes `PRCSIDX1`, then records
//! of 16 bytes, each two little-endian integers: `offset: u64`, `time: i64` (Unix
//! milliseconds). A record says "when the log was `offset` bytes long, its last write was
//! at `time`": the bytes between the previous record's offset and this one were written
//! after the previous record's time and at or before this one's. The writer takes `time` from
//! the log's mtime when it notices a write (inotify), at most one record per
//! [`GRANULARITY`] per log, so every byte's time is within about that of its write.
//!
//! Invariants (what a reader may rely on after [`Index::load`]): offsets never decrease and
//! never exceed the log's length; times never decrease (a clock stepped backwards is
//! clamped to the previous record, so lines are never reordered). An index that breaks
//! these (a corrupt file, a log truncated by someone else, a crash between a rotation's
//! collapse and the rename of the new index) is ignored as a whole, and a trailing partial
//! record (a write cut short) is dropped. Bytes the index does not cover — the whole log if
//! it has no valid index, or what was written since the last record, e.g. while no
//! supervisor ran — get the log's mtime: never earlier than their write, so `--since`
//! never drops them (they may look later than they were).

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// First bytes of every index file.
pub const MAGIC: &[u8; 8] = b"PRCSIDX1";
/// Bytes per record.
pub const RECORD: usize = 16;
/// The writer adds at most one record per this much time per log.
pub const GRANULARITY: Duration = Duration::from_millis(100);

/// One record: the log was `offset` bytes long at `time` (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub offset: u64,
    pub time: i64,
}

/// `NAME.log.idx` beside the log (or copy) at `log`.
pub fn index_path(log: &Path) -> PathBuf {
    let mut name = OsString::from(log.as_os_str());
    name.push(".idx");
    PathBuf::from(name)
}

/// Unix milliseconds of `t` (negative before 1970).
pub fn millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// The time of Unix milliseconds `ms`.
pub fn system_time(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// Unix ms of the file's last write (now if unknown).
pub fn mtime_ms(meta: &fs::Metadata) -> i64 {
    millis(meta.modified().unwrap_or_else(|_| SystemTime::now()))
}

/// The validated index of one log (or copy) of `len` bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    pub records: Vec<Record>,
    /// The time of bytes past the last record: the log's mtime (never below the last
    /// record's time).
    pub tail_time: i64,
}

impl Index {
    /// Parse index bytes for a log of `len` bytes last written at `mtime` (Unix ms).
    /// Anything invalid yields an empty index (every byte then has the time `mtime`).
    pub fn parse(bytes: &[u8], len: u64, mtime: i64) -> Self {
        let records = parse_records(bytes, len).unwrap_or_default();
        let tail_time = records.last().map_or(mtime, |r| r.time.max(mtime));
        Self { records, tail_time }
    }

    /// Read the index of the log at `log`, whose content is `len` bytes long (a
    /// decompressed copy's length may differ from its file's) with mtime `mtime`.
    pub fn load(log: &Path, len: u64, mtime: i64) -> Self {
        let bytes = fs::read(index_path(log)).unwrap_or_default();
        Self::parse(&bytes, len, mtime)
    }

    /// The index of the file at `log`, using its own length and mtime.
    pub fn load_for(log: &Path) -> Self {
        match fs::metadata(log) {
            Ok(meta) => Self::load(log, meta.len(), mtime_ms(&meta)),
            Err(_) => Self::default(),
        }
    }

    /// The time of the byte at `offset`: that of the first record past it.
    pub fn time_of(&self, offset: u64) -> i64 {
        let i = self.records.partition_point(|r| r.offset <= offset);
        self.records.get(i).map_or(self.tail_time, |r| r.time)
    }

    /// The first offset whose bytes may have been written at or after `time`: every
    /// byte before it is older.
    pub fn offset_since(&self, time: i64) -> u64 {
        let i = self.records.partition_point(|r| r.time < time);
        if i == 0 {
            0
        } else {
            self.records[i - 1].offset
        }
    }
}

/// The records of an index file, or `None` if it is not a valid index of a log of `len`
/// bytes. Times are clamped so that they never decrease.
fn parse_records(bytes: &[u8], len: u64) -> Option<Vec<Record>> {
    let body = bytes.strip_prefix(MAGIC.as_slice())?;
    let mut records: Vec<Record> = Vec::with_capacity(body.len() / RECORD);
    for chunk in body.chunks_exact(RECORD) {
        let (off, time) = chunk.split_at(8);
        let offset = u64::from_le_bytes(off.try_into().ok()?);
        let mut time = i64::from_le_bytes(time.try_into().ok()?);
        if offset > len {
            return None;
        }
        if let Some(last) = records.last() {
            if offset < last.offset {
                return None;
            }
            time = time.max(last.time);
        }
        records.push(Record { offset, time });
    }
    Some(records)
}

fn encode(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + records.len() * RECORD);
    out.extend_from_slice(MAGIC);
    for r in records {
        out.extend_from_slice(&r.offset.to_le_bytes());
        out.extend_from_slice(&r.time.to_le_bytes());
    }
    out
}

/// Replace the index of `log` with `records`: temp file, fsync, rename.
pub fn write(log: &Path, records: &[Record]) -> io::Result<()> {
    let target = index_path(log);
    let mut temp_name = OsString::from(target.as_os_str());
    temp_name.push(".tmp");
    let temp = PathBuf::from(temp_name);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)?;
    file.write_all(&encode(records))?;
    file.sync_all()?;
    fs::rename(&temp, &target)
}

/// Make sure the index of `log` (now `len` bytes long) exists before the log's first write
/// by a new run. An empty log gets an index without records, written in place and not
/// fsynced: it holds nothing a crash could lose (a missing or torn one reads as no index,
/// and [`open_for_append`] rebuilds it), and an fsync per spawn cost `up` of 100 processes
/// some 3 ms each on an ext4 disk. A log with bytes and no index gets [`open_for_append`]'s
/// conservative rebuild; an existing index is left alone.
pub fn ensure(log: &Path, len: u64) -> io::Result<()> {
    let path = index_path(log);
    if len > 0 {
        if path.exists() {
            return Ok(());
        }
        return open_for_append(log).map(|_| ());
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut file) => file.write_all(MAGIC),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err),
    }
}

/// What the writer knows of one log's index between appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tip {
    /// The last record (offset 0, time `i64::MIN` for an index with none).
    pub last: Record,
    /// The index file's length after it: a different length means someone else changed
    /// the file (deleted, cut, replaced), and the writer opens it again.
    pub len: u64,
    /// The time of the first record (`i64::MAX` while there is none): how old the log's
    /// oldest bytes are, for scheduled rotation.
    pub first: i64,
}

const NO_RECORD: Record = Record {
    offset: 0,
    time: i64::MIN,
};

fn file_len(records: usize) -> u64 {
    (MAGIC.len() + records * RECORD) as u64
}

/// Open the index of `log` for appending: validate it against the log, rebuild it when it
/// is missing, corrupt or does not fit the log (one record: the log's length at its
/// mtime — conservative, see the module docs), and drop a trailing partial record.
pub fn open_for_append(log: &Path) -> io::Result<Tip> {
    let meta = fs::metadata(log)?;
    let (len, mtime) = (meta.len(), mtime_ms(&meta));
    let path = index_path(log);
    let mut bytes = Vec::new();
    if let Ok(mut f) = File::open(&path) {
        f.read_to_end(&mut bytes)?;
    }
    match parse_records(&bytes, len) {
        Some(records) if !bytes.is_empty() => {
            let whole = file_len(records.len());
            if whole != bytes.len() as u64 {
                OpenOptions::new().write(true).open(&path)?.set_len(whole)?;
            }
            Ok(Tip {
                last: records.last().copied().unwrap_or(NO_RECORD),
                len: whole,
                first: records.first().map_or(i64::MAX, |r| r.time),
            })
        }
        _ => {
            let records: Vec<Record> = if len > 0 {
                vec![Record {
                    offset: len,
                    time: mtime,
                }]
            } else {
                Vec::new()
            };
            write(log, &records)?;
            Ok(Tip {
                last: records.last().copied().unwrap_or(NO_RECORD),
                len: file_len(records.len()),
                first: records.first().map_or(i64::MAX, |r| r.time),
            })
        }
    }
}

/// Record that `log` is now `len` bytes long, last written at `mtime`, if it grew since
/// `tip`. A time below the last record's (the clock stepped back) is raised to it.
/// Returns the new tip.
pub fn append(log: &Path, tip: Tip, len: u64, mtime: i64) -> io::Result<Tip> {
    if len <= tip.last.offset {
        return Ok(tip);
    }
    let record = Record {
        offset: len,
        time: mtime.max(tip.last.time),
    };
    let mut file = OpenOptions::new().append(true).open(index_path(log))?;
    if file.metadata()?.len() != tip.len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the index was changed by someone else",
        ));
    }
    let mut bytes = [0u8; RECORD];
    bytes[..8].copy_from_slice(&record.offset.to_le_bytes());
    bytes[8..].copy_from_slice(&record.time.to_le_bytes());
    file.write_all(&bytes)?;
    Ok(Tip {
        last: record,
        len: tip.len + RECORD as u64,
        first: tip.first.min(record.time),
    })
}

/// The index of a log whose first `moved` bytes just became a copy, split in two: the
/// copy's records (ending with one at `moved`) and the live log's (offsets less `moved`).
/// `index` is the live log's index before the move.
pub fn split(index: &Index, moved: u64) -> (Vec<Record>, Vec<Record>) {
    let mut front: Vec<Record> = index
        .records
        .iter()
        .copied()
        .filter(|r| r.offset < moved)
        .collect();
    if moved > 0 {
        front.push(Record {
            offset: moved,
            time: index.time_of(moved - 1),
        });
    }
    let back = index
        .records
        .iter()
        .filter(|r| r.offset > moved)
        .map(|r| Record {
            offset: r.offset - moved,
            time: r.time,
        })
        .collect();
    (front, back)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(offset: u64, time: i64) -> Record {
        Record { offset, time }
    }

    #[test]
    fn times_are_those_of_the_first_record_past_the_byte() {
        let idx = Index::parse(&encode(&[rec(10, 100), rec(25, 200)]), 30, 300);
        assert_eq!(idx.time_of(0), 100);
        assert_eq!(idx.time_of(9), 100);
        assert_eq!(idx.time_of(10), 200);
        assert_eq!(idx.time_of(24), 200);
        assert_eq!(idx.time_of(25), 300, "past the index: the mtime");
        assert_eq!(idx.offset_since(50), 0);
        assert_eq!(idx.offset_since(150), 10);
        assert_eq!(idx.offset_since(250), 25);
    }

    #[test]
    fn a_clock_stepped_back_never_makes_times_decrease() {
        let idx = Index::parse(&encode(&[rec(10, 100), rec(20, 50), rec(30, 70)]), 30, 10);
        assert_eq!(
            idx.records.iter().map(|r| r.time).collect::<Vec<_>>(),
            [100, 100, 100]
        );
        assert_eq!(idx.tail_time, 100, "nor does the mtime pull the tail back");
    }

    #[test]
    fn a_corrupt_or_foreign_index_is_ignored_as_a_whole() {
        let good = encode(&[rec(10, 100), rec(20, 200)]);
        // Offsets past the end of the log (it was truncated, or rotated under it).
        assert!(Index::parse(&good, 15, 999).records.is_empty());
        assert_eq!(Index::parse(&good, 15, 999).time_of(0), 999);
        // Decreasing offsets.
        assert!(
            Index::parse(&encode(&[rec(20, 1), rec(10, 2)]), 30, 0)
                .records
                .is_empty()
        );
        // Not an index.
        assert!(Index::parse(b"garbage garbage", 30, 0).records.is_empty());
        // A trailing partial record is dropped, the rest kept.
        let mut cut = good.clone();
        cut.truncate(good.len() - 3);
        assert_eq!(Index::parse(&cut, 30, 0).records, [rec(10, 100)]);
    }

    #[test]
    fn appending_rebuilds_a_bad_index_and_repairs_a_cut_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("a.log");
        fs::write(&log, "0123456789").expect("write");
        // Missing: one conservative record at the log's length.
        let tip = open_for_append(&log).expect("open");
        assert_eq!(tip.last.offset, 10);
        fs::write(&log, "0123456789abcdef").expect("write");
        let tip = append(&log, tip, 16, tip.last.time - 5).expect("append");
        assert_eq!(tip.last.time, Index::load_for(&log).records[0].time);
        assert_eq!(append(&log, tip, 16, 0).expect("append"), tip, "no growth");
        // Cut mid-record: the partial record goes, appends go on after the whole ones.
        let path = index_path(&log);
        let len = fs::metadata(&path).expect("meta").len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open")
            .set_len(len - 5)
            .expect("cut");
        let tip = open_for_append(&log).expect("open");
        assert_eq!(tip.last.offset, 10);
        assert_eq!(
            fs::metadata(&path).expect("meta").len(),
            (MAGIC.len() + RECORD) as u64
        );
        // Changed under the writer: it notices, and opening again rebuilds it.
        fs::write(&path, b"nonsense").expect("write");
        assert!(append(&log, tip, 20, 0).is_err());
        assert_eq!(open_for_append(&log).expect("open").last.offset, 16);
        fs::remove_file(&path).expect("remove");
        assert!(append(&log, tip, 20, 0).is_err());
    }

    #[test]
    fn ensure_creates_an_empty_index_in_place_and_keeps_an_existing_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("a.log");
        fs::write(&log, b"").expect("log");
        ensure(&log, 0).expect("ensure");
        assert_eq!(fs::read(index_path(&log)).expect("index"), MAGIC.to_vec());
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temp file is left: {names:?}");
        // An existing index is kept, even for an empty log.
        write(&log, &[rec(0, 5)]).expect("write");
        ensure(&log, 0).expect("ensure");
        assert_eq!(fs::read(index_path(&log)).expect("index").len(), 8 + RECORD);
        // A log with bytes and no index gets one record: its length at its mtime.
        let other = dir.path().join("b.log");
        fs::write(&other, b"hello\n").expect("log");
        ensure(&other, 6).expect("ensure");
        let tip = open_for_append(&other).expect("open");
        assert_eq!(tip.last.offset, 6);
        // A torn index (cut inside the magic) reads as none and is rebuilt by the writer.
        fs::write(index_path(&log), &MAGIC[..3]).expect("cut");
        let tip = open_for_append(&log).expect("rebuild");
        assert_eq!(tip.len, 8);
    }

    #[test]
    fn a_split_gives_each_side_its_own_offsets() {
        let idx = Index::parse(
            &encode(&[rec(10, 100), rec(25, 200), rec(40, 300)]),
            50,
            400,
        );
        let (front, back) = split(&idx, 30);
        assert_eq!(front, [rec(10, 100), rec(25, 200), rec(30, 300)]);
        assert_eq!(back, [rec(10, 300)]);
        let (front, back) = split(&idx, 50);
        assert_eq!(front.last(), Some(&rec(50, 400)));
        assert!(back.is_empty());
    }
}
