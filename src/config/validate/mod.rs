//! Stage two of loading: the JSON document → the raw serde mirror → the typed [`Config`].
//!
//! Owns: collecting *every* problem with its site, defaults (built-in, `defaults:`,
//! top-level `logs`), env layering, path resolution, and the meaning checks the raw mirror
//! cannot express (names, conditions, signals, sizes, ports, exactly one probe, unknown
//! dependencies, cycles). One concept per file:
//! - this file: the document as a whole (process names, `defaults:`, the top level,
//!   cycles);
//! - [`collect`]: the serde retry loop that finds every problem, not just the first;
//! - [`process`]: one process, `defaults:` applied;
//! - [`health`]: health checks;
//! - [`scalars`]: signals, sizes, ports;
//!
//! Must not: compute locations. A problem carries a [`Site`] (a path), built only when the
//! problem is recorded; the loader resolves it against the located tree.
//! Invariants: returns a `Config` only when no problem was found; never panics; the same
//! document always gives the same result. No submodule imports this file.

mod collect;
mod health;
mod process;
mod scalars;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value as J;

use self::collect::{Found, collect, remove};
use self::process::{Ctx, logs, with_defaults};
use super::env_file::{self, EnvFileEntry};
use super::model::{Config, LogPolicy};
use super::raw::{RawConfig, RawProcess};
use super::site::{DepAt, Locator, Site};
use super::tree::{Seg, path};
use crate::config::graph;

/// What validation needs from the loader besides the document.
pub(crate) struct Input<'a> {
    pub project_dir: &'a Path,
    pub file: PathBuf,
    pub override_file: Option<PathBuf>,
    pub invoking_env: &'a BTreeMap<String, String>,
    /// `.env` and the top-level `env_file`s, in reading order.
    pub file_env: &'a [(String, String)],
}

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
    find_nul_bytes(&json, &mut Vec::new(), &mut found);

    // Process names, and every name that exists (even if its body is broken).
    let mut names = BTreeSet::new();
    if let Some(J::Object(procs)) = json.get("processes") {
        for name in procs.keys() {
            if !crate::names::is_valid(name) {
                found.push((
                    Site::key(path(&["processes", name])),
                    format!(
                        "invalid process name `{}`: {}",
                        name.escape_debug(),
                        crate::names::RULE
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
        .map(|d| env_file::entries(d, &path(&["defaults"])))
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
            let env_files = env_file::entries(value, &base);
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
        project_dir: input.project_dir,
        invoking_env: input.invoking_env,
        names: &names,
        default_env_files: &default_env_files,
    };
    let top_logs = logs(
        raw.logs.as_ref(),
        |key| Site::value(path(&["logs", key])),
        LogPolicy::DEFAULT,
        &mut found,
    );
    let mut top_env = BTreeMap::new();
    env_file::layer(&mut top_env, input.file_env.to_vec());
    if let Some(env) = &raw.env {
        let top_site = |seg: Seg, key: bool| Site::Doc {
            path: vec![Seg::Key("env".into()), seg],
            key,
        };
        env_file::layer(&mut top_env, ctx.env(env, &top_site, &mut found));
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
/// A NUL byte can be written in YAML (`"a\0b"`) but not passed to a program, a file name or
/// an environment: every string that holds one (key or value) is an error at its place.
/// (`env:` maps and lists are checked where they are read, with the variable's name.)
fn find_nul_bytes(v: &J, at: &mut Vec<Seg>, found: &mut Found) {
    if matches!(at.last(), Some(Seg::Key(k)) if k == "env") {
        return;
    }
    match v {
        J::String(text) if text.contains('\0') => found.push((
            Site::value(at.clone()),
            "this string contains a NUL byte (`\\0`), which no command, path or \
             environment variable can hold"
                .to_owned(),
        )),
        J::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                at.push(Seg::Index(i));
                find_nul_bytes(item, at, found);
                at.pop();
            }
        }
        J::Object(map) => {
            for (key, item) in map {
                at.push(Seg::Key(key.clone()));
                if key.contains('\0') {
                    found.push((
                        Site::key(at.clone()),
                        "this key contains a NUL byte (`\\0`)".to_owned(),
                    ));
                }
                find_nul_bytes(item, at, found);
                at.pop();
            }
        }
        _ => {}
    }
}

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
