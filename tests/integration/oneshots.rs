//! Crash safety of oneshots and of adopted processes (issue 13, "crash safety"): a oneshot
//! running at a supervisor SIGKILL is adopted and its real exit status learned; one that
//! ended while no supervisor ran is told as it ended; no oneshot runs twice for one `up`;
//! an adopted process that was healthy stays healthy.

use std::time::Duration;

use crate::harness::{Project, pid_alive, pid_cmdline, wait_until};
use crate::lifecycle::proc_status;

const WAIT: Duration = Duration::from_secs(15);

fn kill9(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL");
}

fn kill_supervisor(p: &Project) {
    let state = p.state_json();
    let pid = state["supervisor"]["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("no supervisor recorded: {state}")) as i32;
    kill9(pid);
    wait_until("the supervisor to die", WAIT, || !pid_alive(pid));
}

fn lines(p: &Project, file: &str) -> usize {
    std::fs::read_to_string(p.path().join(file))
        .unwrap_or_default()
        .lines()
        .count()
}

/// `seed` runs once (a line in runs.txt), then waits for `go` and exits with the code in it;
/// `app` needs it to have completed successfully.
const WAITING_SEED: &str = r#"
processes:
  seed:
    command: 'echo ran >> runs.txt; while [ ! -f go ]; do sleep 0.02; done; exit $(cat go)'
    oneshot: true
  app:
    command: ["{testd}"]
    depends_on: { seed: completed_successfully }
    ready_after: 0s
"#;

/// Start the stack without waiting, and return the pid procs supervises for `seed` once it runs.
fn seed_running(p: &Project) -> i32 {
    p.procs(["up", "--no-wait"]).success();
    wait_until("`seed` to run", WAIT, || {
        proc_status(p, "seed")["state"] == "running" && lines(p, "runs.txt") == 1
    });
    proc_status(p, "seed")["pid"].as_i64().expect("a pid") as i32
}

#[test]
fn a_oneshot_running_at_a_supervisor_sigkill_is_adopted_and_its_real_exit_learned() {
    for code in [0, 3] {
        let mut p = Project::new().config(WAITING_SEED);
        let seed = seed_running(&p);
        kill_supervisor(&p);
        assert!(pid_alive(seed), "the oneshot outlives the supervisor");
        p.procs(["up", "--no-wait"])
            .success()
            .stdout_contains(&format!("seed: adopted pid {seed}"));
        std::fs::write(p.path().join("go"), format!("{code}\n")).expect("write go");
        let want = if code == 0 { "completed" } else { "failed" };
        wait_until(&format!("`seed` to be {want}"), WAIT, || {
            proc_status(&p, "seed")["state"] == want
        });
        let seed_status = proc_status(&p, "seed");
        assert_eq!(seed_status["exit_code"], code, "{seed_status}");
        if code == 0 {
            wait_until("`app` to run after it", WAIT, || {
                proc_status(&p, "app")["state"] == "running"
            });
        } else {
            assert_eq!(
                seed_status["reason"], "exited with code 3",
                "the real exit, never `status unknown`: {seed_status}"
            );
            wait_until("`app` to fail with its dependency", WAIT, || {
                proc_status(&p, "app")["reason"] == "dependency `seed` failed"
            });
        }
        assert_eq!(lines(&p, "runs.txt"), 1, "the oneshot ran once");
        p.procs(["down"]).success();
        p.assert_no_survivors();
    }
}

#[test]
fn a_oneshot_that_ended_while_no_supervisor_ran_is_told_as_it_ended() {
    for code in [0, 3] {
        let mut p = Project::new().config(WAITING_SEED);
        let seed = seed_running(&p);
        kill_supervisor(&p);
        std::fs::write(p.path().join("go"), format!("{code}\n")).expect("write go");
        wait_until("the oneshot to end", WAIT, || !pid_alive(seed));
        // No supervisor: `status` reads what the oneshot's waiting parent recorded.
        let seed_status = proc_status(&p, "seed");
        let want = if code == 0 { "completed" } else { "failed" };
        assert_eq!(seed_status["state"], want, "{seed_status}");
        assert_eq!(seed_status["exit_code"], code, "{seed_status}");
        assert_eq!(
            seed_status["reason"],
            format!("exited with code {code} while no supervisor was running"),
            "{seed_status}"
        );
        if code == 0 {
            // Its dependents proceed, and it is not run again.
            p.procs(["up"]).success();
            assert_eq!(proc_status(&p, "seed")["state"], "completed");
            assert_eq!(proc_status(&p, "app")["state"], "running");
            assert_eq!(
                lines(&p, "runs.txt"),
                1,
                "a completed oneshot is not run again"
            );
        } else {
            // A failed oneshot is run again by the next `up` (as without a crash), and the
            // failure that `up` reports is that run's real one.
            p.procs(["up"])
                .failure()
                .stderr_contains("`seed` is failed: exited with code 3");
            assert_eq!(lines(&p, "runs.txt"), 2);
        }
        p.procs(["down"]).success();
        p.assert_no_survivors();
    }
}

/// SIGKILL the supervisor at varied moments of an `up`, 10 rounds; the `up` run after it
/// must never start the oneshot again: it ran exactly once per round (`down` between rounds,
/// after which the next `up` runs it again).
#[test]
fn killing_the_supervisor_during_up_never_runs_a_oneshot_twice() {
    let mut p = Project::new().config(
        r#"
processes:
  seed:
    command: 'echo ran >> runs.txt'
    oneshot: true
  app:
    command: ["{testd}"]
    depends_on: { seed: completed_successfully }
    ready_after: 0s
"#,
    );
    let run_record = p.state_dir().join("runs").join("seed.json");
    for round in 0..10 {
        let before = lines(&p, "runs.txt");
        let mut up = p
            .command(crate::harness::procs_bin())
            .arg("up")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn procs up");
        let supervisor = || -> Option<i32> {
            let text = std::fs::read_to_string(p.state_dir().join("state.json")).ok()?;
            let state: serde_json::Value = serde_json::from_str(&text).ok()?;
            let pid = state["supervisor"]["pid"].as_i64()? as i32;
            pid_cmdline(pid).contains("__supervise").then_some(pid)
        };
        let record = || std::fs::read_to_string(&run_record).unwrap_or_default();
        // The moment to strike, one of five, before or during the oneshot's run.
        let moment = round % 5;
        wait_until(&format!("round {round}: moment {moment}"), WAIT, || {
            let finished = matches!(up.try_wait(), Ok(Some(_)));
            finished
                || supervisor().is_some()
                    && match moment {
                        0 => true,
                        1 => record().contains("\"starting\""),
                        2 => record().contains("\"running\""),
                        3 => lines(&p, "runs.txt") > before,
                        _ => record().contains("\"exited\""),
                    }
        });
        if let Some(pid) = supervisor() {
            kill9(pid);
            wait_until("the supervisor to die", WAIT, || !pid_alive(pid));
        }
        let _ = up.wait();
        p.procs(["up"]).success();
        assert_eq!(
            lines(&p, "runs.txt"),
            before + 1,
            "round {round} (moment {moment}): the oneshot ran once"
        );
        p.procs(["down"]).success();
    }
    p.assert_no_survivors();
}

/// A process with a `log` check that was healthy stays healthy after a supervisor SIGKILL:
/// adopted, not restarted, its dependents untouched, never failed by `start_timeout`; one
/// whose ready line was printed while no supervisor ran becomes healthy once adopted.
#[test]
fn an_adopted_process_with_a_log_check_that_was_healthy_stays_healthy() {
    let mut p = Project::new().config(
        r#"
processes:
  web:
    command: ["{testd}", "--print", "listening now"]
    healthcheck: { log: "listening now", start_timeout: 2s }
  app:
    command: ["{testd}"]
    depends_on: { web: healthy }
    ready_after: 0s
  late:
    command: 'while [ ! -f go ]; do sleep 0.02; done; echo late and ready; exec sleep 600'
    healthcheck: { log: "late and ready", start_timeout: 30s }
  canary:
    command: ["{testd}"]
    healthcheck: { log: "never printed", start_timeout: 2s }
    restart: "no"
    disabled: true
"#,
    );
    p.procs(["up", "web", "app"]).success();
    p.procs(["up", "--no-wait", "late"]).success();
    let web = proc_status(&p, "web")["pid"].as_i64().expect("web pid");
    let app = proc_status(&p, "app")["pid"].as_i64().expect("app pid");
    kill_supervisor(&p);
    // `late` prints its ready line while no supervisor watches.
    std::fs::write(p.path().join("go"), "").expect("write go");
    wait_until("`late` to print its ready line", WAIT, || {
        p.read_log("late").contains("late and ready")
    });
    p.procs(["up", "web", "app", "late"])
        .success()
        .stdout_contains(&format!("web: adopted pid {web}"));
    // A fresh process with the same 2s start timeout, started after the adoption: once it
    // has failed by its timeout, web's (if one had been armed at adoption) is past too.
    p.procs(["start", "canary"])
        .failure()
        .stderr_contains("not healthy within 2s");
    let web_status = proc_status(&p, "web");
    assert_eq!(web_status["state"], "healthy", "{web_status}");
    assert_eq!(web_status["pid"], web, "not restarted");
    assert_eq!(web_status["restarts"], 0, "{web_status}");
    let app_status = proc_status(&p, "app");
    assert_eq!(app_status["state"], "running", "{app_status}");
    assert_eq!(app_status["pid"], app, "its dependent is untouched");
    assert_eq!(proc_status(&p, "late")["state"], "healthy");
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

/// The waiting parent lets the stop signal reach the program and goes with it: a `down`
/// while a oneshot runs stops it gracefully (no SIGKILL needed) and leaves nothing behind.
#[test]
fn a_running_oneshot_stops_gracefully_with_its_waiting_parent() {
    let mut p = Project::new().config(WAITING_SEED);
    let seed = seed_running(&p);
    assert!(
        pid_cmdline(seed).contains("__oneshot"),
        "the supervised pid is the waiting parent: {}",
        pid_cmdline(seed)
    );
    let down = p.procs(["down"]).success();
    assert!(
        !down.stdout.contains("killed after") && !down.stderr.contains("killed after"),
        "{down:?}"
    );
    assert!(!pid_alive(seed));
    p.assert_no_survivors();
}

/// A oneshot stopped by request before a supervisor SIGKILL is still `stopped` for the next
/// supervisor (not an exit "while no supervisor was running").
#[test]
fn a_oneshot_stopped_before_a_supervisor_sigkill_stays_stopped() {
    let mut p = Project::new().config(&format!(
        "{WAITING_SEED}  other:\n    command: [\"{{testd}}\"]\n    ready_after: 0s\n"
    ));
    seed_running(&p);
    p.procs(["stop", "seed"]).success();
    kill_supervisor(&p);
    // A new supervisor, which adopts what the old one left, started for `other` only.
    p.procs(["up", "other"]).success();
    let seed_status = proc_status(&p, "seed");
    assert_eq!(seed_status["state"], "stopped", "{seed_status}");
    assert_eq!(lines(&p, "runs.txt"), 1);
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

/// A process that was unhealthy when its supervisor was killed (SIGKILL) is adopted unhealthy (never
/// healthy by adoption: `up` does not count it as ready) and becomes healthy only when its
/// check passes again — same pid, no restart.
#[test]
fn an_adopted_unhealthy_process_stays_unhealthy_until_its_check_passes() {
    let mut p = Project::new().config(
        r#"
processes:
  web:
    command: ["{testd}"]
    healthcheck: { exec: "test -f ok", interval: 500ms, retries: 2, start_timeout: 30s }
    restart: "no"
"#,
    );
    std::fs::write(p.path().join("ok"), "").expect("write ok");
    p.procs(["up"]).success();
    let web = proc_status(&p, "web")["pid"].as_i64().expect("web pid");
    std::fs::remove_file(p.path().join("ok")).expect("remove ok");
    wait_until("`web` to turn unhealthy", WAIT, || {
        proc_status(&p, "web")["state"] == "unhealthy"
    });
    kill_supervisor(&p);
    let up = p.procs(["up", "--timeout", "2s"]).failure();
    assert!(
        up.stdout.contains(&format!("web: adopted pid {web}")),
        "{up:?}"
    );
    assert!(
        up.stdout.contains("unhealthy") || up.stderr.contains("unhealthy"),
        "`up` names it unhealthy: {up:?}"
    );
    let status = proc_status(&p, "web");
    assert_eq!(status["state"], "unhealthy", "{status}");
    assert_eq!(status["pid"], web, "adopted, not restarted");
    std::fs::write(p.path().join("ok"), "").expect("write ok");
    wait_until("`web` to be healthy once its check passes", WAIT, || {
        proc_status(&p, "web")["state"] == "healthy"
    });
    assert_eq!(proc_status(&p, "web")["pid"], web);
    p.procs(["up"]).success();
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

/// The program a waiting parent started, as its run record names it.
fn program_of(p: &Project, name: &str) -> i32 {
    let path = p.state_dir().join("runs").join(format!("{name}.json"));
    let mut pid = None;
    wait_until("the run record to name the program", WAIT, || {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        pid = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["program_pid"].as_i64());
        pid.is_some()
    });
    pid.expect("a program pid") as i32
}

/// The waiting parent and the supervisor are both killed (SIGKILL) while the program runs: the
/// next supervisor adopts the live program (same pid, verified by its start time) and never
/// runs it again; its exit, which nobody can learn now, is reported as unknown.
#[test]
fn a_program_whose_waiting_parent_was_killed_is_adopted_never_run_again() {
    let mut p = Project::new().config(WAITING_SEED);
    let waiter = seed_running(&p);
    let program = program_of(&p, "seed");
    assert_ne!(program, waiter);
    kill_supervisor(&p);
    kill9(waiter);
    wait_until("the waiting parent to die", WAIT, || !pid_alive(waiter));
    assert!(pid_alive(program), "the program lives on");
    p.procs(["up", "--no-wait"])
        .success()
        .stdout_contains(&format!("seed: adopted pid {program}"));
    let seed = proc_status(&p, "seed");
    assert_eq!(seed["state"], "running", "{seed}");
    assert_eq!(seed["pid"], program, "{seed}");
    assert_eq!(lines(&p, "runs.txt"), 1, "not run again");
    // A second `up` while it runs does not start it either.
    p.procs(["up", "--no-wait"]).success();
    assert_eq!(lines(&p, "runs.txt"), 1, "not run again by a second up");
    std::fs::write(p.path().join("go"), "0").expect("write go");
    wait_until("the adopted program's end to make it failed", WAIT, || {
        proc_status(&p, "seed")["state"] == "failed"
    });
    let seed = proc_status(&p, "seed");
    assert_eq!(seed["state"], "failed", "{seed}");
    assert!(
        seed["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown"),
        "its exit status is unknown, never guessed: {seed}"
    );
    assert!(!pid_alive(program));
    assert_eq!(lines(&p, "runs.txt"), 1, "it ran once");
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

/// A process group started by the test: killed whole (SIGKILL) and its leader reaped when
/// dropped.
struct GroupOnDrop(std::process::Child);

impl Drop for GroupOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.0.wait();
    }
}

/// A stop signal sent to a waiting parent's group at any moment of its start — while it
/// writes its run record (fsync), between its fork and the program's `exec`, or after —
/// ends the run: never swallowed, never a program left waiting for SIGKILL. The waiting
/// parent (the real binary's hidden role) is signalled 0–10 ms after it was spawned.
#[test]
fn a_stop_signal_at_any_moment_of_a_waiting_parents_start_ends_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runs = dir.path().join("runs");
    std::fs::create_dir(&runs).expect("runs dir");
    for round in 0..40u64 {
        let record = runs.join(format!("seed{round}.json"));
        let mut cmd = std::process::Command::new(crate::harness::procs_bin());
        cmd.arg("__oneshot")
            .arg(&record)
            .arg("h1")
            .arg("/bin/sleep")
            .arg("30")
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut group = GroupOnDrop(cmd.spawn().expect("spawn the waiting parent"));
        let pgid = nix::unistd::Pid::from_raw(group.0.id() as i32);
        // Spread over the waiting parent's start (exec, record write, spawn of the program).
        std::thread::sleep(Duration::from_micros(round * 250));
        nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let mut status = None;
        wait_until(
            &format!(
                "round {round}: the waiting parent to end after SIGTERM (it swallowed the stop)"
            ),
            Duration::from_secs(5),
            || {
                status = group.0.try_wait().expect("try_wait");
                status.is_some()
            },
        );
        let status = status.expect("an exit status");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(15),
            "round {round}: it ends as the stop asked: {status:?}"
        );
        // Whatever ran in the group ended with it.
        wait_until(
            &format!("round {round}: nothing left in the group"),
            Duration::from_secs(5),
            || nix::sys::signal::killpg(pgid, None).is_err(),
        );
    }
}

