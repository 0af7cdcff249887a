//! Balancer pairs: the `[ha]` section of an LB file (VRRP through keepalived).
//!
//! **One owner for the VIPs: keepalived.** With `[ha]` set, `lb run` does not put the VIPs in
//! its journal intent; the generated keepalived config lists them in `virtual_ipaddress`, so
//! keepalived adds them on MASTER (with its gratuitous ARPs / unsolicited NAs) and removes them
//! on BACKUP, FAULT and a clean stop. `lb run` keeps the data path (nft table or IPVS services)
//! programmed in every role, so a BACKUP is warm: the moment it owns the VIPs it forwards.
//! Why keepalived and not `lb run`: keepalived already removes the VIPs on every exit it
//! survives (clean stop, FAULT, the death of its parent, which the VRRP child turns into a
//! clean stop), and `lb run` covers the two exits it does not survive:
//! - keepalived SIGKILLed (parent and VRRP child): `lb run` sees its child exit, deletes the
//!   VIPs left on the NIC at once (so the dead master stops answering ARP), sends the
//!   priority-0 advert keepalived could not (instances that were MASTER; IPv4 or IPv6, unicast or multicast: the peer
//!   takes over after its skew time, not the 3-advert master-down interval), and restarts it;
//! - `lb run` SIGKILLed: keepalived is started with `PR_SET_PDEATHSIG = SIGTERM`, so it stops
//!   cleanly (priority-0 advert, VIPs removed) and nobody is left owning a VIP unsupervised.
//!
//! If `lb run` owned the VIPs instead, its own SIGKILL would leave them on the NIC with nobody
//! to remove them while the peer takes over (two ARP responders).
//!
//! Service health reaches VRRP through a `vrrp_track_file` with weight 0 that `lb run` writes:
//! `0` while every service with `on_quorum_loss = "withdraw"` has its quorum, `1` otherwise,
//! which puts the instance in FAULT (VIPs released, priority-0 advert: the peer takes over if
//! it is healthier, and nobody holds a VIP that would black-hole SYNs).

pub mod export;
pub mod import;
pub mod keepalived;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::lb::config::parse_duration;
use crate::model::validate_ifname;

/// `[ha]` as written.
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct HaToml {
    interface: Option<String>,
    virtual_router_id: Option<i64>,
    priority: Option<i64>,
    advert_interval: Option<String>,
    peers: Option<Vec<String>>,
    track_quorum: Option<bool>,
    preempt: Option<bool>,
    keepalived: Option<String>,
}

/// Validated `[ha]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ha {
    /// The interface VRRP runs on and the VIPs go on (default: the balancer's).
    pub interface: Option<String>,
    pub vrid: u8,
    pub priority: u8,
    /// VRRPv3 advertisement interval (10 ms steps).
    pub advert: Duration,
    /// Unicast peers; empty: multicast to 224.0.0.18 / ff02::12.
    pub peers: Vec<IpAddr>,
    /// FAULT when a service with `on_quorum_loss = "withdraw"` lost its quorum.
    pub track_quorum: bool,
    /// A higher priority takes the VIPs back (keepalived's default).
    pub preempt: bool,
    /// The keepalived binary.
    pub keepalived: PathBuf,
}

pub const DEFAULT_KEEPALIVED: &str = "/usr/sbin/keepalived";

