//! Stage two of loading: the JSON document → the raw serde mirror → the typed [`Config`].
//!
//! Owns: collecting *every* problem with its location, defaults (built-in, `defaults:`,
//! top-level `logs`), env layering, path resolution, and the meaning checks the raw mirror
//! cannot express (names, conditions, signals, sizes, ports, exactly one probe, unknown
//! dependencies, cycles).
//! How every problem is found: each process (and `defaults`, then the top level) is
//! deserialized from JSON with `serde_path_to_error`; on an error, the problem is recorded
//! at the path that failed, that key or item is removed, and deserialization is retried
//! until it succeeds. Removed list items are remembered so that later paths into the same
//! list still map to the right source item.
//! Must not: compute locations. A problem carries a [`Site`] (a path), built only when the
//! problem is recorded; the loader resolves it against the located tree (slow path only).
//! Invariants: returns a `Config` only when no problem was found; never panics; the same
//! document always gives the same result, whichever path produced it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value as J;

use super::load::{EnvFileEntry, env_file_entries, layer, read_env_file};
use super::model::{
    Backoff, Command, Condition, Config, Dependency, HealthCheck, LogPolicy, Port, Probe, Process,
    RestartPolicy, Signal, defaults,
};
use super::raw::{
    RawCommand, RawConfig, RawDepSpec, RawDependsOn, RawEnv, RawHealthcheck, RawLogs, RawPort,
    RawPortValue, RawProcess, RawRestart, RawSignal, RawSize, Scalar,
};
use super::site::Site;
use super::tree::{Seg, path};
use crate::graph;

/// What validation needs from the loader besides the document.
pub(crate) struct Input<'a> {
    pub project_dir: &'a Path,
    pub file: PathBuf,
    pub override_file: Option<PathBuf>,
    pub invoking_env: &'a BTreeMap<String, String>,
    /// `.env` and the top-level `env_file`s, in reading order.
    pub file_env: &'a [(String, String)],
}

type Found = Vec<(Site, String)>;

