//! The child announces itself: one line written by the new process, after its stdio is
//! set up and before it `exec`s the program.
//!
//! Owns: [`announce_before_exec`]. Written by the child rather than by the supervisor after
//! the spawn returns, the `[procs] … started pid N` line is in the log before anything the
//! program prints (the supervisor writing it afterwards raced with the program's first
//! output). The hook runs between `fork` and `exec`, so it only calls `getpid` and `write`
//! (both async-signal-safe) on memory prepared beforehand.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Make the child write `prefix`, its own pid, then `suffix` to its stdout before `exec`.
/// A failed write is ignored (the program still runs).
pub fn announce_before_exec(cmd: &mut Command, prefix: String, suffix: String) {
    let hook = move || {
        let mut digits = [0u8; 12];
        let len = pid_digits(std::process::id(), &mut digits);
        let mut line = [0u8; 256];
        let mut at = 0;
        for part in [prefix.as_bytes(), &digits[..len], suffix.as_bytes()] {
            let n = part.len().min(line.len() - at);
            line[at..at + n].copy_from_slice(&part[..n]);
            at += n;
        }
        // SAFETY: fd 1 is the child's stdout (the log file), set up before this hook runs,
        // and stays open for the borrow's whole (one-statement) life.
        let stdout = unsafe { std::os::fd::BorrowedFd::borrow_raw(1) };
        let _ = nix::unistd::write(stdout, &line[..at]);
        Ok(())
    };
    // SAFETY: the hook allocates nothing and takes no lock: it formats into stack buffers
    // and calls only `getpid` and `write`, which is what may run in a forked child.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// Decimal digits of `n` into `out`, returning how many were written.
fn pid_digits(mut n: u32, out: &mut [u8; 12]) -> usize {
    let mut tmp = [0u8; 12];
    let mut len = 0;
    loop {
        tmp[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        out[i] = tmp[len - 1 - i];
    }
    len
}

#[cfg(test)]
mod tests {
    use super::pid_digits;

    #[test]
    fn digits_of_pids() {
        for (n, want) in [
            (0, "0"),
            (7, "7"),
            (4_194_304, "4194304"),
            (u32::MAX, "4294967295"),
        ] {
            let mut out = [0u8; 12];
            let len = pid_digits(n, &mut out);
            assert_eq!(std::str::from_utf8(&out[..len]).unwrap(), want);
        }
    }
}
