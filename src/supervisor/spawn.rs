//! Turning a `Process` into a running child.
//!
//! Owns: the command line (`/bin/sh -c` for strings — a string that is one simple command is
//! exec'd directly, see [`simple_command`] — argv for lists), the working
//! directory, the environment layers of SPEC §1 with the `PROCS_*` tags on top, the
//! process group (every child leads its own), and the output: stdout and stderr are the
//! log file itself, opened `O_APPEND`, so output never passes through the supervisor and
//! keeps flowing when the supervisor dies. Where the cgroup mechanism is in use
//! ([`crate::membership`]), the child enters its process's cgroup before it runs the program.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd as _;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::sync::oneshot;

use super::reaper::Reaper;
use crate::config::{Command, Process};
use crate::platform::{self, ExitInfo};

/// Tags every descendant inherits (defined once in [`crate::env_vars`]).
pub use crate::env_vars::{ENV_PROCESS, ENV_PROJECT, ENV_PROJECT_ID};

/// Who is spawning: the project and the environment `procs up` was invoked with.
#[derive(Debug, Clone)]
pub struct Context {
    pub project: String,
    pub project_id: String,
    pub ambient_env: BTreeMap<String, String>,
}

/// A freshly spawned child.
#[derive(Debug)]
pub struct Child {
    pub pid: i32,
    pub start_time: u64,
    pub exit: oneshot::Receiver<ExitInfo>,
}

/// Open (create) a log file for appending, mode 0600.
pub fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Append one `[procs] …` event line to a log file.
pub fn log_event(path: &Path, message: &str) {
    if let Ok(mut file) = open_log(path) {
        let line = format!("[procs] {} {message}\n", crate::registry::now_rfc3339());
        let _ = file.write_all(line.as_bytes());
    }
}

/// The program to `execve` and its whole argument vector (`argv[0]` included).
fn program_and_argv(
    command: &Command,
    env: &BTreeMap<String, String>,
    cwd: &Path,
) -> io::Result<(PathBuf, Vec<OsString>)> {
    match command {
        Command::Shell(script) => {
            if let Some(words) = simple_command(script)
                && let Some(program) = words.first()
            {
                let path = resolve_program(program, env, cwd);
                if program.contains('/') || path.as_os_str() != program.as_str() {
                    // What `/bin/sh -c` would run, without the shell staying as its parent.
                    return Ok((path, words.into_iter().map(OsString::from).collect()));
                }
            }
            Ok((
                PathBuf::from("/bin/sh"),
                vec!["/bin/sh".into(), "-c".into(), script.into()],
            ))
        }
        Command::Argv(argv) => {
            let program = argv
                .first()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
            let path = resolve_program(program, env, cwd);
            let mut all: Vec<OsString> = vec![path.clone().into_os_string()];
            all.extend(argv[1..].iter().map(OsString::from));
            Ok((path, all))
        }
    }
}

/// The words of `script` when it is one simple command the shell would run as is: no quoting,
/// expansion, redirection, operator, comment or variable assignment — only words of letters,
/// digits and `-_./:=,+@%` separated by blanks, the first one not an assignment. The shell
/// would `fork` and `exec` exactly these words; procs execs them itself, so the pid, name and
/// usage `status` shows are the program's. `None` for anything else (run by `/bin/sh -c`).
pub fn simple_command(script: &str) -> Option<Vec<String>> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c);
    if !script.chars().all(|c| c == ' ' || c == '\t' || allowed(c)) {
        return None;
    }
    let words: Vec<String> = script.split_whitespace().map(str::to_owned).collect();
    let first = words.first()?;
    // `A=b cmd` is an assignment; shell keywords and builtins need the shell.
    if first.contains('=') || SHELL_WORDS.contains(&first.as_str()) {
        return None;
    }
    Some(words)
}

/// Words that `/bin/sh` runs itself (keywords and special builtins, and the common regular
/// builtins): a command starting with one is never exec'd directly.
const SHELL_WORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "case", "esac", "for", "while", "until", "do", "done",
    "in", "function", "select", "time", ".", ":", "break", "continue", "eval", "exec", "exit",
    "export", "readonly", "return", "set", "shift", "trap", "unset", "cd", "alias", "unalias",
    "read", "wait", "umask", "ulimit", "jobs", "fg", "bg", "kill", "command", "type", "hash",
    "getopts", "local", "true", "false", "echo", "printf", "test", "pwd", "source",
];

