//! Process identity and discovery from `/proc/PID/stat`, and the owner and command line
//! of a pid.
//!
//! Owns: the constants of the running system (boot id, clock tick rate, page size, uptime),
//! [`ProcStat`] and its parser, [`start_time`] and [`is_alive_same`] (the pid-reuse guard),
//! the ppid/pgid walks ([`descendants`], [`group_members`], [`children_zombies`]),
//! [`cmdline`], [`uid_of`], [`user_name`], [`current_uid`] and [`is_executable_file`].
//!
//! Must not: cache anything that can change while this process lives (only the boot id,
//! clock tick rate and page size are cached), or signal anything.
//!
//! Invariants:
//! - A process's identity is `(pid, start time, boot id)`: [`is_alive_same`] is true only for
//!   that exact process, never for a later one reusing the pid or for a zombie.
//! - The whole-table scans read each `/proc/PID/stat` at most once, and never report zombies
//!   as live members or descendants.
//! - A pid ≤ 0 has no stat, command line or owner.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::sync::OnceLock;

use nix::unistd::{Uid, User};

/// `AT_PAGESZ` in the auxiliary vector.
const AT_PAGESZ: usize = 6;
/// `AT_CLKTCK` in the auxiliary vector.
const AT_CLKTCK: usize = 17;
/// `PF_KTHREAD` in the `flags` field of `/proc/PID/stat`.
const PF_KTHREAD: u64 = 0x0020_0000;

// Constants of the running system

/// The current boot id (`/proc/sys/kernel/random/boot_id`), read once. Empty if unreadable,
/// which makes [`is_alive_same`] accept only records that also carry an empty boot id.
pub fn boot_id() -> &'static str {
    static BOOT_ID: OnceLock<String> = OnceLock::new();
    BOOT_ID.get_or_init(|| {
        fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    })
}

/// Clock ticks per second (`USER_HZ`), the unit of start times and CPU times in `/proc`.
pub fn clock_ticks_per_second() -> u64 {
    auxv().0
}

/// The page size in bytes (the unit of RSS in `/proc/PID/stat`).
pub fn page_size() -> u64 {
    auxv().1
}

/// `(clock ticks per second, page size)` from `/proc/self/auxv`, with Linux's usual values as
/// the fallback (nix's `sysconf` needs a feature we do not otherwise use).
fn auxv() -> (u64, u64) {
    static AUXV: OnceLock<(u64, u64)> = OnceLock::new();
    *AUXV.get_or_init(|| {
        let bytes = fs::read("/proc/self/auxv").unwrap_or_default();
        let lookup = |key: usize| {
            const W: usize = size_of::<usize>();
            bytes.chunks_exact(2 * W).find_map(|pair| {
                let (k, v) = pair.split_at(W);
                let k = usize::from_ne_bytes(k.try_into().ok()?);
                let v = usize::from_ne_bytes(v.try_into().ok()?);
                (k == key && v > 0).then_some(v as u64)
            })
        };
        (
            lookup(AT_CLKTCK).unwrap_or(100),
            lookup(AT_PAGESZ).unwrap_or(4096),
        )
    })
}

/// Seconds since boot, from `/proc/uptime`.
pub(super) fn uptime_secs() -> Option<f64> {
    let text = fs::read_to_string("/proc/uptime").ok()?;
    text.split_ascii_whitespace().next()?.parse().ok()
}

// /proc/PID/stat

/// The parts of `/proc/PID/stat` procs uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    /// The executable name (`comm`, at most 15 bytes), without the parentheses.
    pub comm: String,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    /// `R`, `S`, `D`, `Z`, `T`, `t`, `X`, `I`, …
    pub state: char,
    /// Kernel start time in clock ticks since boot (field 22): with the boot id, the identity
    /// of a process that survives pid reuse.
    pub start_time: u64,
    pub utime_ticks: u64,
    pub stime_ticks: u64,
    pub rss_bytes: u64,
    /// A kernel thread (`PF_KTHREAD`): never one of ours.
    pub kernel_thread: bool,
}

