//! Containment with real programs: whatever a daemon does to itself (daemonize, rewrite its
//! title and so its environment, `setsid` with a cleared environment, close every fd, run as
//! another user), `procs down` leaves nothing — with and without a supervisor SIGKILL before
//! it, and under both membership mechanisms: the cgroup (CI runs as root) and lineage
//! (`PROCS_NO_CGROUP=1`).
//!
//! The programs are found by this test independently of procs (by a marker in their command
//! line — the project directory, a port, a unique `sleep` length — and their descendants),
//! since the harness's tag check cannot see a daemon that rewrote its environment.

use std::path::Path;
use std::time::Duration;

use crate::harness::{Project, free_port, pid_alive, pid_cmdline, wait_until};

const WAIT: Duration = Duration::from_secs(20);

/// A program a test needs: in CI a missing one fails the test; elsewhere the test is skipped
/// with a note.
pub(crate) fn need(program: &str) -> Option<String> {
    let found = ["/usr/sbin", "/usr/bin", "/bin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .chain(
            std::fs::read_dir("/usr/lib/postgresql")
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path().join("bin").join(program)),
        )
        .find(|p| p.is_file())
        .map(|p| p.display().to_string());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "`{program}` is missing (.ci/run installs it)"
        );
        eprintln!("note: `{program}` is not installed; skipping");
    }
    found
}

/// Every live process whose command line contains `marker`, and their live descendants.
pub(crate) fn tree_of(marker: &str) -> Vec<i32> {
    let mut table: Vec<(i32, i32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok())
            .unwrap_or(0);
        table.push((pid, parent));
    }
    let me = std::process::id() as i32;
    let mut found: Vec<i32> = table
        .iter()
        .map(|&(pid, _)| pid)
        .filter(|&pid| pid != me && pid_cmdline(pid).contains(marker))
        .collect();
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        for &(child, of) in &table {
            if of == parent && !found.contains(&child) {
                found.push(child);
            }
        }
        i += 1;
    }
    found.retain(|&pid| pid_alive(pid));
    found.sort_unstable();
    found
}

/// SIGKILLs whatever of a marker's tree is left when the test ends, passed or not; a failed
/// test first prints the project's logs (the supervisor's and each process's), which the
/// temporary directory takes with it.
pub(crate) struct Reap(String, std::path::PathBuf);

impl Reap {
    pub(crate) fn new(marker: &str, p: &Project) -> Self {
        Self(marker.to_owned(), p.state_dir().join("logs"))
    }
}

impl Drop for Reap {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for entry in std::fs::read_dir(&self.1).into_iter().flatten().flatten() {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                eprintln!("--- {} ---\n{text}", entry.path().display());
            }
            eprintln!(
                "--- left: {:?}",
                tree_of(&self.0)
                    .iter()
                    .map(|p| format!("{p} {}", pid_cmdline(*p)))
                    .collect::<Vec<_>>()
            );
        }
        for pid in tree_of(&self.0) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mechanism {
    Cgroup,
    Lineage,
}

impl Mechanism {
    pub(crate) fn env(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Self::Cgroup => vec![],
            Self::Lineage => vec![("PROCS_NO_CGROUP", "1")],
        }
    }
}

/// Bring `p` up, check that `marker` finds the programs, optionally SIGKILL the supervisor,
/// then `down` and check that nothing of them is left.
fn up_then_down(p: &mut Project, mech: Mechanism, marker: &str, kill_supervisor: bool) {
    let env = mech.env();
    p.procs_env(["up"], &env).success();
    let doctor = p.procs_env(["doctor"], &env);
    let expected = match mech {
        Mechanism::Cgroup => "membership: cgroup v2 at",
        Mechanism::Lineage => "membership: no writable cgroup (PROCS_NO_CGROUP is set)",
    };
    assert!(doctor.stdout.contains(expected), "{}", doctor.stdout);
    let pids = tree_of(marker);
    assert!(!pids.is_empty(), "`{marker}` runs after up");
    if kill_supervisor {
        if mech == Mechanism::Lineage {
            // Without a cgroup, what survives a supervisor SIGKILL is what it recorded.
            wait_until("the supervisor to record the daemons", WAIT, || {
                let state =
                    std::fs::read_to_string(p.state_dir().join("state.json")).unwrap_or_default();
                let sup = p.state_json()["supervisor"]["pid"].as_i64();
                tree_of(marker)
                    .iter()
                    .filter(|pid| Some(i64::from(**pid)) != sup)
                    .all(|pid| is_known(&state, *pid))
            });
        }
        let state = p.state_json();
        let sup = state["supervisor"]["pid"].as_i64().expect("supervisor pid") as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(sup),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("SIGKILL the supervisor");
        wait_until("the supervisor to die", WAIT, || !pid_alive(sup));
    }
    p.procs_env(["down"], &env).success();
    let left = tree_of(marker);
    assert!(
        left.is_empty(),
        "left after down: {:?}",
        left.iter()
            .map(|p| format!("{p} {}", pid_cmdline(*p)))
            .collect::<Vec<_>>()
    );
    p.assert_no_survivors();
}

