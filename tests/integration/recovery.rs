//! Crash safety and reconciliation: adoption after a supervisor SIGKILL, PID-reuse
//! safety, corrupt registry recovery, drift-aware `up`, doctor, ls, and a stress test.

use std::time::Duration;

use crate::harness::{Project, pid_alive, pid_cmdline, wait_until};
use crate::lifecycle::{pid_of, proc_status};

fn kill9(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL");
}

pub fn supervisor_pid(p: &Project) -> i32 {
    let state = p.state_json();
    state["supervisor"]["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("no supervisor recorded: {state}")) as i32
}

pub fn kill_supervisor(p: &Project) {
    let pid = supervisor_pid(p);
    kill9(pid);
    wait_until("the supervisor to die", Duration::from_secs(10), || {
        !pid_alive(pid)
    });
}

/// Live fixture daemons of this project (not the supervisor, not helpers).
pub fn daemons(p: &Project) -> Vec<i32> {
    p.tagged_pids()
        .into_iter()
        .filter(|pid| pid_cmdline(*pid).contains("procs-testd"))
        .collect()
}

const TWO: &str = r#"
processes:
  a:
    command: ["{testd}"]
    backoff: { initial: 0s }
  b:
    command: ["{testd}"]
    depends_on: [a]
"#;

#[test]
fn after_a_supervisor_sigkill_status_up_and_down_keep_the_same_processes() {
    let mut p = Project::new().config(TWO);
    p.procs(["up"]).success();
    let (a, b) = (pid_of(&p, "a"), pid_of(&p, "b"));
    kill_supervisor(&p);
    let status = p.procs(["status", "--json"]).success().json();
    assert_eq!(status["supervisor"]["running"], false, "{status}");
    for entry in status["processes"].as_array().expect("processes") {
        assert!(
            entry["pid"].is_i64(),
            "still running, from the registry: {entry}"
        );
        assert_eq!(entry["supervised"], false, "{entry}");
    }
    let out = p.procs(["up"]).success();
    assert!(out.stdout.contains("adopted pid"), "{}", out.stdout);
    assert_eq!(
        (pid_of(&p, "a"), pid_of(&p, "b")),
        (a, b),
        "adopted, not restarted"
    );
    assert_eq!(proc_status(&p, "a")["supervised"], true);
    assert_eq!(daemons(&p).len(), 2, "no duplicates");
    // The new supervisor watches the adopted process: a crash is restarted.
    kill9(a);
    wait_until(
        "a to be restarted by the new supervisor",
        Duration::from_secs(10),
        || {
            proc_status(&p, "a")["pid"]
                .as_i64()
                .is_some_and(|pid| pid as i32 != a)
        },
    );
    p.procs(["down"]).success();
    assert!(!pid_alive(b));
    p.assert_no_survivors();
}

#[test]
fn down_without_a_supervisor_stops_everything() {
    let mut p = Project::new().config(TWO);
    p.procs(["up"]).success();
    let pids = daemons(&p);
    kill_supervisor(&p);
    p.procs(["down"])
        .success()
        .stdout_contains("no supervisor was running");
    for pid in pids {
        assert!(!pid_alive(pid), "{pid} survived");
    }
    p.assert_no_survivors();
}

#[test]
fn a_forged_registry_never_makes_procs_signal_a_stranger() {
    let mut p = Project::new().config(TWO);
    // An unrelated process (not started by procs, not tagged with the project id).
    let mut stranger = p.command("sleep").arg("1000").spawn().expect("spawn sleep");
    let pid = stranger.id() as i32;
    let real_start: u64 = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .expect("stat")
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.split_whitespace().nth(19)?.parse().ok())
        .expect("start time");
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").expect("boot id");
    for (start, boot_id) in [
        (real_start + 1, boot.trim().to_owned()),
        (real_start, "another-boot".to_owned()),
    ] {
        std::fs::create_dir_all(p.state_dir()).expect("mkdir");
        let forged = serde_json::json!({
            "schema_version": 1, "project": "x", "project_dir": p.path(), "project_id": "00000000",
            "processes": { "a": { "state": "running", "pid": pid, "pgid": pid,
                "start_time": start, "boot_id": boot_id, "config_hash": "", "log": "" } }
        });
        std::fs::write(p.state_dir().join("state.json"), forged.to_string()).expect("write");
        let entry = proc_status(&p, "a");
        assert!(
            entry["pid"].is_null(),
            "a reused pid is never shown as running: {entry}"
        );
        p.procs(["down"]).success();
        assert!(pid_alive(pid), "procs signalled a process it did not start");
        p.procs(["up"]).success();
        assert_ne!(pid_of(&p, "a"), pid, "a stale record is never adopted");
        p.procs(["down"]).success();
        assert!(pid_alive(pid), "procs signalled a process it did not start");
    }
    stranger.kill().expect("kill");
    stranger.wait().expect("wait");
    p.assert_no_survivors();
}

