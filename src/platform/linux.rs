//! Linux implementation of the platform layer: `/proc` parsing, signals, reaping, pidfds, and
//! the locks and range collapse of log rotation.
//!
//! Sources of truth, all read fresh on every call (nothing here caches process state):
//! - `/proc/PID/stat` for ppid, process group, session, state, start time, CPU ticks and RSS;
//! - `/proc/PID/environ` for the `PROCS_*` tags (readable only for processes of the same user);
//! - `/proc/net/tcp` and `/proc/net/tcp6` for listening sockets, matched to pids through the
//!   `socket:[INODE]` links in `/proc/PID/fd` (again readable only for our own user's processes);
//! - `/proc/self/auxv` for the clock tick rate and page size (cached: they cannot change).
//!
//! Ports held by processes we cannot inspect (another user's, without root) are still reported:
//! the socket table names the owner's uid, so such a holder has `pid: None` and `cmdline: None`
//! but a real `uid`/`user` — enough for an error message that says who to ask.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::str::FromStr;
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::{Pid, Uid, User};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// The environment variable holding the project id; procs sets it on every child.
pub const ENV_PROJECT_ID: &str = "PROCS_PROJECT_ID";
/// The environment variable holding the project name.
pub const ENV_PROJECT: &str = "PROCS_PROJECT";
/// The environment variable holding the configured process name.
pub const ENV_PROCESS: &str = "PROCS_PROCESS";

/// `AT_PAGESZ` in the auxiliary vector.
const AT_PAGESZ: usize = 6;
/// `AT_CLKTCK` in the auxiliary vector.
const AT_CLKTCK: usize = 17;
/// `PF_KTHREAD` in the `flags` field of `/proc/PID/stat`.
const PF_KTHREAD: u64 = 0x0020_0000;

// ---------------------------------------------------------------------------------------------
// Constants of the running system
// ---------------------------------------------------------------------------------------------

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
fn uptime_secs() -> Option<f64> {
    let text = fs::read_to_string("/proc/uptime").ok()?;
    text.split_ascii_whitespace().next()?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// /proc/PID/stat
// ---------------------------------------------------------------------------------------------

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
fn read_proc(path: &str, buf: &mut Vec<u8>) -> bool {
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

fn stat_with(pid: i32, buf: &mut Vec<u8>) -> Option<ProcStat> {
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
fn all_pids() -> impl Iterator<Item = i32> {
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

// ---------------------------------------------------------------------------------------------
// Command line, owner, environment
// ---------------------------------------------------------------------------------------------

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

/// The user name of `uid`, or the number when it has none.
pub fn user_name(uid: u32) -> String {
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(user)) => user.name,
        _ => uid.to_string(),
    }
}

/// The raw environment block of `pid` (`KEY=VALUE\0…`). Empty for kernel threads and zombies;
/// `None` when unreadable (gone, or another user's process).
fn environ(pid: i32) -> Option<Vec<u8>> {
    fs::read(format!("/proc/{pid}/environ")).ok()
}

/// The (initial) environment of a process we may read, as UTF-8 pairs.
pub fn environ_map(pid: i32) -> Option<std::collections::BTreeMap<String, String>> {
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

fn env_string(env: &[u8], key: &str) -> Option<String> {
    env_value(env, key).map(|v| String::from_utf8_lossy(v).into_owned())
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
        if project_id.is_some_and(|want| want.as_bytes() != id) {
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
            process: env_string(&env, ENV_PROCESS),
        });
    }
    out.sort_unstable_by_key(|t| t.pid);
    out
}

// ---------------------------------------------------------------------------------------------
// Resource usage
// ---------------------------------------------------------------------------------------------

/// CPU and memory of one process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Lifetime average: CPU time (user + system) divided by the time since the process
    /// started, in percent of one core (a busy two-thread process can show 200).
    pub cpu_percent: f64,
    /// Resident set size.
    pub memory_bytes: u64,
}

/// Usage of one known pid (one read of `/proc/PID/stat` and one of `/proc/uptime`; never a
/// whole-table scan). `None` if the process is gone or a zombie.
pub fn usage(pid: i32) -> Option<Usage> {
    usage_at(pid, uptime_secs()?, &mut Vec::with_capacity(512))
}

/// [`usage`] of several pids, in order, reading `/proc/uptime` once (about 15 µs per pid).
pub fn usages(pids: &[i32]) -> Vec<Option<Usage>> {
    let Some(uptime) = uptime_secs() else {
        return vec![None; pids.len()];
    };
    let mut buf = Vec::with_capacity(512);
    pids.iter()
        .map(|&pid| usage_at(pid, uptime, &mut buf))
        .collect()
}

