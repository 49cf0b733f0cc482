//! Commands that need no running process: `config`, `graph`, `schema`, `completions`, `man`.

use std::io::Write;

use clap::CommandFactory;

use super::args::{Cli, Global, GraphFormat};
use super::out::Out;
use super::project;
use crate::config::Resolved;
use crate::config::graph::Graph;
use crate::error::exit;

pub fn config(global: &Global, out: &Out) -> anyhow::Result<i32> {
    let config = project::load(global)?;
    let resolved = Resolved::new(&config);
    if out.json {
        println!("{}", resolved.to_json()?);
    } else {
        print!("{}", resolved.to_yaml()?);
    }
    Ok(exit::OK)
}

pub fn graph(global: &Global, format: GraphFormat) -> anyhow::Result<i32> {
    let config = project::load(global)?;
    let graph = Graph::new(&config)?;
    let text = match format {
        GraphFormat::Text => graph.render_text(),
        GraphFormat::Dot => graph.render_dot(),
        GraphFormat::Mermaid => graph.render_mermaid(),
    };
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    Ok(exit::OK)
}

pub fn schema() -> anyhow::Result<i32> {
    println!(
        "{}",
        serde_json::to_string_pretty(&crate::config::json_schema())?
    );
    Ok(exit::OK)
}

/// The command line as users see it: hidden (internal) subcommands removed, so that
/// completions never offer them.
fn public_command() -> clap::Command {
    let full = Cli::command();
    let mut public = clap::Command::new("procs")
        .version(env!("CARGO_PKG_VERSION"))
        .about(full.get_about().cloned().unwrap_or_default());
    for arg in full.get_arguments() {
        public = public.arg(arg.clone());
    }
    for sub in full.get_subcommands().filter(|s| !s.is_hide_set()) {
        public = public.subcommand(sub.clone());
    }
    public
}

pub fn completions(shell: clap_complete::Shell) -> i32 {
    let mut cmd = public_command();
    clap_complete::generate(shell, &mut cmd, "procs", &mut std::io::stdout());
    exit::OK
}

pub fn man() -> anyhow::Result<i32> {
    let cmd = public_command();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut buf)?;
    std::io::stdout().write_all(&buf)?;
    Ok(exit::OK)
}
