//! `procs ui` for real: the dashboard runs inside a detached tmux session (its own server
//! socket per test), keys go in with `send-keys`, and the screen is read back with
//! `capture-pane`. tmux is required in CI (`.ci/run` installs it); elsewhere a missing tmux
//! skips these tests with a note.

use std::process::Command;
use std::time::Duration;

use crate::harness::{Project, free_port, pid_alive, wait_until};
use crate::lifecycle::{pid_of, proc_status};

const WAIT: Duration = Duration::from_secs(20);

fn have_tmux() -> bool {
    let found = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "tmux is missing: CI must install it (.ci/run)"
        );
        eprintln!("note: tmux not installed; skipping a dashboard test outside CI");
    }
    found
}

/// A detached tmux session running one shell command in the project.
struct Tmux<'p> {
    project: &'p Project,
    socket: String,
}

impl<'p> Tmux<'p> {
    fn start(project: &'p Project, width: u16, height: u16, shell: &str) -> Self {
        let socket = format!("procs-ui-{}", project.tag());
        let tmux = Self { project, socket };
        let status = tmux
            .tmux()
            .args(["new-session", "-d", "-s", "ui", "-x"])
            .arg(width.to_string())
            .arg("-y")
            .arg(height.to_string())
            .arg(shell)
            .status()
            .expect("run tmux");
        assert!(status.success(), "tmux new-session failed");
        tmux
    }

    fn tmux(&self) -> Command {
        let mut cmd = self.project.command("tmux");
        cmd.args(["-L", &self.socket, "-f", "/dev/null"]);
        cmd
    }

    fn screen(&self) -> String {
        let out = self
            .tmux()
            .args(["capture-pane", "-p", "-t", "ui"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let status = self
            .tmux()
            .args(["send-keys", "-t", "ui"])
            .args(keys)
            .status()
            .expect("tmux send-keys");
        assert!(status.success(), "tmux send-keys {keys:?} failed");
    }

    /// Wait until the screen satisfies `cond`; the failure shows the last screen.
    #[track_caller]
    fn wait_for(&self, what: &str, mut cond: impl FnMut(&str) -> bool) -> String {
        let mut last = String::new();
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_until(what, WAIT, || {
                last = self.screen();
                cond(&last)
            });
        }));
        assert!(
            ok.is_ok(),
            "the screen never showed {what} within {WAIT:?}; last screen:\n{last}"
        );
        last
    }

    fn kill(&self) {
        let _ = self.tmux().arg("kill-server").status();
    }
}

impl Drop for Tmux<'_> {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The table row of `name` (the line starting with it, selected or not).
fn row<'s>(screen: &'s str, name: &str) -> Option<&'s str> {
    screen.lines().find(|l| {
        let l = l.trim_start_matches('▶').trim_start();
        l.split_whitespace().next() == Some(name)
    })
}

fn config(port: u16) -> String {
    format!(
        r#"
processes:
  web:
    command: ["{{testd}}", "--listen", "{port}", "--print", "web-listening"]
    ports: [{port}]
  worker:
    command: "{{testd}} --print worker-says-hello --print worker-newest-line"
    depends_on: {{ web: healthy }}
"#
    )
}

