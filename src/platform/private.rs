//! Private directories and the peer of a Unix socket: what procs trusts on the file system.
//!
//! Owns: creating a directory that only the current user can use, without following a
//! symbolic link an attacker planted in its place, and refusing one that another user owns;
//! telling which user serves the other end of a socket.
//! Must not: decide what to do about a refusal (callers report it), or create parents with
//! private modes (only the last component is private).
//! Invariant: a directory this module accepted is a real directory (not a link), owned by the
//! effective uid, with no group or other permission bits — checked on an open descriptor,
//! so a swap between the check and the use cannot redirect it.

use std::fs;
use std::io;
use std::os::fd::AsFd as _;
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt,
};
use std::path::Path;

use nix::libc;

/// Create `dir` (mode 0700) if it is missing, then make sure it is safe to keep private files
/// in: a directory, not a symbolic link, owned by us; a group or other bit left by an older
/// procs or a umask is taken away.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent()
        && !parent.as_os_str().is_empty()
        && !parent.exists()
    {
        fs::create_dir_all(parent)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(err),
    }
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(dir);
    let handle = match opened {
        Ok(handle) => handle,
        Err(err) if matches!(err.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
            let what = if fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) {
                "a symbolic link"
            } else {
                "not a directory"
            };
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is {what}; procs keeps private files there and never follows a link",
                    dir.display()
                ),
            ));
        }
        Err(err) => return Err(err),
    };
    let meta = handle.metadata()?;
    let me = super::current_uid();
    if meta.uid() != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} belongs to {} (uid {}), not to you; procs never uses a private directory \
                 another user owns",
                dir.display(),
                super::user_name(meta.uid()),
                meta.uid()
            ),
        ));
    }
    if meta.mode() & 0o077 != 0 {
        // fchmod on the descriptor we checked, not on the path.
        handle.set_permissions(fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// The uid of the process at the other end of a connected Unix socket.
pub fn peer_uid(stream: &std::os::unix::net::UnixStream) -> io::Result<u32> {
    let cred = rustix::net::sockopt::socket_peercred(stream.as_fd()).map_err(io::Error::from)?;
    Ok(cred.uid.as_raw())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_private_directory_and_tightens_an_open_one() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("a").join("private");
        ensure_private_dir(&dir).expect("create");
        let mode = fs::metadata(&dir).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        ensure_private_dir(&dir).expect("again");
        let mode = fs::metadata(&dir).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "group/other bits removed");
    }

    #[test]
    fn a_planted_symlink_is_refused_and_its_target_untouched() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let target = tmp.path().join("target");
        fs::create_dir(&target).expect("mkdir");
        fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).expect("chmod");
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let err = ensure_private_dir(&link).expect_err("a link is refused");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("is a symbolic link"), "{err}");
        let mode = fs::metadata(&target).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "the link's target keeps its mode");
    }

    #[test]
    fn a_file_in_the_way_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("file");
        fs::write(&file, b"x").expect("write");
        let err = ensure_private_dir(&file).expect_err("a file is refused");
        assert!(err.to_string().contains("not a directory"), "{err}");
    }
}
