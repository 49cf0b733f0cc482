//! `procs dashboard` over real HTTP against a real stack: status, actions, the event and
//! log streams, and the guard (401 without the token, a foreign Host or Origin refused).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Project, free_port, pid_alive, run, wait_until};
use crate::lifecycle::pid_of;
use crate::recovery::{daemons, kill_supervisor, supervisor_pid};

const WAIT: Duration = Duration::from_secs(30);

/// A running `procs dashboard`, stopped (and waited for) on drop.
pub struct Dashboard {
    child: Child,
    pub addr: String,
    pub token: String,
}

impl Dashboard {
    pub fn start(p: &Project) -> Self {
        Self::start_with(p, &[], &[])
    }

    /// `procs --json dashboard ARGS…` with `env` added to the project's environment.
    pub fn start_with(p: &Project, args: &[&str], env: &[(&str, String)]) -> Self {
        let mut cmd = p.command(p.procs_path());
        cmd.args(["--json", "dashboard"]).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
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

/// The inodes of the TCP and UDP (v4 and v6) sockets `pid` holds open.
fn inet_sockets(pid: i32) -> Vec<u64> {
    let mut inet = std::collections::HashSet::new();
    for table in ["tcp", "tcp6", "udp", "udp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            if let Some(Ok(inode)) = line.split_whitespace().nth(9).map(str::parse::<u64>) {
                inet.insert(inode);
            }
        }
    }
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/fd: {e}"));
    let mut held: Vec<u64> = fds
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let t = target.to_str()?;
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .filter(|inode| inet.contains(inode))
        .collect();
    held.sort_unstable();
    held
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
    // The dashboard listens; the supervisor it talks to opens no network port at all.
    assert!(
        !inet_sockets(d.child.id() as i32).is_empty(),
        "the dashboard's listening socket is seen"
    );
    let supervisor = supervisor_pid(&p);
    assert_eq!(
        inet_sockets(supervisor),
        Vec::<u64>::new(),
        "the supervisor (pid {supervisor}) holds TCP/UDP sockets"
    );

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
    // `since`: the worker wrote its line at the restart, well over a millisecond ago.
    let lines_since = |since: &str| -> usize {
        d.json(
            "GET",
            &format!("/api/v1/projects/{id}/processes/worker/logs?grep=worker-up&since={since}"),
        )["lines"]
            .as_array()
            .map_or(0, Vec::len)
    };
    assert!(lines_since("1h") >= 2, "both runs' lines within the hour");
    assert_eq!(
        lines_since("1ms"),
        0,
        "no worker-up line in the last millisecond"
    );
    // The merged log of every process, not followed.
    let merged = d.json("GET", &format!("/api/v1/projects/{id}/logs?n=1000"));
    let procs_seen: std::collections::BTreeSet<&str> = merged["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter_map(|l| l["process"].as_str())
        .collect();
    assert_eq!(
        procs_seen.into_iter().collect::<Vec<_>>(),
        ["web", "worker"],
        "{merged}"
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
    let port = d.addr.rsplit(':').next().expect("port");
    let cookie = format!("Cookie: procs_token_{port}={}\r\n", d.token);
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

#[test]
fn down_over_the_api_stops_what_a_killed_supervisor_left_running() {
    let mut p = Project::new().config(
        "processes:\n  a:\n    command: [\"{testd}\"]\n  b:\n    command: [\"{testd}\", --spawn-grandchild]\n    depends_on: [a]\n",
    );
    p.procs(["up"]).success();
    kill_supervisor(&p);
    let left = daemons(&p);
    assert!(
        left.len() >= 3,
        "a, b and b's grandchild outlive their supervisor: {left:?}"
    );
    let d = Dashboard::start(&p);
    let id = d.json("GET", "/api/v1/projects")["projects"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let down = d.json("POST", &format!("/api/v1/projects/{id}/down"));
    let stopped: Vec<&str> = down["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .filter(|e| e["state"] == "stopped" && e["ok"] == true)
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(stopped, ["a", "b"], "{down}");
    // Answered once the stop is verified: nothing of the project runs any more.
    let alive: Vec<i32> = left.into_iter().filter(|pid| pid_alive(*pid)).collect();
    assert!(
        alive.is_empty(),
        "still running after down: {alive:?} ({down})"
    );
    let status = p.procs(["--json", "status"]).success().json();
    assert!(
        status["processes"]
            .as_array()
            .is_some_and(|ps| ps.iter().all(|e| e["state"] == "stopped")),
        "{status}"
    );
    drop(d);
    p.assert_no_survivors();
}

#[test]
fn a_followed_log_has_every_line_once_across_the_tail_and_the_stream() {
    // A writer that never pauses: lines are written while the tail is read and the
    // follower starts, so a gap (or a repeat) between them shows in the numbers.
    let mut p = Project::new().config(
        "processes:\n  w:\n    command: 'i=0; while :; do echo \"n $$i\"; i=$$((i+1)); done'\n    logs: { max_size: 1GiB }\n",
    );
    p.procs(["up"]).success();
    let d = Dashboard::start(&p);
    let id = d.json("GET", "/api/v1/projects")["projects"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    wait_until("the writer's first lines", WAIT, || {
        let tail = d.json(
            "GET",
            &format!("/api/v1/projects/{id}/processes/w/logs?n=1"),
        );
        tail["lines"].as_array().is_some_and(|l| !l.is_empty())
    });
    for path in [
        format!("/api/v1/projects/{id}/processes/w/logs?follow=true&n=50"),
        format!("/api/v1/projects/{id}/logs?follow=true&n=50"),
    ] {
        let stream = d.sse(&path);
        let mut previous: Option<u64> = None;
        let mut seen = 0;
        while seen < 20_000 {
            let v = until(&stream, "the next line", |v| {
                v["line"].as_str().is_some_and(|l| l.starts_with("n "))
            });
            let line = v["line"].as_str().unwrap_or_default();
            let n: u64 = line[2..]
                .parse()
                .unwrap_or_else(|e| panic!("{path}: not a numbered line ({e}): {line:?}"));
            if let Some(prev) = previous {
                assert_eq!(
                    n,
                    prev + 1,
                    "{path}: line {n} follows line {prev} (after {seen} lines): lost or repeated between the tail and the stream"
                );
            }
            previous = Some(n);
            seen += 1;
        }
    }
    drop(d);
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

/// The `Set-Cookie` line the printed link answers with.
fn link_cookie(d: &Dashboard) -> String {
    let (code, head, _) = d.raw("GET", &format!("/?token={}", d.token), "");
    assert_eq!(code, 303, "{head}");
    head.lines()
        .find(|l| l.to_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {head}"))
        .to_owned()
}

#[test]
fn each_dashboard_names_its_cookie_after_its_port() {
    let p = Project::new().config("processes:\n  a:\n    command: \"{testd}\"\n");
    let (one, two) = (Dashboard::start(&p), Dashboard::start(&p));
    let mut pairs = Vec::new();
    for d in [&one, &two] {
        let port = d.addr.rsplit(':').next().expect("port");
        let line = link_cookie(d);
        let name = format!("procs_token_{port}");
        assert!(
            line.contains(&format!(" {name}={};", d.token)),
            "the cookie is named after the port: {line}"
        );
        assert!(
            line.contains("HttpOnly") && line.contains("SameSite=Strict"),
            "{line}"
        );
        // The shared, port-less name is not accepted any more.
        let (code, _, _) = d.raw("GET", "/", &format!("Cookie: procs_token={}\r\n", d.token));
        assert_eq!(code, 401, "a cookie without our port in its name");
        pairs.push(format!("{name}={}", d.token));
    }
    assert_ne!(pairs[0], pairs[1]);
    // A browser holding both (cookies are not port-scoped) sends both to each dashboard:
    // neither overwrote the other, each dashboard finds its own.
    let both = format!("Cookie: {}; {}\r\n", pairs[0], pairs[1]);
    for d in [&one, &two] {
        let (code, head, _) = d.raw("GET", "/api/v1/projects", &both);
        assert_eq!(code, 200, "{head}");
    }
    // One dashboard's cookie does not open the other.
    let (code, _, _) = two.raw(
        "GET",
        "/api/v1/projects",
        &format!("Cookie: {}\r\n", pairs[0]),
    );
    assert_eq!(code, 401);
}

/// The outcome's entry for `name`.
#[track_caller]
fn outcome_of<'a>(outcome: &'a Value, name: &str) -> &'a Value {
    outcome["processes"]
        .as_array()
        .and_then(|ps| ps.iter().find(|e| e["name"] == name))
        .unwrap_or_else(|| panic!("{name} in the outcome: {outcome}"))
}

#[test]
fn the_dashboard_covers_every_project_on_the_port_asked_and_acts_on_each() {
    let mut p = Project::new().config(
        "processes:\n  a:\n    command: [\"{testd}\"]\n  b:\n    command: [\"{testd}\"]\n    depends_on: [a]\n",
    );
    p.file(
        "other/procs.yaml",
        &format!(
            "processes:\n  c:\n    command: [\"{}\"]\n",
            p.testd_path().display()
        ),
    );
    let other = p.path().join("other");
    p.procs(["up"]).success();
    run(
        p.command(p.procs_path()).arg("up").current_dir(&other),
        WAIT,
    )
    .success();
    // `--open` runs `xdg-open LINK`: a stand-in on PATH records what it was given.
    let bin = p.path().join("fake-bin");
    let opened = p.path().join("opened.txt");
    p.file(
        "fake-bin/xdg-open",
        &format!("#!/bin/sh\nprintf '%s\\n' \"$1\" > {}\n", opened.display()),
    );
    std::fs::set_permissions(
        bin.join("xdg-open"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod xdg-open");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let port = free_port();
    let d = Dashboard::start_with(
        &p,
        &["--port", &port.to_string(), "--open"],
        &[("PATH", path)],
    );
    assert_eq!(d.addr, format!("127.0.0.1:{port}"), "listens on --port");
    wait_until("xdg-open to be given the printed link", WAIT, || {
        std::fs::read_to_string(&opened).is_ok_and(|t| t.trim() == d.link())
    });

    let projects = d.json("GET", "/api/v1/projects");
    let list = projects["projects"].as_array().expect("projects");
    let id_of = |dir: &std::path::Path| -> String {
        let dir = std::fs::canonicalize(dir).expect("canonical dir");
        list.iter()
            .find(|e| e["dir"].as_str().map(std::path::Path::new) == Some(dir.as_path()))
            .and_then(|e| e["id"].as_str())
            .unwrap_or_else(|| panic!("{} in {projects}", dir.display()))
            .to_owned()
    };
    assert_eq!(list.len(), 2, "{projects}");
    let (main_id, other_id) = (id_of(p.path()), id_of(&other));
    let names = |id: &str| -> Vec<String> {
        d.json("GET", &format!("/api/v1/projects/{id}/processes"))["processes"]
            .as_array()
            .expect("processes")
            .iter()
            .filter_map(|e| e["name"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(names(&main_id), ["a", "b"]);
    assert_eq!(names(&other_id), ["c"]);

    // One process: stop, then start again (a new pid).
    let pid_c = |d: &Dashboard| {
        d.json("GET", &format!("/api/v1/projects/{other_id}/processes/c"))["pid"].clone()
    };
    let old_c = pid_c(&d);
    let stop = d.json(
        "POST",
        &format!("/api/v1/projects/{other_id}/processes/c/stop"),
    );
    assert_eq!(outcome_of(&stop, "c")["state"], "stopped", "{stop}");
    assert_eq!(pid_c(&d), Value::Null, "stopped: no pid");
    assert!(old_c.as_i64().is_some_and(|pid| !pid_alive(pid as i32)));
    let start = d.json(
        "POST",
        &format!("/api/v1/projects/{other_id}/processes/c/start"),
    );
    assert_eq!(outcome_of(&start, "c")["state"], "running", "{start}");
    assert!(pid_c(&d).is_i64() && pid_c(&d) != old_c);

    // The project's rolling restart: every process a new pid, ready again.
    let before = (pid_of(&p, "a"), pid_of(&p, "b"));
    let restart = d.json("POST", &format!("/api/v1/projects/{main_id}/restart"));
    for name in ["a", "b"] {
        assert_eq!(outcome_of(&restart, name)["ok"], true, "{restart}");
    }
    let after = (pid_of(&p, "a"), pid_of(&p, "b"));
    assert!(
        after.0 != before.0 && after.1 != before.1,
        "{before:?} → {after:?}"
    );

    // Down, then up again from the dashboard (which starts the supervisor).
    let down = d.json("POST", &format!("/api/v1/projects/{other_id}/down"));
    assert_eq!(outcome_of(&down, "c")["state"], "stopped", "{down}");
    wait_until("the other supervisor exits after down", WAIT, || {
        run(
            p.command(p.procs_path())
                .args(["--json", "status"])
                .current_dir(&other),
            WAIT,
        )
        .success()
        .json()["supervisor"]["running"]
            == false
    });
    let up = d.json("POST", &format!("/api/v1/projects/{other_id}/up"));
    assert_eq!(outcome_of(&up, "c")["state"], "running", "{up}");
    assert_eq!(outcome_of(&up, "c")["ok"], true, "{up}");

    for id in [&main_id, &other_id] {
        d.json("POST", &format!("/api/v1/projects/{id}/down"));
    }
    drop(d);
    p.assert_no_survivors();
}

#[test]
fn the_dashboard_prints_its_link_on_the_port_asked() {
    let p = Project::new().config("processes:\n  a:\n    command: \"{testd}\"\n");
    let port = free_port();
    let mut child = p
        .command(p.procs_path())
        .args(["dashboard", "--port", &port.to_string()])
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
    let line = rx.recv_timeout(WAIT);
    let _ = child.kill();
    let _ = child.wait();
    let line = line.unwrap_or_else(|e| panic!("no link printed within {WAIT:?}: {e}"));
    let prefix = format!("dashboard: http://127.0.0.1:{port}/?token=");
    let token = line
        .trim_end()
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{line:?} starts with {prefix:?}"));
    assert!(
        token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "a 256-bit hex token: {token:?}"
    );
}
