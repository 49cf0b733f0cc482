//! The operations the dashboard's HTTP API and `procs mcp` offer, in one place: list the
//! projects, read a project's status and logs, and send it lifecycle requests.
//!
//! Owns: the mapping from an API-level operation to a control request or a file read.
//! Invariants: state comes from the supervisor (its answer, or a live view of its event
//! stream the caller keeps: [`status_from_stream`]) or, with no supervisor, from the
//! registry (read once per call, verified like `status --json`); nothing here polls. Every failure is
//! a catalogue [`Error`] so callers render it in the project's wording. Blocking: callers
//! on an async runtime run these on a blocking thread.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::{down, launch, project, status};
use crate::config;
use crate::control::client::Connection;
use crate::control::protocol::{Outcome, ProcessOutcome, Request, Response, Snapshot, UpRequest};
use crate::error::{Error, exit};
use crate::index;
use crate::logs;
use crate::paths::Paths;
use crate::registry::ProcState;

/// How long an action waits for readiness before answering with what it has.
pub const ACTION_TIMEOUT: Duration = Duration::from_mins(1);

/// A project `procs ls` knows.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectInfo {
    /// Stable id: the hash of its directory (`status --json`'s `project_id`).
    pub id: String,
    pub name: String,
    pub dir: String,
    #[serde(skip)]
    pub paths: Paths,
}

/// Every registered project whose directory still exists.
pub fn projects() -> Vec<ProjectInfo> {
    let _ = index::prune();
    index::load()
        .into_iter()
        .map(|entry| {
            let paths = Paths::with_state_dir(&entry.project_dir, entry.state_dir.clone());
            ProjectInfo {
                id: paths.project_id.clone(),
                name: entry.name,
                dir: entry.project_dir.display().to_string(),
                paths,
            }
        })
        .collect()
}

/// The project with this id.
pub fn find(id: &str) -> Result<ProjectInfo, Error> {
    projects()
        .into_iter()
        .find(|p| p.id == id)
        .ok_or_else(|| Error::UnknownProject { id: id.to_owned() })
}

fn unknown(project: &ProjectInfo, name: &str, known: Vec<String>) -> Error {
    Error::UnknownProcess {
        name: name.to_owned(),
        file: config_file(project).unwrap_or_else(|| project.paths.project_dir.clone()),
        known,
    }
}

fn config_file(project: &ProjectInfo) -> Option<PathBuf> {
    config::discover(&project.paths.project_dir)
}

/// `status --json` of the project (only `name` when given; an unknown name is an error).
pub fn status(project: &ProjectInfo, name: Option<&str>) -> anyhow::Result<serde_json::Value> {
    let registry = status::load_registry(&project.paths)?;
    let names: Vec<String> = name.map(str::to_owned).into_iter().collect();
    if let Some(name) = name
        && !registry.processes.contains_key(name)
    {
        return Err(unknown(project, name, registry.processes.keys().cloned().collect()).into());
    }
    let json = status::collect(&project.paths, &registry, &names);
    Ok(serde_json::to_value(json)?)
}

/// `status --json` of the project from a supervisor's live view (its subscription's
/// snapshot with every later event applied): no registry read; CPU and memory from /proc.
pub fn status_from_stream(
    project: &ProjectInfo,
    view: &Snapshot,
    name: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    let names: Vec<String> = name.map(str::to_owned).into_iter().collect();
    if let Some(name) = name
        && !view.processes.iter().any(|p| p.name == name)
    {
        let known = view.processes.iter().map(|p| p.name.clone()).collect();
        return Err(unknown(project, name, known).into());
    }
    let json = status::collect_live(&project.paths, view, &names);
    Ok(serde_json::to_value(json)?)
}

/// The names of the project's processes: recorded ones, else the config's.
pub fn names(project: &ProjectInfo) -> anyhow::Result<Vec<String>> {
    let registry = status::load_registry(&project.paths)?;
    if !registry.processes.is_empty() {
        return Ok(registry.processes.keys().cloned().collect());
    }
    Ok(load_config(project)?.processes.keys().cloned().collect())
}

