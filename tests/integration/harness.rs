//! The integration-test harness: one temporary project per test, the real `procs` binary, the
//! `procs-testd` fixture daemon, and a leak check that fails the test when any process it
//! started survives.
//!
//! ```ignore
//! let port = free_port();
//! let p = Project::new().config(&format!("processes:\n  web:\n    command: [\"{{testd}}\", --listen, \"{port}\"]\n"));
//! p.procs(["up"]).success();
//! p.procs(["down"]).success();
//! p.assert_no_survivors();
//! ```
//!
//! Invariants:
//! - Every command the harness runs gets `PROCS_TEST_TAG=<random>` in its environment. Every
//!   descendant inherits it (the supervisor, the children, `setsid` grandchildren), so
//!   [`Project::tagged_pids`] finds all of them without trusting procs' own bookkeeping. The
//!   scan reads `/proc` itself instead of using `procs_compose::platform`: the checker must not
//!   share bugs with the code under test.
//! - State stays inside the temp dir: the project dir holds `.procs/`, and `XDG_STATE_HOME` /
//!   `XDG_RUNTIME_DIR` point inside it. Paths are short (`/tmp/pXXXXXX`) because Unix socket
//!   paths are limited to 108 bytes.
//! - No fixed sleeps: wait with [`wait_until`], whose failure message names the deadline.
//! - Dropping a [`Project`] runs `procs down`, waits for the tagged processes to go, SIGKILLs
//!   the survivors and fails the test naming them: a leaked process is a failing test.

#![allow(
    dead_code,
    reason = "shared by every test file; each file uses only some helpers"
)]

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use std::{fs, thread};

/// How long one `procs` invocation may run before the test fails.
pub const COMMAND_DEADLINE: Duration = Duration::from_mins(1);
/// How long processes get to disappear after `procs down` before they count as leaked.
pub const TEARDOWN_GRACE: Duration = Duration::from_secs(10);
/// The environment variable that marks every process a test started.
pub const TAG_VAR: &str = "PROCS_TEST_TAG";

/// Absolute path of the fixture daemon.
pub fn testd_bin() -> &'static str {
    env!("CARGO_BIN_EXE_procs-testd")
}

/// Absolute path of the `procs` binary, if this build has one.
pub fn procs_bin_opt() -> Option<&'static str> {
    option_env!("CARGO_BIN_EXE_procs")
}

/// Absolute path of the `procs` binary; panics with a clear message if it is not built.
pub fn procs_bin() -> &'static str {
    procs_bin_opt().expect(
        "the `procs` binary is not part of this build (no [[bin]] named `procs` in Cargo.toml), \
         so this test cannot run procs",
    )
}

/// A TCP port that was free a moment ago (bound on 127.0.0.1:0, then released), and never
/// handed out before in this test run: the kernel may give a released port again at once, and
/// two tests (or two ports of one test) must never share one.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0 to find a free port")
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Poll `cond` every few milliseconds until it holds; panic once `deadline` has passed.
#[track_caller]
pub fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    let mut step = Duration::from_millis(2);
    loop {
        if cond() {
            return;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        thread::sleep(step);
        step = (step * 2).min(Duration::from_millis(50));
    }
}

/// `/proc/PID/stat` state letter, `None` if the process does not exist.
fn proc_state(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// True if `pid` exists and is not a zombie — counting its threads: after a SIGKILL the
/// leader of a multi-threaded process (the supervisor) shows `Z` while its other threads
/// are still exiting and still hold its descriptors (its sockets answer, its locks are
/// held), so the process is gone only once no other thread is listed.
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    let leader = proc_state(pid);
    if leader.is_some_and(|s| !matches!(s, 'Z' | 'X')) {
        return true;
    }
    leader.is_some()
        && fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|t| t.file_name().to_str() != Some(pid.to_string().as_str()))
}

/// The command line of `pid`, arguments joined by spaces (empty if unreadable).
pub fn pid_cmdline(pid: i32) -> String {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    args.join(" ")
}

