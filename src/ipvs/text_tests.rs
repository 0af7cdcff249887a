//! ipvsadm text formats against output captured from ipvsadm 1.31 on the
//! Debian 6.1 kernel (testdata/, see vm/README.md for how it was produced).
use super::*;
use std::net::SocketAddr;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}
fn v4mask(s: &str) -> Netmask {
    Netmask::V4(s.parse().unwrap())
}
fn svc(service: Service, dests: Vec<Destination>) -> ServiceEntry {
    ServiceEntry {
        service,
        stats: Stats::default(),
        dests: dests
            .into_iter()
            .map(|dest| DestEntry {
                dest,
                active_conns: 0,
                inact_conns: 0,
                persist_conns: 0,
                stats: Stats::default(),
            })
            .collect(),
    }
}
fn tun(addr: &str, kind: TunnelType, port: u16, flags: u16) -> Destination {
    let mut d = Destination::tun(sa(addr));
    d.tunnel = Tunnel { kind, port, flags };
    d
}

/// The state probe 1 created with ipvsadm (in a scrambled order: the
/// formatter must sort like ipvsadm).
fn probe1() -> Vec<ServiceEntry> {
    let vip = ServiceKey::tcp(sa("198.18.0.100:80"));
    vec![
        svc(
            Service::new(ServiceKey::sctp(sa("198.18.0.102:5000")), "wrr"),
            vec![],
        ),
        svc(
            Service::new(ServiceKey::udp(sa("198.18.0.101:53")), "rr"),
            vec![
                tun("198.18.0.14:53", TunnelType::Gue, 6080, Tunnel::CSUM),
                Destination::nat(sa("198.18.0.11:5353"))
                    .weight(65535)
                    .thresholds(100, 10),
                tun("198.18.0.12:53", TunnelType::Ipip, 0, 0),
            ],
        ),
        svc(
            Service::new(vip, "mh")
                .flags(ServiceFlags::MH_FALLBACK | ServiceFlags::MH_PORT)
                .persistent(300)
                .netmask(v4mask("255.255.255.0")),
            vec![
                Destination::dr(sa("198.18.0.13:80")),
                Destination::dr(sa("198.18.0.11:80")),
                Destination::dr(sa("198.18.0.12:80")).weight(0),
                Destination::dr(sa("127.0.0.5:80")),
                Destination::dr(sa("198.18.0.9:80")),
            ],
        ),
        svc(
            Service::new(ServiceKey::fwmark(44, Family::Inet6), "lc").persistent(360),
            vec![],
        ),
        svc(
            Service::new(ServiceKey::tcp(sa("[2001:db8::100]:443")), "sh")
                .flags(ServiceFlags::SH_PORT),
            vec![
                Destination::dr(sa("[2001:db8::abcd]:443")).weight(3),
                Destination::dr(sa("[2001:db8::11]:443")).weight(3),
            ],
        ),
        svc(
            Service::new(ServiceKey::fwmark(42, Family::Inet), "wlc"),
            vec![Destination::dr(sa("198.18.0.11:0"))],
        ),
        svc(
            Service::new(ServiceKey::fwmark(43, Family::Inet6), "lc")
                .persistent(360)
                .netmask(Netmask::V6(64)),
            vec![],
        ),
        svc(
            Service::new(ServiceKey::udp(sa("198.18.0.103:514")), "rr")
                .flags(ServiceFlags::ONE_PACKET),
            vec![],
        ),
        svc(
            Service::new(ServiceKey::udp(sa("198.18.0.104:5060")), "rr")
                .persistent(60)
                .pe("sip"),
            vec![],
        ),
        svc(
            Service::new(ServiceKey::tcp(sa("198.18.0.106:80")), "sh")
                .flags(ServiceFlags::SH_FALLBACK | ServiceFlags::SH_PORT),
            vec![],
        ),
        svc(
            Service::new(ServiceKey::tcp(sa("198.18.0.105:80")), "rr")
                .flags(ServiceFlags::SCHED1 | ServiceFlags::SCHED3),
            vec![],
        ),
        svc(
            Service::new(ServiceKey::tcp(sa("198.18.0.107:80")), "lblcr").persistent(360),
            vec![],
        ),
    ]
}

