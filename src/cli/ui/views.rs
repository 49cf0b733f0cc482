//! Drawing the dashboard: a pure function of the state (and the clock, for uptimes).
//!
//! Owns: the layout — a header line, the process table, the log pane, the status line —
//! and the overlays (help, info, prompts). Colours only when the app has them (`NO_COLOR`,
//! `--no-color` and non-terminals get none); the selection, matches and errors are also
//! marked without colour (reversed text, a `▶`), so nothing depends on colour alone.
//! Must not: change the state, or read anything but the state.
//! Invariants: fits 80×24 (narrow layouts drop the WAITING column and fold it into the
//! state), and never writes a control character from a log line to the terminal
//! (`app::sanitize` already removed them).

use std::time::SystemTime;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState, Wrap};

use super::app::{App, LogTarget, Mode, Row as ProcRow, Source, short_duration};
use super::input::KEYS;
use crate::config::{Command, graph};
use crate::registry::ProcState;

/// Narrower than this, the WAITING column folds into STATE.
const WIDE: u16 = 100;

pub fn render(frame: &mut Frame, app: &App, now: SystemTime) {
    let area = frame.area();
    let visible = app.visible();
    let table_height = (visible.len() as u16 + 1)
        .max(2)
        .min((area.height.saturating_sub(2)) * 45 / 100)
        .max(3);
    let [header, table, logs, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(table_height),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area);
    frame.render_widget(Paragraph::new(header_line(app)), header);
    render_table(frame, app, &visible, table, now);
    render_logs(frame, app, logs);
    frame.render_widget(Paragraph::new(status_line(app)), status);
    match &app.mode {
        Mode::Help => render_help(frame, app, area),
        Mode::Info => render_info(frame, app, area),
        _ => {}
    }
}

fn style(app: &App, color: Color) -> Style {
    if app.color {
        Style::default().fg(color)
    } else {
        Style::default()
    }
}

fn state_color(state: ProcState) -> Color {
    match state {
        ProcState::Healthy | ProcState::Running => Color::Green,
        ProcState::Starting | ProcState::Pending | ProcState::Stopping => Color::Yellow,
        ProcState::Unhealthy | ProcState::Failed | ProcState::Exited => Color::Red,
        ProcState::Backoff => Color::Magenta,
        ProcState::Completed => Color::Blue,
        ProcState::Stopped => Color::DarkGray,
    }
}

fn header_line(app: &App) -> Line<'static> {
    let mut spans = vec![
        Span::styled("procs ui", Style::default().add_modifier(Modifier::BOLD)),
        Span::raw(format!(" · {} · ", app.project)),
    ];
    match &app.source {
        Source::Connecting => spans.push(Span::raw("connecting…")),
        Source::Supervised { pid } => spans.push(Span::raw(format!("supervisor {pid}"))),
        Source::Unsupervised => spans.push(Span::styled(
            "UNSUPERVISED (no supervisor runs: u brings the stack up)",
            style(app, Color::Yellow).add_modifier(Modifier::BOLD),
        )),
    }
    spans.push(Span::raw(format!(" · sort: {}", app.sort.label())));
    if !app.filter.is_empty() {
        spans.push(Span::raw(format!(" · filter: {}", app.filter)));
    }
    spans.push(Span::raw(" · ? help"));
    Line::from(spans)
}

fn state_text(row: &ProcRow, fold_waiting: bool) -> String {
    let mut text = row.state.to_string();
    if let Some(reason) = &row.reason {
        text.push_str(&format!(" ({reason})"));
    }
    if fold_waiting && let Some(waiting) = &row.waiting_for {
        text.push_str(&format!(" waiting for {waiting}"));
    }
    text
}

