//! A located YAML tree: what `procs.yaml` says, with where each node and key is.
//! The one way `procs.yaml` is read (serde-saphyr); problems are located against it.
//!
//! Owns: parsing YAML text (with interpolation, merge keys `<<` applied and duplicate keys
//! rejected — both by serde-saphyr) into a generic [`Node`] tree whose every node and map
//! key carries a [`Loc`]; merging an override tree onto a base tree; converting a tree to
//! `serde_json::Value` for the typed raw mirror; and finding the location of a path.
//! Must not: know about procs keys — the schema lives in `raw.rs`, meaning in `validate/`.
//! Invariants: map keys are strings (scalar keys are stringified; complex keys are reported
//! as problems and dropped); floats keep their source spelling (`1.10` stays `"1.10"`),
//! because no procs key takes a float and env values must keep what the user wrote.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

/// Where a node or key is: which source file (index into the loader's file list), 1-based
/// line and column, and the width (in characters) to underline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loc {
    pub file: usize,
    pub line: u64,
    pub column: u64,
    pub width: usize,
}

/// A YAML node with its location.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub loc: Loc,
}

/// A mapping entry: key, its location, and the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_loc: Loc,
    pub value: Node,
}

/// The value of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    /// A float, kept as written.
    Float(String),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// One step of a path into the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

impl fmt::Display for Seg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seg::Key(k) => f.write_str(k),
            Seg::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// Builds a path from key names.
pub fn path(keys: &[&str]) -> Vec<Seg> {
    keys.iter().map(|k| Seg::Key((*k).to_owned())).collect()
}

/// Parse options shared by every YAML read: YAML 1.2 booleans (`yes`/`no`/`on`/`off` are
/// strings, so `restart: no` means what it says), `0755` kept as a string.
///
/// The default budget stays (depth, nodes, alias expansion, input size), without the
/// aliases-per-anchor heuristic: a stack of 150 processes that each merge one `x-defaults`
/// anchor is normal, and the other limits already bound what aliases can expand to.
fn options() -> serde_saphyr::Options {
    let mut o = serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
    };
    o.budget = serde_saphyr::budget! { enforce_alias_anchor_ratio: false };
    o
}

/// [`options`], plus Docker Compose style interpolation from `props` when given.
fn parse_options(props: Option<&HashMap<String, String>>) -> serde_saphyr::Options {
    match props {
        Some(map) => {
            let mut o = options();
            o.property_syntax = serde_saphyr::PropertySyntax::DockerCompose;
            o.with_properties(map.clone())
        }
        None => options(),
    }
}

/// A serde-saphyr failure: syntax error, duplicate key, failed interpolation, budget.
#[derive(Debug)]
pub struct ParseError {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

/// Parses `text` as file number `file`. With `props`, `${VAR}`-style interpolation (Docker
/// Compose syntax) is applied to every scalar; without, scalars are taken literally.
/// Complex (non-scalar) mapping keys are returned as problems and dropped.
pub fn parse(
    text: &str,
    file: usize,
    props: Option<&HashMap<String, String>>,
) -> Result<(Node, Vec<(Loc, String)>), ParseError> {
    let parsed: Spanned<RawNode> = serde_saphyr::from_str_with_options(text, parse_options(props))
        .map_err(|e| {
            use serde_saphyr::MessageFormatter as _;
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            let message = humane(
                serde_saphyr::DefaultMessageFormatter
                    .format_message(&e)
                    .replace(", set DuplicateKeyPolicy in Options if acceptable", ""),
            );
            ParseError {
                line,
                column,
                message,
            }
        })?;
    let mut problems = Vec::new();
    let conv = Converter { text, file };
    let node = conv.node(parsed, &mut problems);
    Ok((node, problems))
}

/// serde-saphyr's messages meant for programmers (`budget breached: Depth { depth: 65 }`,
/// `use from_str_multiple`) in words for people.
fn humane(message: String) -> String {
    if message.starts_with("multiple YAML documents detected") {
        return "a second YAML document (`---`): `procs.yaml` holds one document; merge the \
                two, or put the second in `procs.override.yaml`"
            .to_owned();
    }
    if message.starts_with("tabs disallowed") {
        return format!("{message}: indent with spaces");
    }
    if message.starts_with("mapping values are not allowed in this context") {
        return "a `key:` where a value was expected: check the indentation of this line and \
                the one above, or quote a value that contains `: `"
            .to_owned();
    }
    let Some(breach) = message.strip_prefix("budget breached: ") else {
        return message;
    };
    let kind = breach.split([' ', '{']).next().unwrap_or(breach);
    let what = match kind {
        "Depth" => "collections are nested more than 64 levels deep",
        "Nodes" | "Events" | "RecordedAnchorEvents" | "RecordedAnchorBytes" => {
            "the document is too large once its aliases are expanded (over 250000 nodes)"
        }
        "Aliases" => "more than 50000 aliases (`*name`)",
        "Anchors" => "more than 50000 anchors (`&name`)",
        "MergeKeys" => "more than 10000 merge keys (`<<`)",
        "Documents" => "too many YAML documents (`---`)",
        "ScalarBytes" | "InputBytes" | "CommentBytes" => "the file is too large",
        "PropertyExpansionDepth" | "PropertyInterpolationWork" => {
            "interpolation (`${...}`) is nested too deeply or expands too much"
        }
        _ => return format!("the configuration exceeds a parser limit ({breach})"),
    };
    format!("{what}; procs stops reading here to protect itself")
}

struct Converter<'a> {
    text: &'a str,
    file: usize,
}

