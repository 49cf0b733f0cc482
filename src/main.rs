//! The `procs` executable: parse, hand the command to its role (the CLI, or the hidden
//! supervisor role `procs __supervise`), render the error, exit with its code.
//!
//! This is the only place that knows both roles: `cli` never imports `supervisor`.

use procs_compose::{cli, supervisor};

fn main() {
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
