//! Rendering progress and outcomes of lifecycle requests.
//!
//! On a terminal, one live line per process (state, time in that state, what it waits
//! for), redrawn in place; piped, one plain line per state change. The final verdict
//! names every process that is not where it should be, with the last 20 lines of its log.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use super::out::Out;
use crate::control::client::Connection;
use crate::control::protocol::{Event, Outcome, Request, Response};
use crate::error::{Error, NotWhere, exit};
use crate::paths::Paths;
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

/// Distinct terminal colours, in the order processes get them: twelve before any repeats.
pub const COLORS: [&str; 12] = [
    "\x1b[36m", "\x1b[35m", "\x1b[34m", "\x1b[33m", "\x1b[32m", "\x1b[96m", "\x1b[95m", "\x1b[94m",
    "\x1b[93m", "\x1b[92m", "\x1b[31m", "\x1b[91m",
];

/// The colour of the `i`-th process of a listing.
pub fn color_at(i: usize) -> &'static str {
    COLORS[i % COLORS.len()]
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

/// Send a lifecycle request to the supervisor and follow its progress to the final answer.
pub fn request(paths: &Paths, request: Request, out: &Out) -> anyhow::Result<Response> {
    request_until(paths, request, out, None)
}

/// [`request`], giving up at `deadline` with [`Error::SupervisorStalled`]: the CLI keeps
/// its `--timeout` promise even when the supervisor cannot (it is stopped or stuck).
pub fn request_until(
    paths: &Paths,
    request: Request,
    out: &Out,
    deadline: Option<Instant>,
) -> anyhow::Result<Response> {
    let conn = Connection::send(paths, request).map_err(|e| Error::SupervisorUnreachable {
        socket: paths.socket.clone(),
        error: e.to_string(),
        log: paths.supervisor_log.clone(),
    })?;
    follow_progress(conn, out, paths, deadline)
}

/// How long past its own `--timeout` a waiting command gives the supervisor to deliver
/// its verdict before the CLI calls it stalled.
pub const VERDICT_GRACE: Duration = Duration::from_secs(3);

/// The deadline of a command that waits `timeout` (none if it cannot be represented).
pub fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout.checked_add(VERDICT_GRACE)?)
}

/// Read events until the final frame, showing progress.
fn follow_progress(
    mut conn: Connection,
    out: &Out,
    paths: &Paths,
    deadline: Option<Instant>,
) -> anyhow::Result<Response> {
    let live_view = out.tty && !out.quiet && !out.json;
    let mut live = Live {
        rows: Vec::new(),
        drawn: 0,
        color: out.color,
    };
    let mut printed: BTreeMap<String, ProcState> = BTreeMap::new();
    let began = Instant::now();
    loop {
        let tick = live_view.then_some(Duration::from_millis(200));
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|l| l.is_zero()) {
            return Err(Error::SupervisorStalled {
                waited: began.elapsed(),
                pid: super::launch::recorded_supervisor(paths),
                log: paths.supervisor_log.clone(),
            }
            .into());
        }
        let wait = match (tick, left) {
            (Some(t), Some(l)) => Some(t.min(l)),
            (t, l) => t.or(l),
        };
        conn.set_read_timeout(wait)?;
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
                return Err(Error::SupervisorHungUp {
                    log: paths.supervisor_log.clone(),
                }
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
                return Err(Error::ConnectionLost { source: err }.into());
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
            return Err(Error::Supervisor {
                code: body.code,
                message: body.message.clone(),
                hint: body.hint.clone(),
            }
            .into());
        }
        other => {
            return Err(Error::UnexpectedAnswer {
                answer: format!("{other:?}"),
            }
            .into());
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
    // A port held by another process is the one thing to say first: it names the holder.
    let held = bad.iter().find(|p| p.port_conflict);
    let mut others = Vec::new();
    let mut details = String::new();
    for p in &bad {
        if held.is_some_and(|h| h.name == p.name) {
            continue;
        }
        others.push(NotWhere {
            name: p.name.clone(),
            state: p.state.to_string(),
            reason: p
                .reason
                .clone()
                .unwrap_or_else(|| "no reason recorded".to_owned()),
        });
        if p.port_conflict || p.not_run {
            continue;
        }
        let log = std::path::Path::new(&p.log);
        let tail = match p.log_from {
            Some(from) => crate::logs::run_tail(log, from, 20),
            None => crate::logs::current_run_tail(log, 20),
        }
        .unwrap_or_default();
        if !tail.trim().is_empty() {
            details.push_str(&format!("--- last lines of {} ---\n{tail}", p.log));
            if !details.ends_with('\n') {
                details.push('\n');
            }
        }
    }
    let err = if let Some(p) = held {
        Error::PortHeld {
            process: p.name.clone(),
            held: p
                .reason
                .clone()
                .unwrap_or_else(|| "a declared port is held".to_owned()),
            others,
            details,
        }
    } else if outcome.timed_out {
        Error::TimedOut {
            after: timeout,
            bad: others,
            details,
        }
    } else if verb == "down" || verb == "stop" {
        Error::NotStopped {
            bad: others,
            details,
        }
    } else {
        Error::NotReady {
            total: outcome.processes.len(),
            bad: others,
            details,
        }
    };
    Err(err.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twelve_processes_get_twelve_colours_before_any_repeats() {
        let first: std::collections::BTreeSet<&str> = (0..12).map(color_at).collect();
        assert_eq!(first.len(), 12, "{first:?}");
        assert_eq!(color_at(12), color_at(0), "then they repeat");
    }
}