fn render_table(frame: &mut Frame, app: &App, visible: &[&ProcRow], area: Rect, now: SystemTime) {
    let wide = area.width >= WIDE;
    let name_width = visible
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 20) as u16;
    let mut headers = vec![
        "NAME", "STATE", "PID", "UPTIME", "RST", "CPU", "MEM", "PORTS", "HEALTH",
    ];
    let mut widths = vec![
        Constraint::Length(name_width),
        Constraint::Fill(2),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(3),
        Constraint::Length(5),
        Constraint::Length(6),
        Constraint::Length(8),
        Constraint::Length(7),
    ];
    if wide {
        headers.push("WAITING FOR");
        widths.push(Constraint::Fill(1));
    }
    let rows = visible.iter().map(|r| {
        let uptime = r
            .started_at
            .filter(|_| r.pid.is_some())
            .and_then(|t| now.duration_since(t).ok())
            .map_or_else(|| "-".to_owned(), |d| short_duration(d.as_secs()));
        let cpu = r
            .metrics
            .cpu_percent
            .map_or_else(|| "-".to_owned(), |c| format!("{c:.1}"));
        let mem = r
            .metrics
            .memory_bytes
            .map_or_else(|| "-".to_owned(), super::super::status::bytes);
        let ports = if r.metrics.ports.is_empty() {
            "-".to_owned()
        } else {
            r.metrics
                .ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut cells = vec![
            Cell::from(r.name.clone()),
            Cell::from(state_text(r, !wide)).style(style(app, state_color(r.state))),
            Cell::from(r.pid.map_or_else(|| "-".to_owned(), |p| p.to_string())),
            Cell::from(uptime),
            Cell::from(r.restarts.to_string()),
            Cell::from(cpu),
            Cell::from(mem),
            Cell::from(ports),
            Cell::from(r.health()),
        ];
        if wide {
            cells.push(Cell::from(r.waiting_for.clone().unwrap_or_default()));
        }
        Row::new(cells)
    });
    let table = Table::new(rows, widths)
        .header(Row::new(headers).style(Style::default().add_modifier(Modifier::BOLD)))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .highlight_symbol("▶ ")
        .column_spacing(1);
    let selected = app
        .selected
        .as_ref()
        .and_then(|name| visible.iter().position(|r| &r.name == name));
    let mut state = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut state);
}

fn render_logs(frame: &mut Frame, app: &App, area: Rect) {
    let whose = match (app.target, &app.selected) {
        (LogTarget::All, _) => "all processes".to_owned(),
        (LogTarget::Selected, Some(name)) => name.clone(),
        (LogTarget::Selected, None) => "nothing selected".to_owned(),
    };
    let mut title = format!(" logs: {whose} ");
    if app.paused {
        title.push_str("[paused] ");
    } else if app.scroll_back > 0 {
        title.push_str(&format!("[{} lines back] ", app.scroll_back));
    } else {
        title.push_str("[following] ");
    }
    if app.wrap {
        title.push_str("[wrap] ");
    }
    if !app.search.is_empty() {
        title.push_str(&format!("[search: {}] ", app.search));
    }
    let block = Block::default().borders(Borders::TOP).title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let lines = app.log_lines();
    let width = lines
        .iter()
        .map(|l| l.name.chars().count())
        .max()
        .unwrap_or(0);
    let height = inner.height as usize;
    let end = lines.len().saturating_sub(app.scroll_back);
    // Walk back from the bottom line until the pane is full (counting wrapped rows).
    let mut start = end;
    let mut rows = 0;
    while start > 0 && rows < height {
        start -= 1;
        let len = line_width(app, &lines[start], width);
        rows += if app.wrap && inner.width > 0 {
            len.max(1).div_ceil(inner.width as usize)
        } else {
            1
        };
    }
    let mut text = Vec::new();
    for line in &lines[start..end] {
        let mut spans = Vec::new();
        if app.target == LogTarget::All {
            spans.push(Span::styled(
                format!("{:<width$} │ ", line.name),
                style(app, Color::Cyan),
            ));
        }
        spans.extend(highlight(app, &line.text));
        text.push(Line::from(spans));
    }
    let mut paragraph = Paragraph::new(Text::from(text));
    if app.wrap {
        paragraph = paragraph.wrap(Wrap { trim: false });
        let overflow = rows.saturating_sub(height);
        paragraph = paragraph.scroll((overflow as u16, 0));
    }
    frame.render_widget(paragraph, inner);
}

fn line_width(app: &App, line: &super::app::LogLine, name_width: usize) -> usize {
    let prefix = if app.target == LogTarget::All {
        name_width + 3
    } else {
        0
    };
    prefix + line.text.chars().count()
}

