//! "Who has this address on my segment?": ARP requests (IPv4) and neighbour solicitations to the
//! solicited-node multicast group (IPv6), sent from one interface with its own address as the
//! sender, and every MAC that answers within a bounded time.
//!
//! Why not read the neighbour cache: the cache holds one MAC per address (the last answer), so
//! two hosts claiming a VIP (ARP flux) look like one; and a host's own stack never answers the
//! requests it sends, so only the wire can tell who *else* claims an address. Frames go through
//! the one packet-socket primitive ([`crate::sys::rawpkt::RawSocket`]); they are link-local
//! (broadcast or solicited-node multicast, hop limit 255) and never leave the segment.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::sys::capture::L3;
use crate::sys::netlink::{AddrInfo, Link};
use crate::sys::rawpkt::{eth, ip_packet, l4_checksum, Mac, RawSocket};

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;
const ND_NS: u8 = 135;
const ND_NA: u8 = 136;

/// An ARP request for `target` from `src_ip`/`src_mac` (broadcast).
pub fn arp_request_frame(src_mac: Mac, src_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut b = vec![0, 1, 8, 0, 6, 4, 0, 1];
    b.extend_from_slice(&src_mac);
    b.extend_from_slice(&src_ip.octets());
    b.extend_from_slice(&[0; 6]);
    b.extend_from_slice(&target.octets());
    eth([0xff; 6], src_mac, ETH_P_ARP, &b)
}

/// The solicited-node multicast group of `a` (ff02::1:ffXX:XXXX, RFC 4291 §2.7.1).
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// A neighbour solicitation for `target` from `src_ip`/`src_mac`, to the target's
/// solicited-node group, with a source link-layer address option (RFC 4861 §4.3).
pub fn ns_frame(src_mac: Mac, src_ip: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(target);
    let mut icmp = vec![ND_NS, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&target.octets());
    icmp.extend_from_slice(&[1, 1]); // source link-layer address option, 8 bytes
    icmp.extend_from_slice(&src_mac);
    let c = l4_checksum(IpAddr::V6(src_ip), IpAddr::V6(group), 58, &icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let (et, pkt) = ip_packet(IpAddr::V6(src_ip), IpAddr::V6(group), 58, 255, &icmp);
    let g = group.octets();
    eth([0x33, 0x33, g[12], g[13], g[14], g[15]], src_mac, et, &pkt)
}

/// (target, MAC) of a neighbour advertisement in an untagged Ethernet frame: the target
/// link-layer address option if present, else the frame's source MAC.
pub fn parse_na(frame: &[u8]) -> Option<(Ipv6Addr, Mac)> {
    if frame.len() < 14 + 40 + 24 || frame[12..14] != ETH_P_IPV6.to_be_bytes() {
        return None;
    }
    let ip = &frame[14..];
    if ip[6] != 58 || ip[7] != 255 {
        return None; // not ICMPv6, or not from the link (RFC 4861 §7.1.2)
    }
    let icmp = &ip[40..];
    if icmp[0] != ND_NA || icmp[1] != 0 {
        return None;
    }
    let target: [u8; 16] = icmp[8..24].try_into().ok()?;
    let mut mac: Mac = frame[6..12].try_into().ok()?;
    let mut opts = &icmp[24..];
    while opts.len() >= 8 {
        let len = usize::from(opts[1]) * 8;
        if len == 0 || len > opts.len() {
            break;
        }
        if opts[0] == 2 && len >= 8 {
            mac.copy_from_slice(&opts[2..8]);
        }
        opts = &opts[len..];
    }
    Some((Ipv6Addr::from(target), mac))
}

/// One answer: `mac` claims `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Answer {
    pub target: IpAddr,
    pub mac: Mac,
    /// Milliseconds after the first request.
    pub ms: u64,
}

/// What to ask, and from where.
#[derive(Debug, Clone)]
pub struct Query {
    pub iface: String,
    pub src_mac: Mac,
    /// The interface's own IPv4 address (the ARP sender); needed for IPv4 targets.
    pub src4: Option<Ipv4Addr>,
    /// The interface's own IPv6 address (link-local is best); needed for IPv6 targets.
    pub src6: Option<Ipv6Addr>,
    pub targets: Vec<IpAddr>,
    /// How long to listen (at most 10 s).
    pub timeout: Duration,
    /// Stop as soon as every target has one answer (a reachability probe), instead of
    /// listening for the whole timeout (an audit of *every* claimant).
    pub first_answer: bool,
}

