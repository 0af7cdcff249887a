//! The domain model: what lbctl is asked to maintain (`Intent`), and the kernel objects it expands
//! into (`AddrObj`, `RuleObj`, `RouteObj`, sysctls, the ARP table). Pure: no syscalls here, so
//! validation and expansion are unit-tested without root.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::usage;

/// Protocol number lbctl stamps on the addresses (IFA_PROTO), rules (FRA_PROTOCOL) and routes
/// (rtm_protocol) it creates, so ownership is visible in the kernel itself (`ip -d addr` shows
/// `proto 76`). Not registered anywhere; 76 is "L" and unused by iproute2's rt_protos.
pub const LBCTL_PROTO: u8 = 76;
/// Default priority for `ip rule from VIP lookup T`, ahead of `main` (32766).
pub const DEFAULT_RULE_PRIORITY: u32 = 100;
/// The lbctl-owned nftables table in the `arp` family.
pub const ARP_TABLE: &str = "lbctl";
/// Routing tables lbctl refuses: unspec, default, main, local.
pub const RESERVED_TABLES: [u32; 4] = [0, 253, 254, 255];

/// Parse an IP address given by the user; `what` names it in the error.
pub fn parse_ip(s: &str, what: &str) -> Result<IpAddr> {
    s.trim()
        .parse::<IpAddr>()
        .map_err(|_| usage!("invalid {what} '{s}': not an IPv4 or IPv6 address"))
}

/// Parse a VIP: a bare address, or one with an explicit host prefix (/32, /128).
pub fn parse_vip(s: &str) -> Result<IpAddr> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip = parse_ip(addr, "VIP")?;
    if let Some(p) = prefix {
        let want = host_prefix(ip);
        if p.parse::<u8>().ok() != Some(want) {
            return Err(usage!(
                "invalid VIP '{s}': a VIP must be a host address (/{want}); a wider prefix on lo \
                 would swallow the whole subnet"
            ));
        }
    }
    if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() {
        return Err(usage!("invalid VIP '{s}': not a unicast service address"));
    }
    match ip {
        IpAddr::V4(v4) if v4.is_broadcast() || v4.is_link_local() => {
            return Err(usage!("invalid VIP '{s}': not a unicast service address"));
        }
        // fe80::/10, refused as 169.254/16 is: link-local addresses are per link, never a
        // service address clients reach through a balancer.
        IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => {
            return Err(usage!(
                "invalid VIP '{s}': an IPv6 link-local address (fe80::/10) is not a service \
                 address"
            ));
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return Err(usage!(
                    "invalid VIP '{s}': an IPv4-mapped IPv6 address; use the IPv4 VIP {v4}"
                ));
            }
        }
        IpAddr::V4(_) => {}
    }
    Ok(ip)
}

/// 32 for IPv4, 128 for IPv6.
pub fn host_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

