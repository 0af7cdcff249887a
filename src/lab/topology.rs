//! The lab's shape, as pure data: names, nodes, addresses, MACs, the LB file and the switch's
//! counters. Nothing here touches the system, so all of it is unit-tested without root.
//!
//! Layout (`shared/research/PLATFORM.md` §2): one L2 segment, 198.18.0.0/24 (and 2001:db8::/64
//! with `--ipv6`), a bridge `br0` in the switch namespace with one port `sw-<node>` per host.
//!
//! | node     | namespace         | eth0 address               | MAC               |
//! |----------|-------------------|----------------------------|-------------------|
//! | `sw`     | `lbl-<lab>-sw`    | (bridge `br0`)             |                   |
//! | `client` | `lbl-<lab>-client`| 198.18.0.10, 2001:db8::10  | 02:00:00:00:00:10 |
//! | `lb`     | `lbl-<lab>-lb`    | 198.18.0.2, 2001:db8::2    | 02:00:00:00:00:02 |
//! | `beN`    | `lbl-<lab>-beN`   | 198.18.0.1N, 2001:db8::1N  | 02:00:00:00:00:1N |
//!
//! The VIP (198.18.0.100, 2001:db8::100) belongs to the balancer daemon, not to the lab; the
//! backends hold it on `lo`. Backends route by default via 198.18.0.1, which does not exist: the
//! client is on-link, so replies go straight to it (that is DSR).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::usage;

/// Prefix of every lab namespace (`lbl-<lab>-<node>`).
pub const NS_PREFIX: &str = "lbl-";
/// The lab name when none is given.
pub const DEFAULT_NAME: &str = "lab";
/// Longest lab name.
pub const MAX_NAME_LEN: usize = 20;
/// Most backends a lab can have (MACs and addresses are `…1N`).
pub const MAX_BACKENDS: u8 = 9;
/// The service VIP (IPv4).
pub const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
/// The service VIP (IPv6).
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
/// The service port.
pub const PORT: u16 = 80;
/// The balancer's address on the lab segment.
pub const BALANCER4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The balancer's IPv6 address on the lab segment.
pub const BALANCER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
/// The backends' default gateway (deliberately absent).
pub const GATEWAY4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The backends' IPv6 default gateway (deliberately absent).
pub const GATEWAY6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
/// The bridge in the switch namespace.
pub const BRIDGE: &str = "br0";
/// Every host's interface towards the switch.
pub const HOST_IF: &str = "eth0";
/// The switch's nftables table (counters only).
pub const SWITCH_TABLE: &str = "lbctl_lab";

/// How the balancer forwards (the `engine` key of the LB file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// IPVS when the kernel has it, else nftables.
    #[default]
    Auto,
    /// Kernel IPVS in direct-routing mode.
    Ipvs,
    /// An nftables netdev ingress chain rewriting MACs.
    Nft,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Auto => "auto",
            Engine::Ipvs => "ipvs",
            Engine::Nft => "nft",
        }
    }
}

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Switch,
    Client,
    Balancer,
    Backend,
    /// The upstream router of a routed lab (`lab up --routing bgp`, see `super::routing`).
    Router,
}

/// One node of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// `sw`, `client`, `lb`, `be1`…
    pub node: String,
    pub role: Role,
    /// Its network namespace.
    pub ns: String,
    /// The eth0 address (none for the switch).
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    pub mac: Option<String>,
}

impl Node {
    /// The switch port (`sw-<node>`) this host hangs off.
    pub fn port(&self) -> String {
        format!("sw-{}", self.node)
    }

    /// Backend number (1-based), if a backend.
    pub fn backend_index(&self) -> Option<u8> {
        (self.role == Role::Backend)
            .then(|| self.node.strip_prefix("be")?.parse().ok())
            .flatten()
    }
}

/// A lab name: 1 to 20 of `a-z 0-9 -`, starting and ending with a letter or digit.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(usage!(
            "invalid lab name '{name}': use 1-{MAX_NAME_LEN} characters a-z, 0-9 and '-' (not at \
             either end)"
        ))
    }
}

/// 1..=[`MAX_BACKENDS`].
pub fn validate_backends(n: u8) -> Result<()> {
    if (1..=MAX_BACKENDS).contains(&n) {
        Ok(())
    } else {
        Err(usage!(
            "--backends must be between 1 and {MAX_BACKENDS} (got {n})"
        ))
    }
}

/// The namespace of `node` in lab `lab`. Node names contain no '-', so names of different labs
/// never collide (`lbl-a-b-sw` is lab `a-b`, node `sw`).
pub fn ns_name(lab: &str, node: &str) -> String {
    format!("{NS_PREFIX}{lab}-{node}")
}

