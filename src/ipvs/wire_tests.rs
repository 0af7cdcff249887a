//! Golden-byte and round-trip tests for the IPVS wire format.
use super::*;
use crate::ipvs::convert;
use crate::ipvs::golden;
use crate::ipvs::model::*;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_generic::GenlMessage;
use std::net::IpAddr;

const FAMILY: u16 = 0x20;

fn encode(msg: IpvsMessage, flags: u16) -> Vec<u8> {
    let mut g = GenlMessage::from_payload(msg);
    g.set_resolved_family_id(FAMILY);
    let mut nl = NetlinkMessage::from(g);
    nl.header.flags = flags;
    nl.header.sequence_number = 1;
    nl.finalize();
    let mut b = vec![0u8; nl.buffer_len()];
    nl.serialize(&mut b);
    b
}

fn decode(bytes: &[u8]) -> IpvsMessage {
    let m = NetlinkMessage::<GenlMessage<IpvsMessage>>::deserialize(bytes).expect("deserialize");
    assert_eq!(m.header.length as usize, bytes.len());
    match m.payload {
        NetlinkPayload::InnerMessage(g) => {
            assert_eq!(g.header.version, IPVS_GENL_VERSION);
            g.payload
        }
        other => panic!("not an inner message: {other:?}"),
    }
}

const DO: u16 = NLM_F_REQUEST | NLM_F_ACK;
const DUMP: u16 = NLM_F_REQUEST | NLM_F_DUMP;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn vip() -> ServiceKey {
    ServiceKey::tcp("198.18.0.100:80".parse().unwrap())
}

fn mh_service() -> Service {
    Service::new(vip(), "mh").flags(ServiceFlags::MH_FALLBACK | ServiceFlags::MH_PORT)
}

