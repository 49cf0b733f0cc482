//! The registry: `.procs/state.json`, what procs believes runs, and the pid files.
//!
//! Owns: the on-disk format (SPEC §4), its `schema_version`, loading (with repair of a
//! corrupt file) and saving (atomic, fsynced).
//! Locking rule: whoever holds `supervisor.lock` is the only writer — the supervisor for
//! its whole life, or a CLI command (`down` with no supervisor) for the duration of its
//! work. Readers never lock: atomic rename means they see an old or a new file, never a
//! torn one.
//! Trust rule: a recorded pid means nothing by itself; it is trusted only when the live
//! process has the recorded kernel start time and boot id (see [`ProcessRecord::verified`]).

pub mod atomic;
pub mod runs;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::platform;

/// Current format version. Older versions must keep loading (see `tests/data/`).
pub const SCHEMA_VERSION: u32 = 1;

/// Lifecycle states (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcState {
    Pending,
    Starting,
    Running,
    Healthy,
    Unhealthy,
    Stopping,
    Stopped,
    Exited,
    Completed,
    Backoff,
    Failed,
}

impl ProcState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Exited => "exited",
            Self::Completed => "completed",
            Self::Backoff => "backoff",
            Self::Failed => "failed",
        }
    }

    /// States in which a live process is expected.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            Self::Starting | Self::Running | Self::Healthy | Self::Unhealthy | Self::Stopping
        )
    }
}

impl fmt::Display for ProcState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The supervisor as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorRecord {
    pub pid: i32,
    pub start_time: u64,
    pub boot_id: String,
    pub socket: PathBuf,
    pub started_at: String,
}

/// One process as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub state: ProcState,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub pid: Option<i32>,
    #[serde(default)]
    pub pgid: Option<i32>,
    /// Kernel start time of `pid` (clock ticks since boot).
    #[serde(default)]
    pub start_time: Option<u64>,
    #[serde(default)]
    pub boot_id: Option<String>,
    #[serde(default)]
    pub config_hash: String,
    #[serde(default)]
    pub restarts: u32,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub signal: Option<i32>,
    #[serde(default)]
    pub ports: Vec<u16>,
    #[serde(default)]
    pub log: PathBuf,
    #[serde(default)]
    pub oneshot: bool,
    /// RFC 3339, when the current pid started.
    #[serde(default)]
    pub started_at: Option<String>,
    /// RFC 3339, last state change.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// RFC 3339, when the next restart is due (state `backoff`).
    #[serde(default)]
    pub next_restart_at: Option<String>,
    /// Whether the process has a health check or declared ports (health is tracked).
    #[serde(default)]
    pub has_health: bool,
    /// The resolved process config the pid was started with (for drift reasons and
    /// adoption after a supervisor restart).
    #[serde(default)]
    pub spec: Option<StoredSpec>,
}

/// A process config as stored in the registry: kept as the raw JSON text and parsed
/// only by the few readers that need it (drift reasons), so that loading the registry —
/// what every `procs status` does — does not build a JSON tree per process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StoredSpec(Box<serde_json::value::RawValue>);

impl StoredSpec {
    /// Store `spec` (anything serializable, normally a `config::Process`).
    pub fn new<T: Serialize + ?Sized>(spec: &T) -> Option<Self> {
        serde_json::value::to_raw_value(spec).ok().map(Self)
    }

    /// The stored config as a JSON tree.
    pub fn value(&self) -> Option<serde_json::Value> {
        serde_json::from_str(self.0.get()).ok()
    }
}

impl PartialEq for StoredSpec {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Eq for StoredSpec {}

impl ProcessRecord {
    pub fn new(state: ProcState, log: PathBuf) -> Self {
        Self {
            state,
            reason: None,
            pid: None,
            pgid: None,
            start_time: None,
            boot_id: None,
            config_hash: String::new(),
            restarts: 0,
            exit_code: None,
            signal: None,
            ports: Vec::new(),
            log,
            oneshot: false,
            started_at: None,
            updated_at: None,
            next_restart_at: None,
            has_health: false,
            spec: None,
        }
    }

