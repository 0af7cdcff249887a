//! `lbctl apply -f PROFILE`: converge the host to the profile, all or nothing.
//! Objects this profile created earlier but no longer lists are removed; foreign ones never.
//! The profile is checked against the host first (`guard::check_profile`), and a profile with
//! no objects may not wipe what it applied earlier: that is `down -f`'s job.

use std::path::Path;

use super::Env;
use crate::engine::{converge, print_report};
use crate::error::Result;
use crate::guard;
use crate::profile::Profile;
use crate::{usage, Ctx, Outcome};

pub fn run(ctx: &Ctx, env: &Env, mut profile: Profile, path: &Path) -> Result<Outcome> {
    env.require_links(&profile.interfaces)?;
    env.warn_networkd(ctx, !profile.intent.routes.is_empty());
    let owner = profile.owner();
    let report = converge(ctx, &env.sys, &env.journal, "apply", move |state, snap| {
        guard::check_profile(&profile, state, snap)?;
        if let Some(why) = guard::empty_profile_refusal(&profile, state, path) {
            return Err(usage!("{why}"));
        }
        // Moved, not copied: at 10,000 VIPs a second copy of the intent is a megabyte.
        state
            .intents
            .insert(owner, std::mem::take(&mut profile.intent));
        Ok(())
    })?;
    Ok(print_report(ctx, &report))
}
