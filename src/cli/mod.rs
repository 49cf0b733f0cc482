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
mod out;
mod ports;
mod project;
mod render;
mod status;
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
        // Dispatched by `main.rs` before `run` (the CLI never imports the supervisor).
        Command::Supervise(_) => Ok(error::exit::USAGE),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    /// The modules of `src/cli/` each file imports (`use super::…`, `super::x::…`).
    fn imports() -> BTreeMap<String, BTreeSet<String>> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/cli");
        let word = regex::Regex::new(r"super::(\{[^}]*\}|[a-z_]+)").unwrap();
        let mut graph = BTreeMap::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            let mut deps = BTreeSet::new();
            for cap in word.captures_iter(&text) {
                for dep in cap[1].trim_matches(['{', '}']).split(',') {
                    let dep = dep.trim().split("::").next().unwrap_or_default();
                    if !dep.is_empty() && dep != name {
                        deps.insert(dep.to_owned());
                    }
                }
            }
            graph.insert(name, deps);
        }
        graph
    }

    /// The first import circle reachable from the last module of `path`.
    fn visit(
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        let last = path.last()?.clone();
        for dep in graph.get(&last).into_iter().flatten() {
            if let Some(at) = path.iter().position(|p| p == dep) {
                let mut circle = path[at..].to_vec();
                circle.push(dep.clone());
                return Some(circle);
            }
            path.push(dep.clone());
            if let Some(circle) = visit(graph, path) {
                return Some(circle);
            }
            path.pop();
        }
        None
    }

    #[test]
    fn cli_modules_import_each_other_in_no_circle() {
        let graph = imports();
        assert!(
            graph["up"].contains("logs"),
            "the scan sees imports: {graph:?}"
        );
        for start in graph.keys().filter(|m| *m != "mod") {
            let circle = visit(&graph, &mut vec![start.clone()]);
            assert_eq!(circle, None, "an import circle in src/cli/");
        }
    }
}
