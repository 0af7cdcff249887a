//! Service-level behaviour of `lb run`: `quorum` (minimum healthy backends), what happens below
//! it (`on_quorum_loss = "withdraw" | "sorry"`), `hysteresis`, the `sorry_server`, and `notify`
//! hooks run on backend and service transitions.
//!
//! - **Quorum** is lost when fewer than `quorum` backends are up, and back only when at least
//!   `quorum + hysteresis` are up (so one flapping backend does not flap the VIP).
//! - **withdraw**: the service's VIP is released (without `[ha]`: `lb run` deletes it from the
//!   NIC, unless another service on the same VIP still has its quorum; with `[ha]`: keepalived
//!   goes to FAULT through the track file). Clients then get no ARP answer instead of a silent
//!   SYN black hole, and a healthier peer balancer takes the VIP.
//! - **sorry**: the sorry server takes every new flow, alone, until the quorum is back.
//! - Without `on_quorum_loss` the quorum is only reported (and hooks run): the VIP stays.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::ipvs::plan::Entry;
use crate::ipvs::ServiceKey;

#[derive(Debug, Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnQuorumLoss {
    /// Release the VIP.
    Withdraw,
    /// Send new flows to the sorry server.
    Sorry,
}

impl OnQuorumLoss {
    pub fn name(self) -> &'static str {
        match self {
            OnQuorumLoss::Withdraw => "withdraw",
            OnQuorumLoss::Sorry => "sorry",
        }
    }
}

/// The service keys as written.
#[derive(Debug, Clone, Default)]
pub struct QuorumToml {
    pub quorum: Option<i64>,
    pub on_quorum_loss: Option<OnQuorumLoss>,
    pub sorry_server: Option<String>,
    pub hysteresis: Option<i64>,
    pub notify: Option<Vec<String>>,
}

/// Validated quorum settings of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quorum {
    pub min: u32,
    pub on_loss: Option<OnQuorumLoss>,
    pub sorry: Option<(IpAddr, u16)>,
    pub hysteresis: u32,
    pub notify: Vec<String>,
}

impl Default for Quorum {
    fn default() -> Self {
        Quorum {
            min: 1,
            on_loss: None,
            sorry: None,
            hysteresis: 0,
            notify: Vec::new(),
        }
    }
}

pub fn parse(t: &QuorumToml, key: &ServiceKey, entry: &Entry) -> Result<Quorum, String> {
    let n = entry.dests.len() as i64;
    let min = t.quorum.unwrap_or(1);
    if min < 1 || (n > 0 && min > n) {
        return Err(format!(
            "quorum = {min}: must be 1..={} (the number of backends)",
            n.max(1)
        ));
    }
    let hysteresis = t.hysteresis.unwrap_or(0);
    if hysteresis < 0 || (n > 0 && min + hysteresis > n) {
        return Err(format!(
            "hysteresis = {hysteresis}: quorum + hysteresis must be 0..={n} backends, or the \
             quorum could never come back"
        ));
    }
    let sorry = match &t.sorry_server {
        Some(s) => {
            let (a, p) =
                crate::ipvs::spec::parse_rip(s, key).map_err(|e| format!("sorry_server: {e}"))?;
            if entry.dest(a, p).is_some() {
                return Err(format!(
                    "sorry_server {s} is also a backend: it must only take flows when the \
                     quorum is lost"
                ));
            }
            Some((a, p))
        }
        None => None,
    };
    match (t.on_quorum_loss, sorry) {
        (Some(OnQuorumLoss::Sorry), None) => {
            return Err("on_quorum_loss = \"sorry\" needs sorry_server = \"IP[:PORT]\"".into())
        }
        (Some(OnQuorumLoss::Withdraw) | None, Some(_)) => {
            return Err(
                "sorry_server is only used with on_quorum_loss = \"sorry\" (set it, or drop the \
                 sorry_server)"
                    .into(),
            )
        }
        _ => {}
    }
    let notify = t.notify.clone().unwrap_or_default();
    if t.notify.is_some() && notify.first().is_none_or(|p| p.is_empty()) {
        return Err("notify needs [\"program\", \"arg\", …]".into());
    }
    Ok(Quorum {
        min: min as u32,
        on_loss: t.on_quorum_loss,
        sorry,
        hysteresis: hysteresis as u32,
        notify,
    })
}

