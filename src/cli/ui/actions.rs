//! The dashboard's actions, run by the same code as the commands (`procs start`, `stop`,
//! `restart`, `up`, `down`), on a worker thread, silently.
//!
//! Owns: turning an [`Action`] into those calls and their outcome into one status line:
//! what was done, or the catalogue's error (`error: …`, `caused by: …`, `hint: …`) on one
//! line.
//! Must not: print (the commands run with a quiet, colourless, non-terminal `Out`) or touch
//! the dashboard's state (the result goes back as a message).

use std::sync::mpsc::Sender;
use std::time::Duration;

use super::app::Action;
use super::events::Msg;
use crate::cli::args::{Global, UpArgs};
use crate::cli::out::Out;
use crate::cli::{down, up};
use crate::error;

/// How long a start, restart or `up` from the dashboard waits for readiness.
const READY_TIMEOUT: Duration = Duration::from_mins(2);

/// Run `action` on a worker thread; its result comes back as [`Msg::Done`].
/// `rolling` are the processes a rolling restart goes through, in start order.
pub fn spawn(action: Action, rolling: Vec<String>, global: Global, tx: Sender<Msg>) {
    std::thread::spawn(move || {
        let result = run(&action, &rolling, &global);
        let _ = tx.send(Msg::Done { action, result });
    });
}

fn quiet() -> Out {
    Out {
        json: false,
        quiet: true,
        verbose: false,
        color: false,
        tty: false,
    }
}

fn run(action: &Action, rolling: &[String], global: &Global) -> Result<String, String> {
    let out = quiet();
    let one = |name: &String| std::slice::from_ref(name).to_vec();
    let (code, done) = match action {
        Action::Start(name) => (
            up::start(global, &out, &one(name), READY_TIMEOUT, false),
            format!("started `{name}`"),
        ),
        Action::Restart(name) => (
            up::start(global, &out, &one(name), READY_TIMEOUT, true),
            format!("restarted `{name}`"),
        ),
        Action::Stop(name) => (
            down::down(global, &out, &one(name), None, false),
            format!("stopped `{name}`"),
        ),
        Action::Up => {
            let args = UpArgs {
                names: Vec::new(),
                attach: false,
                ui: false,
                no_wait: false,
                timeout: READY_TIMEOUT,
                no_deps: false,
                kill_port_owners: false,
                dry_run: false,
            };
            (up::up(global, &out, &args), "the stack is up".to_owned())
        }
        Action::Down { .. } => (
            down::down(global, &out, &[], None, true),
            "the stack is down".to_owned(),
        ),
        Action::RollingRestart => {
            for name in rolling {
                match up::start(global, &out, &one(name), READY_TIMEOUT, true) {
                    Ok(0) => {}
                    other => {
                        return outcome(other, String::new())
                            .map_err(|e| format!("rolling restart stopped at `{name}`: {e}"));
                    }
                }
            }
            (
                Ok(error::exit::OK),
                format!("restarted {} processes, one at a time", rolling.len()),
            )
        }
    };
    outcome(code, done)
}

fn outcome(code: anyhow::Result<i32>, done: String) -> Result<String, String> {
    match code {
        Ok(0) => Ok(done),
        Ok(code) => Err(format!("error: failed (exit code {code})")),
        Err(err) => Err(one_line(&error::render(&err).0)),
    }
}

/// The rendered error's `error:`, `caused by:` and `hint:` lines, on one line.
pub fn one_line(rendered: &str) -> String {
    let lines: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.starts_with("error:") || l.starts_with("caused by:") || l.starts_with("hint:")
        })
        .collect();
    if lines.is_empty() {
        rendered.lines().next().unwrap_or_default().to_owned()
    } else {
        lines.join("  ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_becomes_one_line_in_the_catalogue_words() {
        let err: anyhow::Error = error::Error::NotATerminal { stream: "stdout" }.into();
        let line = one_line(&error::render(&err).0);
        assert_eq!(
            line,
            "error: `procs ui` needs a terminal, and stdout is not one  hint: run it in a \
             terminal; scripts can use `procs status --json` and `procs logs -f`"
        );
    }
}
