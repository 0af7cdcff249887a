//! Packet capture without libpcap: one `AF_PACKET` socket, hand-written decoding, classic pcap.
//!
//! Why it looks like this:
//! - A DSR diagnosis needs what `tcpdump -e -n` shows: the MACs (who answered ARP for the VIP,
//!   which MAC a reply leaves with), the direction, and the IP/TCP header. A raw
//!   `AF_PACKET`/`SOCK_RAW` socket gives all of it, works inside a network namespace and needs
//!   only CAP_NET_RAW (PLATFORM.md §6). The decoding needed is small, so it is written out here
//!   and unit-tested on hand-built frames instead of pulling in etherparse and pcap-file.
//! - The direction comes from `sll_pkttype` (HOST → In, OUTGOING → Out, …). Taps run *before*
//!   the netdev/tc ingress hook, so on a balancer each request is seen twice: as received (In)
//!   and as rewritten and sent (Out). Callers tell them apart by `dir`.
//! - The socket is created with protocol 0 and only then bound to ETH_P_ALL on one ifindex (0 for
//!   any), so nothing from other interfaces is queued between socket() and bind().
//! - NICs and veth move 802.1Q tags into skb metadata, so the frame read from the socket has no
//!   tag. PACKET_AUXDATA hands the tag back and it is re-inserted, so `frame` and the pcap hold
//!   what was on the wire (as libpcap does).
//! - Waiting is poll() with the remaining time, in slices of at most 200 ms, so a duration and a
//!   stop flag (Ctrl-C) are honoured even when no traffic arrives.
//! - Host filtering happens in user space. Captures are short and targeted; a kernel BPF filter
//!   would be an optimisation, not a change in behaviour.
//! - Only Ethernet links are decoded. `lo` (ARPHRD_LOOPBACK) carries a zeroed Ethernet header and
//!   is kept; anything else (tunnels, WireGuard) is skipped.
//! - Everything runs in the network namespace of the calling thread; `--netns` has already moved
//!   the process there.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::usage;

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;
/// Pre-standard QinQ outer tag, still seen in the wild.
const ETH_P_QINQ1: u16 = 0x9100;

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;
pub const TCP_URG: u8 = 0x20;
pub const TCP_ECE: u8 = 0x40;
pub const TCP_CWR: u8 = 0x80;

/// Largest frame kept (also the pcap snaplen). Large enough for GSO/GRO super-frames on veth.
pub const SNAPLEN: usize = 262_144;
/// Longest single wait, so stop flags are checked often enough for Ctrl-C to feel immediate.
const SLICE: Duration = Duration::from_millis(200);

const LINKTYPE_ETHERNET: u32 = 1;
const LINKTYPE_LINUX_SLL: u32 = 113;
const LINKTYPE_LINUX_SLL2: u32 = 276;
const PCAP_MAGIC_US: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

/// Which way a frame went, from `sll_pkttype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// PACKET_HOST: addressed to this host.
    In,
    /// PACKET_OUTGOING: sent by this host.
    Out,
    /// PACKET_BROADCAST: received, to ff:ff:ff:ff:ff:ff.
    Broadcast,
    /// PACKET_MULTICAST: received, to a multicast MAC.
    Multicast,
    /// PACKET_OTHERHOST: received, addressed to another MAC (seen in promiscuous mode).
    OtherHost,
}

impl Direction {
    /// Map `sll_pkttype`. PACKET_LOOPBACK and unknown values count as received.
    pub fn from_pkttype(t: u8) -> Direction {
        match t {
            libc::PACKET_OUTGOING => Direction::Out,
            libc::PACKET_BROADCAST => Direction::Broadcast,
            libc::PACKET_MULTICAST => Direction::Multicast,
            libc::PACKET_OTHERHOST => Direction::OtherHost,
            _ => Direction::In,
        }
    }

    /// Stable lower-case name for JSON: `in`, `out`, `broadcast`, `multicast`, `otherhost`.
    pub fn name(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
            Direction::Broadcast => "broadcast",
            Direction::Multicast => "multicast",
            Direction::OtherHost => "otherhost",
        }
    }

    /// Anything but Out was received by this host's interface.
    pub fn is_received(self) -> bool {
        self != Direction::Out
    }
}

impl fmt::Display for Direction {
    /// tcpdump's `-i any` notation: `In`, `Out`, `B`, `M`, `P`. Honours width (`{:<3}`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Direction::In => "In",
            Direction::Out => "Out",
            Direction::Broadcast => "B",
            Direction::Multicast => "M",
            Direction::OtherHost => "P",
        })
    }
}

/// One captured (or read) Ethernet frame, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub ts: SystemTime,
    /// 0 when read from a file.
    pub ifindex: u32,
    /// `pcap` when read from a file.
    pub iface: String,
    pub dir: Direction,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// VLAN id of the outer 802.1Q/802.1ad tag, if any.
    pub vlan: Option<u16>,
    /// The full Ethernet frame, VLAN tag re-inserted if the NIC had stripped it.
    pub frame: Vec<u8>,
    pub l3: L3,
}

/// What an Ethernet frame carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L3 {
    /// Ethernet/IPv4 ARP. `op` is 1 for a request, 2 for a reply.
    Arp {
        op: u16,
        sender_mac: [u8; 6],
        sender_ip: Ipv4Addr,
        target_mac: [u8; 6],
        target_ip: Ipv4Addr,
    },
    /// IPv4 or IPv6; `ttl` is the hop limit for IPv6.
    Ip {
        src: IpAddr,
        dst: IpAddr,
        ttl: u8,
        l4: L4,
    },
    /// Anything else (or a header too short to decode).
    Other { ethertype: u16 },
}

/// The transport header of an IP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L4 {
    /// `payload_len` comes from the IP length fields, so it is right even for a truncated frame.
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
        seq: u32,
        ack: u32,
        payload_len: usize,
    },
    /// `len` is the payload length (the UDP length field minus its 8-byte header), as tcpdump
    /// prints it.
    Udp {
        sport: u16,
        dport: u16,
        len: usize,
    },
    Icmp {
        typ: u8,
        code: u8,
    },
    Icmp6 {
        typ: u8,
        code: u8,
    },
    /// Another protocol, a non-first fragment, or a header too short to decode.
    Other {
        proto: u8,
    },
}

/// Which packets to keep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Keep a packet when its IP source or destination, or its ARP sender or target, is any of
    /// these. Empty keeps everything.
    pub hosts: Vec<IpAddr>,
}

impl Filter {
    pub fn matches(&self, l3: &L3) -> bool {
        self.hosts.is_empty() || self.hosts.iter().any(|h| l3.involves(*h))
    }
}

/// What to capture and for how long.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureOpts {
    /// An interface name; `None` (or `any`) for every interface of the namespace.
    pub iface: Option<String>,
    pub filter: Filter,
    /// Stop after this many matching packets.
    pub max_packets: Option<u64>,
    /// Stop after this long (even when nothing arrives).
    pub duration: Option<Duration>,
}

impl L3 {
    /// Is `ip` the IP source or destination, or the ARP sender or target?
    pub fn involves(&self, ip: IpAddr) -> bool {
        match self {
            L3::Arp {
                sender_ip,
                target_ip,
                ..
            } => ip == IpAddr::V4(*sender_ip) || ip == IpAddr::V4(*target_ip),
            L3::Ip { src, dst, .. } => ip == *src || ip == *dst,
            L3::Other { .. } => false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding (pure)
// ---------------------------------------------------------------------------------------------

fn be16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

fn be32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn mac_at(b: &[u8], i: usize) -> [u8; 6] {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[i..i + 6]);
    m
}

fn v4_at(b: &[u8], i: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[i], b[i + 1], b[i + 2], b[i + 3])
}

fn v6_at(b: &[u8], i: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[i..i + 16]);
    Ipv6Addr::from(a)
}

