//! `procs mcp`: a Model Context Protocol server over stdio for the current project, so an
//! AI agent can run and inspect the stack the way a developer does.
//!
//! Owns: the session (protocol version negotiation) and the loop reading one JSON-RPC
//! message per line from stdin and writing each answer as one line to stdout.
//! Invariants: stdout carries only protocol messages, one per line (diagnostics go to
//! stderr); requests are answered in order, one at a time; the tools are [`crate::cli::ops`], the same
//! operations as the dashboard's API. While a supervisor runs, state (`status`) comes
//! from its event stream ([`live`]), never from the registry; without one it is the
//! registry verified against /proc, as `procs status` does. A client subscribed to
//! `procs://status` gets a `notifications/resources/updated` per state change
//! ([`notify`]), written between whole answers. The loop ends when stdin closes.

mod live;
mod notify;
mod rpc;
mod tools;

use std::io::BufRead;

use serde_json::{Value, json};

use super::args::Global;
use super::ops::{self, ProjectInfo};
use crate::error::exit;
use rpc::{Incoming, METHOD_NOT_FOUND, RpcError};

/// Protocol versions this server speaks, newest first. What it uses is the same in each:
/// tools (text content, `isError`) and resources; `structuredContent` from 2025-06-18 on.
pub const VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The version to use when the client asks for `asked`: the same if we speak it, else our
/// newest (the client then decides whether it can go on).
pub fn negotiate(asked: Option<&str>) -> &'static str {
    VERSIONS
        .iter()
        .find(|v| Some(**v) == asked)
        .copied()
        .unwrap_or(VERSIONS[0])
}

struct Session {
    project: ProjectInfo,
    version: Option<&'static str>,
    /// The supervisor's event stream, the source of `status` while one runs.
    live: live::Live,
    /// Resource-update notifications for `procs://status`, when subscribed.
    notifier: notify::Notifier,
    out: notify::Out,
}

impl Session {
    fn handle(&mut self, method: &str, params: &Value) -> Result<Value, RpcError> {
        match method {
            "initialize" => {
                let version = negotiate(params["protocolVersion"].as_str());
                self.version = Some(version);
                Ok(json!({
                    "protocolVersion": version,
                    "capabilities": {
                        "tools": { "listChanged": false },
                        "resources": { "subscribe": true, "listChanged": false },
                    },
                    "serverInfo": { "name": "procs", "version": env!("CARGO_PKG_VERSION") },
                    "instructions": format!(
                        "procs runs the processes of the project `{}` ({}) from its procs.yaml. \
                         `status` tells what runs; `logs` reads their output; start, stop, \
                         restart, up and down answer once the processes are ready (or stopped), \
                         with the reason when they are not.",
                        self.project.name, self.project.dir
                    ),
                }))
            }
            "ping" => Ok(json!({})),
            "tools/list" => Ok(tools::list()),
            "tools/call" => {
                let name = params["name"].as_str().ok_or_else(|| {
                    RpcError::new(rpc::INVALID_PARAMS, "tools/call needs a tool `name`")
                })?;
                // Dates order as strings.
                let structured = self.version.is_some_and(|v| v >= "2025-06-18");
                tools::call(
                    &self.project,
                    &mut self.live,
                    name,
                    &params["arguments"],
                    structured,
                )
            }
            "resources/list" => Ok(tools::resources(&self.project, &mut self.live)),
            "resources/subscribe" | "resources/unsubscribe" => {
                let uri = params["uri"].as_str().unwrap_or_default();
                if uri != notify::STATUS_URI {
                    return Err(RpcError::new(
                        rpc::INVALID_PARAMS,
                        format!("only `{}` can be subscribed to", notify::STATUS_URI),
                    ));
                }
                if method == "resources/subscribe" {
                    self.notifier.subscribe(&self.project.paths, &self.out);
                } else {
                    self.notifier.unsubscribe();
                }
                Ok(json!({}))
            }
            "resources/templates/list" => Ok(json!({ "resourceTemplates": [] })),
            "resources/read" => {
                let uri = params["uri"].as_str().ok_or_else(|| {
                    RpcError::new(rpc::INVALID_PARAMS, "resources/read needs a `uri`")
                })?;
                tools::read(&self.project, &mut self.live, uri)
            }
            other => Err(RpcError::new(
                METHOD_NOT_FOUND,
                format!("`{other}` is not offered by procs mcp"),
            )),
        }
    }
}

pub fn mcp(global: &Global) -> anyhow::Result<i32> {
    let project = ops::current(global)?;
    let mut session = Session {
        project,
        version: None,
        live: live::Live::default(),
        notifier: notify::Notifier::default(),
        out: notify::Out::stdout(),
    };
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let reply = match rpc::parse(&line) {
            Incoming::Request { id, method, params } => {
                Some(rpc::answer(id, session.handle(&method, &params)))
            }
            Incoming::Invalid { id, error } => Some(rpc::answer(id, Err(error))),
            Incoming::Notification { .. } | Incoming::Response => None,
        };
        if let Some(reply) = reply {
            session.out.line(&reply.to_string())?;
        }
        // A supervisor started since the last request: its changes are notified too.
        session
            .notifier
            .ensure(&session.project.paths, &session.out);
    }
    session.notifier.stop();
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_asked_version_is_kept_when_known_else_the_newest_is_offered() {
        assert_eq!(negotiate(Some("2024-11-05")), "2024-11-05");
        assert_eq!(negotiate(Some("2025-06-18")), "2025-06-18");
        assert_eq!(negotiate(Some("1999-01-01")), VERSIONS[0]);
        assert_eq!(negotiate(None), VERSIONS[0]);
    }
}