/// Is `pid` a recorded member (lineage) or a verified main pid in the registry text?
pub(crate) fn is_known(state: &str, pid: i32) -> bool {
    let json: serde_json::Value = serde_json::from_str(state).unwrap_or_default();
    let in_lineage = json["lineage"].as_object().is_some_and(|l| {
        l.values()
            .flat_map(|v| v.as_array().cloned().unwrap_or_default())
            .any(|r| r["pid"].as_i64() == Some(i64::from(pid)))
    });
    let main = json["processes"].as_object().is_some_and(|ps| {
        ps.values()
            .any(|r| r["pid"].as_i64() == Some(i64::from(pid)))
    });
    // Descendants of a recorded member are found through it.
    let parent_known = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().nth(1)?.parse::<i32>().ok())
        })
        .is_some_and(|parent| {
            parent != 1
                && parent != pid
                && json["supervisor"]["pid"].as_i64() != Some(i64::from(parent))
                && is_known(state, parent)
        });
    in_lineage || main || parent_known
}

/// nginx daemonizing (`daemon: true`, its pid file) on `port`, in `p`'s directory.
pub(crate) fn write_nginx(p: &Project, nginx: &str, port: u16) {
    let dir = p.path().display().to_string();
    p.file(
        "nginx.conf",
        &format!(
            "worker_processes 2;\npid nginx.pid;\nerror_log stderr;\nevents {{ worker_connections 64; }}\n\
             http {{ access_log off; client_body_temp_path tmp; proxy_temp_path tmp; \
             fastcgi_temp_path tmp; uwsgi_temp_path tmp; scgi_temp_path tmp;\n\
             server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"ok\\n\"; }} }} }}\n"
        ),
    );
    std::fs::create_dir_all(p.path().join("tmp")).expect("mkdir tmp");
    p.write_config(&format!(
        "processes:\n  web:\n    command: {nginx} -p {dir} -c nginx.conf\n    daemon: true\n    pid_file: nginx.pid\n    ports: [{port}]\n"
    ));
}

fn nginx(mech: Mechanism, kill: bool) {
    let Some(nginx) = need("nginx") else { return };
    let port = free_port();
    let mut p = Project::new();
    let dir = p.path().display().to_string();
    write_nginx(&p, &nginx, port);
    let _reap = Reap::new(&dir, &p);
    let env = mech.env();
    if !kill {
        p.procs_env(["up"], &env).success();
        // Healthy through its port, and its workers (which rewrote their titles) are its own.
        let ports = p.procs_env(["ports", "--json"], &env).success().json();
        let holders = ports["ports"][0]["holders"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            holders.len() >= 3,
            "master and 2 workers hold the port: {ports}"
        );
        assert!(
            holders.iter().all(|h| h["owner"] == "own"),
            "nginx's own workers are never foreign: {ports}"
        );
        let status = p.procs_env(["status", "--json"], &env).success().json();
        let web = &status["processes"][0];
        assert_eq!(web["state"], "healthy", "{status}");
        let master: i32 = std::fs::read_to_string(p.path().join("nginx.pid"))
            .expect("nginx.pid")
            .trim()
            .parse()
            .expect("a pid");
        assert_eq!(
            web["pid"].as_i64(),
            Some(i64::from(master)),
            "the daemon's pid: {status}"
        );
        assert!(
            web["processes"].as_u64() >= Some(3),
            "whole tree counted: {status}"
        );
        p.procs_env(["doctor"], &env)
            .success()
            .stdout_contains("no problems found");
    }
    up_then_down(&mut p, mech, &dir, kill);
}