/// What [`decode`] returns: `(src_mac, dst_mac, vlan, l3)`.
pub type Decoded = ([u8; 6], [u8; 6], Option<u16>, L3);

/// Decode an Ethernet frame into `(src_mac, dst_mac, vlan, L3)`. `None` only when the frame is
/// shorter than an Ethernet header; undecodable payloads become [`L3::Other`].
pub fn decode(frame: &[u8]) -> Option<Decoded> {
    if frame.len() < 14 {
        return None;
    }
    let dst = mac_at(frame, 0);
    let src = mac_at(frame, 6);
    let mut ethertype = be16(frame, 12);
    let mut off = 14;
    let mut vlan = None;
    while matches!(ethertype, ETH_P_8021Q | ETH_P_8021AD | ETH_P_QINQ1) {
        if frame.len() < off + 4 {
            return Some((src, dst, vlan, L3::Other { ethertype }));
        }
        vlan.get_or_insert(be16(frame, off) & 0x0fff);
        ethertype = be16(frame, off + 2);
        off += 4;
    }
    let body = &frame[off..];
    let l3 = match ethertype {
        ETH_P_ARP => decode_arp(body),
        ETH_P_IP => decode_ipv4(body),
        ETH_P_IPV6 => decode_ipv6(body),
        _ => None,
    }
    .unwrap_or(L3::Other { ethertype });
    Some((src, dst, vlan, l3))
}

fn decode_arp(b: &[u8]) -> Option<L3> {
    // htype Ethernet, ptype IPv4, hlen 6, plen 4.
    if b.len() < 28 || be16(b, 0) != 1 || be16(b, 2) != ETH_P_IP || b[4] != 6 || b[5] != 4 {
        return None;
    }
    Some(L3::Arp {
        op: be16(b, 6),
        sender_mac: mac_at(b, 8),
        sender_ip: v4_at(b, 14),
        target_mac: mac_at(b, 18),
        target_ip: v4_at(b, 24),
    })
}

fn decode_ipv4(b: &[u8]) -> Option<L3> {
    if b.len() < 20 || b[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(b[0] & 0x0f) * 4;
    if ihl < 20 || ihl > b.len() {
        return None;
    }
    let total = usize::from(be16(b, 2));
    let proto = b[9];
    // A TSO super-frame may carry total length 0; then trust what was captured.
    let (end, declared) = if total >= ihl {
        (total.min(b.len()), total - ihl)
    } else {
        (b.len(), b.len() - ihl)
    };
    let frag_offset = be16(b, 6) & 0x1fff;
    let l4 = if frag_offset != 0 {
        L4::Other { proto }
    } else {
        decode_l4(proto, &b[ihl..end.max(ihl)], declared, false)
    };
    Some(L3::Ip {
        src: IpAddr::V4(v4_at(b, 12)),
        dst: IpAddr::V4(v4_at(b, 16)),
        ttl: b[8],
        l4,
    })
}

fn decode_ipv6(b: &[u8]) -> Option<L3> {
    if b.len() < 40 || b[0] >> 4 != 6 {
        return None;
    }
    let plen = usize::from(be16(b, 4));
    let end = if plen == 0 {
        b.len()
    } else {
        (40 + plen).min(b.len())
    };
    let mut declared = if plen == 0 { b.len() - 40 } else { plen };
    let mut nh = b[6];
    let mut off = 40;
    let mut fragment = false;
    // Walk the extension headers (hop-by-hop, routing, fragment, AH, destination options).
    loop {
        let len = match nh {
            0 | 43 | 60 if off + 2 <= end => (usize::from(b[off + 1]) + 1) * 8,
            51 if off + 2 <= end => (usize::from(b[off + 1]) + 2) * 4,
            44 if off + 8 <= end => {
                fragment |= be16(b, off + 2) >> 3 != 0;
                8
            }
            _ => break,
        };
        if off + len > end {
            break;
        }
        nh = b[off];
        off += len;
        declared = declared.saturating_sub(len);
    }
    let l4 = if fragment || matches!(nh, 0 | 43 | 44 | 51 | 60) {
        L4::Other { proto: nh }
    } else {
        decode_l4(nh, &b[off..end], declared, true)
    };
    Some(L3::Ip {
        src: IpAddr::V6(v6_at(b, 8)),
        dst: IpAddr::V6(v6_at(b, 24)),
        ttl: b[7],
        l4,
    })
}

/// `b` is the captured transport bytes, `declared` the length the IP header claims for them.
fn decode_l4(proto: u8, b: &[u8], declared: usize, v6: bool) -> L4 {
    match proto {
        IPPROTO_TCP if b.len() >= 20 => L4::Tcp {
            sport: be16(b, 0),
            dport: be16(b, 2),
            seq: be32(b, 4),
            ack: be32(b, 8),
            flags: b[13],
            payload_len: declared.saturating_sub(usize::from(b[12] >> 4) * 4),
        },
        IPPROTO_UDP if b.len() >= 8 => L4::Udp {
            sport: be16(b, 0),
            dport: be16(b, 2),
            len: usize::from(be16(b, 4)).saturating_sub(8),
        },
        IPPROTO_ICMP if !v6 && b.len() >= 2 => L4::Icmp {
            typ: b[0],
            code: b[1],
        },
        IPPROTO_ICMPV6 if v6 && b.len() >= 2 => L4::Icmp6 {
            typ: b[0],
            code: b[1],
        },
        _ => L4::Other { proto },
    }
}

/// Re-insert an 802.1Q/802.1ad tag after the two MAC addresses (what libpcap does with the tag
/// PACKET_AUXDATA reports).
pub fn insert_vlan_tag(frame: &[u8], tpid: u16, tci: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len() + 4);
    let split = frame.len().min(12);
    out.extend_from_slice(&frame[..split]);
    out.extend_from_slice(&tpid.to_be_bytes());
    out.extend_from_slice(&tci.to_be_bytes());
    out.extend_from_slice(&frame[split..]);
    out
}

impl Packet {
    /// Decode `frame` into a packet; `None` when it is shorter than an Ethernet header.
    pub fn from_frame(
        ts: SystemTime,
        ifindex: u32,
        iface: impl Into<String>,
        dir: Direction,
        frame: Vec<u8>,
    ) -> Option<Packet> {
        let (src_mac, dst_mac, vlan, l3) = decode(&frame)?;
        Some(Packet {
            ts,
            ifindex,
            iface: iface.into(),
            dir,
            src_mac,
            dst_mac,
            vlan,
            frame,
            l3,
        })
    }

    /// One JSON object (the `--json` line format; field names are stable).
    pub fn to_json(&self) -> Value {
        let mut o = json!({
            "ts": rfc3339(self.ts),
            "iface": self.iface,
            "dir": self.dir.name(),
            "src_mac": fmt_mac(&self.src_mac),
            "dst_mac": fmt_mac(&self.dst_mac),
            "vlan": self.vlan,
            "len": self.frame.len(),
        });
        let extra = match &self.l3 {
            L3::Arp {
                op,
                sender_mac,
                sender_ip,
                target_mac,
                target_ip,
            } => json!({
                "proto": "arp",
                "op": match op { 1 => "request", 2 => "reply", _ => "other" },
                "opcode": op,
                "sender_mac": fmt_mac(sender_mac),
                "sender_ip": sender_ip.to_string(),
                "target_mac": fmt_mac(target_mac),
                "target_ip": target_ip.to_string(),
            }),
            L3::Ip { src, dst, ttl, l4 } => {
                let mut ip = json!({
                    "family": if src.is_ipv4() { 4 } else { 6 },
                    "src": src.to_string(),
                    "dst": dst.to_string(),
                    "ttl": ttl,
                });
                let l4 = match l4 {
                    L4::Tcp {
                        sport,
                        dport,
                        flags,
                        seq,
                        ack,
                        payload_len,
                    } => json!({
                        "proto": "tcp",
                        "sport": sport,
                        "dport": dport,
                        "flags": tcp_flags(*flags),
                        "flags_raw": flags,
                        "seq": seq,
                        "ack": ack,
                        "payload_len": payload_len,
                    }),
                    L4::Udp { sport, dport, len } => json!({
                        "proto": "udp", "sport": sport, "dport": dport, "payload_len": len,
                    }),
                    L4::Icmp { typ, code } => {
                        json!({"proto": "icmp", "icmp_type": typ, "icmp_code": code})
                    }
                    L4::Icmp6 { typ, code } => {
                        json!({"proto": "icmp6", "icmp_type": typ, "icmp_code": code})
                    }
                    L4::Other { proto } => json!({"proto": "ip", "ip_proto": proto}),
                };
                merge(&mut ip, l4);
                ip
            }
            L3::Other { ethertype } => json!({"proto": "other", "ethertype": ethertype}),
        };
        merge(&mut o, extra);
        o["summary"] = Value::String(self.l3.to_string());
        o
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, from) {
        a.extend(b);
    }
}

