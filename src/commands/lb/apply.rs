//! `lb apply -f`: converge IPVS to an LB file, deleting what the file created earlier and no
//! longer lists.

use std::collections::BTreeMap;

use super::{finish, Ipvs};
use crate::cli::lb::ApplyArgs;
use crate::context::Env;
use crate::error::{Error, Result};
use crate::ipvs::plan::{self, Planned};
use crate::ipvs::spec::{self, key_name};
use crate::ipvs::ServiceKey;
use crate::{Ctx, Outcome};

/// Where lbctl 0.1 recorded the services each LB file created. Read once and merged into the
/// journal (owner `lb:NAME`), then removed.
const LEGACY_OWNED_FILE: &str = "lb-owned.json";

/// Merge a legacy `lb-owned.json` into the journal (the caller holds the journal lock).
fn migrate_legacy_owned(env: &Env) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Legacy {
        #[serde(default)]
        files: BTreeMap<String, Vec<String>>,
    }
    let path = env.journal.dir().join(LEGACY_OWNED_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let legacy: Legacy = serde_json::from_str(&text).map_err(|e| {
        Error::Runtime(anyhow::anyhow!(
            "parsing {} (remove it to forget which services LB files created): {e}",
            path.display()
        ))
    })?;
    let mut state = env.journal.load()?;
    for (name, keys) in legacy.files {
        state
            .lb
            .entry(crate::engine::lb::owner(&name))
            .or_default()
            .ipvs_services
            .extend(keys);
    }
    env.journal.save(&state)?;
    std::fs::remove_file(&path)?;
    Ok(())
}

pub(super) fn apply(ctx: &Ctx, env: &Env, a: &ApplyArgs) -> Result<Outcome> {
    let file = spec::load_lb_file(&a.file).map_err(Error::Usage)?;
    let mut ipvs = Ipvs::change(ctx, env, "lb apply")?;
    let owner = crate::engine::lb::owner(&file.name);
    ipvs.owner = owner.clone();
    if !ctx.global.dry_run {
        migrate_legacy_owned(env)?;
    }
    let before = ipvs.table()?;
    let created = crate::engine::lb::services_of(&env.journal.load()?, &owner);
    let remove = |k: &ServiceKey| a.prune || created.contains(k);
    let changes = plan::diff(&file.table, &before, &remove);
    let foreign: Vec<String> = before
        .keys()
        .filter(|k| file.table.get(k).is_none() && !remove(k))
        .map(key_name)
        .collect();
    if !foreign.is_empty() {
        ctx.detail(format!(
            "left alone (not in {}, not created by it; --prune removes them): {}",
            a.file.display(),
            foreign.join(", ")
        ));
    }
    let p = Planned {
        changes,
        notes: Vec::new(),
        unchanged: format!(
            "IPVS already matches {} ({} service(s))",
            a.file.display(),
            file.table.entries.len()
        ),
    };
    let outcome = finish(ctx, &mut ipvs, &before, p)?;
    if !ctx.global.dry_run {
        // The file's services are the owner's now, including those it adopted.
        let keys: std::collections::BTreeSet<String> =
            file.table.keys().map(|k| k.to_string()).collect();
        crate::engine::lb::update(&env.journal, |lb| {
            crate::engine::lb::forget_services(lb, &keys);
            lb.entry(owner.clone()).or_default().ipvs_services = keys;
        })?;
    }
    Ok(outcome)
}
