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

pub(super) fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, from) {
        a.extend(b);
    }
}
