//! `lbctl lb`: the balancer, as kernel IPVS over generic netlink, direct routing (DSR) by default.
//!
//! Every mutating command has the same shape as the backend engine (`crate::engine`):
//! 1. parse and validate the whole request: bad input is exit 2 before IPVS is even opened;
//! 2. open IPVS ("no IPVS" is exit 2 with a `modprobe ip_vs` hint; no CAP_NET_ADMIN is exit 77),
//!    take the journal lock, list the table;
//! 3. plan: a list of typed [`Change`]s whose `Display` is the `ipvsadm` command line, so
//!    `--dry-run` prints a script (`| sh` works where ipvsadm is installed);
//! 4. apply in order, undo in reverse order on failure, then list again and check that every
//!    touched service is exactly as predicted (otherwise undo everything).
//!
//! Adds and deletes are idempotent ("unchanged" when the object is already as asked), like
//! `vip add`. `lb apply -f` is declarative: it converges the services of the file (settings and
//! exactly their real servers), deletes services that the same file created earlier and no
//! longer lists (recorded in `lb-owned.json` in the journal directory), and leaves every other
//! service alone unless `--prune` is given.
//!
//! `--dry-run` works on a host without IPVS: it warns and plans against an empty table (useful to
//! check an LB file in CI). `list` and `save` there fail with the "no IPVS" error.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::IpAddr;

use serde_json::{json, Value};

use super::Env;
use crate::cli::lb::{
    ApplyArgs, BackendCmd, BackendId, BackendOpts, LbCmd, ListArgs, RestoreArgs, ServiceCmd,
    ServiceId, ServiceOpts,
};
use crate::error::{Error, Result};
use crate::ipvs::plan::{self, Change, NumberedRule, Table};
use crate::ipvs::spec::{self, key_name, parse_rip, parse_service_key, DestSpec, ServiceSpec};
use crate::ipvs::text::{self, addr_port, Rule, SaveDialect};
use crate::ipvs::{
    self, Client, Destination, Family, Forward, ListKind, ListOptions, Protocol, Scheduler,
    ServiceEntry, ServiceFlags, ServiceKey, Stats,
};
use crate::{usage, Ctx, Outcome};

/// The message for a kernel without the "IPVS" generic-netlink family.
pub const NO_IPVS: &str = "this kernel has no IPVS; try modprobe ip_vs \
(IPVS needs CONFIG_IP_VS, and its table is per network namespace)";

// =============================================================================================
// dispatch
// =============================================================================================

pub fn run(ctx: &Ctx, env: &Env, cmd: LbCmd) -> Result<Outcome> {
    match cmd {
        LbCmd::Service(ServiceCmd::Add { id, opts }) => service_add(ctx, env, &id, &opts),
        LbCmd::Service(ServiceCmd::Edit { id, opts }) => service_edit(ctx, env, &id, &opts),
        LbCmd::Service(ServiceCmd::Del { id }) => service_del(ctx, env, &id),
        LbCmd::Backend(BackendCmd::Add { id, opts }) => backend_add(ctx, env, &id, &opts),
        LbCmd::Backend(BackendCmd::Edit { id, opts }) => backend_edit(ctx, env, &id, &opts),
        LbCmd::Backend(BackendCmd::Del { id }) => backend_del(ctx, env, &id),
        LbCmd::Drain(a) => drain(ctx, env, &a.id),
        LbCmd::List(a) => list(ctx, env, &a),
        LbCmd::Save => save(ctx),
        LbCmd::Restore(a) => restore(ctx, env, &a),
        LbCmd::Apply(a) => apply(ctx, env, &a),
        LbCmd::Run(a) => super::lbrun::run(ctx, env, &a),
        LbCmd::Status(a) => super::lbrun::status(ctx, env, &a),
        LbCmd::Maglev(a) => super::lbrun::maglev_report(ctx, &a),
    }
}

// =============================================================================================
// kernel access and the shared execute/report step
// =============================================================================================

/// An IPVS error as lbctl reports it (and its exit code).
fn ipvs_err(e: ipvs::Error) -> Error {
    match e {
        ipvs::Error::NoIpvs => Error::Runtime(anyhow::anyhow!(NO_IPVS)),
        // one line, like every other lbctl error
        e @ ipvs::Error::Permission { .. } => {
            let s = e.to_string();
            Error::Privilege(match s.split_once("\n  hint: ") {
                Some((what, hint)) => format!("{what} ({hint})"),
                None => s,
            })
        }
        e @ (ipvs::Error::Invalid { .. } | ipvs::Error::Parse(_)) => Error::Usage(e.to_string()),
        e => Error::Runtime(anyhow::anyhow!(e.to_string())),
    }
}

