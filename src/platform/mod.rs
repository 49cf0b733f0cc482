//! The platform layer: the only module that reads `/proc` or calls into libc, `nix` or `rustix`.
//!
//! Everything above this module talks in plain pids, signal numbers and small value types; it
//! never opens a `/proc` file or issues a syscall itself. That keeps a future macOS port (no
//! `/proc`: `sysinfo`, `libproc`) a contained job: reimplement this module's functions.
//!
//! What it owns:
//! - process identity: kernel start time, boot id, [`is_alive_same`] (the pid-reuse guard);
//! - process discovery: [`tagged_processes`] (by `PROCS_PROJECT_ID`), [`descendants`],
//!   [`group_members`], [`children_zombies`];
//! - port ownership from the kernel socket tables: [`port_holders`], [`listening_ports_of`],
//!   [`pid_set_holds_port`], [`is_port_listening`];
//! - signals, reaping and pidfds: [`kill`], [`kill_group`], [`reap_any`], [`PidFd`],
//!   [`set_child_subreaper`];
//! - resource usage of known pids: [`usage`];
//! - private directories that follow no planted link and no other user's directory
//!   ([`ensure_private_dir`]), the uid at the other end of a socket ([`peer_uid`]), and
//!   inherited descriptors made close-on-exec ([`cloexec_inherited`]);
//! - advisory file locks, for log rotation and its readers and the supervisor lock
//!   ([`lock_exclusive`], [`lock_shared`]), and removing a file's front in place
//!   ([`collapse_front`], [`collapse_supported`]).
//!
//! What it must not do: keep state beyond caches of values that cannot change while the process
//! lives (boot id, clock tick rate, page size), spawn processes, or decide policy (which process
//! to stop, when to escalate). Every function is cheap enough to call from a CLI command; the
//! whole-table scans ([`tagged_processes`], [`port_holders`], [`descendants`]) read each
//! `/proc/PID` file at most once.
//!
//! Invariants:
//! - A pid ≤ 0 is never signalled: `kill(0)` / `kill(-1)` would hit our own group or every
//!   process we may signal. Such calls return `InvalidInput`.
//! - "Gone" (`ESRCH`) is success for every signalling function: the goal state is reached.
//! - Zombies are never reported as alive.

#[cfg(target_os = "linux")]
mod linux;

#[cfg(target_os = "linux")]
mod setup;

#[cfg(target_os = "linux")]
mod fds;

#[cfg(target_os = "linux")]
mod private;

#[cfg(target_os = "linux")]
pub use linux::*;
#[cfg(target_os = "linux")]
pub use setup::*;

#[cfg(target_os = "linux")]
pub use fds::*;

#[cfg(target_os = "linux")]
pub use private::*;

#[cfg(not(target_os = "linux"))]
compile_error!("procs supports Linux only for now: src/platform/ is where a port starts");
