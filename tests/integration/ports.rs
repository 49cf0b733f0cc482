//! Ports (SPEC §3) against real listeners: foreign holders are named and left alone (exit 3)
//! unless `--kill-port-owners`, our own leftovers are cleared, readiness comes only from our
//! own listener, and `procs ports` says who holds what.
//!
//! A foreign holder is either a `procs-testd` the test spawns itself (`spawn_testd`: tagged
//! for the leak check, but not with any `PROCS_PROJECT_ID`) or a `TcpListener` in the test.
//! Every test kills its own foreign process before `assert_no_survivors`.

use std::net::TcpListener;
use std::process::Child;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{Project, free_port, pid_alive, pid_cmdline, wait_until};
use crate::lifecycle::{pid_of, proc_status};

const WAIT: Duration = Duration::from_secs(15);

fn web(port: u16) -> String {
    format!(
        r#"
processes:
  web:
    command: ["{{testd}}", "--listen", "{port}"]
    ports: [{port}]
"#
    )
}

/// A foreign `procs-testd --listen PORT`, ready.
fn foreign_listener(p: &Project, port: u16) -> Child {
    let child = p.spawn_testd("foreign", &["--listen", &port.to_string()]);
    wait_until("the foreign listener to be ready", WAIT, || {
        p.testd_output("foreign").contains("ready")
    });
    child
}