/// The kernel side of a command: a client, or nothing for a dry run on a host without IPVS.
struct Ipvs {
    client: Option<Client>,
    _lock: Option<crate::journal::Lock>,
}

impl Ipvs {
    /// For reading.
    fn read() -> Result<Client> {
        Client::open().map_err(ipvs_err)
    }

    /// For changing: privilege checked and journal lock held, unless `--dry-run`.
    fn change(ctx: &Ctx, env: &Env, what: &str) -> Result<Ipvs> {
        let client = match Client::open() {
            Ok(c) => Some(c),
            Err(ipvs::Error::NoIpvs) if ctx.global.dry_run => {
                ctx.warn(
                    "this kernel has no IPVS (try modprobe ip_vs): planning against an empty \
                     IPVS table",
                );
                None
            }
            Err(e) => return Err(ipvs_err(e)),
        };
        let lock = if ctx.global.dry_run {
            None
        } else {
            crate::sys::require_net_admin(what)?;
            Some(env.journal.lock()?)
        };
        Ok(Ipvs {
            client,
            _lock: lock,
        })
    }

    /// The current table (empty without IPVS).
    fn table(&mut self) -> Result<Table> {
        match &mut self.client {
            Some(c) => Ok(Table::from_listing(&c.services().map_err(ipvs_err)?)),
            None => Ok(Table::default()),
        }
    }
}

/// What a command wants to change.
#[derive(Debug)]
struct Planned {
    changes: Vec<Change>,
    /// Said before the changes (e.g. "turning mh-fallback on").
    notes: Vec<String>,
    /// Said when there is nothing to do.
    unchanged: String,
}

impl Planned {
    fn none(why: impl Into<String>) -> Self {
        Planned {
            changes: Vec::new(),
            notes: Vec::new(),
            unchanged: why.into(),
        }
    }

    fn one(c: Change) -> Self {
        Planned {
            changes: vec![c],
            notes: Vec::new(),
            unchanged: String::new(),
        }
    }
}

/// Print the plan (dry run) or apply it with rollback and verification, then report.
fn finish(ctx: &Ctx, ipvs: &mut Ipvs, before: &Table, p: Planned) -> Result<Outcome> {
    let lines: Vec<String> = p.changes.iter().map(|c| c.to_string()).collect();
    let dry = ctx.global.dry_run;
    let mut applied = false;
    if !dry && !p.changes.is_empty() {
        let client = ipvs
            .client
            .as_mut()
            .expect("a client is always open outside --dry-run");
        let detail = |l: &str| ctx.detail(l);
        plan::execute(client, before, &p.changes, &detail).map_err(|e| {
            if e.is_permission() {
                Error::Privilege(e.to_string())
            } else {
                Error::Runtime(anyhow::anyhow!(e.to_string()))
            }
        })?;
        applied = true;
    }
    if ctx.global.json {
        ctx.emit_json(&json!({
            "changes": lines,
            "applied": applied,
            "dry_run": dry,
            "notes": p.notes,
        }));
        return Ok(Outcome::Clean);
    }
    if dry {
        if ctx.global.quiet {
            return Ok(Outcome::Clean);
        }
        // plain lines (comments for the rest), so `lbctl -n lb … | sh` works
        for n in &p.notes {
            println!("# note: {n}");
        }
        if lines.is_empty() {
            println!("# unchanged: {}", p.unchanged);
        }
        for l in &lines {
            println!("{l}");
        }
        return Ok(Outcome::Clean);
    }
    for n in &p.notes {
        ctx.say(format!("note: {n}"));
    }
    if lines.is_empty() {
        ctx.say(format!("unchanged: {}", p.unchanged));
    } else {
        for l in &lines {
            ctx.say(l);
        }
        ctx.say(format!("applied {} change(s)", lines.len()));
    }
    Ok(Outcome::Clean)
}

// =============================================================================================
// services
// =============================================================================================

fn service_key(id: &ServiceId) -> Result<ServiceKey> {
    parse_service_key(
        id.service.as_deref(),
        id.proto.map(Protocol::from),
        id.fwmark,
        id.ipv6,
    )
    .map_err(Error::Usage)
}