/// Validate `[ha]` (everything that needs no kernel: ranges, addresses, durations).
pub fn ha(t: &HaToml) -> Result<Ha, String> {
    if let Some(i) = &t.interface {
        validate_ifname(i).map_err(|e| format!("[ha] {e}"))?;
    }
    let vrid = t
        .virtual_router_id
        .ok_or("[ha] virtual_router_id is required (1-255, the same on both balancers)")?;
    if !(1..=255).contains(&vrid) {
        return Err(format!(
            "[ha] virtual_router_id = {vrid}: must be 1-255 (VRRP's 8-bit VRID; 0 is reserved)"
        ));
    }
    let priority = t
        .priority
        .ok_or("[ha] priority is required (1-254; the higher one is MASTER)")?;
    if !(1..=254).contains(&priority) {
        return Err(format!(
            "[ha] priority = {priority}: must be 1-254 (255 is reserved for the address owner, \
             0 for \"stopping\")"
        ));
    }
    let advert = match &t.advert_interval {
        Some(s) => parse_duration(s).map_err(|e| format!("[ha] advert_interval: {e}"))?,
        None => Duration::from_secs(1),
    };
    let cs = advert.as_millis();
    if cs % 10 != 0 || !(10..=40_950).contains(&cs) {
        return Err(format!(
            "[ha] advert_interval = {advert:?}: VRRPv3 counts in centiseconds, 10ms-40.95s"
        ));
    }
    let mut peers = Vec::new();
    for p in t.peers.iter().flatten() {
        let a: IpAddr = p
            .parse()
            .map_err(|_| format!("[ha] peers: '{p}' is not an IP address"))?;
        if a.is_unspecified() || a.is_multicast() || a.is_loopback() {
            return Err(format!("[ha] peers: {a} cannot be a VRRP peer"));
        }
        if peers.contains(&a) {
            return Err(format!("[ha] peers: {a} is listed twice"));
        }
        peers.push(a);
    }
    if peers.iter().any(|p| p.is_ipv4() != peers[0].is_ipv4()) {
        return Err(
            "[ha] peers: mix of IPv4 and IPv6 (one VRRP instance speaks one family)".into(),
        );
    }
    let keepalived = PathBuf::from(t.keepalived.as_deref().unwrap_or(DEFAULT_KEEPALIVED));
    if !keepalived.is_absolute() {
        return Err(format!(
            "[ha] keepalived = '{}': give an absolute path",
            keepalived.display()
        ));
    }
    Ok(Ha {
        interface: t.interface.clone(),
        vrid: vrid as u8,
        priority: priority as u8,
        advert,
        peers,
        track_quorum: t.track_quorum.unwrap_or(true),
        preempt: t.preempt.unwrap_or(true),
        keepalived,
    })
}

/// The LB files of one balancer set (`lb export keepalived -c A --peer-config B …`): every
/// file has `[ha]`, all use the same virtual router id (else they are not one VRRP group), and
/// no two balancers share a priority (keepalived would then elect by the higher address, which
/// nobody reading the files expects). `files`: (name for messages, its `[ha]`).
pub fn check_set(files: &[(String, Option<&Ha>)]) -> Result<(), String> {
    let mut seen: Vec<(&str, &Ha)> = Vec::new();
    for (name, ha) in files {
        let Some(h) = ha else {
            return Err(format!(
                "{name} has no [ha] section: it is not part of a VRRP pair"
            ));
        };
        if let Some((first, f)) = seen.first() {
            if f.vrid != h.vrid {
                return Err(format!(
                    "{name} has virtual_router_id {} but {first} has {}: one VRRP group needs                      one id",
                    h.vrid, f.vrid
                ));
            }
        }
        if let Some((other, _)) = seen.iter().find(|(_, o)| o.priority == h.priority) {
            return Err(format!(
                "{name} and {other} both have [ha] priority = {}: give each balancer its own                  (the higher one is MASTER)",
                h.priority
            ));
        }
        seen.push((name, h));
    }
    Ok(())
}

