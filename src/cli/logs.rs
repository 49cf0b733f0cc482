//! `procs logs` and the log streaming of `procs up --attach`.
//!
//! Reads the files directly, so it works with or without a supervisor. Following uses
//! inotify on the logs directory (event-driven), reopening a file when it is rotated.
//! Lines of several processes are printed as one timeline (ordered by the time of each
//! line, from the index beside each log; equal times keep the order of the names) unless
//! `--no-merge`; `--json` prints one object per line (docs/configuration.md, *Logs*).

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::time::Duration;

use super::args::{Global, LogsArgs};
use super::out::Out;
use super::{project, render};
use crate::error::exit;
use crate::logs::{self, Followed, Line, Query};
use crate::paths::Paths;
use crate::platform;

/// How lines are printed: prefix, colours, timestamps or JSON, and the `--grep` filter.
pub(super) struct Printer {
    width: usize,
    color: bool,
    timestamps: bool,
    json: bool,
    grep: Option<regex::Regex>,
}

impl Printer {
    pub(super) fn plain(names: &[String], out: &Out) -> Self {
        Self {
            width: names.iter().map(String::len).max().unwrap_or(0),
            color: out.color,
            timestamps: false,
            json: false,
            grep: None,
        }
    }

    fn keeps(&self, text: &str) -> bool {
        self.grep.as_ref().is_none_or(|re| re.is_match(text))
    }

    /// One line of process number `i` (its colour) named `name`.
    fn print(&self, w: &mut impl Write, i: usize, name: &str, line: &Line) -> io::Result<()> {
        if self.json {
            let mut obj = serde_json::Map::new();
            obj.insert("time".into(), logs::format_time(line.time).into());
            obj.insert("process".into(), name.into());
            obj.insert("line".into(), line.text.as_str().into());
            if let Some(event) = logs::event_message(&line.text) {
                obj.insert("event".into(), event.into());
            }
            return writeln!(w, "{}", serde_json::Value::Object(obj));
        }
        let width = self.width;
        if self.color {
            write!(w, "{}{name:<width$}\x1b[0m │ ", render::color_at(i))?;
        } else {
            write!(w, "{name:<width$} │ ")?;
        }
        if self.timestamps {
            write!(w, "{} ", logs::format_time(line.time))?;
        }
        writeln!(w, "{}", line.text)
    }
}

