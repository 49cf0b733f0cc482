//! `procs logs` and the log streaming of `procs up --attach`.
//!
//! Reads the files directly, so it works with or without a supervisor. Following uses
//! inotify on the logs directory (event-driven), reopening a file when it is rotated.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::time::Duration;

use super::args::{Global, LogsArgs};
use super::out::Out;
use super::{project, render};
use crate::error::exit;
use crate::logs::{self, Followed};
use crate::paths::Paths;
use crate::platform;

fn prefix(name: &str, width: usize, color: bool) -> String {
    if color {
        format!("{}{name:<width$}\x1b[0m │ ", render::name_color(name))
    } else {
        format!("{name:<width$} │ ")
    }
}

/// Names with a log file, or recorded in the registry.
fn known_names(paths: &Paths) -> Vec<String> {
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
    names.into_iter().collect()
}

pub fn logs(global: &Global, out: &Out, args: &LogsArgs) -> anyhow::Result<i32> {
    let project = project::locate(global)?;
    let paths = &project.paths;
    let all = known_names(paths);
    let names = if args.names.is_empty() {
        all
    } else {
        let with_log: BTreeSet<String> = all.into_iter().collect();
        project::check_names(&project.file, &args.names, &with_log, || {
            project::load_file(&project)
                .map(|c| project::defined(&c))
                .unwrap_or_default()
        })?;
        args.names.clone()
    };
    let width = names.iter().map(String::len).max().unwrap_or(0);
    let mut stdout = io::stdout().lock();
    for name in &names {
        let path = paths.log_file(name);
        let mut lines = logs::tail_lines(&path, args.lines).unwrap_or_default();
        if let Some(since) = args.since {
            lines = logs::since(lines, &path, logs::cutoff(since));
        }
        let pre = prefix(name, width, out.color);
        for line in lines {
            writeln!(stdout, "{pre}{line}")?;
        }
    }
    drop(stdout);
    if args.follow {
        follow(paths, &names, width, out, &|| false)?;
    }
    Ok(exit::OK)
}

/// Stream new lines of `names` until `stop()` says so (or forever).
pub(super) fn follow(
    paths: &Paths,
    names: &[String],
    width: usize,
    out: &Out,
    stop: &dyn Fn() -> bool,
) -> anyhow::Result<()> {
    let watch = platform::DirWatch::new(&paths.logs_dir)?;
    let mut files: Vec<Followed> = names
        .iter()
        .map(|n| Followed::at_end(n, paths.log_file(n)))
        .collect();
    loop {
        let mut stdout = io::stdout().lock();
        for file in &mut files {
            let pre = prefix(&file.name, width, out.color);
            for line in file.read_new() {
                writeln!(stdout, "{pre}{line}")?;
            }
        }
        stdout.flush()?;
        drop(stdout);
        if stop() {
            return Ok(());
        }
        watch.wait(Some(Duration::from_millis(500)))?;
    }
}