/// Check an interface name the way the kernel does (`dev_valid_name`: 1 to 15 bytes, not `.`
/// or `..`, no `/`, `:` or C `isspace()` byte), so that every name the kernel reports is one
/// lbctl accepts and no name lbctl accepts is refused by the kernel.
pub fn validate_ifname(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .bytes()
            .any(|b| matches!(b, b'/' | b':' | b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
    {
        return Err(usage!("invalid interface name '{name}'"));
    }
    Ok(())
}

/// An interface name, held as the kernel holds it: the bytes of a valid name (see
/// [`validate_ifname`]), NUL-padded to IFNAMSIZ (16). Inline and `Copy`: the objects of a
/// 10,000-VIP plan carry no heap allocation for their device, and ordering by the padded bytes
/// is the names' string order (a name holds no NUL).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IfName([u8; 16]);

impl IfName {
    /// A valid interface name, or the usage error [`validate_ifname`] gives.
    pub fn new(name: &str) -> Result<Self> {
        validate_ifname(name)?;
        let mut bytes = [0u8; 16];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Ok(IfName(bytes))
    }

    pub fn as_str(&self) -> &str {
        let len = self.0.iter().position(|&b| b == 0).unwrap_or(self.0.len());
        std::str::from_utf8(&self.0[..len]).expect("made from a str")
    }
}

impl std::ops::Deref for IfName {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<&str> for IfName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for IfName {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<IfName> for &str {
    fn eq(&self, other: &IfName) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<IfName> for String {
    fn eq(&self, other: &IfName) -> bool {
        self == other.as_str()
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::str::FromStr for IfName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        IfName::new(s)
    }
}

impl Serialize for IfName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for IfName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = IfName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an interface name (1 to 15 bytes, no '/', ':' or space)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<IfName, E> {
                IfName::new(v).map_err(E::custom)
            }
        }
        d.deserialize_str(Name)
    }
}

/// Both addresses must be of one family.
pub fn same_family(a: IpAddr, b: IpAddr, what: &str) -> Result<()> {
    if a.is_ipv4() != b.is_ipv4() {
        return Err(usage!("{what}: cannot mix IPv4 and IPv6 ({a} and {b})"));
    }
    Ok(())
}

/// Validate a routing table id for lbctl's use.
pub fn validate_table(t: u32) -> Result<()> {
    if RESERVED_TABLES.contains(&t) {
        return Err(usage!(
            "table {t} is reserved (0 unspec, 253 default, 254 main, 255 local); pick another, e.g. 100"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Intent: what the user asked lbctl to maintain.
// ---------------------------------------------------------------------------------------------

/// A VIP on a device.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Vip {
    pub addr: IpAddr,
    pub dev: IfName,
}

/// Source policy routing for replies from a VIP.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PolicyRoute {
    pub vip: IpAddr,
    pub table: u32,
    pub via: IpAddr,
    pub dev: IfName,
    pub priority: u32,
}

/// Everything one owner (the one-shot CLI, or one profile) wants lbctl to maintain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Intent {
    #[serde(default)]
    pub vips: BTreeSet<Vip>,
    /// nft mode ARP suppression: VIP → the real IP used as ARP sender instead.
    #[serde(default)]
    pub arp_nft: BTreeMap<Ipv4Addr, Ipv4Addr>,
    /// sysctl mode ARP suppression: VIP → ARP-facing interface.
    #[serde(default)]
    pub arp_sysctl: BTreeMap<Ipv4Addr, String>,
    #[serde(default)]
    pub routes: BTreeSet<PolicyRoute>,
    /// Other sysctls to hold at a value (rp_filter fixes, profile-managed keys).
    #[serde(default)]
    pub sysctls: BTreeMap<SysctlKey, String>,
}

impl Intent {
    pub fn is_empty(&self) -> bool {
        self == &Intent::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Kernel objects.
// ---------------------------------------------------------------------------------------------

/// A path under /proc/sys, with `/` separators (so interface names with dots work).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SysctlKey(pub String);

impl SysctlKey {
    /// `net/ipv4/conf/<iface>/<name>`.
    pub fn ipv4_conf(iface: &str, name: &str) -> Self {
        SysctlKey(format!("net/ipv4/conf/{iface}/{name}"))
    }

    /// The name `sysctl(8)` accepts: dotted, unless a component has a dot (then slashes, which
    /// `sysctl -w` also accepts and which keeps `eth0.100` intact).
    pub fn display_name(&self) -> String {
        if self.0.split('/').any(|c| c.contains('.')) {
            self.0.clone()
        } else {
            self.0.replace('/', ".")
        }
    }
}

impl fmt::Display for SysctlKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_name())
    }
}

/// An address on an interface.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AddrObj {
    pub dev: IfName,
    pub addr: IpAddr,
    pub prefix: u8,
}

impl fmt::Display for AddrObj {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} dev {}", self.addr, self.prefix, self.dev)
    }
}

/// `ip rule from SRC lookup TABLE priority P` (action to-table).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RuleObj {
    pub priority: u32,
    pub from: IpAddr,
    pub from_len: u8,
    pub table: u32,
}

impl fmt::Display for RuleObj {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "from {}", self.from)?;
        if self.from_len != host_prefix(self.from) {
            write!(f, "/{}", self.from_len)?;
        }
        write!(f, " lookup {} priority {}", self.table, self.priority)
    }
}

/// A route in a (non-main) table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RouteObj {
    pub table: u32,
    pub dst: IpNet,
    pub via: Option<IpAddr>,
    pub dev: IfName,
}

impl RouteObj {
    pub fn is_default(&self) -> bool {
        self.dst.prefix_len() == 0
    }
}

