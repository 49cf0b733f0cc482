//! procs: bring a whole stack of local processes up and down from `procs.yaml`.
//!
//! One binary, two roles: the CLI (`cli`) and the per-project supervisor
//! (`supervisor`), which is the same executable re-executed detached. They share the
//! configuration model and its dependency graph (`config`), the control protocol (`control`), the
//! on-disk registry (`registry`, `paths`), the verified stop (`stop`) and the platform
//! layer (`platform`, the only place with `/proc` and system calls).
//! See `docs/architecture.md`.

pub mod cli;
pub mod config;
pub mod control;
pub mod env_vars;
pub mod error;
pub mod index;
pub mod logs;
pub mod membership;
pub mod names;
pub mod paths;
pub mod plan;
pub mod platform;
pub mod ports;
pub mod registry;
pub mod stop;
pub mod suggest;
pub mod supervisor;
