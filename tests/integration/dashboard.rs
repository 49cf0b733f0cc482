//! `procs dashboard` over real HTTP against a real stack: status, actions, the event and
//! log streams, and the guard (401 without the token, a foreign Host or Origin refused).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Project, free_port, wait_until};
use crate::lifecycle::pid_of;

const WAIT: Duration = Duration::from_secs(30);

/// A running `procs dashboard`, stopped (and waited for) on drop.
pub struct Dashboard {
    child: Child,
    pub addr: String,
    pub token: String,
}

impl Dashboard {
    pub fn start(p: &Project) -> Self {
        let mut child = p
            .command(p.procs_path())
            .args(["--json", "dashboard"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn procs dashboard");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(WAIT)
            .unwrap_or_else(|e| panic!("procs dashboard printed no URL within {WAIT:?}: {e}"));
        let info: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("first line is not JSON ({e}): {line:?}"));
        let addr = info["address"].as_str().expect("address").to_owned();
        assert!(
            addr.starts_with("127.0.0.1:"),
            "listens on loopback: {info}"
        );
        assert_eq!(
            info["url"].as_str().expect("url"),
            format!(
                "http://{addr}/?token={}",
                info["token"].as_str().expect("token")
            )
        );
        Self {
            child,
            addr,
            token: info["token"].as_str().expect("token").to_owned(),
        }
    }

    fn bearer(&self) -> String {
        format!("Authorization: Bearer {}\r\n", self.token)
    }

    /// One request; answers (status, head, body).
    fn raw(&self, method: &str, path: &str, extra: &str) -> (u16, String, String) {
        let mut s = TcpStream::connect(&self.addr).expect("connect to the dashboard");
        s.set_read_timeout(Some(Duration::from_secs(90)))
            .expect("timeout");
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: 0\r\n{extra}\r\n",
            self.addr
        );
        s.write_all(req.as_bytes()).expect("send");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("read answer");
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status line: {text}"));
        (status, head.to_owned(), body.to_owned())
    }

    /// The link `procs dashboard` prints.
    pub fn link(&self) -> String {
        format!("http://{}/?token={}", self.addr, self.token)
    }

