//! Packet evidence (`doctor --capture SECS`): the manual tcpdump reading of a DSR set-up, turned
//! into verdicts. Pure: works on captured [`Packet`]s.
//!
//! Backend: requests arrive with dst IP = VIP and dst MAC = this host's; replies leave with
//! src IP = VIP (not NATed to the real IP). Balancer: requests arrive with our MAC and leave
//! with the same IPs, our MAC as source and a backend's MAC as destination.
//! TX checksum errors are offload artefacts and are never reported.

use std::net::IpAddr;

use super::facts::Facts;
use super::Finding;
use crate::sys::capture::{fmt_mac, Direction, Packet, L3, L4};

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
        let reqs: Vec<&Packet> = packets
            .iter()
            .filter(|p| p.dir.is_received())
            .filter(|p| ip_of(p).is_some_and(|(_, d, _)| d == *vip))
            .collect();
        let replies: Vec<&Packet> = packets
            .iter()
            .filter(|p| p.dir == Direction::Out)
            .filter(|p| ip_of(p).is_some_and(|(s, _, _)| s == *vip))
            .collect();
        let title = format!("{vip}: requests arrive with dst IP = VIP and dst MAC = this host");
        if reqs.is_empty() {
            out.push(Finding::skip(
                "capture.requests",
                title,
                format!("no request for {vip} in {secs} s: send some traffic while capturing"),
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
        if replies.is_empty() {
            let natted = packets.iter().filter(|p| p.dir == Direction::Out).any(|p| {
                ip_of(p).is_some_and(|(s, d, _)| {
                    s != *vip
                        && reqs
                            .iter()
                            .any(|r| ip_of(r).is_some_and(|(c, _, _)| c == d))
                })
            });
            out.push(
                Finding::fail("capture.replies", title)
                    .evidence(format!("{} request(s) in, no frame out with source {vip}", reqs.len()))
                    .evidence(if natted {
                        "replies leave with another source address: NAT/masquerade on the way out"
                    } else {
                        "no replies at all: no listener, a firewall, or rp_filter dropping the requests"
                    })
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
        let ins: Vec<&Packet> = packets
            .iter()
            .filter(|p| p.dir.is_received() && ip_of(p).is_some_and(|(_, d, _)| d == *vip))
            .collect();
        let outs: Vec<&Packet> = packets
            .iter()
            .filter(|p| p.dir == Direction::Out && ip_of(p).is_some_and(|(_, d, _)| d == *vip))
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
            .filter(|p| ip_of(p).is_some_and(|(s, _, _)| s == *vip) && p.dir == Direction::In)
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
