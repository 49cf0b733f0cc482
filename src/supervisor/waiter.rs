//! A oneshot's waiting parent: `procs __oneshot RECORD HASH PROGRAM [ARG…]`.
//!
//! Owns: running one oneshot's program as its child, reaping it, and recording how it ended
//! in the run record (`registry::runs`) — so the exit status is learned even when no
//! supervisor was alive at that moment: a supervisor killed (SIGKILL) while a oneshot ran leaves
//! this process behind (re-parented), and the next supervisor adopts it and reads the record.
//! The supervisor spawns it in place of the program (same environment, directory, log, process
//! group and cgroup, which the program inherits).
//! Order, each write durable (fsync) before the next step: `running` (own pid and kernel start
//! time) → start the program → `running` with the program's pid and start time → reap it →
//! `exited` (code or signal) → end the same way.
//! Invariants: it survives every signal a stop sends to the group (only SIGKILL ends it early;
//! then the record stays `running`: a program still alive is adopted by the next supervisor,
//! never run again, and its status is reported as unknown, never guessed), and it never
//! outlives the program. The program gets no `PR_SET_PDEATHSIG`: its waiting parent's death
//! must not end its work.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;

use crate::platform;
use crate::registry::runs::{self, RunRecord, RunState};

/// The hidden role name on the command line.
pub const ROLE: &str = "__oneshot";

/// Run the role with the arguments after [`ROLE`]; returns the exit code.
pub fn run(args: &[OsString]) -> i32 {
    platform::outlast_signals();
    let [record, hash, program, rest @ ..] = args else {
        eprintln!("usage: procs {ROLE} RECORD HASH PROGRAM [ARG…]");
        return 2;
    };
    let record = PathBuf::from(record);
    let pid = std::process::id() as i32;
    let mut rec = RunRecord::starting(&hash.to_string_lossy());
    rec.state = RunState::Running;
    rec.pid = Some(pid);
    rec.start_time = platform::start_time(pid);
    rec.boot_id = Some(platform::boot_id().to_owned());
    rec.started_at = Some(crate::registry::now_rfc3339());
    if let Err(err) = runs::write(&record, &rec) {
        eprintln!(
            "[procs] {} cannot write {}: {err}",
            crate::registry::now_rfc3339(),
            record.display()
        );
    }
    let status = std::process::Command::new(program)
        .args(rest)
        .spawn()
        .and_then(|mut child| {
            // Who the program is, durable before anything else: if this process is killed
            // (SIGKILL), the program lives on and the next supervisor adopts it by this.
            let program_pid = child.id() as i32;
            rec.program_pid = Some(program_pid);
            rec.program_start_time = platform::start_time(program_pid);
            if let Err(err) = runs::write(&record, &rec) {
                eprintln!(
                    "[procs] {} cannot write {}: {err}",
                    crate::registry::now_rfc3339(),
                    record.display()
                );
            }
            child.wait()
        });
    let (code, signal) = match status {
        Ok(status) => (status.code(), status.signal()),
        Err(err) => {
            eprintln!(
                "[procs] {} cannot start {}: {err}",
                crate::registry::now_rfc3339(),
                program.to_string_lossy()
            );
            (Some(127), None)
        }
    };
    rec.state = RunState::Exited;
    rec.code = code;
    rec.signal = signal;
    rec.ended_at = Some(crate::registry::now_rfc3339());
    if let Err(err) = runs::write(&record, &rec) {
        eprintln!(
            "[procs] {} cannot write {}: {err}",
            crate::registry::now_rfc3339(),
            record.display()
        );
    }
    match (code, signal) {
        (Some(code), _) => code,
        (None, Some(sig)) => platform::end_like(sig),
        (None, None) => 1,
    }
}
