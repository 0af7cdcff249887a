//! Decoding, display and pcap round trips on hand-built frames.

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
    p.dir = Some(Direction::Broadcast);
    assert_eq!(
        line(&p),
        "02:00:00:00:00:10 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request \
         who-has 198.18.0.11 tell 198.18.0.10, length 28"
    );

    let reply = eth(C_MAC, S_MAC, ETH_P_ARP, &arp(2, S_MAC, S_IP, C_MAC, C_IP));
    let mut p = pkt(reply);
    p.dir = Some(Direction::Out);
    assert_eq!(
        line(&p),
        "02:00:00:00:00:11 > 02:00:00:00:00:10, ethertype ARP (0x0806), length 42: Reply \
         198.18.0.11 is-at 02:00:00:00:00:11, length 28"
    );
    // A unicast probe names the MAC it expects.
    let probe = eth(S_MAC, C_MAC, ETH_P_ARP, &arp(1, C_MAC, C_IP, S_MAC, S_IP));
    assert!(line(&pkt(probe))
        .ends_with("Request who-has 198.18.0.11 (02:00:00:00:00:11) tell 198.18.0.10, length 28"));
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
        "02:00:00:00:00:10 > 02:00:00:00:00:11, ethertype IPv4 (0x0800), length 66: \
         198.18.0.10.40000 > 198.18.0.100.80: Flags [S], seq 123, win 65535, options \
         [nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop,nop], length 0"
    );
    let data = tcp(80, 40000, 9, 124, TCP_PSH | TCP_ACK, 5);
    let p = pkt(eth(C_MAC, S_MAC, ETH_P_IP, &ipv4(6, vip, C_IP, &data)));
    assert!(line(&p).contains("Flags [P.], seq 9:14, ack 124, win 65535, options"));
    assert!(line(&p).ends_with("], length 5"));
    let rst = tcp(9, 1, 0, 1, TCP_RST | TCP_ACK, 0);
    let p = pkt(eth(C_MAC, S_MAC, ETH_P_IP, &ipv4(6, S_IP, C_IP, &rst)));
    assert!(line(&p).contains("Flags [R.], seq 0, ack 1, win 65535, options"));
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
    assert!(line(&p).ends_with(": 198.18.0.10.5353 > 198.18.0.11.53: UDP, length 12"));

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
    assert!(
        line(&p).ends_with(": 198.18.0.10 > 198.18.0.11: ICMP echo request, id 1, seq 1, length 8")
    );
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
    assert!(
        line(&p).contains(": 2001:db8::10.40000 > 2001:db8::100.443: Flags [S], seq 7, win 65535")
    );
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
    assert!(line(&p).contains("ICMP6, neighbor solicitation"));
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
    assert!(line(&p).contains(
        "ff:ff:ff:ff:ff:ff, ethertype 802.1Q (0x8100), length 46: vlan 100, p 3, ethertype ARP \
         (0x0806), Request"
    ));
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
    assert!(line(&p).contains("ethertype LLDP (0x88cc), length 34:"));
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
        assert_eq!(b.dir, None);
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
    assert_eq!(back[0].dir, Some(Direction::Out));
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

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

