//! The cross-over agent (`lbctl crossover run -c FILE`): one per server.
//!
//! * It holds its **primary** addresses (/32s on the segment interface, through lbctl's engine
//!   as owner `crossover:sN`, so `status` and `down` see them) while its own service is healthy.
//! * It **announces** every address it holds with a gratuitous ARP each `heartbeat`: peers cannot
//!   hear the router re-validate its cache (unicast probes), so silence is the only failure
//!   signal they get. Each announcement is tagged: the ARP target-hardware field, which receivers
//!   of a request ignore, carries `4c:42:58:TIER:SERVER:00`, so peers know who claims and at
//!   which tier.
//! * A **secondary** claims an address (address + gratuitous ARP; the router's entry switches at
//!   once) when it has heard no claim from the primary for `secondary_timeout`; a **tertiary**
//!   when it has heard neither the primary nor the secondary for `tertiary_timeout`.
//! * It **defends** a held address against a lower tier (an immediate announcement) and
//!   **releases** it as soon as a higher tier claims it. Hysteresis: a claim needs a whole
//!   timeout of silence, a release one announcement, so nothing flaps faster than the higher
//!   tier itself comes and goes.
//! * The seed's gap closed: while the local health check fails, the agent holds and claims
//!   **nothing** (primaries included), so its peers take over.
//! * Losing the carrier drops every non-primary address; after the carrier returns the agent
//!   listens for a whole timeout before it claims again (a server cut off hears nobody and would
//!   otherwise come back holding everything). At start it listens one secondary timeout longer
//!   still, so peers started at the same moment can claim their primaries first.
//! * Hearing and heartbeats run on their own thread, so an engine transaction (tens of ms) never
//!   delays an announcement, and an address being released is never announced again.
//!
//! SIGTERM/SIGINT release everything the agent holds and forget the owner. After SIGKILL the
//! addresses stay (recorded in the journal): `lbctl down --owner crossover:sN` removes them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::config::Config;
use super::plan;
use crate::context::Env;
use crate::engine::converge;
use crate::error::{Error, Result};
use crate::lb::checks;
use crate::model::Vip;
use crate::sys::capture::L3;
use crate::sys::mac::{fmt_mac, Mac};
use crate::sys::rawpkt::{garp_frame, RawSocket};
use crate::sys::signals::{self, Restart, Signal};
use crate::{Ctx, Outcome};

const ETH_P_ARP: u16 = 0x0806;
/// First three bytes of the tag in an announcement's target-hardware field ("LBX").
const TAG: [u8; 3] = [0x4c, 0x42, 0x58];
/// Tier names, by index.
pub const TIER_NAMES: [&str; 3] = ["primary", "secondary", "tertiary"];

/// The tag for a claim by `server` at `tier`.
pub fn tag(tier: usize, server: usize) -> Mac {
    [TAG[0], TAG[1], TAG[2], tier as u8, server as u8, 0]
}

/// (tier, server) of a tagged claim.
pub fn untag(m: &Mac) -> Option<(usize, usize)> {
    (m[..3] == TAG && m[3] < 3 && m[4] > 0).then_some((usize::from(m[3]), usize::from(m[4])))
}

/// A tagged gratuitous ARP (request form: sender = target = `ip`, broadcast).
pub fn claim_frame(mac: Mac, ip: Ipv4Addr, tier: usize, server: usize) -> Vec<u8> {
    let mut f = garp_frame(mac, ip);
    // Ethernet header (14) + ARP fixed part (8) + sender MAC (6) + sender IP (4).
    f[32..38].copy_from_slice(&tag(tier, server));
    f
}

/// A claim heard on the segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heard {
    pub addr: Ipv4Addr,
    pub mac: Mac,
    /// (tier, server) when tagged by an agent; `None` for any other host's announcement.
    pub tag: Option<(usize, usize)>,
}

/// The last claim heard from another host, per address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub server: Option<usize>,
    pub tier: Option<usize>,
    pub mac: Mac,
    pub at: Instant,
}

