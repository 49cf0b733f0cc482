//! The serde mirror of `procs.yaml`, one struct per YAML mapping, and its JSON Schema.
//!
//! Owns: the accepted *shape* of the file — key names, the alternative forms of a value
//! (`command` as a string or a list, `env` as a map or a list, …) — and the published JSON
//! Schema generated from it (`schemas/procs.schema.json`).
//! Must not: apply defaults, resolve paths or check meaning; names, conditions, signals,
//! sizes, ports and "exactly one probe" are checked by `validate/`, which records where.
//! Invariants: every struct is `deny_unknown_fields`; every per-process field is an
//! `Option` because the same struct serves `defaults:` (where nothing is required); the
//! schema nevertheless requires `command` under `processes`. Keys starting `x-` are
//! removed before deserializing (and allowed by the schema). Doc comments here become the
//! schema's descriptions, so they are written for users.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;

/// Configuration of a procs project: a stack of local processes, their dependencies,
/// health checks, ports and restart policies.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "procs.yaml", extend("patternProperties" = {"^x-": {}}))]
pub struct RawConfig {
    /// Project name. Default: the project directory's name.
    pub name: Option<String>,
    /// Env file(s) read for interpolation and for every process's environment, relative to
    /// the project directory. `.env` in the project directory is always read first when it
    /// exists; a listed file that is missing is an error.
    pub env_file: Option<StringOrList>,
    /// Environment for every process: a map `NAME: value` or a list of `NAME=value`.
    pub env: Option<RawEnv>,
    /// Default values for any per-process key, applied where a process does not set that
    /// key (key by key; nested maps such as `healthcheck` are not merged).
    #[schemars(schema_with = "defaults_schema")]
    pub defaults: Option<RawProcess>,
    /// Log rotation for every process (a process's own `logs` replaces it).
    pub logs: Option<RawLogs>,
    /// The processes of the stack, by name (`[A-Za-z0-9_.-]+`, not starting with `-`).
    #[schemars(extend("propertyNames" = {"pattern": "^[A-Za-z0-9_.][A-Za-z0-9_.-]*$"}))]
    pub processes: Option<BTreeMap<String, RawProcess>>,
}

/// One process. Every key except `command` has a default.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("required" = ["command"], "patternProperties" = {"^x-": {}}))]
#[schemars(rename = "Process")]
pub struct RawProcess {
    /// What to run: a string is run by `/bin/sh -c`; a list is an argv, run without a shell.
    pub command: Option<RawCommand>,
    /// Working directory, relative to the project directory. Default: the project directory.
    pub cwd: Option<String>,
    /// Environment of this process (wins over the top-level `env`): a map `NAME: value` or a
    /// list of `NAME=value`.
    pub env: Option<RawEnv>,
    /// Env file(s) for this process, relative to the project directory (win over the
    /// top-level `env`, lose to this process's `env`).
    pub env_file: Option<StringOrList>,
    /// Processes that must be up first: a list (condition `started`), a map
    /// `name: condition`, or `name: {condition: …}`.
    pub depends_on: Option<RawDependsOn>,
    /// How to tell the process is ready: exactly one of `exec`, `tcp`, `http`, `log`.
    /// Without one, `healthy` means every declared port accepts connections.
    pub healthcheck: Option<RawHealthcheck>,
    /// TCP ports the process listens on: `[8001]` or `[{port: 8001, host: 127.0.0.1}]`.
    pub ports: Option<Vec<RawPort>>,
    /// `no` (or `false`), `on-failure` or `always`. Default: `on-failure`, or `no` for a
    /// oneshot. An explicit stop never triggers a restart.
    pub restart: Option<RawRestart>,
    /// Delay between restarts; doubles after each consecutive failure, with jitter.
    pub backoff: Option<RawBackoff>,
    /// Consecutive failed starts (exited before `min_uptime`) before the process is
    /// `failed`. Default: 10.
    pub max_restarts: Option<u32>,
    /// A run this long resets the failure count. Default: `10s`.
    #[serde(default, deserialize_with = "bounded_duration::deserialize")]
    #[schemars(with = "Option<DurationText>")]
    pub min_uptime: Option<Duration>,
    /// A process without a health check (and without declared ports) is ready once it
    /// has stayed up this long; an exit before that is a failed start. `0s` makes it
    /// ready as soon as it is spawned. Default: `1s` (supervisord's `startsecs`).
    #[serde(default, deserialize_with = "bounded_duration::deserialize")]
    #[schemars(with = "Option<DurationText>")]
    pub ready_after: Option<Duration>,
    /// The process is expected to exit (success = an exit code in `success_exit_codes`).
    /// Default: false.
    pub oneshot: Option<bool>,
    /// The program forks away on purpose (`Type=forking`): its main process exits 0 after
    /// starting a daemon, and the process is running while that daemon lives (found through
    /// its cgroup or ancestry, or `pid_file`). Default: false.
    pub daemon: Option<bool>,
    /// Where the daemon writes its pid (relative to the project directory); only with
    /// `daemon: true`. The pid counts only if it is one of the process's members.
    pub pid_file: Option<String>,
    /// Exit codes counted as success. Default: `[0]`.
    pub success_exit_codes: Option<Vec<i32>>,
    /// Signal sent to stop the process: a name (`SIGINT`, `INT`) or a number.
    /// Default: `SIGTERM`.
    pub stop_signal: Option<RawSignal>,
    /// Grace period before SIGKILL to the whole process tree. Default: `10s`.
    #[serde(default, deserialize_with = "bounded_duration::deserialize")]
    #[schemars(with = "Option<DurationText>")]
    pub stop_timeout: Option<Duration>,
    /// Command run instead of sending `stop_signal` (the timeout and SIGKILL still apply).
    pub stop_command: Option<RawCommand>,
    /// Not started by `procs up` unless named. Default: false.
    pub disabled: Option<bool>,
    /// Log rotation for this process. Default: the top-level `logs`.
    pub logs: Option<RawLogs>,
}

