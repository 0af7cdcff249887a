//! Hand-built frames sent on an `AF_PACKET` socket: gratuitous ARP / unsolicited neighbour
//! advertisements for a VIP the balancer takes over, and the DSR health probe.
//!
//! The DSR probe does what the balancer does to a client's packet: a TCP SYN to VIP:port,
//! addressed to the *backend's* MAC, from the balancer's own address. A healthy DSR backend
//! accepts it (the VIP is on its `lo`) and answers SYN-ACK *from the VIP*. No answer means the
//! backend lost the VIP (or drops it); a RST means nothing listens on the VIP. The SYN-ACK never
//! reaches a socket on the balancer (its source, the VIP, is local there: martian), so the probe
//! reads it from the packet socket and resets the half-open connection itself.
//! The socket is not promiscuous: replies are addressed to the balancer.

use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::sys::capture::{Packet, L3, L4};

const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

pub type Mac = [u8; 6];

fn sum16(data: &[u8], mut acc: u32) -> u32 {
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        acc += u32::from(w);
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

pub(crate) fn eth(dst: Mac, src: Mac, ethertype: u16, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + body.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(body);
    f
}

/// Checksum over an IP pseudo-header and an upper-layer segment.
pub(crate) fn l4_checksum(src: IpAddr, dst: IpAddr, proto: u8, seg: &[u8]) -> u16 {
    let mut acc = 0;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            acc = sum16(&s.octets(), acc);
            acc = sum16(&d.octets(), acc);
            acc += u32::from(proto) + seg.len() as u32;
        }
        (s, d) => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V6(a) => a,
                IpAddr::V4(a) => a.to_ipv6_mapped(),
            };
            acc = sum16(&v6(s).octets(), acc);
            acc = sum16(&v6(d).octets(), acc);
            acc += seg.len() as u32 + u32::from(proto);
        }
    }
    fold(sum16(seg, acc))
}

/// An IPv4 or IPv6 packet around `seg`.
pub(crate) fn ip_packet(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    hop: u8,
    seg: &[u8],
) -> (u16, Vec<u8>) {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = (20 + seg.len()) as u16;
            let mut h = vec![0x45, 0];
            h.extend_from_slice(&total.to_be_bytes());
            h.extend_from_slice(&[0, 0, 0x40, 0, hop, proto, 0, 0]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            let c = fold(sum16(&h, 0));
            h[10..12].copy_from_slice(&c.to_be_bytes());
            h.extend_from_slice(seg);
            (ETH_P_IP, h)
        }
        _ => {
            let (IpAddr::V6(s), IpAddr::V6(d)) = (src, dst) else {
                unreachable!("mixed families are rejected by the callers")
            };
            let mut h = vec![0x60, 0, 0, 0];
            h.extend_from_slice(&(seg.len() as u16).to_be_bytes());
            h.extend_from_slice(&[proto, hop]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            h.extend_from_slice(seg);
            (ETH_P_IPV6, h)
        }
    }
}

/// The TCP header fields a probe sets.
#[derive(Debug, Clone, Copy)]
pub struct Tcp {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
}

/// A TCP segment without options or payload, from `src` to `dst`, in an Ethernet frame.
pub fn tcp_frame(src_mac: Mac, dst_mac: Mac, src: IpAddr, dst: IpAddr, h: Tcp) -> Vec<u8> {
    let mut t = Vec::with_capacity(20);
    t.extend_from_slice(&h.sport.to_be_bytes());
    t.extend_from_slice(&h.dport.to_be_bytes());
    t.extend_from_slice(&h.seq.to_be_bytes());
    t.extend_from_slice(&h.ack.to_be_bytes());
    t.extend_from_slice(&[5 << 4, h.flags, 0xff, 0xff, 0, 0, 0, 0]);
    let c = l4_checksum(src, dst, 6, &t);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    let (et, ip) = ip_packet(src, dst, 6, 64, &t);
    eth(dst_mac, src_mac, et, &ip)
}

/// Gratuitous ARP (a request with sender = target = `ip`, broadcast).
pub fn garp_frame(mac: Mac, ip: Ipv4Addr) -> Vec<u8> {
    let mut b = vec![0, 1, 8, 0, 6, 4, 0, 1];
    b.extend_from_slice(&mac);
    b.extend_from_slice(&ip.octets());
    b.extend_from_slice(&[0; 6]);
    b.extend_from_slice(&ip.octets());
    eth([0xff; 6], mac, ETH_P_ARP, &b)
}

