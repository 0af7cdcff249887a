//! The steps of lbctl's transactions: every kind of object lbctl owns, in one type, so one
//! transaction can remove a balancer's IPVS services and nft table together with the backend
//! addresses, rules, routes and sysctls (`down --all`), and roll all of it back together.
//!
//! Each step prints as the command a sysadmin would type (`ip …`, `nft …`, `sysctl -w …`,
//! `ipvsadm …`) and knows its inverse; [`SysExec`] performs steps on this namespace's kernel.

use std::fmt;

use crate::error::{Error, Result};
use crate::ipvs::{self, Client};
use crate::plan;
use crate::sys::netlink::AddrOp;
use crate::sys::{arptable, nft, sysctl, Sys};
use crate::txn::{Executor, Step as TxnStep};

/// One change to any object lbctl owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A backend object: address, rule, route, sysctl, the `arp lbctl` table.
    Host(plan::Change),
    /// An IPVS service or destination.
    Ipvs(ipvs::plan::Change),
    /// A whole nft table lbctl owns (a balancer's `netdev lbctl_lb_NAME`).
    NftTable(TableStep),
}

/// Deleting or re-creating a whole nft table. The table's text (as `nft list table` prints it)
/// is kept so that the deletion can be undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableStep {
    /// `netdev`, `arp`, `inet`, …
    pub family: String,
    pub name: String,
    /// The table as `nft list table` printed it before the deletion.
    pub saved: String,
    /// true: delete it; false: load `saved`.
    pub delete: bool,
}

impl fmt::Display for TableStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.delete {
            write!(f, "nft delete table {} {}", self.family, self.name)
        } else {
            // A here-document: the line runs verbatim in sh.
            write!(f, "nft -f - <<'EOF'\n{}\nEOF", self.saved.trim_end())
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Host(c) => write!(f, "{c}"),
            Step::Ipvs(c) => write!(f, "{c}"),
            Step::NftTable(t) => write!(f, "{t}"),
        }
    }
}

impl TxnStep for Step {
    fn undo(&self) -> Vec<Step> {
        match self {
            Step::Host(c) => vec![Step::Host(c.inverse())],
            Step::Ipvs(c) => c.undo().into_iter().map(Step::Ipvs).collect(),
            Step::NftTable(t) => vec![Step::NftTable(TableStep {
                delete: !t.delete,
                ..t.clone()
            })],
        }
    }

    fn lines(&self) -> Vec<String> {
        match self {
            Step::Host(c) => c.commands(),
            Step::NftTable(t) if !t.delete => {
                vec![format!("nft -f (table {} {} as it was)", t.family, t.name)]
            }
            _ => vec![self.to_string()],
        }
    }
}

impl TxnStep for plan::Change {
    fn undo(&self) -> Vec<plan::Change> {
        vec![self.inverse()]
    }

    fn lines(&self) -> Vec<String> {
        self.commands()
    }
}

/// Map an IPVS error to lbctl's error (a permission problem keeps exit code 77).
pub fn ipvs_error(what: &str, e: ipvs::Error) -> Error {
    if matches!(e, ipvs::Error::Permission { .. }) {
        Error::Privilege(format!("{what}: {e}"))
    } else {
        Error::Runtime(anyhow::anyhow!("{what}: {e}"))
    }
}

/// Performs steps on this namespace's kernel. The IPVS client is opened on first use, so a
/// transaction without IPVS steps works on a kernel without IPVS.
pub struct SysExec<'a> {
    pub sys: &'a Sys,
    ipvs: Option<Client>,
}

impl<'a> SysExec<'a> {
    pub fn new(sys: &'a Sys) -> Self {
        SysExec { sys, ipvs: None }
    }

    /// The IPVS table now, or `None` where this kernel has no IPVS (then none of its services
    /// can exist). Opens the client if needed.
    pub fn ipvs_table(&mut self) -> Result<Option<ipvs::plan::Table>> {
        Self::ipvs_table_of(&mut self.ipvs)
    }

    /// [`SysExec::ipvs_table`] with `client` as the (lazily opened) client.
    pub(crate) fn ipvs_table_of(client: &mut Option<Client>) -> Result<Option<ipvs::plan::Table>> {
        if client.is_none() {
            match Client::open() {
                Ok(c) => *client = Some(c),
                Err(ipvs::Error::NoIpvs) => return Ok(None),
                Err(e) => return Err(ipvs_error("opening IPVS", e)),
            }
        }
        let c = client.as_mut().expect("opened above");
        let listing = c.services().map_err(|e| ipvs_error("listing IPVS", e))?;
        Ok(Some(ipvs::plan::Table::from_listing(&listing)))
    }