#[test]
fn filter_expressions_parse_into_an_ast() {
    use super::filter::{Dir, Proto};
    let host = |d, a: &str| Expr::Host(d, a.parse().unwrap());
    assert_eq!(
        Expr::parse(&words("host 198.18.0.1")).unwrap(),
        host(Dir::Any, "198.18.0.1")
    );
    assert_eq!(
        Expr::parse(&words("src host 198.18.0.1 and not dst port 22")).unwrap(),
        Expr::And(
            Box::new(host(Dir::Src, "198.18.0.1")),
            Box::new(Expr::Not(Box::new(Expr::Port(Dir::Dst, None, 22, 22))))
        )
    );
    // and binds tighter than or; parentheses override.
    assert_eq!(
        Expr::parse(&words("arp or icmp and vlan 5")).unwrap(),
        Expr::Or(
            Box::new(Expr::Proto(Proto::Arp)),
            Box::new(Expr::And(
                Box::new(Expr::Proto(Proto::Icmp)),
                Box::new(Expr::Vlan(Some(5)))
            ))
        )
    );
    assert_eq!(
        Expr::parse(&words("( arp or icmp ) && vlan")).unwrap(),
        Expr::And(
            Box::new(Expr::Or(
                Box::new(Expr::Proto(Proto::Arp)),
                Box::new(Expr::Proto(Proto::Icmp))
            )),
            Box::new(Expr::Vlan(None))
        )
    );
    // Qualifiers carry over to a bare value; a protocol qualifies a port.
    assert_eq!(
        Expr::parse(&words("tcp port 80 or 443")).unwrap(),
        Expr::Or(
            Box::new(Expr::Port(Dir::Any, Some(Proto::Tcp), 80, 80)),
            Box::new(Expr::Port(Dir::Any, Some(Proto::Tcp), 443, 443))
        )
    );
    assert_eq!(
        Expr::parse(&words("src or dst net 198.18.0.0/15")).unwrap(),
        Expr::Net(Dir::Any, "198.18.0.0/15".parse().unwrap())
    );
    assert_eq!(
        Expr::parse(&words("src and dst net 198.18.0.7/24")).unwrap(),
        Expr::Net(Dir::Both, "198.18.0.0/24".parse().unwrap())
    );
    assert_eq!(
        Expr::parse(&words("dst 2001:db8::1")).unwrap(),
        host(Dir::Dst, "2001:db8::1")
    );
    assert_eq!(
        Expr::parse(&words("!ip6")).unwrap(),
        Expr::Not(Box::new(Expr::Proto(Proto::Ip6)))
    );
}

#[test]
fn bad_filter_expressions_name_the_position() {
    let err = |s: &str| match Expr::parse(&words(s)) {
        Err(Error::Usage(m)) => m,
        other => panic!("{s}: {other:?}"),
    };
    assert_eq!(
        err("tcp port eighty"),
        "bad filter expression: 'eighty' is not a port number at character 10 of 'tcp port eighty'"
    );
    assert!(err("host").contains("expected an address at character 5"));
    assert!(err("( tcp").contains("expected ')' at character 6"));
    assert!(err("tcp )").contains("unexpected ')' at character 5"));
    assert!(err("frobnicate").contains("unknown primitive 'frobnicate' at character 1"));
    assert!(err("host 1.2.3.4 and").contains("at character 17"));
    assert!(err("vlan 5000").contains("out of range"));
    assert!(err("port 90-80").contains("not a port range"));
    assert!(err("net 10.0.0.0/99").contains("not a network"));
}

#[test]
fn filter_expressions_match_packets() {
    let syn = pkt(eth(
        S_MAC,
        C_MAC,
        ETH_P_IP,
        &ipv4(6, C_IP, S_IP, &tcp(40000, 80, 1, 0, TCP_SYN, 0)),
    ));
    let arp_req = pkt(eth(
        [0xff; 6],
        C_MAC,
        ETH_P_ARP,
        &arp(1, C_MAC, C_IP, [0; 6], S_IP),
    ));
    let tagged = pkt(insert_vlan_tag(&arp_req.frame, ETH_P_8021Q, 100));
    let yes = |e: &str, p: &Packet| Expr::parse(&words(e)).unwrap().matches_packet(p);
    assert!(yes("tcp and dst port 80 and src host 198.18.0.10", &syn));
    assert!(!yes("udp or src port 80", &syn));
    assert!(yes("portrange 79-81 and net 198.18.0.0/24", &syn));
    assert!(yes("ip and not ip6 and not arp", &syn));
    assert!(yes("arp and host 198.18.0.11", &arp_req));
    assert!(!yes("ip host 198.18.0.11", &arp_req));
    assert!(yes("arp host 198.18.0.11", &arp_req));
    assert!(!yes("vlan", &arp_req));
    assert!(yes("vlan 100 and arp", &tagged));
    assert!(!yes("vlan 101", &tagged));
    assert!(yes("src and dst net 198.18.0.0/24", &syn));
    assert!(!yes("src and dst host 198.18.0.10", &syn));
}