/// An unknown process name is an error naming the known ones.
pub fn check_process(project: &ProjectInfo, name: &str) -> anyhow::Result<()> {
    let known = names(project)?;
    if known.iter().any(|n| n == name) {
        Ok(())
    } else {
        Err(unknown(project, name, known).into())
    }
}

fn load_config(project: &ProjectInfo) -> anyhow::Result<config::Config> {
    let file = config_file(project).ok_or_else(|| Error::NoConfig {
        dir: project.paths.project_dir.clone(),
    })?;
    project::load_file(&project::Project {
        file,
        paths: project.paths.clone(),
    })
}

/// A lifecycle verb of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Restart,
    Up,
    Down,
}

impl Action {
    /// The verbs a process takes.
    pub fn for_process(verb: &str) -> Option<Self> {
        match verb {
            "start" => Some(Self::Start),
            "stop" => Some(Self::Stop),
            "restart" => Some(Self::Restart),
            _ => None,
        }
    }

    /// The verbs a project takes.
    pub fn for_project(verb: &str) -> Option<Self> {
        match verb {
            "up" => Some(Self::Up),
            "down" => Some(Self::Down),
            "restart" => Some(Self::Restart),
            _ => None,
        }
    }
}

/// Run `action` on `names` of `project` (empty = the whole project) and answer with the
/// supervisor's outcome. Starting with no supervisor running starts one (like `procs up`);
/// stopping with none running stops what is left of the project (adopted or leftover
/// processes) the way `procs down` does, by registry and membership.
pub fn act(project: &ProjectInfo, action: Action, names: &[String]) -> anyhow::Result<Outcome> {
    for name in names {
        check_process(project, name)?;
    }
    act_checked(project, action, names)
}

/// An unknown name among `names` is an error naming the `known` ones (a caller's own
/// list, such as the processes of a supervisor's live view).
pub fn check_among(project: &ProjectInfo, names: &[String], known: &[String]) -> Result<(), Error> {
    match names.iter().find(|n| !known.contains(n)) {
        Some(name) => Err(unknown(project, name, known.to_vec())),
        None => Ok(()),
    }
}

/// [`act`] for names the caller already checked ([`check_among`]): no registry read.
pub fn act_checked(
    project: &ProjectInfo,
    action: Action,
    names: &[String],
) -> anyhow::Result<Outcome> {
    let timeout_ms = ACTION_TIMEOUT.as_millis() as u64;
    let running = launch::running(&project.paths);
    let request = match action {
        Action::Up => return up(project, names),
        Action::Start | Action::Restart if !running => return up(project, names),
        Action::Stop | Action::Down if !running => return stop_locally(project, names),
        Action::Start => Request::Start {
            names: names.to_vec(),
            timeout_ms,
        },
        // No names: the rolling restart of the whole stack (`procs restart`).
        Action::Restart => Request::Restart {
            names: names.to_vec(),
            timeout_ms,
        },
        Action::Stop => Request::Stop {
            names: names.to_vec(),
            timeout_ms: None,
        },
        Action::Down => Request::Down {
            names: names.to_vec(),
            timeout_ms: None,
        },
    };
    send(&project.paths, request)
}

/// `procs down`'s supervisor-less stop, answered as an outcome: every process it stopped,
/// stopped (processes that survive are an error).
fn stop_locally(project: &ProjectInfo, names: &[String]) -> anyhow::Result<Outcome> {
    let config = load_config(project).ok();
    let stopped = down::stop_without_supervisor(&project.paths, config.as_ref(), names, None)?;
    let note = if stopped.is_empty() {
        "nothing to stop".to_owned()
    } else {
        format!(
            "stopped (no supervisor was running): {}",
            stopped.join(", ")
        )
    };
    Ok(Outcome {
        processes: stopped
            .into_iter()
            .map(|name| ProcessOutcome {
                log: project.paths.log_file(&name).display().to_string(),
                name,
                state: ProcState::Stopped,
                reason: None,
                pid: None,
                ok: true,
                port_conflict: false,
                log_from: None,
                not_run: false,
            })
            .collect(),
        notes: vec![note],
        timed_out: false,
    })
}

