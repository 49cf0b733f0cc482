//! The commands that need no running process (`config`, `graph`, `schema`,
//! `completions`, `man`) and the examples shipped in `examples/`.

use std::path::{Path, PathBuf};

use crate::harness::{Project, free_port, procs_bin, run, wait_until};

const STACK: &str = r#"
name: demo
processes:
  db:
    command: ["{testd}"]
    ports: [5432]
  api:
    command: "{testd} --listen 8001"
    depends_on: { db: healthy }
    env: { GREETING: "${GREETING:-hello}" }
  web:
    command: ["{testd}"]
    depends_on: [api]
"#;

#[test]
fn config_prints_the_resolved_config_and_json() {
    let mut p = Project::new().config(STACK);
    let out = p.procs(["config"]).success();
    assert!(
        out.stdout.contains("stop_timeout: 10s"),
        "defaults are filled in:\n{}",
        out.stdout
    );
    let json = p
        .procs_env(["config", "--json"], &[("GREETING", "hi")])
        .success()
        .json();
    assert_eq!(json["name"], "demo");
    assert_eq!(
        json["processes"]["api"]["env"]["GREETING"], "hi",
        "interpolated from the environment"
    );
    assert_eq!(json["processes"]["api"]["depends_on"]["db"], "healthy");
    assert_eq!(json["processes"]["db"]["restart"], "on-failure");
    p.assert_no_survivors();
}

/// Like `docker compose config`: the output is a valid procs.yaml that, read from another
/// directory, prints the same bytes again (YAML and JSON).
#[test]
fn config_output_is_a_procs_yaml_that_prints_the_same_again() {
    let mut p = Project::new().config(STACK);
    let yaml = p.procs(["config"]).success().stdout;
    let json = p.procs(["config", "--json"]).success().stdout;
    assert!(
        !yaml.contains("project_dir") && yaml.contains("GREETING: hello"),
        "{yaml}"
    );
    let other = p.path().join("elsewhere");
    std::fs::create_dir_all(&other).unwrap();
    for (name, text) in [("out.yaml", &yaml), ("out.json", &json)] {
        let file = other.join(name);
        std::fs::write(&file, text).unwrap();
        let file = file.display().to_string();
        let again = p.procs(["-f", file.as_str(), "config"]).success().stdout;
        assert_eq!(again, yaml, "{name}");
        let again_json = p
            .procs(["-f", file.as_str(), "config", "--json"])
            .success()
            .stdout;
        assert_eq!(again_json, json, "{name}");
    }
    p.assert_no_survivors();
}

/// `procs config | head -1`: the command ends quietly when its reader goes away (like any
/// Unix filter), instead of panicking on the write.
#[test]
fn printing_into_a_closed_pipe_ends_quietly() {
    use std::io::{BufRead, BufReader, Read};
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;

    let mut yaml = String::from("processes:\n");
    for i in 0..400 {
        yaml.push_str(&format!("  p{i}:\n    command: sleep 1\n"));
    }
    let mut p = Project::new().config(&yaml);
    let mut child = p
        .command(procs_bin())
        .arg("config")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("name:"), "{first}");
    // The reader is gone now (dropped above); the output is far bigger than a pipe buffer.
    let mut status = None;
    wait_until(
        "`procs config` to end",
        std::time::Duration::from_secs(20),
        || {
            status = child.try_wait().unwrap();
            status.is_some()
        },
    );
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(
        status.and_then(|s| s.signal()),
        Some(13),
        "ended by SIGPIPE ({status:?}); stderr:\n{stderr}"
    );
    assert!(stderr.is_empty(), "{stderr}");
    p.assert_no_survivors();
}

#[test]
fn config_reports_every_problem_with_line_and_column_and_exits_2() {
    let mut p = Project::new().config(
        "processes:\n  a:\n    comand: x\n  b:\n    command: y\n    depends_on: [aa]\n    stop_timeout: soon\n",
    );
    let out = p.procs(["config"]).code(2);
    let err = &out.stderr;
    assert!(
        err.contains("procs.yaml:3:5: error: unknown key `comand`, did you mean `command`?"),
        "{err}"
    );
    assert!(
        err.contains("procs.yaml:6:18:"),
        "unknown dependency located: {err}"
    );
    assert!(
        err.contains("procs.yaml:7:19:"),
        "bad duration located: {err}"
    );
    p.assert_no_survivors();
}