fn redis(mech: Mechanism, kill: bool) {
    let Some(redis) = need("redis-server") else {
        return;
    };
    let port = free_port();
    let mut p = Project::new();
    let dir = p.path().display().to_string();
    p.write_config(&format!(
        "processes:\n  cache:\n    command: {redis} --port {port} --bind 127.0.0.1 --daemonize yes --save '' --dir {dir}\n    oneshot: true\n"
    ));
    let marker = format!(":{port}");
    let _reap = Reap::new(&marker, &p);
    up_then_down(&mut p, mech, &marker, kill);
}

fn env_i_setsid(mech: Mechanism, kill: bool) {
    let mut p = Project::new();
    let marker = format!("{}.{}", 3000 + std::process::id() % 1000, free_port());
    p.write_config(&format!(
        "processes:\n  app:\n    command: \"env -i setsid sh -c 'sleep {marker} & exit 0'; exec sleep 1{marker}\"\n"
    ));
    let _reap = Reap::new(&marker, &p);
    up_then_down(&mut p, mech, &marker, kill);
}

fn closes_every_fd(mech: Mechanism, kill: bool) {
    let mut p = Project::new();
    let marker = format!("{}.{}", 4000 + std::process::id() % 1000, free_port());
    p.write_config(&format!(
        "processes:\n  quiet:\n    command: \"exec 0<&- 1>&- 2>&-; setsid sleep {marker} & exec sleep 1{marker}\"\n"
    ));
    let _reap = Reap::new(&marker, &p);
    up_then_down(&mut p, mech, &marker, kill);
}

