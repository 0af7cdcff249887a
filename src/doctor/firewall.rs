//! The firewall's verdict on each VIP's service flows, from the facts (the ruleset doctor already
//! listed, the arrival interface and `ip route get CLIENT from VIP`) through the pure evaluator
//! in `crate::firewall`. A drop is a ✗ naming the rule with a pasteable fix; a path lbctl could
//! not evaluate is a warning that says so, never a ✓.

use std::net::IpAddr;

use super::facts::Facts;
use super::{Finding, Status};
use crate::firewall::{self, Check, Direction, Proto, Query, Ruleset, Verdict};

/// The TCP flow from `client` to `vip`:`port` as the firewall evaluator sees it on this host.
fn query(f: &Facts, vip: IpAddr, port: u16, client: IpAddr) -> Query {
    let path = f.paths.get(&vip);
    // Requests reach a DSR backend from the balancer's segment: its interface is the
    // arrival interface; without --balancer, the route towards the client is the guess.
    let arrival = f
        .balancer_path
        .as_ref()
        .and_then(|b| b.as_ref().ok())
        .filter(|l| l.kind == "unicast" && l.via.is_none())
        .and_then(|l| l.dev.clone())
        .or_else(|| path.and_then(|p| p.arrival.clone()));
    let mut q = Query::new(
        vip,
        port,
        client,
        Proto::Tcp,
        arrival,
        path.and_then(|p| p.reply.as_ref().ok()),
    );
    q.vip_local = Some(f.addrs.iter().any(|a| a.obj.addr == vip));
    q
}

/// The firewall's verdict on `client` → `vip`:`port` (TCP), with the ruleset and query behind
/// it (for [`firewall::fix`]); `None` when the ruleset could not be read.
pub(super) fn verdict(
    f: &Facts,
    vip: IpAddr,
    port: u16,
    client: IpAddr,
) -> Option<(Ruleset, Query, Check)> {
    let rs = Ruleset::parse(f.ruleset.as_ref()?);
    let q = query(f, vip, port, client);
    let c = firewall::check(&rs, &q);
    Some((rs, q, c))
}

/// `firewall.request` and `firewall.reply` for every VIP:port, plus `firewall.legacy`.
pub fn checks(f: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    let rs = f.ruleset.as_ref().map(Ruleset::parse);
    for (vip, ports) in &f.targets {
        let title = |dir: Direction, port: Option<u16>, client: &str| {
            let svc = port.map_or(vip.to_string(), |p| firewall::sock(*vip, p));
            match dir {
                Direction::Request => format!("{svc}: firewall accepts requests from {client}"),
                Direction::Reply => format!("{svc}: firewall lets replies to {client} out"),
            }
        };
        let client = f.client.filter(|c| c.is_ipv4() == vip.is_ipv4());
        let skip = |why: &str| {
            [Direction::Request, Direction::Reply].map(|d| {
                let id = id(d);
                Finding::skip(id, title(d, None, "the client"), why)
            })
        };
        if ports.is_empty() {
            out.extend(skip(
                "no port given (use --vip VIP:PORT or ports in the profile)",
            ));
            continue;
        }
        let Some(client) = client else {
            out.extend(skip(
                "no --client and no default gateway to use as a typical source",
            ));
            continue;
        };
        let Some(rs) = &rs else {
            match &f.ruleset_error {
                Some(why) => {
                    for port in ports {
                        out.extend([Direction::Request, Direction::Reply].map(|d| {
                            Finding::unknown(
                                id(d),
                                title(d, Some(*port), &client.to_string()),
                                format!("nft ruleset not readable: {why}"),
                            )
                        }));
                    }
                }
                None => out.extend(skip(
                    "nft ruleset not readable (nft missing or no privilege)",
                )),
            }
            continue;
        };
        for port in ports {
            let q = query(f, *vip, *port, client);
            let c = firewall::check(rs, &q);
            for p in [&c.request, &c.reply] {
                let t = title(p.direction, Some(*port), &client.to_string());
                let mut x = Finding::new(
                    id(p.direction),
                    t,
                    match p.verdict {
                        Verdict::Accept => Status::Pass,
                        Verdict::Drop { .. } => Status::Fail,
                        Verdict::Unknown { .. } => Status::Warn,
                    },
                );
                x.evidence.push(p.describe(&q));
                if matches!(p.verdict, Verdict::Unknown { .. }) {
                    x.evidence
                        .push("could not check: some rules on the path cannot be evaluated".into());
                }
                x.evidence.extend(p.evidence());
                if let Verdict::Drop { by, .. } = &p.verdict {
                    let fx = firewall::fix(rs, &q, p.direction, by, f.netns.as_deref());
                    if let Some(d) = &fx.delete {
                        x.evidence.push(format!("or remove the rule: {d}"));
                    }
                    x.fix = Some(fx.insert);
                }
                out.push(x);
            }
        }
    }
    if !f.legacy_iptables.is_empty() {
        out.push(
            Finding::warn("firewall.legacy", "legacy iptables evaluated")
                .evidence(format!(
                    "legacy (x_tables) iptables tables loaded: {} — invisible to nft, not evaluated",
                    f.legacy_iptables.join(", ")
                ))
                .fix("iptables-legacy-save   (inspect; move the rules to nftables or iptables-nft)"),
        );
    }
    out
}

