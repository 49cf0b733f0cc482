//! The integration test binary: real processes, real ports, one temp project per test.
//!
//! `harness` holds the shared machinery; each other module covers one area. The smoke tests in
//! this file check the harness and the `procs-testd` fixture themselves, without `procs`.

mod architecture;
mod cli;
mod containment;
mod containment_daemons;
mod containment_faults;
mod dashboard;
mod dashboard_page;
mod errors;
mod harness;
mod health;
mod lifecycle;
mod log_times;
mod logs;
mod logs_retention;
mod mcp;
mod oneshots;
mod operations;
mod ports;
mod recovery;
mod security;
mod subscribe;
mod truths;
mod ui;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use harness::{Project, free_port, pid_alive, run, testd_bin, wait_until};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const WAIT: Duration = Duration::from_secs(10);

fn signal(pid: i32, sig: Signal) {
    kill(Pid::from_raw(pid), sig).expect("send a signal");
}

fn pidfile_pids(path: &std::path::Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect()
}

#[test]
fn testd_listens_prints_ready_and_exits_zero_on_sigterm() {
    let p = Project::new();
    let port = free_port();
    let mut child = p.spawn_testd("web", &["--listen", &port.to_string(), "--print", "hello"]);
    let pid = child.id() as i32;
    wait_until("testd to print ready", WAIT, || {
        p.testd_output("web").contains("ready")
    });
    TcpStream::connect(("127.0.0.1", port)).expect("testd accepts connections");
    assert!(p.testd_output("web").starts_with("hello\n"));
    assert_eq!(
        p.tagged_pids(),
        vec![pid],
        "the harness tags what it starts"
    );
    signal(pid, Signal::SIGTERM);
    let status = child.wait().expect("wait for testd");
    assert_eq!(status.code(), Some(0));
    assert!(p.testd_output("web").contains("got SIGTERM, exiting"));
    assert!(p.tagged_pids().is_empty());
}

#[test]
fn testd_http_answers_with_the_requested_status() {
    let p = Project::new();
    let port = free_port().to_string();
    let mut child = p.spawn_testd(
        "api",
        &["--listen", &port, "--http", "--http-status", "503"],
    );
    wait_until("testd to print ready", WAIT, || {
        p.testd_output("api").contains("ready")
    });
    let mut conn = TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect");
    conn.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send request");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("read response");
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
    child.kill().expect("kill testd");
    child.wait().expect("reap testd");
}

#[test]
fn testd_exits_with_the_requested_code_after_writing_output() {
    let p = Project::new();
    let mut cmd = p.command(testd_bin());
    cmd.args([
        "--write-bytes",
        "100000",
        "--stderr",
        "oops",
        "--exit-after",
        "0",
        "--code",
        "7",
    ]);
    let out = run(&mut cmd, WAIT).code(7).stderr_contains("oops");
    let (bulk, rest) = out.stdout.split_at(100_000);
    assert!(
        bulk.bytes().all(|b| b == b'x' || b == b'\n'),
        "100000 bytes of x-lines first"
    );
    assert!(!rest.starts_with('x'), "exactly 100000 bytes");
    out.stdout_contains("exiting with code 7");
}

#[test]
fn testd_rejects_unknown_flags_and_busy_ports() {
    let p = Project::new();
    run(p.command(testd_bin()).arg("--bogus"), WAIT)
        .code(2)
        .stderr_contains("unknown flag");
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = held.local_addr().expect("addr").port().to_string();
    run(p.command(testd_bin()).args(["--listen", &port]), WAIT)
        .code(1)
        .stderr_contains("cannot listen on 127.0.0.1:");
}

