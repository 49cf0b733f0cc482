//! The key map: what each key does in each mode.
//!
//! Owns: [`on_key`] and [`KEYS`] (the help overlay's list, so the help cannot drift from
//! the map). Keys as in the tools people know (process-compose, mprocs, less): ↑/↓ and
//! `j`/`k` select, `/` filters, `?` helps, `q` quits; a confirmation is answered with `y`.
//! Must not: run anything itself — an action comes back as an [`Effect`] for the main loop.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::app::{Action, App, Effect, LogTarget, Mode};

/// Every key, as the help overlay lists it: (keys, what they do).
pub const KEYS: &[(&str, &str)] = &[
    ("↑ ↓  j k", "select a process"),
    ("s", "stop the selected process, or start it"),
    ("r", "restart the selected process"),
    ("u", "bring the stack up"),
    ("d", "bring the stack down"),
    ("R", "rolling restart: every process, one at a time"),
    (
        "i  Enter",
        "info: command, cwd, env, log, hash, exits, dependencies",
    ),
    ("e", "in info: show or hide environment values"),
    (
        "/",
        "filter processes by name (Enter keeps it, Esc clears it)",
    ),
    ("o", "sort: start order, name, CPU, memory"),
    ("a", "logs: the selected process or all of them merged"),
    ("f", "search the logs (highlighted); n older match, N newer"),
    ("PgUp PgDn", "scroll the logs back and forth"),
    ("End  G", "follow the newest log lines again"),
    ("p", "pause the log pane"),
    ("w", "wrap long log lines"),
    ("y", "confirm a stop, restart, down or rolling restart"),
    ("?", "this help"),
    ("q", "quit; the stack keeps running"),
    ("Ctrl-C", "quit, asking whether to bring the stack down"),
];

/// Lines a page scroll moves.
const PAGE: isize = 10;

/// Apply `key` to `app`; returns what the main loop must do beyond that.
pub fn on_key(app: &mut App, key: KeyEvent) -> Option<Effect> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c')) {
        if app.mode == Mode::ConfirmQuit {
            return Some(Effect::Quit);
        }
        app.mode = Mode::ConfirmQuit;
        return None;
    }
    match app.mode.clone() {
        Mode::Filter => {
            edit(&mut app.filter, key, &mut app.mode);
            app.fix_selection();
            None
        }
        Mode::Search => {
            let before = app.mode.clone();
            edit(&mut app.search, key, &mut app.mode);
            if before != app.mode && key.code == KeyCode::Enter && !app.find(true) {
                app.set_status(format!("no earlier line matches `{}`", app.search), false);
            }
            None
        }
        Mode::Confirm(action) => {
            app.mode = Mode::Normal;
            if matches!(key.code, KeyCode::Char('y' | 'Y')) {
                return Some(Effect::Run(action));
            }
            app.set_status(format!("cancelled: {}", action.describe()), false);
            None
        }
        Mode::ConfirmQuit => match key.code {
            KeyCode::Char('y' | 'Y') => {
                app.mode = Mode::Normal;
                Some(Effect::Run(Action::Down { then_quit: true }))
            }
            KeyCode::Char('n' | 'N' | 'q') => Some(Effect::Quit),
            _ => {
                app.mode = Mode::Normal;
                None
            }
        },
        Mode::Help => {
            if matches!(key.code, KeyCode::Char('q')) {
                return Some(Effect::Quit);
            }
            app.mode = Mode::Normal;
            None
        }
        Mode::Info => match key.code {
            KeyCode::Char('e') => {
                app.show_env = !app.show_env;
                None
            }
            KeyCode::Char('q') => Some(Effect::Quit),
            KeyCode::Up | KeyCode::Char('k') => {
                app.move_selection(-1);
                None
            }
            KeyCode::Down | KeyCode::Char('j') => {
                app.move_selection(1);
                None
            }
            _ => {
                app.mode = Mode::Normal;
                app.show_env = false;
                None
            }
        },
        Mode::Normal => normal(app, key),
    }
}