/// Every node, in creation order: switch, client, balancer, backends.
pub fn plan(lab: &str, backends: u8, ipv6: bool) -> Vec<Node> {
    let host = |node: &str, role, last: u8, mac: u8| Node {
        node: node.to_string(),
        role,
        ns: ns_name(lab, node),
        ipv4: Some(Ipv4Addr::new(198, 18, 0, last)),
        ipv6: ipv6.then(|| Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, v6_suffix(last))),
        mac: Some(format!("02:00:00:00:00:{mac:02x}")),
    };
    let mut v = vec![
        Node {
            node: "sw".into(),
            role: Role::Switch,
            ns: ns_name(lab, "sw"),
            ipv4: None,
            ipv6: None,
            mac: None,
        },
        host("client", Role::Client, 10, 0x10),
        host("lb", Role::Balancer, BALANCER4.octets()[3], 0x02),
    ];
    for i in 1..=backends {
        v.push(host(&format!("be{i}"), Role::Backend, 10 + i, 0x10 + i));
    }
    v
}

/// 198.18.0.11 → 2001:db8::11 (the same digits, read as hex), so addresses line up.
fn v6_suffix(last: u8) -> u16 {
    u16::from_str_radix(&last.to_string(), 16).expect("decimal digits are hex digits")
}

/// `VIP:PORT` as the LB file and doctor write it.
pub fn vip_port(vip: IpAddr) -> String {
    match vip {
        IpAddr::V4(v) => format!("{v}:{PORT}"),
        IpAddr::V6(v) => format!("[{v}]:{PORT}"),
    }
}

/// The LB file handed to `lbctl lb run` (the contract with the balancer daemon; it extends
/// `profiles/lb-example.toml` with a `[balancer]` section and health checks).
pub fn lb_file(lab: &str, engine: Engine, nodes: &[Node], ipv6: bool) -> String {
    let mut out = format!(
        "# Written by `lbctl lab up` for lab \"{lab}\"; removed by `lbctl lab down`.\n\
         name = \"{lab}\"\n\n\
         [balancer]\n\
         engine = \"{}\"            # auto | ipvs | nft\n\
         interface = \"{HOST_IF}\"        # the balancer NIC: owns the VIPs, nft ingress hook\n",
        engine.as_str()
    );
    let mut services: Vec<(IpAddr, Vec<IpAddr>)> = vec![(
        IpAddr::V4(VIP4),
        nodes
            .iter()
            .filter(|n| n.role == Role::Backend)
            .filter_map(|n| n.ipv4.map(IpAddr::V4))
            .collect(),
    )];
    if ipv6 {
        services.push((
            IpAddr::V6(VIP6),
            nodes
                .iter()
                .filter(|n| n.role == Role::Backend)
                .filter_map(|n| n.ipv6.map(IpAddr::V6))
                .collect(),
        ));
    }
    for (vip, rips) in services {
        out.push_str(&format!(
            "\n[[service]]\n\
             vip = \"{}\"\n\
             protocol = \"tcp\"\n\
             scheduler = \"mh\"\n\n\
             [service.check]\n\
             type = \"http\"\n\
             path = \"/\"\n\
             expect_status = 200\n\
             interval = \"500ms\"\n\
             timeout = \"300ms\"\n\
             rise = 2\n\
             fall = 2\n\
             dsr = true                # also probe VIP:port through the backend's MAC\n",
            vip_port(vip)
        ));
        for rip in rips {
            out.push_str(&format!(
                "\n[[service.backend]]\nrip = \"{rip}\"\nweight = 1\n"
            ));
        }
    }
    out
}