impl Converter<'_> {
    fn loc(&self, l: &Location) -> Loc {
        let span = l.span();
        Loc {
            file: self.file,
            line: l.line(),
            column: l.column(),
            width: usize::try_from(span.len()).unwrap_or(1).max(1),
        }
    }

    fn source(&self, l: &Location) -> Option<&str> {
        let span = l.span();
        let start = usize::try_from(span.byte_offset()?).ok()?;
        let len = usize::try_from(span.byte_len()?).ok()?;
        self.text.get(start..start.checked_add(len)?)
    }

    fn node(&self, n: Spanned<RawNode>, problems: &mut Vec<(Loc, String)>) -> Node {
        let loc = self.loc(&n.referenced);
        let value = match n.value {
            RawNode::Null => Value::Null,
            RawNode::Bool(b) => Value::Bool(b),
            RawNode::Int(i) => Value::Int(i),
            RawNode::UInt(u) => Value::UInt(u),
            RawNode::Float(f) => Value::Float(
                self.source(&n.defined)
                    .map(str::trim)
                    .filter(|s| s.parse::<f64>().is_ok())
                    .map_or_else(|| f.to_string(), str::to_owned),
            ),
            RawNode::Str(s) => Value::Str(s),
            RawNode::Seq(items) => {
                Value::Seq(items.into_iter().map(|i| self.node(i, problems)).collect())
            }
            RawNode::Map(entries) => {
                let mut out: Vec<Entry> = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    let key_loc = self.loc(&k.referenced);
                    let key = match k.value {
                        RawNode::Str(s) => s,
                        RawNode::Int(i) => i.to_string(),
                        RawNode::UInt(u) => u.to_string(),
                        RawNode::Bool(b) => b.to_string(),
                        RawNode::Float(f) => self
                            .source(&k.defined)
                            .map_or_else(|| f.to_string(), |s| s.trim().to_owned()),
                        RawNode::Null => "null".to_owned(),
                        RawNode::Seq(_) | RawNode::Map(_) => {
                            problems.push((key_loc, "mapping keys must be plain strings".into()));
                            continue;
                        }
                    };
                    let value = self.node(v, problems);
                    // Keys that are equal only after stringification (`1` and "1"): last wins.
                    out.retain(|e| e.key != key);
                    out.push(Entry {
                        key,
                        key_loc,
                        value,
                    });
                }
                Value::Map(out)
            }
        };
        Node { value, loc }
    }
}

/// The generic tree serde-saphyr deserializes into (via `deserialize_any`).
enum RawNode {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<RawNode>>),
    Map(Vec<(Spanned<RawNode>, Spanned<RawNode>)>),
}

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawNodeVisitor)
    }
}

struct RawNodeVisitor;

