//! The YAML emitter behind `procs config`: a [`serde::Serializer`] that writes block-style
//! YAML for any `T: Serialize` straight into one `String`.
//!
//! Owns only presentation. Rules: strings are plain when that is unambiguous
//! ([`plain_ok`]) and JSON-quoted (valid YAML double-quoted scalars) otherwise; empty
//! collections are `[]`/`{}`; `None` and unit are `null`; a map that is a sequence item starts
//! on its `- ` line; a sequence inside a sequence is a lone `-` with the items two columns
//! deeper; a block under a map key is two columns deeper than the key.
//!
//! Invariants:
//! - The output is what the former emitter printed for `serde_json::to_value(value)`: enums
//!   are externally tagged (`Variant: …`), numbers read as `serde_json::Number` displays them
//!   (non-finite floats are `null`), map keys are stringified as `serde_json` does or rejected
//!   with its error, and a `RawValue` is emitted as the value it holds. Tested against a copy
//!   of that emitter. One deliberate difference: a key a `Serialize` impl emits twice in one
//!   map is written twice, where a `Value` would keep one entry (nothing of ours does that).
//! - The output reads back as the same JSON value (tested), so a person can copy it into a
//!   `procs.yaml`.
//! - Of a collection, nothing but a sequence item's `-` is written before its first element
//!   or its end, so emptiness never has to be known up front (`len` is not trusted) and no
//!   output is ever patched.
//!   No heap allocation per scalar: everything is written into the output buffer, and a
//!   `Display` value (`collect_str`) that turns out to need quoting reuses one scratch buffer.

use std::fmt::{Display, Write as _};

use serde::ser::{
    Error as _, Impossible, Serialize, SerializeMap, SerializeSeq, SerializeStruct,
    SerializeStructVariant, SerializeTuple, SerializeTupleStruct, SerializeTupleVariant,
    Serializer,
};
use serde_json::{Error, Value};

type Result<T, E = Error> = std::result::Result<T, E>;

/// Words YAML 1.1 or 1.2 readers may take for something other than a string.
const RESERVED: [&str; 15] = [
    "true", "false", "yes", "no", "on", "off", "null", "y", "n", "~", "nan", "inf", "infinity",
    ".nan", ".inf",
];

/// The struct name `serde_json` gives `RawValue` (`serde_json::raw::TOKEN`, not public).
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// Indentation without allocating.
fn pad(indent: usize) -> &'static str {
    const SPACES: &str = "                                                                ";
    &SPACES[..indent.min(SPACES.len())]
}

/// Bytes a plain scalar may contain: ASCII alphanumerics and `_./@+-`. (Every byte of a
/// non-ASCII character is excluded, as the character itself is.)
const PLAIN_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] =
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'@' | b'+' | b'-');
        i += 1;
    }
    table
};

/// Whether `s` is one of [`RESERVED`], ignoring ASCII case.
fn reserved(s: &str) -> bool {
    // A cheap filter first: every reserved word is at most 8 bytes and starts with one of
    // these (`| 0x20` lowercases ASCII letters; letting a few other bytes through is harmless).
    s.len() <= 8
        && s.as_bytes().first().is_some_and(|&b| {
            matches!(
                b | 0x20,
                b't' | b'f' | b'y' | b'n' | b'o' | b'i' | b'.' | b'~'
            )
        })
        && RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s))
}

/// Whether `s` can be written unquoted and still read back as this very string.
fn plain_ok(s: &str) -> bool {
    let bytes = s.as_bytes();
    let Some(&first) = bytes.first() else {
        return false;
    };
    if first.is_ascii_digit() {
        // Durations and sizes (`10s`, `1m30s`, `10MiB`) read as strings; anything a YAML
        // reader could take for a number (`0x1F`, `1e5`, `1_000`) is quoted.
        let radix_prefix =
            bytes.len() >= 2 && first == b'0' && matches!(bytes[1] | 0x20, b'x' | b'o' | b'b');
        return bytes.iter().all(u8::is_ascii_alphanumeric)
            && bytes.iter().any(u8::is_ascii_alphabetic)
            && !radix_prefix
            && s.parse::<f64>().is_err();
    }
    // (No `:` is a plain byte, so a plain scalar never ends with one either.)
    (first.is_ascii_alphabetic() || matches!(first, b'/' | b'_' | b'.'))
        && bytes.iter().all(|&b| PLAIN_BYTE[usize::from(b)])
        && !reserved(s)
        && !(first == b'.' && s.parse::<f64>().is_ok())
}

