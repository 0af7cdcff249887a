//! Diff desired against observed state into an ordered list of typed changes.
//!
//! Every [`Change`] renders as the command a sysadmin would type (`ip addr add …`, `nft …`,
//! `sysctl -w …`), which gives `--dry-run` and `plan` output for free, and every change has an
//! exact inverse, which gives rollback. Pure: unit-tested without root.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use crate::model::{AddrObj, Desired, RouteObj, RuleObj, SysctlKey, ARP_TABLE, LBCTL_PROTO};

/// The nft ARP table's contents: VIP → real IP. `None` means no table.
pub type ArpMap = BTreeMap<Ipv4Addr, Ipv4Addr>;

/// One change to the system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    AddrAdd(AddrObj),
    AddrDel(AddrObj),
    RuleAdd(RuleObj),
    RuleDel(RuleObj),
    RouteAdd(RouteObj),
    RouteDel(RouteObj),
    Sysctl {
        key: SysctlKey,
        from: String,
        to: String,
    },
    /// Change lbctl's `arp` table atomically (one nf_tables transaction: [`ArpOps`]).
    ArpTable {
        from: Option<ArpMap>,
        to: Option<ArpMap>,
        /// The existing table was modified outside lbctl and is rebuilt from scratch.
        #[serde(default)]
        rebuild: bool,
    },
}

impl Change {
    /// The change that undoes this one.
    pub fn inverse(&self) -> Change {
        match self {
            Change::AddrAdd(a) => Change::AddrDel(a.clone()),
            Change::AddrDel(a) => Change::AddrAdd(a.clone()),
            Change::RuleAdd(r) => Change::RuleDel(r.clone()),
            Change::RuleDel(r) => Change::RuleAdd(r.clone()),
            Change::RouteAdd(r) => Change::RouteDel(r.clone()),
            Change::RouteDel(r) => Change::RouteAdd(r.clone()),
            Change::Sysctl { key, from, to } => Change::Sysctl {
                key: key.clone(),
                from: to.clone(),
                to: from.clone(),
            },
            Change::ArpTable { from, to, rebuild } => Change::ArpTable {
                from: to.clone(),
                to: from.clone(),
                rebuild: *rebuild,
            },
        }
    }

    /// The equivalent shell commands, one per line.
    pub fn commands(&self) -> Vec<String> {
        fn v6(ip: &IpAddr) -> &'static str {
            if ip.is_ipv6() {
                "-6 "
            } else {
                ""
            }
        }
        match self {
            // lbctl marks the address proto 76 through netlink (IFA_PROTO); the printed line
            // leaves it out because iproute2 < 6.3 (Debian 12 has 6.1) rejects `proto` here.
            Change::AddrAdd(a) => vec![format!(
                "ip {}addr add {}/{} dev {}{}",
                v6(&a.addr),
                a.addr,
                a.prefix,
                a.dev,
                match (a.addr.is_ipv6(), a.dev == "lo") {
                    (true, true) => " nodad",
                    (true, false) => " nodad preferred_lft 0",
                    (false, _) => "",
                },
            )],
            Change::AddrDel(a) => vec![format!(
                "ip {}addr del {}/{} dev {}",
                v6(&a.addr),
                a.addr,
                a.prefix,
                a.dev
            )],
            Change::RuleAdd(r) => vec![format!(
                "ip {}rule add {r} protocol {LBCTL_PROTO}",
                v6(&r.from)
            )],
            Change::RuleDel(r) => vec![format!("ip {}rule del {r}", v6(&r.from))],
            Change::RouteAdd(r) => vec![format!(
                "ip {}route add {r} proto {LBCTL_PROTO}",
                v6(&r.dst.addr())
            )],
            Change::RouteDel(r) => vec![format!("ip {}route del {r}", v6(&r.dst.addr()))],
            Change::Sysctl { key, to, .. } => vec![format!("sysctl -w {key}={to}")],
            Change::ArpTable { from, to, rebuild } => {
                ArpOps::new(from.as_ref(), to.as_ref(), *rebuild).commands()
            }
        }
    }

    /// Short past-tense description for logs ("added 198.18.0.100/32 dev lo").
    pub fn describe(&self) -> String {
        match self {
            Change::AddrAdd(a) => format!("address {a} added"),
            Change::AddrDel(a) => format!("address {a} deleted"),
            Change::RuleAdd(r) => format!("rule {r} added"),
            Change::RuleDel(r) => format!("rule {r} deleted"),
            Change::RouteAdd(r) => format!("route {r} added"),
            Change::RouteDel(r) => format!("route {r} deleted"),
            Change::Sysctl { key, from, to } => format!("{key}: {from} -> {to}"),
            Change::ArpTable { to: None, .. } => format!("nft table arp {ARP_TABLE} deleted"),
            Change::ArpTable { to: Some(m), .. } => {
                format!(
                    "nft table arp {ARP_TABLE} now suppresses {} VIP(s)",
                    m.len()
                )
            }
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.commands().join("\n"))
    }
}