/// For each recorded `(pid, start_time)`: `None` unless the live process is the recorded
/// one (the [`is_alive_same`] check against `boot_id`), else its usage. One read of
/// `/proc/PID/stat` per process serves both the check and the usage.
pub fn verified_usages(records: &[(i32, u64)], boot_id: &str) -> Vec<Option<Usage>> {
    if boot_id != self::boot_id() {
        return vec![None; records.len()];
    }
    let uptime = uptime_secs();
    let mut buf = Vec::with_capacity(512);
    records
        .iter()
        .map(|&(pid, start_time)| {
            let st = stat_with(pid, &mut buf)?;
            if st.is_zombie() || st.start_time != start_time {
                return None;
            }
            Some(usage_of(&st, uptime.unwrap_or(0.0)))
        })
        .collect()
}

fn usage_at(pid: i32, uptime: f64, buf: &mut Vec<u8>) -> Option<Usage> {
    let st = stat_with(pid, buf)?;
    if st.is_zombie() {
        return None;
    }
    Some(usage_of(&st, uptime))
}

fn usage_of(st: &ProcStat, uptime: f64) -> Usage {
    let hz = clock_ticks_per_second() as f64;
    let elapsed = uptime - st.start_time as f64 / hz;
    let cpu = (st.utime_ticks + st.stime_ticks) as f64 / hz;
    let cpu_percent = if elapsed > 0.0 {
        cpu / elapsed * 100.0
    } else {
        0.0
    };
    Usage {
        cpu_percent,
        memory_bytes: st.rss_bytes,
    }
}

// ---------------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------------

/// One LISTEN socket from `/proc/net/tcp{,6}`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ListenSocket {
    addr: SocketAddr,
    uid: u32,
    inode: u64,
}

/// Decode `0100007F:1F90` (IPv4) or a 32-hex-digit IPv6 address and port. The kernel prints
/// each 32-bit word of the address in host byte order.
fn parse_hex_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = ip.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// LISTEN (state `0A`) entries of one socket table.
fn parse_net_tcp(text: &str) -> impl Iterator<Item = ListenSocket> + '_ {
    text.lines().skip(1).filter_map(|line| {
        let cols: Vec<&str> = line.split_ascii_whitespace().collect();
        if cols.get(3) != Some(&"0A") {
            return None;
        }
        Some(ListenSocket {
            addr: parse_hex_addr(cols.get(1)?)?,
            uid: cols.get(7)?.parse().ok()?,
            inode: cols.get(9)?.parse().ok()?,
        })
    })
}

/// Every TCP LISTEN socket of this network namespace, IPv4 and IPv6: from `sock_diag` netlink
/// (asks the kernel for LISTEN sockets only), or from `/proc/net/tcp{,6}` where netlink is not
/// available. Reading `/proc/net/tcp` walks every socket hash bucket: ~4 ms per file on a VM
/// where the netlink dump takes ~0.3 ms.
fn listen_sockets() -> Vec<ListenSocket> {
    if let Ok(sockets) = diag::listen_sockets() {
        return sockets;
    }
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = fs::read_to_string(table) {
            out.extend(parse_net_tcp(&text));
        }
    }
    out
}

/// A minimal `NETLINK_SOCK_DIAG` client: one `SOCK_DIAG_BY_FAMILY` dump per address family,
/// restricted to TCP LISTEN sockets. Messages are built and parsed as bytes (native endian
/// headers, network-order ports), so no `unsafe` and no struct layouts are involved.
mod diag {
    use std::io;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

