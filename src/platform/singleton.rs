//! What keeps one supervisor per project when `.procs/` is deleted under it: an abstract Unix
//! socket named after the user and the project, and a watch on the state directory itself.
//!
//! Owns: binding and connecting abstract sockets ([`bind_abstract`], [`connect_abstract`]),
//! and [`Removal`], which says when a directory is deleted or moved away.
//! Must not: decide what the names are (`paths` does) or what to do when the directory goes
//! (the supervisor does).
//! Invariants: an abstract socket exists exactly as long as the process that bound it (the
//! kernel removes it on the last close; no file to delete, none that `rm -rf .procs` or `git
//! clean` can remove); it lives in the network namespace, so it is seen by every process of
//! the namespace — callers check the peer's uid on both ends.

use std::io;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};

use super::setup::InotifyFd;

/// Bind the abstract socket `name` (no leading NUL; the kernel's namespace adds it).
/// `AddrInUse` when a live process holds it.
pub fn bind_abstract(name: &str) -> io::Result<UnixListener> {
    let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
    UnixListener::bind_addr(&addr)
}

/// Connect to the abstract socket `name`.
pub fn connect_abstract(name: &str) -> io::Result<UnixStream> {
    let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
    UnixStream::connect_addr(&addr)
}

/// Says when one directory is deleted or moved away (`rm -rf`, `git clean -fdx`, `mv`).
///
/// It watches the *parent* for the entry's removal: the directory's own `IN_DELETE_SELF`
/// comes only once its inode is freed, which an open file inside it (the supervisor's own
/// log and lock) delays until that file is closed.
pub struct Removal {
    fd: tokio::io::unix::AsyncFd<InotifyFd>,
    name: std::ffi::OsString,
}

impl Removal {
    /// Watch for the removal of `dir` (which has a parent and a name). Needs a tokio runtime.
    pub fn new(dir: &std::path::Path) -> io::Result<Self> {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} has no parent directory to watch", dir.display()),
            ));
        };
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(io::Error::from)?;
        inotify
            .add_watch(
                parent,
                AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM | AddWatchFlags::IN_ONLYDIR,
            )
            .map_err(io::Error::from)?;
        // SAFETY: the `AsyncFd` owns the `Inotify`, whose descriptor stays open and the same
        // until the `AsyncFd` (and with it the `Inotify`) is dropped.
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(
                InotifyFd(inotify),
                tokio::io::Interest::READABLE,
            )
        }?;
        Ok(Self {
            fd,
            name: name.to_owned(),
        })
    }

    /// Wait until the directory is gone (deleted, or moved away from its path). Cancel-safe.
    pub async fn wait(&self) -> io::Result<()> {
        use nix::sys::inotify::AddWatchFlags;
        let gone = AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM;
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.get_inner().0.read_events() {
                Ok(events)
                    if events.iter().any(|e| {
                        e.mask.intersects(gone) && e.name.as_deref() == Some(self.name.as_os_str())
                    }) =>
                {
                    return Ok(());
                }
                Ok(_) | Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {
                    guard.clear_ready();
                }
                Err(err) => return Err(io::Error::from(err)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_abstract_name_is_held_while_bound_and_free_after() {
        let name = format!("procs-test-{}-{}", std::process::id(), line!());
        let held = bind_abstract(&name).expect("bind");
        let err = bind_abstract(&name).expect_err("held");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        let conn = connect_abstract(&name).expect("connect");
        assert_eq!(
            super::super::peer_uid(&conn).expect("peer"),
            super::super::current_uid()
        );
        drop(conn);
        drop(held);
        bind_abstract(&name).expect("free again once the holder closed it");
    }

    #[test]
    fn removal_fires_when_the_directory_is_deleted() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("state");
        std::fs::create_dir(&dir).expect("mkdir");
        // A file kept open inside, as the supervisor keeps its log and lock.
        let _open = std::fs::File::create(dir.join("f")).expect("create");
        std::fs::write(tmp.path().join("sibling"), b"x").expect("write");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let removal = Removal::new(&dir).expect("watch");
            // Another entry of the parent going away is not this directory's removal.
            std::fs::remove_file(tmp.path().join("sibling")).expect("rm sibling");
            let early = tokio::time::timeout(std::time::Duration::from_millis(50), removal.wait());
            assert!(early.await.is_err(), "a sibling's removal is not reported");
            std::fs::remove_dir_all(&dir).expect("rm -rf");
            tokio::time::timeout(std::time::Duration::from_secs(10), removal.wait())
                .await
                .expect("the removal is reported within 10 s")
                .expect("no error");
        });
    }
}