fn normal(app: &mut App, key: KeyEvent) -> Option<Effect> {
    match key.code {
        KeyCode::Char('q') => return Some(Effect::Quit),
        KeyCode::Up | KeyCode::Char('k') => app.move_selection(-1),
        KeyCode::Down | KeyCode::Char('j') => app.move_selection(1),
        KeyCode::Home => app.move_selection(isize::MIN / 2),
        KeyCode::Char('?') => app.mode = Mode::Help,
        KeyCode::Char('i') | KeyCode::Enter if app.selected.is_some() => app.mode = Mode::Info,
        KeyCode::Char('/') => app.mode = Mode::Filter,
        KeyCode::Char('f') => {
            app.search.clear();
            app.mode = Mode::Search;
        }
        KeyCode::Char('n') if !app.find(true) => {
            app.set_status(format!("no earlier line matches `{}`", app.search), false);
        }
        KeyCode::Char('N') if !app.find(false) => {
            app.set_status(format!("no later line matches `{}`", app.search), false);
        }
        KeyCode::Esc => {
            app.filter.clear();
            app.search.clear();
            app.fix_selection();
        }
        KeyCode::Char('o') => {
            app.sort = app.sort.next();
            app.set_status(format!("sorted by {}", app.sort.label()), false);
        }
        KeyCode::Char('a') => {
            app.target = match app.target {
                LogTarget::All => LogTarget::Selected,
                LogTarget::Selected => LogTarget::All,
            };
            app.scroll_back = 0;
        }
        KeyCode::Char('w') => app.wrap = !app.wrap,
        KeyCode::Char('p') => {
            app.paused = !app.paused;
            if !app.paused {
                app.scroll_back = 0;
            }
        }
        KeyCode::PageUp => app.scroll(PAGE),
        KeyCode::PageDown => app.scroll(-PAGE),
        KeyCode::End | KeyCode::Char('G') => {
            app.scroll_back = 0;
            app.paused = false;
        }
        KeyCode::Char('s') => return ask(app, app.stop_or_start()),
        KeyCode::Char('r') => {
            let action = app.selected.clone().map(Action::Restart);
            return ask(app, action);
        }
        KeyCode::Char('u') => return ask(app, Some(Action::Up)),
        KeyCode::Char('d') => return ask(app, Some(Action::Down { then_quit: false })),
        KeyCode::Char('R') => return ask(app, Some(Action::RollingRestart)),
        _ => {}
    }
    None
}

/// Run `action` now, or ask first if it stops something.
fn ask(app: &mut App, action: Option<Action>) -> Option<Effect> {
    let action = action?;
    if let Some(busy) = &app.busy {
        app.set_status(format!("busy: {} is under way", busy.describe()), false);
        return None;
    }
    if action.destructive() {
        app.mode = Mode::Confirm(action);
        None
    } else {
        Some(Effect::Run(action))
    }
}

/// Line editing for the filter and the search prompts.
fn edit(text: &mut String, key: KeyEvent, mode: &mut Mode) {
    match key.code {
        KeyCode::Enter => *mode = Mode::Normal,
        KeyCode::Esc => {
            text.clear();
            *mode = Mode::Normal;
        }
        KeyCode::Backspace => {
            text.pop();
        }
        KeyCode::Char(c) => text.push(c),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ui::app::tests::app_with;
    use crate::registry::ProcState;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ch(c: char) -> KeyEvent {
        key(KeyCode::Char(c))
    }

    #[test]
    fn destructive_keys_ask_first_and_only_y_runs_them() {
        let mut app = app_with(&[
            ("db", ProcState::Running, Some(1)),
            ("web", ProcState::Stopped, None),
        ]);
        assert_eq!(on_key(&mut app, ch('r')), None);
        assert_eq!(app.mode, Mode::Confirm(Action::Restart("db".to_owned())));
        assert_eq!(
            on_key(&mut app, ch('y')),
            Some(Effect::Run(Action::Restart("db".to_owned())))
        );
        assert_eq!(app.mode, Mode::Normal);
        on_key(&mut app, ch('d'));
        assert_eq!(on_key(&mut app, ch('x')), None, "anything but y cancels");
        assert_eq!(app.mode, Mode::Normal);
        // Starting a stopped process needs no confirmation.
        on_key(&mut app, ch('j'));
        assert_eq!(
            on_key(&mut app, ch('s')),
            Some(Effect::Run(Action::Start("web".to_owned())))
        );
        assert_eq!(on_key(&mut app, ch('u')), Some(Effect::Run(Action::Up)));
    }

    #[test]
    fn ctrl_c_asks_whether_to_bring_the_stack_down() {
        let mut app = app_with(&[("db", ProcState::Running, Some(1))]);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(on_key(&mut app, ctrl_c), None);
        assert_eq!(app.mode, Mode::ConfirmQuit);
        assert_eq!(
            on_key(&mut app, ch('y')),
            Some(Effect::Run(Action::Down { then_quit: true }))
        );
        on_key(&mut app, ctrl_c);
        assert_eq!(on_key(&mut app, ch('n')), Some(Effect::Quit));
        let mut app = app_with(&[("db", ProcState::Running, Some(1))]);
        on_key(&mut app, ctrl_c);
        assert_eq!(on_key(&mut app, key(KeyCode::Esc)), None, "Esc stays");
        assert_eq!(app.mode, Mode::Normal);
        assert_eq!(on_key(&mut app, ch('q')), Some(Effect::Quit));
    }

    #[test]
    fn the_filter_prompt_edits_and_narrows_the_table() {
        let mut app = app_with(&[
            ("db", ProcState::Running, Some(1)),
            ("web", ProcState::Running, Some(2)),
        ]);
        on_key(&mut app, ch('/'));
        for c in "wex".chars() {
            on_key(&mut app, ch(c));
        }
        on_key(&mut app, key(KeyCode::Backspace));
        assert_eq!(app.filter, "we");
        assert_eq!(app.selected.as_deref(), Some("web"));
        on_key(&mut app, key(KeyCode::Enter));
        assert_eq!(app.mode, Mode::Normal);
        assert_eq!(app.visible().len(), 1);
        on_key(&mut app, key(KeyCode::Esc));
        assert_eq!(app.visible().len(), 2);
    }
}
