//! Where the dashboard's messages come from: one thread per source, one channel to the
//! main loop.
//!
//! Owns: [`Msg`] and the threads that produce it — the terminal (keys, resizes), the
//! supervisor's subscription (a snapshot, then each change: never a poll of the
//! registry while a supervisor runs), the log files (followed through rotations and
//! restarts by [`crate::logs::Followed`], woken by inotify), and the results of actions.
//! Must not: change the dashboard's state (the main loop applies messages to `App`).
//! Invariants: each thread ends by itself once the main loop dropped the receiver; without
//! a supervisor, the registry is shown and the socket is tried again whenever the state
//! directory changes (and at least every [`RETRY`]), so a stack brought up elsewhere
//! appears without restarting the dashboard.

use std::collections::BTreeMap;
use std::sync::mpsc::Sender;
use std::time::Duration;

use ratatui::crossterm::event;

use super::app::{Action, LogLine, Row};
use crate::control::client;
use crate::control::protocol::{Event, Response, Snapshot};
use crate::logs::{self, Followed};
use crate::paths::Paths;
use crate::platform;
use crate::registry::{self, Loaded};

/// Longest wait between two attempts to reach a supervisor that is not there.
const RETRY: Duration = Duration::from_secs(2);
/// Lines of each log shown when the dashboard opens.
const INITIAL_LINES: usize = 200;
/// Pause after a log change before reading, so a burst of writes is one message.
const LOG_COALESCE: Duration = Duration::from_millis(50);

/// One message for the main loop.
#[derive(Debug)]
pub enum Msg {
    Term(event::Event),
    Snapshot(Snapshot),
    Event(Event),
    /// No supervisor answers: these are the registry's rows (verified).
    Unsupervised(Vec<Row>),
    /// The supervisor answered the subscription with an error (an older version).
    SubscribeRefused(String),
    Logs(Vec<LogLine>),
    Done {
        action: Action,
        result: Result<String, String>,
    },
}

/// Keys and resizes.
pub fn spawn_terminal(tx: Sender<Msg>) {
    std::thread::spawn(move || {
        while let Ok(ev) = event::read() {
            if tx.send(Msg::Term(ev)).is_err() {
                return;
            }
        }
    });
}

/// The supervisor's event stream, or the registry while there is no supervisor.
/// `order` is the config's start order (for the registry's rows).
pub fn spawn_supervisor(paths: Paths, order: Vec<String>, tx: Sender<Msg>) {
    std::thread::spawn(move || {
        loop {
            if let Ok(mut conn) = client::subscribe(&paths) {
                loop {
                    let msg = match conn.next_frame() {
                        Ok(Some(Response::Snapshot(s))) => Msg::Snapshot(s),
                        Ok(Some(Response::Event(e))) => Msg::Event(e),
                        Ok(Some(Response::Error(body))) => Msg::SubscribeRefused(body.message),
                        Ok(Some(_)) => continue,
                        Ok(None) | Err(_) => break,
                    };
                    let refused = matches!(msg, Msg::SubscribeRefused(_));
                    if tx.send(msg).is_err() {
                        return;
                    }
                    if refused {
                        break;
                    }
                }
            }
            if tx
                .send(Msg::Unsupervised(registry_rows(&paths, &order)))
                .is_err()
            {
                return;
            }
            match platform::DirWatch::new(&paths.state_dir) {
                Ok(watch) => {
                    let _ = watch.wait(Some(RETRY));
                }
                Err(_) => std::thread::sleep(RETRY),
            }
        }
    });
}

/// The registry as it is: a live state whose pid does not check out is shown as exited,
/// and a state only a supervisor can be in (pending, backoff, starting) as stopped.
pub fn registry_rows(paths: &Paths, order: &[String]) -> Vec<Row> {
    let Ok(Loaded::Ok(reg)) = registry::load(&paths.state_file, false) else {
        return Vec::new();
    };
    let mut names: Vec<&String> = order
        .iter()
        .filter(|n| reg.processes.contains_key(*n))
        .collect();
    names.extend(reg.processes.keys().filter(|n| !order.contains(n)));
    names
        .into_iter()
        .filter_map(|name| {
            let rec = reg.processes.get(name)?;
            let verified = rec.verified();
            let (state, reason, pid) = super::super::status::effective(rec, verified, false);
            let ev = Event {
                name: name.clone(),
                state,
                reason,
                pid,
                waiting_for: None,
                restarts: rec.restarts,
                exit_code: rec.exit_code,
                signal: rec.signal,
                started_at: pid.and(rec.started_at.clone()),
                next_restart_at: None,
                has_health: rec.has_health,
                at: rec.updated_at.clone(),
                ports: rec.ports.clone(),
            };
            Some(Row::from_event(&ev))
        })
        .collect()
}

/// Every process log of the project: the newest lines first, then each new line as it is
/// written, across rotations and restarts.
pub fn spawn_logs(paths: Paths, tx: Sender<Msg>) {
    std::thread::spawn(move || {
        let mut files: BTreeMap<String, Followed> = BTreeMap::new();
        let mut initial = Vec::new();
        for name in log_names(&paths) {
            let path = paths.log_file(&name);
            for text in logs::tail_lines(&path, INITIAL_LINES).unwrap_or_default() {
                initial.push(LogLine {
                    name: name.clone(),
                    text,
                });
            }
            files.insert(name.clone(), Followed::at_end(&name, path));
        }
        if tx.send(Msg::Logs(initial)).is_err() {
            return;
        }
        let mut watch = platform::DirWatch::new(&paths.logs_dir).ok();
        loop {
            if let Some(w) = &watch {
                let _ = w.wait(Some(RETRY));
                std::thread::sleep(LOG_COALESCE);
            } else {
                // No logs directory yet (nothing ever ran): look again later.
                std::thread::sleep(RETRY);
                watch = platform::DirWatch::new(&paths.logs_dir).ok();
            }
            for name in log_names(&paths) {
                if !files.contains_key(&name) {
                    // Created after we started: all of it is new.
                    let path = paths.log_file(&name);
                    files.insert(name.clone(), Followed::at_offset(&name, path, 0));
                }
            }
            let mut lines = Vec::new();
            for (name, file) in &mut files {
                for text in file.read_new() {
                    lines.push(LogLine {
                        name: name.clone(),
                        text,
                    });
                }
            }
            if !lines.is_empty() && tx.send(Msg::Logs(lines)).is_err() {
                return;
            }
        }
    });
}

/// Names with a `NAME.log` in the logs directory (not the supervisor's own log).
fn log_names(paths: &Paths) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(&paths.logs_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let file = entry.file_name();
            let name = file.to_str()?.strip_suffix(".log")?.to_owned();
            (name != "procs" && crate::names::is_valid(&name)).then_some(name)
        })
        .collect();
    names.sort();
    names
}