    /// The recorded pid, only if the live process is the one recorded (same kernel start
    /// time, same boot). Anything else is a stale record: never signal it.
    pub fn verified(&self) -> Option<i32> {
        let pid = self.pid?;
        let start = self.start_time?;
        let boot = self.boot_id.as_deref()?;
        platform::is_alive_same(pid, start, boot).then_some(pid)
    }
}

/// The whole registry file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    pub schema_version: u32,
    pub project: String,
    pub project_dir: PathBuf,
    pub project_id: String,
    #[serde(default)]
    pub supervisor: Option<SupervisorRecord>,
    #[serde(default)]
    pub processes: BTreeMap<String, ProcessRecord>,
    /// The project cgroup the supervisor placed its processes in (cgroup mechanism).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<PathBuf>,
    /// Why the supervisor has no cgroup (lineage mechanism), as `procs doctor` says it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_cgroup: Option<String>,
    /// Descendants the supervisor saw (lineage mechanism), by process name (`""`: the
    /// project's, unattributed), each verified by its start time before use.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lineage: crate::membership::Lineage,
    /// The boot the lineage belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage_boot_id: Option<String>,
}

impl Registry {
    /// The recorded lineage, empty unless it was recorded during the current boot.
    pub fn current_lineage(&self) -> crate::membership::Lineage {
        if self.lineage_boot_id.as_deref() == Some(platform::boot_id()) {
            self.lineage.clone()
        } else {
            BTreeMap::new()
        }
    }

    pub fn new(project: &str, project_dir: &Path, project_id: &str) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            project: project.to_owned(),
            project_dir: project_dir.to_path_buf(),
            project_id: project_id.to_owned(),
            supervisor: None,
            processes: BTreeMap::new(),
            cgroup: None,
            lineage: BTreeMap::new(),
            lineage_boot_id: None,
            no_cgroup: None,
        }
    }
}

/// What loading found.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one value per load; boxing would touch every reader"
)]
pub enum Loaded {
    /// No registry yet.
    Missing,
    /// A valid registry.
    Ok(Registry),
    /// The file was corrupt; it was moved aside to `kept`.
    Corrupt { kept: PathBuf, error: String },
}

/// Read `state.json`. A corrupt file is moved aside (`state.json.corrupt-<unix time>`)
/// when `repair` is set (only the registry writer may repair) and reported, never fatal.
pub fn load(path: &Path, repair: bool) -> io::Result<Loaded> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Loaded::Missing),
        Err(err) => return Err(err),
    };
    match parse(&bytes) {
        Ok(registry) => Ok(Loaded::Ok(registry)),
        Err(error) => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let mut kept = path.as_os_str().to_owned();
            kept.push(format!(".corrupt-{stamp}"));
            let kept = PathBuf::from(kept);
            if repair {
                std::fs::rename(path, &kept)?;
            }
            Ok(Loaded::Corrupt { kept, error })
        }
    }
}

/// Parse a registry of any supported `schema_version`.
pub fn parse(bytes: &[u8]) -> Result<Registry, String> {
    /// The version alone: serde skips every other field without building it.
    #[derive(Deserialize)]
    struct Version {
        schema_version: Option<serde_json::Value>,
    }
    let too_new = |version: u64| {
        format!(
            "`schema_version` {version} is newer than this procs understands ({SCHEMA_VERSION})"
        )
    };
    // One pass in the common case; the version is looked at on its own only to explain
    // why a file does not load.
    match serde_json::from_slice::<Registry>(bytes) {
        Ok(mut registry) => {
            if registry.schema_version > SCHEMA_VERSION {
                return Err(too_new(u64::from(registry.schema_version)));
            }
            registry.schema_version = SCHEMA_VERSION;
            // A name becomes a file name (`pids/NAME.pid`): a record whose name is not a valid
            // process name (a tampered file: `/abs/path`, `..`) is dropped, never used.
            registry
                .processes
                .retain(|name, _| crate::names::is_valid(name));
            Ok(registry)
        }
        Err(err) => {
            let version: Version = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
            match version
                .schema_version
                .as_ref()
                .map(serde_json::Value::as_u64)
            {
                None | Some(None) => Err("missing `schema_version`".to_owned()),
                Some(Some(v)) if v > u64::from(SCHEMA_VERSION) => Err(too_new(v)),
                Some(Some(_)) => Err(err.to_string()),
            }
        }
    }
}

