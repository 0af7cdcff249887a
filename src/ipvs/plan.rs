//! IPVS changes as a plan: desired table vs observed table → an ordered list of typed
//! [`Change`]s whose `Display` is the `ipvsadm` command line; applied in order, rolled back in
//! reverse order on failure, verified by listing the kernel again (STYLE.md §6).
//!
//! Everything here is pure except [`Kernel`], the four verbs the executor needs, which
//! [`Client`] implements and the unit tests replace with an in-memory fake (that is how rollback
//! and verification are tested without root or IPVS).
//!
//! Why the changes carry their "before" values (`EditService { from, to }`, `DelService` with
//! its real servers): every change then has an exact undo without asking the kernel again,
//! the same rule the backend engine (`crate::plan::Change::inverse`) follows.
//!

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;

use crate::ipvs::spec::key_name;
use crate::ipvs::text::{addr_port, Rule};
use crate::ipvs::{
    Client, Destination, Error, Forward, Netmask, Scheduler, Service, ServiceEntry, ServiceFlags,
    ServiceKey, Tunnel,
};
use crate::txn::{self, Executor, Step, TxnError};

/// One service with its real servers, without counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub service: Service,
    pub dests: Vec<Destination>,
}

impl Entry {
    pub fn new(service: Service) -> Self {
        Entry {
            service,
            dests: Vec::new(),
        }
    }

    /// The real server `addr:port`, if present.
    pub fn dest(&self, addr: std::net::IpAddr, port: u16) -> Option<&Destination> {
        self.dests.iter().find(|d| d.addr == addr && d.port == port)
    }
}

/// An IPVS table (what `ipvsadm -S` describes), in insertion order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub entries: Vec<Entry>,
}

impl Table {
    /// From a kernel listing (counters dropped, ipvsadm's order).
    pub fn from_listing(entries: &[ServiceEntry]) -> Table {
        Table {
            entries: crate::ipvs::text::sorted(entries)
                .into_iter()
                .map(|e| Entry {
                    service: e.service,
                    dests: e.dests.into_iter().map(|d| d.dest).collect(),
                })
                .collect(),
        }
    }

    pub fn get(&self, key: &ServiceKey) -> Option<&Entry> {
        self.entries.iter().find(|e| e.service.key == *key)
    }

    fn get_mut(&mut self, key: &ServiceKey) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.service.key == *key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &ServiceKey> {
        self.entries.iter().map(|e| &e.service.key)
    }

    /// Apply `change` as the kernel would, or say (in ipvsadm's words) why the kernel would
    /// refuse it. Used to predict the result of a plan and to turn rule files into changes.
    pub fn apply(&mut self, change: &Change) -> Result<(), String> {
        let key = change.key();
        match change {
            Change::AddService(s) => {
                if self.get(&key).is_some() {
                    return Err("service already exists".into());
                }
                self.entries.push(Entry::new(s.clone()));
            }
            Change::EditService { to, .. } => {
                self.get_mut(&key).ok_or("no such service")?.service = to.clone();
            }
            Change::DelService { .. } => {
                let before = self.entries.len();
                self.entries.retain(|e| e.service.key != key);
                if self.entries.len() == before {
                    return Err("no such service".into());
                }
            }
            Change::AddDest { dest, .. } => {
                let e = self.get_mut(&key).ok_or("service not defined")?;
                if e.dest(dest.addr, dest.port).is_some() {
                    return Err("destination already exists".into());
                }
                e.dests.push(dest.clone());
            }
            Change::EditDest { to, .. } => {
                let e = self.get_mut(&key).ok_or("service not defined")?;
                let d = e
                    .dests
                    .iter_mut()
                    .find(|d| d.addr == to.addr && d.port == to.port)
                    .ok_or("no such destination")?;
                *d = to.clone();
            }
            Change::DelDest { dest, .. } => {
                let e = self.get_mut(&key).ok_or("service not defined")?;
                let before = e.dests.len();
                e.dests
                    .retain(|d| !(d.addr == dest.addr && d.port == dest.port));
                if e.dests.len() == before {
                    return Err("no such destination".into());
                }
            }
        }
        Ok(())
    }
}

