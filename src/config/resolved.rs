//! The resolved configuration written back as a valid `procs.yaml`: what `procs config`
//! prints, as `docker compose config` prints a compose file.
//!
//! Owns: the shape of that document (a serializable mirror of [`Config`] in the keys and
//! forms `procs.yaml` accepts) and its YAML and JSON text (serde-saphyr's serializer,
//! `serde_json`).
//! Representation, chosen so that reading the output again gives the same output, wherever
//! the output file is put:
//! - every process spells out every key (defaults applied); `defaults:`, the top-level
//!   `env`, `env_file` and `logs` are gone, folded into each process;
//! - `cwd` is absolute; `env` is the whole declared environment of the process, env files
//!   inlined (no `env_file` is left to be found relative to the new file);
//! - every `$` in a value is written `$$`, so interpolation gives back the text as resolved;
//! - `depends_on` is a map `name: condition` (`name: {condition, restart: true}` with
//!   `restart`), sorted by name; a port without a host is a
//!   number; durations are humantime text; `max_size` is bytes; the signal is its name.
//!
//! Must not: read files or the environment; print (the CLI does).
//! Invariants: the output validates (tested on every example and a rich configuration);
//! control characters (C0, DEL, C1) are escaped in double-quoted scalars by serde-saphyr,
//! and in JSON strings as `\uXXXX`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::model::{Command, Condition, Config, HealthCheck, Port, Probe, Process, RestartPolicy};

/// The whole document.
#[derive(Debug, Serialize)]
pub struct Resolved {
    name: String,
    processes: BTreeMap<String, ResolvedProcess>,
}

#[derive(Debug, Serialize)]
struct ResolvedProcess {
    command: ResolvedCommand,
    cwd: String,
    env: BTreeMap<String, String>,
    depends_on: BTreeMap<String, ResolvedDep>,
    #[serde(skip_serializing_if = "Option::is_none")]
    healthcheck: Option<ResolvedHealth>,
    ports: Vec<ResolvedPort>,
    restart: &'static str,
    backoff: ResolvedBackoff,
    max_restarts: u32,
    min_uptime: String,
    ready_after: String,
    oneshot: bool,
    daemon: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid_file: Option<String>,
    success_exit_codes: Vec<i32>,
    stop_signal: String,
    stop_timeout: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_command: Option<ResolvedCommand>,
    disabled: bool,
    logs: ResolvedLogs,
}

