//! The dashboard's state: what the screen shows, and every change to it.
//!
//! Owns: [`App`] — the process rows (fed by the supervisor's subscription, or by the
//! registry when no supervisor runs), the selection, sort and filter, the log store and the
//! log pane's position, the mode (overlays, prompts, confirmations) and the status line.
//! Must not: draw (that is `views`), read keys (`input`), touch the terminal, the socket or
//! `/proc` (`events`, `metrics`, `actions` feed it messages). Everything here is pure, so it
//! is tested without a terminal.
//! Invariants: `rows` are in the stack's start order (sorting happens when visible rows
//! are computed); the selection names a row, or is `None` only when no row is visible;
//! every log buffer is bounded ([`LOG_LINES`] per process, twice that merged).

use std::collections::{BTreeMap, VecDeque};
use std::time::SystemTime;

use crate::config::Config;
use crate::control::protocol::{Event, Snapshot};
use crate::registry::ProcState;

use super::metrics::Metrics;

/// Newest lines kept per process (the merged view keeps twice as many).
pub const LOG_LINES: usize = 5000;
/// Entries kept in a process's restart history.
const HISTORY: usize = 20;

/// One process as the table shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub state: ProcState,
    pub reason: Option<String>,
    pub pid: Option<i32>,
    pub waiting_for: Option<String>,
    pub restarts: u32,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub started_at: Option<SystemTime>,
    pub has_health: bool,
    pub metrics: Metrics,
    /// Newest last: `12:00:01 started pid 123`, `12:00:09 exited with code 1`.
    pub history: Vec<String>,
}

impl Row {
    pub fn from_event(ev: &Event) -> Self {
        Self {
            name: ev.name.clone(),
            state: ev.state,
            reason: ev.reason.clone(),
            pid: ev.pid,
            waiting_for: ev.waiting_for.clone(),
            restarts: ev.restarts,
            exit_code: ev.exit_code,
            signal: ev.signal,
            started_at: ev.started_at.as_deref().and_then(parse_time),
            has_health: ev.has_health,
            metrics: Metrics::default(),
            history: Vec::new(),
        }
    }

    /// Health as a word: only for processes with a check (or declared ports).
    pub fn health(&self) -> &'static str {
        if !self.has_health {
            return "-";
        }
        match self.state {
            ProcState::Healthy => "ok",
            ProcState::Unhealthy => "failing",
            ProcState::Starting => "checking",
            _ => "-",
        }
    }
}

fn parse_time(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(text).ok()
}

/// Where the rows come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Not known yet (the first subscription attempt is under way).
    Connecting,
    /// Live, from the supervisor with this pid.
    Supervised { pid: i32 },
    /// No supervisor: the registry as last written, pids verified.
    Unsupervised,
}

/// Table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// The stack's start order (dependencies first).
    Order,
    Name,
    Cpu,
    Memory,
}

impl Sort {
    pub fn next(self) -> Self {
        match self {
            Self::Order => Self::Name,
            Self::Name => Self::Cpu,
            Self::Cpu => Self::Memory,
            Self::Memory => Self::Order,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Order => "start order",
            Self::Name => "name",
            Self::Cpu => "cpu",
            Self::Memory => "memory",
        }
    }
}

/// Something that changes the stack; run by `actions`, one at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Start(String),
    Stop(String),
    Restart(String),
    /// `procs up`: every process not disabled.
    Up,
    /// `procs down`; with `then_quit`, the dashboard exits once it is done.
    Down {
        then_quit: bool,
    },
    /// Restart every running process one at a time, in start order, each ready before the
    /// next.
    RollingRestart,
}

impl Action {
    /// Stops something that runs: asks for a `y` first.
    pub fn destructive(&self) -> bool {
        !matches!(self, Self::Start(_) | Self::Up)
    }

    /// What the confirmation prompt and the status line say.
    pub fn describe(&self) -> String {
        match self {
            Self::Start(name) => format!("start `{name}`"),
            Self::Stop(name) => format!("stop `{name}`"),
            Self::Restart(name) => format!("restart `{name}`"),
            Self::Up => "bring the stack up".to_owned(),
            Self::Down { .. } => "bring the whole stack down".to_owned(),
            Self::RollingRestart => "restart every process, one at a time".to_owned(),
        }
    }
}