impl Query {
    /// A query from `iface`, its MAC and its own addresses taken from `links`/`addrs`: the
    /// sender is an address of the interface that is not a target (one whose subnet holds a
    /// target first, then any but a host route; link-local first for IPv6).
    pub fn from_iface(
        links: &[Link],
        addrs: &[AddrInfo],
        iface: &str,
        targets: Vec<IpAddr>,
        timeout: Duration,
        first_answer: bool,
    ) -> Result<Query> {
        let link = links
            .iter()
            .find(|l| l.name == iface)
            .ok_or_else(|| Error::Usage(format!("unknown interface '{iface}'")))?;
        let src_mac: Mac = link
            .mac
            .as_deref()
            .and_then(|m| m.try_into().ok())
            .ok_or_else(|| Error::Usage(format!("{iface} has no Ethernet address")))?;
        let mine: Vec<&AddrInfo> = addrs
            .iter()
            .filter(|a| a.obj.dev == iface && !targets.contains(&a.obj.addr))
            .collect();
        let covers = |a: &AddrInfo| {
            ipnet::IpNet::new(a.obj.addr, a.obj.prefix)
                .is_ok_and(|n| targets.iter().any(|t| n.contains(t)))
        };
        let pick4 = || {
            let v4 = mine.iter().filter(|a| a.obj.addr.is_ipv4());
            v4.clone()
                .find(|a| covers(a))
                .or_else(|| v4.clone().find(|a| a.obj.prefix < 32))
                .or_else(|| v4.clone().next())
                .and_then(|a| match a.obj.addr {
                    IpAddr::V4(x) => Some(x),
                    IpAddr::V6(_) => None,
                })
        };
        let pick6 = || {
            let v6 = mine.iter().filter_map(|a| match a.obj.addr {
                IpAddr::V6(x) => Some(x),
                IpAddr::V4(_) => None,
            });
            v6.clone()
                .find(|x| x.segments()[0] & 0xffc0 == 0xfe80)
                .or_else(|| v6.clone().next())
        };
        Ok(Query {
            iface: iface.to_string(),
            src_mac,
            src4: pick4(),
            src6: pick6(),
            targets,
            timeout,
            first_answer,
        })
    }
}