#[test]
fn graph_renders_text_dot_and_mermaid() {
    let mut p = Project::new().config(STACK);
    let text = p.procs(["graph"]).success().stdout;
    assert!(
        text.contains("db") && text.contains("api") && text.contains("web"),
        "{text}"
    );
    let dot = p.procs(["graph", "--format", "dot"]).success().stdout;
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(
        dot.contains("\"api\" -> \"db\"") || dot.contains("\"db\" -> \"api\""),
        "{dot}"
    );
    let mermaid = p.procs(["graph", "--format", "mermaid"]).success().stdout;
    assert!(
        mermaid.starts_with("graph") || mermaid.starts_with("flowchart"),
        "{mermaid}"
    );
    p.assert_no_survivors();
}

#[test]
fn a_cycle_is_reported_as_a_path() {
    let mut p = Project::new().config(
        "processes:\n  a:\n    command: x\n    depends_on: [b]\n  b:\n    command: y\n    depends_on: [a]\n",
    );
    p.procs(["graph"]).code(2).stderr_contains("a -> b -> a");
    p.assert_no_survivors();
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn schema_command_prints_the_checked_in_schema() {
    let mut p = Project::new();
    let out = p.procs(["schema"]).success();
    let printed: serde_json::Value = serde_json::from_str(&out.stdout).expect("schema is JSON");
    let file =
        std::fs::read_to_string(repo().join("schemas/procs.schema.json")).expect("schema file");
    let checked_in: serde_json::Value = serde_json::from_str(&file).expect("JSON");
    assert_eq!(
        printed, checked_in,
        "regenerate with PROCS_BLESS=1 cargo test --lib schema"
    );
    p.assert_no_survivors();
}

#[test]
fn completions_and_man_page_are_generated_from_the_cli() {
    let mut p = Project::new();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef procs"),
        ("fish", "complete -c procs"),
    ] {
        let out = p.procs(["completions", shell]).success();
        assert!(out.stdout.contains(marker), "{shell}: {}", out.stdout);
        for sub in ["up", "down", "status", "logs", "doctor"] {
            assert!(out.stdout.contains(sub), "{shell} completion lacks `{sub}`");
        }
        assert!(
            !out.stdout.contains("__supervise"),
            "hidden commands stay hidden"
        );
    }
    let man = p.procs(["man"]).success();
    assert!(
        man.stdout.starts_with(".ie") || man.stdout.contains(".TH procs"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );
    assert!(man.stdout.contains("up"), "man page lists commands");
    p.assert_no_survivors();
}

fn examples() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![repo().join("examples")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read examples").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "procs.yaml") {
                found.push(path);
            }
        }
    }
    assert!(!found.is_empty(), "examples/ holds configs");
    found
}

fn procs_in(
    p: &Project,
    dir: &Path,
    args: &[&str],
    env: &[(&str, String)],
) -> crate::harness::Output {
    let mut cmd = p.command(procs_bin());
    cmd.current_dir(dir).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd, std::time::Duration::from_secs(90))
}

#[test]
fn every_example_is_a_valid_config() {
    let mut p = Project::new();
    for file in examples() {
        let dir = file.parent().expect("dir");
        let out = procs_in(&p, dir, &["config", "--json"], &[]);
        assert_eq!(
            out.exit_code(),
            Some(0),
            "{}: {}",
            file.display(),
            out.stderr
        );
        procs_in(&p, dir, &["graph"], &[]).success();
    }
    p.assert_no_survivors();
}

/// The README quick start: the example stack comes up ready, shows status, goes down.
#[test]
fn the_quick_start_example_stack_runs() {
    let mut p = Project::new();
    let dir = repo().join("examples/shop");
    // A private state dir and free ports, so this never meets a stack a person runs.
    let state_dir = p.path().join("shop-state");
    let env = [
        ("PROCS_STATE_DIR", state_dir.display().to_string()),
        ("DB_PORT", free_port().to_string()),
        ("BACKEND_PORT", free_port().to_string()),
        ("FRONTEND_PORT", free_port().to_string()),
    ];
    let up = procs_in(&p, &dir, &["up"], &env);
    assert_eq!(
        up.exit_code(),
        Some(0),
        "up failed:\n{}\n{}",
        up.stdout,
        up.stderr
    );
    let report = procs_in(&p, &dir, &["status", "--json"], &env).json();
    let states: Vec<(String, String)> = report["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or("").to_owned(),
                e["state"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    for (name, want) in [
        ("db", "healthy"),
        ("migrate", "completed"),
        ("backend", "healthy"),
        ("frontend", "healthy"),
    ] {
        assert!(
            states.contains(&(name.to_owned(), want.to_owned())),
            "{name} should be {want}: {states:?}"
        );
    }
    let down = procs_in(&p, &dir, &["down"], &env);
    assert_eq!(down.exit_code(), Some(0), "{}", down.stderr);
    p.assert_no_survivors();
}
