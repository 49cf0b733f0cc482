//! The signal setup of a oneshot's waiting parent (`procs __oneshot`, `supervisor/waiter.rs`).
//!
//! Owns: [`outlast_signals`] — the waiting parent survives every signal a stop sends to its
//! process group, so it is still there to reap the program and record how it ended — and
//! [`end_like`], which ends the waiting parent the way the program ended.
//!
//! Must not: forward signals (a stop signals the whole group: the program gets it directly;
//! forwarding would deliver it twice).
//!
//! Invariant: the handlers installed are no-ops, and handlers (unlike ignored dispositions)
//! are reset to the default by `exec`, so the program starts with default dispositions.

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// Catchable signals whose default action ends a process (faults excluded: they are not
/// sent by a stop).
const ENDING: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGPIPE,
    Signal::SIGALRM,
    Signal::SIGTERM,
    Signal::SIGSTKFLT,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGIO,
    Signal::SIGPWR,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
    Signal::SIGABRT,
];

extern "C" fn nothing(_: nix::libc::c_int) {}

/// Let every ending signal (but SIGKILL) pass over this process: each gets a handler that
/// does nothing (with `SA_RESTART`, so a wait in progress goes on).
pub fn outlast_signals() {
    let action = SigAction::new(
        SigHandler::Handler(nothing),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for &sig in ENDING {
        // SAFETY: the handler does nothing at all, so it is async-signal-safe and touches no
        // state of the interrupted code.
        let _ = unsafe { signal::sigaction(sig, &action) };
    }
}

/// End this process as if killed by `sig` (default disposition, no core file); returns the
/// shell's `128 + sig` code if the signal does not end it.
pub fn end_like(sig: i32) -> i32 {
    if let Ok(signal) = Signal::try_from(sig) {
        let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
        // SAFETY: SIG_DFL installs no handler: no Rust code runs in signal context.
        let _ = unsafe { signal::signal(signal, SigHandler::SigDfl) };
        let mut set = SigSet::empty();
        set.add(signal);
        let _ = set.thread_unblock();
        let _ = signal::raise(signal);
    }
    128 + sig
}
