//! Env files: reading one without touching the process environment, finding the
//! `env_file` entries of a mapping, and layering variables.
//!
//! Owns: the `dotenvy` reading of `.env` and every listed `env_file`, with messages that
//! name the file; where each `env_file` entry sits in the document (for locating a problem).
//! Must not: mutate the process environment (`dotenvy::from_path_iter` only), or decide the
//! layering order (the loader and validation do that).
//! Invariants: a missing or malformed file is an `Err` with a message for people, never a
//! panic; entries are returned in document order.

use std::collections::BTreeMap;
use std::path::Path;

use super::tree::Seg;

/// One string entry of an `env_file` key, with its path from the document root.
pub(crate) struct EnvFileEntry {
    pub file: String,
    pub path: Vec<Seg>,
}

/// The string entries of `env_file` in `map` (a mapping found at `base` in the document).
pub(crate) fn entries(map: &serde_json::Value, base: &[Seg]) -> Vec<EnvFileEntry> {
    use serde_json::Value as J;
    let at = |tail: Option<usize>| {
        let mut p = base.to_vec();
        p.push(Seg::Key("env_file".into()));
        p.extend(tail.map(Seg::Index));
        p
    };
    match map.get("env_file") {
        Some(J::String(s)) => vec![EnvFileEntry {
            file: s.clone(),
            path: at(None),
        }],
        Some(J::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                item.as_str().map(|s| EnvFileEntry {
                    file: s.to_owned(),
                    path: at(Some(i)),
                })
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Reads one env file without touching the process environment.
pub(crate) fn read(path: &Path) -> Result<Vec<(String, String)>, String> {
    let shown = path.display();
    let iter = dotenvy::from_path_iter(path).map_err(|e| match e {
        dotenvy::Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            format!("env file `{shown}` not found")
        }
        other => format!("cannot read env file `{shown}`: {other}"),
    })?;
    let mut out = Vec::new();
    for item in iter {
        match item {
            Ok(pair) => out.push(pair),
            Err(dotenvy::Error::LineParse(line, _)) => {
                return Err(format!("invalid line in env file `{shown}`: `{line}`"));
            }
            Err(other) => return Err(format!("cannot read env file `{shown}`: {other}")),
        }
    }
    Ok(out)
}

/// Layers `pairs` (later wins) into a map.
pub(crate) fn layer(into: &mut BTreeMap<String, String>, pairs: Vec<(String, String)>) {
    into.extend(pairs);
}