    use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, netlink};

    use super::ListenSocket;

    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NLM_F_REQUEST: u16 = 0x1;
    const NLM_F_DUMP: u16 = 0x300;
    const NLMSG_ERROR: u16 = 2;
    const NLMSG_DONE: u16 = 3;
    const AF_INET: u8 = 2;
    const AF_INET6: u8 = 10;
    const IPPROTO_TCP: u8 = 6;
    const TCP_LISTEN: u32 = 10;
    /// `struct nlmsghdr`.
    const HDR: usize = 16;
    /// `struct inet_diag_req_v2`.
    const REQ: usize = 56;

    fn request(family: u8) -> [u8; HDR + REQ] {
        let mut b = [0u8; HDR + REQ];
        b[0..4].copy_from_slice(&((HDR + REQ) as u32).to_ne_bytes());
        b[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        b[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        b[8..12].copy_from_slice(&1u32.to_ne_bytes());
        b[HDR] = family;
        b[HDR + 1] = IPPROTO_TCP;
        b[HDR + 4..HDR + 8].copy_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
        b
    }

    fn u32_at(b: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
    }

    /// One `struct inet_diag_msg` (the payload after the netlink header).
    fn parse_msg(m: &[u8]) -> Option<ListenSocket> {
        let port = u16::from_be_bytes(m.get(4..6)?.try_into().ok()?);
        let src = m.get(8..24)?;
        let ip = match *m.first()? {
            AF_INET => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(src.get(..4)?).ok()?)),
            AF_INET6 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(src).ok()?)),
            _ => return None,
        };
        Some(ListenSocket {
            addr: SocketAddr::new(ip, port),
            uid: u32_at(m, 64)?,
            inode: u64::from(u32_at(m, 68)?),
        })
    }

    pub(super) fn listen_sockets() -> io::Result<Vec<ListenSocket>> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            Some(netlink::SOCK_DIAG),
        )?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        for family in [AF_INET, AF_INET6] {
            rustix::net::send(&fd, &request(family), SendFlags::empty())?;
            'dump: loop {
                let (n, _) = rustix::net::recv(&fd, &mut buf[..], RecvFlags::empty())?;
                let mut rest = buf.get(..n).unwrap_or_default();
                if rest.is_empty() {
                    break;
                }
                while rest.len() >= HDR {
                    let len = u32_at(rest, 0).map_or(0, |l| l as usize);
                    let kind = u16::from_ne_bytes([rest[4], rest[5]]);
                    if len < HDR || len > rest.len() {
                        return Err(io::Error::other("malformed sock_diag reply"));
                    }
                    match kind {
                        NLMSG_DONE => break 'dump,
                        NLMSG_ERROR => {
                            let errno = u32_at(rest, HDR).map_or(0, |e| e as i32);
                            return Err(io::Error::from_raw_os_error(-errno));
                        }
                        SOCK_DIAG_BY_FAMILY => out.extend(parse_msg(&rest[HDR..len])),
                        _ => {}
                    }
                    rest = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
                }
            }
        }
        Ok(out)
    }
}