fn postgres(mech: Mechanism, kill: bool) {
    let (Some(pg_ctl), Some(initdb)) = (need("pg_ctl"), need("initdb")) else {
        return;
    };
    let port = free_port();
    let mut p = Project::new();
    let dir = p.path().display().to_string();
    // postgres refuses to run as root: its data directory belongs to the `postgres` user.
    std::fs::set_permissions(
        p.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod the project dir");
    let data = p.path().join("pg");
    std::fs::create_dir(&data).expect("mkdir pg");
    let chown = std::process::Command::new("chown")
        .args(["postgres:postgres", &data.display().to_string()])
        .status()
        .expect("chown");
    assert!(chown.success());
    let as_pg = [
        "setpriv",
        "--reuid=postgres",
        "--regid=postgres",
        "--clear-groups",
    ];
    let init = std::process::Command::new(as_pg[0])
        .args(&as_pg[1..])
        .args([
            initdb.as_str(),
            "-D",
            &data.display().to_string(),
            "-A",
            "trust",
        ])
        .stdout(std::process::Stdio::null())
        .output()
        .expect("initdb");
    assert!(
        init.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    p.write_config(&format!(
        "processes:\n  db:\n    command: [setpriv, --reuid=postgres, --regid=postgres, --clear-groups, {pg_ctl}, -D, {dir}/pg, -w, -o, \"-p {port} -k {dir}/pg -c listen_addresses=127.0.0.1\", start]\n    daemon: true\n    pid_file: pg/postmaster.pid\n    ports: [{port}]\n    stop_signal: SIGINT\n"
    ));
    let marker = format!("{dir}/pg");
    let _reap = Reap::new(&marker, &p);
    up_then_down(&mut p, mech, &marker, kill);
}

/// `daemon: true` with a `pid_file` the daemon writes only after the main process exited,
/// over a stale one that names a stranger: the stranger is never taken for the daemon, the
/// supervisor waits for the file to name a member (inotify, no polling), and `up` returns
/// only once the daemon is known — its pid, not the main's, and `running`.
fn late_pid_file(mech: Mechanism, kill: bool) {
    let mut p = Project::new();
    let marker = format!("{}.{}", 5000 + std::process::id() % 1000, free_port());
    // Killed when dropped, so a failing test leaves no stranger; its output goes nowhere,
    // so it never holds the test runner's pipe open.
    let mut stranger = crate::harness::KillOnDrop(
        std::process::Command::new("sleep")
            .arg(format!("2{marker}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn a stranger"),
    );
    p.file("app.pid", &format!("{}\n", stranger.id()));
    p.write_config(&format!(
        "processes:\n  app:\n    command: \"setsid sh -c 'sleep 0.3; echo $$$$ > app.pid.new; mv app.pid.new app.pid; exec sleep {marker}' & exit 0\"\n    daemon: true\n    pid_file: app.pid\n"
    ));
    let _reap = Reap::new(&format!(" {marker}"), &p);
    let env = mech.env();
    p.procs_env(["up"], &env).success();
    let status = p.procs_env(["status", "--json"], &env).success().json();
    let app = &status["processes"][0];
    let daemon: i64 = std::fs::read_to_string(p.path().join("app.pid"))
        .expect("app.pid")
        .trim()
        .parse()
        .expect("a pid");
    assert_ne!(
        daemon,
        i64::from(stranger.id()),
        "the daemon rewrote app.pid"
    );
    assert_eq!(
        app["state"], "running",
        "ready once its daemon is known: {status}"
    );
    assert_eq!(
        app["pid"].as_i64(),
        Some(daemon),
        "the daemon's pid: {status}"
    );
    assert!(
        pid_cmdline(daemon as i32).contains(&marker),
        "pid {daemon} is the daemon"
    );
    up_then_down(&mut p, mech, &format!(" {marker}"), kill);
    assert!(
        stranger.try_wait().expect("try_wait").is_none(),
        "the stranger the stale pid file named is never signalled"
    );
    let _ = stranger.kill();
    let _ = stranger.wait();
}

macro_rules! both_mechanisms {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                use super::Mechanism;
                #[test]
                fn cgroup() {
                    super::$scenario(Mechanism::Cgroup, false);
                }
                #[test]
                fn cgroup_after_a_supervisor_sigkill() {
                    super::$scenario(Mechanism::Cgroup, true);
                }
                #[test]
                fn lineage() {
                    super::$scenario(Mechanism::Lineage, false);
                }
                #[test]
                fn lineage_after_a_supervisor_sigkill() {
                    super::$scenario(Mechanism::Lineage, true);
                }
            }
        )*
    };
}

both_mechanisms!(
    nginx,
    redis,
    env_i_setsid,
    closes_every_fd,
    postgres,
    late_pid_file
);

/// Without a cgroup, an escape (a double fork with a cleared environment: after a
/// supervisor SIGKILL only the record finds it) is recorded on the event that follows it —
/// here a health transition, there the exit of a oneshot that leaves its daemon — and not on
/// a timer: the slow scan is set to an hour.
fn recorded_on_an_event(config: impl Fn(&str) -> String) {
    let mut p = Project::new();
    let marker = format!("{}.{}", 5500 + std::process::id() % 1000, free_port());
    p.write_config(&config(&marker));
    let _reap = Reap::new(&marker, &p);
    let env = [
        ("PROCS_NO_CGROUP", "1"),
        ("PROCS_TEST_LINEAGE_SCAN_MS", "3600000"),
    ];
    p.procs_env(["up"], &env).success();
    let escaped = format!("sleep {marker}");
    wait_until(
        "the supervisor to record the escaped daemon (no periodic scan within the hour)",
        WAIT,
        || {
            let state =
                std::fs::read_to_string(p.state_dir().join("state.json")).unwrap_or_default();
            let daemon: Vec<i32> = tree_of(&marker)
                .into_iter()
                .filter(|pid| pid_cmdline(*pid) == escaped)
                .collect();
            daemon.len() == 1 && is_known(&state, daemon[0])
        },
    );
    let sup = p.state_json()["supervisor"]["pid"]
        .as_i64()
        .expect("supervisor pid") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL the supervisor");
    wait_until("the supervisor to die", WAIT, || !pid_alive(sup));
    p.procs_env(["down"], &env).success();
    let left = tree_of(&marker);
    assert!(left.is_empty(), "left after down: {left:?}");
    p.assert_no_survivors();
}

