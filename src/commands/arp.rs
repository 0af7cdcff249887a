//! `lbctl arp suppress|restore|status`: keep the backend from answering ARP for its VIPs.
//!
//! nft mode (default) is one lbctl-owned `arp` table with a set and a map, so it scales to
//! thousands of VIPs and leaves every sysctl alone. sysctl mode sets arp_ignore=1 and
//! arp_announce=2 on the ARP-facing interface only (not `all`, which breaks other things).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use serde_json::json;

use super::{cli_intent, Env};
use crate::cli::{ArpArgs, ArpCmd, ArpModeArg, ArpStatusArgs, ArpSuppressArgs};
use crate::engine::{converge, print_report};
use crate::error::Result;
use crate::guard::HostAddrs;
use crate::model::{parse_ip, parse_vip, SysctlKey, ARP_SYSCTLS};
use crate::sys::{arptable, sysctl};
use crate::{usage, Ctx, Outcome};

pub fn run(ctx: &Ctx, env: &Env, cmd: ArpCmd) -> Result<Outcome> {
    match cmd {
        ArpCmd::Suppress(a) => suppress(ctx, env, a),
        ArpCmd::Restore(a) => restore(ctx, env, a),
        ArpCmd::Status(a) => status(ctx, env, a),
        ArpCmd::WhoHas(a) => super::arp_whohas::run(ctx, env, a),
    }
}

fn v4_vip(s: &str) -> Result<Ipv4Addr> {
    match parse_vip(s)? {
        IpAddr::V4(v4) => Ok(v4),
        IpAddr::V6(_) => Err(usage!(
            "{s} is IPv6: IPv6 has no ARP, and Linux answers neighbour solicitations only for \
             addresses on the receiving interface, so a VIP on lo needs no suppression"
        )),
    }
}

fn suppress(ctx: &Ctx, env: &Env, a: ArpSuppressArgs) -> Result<Outcome> {
    let force = a.force;
    let a = a.arp;
    let vip = v4_vip(&a.vip)?;
    let rip = match &a.real_ip {
        Some(s) => match parse_ip(s, "real IP")? {
            IpAddr::V4(r) => Some(r),
            r => return Err(usage!("cannot mix IPv4 and IPv6: VIP {vip}, real IP {r}")),
        },
        None => None,
    };
    if rip == Some(vip) {
        return Err(usage!(
            "the real IP must be this backend's own address, not the VIP ({vip})"
        ));
    }
    if let Some(r) = rip {
        if r.is_unspecified() || r.is_broadcast() || r.is_multicast() || r.is_loopback() {
            return Err(usage!("invalid real IP {r}: not a unicast host address"));
        }
    }
    if let Some(i) = &a.iface {
        env.require_link(i)?;
    }
    let addrs = env.sys.addresses()?;
    let holder = |ip: Ipv4Addr| {
        addrs
            .iter()
            .find(|x| x.obj.addr == IpAddr::V4(ip))
            .map(|x| x.obj.dev)
    };
    match a.mode {
        ArpModeArg::Nft => {
            let rip = rip.ok_or_else(|| {
                usage!("nft mode needs --real-ip RIP (the address ARP replies and requests use instead of the VIP)")
            })?;
            let report = converge(
                ctx,
                &env.sys,
                &env.journal,
                "arp suppress",
                |state, snap| {
                    // The VIP first: with the arguments swapped, this is the conflict to name.
                    HostAddrs::of(snap, state).check_service_addr(
                        IpAddr::V4(vip),
                        "VIP",
                        " (are the VIP and --real-ip swapped?)",
                    )?;
                    if holder(rip).is_none() {
                        if !force {
                            return Err(usage!(
                                "real IP {rip} is on no interface: it must be this backend's \
                                 own address on the ARP-facing interface (if it is configured \
                                 later, e.g. in an ifupdown pre-up hook, add --force); nothing \
                                 was changed"
                            ));
                        }
                        ctx.warn(format!(
                            "{rip} is not configured on any interface yet; ARP requests from \
                             the VIP will be sent with it as sender"
                        ));
                    }
                    cli_intent(state).arp_nft.insert(vip, rip);
                    Ok(())
                },
            )?;
            Ok(print_report(ctx, &report))
        }
        ArpModeArg::Sysctl => {
            let iface = match (&a.iface, rip) {
                (Some(i), _) => i.clone(),
                (None, Some(r)) => holder(r).ok_or_else(|| {
                    usage!("real IP {r} is not on any interface; name the ARP-facing interface with --iface")
                })?
                .to_string(),
                (None, None) => {
                    return Err(usage!(
                        "sysctl mode needs --iface IF or --real-ip RIP (to find the ARP-facing interface)"
                    ))
                }
            };
            if iface == "lo" {
                return Err(usage!(
                    "--iface must be the ARP-facing interface (e.g. eth0), not lo"
                ));
            }
            let report = converge(
                ctx,
                &env.sys,
                &env.journal,
                "arp suppress",
                |state, snap| {
                    HostAddrs::of(snap, state).check_service_addr(
                        IpAddr::V4(vip),
                        "VIP",
                        " (are the VIP and --real-ip swapped?)",
                    )?;
                    cli_intent(state).arp_sysctl.insert(vip, iface);
                    Ok(())
                },
            )?;
            Ok(print_report(ctx, &report))
        }
    }
}

