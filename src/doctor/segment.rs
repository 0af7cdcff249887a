//! Checks that ask the segment itself (ARP, or neighbour solicitations for IPv6), not the local
//! tables: who else answers for a balancer's VIP (ARP flux seen from the balancer), and whether
//! a backend's balancer — and the VIP it should hold — really answer on the shared link.
//! The frames are sent while gathering facts (`facts.rs`); these are pure functions of them.

use std::net::IpAddr;

use super::backend::mac;
use super::facts::{ArpAudit, Facts, AUDIT_WINDOW, PROBE_TIMEOUT};
use super::Finding;

fn arp_word(a: IpAddr) -> &'static str {
    if a.is_ipv4() {
        "ARP"
    } else {
        "neighbour solicitations"
    }
}

/// `--role lb`: nobody but this balancer answers for each VIP.
pub fn lb_audit(f: &Facts) -> Vec<Finding> {
    f.arp_audit.iter().map(|a| audit(f, a)).collect()
}

fn audit(f: &Facts, a: &ArpAudit) -> Finding {
    let vip = a.vip;
    let title = format!(
        "{vip}: only this balancer answers {} on the segment",
        arp_word(vip)
    );
    let iface = match &a.iface {
        Ok(i) => i,
        Err(e) => return Finding::skip("lb.arp_audit", title, e.clone()),
    };
    let answers = match &a.answers {
        Ok(x) => x,
        Err(e) => return Finding::unknown("lb.arp_audit", title, e.clone()),
    };
    let own = a.own_mac;
    let local = f
        .addrs
        .iter()
        .any(|x| x.obj.addr == vip && x.obj.dev == *iface);
    let foreign: Vec<_> = answers.iter().filter(|x| Some(x.mac) != own).collect();
    if foreign.is_empty() {
        let ms = AUDIT_WINDOW.as_millis();
        return if local {
            Finding::pass("lb.arp_audit", title).evidence(format!(
                "lbctl arp who-has {vip} --iface {iface}: no other host answered within {ms} ms; \
                 this balancer ({}) holds it",
                own.map(|m| mac(&m)).unwrap_or_default()
            ))
        } else {
            Finding::warn("lb.arp_audit", title).evidence(format!(
                "lbctl arp who-has {vip} --iface {iface}: no host answered within {ms} ms, and \
                 the VIP is not on {iface}: clients cannot reach it"
            ))
        };
    }
    let mut x = Finding::fail("lb.arp_audit", title);
    for ans in &foreign {
        let who = match a.owners.get(&ans.mac) {
            Some(n) => format!(" (lab node {}, namespace {})", n.node, n.ns),
            None => String::new(),
        };
        x.evidence.push(format!(
            "{} answers {} for {vip} on {iface}{who}: clients sending to it bypass the balancer",
            mac(&ans.mac),
            arp_word(vip)
        ));
    }
    x.evidence.push(format!(
        "this balancer is {}",
        own.map(|m| mac(&m)).unwrap_or_else(|| "?".into())
    ));
    let fix = match (vip, foreign.first().and_then(|m| a.owners.get(&m.mac))) {
        (IpAddr::V4(_), Some(n)) if foreign.len() == 1 && n.ipv4.is_some() => format!(
            "lbctl --netns {} arp suppress {vip} --real-ip {}",
            n.ns,
            n.ipv4.expect("checked")
        ),
        (IpAddr::V4(_), _) => format!(
            "on the host with MAC {}: lbctl arp suppress {vip} --real-ip ITS_ADDRESS (a backend \
             keeps the VIP on lo and must not answer ARP for it)",
            mac(&foreign[0].mac)
        ),
        (IpAddr::V6(_), _) => format!(
            "on the host with MAC {}: move {vip} from its NIC to lo (Linux answers neighbour \
             solicitations only for addresses on the receiving interface)",
            mac(&foreign[0].mac)
        ),
    };
    x.fix(fix)
}

