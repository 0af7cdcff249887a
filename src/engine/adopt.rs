//! Recovery when the journal is lost (deleted, emptied, corrupt): lbctl's own objects carry its
//! marks — protocol 76 on addresses, rules and routes, its nft table names, and the sysctl
//! values it replaced kept in a small backup beside the journal — so ownership can be rebuilt
//! from what the kernel shows. `lbctl adopt` records them under the owner `adopted` (with the
//! intent that keeps them as they are, so `status` is in sync), and `down --all` adopts before
//! removing, so "everything lbctl owns" stays true without a journal.

use std::collections::{BTreeMap, BTreeSet};

use crate::journal::{LbOwned, State};
use crate::model::{AddrObj, PolicyRoute, RouteObj, RuleObj, SysctlKey, Vip};
use crate::plan::{ArpMap, Observed};

/// The owner adopted objects are recorded under.
pub const ADOPTED: &str = "adopted";

/// lbctl-marked objects the journal does not know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Orphans {
    pub addrs: Vec<AddrObj>,
    /// Policy routing rebuilt from a marked rule and the marked default route of its table.
    pub policy: Vec<PolicyRoute>,
    /// Marked rules and routes (those of the policy routes above included).
    pub rules: Vec<RuleObj>,
    pub routes: Vec<RouteObj>,
    /// Entries of `table arp lbctl` no intent wants.
    pub arp: ArpMap,
    /// nft tables named like lbctl's (`FAMILY NAME`) no owner records.
    pub tables: Vec<String>,
    /// Prior sysctl values from the backup the journal no longer has, with the current value.
    pub sysctls: BTreeMap<SysctlKey, (String, String)>,
}

impl Orphans {
    pub fn is_empty(&self) -> bool {
        self == &Orphans::default()
    }

    /// One line per object, for the report.
    pub fn lines(&self) -> Vec<String> {
        let mut v: Vec<String> = self.addrs.iter().map(|a| format!("address {a}")).collect();
        v.extend(self.policy.iter().map(|p| {
            format!(
                "policy route from {} table {} via {} dev {} priority {}",
                p.vip, p.table, p.via, p.dev, p.priority
            )
        }));
        let in_policy = |table: u32| self.policy.iter().any(|p| p.table == table);
        v.extend(
            self.rules
                .iter()
                .filter(|r| !in_policy(r.table))
                .map(|r| format!("rule {r}")),
        );
        v.extend(
            self.routes
                .iter()
                .filter(|r| !in_policy(r.table))
                .map(|r| format!("route {r}")),
        );
        v.extend(
            self.arp
                .iter()
                .map(|(vip, rip)| format!("arp suppression {vip} (sender {rip})")),
        );
        v.extend(self.tables.iter().map(|t| format!("nft table {t}")));
        v.extend(
            self.sysctls
                .iter()
                .map(|(k, (prior, now))| format!("sysctl {k}={now} (was {prior})")),
        );
        v
    }
}

/// What in `observed` carries lbctl's marks but is not in `state`. `tables` are the lbctl-named
/// nft tables present (`netdev lbctl_lb_web`); `backup` the prior sysctl values saved beside
/// the journal; `current` reads a sysctl's value now.
pub fn orphans(
    state: &State,
    observed: &Observed,
    desired_arp: &ArpMap,
    tables: &[String],
    backup: &BTreeMap<SysctlKey, String>,
    current: &dyn Fn(&SysctlKey) -> Option<String>,
) -> Orphans {
    let owned = &state.owned;
    let mut o = Orphans {
        addrs: observed
            .addrs
            .iter()
            .filter(|(a, marked)| **marked && !owned.addrs.contains(*a))
            .map(|(a, _)| a.clone())
            .collect(),
        ..Orphans::default()
    };
    let rules: Vec<&RuleObj> = observed
        .rules
        .iter()
        .filter(|(r, marked)| **marked && !owned.rules.contains(*r))
        .map(|(r, _)| r)
        .collect();
    let routes: BTreeSet<&RouteObj> = observed
        .routes
        .iter()
        .filter(|(r, marked)| **marked && !owned.routes.contains(*r))
        .map(|(r, _)| r)
        .collect();
    for r in &rules {
        let default = routes
            .iter()
            .find(|x| {
                x.table == r.table
                    && x.is_default()
                    && x.via.is_some()
                    && x.dst.addr().is_ipv4() == r.from.is_ipv4()
            })
            .copied();
        let host = r.from_len == if r.from.is_ipv4() { 32 } else { 128 };
        if let (Some(d), Some(via), true) = (default, default.and_then(|d| d.via), host) {
            o.policy.push(PolicyRoute {
                vip: r.from,
                table: r.table,
                via,
                dev: d.dev,
                priority: r.priority,
            });
        }
    }
    // Ownership of every marked rule and route (a policy route's too: `down` deletes what is
    // owned and not wanted).
    o.rules = rules.into_iter().cloned().collect();
    o.routes = routes.into_iter().cloned().collect();
    if let Some(arp) = &observed.arp {
        o.arp = arp
            .iter()
            .filter(|(vip, _)| !desired_arp.contains_key(*vip))
            .map(|(v, r)| (*v, *r))
            .collect();
    }
    let known: BTreeSet<&String> = state.lb.values().flat_map(|x| &x.nft_tables).collect();
    o.tables = tables
        .iter()
        .filter(|t| !known.contains(t))
        .cloned()
        .collect();
    for (k, prior) in backup {
        if !owned.sysctl_prior.contains_key(k) {
            if let Some(now) = current(k) {
                o.sysctls.insert(k.clone(), (prior.clone(), now));
            }
        }
    }
    o
}

