//! Service-level behaviour of the `lb run` daemon, as methods of its [`Daemon`]: quorum (and what
//! `on_quorum_loss` does), the sorry server, `notify` hooks, and the `[ha]` keepalived
//! supervisor (see [`crate::lb::ha`] for the single-owner design). A child module of
//! `daemon.rs`, so the daemon file only carries the calls.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Instant, SystemTime};

use serde_json::json;

use super::{Be, Daemon, Svc};
use crate::context::Env;
use crate::error::{Error, Result};
use crate::ipvs::spec::LbFile;
use crate::lb::datapath::Want;
use crate::lb::ha::keepalived::{Instance, Supervisor};
use crate::lb::health::{Health, State as BeState};
use crate::lb::quorum::{OnQuorumLoss, Tracker};
use crate::lb::status;
use crate::usage;

/// What the daemon keeps for this file.
#[derive(Default)]
pub(super) struct State {
    tracker: Tracker,
    hooks: crate::sys::hook::Running,
    /// Weights set by exec checks with `weight_from_exit` (exit 2-255).
    weights: std::collections::BTreeMap<crate::lb::checks::BackendId, u32>,
}

impl State {
    /// The weight a backend has in the data path while up.
    pub(super) fn weight(&self, b: &Be) -> u32 {
        self.weights.get(&b.id).copied().unwrap_or(b.weight)
    }

    /// Record a check's dynamic weight (None: the configured one); true when it changed.
    pub(super) fn set_weight(&mut self, id: &crate::lb::checks::BackendId, w: Option<u32>) -> bool {
        match w {
            Some(w) => self.weights.insert(id.clone(), w) != Some(w),
            None => self.weights.remove(id).is_some(),
        }
    }

    pub(super) fn lost(&self, service: &str) -> bool {
        self.tracker.lost(service)
    }

    fn hook(&mut self, argv: &[String], env: Vec<(String, String)>) -> Option<String> {
        if argv.is_empty() {
            return None;
        }
        match self.hooks.start(argv, &env) {
            Ok(()) => None,
            Err(e) => Some(format!("notify hook {}: {e}", argv[0])),
        }
    }

    /// Run the service's `notify` argv for a backend transition.
    pub(super) fn notify_backend(
        &mut self,
        argv: &[String],
        service: &str,
        b: &Be,
        from: BeState,
        to: BeState,
    ) -> Option<String> {
        self.hook(
            argv,
            vec![
                ("LBCTL_EVENT".into(), "backend".into()),
                ("LBCTL_SERVICE".into(), service.into()),
                ("LBCTL_BACKEND".into(), b.id.rip.to_string()),
                ("LBCTL_BACKEND_PORT".into(), b.id.port.to_string()),
                ("LBCTL_FROM".into(), from.name().into()),
                ("LBCTL_STATE".into(), to.name().into()),
            ],
        )
    }
}

/// The `[ha]` checks against the interface's addresses; the VRRP source address.
fn ha_preflight(env: &Env, h: &crate::lb::ha::Ha, iface: &str) -> Result<Option<IpAddr>> {
    let addrs: Vec<(IpAddr, u8)> = env
        .sys
        .addresses()?
        .into_iter()
        .filter(|a| a.obj.dev == iface)
        .map(|a| (a.obj.addr, a.obj.prefix))
        .collect();
    crate::lb::ha::preflight(h, iface, &addrs).map_err(Error::Usage)
}

/// `[ha]` checks that need the host, and keepalived's verdict on the generated file: all before
/// anything starts (exit 2 with the reason).
pub(super) fn prepare_ha(env: &Env, file: &LbFile, iface: &str) -> Result<Option<Supervisor>> {
    let Some(h) = &file.ha else { return Ok(None) };
    if let Some(i) = &h.interface {
        if i != iface {
            return Err(usage!(
                "[ha] interface = \"{i}\" but the VIPs go on {iface} (set [balancer] interface = \
                 \"{i}\" too, or leave [ha] interface out)"
            ));
        }
    }
    let src = ha_preflight(env, h, iface)?;
    let vips = file.vip_addrs();
    let dir = status::dir(env.journal.dir()).join(format!("{}.ha", file.name));
    Supervisor::prepare(
        &Instance {
            name: &file.name,
            ha: h,
            iface,
            src,
            vips: &vips,
            fifo: None,
            track: None,
        },
        &dir,
    )
    .map(Some)
    .map_err(|e| usage!("[ha]: {e}; nothing was started"))
}

fn is_sorry(s: &Svc, b: &Be) -> bool {
    s.run.quorum.sorry == Some((b.id.rip, b.id.port))
}

