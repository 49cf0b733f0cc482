//! Changes of one file, for the supervisor's async runtime (inotify, no polling).
//!
//! Owns: [`FileChanges`], which a `log` health check waits on: it wakes as soon as the log
//! is written to, so a ready line is seen the moment it is written; and, through
//! [`FileChanges::entry`], the wait of a `daemon: true` process for its `pid_file` (a file
//! that may not exist yet, or be replaced by a rename: its directory is watched).
//!
//! Invariant: one inotify instance per [`FileChanges`] for its whole life ([`FileChanges::rewatch`]
//! re-aims it after a rotation; events of a removed watch are ignored);
//! [`FileChanges::changed`] returns only after an event, having read every queued
//! event; [`FileChanges::replaced`] says the watched inode was moved or deleted (the caller
//! watches the path again).

use std::io;
use std::path::Path;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::setup::InotifyFd;

/// An inotify watch on one file (writes, truncations, and its move or deletion).
pub struct FileChanges {
    fd: tokio::io::unix::AsyncFd<InotifyFd>,
    /// Watching a directory for one entry: only events naming it count.
    entry: Option<std::ffi::OsString>,
    /// The current watch and its flags (for [`FileChanges::rewatch`]).
    wd: Option<nix::sys::inotify::WatchDescriptor>,
    flags: AddWatchFlags,
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
        Self::watch(
            path,
            AddWatchFlags::IN_MODIFY
                | AddWatchFlags::IN_ATTRIB
                | AddWatchFlags::IN_MOVE_SELF
                | AddWatchFlags::IN_DELETE_SELF,
            None,
        )
    }

    /// Watch the entry `path` of its directory, whether or not it exists yet: its creation,
    /// writes, and a file renamed onto it are [`Change::Written`]; the directory's own move
    /// or deletion is [`Change::Replaced`]. Needs a tokio runtime and an existing directory.
    pub fn entry(path: &Path) -> io::Result<Self> {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} names no entry of a directory", path.display()),
            ));
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        Self::watch(
            dir,
            AddWatchFlags::IN_CREATE
                | AddWatchFlags::IN_MODIFY
                | AddWatchFlags::IN_CLOSE_WRITE
                | AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_MOVE_SELF
                | AddWatchFlags::IN_DELETE_SELF,
            Some(name.to_owned()),
        )
    }

    fn watch(
        path: &Path,
        flags: AddWatchFlags,
        entry: Option<std::ffi::OsString>,
    ) -> io::Result<Self> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(io::Error::from)?;
        let wd = inotify.add_watch(path, flags).map_err(io::Error::from)?;
        // SAFETY: the `AsyncFd` owns the `Inotify`, whose descriptor is open and stays the
        // same until the `AsyncFd` (and with it the `Inotify`) is dropped; `as_raw_fd`
        // always returns that descriptor.
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(
                InotifyFd(inotify),
                tokio::io::Interest::READABLE,
            )
        }?;
        Ok(Self {
            fd,
            entry,
            wd: Some(wd),
            flags,
        })
    }

    /// Watch whatever file `path` names now (after [`Change::Replaced`]: a rotation moved the
    /// old one away), on the same inotify instance: the old inode's watch is removed, so its
    /// later writes wake nobody. One instance serves a watcher's whole life.
    pub fn rewatch(&mut self, path: &Path) -> io::Result<()> {
        let inotify = &self.fd.get_ref().0;
        if let Some(wd) = self.wd.take() {
            // Already gone if the file was deleted (the kernel removed the watch).
            let _ = inotify.rm_watch(wd);
        }
        self.wd = Some(
            inotify
                .add_watch(path, self.flags)
                .map_err(io::Error::from)?,
        );
        Ok(())
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
                            // A removed watch's last events (IN_IGNORED after `rewatch`); an
                            // overflow names no watch and always counts.
                            if self.wd.is_some_and(|wd| wd != event.wd)
                                && !event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW)
                            {
                                continue;
                            }
                            let gone = event.mask.intersects(
                                AddWatchFlags::IN_MOVE_SELF
                                    | AddWatchFlags::IN_DELETE_SELF
                                    | AddWatchFlags::IN_IGNORED
                                    | AddWatchFlags::IN_Q_OVERFLOW,
                            );
                            let other = self.entry.as_ref().is_some_and(|want| {
                                event.name.as_ref().is_some_and(|name| name != want)
                            });
                            if gone {
                                seen = Some(Change::Replaced);
                            } else if !other && seen.is_none() {
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

    #[tokio::test]
    async fn a_rewatch_follows_the_new_file_on_the_same_instance_and_forgets_the_old() {
        use std::os::fd::AsRawFd as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("web.log");
        std::fs::write(&path, b"").expect("create");
        let mut watch = FileChanges::new(&path).expect("watch");
        let fd = watch.fd.get_ref().as_raw_fd();
        // A rotation: the log is moved away and a new one takes its name.
        let old = dir.path().join("web.log.1");
        std::fs::rename(&path, &old).expect("rotate");
        let change = tokio::time::timeout(std::time::Duration::from_secs(5), watch.changed())
            .await
            .expect("an event within 5s")
            .expect("read events");
        assert_eq!(change, Change::Replaced);
        std::fs::write(&path, b"").expect("the new log");
        watch.rewatch(&path).expect("rewatch");
        assert_eq!(watch.fd.get_ref().as_raw_fd(), fd, "the same instance");
        // The old file's writes wake nobody; the new file's do.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&old)
            .and_then(|mut f| f.write_all(b"old\n"))
            .expect("write the old file");
        let quiet =
            tokio::time::timeout(std::time::Duration::from_millis(100), watch.changed()).await;
        assert!(
            quiet.is_err(),
            "a write to the rotated copy woke the watcher"
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"ready\n"))
            .expect("write the new log");
        let change = tokio::time::timeout(std::time::Duration::from_secs(5), watch.changed())
            .await
            .expect("an event within 5s")
            .expect("read events");
        assert_eq!(change, Change::Written);
    }

    #[tokio::test]
    async fn an_entry_is_seen_when_created_and_when_renamed_onto() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.pid");
        let watch = FileChanges::entry(&path).expect("watch");
        std::fs::write(&path, b"42\n").expect("create");
        let change = tokio::time::timeout(std::time::Duration::from_secs(5), watch.changed())
            .await
            .expect("an event within 5s")
            .expect("read events");
        assert_eq!(change, Change::Written);
        std::fs::write(dir.path().join("app.pid.tmp"), b"43\n").expect("write the new copy");
        std::fs::rename(dir.path().join("app.pid.tmp"), &path).expect("rename onto it");
        let change = tokio::time::timeout(std::time::Duration::from_secs(5), watch.changed())
            .await
            .expect("an event within 5s")
            .expect("read events");
        assert_eq!(change, Change::Written);
    }
}
