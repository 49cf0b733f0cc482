//! The command-line side: parse arguments, run one command, render its result.
//!
//! Owns: every user-facing command (one file each) and their output. The CLI never
//! imports the supervisor: it talks to it through `control`, reads the registry, and
//! re-executes itself to start one (`launch`).

mod args;
mod config_cmd;
mod dashboard;
mod doctor;
mod down;
mod launch;
mod logs;
mod ls;
mod mcp;
mod ops;
mod out;
mod ports;
mod project;
mod render;
mod status;
mod ui;
mod up;

use clap::Parser;

use args::Command;
pub use args::{Cli, SuperviseArgs};

use crate::error;
use out::Out;

/// Parse the command line; on a usage error (or `--help`), print it and return the exit code.
pub fn parse() -> Result<Cli, i32> {
    Cli::try_parse().map_err(|err| {
        let code = if err.use_stderr() {
            error::exit::USAGE
        } else {
            error::exit::OK
        };
        let _ = err.print();
        code
    })
}

impl Cli {
    /// The hidden `__supervise` role, which `main.rs` hands to the supervisor.
    pub fn supervise(&self) -> Option<&args::SuperviseArgs> {
        match &self.command {
            Command::Supervise(args) => Some(args),
            _ => None,
        }
    }
}

/// Run one user command; returns the exit code.
pub fn main(cli: Cli) -> i32 {
    if cli.command.only_prints() {
        crate::platform::default_sigpipe();
    }
    match run(cli) {
        Ok(code) => code,
        Err(err) => report(&err),
    }
}

/// Print an error in the one grammar; returns its exit code.
pub fn report(err: &anyhow::Error) -> i32 {
    let (text, code) = error::render(err);
    eprint!("{text}");
    code
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let out = Out::new(&cli.global);
    let global = &cli.global;
    match cli.command {
        Command::Up(args) if args.ui => ui::run(global, &out, true),
        Command::Up(args) => up::up(global, &out, &args),
        Command::Ui => ui::run(global, &out, false),
        Command::Down(args) => down::down(global, &out, &args.names, args.timeout, true),
        Command::Stop(args) => down::down(global, &out, &args.names, args.timeout, false),
        Command::Start(args) => up::start(global, &out, &args.names, args.timeout, false),
        Command::Restart(args) => up::start(global, &out, &args.names, args.timeout, true),
        Command::Status(args) => status::status(global, &out, &args.names),
        Command::Logs(args) => logs::logs(global, &out, &args),
        Command::Config => config_cmd::config(global, &out),
        Command::Graph(args) => config_cmd::graph(global, args.format),
        Command::Doctor(args) => doctor::doctor(global, &out, args.fix),
        Command::Ls(args) => Ok(ls::ls(&out, args.all)),
        Command::Ports => ports::ports(global, &out),
        Command::Dashboard(args) => dashboard::dashboard(&out, &args),
        Command::Mcp => mcp::mcp(global),
        Command::Schema => config_cmd::schema(),
        Command::Completions(args) => Ok(config_cmd::completions(args.shell)),
        Command::Man => config_cmd::man(),
        // Dispatched by `main.rs` before `run` (the CLI never imports the supervisor).
        Command::Supervise(_) => Ok(error::exit::USAGE),
    }
}
