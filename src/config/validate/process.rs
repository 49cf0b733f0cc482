//! One process: its raw mirror (with `defaults:` applied) → a typed [`Process`].
//!
//! Owns: applying `defaults:` key by key, the built-in defaults, `command`/`stop_command`
//! forms, `cwd` resolution, env layering (top-level env, process `env_file`s, process
//! `env`), `depends_on` (unknown names, conditions), ports, restart policy, backoff,
//! stop signal and log policy.
//! Must not: compute locations (problems carry a [`Site`]), or check the dependency graph
//! as a whole (cycles are found once every process is known).
//! Invariants: returns a `Process` only when it recorded no problem for it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use super::collect::Found;
use super::health::healthcheck;
use super::scalars::{parse_port, parse_signal, parse_size};
use crate::config::env_file::{self, EnvFileEntry};
use crate::config::model::{
    Backoff, Command, Condition, Dependency, LogPolicy, Process, RestartPolicy, RotateEvery,
    Signal, defaults,
};
use crate::config::raw::{
    RawCommand, RawDepSpec, RawDependsOn, RawEnv, RawLogs, RawProcess, RawRestart, RawRotateEvery,
    Scalar,
};
use crate::config::site::{DepAt, Locator, Site};
use crate::config::tree::{Seg, path};
use crate::suggest::closest as suggest;

/// `p` with every key it does not set taken from `defaults:` `d`.
pub(crate) fn with_defaults(p: RawProcess, d: &RawProcess) -> RawProcess {
    RawProcess {
        command: p.command.or_else(|| d.command.clone()),
        cwd: p.cwd.or_else(|| d.cwd.clone()),
        env: p.env.or_else(|| d.env.clone()),
        env_file: p.env_file.or_else(|| d.env_file.clone()),
        depends_on: p.depends_on.or_else(|| d.depends_on.clone()),
        healthcheck: p.healthcheck.or_else(|| d.healthcheck.clone()),
        ports: p.ports.or_else(|| d.ports.clone()),
        restart: p.restart.or_else(|| d.restart.clone()),
        backoff: p.backoff.or_else(|| d.backoff.clone()),
        max_restarts: p.max_restarts.or(d.max_restarts),
        min_uptime: p.min_uptime.or(d.min_uptime),
        ready_after: p.ready_after.or(d.ready_after),
        oneshot: p.oneshot.or(d.oneshot),
        daemon: p.daemon.or(d.daemon),
        pid_file: p.pid_file.or_else(|| d.pid_file.clone()),
        success_exit_codes: p
            .success_exit_codes
            .or_else(|| d.success_exit_codes.clone()),
        stop_signal: p.stop_signal.or_else(|| d.stop_signal.clone()),
        stop_timeout: p.stop_timeout.or(d.stop_timeout),
        stop_command: p.stop_command.or_else(|| d.stop_command.clone()),
        disabled: p.disabled.or(d.disabled),
        logs: p.logs.or_else(|| d.logs.clone()),
    }
}

/// What checking a process needs besides the process itself.
pub(crate) struct Ctx<'a> {
    /// Absolute, canonical project directory.
    pub project_dir: &'a Path,
    /// Where `NAME:` without a value takes its value from.
    pub invoking_env: &'a BTreeMap<String, String>,
    pub names: &'a BTreeSet<String>,
    /// `defaults.env_file`, used by processes that have none of their own.
    pub default_env_files: &'a [EnvFileEntry],
}