/// The agent's decisions, without side effects (unit-tested).
#[derive(Debug, Clone)]
pub struct Core {
    pub server: usize,
    /// Address → this server's tier for it.
    pub mine: BTreeMap<Ipv4Addr, usize>,
    timeouts: [Duration; 3],
    /// Address → when a claim by another server at each tier was last heard.
    heard: BTreeMap<Ipv4Addr, [Option<Instant>; 3]>,
    pub holders: BTreeMap<Ipv4Addr, Holder>,
    /// Untagged announcements of our addresses by other hosts (a foreign claimant).
    pub foreign: BTreeMap<Ipv4Addr, Holder>,
    /// Listening since (start, or the carrier's return).
    since: Instant,
    pub healthy: bool,
    pub carrier: bool,
}

impl Core {
    pub fn new(cfg: &Config, now: Instant, healthy: bool) -> Core {
        Core {
            server: cfg.server,
            mine: cfg.mine().into_iter().collect(),
            timeouts: [Duration::ZERO, cfg.timeout(1), cfg.timeout(2)],
            heard: BTreeMap::new(),
            holders: BTreeMap::new(),
            foreign: BTreeMap::new(),
            // At start, listen one secondary timeout longer: peers started at the same moment
            // may need that long to claim their own primaries.
            since: now + cfg.timeout(1),
            healthy,
            carrier: true,
        }
    }

    /// Record a claim. Returns the address when we must defend it (we hold it and a lower tier
    /// claimed it).
    pub fn hear(&mut self, h: &Heard, now: Instant, held: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
        let my_tier = *self.mine.get(&h.addr)?;
        let Some((tier, server)) = h.tag else {
            self.foreign.insert(
                h.addr,
                Holder {
                    server: None,
                    tier: None,
                    mac: h.mac,
                    at: now,
                },
            );
            return None;
        };
        if server == self.server {
            return None; // our own (looped back) or a twin with our index: ignore
        }
        self.heard.entry(h.addr).or_default()[tier] = Some(now);
        self.holders.insert(
            h.addr,
            Holder {
                server: Some(server),
                tier: Some(tier),
                mac: h.mac,
                at: now,
            },
        );
        (tier > my_tier && held.contains(&h.addr)).then_some(h.addr)
    }

    /// The carrier changed (or was confirmed).
    pub fn set_carrier(&mut self, up: bool, now: Instant) {
        if up && !self.carrier {
            self.since = now;
            self.heard.clear();
        }
        self.carrier = up;
    }

    /// The addresses this agent should hold now.
    pub fn want(&self, now: Instant) -> BTreeSet<Ipv4Addr> {
        if !self.healthy {
            return BTreeSet::new();
        }
        self.mine
            .iter()
            .filter(|(addr, tier)| {
                let tier = **tier;
                if tier == 0 {
                    return true;
                }
                let quiet = self.timeouts[tier];
                if !self.carrier || now.duration_since(self.since) < quiet {
                    return false;
                }
                let h = self.heard.get(addr).copied().unwrap_or_default();
                h[..tier]
                    .iter()
                    .all(|t| t.is_none_or(|t| now.duration_since(t) >= quiet))
            })
            .map(|(a, _)| *a)
            .collect()
    }
}

/// The health of the local service (rise/fall counting over check results).
#[derive(Debug, Clone)]
pub struct Health {
    pub up: bool,
    run: u32,
    rise: u32,
    fall: u32,
    /// The first result decides at once.
    first: bool,
    pub detail: String,
}

impl Health {
    pub fn new(rise: u32, fall: u32) -> Health {
        Health {
            up: false,
            run: 0,
            rise: rise.max(1),
            fall: fall.max(1),
            first: true,
            detail: "no check result yet".into(),
        }
    }

    /// Count one result; true when the state changed.
    pub fn result(&mut self, ok: bool, detail: &str) -> bool {
        self.detail = if ok { "ok".into() } else { detail.to_string() };
        if self.first {
            self.first = false;
            self.up = ok;
            return ok; // down → down is no change
        }
        if ok == self.up {
            self.run = 0;
            return false;
        }
        self.run += 1;
        if self.run >= if ok { self.rise } else { self.fall } {
            self.up = ok;
            self.run = 0;
            return true;
        }
        false
    }
}

