//! What `lb run` holds while it announces: the routing daemon, one TUN device per VIP (the
//! gate its route hangs off) and the watchdog. The daemon loop calls [`Speaker::gate`] with the
//! VIPs that may be announced now; everything else is here.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::bird::Bird2;
use super::VipRoute;
use super::{device_name, resolve, AnnounceStatus, Announcer, Bgp, Plan, Session, VipAnnounce};
use crate::model::AddrObj;
use crate::sys::tun::{Tun, Watchdog};

/// No heartbeat from `lb run` for this long: the watchdog withdraws every VIP.
pub const WATCHDOG_DEADLINE: Duration = Duration::from_millis(300);
/// The main loop made no progress for this long: the heartbeat stops (a hung `lb run`).
pub const WATCHDOG_STALL: Duration = Duration::from_secs(5);

/// Where `lb run` keeps the routing daemon's files: `<run dir>/lb-run/NAME.bird/`.
pub fn dir(journal_dir: &Path, name: &str) -> PathBuf {
    crate::lb::status::dir(journal_dir).join(format!("{name}.bird"))
}

/// The VIPs to announce, each with the services behind it and their quorum.
pub fn vip_routes(name: &str, services: &[(IpAddr, String, u32)]) -> Vec<VipRoute> {
    super::notes(services)
        .into_iter()
        .map(|(vip, note)| VipRoute {
            device: device_name(name, &vip),
            vip,
            note: format!("needs {note}"),
        })
        .collect()
}

/// The plan and the daemon's verdict on it, without starting anything (`--dry-run`, `lb
/// export`, and `lb run` before its first change).
pub fn prepare(
    name: &str,
    bgp: &Bgp,
    addrs: &[AddrObj],
    services: &[(IpAddr, String, u32)],
    dir: &Path,
) -> Result<(Plan, Box<dyn Announcer>), String> {
    let plan = resolve(name, bgp, addrs, vip_routes(name, services))?;
    let a: Box<dyn Announcer> = Box::new(Bird2::new(dir));
    a.validate(&plan)?;
    Ok((plan, a))
}

pub struct Speaker {
    announcer: Box<dyn Announcer>,
    plan: Plan,
    gates: BTreeMap<IpAddr, Tun>,
    /// Per VIP: announced, or why not.
    want: BTreeMap<IpAddr, Result<(), String>>,
    watchdog: Option<Watchdog>,
    sessions: Result<Vec<Session>, String>,
    asked: Option<Instant>,
}

impl Speaker {
    pub fn new(plan: Plan, announcer: Box<dyn Announcer>, watchdog: Option<Watchdog>) -> Speaker {
        Speaker {
            announcer,
            plan,
            gates: BTreeMap::new(),
            want: BTreeMap::new(),
            watchdog,
            sessions: Err("not asked yet".into()),
            asked: None,
        }
    }

    /// Create the gates (down) and start the routing daemon.
    pub fn start(&mut self) -> Result<Vec<String>, String> {
        let mut lines = self.sync_gates()?;
        self.announcer.start(&self.plan)?;
        lines.push(format!(
            "{} started (PID {}, control socket {}): AS {} router id {}, {} neighbour(s), {} VIP(s)",
            self.announcer.name(),
            self.announcer.pid(),
            self.announcer.socket(),
            self.plan.bgp.asn,
            self.plan.router_id,
            self.plan.peers.len(),
            self.plan.vips.len()
        ));
        Ok(lines)
    }

    fn sync_gates(&mut self) -> Result<Vec<String>, String> {
        let mut lines = Vec::new();
        let keep: BTreeMap<IpAddr, String> = self
            .plan
            .vips
            .iter()
            .map(|v| (v.vip, v.device.clone()))
            .collect();
        self.gates.retain(|vip, _| keep.contains_key(vip));
        for (vip, dev) in &keep {
            if !self.gates.contains_key(vip) {
                let t = Tun::create(dev).map_err(|e| e.to_string())?;
                lines.push(format!("created gate {dev} for {vip} (down)"));
                self.gates.insert(*vip, t);
            }
        }
        if let Some(w) = &self.watchdog {
            let names: Vec<String> = self.gates.values().map(|t| t.name().to_string()).collect();
            w.watch(&names);
        }
        Ok(lines)
    }

