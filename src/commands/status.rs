//! `lbctl status [-f PROFILE]`: everything lbctl owns in this namespace, grouped by owner
//! (`cli`, `profile:NAME`, `lb:NAME`) — backend addresses, rules, routes, sysctls and the ARP
//! table, and the balancers' IPVS services and nft tables — and drift: anything removed or
//! changed behind lbctl's back, or (with -f) profile edits not yet applied. With -f only that
//! profile's objects. Exit 1 on drift or when something could not be checked.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::Env;
use crate::cli::StatusArgs;
use crate::engine::lb::Seen;
use crate::engine::{desired_by_owner, plan_for, touches};
use crate::error::Result;
use crate::model::Desired;
use crate::{Ctx, Outcome};

/// How to repair drift of an owner's objects.
fn repair_hint(owner: &str) -> String {
    if let Some(name) = owner.strip_prefix("profile:") {
        format!("`lbctl apply -f {name}.toml` repairs")
    } else if let Some(name) = owner.strip_prefix("lb:") {
        format!("restart `lbctl lb run` (or `lbctl lb apply -f`) for {name} to repair")
    } else {
        "re-run the `lbctl vip/arp/route/rpfilter` command that added it, or `lbctl down --owner cli`"
            .to_string()
    }
}

fn objects_json(d: &Desired, prior: &BTreeMap<crate::model::SysctlKey, String>) -> Value {
    json!({
        "addresses": d.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "rules": d.rules.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        "routes": d.routes.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        "sysctls": d.sysctls.iter().map(|(k, v)| json!({"key": k.to_string(), "value": v, "prior": prior.get(k)})).collect::<Vec<_>>(),
        "arp_nft": d.arp.iter().map(|(v, r)| json!({"vip": v.to_string(), "real_ip": r.to_string()})).collect::<Vec<_>>(),
    })
}

