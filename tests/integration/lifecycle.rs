//! The lifecycle against real processes: up, down, stop/start/restart, status, logs,
//! verified whole-tree stops, and the singleton supervisor.

use std::time::Duration;

use crate::harness::{Project, free_port, pid_alive, pid_cmdline, wait_until};

/// The entry for `name` in `procs status --json`.
pub fn proc_status(p: &Project, name: &str) -> serde_json::Value {
    let status = p.procs(["status", "--json"]).success().json();
    status["processes"]
        .as_array()
        .and_then(|ps| ps.iter().find(|e| e["name"] == name).cloned())
        .unwrap_or_else(|| panic!("`{name}` missing from status: {status}"))
}

pub fn pid_of(p: &Project, name: &str) -> i32 {
    let entry = proc_status(p, name);
    entry["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("`{name}` has no pid: {entry}")) as i32
}

fn three_tier(db: u16, web: u16) -> String {
    format!(
        r#"
processes:
  db:
    command: ["{{testd}}", "--listen", "{db}", "--ready-after", "300"]
    ports: [{db}]
  web:
    command: ["{{testd}}", "--listen", "{web}", "--http"]
    depends_on: {{ db: healthy }}
    healthcheck: {{ http: "http://127.0.0.1:{web}/health", interval: 200ms }}
  worker:
    command: "{{testd}} --print worker-says-hello"
    depends_on: [web]
"#
    )
}

#[test]
fn stack_comes_up_ready_and_goes_down_leaving_nothing() {
    let (db, web) = (free_port(), free_port());
    let mut p = Project::new().config(&three_tier(db, web));
    p.procs(["up"]).success();
    let status = p.procs(["status", "--json"]).success().json();
    assert_eq!(status["supervisor"]["running"], true, "{status}");
    let mut pids = Vec::new();
    for (name, state) in [("db", "healthy"), ("web", "healthy"), ("worker", "running")] {
        let entry = proc_status(&p, name);
        assert_eq!(entry["state"], state, "{entry}");
        assert_eq!(entry["supervised"], true, "{entry}");
        let pid = entry["pid"].as_i64().expect("pid") as i32;
        assert!(pid_alive(pid), "{name} pid {pid} should be alive");
        pids.push(pid);
    }
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", web)).is_ok(),
        "web listens"
    );
    p.procs(["down"]).success();
    for pid in pids {
        assert!(!pid_alive(pid), "pid {pid} survived down");
    }
    let status = p.procs(["status", "--json"]).success().json();
    assert_eq!(status["supervisor"]["running"], false, "{status}");
    p.assert_no_survivors();
}

