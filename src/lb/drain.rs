//! Graceful drain of a whole balancer (`lbctl lb drain --balancer NAME`), in the order that
//! keeps every connection: (1) withdraw the announcements — `[bgp]` gates down, so the router
//! stops sending new flows here; `[ha]` keepalived stopped, so it gives up MASTER with a
//! priority-0 advert and the peer takes the VIPs at once; without either there is nothing to
//! withdraw — (2) keep forwarding whatever still arrives (pinned flows, and new flows a router
//! still hashes here until it has converged), counting the pinned flows every second, (3) when
//! none is left or the timeout passes, remove the data path and VIPs and exit like `lb run
//! --cleanup`. Removing the data path first (exabgp#993) would black-hole the router's traffic
//! until the withdrawal had propagated.
//!
//! "Pinned flows" are what the data path still holds for clients: the nft engine's flow-map
//! entries (each expires `flow_timeout` after the flow's last packet), IPVS's connection
//! entries (active and inactive). The daemon side lives in `drain_daemon.rs` (methods of the
//! daemon); this file has the state and what the status file and the answer carry.

use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::lb::control::Pending;
use crate::sys::capture::rfc3339;

/// What `lb status` shows while a drain runs (in the status file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainStatus {
    /// When the announcements were withdrawn (RFC 3339).
    pub withdrawn_at: String,
    /// What was withdrawn ("2 BGP route(s)", "VRRP: keepalived stopped", "nothing …").
    pub withdrawn: String,
    /// Pinned flows at the last count; `None` when they could not be counted.
    pub pinned_flows: Option<u64>,
    /// When the data path is removed at the latest (RFC 3339).
    pub deadline: String,
}

impl DrainStatus {
    /// `draining (withdrawn at …, N pinned flows left, deadline …)`
    pub fn line(&self) -> String {
        format!(
            "draining (withdrawn at {}, {}, deadline {})",
            self.withdrawn_at,
            match self.pinned_flows {
                Some(n) => format!("{n} pinned flows left"),
                None => "pinned flows could not be counted".to_string(),
            },
            self.deadline
        )
    }
}

/// How a drain ended, as the `--wait` answer carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// `drained` (no pinned flow left), `timeout` (removed with flows left) or `interrupted`
    /// (a signal stopped the daemon first).
    pub ended: String,
    /// Pinned flows at removal (the last count); `None` when they could not be counted.
    pub flows_left: Option<u64>,
    /// Milliseconds from the withdrawal to the removal.
    pub millis: u64,
    /// True when the data path and VIPs were removed.
    pub removed: bool,
    /// Why the removal failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A drain in progress, held by the daemon.
pub struct Draining {
    pub since: SystemTime,
    pub since_at: Instant,
    pub deadline: Instant,
    pub deadline_wall: SystemTime,
    pub withdrawn: String,
    pub pinned: Option<u64>,
    pub last_count: Option<Instant>,
    /// Set once the drain is over: why.
    pub ended: Option<&'static str>,
    /// Clients waiting (`--wait`) for the end.
    pub waiters: Vec<Pending>,
}

/// How often the pinned flows are counted while draining.
pub const COUNT_EVERY: Duration = Duration::from_secs(1);

impl Draining {
    pub fn new(timeout: Duration, withdrawn: String) -> Draining {
        let now = Instant::now();
        let since = SystemTime::now();
        Draining {
            since,
            since_at: now,
            deadline: now + timeout,
            deadline_wall: since + timeout,
            withdrawn,
            pinned: None,
            last_count: None,
            ended: None,
            waiters: Vec::new(),
        }
    }

    pub fn count_due(&self) -> bool {
        self.last_count.is_none_or(|t| t.elapsed() >= COUNT_EVERY)
    }

    /// Record a count; decides whether the drain is over. Returns true when it just ended.
    pub fn counted(&mut self, pinned: Option<u64>) -> bool {
        self.last_count = Some(Instant::now());
        self.pinned = pinned;
        if self.ended.is_some() {
            return false;
        }
        if pinned == Some(0) {
            self.ended = Some("drained");
        } else if Instant::now() >= self.deadline {
            self.ended = Some("timeout");
        }
        self.ended.is_some()
    }

    pub fn status(&self) -> DrainStatus {
        DrainStatus {
            withdrawn_at: rfc3339(self.since),
            withdrawn: self.withdrawn.clone(),
            pinned_flows: self.pinned,
            deadline: rfc3339(self.deadline_wall),
        }
    }

    pub fn outcome(&self, removal: &std::result::Result<(), String>) -> Outcome {
        Outcome {
            ended: self.ended.unwrap_or("interrupted").to_string(),
            flows_left: self.pinned,
            millis: self.since_at.elapsed().as_millis() as u64,
            removed: removal.is_ok(),
            error: removal.as_ref().err().cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_at_zero_or_deadline_and_says_so() {
        let mut d = Draining::new(Duration::from_secs(60), "nothing".into());
        assert!(!d.counted(Some(3)));
        assert!(d.status().line().contains("3 pinned flows left"));
        assert!(
            !d.counted(None),
            "an uncounted drain waits for the deadline"
        );
        assert!(d.status().line().contains("could not be counted"));
        assert!(d.counted(Some(0)));
        assert_eq!(d.outcome(&Ok(())).ended, "drained");
        assert_eq!(d.outcome(&Ok(())).flows_left, Some(0));

        let mut d = Draining::new(Duration::ZERO, "nothing".into());
        assert!(d.counted(Some(2)));
        let o = d.outcome(&Err("nft failed".into()));
        assert_eq!(
            (o.ended.as_str(), o.flows_left, o.removed),
            ("timeout", Some(2), false)
        );
        let d = Draining::new(Duration::from_secs(1), "x".into());
        assert_eq!(d.outcome(&Ok(())).ended, "interrupted");
    }
}
