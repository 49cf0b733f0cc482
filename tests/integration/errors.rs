//! What procs says when something goes wrong: the exact stderr and exit code of the main
//! error situations, through the real binary, from every command that can meet them.
//!
//! Exact means full-string equality after substituting what the test knows (the temp dir, a
//! pid, a port, the user): one situation reads the same from every command (`src/error.rs`).

use std::fs::File;
use std::time::Duration;

use crate::harness::{Output, Project, free_port, pid_cmdline, wait_until};

const WAIT: Duration = Duration::from_secs(15);

const TWO: &str = r#"
processes:
  web:
    command: ["{testd}"]
  worker:
    command: ["{testd}"]
"#;

/// The project dir as procs sees it (canonical).
fn dir(p: &Project) -> String {
    p.path()
        .canonicalize()
        .expect("canonical project dir")
        .display()
        .to_string()
}

#[track_caller]
fn exactly(out: &Output, code: i32, stderr: &str) {
    assert_eq!(
        (out.exit_code(), out.stderr.as_str()),
        (Some(code), stderr),
        "{}",
        out.command
    );
}

#[test]
fn no_config_found_reads_the_same_from_every_command() {
    let p = Project::new();
    let expected = format!(
        "error: no `procs.yaml` found in `{}` or any parent directory\n\
         hint: create a `procs.yaml` in the project directory, or pass `-f FILE`\n",
        dir(&p)
    );
    for args in [
        &["up"][..],
        &["down"],
        &["start", "web"],
        &["stop", "web"],
        &["restart", "web"],
        &["status"],
        &["logs"],
        &["config"],
        &["ports"],
        &["doctor"],
    ] {
        exactly(&p.procs(args), 2, &expected);
    }
}

#[test]
fn a_missing_dash_f_file_reads_the_same_from_every_command() {
    let p = Project::new().config(TWO);
    let expected = "error: configuration file `nope/procs.yaml` not found\n";
    for cmd in ["up", "down", "status", "logs", "config"] {
        exactly(&p.procs(["-f", "nope/procs.yaml", cmd]), 2, expected);
    }
}

fn unknown_name_everywhere(p: &Project) {
    let file = format!("{}/procs.yaml", dir(p));
    for cmd in ["up", "down", "start", "stop", "restart", "logs", "status"] {
        let out = p.procs([cmd, "webb"]);
        exactly(
            &out,
            2,
            &format!("error: no process named `webb` in `{file}`\nhint: did you mean `web`?\n"),
        );
        let out = p.procs([cmd, "web", "zzz"]);
        exactly(
            &out,
            2,
            &format!(
                "error: no process named `zzz` in `{file}`\nhint: known processes: web, worker\n"
            ),
        );
    }
}

#[test]
fn an_unknown_process_name_reads_the_same_from_every_command_without_a_stack() {
    let p = Project::new().config(TWO);
    unknown_name_everywhere(&p);
    assert!(
        !p.state_dir().join("state.json").exists(),
        "a rejected name changed nothing"
    );
}

#[test]
fn an_unknown_process_name_reads_the_same_from_every_command_with_a_stack_up() {
    let mut p = Project::new().config(TWO);
    p.procs(["up"]).success();
    unknown_name_everywhere(&p);
    p.procs(["status"]).success().stdout_contains("worker");
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn an_invalid_config_is_located_with_a_suggestion_from_every_command_that_reads_it() {
    let p = Project::new().config("processes:\n  web:\n    command: [x]\n    restrat: always\n");
    let expected = "procs.yaml:4:5: error: unknown key `restrat`, did you mean `restart`?\n  \
                    |\n4 |     restrat: always\n  |     ^^^^^^^\n";
    for args in [
        &["up"][..],
        &["start", "web"],
        &["restart", "web"],
        &["config"],
        &["ports"],
    ] {
        exactly(&p.procs(args), 2, expected);
    }
}

#[test]
fn a_supervisor_that_holds_the_lock_but_does_not_answer_reads_the_same_from_down_and_up() {
    let p = Project::new().config(TWO);
    std::fs::create_dir_all(p.state_dir()).expect("create .procs");
    let lock = File::create(p.state_dir().join("supervisor.lock")).expect("create the lock");
    lock.lock()
        .expect("hold the supervisor lock, as a stuck supervisor would");
    let hint = format!(
        "hint: it may be starting or stuck: try again, see {}/.procs/logs/procs.log, or run \
         `procs doctor`\n",
        dir(&p)
    );
    let message = "error: a supervisor holds the lock but does not answer on its socket\n";
    exactly(
        &p.procs(["down"]),
        1,
        &format!("{message}caused by: no answer within 3s\n{hint}"),
    );
    exactly(
        &p.procs(["up"]),
        1,
        &format!("{message}caused by: no answer within 10s\n{hint}"),
    );
    drop(lock);
}

#[test]
fn a_foreign_port_holder_is_named_by_pid_command_and_user_with_exit_3() {
    let port = free_port();
    let mut p = Project::new().config(&format!(
        "processes:\n  web:\n    command: [\"{{testd}}\", \"--listen\", \"{port}\"]\n    \
         ports: [{port}]\n"
    ));
    let mut foreign = p.spawn_testd("foreign", &["--listen", &port.to_string()]);
    wait_until("the foreign listener to be ready", WAIT, || {
        p.testd_output("foreign").contains("ready")
    });
    let fpid = foreign.id() as i32;
    let command = pid_cmdline(fpid);
    assert!(
        command.len() < 100,
        "short enough not to be shortened: {command}"
    );
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::current())
        .ok()
        .flatten()
        .map_or_else(|| nix::unistd::Uid::current().to_string(), |u| u.name);
    let out = p.procs(["up"]);
    exactly(
        &out,
        3,
        &format!(
            "error: cannot start `web`: port {port} is held by pid {fpid} ({command}, user {user})\n\
             hint: stop that process, or run `procs up --kill-port-owners` to have procs stop it \
             (SIGTERM, then SIGKILL after 5s)\n"
        ),
    );
    let _ = foreign.kill();
    let _ = foreign.wait();
    p.procs(["down"]).success();
    p.assert_no_survivors();
}
