//! Process names: the one rule for what a name may be, wherever a name enters procs.
//!
//! Owns: [`is_valid`] and its wording ([`RULE`]). Names come from `procs.yaml`, the command
//! line, the `PROCS_PROCESS` tag of a running process and the registry; each of those checks
//! here before the name is used, because a name becomes a file name (`logs/NAME.log`,
//! `pids/NAME.pid`).
//! Must not: import anything (every layer may use it).
//! Invariant: a valid name is a single, visible path component: never empty, never `.` or
//! `..`, no `/`, no NUL or control character, not starting with `.` (no hidden files) or `-`
//! (no option look-alikes), at most [`MAX_LEN`] bytes.

/// The longest name (a log file name must stay well under `NAME_MAX`, 255 bytes).
pub const MAX_LEN: usize = 128;

/// The rule in words, for error messages.
pub const RULE: &str = "use letters, digits, `_`, `.` and `-`, starting with a letter, a digit or \
                        `_`, at most 128 characters";

/// Is `name` a valid process name?
pub fn is_valid(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() <= MAX_LEN
        && bytes
            .first()
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_single_visible_path_components_are_names() {
        for ok in [
            "web",
            "db-1",
            "api.v2",
            "_x",
            "9lives",
            &"a".repeat(MAX_LEN),
        ] {
            assert!(is_valid(ok), "{ok:?} is valid");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "-web",
            "a/b",
            "/abs/path",
            "../x",
            "a\0b",
            "a\nb",
            "a b",
            "é",
            &"a".repeat(MAX_LEN + 1),
        ] {
            assert!(!is_valid(bad), "{bad:?} is refused");
        }
    }
}
