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
    /// An nftables input rule `ip daddr VIP tcp dport 80 drop`: the SYNs the balancer forwards
    /// are dropped (the real IP still answers, so only the DSR probe notices).
    FirewallDrop,
    /// A reverse-path filter in nftables (`fib saddr . iif oif missing drop`, as firewalld
    /// writes it) while replies from the VIP leave by a second port on the switch (`eth1`):
    /// replies would work, but the filter drops the requests.
    FibRpfilter,
    /// The balancer is gone: the lab's `lbctl lb run` is stopped (by its recorded PID) and its
    /// VIP removed if still there. The backend is untouched; its doctor with `--balancer`
    /// finds nobody answering ARP for the VIP.
    NoBalancer,
}

impl Fault {
    /// Every fault, in help order.
    pub const ALL: [Fault; 8] = [
        Fault::ArpFlux,
        Fault::RpFilter,
        Fault::NoVip,
        Fault::NoListener,
        Fault::PolicyTableWithoutLinkRoute,
        Fault::FirewallDrop,
        Fault::FibRpfilter,
        Fault::NoBalancer,
    ];

    /// The command-line name (`arp-flux`, …).
    pub fn name(self) -> &'static str {
        match self {
            Fault::ArpFlux => "arp-flux",
            Fault::RpFilter => "rp-filter",
            Fault::NoVip => "no-vip",
            Fault::NoListener => "no-listener",
            Fault::PolicyTableWithoutLinkRoute => "policy-table-without-link-route",
            Fault::FirewallDrop => "firewall-drop",
            Fault::FibRpfilter => "fib-rpfilter",
            Fault::NoBalancer => "no-balancer",
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
            Fault::FirewallDrop | Fault::FibRpfilter => "firewall.request",
            Fault::NoBalancer => "l2.balancer_vip",
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
            Fault::FirewallDrop => {
                "nft rule `ip daddr VIP tcp dport 80 drop` in table inet filter, hook input"
            }
            Fault::FibRpfilter => {
                "nft `fib saddr . iif oif missing drop` (hook prerouting) and replies from the VIP \
                 routed out of a second switch port (eth1)"
            }
            Fault::NoBalancer => {
                "the balancer (lbctl lb run) was stopped and its VIP is gone: nobody answers ARP \
                 for the VIP"
            }
        }
    }
}

/// Routing table of the rp-filter fault (its second link).
pub const RP_TABLE: &str = "300";
/// Routing table of the policy-table fault.
pub const POLICY_TABLE: &str = "200";

/// Routing table of the fib-rpfilter fault (its second switch port).
pub const FIB_TABLE: &str = "310";
/// The backend's second switch port in the fib-rpfilter fault.
pub const SECOND_IF: &str = "eth1";

/// The fault's nft script (the table names are a sysadmin's, not lbctl's).
pub fn nft_script(fault: Fault) -> Option<&'static str> {
    match fault {
        Fault::FirewallDrop => Some(
            "table inet filter {\n  chain input {\n    type filter hook input priority filter; policy accept;\n    ip daddr 198.18.0.100 tcp dport 80 drop\n  }\n}\n",
        ),
        Fault::FibRpfilter => Some(
            "table inet rpfilter {\n  chain prerouting {\n    type filter hook prerouting priority raw; policy accept;\n    fib saddr . iif oif missing drop\n  }\n}\n",
        ),
        _ => None,
    }
}

/// Inject `fault` into backend `n` (the caller holds the lab's lock and records the fault).
/// Stop `node`'s running lab HTTP servers (each by its PID and start time) and record them as
/// stopped; whether there was one.
pub(super) fn stop_http(st: &mut LabState, node: &str) -> Result<bool> {
    let mut found = false;
    for p in st
        .processes
        .iter_mut()
        .filter(|p| p.node == node && p.role == "http" && !p.stopped)
    {
        process::terminate(p.pid, p.start_time, STOP_GRACE)?;
        p.stopped = true;
        found = true;
    }
    Ok(found)
}

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
            if !stop_http(st, &n.node)? {
                return Err(usage!("{} runs no HTTP server to stop", n.node));
            }
        }
        Fault::FirewallDrop => {
            crate::sys::netns::run_in(&n.ns, move || {
                crate::sys::nft::run_script(
                    "lab fault firewall-drop",
                    nft_script(fault).unwrap_or_default(),
                )
            })??;
        }
        Fault::FibRpfilter => {
            // A second port on the switch; the client (on-link) is routed out of it for replies
            // from the VIP. ARP for the client goes out there too and is answered: replies work.
            let sw = ns_of(st, "sw");
            let port = format!("{}-2", n.port());
            netns::ip_in(
                &sw,
                &[
                    "link", "add", &port, "type", "veth", "peer", "name", SECOND_IF, "netns", &n.ns,
                ],
            )?;
            netns::ip_in(
                &sw,
                &["link", "set", &port, "master", topology::BRIDGE, "up"],
            )?;
            ip(&["link", "set", SECOND_IF, "up"])?;
            let client = st
                .node("client")
                .and_then(|c| c.ipv4)
                .map(|a| a.to_string())
                .ok_or_else(|| usage!("the lab has no IPv4 client"))?;
            ip(&[
                "route",
                "add",
                &format!("{client}/32"),
                "dev",
                SECOND_IF,
                "table",
                FIB_TABLE,
            ])?;
            // A complete policy table (what `lbctl route add` builds), so only the firewall
            // is at fault: the segment and the default route stay on eth0.
            ip(&[
                "route",
                "add",
                "198.18.0.0/24",
                "dev",
                topology::HOST_IF,
                "table",
                FIB_TABLE,
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
                FIB_TABLE,
            ])?;
            ip(&[
                "rule", "add", "from", &vip, "lookup", FIB_TABLE, "priority", "55",
            ])?;
            crate::sys::netns::run_in(&n.ns, move || {
                crate::sys::nft::run_script(
                    "lab fault fib-rpfilter",
                    nft_script(fault).unwrap_or_default(),
                )
            })??;
        }
        Fault::NoBalancer => {
            let mut found = false;
            for p in st
                .processes
                .iter_mut()
                .filter(|p| p.role == "balancer" && !p.stopped)
            {
                process::terminate(p.pid, p.start_time, STOP_GRACE)?;
                p.stopped = true;
                found = true;
            }
            if !found {
                return Err(usage!("the lab runs no balancer to stop"));
            }
            // The daemon removes its VIP when it stops; make sure, as a crash would not.
            let lb = ns_of(st, "lb");
            let _ = netns::ip_in(
                &lb,
                &[
                    "addr",
                    "del",
                    &format!("{vip}/32"),
                    "dev",
                    topology::HOST_IF,
                ],
            );
            if st.ipv6 {
                let _ = netns::ip_in(
                    &lb,
                    &[
                        "addr",
                        "del",
                        &format!("{VIP6}/128"),
                        "dev",
                        topology::HOST_IF,
                    ],
                );
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
        let script = nft_script(Fault::FirewallDrop).unwrap();
        assert!(script.contains(&format!("ip daddr {VIP4} tcp dport 80 drop")));
    }
}
