//! Loader tests: every error class with its exact location, and the positive rules.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::*;

fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn load_in(dir: &Path, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    load(&LoadOptions {
        file: None,
        cwd: dir.to_path_buf(),
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    })
}

fn ok(yaml: &str) -> Config {
    let dir = project(&[("procs.yaml", yaml)]);
    match load_in(dir.path(), &[]) {
        Ok(c) => c,
        Err(e) => panic!("unexpected error:\n{e}"),
    }
}

/// `(line, column, message)` of every problem.
fn errors_in(dir: &Path, env: &[(&str, &str)]) -> Vec<(u64, u64, String)> {
    let err = load_in(dir, env).expect_err("expected a config error");
    err.problems()
        .iter()
        .map(|p| (p.line, p.column, p.message.clone()))
        .collect()
}

fn errors(yaml: &str) -> Vec<(u64, u64, String)> {
    let dir = project(&[("procs.yaml", yaml)]);
    errors_in(dir.path(), &[])
}

fn one_error(yaml: &str) -> (u64, u64, String) {
    let mut all = errors(yaml);
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

fn e(line: u64, column: u64, message: &str) -> (u64, u64, String) {
    (line, column, message.to_owned())
}

// ---------------------------------------------------------------- error classes

#[test]
fn unknown_top_level_key_suggests() {
    assert_eq!(
        one_error("proceses:\n  web: {command: x}\n"),
        e(1, 1, "unknown key `proceses`, did you mean `processes`?")
    );
}

#[test]
fn unknown_process_key_suggests() {
    assert_eq!(
        one_error("processes:\n  web:\n    comand: run\n"),
        e(3, 5, "unknown key `comand`, did you mean `command`?")
    );
}

#[test]
fn unknown_healthcheck_key_suggests() {
    assert_eq!(
        one_error(
            "processes:\n  web:\n    command: run\n    healthcheck:\n      exec: x\n      intervl: 1s\n"
        ),
        e(6, 7, "unknown key `intervl`, did you mean `interval`?")
    );
}

#[test]
fn unknown_key_without_close_match_has_no_suggestion() {
    assert_eq!(
        one_error("processes:\n  web:\n    command: run\n    zzzzzz: 1\n"),
        e(4, 5, "unknown key `zzzzzz`")
    );
}

#[test]
fn wrong_type() {
    assert_eq!(
        one_error("processes:\n  web:\n    command: run\n    max_restarts: lots\n"),
        e(
            4,
            19,
            "wrong type for `max_restarts`: expected a non-negative integer, found string `lots`"
        )
    );
    assert_eq!(
        one_error("processes:\n  web:\n    command: run\n    oneshot: yes\n"),
        e(
            4,
            14,
            "wrong type for `oneshot`: expected a boolean, found string `yes`"
        )
    );
}

#[test]
fn bad_duration() {
    let (line, col, msg) =
        one_error("processes:\n  web:\n    command: run\n    stop_timeout: 10x\n");
    assert_eq!((line, col), (4, 19));
    assert!(
        msg.starts_with("invalid duration `10x` for `stop_timeout`: unknown time unit"),
        "{msg}"
    );
}

#[test]
fn bad_size() {
    assert_eq!(
        one_error("logs: {max_size: 10 parsecs}\nprocesses: {}\n"),
        e(
            1,
            18,
            "invalid size `10 parsecs`: expected bytes or a number with a unit such as `10MiB`, `10MB`, `512KiB`"
        )
    );
}

#[test]
fn bad_signal() {
    assert_eq!(
        one_error("processes:\n  web:\n    command: run\n    stop_signal: SIGTREM\n"),
        e(4, 18, "unknown signal `SIGTREM`, did you mean `SIGTERM`?")
    );
    assert_eq!(
        one_error("processes:\n  web:\n    command: run\n    stop_signal: 999\n"),
        e(4, 18, "unknown signal number `999`")
    );
}

#[test]
fn unknown_dependency_suggests() {
    assert_eq!(
        one_error(
            "processes:\n  db: {command: x}\n  web:\n    command: run\n    depends_on: [dbb]\n"
        ),
        e(
            5,
            18,
            "`web` depends on `dbb`, which is not a defined process; did you mean `db`?"
        )
    );
    assert_eq!(
        one_error("processes:\n  web:\n    command: run\n    depends_on:\n      cache: healthy\n"),
        e(
            5,
            7,
            "`web` depends on `cache`, which is not a defined process"
        )
    );
}

#[test]
fn cycle_is_printed() {
    assert_eq!(
        one_error(
            "processes:\n  a:\n    command: x\n    depends_on: [b]\n  b:\n    command: x\n    depends_on: [a]\n"
        ),
        e(4, 18, "dependency cycle: a -> b -> a")
    );
    assert_eq!(
        one_error("processes:\n  a:\n    command: x\n    depends_on: [a]\n"),
        e(4, 18, "dependency cycle: a -> a")
    );
}

#[test]
fn unknown_condition_suggests() {
    assert_eq!(
        one_error(
            "processes:\n  db: {command: x}\n  web:\n    command: run\n    depends_on: {db: helthy}\n"
        ),
        e(5, 22, "unknown condition `helthy`, did you mean `healthy`?")
    );
}

#[test]
fn two_probes_in_one_healthcheck() {
    assert_eq!(
        one_error(
            "processes:\n  web:\n    command: run\n    healthcheck:\n      exec: x\n      http: http://localhost/\n"
        ),
        e(
            6,
            7,
            "`healthcheck` has more than one probe (`exec`, `http`); use exactly one"
        )
    );
    assert_eq!(
        one_error("processes:\n  web:\n    command: run\n    healthcheck: {interval: 1s}\n"),
        e(
            4,
            5,
            "`healthcheck` needs exactly one probe: `exec`, `tcp`, `http` or `log`"
        )
    );
}

#[test]
fn missing_command() {
    assert_eq!(
        one_error("processes:\n  web:\n    cwd: .\n"),
        e(2, 3, "process `web` has no `command`")
    );
    assert_eq!(
        one_error("processes:\n  web:\n"),
        e(2, 3, "process `web` has no `command`")
    );
    assert_eq!(
        one_error("processes:\n  web: {command: \"  \"}\n"),
        e(2, 18, "`command` is empty")
    );
    assert_eq!(
        one_error("processes:\n  web: {command: []}\n"),
        e(2, 18, "`command` needs a program as its first item")
    );
}

#[test]
fn missing_listed_env_file() {
    let dir = project(&[
        (".env.local", "A=1\n"),
        (
            "procs.yaml",
            "env_file: [.env.local, .env.missing]\nprocesses: {}\n",
        ),
    ]);
    let all = errors_in(dir.path(), &[]);
    assert_eq!(all.len(), 1, "{all:?}");
    let (line, col, msg) = all[0].clone();
    assert_eq!((line, col), (1, 24));
    assert!(
        msg.starts_with("env file `") && msg.ends_with(".env.missing` not found"),
        "{msg}"
    );
    let (line, col, msg) =
        one_error("processes:\n  web:\n    command: x\n    env_file:\n      - nope.env\n");
    assert_eq!((line, col), (5, 9));
    assert!(msg.ends_with("nope.env` not found"), "{msg}");
}

#[test]
fn top_level_env_file_spelt_with_an_escape_feeds_interpolation() {
    let dir = project(&[
        (".env.vars", "FROM_FILE=yes\n"),
        (
            "procs.yaml",
            "\"env\\x5ffile\": .env.vars\nprocesses:\n  a:\n    command: echo ${FROM_FILE}\n",
        ),
    ]);
    let config = load_in(dir.path(), &[]).expect("valid");
    assert_eq!(
        config.processes["a"].command,
        Command::Shell("echo yes".into())
    );
}

#[test]
fn required_variable_unset() {
    assert_eq!(
        one_error("processes:\n  web:\n    command: run ${TOKEN:?set TOKEN first}\n"),
        e(3, 14, "missing property `TOKEN`: set TOKEN first")
    );
}

#[test]
fn duplicate_key() {
    assert_eq!(
        one_error("processes:\n  web:\n    command: a\n    command: b\n"),
        e(4, 5, "duplicate mapping key: command")
    );
}

#[test]
fn yaml_syntax_error() {
    assert_eq!(
        one_error("processes:\n  web:\n    command: [a, b\n    cwd: x\n"),
        e(4, 8, "illegal placement of ':' indicator")
    );
}

#[test]
fn error_in_override_file_names_that_file() {
    let dir = project(&[
        ("procs.yaml", "processes:\n  web:\n    command: run\n"),
        (
            "procs.override.yaml",
            "processes:\n  web:\n    restart: sometimes\n",
        ),
    ]);
    let err = load_in(dir.path(), &[]).unwrap_err();
    let p = &err.problems()[0];
    assert_eq!(p.file.as_deref(), Some("procs.override.yaml"));
    assert_eq!((p.line, p.column), (3, 14));
    assert_eq!(
        p.message,
        "unknown restart policy `sometimes`, expected `no`, `on-failure` or `always`"
    );
    assert!(
        err.to_string()
            .starts_with("procs.override.yaml:3:14: error: ")
    );
}

#[test]
fn three_errors_in_different_places_are_all_reported() {
    let yaml = "\
nmae: shop
processes:
  db:
    command: postgres
    stop_timeout: soon
  web:
    command: run
    depends_on: [db, cache]
";
    assert_eq!(
        errors(yaml),
        vec![
            e(1, 1, "unknown key `nmae`, did you mean `name`?"),
            e(
                5,
                19,
                "invalid duration `soon` for `stop_timeout`: expected number at 0 (e.g. `500ms`, `10s`, `2m`)"
            ),
            e(
                8,
                22,
                "`web` depends on `cache`, which is not a defined process"
            ),
        ]
    );
}

#[test]
fn several_errors_in_one_list_keep_their_positions() {
    let yaml =
        "processes:\n  web:\n    command: run\n    ports: [abc, 8001, 70000, {port: 1, hots: x}]\n";
    let all = errors(yaml);
    let cols: Vec<u64> = all.iter().map(|p| p.1).collect();
    assert_eq!(cols, vec![13, 24, 31], "{all:?}");
}

#[test]
fn invalid_process_name() {
    assert_eq!(
        one_error("processes:\n  -web: {command: x}\n"),
        e(
            2,
            3,
            "invalid process name `-web`: use letters, digits, `_`, `.` and `-`, starting with \
             a letter, a digit or `_`, at most 128 characters"
        )
    );
    for name in ["'.'", "'..'", ".hidden", "'a/b'"] {
        let text = one_error(&format!("processes:\n  {name}: {{command: x}}\n")).2;
        assert!(text.starts_with("invalid process name"), "{name}: {text}");
    }
}

#[test]
fn missing_cwd_is_an_error() {
    assert_eq!(
        one_error("processes:\n  web: {command: x, cwd: nowhere}\n"),
        e(2, 26, "`cwd` directory `nowhere` does not exist")
    );
}

#[test]
fn not_found_has_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_in(dir.path(), &[]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("error: no `procs.yaml` found in"),
        "{text}"
    );
    assert!(text.contains("\nhint: create a `procs.yaml`"), "{text}");
}

