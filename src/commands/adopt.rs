//! `lbctl adopt`: after the journal was deleted, emptied or damaged, record again what carries
//! lbctl's marks, under the owner `adopted`; `status` then lists it and `down --all` removes it.

use serde_json::json;

use crate::context::Env;
use crate::engine::{adopt, converge};
use crate::error::Result;
use crate::{Ctx, Outcome};

pub fn run(ctx: &Ctx, env: &Env) -> Result<Outcome> {
    if !ctx.global.dry_run {
        if let Some(aside) = env.journal.set_aside_if_corrupt()? {
            ctx.warn(format!(
                "the journal did not parse: kept as {}; starting from lbctl's marks",
                aside.display()
            ));
        }
    }
    let tables = adopt::lbctl_tables()?;
    let backup = env.journal.sysctl_backup();
    let mut found = adopt::Orphans::default();
    let report = converge(ctx, &env.sys, &env.journal, "adopt", |state, snap| {
        found = adopt::recover(state, snap, &tables, &backup)?;
        Ok(())
    })?;
    let lines = found.lines();
    if ctx.global.json {
        ctx.emit_json(&json!({
            "adopted": lines,
            "owner": adopt::ADOPTED,
            "changes": report.commands(),
            "dry_run": ctx.global.dry_run,
        }));
    } else if lines.is_empty() {
        ctx.say("nothing to adopt: every object carrying lbctl's marks is in its journal");
    } else {
        for l in &lines {
            ctx.say(format!("adopted {l}"));
        }
        ctx.say(format!(
            "{} object(s) recorded under owner `{}` (`lbctl down --owner {}` removes them)",
            lines.len(),
            adopt::ADOPTED,
            adopt::ADOPTED
        ));
    }
    for c in report.commands() {
        ctx.warn(format!("adopting also needed: {c}"));
    }
    Ok(Outcome::Clean)
}