/// The path `execvp` would run for `program` with the child's `PATH` (relative entries
/// are relative to the child's working directory), or `program` itself when it holds a
/// `/` or nothing matches (the spawn then fails as `execvp` would).
///
/// Resolving here, in the parent, leaves the child (which shares the supervisor's memory
/// until it `exec`s, see [`platform::spawn_child`]) one `execve` instead of one per `PATH`
/// entry.
fn resolve_program(program: &str, env: &BTreeMap<String, String>, cwd: &Path) -> PathBuf {
    if program.contains('/') || program.is_empty() {
        return PathBuf::from(program);
    }
    let search = env.get("PATH").map_or(DEFAULT_PATH, String::as_str);
    for dir in search.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = cwd.join(dir).join(program);
        if platform::is_executable_file(&candidate) {
            return candidate;
        }
    }
    PathBuf::from(program)
}

/// What `execvp` searches when the environment has no `PATH` (glibc's default).
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// The environment a child of `spec` gets, lowest to highest layer.
pub fn environment(spec: &Process, ctx: &Context) -> BTreeMap<String, String> {
    let mut env = ctx.ambient_env.clone();
    env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.insert(ENV_PROJECT.to_owned(), ctx.project.clone());
    env.insert(ENV_PROJECT_ID.to_owned(), ctx.project_id.clone());
    env.insert(ENV_PROCESS.to_owned(), spec.name.clone());
    env
}

/// A oneshot's run: the program runs under a waiting parent (`procs __oneshot`, see
/// `waiter.rs`) that records its real exit status in `record`.
pub struct Waiter<'a> {
    pub record: &'a Path,
    pub hash: &'a str,
}

/// Spawn `command` for `spec` in its own process group with output appended to `log`,
/// and register it with the reaper before anything else can run. With `cgroup` (the
/// process's leaf), the child moves itself into it before it runs the program; the child
/// writes its `[procs] … started pid N` line itself, before `exec` (so it precedes the
/// program's first output; see [`platform::spawn_child`]). With `waiter`, the child is the
/// waiting parent, which runs the program as its own child.
pub fn spawn(
    spec: &Process,
    command: &Command,
    ctx: &Context,
    log: &Path,
    reaper: &Reaper,
    cgroup: Option<&Path>,
    waiter: Option<&Waiter<'_>>,
) -> io::Result<Child> {
    let placement = cgroup
        .map(|leaf| {
            platform::cgroup::Placement::open(leaf).map_err(|err| {
                io::Error::new(
                    err.kind(),
                    format!("cannot use the cgroup {}: {err}", leaf.display()),
                )
            })
        })
        .transpose()?;
    let out = open_log(log)?;
    // The time index exists before the child writes (see `logs/index.rs`); after this the
    // watcher only appends to it, so no file appears in `logs/` while the process runs.
    let _ = crate::logs::index::ensure(log, out.metadata().map_or(1, |m| m.len()));
    let env = environment(spec, ctx);
    let (mut program, mut argv) = program_and_argv(command, &env, &spec.cwd)?;
    if let Some(waiter) = waiter {
        (program, argv) = under_waiter(&program, &argv, waiter, &spec.cwd)?;
    }
    let announce = platform::Announce {
        prefix: format!("[procs] {} started pid ", crate::registry::now_rfc3339()),
        suffix: "\n".to_owned(),
    };
    let child = platform::ChildSpec {
        program: &program,
        argv: argv.iter().map(OsString::as_os_str).collect(),
        env: &env,
        cwd: &spec.cwd,
        stdout: out.as_fd(),
        stderr: out.as_fd(),
        cgroup_procs: placement
            .as_ref()
            .map(platform::cgroup::Placement::procs_fd),
        announce: Some(&announce),
    };
    let guard = reaper.begin_spawn();
    let pid = platform::spawn_child(&child)?;
    drop(placement);
    let exit = reaper.watch(pid);
    drop(guard);
    let start_time = platform::start_time(pid).unwrap_or(0);
    Ok(Child {
        pid,
        start_time,
        exit,
    })
}