/// Validates the merged, interpolated document into a [`Config`], or every problem found.
pub(crate) fn validate(mut json: J, input: &Input<'_>) -> Result<Config, Found> {
    let mut found = Found::new();
    match &json {
        J::Null => json = J::Object(serde_json::Map::new()),
        J::Object(_) => {}
        _ => {
            found.push((
                Site::root(),
                "expected a mapping of keys at the top level".into(),
            ));
            return Err(found);
        }
    }
    strip_extension_keys(&mut json);

    // Process names, and every name that exists (even if its body is broken).
    let mut names = BTreeSet::new();
    if let Some(J::Object(procs)) = json.get("processes") {
        for name in procs.keys() {
            if !valid_name(name) {
                found.push((
                    Site::key(path(&["processes", name])),
                    format!(
                        "invalid process name `{name}`: use letters, digits, `_`, `.` and `-`, \
                         not starting with `-`"
                    ),
                ));
            } else if name == "procs" {
                // `logs/procs.log` is the supervisor's own log.
                found.push((
                    Site::key(path(&["processes", name])),
                    "the process name `procs` is reserved (its log would be the supervisor's \
                     `logs/procs.log`); choose another name"
                        .to_owned(),
                ));
            }
            names.insert(name.clone());
        }
    }

    // Stage 1: raw mirror, every error collected. What was collected on its own is then
    // taken out, so the top level does not deserialize it again; what failed as a whole
    // stays, and the top level reports it again (as a wrong type for that key).
    let mut defaults_raw = RawProcess::default();
    let default_env_files = json
        .get("defaults")
        .map(|d| env_file_entries(d, &path(&["defaults"])))
        .unwrap_or_default();
    if let Some(v) = json.get_mut("defaults").filter(|v| !v.is_null())
        && let Some(d) = collect::<RawProcess>(v, &path(&["defaults"]), &mut found)
    {
        defaults_raw = d;
        remove(&mut json, &path(&["defaults"]));
    }
    // Each process with its own `env_file` entries (read from the document before stage 1
    // may remove a broken item) and whether stage 1 already reported something in it.
    let mut raw_procs: BTreeMap<String, (RawProcess, Vec<EnvFileEntry>, bool)> = BTreeMap::new();
    if let Some(J::Object(procs)) = json.get_mut("processes") {
        for (name, value) in procs.iter_mut() {
            if value.is_null() {
                *value = J::Object(serde_json::Map::new());
            }
            let base = path(&["processes", name]);
            let env_files = env_file_entries(value, &base);
            let before = found.len();
            if let Some(p) = collect::<RawProcess>(value, &base, &mut found) {
                raw_procs.insert(name.clone(), (p, env_files, found.len() > before));
            }
        }
        procs.retain(|name, _| !raw_procs.contains_key(name));
    }
    let Some(raw) = collect::<RawConfig>(&mut json, &[], &mut found) else {
        return Err(found);
    };

    // Stage 2: meaning.
    let name = match &raw.name {
        Some(n) if n.trim().is_empty() => {
            found.push((Site::value(path(&["name"])), "`name` is empty".into()));
            String::new()
        }
        Some(n) => n.clone(),
        None => input
            .project_dir
            .file_name()
            .map_or_else(|| "procs".to_owned(), |n| n.to_string_lossy().into_owned()),
    };
    let ctx = Ctx {
        input,
        names: &names,
        default_env_files: &default_env_files,
    };
    let top_logs = logs(
        raw.logs.as_ref(),
        || Site::value(path(&["logs", "max_size"])),
        LogPolicy {
            max_size: defaults::LOG_MAX_SIZE,
            keep: defaults::LOG_KEEP,
        },
        &mut found,
    );
    let mut top_env = BTreeMap::new();
    layer(&mut top_env, input.file_env.to_vec());
    if let Some(env) = &raw.env {
        let top_site = |seg: Seg, key: bool| Site::Doc {
            path: vec![Seg::Key("env".into()), seg],
            key,
        };
        layer(&mut top_env, ctx.env(env, &top_site, &mut found));
    }

    let mut processes = BTreeMap::new();
    let mut dep_sites: HashMap<(String, String), DepAt> = HashMap::new();
    for (pname, (p, env_files, had_errors)) in raw_procs {
        let merged = with_defaults(p, &defaults_raw);
        let at = Locator {
            name: &pname,
            // A missing `command` after stage-1 errors is most likely a misspelt `command`,
            // already reported as an unknown key.
            quiet_missing_command: had_errors,
        };
        if let Some(process) = ctx.process(
            &merged,
            &env_files,
            &at,
            &top_env,
            top_logs,
            &mut dep_sites,
            &mut found,
        ) {
            processes.insert(pname, process);
        }
    }
    let config = Config {
        name,
        project_dir: input.project_dir.to_path_buf(),
        file: input.file.clone(),
        override_file: input.override_file.clone(),
        processes,
    };
    for cycle in graph::find_cycles(&config) {
        let at = cycle
            .get(1)
            .and_then(|second| {
                let dep = dep_sites.get(&(cycle[0].clone(), second.clone()))?;
                Some(dep.site(&cycle[0], second))
            })
            .unwrap_or_else(Site::root);
        found.push((at, format!("dependency cycle: {}", cycle.join(" -> "))));
    }
    if found.is_empty() {
        Ok(config)
    } else {
        Err(found)
    }
}

/// Drops `x-` keys at the top level, in `defaults` and in each process.
fn strip_extension_keys(json: &mut J) {
    fn strip(v: &mut J) {
        if let J::Object(m) = v {
            m.retain(|k, _| !k.starts_with("x-"));
        }
    }
    strip(json);
    if let Some(d) = json.get_mut("defaults") {
        strip(d);
    }
    if let Some(J::Object(procs)) = json.get_mut("processes") {
        procs.values_mut().for_each(strip);
    }
}

