//! Text output that matches `tcpdump -e -n` (tcpdump 4.99) line for line, written straight from
//! the record bytes into a reusable buffer (no per-packet allocation).
//!
//! Covered exactly: Ethernet (MACs, 802.1Q/802.1ad tags), Linux cooked v1/v2 (`-i any`), raw IP
//! (TUN, WireGuard); ARP; IPv4 and IPv6 (hop-by-hop and destination-options headers, fragments);
//! TCP (flags, relative sequence numbers as tcpdump tracks them, window, options), UDP, ICMP
//! (echo, unreachable, time exceeded) and ICMPv6 (echo, neighbour discovery, MLDv2 reports,
//! unreachable). tcpdump's application-layer dissectors (DNS on port 53, HTTP on 80, …) are not
//! reproduced: lbctl stops at the transport header, so such lines end where tcpdump's would
//! start describing the payload.

use std::collections::HashMap;
use std::io::Write as _;

use super::decode::{be16, be32};
use super::*;

/// tcpdump's `sll_pkttype_values`.
fn pkttype_name(t: u16) -> &'static str {
    match t {
        0 => "In",
        1 => "B",
        2 => "M",
        3 => "P",
        4 => "Out",
        _ => "?",
    }
}

fn ethertype_name(t: u16) -> &'static str {
    match t {
        0x0800 => "IPv4",
        0x0806 => "ARP",
        0x86dd => "IPv6",
        0x8100 => "802.1Q",
        0x88a8 => "802.1Q-QinQ",
        0x9100 => "802.1Q-9100",
        0x9200 => "802.1Q-9200",
        0x8035 => "Reverse ARP",
        0x88cc => "LLDP",
        0x8847 => "MPLS unicast",
        0x8848 => "MPLS multicast",
        0x888e => "EAPOL",
        0x8863 => "PPPoE D",
        0x8864 => "PPPoE S",
        0x88f7 => "PTP",
        _ => "Unknown",
    }
}

/// Conversation key for relative TCP sequence numbers: addresses and ports in tcpdump's
/// collating order (so both directions share one entry).
#[derive(Hash, PartialEq, Eq, Clone, Copy)]
struct TcpKey([u8; 16], [u8; 16], u32);

/// A tiny FNV-1a hasher: the key is fixed-size and local, no DoS concern.
#[derive(Default)]
struct Fnv(u64);
impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}
type FnvBuild = std::hash::BuildHasherDefault<Fnv>;

/// One record to print.
pub struct Record<'a> {
    /// Seconds and microseconds since the epoch.
    pub secs: i64,
    pub micros: u32,
    /// LINKTYPE_* of `data`.
    pub linktype: u32,
    pub data: &'a [u8],
    /// Length on the wire (≥ `data.len()`).
    pub orig_len: u32,
}

/// Formats records as `tcpdump -e -n` does. Keeps the state tcpdump keeps: the initial sequence
/// numbers of each TCP conversation (for relative numbers) and interface names for `-i any`.
pub struct Printer {
    relative: bool,
    tcp: HashMap<TcpKey, (u32, u32), FnvBuild>,
    clock_secs: i64,
    clock: [u8; 8],
    names: HashMap<u32, String, FnvBuild>,
    /// Interface names given by the caller (live capture), preferred to a lookup.
    pub known_names: bool,
}

impl Default for Printer {
    fn default() -> Self {
        Printer::new()
    }
}

struct TcpCtx {
    thseq: u32,
    thack: u32,
    rev: bool,
}

impl Printer {
    /// tcpdump's defaults: relative TCP sequence numbers.
    pub fn new() -> Printer {
        Printer {
            relative: true,
            tcp: HashMap::default(),
            clock_secs: i64::MIN,
            clock: *b"00:00:00",
            names: HashMap::default(),
            known_names: false,
        }
    }

    /// Absolute sequence numbers (`tcpdump -S`), no state: for one-off lines.
    pub fn absolute() -> Printer {
        Printer {
            relative: false,
            ..Printer::new()
        }
    }

