//! Port ownership from the kernel's TCP socket tables.
//!
//! Owns: listing LISTEN sockets (through `sock_diag` netlink, [`diag`], with
//! `/proc/net/tcp{,6}` as the fallback) and matching them to pids through the
//! `socket:[INODE]` links in `/proc/PID/fd`: [`port_holders`], [`is_port_listening`],
//! [`listening_ports_of`], [`pid_set_holds_port`].
//!
//! Must not: bind, connect or probe ports (a port "listens" only if the kernel's table says
//! so), or decide what a foreign holder means (that is `ports` and the supervisor).
//!
//! Invariants:
//! - A port counts as held by a set of pids only when one of them owns the LISTEN socket, never
//!   because a stranger listens on it.
//! - Ports held by processes we cannot inspect (another user's, without root) are still
//!   reported: the socket table names the owner's uid, so such a holder has `pid: None` and
//!   `cmdline: None` but a real `uid`/`user` — enough for an error message that says who to ask.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::proc::all_pids;
use super::tags::{env_string, environ};
use super::{cmdline, uid_of, user_name};
use crate::env_vars::{ENV_PROCESS, ENV_PROJECT, ENV_PROJECT_ID};

mod diag;

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
            process: env_string(&env, ENV_PROCESS).filter(|n| crate::names::is_valid(n)),
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

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;
    use crate::platform::test_support::{Kid, me};

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
}