/// `[A-Za-z0-9_.-]+`, not starting with `-`.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Deserializes `value` as `T`, recording every error (located under `base`) and removing
/// the offending node until deserialization succeeds. `None` if the value itself is wrong.
fn collect<T: DeserializeOwned>(value: &mut J, base: &[Seg], found: &mut Found) -> Option<T> {
    // The happy path without path tracking (same acceptance; only the errors need paths).
    if let Ok(v) = T::deserialize(&*value) {
        return Some(v);
    }
    // Removed list items, in original coordinates, to map later paths back to the source.
    let mut removed: Vec<Vec<Seg>> = Vec::new();
    for _ in 0..1000 {
        let err = match serde_path_to_error::deserialize::<_, T>(&*value) {
            Ok(v) => return Some(v),
            Err(e) => e,
        };
        let mut current: Vec<Seg> = Vec::new();
        for seg in err.path() {
            match seg {
                serde_path_to_error::Segment::Map { key } => current.push(Seg::Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => current.push(Seg::Index(*index)),
                _ => break,
            }
        }
        let original = to_original(&current, &removed);
        let mut full = base.to_vec();
        full.extend(original.iter().cloned());
        let message = err.inner().to_string();
        let at_value = pointer(value, &current).cloned();
        let (text, on_key) = describe(&message, &original, at_value.as_ref());
        found.push((
            Site::Doc {
                path: full,
                key: on_key,
            },
            text,
        ));
        if current.is_empty() || !remove(value, &current) {
            return None;
        }
        if matches!(original.last(), Some(Seg::Index(_))) {
            removed.push(original);
        }
    }
    None
}

fn to_original(current: &[Seg], removed: &[Vec<Seg>]) -> Vec<Seg> {
    let mut out: Vec<Seg> = Vec::with_capacity(current.len());
    for seg in current {
        match seg {
            Seg::Index(i) => {
                let mut gone: Vec<usize> = removed
                    .iter()
                    .filter(|r| r.len() == out.len() + 1 && r[..out.len()] == out[..])
                    .filter_map(|r| match r.last() {
                        Some(Seg::Index(j)) => Some(*j),
                        _ => None,
                    })
                    .collect();
                gone.sort_unstable();
                let mut idx = *i;
                for g in gone {
                    if g <= idx {
                        idx += 1;
                    }
                }
                out.push(Seg::Index(idx));
            }
            Seg::Key(_) => out.push(seg.clone()),
        }
    }
    out
}

fn pointer<'a>(value: &'a J, p: &[Seg]) -> Option<&'a J> {
    p.iter().try_fold(value, |v, seg| match seg {
        Seg::Key(k) => v.get(k),
        Seg::Index(i) => v.get(*i),
    })
}