/// Appends an integer's decimal digits, as `serde_json` (`itoa`) writes them.
fn push_int(out: &mut String, negative: bool, mut magnitude: u64) {
    let mut digits = [0_u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (magnitude % 10) as u8;
        magnitude /= 10;
        if magnitude == 0 {
            break;
        }
    }
    if negative {
        out.push('-');
    }
    for &d in &digits[start..] {
        out.push(char::from(d));
    }
}

/// Appends `s` as a JSON string literal — what `serde_json` writes, except that DEL and the
/// C1 controls (U+007F–U+009F), which JSON leaves raw but a YAML reader rejects, are
/// `\u` escapes too.
fn push_json_str(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        // A C1 control is the two bytes C2 80..=9F; `code` is the character's value.
        let (escape, code, width) = match b {
            b'"' => ("\\\"", 0, 1),
            b'\\' => ("\\\\", 0, 1),
            b'\n' => ("\\n", 0, 1),
            b'\r' => ("\\r", 0, 1),
            b'\t' => ("\\t", 0, 1),
            0x08 => ("\\b", 0, 1),
            0x0c => ("\\f", 0, 1),
            0x00..=0x1f | 0x7f => ("", b, 1),
            0xc2 if bytes.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)) => {
                ("", bytes[i + 1], 2)
            }
            _ => {
                i += 1;
                continue;
            }
        };
        // `i` starts a character, so both slices end on character boundaries.
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(code >> 4)]));
            out.push(char::from(HEX[usize::from(code & 0xf)]));
        } else {
            out.push_str(escape);
        }
        i += width;
        start = i;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends a string scalar: plain when [`plain_ok`], JSON-quoted otherwise.
fn push_scalar(out: &mut String, s: &str) {
    if plain_ok(s) {
        out.push_str(s);
    } else {
        push_json_str(out, s);
    }
}

/// Renders `value` as a YAML document.
pub fn to_yaml<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    let mut emitter = Emitter {
        out: String::with_capacity(4096),
        scratch: String::new(),
        slot: Slot::Top,
    };
    value.serialize(&mut emitter)?;
    Ok(emitter.out)
}

/// Where the next value goes.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// The whole document.
    Top,
    /// After the `key:` of an entry of a map whose entries are at `indent`.
    Value { indent: usize },
    /// An item of a sequence whose `-` is at `indent`; nothing of it is written yet.
    Item { indent: usize },
}

impl Slot {
    /// Indentation of the entries or items of a block collection in this slot.
    fn inner(self) -> usize {
        match self {
            Slot::Top => 0,
            Slot::Value { indent } | Slot::Item { indent } => indent + 2,
        }
    }
}

/// The serializer: the output and the slot of the value about to be serialized.
pub struct Emitter {
    out: String,
    /// Reused for `collect_str` text that needs quoting.
    scratch: String,
    slot: Slot,
}

impl Emitter {
    /// Writes what precedes a scalar in the current slot.
    fn scalar_start(&mut self) {
        match self.slot {
            Slot::Top => {}
            Slot::Value { .. } => self.out.push(' '),
            Slot::Item { indent } => {
                self.out.push_str(pad(indent));
                self.out.push_str("- ");
            }
        }
    }

