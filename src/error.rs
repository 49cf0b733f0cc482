//! The catalogue of what procs says when something goes wrong, its one grammar and the
//! exit codes.
//!
//! Owns: [`Error`], every user-facing error situation, each variant naming what went wrong
//! and where, and knowing its message, its `caused by:` lines, its `hint:` and its exit
//! code; and [`render`], the one grammar every error reaches a person in (`error: …`,
//! `caused by: …`, `hint: …`, then details such as the last lines of a log).
//! Must not: build messages for a situation anywhere else. A command that meets one of
//! these situations returns the variant, so one situation reads the same from every
//! command (and from the supervisor, which answers with the variant turned into an `ErrorBody`).
//! Invariants: exit codes are 0 ok, 1 failed, 2 usage or config (nothing was changed),
//! 3 a declared port is held by a foreign process. Anything that is not in the catalogue
//! (an I/O error with `anyhow` context) renders as `error:` plus its chain, exit 1.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::ConfigError;

/// Process exit codes (SPEC §6).
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// A process failed, timed out or survived a stop.
    pub const FAILED: i32 = 1;
    /// Usage or config error; nothing was changed.
    pub const USAGE: i32 = 2;
    /// A declared port is held by a foreign process.
    pub const PORT_HELD: i32 = 3;
}

/// One process that is not where a request wanted it (a `caused by:` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotWhere {
    pub name: String,
    pub state: String,
    pub reason: String,
}