/// A backend's `--balancer`: an address that answers on the link (not just a connected route),
/// and someone — the balancer — answering for each VIP.
pub fn balancer(f: &Facts) -> Vec<Finding> {
    let (Some(b), Some(p)) = (f.balancer, &f.balancer_probe) else {
        return Vec::new();
    };
    let title = format!("balancer {b} answers {} on {}", arp_word(b), p.iface);
    let answers = match &p.answers {
        Ok(x) => x,
        Err(e) => return vec![Finding::unknown("l2.balancer_arp", title, e.clone())],
    };
    let ms = PROBE_TIMEOUT.as_millis();
    let mut out = Vec::new();
    let bmacs: Vec<[u8; 6]> = answers
        .iter()
        .filter(|x| x.target == b)
        .map(|x| x.mac)
        .collect();
    match bmacs.first() {
        Some(m) => out.push(Finding::pass("l2.balancer_arp", title).evidence(format!(
            "lbctl arp who-has {b} --iface {}: {}",
            p.iface,
            mac(m)
        ))),
        None => {
            out.push(
                Finding::fail("l2.balancer_arp", title)
                    .evidence(format!(
                        "no answer to {} for {b} on {} within {ms} ms: the route says connected, \
                         but no host on the segment has that address",
                        arp_word(b),
                        p.iface
                    ))
                    .fix(format!(
                        "give --balancer the balancer's own address on {}'s segment (`ip -br addr` \
                         on the balancer), and check that it is up: lbctl arp who-has {b} --iface {}",
                        p.iface, p.iface
                    )),
            );
            // Without the balancer, "who holds the VIP" says nothing more.
            return out;
        }
    }
    for vip in &p.vips {
        let title = format!("VIP {vip} held by the balancer on the segment");
        let v: Vec<[u8; 6]> = answers
            .iter()
            .filter(|x| x.target == *vip)
            .map(|x| x.mac)
            .collect();
        let x = if v.is_empty() {
            Finding::fail("l2.balancer_vip", title)
                .evidence(format!(
                    "nobody answers {} for {vip} on {} within {ms} ms: the balancer is not \
                     running or lost the VIP, so no client reaches this backend",
                    arp_word(*vip),
                    p.iface
                ))
                .fix(format!(
                    "on the balancer {b}: lbctl lb status (why it stopped), then start it again: \
                     lbctl lb run -c CONFIG (or systemctl start lbctl-lb@NAME)"
                ))
        } else if v.iter().any(|m| bmacs.contains(m)) {
            Finding::pass("l2.balancer_vip", title).evidence(format!(
                "lbctl arp who-has {vip} --iface {}: {} (the balancer)",
                p.iface,
                mac(&v[0])
            ))
        } else {
            Finding::warn("l2.balancer_vip", title).evidence(format!(
                "{vip} answered by {}, the balancer {b} is {}: another host claims the VIP \
                 (run lbctl doctor --role lb on the balancer)",
                v.iter().map(|m| mac(m)).collect::<Vec<_>>().join(", "),
                mac(&bmacs[0])
            ))
        };
        out.push(x);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::facts::{ArpAudit, BalancerProbe};
    use super::super::Status;
    use super::*;
    use crate::sys::whohas::Answer;

    const LB: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const BE1: [u8; 6] = [2, 0, 0, 0, 0, 0x11];

    fn audit_with(answers: Vec<[u8; 6]>) -> Facts {
        let vip: IpAddr = "198.18.0.100".parse().unwrap();
        let mut owners = std::collections::BTreeMap::new();
        owners.insert(
            BE1,
            crate::lab::Node {
                node: "be1".into(),
                role: crate::lab::Role::Backend,
                ns: "lbl-x-be1".into(),
                ipv4: Some("198.18.0.11".parse().unwrap()),
                ipv6: None,
                mac: Some("02:00:00:00:00:11".into()),
            },
        );
        Facts {
            arp_audit: vec![ArpAudit {
                vip,
                iface: Ok("eth0".into()),
                own_mac: Some(LB),
                answers: Ok(answers
                    .into_iter()
                    .map(|mac| Answer {
                        target: vip,
                        mac,
                        ms: 1,
                    })
                    .collect()),
                owners,
            }],
            ..Facts::default()
        }
    }

    #[test]
    fn a_foreign_answer_is_a_failure_naming_the_node() {
        let f = lb_audit(&audit_with(vec![BE1]));
        assert_eq!(f[0].status, Status::Fail);
        assert!(f[0].evidence[0].contains("02:00:00:00:00:11"));
        assert!(f[0].evidence[0].contains("lab node be1"));
        assert_eq!(
            f[0].fix.as_deref(),
            Some("lbctl --netns lbl-x-be1 arp suppress 198.18.0.100 --real-ip 198.18.0.11")
        );
        // No answer and the VIP not here: a warning (lb.vip fails for the VIP itself).
        assert_eq!(lb_audit(&audit_with(vec![]))[0].status, Status::Warn);
    }

    #[test]
    fn balancer_that_does_not_answer_fails_and_stops_there() {
        let b: IpAddr = "198.18.0.77".parse().unwrap();
        let mut f = Facts {
            balancer: Some(b),
            balancer_probe: Some(BalancerProbe {
                iface: "eth0".into(),
                vips: vec!["198.18.0.100".parse().unwrap()],
                answers: Ok(vec![]),
            }),
            ..Facts::default()
        };
        let x = balancer(&f);
        assert_eq!(x.len(), 1);
        assert_eq!(x[0].status, Status::Fail);
        // The balancer answers, the VIP does not: the balancer lost it.
        f.balancer_probe.as_mut().unwrap().answers = Ok(vec![Answer {
            target: b,
            mac: LB,
            ms: 0,
        }]);
        let x = balancer(&f);
        assert_eq!(
            x.iter().map(|x| (x.id, x.status)).collect::<Vec<_>>(),
            [
                ("l2.balancer_arp", Status::Pass),
                ("l2.balancer_vip", Status::Fail)
            ]
        );
    }
}