/// `--dry-run lb run` with `[ha]`: the same refusals as the real run (keepalived missing, peer
/// off the network), then the VRRP configuration it would hand keepalived.
pub(super) fn dry_run_ha(ctx: &crate::Ctx, env: &Env, file: &LbFile, iface: &str) -> Result<()> {
    let Some(h) = &file.ha else { return Ok(()) };
    let src = ha_preflight(env, h, iface)?;
    let vips = file.vip_addrs();
    ctx.say(format!(
        "[ha]: keepalived ({}) would own the VIPs while MASTER (lb run adds none itself), with:",
        h.keepalived.display()
    ));
    let conf = crate::lb::ha::keepalived::render_vrrp(&Instance {
        name: &file.name,
        ha: h,
        iface,
        src,
        vips: &vips,
        fifo: None,
        track: None,
    });
    for l in conf.lines() {
        ctx.say(format!("  {l}"));
    }
    Ok(())
}

impl Daemon<'_> {
    /// SIGHUP with `[ha]`: a changed VRRP configuration is checked with `keepalived -t` and
    /// handed to keepalived (SIGHUP); adding or removing `[ha]` needs a restart.
    pub(super) fn reload_ha(&mut self, file: &LbFile) -> std::result::Result<(), String> {
        match (&mut self.ha, &file.ha) {
            (None, None) => Ok(()),
            (Some(_), None) | (None, Some(_)) => Err(
                "adding or removing [ha] needs a restart of lb run (the VIPs change owner)".into(),
            ),
            (Some(_), Some(_)) => {
                let new = prepare_ha(self.env, file, &self.iface)
                    .map_err(|e| e.to_string())?
                    .ok_or("no [ha]")?;
                let h = self.ha.as_mut().ok_or("no [ha]")?;
                if h.adopt(new)? {
                    self.log.emit(
                        "vrrp",
                        "keepalived configuration changed: checked with keepalived -t, reloaded (SIGHUP)",
                        json!({}),
                    );
                }
                Ok(())
            }
        }
    }

    /// Start keepalived once the data path is configured (the BACKUP is warm from the start).
    pub(super) fn launch_ha(&mut self) -> Result<()> {
        let Some(h) = &mut self.ha else { return Ok(()) };
        let pid = h
            .launch()
            .map_err(|e| Error::Runtime(anyhow::anyhow!("[ha]: {e}")))?;
        let st = h.status();
        self.log.emit(
            "vrrp",
            &format!(
                "keepalived started (PID {pid}, VRID {}, priority {}, {}): it owns the VIPs \
                 while MASTER",
                st.vrid, st.configured_priority, st.config
            ),
            json!({ "keepalived_pid": pid }),
        );
        Ok(())
    }

    pub(super) fn stop_ha(&mut self) {
        let Some(h) = &mut self.ha else { return };
        let lines = h.stop(&self.env.sys);
        for l in lines {
            self.log.emit("vrrp", &l, json!({}));
        }
    }

    /// The VIPs lb run owns on the NIC itself: none with `[ha]` (keepalived owns them), else
    /// every VIP except those whose services all withdrew (quorum lost).
    pub(super) fn owned_vips(&self) -> BTreeSet<IpAddr> {
        if self.ha.is_some() {
            return BTreeSet::new();
        }
        let mut keep = BTreeSet::new();
        for s in &self.services {
            let Some((vip, _)) = s.vip() else { continue };
            let withdrawn = s.run.quorum.on_loss == Some(OnQuorumLoss::Withdraw)
                && self.svc.tracker.lost(&s.name);
            if !withdrawn {
                keep.insert(vip);
            }
        }
        keep
    }

    /// The sorry server of each service, checked like a backend but outside the quorum count.
    pub(super) fn add_sorry_backends(&mut self) {
        for s in &mut self.services {
            let Some((rip, port)) = s.run.quorum.sorry else {
                continue;
            };
            if s.backends
                .iter()
                .any(|b| b.id.rip == rip && b.id.port == port)
            {
                continue;
            }
            s.backends.push(Be {
                id: crate::lb::checks::BackendId {
                    service: s.name.clone(),
                    rip,
                    port,
                },
                weight: 1,
                health: Health::default(),
                since: SystemTime::now(),
                last: None,
                mac: None,
                next_due: Instant::now(),
                in_flight: false,
                slots: None,
                stale: false,
                disable_file: None,
                file_drained: false,
                failures: 0,
            });
        }
    }

    /// Out of the data path because of the sorry-server rule (see [`Daemon::sorry_wants`]).
    pub(super) fn sorry_out(&self, s: &Svc, b: &Be) -> bool {
        if s.run.quorum.sorry.is_none() {
            return false;
        }
        let lost = self.svc.tracker.lost(&s.name);
        if is_sorry(s, b) {
            !lost || b.health.state != BeState::Up
        } else {
            lost
        }
    }

    /// Quorum lost with `on_quorum_loss = "sorry"`: the sorry server alone; otherwise the
    /// sorry server out of the service.
    pub(super) fn sorry_wants(&self, wants: &mut [Want]) {
        for (s, w) in self.services.iter().zip(wants.iter_mut()) {
            let Some((rip, port)) = s.run.quorum.sorry else {
                continue;
            };
            let lost = self.svc.tracker.lost(&s.name);
            for (b, wb) in s.backends.iter().zip(w.backends.iter_mut()) {
                let sorry = is_sorry(s, b);
                if sorry && lost && b.health.state == BeState::Up {
                    wb.weight = 1;
                    wb.removed = false;
                } else if sorry || lost {
                    wb.weight = 0;
                    wb.removed = true;
                }
            }
            if lost && w.entry.dest(rip, port).is_none() {
                if let Some(first) = w.entry.dests.first() {
                    let mut d = first.clone();
                    d.addr = rip;
                    d.port = port;
                    d.weight = 1;
                    w.entry.dests.push(d);
                }
            }
        }
    }

    /// Once per main-loop turn: reap hooks, judge each service's quorum, act on changes, and
    /// drive keepalived (track file, role, restart after death).
    pub(super) fn service_tick(&mut self) {
        for l in self.svc.hooks.reap(crate::sys::hook::TIMEOUT) {
            self.log.emit("warning", &l, json!({}));
        }
        let counts: Vec<(String, u32, u32, bool)> = self
            .services
            .iter()
            .map(|s| {
                let real = s.backends.iter().filter(|b| !is_sorry(s, b));
                let up = real
                    .clone()
                    .filter(|b| b.health.state == BeState::Up)
                    .count() as u32;
                let total = real.clone().count() as u32;
                let checked = real.clone().all(|b| b.health.state != BeState::Unknown);
                (s.name.clone(), up, total, checked)
            })
            .collect();
        let changes = self.svc.tracker.update(
            self.services
                .iter()
                .zip(&counts)
                .map(|(s, (_, up, _, checked))| (s.name.as_str(), &s.run.quorum, *up, *checked)),
        );
        let mut vips_changed = false;
        for c in changes {
            let Some(s) = self.services.iter().find(|s| s.name == c.service) else {
                continue;
            };
            let q = &s.run.quorum;
            let total = counts
                .iter()
                .find(|x| x.0 == c.service)
                .map(|x| x.2)
                .unwrap_or(0);
            let action = match (q.on_loss, c.lost, self.ha.is_some()) {
                (Some(OnQuorumLoss::Withdraw), true, false) => "VIP withdrawn".to_string(),
                (Some(OnQuorumLoss::Withdraw), true, true) => {
                    "VRRP goes to FAULT (VIPs released)".to_string()
                }
                (Some(OnQuorumLoss::Sorry), true, _) => {
                    format!("new flows go to the sorry server {}", addr(q.sorry))
                }
                (None, true, _) => "reported only (no on_quorum_loss)".to_string(),
                (Some(OnQuorumLoss::Withdraw), false, false) => "VIP owned again".to_string(),
                (Some(OnQuorumLoss::Withdraw), false, true) => "VRRP track cleared".to_string(),
                (Some(OnQuorumLoss::Sorry), false, _) => "backends serve again".to_string(),
                (None, false, _) => "back".to_string(),
            };
            let text = format!(
                "{}: quorum {} ({} of {total} backend(s) up, quorum {}{}); {action}",
                c.service,
                if c.lost { "lost" } else { "regained" },
                c.healthy,
                q.min,
                if q.hysteresis > 0 {
                    format!(", hysteresis {}", q.hysteresis)
                } else {
                    String::new()
                }
            );
            self.log.emit(
                "quorum",
                &text,
                json!({ "service": c.service, "lost": c.lost, "healthy": c.healthy, "quorum": q.min }),
            );
            let argv = q.notify.clone();
            let env = vec![
                ("LBCTL_EVENT".into(), "service".into()),
                ("LBCTL_SERVICE".into(), c.service.clone()),
                (
                    "LBCTL_STATE".into(),
                    if c.lost { "quorum-lost" } else { "quorum" }.into(),
                ),
                ("LBCTL_HEALTHY".into(), c.healthy.to_string()),
                ("LBCTL_QUORUM".into(), q.min.to_string()),
            ];
            if q.on_loss == Some(OnQuorumLoss::Withdraw) {
                vips_changed = true;
            }
            if q.on_loss == Some(OnQuorumLoss::Sorry) {
                self.dirty = true;
            }
            if let Some(e) = self.svc.hook(&argv, env) {
                self.log.emit("warning", &e, json!({}));
            }
        }
        if vips_changed && self.ha.is_none() {
            if let Err(e) = self.own_vips() {
                self.log.emit(
                    "warning",
                    &format!("updating the VIPs after a quorum change: {e}"),
                    json!({}),
                );
            }
        }
        let fault = self.services.iter().any(|s| {
            s.run.quorum.on_loss == Some(OnQuorumLoss::Withdraw) && self.svc.tracker.lost(&s.name)
        });
        if let Some(h) = &mut self.ha {
            let lines = h.tick(&self.env.sys, fault);
            for l in lines {
                self.log.emit("vrrp", &l, json!({ "role": h.role() }));
            }
        }
    }
}

fn addr(a: Option<(IpAddr, u16)>) -> String {
    match a {
        Some((ip, p)) => crate::ipvs::text::addr_port(&ip, p),
        None => "-".into(),
    }
}