impl Ctx<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn process(
        &self,
        p: &RawProcess,
        env_files: &[EnvFileEntry],
        at: &Locator<'_>,
        top_env: &BTreeMap<String, String>,
        top_logs: LogPolicy,
        dep_sites: &mut HashMap<(String, String), DepAt>,
        found: &mut Found,
    ) -> Option<Process> {
        let name = at.name;
        let before = found.len();
        let command = match &p.command {
            None if at.quiet_missing_command => None,
            None => {
                found.push((
                    Site::key(path(&["processes", name])),
                    format!("process `{name}` has no `command`"),
                ));
                None
            }
            Some(c) => to_command(c, "command", at, found),
        };
        let stop_command = p
            .stop_command
            .as_ref()
            .and_then(|c| to_command(c, "stop_command", at, found));
        let cwd = match &p.cwd {
            None => self.project_dir.to_path_buf(),
            Some(dir) => {
                let full = self.project_dir.join(dir);
                match full.canonicalize() {
                    Ok(c) if c.is_dir() => c,
                    Ok(_) => {
                        found.push((
                            at.value(&["cwd"]),
                            format!("`cwd` `{dir}` is not a directory"),
                        ));
                        full
                    }
                    Err(_) => {
                        found.push((
                            at.value(&["cwd"]),
                            format!("`cwd` directory `{dir}` does not exist"),
                        ));
                        full
                    }
                }
            }
        };
        let mut env = top_env.clone();
        // The process's own `env_file`s, or else those of `defaults:`.
        if p.env_file.is_some() {
            let entries = if env_files.is_empty() {
                self.default_env_files
            } else {
                env_files
            };
            for entry in entries {
                match env_file::read(&self.project_dir.join(&entry.file)) {
                    Ok(vars) => env_file::layer(&mut env, vars),
                    Err(m) => found.push((Site::value(entry.path.clone()), m)),
                }
            }
        }
        if let Some(e) = &p.env {
            let site = |seg: Seg, key: bool| at.seg(vec![Seg::Key("env".into()), seg], key);
            env_file::layer(&mut env, self.env(e, &site, found));
        }
        let depends_on = self.depends_on(p.depends_on.as_ref(), at, dep_sites, found);
        let healthcheck = p
            .healthcheck
            .as_ref()
            .and_then(|h| healthcheck(h, at, found));
        let ports = p
            .ports
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, port)| {
                parse_port(port)
                    .map_err(|m| {
                        let site = at.seg(vec![Seg::Key("ports".into()), Seg::Index(i)], false);
                        found.push((site, m));
                    })
                    .ok()
            })
            .collect();
        let oneshot = p.oneshot.unwrap_or(false);
        let daemon = p.daemon.unwrap_or(false);
        if daemon && oneshot {
            found.push((
                at.value(&["daemon"]),
                "a process cannot be both `daemon: true` and `oneshot: true`".into(),
            ));
        }
        let pid_file = match &p.pid_file {
            Some(_) if !daemon => {
                found.push((
                    at.value(&["pid_file"]),
                    "`pid_file` needs `daemon: true`".into(),
                ));
                None
            }
            Some(f) if f.trim().is_empty() => {
                found.push((at.value(&["pid_file"]), "`pid_file` is empty".into()));
                None
            }
            Some(f) => Some(self.project_dir.join(f)),
            None => None,
        };
        let restart = match &p.restart {
            None if oneshot => RestartPolicy::No,
            None => RestartPolicy::OnFailure,
            Some(r) => restart(r, at, found),
        };
        let backoff = Backoff {
            initial: p
                .backoff
                .as_ref()
                .and_then(|b| b.initial)
                .unwrap_or(defaults::BACKOFF_INITIAL),
            max: p
                .backoff
                .as_ref()
                .and_then(|b| b.max)
                .unwrap_or(defaults::BACKOFF_MAX),
        };
        if backoff.max < backoff.initial {
            found.push((
                at.value(&["backoff"]),
                format!(
                    "backoff `max` ({}) is shorter than `initial` ({})",
                    humantime::format_duration(backoff.max),
                    humantime::format_duration(backoff.initial)
                ),
            ));
        }
        let success_exit_codes = p.success_exit_codes.clone().unwrap_or_else(|| vec![0]);
        if success_exit_codes.is_empty() {
            found.push((
                at.value(&["success_exit_codes"]),
                "`success_exit_codes` is empty".into(),
            ));
        }
        let stop_signal = match &p.stop_signal {
            None => Signal {
                number: crate::platform::Signal::TERM.number(),
                name: "SIGTERM".into(),
            },
            Some(s) => parse_signal(s).unwrap_or_else(|m| {
                found.push((at.value(&["stop_signal"]), m));
                Signal {
                    number: 0,
                    name: String::new(),
                }
            }),
        };
        let logs = match &p.logs {
            None => top_logs,
            Some(l) => logs(Some(l), |key| at.value(&["logs", key]), top_logs, found),
        };
        if found.len() > before || command.is_none() {
            return None;
        }
        Some(Process {
            name: name.to_owned(),
            command: command?,
            cwd,
            env,
            depends_on,
            healthcheck,
            ports,
            restart,
            backoff,
            max_restarts: p.max_restarts.unwrap_or(defaults::MAX_RESTARTS),
            min_uptime: p.min_uptime.unwrap_or(defaults::MIN_UPTIME),
            ready_after: p.ready_after.unwrap_or(defaults::READY_AFTER),
            oneshot,
            daemon,
            pid_file,
            success_exit_codes,
            stop_signal,
            stop_timeout: p.stop_timeout.unwrap_or(defaults::STOP_TIMEOUT),
            stop_command,
            disabled: p.disabled.unwrap_or(false),
            logs,
        })
    }

    /// The variables of one `env`; `site(step, key)` places a problem at one of its entries.
    pub(crate) fn env(
        &self,
        env: &RawEnv,
        site: &dyn Fn(Seg, bool) -> Site,
        found: &mut Found,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut push = |key: &str, value: Option<String>, at: &dyn Fn() -> Site| {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                found.push((at(), format!("invalid environment variable name `{key}`")));
                return;
            }
            let value = value.or_else(|| self.invoking_env.get(key).cloned());
            if let Some(v) = value {
                if v.contains('\0') {
                    found.push((at(), format!("the value of `{key}` contains a NUL byte")));
                } else {
                    out.push((key.to_owned(), v));
                }
            }
        };
        match env {
            RawEnv::Map(map) => {
                for (k, v) in map {
                    let value = v.as_ref().map(Scalar::to_text);
                    push(k, value, &|| site(Seg::Key(k.clone()), true));
                }
            }
            RawEnv::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    let at = || site(Seg::Index(i), false);
                    match item.split_once('=') {
                        Some((k, v)) => push(k, Some(v.to_owned()), &at),
                        None => push(item, None, &at),
                    }
                }
            }
        }
        out
    }

    fn depends_on(
        &self,
        deps: Option<&RawDependsOn>,
        at: &Locator<'_>,
        dep_sites: &mut HashMap<(String, String), DepAt>,
        found: &mut Found,
    ) -> Vec<Dependency> {
        let name = at.name;
        // (dependency, condition, where it is named, whether the condition is `{condition:}`,
        // `restart: true`)
        let entries: Vec<(&String, Option<&String>, DepAt, bool, bool)> = match deps {
            None => Vec::new(),
            Some(RawDependsOn::List(items)) => items
                .iter()
                .enumerate()
                .map(|(i, d)| (d, None, DepAt::Item(i), false, false))
                .collect(),
            Some(RawDependsOn::Map(map)) => map
                .iter()
                .map(|(d, spec)| match spec {
                    None => (d, None, DepAt::Key, false, false),
                    Some(RawDepSpec::Condition(c)) => (d, Some(c), DepAt::Key, false, false),
                    Some(RawDepSpec::Long(l)) => (
                        d,
                        Some(&l.condition),
                        DepAt::Key,
                        true,
                        l.restart.unwrap_or(false),
                    ),
                })
                .collect(),
        };
        let mut out: Vec<Dependency> = Vec::new();
        for (dep, condition, dep_at, long, restart) in entries {
            if !self.names.contains(dep) {
                let known: Vec<&str> = self.names.iter().map(String::as_str).collect();
                let mut m = format!("`{name}` depends on `{dep}`, which is not a defined process");
                if let Some(s) = suggest(dep, known.iter().copied()) {
                    let _ = write!(m, "; did you mean `{s}`?");
                }
                found.push((dep_at.site(name, dep), m));
                continue;
            }
            let c = condition.map_or("started", String::as_str);
            let Some(condition) = parse_condition(c) else {
                let all = ["started", "healthy", "completed", "completed_successfully"];
                let mut m = format!("unknown condition `{c}`");
                match suggest(c, all.iter().copied()) {
                    Some(s) => {
                        let _ = write!(m, ", did you mean `{s}`?");
                    }
                    None => {
                        let _ = write!(m, ", expected one of `{}`", all.join("`, `"));
                    }
                }
                let mut rel = vec![Seg::Key("depends_on".into()), Seg::Key(dep.clone())];
                if long {
                    rel.push(Seg::Key("condition".into()));
                }
                found.push((at.seg(rel, false), m));
                continue;
            };
            dep_sites
                .entry((name.to_owned(), dep.clone()))
                .or_insert(dep_at);
            if let Some(existing) = out.iter_mut().find(|d| &d.name == dep) {
                existing.condition = condition;
                existing.restart = restart;
            } else {
                out.push(Dependency {
                    name: dep.clone(),
                    condition,
                    restart,
                });
            }
        }
        out
    }
}