/// One change to the IPVS table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `ipvsadm -A`
    AddService(Service),
    /// `ipvsadm -E` (SET_SERVICE replaces scheduler, flags, timeout, netmask, pe).
    EditService { from: Service, to: Service },
    /// `ipvsadm -D` (its real servers go with it; they are kept here for the undo).
    DelService {
        service: Service,
        dests: Vec<Destination>,
    },
    /// `ipvsadm -a`
    AddDest { key: ServiceKey, dest: Destination },
    /// `ipvsadm -e`
    EditDest {
        key: ServiceKey,
        from: Destination,
        to: Destination,
    },
    /// `ipvsadm -d`
    DelDest { key: ServiceKey, dest: Destination },
}

impl Change {
    /// The service this change is about.
    pub fn key(&self) -> ServiceKey {
        match self {
            Change::AddService(s) => s.key,
            Change::EditService { to, .. } => to.key,
            Change::DelService { service, .. } => service.key,
            Change::AddDest { key, .. }
            | Change::EditDest { key, .. }
            | Change::DelDest { key, .. } => *key,
        }
    }

    /// The ipvsadm rule (what `ipvsadm -R` would read).
    pub fn rule(&self) -> Rule {
        match self {
            Change::AddService(s) => Rule::AddService(s.clone()),
            Change::EditService { to, .. } => Rule::EditService(to.clone()),
            Change::DelService { service, .. } => Rule::DeleteService(service.key),
            Change::AddDest { key, dest } => Rule::AddDest(*key, dest.clone()),
            Change::EditDest { key, to, .. } => Rule::EditDest(*key, to.clone()),
            Change::DelDest { key, dest } => Rule::DeleteDest(*key, dest.addr, dest.port),
        }
    }

    /// The changes that undo this one, in order.
    pub fn undo(&self) -> Vec<Change> {
        match self {
            Change::AddService(s) => vec![Change::DelService {
                service: s.clone(),
                dests: Vec::new(),
            }],
            Change::EditService { from, to } => vec![Change::EditService {
                from: to.clone(),
                to: from.clone(),
            }],
            Change::DelService { service, dests } => {
                let mut v = vec![Change::AddService(service.clone())];
                v.extend(dests.iter().map(|d| Change::AddDest {
                    key: service.key,
                    dest: d.clone(),
                }));
                v
            }
            Change::AddDest { key, dest } => vec![Change::DelDest {
                key: *key,
                dest: dest.clone(),
            }],
            Change::EditDest { key, from, to } => vec![Change::EditDest {
                key: *key,
                from: to.clone(),
                to: from.clone(),
            }],
            Change::DelDest { key, dest } => vec![Change::AddDest {
                key: *key,
                dest: dest.clone(),
            }],
        }
    }
}

/// `ipvsadm -A -t 198.18.0.100:80 -s mh -b mh-fallback,mh-port`: a line `sh` can run.
impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ipvsadm {}", self.rule())
    }
}

// ---------------------------------------------------------------------------------------------
// equality that ignores what the kernel does not keep or rewrites
// ---------------------------------------------------------------------------------------------

fn norm_service(s: &Service) -> Service {
    let mut s = s.clone();
    if !s.is_persistent() {
        // timeout and granularity mean nothing without persistence
        s.timeout = 0;
        s.netmask = Netmask::host(s.key.family());
    }
    s
}

fn norm_dest(d: &Destination) -> Destination {
    let mut d = d.clone();
    if d.fwd == Forward::Local {
        // the kernel reports a real server on a local address as Local; ipvsadm saves it as -g
        d.fwd = Forward::Dr;
    }
    if d.fwd != Forward::Tun {
        d.tunnel = Tunnel::default();
    }
    d
}

/// Same service settings (ignoring timeout/netmask of a non-persistent service).
pub fn same_service(a: &Service, b: &Service) -> bool {
    norm_service(a) == norm_service(b)
}

/// Same real-server settings (Local counts as DR).
pub fn same_dest(a: &Destination, b: &Destination) -> bool {
    norm_dest(a) == norm_dest(b)
}

/// Same service and the same set of real servers.
pub fn same_entry(a: &Entry, b: &Entry) -> bool {
    same_service(&a.service, &b.service)
        && a.dests.len() == b.dests.len()
        && a.dests.iter().all(|d| {
            b.dest(d.addr, d.port)
                .is_some_and(|other| same_dest(d, other))
        })
}

// ---------------------------------------------------------------------------------------------
// diff
// ---------------------------------------------------------------------------------------------

