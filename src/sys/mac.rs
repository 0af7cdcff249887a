//! MAC addresses: one type, one formatter, one parser, for capture, the packet sockets, the nft
//! data path and the daemon.

/// A MAC address (six bytes, as on the wire).
pub type Mac = [u8; 6];

/// `02:00:00:00:00:10`.
pub fn fmt_mac(m: &Mac) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// `02:00:00:00:00:10` (hex digits, either case) → the six bytes.
pub fn parse_mac(s: &str) -> Option<Mac> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut m = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        m[i] = u8::from_str_radix(p, 16).ok()?;
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let m = [2, 0, 0, 0xab, 0, 0x10];
        assert_eq!(fmt_mac(&m), "02:00:00:ab:00:10");
        assert_eq!(parse_mac(&fmt_mac(&m)), Some(m));
        assert_eq!(parse_mac("02:00:00:AB:00:10"), Some(m));
        assert_eq!(parse_mac("02:00:00:ab:00"), None);
        assert_eq!(parse_mac("02:00:00:ab:00:zz"), None);
    }
}
