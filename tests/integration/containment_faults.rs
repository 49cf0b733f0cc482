//! Containment when the cgroup is missing, read-only, cannot be removed, left behind by a
//! dead project, or named wrongly by the registry: each is a clear message from the
//! catalogue (`src/error.rs`), never a panic, and never a stranger signalled.
//!
//! A "stranger" here is a `sleep` this test starts itself, outside procs and without the
//! project's tags; every test proves it is still alive when procs is done.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::containment::{Reap, is_known, tree_of};
use crate::harness::{COMMAND_DEADLINE, Project, free_port, pid_alive, run, wait_until};

const WAIT: Duration = Duration::from_secs(20);

/// The cgroup2 mount, read from `/proc/self/mountinfo` (independently of procs). In CI a
/// machine without one fails the test; elsewhere the test is skipped.
fn mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let found = text.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let point = left.split_whitespace().nth(4)?;
        (right.split_whitespace().next()? == "cgroup2").then(|| PathBuf::from(point))
    });
    let writable = found
        .as_ref()
        .is_some_and(|m| nix::unistd::access(m.as_path(), nix::unistd::AccessFlags::W_OK).is_ok());
    if !writable {
        assert!(
            std::env::var_os("CI").is_none(),
            "no writable cgroup v2 (CI runs as root on a machine with one)"
        );
        eprintln!("note: no writable cgroup v2 here; skipping");
        return None;
    }
    found
}

/// The cgroup this test runs in (and so the supervisors it starts), under `mount`.
fn own_cgroup(mount: &Path) -> PathBuf {
    let text = std::fs::read_to_string("/proc/self/cgroup").expect("/proc/self/cgroup");
    let rel = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a unified cgroup line")
        .trim_start_matches('/');
    mount.join(rel)
}

/// The project cgroup the supervisor of `p` uses: `procs-<project id>` under our cgroup.
fn project_cgroup(p: &Project, mount: &Path) -> PathBuf {
    let id = p.state_json()["project_id"]
        .as_str()
        .expect("project_id")
        .to_owned();
    own_cgroup(mount).join(format!("procs-{id}"))
}