    /// A scalar written as is (`null`, booleans, numbers).
    fn bare(&mut self, text: &str) {
        self.scalar_start();
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn string(&mut self, s: &str) {
        self.scalar_start();
        push_scalar(&mut self.out, s);
        self.out.push('\n');
    }

    /// An integer, written as `serde_json::Number` displays it.
    fn int(&mut self, n: i64) {
        self.uint(n < 0, n.unsigned_abs());
    }

    fn uint(&mut self, negative: bool, magnitude: u64) {
        self.scalar_start();
        push_int(&mut self.out, negative, magnitude);
        self.out.push('\n');
    }

    /// Appends `value`'s text as a string scalar, formatted in place and quoted afterwards
    /// if need be.
    fn push_display<T: Display + ?Sized>(&mut self, value: &T) -> Result<()> {
        let start = self.out.len();
        write!(self.out, "{value}").map_err(Error::custom)?;
        if !plain_ok(&self.out[start..]) {
            self.scratch.clear();
            self.scratch.push_str(&self.out[start..]);
            self.out.truncate(start);
            push_json_str(&mut self.out, &self.scratch);
        }
        Ok(())
    }

    /// Starts a collection in the current slot. Only a sequence item's `-` is written now;
    /// the rest depends on whether the collection turns out empty.
    fn open(&mut self) -> Compound<'_> {
        let slot = self.slot;
        if let Slot::Item { indent } = slot {
            self.out.push_str(pad(indent));
            self.out.push('-');
        }
        Compound {
            em: self,
            slot,
            started: false,
            raw: false,
        }
    }

    /// Writes what precedes the key of an entry of a map opened in `slot`.
    fn key_start(&mut self, slot: Slot, first: bool) {
        let indent = slot.inner();
        if first {
            match slot {
                Slot::Top => {}
                Slot::Value { .. } => {
                    self.out.push('\n');
                    self.out.push_str(pad(indent));
                }
                Slot::Item { .. } => self.out.push(' '),
            }
        } else {
            self.out.push_str(pad(indent));
        }
    }

    /// Ends the key of an entry of a map opened in `slot`; the entry's value comes next.
    fn key_end(&mut self, slot: Slot) {
        self.out.push(':');
        self.slot = Slot::Value {
            indent: slot.inner(),
        };
    }

    /// The `Variant:` of an externally tagged enum value: a one-entry map whose value the
    /// caller serializes next.
    fn variant_key(&mut self, variant: &str) {
        let slot = self.open().slot;
        self.key_start(slot, true);
        push_scalar(&mut self.out, variant);
        self.key_end(slot);
    }
}

/// A sequence or map being written; `started` once its first element is.
pub struct Compound<'a> {
    em: &'a mut Emitter,
    /// The slot the collection was opened in.
    slot: Slot,
    started: bool,
    /// A `serde_json` `RawValue`: its one field holds JSON text to emit as a value.
    raw: bool,
}

impl Compound<'_> {
    fn key_start(&mut self) {
        let first = !self.started;
        self.started = true;
        self.em.key_start(self.slot, first);
    }

    fn key_end(&mut self) {
        self.em.key_end(self.slot);
    }

    fn field(&mut self, key: &str, value: &(impl Serialize + ?Sized)) -> Result<()> {
        self.key_start();
        push_scalar(&mut self.em.out, key);
        self.key_end();
        value.serialize(&mut *self.em)
    }

    fn element(&mut self, value: &(impl Serialize + ?Sized)) -> Result<()> {
        if !self.started {
            self.started = true;
            if !matches!(self.slot, Slot::Top) {
                self.em.out.push('\n');
            }
        }
        self.em.slot = Slot::Item {
            indent: self.slot.inner(),
        };
        value.serialize(&mut *self.em)
    }

    /// Ends the collection: nothing to add unless it is empty (`[]` or `{}`).
    fn finish(self, empty: &str) {
        if !self.started {
            if !matches!(self.slot, Slot::Top) {
                self.em.out.push(' ');
            }
            self.em.out.push_str(empty);
            self.em.out.push('\n');
        }
    }

    /// The field of a `RawValue`: parse its JSON text and emit that value in its place.
    fn raw_field(&mut self, key: &str, value: &(impl Serialize + ?Sized)) -> Result<()> {
        let Value::String(json) = serde_json::to_value(value)? else {
            return Err(Error::custom("raw value must be JSON text"));
        };
        if key != RAW_VALUE_TOKEN || self.started {
            return Err(Error::custom("invalid raw value"));
        }
        let parsed: Value = serde_json::from_str(&json)?;
        self.started = true;
        self.em.slot = self.slot;
        parsed.serialize(&mut *self.em)
    }
}