fn remove(value: &mut J, p: &[Seg]) -> bool {
    let Some((last, parent)) = p.split_last() else {
        return false;
    };
    let mut cur = value;
    for seg in parent {
        let next = match seg {
            Seg::Key(k) => cur.get_mut(k),
            Seg::Index(i) => cur.get_mut(*i),
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    match (last, cur) {
        (Seg::Key(k), J::Object(m)) => m.remove(k).is_some(),
        (Seg::Index(i), J::Array(a)) if *i < a.len() => {
            a.remove(*i);
            true
        }
        _ => false,
    }
}

fn field_name(p: &[Seg]) -> String {
    let mut s = String::new();
    for seg in p {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => {
                let _ = write!(s, "[{i}]");
            }
        }
    }
    s
}

/// Turns a serde message into ours; `true` when the problem is about the key itself.
fn describe(message: &str, p: &[Seg], value: Option<&J>) -> (String, bool) {
    let field = field_name(p);
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (name, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let candidates: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
        let mut text = format!("unknown key `{name}`");
        if let Some(s) = suggest(name, &candidates) {
            {
                let _ = write!(text, ", did you mean `{s}`?");
            };
        }
        return (text, true);
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        let where_ = if field.is_empty() {
            String::new()
        } else {
            format!(" in `{field}`")
        };
        return (format!("missing key {rest}{where_}"), false);
    }
    if message.ends_with("expected a duration")
        && let Some(J::String(s)) = value
    {
        {
            let why = humantime::parse_duration(s)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            return (
                format!("invalid duration `{s}` for `{field}`: {why} (e.g. `500ms`, `10s`, `2m`)"),
                false,
            );
        }
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((found, expected)) = rest.rsplit_once(", expected ")
        {
            {
                let kind = if prefix.starts_with("invalid type") {
                    "wrong type"
                } else {
                    "invalid value"
                };
                return (
                    format!(
                        "{kind} for `{field}`: expected {}, found {}",
                        expected_text(expected),
                        found_text(found)
                    ),
                    false,
                );
            }
        }
    }
    if let Some(rest) = message.strip_prefix("expected ") {
        return (format!("invalid `{field}`: expected {rest}"), false);
    }
    if field.is_empty() {
        (message.to_owned(), false)
    } else {
        (format!("invalid `{field}`: {message}"), false)
    }
}

fn expected_text(e: &str) -> String {
    match e {
        "u8" => "an integer from 0 to 255".into(),
        "u16" => "an integer from 0 to 65535".into(),
        "u32" | "u64" => "a non-negative integer".into(),
        "i32" | "i64" => "an integer".into(),
        "a sequence" => "a list".into(),
        "a map" => "a mapping".into(),
        s if s.starts_with("struct ") => "a mapping".into(),
        s => s.to_owned(),
    }
}

fn found_text(f: &str) -> String {
    match f {
        "unit value" | "null" => "nothing".into(),
        "map" => "a mapping".into(),
        "sequence" => "a list".into(),
        s => s.replace('"', "`"),
    }
}

/// The closest candidate, if it is close enough to be what was meant.
pub(crate) fn suggest<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(input, c), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn with_defaults(p: RawProcess, d: &RawProcess) -> RawProcess {
    RawProcess {
        command: p.command.or_else(|| d.command.clone()),
        cwd: p.cwd.or_else(|| d.cwd.clone()),
        env: p.env.or_else(|| d.env.clone()),
        env_file: p.env_file.or_else(|| d.env_file.clone()),
        depends_on: p.depends_on.or_else(|| d.depends_on.clone()),
        healthcheck: p.healthcheck.or_else(|| d.healthcheck.clone()),
        ports: p.ports.or_else(|| d.ports.clone()),
        restart: p.restart.or_else(|| d.restart.clone()),
        backoff: p.backoff.or_else(|| d.backoff.clone()),
        max_restarts: p.max_restarts.or(d.max_restarts),
        min_uptime: p.min_uptime.or(d.min_uptime),
        oneshot: p.oneshot.or(d.oneshot),
        success_exit_codes: p
            .success_exit_codes
            .or_else(|| d.success_exit_codes.clone()),
        stop_signal: p.stop_signal.or_else(|| d.stop_signal.clone()),
        stop_timeout: p.stop_timeout.or(d.stop_timeout),
        stop_command: p.stop_command.or_else(|| d.stop_command.clone()),
        disabled: p.disabled.or(d.disabled),
        logs: p.logs.or_else(|| d.logs.clone()),
    }
}

/// Sites for one process: its own key when it set it, else the `defaults:` key (decided
/// only when a problem's site is resolved, see [`Site::Process`]).
struct Locator<'a> {
    name: &'a str,
    quiet_missing_command: bool,
}

impl Locator<'_> {
    fn seg(&self, rel: Vec<Seg>, key: bool) -> Site {
        Site::Process {
            name: self.name.to_owned(),
            rel,
            key,
        }
    }
    fn value(&self, rel: &[&str]) -> Site {
        self.seg(path(rel), false)
    }
    fn key(&self, rel: &[&str]) -> Site {
        self.seg(path(rel), true)
    }
}

/// Where a dependency is named in its process's `depends_on`: a list item or a map key.
#[derive(Debug, Clone, Copy)]
enum DepAt {
    Item(usize),
    Key,
}

impl DepAt {
    fn site(self, process: &str, dep: &str) -> Site {
        let (last, key) = match self {
            DepAt::Item(i) => (Seg::Index(i), false),
            DepAt::Key => (Seg::Key(dep.to_owned()), true),
        };
        Site::Process {
            name: process.to_owned(),
            rel: vec![Seg::Key("depends_on".into()), last],
            key,
        }
    }
}

struct Ctx<'a> {
    input: &'a Input<'a>,
    names: &'a BTreeSet<String>,
    /// `defaults.env_file`, used by processes that have none of their own.
    default_env_files: &'a [EnvFileEntry],
}