/// The switch's counters, for the service's TCP traffic only: every reply from VIP:80 to a
/// client and whether it touched the balancer's port, plus requests to the balancer and the
/// ones it forwards. They prove DSR: replies reach the client without ever passing `sw-lb`.
/// The balancer's own DSR health probes (from its address to the VIP, and their answers) are
/// left out, as is neighbour discovery (a backend's NS for the client carries the VIP as
/// source and is flooded to every port). Bridge-family rules see the ports as iif/oif.
pub fn switch_nft(ipv6: bool) -> String {
    let fams: Vec<(&str, String, String)> = {
        let mut v = vec![("ip", VIP4.to_string(), BALANCER4.to_string())];
        if ipv6 {
            v.push(("ip6", VIP6.to_string(), BALANCER6.to_string()));
        }
        v
    };
    let mut rules = Vec::new();
    for (f, vip, lb) in fams {
        let reply = format!("{f} saddr {vip} {f} daddr != {lb} tcp sport {PORT}");
        let request = format!("{f} daddr {vip} {f} saddr != {lb} tcp dport {PORT}");
        rules.extend([
            format!("{reply} counter name \"replies\""),
            format!("{reply} oifname \"sw-lb\" counter name \"replies_via_lb\""),
            format!("{reply} iifname \"sw-lb\" counter name \"replies_via_lb\""),
            format!("{request} oifname \"sw-lb\" counter name \"requests_to_lb\""),
            format!("{request} iifname \"sw-lb\" counter name \"requests_from_lb\""),
        ]);
    }
    let mut out = format!("table bridge {SWITCH_TABLE} {{\n");
    for c in SWITCH_COUNTERS {
        out.push_str(&format!("  counter {c} {{ }}\n"));
    }
    out.push_str("  chain forward {\n    type filter hook forward priority 0; policy accept;\n");
    for r in rules {
        out.push_str(&format!("    {r}\n"));
    }
    out.push_str("  }\n}\n");
    out
}

/// Names of the switch's counters.
pub const SWITCH_COUNTERS: [&str; 4] = [
    "replies",
    "replies_via_lb",
    "requests_to_lb",
    "requests_from_lb",
];

/// Values a backend profile template may use, as `{{key}}`.
pub fn profile_vars(node: &Node) -> BTreeMap<&'static str, Option<String>> {
    let mut m = BTreeMap::new();
    m.insert("node", Some(node.node.clone()));
    m.insert("vip", Some(VIP4.to_string()));
    m.insert("rip", node.ipv4.map(|a| a.to_string()));
    m.insert("gateway", Some(GATEWAY4.to_string()));
    m.insert("port", Some(PORT.to_string()));
    m.insert("iface", Some(HOST_IF.to_string()));
    let v6 = node.ipv6.is_some();
    m.insert("vip6", v6.then(|| VIP6.to_string()));
    m.insert("rip6", node.ipv6.map(|a| a.to_string()));
    m.insert("gateway6", v6.then(|| GATEWAY6.to_string()));
    m
}