/// The result of one command, with chaining assertions that print everything on failure.
#[derive(Debug)]
pub struct Output {
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    fn context(&self) -> String {
        format!(
            "command: {}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.status, self.stdout, self.stderr
        )
    }

    /// The exit code (`None` if killed by a signal).
    pub fn exit_code(&self) -> Option<i32> {
        self.status.code()
    }

    #[track_caller]
    pub fn success(self) -> Self {
        assert!(
            self.status.success(),
            "expected success\n{}",
            self.context()
        );
        self
    }

    #[track_caller]
    pub fn failure(self) -> Self {
        assert!(
            !self.status.success(),
            "expected failure\n{}",
            self.context()
        );
        self
    }

    #[track_caller]
    pub fn code(self, code: i32) -> Self {
        assert_eq!(
            self.status.code(),
            Some(code),
            "expected exit code {code}\n{}",
            self.context()
        );
        self
    }

    #[track_caller]
    pub fn stdout_contains(self, needle: &str) -> Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}\n{}",
            self.context()
        );
        self
    }

    #[track_caller]
    pub fn stderr_contains(self, needle: &str) -> Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n{}",
            self.context()
        );
        self
    }

    #[track_caller]
    pub fn stdout_lacks(self, needle: &str) -> Self {
        assert!(
            !self.stdout.contains(needle),
            "stdout has {needle:?}\n{}",
            self.context()
        );
        self
    }

    /// stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON: {e}\n{}", self.context()))
    }
}

/// Read a pipe to the end on a thread; the result arrives on the returned channel.
fn drain(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

/// Run `cmd` to completion with a deadline, capturing its output. Past the deadline the
/// command is killed (`SIGKILL`) and the test fails. A descendant that keeps stdout or stderr open
/// after the command exited (a daemon that did not detach its output) also fails the test.
#[track_caller]
pub fn run(cmd: &mut Command, deadline: Duration) -> Output {
    let command = format!("{cmd:?}");
    let mut child: Child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {command}: {e}"));
    let stdout = drain(child.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.stderr.take().expect("stderr is piped"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the command") {
            break status;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let out = stdout
                .recv_timeout(Duration::from_secs(1))
                .unwrap_or_default();
            let err = stderr
                .recv_timeout(Duration::from_secs(1))
                .unwrap_or_default();
            panic!(
                "{command} did not finish within {deadline:?}; killed it\n--- stdout ---\n{out}\n\
                 --- stderr ---\n{err}"
            );
        }
        thread::sleep(Duration::from_millis(5));
    };
    let pipe_grace = Duration::from_secs(5);
    let collect = |rx: mpsc::Receiver<String>, name: &str| {
        rx.recv_timeout(pipe_grace).unwrap_or_else(|_| {
            panic!(
                "{command} exited ({status}) but its {name} stayed open for {pipe_grace:?}: \
                 a descendant kept the pipe (did the supervisor fail to detach?)"
            )
        })
    };
    let stdout = collect(stdout, "stdout");
    let stderr = collect(stderr, "stderr");
    Output {
        command,
        status,
        stdout,
        stderr,
    }
}

/// The unprivileged account the security tests run procs as (the victim of another user's
/// attack). `.ci/run` creates it; [`victim_user`] finds it.
pub const VICTIM_USER: &str = "procs-victim";

/// A local account: who a [`Project`] runs its commands as.
#[derive(Clone, Copy, Debug)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
}

impl User {
    /// `setpriv` arguments that run the command after them as this user.
    pub fn setpriv_args(self) -> [String; 4] {
        [
            format!("--reuid={}", self.uid),
            format!("--regid={}", self.gid),
            "--clear-groups".to_owned(),
            "--".to_owned(),
        ]
    }
}

/// The [`VICTIM_USER`] account from `/etc/passwd`, if it exists.
pub fn victim_user() -> Option<User> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != VICTIM_USER {
            return None;
        }
        let _password = fields.next()?;
        Some(User {
            uid: fields.next()?.parse().ok()?,
            gid: fields.next()?.parse().ok()?,
        })
    })
}

