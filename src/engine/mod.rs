//! The change engine shared by every mutating command:
//! desired (intents) → observed → plan → apply → verify → journal, with rollback.
//!
//! 1. The caller validates its input (no changes yet) and says how the intents change.
//! 2. Under the journal lock: observe, expand, diff into a [`Plan`].
//! 3. `--dry-run` prints the plan and stops. Otherwise the journal is written ahead (new
//!    intents, ownership of everything about to be created), then changes are applied in order.
//! 4. If change k fails, changes k-1…0 are reverted in reverse order and both the failure and the
//!    rollback are reported. The journal goes back to its previous content.
//! 5. Verify: observe again; the plan must now be empty, or the run is rolled back.

use std::collections::BTreeSet;

use ipnet::IpNet;
use serde_json::json;

use crate::error::{Error, Result};
use crate::journal::{Journal, State};
use crate::model::{expand, Desired, Intent};
use crate::plan::{diff, Change, Observed, Owned, Plan};
use crate::sys::arptable::{self, ArpObserved};
use crate::sys::netlink::{AddrInfo, RouteInfo, Rules};
use crate::sys::{sysctl, Sys};

pub mod adopt;
pub mod lb;
pub mod step;

use crate::journal::STOP_SIGNALS;
use crate::sys::signals;
use crate::txn::{self, Step as _, TxnError};
use crate::{Ctx, Outcome};
pub use step::{Step, SysExec};

/// Routing table ids of main and local; lbctl never observes or touches routes there.
const MAIN_TABLE: u32 = 254;
const LOCAL_TABLE: u32 = 255;
/// rtm_protocol of routes the kernel creates for addresses.
const RTPROT_KERNEL: u8 = 2;

/// Everything observed in one pass, kept for commands that need more than the plan.
pub struct Snapshot {
    pub observed: Observed,
    pub routes: Vec<RouteInfo>,
    pub foreign_rule_tables: BTreeSet<u32>,
}

/// Connected (on-link) prefixes of `dev` in the main table, as copied into policy tables.
pub fn connected_prefixes(routes: &[RouteInfo], dev: &str, v4: bool) -> Vec<IpNet> {
    routes
        .iter()
        .filter(|r| {
            r.table == MAIN_TABLE
                && r.dev.as_deref() == Some(dev)
                && r.via.is_none()
                && r.unicast
                && r.dst.addr().is_ipv4() == v4
                && r.dst.prefix_len() > 0
                && if v4 {
                    r.scope_link
                } else {
                    r.protocol == RTPROT_KERNEL
                }
        })
        .map(|r| r.dst)
        .collect()
}

/// Observe the state relevant to `sysctl_keys` and lbctl's objects.
/// `routes` is a fresh route dump (the caller needed it already, for connected prefixes).
pub fn observe(
    sys: &Sys,
    routes: Vec<RouteInfo>,
    sysctl_keys: impl IntoIterator<Item = crate::model::SysctlKey>,
) -> Result<Snapshot> {
    // lbctl's arp table (nf_tables netlink: its own socket, mostly the kernel's time for
    // 20,000 elements at 10,000 VIPs) is read beside the rtnetlink dumps.
    let (addrs, rules, arp) = std::thread::scope(|s| {
        let arp = s.spawn(arptable::observe);
        let addrs = sys.addresses();
        let rules = sys.rules();
        let arp = arp.join().expect("the arp table reader does not panic");
        (addrs, rules, arp)
    });
    snapshot_of(addrs?, rules?, routes, sysctl_keys, arp?)
}

/// The snapshot made of these dumps, the sysctls `sysctl_keys` and lbctl's ARP table.
fn snapshot_of(
    addrs: Vec<AddrInfo>,
    rules: Rules,
    routes: Vec<RouteInfo>,
    sysctl_keys: impl IntoIterator<Item = crate::model::SysctlKey>,
    arp: ArpObserved,
) -> Result<Snapshot> {
    let mut o = Observed::default();
    for a in addrs {
        o.addrs.insert(a.obj, a.marked);
    }
    o.rules = rules.plain;
    o.rule_tables = rules.tables;
    for r in &routes {
        if r.table == MAIN_TABLE || r.table == LOCAL_TABLE {
            continue;
        }
        if let Some(obj) = r.obj() {
            o.routes
                .insert(obj, r.protocol == crate::model::LBCTL_PROTO);
        }
    }
    for key in sysctl_keys {
        let v = sysctl::read(&key)?;
        o.sysctls.insert(key, v);
    }
    o.arp = arp.map;
    o.arp_intact = arp.intact;
    Ok(Snapshot {
        observed: o,
        routes,
        foreign_rule_tables: rules.foreign_tables,
    })
}