/// What a key asks the main loop to do beyond changing the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Run(Action),
    /// Leave, the stack keeps running.
    Quit,
}

/// What has the keyboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Typing the table filter.
    Filter,
    /// Typing a log search.
    Search,
    /// Waiting for `y` to run this action.
    Confirm(Action),
    /// Ctrl-C: bring the stack down (`y`), just quit (`n`), or stay (Esc).
    ConfirmQuit,
    Help,
    Info,
}

/// Whose logs the pane shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    Selected,
    All,
}

/// One line of the log pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub name: String,
    pub text: String,
}

/// The status line: the result of the last action, or an error in the catalogue's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub text: String,
    pub error: bool,
}

/// The whole dashboard.
#[derive(Debug)]
pub struct App {
    pub project: String,
    pub rows: Vec<Row>,
    pub source: Source,
    pub config: Option<Config>,
    pub sort: Sort,
    pub filter: String,
    pub selected: Option<String>,
    pub mode: Mode,
    pub target: LogTarget,
    logs: BTreeMap<String, VecDeque<String>>,
    merged: VecDeque<LogLine>,
    /// Lines between the newest line and the bottom of the pane (0: following).
    pub scroll_back: usize,
    pub paused: bool,
    pub wrap: bool,
    pub search: String,
    /// Show environment values in the info view.
    pub show_env: bool,
    pub status: Option<Status>,
    /// The action running now, if any.
    pub busy: Option<Action>,
    pub color: bool,
    /// The project's logs directory (for the info view).
    pub logs_dir: Option<std::path::PathBuf>,
}

impl App {
    pub fn new(project: &str, config: Option<Config>, color: bool) -> Self {
        Self {
            project: project.to_owned(),
            rows: Vec::new(),
            source: Source::Connecting,
            config,
            sort: Sort::Order,
            filter: String::new(),
            selected: None,
            mode: Mode::Normal,
            target: LogTarget::Selected,
            logs: BTreeMap::new(),
            merged: VecDeque::new(),
            scroll_back: 0,
            paused: false,
            wrap: false,
            search: String::new(),
            show_env: false,
            status: None,
            busy: None,
            color,
            logs_dir: None,
        }
    }

    /// A subscription snapshot: the rows become exactly these processes.
    pub fn apply_snapshot(&mut self, snapshot: &Snapshot) {
        if !snapshot.project.is_empty() {
            self.project.clone_from(&snapshot.project);
        }
        self.source = Source::Supervised {
            pid: snapshot.supervisor_pid,
        };
        let old: BTreeMap<String, Row> = self
            .rows
            .drain(..)
            .map(|row| (row.name.clone(), row))
            .collect();
        for ev in &snapshot.processes {
            let mut row = Row::from_event(ev);
            if let Some(previous) = old.get(&ev.name) {
                row.metrics = previous.metrics.clone();
                row.history.clone_from(&previous.history);
            }
            note_history(old.get(&ev.name), &mut row, ev.at.as_deref());
            self.rows.push(row);
        }
        self.fix_selection();
    }

    /// One change of one process.
    pub fn apply_event(&mut self, ev: &Event) {
        let mut row = Row::from_event(ev);
        if let Some(existing) = self.rows.iter_mut().find(|r| r.name == ev.name) {
            row.metrics = existing.metrics.clone();
            row.history = std::mem::take(&mut existing.history);
            note_history(Some(existing), &mut row, ev.at.as_deref());
            if row.pid.is_none() {
                row.metrics = Metrics::default();
            }
            *existing = row;
        } else {
            note_history(None, &mut row, ev.at.as_deref());
            self.rows.push(row);
        }
        self.fix_selection();
    }

    /// No supervisor: show these rows (from the registry), marked unsupervised.
    pub fn apply_unsupervised(&mut self, rows: Vec<Row>) {
        self.source = Source::Unsupervised;
        self.rows = rows;
        self.fix_selection();
    }

    pub fn apply_metrics(&mut self, metrics: &BTreeMap<String, Metrics>) {
        for row in &mut self.rows {
            if let Some(m) = metrics.get(&row.name) {
                row.metrics = m.clone();
            }
        }
    }

