//! `lbctl down -f PROFILE | --owner OWNER | --all`: remove exactly what lbctl added — backend
//! objects, and for balancers their IPVS services and nft tables — and restore recorded
//! sysctl values, in one transaction. Objects lbctl did not create are never touched.

use super::Env;
use crate::cli::DownArgs;
use crate::engine::{converge, print_report};
use crate::error::Result;
use crate::profile::owner_of;
use crate::{usage, Ctx, Outcome};

pub fn run(ctx: &Ctx, env: &Env, a: DownArgs) -> Result<Outcome> {
    // `down -f` only needs the profile's name: a profile that no longer parses (or was deleted
    // from disk) can still be taken down by name via its file stem.
    let owner = match (&a.file, &a.owner) {
        (Some(path), _) => Some(match crate::profile::load(path) {
            Ok(p) => p.owner(),
            Err(e) => {
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                ctx.warn(format!("{e}; taking down profile '{stem}' by file name"));
                owner_of(&stem)
            }
        }),
        (None, Some(o)) => Some(o.clone()),
        (None, None) => None,
    };
    // A running balancer would keep using (and re-create) what it owns: stop it first.
    let running: Vec<String> = crate::lb::status::read_all(env.journal.dir())?
        .into_iter()
        .filter(|s| s.alive())
        .filter(|s| {
            owner
                .as_ref()
                .is_none_or(|o| *o == crate::engine::lb::owner(&s.name))
        })
        .map(|s| format!("`lb run` {} (PID {})", s.name, s.pid))
        .collect();
    let running: Vec<String> = running
        .into_iter()
        .chain(crate::crossover::agent::running_owners(
            env.journal.dir(),
            owner.as_deref(),
        ))
        .collect();
    if !running.is_empty() {
        return Err(usage!(
            "{} running here and owns objects; stop it first (SIGTERM; for `lb run` also \
             `systemctl stop lbctl-lb@NAME`), then run down again. Nothing was changed.",
            running.join(", ")
        ));
    }
    // `--all` means everything lbctl owns, also what a lost journal forgot: adopt by the marks.
    let (tables, backup) = if owner.is_none() {
        (
            crate::engine::adopt::lbctl_tables()?,
            env.journal.sysctl_backup(),
        )
    } else {
        (Vec::new(), Default::default())
    };
    let report = converge(ctx, &env.sys, &env.journal, "down", |state, snap| {
        if owner.is_none() {
            let found = crate::engine::adopt::recover(state, snap, &tables, &backup)?;
            if !found.is_empty() {
                ctx.warn(format!(
                    "{} object(s) carry lbctl's marks but were not in its journal (lost?): \
                     removing them too",
                    found.lines().len()
                ));
            }
        }
        match &owner {
            Some(o) => {
                let had_intent = state.intents.remove(o).is_some();
                let had_lb = state.lb.remove(o).is_some();
                if !had_intent && !had_lb {
                    ctx.warn(format!("{o} is not applied here"));
                }
            }
            None => {
                state.intents.clear();
                state.lb.clear();
            }
        }
        Ok(())
    })?;
    if !ctx.global.dry_run {
        // A removed balancer's last status file would describe objects that are gone.
        for s in crate::lb::status::read_all(env.journal.dir())? {
            let o = crate::engine::lb::owner(&s.name);
            if owner.as_ref().is_none_or(|x| *x == o) {
                let _ = std::fs::remove_file(crate::lb::status::path(env.journal.dir(), &s.name));
            }
        }
    }
    Ok(print_report(ctx, &report))
}