    /// The IPVS client (opened now if needed).
    pub fn ipvs(&mut self) -> Result<&mut Client> {
        if self.ipvs.is_none() {
            self.ipvs = Some(Client::open().map_err(|e| ipvs_error("opening IPVS", e))?);
        }
        Ok(self.ipvs.as_mut().expect("opened above"))
    }
}

/// Test hook: `LBCTL_TEST_STEP_DELAY_MS=N` sleeps N ms (at most 1 s) before each step, undo
/// steps included, so the namespace tests can interrupt a transaction part-way without racing.
fn step_delay() {
    if let Some(ms) = std::env::var("LBCTL_TEST_STEP_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms.min(1000)));
    }
}

/// Apply one backend change.
pub fn apply_host(sys: &Sys, c: &plan::Change) -> Result<()> {
    use plan::Change;
    match c {
        Change::AddrAdd(a) => sys.addr_add(a),
        Change::AddrDel(a) => sys.addr_del(a),
        Change::RuleAdd(r) => sys.rule_add(r),
        Change::RuleDel(r) => sys.rule_del(r),
        Change::RouteAdd(r) => sys.route_add(r),
        Change::RouteDel(r) => sys.route_del(r),
        Change::Sysctl { key, to, .. } => sysctl::write(key, to),
        Change::ArpTable { from, to, rebuild } => {
            arptable::apply(&plan::ArpOps::new(from.as_ref(), to.as_ref(), *rebuild))
        }
    }
}

/// The address change a step is, if it is one: those go in pipelined batches.
fn addr_op(s: &Step) -> Option<(AddrOp, &crate::model::AddrObj)> {
    match s {
        Step::Host(plan::Change::AddrAdd(a)) => Some((AddrOp::Add, a)),
        Step::Host(plan::Change::AddrDel(a)) => Some((AddrOp::Del, a)),
        _ => None,
    }
}

impl Executor<Step> for SysExec<'_> {
    type Error = Error;

    /// A run of address additions (or of deletions) is one batch: distinct addresses (a plan
    /// holds each once) do not depend on each other — a VIP is a host address (/32, /128), so
    /// none is another's primary, and no route lbctl makes depends on a VIP. Additions and
    /// deletions are never mixed, and a plan puts everything else (sysctls, the ARP table,
    /// routes, rules) between its deletions and its additions, so the order that matters is
    /// kept.
    fn batch_len(&self, steps: &[Step]) -> usize {
        let Some((first, _)) = steps.first().and_then(addr_op) else {
            return 1;
        };
        steps
            .iter()
            .take_while(|s| addr_op(s).is_some_and(|(op, _)| op == first))
            .count()
    }

    fn exec_batch(
        &mut self,
        steps: &[Step],
        issue: &mut dyn FnMut(usize) -> bool,
        stop_on_error: bool,
    ) -> Vec<Option<Result<()>>> {
        let Some(ops) = steps.iter().map(addr_op).collect::<Option<Vec<_>>>() else {
            return crate::txn::exec_each(self, steps, issue, stop_on_error);
        };
        self.sys.addr_batch(
            &ops,
            &mut |k| {
                step_delay();
                issue(k)
            },
            stop_on_error,
        )
    }

    fn exec(&mut self, step: &Step) -> Result<()> {
        step_delay();
        match step {
            Step::Host(c) => apply_host(self.sys, c),
            Step::Ipvs(c) => {
                use ipvs::plan::Kernel;
                let what = c.to_string();
                self.ipvs()?.change(c).map_err(|e| ipvs_error(&what, e))
            }
            Step::NftTable(t) if t.delete => nft::run_script(
                &t.to_string(),
                &format!("delete table {} {}\n", t.family, t.name),
            ),
            Step::NftTable(t) => nft::run_script(
                &format!("re-creating table {} {}", t.family, t.name),
                &t.saved,
            ),
        }
    }
}

impl Executor<plan::Change> for &Sys {
    type Error = Error;

    fn exec(&mut self, c: &plan::Change) -> Result<()> {
        apply_host(self, c)
    }
}