impl ProcStat {
    /// Exited but not yet reaped (`Z`), or being torn down (`X`).
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

/// Parse the text of `/proc/PID/stat`. `comm` may contain spaces and parentheses, so the fields
/// are counted from the *last* `)`.
fn parse_stat(pid: i32, text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    // Fields 3.. of proc_pid_stat(5); `field(n)` is field n in the man page's numbering.
    let rest: Vec<&str> = text.get(close + 1..)?.split_ascii_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).copied();
    let num = |n: usize| field(n)?.parse::<u64>().ok();
    let int = |n: usize| field(n)?.parse::<i32>().ok();
    Some(ProcStat {
        pid,
        comm,
        state: field(3)?.chars().next()?,
        ppid: int(4)?,
        pgid: int(5)?,
        sid: int(6)?,
        kernel_thread: num(9)? & PF_KTHREAD != 0,
        utime_ticks: num(14)?,
        stime_ticks: num(15)?,
        start_time: num(22)?,
        rss_bytes: num(24)?.saturating_mul(page_size()),
    })
}

/// Read a `/proc` file into `buf` (cleared first). Plain `read(2)` calls through `Take`:
/// `fs::read` adds a `statx` and an `lseek` per file, which shows when scanning every pid.
pub(super) fn read_proc(path: &str, buf: &mut Vec<u8>) -> bool {
    /// Larger than any environment block `execve` accepts by default.
    const LIMIT: u64 = 8 << 20;
    buf.clear();
    fs::File::open(path)
        .and_then(|f| f.take(LIMIT).read_to_end(buf))
        .is_ok()
}

/// `/proc/PID/stat` of a process, `None` if it does not exist (or `pid` ≤ 0).
pub fn stat(pid: i32) -> Option<ProcStat> {
    stat_with(pid, &mut Vec::with_capacity(512))
}

pub(super) fn stat_with(pid: i32, buf: &mut Vec<u8>) -> Option<ProcStat> {
    if pid <= 0 || !read_proc(&format!("/proc/{pid}/stat"), buf) {
        return None;
    }
    parse_stat(pid, &String::from_utf8_lossy(buf))
}

/// Kernel start time of `pid` in clock ticks since boot (field 22 of `/proc/PID/stat`).
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|s| s.start_time)
}

/// True only if `pid` exists, is not a zombie, started at `start_time` (clock ticks since boot)
/// and `boot_id` is the current boot. This is the check that keeps procs from signalling a
/// stranger that inherited a recorded pid.
pub fn is_alive_same(pid: i32, start_time: u64, boot_id: &str) -> bool {
    boot_id == self::boot_id()
        && stat(pid).is_some_and(|s| !s.is_zombie() && s.start_time == start_time)
}

/// Every pid listed in `/proc` (thread-group leaders only).
pub(super) fn all_pids() -> impl Iterator<Item = i32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
}

/// `/proc/PID/stat` of every process.
fn all_stats() -> Vec<ProcStat> {
    let mut buf = Vec::with_capacity(512);
    all_pids()
        .filter_map(|pid| stat_with(pid, &mut buf))
        .collect()
}

/// `/proc/PID/stat` of every live (non-zombie, non-kernel) process: one whole-table scan,
/// for callers that walk the tree several ways (`crate::membership`).
pub fn process_table() -> Vec<ProcStat> {
    let mut stats = all_stats();
    stats.retain(|s| !s.is_zombie() && !s.kernel_thread);
    stats
}