    fn clock(&mut self, secs: i64) -> [u8; 8] {
        if secs != self.clock_secs {
            let t = secs as libc::time_t;
            // SAFETY: localtime_r only writes into the tm we own; zeroed tm is valid.
            let mut tm: libc::tm = unsafe { mem::zeroed() };
            let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
            let (h, m, s) = if ok {
                (tm.tm_hour as i64, tm.tm_min as i64, tm.tm_sec as i64)
            } else {
                let d = secs.rem_euclid(86_400);
                (d / 3600, d / 60 % 60, d % 60)
            };
            let d = |v: i64| [b'0' + (v / 10) as u8, b'0' + (v % 10) as u8];
            let (h, m, s) = (d(h), d(m), d(s));
            self.clock = [h[0], h[1], b':', m[0], m[1], b':', s[0], s[1]];
            self.clock_secs = secs;
        }
        self.clock
    }

    /// Append one line (without the trailing newline). `ifname` names the interface of a
    /// cooked record when the caller knows it (live capture); otherwise the index is resolved
    /// in the current network namespace, as tcpdump does.
    pub fn line(&mut self, out: &mut Vec<u8>, r: &Record<'_>, ifname: Option<&str>) {
        let clock = self.clock(r.secs);
        out.extend_from_slice(&clock);
        let _ = write!(out, ".{:06} ", r.micros);
        let d = r.data;
        let orig = r.orig_len.max(d.len() as u32) as usize;
        match r.linktype {
            LINKTYPE_ETHERNET => self.ether(out, d, orig),
            LINKTYPE_LINUX_SLL2 => {
                if d.len() < 20 {
                    out.extend_from_slice(b"[|sll2]");
                    return;
                }
                let idx = be32(d, 4);
                let name: &str = match ifname {
                    Some(n) => n,
                    None => self
                        .names
                        .entry(idx)
                        .or_insert_with(|| crate::sys::packet::ifname(idx).unwrap_or("?".into())),
                };
                let _ = write!(
                    out,
                    "{name:<5} {:<3} ifindex {idx} ",
                    pkttype_name(u16::from(d[10]))
                );
                if d[11] == 6 {
                    put_mac(out, &d[12..18]);
                    out.push(b' ');
                }
                self.cooked_rest(out, be16(d, 0), &d[20..], orig - 20, orig);
            }
            LINKTYPE_LINUX_SLL => {
                if d.len() < 16 {
                    out.extend_from_slice(b"[|sll]");
                    return;
                }
                let _ = write!(out, "{:>3} ", pkttype_name(be16(d, 0)));
                if be16(d, 4) == 6 {
                    put_mac(out, &d[6..12]);
                    out.push(b' ');
                }
                self.cooked_rest(out, be16(d, 14), &d[16..], orig - 16, orig);
            }
            LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 => {
                out.extend_from_slice(b"ip: ");
                self.ip_n(out, d, orig);
            }
            other => {
                let _ = write!(out, "[link type {other}]");
            }
        }
    }

    fn cooked_rest(&mut self, out: &mut Vec<u8>, proto: u16, p: &[u8], len: usize, orig: usize) {
        if proto <= 1500 {
            match proto {
                4 => out.extend_from_slice(b"802.2"),
                1 => out.extend_from_slice(b"802.3"),
                _ => {
                    let _ = write!(out, "ethertype Unknown (0x{proto:04x})");
                }
            }
            let _ = write!(out, ", length {orig}: ");
            hex(out, p);
            return;
        }
        let _ = write!(
            out,
            "ethertype {} (0x{proto:04x}), length {orig}: ",
            ethertype_name(proto)
        );
        self.ethertype(out, proto, p, len);
    }

    fn ether(&mut self, out: &mut Vec<u8>, d: &[u8], orig: usize) {
        if d.len() < 14 {
            out.extend_from_slice(b"[|ether]");
            return;
        }
        put_mac(out, &d[6..12]);
        out.extend_from_slice(b" > ");
        put_mac(out, &d[0..6]);
        out.extend_from_slice(b", ");
        let mut et = be16(d, 12);
        let mut off = 14;
        let mut printed_len = false;
        let sep = |out: &mut Vec<u8>, printed: &mut bool| {
            if *printed {
                out.extend_from_slice(b", ");
            } else {
                let _ = write!(out, ", length {orig}: ");
                *printed = true;
            }
        };
        while matches!(et, 0x8100 | 0x88a8 | 0x9100 | 0x9200) {
            if d.len() < off + 4 {
                out.extend_from_slice(b"[|vlan]");
                return;
            }
            let _ = write!(out, "ethertype {} (0x{et:04x})", ethertype_name(et));
            sep(out, &mut printed_len);
            let tci = be16(d, off);
            let _ = write!(out, "vlan {}, p {}", tci & 0x0fff, tci >> 13);
            if tci & 0x1000 != 0 {
                out.extend_from_slice(b", DEI");
            }
            out.extend_from_slice(b", ");
            et = be16(d, off + 2);
            off += 4;
        }
        let len = orig.saturating_sub(off);
        if et <= 1500 {
            out.extend_from_slice(b"802.3");
            sep(out, &mut printed_len);
            hex(out, &d[off..]);
            return;
        }
        let _ = write!(out, "ethertype {} (0x{et:04x})", ethertype_name(et));
        sep(out, &mut printed_len);
        self.ethertype(out, et, &d[off..], len);
    }