/// `text` with every match of the search reversed (and yellow with colours).
fn highlight(app: &App, text: &str) -> Vec<Span<'static>> {
    if app.search.is_empty() {
        return vec![Span::raw(text.to_owned())];
    }
    let hay = text.to_ascii_lowercase();
    let needle = app.search.to_ascii_lowercase();
    let mark = if app.color {
        Style::default().bg(Color::Yellow).fg(Color::Black)
    } else {
        Style::default().add_modifier(Modifier::REVERSED)
    };
    let mut spans = Vec::new();
    let mut at = 0;
    while let Some(found) = hay[at..].find(&needle) {
        let start = at + found;
        let end = start + needle.len();
        if start > at {
            spans.push(Span::raw(text[at..start].to_owned()));
        }
        spans.push(Span::styled(text[start..end].to_owned(), mark));
        at = end;
    }
    if at < text.len() {
        spans.push(Span::raw(text[at..].to_owned()));
    }
    spans
}

fn status_line(app: &App) -> Line<'static> {
    match &app.mode {
        Mode::Filter => Line::from(format!(
            "filter: {}█  (Enter keeps it, Esc clears it)",
            app.filter
        )),
        Mode::Search => Line::from(format!(
            "search: {}█  (Enter finds, Esc clears)",
            app.search
        )),
        Mode::Confirm(action) => Line::from(Span::styled(
            format!(
                "{}? press y to confirm, any other key cancels",
                action.describe()
            ),
            style(app, Color::Yellow).add_modifier(Modifier::BOLD),
        )),
        Mode::ConfirmQuit => Line::from(Span::styled(
            "bring the stack down before quitting? y: down and quit · n: quit, leave it running · Esc: stay",
            style(app, Color::Yellow).add_modifier(Modifier::BOLD),
        )),
        _ => {
            if let Some(busy) = &app.busy {
                return Line::from(format!("{}…", busy.describe()));
            }
            match &app.status {
                Some(status) if status.error => Line::from(Span::styled(
                    status.text.clone(),
                    style(app, Color::Red).add_modifier(Modifier::BOLD),
                )),
                Some(status) => Line::from(status.text.clone()),
                None => Line::from(
                    "s stop/start · r restart · u up · d down · R rolling · / filter · f search · i info · q quit",
                ),
            }
        }
    }
}

fn overlay(frame: &mut Frame, area: Rect, title: &str, lines: Vec<Line<'static>>) {
    let width = area.width.saturating_sub(4).min(96);
    let height = (lines.len() as u16 + 2).min(area.height.saturating_sub(2));
    let popup = area.centered(Constraint::Length(width), Constraint::Length(height));
    frame.render_widget(Clear, popup);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" {title} "));
    frame.render_widget(
        Paragraph::new(Text::from(lines))
            .block(block)
            .wrap(Wrap { trim: false }),
        popup,
    );
}

fn render_help(frame: &mut Frame, app: &App, area: Rect) {
    let lines = KEYS
        .iter()
        .map(|(keys, what)| {
            Line::from(vec![
                Span::styled(
                    format!("{keys:<11}"),
                    style(app, Color::Cyan).add_modifier(Modifier::BOLD),
                ),
                Span::raw((*what).to_owned()),
            ])
        })
        .collect();
    overlay(frame, area, "keys (any key closes)", lines);
}