fn service_add(ctx: &Ctx, env: &Env, id: &ServiceId, opts: &ServiceOpts) -> Result<Outcome> {
    let key = service_key(id)?;
    let want = opts.spec().build(key, None).map_err(Error::Usage)?;
    let mut ipvs = Ipvs::change(ctx, env, "lb service add")?;
    let before = ipvs.table()?;
    let p = match before.get(&key) {
        None => Planned::one(Change::AddService(want)),
        Some(e) if plan::same_service(&e.service, &want) => Planned::none(format!(
            "service {} already exists with these settings",
            key_name(&key)
        )),
        Some(e) => {
            return Err(usage!(
                "service {} already exists with other settings (`ipvsadm {}`); change it with \
                 `lbctl lb service edit`",
                key_name(&key),
                e.service
            ))
        }
    };
    finish(ctx, &mut ipvs, &before, p)
}

/// Checks on edit options that need no current value.
fn precheck_service_opts(key: ServiceKey, opts: &ServiceOpts) -> Result<ServiceSpec> {
    let spec = opts.spec();
    if spec == ServiceSpec::default() {
        return Err(usage!(
            "nothing to change: give at least one option (--scheduler, --persistent, …)"
        ));
    }
    if let Some(name) = &spec.scheduler {
        // builds a service from the defaults with only the scheduler-related options, which
        // catches unknown schedulers and foreign flag names
        ServiceSpec {
            scheduler: Some(name.clone()),
            sched_flags: spec.sched_flags.clone(),
            mh_port: spec.mh_port,
            mh_fallback: spec.mh_fallback,
            persistent: Some(spec.persistent.unwrap_or(60)),
            netmask: None,
        }
        .build(key, None)
        .map_err(Error::Usage)?;
    }
    if let Some(t) = spec.persistent.filter(|t| *t > 0) {
        ServiceSpec {
            persistent: Some(t),
            netmask: spec.netmask.clone(),
            ..Default::default()
        }
        .build(key, None)
        .map_err(Error::Usage)?;
    }
    Ok(spec)
}

fn service_edit(ctx: &Ctx, env: &Env, id: &ServiceId, opts: &ServiceOpts) -> Result<Outcome> {
    let key = service_key(id)?;
    let spec = precheck_service_opts(key, opts)?;
    let mut ipvs = Ipvs::change(ctx, env, "lb service edit")?;
    let before = ipvs.table()?;
    let Some(e) = before.get(&key) else {
        return Err(usage!(
            "no service {} (create it with `lbctl lb service add`)",
            key_name(&key)
        ));
    };
    let want = spec.build(key, Some(&e.service)).map_err(Error::Usage)?;
    let p = if plan::same_service(&e.service, &want) {
        Planned::none(format!(
            "service {} already has these settings",
            key_name(&key)
        ))
    } else {
        Planned::one(Change::EditService {
            from: e.service.clone(),
            to: want,
        })
    };
    finish(ctx, &mut ipvs, &before, p)
}

fn service_del(ctx: &Ctx, env: &Env, id: &ServiceId) -> Result<Outcome> {
    let key = service_key(id)?;
    let mut ipvs = Ipvs::change(ctx, env, "lb service del")?;
    let before = ipvs.table()?;
    let p = match before.get(&key) {
        None => Planned::none(format!("no service {}", key_name(&key))),
        Some(e) => Planned::one(Change::DelService {
            service: e.service.clone(),
            dests: e.dests.clone(),
        }),
    };
    finish(ctx, &mut ipvs, &before, p)
}

// =============================================================================================
// real servers
// =============================================================================================

/// The service key and the real server's address and port (defaulted to the service port).
fn backend_target(id: &BackendId) -> Result<(ServiceKey, IpAddr, u16)> {
    let key = parse_service_key(
        Some(&id.service),
        id.proto.map(Protocol::from),
        None,
        id.ipv6,
    )
    .map_err(Error::Usage)?;
    let (addr, port) = parse_rip(&id.rip, &key).map_err(Error::Usage)?;
    Ok((key, addr, port))
}

/// The arguments that name `key` on lbctl's command line.
fn cli_args(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Inet {
            protocol: Protocol::Tcp,
            addr,
            port,
        } => addr_port(addr, *port),
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => format!(
            "{} --proto {}",
            addr_port(addr, *port),
            protocol.list_name().to_lowercase()
        ),
        ServiceKey::Fwmark {
            mark,
            family: Family::Inet,
        } => format!("fwmark:{mark}"),
        ServiceKey::Fwmark { mark, .. } => format!("fwmark:{mark} --ipv6"),
    }
}

