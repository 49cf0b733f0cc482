//! Who holds a declared port, and how to say so (SPEC §3).
//!
//! Owns: the classification of a port holder relative to one declared process (its own
//! tree, another process of this project, or foreign), the one wording every message about
//! a held port uses (`port 8080 is held by pid 4242 (python3 -m http.server, user alice)`),
//! and spotting "address already in use" in a process's last log lines.
//! Shared by the supervisor's pre-flight and by `procs ports`.
//!
//! Must not: signal anything or decide policy (what to stop is the supervisor's pre-flight,
//! `supervisor/ports.rs`); read `/proc` itself (holders come from [`crate::platform::port_holders`]).
//! Invariant: a holder counts as this project's only through the `PROCS_PROJECT_ID` tag in its
//! environment (or a caller-verified pid), never by name or command line.

use serde::Serialize;

use crate::platform::{self, PortHolder};

/// Longest command line shown in a message; longer ones are cut with `…`.
const MAX_COMMAND: usize = 100;

/// How a holder relates to the process that declares the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    /// Tagged with this project and the declaring process's name: its own tree.
    Own,
    /// Tagged with this project, another process.
    Project,
    /// Anything else, including processes of other procs projects and processes procs cannot
    /// inspect.
    Foreign,
}

impl Owner {
    pub fn as_str(self) -> &'static str {
        match self {
            Owner::Own => "own",
            Owner::Project => "project",
            Owner::Foreign => "foreign",
        }
    }
}

/// Classify `holder` for process `process` of the project `project_id`. A process of another
/// user is foreign whatever its tags say (anyone can put any tag in their environment).
pub fn owner(holder: &PortHolder, project_id: &str, process: &str) -> Owner {
    let ours = holder.uid == platform::current_uid()
        && holder
            .project_id
            .as_deref()
            .is_some_and(|id| platform::same_project(id.as_bytes(), project_id));
    if !ours {
        return Owner::Foreign;
    }
    if holder.process.as_deref() == Some(process) {
        Owner::Own
    } else {
        Owner::Project
    }
}

fn shorten(command: &str) -> String {
    if command.chars().count() <= MAX_COMMAND {
        return command.to_owned();
    }
    let cut: String = command.chars().take(MAX_COMMAND - 1).collect();
    format!("{cut}…")
}

/// `pid 4242 (python3 -m http.server 8080, user alice)`, then ``of project `shop` (process
/// `web`)`` when the holder is tagged; a process procs cannot inspect is named by its user.
pub fn describe_holder(h: &PortHolder) -> String {
    let Some(pid) = h.pid else {
        return format!(
            "a process of user {} (uid {}) that procs cannot inspect",
            h.user, h.uid
        );
    };
    let mut text = match &h.cmdline {
        Some(cmd) => format!("pid {pid} ({}, user {})", shorten(cmd), h.user),
        None => format!("pid {pid} (user {})", h.user),
    };
    match (&h.project, &h.process) {
        (Some(project), Some(process)) => {
            text.push_str(&format!(" of project `{project}` (process `{process}`)"));
        }
        (Some(project), None) => text.push_str(&format!(" of project `{project}`")),
        (None, Some(process)) => text.push_str(&format!(" (procs process `{process}`)")),
        (None, None) => {}
    }
    text
}

/// `port 8080 is held by pid 4242 (…)`; several holders (a pre-fork server) are listed.
pub fn held_message(port: u16, holders: &[PortHolder]) -> String {
    let names: Vec<String> = holders.iter().map(describe_holder).collect();
    match names.as_slice() {
        [] => format!("port {port} is in use"),
        [one] => format!("port {port} is held by {one}"),
        many => format!("port {port} is held by {}", many.join(" and ")),
    }
}

/// The words of a conflict `--kill-port-owners` refused to clear (`…; --kill-port-owners never
/// stops pid 1: stop it yourself`); the CLI's hint keys on them.
pub const NEVER_STOPS: &str = "--kill-port-owners never stops";

/// Does this log line say a bind failed because the address is taken?
pub fn says_address_in_use(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    lower.contains("address already in use")
        || lower.contains("address in use")
        || line.contains("EADDRINUSE")
}