    /// A new plan (reload): the daemon gets it only if it accepts it.
    pub fn reload(&mut self, plan: Plan) -> Result<Vec<String>, String> {
        if plan == self.plan {
            return Ok(Vec::new());
        }
        self.announcer.reconfigure(&plan)?;
        self.plan = plan;
        let mut l = self.sync_gates()?;
        l.push(format!("{} reconfigured", self.announcer.name()));
        Ok(l)
    }

    /// The main loop is alive (the watchdog's heartbeat).
    pub fn tick(&self) {
        if let Some(w) = &self.watchdog {
            w.tick();
        }
    }

    /// Open the gates of the VIPs that may be announced, close the others. Also re-asserts a
    /// gate changed behind `lb run`'s back (or closed by the watchdog while it was stopped).
    /// Returns the changes, to log.
    pub fn gate(&mut self, want: BTreeMap<IpAddr, Result<(), String>>) -> Vec<String> {
        let mut lines = Vec::new();
        for (vip, t) in &self.gates {
            let w = want
                .get(vip)
                .cloned()
                .unwrap_or_else(|| Err("no service".into()));
            let up = w.is_ok();
            let is_up = t.is_up().unwrap_or(!up);
            if is_up != up {
                match t.set_up(up) {
                    Ok(()) => {}
                    Err(e) => {
                        lines.push(format!("{vip}: {e}"));
                        continue;
                    }
                }
            }
            let before = self.want.get(vip);
            if before != Some(&w) {
                lines.push(match &w {
                    Ok(()) => format!("announcing {vip} (gate {} up)", t.name()),
                    Err(why) => format!("withdrawing {vip} (gate {} down): {why}", t.name()),
                });
            } else if is_up != up {
                lines.push(format!(
                    "gate {} of {vip} was {} behind lbctl's back: set {} again",
                    t.name(),
                    if is_up { "up" } else { "down" },
                    if up { "up" } else { "down" }
                ));
            }
        }
        self.want = want;
        lines
    }

    /// Ask the daemon for its sessions (at most once a second).
    pub fn refresh(&mut self) {
        if self
            .asked
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.asked = Some(Instant::now());
        self.sessions = self.announcer.sessions().map(|mut s| {
            for x in &mut s {
                if let Some(p) = self.plan.peers.iter().find(|p| p.name == x.name) {
                    x.neighbor = Some(p.neighbor.address.to_string());
                    x.asn = Some(p.neighbor.asn);
                }
            }
            s
        });
    }

    pub fn status(&self) -> AnnounceStatus {
        AnnounceStatus {
            daemon: self.announcer.name().into(),
            pid: self.announcer.pid(),
            socket: self.announcer.socket(),
            config: self.announcer.config_path(),
            asn: self.plan.bgp.asn,
            router_id: self.plan.router_id.to_string(),
            sessions: self.sessions.clone().unwrap_or_default(),
            vips: self
                .plan
                .vips
                .iter()
                .map(|v| {
                    let up = self
                        .gates
                        .get(&v.vip)
                        .and_then(|t| t.is_up().ok())
                        .unwrap_or(false);
                    VipAnnounce {
                        vip: v.vip.to_string(),
                        device: v.device.clone(),
                        announced: up,
                        reason: match self.want.get(&v.vip) {
                            Some(Err(why)) => why.clone(),
                            _ if !up => "gate down".into(),
                            _ => String::new(),
                        },
                    }
                })
                .collect(),
            error: self.sessions.as_ref().err().cloned(),
        }
    }

    /// Withdraw everything (gates down), give the daemon a moment to send the withdrawals,
    /// then stop it and delete the gates.
    pub fn stop(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        for (vip, t) in &self.gates {
            if t.is_up().unwrap_or(true) {
                let _ = t.set_up(false);
                lines.push(format!("withdrawing {vip} (stopping)"));
            }
        }
        if !lines.is_empty() {
            std::thread::sleep(Duration::from_millis(200));
        }
        self.announcer.stop();
        self.gates.clear();
        self.watchdog = None;
        lines.push(format!("{} stopped", self.announcer.name()));
        lines
    }
}
