//! Output settings shared by every command (`--json`, `--quiet`, colours, terminal).
//!
//! A leaf of the CLI: every command imports it, it imports no command.

use std::io::IsTerminal;

use super::args;

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
    pub fn new(global: &args::Global) -> Self {
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
