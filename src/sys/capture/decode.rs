//! Decoding Ethernet frames (pure): Ethernet/802.1Q, ARP, IPv4, IPv6, TCP/UDP/ICMP headers.

use super::*;

pub(super) fn be16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

pub(super) fn be32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

pub(super) fn mac_at(b: &[u8], i: usize) -> Mac {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[i..i + 6]);
    m
}

pub(super) fn v4_at(b: &[u8], i: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[i], b[i + 1], b[i + 2], b[i + 3])
}

pub(super) fn v6_at(b: &[u8], i: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[i..i + 16]);
    Ipv6Addr::from(a)
}

/// What [`decode()`] returns: `(src_mac, dst_mac, vlan, l3)`.
pub type Decoded = (Mac, Mac, Option<u16>, L3);

/// Decode an Ethernet frame into `(src_mac, dst_mac, vlan, L3)`. `None` only when the frame is
/// shorter than an Ethernet header; undecodable payloads become [`L3::Other`].
pub fn decode(frame: &[u8]) -> Option<Decoded> {
    if frame.len() < 14 {
        return None;
    }
    let (vlan, _, l3) = decode_payload(be16(frame, 12), &frame[14..]);
    Some((mac_at(frame, 6), mac_at(frame, 0), vlan, l3))
}

/// The network layer behind an ethertype, through any VLAN tags: `(outer vlan id, final
/// ethertype, L3)`.
pub(super) fn decode_payload(mut ethertype: u16, body: &[u8]) -> (Option<u16>, u16, L3) {
    let mut off = 0;
    let mut vlan = None;
    while matches!(ethertype, ETH_P_8021Q | ETH_P_8021AD | ETH_P_QINQ1) {
        if body.len() < off + 4 {
            return (vlan, ethertype, L3::Other { ethertype });
        }
        vlan.get_or_insert(be16(body, off) & 0x0fff);
        ethertype = be16(body, off + 2);
        off += 4;
    }
    let body = &body[off..];
    let l3 = match ethertype {
        ETH_P_ARP => decode_arp(body),
        ETH_P_IP => decode_ipv4(body),
        ETH_P_IPV6 => decode_ipv6(body),
        _ => None,
    }
    .unwrap_or(L3::Other { ethertype });
    (vlan, ethertype, l3)
}

/// What a record of any supported link type says (see [`decode_record`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub src_mac: Mac,
    pub dst_mac: Mac,
    pub vlan: Option<u16>,
    /// The final ethertype (inside VLAN tags); 0x0800/0x86dd for raw IP.
    pub ethertype: u16,
    pub l3: L3,
    /// Only cooked records carry a direction.
    pub dir: Option<Direction>,
    /// Only SLL2 records carry an interface index.
    pub ifindex: Option<u32>,
}

/// Decode one record of link type `linktype` (Ethernet, Linux cooked v1/v2, raw IP). `None`
/// when it is shorter than its link-layer header or the link type is not supported.
pub fn decode_record(linktype: u32, d: &[u8]) -> Option<Meta> {
    let raw = |d: &[u8]| {
        let et = match d.first().map(|b| b >> 4) {
            Some(6) => ETH_P_IPV6,
            _ => ETH_P_IP,
        };
        let (vlan, ethertype, l3) = decode_payload(et, d);
        Meta {
            src_mac: [0; 6],
            dst_mac: [0; 6],
            vlan,
            ethertype,
            l3,
            dir: None,
            ifindex: None,
        }
    };
    match linktype {
        LINKTYPE_ETHERNET => {
            if d.len() < 14 {
                return None;
            }
            let (vlan, ethertype, l3) = decode_payload(be16(d, 12), &d[14..]);
            Some(Meta {
                src_mac: mac_at(d, 6),
                dst_mac: mac_at(d, 0),
                vlan,
                ethertype,
                l3,
                dir: None,
                ifindex: None,
            })
        }
        LINKTYPE_LINUX_SLL2 => {
            if d.len() < 20 {
                return None;
            }
            let (vlan, ethertype, l3) = decode_payload(be16(d, 0), &d[20..]);
            Some(Meta {
                src_mac: if d[11] == 6 { mac_at(d, 12) } else { [0; 6] },
                dst_mac: [0; 6],
                vlan,
                ethertype,
                l3,
                dir: Some(Direction::from_pkttype(d[10])),
                ifindex: Some(be32(d, 4)),
            })
        }
        LINKTYPE_LINUX_SLL => {
            if d.len() < 16 {
                return None;
            }
            let (vlan, ethertype, l3) = decode_payload(be16(d, 14), &d[16..]);
            Some(Meta {
                src_mac: if be16(d, 4) == 6 {
                    mac_at(d, 6)
                } else {
                    [0; 6]
                },
                dst_mac: [0; 6],
                vlan,
                ethertype,
                l3,
                dir: Some(Direction::from_pkttype(be16(d, 0) as u8)),
                ifindex: None,
            })
        }
        LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 => Some(raw(d)),
        _ => None,
    }
}

