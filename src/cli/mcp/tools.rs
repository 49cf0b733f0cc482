//! The tools and resources `procs mcp` offers, each one of [`crate::cli::ops`] (the same
//! operations as the dashboard's API).
//!
//! Owns: the tool list with its input schemas, the resources (config, status, logs), argument parsing, and the wording of each
//! answer. A failing operation is a tool result with `isError: true` whose text is the
//! error in procs' grammar (`error:` / `caused by:` / `hint:`), so the agent reads what a
//! developer would; only an unknown tool or resource is a protocol error.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::live::Live;
use super::notify::STATUS_URI;
use super::rpc::{INVALID_PARAMS, RESOURCE_NOT_FOUND, RpcError};
use crate::cli::ops::{self, Action, LogLine, LogQuery, ProjectInfo};
use crate::control::protocol::Outcome;
use crate::error;

/// Lines a log resource holds (its newest).
const LOG_RESOURCE_LINES: usize = 500;

/// `tools/list`.
pub fn list() -> Value {
    let names = json!({
        "type": "array", "items": { "type": "string" }, "minItems": 1,
        "description": "process names from procs.yaml"
    });
    let some_names = json!({
        "type": "array", "items": { "type": "string" },
        "description": "only these processes (and what they depend on); default: all"
    });
    let action = |name: &str, description: &str, schema: Value, required: &[&str]| {
        json!({
            "name": name,
            "description": description,
            "inputSchema": { "type": "object", "properties": schema, "required": required },
        })
    };
    json!({ "tools": [
        action("status",
            "The state of every process of this project (or of one): state, reason, pid, \
             start time, restarts, exit code, ports, CPU and memory of its whole tree. The \
             same object as `procs status --json`.",
            json!({ "name": { "type": "string", "description": "one process only" } }), &[]),
        action("logs",
            "The last lines of a process's log, or of every process's logs merged by time.",
            json!({
                "name": { "type": "string", "description": "one process (default: all, merged)" },
                "n": { "type": "integer", "minimum": 0, "description": "lines from the end, counting only lines that match `grep` (default 100)" },
                "grep": { "type": "string", "description": "a regular expression lines must match" },
                "since": { "type": "string", "description": "only lines written in this last duration: 30s, 5m, 1h" },
            }), &[]),
        action("start",
            "Start processes (and what they depend on); answers once they are ready.",
            json!({ "names": names }), &["names"]),
        action("stop",
            "Stop processes (and what depends on them), verified: nothing of theirs is left.",
            json!({ "names": names }), &["names"]),
        action("restart",
            "Restart processes (they get new pids); answers once they are ready again.",
            json!({ "names": names }), &["names"]),
        action("up",
            "Bring the project up (start the supervisor if needed), in dependency order; \
             answers once every process is ready or failed.",
            json!({ "names": some_names }), &[]),
        action("down",
            "Bring the project down: stop every process, verified, and the supervisor.",
            json!({ "names": some_names }), &[]),
    ]})
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusArgs {
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsArgs {
    name: Option<String>,
    n: Option<usize>,
    grep: Option<String>,
    since: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NamesArgs {
    #[serde(default)]
    names: Vec<String>,
}

fn args<T: DeserializeOwned + Default>(arguments: &Value) -> anyhow::Result<T> {
    if arguments.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(arguments.clone()).map_err(|e| {
        error::Error::BadRequest {
            message: format!("bad arguments: {e}"),
        }
        .into()
    })
}

/// A tool's answer: text for the model, the same data as structured content, and
/// whether it is a failure.
struct Answer {
    text: String,
    data: Value,
    failed: bool,
}

/// `tools/call`. `structured`: the client speaks a version with `structuredContent`.
pub fn call(
    project: &ProjectInfo,
    live: &mut Live,
    name: &str,
    arguments: &Value,
    structured: bool,
) -> Result<Value, RpcError> {
    let answer = match name {
        "status" => status(project, live, arguments),
        "logs" => logs(project, live, arguments),
        "start" => act(project, live, Action::Start, arguments, true),
        "stop" => act(project, live, Action::Stop, arguments, true),
        "restart" => act(project, live, Action::Restart, arguments, true),
        "up" => act(project, live, Action::Up, arguments, false),
        "down" => act(project, live, Action::Down, arguments, false),
        other => {
            return Err(RpcError::new(
                INVALID_PARAMS,
                format!("unknown tool `{other}` (tools/list names them)"),
            ));
        }
    };
    let answer = answer.unwrap_or_else(|err| Answer {
        text: error::render(&err).0,
        data: serde_json::to_value(ops::ErrorJson::from_anyhow(&err)).unwrap_or_default(),
        failed: true,
    });
    let mut result = json!({
        "content": [{ "type": "text", "text": answer.text }],
        "isError": answer.failed,
    });
    if structured && answer.data.is_object() {
        result["structuredContent"] = answer.data;
    }
    Ok(result)
}

/// `source` of a `status` answer taken from the supervisor's subscription.
pub const SOURCE_STREAM: &str = "event_stream";
/// `source` of a `status` answer read from the registry (no supervisor runs).
pub const SOURCE_REGISTRY: &str = "registry";

/// `status`: the object `status --json` prints, plus `source` (where the state came
/// from) and, without a supervisor, a `note` saying so. CPU and memory are read from
/// /proc either way.
fn status(project: &ProjectInfo, live: &mut Live, arguments: &Value) -> anyhow::Result<Answer> {
    let a: StatusArgs = args(arguments)?;
    let name = a.name.as_deref();
    let data = if let Some(view) = live.view(&project.paths) {
        let mut data = ops::status_from_stream(project, view, name)?;
        data["source"] = SOURCE_STREAM.into();
        data
    } else {
        let mut data = ops::status(project, name)?;
        data["source"] = SOURCE_REGISTRY.into();
        data["note"] = "no supervisor is running: this is the registry (.procs/state.json) \
                        verified against /proc, as `procs status` shows it"
            .into();
        data
    };
    Ok(Answer {
        text: serde_json::to_string_pretty(&data)?,
        data,
        failed: false,
    })
}

/// The names of the processes the running supervisor has, from its live view (`None`
/// without one, or while it has none: the caller checks names against the registry or
/// the config, as ops does).
fn live_names(project: &ProjectInfo, live: &mut Live) -> Option<Vec<String>> {
    live.view(&project.paths)
        .filter(|v| !v.processes.is_empty())
        .map(|v| v.processes.iter().map(|p| p.name.clone()).collect())
}

fn logs(project: &ProjectInfo, live: &mut Live, arguments: &Value) -> anyhow::Result<Answer> {
    let a: LogsArgs = args(arguments)?;
    let query = LogQuery::parse(a.n, a.grep.as_deref(), a.since.as_deref())?;
    let lines = match (&a.name, live_names(project, live)) {
        (Some(name), Some(known)) => {
            let one = [name.clone()];
            ops::check_among(project, &one, &known)?;
            ops::tail_until(project, &[(name.clone(), None)], &query)
        }
        (None, Some(known)) => {
            let all: Vec<(String, Option<u64>)> = known.into_iter().map(|n| (n, None)).collect();
            ops::tail_until(project, &all, &query)
        }
        (Some(name), None) => ops::log_lines(project, name, &query)?,
        (None, None) => ops::log_lines_all(project, &query)?,
    };
    Ok(Answer {
        text: log_text(&lines, a.name.is_none()),
        data: json!({ "lines": lines }),
        failed: false,
    })
}

fn log_text(lines: &[LogLine], merged: bool) -> String {
    let mut text = String::new();
    for l in lines {
        text.push_str(&l.time);
        text.push(' ');
        if merged {
            text.push_str(&l.process);
            text.push_str(" | ");
        }
        text.push_str(&l.line);
        text.push('\n');
    }
    if text.is_empty() {
        text.push_str("(no lines)\n");
    }
    text
}

/// An action; while a supervisor runs (other than for `up`, whose names are the config's)
/// its names are checked against the live view, not the registry.
fn act(
    project: &ProjectInfo,
    live: &mut Live,
    action: Action,
    arguments: &Value,
    need_names: bool,
) -> anyhow::Result<Answer> {
    let a: NamesArgs = args(arguments)?;
    if need_names && a.names.is_empty() {
        return Err(error::Error::BadRequest {
            message: "`names` must list at least one process".into(),
        }
        .into());
    }
    let known = (action != Action::Up)
        .then(|| live_names(project, live))
        .flatten();
    let outcome = match known {
        Some(known) => {
            ops::check_among(project, &a.names, &known)?;
            ops::act_checked(project, action, &a.names)?
        }
        None => ops::act(project, action, &a.names)?,
    };
    Ok(Answer {
        text: outcome_text(&outcome),
        failed: outcome.timed_out || outcome.processes.iter().any(|p| !p.ok),
        data: serde_json::to_value(&outcome)?,
    })
}

fn outcome_text(outcome: &Outcome) -> String {
    let mut text = String::new();
    for p in &outcome.processes {
        text.push_str(&format!("{}: {}", p.name, p.state.as_str()));
        if let Some(pid) = p.pid {
            text.push_str(&format!(" (pid {pid})"));
        }
        if !p.ok {
            text.push_str(" — not as asked");
            if let Some(reason) = &p.reason {
                text.push_str(&format!(": {reason}"));
            }
            text.push_str(&format!("; log: {}", p.log));
        }
        text.push('\n');
    }
    for note in &outcome.notes {
        text.push_str(note);
        text.push('\n');
    }
    if outcome.timed_out {
        text.push_str("the wait timed out\n");
    }
    if text.is_empty() {
        text.push_str("nothing to do\n");
    }
    text
}

const CONFIG_URI: &str = "procs://config";
const LOG_URI: &str = "procs://logs/";

/// `resources/list`: the config and each process's log (the processes the supervisor
/// runs while one does, else the recorded or configured ones).
pub fn resources(project: &ProjectInfo, live: &mut Live) -> Value {
    let mut list = vec![
        json!({
            "uri": CONFIG_URI,
            "name": "procs.yaml",
            "description": format!("the configuration of {}", project.name),
            "mimeType": "application/yaml",
        }),
        json!({
            "uri": STATUS_URI,
            "name": "status",
            "description": "the `status` tool's answer; subscribe to be notified of every state change",
            "mimeType": "application/json",
        }),
    ];
    let names = match live.view(&project.paths) {
        Some(view) => view.processes.iter().map(|p| p.name.clone()).collect(),
        None => ops::names(project).unwrap_or_default(),
    };
    for name in names {
        list.push(json!({
            "uri": format!("{LOG_URI}{name}"),
            "name": format!("{name}.log"),
            "description": format!("the last {LOG_RESOURCE_LINES} lines of {name}'s log"),
            "mimeType": "text/plain",
        }));
    }
    json!({ "resources": list })
}

/// `resources/read`.
pub fn read(project: &ProjectInfo, live: &mut Live, uri: &str) -> Result<Value, RpcError> {
    let not_found = |why: String| RpcError::new(RESOURCE_NOT_FOUND, why);
    let (mime, text) = if uri == STATUS_URI {
        let answer = status(project, live, &Value::Null).map_err(|e| not_found(e.to_string()))?;
        ("application/json", answer.text)
    } else if uri == CONFIG_URI {
        let (_, text) = ops::config_text(project).map_err(|e| not_found(e.to_string()))?;
        ("application/yaml", text)
    } else if let Some(name) = uri.strip_prefix(LOG_URI) {
        let query = LogQuery {
            n: Some(LOG_RESOURCE_LINES),
            ..LogQuery::default()
        };
        let lines = ops::log_lines(project, name, &query).map_err(|e| not_found(e.to_string()))?;
        ("text/plain", log_text(&lines, false))
    } else {
        return Err(not_found(format!(
            "no resource `{uri}` (resources/list names them)"
        )));
    };
    Ok(json!({ "contents": [{ "uri": uri, "mimeType": mime, "text": text }] }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_a_description_and_an_object_schema() {
        let tools = list();
        let tools = tools["tools"].as_array().expect("tools");
        let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
        assert_eq!(
            names,
            ["status", "logs", "start", "stop", "restart", "up", "down"]
        );
        for t in tools {
            assert!(t["description"].as_str().is_some_and(|d| !d.is_empty()));
            assert_eq!(t["inputSchema"]["type"], "object", "{t}");
        }
    }

    #[test]
    fn arguments_are_checked_in_words() {
        let err = args::<LogsArgs>(&json!({ "nn": 3 })).expect_err("unknown field");
        assert!(err.to_string().contains("bad arguments"), "{err}");
        let ok: LogsArgs = args(&json!({ "n": 3, "grep": "x" })).expect("good");
        assert_eq!(ok.n, Some(3));
        let none: NamesArgs = args(&Value::Null).expect("no arguments");
        assert!(none.names.is_empty());
    }

    #[test]
    fn merged_log_text_names_each_lines_process() {
        let l = LogLine {
            time: "T".into(),
            process: "web".into(),
            line: "hello".into(),
        };
        assert_eq!(log_text(std::slice::from_ref(&l), true), "T web | hello\n");
        assert_eq!(log_text(&[l], false), "T hello\n");
        assert_eq!(log_text(&[], false), "(no lines)\n");
    }
}