/// Per service: has it its quorum now.
#[derive(Debug, Default)]
pub struct Tracker {
    lost: BTreeMap<String, bool>,
}

/// A service crossed its quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub service: String,
    pub lost: bool,
    pub healthy: u32,
}

impl Tracker {
    /// Feed (service, settings, backends up, every backend checked at least once); returns the
    /// services that crossed the quorum. A service is not judged before its backends were all
    /// checked once (a fresh start is not a quorum loss).
    pub fn update<'a>(
        &mut self,
        services: impl Iterator<Item = (&'a str, &'a Quorum, u32, bool)>,
    ) -> Vec<Change> {
        let mut out = Vec::new();
        let mut seen = Vec::new();
        for (name, q, up, checked) in services {
            seen.push(name.to_string());
            let was = self.lost.get(name).copied();
            let now = match was {
                _ if !checked && was.is_none() => continue,
                Some(true) => up < q.min + q.hysteresis,
                _ => up < q.min,
            };
            if was != Some(now) {
                self.lost.insert(name.to_string(), now);
                if was.is_some() || now {
                    out.push(Change {
                        service: name.to_string(),
                        lost: now,
                        healthy: up,
                    });
                }
            }
        }
        self.lost.retain(|k, _| seen.contains(k));
        out
    }

    pub fn lost(&self, service: &str) -> bool {
        self.lost.get(service).copied().unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings() {
        let f = crate::ipvs::spec::parse_lb_file;
        let svc = |extra: &str| {
            f(
                &format!(
                    "[[service]]\nvip = \"198.18.0.100:80\"\n{extra}\n\
                     [[service.backend]]\nrip = \"198.18.0.11\"\n\
                     [[service.backend]]\nrip = \"198.18.0.12\"\n"
                ),
                "t",
            )
        };
        let ok = svc("quorum = 2\non_quorum_loss = \"sorry\"\nsorry_server = \"198.18.0.20:8080\"")
            .unwrap();
        let q = &ok.runs[0].quorum;
        assert_eq!((q.min, q.on_loss), (2, Some(OnQuorumLoss::Sorry)));
        assert_eq!(q.sorry, Some(("198.18.0.20".parse().unwrap(), 8080)));
        for (bad, want) in [
            ("quorum = 3", "1..=2"),
            ("quorum = 0", "1..=2"),
            ("quorum = 2\nhysteresis = 1", "never come back"),
            ("on_quorum_loss = \"sorry\"", "needs sorry_server"),
            ("sorry_server = \"198.18.0.20\"", "only used with"),
            (
                "on_quorum_loss = \"sorry\"\nsorry_server = \"198.18.0.11\"",
                "also a backend",
            ),
            ("notify = []", "notify needs"),
            ("on_quorum_loss = \"drop\"", "unknown variant"),
        ] {
            let e = svc(bad).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn hysteresis() {
        let q = Quorum {
            min: 2,
            hysteresis: 1,
            ..Default::default()
        };
        let mut t = Tracker::default();
        let mut step = |up, checked| t.update([("s", &q, up, checked)].into_iter());
        assert!(
            step(0, false).is_empty(),
            "not judged before the first checks"
        );
        assert!(step(3, true).is_empty(), "a healthy start is no transition");
        assert_eq!(step(1, true).len(), 1);
        assert!(step(2, true).is_empty(), "2 < quorum + hysteresis");
        let back = step(3, true);
        assert_eq!(back.len(), 1);
        assert!(!back[0].lost);
    }
}
