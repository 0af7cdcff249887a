//! `lbctl route add|del|list`: source policy routing for replies from a VIP.
//!
//! `ip rule from VIP lookup T` (action to-table), `default via GW dev IF table T`, and IF's
//! connected routes copied into T — without those, even on-link replies go to the gateway.

use serde_json::json;

use super::{cli_intent, Env};
use crate::cli::{RouteAddArgs, RouteCmd, RouteDelArgs};
use crate::engine::{converge, print_report};
use crate::error::Result;
use crate::guard::{check_one_table, HostAddrs};
use crate::model::{
    host_prefix, parse_ip, parse_vip, same_family, validate_table, IfName, PolicyRoute, RuleObj,
};
use crate::{usage, Ctx, Outcome};

pub fn run(ctx: &Ctx, env: &Env, cmd: RouteCmd) -> Result<Outcome> {
    match cmd {
        RouteCmd::Add(a) => add(ctx, env, a),
        RouteCmd::Del(a) => del(ctx, env, a),
        RouteCmd::List => list(ctx, env),
    }
}

fn add(ctx: &Ctx, env: &Env, a: RouteAddArgs) -> Result<Outcome> {
    let vip = parse_vip(&a.vip)?;
    let via = parse_ip(&a.via, "gateway")?;
    same_family(vip, via, "route add")?;
    if via == vip {
        return Err(usage!("the gateway cannot be the VIP itself ({vip})"));
    }
    if via.is_unspecified() || via.is_multicast() {
        return Err(usage!("invalid gateway {via}"));
    }
    validate_table(a.table)?;
    env.require_link(&a.dev)?;
    if a.dev == "lo" {
        return Err(usage!(
            "--dev must be the interface towards the gateway, not lo"
        ));
    }
    let pr = PolicyRoute {
        vip,
        table: a.table,
        via,
        dev: IfName::new(&a.dev)?,
        priority: a.priority,
    };
    let report = converge(ctx, &env.sys, &env.journal, "route add", |state, snap| {
        // Every rule without lbctl's protocol mark counts as foreign (sys::netlink::Sys::rules).
        if snap.foreign_rule_tables.contains(&a.table) {
            return Err(usage!(
                "table {} is already used by ip rules lbctl did not create; pick another table",
                a.table
            ));
        }
        HostAddrs::of(snap, state).check_gateway(via, "gateway")?;
        check_one_table(
            vip,
            a.table,
            &state.intents,
            &snap.observed.rules,
            crate::journal::CLI_OWNER,
        )?;
        if let Some(r) = cli_intent(state)
            .routes
            .iter()
            .find(|r| r.vip == vip && r.table != a.table)
        {
            return Err(usage!(
                "{vip} already has policy routing in table {t}; a second table for the same VIP \
                 would never be used; remove it first (`lbctl route del {vip} --table {t}`)",
                t = r.table
            ));
        }
        if !snap.observed.addrs.keys().any(|x| x.addr == vip) {
            ctx.warn(format!(
                "{vip} is not configured on this host yet; the rule will match once it is (`lbctl vip add {vip}`)"
            ));
        }
        let i = cli_intent(state);
        // One policy per VIP and table: a new gateway or device replaces the old one.
        i.routes.retain(|r| !(r.vip == vip && r.table == a.table));
        i.routes.insert(pr);
        Ok(())
    })?;
    Ok(print_report(ctx, &report))
}

fn del(ctx: &Ctx, env: &Env, a: RouteDelArgs) -> Result<Outcome> {
    let vip = parse_vip(&a.vip)?;
    validate_table(a.table)?;
    let report = converge(ctx, &env.sys, &env.journal, "route del", |state, _| {
        let i = cli_intent(state);
        let before = i.routes.len();
        i.routes.retain(|r| !(r.vip == vip && r.table == a.table));
        if i.routes.len() == before {
            ctx.warn(format!(
                "lbctl manages no policy routing for {vip} in table {}",
                a.table
            ));
        }
        Ok(())
    })?;
    Ok(print_report(ctx, &report))
}

fn list(ctx: &Ctx, env: &Env) -> Result<Outcome> {
    let state = env.journal.load()?;
    let rules = env.sys.rules()?;
    let mut rows = Vec::new();
    let mut drift = false;
    for (owner, intent) in &state.intents {
        for r in &intent.routes {
            let rule = RuleObj {
                priority: r.priority,
                from: r.vip,
                from_len: host_prefix(r.vip),
                table: r.table,
            };
            let present = rules.plain.contains_key(&rule);
            drift |= !present;
            rows.push((r.clone(), owner.clone(), present));
        }
    }
    if ctx.global.json {
        ctx.emit_json(&serde_json::Value::Array(
            rows.iter()
                .map(|(r, owner, present)| {
                    json!({"vip": r.vip.to_string(), "table": r.table, "via": r.via.to_string(),
                           "dev": r.dev, "priority": r.priority, "owner": owner, "rule_present": present})
                })
                .collect(),
        ));
    } else {
        for (r, _, present) in &rows {
            ctx.say(format!(
                "from {} lookup {} priority {}: default via {} dev {} (+ connected routes of {}){}",
                r.vip,
                r.table,
                r.priority,
                r.via,
                r.dev,
                r.dev,
                if *present { "" } else { "  RULE MISSING" }
            ));
        }
        if rows.is_empty() {
            ctx.say("no policy routing managed by lbctl");
        }
    }
    Ok(if drift {
        Outcome::Findings
    } else {
        Outcome::Clean
    })
}
