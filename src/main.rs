//! The `procs` executable: parse, hand the command to its role (the CLI, or the hidden
//! supervisor role `procs __supervise`, and a oneshot's waiting parent `procs __oneshot`), render the error, exit with its code.
//!
//! This is the only place that knows both roles: `cli` never imports `supervisor`.

use procs_compose::{cli, platform, supervisor};

fn main() {
    // Whatever the caller left open (`procs up 3>&1`) is not passed on to the supervisor or
    // to any child. Best effort: a kernel without close_range falls back to /proc/self/fd.
    let _ = platform::cloexec_inherited();
    // A oneshot's waiting parent: started by the supervisor, before any argument parsing.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == supervisor::ONESHOT_ROLE) {
        std::process::exit(supervisor::wait_oneshot(&args[2..]));
    }
    let code = match cli::parse() {
        Err(code) => code,
        Ok(parsed) => match parsed.supervise() {
            Some(args) => {
                let opts = supervisor::Options {
                    project_dir: args.project_dir.clone(),
                    state_dir: args.state_dir.clone(),
                    project: args.project.clone(),
                };
                match supervisor::run(&opts) {
                    Ok(()) => 0,
                    Err(err) => cli::report(&err),
                }
            }
            None => cli::main(parsed),
        },
    };
    std::process::exit(code);
}