/// Every live (non-zombie) descendant of `roots`, found by a ppid walk over `/proc`. The roots
/// themselves are not included. Processes that were re-parented away from the tree (to init or
/// a subreaper) are not found this way: that is what the `PROCS_PROJECT_ID` tag is for.
pub fn descendants(roots: &[i32]) -> Vec<i32> {
    let stats = all_stats();
    let mut children: HashMap<i32, Vec<&ProcStat>> = HashMap::new();
    for s in &stats {
        children.entry(s.ppid).or_default().push(s);
    }
    let mut seen: HashSet<i32> = roots.iter().copied().collect();
    let mut queue: Vec<i32> = roots.to_vec();
    let mut out = Vec::new();
    while let Some(parent) = queue.pop() {
        for child in children.get(&parent).into_iter().flatten() {
            if seen.insert(child.pid) {
                queue.push(child.pid);
                if !child.is_zombie() {
                    out.push(child.pid);
                }
            }
        }
    }
    out.sort_unstable();
    out
}

/// For each of `roots`, in order: the `/proc/PID/stat` of the root and of each of its live
/// descendants (root first), from one scan of `/proc` for all of them (what a dashboard
/// refreshing every process's CPU and memory once a second can afford). A root that is gone
/// or a zombie has an empty tree.
pub fn trees(roots: &[i32]) -> Vec<Vec<ProcStat>> {
    let stats = all_stats();
    let mut children: HashMap<i32, Vec<&ProcStat>> = HashMap::new();
    let mut by_pid: HashMap<i32, &ProcStat> = HashMap::new();
    for s in &stats {
        children.entry(s.ppid).or_default().push(s);
        by_pid.insert(s.pid, s);
    }
    roots
        .iter()
        .map(|root| {
            let Some(first) = by_pid.get(root).filter(|s| !s.is_zombie()) else {
                return Vec::new();
            };
            let mut tree = vec![(*first).clone()];
            let mut seen: HashSet<i32> = HashSet::from([*root]);
            let mut queue = vec![*root];
            while let Some(parent) = queue.pop() {
                for child in children.get(&parent).into_iter().flatten() {
                    if seen.insert(child.pid) {
                        queue.push(child.pid);
                        if !child.is_zombie() {
                            tree.push((*child).clone());
                        }
                    }
                }
            }
            tree
        })
        .collect()
}

/// Live (non-zombie) members of process group `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    all_stats()
        .into_iter()
        .filter(|s| s.pgid == pgid && !s.is_zombie())
        .map(|s| s.pid)
        .collect()
}

/// Zombie children of `parent`: exited, never reaped (reported by `procs doctor`).
pub fn children_zombies(parent: i32) -> Vec<i32> {
    all_stats()
        .into_iter()
        .filter(|s| s.ppid == parent && s.is_zombie())
        .map(|s| s.pid)
        .collect()
}

// Command line and owner

/// Is `path` a regular file this process may execute (what `execvp` accepts on its
/// `PATH` search)?
pub fn is_executable_file(path: &std::path::Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file())
        && nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok()
}

/// The command line of `pid`, arguments joined by spaces. Processes without one (kernel
/// threads, zombies) are shown as `[comm]`, like `ps` does. `None` if the process is gone.
pub fn cmdline(pid: i32) -> Option<String> {
    if pid <= 0 {
        return None;
    }
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if args.is_empty() {
        return stat(pid).map(|s| format!("[{}]", s.comm));
    }
    Some(args.join(" "))
}

/// The effective uid of `pid` (the `Uid:` line of `/proc/PID/status`).
pub fn uid_of(pid: i32) -> Option<u32> {
    if pid <= 0 {
        return None;
    }
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    line.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// The (effective) uid of the calling process: who procs acts as. procs is never
/// installed set-uid, so this is also the real uid.
pub fn current_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// The user name of `uid`, or the number when it has none.
pub fn user_name(uid: u32) -> String {
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(user)) => user.name,
        _ => uid.to_string(),
    }
}

#[cfg(test)]
mod tree_tests {
    use super::*;