    /// The network layer of ethertype `et`: `p` is what was captured, `len` its length on the wire.
    fn ethertype(&mut self, out: &mut Vec<u8>, et: u16, p: &[u8], len: usize) {
        match et {
            ETH_P_IP => self.ip4(out, p, len),
            ETH_P_IPV6 => self.ip6(out, p, len),
            ETH_P_ARP => arp(out, p, len),
            _ => hex(out, p),
        }
    }

    fn ip_n(&mut self, out: &mut Vec<u8>, p: &[u8], len: usize) {
        match p.first().map(|b| b >> 4) {
            Some(4) => self.ip4(out, p, len),
            Some(6) => self.ip6(out, p, len),
            Some(v) => {
                let _ = write!(out, "IP{v} ");
            }
            None => out.extend_from_slice(b"[|ip]"),
        }
    }

    fn ip4(&mut self, out: &mut Vec<u8>, p: &[u8], length: usize) {
        if p.len() < 20 {
            out.extend_from_slice(b"[|ip]");
            return;
        }
        if p[0] >> 4 != 4 {
            let _ = write!(out, "IP{} ", p[0] >> 4);
            return;
        }
        let hlen = usize::from(p[0] & 0x0f) * 4;
        if hlen < 20 {
            let _ = write!(out, "bad-hlen {hlen}");
            return;
        }
        let mut len = usize::from(be16(p, 2));
        if len == 0 {
            // TSO: the length is in the link layer.
            len = length;
        } else if len < hlen {
            let _ = write!(out, "bad-len {len}");
            return;
        }
        if length < len {
            let _ = write!(out, "truncated-ip - {} bytes missing! ", len - length);
        }
        let plen = len.saturating_sub(hlen);
        let off = be16(p, 6);
        let fragmented = off & 0x3fff != 0;
        let proto = p[9];
        let src = IpAddr::V4(v4_at(p, 12));
        let dst = IpAddr::V4(v4_at(p, 16));
        let l4 = if p.len() > hlen { &p[hlen..] } else { &[][..] };
        let l4 = &l4[..l4.len().min(plen)];
        if off & 0x1fff == 0 {
            self.demux(out, proto, src, dst, l4, plen, fragmented);
        } else {
            let _ = write!(out, "{src} > {dst}: ip-proto-{proto}");
        }
        if fragmented {
            let _ = write!(
                out,
                " (frag {}:{}@{}{})",
                be16(p, 4),
                plen,
                (off & 0x1fff) * 8,
                if off & 0x2000 != 0 { "+" } else { "" }
            );
        }
    }