#[test]
fn a_truncated_registry_is_kept_aside_and_its_processes_replaced_without_duplicates() {
    let mut p = Project::new().config(TWO);
    p.procs(["up"]).success();
    let before = daemons(&p);
    kill_supervisor(&p);
    let state = p.state_dir().join("state.json");
    let text = std::fs::read_to_string(&state).expect("read");
    std::fs::write(&state, &text[..text.len() / 2]).expect("truncate");
    p.procs(["status"]).success().stderr_contains("corrupt");
    p.procs(["up"]).success().stderr_contains("corrupt");
    // Their config cannot be verified any more: they are replaced, never duplicated.
    let after = daemons(&p);
    assert_eq!(after.len(), before.len(), "no duplicates: {after:?}");
    for pid in &before {
        assert!(
            !pid_alive(*pid),
            "the instance of unknown config {pid} was replaced"
        );
    }
    let kept = std::fs::read_dir(p.state_dir())
        .expect("ls")
        .flatten()
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("state.json.corrupt-")
        });
    assert!(kept, "a copy of the corrupt registry is kept");
    p.procs(["down"]).success();
    for pid in after {
        assert!(!pid_alive(pid));
    }
    p.assert_no_survivors();
}

#[test]
fn up_reconciles_drift_with_reasons_and_a_second_up_changes_nothing() {
    let cfg = |color: &str, with_b: bool| {
        let mut yaml = format!(
            "processes:\n  a:\n    command: [\"{{testd}}\"]\n    env: {{ COLOR: {color} }}\n  c:\n    command: [\"{{testd}}\"]\n"
        );
        if with_b {
            yaml.push_str("  b:\n    command: [\"{testd}\"]\n");
        }
        yaml
    };
    let mut p = Project::new().config(&cfg("red", true));
    p.procs(["up"]).success();
    let (a, b, c) = (pid_of(&p, "a"), pid_of(&p, "b"), pid_of(&p, "c"));
    let again = p.procs(["up"]).success();
    assert!(!again.stdout.contains("restarted"), "{}", again.stdout);
    assert_eq!(
        (pid_of(&p, "a"), pid_of(&p, "b"), pid_of(&p, "c")),
        (a, b, c),
        "a converged stack is left alone"
    );

    p.write_config(&cfg("blue", false));
    let plan = p.procs(["up", "--dry-run", "--json"]).success().json();
    let actions = plan["actions"].as_array().expect("actions").clone();
    let find = |name: &str| {
        actions
            .iter()
            .find(|x| x["name"] == name)
            .cloned()
            .expect("action")
    };
    assert_eq!(find("a")["action"], "restart", "{plan}");
    assert_eq!(find("a")["reasons"][0], "env.COLOR changed", "{plan}");
    assert_eq!(find("b")["action"], "stop", "{plan}");
    assert_eq!(find("c")["action"], "keep", "{plan}");
    assert_eq!(pid_of(&p, "a"), a, "--dry-run changes nothing");

    let out = p.procs(["up"]).success();
    assert!(
        out.stdout.contains("a: restarted (env.COLOR changed)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("b: stopped (removed from the config)"),
        "{}",
        out.stdout
    );
    assert_ne!(pid_of(&p, "a"), a);
    assert!(!pid_alive(b), "a process removed from the file is stopped");
    assert_eq!(pid_of(&p, "c"), c, "unchanged process kept");
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn a_completed_oneshot_is_not_run_again_while_the_stack_is_up() {
    let mut p = Project::new().config(
        r#"
processes:
  seed:
    command: "echo ran >> runs.txt"
    oneshot: true
  app:
    command: ["{testd}"]
    depends_on: { seed: completed_successfully }
"#,
    );
    let runs = || {
        std::fs::read_to_string(p.path().join("runs.txt"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    p.procs(["up"]).success();
    assert_eq!(runs(), 1);
    p.procs(["up"]).success();
    assert_eq!(runs(), 1, "not re-run while up");
    kill_supervisor(&p);
    p.procs(["up"]).success();
    assert_eq!(
        runs(),
        1,
        "not re-run after the supervisor was replaced either"
    );
    p.procs(["down"]).success();
    p.procs(["up"]).success();
    assert_eq!(runs(), 2, "after down, the next up runs it again");
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn doctor_finds_and_fixes_an_escapee_after_the_registry_was_deleted() {
    let mut p = Project::new().config(
        r#"
processes:
  daemon:
    command: ["{testd}", "--setsid-grandchild"]
"#,
    );
    p.procs(["up"]).success();
    let pids = daemons(&p);
    assert_eq!(pids.len(), 2, "daemon and its grandchild: {pids:?}");
    kill_supervisor(&p);
    std::fs::remove_dir_all(p.state_dir()).expect("rm -rf .procs");
    let found = p.procs(["doctor"]).code(1);
    assert!(
        found
            .stdout
            .contains("processes of `daemon` that procs does not supervise"),
        "{}",
        found.stdout
    );
    let fixed = p.procs(["doctor", "--fix"]).success();
    assert!(fixed.stdout.contains("fixed: stopped"), "{}", fixed.stdout);
    for pid in pids {
        assert!(!pid_alive(pid), "{pid} survived doctor --fix");
    }
    p.procs(["doctor"])
        .success()
        .stdout_contains("no problems found");
    p.assert_no_survivors();
}

#[test]
fn ls_hides_projects_whose_directory_is_gone_unless_all() {
    let mut p = Project::new().config(TWO);
    // A second project whose registry lives outside its directory, then the directory goes.
    let other = p.path().join("other");
    std::fs::create_dir(&other).expect("mkdir other");
    std::fs::write(
        other.join("procs.yaml"),
        "processes:\n  a:\n    command: [sleep, '300']\n",
    )
    .expect("write other/procs.yaml");
    let state = p.path().join("other-state");
    let env = [("PROCS_STATE_DIR", state.to_str().expect("utf-8"))];
    let file = other.join("procs.yaml");
    let file = file.to_str().expect("utf-8");
    p.procs_env(["-f", file, "up"], &env).success();
    p.procs_env(["-f", file, "down"], &env).success();
    let other = other
        .canonicalize()
        .expect("canonical")
        .display()
        .to_string();
    std::fs::remove_dir_all(&other).expect("rm -rf other");
    let listed = |args: &[&str]| {
        p.procs(args).success().json()["projects"]
            .as_array()
            .expect("projects")
            .iter()
            .find(|e| e["project_dir"] == other.as_str())
            .cloned()
    };
    assert_eq!(
        listed(&["ls", "--json"]),
        None,
        "a gone directory is hidden"
    );
    let all = listed(&["ls", "--all", "--json"]).expect("--all lists it");
    assert_eq!(all["gone"], true, "{all}");
    let text = p.procs(["ls", "--all"]).success();
    assert!(text.stdout.contains("(directory gone)"), "{}", text.stdout);
    p.assert_no_survivors();
}

#[test]
fn ls_lists_projects_with_their_state() {
    let mut p = Project::new().config(TWO);
    p.procs(["up"]).success();
    let list = p.procs(["ls", "--json"]).success().json();
    let dir = p
        .path()
        .canonicalize()
        .expect("canonical")
        .display()
        .to_string();
    let entry = list["projects"]
        .as_array()
        .and_then(|ps| {
            ps.iter()
                .find(|e| e["project_dir"] == dir.as_str())
                .cloned()
        })
        .unwrap_or_else(|| panic!("project missing from ls: {list}"));
    assert_eq!(entry["supervisor_running"], true, "{entry}");
    assert_eq!(entry["running"], 2, "{entry}");
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

#[test]
fn state_and_logs_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mut p = Project::new().config(TWO);
    p.procs(["up"]).success();
    let mode = |path: std::path::PathBuf| {
        std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777
    };
    assert_eq!(mode(p.state_dir()), 0o700);
    assert_eq!(mode(p.state_dir().join("state.json")), 0o600);
    assert_eq!(mode(p.state_dir().join("logs").join("a.log")), 0o600);
    assert_eq!(mode(p.state_dir().join("supervisor.sock")), 0o600);
    p.procs(["down"]).success();
    p.assert_no_survivors();
}

/// Names of the main processes (group leaders spawned by a supervisor, or adopted ones
/// reparented to init), sorted.
fn main_processes(p: &Project) -> Vec<String> {
    let mut names: Vec<String> = daemons(p)
        .iter()
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let fields: Vec<&str> = stat
                .rsplit_once(") ")
                .map(|(_, r)| r.split_whitespace().collect())
                .unwrap_or_default();
            let pgid = fields.get(2).and_then(|pg| pg.parse::<i32>().ok());
            let parent = fields.get(1).and_then(|pp| pp.parse::<i32>().ok());
            pgid == Some(**pid)
                && parent.is_some_and(|pp| pp == 1 || pid_cmdline(pp).contains("__supervise"))
        })
        .map(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .unwrap_or_default()
                .split(|b| *b == 0)
                .find_map(|kv| {
                    kv.strip_prefix(b"PROCS_PROCESS=")
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                })
                .unwrap_or_default()
        })
        .collect();
    names.sort();
    names
}

/// SIGKILL the supervisor at varied moments during `up` and `down`, 20 rounds; after
/// each round the next `up` must converge to exactly one instance of each process, and
/// the final `down` must leave nothing.
#[test]
fn killing_the_supervisor_at_random_moments_never_duplicates_or_leaks() {
    let mut p = Project::new().config(
        r#"
processes:
  a:
    command: ["{testd}"]
  b:
    command: ["{testd}", "--spawn-grandchild"]
    depends_on: [a]
  c:
    command: ["{testd}", "--setsid-grandchild"]
  d:
    command: ["{testd}"]
    depends_on: { c: started }
"#,
    );
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    for round in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let during_down = round % 2 == 1;
        if during_down {
            p.procs(["up"]).success();
        }
        let mut child = p
            .command(crate::harness::procs_bin())
            .arg(if during_down { "down" } else { "up" })
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn procs");
        // Kill once a varying number of daemons exist (up) or are gone (down).
        let threshold = (seed % 7) as usize;
        wait_until("the moment to strike", Duration::from_secs(20), || {
            let n = daemons(&p).len();
            let finished = matches!(child.try_wait(), Ok(Some(_)));
            finished
                || if during_down {
                    n <= 6 - threshold.min(6)
                } else {
                    n >= threshold
                }
        });
        if let Ok(text) = std::fs::read_to_string(p.state_dir().join("state.json"))
            && let Ok(state) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(pid) = state["supervisor"]["pid"].as_i64()
            && pid_cmdline(pid as i32).contains("__supervise")
        {
            kill9(pid as i32);
        }
        let _ = child.wait();
        p.procs(["up"]).success();
        // A process caught mid-stop may still exit after being adopted (and then be
        // restarted): wait for convergence, but a duplicate is never acceptable.
        let mut last = String::new();
        let converged = (0..400).any(|_| {
            let names = main_processes(&p);
            let mut unique = names.clone();
            unique.dedup();
            assert_eq!(unique, names, "round {round}: duplicate main processes");
            let all = daemons(&p);
            if names == ["a", "b", "c", "d"] && all.len() == 6 {
                return true;
            }
            last = format!(
                "main {names:?}; daemons {:?}",
                all.iter().map(|d| (d, pid_cmdline(*d))).collect::<Vec<_>>()
            );
            // Polling the process table from outside: a short pause between looks.
            std::thread::sleep(Duration::from_millis(50));
            false
        });
        assert!(
            converged,
            "round {round}: no convergence within 20s: {last}\nstatus: {}",
            p.procs(["status"]).stdout
        );
    }
    p.procs(["down"]).success();
    p.assert_no_survivors();
}