/// Every error situation procs reports to a person.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `-f` and no `procs.yaml` in the working directory or any parent.
    #[error("no `procs.yaml` found in `{}` or any parent directory", dir.display())]
    NoConfig { dir: PathBuf },

    /// `-f FILE` names no file.
    #[error("configuration file `{}` not found", given.display())]
    ConfigFileMissing { given: PathBuf },

    /// The configuration is invalid: located problems, rendered by `config`.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// A command was given a process name the project does not know.
    #[error("no process named `{name}` in `{}`", file.display())]
    UnknownProcess {
        name: String,
        /// The project's config file.
        file: PathBuf,
        /// The names the project knows (for "did you mean").
        known: Vec<String>,
    },

    /// Connecting to the socket of a supervisor that answered a moment ago failed.
    #[error("cannot reach the supervisor")]
    SupervisorUnreachable {
        socket: PathBuf,
        error: String,
        log: PathBuf,
    },

    /// Something holds the supervisor lock but nothing answers on the socket.
    #[error("a supervisor holds the lock but does not answer on its socket")]
    SupervisorUnresponsive { waited: Duration, log: PathBuf },

    /// The supervisor accepted a request but sent nothing for longer than the command
    /// may wait (it is stopped, or stuck): the CLI keeps its own deadline.
    #[error("the supervisor stopped answering")]
    SupervisorStalled {
        waited: Duration,
        pid: Option<i32>,
        log: PathBuf,
    },

    /// `state.json` exists but cannot be read: what runs is unknown, never "nothing".
    #[error("cannot read the registry {}", path.display())]
    RegistryUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A launched supervisor exited (or said nothing) instead of answering "ready".
    #[error("the supervisor did not start")]
    SupervisorDidNotStart { log: PathBuf, tail: String },

    /// The supervisor closed a request's connection without a final answer.
    #[error("the supervisor closed the connection before answering")]
    SupervisorHungUp { log: PathBuf },

    /// Reading a request's answer failed.
    #[error("lost the connection to the supervisor")]
    ConnectionLost {
        #[source]
        source: std::io::Error,
    },

    /// The supervisor answered with a frame that does not fit the request.
    #[error("unexpected answer from the supervisor: {answer}")]
    UnexpectedAnswer { answer: String },

    /// The supervisor refused a request; its own message, code and hint.
    #[error("{message}")]
    Supervisor {
        code: i32,
        message: String,
        hint: Option<String>,
    },

    /// A declared port of `process` is held by a foreign process.
    #[error("cannot start `{process}`: {held}")]
    PortHeld {
        process: String,
        /// `port 8080 is held by pid 4242 (…)` (`crate::ports::held_message`).
        held: String,
        /// The other processes that are not ready.
        others: Vec<NotWhere>,
        details: String,
    },

    /// Processes were not ready within the timeout.
    #[error("timed out after {} waiting for {}", humantime::format_duration(*after), names(bad))]
    TimedOut {
        after: Duration,
        bad: Vec<NotWhere>,
        details: String,
    },

    /// Processes failed on the way up.
    #[error("{} of {total} processes not ready: {}", bad.len(), names(bad))]
    NotReady {
        total: usize,
        bad: Vec<NotWhere>,
        details: String,
    },

    /// `down`/`stop` through the supervisor left processes that did not stop.
    #[error("{} did not stop cleanly", names(bad))]
    NotStopped { bad: Vec<NotWhere>, details: String },

    /// `procs ui` was started without a terminal to draw on.
    #[error("`procs ui` needs a terminal, and {stream} is not one")]
    NotATerminal { stream: &'static str },

    /// `down`/`stop` without a supervisor left processes alive.
    #[error("some processes survived the stop")]
    Survivors { survivors: Vec<(String, Vec<i32>)> },

    /// `procs dashboard --listen` on an address other than loopback without the flag.
    #[error("refusing to serve the dashboard on {addr}, which is not a loopback address")]
    ListenNotLoopback { addr: String },

    /// The dashboard could not bind its address.
    #[error("cannot listen on {addr}")]
    DashboardBind { addr: String, error: String },

    /// An API request named a project `procs ls` does not know.
    #[error("no project with id `{id}` on this machine")]
    UnknownProject { id: String },

    /// An API request with a bad parameter.
    #[error("{message}")]
    BadRequest { message: String },

    /// No usable cgroup: membership comes from ancestry and tags (`procs doctor`'s line).
    #[error(
        "no writable cgroup ({why}): tracking by ancestry and tags; a process that clears its \
         environment after the supervisor dies cannot be found"
    )]
    NoCgroup {
        /// A [`crate::platform::cgroup::Unusable`] as worded here, or what the registry says.
        why: String,
    },

    /// The registry names a project cgroup that no longer exists (removed, or a reboot).
    #[error("the registry names the cgroup {}, which no longer exists", path.display())]
    CgroupGone { path: PathBuf },

    /// The registry names, as this project's cgroup, a path that is not one
    /// (`procs-<id>` under a cgroup v2 mount): it is never read, signalled or removed.
    #[error("the registry names {} as this project's cgroup, which it is not: ignored", path.display())]
    CgroupNotOurs { path: PathBuf, project_id: String },

    /// A project cgroup (or one of its leaves) could not be removed after its processes
    /// were stopped.
    #[error("cannot remove the cgroup {}", path.display())]
    CgroupNotRemoved {
        path: PathBuf,
        /// The kernel's answer to `rmdir` (empty when it was not tried).
        error: String,
        /// Processes in it that procs did not put there (never signalled): pid, command.
        strangers: Vec<(i32, String)>,
    },

    /// `procs doctor`: a project cgroup with no supervisor to use it.
    #[error("the cgroup {} of {} is left behind (no supervisor runs for it)", path.display(), owner_of(project_dir.as_deref(), *dir_gone))]
    CgroupLeftBehind {
        path: PathBuf,
        /// The project's directory, as the project index knows it.
        project_dir: Option<PathBuf>,
        dir_gone: bool,
        /// Whether it is this project's cgroup (`doctor --fix` cleans only those).
        ours: bool,
        /// The processes still in it: pid, command.
        holds: Vec<(i32, String)>,
    },
}

fn owner_of(dir: Option<&std::path::Path>, gone: bool) -> String {
    match (dir, gone) {
        (Some(dir), false) => format!("the project in {}", dir.display()),
        (Some(dir), true) => format!("the project in {} (directory gone)", dir.display()),
        (None, _) => "a project procs no longer knows".to_owned(),
    }
}

