//! `lbctl lb run -c LB.toml`: the balancer daemon.
//!
//! One thread schedules checks and owns all state; a bounded pool runs the probes. Every result
//! goes through the rise/fall state machine; a transition is logged (one line) and marks the
//! data path dirty, which is then converged (IPVS diff, or changed Maglev slots in one nft
//! transaction). The VIPs are owned on the balancer NIC through the plan/journal engine (so
//! `lbctl status`/`down` see them) and announced with gratuitous ARP / unsolicited NA.
//! SIGHUP reloads the file (a bad file is logged and the running configuration kept); SIGTERM
//! and SIGINT stop, leaving the data path as it is unless `--cleanup`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::net::{IpAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use crate::context::Env;
use crate::engine::converge;
use crate::error::{Error, Result};
use crate::ipvs::plan::Entry;
use crate::ipvs::spec::{self, key_name, LbFile};
use crate::ipvs::{Forward, Protocol, ServiceFlags, ServiceKey};
use crate::lb::announce::speaker::{self, Speaker};
use crate::lb::checks::{self, BackendId, Job, Pool};
use crate::lb::config::{EngineKind, OnFailure, Probe, ServiceRun};
use crate::lb::control::{self, Overrides};
use crate::lb::datapath::{nft_svc, DataPath, IpvsPath, NftDrift, NftPath, Want, WantBackend};
use crate::lb::health::{Health, State};
use crate::lb::nft::{self, Layout, Mac};
use crate::lb::status::{self, BackendStatus, LastCheck, RunStatus, ServiceStatus};
use crate::model::{IfName, Vip};
use crate::sys::capture::rfc3339;
use crate::sys::mac::fmt_mac;
use crate::sys::rawpkt::{self, DsrProbe};
use crate::sys::signals::{self, Restart, Signal};
use crate::{usage, Ctx, Outcome};

// Quorum, sorry server, notify hooks and `[ha]` supervision: methods of [`Daemon`], kept in
// their own file.
#[path = "service.rs"]
mod service;
// `lbctl lb drain --balancer`: withdraw, wait for the pinned flows, remove ([`crate::lb::drain`]).
#[path = "drain_daemon.rs"]
mod drain_daemon;

/// Size of each service's pinned-flow map (nft engine).
const FLOW_MAP_SIZE: u32 = 262_144;

/// SIGTERM and SIGINT stop the daemon; SIGHUP reloads its file.
const STOP: [Signal; 2] = [Signal::Term, Signal::Int];

fn install_signals() {
    signals::catch(&[Signal::Term, Signal::Int, Signal::Hup], Restart::No);
}

/// `lb run` options.
#[derive(Debug, Clone)]
pub struct RunOpts {
    pub config: PathBuf,
    pub cleanup: bool,
}

/// Which engine `auto` means here, and whether IPVS is usable.
fn pick_engine(want: EngineKind) -> Result<(EngineKind, Option<IpvsPath>)> {
    match want {
        EngineKind::Nft => Ok((EngineKind::Nft, None)),
        EngineKind::Ipvs => match IpvsPath::open() {
            Ok(p) => Ok((EngineKind::Ipvs, Some(p))),
            Err(crate::ipvs::Error::NoIpvs) => Err(usage!(
                "engine = \"ipvs\" but this kernel has no IPVS (modprobe ip_vs, or use engine = \"nft\")"
            )),
            Err(e) => Err(Error::Runtime(anyhow::anyhow!("opening IPVS: {e}"))),
        },
        EngineKind::Auto => match IpvsPath::open() {
            Ok(p) => Ok((EngineKind::Ipvs, Some(p))),
            Err(_) => Ok((EngineKind::Nft, None)),
        },
    }
}