// ---------------------------------------------------------------------------------------------
// Display: tcpdump -e -n style
// ---------------------------------------------------------------------------------------------

/// `02:00:00:00:00:10`.
pub fn fmt_mac(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// tcpdump's flag letters: `S`, `S.`, `P.`, `R.`, `F.`; `none` when no flag is set.
pub fn tcp_flags(flags: u8) -> String {
    const LETTERS: [(u8, char); 8] = [
        (TCP_FIN, 'F'),
        (TCP_SYN, 'S'),
        (TCP_RST, 'R'),
        (TCP_PSH, 'P'),
        (TCP_ACK, '.'),
        (TCP_URG, 'U'),
        (TCP_ECE, 'E'),
        (TCP_CWR, 'W'),
    ];
    let s: String = LETTERS
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, c)| *c)
        .collect();
    if s.is_empty() {
        "none".into()
    } else {
        s
    }
}

fn icmp_name(typ: u8, code: u8) -> String {
    match typ {
        0 => "echo reply".into(),
        3 => format!("destination unreachable (code {code})"),
        5 => format!("redirect (code {code})"),
        8 => "echo request".into(),
        11 => format!("time exceeded (code {code})"),
        _ => format!("type {typ}, code {code}"),
    }
}

fn icmp6_name(typ: u8, code: u8) -> String {
    match typ {
        1 => format!("destination unreachable (code {code})"),
        2 => "packet too big".into(),
        3 => format!("time exceeded (code {code})"),
        128 => "echo request".into(),
        129 => "echo reply".into(),
        133 => "router solicitation".into(),
        134 => "router advertisement".into(),
        135 => "neighbor solicitation".into(),
        136 => "neighbor advertisement".into(),
        143 => "multicast listener report v2".into(),
        _ => format!("type {typ}, code {code}"),
    }
}

impl fmt::Display for L3 {
    /// The part of a tcpdump line after the MACs: `ARP, Request who-has …`, `IPv4 a.p > b.q: …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            L3::Arp {
                op: 1,
                sender_ip,
                target_mac,
                target_ip,
                ..
            } => {
                write!(f, "ARP, Request who-has {target_ip}")?;
                if *target_mac != [0; 6] && *target_mac != [0xff; 6] {
                    write!(f, " ({})", fmt_mac(target_mac))?;
                }
                write!(f, " tell {sender_ip}")
            }
            L3::Arp {
                op: 2,
                sender_mac,
                sender_ip,
                ..
            } => write!(f, "ARP, Reply {sender_ip} is-at {}", fmt_mac(sender_mac)),
            L3::Arp {
                op,
                sender_mac,
                sender_ip,
                target_mac,
                target_ip,
            } => write!(
                f,
                "ARP, op {op}, {sender_ip} ({}) > {target_ip} ({})",
                fmt_mac(sender_mac),
                fmt_mac(target_mac)
            ),
            L3::Ip { src, dst, l4, .. } => {
                f.write_str(if src.is_ipv4() { "IPv4 " } else { "IPv6 " })?;
                match l4 {
                    L4::Tcp {
                        sport,
                        dport,
                        flags,
                        seq,
                        ack,
                        payload_len,
                    } => {
                        write!(
                            f,
                            "{src}.{sport} > {dst}.{dport}: Flags [{}], seq {seq}",
                            tcp_flags(*flags)
                        )?;
                        if flags & TCP_ACK != 0 {
                            write!(f, ", ack {ack}")?;
                        }
                        write!(f, ", length {payload_len}")
                    }
                    L4::Udp { sport, dport, len } => {
                        write!(f, "{src}.{sport} > {dst}.{dport}: UDP, length {len}")
                    }
                    L4::Icmp { typ, code } => {
                        write!(f, "{src} > {dst}: ICMP {}", icmp_name(*typ, *code))
                    }
                    L4::Icmp6 { typ, code } => {
                        write!(f, "{src} > {dst}: ICMP6, {}", icmp6_name(*typ, *code))
                    }
                    L4::Other { proto } => write!(f, "{src} > {dst}: ip-proto-{proto}"),
                }
            }
            L3::Other { ethertype } => write!(f, "ethertype 0x{ethertype:04x}"),
        }
    }
}

impl fmt::Display for Packet {
    /// `12:34:56.789012 eth0 In  02:00:00:00:00:10 > 02:00:00:00:00:02, IPv4 …` (local time).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {:<3} {} > {}, ",
            local_clock(self.ts),
            self.iface,
            self.dir,
            fmt_mac(&self.src_mac),
            fmt_mac(&self.dst_mac)
        )?;
        if let Some(v) = self.vlan {
            write!(f, "vlan {v}, ")?;
        }
        write!(f, "{}", self.l3)
    }
}

fn split_ts(ts: SystemTime) -> (i64, u32) {
    match ts.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_micros()),
        Err(e) => {
            // Before 1970: floor to whole seconds, keep microseconds positive.
            let d = e.duration();
            let (s, us) = (d.as_secs() as i64, d.subsec_micros());
            if us == 0 {
                (-s, 0)
            } else {
                (-s - 1, 1_000_000 - us)
            }
        }
    }
}