    fn ip6(&mut self, out: &mut Vec<u8>, p: &[u8], length: usize) {
        if p.len() < 40 {
            out.extend_from_slice(b"[|ip6]");
            return;
        }
        let plen = usize::from(be16(p, 4));
        let mut len = if plen == 0 {
            length.saturating_sub(40)
        } else {
            plen
        };
        if length < plen + 40 {
            let _ = write!(out, "truncated-ip6 - {} bytes missing!", plen + 40 - length);
        }
        let src = IpAddr::V6(v6_at(p, 8));
        let dst = IpAddr::V6(v6_at(p, 24));
        let mut nh = p[6];
        let mut off = 40;
        let mut prefixed = false;
        let end = (40 + len).min(p.len());
        loop {
            if !prefixed && !matches!(nh, IPPROTO_TCP | IPPROTO_UDP | 33 | 132) {
                let _ = write!(out, "{src} > {dst}: ");
                prefixed = true;
            }
            match nh {
                0 | 60 => {
                    if off + 2 > end {
                        out.extend_from_slice(b"[|ip6]");
                        return;
                    }
                    let l = (usize::from(p[off + 1]) + 1) * 8;
                    out.extend_from_slice(if nh == 0 { b"HBH " } else { b"DSTOPT " });
                    nh = p[off];
                    off += l;
                    len = len.saturating_sub(l);
                    if off > end {
                        out.extend_from_slice(b"[|ip6]");
                        return;
                    }
                }
                44 => {
                    if off + 8 > end {
                        out.extend_from_slice(b"[|frag]");
                        return;
                    }
                    let fo = be16(p, off + 2);
                    let _ = write!(
                        out,
                        "frag (0x{:08x}:{}|{}) ",
                        be32(p, off + 4),
                        fo & 0xfff8,
                        len.saturating_sub(8)
                    );
                    if fo & 0xfff8 != 0 {
                        return;
                    }
                    nh = p[off];
                    off += 8;
                    len = len.saturating_sub(8);
                }
                _ => break,
            }
        }
        let l4 = &p[off.min(end)..end];
        self.demux_after_prefix(out, nh, src, dst, l4, len, false);
    }

    #[allow(clippy::too_many_arguments)]
    fn demux(
        &mut self,
        out: &mut Vec<u8>,
        proto: u8,
        src: IpAddr,
        dst: IpAddr,
        l4: &[u8],
        len: usize,
        fragmented: bool,
    ) {
        if !matches!(proto, IPPROTO_TCP | IPPROTO_UDP | 33 | 132) {
            let _ = write!(out, "{src} > {dst}: ");
        }
        self.demux_after_prefix(out, proto, src, dst, l4, len, fragmented);
    }

    #[allow(clippy::too_many_arguments)]
    fn demux_after_prefix(
        &mut self,
        out: &mut Vec<u8>,
        proto: u8,
        src: IpAddr,
        dst: IpAddr,
        l4: &[u8],
        len: usize,
        fragmented: bool,
    ) {
        match proto {
            IPPROTO_TCP => self.tcp(out, src, dst, l4, len),
            IPPROTO_UDP => udp(out, src, dst, l4, len, fragmented),
            IPPROTO_ICMP if src.is_ipv4() => icmp(out, l4, len),
            IPPROTO_ICMPV6 if src.is_ipv6() => icmp6(out, l4, len),
            _ => {
                let _ = write!(out, " ip-proto-{proto} {len}");
            }
        }
    }

    fn tcp(&mut self, out: &mut Vec<u8>, src: IpAddr, dst: IpAddr, t: &[u8], length: usize) {
        if t.len() < 4 {
            let _ = write!(out, "{src} > {dst}: [|tcp]");
            return;
        }
        let (sport, dport) = (be16(t, 0), be16(t, 2));
        let _ = write!(out, "{src}.{sport} > {dst}.{dport}: ");
        if t.len() < 20 {
            out.extend_from_slice(b"[|tcp]");
            return;
        }
        let hlen = usize::from(t[12] >> 4) * 4;
        if hlen < 20 {
            let _ = write!(
                out,
                " tcp {length} [bad hdr length {hlen} - too short, < 20]"
            );
            return;
        }
        let flags = t[13];
        let mut seq = be32(t, 4);
        let mut ack = be32(t, 8);
        let win = be16(t, 14);
        let urp = be16(t, 18);
        out.extend_from_slice(b"Flags [");
        put_flags(out, flags);
        out.push(b']');
        let mut ctx = TcpCtx {
            thseq: 0,
            thack: 0,
            rev: false,
        };
        if self.relative && flags & TCP_ACK != 0 {
            let (a, b) = (ip_bytes(src), ip_bytes(dst));
            let rev = a > b || (a == b && sport > dport);
            let key = if rev {
                TcpKey(b, a, u32::from(dport) << 16 | u32::from(sport))
            } else {
                TcpKey(a, b, u32::from(sport) << 16 | u32::from(dport))
            };
            let e = self.tcp.get(&key).copied();
            let (tseq, tack) = match e {
                Some(v) if flags & TCP_SYN == 0 => {
                    if rev {
                        seq = seq.wrapping_sub(v.1);
                        ack = ack.wrapping_sub(v.0);
                    } else {
                        seq = seq.wrapping_sub(v.0);
                        ack = ack.wrapping_sub(v.1);
                    }
                    v
                }
                _ => {
                    let v = if rev {
                        (ack.wrapping_sub(1), seq)
                    } else {
                        (seq, ack.wrapping_sub(1))
                    };
                    self.tcp.insert(key, v);
                    v
                }
            };
            ctx = TcpCtx {
                thseq: tseq,
                thack: tack,
                rev,
            };
        }
        if hlen > length {
            let _ = write!(out, " [bad hdr length {hlen} - too long, > {length}]");
            return;
        }
        let plen = length - hlen;
        if plen > 0 || flags & (TCP_SYN | TCP_FIN | TCP_RST) != 0 {
            let _ = write!(out, ", seq {seq}");
            if plen > 0 {
                let _ = write!(out, ":{}", seq.wrapping_add(plen as u32));
            }
        }
        if flags & TCP_ACK != 0 {
            let _ = write!(out, ", ack {ack}");
        }
        let _ = write!(out, ", win {win}");
        if flags & TCP_URG != 0 {
            let _ = write!(out, ", urg {urp}");
        }
        if hlen > 20 {
            out.extend_from_slice(b", options [");
            if !tcp_options(out, &t[20..hlen.min(t.len())], hlen - 20, &ctx) {
                out.extend_from_slice(b"[|tcp]>");
                return;
            }
            out.push(b']');
        }
        let _ = write!(out, ", length {plen}");
    }
}