/// The waiting parent alone is killed (SIGKILL) while the supervisor runs: the supervisor
/// goes on watching the program (same run, not failed while it runs), a second `up` does not
/// run the oneshot again, a stop reaches the program, and its end is "status unknown".
#[test]
fn a_program_whose_waiting_parent_was_killed_under_a_live_supervisor_is_watched() {
    let mut p = Project::new().config(WAITING_SEED);
    let waiter = seed_running(&p);
    let program = program_of(&p, "seed");
    kill9(waiter);
    wait_until("the supervisor to watch the program", WAIT, || {
        let seed = proc_status(&p, "seed");
        seed["state"] == "running" && seed["pid"] == program
    });
    assert!(pid_alive(program));
    assert!(
        p.read_log("seed")
            .contains(&format!("watching its program, pid {program}")),
        "{}",
        p.read_log("seed")
    );
    p.procs(["up", "--no-wait"]).success();
    assert_eq!(
        lines(&p, "runs.txt"),
        1,
        "not run again while its program runs"
    );
    let stop = p.procs(["stop", "seed"]).success();
    assert!(
        !stop.stdout.contains("killed after") && !stop.stderr.contains("killed after"),
        "the stop signal reached the program: {stop:?}"
    );
    assert!(!pid_alive(program));
    assert_eq!(proc_status(&p, "seed")["state"], "stopped");
    assert_eq!(lines(&p, "runs.txt"), 1);
    p.procs(["down"]).success();
    p.assert_no_survivors();
}