// ---------------------------------------------------------------------------------------------
// The status file (read by `crossover status`).
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddrStatus {
    pub addr: Ipv4Addr,
    /// This server's tier for the address.
    pub tier: String,
    pub held: bool,
    /// The last other server heard claiming it ("s2 secondary"), with how long ago.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heard: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heard_ms_ago: Option<u64>,
    /// An untagged (non-agent) host announced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foreign: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentStatus {
    pub name: String,
    pub server: usize,
    pub pid: u32,
    /// The process's start time (clock ticks since boot): a recycled PID is not the agent.
    pub pid_start: u64,
    pub interface: String,
    pub mac: String,
    pub healthy: bool,
    pub health: String,
    pub carrier: bool,
    /// Seconds since the epoch.
    pub updated: u64,
    pub addresses: Vec<AddrStatus>,
}

impl AgentStatus {
    /// The agent's process still runs.
    pub fn alive(&self) -> bool {
        crate::sys::proc::is_alive(self.pid, self.pid_start)
    }
}

/// Where status files live: `JOURNAL/crossover/sN.json`.
pub fn status_dir(journal_dir: &std::path::Path) -> std::path::PathBuf {
    journal_dir.join("crossover")
}

fn write_status(journal_dir: &std::path::Path, s: &AgentStatus) -> Result<()> {
    let d = status_dir(journal_dir);
    std::fs::create_dir_all(&d)?;
    let tmp = d.join(format!(".{}.json.tmp", s.name));
    let body = serde_json::to_string_pretty(s)
        .map_err(|e| Error::Runtime(anyhow::anyhow!("serializing the status: {e}")))?;
    std::fs::write(&tmp, body + "\n")?;
    std::fs::rename(&tmp, d.join(format!("{}.json", s.name)))?;
    Ok(())
}

/// Every agent status file in the journal directory.
pub fn read_statuses(journal_dir: &std::path::Path) -> Result<Vec<AgentStatus>> {
    let d = status_dir(journal_dir);
    let mut v = Vec::new();
    let rd = match std::fs::read_dir(&d) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(v),
        Err(e) => return Err(e.into()),
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "json")
            && !p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            let t = std::fs::read_to_string(&p)?;
            let s: AgentStatus = serde_json::from_str(&t)
                .map_err(|e| Error::Runtime(anyhow::anyhow!("parsing {}: {e}", p.display())))?;
            v.push(s);
        }
    }
    v.sort_by_key(|s| s.server);
    Ok(v)
}

fn release_reason(core: &Core, a: Ipv4Addr) -> String {
    if !core.healthy {
        return "service failing".into();
    }
    if !core.carrier {
        return "no carrier".into();
    }
    match core.holders.get(&a) {
        Some(Holder {
            server: Some(s),
            tier: Some(t),
            ..
        }) => format!("{} claims it as {}", plan::name(*s), TIER_NAMES[*t]),
        _ => "no longer wanted".into(),
    }
}

/// Running agents that own objects `owner` covers (all when `None`), for `down` to refuse:
/// an agent would re-create what `down` removes.
pub fn running_owners(journal_dir: &std::path::Path, owner: Option<&str>) -> Vec<String> {
    read_statuses(journal_dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.alive())
        .filter(|s| owner.is_none_or(|o| o == super::config::owner(s.server)))
        .map(|s| format!("`crossover run` {} (PID {})", s.name, s.pid))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The running agent.
// ---------------------------------------------------------------------------------------------

const STOP: [Signal; 2] = [Signal::Term, Signal::Int];
/// How often the held addresses are checked against the kernel when nothing changed.
const REPAIR_EVERY: Duration = Duration::from_secs(2);

/// What the I/O thread and the main thread share.
struct Shared {
    core: Core,
    /// Addresses configured on the interface (confirmed by the engine).
    held: BTreeSet<Ipv4Addr>,
    /// The agent is stopping: the I/O thread ends.
    stop: bool,
}

type Lockd = Arc<Mutex<Shared>>;

/// Sends announcements of (address, our tier).
type Announce<'a> = dyn Fn(&[(Ipv4Addr, usize)]) + 'a;

fn locked(s: &Lockd) -> std::sync::MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

struct Agent<'a> {
    ctx: &'a Ctx,
    env: &'a Env,
    cfg: Config,
    name: String,
    mac: Mac,
    /// Send-only socket for immediate announcements of new claims.
    sock: RawSocket,
    shared: Lockd,
    health: Option<(Health, Receiver<checks::Outcome>)>,
    next_status: Instant,
    next_repair: Instant,
    /// The last engine failure (retried), for the log.
    failing: Option<String>,
}