/// An SLL2 header (20 bytes) as libpcap builds it for `-i any` from the socket address.
pub(super) fn sll2_header(
    out: &mut Vec<u8>,
    protocol: u16,
    ifindex: u32,
    hatype: u16,
    pkttype: u8,
    addr: &[u8],
) {
    out.extend_from_slice(&protocol.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&ifindex.to_be_bytes());
    out.extend_from_slice(&hatype.to_be_bytes());
    out.push(pkttype);
    let n = addr.len().min(8);
    out.push(n as u8);
    let mut a = [0u8; 8];
    a[..n].copy_from_slice(&addr[..n]);
    out.extend_from_slice(&a);
}

pub(super) fn decode_arp(b: &[u8]) -> Option<L3> {
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

pub(super) fn decode_ipv4(b: &[u8]) -> Option<L3> {
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

pub(super) fn decode_ipv6(b: &[u8]) -> Option<L3> {
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
pub(super) fn decode_l4(proto: u8, b: &[u8], declared: usize, v6: bool) -> L4 {
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
    /// Decode an Ethernet `frame` into a packet; `None` when it is shorter than an Ethernet
    /// header.
    pub fn from_frame(
        ts: SystemTime,
        ifindex: u32,
        iface: impl Into<String>,
        dir: Direction,
        frame: Vec<u8>,
    ) -> Option<Packet> {
        let mut p = Packet::from_record(ts, LINKTYPE_ETHERNET, frame, ifindex, iface)?;
        p.dir = Some(dir);
        Some(p)
    }

    /// Decode a record of `linktype`; a cooked record's own interface index and direction win
    /// over `ifindex`.
    pub fn from_record(
        ts: SystemTime,
        linktype: u32,
        frame: Vec<u8>,
        ifindex: u32,
        iface: impl Into<String>,
    ) -> Option<Packet> {
        let m = decode_record(linktype, &frame)?;
        Some(Packet {
            ts,
            ifindex: m.ifindex.unwrap_or(ifindex),
            iface: iface.into(),
            dir: m.dir,
            src_mac: m.src_mac,
            dst_mac: m.dst_mac,
            vlan: m.vlan,
            linktype,
            frame,
            l3: m.l3,
        })
    }

    /// The tcpdump `-e -n` line of this packet alone (absolute TCP sequence numbers).
    pub fn tcpdump_line(&self) -> String {
        let mut out = Vec::with_capacity(160);
        let (secs, micros) = split_ts(self.ts);
        let iface = (self.iface != "pcap").then_some(self.iface.as_str());
        tcpdump::Printer::absolute().line(
            &mut out,
            &tcpdump::Record {
                secs,
                micros,
                linktype: self.linktype,
                data: &self.frame,
                orig_len: self.frame.len() as u32,
            },
            iface,
        );
        String::from_utf8_lossy(&out).into_owned()
    }

    /// One JSON object (the `--json` line format; field names are stable).
    pub fn to_json(&self) -> Value {
        let mut o = json!({
            "ts": rfc3339(self.ts),
            "iface": self.iface,
            "dir": self.dir.map(Direction::name),
            "src_mac": self.mac_json(&self.src_mac),
            "dst_mac": self.mac_json(&self.dst_mac),
            "vlan": self.vlan,
            "len": self.frame.len(),
            "linktype": self.linktype,
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

impl Packet {
    /// A MAC for JSON: `null` when this record cannot know it (all zero on a non-Ethernet
    /// record).
    fn mac_json(&self, m: &Mac) -> Value {
        if self.linktype != LINKTYPE_ETHERNET && *m == [0; 6] {
            Value::Null
        } else {
            Value::String(fmt_mac(m))
        }
    }
}

pub(super) fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, from) {
        a.extend(b);
    }
}
