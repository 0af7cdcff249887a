//! `lbctl doctor`: gather facts, run every applicable check, print the checklist (or JSON).
//! Exit 0 all good, 1 findings, 2 could not run. Read-only.

use std::net::IpAddr;

use super::Env;
use crate::cli::{DoctorArgs, Role};
use crate::doctor::{backend, facts, lb, Report};
use crate::error::Result;
use crate::model::{host_prefix, parse_ip, parse_vip};
use crate::{usage, Ctx, Outcome};

/// Parse `VIP`, `VIP:PORT`, `[V6]:PORT` or a bare IPv6 address.
pub fn parse_target(s: &str) -> Result<(IpAddr, Option<u16>)> {
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| usage!("invalid port in '{s}'"))
    };
    if let Some(rest) = s.strip_prefix('[') {
        let (a, p) = rest
            .split_once("]:")
            .ok_or_else(|| usage!("invalid VIP '{s}': use [ADDR]:PORT for IPv6 with a port"))?;
        return Ok((parse_vip(a)?, Some(port(p)?)));
    }
    if s.matches(':').count() == 1 {
        let (a, p) = s.split_once(':').expect("one colon");
        return Ok((parse_vip(a)?, Some(port(p)?)));
    }
    Ok((parse_vip(s)?, None))
}

pub fn run(ctx: &Ctx, env: &Env, a: DoctorArgs) -> Result<Outcome> {
    // Validate everything first.
    let mut targets: Vec<(IpAddr, Vec<u16>)> = Vec::new();
    let add = |t: &mut Vec<(IpAddr, Vec<u16>)>, vip: IpAddr, ports: Vec<u16>| match t
        .iter_mut()
        .find(|(v, _)| *v == vip)
    {
        Some((_, p)) => {
            p.extend(ports);
            p.sort();
            p.dedup();
        }
        None => t.push((vip, ports)),
    };
    for s in &a.vips {
        let (vip, port) = parse_target(s)?;
        add(&mut targets, vip, port.into_iter().collect());
    }
    if let Some(path) = &a.file {
        let p = crate::profile::load(path)?;
        for v in &p.intent.vips {
            add(
                &mut targets,
                v.addr,
                p.ports.get(&v.addr).cloned().unwrap_or_default(),
            );
        }
    }
    let client = a
        .client
        .as_deref()
        .map(|c| parse_ip(c, "client"))
        .transpose()?;
    let balancer = a
        .balancer
        .as_deref()
        .map(|c| parse_ip(c, "balancer"))
        .transpose()?;
    if a.capture.is_some_and(|s| !(s > 0.0 && s <= 3600.0)) {
        return Err(usage!(
            "--capture takes a duration in seconds (0 < SECS <= 3600)"
        ));
    }
    if targets.is_empty() {
        // Discover: what lbctl manages, else host addresses on lo.
        let state = env.journal.load()?;
        for i in state.intents.values() {
            for v in &i.vips {
                add(&mut targets, v.addr, Vec::new());
            }
        }
        if targets.is_empty() {
            for x in env.sys.addresses()? {
                let o = x.obj;
                if o.dev == "lo" && o.prefix == host_prefix(o.addr) && !o.addr.is_loopback() {
                    add(&mut targets, o.addr, Vec::new());
                }
            }
        }
    }

    if a.role == Role::Lb && a.vips.is_empty() && a.file.is_none() {
        // The VIPs of this namespace's `lbctl lb run` daemons.
        for d in crate::lb::status::read_all(env.journal.dir())? {
            if !d.alive() {
                continue;
            }
            for s in &d.services {
                if let Ok(vip) = s.vip.parse::<IpAddr>() {
                    if !vip.is_unspecified() {
                        add(&mut targets, vip, vec![s.port]);
                    }
                }
            }
        }
    }
    // The capture starts at once, next to gathering the facts (the ARP audits take a few
    // hundred milliseconds): traffic the user starts with doctor is not missed. The thread
    // inherits this thread's network namespace.
    let vips: Vec<IpAddr> = targets.iter().map(|(v, _)| *v).collect();
    let start = std::time::Instant::now();
    let (f, captured) = std::thread::scope(|s| {
        let cap = a
            .capture
            .map(|secs| s.spawn(move || facts::capture(ctx, &vips, secs)));
        let f = facts::gather(
            env,
            targets,
            client,
            balancer,
            a.role == Role::Lb,
            ctx.global.netns.clone(),
        );
        let captured = cap.map(|h| h.join().expect("the capture thread does not panic"));
        (f, captured)
    });
    let mut f = f?;
    if let (Some(secs), Some(packets)) = (a.capture, captured) {
        f.capture = Some((packets?, secs));
        facts::reread_counters(&mut f, start.elapsed().as_secs_f64());
    }
    let mut report = Report {
        role: match a.role {
            Role::Backend => "backend",
            Role::Lb => "lb",
        },
        findings: match a.role {
            Role::Backend => {
                let mut v = backend::checks(&f);
                v.extend(crate::doctor::segment::balancer(&f));
                v.extend(crate::doctor::evidence::backend(&f));
                v
            }
            Role::Lb => {
                let mut v = lb::checks(&f);
                v.extend(crate::doctor::segment::lb_audit(&f));
                v.extend(crate::doctor::engine::checks(&f));
                v.extend(crate::doctor::evidence::lb(&f));
                v
            }
        },
    };
    if let Some(ns) = &ctx.global.netns {
        // Fixes pasted from outside the namespace must act inside it.
        report.in_netns(ns);
    }
    if ctx.global.json {
        ctx.emit_json(&report.to_json());
    } else if !ctx.global.quiet {
        print!("{}", report.render());
    }
    Ok(if report.failed() {
        Outcome::Findings
    } else {
        Outcome::Clean
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(parse_target("198.18.0.100:80").unwrap().1, Some(80));
        assert_eq!(parse_target("198.18.0.100").unwrap().1, None);
        assert_eq!(parse_target("2001:db8::100").unwrap().1, None);
        assert_eq!(parse_target("[2001:db8::100]:443").unwrap().1, Some(443));
        assert!(parse_target("198.18.0.100:0").is_err());
        assert!(parse_target("198.18.0.100:http").is_err());
    }
}
