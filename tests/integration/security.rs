//! Attacks by another local user (run as `nobody` through `setpriv`), and what procs must do
//! about them (the threat model in `docs/architecture.md`).
//!
//! Every attack runs twice: against root, and against the unprivileged account
//! [`VICTIM_USER`] (`.ci/run` creates it; the test drops to it with `setpriv`). These tests
//! need root (to become `nobody` and the victim); CI runs as root. Outside CI a non-root run
//! prints a note and returns; in CI (`CI=true`) it fails, as it does when the account is missing.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::{Project, User, VICTIM_USER, run, victim_user, wait_until};

const WAIT: Duration = Duration::from_secs(10);

/// Are we root, so that we can act as another user? In CI we must be.
fn as_root() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "security tests need root (to run an attacker as `nobody` with setpriv)"
        );
        eprintln!("note: not root; skipping a security test outside CI");
    }
    root
}

/// Who runs procs in a test.
#[derive(Clone, Copy)]
enum Victim {
    /// The test's own user (root in CI).
    Root,
    /// The unprivileged [`VICTIM_USER`].
    User,
}

impl Victim {
    /// A project whose commands this victim runs, or `None` when this run cannot act as them
    /// (outside CI only; in CI that fails).
    fn project(self) -> Option<Project> {
        if !as_root() {
            return None;
        }
        match self {
            Victim::Root => Some(Project::new()),
            Victim::User => {
                let user = victim_user();
                if user.is_none() {
                    assert!(
                        std::env::var_os("CI").is_none(),
                        "the account `{VICTIM_USER}` is missing (.ci/run creates it)"
                    );
                    eprintln!("note: no account `{VICTIM_USER}`; skipping outside CI");
                }
                Some(Project::new().run_as(user?))
            }
        }
    }
}

/// Each named test function, run once against root and once against an unprivileged user.
macro_rules! against_root_and_a_user {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn against_root() {
                super::$name(super::Victim::Root);
            }
            #[test]
            fn against_a_user() {
                super::$name(super::Victim::User);
            }
        }
    )*};
}

against_root_and_a_user!(
    a_symlink_planted_as_the_runtime_dir_is_refused_and_its_target_untouched,
    a_runtime_dir_created_by_another_user_is_refused,
    the_cli_never_talks_to_a_socket_another_user_serves,
    inherited_descriptors_do_not_keep_a_pipe_open,
    tags_planted_by_another_user_are_never_trusted,
    processes_tagged_with_the_legacy_32_bit_project_id_are_still_members,
    deleting_the_state_dir_under_a_running_stack_never_starts_a_second_supervisor,
    kill_port_owners_never_stops_another_users_process,
    kill_port_owners_never_stops_pid_1,
    doctor_fix_never_acts_against_a_live_supervisor,
);

/// Give `path` to the project's user (a no-op for root's projects).
fn give_to_victim(p: &Project, path: &Path) {
    if let Some(user) = p.user() {
        std::os::unix::fs::lchown(path, Some(user.uid), Some(user.gid)).expect("chown");
    }
}

/// `setpriv` to `nobody`, in the project's directory and environment.
fn as_nobody(p: &Project, program: &str) -> Command {
    let mut cmd = p.own_command("setpriv");
    cmd.args(
        User {
            uid: 65534,
            gid: 65534,
        }
        .setpriv_args(),
    )
    .arg(program);
    cmd
}

/// Let `nobody` reach into the project directory (and nothing more).
fn open_for_traversal(dir: &Path) {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o711)).expect("chmod 711");
}

/// A world-writable sticky directory, like `/tmp`, inside the project.
fn shared_tmp(p: &Project) -> std::path::PathBuf {
    let shared = p.path().join("shared");
    fs::create_dir(&shared).expect("mkdir shared");
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).expect("chmod 1777");
    shared
}

/// A state directory long enough that the socket must live in the runtime directory.
const LONG_STATE_DIR: &str = "state-dir-with-a-name-long-enough-that-the-socket-path-exceeds-the-\
                              sun-path-limit-of-one-hundred-and-eight-bytes";

const CONFIG: &str = "processes:\n  app:\n    command: [sleep, '300']\n";

fn a_symlink_planted_as_the_runtime_dir_is_refused_and_its_target_untouched(victim: Victim) {
    let Some(p) = victim.project() else {
        return;
    };
    let mut p = p.config(CONFIG);
    open_for_traversal(p.path());
    let shared = shared_tmp(&p);
    let victim = p.path().join("victim");
    fs::create_dir(&victim).expect("mkdir victim");
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o755)).expect("chmod 755");
    give_to_victim(&p, &victim);
    run(
        as_nobody(&p, "ln")
            .args(["-s"])
            .arg(&victim)
            .arg(shared.join("procs")),
        WAIT,
    )
    .success();

    let shared_str = shared.to_str().expect("utf-8 path");
    p.procs_env(
        ["up"],
        &[
            ("XDG_RUNTIME_DIR", shared_str),
            ("PROCS_STATE_DIR", LONG_STATE_DIR),
        ],
    )
    .failure()
    .stderr_contains("is a symbolic link");
    let mode = fs::metadata(&victim).expect("meta").permissions().mode();
    assert_eq!(mode & 0o7777, 0o755, "the link's target was not chmodded");
    p.assert_no_survivors();
}