pub fn run(ctx: &Ctx, env: &Env, a: StatusArgs) -> Result<Outcome> {
    let mut state = env.journal.load()?;
    let mut pending_owner = None;
    let mut only: Option<String> = None;
    let mut old_desired = None;
    if let Some(path) = &a.file {
        let p = crate::profile::load(path)?;
        let owner = p.owner();
        if !state.intents.contains_key(&owner) {
            pending_owner = Some(format!("profile {} is not applied", p.name));
        } else if state.intents[&owner] != p.intent {
            pending_owner = Some(format!("profile {} changed since it was applied", p.name));
            let routes = env.sys.routes()?;
            old_desired = desired_by_owner(&state, &routes)?.remove(&owner);
        }
        state.intents.insert(owner.clone(), p.intent);
        only = Some(owner);
    }
    let (plan, desired, snap) = plan_for(&env.sys, &state)?;
    env.warn_networkd(ctx, !desired.rules.is_empty());
    let mut by_owner = desired_by_owner(&state, &snap.routes)?;
    let balancer = crate::engine::lb::observe(&state);
    let daemons: BTreeMap<String, u32> = crate::lb::status::read_all(env.journal.dir())
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.alive())
        .map(|s| (crate::engine::lb::owner(&s.name), s.pid))
        .collect();

    // Drift: backend changes needed (only the profile's with -f), balancer objects missing.
    let mut drift: Vec<(Option<String>, String)> = Vec::new();
    for c in &plan.changes {
        let owners: Vec<&String> = by_owner
            .iter()
            .filter(|(_, d)| touches(c, d))
            .map(|(o, _)| o)
            .collect();
        let mine = match &only {
            Some(o) => owners.contains(&o) || old_desired.as_ref().is_some_and(|d| touches(c, d)),
            None => true,
        };
        if mine {
            let owner = (owners.len() == 1).then(|| owners[0].clone());
            for l in c.commands() {
                drift.push((owner.clone(), l));
            }
        }
    }
    let mut unchecked = Vec::new();
    for (owner, kind, name, seen) in &balancer {
        if only.as_ref().is_some_and(|o| o != owner) {
            continue;
        }
        let what = match *kind {
            "nft_table" => format!("nft table {name}"),
            _ => format!("IPVS service {name}"),
        };
        match seen {
            Seen::Present => {}
            Seen::Missing => drift.push((Some(owner.clone()), format!("# {what} is missing"))),
            Seen::Unknown(why) => unchecked.push(format!("{what}: could not check: {why}")),
        }
    }
    if let Some(o) = &only {
        by_owner.retain(|k, _| k == o);
    }
    let mut owners: BTreeSet<String> = by_owner.keys().cloned().collect();
    if only.is_none() {
        owners.extend(state.lb.keys().cloned());
    }
    let prior = &state.owned.sysctl_prior;
    let empty = Desired::default();
    let lines: Vec<String> = drift.iter().map(|(_, l)| l.clone()).collect();
    // A change in progress: the drift may be its half-done work, not tampering.
    let changing = env.journal.lock_holder();
    let in_sync = lines.is_empty() && unchecked.is_empty();
    if ctx.global.json {
        let owned = &state.owned;
        let mut groups = serde_json::Map::new();
        for o in &owners {
            let mut g = objects_json(by_owner.get(o).unwrap_or(&empty), prior);
            let objs: Vec<Value> = balancer
                .iter()
                .filter(|(bo, ..)| bo == o)
                .map(|(_, kind, name, seen)| {
                    json!({
                        "kind": kind,
                        "name": name,
                        "state": match seen {
                            Seen::Present => "present".to_string(),
                            Seen::Missing => "missing".to_string(),
                            Seen::Unknown(w) => format!("could not check: {w}"),
                        },
                    })
                })
                .collect();
            g["nft_tables"] = json!(objs
                .iter()
                .filter(|v| v["kind"] == "nft_table")
                .collect::<Vec<_>>());
            g["ipvs_services"] = json!(objs
                .iter()
                .filter(|v| v["kind"] == "ipvs_service")
                .collect::<Vec<_>>());
            if let Some(pid) = daemons.get(o) {
                g["lb_run_pid"] = json!(pid);
            }
            g["drift"] = json!(drift
                .iter()
                .filter(|(d, _)| d.as_ref() == Some(o))
                .map(|(_, l)| l)
                .collect::<Vec<_>>());
            groups.insert(o.clone(), g);
        }
        let managed = match &only {
            Some(o) => objects_json(by_owner.get(o).unwrap_or(&empty), prior),
            None => json!({
                "addresses": owned.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                "rules": owned.rules.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
                "routes": owned.routes.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
                "sysctls": desired.sysctls.iter().map(|(k, v)| json!({"key": k.to_string(), "value": v, "prior": prior.get(k)})).collect::<Vec<_>>(),
                "arp_nft": desired.arp.iter().map(|(v, r)| json!({"vip": v.to_string(), "real_ip": r.to_string()})).collect::<Vec<_>>(),
            }),
        };
        ctx.emit_json(&json!({
            "owners": owners,
            "by_owner": groups,
            "managed": managed,
            "pending": pending_owner,
            "drift": lines,
            "could_not_check": unchecked,
            "change_in_progress": changing,
            "in_sync": in_sync,
            "notes": plan.notes,
        }));
    } else {
        if owners.is_empty() {
            ctx.say("lbctl manages nothing here");
        }
        for o in &owners {
            match daemons.get(o) {
                Some(pid) => ctx.say(format!("owner {o} (lb run, PID {pid})")),
                None => ctx.say(format!("owner {o}")),
            }
            let d = by_owner.get(o).unwrap_or(&empty);
            for x in &d.addrs {
                ctx.say(format!("  address {x}"));
            }
            for (v, r) in &d.arp {
                ctx.say(format!("  arp     {v} suppressed (sender {r})"));
            }
            for r in &d.rules {
                ctx.say(format!("  rule    {r}"));
            }
            for r in &d.routes {
                ctx.say(format!("  route   {r}"));
            }
            for (k, v) in &d.sysctls {
                ctx.say(format!(
                    "  sysctl  {k}={v}{}",
                    prior
                        .get(k)
                        .map(|p| format!(" (was {p})"))
                        .unwrap_or_default()
                ));
            }
            for (_, kind, name, seen) in balancer.iter().filter(|(bo, ..)| bo == o) {
                let label = if *kind == "nft_table" {
                    "nft     table"
                } else {
                    "ipvs    service"
                };
                let note = match seen {
                    Seen::Present => String::new(),
                    Seen::Missing => " (missing)".into(),
                    Seen::Unknown(w) => format!(" (could not check: {w})"),
                };
                ctx.say(format!("  {label} {name}{note}"));
            }
        }
        for n in &plan.notes {
            ctx.say(format!("  note: {n}"));
        }
        if let Some(p) = &pending_owner {
            ctx.say(format!("! {p}"));
        }
        if let Some(h) = &changing {
            ctx.say(format!(
                "note: another lbctl is changing this namespace now ({h}): drift below may be its \
                 work in progress"
            ));
        }
        for u in &unchecked {
            ctx.say(format!("? {u}"));
        }
        if lines.is_empty() {
            if unchecked.is_empty() {
                ctx.say("in sync");
            }
        } else {
            ctx.say(format!(
                "! drift: {} change(s) needed to converge:",
                lines.len()
            ));
            let mut last: Option<&Option<String>> = None;
            for (o, l) in &drift {
                if last != Some(o) {
                    match o {
                        Some(o) => ctx.say(format!("  # {o}: {}", repair_hint(o))),
                        None => ctx.say("  # `lbctl apply -f PROFILE` of the owner repairs"),
                    }
                    last = Some(o);
                }
                ctx.say(format!("  {l}"));
            }
        }
    }
    Ok(if in_sync {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}
