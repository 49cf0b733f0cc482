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

/// Parse one `recv` worth of netlink messages into `out`. `Ok(true)` once the dump's
/// `NLMSG_DONE` is seen; an `NLMSG_ERROR` or a message whose length does not fit is an error.
fn parse_batch(mut rest: &[u8], out: &mut Vec<ListenSocket>) -> io::Result<bool> {
    while rest.len() >= HDR {
        let len = u32_at(rest, 0).map_or(0, |l| l as usize);
        let kind = u16::from_ne_bytes([rest[4], rest[5]]);
        if len < HDR || len > rest.len() {
            return Err(io::Error::other("malformed sock_diag reply"));
        }
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let errno = u32_at(rest, HDR).map_or(0, |e| e as i32);
                return Err(io::Error::from_raw_os_error(-errno));
            }
            SOCK_DIAG_BY_FAMILY => out.extend(parse_msg(&rest[HDR..len])),
            _ => {}
        }
        rest = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    Ok(false)
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
        loop {
            let (n, _) = rustix::net::recv(&fd, &mut buf[..], RecvFlags::empty())?;
            let batch = buf.get(..n).unwrap_or_default();
            if batch.is_empty() || parse_batch(batch, &mut out)? {
                break;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;

    /// `struct inet_diag_sockid` as `<linux/inet_diag.h>` declares it.
    #[repr(C)]
    struct InetDiagSockId {
        sport: [u8; 2],
        dport: [u8; 2],
        src: [u8; 16],
        dst: [u8; 16],
        interface: u32,
        cookie: [u32; 2],
    }

    /// `struct inet_diag_msg` as `<linux/inet_diag.h>` declares it: the layout `parse_msg`
    /// reads by offset.
    #[repr(C)]
    struct InetDiagMsg {
        family: u8,
        state: u8,
        timer: u8,
        retrans: u8,
        id: InetDiagSockId,
        expires: u32,
        rqueue: u32,
        wqueue: u32,
        uid: u32,
        inode: u32,
    }

    /// `struct inet_diag_req_v2`.
    #[repr(C)]
    struct InetDiagReqV2 {
        family: u8,
        protocol: u8,
        ext: u8,
        pad: u8,
        states: u32,
        id: InetDiagSockId,
    }

    /// A message as the kernel sends it, built field by field at the offsets of the C layout.
    fn msg(family: u8, port: u16, src: &[u8], uid: u32, inode: u32) -> Vec<u8> {
        let mut m = vec![0u8; size_of::<InetDiagMsg>()];
        m[offset_of!(InetDiagMsg, family)] = family;
        m[offset_of!(InetDiagMsg, state)] = 10; // TCP_LISTEN
        let id = offset_of!(InetDiagMsg, id);
        let sport = id + offset_of!(InetDiagSockId, sport);
        m[sport..sport + 2].copy_from_slice(&port.to_be_bytes());
        let dport = id + offset_of!(InetDiagSockId, dport);
        m[dport..dport + 2].copy_from_slice(&4242u16.to_be_bytes()); // must not be read
        let at = id + offset_of!(InetDiagSockId, src);
        m[at..at + src.len()].copy_from_slice(src);
        let at = id + offset_of!(InetDiagSockId, dst);
        m[at..at + 16].fill(0xEE); // must not be read
        let at = offset_of!(InetDiagMsg, uid);
        m[at..at + 4].copy_from_slice(&uid.to_ne_bytes());
        let at = offset_of!(InetDiagMsg, inode);
        m[at..at + 4].copy_from_slice(&inode.to_ne_bytes());
        m
    }

    /// A netlink message: `struct nlmsghdr` then `payload`, padded to 4 bytes.
    fn nlmsg(kind: u16, payload: &[u8]) -> Vec<u8> {
        let len = HDR + payload.len();
        let mut b = Vec::with_capacity(len.next_multiple_of(4));
        b.extend_from_slice(&(len as u32).to_ne_bytes());
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(&0x2u16.to_ne_bytes()); // NLM_F_MULTI
        b.extend_from_slice(&1u32.to_ne_bytes()); // sequence
        b.extend_from_slice(&0u32.to_ne_bytes()); // port id
        b.extend_from_slice(payload);
        b.resize(len.next_multiple_of(4), 0);
        b
    }

    #[test]
    fn the_offsets_match_the_kernel_structs() {
        assert_eq!(size_of::<InetDiagMsg>(), 72);
        assert_eq!(size_of::<InetDiagReqV2>(), REQ);
        assert_eq!(offset_of!(InetDiagMsg, id), 4);
        assert_eq!(offset_of!(InetDiagMsg, uid), 64);
        assert_eq!(offset_of!(InetDiagMsg, inode), 68);
        let req = request(AF_INET6);
        assert_eq!(u32_at(&req, 0), Some((HDR + REQ) as u32));
        assert_eq!(req[HDR + offset_of!(InetDiagReqV2, family)], AF_INET6);
        assert_eq!(req[HDR + offset_of!(InetDiagReqV2, protocol)], IPPROTO_TCP);
        let states = HDR + offset_of!(InetDiagReqV2, states);
        assert_eq!(u32_at(&req, states), Some(1 << TCP_LISTEN));
    }

    #[test]
    fn parse_msg_reads_family_port_address_uid_and_inode() {
        let v4 = parse_msg(&msg(AF_INET, 8080, &[127, 0, 0, 1], 1000, 0xDEAD_BEEF)).expect("v4");
        assert_eq!(v4.addr, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!((v4.uid, v4.inode), (1000, 0xDEAD_BEEF));
        let mut loopback = [0u8; 16];
        loopback[15] = 1;
        let v6 = parse_msg(&msg(AF_INET6, 443, &loopback, 0, 7)).expect("v6");
        assert_eq!(v6.addr, "[::1]:443".parse().expect("addr"));
        assert_eq!((v6.uid, v6.inode), (0, 7));
        assert!(
            parse_msg(&msg(1, 80, &[], 0, 1)).is_none(),
            "AF_UNIX is not ours"
        );
        let short = msg(AF_INET, 80, &[], 0, 1);
        assert!(
            parse_msg(&short[..70]).is_none(),
            "truncated before the inode"
        );
    }

    #[test]
    fn parse_batch_collects_until_done_and_reports_errors() {
        let mut batch = nlmsg(SOCK_DIAG_BY_FAMILY, &msg(AF_INET, 1, &[10, 0, 0, 1], 5, 11));
        batch.extend(nlmsg(
            SOCK_DIAG_BY_FAMILY,
            &msg(AF_INET, 2, &[10, 0, 0, 2], 5, 12),
        ));
        let mut out = Vec::new();
        assert!(
            !parse_batch(&batch, &mut out).expect("parses"),
            "no DONE yet"
        );
        batch.extend(nlmsg(NLMSG_DONE, &0u32.to_ne_bytes()));
        batch.extend(nlmsg(
            SOCK_DIAG_BY_FAMILY,
            &msg(AF_INET, 3, &[10, 0, 0, 3], 5, 13),
        ));
        out.clear();
        assert!(
            parse_batch(&batch, &mut out).expect("parses"),
            "DONE ends the dump"
        );
        let inodes: Vec<u64> = out.iter().map(|s| s.inode).collect();
        assert_eq!(inodes, [11, 12], "nothing after DONE");

        let err = nlmsg(NLMSG_ERROR, &(-13i32).to_ne_bytes());
        let e = parse_batch(&err, &mut out).expect_err("NLMSG_ERROR");
        assert_eq!(e.raw_os_error(), Some(13));
        let mut bad = nlmsg(SOCK_DIAG_BY_FAMILY, &msg(AF_INET, 1, &[], 0, 1));
        bad[0..4].copy_from_slice(&999u32.to_ne_bytes());
        assert!(
            parse_batch(&bad, &mut out).is_err(),
            "length beyond the buffer"
        );
    }
}
