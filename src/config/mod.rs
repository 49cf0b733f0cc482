//! Configuration: from `procs.yaml` on disk to a validated, typed [`Config`], and back.
//!
//! Owns: the whole of SPEC §1 — discovery, `procs.override.yaml`, env files,
//! interpolation, defaults, validation with located errors, the JSON Schema — and the
//! resolved document `procs config` prints. One YAML library, serde-saphyr. Pipeline (one
//! concept per module):
//! 1. [`load`](load.rs): find and read the files; read `.env` and the top-level
//!    `env_file`s ([`env_file`], a first, uninterpolated pass); parse each file with
//!    interpolation into a located tree ([`tree`]) and merge the override on top.
//! 2. [`validate`](validate/mod.rs): JSON document → the serde mirror ([`raw`]) collecting
//!    every problem, each with its [`site`] (a path) → the typed [`model`] with defaults
//!    applied, paths resolved, and the dependency graph checked (unknown names, cycles).
//! 3. [`error`]: every problem rendered as `procs.yaml:LINE:COL: error: …` with a snippet,
//!    its site resolved against the located tree by the loader.
//! 4. [`resolved`]: the typed model written back as a valid `procs.yaml` (YAML or JSON).
//!
//! [`graph`] is the dependency DAG of a validated [`Config`] (start order, layers, closures,
//! renderers); validation uses it to find cycles, so it lives here rather than beside
//! `config` (which would make the two import each other).
//!
//! Imports go one way: `load` → `validate` → (`env_file`, `site`, `tree`, `model`, `raw`);
//! nothing imports `load` but this file.
//!
//! Must not: touch the process environment, start anything, or print.
//! Invariants: [`load`] returns a `Config` only if the configuration has no problem at all;
//! otherwise a [`ConfigError`] listing all of them (YAML syntax, duplicate keys and failed
//! interpolation stop early, since the document cannot be read further). Loading never
//! panics on any input.

mod env_file;
mod error;
pub mod graph;
mod load;
pub mod model;
mod probe_url;
pub mod raw;
mod resolved;
mod site;
mod tree;
mod validate;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use error::{ConfigError, Problem};
pub use load::{DOT_ENV, FILE_NAMES, LoadOptions, OVERRIDE_FILE_NAME};
pub use model::{
    Backoff, Command, Condition, Config, Dependency, HealthCheck, LogPolicy, Port, Probe, Process,
    RestartPolicy, RotateEvery, Signal,
};
pub use probe_url::HttpTarget;
pub use raw::json_schema;
pub use resolved::Resolved;

/// Finds, reads, merges, interpolates and validates the configuration.
pub fn load(opts: &LoadOptions) -> Result<Config, ConfigError> {
    load::load(opts)
}

/// `procs.yaml` or `procs.yml` in `cwd` or its nearest ancestor.
pub fn discover(cwd: &Path) -> Option<PathBuf> {
    load::discover(cwd)
}