#[test]
fn testd_ignoring_sigterm_keeps_running_until_killed() {
    let p = Project::new();
    let mut child = p.spawn_testd("stubborn", &["--ignore-sigterm"]);
    let pid = child.id() as i32;
    wait_until("testd to print ready", WAIT, || {
        p.testd_output("stubborn").contains("ready")
    });
    signal(pid, Signal::SIGTERM);
    wait_until("testd to ignore SIGTERM", WAIT, || {
        p.testd_output("stubborn").contains("ignoring SIGTERM")
    });
    assert!(pid_alive(pid));
    signal(pid, Signal::SIGKILL);
    child.wait().expect("reap testd");
}

#[test]
fn harness_finds_and_kills_escaped_grandchildren() {
    let p = Project::new();
    let pidfile = p.path().join("pids");
    let pidfile_arg = pidfile.to_str().expect("utf-8 path");
    let mut child = p.spawn_testd(
        "forker",
        &[
            "--spawn-grandchild",
            "--setsid-grandchild",
            "--grandchild-ignore-sigterm",
            "--pidfile",
            pidfile_arg,
        ],
    );
    wait_until("the pidfile to list 3 pids", WAIT, || {
        pidfile_pids(&pidfile).len() == 3
    });
    let pids = pidfile_pids(&pidfile);
    assert_eq!(pids[0], child.id() as i32);
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pids[2])).expect("stat");
    let sid: i32 = stat[stat.rfind(')').expect("comm") + 2..]
        .split(' ')
        .nth(3)
        .and_then(|s| s.parse().ok())
        .expect("session field");
    assert_eq!(sid, pids[2], "the setsid grandchild leads its own session");

    // Stop the daemon: both grandchildren ignore SIGTERM and outlive it.
    signal(pids[0], Signal::SIGTERM);
    child.wait().expect("reap testd");
    signal(pids[1], Signal::SIGTERM);
    signal(pids[2], Signal::SIGTERM);
    let mut tagged = p.tagged_pids();
    tagged.sort_unstable();
    assert_eq!(
        tagged,
        pids[1..].to_vec(),
        "the tag follows escaped grandchildren"
    );

    let killed = p.kill_survivors(Duration::from_millis(50));
    assert_eq!(
        killed.iter().map(|&(pid, _)| pid).collect::<Vec<_>>(),
        pids[1..].to_vec()
    );
    assert!(
        killed.iter().all(|(_, cmd)| cmd.contains("procs-testd")),
        "{killed:?}"
    );
    assert!(p.tagged_pids().is_empty());
}

#[test]
fn project_writes_config_with_the_testd_path() {
    let p = Project::new().config("processes:\n  web:\n    command: [\"{testd}\"]\n");
    let yaml = std::fs::read_to_string(p.path().join("procs.yaml")).expect("procs.yaml");
    assert!(
        yaml.contains(testd_bin()) && !yaml.contains("{testd}"),
        "{yaml}"
    );
    assert!(
        p.path().to_str().expect("utf-8").len() < 40,
        "short paths for sockets"
    );
    assert_eq!(p.read_log("web"), "", "no log yet");
}

#[test]
#[should_panic(expected = "timed out after 20ms waiting for the impossible")]
fn wait_until_names_what_and_the_deadline() {
    wait_until("the impossible", Duration::from_millis(20), || false);
}

#[test]
fn dropping_a_project_with_a_live_process_fails_the_test() {
    let p = Project::new().teardown_grace(Duration::from_millis(50));
    let mut leaked = p.spawn_testd("leak", &[]);
    let pid = leaked.id() as i32;
    wait_until("testd to print ready", WAIT, || {
        p.testd_output("leak").contains("ready")
    });
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(p)));
    let message = result
        .expect_err("Drop must fail the test")
        .downcast::<String>()
        .expect("text");
    assert!(
        message.contains("1 process(es) survived the test"),
        "{message}"
    );
    assert!(
        message.contains(&format!("pid {pid}: {}", testd_bin())),
        "{message}"
    );
    leaked.wait().expect("reap testd");
    assert!(!pid_alive(pid), "the survivor was killed");
}