fn a_runtime_dir_created_by_another_user_is_refused(victim: Victim) {
    let Some(p) = victim.project() else {
        return;
    };
    let mut p = p.config(CONFIG);
    open_for_traversal(p.path());
    let shared = shared_tmp(&p);
    run(
        as_nobody(&p, "mkdir")
            .args(["-m", "777"])
            .arg(shared.join("procs")),
        WAIT,
    )
    .success();
    let shared_str = shared.to_str().expect("utf-8 path");
    p.procs_env(
        ["up"],
        &[
            ("XDG_RUNTIME_DIR", shared_str),
            ("PROCS_STATE_DIR", LONG_STATE_DIR),
        ],
    )
    .failure()
    .stderr_contains("belongs to nobody (uid 65534), not to you");
    p.assert_no_survivors();
}

/// A fake supervisor run by `nobody`: appends whatever it is sent to `capture`, answers with a
/// frame claiming success.
fn fake_supervisor(p: &Project, socket: &Path, capture: &Path) -> Child {
    let script = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(16)
open(sys.argv[1] + ".ready", "w").close()
while True:
    c, _ = s.accept()
    c.settimeout(2)
    data = b""
    try:
        while not data.endswith(b"\n"):
            chunk = c.recv(65536)
            if not chunk: break
            data += chunk
    except OSError:
        pass
    with open(sys.argv[2], "ab") as f:
        f.write(data)
    try:
        c.sendall(b'{"Pong":{"pid":1,"version":1}}\n')
    except OSError:
        pass
    c.close()
"#;
    as_nobody(p, "/usr/bin/python3")
        .args(["-c", script])
        .arg(socket)
        .arg(capture)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the fake supervisor")
}

fn the_cli_never_talks_to_a_socket_another_user_serves(victim: Victim) {
    let Some(p) = victim.project() else {
        return;
    };
    let mut p = p.config(CONFIG);
    open_for_traversal(p.path());
    let nobody_dir = p.path().join("nobody");
    fs::create_dir(&nobody_dir).expect("mkdir");
    fs::set_permissions(&nobody_dir, fs::Permissions::from_mode(0o777)).expect("chmod 777");
    let planted = nobody_dir.join("s.sock");
    let capture = nobody_dir.join("captured");
    let mut fake = fake_supervisor(&p, &planted, &capture);
    let ready = nobody_dir.join("s.sock.ready");
    wait_until("the fake supervisor to listen", WAIT, || ready.exists());
    // The socket appears where procs looks for its supervisor (as if planted before
    // the directory checks existed).
    let state = p.state_dir();
    fs::create_dir(&state).expect("mkdir .procs");
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).expect("chmod 700");
    give_to_victim(&p, &state);
    fs::rename(&planted, state.join("supervisor.sock")).expect("move the socket in");

    let up = p.procs_env(["up"], &[("MY_SECRET_TOKEN", "s3cret-value")]);
    let down = p.procs(["down"]);
    let _ = fake.kill();
    let _ = fake.wait();
    let captured = fs::read(&capture).unwrap_or_default();
    assert!(
        captured.is_empty(),
        "the CLI sent {} bytes to nobody's socket: {}",
        captured.len(),
        String::from_utf8_lossy(&captured)
    );
    up.success();
    down.success();
    p.assert_no_survivors();
}

