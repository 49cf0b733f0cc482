//! The control plane between the CLI and the supervisor.
//!
//! Owns: the request/response types ([`protocol`]), the frame codec (newline-delimited
//! JSON with a size cap) and the blocking client the CLI uses ([`client`]). The server
//! side lives in `supervisor::server` and uses the same types.
//! Invariant: every request carries [`protocol::PROTOCOL_VERSION`]; a supervisor answers
//! a request of another version with an error, never with a guess.

pub mod client;
pub mod protocol;

/// Largest accepted frame (an `up` request carries the whole resolved config).
pub const MAX_FRAME: usize = 32 * 1024 * 1024;

/// The line a launched supervisor writes to its stdout (a pipe to the launcher) once it serves.
pub const READY_LINE: &str = "ready";
/// The line it writes when another supervisor already holds the lock.
pub const BUSY_LINE: &str = "busy";
