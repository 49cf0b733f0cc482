//! Test helpers shared by the platform unit tests: children that clean up after themselves
//! and waiting on a condition with a deadline.

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A spawned child that is killed and reaped when the test ends, pass or fail.
pub(crate) struct Kid(pub(crate) Child);

impl Kid {
    pub(crate) fn spawn(cmd: &mut Command) -> Self {
        Self(cmd.stdin(Stdio::null()).spawn().expect("spawn test child"))
    }
    pub(crate) fn sleep() -> Self {
        Self::spawn(Command::new("sleep").arg("30").process_group(0))
    }
    pub(crate) fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Poll `cond` until it holds; fail naming `what` after 10 s.
pub(crate) fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Duration::from_secs(10);
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The pid of the test process.
pub(crate) fn me() -> i32 {
    std::process::id() as i32
}
