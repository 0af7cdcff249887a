//! `--role lb`: lbctl's own balancer (`lbctl lb run`) next to the IPVS checks. The kernel is
//! compared with the daemon's status through [`crate::lb::verify`] (what `lb status` uses):
//! the nft table, each slot map against the backends in service, the VIPs on the interface.
//! On top, from the table's listing: every service chain rewrites the source MAC and hashes
//! with a fixed seed, and the named per-service counters (moving, when read twice).

use std::collections::BTreeMap;

use super::facts::{Engine, Facts};
use super::Finding;
use crate::lb::verify::Part;

pub fn checks(f: &Facts) -> Vec<Finding> {
    let mut out: Vec<Finding> = f.engines.iter().flat_map(engine).collect();
    out.extend(super::bonding::checks(&f.bonds));
    out
}

/// Rule lines per chain of an `nft list table` listing.
pub fn chains(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut cur: Option<String> = None;
    for l in text.lines().map(str::trim) {
        if let Some(rest) = l.strip_prefix("chain ") {
            let name = rest.trim_end_matches('{').trim().to_string();
            m.entry(name.clone()).or_default();
            cur = Some(name);
        } else if l == "}" {
            cur = None;
        } else if let Some(c) = &cur {
            if !l.is_empty() {
                m.get_mut(c).expect("inserted").push(l.to_string());
            }
        }
    }
    m
}

fn engine(e: &Engine) -> Vec<Finding> {
    let s = &e.status;
    let name = &s.name;
    let mut out = Vec::new();
    let running = format!("lb {name}: `lbctl lb run` ({} engine) running", s.engine);
    if !e.alive {
        out.push(
            Finding::fail("lb.engine.running", running)
                .evidence(format!(
                    "PID {} is gone (status file from {})",
                    s.pid, s.updated
                ))
                .fix(format!("lbctl lb run -c {}", s.config)),
        );
        return out;
    }
    out.push(
        Finding::pass("lb.engine.running", running)
            .evidence(format!("PID {} on {}", s.pid, s.interface)),
    );
    let parts = |p: Part| -> Vec<String> {
        e.verdict
            .problems
            .iter()
            .zip(&e.verdict.parts)
            .filter(|(_, q)| **q == p)
            .map(|(x, _)| x.clone())
            .collect()
    };
    let verdict = |id: &'static str, title: String, p: Part, ok: String, fix: String| {
        let bad = parts(p);
        if bad.is_empty() {
            Finding::pass(id, title).evidence(ok)
        } else {
            let mut x = Finding::fail(id, title).fix(fix);
            x.evidence = bad;
            x
        }
    };
    let repair = format!(
        "the daemon repairs its data path within ~1 s; if it does not: lbctl lb restore {name} \
         (or restart lbctl lb run -c {})",
        s.config
    );
    let vips: Vec<&str> = s.services.iter().map(|x| x.vip.as_str()).collect();
    out.push(verdict(
        "lb.engine.vip",
        format!("lb {name}: VIPs owned on {}", s.interface),
        Part::Vip,
        format!("{} on {}", vips.join(", "), s.interface),
        repair.clone(),
    ));
    if s.engine != "nft" {
        out.push(verdict(
            "lb.engine.ipvs",
            format!("lb {name}: IPVS services present"),
            Part::Ipvs,
            format!("{} service(s)", s.services.len()),
            repair,
        ));
        return out;
    }
    let table = crate::lb::nft::table_name(name);
    let t = verdict(
        "lb.engine.table",
        format!("lb {name}: table netdev {table} present"),
        Part::Table,
        format!("nft list table netdev {table}"),
        repair.clone(),
    );
    let table_ok = t.status == super::Status::Pass;
    out.push(t);
    if !table_ok {
        return out;
    }
    let up: usize = s
        .services
        .iter()
        .flat_map(|x| &x.backends)
        .filter(|b| b.in_service && b.effective_weight > 0)
        .count();
    out.push(verdict(
        "lb.engine.maps",
        format!("lb {name}: slot maps hold exactly the healthy backends"),
        Part::SlotMap,
        format!(
            "{up} backend(s) in service across {} service(s)",
            s.services.len()
        ),
        repair.clone(),
    ));
    for x in e.verdict.unchecked.iter() {
        out.push(Finding::unknown(
            "lb.engine.maps",
            format!("lb {name}: kernel state"),
            x.clone(),
        ));
    }
    let text = match &e.table {
        Some(Ok(Some(t))) => t.clone(),
        Some(Ok(None)) | None => return out,
        Some(Err(err)) => {
            out.push(Finding::unknown(
                "lb.engine.rewrite",
                format!("lb {name}: service chains"),
                err.clone(),
            ));
            return out;
        }
    };
    let ch = chains(&text);
    let mut rewrite = Finding::pass(
        "lb.engine.rewrite",
        format!("lb {name}: every service chain sets the balancer's source MAC"),
    );
    let mut hash = Finding::pass(
        "lb.engine.hash",
        format!("lb {name}: every service chain hashes with a fixed jhash seed"),
    );
    for svc in &s.services {
        let Some(id) = &svc.nft_id else { continue };
        let chain = format!("s_{id}");
        let rules = ch.get(&chain).map(Vec::as_slice).unwrap_or_default();
        let forwarding: Vec<&String> = rules.iter().filter(|r| r.contains("fwd to")).collect();
        if forwarding.is_empty() || !forwarding.iter().all(|r| r.contains("ether saddr set")) {
            rewrite.status = super::Status::Fail;
            rewrite.evidence.push(format!(
                "chain {chain}: {} forwarding rule(s), not all with `ether saddr set` (frames \
                 leave with the client's or gateway's MAC: switches learn it on the wrong port)",
                forwarding.len()
            ));
        } else {
            rewrite.evidence.push(format!(
                "chain {chain}: {} forwarding rule(s)",
                forwarding.len()
            ));
        }
        match rules
            .iter()
            .find(|r| r.contains("jhash"))
            .and_then(|r| r.split(" seed ").nth(1))
            .and_then(|x| x.split_whitespace().next())
        {
            Some(seed) => hash
                .evidence
                .push(format!("chain {chain}: jhash seed {seed}")),
            None => {
                hash.status = super::Status::Fail;
                hash.evidence.push(format!(
                    "chain {chain}: no `jhash … seed` (a random per-boot seed re-maps every \
                     flow when the table is rebuilt)"
                ));
            }
        }
    }
    if rewrite.status != super::Status::Pass {
        rewrite.fix = Some(repair.clone());
    }
    if hash.status != super::Status::Pass {
        hash.fix = Some(repair);
    }
    out.push(rewrite);
    out.push(hash);
    out.push(counters(e));
    out
}