/// `site` places a problem at one of the keys of `logs:`.
pub(crate) fn logs(
    raw: Option<&RawLogs>,
    site: impl Fn(&str) -> Site,
    base: LogPolicy,
    found: &mut Found,
) -> LogPolicy {
    let Some(raw) = raw else { return base };
    let max_size = match &raw.max_size {
        None => base.max_size,
        Some(s) => match parse_size(s) {
            Ok(0) => {
                found.push((site("max_size"), "`max_size` must be greater than 0".into()));
                base.max_size
            }
            Ok(n) => n,
            Err(m) => {
                found.push((site("max_size"), m));
                base.max_size
            }
        },
    };
    let keep = match raw.keep {
        Some(n) if n > defaults::LOG_KEEP_MAX => {
            found.push((
                site("keep"),
                format!(
                    "`keep` is {n}; at most {} rotated copies are kept",
                    defaults::LOG_KEEP_MAX
                ),
            ));
            base.keep
        }
        other => other.unwrap_or(base.keep),
    };
    LogPolicy {
        max_size,
        keep,
        max_age: raw.max_age.or(base.max_age),
        compress: raw.compress.unwrap_or(base.compress),
        rotate_every: raw
            .rotate_every
            .map(|r| match r {
                RawRotateEvery::Hourly => RotateEvery::Hourly,
                RawRotateEvery::Daily => RotateEvery::Daily,
            })
            .or(base.rotate_every),
    }
}

