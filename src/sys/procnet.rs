//! Listening sockets (sock_diag, or /proc/net/{tcp,tcp6,udp,udp6}) for doctor's "does anything
//! listen on VIP:PORT" check, and other /proc/net files. Both follow the network namespace of
//! the reading thread (/proc/thread-self/net: /proc/net is the main thread's).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A listening (TCP) or bound unconnected (UDP) socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub proto: &'static str,
    pub addr: IpAddr,
    pub port: u16,
}

/// Parse the hex address of /proc/net/tcp ("0100007F:0050" or the 32-digit IPv6 form).
fn parse_addr(s: &str) -> Option<(IpAddr, u16)> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let ip = match a.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(a, 16).ok()?.swap_bytes(),
        )),
        32 => {
            let mut b = [0u8; 16];
            for (i, chunk) in b.chunks_mut(4).enumerate() {
                let w = u32::from_str_radix(&a[i * 8..i * 8 + 8], 16).ok()?;
                chunk.copy_from_slice(&w.to_le_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some((ip, port))
}

/// Parse one /proc/net table; keeps rows in state `want` (0A = TCP LISTEN, 07 = UDP unconnected).
pub fn parse_table(text: &str, proto: &'static str, want: &str) -> Vec<Listener> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 4 || f[3] != want {
                return None;
            }
            let (addr, port) = parse_addr(f[1])?;
            Some(Listener { proto, addr, port })
        })
        .collect()
}

/// Every TCP listener and bound UDP socket in this namespace: from sock_diag, as `ss -ltnu`
/// asks, when the kernel answers — a listening-only dump walks the listening sockets, while
/// /proc/net/tcp walks the whole connection hash table (every namespace's buckets: 10–25 ms on
/// a busy host, most of a doctor run). /proc/net otherwise.
pub fn listeners() -> Vec<Listener> {
    diag_listeners().unwrap_or_else(|_| proc_listeners())
}

/// [`listeners`] from sock_diag only, or why the kernel did not answer.
pub fn diag_listeners() -> std::io::Result<Vec<Listener>> {
    diag::listeners()
}

/// Sock_diag (`NETLINK_SOCK_DIAG`, `inet_diag_req_v2`) dumps of the listening sockets.
mod diag {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr};

    use super::Listener;

    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NLMSG_ERROR: u16 = 2;
    const NLMSG_DONE: u16 = 3;
    const NLM_F_REQUEST: u16 = 0x1;
    const NLM_F_DUMP: u16 = 0x300;
    const NLMSG_HDRLEN: usize = 16;
    /// `struct inet_diag_req_v2` (family, protocol, ext, pad, states, 48-byte sockid).
    const REQ_LEN: usize = 56;
    /// `struct inet_diag_msg` up to the inode.
    const MSG_LEN: usize = 72;
    /// TCP_LISTEN; unconnected UDP sockets are in TCP_CLOSE (/proc's `07`).
    const TCPF_LISTEN: u32 = 1 << 10;
    const TCPF_CLOSE: u32 = 1 << 7;

    fn request(seq: u32, family: u8, proto: u8, states: u32) -> Vec<u8> {
        let len = NLMSG_HDRLEN + REQ_LEN;
        let mut b = Vec::with_capacity(len);
        b.extend_from_slice(&(len as u32).to_ne_bytes());
        b.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        b.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&[family, proto, 0, 0]);
        b.extend_from_slice(&states.to_ne_bytes());
        b.resize(len, 0);
        b
    }

    /// The local address of one `inet_diag_msg`.
    pub(super) fn parse_msg(m: &[u8]) -> Option<(IpAddr, u16)> {
        if m.len() < MSG_LEN {
            return None;
        }
        let port = u16::from_be_bytes([m[4], m[5]]);
        let src: [u8; 16] = m[8..24].try_into().ok()?;
        let addr = match i32::from(m[0]) {
            libc::AF_INET => IpAddr::V4(Ipv4Addr::new(src[0], src[1], src[2], src[3])),
            libc::AF_INET6 => IpAddr::V6(Ipv6Addr::from(src)),
            _ => return None,
        };
        Some((addr, port))
    }

    /// One dump's (address, port) pairs.
    fn dump(
        sock: &Socket,
        seq: u32,
        family: u8,
        proto: u8,
        states: u32,
    ) -> std::io::Result<Vec<(IpAddr, u16)>> {
        sock.send(&request(seq, family, proto, states), 0)?;
        let mut out = Vec::new();
        loop {
            let (buf, _) = sock.recv_from_full()?;
            let mut rest = &buf[..];
            while rest.len() >= NLMSG_HDRLEN {
                let len = u32::from_ne_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
                let kind = u16::from_ne_bytes([rest[4], rest[5]]);
                let mseq = u32::from_ne_bytes(rest[8..12].try_into().expect("4 bytes"));
                if len < NLMSG_HDRLEN || len > rest.len() {
                    return Err(std::io::Error::other("truncated sock_diag message"));
                }
                let body = &rest[NLMSG_HDRLEN..len];
                rest = &rest[((len + 3) & !3).min(rest.len())..];
                if mseq != seq {
                    continue;
                }
                match kind {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let errno = body
                            .get(0..4)
                            .map(|e| -i32::from_ne_bytes(e.try_into().expect("4 bytes")))
                            .unwrap_or(libc::EINVAL);
                        return Err(std::io::Error::from_raw_os_error(errno));
                    }
                    SOCK_DIAG_BY_FAMILY => out.extend(parse_msg(body)),
                    _ => {}
                }
            }
        }
    }

    pub(super) fn listeners() -> std::io::Result<Vec<Listener>> {
        let mut sock = Socket::new(NETLINK_SOCK_DIAG)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        socket2::SockRef::from(&sock).set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        let mut out = Vec::new();
        let mut seq = 0;
        for (proto, ip, states) in [
            ("tcp", libc::IPPROTO_TCP, TCPF_LISTEN),
            ("udp", libc::IPPROTO_UDP, TCPF_CLOSE),
        ] {
            for family in [libc::AF_INET, libc::AF_INET6] {
                seq += 1;
                let found = dump(&sock, seq, family as u8, ip as u8, states)?;
                out.extend(
                    found
                        .into_iter()
                        .map(|(addr, port)| Listener { proto, addr, port }),
                );
            }
        }
        Ok(out)
    }
}

