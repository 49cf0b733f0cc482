//! Scalars with meaning of their own: signals, sizes and port numbers.
//!
//! Owns: parsing `SIGINT`/`INT`/`2` into a [`Signal`], `10MiB`/`10MB`/bytes into a size,
//! and `8001`/`"8001"`/`{port, host}` into a [`Port`], each with a message for people on
//! failure. (Durations are humantime text, read by `humantime_serde` in the raw mirror;
//! their message is made in `collect.rs`.)
//! Must not: know where the value sits in the document (callers attach the [`Site`]).
//! Invariants: pure functions; never panic on any input.

use std::fmt::Write as _;

use crate::config::model::{Port, Signal};
use crate::config::raw::{RawPort, RawPortValue, RawSignal, RawSize};
use crate::suggest::closest as suggest;

pub(crate) fn port_number(s: &str) -> Option<u16> {
    s.trim().parse::<u16>().ok().filter(|p| *p != 0)
}

pub(crate) fn parse_port(port: &RawPort) -> Result<Port, String> {
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
                if let Some(s) = suggest(&full, names.iter().copied()) {
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
