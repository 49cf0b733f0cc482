//! Advisory file locks and in-place removal of a file's front: the primitives of log
//! rotation, its readers and the supervisor lock.
//!
//! Owns: [`FileLock`] (`flock(2)` with patience: [`lock_exclusive`], [`lock_shared`]) and
//! [`collapse_front`] / [`collapse_supported`] (`fallocate(FALLOC_FL_COLLAPSE_RANGE)`).
//!
//! Must not: decide what a lock protects or how long to wait (callers pass the path and the
//! patience), or fall back to copying bytes (that is the rotator's choice).
//!
//! Invariants: a lock is held exactly as long as its [`FileLock`] lives (or the process);
//! waiting never exceeds the patience given; a collapse that the filesystem refuses leaves
//! the file unchanged and says so (`Ok(false)`).

use std::fs;
use std::io;

use nix::errno::Errno;

use super::invalid;

/// A `flock(2)` lock on a file, held through its own open file description and released
/// when dropped (or when the process dies: the kernel closes the descriptor).
#[derive(Debug)]
pub struct FileLock {
    _file: fs::File,
}

/// Take `LOCK_EX` on the file at `path`, waiting at most `patience` for the other holders
/// to let go. Used by the rotator around the few calls readers must see as one step, and
/// for the supervisor lock. `Ok(None)` when the patience ran out.
pub fn lock_exclusive(
    path: &std::path::Path,
    patience: std::time::Duration,
) -> io::Result<Option<FileLock>> {
    lock_file(path, patience, fs::File::try_lock)
}

/// Take `LOCK_SH` on the file at `path`, waiting at most `patience` for an exclusive holder.
/// `Ok(None)` when the patience ran out (a rotator stopped while holding the lock: the caller
/// reads without it rather than hang); `Err` when the file cannot be opened.
pub fn lock_shared(
    path: &std::path::Path,
    patience: std::time::Duration,
) -> io::Result<Option<FileLock>> {
    lock_file(path, patience, fs::File::try_lock_shared)
}

/// `flock` is all or nothing (no timeout): try, then pause a little longer each time.
fn lock_file(
    path: &std::path::Path,
    patience: std::time::Duration,
    try_lock: fn(&fs::File) -> Result<(), fs::TryLockError>,
) -> io::Result<Option<FileLock>> {
    let file = fs::File::open(path)?;
    let deadline = std::time::Instant::now() + patience;
    let mut pause = std::time::Duration::from_micros(100);
    loop {
        match try_lock(&file) {
            Ok(()) => return Ok(Some(FileLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => {}
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(std::time::Duration::from_millis(5));
    }
}

/// Remove the bytes `[0, len)` from the front of `file` in place
/// (`fallocate(FALLOC_FL_COLLAPSE_RANGE)`): what followed them moves to offset 0 and the file
/// shrinks by `len`, with no byte copied and the inode kept, so `O_APPEND` writers go on at the
/// new end. `len` must be a multiple of the filesystem block size and less than the file size.
/// `Ok(false)` when the filesystem (or this range) does not support it (`EOPNOTSUPP`,
/// `EINVAL`): the file is unchanged.
pub fn collapse_front(file: &fs::File, len: u64) -> io::Result<bool> {
    let len = i64::try_from(len).map_err(|_| invalid(format!("cannot collapse {len} bytes")))?;
    let flags = nix::fcntl::FallocateFlags::FALLOC_FL_COLLAPSE_RANGE;
    loop {
        match nix::fcntl::fallocate(file, flags, 0, len) {
            Ok(()) => return Ok(true),
            Err(Errno::EINTR) => {}
            Err(Errno::EOPNOTSUPP | Errno::EINVAL) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Does the filesystem holding directory `dir` support [`collapse_front`]? Probes with a
/// two-block scratch file, removed before returning.
pub fn collapse_supported(dir: &std::path::Path) -> io::Result<bool> {
    use std::io::Write as _;
    use std::os::unix::fs::MetadataExt as _;
    let path = dir.join(format!(".procs-collapse-probe-{}", std::process::id()));
    let probe = (|| {
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        let block = file.metadata()?.blksize().max(1);
        let bytes = usize::try_from(2 * block).map_err(|_| invalid("huge block size".into()))?;
        file.write_all(&vec![b'.'; bytes])?;
        collapse_front(&file, block)
    })();
    let _ = fs::remove_file(&path);
    probe
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Seek as _};
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_exclusive_lock_excludes_until_dropped_and_patience_is_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lock");
        fs::write(&path, b"").expect("create");
        let held = lock_exclusive(&path, Duration::ZERO)
            .expect("open")
            .expect("free lock");
        let started = std::time::Instant::now();
        let waited = lock_shared(&path, Duration::from_millis(30)).expect("open");
        assert!(
            waited.is_none(),
            "a shared lock waits for the exclusive holder"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "patience bounds the wait"
        );
        assert!(
            lock_exclusive(&path, Duration::ZERO)
                .expect("open")
                .is_none()
        );
        drop(held);
        let a = lock_shared(&path, Duration::ZERO).expect("open");
        let b = lock_shared(&path, Duration::ZERO).expect("open");
        assert!(a.is_some() && b.is_some(), "shared locks share");
        assert!(lock_shared(&dir.path().join("missing"), Duration::ZERO).is_err());
    }

    #[test]
    fn collapse_front_removes_whole_blocks_or_says_it_cannot() {
        use std::io::Write as _;
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join("log"))
            .expect("create");
        let block = file.metadata().expect("metadata").blksize();
        let half = usize::try_from(block).expect("block size");
        file.write_all(&vec![b'a'; half]).expect("write");
        file.write_all(&vec![b'b'; half]).expect("write");
        let supported = collapse_supported(dir.path()).expect("probe");
        assert_eq!(collapse_front(&file, block).expect("collapse"), supported);
        let mut rest = Vec::new();
        file.rewind().expect("rewind");
        file.read_to_end(&mut rest).expect("read");
        if supported {
            assert_eq!(rest, vec![b'b'; half], "the front block is gone");
        } else {
            assert_eq!(rest.len(), 2 * half, "unchanged when unsupported");
        }
        assert_eq!(
            fs::read_dir(dir.path()).expect("list").count(),
            1,
            "the probe file is removed"
        );
    }
}
