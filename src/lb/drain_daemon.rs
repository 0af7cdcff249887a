//! The daemon's side of `lbctl lb drain --balancer` ([`crate::lb::drain`]), as methods of its
//! [`Daemon`]: start the drain (withdraw first), count the pinned flows every second, and answer
//! the clients that wait once the data path is gone. A child module of `daemon.rs`.

use std::time::Duration;

use serde_json::json;

use super::{Daemon, DataPath};
use crate::error::Result;
use crate::lb::control::{Pending, Response};
use crate::lb::drain::Draining;
use crate::Outcome;

impl Daemon<'_> {
    /// A `drain-balancer` request: withdraw every announcement and start waiting. Returns the
    /// answer to send now, or `None` when the client waits for the end (`--wait`).
    pub(super) fn drain_request(
        &mut self,
        p: Pending,
        timeout_secs: u64,
        wait: bool,
    ) -> Option<(Pending, Response)> {
        let changed = self.drain.is_none();
        if changed {
            // Set first: from now on `announce` keeps every gate closed.
            self.drain = Some(Draining::new(
                Duration::from_secs(timeout_secs),
                String::new(),
            ));
            let withdrawn = self.withdraw_all();
            // The drain ends with the data path and VIPs removed, like `lb run --cleanup`.
            self.opts.cleanup = true;
            let d = self.drain.as_mut()?;
            d.withdrawn = withdrawn;
            self.log.emit(
                "drain",
                &format!(
                    "drain: {}; forwarding the flows still pinned here until none is left or \
                     {timeout_secs} s pass (deadline {}), then removing the data path and VIPs",
                    d.withdrawn,
                    d.status().deadline
                ),
                json!({ "phase": "withdrawn", "timeout_secs": timeout_secs }),
            );
            self.write_status();
        }
        let d = self.drain.as_mut()?;
        let message = if changed {
            format!(
                "draining: {}; the data path stays until no flow is pinned or {timeout_secs} s \
                 pass (deadline {})",
                d.withdrawn,
                d.status().deadline
            )
        } else {
            format!(
                "unchanged: already draining since {} (deadline {})",
                d.status().withdrawn_at,
                d.status().deadline
            )
        };
        if wait {
            d.waiters.push(p);
            return None;
        }
        Some((
            p,
            Response {
                ok: true,
                changed,
                message,
                drain: None,
            },
        ))
    }

    /// Phase 1: no router or VRRP peer may keep sending new flows here. Returns what was done.
    fn withdraw_all(&mut self) -> String {
        let mut done = Vec::new();
        if self.speaker.is_some() {
            // `announce` closes every gate while a drain runs.
            let vips = self
                .speaker
                .as_ref()
                .map(|s| s.status().vips.len())
                .unwrap_or(0);
            self.announce();
            done.push(format!("BGP: {vips} VIP route(s) withdrawn"));
        }
        if self.ha.is_some() {
            self.stop_ha();
            done.push(
                "VRRP: keepalived stopped (priority-0 advert: the peer takes the VIPs)".to_string(),
            );
        }
        if done.is_empty() {
            done.push(format!(
                "nothing to withdraw (no [bgp], no [ha]): the VIPs stay on {} until the data \
                 path is removed",
                self.iface
            ));
        }
        done.join("; ")
    }

    /// Phase 2: count the pinned flows every second while draining.
    pub(super) fn drain_tick(&mut self) {
        if !self.drain.as_ref().is_some_and(|d| d.count_due()) {
            return;
        }
        let count = match &mut self.path {
            DataPath::Nft(n) => n.pinned_total(),
            DataPath::Ipvs(p) => {
                let keys: Vec<_> = self.services.iter().map(|s| s.key()).collect();
                p.connections(&keys).ok()
            }
        };
        let Some(d) = self.drain.as_mut() else { return };
        let before = d.pinned;
        let ended = d.counted(count);
        let text = if ended {
            match d.ended {
                Some("drained") => "drain: no pinned flow left".to_string(),
                _ => format!(
                    "drain: timeout with {} pinned flow(s) left",
                    count.map_or_else(|| "uncounted".to_string(), |n| n.to_string())
                ),
            }
        } else if before != count {
            match count {
                Some(n) => format!("drain: {n} pinned flow(s) left"),
                None => "drain: could not count the pinned flows".to_string(),
            }
        } else {
            String::new()
        };
        if !text.is_empty() {
            self.log.emit(
                "drain",
                &text,
                json!({ "phase": if ended { "removing" } else { "waiting" }, "pinned_flows": count }),
            );
        }
        self.write_status();
    }

    /// The main loop ends when the drain is over.
    pub(super) fn drain_over(&self) -> bool {
        self.drain.as_ref().is_some_and(|d| d.ended.is_some())
    }

    /// SIGHUP while draining: the file is not applied (it could announce again).
    pub(super) fn reload_unless_draining(&mut self) {
        if self.drain.is_some() {
            self.log.emit(
                "reload",
                "SIGHUP ignored: the balancer is draining",
                json!({}),
            );
        } else {
            self.reload();
        }
    }

    /// Phase 3 is `stop` with cleanup; then tell the waiting clients how it ended.
    pub(super) fn drain_finish(&mut self, r: &Result<Outcome>) {
        let Some(d) = self.drain.take() else { return };
        let removal = r.as_ref().map(|_| ()).map_err(|e| e.to_string());
        let o = d.outcome(&removal);
        let message = format!(
            "{}: {} after {:.1} s, {}; {}",
            self.name,
            match o.ended.as_str() {
                "drained" => "drained",
                "timeout" => "drain timed out",
                _ => "drain interrupted by a signal",
            },
            o.millis as f64 / 1000.0,
            match o.flows_left {
                Some(n) => format!("{n} pinned flow(s) left at removal"),
                None => "pinned flows could not be counted".to_string(),
            },
            match &o.error {
                None => "data path and VIPs removed".to_string(),
                Some(e) => format!("removing the data path failed: {e}"),
            }
        );
        self.log
            .emit("drain", &message, json!({ "phase": "done", "outcome": o }));
        for p in d.waiters {
            p.answer(&Response {
                ok: o.removed,
                changed: true,
                message: message.clone(),
                drain: Some(o.clone()),
            });
        }
    }
}
