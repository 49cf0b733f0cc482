//! Reconciliation, as pure functions: the config hash of a process, the field-level
//! reasons two versions differ, and the plan `up` would carry out.
//!
//! Shared by the supervisor (which acts on it) and `procs up --dry-run` (which prints
//! it). The hash covers everything procs passes to a process — command, cwd, declared
//! env including env-file contents, ports, checks, policies — and nothing of the
//! ambient environment, which is not part of `Process`.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::config::{Config, Process};
use crate::registry::{ProcState, Registry, StoredSpec};

/// Keys of a process that the supervisor applies itself, never the process: a change to
/// them restarts nothing (`logs`: the rotation follows the new policy at once).
const APPLIED_BY_THE_SUPERVISOR: [&str; 1] = ["logs"];

/// `spec` as JSON without the keys the supervisor applies itself.
fn hashed_part(mut value: serde_json::Value) -> serde_json::Value {
    if let serde_json::Value::Object(map) = &mut value {
        for key in APPLIED_BY_THE_SUPERVISOR {
            map.remove(key);
        }
    }
    value
}

/// Stable hash of everything procs passes to a process (not the log policy, which only
/// the supervisor uses).
pub fn config_hash(spec: &Process) -> String {
    let value = serde_json::to_value(spec)
        .map(hashed_part)
        .unwrap_or_default();
    let bytes = serde_json::to_vec(&value).unwrap_or_default();
    format!("{:016x}", crate::paths::fnv1a(&bytes))
}

/// Does `spec` (whose config hash is `hash`) run as the process recorded with `old_hash`
/// (and, where known, its spec `old`, parsed only when the hashes differ) did? The same
/// hash, or — for a hash written by a version that also hashed `logs` — the same spec but
/// for what the supervisor applies itself.
fn unchanged(
    old_hash: &str,
    old: impl FnOnce() -> Option<serde_json::Value>,
    spec: &Process,
    hash: &str,
) -> bool {
    old_hash == hash
        || old().is_some_and(|old| {
            serde_json::to_value(spec).is_ok_and(|new| hashed_part(old) == hashed_part(new))
        })
}

/// Field-level reasons why `new` differs from `old` (`env.COLOR changed`).
pub fn diff_reasons(old: &serde_json::Value, new: &Process) -> Vec<String> {
    let (serde_json::Value::Object(before), Ok(serde_json::Value::Object(after))) =
        (old, serde_json::to_value(new))
    else {
        return vec!["config changed".to_owned()];
    };
    let mut reasons = Vec::new();
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for key in keys {
        let (old_value, new_value) = (before.get(key), after.get(key));
        if old_value == new_value || APPLIED_BY_THE_SUPERVISOR.contains(&key.as_str()) {
            continue;
        }
        if key == "env"
            && let (
                Some(serde_json::Value::Object(old_env)),
                Some(serde_json::Value::Object(new_env)),
            ) = (old_value, new_value)
        {
            let names: BTreeSet<&String> = old_env.keys().chain(new_env.keys()).collect();
            for name in names {
                match (old_env.get(name), new_env.get(name)) {
                    (Some(p), Some(q)) if p != q => reasons.push(format!("env.{name} changed")),
                    (None, Some(_)) => reasons.push(format!("env.{name} added")),
                    (Some(_), None) => reasons.push(format!("env.{name} removed")),
                    _ => {}
                }
            }
        } else {
            reasons.push(format!("{key} changed"));
        }
    }
    if reasons.is_empty() {
        reasons.push("config changed".to_owned());
    }
    reasons
}

/// What `up NAMES…` starts: the named processes (all that are not `disabled` when none
/// is named) plus, unless `no_deps`, everything they depend on. Computed once, here, for
/// the supervisor and for `up --dry-run`.
pub fn selection(
    config: &Config,
    graph: &crate::config::graph::Graph,
    names: &[String],
    no_deps: bool,
) -> BTreeSet<String> {
    let chosen: BTreeSet<String> = if names.is_empty() {
        config
            .processes
            .values()
            .filter(|p| !p.disabled)
            .map(|p| p.name.clone())
            .collect()
    } else {
        names.iter().cloned().collect()
    };
    if no_deps {
        return chosen;
    }
    let chosen: Vec<String> = chosen.into_iter().collect();
    graph.closure(&chosen)
}

/// One line of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    pub name: String,
    /// `start`, `restart`, `stop`, `keep` or `skip`.
    pub action: &'static str,
    pub reasons: Vec<String>,
}

