//! The one error grammar and the exit codes.
//!
//! Owns: how every error reaches a person (`error: …`, `caused by: …`, `hint: …`) and
//! which exit code it maps to. Commands return `anyhow::Result`; a [`Failure`] carried in
//! the chain picks the exit code, a config error maps to 2, anything else to 1.

use std::fmt;

/// Process exit codes (SPEC §6).
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// A process failed, timed out or survived a stop.
    pub const FAILED: i32 = 1;
    /// Usage or config error; nothing was changed.
    pub const USAGE: i32 = 2;
    /// A declared port is held by a foreign process.
    pub const PORT_HELD: i32 = 3;
}

/// An error meant for a person, with its exit code, optional hint and trailing details
/// (such as the last lines of a log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: i32,
    pub message: String,
    pub causes: Vec<String>,
    pub hint: Option<String>,
    pub details: Option<String>,
}

impl Failure {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            causes: Vec::new(),
            hint: None,
            details: None,
        }
    }

    #[must_use]
    pub fn cause(mut self, cause: impl Into<String>) -> Self {
        self.causes.push(cause.into());
        self
    }

    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    #[must_use]
    pub fn details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Render an error chain in the one grammar and pick its exit code.
pub fn render(err: &anyhow::Error) -> (String, i32) {
    if let Some(config) = err.downcast_ref::<crate::config::ConfigError>() {
        let mut text = config.to_string();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        return (text, exit::USAGE);
    }
    let mut out = String::new();
    let mut code = exit::FAILED;
    let mut hint = None;
    let mut details = None;
    if let Some(failure) = err.downcast_ref::<Failure>() {
        code = failure.code;
        out.push_str(&format!("error: {}\n", failure.message));
        for cause in &failure.causes {
            out.push_str(&format!("caused by: {cause}\n"));
        }
        hint.clone_from(&failure.hint);
        details.clone_from(&failure.details);
    } else {
        out.push_str(&format!("error: {err}\n"));
    }
    for cause in err.chain().skip(1) {
        out.push_str(&format!("caused by: {cause}\n"));
    }
    if let Some(hint) = hint {
        out.push_str(&format!("hint: {hint}\n"));
    }
    if let Some(details) = details {
        out.push_str(&details);
        if !details.ends_with('\n') {
            out.push('\n');
        }
    }
    (out, code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_renders_in_the_grammar() {
        let err = anyhow::Error::new(
            Failure::new(
                exit::PORT_HELD,
                "cannot start `web`: port 8080 is held by pid 42",
            )
            .cause("bind: address in use")
            .hint("stop it or run `procs up --kill-port-owners`"),
        );
        let (text, code) = render(&err);
        assert_eq!(code, 3);
        assert_eq!(
            text,
            "error: cannot start `web`: port 8080 is held by pid 42\n\
             caused by: bind: address in use\n\
             hint: stop it or run `procs up --kill-port-owners`\n"
        );
    }

    #[test]
    fn plain_errors_list_their_chain() {
        let err = anyhow::anyhow!("disk full").context("cannot write `state.json`");
        let (text, code) = render(&err);
        assert_eq!(code, 1);
        assert_eq!(
            text,
            "error: cannot write `state.json`\ncaused by: disk full\n"
        );
    }
}