/// The changes that turn `observed` into `desired`.
///
/// Every desired service is converged completely (settings and exactly its real servers).
/// A service that is observed but not desired is deleted only when `remove(key)` says so
/// (it was created by this LB file earlier, or `--prune`); otherwise it is left alone.
///
/// Order: per desired service `-A`/`-E`, then its new and changed real servers (in the desired
/// order), then the removed ones (new capacity first); deleted services last.
pub fn diff(
    desired: &Table,
    observed: &Table,
    remove: &dyn Fn(&ServiceKey) -> bool,
) -> Vec<Change> {
    let mut out = Vec::new();
    for want in &desired.entries {
        let key = want.service.key;
        let Some(have) = observed.get(&key) else {
            out.push(Change::AddService(want.service.clone()));
            out.extend(want.dests.iter().map(|d| Change::AddDest {
                key,
                dest: d.clone(),
            }));
            continue;
        };
        if !same_service(&want.service, &have.service) {
            out.push(Change::EditService {
                from: have.service.clone(),
                to: want.service.clone(),
            });
        }
        for d in &want.dests {
            match have.dest(d.addr, d.port) {
                None => out.push(Change::AddDest {
                    key,
                    dest: d.clone(),
                }),
                Some(h) if !same_dest(d, h) => out.push(Change::EditDest {
                    key,
                    from: h.clone(),
                    to: d.clone(),
                }),
                Some(_) => {}
            }
        }
        for h in &have.dests {
            if want.dest(h.addr, h.port).is_none() {
                out.push(Change::DelDest {
                    key,
                    dest: h.clone(),
                });
            }
        }
    }
    for have in &observed.entries {
        let key = have.service.key;
        if desired.get(&key).is_none() && remove(&key) {
            out.push(Change::DelService {
                service: have.service.clone(),
                dests: have.dests.clone(),
            });
        }
    }
    out
}

/// Predict the table after `changes`.
pub fn simulate(start: &Table, changes: &[Change]) -> Result<Table, String> {
    let mut t = start.clone();
    for c in changes {
        t.apply(c).map_err(|e| format!("{c}: {e}"))?;
    }
    Ok(t)
}

/// A rule of an ipvsadm rule file, with the line it came from.
#[derive(Debug, Clone)]
pub struct NumberedRule {
    pub line: usize,
    pub rule: Rule,
}