/// What `up` would do, given the registry as it is (records already verified by the
/// caller: `live` says which processes really run).
pub fn plan(
    config: &Config,
    registry: Option<&Registry>,
    selection: &BTreeSet<String>,
    order: &[String],
    live: &dyn Fn(&str) -> bool,
) -> Vec<Action> {
    let mut actions = Vec::new();
    if let Some(reg) = registry {
        for name in reg.processes.keys() {
            if !config.processes.contains_key(name) && live(name) {
                actions.push(Action {
                    name: name.clone(),
                    action: "stop",
                    reasons: vec!["removed from the config".to_owned()],
                });
            }
        }
    }
    for name in order.iter().filter(|n| selection.contains(*n)) {
        let Some(spec) = config.processes.get(name) else {
            continue;
        };
        let rec = registry.and_then(|r| r.processes.get(name));
        let hash = config_hash(spec);
        let same = |rec: &crate::registry::ProcessRecord| {
            unchanged(
                &rec.config_hash,
                || rec.spec.as_ref().and_then(StoredSpec::value),
                spec,
                &hash,
            )
        };
        let action = match rec {
            Some(rec) if live(name) && same(rec) => Action {
                name: name.clone(),
                action: "keep",
                reasons: Vec::new(),
            },
            Some(rec) if live(name) => Action {
                name: name.clone(),
                action: "restart",
                reasons: rec.spec.as_ref().and_then(StoredSpec::value).map_or_else(
                    || vec!["config changed".to_owned()],
                    |old| diff_reasons(&old, spec),
                ),
            },
            Some(rec)
                if spec.oneshot
                    && rec.state == ProcState::Completed
                    && same(rec)
                    && registry.is_some_and(|r| r.supervisor.is_some()) =>
            {
                Action {
                    name: name.clone(),
                    action: "skip",
                    reasons: vec!["oneshot already completed".to_owned()],
                }
            }
            _ => Action {
                name: name.clone(),
                action: "start",
                reasons: Vec::new(),
            },
        };
        actions.push(action);
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Condition::{Healthy, Started};
    use crate::config::graph::{Graph, tests::config};

    fn names(set: &BTreeSet<String>) -> Vec<&str> {
        set.iter().map(String::as_str).collect()
    }

    #[test]
    fn selection_is_the_named_processes_with_their_dependencies() {
        let mut cfg = config(&[
            ("db", &[]),
            ("web", &[("db", Healthy)]),
            ("worker", &[("web", Started)]),
            ("tool", &[]),
        ]);
        if let Some(tool) = cfg.processes.get_mut("tool") {
            tool.disabled = true;
        }
        let graph = Graph::new(&cfg).unwrap();
        assert_eq!(
            names(&selection(&cfg, &graph, &[], false)),
            ["db", "web", "worker"],
            "all but the disabled"
        );
        let web = ["web".to_owned()];
        assert_eq!(names(&selection(&cfg, &graph, &web, false)), ["db", "web"]);
        assert_eq!(names(&selection(&cfg, &graph, &web, true)), ["web"]);
        let tool = ["tool".to_owned()];
        assert_eq!(
            names(&selection(&cfg, &graph, &tool, false)),
            ["tool"],
            "a disabled process starts when named"
        );
    }

    #[test]
    fn the_log_policy_is_not_part_of_the_config_hash_and_restarts_nothing() {
        let cfg = config(&[("web", &[])]);
        let old = cfg.processes["web"].clone();
        let mut new = old.clone();
        new.logs.keep = old.logs.keep + 5;
        new.logs.compress = !old.logs.compress;
        assert_eq!(config_hash(&old), config_hash(&new));
        assert!(unchanged(
            &config_hash(&old),
            || None,
            &new,
            &config_hash(&new)
        ));
        // A hash from a version that also hashed `logs`: the stored spec decides.
        let legacy = "0123456789abcdef";
        let stored = serde_json::to_value(&old).ok();
        assert!(unchanged(
            legacy,
            || stored.clone(),
            &new,
            &config_hash(&new)
        ));
        assert!(
            !unchanged(legacy, || None, &new, &config_hash(&new)),
            "no spec: only the hash can tell"
        );
        let mut moved = new.clone();
        moved.cwd = std::path::PathBuf::from("/elsewhere");
        assert!(!unchanged(
            &config_hash(&old),
            || stored.clone(),
            &moved,
            &config_hash(&moved)
        ));
        assert_ne!(config_hash(&old), config_hash(&moved));
        let reasons = diff_reasons(&stored.unwrap_or_default(), &moved);
        assert_eq!(reasons, ["cwd changed"], "logs is never a reason");
    }
}
