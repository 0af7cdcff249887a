//! `lbctl vip add|del|list`: the VIP as a host address (/32, /128 nodad) on `lo` or a device.

use std::net::IpAddr;

use serde_json::json;

use super::{cli_intent, Env};
use crate::cli::{VipAddArgs, VipCmd, VipDelArgs};
use crate::engine::{converge, print_report};
use crate::error::Result;
use crate::guard::HostAddrs;
use crate::model::{host_prefix, parse_vip, AddrObj, IfName, Vip};
use crate::{usage, Ctx, Outcome};

pub fn run(ctx: &Ctx, env: &Env, cmd: VipCmd) -> Result<Outcome> {
    match cmd {
        VipCmd::Add(a) => add(ctx, env, a),
        VipCmd::Del(a) => del(ctx, env, a),
        VipCmd::List => list(ctx, env),
    }
}

fn add(ctx: &Ctx, env: &Env, a: VipAddArgs) -> Result<Outcome> {
    let addr = parse_vip(&a.vip)?;
    env.require_link(&a.dev)?;
    let dev = IfName::new(&a.dev)?;
    let vip = Vip { addr, dev };
    let obj = AddrObj {
        dev,
        addr,
        prefix: host_prefix(addr),
    };
    let report = converge(ctx, &env.sys, &env.journal, "vip add", |state, snap| {
        HostAddrs::of(snap, state).check_service_addr(addr, "VIP", "")?;
        let foreign =
            snap.observed.addrs.get(&obj) == Some(&false) && !state.owned.addrs.contains(&obj);
        if foreign {
            // Someone else's address: leave it, and do not claim it (`down` must not remove it).
            ctx.say(format!(
                "unchanged: {obj} is already present and was not added by lbctl (left alone, not owned)"
            ));
            return Ok(());
        }
        if let IpAddr::V4(v4) = addr {
            let suppressed = state
                .intents
                .values()
                .any(|i| i.arp_nft.contains_key(&v4) || i.arp_sysctl.contains_key(&v4));
            if !suppressed {
                ctx.warn(format!(
                    "{addr} is not ARP-suppressed by lbctl: unless the host's sysctls already do \
                     it, this backend will answer ARP for the VIP (run `lbctl arp suppress {addr} \
                     --real-ip RIP` first)"
                ));
            }
        }
        cli_intent(state).vips.insert(vip);
        Ok(())
    })?;
    Ok(print_report(ctx, &report))
}

fn del(ctx: &Ctx, env: &Env, a: VipDelArgs) -> Result<Outcome> {
    let addr = parse_vip(&a.vip)?;
    let dev = IfName::new(&a.dev)?;
    let obj = AddrObj {
        dev,
        addr,
        prefix: host_prefix(addr),
    };
    let report = converge(ctx, &env.sys, &env.journal, "vip del", |state, snap| {
        let present = snap.observed.addrs.get(&obj);
        let owned = state.owned.addrs.contains(&obj) || present == Some(&true);
        if present.is_some() && !owned {
            if !a.force {
                return Err(usage!(
                    "{obj} was not added by lbctl; refusing to delete it (use --force)"
                ));
            }
            // Take ownership so the engine removes it, mark or not.
            state.owned.addrs.insert(obj.clone());
            state.owned.force_delete.insert(obj.clone());
        } else if present == Some(&true) {
            // lbctl's mark but not in the journal (lost): it is lbctl's, delete it.
            state.owned.addrs.insert(obj.clone());
        }
        let vip = Vip { addr, dev };
        for (owner, intent) in state.intents.iter_mut() {
            if intent.vips.remove(&vip) && owner != crate::journal::CLI_OWNER {
                ctx.warn(format!(
                    "{addr} was also wanted by {owner}; removed there too"
                ));
            }
        }
        Ok(())
    })?;
    Ok(print_report(ctx, &report))
}

fn list(ctx: &Ctx, env: &Env) -> Result<Outcome> {
    let state = env.journal.load()?;
    let addrs = env.sys.addresses()?;
    let mut rows = Vec::new();
    for a in &addrs {
        let o = &a.obj;
        let owned = a.marked || state.owned.addrs.contains(o);
        let wanted = state.intents.values().any(|i| {
            i.vips.contains(&Vip {
                addr: o.addr,
                dev: o.dev,
            })
        });
        let host = o.prefix == host_prefix(o.addr);
        // VIP candidates: host addresses on lo (other than loopback), and anything lbctl manages.
        if !(owned || wanted || (o.dev == "lo" && host && !o.addr.is_loopback())) {
            continue;
        }
        rows.push((o.clone(), owned));
    }
    // VIPs lbctl should maintain but which are missing.
    let mut missing = Vec::new();
    for (owner, i) in &state.intents {
        for v in &i.vips {
            if !addrs
                .iter()
                .any(|a| a.obj.addr == v.addr && a.obj.dev == v.dev)
            {
                missing.push((v.clone(), owner.clone()));
            }
        }
    }
    if ctx.global.json {
        let mut out: Vec<_> = rows
            .iter()
            .map(|(o, owned)| {
                json!({"vip": o.addr.to_string(), "prefix": o.prefix, "dev": o.dev, "owned": owned, "present": true})
            })
            .collect();
        out.extend(missing.iter().map(|(v, owner)| {
            json!({"vip": v.addr.to_string(), "prefix": host_prefix(v.addr), "dev": v.dev, "owned": true, "present": false, "owner": owner})
        }));
        ctx.emit_json(&serde_json::Value::Array(out));
    } else {
        ctx.say(format!("{:<40} {:<16} OWNER", "VIP", "DEV"));
        for (o, owned) in &rows {
            ctx.say(format!(
                "{:<40} {:<16} {}",
                format!("{}/{}", o.addr, o.prefix),
                o.dev,
                if *owned { "lbctl" } else { "foreign" }
            ));
        }
        for (v, _) in &missing {
            ctx.say(format!(
                "{:<40} {:<16} lbctl (MISSING: run `lbctl vip add {}` to restore)",
                format!("{}/{}", v.addr, host_prefix(v.addr)),
                v.dev,
                v.addr
            ));
        }
    }
    Ok(if missing.is_empty() {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}
