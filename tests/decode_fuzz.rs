//! Malformed and truncated frames never crash the packet decoder (issue 4). A deterministic
//! mutation run over valid seed frames, cheap enough for every test run; `fuzz/` has the
//! coverage-guided libFuzzer target for longer campaigns (`cargo +nightly fuzz run decode`).

use lbctl::sys::capture::tcpdump::{Printer, Record};
use lbctl::sys::capture::{
    decode, decode_record, Direction, Expr, Packet, LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2, LINKTYPE_RAW,
};

/// Every link type's decoder and the tcpdump printer (stateful: relative TCP numbers) on `f`,
/// read as a record of each link type (an Ethernet frame is also a plausible raw-IP or cooked
/// record once its first bytes are read differently).
fn all_link_types(printer: &mut Printer, f: &[u8]) {
    let mut out = Vec::new();
    for lt in [
        LINKTYPE_ETHERNET,
        LINKTYPE_LINUX_SLL,
        LINKTYPE_LINUX_SLL2,
        LINKTYPE_RAW,
    ] {
        let _ = decode_record(lt, f);
        for orig in [f.len(), f.len() + 7] {
            out.clear();
            printer.line(
                &mut out,
                &Record {
                    secs: 1_700_000_000,
                    micros: 1,
                    linktype: lt,
                    data: f,
                    orig_len: orig as u32,
                },
                Some("eth0"),
            );
            assert!(!out.is_empty());
        }
        // Raw IP starting where the Ethernet header ends.
        if f.len() > 14 {
            let _ = decode_record(LINKTYPE_RAW, &f[14..]);
        }
    }
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Hex to bytes; an odd trailing nibble is padded (seeds need not be well-formed).
fn hex(s: &str) -> Vec<u8> {
    let s = if s.len() % 2 == 1 {
        format!("{s}0")
    } else {
        s.to_string()
    };
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn seeds() -> Vec<Vec<u8>> {
    let eth = |ty: &str, payload: &str| hex(&format!("020000000011020000000010{ty}{payload}"));
    vec![
        // ARP request who-has 198.18.0.100 tell 198.18.0.10
        eth("0806", "0001080006040001020000000010c612000a000000000000c6120064"),
        // IPv4 TCP SYN 198.18.0.10:40000 -> 198.18.0.100:80
        eth("0800", "45000028000040004006e95ac612000ac61200649c400050000000010000000050020000abcd0000"),
        // IPv4 UDP and ICMP echo
        eth("0800", "4500001c000040004011e95ac612000ac61200649c400035000800000"),
        eth("0800", "45000020000040004001e95ac612000ac61200640800f7ff00010001aabbccdd"),
        // IPv6 TCP with a hop-by-hop header
        eth("86dd", "6000000000140006 20010db8000000000000000000000010 20010db8000000000000000000000100 9c4000500000000100000000500200000000000".replace(' ', "").as_str()),
        // 802.1Q tagged IPv4
        eth("8100", "00640800450000140000400040000000c612000ac6120064"),
    ]
}

#[test]
fn truncations_and_mutations_never_panic() {
    let mut rng = Rng(0x6c62_6374_6c21);
    let mut decoded = 0;
    let mut printer = Printer::new();
    for seed in seeds() {
        for len in 0..=seed.len() {
            let _ = decode(&seed[..len]);
            all_link_types(&mut printer, &seed[..len]);
        }
        for _ in 0..20_000 {
            let mut f = seed.clone();
            for _ in 0..1 + rng.next() % 8 {
                let i = (rng.next() as usize) % f.len();
                f[i] = rng.next() as u8;
            }
            let cut = (rng.next() as usize) % (f.len() + 1);
            f.truncate(cut.max(f.len() / 2));
            all_link_types(&mut printer, &f);
            if let Some(_d) = decode(&f) {
                decoded += 1;
                // Rendering must not panic either.
                if let Some(p) = Packet::from_frame(
                    std::time::SystemTime::UNIX_EPOCH,
                    1,
                    "eth0",
                    Direction::In,
                    f.clone(),
                ) {
                    let _ = p.to_string();
                    let _ = p.to_json();
                }
            }
        }
    }
    assert!(decoded > 0);
}

#[test]
fn random_garbage_never_panics() {
    let mut rng = Rng(42);
    for _ in 0..50_000 {
        let len = (rng.next() % 200) as usize;
        let f: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = decode(&f);
    }
}

/// Random word salad through the filter parser: an error or an AST, never a panic.
#[test]
fn filter_parser_never_panics() {
    const WORDS: [&str; 24] = [
        "host",
        "net",
        "port",
        "portrange",
        "src",
        "dst",
        "and",
        "or",
        "not",
        "!",
        "(",
        ")",
        "tcp",
        "udp",
        "icmp",
        "arp",
        "ip6",
        "vlan",
        "198.18.0.1",
        "2001:db8::/64",
        "80",
        "1-1024",
        "&&",
        "||",
    ];
    let mut rng = Rng(7);
    let mut parsed = 0;
    for _ in 0..20_000 {
        let n = 1 + (rng.next() % 7) as usize;
        let words: Vec<String> = (0..n)
            .map(|_| WORDS[(rng.next() as usize) % WORDS.len()].to_string())
            .collect();
        if Expr::parse(&words).is_ok() {
            parsed += 1;
        }
    }
    assert!(parsed > 100, "{parsed}");
}