#[test]
fn top_level_must_be_a_mapping() {
    assert_eq!(
        one_error("- a\n- b\n"),
        e(1, 1, "expected a mapping of keys at the top level")
    );
}

// ---------------------------------------------------------------- positive rules

#[test]
fn defaults_are_filled() {
    let c = ok("processes:\n  web:\n    command: run\n");
    let dir_name = c
        .project_dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(c.name, dir_name);
    let web = &c.processes["web"];
    assert_eq!(web.command, Command::Shell("run".into()));
    assert_eq!(web.cwd, c.project_dir);
    assert_eq!(web.restart, RestartPolicy::OnFailure);
    assert_eq!(web.backoff.initial, Duration::from_millis(500));
    assert_eq!(web.backoff.max, Duration::from_secs(30));
    assert_eq!(web.max_restarts, 10);
    assert_eq!(web.min_uptime, Duration::from_secs(10));
    assert_eq!(web.success_exit_codes, vec![0]);
    assert_eq!(web.stop_signal.name, "SIGTERM");
    assert_eq!(web.stop_signal.number, 15);
    assert_eq!(web.stop_timeout, Duration::from_secs(10));
    assert_eq!(
        web.logs,
        LogPolicy {
            max_size: 10 * 1024 * 1024,
            keep: 3,
            ..LogPolicy::DEFAULT
        }
    );
    assert!(!web.oneshot && !web.disabled && web.healthcheck.is_none());
    assert_eq!(c.file, c.project_dir.join("procs.yaml"));
}