fn ip_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            b
        }
        IpAddr::V6(a) => a.octets(),
    }
}

/// Print TCP options; false when the captured bytes ran out.
fn tcp_options(out: &mut Vec<u8>, o: &[u8], mut hlen: usize, ctx: &TcpCtx) -> bool {
    let mut i = 0;
    let mut first = true;
    while hlen > 0 {
        if !first {
            out.push(b',');
        }
        first = false;
        let Some(&opt) = o.get(i) else { return false };
        i += 1;
        let len = if opt == 0 || opt == 1 {
            1
        } else {
            let Some(&l) = o.get(i) else { return false };
            i += 1;
            let l = usize::from(l);
            if l < 2 || l > hlen {
                let _ = write!(out, "{}", opt_name(opt));
                let _ = write!(out, "[bad opt]");
                return true;
            }
            hlen -= 1;
            l
        };
        hlen -= 1;
        let _ = write!(out, "{}", opt_name(opt));
        let datalen = match opt {
            2 => {
                let Some(v) = o.get(i..i + 2) else {
                    return false;
                };
                let _ = write!(out, " {}", be16(v, 0));
                2
            }
            3 => {
                let Some(&v) = o.get(i) else { return false };
                let _ = write!(out, " {v}");
                1
            }
            5 => {
                let dl = len - 2;
                if dl % 8 != 0 {
                    out.extend_from_slice(b" invalid sack");
                } else {
                    let _ = write!(out, " {} ", dl / 8);
                    let mut j = 0;
                    while j < dl {
                        let Some(v) = o.get(i + j..i + j + 8) else {
                            return false;
                        };
                        let (mut s, mut e) = (be32(v, 0), be32(v, 4));
                        if ctx.rev {
                            s = s.wrapping_sub(ctx.thseq);
                            e = e.wrapping_sub(ctx.thseq);
                        } else {
                            s = s.wrapping_sub(ctx.thack);
                            e = e.wrapping_sub(ctx.thack);
                        }
                        let _ = write!(out, "{{{s}:{e}}}");
                        j += 8;
                    }
                }
                dl
            }
            8 => {
                let Some(v) = o.get(i..i + 8) else {
                    return false;
                };
                let _ = write!(out, " val {} ecr {}", be32(v, 0), be32(v, 4));
                8
            }
            0 | 1 | 4 => 0,
            _ => {
                let dl = len - 2;
                for k in 0..dl {
                    let Some(&b) = o.get(i + k) else { return false };
                    let _ = write!(out, "{}{b:02x}", if k == 0 { ' ' } else { ':' });
                }
                dl
            }
        };
        i += datalen;
        hlen = hlen.saturating_sub(datalen);
        let mut used = datalen + 1;
        if opt > 1 {
            used += 1;
        }
        if used != len {
            let _ = write!(out, "[len {len}]");
        }
        if opt == 0 {
            break;
        }
    }
    true
}

