//! Changes of one file, for the supervisor's async runtime (inotify, no polling).
//!
//! Owns: [`FileChanges`], which a `log` health check waits on: it wakes as soon as the log
//! is written to, so a ready line is seen the moment it is written.
//!
//! Invariant: [`FileChanges::changed`] returns only after an event, having read every queued
//! event; [`FileChanges::replaced`] says the watched inode was moved or deleted (the caller
//! watches the path again).

use std::io;
use std::path::Path;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::setup::InotifyFd;

/// An inotify watch on one file (writes, truncations, and its move or deletion).
pub struct FileChanges {
    fd: tokio::io::unix::AsyncFd<InotifyFd>,
}

/// What [`FileChanges::changed`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Written to (or truncated, or its metadata changed).
    Written,
    /// Moved away or deleted: the path may name another file now.
    Replaced,
}

impl FileChanges {
    /// Watch `path`. Needs a tokio runtime.
    pub fn new(path: &Path) -> io::Result<Self> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(io::Error::from)?;
        inotify
            .add_watch(
                path,
                AddWatchFlags::IN_MODIFY
                    | AddWatchFlags::IN_ATTRIB
                    | AddWatchFlags::IN_MOVE_SELF
                    | AddWatchFlags::IN_DELETE_SELF,
            )
            .map_err(io::Error::from)?;
        // SAFETY: the `AsyncFd` owns the `Inotify`, whose descriptor is open and stays the
        // same until the `AsyncFd` (and with it the `Inotify`) is dropped; `as_raw_fd`
        // always returns that descriptor.
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(
                InotifyFd(inotify),
                tokio::io::Interest::READABLE,
            )
        }?;
        Ok(Self { fd })
    }

    /// Wait for the next change, then read every queued event. Cancel-safe.
    pub async fn changed(&self) -> io::Result<Change> {
        loop {
            let mut guard = self.fd.readable().await?;
            let mut seen = None;
            loop {
                match guard.get_inner().0.read_events() {
                    Ok(events) if events.is_empty() => break,
                    Ok(events) => {
                        for event in events {
                            let gone = event.mask.intersects(
                                AddWatchFlags::IN_MOVE_SELF
                                    | AddWatchFlags::IN_DELETE_SELF
                                    | AddWatchFlags::IN_IGNORED
                                    | AddWatchFlags::IN_Q_OVERFLOW,
                            );
                            if gone {
                                seen = Some(Change::Replaced);
                            } else if seen.is_none() {
                                seen = Some(Change::Written);
                            }
                        }
                    }
                    Err(nix::errno::Errno::EAGAIN) => break,
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(err) => return Err(io::Error::from(err)),
                }
            }
            guard.clear_ready();
            if let Some(change) = seen {
                return Ok(change);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[tokio::test]
    async fn a_write_wakes_the_watcher_and_a_deletion_says_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("web.log");
        let mut file = std::fs::File::create(&path).expect("create");
        let watch = FileChanges::new(&path).expect("watch");
        file.write_all(b"ready\n").expect("write");
        let change = tokio::time::timeout(std::time::Duration::from_secs(5), watch.changed())
            .await
            .expect("an event within 5s")
            .expect("read events");
        assert_eq!(change, Change::Written);
        drop(file);
        std::fs::remove_file(&path).expect("remove");
        let change = tokio::time::timeout(std::time::Duration::from_secs(5), watch.changed())
            .await
            .expect("an event within 5s")
            .expect("read events");
        assert_eq!(change, Change::Replaced);
    }
}