impl fmt::Display for RouteObj {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_default() {
            f.write_str("default")?;
        } else {
            write!(f, "{}", self.dst)?;
        }
        if let Some(gw) = self.via {
            write!(f, " via {gw}")?;
        }
        write!(f, " dev {}", self.dev)?;
        if self.via.is_none() && self.dst.addr().is_ipv4() {
            f.write_str(" scope link")?;
        }
        write!(f, " table {}", self.table)
    }
}

/// The kernel objects a set of intents expands into.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub addrs: BTreeSet<AddrObj>,
    pub rules: BTreeSet<RuleObj>,
    pub routes: BTreeSet<RouteObj>,
    pub sysctls: BTreeMap<SysctlKey, String>,
    /// nft ARP table contents; empty = no table.
    pub arp: BTreeMap<Ipv4Addr, Ipv4Addr>,
}

/// Values lbctl sets for ARP suppression in sysctl mode, with the reason (shown by `arp status`).
pub const ARP_SYSCTLS: [(&str, &str, &str); 2] = [
    (
        "arp_ignore",
        "1",
        "reply only for addresses configured on the receiving interface (the VIP is on lo)",
    ),
    (
        "arp_announce",
        "2",
        "use the interface's own address, never the VIP, as ARP sender",
    ),
];