/// Unsolicited neighbour advertisement for `ip` to all nodes (override set), RFC 4861 §7.2.6.
pub fn unsolicited_na_frame(mac: Mac, ip: Ipv6Addr) -> Vec<u8> {
    let all_nodes: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let mut icmp = vec![136, 0, 0, 0, 0x20, 0, 0, 0];
    icmp.extend_from_slice(&ip.octets());
    icmp.extend_from_slice(&[2, 1]); // target link-layer address option, 8 bytes
    icmp.extend_from_slice(&mac);
    let c = l4_checksum(IpAddr::V6(ip), IpAddr::V6(all_nodes), 58, &icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let (et, pkt) = ip_packet(IpAddr::V6(ip), IpAddr::V6(all_nodes), 58, 255, &icmp);
    eth([0x33, 0x33, 0, 0, 0, 1], mac, et, &pkt)
}

fn os_err(what: &str) -> Error {
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EPERM) {
        Error::Privilege(format!("{what}: {e} (needs CAP_NET_RAW)"))
    } else {
        Error::Runtime(anyhow::anyhow!("{what}: {e}"))
    }
}

/// A non-promiscuous packet socket bound to one interface.
pub struct RawSocket {
    fd: OwnedFd,
    ifindex: u32,
    iface: String,
    buf: Vec<u8>,
}

impl RawSocket {
    /// `proto`: the ethertype to receive (0: send only, nothing is queued).
    pub fn open(iface: &str, proto: u16) -> Result<RawSocket> {
        let c = std::ffi::CString::new(iface)
            .map_err(|_| Error::Usage(format!("invalid interface name '{iface}'")))?;
        // SAFETY: c is a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
        if ifindex == 0 {
            return Err(Error::Usage(format!("unknown interface '{iface}'")));
        }
        let proto = proto.to_be();
        // SAFETY: plain socket(2); the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(proto),
            )
        };
        if raw < 0 {
            return Err(os_err("opening an AF_PACKET socket"));
        }
        // SAFETY: raw is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: a pointer to a live sockaddr_ll and its size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(os_err("binding the AF_PACKET socket"));
        }
        Ok(RawSocket {
            fd,
            ifindex,
            iface: iface.to_string(),
            buf: vec![0; 2048],
        })
    }

    pub fn send(&self, frame: &[u8]) -> Result<()> {
        // SAFETY: frame is a live slice; the socket is bound, so send(2) needs no address.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            return Err(os_err(&format!("sending on {}", self.iface)));
        }
        Ok(())
    }

    /// The next frame received (not sent) on the interface before `deadline`, decoded.
    pub(crate) fn recv_until(&mut self, deadline: Instant) -> Result<Option<Packet>> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let ms = (deadline - now).as_millis().clamp(1, i32::MAX as u128) as i32;
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one live pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(os_err("poll"));
            }
            if r == 0 {
                return Ok(None);
            }
            // SAFETY: sockaddr_ll is plain data.
            let mut from: libc::sockaddr_ll = unsafe { mem::zeroed() };
            let mut len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: buf and from are live and sized as passed.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    libc::MSG_DONTWAIT,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                continue;
            }
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            let frame = self.buf[..n as usize].to_vec();
            if let Some(p) = Packet::from_frame(
                std::time::SystemTime::now(),
                self.ifindex,
                &self.iface,
                crate::sys::capture::Direction::from_pkttype(from.sll_pkttype),
                frame,
            ) {
                return Ok(Some(p));
            }
        }
    }
}

/// Announce that `ip` is at `mac` on `iface` (gratuitous ARP, or an unsolicited NA for IPv6).
pub fn announce(iface: &str, mac: Mac, ip: IpAddr) -> Result<()> {
    let s = RawSocket::open(iface, 0)?;
    match ip {
        IpAddr::V4(v4) => s.send(&garp_frame(mac, v4)),
        IpAddr::V6(v6) => s.send(&unsolicited_na_frame(mac, v6)),
    }
}

/// What the DSR probe of one backend saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DsrVerdict {
    /// SYN-ACK from VIP:port: the backend serves the VIP.
    Ok,
    /// RST from the VIP: the backend has the VIP, but nothing listens on the port.
    Refused,
    /// Nothing came back: the backend does not accept traffic for the VIP (VIP missing, ARP or
    /// routing trouble, or the reply left from another address).
    NoAnswer,
}

/// Everything a DSR probe needs.
#[derive(Debug, Clone)]
pub struct DsrProbe {
    pub iface: String,
    pub lb_mac: Mac,
    pub lb_ip: IpAddr,
    pub backend_mac: Mac,
    pub vip: IpAddr,
    pub port: u16,
    pub timeout: Duration,
}

fn pseudo_random() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(13))
        .unwrap_or(0);
    t ^ std::process::id().rotate_left(7)
}