/// Write the registry atomically (temp file, fsync, rename, fsync of the directory).
pub fn save(path: &Path, registry: &Registry) -> io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(registry).map_err(io::Error::other)?;
    bytes.push(b'\n');
    atomic::write(path, &bytes, true)
}

/// Write `pids/NAME.pid` atomically; remove it when `pid` is `None`.
pub fn write_pid_file(path: &Path, pid: Option<i32>) -> io::Result<()> {
    match pid {
        Some(pid) => atomic::write(path, format!("{pid}\n").as_bytes(), false),
        None => match std::fs::remove_file(path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        },
    }
}

/// Current time as RFC 3339 (seconds).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        let mut reg = Registry::new("shop", Path::new("/x"), "abcd1234");
        let mut rec =
            ProcessRecord::new(ProcState::Running, PathBuf::from("/x/.procs/logs/db.log"));
        rec.pid = Some(42);
        reg.processes.insert("db".into(), rec);
        save(&path, &reg).expect("save");
        match load(&path, true).expect("load") {
            Loaded::Ok(back) => assert_eq!(back, reg),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn corrupt_file_is_kept_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        std::fs::write(&path, b"{\"schema_version\": 1, \"proj").expect("write");
        match load(&path, true).expect("load") {
            Loaded::Corrupt { kept, .. } => {
                assert!(kept.exists(), "corrupt copy kept");
                assert!(!path.exists(), "corrupt file moved away");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(load(&path, true).expect("load"), Loaded::Missing));
    }

    #[test]
    fn old_format_fixtures_keep_loading() {
        let reg = parse(include_bytes!("../../tests/data/registry-v1.json")).expect("v1 loads");
        assert_eq!(reg.schema_version, SCHEMA_VERSION);
        assert_eq!(reg.project, "fixture");
        assert_eq!(reg.project_id, "bb776d60");
        let sup = reg.supervisor.as_ref().expect("supervisor record");
        assert_eq!((sup.pid, sup.start_time), (999_991, 123_456));
        let web = &reg.processes["web"];
        assert_eq!(web.state, ProcState::Healthy);
        assert_eq!(
            (web.pid, web.start_time, web.restarts),
            (Some(999_992), Some(123_500), 2)
        );
        assert_eq!(web.ports, vec![18080]);
        let spec = web
            .spec
            .as_ref()
            .and_then(StoredSpec::value)
            .expect("stored spec");
        assert_eq!(spec["command"], serde_json::json!(["sleep", "60"]));
        let migrate = &reg.processes["migrate"];
        assert_eq!(
            (migrate.state, migrate.exit_code),
            (ProcState::Completed, Some(0))
        );
        assert!(migrate.oneshot);
    }

    #[test]
    fn records_with_names_that_are_not_process_names_are_dropped() {
        let text = br#"{"schema_version": 1, "project": "p", "project_dir": "/p",
            "project_id": "0123456789abcdef", "processes": {
              "web": {"state": "stopped", "log": "/p/.procs/logs/web.log"},
              "/etc/passwd": {"state": "stopped", "log": "/x"},
              "..": {"state": "stopped", "log": "/x"}}}"#;
        let reg = parse(text).expect("loads");
        assert_eq!(reg.processes.keys().collect::<Vec<_>>(), ["web"]);
    }

    #[test]
    fn newer_schema_is_refused_not_misread() {
        assert!(parse(br#"{"schema_version": 99}"#).is_err());
    }

    #[test]
    fn a_stale_pid_is_never_verified() {
        let mut rec = ProcessRecord::new(ProcState::Running, PathBuf::new());
        rec.pid = Some(std::process::id() as i32);
        rec.start_time = Some(1);
        rec.boot_id = Some(platform::boot_id().to_owned());
        assert_eq!(rec.verified(), None);
        rec.start_time = platform::start_time(std::process::id() as i32);
        assert_eq!(rec.verified(), Some(std::process::id() as i32));
        rec.boot_id = Some("another-boot".into());
        assert_eq!(rec.verified(), None);
    }
}