/// Reject what the chosen engine cannot do, for every service at once.
fn validate_for(engine: EngineKind, file: &LbFile) -> Result<()> {
    if file.table.entries.is_empty() {
        return Err(usage!("the LB file has no [[service]]: nothing to balance"));
    }
    let mut problems = Vec::new();
    for e in &file.table.entries {
        let name = key_name(&e.service.key);
        if e.dests.is_empty() {
            problems.push(format!("{name}: no backends"));
        }
        for d in &e.dests {
            if d.fwd != Forward::Dr {
                problems.push(format!(
                    "{name}: backend {} is not DR: lb run is a DSR balancer",
                    d.addr
                ));
            }
        }
        if engine == EngineKind::Nft {
            match e.service.key {
                ServiceKey::Fwmark { .. } => {
                    problems.push(format!("{name}: fwmark services need engine = \"ipvs\""))
                }
                ServiceKey::Inet {
                    protocol: Protocol::Sctp,
                    ..
                } => problems.push(format!("{name}: SCTP needs engine = \"ipvs\"")),
                _ => {}
            }
            if e.service.flags.contains(ServiceFlags::PERSISTENT) {
                problems.push(format!(
                    "{name}: persistence needs engine = \"ipvs\" (the nft engine hashes flows)"
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(usage!(
            "{} cannot run with engine {}:\n  {}",
            file.name,
            engine.name(),
            problems.join("\n  ")
        ))
    }
}

struct Be {
    id: BackendId,
    weight: u32,
    health: Health,
    since: SystemTime,
    last: Option<LastCheck>,
    mac: Option<Mac>,
    next_due: Instant,
    in_flight: bool,
    slots: Option<usize>,
    /// State taken over from the previous run, not re-checked yet.
    stale: bool,
    /// The LB file's `disable_file`, and whether it existed at the last look.
    disable_file: Option<PathBuf>,
    file_drained: bool,
    /// Failed checks since start (metrics).
    failures: u64,
}

impl Be {
    /// The name runtime control uses (`198.18.0.11:80`).
    fn name(&self) -> String {
        crate::ipvs::text::addr_port(&self.id.rip, self.id.port)
    }
}

struct Svc {
    name: String,
    entry: Entry,
    run: ServiceRun,
    backends: Vec<Be>,
}

impl Svc {
    fn key(&self) -> ServiceKey {
        self.entry.service.key
    }

    fn vip(&self) -> Option<(IpAddr, u16)> {
        match self.entry.service.key {
            ServiceKey::Inet { addr, port, .. } => Some((addr, port)),
            ServiceKey::Fwmark { .. } => None,
        }
    }
}

/// One line per event, at most `rate` per second; the rest are counted and reported.
struct Log {
    json: bool,
    rate: u32,
    window: Instant,
    in_window: u32,
    suppressed: u64,
}

impl Log {
    fn emit(&mut self, event: &str, text: &str, fields: serde_json::Value) {
        let now = Instant::now();
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            if self.suppressed > 0 {
                let n = self.suppressed;
                self.suppressed = 0;
                self.line(
                    "log-suppressed",
                    &format!("{n} log line(s) suppressed (log_rate)"),
                    json!({ "count": n }),
                );
            }
            self.window = now;
            self.in_window = 0;
        }
        if self.in_window >= self.rate {
            self.suppressed += 1;
            return;
        }
        self.in_window += 1;
        self.line(event, text, fields);
    }

    fn line(&self, event: &str, text: &str, fields: serde_json::Value) {
        if self.json {
            let mut v =
                json!({ "time": rfc3339(SystemTime::now()), "event": event, "message": text });
            if let (Some(o), serde_json::Value::Object(f)) = (v.as_object_mut(), fields) {
                o.extend(f);
            }
            println!("{v}");
        } else {
            eprintln!("lbctl lb: {text}");
        }
    }
}

/// Exclusive per-name lock: one daemon per LB name and namespace.
fn lock(journal_dir: &Path, name: &str) -> Result<File> {
    let dir = status::dir(journal_dir);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.lock"));
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    if crate::sys::lock::try_lock_exclusive(&f).is_err() {
        let who = status::read(&status::path(journal_dir, name))
            .ok()
            .flatten()
            .map(|s| format!(" (PID {})", s.pid))
            .unwrap_or_default();
        return Err(usage!(
            "another `lb run` for {name} is running in this namespace{who}"
        ));
    }
    Ok(f)
}

struct Daemon<'a> {
    ctx: &'a Ctx,
    env: &'a Env,
    opts: RunOpts,
    name: String,
    iface: String,
    lb_mac: Mac,
    lb_ips: Vec<IpAddr>,
    path: DataPath,
    services: Vec<Svc>,
    log: Log,
    started: SystemTime,
    started_at: Instant,
    pid_start: u64,
    dirty: bool,
    programmed: bool,
    next_program: Instant,
    reload_error: Option<String>,
    packets: BTreeMap<String, u64>,
    /// Backends just removed whose pinned flows must be cut (nft engine).
    unpin: Vec<(ServiceKey, String, IpAddr, Mac)>,
    /// The previous run's status, applied once to the first configuration (restart).
    previous: Option<RunStatus>,
    repairs: u64,
    last_repair: Option<String>,
    /// The last data-path update failed (retried; the structure is checked meanwhile).
    program_failed: bool,
    /// Reconcile passes so far (the slot maps' contents are checked every fifth).
    reconciles: u64,
    /// `[bgp]`: the routing daemon and the VIPs' gates.
    speaker: Option<Speaker>,
    /// `[ha]`: keepalived owns the VIPs; lb run supervises it ([`crate::lb::ha`]).
    ha: Option<crate::lb::ha::keepalived::Supervisor>,
    /// Quorum, sorry server, notify hooks ([`crate::lb::quorum`], [`service`]).
    svc: service::State,
    /// Runtime control: the socket, the overrides, when the disable files were last looked at.
    control: Option<control::Server>,
    overrides: Overrides,
    last_files: Instant,
    /// Per-backend counters (nft engine).
    stats: crate::lb::stats::Sampler,
    /// `[balancer] metrics`: the /metrics server, and successful reloads for it.
    metrics: Option<crate::lb::metrics::Server>,
    reloads: u64,
    /// A drain of the whole balancer in progress.
    drain: Option<crate::lb::drain::Draining>,
}

fn backends_of(
    entry: &Entry,
    name: &str,
    old: &mut BTreeMap<BackendId, Be>,
    run: &ServiceRun,
) -> Vec<Be> {
    let interval = run.check.interval;
    let n = entry.dests.len().max(1) as u32;
    entry
        .dests
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let id = BackendId {
                service: name.to_string(),
                rip: d.addr,
                port: d.port,
            };
            let disable_file = run.disable_files.get(i).cloned().flatten();
            match old.remove(&id) {
                Some(mut b) => {
                    b.weight = d.weight;
                    b.file_drained &= disable_file.is_some();
                    b.disable_file = disable_file;
                    b
                }
                // Spread the first checks over one interval, with a random part.
                None => Be {
                    id,
                    weight: d.weight,
                    health: Health::default(),
                    since: SystemTime::now(),
                    last: None,
                    mac: None,
                    next_due: Instant::now() + crate::lb::health::warmup(interval, i, n as usize),
                    in_flight: false,
                    slots: None,
                    stale: false,
                    file_drained: disable_file.as_ref().is_some_and(|f| f.exists()),
                    failures: 0,
                    disable_file,
                },
            }
        })
        .collect()
}

fn build_services(file: &LbFile, old: Vec<Svc>) -> Vec<Svc> {
    let mut pool: BTreeMap<BackendId, Be> = old
        .into_iter()
        .flat_map(|s| s.backends)
        .map(|b| (b.id.clone(), b))
        .collect();
    file.table
        .entries
        .iter()
        .zip(&file.runs)
        .map(|(e, r)| {
            let name = key_name(&e.service.key);
            Svc {
                backends: backends_of(e, &name, &mut pool, r),
                name,
                entry: e.clone(),
                run: r.clone(),
            }
        })
        .collect()
}

fn vips_of(services: &[Svc]) -> BTreeSet<IpAddr> {
    services
        .iter()
        .filter_map(|s| s.vip())
        .map(|(a, _)| a)
        .collect()
}

