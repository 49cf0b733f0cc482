//! The platform layer: the only module that reads `/proc` or calls into libc, `nix` or `rustix`.
//!
//! Everything above this module talks in plain pids, [`Signal`]s and small value types; it
//! never opens a `/proc` file or issues a syscall itself. That keeps a future macOS port (no
//! `/proc`: `sysinfo`, `libproc`) a contained job: reimplement this module's functions.
//!
//! One concept per file (each re-exported here, so callers write `platform::X`):
//! - `proc`: process identity and discovery from `/proc/PID/stat` — kernel start time, boot
//!   id, [`is_alive_same`] (the pid-reuse guard), [`descendants`], [`group_members`],
//!   [`children_zombies`], and a pid's [`cmdline`], owner ([`uid_of`], [`user_name`]) and
//!   [`current_uid`];
//! - `tags`: processes carrying the `PROCS_*` tags ([`tagged_processes`], by
//!   `PROCS_PROJECT_ID`) and [`environ_map`];
//! - `usage`: CPU and memory of known pids ([`usage`], [`usages`], [`verified_usages`]);
//! - `sockets` (with `sockets/diag.rs`, the `sock_diag` netlink client): port ownership from
//!   the kernel socket tables — [`port_holders`], [`listening_ports_of`],
//!   [`pid_set_holds_port`], [`is_port_listening`];
//! - `signals`: the [`Signal`] type, [`kill`], [`kill_group`], [`default_sigpipe`];
//! - `reaping`: [`reap_any`], [`ExitInfo`], [`set_child_subreaper`];
//! - `pidfd`: [`PidFd`], a handle on one process that survives pid reuse;
//! - `locks`: advisory file locks for log rotation, its readers and the supervisor lock
//!   ([`FileLock`], [`lock_exclusive`], [`lock_shared`]), and removing a file's front in place
//!   ([`collapse_front`], [`collapse_supported`]);
//! - `setup`: process setup (detach, stdio), the stop flag, directory watching, waiting for
//!   an exit;
//! - `private`: directories that follow no planted link and no other user's directory
//!   ([`ensure_private_dir`]), and the uid at the other end of a socket ([`peer_uid`]);
//! - `singleton`: abstract Unix sockets ([`bind_abstract`], [`connect_abstract`]) and
//!   [`Removal`] of a directory — one supervisor per project even when `.procs/` is deleted;
//! - `cgroup` (used as `platform::cgroup::…`): the project's cgroup v2 — detection, one leaf per
//!   process, the open `cgroup.procs` a child writes before exec, members, `cgroup.kill`, removal;
//! - `fds`: inherited descriptors made close-on-exec ([`cloexec_inherited`]);
//! - `file_events`: [`FileChanges`] of one file (inotify, through the async reactor), which
//!   `log` health checks wait on;
//! - `waiting`: the signal setup of a oneshot's waiting parent ([`outlast_signals`],
//!   [`end_like`]);
//! - `spawn`: creating a supervised child with a vfork-like clone that places it in its
//!   cgroup and writes its own `[procs] … started pid N` line before `exec` ([`spawn_child`]).
//!
//! What it must not do: keep state beyond caches of values that cannot change while the process
//! lives (boot id, clock tick rate, page size), spawn processes, or decide policy (which process
//! to stop, when to escalate). Every function is cheap enough to call from a CLI command; the
//! whole-table scans ([`tagged_processes`], [`port_holders`], [`descendants`]) read each
//! `/proc/PID` file at most once. Sources of truth are read fresh on every call.
//!
//! Invariants:
//! - A pid ≤ 0 is never signalled: `kill(0)` / `kill(-1)` would hit our own group or every
//!   process we may signal. Such calls return `InvalidInput`.
//! - "Gone" (`ESRCH`) is success for every signalling function: the goal state is reached.
//! - Zombies are never reported as alive.

#[cfg(not(target_os = "linux"))]
compile_error!("procs supports Linux only for now: src/platform/ is where a port starts");

pub mod cgroup;
mod fds;
mod file_events;
mod locks;
mod pidfd;
mod private;
mod proc;
mod reaping;
mod setup;
mod signals;
mod singleton;
mod sockets;
mod spawn;
mod tags;
#[cfg(test)]
mod test_support;
mod usage;
mod waiting;

pub use fds::*;
pub use file_events::*;
pub use locks::*;
pub use pidfd::*;
pub use private::*;
pub use proc::*;
pub use reaping::*;
pub use setup::*;
pub use signals::*;
pub use singleton::*;
pub use sockets::*;
pub use spawn::*;
pub use tags::*;
pub use usage::*;
pub use waiting::*;

/// The tag names, kept reachable as `platform::ENV_*` (their home is [`crate::env_vars`]).
pub use crate::env_vars::{ENV_PROCESS, ENV_PROJECT, ENV_PROJECT_ID};

/// An `InvalidInput` error: the caller asked for something this layer refuses to do.
fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, msg)
}
