//! `lb apply -f`: converge IPVS to an LB file, deleting what the file created earlier and no
//! longer lists.

use std::collections::BTreeMap;

use super::{finish, Ipvs};
use crate::cli::lb::ApplyArgs;
use crate::context::Env;
use crate::error::{Error, Result};
use crate::ipvs::plan::{self, Planned};
use crate::ipvs::spec::{self, key_name};
use crate::ipvs::text::{self, Rule};
use crate::ipvs::ServiceKey;
use crate::{Ctx, Outcome};

/// Services each LB file created (`lb-owned.json` in the journal directory), so that a service
/// removed from the file is deleted by the next apply, and services of other origins are not.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Owned {
    /// LB file name → service keys as ipvsadm writes them (`-t 198.18.0.100:80`, `-f 7 -6`).
    #[serde(default)]
    files: BTreeMap<String, Vec<String>>,
}

const OWNED_FILE: &str = "lb-owned.json";

impl Owned {
    fn load(env: &Env) -> Result<Owned> {
        let path = env.journal.dir().join(OWNED_FILE);
        match std::fs::read_to_string(&path) {
            Ok(t) => serde_json::from_str(&t).map_err(|e| {
                Error::Runtime(anyhow::anyhow!(
                    "parsing {} (remove it to forget which services LB files created): {e}",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Owned::default()),
            Err(e) => Err(Error::Runtime(anyhow::anyhow!(
                "reading {}: {e}",
                path.display()
            ))),
        }
    }

    fn save(&self, env: &Env) -> Result<()> {
        let dir = env.journal.dir();
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!("{OWNED_FILE}.tmp"));
        let body = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Runtime(anyhow::anyhow!("serializing {OWNED_FILE}: {e}")))?;
        std::fs::write(&tmp, body + "\n")?;
        std::fs::rename(&tmp, dir.join(OWNED_FILE))?;
        Ok(())
    }

    fn keys(&self, name: &str) -> Vec<ServiceKey> {
        self.files
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|k| match text::parse_rule(&format!("-D {k}")) {
                Ok(Rule::DeleteService(key)) => Some(key),
                _ => None,
            })
            .collect()
    }
}

pub(super) fn apply(ctx: &Ctx, env: &Env, a: &ApplyArgs) -> Result<Outcome> {
    let file = spec::load_lb_file(&a.file).map_err(Error::Usage)?;
    let mut ipvs = Ipvs::change(ctx, env, "lb apply")?;
    let before = ipvs.table()?;
    let mut owned = Owned::load(env)?;
    let created = owned.keys(&file.name);
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
        let keys: Vec<String> = file.table.keys().map(|k| k.to_string()).collect();
        if keys.is_empty() {
            owned.files.remove(&file.name);
        } else {
            owned.files.insert(file.name.clone(), keys);
        }
        owned.save(env)?;
    }
    Ok(outcome)
}