fn opt_name(opt: u8) -> std::borrow::Cow<'static, str> {
    match opt {
        0 => "eol".into(),
        1 => "nop".into(),
        2 => "mss".into(),
        3 => "wscale".into(),
        4 => "sackOK".into(),
        5 => "sack".into(),
        6 => "echo".into(),
        7 => "echoreply".into(),
        8 => "TS".into(),
        11 => "cc".into(),
        12 => "ccnew".into(),
        13 => "ccecho".into(),
        19 => "md5".into(),
        20 => "scps".into(),
        27 => "qs".into(),
        28 => "uto".into(),
        29 => "tcp-ao".into(),
        30 => "mptcp".into(),
        34 => "tfo".into(),
        254 => "exp".into(),
        o => format!("unknown-{o}").into(),
    }
}

fn put_flags(out: &mut Vec<u8>, flags: u8) {
    const LETTERS: [(u8, u8); 8] = [
        (TCP_FIN, b'F'),
        (TCP_SYN, b'S'),
        (TCP_RST, b'R'),
        (TCP_PSH, b'P'),
        (TCP_ACK, b'.'),
        (TCP_URG, b'U'),
        (TCP_ECE, b'E'),
        (TCP_CWR, b'W'),
    ];
    if flags == 0 {
        out.extend_from_slice(b"none");
    }
    for (bit, c) in LETTERS {
        if flags & bit != 0 {
            out.push(c);
        }
    }
}

fn udp(out: &mut Vec<u8>, src: IpAddr, dst: IpAddr, u: &[u8], length: usize, fragmented: bool) {
    if u.len() < 4 {
        let _ = write!(out, "{src} > {dst}: [|udp]");
        return;
    }
    let (sport, dport) = (be16(u, 0), be16(u, 2));
    let _ = write!(out, "{src}.{sport} > {dst}.{dport}: ");
    if length < 8 {
        let _ = write!(out, "truncated-udp {length}");
        return;
    }
    if u.len() < 8 {
        out.extend_from_slice(b"[|udp]");
        return;
    }
    let mut ulen = usize::from(be16(u, 4));
    if ulen == 0 && length > 65535 {
        ulen = length;
    }
    if ulen < 8 {
        let _ = write!(out, "truncated-udplength {ulen}");
        return;
    }
    ulen -= 8;
    let length = length - 8;
    if ulen > length && !fragmented {
        let _ = write!(out, "UDP, bad length {ulen} > {length}");
    } else {
        let _ = write!(out, "UDP, length {ulen}");
    }
}

