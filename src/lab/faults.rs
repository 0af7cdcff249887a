//! `lab break NODE FAULT`: the classic DSR mistakes, injected into one backend so that
//! `lbctl doctor` can be watched finding them. Each fault names the doctor check that reports it.
//!
//! Where lbctl configured something, the fault undoes it with lbctl's own commands (as a
//! sysadmin would by mistake); the others are made with `ip` and /proc/sys, exactly like the
//! hand-made faults of `tests/netns_doctor.rs`.

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::build::{ns_of, run_lbctl};
use super::state::{LabState, StateDir};
use super::topology::{self, Node};
use super::{process, STOP_GRACE, VIP4, VIP6};
use crate::error::Result;
use crate::sys::netns;
use crate::usage;

/// A fault `lab break` can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// Undo ARP suppression: the backend answers ARP for the VIP and can steal the traffic.
    ArpFlux,
    /// Strict rp_filter plus a policy route that makes replies from the VIP leave by a second
    /// link: the kernel drops the balancer's requests.
    RpFilter,
    /// Remove the VIP from lo: the backend drops what the balancer forwards to it.
    NoVip,
    /// Stop the backend's HTTP server (by its recorded PID).
    NoListener,
    /// `ip rule from VIP lookup 200` whose table has a default route but no link route: even
    /// on-link replies go to a gateway that does not exist.
    PolicyTableWithoutLinkRoute,
}

impl Fault {
    /// Every fault, in help order.
    pub const ALL: [Fault; 5] = [
        Fault::ArpFlux,
        Fault::RpFilter,
        Fault::NoVip,
        Fault::NoListener,
        Fault::PolicyTableWithoutLinkRoute,
    ];

    /// The command-line name (`arp-flux`, …).
    pub fn name(self) -> &'static str {
        match self {
            Fault::ArpFlux => "arp-flux",
            Fault::RpFilter => "rp-filter",
            Fault::NoVip => "no-vip",
            Fault::NoListener => "no-listener",
            Fault::PolicyTableWithoutLinkRoute => "policy-table-without-link-route",
        }
    }

    /// Parse a command-line name.
    pub fn from_name(s: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == s)
    }

    /// The `lbctl doctor` check id that fails because of this fault.
    pub fn check_id(self) -> &'static str {
        match self {
            Fault::ArpFlux => "arp.suppressed",
            Fault::RpFilter => "rpfilter.accepts",
            Fault::NoVip => "vip.present",
            Fault::NoListener => "listener",
            Fault::PolicyTableWithoutLinkRoute => "return.policy_table",
        }
    }

    /// One line on what the fault does to the backend.
    pub fn describe(self) -> &'static str {
        match self {
            Fault::ArpFlux => "ARP suppression removed: the backend now answers ARP for the VIP",
            Fault::RpFilter => {
                "rp_filter=1 and replies from the VIP routed out of a second link (rpx0)"
            }
            Fault::NoVip => "the VIP was removed from lo",
            Fault::NoListener => "the HTTP server was stopped",
            Fault::PolicyTableWithoutLinkRoute => {
                "rule `from VIP lookup 200`; table 200 has a default route but no link route"
            }
        }
    }
}

/// Routing table of the rp-filter fault (its second link).
pub const RP_TABLE: &str = "300";
/// Routing table of the policy-table fault.
pub const POLICY_TABLE: &str = "200";