fn no_service(key: &ServiceKey) -> Error {
    usage!(
        "no service {} (create it first with `lbctl lb service add {}`)",
        key_name(key),
        cli_args(key)
    )
}

fn backend_add(ctx: &Ctx, env: &Env, id: &BackendId, opts: &BackendOpts) -> Result<Outcome> {
    let (key, addr, port) = backend_target(id)?;
    let want = opts
        .spec()
        .build(&key, addr, port, None)
        .map_err(Error::Usage)?;
    let mut ipvs = Ipvs::change(ctx, env, "lb backend add")?;
    let before = ipvs.table()?;
    let e = before.get(&key).ok_or_else(|| no_service(&key))?;
    let name = addr_port(&addr, port);
    let p = match e.dest(addr, port) {
        None => Planned::one(Change::AddDest { key, dest: want }),
        Some(d) if plan::same_dest(d, &want) => Planned::none(format!(
            "real server {name} of {} already exists with these settings",
            key_name(&key)
        )),
        Some(d) => {
            return Err(usage!(
                "real server {name} of {} already exists with other settings ({d}); change it \
                 with `lbctl lb backend edit`",
                key_name(&key)
            ))
        }
    };
    finish(ctx, &mut ipvs, &before, p)
}

fn backend_edit(ctx: &Ctx, env: &Env, id: &BackendId, opts: &BackendOpts) -> Result<Outcome> {
    let (key, addr, port) = backend_target(id)?;
    let spec = opts.spec();
    if spec == DestSpec::default() {
        return Err(usage!(
            "nothing to change: give at least one option (--weight, --method, …)"
        ));
    }
    // what can be checked without the current values: ranges, and the port and family rules
    // when the method is given (otherwise they depend on the current method)
    if spec.method.is_some() {
        spec.build(&key, addr, port, None).map_err(Error::Usage)?;
    } else {
        if let Some(w) = spec.weight.filter(|w| *w > ipvs::model::MAX_WEIGHT) {
            return Err(Error::Usage(
                ipvs::ValidationError::WeightOutOfRange(w).to_string(),
            ));
        }
        if let (Some(upper), Some(lower)) = (spec.u_threshold, spec.l_threshold) {
            if lower > upper {
                return Err(Error::Usage(
                    ipvs::ValidationError::ThresholdOrder { upper, lower }.to_string(),
                ));
            }
        }
    }
    let mut ipvs = Ipvs::change(ctx, env, "lb backend edit")?;
    let before = ipvs.table()?;
    let e = before.get(&key).ok_or_else(|| no_service(&key))?;
    let name = addr_port(&addr, port);
    let Some(d) = e.dest(addr, port) else {
        return Err(usage!(
            "no real server {name} in service {} (add it with `lbctl lb backend add`)",
            key_name(&key)
        ));
    };
    let want = spec
        .build(&key, addr, port, Some(d))
        .map_err(Error::Usage)?;
    let p = if plan::same_dest(d, &want) {
        Planned::none(format!("real server {name} already has these settings"))
    } else {
        Planned::one(Change::EditDest {
            key,
            from: d.clone(),
            to: want,
        })
    };
    finish(ctx, &mut ipvs, &before, p)
}

fn backend_del(ctx: &Ctx, env: &Env, id: &BackendId) -> Result<Outcome> {
    let (key, addr, port) = backend_target(id)?;
    let mut ipvs = Ipvs::change(ctx, env, "lb backend del")?;
    let before = ipvs.table()?;
    let name = addr_port(&addr, port);
    let p = match before.get(&key).and_then(|e| e.dest(addr, port)) {
        None => Planned::none(format!(
            "no real server {name} in service {}",
            key_name(&key)
        )),
        Some(d) => Planned::one(Change::DelDest {
            key,
            dest: d.clone(),
        }),
    };
    finish(ctx, &mut ipvs, &before, p)
}