fn probe2() -> Vec<ServiceEntry> {
    vec![
        svc(
            Service::new(ServiceKey::tcp(sa("198.18.0.130:80")), "rr"),
            vec![
                Destination::dr(sa("10.0.0.1:80")).weight(65536),
                Destination::dr(sa("198.18.0.200:80")),
                Destination::nat(sa("198.18.0.3:81")),
                Destination::dr(sa("198.18.0.3:80")),
                Destination::nat(sa("198.18.0.3:79")),
            ],
        ),
        // -M without -p: stored, but neither listed nor saved
        svc(
            Service::new(ServiceKey::tcp(sa("198.18.0.112:80")), "rr")
                .netmask(v4mask("255.255.0.0")),
            vec![],
        ),
        svc(
            Service::new(ServiceKey::tcp(sa("198.18.0.114:80")), "dh").persistent(86400),
            vec![],
        ),
        svc(
            Service::new(ServiceKey::tcp(sa("198.18.0.132:80")), "mh").flags(ServiceFlags::MH_PORT),
            vec![],
        ),
        svc(
            Service::new(ServiceKey::tcp(sa("198.18.0.134:80")), "rr")
                .persistent(5)
                .netmask(v4mask("255.0.255.0")),
            vec![],
        ),
        svc(
            Service::new(ServiceKey::udp(sa("198.18.0.110:5060")), "mh")
                .persistent(60)
                .pe("sip")
                .flags(ServiceFlags::ONE_PACKET | ServiceFlags::MH_PORT),
            vec![],
        ),
        // --pe without -p: listed without "pe", saved with "--pe"
        svc(
            Service::new(ServiceKey::udp(sa("198.18.0.111:5060")), "rr").pe("sip"),
            vec![],
        ),
        svc(
            Service::new(ServiceKey::udp(sa("198.18.0.120:53")), "rr"),
            vec![
                tun("[2001:db8::20]:53", TunnelType::Ipip, 0, 0),
                tun("198.18.0.14:53", TunnelType::Gue, 6080, 0),
                tun("198.18.0.15:53", TunnelType::Gue, 6081, Tunnel::REMCSUM),
                tun("198.18.0.16:53", TunnelType::Gre, 0, Tunnel::CSUM),
                tun("198.18.0.17:53", TunnelType::Gre, 0, 0),
                tun("198.18.0.18:53", TunnelType::Gue, 6082, 0),
                Destination::nat(sa("198.18.0.21:53"))
                    .weight(0)
                    .thresholds(5, 0),
                tun("[2001:db8::19]:53", TunnelType::Ipip, 0, 0),
            ],
        ),
        svc(
            Service::new(ServiceKey::tcp(sa("[2001:db8::114]:80")), "wrr").persistent(100),
            vec![],
        ),
        svc(
            Service::new(ServiceKey::tcp(sa("[2001:db8::115]:80")), "wrr")
                .persistent(100)
                .netmask(Netmask::V6(48)),
            vec![],
        ),
        svc(
            Service::new(ServiceKey::fwmark(8, Family::Inet6), "rr"),
            vec![],
        ),
        svc(
            Service::new(ServiceKey::fwmark(7, Family::Inet), "rr"),
            vec![Destination::dr(sa("198.18.0.11:8080"))],
        ),
    ]
}

const INFO: Info = Info {
    version: 0x010201,
    conn_tab_size: 4096,
};

fn same(got: &str, want: &str) {
    if got != want {
        let g: Vec<_> = got.lines().collect();
        let w: Vec<_> = want.lines().collect();
        for i in 0..g.len().max(w.len()) {
            if g.get(i) != w.get(i) {
                panic!(
                    "first difference at line {}:\n got: {:?}\nwant: {:?}\n\nfull output:\n{got}",
                    i + 1,
                    g.get(i),
                    w.get(i)
                );
            }
        }
        panic!("outputs differ (trailing newline?)");
    }
}

fn opts(kind: ListKind) -> ListOptions {
    ListOptions { kind, exact: false }
}

