//! `procs mcp` with a real MCP client: the `mcp` package from the Python package index, in the virtualenv
//! `.ci/run` makes at `target/mcp-venv`, runs `tests/mcp/mcp_client.py`, which initializes,
//! lists the tools, calls `status` and `restart` (the pid changes) and reads a resource.
//! A raw JSON-RPC exchange checks what the SDK hides (errors, notifications), and another
//! that `down` stops what a killed supervisor left running.
//! The venv is required in CI; elsewhere a missing one skips the client test with a note.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Project, free_port, pid_alive, run};
use crate::lifecycle::pid_of;
use crate::recovery::{daemons, kill_supervisor};

const WAIT: Duration = Duration::from_mins(2);

fn venv_python() -> Option<PathBuf> {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/mcp-venv/bin/python");
    let found = python.is_file();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} is missing: CI must make the venv with the `mcp` package (.ci/run)",
            python.display()
        );
        eprintln!(
            "note: no {}; skipping the MCP client test outside CI",
            python.display()
        );
    }
    found.then_some(python)
}

fn config(port: u16) -> String {
    format!(
        r#"
processes:
  web:
    command: ["{{testd}}", "--listen", "{port}"]
    ports: [{port}]
  worker:
    command: "{{testd}} --print worker-up"
    depends_on: [web]
"#
    )
}