/// Expand all intents of `state` against the observed routes.
pub fn desired_of(state: &State, routes: &[RouteInfo]) -> Result<Desired> {
    let connected = |dev: &str, v4: bool| connected_prefixes(routes, dev, v4);
    expand(
        state.intents.iter().map(|(k, v)| (k.as_str(), v)),
        &connected,
    )
}

/// Each owner's backend objects on its own (for `status`, grouped by owner).
pub fn desired_by_owner(
    state: &State,
    routes: &[RouteInfo],
) -> Result<std::collections::BTreeMap<String, Desired>> {
    let connected = |dev: &str, v4: bool| connected_prefixes(routes, dev, v4);
    state
        .intents
        .iter()
        .map(|(owner, intent)| {
            expand(std::iter::once((owner.as_str(), intent)), &connected)
                .map(|d| (owner.clone(), d))
        })
        .collect()
}

/// Whether a backend change is about one of the objects in `d`.
pub fn touches(c: &Change, d: &Desired) -> bool {
    match c {
        Change::AddrAdd(a) | Change::AddrDel(a) => d.addrs.contains(a),
        Change::RuleAdd(r) | Change::RuleDel(r) => d.rules.contains(r),
        Change::RouteAdd(r) | Change::RouteDel(r) => d.routes.contains(r),
        Change::Sysctl { key, .. } => d.sysctls.contains_key(key),
        Change::ArpTable { .. } => !d.arp.is_empty(),
    }
}

/// Plan for `state` against the live system.
pub fn plan_for(sys: &Sys, state: &State) -> Result<(Plan, Desired, Snapshot)> {
    let mut snap = observe_for(sys, state)?;
    let (plan, desired) = plan_from(state, &mut snap)?;
    Ok((plan, desired, snap))
}

/// Plan for `state` against dumps the caller made already — every address, every rule and
/// the routes of (at least) every table but local, as [`Sys::addresses`], [`Sys::rules`] and
/// [`Sys::routes`] return them, and lbctl's ARP table as [`arptable::observe`] reads it —
/// reading only the sysctls `state` needs: `doctor` plans its drift from the same view of the
/// kernel it checks, without dumping everything a second time.
pub fn plan_observed(
    state: &State,
    addrs: Vec<AddrInfo>,
    rules: Rules,
    routes: Vec<RouteInfo>,
    arp: ArpObserved,
) -> Result<Plan> {
    let keys = sysctl_keys(state, &routes)?;
    let mut snap = snapshot_of(addrs, rules, routes, keys, arp)?;
    plan_from(state, &mut snap).map(|(plan, _)| plan)
}

/// The sysctls `state` needs: those desired, and those whose prior value lbctl still holds.
fn sysctl_keys(state: &State, routes: &[RouteInfo]) -> Result<BTreeSet<crate::model::SysctlKey>> {
    Ok(desired_of(state, routes)?
        .sysctls
        .into_keys()
        .chain(state.owned.sysctl_prior.keys().cloned())
        .collect())
}

/// One observation of everything `state` needs: routes (policy tables copy connected
/// prefixes, so expansion needs them), addresses, rules, the ARP table, and the sysctls that
/// are desired or whose prior value lbctl still holds.
pub fn observe_for(sys: &Sys, state: &State) -> Result<Snapshot> {
    let routes = routes(sys)?;
    // Only the sysctl keys are needed here: the expansion is gone before the dumps begin.
    let keys = sysctl_keys(state, &routes)?;
    observe(sys, routes, keys)
}

/// The route dump every observation starts with. The local table holds one route per local
/// address — 10,000 for 10,000 VIPs — and nothing lbctl owns or reads: left out while the
/// dump is read.
fn routes(sys: &Sys) -> Result<Vec<RouteInfo>> {
    sys.routes_where(&|table| table != LOCAL_TABLE)
}

/// The journal's state and an observation of the kernel objects, read at the same time (the
/// journal's parse and the dumps are each tens of milliseconds at 10,000 VIPs). The sysctls
/// the state needs are read later, by [`plan_from`], which reads those a snapshot lacks.
fn load_and_observe(sys: &Sys, journal: &Journal) -> Result<(State, Snapshot)> {
    std::thread::scope(|s| {
        let loading = s.spawn(|| journal.load());
        let snap = routes(sys).and_then(|r| observe(sys, r, []));
        let state = loading.join().expect("the journal reader does not panic")?;
        Ok((state, snap?))
    })
}