fn pid_list(pids: &[(i32, String)]) -> String {
    let list: Vec<String> = pids.iter().map(|(p, c)| format!("{p} ({c})")).collect();
    list.join(", ")
}

impl std::fmt::Display for crate::platform::cgroup::Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::platform::cgroup::{NO_CGROUP_ENV, Unusable};
        match self {
            Unusable::Disabled => write!(f, "{NO_CGROUP_ENV} is set"),
            Unusable::NoHierarchy => write!(f, "no cgroup v2 hierarchy is mounted"),
            Unusable::NotInOne => write!(f, "this process is in no cgroup v2"),
            Unusable::OwnRemoved => write!(f, "this process's cgroup was removed"),
            Unusable::ReadOnly { mount } => {
                write!(f, "the cgroup v2 mount {} is read-only", mount.display())
            }
            Unusable::NotWritable { path } => write!(
                f,
                "the cgroup {} is not writable (not root, no delegated subtree)",
                path.display()
            ),
            Unusable::CannotCreate { path, error } => {
                write!(f, "cannot create the cgroup {}: {error}", path.display())
            }
        }
    }
}

fn names(bad: &[NotWhere]) -> String {
    let names: Vec<&str> = bad.iter().map(|p| p.name.as_str()).collect();
    names.join(", ")
}

fn not_where(bad: &[NotWhere]) -> Vec<String> {
    bad.iter()
        .map(|p| format!("`{}` is {}: {}", p.name, p.state, p.reason))
        .collect()
}

impl Error {
    /// The exit code of this situation.
    pub fn code(&self) -> i32 {
        match self {
            Self::NoConfig { .. }
            | Self::ConfigFileMissing { .. }
            | Self::Config(_)
            | Self::UnknownProcess { .. }
            | Self::NotATerminal { .. }
            | Self::ListenNotLoopback { .. }
            | Self::UnknownProject { .. }
            | Self::BadRequest { .. } => exit::USAGE,
            Self::PortHeld { .. } => exit::PORT_HELD,
            Self::Supervisor { code, .. } => *code,
            Self::SupervisorUnreachable { .. }
            | Self::SupervisorUnresponsive { .. }
            | Self::SupervisorDidNotStart { .. }
            | Self::SupervisorHungUp { .. }
            | Self::SupervisorStalled { .. }
            | Self::RegistryUnreadable { .. }
            | Self::ConnectionLost { .. }
            | Self::UnexpectedAnswer { .. }
            | Self::TimedOut { .. }
            | Self::NotReady { .. }
            | Self::NotStopped { .. }
            | Self::Survivors { .. }
            | Self::DashboardBind { .. }
            | Self::NoCgroup { .. }
            | Self::CgroupGone { .. }
            | Self::CgroupNotOurs { .. }
            | Self::CgroupNotRemoved { .. }
            | Self::CgroupLeftBehind { .. } => exit::FAILED,
        }
    }