/// Socket inodes among the open fds of `pid` (`socket:[INODE]` links). `None` when the fd
/// directory is unreadable (gone, or another user's process).
fn socket_inodes(pid: i32) -> Option<Vec<u64>> {
    let dir = fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let inodes = dir
        .filter_map(|entry| {
            let target = fs::read_link(entry.ok()?.path()).ok()?;
            let target = target.to_str()?;
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect();
    Some(inodes)
}

/// Who holds a listening TCP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortHolder {
    /// `None`: the socket belongs to a process we cannot inspect (another user's, without
    /// root); `uid`/`user` still say whose it is.
    pub pid: Option<i32>,
    pub uid: u32,
    pub user: String,
    pub cmdline: Option<String>,
    pub project_id: Option<String>,
    pub project: Option<String>,
    pub process: Option<String>,
    /// The bound address, e.g. `127.0.0.1:8080` or `[::]:8080` (the first one when a process
    /// listens on the port at several addresses).
    pub addr: String,
}

/// Every process holding a LISTEN socket on `port` (any bind address, IPv4 and IPv6): all of
/// them when several share the socket (pre-fork servers), one entry per pid, sorted by pid with
/// uninspectable holders (`pid: None`) last. Empty when nothing listens.
pub fn port_holders(port: u16) -> Vec<PortHolder> {
    let sockets: Vec<ListenSocket> = listen_sockets()
        .into_iter()
        .filter(|s| s.addr.port() == port)
        .collect();
    if sockets.is_empty() {
        return Vec::new();
    }
    let by_inode: HashMap<u64, &ListenSocket> = sockets.iter().map(|s| (s.inode, s)).collect();
    let mut resolved: HashSet<u64> = HashSet::new();
    let mut holders: Vec<PortHolder> = Vec::new();
    for pid in all_pids() {
        let Some(inodes) = socket_inodes(pid) else {
            continue;
        };
        let Some(sock) = inodes.iter().find_map(|i| by_inode.get(i)) else {
            continue;
        };
        resolved.extend(inodes.iter().filter(|i| by_inode.contains_key(i)));
        let env = environ(pid).unwrap_or_default();
        let uid = uid_of(pid).unwrap_or(sock.uid);
        holders.push(PortHolder {
            pid: Some(pid),
            uid,
            user: user_name(uid),
            cmdline: cmdline(pid),
            project_id: env_string(&env, ENV_PROJECT_ID),
            project: env_string(&env, ENV_PROJECT),
            process: env_string(&env, ENV_PROCESS),
            addr: sock.addr.to_string(),
        });
    }
    let mut unknown_uids = HashSet::new();
    for sock in sockets.iter().filter(|s| !resolved.contains(&s.inode)) {
        if unknown_uids.insert(sock.uid) {
            holders.push(PortHolder {
                pid: None,
                uid: sock.uid,
                user: user_name(sock.uid),
                cmdline: None,
                project_id: None,
                project: None,
                process: None,
                addr: sock.addr.to_string(),
            });
        }
    }
    holders
}

/// Whether anything listens on TCP `port` (any address, IPv4 or IPv6).
pub fn is_port_listening(port: u16) -> bool {
    listen_sockets().iter().any(|s| s.addr.port() == port)
}

/// The TCP ports `pids` listen on (sorted, deduplicated). Readiness checks use this so that a
/// port counts only when *our* process holds it, not a stranger.
pub fn listening_ports_of(pids: &[i32]) -> Vec<u16> {
    let inodes: HashSet<u64> = pids
        .iter()
        .filter_map(|&p| socket_inodes(p))
        .flatten()
        .collect();
    let mut ports: Vec<u16> = listen_sockets()
        .into_iter()
        .filter(|s| inodes.contains(&s.inode))
        .map(|s| s.addr.port())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Whether one of `pids` holds a LISTEN socket on `port`.
pub fn pid_set_holds_port(pids: &[i32], port: u16) -> bool {
    let wanted: HashSet<u64> = listen_sockets()
        .into_iter()
        .filter(|s| s.addr.port() == port)
        .map(|s| s.inode)
        .collect();
    !wanted.is_empty()
        && pids
            .iter()
            .filter_map(|&p| socket_inodes(p))
            .any(|inodes| inodes.iter().any(|i| wanted.contains(i)))
}

// ---------------------------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------------------------

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Signal 0 (existence probe) or a named signal.
fn to_signal(sig: i32) -> io::Result<Option<Signal>> {
    if sig == 0 {
        return Ok(None);
    }
    Signal::try_from(sig)
        .map(Some)
        .map_err(|_| invalid(format!("unknown signal {sig}")))
}

/// Send `sig` to one process. A process that is already gone (`ESRCH`) counts as success.
/// `pid` ≤ 0 is refused (`kill(0)`/`kill(-1)` would hit our own group or everything).
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    if pid <= 0 {
        return Err(invalid(format!("refusing to signal pid {pid}")));
    }
    match nix::sys::signal::kill(Pid::from_raw(pid), to_signal(sig)?) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Send `sig` to every process of group `pgid`; an empty group (`ESRCH`) counts as success.
/// `pgid` ≤ 1 and the caller's own group are refused.
pub fn kill_group(pgid: i32, sig: i32) -> io::Result<()> {
    if pgid <= 1 || pgid == nix::unistd::getpgrp().as_raw() {
        return Err(invalid(format!("refusing to signal process group {pgid}")));
    }
    match nix::sys::signal::killpg(Pid::from_raw(pgid), to_signal(sig)?) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `SIGTERM` for 15; `None` for numbers that are not a standard signal.
pub fn signal_name(sig: i32) -> Option<&'static str> {
    Signal::try_from(sig).ok().map(Signal::as_str)
}

/// Parse `SIGINT`, `INT`, `int` or `2` into a signal number.
pub fn signal_from_name(name: &str) -> Option<i32> {
    let name = name.trim();
    if let Ok(n) = name.parse::<i32>() {
        return Signal::try_from(n).ok().map(|s| s as i32);
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&full).ok().map(|s| s as i32)
}

/// Make the calling process a child subreaper: orphaned descendants (double forks, `setsid`
/// daemons) are re-parented to it instead of init, so it can still see and reap them.
pub fn set_child_subreaper() -> io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)
}

/// Restore the default action for `SIGPIPE` (the Rust runtime ignores it): a command whose
/// output is piped into `head` or `grep -m1` then ends quietly when the reader goes away,
/// like any Unix filter, instead of failing on the write.
pub fn default_sigpipe() {
    // SAFETY: SIG_DFL installs no handler, so no Rust code can run in signal context; the
    // call only changes this process's disposition for SIGPIPE.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
}

