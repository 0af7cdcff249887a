//! What the kernel really holds for a running balancer, next to what its status file says:
//! `lb status` must never report a healthy balancer whose table was flushed or whose VIP is
//! gone. Checked: the nft engine's table exists, each service's Maglev slot map holds exactly
//! the MACs of the backends in service, and each VIP is on the interface; for IPVS, each
//! service exists. A check that cannot run is reported as such, never as a pass or a failure.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::ipvs::plan::Table;
use crate::lb::status::RunStatus;
use crate::sys::nfnl::{Elem, Nfnl, NFPROTO_NETDEV};
use crate::sys::Sys;

/// The result of looking at the kernel for one daemon.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// What is missing or wrong (empty: the kernel matches the status).
    pub problems: Vec<String>,
    /// Which part of the data path each of `problems` is about (same order), for doctor.
    pub parts: Vec<Part>,
    /// Checks that could not run, with why.
    pub unchecked: Vec<String>,
}

/// The part of a balancer's data path a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Vip,
    Table,
    SlotMap,
    Ipvs,
}

impl Verdict {
    fn problem(&mut self, part: Part, what: String) {
        self.problems.push(what);
        self.parts.push(part);
    }
}

/// MACs in a slot map's elements (their data bytes, as the kernel dumps them), as
/// `02:00:00:00:00:11`; data of another length is shown the same way, so it never matches.
pub fn map_macs(elems: &[Elem]) -> BTreeSet<String> {
    elems
        .iter()
        .filter_map(|e| e.data.as_ref())
        .map(|d| {
            d.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        })
        .collect()
}

/// Compare the kernel with `s` (the daemon's last status).
pub fn check(sys: &Sys, s: &RunStatus) -> Verdict {
    let mut v = Verdict::default();
    match sys.addresses() {
        Ok(addrs) => {
            let vips: BTreeSet<&str> = s.services.iter().map(|x| x.vip.as_str()).collect();
            for vip in vips {
                let Ok(ip) = vip.parse::<IpAddr>() else {
                    continue;
                };
                if ip.is_unspecified() {
                    continue;
                }
                let on = addrs
                    .iter()
                    .any(|a| a.obj.addr == ip && a.obj.dev == s.interface);
                // With [ha] keepalived owns the VIPs: on the NIC exactly while MASTER. Without,
                // lb run owns them unless every service on the VIP withdrew (quorum lost).
                let (want, why) = match &s.ha {
                    Some(h) => (h.role == "MASTER", format!("VRRP role {}", h.role)),
                    None => (
                        s.services.iter().any(|x| x.vip == vip && !x.withdrawn),
                        "its services withdrew it (quorum lost)".to_string(),
                    ),
                };
                if want && !on {
                    v.problem(Part::Vip, format!("VIP {vip} is not on {}", s.interface));
                } else if on && !want {
                    v.problem(
                        Part::Vip,
                        format!("VIP {vip} is on {} but should not be ({why})", s.interface),
                    );
                }
            }
        }
        Err(e) => v.unchecked.push(format!("the VIPs: {e}")),
    }
    match s.engine.as_str() {
        "nft" => check_nft(s, &mut v),
        "ipvs" => check_ipvs(s, &mut v),
        _ => {}
    }
    v
}

fn check_nft(s: &RunStatus, v: &mut Verdict) {
    let table = crate::lb::nft::table_name(&s.name);
    // Over netlink: `nft list tables` and `nft -j list map` make nft 1.0.6 fetch every element
    // of the table first (seconds at M = 65537).
    let mut nl = match Nfnl::open() {
        Ok(nl) => nl,
        Err(e) => {
            v.unchecked.push(format!("table netdev {table}: {e}"));
            return;
        }
    };
    match nl.table_exists(NFPROTO_NETDEV, &table) {
        Ok(true) => {}
        Ok(false) => {
            v.problem(
                Part::Table,
                format!("table netdev {table} is missing: no traffic is balanced"),
            );
            return;
        }
        Err(e) => {
            v.unchecked.push(format!("table netdev {table}: {e}"));
            return;
        }
    }
    for svc in &s.services {
        let Some(id) = &svc.nft_id else { continue };
        let map = format!("m_{id}");
        let want: BTreeSet<String> = svc
            .backends
            .iter()
            .filter(|b| b.in_service && b.effective_weight > 0)
            .filter_map(|b| b.mac.as_ref().map(|m| m.to_lowercase()))
            .collect();
        match nl.set_elements(NFPROTO_NETDEV, &table, &map) {
            Ok(Some(elems)) => {
                let have = map_macs(&elems);
                if have != want {
                    v.problem(
                        Part::SlotMap,
                        format!(
                            "{}: slot map {map} holds [{}], the backends in service are [{}]",
                            svc.service,
                            have.into_iter().collect::<Vec<_>>().join(", "),
                            want.into_iter().collect::<Vec<_>>().join(", ")
                        ),
                    );
                }
            }
            Ok(None) => v.problem(
                Part::SlotMap,
                format!("{}: slot map {map} is missing", svc.service),
            ),
            Err(e) => v.unchecked.push(format!("slot map {map}: {e}")),
        }
    }
}

fn check_ipvs(s: &RunStatus, v: &mut Verdict) {
    let table = match crate::engine::lb::ipvs_table() {
        Ok(Some(t)) => t,
        Ok(None) => Table::default(),
        Err(e) => {
            v.unchecked.push(format!("IPVS: {e}"));
            return;
        }
    };
    for svc in &s.services {
        let Ok(key) = crate::ipvs::text::parse_service_key_text(&match svc.protocol.as_str() {
            "udp" => format!("-u {}", svc.service.trim_start_matches("udp ")),
            _ => format!("-t {}", svc.service),
        }) else {
            continue;
        };
        if table.get(&key).is_none() {
            v.problem(
                Part::Ipvs,
                format!("IPVS service {} is missing", svc.service),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_of_a_map_dump() {
        let e = |k: u32, d: &[u8]| Elem {
            key: k.to_ne_bytes().to_vec(),
            data: Some(d.to_vec()),
        };
        let m = map_macs(&[
            e(0, &[2, 0, 0, 0, 0, 0x11]),
            e(1, &[2, 0, 0, 0, 0, 0x12]),
            e(2, &[2, 0, 0, 0, 0, 0x11]),
            e(3, &[0xab, 1]),
        ]);
        assert_eq!(
            m.into_iter().collect::<Vec<_>>(),
            ["02:00:00:00:00:11", "02:00:00:00:00:12", "ab:01"]
        );
    }
}