pub fn run(ctx: &Ctx, env: &Env, opts: RunOpts) -> Result<Outcome> {
    let file = spec::load_lb_file(&opts.config).map_err(Error::Usage)?;
    let bal = file.balancer.clone();
    // Resolve the interface before anything changes.
    let iface = match &bal.interface {
        Some(i) => {
            env.require_link(i)?;
            i.clone()
        }
        None => {
            let first = file
                .table
                .entries
                .iter()
                .flat_map(|e| e.dests.iter())
                .next()
                .map(|d| d.addr)
                .ok_or_else(|| usage!("the LB file has no backends"))?;
            env.sys
                .route_get(first, None, None)?
                .dev
                .ok_or_else(|| usage!("no route to backend {first}: set [balancer] interface"))?
        }
    };
    let link = env
        .sys
        .links()?
        .into_iter()
        .find(|l| l.name == iface)
        .ok_or_else(|| usage!("unknown interface '{iface}'"))?;
    let lb_mac: Mac = link
        .mac
        .as_deref()
        .and_then(|m| m.try_into().ok())
        .ok_or_else(|| usage!("interface {iface} has no Ethernet address"))?;
    if ctx.global.dry_run {
        // The same refusals as below, in the same order; only privilege is not needed.
        return dry_run(ctx, env, &file, &iface, lb_mac, pick_engine(bal.engine));
    }
    // `[ha]`: keepalived there, peers on the NIC's network, its config accepted by `-t`.
    let ha = service::prepare_ha(env, &file, &iface)?;
    crate::sys::require_net_admin("lb run")?;
    // From here on SIGTERM/SIGINT mean "stop cleanly" (checked at the top of the main loop).
    install_signals();
    let (engine, ipvs) = pick_engine(bal.engine)?;
    validate_for(engine, &file)?;
    refuse_taken_services(env, &file)?;
    let jdir = env.journal.dir().to_path_buf();
    let _lock = lock(&jdir, &file.name)?;
    // BGP: the plan and BIRD's verdict on it before any change; the watchdog is forked while
    // this process is still single-threaded.
    let speaker = match prepare_bgp(env, &file)? {
        Some((plan, announcer)) => {
            let w = crate::sys::tun::Watchdog::start(
                speaker::WATCHDOG_DEADLINE,
                speaker::WATCHDOG_STALL,
            )?;
            Some(Speaker::new(plan, announcer, Some(w)))
        }
        None => None,
    };
    let previous = status::read(&status::path(&jdir, &file.name))?;
    let control = control::Server::bind(&control::socket_path(&jdir, &file.name))?;
    let metrics = match bal.metrics {
        Some(a) => Some(crate::lb::metrics::Server::start(a)?),
        None => None,
    };
    let owner = crate::engine::lb::owner(&file.name);
    let path = match (engine, ipvs) {
        (EngineKind::Ipvs, Some(mut p)) => {
            p.adopt(&env.journal, &owner)?;
            DataPath::Ipvs(p)
        }
        _ => DataPath::Nft({
            // Write-ahead: the table is recorded as the balancer's before it exists.
            let table = nft::table_name(&file.name);
            crate::engine::lb::record(&env.journal, &owner, &[format!("netdev {table}")], &[])?;
            NftPath::start(
                Layout {
                    table: nft::table_name(&file.name),
                    iface: iface.clone(),
                    lb_mac,
                    seed: bal.seed,
                    flow_timeout_s: bal.flow_timeout.as_secs().max(1),
                    flow_size: FLOW_MAP_SIZE,
                    services: Vec::new(),
                },
                previous.as_ref().and_then(|p| p.nft.as_ref()),
            )?
        }),
    };
    let (tx, rx) = channel();
    let pool = Pool::new(bal.max_concurrent_checks, tx);
    let mut d = Daemon {
        ctx,
        env,
        name: file.name.clone(),
        opts,
        iface,
        lb_mac,
        lb_ips: Vec::new(),
        path,
        services: Vec::new(),
        log: Log {
            json: ctx.global.json,
            rate: bal.log_rate,
            window: Instant::now(),
            in_window: 0,
            suppressed: 0,
        },
        started: SystemTime::now(),
        started_at: Instant::now(),
        pid_start: crate::sys::proc::start_time(std::process::id()).unwrap_or(0),
        dirty: true,
        programmed: false,
        next_program: Instant::now(),
        reload_error: None,
        packets: BTreeMap::new(),
        unpin: Vec::new(),
        previous,
        repairs: 0,
        last_repair: None,
        program_failed: false,
        reconciles: 0,
        speaker,
        ha,
        svc: Default::default(),
        control: Some(control),
        overrides: Overrides::default(),
        last_files: Instant::now(),
        stats: Default::default(),
        metrics,
        reloads: 0,
        drain: None,
    };
    let r = d.main(&file, &pool, &rx);
    drop(pool);
    r
}

/// `[bgp]`: the resolved plan and the announcer that accepted it (nothing started).
fn prepare_bgp(
    env: &Env,
    file: &LbFile,
) -> Result<
    Option<(
        crate::lb::announce::Plan,
        Box<dyn crate::lb::announce::Announcer>,
    )>,
> {
    let Some(bgp) = &file.bgp else {
        return Ok(None);
    };
    let addrs: Vec<crate::model::AddrObj> =
        env.sys.addresses()?.into_iter().map(|a| a.obj).collect();
    let services = file.inet_services();
    let dir = speaker::dir(env.journal.dir(), &file.name);
    speaker::prepare(&file.name, bgp, &addrs, &services, &dir)
        .map(Some)
        .map_err(Error::Usage)
}

/// One owner per VIP:port: a second balancer on the same service would reset connections.
fn refuse_taken_services(env: &Env, file: &LbFile) -> Result<()> {
    let state = env.journal.load()?;
    for e in &file.table.entries {
        if let Some(o) =
            status::vip_port_owner(env.journal.dir(), &state, &e.service.key, Some(&file.name))
        {
            return Err(usage!(
                "{} is already balanced here by {o}; stop that balancer (and `lbctl down \
                 --owner` its objects) or use another VIP:port. Nothing was changed.",
                key_name(&e.service.key)
            ));
        }
    }
    Ok(())
}

/// `lbctl --dry-run lb run`: the real run's validation (engine choice, what the engine can do,
/// services another balancer owns), then what it would do: the engine's plan for the VIPs (the
/// lines `lb run` applies, one per VIP), the chosen engine's data path (the nft ruleset, or the
/// ipvsadm lines), and the checks. With `engine = "ipvs"` on a kernel without IPVS the plan is
/// shown against an empty IPVS table and the run then fails as the real one does (exit 2).
fn dry_run(
    ctx: &Ctx,
    env: &Env,
    file: &LbFile,
    iface: &str,
    lb_mac: Mac,
    picked: Result<(EngineKind, Option<IpvsPath>)>,
) -> Result<Outcome> {
    let (engine, mut ipvs, refused) = match picked {
        Ok((engine, ipvs)) => (engine, ipvs, None),
        Err(e @ Error::Usage(_)) if file.balancer.engine == EngineKind::Ipvs => {
            (EngineKind::Ipvs, None, Some(e))
        }
        Err(e) => return Err(e),
    };
    validate_for(engine, file)?;
    refuse_taken_services(env, file)?;
    ctx.say(format!(
        "would run {} on {iface} ({}), engine {}{}",
        file.name,
        fmt_mac(&lb_mac),
        engine.name(),
        match (file.balancer.engine, engine) {
            (EngineKind::Auto, EngineKind::Ipvs) => " (auto: this kernel has IPVS)",
            (EngineKind::Auto, _) => " (auto: this kernel has no IPVS)",
            _ => "",
        }
    ));
    // The VIPs, as the real run owns them: through the engine (a dry run changes nothing).
    let owner = crate::engine::lb::owner(&file.name);
    let dev = IfName::new(iface)?;
    let want: BTreeSet<Vip> = file
        .table
        .entries
        .iter()
        .filter(|_| file.ha.is_none()) // with [ha] keepalived owns them
        .filter_map(|e| match e.service.key {
            ServiceKey::Inet { addr, .. } => Some(Vip { addr, dev }),
            _ => None,
        })
        .collect();
    let report = converge(ctx, &env.sys, &env.journal, "lb run", |state, _| {
        state.intents.entry(owner.clone()).or_default().vips = want.clone();
        Ok(())
    })?;
    let vip_lines = report.plan.commands();
    if vip_lines.is_empty() && !want.is_empty() {
        ctx.say("  # the VIPs are in place already");
    }
    for l in vip_lines {
        ctx.say(format!("  {l}"));
    }
    match engine {
        EngineKind::Ipvs => {
            let before = match ipvs.as_mut() {
                Some(p) => p.table()?,
                None => crate::ipvs::plan::Table::default(),
            };
            let owned: std::collections::HashSet<ServiceKey> =
                crate::engine::lb::services_of(&env.journal.load()?, &owner)
                    .into_iter()
                    .collect();
            let changes = crate::ipvs::plan::diff(&file.table, &before, &|k| owned.contains(k));
            ctx.say(format!(
                "ipvs engine (weights then follow the checks: 0 or {} while a backend is down):",
                "left out with on_failure = \"remove\""
            ));
            if changes.is_empty() {
                ctx.say("  # IPVS matches the file already");
            }
            for c in &changes {
                ctx.say(format!("  {c}"));
            }
        }
        _ => {
            let svcs: Vec<nft::Svc> = file
                .table
                .entries
                .iter()
                .filter_map(|e| nft_svc(&e.service.key, file.balancer.maglev_size))
                .collect();
            let layout = Layout {
                table: nft::table_name(&file.name),
                iface: iface.to_string(),
                lb_mac,
                seed: file.balancer.seed,
                flow_timeout_s: file.balancer.flow_timeout.as_secs().max(1),
                flow_size: FLOW_MAP_SIZE,
                services: svcs,
            };
            ctx.say("nft engine ruleset (maps filled from healthy backends):");
            for l in layout.render(&BTreeMap::new()).lines() {
                ctx.say(format!("  {l}"));
            }
        }
    }
    if let Some((plan, announcer)) = prepare_bgp(env, file)? {
        ctx.say(format!(
            "{} configuration (started by lb run with -s {}/bird.ctl; each VIP announced \
             while its gate device is up):",
            announcer.name(),
            speaker::dir(env.journal.dir(), &file.name).display()
        ));
        for l in announcer.render(&plan).lines() {
            ctx.say(format!("  {l}"));
        }
    }
    for (e, r) in file.table.entries.iter().zip(&file.runs) {
        ctx.say(format!(
            "  check {}: {} every {:?} (timeout {:?}, rise {}, fall {}{}), on failure {}",
            key_name(&e.service.key),
            probe_name(&r.check.probe),
            r.check.interval,
            r.check.timeout,
            r.check.rise,
            r.check.fall,
            if r.check.dsr { ", DSR probe" } else { "" },
            match r.on_failure {
                OnFailure::Quiesce => "quiesce",
                OnFailure::Remove => "remove",
            }
        ));
    }
    service::dry_run_ha(ctx, env, file, iface)?;
    match refused {
        Some(e) => Err(e),
        None => Ok(Outcome::Clean),
    }
}