impl Ctx<'_> {
    #[allow(clippy::too_many_arguments)]
    fn process(
        &self,
        p: &RawProcess,
        env_files: &[EnvFileEntry],
        at: &Locator<'_>,
        top_env: &BTreeMap<String, String>,
        top_logs: LogPolicy,
        dep_sites: &mut HashMap<(String, String), DepAt>,
        found: &mut Found,
    ) -> Option<Process> {
        let name = at.name;
        let before = found.len();
        let command = match &p.command {
            None if at.quiet_missing_command => None,
            None => {
                found.push((
                    Site::key(path(&["processes", name])),
                    format!("process `{name}` has no `command`"),
                ));
                None
            }
            Some(c) => to_command(c, "command", at, found),
        };
        let stop_command = p
            .stop_command
            .as_ref()
            .and_then(|c| to_command(c, "stop_command", at, found));
        let cwd = match &p.cwd {
            None => self.input.project_dir.to_path_buf(),
            Some(dir) => {
                let full = self.input.project_dir.join(dir);
                match full.canonicalize() {
                    Ok(c) if c.is_dir() => c,
                    Ok(_) => {
                        found.push((
                            at.value(&["cwd"]),
                            format!("`cwd` `{dir}` is not a directory"),
                        ));
                        full
                    }
                    Err(_) => {
                        found.push((
                            at.value(&["cwd"]),
                            format!("`cwd` directory `{dir}` does not exist"),
                        ));
                        full
                    }
                }
            }
        };
        let mut env = top_env.clone();
        // The process's own `env_file`s, or else those of `defaults:`.
        if p.env_file.is_some() {
            let entries = if env_files.is_empty() {
                self.default_env_files
            } else {
                env_files
            };
            for entry in entries {
                match read_env_file(&self.input.project_dir.join(&entry.file)) {
                    Ok(vars) => layer(&mut env, vars),
                    Err(m) => found.push((Site::value(entry.path.clone()), m)),
                }
            }
        }
        if let Some(e) = &p.env {
            let site = |seg: Seg, key: bool| at.seg(vec![Seg::Key("env".into()), seg], key);
            layer(&mut env, self.env(e, &site, found));
        }
        let depends_on = self.depends_on(p.depends_on.as_ref(), at, dep_sites, found);
        let healthcheck = p
            .healthcheck
            .as_ref()
            .and_then(|h| healthcheck(h, at, found));
        let ports = p
            .ports
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, port)| {
                parse_port(port)
                    .map_err(|m| {
                        let site = at.seg(vec![Seg::Key("ports".into()), Seg::Index(i)], false);
                        found.push((site, m));
                    })
                    .ok()
            })
            .collect();
        let oneshot = p.oneshot.unwrap_or(false);
        let restart = match &p.restart {
            None if oneshot => RestartPolicy::No,
            None => RestartPolicy::OnFailure,
            Some(r) => restart(r, at, found),
        };
        let backoff = Backoff {
            initial: p
                .backoff
                .as_ref()
                .and_then(|b| b.initial)
                .unwrap_or(defaults::BACKOFF_INITIAL),
            max: p
                .backoff
                .as_ref()
                .and_then(|b| b.max)
                .unwrap_or(defaults::BACKOFF_MAX),
        };
        if backoff.max < backoff.initial {
            found.push((
                at.value(&["backoff"]),
                format!(
                    "backoff `max` ({}) is shorter than `initial` ({})",
                    humantime::format_duration(backoff.max),
                    humantime::format_duration(backoff.initial)
                ),
            ));
        }
        let success_exit_codes = p.success_exit_codes.clone().unwrap_or_else(|| vec![0]);
        if success_exit_codes.is_empty() {
            found.push((
                at.value(&["success_exit_codes"]),
                "`success_exit_codes` is empty".into(),
            ));
        }
        let stop_signal = match &p.stop_signal {
            None => Signal {
                number: crate::platform::Signal::TERM.number(),
                name: "SIGTERM".into(),
            },
            Some(s) => parse_signal(s).unwrap_or_else(|m| {
                found.push((at.value(&["stop_signal"]), m));
                Signal {
                    number: 0,
                    name: String::new(),
                }
            }),
        };
        let logs = match &p.logs {
            None => top_logs,
            Some(l) => logs(Some(l), || at.value(&["logs", "max_size"]), top_logs, found),
        };
        if found.len() > before || command.is_none() {
            return None;
        }
        Some(Process {
            name: name.to_owned(),
            command: command?,
            cwd,
            env,
            depends_on,
            healthcheck,
            ports,
            restart,
            backoff,
            max_restarts: p.max_restarts.unwrap_or(defaults::MAX_RESTARTS),
            min_uptime: p.min_uptime.unwrap_or(defaults::MIN_UPTIME),
            oneshot,
            success_exit_codes,
            stop_signal,
            stop_timeout: p.stop_timeout.unwrap_or(defaults::STOP_TIMEOUT),
            stop_command,
            disabled: p.disabled.unwrap_or(false),
            logs,
        })
    }

    /// The variables of one `env`; `site(step, key)` places a problem at one of its entries.
    fn env(
        &self,
        env: &RawEnv,
        site: &dyn Fn(Seg, bool) -> Site,
        found: &mut Found,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut push = |key: &str, value: Option<String>, at: &dyn Fn() -> Site| {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                found.push((at(), format!("invalid environment variable name `{key}`")));
                return;
            }
            let value = value.or_else(|| self.input.invoking_env.get(key).cloned());
            if let Some(v) = value {
                if v.contains('\0') {
                    found.push((at(), format!("the value of `{key}` contains a NUL byte")));
                } else {
                    out.push((key.to_owned(), v));
                }
            }
        };
        match env {
            RawEnv::Map(map) => {
                for (k, v) in map {
                    let value = v.as_ref().map(Scalar::to_text);
                    push(k, value, &|| site(Seg::Key(k.clone()), true));
                }
            }
            RawEnv::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    let at = || site(Seg::Index(i), false);
                    match item.split_once('=') {
                        Some((k, v)) => push(k, Some(v.to_owned()), &at),
                        None => push(item, None, &at),
                    }
                }
            }
        }
        out
    }

    fn depends_on(
        &self,
        deps: Option<&RawDependsOn>,
        at: &Locator<'_>,
        dep_sites: &mut HashMap<(String, String), DepAt>,
        found: &mut Found,
    ) -> Vec<Dependency> {
        let name = at.name;
        // (dependency, condition, where it is named, whether the condition is `{condition:}`)
        let entries: Vec<(&String, Option<&String>, DepAt, bool)> = match deps {
            None => Vec::new(),
            Some(RawDependsOn::List(items)) => items
                .iter()
                .enumerate()
                .map(|(i, d)| (d, None, DepAt::Item(i), false))
                .collect(),
            Some(RawDependsOn::Map(map)) => map
                .iter()
                .map(|(d, spec)| match spec {
                    None => (d, None, DepAt::Key, false),
                    Some(RawDepSpec::Condition(c)) => (d, Some(c), DepAt::Key, false),
                    Some(RawDepSpec::Long(l)) => (d, Some(&l.condition), DepAt::Key, true),
                })
                .collect(),
        };
        let mut out: Vec<Dependency> = Vec::new();
        for (dep, condition, dep_at, long) in entries {
            if !self.names.contains(dep) {
                let known: Vec<&str> = self.names.iter().map(String::as_str).collect();
                let mut m = format!("`{name}` depends on `{dep}`, which is not a defined process");
                if let Some(s) = suggest(dep, &known) {
                    let _ = write!(m, "; did you mean `{s}`?");
                }
                found.push((dep_at.site(name, dep), m));
                continue;
            }
            let c = condition.map_or("started", String::as_str);
            let Some(condition) = parse_condition(c) else {
                let all = ["started", "healthy", "completed", "completed_successfully"];
                let mut m = format!("unknown condition `{c}`");
                match suggest(c, &all) {
                    Some(s) => {
                        let _ = write!(m, ", did you mean `{s}`?");
                    }
                    None => {
                        let _ = write!(m, ", expected one of `{}`", all.join("`, `"));
                    }
                }
                let mut rel = vec![Seg::Key("depends_on".into()), Seg::Key(dep.clone())];
                if long {
                    rel.push(Seg::Key("condition".into()));
                }
                found.push((at.seg(rel, false), m));
                continue;
            };
            dep_sites
                .entry((name.to_owned(), dep.clone()))
                .or_insert(dep_at);
            if let Some(existing) = out.iter_mut().find(|d| &d.name == dep) {
                existing.condition = condition;
            } else {
                out.push(Dependency {
                    name: dep.clone(),
                    condition,
                });
            }
        }
        out
    }
}