/// Can any user execute `path` (every ancestor searchable, the file executable by others)?
fn world_executable(path: &Path) -> bool {
    let mode = |p: &Path| fs::metadata(p).map_or(0, |m| m.permissions().mode());
    mode(path) & 0o001 != 0
        && path
            .ancestors()
            .skip(1)
            .all(|dir| dir.as_os_str().is_empty() || mode(dir) & 0o001 != 0)
}

/// One test's project: a temp dir holding `procs.yaml`, its `.procs/` state and XDG dirs.
pub struct Project {
    dir: tempfile::TempDir,
    tag: String,
    teardown_grace: Duration,
    teardown_done: bool,
    /// Who runs this project's commands: the test's own user when `None`.
    user: Option<User>,
    /// The `procs` and `procs-testd` binaries that user can execute.
    procs: PathBuf,
    testd: PathBuf,
}

impl Default for Project {
    fn default() -> Self {
        Self::new()
    }
}

impl Project {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("p")
            .tempdir_in("/tmp")
            .expect("create a temp project dir in /tmp");
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = dir
            .path()
            .file_name()
            .and_then(OsStr::to_str)
            .unwrap_or("p");
        let tag = format!("{name}-{}-{nanos:x}", std::process::id());
        for sub in ["xdg-state", "xdg-run"] {
            let path = dir.path().join(sub);
            fs::create_dir(&path).expect("create an XDG dir");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).expect("chmod 700");
        }
        Self {
            dir,
            tag,
            teardown_grace: TEARDOWN_GRACE,
            teardown_done: false,
            user: None,
            procs: PathBuf::from(procs_bin()),
            testd: PathBuf::from(testd_bin()),
        }
    }

    /// Run every command of this project as `user` (through `setpriv`; the test must run as
    /// root): the project directory becomes theirs, and the binaries are linked (or copied)
    /// into it when `user` cannot reach them where cargo built them.
    #[must_use]
    pub fn run_as(mut self, user: User) -> Self {
        chown_tree(self.path(), user);
        let bin_dir = self.path().join("bin");
        let reachable = |bin: &str| {
            let src = Path::new(bin);
            if world_executable(src) {
                return src.to_path_buf();
            }
            fs::create_dir_all(&bin_dir).expect("create the project's bin dir");
            let dst = bin_dir.join(src.file_name().expect("a binary has a file name"));
            if fs::hard_link(src, &dst).is_err() {
                fs::copy(src, &dst).expect("copy a binary for the project's user");
            }
            fs::set_permissions(&dst, fs::Permissions::from_mode(0o755))
                .expect("chmod 755 a binary");
            dst
        };
        self.procs = reachable(procs_bin());
        self.testd = reachable(testd_bin());
        self.user = Some(user);
        self
    }

    /// Who runs this project's commands (`None`: the test's own user).
    pub fn user(&self) -> Option<User> {
        self.user
    }

    /// How long teardown waits for processes to go before killing them (default
    /// [`TEARDOWN_GRACE`]); for tests of the harness itself.
    #[must_use]
    pub fn teardown_grace(mut self, grace: Duration) -> Self {
        self.teardown_grace = grace;
        self
    }

    /// The project directory (holds `procs.yaml`).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// This project's `PROCS_TEST_TAG` value.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Write `procs.yaml`; `{testd}` is replaced by the fixture daemon's absolute path.
    #[must_use]
    pub fn config(self, yaml: &str) -> Self {
        self.write_config(yaml);
        self
    }

    /// Rewrite `procs.yaml` (for reconciliation tests); `{testd}` as in [`Project::config`].
    pub fn write_config(&self, yaml: &str) {
        let testd = self.testd.to_str().expect("a UTF-8 path to procs-testd");
        self.file("procs.yaml", &yaml.replace("{testd}", testd));
    }

    /// Write a file relative to the project dir, creating parent directories.
    pub fn file(&self, rel: &str, contents: &str) {
        let path = self.path().join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent dirs");
        }
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        if let Some(user) = self.user {
            // The file and the directories created for it, up to the project dir.
            for p in path.ancestors().take_while(|p| p.starts_with(self.path())) {
                let _ = std::os::unix::fs::lchown(p, Some(user.uid), Some(user.gid));
            }
        }
    }

    /// The environment every command of this project runs with.
    fn apply_env<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        cmd.current_dir(self.path())
            .env(TAG_VAR, &self.tag)
            .env("XDG_STATE_HOME", self.path().join("xdg-state"))
            .env("XDG_RUNTIME_DIR", self.path().join("xdg-run"))
            .env("NO_COLOR", "1")
            .env_remove("PROCS_PROJECT_ID")
            .env_remove("PROCS_PROJECT")
            .env_remove("PROCS_PROCESS")
            .env_remove("PROCS_STATE_DIR")
    }

    /// A `Command` for any program, with this project's directory and environment, run as the
    /// project's user (see [`Project::run_as`]).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = match self.user {
            None => Command::new(program),
            Some(user) => {
                let mut cmd = Command::new("setpriv");
                cmd.args(user.setpriv_args()).arg(program);
                cmd
            }
        };
        self.apply_env(&mut cmd);
        cmd
    }

    /// Like [`Project::command`], but as the test's own user whoever the project's user is.
    pub fn own_command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        self.apply_env(&mut cmd);
        cmd
    }

    /// The `procs` binary this project's user runs.
    pub fn procs_path(&self) -> &Path {
        &self.procs
    }

    /// The `procs-testd` binary this project's user runs.
    pub fn testd_path(&self) -> &Path {
        &self.testd
    }

    /// Run `procs ARGS` in the project dir (stdin null, 60 s deadline).
    #[track_caller]
    pub fn procs<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run(self.command(&self.procs).args(args), COMMAND_DEADLINE)
    }

    /// Run `procs ARGS` with extra environment variables.
    #[track_caller]
    pub fn procs_env<I, S>(&self, args: I, env: &[(&str, &str)]) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(&self.procs);
        cmd.args(args).envs(env.iter().copied());
        run(&mut cmd, COMMAND_DEADLINE)
    }

    /// Start the fixture daemon directly (not under procs), tagged like everything else, with
    /// stdout and stderr appended to `NAME.out` in the project dir.
    pub fn spawn_testd(&self, name: &str, args: &[&str]) -> Child {
        let log = fs::File::create(self.path().join(format!("{name}.out"))).expect("create log");
        let err = log.try_clone().expect("dup log");
        self.command(&self.testd)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("spawn procs-testd")
    }

    /// What a directly spawned fixture daemon printed so far.
    pub fn testd_output(&self, name: &str) -> String {
        fs::read_to_string(self.path().join(format!("{name}.out"))).unwrap_or_default()
    }

    /// The `.procs` state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.path().join(".procs")
    }

    /// The log of process `name` (`.procs/logs/NAME.log`), empty if it does not exist yet.
    pub fn read_log(&self, name: &str) -> String {
        fs::read_to_string(self.state_dir().join("logs").join(format!("{name}.log")))
            .unwrap_or_default()
    }

    /// `.procs/state.json`, parsed.
    #[track_caller]
    pub fn state_json(&self) -> serde_json::Value {
        let path = self.state_dir().join("state.json");
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}\n{text}", path.display()))
    }

    /// Every live (non-zombie) process whose environment holds this project's tag.
    pub fn tagged_pids(&self) -> Vec<i32> {
        let needle = format!("{TAG_VAR}={}", self.tag);
        let me = std::process::id() as i32;
        let mut pids: Vec<i32> = fs::read_dir("/proc")
            .expect("read /proc")
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| pid != me)
            .filter(|&pid| {
                fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()))
            })
            .filter(|&pid| pid_alive(pid))
            .collect();
        pids.sort_unstable();
        pids
    }

    /// Wait up to `grace` for every tagged process to go, then SIGKILL the rest. Returns the
    /// survivors that had to be killed, with their command lines.
    pub fn kill_survivors(&self, grace: Duration) -> Vec<(i32, String)> {
        let start = Instant::now();
        let mut step = Duration::from_millis(2);
        while start.elapsed() < grace && !self.tagged_pids().is_empty() {
            thread::sleep(step);
            step = (step * 2).min(Duration::from_millis(50));
        }
        let survivors: Vec<(i32, String)> = self
            .tagged_pids()
            .into_iter()
            .map(|pid| (pid, pid_cmdline(pid)))
            .collect();
        for &(pid, _) in &survivors {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = (0..200).find(|_| {
            let gone = survivors.iter().all(|&(pid, _)| !pid_alive(pid));
            if !gone {
                thread::sleep(Duration::from_millis(5));
            }
            gone
        });
        survivors
    }

    /// `procs down` (best effort), then fail if any tagged process is still alive after the
    /// teardown grace ([`TEARDOWN_GRACE`] by default). Survivors are killed (`SIGKILL`) either way.
    #[track_caller]
    pub fn assert_no_survivors(&mut self) {
        let survivors = self.teardown();
        assert!(survivors.is_empty(), "{}", describe_survivors(&survivors));
    }

    fn teardown(&mut self) -> Vec<(i32, String)> {
        if self.teardown_done {
            return Vec::new();
        }
        self.teardown_done = true;
        if procs_bin_opt().is_some() {
            let mut cmd = self.command(&self.procs);
            cmd.arg("down")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // Best effort: a failing `down` shows up as survivors below.
            if let Ok(mut child) = cmd.spawn() {
                let start = Instant::now();
                while matches!(child.try_wait(), Ok(None)) && start.elapsed() < COMMAND_DEADLINE {
                    thread::sleep(Duration::from_millis(10));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let mut survivors = self.kill_survivors(self.teardown_grace);
        survivors.extend(self.clear_cgroup());
        survivors
    }

    /// The project cgroup the registry names: whatever is still in it survived (untagged
    /// members too: a daemon that rewrote its environment); it is killed and the cgroups are
    /// removed, so that no test leaves a `procs-*` cgroup behind.
    fn clear_cgroup(&self) -> Vec<(i32, String)> {
        let Some(cgroup) = fs::read(self.state_dir().join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["cgroup"].as_str().map(PathBuf::from))
        else {
            return Vec::new();
        };
        // Every cgroup below it, deepest first (a program may divide its leaf further).
        let mut leaves = Vec::new();
        below(&cgroup, &mut leaves);
        let mut survivors = Vec::new();
        for leaf in &leaves {
            let pids = fs::read_to_string(leaf.join("cgroup.procs")).unwrap_or_default();
            for pid in pids.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                survivors.push((pid, pid_cmdline(pid)));
            }
            let _ = fs::write(leaf.join("cgroup.kill"), "1");
        }
        let start = Instant::now();
        for leaf in &leaves {
            while fs::remove_dir(leaf).is_err()
                && leaf.exists()
                && start.elapsed() < Duration::from_secs(5)
            {
                thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = fs::remove_dir(&cgroup);
        survivors
    }
}

/// Every cgroup below `dir`, deepest first.
fn below(dir: &Path, out: &mut Vec<PathBuf>) {
    for child in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = child.path();
        if path.join("cgroup.procs").is_file() {
            below(&path, out);
            out.push(path);
        }
    }
}

/// `chown -R user dir` (symlinks themselves, never their targets).
fn chown_tree(dir: &Path, user: User) {
    let _ = std::os::unix::fs::lchown(dir, Some(user.uid), Some(user.gid));
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                chown_tree(&path, user);
            } else {
                let _ = std::os::unix::fs::lchown(&path, Some(user.uid), Some(user.gid));
            }
        }
    }
}

fn describe_survivors(survivors: &[(i32, String)]) -> String {
    let mut msg = format!(
        "{} process(es) survived the test (now SIGKILLed):",
        survivors.len()
    );
    for (pid, cmdline) in survivors {
        let _ = write!(msg, "\n  pid {pid}: {cmdline}");
    }
    msg
}

/// A child of the test itself (not under procs): killed and reaped when dropped, so a
/// test that fails halfway leaves nothing running.
pub struct KillOnDrop(pub Child);

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let survivors = self.teardown();
        assert!(
            survivors.is_empty() || thread::panicking(),
            "{}",
            describe_survivors(&survivors)
        );
    }
}