/// A string, or a list of strings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "expected a path or a list of paths")]
#[schemars(rename = "StringOrList")]
pub enum StringOrList {
    One(String),
    Many(Vec<String>),
}

/// A command: a shell string or an argv list.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "expected a command string or a list of arguments"
)]
#[schemars(rename = "Command")]
pub enum RawCommand {
    /// Run by `/bin/sh -c`.
    Shell(String),
    /// Run directly, no shell (numbers and booleans are taken as written).
    Argv(Vec<Scalar>),
}

/// Environment: `{NAME: value}` or `[NAME=value]`. A name without a value (`NAME:` or
/// `NAME` in the list) takes its value from the invoking environment, if set there.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "expected a map of `NAME: value` or a list of `NAME=value` strings"
)]
#[schemars(rename = "Env")]
pub enum RawEnv {
    Map(BTreeMap<String, Option<Scalar>>),
    List(Vec<String>),
}

/// A string, number or boolean, used as a string (as written).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "expected a string, number or boolean")]
#[schemars(rename = "Scalar")]
pub enum Scalar {
    Str(String),
    Int(i64),
    UInt(u64),
    Bool(bool),
}

impl Scalar {
    /// The value as a string.
    pub fn to_text(&self) -> String {
        match self {
            Scalar::Str(s) => s.clone(),
            Scalar::Int(i) => i.to_string(),
            Scalar::UInt(u) => u.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// `depends_on`: a list of names (condition `started`) or a map `name: condition`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "expected a list of process names or a map of `name: condition`"
)]
#[schemars(rename = "DependsOn")]
pub enum RawDependsOn {
    List(Vec<String>),
    Map(BTreeMap<String, Option<RawDepSpec>>),
}

/// The condition of one dependency: `healthy`, or `{condition: healthy, restart: true}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "expected a condition (`started`, `healthy`, `completed`, `completed_successfully`) or `{condition: …}`"
)]
#[schemars(rename = "DependencySpec")]
pub enum RawDepSpec {
    Condition(#[schemars(with = "ConditionName")] String),
    Long(RawDepLong),
}

/// Long form of a dependency.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Dependency")]
pub struct RawDepLong {
    /// When the dependency counts as satisfied.
    #[schemars(with = "ConditionName")]
    pub condition: String,
    /// Restart this process after the dependency was restarted (by `procs restart`, by
    /// `procs up` with a changed config, or by its restart policy after an exit), once the
    /// dependency meets `condition` again. Default: false.
    pub restart: Option<bool>,
}

/// When a dependency counts as satisfied.
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // schema only; conditions are parsed in `validate/process.rs`
enum ConditionName {
    /// The dependency has been started.
    Started,
    /// The dependency passed its health check (or all its ports accept connections).
    Healthy,
    /// The dependency exited, whatever its exit code.
    Completed,
    /// The dependency exited with a success exit code.
    CompletedSuccessfully,
}

/// Exactly one probe (`exec`, `tcp`, `http` or `log`) and its timing.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Healthcheck")]
pub struct RawHealthcheck {
    /// Command run by `/bin/sh -c`; exit code 0 = healthy.
    pub exec: Option<String>,
    /// `PORT` or `HOST:PORT` (host default `127.0.0.1`) that must accept a TCP connection.
    pub tcp: Option<RawPortValue>,
    /// URL to GET; 2xx/3xx = healthy (or exactly `status`).
    pub http: Option<String>,
    /// With `http`: the exact status code that counts as healthy.
    pub status: Option<u16>,
    /// Regular expression; healthy once a new output line matches.
    pub log: Option<String>,
    /// Time between probes. Default: `1s`.
    #[serde(default, deserialize_with = "bounded_duration::deserialize")]
    #[schemars(with = "Option<DurationText>")]
    pub interval: Option<Duration>,
    /// Time a probe may take. Default: `1s`.
    #[serde(default, deserialize_with = "bounded_duration::deserialize")]
    #[schemars(with = "Option<DurationText>")]
    pub timeout: Option<Duration>,
    /// Consecutive failures that make a healthy process unhealthy. Default: 3.
    pub retries: Option<u32>,
    /// Time allowed to become healthy the first time. Default: `60s`.
    #[serde(default, deserialize_with = "bounded_duration::deserialize")]
    #[schemars(with = "Option<DurationText>")]
    pub start_timeout: Option<Duration>,
}

/// A port number, or a string holding one (`"8001"`, or `HOST:PORT` for `tcp`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "expected a port number (1-65535) or `HOST:PORT`"
)]
#[schemars(rename = "PortValue")]
pub enum RawPortValue {
    Number(u16),
    Text(String),
}

