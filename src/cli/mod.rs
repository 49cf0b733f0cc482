//! The command-line side: parse arguments, run one command, render its result.
//!
//! Owns: every user-facing command (one file each) and their output. The CLI never
//! imports the supervisor: it talks to it through `control`, reads the registry, and
//! re-executes itself to start one (`launch`).

mod args;
mod config_cmd;
mod doctor;
mod down;
mod launch;
mod logs;
mod ls;
mod ports;
mod project;
mod render;
mod status;
mod up;

use std::io::IsTerminal;

use clap::Parser;

pub use args::Cli;
use args::Command;

use crate::error;

/// Output settings shared by every command.
#[derive(Debug, Clone)]
pub struct Out {
    pub json: bool,
    pub quiet: bool,
    pub verbose: bool,
    /// Colours on stdout.
    pub color: bool,
    /// stdout is a terminal.
    pub tty: bool,
}

impl Out {
    fn new(global: &args::Global) -> Self {
        let tty = std::io::stdout().is_terminal();
        let no_color =
            global.no_color || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            json: global.json,
            quiet: global.quiet,
            verbose: global.verbose,
            color: tty && !no_color,
            tty,
        }
    }
}

/// Run the command line; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() {
                error::exit::USAGE
            } else {
                error::exit::OK
            };
            let _ = err.print();
            return code;
        }
    };
    if cli.command.only_prints() {
        crate::platform::default_sigpipe();
    }
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            let (text, code) = error::render(&err);
            eprint!("{text}");
            code
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let out = Out::new(&cli.global);
    let global = &cli.global;
    match cli.command {
        Command::Up(args) => up::up(global, &out, &args),
        Command::Down(args) => down::down(global, &out, &args.names, args.timeout, true),
        Command::Stop(args) => down::down(global, &out, &args.names, args.timeout, false),
        Command::Start(args) => up::start(global, &out, &args.names, args.timeout, false),
        Command::Restart(args) => up::start(global, &out, &args.names, args.timeout, true),
        Command::Status(args) => status::status(global, &out, &args.names),
        Command::Logs(args) => logs::logs(global, &out, &args),
        Command::Config => config_cmd::config(global, &out),
        Command::Graph(args) => config_cmd::graph(global, args.format),
        Command::Doctor(args) => doctor::doctor(global, &out, args.fix),
        Command::Ls => Ok(ls::ls(&out)),
        Command::Ports => ports::ports(global, &out),
        Command::Schema => config_cmd::schema(),
        Command::Completions(args) => Ok(config_cmd::completions(args.shell)),
        Command::Man => config_cmd::man(),
        Command::Supervise(args) => {
            crate::supervisor::run(&crate::supervisor::Options {
                project_dir: args.project_dir,
                state_dir: args.state_dir,
                project: args.project,
            })?;
            Ok(error::exit::OK)
        }
    }
}