    /// The `caused by:` lines this situation adds before its error chain.
    pub fn causes(&self) -> Vec<String> {
        match self {
            Self::SupervisorUnreachable { socket, error, .. } => {
                vec![format!("{}: {error}", socket.display())]
            }
            Self::SupervisorUnresponsive { waited, .. } => {
                vec![format!(
                    "no answer within {}",
                    humantime::format_duration(*waited)
                )]
            }
            Self::SupervisorStalled { waited, pid, .. } => {
                let who = pid.map_or_else(|| "it".to_owned(), |pid| format!("pid {pid}"));
                vec![format!(
                    "{who} sent nothing within {}",
                    humantime::format_duration(*waited)
                )]
            }
            Self::PortHeld { others: bad, .. }
            | Self::TimedOut { bad, .. }
            | Self::NotReady { bad, .. }
            | Self::NotStopped { bad, .. } => not_where(bad),
            Self::DashboardBind { addr, error } => vec![format!("{addr}: {error}")],
            Self::CgroupNotOurs { project_id, .. } => vec![format!(
                "this project's cgroup is `{}{project_id}` under a cgroup v2 mount",
                crate::platform::cgroup::PROJECT_PREFIX
            )],
            Self::CgroupNotRemoved {
                error, strangers, ..
            } => {
                let mut causes: Vec<String> = std::iter::once(error.clone())
                    .filter(|e| !e.is_empty())
                    .collect();
                if !strangers.is_empty() {
                    causes.push(format!(
                        "it holds {}, which procs did not put there",
                        pid_list(strangers)
                    ));
                }
                causes
            }
            Self::CgroupLeftBehind { holds, .. } if holds.is_empty() => {
                vec!["it is empty".to_owned()]
            }
            Self::CgroupLeftBehind { holds, .. } => vec![format!("it holds {}", pid_list(holds))],
            Self::Survivors { survivors } => {
                let list: Vec<String> = survivors
                    .iter()
                    .map(|(n, p)| format!("`{n}`: pids {p:?}"))
                    .collect();
                vec![list.join("; ")]
            }
            _ => Vec::new(),
        }
    }

    /// The `hint:` line, if this situation has one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::NoConfig { .. } => {
                Some("create a `procs.yaml` in the project directory, or pass `-f FILE`".to_owned())
            }
            Self::UnknownProcess { name, known, .. } => Some(
                match crate::suggest::closest(name, known.iter().map(String::as_str)) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None if known.is_empty() => "this project has no processes yet".to_owned(),
                    None => format!("known processes: {}", known.join(", ")),
                },
            ),
            Self::SupervisorUnreachable { log, .. }
            | Self::SupervisorDidNotStart { log, .. }
            | Self::SupervisorHungUp { log } => Some(format!("see {}", log.display())),
            Self::SupervisorUnresponsive { log, .. } => Some(format!(
                "it may be starting or stuck: try again, see {}, or run `procs doctor`",
                log.display()
            )),
            Self::SupervisorStalled { log, .. } => Some(format!(
                "it may be stopped (SIGSTOP) or stuck: see {}, or run `procs doctor`",
                log.display()
            )),
            Self::RegistryUnreadable { path, .. } => Some(format!(
                "check the permissions of {}; `procs doctor` lists the processes of this project",
                path.display()
            )),
            Self::Supervisor { hint, .. } => hint.clone(),
            Self::ListenNotLoopback { .. } => Some(
                "anyone who can reach that address and learns the token (sent in clear over plain \
                 HTTP) can start, stop and read the logs of your processes as you; add \
                 `--allow-remote` if that is really what you want"
                    .to_owned(),
            ),
            Self::DashboardBind { .. } => {
                Some("pick another port with `--port`, or omit it to get a free one".to_owned())
            }
            Self::UnknownProject { .. } => {
                Some("`GET /api/v1/projects` (or `procs ls`) lists the projects".to_owned())
            }
            Self::PortHeld { held, .. } if held.contains(crate::ports::NEVER_STOPS) => Some(
                "stop that process yourself (or ask its owner to), or change the port in `procs.yaml`"
                    .to_owned(),
            ),
            Self::PortHeld { .. } => Some(
                "stop that process, or run `procs up --kill-port-owners` to have procs stop it \
                 (SIGTERM, then SIGKILL after 5s)"
                    .to_owned(),
            ),
            Self::TimedOut { .. } => Some(
                "raise it with `--timeout`, or check the health check with `procs logs`".to_owned(),
            ),
            Self::CgroupGone { .. } => Some(
                "finding this project's processes by ancestry and tags instead; `procs doctor` \
                 lists what it finds"
                    .to_owned(),
            ),
            Self::CgroupNotOurs { .. } => Some(
                "finding this project's processes by ancestry and tags instead; `procs down` \
                 writes a clean registry"
                    .to_owned(),
            ),
            Self::CgroupNotRemoved { strangers, path, .. } if !strangers.is_empty() => Some(format!(
                "procs never signals a process it did not start: stop it, or move it out \
                 (write its pid to another cgroup's `cgroup.procs`), then run `procs doctor \
                 --fix` to remove {}",
                path.display()
            )),
            Self::CgroupNotRemoved { .. } => {
                Some("`procs doctor` shows what holds it".to_owned())
            }
            Self::CgroupLeftBehind { ours: true, .. } => {
                Some("`procs doctor --fix` stops what is in it and removes it".to_owned())
            }
            Self::CgroupLeftBehind {
                project_dir: Some(dir),
                dir_gone: false,
                ..
            } => Some(format!(
                "run `procs doctor --fix` in {} (it cleans only its own project's cgroups)",
                dir.display()
            )),
            Self::CgroupLeftBehind { path, .. } => Some(format!(
                "no project directory can clean it up: stop what is in it and remove it yourself \
                 (`echo 1 > {p}/cgroup.kill`, then `rmdir` its directories, deepest first)",
                p = path.display()
            )),
            Self::NotATerminal { .. } => Some(
                "run it in a terminal; scripts can use `procs status --json` and `procs logs -f`"
                    .to_owned(),
            ),
            _ => None,
        }
    }

    /// Text printed after the grammar's lines (the last lines of logs).
    pub fn details(&self) -> Option<&str> {
        match self {
            Self::SupervisorDidNotStart { tail: details, .. }
            | Self::PortHeld { details, .. }
            | Self::TimedOut { details, .. }
            | Self::NotReady { details, .. }
            | Self::NotStopped { details, .. } => {
                Some(details.as_str()).filter(|d| !d.trim().is_empty())
            }
            _ => None,
        }
    }
}