fn pids_in(cgroup: &Path) -> Vec<i32> {
    std::fs::read_to_string(cgroup.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn move_into(cgroup: &Path, pid: i32) {
    std::fs::write(cgroup.join("cgroup.procs"), pid.to_string())
        .unwrap_or_else(|e| panic!("move {pid} into {}: {e}", cgroup.display()));
}

fn kill_supervisor(p: &Project) {
    let sup = p.state_json()["supervisor"]["pid"]
        .as_i64()
        .expect("supervisor pid") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL the supervisor");
    wait_until("the supervisor to die", WAIT, || !pid_alive(sup));
}

fn edit_state(p: &Project, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut state = p.state_json();
    edit(&mut state);
    std::fs::write(
        p.state_dir().join("state.json"),
        serde_json::to_string_pretty(&state).expect("json"),
    )
    .expect("write state.json");
}

/// A unique `sleep` length: the marker `tree_of` finds a test's programs by.
fn marker(base: u32) -> String {
    format!("{}.{}", base + std::process::id() % 1000, free_port())
}

/// A process of this test's own, outside procs and untagged; killed when dropped.
struct Stranger(Child);

impl Stranger {
    fn start(marker: &str) -> Self {
        Self(
            Command::new("sleep")
                .arg(marker)
                .env_remove("PROCS_PROJECT_ID")
                .env_remove("PROCS_PROCESS")
                .spawn()
                .expect("spawn a stranger"),
        )
    }

    fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Stranger {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A process whose daemon only its cgroup (or lineage recorded in time) can find: it
/// double-forks (re-parented to the supervisor, then to init after a supervisor SIGKILL)
/// with a cleared environment (no tag).
fn escaping_daemon(m: &str) -> String {
    format!(
        "processes:\n  app:\n    command: \"env -i setsid sh -c 'sleep {m} & exit 0'; exec sleep 1{m}\"\n"
    )
}

fn assert_nothing_left(m: &str) {
    let left = tree_of(m);
    assert!(left.is_empty(), "left after down: {left:?}");
}

// (a) No usable cgroup.

#[test]
fn no_cgroup_by_choice_is_recorded_and_said_by_every_command() {
    let mut p = Project::new();
    let m = marker(6000);
    p.write_config(&escaping_daemon(&m));
    let _reap = Reap::new(&m, &p);
    p.procs_env(["up"], &[("PROCS_NO_CGROUP", "1")]).success();
    let state = p.state_json();
    assert!(state["cgroup"].is_null(), "no cgroup: {state}");
    assert_eq!(state["no_cgroup"], "PROCS_NO_CGROUP is set", "{state}");
    if let Some(mount) = mount() {
        let id = state["project_id"].as_str().expect("id");
        assert!(
            !own_cgroup(&mount).join(format!("procs-{id}")).exists(),
            "PROCS_NO_CGROUP=1 creates no cgroup"
        );
    }
    // A command run without the variable says what the supervisor uses, and why.
    p.procs(["doctor"]).success().stdout_contains(
        "membership: no writable cgroup (PROCS_NO_CGROUP is set): tracking by ancestry and tags",
    );
    p.procs(["down"]).success();
    assert_nothing_left(&m);
    p.assert_no_survivors();
}

fn read_only_mount(kill: bool) {
    let Some(mount) = mount() else { return };
    let works = Command::new("unshare")
        .args(["-m", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        assert!(
            std::env::var_os("CI").is_none(),
            "`unshare -m` does not work (CI runs as root)"
        );
        eprintln!("note: `unshare -m` does not work here; skipping");
        return;
    }
    let mut p = Project::new();
    let m = marker(6100);
    p.write_config(&escaping_daemon(&m));
    let _reap = Reap::new(&m, &p);
    // The supervisor runs in a mount namespace where the cgroup2 mount is read-only.
    let mut up = p.command("unshare");
    up.args([
        "-m",
        "sh",
        "-c",
        "mount -o remount,bind,ro \"$0\" && exec \"$1\" up",
    ])
    .arg(&mount)
    .arg(p.procs_path());
    run(&mut up, COMMAND_DEADLINE).success();
    let expected = format!(
        "membership: no writable cgroup (the cgroup v2 mount {} is read-only)",
        mount.display()
    );
    p.procs(["doctor"]).success().stdout_contains(&expected);
    let id = p.state_json()["project_id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert!(!own_cgroup(&mount).join(format!("procs-{id}")).exists());
    assert_eq!(tree_of(&m).len(), 2, "the main and its daemon run");
    if kill {
        wait_until("the supervisor to record the daemon", WAIT, || {
            let state =
                std::fs::read_to_string(p.state_dir().join("state.json")).unwrap_or_default();
            tree_of(&m).iter().all(|pid| is_known(&state, *pid))
        });
        kill_supervisor(&p);
    }
    p.procs(["down"]).success();
    assert_nothing_left(&m);
    p.assert_no_survivors();
}

#[test]
fn a_read_only_cgroup_mount_selects_lineage_and_says_why() {
    read_only_mount(false);
}

#[test]
fn a_read_only_cgroup_mount_selects_lineage_and_says_why_after_a_supervisor_sigkill() {
    read_only_mount(true);
}

// (b) A cgroup that cannot be removed.

/// A program that divides its own cgroup: its daemon (double-forked, environment cleared)
/// moves itself into `inner/` below the process's leaf.
fn divides_its_cgroup(kill: bool) {
    let Some(mount) = mount() else { return };
    let mut p = Project::new();
    let m = marker(6200);
    p.file(
        "divide.sh",
        &format!(
            "cg=$(grep -m1 ' - cgroup2 ' /proc/self/mountinfo | cut -d' ' -f5)$(sed -n 's/^0:://p' /proc/self/cgroup)\n\
             mkdir \"$cg/inner\" || exit 1\n\
             ( env -i setsid sh -c \"echo \\$\\$ > '$cg/inner/cgroup.procs' && exec sleep {m}\" & )\n\
             exec sleep 1{m}\n"
        ),
    );
    p.write_config("processes:\n  app:\n    command: sh divide.sh\n");
    let _reap = Reap::new(&m, &p);
    p.procs(["up"]).success();
    let project = project_cgroup(&p, &mount);
    let inner = project.join("app").join("inner");
    wait_until("the daemon to move into app/inner", WAIT, || {
        pids_in(&inner).len() == 1 && tree_of(&m).len() == 2
    });
    if kill {
        kill_supervisor(&p);
    }
    p.procs(["down"]).success();
    assert_nothing_left(&m);
    assert!(
        !project.exists(),
        "the project cgroup and the cgroups below it are removed"
    );
    p.assert_no_survivors();
}

#[test]
fn a_program_that_divides_its_cgroup_is_stopped_whole_and_its_cgroups_removed() {
    divides_its_cgroup(false);
}

#[test]
fn a_program_that_divides_its_cgroup_is_stopped_whole_after_a_supervisor_sigkill() {
    divides_its_cgroup(true);
}

/// A stranger moved into the project cgroup itself (where procs never places a process):
/// never signalled; the cgroup cannot be removed, and `down` and `doctor` say so.
fn stranger_in_the_project_cgroup(kill: bool) {
    let Some(mount) = mount() else { return };
    let mut p = Project::new();
    let m = marker(6300);
    p.write_config(&format!("processes:\n  app:\n    command: sleep {m}\n"));
    let _reap = Reap::new(&m, &p);
    p.procs(["up"]).success();
    let project = project_cgroup(&p, &mount);
    let stranger = Stranger::start(&marker(6350));
    move_into(&project, stranger.pid());
    if kill {
        kill_supervisor(&p);
    }
    let down = p.procs(["down"]).success();
    assert!(
        down.stderr.contains(&format!(
            "warning: cannot remove the cgroup {}",
            project.display()
        )) && down
            .stderr
            .contains(&format!("caused by: it holds {} (sleep ", stranger.pid()))
            && down.stderr.contains("which procs did not put there")
            && down
                .stderr
                .contains("hint: procs never signals a process it did not start"),
        "{}",
        down.stderr
    );
    assert_nothing_left(&m);
    assert!(pid_alive(stranger.pid()), "the stranger was not signalled");
    let doctor = p.procs(["doctor"]).code(1);
    assert!(
        doctor.stdout.contains(&format!(
            "problem: cannot remove the cgroup {}: it holds {} (sleep",
            project.display(),
            stranger.pid()
        )),
        "{}",
        doctor.stdout
    );
    p.procs(["doctor", "--fix"]).code(1);
    assert!(
        pid_alive(stranger.pid()),
        "`--fix` does not signal it either"
    );
    // Moved out, the cgroup is an empty one of this project: `--fix` removes it.
    move_into(&own_cgroup(&mount), stranger.pid());
    p.procs(["doctor", "--fix"])
        .success()
        .stdout_contains("fixed: removed");
    assert!(!project.exists());
    assert!(pid_alive(stranger.pid()));
    p.assert_no_survivors();
}

#[test]
fn a_stranger_in_the_project_cgroup_is_named_never_signalled() {
    stranger_in_the_project_cgroup(false);
}

#[test]
fn a_stranger_in_the_project_cgroup_is_named_never_signalled_after_a_supervisor_sigkill() {
    stranger_in_the_project_cgroup(true);
}

/// A process moved into a process's leaf is that process's member (only root or the
/// project's user can put it there): it is stopped with it, and the cgroup goes.
#[test]
fn a_process_moved_into_a_leaf_is_a_member_and_stopped_with_it() {
    let Some(mount) = mount() else { return };
    let mut p = Project::new();
    let m = marker(6400);
    p.write_config(&format!("processes:\n  app:\n    command: sleep {m}\n"));
    let _reap = Reap::new(&m, &p);
    p.procs(["up"]).success();
    let project = project_cgroup(&p, &mount);
    let moved = Stranger::start(&m);
    move_into(&project.join("app"), moved.pid());
    kill_supervisor(&p);
    p.procs(["down"]).success();
    wait_until("the moved process to be gone", WAIT, || {
        !pid_alive(moved.pid())
    });
    assert!(!project.exists());
    p.assert_no_survivors();
}

// (c) A cgroup of a dead project left behind.

#[test]
fn a_cgroup_left_with_a_lost_registry_is_named_and_cleaned_by_doctor_fix() {
    let Some(mount) = mount() else { return };
    let mut p = Project::new();
    let m = marker(6500);
    p.write_config(&escaping_daemon(&m));
    let _reap = Reap::new(&m, &p);
    p.procs(["up"]).success();
    let project = project_cgroup(&p, &mount);
    wait_until("the daemon to run", WAIT, || tree_of(&m).len() == 2);
    kill_supervisor(&p);
    std::fs::remove_file(p.state_dir().join("state.json")).expect("rm state.json");
    let doctor = p.procs(["doctor"]).code(1);
    let daemon = tree_of(&m)
        .into_iter()
        .find(|pid| crate::harness::pid_cmdline(*pid) == format!("sleep {m}"))
        .expect("the daemon");
    assert!(
        doctor
            .stdout
            .contains("problem: processes of `app` that procs does not supervise:")
            && doctor.stdout.contains(&format!("{daemon} (sleep {m})")),
        "{}",
        doctor.stdout
    );
    p.procs(["doctor", "--fix"])
        .success()
        .stdout_contains("fixed: stopped");
    assert_nothing_left(&m);
    assert!(!project.exists(), "the emptied cgroup is removed");
    p.assert_no_survivors();
}

#[test]
fn an_empty_cgroup_left_behind_is_named_and_removed_by_doctor_fix() {
    let Some(mount) = mount() else { return };
    let mut p = Project::new();
    let m = marker(6600);
    p.write_config(&format!("processes:\n  app:\n    command: sleep {m}\n"));
    let _reap = Reap::new(&m, &p);
    p.procs(["up"]).success();
    let project = project_cgroup(&p, &mount);
    kill_supervisor(&p);
    std::fs::remove_file(p.state_dir().join("state.json")).expect("rm state.json");
    std::fs::write(project.join("app").join("cgroup.kill"), "1").expect("cgroup.kill");
    wait_until("the cgroup to empty", WAIT, || tree_of(&m).is_empty());
    let doctor = p.procs(["doctor"]).code(1);
    let expected = format!(
        "problem: the cgroup {} of the project in {} is left behind (no supervisor runs for it): it is empty",
        project.display(),
        p.path().display()
    );
    assert!(doctor.stdout.contains(&expected), "{}", doctor.stdout);
    assert!(
        doctor
            .stdout
            .contains("hint: `procs doctor --fix` stops what is in it and removes it"),
        "{}",
        doctor.stdout
    );
    p.procs(["doctor", "--fix"])
        .success()
        .stdout_contains("fixed: removed");
    assert!(!project.exists());
    p.assert_no_survivors();
}

/// Puts a project directory back where it was when dropped (even when the test fails).
struct Moved(PathBuf, PathBuf);

impl Drop for Moved {
    fn drop(&mut self) {
        let _ = std::fs::rename(&self.1, &self.0);
    }
}

#[test]
fn a_dead_projects_cgroup_is_named_elsewhere_and_never_touched() {
    let Some(mount) = mount() else { return };
    let mut dead = Project::new();
    let m = marker(6700);
    dead.write_config(&escaping_daemon(&m));
    let _reap = Reap::new(&m, &dead);
    dead.procs(["up"]).success();
    let cgroup = project_cgroup(&dead, &mount);
    wait_until("the daemon to run", WAIT, || tree_of(&m).len() == 2);
    kill_supervisor(&dead);
    let running = tree_of(&m);
    // Its directory is gone (moved away): only another project's doctor can see it, through
    // the project index the dead project's supervisor wrote.
    let dir = dead.path().to_path_buf();
    let away = PathBuf::from(format!("{}.gone", dir.display()));
    std::fs::rename(&dir, &away).expect("move the project dir away");
    let moved = Moved(dir.clone(), away.clone());
    let other = Project::new().config("processes:\n  x:\n    command: sleep 1\n");
    let index = away.join("xdg-state");
    let index = index.to_str().expect("utf-8");
    let env = [("XDG_STATE_HOME", index)];
    let doctor = other.procs_env(["doctor"], &env).success();
    let expected = format!(
        "note: the cgroup {} of the project in {} (directory gone) is left behind (no supervisor runs for it): it holds",
        cgroup.display(),
        dir.display()
    );
    assert!(
        doctor.stdout.contains(&expected)
            && running
                .iter()
                .all(|pid| doctor.stdout.contains(&format!("{pid} (sleep"))),
        "{}",
        doctor.stdout
    );
    assert!(
        doctor.stdout.contains("no problems found"),
        "{}",
        doctor.stdout
    );
    other.procs_env(["doctor", "--fix"], &env).success();
    assert_eq!(
        tree_of(&m),
        running,
        "another project's --fix touches nothing"
    );
    drop(moved);
    dead.procs(["down"]).success();
    assert_nothing_left(&m);
    assert!(!cgroup.exists());
    dead.assert_no_survivors();
}

// (d) A registry naming a cgroup that no longer exists, or one that is not the project's.

#[test]
fn a_registry_naming_a_vanished_cgroup_warns_and_signals_no_stranger() {
    let Some(mount) = mount() else { return };
    let mut p = Project::new();
    let m = marker(6800);
    p.write_config(&format!("processes:\n  app:\n    command: sleep {m}\n"));
    let _reap = Reap::new(&m, &p);
    p.procs(["up"]).success();
    let project = project_cgroup(&p, &mount);
    kill_supervisor(&p);
    // The cgroup goes (an administrator, a reboot of the cgroup tree) with its processes.
    std::fs::write(project.join("app").join("cgroup.kill"), "1").expect("cgroup.kill");
    wait_until("the cgroup to empty", WAIT, || tree_of(&m).is_empty());
    wait_until("the cgroups to be removed", WAIT, || {
        let _ = std::fs::remove_dir(project.join("app"));
        std::fs::remove_dir(&project).is_ok()
    });
    // Its pid is reused by a stranger, which the registry now names, as a main and as a
    // recorded member (with the start time of the process that had the pid).
    let stranger = Stranger::start(&marker(6850));
    let pid = stranger.pid();
    edit_state(&p, |state| {
        state["processes"]["app"]["pid"] = pid.into();
        state["processes"]["app"]["pgid"] = pid.into();
        let start = state["processes"]["app"]["start_time"].clone();
        state["lineage"] = serde_json::json!({ "app": [{ "pid": pid, "start_time": start }] });
        state["lineage_boot_id"] = state["supervisor"]["boot_id"].clone();
    });
    let gone = format!(
        "the registry names the cgroup {}, which no longer exists",
        project.display()
    );
    let doctor = p.procs(["doctor"]).code(1);
    assert!(
        doctor.stdout.contains(&format!("problem: {gone}"))
            && doctor
                .stdout
                .contains("hint: finding this project's processes by ancestry and tags instead"),
        "{}",
        doctor.stdout
    );
    assert!(
        doctor
            .stdout
            .contains(&format!("membership: no writable cgroup ({gone})")),
        "{}",
        doctor.stdout
    );
    let down = p.procs(["down"]).success();
    assert!(
        down.stderr.contains(&format!("warning: {gone}"))
            && down
                .stderr
                .contains("hint: finding this project's processes by ancestry and tags instead"),
        "{}",
        down.stderr
    );
    assert!(pid_alive(pid), "the stranger the registry named survives");
    p.procs(["doctor"])
        .success()
        .stdout_contains("no problems found");
    assert!(pid_alive(pid));
    p.assert_no_survivors();
}

#[test]
fn a_registry_naming_a_cgroup_not_its_own_is_ignored_and_its_processes_survive() {
    let Some(mount) = mount() else { return };
    let mut p = Project::new();
    let m = marker(6900);
    p.write_config(&escaping_daemon(&m));
    let _reap = Reap::new(&m, &p);
    p.procs(["up"]).success();
    wait_until("the daemon to run", WAIT, || tree_of(&m).len() == 2);
    kill_supervisor(&p);
    // A cgroup that is not a `procs-<id>`, shaped like one (a leaf named like the process),
    // holding a stranger.
    let foreign = own_cgroup(&mount).join(format!("stranger-{}", marker(6950)));
    let leaf = foreign.join("app");
    std::fs::create_dir_all(&leaf).expect("mkdir the stranger's cgroup");
    let stranger = Stranger::start(&marker(6960));
    move_into(&leaf, stranger.pid());
    edit_state(&p, |state| {
        state["cgroup"] = foreign.display().to_string().into();
    });
    let down = p.procs(["down"]).success();
    assert!(
        down.stderr.contains(&format!(
            "warning: the registry names {} as this project's cgroup, which it is not: ignored",
            foreign.display()
        )),
        "{}",
        down.stderr
    );
    assert!(
        pid_alive(stranger.pid()),
        "the stranger's cgroup was not touched"
    );
    assert!(leaf.exists());
    // The project's own cgroup is still found where it is: nothing of it is left.
    assert_nothing_left(&m);
    drop(stranger);
    wait_until("the stranger's cgroup to empty", WAIT, || {
        pids_in(&leaf).is_empty()
    });
    let _ = std::fs::remove_dir(&leaf);
    let _ = std::fs::remove_dir(&foreign);
    p.assert_no_survivors();
}
