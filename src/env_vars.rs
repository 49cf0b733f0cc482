//! The environment variables procs sets or reads, named once for the CLI, the supervisor and
//! the platform layer.
//!
//! Owns: the names only. Must not: read or set anything (each user does that where it
//! needs to), or import any other module of the crate (everyone may import this one).
//! Invariant: these names are part of the user-facing contract (SPEC, `docs/`): renaming one
//! breaks tagged processes of running stacks and users' scripts.

/// The project id; procs sets it on every child, and finds its processes by it.
pub const ENV_PROJECT_ID: &str = "PROCS_PROJECT_ID";
/// The project name, set on every child.
pub const ENV_PROJECT: &str = "PROCS_PROJECT";
/// The configured process name, set on every child.
pub const ENV_PROCESS: &str = "PROCS_PROCESS";
/// Read: overrides the state directory (`.procs/`), relative to the project directory.
pub const ENV_STATE_DIR: &str = "PROCS_STATE_DIR";
/// Read by the supervisor: its tracing filter (`tracing_subscriber` targets syntax).
pub const ENV_LOG: &str = "PROCS_LOG";
/// Read by the supervisor, **for tests only**: the length in ms of every `rotate_every`
/// period (hourly and daily alike), so that a test sees scheduled rotations without waiting
/// an hour. Periods still start at multiples of it since the Unix epoch.
pub const ENV_TEST_ROTATE_PERIOD_MS: &str = "PROCS_TEST_ROTATE_PERIOD_MS";
/// Read by the supervisor, **for tests only**: a pause in ms in the middle of each
/// compression of a rotated copy (after its first bytes reach `NAME.log.N.gz.tmp`), so that a
/// test can kill the supervisor while a compression runs.
pub const ENV_TEST_COMPRESS_PAUSE_MS: &str = "PROCS_TEST_COMPRESS_PAUSE_MS";
/// Read by the supervisor, **for tests only**: the period in ms of the lineage mechanism's
/// slow scan (`supervisor::lineage`), so that a test can show that a record happens on an
/// event and not on that timer (a test sets it to an hour).
pub const ENV_TEST_LINEAGE_SCAN_MS: &str = "PROCS_TEST_LINEAGE_SCAN_MS";