    #[test]
    fn trees_hold_each_root_and_its_descendants_and_nothing_for_a_gone_root() {
        let me = std::process::id() as i32;
        let mut kid = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let kid_pid = kid.id() as i32;
        let trees = trees(&[me, 0, kid_pid]);
        assert_eq!(trees.len(), 3);
        assert_eq!(trees[0].first().map(|s| s.pid), Some(me));
        assert!(trees[0].iter().any(|s| s.pid == kid_pid), "{:?}", trees[0]);
        assert!(trees[1].is_empty());
        assert_eq!(
            trees[2].iter().map(|s| s.pid).collect::<Vec<_>>(),
            [kid_pid]
        );
        let _ = kid.kill();
        let _ = kid.wait();
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt as _;
    use std::process::Command;

    use super::*;
    use crate::platform::test_support::{Kid, me, wait_for};
    use crate::platform::{Signal, kill};

    #[test]
    fn parse_stat_counts_fields_from_the_last_paren() {
        let text = "4242 (a (weird) ) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 \
                    1 0 123456 1000000 25 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
        let st = parse_stat(4242, text).expect("parses");
        assert_eq!(st.comm, "a (weird) ) name");
        assert_eq!((st.state, st.ppid, st.pgid, st.sid), ('S', 1, 4242, 4242));
        assert_eq!(
            (st.utime_ticks, st.stime_ticks, st.start_time),
            (7, 3, 123_456)
        );
        assert_eq!(st.rss_bytes, 25 * page_size());
        assert!(!st.kernel_thread);
        assert!(parse_stat(1, "1 (truncated) S 0").is_none());
    }

    #[test]
    fn stat_and_start_time_of_a_child() {
        let kid = Kid::sleep();
        let st = stat(kid.pid()).expect("child has a stat");
        assert_eq!(st.ppid, me());
        assert_eq!(
            st.pgid,
            kid.pid(),
            "process_group(0) makes it a group leader"
        );
        assert!(!st.is_zombie());
        assert_eq!(start_time(kid.pid()), Some(st.start_time));
        assert!(start_time(me()).is_some_and(|t| t <= st.start_time));
        assert!(stat(0).is_none() && stat(-1).is_none());
    }

    #[test]
    fn boot_id_and_system_constants() {
        assert_eq!(boot_id().len(), 36, "a uuid: {}", boot_id());
        assert!(clock_ticks_per_second() > 0);
        assert!(page_size().is_power_of_two());
    }

    #[test]
    fn is_alive_same_rejects_reused_pids_reboots_and_zombies() {
        let mut kid = Kid::sleep();
        let pid = kid.pid();
        let st = start_time(pid).expect("start time");
        assert!(is_alive_same(pid, st, boot_id()));
        // Pid reuse: the same pid with a different start time is a stranger.
        assert!(!is_alive_same(pid, st + 1, boot_id()));
        // A record from another boot is never trusted.
        assert!(!is_alive_same(
            pid,
            st,
            "00000000-0000-0000-0000-000000000000"
        ));
        // A zombie is not alive.
        kill(pid, Signal::KILL).expect("kill");
        wait_for("the child to be a zombie", || {
            stat(pid).is_some_and(|s| s.is_zombie())
        });
        assert!(!is_alive_same(pid, st, boot_id()));
        assert!(children_zombies(me()).contains(&pid));
        let _ = kid.0.wait();
        assert!(!is_alive_same(pid, st, boot_id()));
    }

    #[test]
    fn cmdline_uid_and_user_name() {
        let kid = Kid::spawn(Command::new("sleep").args(["30", "31"]).process_group(0));
        wait_for("the child to exec", || {
            cmdline(kid.pid()).as_deref() == Some("sleep 30 31")
        });
        let uid = nix::unistd::geteuid().as_raw();
        assert_eq!(current_uid(), nix::unistd::getuid().as_raw());
        assert_eq!(uid_of(kid.pid()), Some(uid));
        assert!(!user_name(uid).is_empty());
        assert_eq!(user_name(3_999_999), "3999999");
        assert!(cmdline(0).is_none());
    }
}