#[test]
fn the_dashboard_brings_the_stack_up_shows_it_live_restarts_filters_and_quits_leaving_it_running() {
    if !have_tmux() {
        return;
    }
    let port = free_port();
    let mut p = Project::new().config(&config(port));
    let procs = p.procs_path().display().to_string();
    let ui = Tmux::start(
        &p,
        100,
        30,
        &format!("'{procs}' ui; echo procs-ui-exit=$?; stty -a; read _"),
    );
    // No supervisor yet: the registry (empty) is shown, marked, and `u` brings it up.
    ui.wait_for("the unsupervised mark", |s| s.contains("UNSUPERVISED"));
    ui.keys(&["u"]);
    let screen = ui.wait_for("both processes up", |s| {
        row(s, "web").is_some_and(|r| r.contains("healthy"))
            && row(s, "worker").is_some_and(|r| r.contains("running"))
            && s.contains("supervisor ")
    });
    assert!(
        screen.contains("the stack is up") || screen.contains("bring the stack up"),
        "{screen}"
    );
    let web_pid = pid_of(&p, "web");
    assert!(
        row(&screen, "web").is_some_and(|r| r.split_whitespace().any(|t| t == web_pid.to_string())),
        "{screen}"
    );

    // Selecting the worker shows its newest log line in the log pane.
    ui.keys(&["j"]);
    ui.wait_for("the worker's newest log line", |s| {
        s.contains("▶ worker") && s.contains("logs: worker") && s.contains("worker-newest-line")
    });

    // `r` asks, `y` restarts: the table shows the new pid.
    let old = pid_of(&p, "worker");
    ui.keys(&["r"]);
    ui.wait_for("the restart question", |s| {
        s.contains("restart `worker`? press y")
    });
    ui.keys(&["y"]);
    let mut new = old;
    ui.wait_for("the worker's new pid", |s| {
        new = proc_status(&p, "worker")["pid"].as_i64().unwrap_or(0) as i32;
        new != old
            && new != 0
            && row(s, "worker").is_some_and(|r| r.split_whitespace().any(|t| t == new.to_string()))
    });
    assert!(pid_alive(new));

    // The filter narrows the table.
    ui.keys(&["/", "w", "o", "r", "Enter"]);
    let screen = ui.wait_for("only the worker", |s| {
        row(s, "worker").is_some() && row(s, "web").is_none() && s.contains("filter: wor")
    });
    assert!(row(&screen, "worker").is_some(), "{screen}");

    // `q` exits 0, the terminal is given back (cooked mode, echo), the stack keeps running.
    ui.keys(&["q"]);
    let screen = ui.wait_for("the exit code and stty", |s| {
        s.contains("procs-ui-exit=") && s.contains("icanon")
    });
    assert!(screen.contains("procs-ui-exit=0"), "{screen}");
    let stty: String = screen
        .lines()
        .skip_while(|l| !l.contains("procs-ui-exit"))
        .collect::<Vec<_>>()
        .join(" ");
    for flag in [" icanon", " echo ", " icrnl"] {
        assert!(
            stty.contains(flag),
            "terminal not restored ({flag} missing): {stty}"
        );
    }
    assert!(
        !screen.contains("NAME "),
        "the alternate screen is gone: {screen}"
    );
    let status = p.procs(["status", "--json"]).success().json();
    assert_eq!(status["supervisor"]["running"], true, "{status}");
    assert!(
        pid_alive(web_pid) && pid_alive(new),
        "the stack keeps running after q"
    );
    drop(ui);
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn ctrl_c_asks_and_y_brings_the_stack_down_before_leaving() {
    if !have_tmux() {
        return;
    }
    let port = free_port();
    let mut p = Project::new().config(&config(port));
    p.procs(["up"]).success();
    let web = pid_of(&p, "web");
    let procs = p.procs_path().display().to_string();
    let ui = Tmux::start(
        &p,
        80,
        24,
        &format!("'{procs}' ui; echo procs-ui-exit=$?; read _"),
    );
    ui.wait_for("the table", |s| {
        row(s, "web").is_some_and(|r| r.contains("healthy"))
    });
    ui.keys(&["C-c"]);
    ui.wait_for("the question", |s| {
        s.contains("bring the stack down before quitting?")
    });
    ui.keys(&["y"]);
    let screen = ui.wait_for("the exit", |s| s.contains("procs-ui-exit="));
    assert!(screen.contains("procs-ui-exit=0"), "{screen}");
    assert!(!pid_alive(web), "down stopped web");
    let status = p.procs(["status", "--json"]).success().json();
    assert_eq!(status["supervisor"]["running"], false, "{status}");
    drop(ui);
    p.assert_no_survivors();
}

#[test]
fn procs_ui_refuses_without_a_terminal() {
    let p = Project::new().config(&config(free_port()));
    p.procs(["ui"])
        .code(2)
        .stderr_contains("error: `procs ui` needs a terminal, and stdout is not one")
        .stderr_contains("hint: run it in a terminal");
}

#[test]
fn up_with_ui_brings_the_stack_up_inside_the_dashboard_and_survives_a_resize() {
    if !have_tmux() {
        return;
    }
    let port = free_port();
    let mut p = Project::new().config(&config(port));
    let procs = p.procs_path().display().to_string();
    let ui = Tmux::start(
        &p,
        80,
        24,
        &format!("'{procs}' up --ui; echo procs-ui-exit=$?; read _"),
    );
    ui.wait_for("the stack up", |s| {
        row(s, "web").is_some_and(|r| r.contains("healthy"))
            && row(s, "worker").is_some_and(|r| r.contains("running"))
            && s.contains("the stack is up")
    });
    let status = ui
        .tmux()
        .args(["resize-window", "-t", "ui", "-x", "120", "-y", "30"])
        .status()
        .expect("tmux resize-window");
    assert!(status.success());
    ui.wait_for("the wide layout", |s| s.contains("WAITING FOR"));
    ui.keys(&["q"]);
    let screen = ui.wait_for("the exit", |s| s.contains("procs-ui-exit="));
    assert!(screen.contains("procs-ui-exit=0"), "{screen}");
    drop(ui);
    p.procs(["down"]).success();
    p.assert_no_survivors();
}
