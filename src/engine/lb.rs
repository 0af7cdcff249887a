//! Balancer objects in the one journal: IPVS services and lbctl's nft tables, per owner
//! (`lb:NAME`, `cli`). Ownership is recorded before an object is created (write-ahead), so a
//! killed `lb run` or `lb apply` never leaves an object nobody owns; `down --all` and `status`
//! read the same records the backend objects use.

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::step::{Step, SysExec, TableStep};
use crate::error::{Error, Result};
use crate::ipvs::plan::{Change, Table};
use crate::ipvs::text::parse_service_key_text;
use crate::ipvs::ServiceKey;
use crate::journal::{Journal, LbOwned, State};
use crate::sys::nft;

/// The owner name of a balancer (LB file) `NAME`.
pub fn owner(name: &str) -> String {
    format!("lb:{name}")
}

/// `FAMILY NAME` → (family, name).
pub fn split_table(t: &str) -> Option<(&str, &str)> {
    t.split_once(' ')
}

/// Union of two ownership records (write-ahead: everything before and after).
pub fn union(
    a: &BTreeMap<String, LbOwned>,
    b: &BTreeMap<String, LbOwned>,
) -> BTreeMap<String, LbOwned> {
    let mut out = a.clone();
    for (o, x) in b {
        let e = out.entry(o.clone()).or_default();
        e.nft_tables.extend(x.nft_tables.iter().cloned());
        e.ipvs_services.extend(x.ipvs_services.iter().cloned());
    }
    out
}

/// Everything in `a` that `b` does not have: (tables, services).
fn dropped(
    a: &BTreeMap<String, LbOwned>,
    b: &BTreeMap<String, LbOwned>,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let all_b = union(&BTreeMap::new(), b);
    let kept_tables: BTreeSet<&String> = all_b.values().flat_map(|o| &o.nft_tables).collect();
    let kept_svcs: BTreeSet<&String> = all_b.values().flat_map(|o| &o.ipvs_services).collect();
    let tables = a
        .values()
        .flat_map(|o| &o.nft_tables)
        .filter(|t| !kept_tables.contains(t))
        .cloned()
        .collect();
    let svcs = a
        .values()
        .flat_map(|o| &o.ipvs_services)
        .filter(|s| !kept_svcs.contains(s))
        .cloned()
        .collect();
    (tables, svcs)
}

/// The IPVS table now, or `None` where this kernel has no IPVS (then no service can exist).
pub fn ipvs_table() -> Result<Option<Table>> {
    SysExec::ipvs_table_of(&mut None)
}

/// The steps that remove the balancer objects `before` has and `after` does not, as far as
/// they still exist: IPVS services first (with their real servers, kept for the undo), then
/// nft tables.
pub fn removals(
    x: &mut SysExec<'_>,
    before: &BTreeMap<String, LbOwned>,
    after: &BTreeMap<String, LbOwned>,
) -> Result<Vec<Step>> {
    let (tables, svcs) = dropped(before, after);
    let mut steps = Vec::new();
    if !svcs.is_empty() {
        if let Some(table) = x.ipvs_table()? {
            for s in &svcs {
                let key = parse_service_key_text(s).map_err(|e| {
                    Error::Runtime(anyhow::anyhow!("the journal names a bad service: {e}"))
                })?;
                if let Some(e) = table.get(&key) {
                    steps.push(Step::Ipvs(Change::DelService {
                        service: e.service.clone(),
                        dests: e.dests.clone(),
                    }));
                }
            }
        }
    }
    for t in &tables {
        let Some((family, name)) = split_table(t) else {
            continue;
        };
        if let Some(saved) = nft::list_table_text(family, name)? {
            steps.push(Step::NftTable(TableStep {
                family: family.to_string(),
                name: name.to_string(),
                saved,
                delete: true,
            }));
        }
    }
    Ok(steps)
}

/// Verification of [`removals`]: what is still there.
pub fn still_present(x: &mut SysExec<'_>, steps: &[Step]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut table: Option<Option<Table>> = None;
    for s in steps {
        match s {
            Step::NftTable(t) => match nft::table_exists(&t.family, &t.name) {
                Ok(false) => {}
                Ok(true) => problems.push(format!("table {} {} still present", t.family, t.name)),
                Err(e) => problems.push(format!("listing table {}: {e}", t.name)),
            },
            Step::Ipvs(c) => {
                if table.is_none() {
                    table = Some(x.ipvs_table().unwrap_or(None));
                }
                if let Some(Some(t)) = &table {
                    if t.get(&c.key()).is_some() {
                        problems.push(format!("IPVS service {} still present", c.key()));
                    }
                }
            }
            Step::Host(_) => {}
        }
    }
    problems
}