fn up(project: &ProjectInfo, names: &[String]) -> anyhow::Result<Outcome> {
    let config = load_config(project)?;
    launch::ensure_within(&project.paths, &config.name, Duration::from_secs(5))?;
    send(
        &project.paths,
        Request::Up(UpRequest {
            config,
            env: project::invoking_env(),
            names: names.to_vec(),
            no_deps: false,
            wait: true,
            timeout_ms: ACTION_TIMEOUT.as_millis() as u64,
            kill_port_owners: false,
        }),
    )
}

fn send(paths: &Paths, request: Request) -> anyhow::Result<Outcome> {
    let unreachable = |e: std::io::Error| Error::SupervisorUnreachable {
        socket: paths.socket.clone(),
        error: e.to_string(),
        log: paths.supervisor_log.clone(),
    };
    let conn = Connection::send(paths, request).map_err(unreachable)?;
    conn.set_read_timeout(Some(ACTION_TIMEOUT + Duration::from_secs(30)))
        .map_err(unreachable)?;
    match conn.finish(|_| {}) {
        Ok(Response::Done(outcome)) => Ok(outcome),
        Ok(Response::Error(body)) => Err(Error::Supervisor {
            code: body.code,
            message: body.message,
            hint: body.hint,
        }
        .into()),
        Ok(other) => Err(Error::UnexpectedAnswer {
            answer: format!("{other:?}"),
        }
        .into()),
        Err(_) => Err(Error::SupervisorHungUp {
            log: paths.supervisor_log.clone(),
        }
        .into()),
    }
}

/// Which log lines to read.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Lines from the end (default 100).
    pub n: Option<usize>,
    /// Keep only lines matching this regular expression.
    pub grep: Option<regex::Regex>,
    /// Only output written in this last duration.
    pub since: Option<Duration>,
}

impl LogQuery {
    /// Parse the textual parameters (`grep` a regex, `since` a duration like `30s`).
    pub fn parse(n: Option<usize>, grep: Option<&str>, since: Option<&str>) -> Result<Self, Error> {
        let grep = grep
            .filter(|g| !g.is_empty())
            .map(|g| {
                regex::Regex::new(g).map_err(|e| Error::BadRequest {
                    message: format!("`grep` is not a regular expression: {e}"),
                })
            })
            .transpose()?;
        let since = since
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<u64>()
                    .map(Duration::from_secs)
                    .or_else(|_| humantime::parse_duration(s))
                    .map_err(|e| Error::BadRequest {
                        message: format!("`since` is not a duration ({e}); try 30s, 500ms, 2m"),
                    })
            })
            .transpose()?;
        Ok(Self { n, grep, since })
    }

    /// Whether a line passes the `grep` filter.
    pub fn keeps(&self, line: &str) -> bool {
        self.grep.as_ref().is_none_or(|re| re.is_match(line))
    }

    /// The tail query these parameters ask for (`n` defaults to 100; a `since` reaching back
    /// beyond the epoch means from the beginning, never an overflow).
    fn tail_query<'a>(&self, keep: &'a dyn Fn(&str) -> bool) -> logs::Query<'a> {
        logs::Query {
            lines: self.n.unwrap_or(100),
            since: self.since.map(|d| logs::millis(logs::cutoff(d))),
            until: None,
            keep,
            end: None,
        }
    }
}

/// One log line as the API answers it.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    /// RFC 3339-ish local time the line was written (as `procs logs --json`).
    pub time: String,
    pub process: String,
    pub line: String,
}

impl LogLine {
    pub fn new(process: &str, line: &logs::Line) -> Self {
        Self {
            time: logs::format_time(line.time),
            process: process.to_owned(),
            line: line.text.clone(),
        }
    }
}

/// The last lines of one process's log that pass `query` (`n` counts matching lines).
pub fn log_lines(
    project: &ProjectInfo,
    name: &str,
    query: &LogQuery,
) -> anyhow::Result<Vec<LogLine>> {
    check_process(project, name)?;
    Ok(tail_until(project, &[(name.to_owned(), None)], query))
}

