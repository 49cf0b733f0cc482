//! Size-based rotation of the logs in `.procs/logs/`, done from outside the writers.
//!
//! Owns: deciding when a log is over its `logs.max_size` and rotating it
//! (`NAME.log` → `NAME.log.1` → … → `NAME.log.keep`, the oldest dropped). Must not: hold
//! a log open between rotations, write into a log, or block the supervisor's runtime
//! (copies run on the blocking pool).
//!
//! **Why in place.** Children write straight into `NAME.log` through their own
//! `O_APPEND` descriptors (see `spawn.rs`): output never passes through the supervisor, so
//! a process keeps running and logging when the supervisor dies. A rename-based rotation
//! cannot work with that: the children would go on writing into the renamed file. So
//! the front of the log is copied, then removed in place — collapsed
//! (`FALLOC_FL_COLLAPSE_RANGE`, ext4/XFS) or, where that is unsupported, the whole file
//! truncated (copytruncate) — and the children's next `O_APPEND` write lands at the new
//! end. The supervisor's own `procs.log` (its stderr, also `O_APPEND`) is rotated the same
//! way with a fixed policy ([`SUPERVISOR_POLICY`]).
//!
//! **Steps of one rotation** ([`rotate_once`]), `A` being the largest multiple of the
//! file's block size (`st_blksize`) strictly below its size (a collapse must be
//! block-aligned and may not reach the end of file):
//! 1. copy the first `A` bytes of `NAME.log` into `NAME.log.rotating` (in-kernel
//!    `copy_file_range` through `std::io::copy`), unlocked: writers only append, so these
//!    bytes cannot change;
//! 2. take `LOCK_EX` (`flock`) on `NAME.log` — readers (`logs.rs`) hold `LOCK_SH` while
//!    they look, so steps 3-5 are one step for them. If readers keep it for 2 s (one was
//!    stopped while holding it), the rotation gives up, removes `.rotating`, and the log is
//!    checked (and retried) again;
//! 3. shift the old copies: delete `.keep`, rename `.N` → `.N+1`;
//! 4. rename `NAME.log.rotating` to `NAME.log.1` (the copy stays open);
//! 5. collapse `[0, A)` out of `NAME.log`. If the filesystem cannot (`EOPNOTSUPP`,
//!    `EINVAL`: tmpfs, btrfs, NFS…) or `A` is 0 (the file is at most one block), fall back
//!    to copytruncate: append the rest, from `A` to the end of file, to the copy, then
//!    truncate `NAME.log` to 0 right after that copy saw the end of file;
//! 6. release the lock (also released by the kernel if the supervisor dies).
//!
//! The copy is renamed *before* the log loses its front, so no crash can lose a byte: a
//! leftover `.rotating` (a supervisor killed during steps 1-3) only ever holds bytes still
//! in the log, and the next rotation overwrites it.
//!
//! With `keep: 0` a rotation just truncates, unlocked: a collapse would leave the last
//! partial block, which a follower could not tell from a truncation by someone else.
//!
//! **Invariants.** At most `keep` rotated copies exist, plus `NAME.log.rotating` while a
//! rotation runs; one rotation per file at a time; bytes are never lost to a crash and
//! never duplicated unless the supervisor dies between steps 4 and 5; after a collapse, `NAME.log.1` is exactly the bytes removed from the front of `NAME.log` and
//! nothing is lost; after a copytruncate, every byte in `NAME.log` when the last copy saw
//! its end is in `NAME.log.1`; a reader holding `LOCK_SH` sees either the state before
//! step 3 or after step 5, so a new `.1` always means the live file already lost that
//! copy's bytes from its front. A failing shift or rename (steps 3-4) aborts the rotation
//! before the log is touched; a failing collapse or truncation leaves the copy's bytes
//! twice (in `.1` and still in the log), never lost.
//!
//! **Limits.** (a) Copytruncate only: a write that lands between the last copy reaching the
//! end of file and the truncation taking the inode lock is lost, as is the rest of a write
//! the copy caught half done. For an ordinary logger the window is one `ftruncate(2)`
//! call, microseconds; a writer that saturates the file keeps taking the inode lock first
//! and can make the truncation wait for milliseconds, losing what it writes meantime
//! (measured: up to 10 MiB of a 256 MiB burst at 1 GB/s). The collapse path has no such
//! window. (b) Rotation is asynchronous: the size is checked when inotify reports a write,
//! so a writer faster than the check overshoots `max_size` by what it wrote in the
//! meantime; `NAME.log.1` holds whatever was there at rotation time, not exactly
//! `max_size` bytes (with collapse, up to a block less than the size then), and rotations
//! never split lines on purpose: a collapse cuts on a block boundary, so a copy usually
//! ends mid-line and the line goes on at the start of `NAME.log`. (c) Nothing rotates
//! while no supervisor runs; the first check after startup catches up. (d) A supervisor
//! killed between steps 4 and 5 leaves the bytes of `.1` also at the front of `NAME.log`
//! (duplicated, not lost), and a `procs logs -f` running across that crash may print them
//! twice. (e) The
//! lock is advisory: a reader that does not take it (an older `procs`) can see a rotation
//! half done, and a reader that holds it for long delays rotations (ours hold it for one
//! read of at most 16 MiB).
//!
//! **Trigger.** One task watches the logs directory with inotify (`IN_MODIFY`) through
//! the runtime's reactor: no polling. After a wakeup it drains the whole queue and stats
//! each touched log once, so a fast writer costs a bounded number of wakeups (the kernel
//! merges identical queued events) and no work per byte. A policy change (a new `procs
//! up`) and the end of a rotation re-check every known log. Time-driven work has one
//! timer, set to the earliest of: the next `rotate_every` boundary of any log (an idle log
//! is rotated then, without waiting for a write), and the moment the oldest copy of a log
//! passes its `max_age` (its retention runs then; each retention returns the next such
//! moment). The timer runs on the monotonic clock, aimed at wall-clock moments computed
//! on each wakeup: a wall clock stepped meanwhile is caught up at the next wakeup.
//! [`Tuning`] lets tests shorten the period and pause a compression; nothing else differs.
//!
//! **Time index.** The same look appends the log's length and mtime to its index
//! (`logs/index.rs`, docs/architecture.md *Time index*), at most once per
//! [`GRANULARITY`] per log: a log that grew sooner is *pending* and recorded when its time is
//! up (a timer, not a poll). A log's index is left alone while it rotates; the rotation
//! splits it (step 5b: the copy's records to `NAME.log.1.idx`, the rest shifted) and the
//! watcher reads its tip again afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write as _};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::sleep_until;