#[test]
fn defaults_block_and_top_level_logs() {
    let c = ok("\
logs: {max_size: 1MB, keep: 5}
defaults:
  stop_timeout: 3s
  stop_signal: int
  x-note: ignored
  logs: {max_size: 2KiB}
processes:
  a: {command: x}
  b: {command: x, stop_timeout: 1s, logs: {keep: 1}}
");
    let (a, b) = (&c.processes["a"], &c.processes["b"]);
    assert_eq!(a.stop_timeout, Duration::from_secs(3));
    assert_eq!(b.stop_timeout, Duration::from_secs(1));
    assert_eq!(a.stop_signal.name, "SIGINT");
    assert_eq!(
        a.logs,
        LogPolicy {
            max_size: 2048,
            keep: 5,
            ..LogPolicy::DEFAULT
        }
    );
    assert_eq!(
        b.logs,
        LogPolicy {
            max_size: 1_000_000,
            keep: 1,
            ..LogPolicy::DEFAULT
        }
    );
}

#[test]
fn override_file_merges_maps_and_replaces_lists() {
    let dir = project(&[
        (
            "procs.yaml",
            "name: shop\nprocesses:\n  web:\n    command: run\n    ports: [8001, 8002]\n    env: {A: '1', B: '2'}\n",
        ),
        (
            "procs.override.yaml",
            "processes:\n  web:\n    ports: [9000]\n    env: {B: over}\n  extra: {command: more}\n",
        ),
    ]);
    let c = load_in(dir.path(), &[]).unwrap();
    let web = &c.processes["web"];
    assert_eq!(
        web.ports,
        vec![Port {
            port: 9000,
            host: None
        }]
    );
    assert_eq!(web.env["A"], "1");
    assert_eq!(web.env["B"], "over");
    assert!(c.processes.contains_key("extra"));
    assert_eq!(
        c.override_file,
        Some(c.project_dir.join("procs.override.yaml"))
    );
}

#[test]
fn env_layers_and_interpolation_precedence() {
    let dir = project(&[
        (".env", "FROM_DOT=dot\nSHARED=dot\nPORT=1111\n"),
        ("extra.env", "SHARED=extra\nPORT=2222\n"),
        ("web.env", "W=file\nTOP=web-file\n"),
        (
            "procs.yaml",
            "env_file: extra.env\nenv: {TOP: top, LEVEL: 3}\nprocesses:\n  web:\n    command: serve --port ${PORT} ${SHARED} ${FROM_DOT} ${UNSET:-fallback}\n    env_file: web.env\n    env: [W=inline, FLAG=true]\n",
        ),
    ]);
    let c = load_in(dir.path(), &[("PORT", "3333")]).unwrap();
    let web = &c.processes["web"];
    assert_eq!(
        web.command,
        Command::Shell("serve --port 3333 extra dot fallback".into())
    );
    let want: BTreeMap<String, String> = [
        ("FROM_DOT", "dot"),
        ("SHARED", "extra"),
        ("PORT", "2222"),
        ("TOP", "web-file"),
        ("LEVEL", "3"),
        ("W", "inline"),
        ("FLAG", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(web.env, want);
}

#[test]
fn env_name_without_value_comes_from_the_invoking_environment() {
    let dir = project(&[(
        "procs.yaml",
        "processes:\n  web:\n    command: x\n    env: [HOME_DIR, NOT_SET]\n",
    )]);
    let c = load_in(dir.path(), &[("HOME_DIR", "/home/me")]).unwrap();
    assert_eq!(
        c.processes["web"].env.get("HOME_DIR").map(String::as_str),
        Some("/home/me")
    );
    assert!(!c.processes["web"].env.contains_key("NOT_SET"));
}

#[test]
fn dollar_dollar_and_unset_variables() {
    let c = ok("processes:\n  web:\n    command: echo $$HOME ${NOPE}!\n");
    assert_eq!(
        c.processes["web"].command,
        Command::Shell("echo $HOME !".into())
    );
}

#[test]
fn merge_keys() {
    let c = ok("\
x-common: &common
  restart: always
  stop_timeout: 2s
processes:
  a:
    <<: *common
    command: x
  b:
    <<: *common
    command: y
    restart: 'no'
");
    assert_eq!(c.processes["a"].restart, RestartPolicy::Always);
    assert_eq!(c.processes["a"].stop_timeout, Duration::from_secs(2));
    assert_eq!(c.processes["b"].restart, RestartPolicy::No);
}

#[test]
fn depends_on_forms() {
    let c = ok("\
processes:
  db: {command: x}
  m: {command: x, oneshot: true}
  a: {command: x, depends_on: [db]}
  b: {command: x, depends_on: {db: healthy, m: completed_successfully}}
  c:
    command: x
    depends_on:
      db: {condition: completed}
      m:
");
    let deps = |n: &str| -> Vec<(String, Condition)> {
        c.processes[n]
            .depends_on
            .iter()
            .map(|d| (d.name.clone(), d.condition))
            .collect()
    };
    assert_eq!(deps("a"), vec![("db".into(), Condition::Started)]);
    assert_eq!(
        deps("b"),
        vec![
            ("db".into(), Condition::Healthy),
            ("m".into(), Condition::CompletedSuccessfully)
        ]
    );
    assert_eq!(
        deps("c"),
        vec![
            ("db".into(), Condition::Completed),
            ("m".into(), Condition::Started)
        ]
    );
}

#[test]
fn restart_forms() {
    let c = ok("\
processes:
  a: {command: x, restart: false}
  b: {command: x, restart: no}
  c: {command: x, oneshot: true}
  d: {command: x, oneshot: true, restart: on-failure}
  e: {command: x, restart: always}
");
    let r = |n: &str| c.processes[n].restart;
    assert_eq!(r("a"), RestartPolicy::No);
    assert_eq!(r("b"), RestartPolicy::No);
    assert_eq!(r("c"), RestartPolicy::No);
    assert_eq!(r("d"), RestartPolicy::OnFailure);
    assert_eq!(r("e"), RestartPolicy::Always);
}

#[test]
fn ports_forms() {
    let c = ok(
        "processes:\n  a:\n    command: x\n    ports: [8001, \"8002\", {port: 8003, host: 127.0.0.1}, {port: \"8004\"}]\n",
    );
    assert_eq!(
        c.processes["a"].ports,
        vec![
            Port {
                port: 8001,
                host: None
            },
            Port {
                port: 8002,
                host: None
            },
            Port {
                port: 8003,
                host: Some("127.0.0.1".into())
            },
            Port {
                port: 8004,
                host: None
            },
        ]
    );
}

#[test]
fn healthcheck_forms() {
    let c = ok("\
processes:
  a: {command: x, healthcheck: {tcp: 5432}}
  b: {command: x, healthcheck: {tcp: 'db.local:5433', interval: 250ms, retries: 5}}
  c: {command: x, healthcheck: {http: 'http://127.0.0.1:8001/health', status: 204}}
  d: {command: x, healthcheck: {log: 'ready to accept', start_timeout: 2m}}
  e: {command: x, healthcheck: {exec: 'pg_isready'}}
");
    let h = |n: &str| c.processes[n].healthcheck.clone().unwrap();
    assert_eq!(
        h("a").probe,
        Probe::Tcp {
            host: "127.0.0.1".into(),
            port: 5432
        }
    );
    assert_eq!(
        h("b").probe,
        Probe::Tcp {
            host: "db.local".into(),
            port: 5433
        }
    );
    assert_eq!(h("b").interval, Duration::from_millis(250));
    assert_eq!(h("b").retries, 5);
    assert_eq!(h("a").timeout, Duration::from_secs(1));
    assert_eq!(
        h("c").probe,
        Probe::Http {
            url: crate::config::HttpTarget::parse("http://127.0.0.1:8001/health").unwrap(),
            status: Some(204)
        }
    );
    assert_eq!(h("d").start_timeout, Duration::from_mins(2));
    assert_eq!(h("e").probe, Probe::Exec("pg_isready".into()));
}

#[test]
fn commands_cwd_signals_sizes() {
    let dir = project(&[
        ("backend/.keep", ""),
        (
            "procs.yaml",
            "processes:\n  a:\n    command: [uvicorn, app:app, --port, 8001]\n    cwd: backend\n    stop_signal: 2\n    stop_command: pkill -INT a\n    logs: {max_size: 1048576}\n    success_exit_codes: [0, 143]\n    x-anything: [1]\n",
        ),
    ]);
    let c = load_in(dir.path(), &[]).unwrap();
    let a = &c.processes["a"];
    assert_eq!(
        a.command,
        Command::Argv(vec![
            "uvicorn".into(),
            "app:app".into(),
            "--port".into(),
            "8001".into()
        ])
    );
    assert_eq!(a.cwd, c.project_dir.join("backend"));
    assert_eq!(
        a.stop_signal,
        Signal {
            number: 2,
            name: "SIGINT".into()
        }
    );
    assert_eq!(a.stop_command, Some(Command::Shell("pkill -INT a".into())));
    assert_eq!(a.logs.max_size, 1_048_576);
    assert_eq!(a.success_exit_codes, vec![0, 143]);
}

#[test]
fn discovery_from_a_subdirectory_and_explicit_file() {
    let dir = project(&[
        ("procs.yaml", "name: up\nprocesses: {}\n"),
        ("sub/deeper/.keep", ""),
        ("other/conf.yaml", "name: other\nprocesses: {}\n"),
    ]);
    let c = load_in(&dir.path().join("sub/deeper"), &[]).unwrap();
    assert_eq!(c.name, "up");
    let c = load(&LoadOptions {
        file: Some("other/conf.yaml".into()),
        cwd: dir.path().to_path_buf(),
        env: BTreeMap::new(),
    })
    .unwrap();
    assert_eq!(c.name, "other");
    assert!(c.project_dir.ends_with("other"));
    let err = load(&LoadOptions {
        file: Some("missing.yaml".into()),
        cwd: dir.path().to_path_buf(),
        env: BTreeMap::new(),
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "error: configuration file `missing.yaml` not found"
    );
}

#[test]
fn errors_from_a_subdirectory_name_the_file_relative_to_cwd() {
    let dir = project(&[
        ("procs.yaml", "processes:\n  web: {comand: x}\n"),
        ("sub/.keep", ""),
    ]);
    let err = load_in(&dir.path().join("sub"), &[]).unwrap_err();
    assert_eq!(err.problems()[0].file.as_deref(), Some("../procs.yaml"));
}

#[test]
fn rendered_multi_error_example() {
    let yaml = "\
name: shop
processes:
  db:
    command: postgres -D .data/pg
    healthcheck: {exec: pg_isready, intervl: 500ms}
  web:
    comand: npm start
    depends_on: [dbb]
";
    let dir = project(&[("procs.yaml", yaml)]);
    let text = load_in(dir.path(), &[]).unwrap_err().to_string();
    // The full rendering is shown in docs/configuration.md; here, the parts.
    assert!(
        text.contains("procs.yaml:5:37: error: unknown key `intervl`, did you mean `interval`?"),
        "{text}"
    );
    assert!(
        text.contains("procs.yaml:7:5: error: unknown key `comand`, did you mean `command`?"),
        "{text}"
    );
    assert!(text.contains("procs.yaml:8:18: error: `web` depends on `dbb`, which is not a defined process; did you mean `db`?"), "{text}");
    assert!(text.ends_with("problems found"), "{text}");
}

// ---------------------------------------------------------------- robustness

const REALISTIC: &str = "\
# yaml-language-server: $schema=./schemas/procs.schema.json
name: shop
env_file: .env
env: { LOG_LEVEL: debug, N: 3 }
x-base: &base
  stop_timeout: 10s
defaults:
  stop_timeout: 10s
logs: { max_size: 10MiB, keep: 3 }
processes:
  db:
    <<: *base
    command: postgres -D .data/pg -p 5432 -k /tmp
    ports: [5432]
    healthcheck: { exec: \"pg_isready -h 127.0.0.1 -p 5432\", interval: 500ms, retries: 3, start_timeout: 60s }
    stop_signal: SIGINT
  migrate:
    command: ./scripts/migrate.sh
    oneshot: true
    depends_on: { db: healthy }
  backend:
    command: [uvicorn, app.main:app, --port, \"8001\"]
    env: [DATABASE_URL=postgres://127.0.0.1:5432/shop]
    depends_on:
      db: healthy
      migrate: { condition: completed_successfully }
    ports: [{ port: 8001, host: 127.0.0.1 }]
    healthcheck: { http: \"http://127.0.0.1:8001/health\", status: 200 }
    restart: on-failure
    backoff: { initial: 1s, max: 1m }
  frontend:
    command: npm run dev -- --port ${FRONTEND_PORT:-3000} $$HOME
    depends_on: [backend]
    ports: [\"3000\"]
    restart: false
    logs: { max_size: 1000 }
";

/// xorshift64*: deterministic, no extra crates.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % (n.max(1) as u64)) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const TOKENS: &[&str] = &[
    "processes",
    "command",
    "depends_on",
    "healthcheck",
    "ports",
    "env",
    "env_file",
    "defaults",
    "logs",
    "restart",
    "x-a",
    "<<",
    "*a",
    "&a",
    ":",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "\"",
    "'",
    "#",
    "\n",
    "\n  ",
    "\n    ",
    "${A}",
    "${A:?x}",
    "${",
    "$$",
    "|",
    ">",
    "!!str",
    "?",
    "~",
    "null",
    "true",
    "no",
    "8001",
    "-1",
    "1e400",
    "10MiB",
    "5s",
    "SIGINT",
    "\t",
    "é",
    "\u{0}",
    "a",
    "b",
    "db",
    "web",
    "healthy",
    "0x1F",
    "99999999999999999999999",
];

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for _ in 0..=rng.below(3) {
        if lines.is_empty() {
            break;
        }
        let i = rng.below(lines.len());
        match rng.below(7) {
            0 => {
                lines.remove(i);
            }
            1 => {
                let l = lines[i].clone();
                lines.insert(i, l);
            }
            2 => {
                let j = rng.below(lines.len());
                lines.swap(i, j);
            }
            3 => {
                let l = &mut lines[i];
                let at = l
                    .char_indices()
                    .map(|(k, _)| k)
                    .nth(rng.below(l.chars().count() + 1));
                let at = at.unwrap_or(l.len());
                let tok = rng.pick(TOKENS);
                l.insert_str(at, tok);
            }
            4 => {
                let l = &mut lines[i];
                if rng.below(2) == 0 {
                    l.insert_str(0, "  ");
                } else if l.starts_with(' ') {
                    l.remove(0);
                }
            }
            5 => {
                let l = &mut lines[i];
                let keep = l
                    .char_indices()
                    .map(|(k, _)| k)
                    .nth(rng.below(l.chars().count() + 1));
                l.truncate(keep.unwrap_or(l.len()));
            }
            _ => {
                let bytes: String = (0..rng.below(8))
                    .map(|_| char::from(b' ' + (rng.below(95) as u8)))
                    .collect();
                lines[i].push_str(&bytes);
            }
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

fn random_yaml(rng: &mut Rng) -> String {
    (0..rng.below(40)).map(|_| rng.pick(TOKENS)).collect()
}

#[test]
fn loader_never_panics_on_random_and_mutated_yaml() {
    let dir = project(&[(".env", "A=1\n"), ("procs.yaml", REALISTIC)]);
    let env = [("FRONTEND_PORT", "3001")];
    load_in(dir.path(), &env).expect("the realistic config is valid");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let file = dir.path().join("procs.yaml");
    let over = dir.path().join(OVERRIDE_FILE_NAME);
    for case in 0..3000 {
        let text = match case % 4 {
            0 => random_yaml(&mut rng),
            _ => mutate(&mut rng, REALISTIC),
        };
        std::fs::write(&file, &text).unwrap();
        if case % 10 == 0 {
            std::fs::write(
                &over,
                mutate(&mut rng, "processes:\n  db:\n    ports: [1]\n"),
            )
            .unwrap();
        } else if case % 10 == 1 {
            let _ = std::fs::remove_file(&over);
        }
        let result = std::panic::catch_unwind(|| {
            let r = load_in(dir.path(), &env);
            if let Err(e) = &r {
                assert!(!e.problems().is_empty());
                let _ = e.render(true);
            }
        });
        assert!(result.is_ok(), "panicked on case {case}:\n{text}");
    }
}

#[test]
fn defaults_env_file_applies_to_processes_without_their_own() {
    let dir = project(&[
        ("common.env", "SHARED=from-defaults\n"),
        ("own.env", "SHARED=own\n"),
        (
            "procs.yaml",
            "defaults:\n  env_file: common.env\nprocesses:\n  a:\n    command: x\n  b:\n    command: y\n    env_file: own.env\n",
        ),
    ]);
    let config = load_in(dir.path(), &[]).expect("valid");
    assert_eq!(config.processes["a"].env["SHARED"], "from-defaults");
    assert_eq!(config.processes["b"].env["SHARED"], "own");
}

#[test]
fn the_name_procs_is_reserved() {
    let (line, column, message) = one_error("processes:\n  procs:\n    command: x\n");
    assert!(message.contains("`procs` is reserved"), "{message}");
    assert_eq!((line, column), (2, 3));
}

#[test]
fn https_probes_and_bad_log_regexes_are_config_errors() {
    let found = errors(
        "processes:\n  a:\n    command: x\n    healthcheck: { http: \"https://x/h\" }\n  b:\n    command: y\n    healthcheck: { log: \"ready(\" }\n",
    );
    assert!(
        found
            .iter()
            .any(|(l, _, m)| *l == 4 && m.contains("use `exec: curl -fsS https://x/h`")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|(l, _, m)| *l == 7 && m.contains("not a valid regular expression")),
        "{found:?}"
    );
}

#[test]
fn many_processes_may_merge_one_anchor() {
    let mut text = String::from("x-defaults: &d\n  restart: always\nprocesses:\n");
    for i in 0..150 {
        text.push_str(&format!("  p{i}:\n    <<: *d\n    command: sleep 1\n"));
    }
    let config = ok(&text);
    assert_eq!(config.processes.len(), 150);
    assert!(
        config
            .processes
            .values()
            .all(|p| p.restart == RestartPolicy::Always)
    );
    // The located path (taken when there is a problem) reads it too: only the problem shows.
    text.push_str("  bad:\n    <<: *d\n    comand: x\n");
    let (line, column, message) = one_error(&text);
    assert_eq!((line, column), (456, 5), "{message}");
    assert!(message.contains("did you mean `command`"), "{message}");
}

// ------------------------------------------------ `procs config`: the resolved document

/// Loads `file` (in `cwd`) with `env`.
fn load_file(file: &Path, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    load(&LoadOptions {
        file: Some(file.to_path_buf()),
        cwd: file.parent().unwrap().to_path_buf(),
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    })
}

/// Prints `config`, reads the output back from a directory of its own (as YAML and as
/// JSON), and checks that both read back to the same processes and print the same bytes.
fn assert_round_trips(config: &Config, what: &str) -> String {
    let resolved = Resolved::new(config);
    let yaml = resolved.to_yaml().unwrap();
    let json = resolved.to_json().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    for (name, text) in [("out.yaml", &yaml), ("out.json", &json)] {
        let file = elsewhere.path().join("copy").join(name);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, text).unwrap();
        let again = match load_file(&file, &[]) {
            Ok(c) => c,
            Err(e) => panic!("{what}: the printed {name} does not validate:\n{e}\n{text}"),
        };
        assert_eq!(again.name, config.name, "{what} ({name})");
        // The document lists `depends_on` sorted by name; nothing else may differ.
        let sorted = |c: &Config| {
            let mut procs = c.processes.clone();
            for p in procs.values_mut() {
                p.depends_on.sort_by(|a, b| a.name.cmp(&b.name));
            }
            procs
        };
        assert_eq!(
            sorted(&again),
            sorted(config),
            "{what}: {name} reads back to other processes:\n{text}"
        );
        let printed = Resolved::new(&again);
        assert_eq!(
            printed.to_yaml().unwrap(),
            yaml,
            "{what} ({name}): YAML differs"
        );
        assert_eq!(
            printed.to_json().unwrap(),
            json,
            "{what} ({name}): JSON differs"
        );
    }
    yaml
}

fn example_files() -> Vec<std::path::PathBuf> {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path().join("procs.yaml"))
        .filter(|f| f.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn config_output_round_trips_on_every_example() {
    let files = example_files();
    assert!(files.len() >= 2, "{files:?}");
    for file in files {
        let config = load_file(&file, &[]).unwrap_or_else(|e| panic!("{}:\n{e}", file.display()));
        assert_round_trips(&config, &file.display().to_string());
    }
}

/// The benchmark's file (`bench/run.py` times `procs config` on it): 15 processes.
#[test]
fn the_realistic_example_loads_with_15_processes() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/realistic/procs.yaml");
    let config = load_file(&file, &[("API_PORT", "9001")]).unwrap();
    assert_eq!(config.processes.len(), 15);
    let api = &config.processes["api"];
    assert_eq!(
        api.command,
        Command::Argv(vec!["./bin/api".into(), "--port".into(), "9001".into()])
    );
    assert_eq!(api.max_restarts, 5, "from the merged anchor");
    assert_eq!(api.stop_timeout, Duration::from_secs(5), "from defaults");
    assert_eq!(config.processes["worker-email"].stop_signal.name, "SIGINT");
    assert!(
        matches!(&config.processes["migrate"].command, Command::Shell(s) if s.lines().count() == 4)
    );
}

const RICH: &str = "\
name: rich
env_file: top.env
env: { LOG_LEVEL: debug, N: 3, DOLLAR: \"$$HOME and $${X}\" }
x-base: &base
  stop_timeout: 7s
  restart: always
defaults:
  backoff: { initial: 1s, max: 1m }
  env_file: [defaults.env]
logs: { max_size: 1MiB, keep: 2 }
processes:
  db:
    <<: *base
    command: postgres -p ${DB_PORT:-5432}
    ports: [{ port: \"${DB_PORT:-5432}\", host: \"::1\" }, 5433]
    healthcheck: { tcp: \"[::1]:${DB_PORT:-5432}\", interval: 500ms }
    stop_signal: 2
  migrate:
    command: |
      set -e
        indented line
      ./migrate \"quoted\" 'single' # not a comment
    oneshot: true
    success_exit_codes: [0, 3]
    depends_on: { db: { condition: healthy } }
  api:
    command: [uvicorn, app:app, --port, 8001, true, \"-\", \"\", \"yes\", \"no\", \"~\", \"1.10\"]
    cwd: sub
    env_file: api.env
    env: [EMPTY=, \"SPACES=  a  b  \", \"COLON=a: b\", \"HASH=x #y\"]
    depends_on: [migrate, db]
    healthcheck: { http: \"http://127.0.0.1:8001/h?a=1&b=$$x\", status: 204, retries: 9 }
    stop_command: [kill, -TERM, \"$$MAINPID\"]
    restart: no
  tail:
    command: tail -F app.log
    healthcheck: { log: \"^ready: .*$$\", start_timeout: 1m 30s }
    disabled: true
    logs: { max_size: 100 }
";

#[test]
fn config_output_round_trips_a_rich_config() {
    let dir = project(&[
        ("procs.yaml", RICH),
        ("top.env", "FROM_TOP=1\nDB_PORT=6543\n"),
        ("defaults.env", "FROM_DEFAULTS=yes\n"),
        ("api.env", "FROM_API='a b'\n"),
        (".env", "FROM_DOT_ENV=1\n"),
        ("sub/keep", ""),
        (
            OVERRIDE_FILE_NAME,
            "processes:\n  tail:\n    command: tail -F other.log\n",
        ),
    ]);
    let config = load_in(dir.path(), &[("N", "from-invoker")]).unwrap();
    assert!(config.override_file.is_some());
    let yaml = assert_round_trips(&config, "RICH");
    // What the document says, spelled the procs.yaml way.
    for want in [
        "    command: tail -F other.log\n",
        "    cwd: ",
        "      FROM_API: a b\n",
        "      FROM_DEFAULTS: \"yes\"\n",
        "      FROM_DOT_ENV: \"1\"\n",
        "    stop_signal: SIGINT\n",
        "      tcp: \"[::1]:6543\"\n",
        "      db: healthy\n",
        "      start_timeout: 1m 30s\n",
        "    restart: \"no\"\n",
        "      DOLLAR: $$HOME and $${X}\n",
    ] {
        assert!(yaml.contains(want), "missing {want:?} in:\n{yaml}");
    }
    assert!(!yaml.contains("env_file") && !yaml.contains("defaults") && !yaml.contains("<<"));
    let api = &config.processes["api"];
    assert_eq!(api.env["DOLLAR"], "$HOME and ${X}");
    assert!(api.cwd.is_absolute() && api.cwd.ends_with("sub"));
}

#[test]
fn config_output_escapes_control_characters_and_round_trips() {
    let nasty = "a\u{1}b\u{7}c\u{1b}[0m\u{7f}d\u{85}e\u{9b}f\u{2028}g\u{feff}h\ri\tj";
    let dir = project(&[("procs.yaml", "processes:\n  a:\n    command: x\n")]);
    let mut config = load_in(dir.path(), &[]).unwrap();
    let a = config.processes.get_mut("a").unwrap();
    a.env.insert("NASTY".into(), nasty.into());
    a.env.insert("LINES".into(), format!("one\n{nasty}\n"));
    a.command = Command::Argv(vec!["x".into(), nasty.into()]);
    let yaml = assert_round_trips(&config, "control characters");
    let raw: Vec<char> = yaml
        .chars()
        .filter(|c| *c != '\n' && (c.is_control() || ['\u{2028}', '\u{feff}'].contains(c)))
        .collect();
    assert!(raw.is_empty(), "unescaped {raw:?} in:\n{yaml}");
    assert!(yaml.contains("\\x7F") || yaml.contains("\\u007F"), "{yaml}");
}

#[test]
fn a_nul_byte_in_any_string_is_located() {
    assert_eq!(
        one_error("processes:\n  web:\n    command: \"sleep\\0 1\"\n"),
        e(
            3,
            14,
            "this string contains a NUL byte (`\\0`), which no command, path or environment \
             variable can hold"
        )
    );
    assert_eq!(
        one_error("processes:\n  web:\n    command: x\n    env: {A: \"1\\0\"}\n").0,
        4
    );
}

#[test]
fn daemon_and_pid_file() {
    let c = ok(
        "processes:\n  web:\n    command: nginx\n    daemon: true\n    pid_file: run/nginx.pid\n",
    );
    let web = &c.processes["web"];
    assert!(web.daemon);
    assert_eq!(
        web.pid_file.as_deref(),
        Some(c.project_dir.join("run/nginx.pid").as_path())
    );
    let plain = ok("processes:\n  web:\n    command: nginx\n");
    assert!(!plain.processes["web"].daemon && plain.processes["web"].pid_file.is_none());
    assert_eq!(
        one_error("processes:\n  web:\n    command: x\n    pid_file: x.pid\n"),
        e(4, 15, "`pid_file` needs `daemon: true`")
    );
    assert_eq!(
        one_error("processes:\n  web:\n    command: x\n    daemon: true\n    oneshot: true\n"),
        e(
            4,
            13,
            "a process cannot be both `daemon: true` and `oneshot: true`"
        )
    );
}

#[test]
fn depends_on_restart_true_is_compose_spelling_and_survives_procs_config() {
    let yaml = "processes:\n  db: { command: x }\n  web:\n    command: y\n    depends_on:\n      db: { condition: healthy, restart: true }\n  other:\n    command: z\n    depends_on: { db: { condition: started } }\n";
    // The project directory outlives the load: the printed copy names it as `cwd`.
    let dir = project(&[("procs.yaml", yaml)]);
    let c = load_in(dir.path(), &[]).unwrap();
    assert_eq!(
        c.processes["web"].depends_on,
        vec![Dependency {
            name: "db".into(),
            condition: Condition::Healthy,
            restart: true
        }]
    );
    assert!(!c.processes["other"].depends_on[0].restart);
    // Written back in the long form only where it says more than the condition.
    let text = assert_round_trips(&c, "restart: true");
    assert!(text.contains("restart: true"), "{text}");
    // Not a boolean: located.
    let (line, _, message) = one_error(
        "processes:\n  db: { command: x }\n  web:\n    command: y\n    depends_on:\n      db: { condition: healthy, restart: sometimes }\n",
    );
    assert_eq!(line, 6, "{message}");
}

#[test]
fn keep_beyond_what_logs_reads_is_a_located_error() {
    // A `keep` of four billion once meant four billion renames per rotation.
    assert_eq!(
        one_error("processes:\n  web:\n    command: x\n    logs: {keep: 4000000000}\n"),
        e(
            4,
            18,
            "`keep` is 4000000000; at most 1000 rotated copies are kept"
        )
    );
    assert_eq!(
        one_error("logs:\n  keep: 1001\nprocesses:\n  web: {command: x}\n").0,
        2
    );
    let most = ok("logs: {keep: 1000}\nprocesses:\n  web: {command: x}\n");
    assert_eq!(most.processes["web"].logs.keep, 1000);
    assert_eq!(
        crate::config::model::defaults::LOG_KEEP_MAX,
        crate::logs::MAX_COPIES,
        "readers look at as many copies as may be kept"
    );
}