/// nft commands that turn table contents `from` into `to`.
/// A change of lbctl's arp table as steps: printed as the nft commands a sysadmin would type
/// ([`ArpOps::commands`]) and committed as one nf_tables transaction by `sys::arptable`, so
/// what is shown is what is done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArpOps {
    /// `nft delete table arp lbctl` first: the table goes, or is rebuilt because it was
    /// changed behind lbctl's back.
    pub delete_table: bool,
    /// `nft add table arp lbctl` with its two sets, two chains and two rules.
    pub create_table: bool,
    /// `nft delete element … vips { … }`: VIPs no longer suppressed.
    pub del_vips: Vec<Ipv4Addr>,
    /// `nft delete element … vip_rip { … }`: VIPs whose sender address goes or changes.
    pub del_pairs: Vec<Ipv4Addr>,
    /// `nft add element … vips { … }`.
    pub add_vips: Vec<Ipv4Addr>,
    /// `nft add element … vip_rip { VIP : RIP, … }`.
    pub add_pairs: Vec<(Ipv4Addr, Ipv4Addr)>,
}

impl ArpOps {
    /// The steps that turn the table holding `from` (None: absent) into one holding `to` (None:
    /// removed); `rebuild`: the existing table was modified outside lbctl and is made anew.
    pub fn new(from: Option<&ArpMap>, to: Option<&ArpMap>, rebuild: bool) -> ArpOps {
        let mut ops = ArpOps::default();
        // Same contents but the table was tampered with: it is rebuilt from scratch.
        let rebuild = rebuild && from.is_some() && to.is_some();
        let from = if rebuild { None } else { from };
        ops.delete_table = rebuild || (from.is_some() && to.is_none());
        let Some(to) = to else {
            return ops;
        };
        ops.create_table = from.is_none();
        let empty = ArpMap::new();
        let from = from.unwrap_or(&empty);
        for (v, r) in from {
            if to.get(v) != Some(r) {
                if !to.contains_key(v) {
                    ops.del_vips.push(*v);
                }
                ops.del_pairs.push(*v);
            }
        }
        for (v, r) in to {
            if from.get(v) != Some(r) {
                if !from.contains_key(v) {
                    ops.add_vips.push(*v);
                }
                ops.add_pairs.push((*v, *r));
            }
        }
        ops
    }

