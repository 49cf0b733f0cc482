//! A minimal `NETLINK_SOCK_DIAG` client: one `SOCK_DIAG_BY_FAMILY` dump per address family,
//! restricted to TCP LISTEN sockets. Messages are built and parsed as bytes (native endian
//! headers, network-order ports), so no `unsafe` and no struct layouts are involved.
//!
//! Owns: building the `inet_diag_req_v2` dump request and parsing `inet_diag_msg` replies.
//! Must not: resolve sockets to pids (that is `sockets`), or keep the netlink socket open.
//! Invariant: any reply it cannot make sense of is an error, so the caller falls back to
//! `/proc/net/tcp{,6}` instead of reporting a partial table.
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
