//! Health checks, dependency conditions, oneshots and restart policies, with real processes.

use std::time::Duration;

use crate::harness::{Project, free_port, pid_alive, wait_until};
use crate::lifecycle::{pid_of, proc_status};

#[test]
fn every_probe_kind_makes_a_process_healthy() {
    let (t, h) = (free_port(), free_port());
    let mut p = Project::new().config(&format!(
        r#"
processes:
  by_exec:
    command: ["{{testd}}", "--touch", "ready.flag", "--ready-after", "200"]
    healthcheck: {{ exec: "test -f ready.flag", interval: 100ms }}
  by_tcp:
    command: ["{{testd}}", "--listen", "{t}", "--ready-after", "200"]
    healthcheck: {{ tcp: {t}, interval: 100ms }}
  by_http:
    command: ["{{testd}}", "--listen", "{h}", "--http", "--http-status", "204"]
    healthcheck: {{ http: "http://127.0.0.1:{h}/health", status: 204 }}
  by_log:
    command: ["{{testd}}", "--ready-after", "200", "--print", "server is up"]
    healthcheck: {{ log: "server (is|was) up" }}
"#
    ));
    p.procs(["up"]).success();
    for name in ["by_exec", "by_tcp", "by_http", "by_log"] {
        assert_eq!(proc_status(&p, name)["state"], "healthy", "{name}");
    }
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn a_failed_oneshot_fails_its_dependent_and_up_says_why() {
    let mut p = Project::new().config(
        r#"
processes:
  migrate:
    command: ["{testd}", "--print", "migration exploded", "--exit-after", "50", "--code", "3"]
    oneshot: true
  app:
    command: ["{testd}"]
    depends_on: { migrate: completed_successfully }
"#,
    );
    let out = p.procs(["up", "--timeout", "60s"]).code(1);
    let err = &out.stderr;
    assert!(
        err.contains("`migrate` is failed: exited with code 3"),
        "{err}"
    );
    assert!(err.contains("dependency `migrate`"), "{err}");
    assert!(
        err.contains("migration exploded"),
        "log tail included: {err}"
    );
    assert_eq!(proc_status(&p, "app")["state"], "failed");
    assert!(
        proc_status(&p, "app")["pid"].is_null(),
        "the dependent never started"
    );
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn a_successful_oneshot_completes_and_unblocks_its_dependent() {
    let mut p = Project::new().config(
        r#"
processes:
  setup:
    command: ["{testd}", "--exit-after", "100", "--code", "0"]
    oneshot: true
  app:
    command: ["{testd}"]
    depends_on: { setup: completed_successfully }
"#,
    );
    p.procs(["up"]).success();
    assert_eq!(proc_status(&p, "setup")["state"], "completed");
    assert_eq!(proc_status(&p, "app")["state"], "running");
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn a_crash_loop_ends_in_failed_with_the_restart_count() {
    let mut p = Project::new().config(
        r#"
processes:
  crasher:
    command: ["{testd}", "--exit-after", "20", "--code", "1"]
    backoff: { initial: 10ms, max: 50ms }
    max_restarts: 3
    min_uptime: 5s
"#,
    );
    // It exits before it is ready (`ready_after`): `up` says so at once, and the restart
    // policy goes on in the background until the crash loop is declared.
    let out = p.procs(["up"]).code(1);
    assert!(
        out.stderr
            .contains("exited with code 1 before it was ready"),
        "{}",
        out.stderr
    );
    wait_until("crasher to give up", Duration::from_secs(20), || {
        proc_status(&p, "crasher")["state"] == "failed"
    });
    let entry = proc_status(&p, "crasher");
    assert_eq!(entry["state"], "failed", "{entry}");
    assert_eq!(entry["restarts"], 3, "{entry}");
    assert!(
        entry["reason"]
            .as_str()
            .is_some_and(|r| r.contains("crash loop")),
        "{entry}"
    );
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn a_sigkilled_process_is_restarted_with_a_new_pid() {
    let mut p = Project::new().config(
        r#"
processes:
  svc:
    command: ["{testd}"]
    backoff: { initial: 0s, max: 1s }
"#,
    );
    p.procs(["up"]).success();
    let old = pid_of(&p, "svc");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    wait_until(
        "svc to run again with a new pid",
        Duration::from_secs(10),
        || {
            let e = proc_status(&p, "svc");
            e["state"] == "running" && e["pid"].as_i64().is_some_and(|pid| pid as i32 != old)
        },
    );
    assert_eq!(proc_status(&p, "svc")["restarts"], 1);
    assert!(p.read_log("svc").contains("killed by signal SIGKILL"));
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn restart_no_stays_down() {
    let mut p = Project::new().config(
        r#"
processes:
  once:
    command: ["{testd}"]
    restart: no
"#,
    );
    p.procs(["up"]).success();
    let pid = pid_of(&p, "once");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    wait_until(
        "once to be recorded as exited",
        Duration::from_secs(10),
        || proc_status(&p, "once")["state"] == "exited",
    );
    assert!(proc_status(&p, "once")["pid"].is_null());
    assert_eq!(proc_status(&p, "once")["restarts"], 0);
    assert!(!pid_alive(pid));
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn up_timeout_names_the_process_that_never_became_healthy() {
    let port = free_port();
    let mut p = Project::new().config(&format!(
        r#"
processes:
  never:
    command: ["{{testd}}", "--print", "booting forever"]
    healthcheck: {{ tcp: {port}, interval: 100ms }}
"#
    ));
    let out = p.procs(["up", "--timeout", "1s"]).code(1);
    assert!(
        out.stderr.contains("timed out after 1s waiting for never"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("booting forever"),
        "log tail: {}",
        out.stderr
    );
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn completed_waits_for_any_exit_and_completed_successfully_fails_on_a_bad_code() {
    let mut p = Project::new().config(
        r#"
processes:
  check:
    command: ["{testd}", "--exit-after", "100", "--code", "4"]
    oneshot: true
  after_any:
    command: ["{testd}"]
    depends_on: { check: completed }
  after_ok:
    command: ["{testd}"]
    depends_on: { check: { condition: completed_successfully } }
"#,
    );
    p.procs(["up", "after_any"]).success();
    assert_eq!(proc_status(&p, "after_any")["state"], "running");
    assert_eq!(proc_status(&p, "check")["state"], "failed");
    p.procs(["up", "after_ok"])
        .code(1)
        .stderr_contains("dependency `check`");
    assert!(proc_status(&p, "after_ok")["pid"].is_null());
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn a_process_that_turns_unhealthy_is_restarted() {
    let mut p = Project::new().config(
        r#"
processes:
  svc:
    command: ["{testd}"]
    healthcheck: { exec: "test -f healthy.flag", interval: 100ms, retries: 2 }
    backoff: { initial: 0s }
"#,
    );
    let flag = p.path().join("healthy.flag");
    std::fs::write(&flag, "").expect("flag");
    p.procs(["up"]).success();
    let first = pid_of(&p, "svc");
    std::fs::remove_file(&flag).expect("unflag");
    wait_until(
        "svc to be restarted after turning unhealthy",
        Duration::from_secs(20),
        || {
            p.read_log("svc")
                .contains("restarting because the process turned unhealthy")
        },
    );
    std::fs::write(&flag, "").expect("flag");
    wait_until(
        "svc healthy again with a new pid",
        Duration::from_secs(20),
        || {
            let e = proc_status(&p, "svc");
            e["state"] == "healthy" && e["pid"].as_i64().is_some_and(|pid| pid as i32 != first)
        },
    );
    assert!(!pid_alive(first), "the unhealthy instance is gone");
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn when_a_process_exits_what_it_left_in_its_group_is_stopped() {
    let mut p = Project::new().config(
        r#"
processes:
  parent:
    command: ["{testd}", "--spawn-grandchild", "--pidfile", "parent.pids", "--exit-after", "300", "--code", "1"]
    restart: no
    ready_after: 100ms
"#,
    );
    p.procs(["up"]).success();
    let pidfile = p.path().join("parent.pids");
    wait_until("the pid file", Duration::from_secs(10), || {
        std::fs::read_to_string(&pidfile).is_ok_and(|s| s.lines().count() >= 2)
    });
    let grandchild: i32 = std::fs::read_to_string(&pidfile)
        .expect("pids")
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("grandchild pid");
    wait_until("parent to exit", Duration::from_secs(10), || {
        proc_status(&p, "parent")["state"] == "exited"
    });
    wait_until(
        "its grandchild to be stopped",
        Duration::from_secs(15),
        || !pid_alive(grandchild),
    );
    p.procs(["down"]).success();
    p.assert_no_survivors();
}
