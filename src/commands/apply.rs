//! `lbctl apply -f PROFILE`: converge the host to the profile, all or nothing.
//! Objects this profile created earlier but no longer lists are removed; foreign ones never.

use super::Env;
use crate::engine::{converge, print_report};
use crate::error::Result;
use crate::profile::Profile;
use crate::{Ctx, Outcome};

pub fn run(ctx: &Ctx, env: &Env, profile: Profile) -> Result<Outcome> {
    env.require_links(&profile.interfaces)?;
    env.warn_networkd(ctx, !profile.intent.routes.is_empty());
    let owner = profile.owner();
    let report = converge(ctx, &env.sys, &env.journal, "apply", |state, _| {
        state.intents.insert(owner, profile.intent.clone());
        Ok(())
    })?;
    Ok(print_report(ctx, &report))
}
