//! Operations from the runbooks and the probes they rely on (issue 13, parts 2, 5 and 6):
//! probe URLs parsed at load time, list-form `stop_command`, the own-listener rule for
//! checks without `ports:`, `depends_on … restart: true`, the rolling `procs restart`,
//! `up --attach` from the first line. Real processes, real ports.

use std::time::Duration;

use crate::harness::{Project, free_port, pid_alive, wait_until};
use crate::lifecycle::{pid_of, proc_status};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn http_probes_to_an_ipv6_address_and_with_a_query_string_pass_against_real_servers() {
    let (v6, query) = (free_port(), free_port());
    // Each server answers 404 unless the request target is exactly the one expected, so a
    // probe that mangles the URL can never pass.
    let mut p = Project::new().config(&format!(
        r#"
processes:
  v6:
    command: ["{{testd}}", "--host", "::1", "--listen", "{v6}", "--http", "--http-path", "/health?full=1"]
    healthcheck: {{ http: "http://[::1]:{v6}/health?full=1", interval: 100ms }}
  query:
    command: ["{{testd}}", "--listen", "{query}", "--http", "--http-path", "/?ready=yes&x=a%20b"]
    healthcheck: {{ http: "http://127.0.0.1:{query}?ready=yes&x=a%20b", interval: 100ms }}
"#
    ));
    p.procs(["up", "--timeout", "20s"]).success();
    assert_eq!(proc_status(&p, "v6")["state"], "healthy");
    assert_eq!(proc_status(&p, "query")["state"], "healthy");
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn a_bad_probe_url_is_a_config_error_with_its_file_line_and_column() {
    let p = Project::new().config(
        r#"
processes:
  web:
    command: ["{testd}"]
    healthcheck:
      http: "http://[::1:8080/health"
"#,
    );
    let out = p.procs(["config"]).code(2);
    assert!(
        out.stderr.contains("procs.yaml:6:13:"),
        "the error points at the URL: {}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("`http://[::1:8080/health` is not a valid URL"),
        "{}",
        out.stderr
    );
    // Nothing starts with an invalid config.
    p.procs(["up"]).code(2);
    assert!(!p.state_dir().join("supervisor.sock").exists());
}

#[test]
fn a_stranger_on_the_probed_port_never_makes_a_process_healthy_and_its_bind_error_names_the_holder()
{
    for probe in ["http", "tcp"] {
        stranger_on_the_probed_port(probe);
    }
}

fn stranger_on_the_probed_port(probe: &str) {
    let port = free_port();
    let check = match probe {
        "http" => format!("http: \"http://127.0.0.1:{port}/\""),
        _ => format!("tcp: {port}"),
    };
    // The process takes its port from the environment (the command line names no port) and
    // declares no `ports:`: only its check says where it should listen. It binds after
    // 1.5 s, so its probe meets the stranger many times before the bind fails.
    let mut p = Project::new().config(&format!(
        r#"
processes:
  web:
    command: 'exec {{testd}} --ready-after 1500 --http --listen $$WEB_PORT'
    env: {{ WEB_PORT: "{port}" }}
    healthcheck: {{ {check}, interval: 100ms }}
"#
    ));
    let mut stranger = p.spawn_testd("stranger", &["--listen", &port.to_string(), "--http"]);
    wait_until("the stranger to listen", WAIT, || {
        p.testd_output("stranger").contains("ready")
    });
    let out = p.procs(["up", "--timeout", "30s"]).code(3);
    let probe = format!("{probe} check: ");
    let holder = format!("port {port} is held by pid {} (", stranger.id());
    assert!(
        out.stderr
            .contains("error: cannot start `web`: exited with code 1"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&holder),
        "names the holder: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("user "),
        "names its user: {}",
        out.stderr
    );
    let log = p.read_log("web");
    assert!(log.contains("Address already in use"), "{log}");
    assert!(
        !log.lines().any(|l| l.ends_with(" healthy")),
        "{probe}the stranger made `web` healthy:\n{log}"
    );
    let entry = proc_status(&p, "web");
    assert_eq!(entry["state"], "failed", "{probe}{entry}");
    assert!(
        entry["reason"]
            .as_str()
            .unwrap_or_default()
            .contains(&holder),
        "{entry}"
    );
    let _ = stranger.kill();
    let _ = stranger.wait();
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn a_tcp_check_without_ports_passes_once_the_process_itself_listens() {
    let port = free_port();
    let mut p = Project::new().config(&format!(
        r#"
processes:
  db:
    command: ["{{testd}}", "--listen", "{port}"]
    healthcheck: {{ tcp: {port}, interval: 100ms }}
"#
    ));
    p.procs(["up", "--timeout", "20s"]).success();
    assert_eq!(proc_status(&p, "db")["state"], "healthy");
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn a_list_form_stop_command_runs_as_argv_without_a_shell() {
    // A shell would split this argument, expand `$HOME`, run the `;` command and strip the
    // quotes; as argv it arrives byte for byte.
    let arg = r#"a  b $HOME "q" 'r'; touch pwned"#;
    // `$$` is procs.yaml's literal `$`.
    let yaml_arg = format!("{arg:?}").replace('$', "$$");
    let mut p = Project::new().config(&format!(
        r#"
processes:
  web:
    command: ["{{testd}}", "--pidfile", "web.pid"]
    ready_after: 0s
    stop_timeout: 20s
    stop_command: ["/bin/sh", "-c", 'printf "%s\n" "$$1" > got.txt; kill "$$(head -n 1 web.pid)"', "sh", {yaml_arg}]
"#
    ));
    p.procs(["up"]).success();
    let pid = pid_of(&p, "web");
    let out = p.procs(["stop", "web"]).success();
    assert!(
        !out.stdout.contains("killed after"),
        "the stop command itself stopped it: {}",
        out.stdout
    );
    assert!(!pid_alive(pid));
    let got = std::fs::read_to_string(p.path().join("got.txt")).expect("the stop command ran");
    assert_eq!(got, format!("{arg}\n"));
    assert!(!p.path().join("pwned").exists());
    let log = p.read_log("web");
    assert!(log.contains("stopping with [\"/bin/sh\",\"-c\""), "{log}");
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn up_attach_streams_every_line_from_the_first() {
    let mut p = Project::new().config(
        r#"
processes:
  early:
    command: ["{testd}", "--print", "first line at start", "--print", "second line"]
"#,
    );
    // Written before this run: never shown as this run's.
    p.file(".procs/logs/early.log", "a line of an earlier run\n");
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
    // The lines are printed at once, about a second before `up` is done (`ready_after`).
    wait_until("attached output to show both lines", WAIT, || {
        std::fs::read_to_string(&out_path).is_ok_and(|s| s.contains("early │ second line"))
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal");
    let mut status = None;
    wait_until("procs up --attach to exit after SIGTERM", WAIT, || {
        status = child.try_wait().expect("wait");
        status.is_some()
    });
    let text = std::fs::read_to_string(&out_path).expect("read");
    assert!(text.contains("early │ first line at start"), "{text}");
    assert!(
        text.contains("started pid"),
        "the run's first line too: {text}"
    );
    assert!(!text.contains("earlier run"), "{text}");
    assert!(status.is_some_and(|s| s.success()), "{text}");
    p.assert_no_survivors();
}

#[test]
fn the_up_failure_summary_shows_current_states() {
    let mut p = Project::new().config(
        r#"
processes:
  db:
    command: ["{testd}"]
    ready_after: 200ms
  migrate:
    command: pythn3 migrate.py
    oneshot: true
    depends_on: { db: healthy }
  backend:
    command: ["{testd}"]
    depends_on: { db: healthy, migrate: completed_successfully }
  worker:
    command: ["{testd}"]
    depends_on: { backend: healthy }
"#,
    );
    let out = p.procs(["up", "--timeout", "60s"]).code(1);
    let err = &out.stderr;
    assert!(
        err.contains("caused by: `migrate` is failed: exited with code 127"),
        "{err}"
    );
    assert!(
        err.contains("caused by: `backend` is failed: dependency `migrate` failed"),
        "{err}"
    );
    assert!(
        err.contains("caused by: `worker` is failed: dependency `backend` failed"),
        "{err}"
    );
    assert!(!err.contains("pending"), "no stale state: {err}");
    assert!(!err.contains("no reason recorded"), "{err}");
    // What `up` said is what `status` says.
    for (name, state) in [
        ("db", "running"),
        ("migrate", "failed"),
        ("backend", "failed"),
        ("worker", "failed"),
    ] {
        assert_eq!(proc_status(&p, name)["state"], state, "{name}");
    }
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

/// The `name: state` lines a piped lifecycle command printed, in order.
fn state_lines(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once(": ")?;
            let state = rest.split([' ', ':', ',']).next()?;
            Some((name.to_owned(), state.to_owned()))
        })
        .collect()
}

fn is_ready_state(state: &str) -> bool {
    matches!(state, "healthy" | "running" | "completed")
}

#[test]
fn restart_without_names_is_rolling_in_dependency_order_one_process_at_a_time() {
    let port = free_port();
    let mut p = Project::new().config(&format!(
        r#"
processes:
  worker:
    command: ["{{testd}}"]
    ready_after: 200ms
    depends_on: {{ web: healthy }}
  web:
    command: ["{{testd}}"]
    ready_after: 300ms
    depends_on: {{ db: healthy, migrate: completed_successfully }}
  migrate:
    command: ["{{testd}}", "--exit-after", "100"]
    oneshot: true
    depends_on: {{ db: healthy }}
  db:
    command: ["{{testd}}", "--listen", "{port}"]
    ports: [{port}]
"#
    ));
    p.procs(["up"]).success();
    let names = ["db", "web", "worker"];
    let before: Vec<i32> = names.iter().map(|n| pid_of(&p, n)).collect();
    let out = p.procs(["restart", "--timeout", "60s"]).success();
    let lines = state_lines(&out.stdout);
    // Every process of the stack, as the state lines show them: all ready before, then
    // one at a time.
    let order = ["db", "migrate", "web", "worker"];
    let mut ready: std::collections::BTreeMap<&str, bool> =
        order.iter().map(|n| (*n, true)).collect();
    let mut stopped_in_order = Vec::new();
    for (name, state) in &lines {
        let Some(entry) = ready.get_mut(name.as_str()) else {
            continue;
        };
        // A oneshot is ready once it completed, not while it runs.
        let now_ready = if name == "migrate" {
            state == "completed"
        } else {
            is_ready_state(state)
        };
        if !now_ready && *entry && !stopped_in_order.contains(name) {
            stopped_in_order.push(name.clone());
        }
        *entry = now_ready;
        let down: Vec<&&str> = ready.iter().filter(|(_, r)| !**r).map(|(n, _)| n).collect();
        assert!(
            down.len() <= 1,
            "{down:?} were down at once (after `{name}: {state}`):\n{}",
            out.stdout
        );
    }
    assert_eq!(
        stopped_in_order, order,
        "restarted in dependency order:\n{}",
        out.stdout
    );
    assert!(
        ready.values().all(|r| *r),
        "all ready at the end:\n{}",
        out.stdout
    );
    for (name, old) in names.iter().zip(before) {
        let entry = proc_status(&p, name);
        assert_ne!(
            entry["pid"].as_i64(),
            Some(i64::from(old)),
            "{name} got a new pid"
        );
        assert!(
            is_ready_state(entry["state"].as_str().unwrap_or_default()),
            "{entry}"
        );
    }
    assert_eq!(proc_status(&p, "migrate")["state"], "completed");
    assert_eq!(
        p.read_log("migrate").matches("started pid").count(),
        2,
        "the oneshot ran again"
    );
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn a_restart_true_dependent_is_restarted_after_its_dependency_and_is_ready_again() {
    let mut p = Project::new().config(
        r#"
processes:
  db:
    command: ["{testd}"]
    ready_after: 300ms
    backoff: { initial: 100ms }
  web:
    command: ["{testd}"]
    ready_after: 300ms
    depends_on: { db: { condition: healthy, restart: true } }
  other:
    command: ["{testd}"]
    ready_after: 0s
    depends_on: { db: healthy }
"#,
    );
    p.procs(["up"]).success();
    let (db0, web0, other0) = (pid_of(&p, "db"), pid_of(&p, "web"), pid_of(&p, "other"));

    // An explicit restart of the dependency restarts the dependent after it, and answers
    // once both are ready again.
    let out = p.procs(["restart", "db"]).success();
    let lines = state_lines(&out.stdout);
    let db_ready = lines
        .iter()
        .position(|(n, s)| n == "db" && s == "running")
        .unwrap_or_else(|| panic!("db ready again:\n{}", out.stdout));
    let web_stop = lines
        .iter()
        .position(|(n, s)| n == "web" && s == "stopping")
        .unwrap_or_else(|| panic!("web restarted:\n{}", out.stdout));
    assert!(db_ready < web_stop, "web waits for db:\n{}", out.stdout);
    let (db1, web1) = (pid_of(&p, "db"), pid_of(&p, "web"));
    assert!(db1 != db0 && web1 != web0);
    assert_eq!(proc_status(&p, "web")["state"], "running");
    assert_eq!(
        pid_of(&p, "other"),
        other0,
        "without `restart: true` it is left alone"
    );

    // A crash of the dependency, restarted by its policy: the dependent follows once the
    // dependency is ready again.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(db1),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill db");
    wait_until("db back, then web restarted and ready again", WAIT, || {
        let (db, web) = (proc_status(&p, "db"), proc_status(&p, "web"));
        db["state"] == "running"
            && db["pid"].as_i64() != Some(i64::from(db1))
            && web["state"] == "running"
            && web["pid"].as_i64() != Some(i64::from(web1))
    });
    // Restarted once for the crash, not again and again.
    let web2 = pid_of(&p, "web");
    assert_eq!(
        p.read_log("web").matches("started pid").count(),
        3,
        "{}",
        p.read_log("web")
    );
    assert_eq!(pid_of(&p, "web"), web2);
    assert_eq!(pid_of(&p, "other"), other0);
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn a_changed_dependency_restarted_by_up_takes_its_restart_true_dependent_with_it() {
    let config = |v: &str| {
        format!(
            r#"
processes:
  db:
    command: ["{{testd}}"]
    ready_after: 200ms
    env: {{ V: "{v}" }}
  web:
    command: ["{{testd}}"]
    ready_after: 200ms
    depends_on: {{ db: {{ condition: healthy, restart: true }} }}
"#
        )
    };
    let mut p = Project::new().config(&config("1"));
    p.procs(["up"]).success();
    let (db0, web0) = (pid_of(&p, "db"), pid_of(&p, "web"));
    p.write_config(&config("2"));
    p.procs(["up"])
        .success()
        .stdout_contains("db: restarted (env.V changed)");
    wait_until("web restarted after db and ready again", WAIT, || {
        let web = proc_status(&p, "web");
        web["state"] == "running" && web["pid"].as_i64() != Some(i64::from(web0))
    });
    assert_ne!(pid_of(&p, "db"), db0);
    // A second `up` on the converged stack changes nothing.
    let web1 = pid_of(&p, "web");
    p.procs(["up"]).success().stdout_lacks("restarted");
    assert_eq!(pid_of(&p, "web"), web1);
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn start_stop_and_restart_of_a_process_added_since_the_last_up() {
    // The running stack was brought up with `a` only; procs.yaml then gained `b` and `c`.
    // They used to be "no process named `b` in procs.yaml" (which names it).
    let mut p = Project::new().config("processes:\n  a: {command: [\"{testd}\"]}\n");
    p.procs(["up"]).success();
    p.write_config(
        "processes:\n  a: {command: [\"{testd}\"]}\n  b: {command: [\"{testd}\"]}\n  c: {command: [\"{testd}\"]}\n",
    );
    let a = pid_of(&p, "a");
    p.procs(["stop", "c"])
        .success()
        .stdout_contains("c: not running");
    let out = p.procs(["restart", "a", "b"]).success();
    assert!(!out.stderr.contains("no process named"), "{}", out.stderr);
    assert_ne!(pid_of(&p, "a"), a, "a was restarted");
    assert_eq!(proc_status(&p, "b")["state"], "running");
    p.procs(["start", "c"]).success();
    assert_eq!(proc_status(&p, "c")["state"], "running");
    p.procs(["stop", "zz"])
        .code(2)
        .stderr_contains("no process named `zz`");
    p.procs(["down"]).success();
    p.assert_no_survivors();
}