/// Run the agent until SIGTERM/SIGINT.
pub fn run(ctx: &Ctx, env: &Env, cfg: Config) -> Result<Outcome> {
    crate::sys::require_net_admin("crossover run")?;
    signals::catch(&[Signal::Term, Signal::Int, Signal::Hup], Restart::No);
    let name = plan::name(cfg.server);
    let _lock = lock(env, &name)?;
    let link = env
        .sys
        .links()?
        .into_iter()
        .find(|l| l.name == cfg.interface)
        .ok_or_else(|| Error::Usage(format!("unknown interface '{}'", cfg.interface)))?;
    let mac: Mac = link
        .mac
        .as_deref()
        .and_then(|m| m.try_into().ok())
        .ok_or_else(|| Error::Usage(format!("{} has no Ethernet address", cfg.interface)))?;
    let listen = RawSocket::open(&cfg.interface, ETH_P_ARP)?;
    let sock = RawSocket::open(&cfg.interface, 0)?;
    let beat_sock = RawSocket::open(&cfg.interface, 0)?;
    let health = cfg.check.as_ref().map(|(check, addr)| {
        let (tx, rx) = channel();
        let job = checks::Job {
            id: checks::BackendId {
                service: format!("crossover {name}"),
                rip: *addr,
                port: check.port.unwrap_or(0),
            },
            check: check.clone(),
            vip: *addr,
            port: check.port.unwrap_or(0),
            dsr: None,
            dsr_unresolved: false,
        };
        let every = check.interval;
        std::thread::spawn(move || loop {
            let started = Instant::now();
            if tx.send(checks::run(&job)).is_err() {
                return;
            }
            std::thread::sleep(every.saturating_sub(started.elapsed()));
        });
        (Health::new(check.rise, check.fall), rx)
    });
    let now = Instant::now();
    let shared = Arc::new(Mutex::new(Shared {
        core: Core::new(&cfg, now, health.is_none()),
        held: BTreeSet::new(),
        stop: false,
    }));
    let io = {
        let shared = shared.clone();
        let (server, heartbeat) = (cfg.server, cfg.heartbeat);
        std::thread::spawn(move || io_loop(&shared, listen, beat_sock, mac, server, heartbeat))
    };
    let mut a = Agent {
        ctx,
        env,
        name,
        mac,
        sock,
        shared,
        health,
        next_status: now,
        next_repair: now + REPAIR_EVERY,
        failing: None,
        cfg,
    };
    {
        let sh = locked(&a.shared);
        let count = |t: usize| sh.core.mine.values().filter(|x| **x == t).count();
        ctx.say(format!(
            "crossover {} (server {} of {}, {} tiers) on {} {}: {} primary, {} secondary, {} \
             tertiary address(es); heartbeat {:?}, secondary after {:?}{}",
            a.name,
            a.cfg.server,
            a.cfg.table.servers,
            a.cfg.table.tiers,
            a.cfg.interface,
            fmt_mac(&a.mac),
            count(0),
            count(1),
            count(2),
            a.cfg.heartbeat,
            a.cfg.secondary_timeout,
            if a.cfg.table.tiers == 3 {
                format!(", tertiary after {:?}", a.cfg.tertiary_timeout)
            } else {
                String::new()
            }
        ));
    }
    let r = a.main();
    locked(&a.shared).stop = true;
    let _ = io.join();
    r
}

/// One agent per server index and namespace.
fn lock(env: &Env, name: &str) -> Result<std::fs::File> {
    let d = status_dir(env.journal.dir());
    std::fs::create_dir_all(&d)?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(d.join(format!("{name}.lock")))?;
    if crate::sys::lock::try_lock_exclusive(&f).is_err() {
        return Err(Error::Usage(format!(
            "another `crossover run` for {name} is running in this namespace"
        )));
    }
    Ok(f)
}

