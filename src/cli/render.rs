//! Rendering progress and outcomes of lifecycle requests.
//!
//! On a terminal, one live line per process (state, time in that state, what it waits
//! for), redrawn in place; piped, one plain line per state change. The final verdict
//! names every process that is not where it should be, with the last 20 lines of its log.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use super::Out;
use crate::control::client::Connection;
use crate::control::protocol::{Event, Outcome, Response};
use crate::error::{Failure, exit};
use crate::registry::ProcState;

/// ANSI colour for a state.
pub fn state_color(state: ProcState) -> &'static str {
    match state {
        ProcState::Healthy | ProcState::Running | ProcState::Completed => "\x1b[32m",
        ProcState::Failed | ProcState::Unhealthy | ProcState::Exited => "\x1b[31m",
        ProcState::Stopped => "\x1b[2m",
        _ => "\x1b[33m",
    }
}

/// A stable colour per process name.
pub fn name_color(name: &str) -> &'static str {
    const COLORS: [&str; 6] = [
        "\x1b[36m", "\x1b[35m", "\x1b[34m", "\x1b[33m", "\x1b[32m", "\x1b[96m",
    ];
    let hash = name
        .bytes()
        .fold(5381u32, |h, b| h.wrapping_mul(33) ^ u32::from(b));
    COLORS[hash as usize % COLORS.len()]
}

fn describe(ev: &Event) -> String {
    let mut line = ev.state.to_string();
    if let Some(pid) = ev.pid
        && ev.state.is_live()
    {
        line.push_str(&format!(" (pid {pid})"));
    }
    if let Some(reason) = &ev.reason {
        line.push_str(&format!(": {reason}"));
    } else if let Some(what) = &ev.waiting_for {
        line.push_str(&format!(", waiting for {what}"));
    }
    line
}

struct Live {
    rows: Vec<(String, Event, Instant)>,
    drawn: usize,
    color: bool,
}

impl Live {
    fn update(&mut self, ev: &Event) {
        match self.rows.iter_mut().find(|(n, _, _)| *n == ev.name) {
            Some(row) => {
                if row.1.state != ev.state {
                    row.2 = Instant::now();
                }
                row.1 = ev.clone();
            }
            None => self
                .rows
                .push((ev.name.clone(), ev.clone(), Instant::now())),
        }
    }

    fn draw(&mut self) {
        let width = self.rows.iter().map(|(n, _, _)| n.len()).max().unwrap_or(0);
        let mut text = String::new();
        if self.drawn > 0 {
            text.push_str(&format!("\x1b[{}A", self.drawn));
        }
        for (name, ev, since) in &self.rows {
            let secs = since.elapsed().as_secs_f64();
            let (c, r) = if self.color {
                (state_color(ev.state), "\x1b[0m")
            } else {
                ("", "")
            };
            text.push_str(&format!(
                "\x1b[2K{name:<width$}  {c}{}{r}  {secs:.1}s\n",
                describe(ev)
            ));
        }
        self.drawn = self.rows.len();
        let mut stdout = io::stdout();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }
}

/// Read events until the final frame, showing progress.
pub fn follow_progress(mut conn: Connection, out: &Out) -> anyhow::Result<Response> {
    let live_view = out.tty && !out.quiet && !out.json;
    let mut live = Live {
        rows: Vec::new(),
        drawn: 0,
        color: out.color,
    };
    let mut printed: BTreeMap<String, ProcState> = BTreeMap::new();
    if live_view {
        conn.set_read_timeout(Some(Duration::from_millis(200)))?;
    }
    loop {
        match conn.next_frame() {
            Ok(Some(Response::Event(ev))) => {
                if live_view {
                    live.update(&ev);
                    live.draw();
                } else if !out.quiet && !out.json && printed.get(&ev.name) != Some(&ev.state) {
                    printed.insert(ev.name.clone(), ev.state);
                    println!("{}: {}", ev.name, describe(&ev));
                }
            }
            Ok(Some(final_frame)) => return Ok(final_frame),
            Ok(None) => {
                return Err(Failure::new(
                    exit::FAILED,
                    "the supervisor closed the connection before answering",
                )
                .hint("see .procs/logs/procs.log")
                .into());
            }
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if live_view && !live.rows.is_empty() {
                    live.draw();
                }
            }
            Err(err) => {
                return Err(
                    anyhow::Error::new(err).context("lost the connection to the supervisor")
                );
            }
        }
    }
}

