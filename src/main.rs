//! The `procs` executable: parse, run, render the error, exit with its code.

fn main() {
    std::process::exit(procs_compose::cli::main());
}
