//! Health checks: the raw `healthcheck:` mapping → a typed [`HealthCheck`].
//!
//! Owns: "exactly one probe", `status` only with `http`, the probe forms (`tcp` as `PORT`
//! or `HOST:PORT`, `http` a plain `http://` URL parsed here, once, `log` a valid regular expression) and the
//! timing defaults.
//! Must not: run a probe, or know the rest of the process.
//! Invariants: returns a `HealthCheck` only when it recorded no problem.

use super::collect::Found;
use super::scalars::port_number;
use crate::config::model::{HealthCheck, Probe, defaults};
use crate::config::probe_url::HttpTarget;
use crate::config::raw::{RawHealthcheck, RawPortValue};
use crate::config::site::Locator;

pub(crate) fn healthcheck(
    h: &RawHealthcheck,
    at: &Locator<'_>,
    found: &mut Found,
) -> Option<HealthCheck> {
    let set: Vec<&str> = [
        ("exec", h.exec.is_some()),
        ("tcp", h.tcp.is_some()),
        ("http", h.http.is_some()),
        ("log", h.log.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, on)| on.then_some(k))
    .collect();
    let before = found.len();
    if set.is_empty() {
        found.push((
            at.key(&["healthcheck"]),
            "`healthcheck` needs exactly one probe: `exec`, `tcp`, `http` or `log`".into(),
        ));
    } else if set.len() > 1 {
        found.push((
            at.key(&["healthcheck", set[1]]),
            format!(
                "`healthcheck` has more than one probe (`{}`); use exactly one",
                set.join("`, `")
            ),
        ));
    }
    if h.status.is_some() && h.http.is_none() {
        found.push((
            at.key(&["healthcheck", "status"]),
            "`status` only applies to an `http` probe".into(),
        ));
    }
    let probe = if let Some(cmd) = &h.exec {
        if cmd.trim().is_empty() {
            found.push((at.value(&["healthcheck", "exec"]), "`exec` is empty".into()));
        }
        Probe::Exec(cmd.clone())
    } else if let Some(t) = &h.tcp {
        let (host, port) = match t {
            RawPortValue::Number(p) => ("127.0.0.1".to_owned(), *p),
            RawPortValue::Text(s) => match s.rsplit_once(':') {
                Some((host, port)) => {
                    let host = host.trim_start_matches('[').trim_end_matches(']');
                    let host = if host.is_empty() { "127.0.0.1" } else { host };
                    (host.to_owned(), port_number(port).unwrap_or(0))
                }
                None => ("127.0.0.1".to_owned(), port_number(s).unwrap_or(0)),
            },
        };
        if port == 0 {
            found.push((
                at.value(&["healthcheck", "tcp"]),
                "`tcp` must be `PORT` or `HOST:PORT` with a port from 1 to 65535".into(),
            ));
        }
        Probe::Tcp { host, port }
    } else if let Some(url) = &h.http {
        match HttpTarget::parse(url) {
            Ok(url) => Probe::Http {
                url,
                status: h.status,
            },
            Err(why) => {
                found.push((at.value(&["healthcheck", "http"]), why));
                return None;
            }
        }
    } else if let Some(re) = &h.log {
        if let Err(err) = regex::Regex::new(re) {
            found.push((
                at.value(&["healthcheck", "log"]),
                format!(
                    "`log` is not a valid regular expression: {}",
                    err.to_string().lines().last().unwrap_or_default()
                ),
            ));
        }
        Probe::Log(re.clone())
    } else {
        return None;
    };
    (found.len() == before).then(|| HealthCheck {
        probe,
        interval: h.interval.unwrap_or(defaults::INTERVAL),
        timeout: h.timeout.unwrap_or(defaults::TIMEOUT),
        retries: h.retries.unwrap_or(defaults::RETRIES),
        start_timeout: h.start_timeout.unwrap_or(defaults::START_TIMEOUT),
    })
}