#[test]
fn probe1_listings_match_ipvsadm() {
    let e = probe1();
    same(
        &format_list(Some(&INFO), &e, opts(ListKind::Plain)),
        include_str!("testdata/probe1-list.txt"),
    );
    same(
        &format_list(Some(&INFO), &e, opts(ListKind::Stats)),
        include_str!("testdata/probe1-stats.txt"),
    );
    same(
        &format_list(
            Some(&INFO),
            &e,
            ListOptions {
                kind: ListKind::Stats,
                exact: true,
            },
        ),
        include_str!("testdata/probe1-stats-exact.txt"),
    );
    same(
        &format_list(Some(&INFO), &e, opts(ListKind::Rate)),
        include_str!("testdata/probe1-rate.txt"),
    );
    same(
        &format_list(Some(&INFO), &e, opts(ListKind::Thresholds)),
        include_str!("testdata/probe1-thresholds.txt"),
    );
    same(
        &format_list(Some(&INFO), &e, opts(ListKind::PersistentConn)),
        include_str!("testdata/probe1-persistent-conn.txt"),
    );
    same(
        &format_list(Some(&INFO), &e, opts(ListKind::TunInfo)),
        include_str!("testdata/probe1-tun-info.txt"),
    );
    let one: Vec<_> = e
        .iter()
        .filter(|x| x.service.key == ServiceKey::tcp(sa("198.18.0.100:80")))
        .cloned()
        .collect();
    same(
        &format_list(None, &one, opts(ListKind::Plain)),
        include_str!("testdata/probe1-list-one.txt"),
    );
    same(
        &format_timeouts(&Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        }),
        include_str!("testdata/probe1-timeout.txt"),
    );
}

#[test]
fn probe2_listings_match_ipvsadm() {
    let e = probe2();
    same(
        &format_list(Some(&INFO), &e, opts(ListKind::Plain)),
        include_str!("testdata/probe2-list.txt"),
    );
    same(
        &format_list(Some(&INFO), &e, opts(ListKind::Thresholds)),
        include_str!("testdata/probe2-thresholds.txt"),
    );
    same(
        &format_list(Some(&INFO), &e, opts(ListKind::TunInfo)),
        include_str!("testdata/probe2-tun-info.txt"),
    );
}

#[test]
fn save_matches_ipvsadm() {
    same(
        &save(&probe1(), SaveDialect::Ipvsadm),
        include_str!("testdata/probe1-save.txt"),
    );
    same(
        &save(&probe2(), SaveDialect::Ipvsadm),
        include_str!("testdata/probe2-save.txt"),
    );
}

/// Thresholds and netmasks of non-persistent services are not in ipvsadm's
/// save format; everything else must come back.
fn strip_unsaved(e: &[ServiceEntry], keep_thresholds: bool) -> Vec<Rule> {
    rules_of(e)
        .into_iter()
        .map(|r| match r {
            Rule::AddService(mut s) if !s.is_persistent() => {
                s.netmask = Netmask::host(s.key.family());
                Rule::AddService(s)
            }
            Rule::AddDest(k, mut d) if !keep_thresholds => {
                d.u_thresh = 0;
                d.l_thresh = 0;
                Rule::AddDest(k, d)
            }
            r => r,
        })
        .collect()
}

#[test]
fn restore_parses_ipvsadm_save() {
    for (e, text) in [
        (probe1(), include_str!("testdata/probe1-save.txt")),
        (probe2(), include_str!("testdata/probe2-save.txt")),
    ] {
        let rules = parse_rules(text).unwrap();
        assert_eq!(rules, strip_unsaved(&e, false));
        // and printing the parsed rules gives the text back
        let printed: String = rules.iter().map(|r| format!("{r}\n")).collect();
        same(&printed, text);
    }
}

#[test]
fn lossless_save_round_trips_thresholds() {
    for e in [probe1(), probe2()] {
        let text = save(&e, SaveDialect::Lossless);
        assert!(text.contains(" -x "));
        assert_eq!(parse_rules(&text).unwrap(), strip_unsaved(&e, true));
    }
}