fn hex(b: &[u8]) -> String {
    b.chunks(16)
        .map(|c| {
            c.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_bytes(got: &[u8], want: &[u8]) {
    assert!(
        got == want,
        "bytes differ\n got:\n{}\nwant:\n{}",
        hex(got),
        hex(want)
    );
}

#[test]
fn golden_new_service_mh() {
    let msg = convert::new_service(&mh_service());
    assert_bytes(&encode(msg.clone(), DO), &golden::NEW_SERVICE_MH);
    let back = decode(&golden::NEW_SERVICE_MH);
    assert_eq!(back, msg);
    let (svc, stats) = convert::service_from_attrs(back.service().unwrap()).unwrap();
    assert_eq!(svc, mh_service());
    assert_eq!(stats, Stats::default());
}

#[test]
fn golden_new_dest_dr() {
    let d = Destination::dr("198.18.0.11:80".parse().unwrap());
    let msg = convert::new_dest(&vip(), &d);
    assert_bytes(&encode(msg.clone(), DO), &golden::NEW_DEST_DR);
    let back = decode(&golden::NEW_DEST_DR);
    assert_eq!(back, msg);
    let e = convert::dest_from_attrs(back.dest().unwrap(), Family::Inet).unwrap();
    assert_eq!(e.dest, d);
}

#[test]
fn golden_new_service_fwmark6() {
    let s = Service::new(ServiceKey::fwmark(43, Family::Inet6), "lc")
        .persistent(360)
        .netmask(Netmask::V6(64));
    let msg = convert::new_service(&s);
    assert_bytes(&encode(msg.clone(), DO), &golden::NEW_SERVICE_FWMARK6);
    let back = decode(&golden::NEW_SERVICE_FWMARK6);
    assert_eq!(back, msg);
    assert_eq!(
        convert::service_from_attrs(back.service().unwrap())
            .unwrap()
            .0,
        s
    );
}

#[test]
fn golden_del_dest_flush_dump() {
    let msg = convert::del_dest(&vip(), &ip("198.18.0.11"), 80);
    assert_bytes(&encode(msg.clone(), DO), &golden::DEL_DEST);
    assert_eq!(decode(&golden::DEL_DEST), msg);
    assert_bytes(&encode(convert::flush(), DO), &golden::FLUSH);
    assert_eq!(decode(&golden::FLUSH), convert::flush());
    assert_bytes(
        &encode(convert::get_service(None), DUMP),
        &golden::GET_SERVICE_DUMP,
    );
}

#[test]
fn golden_reply_set_info_is_parsed_by_command() {
    let m = decode(&golden::REPLY_SET_INFO);
    assert_eq!(m.cmd, IPVS_CMD_SET_INFO);
    assert_eq!(
        m.attrs,
        vec![
            IpvsAttr::InfoVersion(0x010201),
            IpvsAttr::InfoConnTabSize(4096)
        ]
    );
    let info = convert::info_from(&m).unwrap();
    assert_eq!(info.version_string(), "1.2.1");
    assert_eq!(info.conn_tab_size, 4096);
    // the same attribute numbers under another command are SERVICE/DEST nests
    let mut other = golden::REPLY_SET_INFO;
    other[16] = IPVS_CMD_GET_DEST;
    assert!(NetlinkMessage::<GenlMessage<IpvsMessage>>::deserialize(&other).is_err());
}

#[test]
fn golden_reply_service_v6_with_stats() {
    let m = decode(&golden::REPLY_NEW_SERVICE_V6);
    assert_eq!(m.cmd, IPVS_CMD_NEW_SERVICE);
    let attrs = m.service().unwrap();
    // STATS keeps u32 counters and u64 byte counters apart
    let stats = attrs
        .iter()
        .find_map(|a| {
            if let SvcAttr::Stats(n) = a {
                Some(n)
            } else {
                None
            }
        })
        .unwrap();
    assert!(!stats.wide);
    assert_eq!(stats.attrs[0], StatsAttr::Conns(5));
    assert_eq!(stats.attrs[3], StatsAttr::InBytes(1000));
    let (svc, st) = convert::service_from_attrs(attrs).unwrap();
    let want = Service::new(ServiceKey::udp("[2001:db8::100]:53".parse().unwrap()), "sh")
        .flags(ServiceFlags::SH_PORT)
        .persistent(300)
        .netmask(Netmask::V6(64))
        .pe("sip");
    assert_eq!(svc, want, "HASHED must be masked out");
    assert_eq!(
        (st.conns, st.inpkts, st.inbytes),
        (7, 8, 1200),
        "STATS64 preferred"
    );

    // re-emitting gives the same bytes, except that our nests carry NLA_F_NESTED
    let mut want_bytes = golden::REPLY_NEW_SERVICE_V6.to_vec();
    want_bytes[23] |= 0x80; // SERVICE
    let stats_off = 24 + 88; // after the 88 bytes of scalar service attributes
    want_bytes[stats_off + 3] |= 0x80;
    want_bytes[stats_off + 92 + 3] |= 0x80; // STATS64 follows the 92-byte STATS
    let mut hdr_flags = [0u8; 2];
    hdr_flags.copy_from_slice(&golden::REPLY_NEW_SERVICE_V6[6..8]);
    assert_bytes(&encode(m, u16::from_ne_bytes(hdr_flags)), &want_bytes);
}

#[test]
fn golden_reply_dest_tunnel_v6() {
    let m = decode(&golden::REPLY_NEW_DEST_TUN6);
    assert_eq!(m.cmd, IPVS_CMD_NEW_DEST);
    let e = convert::dest_from_attrs(m.dest().unwrap(), Family::Inet).unwrap();
    let mut want = Destination::tun("[2001:db8::11]:53".parse().unwrap())
        .weight(2)
        .thresholds(100, 10);
    want.tunnel = Tunnel {
        kind: TunnelType::Gue,
        port: 6080,
        flags: Tunnel::CSUM,
    };
    assert_eq!(e.dest, want);
    assert_eq!((e.active_conns, e.inact_conns, e.persist_conns), (3, 4, 0));
}

#[test]
fn byte_orders() {
    let m = IpvsMessage::new(
        IPVS_CMD_NEW_SERVICE,
        vec![IpvsAttr::Service(vec![
            SvcAttr::Port(0x1234),
            SvcAttr::Netmask(convert::netmask_raw(&Netmask::V4(
                "255.255.255.0".parse().unwrap(),
            ))),
            SvcAttr::Fwmark(0x01020304),
        ])],
    );
    let b = encode(m.clone(), DO);
    let attrs = &b[24..];
    assert_eq!(&attrs[4..6], &[0x12, 0x34], "port is big-endian");
    assert_eq!(
        &attrs[12..16],
        &[0xff, 0xff, 0xff, 0x00],
        "IPv4 netmask octets in order"
    );
    assert_eq!(
        &attrs[20..24],
        &0x01020304u32.to_ne_bytes(),
        "fwmark host order"
    );
    assert_eq!(decode(&b), m);
    let d = IpvsMessage::new(
        IPVS_CMD_NEW_DEST,
        vec![IpvsAttr::Dest(vec![
            DestAttr::TunPort(6080),
            DestAttr::TunType(2),
        ])],
    );
    let b = encode(d.clone(), DO);
    assert_eq!(&b[24 + 4..24 + 6], &[0x17, 0xc0]);
    assert_eq!(
        &b[24 + 8..24 + 13],
        &[5, 0, 13, 0, 2],
        "u8 attribute, padded"
    );
    assert_eq!(decode(&b), d);
}

fn sample_services() -> Vec<Service> {
    let mut v = vec![
        mh_service(),
        Service::new(ServiceKey::udp("198.18.0.101:53".parse().unwrap()), "rr")
            .flags(ServiceFlags::ONE_PACKET),
        Service::new(
            ServiceKey::sctp("[2001:db8::1]:5000".parse().unwrap()),
            "wrr",
        )
        .persistent(1)
        .netmask(Netmask::V6(48)),
        Service::new(ServiceKey::fwmark(7, Family::Inet), "sh")
            .flags(ServiceFlags::SCHED1 | ServiceFlags::SCHED3),
        Service::new(vip(), "lblcr")
            .persistent(86400)
            .netmask(Netmask::V4("255.255.0.0".parse().unwrap()))
            .pe("sip"),
    ];
    for s in Scheduler::KNOWN.iter() {
        v.push(Service::new(
            ServiceKey::tcp("198.18.1.1:443".parse().unwrap()),
            s.clone(),
        ));
    }
    v
}

fn sample_dests() -> Vec<Destination> {
    let mut t = Destination::tun("[2001:db8::5]:80".parse().unwrap()).weight(0);
    t.tunnel = Tunnel {
        kind: TunnelType::Gre,
        port: 0,
        flags: Tunnel::REMCSUM,
    };
    vec![
        Destination::dr("198.18.0.11:80".parse().unwrap()),
        Destination::nat("198.18.0.12:8080".parse().unwrap())
            .weight(65535)
            .thresholds(1000, 10),
        Destination::dr("[2001:db8::11]:80".parse().unwrap()).weight(i32::MAX as u32),
        t,
    ]
}

/// serialize → bytes → parse → equal, for every message kind.
#[test]
fn round_trip_every_command() {
    let mut msgs = vec![
        (convert::get_info(), DO),
        (convert::get_config(), DO),
        (
            convert::set_config(&Timeouts {
                tcp: 900,
                tcp_fin: 120,
                udp: 300,
            }),
            DO,
        ),
        (convert::flush(), DO),
        (convert::zero(None), DO),
        (convert::get_service(None), DUMP),
        (
            IpvsMessage::new(
                IPVS_CMD_SET_INFO,
                vec![
                    IpvsAttr::InfoVersion(0x010201),
                    IpvsAttr::InfoConnTabSize(4096),
                ],
            ),
            0,
        ),
        (IpvsMessage::new(IPVS_CMD_GET_DAEMON, vec![]), DUMP),
        (
            IpvsMessage::new(
                IPVS_CMD_DEL_DAEMON,
                vec![IpvsAttr::Daemon(vec![
                    netlink_packet_core::DefaultNla::new(1, vec![1, 0, 0, 0]),
                ])],
            ),
            DO,
        ),
        (
            IpvsMessage::new(
                IPVS_CMD_NEW_DAEMON,
                vec![IpvsAttr::Daemon(vec![
                    netlink_packet_core::DefaultNla::new(1, vec![1, 0, 0, 0]),
                    netlink_packet_core::DefaultNla::new(2, b"eth0\0".to_vec()),
                ])],
            ),
            DO,
        ),
    ];
    for s in sample_services() {
        msgs.push((convert::new_service(&s), DO));
        msgs.push((convert::set_service(&s), DO));
        msgs.push((convert::del_service(&s.key), DO));
        msgs.push((convert::get_service(Some(&s.key)), DO));
        msgs.push((convert::get_dest(&s.key), DUMP));
        msgs.push((convert::zero(Some(&s.key)), DO));
        for d in sample_dests() {
            msgs.push((convert::new_dest(&s.key, &d), DO));
            msgs.push((convert::set_dest(&s.key, &d), DO));
            msgs.push((convert::del_dest(&s.key, &d.addr, d.port), DO));
        }
    }
    let mut kinds = std::collections::BTreeSet::new();
    for (m, flags) in msgs {
        kinds.insert(m.cmd);
        let b = encode(m.clone(), flags);
        assert_eq!(b.len() % 4, 0);
        assert_eq!(decode(&b), m, "round trip of command {}", m.cmd);
    }
    assert_eq!(
        kinds.len(),
        17,
        "every IPVS command 1..=17 covered: {kinds:?}"
    );
    // (the replies' model conversion)
    for s in sample_services() {
        let m = decode(&encode(convert::new_service(&s), DO));
        assert_eq!(
            convert::service_from_attrs(m.service().unwrap()).unwrap().0,
            s
        );
        for d in sample_dests() {
            let m = decode(&encode(convert::set_dest(&s.key, &d), DO));
            assert_eq!(
                convert::dest_from_attrs(m.dest().unwrap(), s.key.family())
                    .unwrap()
                    .dest,
                d
            );
        }
    }
}

#[test]
fn stats_nests_round_trip_with_both_widths() {
    let st = Stats {
        conns: 1,
        inpkts: 2,
        outpkts: 3,
        inbytes: u64::MAX,
        outbytes: 5,
        cps: 6,
        inpps: 7,
        outpps: 8,
        inbps: 9,
        outbps: 10,
    };
    let narrow = convert::stats_nest(IPVS_SVC_ATTR_STATS, false, &st);
    let wide = convert::stats_nest(IPVS_SVC_ATTR_STATS64, true, &st);
    assert_eq!(narrow.value_len(), 8 * 8 + 2 * 12);
    assert_eq!(wide.value_len(), 10 * 12);
    let m = IpvsMessage::new(
        IPVS_CMD_NEW_SERVICE,
        vec![IpvsAttr::Service(vec![
            SvcAttr::Af(AF_INET),
            SvcAttr::Fwmark(1),
            SvcAttr::SchedName("rr".into()),
            SvcAttr::Stats(narrow),
            SvcAttr::Stats64(wide),
        ])],
    );
    let back = decode(&encode(m.clone(), 0));
    assert_eq!(back, m);
    assert_eq!(
        convert::service_from_attrs(back.service().unwrap())
            .unwrap()
            .1,
        st
    );
}

#[test]
fn unknown_attributes_survive() {
    let m = IpvsMessage::new(
        IPVS_CMD_NEW_SERVICE,
        vec![
            IpvsAttr::Service(vec![
                SvcAttr::Af(AF_INET),
                SvcAttr::Other(netlink_packet_core::DefaultNla::new(99, vec![1, 2, 3])),
            ]),
            IpvsAttr::Other(netlink_packet_core::DefaultNla::new(42, vec![9; 8])),
        ],
    );
    assert_eq!(decode(&encode(m.clone(), DO)), m);
}