/// Print the outcome and turn it into an exit code.
pub fn report(
    response: &Response,
    out: &Out,
    verb: &str,
    timeout: Duration,
) -> anyhow::Result<i32> {
    let outcome: &Outcome = match response {
        Response::Done(outcome) => outcome,
        Response::Error(body) => {
            let mut failure = Failure::new(body.code, body.message.clone());
            if let Some(hint) = &body.hint {
                failure = failure.hint(hint.clone());
            }
            return Err(failure.into());
        }
        other => {
            return Err(anyhow::anyhow!(
                "unexpected answer from the supervisor: {other:?}"
            ));
        }
    };
    if out.json {
        println!("{}", serde_json::to_string(outcome)?);
    }
    if !out.quiet && !out.json {
        for note in outcome.notes.iter().filter(|n| *n != "supervisor stopped") {
            println!("{note}");
        }
    }
    let bad: Vec<_> = outcome.processes.iter().filter(|p| !p.ok).collect();
    if bad.is_empty() {
        if !out.quiet && !out.json && !out.tty {
            let names: Vec<String> = outcome
                .processes
                .iter()
                .map(|p| format!("{} ({})", p.name, p.state))
                .collect();
            if !names.is_empty() {
                println!("{verb}: {}", names.join(", "));
            }
        }
        return Ok(exit::OK);
    }
    let code = if bad.iter().any(|p| p.port_conflict) {
        exit::PORT_HELD
    } else {
        exit::FAILED
    };
    let names: Vec<&str> = bad.iter().map(|p| p.name.as_str()).collect();
    // A port held by another process is the one thing to say first: it names the holder.
    let held = bad.iter().find(|p| p.port_conflict);
    let message = if let Some(p) = held {
        format!(
            "cannot start `{}`: {}",
            p.name,
            p.reason.as_deref().unwrap_or("a declared port is held")
        )
    } else if outcome.timed_out {
        format!(
            "timed out after {} waiting for {}",
            humantime::format_duration(timeout),
            names.join(", ")
        )
    } else if verb == "down" || verb == "stop" {
        format!("{} did not stop cleanly", names.join(", "))
    } else {
        format!(
            "{} of {} processes not ready: {}",
            bad.len(),
            outcome.processes.len(),
            names.join(", ")
        )
    };
    let mut failure = Failure::new(code, message);
    let mut details = String::new();
    for p in &bad {
        if held.is_some_and(|h| h.name == p.name) {
            continue;
        }
        let reason = p
            .reason
            .clone()
            .unwrap_or_else(|| "no reason recorded".to_owned());
        failure = failure.cause(format!("`{}` is {}: {reason}", p.name, p.state));
        if p.port_conflict {
            continue;
        }
        let tail = crate::logs::tail_file(std::path::Path::new(&p.log), 20).unwrap_or_default();
        if !tail.trim().is_empty() {
            details.push_str(&format!("--- last lines of {} ---\n{tail}", p.log));
            if !details.ends_with('\n') {
                details.push('\n');
            }
        }
    }
    if bad.iter().any(|p| p.port_conflict) {
        failure = failure.hint(
            "stop that process, or run `procs up --kill-port-owners` to have procs stop it \
             (SIGTERM, then SIGKILL after 5s)",
        );
    } else if outcome.timed_out {
        failure =
            failure.hint("raise it with `--timeout`, or check the health check with `procs logs`");
    }
    Err(failure.details(details).into())
}