/// [`listeners`] from /proc/net/{tcp,tcp6,udp,udp6}.
pub fn proc_listeners() -> Vec<Listener> {
    let mut out = Vec::new();
    for (file, proto, state) in [
        ("/proc/thread-self/net/tcp", "tcp", "0A"),
        ("/proc/thread-self/net/tcp6", "tcp", "0A"),
        ("/proc/thread-self/net/udp", "udp", "07"),
        ("/proc/thread-self/net/udp6", "udp", "07"),
    ] {
        if let Ok(text) = std::fs::read_to_string(file) {
            out.extend(parse_table(&text, proto, state));
        }
    }
    out
}

/// One counter from /proc/net/netstat ("TcpExt" group), e.g. IPReversePathFilter.
pub fn tcpext(name: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = text.lines();
    while let (Some(h), Some(v)) = (lines.next(), lines.next()) {
        if h.starts_with("TcpExt:") {
            let i = h.split_whitespace().position(|k| k == name)?;
            return v.split_whitespace().nth(i)?.parse().ok();
        }
    }
    None
}

/// (bond name, text) of every `/proc/net/bonding/*` file (none without the bonding driver).
pub fn bonding_files() -> Vec<(String, String)> {
    let Ok(rd) = std::fs::read_dir("/proc/net/bonding") else {
        return Vec::new();
    };
    let mut v: Vec<(String, String)> = rd
        .flatten()
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path()).ok()?;
            Some((e.file_name().to_string_lossy().into_owned(), text))
        })
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_inet_diag_msg() {
        // AF_INET, LISTEN, sport 80 (big-endian), src 198.18.0.100, the rest zero.
        let mut m = vec![0u8; 72];
        m[0] = libc::AF_INET as u8;
        m[1] = 10;
        m[4..6].copy_from_slice(&80u16.to_be_bytes());
        m[8..12].copy_from_slice(&[198, 18, 0, 100]);
        assert_eq!(
            diag::parse_msg(&m),
            Some(("198.18.0.100".parse().unwrap(), 80))
        );
        let mut m6 = vec![0u8; 72];
        m6[0] = libc::AF_INET6 as u8;
        m6[4..6].copy_from_slice(&443u16.to_be_bytes());
        m6[8..24].copy_from_slice(&"2001:db8::100".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(
            diag::parse_msg(&m6),
            Some(("2001:db8::100".parse().unwrap(), 443))
        );
        assert_eq!(diag::parse_msg(&m6[..40]), None);
    }

    #[test]
    fn parses_proc_net_tcp() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 6400A8C6:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0\n";
        let l = parse_table(t, "tcp", "0A");
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].addr, "198.168.0.100".parse::<IpAddr>().unwrap());
        assert_eq!(l[0].port, 80);
        let t6 = "hdr\n 0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A x\n 1: B80D0120000000000000000000010000:01BB 00000000000000000000000000000000:0000 0A x\n";
        let l = parse_table(t6, "tcp", "0A");
        assert_eq!(l[0].addr, "::".parse::<IpAddr>().unwrap());
        assert_eq!(l[1].addr, "2001:db8::100".parse::<IpAddr>().unwrap());
        assert_eq!(l[1].port, 443);
    }
}
