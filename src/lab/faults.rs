//! `lab break NODE FAULT`: the classic DSR mistakes, injected into one backend so that
//! `lbctl doctor` can be watched finding them. Each fault names the doctor check that reports it.
//!
//! Where lbctl configured something, the fault undoes it with lbctl's own commands (as a
//! sysadmin would by mistake); the others are made with `ip` and /proc/sys, exactly like the
//! hand-made faults of `tests/netns_doctor.rs`.

use serde::{Deserialize, Serialize};

/// A fault `lab break` can inject.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn names_round_trip_and_match_clap() {
        for f in Fault::ALL {
            assert_eq!(Fault::from_name(f.name()), Some(f));
            let pv = f.to_possible_value().unwrap();
            assert_eq!(pv.get_name(), f.name());
            assert_eq!(
                serde_json::to_value(f).unwrap(),
                serde_json::Value::String(f.name().into())
            );
        }
        assert_eq!(Fault::from_name("nope"), None);
        assert_eq!(Fault::NoVip.check_id(), "vip.present");
    }
}