/// Expand the union of intents into kernel objects. `connected` gives the connected (on-link)
/// prefixes of an interface, copied into policy tables. Conflicting demands are usage errors.
pub fn expand<'a>(
    intents: impl IntoIterator<Item = (&'a str, &'a Intent)>,
    connected: &dyn Fn(&str, bool) -> Vec<IpNet>,
) -> Result<Desired> {
    let mut d = Desired::default();
    let mut sysctl_owner: BTreeMap<SysctlKey, &str> = BTreeMap::new();
    let mut set_sysctl = |d: &mut Desired, owner: &'a str, key: SysctlKey, val: &str| {
        if let Some(old) = d.sysctls.get(&key) {
            if old != val {
                return Err(usage!(
                    "conflict: {} wants {key}={val} but {} wants {key}={old}",
                    owner,
                    sysctl_owner[&key]
                ));
            }
        }
        sysctl_owner.insert(key.clone(), owner);
        d.sysctls.insert(key, val.to_string());
        Ok::<(), Error>(())
    };
    for (owner, intent) in intents {
        for vip in &intent.vips {
            d.addrs.insert(AddrObj {
                dev: vip.dev,
                addr: vip.addr,
                prefix: host_prefix(vip.addr),
            });
        }
        for (vip, rip) in &intent.arp_nft {
            if let Some(old) = d.arp.insert(*vip, *rip) {
                if old != *rip {
                    return Err(usage!(
                        "conflict: VIP {vip} is suppressed with real IP {old} and {rip}"
                    ));
                }
            }
        }
        for iface in intent.arp_sysctl.values() {
            for (name, val, _) in ARP_SYSCTLS {
                set_sysctl(&mut d, owner, SysctlKey::ipv4_conf(iface, name), val)?;
            }
        }
        for (k, v) in &intent.sysctls {
            set_sysctl(&mut d, owner, k.clone(), v)?;
        }
        for r in &intent.routes {
            d.rules.insert(RuleObj {
                priority: r.priority,
                from: r.vip,
                from_len: host_prefix(r.vip),
                table: r.table,
            });
            let default = if r.vip.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
            d.routes.insert(RouteObj {
                table: r.table,
                dst: default.parse().expect("literal"),
                via: Some(r.via),
                dev: r.dev,
            });
            for net in connected(&r.dev, r.vip.is_ipv4()) {
                d.routes.insert(RouteObj {
                    table: r.table,
                    dst: net,
                    via: None,
                    dev: r.dev,
                });
            }
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vip_parsing() {
        assert_eq!(
            parse_vip("198.18.0.100").unwrap(),
            "198.18.0.100".parse::<IpAddr>().unwrap()
        );
        assert!(parse_vip("198.18.0.100/32").is_ok());
        assert!(parse_vip("2001:db8::100/128").is_ok());
        let e = parse_vip("198.18.0.100/24").unwrap_err().to_string();
        assert!(e.contains("/32"), "{e}");
        assert!(parse_vip("198.18.0.300").is_err());
        assert!(parse_vip("0.0.0.0").is_err());
        assert!(parse_vip("127.0.0.2").is_err());
        assert!(parse_vip("224.0.0.1").is_err());
        assert!(parse_vip("").is_err());
        for bad in ["fe80::1", "febf::1", "::ffff:198.18.0.100", "169.254.1.1"] {
            assert!(parse_vip(bad).is_err(), "{bad}");
        }
        assert!(parse_vip("fec0::1").is_ok());
    }

    #[test]
    fn ifname_is_inline_ordered_as_its_string_and_checked_when_read() {
        assert_eq!(std::mem::size_of::<IfName>(), 16);
        let names = [
            "eth0",
            "eth0.100",
            "a234567890abcde",
            "lo",
            "eth1",
            "e",
            "eth",
        ];
        let mut as_ifnames: Vec<IfName> = names.iter().map(|n| IfName::new(n).unwrap()).collect();
        let mut as_strings: Vec<&str> = names.to_vec();
        as_ifnames.sort();
        as_strings.sort();
        let back: Vec<&str> = as_ifnames.iter().map(IfName::as_str).collect();
        assert_eq!(back, as_strings);
        // The longest name the kernel allows fills all 15 bytes; 16 is refused.
        assert_eq!(IfName::new("a234567890abcde").unwrap(), "a234567890abcde");
        assert!(IfName::new("a234567890abcdef").is_err());
        // Written and read as a plain string; a name the kernel would refuse is not read.
        let lo = IfName::new("lo").unwrap();
        assert_eq!(serde_json::to_string(&lo).unwrap(), r#""lo""#);
        assert_eq!(serde_json::from_str::<IfName>(r#""lo""#).unwrap(), lo);
        for bad in [r#""""#, r#""eth/0""#, r#""a234567890abcdef""#, "7"] {
            assert!(serde_json::from_str::<IfName>(bad).is_err(), "{bad}");
        }
        assert_eq!(format!("{lo} {lo:?}"), r#"lo "lo""#);
    }

    #[test]
    fn ifnames() {
        assert!(validate_ifname("eth0.100").is_ok());
        assert!(validate_ifname("a234567890123456").is_err());
        assert!(validate_ifname("eth/0").is_err());
        // The kernel's isspace() bytes are refused, other characters are not (as the kernel).
        for bad in ["eth 0", "eth\t0", "eth\u{b}0", "eth\u{c}0", "eth:0"] {
            assert!(validate_ifname(bad).is_err(), "{bad:?}");
        }
        assert!(validate_ifname("eth\u{a0}0").is_ok());
        assert!(validate_ifname("").is_err());
    }

    #[test]
    fn tables() {
        for t in RESERVED_TABLES {
            assert!(validate_table(t).is_err());
        }
        assert!(validate_table(100).is_ok());
        assert!(validate_table(10_000).is_ok());
    }

    #[test]
    fn sysctl_names_keep_dotted_interfaces() {
        let k = SysctlKey::ipv4_conf("eth0.100", "arp_ignore");
        assert_eq!(k.display_name(), "net/ipv4/conf/eth0.100/arp_ignore");
        let k = SysctlKey::ipv4_conf("eth0", "arp_ignore");
        assert_eq!(k.display_name(), "net.ipv4.conf.eth0.arp_ignore");
    }

    #[test]
    fn expansion_dedups_shared_tables_and_detects_conflicts() {
        let mut a = Intent::default();
        for vip in ["198.18.0.100", "198.18.0.101"] {
            a.routes.insert(PolicyRoute {
                vip: vip.parse().unwrap(),
                table: 200,
                via: "198.18.0.1".parse().unwrap(),
                dev: "eth0".parse().unwrap(),
                priority: 100,
            });
        }
        let conn = |_: &str, _: bool| vec!["198.18.0.0/24".parse().unwrap()];
        let d = expand([("cli", &a)], &conn).unwrap();
        assert_eq!(d.rules.len(), 2);
        assert_eq!(d.routes.len(), 2, "one default + one connected, shared");

        let mut b = Intent::default();
        b.sysctls
            .insert(SysctlKey::ipv4_conf("eth0", "arp_ignore"), "2".into());
        a.arp_sysctl
            .insert("198.18.0.100".parse().unwrap(), "eth0".into());
        let e = expand([("cli", &a), ("profile:x", &b)], &conn).unwrap_err();
        assert!(e.to_string().contains("conflict"), "{e}");
    }
}