#[test]
fn display_is_the_ipvsadm_command_line() {
    let key = ServiceKey::tcp(sa("198.18.0.100:80"));
    let s = Service::new(key, "mh").flags(ServiceFlags::MH_FALLBACK | ServiceFlags::MH_PORT);
    assert_eq!(
        s.to_string(),
        "-A -t 198.18.0.100:80 -s mh -b mh-fallback,mh-port"
    );
    let d = Destination::dr(sa("198.18.0.11:80"));
    assert_eq!(
        d.rule(&key).to_string(),
        "-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1"
    );
    assert_eq!(d.to_string(), "-r 198.18.0.11:80 -g -w 1");
    let n = Destination::nat(sa("198.18.0.12:8080"))
        .weight(0)
        .thresholds(10, 2);
    assert_eq!(
        n.rule(&key).to_string(),
        "-a -t 198.18.0.100:80 -r 198.18.0.12:8080 -m -w 0 -x 10 -y 2"
    );
    let f = Service::new(ServiceKey::fwmark(43, Family::Inet6), "lc")
        .persistent(360)
        .netmask(Netmask::V6(64));
    assert_eq!(f.to_string(), "-A -f 43 -6 -s lc -p 360 -M 64");
    assert_eq!(
        Rule::EditService(s.clone()).to_string(),
        "-E -t 198.18.0.100:80 -s mh -b mh-fallback,mh-port"
    );
    assert_eq!(
        Rule::DeleteService(key).to_string(),
        "-D -t 198.18.0.100:80"
    );
    assert_eq!(
        Rule::EditDest(key, d.clone().weight(0)).to_string(),
        "-e -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 0"
    );
    assert_eq!(
        Rule::DeleteDest(
            ServiceKey::udp(sa("[2001:db8::1]:53")),
            "2001:db8::2".parse().unwrap(),
            53
        )
        .to_string(),
        "-d -u [2001:db8::1]:53 -r [2001:db8::2]:53"
    );
    assert_eq!(Rule::Flush.to_string(), "-C");
    // every Display parses back to the same rule
    for r in [
        Rule::AddService(s),
        Rule::AddService(f),
        Rule::AddDest(key, n),
        Rule::EditDest(key, d),
        Rule::DeleteService(key),
        Rule::Flush,
    ] {
        assert_eq!(parse_rule(&r.to_string()).unwrap(), r);
    }
}

#[test]
fn parser_follows_ipvsadm_defaults_and_forms() {
    // default scheduler wlc, default -p 360, -r without port = service port, default -g -w 1
    let r = parse_rules(
        "ipvsadm -A -t 198.18.0.1:80 -p\n# comment\n\n-a -t 198.18.0.1:80 -r 198.18.0.2\n",
    )
    .unwrap();
    let key = ServiceKey::tcp(sa("198.18.0.1:80"));
    assert_eq!(
        r[0],
        Rule::AddService(Service::new(key, "wlc").persistent(360))
    );
    assert_eq!(
        r[1],
        Rule::AddDest(key, Destination::dr(sa("198.18.0.2:80")))
    );
    // long options, --opt=value, bare IPv6 real server
    let r = parse_rule(
        "--add-server --udp-service=[2001:db8::1]:53 --real-server 2001:db8::2 --ipip --weight 7",
    )
    .unwrap();
    assert_eq!(
        r,
        Rule::AddDest(
            ServiceKey::udp(sa("[2001:db8::1]:53")),
            Destination::tun(sa("[2001:db8::2]:53")).weight(7)
        )
    );
    // fwmark real server without port → 0
    let r = parse_rule("-a -f 42 -r 198.18.0.11 -g").unwrap();
    assert_eq!(
        r,
        Rule::AddDest(
            ServiceKey::fwmark(42, Family::Inet),
            Destination::dr(sa("198.18.0.11:0"))
        )
    );
    // ipvsadm refuses a flag name of another scheduler; so do we
    assert!(parse_rule("-A -t 198.18.0.1:80 -s mh -b sh-port")
        .unwrap_err()
        .contains("does not apply"));
    assert!(
        parse_rule("-A -t 198.18.0.1:80 -s rr -p 0").is_ok(),
        "parses; validation refuses timeout 0"
    );
    assert!(parse_rule("-A -t 198.18.0.1:80 -s rr -p 0")
        .unwrap()
        .validate()
        .is_err());
    assert!(parse_rule("-A -t 198.18.0.1:80 -s rr --bogus").is_err());
    assert!(parse_rule("-t 198.18.0.1:80").is_err());
    let e = parse_rules("-A -t 198.18.0.1:80\n-a -t nonsense -r 1.2.3.4").unwrap_err();
    assert_eq!(e.line, 2);
}