/// The last lines of every process's log, merged by time (`n` counts matching lines of
/// the merge). Processes whose log is missing contribute nothing.
pub fn log_lines_all(project: &ProjectInfo, query: &LogQuery) -> anyhow::Result<Vec<LogLine>> {
    let logs: Vec<(String, Option<u64>)> = names(project)?.into_iter().map(|n| (n, None)).collect();
    Ok(tail_until(project, &logs, query))
}

/// The last lines of each `(process, end)` log, merged by time; `end` limits the live log
/// to the bytes before that offset (where a follower started: the tail and the follow
/// then neither miss nor repeat a line). Missing logs contribute nothing.
pub fn tail_until(
    project: &ProjectInfo,
    logs: &[(String, Option<u64>)],
    query: &LogQuery,
) -> Vec<LogLine> {
    let keep = |l: &str| query.keeps(l);
    let mut all: Vec<(i64, LogLine)> = Vec::new();
    for (name, end) in logs {
        let path = project.paths.log_file(name);
        let mut q = query.tail_query(&keep);
        q.end = *end;
        for line in logs::tail(&path, &q).unwrap_or_default() {
            all.push((line.time, LogLine::new(name, &line)));
        }
    }
    merge_tail(all, query.n.unwrap_or(100))
}

/// Order lines by time (stable: one log's own order is kept) and keep the last `n`.
fn merge_tail(mut all: Vec<(i64, LogLine)>, n: usize) -> Vec<LogLine> {
    all.sort_by_key(|(time, _)| *time);
    let skip = all.len().saturating_sub(n);
    all.into_iter().skip(skip).map(|(_, l)| l).collect()
}

/// The dependency graph of a project's configuration.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GraphJson {
    /// Processes that can start in parallel: layer `k` holds those whose longest chain of
    /// dependencies has length `k` (start order is layer by layer).
    pub layers: Vec<Vec<String>>,
    /// Each process's direct dependencies, with the condition it waits for.
    pub dependencies: std::collections::BTreeMap<String, Vec<DependencyJson>>,
}

/// One edge of [`GraphJson`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DependencyJson {
    pub name: String,
    /// `started`, `healthy`, `completed` or `completed_successfully`.
    pub condition: &'static str,
}

/// The project's dependency graph, from its configuration.
pub fn graph(project: &ProjectInfo) -> anyhow::Result<GraphJson> {
    let config = load_config(project)?;
    Ok(graph_of(&config)?)
}

fn graph_of(config: &config::Config) -> Result<GraphJson, config::graph::CycleError> {
    let graph = config::graph::Graph::new(config)?;
    let dependencies = config
        .processes
        .keys()
        .map(|name| {
            let deps = graph
                .dependencies(name)
                .into_iter()
                .map(|(name, c)| DependencyJson {
                    name,
                    condition: config::graph::condition_name(c),
                })
                .collect();
            (name.clone(), deps)
        })
        .collect();
    Ok(GraphJson {
        layers: graph.layers(),
        dependencies,
    })
}

/// The project's configuration file and its text.
pub fn config_text(project: &ProjectInfo) -> anyhow::Result<(PathBuf, String)> {
    let file = config_file(project).ok_or_else(|| Error::NoConfig {
        dir: project.paths.project_dir.clone(),
    })?;
    let text = std::fs::read_to_string(&file)
        .map_err(|e| anyhow::Error::from(e).context(format!("cannot read {}", file.display())))?;
    Ok((file, text))
}

/// The project of the current directory (or `-f`), as [`projects`] lists them.
pub fn current(global: &super::args::Global) -> anyhow::Result<ProjectInfo> {
    let located = project::locate(global)?;
    let dir = located.paths.project_dir.clone();
    let name = project::load_file(&located).map_or_else(
        |_| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        },
        |config| config.name,
    );
    Ok(ProjectInfo {
        id: located.paths.project_id.clone(),
        name,
        dir: dir.display().to_string(),
        paths: located.paths,
    })
}