/// Ask for every target, listen, and return the answers (each (target, MAC) once, in order of
/// arrival). The request is repeated once, half-way, for targets nobody answered yet.
pub fn who_has(q: &Query) -> Result<Vec<Answer>> {
    let timeout = q.timeout.min(Duration::from_secs(10));
    let v4: Vec<Ipv4Addr> = q
        .targets
        .iter()
        .filter_map(|t| match t {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        })
        .collect();
    let v6: Vec<Ipv6Addr> = q
        .targets
        .iter()
        .filter_map(|t| match t {
            IpAddr::V6(a) => Some(*a),
            IpAddr::V4(_) => None,
        })
        .collect();
    let no_src = |fam: &str| {
        Error::Usage(format!(
            "{} has no {fam} address to send the request from",
            q.iface
        ))
    };
    let mut socks: Vec<(RawSocket, bool)> = Vec::new();
    if !v4.is_empty() {
        q.src4.ok_or_else(|| no_src("IPv4"))?;
        socks.push((RawSocket::open(&q.iface, ETH_P_ARP)?, true));
    }
    if !v6.is_empty() {
        q.src6.ok_or_else(|| no_src("IPv6"))?;
        socks.push((RawSocket::open(&q.iface, ETH_P_IPV6)?, false));
    }
    let send = |socks: &[(RawSocket, bool)], answered: &BTreeSet<IpAddr>| -> Result<()> {
        for (s, is4) in socks {
            if *is4 {
                for t in v4.iter().filter(|t| !answered.contains(&IpAddr::V4(**t))) {
                    s.send(&arp_request_frame(q.src_mac, q.src4.expect("checked"), *t))?;
                }
            } else {
                for t in v6.iter().filter(|t| !answered.contains(&IpAddr::V6(**t))) {
                    s.send(&ns_frame(q.src_mac, q.src6.expect("checked"), *t))?;
                }
            }
        }
        Ok(())
    };
    let start = Instant::now();
    let deadline = start + timeout;
    let mut resend = Some(start + timeout / 2);
    let mut answers: Vec<Answer> = Vec::new();
    let mut answered: BTreeSet<IpAddr> = BTreeSet::new();
    send(&socks, &answered)?;
    loop {
        if q.first_answer && q.targets.iter().all(|t| answered.contains(t)) {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if resend.is_some_and(|r| now >= r) {
            resend = None;
            send(&socks, &answered)?;
        }
        // Poll each socket briefly in turn (one family usually: one socket).
        let slice = now + Duration::from_millis(if socks.len() > 1 { 10 } else { 50 });
        let until = slice.min(deadline);
        for (s, is4) in socks.iter_mut() {
            let Some(p) = s.recv_until(until)? else {
                continue;
            };
            let found = if *is4 {
                match p.l3 {
                    L3::Arp {
                        op: 2,
                        sender_mac,
                        sender_ip,
                        ..
                    } if v4.contains(&sender_ip) => Some((IpAddr::V4(sender_ip), sender_mac)),
                    _ => None,
                }
            } else {
                parse_na(&p.frame)
                    .filter(|(t, _)| v6.contains(t))
                    .map(|(t, m)| (IpAddr::V6(t), m))
            };
            if let Some((target, mac)) = found {
                answered.insert(target);
                if !answers.iter().any(|a| a.target == target && a.mac == mac) {
                    answers.push(Answer {
                        target,
                        mac,
                        ms: start.elapsed().as_millis() as u64,
                    });
                }
            }
        }
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::capture::{Direction, Packet, L4};

    #[test]
    fn solicited_node_group() {
        assert_eq!(
            solicited_node("2001:db8::1:2345:6789".parse().unwrap()),
            "ff02::1:ff45:6789".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn arp_request_decodes() {
        let f = arp_request_frame(
            [2, 0, 0, 0, 0, 2],
            Ipv4Addr::new(198, 18, 0, 2),
            Ipv4Addr::new(198, 18, 0, 100),
        );
        let p =
            Packet::from_frame(std::time::SystemTime::now(), 1, "eth0", Direction::Out, f).unwrap();
        assert_eq!(p.dst_mac, [0xff; 6]);
        assert!(matches!(
            p.l3,
            L3::Arp { op: 1, sender_ip, target_ip, target_mac: [0, 0, 0, 0, 0, 0], .. }
                if sender_ip == Ipv4Addr::new(198, 18, 0, 2)
                    && target_ip == Ipv4Addr::new(198, 18, 0, 100)
        ));
    }

    #[test]
    fn ns_has_valid_checksum_and_multicast_mac() {
        let src: Ipv6Addr = "fe80::2".parse().unwrap();
        let t: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let f = ns_frame([2, 0, 0, 0, 0, 2], src, t);
        assert_eq!(&f[0..6], &[0x33, 0x33, 0xff, 0, 1, 0]);
        assert_eq!(
            l4_checksum(src.into(), solicited_node(t).into(), 58, &f[54..]),
            0
        );
        let p =
            Packet::from_frame(std::time::SystemTime::now(), 1, "eth0", Direction::Out, f).unwrap();
        assert!(matches!(
            p.l3,
            L3::Ip {
                ttl: 255,
                l4: L4::Icmp6 { typ: 135, .. },
                ..
            }
        ));
    }

    #[test]
    fn na_target_and_mac() {
        // An unsolicited NA (rawpkt's builder) carries the target link-layer option.
        let t: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let na = crate::sys::rawpkt::unsolicited_na_frame([2, 0, 0, 0, 0, 0x11], t);
        assert_eq!(parse_na(&na), Some((t, [2, 0, 0, 0, 0, 0x11])));
        // An NS is not an answer.
        assert_eq!(
            parse_na(&ns_frame([2; 6], "fe80::1".parse().unwrap(), t)),
            None
        );
        assert_eq!(parse_na(&[0; 20]), None);
    }
}