/// Send one SYN through the backend and wait for its answer (see the module docs).
pub fn dsr_probe(p: &DsrProbe) -> Result<DsrVerdict> {
    if p.lb_ip.is_ipv4() != p.vip.is_ipv4() {
        return Err(Error::Usage(format!(
            "DSR probe: {} and {} are different address families",
            p.lb_ip, p.vip
        )));
    }
    let ethertype = if p.vip.is_ipv4() {
        ETH_P_IP
    } else {
        ETH_P_IPV6
    };
    let mut s = RawSocket::open(&p.iface, ethertype)?;
    let r = pseudo_random();
    let sport = 40_000 + (r % 20_000) as u16;
    let isn = r.rotate_left(11);
    s.send(&tcp_frame(
        p.lb_mac,
        p.backend_mac,
        p.lb_ip,
        p.vip,
        Tcp {
            sport,
            dport: p.port,
            seq: isn,
            ack: 0,
            flags: TCP_SYN,
        },
    ))?;
    let deadline = Instant::now() + p.timeout;
    while let Some(pkt) = s.recv_until(deadline)? {
        let L3::Ip { src, dst, l4, .. } = &pkt.l3 else {
            continue;
        };
        let L4::Tcp {
            sport: rs,
            dport: rd,
            flags,
            seq,
            ack,
            ..
        } = *l4
        else {
            continue;
        };
        if *src != p.vip || *dst != p.lb_ip || rs != p.port || rd != sport {
            continue;
        }
        if flags & TCP_RST != 0 {
            return Ok(DsrVerdict::Refused);
        }
        if flags & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK && ack == isn.wrapping_add(1) {
            // Reset the backend's half-open connection (no socket here would).
            let _ = seq;
            s.send(&tcp_frame(
                p.lb_mac,
                pkt.src_mac,
                p.lb_ip,
                p.vip,
                Tcp {
                    sport,
                    dport: p.port,
                    seq: ack,
                    ack: 0,
                    flags: TCP_RST,
                },
            ))?;
            return Ok(DsrVerdict::Ok);
        }
    }
    Ok(DsrVerdict::NoAnswer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::capture::Direction;

    fn decode(frame: Vec<u8>) -> Packet {
        Packet::from_frame(
            std::time::SystemTime::now(),
            1,
            "eth0",
            Direction::Out,
            frame,
        )
        .expect("decodes")
    }

    #[test]
    fn syn_frame_decodes_with_valid_checksums() {
        let f = tcp_frame(
            [2, 0, 0, 0, 0, 2],
            [2, 0, 0, 0, 0, 0x11],
            "198.18.0.2".parse().unwrap(),
            "198.18.0.100".parse().unwrap(),
            Tcp {
                sport: 40000,
                dport: 80,
                seq: 7,
                ack: 0,
                flags: TCP_SYN,
            },
        );
        // IPv4 header checksum verifies to 0; TCP checksum over pseudo-header verifies to 0.
        assert_eq!(fold(sum16(&f[14..34], 0)), 0);
        let seg = &f[34..];
        assert_eq!(
            l4_checksum(
                "198.18.0.2".parse().unwrap(),
                "198.18.0.100".parse().unwrap(),
                6,
                seg
            ),
            0
        );
        let p = decode(f);
        assert_eq!(p.dst_mac, [2, 0, 0, 0, 0, 0x11]);
        match p.l3 {
            L3::Ip {
                dst,
                l4: L4::Tcp {
                    dport, flags, seq, ..
                },
                ..
            } => {
                assert_eq!(dst, "198.18.0.100".parse::<IpAddr>().unwrap());
                assert_eq!((dport, flags, seq), (80, TCP_SYN, 7));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn v6_frames_have_valid_checksums() {
        let s: IpAddr = "2001:db8::2".parse().unwrap();
        let d: IpAddr = "2001:db8::100".parse().unwrap();
        let f = tcp_frame(
            [2; 6],
            [4; 6],
            s,
            d,
            Tcp {
                sport: 1,
                dport: 80,
                seq: 1,
                ack: 0,
                flags: TCP_SYN,
            },
        );
        assert_eq!(l4_checksum(s, d, 6, &f[54..]), 0);
        let na = unsolicited_na_frame([2; 6], "2001:db8::100".parse().unwrap());
        assert_eq!(l4_checksum(d, "ff02::1".parse().unwrap(), 58, &na[54..]), 0);
        assert!(matches!(
            decode(na).l3,
            L3::Ip {
                l4: L4::Icmp6 { typ: 136, .. },
                ..
            }
        ));
    }

    #[test]
    fn garp_decodes() {
        let p = decode(garp_frame(
            [2, 0, 0, 0, 0, 2],
            Ipv4Addr::new(198, 18, 0, 100),
        ));
        assert_eq!(p.dst_mac, [0xff; 6]);
        assert!(matches!(
            p.l3,
            L3::Arp { op: 1, sender_ip, target_ip, .. }
                if sender_ip == target_ip && sender_ip == Ipv4Addr::new(198, 18, 0, 100)
        ));
    }
}
