//! Packet evidence (`doctor --capture SECS`): the manual tcpdump reading of a DSR set-up, turned
//! into verdicts. Pure: works on captured [`Packet`]s.
//!
//! Backend: requests arrive with dst IP = VIP and dst MAC = this host's; replies leave with
//! src IP = VIP (not NATed to the real IP). Balancer: requests arrive with our MAC and leave
//! with the same IPs, our MAC as source and a backend's MAC as destination. Traffic of the
//! balancer's own making — `lbctl lb run`'s DSR health probes, sent from one of its addresses to
//! VIP:port through a backend's MAC, and their answers — is neither a forwarded request nor a
//! client's reply, so it is left out. On a backend, traffic from or to the balancer's own address
//! (`--balancer`: its health and DSR probes and their answers) and anything on `lo` (this host's
//! own connections) is left out the same way: with no client traffic there is no request.
//!
//! When SYNs to VIP:port arrive and no SYN-ACK leaves, the verdict names the cause from what
//! doctor knows without the capture: the firewall's verdict on that very SYN (the rule that drops
//! it), whether anything listens, the firewall's verdict on the SYN-ACK; only when all of them
//! look right does it point further (rp_filter, the return route).
//! TX checksum errors are offload artefacts and are never reported.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::facts::Facts;
use super::Finding;
use crate::firewall::{self, Verdict};
use crate::sys::capture::{Direction, Packet, L3, L4};
use crate::sys::mac::fmt_mac;

/// Traffic that is not a client's: from or to the balancer's own address (its probes and their
/// answers), or on `lo`.
fn not_client_traffic(f: &Facts, p: &Packet) -> bool {
    p.iface == "lo"
        || f.balancer
            .is_some_and(|b| ip_of(p).is_some_and(|(s, d, _)| s == b || d == b))
}

fn tcp_port_flags(p: &Packet) -> Option<(IpAddr, u16, u16, u8)> {
    match &p.l3 {
        L3::Ip {
            src,
            l4:
                L4::Tcp {
                    sport,
                    dport,
                    flags,
                    ..
                },
            ..
        } => Some((*src, *sport, *dport, *flags)),
        _ => None,
    }
}

/// Why SYNs to `vip`:`port` from `client` get no SYN-ACK: `(cause, fix)`.
fn no_synack_cause(
    f: &Facts,
    vip: IpAddr,
    port: u16,
    client: IpAddr,
    rsts: usize,
) -> (String, Option<String>) {
    let svc = firewall::sock(vip, port);
    let rule = |by: &firewall::Decider| match &by.rule {
        Some(r) => format!(
            "nft {} rule `{}` (table {} {}) drops them",
            r.chain, r.text, r.family, r.table
        ),
        None => format!(
            "the drop policy of nft chain {} (table {} {}) drops them",
            by.chain, by.family, by.table
        ),
    };
    let fw = super::firewall::verdict(f, vip, port, client);
    if let Some((rs, q, c)) = &fw {
        if let Verdict::Drop { by, .. } = &c.request.verdict {
            let fx = firewall::fix(rs, q, c.request.direction, by, f.netns.as_deref());
            return (rule(by), Some(fx.insert));
        }
    }
    if super::backend::listening(f, vip, port).is_none() {
        let rst = if rsts > 0 {
            format!(" (the kernel answers {rsts} RST)")
        } else {
            String::new()
        };
        return (
            format!("nothing listens on {svc} or the wildcard address{rst}"),
            Some(format!(
                "start the service bound to {svc} or to 0.0.0.0/[::]"
            )),
        );
    }
    if let Some((rs, q, c)) = &fw {
        if let Verdict::Drop { by, .. } = &c.reply.verdict {
            let fx = firewall::fix(rs, q, c.reply.direction, by, f.netns.as_deref());
            return (
                format!("the SYN-ACK is dropped on the way out: {}", rule(by)),
                Some(fx.insert),
            );
        }
        if let Verdict::Unknown { .. } = c.request.verdict {
            return (
                "a service listens; the firewall could not be fully evaluated for them (see the firewall checks)".into(),
                None,
            );
        }
    }
    let fw_note = if fw.is_some() {
        "the firewall accepts them and a service listens"
    } else {
        "a service listens (the firewall could not be read)"
    };
    (
        format!("{fw_note}: rp_filter or the return route drops them"),
        Some(format!(
            "lbctl doctor --vip {svc} --client {client}   (without --capture: rp_filter and return-path checks)"
        )),
    )
}