/// The info view's lines for the selected process.
pub fn info_lines(app: &App) -> Vec<Line<'static>> {
    let Some(row) = app.selected_row() else {
        return vec![Line::from("nothing selected")];
    };
    let mut lines = vec![Line::from(format!("state: {}", state_text(row, true)))];
    let spec = app.config.as_ref().and_then(|c| c.processes.get(&row.name));
    match spec {
        Some(spec) => {
            let command = match &spec.command {
                Command::Shell(s) => s.clone(),
                Command::Argv(argv) => argv.join(" "),
            };
            lines.push(Line::from(format!("command: {command}")));
            lines.push(Line::from(format!("cwd: {}", spec.cwd.display())));
            if spec.env.is_empty() {
                lines.push(Line::from("env: (none set in procs.yaml)"));
            } else {
                let hint = if app.show_env {
                    "e hides values"
                } else {
                    "e shows values"
                };
                lines.push(Line::from(format!("env ({hint}):")));
                for (key, value) in &spec.env {
                    let value = if app.show_env {
                        value.as_str()
                    } else {
                        "••••"
                    };
                    lines.push(Line::from(format!("  {key}={value}")));
                }
            }
            lines.push(Line::from(format!(
                "config hash: {}",
                crate::plan::config_hash(spec)
            )));
        }
        None => lines.push(Line::from("(not in the loaded procs.yaml)")),
    }
    if let Some(dir) = &app.logs_dir {
        lines.push(Line::from(format!(
            "log: {}",
            dir.join(format!("{}.log", row.name)).display()
        )));
    }
    let last_exit = match (row.exit_code, row.signal) {
        (_, Some(sig)) => format!("killed by signal {sig}"),
        (Some(code), None) => format!("exit code {code}"),
        (None, None) => "none yet".to_owned(),
    };
    lines.push(Line::from(format!("last exit: {last_exit}")));
    lines.push(Line::from(format!("restarts: {}", row.restarts)));
    if !row.history.is_empty() {
        lines.push(Line::from(format!("history: {}", row.history.join(" · "))));
    }
    if let Some(spec) = spec {
        let deps: Vec<String> = spec
            .depends_on
            .iter()
            .map(|d| format!("{} ({})", d.name, graph::condition_name(d.condition)))
            .collect();
        lines.push(Line::from(format!(
            "depends on: {}",
            if deps.is_empty() {
                "nothing".to_owned()
            } else {
                deps.join(", ")
            }
        )));
    }
    if let Some(config) = &app.config {
        let dependents: Vec<&str> = config
            .processes
            .values()
            .filter(|p| p.depends_on.iter().any(|d| d.name == row.name))
            .map(|p| p.name.as_str())
            .collect();
        lines.push(Line::from(format!(
            "dependents: {}",
            if dependents.is_empty() {
                "none".to_owned()
            } else {
                dependents.join(", ")
            }
        )));
    }
    lines
}