/// The plan for draining the real server at `addr` (`port`: None = the only one at that
/// address) of the service `e`.
fn drain_plan(e: &plan::Entry, addr: IpAddr, port: Option<u16>) -> Result<Planned, String> {
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

fn drain(ctx: &Ctx, env: &Env, id: &BackendId) -> Result<Outcome> {
    let key = parse_service_key(
        Some(&id.service),
        id.proto.map(Protocol::from),
        None,
        id.ipv6,
    )
    .map_err(Error::Usage)?;
    let (addr, port) = text::parse_addr_port(&id.rip)
        .map_err(|e| usage!("invalid real server '{}': {}", id.rip, e.replace('`', "'")))?;
    let mut ipvs = Ipvs::change(ctx, env, "lb drain")?;
    let before = ipvs.table()?;
    let e = before.get(&key).ok_or_else(|| no_service(&key))?;
    let p = drain_plan(e, addr, port).map_err(Error::Usage)?;
    finish(ctx, &mut ipvs, &before, p)
}

// =============================================================================================
// list / save
// =============================================================================================

fn stats_json(s: &Stats) -> Value {
    json!({
        "conns": s.conns, "inpkts": s.inpkts, "outpkts": s.outpkts,
        "inbytes": s.inbytes, "outbytes": s.outbytes,
        "cps": s.cps, "inpps": s.inpps, "outpps": s.outpps, "inbps": s.inbps, "outbps": s.outbps,
    })
}

fn method_json(f: Forward) -> &'static str {
    match f {
        Forward::Dr => "dr",
        Forward::Tun => "tun",
        Forward::Nat => "nat",
        Forward::Local => "local",
    }
}

/// One service as JSON (stable field names; documented in the README's `lb` section).
pub fn service_json(e: &ServiceEntry) -> Value {
    let s = &e.service;
    let (protocol, address, port, fwmark) = match s.key {
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => (
            Some(protocol.list_name().to_lowercase()),
            Some(addr.to_string()),
            Some(port),
            None,
        ),
        ServiceKey::Fwmark { mark, .. } => (None, None, None, Some(mark)),
    };
    let backends: Vec<Value> = e
        .dests
        .iter()
        .map(|d| {
            json!({
                "address": d.dest.addr.to_string(),
                "port": d.dest.port,
                "method": method_json(d.dest.fwd),
                "weight": d.dest.weight,
                "u_threshold": d.dest.u_thresh,
                "l_threshold": d.dest.l_thresh,
                "active_conns": d.active_conns,
                "inactive_conns": d.inact_conns,
                "persistent_conns": d.persist_conns,
                "stats": stats_json(&d.stats),
            })
        })
        .collect();
    json!({
        "service": key_name(&s.key),
        "family": match s.key.family() { Family::Inet => "ipv4", Family::Inet6 => "ipv6" },
        "protocol": protocol,
        "address": address,
        "port": port,
        "fwmark": fwmark,
        "scheduler": s.scheduler.name(),
        "flags": s.flags.sched_flag_names(&s.scheduler),
        "persistent": s.is_persistent().then_some(s.timeout),
        "netmask": s.is_persistent().then(|| s.netmask.to_string()),
        "pe": s.pe_name,
        "one_packet": s.flags.contains(ServiceFlags::ONE_PACKET),
        "stats": stats_json(&e.stats),
        "backends": backends,
    })
}

fn list(ctx: &Ctx, env: &Env, a: &ListArgs) -> Result<Outcome> {
    let filter = match &a.service {
        Some(s) => Some(
            parse_service_key(Some(s), a.proto.map(Protocol::from), None, a.ipv6)
                .map_err(Error::Usage)?,
        ),
        None => None,
    };
    let mut c = match Client::open() {
        Ok(c) => c,
        Err(ipvs::Error::NoIpvs) => {
            // No IPVS: what `lb run` programs with the nft engine, if anything.
            let nft: Vec<_> = crate::lb::status::read_all(env.journal.dir())?
                .into_iter()
                .filter(|s| s.engine == "nft" && s.alive())
                .collect();
            if nft.is_empty() {
                return Err(ipvs_err(ipvs::Error::NoIpvs));
            }
            return super::lbrun::list_nft(ctx, &nft, filter.as_ref());
        }
        Err(e) => return Err(ipvs_err(e)),
    };
    let info = c.info().map_err(ipvs_err)?;
    let entries = match filter {
        Some(k) => match c.service(&k) {
            Ok(e) => vec![e],
            Err(ipvs::Error::Kernel {
                errno: libc::ESRCH, ..
            }) => return Err(usage!("no service {}", key_name(&k))),
            Err(e) => return Err(ipvs_err(e)),
        },
        None => c.services().map_err(ipvs_err)?,
    };
    if ctx.global.json {
        let services: Vec<Value> = text::sorted(&entries).iter().map(service_json).collect();
        ctx.emit_json(&json!({
            "version": info.version_string(),
            "conn_tab_size": info.conn_tab_size,
            "services": services,
        }));
        return Ok(Outcome::Clean);
    }
    let kind = if a.stats {
        ListKind::Stats
    } else if a.rate {
        ListKind::Rate
    } else {
        ListKind::Plain
    };
    let opts = ListOptions {
        kind,
        exact: a.exact,
    };
    let out = match filter {
        // like `ipvsadm -Ln -t SERVICE`: no version line
        Some(_) => text::format_list(None, &entries, opts),
        None => text::format_list(Some(&info), &entries, opts),
    };
    ctx.say(out.trim_end_matches('\n'));
    Ok(Outcome::Clean)
}