#[cfg(test)]
mod tests {
    //! The engine's real step types (backend changes from the real diff, IPVS changes, whole
    //! nft tables) run through the transaction runner against an in-memory kernel: a failure
    //! at every step leaves the fake exactly as before, and every kind of step has an inverse.

    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::ipvs::plan::{Entry, Table};
    use crate::ipvs::{Destination, Service, ServiceKey};
    use crate::model::{expand, Intent, PolicyRoute, SysctlKey, Vip};
    use crate::plan::{diff, ArpMap, Change, Observed, Owned};
    use crate::txn::{self, Executor};

    /// Everything a transaction can change, in memory.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    struct Fake {
        addrs: BTreeSet<crate::model::AddrObj>,
        rules: BTreeSet<crate::model::RuleObj>,
        routes: BTreeSet<crate::model::RouteObj>,
        sysctls: BTreeMap<SysctlKey, String>,
        arp: Option<ArpMap>,
        ipvs: Table,
        tables: BTreeMap<String, String>,
    }

    struct FailAt<'a> {
        k: &'a mut Fake,
        /// Fail the step with this index (forward direction only).
        fail: Option<usize>,
        seen: usize,
    }

    fn present<T: Ord + Clone>(
        set: &mut BTreeSet<T>,
        x: &T,
        add: bool,
    ) -> std::result::Result<(), String> {
        let ok = if add {
            set.insert(x.clone())
        } else {
            set.remove(x)
        };
        ok.then_some(()).ok_or_else(|| "EEXIST/ENOENT".to_string())
    }

    impl Executor<Step> for FailAt<'_> {
        type Error = String;
        fn exec(&mut self, s: &Step) -> std::result::Result<(), String> {
            if self.fail == Some(self.seen) {
                self.fail = None;
                return Err("EPERM".into());
            }
            self.seen += 1;
            let k = &mut *self.k;
            match s {
                Step::Host(c) => match c {
                    Change::AddrAdd(a) => present(&mut k.addrs, a, true),
                    Change::AddrDel(a) => present(&mut k.addrs, a, false),
                    Change::RuleAdd(r) => present(&mut k.rules, r, true),
                    Change::RuleDel(r) => present(&mut k.rules, r, false),
                    Change::RouteAdd(r) => present(&mut k.routes, r, true),
                    Change::RouteDel(r) => present(&mut k.routes, r, false),
                    Change::Sysctl { key, from, to } => {
                        if k.sysctls.get(key) != Some(from) {
                            return Err(format!("{key} is not {from}"));
                        }
                        k.sysctls.insert(key.clone(), to.clone());
                        Ok(())
                    }
                    Change::ArpTable { from, to, .. } => {
                        if k.arp != *from {
                            return Err("arp table differs".into());
                        }
                        k.arp = to.clone();
                        Ok(())
                    }
                },
                Step::Ipvs(c) => k.ipvs.apply(c),
                Step::NftTable(t) => {
                    let name = format!("{} {}", t.family, t.name);
                    if t.delete {
                        k.tables.remove(&name).map(|_| ()).ok_or("ENOENT".into())
                    } else if k.tables.insert(name, t.saved.clone()).is_some() {
                        Err("EEXIST".into())
                    } else {
                        Ok(())
                    }
                }
            }
        }
    }

    fn sa(s: &str) -> std::net::SocketAddr {
        s.parse().unwrap()
    }

    /// A plan with every kind of step: a balancer's table and IPVS service removed, backend
    /// objects (sysctl, arp table, route, rule, address) added by the real diff.
    fn steps_and_kernel() -> (Vec<Step>, Fake) {
        let mut i = Intent::default();
        let vip: std::net::IpAddr = "198.18.0.100".parse().unwrap();
        i.vips.insert(Vip {
            addr: vip,
            dev: "lo".parse().unwrap(),
        });
        i.arp_nft.insert(
            "198.18.0.100".parse().unwrap(),
            "198.18.0.11".parse().unwrap(),
        );
        i.routes.insert(PolicyRoute {
            vip,
            table: 200,
            via: "198.18.0.1".parse().unwrap(),
            dev: "eth0".parse().unwrap(),
            priority: 100,
        });
        let key = SysctlKey::ipv4_conf("eth0", "rp_filter");
        i.sysctls.insert(key.clone(), "2".into());
        let conn = |_: &str, _: bool| vec!["198.18.0.0/24".parse().unwrap()];
        let d = expand([("profile:web", &i)], &conn).unwrap();
        let mut obs = Observed {
            arp_intact: true,
            ..Observed::default()
        };
        obs.sysctls.insert(key.clone(), Some("1".into()));
        let plan = diff(&d, &obs, &Owned::default());

        let mut fake = Fake::default();
        fake.sysctls.insert(key, "1".into());
        let svc = Service::new(ServiceKey::tcp(sa("198.18.0.100:80")), "mh");
        let dest = Destination::dr(sa("198.18.0.11:80"));
        fake.ipvs.entries.push(Entry {
            service: svc.clone(),
            dests: vec![dest.clone()],
        });
        fake.tables.insert(
            "netdev lbctl_lb_web".into(),
            "table netdev lbctl_lb_web {}".into(),
        );
        let mut steps = vec![
            Step::Ipvs(crate::ipvs::plan::Change::DelService {
                service: svc,
                dests: vec![dest],
            }),
            Step::NftTable(TableStep {
                family: "netdev".into(),
                name: "lbctl_lb_web".into(),
                saved: "table netdev lbctl_lb_web {}".into(),
                delete: true,
            }),
        ];
        steps.extend(plan.changes.into_iter().map(Step::Host));
        (steps, fake)
    }

    fn quiet(_: &str) {}

    #[test]
    fn the_plan_has_every_kind_of_step() {
        let (steps, _) = steps_and_kernel();
        let kinds: BTreeSet<String> = steps
            .iter()
            .map(|s| match s {
                Step::Host(c) => format!("{:?}", std::mem::discriminant(c)),
                Step::Ipvs(_) => "ipvs".into(),
                Step::NftTable(_) => "nft".into(),
            })
            .collect();
        assert!(kinds.len() >= 7, "{steps:#?}");
    }

    #[test]
    fn every_step_kind_has_an_exact_inverse() {
        let (steps, start) = steps_and_kernel();
        let mut k = start.clone();
        for s in &steps {
            let before = k.clone();
            FailAt {
                k: &mut k,
                fail: None,
                seen: 0,
            }
            .exec(s)
            .unwrap();
            assert_ne!(k, before, "{s} changed nothing");
            let mut back = k.clone();
            for u in s.undo() {
                FailAt {
                    k: &mut back,
                    fail: None,
                    seen: 0,
                }
                .exec(&u)
                .unwrap();
            }
            assert_eq!(back, before, "undo of {s}");
        }
    }

    #[test]
    fn a_failure_at_every_step_leaves_the_kernel_as_before() {
        let (steps, start) = steps_and_kernel();
        for i in 0..steps.len() {
            let mut k = start.clone();
            let mut x = FailAt {
                k: &mut k,
                fail: Some(i),
                seen: 0,
            };
            let e = txn::run("the system", &mut x, &steps, &quiet, &|| {}, |_| vec![]).unwrap_err();
            assert_eq!(k, start, "failure at step {i}");
            assert!(
                e.to_string().ends_with(&format!(
                    "rolled back {i} applied change(s); the system is as before"
                )),
                "{e}"
            );
        }
        let mut k = start.clone();
        let mut x = FailAt {
            k: &mut k,
            fail: None,
            seen: 0,
        };
        txn::run("the system", &mut x, &steps, &quiet, &|| {}, |_| vec![]).unwrap();
        assert!(k.tables.is_empty() && k.ipvs.entries.is_empty());
        assert_eq!(k.addrs.len(), 1);
    }

    #[test]
    fn a_failed_verification_undoes_every_kind() {
        let (steps, start) = steps_and_kernel();
        let mut k = start.clone();
        let mut x = FailAt {
            k: &mut k,
            fail: None,
            seen: 0,
        };
        let e = txn::run("the system", &mut x, &steps, &quiet, &|| {}, |_| {
            vec!["table netdev lbctl_lb_web still present".into()]
        });
        assert!(e.is_err());
        assert_eq!(k, start);
    }

    #[test]
    fn table_steps_print_as_nft_commands() {
        let t = TableStep {
            family: "netdev".into(),
            name: "lbctl_lb_web".into(),
            saved: "table netdev lbctl_lb_web {\n}\n".into(),
            delete: true,
        };
        assert_eq!(
            Step::NftTable(t.clone()).to_string(),
            "nft delete table netdev lbctl_lb_web"
        );
        let undo = &Step::NftTable(t).undo()[0];
        assert_eq!(
            undo.to_string(),
            "nft -f - <<'EOF'\ntable netdev lbctl_lb_web {\n}\nEOF"
        );
    }
}