/// `cmd` run by a waiting parent: `procs __oneshot RECORD HASH PROGRAM ARG…`. A program that
/// does not exist fails here, as a direct spawn would (not as an exit of the waiting parent).
fn under_waiter(
    program: &Path,
    argv: &[OsString],
    waiter: &Waiter<'_>,
    cwd: &Path,
) -> io::Result<(PathBuf, Vec<OsString>)> {
    if !platform::is_executable_file(&cwd.join(program)) {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{}: no such executable file", program.display()),
        ));
    }
    // The running executable, even if its file was replaced or deleted since.
    let mut wrapped: Vec<OsString> = vec![
        "procs".into(),
        super::waiter::ROLE.into(),
        waiter.record.into(),
        waiter.hash.into(),
        program.into(),
    ];
    wrapped.extend(argv.iter().skip(1).cloned());
    Ok((PathBuf::from("/proc/self/exe"), wrapped))
}

/// Spawn a helper command (a `stop_command` or an `exec` probe) in the process's
/// environment and cwd, in its own group, output discarded or sent to `log`. A shell
/// string runs through `/bin/sh -c`; an argv list runs as it is, no shell.
pub fn spawn_helper(
    spec: &Process,
    command: &Command,
    ctx: &Context,
    log: Option<&Path>,
    reaper: &Reaper,
) -> io::Result<Child> {
    let (out, err) = match log {
        Some(path) => {
            let file = open_log(path)?;
            (Stdio::from(file.try_clone()?), Stdio::from(file))
        }
        None => (Stdio::null(), Stdio::null()),
    };
    let mut cmd = match command {
        Command::Shell(script) => {
            let mut cmd = std::process::Command::new("/bin/sh");
            cmd.arg("-c").arg(script);
            cmd
        }
        Command::Argv(argv) => {
            let (program, rest) = argv.split_first().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "an empty argument list")
            })?;
            let mut cmd = std::process::Command::new(program);
            cmd.args(rest);
            cmd
        }
    };
    cmd.env_clear()
        .envs(environment(spec, ctx))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    let guard = reaper.begin_spawn();
    let child = cmd.spawn()?;
    let pid = child.id() as i32;
    let exit = reaper.watch(pid);
    drop(guard);
    drop(child);
    Ok(Child {
        pid,
        start_time: 0,
        exit,
    })
}

/// A command as an event line shows it: a shell string in backticks, an argv list as a
/// JSON array (so an argument's spaces and quotes stay visible).
pub fn describe(command: &Command) -> String {
    match command {
        Command::Shell(script) => format!("`{script}`"),
        Command::Argv(argv) => serde_json::to_string(argv).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::{Command, describe, simple_command};

    #[test]
    fn an_argv_command_is_described_with_its_arguments_intact() {
        let argv = Command::Argv(vec!["kill".into(), "a b $X".into()]);
        assert_eq!(describe(&argv), r#"["kill","a b $X"]"#);
        assert_eq!(
            describe(&Command::Shell("pg_ctl stop".into())),
            "`pg_ctl stop`"
        );
    }

    #[test]
    fn only_one_plain_command_is_exec_directly() {
        assert_eq!(
            simple_command("python3 -m http.server 8080").as_deref(),
            Some(&["python3", "-m", "http.server", "8080"].map(String::from)[..])
        );
        assert!(simple_command("  nginx -p ./x -c nginx.conf  ").is_some());
        assert!(simple_command("app --port=3000 --name a,b").is_some());
        for shell in [
            "a && b",
            "a; b",
            "a | b",
            "a > log",
            "echo $HOME",
            "x 'quoted'",
            "x \"quoted\"",
            "FOO=1 app",
            "cd dir",
            "exec app",
            "app &",
            "ls *.rs",
            "app # comment",
            "~/bin/app",
            "a\nb",
            "",
            "   ",
        ] {
            assert_eq!(simple_command(shell), None, "{shell:?}");
        }
    }
}