#[test]
fn a_real_mcp_client_lists_tools_reads_status_and_restarts_a_process() {
    let Some(python) = venv_python() else { return };
    let mut p = Project::new().config(&config(free_port()));
    p.procs(["up"]).success();
    let old_pid = pid_of(&p, "worker");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/mcp_client.py");
    let mut cmd = p.command(&python);
    cmd.arg(&script)
        .arg(p.procs_path())
        .arg(p.path())
        .arg("worker");
    let out = run(&mut cmd, WAIT).success();
    let seen: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("the client prints JSON ({e}): {}", out.stdout));

    assert_eq!(seen["server"], "procs");
    let version = seen["protocol_version"].as_str().unwrap_or_default();
    assert!(
        ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"].contains(&version),
        "negotiated {version}"
    );
    assert_eq!(
        seen["tools"],
        json!(["status", "logs", "start", "stop", "restart", "up", "down"])
    );
    assert_eq!(seen["status_is_error"], false);
    assert_eq!(seen["pid_before"], old_pid);
    assert_eq!(seen["state_before"], "running");
    assert_eq!(seen["restart_is_error"], false, "{seen:#}");
    let new_pid = pid_of(&p, "worker");
    assert_ne!(new_pid, old_pid, "restart gives a new pid");
    assert_eq!(seen["pid_after"], new_pid, "{seen:#}");
    assert_eq!(seen["state_after"], "running");
    assert!(
        seen["restart_text"]
            .as_str()
            .is_some_and(|t| t.contains(&format!("worker: running (pid {new_pid})"))),
        "{seen:#}"
    );
    assert!(
        seen["logs_text"]
            .as_str()
            .is_some_and(|t| t.contains("worker-up")),
        "{seen:#}"
    );
    // A tool failure is a result the model reads, in procs' words.
    assert_eq!(seen["wrong_is_error"], true);
    assert!(
        seen["wrong_text"]
            .as_str()
            .is_some_and(|t| t.starts_with("error: no process named `no-such-process`")),
        "{seen:#}"
    );
    assert_eq!(
        seen["resources"],
        json!([
            "procs://config",
            "procs://status",
            "procs://logs/web",
            "procs://logs/worker"
        ])
    );
    assert!(
        seen["config_text"]
            .as_str()
            .is_some_and(|t| t.contains("--print worker-up")),
        "{seen:#}"
    );
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn status_comes_from_the_event_stream_is_notified_and_falls_back_to_the_registry_without_a_supervisor()
 {
    let Some(python) = venv_python() else { return };
    let mut p = Project::new().config(&config(free_port()));
    p.procs(["up"]).success();
    let old_pid = pid_of(&p, "worker");
    let state_file = p.state_dir().join("state.json");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/mcp_stream_client.py");
    let mut cmd = p.command(&python);
    cmd.arg(&script)
        .arg(p.procs_path())
        .arg(p.path())
        .arg("worker")
        .arg(&state_file);
    let out = run(&mut cmd, WAIT).success();
    let seen: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("the client prints JSON ({e}): {}", out.stdout));

    let first = &seen["first"];
    assert_eq!(first["source"], "event_stream", "{first:#}");
    assert_eq!(seen["pid_before"], old_pid, "{seen:#}");
    let worker = first["processes"]
        .as_array()
        .and_then(|ps| ps.iter().find(|w| w["name"] == "worker"))
        .unwrap_or_else(|| panic!("no worker in {first:#}"));
    assert_eq!(worker["state"], "running", "{worker}");
    assert_eq!(worker["supervised"], true, "{worker}");
    assert!(
        worker["memory_bytes"].as_u64().is_some_and(|m| m > 0),
        "metrics are read from /proc: {worker}"
    );
    assert!(
        worker["log"]
            .as_str()
            .is_some_and(|l| l.ends_with("worker.log")),
        "{worker}"
    );
    let web = first["processes"]
        .as_array()
        .and_then(|ps| ps.iter().find(|w| w["name"] == "web"))
        .unwrap_or_else(|| panic!("no web in {first:#}"));
    assert_eq!(web["ports"].as_array().map(Vec::len), Some(1), "{web}");

    // Subscribed to procs://status: the restart from outside is notified.
    assert_eq!(seen["updates_before_restart"], json!([]), "{seen:#}");
    assert!(
        seen["updates_after_restart"]
            .as_array()
            .is_some_and(|u| !u.is_empty() && u.iter().all(|uri| uri == "procs://status")),
        "a notifications/resources/updated within 10 s of the restart: {seen:#}"
    );
    assert_eq!(
        seen["status_resource"]["source"], "event_stream",
        "{seen:#}"
    );

    // Restarted from outside, read with the registry replaced by a directory: the new
    // pid comes from the stream.
    let new_pid = seen["pid_outside"].as_i64().unwrap_or_default();
    assert!(
        new_pid > 0 && new_pid != i64::from(old_pid),
        "procs restart gave worker a new pid: {seen:#}"
    );
    assert_eq!(seen["registry_was_unreadable"], true, "{seen:#}");
    let after = &seen["after_restart"];
    assert_eq!(after["source"], "event_stream", "{after:#}");
    let worker = after["processes"]
        .as_array()
        .and_then(|ps| ps.iter().find(|w| w["name"] == "worker"))
        .unwrap_or_else(|| panic!("no worker in {after:#}"));
    assert_eq!(
        worker["pid"], new_pid,
        "the stream shows the new pid within 10 s ({} calls): {after:#}",
        seen["after_restart_calls"]
    );
    assert_eq!(worker["state"], "running", "{worker}");
    assert!(worker["restarts"].as_u64().is_some(), "{worker}");
    // The tools check names against the stream's view too: no registry needed.
    assert_eq!(seen["restart_without_registry_is_error"], false, "{seen:#}");
    assert!(
        seen["restart_without_registry_text"]
            .as_str()
            .is_some_and(
                |t| t.contains("worker: running (pid ") && !t.contains(&format!("(pid {new_pid})"))
            ),
        "a restart with the registry unreadable gives yet another pid: {seen:#}"
    );
    assert_eq!(seen["logs_without_registry_is_error"], false, "{seen:#}");
    assert!(
        seen["logs_without_registry_text"]
            .as_str()
            .is_some_and(|t| t.contains("worker-up")),
        "{seen:#}"
    );

    // The supervisor stopped while mcp ran: the registry, verified, and said so.
    let down = &seen["after_down"];
    assert_eq!(down["source"], "registry", "{down:#}");
    assert_eq!(down["supervisor"]["running"], false, "{down:#}");
    assert!(
        down["note"]
            .as_str()
            .is_some_and(|n| n.contains("no supervisor is running")),
        "{down:#}"
    );
    assert!(
        down["processes"]
            .as_array()
            .is_some_and(|ps| ps.iter().all(|w| w["pid"].is_null())),
        "{down:#}"
    );

    // A new supervisor is picked up at the next call: a new subscription.
    let up = &seen["after_up"];
    assert_eq!(up["source"], "event_stream", "{up:#}");
    assert_ne!(
        up["supervisor"]["pid"], first["supervisor"]["pid"],
        "a new supervisor: {up:#}"
    );
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn the_server_answers_json_rpc_errors_and_never_answers_notifications() {
    let p = Project::new().config("processes:\n  a:\n    command: \"{testd}\"\n");
    let mut child = p
        .command(p.procs_path())
        .arg("mcp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn procs mcp");
    let mut stdin = child.stdin.take().expect("stdin");
    let lines = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
               "params": {"protocolVersion": "2024-11-05", "capabilities": {},
                          "clientInfo": {"name": "test", "version": "0"}}})
        .to_string(),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
        "{not json".to_owned(),
        json!({"jsonrpc": "2.0", "id": 2, "method": "prompts/list"}).to_string(),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
               "params": {"name": "reboot", "arguments": {}}})
        .to_string(),
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
               "params": {"name": "status", "arguments": {}}})
        .to_string(),
        json!({"jsonrpc": "2.0", "id": 5, "method": "resources/read",
               "params": {"uri": "procs://logs/nope"}})
        .to_string(),
    ];
    for line in &lines {
        writeln!(stdin, "{line}").expect("write a request");
    }
    drop(stdin); // EOF ends the server.
    let answers: Vec<Value> = BufReader::new(child.stdout.take().expect("stdout"))
        .lines()
        .map(|l| serde_json::from_str(&l.expect("read")).expect("each line is JSON"))
        .collect();
    let status = child.wait().expect("wait for procs mcp");
    assert!(status.success(), "ends cleanly on EOF: {status}");
    // Six answers for six requests and one bad line; none for the notification.
    let ids: Vec<Value> = answers.iter().map(|a| a["id"].clone()).collect();
    assert_eq!(
        ids,
        [
            json!(1),
            Value::Null,
            json!(2),
            json!(3),
            json!(4),
            json!(5)
        ]
    );
    assert_eq!(answers[0]["result"]["protocolVersion"], "2024-11-05");
    assert_eq!(answers[1]["error"]["code"], -32700);
    assert_eq!(answers[2]["error"]["code"], -32601);
    assert_eq!(answers[3]["error"]["code"], -32602);
    // Nothing runs yet: status answers all the same, without structuredContent (2024-11-05).
    let status = &answers[4]["result"];
    assert_eq!(status["isError"], false, "{status}");
    assert!(status.get("structuredContent").is_none(), "{status}");
    let text: Value = serde_json::from_str(status["content"][0]["text"].as_str().expect("text"))
        .expect("status text is JSON");
    assert_eq!(text["supervisor"]["running"], false);
    assert_eq!(text["source"], "registry", "{text}");
    assert!(
        text["note"]
            .as_str()
            .is_some_and(|n| n.contains("no supervisor is running")),
        "{text}"
    );
    assert_eq!(answers[5]["error"]["code"], -32002);
}