/// `HH:MM:SS.uuuuuu` in local time, as tcpdump prints it.
fn local_clock(ts: SystemTime) -> String {
    let (secs, us) = split_ts(ts);
    let t = secs as libc::time_t;
    // SAFETY: localtime_r only writes into the tm we own; a zeroed tm is a valid initial value.
    let mut tm: libc::tm = unsafe { mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if ok {
        format!(
            "{:02}:{:02}:{:02}.{us:06}",
            tm.tm_hour, tm.tm_min, tm.tm_sec
        )
    } else {
        let s = secs.rem_euclid(86_400);
        format!("{:02}:{:02}:{:02}.{us:06}", s / 3600, s / 60 % 60, s % 60)
    }
}

/// RFC 3339 in UTC with microseconds: `2026-04-01T12:34:56.789012Z`.
pub fn rfc3339(ts: SystemTime) -> String {
    let (secs, us) = split_ts(ts);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{us:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

// ---------------------------------------------------------------------------------------------
// Live capture
// ---------------------------------------------------------------------------------------------

fn os_err(what: &str) -> Error {
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            Error::Privilege("capture needs CAP_NET_RAW: run as root".into())
        }
        _ => Error::Runtime(anyhow::Error::new(e).context(what.to_string())),
    }
}

fn setsockopt_int(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, val: libc::c_int) -> bool {
    // SAFETY: passes a pointer to a live c_int and its exact size.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&val as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

fn ifname_of(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: the buffer is IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// An open AF_PACKET socket, bound to one interface or to all of them.
pub struct Capture {
    fd: OwnedFd,
    /// (ifindex, name) when bound to one interface.
    bound: Option<(u32, String)>,
    names: BTreeMap<u32, String>,
    buf: Vec<u8>,
}

/// One frame as the socket delivered it.
struct Raw {
    len: usize,
    ifindex: u32,
    hatype: u16,
    pkttype: u8,
    vlan: Option<(u16, u16)>,
    ts: Option<SystemTime>,
}

impl Capture {
    /// Open and bind the socket (in the current network namespace). `None` or `any` listens on
    /// every interface; a named interface is put in promiscuous mode while the socket is open.
    /// Errors: missing CAP_NET_RAW → [`Error::Privilege`]; unknown or non-Ethernet interface →
    /// [`Error::Usage`].
    pub fn open(iface: Option<&str>) -> Result<Capture> {
        let iface = iface.filter(|i| *i != "any");
        let ifindex = match iface {
            None => 0,
            Some(name) => {
                let c = std::ffi::CString::new(name)
                    .map_err(|_| usage!("invalid interface name '{name}'"))?;
                // SAFETY: c is a valid NUL-terminated string.
                let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
                if idx == 0 {
                    return Err(usage!("unknown interface '{name}'"));
                }
                idx
            }
        };
        // Protocol 0: nothing is queued until bind() picks the interface and ETH_P_ALL.
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(os_err("opening an AF_PACKET socket"));
        }
        // SAFETY: raw is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        // Before bind, so no frame arrives without its auxdata and timestamp.
        if !setsockopt_int(&fd, libc::SOL_PACKET, libc::PACKET_AUXDATA, 1) {
            return Err(os_err("setsockopt PACKET_AUXDATA"));
        }
        if !setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1) {
            return Err(os_err("setsockopt SO_TIMESTAMPNS"));
        }
        // Best effort (capped by net.core.rmem_max): room for bursts between two reads.
        setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, 4 << 20);

        // SAFETY: sockaddr_ll is plain data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: a pointer to a live sockaddr_ll and its exact size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENODEV) {
                return Err(usage!("unknown interface '{}'", iface.unwrap_or("any")));
            }
            return Err(os_err("binding the AF_PACKET socket"));
        }

        let bound = match iface {
            None => None,
            Some(name) => {
                // getsockname reports the bound device's link type.
                // SAFETY: as above; len tells the kernel the buffer size.
                let mut got: libc::sockaddr_ll = unsafe { mem::zeroed() };
                let mut len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                let rc = unsafe {
                    libc::getsockname(
                        fd.as_raw_fd(),
                        (&mut got as *mut libc::sockaddr_ll).cast(),
                        &mut len,
                    )
                };
                if rc == 0
                    && got.sll_hatype != libc::ARPHRD_ETHER
                    && got.sll_hatype != libc::ARPHRD_LOOPBACK
                {
                    return Err(usage!(
                        "cannot capture on '{name}': link type {} is not Ethernet (capture \
                         decodes Ethernet frames; use -i any or tcpdump)",
                        got.sll_hatype
                    ));
                }
                // SAFETY: packet_mreq is plain data; all-zero is valid.
                let mut mreq: libc::packet_mreq = unsafe { mem::zeroed() };
                mreq.mr_ifindex = ifindex as i32;
                mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
                // SAFETY: a pointer to a live packet_mreq and its exact size. The membership
                // (and promiscuous mode) ends when the socket is closed.
                let rc = unsafe {
                    libc::setsockopt(
                        fd.as_raw_fd(),
                        libc::SOL_PACKET,
                        libc::PACKET_ADD_MEMBERSHIP,
                        (&mreq as *const libc::packet_mreq).cast(),
                        mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
                    )
                };
                if rc != 0 {
                    return Err(os_err(&format!("promiscuous mode on {name}")));
                }
                Some((ifindex, name.to_string()))
            }
        };
        Ok(Capture {
            fd,
            bound,
            names: BTreeMap::new(),
            buf: vec![0; SNAPLEN],
        })
    }

    /// `eth0`, or `any`.
    pub fn iface(&self) -> &str {
        self.bound.as_ref().map_or("any", |(_, n)| n)
    }

    /// Wait up to `timeout` for the next Ethernet (or lo) frame, unfiltered. `Ok(None)` on
    /// timeout or when a signal interrupted the wait.
    pub fn next_packet(&mut self, timeout: Duration) -> Result<Option<Packet>> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(raw) = self.recv()? {
                if let Some(p) = self.packet_from(raw) {
                    return Ok(Some(p));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one live pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc < 0 {
                if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    return Ok(None);
                }
                return Err(os_err("poll on the capture socket"));
            }
            if rc == 0 {
                return Ok(None);
            }
        }
    }

    /// Read one frame without blocking; `None` when the queue is empty.
    fn recv(&mut self) -> Result<Option<Raw>> {
        // SAFETY: all-zero is valid for these plain-data structs.
        let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
        let mut control = [0u64; 64];
        let mut iov = libc::iovec {
            iov_base: self.buf.as_mut_ptr().cast(),
            iov_len: self.buf.len(),
        };
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_name = (&mut addr as *mut libc::sockaddr_ll).cast();
        msg.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = mem::size_of_val(&control) as _;
        // MSG_TRUNC: return the real length even when the frame did not fit.
        // SAFETY: msg points at buffers that live for the whole call.
        let n = unsafe {
            libc::recvmsg(
                self.fd.as_raw_fd(),
                &mut msg,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
                Some(libc::ENETDOWN) | Some(libc::ENODEV) => Err(Error::Runtime(anyhow::anyhow!(
                    "{} went down or away during the capture",
                    self.iface()
                ))),
                _ => Err(Error::Runtime(
                    anyhow::Error::new(e).context("reading from the capture socket"),
                )),
            };
        }
        let mut raw = Raw {
            len: n as usize,
            ifindex: addr.sll_ifindex as u32,
            hatype: addr.sll_hatype,
            pkttype: addr.sll_pkttype,
            vlan: None,
            ts: None,
        };
        // SAFETY: the CMSG_* macros walk the control buffer the kernel filled in, bounded by
        // msg_controllen; payloads are read unaligned.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                let (level, typ) = ((*c).cmsg_level, (*c).cmsg_type);
                let data = libc::CMSG_DATA(c);
                if level == libc::SOL_PACKET && typ == libc::PACKET_AUXDATA {
                    let aux: libc::tpacket_auxdata = std::ptr::read_unaligned(data.cast());
                    if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                        let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0
                            && aux.tp_vlan_tpid != 0
                        {
                            aux.tp_vlan_tpid
                        } else {
                            ETH_P_8021Q
                        };
                        raw.vlan = Some((tpid, aux.tp_vlan_tci));
                    }
                } else if level == libc::SOL_SOCKET && typ == libc::SCM_TIMESTAMPNS {
                    let t: libc::timespec = std::ptr::read_unaligned(data.cast());
                    raw.ts =
                        Some(UNIX_EPOCH + Duration::new(t.tv_sec.max(0) as u64, t.tv_nsec as u32));
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        Ok(Some(raw))
    }

    fn packet_from(&mut self, raw: Raw) -> Option<Packet> {
        if raw.hatype != libc::ARPHRD_ETHER && raw.hatype != libc::ARPHRD_LOOPBACK {
            return None;
        }
        let data = &self.buf[..raw.len.min(self.buf.len())];
        if data.len() < 14 {
            return None;
        }
        let frame = match raw.vlan {
            Some((tpid, tci)) => insert_vlan_tag(data, tpid, tci),
            None => data.to_vec(),
        };
        let iface = match &self.bound {
            Some((_, name)) => name.clone(),
            None => self
                .names
                .entry(raw.ifindex)
                .or_insert_with(|| ifname_of(raw.ifindex).unwrap_or(format!("if{}", raw.ifindex)))
                .clone(),
        };
        Packet::from_frame(
            raw.ts.unwrap_or_else(SystemTime::now),
            raw.ifindex,
            iface,
            Direction::from_pkttype(raw.pkttype),
            frame,
        )
    }

    /// Deliver matching packets to `on_packet` until `opts.max_packets` or `opts.duration` is
    /// reached, `stop()` returns true (checked at least every 200 ms), or `on_packet` returns
    /// false. Returns the number of packets delivered.
    pub fn run(
        &mut self,
        opts: &CaptureOpts,
        stop: &dyn Fn() -> bool,
        on_packet: &mut dyn FnMut(&Packet) -> bool,
    ) -> Result<u64> {
        let deadline = opts.duration.map(|d| Instant::now().checked_add(d));
        let mut n = 0u64;
        loop {
            if opts.max_packets.is_some_and(|m| n >= m) || stop() {
                break;
            }
            let mut wait = SLICE;
            if let Some(Some(d)) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                wait = wait.min(left);
            }
            let Some(p) = self.next_packet(wait)? else {
                continue;
            };
            if !opts.filter.matches(&p.l3) {
                continue;
            }
            n += 1;
            if !on_packet(&p) {
                break;
            }
        }
        Ok(n)
    }
}