/// A declared port: `8001`, `"8001"` or `{port: 8001, host: 127.0.0.1}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "expected a port number (1-65535) or `{port: N, host: ADDRESS}`"
)]
#[schemars(rename = "Port")]
pub enum RawPort {
    Number(u16),
    Text(String),
    Long(RawPortLong),
}

/// Long form of a declared port.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "PortSpec")]
pub struct RawPortLong {
    /// The TCP port.
    pub port: RawPortValue,
    /// Address the process is expected to bind. Default: any.
    pub host: Option<String>,
}

/// `restart:` policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "expected `no`, `on-failure` or `always`")]
pub enum RawRestart {
    // The usual spelling first: an untagged enum tries its variants in order.
    Name(String),
    Bool(bool),
}

impl JsonSchema for RawRestart {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Restart".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "`no` (or `false`): never; `on-failure`: after a failed exit; `always`: after any exit.",
            "anyOf": [
                { "enum": ["no", "on-failure", "always"] },
                { "const": false }
            ]
        })
    }
}

/// Exponential backoff between restarts.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Backoff")]
pub struct RawBackoff {
    /// First delay. Default: `500ms`.
    #[serde(default, deserialize_with = "bounded_duration::deserialize")]
    #[schemars(with = "Option<DurationText>")]
    pub initial: Option<Duration>,
    /// Largest delay. Default: `30s`.
    #[serde(default, deserialize_with = "bounded_duration::deserialize")]
    #[schemars(with = "Option<DurationText>")]
    pub max: Option<Duration>,
}

/// A signal: a name (`SIGINT`, `INT`, case-insensitive) or a number.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "expected a signal name (`SIGINT`) or number")]
#[schemars(rename = "Signal")]
pub enum RawSignal {
    Number(i32),
    Name(String),
}

