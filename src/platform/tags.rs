//! Tags: finding processes by the `PROCS_*` variables procs sets in every child's
//! environment ([`crate::env_vars`]), through `/proc/PID/environ`.
//!
//! Owns: reading environments ([`environ_map`]) and the tagged-process scan
//! ([`tagged_processes`]).
//!
//! Must not: trust a tag alone for signalling (a tag only names candidates; identity is the
//! start time, checked by the caller), or read the current environment of a process (Linux
//! exposes only the initial one, which is what procs set).
//!
//! Invariants: only processes of our own user are reported (root can read every user's
//! environment, and another user can plant any tag in theirs); a `PROCS_PROCESS` value that
//! is not a valid process name ([`crate::names`]) is dropped, never used as a path; zombies,
//! kernel threads and the calling process are never reported. A 16-hex-digit project id also
//! matches the 8-hex-digit id procs 0.1 derived from the same hash ([`same_project`]), so
//! processes started before the upgrade stay members.

use std::collections::BTreeMap;
use std::fs;

use super::proc::{all_pids, read_proc, stat_with};
use crate::env_vars::{ENV_PROCESS, ENV_PROJECT, ENV_PROJECT_ID};

/// The raw environment block of `pid` (`KEY=VALUE\0…`). Empty for kernel threads and zombies;
/// `None` when unreadable (gone, or another user's process).
pub(super) fn environ(pid: i32) -> Option<Vec<u8>> {
    fs::read(format!("/proc/{pid}/environ")).ok()
}

/// The (initial) environment of a process we may read, as UTF-8 pairs.
pub fn environ_map(pid: i32) -> Option<BTreeMap<String, String>> {
    let raw = environ(pid)?;
    Some(
        raw.split(|b| *b == 0)
            .filter_map(|kv| {
                let text = std::str::from_utf8(kv).ok()?;
                let (k, v) = text.split_once('=')?;
                Some((k.to_owned(), v.to_owned()))
            })
            .collect(),
    )
}

/// The value of `key` in a raw environment block.
fn env_value<'a>(env: &'a [u8], key: &str) -> Option<&'a [u8]> {
    env.split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(key.as_bytes())?.strip_prefix(b"="))
}

pub(super) fn env_string(env: &[u8], key: &str) -> Option<String> {
    env_value(env, key).map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Does the tag value `tag` name the project `project_id`? Equal ids, or `tag` is the legacy
/// 32-bit id (8 hex digits: the two halves of the 64-bit hash folded with xor) of the 64-bit
/// `project_id`.
pub fn same_project(tag: &[u8], project_id: &str) -> bool {
    if tag == project_id.as_bytes() {
        return true;
    }
    tag.len() == 8
        && project_id.len() == 16
        && u64::from_str_radix(project_id, 16).is_ok_and(|hash| {
            let legacy = format!("{:08x}", (hash >> 32) ^ (hash & 0xffff_ffff));
            legacy.as_bytes() == tag
        })
}

/// Is `pid` a process of the user procs runs as?
fn owned_by_us(pid: i32) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == super::current_uid())
}

/// A live process carrying the `PROCS_PROJECT_ID` tag in its (initial) environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagged {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub start_time: u64,
    pub project_id: String,
    pub project: Option<String>,
    pub process: Option<String>,
}

/// Every live process tagged with `PROCS_PROJECT_ID` (only `project_id`'s if given), skipping
/// zombies, kernel threads and the calling process. One read of `/proc/PID/environ` per pid
/// (plus `/proc/PID/stat` for the tagged ones); only our own user's processes are readable,
/// which is exactly the set procs could have started. Sorted by pid.
pub fn tagged_processes(project_id: Option<&str>) -> Vec<Tagged> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let mut env = Vec::with_capacity(8192);
    let mut stat_buf = Vec::with_capacity(512);
    for pid in all_pids() {
        if pid == me || !read_proc(&format!("/proc/{pid}/environ"), &mut env) {
            continue;
        }
        let Some(id) = env_value(&env, ENV_PROJECT_ID) else {
            continue;
        };
        if project_id.is_some_and(|want| !same_project(id, want)) {
            continue;
        }
        if !owned_by_us(pid) {
            continue;
        }
        let Some(st) = stat_with(pid, &mut stat_buf) else {
            continue;
        };
        if st.is_zombie() || st.kernel_thread {
            continue;
        }
        out.push(Tagged {
            pid,
            ppid: st.ppid,
            pgid: st.pgid,
            start_time: st.start_time,
            project_id: String::from_utf8_lossy(id).into_owned(),
            project: env_string(&env, ENV_PROJECT),
            process: env_string(&env, ENV_PROCESS).filter(|n| crate::names::is_valid(n)),
        });
    }
    out.sort_unstable_by_key(|t| t.pid);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_legacy_32_bit_id_matches_its_64_bit_successor_only() {
        let hash: u64 = 0x0123_4567_89ab_cdef;
        let id = format!("{hash:016x}");
        let legacy = format!("{:08x}", (hash >> 32) ^ (hash & 0xffff_ffff));
        assert!(super::same_project(id.as_bytes(), &id));
        assert!(super::same_project(legacy.as_bytes(), &id));
        assert_eq!(legacy, "88888888");
        assert!(!super::same_project(b"88888889", &id));
        assert!(!super::same_project(b"0123456789abcdee", &id));
    }

    use std::os::unix::process::CommandExt as _;
    use std::process::Command;

    use crate::platform::cmdline;
    use crate::platform::start_time;
    use crate::platform::test_support::{Kid, me, wait_for};

    use super::*;

    #[test]
    fn tagged_processes_finds_children_by_project_id() {
        let id = format!("t{}x{}", me(), line!());
        let kid = Kid::spawn(
            Command::new("sleep")
                .arg("30")
                .process_group(0)
                .env(ENV_PROJECT_ID, &id)
                .env(ENV_PROJECT, "demo")
                .env(ENV_PROCESS, "web"),
        );
        let untagged = Kid::sleep();
        // The environment is readable as soon as the child has exec'd `sleep`.
        wait_for("the tagged child to exec", || {
            cmdline(kid.pid()).is_some_and(|c| c.starts_with("sleep"))
        });
        let found = tagged_processes(Some(&id));
        assert_eq!(found.len(), 1, "{found:?}");
        let t = &found[0];
        assert_eq!((t.pid, t.ppid, t.pgid), (kid.pid(), me(), kid.pid()));
        assert_eq!(t.start_time, start_time(kid.pid()).expect("start time"));
        assert_eq!(t.project_id, id);
        assert_eq!(t.project.as_deref(), Some("demo"));
        assert_eq!(t.process.as_deref(), Some("web"));
        assert!(tagged_processes(None).iter().any(|t| t.pid == kid.pid()));
        assert!(
            !tagged_processes(None)
                .iter()
                .any(|t| t.pid == untagged.pid())
        );
        assert!(tagged_processes(Some("no-such-project")).is_empty());
    }
}