fn ip_of(p: &Packet) -> Option<(IpAddr, IpAddr, &L4)> {
    match &p.l3 {
        L3::Ip { src, dst, l4, .. } => Some((*src, *dst, l4)),
        _ => None,
    }
}

fn is_syn(l4: &L4) -> Option<bool> {
    match l4 {
        L4::Tcp { flags, .. } => Some(flags & 0x02 != 0),
        _ => None,
    }
}

pub fn backend(f: &Facts) -> Vec<Finding> {
    let Some((packets, secs)) = &f.capture else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (vip, _) in &f.targets {
        let theirs = |p: &&Packet| !not_client_traffic(f, p);
        let reqs: Vec<&Packet> = packets
            .iter()
            .filter(theirs)
            .filter(|p| p.dir.is_some_and(Direction::is_received))
            .filter(|p| ip_of(p).is_some_and(|(_, d, _)| d == *vip))
            .collect();
        let replies: Vec<&Packet> = packets
            .iter()
            .filter(theirs)
            .filter(|p| p.dir == Some(Direction::Out))
            .filter(|p| ip_of(p).is_some_and(|(s, _, _)| s == *vip))
            .collect();
        let left_out = packets
            .iter()
            .filter(|p| not_client_traffic(f, p))
            .filter(|p| ip_of(p).is_some_and(|(s, d, _)| s == *vip || d == *vip))
            .count();
        let title = format!("{vip}: requests arrive with dst IP = VIP and dst MAC = this host");
        let excluded = match (left_out, f.balancer) {
            (0, _) => String::new(),
            (n, Some(b)) => {
                format!(" ({n} frame(s) of the balancer {b}'s own probes, or on lo, left out)")
            }
            (n, None) => format!(" ({n} frame(s) on lo left out)"),
        };
        if reqs.is_empty() {
            out.push(Finding::skip(
                "capture.requests",
                title,
                format!(
                    "no client request for {vip} in {secs} s{excluded}: send some traffic while capturing"
                ),
            ));
        } else {
            let foreign: Vec<&&Packet> = reqs
                .iter()
                .filter(|p| f.mac_of(&p.iface).is_some_and(|m| m != p.dst_mac))
                .collect();
            let syns = reqs
                .iter()
                .filter(|p| ip_of(p).and_then(|(_, _, l4)| is_syn(l4)) == Some(true))
                .count();
            let mut x = if foreign.is_empty() {
                Finding::pass("capture.requests", title)
            } else {
                Finding::fail("capture.requests", title)
                    .fix("the balancer must rewrite the destination MAC to this backend's (DSR); check its configuration")
            };
            x.evidence
                .push(format!("{} request frame(s), {syns} SYN", reqs.len()));
            x.evidence.push(format!("e.g. {}", reqs[0]));
            for p in foreign.iter().take(3) {
                x.evidence
                    .push(format!("not addressed to this host's MAC: {p}"));
            }
            out.push(x);
        }
        let title = format!("{vip}: replies leave with src IP = VIP, straight to the client");
        if reqs.is_empty() {
            continue;
        }
        // Per port: SYNs in (from whom), SYN-ACKs and RSTs out.
        let mut syns: BTreeMap<u16, (usize, IpAddr)> = BTreeMap::new();
        for p in &reqs {
            if let Some((src, _, dport, flags)) = tcp_port_flags(p) {
                if flags & 0x12 == 0x02 {
                    syns.entry(dport).or_insert((0, src)).0 += 1;
                }
            }
        }
        let sent = |port: u16, want: u8| {
            replies
                .iter()
                .filter(|p| {
                    tcp_port_flags(p).is_some_and(|(_, sp, _, fl)| sp == port && fl & want == want)
                })
                .count()
        };
        let unanswered: Vec<(u16, usize, IpAddr)> = syns
            .iter()
            .filter(|(port, _)| sent(**port, 0x12) == 0)
            .map(|(port, (n, c))| (*port, *n, *c))
            .collect();
        // Replies that leave with another source address than the VIP.
        let natted = replies.is_empty()
            && packets
                .iter()
                .filter(|p| p.dir == Some(Direction::Out))
                .any(|p| {
                    ip_of(p).is_some_and(|(s, d, _)| {
                        s != *vip
                            && reqs
                                .iter()
                                .any(|r| ip_of(r).is_some_and(|(c, _, _)| c == d))
                    })
                });
        if natted {
            out.push(
                Finding::fail("capture.replies", title)
                    .evidence(format!(
                        "{} request(s) in, no frame out with source {vip}",
                        reqs.len()
                    ))
                    .evidence(
                        "replies leave with another source address: NAT/masquerade on the way out",
                    )
                    .fix(format!(
                        "lbctl doctor --vip {vip}:PORT --client CLIENT shows which"
                    )),
            );
        } else if let Some((port, n, client)) = unanswered.first() {
            let (cause, fix) = no_synack_cause(f, *vip, *port, *client, sent(*port, 0x04));
            let mut x = Finding::fail("capture.replies", title).evidence(format!(
                "{n} SYN(s) to {} arrive, no SYN-ACK leaves: {cause}",
                firewall::sock(*vip, *port)
            ));
            for (port, n, _) in unanswered.iter().skip(1) {
                x.evidence.push(format!(
                    "also {n} SYN(s) to {} without a SYN-ACK",
                    firewall::sock(*vip, *port)
                ));
            }
            x.fix = fix;
            out.push(x);
        } else if replies.is_empty() {
            out.push(
                Finding::fail("capture.replies", title)
                    .evidence(format!("{} request(s) in, no frame out with source {vip}", reqs.len()))
                    .evidence("no replies at all: no listener, a firewall, or rp_filter dropping the requests")
                    .fix(format!("lbctl doctor --vip {vip}:PORT --client CLIENT shows which")),
            );
        } else {
            let synacks = replies
                .iter()
                .filter(|p| matches!(ip_of(p), Some((_, _, L4::Tcp { flags, .. })) if flags & 0x12 == 0x12))
                .count();
            out.push(Finding::pass("capture.replies", title).evidence(format!(
                "{} reply frame(s), {synacks} SYN-ACK; e.g. {}",
                replies.len(),
                replies[0]
            )));
        }
    }
    out
}