fn render_info(frame: &mut Frame, app: &App, area: Rect) {
    let title = app
        .selected
        .as_ref()
        .map_or_else(|| "info".to_owned(), |n| format!("{n} (any key closes)"));
    overlay(frame, area, &title, info_lines(app));
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::cli::ui::app::tests::{app_with, event};
    use crate::cli::ui::app::{Action, LogLine};

    fn draw(app: &App, width: u16, height: u16) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
        let now = humantime::parse_rfc3339("2026-01-01T12:01:40Z").expect("time");
        terminal.draw(|f| render(f, app, now)).expect("draw");
        let buffer = terminal.backend().buffer();
        (0..height)
            .map(|y| {
                (0..width)
                    .map(|x| buffer[(x, y)].symbol().to_owned())
                    .collect::<String>()
                    .trim_end()
                    .to_owned()
            })
            .collect()
    }

    fn sample() -> App {
        let mut app = app_with(&[
            ("db", ProcState::Healthy, Some(101)),
            ("web", ProcState::Pending, None),
        ]);
        let mut db = event("db", ProcState::Healthy, Some(101));
        db.started_at = Some("2026-01-01T12:00:00Z".to_owned());
        db.has_health = true;
        app.apply_event(&db);
        let mut web = event("web", ProcState::Pending, None);
        web.waiting_for = Some("db".to_owned());
        app.apply_event(&web);
        app.rows[0].metrics.cpu_percent = Some(1.5);
        app.rows[0].metrics.memory_bytes = Some(3 << 20);
        app.rows[0].metrics.ports = vec![5432];
        app.push_logs(vec![
            LogLine {
                name: "db".to_owned(),
                text: "db ready to accept connections".to_owned(),
            },
            LogLine {
                name: "web".to_owned(),
                text: "web waiting".to_owned(),
            },
        ]);
        app
    }

    #[test]
    fn the_table_and_the_log_pane_at_80x24() {
        let app = sample();
        let screen = draw(&app, 80, 24);
        assert_eq!(
            screen[..5],
            [
                "procs ui · shop · supervisor 42 · sort: start order · ? help",
                "  NAME STATE                    PID     UPTIME RST CPU   MEM    PORTS    HEALTH",
                "▶ db   healthy                  101     1m40s  0   1.5   3.0M   5432     ok",
                "  web  pending waiting for db   -       -      0   -     -      -        -",
                " logs: db [following] ──────────────────────────────────────────────────────────",
            ]
        );
        let logs_title = screen
            .iter()
            .position(|l| l.contains(" logs: db [following] "))
            .expect("log pane");
        assert_eq!(screen[logs_title + 1], "db ready to accept connections");
        assert!(
            screen[23].starts_with("s stop/start · r restart"),
            "{:?}",
            screen[23]
        );
    }

    #[test]
    fn wide_screens_get_a_waiting_column_and_merged_logs_are_prefixed() {
        let mut app = sample();
        app.target = LogTarget::All;
        let screen = draw(&app, 110, 20);
        assert!(
            screen[1].ends_with("HEALTH  WAITING FOR"),
            "{:?}",
            screen[1]
        );
        assert!(
            screen[3].contains("pending ") && screen[3].ends_with("db"),
            "{:?}",
            screen[3]
        );
        assert!(
            screen.contains(&"db  │ db ready to accept connections".to_owned()),
            "{screen:#?}"
        );
        assert!(
            screen.contains(&"web │ web waiting".to_owned()),
            "{screen:#?}"
        );
    }

    #[test]
    fn an_unsupervised_registry_is_marked_and_prompts_show_in_the_status_line() {
        let mut app = sample();
        app.source = Source::Unsupervised;
        app.mode = Mode::Confirm(Action::Restart("db".to_owned()));
        let screen = draw(&app, 80, 24);
        assert!(screen[0].contains("UNSUPERVISED"), "{:?}", screen[0]);
        assert_eq!(
            screen[23],
            "restart `db`? press y to confirm, any other key cancels"
        );
        app.mode = Mode::Normal;
        app.set_status("error: cannot reach the supervisor", true);
        assert_eq!(draw(&app, 80, 24)[23], "error: cannot reach the supervisor");
    }

    #[test]
    fn the_filter_narrows_the_table_and_search_matches_are_marked_without_colour() {
        let mut app = sample();
        app.filter = "we".to_owned();
        app.fix_selection();
        let screen = draw(&app, 80, 24);
        assert!(screen[2].starts_with("▶ web"), "{screen:#?}");
        assert!(
            !screen
                .iter()
                .any(|l| l.starts_with("  db ") || l.starts_with("▶ db"))
        );
        app.filter.clear();
        app.selected = Some("db".to_owned());
        app.search = "READY".to_owned();
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("terminal");
        terminal
            .draw(|f| render(f, &app, SystemTime::UNIX_EPOCH + Duration::from_secs(1)))
            .expect("draw");
        let buffer = terminal.backend().buffer();
        let y = (0..24)
            .find(|y| {
                buffer[(0, *y)].symbol() == "d"
                    && buffer[(1, *y)].symbol() == "b"
                    && buffer[(2, *y)].symbol() == " "
                    && buffer[(3, *y)].symbol() == "r"
            })
            .expect("the log line");
        assert!(
            buffer[(3, y)].modifier.contains(Modifier::REVERSED),
            "match marked"
        );
        assert!(
            !buffer[(0, y)].modifier.contains(Modifier::REVERSED),
            "the rest is not"
        );
        assert_eq!(buffer[(3, y)].fg, Color::Reset, "no colour without colours");
    }

    #[test]
    fn help_lists_every_key_and_info_hides_env_values_unless_asked() {
        let mut app = sample();
        app.mode = Mode::Help;
        let screen = draw(&app, 80, 30).join("\n");
        for (keys, what) in KEYS {
            assert!(
                screen.contains(keys) && screen.contains(&what[..20.min(what.len())]),
                "{keys} missing:\n{screen}"
            );
        }
        let config: crate::config::Config = serde_json::from_value(serde_json::json!({
            "name": "shop", "project_dir": "/p", "file": "/p/procs.yaml", "override_file": null,
            "processes": {}
        }))
        .expect("config");
        app.config = Some(config);
        app.logs_dir = Some("/p/.procs/logs".into());
        app.mode = Mode::Info;
        let screen = draw(&app, 80, 24).join("\n");
        assert!(screen.contains("state: healthy"), "{screen}");
        assert!(screen.contains("log: /p/.procs/logs/db.log"), "{screen}");
        assert!(screen.contains("dependents: none"), "{screen}");
    }
}