/// `site` places a problem at `max_size`.
fn logs(
    raw: Option<&RawLogs>,
    site: impl Fn() -> Site,
    base: LogPolicy,
    found: &mut Found,
) -> LogPolicy {
    let Some(raw) = raw else { return base };
    let max_size = match &raw.max_size {
        None => base.max_size,
        Some(s) => match parse_size(s) {
            Ok(0) => {
                found.push((site(), "`max_size` must be greater than 0".into()));
                base.max_size
            }
            Ok(n) => n,
            Err(m) => {
                found.push((site(), m));
                base.max_size
            }
        },
    };
    LogPolicy {
        max_size,
        keep: raw.keep.unwrap_or(base.keep),
    }
}

fn to_command(c: &RawCommand, key: &str, at: &Locator<'_>, found: &mut Found) -> Option<Command> {
    match c {
        RawCommand::Shell(s) if s.trim().is_empty() => {
            found.push((at.value(&[key]), format!("`{key}` is empty")));
            None
        }
        RawCommand::Argv(v) if v.first().is_none_or(|s| s.to_text().is_empty()) => {
            found.push((
                at.value(&[key]),
                format!("`{key}` needs a program as its first item"),
            ));
            None
        }
        RawCommand::Shell(s) => Some(Command::Shell(s.clone())),
        RawCommand::Argv(v) => Some(Command::Argv(v.iter().map(Scalar::to_text).collect())),
    }
}