/// Plan for `state` against `snap`, reading first the sysctls `state` needs that `snap` lacks
/// (when the intents changed since `snap` was taken).
pub fn plan_from(state: &State, snap: &mut Snapshot) -> Result<(Plan, Desired)> {
    let desired = desired_of(state, &snap.routes)?;
    for key in desired
        .sysctls
        .keys()
        .chain(state.owned.sysctl_prior.keys())
    {
        if !snap.observed.sysctls.contains_key(key) {
            let v = sysctl::read(key)?;
            snap.observed.sysctls.insert(key.clone(), v);
        }
    }
    let plan = diff(&desired, &snap.observed, &state.owned);
    Ok((plan, desired))
}

/// The backend state after the `applied` changes were made to `observed`, each acknowledged by
/// the kernel, or `None` when only observing again can tell.
///
/// Why this is as good as a second dump for these objects: an address is added with
/// RTM_NEWADDR and NLM_F_CREATE | NLM_F_EXCL, so an ACK (error 0) means the kernel created
/// exactly that address, with lbctl's mark, where there was none; IPv6 VIPs are added `nodad`,
/// so no duplicate address detection removes one later. An ACKed RTM_DELADDR removed it;
/// rules and routes are created and deleted the same way (EXCL; deletes match lbctl's
/// protocol). The ARP table's change is one nf_tables transaction of exactly the planned steps
/// (made from a table observed intact, or the whole table anew), every message acknowledged:
/// either all of it committed or nothing did. None of these changes alters another observed object:
/// VIPs are host addresses (/32, /128: no connected prefix appears or goes), and nothing lbctl
/// creates is a primary address or a route others hang on. What a dump would see beyond that
/// is a change by someone else after the ACK — which a dump cannot exclude either, since the
/// next one could come a microsecond after it. A sysctl write is different: /proc may store
/// another spelling of the value, and some keys change other objects (disable_ipv6 removes
/// addresses), so a plan with a sysctl change is observed again.
pub fn after_acks<'a>(
    mut observed: Observed,
    applied: impl IntoIterator<Item = &'a Change>,
) -> Option<Observed> {
    for c in applied {
        match c {
            Change::AddrAdd(a) => {
                observed.addrs.insert(a.clone(), true);
            }
            Change::AddrDel(a) => {
                observed.addrs.remove(a);
            }
            Change::RuleAdd(r) => {
                observed.rules.insert(r.clone(), true);
                observed.rule_tables.insert(r.table);
            }
            Change::RuleDel(r) => {
                observed.rules.remove(r);
            }
            Change::RouteAdd(r) => {
                observed.routes.insert(r.clone(), true);
            }
            Change::RouteDel(r) => {
                observed.routes.remove(r);
            }
            Change::ArpTable { to, .. } => {
                observed.arp = to.clone();
                observed.arp_intact = true;
            }
            Change::Sysctl { .. } => return None,
        }
    }
    Some(observed)
}

/// Turn a failed transaction into lbctl's error (a missing privilege keeps exit code 77, an
/// interrupt 130/143).
pub fn txn_error(e: TxnError<Error>) -> Error {
    if e.is_interrupted() {
        return crate::journal::interrupted(&format!("— {e}"));
    }
    if matches!(e.exec_error(), Some(Error::Privilege(_))) {
        Error::Privilege(e.to_string())
    } else {
        Error::Runtime(anyhow::Error::new(e))
    }
}

/// Apply backend `changes` in order; on failure revert the applied prefix in reverse order.
/// Returns Ok(()) or an error that describes the failure and the rollback.
pub fn apply_all(ctx: &Ctx, sys: &Sys, changes: &[Change]) -> Result<()> {
    let steps: Vec<Step> = changes.iter().cloned().map(Step::Host).collect();
    run_steps(ctx, &mut SysExec::new(sys), &steps, |_| Vec::new()).map_err(txn_error)
}

/// Run `steps` as one transaction (progress bar on a terminal, `-v` detail lines).
fn run_steps(
    ctx: &Ctx,
    x: &mut SysExec<'_>,
    steps: &[Step],
    verify: impl FnOnce(&mut SysExec<'_>) -> Vec<String>,
) -> std::result::Result<(), TxnError<Error>> {
    let bar = progress(ctx, steps.len());
    let detail = |l: &str| ctx.detail(l);
    let tick = || bar.inc(1);
    // Stop requests (SIGINT/SIGTERM) that arrive from now on roll the transaction back.
    let base = signals::count(&STOP_SIGNALS);
    let stops = || signals::count(&STOP_SIGNALS) - base;
    let r = txn::run_interruptible("the system", x, steps, &detail, &tick, &stops, verify);
    bar.finish_and_clear();
    r
}

/// Plans at least this long get a progress bar (on a terminal only).
const PROGRESS_MIN: usize = 200;

/// A progress bar on stderr for long plans; hidden when stderr is not a TTY, or with -q/--json.
fn progress(ctx: &Ctx, len: usize) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if len < PROGRESS_MIN || ctx.global.quiet || ctx.global.json || !std::io::stderr().is_terminal()
    {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} changes ({eta} left)")
            .expect("valid template"),
    );
    bar
}