fn id(d: Direction) -> &'static str {
    match d {
        Direction::Request => "firewall.request",
        Direction::Reply => "firewall.reply",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::facts::Paths;
    use crate::sys::netlink::Lookup;

    fn facts(ruleset: &str) -> Facts {
        let vip = "198.18.0.100".parse().unwrap();
        let mut f = Facts {
            targets: vec![(vip, vec![80])],
            client: Some("198.18.0.10".parse().unwrap()),
            ruleset: Some(serde_json::from_str(ruleset).unwrap()),
            netns: Some("be1".into()),
            ..Facts::default()
        };
        f.paths.insert(
            vip,
            Paths {
                arrival: Some("eth0".into()),
                reply: Ok(Lookup {
                    dev: Some("eth0".into()),
                    via: None,
                    table: 254,
                    kind: "unicast".into(),
                    prefsrc: None,
                }),
            },
        );
        f
    }

    #[test]
    fn dport_80_drop_is_a_failure_with_rule_and_fix() {
        let out = checks(&facts(include_str!(
            "../firewall/testdata/dport80_drop.json"
        )));
        let req = out.iter().find(|x| x.id == "firewall.request").unwrap();
        assert_eq!(req.status, Status::Fail);
        assert_eq!(
            req.title,
            "198.18.0.100:80: firewall accepts requests from 198.18.0.10"
        );
        assert!(req.evidence.contains(
            &"dropped by table inet filter chain input handle 3: tcp dport 80 drop".into()
        ));
        assert_eq!(
            req.fix.as_deref(),
            Some("ip netns exec be1 nft insert rule inet filter input ip daddr 198.18.0.100 tcp dport 80 accept")
        );
        let rep = out.iter().find(|x| x.id == "firewall.reply").unwrap();
        assert_eq!(rep.status, Status::Pass);
    }

    #[test]
    fn unknown_is_a_warning_and_legacy_is_reported() {
        let mut f = facts(include_str!("../firewall/testdata/unknown.json"));
        f.legacy_iptables = vec!["ip filter".into()];
        let out = checks(&f);
        let req = out.iter().find(|x| x.id == "firewall.request").unwrap();
        assert_eq!(req.status, Status::Warn);
        assert!(req
            .evidence
            .iter()
            .any(|e| e.starts_with("could not check")));
        assert!(out.iter().any(|x| x.id == "firewall.legacy"));
        // No port: skipped, not passed.
        let mut f = facts(include_str!("../firewall/testdata/accept.json"));
        f.targets[0].1.clear();
        assert!(checks(&f).iter().all(|x| x.status == Status::Skip));
    }
}