/// Capture until `max_packets` or `duration` (at least one must be set) or until `on_packet`
/// returns false, calling `on_packet` for each matching packet as it arrives.
pub fn capture(opts: &CaptureOpts, on_packet: &mut dyn FnMut(&Packet) -> bool) -> Result<()> {
    if opts.max_packets.is_none() && opts.duration.is_none() {
        return Err(usage!(
            "a capture needs a packet count or a duration (or use capture_until with a stop flag)"
        ));
    }
    capture_until(opts, &|| false, on_packet).map(|_| ())
}

/// [`capture`], also stopping when `stop()` returns true (checked at least every 200 ms; e.g. a
/// flag set by a SIGINT handler). No limit is required. Returns the number of packets delivered.
pub fn capture_until(
    opts: &CaptureOpts,
    stop: &dyn Fn() -> bool,
    on_packet: &mut dyn FnMut(&Packet) -> bool,
) -> Result<u64> {
    Capture::open(opts.iface.as_deref())?.run(opts, stop, on_packet)
}

// ---------------------------------------------------------------------------------------------
// pcap files
// ---------------------------------------------------------------------------------------------

/// Writes classic pcap (LINKTYPE_ETHERNET, microsecond timestamps), one `write` per packet so
/// the file is complete up to the last packet even if the process is killed.
pub struct PcapWriter<W: Write = File> {
    out: W,
}

impl<W: Write> PcapWriter<W> {
    /// Write the file header.
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&PCAP_MAGIC_US.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        h.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        h.extend_from_slice(&(SNAPLEN as u32).to_le_bytes());
        h.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&h)?;
        out.flush()?;
        Ok(PcapWriter { out })
    }

    pub fn write(&mut self, p: &Packet) -> io::Result<()> {
        let (secs, us) = split_ts(p.ts);
        let data = &p.frame[..p.frame.len().min(SNAPLEN)];
        let mut rec = Vec::with_capacity(16 + data.len());
        rec.extend_from_slice(&(secs.clamp(0, u32::MAX as i64) as u32).to_le_bytes());
        rec.extend_from_slice(&us.to_le_bytes());
        rec.extend_from_slice(&(data.len() as u32).to_le_bytes());
        rec.extend_from_slice(&(p.frame.len() as u32).to_le_bytes());
        rec.extend_from_slice(data);
        self.out.write_all(&rec)?;
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Write `packets` to a new pcap file at `path`.
pub fn write_pcap(path: &Path, packets: &[Packet]) -> Result<()> {
    let ctx = || format!("writing {}", path.display());
    let mut w = PcapWriter::new(File::create(path).with_context(ctx)?).with_context(ctx)?;
    for p in packets {
        w.write(p).with_context(ctx)?;
    }
    Ok(())
}

/// Reads classic pcap: either byte order, micro- or nanosecond timestamps, Ethernet frames
/// (direction In, interface `pcap`) or Linux cooked captures (`tcpdump -i any`: SLL and SLL2,
/// direction from the packet type, destination MAC unknown and shown as zero).
pub struct PcapReader<R: Read = BufReader<File>> {
    inp: R,
    swapped: bool,
    nanos: bool,
    linktype: u32,
}

impl<R: Read> PcapReader<R> {
    /// Read and check the file header. A bad header is a usage error (wrong file).
    pub fn new(mut inp: R) -> Result<Self> {
        let mut h = [0u8; 24];
        inp.read_exact(&mut h)
            .map_err(|_| usage!("not a pcap file (shorter than a pcap header)"))?;
        let magic = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let (swapped, nanos) = match magic {
            PCAP_MAGIC_US => (false, false),
            PCAP_MAGIC_NS => (false, true),
            m if m == PCAP_MAGIC_US.swap_bytes() => (true, false),
            m if m == PCAP_MAGIC_NS.swap_bytes() => (true, true),
            0x0a0d_0d0a => {
                return Err(usage!(
                    "pcapng is not supported; convert it first: tcpdump -r IN.pcapng -w OUT.pcap"
                ))
            }
            _ => return Err(usage!("not a pcap file (bad magic number 0x{magic:08x})")),
        };
        let mut r = PcapReader {
            inp,
            swapped,
            nanos,
            linktype: 0,
        };
        r.linktype = r.u32_at(&h, 20) & 0x0fff_ffff;
        if !matches!(
            r.linktype,
            LINKTYPE_ETHERNET | LINKTYPE_LINUX_SLL | LINKTYPE_LINUX_SLL2
        ) {
            return Err(usage!(
                "unsupported pcap link type {} (supported: Ethernet, Linux cooked)",
                r.linktype
            ));
        }
        Ok(r)
    }

    fn u32_at(&self, b: &[u8], i: usize) -> u32 {
        let v = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if self.swapped {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        }
    }

    /// The next packet, `None` at the end of the file. Records too short to hold a frame are
    /// skipped; a record cut off by the end of the file is an error (as in tcpdump).
    pub fn next_packet(&mut self) -> Result<Option<Packet>> {
        loop {
            let mut h = [0u8; 16];
            match read_full(&mut self.inp, &mut h)? {
                0 => return Ok(None),
                16 => {}
                n => {
                    return Err(Error::Runtime(anyhow::anyhow!(
                        "truncated pcap file: record header has {n} of 16 bytes"
                    )))
                }
            }
            let secs = self.u32_at(&h, 0);
            let frac = self.u32_at(&h, 4);
            let incl = self.u32_at(&h, 8) as usize;
            if incl > 16 << 20 {
                return Err(Error::Runtime(anyhow::anyhow!(
                    "corrupt pcap file: record of {incl} bytes"
                )));
            }
            let mut data = vec![0u8; incl];
            let got = read_full(&mut self.inp, &mut data)?;
            if got < incl {
                return Err(Error::Runtime(anyhow::anyhow!(
                    "truncated pcap file: record has {got} of {incl} bytes"
                )));
            }
            let nanos = if self.nanos {
                frac.min(999_999_999)
            } else {
                frac.min(999_999) * 1000
            };
            let ts = UNIX_EPOCH + Duration::new(u64::from(secs), nanos);
            let (dir, frame) = match self.linktype {
                LINKTYPE_LINUX_SLL => match cooked_to_ethernet(&data, false) {
                    Some(x) => x,
                    None => continue,
                },
                LINKTYPE_LINUX_SLL2 => match cooked_to_ethernet(&data, true) {
                    Some(x) => x,
                    None => continue,
                },
                _ => (Direction::In, data),
            };
            if let Some(p) = Packet::from_frame(ts, 0, "pcap", dir, frame) {
                return Ok(Some(p));
            }
        }
    }
}

/// Read until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Error::Runtime(
                    anyhow::Error::new(e).context("reading pcap"),
                ))
            }
        }
    }
    Ok(got)
}