/// lbctl-named nft tables present now (`netdev lbctl_lb_web`).
pub fn lbctl_tables() -> crate::error::Result<Vec<String>> {
    // Without nft(8) there is no table lbctl could have made.
    if crate::sys::netns::find_tool("nft").is_none() {
        return Ok(Vec::new());
    }
    let Some(doc) = crate::sys::nft::list_json(&["tables", "netdev"])? else {
        return Ok(Vec::new());
    };
    Ok(doc
        .get("nftables")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|o| o.get("table")?.get("name")?.as_str())
        .filter(|n| n.starts_with("lbctl_lb_"))
        .map(|n| format!("netdev {n}"))
        .collect())
}

/// Find and adopt, inside a converge's `mutate` (which hands over the snapshot): what carries
/// lbctl's marks is recorded in `state` under [`ADOPTED`]. Returns what was found.
pub fn recover(
    state: &mut State,
    snap: &crate::engine::Snapshot,
    tables: &[String],
    backup: &BTreeMap<SysctlKey, String>,
) -> crate::error::Result<Orphans> {
    let desired = crate::engine::desired_of(state, &snap.routes)?;
    let o = orphans(state, &snap.observed, &desired.arp, tables, backup, &|k| {
        crate::sys::sysctl::read(k).ok().flatten()
    });
    adopt_into(state, &o);
    Ok(o)
}

/// Record `o` in `state` under [`ADOPTED`]: ownership, and the intent that keeps each object
/// as it is now.
pub fn adopt_into(state: &mut State, o: &Orphans) {
    let mut intent = state.intents.remove(ADOPTED).unwrap_or_default();
    for a in &o.addrs {
        intent.vips.insert(Vip {
            addr: a.addr,
            dev: a.dev,
        });
        state.owned.addrs.insert(a.clone());
    }
    for p in &o.policy {
        intent.routes.insert(p.clone());
    }
    state.owned.rules.extend(o.rules.iter().cloned());
    state.owned.routes.extend(o.routes.iter().cloned());
    for (vip, rip) in &o.arp {
        intent.arp_nft.insert(*vip, *rip);
    }
    for (k, (prior, now)) in &o.sysctls {
        state.owned.sysctl_prior.insert(k.clone(), prior.clone());
        intent.sysctls.insert(k.clone(), now.clone());
    }
    if !intent.is_empty() {
        state.intents.insert(ADOPTED.to_string(), intent);
    }
    if !o.tables.is_empty() {
        let lb: &mut LbOwned = state.lb.entry(ADOPTED.to_string()).or_default();
        lb.nft_tables.extend(o.tables.iter().cloned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str, dev: &str) -> AddrObj {
        let ip: std::net::IpAddr = s.parse().unwrap();
        AddrObj {
            dev: dev.parse().unwrap(),
            addr: ip,
            prefix: if ip.is_ipv4() { 32 } else { 128 },
        }
    }

    #[test]
    fn marked_objects_become_an_adopted_intent() {
        let mut obs = Observed::default();
        obs.addrs.insert(addr("198.18.0.100", "lo"), true);
        obs.addrs.insert(addr("198.18.0.200", "lo"), false); // foreign
        obs.addrs.insert(addr("198.18.0.11", "eth0"), false);
        let rule = RuleObj {
            priority: 100,
            from: "198.18.0.100".parse().unwrap(),
            from_len: 32,
            table: 100,
        };
        obs.rules.insert(rule.clone(), true);
        let default = RouteObj {
            table: 100,
            dst: "0.0.0.0/0".parse().unwrap(),
            via: Some("198.18.0.1".parse().unwrap()),
            dev: "eth0".parse().unwrap(),
        };
        obs.routes.insert(default, true);
        obs.routes.insert(
            RouteObj {
                table: 100,
                dst: "198.18.0.0/24".parse().unwrap(),
                via: None,
                dev: "eth0".parse().unwrap(),
            },
            true,
        );
        obs.arp = Some(
            [(
                "198.18.0.100".parse().unwrap(),
                "198.18.0.11".parse().unwrap(),
            )]
            .into(),
        );
        let key = SysctlKey::ipv4_conf("eth0", "rp_filter");
        let backup = BTreeMap::from([(key.clone(), "1".to_string())]);
        let state = State::default();
        let o = orphans(
            &state,
            &obs,
            &ArpMap::new(),
            &["netdev lbctl_lb_web".to_string()],
            &backup,
            &|_| Some("2".into()),
        );
        assert_eq!(o.addrs, vec![addr("198.18.0.100", "lo")]);
        assert_eq!(o.policy.len(), 1, "{o:#?}");
        assert_eq!((o.rules.len(), o.routes.len()), (1, 2), "{o:#?}");
        assert_eq!(o.lines().len(), 5, "{:#?}", o.lines());
        let mut s = State::default();
        adopt_into(&mut s, &o);
        let i = &s.intents[ADOPTED];
        assert_eq!(i.vips.len(), 1);
        assert_eq!(
            i.routes.iter().next().unwrap().via.to_string(),
            "198.18.0.1"
        );
        assert_eq!(i.arp_nft.len(), 1);
        assert_eq!(i.sysctls[&key], "2");
        assert_eq!(s.owned.sysctl_prior[&key], "1");
        assert!(s.lb[ADOPTED].nft_tables.contains("netdev lbctl_lb_web"));
        // Adopted once, nothing is left to adopt.
        let again = orphans(
            &s,
            &obs,
            &i.arp_nft,
            &["netdev lbctl_lb_web".into()],
            &backup,
            &|_| Some("2".into()),
        );
        assert!(again.addrs.is_empty() && again.arp.is_empty() && again.tables.is_empty());
        assert!(again.sysctls.is_empty());
    }
}
