//! `daemon: true` processes with real daemons, under both membership mechanisms (the cgroup
//! and `PROCS_NO_CGROUP=1`): the port pre-flight never calls the daemon's own listener a
//! conflict (a foreign holder still is one), the restart policy applies when the daemon
//! dies, and in a classic double fork the grandchild is the daemon, not the intermediate.

use std::time::Duration;

use crate::containment::{Mechanism, Reap, need, tree_of, write_nginx};
use crate::harness::{KillOnDrop, Project, free_port, pid_alive, pid_cmdline, wait_until};

const WAIT: Duration = Duration::from_secs(20);

fn sigkill(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL");
}

fn first(status: &serde_json::Value) -> serde_json::Value {
    status["processes"][0].clone()
}

fn pid_of(row: &serde_json::Value) -> i32 {
    row["pid"].as_i64().unwrap_or(0) as i32
}

fn nginx_master(p: &Project) -> i32 {
    std::fs::read_to_string(p.path().join("nginx.pid"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

fn listens(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// A second `up`, a `restart` and an `up` after a supervisor SIGKILL meet nginx's own
/// listener (its master and workers, which rewrote their titles and so their tags): never a
/// conflict. A foreign listener on the port still is one, and is never signalled.
fn own_listener_is_no_conflict(mech: Mechanism) {
    let Some(nginx) = need("nginx") else { return };
    let port = free_port();
    let mut p = Project::new();
    let dir = p.path().display().to_string();
    write_nginx(&p, &nginx, port);
    let _reap = Reap::new(&dir, &p);
    let env = mech.env();
    p.procs_env(["up"], &env).success();
    let master = nginx_master(&p);
    assert!(pid_alive(master), "{mech:?}: nginx runs as {master}");

    // A second `up`: nothing changed, nothing restarted, no conflict.
    p.procs_env(["up"], &env).success().stdout_lacks("held by");
    let web = first(&p.procs_env(["status", "--json"], &env).success().json());
    assert_eq!(web["state"], "healthy", "{mech:?}: {web}");
    assert_eq!(pid_of(&web), master, "{mech:?}: the same daemon: {web}");

    // A restart: the old daemon goes, a new one is healthy on the same port.
    p.procs_env(["restart", "web"], &env)
        .success()
        .stdout_lacks("held by");
    let web = first(&p.procs_env(["status", "--json"], &env).success().json());
    assert_eq!(web["state"], "healthy", "{mech:?}: {web}");
    let second = pid_of(&web);
    assert_ne!(second, master, "{mech:?}: a new daemon after restart");
    assert!(!pid_alive(master), "{mech:?}: the old master is gone");
    assert_eq!(second, nginx_master(&p), "{mech:?}: {web}");

    // An `up` after a supervisor SIGKILL: the daemon it finds on the port is its own.
    let sup = p.state_json()["supervisor"]["pid"]
        .as_i64()
        .expect("supervisor pid") as i32;
    sigkill(sup);
    wait_until("the supervisor to die", WAIT, || !pid_alive(sup));
    p.procs_env(["up"], &env).success();
    let web = first(&p.procs_env(["status", "--json"], &env).success().json());
    assert_eq!(web["state"], "healthy", "{mech:?}: {web}");
    assert!(
        !p.read_log("web").contains("is held by"),
        "{mech:?}: its own listener is never a conflict:\n{}",
        p.read_log("web")
    );
    p.procs_env(["down"], &env).success();
    assert!(tree_of(&dir).is_empty(), "{mech:?}: {:?}", tree_of(&dir));

    // A foreign holder of the port is a conflict, named, and survives.
    let foreign = KillOnDrop(
        std::process::Command::new("python3")
            .args([
                "-c",
                &format!(
                    "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',{port}))\ns.listen()\ntime.sleep(120)"
                ),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn a foreign listener"),
    );
    wait_until("the foreign listener", WAIT, || listens(port));
    let out = p.procs_env(["up"], &env).failure();
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains(&format!("port {port} is held by pid {}", foreign.id())),
        "{mech:?}: the conflict names the foreign holder:\n{text}"
    );
    assert!(
        pid_alive(foreign.id() as i32),
        "{mech:?}: the foreign holder is never signalled"
    );
    p.procs_env(["down"], &env).success();
    drop(foreign);
    p.assert_no_survivors();
}

/// A `daemon: true` process whose daemon (a Python HTTP server that the main process started
/// with `setsid … &`) is killed (`SIGKILL`): restarted under `always` and `on-failure` (a new daemon,
/// healthy again), `exited` with nothing left under `no`.
fn daemon_death(mech: Mechanism, restart: &str) {
    let port = free_port();
    let mut p = Project::new();
    let marker = format!("{port} --bind 127.0.0.1");
    p.write_config(&format!(
        "processes:\n  app:\n    command: \"setsid python3 -m http.server {marker} >/dev/null 2>&1 & exit 0\"\n    daemon: true\n    restart: {restart}\n    healthcheck: {{ tcp: {port} }}\n"
    ));
    let _reap = Reap::new(&marker, &p);
    let env = mech.env();
    p.procs_env(["up"], &env).success();
    let app = first(&p.procs_env(["status", "--json"], &env).success().json());
    assert_eq!(app["state"], "healthy", "{mech:?} {restart}: {app}");
    let daemon = pid_of(&app);
    assert!(
        pid_cmdline(daemon).contains(&marker),
        "{mech:?} {restart}: pid {daemon} is the daemon: {app}"
    );
    sigkill(daemon);
    if restart == "no" {
        let mut last = serde_json::Value::Null;
        wait_until(
            "the process to be exited after its daemon died",
            WAIT,
            || {
                last = first(&p.procs_env(["status", "--json"], &env).json());
                last["state"] == "exited" || last["state"] == "failed"
            },
        );
        assert_eq!(last["restarts"], 0, "{mech:?} {restart}: {last}");
        assert!(
            tree_of(&marker).is_empty(),
            "{mech:?} {restart}: left: {:?}",
            tree_of(&marker)
        );
    } else {
        let mut last = serde_json::Value::Null;
        wait_until("a new daemon, healthy again", WAIT, || {
            last = first(&p.procs_env(["status", "--json"], &env).json());
            last["state"] == "healthy" && pid_of(&last) != daemon && pid_of(&last) > 0
        });
        assert_eq!(last["restarts"], 1, "{mech:?} {restart}: {last}");
        let again = pid_of(&last);
        assert!(
            pid_cmdline(again).contains(&marker),
            "{mech:?} {restart}: pid {again} is the new daemon: {last}"
        );
        assert!(listens(port), "{mech:?} {restart}: it serves again");
    }
    p.procs_env(["down"], &env).success();
    assert!(
        tree_of(&marker).is_empty(),
        "{mech:?}: {:?}",
        tree_of(&marker)
    );
    p.assert_no_survivors();
}

/// A classic double fork (fork, the parent exits; setsid; fork, the intermediate exits 0
/// after `linger` seconds): the intermediate, still alive when the main process exits (with
/// a linger for sure, without one depending on the race), is not the daemon — the grandchild
/// is, and the intermediate's exit is no exit of the process.
fn double_fork(mech: Mechanism, linger: &str) {
    let mut p = Project::new();
    let marker = format!("{}.{}", 6100 + std::process::id() % 1000, free_port());
    p.file(
        "daemonize.py",
        "import os, sys, time\n\
         if os.fork():\n    sys.exit(0)\n\
         os.setsid()\n\
         if os.fork():\n    time.sleep(float(sys.argv[2]))\n    os._exit(0)\n\
         os.execvp('sleep', ['sleep', sys.argv[1]])\n",
    );
    p.write_config(&format!(
        "processes:\n  app:\n    command: python3 daemonize.py {marker} {linger}\n    daemon: true\n    restart: always\n    ready_after: 0s\n"
    ));
    let _reap = Reap::new(&marker, &p);
    let env = mech.env();
    p.procs_env(["up"], &env).success();
    let daemon_cmd = format!("sleep {marker}");
    wait_until("the intermediate to exit", WAIT, || {
        tree_of(&marker)
            .iter()
            .all(|pid| pid_cmdline(*pid) == daemon_cmd)
    });
    let grandchild: Vec<i32> = tree_of(&marker);
    assert_eq!(grandchild.len(), 1, "{mech:?}: one daemon: {grandchild:?}");
    let grandchild = grandchild[0];
    let mut last = serde_json::Value::Null;
    wait_until("status to name the grandchild", WAIT, || {
        last = first(&p.procs_env(["status", "--json"], &env).json());
        pid_of(&last) == grandchild
    });
    assert_eq!(last["state"], "running", "{mech:?}: {last}");
    assert_eq!(
        last["restarts"], 0,
        "{mech:?}: the intermediate's exit is no restart: {last}"
    );
    assert!(
        pid_alive(grandchild),
        "{mech:?}: the daemon is not stopped as a leftover"
    );
    if linger != "0" {
        let log = p.read_log("app");
        assert!(
            log.contains("that is the daemon"),
            "{mech:?}: the handover is logged:\n{log}"
        );
    }
    p.procs_env(["down"], &env).success();
    assert!(
        tree_of(&marker).is_empty(),
        "{mech:?}: {:?}",
        tree_of(&marker)
    );
    p.assert_no_survivors();
}

macro_rules! per_mechanism {
    ($($name:ident => $body:expr),* $(,)?) => {
        $(
            mod $name {
                use super::*;
                #[test]
                fn cgroup() {
                    let f: fn(Mechanism) = $body;
                    f(Mechanism::Cgroup);
                }
                #[test]
                fn lineage() {
                    let f: fn(Mechanism) = $body;
                    f(Mechanism::Lineage);
                }
            }
        )*
    };
}

per_mechanism!(
    a_daemons_own_listener_is_no_conflict_a_foreign_one_is => own_listener_is_no_conflict,
    a_dead_daemon_is_restarted_under_restart_always => |m| daemon_death(m, "always"),
    a_dead_daemon_is_restarted_under_restart_on_failure => |m| daemon_death(m, "on-failure"),
    a_dead_daemon_is_exited_under_restart_no => |m| daemon_death(m, "no"),
    a_double_forks_grandchild_is_the_daemon_not_the_intermediate => |m| double_fork(m, "0.5"),
    a_double_fork_whose_intermediate_exits_at_once_leaves_the_grandchild_as_daemon =>
        |m| double_fork(m, "0"),
);
