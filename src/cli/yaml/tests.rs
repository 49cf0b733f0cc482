//! The emitter against a copy of the `serde_json::Value`-walking emitter it replaced
//! ([`reference`]), and YAML round trips.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStringExt as _;
use std::path::PathBuf;

use proptest::prelude::*;
use serde::{Serialize, Serializer};
use serde_json::{Value, json};

use super::{RESERVED, plain_ok, push_int, push_json_str, reserved, to_yaml};

/// The former emitter, verbatim: the specification the serializer must match byte for byte.
mod reference {
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

    pub(super) fn plain_ok(s: &str) -> bool {
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
        matches!(v, Value::Array(a) if !a.is_empty())
            || matches!(v, Value::Object(m) if !m.is_empty())
    }

    /// Write `map` at `indent`; with `dash`, the first entry carries the `- ` of a sequence
    /// item (drawn in the two columns left of `indent`).
    fn write_map(
        out: &mut String,
        map: &serde_json::Map<String, Value>,
        indent: usize,
        dash: bool,
    ) {
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
}

fn new(value: &(impl Serialize + ?Sized)) -> String {
    to_yaml(value).unwrap_or_else(|e| panic!("{e}"))
}

/// What the former code printed for `value`: `to_value`, then the `Value` walk.
fn old(value: &(impl Serialize + ?Sized)) -> String {
    reference::to_yaml(&serde_json::to_value(value).unwrap_or_else(|e| panic!("{e}")))
}

#[track_caller]
fn same(value: &(impl Serialize + ?Sized)) -> String {
    let (new, old) = (new(value), old(value));
    assert_eq!(new, old, "\nnew:\n{new}\nold:\n{old}");
    new
}

fn scalar(s: &str) -> String {
    let text = new(s);
    text.strip_suffix('\n').unwrap_or(&text).to_owned()
}

fn round_trip(value: &Value) {
    let text = new(value);
    let back: Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(&back, value, "\n{text}");
}

fn sample() -> Value {
    json!({
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
    })
}

/// Values covering every layout rule, including at the top level.
fn layouts() -> Vec<Value> {
    vec![
        sample(),
        json!(null),
        json!(true),
        json!(-17),
        json!(18_446_744_073_709_551_615_u64),
        json!(1.5),
        json!(1e20),
        json!(-0.0),
        json!(0.1),
        json!("plain"),
        json!("needs: quotes"),
        json!([]),
        json!({}),
        json!([1, "a", null, [], {}, [[]], [{}], {"k": []}]),
        json!([[1, [2, [3, []]]], [{"a": 1, "b": [{"c": {}}]}]]),
        json!([{"a": {"b": {"c": [1]}}, "d": [[{"e": null}]]}]),
        json!({"": 1, "on": 2, "8080": 3, "a b": 4, "x:": 5, "-k": 6, "é": 7, "k\"\\\u{1}": 8}),
        json!({"deep": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": [[[["x"]]]]}}}}}}}}}),
        json!([
            "\u{0}\u{7}\u{8}\t\n\u{b}\u{c}\r\u{1b}\u{1f} ",
            "del\u{7f} c1\u{80}\u{9f} ok\u{a0}",
            "ünï\u{2028}code",
            "\"\\/"
        ]),
    ]
}

#[test]
fn reads_back_as_the_same_value() {
    for value in layouts() {
        round_trip(&value);
    }
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

#[test]
fn json_values_match_the_former_emitter() {
    // Except DEL and the C1 controls, which the former emitter left raw (unreadable).
    let escaped_now = |v: &Value| {
        v.to_string()
            .contains(|c| ('\u{7f}'..='\u{9f}').contains(&c))
    };
    for value in layouts().iter().filter(|v| !escaped_now(v)) {
        same(value);
    }
    // Past 64 columns the indentation stops growing (as it always did; no configuration
    // nests that deep), so this one does not read back, but it must still match.
    let mut deep = json!(["x", {"k": "v", "l": []}]);
    for i in 0..40 {
        deep = if i % 2 == 0 {
            json!([deep, 1])
        } else {
            json!({"a": deep, "b": 2})
        };
    }
    same(&deep);
}

#[test]
fn loaded_config_matches_the_former_emitter() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/shop");
    let config = crate::config::load(&crate::config::LoadOptions {
        file: Some(dir.join("procs.yaml")),
        cwd: dir,
        env: BTreeMap::new(),
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let text = same(&config);
    // The interesting shapes are really there.
    for needle in [
        "\n        tcp:\n          host: \"127.0.0.1\"\n          port: 15432\n",
        "\n        http:\n          url: \"http://127.0.0.1:18001/health\"\n          status: null\n",
        "\n    command: \"python3 -u services/migrate.py\"\n",
        "\n    command:\n      - python3\n      - \"-u\"\n",
        "\n    depends_on:\n      - name: db\n        condition: healthy\n",
        "\n    stop_command: null\n",
        "\n      max_size: 10485760\n",
        "\n    stop_timeout: 5s\n",
    ] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }
}

#[derive(Serialize)]
struct Unit;

#[derive(Serialize)]
struct Newtype(Vec<u8>);

#[derive(Serialize)]
struct Pair(i32, &'static str);

#[derive(Serialize)]
struct NoFields {}

#[derive(Serialize)]
enum Shape {
    Unit,
    #[serde(rename = "renamed-unit")]
    Renamed,
    Newtype(Option<u32>),
    NewtypeMap(BTreeMap<String, i8>),
    Tuple(u8, Vec<()>),
    EmptyTuple(),
    Struct {
        a: Option<String>,
        b: Vec<Vec<u8>>,
    },
    EmptyStruct {},
}

#[derive(Serialize)]
#[serde(untagged)]
enum Untagged {
    Text(String),
    List(Vec<String>),
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
enum Policy {
    OnFailure,
    No,
}

#[derive(Serialize)]
struct Skipping {
    #[serde(skip_serializing_if = "Option::is_none")]
    a: Option<u8>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    b: Vec<u8>,
    #[serde(skip)]
    _c: u8,
}

#[derive(Serialize)]
struct Flattened {
    first: u8,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

/// A sequence and a map whose length serde is not told (`len` is `None`).
struct Unsized(Vec<i64>);

impl Serialize for Unsized {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        if self.0.len().is_multiple_of(2) {
            let mut seq = s.serialize_seq(None)?;
            for v in &self.0 {
                seq.serialize_element(v)?;
            }
            seq.end()
        } else {
            let mut map = s.serialize_map(None)?;
            for v in &self.0 {
                map.serialize_entry(v, &Unsized(vec![*v; 2]))?;
            }
            map.end()
        }
    }
}

/// `serialize_bytes` and `collect_str`.
struct Bytes(&'static [u8]);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

struct Shown(&'static str);

impl Serialize for Shown {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

#[derive(Serialize)]
struct Everything {
    none: Option<String>,
    some: Option<String>,
    some_empty: Option<Vec<u8>>,
    empty_vec: Vec<String>,
    empty_map: BTreeMap<String, String>,
    nested: Vec<Vec<Vec<String>>>,
    quoted: Vec<&'static str>,
    unit: (),
    unit_struct: Unit,
    newtype: Newtype,
    pair: Pair,
    tuple: (u8, (), (i8,)),
    no_fields: NoFields,
    shapes: Vec<Shape>,
    shape_map: BTreeMap<String, Shape>,
    untagged: Vec<Untagged>,
    policies: Vec<Policy>,
    skipping: Vec<Skipping>,
    flattened: Flattened,
    empty_flattened: Flattened,
    unsized_list: Vec<Unsized>,
    int_keys: BTreeMap<i64, u8>,
    u128_keys: BTreeMap<u128, u8>,
    bool_keys: BTreeMap<bool, u8>,
    char_keys: BTreeMap<char, char>,
    unit_variant_keys: BTreeMap<&'static str, Policy>,
    newtype_keys: BTreeMap<String, Newtype>,
    floats: Vec<f64>,
    floats32: Vec<f32>,
    big: (i128, u128, i128),
    bytes: Bytes,
    no_bytes: Bytes,
    shown: Vec<Shown>,
    path: PathBuf,
    raw: Box<serde_json::value::RawValue>,
    raw_items: Vec<Box<serde_json::value::RawValue>>,
}

fn raw(json: &str) -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string(json.to_owned()).unwrap_or_else(|e| panic!("{e}"))
}

fn everything() -> Everything {
    Everything {
        none: None,
        some: Some("x".into()),
        some_empty: Some(vec![]),
        empty_vec: vec![],
        empty_map: BTreeMap::new(),
        nested: vec![vec![], vec![vec![]], vec![vec!["a".into()], vec![]]],
        quoted: vec![
            "",
            "yes",
            "No",
            "~",
            "1.5",
            ".5",
            ".inf",
            "1_000",
            "0b1",
            "0O7",
            "12h",
            "1e5",
            "x: y",
            "a\"b",
            "tab\there",
            "#x",
            "-",
            "café",
            "trailing:",
        ],
        unit: (),
        unit_struct: Unit,
        newtype: Newtype(vec![1]),
        pair: Pair(-1, "on"),
        tuple: (1, (), (-1,)),
        no_fields: NoFields {},
        shapes: vec![
            Shape::Unit,
            Shape::Renamed,
            Shape::Newtype(None),
            Shape::Newtype(Some(3)),
            Shape::NewtypeMap(BTreeMap::new()),
            Shape::NewtypeMap([("k".to_owned(), 1)].into()),
            Shape::Tuple(1, vec![(), ()]),
            Shape::Tuple(2, vec![]),
            Shape::EmptyTuple(),
            Shape::Struct {
                a: None,
                b: vec![vec![], vec![1, 2]],
            },
            Shape::Struct {
                a: Some("yes".into()),
                b: vec![],
            },
            Shape::EmptyStruct {},
        ],
        shape_map: [
            ("a", Shape::Unit),
            ("null", Shape::Renamed),
            ("s", Shape::EmptyStruct {}),
            ("t", Shape::Tuple(0, vec![()])),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
        untagged: vec![
            Untagged::Text("sleep 1".into()),
            Untagged::List(vec!["sleep".into(), "1".into()]),
            Untagged::List(vec![]),
        ],
        policies: vec![Policy::OnFailure, Policy::No],
        skipping: vec![
            Skipping {
                a: None,
                b: vec![],
                _c: 0,
            },
            Skipping {
                a: Some(1),
                b: vec![],
                _c: 0,
            },
            Skipping {
                a: None,
                b: vec![2],
                _c: 0,
            },
        ],
        flattened: Flattened {
            first: 1,
            rest: [("x".to_owned(), json!([1])), ("y".to_owned(), json!({}))].into(),
        },
        empty_flattened: Flattened {
            first: 0,
            rest: BTreeMap::new(),
        },
        unsized_list: vec![
            Unsized(vec![]),
            Unsized(vec![5]),
            Unsized(vec![1, 2]),
            Unsized(vec![7, 8, 9]),
        ],
        int_keys: [(-1, 1), (0, 2), (8080, 3)].into(),
        u128_keys: [(u128::MAX, 1)].into(),
        bool_keys: [(false, 1), (true, 2)].into(),
        char_keys: [('a', 'b'), (':', '\n')].into(),
        unit_variant_keys: [("k", Policy::No)].into(),
        newtype_keys: [("n".to_owned(), Newtype(vec![]))].into(),
        floats: vec![
            0.0,
            -0.0,
            1.0,
            0.1,
            1e20,
            1e-7,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
        ],
        floats32: vec![0.1, 1.5, f32::NEG_INFINITY, 3e38],
        big: (i128::from(i64::MIN), u128::from(u64::MAX), -5),
        bytes: Bytes(b"\x00\xff"),
        no_bytes: Bytes(b""),
        shown: vec![Shown("10s"), Shown("1m 30s"), Shown(""), Shown("true")],
        path: PathBuf::from("/tmp/a b/c"),
        raw: raw(r#"{"b": [1, {"c": "yes"}], "a": {}, "n": 1.25}"#),
        raw_items: vec![raw("[]"), raw("\"x\""), raw("[[1]]"), raw("{\"k\": null}")],
    }
}

#[test]
fn every_serde_shape_matches_the_former_emitter() {
    let text = same(&everything());
    round_trip(&serde_json::to_value(everything()).unwrap_or_else(|e| panic!("{e}")));
    // Spot checks of the rules the comparison relies on.
    for needle in [
        "\nsome: x\n",
        "\nempty_vec: []\n",
        "\nempty_map: {}\n",
        "\nsome_empty: []\n",
        "\nno_fields: {}\n",
        "\nnested:\n  - []\n  -\n    - []\n  -\n    -\n      - a\n    - []\n",
        "\n  - Newtype: null\n",
        "\n  - EmptyStruct: {}\n",
        "\n  - {}\n",
        "\n  - renamed-unit\n",
        "\n  \"8080\": 3\n",
    ] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }
    // Every top-level shape too.
    same(&Shape::Struct {
        a: None,
        b: vec![vec![]],
    });
    same(&Shape::EmptyStruct {});
    same(&Shape::Tuple(1, vec![]));
    same(&Shape::Newtype(Some(1)));
    same(&Shape::Renamed);
    same(&Unsized(vec![]));
    same(&Unsized(vec![1]));
    same(&Skipping {
        a: None,
        b: vec![],
        _c: 0,
    });
    same(&None::<u8>);
    same(&());
    same(&raw("[1, [2]]"));
    same(&raw("{}"));
    same(&Bytes(b""));
    same(&Shown("a b"));
}

/// A one-entry map with a float key (std has no such map type).
struct FloatKey<F>(F);

impl<F: Serialize> Serialize for FloatKey<F> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(&self.0, &1)?;
        map.end()
    }
}

#[test]
fn errors_where_serde_json_errors() {
    let tuple_keys: BTreeMap<(u8, u8), u8> = [((1, 2), 3)].into();
    let vec_keys: BTreeMap<Vec<u8>, u8> = [(vec![1], 3)].into();
    let unit_keys: BTreeMap<(), u8> = [((), 3)].into();
    let bad_path = PathBuf::from(std::ffi::OsString::from_vec(vec![0xff]));
    for (new, old) in [
        (
            to_yaml(&tuple_keys).err(),
            serde_json::to_value(&tuple_keys).err(),
        ),
        (
            to_yaml(&vec_keys).err(),
            serde_json::to_value(&vec_keys).err(),
        ),
        (
            to_yaml(&unit_keys).err(),
            serde_json::to_value(&unit_keys).err(),
        ),
        (
            to_yaml(&u128::MAX).err(),
            serde_json::to_value(u128::MAX).err(),
        ),
        (
            to_yaml(&i128::MIN).err(),
            serde_json::to_value(i128::MIN).err(),
        ),
        (
            to_yaml(&bad_path).err(),
            serde_json::to_value(&bad_path).err(),
        ),
    ] {
        let (Some(new), Some(old)) = (new, old) else {
            panic!("both must fail");
        };
        assert_eq!(new.to_string(), old.to_string());
    }
    // Float keys: stringified when finite, an error otherwise.
    same(&FloatKey(0.1_f32));
    same(&FloatKey(1e20_f64));
    same(&FloatKey(-0.0_f64));
    let new = to_yaml(&FloatKey(f64::NAN)).err().map(|e| e.to_string());
    let old = serde_json::to_value(FloatKey(f64::NAN))
        .err()
        .map(|e| e.to_string());
    assert!(new.is_some());
    assert_eq!(new, old);
}

#[test]
fn json_quoting_is_serde_jsons() {
    let mut all = String::new();
    for c in (0..=0xa0_u32)
        .filter_map(char::from_u32)
        .chain(['é', '\u{2028}', '😀'])
    {
        let s = c.to_string();
        let mut out = String::new();
        push_json_str(&mut out, &s);
        if ('\u{7f}'..='\u{9f}').contains(&c) {
            // JSON leaves these raw; YAML readers reject them raw: escaped.
            assert_eq!(out, format!("\"\\u{:04x}\"", u32::from(c)));
        } else {
            assert_eq!(out, Value::String(s.clone()).to_string(), "{c:?}");
        }
        all.push(c);
        all.push('x');
    }
    let mut out = String::new();
    push_json_str(&mut out, &all);
    assert_eq!(serde_json::from_str::<String>(&out).unwrap(), all);
}

#[test]
fn reserved_words_in_any_case_are_quoted_as_before() {
    for word in RESERVED {
        for mask in 0..1_u32 << word.len() {
            let cased: String = word
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if mask & (1 << i) == 0 {
                        c
                    } else {
                        c.to_ascii_uppercase()
                    }
                })
                .collect();
            assert!(reserved(&cased), "{cased}");
            for s in [
                cased.clone(),
                format!("{cased}x"),
                format!("x{cased}"),
                format!("{cased}:"),
                format!("{cased}.{cased}"),
            ] {
                assert_eq!(plain_ok(&s), reference::plain_ok(&s), "{s:?}");
            }
        }
    }
}

#[test]
fn integers_are_written_as_serde_json_writes_them() {
    let mut out = String::new();
    for v in [0, 1, 9, 10, 99, 100, -1, -10, i64::MIN, i64::MAX] {
        out.clear();
        push_int(&mut out, v < 0, v.unsigned_abs());
        assert_eq!(out, json!(v).to_string());
    }
    out.clear();
    push_int(&mut out, false, u64::MAX);
    assert_eq!(out, json!(u64::MAX).to_string());
}

proptest! {
    #[test]
    fn plain_ok_is_unchanged(s in "[0-9a-zA-Z.:_/@+~ #\u{7f}é-]{0,8}") {
        prop_assert_eq!(plain_ok(&s), reference::plain_ok(&s), "{:?}", s);
    }

    #[test]
    fn digit_led_plain_ok_is_unchanged(s in "[0-9][0-9a-zA-Z._]{0,5}") {
        prop_assert_eq!(plain_ok(&s), reference::plain_ok(&s), "{:?}", s);
    }

    #[test]
    fn any_integer_matches(a in any::<i64>(), b in any::<u64>(), c in any::<i128>()) {
        prop_assert_eq!(new(&(a, b)), old(&(a, b)));
        match (to_yaml(&c), serde_json::to_value(c)) {
            (Ok(new), Ok(value)) => prop_assert_eq!(new, reference::to_yaml(&value)),
            (Err(new), Err(old)) => prop_assert_eq!(new.to_string(), old.to_string()),
            (new, old) => prop_assert!(false, "{:?} vs {:?}", new, old),
        }
    }

    #[test]
    fn any_string_matches(s in any::<String>()) {
        prop_assert_eq!(new(&s), old(&s));
        let map: BTreeMap<&str, &str> = [(s.as_str(), s.as_str())].into();
        prop_assert_eq!(new(&map), old(&map));
    }

    #[test]
    fn word_like_strings_match(words in proptest::collection::vec("[0-9a-zA-Z.~_-]{0,5}", 0..4)) {
        prop_assert_eq!(new(&words), old(&words));
        let map: BTreeMap<&str, Vec<&str>> =
            words.iter().map(|w| (w.as_str(), vec![w.as_str()])).collect();
        prop_assert_eq!(new(&map), old(&map));
    }
}