    #[track_caller]
    pub fn json(&self, method: &str, path: &str) -> Value {
        let (status, head, body) = self.raw(method, path, &self.bearer());
        assert_eq!(status, 200, "{method} {path}: {head}\n{body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"))
    }

    /// Open a Server-Sent Event stream: a reader thread hands each `data:` payload over.
    fn sse(&self, path: &str) -> mpsc::Receiver<Value> {
        let mut s = TcpStream::connect(&self.addr).expect("connect");
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\n{}\r\n",
            self.addr,
            self.bearer()
        );
        s.write_all(req.as_bytes()).expect("send");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(s).lines() {
                let Ok(line) = line else { return };
                if let Some(data) = line.strip_prefix("data: ")
                    && let Ok(v) = serde_json::from_str::<Value>(data)
                    && tx.send(v).is_err()
                {
                    return;
                }
            }
        });
        rx
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[track_caller]
fn until(rx: &mpsc::Receiver<Value>, what: &str, mut pred: impl FnMut(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(v) if pred(&v) => return v,
            Ok(v) => seen.push(v),
            Err(e) => panic!("no {what} within {WAIT:?} ({e}); saw {seen:#?}"),
        }
    }
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
fn the_api_serves_status_actions_and_streams_of_a_real_stack() {
    let port = free_port();
    let mut p = Project::new().config(&config(port));
    p.procs(["up"]).success();
    let worker_pid = pid_of(&p, "worker");
    let d = Dashboard::start(&p);

    let projects = d.json("GET", "/api/v1/projects");
    let list = projects["projects"].as_array().expect("projects");
    assert_eq!(list.len(), 1, "{projects}");
    let id = list[0]["id"].as_str().expect("id").to_owned();
    assert!(list[0]["name"].is_string() && list[0]["dir"].is_string());

    // The same object `status --json` prints (pids verified the same way).
    let status = d.json("GET", &format!("/api/v1/projects/{id}/processes"));
    let cli = p.procs(["--json", "status"]).success().json();
    assert_eq!(status["project_id"], cli["project_id"]);
    let rows_of = |s: &Value| -> Vec<(String, String, Value)> {
        s["processes"]
            .as_array()
            .expect("processes")
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap_or_default().to_owned(),
                    e["state"].as_str().unwrap_or_default().to_owned(),
                    e["pid"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(rows_of(&status), rows_of(&cli));
    let one = d.json("GET", &format!("/api/v1/projects/{id}/processes/worker"));
    assert_eq!(one["pid"], worker_pid);

    // Errors in the project's wording, as JSON.
    let (code, _, body) = d.raw(
        "GET",
        &format!("/api/v1/projects/{id}/processes/wroker"),
        &d.bearer(),
    );
    assert_eq!(code, 404, "{body}");
    let err: Value = serde_json::from_str(&body).expect("error JSON");
    assert!(
        err["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no process named `wroker`"),
        "{err}"
    );
    assert_eq!(err["hint"], "did you mean `worker`?");
    let (code, _, body) = d.raw("GET", "/api/v1/projects/nope/processes", &d.bearer());
    assert_eq!(code, 404, "{body}");

    // The state stream: a snapshot, then the restart as events, and the new pid.
    let events = d.sse("/api/v1/events");
    let snap = until(&events, "a snapshot", |v| v["type"] == "snapshot");
    assert_eq!(snap["project"], id.as_str());
    let logs = d.sse(&format!(
        "/api/v1/projects/{id}/processes/worker/logs?follow=true&n=1&grep=worker-up"
    ));
    until(&logs, "the last worker-up line", |v| {
        v["line"] == "worker-up"
    });

    let outcome = d.json(
        "POST",
        &format!("/api/v1/projects/{id}/processes/worker/restart"),
    );
    let done = outcome["processes"]
        .as_array()
        .and_then(|ps| ps.iter().find(|e| e["name"] == "worker"))
        .unwrap_or_else(|| panic!("worker in the outcome: {outcome}"));
    assert_eq!(done["ok"], true, "{outcome}");
    let new_pid = pid_of(&p, "worker");
    assert_ne!(new_pid, worker_pid, "restart gives a new pid");
    until(&events, "worker running with its new pid", |v| {
        v["type"] == "event"
            && v["name"] == "worker"
            && v["state"] == "running"
            && v["pid"] == new_pid
    });
    // The restarted worker's line arrives on the followed log.
    until(&logs, "the restarted worker's line", |v| {
        v["line"] == "worker-up"
    });

    // Log tail with n and grep.
    let tail = d.json(
        "GET",
        &format!("/api/v1/projects/{id}/processes/worker/logs?n=5&grep=%5Eworker"),
    );
    let lines = tail["lines"].as_array().expect("lines");
    assert!(
        !lines.is_empty() && lines.iter().all(|l| l["line"] == "worker-up"),
        "{tail}"
    );
    let (code, _, body) = d.raw(
        "GET",
        &format!("/api/v1/projects/{id}/processes/worker/logs?since=soon"),
        &d.bearer(),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("`since` is not a duration"), "{body}");

    // Project down: every process stopped, the supervisor gone.
    let down = d.json("POST", &format!("/api/v1/projects/{id}/down"));
    assert!(
        down["processes"]
            .as_array()
            .is_some_and(|ps| ps.iter().all(|e| e["state"] == "stopped")),
        "{down}"
    );
    // The supervisor exits once it has answered.
    wait_until("the supervisor exits after down", WAIT, || {
        p.procs(["--json", "status"]).success().json()["supervisor"]["running"] == false
    });
    drop(d);
    p.assert_no_survivors();
}

#[test]
fn the_guard_refuses_no_token_a_foreign_host_and_a_foreign_origin() {
    let p = Project::new().config("processes:\n  a:\n    command: \"{testd}\"\n");
    let d = Dashboard::start(&p);
    let (code, head, body) = d.raw("GET", "/api/v1/projects", "");
    assert_eq!(code, 401, "{head}\n{body}");
    assert!(
        !head.to_lowercase().contains("access-control-allow"),
        "no CORS: {head}"
    );
    let (code, _, _) = d.raw("GET", "/api/v1/projects", "Authorization: Bearer wrong\r\n");
    assert_eq!(code, 401);
    let (code, _, _) = d.raw("GET", "/", "");
    assert_eq!(code, 401, "the page needs the token too");

    // DNS rebinding: the right token but another name in Host.
    let mut s = TcpStream::connect(&d.addr).expect("connect");
    let port = d.addr.rsplit(':').next().expect("port");
    write!(
        s,
        "GET /api/v1/projects HTTP/1.1\r\nHost: evil.example:{port}\r\nConnection: close\r\n{}\r\n",
        d.bearer()
    )
    .expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    assert!(text.starts_with("HTTP/1.1 421"), "{text}");

    // A POST from another origin, even with the token.
    let (code, _, body) = d.raw(
        "POST",
        "/api/v1/projects/x/up",
        &format!("{}Origin: http://evil.example\r\n", d.bearer()),
    );
    assert_eq!(code, 403, "{body}");

    // The printed link sets an HttpOnly, SameSite=Strict cookie, which then works alone,
    // but a cookie POST without Origin is refused (browsers always send one).
    let (code, head, _) = d.raw("GET", &format!("/?token={}", d.token), "");
    assert_eq!(code, 303, "{head}");
    let cookie_line = head
        .lines()
        .find(|l| l.to_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {head}"));
    assert!(cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Strict"));
    let cookie = format!("Cookie: procs_token={}\r\n", d.token);
    let (code, _, body) = d.raw("GET", "/", &cookie);
    assert_eq!(code, 200);
    assert!(
        body.contains("<html") || body.contains("<!doctype"),
        "{body}"
    );
    let (code, _, _) = d.raw("POST", "/api/v1/projects/x/up", &cookie);
    assert_eq!(code, 403);
    let (code, _, body) = d.raw(
        "POST",
        "/api/v1/projects/x/up",
        &format!("{cookie}Origin: http://{}\r\n", d.addr),
    );
    assert_eq!(code, 404, "passes the guard, then no such project: {body}");

    // The OpenAPI document is served.
    let doc = d.json("GET", "/api/v1/openapi.json");
    assert!(doc["paths"]["/api/v1/events"].is_object());
}

#[test]
fn listening_beyond_loopback_needs_the_explicit_flag() {
    let p = Project::new().config("processes:\n  a:\n    command: \"{testd}\"\n");
    p.procs(["dashboard", "--listen", "0.0.0.0"])
        .code(2)
        .stderr_contains("not a loopback address")
        .stderr_contains("--allow-remote");
}