use crate::config::{Config, LogPolicy, RotateEvery};
use crate::env_vars::{ENV_TEST_COMPRESS_PAUSE_MS, ENV_TEST_ROTATE_PERIOD_MS};
use crate::logs::index::{self, GRANULARITY, Index, Tip, index_path, mtime_ms};
use crate::logs::{compressed_path, rotated_path, rotation_temp_path};
use crate::paths::Paths;
use crate::platform::{self, DirEvents};

/// The rotation policy of each process log, by process name.
pub type Policies = BTreeMap<String, LogPolicy>;

/// The policy of the supervisor's own `procs.log`.
pub const SUPERVISOR_POLICY: LogPolicy = LogPolicy {
    max_size: 10 * 1024 * 1024,
    keep: 3,
    ..LogPolicy::DEFAULT
};

/// The policies of every process of `config`.
pub fn policies(config: &Config) -> Policies {
    config
        .processes
        .iter()
        .map(|(name, p)| (name.clone(), p.logs))
        .collect()
}

/// How long a rotation waits for the readers of a log to let go of its lock before giving
/// up (the log is checked again right after, so it retries).
const LOCK_PATIENCE: Duration = Duration::from_secs(2);

/// What one rotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Bytes moved to `NAME.log.1` (or dropped, with `keep: 0`).
    pub moved: u64,
    /// Lossless (the front of the log collapsed), or copytruncate.
    pub collapsed: bool,
}

/// Rotate the log at `path` once, keeping `keep` older copies (none: just truncate).
/// See the module docs for the steps.
pub fn rotate_once(path: &Path, keep: u32) -> io::Result<Rotation> {
    let mut log = OpenOptions::new().read(true).write(true).open(path)?;
    let meta = log.metadata()?;
    if keep == 0 {
        log.set_len(0)?;
        index::write(path, &[])?;
        return Ok(Rotation {
            moved: meta.len(),
            collapsed: false,
        });
    }
    // The largest multiple of the block size strictly below the size: a collapse must be
    // block-aligned and may not reach the end of the file.
    let block = meta.blksize().max(1);
    let head = meta.len().saturating_sub(1) / block * block;
    let temp = rotation_temp_path(path);
    let mut copy = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)?;
    let result = rotate_into(path, keep, &mut log, &mut copy, head);
    if result.is_err() {
        // Still there only if the rotation stopped before its rename: then every byte of
        // it is still in the log too.
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Steps 1-6 of the module docs, `head` being the (block-aligned) length to collapse.
fn rotate_into(
    path: &Path,
    keep: u32,
    log: &mut File,
    copy: &mut File,
    head: u64,
) -> io::Result<Rotation> {
    // Step 1, unlocked: writers only append, so the first `head` bytes cannot change.
    let mut copied = io::copy(&mut Read::take(&*log, head), copy)?;
    if copied != head {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the log shrank during its rotation",
        ));
    }
    // Steps 2-6 are one step for the readers, which take `LOCK_SH` on the log.
    let Some(_lock) = platform::lock_exclusive(path, LOCK_PATIENCE)? else {
        return Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "a reader holds the log's lock (a stopped `procs logs`?): retrying later",
        ));
    };
    // The index as it is now: the writer (the watcher) leaves it alone while we rotate.
    let before = Index::load_for(path);
    shift(path, keep)?;
    // Named before the log loses anything: from here on a crash can duplicate, not lose.
    fs::rename(rotation_temp_path(path), rotated_path(path, 1))?;
    let collapsed = head > 0 && platform::collapse_front(log, head)?;
    if !collapsed {
        // Copytruncate: the rest of the file (from `head`, where step 1 left the shared
        // position) into the copy, still open under its new name, then the truncation
        // right after that copy saw the end of file.
        copied += io::copy(log, copy)?;
        log.set_len(0)?;
    }
    // Step 5b: the index follows the bytes (a crash before this leaves the live index
    // pointing past the shortened log: readers then ignore it, see `logs/index.rs`).
    let (front, back) = index::split(&before, copied);
    index::write(&rotated_path(path, 1), &front)?;
    index::write(path, &back)?;
    Ok(Rotation {
        moved: copied,
        collapsed,
    })
}