impl<'a> Serializer for &'a mut Emitter {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn serialize_bool(self, v: bool) -> Result<()> {
        self.bare(if v { "true" } else { "false" });
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<()> {
        self.int(i64::from(v));
        Ok(())
    }

    fn serialize_i16(self, v: i16) -> Result<()> {
        self.int(i64::from(v));
        Ok(())
    }

    fn serialize_i32(self, v: i32) -> Result<()> {
        self.int(i64::from(v));
        Ok(())
    }

    fn serialize_i64(self, v: i64) -> Result<()> {
        self.int(v);
        Ok(())
    }

    fn serialize_i128(self, v: i128) -> Result<()> {
        // `serde_json` keeps only what fits in a u64 or an i64.
        if let Ok(v) = u64::try_from(v) {
            self.uint(false, v);
            Ok(())
        } else if let Ok(v) = i64::try_from(v) {
            self.int(v);
            Ok(())
        } else {
            Err(Error::custom("number out of range"))
        }
    }

    fn serialize_u8(self, v: u8) -> Result<()> {
        self.uint(false, u64::from(v));
        Ok(())
    }

    fn serialize_u16(self, v: u16) -> Result<()> {
        self.uint(false, u64::from(v));
        Ok(())
    }

    fn serialize_u32(self, v: u32) -> Result<()> {
        self.uint(false, u64::from(v));
        Ok(())
    }

    fn serialize_u64(self, v: u64) -> Result<()> {
        self.uint(false, v);
        Ok(())
    }

    fn serialize_u128(self, v: u128) -> Result<()> {
        if let Ok(v) = u64::try_from(v) {
            self.uint(false, v);
            Ok(())
        } else {
            Err(Error::custom("number out of range"))
        }
    }

    fn serialize_f32(self, v: f32) -> Result<()> {
        // `serde_json` widens an f32 to f64 in a `Value`.
        self.serialize_f64(f64::from(v))
    }

    fn serialize_f64(self, v: f64) -> Result<()> {
        match serde_json::Number::from_f64(v) {
            Some(n) => {
                self.scalar_start();
                let _ = write!(self.out, "{n}");
                self.out.push('\n');
            }
            None => self.bare("null"),
        }
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<()> {
        self.string(v.encode_utf8(&mut [0; 4]));
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<()> {
        self.string(v);
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<()> {
        let mut seq = self.open();
        for byte in v {
            seq.element(byte)?;
        }
        seq.finish("[]");
        Ok(())
    }

    fn serialize_none(self) -> Result<()> {
        self.bare("null");
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<()> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<()> {
        self.bare("null");
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<()> {
        self.bare("null");
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<()> {
        self.string(variant);
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<()> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<()> {
        self.variant_key(variant);
        value.serialize(self)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a>> {
        Ok(self.open())
    }

    fn serialize_tuple(self, _len: usize) -> Result<Compound<'a>> {
        Ok(self.open())
    }

    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Compound<'a>> {
        Ok(self.open())
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>> {
        self.variant_key(variant);
        Ok(self.open())
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a>> {
        Ok(self.open())
    }

    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<Compound<'a>> {
        if name == RAW_VALUE_TOKEN {
            let slot = self.slot;
            return Ok(Compound {
                em: self,
                slot,
                started: false,
                raw: true,
            });
        }
        Ok(self.open())
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>> {
        self.variant_key(variant);
        Ok(self.open())
    }

    fn collect_str<T: Display + ?Sized>(self, value: &T) -> Result<()> {
        self.scalar_start();
        self.push_display(value)?;
        self.out.push('\n');
        Ok(())
    }
}

/// The four sequence-like serde traits: each element is a `- ` item; empty is `[]`.
macro_rules! sequence_like {
    ($($trait:ident :: $method:ident),*) => {$(
        impl $trait for Compound<'_> {
            type Ok = ();
            type Error = Error;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
                self.element(value)
            }

            fn end(self) -> Result<()> {
                self.finish("[]");
                Ok(())
            }
        }
    )*};
}

sequence_like!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        self.key_start();
        key.serialize(KeySerializer { em: self.em })?;
        self.key_end();
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        value.serialize(&mut *self.em)
    }

    fn end(self) -> Result<()> {
        self.finish("{}");
        Ok(())
    }
}

impl SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        if self.raw {
            self.raw_field(key, value)
        } else {
            self.field(key, value)
        }
    }

    fn end(self) -> Result<()> {
        if self.raw {
            return if self.started {
                Ok(())
            } else {
                Err(Error::custom("raw value was not emitted"))
            };
        }
        self.finish("{}");
        Ok(())
    }
}

impl SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        self.field(key, value)
    }