impl Error {
    /// The situation on one line: the message and its causes (a `doctor` finding, a log line).
    pub fn one_line(&self) -> String {
        let mut line = self.to_string();
        for cause in self.causes() {
            line.push_str(": ");
            line.push_str(&cause);
        }
        line
    }
}

/// Render a situation that does not stop the command, in the same grammar: `warning: …`,
/// `caused by: …`, `hint: …`.
pub fn render_warning(err: &Error) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "warning: {err}");
    for cause in err.causes() {
        let _ = writeln!(out, "caused by: {cause}");
    }
    if let Some(hint) = err.hint() {
        let _ = writeln!(out, "hint: {hint}");
    }
    out
}

/// Render an error chain in the one grammar and pick its exit code.
pub fn render(err: &anyhow::Error) -> (String, i32) {
    let config = match err.downcast_ref::<Error>() {
        Some(Error::Config(config)) => Some(config),
        _ => err.downcast_ref::<ConfigError>(),
    };
    if let Some(config) = config {
        let mut text = config.to_string();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        return (text, exit::USAGE);
    }
    let mut out = String::new();
    let _ = writeln!(out, "error: {err}");
    let known = err.downcast_ref::<Error>();
    for cause in known.map(Error::causes).unwrap_or_default() {
        let _ = writeln!(out, "caused by: {cause}");
    }
    for cause in err.chain().skip(1) {
        let _ = writeln!(out, "caused by: {cause}");
    }
    if let Some(hint) = known.and_then(Error::hint) {
        let _ = writeln!(out, "hint: {hint}");
    }
    if let Some(details) = known.and_then(Error::details) {
        out.push_str(details);
        if !details.ends_with('\n') {
            out.push('\n');
        }
    }
    (out, known.map_or(exit::FAILED, Error::code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_held_renders_in_the_grammar() {
        let err = anyhow::Error::new(Error::PortHeld {
            process: "web".into(),
            held: "port 8080 is held by pid 42 (python3 -m http.server, user alice)".into(),
            others: vec![NotWhere {
                name: "api".into(),
                state: "failed".into(),
                reason: "dependency `web` failed".into(),
            }],
            details: String::new(),
        });
        let (text, code) = render(&err);
        assert_eq!(code, 3);
        assert_eq!(
            text,
            "error: cannot start `web`: port 8080 is held by pid 42 (python3 -m http.server, user alice)\n\
             caused by: `api` is failed: dependency `web` failed\n\
             hint: stop that process, or run `procs up --kill-port-owners` to have procs stop it \
             (SIGTERM, then SIGKILL after 5s)\n"
        );
    }

    #[test]
    fn a_port_kill_port_owners_refused_to_clear_never_hints_at_it() {
        let err = anyhow::Error::new(Error::PortHeld {
            process: "web".into(),
            held: format!(
                "port 8080 is held by pid 1 (init, user root); {} pid 1: stop it yourself",
                crate::ports::NEVER_STOPS
            ),
            others: Vec::new(),
            details: String::new(),
        });
        let (text, code) = render(&err);
        assert_eq!(code, 3);
        assert_eq!(
            text,
            "error: cannot start `web`: port 8080 is held by pid 1 (init, user root); \
             --kill-port-owners never stops pid 1: stop it yourself\n\
             hint: stop that process yourself (or ask its owner to), or change the port in \
             `procs.yaml`\n"
        );
    }

    #[test]
    fn an_unknown_name_suggests_the_closest_or_lists_them() {
        let err = |name: &str| {
            render(&anyhow::Error::new(Error::UnknownProcess {
                name: name.into(),
                file: "/p/procs.yaml".into(),
                known: vec!["api".into(), "worker".into()],
            }))
        };
        assert_eq!(
            err("wroker"),
            (
                "error: no process named `wroker` in `/p/procs.yaml`\n\
                 hint: did you mean `worker`?\n"
                    .to_owned(),
                2
            )
        );
        assert_eq!(
            err("zzz").0,
            "error: no process named `zzz` in `/p/procs.yaml`\n\
             hint: known processes: api, worker\n"
        );
    }

    #[test]
    fn a_source_becomes_a_cause_and_details_come_last() {
        let err = anyhow::Error::new(Error::ConnectionLost {
            source: std::io::Error::other("reset by peer"),
        });
        assert_eq!(
            render(&err),
            (
                "error: lost the connection to the supervisor\ncaused by: reset by peer\n"
                    .to_owned(),
                1
            )
        );
        let err = anyhow::Error::new(Error::SupervisorDidNotStart {
            log: "/p/.procs/logs/procs.log".into(),
            tail: "boom".into(),
        });
        assert_eq!(
            render(&err).0,
            "error: the supervisor did not start\nhint: see /p/.procs/logs/procs.log\nboom\n"
        );
    }

    #[test]
    fn supervisor_situations_name_the_socket_and_the_log() {
        let err = anyhow::Error::new(Error::SupervisorUnreachable {
            socket: "/p/.procs/supervisor.sock".into(),
            error: "Connection refused (os error 111)".into(),
            log: "/p/.procs/logs/procs.log".into(),
        });
        assert_eq!(
            render(&err),
            (
                "error: cannot reach the supervisor
\
                 caused by: /p/.procs/supervisor.sock: Connection refused (os error 111)
\
                 hint: see /p/.procs/logs/procs.log
"
                .to_owned(),
                1
            )
        );
        let err = anyhow::Error::new(Error::Supervisor {
            code: exit::USAGE,
            message: "malformed request".into(),
            hint: None,
        });
        assert_eq!(
            render(&err),
            (
                "error: malformed request
"
                .to_owned(),
                2
            )
        );
    }

    #[test]
    fn plain_errors_list_their_chain() {
        let err = anyhow::anyhow!("disk full").context("cannot write `state.json`");
        let (text, code) = render(&err);
        assert_eq!(code, 1);
        assert_eq!(
            text,
            "error: cannot write `state.json`\ncaused by: disk full\n"
        );
    }
}