fn ignore_missing(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// The files of copy `n`: plain, compressed, index.
fn copy_files(path: &Path, n: u32) -> [PathBuf; 3] {
    let plain = rotated_path(path, n);
    [index_path(&plain), compressed_path(path, n), plain]
}

/// Delete copy `n` (its plain file last: its index and `.gz` never outlive it as a
/// half-copy that readers would take for whole).
fn remove_copy(path: &Path, n: u32) -> io::Result<()> {
    for file in copy_files(path, n) {
        ignore_missing(fs::remove_file(file))?;
    }
    Ok(())
}

/// Make room for a new `NAME.log.1`: drop `.keep`, rename `.N` to `.N+1` (each with its
/// `.gz` and index).
fn shift(path: &Path, keep: u32) -> io::Result<()> {
    remove_copy(path, keep)?;
    for n in (1..keep).rev() {
        for (from, to) in copy_files(path, n).into_iter().zip(copy_files(path, n + 1)) {
            ignore_missing(fs::rename(from, to))?;
        }
    }
    Ok(())
}

/// What tests may change of the rotator's timing, read once from the environment when it
/// starts (`env_vars::ENV_TEST_*`, documented as for tests only). Everything else runs as
/// in production: a test with a short period goes through the same timer, checks and
/// rotations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tuning {
    /// The length of every `rotate_every` period, in ms, instead of an hour or a day.
    pub period_ms: Option<i64>,
    /// A pause in the middle of each compression (after its first bytes reach the temp
    /// file).
    pub compress_pause: Option<Duration>,
}

impl Tuning {
    /// The tuning the environment asks for (none, outside tests).
    pub fn from_env() -> Self {
        let ms = |name: &str| {
            std::env::var(name)
                .ok()?
                .parse::<u64>()
                .ok()
                .filter(|&v| v > 0)
        };
        Self {
            period_ms: ms(ENV_TEST_ROTATE_PERIOD_MS).and_then(|v| i64::try_from(v).ok()),
            compress_pause: ms(ENV_TEST_COMPRESS_PAUSE_MS).map(Duration::from_millis),
        }
    }

    /// The length of one `every` period, in ms.
    pub fn period_ms(self, every: RotateEvery) -> i64 {
        self.period_ms.unwrap_or_else(|| every.period_ms()).max(1)
    }

    /// The start of the `every` period holding `time` (Unix ms).
    pub fn period_start(self, every: RotateEvery, time: i64) -> i64 {
        let len = self.period_ms(every);
        time.div_euclid(len) * len
    }
}

/// `NAME.log.N.gz.tmp`: a compression in progress.
fn compress_temp(path: &Path, n: u32) -> PathBuf {
    let mut name = compressed_path(path, n).into_os_string();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Gzip copy `n` of the log at `path` into `NAME.log.N.gz`, losslessly even if the
/// supervisor dies at any point: the `.gz` is written to a temp file, fsynced, given the
/// copy's mtime (its age for `max_age`) and renamed; only then, under the log's lock (a
/// reader never sees neither), the plain copy goes. A crash leaves the plain copy (and
/// maybe a temp, overwritten next time) or both files with the same content (readers take
/// the plain one; the next pass removes it). The index stays as it is. `pause` (tests
/// only, [`Tuning`]) stops the compression for that long once its first bytes are in
/// the temp file.
pub fn compress_copy(path: &Path, n: u32, pause: Option<Duration>) -> io::Result<()> {
    let plain = rotated_path(path, n);
    let gz = compressed_path(path, n);
    if !gz.exists() {
        let mut input = File::open(&plain)?;
        let mtime = input.metadata()?.modified()?;
        let temp = compress_temp(path, n);
        let out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::default());
        if let Some(pause) = pause {
            io::copy(&mut Read::take(&input, 64 * 1024), &mut encoder)?;
            encoder.flush()?;
            std::thread::sleep(pause);
        }
        io::copy(&mut input, &mut encoder)?;
        let out = encoder.finish()?;
        out.sync_all()?;
        out.set_modified(mtime)?;
        fs::rename(&temp, &gz)?;
    }
    let _lock = platform::lock_exclusive(path, LOCK_PATIENCE)?;
    ignore_missing(fs::remove_file(&plain))
}

/// When copy `n` was last written (its mtime, which compression keeps).
fn copy_mtime(path: &Path, n: u32) -> Option<SystemTime> {
    fs::metadata(rotated_path(path, n))
        .or_else(|_| fs::metadata(compressed_path(path, n)))
        .and_then(|m| m.modified())
        .ok()
}