/// How a reaped child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitInfo {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Code(code) => write!(f, "exited with code {code}"),
            Self::Signal(sig) => match signal_name(sig) {
                Some(name) => write!(f, "killed by {name}"),
                None => write!(f, "killed by signal {sig}"),
            },
        }
    }
}

/// Reap every child that has exited so far (`waitpid(-1, WNOHANG)` until none is left).
///
/// This reaps *all* children of the process, so the caller must own all reaping: spawn with
/// `std::process` and never call `Child::wait`, and do not mix it with `tokio::process`.
pub fn reap_any() -> Vec<(i32, ExitInfo)> {
    let mut out = Vec::new();
    loop {
        match nix::sys::wait::waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => out.push((pid.as_raw(), ExitInfo::Code(code))),
            Ok(WaitStatus::Signaled(pid, sig, _core)) => {
                out.push((pid.as_raw(), ExitInfo::Signal(sig as i32)));
            }
            // No exited child right now, or no children at all (ECHILD).
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
            // Stopped/continued/ptrace events were not asked for; an interrupted call retries.
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// pidfd
// ---------------------------------------------------------------------------------------------

/// A pidfd: a handle on one process that cannot be confused with a later process reusing the
/// pid. Works for processes that are not our children (adopted after a supervisor restart).
#[derive(Debug)]
pub struct PidFd {
    pid: i32,
    fd: OwnedFd,
}

impl PidFd {
    /// Open a pidfd for `pid`. `Ok(None)` when the process is already gone (`ESRCH`, or
    /// `EINVAL` for a process in the middle of exiting).
    pub fn open(pid: i32) -> io::Result<Option<Self>> {
        let raw = rustix::process::Pid::from_raw(pid)
            .filter(|_| pid > 0)
            .ok_or_else(|| invalid(format!("no pidfd for pid {pid}")))?;
        match rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::NONBLOCK) {
            Ok(fd) => Ok(Some(Self { pid, fd })),
            Err(rustix::io::Errno::SRCH | rustix::io::Errno::INVAL) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The pid this handle was opened for.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Resolve once the process has exited (it may still be an unreaped zombie). Needs a tokio
    /// runtime; cancel-safe. One waiter per `PidFd` at a time: each call registers the fd
    /// with the reactor for as long as it is pending.
    pub async fn exited(&self) -> io::Result<()> {
        // SAFETY: the borrowed fd is `self.fd`, an open pidfd that stays open (and refers to
        // the same file description) for longer than `async_fd`, a local dropped at the end of
        // this call while `&self` is still borrowed.
        let async_fd =
            unsafe { AsyncFd::register_with_interest(self.fd.as_fd(), Interest::READABLE) }?;
        let _ready = async_fd.readable().await?;
        Ok(())
    }

    /// Send `sig` to exactly this process; success if it is already gone.
    pub fn send_signal(&self, sig: i32) -> io::Result<()> {
        let signal = rustix::process::Signal::from_named_raw(sig)
            .ok_or_else(|| invalid(format!("unknown signal {sig}")))?;
        match rustix::process::pidfd_send_signal(&self.fd, signal) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Advisory file locks (log rotation and its readers, the supervisor lock) and range collapse
// ---------------------------------------------------------------------------------------------

/// A `flock(2)` lock on a file, held through its own open file description and released
/// when dropped (or when the process dies: the kernel closes the descriptor).
#[derive(Debug)]
pub struct FileLock {
    _file: fs::File,
}

/// Take `LOCK_EX` on the file at `path`, waiting at most `patience` for the other holders
/// to let go. Used by the rotator around the few calls readers must see as one step, and
/// for the supervisor lock. `Ok(None)` when the patience ran out.
pub fn lock_exclusive(
    path: &std::path::Path,
    patience: std::time::Duration,
) -> io::Result<Option<FileLock>> {
    lock_file(path, patience, fs::File::try_lock)
}

/// Take `LOCK_SH` on the file at `path`, waiting at most `patience` for an exclusive holder.
/// `Ok(None)` when the patience ran out (a rotator stopped while holding the lock: the caller
/// reads without it rather than hang); `Err` when the file cannot be opened.
pub fn lock_shared(
    path: &std::path::Path,
    patience: std::time::Duration,
) -> io::Result<Option<FileLock>> {
    lock_file(path, patience, fs::File::try_lock_shared)
}

/// `flock` is all or nothing (no timeout): try, then pause a little longer each time.
fn lock_file(
    path: &std::path::Path,
    patience: std::time::Duration,
    try_lock: fn(&fs::File) -> Result<(), fs::TryLockError>,
) -> io::Result<Option<FileLock>> {
    let file = fs::File::open(path)?;
    let deadline = std::time::Instant::now() + patience;
    let mut pause = std::time::Duration::from_micros(100);
    loop {
        match try_lock(&file) {
            Ok(()) => return Ok(Some(FileLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => {}
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(std::time::Duration::from_millis(5));
    }
}

/// Remove the bytes `[0, len)` from the front of `file` in place
/// (`fallocate(FALLOC_FL_COLLAPSE_RANGE)`): what followed them moves to offset 0 and the file
/// shrinks by `len`, with no byte copied and the inode kept, so `O_APPEND` writers go on at the
/// new end. `len` must be a multiple of the filesystem block size and less than the file size.
/// `Ok(false)` when the filesystem (or this range) does not support it (`EOPNOTSUPP`,
/// `EINVAL`): the file is unchanged.
pub fn collapse_front(file: &fs::File, len: u64) -> io::Result<bool> {
    let len = i64::try_from(len).map_err(|_| invalid(format!("cannot collapse {len} bytes")))?;
    let flags = nix::fcntl::FallocateFlags::FALLOC_FL_COLLAPSE_RANGE;
    loop {
        match nix::fcntl::fallocate(file, flags, 0, len) {
            Ok(()) => return Ok(true),
            Err(Errno::EINTR) => {}
            Err(Errno::EOPNOTSUPP | Errno::EINVAL) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Does the filesystem holding directory `dir` support [`collapse_front`]? Probes with a
/// two-block scratch file, removed before returning.
pub fn collapse_supported(dir: &std::path::Path) -> io::Result<bool> {
    use std::io::Write as _;
    use std::os::unix::fs::MetadataExt as _;
    let path = dir.join(format!(".procs-collapse-probe-{}", std::process::id()));
    let probe = (|| {
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        let block = file.metadata()?.blksize().max(1);
        let bytes = usize::try_from(2 * block).map_err(|_| invalid("huge block size".into()))?;
        file.write_all(&vec![b'.'; bytes])?;
        collapse_front(&file, block)
    })();
    let _ = fs::remove_file(&path);
    probe
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// A spawned child that is killed and reaped when the test ends, pass or fail.
    struct Kid(Child);

    impl Kid {
        fn spawn(cmd: &mut Command) -> Self {
            Self(cmd.stdin(Stdio::null()).spawn().expect("spawn test child"))
        }
        fn sleep() -> Self {
            Self::spawn(Command::new("sleep").arg("30").process_group(0))
        }
        fn pid(&self) -> i32 {
            self.0.id() as i32
        }
    }

    impl Drop for Kid {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Duration::from_secs(10);
        let start = Instant::now();
        while !cond() {
            assert!(
                start.elapsed() < deadline,
                "timed out after {deadline:?} waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn me() -> i32 {
        std::process::id() as i32
    }

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
        kill(pid, Signal::SIGKILL as i32).expect("kill");
        wait_for("the child to be a zombie", || {
            stat(pid).is_some_and(|s| s.is_zombie())
        });
        assert!(!is_alive_same(pid, st, boot_id()));
        assert!(children_zombies(me()).contains(&pid));
        let _ = kid.0.wait();
        assert!(!is_alive_same(pid, st, boot_id()));
    }

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

    #[test]
    fn cmdline_uid_and_user_name() {
        let kid = Kid::spawn(Command::new("sleep").args(["30", "31"]).process_group(0));
        wait_for("the child to exec", || {
            cmdline(kid.pid()).as_deref() == Some("sleep 30 31")
        });
        let uid = nix::unistd::geteuid().as_raw();
        assert_eq!(uid_of(kid.pid()), Some(uid));
        assert!(!user_name(uid).is_empty());
        assert_eq!(user_name(3_999_999), "3999999");
        assert!(cmdline(0).is_none());
    }

    #[test]
    fn parse_hex_addr_decodes_ipv4_and_ipv6() {
        let v4 = u32::from_ne_bytes([127, 0, 0, 1]);
        let v4 = format!("{v4:08X}:1F90");
        assert_eq!(
            parse_hex_addr(&v4),
            Some("127.0.0.1:8080".parse().expect("addr"))
        );
        let any6 = format!("{}:0050", "0".repeat(32));
        assert_eq!(
            parse_hex_addr(&any6),
            Some("[::]:80".parse().expect("addr"))
        );
        let one = u32::from_ne_bytes([0, 0, 0, 1]);
        let loop6 = format!("{}{one:08X}:0050", "0".repeat(24));
        assert_eq!(
            parse_hex_addr(&loop6),
            Some("[::1]:80".parse().expect("addr"))
        );
        assert_eq!(parse_hex_addr("zz:1"), None);
    }

    #[test]
    fn port_holders_finds_our_own_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert!(is_port_listening(port));
        let holders = port_holders(port);
        let mine = holders
            .iter()
            .find(|h| h.pid == Some(me()))
            .expect("we hold the port");
        assert_eq!(mine.addr, format!("127.0.0.1:{port}"));
        assert_eq!(mine.uid, nix::unistd::geteuid().as_raw());
        assert!(mine.cmdline.is_some());
        assert!(listening_ports_of(&[me()]).contains(&port));
        assert!(pid_set_holds_port(&[me()], port));
        let kid = Kid::sleep();
        assert!(
            !pid_set_holds_port(&[kid.pid()], port),
            "a stranger does not count"
        );
        assert!(!listening_ports_of(&[kid.pid()]).contains(&port));
        drop(listener);
        assert!(!is_port_listening(port));
        assert!(port_holders(port).is_empty());
        assert!(!pid_set_holds_port(&[me()], port));
    }

    #[test]
    fn sock_diag_and_proc_net_tcp_agree() {
        let v4 = TcpListener::bind("127.0.0.1:0").expect("bind");
        let v6 = TcpListener::bind("[::1]:0").ok();
        let from_diag = diag::listen_sockets().expect("sock_diag netlink works here");
        let mut from_proc = Vec::new();
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            from_proc.extend(parse_net_tcp(
                &fs::read_to_string(table).expect("read table"),
            ));
        }
        for listener in std::iter::once(&v4).chain(v6.as_ref()) {
            let addr = listener.local_addr().expect("addr");
            let d = from_diag
                .iter()
                .find(|s| s.addr == addr)
                .expect("netlink lists it");
            let p = from_proc
                .iter()
                .find(|s| s.addr == addr)
                .expect("/proc lists it");
            assert_eq!(d, p);
            assert_eq!(d.uid, nix::unistd::geteuid().as_raw());
        }
    }

    #[test]
    fn port_holders_sees_ipv6_listeners() {
        let Ok(listener) = TcpListener::bind("[::1]:0") else {
            return; // no IPv6 on this host
        };
        let port = listener.local_addr().expect("addr").port();
        let holders = port_holders(port);
        assert!(
            holders
                .iter()
                .any(|h| h.pid == Some(me()) && h.addr == format!("[::1]:{port}"))
        );
    }

    #[test]
    fn kill_treats_gone_as_success_and_refuses_wildcards() {
        let mut gone = Command::new("true").spawn().expect("spawn true");
        let pid = gone.id() as i32;
        let _ = gone.wait();
        kill(pid, Signal::SIGTERM as i32).expect("ESRCH is success");
        assert!(kill(0, 15).is_err());
        assert!(kill(-1, 15).is_err());
        assert!(kill_group(1, 15).is_err());
        assert!(
            kill_group(nix::unistd::getpgrp().as_raw(), 0).is_err(),
            "our own group"
        );
        assert!(kill(me(), 12345).is_err(), "unknown signal");
        kill(me(), 0).expect("signal 0 probes");
    }

    #[test]
    fn kill_group_stops_the_whole_group_found_by_descendants() {
        let mut leader = Kid::spawn(
            Command::new("sh")
                .args(["-c", "sleep 30 & sleep 30 & wait"])
                .process_group(0),
        );
        let pgid = leader.pid();
        wait_for("two grandchildren", || descendants(&[pgid]).len() == 2);
        let kids = descendants(&[pgid]);
        assert!(
            kids.iter()
                .all(|&p| stat(p).is_some_and(|s| s.ppid == pgid && s.pgid == pgid))
        );
        let mut members = group_members(pgid);
        members.sort_unstable();
        let mut expected = kids.clone();
        expected.push(pgid);
        expected.sort_unstable();
        assert_eq!(members, expected);
        kill_group(pgid, Signal::SIGKILL as i32).expect("killpg");
        let _ = leader.0.wait();
        wait_for("the group to be empty", || group_members(pgid).is_empty());
        kill_group(pgid, Signal::SIGKILL as i32).expect("an empty group is success");
    }

    #[test]
    fn signal_names_round_trip() {
        assert_eq!(signal_name(15), Some("SIGTERM"));
        assert_eq!(signal_name(0), None);
        for name in ["SIGINT", "INT", "int", " sigint ", "2"] {
            assert_eq!(signal_from_name(name), Some(2), "{name}");
        }
        assert_eq!(signal_from_name("SIGNOPE"), None);
        assert_eq!(signal_from_name("99"), None);
        assert_eq!(ExitInfo::Code(3).to_string(), "exited with code 3");
        assert_eq!(ExitInfo::Signal(9).to_string(), "killed by SIGKILL");
    }

    #[test]
    fn usage_of_self_and_of_a_gone_process() {
        let u = usage(me()).expect("we exist");
        assert!(u.memory_bytes > 0);
        assert!(u.cpu_percent >= 0.0);
        let kid = Kid::sleep();
        let u = usage(kid.pid()).expect("child exists");
        assert!(u.cpu_percent < 50.0, "sleep is idle: {u:?}");
        assert!(usage(0).is_none());
        let all = usages(&[me(), 0, kid.pid()]);
        assert!(
            all[0].is_some() && all[1].is_none() && all[2].is_some(),
            "{all:?}"
        );
    }

    #[tokio::test]
    async fn pidfd_exited_fires_when_the_process_is_killed() {
        let kid = Kid::sleep();
        let fd = PidFd::open(kid.pid()).expect("pidfd_open").expect("alive");
        assert_eq!(fd.pid(), kid.pid());
        let not_yet = tokio::time::timeout(Duration::from_millis(20), fd.exited()).await;
        assert!(not_yet.is_err(), "a sleeping process has not exited");
        fd.send_signal(Signal::SIGKILL as i32)
            .expect("pidfd_send_signal");
        tokio::time::timeout(Duration::from_secs(10), fd.exited())
            .await
            .expect("exit noticed within 10s")
            .expect("poll ok");
        // Still a zombie (nobody reaped it): signalling it again is harmless.
        fd.send_signal(Signal::SIGKILL as i32)
            .expect("signal to a zombie");
        drop(kid);
        fd.send_signal(Signal::SIGTERM as i32)
            .expect("gone is success");
    }

    #[test]
    fn pidfd_open_of_a_gone_pid_is_none() {
        let mut gone = Command::new("true").spawn().expect("spawn true");
        let pid = gone.id() as i32;
        let _ = gone.wait();
        assert!(PidFd::open(pid).expect("no error").is_none());
        assert!(PidFd::open(0).is_err());
    }

    /// Runs `reap_any_in_isolation` in a fresh copy of the test binary: `reap_any` reaps every
    /// child of the process, which would steal the children of tests running in parallel.
    #[test]
    fn reap_any_collects_children_and_orphaned_grandchildren() {
        let exe = std::env::current_exe().expect("test binary");
        let out = Command::new(exe)
            .args([
                "--exact",
                "platform::linux::tests::reap_any_in_isolation",
                "--ignored",
            ])
            .args(["--test-threads=1", "--nocapture"])
            .env("PROCS_TEST_REAP_ISOLATED", "1")
            .output()
            .expect("run the isolated test");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
    }

    #[test]
    #[ignore = "run by reap_any_collects_children_and_orphaned_grandchildren in its own process"]
    #[allow(clippy::zombie_processes, reason = "reap_any is the reaper under test")]
    fn reap_any_in_isolation() {
        if std::env::var_os("PROCS_TEST_REAP_ISOLATED").is_none() {
            return;
        }
        set_child_subreaper().expect("subreaper");
        let code = Command::new("sh")
            .args(["-c", "exit 7"])
            .spawn()
            .expect("spawn");
        let killed = Command::new("sleep").arg("30").spawn().expect("spawn");
        kill(killed.id() as i32, Signal::SIGKILL as i32).expect("kill");
        // The parent prints the grandchild's pid and exits; the grandchild is re-parented to us.
        let out = Command::new("sh")
            .args(["-c", "sh -c 'sleep 0.2; exit 3' >/dev/null & echo $!"])
            .output()
            .expect("run the parent");
        let grandchild: i32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("grandchild pid");
        let mut seen = HashMap::new();
        wait_for("all three exits", || {
            seen.extend(reap_any());
            seen.len() >= 3
        });
        assert_eq!(seen.get(&(code.id() as i32)), Some(&ExitInfo::Code(7)));
        assert_eq!(seen.get(&(killed.id() as i32)), Some(&ExitInfo::Signal(9)));
        assert_eq!(seen.get(&grandchild), Some(&ExitInfo::Code(3)));
        assert!(reap_any().is_empty());
    }
}