fn inherited_descriptors_do_not_keep_a_pipe_open(victim: Victim) {
    // `{ procs up 3>&1; } | cat` used to wait forever: the supervisor held fd 3, the pipe.
    let Some(p) = victim.project() else {
        return;
    };
    let mut p = p.config(CONFIG);
    let procs = p.procs_path().display().to_string();
    let out = run(
        p.command("sh")
            .arg("-c")
            .arg(format!("{{ '{procs}' up 3>&1; }} | cat")),
        WAIT,
    );
    assert_eq!(
        out.exit_code(),
        Some(0),
        "`{{ procs up 3>&1; }} | cat` did not finish within {WAIT:?}"
    );
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

/// Start `sleep 300` as `nobody` with the given tags; returns the child.
fn nobody_sleeper(p: &Project, tags: &[(&str, &str)]) -> Child {
    as_nobody(p, "sleep")
        .arg("300")
        .envs(tags.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn a sleeper as nobody")
}

fn project_id(p: &Project) -> String {
    p.procs(["status", "--json"]).success().json()["project_id"]
        .as_str()
        .expect("project_id")
        .to_owned()
}

fn tags_planted_by_another_user_are_never_trusted(victim: Victim) {
    let Some(p) = victim.project() else {
        return;
    };
    let mut p = p.config(CONFIG);
    open_for_traversal(p.path());
    p.procs(["up"]).success();
    let id = project_id(&p);
    // A root-owned file that a tag naming `/abs/path` would have made procs delete.
    let victim = p.path().join("victim");
    fs::write(victim.with_extension("pid"), "1\n").expect("write victim.pid");
    let victim_tag = victim.to_str().expect("utf-8").to_owned();
    let mut planted = [
        nobody_sleeper(&p, &[("PROCS_PROJECT_ID", &id), ("PROCS_PROCESS", "app")]),
        nobody_sleeper(
            &p,
            &[("PROCS_PROJECT_ID", &id), ("PROCS_PROCESS", &victim_tag)],
        ),
    ];
    let pids: Vec<i32> = planted.iter().map(|c| c.id() as i32).collect();
    wait_until("the planted sleepers to exec", WAIT, || {
        pids.iter()
            .all(|pid| crate::harness::pid_cmdline(*pid).starts_with("sleep"))
    });
    let down = p.procs(["down"]);
    let survived: Vec<bool> = pids
        .iter()
        .map(|pid| crate::harness::pid_alive(*pid))
        .collect();
    let refused = p.procs(["down", &victim_tag]);
    for child in &mut planted {
        let _ = child.kill();
        let _ = child.wait();
    }
    down.success();
    assert_eq!(
        survived,
        [true, true],
        "`down` signalled nobody's processes"
    );
    assert_eq!(refused.exit_code(), Some(2), "a path is not a process name");
    assert!(
        victim.with_extension("pid").exists(),
        "victim.pid was deleted"
    );
    p.assert_no_survivors();
}

fn processes_tagged_with_the_legacy_32_bit_project_id_are_still_members(victim: Victim) {
    // procs 0.1 tagged with 8 hex digits (the 64-bit hash's halves folded): a process started
    // before the upgrade is still this project's, so `down` stops it.
    let Some(p) = victim.project() else {
        return;
    };
    let mut p = p.config(CONFIG);
    let id = project_id(&p);
    let hash = u64::from_str_radix(&id, 16).expect("a 64-bit hex id");
    let legacy = format!("{:08x}", (hash >> 32) ^ (hash & 0xffff_ffff));
    let mut old = p
        .command("setsid")
        .args(["sleep", "300"])
        .env("PROCS_PROJECT_ID", &legacy)
        .env("PROCS_PROCESS", "app")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn an old-style tagged process");
    let pid = old.id() as i32;
    wait_until("the old-style process to exec", WAIT, || {
        crate::harness::pid_cmdline(pid).starts_with("sleep")
    });
    p.procs(["down"]).success();
    let alive = crate::harness::pid_alive(pid);
    let _ = old.kill();
    let _ = old.wait();
    assert!(
        !alive,
        "`down` left the process tagged with the legacy id {legacy}"
    );
    p.assert_no_survivors();
}

fn deleting_the_state_dir_under_a_running_stack_never_starts_a_second_supervisor(victim: Victim) {
    // `rm -rf .procs` (or `git clean -fdx`) while the stack runs: the next `up` must reach the
    // same supervisor (through its abstract socket) and start nothing twice.
    let Some(p) = victim.project() else {
        return;
    };
    let mut p =
        p.config("processes:\n  a:\n    command: ['{testd}']\n  b:\n    command: ['{testd}']\n");
    p.procs(["up"]).success();
    let supervisor = p.state_json()["supervisor"]["pid"]
        .as_i64()
        .expect("a supervisor") as i32;
    let before = p.tagged_pids();
    // Moved away, then deleted: the supervisor sees `.procs/` go at the move and recreates
    // it at once, which a recursive delete in place would race with (ENOTEMPTY).
    let gone = p.path().join("procs-deleted");
    fs::rename(p.state_dir(), &gone).expect("mv .procs away");
    fs::remove_dir_all(&gone).expect("rm -rf the old .procs");
    p.procs(["up"]).success();
    let after = p.tagged_pids();
    assert_eq!(before, after, "the same processes, none started twice");
    // The supervisor recreated its state: status reads it from the registry again.
    wait_until("the registry to be written again", WAIT, || {
        p.state_dir().join("state.json").exists()
    });
    let status = p.procs(["status", "--json"]).success().json();
    assert_eq!(status["supervisor"]["pid"], supervisor, "{status}");
    assert!(
        status["processes"]
            .as_array()
            .is_some_and(|ps| ps.len() == 2 && ps.iter().all(|e| e["pid"].is_i64())),
        "{status}"
    );
    p.procs(["down"]).success();
    wait_until("the supervisor to exit", WAIT, || {
        !crate::harness::pid_alive(supervisor)
    });
    p.assert_no_survivors();
}

fn port_config(port: u16) -> String {
    format!(
        "processes:\n  web:\n    command: ['{{testd}}', '--listen', '{port}']\n    ports: [{port}]\n"
    )
}

fn kill_port_owners_never_stops_another_users_process(victim: Victim) {
    let Some(p) = victim.project() else {
        return;
    };
    let port = crate::harness::free_port();
    let mut p = p.config(&port_config(port));
    open_for_traversal(p.path());
    let mut holder = as_nobody(&p, "/usr/bin/python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nobody's server");
    wait_until("nobody's server to listen", WAIT, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let out = p.procs(["up", "--kill-port-owners"]);
    let alive = crate::harness::pid_alive(holder.id() as i32);
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(alive, "`up --kill-port-owners` killed nobody's process");
    out.code(3)
        .stderr_contains("--kill-port-owners never stops a process of another user (nobody)")
        .stderr_contains("hint: stop that process yourself");
    p.assert_no_survivors();
}

fn kill_port_owners_never_stops_pid_1(victim: Victim) {
    // In a pid namespace (the usual container) the port holder is pid 1.
    let Some(p) = victim.project() else {
        return;
    };
    let port = crate::harness::free_port();
    let mut p = p.config(&port_config(port));
    let procs = p.procs_path().display().to_string();
    let script = format!(
        r#"
import os, socket, subprocess, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", {port})); s.listen(8)
assert os.getpid() == 1, os.getpid()
up = subprocess.run(["{procs}", "up", "--kill-port-owners"], capture_output=True, text=True)
subprocess.run(["{procs}", "down"], capture_output=True)
sys.stdout.write("%d\n%s" % (up.returncode, up.stderr))
"#
    );
    // The namespace needs root; its pid 1 (and the `procs` it runs) is the victim.
    let mut unshare = p.own_command("unshare");
    unshare.args(["--pid", "--fork", "--mount-proc"]);
    if let Some(user) = p.user() {
        unshare.arg("setpriv").args(user.setpriv_args());
    }
    let out = run(
        unshare.args(["/usr/bin/python3", "-c"]).arg(script),
        crate::harness::COMMAND_DEADLINE,
    )
    .success();
    let (code, stderr) = out.stdout.split_once('\n').expect("code and stderr");
    assert_eq!(code, "3", "exit code of `up`; stderr:\n{stderr}");
    assert!(
        stderr.contains("--kill-port-owners never stops pid 1"),
        "{stderr}"
    );
    p.assert_no_survivors();
}

fn doctor_fix_never_acts_against_a_live_supervisor(victim: Victim) {
    // A supervisor that is slow to answer (here: stopped) still owns its processes and its
    // socket: `doctor --fix` reports, and neither kills a process nor deletes the socket.
    let Some(p) = victim.project() else {
        return;
    };
    let mut p = p.config(CONFIG);
    p.procs(["up"]).success();
    let id = project_id(&p);
    let state = p.state_json();
    let supervisor = state["supervisor"]["pid"].as_i64().expect("supervisor") as i32;
    let app = state["processes"]["app"]["pid"].as_i64().expect("app pid") as i32;
    // Something the supervisor does not know about, as a oneshot's daemon would be.
    let mut ghost = p
        .command("sleep")
        .arg("300")
        .env("PROCS_PROJECT_ID", &id)
        .env("PROCS_PROCESS", "ghost")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn ghost");
    let ghost_pid = ghost.id() as i32;
    wait_until("the ghost to exec", WAIT, || {
        crate::harness::pid_cmdline(ghost_pid).starts_with("sleep")
    });
    let socket = p.state_dir().join("supervisor.sock");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .expect("SIGSTOP the supervisor");
    let out = p.procs(["doctor", "--fix"]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor),
        nix::sys::signal::Signal::SIGCONT,
    )
    .expect("SIGCONT the supervisor");
    let (ghost_alive, app_alive) = (
        crate::harness::pid_alive(ghost_pid),
        crate::harness::pid_alive(app),
    );
    let _ = ghost.kill();
    let _ = ghost.wait();
    assert!(
        ghost_alive && app_alive,
        "doctor --fix killed a process:\n{}",
        out.stdout
    );
    assert!(
        socket.exists(),
        "doctor --fix deleted a live supervisor's socket"
    );
    assert!(
        out.stdout.contains("`--fix` only reports"),
        "doctor says why it fixed nothing:\n{}",
        out.stdout
    );
    p.procs(["down"]).success();
    p.assert_no_survivors();
}