pub fn lb(f: &Facts) -> Vec<Finding> {
    let Some((packets, secs)) = &f.capture else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (vip, _) in &f.targets {
        let title =
            format!("{vip}: requests arrive with our MAC and leave with a backend's MAC, same IPs");
        // An address of this host other than the VIP: the source of its own probes.
        let own = |ip: IpAddr| ip != *vip && f.addrs.iter().any(|a| a.obj.addr == ip);
        let ins: Vec<&Packet> = packets
            .iter()
            .filter(|p| {
                p.dir.is_some_and(Direction::is_received)
                    && ip_of(p).is_some_and(|(_, d, _)| d == *vip)
            })
            .collect();
        let outs: Vec<&Packet> = packets
            .iter()
            .filter(|p| {
                p.dir == Some(Direction::Out)
                    && ip_of(p).is_some_and(|(s, d, _)| d == *vip && !own(s))
            })
            .collect();
        if ins.is_empty() {
            out.push(Finding::skip(
                "capture.forwarding",
                title,
                format!("no request for {vip} in {secs} s"),
            ));
            continue;
        }
        let ours = |p: &Packet| f.mac_of(&p.iface);
        let bad_in = ins
            .iter()
            .filter(|p| ours(p).is_some_and(|m| m != p.dst_mac))
            .count();
        let bad_out = outs
            .iter()
            .filter(|p| ours(p).is_some_and(|m| m != p.src_mac || m == p.dst_mac))
            .count();
        let backends: std::collections::BTreeSet<String> =
            outs.iter().map(|p| fmt_mac(&p.dst_mac)).collect();
        let mut x = if outs.is_empty() {
            Finding::fail("capture.forwarding", title)
                .fix("no request was forwarded: check the IPVS service or the nft engine")
        } else if bad_in + bad_out > 0 {
            Finding::fail("capture.forwarding", title).fix("the forwarded frame must carry our MAC as source (ether saddr set) and a backend's as destination")
        } else {
            Finding::pass("capture.forwarding", title)
        };
        x.evidence.push(format!(
            "{} in, {} forwarded to {} backend MAC(s): {}",
            ins.len(),
            outs.len(),
            backends.len(),
            backends.into_iter().collect::<Vec<_>>().join(", ")
        ));
        let replies_through = packets
            .iter()
            .filter(|p| {
                p.dir == Some(Direction::In)
                    && ip_of(p).is_some_and(|(s, d, _)| s == *vip && !own(d))
            })
            .count();
        if replies_through > 0 {
            x.evidence.push(format!(
                "{replies_through} reply frame(s) from the VIP reached the balancer: not DSR"
            ));
            x.status = super::Status::Fail;
        }
        out.push(x);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;
    use crate::model::AddrObj;
    use crate::sys::netlink::{AddrInfo, Link};

    const LB: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const BE: [u8; 6] = [2, 0, 0, 0, 0, 0x11];
    const CLIENT: [u8; 6] = [2, 0, 0, 0, 0, 0x10];

    fn pkt(dir: Direction, src_mac: [u8; 6], dst_mac: [u8; 6], src: &str, dst: &str) -> Packet {
        Packet {
            ts: std::time::SystemTime::UNIX_EPOCH,
            ifindex: 2,
            iface: "eth0".into(),
            dir: Some(dir),
            src_mac,
            dst_mac,
            vlan: None,
            linktype: crate::sys::capture::LINKTYPE_ETHERNET,
            frame: Vec::new(),
            l3: L3::Ip {
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
                ttl: 64,
                l4: L4::Tcp {
                    sport: 40000,
                    dport: 80,
                    flags: 0x02,
                    seq: 0,
                    ack: 0,
                    payload_len: 0,
                },
            },
        }
    }

    fn facts(packets: Vec<Packet>) -> Facts {
        let addr = |a: &str, prefix| AddrInfo {
            obj: AddrObj {
                dev: "eth0".parse().unwrap(),
                addr: a.parse().unwrap(),
                prefix,
            },
            marked: false,
        };
        Facts {
            targets: vec![("198.18.0.100".parse().unwrap(), vec![80])],
            links: vec![Link {
                index: 2,
                name: "eth0".into(),
                up: true,
                mac: Some(LB.to_vec()),
                mtu: 1500,
            }],
            addrs: vec![addr("198.18.0.2", 24), addr("198.18.0.100", 32)],
            capture: Some((packets, 1.0)),
            ..Default::default()
        }
    }

    fn forwarding(f: &Facts) -> Finding {
        lb(f)
            .into_iter()
            .find(|x| x.id == "capture.forwarding")
            .unwrap()
    }

    #[test]
    fn lb_own_dsr_probes_are_not_replies_through_the_balancer() {
        let client_flow = vec![
            pkt(Direction::In, CLIENT, LB, "198.18.0.10", "198.18.0.100"),
            pkt(Direction::Out, LB, BE, "198.18.0.10", "198.18.0.100"),
        ];
        // `lb run`'s DSR probe: from our own address to the VIP via the backend's MAC, and the
        // backend's answer (from the VIP, to us).
        let probe = vec![
            pkt(Direction::Out, LB, BE, "198.18.0.2", "198.18.0.100"),
            pkt(Direction::In, BE, LB, "198.18.0.100", "198.18.0.2"),
        ];
        let f = facts([client_flow.clone(), probe.clone()].concat());
        let x = forwarding(&f);
        assert_eq!(x.status, Status::Pass, "{x:?}");
        assert!(x.evidence[0].starts_with("1 in, 1 forwarded"), "{x:?}");

        // A reply to the client through the balancer is still caught.
        let reply = pkt(Direction::In, BE, LB, "198.18.0.100", "198.18.0.10");
        let f = facts([client_flow, probe, vec![reply]].concat());
        let x = forwarding(&f);
        assert_eq!(x.status, Status::Fail, "{x:?}");
        assert!(x.evidence.iter().any(|e| e.contains("not DSR")), "{x:?}");
    }
}