fn restore(ctx: &Ctx, env: &Env, a: ArpArgs) -> Result<Outcome> {
    let vip = v4_vip(&a.vip)?;
    if let Some(s) = &a.real_ip {
        parse_ip(s, "real IP")?;
    }
    let report = converge(ctx, &env.sys, &env.journal, "arp restore", |state, _| {
        let i = cli_intent(state);
        let mut found = false;
        if a.mode == ArpModeArg::Nft || a.real_ip.is_some() {
            found |= i.arp_nft.remove(&vip).is_some();
        }
        found |= match &a.iface {
            Some(want) if i.arp_sysctl.get(&vip) != Some(want) => false,
            _ => i.arp_sysctl.remove(&vip).is_some(),
        };
        // `restore VIP` with no options undoes whichever suppression lbctl has for it.
        if !found {
            found |= i.arp_nft.remove(&vip).is_some();
        }
        if !found {
            ctx.warn(format!("lbctl suppresses no ARP for {vip}"));
        }
        Ok(())
    })?;
    Ok(print_report(ctx, &report))
}

fn status(ctx: &Ctx, env: &Env, a: ArpStatusArgs) -> Result<Outcome> {
    let filter = a.vip.as_deref().map(v4_vip).transpose()?;
    if let Some(i) = &a.iface {
        env.require_link(i)?;
    }
    let state = env.journal.load()?;
    let table = arptable::observe()?;
    let mut findings = Vec::new();

    // What lbctl manages.
    let mut managed = Vec::new();
    for (owner, intent) in &state.intents {
        for (vip, rip) in &intent.arp_nft {
            let live = table.map.as_ref().and_then(|m| m.get(vip)) == Some(rip);
            if !live {
                findings.push(format!("{vip}: nft suppression missing from table arp lbctl (drift; `lbctl arp suppress {vip} --real-ip {rip}` repairs)"));
            }
            managed.push(json!({"vip": vip.to_string(), "mode": "nft", "real_ip": rip.to_string(), "owner": owner, "in_place": live}));
        }
        for (vip, iface) in &intent.arp_sysctl {
            managed.push(
                json!({"vip": vip.to_string(), "mode": "sysctl", "iface": iface, "owner": owner}),
            );
        }
    }
    if table.map.is_some() && !table.intact {
        findings.push("table arp lbctl was modified outside lbctl (rules or sets differ); re-run `lbctl arp suppress` to rebuild it".into());
    }

    // Effective sysctls on the ARP-facing interfaces.
    let links = env.sys.links()?;
    let ifaces: Vec<String> = match &a.iface {
        Some(i) => vec![i.clone()],
        None => links
            .iter()
            .filter(|l| l.name != "lo")
            .map(|l| l.name.clone())
            .collect(),
    };
    let get = |iface: &str, name: &str| -> Result<i64> {
        Ok(sysctl::read_int(&SysctlKey::ipv4_conf(iface, name))?.unwrap_or(0))
    };
    let mut rows = Vec::new();
    let mut sysctl_ok = BTreeSet::new();
    for iface in &ifaces {
        let mut row = json!({"iface": iface});
        let mut ok = true;
        for (name, want, why) in ARP_SYSCTLS.iter().map(|(n, v, w)| (*n, *v, *w)).chain([(
            "proxy_arp",
            "0",
            "must be off: with it the host answers ARP for others",
        )]) {
            let all = get("all", name)?;
            let own = get(iface, name)?;
            let eff = all.max(own);
            let want: i64 = want.parse().expect("literal");
            let good = match name {
                "arp_ignore" => eff >= 1,
                "arp_announce" => eff == 2,
                _ => eff == 0,
            };
            if name != "proxy_arp" {
                ok &= good;
            } else if !good {
                findings.push(format!("{iface}: proxy_arp is on (all={all}, {iface}={own}): it answers ARP for other hosts' addresses"));
            }
            row[name] = json!({"all": all, "iface": own, "effective": eff, "wanted": want, "ok": good, "why": why});
        }
        row["suppresses"] = json!(ok);
        if ok {
            sysctl_ok.insert(iface.clone());
        }
        rows.push(row);
    }

    // IPv4 VIPs on this host: are they covered one way or the other?
    let addrs = env.sys.addresses()?;
    let mut vips = Vec::new();
    for x in &addrs {
        let IpAddr::V4(v4) = x.obj.addr else { continue };
        if x.obj.dev != "lo" || x.obj.prefix != 32 || v4.is_loopback() {
            continue;
        }
        if filter.is_some_and(|f| f != v4) {
            continue;
        }
        let by_nft = table.intact && table.map.as_ref().is_some_and(|m| m.contains_key(&v4));
        let by_sysctl = !ifaces.is_empty() && ifaces.iter().all(|i| sysctl_ok.contains(i));
        if !by_nft && !by_sysctl {
            findings.push(format!(
                "{v4} (on lo) is not ARP-suppressed: this host will answer ARP for it (`lbctl arp suppress {v4} --real-ip RIP`)"
            ));
        }
        vips.push(json!({"vip": v4.to_string(), "nft": by_nft, "sysctl": by_sysctl}));
    }

    if ctx.global.json {
        ctx.emit_json(&json!({
            "nft": {"table": table.map.is_some(), "intact": table.intact,
                     "entries": table.map.iter().flatten().map(|(v, r)| json!({"vip": v.to_string(), "real_ip": r.to_string()})).collect::<Vec<_>>(),
                     "requests_dropped": table.dropped, "senders_rewritten": table.rewritten},
            "managed": managed,
            "sysctl": rows,
            "vips": vips,
            "findings": findings,
        }));
    } else {
        match &table.map {
            Some(m) => {
                ctx.say(format!(
                    "nft: table arp lbctl{} — {} VIP(s); {} request(s) dropped, {} sender(s) rewritten",
                    if table.intact { "" } else { " (MODIFIED outside lbctl)" },
                    m.len(),
                    table.dropped,
                    table.rewritten
                ));
                for (v, r) in m {
                    ctx.say(format!("  {v} -> sender {r}"));
                }
            }
            None => ctx.say("nft: no table arp lbctl"),
        }
        ctx.say("sysctl (effective = max(conf/all, conf/IFACE)):");
        for r in &rows {
            ctx.say(format!(
                "  {:<16} arp_ignore {} (all {}, iface {})  arp_announce {} (all {}, iface {})  proxy_arp {}  {}",
                r["iface"].as_str().unwrap_or(""),
                r["arp_ignore"]["effective"], r["arp_ignore"]["all"], r["arp_ignore"]["iface"],
                r["arp_announce"]["effective"], r["arp_announce"]["all"], r["arp_announce"]["iface"],
                r["proxy_arp"]["effective"],
                if r["suppresses"] == true { "sysctls suppress" } else { "sysctls alone do not suppress" }
            ));
        }
        for f in &findings {
            ctx.say(format!("! {f}"));
        }
    }
    Ok(if findings.is_empty() {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}
