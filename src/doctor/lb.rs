//! Balancer checks (`--role lb`).

use std::net::IpAddr;

use super::facts::Facts;
use super::Finding;

pub fn checks(f: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    out.push(if f.ipvs_available {
        Finding::pass("lb.ipvs", "IPVS available").evidence("/proc/net/ip_vs present")
    } else {
        Finding::warn("lb.ipvs", "IPVS available")
            .evidence("this kernel has no IPVS (/proc/net/ip_vs missing): the nftables engine is the fallback")
            .fix("modprobe ip_vs (if built as a module)")
    });
    for (vip, _) in &f.targets {
        out.push(vip_on_nic(f, *vip));
    }
    out.push(Finding::skip(
        "lb.backends",
        "backends resolvable on the same L2 segment",
        "needs the balancer configuration (lbctl lb), not available in this version",
    ));
    out
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