/// The next claim on the segment before `until` (announcements: a request with sender =
/// target, or any reply a host broadcast), ignoring our own frames.
fn next_claim(sock: &mut RawSocket, until: Instant, mine: Mac) -> Result<Option<Heard>> {
    loop {
        let Some(p) = sock.recv_until(until)? else {
            return Ok(None);
        };
        if let L3::Arp {
            op,
            sender_mac,
            sender_ip,
            target_mac,
            target_ip,
        } = p.l3
        {
            if sender_mac != mine && ((op == 1 && sender_ip == target_ip) || op == 2) {
                return Ok(Some(Heard {
                    addr: sender_ip,
                    mac: sender_mac,
                    tag: if op == 1 { untag(&target_mac) } else { None },
                }));
            }
        }
    }
}

/// Record one claim; defend at once if a lower tier claimed an address we hold.
fn hear(shared: &Lockd, h: &Heard, announce: &Announce<'_>) {
    let defend = {
        let mut sh = locked(shared);
        let held = sh.held.clone();
        sh.core
            .hear(h, Instant::now(), &held)
            .map(|a| (a, sh.core.mine.get(&a).copied().unwrap_or(0)))
    };
    if let Some(d) = defend {
        announce(&[d]);
    }
}

/// The I/O thread: hears claims (and defends at once) and sends the heartbeats, whatever the
/// main thread is doing (an engine transaction can take a while). A heartbeat covers only what
/// is configured *and* still wanted: an address being released is never announced again.
fn io_loop(
    shared: &Lockd,
    mut listen: RawSocket,
    send: RawSocket,
    mac: Mac,
    server: usize,
    heartbeat: Duration,
) {
    let mut next_beat = Instant::now();
    let announce = |addrs: &[(Ipv4Addr, usize)]| {
        for (a, tier) in addrs {
            // A send fails without a carrier: silence is what peers should hear then.
            let _ = send.send(&claim_frame(mac, *a, *tier, server));
        }
    };
    loop {
        let now = Instant::now();
        if now >= next_beat {
            // Hear what is queued first: a claim that just arrived must not be answered by one
            // more announcement of an address we are about to give up.
            while let Ok(Some(h)) = next_claim(&mut listen, Instant::now(), mac) {
                hear(shared, &h, &announce);
            }
            let beat: Vec<(Ipv4Addr, usize)> = {
                let sh = locked(shared);
                if sh.stop {
                    return;
                }
                let want = sh.core.want(now);
                sh.held
                    .intersection(&want)
                    .map(|a| (*a, sh.core.mine.get(a).copied().unwrap_or(0)))
                    .collect()
            };
            announce(&beat);
            next_beat = now + heartbeat;
        }
        let until = next_beat.min(Instant::now() + Duration::from_millis(50));
        match next_claim(&mut listen, until, mac) {
            Ok(Some(h)) => hear(shared, &h, &announce),
            Ok(None) => {
                if locked(shared).stop {
                    return;
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

impl Agent<'_> {
    fn main(&mut self) -> Result<Outcome> {
        let mut next_carrier = Instant::now();
        loop {
            if signals::received(&STOP) {
                return self.stop();
            }
            let now = Instant::now();
            if now >= next_carrier {
                match self.env.sys.carrier(&self.cfg.interface) {
                    Ok(up) => {
                        let up = up.unwrap_or(false);
                        let mut sh = locked(&self.shared);
                        if up != sh.core.carrier {
                            self.ctx.say(format!(
                                "{}: carrier {}",
                                self.cfg.interface,
                                if up { "back" } else { "lost" }
                            ));
                        }
                        sh.core.set_carrier(up, now);
                    }
                    Err(e) => self.ctx.warn(format!("reading the carrier: {e}")),
                }
                next_carrier = now + self.cfg.heartbeat;
            }
            self.poll_health();
            self.converge();
            if Instant::now() >= self.next_status {
                self.status();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn poll_health(&mut self) {
        let Some((health, rx)) = &mut self.health else {
            return;
        };
        let mut changed = false;
        while let Ok(o) = rx.try_recv() {
            changed |= health.result(o.ok, &o.detail);
        }
        if changed {
            self.ctx.say(format!(
                "{}: service {} ({})",
                self.name,
                if health.up {
                    "healthy: claiming"
                } else {
                    "failing: releasing every address"
                },
                health.detail
            ));
            locked(&self.shared).core.healthy = health.up;
            self.next_status = Instant::now();
        }
    }

    /// Bring the configured addresses to what the core wants (one engine transaction), then
    /// announce the new ones.
    fn converge(&mut self) {
        let now = Instant::now();
        let (want, held) = {
            let sh = locked(&self.shared);
            (sh.core.want(now), sh.held.clone())
        };
        // Also every few seconds when nothing changed: an address removed behind the agent's
        // back (by hand, `down`) comes back.
        if want == held && now < self.next_repair {
            return;
        }
        self.next_repair = now + REPAIR_EVERY;
        let owner = self.cfg.owner();
        let vips: BTreeSet<Vip> = want
            .iter()
            .map(|a| Vip {
                addr: IpAddr::V4(*a),
                dev: self.cfg.interface,
            })
            .collect();
        let t0 = Instant::now();
        let r = converge(
            self.ctx,
            &self.env.sys,
            &self.env.journal,
            "crossover run",
            |state, _| {
                state.intents.entry(owner.clone()).or_default().vips = vips;
                Ok(())
            },
        );
        match r {
            Ok(report) => {
                if want == held {
                    for c in report.plan.commands() {
                        self.ctx.say(format!("repaired: {c}"));
                    }
                }
                let gained: BTreeSet<Ipv4Addr> = want.difference(&held).copied().collect();
                let mut lines = Vec::new();
                {
                    let mut sh = locked(&self.shared);
                    for a in &gained {
                        lines.push(format!(
                            "claim {a} ({}; configured in {} ms)",
                            self.why(&sh.core, *a).unwrap_or_else(|| "primary".into()),
                            t0.elapsed().as_millis()
                        ));
                    }
                    for a in held.difference(&want) {
                        lines.push(format!("release {a} ({})", release_reason(&sh.core, *a)));
                    }
                    sh.held = want;
                }
                self.announce(&gained);
                for l in lines {
                    self.ctx.say(l);
                }
                self.failing = None;
                self.next_status = Instant::now();
            }
            Err(e) => {
                let m = e.to_string();
                if self.failing.as_deref() != Some(&m) {
                    self.ctx
                        .warn(format!("changing addresses failed (retrying): {m}"));
                }
                self.failing = Some(m);
                self.next_repair = Instant::now() + self.cfg.heartbeat;
            }
        }
    }

    fn why(&self, core: &Core, a: Ipv4Addr) -> Option<String> {
        let tier = *core.mine.get(&a)?;
        (tier > 0).then(|| {
            let t = &self.cfg.table.addrs.iter().find(|x| x.addr == a)?.tiers;
            Some(format!(
                "{}: no claim by {} for {:?}",
                TIER_NAMES[tier],
                t[..tier]
                    .iter()
                    .map(|s| plan::name(*s))
                    .collect::<Vec<_>>()
                    .join(" or "),
                self.cfg.timeout(tier)
            ))
        })?
    }

    fn announce(&self, addrs: &BTreeSet<Ipv4Addr>) {
        let tiers: Vec<(Ipv4Addr, usize)> = {
            let sh = locked(&self.shared);
            addrs
                .iter()
                .map(|a| (*a, sh.core.mine.get(a).copied().unwrap_or(0)))
                .collect()
        };
        for (a, tier) in tiers {
            // A send fails without a carrier: silence is what peers should hear then.
            let _ = self
                .sock
                .send(&claim_frame(self.mac, a, tier, self.cfg.server));
        }
    }

    fn status(&mut self) {
        let now = Instant::now();
        let sh = locked(&self.shared);
        let (healthy, health) = match &self.health {
            Some((h, _)) => (h.up, h.detail.clone()),
            None => (true, "no check configured".into()),
        };
        let s = AgentStatus {
            name: self.name.clone(),
            server: self.cfg.server,
            pid: std::process::id(),
            pid_start: crate::sys::proc::start_time(std::process::id()).unwrap_or(0),
            interface: self.cfg.interface.to_string(),
            mac: fmt_mac(&self.mac),
            healthy,
            health,
            carrier: sh.core.carrier,
            updated: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            addresses: sh
                .core
                .mine
                .iter()
                .map(|(a, t)| {
                    let h = sh.core.holders.get(a);
                    AddrStatus {
                        addr: *a,
                        tier: TIER_NAMES[*t].into(),
                        held: sh.held.contains(a),
                        heard: h.map(|h| {
                            format!(
                                "{} {}",
                                h.server.map(plan::name).unwrap_or_default(),
                                h.tier.map(|t| TIER_NAMES[t]).unwrap_or_default()
                            )
                        }),
                        heard_ms_ago: h.map(|h| now.duration_since(h.at).as_millis() as u64),
                        foreign: sh.core.foreign.get(a).map(|f| fmt_mac(&f.mac)),
                    }
                })
                .collect(),
        };
        if let Err(e) = write_status(self.env.journal.dir(), &s) {
            self.ctx.warn(format!("writing the status file: {e}"));
        }
        self.next_status = now + Duration::from_millis(500);
    }

    /// Release everything and forget the owner.
    fn stop(&mut self) -> Result<Outcome> {
        // Silence first: no heartbeat for an address about to disappear.
        let held = {
            let mut sh = locked(&self.shared);
            sh.stop = true;
            std::mem::take(&mut sh.held).len()
        };
        let owner = self.cfg.owner();
        let r = converge(
            self.ctx,
            &self.env.sys,
            &self.env.journal,
            "crossover run (stop)",
            |state, _| {
                state.intents.remove(&owner);
                Ok(())
            },
        );
        let _ = std::fs::remove_file(
            status_dir(self.env.journal.dir()).join(format!("{}.json", self.name)),
        );
        match r {
            Ok(rep) => {
                for c in rep.plan.commands() {
                    self.ctx.say(c);
                }
                self.ctx.say(format!(
                    "{} stopped; released {} address(es)",
                    self.name, held
                ));
                Ok(Outcome::Clean)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crossover::config::parse;
    use crate::crossover::plan::{agent_config, build, AgentDefaults, Request};

    fn cfg(n: usize, tiers: usize, s: usize) -> Config {
        let t = build(&Request {
            servers: n,
            tiers,
            ranges: vec!["198.18.1.0/24".parse().unwrap()],
        })
        .unwrap();
        parse(&agent_config(&t, s, &AgentDefaults::default(), "test")).unwrap()
    }

    fn ms(t: Instant, m: u64) -> Instant {
        t + Duration::from_millis(m)
    }

    #[test]
    fn tags_round_trip_and_frame_layout() {
        assert_eq!(untag(&tag(2, 7)), Some((2, 7)));
        assert_eq!(untag(&[0; 6]), None);
        let f = claim_frame([2, 0, 0, 0, 0, 1], Ipv4Addr::new(198, 18, 1, 1), 1, 3);
        let p = crate::sys::capture::Packet::from_frame(
            SystemTime::now(),
            1,
            "eth0",
            crate::sys::capture::Direction::Out,
            f,
        )
        .unwrap();
        match p.l3 {
            L3::Arp {
                op,
                sender_ip,
                target_ip,
                target_mac,
                ..
            } => {
                assert_eq!((op, sender_ip, target_ip), (1, target_ip, sender_ip));
                assert_eq!(untag(&target_mac), Some((1, 3)));
            }
            _ => panic!("not ARP"),
        }
    }

    #[test]
    fn secondary_claims_after_silence_and_yields_to_the_primary() {
        // 3 servers, 2 tiers; s2 is secondary for 198.18.1.1 (primary s1).
        let c = cfg(3, 2, 2);
        let x = Ipv4Addr::new(198, 18, 1, 1);
        assert_eq!(c.table.addrs[0].tiers, vec![1, 2]);
        let t0 = Instant::now();
        let mut core = Core::new(&c, t0, true);
        let primaries: BTreeSet<_> = core
            .mine
            .iter()
            .filter(|(_, t)| **t == 0)
            .map(|(a, _)| *a)
            .collect();
        // At once: only the primaries; nothing else for two secondary timeouts.
        assert_eq!(core.want(t0), primaries);
        assert_eq!(core.want(ms(t0, 699)), primaries);
        let beat = |core: &mut Core, at| {
            core.hear(
                &Heard {
                    addr: x,
                    mac: [2, 0, 0, 0, 0, 1],
                    tag: Some((0, 1)),
                },
                at,
                &BTreeSet::new(),
            )
        };
        // Heartbeats every 100 ms keep it away.
        for i in 0..10 {
            beat(&mut core, ms(t0, i * 100));
            assert!(!core.want(ms(t0, i * 100 + 50)).contains(&x));
        }
        // 349 ms of silence: not yet; 350: claim.
        assert!(!core.want(ms(t0, 900 + 349)).contains(&x));
        assert!(core.want(ms(t0, 900 + 350)).contains(&x));
        // The primary claims again: released at once, and claimed only after a new silence.
        beat(&mut core, ms(t0, 2000));
        assert!(!core.want(ms(t0, 2001)).contains(&x));
        assert!(core.want(ms(t0, 2350)).contains(&x));
    }

    #[test]
    fn tertiary_waits_for_both_and_defends_against_lower_tiers() {
        // 3 servers, 3 tiers: 198.18.1.1 is (1, 2, 3).
        let c = cfg(3, 3, 3);
        let x = Ipv4Addr::new(198, 18, 1, 1);
        assert_eq!(c.table.addrs[0].tiers, vec![1, 2, 3]);
        let t0 = Instant::now();
        let mut core = Core::new(&c, t0, true);
        let claim = |tier, server| Heard {
            addr: x,
            mac: [2, 0, 0, 0, 0, server as u8],
            tag: Some((tier, server)),
        };
        // The secondary holds it: the tertiary stays away while it hears it.
        core.hear(&claim(1, 2), ms(t0, 400), &BTreeSet::new());
        assert!(!core.want(ms(t0, 1000)).contains(&x));
        assert!(core.want(ms(t0, 1100)).contains(&x));
        // Held by us, a primary claim wins; no defence against a higher tier.
        let held = BTreeSet::from([x]);
        assert_eq!(core.hear(&claim(0, 1), ms(t0, 1200), &held), None);
        assert!(!core.want(ms(t0, 1201)).contains(&x));
        // s2 (secondary) defends against us: seen from s2's side.
        let mut s2 = Core::new(&cfg(3, 3, 2), t0, true);
        assert_eq!(s2.hear(&claim(2, 3), ms(t0, 10), &held), Some(x));
        assert_eq!(s2.hear(&claim(2, 3), ms(t0, 10), &BTreeSet::new()), None);
    }

    #[test]
    fn unhealthy_or_cut_off_holds_nothing_extra() {
        let c = cfg(3, 2, 2);
        let t0 = Instant::now();
        let mut core = Core::new(&c, t0, true);
        assert_eq!(core.want(ms(t0, 1000)).len(), 4);
        core.healthy = false;
        assert!(core.want(ms(t0, 1000)).is_empty());
        core.healthy = true;
        core.set_carrier(false, ms(t0, 1000));
        assert_eq!(core.want(ms(t0, 1000)).len(), 2, "primaries only");
        // Carrier back: listen a whole timeout before claiming secondaries again.
        core.set_carrier(true, ms(t0, 2000));
        assert_eq!(core.want(ms(t0, 2100)).len(), 2);
        assert_eq!(core.want(ms(t0, 2350)).len(), 4);
    }

    #[test]
    fn untagged_claims_are_recorded_not_obeyed() {
        let c = cfg(3, 2, 2);
        let t0 = Instant::now();
        let mut core = Core::new(&c, t0, true);
        let x = Ipv4Addr::new(198, 18, 1, 1);
        core.hear(
            &Heard {
                addr: x,
                mac: [2, 9, 9, 9, 9, 9],
                tag: None,
            },
            ms(t0, 100),
            &BTreeSet::new(),
        );
        assert!(core.foreign.contains_key(&x));
        assert!(core.want(ms(t0, 800)).contains(&x));
    }

    #[test]
    fn health_rise_and_fall() {
        let mut h = Health::new(2, 3);
        assert!(!h.up);
        assert!(h.result(true, ""), "the first success decides");
        assert!(!h.result(false, "refused"));
        assert!(!h.result(false, "refused"));
        assert!(h.result(false, "refused"));
        assert!(!h.up);
        assert!(!h.result(true, ""));
        assert!(h.result(true, ""));
        assert!(h.up);
        let mut h = Health::new(2, 3);
        assert!(!h.result(false, "refused"), "first failure: still down");
        assert!(!h.up);
    }
}