#[test]
fn the_down_tool_stops_what_a_killed_supervisor_left_running() {
    let mut p = Project::new().config(
        "processes:\n  a:\n    command: [\"{testd}\"]\n  b:\n    command: [\"{testd}\"]\n    depends_on: [a]\n",
    );
    p.procs(["up"]).success();
    kill_supervisor(&p);
    let left = daemons(&p);
    assert_eq!(left.len(), 2, "a and b outlive their supervisor: {left:?}");
    let mut child = p
        .command(p.procs_path())
        .arg("mcp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn procs mcp");
    let mut stdin = child.stdin.take().expect("stdin");
    for line in [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
               "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                          "clientInfo": {"name": "test", "version": "0"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": "down", "arguments": {}}}),
    ] {
        writeln!(stdin, "{line}").expect("write a request");
    }
    drop(stdin);
    let answers: Vec<Value> = BufReader::new(child.stdout.take().expect("stdout"))
        .lines()
        .map(|l| serde_json::from_str(&l.expect("read")).expect("each line is JSON"))
        .collect();
    assert!(child.wait().expect("wait for procs mcp").success());
    let down = &answers[1]["result"];
    assert_eq!(down["isError"], false, "{down}");
    let text = down["content"][0]["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("a: stopped") && text.contains("b: stopped"),
        "{text}"
    );
    let alive: Vec<i32> = left.into_iter().filter(|pid| pid_alive(*pid)).collect();
    assert!(
        alive.is_empty(),
        "still running after down: {alive:?} ({text})"
    );
    p.assert_no_survivors();
}