fn to_command(c: &RawCommand, key: &str, at: &Locator<'_>, found: &mut Found) -> Option<Command> {
    match c {
        RawCommand::Shell(s) if s.trim().is_empty() => {
            found.push((at.value(&[key]), format!("`{key}` is empty")));
            None
        }
        RawCommand::Argv(v) if v.first().is_none_or(|s| s.to_text().is_empty()) => {
            found.push((
                at.value(&[key]),
                format!("`{key}` needs a program as its first item"),
            ));
            None
        }
        RawCommand::Shell(s) => Some(Command::Shell(s.clone())),
        RawCommand::Argv(v) => Some(Command::Argv(v.iter().map(Scalar::to_text).collect())),
    }
}

fn parse_condition(c: &str) -> Option<Condition> {
    Some(match c {
        "started" => Condition::Started,
        "healthy" => Condition::Healthy,
        "completed" => Condition::Completed,
        "completed_successfully" => Condition::CompletedSuccessfully,
        _ => return None,
    })
}

fn restart(r: &RawRestart, at: &Locator<'_>, found: &mut Found) -> RestartPolicy {
    let all = ["no", "on-failure", "always"];
    match r {
        RawRestart::Bool(false) => RestartPolicy::No,
        RawRestart::Bool(true) => {
            found.push((
                at.value(&["restart"]),
                "`restart: true` is ambiguous; use `on-failure` or `always`".into(),
            ));
            RestartPolicy::OnFailure
        }
        RawRestart::Name(n) => match n.as_str() {
            "no" => RestartPolicy::No,
            "on-failure" => RestartPolicy::OnFailure,
            "always" => RestartPolicy::Always,
            other => {
                let mut m = format!("unknown restart policy `{other}`");
                match suggest(other, all.iter().copied()) {
                    Some(s) => {
                        let _ = write!(m, ", did you mean `{s}`?");
                    }
                    None => m.push_str(", expected `no`, `on-failure` or `always`"),
                }
                found.push((at.value(&["restart"]), m));
                RestartPolicy::OnFailure
            }
        },
    }
}