fn icmp(out: &mut Vec<u8>, c: &[u8], plen: usize) {
    if c.len() < 4 {
        out.extend_from_slice(b"ICMP [|icmp]");
        return;
    }
    let (typ, code) = (c[0], c[1]);
    out.extend_from_slice(b"ICMP ");
    // The IP header quoted by an error message, when captured.
    let quoted_dst = || (c.len() >= 28).then(|| v4_at(c, 24));
    match typ {
        0 | 8 => {
            if c.len() < 8 {
                out.extend_from_slice(b"[|icmp]");
                return;
            }
            let _ = write!(
                out,
                "echo {}, id {}, seq {}",
                if typ == 8 { "request" } else { "reply" },
                be16(c, 4),
                be16(c, 6)
            );
        }
        3 => {
            let Some(d) = quoted_dst() else {
                out.extend_from_slice(b"[|icmp]");
                return;
            };
            match code {
                0 => {
                    let _ = write!(out, "net {d} unreachable");
                }
                1 => {
                    let _ = write!(out, "host {d} unreachable");
                }
                2 => {
                    let _ = write!(out, "{d} protocol {} unreachable", c[17]);
                }
                3 => {
                    let ihl = usize::from(c[8] & 0x0f) * 4;
                    let Some(ports) = c.get(8 + ihl..8 + ihl + 4) else {
                        out.extend_from_slice(b"[|icmp]");
                        return;
                    };
                    let dport = be16(ports, 2);
                    let _ = match c[17] {
                        IPPROTO_TCP => write!(out, "{d} tcp port {dport} unreachable"),
                        IPPROTO_UDP => write!(out, "{d} udp port {dport} unreachable"),
                        p => write!(out, "{d} protocol {p} port {dport} unreachable"),
                    };
                }
                4 => {
                    let mtu = be16(c, 6);
                    if mtu != 0 {
                        let _ = write!(out, "{d} unreachable - need to frag (mtu {mtu})");
                    } else {
                        let _ = write!(out, "{d} unreachable - need to frag");
                    }
                }
                5 => {
                    let _ = write!(out, "{d} unreachable - source route failed");
                }
                6 => {
                    let _ = write!(out, "net {d} unreachable - unknown");
                }
                7 => {
                    let _ = write!(out, "host {d} unreachable - unknown");
                }
                8 => {
                    let _ = write!(out, "{d} unreachable - source host isolated");
                }
                9 => {
                    let _ = write!(out, "net {d} unreachable - admin prohibited");
                }
                10 => {
                    let _ = write!(out, "host {d} unreachable - admin prohibited");
                }
                11 => {
                    let _ = write!(out, "net {d} unreachable - tos prohibited");
                }
                12 => {
                    let _ = write!(out, "host {d} unreachable - tos prohibited");
                }
                13 => {
                    let _ = write!(out, "host {d} unreachable - admin prohibited filter");
                }
                14 => {
                    let _ = write!(out, "host {d} unreachable - host precedence violation");
                }
                15 => {
                    let _ = write!(out, "host {d} unreachable - precedence cutoff");
                }
                _ => {
                    let _ = write!(out, "#{code}");
                }
            }
        }
        11 => {
            let _ = match code {
                0 => write!(out, "time exceeded in-transit"),
                1 => write!(out, "ip reassembly time exceeded"),
                _ => write!(out, "time exceeded-#{code}"),
            };
        }
        4 => out.extend_from_slice(b"source quench"),
        10 => out.extend_from_slice(b"router solicitation"),
        13 => out.extend_from_slice(b"time stamp request"),
        14 => out.extend_from_slice(b"time stamp reply"),
        15 => out.extend_from_slice(b"information request"),
        16 => out.extend_from_slice(b"information reply"),
        17 => out.extend_from_slice(b"address mask request"),
        _ => {
            let _ = write!(out, "type-#{typ}");
        }
    }
    let _ = write!(out, ", length {plen}");
}

fn icmp6_type(t: u8) -> Option<&'static str> {
    Some(match t {
        1 => "destination unreachable",
        2 => "packet too big",
        3 => "time exceeded in-transit",
        4 => "parameter problem",
        128 => "echo request",
        129 => "echo reply",
        130 => "multicast listener query",
        131 => "multicast listener report",
        132 => "multicast listener done",
        133 => "router solicitation",
        134 => "router advertisement",
        135 => "neighbor solicitation",
        136 => "neighbor advertisement",
        137 => "redirect",
        143 => "multicast listener report v2",
        _ => return None,
    })
}

fn icmp6(out: &mut Vec<u8>, c: &[u8], length: usize) {
    if c.len() < 4 {
        out.extend_from_slice(b"ICMP6, [|icmp6]");
        return;
    }
    let (typ, code) = (c[0], c[1]);
    match icmp6_type(typ) {
        Some(n) => {
            let _ = write!(out, "ICMP6, {n}");
        }
        None => {
            let _ = write!(out, "ICMP6, unknown icmp6 type ({typ})");
        }
    }
    let trunc = |out: &mut Vec<u8>| out.extend_from_slice(b"[|icmp6]");
    match typ {
        1 => {
            let _ = match code {
                0 => write!(out, ", unreachable route"),
                1 => write!(out, ", unreachable prohibited"),
                2 => write!(out, ", beyond scope"),
                3 => write!(out, ", unreachable address"),
                4 => write!(out, ", unreachable port"),
                _ => write!(out, ", unknown unreach code ({code})"),
            };
            if c.len() < 48 {
                trunc(out);
                return;
            }
            let d = v6_at(c, 32);
            match code {
                0 | 1 | 3 => {
                    let _ = write!(out, " {d}");
                }
                2 => {
                    let _ = write!(out, " {d}, source address {}", v6_at(c, 16));
                }
                4 => {
                    // The upper-layer header right after the quoted fixed header.
                    let nh = c[8 + 6];
                    let Some(ports) = c.get(48..52) else {
                        trunc(out);
                        return;
                    };
                    let dport = be16(ports, 2);
                    let _ = match nh {
                        IPPROTO_TCP => write!(out, ", {d} tcp port {dport}"),
                        IPPROTO_UDP => write!(out, ", {d} udp port {dport}"),
                        p => write!(out, ", {d} protocol {p} port {dport} unreachable"),
                    };
                }
                _ => {}
            }
        }
        2 => {
            if c.len() < 8 {
                trunc(out);
                return;
            }
            let _ = write!(out, ", mtu {}", be32(c, 4));
        }
        128 | 129 => {
            if c.len() < 8 {
                trunc(out);
                return;
            }
            let _ = write!(out, ", id {}, seq {}", be16(c, 4), be16(c, 6));
        }
        135 | 136 => {
            if c.len() < 24 {
                trunc(out);
                return;
            }
            let what = if typ == 135 { "who has" } else { "tgt is" };
            let _ = write!(out, ", {what} {}", v6_at(c, 8));
        }
        137 => {
            if c.len() < 40 {
                trunc(out);
                return;
            }
            let _ = write!(out, ", {} to {}", v6_at(c, 24), v6_at(c, 8));
        }
        143 => {
            if c.len() < 8 {
                trunc(out);
                return;
            }
            let _ = write!(out, ", {} group record(s)", be16(c, 6));
        }
        _ => {}
    }
    let _ = write!(out, ", length {length}");
}

