//! The typed, validated configuration: what every other module consumes.
//!
//! Owns: the `Config`/`Process` types after validation, with every default filled in,
//! every string interpolated and every relative path made absolute.
//! Invariants: process names are unique and valid; every `depends_on` names an existing
//! process and the graph is acyclic; a healthcheck has exactly one probe. Values of this
//! type are only produced by `config::load` (or deserialized from JSON that `load`
//! produced, as the CLI sends it to the supervisor).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A fully resolved `procs.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Project name (`name:` or the project directory's name).
    pub name: String,
    /// Absolute, canonical project directory (the directory holding `procs.yaml`).
    pub project_dir: PathBuf,
    /// The configuration file that was loaded.
    pub file: PathBuf,
    /// `procs.override.yaml` when one was merged on top.
    pub override_file: Option<PathBuf>,
    /// Processes by name.
    pub processes: BTreeMap<String, Process>,
}

/// One process of the stack, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub name: String,
    pub command: Command,
    /// Absolute working directory.
    pub cwd: PathBuf,
    /// The declared environment, lowest to highest: top-level `env_file`s, top-level
    /// `env`, process `env_file`s, process `env`. The invoking environment is *not* in
    /// here (it is layered below at spawn time), nor are the `PROCS_*` tags.
    pub env: BTreeMap<String, String>,
    pub depends_on: Vec<Dependency>,
    pub healthcheck: Option<HealthCheck>,
    pub ports: Vec<Port>,
    pub restart: RestartPolicy,
    pub backoff: Backoff,
    pub max_restarts: u32,
    #[serde(with = "human_duration")]
    pub min_uptime: Duration,
    /// Without a health check: how long it must stay up to be ready.
    #[serde(with = "human_duration", default = "defaults::ready_after")]
    pub ready_after: Duration,
    pub oneshot: bool,
    /// The main process exits 0 after starting a daemon (`daemon: true`). Left out of the
    /// serialized form (and so of the config hash) while false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub daemon: bool,
    /// Where the daemon writes its pid (absolute), with `daemon: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_file: Option<PathBuf>,
    pub success_exit_codes: Vec<i32>,
    pub stop_signal: Signal,
    #[serde(with = "human_duration")]
    pub stop_timeout: Duration,
    pub stop_command: Option<Command>,
    pub disabled: bool,
    pub logs: LogPolicy,
}

/// How to run something: a shell string or an argv list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Command {
    /// Run through `/bin/sh -c`.
    Shell(String),
    /// Run directly, no shell; never empty.
    Argv(Vec<String>),
}

/// `depends_on` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    pub name: String,
    pub condition: Condition,
    /// `restart: true`: restarted after the dependency was restarted and meets `condition`
    /// again. Left out of the serialized form (and so of the config hash) while false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restart: bool,
}

/// When a dependency counts as satisfied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    Started,
    Healthy,
    Completed,
    CompletedSuccessfully,
}

/// A health check: exactly one probe plus its timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub probe: Probe,
    #[serde(with = "human_duration")]
    pub interval: Duration,
    #[serde(with = "human_duration")]
    pub timeout: Duration,
    /// Consecutive failures that make a healthy process unhealthy.
    pub retries: u32,
    #[serde(with = "human_duration")]
    pub start_timeout: Duration,
}

/// The one probe of a health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    /// Run through `/bin/sh -c`; exit 0 = healthy.
    Exec(String),
    /// Connect to `host:port`.
    Tcp { host: String, port: u16 },
    /// GET the URL (parsed when the config was loaded); healthy on 2xx/3xx, or exactly
    /// `status` when set.
    Http {
        url: super::probe_url::HttpTarget,
        status: Option<u16>,
    },
    /// Healthy once a new output line matches the regular expression.
    Log(String),
}

/// A declared TCP port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    pub port: u16,
    /// Bind address the process is expected to use; `None` = any.
    pub host: Option<String>,
}

/// `restart:` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    No,
    OnFailure,
    Always,
}

/// Exponential backoff between restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backoff {
    #[serde(with = "human_duration")]
    pub initial: Duration,
    #[serde(with = "human_duration")]
    pub max: Duration,
}

/// A signal, kept as its number with its canonical name (`SIGTERM`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    pub number: i32,
    pub name: String,
}

/// Log rotation and retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPolicy {
    /// Rotate once the log passes this many bytes.
    pub max_size: u64,
    /// Rotated files kept (`NAME.log.1` … `NAME.log.keep`).
    pub keep: u32,
    /// Delete rotated copies whose newest line is older than this.
    #[serde(default)]
    pub max_age: Option<Duration>,
    /// Gzip rotated copies (`NAME.log.N.gz`).
    #[serde(default)]
    pub compress: bool,
    /// Also rotate at the start of every period (UTC).
    #[serde(default)]
    pub rotate_every: Option<RotateEvery>,
}

impl LogPolicy {
    /// The policy of a process that sets nothing.
    pub const DEFAULT: Self = Self {
        max_size: defaults::LOG_MAX_SIZE,
        keep: defaults::LOG_KEEP,
        max_age: None,
        compress: false,
        rotate_every: None,
    };
}

/// A schedule for log rotation: at the start of every UTC hour or day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RotateEvery {
    Hourly,
    Daily,
}

impl RotateEvery {
    /// The length of one period, in ms.
    pub fn period_ms(self) -> i64 {
        match self {
            Self::Hourly => 3_600_000,
            Self::Daily => 86_400_000,
        }
    }

    /// The start of the period holding `time` (Unix ms).
    pub fn period_start(self, time: i64) -> i64 {
        time.div_euclid(self.period_ms()) * self.period_ms()
    }
}

/// Defaults from SPEC §1, in one place.
pub mod defaults {
    use std::time::Duration;

    pub const INTERVAL: Duration = Duration::from_secs(1);
    pub const TIMEOUT: Duration = Duration::from_secs(1);
    pub const RETRIES: u32 = 3;
    pub const START_TIMEOUT: Duration = Duration::from_mins(1);
    pub const BACKOFF_INITIAL: Duration = Duration::from_millis(500);
    pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
    pub const MAX_RESTARTS: u32 = 10;
    pub const MIN_UPTIME: Duration = Duration::from_secs(10);
    pub const READY_AFTER: Duration = Duration::from_secs(1);

    /// For records written before `ready_after` existed.
    pub fn ready_after() -> Duration {
        READY_AFTER
    }
    pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
    pub const LOG_MAX_SIZE: u64 = 10 * 1024 * 1024;
    pub const LOG_KEEP: u32 = 3;
    /// Most rotated copies `keep` may ask for: as many as `procs logs` reads.
    pub const LOG_KEEP_MAX: u32 = 1000;
}

/// Durations as humantime text (`1m 30s`), written straight to the serializer (no
/// intermediate `String` per duration); read back with `humantime_serde`.
mod human_duration {
    use std::time::Duration;

    pub use humantime_serde::deserialize;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }
}