/// An error as the API answers it: the one grammar's parts, and an HTTP-ish class.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorJson {
    pub error: String,
    pub causes: Vec<String>,
    pub hint: Option<String>,
    /// The exit code `procs` would end with.
    pub code: i32,
    #[serde(skip)]
    pub kind: ErrorKind,
}

/// What kind of failure an [`ErrorJson`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    BadRequest,
    Failed,
}

impl ErrorJson {
    pub fn from_anyhow(err: &anyhow::Error) -> Self {
        let known = err.downcast_ref::<Error>();
        let mut causes = known.map(Error::causes).unwrap_or_default();
        causes.extend(err.chain().skip(1).map(ToString::to_string));
        let kind = match known {
            Some(Error::UnknownProject { .. } | Error::UnknownProcess { .. }) => {
                ErrorKind::NotFound
            }
            Some(Error::BadRequest { .. }) => ErrorKind::BadRequest,
            _ => ErrorKind::Failed,
        };
        Self {
            error: err.to_string(),
            causes,
            hint: known.and_then(Error::hint),
            code: known.map_or(exit::FAILED, Error::code),
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_query_rejects_a_bad_regex_and_a_bad_duration_in_words() {
        let err = LogQuery::parse(None, Some("("), None).expect_err("bad regex");
        assert!(
            err.to_string()
                .contains("`grep` is not a regular expression")
        );
        let err = LogQuery::parse(None, None, Some("soon")).expect_err("bad since");
        assert!(err.to_string().contains("`since` is not a duration"));
        let q = LogQuery::parse(Some(3), Some("^ab"), Some("90")).expect("good");
        assert_eq!(q.since, Some(Duration::from_secs(90)));
        assert!(q.keeps("abc") && !q.keeps("cab"));
    }

    #[test]
    fn a_since_beyond_the_epoch_means_from_the_beginning_not_a_panic() {
        let q = LogQuery::parse(Some(5), None, Some("18446744073709551615")).expect("a number");
        let keep = |_: &str| true;
        assert_eq!(q.tail_query(&keep).since, Some(0));
    }

    #[test]
    fn merged_tail_orders_by_time_keeps_each_logs_order_and_the_last_n() {
        let line = |p: &str, t: &str| LogLine {
            time: String::new(),
            process: p.into(),
            line: t.into(),
        };
        let merged = merge_tail(
            vec![
                (5, line("a", "a1")),
                (7, line("a", "a2")),
                (1, line("b", "b1")),
                (7, line("b", "b2")),
            ],
            3,
        );
        let texts: Vec<&str> = merged.iter().map(|l| l.line.as_str()).collect();
        assert_eq!(texts, ["a1", "a2", "b2"]);
    }

    #[test]
    fn graph_lists_layers_and_conditions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("procs.yaml");
        std::fs::write(
            &file,
            "processes:\n  db:\n    command: x\n  web:\n    command: x\n    depends_on:\n      db: healthy\n",
        )
        .expect("write");
        let config = config::load(&config::LoadOptions {
            file: Some(file),
            cwd: dir.path().to_owned(),
            env: std::collections::BTreeMap::new(),
        })
        .expect("config loads");
        let g = graph_of(&config).expect("acyclic");
        assert_eq!(
            g.layers,
            vec![vec!["db".to_owned()], vec!["web".to_owned()]]
        );
        assert_eq!(
            g.dependencies["web"],
            vec![DependencyJson {
                name: "db".into(),
                condition: "healthy"
            }]
        );
        assert!(g.dependencies["db"].is_empty());
    }

    #[test]
    fn actions_parse_only_their_own_verbs() {
        assert_eq!(Action::for_process("restart"), Some(Action::Restart));
        assert_eq!(Action::for_process("up"), None);
        assert_eq!(Action::for_project("down"), Some(Action::Down));
        assert_eq!(Action::for_project("stop"), None);
    }

    #[test]
    fn unknown_project_is_not_found_with_a_hint() {
        let err: anyhow::Error = Error::UnknownProject { id: "x".into() }.into();
        let json = ErrorJson::from_anyhow(&err);
        assert_eq!(json.kind, ErrorKind::NotFound);
        assert!(json.error.contains("`x`"));
        assert!(json.hint.is_some());
    }
}