/// Size-based log rotation.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Logs")]
pub struct RawLogs {
    /// Rotate once the log passes this size: bytes, or `10MiB`, `10MB`, `512KiB`, `1GB`.
    /// Default: `10MiB`.
    pub max_size: Option<RawSize>,
    /// Rotated files kept (at most 1000). Default: 3.
    #[schemars(range(max = 1000))]
    pub keep: Option<u32>,
    /// Delete rotated copies whose newest line is older than this (`14d`). Default: never.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<DurationText>")]
    pub max_age: Option<Duration>,
    /// Gzip rotated copies (`NAME.log.1.gz` …); `procs logs` reads them. Default: false.
    pub compress: Option<bool>,
    /// Also rotate at the start of every UTC hour or day, when the log holds older lines.
    /// Default: only by size.
    pub rotate_every: Option<RawRotateEvery>,
}

/// When to rotate on a schedule.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(rename = "RotateEvery")]
pub enum RawRotateEvery {
    Hourly,
    Daily,
}

/// A size: a number of bytes, or a string such as `10MiB`, `10MB`, `512KiB`, `1GB`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "expected a size such as `10MiB`, `10MB` or a number of bytes"
)]
#[schemars(rename = "Size")]
pub enum RawSize {
    Bytes(u64),
    Text(String),
}

/// The longest duration procs accepts anywhere: a deadline must stay representable
/// (`now + duration`) on every clock it is added to.
pub const MAX_DURATION: Duration = Duration::from_hours(100 * 365 * 24);

/// humantime durations bounded by [`MAX_DURATION`]: a longer one is an invalid value
/// (with its location), never a deadline that overflows later.
pub(crate) mod bounded_duration {
    use std::time::Duration;

    use serde::de::{Error as _, Unexpected};
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        let Ok(value) = humantime::parse_duration(&text) else {
            return Err(D::Error::invalid_value(
                Unexpected::Str(&text),
                &"a duration",
            ));
        };
        if value > super::MAX_DURATION {
            return Err(D::Error::invalid_value(
                Unexpected::Str(&text),
                &"a duration of at most 100 years",
            ));
        }
        Ok(Some(value))
    }
}

/// A humantime duration.
#[derive(JsonSchema)]
#[schemars(
    description = "A duration: `500ms`, `10s`, `2m`, `1h30m`.",
    example = "500ms",
    example = "10s",
    example = "2m"
)]
#[allow(dead_code)] // schema only
struct DurationText(String);

fn defaults_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = RawProcess::json_schema(generator);
    schema.remove("required");
    schema.insert(
        "description".into(),
        "Default values for any per-process key, applied where a process does not set \
         that key (key by key; nested maps such as `healthcheck` are not merged)."
            .into(),
    );
    schema
}

/// The JSON Schema of `procs.yaml` (draft 2020-12), as checked in at
/// `schemas/procs.schema.json`.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(RawConfig);
    serde_json::to_value(schema).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/procs.schema.json");

    fn rendered() -> String {
        let mut text = serde_json::to_string_pretty(&json_schema()).unwrap();
        text.push('\n');
        text
    }

    #[test]
    fn schema_file_is_up_to_date() {
        let want = rendered();
        if std::env::var_os("PROCS_BLESS").is_some() {
            std::fs::create_dir_all(std::path::Path::new(SCHEMA_FILE).parent().unwrap()).unwrap();
            std::fs::write(SCHEMA_FILE, &want).unwrap();
            return;
        }
        let have = std::fs::read_to_string(SCHEMA_FILE).unwrap_or_default();
        assert!(
            have == want,
            "schemas/procs.schema.json is out of date with src/config/raw.rs; \
             regenerate it with `PROCS_BLESS=1 cargo test --lib schema` and commit the result"
        );
    }

    #[test]
    fn schema_requires_command_in_processes_but_not_in_defaults() {
        let s = json_schema();
        let process = &s["$defs"]["Process"];
        assert_eq!(process["required"], serde_json::json!(["command"]));
        assert!(s["properties"]["defaults"].get("required").is_none());
        assert_eq!(s["properties"]["defaults"]["additionalProperties"], false);
    }
}