    /// The nft commands, one per line.
    pub fn commands(&self) -> Vec<String> {
        let t = format!("arp {ARP_TABLE}");
        let mut out = Vec::new();
        if self.delete_table {
            out.push(format!("nft delete table {t}"));
        }
        if self.create_table {
            out.push(format!("nft add table {t}"));
            out.push(format!("nft add set {t} vips '{{ type ipv4_addr; }}'"));
            out.push(format!(
                "nft add map {t} vip_rip '{{ type ipv4_addr : ipv4_addr; }}'"
            ));
            out.push(format!(
                "nft add chain {t} input '{{ type filter hook input priority filter; policy accept; }}'"
            ));
            out.push(format!(
                "nft add rule {t} input arp operation request arp daddr ip @vips counter drop"
            ));
            out.push(format!(
                "nft add chain {t} output '{{ type filter hook output priority filter; policy accept; }}'"
            ));
            out.push(format!(
                "nft add rule {t} output arp saddr ip @vips counter arp saddr ip set arp saddr ip map @vip_rip"
            ));
        }
        let list = |v: &[String]| v.join(", ");
        let ips = |v: &[Ipv4Addr]| list(&v.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        if !self.del_vips.is_empty() {
            out.push(format!(
                "nft delete element {t} vips {{ {} }}",
                ips(&self.del_vips)
            ));
        }
        if !self.del_pairs.is_empty() {
            out.push(format!(
                "nft delete element {t} vip_rip {{ {} }}",
                ips(&self.del_pairs)
            ));
        }
        if !self.add_vips.is_empty() {
            out.push(format!(
                "nft add element {t} vips {{ {} }}",
                ips(&self.add_vips)
            ));
        }
        if !self.add_pairs.is_empty() {
            let pairs: Vec<String> = self
                .add_pairs
                .iter()
                .map(|(v, r)| format!("{v} : {r}"))
                .collect();
            out.push(format!(
                "nft add element {t} vip_rip {{ {} }}",
                list(&pairs)
            ));
        }
        out
    }
}

/// What lbctl has created and must clean up (persisted in the journal).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Owned {
    #[serde(default)]
    pub addrs: BTreeSet<AddrObj>,
    #[serde(default)]
    pub rules: BTreeSet<RuleObj>,
    #[serde(default)]
    pub routes: BTreeSet<RouteObj>,
    /// Sysctl values as they were before lbctl first changed them.
    #[serde(default)]
    pub sysctl_prior: BTreeMap<SysctlKey, String>,
    /// Addresses to delete although they lack lbctl's mark (`vip del --force`); never stored.
    #[serde(skip)]
    pub force_delete: BTreeSet<AddrObj>,
}

/// The kernel state relevant to lbctl, as observed.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Every address, with whether it carries lbctl's protocol mark.
    pub addrs: BTreeMap<AddrObj, bool>,
    /// Every rule that is a plain `from PREFIX lookup T` (others are irrelevant to lbctl).
    pub rules: BTreeMap<RuleObj, bool>,
    /// Every table referenced by any rule (including rules lbctl cannot model).
    pub rule_tables: BTreeSet<u32>,
    /// Routes in non-main, non-local tables, with the lbctl mark.
    pub routes: BTreeMap<RouteObj, bool>,
    /// Current values of the sysctl keys lbctl wants or owns (missing key = interface gone).
    pub sysctls: BTreeMap<SysctlKey, Option<String>>,
    /// lbctl's arp table contents; `None` = no table.
    pub arp: Option<ArpMap>,
    /// The arp table has exactly the chains and rules lbctl builds (false: tampered with).
    pub arp_intact: bool,
}

/// A computed plan: the changes, in application order, and the ownership record after it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub owned_after: Owned,
    /// Things worth telling the user that are not changes (e.g. a foreign VIP left alone).
    pub notes: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// All command lines of the plan.
    pub fn commands(&self) -> Vec<String> {
        self.changes.iter().flat_map(|c| c.commands()).collect()
    }
}

