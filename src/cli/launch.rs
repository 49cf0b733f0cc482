//! Starting the supervisor when none answers: re-execute this binary as
//! `procs __supervise`, detached (new session, stdin from /dev/null), and wait for its
//! "ready" line on a pipe: the usual path blocks on that read, with no polling.
//!
//! Concurrent `procs up`s may all launch one; the supervisor lock lets exactly one win
//! and the others answer "busy". Only then does a launcher poll (with backoff from 2 ms
//! to 100 ms, for at most [`LAUNCH_TIMEOUT`]) until the winner answers, or until the
//! lock is free again because the winner was on its way out.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::control::{BUSY_LINE, READY_LINE, client};
use crate::error::Error;
use crate::paths::Paths;
use crate::platform;

/// How long a launched supervisor may take to answer.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Is a supervisor answering on this project's socket?
pub fn running(paths: &Paths) -> bool {
    client::ping(paths).is_ok()
}

/// Make sure a supervisor serves this project; start one if needed. A supervisor that
/// accepts the connection must answer within `patience` (at most 5 s): one that does not (stopped, stuck) is an error now, not a launch that
/// would only find it holding the lock.
pub fn ensure_within(paths: &Paths, project: &str, patience: Duration) -> anyhow::Result<()> {
    match client::ping_within(paths, patience.min(Duration::from_secs(5))) {
        Ok(_) => Ok(()),
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Err(Error::SupervisorStalled {
                waited: patience.min(Duration::from_secs(5)),
                pid: recorded_supervisor(paths),
                log: paths.supervisor_log.clone(),
            }
            .into())
        }
        Err(_) => launch(paths, project, 3),
    }
}

/// The supervisor pid the registry records, if any.
pub fn recorded_supervisor(paths: &Paths) -> Option<i32> {
    match crate::registry::load(&paths.state_file, false) {
        Ok(crate::registry::Loaded::Ok(reg)) => reg.supervisor.map(|s| s.pid),
        _ => None,
    }
}

/// Nobody holds the supervisor lock right now.
pub fn lock_is_free(paths: &Paths) -> bool {
    std::fs::File::open(&paths.supervisor_lock).is_ok_and(|f| {
        let free = f.try_lock_shared().is_ok();
        let _ = f.unlock();
        free
    })
}

fn launch(paths: &Paths, project: &str, attempts: u32) -> anyhow::Result<()> {
    // The new supervisor moves a corrupt registry aside and rebuilds it: say so once.
    if let Ok(crate::registry::Loaded::Corrupt { error, .. }) =
        crate::registry::load(&paths.state_file, false)
    {
        eprintln!(
            "warning: {} is corrupt ({error}); keeping a copy and rebuilding it from the running processes",
            paths.state_file.display()
        );
    }
    paths
        .ensure_dirs()
        .context("cannot create the state directory")?;
    let exe = std::env::current_exe().context("cannot find the procs executable")?;
    let log = crate::registry::atomic::open_append(&paths.supervisor_log)
        .context("cannot open the supervisor log")?;
    let mut cmd = Command::new(exe);
    cmd.arg("__supervise")
        .arg("--project-dir")
        .arg(&paths.project_dir)
        .arg("--state-dir")
        .arg(&paths.state_dir)
        .arg("--project")
        .arg(project)
        .current_dir(&paths.project_dir)
        // Never let the supervisor carry another project's tags (when `procs up` runs
        // inside a process that procs started): it would be stopped with that project.
        .env_remove(crate::platform::ENV_PROJECT_ID)
        .env_remove(crate::platform::ENV_PROJECT)
        .env_remove(crate::platform::ENV_PROCESS)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    platform::detach(&mut cmd);
    let mut child = cmd.spawn().context("cannot start the supervisor")?;
    let stdout = child.stdout.take().context("no pipe to the supervisor")?;
    let mut line = String::new();
    let read = BufReader::new(stdout).read_line(&mut line);
    // The supervisor lives on in its own session; its exit status is not ours to wait for.
    drop(child);
    match (read, line.trim()) {
        (Ok(_), READY_LINE) => Ok(()),
        (Ok(_), BUSY_LINE) => wait_for_other(paths, project, attempts),
        _ => {
            let tail = crate::logs::tail_file(&paths.supervisor_log, 20).unwrap_or_default();
            Err(Error::SupervisorDidNotStart {
                log: paths.supervisor_log.clone(),
                tail,
            }
            .into())
        }
    }
}

/// Another supervisor holds the lock: wait until it answers — or, if it was one on its
/// way out (a `down` from elsewhere), until the lock is free and launch our own.
fn wait_for_other(paths: &Paths, project: &str, attempts: u32) -> anyhow::Result<()> {
    let deadline = Instant::now() + LAUNCH_TIMEOUT;
    let mut pause = Duration::from_millis(2);
    while Instant::now() < deadline {
        if running(paths) {
            return Ok(());
        }
        if attempts > 0 && lock_is_free(paths) {
            return launch(paths, project, attempts - 1);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
    Err(Error::SupervisorUnresponsive {
        waited: LAUNCH_TIMEOUT,
        log: paths.supervisor_log.clone(),
    }
    .into())
}