/// A Linux cooked header (SLL: 16 bytes; SLL2: 20 bytes) becomes an Ethernet header with the
/// link-layer source address and a zero destination.
fn cooked_to_ethernet(d: &[u8], v2: bool) -> Option<(Direction, Vec<u8>)> {
    let (hdr, pkttype, halen, addr, proto) = if v2 {
        if d.len() < 20 {
            return None;
        }
        (20, d[10], d[11], 12, be16(d, 0))
    } else {
        if d.len() < 16 {
            return None;
        }
        (16, be16(d, 0) as u8, be16(d, 4) as u8, 6, be16(d, 14))
    };
    let mut src = [0u8; 6];
    if halen == 6 {
        src.copy_from_slice(&d[addr..addr + 6]);
    }
    let mut frame = Vec::with_capacity(14 + d.len() - hdr);
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&proto.to_be_bytes());
    frame.extend_from_slice(&d[hdr..]);
    Some((Direction::from_pkttype(pkttype), frame))
}

fn open_pcap(path: &Path) -> Result<PcapReader> {
    let f = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => usage!("cannot read {}: no such file", path.display()),
        io::ErrorKind::PermissionDenied => {
            usage!("cannot read {}: permission denied", path.display())
        }
        _ => Error::Runtime(anyhow::Error::new(e).context(format!("opening {}", path.display()))),
    })?;
    PcapReader::new(BufReader::new(f)).map_err(|e| match e {
        Error::Usage(m) => usage!("{}: {m}", path.display()),
        other => other,
    })
}

/// Open a pcap file for streaming (see [`PcapReader`]).
pub fn pcap_reader(path: &Path) -> Result<PcapReader> {
    open_pcap(path)
}

