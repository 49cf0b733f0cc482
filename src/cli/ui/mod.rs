//! `procs ui` (and `procs up --ui`): a full-screen terminal dashboard of the project's
//! stack, built with ratatui on crossterm.
//!
//! Owns: the terminal (raw mode and the alternate screen, given back on every way out:
//! `q`, Ctrl-C, an error, SIGTERM, a panic) and the main loop, which applies messages to
//! the state and draws it. One concept per file: `app` (the state, pure), `views`
//! (drawing, pure), `input` (the key map), `events` (the message sources: keys, the
//! supervisor's subscription, the log files), `metrics` (CPU, memory, ports, ~1/s) and
//! `actions` (start, stop, restart, up, down, rolling restart through the commands' own
//! code).
//! Must not: import the supervisor (it talks to it through `control`), poll the registry
//! while a supervisor runs (the subscription pushes every change), or draw when nothing
//! changed (idle, it wakes once a second for the metrics and the clock).
//! Invariants: refuses to start without a terminal on stdin and stdout, before touching
//! either; `q` leaves the stack running.

mod actions;
mod app;
mod events;
mod input;
mod metrics;
mod views;

use std::io::{self, IsTerminal as _};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use ratatui::crossterm::event::Event as TermEvent;
use ratatui::crossterm::{cursor, execute};

use super::args::Global;
use super::out::Out;
use super::project;
use crate::config::graph::Graph;
use crate::error::{self, Error};
use crate::platform;
use crate::registry::ProcState;
use app::{Action, App, Effect, Source};
use events::Msg;

/// How often CPU, memory and uptimes refresh.
const METRICS_EVERY: Duration = Duration::from_secs(1);

/// Gives the terminal back when dropped, whatever the way out.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = execute!(io::stdout(), cursor::Show);
        ratatui::restore();
    }
}

/// Run the dashboard; `up` brings the stack up first (`procs up --ui`).
pub fn run(global: &Global, out: &Out, up: bool) -> anyhow::Result<i32> {
    if !io::stdout().is_terminal() {
        return Err(Error::NotATerminal { stream: "stdout" }.into());
    }
    if !io::stdin().is_terminal() {
        return Err(Error::NotATerminal { stream: "stdin" }.into());
    }
    let project = project::locate(global)?;
    let paths = project.paths.clone();
    let (config, config_error) = match project::load_file(&project) {
        Ok(config) => (Some(config), None),
        // `up` needs a valid config; watching a running stack does not.
        Err(err) if up => return Err(err),
        Err(err) => (None, Some(actions::one_line(&error::render(&err).0))),
    };
    let order = config
        .as_ref()
        .and_then(|c| Graph::new(c).ok())
        .map(|g| g.start_order())
        .unwrap_or_default();
    let name = config.as_ref().map_or_else(
        || {
            paths
                .project_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        },
        |c| c.name.clone(),
    );
    let mut app = App::new(&name, config, out.color);
    app.logs_dir = Some(paths.logs_dir.clone());
    if let Some(err) = config_error {
        app.set_status(err, true);
    }
    let stop = platform::stop_flag()?;
    let (tx, rx) = mpsc::channel();
    events::spawn_supervisor(paths.clone(), order, tx.clone());
    events::spawn_logs(paths, tx.clone());

    let restore = Restore;
    let mut terminal = ratatui::try_init()?;
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = execute!(io::stdout(), cursor::Show);
        previous(info);
    }));
    events::spawn_terminal(tx.clone());
    if up {
        start(&mut app, Action::Up, global, &tx);
    }

    let mut sampler = metrics::Sampler::default();
    let mut next_sample = Instant::now();
    // Drawn after every wake-up only: a message, or the metrics' tick.
    let code = loop {
        if stop.load(Ordering::SeqCst) {
            break error::exit::OK;
        }
        terminal.draw(|frame| views::render(frame, &app, SystemTime::now()))?;
        let wait = next_sample.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(msg) => match handle(&mut app, msg, global, &tx) {
                Step::Go => {}
                Step::Exit(code) => break code,
            },
            Err(RecvTimeoutError::Timeout) => {
                let procs: Vec<(String, Option<i32>)> =
                    app.rows.iter().map(|r| (r.name.clone(), r.pid)).collect();
                let fresh = sampler.sample(&procs);
                app.apply_metrics(&fresh);
                next_sample = Instant::now() + METRICS_EVERY;
            }
            Err(RecvTimeoutError::Disconnected) => break error::exit::OK,
        }
    };
    drop(terminal);
    drop(restore);
    Ok(code)
}

/// What the main loop does after a message.
enum Step {
    Go,
    Exit(i32),
}

fn handle(app: &mut App, msg: Msg, global: &Global, tx: &mpsc::Sender<Msg>) -> Step {
    match msg {
        Msg::Term(TermEvent::Key(key)) => match input::on_key(app, key) {
            Some(Effect::Quit) => return Step::Exit(error::exit::OK),
            Some(Effect::Run(action)) => start(app, action, global, tx),
            None => {}
        },
        Msg::Term(_) => {}
        Msg::Snapshot(snapshot) => app.apply_snapshot(&snapshot),
        Msg::Event(event) => app.apply_event(&event),
        Msg::Unsupervised(rows) => {
            let first = app.source != Source::Unsupervised;
            app.apply_unsupervised(rows);
            if first && app.status.is_none() {
                app.set_status("no supervisor runs: u brings the stack up", false);
            }
        }
        Msg::SubscribeRefused(message) => app.set_status(
            format!(
                "error: the supervisor does not stream events ({message})  hint: it is an older \
                 procs; `procs down` then `procs up` starts a current one"
            ),
            true,
        ),
        Msg::Logs(lines) => app.push_logs(lines),
        Msg::Done { action, result } => {
            app.busy = None;
            let failed = result.is_err();
            match result {
                Ok(done) => app.set_status(done, false),
                Err(err) => app.set_status(err, true),
            }
            if action == Action::Up
                && let Ok(project) = project::locate(global)
                && let Ok(config) = project::load_file(&project)
            {
                app.config = Some(config);
            }
            if action == (Action::Down { then_quit: true }) {
                return Step::Exit(if failed {
                    error::exit::FAILED
                } else {
                    error::exit::OK
                });
            }
        }
    }
    Step::Go
}

/// Run `action` in the background unless another one is under way.
fn start(app: &mut App, action: Action, global: &Global, tx: &mpsc::Sender<Msg>) {
    if let Some(busy) = &app.busy {
        app.set_status(format!("busy: {} is under way", busy.describe()), false);
        return;
    }
    let rolling: Vec<String> = app
        .rows
        .iter()
        .filter(|r| {
            r.state.is_live() && r.state != ProcState::Stopping || r.state == ProcState::Backoff
        })
        .map(|r| r.name.clone())
        .collect();
    app.status = None;
    app.busy = Some(action.clone());
    actions::spawn(action, rolling, global.clone(), tx.clone());
}