#[test]
fn dependents_start_only_after_their_dependency_is_healthy() {
    let (db, web) = (free_port(), free_port());
    let mut p = Project::new().config(&three_tier(db, web));
    p.procs(["up"]).success();
    let log_db = p.read_log("db");
    let log_web = p.read_log("web");
    let healthy_at = log_db
        .lines()
        .find(|l| l.contains("] ") && l.ends_with(" healthy"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| panic!("db log has no healthy line:\n{log_db}"));
    let started_at = log_web
        .lines()
        .find(|l| l.contains(" started pid "))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| panic!("web log has no start line:\n{log_web}"));
    let healthy_at = humantime::parse_rfc3339(&healthy_at).expect("timestamp");
    let started_at = humantime::parse_rfc3339(&started_at).expect("timestamp");
    assert!(
        started_at >= healthy_at,
        "web started before db was healthy"
    );
    // The ordering in the log file of db is also visible as: web's pid started after db's.
    assert!(pid_of(&p, "web") != pid_of(&p, "db"));
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn down_stops_an_escaped_setsid_grandchild() {
    let mut p = Project::new().config(
        r#"
processes:
  daemon:
    command: ["{testd}", "--setsid-grandchild", "--grandchild-ignore-sigterm", "--pidfile", "daemon.pids"]
    stop_timeout: 1s
"#,
    );
    p.procs(["up"]).success();
    let pidfile = p.path().join("daemon.pids");
    wait_until(
        "the daemon to write its pid file",
        Duration::from_secs(10),
        || std::fs::read_to_string(&pidfile).is_ok_and(|s| s.lines().count() >= 2),
    );
    let text = std::fs::read_to_string(&pidfile).expect("pidfile");
    let pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    let grandchild = pids[1];
    assert!(pid_alive(grandchild), "grandchild {grandchild} should run");
    let sid = std::fs::read_to_string(format!("/proc/{grandchild}/stat")).expect("stat");
    assert!(!sid.is_empty());
    p.procs(["down"]).success();
    assert!(
        !pid_alive(grandchild),
        "escaped grandchild {grandchild} survived down"
    );
    p.assert_no_survivors();
}

#[test]
fn a_process_ignoring_sigterm_is_killed_after_its_stop_timeout() {
    let mut p = Project::new().config(
        r#"
processes:
  stubborn:
    command: ["{testd}", "--ignore-sigterm"]
    stop_timeout: 700ms
"#,
    );
    p.procs(["up"]).success();
    let pid = pid_of(&p, "stubborn");
    p.procs(["down"]).success();
    assert!(!pid_alive(pid), "pid {pid} survived");
    let log = p.read_log("stubborn");
    assert!(
        log.contains("ignoring SIGTERM"),
        "the fixture saw SIGTERM first:\n{log}"
    );
    assert!(log.contains("killed after the 700ms stop timeout"), "{log}");
    p.assert_no_survivors();
}

#[test]
fn six_concurrent_ups_give_one_supervisor_and_one_instance_each() {
    let (a, b) = (free_port(), free_port());
    let mut p = Project::new().config(&format!(
        r#"
processes:
  a:
    command: ["{{testd}}", "--listen", "{a}"]
    ports: [{a}]
  b:
    command: ["{{testd}}", "--listen", "{b}"]
    ports: [{b}]
  c:
    command: ["{{testd}}"]
"#
    ));
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..6).map(|_| s.spawn(|| p.procs(["up"]))).collect();
        for h in handles {
            h.join().expect("thread").success();
        }
    });
    let tagged = p.tagged_pids();
    let supervisors = tagged
        .iter()
        .filter(|pid| pid_cmdline(**pid).contains("__supervise"))
        .count();
    let daemons = tagged
        .iter()
        .filter(|pid| pid_cmdline(**pid).contains("procs-testd"))
        .count();
    assert_eq!(supervisors, 1, "supervisors: {tagged:?}");
    assert_eq!(daemons, 3, "one instance of each process: {tagged:?}");
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn stop_start_and_restart_one_process() {
    let mut p = Project::new().config(
        r#"
processes:
  a:
    command: ["{testd}"]
  b:
    command: ["{testd}"]
"#,
    );
    p.procs(["up"]).success();
    let (a1, b1) = (pid_of(&p, "a"), pid_of(&p, "b"));
    p.procs(["stop", "a"]).success();
    assert!(!pid_alive(a1), "stopped process still alive");
    assert_eq!(proc_status(&p, "a")["state"], "stopped");
    assert!(pid_alive(b1), "stop a must not touch b");
    p.procs(["start", "a"]).success();
    let a2 = pid_of(&p, "a");
    assert_ne!(a1, a2);
    assert!(pid_alive(a2));
    p.procs(["restart", "b"]).success();
    let b2 = pid_of(&p, "b");
    assert_ne!(b1, b2, "restart gives a new pid");
    assert!(!pid_alive(b1) && pid_alive(b2));
    assert!(
        p.read_log("b").contains("stopped"),
        "event lines in the log"
    );
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn logs_are_prefixed_and_status_works_from_another_directory() {
    let mut p = Project::new().config(
        r#"
processes:
  talker:
    command: ["{testd}", "--print", "first line", "--print", "second line", "--stderr", "to stderr"]
"#,
    );
    p.procs(["up"]).success();
    wait_until("talker to print", Duration::from_secs(10), || {
        p.read_log("talker").contains("to stderr")
    });
    p.procs(["logs", "talker"])
        .success()
        .stdout_contains("talker │ first line")
        .stdout_contains("talker │ to stderr");
    let last = p.procs(["logs", "-n", "1", "talker"]).success();
    assert_eq!(last.stdout.lines().count(), 1, "{}", last.stdout);
    let file = p.path().join("procs.yaml");
    let out = crate::harness::run(
        p.command(crate::harness::procs_bin())
            .current_dir("/")
            .arg("-f")
            .arg(&file)
            .args(["status", "--json"]),
        Duration::from_secs(30),
    )
    .success();
    assert_eq!(out.json()["processes"][0]["name"], "talker");
    assert_eq!(out.json()["processes"][0]["state"], "running");
    p.procs(["down"]).success();
    // Logs work without a supervisor too.
    p.procs(["logs", "talker"])
        .success()
        .stdout_contains("second line");
    p.assert_no_survivors();
}

#[test]
fn an_invalid_config_starts_nothing_and_exits_2() {
    let mut p = Project::new().config(
        r#"
processes:
  a:
    comand: ["{testd}"]
"#,
    );
    p.procs(["up"])
        .code(2)
        .stderr_contains("did you mean `command`");
    assert!(!p.state_dir().join("supervisor.sock").exists());
    assert!(
        p.tagged_pids().is_empty(),
        "nothing may run after a config error"
    );
    p.assert_no_survivors();
}

#[test]
fn up_attach_streams_logs_and_sigterm_brings_the_stack_down() {
    let mut p = Project::new().config(
        r#"
processes:
  ticker:
    command: ["{testd}", "--print-every", "50"]
"#,
    );
    let out_path = p.path().join("attach.out");
    let out = std::fs::File::create(&out_path).expect("create");
    let mut child = p
        .command(crate::harness::procs_bin())
        .args(["up", "--attach"])
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .expect("spawn procs up --attach");
    wait_until(
        "attached output to show ticks",
        Duration::from_secs(20),
        || std::fs::read_to_string(&out_path).is_ok_and(|s| s.contains("ticker │ tick")),
    );
    let pid = pid_of(&p, "ticker");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal");
    let mut status = None;
    wait_until(
        "procs up --attach to exit after SIGTERM",
        Duration::from_secs(20),
        || {
            status = child.try_wait().expect("wait");
            status.is_some()
        },
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "attach exits 0 after bringing the stack down"
    );
    assert!(!pid_alive(pid), "the stack is down");
    p.assert_no_survivors();
}

#[test]
fn children_get_the_environment_layers_cwd_and_procs_tags() {
    let mut p = Project::new().config(
        r#"
name: envdemo
env: { TOP: top, OVERRIDDEN: top }
processes:
  show:
    command: 'echo "TOP=$$TOP OVERRIDDEN=$$OVERRIDDEN OWN=$$OWN AMBIENT=$$AMBIENT PWD=$$(pwd)"; echo "TAGS=$$PROCS_PROJECT/$$PROCS_PROCESS/$$PROCS_PROJECT_ID"; exec "{testd}"'
    cwd: sub
    env: { OWN: own, OVERRIDDEN: process }
"#,
    );
    std::fs::create_dir(p.path().join("sub")).expect("mkdir sub");
    p.procs_env(["up"], &[("AMBIENT", "from-the-shell")])
        .success();
    wait_until(
        "show to print its environment",
        Duration::from_secs(10),
        || p.read_log("show").contains("TAGS="),
    );
    let log = p.read_log("show");
    let sub = p.path().join("sub").canonicalize().expect("canonical");
    assert!(
        log.contains(&format!(
            "TOP=top OVERRIDDEN=process OWN=own AMBIENT=from-the-shell PWD={}",
            sub.display()
        )),
        "{log}"
    );
    let id = p.procs(["status", "--json"]).success().json()["project_id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert!(log.contains(&format!("TAGS=envdemo/show/{id}")), "{log}");
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn up_no_deps_and_down_by_name() {
    let mut p = Project::new().config(
        r#"
processes:
  db:
    command: ["{testd}"]
  app:
    command: ["{testd}"]
    depends_on: [db]
  other:
    command: ["{testd}"]
"#,
    );
    p.procs(["up", "--no-deps", "app"]).success();
    assert_eq!(proc_status(&p, "app")["state"], "running");
    assert_eq!(
        proc_status(&p, "db")["state"],
        "stopped",
        "--no-deps leaves db alone"
    );
    p.procs(["up"]).success();
    let (db, app, other) = (pid_of(&p, "db"), pid_of(&p, "app"), pid_of(&p, "other"));
    p.procs(["down", "app", "db"]).success();
    assert!(!pid_alive(db) && !pid_alive(app), "named processes stopped");
    assert!(pid_alive(other), "down NAME leaves the others running");
    let status = p.procs(["status", "--json"]).success().json();
    assert_eq!(
        status["supervisor"]["running"], true,
        "down NAME keeps the supervisor"
    );
    p.procs(["down"]).success();
    assert!(!pid_alive(other));
    p.assert_no_survivors();
}
