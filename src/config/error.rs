//! Configuration errors and their rendering.
//!
//! Owns: [`ConfigError`] (every problem found while loading a configuration) and
//! [`Problem`] (one located message), plus the plain/coloured text renderer.
//! Invariants: a `ConfigError` always holds at least one problem; a problem's `line` and
//! `column` are 1-based, or both 0 when the problem has no position (a missing file, an
//! unreadable file). Problems carry the source line they point at, so rendering never
//! re-reads files. The CLI maps every `ConfigError` to exit code 2.

use std::fmt::{self, Write as _};

/// One located problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file as the user recognises it (relative to the working directory, or just its
    /// name); `None` when the problem concerns no file (e.g. no `procs.yaml` was found).
    pub file: Option<String>,
    /// 1-based line; 0 when unknown.
    pub line: u64,
    /// 1-based column (in characters); 0 when unknown.
    pub column: u64,
    /// Width of the underline, in characters (at least 1 when a snippet is shown).
    pub width: usize,
    /// Lowercase message, names in backticks.
    pub message: String,
    /// Optional `hint:` line.
    pub hint: Option<String>,
    /// The source line the problem points at, for the snippet.
    pub source_line: Option<String>,
}

impl Problem {
    /// A problem without a position.
    pub fn unlocated(file: Option<String>, message: impl Into<String>) -> Self {
        Self {
            file,
            line: 0,
            column: 0,
            width: 0,
            message: message.into(),
            hint: None,
            source_line: None,
        }
    }

    /// Adds a `hint:` line.
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    fn render_into(&self, out: &mut String, color: bool) {
        let (red, bold, blue, cyan, reset) = if color {
            (
                "\x1b[1;31m",
                "\x1b[1m",
                "\x1b[1;34m",
                "\x1b[1;36m",
                "\x1b[0m",
            )
        } else {
            ("", "", "", "", "")
        };
        let mut prefix = String::new();
        if let Some(file) = &self.file {
            prefix.push_str(file);
            if self.line > 0 {
                let _ = write!(prefix, ":{}:{}", self.line, self.column);
            }
            prefix.push_str(": ");
        }
        let _ = writeln!(
            out,
            "{bold}{prefix}{reset}{red}error{reset}{bold}: {}{reset}",
            self.message
        );
        if let (Some(src), true) = (&self.source_line, self.line > 0) {
            let num = self.line.to_string();
            let pad = " ".repeat(num.len());
            let col = usize::try_from(self.column.max(1) - 1).unwrap_or(0);
            let line_chars = src.chars().count();
            let width = self.width.max(1).min(line_chars.saturating_sub(col).max(1));
            // Keep tabs so the caret lines up with the source line.
            let lead: String = src
                .chars()
                .take(col)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let _ = writeln!(out, "{blue}{pad} |{reset}");
            let _ = writeln!(out, "{blue}{num} |{reset} {src}");
            let _ = writeln!(
                out,
                "{blue}{pad} |{reset} {lead}{red}{}{reset}",
                "^".repeat(width)
            );
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "{cyan}hint{reset}: {hint}");
        }
    }
}

/// Everything wrong with a configuration: one or more [`Problem`]s. A config error —
/// the CLI exits with code 2 and nothing is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    problems: Vec<Problem>,
}

impl ConfigError {
    /// Wraps a non-empty list of problems (sorted by file, line and column for display).
    pub(crate) fn new(mut problems: Vec<Problem>) -> Self {
        if problems.is_empty() {
            problems.push(Problem::unlocated(None, "invalid configuration"));
        }
        problems.sort_by(|a, b| {
            (a.file.as_deref(), a.line, a.column).cmp(&(b.file.as_deref(), b.line, b.column))
        });
        problems.dedup();
        Self { problems }
    }

    /// A single problem.
    pub(crate) fn single(problem: Problem) -> Self {
        Self::new(vec![problem])
    }

    /// Every problem found, in file/line/column order.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Renders every problem, with ANSI colours when `color` is set.
    pub fn render(&self, color: bool) -> String {
        let mut out = String::new();
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            p.render_into(&mut out, color);
        }
        if self.problems.len() > 1 {
            let _ = writeln!(out, "\n{} problems found", self.problems.len());
        }
        out
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.render(false).trim_end())
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_snippet_with_caret_under_the_span() {
        let p = Problem {
            file: Some("procs.yaml".into()),
            line: 3,
            column: 5,
            width: 6,
            message: "unknown key `comand`, did you mean `command`?".into(),
            hint: None,
            source_line: Some("    comand: run".into()),
        };
        let e = ConfigError::single(p);
        assert_eq!(
            e.to_string(),
            "procs.yaml:3:5: error: unknown key `comand`, did you mean `command`?\n  |\n3 |     comand: run\n  |     ^^^^^^"
        );
    }

    #[test]
    fn unlocated_problem_with_hint() {
        let e = ConfigError::single(
            Problem::unlocated(None, "no `procs.yaml` found").with_hint("create one"),
        );
        assert_eq!(
            e.to_string(),
            "error: no `procs.yaml` found\nhint: create one"
        );
    }
}