#[test]
fn pcapng_and_cooked_round_trips() {
    let dir = std::env::temp_dir().join(format!("lbctl-pcapng-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Ethernet pcapng with nanosecond timestamps.
    let path = dir.join("rt.pcapng");
    let packets = sample_packets();
    write_pcap(&path, &packets).unwrap();
    assert_eq!(
        &std::fs::read(&path).unwrap()[..4],
        &[0x0a, 0x0d, 0x0d, 0x0a]
    );
    let back = read_pcap(&path).unwrap();
    assert_eq!(back.len(), 2);
    for (a, b) in packets.iter().zip(&back) {
        assert_eq!((&a.frame, a.ts, &a.l3), (&b.frame, b.ts, &b.l3));
        assert_eq!(b.linktype, LINKTYPE_ETHERNET);
        assert_eq!(b.dir, None);
    }

    // An SLL2 record (what `-i any` writes) keeps direction, interface index and source MAC,
    // in pcap and pcapng alike.
    let mut rec = Vec::new();
    decode::sll2_header(&mut rec, ETH_P_IP, 7, 1, libc::PACKET_OUTGOING, &S_MAC);
    rec.extend_from_slice(&ipv4(1, S_IP, C_IP, &[0, 0, 0, 0, 0, 9, 0, 1]));
    let ts = UNIX_EPOCH + Duration::new(1_700_000_000, 5_000);
    let p = Packet::from_record(ts, LINKTYPE_LINUX_SLL2, rec, 0, "eth0").unwrap();
    assert_eq!(p.dir, Some(Direction::Out));
    assert_eq!(p.ifindex, 7);
    assert_eq!(p.src_mac, S_MAC);
    assert_eq!(p.to_json()["dst_mac"], Value::Null);
    assert!(
        line(&p).starts_with(
            "eth0  Out ifindex 7 02:00:00:00:00:11 ethertype IPv4 (0x0800), length 48: "
        ),
        "{}",
        line(&p)
    );
    for name in ["sll2.pcap", "sll2.pcapng"] {
        let path = dir.join(name);
        write_pcap(&path, std::slice::from_ref(&p)).unwrap();
        let back = read_pcap(&path).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].linktype, LINKTYPE_LINUX_SLL2);
        assert_eq!((&back[0].frame, back[0].ts), (&p.frame, p.ts));
        assert_eq!(back[0].dir, Some(Direction::Out));
    }

    // Raw IP (a TUN device).
    let raw = ipv4(1, C_IP, S_IP, &[8, 0, 0, 0, 0, 9, 0, 1]);
    let p = Packet::from_record(ts, LINKTYPE_RAW, raw, 3, "tun0").unwrap();
    assert!(line(&p).starts_with("ip: 198.18.0.10 > 198.18.0.11: ICMP echo request"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tcp_sequence_numbers_are_relative_per_conversation() {
    let mut pr = tcpdump::Printer::new();
    let mut text = |frame: &[u8]| {
        let mut out = Vec::new();
        let r = tcpdump::Record {
            secs: 0,
            micros: 0,
            linktype: LINKTYPE_ETHERNET,
            data: frame,
            orig_len: frame.len() as u32,
        };
        pr.line(&mut out, &r, None);
        String::from_utf8(out).unwrap()
    };
    let c2s = |seq, ack, flags, n| {
        eth(
            S_MAC,
            C_MAC,
            ETH_P_IP,
            &ipv4(6, C_IP, S_IP, &tcp(4000, 80, seq, ack, flags, n)),
        )
    };
    let s2c = |seq, ack, flags, n| {
        eth(
            C_MAC,
            S_MAC,
            ETH_P_IP,
            &ipv4(6, S_IP, C_IP, &tcp(80, 4000, seq, ack, flags, n)),
        )
    };
    assert!(text(&c2s(1000, 0, TCP_SYN, 0)).contains("Flags [S], seq 1000, win"));
    assert!(text(&s2c(5000, 1001, TCP_SYN | TCP_ACK, 0))
        .contains("Flags [S.], seq 5000, ack 1001, win"));
    assert!(text(&c2s(1001, 5001, TCP_ACK, 0)).contains("Flags [.], ack 1, win"));
    assert!(
        text(&c2s(1001, 5001, TCP_PSH | TCP_ACK, 10)).contains("Flags [P.], seq 1:11, ack 1, win")
    );
    assert!(text(&s2c(5001, 1011, TCP_ACK, 0)).contains("Flags [.], ack 11, win"));
}

#[test]
fn short_snap_length_records_are_read() {
    // `tcpdump -s 60`: snaplen 60, a record of 60 captured bytes out of 98 on the wire.
    let frame = eth(
        S_MAC,
        C_MAC,
        ETH_P_IP,
        &ipv4(1, C_IP, S_IP, &[8, 0, 0, 0, 0, 1, 0, 1]),
    );
    let mut f = Vec::new();
    f.extend_from_slice(&PCAP_MAGIC_NS.to_le_bytes());
    f.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&60u32.to_le_bytes());
    f.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&2u32.to_le_bytes());
    f.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    f.extend_from_slice(&98u32.to_le_bytes());
    f.extend_from_slice(&frame);
    let mut r = PcapReader::new(&f[..]).unwrap();
    let rec = r.next_record().unwrap().unwrap();
    assert_eq!((rec.orig_len, rec.data.len()), (98, frame.len()));
    assert_eq!(rec.ts, Duration::new(1, 2));
    assert!(r.next_record().unwrap().is_none());
}

#[test]
fn pcapng_timestamps_follow_the_interface_resolution() {
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::{
        InterfaceDescriptionBlock, InterfaceDescriptionOption,
    };
    use pcap_file::pcapng::PcapNgWriter;
    use pcap_file::DataLink;
    let frame = eth(
        S_MAC,
        C_MAC,
        ETH_P_IP,
        &ipv4(1, C_IP, S_IP, &[8, 0, 0, 0, 0, 1, 0, 1]),
    );
    // Two interfaces: the default resolution (microseconds, no option) and 10^-3 s, named.
    let mut w = PcapNgWriter::new(Vec::new()).unwrap();
    w.write_pcapng_block(InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen: 0,
        options: vec![],
    })
    .unwrap();
    w.write_pcapng_block(InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen: 0,
        options: vec![
            InterfaceDescriptionOption::IfTsResol(3),
            InterfaceDescriptionOption::IfName("eth7".into()),
        ],
    })
    .unwrap();
    for (id, raw) in [(0u32, 1_700_000_000_123_456u64), (1, 1_700_000_000_123)] {
        // pcap-file writes the Duration's nanoseconds as the raw units.
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: id,
            timestamp: Duration::from_nanos(raw),
            original_len: frame.len() as u32,
            data: frame.clone().into(),
            options: vec![],
        })
        .unwrap();
    }
    let bytes = w.into_inner();
    let mut r = PcapReader::new(&bytes[..]).unwrap();
    let a = r.next_packet().unwrap().unwrap();
    assert_eq!(a.ts, UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_000));
    assert_eq!(a.iface, "pcap");
    let b = r.next_packet().unwrap().unwrap();
    assert_eq!(b.ts, UNIX_EPOCH + Duration::new(1_700_000_000, 123_000_000));
    assert_eq!(b.iface, "eth7");
    assert!(r.next_packet().unwrap().is_none());
}