/// The checks that need the host, run before anything starts: keepalived is there, and every
/// peer is on a network of the interface (`addrs`: the interface's addresses with prefixes).
/// Returns the VRRP source address: with peers the interface's address on their network, without
/// (multicast) its first IPv4 address.
pub fn preflight(h: &Ha, iface: &str, addrs: &[(IpAddr, u8)]) -> Result<Option<IpAddr>, String> {
    if !h.keepalived.is_file() {
        return Err(format!(
            "[ha] needs keepalived, and {} does not exist (apt-get install keepalived, or set \
             [ha] keepalived = \"/path/to/keepalived\")",
            h.keepalived.display()
        ));
    }
    // Multicast: keepalived sends from the interface's (primary) IPv4 address; the VIPs it
    // adds are /32s, so prefer an address with a shorter prefix.
    let mut src = if h.peers.is_empty() {
        let v4 = addrs.iter().filter(|(a, _)| a.is_ipv4());
        v4.clone()
            .find(|(_, len)| *len < 32)
            .or(v4.clone().next())
            .map(|(a, _)| *a)
    } else {
        None
    };
    for p in &h.peers {
        let on = addrs
            .iter()
            .find(|(a, len)| same_net(*a, *p, *len) && a != p);
        match on {
            Some((a, _)) => src = src.or(Some(*a)),
            None => {
                return Err(format!(
                    "[ha] peer {p} is not on a network of {iface} ({}): VRRP adverts do not \
                     cross routers",
                    if addrs.is_empty() {
                        "it has no address".to_string()
                    } else {
                        addrs
                            .iter()
                            .map(|(a, l)| format!("{a}/{l}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ))
            }
        }
        if addrs.iter().any(|(a, _)| a == p) {
            return Err(format!("[ha] peer {p} is this balancer's own address"));
        }
    }
    Ok(src)
}

fn same_net(a: IpAddr, b: IpAddr, len: u8) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - len.min(32) as u32)
            };
            u32::from(a) & m == u32::from(b) & m
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len.min(128) as u32)
            };
            u128::from(a) & m == u128::from(b) & m
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_set_needs_one_vrid_and_distinct_priorities() {
        let h = |v: &str| parse(v).unwrap();
        let (a, b, c) = (
            h("virtual_router_id = 51\npriority = 150"),
            h("virtual_router_id = 51\npriority = 100"),
            h("virtual_router_id = 52\npriority = 100"),
        );
        let set = |v: &[(&str, Option<&Ha>)]| {
            check_set(
                &v.iter()
                    .map(|(n, h)| (n.to_string(), *h))
                    .collect::<Vec<_>>(),
            )
        };
        assert!(set(&[("a", Some(&a)), ("b", Some(&b))]).is_ok());
        let e = set(&[("a", Some(&b)), ("b", Some(&b))]).unwrap_err();
        assert!(
            e.contains("a and b both have [ha] priority = 100") || e.contains("b and a"),
            "{e}"
        );
        assert!(set(&[("a", Some(&a)), ("c", Some(&c))])
            .unwrap_err()
            .contains("virtual_router_id 52"));
        assert!(set(&[("a", Some(&a)), ("x", None)])
            .unwrap_err()
            .contains("x has no [ha]"));
    }

    use super::*;

    fn parse(s: &str) -> Result<Ha, String> {
        ha(&toml::from_str::<HaToml>(s).map_err(|e| e.to_string())?)
    }

    #[test]
    fn ranges() {
        let ok = parse("virtual_router_id = 51\npriority = 150\npeers = [\"198.18.0.3\"]").unwrap();
        assert_eq!((ok.vrid, ok.priority), (51, 150));
        assert_eq!(ok.advert, Duration::from_secs(1));
        assert!(ok.track_quorum && ok.preempt);
        for (bad, want) in [
            ("virtual_router_id = 0\npriority = 1", "1-255"),
            ("virtual_router_id = 256\npriority = 1", "1-255"),
            ("virtual_router_id = 1\npriority = 255", "1-254"),
            ("virtual_router_id = 1\npriority = 0", "1-254"),
            ("priority = 10", "virtual_router_id is required"),
            ("virtual_router_id = 1", "priority is required"),
            (
                "virtual_router_id = 1\npriority = 1\nadvert_interval = \"5ms\"",
                "centiseconds",
            ),
            (
                "virtual_router_id = 1\npriority = 1\npeers = [\"x\"]",
                "not an IP",
            ),
            (
                "virtual_router_id = 1\npriority = 1\npeers = [\"198.18.0.3\", \"2001:db8::3\"]",
                "mix",
            ),
            (
                "virtual_router_id = 1\npriority = 1\nkeepalived = \"keepalived\"",
                "absolute",
            ),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
        assert!(parse("virtual_router_id = 1\npriority = 1\nbogus = 1").is_err());
    }

    #[test]
    fn peers_on_the_interface_network() {
        let h = parse("virtual_router_id = 1\npriority = 1\npeers = [\"198.18.0.3\"]\nkeepalived = \"/bin/sh\"").unwrap();
        let addrs = [("198.18.0.2".parse().unwrap(), 24)];
        assert_eq!(
            preflight(&h, "eth0", &addrs).unwrap(),
            Some("198.18.0.2".parse().unwrap())
        );
        let far = [("198.18.1.2".parse().unwrap(), 24)];
        assert!(preflight(&h, "eth0", &far)
            .unwrap_err()
            .contains("not on a network of eth0"));
        let mut missing = h.clone();
        missing.keepalived = "/nonexistent/keepalived".into();
        assert!(preflight(&missing, "eth0", &addrs)
            .unwrap_err()
            .contains("needs keepalived"));
    }
}
