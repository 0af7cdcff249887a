//! `lbctl status [-f PROFILE]`: what lbctl manages, and drift — anything removed or changed
//! behind lbctl's back, or (with -f) profile edits not yet applied. Exit 1 on drift.

use serde_json::json;

use super::Env;
use crate::cli::StatusArgs;
use crate::engine::plan_for;
use crate::error::Result;
use crate::{Ctx, Outcome};

pub fn run(ctx: &Ctx, env: &Env, a: StatusArgs) -> Result<Outcome> {
    let mut state = env.journal.load()?;
    let mut pending_owner = None;
    if let Some(path) = &a.file {
        let p = crate::profile::load(path)?;
        if !state.intents.contains_key(&p.owner()) {
            pending_owner = Some(format!("profile {} is not applied", p.name));
        } else if state.intents[&p.owner()] != p.intent {
            pending_owner = Some(format!("profile {} changed since it was applied", p.name));
        }
        state.intents.insert(p.owner(), p.intent);
    }
    let (plan, desired, _) = plan_for(&env.sys, &state)?;
    env.warn_networkd(ctx, !desired.rules.is_empty());
    let drift = plan.commands();
    let owned = &state.owned;
    if ctx.global.json {
        ctx.emit_json(&json!({
            "owners": state.intents.keys().collect::<Vec<_>>(),
            "managed": {
                "addresses": owned.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                "rules": owned.rules.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
                "routes": owned.routes.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
                "sysctls": desired.sysctls.iter().map(|(k, v)| json!({"key": k.to_string(), "value": v, "prior": owned.sysctl_prior.get(k)})).collect::<Vec<_>>(),
                "arp_nft": desired.arp.iter().map(|(v, r)| json!({"vip": v.to_string(), "real_ip": r.to_string()})).collect::<Vec<_>>(),
            },
            "pending": pending_owner,
            "drift": drift,
            "in_sync": drift.is_empty(),
            "notes": plan.notes,
        }));
    } else {
        if state.intents.is_empty() {
            ctx.say("lbctl manages nothing here");
        }
        for owner in state.intents.keys() {
            ctx.say(format!("owner {owner}"));
        }
        for x in &owned.addrs {
            ctx.say(format!("  address {x}"));
        }
        for (v, r) in &desired.arp {
            ctx.say(format!("  arp     {v} suppressed (sender {r})"));
        }
        for r in &owned.rules {
            ctx.say(format!("  rule    {r}"));
        }
        for r in &owned.routes {
            ctx.say(format!("  route   {r}"));
        }
        for (k, v) in &desired.sysctls {
            ctx.say(format!(
                "  sysctl  {k}={v}{}",
                owned
                    .sysctl_prior
                    .get(k)
                    .map(|p| format!(" (was {p})"))
                    .unwrap_or_default()
            ));
        }
        for n in &plan.notes {
            ctx.say(format!("  note: {n}"));
        }
        if let Some(p) = &pending_owner {
            ctx.say(format!("! {p}"));
        }
        if drift.is_empty() {
            ctx.say("in sync");
        } else {
            ctx.say(format!(
                "! drift: {} change(s) needed to converge (`lbctl apply` repairs):",
                plan.changes.len()
            ));
            for d in &drift {
                ctx.say(format!("  {d}"));
            }
        }
    }
    Ok(if drift.is_empty() {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}