/// Change the ownership records with `f` and save them when they changed; the caller holds
/// the journal lock. Owners left with nothing are dropped.
pub fn update(journal: &Journal, f: impl FnOnce(&mut BTreeMap<String, LbOwned>)) -> Result<()> {
    let mut state = journal.load()?;
    let before = state.lb.clone();
    f(&mut state.lb);
    state.lb.retain(|_, o| !o.is_empty());
    if state.lb == before {
        return Ok(());
    }
    journal.save(&state)
}

/// [`update`] under the journal lock (for a daemon, which does not hold it).
pub fn update_locked(
    journal: &Journal,
    f: impl FnOnce(&mut BTreeMap<String, LbOwned>),
) -> Result<()> {
    let _lock = journal.lock()?;
    update(journal, f)
}

/// Record that `owner` owns these objects too (before creating them).
pub fn record(
    journal: &Journal,
    owner: &str,
    tables: &[String],
    services: &[ServiceKey],
) -> Result<()> {
    update_locked(journal, |lb| {
        let e = lb.entry(owner.to_string()).or_default();
        e.nft_tables.extend(tables.iter().cloned());
        e.ipvs_services
            .extend(services.iter().map(|k| k.to_string()));
    })
}

/// Set the IPVS services `owner` owns (its tables are kept).
pub fn set_services(
    journal: &Journal,
    owner: &str,
    services: impl IntoIterator<Item = ServiceKey>,
) -> Result<()> {
    let want: BTreeSet<String> = services.into_iter().map(|k| k.to_string()).collect();
    update_locked(journal, |lb| {
        lb.entry(owner.to_string()).or_default().ipvs_services = want;
    })
}

/// Forget that `owner` owns anything (its objects were removed).
pub fn forget_owner(journal: &Journal, owner: &str) -> Result<()> {
    update_locked(journal, |lb| {
        lb.remove(owner);
    })
}

/// Forget these IPVS services, whoever owned them (they are gone).
pub fn forget_services(lb: &mut BTreeMap<String, LbOwned>, keys: &BTreeSet<String>) {
    for o in lb.values_mut() {
        o.ipvs_services.retain(|k| !keys.contains(k));
    }
}

/// The IPVS services `owner` owns, as keys (unparsable entries are skipped).
pub fn services_of(state: &State, owner: &str) -> Vec<ServiceKey> {
    state
        .lb
        .get(owner)
        .into_iter()
        .flat_map(|o| &o.ipvs_services)
        .filter_map(|s| parse_service_key_text(s).ok())
        .collect()
}

/// Who owns the IPVS service `key`, if anyone.
pub fn service_owner<'a>(state: &'a State, key: &ServiceKey) -> Option<&'a str> {
    let k = key.to_string();
    state
        .lb
        .iter()
        .find(|(_, o)| o.ipvs_services.contains(&k))
        .map(|(n, _)| n.as_str())
}

/// What a balancer object looks like now, for `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Present,
    Missing,
    /// It could not be looked at (e.g. no IPVS in this kernel, nft missing).
    Unknown(String),
}

/// Observe every recorded balancer object: (owner, kind, name, seen).
pub fn observe(state: &State) -> Vec<(String, &'static str, String, Seen)> {
    let mut out = Vec::new();
    let want_ipvs = state.lb.values().any(|o| !o.ipvs_services.is_empty());
    let table = if want_ipvs { Some(ipvs_table()) } else { None };
    for (owner, o) in &state.lb {
        for s in &o.ipvs_services {
            let seen = match (&table, parse_service_key_text(s)) {
                (_, Err(e)) => Seen::Unknown(e),
                (Some(Ok(Some(t))), Ok(k)) => {
                    if t.get(&k).is_some() {
                        Seen::Present
                    } else {
                        Seen::Missing
                    }
                }
                (Some(Ok(None)), _) => Seen::Missing,
                (Some(Err(e)), _) => Seen::Unknown(e.to_string()),
                (None, _) => Seen::Unknown("not observed".into()),
            };
            out.push((owner.clone(), "ipvs_service", s.clone(), seen));
        }
        for t in &o.nft_tables {
            let seen = match split_table(t).map(|(f, n)| nft::table_exists(f, n)) {
                Some(Ok(true)) => Seen::Present,
                Some(Ok(false)) => Seen::Missing,
                Some(Err(e)) => Seen::Unknown(e.to_string()),
                None => Seen::Unknown(format!("bad table name {t}")),
            };
            out.push((owner.clone(), "nft_table", t.clone(), seen));
        }
    }
    out
}