/// Turn ipvsadm rules into changes against `start`, as `ipvsadm -R` would run them, refusing
/// (before anything is touched) a rule the kernel would refuse at that point.
pub fn changes_of_rules(start: &Table, rules: &[NumberedRule]) -> Result<Vec<Change>, String> {
    let mut t = start.clone();
    let mut out = Vec::new();
    for NumberedRule { line, rule } in rules {
        let at = |msg: &str| format!("line {line}: `{rule}`: {msg}");
        let mut step = Vec::new();
        match rule {
            Rule::AddService(s) => step.push(Change::AddService(s.clone())),
            Rule::EditService(s) => {
                let e = t.get(&s.key).ok_or_else(|| at("no such service"))?;
                step.push(Change::EditService {
                    from: e.service.clone(),
                    to: s.clone(),
                });
            }
            Rule::DeleteService(k) => {
                let e = t.get(k).ok_or_else(|| at("no such service"))?;
                step.push(Change::DelService {
                    service: e.service.clone(),
                    dests: e.dests.clone(),
                });
            }
            Rule::AddDest(k, d) => step.push(Change::AddDest {
                key: *k,
                dest: d.clone(),
            }),
            Rule::EditDest(k, d) => {
                let e = t.get(k).ok_or_else(|| at("service not defined"))?;
                let from = e
                    .dest(d.addr, d.port)
                    .ok_or_else(|| at("no such destination"))?;
                step.push(Change::EditDest {
                    key: *k,
                    from: from.clone(),
                    to: d.clone(),
                });
            }
            Rule::DeleteDest(k, a, p) => {
                let e = t.get(k).ok_or_else(|| at("service not defined"))?;
                let d = e.dest(*a, *p).ok_or_else(|| at("no such destination"))?;
                step.push(Change::DelDest {
                    key: *k,
                    dest: d.clone(),
                });
            }
            Rule::Flush => {
                for e in &t.entries {
                    step.push(Change::DelService {
                        service: e.service.clone(),
                        dests: e.dests.clone(),
                    });
                }
            }
        }
        for c in step {
            t.apply(&c).map_err(|e| at(&e))?;
            out.push(c);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// execution
// ---------------------------------------------------------------------------------------------

/// What the executor needs from the kernel.
pub trait Kernel {
    fn list(&mut self) -> Result<Vec<ServiceEntry>, Error>;
    fn change(&mut self, c: &Change) -> Result<(), Error>;
}

impl Kernel for Client {
    fn list(&mut self) -> Result<Vec<ServiceEntry>, Error> {
        self.services()
    }

    fn change(&mut self, c: &Change) -> Result<(), Error> {
        match c {
            Change::AddService(s) => self.add_service(s),
            Change::EditService { to, .. } => self.edit_service(to),
            Change::DelService { service, .. } => self.del_service(&service.key),
            Change::AddDest { key, dest } => self.add_dest(key, dest),
            Change::EditDest { key, to, .. } => self.edit_dest(key, to),
            Change::DelDest { key, dest } => self.del_dest(key, dest.addr, dest.port),
        }
    }
}

/// Why [`execute`] failed: the one transaction error of lbctl's engine, with IPVS's error
/// as the cause. The rollback has been attempted in every case.
pub type ExecError = TxnError<Error>;

/// The failure was a missing privilege (so the exit code is 77).
pub fn is_permission(e: &ExecError) -> bool {
    matches!(e.exec_error(), Some(Error::Permission { .. }))
}

impl Step for Change {
    fn undo(&self) -> Vec<Change> {
        Change::undo(self)
    }
}

/// A [`Kernel`] as the transaction runner's executor.
struct Exec<'a>(&'a mut dyn Kernel);

impl Executor<Change> for Exec<'_> {
    type Error = Error;
    fn exec(&mut self, c: &Change) -> Result<(), Error> {
        self.0.change(c)
    }
}

/// Undo `applied` in reverse order, continuing past errors; returns the failures.
pub fn rollback(k: &mut dyn Kernel, applied: &[Change], detail: &dyn Fn(&str)) -> Vec<String> {
    txn::rollback(&mut Exec(k), applied, detail)
}

/// Differences between the predicted and the listed table, for the services in `keys`.
pub fn verify_problems(expected: &Table, actual: &Table, keys: &[ServiceKey]) -> Vec<String> {
    let mut problems = Vec::new();
    for key in keys {
        match (expected.get(key), actual.get(key)) {
            (None, None) => {}
            (Some(_), None) => problems.push(format!("{key}: missing")),
            (None, Some(_)) => problems.push(format!("{key}: still present")),
            (Some(e), Some(a)) if !same_entry(e, a) => {
                problems.push(format!("{key}: expected {e:?}, listed {a:?}"))
            }
            _ => {}
        }
    }
    problems
}

/// Apply `changes` (planned against `before`) in order; on failure undo the applied prefix in
/// reverse order. Then list the kernel and check that every touched service is exactly as
/// predicted; if not, undo everything.
pub fn execute(
    k: &mut dyn Kernel,
    before: &Table,
    changes: &[Change],
    detail: &dyn Fn(&str),
) -> Result<(), ExecError> {
    txn::run("IPVS", &mut Exec(k), changes, detail, &|| {}, |x| {
        let mut keys: Vec<ServiceKey> = Vec::new();
        let mut seen = HashSet::new();
        for c in changes {
            if seen.insert(c.key()) {
                keys.push(c.key());
            }
        }
        match (simulate(before, changes), x.0.list()) {
            (Ok(expected), Ok(listed)) => {
                verify_problems(&expected, &Table::from_listing(&listed), &keys)
            }
            (Err(e), _) => vec![format!(
                "the plan does not apply to the observed table: {e}"
            )],
            (_, Err(e)) => vec![format!("listing IPVS again: {e}")],
        }
    })
}

// =============================================================================================
// one command's plan
// =============================================================================================

/// What one `lb` command wants to change, with what to say about it.
#[derive(Debug)]
pub struct Planned {
    /// The changes, in order.
    pub changes: Vec<Change>,
    /// Said before the changes (e.g. "turning mh-fallback on").
    pub notes: Vec<String>,
    /// Said when there is nothing to do.
    pub unchanged: String,
}

impl Planned {
    /// Nothing to do, and why.
    pub fn none(why: impl Into<String>) -> Self {
        Planned {
            changes: Vec::new(),
            notes: Vec::new(),
            unchanged: why.into(),
        }
    }

    /// Exactly one change.
    pub fn one(c: Change) -> Self {
        Planned {
            changes: vec![c],
            notes: Vec::new(),
            unchanged: String::new(),
        }
    }
}

/// Drain a real server (weight 0; turning mh/sh fallback on first where the scheduler needs
/// it): the plan for draining the real server at `addr` (`port`: None = the only one at that
/// address) of the service `e`.
pub fn drain(e: &Entry, addr: IpAddr, port: Option<u16>) -> Result<Planned, String> {
    let key = e.service.key;
    let matches: Vec<&Destination> = e
        .dests
        .iter()
        .filter(|d| d.addr == addr && port.is_none_or(|p| d.port == p))
        .collect();
    let d = match matches.as_slice() {
        [d] => *d,
        [] => {
            return Err(format!(
                "no real server {} in service {}",
                port.map(|p| addr_port(&addr, p))
                    .unwrap_or_else(|| addr.to_string()),
                key_name(&key)
            ))
        }
        _ => {
            return Err(format!(
                "{addr} is a real server of {} on several ports; say which: {}",
                key_name(&key),
                matches
                    .iter()
                    .map(|d| addr_port(&d.addr, d.port))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    };
    let mut p = Planned::none(format!(
        "real server {} of {} is already drained (weight 0)",
        addr_port(&d.addr, d.port),
        key_name(&key)
    ));
    let s = &e.service;
    if matches!(s.scheduler, Scheduler::Mh | Scheduler::Sh)
        && !s.flags.contains(ServiceFlags::SCHED1)
    {
        let flag = format!("{}-fallback", s.scheduler);
        p.notes.push(format!(
            "{} without {flag} refuses new connections that hash to a weight-0 server; turning \
             {flag} on for {} (other flows keep their server)",
            s.scheduler,
            key_name(&key)
        ));
        let mut to = s.clone();
        to.flags.insert(ServiceFlags::SCHED1);
        p.changes.push(Change::EditService {
            from: s.clone(),
            to,
        });
    }
    if d.weight != 0 {
        p.changes.push(Change::EditDest {
            key,
            from: d.clone(),
            to: d.clone().weight(0),
        });
        if s.is_persistent() {
            p.notes.push(format!(
                "{} is persistent: clients with a persistence template keep reaching {} until it \
                 expires ({} s) unless net.ipv4.vs.expire_quiescent_template=1",
                key_name(&key),
                d.addr,
                s.timeout
            ));
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::{DestEntry, ServiceFlags, Stats};
    use crate::sys::abi;

    fn svc(s: &str, sched: &str) -> Service {
        Service::new(ServiceKey::tcp(s.parse().unwrap()), sched)
    }

    fn dr(s: &str) -> Destination {
        Destination::dr(s.parse().unwrap())
    }

    fn table(entries: Vec<(Service, Vec<Destination>)>) -> Table {
        Table {
            entries: entries
                .into_iter()
                .map(|(service, dests)| Entry { service, dests })
                .collect(),
        }
    }

    fn lines(changes: &[Change]) -> Vec<String> {
        changes.iter().map(|c| c.to_string()).collect()
    }

    /// An in-memory kernel that can be told to fail on a command line.
    #[derive(Default)]
    struct Fake {
        table: Table,
        fail_on: Option<String>,
        /// Pretend the kernel silently ignored this change (for the verification test).
        ignore: Option<String>,
        log: Vec<String>,
    }

    impl Kernel for Fake {
        fn list(&mut self) -> Result<Vec<ServiceEntry>, Error> {
            Ok(self
                .table
                .entries
                .iter()
                .map(|e| ServiceEntry {
                    service: e.service.clone(),
                    stats: Stats::default(),
                    dests: e
                        .dests
                        .iter()
                        .map(|d| DestEntry {
                            dest: d.clone(),
                            active_conns: 0,
                            inact_conns: 0,
                            persist_conns: 0,
                            stats: Stats::default(),
                        })
                        .collect(),
                })
                .collect())
        }

        fn change(&mut self, c: &Change) -> Result<(), Error> {
            let line = c.to_string();
            self.log.push(line.clone());
            if self.fail_on.as_ref().is_some_and(|f| line.contains(f)) {
                return Err(Error::Kernel {
                    op: crate::ipvs::Op::AddDest,
                    errno: abi::EINVAL,
                    what: line,
                    scheduler: None,
                });
            }
            if self.ignore.as_ref().is_some_and(|f| line.contains(f)) {
                return Ok(());
            }
            self.table.apply(c).map_err(|msg| Error::Kernel {
                op: crate::ipvs::Op::Raw,
                errno: abi::EEXIST,
                what: msg,
                scheduler: None,
            })
        }
    }

    #[test]
    fn diff_of_empty_creates_everything_in_order() {
        let desired = table(vec![(
            svc("198.18.0.100:80", "mh").flags(ServiceFlags::MH_PORT),
            vec![dr("198.18.0.11:80"), dr("198.18.0.12:80").weight(2)],
        )]);
        let c = diff(&desired, &Table::default(), &|_| false);
        assert_eq!(
            lines(&c),
            [
                "ipvsadm -A -t 198.18.0.100:80 -s mh -b mh-port",
                "ipvsadm -a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1",
                "ipvsadm -a -t 198.18.0.100:80 -r 198.18.0.12:80 -g -w 2",
            ]
        );
    }

    #[test]
    fn diff_touches_only_what_differs() {
        let observed = table(vec![
            (
                svc("198.18.0.100:80", "rr"),
                vec![
                    dr("198.18.0.11:80"),
                    dr("198.18.0.12:80"),
                    dr("198.18.0.13:80"),
                ],
            ),
            (svc("198.18.0.101:80", "rr"), vec![dr("198.18.0.11:80")]),
            (svc("198.18.0.102:80", "rr"), vec![]),
        ]);
        let desired = table(vec![
            (
                svc("198.18.0.100:80", "wrr"),
                vec![
                    dr("198.18.0.11:80"),
                    dr("198.18.0.12:80").weight(5),
                    dr("198.18.0.14:80"),
                ],
            ),
            (svc("198.18.0.101:80", "rr"), vec![dr("198.18.0.11:80")]),
        ]);
        let remove = |k: &ServiceKey| k.to_string().contains("198.18.0.102");
        let c = diff(&desired, &observed, &remove);
        assert_eq!(
            lines(&c),
            [
                "ipvsadm -E -t 198.18.0.100:80 -s wrr",
                "ipvsadm -e -t 198.18.0.100:80 -r 198.18.0.12:80 -g -w 5",
                "ipvsadm -a -t 198.18.0.100:80 -r 198.18.0.14:80 -g -w 1",
                "ipvsadm -d -t 198.18.0.100:80 -r 198.18.0.13:80",
                "ipvsadm -D -t 198.18.0.102:80",
            ]
        );
        // applying the plan to the observed table gives the desired one: the second diff is empty
        let after = simulate(&observed, &c).unwrap();
        assert!(diff(&desired, &after, &remove).is_empty());
        // services that are neither desired nor removable are left alone
        assert!(after
            .get(&ServiceKey::tcp("198.18.0.102:80".parse().unwrap()))
            .is_none());
        let c2 = diff(&desired, &observed, &|_| false);
        assert!(!lines(&c2).iter().any(|l| l.contains("-D")));
    }

    #[test]
    fn equality_ignores_what_the_kernel_does_not_keep() {
        let mut a = svc("198.18.0.100:80", "rr");
        let mut b = a.clone();
        b.timeout = 77;
        b.netmask = Netmask::V4("255.255.255.0".parse().unwrap());
        assert!(same_service(&a, &b));
        a = a.persistent(300);
        b = b.persistent(300);
        assert!(
            !same_service(&a, &b),
            "the netmask matters with persistence"
        );
        let mut local = dr("198.18.0.11:80");
        local.fwd = Forward::Local;
        assert!(same_dest(&local, &dr("198.18.0.11:80")));
        assert!(!same_dest(
            &dr("198.18.0.11:80"),
            &dr("198.18.0.11:80").weight(0)
        ));
        let e1 = Entry {
            service: svc("198.18.0.100:80", "rr"),
            dests: vec![dr("198.18.0.11:80"), dr("198.18.0.12:80")],
        };
        let mut e2 = e1.clone();
        e2.dests.reverse();
        assert!(same_entry(&e1, &e2), "real-server order does not matter");
        e2.dests.pop();
        assert!(!same_entry(&e1, &e2));
    }

    #[test]
    fn undo_inverts_every_change() {
        let start = table(vec![(
            svc("198.18.0.100:80", "rr"),
            vec![dr("198.18.0.11:80"), dr("198.18.0.12:80")],
        )]);
        let k = ServiceKey::tcp("198.18.0.100:80".parse().unwrap());
        let changes = vec![
            Change::EditService {
                from: svc("198.18.0.100:80", "rr"),
                to: svc("198.18.0.100:80", "mh"),
            },
            Change::EditDest {
                key: k,
                from: dr("198.18.0.11:80"),
                to: dr("198.18.0.11:80").weight(0),
            },
            Change::DelDest {
                key: k,
                dest: dr("198.18.0.12:80"),
            },
            Change::AddService(svc("198.18.0.101:80", "rr")),
            Change::AddDest {
                key: ServiceKey::tcp("198.18.0.101:80".parse().unwrap()),
                dest: dr("198.18.0.13:80"),
            },
            Change::DelService {
                service: svc("198.18.0.100:80", "mh"),
                dests: vec![dr("198.18.0.11:80").weight(0)],
            },
        ];
        let after = simulate(&start, &changes).unwrap();
        let undo: Vec<Change> = changes.iter().rev().flat_map(|c| c.undo()).collect();
        let back = simulate(&after, &undo).unwrap();
        assert_eq!(back.entries.len(), 1);
        assert!(same_entry(&back.entries[0], &start.entries[0]));
    }

    #[test]
    fn execute_applies_and_verifies() {
        let mut k = Fake::default();
        let desired = table(vec![(
            svc("198.18.0.100:80", "rr"),
            vec![dr("198.18.0.11:80"), dr("198.18.0.12:80")],
        )]);
        let before = Table::default();
        let c = diff(&desired, &before, &|_| false);
        execute(&mut k, &before, &c, &|_| {}).unwrap();
        assert!(same_entry(&k.table.entries[0], &desired.entries[0]));
        // second run: nothing to do
        let now = Table::from_listing(&k.list().unwrap());
        assert!(diff(&desired, &now, &|_| false).is_empty());
    }

    #[test]
    fn failure_rolls_back_in_reverse_order() {
        let start = table(vec![(
            svc("198.18.0.100:80", "rr"),
            vec![dr("198.18.0.11:80")],
        )]);
        let mut k = Fake {
            table: start.clone(),
            fail_on: Some("198.18.0.13".into()),
            ..Default::default()
        };
        let desired = table(vec![
            (
                svc("198.18.0.100:80", "wrr"),
                vec![dr("198.18.0.11:80").weight(3)],
            ),
            (
                svc("198.18.0.101:80", "rr"),
                vec![dr("198.18.0.12:80"), dr("198.18.0.13:80")],
            ),
        ]);
        let c = diff(&desired, &start, &|_| false);
        assert_eq!(c.len(), 5);
        let e = execute(&mut k, &start, &c, &|_| {}).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with(
                "change 5 of 5 failed: ipvsadm -a -t 198.18.0.101:80 -r 198.18.0.13:80"
            ),
            "{msg}"
        );
        assert!(
            msg.contains("rolled back 4 applied change(s); IPVS is as before"),
            "{msg}"
        );
        assert_eq!(k.table, start, "the table is exactly as before");
        // the undo ran in reverse order
        let undo: Vec<&str> = k.log[5..].iter().map(String::as_str).collect();
        assert_eq!(
            undo,
            [
                "ipvsadm -d -t 198.18.0.101:80 -r 198.18.0.12:80",
                "ipvsadm -D -t 198.18.0.101:80",
                "ipvsadm -e -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1",
                "ipvsadm -E -t 198.18.0.100:80 -s rr",
            ]
        );
        assert!(!is_permission(&e));
    }

    #[test]
    fn verification_failure_rolls_back_everything() {
        let mut k = Fake {
            ignore: Some("-w 7".into()),
            ..Default::default()
        };
        let desired = table(vec![(
            svc("198.18.0.100:80", "rr"),
            vec![dr("198.18.0.11:80").weight(7)],
        )]);
        let c = diff(&desired, &Table::default(), &|_| false);
        let e = execute(&mut k, &Table::default(), &c, &|_| {}).unwrap_err();
        assert!(matches!(e, ExecError::Verify { .. }), "{e}");
        assert!(e.to_string().contains("-t 198.18.0.100:80"), "{e}");
        assert!(k.table.entries.is_empty(), "{:?}", k.table);
    }

    #[test]
    fn rules_become_changes_with_their_before_values() {
        let start = table(vec![(
            svc("198.18.0.100:80", "rr"),
            vec![dr("198.18.0.11:80")],
        )]);
        let text = "-E -t 198.18.0.100:80 -s mh -b mh-port\n-e -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 0\n-A -u 198.18.0.100:53 -s rr\n-a -u 198.18.0.100:53 -r 198.18.0.11\n-C\n";
        let rules: Vec<NumberedRule> = text
            .lines()
            .enumerate()
            .map(|(i, l)| NumberedRule {
                line: i + 1,
                rule: crate::ipvs::text::parse_rule(l).unwrap(),
            })
            .collect();
        let c = changes_of_rules(&start, &rules).unwrap();
        assert_eq!(
            c[0],
            Change::EditService {
                from: svc("198.18.0.100:80", "rr"),
                to: svc("198.18.0.100:80", "mh").flags(ServiceFlags::MH_PORT)
            }
        );
        // -C deletes both services, each with the real servers it has at that point
        assert_eq!(c.len(), 6);
        assert!(matches!(&c[4], Change::DelService { dests, .. } if dests[0].weight == 0));
        assert!(simulate(&start, &c).unwrap().entries.is_empty());

        // a rule the kernel would refuse is reported with its line, before anything happens
        let bad = [NumberedRule {
            line: 3,
            rule: crate::ipvs::text::parse_rule("-A -t 198.18.0.100:80 -s rr").unwrap(),
        }];
        let e = changes_of_rules(&start, &bad).unwrap_err();
        assert_eq!(
            e,
            "line 3: `-A -t 198.18.0.100:80 -s rr`: service already exists"
        );
        let bad = [NumberedRule {
            line: 1,
            rule: crate::ipvs::text::parse_rule("-a -t 198.18.0.9:80 -r 198.18.0.11").unwrap(),
        }];
        assert!(changes_of_rules(&start, &bad)
            .unwrap_err()
            .contains("service not defined"));
    }

    fn entry(sched: &str, flags: ServiceFlags, dests: &[(&str, u32)]) -> Entry {
        let key = ServiceKey::tcp("198.18.0.100:80".parse().unwrap());
        Entry {
            service: Service::new(key, sched).flags(flags),
            dests: dests
                .iter()
                .map(|(a, w)| Destination::dr(a.parse().unwrap()).weight(*w))
                .collect(),
        }
    }

    #[test]
    fn drain_turns_on_mh_fallback_first() {
        let e = entry(
            "mh",
            ServiceFlags::MH_PORT,
            &[("198.18.0.11:80", 1), ("198.18.0.12:80", 1)],
        );
        let p = drain(&e, "198.18.0.11".parse().unwrap(), None).unwrap();
        let lines: Vec<String> = p.changes.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            lines,
            [
                "ipvsadm -E -t 198.18.0.100:80 -s mh -b mh-fallback,mh-port",
                "ipvsadm -e -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 0",
            ]
        );
        assert!(
            p.notes[0].contains("turning mh-fallback on"),
            "{:?}",
            p.notes
        );

        let e = entry("sh", ServiceFlags::empty(), &[("198.18.0.11:80", 1)]);
        let p = drain(&e, "198.18.0.11".parse().unwrap(), Some(80)).unwrap();
        assert!(p.notes[0].contains("sh-fallback"), "{:?}", p.notes);

        let e = entry("rr", ServiceFlags::empty(), &[("198.18.0.11:80", 1)]);
        let p = drain(&e, "198.18.0.11".parse().unwrap(), None).unwrap();
        assert_eq!(p.changes.len(), 1);
        assert!(p.notes.is_empty());

        // already drained: nothing to do
        let e = entry("mh", ServiceFlags::MH_FALLBACK, &[("198.18.0.11:80", 0)]);
        let p = drain(&e, "198.18.0.11".parse().unwrap(), None).unwrap();
        assert!(p.changes.is_empty());
        assert!(p.unchanged.contains("already drained"));

        let e = entry("rr", ServiceFlags::empty(), &[("198.18.0.11:80", 1)]);
        let err = drain(&e, "198.18.0.99".parse().unwrap(), None).unwrap_err();
        assert!(err.contains("no real server 198.18.0.99"), "{err}");
    }
}
