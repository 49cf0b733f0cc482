//! The serde retry loop: deserializing a JSON value into the raw mirror while collecting
//! *every* problem, not just the first.
//!
//! Owns: [`Found`] (the problems found so far, each with its [`Site`]) and [`collect`]:
//! deserialize with `serde_path_to_error`; on an error, record the problem at the path that
//! failed, remove that key or item, and retry until it succeeds. Removed list items are
//! remembered so that later paths into the same list still map to the right source item.
//! Also turning serde's messages into ours ([`describe`]).
//! Must not: compute locations (a problem carries a [`Site`], a path, resolved by the
//! loader) or check meaning (that is `process.rs`, `health.rs`, `scalars.rs`).
//! Invariants: terminates (at most 1000 retries, each removing a node); never panics; the
//! happy path deserializes once, without path tracking.

use std::fmt::Write as _;

use serde::de::DeserializeOwned;
use serde_json::Value as J;

use crate::config::site::Site;
use crate::config::tree::Seg;
use crate::suggest::closest as suggest;

/// Every problem found so far, with where it is.
pub(crate) type Found = Vec<(Site, String)>;

/// Deserializes `value` as `T`, recording every error (located under `base`) and removing
/// the offending node until deserialization succeeds. `None` if the value itself is wrong.
pub(crate) fn collect<T: DeserializeOwned>(
    value: &mut J,
    base: &[Seg],
    found: &mut Found,
) -> Option<T> {
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

pub(crate) fn remove(value: &mut J, p: &[Seg]) -> bool {
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
        if let Some(s) = suggest(name, candidates.iter().copied()) {
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