#[test]
fn validation_rules() {
    let key = ServiceKey::tcp(sa("198.18.0.100:80"));
    // DR/TUN keep the port: a different real-server port is refused
    let e = Destination::dr(sa("198.18.0.11:8080"))
        .validate_for(&key)
        .unwrap_err();
    assert!(
        matches!(
            e,
            ValidationError::PortMismatch {
                service_port: 80,
                dest_port: 8080,
                ..
            }
        ),
        "{e}"
    );
    assert!(Destination::tun(sa("198.18.0.11:8080"))
        .validate_for(&key)
        .is_err());
    assert!(Destination::nat(sa("198.18.0.11:8080"))
        .validate_for(&key)
        .is_ok());
    // fwmark services have no port to compare with
    assert!(Destination::dr(sa("198.18.0.11:8080"))
        .validate_for(&ServiceKey::fwmark(1, Family::Inet))
        .is_ok());
    // weights: 0 (quiescent) ..= i32::MAX
    assert!(Destination::dr(sa("198.18.0.11:80"))
        .weight(0)
        .validate_for(&key)
        .is_ok());
    assert!(Destination::dr(sa("198.18.0.11:80"))
        .weight(1 << 31)
        .validate_for(&key)
        .is_err());
    assert!(Destination::dr(sa("198.18.0.11:80"))
        .thresholds(5, 10)
        .validate_for(&key)
        .is_err());
    assert!(Destination::dr(sa("[2001:db8::1]:80"))
        .validate_for(&key)
        .is_err());
    assert!(Destination::tun(sa("[2001:db8::1]:80"))
        .validate_for(&key)
        .is_ok());
    assert!(Destination::dr(sa("0.0.0.0:80"))
        .validate_for(&key)
        .is_err());
    // services
    assert!(Service::new(key, "bogus").validate().is_err());
    for s in Scheduler::KNOWN.iter() {
        assert!(Service::new(key, s.clone()).validate().is_ok());
    }
    assert!(Service::new(key, "rr")
        .flags(ServiceFlags::ONE_PACKET)
        .validate()
        .is_err());
    assert!(Service::new(ServiceKey::udp(sa("1.2.3.4:53")), "rr")
        .flags(ServiceFlags::ONE_PACKET)
        .validate()
        .is_ok());
    assert!(Service::new(key, "rr").persistent(0).validate().is_err());
    assert!(Service::new(key, "rr")
        .persistent(86400 * 31 + 1)
        .validate()
        .is_err());
    assert!(Service::new(key, "rr")
        .netmask(Netmask::V6(64))
        .validate()
        .is_err());
    assert!(Service::new(ServiceKey::fwmark(1, Family::Inet6), "rr")
        .netmask(Netmask::V6(0))
        .validate()
        .is_err());
}

#[test]
fn largenum_like_ipvsadm() {
    assert_eq!(largenum(0, false), "        0");
    assert_eq!(largenum(99_999_999, false), " 99999999");
    assert_eq!(largenum(100_000_000, false), "  100000K");
    assert_eq!(largenum(1_234_567_890, false), "    1234M");
    assert_eq!(largenum(5_000_000_000_000, false), "    5000G");
    assert_eq!(largenum(7_000_000_000_000_000, false), "    7000T");
    assert_eq!(largenum(1_234_567_890, true), " 1234567890");
}

#[test]
fn sort_reproduces_ipvsadm_wrapping_compare() {
    // ipvsadm compares (int)(ntohl(a) - ntohl(b)): 10.0.0.1 sorts after 198.18.0.200
    let e = probe2();
    let s = sorted(&e);
    let rs = &s
        .iter()
        .find(|x| x.service.key == ServiceKey::tcp(sa("198.18.0.130:80")))
        .unwrap()
        .dests;
    let order: Vec<String> = rs
        .iter()
        .map(|d| addr_port(&d.dest.addr, d.dest.port))
        .collect();
    assert_eq!(
        order,
        [
            "198.18.0.3:79",
            "198.18.0.3:80",
            "198.18.0.3:81",
            "198.18.0.200:80",
            "10.0.0.1:80"
        ]
    );
}