/// Fill a backend profile template: `{{vip}}`, `{{rip}}`, `{{node}}`, `{{gateway}}`, `{{port}}`,
/// `{{iface}}`, and with `--ipv6` also `{{vip6}}`, `{{rip6}}`, `{{gateway6}}`. A file without
/// placeholders is used as it is. The result is validated as a profile.
pub fn render_profile(template: &str, source: &Path, node: &Node) -> Result<String> {
    let vars = profile_vars(node);
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| usage!("{}: unterminated '{{{{' placeholder", source.display()))?;
        let key = after[..end].trim();
        match vars.get(key) {
            Some(Some(v)) => out.push_str(v),
            Some(None) => {
                return Err(usage!(
                    "{}: {{{{{key}}}}} needs an IPv6 lab (--ipv6)",
                    source.display()
                ))
            }
            None => {
                let known: Vec<&str> = vars.keys().copied().collect();
                return Err(usage!(
                    "{}: unknown placeholder {{{{{key}}}}} (known: {})",
                    source.display(),
                    known.join(", ")
                ));
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    crate::profile::parse(&out, &node.node)
        .map_err(|e| usage!("{} (rendered for {}): {e}", source.display(), node.node))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["lab", "a", "t123-x", "abcdefghij0123456789"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "Lab",
            "a_b",
            "a.b",
            "a/b",
            "abcdefghij0123456789x",
            "é",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_backends(0).is_err());
        assert!(validate_backends(1).is_ok());
        assert!(validate_backends(MAX_BACKENDS).is_ok());
        assert!(validate_backends(MAX_BACKENDS + 1).is_err());
    }

    #[test]
    fn plan_matches_the_platform_notes() {
        let p = plan("lab", 2, true);
        let names: Vec<&str> = p.iter().map(|n| n.node.as_str()).collect();
        assert_eq!(names, ["sw", "client", "lb", "be1", "be2"]);
        let be2 = &p[4];
        assert_eq!(be2.ns, "lbl-lab-be2");
        assert_eq!(be2.ipv4, Some(Ipv4Addr::new(198, 18, 0, 12)));
        assert_eq!(be2.ipv6, Some("2001:db8::12".parse().unwrap()));
        assert_eq!(be2.mac.as_deref(), Some("02:00:00:00:00:12"));
        assert_eq!(be2.port(), "sw-be2");
        assert_eq!(be2.backend_index(), Some(2));
        assert_eq!(p[2].ipv4, Some(BALANCER4));
        assert_eq!(plan("lab", 1, true)[2].ipv6, Some(BALANCER6));
        assert_eq!(p[2].mac.as_deref(), Some("02:00:00:00:00:02"));
        assert_eq!(p[1].mac.as_deref(), Some("02:00:00:00:00:10"));
        assert_eq!(p[0].ipv4, None);
        let p9 = plan("x", 9, false);
        assert_eq!(p9.last().unwrap().mac.as_deref(), Some("02:00:00:00:00:19"));
        assert_eq!(p9.last().unwrap().ipv6, None);
        // Every interface name fits IFNAMSIZ.
        assert!(p9.iter().all(|n| n.port().len() <= 15));
    }

    #[test]
    fn lb_file_is_the_contract() {
        let nodes = plan("lab", 2, true);
        let text = lb_file("lab", Engine::Nft, &nodes, true);
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(v["name"].as_str(), Some("lab"));
        assert_eq!(v["balancer"]["engine"].as_str(), Some("nft"));
        assert_eq!(v["balancer"]["interface"].as_str(), Some("eth0"));
        let services = v["service"].as_array().unwrap();
        assert_eq!(services.len(), 2);
        assert_eq!(services[0]["vip"].as_str(), Some("198.18.0.100:80"));
        assert_eq!(services[1]["vip"].as_str(), Some("[2001:db8::100]:80"));
        assert_eq!(services[0]["scheduler"].as_str(), Some("mh"));
        let check = &services[0]["check"];
        assert_eq!(check["type"].as_str(), Some("http"));
        assert_eq!(check["dsr"].as_bool(), Some(true));
        assert_eq!(check["rise"].as_integer(), Some(2));
        let be: Vec<&str> = services[0]["backend"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["rip"].as_str().unwrap())
            .collect();
        assert_eq!(be, ["198.18.0.11", "198.18.0.12"]);
        let be6 = services[1]["backend"].as_array().unwrap();
        assert_eq!(be6[1]["rip"].as_str(), Some("2001:db8::12"));
        let v4only: toml::Value =
            toml::from_str(&lb_file("lab", Engine::Auto, &plan("lab", 1, false), false)).unwrap();
        assert_eq!(v4only["service"].as_array().unwrap().len(), 1);
        assert_eq!(v4only["balancer"]["engine"].as_str(), Some("auto"));
    }

    #[test]
    fn switch_counters_script() {
        let s = switch_nft(false);
        assert!(s.starts_with("table bridge lbctl_lab {"));
        for c in SWITCH_COUNTERS {
            assert!(s.contains(&format!("counter {c} {{ }}")), "{s}");
        }
        assert!(!s.contains("ip6"));
        assert!(
            s.contains("ip saddr 198.18.0.100 ip daddr != 198.18.0.2 tcp sport 80"),
            "{s}"
        );
        let s6 = switch_nft(true);
        assert!(s6.contains("ip6 saddr 2001:db8::100 ip6 daddr != 2001:db8::2 tcp sport 80"));
    }

    #[test]
    fn profile_templates() {
        let nodes = plan("lab", 2, false);
        let be2 = &nodes[4];
        let tpl = "name = \"lab-{{node}}\"\n[[vip]]\naddress = \"{{vip}}\"\nports = [{{port}}]\n\
                   [arp]\nmode = \"nft\"\n[[arp.interface]]\nname = \"{{ iface }}\"\nreal_ip = \"{{rip}}\"\n";
        let out = render_profile(tpl, Path::new("p.toml"), be2).unwrap();
        assert!(out.contains("real_ip = \"198.18.0.12\""), "{out}");
        assert!(out.contains("name = \"lab-be2\""), "{out}");
        assert!(out.contains("ports = [80]"), "{out}");
        let e = render_profile("x = \"{{nope}}\"", Path::new("p.toml"), be2).unwrap_err();
        assert!(
            e.to_string().contains("unknown placeholder {{nope}}"),
            "{e}"
        );
        let e = render_profile(
            "[[vip]]\naddress = \"{{vip6}}\"\n",
            Path::new("p.toml"),
            be2,
        )
        .unwrap_err();
        assert!(e.to_string().contains("--ipv6"), "{e}");
        let e = render_profile("x = \"{{vip\"", Path::new("p.toml"), be2).unwrap_err();
        assert!(e.to_string().contains("unterminated"), "{e}");
        // Rendered text must be a valid profile.
        let e = render_profile("bogus = 1\n", Path::new("p.toml"), be2).unwrap_err();
        assert!(e.to_string().contains("p.toml"), "{e}");
    }
}