fn save(ctx: &Ctx) -> Result<Outcome> {
    let mut c = Ipvs::read()?;
    let entries = c.services().map_err(ipvs_err)?;
    // ipvsadm -S -n, plus -x/-y on real servers with thresholds (which ipvsadm -R accepts)
    let out = text::save(&entries, SaveDialect::Lossless);
    if ctx.global.json {
        let rules: Vec<&str> = out.lines().collect();
        ctx.emit_json(&json!({ "rules": rules }));
    } else {
        // the data itself: printed even with --quiet
        print!("{out}");
    }
    Ok(Outcome::Clean)
}

// =============================================================================================
// restore
// =============================================================================================

/// Parse ipvsadm rule text, keeping line numbers; every rule is validated.
pub fn parse_rule_text(text: &str, origin: &str) -> Result<Vec<NumberedRule>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let t = t.strip_prefix("ipvsadm ").map(str::trim_start).unwrap_or(t);
        let rule = text::parse_rule(t)
            .map_err(|e| usage!("{origin} line {line}: {}: {t}", e.replace('`', "'")))?;
        let checked = match &rule {
            Rule::AddDest(k, d) | Rule::EditDest(k, d) => spec::validate_dest(k, d),
            r => r.validate().map_err(|e| e.to_string()),
        };
        checked.map_err(|e| usage!("{origin} line {line}: {e}: {t}"))?;
        out.push(NumberedRule { line, rule });
    }
    Ok(out)
}

fn restore(ctx: &Ctx, env: &Env, a: &RestoreArgs) -> Result<Outcome> {
    let (origin, text) = match &a.file {
        Some(p) if p.as_os_str() != "-" => (
            p.display().to_string(),
            std::fs::read_to_string(p).map_err(|e| usage!("cannot read {}: {e}", p.display()))?,
        ),
        _ => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| usage!("cannot read standard input: {e}"))?;
            ("<stdin>".to_string(), s)
        }
    };
    let rules = parse_rule_text(&text, &origin)?;
    // the rules must also make sense on their own (against an empty table), whatever the kernel
    // holds: this catches a real server before its service, a duplicate, …
    let standalone = if a.flush {
        let c = plan::changes_of_rules(&Table::default(), &rules)
            .map_err(|e| usage!("{origin} {e}"))?;
        Some(plan::simulate(&Table::default(), &c).map_err(|e| usage!("{origin}: {e}"))?)
    } else {
        None
    };
    let mut ipvs = Ipvs::change(ctx, env, "lb restore")?;
    let before = ipvs.table()?;
    let p = match standalone {
        Some(desired) => Planned {
            changes: plan::diff(&desired, &before, &|_| true),
            notes: Vec::new(),
            unchanged: "the IPVS table already is exactly the file's".into(),
        },
        None => Planned {
            changes: plan::changes_of_rules(&before, &rules).map_err(|e| {
                usage!(
                    "{origin} {e} (nothing was changed; `lb restore --flush` replaces the \
                     whole table)"
                )
            })?,
            notes: Vec::new(),
            unchanged: "no rules".into(),
        },
    };
    finish(ctx, &mut ipvs, &before, p)
}

// =============================================================================================
// apply
// =============================================================================================

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