/// Compute the plan that takes `observed` to `desired`, touching only what `owned` says lbctl
/// created (plus what it now creates). Order: removals of addresses, rules, routes (reverse
/// dependency order); then sysctls and the ARP table (suppression in place before any VIP is
/// added, and lifted only after VIPs are gone); then routes, rules, and finally addresses.
pub fn diff(desired: &Desired, observed: &Observed, owned: &Owned) -> Plan {
    let mut plan = Plan {
        owned_after: owned.clone(),
        ..Plan::default()
    };
    plan.owned_after.force_delete.clear();
    let mut removals = Vec::new();
    let mut additions = Vec::new();

    // Addresses.
    for a in &owned.addrs {
        if !desired.addrs.contains(a) {
            match observed.addrs.get(a) {
                Some(true) => removals.push(Change::AddrDel(a.clone())),
                Some(false) if owned.force_delete.contains(a) => {
                    removals.push(Change::AddrDel(a.clone()))
                }
                // Deleted and re-created without lbctl's mark (by hand, by another tool):
                // it is not lbctl's any more. RTM_DELADDR cannot match on the protocol the
                // way rule and route deletions do, so the check is made here.
                Some(false) => plan.notes.push(format!(
                    "{a} was re-created without lbctl's mark (proto 76): left alone"
                )),
                None => {}
            }
            plan.owned_after.addrs.remove(a);
        }
    }
    for a in &desired.addrs {
        match observed.addrs.get(a) {
            None => {
                additions.push(Change::AddrAdd(a.clone()));
                plan.owned_after.addrs.insert(a.clone());
            }
            // Carries our mark but the journal lost it (e.g. a run killed mid-way): adopt.
            Some(true) => {
                plan.owned_after.addrs.insert(a.clone());
            }
            Some(false) if !owned.addrs.contains(a) => plan.notes.push(format!(
                "{a} already present and not added by lbctl: left alone (not owned)"
            )),
            Some(false) => {}
        }
    }

    // Rules, then routes (a rule is removed before the routes of its table).
    for r in &owned.rules {
        if !desired.rules.contains(r) {
            if observed.rules.contains_key(r) {
                removals.push(Change::RuleDel(r.clone()));
            }
            plan.owned_after.rules.remove(r);
        }
    }
    for r in &owned.routes {
        if !desired.routes.contains(r) {
            if observed.routes.contains_key(r) {
                removals.push(Change::RouteDel(r.clone()));
            }
            plan.owned_after.routes.remove(r);
        }
    }
    let mut route_adds = Vec::new();
    for r in &desired.routes {
        match observed.routes.get(r) {
            None => {
                route_adds.push(Change::RouteAdd(r.clone()));
                plan.owned_after.routes.insert(r.clone());
            }
            Some(true) => {
                plan.owned_after.routes.insert(r.clone());
            }
            Some(false) => {}
        }
    }
    // Connected routes before the default route (the kernel wants the gateway reachable).
    route_adds.sort_by_key(|c| matches!(c, Change::RouteAdd(r) if r.is_default()));
    additions.extend(route_adds);
    for r in &desired.rules {
        match observed.rules.get(r) {
            None => {
                additions.push(Change::RuleAdd(r.clone()));
                plan.owned_after.rules.insert(r.clone());
            }
            Some(true) => {
                plan.owned_after.rules.insert(r.clone());
            }
            Some(false) => {}
        }
    }
    // Addresses last among additions: ARP suppression must already be in place.
    let addr_adds: Vec<Change> = additions
        .iter()
        .filter(|c| matches!(c, Change::AddrAdd(_)))
        .cloned()
        .collect();
    additions.retain(|c| !matches!(c, Change::AddrAdd(_)));

    // Sysctls: desired values, and restoration of ones no longer desired.
    let mut middle = Vec::new();
    for (key, want) in &desired.sysctls {
        if let Some(Some(cur)) = observed.sysctls.get(key) {
            if cur != want {
                middle.push(Change::Sysctl {
                    key: key.clone(),
                    from: cur.clone(),
                    to: want.clone(),
                });
                plan.owned_after
                    .sysctl_prior
                    .entry(key.clone())
                    .or_insert_with(|| cur.clone());
            }
        }
    }
    for (key, prior) in &owned.sysctl_prior {
        if desired.sysctls.contains_key(key) {
            continue;
        }
        if let Some(Some(cur)) = observed.sysctls.get(key) {
            if cur != prior {
                middle.push(Change::Sysctl {
                    key: key.clone(),
                    from: cur.clone(),
                    to: prior.clone(),
                });
            }
        }
        plan.owned_after.sysctl_prior.remove(key);
    }

    // The ARP table.
    let want_arp = (!desired.arp.is_empty()).then(|| desired.arp.clone());
    if want_arp != observed.arp || (want_arp.is_some() && !observed.arp_intact) {
        middle.push(Change::ArpTable {
            rebuild: observed.arp.is_some() && !observed.arp_intact,
            from: observed.arp.clone(),
            to: want_arp,
        });
    }

    plan.changes = removals;
    plan.changes.extend(middle);
    plan.changes.extend(additions);
    plan.changes.extend(addr_adds);
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{expand, Intent, PolicyRoute, Vip};

    fn vip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn conn(_: &str, _: bool) -> Vec<ipnet::IpNet> {
        vec!["198.18.0.0/24".parse().unwrap()]
    }

    fn intent() -> Intent {
        let mut i = Intent::default();
        i.vips.insert(Vip {
            addr: vip("198.18.0.100"),
            dev: "lo".parse().unwrap(),
        });
        i.arp_nft.insert(
            "198.18.0.100".parse().unwrap(),
            "198.18.0.11".parse().unwrap(),
        );
        i.routes.insert(PolicyRoute {
            vip: vip("198.18.0.100"),
            table: 200,
            via: vip("198.18.0.1"),
            dev: "eth0".parse().unwrap(),
            priority: 100,
        });
        i.sysctls
            .insert(SysctlKey::ipv4_conf("eth0", "rp_filter"), "2".to_string());
        i
    }

    /// Simulate applying a plan to an observed state.
    fn apply(obs: &mut Observed, plan: &Plan) {
        for c in &plan.changes {
            match c {
                Change::AddrAdd(a) => {
                    obs.addrs.insert(a.clone(), true);
                }
                Change::AddrDel(a) => {
                    obs.addrs.remove(a);
                }
                Change::RuleAdd(r) => {
                    obs.rules.insert(r.clone(), true);
                }
                Change::RuleDel(r) => {
                    obs.rules.remove(r);
                }
                Change::RouteAdd(r) => {
                    obs.routes.insert(r.clone(), true);
                }
                Change::RouteDel(r) => {
                    obs.routes.remove(r);
                }
                Change::Sysctl { key, to, .. } => {
                    obs.sysctls.insert(key.clone(), Some(to.clone()));
                }
                Change::ArpTable { to, .. } => obs.arp = to.clone(),
            }
        }
    }

    fn observed() -> Observed {
        let mut o = Observed {
            arp_intact: true,
            ..Observed::default()
        };
        o.sysctls
            .insert(SysctlKey::ipv4_conf("eth0", "rp_filter"), Some("1".into()));
        o
    }

    #[test]
    fn converge_then_empty_then_down_restores() {
        let i = intent();
        let d = expand([("cli", &i)], &conn).unwrap();
        let mut obs = observed();
        let before = obs.sysctls.clone();
        let p = diff(&d, &obs, &Owned::default());
        let cmds = p.commands();
        // ARP suppression is in place before the VIP; routes before the rule.
        let pos = |needle: &str| cmds.iter().position(|c| c.contains(needle)).unwrap();
        assert!(pos("nft add table arp lbctl") < pos("ip addr add 198.18.0.100/32 dev lo"));
        assert!(pos("ip route add 198.18.0.0/24") < pos("ip route add default"));
        assert!(pos("ip route add default") < pos("ip rule add"));
        apply(&mut obs, &p);
        let owned = p.owned_after.clone();
        assert_eq!(owned.sysctl_prior.values().next().unwrap(), "1");

        // Idempotent: nothing left to do.
        let p2 = diff(&d, &obs, &owned);
        assert!(p2.is_empty(), "{:?}", p2.changes);

        // Down: everything removed, sysctl restored, ownership empty.
        let p3 = diff(&Desired::default(), &obs, &owned);
        let cmds = p3.commands();
        let pos = |needle: &str| cmds.iter().position(|c| c.contains(needle)).unwrap();
        assert!(pos("ip addr del") < pos("nft delete table"));
        apply(&mut obs, &p3);
        assert_eq!(p3.owned_after, Owned::default());
        assert!(obs.addrs.is_empty() && obs.rules.is_empty() && obs.routes.is_empty());
        assert_eq!(obs.sysctls, before);
        assert_eq!(obs.arp, None);
    }

    #[test]
    fn foreign_objects_are_never_taken_over() {
        let i = intent();
        let d = expand([("cli", &i)], &conn).unwrap();
        let mut obs = observed();
        let foreign = AddrObj {
            dev: "lo".parse().unwrap(),
            addr: vip("198.18.0.100"),
            prefix: 32,
        };
        obs.addrs.insert(foreign.clone(), false);
        let p = diff(&d, &obs, &Owned::default());
        assert!(!p.changes.iter().any(|c| matches!(c, Change::AddrAdd(_))));
        assert!(!p.owned_after.addrs.contains(&foreign));
        assert_eq!(p.notes.len(), 1);
        // And `down` leaves it there.
        apply(&mut obs, &p);
        let p3 = diff(&Desired::default(), &obs, &p.owned_after);
        assert!(!p3.changes.contains(&Change::AddrDel(foreign)));
    }

    #[test]
    fn marked_objects_are_adopted_after_a_lost_journal() {
        let i = intent();
        let d = expand([("cli", &i)], &conn).unwrap();
        let mut obs = observed();
        let a = d.addrs.iter().next().unwrap().clone();
        obs.addrs.insert(a.clone(), true);
        let p = diff(&d, &obs, &Owned::default());
        assert!(p.owned_after.addrs.contains(&a));
    }

    #[test]
    fn inverse_is_an_involution_and_renders() {
        let i = intent();
        let d = expand([("cli", &i)], &conn).unwrap();
        let p = diff(&d, &observed(), &Owned::default());
        for c in &p.changes {
            assert_eq!(&c.inverse().inverse(), c);
            assert!(!c.commands().is_empty());
        }
        let arp = p
            .changes
            .iter()
            .find(|c| matches!(c, Change::ArpTable { .. }))
            .unwrap();
        assert!(arp
            .to_string()
            .contains("nft add element arp lbctl vip_rip { 198.18.0.100 : 198.18.0.11 }"));
        assert_eq!(
            arp.inverse().commands(),
            vec!["nft delete table arp lbctl".to_string()]
        );
    }

    #[test]
    fn shared_route_survives_removal_of_one_user() {
        let mut i = intent();
        i.routes.insert(PolicyRoute {
            vip: vip("198.18.0.101"),
            table: 200,
            via: vip("198.18.0.1"),
            dev: "eth0".parse().unwrap(),
            priority: 100,
        });
        let d = expand([("cli", &i)], &conn).unwrap();
        let mut obs = observed();
        let p = diff(&d, &obs, &Owned::default());
        apply(&mut obs, &p);
        i.routes.retain(|r| r.vip != vip("198.18.0.101"));
        let d2 = expand([("cli", &i)], &conn).unwrap();
        let p2 = diff(&d2, &obs, &p.owned_after);
        assert_eq!(p2.changes.len(), 1, "{:?}", p2.changes);
        assert!(matches!(&p2.changes[0], Change::RuleDel(r) if r.from == vip("198.18.0.101")));
    }
}
