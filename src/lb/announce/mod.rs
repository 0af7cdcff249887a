//! Announcing the VIPs by BGP: the `[bgp]` section of an LB file, the [`Announcer`] trait
//! (BIRD 2 first: [`bird`]) and the gates that tie each announcement to the health checker.
//!
//! How an announcement is tied to health (PLATFORM.md §11): for every VIP, `lb run` owns a
//! non-persistent TUN device ([`device_name`]); the routing daemon announces `VIP/32 via "DEV"`,
//! a route that exists only while the device exists and is up. `lb run` sets it up while every
//! service of the VIP has at least `quorum` healthy backends in its data path, down otherwise
//! and on SIGTERM; the kernel deletes it when `lb run` dies (SIGKILL included); a watchdog
//! process sets it down while `lb run` is stopped or hung ([`crate::sys::tun`]). A balancer
//! host that hangs or vanishes is caught by BFD on the router's side.

pub mod bird;
pub mod speaker;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::lb::config::parse_duration;
use crate::model::AddrObj;

/// `[bgp]` as written.
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct BgpToml {
    asn: Option<i64>,
    router_id: Option<String>,
    hold_time: Option<String>,
    bfd: Option<bool>,
    bfd_interval: Option<String>,
    bfd_multiplier: Option<u32>,
    communities: Option<Vec<String>>,
    med: Option<i64>,
    #[serde(default, rename = "neighbor")]
    neighbors: Vec<NeighborToml>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct NeighborToml {
    address: String,
    asn: Option<i64>,
}

/// A BGP community attached to every announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Community {
    /// RFC 1997 `ASN:VALUE`, 16 bits each.
    Standard(u16, u16),
    /// RFC 8092 `GLOBAL:LOCAL1:LOCAL2`, 32 bits each.
    Large(u32, u32, u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bfd {
    pub interval: Duration,
    pub multiplier: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbor {
    pub address: IpAddr,
    pub asn: u32,
}

/// Validated `[bgp]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bgp {
    pub asn: u32,
    pub router_id: Option<Ipv4Addr>,
    /// Seconds (BIRD: `hold time`); `None`: the daemon's default (240 s in BIRD).
    pub hold_time: Option<u32>,
    /// On by default: 100 ms × 3 (a hung or vanished balancer is withdrawn in ~0.3 s).
    pub bfd: Option<Bfd>,
    pub communities: Vec<Community>,
    pub med: Option<u32>,
    pub neighbors: Vec<Neighbor>,
}

fn asn(v: i64, what: &str) -> Result<u32, String> {
    if !(1..=4_294_967_294).contains(&v) {
        return Err(format!(
            "{what} = {v}: an AS number is 1..=4294967294 (private: 64512-65534, \
             4200000000-4294967294)"
        ));
    }
    if v == 23456 {
        return Err(format!(
            "{what} = 23456 is AS_TRANS (RFC 6793), not a real AS number"
        ));
    }
    Ok(v as u32)
}

fn community(s: &str) -> Result<Community, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let bad = || {
        format!(
            "[bgp] communities: '{s}' is neither ASN:VALUE (0-65535 each) nor \
             GLOBAL:LOCAL1:LOCAL2 (0-4294967295 each)"
        )
    };
    match parts.as_slice() {
        [a, b] => Ok(Community::Standard(
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        )),
        [a, b, c] => Ok(Community::Large(
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
            c.trim().parse().map_err(|_| bad())?,
        )),
        _ => Err(bad()),
    }
}

/// Validate `[bgp]` (everything but what needs the live system: see [`resolve`]).
pub fn parse(t: &BgpToml) -> Result<Bgp, String> {
    let local = asn(
        t.asn.ok_or("[bgp] needs asn = <local AS number>")?,
        "[bgp] asn",
    )?;
    let router_id = match &t.router_id {
        Some(s) => Some(s.parse::<Ipv4Addr>().map_err(|_| {
            format!("[bgp] router_id = '{s}': a router id is written as an IPv4 address")
        })?),
        None => None,
    };
    if router_id == Some(Ipv4Addr::UNSPECIFIED) {
        return Err("[bgp] router_id 0.0.0.0 is not allowed".into());
    }
    let hold_time = match &t.hold_time {
        Some(s) => {
            let d = parse_duration(s).map_err(|e| format!("[bgp] hold_time: {e}"))?;
            let secs = d.as_secs();
            if d.subsec_nanos() != 0 || !(3..=65535).contains(&secs) {
                return Err(format!(
                    "[bgp] hold_time = '{s}': whole seconds, 3s to 65535s (RFC 4271)"
                ));
            }
            Some(secs as u32)
        }
        None => None,
    };
    let on = t.bfd.unwrap_or(true);
    if !on && (t.bfd_interval.is_some() || t.bfd_multiplier.is_some()) {
        return Err("[bgp] bfd_interval/bfd_multiplier are set but bfd = false".into());
    }
    let bfd = if on {
        let interval = match &t.bfd_interval {
            Some(s) => parse_duration(s).map_err(|e| format!("[bgp] bfd_interval: {e}"))?,
            None => Duration::from_millis(100),
        };
        if interval < Duration::from_millis(10) || interval > Duration::from_secs(10) {
            return Err(format!(
                "[bgp] bfd_interval = {interval:?}: must be 10ms to 10s"
            ));
        }
        let multiplier = t.bfd_multiplier.unwrap_or(3);
        if !(1..=255).contains(&multiplier) {
            return Err(format!(
                "[bgp] bfd_multiplier = {multiplier}: must be 1..=255"
            ));
        }
        Some(Bfd {
            interval,
            multiplier,
        })
    } else {
        None
    };
    let communities = t
        .communities
        .iter()
        .flatten()
        .map(|c| community(c))
        .collect::<Result<Vec<_>, _>>()?;
    let med = match t.med {
        Some(m) if !(0..=u32::MAX as i64).contains(&m) => {
            return Err(format!("[bgp] med = {m}: must be 0..=4294967295"))
        }
        m => m.map(|m| m as u32),
    };
    if t.neighbors.is_empty() {
        return Err(
            "[bgp] needs at least one [[bgp.neighbor]] with address and asn (the upstream router)"
                .into(),
        );
    }
    let mut neighbors: Vec<Neighbor> = Vec::new();
    for (i, n) in t.neighbors.iter().enumerate() {
        let what = format!("[[bgp.neighbor]] #{}", i + 1);
        let address: IpAddr = n
            .address
            .parse()
            .map_err(|_| format!("{what}: address '{}' is not an IP address", n.address))?;
        if address.is_unspecified() || address.is_multicast() || address.is_loopback() {
            return Err(format!(
                "{what}: address {address} cannot be a BGP neighbour"
            ));
        }
        if neighbors.iter().any(|x| x.address == address) {
            return Err(format!("{what}: neighbour {address} is listed twice"));
        }
        let peer = asn(
            n.asn
                .ok_or_else(|| format!("{what}: needs asn = <the router's AS number>"))?,
            &format!("{what} asn"),
        )?;
        neighbors.push(Neighbor { address, asn: peer });
    }
    Ok(Bgp {
        asn: local,
        router_id,
        hold_time,
        bfd,
        communities,
        med,
        neighbors,
    })
}

/// One neighbour with the local address on its connected network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// `peer1`, `peer2`, … in file order.
    pub name: String,
    pub neighbor: Neighbor,
    pub local: IpAddr,
    pub dev: String,
}

