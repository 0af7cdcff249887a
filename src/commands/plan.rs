//! `lbctl plan -f PROFILE`: the changes `apply` would make, as `ip`/`nft`/`sysctl` lines.
//! Exit 1 when there are changes, 0 when the host already matches.

use std::path::Path;

use serde_json::json;

use super::Env;
use crate::engine::plan_for;
use crate::error::Result;
use crate::guard;
use crate::profile::Profile;
use crate::{Ctx, Outcome};

pub fn run(ctx: &Ctx, env: &Env, profile: Profile, path: &Path) -> Result<Outcome> {
    env.require_links(&profile.interfaces)?;
    let before = env.journal.load()?;
    let mut state = before.clone();
    state
        .intents
        .insert(profile.owner(), profile.intent.clone());
    state.intents.retain(|_, i| !i.is_empty());
    let (mut plan, _, snap) = plan_for(&env.sys, &state)?;
    // The same checks as `apply`, against the same observations.
    guard::check_profile(&profile, &before, &snap)?;
    // Shown, but marked: `apply` refuses it.
    if let Some(why) = guard::empty_profile_refusal(&profile, &before, path) {
        plan.notes
            .push(format!("apply would refuse this plan: {why}"));
    }
    let cmds = plan.commands();
    if ctx.global.json {
        ctx.emit_json(&json!({"profile": profile.name, "changes": cmds, "notes": plan.notes}));
    } else {
        for n in &plan.notes {
            ctx.warn(n);
        }
        if cmds.is_empty() {
            ctx.say(format!("# profile {}: no changes", profile.name));
        }
        for c in &cmds {
            ctx.say(c);
        }
    }
    Ok(if cmds.is_empty() {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}