fn probe_name(p: &Probe) -> String {
    match p {
        Probe::Tcp => "tcp connect".into(),
        Probe::Http {
            path,
            expect_status,
            tls: None,
            ..
        } => format!("http GET {path} → {expect_status}"),
        Probe::Http {
            path,
            expect_status,
            tls: Some(t),
            ..
        } => format!(
            "https GET {path} → {expect_status}{}{}",
            t.sni
                .as_ref()
                .map(|n| format!(", SNI {n}"))
                .unwrap_or_default(),
            if t.verify {
                ", certificate verified"
            } else {
                ", certificate not verified"
            }
        ),
        Probe::Exec { command } => format!("exec {}", command.join(" ")),
        Probe::Udp { send, expect } => format!(
            "udp {send:?}{}",
            expect
                .as_ref()
                .map(|x| format!(" → {x:?}"))
                .unwrap_or_default()
        ),
        Probe::Dns { name, qtype } => format!("dns {} {name}", qtype.name()),
    }
}

impl Daemon<'_> {
    fn main(
        &mut self,
        file: &LbFile,
        pool: &Pool,
        rx: &Receiver<checks::Outcome>,
    ) -> Result<Outcome> {
        self.configure(file)?;
        if let Some(sp) = self.speaker.as_mut() {
            let lines = sp.start().map_err(Error::Usage)?;
            for l in lines {
                self.log.emit("bgp", &l, json!({}));
            }
        }
        self.launch_ha()?;
        self.log.emit(
            "start",
            &format!(
                "{} started: engine {}, interface {} ({}), {} service(s), PID {}",
                self.name,
                self.path.name(),
                self.iface,
                fmt_mac(&self.lb_mac),
                self.services.len(),
                std::process::id()
            ),
            json!({ "engine": self.path.name(), "interface": self.iface }),
        );
        let mut last_status = Instant::now() - Duration::from_secs(10);
        let mut last_sample = last_status;
        let mut last_neigh = Instant::now() - Duration::from_secs(10);
        let mut last_reconcile = Instant::now();
        while !signals::received(&STOP) && !self.drain_over() {
            if signals::take(Signal::Hup) {
                self.reload_unless_draining();
            }
            let unresolved = self
                .services
                .iter()
                .any(|s| s.backends.iter().any(|b| b.mac.is_none()));
            let every = Duration::from_millis(if unresolved { 100 } else { 1000 });
            if last_neigh.elapsed() >= every {
                last_neigh = Instant::now();
                self.refresh_macs();
            }
            self.schedule(pool);
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(r) => {
                    self.result(r);
                    while let Ok(r) = rx.try_recv() {
                        self.result(r);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            // After a failed update the structure may be what is broken: check it then too.
            if self.programmed
                && (!self.dirty || self.program_failed)
                && last_reconcile.elapsed() >= Duration::from_secs(1)
            {
                last_reconcile = Instant::now();
                self.reconcile();
            }
            self.service_tick();
            self.control_poll();
            self.drain_tick();
            let changed = self.dirty;
            if self.dirty && Instant::now() >= self.next_program {
                self.program();
            }
            self.announce();
            if changed || last_status.elapsed() >= Duration::from_secs(1) {
                // Counters once a second, not after every change: listing them makes nft 1.0.6
                // fetch every slot map's elements (seconds at M = 65537), which would hold back
                // the status of the change just programmed.
                last_status = Instant::now();
                if let Some(sp) = self.speaker.as_mut() {
                    sp.refresh();
                }
                if last_sample.elapsed() >= Duration::from_secs(1) {
                    last_sample = Instant::now();
                    if let DataPath::Nft(n) = &self.path {
                        self.packets = n.packets();
                        self.stats.sample(n);
                    }
                }
                self.write_status();
            }
        }
        let r = self.stop();
        self.drain_finish(&r);
        r
    }

    /// Apply a (new) file: services, VIPs, data path structure.
    fn configure(&mut self, file: &LbFile) -> Result<()> {
        let old = std::mem::take(&mut self.services);
        self.services = build_services(file, old);
        self.add_sorry_backends();
        if let Some(prev) = self.previous.take() {
            self.resume(&prev);
        }
        let known = self.known();
        for d in self.overrides.retain(&known) {
            self.log.emit(
                "control",
                &format!("runtime override of {d} dropped: no longer in the file"),
                json!({ "dropped": d }),
            );
        }
        self.own_vips()?;
        if let DataPath::Nft(n) = &mut self.path {
            let svcs = file
                .table
                .entries
                .iter()
                .filter_map(|e| nft_svc(&e.service.key, file.balancer.maglev_size))
                .collect();
            if let Some(msg) = n.set_services(svcs)? {
                self.log.emit("datapath", &msg, json!({}));
            }
            let n_max = file
                .table
                .entries
                .iter()
                .map(|e| e.dests.len())
                .max()
                .unwrap_or(0);
            if file.balancer.maglev_size < 100 * n_max {
                self.log.emit(
                    "warning",
                    &format!(
                        "maglev_size {} is below 100 × {n_max} backends: balance will be uneven",
                        file.balancer.maglev_size
                    ),
                    json!({}),
                );
            }
        }
        self.dirty = true;
        Ok(())
    }

    /// Own the VIPs on the NIC (through the journal, as owner `lb:NAME`), then announce them.
    fn own_vips(&mut self) -> Result<()> {
        let dev = IfName::new(&self.iface)?;
        let want: BTreeSet<Vip> = self
            .owned_vips()
            .into_iter()
            .map(|addr| Vip { addr, dev })
            .collect();
        let owner = crate::engine::lb::owner(&self.name);
        let report = converge(
            self.ctx,
            &self.env.sys,
            &self.env.journal,
            "lb run",
            |state, _| {
                state.intents.entry(owner.clone()).or_default().vips = want.clone();
                Ok(())
            },
        )?;
        for c in report.plan.commands() {
            self.log
                .emit("vip", &format!("applied: {c}"), json!({ "command": c }));
        }
        // With BGP the router reaches the VIPs through their routes, not by ARP: several
        // balancers must not take the VIPs from each other.
        let garp = if self.speaker.is_some() {
            &BTreeSet::new()
        } else {
            &want
        };
        for v in garp {
            match rawpkt::announce(&self.iface, self.lb_mac, v.addr) {
                Ok(()) => self.log.emit(
                    "announce",
                    &format!(
                        "announced {} at {} on {}",
                        v.addr,
                        fmt_mac(&self.lb_mac),
                        self.iface
                    ),
                    json!({ "vip": v.addr.to_string() }),
                ),
                Err(e) => {
                    self.log
                        .emit("warning", &format!("announcing {}: {e}", v.addr), json!({}))
                }
            }
        }
        // The balancer's own addresses on the NIC: sources of DSR probes.
        let vips = vips_of(&self.services);
        self.lb_ips = self
            .env
            .sys
            .addresses()?
            .into_iter()
            .filter(|a| a.obj.dev == self.iface && !vips.contains(&a.obj.addr))
            .map(|a| a.obj.addr)
            .filter(|a| match a {
                IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
                IpAddr::V4(_) => true,
            })
            .collect();
        Ok(())
    }

    fn reload(&mut self) {
        let before: BTreeSet<String> = self.services.iter().map(|s| s.name.clone()).collect();
        if let Err(e) = self.try_reload() {
            self.log.emit(
                "reload-failed",
                &format!("reload failed, keeping the running configuration: {e}"),
                json!({ "error": e }),
            );
            self.reload_error = Some(e);
            return;
        }
        self.reloads += 1;
        let after: BTreeSet<String> = self.services.iter().map(|s| s.name.clone()).collect();
        let list = |a: &BTreeSet<String>, b: &BTreeSet<String>| {
            a.difference(b).cloned().collect::<Vec<_>>().join(", ")
        };
        self.reload_error = None;
        self.log.emit(
            "reload",
            &format!(
                "reloaded {}: {} service(s), added [{}], removed [{}]",
                self.opts.config.display(),
                after.len(),
                list(&after, &before),
                list(&before, &after)
            ),
            json!({}),
        );
    }

    /// Read, validate and apply the file again; an error leaves the running configuration.
    fn try_reload(&mut self) -> std::result::Result<(), String> {
        let file = spec::load_lb_file(&self.opts.config)?;
        let engine = match &self.path {
            DataPath::Nft(_) => EngineKind::Nft,
            DataPath::Ipvs(_) => EngineKind::Ipvs,
        };
        validate_for(engine, &file).map_err(|e| e.to_string())?;
        match (&mut self.speaker, file.bgp.is_some()) {
            (Some(_), true) => {
                let (plan, _) = prepare_bgp(self.env, &file)
                    .map_err(|e| e.to_string())?
                    .ok_or("no [bgp]")?;
                let lines = self
                    .speaker
                    .as_mut()
                    .map(|sp| sp.reload(plan))
                    .transpose()?;
                for l in lines.unwrap_or_default() {
                    self.log.emit("bgp", &l, json!({}));
                }
            }
            (None, false) => {}
            _ => return Err("adding or removing [bgp] needs a restart of lb run".into()),
        }
        self.reload_ha(&file)?;
        if file.name != self.name {
            self.log.emit(
                "warning",
                "reload: the name cannot change while running (restart for that); ignored",
                json!({}),
            );
        }
        self.configure(&file).map_err(|e| e.to_string())?;
        // `[balancer] metrics`: added, moved or removed (a failed bind keeps the old address).
        match crate::lb::metrics::rebind(&mut self.metrics, file.balancer.metrics) {
            Ok(Some(l)) => self.log.emit("metrics", &l, json!({})),
            Ok(None) => {}
            Err(e) => self.log.emit("warning", &format!("reload: {e}"), json!({})),
        }
        Ok(())
    }

    /// Backend MACs from the neighbour table (followed when they change); unknown ones are
    /// poked with a datagram so the kernel resolves them.
    fn refresh_macs(&mut self) {
        let Ok(neigh) = self.env.sys.neighbours() else {
            return;
        };
        let mut changed = Vec::new();
        for s in &mut self.services {
            for b in &mut s.backends {
                let mac: Option<Mac> = neigh
                    .iter()
                    .filter(|n| n.ip == b.id.rip && n.dev == self.iface)
                    .filter(|n| !matches!(n.state.as_str(), "failed" | "incomplete" | "none"))
                    .find_map(|n| n.mac.as_deref().and_then(|m| m.try_into().ok()));
                match (b.mac, mac) {
                    (old, Some(new)) if old != Some(new) => {
                        if let Some(o) = old {
                            changed.push(format!(
                                "{} {}: MAC changed {} → {}",
                                s.name,
                                b.id.rip,
                                fmt_mac(&o),
                                fmt_mac(&new)
                            ));
                        }
                        b.mac = Some(new);
                        self.dirty = true;
                    }
                    (_, None) => {
                        if let Ok(sock) = UdpSocket::bind(if b.id.rip.is_ipv4() {
                            "0.0.0.0:0"
                        } else {
                            "[::]:0"
                        }) {
                            let _ = sock.send_to(&[], (b.id.rip, 9));
                        }
                    }
                    _ => {}
                }
            }
        }
        for c in changed {
            self.log.emit("mac", &c, json!({}));
        }
    }

    fn schedule(&mut self, pool: &Pool) {
        let now = Instant::now();
        let started = self.started_at;
        for s in &mut self.services {
            let svc_vip = s.vip();
            let (vip, vport) = svc_vip.unwrap_or((IpAddr::from([0, 0, 0, 0]), 0));
            for b in &mut s.backends {
                if b.in_flight || b.next_due > now {
                    continue;
                }
                // A fresh DSR-checked backend waits (briefly) for its MAC instead of failing.
                if s.run.check.dsr
                    && b.mac.is_none()
                    && b.health.state == State::Unknown
                    && started.elapsed() < Duration::from_secs(3)
                {
                    b.next_due = now + Duration::from_millis(100);
                    continue;
                }
                let lb_ip = self
                    .lb_ips
                    .iter()
                    .find(|a| a.is_ipv4() == vip.is_ipv4())
                    .copied();
                let dsr = match (s.run.check.dsr, b.mac, lb_ip, svc_vip) {
                    (true, Some(mac), Some(lb_ip), Some(_)) => Some(DsrProbe {
                        iface: self.iface.clone(),
                        lb_mac: self.lb_mac,
                        lb_ip,
                        backend_mac: mac,
                        vip,
                        port: vport,
                        udp: matches!(
                            s.entry.service.key,
                            ServiceKey::Inet {
                                protocol: Protocol::Udp,
                                ..
                            }
                        ),
                        timeout: s.run.check.timeout,
                    }),
                    _ => None,
                };
                pool.submit(Job {
                    id: b.id.clone(),
                    check: s.run.check.clone(),
                    vip,
                    port: vport,
                    dsr_unresolved: s.run.check.dsr && dsr.is_none(),
                    dsr,
                });
                b.in_flight = true;
                b.next_due = now + s.run.check.interval;
            }
        }
    }

    fn result(&mut self, r: checks::Outcome) {
        let Some(s) = self.services.iter_mut().find(|s| s.name == r.id.service) else {
            return;
        };
        let Some(b) = s.backends.iter_mut().find(|b| b.id == r.id) else {
            return;
        };
        b.in_flight = false;
        b.stale = false;
        self.dirty |= self
            .svc
            .set_weight(&r.id, r.ok.then_some(r.weight).flatten());
        if !r.ok {
            b.failures += 1;
        }
        b.last = Some(LastCheck {
            at: rfc3339(SystemTime::now()),
            ok: r.ok,
            ms: r.elapsed.as_millis() as u64,
            detail: r.detail.clone(),
        });
        let was = b.health.state;
        if let Some(now) = b.health.record(r.ok, s.run.check.rise, s.run.check.fall) {
            b.since = SystemTime::now();
            self.dirty = true;
            let why = if r.ok {
                format!("{} success(es) in a row", b.health.streak())
            } else {
                format!("{} failure(s) in a row: {}", -b.health.streak(), r.detail)
            };
            let action = match (now, s.run.on_failure) {
                (State::Up, _) => format!("in service, weight {}", b.weight),
                (_, OnFailure::Quiesce) => "weight 0 (established flows continue)".to_string(),
                (_, OnFailure::Remove) => "removed".to_string(),
            };
            let text = format!(
                "{} backend {}: {} → {} ({why}); {action}",
                s.name,
                b.id.rip,
                was.name(),
                now.name()
            );
            self.log.emit(
                "transition",
                &text,
                json!({
                    "service": s.name, "backend": b.id.rip.to_string(), "from": was.name(),
                    "to": now.name(), "detail": r.detail,
                }),
            );
            if let Some(e) = self
                .svc
                .notify_backend(&s.run.quorum.notify, &s.name, b, was, now)
            {
                self.log.emit("warning", &e, json!({}));
            }
            if now == State::Down && s.run.on_failure == OnFailure::Remove {
                if let Some(mac) = b.mac {
                    // After the map update no new flow picks it; then its pinned flows are cut.
                    self.unpin
                        .push((s.entry.service.key, s.name.clone(), b.id.rip, mac));
                }
            }
        }
    }

    /// Take over backend states, MACs and last checks of a previous run of the same file, so
    /// that a restart keeps serving with the same backends (each marked stale until its next
    /// check) instead of starting every backend as `unknown`, out of service.
    fn resume(&mut self, prev: &RunStatus) {
        if prev.alive() {
            return;
        }
        if !prev.overrides.is_empty() {
            self.overrides = prev.overrides.clone();
            self.log.emit(
                "resume",
                "runtime overrides taken over from the previous run (lb status marks them)",
                json!({ "overrides": prev.overrides }),
            );
        }
        let mut n = 0;
        for s in &mut self.services {
            let Some(ps) = prev.services.iter().find(|p| p.service == s.name) else {
                continue;
            };
            for b in &mut s.backends {
                let Some(pb) = ps
                    .backends
                    .iter()
                    .find(|p| p.rip == b.id.rip.to_string() && p.port == b.id.port)
                else {
                    continue;
                };
                let state = match pb.state.as_str() {
                    "up" => State::Up,
                    "down" => State::Down,
                    _ => continue,
                };
                b.health = crate::lb::health::Health::resumed(state);
                b.stale = true;
                b.mac = pb.mac.as_deref().and_then(crate::sys::mac::parse_mac);
                b.last = pb.last_check.clone();
                n += 1;
            }
        }
        if n > 0 {
            self.log.emit(
                "resume",
                &format!(
                    "{n} backend state(s) taken over from the previous run (stale until re-checked)"
                ),
                json!({ "backends": n }),
            );
        }
    }

    /// Re-assert what the daemon owns when it was changed behind its back: the VIPs on the
    /// NIC and the data path (nft table structure, or the IPVS services). Called once a second;
    /// a repair is logged and counted, and one repair per second at most is attempted, so a
    /// tamper storm costs one rebuild per second, not a busy loop.
    fn reconcile(&mut self) {
        let mut repaired = Vec::new();
        let vips = self.owned_vips();
        match self.env.sys.addresses() {
            Ok(addrs) => {
                let missing: Vec<String> = vips
                    .iter()
                    .filter(|v| {
                        !addrs
                            .iter()
                            .any(|a| a.obj.addr == **v && a.obj.dev == self.iface)
                    })
                    .map(|v| v.to_string())
                    .collect();
                if !missing.is_empty() {
                    match self.own_vips() {
                        Ok(()) => repaired.push(format!(
                            "VIP(s) {} re-added on {}",
                            missing.join(", "),
                            self.iface
                        )),
                        Err(e) => repaired.push(format!("re-adding VIP(s) failed: {e}")),
                    }
                }
            }
            Err(e) => self.log.emit(
                "warning",
                &format!("could not check the VIPs: {e}"),
                json!({}),
            ),
        }
        let wants = self.wants();
        self.reconciles += 1;
        match &mut self.path {
            // Cheap unless the ruleset generation moved since lbctl last verified or wrote it.
            DataPath::Nft(n) => match n.drift() {
                Ok(NftDrift::Slots(ids)) => {
                    n.forget_slots(&ids);
                    self.dirty = true;
                    self.next_program = Instant::now();
                    repaired.push(format!(
                        "slot map(s) of {} rewritten (changed behind lbctl's back)",
                        ids.join(", ")
                    ));
                }
                Ok(NftDrift::None) => {}
                Ok(NftDrift::Table(why)) => match n.rebuild() {
                    Ok(()) => {
                        self.dirty = true;
                        self.next_program = Instant::now();
                        repaired.push(format!("table netdev {} rebuilt ({why})", n.table()));
                    }
                    Err(e) => repaired.push(format!("rebuilding the table failed ({why}): {e}")),
                },
                Err(e) => self.log.emit(
                    "warning",
                    &format!("could not check the data path: {e}"),
                    json!({}),
                ),
            },
            DataPath::Ipvs(p) => match p.drift(&wants) {
                Ok(0) => {}
                Ok(k) => {
                    self.dirty = true;
                    self.next_program = Instant::now();
                    repaired.push(format!("IPVS: {k} change(s) to re-assert"));
                }
                Err(e) => {
                    self.log
                        .emit("warning", &format!("could not check IPVS: {e}"), json!({}))
                }
            },
        }
        for r in repaired {
            self.repairs += 1;
            self.log
                .emit("repair", &r, json!({ "repairs": self.repairs }));
            self.last_repair = Some(format!("{} {r}", rfc3339(SystemTime::now())));
        }
    }

    /// `[bgp]`: a VIP is announced while the data path is programmed and every service of the
    /// VIP has at least `quorum` healthy backends in it.
    fn announce(&mut self) {
        if self.speaker.is_none() {
            return;
        }
        let nft = matches!(self.path, DataPath::Nft(_));
        let mut want: BTreeMap<IpAddr, std::result::Result<(), String>> = BTreeMap::new();
        for s in &self.services {
            let Some((vip, _)) = s.vip() else { continue };
            let healthy = s
                .backends
                .iter()
                .filter(|b| b.health.state == State::Up && (!nft || b.mac.is_some()))
                .count();
            let verdict = if self.drain.is_some() {
                Err("draining (lbctl lb drain --balancer)".to_string())
            } else if !self.programmed || self.program_failed {
                Err("data path not programmed".to_string())
            } else if healthy < s.run.quorum.min as usize {
                Err(format!(
                    "{}: {healthy} healthy backend(s), quorum {}",
                    s.name, s.run.quorum.min
                ))
            } else {
                Ok(())
            };
            let e = want.entry(vip).or_insert(Ok(()));
            if e.is_ok() {
                *e = verdict;
            }
        }
        let Some(sp) = self.speaker.as_mut() else {
            return;
        };
        sp.tick();
        for l in sp.gate(want) {
            self.log.emit("bgp", &l, json!({}));
        }
    }

    fn wants(&self) -> Vec<Want> {
        let mut w: Vec<Want> = self
            .services
            .iter()
            .map(|s| Want {
                entry: s.entry.clone(),
                backends: s
                    .backends
                    .iter()
                    .map(|b| {
                        let up = b.health.state == State::Up;
                        WantBackend {
                            rip: b.id.rip,
                            port: b.id.port,
                            weight: if up { self.weight_of(s, b) } else { 0 },
                            removed: !up && s.run.on_failure == OnFailure::Remove,
                            mac: b.mac,
                        }
                    })
                    .collect(),
            })
            .collect();
        self.sorry_wants(&mut w);
        w
    }

    fn program(&mut self) {
        let wants = self.wants();
        let r = match &mut self.path {
            DataPath::Nft(n) => n.program(&wants).map(|slots| {
                for s in &mut self.services {
                    if let Some(c) = slots.get(&s.key()) {
                        for (b, n) in s.backends.iter_mut().zip(c) {
                            b.slots = Some(*n);
                        }
                    }
                }
                // Logged once the kernel committed them (`nft -f` returned).
                if n.last_written > 0 {
                    self.log.emit(
                        "slots",
                        &format!(
                            "table netdev {}: {} Maglev slot(s) written",
                            n.table(),
                            n.last_written
                        ),
                        json!({ "written": n.last_written }),
                    );
                }
                Vec::new()
            }),
            DataPath::Ipvs(p) => p.program(&wants, &|l| self.ctx.detail(l)),
        };
        match r {
            Ok(lines) => {
                for l in lines {
                    self.log
                        .emit("ipvs", &format!("applied: {l}"), json!({ "command": l }));
                }
                self.dirty = false;
                self.programmed = true;
                self.program_failed = false;
                self.unpin_removed();
            }
            Err(e) => {
                self.log.emit(
                    "datapath-error",
                    &format!("programming the data path failed (retrying in 1 s): {e}"),
                    json!({ "error": e.to_string() }),
                );
                self.next_program = Instant::now() + Duration::from_secs(1);
                self.program_failed = true;
            }
        }
    }

    /// nft engine, `on_failure = "remove"`: cut the pinned flows of backends just removed.
    fn unpin_removed(&mut self) {
        let todo = std::mem::take(&mut self.unpin);
        let DataPath::Nft(n) = &self.path else { return };
        let mut lines = Vec::new();
        for (key, name, rip, mac) in todo {
            match n.unpin(&key, mac) {
                Ok(0) => {}
                Ok(k) => lines.push(format!(
                    "{name} backend {rip}: {k} pinned flow(s) released to the other backends"
                )),
                Err(e) => lines.push(format!("{name} backend {rip}: unpinning flows failed: {e}")),
            }
        }
        for l in lines {
            self.log.emit("unpin", &l, json!({}));
        }
    }

    fn snapshot(&self) -> RunStatus {
        let ready = self.programmed
            && !self.dirty
            && self
                .services
                .iter()
                .all(|s| s.backends.iter().all(|b| b.health.state != State::Unknown));
        RunStatus {
            name: self.name.clone(),
            pid: std::process::id(),
            pid_start: self.pid_start,
            config: self.opts.config.display().to_string(),
            engine: self.path.name().to_string(),
            interface: self.iface.clone(),
            ready,
            started: rfc3339(self.started),
            updated: rfc3339(SystemTime::now()),
            services: self
                .services
                .iter()
                .map(|s| {
                    let (vip, port) = s.vip().unwrap_or((IpAddr::from([0, 0, 0, 0]), 0));
                    let id = nft_svc(&s.key(), 7).map(|n| n.id());
                    ServiceStatus {
                        service: s.name.clone(),
                        vip: vip.to_string(),
                        port,
                        protocol: match s.key() {
                            ServiceKey::Inet { protocol, .. } => {
                                protocol.list_name().to_lowercase()
                            }
                            ServiceKey::Fwmark { .. } => "fwmark".into(),
                        },
                        check: format!(
                            "{} every {} ms, timeout {} ms, rise {}, fall {}{}",
                            probe_name(&s.run.check.probe),
                            s.run.check.interval.as_millis(),
                            s.run.check.timeout.as_millis(),
                            s.run.check.rise,
                            s.run.check.fall,
                            if s.run.check.dsr { ", dsr" } else { "" }
                        ),
                        on_failure: match s.run.on_failure {
                            OnFailure::Quiesce => "quiesce".into(),
                            OnFailure::Remove => "remove".into(),
                        },
                        quorum_lost: self.svc.lost(&s.name),
                        withdrawn: self.ha.is_none()
                            && s.run.quorum.on_loss
                                == Some(crate::lb::quorum::OnQuorumLoss::Withdraw)
                            && self.svc.lost(&s.name),
                        packets: id.as_ref().and_then(|i| self.packets.get(i).copied()),
                        nft_id: id.clone(),
                        disabled: self.overrides.disabled(&s.name),
                        backends: s
                            .backends
                            .iter()
                            .map(|b| {
                                let up = b.health.state == State::Up;
                                let removed = (!up && s.run.on_failure == OnFailure::Remove)
                                    || self.sorry_out(s, b);
                                let in_path = match self.path {
                                    DataPath::Nft(_) => b.mac.is_some() && !removed,
                                    DataPath::Ipvs(_) => !removed,
                                };
                                BackendStatus {
                                    rip: b.id.rip.to_string(),
                                    port: b.id.port,
                                    state: b.health.state.name().into(),
                                    weight: b.weight,
                                    effective_weight: if up && in_path {
                                        self.weight_of(s, b)
                                    } else {
                                        0
                                    },
                                    in_service: in_path,
                                    mac: b.mac.map(|m| fmt_mac(&m)),
                                    since: rfc3339(b.since),
                                    last_check: b.last.clone(),
                                    slots: b.slots,
                                    stale: b.stale,
                                    overrides: self.overrides.marks(
                                        &s.name,
                                        &b.name(),
                                        b.weight,
                                        b.disable_file.as_deref().filter(|_| b.file_drained),
                                    ),
                                    check_failures: b.failures,
                                    counters: match (&id, b.mac) {
                                        (Some(id), Some(mac)) => self.stats.get(id, mac),
                                        _ => None,
                                    },
                                }
                            })
                            .collect(),
                    }
                })
                .collect(),
            nft: match &self.path {
                DataPath::Nft(n) => Some(n.record()),
                DataPath::Ipvs(_) => None,
            },
            reload_error: self.reload_error.clone(),
            ha: self.ha.as_ref().map(|h| h.status()),
            repairs: self.repairs,
            last_repair: self.last_repair.clone(),
            bgp: self.speaker.as_ref().map(|s| s.status()),
            reloads: self.reloads,
            metrics: self.metrics.as_ref().map(|m| m.addr().to_string()),
            overrides: self.overrides.clone(),
            control: self
                .control
                .as_ref()
                .map(|c| c.path().display().to_string()),
            drain: self.drain.as_ref().map(|d| d.status()),
        }
    }

    /// A healthy backend's weight in the data path: the file's, or the runtime override's.
    fn weight_of(&self, s: &Svc, b: &Be) -> u32 {
        // The operator's runtime override wins over a check's dynamic weight (exec checks
        // with weight_from_exit), which replaces the file's weight.
        self.overrides
            .weight(&s.name, &b.name(), self.svc.weight(b), b.file_drained)
    }

    fn known(&self) -> control::Known {
        self.services
            .iter()
            .map(|s| (s.name.clone(), s.backends.iter().map(Be::name).collect()))
            .collect()
    }

    /// Runtime control, polled from the main loop: answer the control socket's requests and
    /// follow the backends' disable files. A change is programmed in this same loop pass.
    fn control_poll(&mut self) {
        if self.last_files.elapsed() >= Duration::from_millis(200) {
            self.last_files = Instant::now();
            for s in &mut self.services {
                for b in &mut s.backends {
                    let Some(f) = &b.disable_file else { continue };
                    let now = f.exists();
                    if now != b.file_drained {
                        b.file_drained = now;
                        self.dirty = true;
                        let text = format!(
                            "{} backend {}: {} {}",
                            s.name,
                            b.id.rip,
                            f.display(),
                            if now {
                                "exists: drained"
                            } else {
                                "is gone: undrained"
                            }
                        );
                        self.log
                            .emit("control", &text, json!({ "file": f, "drained": now }));
                    }
                }
            }
        }
        let Some(server) = &self.control else { return };
        let pending = server.pending();
        let mut answers = Vec::new();
        for p in pending {
            if let Ok(control::Request::DrainBalancer { timeout_secs, wait }) = p.request {
                if let Some(p) = self.drain_request(p, timeout_secs, wait) {
                    answers.push(p);
                }
                continue;
            }
            let r = match &p.request {
                Err(e) => control::Response::error(e.clone()),
                Ok(req) => match self.overrides.apply(req, &self.known()) {
                    Err(e) => control::Response::error(e),
                    Ok(r) => {
                        if r.changed {
                            self.dirty = true;
                            self.next_program = Instant::now();
                        }
                        r
                    }
                },
            };
            self.log.emit(
                "control",
                &format!(
                    "control: {}{}",
                    if r.ok { "" } else { "refused: " },
                    r.message
                ),
                json!({ "request": p.request.as_ref().ok(), "ok": r.ok, "changed": r.changed }),
            );
            answers.push((p, r));
        }
        // In effect before the answer: the client's exit status means "done".
        if answers.iter().any(|(_, r)| r.changed) {
            self.program();
            self.write_status();
        }
        for (p, mut r) in answers {
            if r.changed && self.program_failed {
                r.message
                    .push_str(" (updating the data path failed; the daemon retries every second)");
            }
            p.answer(&r);
        }
    }

    fn write_status(&mut self) {
        let snap = self.snapshot();
        if let Some(m) = &self.metrics {
            m.publish(&snap);
        }
        if let Err(e) = status::write(self.env.journal.dir(), &snap) {
            self.log.emit(
                "warning",
                &format!("writing the status file: {e}"),
                json!({}),
            );
        }
    }

    fn stop(&mut self) -> Result<Outcome> {
        // Withdraw first: no router may send traffic here once the data path goes.
        if let Some(sp) = self.speaker.as_mut() {
            for l in sp.stop() {
                self.log.emit("bgp", &l, json!({}));
            }
        }
        self.stop_ha();
        if !self.opts.cleanup {
            self.write_status();
            self.log.emit(
                "stop",
                &format!(
                    "{} stopping; the data path and VIPs stay as they are (--cleanup removes them)",
                    self.name
                ),
                json!({ "cleanup": false }),
            );
            return Ok(Outcome::Clean);
        }
        let detail = |l: &str| self.ctx.detail(l);
        let r = match &mut self.path {
            DataPath::Nft(n) => n.cleanup(),
            DataPath::Ipvs(p) => p.cleanup(&detail),
        };
        let owner = crate::engine::lb::owner(&self.name);
        let v = converge(
            self.ctx,
            &self.env.sys,
            &self.env.journal,
            "lb run --cleanup",
            |state, _| {
                state.intents.remove(&owner);
                Ok(())
            },
        );
        if r.is_ok() {
            crate::engine::lb::forget_owner(&self.env.journal, &owner)?;
        }
        let _ = std::fs::remove_file(status::path(self.env.journal.dir(), &self.name));
        self.log.emit(
            "stop",
            &format!("{} stopped; data path and VIPs removed", self.name),
            json!({ "cleanup": true }),
        );
        r?;
        v?;
        Ok(Outcome::Clean)
    }
}