fn apply(ctx: &Ctx, env: &Env, a: &ApplyArgs) -> Result<Outcome> {
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &str) -> std::result::Result<LbCmd, clap::Error> {
        let argv = std::iter::once("lbctl").chain(args.split_whitespace());
        match Cli::try_parse_from(argv)?.command {
            Command::Lb(c) => Ok(c),
            other => panic!("not an lb command: {other:?}"),
        }
    }

    #[test]
    fn clap_shapes() {
        for ok in [
            "lb service add 198.18.0.100:80",
            "lb service add 198.18.0.100:80 --scheduler mh --mh-port --mh-fallback --persistent 300",
            "lb service add --fwmark 7 --ipv6 -s rr",
            "lb service add fwmark:7",
            "lb service edit 198.18.0.100:80 --mh-port=false",
            "lb service del [2001:db8::100]:443 --proto udp",
            "lb backend add 198.18.0.100:80 198.18.0.11 --weight 3 --method dr",
            "lb backend edit 198.18.0.100:80 198.18.0.11:80 -w 0",
            "lb backend del fwmark:7 198.18.0.11",
            "lb drain 198.18.0.100:80 198.18.0.11",
            "lb list --stats",
            "lb list 198.18.0.100:80 --rate --exact",
            "lb save",
            "lb restore",
            "lb restore - --flush",
            "lb apply -f x.toml --prune",
            "--json lb list",
            "--dry-run lb apply -f x.toml",
        ] {
            parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "lb service add",
            "lb service add 198.18.0.100:80 --proto icmp",
            "lb service add 198.18.0.100:80 --mh-port maybe",
            "lb backend add 198.18.0.100:80",
            "lb backend add 198.18.0.100:80 198.18.0.11 --method masq",
            "lb backend add 198.18.0.100:80 198.18.0.11 --weight -1",
            "lb list --stats --rate",
            "lb apply",
            "lb drain 198.18.0.100:80",
        ] {
            assert!(parse(bad).is_err(), "{bad} should not parse");
        }
        // `--mh-port` takes no separate value, so a following positional is not eaten
        let LbCmd::Service(ServiceCmd::Add { id, opts }) =
            parse("lb service add --mh-port 198.18.0.100:80 -s mh").unwrap()
        else {
            panic!()
        };
        assert_eq!(id.service.as_deref(), Some("198.18.0.100:80"));
        assert_eq!(opts.mh_port, Some(true));
        let LbCmd::Service(ServiceCmd::Add { opts, .. }) =
            parse("lb service add 198.18.0.100:80 -b sh-port,sh-fallback -s sh").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            opts.sched_flags,
            Some(vec!["sh-port".to_string(), "sh-fallback".to_string()])
        );
    }

    fn opts_of(args: &str) -> (ServiceId, ServiceOpts) {
        match parse(args).unwrap() {
            LbCmd::Service(ServiceCmd::Add { id, opts } | ServiceCmd::Edit { id, opts }) => {
                (id, opts)
            }
            _ => panic!(),
        }
    }

    #[test]
    fn service_validation_without_syscalls() {
        let (id, opts) = opts_of("lb service add 198.18.0.100:80 -s mh --mh-port -p 300");
        let s = opts.spec().build(service_key(&id).unwrap(), None).unwrap();
        assert_eq!(
            Change::AddService(s).to_string(),
            "ipvsadm -A -t 198.18.0.100:80 -s mh -p 300 -b mh-port"
        );
        for (args, err) in [
            (
                "lb service add 198.18.0.100:80 -s bogus",
                "unknown scheduler",
            ),
            (
                "lb service add 198.18.0.100:80 --mh-port",
                "mh scheduler only",
            ),
            ("lb service add 198.18.0.100 -s rr", "has no port"),
            ("lb service add 198.18.0.100:80 --fwmark 3", "not both"),
            ("lb service edit 198.18.0.100:80", "nothing to change"),
            (
                "lb service edit 198.18.0.100:80 -s nope",
                "unknown scheduler",
            ),
            (
                "lb service edit 198.18.0.100:80 -s mh -b sh-port",
                "does not apply",
            ),
            (
                "lb service edit 198.18.0.100:80 -p 300 -M 255.0.255.0",
                "contiguous",
            ),
        ] {
            let (id, opts) = opts_of(args);
            let r = service_key(&id).and_then(|k| {
                if args.contains(" edit ") {
                    precheck_service_opts(k, &opts).map(|_| ())
                } else {
                    opts.spec().build(k, None).map(|_| ()).map_err(Error::Usage)
                }
            });
            let e = r.unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args}");
            assert!(e.to_string().contains(err), "{args}: {e}");
        }
        // an edit of only the mh flags is not refused up front (the service may well be mh)
        let (id, opts) = opts_of("lb service edit 198.18.0.100:80 --mh-fallback");
        precheck_service_opts(service_key(&id).unwrap(), &opts).unwrap();
    }

    #[test]
    fn backend_validation_without_syscalls() {
        let target = |args: &str| match parse(args).unwrap() {
            LbCmd::Backend(BackendCmd::Add { id, opts } | BackendCmd::Edit { id, opts }) => {
                let (k, a, p) = backend_target(&id)?;
                opts.spec().build(&k, a, p, None).map_err(Error::Usage)
            }
            _ => panic!(),
        };
        let d = target("lb backend add [2001:db8::100]:443 2001:db8::11 -w 5").unwrap();
        assert_eq!(d.to_string(), "-r [2001:db8::11]:443 -g -w 5");
        let e = target("lb backend add 198.18.0.100:80 198.18.0.11:8080").unwrap_err();
        assert!(
            e.to_string().contains("DR forwarding does not change"),
            "{e}"
        );
        assert!(target("lb backend add 198.18.0.100:80 198.18.0.11:8080 --method nat").is_ok());
        for (args, err) in [
            (
                "lb backend add 198.18.0.100:80 198.18.0.300",
                "invalid real server",
            ),
            ("lb backend add 198.18.0.100 198.18.0.11", "has no port"),
            (
                "lb backend add 198.18.0.100:80 198.18.0.11 -w 4294967295",
                "weight",
            ),
            ("lb backend add 198.18.0.100:80 2001:db8::11", "tunnel"),
        ] {
            let e = target(args).unwrap_err();
            assert!(e.to_string().contains(err), "{args}: {e}");
        }
    }

    fn entry(sched: &str, flags: ServiceFlags, dests: &[(&str, u32)]) -> plan::Entry {
        let key = ServiceKey::tcp("198.18.0.100:80".parse().unwrap());
        plan::Entry {
            service: ipvs::Service::new(key, sched).flags(flags),
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
        let p = drain_plan(&e, "198.18.0.11".parse().unwrap(), None).unwrap();
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
        let p = drain_plan(&e, "198.18.0.11".parse().unwrap(), Some(80)).unwrap();
        assert!(p.notes[0].contains("sh-fallback"), "{:?}", p.notes);

        let e = entry("rr", ServiceFlags::empty(), &[("198.18.0.11:80", 1)]);
        let p = drain_plan(&e, "198.18.0.11".parse().unwrap(), None).unwrap();
        assert_eq!(p.changes.len(), 1);
        assert!(p.notes.is_empty());

        // already drained: nothing to do
        let e = entry("mh", ServiceFlags::MH_FALLBACK, &[("198.18.0.11:80", 0)]);
        let p = drain_plan(&e, "198.18.0.11".parse().unwrap(), None).unwrap();
        assert!(p.changes.is_empty());
        assert!(p.unchanged.contains("already drained"));

        let e = entry("rr", ServiceFlags::empty(), &[("198.18.0.11:80", 1)]);
        let err = drain_plan(&e, "198.18.0.99".parse().unwrap(), None).unwrap_err();
        assert!(err.contains("no real server 198.18.0.99"), "{err}");
    }

    #[test]
    fn rule_text_is_validated_with_line_numbers() {
        let ok = "# saved\n\nipvsadm -A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1\n";
        let r = parse_rule_text(ok, "f").unwrap();
        assert_eq!(r.iter().map(|r| r.line).collect::<Vec<_>>(), [3, 4]);
        for (text, err) in [
            (
                "-A -t 198.18.0.100:80 -s rr\n-X",
                "f line 2: unknown or unsupported option '-X'",
            ),
            (
                "-A -t 198.18.0.100:80 -s bogus",
                "f line 1: unknown scheduler 'bogus'",
            ),
            (
                "-a -t 198.18.0.100:80 -r 198.18.0.11:8080 -g",
                "f line 1: real server 198.18.0.11:8080 cannot serve",
            ),
        ] {
            let e = parse_rule_text(text, "f").unwrap_err().to_string();
            assert!(e.starts_with(err), "{text}: {e}");
        }
    }

    #[test]
    fn list_json_field_names() {
        let e = ServiceEntry {
            service: ipvs::Service::new(ServiceKey::tcp("198.18.0.100:80".parse().unwrap()), "mh")
                .flags(ServiceFlags::MH_PORT)
                .persistent(300),
            stats: Stats::default(),
            dests: vec![ipvs::DestEntry {
                dest: Destination::dr("198.18.0.11:80".parse().unwrap()),
                active_conns: 2,
                inact_conns: 1,
                persist_conns: 0,
                stats: Stats::default(),
            }],
        };
        let v = service_json(&e);
        assert_eq!(v["service"], "198.18.0.100:80");
        assert_eq!(v["protocol"], "tcp");
        assert_eq!(v["flags"], json!(["mh-port"]));
        assert_eq!(v["persistent"], 300);
        assert_eq!(v["netmask"], "255.255.255.255");
        assert_eq!(v["backends"][0]["method"], "dr");
        assert_eq!(v["backends"][0]["active_conns"], 2);
        assert_eq!(v["stats"]["outpkts"], 0);
    }
}