/// Result of a converge run, for output.
pub struct Report {
    /// The backend part of the plan.
    pub plan: Plan,
    /// Balancer objects removed (IPVS services, nft tables), before the backend changes.
    pub lb: Vec<Step>,
    pub applied: bool,
}

impl Report {
    /// Every command line, in the order applied.
    pub fn commands(&self) -> Vec<String> {
        self.command_lines().collect()
    }

    /// [`Report::commands`], each line built when it is read (a 10,000-VIP plan need not hold
    /// 10,000 strings to print or record them).
    pub fn command_lines(&self) -> impl Iterator<Item = String> + '_ {
        self.lb
            .iter()
            .flat_map(|s| s.lines())
            .chain(self.plan.changes.iter().flat_map(|c| c.commands()))
    }

    /// Number of changes.
    pub fn len(&self) -> usize {
        self.lb.len() + self.plan.changes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Change the intents with `mutate`, then converge the system to them.
///
/// `mutate` receives the current state and the live snapshot, and may refuse (usage error)
/// before anything is touched. It may also drop balancer objects from `state.lb` (as `down`
/// does): those that still exist are removed in the same transaction.
///
/// The system is observed once: `mutate` changes only the journal's intents, never the
/// kernel, and the lock keeps other lbctl processes out, so the plan is computed against the
/// same snapshot `mutate` saw (sysctls the new intents add are read then).
pub fn converge(
    ctx: &Ctx,
    sys: &Sys,
    journal: &Journal,
    command: &str,
    mutate: impl FnOnce(&mut State, &Snapshot) -> Result<()>,
) -> Result<Report> {
    let dry_run = ctx.global.dry_run;
    let _lock = if dry_run {
        None
    } else {
        crate::sys::require_net_admin(command)?;
        Some(journal.lock()?)
    };
    let (mut state, mut snap) = load_and_observe(sys, journal)?;
    let before = Loaded::of(&state);
    mutate(&mut state, &snap)?;
    state.intents.retain(|_, i: &mut Intent| !i.is_empty());
    state.lb.retain(|_, o| !o.is_empty());
    let (plan, desired) = plan_from(&state, &mut snap)?;
    drop(desired);
    for n in &plan.notes {
        ctx.warn(n);
    }
    let mut x = SysExec::new(sys);
    let lb = lb::removals(&mut x, &before.lb, &state.lb)?;
    let mut report = Report {
        plan,
        lb,
        applied: false,
    };
    if dry_run || report.is_empty() {
        if !dry_run && before.changed(&state, &report.plan.owned_after) {
            state.owned = report.plan.owned_after.clone();
            journal.save(&state)?;
        }
        return Ok(report);
    }

    // Write ahead: a crash part-way leaves every object we may have created recorded as ours.
    // `mutate` only ever adds to what is owned, so the state's record covers the loaded one.
    let checkpoint = journal.checkpoint()?;
    let ahead_owned = union(&state.owned, &report.plan.owned_after);
    let ahead_lb = lb::union(&before.lb, &state.lb);
    journal.save_parts(&state, &ahead_owned, &ahead_lb)?;
    drop(ahead_owned);
    drop(ahead_lb);

    // The steps take the plan's changes for the run and give them back for the report.
    let changes = std::mem::take(&mut report.plan.changes);
    let steps: Vec<Step> = report
        .lb
        .iter()
        .cloned()
        .chain(changes.into_iter().map(Step::Host))
        .collect();
    let lb_steps = report.lb.len();
    let verified = run_steps(ctx, &mut x, &steps, |x| {
        let mut problems = lb::still_present(x, &steps[..lb_steps]);
        problems.extend(verify_host(sys, &state, snap, &steps[lb_steps..]));
        problems
    });
    report.plan.changes = steps
        .into_iter()
        .skip(lb_steps)
        .filter_map(|s| match s {
            Step::Host(c) => Some(c),
            _ => None,
        })
        .collect();
    if let Err(e) = verified {
        // A rollback cut short by a second signal leaves objects: keep them recorded as ours
        // (the write-ahead state) so that `status`/`down` still see them.
        let aborted = matches!(&e, TxnError::Interrupted { rollback_aborted, .. } if !rollback_aborted.is_empty());
        if !aborted {
            checkpoint.restore()?;
        }
        return Err(txn_error(e));
    }
    state.owned = std::mem::take(&mut report.plan.owned_after);
    state.record(command, report.command_lines());
    let saved = journal.save(&state);
    report.plan.owned_after = state.owned;
    saved?;
    drop(checkpoint);
    report.applied = true;
    Ok(report)
}

/// What [`converge`] keeps of the state as loaded: enough to tell whether `mutate` or the plan
/// changed it, without a second copy of maps that hold 10,000 entries at 10,000 VIPs (the
/// rollback puts the journal's file back instead: [`Journal::checkpoint`]).
struct Loaded {
    keys: Fingerprints,
    intents: u128,
    owned: u128,
    lb: std::collections::BTreeMap<String, crate::journal::LbOwned>,
}

impl Loaded {
    fn of(state: &State) -> Self {
        let keys = Fingerprints::new();
        Loaded {
            intents: keys.of(&state.intents),
            owned: keys.of(&state.owned),
            lb: state.lb.clone(),
            keys,
        }
    }

    /// Whether `state` (after `mutate`) with `owned` as its ownership record differs from the
    /// state as loaded.
    fn changed(&self, state: &State, owned: &Owned) -> bool {
        self.keys.of(&state.intents) != self.intents
            || self.keys.of(owned) != self.owned
            || state.lb != self.lb
    }
}

/// 128-bit fingerprints under keys drawn at random for this process (two SipHash keys): two
/// different values share one with a chance of 2⁻¹²⁸, whatever the values are.
struct Fingerprints(std::hash::RandomState, std::hash::RandomState);

impl Fingerprints {
    fn new() -> Self {
        Fingerprints(Default::default(), Default::default())
    }

    fn of<T: std::hash::Hash>(&self, value: &T) -> u128 {
        use std::hash::BuildHasher;
        (u128::from(self.0.hash_one(value)) << 64) | u128::from(self.1.hash_one(value))
    }
}

/// Verification of the backend steps (all applied, each acknowledged): the plan for `state`
/// must now be empty. Computed against the snapshot with the acknowledged changes applied
/// ([`after_acks`] says why that is equivalent to observing again), or against a fresh
/// observation when the plan changed a sysctl.
fn verify_host(sys: &Sys, state: &State, mut snap: Snapshot, steps: &[Step]) -> Vec<String> {
    let applied = steps.iter().filter_map(|s| match s {
        Step::Host(c) => Some(c),
        _ => None,
    });
    let check = match after_acks(std::mem::take(&mut snap.observed), applied) {
        Some(observed) => {
            snap.observed = observed;
            plan_from(state, &mut snap).map(|(p, _)| p)
        }
        None => {
            drop(snap);
            plan_for(sys, state).map(|(p, _, _)| p)
        }
    };
    match check {
        Ok(check) => check
            .changes
            .iter()
            .flat_map(|c| c.commands())
            .map(|c| format!("still pending: {c}"))
            .collect(),
        Err(e) => vec![format!("observing again: {e}")],
    }
}

fn union(a: &Owned, b: &Owned) -> Owned {
    let mut o = a.clone();
    o.addrs.extend(b.addrs.iter().cloned());
    o.rules.extend(b.rules.iter().cloned());
    o.routes.extend(b.routes.iter().cloned());
    for (k, v) in &b.sysctl_prior {
        o.sysctl_prior.entry(k.clone()).or_insert_with(|| v.clone());
    }
    o
}

/// Print a converge report (human or JSON) and map it to an outcome.
pub fn print_report(ctx: &Ctx, report: &Report) -> Outcome {
    if ctx.global.json {
        ctx.emit_json(&json!({
            "changes": report.commands(),
            "applied": report.applied,
            "dry_run": ctx.global.dry_run,
            "notes": report.plan.notes,
        }));
    } else if ctx.global.dry_run {
        if report.is_empty() {
            ctx.say("# unchanged: nothing to do");
        }
        // Plain lines, so `lbctl … --dry-run | sh` is possible.
        if !ctx.global.quiet {
            for c in report.command_lines() {
                println!("{c}");
            }
        }
    } else if report.is_empty() {
        ctx.say("unchanged");
    } else {
        if !ctx.global.quiet {
            for c in report.command_lines() {
                ctx.say(c);
            }
        }
        ctx.say(format!("applied {} change(s)", report.len()));
    }
    Outcome::Clean
}