/// Retention after a rotation, on the first look at a log, and when a copy reaches
/// `max_age`: compress the plain copies (`compress`), delete the copies older than
/// `max_age`, and finish what a killed supervisor left (a compression temp, a plain copy
/// beside its `.gz`). Returns when the oldest copy kept will be over `max_age` (the
/// watcher's next retention timer), if there is a `max_age` and a copy.
pub fn retain(path: &Path, policy: &LogPolicy, tuning: Tuning) -> io::Result<Option<SystemTime>> {
    let now = SystemTime::now();
    let mut expiry: Option<SystemTime> = None;
    for n in 1..=policy.keep {
        ignore_missing(fs::remove_file(compress_temp(path, n)))?;
        let Some(mtime) = copy_mtime(path, n) else {
            continue;
        };
        if policy
            .max_age
            .is_some_and(|age| now.duration_since(mtime).is_ok_and(|d| d > age))
        {
            remove_copy(path, n)?;
            continue;
        }
        if let Some(at) = policy.max_age.and_then(|age| mtime.checked_add(age)) {
            expiry = Some(expiry.map_or(at, |e| e.min(at)));
        }
        let plain = rotated_path(path, n).exists();
        if plain && (policy.compress || compressed_path(path, n).exists()) {
            compress_copy(path, n, tuning.compress_pause)?;
        }
    }
    remove_copies_beyond(path, policy.keep)?;
    Ok(expiry)
}

/// Delete the copies numbered above `keep` (left when `keep` was lowered, which `procs
/// logs` would otherwise go on showing and nothing would ever delete). Copies are
/// contiguous (a rotation shifts them all), so the sweep stops at the first number with
/// no file: three `stat`s per log when there is nothing to do.
fn remove_copies_beyond(path: &Path, keep: u32) -> io::Result<()> {
    for n in keep.saturating_add(1)..=crate::logs::MAX_COPIES {
        let temp = compress_temp(path, n);
        let files = copy_files(path, n);
        if !files
            .iter()
            .chain([&temp])
            .any(|f| f.symlink_metadata().is_ok())
        {
            break;
        }
        ignore_missing(fs::remove_file(temp))?;
        remove_copy(path, n)?;
    }
    Ok(())
}

/// Shortest pause between two looks at the logs while writes keep coming.
const CHECK_PAUSE: Duration = Duration::from_millis(20);

/// How long after a period boundary or a copy's expiry its timer fires: the timer runs on
/// the monotonic clock, the boundary is wall-clock time, and the two may drift a little.
const TIMER_SLACK: Duration = Duration::from_millis(10);

/// Start the rotation task for the logs of `paths`, with the process policies that
/// `policies` publishes (the orchestrator sends a new map on each `procs up`).
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
        tips: BTreeMap::new(),
        pending: BTreeSet::new(),
        retained: BTreeSet::new(),
        periods: BTreeMap::new(),
        expiries: BTreeMap::new(),
        tuning: Tuning::from_env(),
    };
    tokio::spawn(rotator.run(events));
    Ok(())
}

/// What a job of the blocking pool did: its rotation (none: `moved` 0), and when its
/// retention must run again (see [`retain`]).
type Job = (Rotation, Option<SystemTime>);