/// Inject `fault` into backend `n` (the caller holds the lab's lock and records the fault).
pub(super) fn inject(dir: &StateDir, st: &mut LabState, n: &Node, fault: Fault) -> Result<()> {
    let vip = VIP4.to_string();
    let ip = |args: &[&str]| netns::ip_in(&n.ns, args).map(|_| ());
    match fault {
        Fault::ArpFlux => {
            if st.profile.is_some() {
                // The profile's own ARP section, switched off, applied by lbctl.
                let path = dir.path().join(format!("{}.toml", n.node));
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let mut doc: toml::Table =
                    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
                let mut arp = toml::Table::new();
                arp.insert("mode".into(), toml::Value::String("none".into()));
                doc.insert("arp".into(), toml::Value::Table(arp));
                let broken = dir.path().join(format!("{}-arp-flux.toml", n.node));
                std::fs::write(&broken, toml::to_string(&doc).context("writing TOML")?)
                    .with_context(|| format!("writing {}", broken.display()))?;
                run_lbctl(st, &n.ns, &["apply", "-f", &broken.to_string_lossy()])?;
            } else {
                run_lbctl(st, &n.ns, &["arp", "restore", &vip])?;
            }
            // Forget the client's answer for the VIP: the next request asks again, and now
            // the backend answers too.
            let _ = netns::ip_in(&ns_of(st, "client"), &["neigh", "flush", "to", &vip]);
        }
        Fault::RpFilter => {
            let idx = n.backend_index().unwrap_or(1);
            ip(&[
                "link", "add", "rpx0", "type", "veth", "peer", "name", "rpx1",
            ])?;
            ip(&[
                "addr",
                "add",
                &format!("192.0.2.{}/24", 10 + idx),
                "dev",
                "rpx0",
            ])?;
            ip(&["link", "set", "rpx0", "up"])?;
            ip(&["link", "set", "rpx1", "up"])?;
            ip(&[
                "rule", "add", "from", &vip, "lookup", RP_TABLE, "priority", "50",
            ])?;
            ip(&[
                "route",
                "add",
                "192.0.2.0/24",
                "dev",
                "rpx0",
                "table",
                RP_TABLE,
            ])?;
            ip(&[
                "route",
                "add",
                "default",
                "via",
                "192.0.2.254",
                "dev",
                "rpx0",
                "table",
                RP_TABLE,
            ])?;
            netns::run_in(&n.ns, || {
                for key in ["all", topology::HOST_IF] {
                    let f = format!("/proc/sys/net/ipv4/conf/{key}/rp_filter");
                    std::fs::write(&f, "1").with_context(|| format!("writing {f}"))?;
                }
                Ok::<_, anyhow::Error>(())
            })??;
        }
        Fault::NoVip => {
            if st.profile.is_some() {
                // The profile owns the address: remove it behind lbctl's back, as a stray
                // `ip addr flush dev lo` would (doctor also reports the drift).
                ip(&["addr", "del", &format!("{vip}/32"), "dev", "lo"])?;
                if st.ipv6 {
                    let _ = ip(&["addr", "del", &format!("{VIP6}/128"), "dev", "lo"]);
                }
            } else {
                run_lbctl(st, &n.ns, &["vip", "del", &vip])?;
                if st.ipv6 {
                    run_lbctl(st, &n.ns, &["vip", "del", &VIP6.to_string()])?;
                }
            }
        }
        Fault::NoListener => {
            let mut found = false;
            for p in st
                .processes
                .iter_mut()
                .filter(|p| p.node == n.node && p.role == "http" && !p.stopped)
            {
                process::terminate(p.pid, p.start_time, STOP_GRACE)?;
                p.stopped = true;
                found = true;
            }
            if !found {
                return Err(usage!("{} runs no HTTP server to stop", n.node));
            }
        }
        Fault::PolicyTableWithoutLinkRoute => {
            ip(&[
                "rule",
                "add",
                "from",
                &vip,
                "lookup",
                POLICY_TABLE,
                "priority",
                "60",
            ])?;
            ip(&[
                "route",
                "add",
                "default",
                "via",
                &topology::GATEWAY4.to_string(),
                "dev",
                topology::HOST_IF,
                "table",
                POLICY_TABLE,
            ])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        // (that clap's names are these too is tested in `cli::lab`)
        for f in Fault::ALL {
            assert_eq!(Fault::from_name(f.name()), Some(f));
            assert_eq!(
                serde_json::to_value(f).unwrap(),
                serde_json::Value::String(f.name().into())
            );
        }
        assert_eq!(Fault::from_name("nope"), None);
        assert_eq!(Fault::NoVip.check_id(), "vip.present");
    }
}