fn arp(out: &mut Vec<u8>, a: &[u8], length: usize) {
    if a.len() < 8 {
        out.extend_from_slice(b"[|ARP]");
        return;
    }
    let (hrd, pro, hln, pln, op) = (be16(a, 0), be16(a, 2), a[4], a[5], be16(a, 6));
    if pro != ETH_P_IP || pln != 4 || hln != 6 || !matches!(hrd, 1 | 6) {
        let _ = write!(
            out,
            "ARP, {} (len {hln}), {} (len {pln})",
            match hrd {
                1 => "Ethernet".to_string(),
                h => format!("Unknown Hardware ({h})"),
            },
            match pro {
                0x0800 => "IPv4".to_string(),
                p => format!("Unknown Protocol (0x{p:04x})"),
            }
        );
        return;
    }
    if a.len() < 28 {
        out.extend_from_slice(b"[|ARP]");
        return;
    }
    let (sha, spa, tha, tpa) = (&a[8..14], v4_at(a, 14), &a[18..24], v4_at(a, 24));
    match op {
        1 => {
            let _ = write!(out, "Request who-has {tpa}");
            if tha.iter().any(|b| *b != 0) {
                out.extend_from_slice(b" (");
                put_mac(out, tha);
                out.push(b')');
            }
            let _ = write!(out, " tell {spa}");
        }
        2 => {
            let _ = write!(out, "Reply {spa} is-at ");
            put_mac(out, sha);
        }
        3 => {
            out.extend_from_slice(b"Reverse Request who-is ");
            put_mac(out, tha);
            out.extend_from_slice(b" tell ");
            put_mac(out, sha);
        }
        4 => {
            out.extend_from_slice(b"Reverse Reply ");
            put_mac(out, tha);
            let _ = write!(out, " at {tpa}");
        }
        8 => {
            out.extend_from_slice(b"Inverse Request who-is ");
            put_mac(out, tha);
            out.extend_from_slice(b" tell ");
            put_mac(out, sha);
        }
        9 => {
            out.extend_from_slice(b"Inverse Reply ");
            put_mac(out, sha);
            let _ = write!(out, " at {spa}");
        }
        _ => {
            let _ = write!(out, "Unknown ({op})");
        }
    }
    let _ = write!(out, ", length {length}");
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn put_mac(out: &mut Vec<u8>, m: &[u8]) {
    for (i, b) in m.iter().enumerate() {
        if i > 0 {
            out.push(b':');
        }
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 15)]);
    }
}

/// tcpdump's default print for payloads it does not know: `\n\t0x0000:  0001 0203 …`.
fn hex(out: &mut Vec<u8>, p: &[u8]) {
    let mut i = 0;
    let mut oset = 0;
    let mut chunks = p.chunks_exact(2);
    for pair in &mut chunks {
        if i % 8 == 0 {
            let _ = write!(out, "\n\t0x{oset:04x}: ");
            oset += 16;
        }
        i += 1;
        let _ = write!(out, " {:02x}{:02x}", pair[0], pair[1]);
    }
    if let [b] = chunks.remainder() {
        if i % 8 == 0 {
            let _ = write!(out, "\n\t0x{oset:04x}: ");
        }
        let _ = write!(out, " {b:02x}");
    }
}