/// A VIP and the device its route hangs off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipRoute {
    pub vip: IpAddr,
    pub device: String,
    /// Why it is announced: the services behind it, with their quorum (a comment).
    pub note: String,
}

/// What the routing daemon is told: pure data, rendered by each [`Announcer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The LB file's name.
    pub name: String,
    pub bgp: Bgp,
    pub router_id: Ipv4Addr,
    pub peers: Vec<Peer>,
    pub vips: Vec<VipRoute>,
}

/// Every neighbour must be on a network this host is connected to (eBGP without multihop);
/// the router id defaults to the local IPv4 address towards the first IPv4 neighbour.
pub fn resolve(
    name: &str,
    bgp: &Bgp,
    addrs: &[AddrObj],
    vips: Vec<VipRoute>,
) -> Result<Plan, String> {
    let mut peers = Vec::new();
    for (i, n) in bgp.neighbors.iter().enumerate() {
        let local = addrs.iter().find(|a| {
            a.addr != n.address
                && IpNet::new(a.addr, a.prefix)
                    .map(|net| net.prefix_len() < net.max_prefix_len() && net.contains(&n.address))
                    .unwrap_or(false)
        });
        let Some(local) = local else {
            return Err(format!(
                "[[bgp.neighbor]] #{} {}: not on any network connected here (no local address's \
                 prefix contains it); lbctl speaks eBGP to directly connected routers only",
                i + 1,
                n.address
            ));
        };
        if addrs.iter().any(|a| a.addr == n.address) {
            return Err(format!(
                "[[bgp.neighbor]] #{} {}: that is an address of this host",
                i + 1,
                n.address
            ));
        }
        peers.push(Peer {
            name: format!("peer{}", i + 1),
            neighbor: n.clone(),
            local: local.addr,
            dev: local.dev.to_string(),
        });
    }
    let router_id = match bgp.router_id {
        Some(r) => r,
        None => peers
            .iter()
            .find_map(|p| match p.local {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
            .ok_or("[bgp] router_id is needed when no neighbour is IPv4")?,
    };
    for v in &vips {
        if let Some(a) = addrs.iter().find(|a| {
            IpNet::new(a.addr, a.prefix)
                .map(|n| n.prefix_len() < n.max_prefix_len() && n.contains(&v.vip))
                .unwrap_or(false)
                && peers.iter().any(|p| p.dev == a.dev)
        }) {
            return Err(format!(
                "VIP {} is inside {}/{} on {}, the network the router is on: the router would \
                 reach it by ARP/ND instead of the BGP route (and keep doing so after a \
                 withdrawal); take VIPs from another prefix",
                v.vip, a.addr, a.prefix, a.dev
            ));
        }
        if !peers
            .iter()
            .any(|p| p.neighbor.address.is_ipv4() == v.vip.is_ipv4())
        {
            return Err(format!(
                "VIP {} cannot be announced: no [[bgp.neighbor]] of its address family",
                v.vip
            ));
        }
    }
    Ok(Plan {
        name: name.to_string(),
        bgp: bgp.clone(),
        router_id,
        peers,
        vips,
    })
}

/// The TUN device whose state a VIP's announcement follows: `lbv` and 8 hex digits of a hash
/// of the LB name and the VIP (stable across restarts and reloads, distinct per balancer).
pub fn device_name(lb_name: &str, vip: &IpAddr) -> String {
    // FNV-1a, 32 bits.
    let mut h: u32 = 0x811c_9dc5;
    for b in format!("{lb_name}/{vip}").bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("lbv{h:08x}")
}

/// One routing session as the daemon reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    /// Protocol name in the daemon (`peer1`).
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neighbor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    /// `up`, `down`, `start`, …
    pub state: String,
    pub since: String,
    /// `Established`, `Active  Socket: Connection refused`, …
    pub info: String,
}

/// One VIP's announcement.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VipAnnounce {
    pub vip: String,
    pub device: String,
    /// The device is up: the daemon announces the VIP.
    pub announced: bool,
    /// Why it is not (quorum lost, data path not programmed, draining, …).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// `bgp` in `lb status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct AnnounceStatus {
    /// `bird`.
    pub daemon: String,
    pub pid: u32,
    pub socket: String,
    pub config: String,
    pub asn: u32,
    pub router_id: String,
    pub sessions: Vec<Session>,
    pub vips: Vec<VipAnnounce>,
    /// The daemon could not be asked (it is then not known whether sessions are up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A routing daemon that announces [`Plan`]s. BIRD 2 is the one shipped ([`bird::Bird2`]);
/// the trait is what an FRR, GoBGP or ExaBGP announcer would implement.
pub trait Announcer {
    /// `bird`.
    fn name(&self) -> &'static str;
    /// The daemon's configuration for a plan (what `--dry-run` and `lb export` show).
    fn render(&self, plan: &Plan) -> String;
    /// Is the daemon installed and recent enough, and does it accept this configuration?
    /// Nothing is started.
    fn validate(&self, plan: &Plan) -> Result<(), String>;
    /// Start the daemon with this plan.
    fn start(&mut self, plan: &Plan) -> Result<(), String>;
    /// Replace the running plan; when the daemon refuses it, the previous one stays.
    fn reconfigure(&mut self, plan: &Plan) -> Result<(), String>;
    /// The sessions to the neighbours, as the daemon reports them now.
    fn sessions(&mut self) -> Result<Vec<Session>, String>;
    fn pid(&self) -> u32;
    fn socket(&self) -> String;
    fn config_path(&self) -> String;
    /// Stop the daemon (it closes its sessions: every route it announced is withdrawn).
    fn stop(&mut self);
}

/// The VIP → services note and quorum summary used in the generated config's comments.
pub fn notes(services: &[(IpAddr, String, u32)]) -> BTreeMap<IpAddr, String> {
    let mut out: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
    for (vip, svc, quorum) in services {
        out.entry(*vip)
            .or_default()
            .push(format!("{svc} (quorum {quorum})"));
    }
    out.into_iter().map(|(k, v)| (k, v.join(", "))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Bgp, String> {
        parse(&toml::from_str::<BgpToml>(s).map_err(|e| e.to_string())?)
    }

    const N: &str = "\n[[neighbor]]\naddress = \"198.18.0.1\"\nasn = 65000\n";

    #[test]
    fn defaults_and_ranges() {
        let b = p(&format!("asn = 65001{N}")).unwrap();
        assert_eq!(b.asn, 65001);
        assert_eq!(
            b.bfd,
            Some(Bfd {
                interval: Duration::from_millis(100),
                multiplier: 3
            })
        );
        assert!(p(&format!("asn = 0{N}")).unwrap_err().contains("1..="));
        assert!(p(&format!("asn = 4294967295{N}")).is_err());
        assert!(p(&format!("asn = 23456{N}"))
            .unwrap_err()
            .contains("AS_TRANS"));
        assert_eq!(p(&format!("asn = 4294967294{N}")).unwrap().asn, 4294967294);
        assert!(p("asn = 65001").unwrap_err().contains("neighbor"));
        assert!(p(&format!("asn = 65001\nbogus = 1{N}")).is_err());
        assert!(
            p("asn = 65001\n[[neighbor]]\naddress = \"198.18.0.1\"\nasn = 65000\nport = 1")
                .is_err()
        );
        assert!(p(&format!("asn = 65001\nhold_time = \"2s\"{N}"))
            .unwrap_err()
            .contains("3s"));
        assert_eq!(
            p(&format!("asn = 65001\nhold_time = \"9s\"{N}"))
                .unwrap()
                .hold_time,
            Some(9)
        );
        assert!(p(&format!("asn = 65001\nbfd = false\nbfd_multiplier = 3{N}")).is_err());
        assert_eq!(
            p(&format!("asn = 65001\nbfd = false{N}")).unwrap().bfd,
            None
        );
        assert!(p(&format!("asn = 65001\nrouter_id = \"x\"{N}")).is_err());
        let c = p(&format!(
            "asn = 65001\ncommunities = [\"65001:100\", \"4200000001:1:2\"]{N}"
        ))
        .unwrap();
        assert_eq!(
            c.communities,
            vec![
                Community::Standard(65001, 100),
                Community::Large(4200000001, 1, 2)
            ]
        );
        assert!(p(&format!("asn = 65001\ncommunities = [\"70000:1\"]{N}")).is_err());
        assert!(p(&format!("asn = 65001\nmed = -1{N}")).is_err());
    }

    #[test]
    fn neighbours_must_be_connected() {
        let b = p(&format!("asn = 65001{N}")).unwrap();
        let here = |a: &str, prefix: u8| AddrObj {
            dev: "eth0".parse().unwrap(),
            addr: a.parse().unwrap(),
            prefix,
        };
        let plan = resolve("web", &b, &[here("198.18.0.2", 24)], vec![]).unwrap();
        assert_eq!(plan.router_id, Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(plan.peers[0].local, "198.18.0.2".parse::<IpAddr>().unwrap());
        let e = resolve("web", &b, &[here("198.18.5.2", 24)], vec![]).unwrap_err();
        assert!(e.contains("not on any network"), "{e}");
        // A /32 on lo does not connect anything.
        assert!(resolve("web", &b, &[here("198.18.0.2", 32)], vec![]).is_err());
    }

    #[test]
    fn device_names_are_short_and_distinct() {
        let v: IpAddr = "198.18.0.100".parse().unwrap();
        let a = device_name("web", &v);
        assert_eq!(a.len(), 11);
        assert_eq!(a, device_name("web", &v));
        assert_ne!(a, device_name("web2", &v));
    }
}
