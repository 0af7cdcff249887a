//! Display: the one-line summaries of L3 (for JSON and findings), TCP flags, timestamps.

use super::*;

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

pub(super) fn icmp_name(typ: u8, code: u8) -> String {
    match typ {
        0 => "echo reply".into(),
        3 => format!("destination unreachable (code {code})"),
        5 => format!("redirect (code {code})"),
        8 => "echo request".into(),
        11 => format!("time exceeded (code {code})"),
        _ => format!("type {typ}, code {code}"),
    }
}

pub(super) fn icmp6_name(typ: u8, code: u8) -> String {
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
    /// The `tcpdump -e -n` line (local time; absolute TCP sequence numbers, as `-S`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tcpdump_line())
    }
}

pub(super) fn split_ts(ts: SystemTime) -> (i64, u32) {
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
