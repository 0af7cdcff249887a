//! `lbctl down -f PROFILE | --all`: remove exactly what lbctl added and restore recorded
//! sysctl values. Objects lbctl did not create are never touched.

use super::Env;
use crate::cli::DownArgs;
use crate::engine::{converge, print_report};
use crate::error::Result;
use crate::profile::owner_of;
use crate::{Ctx, Outcome};

pub fn run(ctx: &Ctx, env: &Env, a: DownArgs) -> Result<Outcome> {
    // `down -f` only needs the profile's name: a profile that no longer parses (or was deleted
    // from disk) can still be taken down by name via its file stem.
    let owner = a
        .file
        .as_ref()
        .map(|path| match crate::profile::load(path) {
            Ok(p) => p.owner(),
            Err(e) => {
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                ctx.warn(format!("{e}; taking down profile '{stem}' by file name"));
                owner_of(&stem)
            }
        });
    let report = converge(ctx, &env.sys, &env.journal, "down", |state, _| {
        match &owner {
            Some(o) => {
                if state.intents.remove(o).is_none() {
                    ctx.warn(format!("{o} is not applied here"));
                }
            }
            None => state.intents.clear(),
        }
        Ok(())
    })?;
    Ok(print_report(ctx, &report))
}