fn finish(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Live processes of this test that run `procs-testd --listen PORT`.
fn instances(p: &Project, port: u16) -> Vec<i32> {
    let needle = format!("--listen {port}");
    p.tagged_pids()
        .into_iter()
        .filter(|&pid| pid_cmdline(pid).contains(&needle))
        .collect()
}

#[test]
fn a_foreign_listener_fails_up_with_exit_3_naming_the_port_and_pid_and_is_left_alone() {
    let port = free_port();
    let mut p = Project::new().config(&web(port));
    let foreign = foreign_listener(&p, port);
    let fpid = foreign.id() as i32;
    let out = p.procs(["up"]).code(3);
    let out = out
        .stderr_contains(&format!(
            "error: cannot start `web`: port {port} is held by pid {fpid} ("
        ))
        .stderr_contains("procs-testd --listen")
        .stderr_contains("hint: stop that process, or run `procs up --kill-port-owners`");
    assert!(pid_alive(fpid), "the foreign holder was touched\n{out:?}");
    assert!(
        p.testd_output("foreign")
            .lines()
            .all(|l| !l.starts_with("got ")),
        "the foreign holder got a signal: {}",
        p.testd_output("foreign")
    );
    let entry = proc_status(&p, "web");
    assert_eq!(entry["state"], "failed", "{entry}");
    let reason = entry["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with(&format!("port {port} is held by pid {fpid} (")),
        "{entry}"
    );
    assert!(p.read_log("web").contains("not started: port"));
    finish(foreign);
    p.assert_no_survivors();
}

#[test]
fn kill_port_owners_stops_the_foreign_holder_and_the_stack_comes_up() {
    let port = free_port();
    let mut p = Project::new().config(&web(port));
    let mut foreign = foreign_listener(&p, port);
    let fpid = foreign.id() as i32;
    p.procs(["up", "--kill-port-owners"])
        .success()
        .stdout_contains(&format!("web: port {port} is held by pid {fpid} ("))
        .stdout_contains("stopping it (--kill-port-owners)");
    let status = foreign.wait().expect("reap the foreign holder");
    assert_eq!(status.code(), Some(0), "it got SIGTERM and exited cleanly");
    assert!(p.testd_output("foreign").contains("got SIGTERM, exiting"));
    assert_eq!(proc_status(&p, "web")["state"], "healthy");
    let pid = pid_of(&p, "web");
    assert_eq!(instances(&p, port), vec![pid]);
    assert!(
        p.read_log("web")
            .contains("stopping it (--kill-port-owners)"),
        "{}",
        p.read_log("web")
    );
    p.assert_no_survivors();
}

#[test]
fn kill_port_owners_also_stops_what_the_holder_spawned_even_after_the_holder_exits() {
    let port = free_port();
    let mut p = Project::new().config(&web(port));
    // The holder exits at SIGTERM; its grandchild, in a session of its own, ignores SIGTERM:
    // it must be followed after the holder's exit reparents it, and get SIGKILL.
    let mut foreign = p.spawn_testd(
        "foreign",
        &[
            "--listen",
            &port.to_string(),
            "--setsid-grandchild",
            "--grandchild-ignore-sigterm",
            "--print-pids",
        ],
    );
    wait_until("the foreign listener to print its grandchild", WAIT, || {
        p.testd_output("foreign").contains("grandchild ")
    });
    let grandchild: i32 = p
        .testd_output("foreign")
        .lines()
        .find_map(|l| l.split("grandchild ").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .expect("the grandchild's pid");
    assert!(pid_alive(grandchild));
    p.procs(["up", "--kill-port-owners"])
        .success()
        .stdout_contains("stopping it (--kill-port-owners)");
    let _ = foreign.wait();
    wait_until(
        &format!("the holder's grandchild {grandchild} to be gone"),
        WAIT,
        || !pid_alive(grandchild),
    );
    assert_eq!(proc_status(&p, "web")["state"], "healthy");
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn after_a_supervisor_sigkill_and_a_deleted_state_dir_the_old_instance_is_cleared() {
    let port = free_port();
    let mut p = Project::new().config(&web(port));
    p.procs(["up"]).success();
    let old = pid_of(&p, "web");
    let state = p.state_json();
    let supervisor = state["supervisor"]["pid"].as_i64().expect("supervisor pid") as i32;
    kill(Pid::from_raw(supervisor), Signal::SIGKILL).expect("SIGKILL the supervisor");
    wait_until("the supervisor to die", WAIT, || !pid_alive(supervisor));
    assert!(pid_alive(old), "the process outlives its supervisor");
    std::fs::remove_dir_all(p.state_dir()).expect("rm -rf .procs");

    p.procs(["up"]).success().stdout_contains(&format!(
        "web: stopped pid {old}, left over from an earlier run"
    ));
    assert!(!pid_alive(old), "the old instance is gone");
    let new = pid_of(&p, "web");
    assert_ne!(new, old);
    assert_eq!(proc_status(&p, "web")["state"], "healthy");
    assert_eq!(instances(&p, port), vec![new], "exactly one instance runs");
    p.assert_no_survivors();
}

#[test]
fn an_impostor_listener_after_up_no_wait_never_makes_the_process_healthy() {
    let (implicit, tcp) = (free_port(), free_port());
    let mut p = Project::new().config(&format!(
        r#"
processes:
  implicit:
    command: ["{{testd}}", "--listen", "{implicit}", "--ready-after", "2000"]
    ports: [{implicit}]
  tcp:
    command: ["{{testd}}", "--listen", "{tcp}", "--ready-after", "2000"]
    ports: [{tcp}]
    healthcheck: {{ tcp: {tcp}, interval: 100ms }}
"#
    ));
    p.procs(["up", "--no-wait"]).success();
    // The impostors: listeners in this test, bound while the real processes still wait.
    let impostors = [
        TcpListener::bind(("127.0.0.1", implicit)).expect("bind the impostor"),
        TcpListener::bind(("127.0.0.1", tcp)).expect("bind the impostor"),
    ];
    let me = std::process::id();
    for (name, port) in [("implicit", implicit), ("tcp", tcp)] {
        wait_until(&format!("`{name}` to fail on the taken port"), WAIT, || {
            proc_status(&p, name)["state"] == "failed"
        });
        let entry = proc_status(&p, name);
        let reason = entry["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains(&format!("port {port} is held by pid {me} (")),
            "the reason names the port and the impostor: {entry}"
        );
        let log = p.read_log(name);
        assert!(
            !log.lines().any(|l| l.ends_with(" healthy")),
            "`{name}` was reported healthy:\n{log}"
        );
        assert!(log.contains("Address already in use"), "{log}");
    }
    drop(impostors);
    p.assert_no_survivors();
}

#[test]
fn an_early_exit_on_a_taken_address_names_the_port_and_the_holder() {
    let port = free_port();
    let mut p = Project::new().config(&format!(
        r#"
processes:
  web:
    command: ["{{testd}}", "--listen", "{port}"]
    restart: no
    healthcheck: {{ log: "^ready$" }}
"#
    ));
    let holder = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    let me = std::process::id();
    p.procs(["up"]).code(3).stderr_contains(&format!(
        "error: cannot start `web`: exited with code 1: port {port} is held by pid {me} ("
    ));
    drop(holder);
    p.assert_no_survivors();
}

#[test]
fn procs_ports_lists_declared_ports_whether_listening_and_their_holders() {
    // The idle port is 1 (tcpmux): a `free_port()` would be free only for a moment, and a
    // parallel test may bind it; nothing listens on port 1 here, and no test binds it.
    let (own, idle, taken) = (free_port(), 1, free_port());
    let mut p = Project::new().config(&format!(
        r#"
processes:
  web:
    command: ["{{testd}}", "--listen", "{own}"]
    ports: [{own}]
  db:
    command: ["{{testd}}"]
    ports: [{idle}]
    disabled: true
  cache:
    command: ["{{testd}}", "--listen", "{taken}"]
    ports: [{taken}]
    disabled: true
"#
    ));
    // Without a supervisor: nothing of ours listens yet.
    let before = p.procs(["ports"]).success();
    assert!(
        before
            .stdout
            .lines()
            .any(|l| l.starts_with(&own.to_string()) && l.contains(" no ")),
        "{}",
        before.stdout
    );
    let foreign = foreign_listener(&p, taken);
    let fpid = foreign.id() as i32;
    p.procs(["up"]).success();
    let wpid = pid_of(&p, "web");

    let text = p.procs(["ports"]).success().stdout;
    let line = |port: u16| {
        text.lines()
            .find(|l| l.starts_with(&format!("{port} ")))
            .unwrap_or_else(|| panic!("no row for {port}:\n{text}"))
            .to_owned()
    };
    assert!(text.starts_with("PORT "), "{text}");
    let row = line(own);
    assert!(
        row.contains("web") && row.contains("yes") && row.contains(" own "),
        "{text}"
    );
    assert!(row.contains(&format!("pid {wpid} (")), "{text}");
    let row = line(idle);
    assert!(
        row.contains("db") && row.contains(" no ") && row.ends_with('-'),
        "{text}"
    );
    let row = line(taken);
    assert!(row.contains("cache") && row.contains(" foreign "), "{text}");
    assert!(row.contains(&format!("pid {fpid} (")), "{text}");

    let json = p.procs(["ports", "--json"]).success().json();
    let ports = json["ports"].as_array().expect("ports array");
    let entry = |port: u16| {
        ports
            .iter()
            .find(|e| e["port"] == port)
            .unwrap_or_else(|| panic!("no entry for {port}: {json}"))
    };
    assert_eq!(entry(own)["process"], "web");
    assert_eq!(entry(own)["listening"], true);
    assert_eq!(entry(own)["holders"][0]["pid"], wpid);
    assert_eq!(entry(own)["holders"][0]["owner"], "own");
    assert_eq!(entry(own)["holders"][0]["process"], "web");
    assert_eq!(entry(idle)["listening"], false);
    assert_eq!(entry(idle)["holders"], serde_json::json!([]));
    assert_eq!(entry(taken)["holders"][0]["pid"], fpid);
    assert_eq!(entry(taken)["holders"][0]["owner"], "foreign");
    assert!(
        entry(taken)["holders"][0]["command"]
            .as_str()
            .is_some_and(|c| c.contains("procs-testd --listen")),
        "{json}"
    );
    finish(foreign);
    p.assert_no_survivors();
}

#[test]
fn a_restart_first_clears_a_leftover_of_the_old_tree_holding_the_port() {
    let port = free_port();
    // First run: a background listener (same tree, tagged `web`) outlives the shell, which
    // exits 1 after 300 ms. The restart must clear that leftover before starting anew.
    let mut p = Project::new().config(&format!(
        r#"
processes:
  web:
    command: 'if [ -e first ]; then exec "{{testd}}" --listen {port}; fi; touch first; "{{testd}}" --listen {port} & exec "{{testd}}" --exit-after 300 --code 1'
    ports: [{port}]
    backoff: {{ initial: 50ms, max: 50ms }}
"#
    ));
    p.procs(["up"]).success();
    wait_until("the restarted `web` to be healthy", WAIT, || {
        let log = p.read_log("web");
        (log.contains("left over from an earlier run")
            || log.contains("stopped what the exited process left in its process group"))
            && log.lines().last().is_some_and(|l| l.ends_with(" healthy"))
            // The log is written before the registry (coalesced writes): wait for both.
            && proc_status(&p, "web")["pid"].is_i64()
    });
    // The leftover goes either when the main process exits (its group is cleared) or,
    // had it escaped the group, in the pre-flight before the restart.
    let log = p.read_log("web");
    let cleared = log.contains("stopped what the exited process left in its process group")
        || log.lines().any(|l| {
            l.contains("left over from an earlier run")
                && l.contains(&format!("port {port} is held by pid "))
                && l.contains("(process `web`)")
        });
    assert!(cleared, "{log}");
    let new = pid_of(&p, "web");
    assert_eq!(
        instances(&p, port),
        vec![new],
        "one listener, the new one\n{log}"
    );
    p.assert_no_survivors();
}

#[test]
fn doctor_names_a_foreign_port_holder_without_promising_that_fix_will_stop_it() {
    let port = free_port();
    let mut p = Project::new().config(&web(port));
    let foreign = foreign_listener(&p, port);
    let fpid = foreign.id() as i32;
    let out = p.procs(["doctor"]).code(1);
    assert!(
        out.stdout.contains(&format!(
            "problem: port {port} declared by `web` is held by pid {fpid}"
        )),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("--kill-port-owners"), "{}", out.stdout);
    assert!(
        !out.stdout
            .contains("run `procs doctor --fix` to clean these up"),
        "--fix would not stop it: {}",
        out.stdout
    );
    p.procs(["doctor", "--fix"]).code(1);
    assert!(pid_alive(fpid), "--fix never stops a foreign holder");
    finish(foreign);
    p.assert_no_survivors();
}