    fn end(self) -> Result<()> {
        self.finish("{}");
        Ok(())
    }
}

/// Writes a map key as `serde_json` stringifies it (strings, numbers, booleans, chars, unit
/// variants), then quoted by the string rule; any other key is `serde_json`'s error.
struct KeySerializer<'a> {
    em: &'a mut Emitter,
}

fn key_must_be_a_string() -> Error {
    Error::custom("key must be a string")
}

impl KeySerializer<'_> {
    fn string(self, s: &str) {
        push_scalar(&mut self.em.out, s);
    }

    fn float(self, v: impl Serialize + Into<f64> + Copy) -> Result<()> {
        if v.into().is_finite() {
            // `serde_json`'s own shortest representation (for the original width).
            let text = serde_json::to_string(&v)?;
            self.string(&text);
            Ok(())
        } else {
            Err(Error::custom(
                "float key must be finite (got NaN or +/-inf)",
            ))
        }
    }
}

impl Serializer for KeySerializer<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_bool(self, v: bool) -> Result<()> {
        self.string(if v { "true" } else { "false" });
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<()> {
        self.em.push_display(&v)
    }

    fn serialize_i16(self, v: i16) -> Result<()> {
        self.em.push_display(&v)
    }

    fn serialize_i32(self, v: i32) -> Result<()> {
        self.em.push_display(&v)
    }

    fn serialize_i64(self, v: i64) -> Result<()> {
        self.em.push_display(&v)
    }

    fn serialize_i128(self, v: i128) -> Result<()> {
        self.em.push_display(&v)
    }

    fn serialize_u8(self, v: u8) -> Result<()> {
        self.em.push_display(&v)
    }

    fn serialize_u16(self, v: u16) -> Result<()> {
        self.em.push_display(&v)
    }

    fn serialize_u32(self, v: u32) -> Result<()> {
        self.em.push_display(&v)
    }

    fn serialize_u64(self, v: u64) -> Result<()> {
        self.em.push_display(&v)
    }

    fn serialize_u128(self, v: u128) -> Result<()> {
        self.em.push_display(&v)
    }

    fn serialize_f32(self, v: f32) -> Result<()> {
        self.float(v)
    }

    fn serialize_f64(self, v: f64) -> Result<()> {
        self.float(v)
    }

    fn serialize_char(self, v: char) -> Result<()> {
        self.string(v.encode_utf8(&mut [0; 4]));
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<()> {
        self.string(v);
        Ok(())
    }

    fn serialize_bytes(self, _v: &[u8]) -> Result<()> {
        Err(key_must_be_a_string())
    }

    fn serialize_none(self) -> Result<()> {
        Err(key_must_be_a_string())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<()> {
        Err(key_must_be_a_string())
    }

    fn serialize_unit(self) -> Result<()> {
        Err(key_must_be_a_string())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<()> {
        Err(key_must_be_a_string())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<()> {
        self.string(variant);
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<()> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<()> {
        Err(key_must_be_a_string())
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq> {
        Err(key_must_be_a_string())
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple> {
        Err(key_must_be_a_string())
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct> {
        Err(key_must_be_a_string())
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(key_must_be_a_string())
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap> {
        Err(key_must_be_a_string())
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self::SerializeStruct> {
        Err(key_must_be_a_string())
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(key_must_be_a_string())
    }

    fn collect_str<T: Display + ?Sized>(self, value: &T) -> Result<()> {
        self.em.push_display(value)
    }
}

#[cfg(test)]
mod tests;
