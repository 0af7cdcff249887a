//! /proc/net/{tcp,tcp6,udp,udp6}: listening sockets, for doctor's "does anything listen on
//! VIP:PORT" check. /proc/net follows the network namespace of the reading thread.

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

/// Every TCP listener and bound UDP socket in this namespace.
pub fn listeners() -> Vec<Listener> {
    let mut out = Vec::new();
    for (file, proto, state) in [
        ("/proc/net/tcp", "tcp", "0A"),
        ("/proc/net/tcp6", "tcp", "0A"),
        ("/proc/net/udp", "udp", "07"),
        ("/proc/net/udp6", "udp", "07"),
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