    /// New log lines, oldest first.
    pub fn push_logs(&mut self, lines: Vec<LogLine>) {
        let mut shown = 0;
        for mut line in lines {
            line.text = sanitize(&line.text);
            if self.target == LogTarget::All || self.selected.as_deref() == Some(&line.name) {
                shown += 1;
            }
            let own = self.logs.entry(line.name.clone()).or_default();
            own.push_back(line.text.clone());
            if own.len() > LOG_LINES {
                own.pop_front();
            }
            self.merged.push_back(line);
            if self.merged.len() > 2 * LOG_LINES {
                self.merged.pop_front();
            }
        }
        // Scrolled back or paused: the view stays on the same lines.
        if self.paused || self.scroll_back > 0 {
            self.scroll_back += shown;
        }
    }

    /// The lines of the log pane, oldest first, prefixed by the process name when merged.
    pub fn log_lines(&self) -> Vec<LogLine> {
        match self.target {
            LogTarget::All => self.merged.iter().cloned().collect(),
            LogTarget::Selected => {
                let Some(name) = &self.selected else {
                    return Vec::new();
                };
                self.logs
                    .get(name)
                    .map(|lines| {
                        lines
                            .iter()
                            .map(|text| LogLine {
                                name: name.clone(),
                                text: text.clone(),
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            }
        }
    }

    /// Rows passing the filter, in the chosen order.
    pub fn visible(&self) -> Vec<&Row> {
        let needle = self.filter.to_lowercase();
        let mut rows: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| needle.is_empty() || r.name.to_lowercase().contains(&needle))
            .collect();
        match self.sort {
            Sort::Order => {}
            Sort::Name => rows.sort_by(|a, b| a.name.cmp(&b.name)),
            Sort::Cpu => rows.sort_by(|a, b| {
                let cpu = |r: &Row| r.metrics.cpu_percent.unwrap_or(-1.0);
                cpu(b).total_cmp(&cpu(a)).then_with(|| a.name.cmp(&b.name))
            }),
            Sort::Memory => rows.sort_by(|a, b| {
                b.metrics
                    .memory_bytes
                    .cmp(&a.metrics.memory_bytes)
                    .then_with(|| a.name.cmp(&b.name))
            }),
        }
        rows
    }

    pub fn selected_row(&self) -> Option<&Row> {
        let name = self.selected.as_ref()?;
        self.rows.iter().find(|r| &r.name == name)
    }

    /// Keep the selection on a visible row (the first one when it was lost).
    pub fn fix_selection(&mut self) {
        let visible: Vec<String> = self.visible().iter().map(|r| r.name.clone()).collect();
        let keep = self
            .selected
            .as_ref()
            .is_some_and(|name| visible.contains(name));
        if !keep {
            self.selected = visible.first().cloned();
            self.scroll_back = 0;
        }
    }

    /// Move the selection by `delta` visible rows (clamped).
    pub fn move_selection(&mut self, delta: isize) {
        let visible: Vec<String> = self.visible().iter().map(|r| r.name.clone()).collect();
        if visible.is_empty() {
            self.selected = None;
            return;
        }
        let at = self
            .selected
            .as_ref()
            .and_then(|name| visible.iter().position(|n| n == name))
            .unwrap_or(0);
        let next = at.saturating_add_signed(delta).min(visible.len() - 1);
        if visible.get(next) != self.selected.as_ref() {
            self.selected = visible.get(next).cloned();
            if self.target == LogTarget::Selected {
                self.scroll_back = 0;
            }
        }
    }

    /// Scroll the log pane back (positive) or forward (negative).
    pub fn scroll(&mut self, delta: isize) {
        let max = self.log_lines().len().saturating_sub(1);
        self.scroll_back = self.scroll_back.saturating_add_signed(delta).min(max);
    }

    /// Jump to the next match of the search, older than the bottom line (`older`), or newer.
    /// Returns whether one was found.
    pub fn find(&mut self, older: bool) -> bool {
        if self.search.is_empty() {
            return false;
        }
        let needle = self.search.to_ascii_lowercase();
        let lines = self.log_lines();
        let bottom = lines.len().saturating_sub(1 + self.scroll_back);
        let matches = |i: &usize| lines[*i].text.to_ascii_lowercase().contains(&needle);
        let found = if older {
            (0..bottom).rev().find(matches)
        } else {
            (bottom + 1..lines.len()).find(matches)
        };
        match found {
            Some(i) => {
                self.scroll_back = lines.len() - 1 - i;
                true
            }
            None => false,
        }
    }

    pub fn set_status(&mut self, text: impl Into<String>, error: bool) {
        self.status = Some(Status {
            text: text.into(),
            error,
        });
    }

    /// The action `s` means for the selected process: stop it if it runs, else start it.
    pub fn stop_or_start(&self) -> Option<Action> {
        let row = self.selected_row()?;
        let live =
            row.state.is_live() || matches!(row.state, ProcState::Pending | ProcState::Backoff);
        Some(if live {
            Action::Stop(row.name.clone())
        } else {
            Action::Start(row.name.clone())
        })
    }
}

/// Record a new pid or a new exit of `row` (compared with `before`) in its history.
fn note_history(before: Option<&Row>, row: &mut Row, at: Option<&str>) {
    let clock = at
        .and_then(|t| t.split('T').nth(1))
        .map(|t| t.trim_end_matches('Z').chars().take(8).collect::<String>())
        .unwrap_or_default();
    let prefix = if clock.is_empty() {
        String::new()
    } else {
        format!("{clock} ")
    };
    let old_pid = before.and_then(|b| b.pid);
    if let Some(pid) = row.pid
        && old_pid != Some(pid)
    {
        row.history.push(format!("{prefix}started pid {pid}"));
    }
    let exit_changed =
        before.is_none_or(|b| (b.exit_code, b.signal) != (row.exit_code, row.signal));
    let exited = old_pid.is_some() && row.pid.is_none();
    if exited || (before.is_some() && exit_changed && row.pid.is_none()) {
        let how = match (row.exit_code, row.signal) {
            (_, Some(sig)) => format!("killed by signal {sig}"),
            (Some(code), None) => format!("exited with code {code}"),
            (None, None) => format!("{}", row.state),
        };
        row.history.push(format!("{prefix}{how}"));
    }
    if row.history.len() > HISTORY {
        let extra = row.history.len() - HISTORY;
        row.history.drain(..extra);
    }
}

/// A log line made safe to draw: terminal escape sequences (colours, cursor moves) and
/// other control characters removed, tabs expanded.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                // CSI: parameters and intermediates up to a final byte in @..~.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC: up to BEL or ST.
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\t' => out.push_str("    "),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// `93s` → `1m33s`: a short duration for the uptime column.
pub fn short_duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 86400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub fn event(name: &str, state: ProcState, pid: Option<i32>) -> Event {
        Event {
            at: Some("2026-01-01T12:00:01Z".to_owned()),
            ..Event::sample(name, state, pid)
        }
    }

    pub fn app_with(rows: &[(&str, ProcState, Option<i32>)]) -> App {
        let mut app = App::new("shop", None, false);
        app.apply_snapshot(&Snapshot {
            project: "shop".to_owned(),
            supervisor_pid: 42,
            processes: rows.iter().map(|(n, s, p)| event(n, *s, *p)).collect(),
        });
        app
    }

    fn line(name: &str, text: &str) -> LogLine {
        LogLine {
            name: name.to_owned(),
            text: text.to_owned(),
        }
    }

    #[test]
    fn events_update_rows_and_record_restarts_in_the_history() {
        let mut app = app_with(&[
            ("db", ProcState::Healthy, Some(10)),
            ("web", ProcState::Running, Some(11)),
        ]);
        assert_eq!(app.selected.as_deref(), Some("db"));
        let mut crashed = event("web", ProcState::Backoff, None);
        crashed.signal = Some(9);
        app.apply_event(&crashed);
        let mut back = event("web", ProcState::Running, Some(12));
        back.restarts = 1;
        app.apply_event(&back);
        let web = app.rows.iter().find(|r| r.name == "web").expect("web");
        assert_eq!((web.pid, web.restarts), (Some(12), 1));
        assert_eq!(
            web.history,
            [
                "12:00:01 started pid 11",
                "12:00:01 killed by signal 9",
                "12:00:01 started pid 12"
            ]
        );
        // A process that appears in an event only is added.
        app.apply_event(&event("extra", ProcState::Pending, None));
        assert_eq!(app.rows.len(), 3);
    }

    #[test]
    fn filter_and_sort_choose_the_visible_rows_and_the_selection_follows() {
        let mut app = app_with(&[
            ("web", ProcState::Running, Some(1)),
            ("db", ProcState::Running, Some(2)),
            ("worker", ProcState::Running, Some(3)),
        ]);
        app.rows[1].metrics.cpu_percent = Some(50.0);
        app.rows[2].metrics.memory_bytes = Some(1 << 30);
        let names = |app: &App| {
            app.visible()
                .iter()
                .map(|r| r.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&app), ["web", "db", "worker"]);
        app.sort = Sort::Name;
        assert_eq!(names(&app), ["db", "web", "worker"]);
        app.sort = Sort::Cpu;
        assert_eq!(names(&app)[0], "db");
        app.sort = Sort::Memory;
        assert_eq!(names(&app)[0], "worker");
        app.sort = Sort::Order;
        app.filter = "WOR".to_owned();
        app.fix_selection();
        assert_eq!(names(&app), ["worker"]);
        assert_eq!(app.selected.as_deref(), Some("worker"));
        app.filter.clear();
        app.move_selection(-1);
        assert_eq!(app.selected.as_deref(), Some("db"));
        app.move_selection(-5);
        assert_eq!(app.selected.as_deref(), Some("web"));
        app.move_selection(9);
        assert_eq!(app.selected.as_deref(), Some("worker"));
    }

    #[test]
    fn logs_follow_the_selection_merge_for_all_and_hold_still_when_paused() {
        let mut app = app_with(&[
            ("db", ProcState::Running, Some(1)),
            ("web", ProcState::Running, Some(2)),
        ]);
        app.push_logs(vec![line("db", "d1"), line("web", "w1"), line("db", "d2")]);
        let texts = |app: &App| {
            app.log_lines()
                .into_iter()
                .map(|l| l.text)
                .collect::<Vec<_>>()
        };
        assert_eq!(texts(&app), ["d1", "d2"]);
        app.target = LogTarget::All;
        assert_eq!(texts(&app), ["d1", "w1", "d2"]);
        app.paused = true;
        app.push_logs(vec![line("web", "w2")]);
        assert_eq!(app.scroll_back, 1, "paused: the view keeps its lines");
        app.search = "D1".to_owned();
        assert!(app.find(true));
        assert_eq!(app.scroll_back, 3);
        assert!(!app.find(true), "no older match");
        assert!(!app.find(false), "no newer match either");
    }

    #[test]
    fn s_stops_what_runs_and_starts_what_does_not_and_only_starting_skips_the_question() {
        let mut app = app_with(&[
            ("db", ProcState::Running, Some(1)),
            ("web", ProcState::Stopped, None),
        ]);
        assert_eq!(app.stop_or_start(), Some(Action::Stop("db".to_owned())));
        app.move_selection(1);
        assert_eq!(app.stop_or_start(), Some(Action::Start("web".to_owned())));
        assert!(Action::Stop("db".to_owned()).destructive());
        assert!(Action::RollingRestart.destructive());
        assert!(!Action::Start("db".to_owned()).destructive());
        assert!(!Action::Up.destructive());
    }

    #[test]
    fn log_lines_lose_escapes_and_control_characters() {
        assert_eq!(sanitize("\x1b[1;31mred\x1b[0m\tx\r\x07"), "red    x");
        assert_eq!(sanitize("\x1b]0;title\x07after"), "after");
        assert_eq!(sanitize("\x1b]8;;http://x\x1b\\link"), "link");
        assert_eq!(sanitize("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn short_durations() {
        assert_eq!(short_duration(5), "5s");
        assert_eq!(short_duration(93), "1m33s");
        assert_eq!(short_duration(7300), "2h1m");
        assert_eq!(short_duration(90000), "1d1h");
    }
}
