//! Balancer checks (`--role lb`).

use std::net::IpAddr;

use super::facts::Facts;
use super::{Finding, Status};
use crate::ipvs::{Forward, Scheduler, ServiceEntry, ServiceFlags, ServiceKey};

pub fn checks(f: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    let services = match &f.ipvs {
        Some(Ok(s)) => {
            out.push(
                Finding::pass("lb.ipvs", "IPVS available")
                    .evidence(format!("{} service(s)", s.len())),
            );
            Some(s)
        }
        Some(Err(e)) => {
            out.push(
                Finding::warn("lb.ipvs", "IPVS available")
                    .evidence(e.clone())
                    .evidence("without IPVS, a DSR balancer needs the nftables netdev engine")
                    .fix("modprobe ip_vs (if built as a module)"),
            );
            None
        }
        None => None,
    };
    for (vip, ports) in &f.targets {
        out.push(vip_on_nic(f, *vip));
        if let Some(list) = services {
            out.extend(service(f, list, *vip, ports));
        }
    }
    out
}

/// The IPVS service for VIP(:PORT): exists, forwards by DR, has live real servers, mh/sh with a
/// weight-0 server has fallback, and every real server is on a connected segment with a MAC.
fn service(f: &Facts, list: &[ServiceEntry], vip: IpAddr, ports: &[u16]) -> Vec<Finding> {
    let mut out = Vec::new();
    let matching: Vec<&ServiceEntry> = list
        .iter()
        .filter(|s| match &s.service.key {
            ServiceKey::Inet { addr, port, .. } => {
                *addr == vip && (ports.is_empty() || ports.contains(port))
            }
            ServiceKey::Fwmark { .. } => false,
        })
        .collect();
    let title = format!("{vip}: IPVS service with DR real servers");
    if matching.is_empty() {
        out.push(
            Finding::fail("lb.service", title)
                .evidence(format!(
                    "no IPVS service for {vip}{} (ipvsadm -Ln)",
                    if ports.is_empty() {
                        String::new()
                    } else {
                        format!(" port {:?}", ports)
                    }
                ))
                .fix(format!(
                    "lbctl lb service add {vip}:PORT --scheduler mh --mh-port"
                )),
        );
        return out;
    }
    for s in matching {
        let svc = crate::ipvs::spec::key_name(&s.service.key);
        let mut x = Finding::pass(
            "lb.service",
            format!("{svc}: IPVS service with DR real servers"),
        );
        let live = s.dests.iter().filter(|d| d.dest.weight > 0).count();
        for d in &s.dests {
            x.evidence.push(format!(
                "{}:{} {:?} weight {}",
                d.dest.addr, d.dest.port, d.dest.fwd, d.dest.weight
            ));
        }
        if s.dests.is_empty() || live == 0 {
            x.status = Status::Fail;
            x.evidence
                .push("no real server with weight > 0: every new connection is refused".into());
            x.fix = Some(format!("lbctl lb backend add {svc} RIP"));
        }
        if s.dests.iter().any(|d| d.dest.fwd != Forward::Dr) {
            x.status = Status::Warn;
            x.evidence.push(
                "some real servers do not use direct routing (-g): replies then pass the balancer"
                    .into(),
            );
        }
        let hashing = matches!(s.service.scheduler, Scheduler::Mh | Scheduler::Sh);
        if hashing
            && s.dests.iter().any(|d| d.dest.weight == 0)
            && !s.service.flags.contains(ServiceFlags::SCHED1)
        {
            x.status = Status::Fail;
            x.evidence.push(format!(
                "{} with a weight-0 server and no fallback: flows hashing to it are refused",
                s.service.scheduler.name()
            ));
            x.fix = Some(format!(
                "lbctl lb service edit {svc} --mh-fallback   (lbctl lb drain does this)"
            ));
        }
        out.push(x);
        for d in &s.dests {
            out.push(rs_adjacent(f, d.dest.addr));
        }
    }
    out
}

fn rs_adjacent(f: &Facts, rip: IpAddr) -> Finding {
    let title = format!("real server {rip} on the same L2 segment, MAC known");
    match f.rs_paths.get(&rip) {
        Some(Ok(l)) if l.via.is_none() && l.kind == "unicast" => {
            let dev = l.dev.clone().unwrap_or_default();
            match f.neigh.iter().find(|n| n.ip == rip && n.dev == dev) {
                Some(n) if !matches!(n.state.as_str(), "failed" | "incomplete") => Finding::pass("lb.backend_l2", title)
                    .evidence(format!("{rip} dev {dev} lladdr {} {}", n.mac.as_deref().map(crate::doctor::backend::mac).unwrap_or_default(), n.state.to_uppercase())),
                Some(n) => Finding::fail("lb.backend_l2", title)
                    .evidence(format!("ip neigh: {rip} dev {dev} {}", n.state.to_uppercase()))
                    .fix(format!("check that {rip} is up on {dev}'s segment")),
                None => Finding::warn("lb.backend_l2", title)
                    .evidence(format!("{rip} is connected via {dev}; no neighbour entry yet (resolved on the first forwarded packet)")),
            }
        }
        Some(Ok(l)) => Finding::fail("lb.backend_l2", title)
            .evidence(format!("ip route get {rip}: via {} — DR needs the real server on a connected segment", l.via.map(|v| v.to_string()).unwrap_or_else(|| l.kind.clone())))
            .fix("use tunnel mode (--method tun) for routed real servers, or put them on the balancer's segment"),
        Some(Err(e)) => Finding::fail("lb.backend_l2", title).evidence(e.clone()),
        None => Finding::skip("lb.backend_l2", title, "not looked up"),
    }
}

fn vip_on_nic(f: &Facts, vip: IpAddr) -> Finding {
    let title = format!("{vip}: VIP owned by this balancer on its external interface");
    let Some(a) = f.addrs.iter().find(|a| a.obj.addr == vip) else {
        return Finding::fail("lb.vip", title)
            .evidence(format!(
                "{vip} is not configured on this host: clients' ARP requests go unanswered"
            ))
            .fix(format!(
                "ip addr add {vip}/{} dev IFACE",
                crate::model::host_prefix(vip)
            ));
    };
    if a.obj.dev == "lo" {
        return Finding::fail("lb.vip", title)
            .evidence(format!(
                "{} is on lo: that is the backend recipe; the balancer must answer ARP for the VIP",
                a.obj
            ))
            .fix(format!(
                "ip addr del {} dev lo; ip addr add {vip}/32 dev IFACE",
                vip
            ));
    }
    if let IpAddr::V4(v4) = vip {
        if f.arp_table.as_ref().is_some_and(|m| m.contains_key(&v4)) {
            return Finding::fail("lb.vip", title)
                .evidence("lbctl's arp table suppresses ARP for the VIP on this host")
                .fix(format!("lbctl arp restore {vip}"));
        }
        if f.effective(&a.obj.dev, "arp_ignore") >= 8 {
            return Finding::fail("lb.vip", title).evidence(format!(
                "arp_ignore 8 on {}: the host never answers ARP",
                a.obj.dev
            ));
        }
    }
    Finding::pass("lb.vip", title).evidence(format!("{} (answers ARP)", a.obj))
}