struct Rotator {
    dir: PathBuf,
    /// `procs.log`.
    supervisor_log: OsString,
    policies: watch::Receiver<Policies>,
    /// Logs with a rotation in flight (checked again when it ends).
    busy: BTreeSet<OsString>,
    jobs: JoinSet<(OsString, io::Result<Job>)>,
    /// Each process log's index as last written, and when (forgotten after a rotation,
    /// which rewrites the index).
    tips: BTreeMap<OsString, (Tip, Instant)>,
    /// Logs that grew within [`GRANULARITY`] of their last record: recorded when it ends.
    pending: BTreeSet<OsString>,
    /// Logs whose retention ran since startup (it runs on the first look, after each
    /// rotation, and when a copy reaches `max_age`).
    retained: BTreeSet<OsString>,
    /// The last period each log was rotated for by `rotate_every`.
    periods: BTreeMap<OsString, i64>,
    /// When the oldest copy of each log will be over its `max_age` (from its last
    /// retention): its retention runs again then.
    expiries: BTreeMap<OsString, SystemTime>,
    tuning: Tuning,
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
            let due = self.next_due();
            let timer = self.next_timer();
            tokio::select! {
                () = sleep_until(due), if !self.pending.is_empty() => {
                    touched = std::mem::take(&mut self.pending);
                }
                // A period boundary (`rotate_every`) or a copy reaching `max_age`: look at
                // every log; those with nothing due cost a stat.
                () = sleep_until(timer.unwrap_or(due)), if timer.is_some() => {
                    touched = self.known_logs();
                    // Only logs still configured have timers (each look below either
                    // runs a due retention or drops its timer).
                    self.expiries.retain(|file, _| touched.contains(file));
                }
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
                    // A changed `keep`, `max_age` or `compress` applies now: every
                    // log gets its retention pass again (a lowered `keep` deletes the
                    // copies above it).
                    self.retained.clear();
                    touched = self.known_logs();
                }
                Some(joined) = self.jobs.join_next() => {
                    // Every job that finished meanwhile too: a first look at 100 logs is
                    // 100 jobs, handled in one wakeup, not one per CHECK_PAUSE.
                    let mut next = Some(joined);
                    while let Some(joined) = next {
                        if let Ok((name, result)) = joined {
                            self.finished(&name, result);
                            touched.insert(name);
                        }
                        next = self.jobs.try_join_next();
                    }
                }
            }
        }
    }

    /// A rotation/retention job of `name` is done: its tip, its next expiry, its log line.
    fn finished(&mut self, name: &OsString, result: io::Result<Job>) {
        self.busy.remove(name);
        // The rotation rewrote the index: read its tip again.
        self.tips.remove(name);
        // A failed retention sets no timer: it runs again after the next
        // rotation (or start), never in a loop.
        match result.as_ref().ok().and_then(|(_, expiry)| *expiry) {
            Some(expiry) => self.expiries.insert(name.clone(), expiry),
            None => self.expiries.remove(name),
        };
        match result.map(|(rotation, _)| rotation) {
            Ok(Rotation { moved: 0, .. }) => {}
            Ok(Rotation { moved, collapsed }) => tracing::info!(
                "rotated {} ({}): {moved} bytes moved to the first copy",
                name.to_string_lossy(),
                if collapsed {
                    "collapse"
                } else {
                    "copytruncate"
                }
            ),
            Err(err) => tracing::warn!("cannot rotate {}: {err}", name.to_string_lossy()),
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

    /// When the first pending log is due for its next record.
    fn next_due(&self) -> tokio::time::Instant {
        let first = self
            .pending
            .iter()
            .filter_map(|f| self.tips.get(f).map(|(_, at)| *at))
            .min()
            .unwrap_or_else(Instant::now);
        (first + GRANULARITY).into()
    }

    /// The earliest of the next `rotate_every` boundary of any log and the next expiry of a
    /// copy (`max_age`), as a deadline of the runtime's clock (a moment after it, see
    /// [`TIMER_SLACK`]). A wall clock stepped meanwhile is noticed at the next wakeup.
    fn next_timer(&self) -> Option<tokio::time::Instant> {
        let now = SystemTime::now();
        let now_ms = index::millis(now);
        let boundary = self
            .policies
            .borrow()
            .values()
            .filter_map(|p| p.rotate_every)
            .map(|every| self.tuning.period_start(every, now_ms) + self.tuning.period_ms(every))
            .min()
            .map(index::system_time);
        let expiry = self.expiries.values().min().copied();
        let at = match (boundary, expiry) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        let wait = at.duration_since(now).unwrap_or(Duration::ZERO) + TIMER_SLACK;
        Some((Instant::now() + wait).into())
    }

    /// Record the length of the process log `file` in its index (see the module docs).
    fn index(&mut self, file: &OsString, path: &Path, meta: &fs::Metadata) {
        let now = Instant::now();
        let tip = match self.tips.get(file) {
            Some(&(tip, at)) if meta.len() >= tip.last.offset => Some((tip, at)),
            // Shrunk under us (truncated by someone else), or not opened yet.
            _ => None,
        };
        let (tip, at) = match tip {
            Some(found) => found,
            None => match index::open_for_append(path) {
                // Opening recorded what it found (conservatively, if it rebuilt).
                Ok(tip) => (tip, now.checked_sub(GRANULARITY).unwrap_or(now)),
                Err(err) => {
                    tracing::debug!("cannot index {}: {err}", path.display());
                    return;
                }
            },
        };
        if meta.len() == tip.last.offset {
            self.tips.insert(file.clone(), (tip, at));
            return;
        }
        // A little early is due: the timer that brings us here is not exact.
        if now + std::time::Duration::from_millis(2) < at + GRANULARITY {
            self.tips.insert(file.clone(), (tip, at));
            self.pending.insert(file.clone());
            return;
        }
        match index::append(path, tip, meta.len(), mtime_ms(meta)) {
            Ok(tip) => {
                self.tips.insert(file.clone(), (tip, now));
            }
            Err(err) => {
                // Deleted or changed by someone else: opened (and rebuilt) next time.
                tracing::debug!("cannot index {}: {err}", path.display());
                self.tips.remove(file);
                self.pending.insert(file.clone());
            }
        }
    }

    /// Index `file` and rotate it on the blocking pool if it is over its limit.
    fn check(&mut self, file: OsString) {
        let Some(policy) = self.policy(&file) else {
            return;
        };
        if self.busy.contains(&file) {
            return;
        }
        let path = self.dir.join(&file);
        let Ok(meta) = fs::metadata(&path) else {
            // No log: its copies wait for the next start (or the log's return).
            self.expiries.remove(&file);
            return;
        };
        if file != self.supervisor_log {
            self.index(&file, &path, &meta);
        }
        let scheduled = self.scheduled(&file, &policy, &meta);
        let first_look = self.retained.insert(file.clone());
        let expired = self
            .expiries
            .get(&file)
            .is_some_and(|at| *at <= SystemTime::now());
        let rotate = meta.len() > policy.max_size || scheduled.is_some();
        if !rotate && !first_look && !expired {
            return;
        }
        if let Some(period) = scheduled {
            self.periods.insert(file.clone(), period);
        }
        self.busy.insert(file.clone());
        // The job's retention sets the next one (no timer fires while it runs).
        self.expiries.remove(&file);
        let tuning = self.tuning;
        self.jobs.spawn_blocking(move || {
            let rotation = if rotate {
                rotate_once(&path, policy.keep)
            } else {
                Ok(Rotation {
                    moved: 0,
                    collapsed: false,
                })
            };
            let result = rotation.and_then(|r| retain(&path, &policy, tuning).map(|e| (r, e)));
            (file, result)
        });
    }

    /// The period whose start `file` must be rotated for (`rotate_every`): its oldest
    /// bytes are from before the current period, and it was not rotated for it yet.
    fn scheduled(&self, file: &OsString, policy: &LogPolicy, meta: &fs::Metadata) -> Option<i64> {
        let every = policy.rotate_every?;
        let (tip, _) = self.tips.get(file)?;
        let period = self
            .tuning
            .period_start(every, index::millis(SystemTime::now()));
        (meta.len() > 0 && tip.first < period && self.periods.get(file) != Some(&period))
            .then_some(period)
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
            let moved = rotate_once(&log, 2).expect("rotate").moved;
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
        assert_eq!(
            names,
            [
                "web.log",
                "web.log.1",
                "web.log.1.idx",
                "web.log.2",
                "web.log.2.idx",
                "web.log.idx"
            ]
        );
    }

    #[test]
    fn the_index_moves_with_the_bytes_it_times() {
        use crate::logs::{Query, tail};
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("web.log");
        // 10 000 lines of 10 bytes, each thousand at its own time.
        let mut text = String::new();
        let mut records = Vec::new();
        for n in 0..10_000u32 {
            text.push_str(&format!("line {n:04}\n"));
            if n % 1000 == 999 {
                records.push(index::Record {
                    offset: text.len() as u64,
                    time: i64::from(n / 1000) * 1000,
                });
            }
        }
        write(&log, &text);
        index::write(&log, &records).expect("index");
        let before = tail(&log, &Query::last(20_000)).expect("tail");
        let moved = rotate_once(&log, 2).expect("rotate").moved;
        assert!(moved > 0);
        assert!(index_path(&rotated_path(&log, 1)).exists());
        let after = tail(&log, &Query::last(20_000)).expect("tail");
        assert_eq!(
            after, before,
            "the same lines at the same times across the rotation"
        );
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
        let moved = rotate_once(&log, 3).expect("rotate").moved;
        writer.write_all(b"after\n").expect("write");
        assert_eq!(fs::metadata(&log).expect("meta").ino(), inode);
        let left = read(&log);
        assert!(left.ends_with("after\n"), "the writer continues at the end");
        assert_eq!(
            moved + left.len() as u64,
            100_006,
            "nothing lost, nothing twice"
        );
        assert_eq!(
            fs::metadata(rotated_path(&log, 1)).expect("meta").len(),
            moved
        );
        if platform::collapse_supported(dir.path()).expect("probe") {
            let block = fs::metadata(&log).expect("meta").blksize();
            assert_eq!(moved, 99_999 / block * block, "whole blocks collapsed");
        } else {
            assert_eq!(left, "after\n", "copytruncate: the writer starts over at 0");
        }
    }

    #[test]
    fn a_reader_that_keeps_the_lock_delays_the_rotation_without_harm() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("web.log");
        let text = "l\n".repeat(10_000);
        write(&log, &text);
        let reader = platform::lock_shared(&log, std::time::Duration::from_secs(5))
            .expect("lock")
            .expect("nobody else holds it");
        let err = rotate_once(&log, 2).expect_err("the reader keeps the lock");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(read(&log), text, "the log is untouched");
        assert!(!rotation_temp_path(&log).exists(), "no copy left behind");
        assert!(!rotated_path(&log, 1).exists());
        drop(reader);
        assert!(
            rotate_once(&log, 2).expect("rotate").moved > 0,
            "then it goes through"
        );
    }

    #[test]
    fn keep_zero_only_truncates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("web.log");
        write(&log, "old\n");
        assert_eq!(rotate_once(&log, 0).expect("rotate").moved, 4);
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
    fn a_follower_waits_for_a_rotation_that_holds_the_lock() {
        use crate::logs::Followed;
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("web.log");
        write(&log, "a\nb\n");
        let mut f = Followed::at_end("web", log.clone());
        append(&log, "c\n");
        // A rotation holds the lock from before the follower looks until after the
        // rename; the follower, started meanwhile, must only see the end state.
        let lock = platform::lock_exclusive(&log, std::time::Duration::from_secs(5))
            .expect("lock")
            .expect("nobody else holds it");
        let follower = std::thread::spawn(move || f.read_new());
        fs::copy(&log, rotation_temp_path(&log)).expect("copy");
        write(&log, "");
        append(&log, "d\ne\nf\ng\n");
        fs::rename(rotation_temp_path(&log), rotated_path(&log, 1)).expect("rename");
        drop(lock);
        let lines = follower.join().expect("follower");
        // It either waited for the lock (all five lines), or ran out of patience on a
        // slow machine and read nothing, to look again next time — never a mix.
        assert!(
            lines == ["c", "d", "e", "f", "g"] || lines.is_empty(),
            "{lines:?}"
        );
    }

    /// Append `line N` lines, one `write(2)` each, as fast as possible until `stop`;
    /// returns how many were written.
    fn numbered_writer(
        log: PathBuf,
        first: u64,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> std::thread::JoinHandle<u64> {
        use std::io::Write as _;
        std::thread::spawn(move || {
            let mut out = OpenOptions::new().append(true).open(&log).expect("open");
            let mut n = first;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                out.write_all(format!("line {n:08}\n").as_bytes())
                    .expect("append");
                n += 1;
            }
            n
        })
    }

    fn number(line: &str) -> Option<u64> {
        let digits = line.strip_prefix("line ")?;
        (digits.len() == 8).then(|| digits.parse().ok())?
    }

    /// The numbers of `text`, which must be whole numbered lines only.
    fn numbers(text: &str) -> Vec<u64> {
        text.lines()
            .map(|l| number(l).unwrap_or_else(|| panic!("not a numbered line: {l:?}")))
            .collect()
    }

    /// The numbers of the whole numbered lines of `text` (copytruncate may cut a line
    /// whose end it lost).
    fn whole_numbers(text: &str) -> Vec<u64> {
        text.lines().filter_map(number).collect()
    }

    /// Rotate `ROTATIONS` times under a full-speed writer, with a follower reading now and
    /// then (sometimes several rotations apart). Returns (lines written, the copies and the
    /// log concatenated oldest first, the lines the follower printed).
    fn rotate_under_a_writer(dir: &Path) -> (u64, String, String, u32) {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        const ROTATIONS: u32 = 24;
        const INITIAL: u64 = 1000;
        let log = dir.join("web.log");
        let initial = (0..INITIAL).fold(String::new(), |mut acc, n| {
            acc.push_str(&format!("line {n:08}\n"));
            acc
        });
        write(&log, &initial);
        let mut follower = crate::logs::Followed::at_end("web", log.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let writer = numbered_writer(log.clone(), INITIAL, stop.clone());
        let mut printed = Vec::new();
        let mut collapsed = 0;
        for round in 0..ROTATIONS {
            // Let the writer add a few blocks, so that each rotation has whole blocks
            // to collapse and the writer is busy while it runs.
            let start = fs::metadata(&log).expect("meta").len();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while fs::metadata(&log).expect("meta").len() < start + 64 * 1024 {
                assert!(std::time::Instant::now() < deadline, "the writer stalled");
                std::thread::yield_now();
            }
            if rotate_once(&log, ROTATIONS + 1).expect("rotate").collapsed {
                collapsed += 1;
            }
            if round % 3 == 0 {
                printed.extend(follower.read_new());
            }
        }
        stop.store(true, Ordering::Relaxed);
        let written = writer.join().expect("writer");
        loop {
            let more = follower.read_new();
            if more.is_empty() {
                break;
            }
            printed.extend(more);
        }
        let mut on_disk = String::new();
        for n in (1..=ROTATIONS + 1).rev() {
            on_disk.push_str(&read_or_empty(&rotated_path(&log, n)));
        }
        on_disk.push_str(&read_or_empty(&log));
        (written, on_disk, printed.join("\n"), collapsed)
    }

    fn read_or_empty(path: &Path) -> String {
        fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn rotation_under_a_full_speed_writer_loses_and_repeats_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let supported = platform::collapse_supported(dir.path()).expect("probe");
        let (written, on_disk, followed, collapsed) = rotate_under_a_writer(dir.path());
        assert_eq!(collapsed, if supported { 24 } else { 0 });
        let all: Vec<u64> = (0..written).collect();
        let (on_disk, followed) = if supported {
            (numbers(&on_disk), numbers(&followed))
        } else {
            (whole_numbers(&on_disk), whole_numbers(&followed))
        };
        if supported {
            use std::os::unix::fs::MetadataExt as _;
            let log = dir.path().join("web.log");
            let block = fs::metadata(&log).expect("meta").blksize();
            for n in 1..=24 {
                let len = fs::metadata(rotated_path(&log, n)).expect("a copy").len();
                assert_eq!(len % block, 0, "copy {n} is whole collapsed blocks");
            }
            assert!(
                on_disk == all,
                "collapse: the copies and the log are every line once, in order ({} of {written} lines)",
                on_disk.len()
            );
            assert!(
                followed == all[1000..],
                "the follower printed every new line once, in order ({} lines)",
                followed.len()
            );
        } else {
            // Copytruncate fallback (no collapse on this filesystem): lines may be lost
            // in the truncation window, never repeated.
            assert!(
                on_disk.windows(2).all(|w| w[0] < w[1]),
                "collapse is unsupported on the test's temp dir, and the copytruncate fallback repeated or reordered lines"
            );
            assert!(
                followed.windows(2).all(|w| w[0] < w[1]),
                "collapse is unsupported on the test's temp dir, and the follower repeated or reordered lines under copytruncate"
            );
        }
    }

    #[test]
    fn the_copytruncate_fallback_never_repeats_a_line() {
        // tmpfs has no FALLOC_FL_COLLAPSE_RANGE: the fallback runs for real there.
        let shm = Path::new("/dev/shm");
        let dir = tempfile::tempdir_in(shm).expect("a temp dir in /dev/shm (tmpfs)");
        assert!(
            !platform::collapse_supported(dir.path()).expect("probe"),
            "/dev/shm was expected not to support collapse"
        );
        let (written, on_disk, followed, collapsed) = rotate_under_a_writer(dir.path());
        assert_eq!(collapsed, 0, "every rotation fell back to copytruncate");
        let (on_disk, followed) = (whole_numbers(&on_disk), whole_numbers(&followed));
        assert!(
            on_disk.windows(2).all(|w| w[0] < w[1]),
            "copies repeated or reordered lines"
        );
        assert!(
            followed.windows(2).all(|w| w[0] < w[1]),
            "the follower repeated or reordered lines"
        );
        // Copytruncate may lose what is written during a truncation — the last line too, if
        // the writer's last write races the last rotation — so only order is checked, and
        // that nothing was invented.
        assert!(
            on_disk.last().is_some_and(|last| *last < written),
            "lines on disk, none past the last one written"
        );
    }

    #[test]
    fn a_test_period_replaces_both_schedules_and_keeps_epoch_aligned_starts() {
        let real = Tuning::default();
        assert_eq!(real.period_ms(RotateEvery::Hourly), 3_600_000);
        assert_eq!(
            real.period_start(RotateEvery::Daily, 86_400_123),
            86_400_000
        );
        let short = Tuning {
            period_ms: Some(2_000),
            ..Tuning::default()
        };
        assert_eq!(short.period_ms(RotateEvery::Daily), 2_000);
        assert_eq!(short.period_start(RotateEvery::Hourly, 5_999), 4_000);
        assert_eq!(short.period_start(RotateEvery::Hourly, -1), -2_000);
    }

    #[test]
    fn retention_deletes_expired_copies_and_tells_when_the_next_one_expires() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("web.log");
        write(&log, "live\n");
        let now = SystemTime::now();
        let aged = |n: u32, age: u64| {
            let copy = rotated_path(&log, n);
            write(&copy, &format!("copy {n}\n"));
            File::options()
                .write(true)
                .open(&copy)
                .and_then(|f| f.set_modified(now - Duration::from_secs(age)))
                .expect("set mtime");
        };
        aged(1, 10);
        aged(2, 30);
        aged(3, 100);
        let policy = LogPolicy {
            keep: 3,
            max_age: Some(Duration::from_mins(1)),
            ..LogPolicy::DEFAULT
        };
        let next = retain(&log, &policy, Tuning::default())
            .expect("retain")
            .expect("copies are left, so an expiry");
        assert!(!rotated_path(&log, 3).exists(), "over max_age: deleted");
        assert!(rotated_path(&log, 1).exists() && rotated_path(&log, 2).exists());
        // Copy 2 (30 s old) is the first to reach 60 s: in about 30 s.
        let left = next.duration_since(now).expect("in the future");
        assert!(
            left > Duration::from_secs(29) && left <= Duration::from_secs(30),
            "{left:?}"
        );
        let no_age = LogPolicy {
            max_age: None,
            ..policy
        };
        assert_eq!(
            retain(&log, &no_age, Tuning::default()).expect("retain"),
            None
        );
    }

    #[test]
    fn retention_finishes_what_a_supervisor_killed_mid_compression_left() {
        use std::io::Read as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("web.log");
        write(&log, "live\n");
        let policy = LogPolicy {
            keep: 3,
            compress: true,
            ..LogPolicy::DEFAULT
        };
        let gunzip = |n: u32| {
            let mut text = String::new();
            flate2::read::GzDecoder::new(File::open(compressed_path(&log, n)).expect("open"))
                .read_to_string(&mut text)
                .expect("gzip");
            text
        };
        // Copy 1: killed during the compression (a partial temp). Copy 2: killed after
        // the rename (the `.gz` and the plain copy both there).
        write(&rotated_path(&log, 1), "one\n");
        fs::write(compress_temp(&log, 1), b"\x1f\x8b half").expect("temp");
        write(&rotated_path(&log, 2), "two\n");
        compress_copy(&log, 2, None).expect("compress");
        write(&rotated_path(&log, 2), "two\n");
        retain(&log, &policy, Tuning::default()).expect("retain");
        for n in [1, 2] {
            assert!(!rotated_path(&log, n).exists(), "plain copy {n} removed");
            assert!(!compress_temp(&log, n).exists(), "no temp {n} left");
        }
        assert_eq!(gunzip(1), "one\n");
        assert_eq!(gunzip(2), "two\n");
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

    #[test]
    fn lowering_keep_deletes_the_copies_above_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("web.log");
        write(&log, "live\n");
        for n in 1..=5 {
            write(&rotated_path(&log, n), &format!("copy {n}\n"));
        }
        compress_copy(&log, 4, None).expect("compress");
        write(&index_path(&rotated_path(&log, 3)), "index of copy 3");
        // A copy past a gap is not looked for (copies are contiguous).
        write(&rotated_path(&log, 7), "past a gap\n");
        let policy = LogPolicy {
            keep: 2,
            ..LogPolicy::DEFAULT
        };
        retain(&log, &policy, Tuning::default()).expect("retain");
        for n in [1, 2] {
            assert!(rotated_path(&log, n).exists(), "copy {n} is within keep");
        }
        for n in [3, 4, 5] {
            assert!(
                !rotated_path(&log, n).exists(),
                "copy {n} is above keep: deleted"
            );
            assert!(!compressed_path(&log, n).exists(), "copy {n}.gz deleted");
            assert!(
                !index_path(&rotated_path(&log, n)).exists(),
                "index {n} deleted"
            );
        }
        assert!(rotated_path(&log, 7).exists());
        let none = LogPolicy {
            keep: 0,
            ..LogPolicy::DEFAULT
        };
        retain(&log, &none, Tuning::default()).expect("retain");
        assert!(!rotated_path(&log, 1).exists(), "keep: 0 keeps no copy");
        assert!(log.exists(), "the live log is never touched");
    }
}