/// Read a whole pcap file.
pub fn read_pcap(path: &Path) -> Result<Vec<Packet>> {
    let mut r = open_pcap(path)?;
    let mut out = Vec::new();
    while let Some(p) = r.next_packet().map_err(|e| match e {
        Error::Runtime(e) => Error::Runtime(e.context(format!("reading {}", path.display()))),
        other => other,
    })? {
        out.push(p);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    const C_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
    const S_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x11];
    const C_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
    const S_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);

    fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, body: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(body);
        f
    }

    fn arp(op: u16, smac: [u8; 6], sip: Ipv4Addr, tmac: [u8; 6], tip: Ipv4Addr) -> Vec<u8> {
        let mut b = vec![0, 1, 8, 0, 6, 4];
        b.extend_from_slice(&op.to_be_bytes());
        b.extend_from_slice(&smac);
        b.extend_from_slice(&sip.octets());
        b.extend_from_slice(&tmac);
        b.extend_from_slice(&tip.octets());
        b
    }

    fn ipv4(proto: u8, src: Ipv4Addr, dst: Ipv4Addr, l4: &[u8]) -> Vec<u8> {
        let total = (20 + l4.len()) as u16;
        let mut b = vec![0x45, 0];
        b.extend_from_slice(&total.to_be_bytes());
        b.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
        b.extend_from_slice(&src.octets());
        b.extend_from_slice(&dst.octets());
        b.extend_from_slice(l4);
        b
    }

    fn ipv6(nh: u8, src: Ipv6Addr, dst: Ipv6Addr, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0x60, 0, 0, 0];
        b.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        b.extend_from_slice(&[nh, 63]);
        b.extend_from_slice(&src.octets());
        b.extend_from_slice(&dst.octets());
        b.extend_from_slice(payload);
        b
    }

    /// TCP header with 12 bytes of options (data offset 8) and `payload` bytes of data.
    fn tcp(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, payload: usize) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&sport.to_be_bytes());
        b.extend_from_slice(&dport.to_be_bytes());
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(&ack.to_be_bytes());
        b.extend_from_slice(&[8 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
        b.extend_from_slice(&[1; 12]);
        b.extend(std::iter::repeat_n(0xab, payload));
        b
    }

    fn pkt(frame: Vec<u8>) -> Packet {
        let ts = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        Packet::from_frame(ts, 2, "eth0", Direction::In, frame).expect("decodes")
    }

    /// The Display line without the local-time prefix.
    fn line(p: &Packet) -> String {
        let s = p.to_string();
        s.split_once(' ').unwrap().1.to_string()
    }

    #[test]
    fn decode_arp_request_and_reply() {
        let req = eth(
            [0xff; 6],
            C_MAC,
            ETH_P_ARP,
            &arp(1, C_MAC, C_IP, [0; 6], S_IP),
        );
        let (src, dst, vlan, l3) = decode(&req).unwrap();
        assert_eq!((src, dst, vlan), (C_MAC, [0xff; 6], None));
        assert_eq!(
            l3,
            L3::Arp {
                op: 1,
                sender_mac: C_MAC,
                sender_ip: C_IP,
                target_mac: [0; 6],
                target_ip: S_IP
            }
        );
        let mut p = pkt(req);
        p.dir = Direction::Broadcast;
        assert_eq!(
            line(&p),
            "eth0 B   02:00:00:00:00:10 > ff:ff:ff:ff:ff:ff, ARP, Request who-has 198.18.0.11 \
             tell 198.18.0.10"
        );

        let reply = eth(C_MAC, S_MAC, ETH_P_ARP, &arp(2, S_MAC, S_IP, C_MAC, C_IP));
        let mut p = pkt(reply);
        p.dir = Direction::Out;
        assert_eq!(
            line(&p),
            "eth0 Out 02:00:00:00:00:11 > 02:00:00:00:00:10, ARP, Reply 198.18.0.11 is-at \
             02:00:00:00:00:11"
        );
        // A unicast probe names the MAC it expects.
        let probe = eth(S_MAC, C_MAC, ETH_P_ARP, &arp(1, C_MAC, C_IP, S_MAC, S_IP));
        assert!(line(&pkt(probe))
            .ends_with("ARP, Request who-has 198.18.0.11 (02:00:00:00:00:11) tell 198.18.0.10"));
        // Not Ethernet/IPv4 ARP, or too short: Other.
        let mut odd = arp(1, C_MAC, C_IP, [0; 6], S_IP);
        odd[1] = 6;
        assert_eq!(
            decode(&eth([0xff; 6], C_MAC, ETH_P_ARP, &odd)).unwrap().3,
            L3::Other {
                ethertype: ETH_P_ARP
            }
        );
        assert_eq!(
            decode(&eth([0xff; 6], C_MAC, ETH_P_ARP, &[0, 1]))
                .unwrap()
                .3,
            L3::Other {
                ethertype: ETH_P_ARP
            }
        );
    }

    #[test]
    fn decode_ipv4_tcp() {
        let vip = Ipv4Addr::new(198, 18, 0, 100);
        let syn = tcp(40000, 80, 123, 0, TCP_SYN, 0);
        let p = pkt(eth(S_MAC, C_MAC, ETH_P_IP, &ipv4(6, C_IP, vip, &syn)));
        assert_eq!(
            p.l3,
            L3::Ip {
                src: IpAddr::V4(C_IP),
                dst: IpAddr::V4(vip),
                ttl: 64,
                l4: L4::Tcp {
                    sport: 40000,
                    dport: 80,
                    flags: TCP_SYN,
                    seq: 123,
                    ack: 0,
                    payload_len: 0
                }
            }
        );
        assert_eq!(
            line(&p),
            "eth0 In  02:00:00:00:00:10 > 02:00:00:00:00:11, IPv4 198.18.0.10.40000 > \
             198.18.0.100.80: Flags [S], seq 123, length 0"
        );
        let data = tcp(80, 40000, 9, 124, TCP_PSH | TCP_ACK, 5);
        let p = pkt(eth(C_MAC, S_MAC, ETH_P_IP, &ipv4(6, vip, C_IP, &data)));
        assert!(line(&p).ends_with("Flags [P.], seq 9, ack 124, length 5"));
        let rst = tcp(9, 1, 0, 1, TCP_RST | TCP_ACK, 0);
        let p = pkt(eth(C_MAC, S_MAC, ETH_P_IP, &ipv4(6, S_IP, C_IP, &rst)));
        assert!(line(&p).ends_with("Flags [R.], seq 0, ack 1, length 0"));
        let j = p.to_json();
        assert_eq!(j["proto"], "tcp");
        assert_eq!(j["flags"], "R.");
        assert_eq!(j["flags_raw"], 0x14);
        assert_eq!(j["src"], "198.18.0.11");
        assert_eq!(j["dport"], 1);
        assert_eq!(j["family"], 4);
        assert_eq!(j["dir"], "in");
        assert_eq!(j["iface"], "eth0");
        assert_eq!(j["src_mac"], "02:00:00:00:00:11");
        assert_eq!(j["vlan"], Value::Null);
        assert_eq!(j["ts"], "2023-11-14T22:13:20.123456Z");
    }

    #[test]
    fn payload_len_comes_from_ip_header_even_when_truncated() {
        let data = tcp(80, 40000, 1, 1, TCP_ACK, 1000);
        let mut f = eth(C_MAC, S_MAC, ETH_P_IP, &ipv4(6, S_IP, C_IP, &data));
        f.truncate(14 + 20 + 40);
        let Some((_, _, _, L3::Ip { l4, .. })) = decode(&f) else {
            panic!("not IP")
        };
        assert!(matches!(
            l4,
            L4::Tcp {
                payload_len: 1000,
                ..
            }
        ));
        // A TCP header cut short is Other, not a panic.
        f.truncate(14 + 20 + 10);
        let Some((_, _, _, L3::Ip { l4, .. })) = decode(&f) else {
            panic!("not IP")
        };
        assert_eq!(l4, L4::Other { proto: 6 });
        // An IPv4 header cut short is Other at L3.
        f.truncate(14 + 12);
        assert_eq!(
            decode(&f).unwrap().3,
            L3::Other {
                ethertype: ETH_P_IP
            }
        );
        assert!(decode(&f[..13]).is_none());
    }

    #[test]
    fn decode_ipv4_udp_icmp_fragment() {
        let mut udp = Vec::new();
        udp.extend_from_slice(&5353u16.to_be_bytes());
        udp.extend_from_slice(&53u16.to_be_bytes());
        udp.extend_from_slice(&(8u16 + 12).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(&[7; 12]);
        let p = pkt(eth(S_MAC, C_MAC, ETH_P_IP, &ipv4(17, C_IP, S_IP, &udp)));
        assert!(matches!(
            p.l3,
            L3::Ip {
                l4: L4::Udp {
                    sport: 5353,
                    dport: 53,
                    len: 12
                },
                ..
            }
        ));
        assert!(line(&p).ends_with("IPv4 198.18.0.10.5353 > 198.18.0.11.53: UDP, length 12"));

        let echo = [8, 0, 0, 0, 0, 1, 0, 1];
        let p = pkt(eth(S_MAC, C_MAC, ETH_P_IP, &ipv4(1, C_IP, S_IP, &echo)));
        assert!(matches!(
            p.l3,
            L3::Ip {
                l4: L4::Icmp { typ: 8, code: 0 },
                ttl: 64,
                ..
            }
        ));
        assert!(line(&p).ends_with("IPv4 198.18.0.10 > 198.18.0.11: ICMP echo request"));
        assert_eq!(p.to_json()["icmp_type"], 8);

        // A non-first fragment has no transport header.
        let mut frag = ipv4(6, C_IP, S_IP, &[0; 20]);
        frag[6] = 0x00;
        frag[7] = 0x10;
        let p = pkt(eth(S_MAC, C_MAC, ETH_P_IP, &frag));
        assert!(matches!(
            p.l3,
            L3::Ip {
                l4: L4::Other { proto: 6 },
                ..
            }
        ));
    }

    #[test]
    fn decode_ipv6_tcp_icmp6_and_extension_headers() {
        let c: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let vip: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let syn = tcp(40000, 443, 7, 0, TCP_SYN, 0);
        let p = pkt(eth(S_MAC, C_MAC, ETH_P_IPV6, &ipv6(6, c, vip, &syn)));
        assert_eq!(
            p.l3,
            L3::Ip {
                src: IpAddr::V6(c),
                dst: IpAddr::V6(vip),
                ttl: 63,
                l4: L4::Tcp {
                    sport: 40000,
                    dport: 443,
                    flags: TCP_SYN,
                    seq: 7,
                    ack: 0,
                    payload_len: 0
                }
            }
        );
        assert!(line(&p)
            .ends_with("IPv6 2001:db8::10.40000 > 2001:db8::100.443: Flags [S], seq 7, length 0"));
        assert_eq!(p.to_json()["family"], 6);

        // Hop-by-hop options (8 bytes) in front of a SYN-ACK with 3 bytes of data.
        let mut hbh = vec![6, 0, 1, 4, 0, 0, 0, 0];
        hbh.extend(tcp(443, 40000, 1, 8, TCP_SYN | TCP_ACK, 3));
        let p = pkt(eth(C_MAC, S_MAC, ETH_P_IPV6, &ipv6(0, vip, c, &hbh)));
        assert!(matches!(
            p.l3,
            L3::Ip {
                l4: L4::Tcp {
                    flags: 0x12,
                    payload_len: 3,
                    ..
                },
                ..
            }
        ));

        let ns = [135, 0, 0, 0, 0, 0, 0, 0];
        let p = pkt(eth(S_MAC, C_MAC, ETH_P_IPV6, &ipv6(58, c, vip, &ns)));
        assert!(matches!(
            p.l3,
            L3::Ip {
                l4: L4::Icmp6 { typ: 135, code: 0 },
                ..
            }
        ));
        assert!(line(&p).ends_with("ICMP6, neighbor solicitation"));
        assert_eq!(p.to_json()["proto"], "icmp6");
    }

    #[test]
    fn decode_vlan_tagged() {
        let inner = eth(
            [0xff; 6],
            C_MAC,
            ETH_P_ARP,
            &arp(1, C_MAC, C_IP, [0; 6], S_IP),
        );
        // 802.1Q, priority 3, VLAN 100.
        let tagged = insert_vlan_tag(&inner, ETH_P_8021Q, (3 << 13) | 100);
        assert_eq!(tagged.len(), inner.len() + 4);
        assert_eq!(&tagged[12..18], &[0x81, 0x00, 0x60, 0x64, 0x08, 0x06]);
        let (src, dst, vlan, l3) = decode(&tagged).unwrap();
        assert_eq!((src, dst, vlan), (C_MAC, [0xff; 6], Some(100)));
        assert!(matches!(l3, L3::Arp { op: 1, .. }));
        let p = pkt(tagged.clone());
        assert!(line(&p).contains("ff:ff:ff:ff:ff:ff, vlan 100, ARP, Request"));
        assert_eq!(p.to_json()["vlan"], 100);

        // QinQ: the outer (802.1ad) id is reported, the inner payload still decoded.
        let qinq = insert_vlan_tag(&tagged, ETH_P_8021AD, 200);
        let (_, _, vlan, l3) = decode(&qinq).unwrap();
        assert_eq!(vlan, Some(200));
        assert!(matches!(l3, L3::Arp { .. }));

        // A tag with nothing after it.
        let cut = &tagged[..15];
        assert_eq!(
            decode(cut).unwrap().3,
            L3::Other {
                ethertype: ETH_P_8021Q
            }
        );
    }

    #[test]
    fn other_ethertype() {
        let p = pkt(eth([1, 0x80, 0xc2, 0, 0, 0xe], C_MAC, 0x88cc, &[0; 20]));
        assert_eq!(p.l3, L3::Other { ethertype: 0x88cc });
        assert!(line(&p).ends_with("ethertype 0x88cc"));
        assert!(!Filter {
            hosts: vec![IpAddr::V4(C_IP)]
        }
        .matches(&p.l3));
    }

    #[test]
    fn filter_matches_ip_and_arp_ends() {
        let vip = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100));
        let f = Filter { hosts: vec![vip] };
        let arp_for_vip = decode(&eth(
            [0xff; 6],
            C_MAC,
            ETH_P_ARP,
            &arp(1, C_MAC, C_IP, [0; 6], Ipv4Addr::new(198, 18, 0, 100)),
        ))
        .unwrap()
        .3;
        assert!(f.matches(&arp_for_vip));
        let other_arp = decode(&eth(
            [0xff; 6],
            C_MAC,
            ETH_P_ARP,
            &arp(1, C_MAC, C_IP, [0; 6], S_IP),
        ))
        .unwrap()
        .3;
        assert!(!f.matches(&other_arp));
        assert!(Filter::default().matches(&other_arp));
        let to_vip = L3::Ip {
            src: IpAddr::V4(C_IP),
            dst: vip,
            ttl: 64,
            l4: L4::Other { proto: 47 },
        };
        assert!(f.matches(&to_vip));
        assert!(Filter {
            hosts: vec![IpAddr::V4(C_IP)]
        }
        .matches(&to_vip));
    }

    #[test]
    fn direction_mapping_and_padding() {
        assert_eq!(Direction::from_pkttype(0), Direction::In);
        assert_eq!(Direction::from_pkttype(1), Direction::Broadcast);
        assert_eq!(Direction::from_pkttype(2), Direction::Multicast);
        assert_eq!(Direction::from_pkttype(3), Direction::OtherHost);
        assert_eq!(Direction::from_pkttype(4), Direction::Out);
        assert_eq!(format!("[{:<3}]", Direction::In), "[In ]");
        assert_eq!(format!("[{:<3}]", Direction::Out), "[Out]");
        assert_eq!(tcp_flags(0), "none");
        assert_eq!(tcp_flags(TCP_SYN | TCP_ACK), "S.");
        assert_eq!(tcp_flags(TCP_FIN | TCP_PSH | TCP_ACK), "FP.");
    }

    #[test]
    fn capture_needs_a_limit() {
        let opts = CaptureOpts::default();
        assert!(matches!(
            capture(&opts, &mut |_| true),
            Err(Error::Usage(m)) if m.contains("count or a duration")
        ));
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let leap = UNIX_EPOCH + Duration::new(951_782_400, 5_000); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000005Z");
        let end = UNIX_EPOCH + Duration::from_secs(4_102_444_799); // 2099-12-31 23:59:59
        assert_eq!(rfc3339(end), "2099-12-31T23:59:59.000000Z");
    }

    fn sample_packets() -> Vec<Packet> {
        let mut a = pkt(eth(
            [0xff; 6],
            C_MAC,
            ETH_P_ARP,
            &arp(1, C_MAC, C_IP, [0; 6], S_IP),
        ));
        a.ts = UNIX_EPOCH + Duration::new(1_700_000_000, 1_000);
        let mut b = pkt(insert_vlan_tag(
            &eth(
                C_MAC,
                S_MAC,
                ETH_P_IP,
                &ipv4(6, S_IP, C_IP, &tcp(80, 4000, 5, 6, 0x12, 0)),
            ),
            ETH_P_8021Q,
            7,
        ));
        b.ts = UNIX_EPOCH + Duration::new(1_700_000_001, 999_999_000);
        vec![a, b]
    }

    #[test]
    fn pcap_round_trip_in_memory() {
        let packets = sample_packets();
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        for p in &packets {
            w.write(p).unwrap();
        }
        let bytes = w.into_inner();
        // Global header: magic, 2.4, snaplen, LINKTYPE_ETHERNET (little endian).
        assert_eq!(&bytes[..8], &[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]);
        assert_eq!(&bytes[16..24], &[0, 0, 4, 0, 1, 0, 0, 0]);
        let expected_len = 24 + packets.iter().map(|p| 16 + p.frame.len()).sum::<usize>();
        assert_eq!(bytes.len(), expected_len);

        let mut r = PcapReader::new(&bytes[..]).unwrap();
        let mut back = Vec::new();
        while let Some(p) = r.next_packet().unwrap() {
            back.push(p);
        }
        assert_eq!(back.len(), packets.len());
        for (a, b) in packets.iter().zip(&back) {
            assert_eq!(a.frame, b.frame);
            assert_eq!(a.ts, b.ts);
            assert_eq!(
                (a.src_mac, a.dst_mac, a.vlan),
                (b.src_mac, b.dst_mac, b.vlan)
            );
            assert_eq!(a.l3, b.l3);
            assert_eq!(b.dir, Direction::In);
            assert_eq!(b.iface, "pcap");
        }
        assert_eq!(back[1].vlan, Some(7));

        // A record cut short is an error, not a silent end.
        let mut r = PcapReader::new(&bytes[..bytes.len() - 3]).unwrap();
        assert!(r.next_packet().unwrap().is_some());
        assert!(r.next_packet().is_err());
        // Not a pcap.
        assert!(matches!(
            PcapReader::new(&b"hello, this is not a pcap file"[..]),
            Err(Error::Usage(_))
        ));
        assert!(matches!(
            PcapReader::new(&[0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0][..]),
            Err(Error::Usage(_))
        ));
    }

    #[test]
    fn pcap_round_trip_file_and_foreign_formats() {
        let dir = std::env::temp_dir().join(format!("lbctl-pcap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rt.pcap");
        let packets = sample_packets();
        write_pcap(&path, &packets).unwrap();
        let back = read_pcap(&path).unwrap();
        assert_eq!(
            back.iter().map(|p| &p.frame).collect::<Vec<_>>(),
            packets.iter().map(|p| &p.frame).collect::<Vec<_>>()
        );

        // Big-endian, nanosecond pcap with a Linux cooked (SLL) record: OUTGOING, halen 6.
        let mut be = Vec::new();
        be.extend_from_slice(&PCAP_MAGIC_NS.to_be_bytes());
        be.extend_from_slice(&[0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        be.extend_from_slice(&LINKTYPE_LINUX_SLL.to_be_bytes());
        let l3 = ipv4(1, S_IP, C_IP, &[0, 0, 0, 0]);
        let mut sll = vec![0, 4, 0, 1, 0, 6];
        sll.extend_from_slice(&S_MAC);
        sll.extend_from_slice(&[0, 0]);
        sll.extend_from_slice(&ETH_P_IP.to_be_bytes());
        sll.extend_from_slice(&l3);
        be.extend_from_slice(&5u32.to_be_bytes());
        be.extend_from_slice(&7u32.to_be_bytes());
        be.extend_from_slice(&(sll.len() as u32).to_be_bytes());
        be.extend_from_slice(&(sll.len() as u32).to_be_bytes());
        be.extend_from_slice(&sll);
        std::fs::write(&path, &be).unwrap();
        let back = read_pcap(&path).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].ts, UNIX_EPOCH + Duration::new(5, 7));
        assert_eq!(back[0].dir, Direction::Out);
        assert_eq!(back[0].src_mac, S_MAC);
        assert!(matches!(
            back[0].l3,
            L3::Ip {
                l4: L4::Icmp { typ: 0, .. },
                ..
            }
        ));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(read_pcap(&path), Err(Error::Usage(_))));
    }
}
