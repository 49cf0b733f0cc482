//! Descriptors a process inherited and must not pass on.
//!
//! Owns: marking every descriptor above stderr close-on-exec, so neither the supervisor nor
//! any child inherits what the caller of `procs` happened to have open (`{ procs up 3>&1; } |
//! cat` would otherwise never finish: the supervisor would hold the pipe for its whole life).
//! Must not: close descriptors (the process itself may still use them until it execs).
//! Invariant: after [`cloexec_inherited`], an `exec` passes on stdin, stdout and stderr only,
//! plus what a spawn sets up explicitly.

use std::io;

use nix::libc;

/// `CLOSE_RANGE_CLOEXEC` from `<linux/close_range.h>` (Linux 5.11).
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;

/// Mark every descriptor from 3 up close-on-exec.
pub fn cloexec_inherited() -> io::Result<()> {
    // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC only sets a flag on descriptors of this
    // process; it touches no memory. Arguments are plain integers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if !matches!(err.raw_os_error(), Some(libc::ENOSYS | libc::EINVAL)) {
        return Err(err);
    }
    // Older kernels: walk our descriptor table.
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: fcntl(F_SETFD) on a descriptor number only changes its flags; a number that
        // was closed meanwhile (the read_dir handle itself) fails with EBADF, which we ignore.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd as _;

    use super::*;

    #[test]
    fn inherited_descriptors_become_close_on_exec() {
        let file = std::fs::File::open("/proc/self/stat").expect("open");
        let fd = file.as_raw_fd();
        // Clear the flag std sets, as an inherited descriptor would be.
        // SAFETY: plain fcntl on a descriptor we own.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        // SAFETY: as above.
        let before = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert_eq!(before & libc::FD_CLOEXEC, 0);
        cloexec_inherited().expect("cloexec");
        // SAFETY: as above.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert_ne!(flags & libc::FD_CLOEXEC, 0, "fd {fd} is close-on-exec");
    }
}