fn parse_condition(c: &str) -> Option<Condition> {
    Some(match c {
        "started" => Condition::Started,
        "healthy" => Condition::Healthy,
        "completed" => Condition::Completed,
        "completed_successfully" => Condition::CompletedSuccessfully,
        _ => return None,
    })
}

fn healthcheck(h: &RawHealthcheck, at: &Locator<'_>, found: &mut Found) -> Option<HealthCheck> {
    let set: Vec<&str> = [
        ("exec", h.exec.is_some()),
        ("tcp", h.tcp.is_some()),
        ("http", h.http.is_some()),
        ("log", h.log.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, on)| on.then_some(k))
    .collect();
    let before = found.len();
    if set.is_empty() {
        found.push((
            at.key(&["healthcheck"]),
            "`healthcheck` needs exactly one probe: `exec`, `tcp`, `http` or `log`".into(),
        ));
    } else if set.len() > 1 {
        found.push((
            at.key(&["healthcheck", set[1]]),
            format!(
                "`healthcheck` has more than one probe (`{}`); use exactly one",
                set.join("`, `")
            ),
        ));
    }
    if h.status.is_some() && h.http.is_none() {
        found.push((
            at.key(&["healthcheck", "status"]),
            "`status` only applies to an `http` probe".into(),
        ));
    }
    let probe = if let Some(cmd) = &h.exec {
        if cmd.trim().is_empty() {
            found.push((at.value(&["healthcheck", "exec"]), "`exec` is empty".into()));
        }
        Probe::Exec(cmd.clone())
    } else if let Some(t) = &h.tcp {
        let (host, port) = match t {
            RawPortValue::Number(p) => ("127.0.0.1".to_owned(), *p),
            RawPortValue::Text(s) => match s.rsplit_once(':') {
                Some((host, port)) => {
                    let host = host.trim_start_matches('[').trim_end_matches(']');
                    let host = if host.is_empty() { "127.0.0.1" } else { host };
                    (host.to_owned(), port_number(port).unwrap_or(0))
                }
                None => ("127.0.0.1".to_owned(), port_number(s).unwrap_or(0)),
            },
        };
        if port == 0 {
            found.push((
                at.value(&["healthcheck", "tcp"]),
                "`tcp` must be `PORT` or `HOST:PORT` with a port from 1 to 65535".into(),
            ));
        }
        Probe::Tcp { host, port }
    } else if let Some(url) = &h.http {
        if url.starts_with("https://") {
            found.push((
                at.value(&["healthcheck", "http"]),
                format!(
                    "the `http` probe speaks plain HTTP; for `{url}` use `exec: curl -fsS {url}`"
                ),
            ));
        } else if !url.starts_with("http://") {
            found.push((
                at.value(&["healthcheck", "http"]),
                format!("`http` must be an `http://` URL, found `{url}`"),
            ));
        }
        Probe::Http {
            url: url.clone(),
            status: h.status,
        }
    } else if let Some(re) = &h.log {
        if let Err(err) = regex::Regex::new(re) {
            found.push((
                at.value(&["healthcheck", "log"]),
                format!(
                    "`log` is not a valid regular expression: {}",
                    err.to_string().lines().last().unwrap_or_default()
                ),
            ));
        }
        Probe::Log(re.clone())
    } else {
        return None;
    };
    (found.len() == before).then(|| HealthCheck {
        probe,
        interval: h.interval.unwrap_or(defaults::INTERVAL),
        timeout: h.timeout.unwrap_or(defaults::TIMEOUT),
        retries: h.retries.unwrap_or(defaults::RETRIES),
        start_timeout: h.start_timeout.unwrap_or(defaults::START_TIMEOUT),
    })
}