/// Names with a log file.
fn logged_names(paths: &Paths) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    if let Ok(entries) = std::fs::read_dir(&paths.logs_dir) {
        for entry in entries.flatten() {
            let file = entry.file_name();
            let file = file.to_string_lossy();
            if let Some(name) = file.strip_suffix(".log")
                && name != "procs"
            {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

pub fn logs(global: &Global, out: &Out, args: &LogsArgs) -> anyhow::Result<i32> {
    let project = project::locate(global)?;
    let paths = &project.paths;
    let logged = logged_names(paths);
    let names: Vec<String> = if !args.names.is_empty() {
        project::check_names(&project.file, &args.names, &logged, || {
            project::load_file(&project)
                .map(|c| project::defined(&c))
                .unwrap_or_default()
        })?;
        args.names.clone()
    } else if args.all {
        logged.into_iter().collect()
    } else {
        // The processes of the current config (with a log); every log if the config does
        // not load, so that a broken config never hides output.
        match project::load_file(&project) {
            Ok(config) => logged
                .into_iter()
                .filter(|n| config.processes.contains_key(n))
                .collect(),
            Err(_) => logged.into_iter().collect(),
        }
    };
    let grep = match &args.grep {
        Some(pattern) => Some(
            regex::RegexBuilder::new(pattern)
                .case_insensitive(args.ignore_case)
                .build()?,
        ),
        None => None,
    };
    let printer = Printer {
        width: names.iter().map(String::len).max().unwrap_or(0),
        color: out.color && !out.json,
        timestamps: args.timestamps,
        json: out.json,
        grep,
    };
    let keep = |text: &str| printer.keeps(text);
    // Followers first: the tail ends where they start.
    let followers: Vec<Followed> = if args.follow {
        names
            .iter()
            .map(|n| Followed::at_end(n, paths.log_file(n)))
            .collect()
    } else {
        Vec::new()
    };
    let mut blocks: Vec<Vec<Line>> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let query = Query {
                lines: args.lines,
                since: args.since.map(logs::millis),
                until: args.until.map(logs::millis),
                keep: &keep,
                end: followers.get(i).map(Followed::offset),
            };
            logs::tail(&paths.log_file(name), &query).unwrap_or_default()
        })
        .collect();
    let mut stdout = io::stdout().lock();
    if args.no_merge {
        for (i, (name, lines)) in names.iter().zip(&blocks).enumerate() {
            for line in lines {
                printer.print(&mut stdout, i, name, line)?;
            }
        }
    } else {
        for (i, line) in merge(&mut blocks) {
            printer.print(&mut stdout, i, &names[i], &line)?;
        }
    }
    drop(stdout);
    if args.follow {
        follow(paths, followers, &printer, !args.no_merge, &|| false)?;
    }
    Ok(exit::OK)
}

/// One timeline from per-process lists (each in time order): ordered by time, equal times
/// in the order of the lists. Returns (list number, line).
fn merge(blocks: &mut [Vec<Line>]) -> Vec<(usize, Line)> {
    let mut all: Vec<(usize, Line)> = blocks
        .iter_mut()
        .enumerate()
        .flat_map(|(i, lines)| std::mem::take(lines).into_iter().map(move |l| (i, l)))
        .collect();
    // Stable: each list keeps its own order.
    all.sort_by_key(|(_, line)| line.time);
    all
}

/// Stream new lines of `files` until `stop()` says so (or forever); `merge`: the lines of
/// each wakeup in time order.
pub(super) fn follow(
    paths: &Paths,
    mut files: Vec<Followed>,
    printer: &Printer,
    merged: bool,
    stop: &dyn Fn() -> bool,
) -> anyhow::Result<()> {
    let watch = platform::DirWatch::new(&paths.logs_dir)?;
    loop {
        let mut blocks: Vec<Vec<Line>> = files
            .iter_mut()
            .map(|f| {
                let mut lines = f.read_new_timed();
                lines.retain(|l| printer.keeps(&l.text));
                lines
            })
            .collect();
        let batch: Vec<(usize, Line)> = if merged {
            merge(&mut blocks)
        } else {
            blocks
                .into_iter()
                .enumerate()
                .flat_map(|(i, lines)| lines.into_iter().map(move |l| (i, l)))
                .collect()
        };
        let mut stdout = io::stdout().lock();
        for (i, line) in &batch {
            printer.print(&mut stdout, *i, &files[*i].name, line)?;
        }
        stdout.flush()?;
        drop(stdout);
        if stop() {
            return Ok(());
        }
        watch.wait(Some(Duration::from_millis(500)))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(time: i64, text: &str) -> Line {
        Line {
            time,
            text: text.to_owned(),
        }
    }

    #[test]
    fn merging_orders_by_time_and_keeps_each_list_in_order() {
        let mut blocks = vec![
            vec![line(1, "a1"), line(5, "a2"), line(5, "a3")],
            vec![line(0, "b1"), line(5, "b2"), line(9, "b3")],
        ];
        let merged: Vec<String> = merge(&mut blocks)
            .into_iter()
            .map(|(i, l)| format!("{i}:{}", l.text))
            .collect();
        assert_eq!(merged, ["1:b1", "0:a1", "0:a2", "0:a3", "1:b2", "1:b3"]);
    }

    #[test]
    fn json_lines_name_the_event_of_procs_own_lines() {
        let printer = Printer {
            width: 3,
            color: false,
            timestamps: false,
            json: true,
            grep: None,
        };
        let mut out = Vec::new();
        printer
            .print(&mut out, 0, "web", &line(1_000, "hello \"x\""))
            .expect("print");
        printer
            .print(
                &mut out,
                0,
                "web",
                &line(2_000, "[procs] 1970-01-01T00:00:02Z started pid 7"),
            )
            .expect("print");
        let text = String::from_utf8(out).expect("utf-8");
        let objs: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        assert_eq!(
            objs[0],
            serde_json::json!({"time": "1970-01-01T00:00:01.000Z", "process": "web", "line": "hello \"x\""})
        );
        assert_eq!(objs[1]["event"], "started pid 7");
    }
}