fn counters(e: &Engine) -> Finding {
    let name = &e.status.name;
    let title = format!("lb {name}: per-service packet counters");
    let now = match &e.counters {
        Some(Ok(c)) => c,
        Some(Err(err)) => return Finding::unknown("lb.engine.counters", title, err.clone()),
        None => return Finding::skip("lb.engine.counters", title, "not read"),
    };
    let mut x = Finding::pass("lb.engine.counters", title);
    for svc in &e.status.services {
        let Some(id) = &svc.nft_id else { continue };
        let c = format!("c_{id}");
        let Some((pk, _)) = now.get(id) else {
            x.status = super::Status::Fail;
            x.evidence.push(format!("counter {c} is missing"));
            continue;
        };
        match &e.counters_later {
            Some((later, secs)) => {
                let after = later.get(id).map(|v| v.0).unwrap_or(*pk);
                let d = after.saturating_sub(*pk);
                x.evidence.push(format!(
                    "{}: {c} {pk} → {after} packets (+{d} in {secs:.1} s)",
                    svc.service
                ));
                if d == 0 {
                    x.status = super::Status::Warn;
                    x.evidence.push(format!(
                        "no packet for {} entered the balancer during the capture",
                        svc.service
                    ));
                }
            }
            None => x
                .evidence
                .push(format!("{}: {c} {pk} packets", svc.service)),
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_of_a_listing() {
        let t = "table netdev lbctl_lb_web {\n\tcounter c_x {\n\t\tpackets 3 bytes 180\n\t}\n\n\tchain s_x {\n\t\tether saddr set 02:00:00:00:00:02 ether daddr set jhash tcp sport . ip saddr mod 7 seed 0x4c42 map @m_x fwd to \"eth0\"\n\t\tcounter packets 0 bytes 0 drop\n\t}\n\n\tchain ingress {\n\t\ttype filter hook ingress device \"eth0\" priority 100; policy accept;\n\t\tip daddr 198.18.0.100 tcp dport 80 counter name \"c_x\" jump s_x\n\t}\n}\n";
        let c = chains(t);
        assert_eq!(c.len(), 2);
        assert_eq!(c["s_x"].len(), 2);
        assert!(c["s_x"][0].contains("seed 0x4c42"));
        assert_eq!(c["ingress"].len(), 2);
    }
}
