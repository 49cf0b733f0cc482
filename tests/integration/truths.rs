//! The lifecycle tells the truth: one test per case of issue 13's "Why", each with real
//! processes. A command that used to hang is run with a deadline well below the wait it
//! used to take, so a regression fails the test instead of slowing it down.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::{Project, pid_alive, procs_bin, run, wait_until};
use crate::lifecycle::{pid_of, proc_status};

const WAIT: Duration = Duration::from_secs(15);

/// Run `procs ARGS` with a deadline shorter than the harness's default.
#[track_caller]
fn procs_within(p: &Project, args: &[&str], deadline: Duration) -> crate::harness::Output {
    run(p.command(procs_bin()).args(args), deadline)
}

fn signal(pid: i32, sig: Signal) {
    kill(Pid::from_raw(pid), sig).expect("send a signal");
}

fn supervisor_pid(p: &Project) -> i32 {
    let state = p.state_json();
    state["supervisor"]["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("no supervisor in {state}")) as i32
}

#[test]
fn a_crasher_without_health_check_fails_up_with_its_exit_code_and_this_runs_lines() {
    let mut p = Project::new().config(
        r#"
processes:
  crasher:
    command: 'echo "boom: config missing" >&2; exit 3'
"#,
    );
    // Output of an earlier run must not be shown as this run's.
    p.file(
        ".procs/logs/crasher.log",
        "boom: stale line of an earlier run\n",
    );
    let out = procs_within(&p, &["up", "--timeout", "60s"], Duration::from_secs(20)).code(1);
    let err = &out.stderr;
    assert!(err.contains("crasher"), "{err}");
    assert!(err.contains("exited with code 3"), "{err}");
    assert!(err.contains("before it was ready"), "{err}");
    assert_eq!(
        err.matches("boom: config missing").count(),
        1,
        "exactly this run's line: {err}"
    );
    assert!(!err.contains("stale line"), "{err}");
    assert!(!out.stdout.contains("crasher (running)"), "{}", out.stdout);
    p.assert_no_survivors();
}

#[test]
fn ups_verdict_names_every_processs_real_state_not_the_moment_of_the_first_failure() {
    // Two processes fail within milliseconds of each other while a third becomes healthy
    // a moment later: the verdict used to be a snapshot of the first failure ("`typo` is
    // pending: no reason recorded" although it had exited 127, "`web` is pending" although
    // it was starting).
    let port = crate::harness::free_port();
    let mut p = Project::new().config(&format!(
        r#"
processes:
  crasher:
    command: 'echo "boom: config missing" >&2; exit 3'
    restart: no
  typo:
    command: pythn3 -m http.server
    restart: no
  web:
    command: ["{{testd}}", "--listen", "{port}"]
    ports: [{port}]
    healthcheck: {{ tcp: "127.0.0.1:{port}" }}
"#
    ));
    let out = procs_within(&p, &["up", "--timeout", "60s"], Duration::from_secs(20)).code(1);
    let err = &out.stderr;
    assert!(err.contains("2 of 3 processes not ready"), "{err}");
    // Not restarted (`restart: no`), so each one's state cannot move on meanwhile: both
    // are named with their own exit, whichever failed first.
    let said = |name: &str, what: &str| {
        err.lines()
            .any(|l| l.contains(&format!("`{name}` is ")) && l.contains(what))
    };
    assert!(said("crasher", "exited with code 3"), "{err}");
    assert!(said("typo", "exited with code 127"), "{err}");
    // `web` normally became healthy within the grace; on a slow machine it may still be
    // starting, which the verdict must then say in so many words.
    assert!(
        !err.contains("`web`") || err.contains("`web` is starting: waiting for tcp"),
        "{err}"
    );
    assert!(!err.contains("no reason recorded"), "{err}");
    wait_until(
        "web to be healthy (the failures go on in the background)",
        WAIT,
        || proc_status(&p, "web")["state"] == "healthy",
    );
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn a_down_during_up_is_named_in_ups_verdict_without_an_earlier_runs_lines() {
    // `db` never becomes healthy (nothing listens on its port), `api` waits for it; a
    // `down` meanwhile: `up` says each was stopped before it was ready, and shows no log
    // lines for `api`, which did not run for this `up` (its log holds an earlier run).
    let port = crate::harness::free_port();
    let mut p = Project::new().config(&format!(
        r#"
processes:
  db:
    command: ["{{testd}}"]
    healthcheck: {{ tcp: "127.0.0.1:{port}" }}
  api:
    command: ["{{testd}}"]
    depends_on: {{ db: healthy }}
"#
    ));
    p.file(
        ".procs/logs/api.log",
        "[procs] 2026-01-01T00:00:00Z started pid 1\nstale line of an earlier run\n",
    );
    let up = p
        .command(procs_bin())
        .args(["up", "--timeout", "60s"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn procs up");
    let mut up = crate::harness::KillOnDrop(up);
    wait_until("db to be started by up", WAIT, || {
        p.read_log("db").contains("started pid")
    });
    p.procs(["down"]).success();
    wait_until("up to return after the down", WAIT, || {
        up.try_wait().expect("try_wait").is_some()
    });
    let mut err = String::new();
    std::io::Read::read_to_string(up.stderr.as_mut().expect("stderr"), &mut err)
        .expect("read up's stderr");
    assert_eq!(up.wait().expect("wait").code(), Some(1), "{err}");
    assert!(
        err.contains("`db` is stopped: by a `down` or `stop` before it was ready"),
        "{err}"
    );
    assert!(err.contains("`api` is"), "{err}");
    assert!(
        !err.contains("stale line"),
        "api did not run for this up: {err}"
    );
    assert!(!err.contains("no reason recorded"), "{err}");
    p.assert_no_survivors();
}

#[test]
fn a_typo_in_the_program_fails_up_within_seconds() {
    let mut p = Project::new().config(
        "
processes:
  web:
    command: pythn3 -m http.server 0
",
    );
    let out = procs_within(&p, &["up"], Duration::from_secs(20)).code(1);
    assert!(
        out.stderr.contains("exited with code 127"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("timed out"), "{}", out.stderr);
    p.assert_no_survivors();
}

#[test]
fn a_process_that_stays_up_for_ready_after_is_ready() {
    let mut p = Project::new().config(
        r#"
processes:
  slow:
    command: ["{testd}"]
    ready_after: 300ms
  instant:
    command: ["{testd}"]
    ready_after: 0s
"#,
    );
    p.procs(["up"]).success();
    assert_eq!(proc_status(&p, "slow")["state"], "running");
    assert_eq!(proc_status(&p, "instant")["state"], "running");
    let log = p.read_log("slow");
    assert!(log.contains("started pid"), "{log}");
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn sigterm_or_sigint_to_the_supervisor_stops_the_stack_and_later_commands_work() {
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        let mut p = Project::new().config(
            r#"
processes:
  a:
    command: ["{testd}"]
    ready_after: 0s
  b:
    command: ["{testd}"]
    ready_after: 0s
"#,
        );
        p.procs(["up"]).success();
        let sup = supervisor_pid(&p);
        let a = pid_of(&p, "a");
        signal(sup, sig);
        wait_until(&format!("the supervisor to exit on {sig}"), WAIT, || {
            !pid_alive(sup)
        });
        assert!(
            !pid_alive(a),
            "{sig}: `a` (pid {a}) survived the supervisor"
        );
        assert!(p.read_log("a").contains("got SIGTERM, exiting"));
        procs_within(&p, &["up"], Duration::from_secs(20)).success();
        procs_within(&p, &["down"], Duration::from_secs(20)).success();
        p.assert_no_survivors();
    }
}

/// SIGHUP (decided and documented in docs/lifecycle.md, "Signals to the supervisor") is
/// logged and otherwise ignored: the supervisor and its processes go on, and it still
/// answers.
#[test]
fn sighup_to_the_supervisor_is_logged_and_changes_nothing() {
    let mut p = Project::new().config(
        r#"
processes:
  a:
    command: ["{testd}"]
    ready_after: 0s
"#,
    );
    p.procs(["up"]).success();
    let sup = supervisor_pid(&p);
    let a = pid_of(&p, "a");
    signal(sup, Signal::SIGHUP);
    wait_until("the supervisor to log the SIGHUP", WAIT, || {
        p.read_log("procs").contains("SIGHUP received: ignored")
    });
    assert!(pid_alive(sup), "the supervisor survived SIGHUP");
    assert!(pid_alive(a), "`a` survived the supervisor's SIGHUP");
    assert!(
        !p.read_log("a").contains("got SIGHUP"),
        "no signal was passed on"
    );
    procs_within(&p, &["up"], Duration::from_secs(20)).success();
    assert_eq!(supervisor_pid(&p), sup, "the same supervisor answers");
    assert_eq!(pid_of(&p, "a"), a, "nothing restarted");
    procs_within(&p, &["down"], Duration::from_secs(20)).success();
    p.assert_no_survivors();
}

#[test]
fn up_timeout_holds_even_with_a_stalled_supervisor() {
    let mut p = Project::new().config(
        r#"
processes:
  a:
    command: ["{testd}"]
    ready_after: 0s
"#,
    );
    p.procs(["up"]).success();
    let sup = supervisor_pid(&p);
    signal(sup, Signal::SIGSTOP);
    let out = procs_within(&p, &["up", "--timeout", "2s"], Duration::from_secs(12));
    signal(sup, Signal::SIGCONT);
    let out = out.code(1);
    assert!(
        out.stderr.contains("the supervisor stopped answering"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(&format!("pid {sup}")), "{}", out.stderr);
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn status_without_a_registry_finds_the_processes_by_their_tags() {
    let mut p = Project::new().config(
        r#"
processes:
  web:
    command: ["{testd}"]
    ready_after: 0s
"#,
    );
    p.procs(["up"]).success();
    let pid = pid_of(&p, "web");
    // The supervisor dies and its registry is lost; the process goes on.
    let sup = supervisor_pid(&p);
    signal(sup, Signal::SIGKILL);
    wait_until("the supervisor to die", WAIT, || !pid_alive(sup));
    let state = p.state_dir().join("state.json");
    std::fs::remove_file(&state).expect("remove state.json");
    let out = p.procs(["status"]).success();
    assert!(out.stdout.contains("web"), "{}", out.stdout);
    assert!(out.stdout.contains(&pid.to_string()), "{}", out.stdout);
    assert!(out.stdout.contains("found by its tags"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("no processes recorded"),
        "{}",
        out.stdout
    );
    assert_eq!(proc_status(&p, "web")["pid"], pid);

    // A registry that cannot be read is an error, never "nothing runs".
    std::fs::create_dir(&state).expect("a directory where state.json should be");
    let out = p.procs(["status"]).code(1);
    assert!(
        out.stderr.contains("error: cannot read the registry"),
        "{}",
        out.stderr
    );
    std::fs::remove_dir(&state).expect("remove the directory");
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn a_duration_too_long_for_any_clock_is_a_located_config_error() {
    let p = Project::new().config(
        r#"
processes:
  web:
    command: ["{testd}"]
    healthcheck:
      tcp: 1
      start_timeout: 18446744073709551615s
"#,
    );
    let out = p.procs(["up"]).code(2);
    assert!(out.stderr.contains("procs.yaml:7:"), "{}", out.stderr);
    assert!(out.stderr.contains("start_timeout"), "{}", out.stderr);
    assert!(out.stderr.contains("at most 100 years"), "{}", out.stderr);
    assert!(!p.state_dir().join("supervisor.sock").exists());
}

#[test]
fn a_stopped_process_is_continued_so_that_it_can_stop() {
    let mut p = Project::new().config(
        r#"
processes:
  frozen:
    command: ["{testd}"]
    ready_after: 0s
    stop_timeout: 30s
"#,
    );
    p.procs(["up"]).success();
    let pid = pid_of(&p, "frozen");
    signal(pid, Signal::SIGSTOP);
    let out = procs_within(&p, &["down"], Duration::from_secs(15)).success();
    assert!(!out.stdout.contains("killed after"), "{}", out.stdout);
    assert!(p.read_log("frozen").contains("got SIGTERM, exiting"));
    p.assert_no_survivors();
}

#[test]
fn a_main_process_that_left_its_group_still_gets_the_stop_signal() {
    let mut p = Project::new().config(
        r#"
processes:
  mover:
    command: ["{testd}", "--leave-group"]
    ready_after: 0s
    stop_timeout: 30s
"#,
    );
    p.procs(["up"]).success();
    let pid = pid_of(&p, "mover");
    procs_within(&p, &["down"], Duration::from_secs(15)).success();
    assert!(!pid_alive(pid));
    assert!(p.read_log("mover").contains("got SIGTERM, exiting"));
    p.assert_no_survivors();
}

#[test]
fn processes_forked_during_a_stop_are_signalled_and_not_reported_as_survivors() {
    let mut p = Project::new().config(
        r#"
processes:
  forker:
    command: ["{testd}", "--fork-on-sigterm", "20"]
    ready_after: 0s
    stop_timeout: 30s
"#,
    );
    p.procs(["up"]).success();
    let out = procs_within(&p, &["down"], Duration::from_secs(15)).success();
    assert!(!out.stdout.contains("surviv"), "{}", out.stdout);
    assert!(!out.stdout.contains("killed after"), "{}", out.stdout);
    assert!(p.read_log("forker").contains("forked 20"));
    p.assert_no_survivors();
}

#[test]
fn a_stop_that_needed_sigkill_says_so() {
    let mut p = Project::new().config(
        r#"
processes:
  stubborn:
    command: ["{testd}", "--ignore-sigterm"]
    ready_after: 0s
    stop_timeout: 1s
"#,
    );
    p.procs(["up"]).success();
    let out = p.procs(["down"]).success();
    assert!(
        out.stdout
            .contains("stubborn: killed after the 1s stop timeout"),
        "{}",
        out.stdout
    );
    p.assert_no_survivors();
}

#[test]
fn the_started_line_precedes_the_childs_first_output() {
    let mut p = Project::new().config(
        r#"
processes:
  talker:
    command: ["{testd}", "--print", "first words"]
    ready_after: 0s
"#,
    );
    p.procs(["up"]).success();
    let pid = pid_of(&p, "talker");
    let log = p.read_log("talker");
    let lines: Vec<&str> = log.lines().collect();
    let started = lines
        .iter()
        .position(|l| l.starts_with("[procs] ") && l.ends_with(&format!(" started pid {pid}")))
        .unwrap_or_else(|| panic!("no `started pid {pid}` line in:\n{log}"));
    let first = lines
        .iter()
        .position(|l| *l == "first words")
        .unwrap_or_else(|| panic!("no output in:\n{log}"));
    assert!(
        started < first,
        "the started line comes after the output:\n{log}"
    );
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn a_ready_line_printed_just_before_exit_is_seen() {
    let mut p = Project::new().config(
        r#"
processes:
  announcer:
    command: "echo READY-NOW; exit 0"
    restart: no
    healthcheck: { log: "READY-NOW" }
  follower:
    command: ["{testd}"]
    ready_after: 0s
    depends_on: { announcer: healthy }
"#,
    );
    // `announcer` exits right after its ready line: `up` reports that exit, but the
    // ready line was seen, so its dependent starts.
    p.procs(["up"]);
    wait_until("`follower` to start", WAIT, || {
        p.read_log("follower").contains("started pid")
    });
    let log = p.read_log("announcer");
    assert!(
        log.lines()
            .any(|l| l.starts_with("[procs] ") && l.ends_with(" healthy")),
        "{log}"
    );
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

/// A `log` check waits on the log's writes (inotify), not on a timer: with a one-hour
/// interval, a ready line printed after the first look still makes the process healthy
/// (a check that only looked again at its interval would wait an hour).
#[test]
fn a_log_check_sees_a_ready_line_when_it_is_written_not_at_its_interval() {
    let mut p = Project::new().config(
        r#"
processes:
  late:
    command: 'echo starting up; while [ ! -f go ]; do sleep 0.02; done; echo now ready; exec sleep 600'
    healthcheck: { log: "now ready", interval: 1h }
"#,
    );
    p.procs(["up", "--no-wait"]).success();
    // Its check has looked (and not found the line) once it says what it waits for.
    wait_until("the first look of `late`'s check", WAIT, || {
        let s = proc_status(&p, "late");
        s["state"] == "starting" && p.read_log("late").contains("starting up")
    });
    std::fs::write(p.path().join("go"), "").expect("write go");
    wait_until("`late` to be healthy", WAIT, || {
        proc_status(&p, "late")["state"] == "healthy"
    });
    p.procs(["down"]).success();
    p.assert_no_survivors();
}
