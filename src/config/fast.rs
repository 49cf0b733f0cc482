//! The fast path of reading `procs.yaml`: YAML text straight to a location-free
//! `serde_json::Value`, with no spans, no tree and no problem reporting.
//!
//! Owns: parsing each file (with the same options and interpolation as [`tree`]) into the
//! very JSON that [`tree::Node::to_json`] would give, and merging the override on top.
//! Must not: report anything. Any failure — a syntax error, a duplicate key, a failed
//! interpolation — or anything the located tree represents in its own way (a float, whose
//! source spelling only the tree knows; a key that is not a string, integer, boolean or
//! null) makes it give up with `None`, and the caller takes the slow, located path.
//! Invariants: when [`document`] returns `Some(doc)`, the slow path would have parsed the
//! same files without a problem into a tree whose `to_json()` equals `doc`. So the fast
//! path can only ever be *faster*: whatever it cannot vouch for is left to the slow path,
//! which remains the only place problems are found and located (see `load.rs`).

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value as J};

use super::tree;

/// Every file parsed and merged in order (later files on top), or `None` when any of them
/// needs the located parser. `props`: the interpolation sources, as for [`tree::parse`].
pub fn document<'a>(
    texts: impl IntoIterator<Item = &'a str>,
    props: Option<&HashMap<String, String>>,
) -> Option<J> {
    let mut doc: Option<J> = None;
    for text in texts {
        let parsed = parse(text, props)?;
        doc = Some(match doc {
            None => parsed,
            Some(base) => merge(base, parsed),
        });
    }
    Some(doc.unwrap_or(J::Null))
}

/// One file; `None` if it cannot be read without locations (see the module docs).
pub fn parse(text: &str, props: Option<&HashMap<String, String>>) -> Option<J> {
    serde_saphyr::from_str_with_options::<Plain>(text, tree::parse_options(props))
        .ok()
        .map(|p| p.0)
}

/// Merges `over` on top of `base` exactly like [`tree::Node::merge`]: mappings merge by
/// key, recursively; anything else is replaced by the override.
pub fn merge(base: J, over: J) -> J {
    match (base, over) {
        (J::Object(mut base), J::Object(top)) => {
            for (key, value) in top {
                let merged = match base.remove(&key) {
                    Some(old) => merge(old, value),
                    None => value,
                };
                base.insert(key, merged);
            }
            J::Object(base)
        }
        (_, over) => over,
    }
}

/// A YAML value as the located tree would convert it to JSON.
struct Plain(J);

/// Why the fast path gave up; never shown (the slow path reports the real problem).
fn give_up<E: de::Error>(what: &str) -> E {
    E::custom(format_args!("{what} needs the located parser"))
}

impl<'de> de::Deserialize<'de> for Plain {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PlainVisitor).map(Plain)
    }
}

struct PlainVisitor;

impl<'de> Visitor<'de> for PlainVisitor {
    type Value = J;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<J, E> {
        Ok(J::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<J, E> {
        Ok(J::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<J, E> {
        Ok(J::from(v))
    }
    fn visit_i128<E>(self, v: i128) -> Result<J, E> {
        Ok(J::String(v.to_string()))
    }
    fn visit_u128<E>(self, v: u128) -> Result<J, E> {
        Ok(J::String(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<J, E> {
        Err(give_up("a float"))
    }
    fn visit_char<E>(self, v: char) -> Result<J, E> {
        Ok(J::String(v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<J, E> {
        Ok(J::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<J, E> {
        Ok(J::String(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<J, E> {
        Ok(J::String(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_unit<E>(self) -> Result<J, E> {
        Ok(J::Null)
    }
    fn visit_none<E>(self) -> Result<J, E> {
        Ok(J::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<J, D::Error> {
        d.deserialize_any(PlainVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<J, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Plain(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(J::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<J, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let Plain(value) = map.next_value()?;
            // Keys equal only after stringification (`1` and "1"): last wins, as in the tree.
            out.insert(key, value);
        }
        Ok(J::Object(out))
    }
}

/// A mapping key, stringified as the located tree does; floats and complex keys give up.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a plain mapping key")
    }
    fn visit_bool<E>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i128<E>(self, v: i128) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u128<E>(self, v: u128) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<String, E> {
        Err(give_up("a float key"))
    }
    fn visit_char<E>(self, v: char) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_str<E>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_string<E>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<String, E> {
        Ok(String::from_utf8_lossy(v).into_owned())
    }
    fn visit_unit<E>(self) -> Result<String, E> {
        Ok("null".to_owned())
    }
    fn visit_none<E>(self) -> Result<String, E> {
        Ok("null".to_owned())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(KeyVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(give_up("a list as a key"))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(give_up("a mapping as a key"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast document must equal the located tree's JSON whenever it is produced.
    fn same_as_tree(text: &str) -> Option<J> {
        let fast = parse(text, None)?;
        let (node, complex) = tree::parse(text, 0, None).expect("the tree parses what fast does");
        assert!(complex.is_empty(), "{text}");
        assert_eq!(fast, node.to_json(), "{text}");
        Some(fast)
    }

    #[test]
    fn scalars_and_keys_match_the_tree() {
        let doc = same_as_tree(
            "a: no\nb: 0755\nd: true\ny: 1\n1: one\ntrue: t\n~: n\n\
             s: 'x'\nl: [1, -2, '3', null]\nm: {k: v}\nu: 1_000\n",
        );
        assert!(doc.is_some());
    }

    #[test]
    fn anchors_and_merge_keys_match_the_tree() {
        let doc = same_as_tree("x-c: &c {a: 1, b: [2]}\np:\n  <<: *c\n  b: 3\nq: *c\n");
        assert_eq!(doc.expect("parsed")["p"]["b"], 3);
    }

    #[test]
    fn gives_up_where_only_the_tree_knows() {
        assert_eq!(parse("v: 1.10\n", None), None, "floats keep their spelling");
        assert_eq!(parse("1.5: x\n", None), None);
        assert_eq!(parse("big: 99999999999999999999\n", None), None);
        assert_eq!(parse("? [a]\n: 1\n", None), None);
        assert_eq!(parse("a: 1\na: 2\n", None), None, "duplicate key");
        assert_eq!(parse("a: [\n", None), None, "syntax error");
        let props = HashMap::new();
        assert_eq!(parse("a: ${X:?unset}\n", Some(&props)), None);
    }

    #[test]
    fn merge_matches_the_tree() {
        let (base, over) = (
            "a: {b: 1, c: [1, 2]}\nd: x\n",
            "a: {c: [3]}\ne: y\nd: {z: 1}\n",
        );
        let fast = document([base, over], None).expect("parsed");
        let tree_base = tree::parse(base, 0, None).expect("base").0;
        let tree_over = tree::parse(over, 1, None).expect("over").0;
        assert_eq!(fast, tree_base.merge(tree_over).to_json());
    }
}