/// `name: condition`, or `name: {condition: …, restart: true}`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum ResolvedDep {
    Condition(&'static str),
    Long {
        condition: &'static str,
        restart: bool,
    },
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum ResolvedCommand {
    Shell(String),
    Argv(Vec<String>),
}

#[derive(Debug, Serialize)]
struct ResolvedHealth {
    #[serde(skip_serializing_if = "Option::is_none")]
    exec: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log: Option<String>,
    interval: String,
    timeout: String,
    retries: u32,
    start_timeout: String,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum ResolvedPort {
    Number(u16),
    Long { port: u16, host: String },
}

#[derive(Debug, Serialize)]
struct ResolvedBackoff {
    initial: String,
    max: String,
}

#[derive(Debug, Serialize)]
struct ResolvedLogs {
    max_size: u64,
    keep: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_age: Option<String>,
    compress: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    rotate_every: Option<crate::config::RotateEvery>,
}

/// A value as text that interpolation reads back unchanged.
fn lit(s: &str) -> String {
    s.replace('$', "$$")
}

fn duration(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn command(c: &Command) -> ResolvedCommand {
    match c {
        Command::Shell(s) => ResolvedCommand::Shell(lit(s)),
        Command::Argv(v) => ResolvedCommand::Argv(v.iter().map(|a| lit(a)).collect()),
    }
}

fn condition(c: Condition) -> &'static str {
    match c {
        Condition::Started => "started",
        Condition::Healthy => "healthy",
        Condition::Completed => "completed",
        Condition::CompletedSuccessfully => "completed_successfully",
    }
}

fn health(h: &HealthCheck) -> ResolvedHealth {
    let mut out = ResolvedHealth {
        exec: None,
        tcp: None,
        http: None,
        status: None,
        log: None,
        interval: duration(h.interval),
        timeout: duration(h.timeout),
        retries: h.retries,
        start_timeout: duration(h.start_timeout),
    };
    match &h.probe {
        Probe::Exec(cmd) => out.exec = Some(lit(cmd)),
        Probe::Tcp { host, port } if host.contains(':') => {
            out.tcp = Some(format!("[{}]:{port}", lit(host)));
        }
        Probe::Tcp { host, port } => out.tcp = Some(format!("{}:{port}", lit(host))),
        Probe::Http { url, status } => {
            out.http = Some(lit(url.as_str()));
            out.status = *status;
        }
        Probe::Log(re) => out.log = Some(lit(re)),
    }
    out
}

fn port(p: &Port) -> ResolvedPort {
    match &p.host {
        None => ResolvedPort::Number(p.port),
        Some(host) => ResolvedPort::Long {
            port: p.port,
            host: lit(host),
        },
    }
}

fn process(p: &Process) -> ResolvedProcess {
    ResolvedProcess {
        command: command(&p.command),
        cwd: lit(&p.cwd.to_string_lossy()),
        env: p.env.iter().map(|(k, v)| (k.clone(), lit(v))).collect(),
        depends_on: p
            .depends_on
            .iter()
            .map(|d| {
                let dep = if d.restart {
                    ResolvedDep::Long {
                        condition: condition(d.condition),
                        restart: true,
                    }
                } else {
                    ResolvedDep::Condition(condition(d.condition))
                };
                (d.name.clone(), dep)
            })
            .collect(),
        healthcheck: p.healthcheck.as_ref().map(health),
        ports: p.ports.iter().map(port).collect(),
        restart: match p.restart {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Always => "always",
        },
        backoff: ResolvedBackoff {
            initial: duration(p.backoff.initial),
            max: duration(p.backoff.max),
        },
        max_restarts: p.max_restarts,
        min_uptime: duration(p.min_uptime),
        ready_after: duration(p.ready_after),
        oneshot: p.oneshot,
        daemon: p.daemon,
        pid_file: p.pid_file.as_ref().map(|f| f.display().to_string()),
        success_exit_codes: p.success_exit_codes.clone(),
        stop_signal: p.stop_signal.name.clone(),
        stop_timeout: duration(p.stop_timeout),
        stop_command: p.stop_command.as_ref().map(command),
        disabled: p.disabled,
        logs: ResolvedLogs {
            max_size: p.logs.max_size,
            keep: p.logs.keep,
            max_age: p.logs.max_age.map(duration),
            compress: p.logs.compress,
            rotate_every: p.logs.rotate_every,
        },
    }
}

impl Resolved {
    /// The document for `config`.
    pub fn new(config: &Config) -> Self {
        Self {
            name: lit(&config.name),
            processes: config
                .processes
                .iter()
                .map(|(name, p)| (name.clone(), process(p)))
                .collect(),
        }
    }

    /// As YAML: block style, list items indented under their key, multi-line strings as
    /// literal block scalars, long lines never folded.
    pub fn to_yaml(&self) -> Result<String, serde_saphyr::SerializeError> {
        let options = serde_saphyr::ser_options! {
            compact_list_indent: false,
            folded_wrap_chars: usize::MAX,
        };
        serde_saphyr::to_string_with_options(self, options)
    }

    /// As pretty JSON (the same document). Beyond the C0 controls `serde_json` escapes,
    /// DEL, C1, U+2028/U+2029 and U+FEFF are written `\uXXXX` too: they are not allowed raw
    /// in YAML (so the JSON stays a readable `procs.yaml`) and are unsafe on a terminal.
    /// (Outside strings, JSON text is ASCII, so escaping every such character is exact.)
    pub fn to_json(&self) -> serde_json::Result<String> {
        let text = serde_json::to_string_pretty(self)?;
        let unsafe_char = |c: char| {
            matches!(
                c,
                '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}'
            )
        };
        if !text.contains(unsafe_char) {
            return Ok(text);
        }
        let mut out = String::with_capacity(text.len() + 16);
        for c in text.chars() {
            if unsafe_char(c) {
                out.push_str(&format!("\\u{:04X}", u32::from(c)));
            } else {
                out.push(c);
            }
        }
        Ok(out)
    }
}