#[test]
fn lineage_is_recorded_at_a_health_transition_not_on_a_timer() {
    recorded_on_an_event(|m| {
        format!(
            "processes:\n  app:\n    command: \"env -i setsid sh -c 'sleep {m} & exit 0'; echo ready; exec sleep 1{m}\"\n    healthcheck: {{ log: ready }}\n"
        )
    });
}

#[test]
fn lineage_is_recorded_at_an_exit_not_on_a_timer() {
    recorded_on_an_event(|m| {
        format!(
            "processes:\n  setup:\n    command: \"env -i setsid sh -c 'sleep {m} & exit 0'; exit 0\"\n    oneshot: true\n"
        )
    });
}

/// The program, not the wrapper: a string command that is one simple command is exec'd (the
/// pid `status` shows runs the program, one process), and a compound one counts its whole
/// tree — under both mechanisms.
#[test]
fn status_shows_the_program_and_counts_the_whole_tree() {
    for mech in [Mechanism::Cgroup, Mechanism::Lineage] {
        let mut p = Project::new();
        let m = format!("{}.{}", 5700 + std::process::id() % 1000, free_port());
        p.write_config(&format!(
            "processes:\n  one:\n    command: sleep 3{m}\n  tree:\n    command: \"sleep 4{m} & exec sleep 5{m}\"\n"
        ));
        let _reap = Reap::new(&m, &p);
        let env = mech.env();
        p.procs_env(["up"], &env).success();
        let status = p.procs_env(["status", "--json"], &env).success().json();
        let of = |name: &str| {
            status["processes"]
                .as_array()
                .and_then(|ps| ps.iter().find(|r| r["name"] == name).cloned())
                .unwrap_or_else(|| panic!("`{name}` in {status}"))
        };
        let one = of("one");
        let pid = one["pid"].as_i64().expect("a pid") as i32;
        assert_eq!(pid_cmdline(pid), format!("sleep 3{m}"), "{mech:?}: {one}");
        assert_eq!(one["processes"], 1, "{mech:?}: no shell in between: {one}");
        let tree = of("tree");
        let pid = tree["pid"].as_i64().expect("a pid") as i32;
        assert_eq!(pid_cmdline(pid), format!("sleep 5{m}"), "{mech:?}: {tree}");
        assert_eq!(tree["processes"], 2, "{mech:?}: the whole tree: {tree}");
        assert!(
            tree["memory_bytes"].as_u64() > one["memory_bytes"].as_u64(),
            "{mech:?}: two processes' memory: {status}"
        );
        p.procs_env(["down"], &env).success();
        assert!(tree_of(&m).is_empty(), "{mech:?}: left: {:?}", tree_of(&m));
        p.assert_no_survivors();
    }
}

/// A self-daemonizing command under `restart: always` leaves a copy at every exit: each is
/// stopped with the run that left it (never two at once), and `down` leaves none — under
/// both mechanisms.
#[test]
fn a_self_daemonizing_command_under_restart_always_never_accumulates_copies() {
    for mech in [Mechanism::Cgroup, Mechanism::Lineage] {
        let mut p = Project::new();
        let m = format!("{}.{}", 5800 + std::process::id() % 1000, free_port());
        p.write_config(&format!(
            "processes:\n  app:\n    command: \"setsid sleep 6{m} & exit 1\"\n    restart: always\n"
        ));
        let _reap = Reap::new(&m, &p);
        let env = mech.env();
        let _ = p.procs_env(["up"], &env);
        let copy = format!("sleep 6{m}");
        let mut most = 0;
        wait_until("3 restarts of `app`", WAIT, || {
            let copies = tree_of(&m)
                .into_iter()
                .filter(|pid| pid_cmdline(*pid) == copy)
                .count();
            most = most.max(copies);
            let status = p.procs_env(["status", "--json"], &env).json();
            status["processes"][0]["restarts"].as_u64() >= Some(3)
        });
        assert!(most <= 1, "{mech:?}: {most} copies at once");
        p.procs_env(["down"], &env).success();
        let left = tree_of(&m);
        assert!(left.is_empty(), "{mech:?}: left after down: {left:?}");
        p.assert_no_survivors();
    }
}