fn port_number(s: &str) -> Option<u16> {
    s.trim().parse::<u16>().ok().filter(|p| *p != 0)
}

fn parse_port(port: &RawPort) -> Result<Port, String> {
    let (number, host) = match port {
        RawPort::Number(n) => (Some(*n).filter(|p| *p != 0), None),
        RawPort::Text(s) => (port_number(s), None),
        RawPort::Long(l) => (
            match &l.port {
                RawPortValue::Number(n) => Some(*n).filter(|p| *p != 0),
                RawPortValue::Text(s) => port_number(s),
            },
            l.host.clone(),
        ),
    };
    match number {
        Some(port) => Ok(Port { port, host }),
        None => Err("invalid port: expected a number from 1 to 65535".into()),
    }
}

fn restart(r: &RawRestart, at: &Locator<'_>, found: &mut Found) -> RestartPolicy {
    let all = ["no", "on-failure", "always"];
    match r {
        RawRestart::Bool(false) => RestartPolicy::No,
        RawRestart::Bool(true) => {
            found.push((
                at.value(&["restart"]),
                "`restart: true` is ambiguous; use `on-failure` or `always`".into(),
            ));
            RestartPolicy::OnFailure
        }
        RawRestart::Name(n) => match n.as_str() {
            "no" => RestartPolicy::No,
            "on-failure" => RestartPolicy::OnFailure,
            "always" => RestartPolicy::Always,
            other => {
                let mut m = format!("unknown restart policy `{other}`");
                match suggest(other, &all) {
                    Some(s) => {
                        let _ = write!(m, ", did you mean `{s}`?");
                    }
                    None => m.push_str(", expected `no`, `on-failure` or `always`"),
                }
                found.push((at.value(&["restart"]), m));
                RestartPolicy::OnFailure
            }
        },
    }
}

/// Parses `SIGINT`, `INT`, `sigint` or a number into a signal with its canonical name.
pub(crate) fn parse_signal(s: &RawSignal) -> Result<Signal, String> {
    use crate::platform::Signal as OsSignal;
    let sig = match s {
        RawSignal::Number(n) => {
            OsSignal::from_number(*n).ok_or_else(|| format!("unknown signal number `{n}`"))?
        }
        RawSignal::Name(name) => {
            let upper = name.trim().to_ascii_uppercase();
            let full = if upper.starts_with("SIG") {
                upper
            } else {
                format!("SIG{upper}")
            };
            OsSignal::parse(&full).ok_or_else(|| {
                let names: Vec<&str> = OsSignal::all().map(OsSignal::name).collect();
                let mut m = format!("unknown signal `{name}`");
                if let Some(s) = suggest(&full, &names) {
                    {
                        let _ = write!(m, ", did you mean `{s}`?");
                    };
                }
                m
            })?
        }
    };
    Ok(Signal {
        number: sig.number(),
        name: sig.name().to_owned(),
    })
}

/// Parses `10MiB`, `10MB`, `512KiB`, `1GB`, `100B` or a plain number of bytes.
pub(crate) fn parse_size(s: &RawSize) -> Result<u64, String> {
    let text = match s {
        RawSize::Bytes(n) => return Ok(*n),
        RawSize::Text(t) => t.trim(),
    };
    let bad = || {
        format!(
            "invalid size `{text}`: expected bytes or a number with a unit such as `10MiB`, `10MB`, `512KiB`"
        )
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let factor: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" | "ki" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" | "mi" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" | "gi" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" | "ti" => 1 << 40,
        _ => return Err(bad()),
    };
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(factor).ok_or_else(bad);
    }
    let f: f64 = num.parse().map_err(|_| bad())?;
    let bytes = (f * factor as f64).round();
    if !bytes.is_finite() || bytes < 0.0 || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}
