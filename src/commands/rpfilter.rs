//! `lbctl rpfilter check|fix|restore`: reverse-path filtering and DSR.
//!
//! The kernel uses max(conf/all/rp_filter, conf/IFACE/rp_filter). In strict mode (1) a request
//! from CLIENT to VIP arriving on IFACE is dropped unless the reverse lookup — a route to CLIENT
//! with the VIP as source, policy rules included (`ip route get CLIENT from VIP`) — leaves by
//! IFACE. Loose mode (2) only needs some route back; 0 checks nothing.

use std::net::IpAddr;

use serde_json::{json, Value};

use super::{cli_intent, Env};
use crate::cli::{RpfilterArgs, RpfilterCmd};
use crate::engine::{converge, print_report};
use crate::error::Result;
use crate::model::{parse_ip, parse_vip, same_family, SysctlKey};
use crate::sys::sysctl;
use crate::{Ctx, Outcome};

const KEY: &str = "rp_filter";

pub fn run(ctx: &Ctx, env: &Env, cmd: RpfilterCmd) -> Result<Outcome> {
    match cmd {
        RpfilterCmd::Check(a) => check(ctx, env, a),
        RpfilterCmd::Fix(a) => fix(ctx, env, a),
        RpfilterCmd::Restore => restore(ctx, env),
    }
}

fn value(iface: &str) -> Result<i64> {
    Ok(sysctl::read_int(&SysctlKey::ipv4_conf(iface, KEY))?.unwrap_or(0))
}

/// A simulated request from `client` to `vip`.
struct Simulation {
    vip: IpAddr,
    client: IpAddr,
    arrival: Option<String>,
    reply: Option<String>,
    mode: i64,
    accepted: bool,
    reason: String,
}

fn parse_pair(a: &RpfilterArgs) -> Result<Option<(IpAddr, IpAddr)>> {
    match (&a.vip, &a.client) {
        (Some(v), Some(c)) => {
            let vip = parse_vip(v)?;
            let client = parse_ip(c, "client")?;
            same_family(vip, client, "rpfilter")?;
            Ok(Some((vip, client)))
        }
        _ => Ok(None),
    }
}

fn simulate(env: &Env, vip: IpAddr, client: IpAddr, iface: Option<&str>) -> Result<Simulation> {
    let all = value("all")?;
    // Where requests from the client arrive: the interface facing it.
    let arrival = match iface {
        Some(i) => Some(i.to_string()),
        None => env
            .sys
            .route_get(client, None, None)
            .ok()
            .and_then(|l| l.dev),
    };
    let reply = env.sys.route_get(client, Some(vip), None);
    let mode = match &arrival {
        Some(i) => all.max(value(i)?),
        None => all,
    };
    let (reply_dev, reply_err) = match &reply {
        Ok(l) if l.kind == "unicast" => (l.dev.clone(), None),
        Ok(l) => (
            None,
            Some(format!("the reverse route is of type {}", l.kind)),
        ),
        Err(e) => (None, Some(e.to_string())),
    };
    let (accepted, reason) = if vip.is_ipv6() {
        (true, "IPv6 has no rp_filter sysctl (use nftables `fib saddr . iif oif missing drop` if you need it)".to_string())
    } else {
        match mode {
            0 => (true, "rp_filter is off".to_string()),
            1 => match (&reply_dev, &arrival) {
                (Some(r), Some(a)) if r == a => (
                    true,
                    format!("strict: the route back to {client} from {vip} leaves by {a}, where requests arrive"),
                ),
                (Some(r), Some(a)) => (
                    false,
                    format!("strict: requests arrive on {a} but the route back to {client} from {vip} leaves by {r}; the kernel drops them (counted in TcpExtIPReversePathFilter)"),
                ),
                _ => (
                    false,
                    format!("strict: no usable route back to {client} from {vip}: {}", reply_err.clone().unwrap_or_default()),
                ),
            },
            _ => match &reply_dev {
                Some(r) => (true, format!("loose: a route back to {client} exists (via {r})")),
                None => (
                    false,
                    format!("loose: no route back to {client} from {vip}: {}", reply_err.clone().unwrap_or_default()),
                ),
            },
        }
    };
    Ok(Simulation {
        vip,
        client,
        arrival,
        reply: reply_dev,
        mode,
        accepted,
        reason,
    })
}