/// Port numbers a log line mentions the way bind errors do: `:8080`, `port 8080`.
pub fn ports_in_line(line: &str) -> Vec<u16> {
    let mut out = Vec::new();
    let lower = line.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut push_at = |start: usize| {
        let digits: String = lower[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(port) = digits.parse::<u16>()
            && port > 0
            && !out.contains(&port)
        {
            out.push(port);
        }
    };
    for (i, b) in bytes.iter().enumerate() {
        if *b == b':' {
            push_at(i + 1);
        }
    }
    let mut from = 0;
    while let Some(at) = lower[from..].find("port ") {
        push_at(from + at + 5);
        from += at + 5;
    }
    out
}

/// From the last lines of a log: the ports an "address already in use" line points at among
/// `declared` (all of `declared` when the line names none of them, plus undeclared ports it
/// names). `None` when no line says the address is in use; `Some(empty)` when one does but
/// no port is known.
pub fn ports_in_use_from_log(tail: &str, declared: &[u16]) -> Option<Vec<u16>> {
    let mut found = false;
    let mut named = Vec::new();
    for line in tail.lines().filter(|l| !l.starts_with("[procs] ")) {
        if says_address_in_use(line) {
            found = true;
            for port in ports_in_line(line) {
                if !named.contains(&port) {
                    named.push(port);
                }
            }
        }
    }
    if !found {
        return None;
    }
    let mut ports: Vec<u16> = named
        .iter()
        .copied()
        .filter(|p| declared.contains(p))
        .collect();
    if ports.is_empty() {
        ports = declared.to_vec();
        // A port the line names that is not declared is still worth naming (e.g. a port
        // passed on the command line but not listed under `ports:`); only plausible ones.
        ports.extend(named.iter().copied().filter(|p| *p >= 1024));
    }
    Some(ports)
}

/// Numbers in a command line that look like ports (`8080`, `--port=8080`, `:8080`), for
/// naming the holder when a process that declares no ports fails on a taken address.
pub fn ports_in_command(command: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for word in command.split(|c: char| c.is_whitespace() || c == '=' || c == ':') {
        if let Ok(port) = word.trim_matches(|c| c == '"' || c == '\'').parse::<u16>()
            && port >= 1024
            && !out.contains(&port)
        {
            out.push(port);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(pid: Option<i32>, project_id: Option<&str>, process: Option<&str>) -> PortHolder {
        PortHolder {
            pid,
            uid: 1000,
            user: "alice".into(),
            cmdline: pid.map(|_| "python3 -m http.server 8080".into()),
            project_id: project_id.map(Into::into),
            project: project_id.map(|_| "shop".into()),
            process: process.map(Into::into),
            addr: "0.0.0.0:8080".into(),
        }
    }

    #[test]
    fn owner_is_decided_by_the_tags_of_our_own_processes() {
        let mine = |pid, id, process| PortHolder {
            uid: platform::current_uid(),
            ..holder(pid, id, process)
        };
        assert_eq!(
            owner(&mine(Some(1), Some("abc"), Some("web")), "abc", "web"),
            Owner::Own
        );
        assert_eq!(
            owner(&mine(Some(1), Some("abc"), Some("db")), "abc", "web"),
            Owner::Project
        );
        assert_eq!(
            owner(&mine(Some(1), Some("zzz"), Some("web")), "abc", "web"),
            Owner::Foreign
        );
        // Another user's process is foreign whatever tags it planted.
        let planted = PortHolder {
            uid: platform::current_uid().wrapping_add(1),
            ..holder(Some(1), Some("abc"), Some("web"))
        };
        assert_eq!(owner(&planted, "abc", "web"), Owner::Foreign);
        assert_eq!(
            owner(&mine(Some(1), None, None), "abc", "web"),
            Owner::Foreign
        );
    }

    #[test]
    fn messages_name_pid_command_user_and_project() {
        assert_eq!(
            held_message(8080, &[holder(Some(4242), None, None)]),
            "port 8080 is held by pid 4242 (python3 -m http.server 8080, user alice)"
        );
        assert_eq!(
            held_message(8080, &[holder(Some(4242), Some("abc"), Some("web"))]),
            "port 8080 is held by pid 4242 (python3 -m http.server 8080, user alice) \
             of project `shop` (process `web`)"
        );
        assert_eq!(
            held_message(8080, &[holder(None, None, None)]),
            "port 8080 is held by a process of user alice (uid 1000) that procs cannot inspect"
        );
    }

    #[test]
    fn long_command_lines_are_cut() {
        let mut h = holder(Some(1), None, None);
        h.cmdline = Some("x".repeat(300));
        let text = describe_holder(&h);
        assert!(text.contains('…'));
        assert!(text.len() < 200);
    }

    #[test]
    fn address_in_use_lines_are_recognised() {
        assert!(says_address_in_use(
            "cannot listen on 127.0.0.1:8080: Address already in use (os error 98)"
        ));
        assert!(says_address_in_use("Error: listen EADDRINUSE: :::3000"));
        assert!(says_address_in_use("bind(): Address in use"));
        assert!(!says_address_in_use("listening on 8080"));
    }

    #[test]
    fn ports_are_found_in_bind_errors() {
        assert_eq!(
            ports_in_line("cannot listen on 127.0.0.1:8080: Address already in use"),
            vec![8080]
        );
        assert_eq!(
            ports_in_line("Error: listen EADDRINUSE: :::3000"),
            vec![3000]
        );
        assert_eq!(ports_in_line("could not bind port 5432"), vec![5432]);
    }

    #[test]
    fn log_tail_points_at_declared_ports() {
        let tail = "[procs] started pid 1\nboot\ncannot listen on 127.0.0.1:8080: Address \
                    already in use (os error 98)\n";
        assert_eq!(ports_in_use_from_log(tail, &[8080, 9090]), Some(vec![8080]));
        assert_eq!(
            ports_in_use_from_log("bind: address in use\n", &[9090]),
            Some(vec![9090])
        );
        assert_eq!(
            ports_in_use_from_log("cannot listen on 127.0.0.1:7000: address in use", &[]),
            Some(vec![7000])
        );
        assert_eq!(
            ports_in_use_from_log("OSError: [Errno 98] Address already in use\n", &[]),
            Some(vec![])
        );
        assert_eq!(ports_in_use_from_log("all good\n", &[8080]), None);
        // procs' own event lines never count.
        assert_eq!(
            ports_in_use_from_log("[procs] x address in use :80\n", &[8080]),
            None
        );
    }

    #[test]
    fn ports_are_guessed_from_a_command_line() {
        assert_eq!(
            ports_in_command("python3 -m http.server 8080 --bind 127.0.0.1"),
            vec![8080]
        );
        assert_eq!(
            ports_in_command("node server.js --port=3000 -c 2"),
            vec![3000]
        );
        assert_eq!(ports_in_command("redis-server :6379"), vec![6379]);
    }
}