impl<'de> Visitor<'de> for RawNodeVisitor {
    type Value = RawNode;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<RawNode, E> {
        Ok(RawNode::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<RawNode, E> {
        Ok(RawNode::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<RawNode, E> {
        Ok(i64::try_from(v).map_or(RawNode::UInt(v), RawNode::Int))
    }
    fn visit_i128<E>(self, v: i128) -> Result<RawNode, E> {
        Ok(RawNode::Str(v.to_string()))
    }
    fn visit_u128<E>(self, v: u128) -> Result<RawNode, E> {
        Ok(RawNode::Str(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<RawNode, E> {
        Ok(RawNode::Float(v))
    }
    fn visit_char<E>(self, v: char) -> Result<RawNode, E> {
        Ok(RawNode::Str(v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<RawNode, E> {
        Ok(RawNode::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<RawNode, E> {
        Ok(RawNode::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<RawNode, E> {
        Ok(RawNode::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_unit<E>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }
    fn visit_none<E>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<RawNode, D::Error> {
        RawNode::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawNode, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(RawNode::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawNode, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(RawNode::Map(entries))
    }
}

impl Node {
    /// The entries when this is a mapping.
    pub fn entries(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Map(e) => Some(e),
            _ => None,
        }
    }

    /// The value under `key` when this is a mapping.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries()?.iter().find(|e| e.key == key)
    }

    /// Follows `path`; `None` when some step does not exist.
    pub fn at(&self, path: &[Seg]) -> Option<&Node> {
        let mut cur = self;
        for seg in path {
            cur = match (seg, &cur.value) {
                (Seg::Key(k), Value::Map(_)) => &cur.get(k)?.value,
                (Seg::Index(i), Value::Seq(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(cur)
    }

    /// The location for a problem at `path`: the key itself when `key` is set and the last
    /// step is a mapping key, otherwise the value. Falls back to the deepest existing prefix.
    pub fn locate(&self, path: &[Seg], key: bool) -> Loc {
        let mut cur = self;
        let mut loc = self.loc;
        for (i, seg) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            match (seg, &cur.value) {
                (Seg::Key(k), Value::Map(_)) => match cur.get(k) {
                    Some(entry) => {
                        loc = if last && key {
                            entry.key_loc
                        } else {
                            entry.value.loc
                        };
                        cur = &entry.value;
                    }
                    None => return loc,
                },
                (Seg::Index(idx), Value::Seq(items)) => match items.get(*idx) {
                    Some(item) => {
                        loc = item.loc;
                        cur = item;
                    }
                    None => return loc,
                },
                _ => return loc,
            }
        }
        loc
    }

    /// Converts to JSON; floats become strings (see the module invariants).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::UInt(u) => J::from(*u),
            Value::Float(s) | Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }

    /// Merges `over` on top of `self`: mappings merge by key, recursively; anything else
    /// (scalars, lists, a mapping replacing a scalar) is replaced by the override.
    #[must_use]
    pub fn merge(self, over: Node) -> Node {
        match (self.value, over.value) {
            (Value::Map(mut base), Value::Map(top)) => {
                for entry in top {
                    if let Some(pos) = base.iter().position(|b| b.key == entry.key) {
                        let old = base.remove(pos);
                        base.insert(
                            pos,
                            Entry {
                                key: old.key,
                                key_loc: old.key_loc,
                                value: old.value.merge(entry.value),
                            },
                        );
                    } else {
                        base.push(entry);
                    }
                }
                Node {
                    value: Value::Map(base),
                    loc: self.loc,
                }
            }
            (_, value) => Node {
                value,
                loc: over.loc,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Node {
        parse(text, 0, None).map(|(n, _)| n).unwrap()
    }

    #[test]
    fn keys_and_values_are_located() {
        let n = p("a:\n  b: [x, 2]\n");
        assert_eq!(n.locate(&path(&["a", "b"]), true).line, 2);
        assert_eq!(n.locate(&path(&["a", "b"]), true).column, 3);
        let item = n.locate(
            &[Seg::Key("a".into()), Seg::Key("b".into()), Seg::Index(1)],
            false,
        );
        assert_eq!((item.line, item.column), (2, 10));
        // Missing steps fall back to the deepest existing node.
        assert_eq!(n.locate(&path(&["a", "zz"]), true).line, 2);
    }

    #[test]
    fn yaml_1_1_booleans_and_octal_spellings_stay_strings() {
        let n = p("a: no\nb: 0755\nc: 1.10\nd: true\ny: 1\n");
        let j = n.to_json();
        assert_eq!(j["a"], "no");
        assert_eq!(j["b"], "0755");
        assert_eq!(j["c"], "1.10");
        assert_eq!(j["d"], true);
        assert_eq!(j["y"], 1);
    }

    #[test]
    fn merge_maps_by_key_and_replaces_lists() {
        let base = p("a: {b: 1, c: [1, 2]}\nd: x\n");
        let over = parse("a: {c: [3]}\ne: y\n", 1, None).unwrap().0;
        let m = base.merge(over);
        assert_eq!(
            m.to_json(),
            serde_json::json!({"a": {"b": 1, "c": [3]}, "d": "x", "e": "y"})
        );
        assert_eq!(m.locate(&path(&["a", "c"]), false).file, 1);
        assert_eq!(m.locate(&path(&["a", "b"]), false).file, 0);
    }

    #[test]
    fn limits_are_explained_in_words() {
        let deep = format!("a: {}{}\n", "[".repeat(70), "]".repeat(70));
        let e = parse(&deep, 0, None).expect_err("too deep");
        assert!(
            e.message.starts_with("collections are nested more than 64"),
            "{}",
            e.message
        );
        assert_eq!(humane("other".into()), "other");
        let e = parse("a: 1\n---\nb: 2\n", 0, None).expect_err("two documents");
        assert!(e.message.contains("holds one document"), "{}", e.message);
        let e = parse("a:\n\tb: 1\n", 0, None).expect_err("tab");
        assert!(e.message.ends_with("indent with spaces"), "{}", e.message);
        let e = parse("a:\n  b: x\n   c: y\n", 0, None).expect_err("indentation");
        assert!(e.message.contains("check the indentation"), "{}", e.message);
    }

    #[test]
    fn complex_keys_are_problems() {
        let (_, problems) = parse("? [a]\n: 1\n", 0, None).unwrap();
        assert_eq!(problems.len(), 1);
    }
}