fn check(ctx: &Ctx, env: &Env, a: RpfilterArgs) -> Result<Outcome> {
    let pair = parse_pair(&a)?;
    if let Some(i) = &a.iface {
        env.require_link(i)?;
    }
    let all = value("all")?;
    let default = value("default")?;
    let mut ifaces = Vec::new();
    for l in env.sys.links()? {
        if a.iface.as_ref().is_some_and(|i| *i != l.name) {
            continue;
        }
        let v = value(&l.name)?;
        ifaces.push(json!({"iface": l.name, "value": v, "effective": all.max(v)}));
    }
    let sim = pair
        .map(|(vip, client)| simulate(env, vip, client, a.iface.as_deref()))
        .transpose()?;
    let sim_json = sim.as_ref().map(|s| {
        json!({"vip": s.vip.to_string(), "client": s.client.to_string(), "arrival_iface": s.arrival,
               "reply_iface": s.reply, "mode": s.mode, "accepted": s.accepted, "reason": s.reason})
    });
    if ctx.global.json {
        ctx.emit_json(
            &json!({"all": all, "default": default, "interfaces": ifaces,
                              "simulation": sim_json.unwrap_or(Value::Null)}),
        );
    } else {
        ctx.say("rp_filter: 0 off, 1 strict, 2 loose; effective = max(all, iface)");
        ctx.say(format!(
            "  all {all}   default {default} (for interfaces created later)"
        ));
        for i in &ifaces {
            ctx.say(format!(
                "  {:<16} {}  effective {}",
                i["iface"].as_str().unwrap_or(""),
                i["value"],
                i["effective"]
            ));
        }
        if let Some(s) = &sim {
            ctx.say(format!(
                "{} request {} -> {}: {}",
                if s.accepted { "✓" } else { "✗" },
                s.client,
                s.vip,
                s.reason
            ));
            if !s.accepted {
                ctx.say(format!(
                    "  fix: lbctl rpfilter fix --vip {} --client {}   (sets loose mode 2 where needed; `lbctl rpfilter restore` undoes it)",
                    s.vip, s.client
                ));
            }
        }
    }
    Ok(if sim.is_some_and(|s| !s.accepted) {
        Outcome::Findings
    } else {
        Outcome::Clean
    })
}

fn fix(ctx: &Ctx, env: &Env, a: RpfilterArgs) -> Result<Outcome> {
    let pair = parse_pair(&a)?;
    if let Some(i) = &a.iface {
        env.require_link(i)?;
    }
    let all = value("all")?;
    // Which interfaces must accept the traffic.
    let mut targets: Vec<String> = Vec::new();
    if let Some(i) = &a.iface {
        targets.push(i.clone());
    }
    if let Some((vip, client)) = pair {
        let s = simulate(env, vip, client, a.iface.as_deref())?;
        targets.extend(s.arrival);
        targets.extend(s.reply);
    }
    if targets.is_empty() {
        targets = env
            .sys
            .links()?
            .into_iter()
            .map(|l| l.name)
            .filter(|n| n != "lo")
            .collect();
    }
    targets.sort();
    targets.dedup();
    let mut wants: Vec<(SysctlKey, String)> = Vec::new();
    let mut strict_somewhere = false;
    for t in &targets {
        let own = value(t)?;
        if all.max(own) == 1 {
            strict_somewhere = true;
            if own == 1 {
                wants.push((SysctlKey::ipv4_conf(t, KEY), "2".into()));
            }
        }
    }
    if strict_somewhere && all == 1 {
        // all=2 (not 0): interfaces lbctl does not target stay at least loose.
        wants.push((SysctlKey::ipv4_conf("all", KEY), "2".into()));
    }
    let report = converge(ctx, &env.sys, &env.journal, "rpfilter fix", |state, _| {
        let i = cli_intent(state);
        for (k, v) in wants {
            i.sysctls.insert(k, v);
        }
        Ok(())
    })?;
    Ok(print_report(ctx, &report))
}

fn restore(ctx: &Ctx, env: &Env) -> Result<Outcome> {
    let report = converge(
        ctx,
        &env.sys,
        &env.journal,
        "rpfilter restore",
        |state, _| {
            cli_intent(state)
                .sysctls
                .retain(|k, _| !k.0.ends_with("/rp_filter"));
            Ok(())
        },
    )?;
    Ok(print_report(ctx, &report))
}
