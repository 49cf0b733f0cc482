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

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::platform::{self, ExitInfo};
use crate::registry::runs::{self, RunRecord, RunState};

/// The hidden role name on the command line.
pub const ROLE: &str = "__oneshot";

/// Run the role with the arguments after [`ROLE`]; returns the exit code.
pub fn run(args: &[OsString]) -> i32 {
    // A stop that arrives from here until the program runs stays pending (not swallowed by
    // a handler): it is seen before the program is started, or it reaches the program. Held
    // before the handlers exist, so no stop can reach one first (one that arrived even
    // earlier ended this process by its default action).
    let held = platform::HeldStops::hold().ok();
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
    write(&record, &rec);
    let exit = match start(program, rest, held.as_ref()) {
        Started::Program(program_pid) => {
            // Who the program is, durable before anything else: if this process is killed
            // (SIGKILL), the program lives on and the next supervisor adopts it by this.
            rec.program_pid = Some(program_pid);
            rec.program_start_time = platform::start_time(program_pid);
            write(&record, &rec);
            drop(held);
            platform::wait_child(program_pid).unwrap_or(ExitInfo::Code(127))
        }
        // Stopped before the program existed: it is not started; the run ends as the stop
        // asked (the supervisor sees the signal, as if the program had got it).
        Started::Stopped(sig) => ExitInfo::Signal(sig),
        Started::Failed(err) => {
            eprintln!(
                "[procs] {} cannot start {}: {err}",
                crate::registry::now_rfc3339(),
                program.to_string_lossy()
            );
            ExitInfo::Code(127)
        }
    };
    let (code, signal) = match exit {
        ExitInfo::Code(code) => (Some(code), None),
        ExitInfo::Signal(sig) => (None, Some(sig)),
    };
    rec.state = RunState::Exited;
    rec.code = code;
    rec.signal = signal;
    rec.ended_at = Some(crate::registry::now_rfc3339());
    write(&record, &rec);
    match (code, signal) {
        (Some(code), _) => code,
        (None, Some(sig)) => platform::end_like(sig),
        (None, None) => 1,
    }
}

/// What starting the program came to.
enum Started {
    Program(i32),
    /// A stop signal arrived before the program existed.
    Stopped(i32),
    Failed(std::io::Error),
}

/// Start the program as our child, in our process group, with our stdio, environment and
/// directory — unless a stop signal is pending (`held`).
fn start(program: &OsString, rest: &[OsString], held: Option<&platform::HeldStops>) -> Started {
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let mut argv: Vec<&OsStr> = vec![program.as_os_str()];
    argv.extend(rest.iter().map(OsString::as_os_str));
    // Pending while held; or, if holding failed, noted by a handler.
    if let Some(sig) = held
        .and_then(platform::HeldStops::pending)
        .or_else(platform::received)
    {
        return Started::Stopped(sig);
    }
    let spawned = match held {
        Some(held) => held.spawn(Path::new(program), &argv, &env),
        // Holding failed: an ordinary spawn (the stop may then be missed in its window).
        None => std::process::Command::new(program)
            .args(rest)
            .spawn()
            .map(|child| platform::HeldSpawn::Started(child.id() as i32)),
    };
    match spawned {
        Ok(platform::HeldSpawn::Started(pid)) => Started::Program(pid),
        Ok(platform::HeldSpawn::Stopped(sig)) => Started::Stopped(sig),
        Err(err) => Started::Failed(err),
    }
}

fn write(record: &Path, rec: &RunRecord) {
    if let Err(err) = runs::write(record, rec) {
        eprintln!(
            "[procs] {} cannot write {}: {err}",
            crate::registry::now_rfc3339(),
            record.display()
        );
    }
}
