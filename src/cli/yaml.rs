//! A small YAML emitter for `procs config`: block style, strings plain when that is
//! unambiguous and JSON-quoted (valid YAML double-quoted scalars) otherwise.
//!
//! Owns only presentation. Invariant: the output reads back as the same JSON value
//! (tested), so a person can copy it into a `procs.yaml`.

use std::fmt::Write as _;

use serde_json::Value;

/// Words YAML 1.1 or 1.2 readers may take for something other than a string.
const RESERVED: [&str; 15] = [
    "true", "false", "yes", "no", "on", "off", "null", "y", "n", "~", "nan", "inf", "infinity",
    ".nan", ".inf",
];

/// Indentation without allocating.
fn pad(indent: usize) -> &'static str {
    const SPACES: &str = "                                                                ";
    &SPACES[..indent.min(SPACES.len())]
}

fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if first.is_ascii_digit() {
        // Durations and sizes (`10s`, `1m30s`, `10MiB`) read as strings; anything a YAML
        // reader could take for a number (`0x1F`, `1e5`, `1_000`) is quoted.
        let lower = s.to_ascii_lowercase();
        return s.chars().all(|c| c.is_ascii_alphanumeric())
            && s.chars().any(|c| c.is_ascii_alphabetic())
            && !["0x", "0o", "0b"].iter().any(|p| lower.starts_with(p))
            && s.parse::<f64>().is_err();
    }
    if !(first.is_ascii_alphabetic() || first == '/' || first == '_' || first == '.') {
        return false;
    }
    if s.len() <= 8 && RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s)) {
        return false;
    }
    if first == '.' && s.parse::<f64>().is_ok() {
        return false;
    }
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "_./@+-".contains(c))
        && !s.ends_with(':')
}

fn scalar(s: &str) -> String {
    if plain_ok(s) {
        s.to_owned()
    } else {
        Value::String(s.to_owned()).to_string()
    }
}

fn key(k: &str) -> String {
    scalar(k)
}

/// Render a JSON value as a YAML document.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0, false),
        Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        other => {
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
    out
}

fn inline(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => scalar(s),
        Value::Array(items) if items.is_empty() => "[]".to_owned(),
        Value::Object(map) if map.is_empty() => "{}".to_owned(),
        Value::Array(_) | Value::Object(_) => String::new(),
    }
}

fn is_block(v: &Value) -> bool {
    matches!(v, Value::Array(a) if !a.is_empty()) || matches!(v, Value::Object(m) if !m.is_empty())
}

/// Write `map` at `indent`; with `dash`, the first entry carries the `- ` of a sequence
/// item (drawn in the two columns left of `indent`).
fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize, dash: bool) {
    for (i, (k, v)) in map.iter().enumerate() {
        if dash && i == 0 {
            out.push_str(pad(indent - 2));
            out.push_str("- ");
        } else {
            out.push_str(pad(indent));
        }
        if is_block(v) {
            let _ = writeln!(out, "{}:", key(k));
            match v {
                Value::Object(m) => write_map(out, m, indent + 2, false),
                Value::Array(a) => write_seq(out, a, indent + 2),
                _ => {}
            }
        } else {
            let _ = writeln!(out, "{}: {}", key(k), inline(v));
        }
    }
}

fn write_seq(out: &mut String, items: &[Value], indent: usize) {
    let pad = pad(indent);
    for item in items {
        match item {
            Value::Object(m) if !m.is_empty() => write_map(out, m, indent + 2, true),
            Value::Array(inner) if !inner.is_empty() => {
                let _ = writeln!(out, "{pad}-");
                write_seq(out, inner, indent + 2);
            }
            other => {
                let _ = writeln!(out, "{pad}- {}", inline(other));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(value: &Value) {
        let text = to_yaml(value);
        let back: Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(&back, value, "\n{text}");
    }

    #[test]
    fn reads_back_as_the_same_value() {
        round_trip(&serde_json::json!({
            "name": "shop",
            "file": "/a b/procs.yaml",
            "processes": {
                "web": {
                    "command": ["python3", "-m", "http.server", "8000"],
                    "env": { "T": "10s", "U": "0x1F", "V": "1e5", "W": "1_000", "A": "yes", "B": "", "C": "1.5", "D": "x: y", "E": "#hash", "F": "null", "G": "a\nb", "H": "'q'" },
                    "depends_on": [ { "name": "db", "condition": "healthy" } ],
                    "ports": [],
                    "healthcheck": null,
                    "restart": "on-failure",
                    "stop_signal": { "number": 15, "name": "SIGTERM" },
                    "oneshot": false,
                    "max_restarts": 10,
                    "nested": [[1, 2], []],
                    "empty": {}
                }
            }
        }));
    }

    #[test]
    fn plain_only_when_unambiguous() {
        assert_eq!(scalar("python3"), "python3");
        assert_eq!(scalar("/usr/bin/env"), "/usr/bin/env");
        assert_eq!(scalar("no"), "\"no\"");
        assert_eq!(scalar("8080"), "\"8080\"");
        assert_eq!(scalar("10s"), "10s");
        assert_eq!(scalar("0x1F"), "\"0x1F\"");
        assert_eq!(scalar("1e5"), "\"1e5\"");
        assert_eq!(scalar("a b"), "\"a b\"");
        assert_eq!(scalar(""), "\"\"");
    }
}
