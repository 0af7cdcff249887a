//! The nftables DSR data path, as nft text (pure: rendering and parsing only; `sys::nft` runs it).
//!
//! One lbctl-owned `netdev` table per `lb run` name, hooked at ingress of the balancer NIC:
//!
//! ```text
//! table netdev lbctl_lb_web {
//!   map m_198_18_0_100_tcp_80 { typeof numgen inc mod 4099 : ether daddr; }   # Maglev slot → MAC
//!   map f_198_18_0_100_tcp_80 { typeof tcp sport . ip saddr : ether daddr;    # pinned flows
//!                               size 262144; flags dynamic,timeout; timeout 5m; }
//!   set b_198_18_0_100_tcp_80 { typeof ether daddr; flags dynamic; counter; }  # per backend:
//!   set n_198_18_0_100_tcp_80 { typeof ether daddr; flags dynamic; counter; }  # packets, new flows
//!   chain s_198_18_0_100_tcp_80 {
//!     # a flow seen before keeps its backend (drain: established flows continue)
//!     ether saddr set LB-MAC ether daddr set tcp sport . ip saddr map @f_… update @f_… { tcp sport . ip saddr : ether daddr } update @b_… { ether daddr } fwd to "eth0"
//!     # a new flow: Maglev slot from the flow hash, then pinned (and counted as new)
//!     ether saddr set LB-MAC ether daddr set jhash tcp sport . ip saddr mod 4099 seed 0x4c42 map @m_… update @f_… { … } update @n_… { ether daddr } update @b_… { ether daddr } fwd to "eth0"
//!     # flow table full: forward unpinned
//!     ether saddr set LB-MAC ether daddr set jhash … map @m_… update @n_… { … } update @b_… { … } fwd to "eth0"
//!     counter drop                                   # no backend up
//!   }
//!   chain ingress { type filter hook ingress device "eth0" priority 100; policy accept;
//!     ip daddr 198.18.0.100 tcp dport 80 counter name c_198_18_0_100_tcp_80 jump s_198_18_0_100_tcp_80 }
//! }
//! ```
//!
//! Why nft text and not JSON or netlink messages built here (as for the arp table,
//! `sys::arptable`): maps keyed by a hash need `typeof`, which nft's JSON (1.0.6) cannot
//! express (PLATFORM.md §4), and the chains are many and change with the configuration — nft's
//! compiler is the right tool for them. Every value
//! here is typed (addresses, ports, MACs, validated names), so the text cannot be injected into.
//! The jhash seed is fixed: a reload must not re-map live flows. netdev ingress has no conntrack,
//! hence the flow map: without it a drained backend's established connections would move.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use serde_json::Value;

pub use crate::sys::mac::Mac;
use crate::sys::mac::{fmt_mac, parse_mac};

/// Transport protocols the nft engine balances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum L4 {
    Tcp,
    Udp,
}

impl L4 {
    fn name(self) -> &'static str {
        match self {
            L4::Tcp => "tcp",
            L4::Udp => "udp",
        }
    }
}

/// One service as the nft engine programs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Svc {
    pub vip: IpAddr,
    pub port: u16,
    pub l4: L4,
    /// Maglev table size.
    pub size: usize,
}

impl Svc {
    /// Stable object suffix: `198_18_0_100_tcp_80`, `2001_db8__100_tcp_80`.
    pub fn id(&self) -> String {
        let a: String = self
            .vip
            .to_string()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!("{a}_{}_{}", self.l4.name(), self.port)
    }

    pub fn slot_map(&self) -> String {
        format!("m_{}", self.id())
    }

    pub fn flow_map(&self) -> String {
        format!("f_{}", self.id())
    }

    pub fn chain(&self) -> String {
        format!("s_{}", self.id())
    }

    /// Per-backend packet and byte counters: a dynamic set of backend MACs with a counter per
    /// element, updated by every forwarded packet.
    pub fn backend_set(&self) -> String {
        format!("b_{}", self.id())
    }

    /// Per-backend new flows: the same, updated only by a flow's first packet (a flow not
    /// pinned yet).
    pub fn newflow_set(&self) -> String {
        format!("n_{}", self.id())
    }

    fn ipfam(&self) -> &'static str {
        if self.vip.is_ipv4() {
            "ip"
        } else {
            "ip6"
        }
    }

    /// `tcp sport . ip saddr`: the flow key (the rest of the 5-tuple is fixed per service).
    /// Port first: nft 1.0.6 aborts (register allocation assertion) on a dynamic-map update
    /// keyed by `ip6 saddr . tcp sport`, and accepts the same key the other way round.
    fn flow_key(&self) -> String {
        format!("{} sport . {} saddr", self.l4.name(), self.ipfam())
    }
}

/// Everything that shapes the table (not the backends: those live in the maps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub table: String,
    pub iface: String,
    pub lb_mac: Mac,
    pub seed: u32,
    pub flow_timeout_s: u64,
    pub flow_size: u32,
    pub services: Vec<Svc>,
}

/// Table name for an `lb run` name: `lbctl_lb_<name>` with non-alphanumerics as `_`.
pub fn table_name(run_name: &str) -> String {
    let n: String = run_name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("lbctl_lb_{n}")
}

impl Layout {
    /// What must match for a service's maps to be kept across a reload or restart.
    pub fn map_signature(&self, s: &Svc) -> String {
        format!(
            "{} {} {} size={} seed={:#x} timeout={} flows={} backend-counters",
            s.vip,
            s.l4.name(),
            s.port,
            s.size,
            self.seed,
            self.flow_timeout_s,
            self.flow_size
        )
    }

    fn rules(&self, s: &Svc) -> Vec<String> {
        let key = s.flow_key();
        let smac = fmt_mac(&self.lb_mac);
        let fwd = format!("fwd to \"{}\"", self.iface);
        let pin = format!("update @{} {{ {key} : ether daddr }}", s.flow_map());
        let count = format!("update @{} {{ ether daddr }}", s.backend_set());
        let new = format!("update @{} {{ ether daddr }} {count}", s.newflow_set());
        let hash = format!(
            "jhash {key} mod {} seed {:#x} map @{}",
            s.size,
            self.seed,
            s.slot_map()
        );
        vec![
            format!(
                "ether saddr set {smac} ether daddr set {key} map @{} {pin} {count} {fwd}",
                s.flow_map()
            ),
            format!("ether saddr set {smac} ether daddr set {hash} {pin} {new} {fwd}"),
            format!("ether saddr set {smac} ether daddr set {hash} {new} {fwd}"),
            "counter drop".to_string(),
        ]
    }

    /// The transaction that makes the table's structure match this layout. `existing` is what
    /// an earlier run created (service id → [`Layout::map_signature`]): a service whose maps
    /// exist with the same signature keeps them (pinned flows survive a reload); a changed one
    /// gets new, empty maps; one no longer wanted is deleted.
    pub fn render(&self, existing: &BTreeMap<String, String>) -> String {
        let t = &self.table;
        let mut o = String::new();
        let _ = writeln!(o, "add table netdev {t}");
        // Unhook first: the ingress chain is rebuilt below, so nothing references old chains.
        let _ = writeln!(
            o,
            "add chain netdev {t} ingress {{ type filter hook ingress device \"{}\" priority 100; policy accept; }}",
            self.iface
        );
        let _ = writeln!(o, "flush chain netdev {t} ingress");
        let wanted: Vec<String> = self.services.iter().map(Svc::id).collect();
        for id in existing.keys().filter(|id| !wanted.contains(id)) {
            let _ = writeln!(o, "delete chain netdev {t} s_{id}");
            let _ = writeln!(o, "delete map netdev {t} m_{id}");
            let _ = writeln!(o, "delete map netdev {t} f_{id}");
            let _ = writeln!(o, "delete counter netdev {t} c_{id}");
            // Tables of an lbctl without per-backend counters have no such sets.
            let _ = writeln!(o, "add set netdev {t} b_{id} {}", BACKEND_SET);
            let _ = writeln!(o, "delete set netdev {t} b_{id}");
            let _ = writeln!(o, "add set netdev {t} n_{id} {}", BACKEND_SET);
            let _ = writeln!(o, "delete set netdev {t} n_{id}");
        }
        for s in &self.services {
            let c = s.chain();
            let _ = writeln!(o, "add chain netdev {t} {c}");
            let _ = writeln!(o, "flush chain netdev {t} {c}");
            match existing.get(&s.id()) {
                Some(sig) if *sig == self.map_signature(s) => {}
                was => {
                    for (m, def) in self.map_defs(s) {
                        if was.is_some() {
                            let _ = writeln!(o, "delete map netdev {t} {m}");
                        }
                        let _ = writeln!(o, "add map netdev {t} {m} {def}");
                    }
                    for set in [s.backend_set(), s.newflow_set()] {
                        // Add first: `delete` of a set an older table lacks would fail.
                        let _ = writeln!(o, "add set netdev {t} {set} {BACKEND_SET}");
                        if was.is_some() {
                            let _ = writeln!(o, "delete set netdev {t} {set}");
                            let _ = writeln!(o, "add set netdev {t} {set} {BACKEND_SET}");
                        }
                    }
                }
            }
            for r in self.rules(s) {
                let _ = writeln!(o, "add rule netdev {t} {c} {r}");
            }
            // A named counter: it lives in the table, not in the rule, so re-rendering the
            // ingress chain (a reload that adds another service) keeps its count.
            let _ = writeln!(o, "add counter netdev {t} c_{}", s.id());
            let _ = writeln!(
                o,
                "add rule netdev {t} ingress {} daddr {} {} dport {} counter name c_{} jump {c}",
                s.ipfam(),
                s.vip,
                s.l4.name(),
                s.port,
                s.id()
            );
        }
        o
    }

    fn map_defs(&self, s: &Svc) -> [(String, String); 2] {
        [
            (
                s.slot_map(),
                format!("{{ typeof numgen inc mod {} : ether daddr; }}", s.size),
            ),
            (
                s.flow_map(),
                format!(
                    "{{ typeof {} : ether daddr; size {}; flags dynamic,timeout; timeout {}s; }}",
                    s.flow_key(),
                    self.flow_size,
                    self.flow_timeout_s
                ),
            ),
        ]
    }
}

/// The per-backend counter sets: backend MAC → packets and bytes (`counter` on every element).
const BACKEND_SET: &str = "{ typeof ether daddr; size 65536; flags dynamic; counter; }";

/// Delete the whole table (`lb run --cleanup`); safe when it does not exist.
pub fn render_delete(table: &str) -> String {
    format!("add table netdev {table}\ndelete table netdev {table}\n")
}

/// The change that takes a slot map from `old` to `new`: an element cannot be overwritten, so a
/// changed slot is deleted and re-added; `old = None` (contents unknown, e.g. at start-up):
/// flush the map and load everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlotDelta {
    pub flush: bool,
    /// Slots to delete.
    pub dels: Vec<usize>,
    /// Slots to add, with their backend's MAC.
    pub adds: Vec<(usize, Mac)>,
}

pub fn slot_delta(old: Option<&[Option<Mac>]>, new: &[Option<Mac>]) -> SlotDelta {
    let mut d = SlotDelta {
        flush: old.is_none(),
        ..SlotDelta::default()
    };
    for (i, mac) in new.iter().enumerate() {
        let before = old.and_then(|o| o.get(i).copied().flatten());
        if old.is_some() && before == *mac {
            continue;
        }
        if before.is_some() {
            d.dels.push(i);
        }
        if let Some(mac) = mac {
            d.adds.push((i, *mac));
        }
    }
    d
}

/// A slot map key as the kernel holds it: `typeof numgen inc mod M` makes nft store the 32-bit
/// register in host byte order (checked against nft in tests/netns_nfnl.rs).
pub fn slot_key(i: usize) -> Vec<u8> {
    (i as u32).to_ne_bytes().to_vec()
}

/// A slot map's contents from its raw elements (key bytes, data bytes): slot index → MAC
/// (`None`: empty slot). Elements that do not decode (wrong sizes) are left out.
pub fn slots_from_raw<'a>(
    elems: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    size: usize,
) -> Vec<Option<Mac>> {
    let mut slots = vec![None; size];
    for (k, d) in elems {
        let (Ok(k), Some(Ok(mac))) = (<[u8; 4]>::try_from(k), d.map(<[u8; 6]>::try_from)) else {
            continue;
        };
        if let Some(slot) = slots.get_mut(u32::from_ne_bytes(k) as usize) {
            *slot = Some(mac);
        }
    }
    slots
}

/// Make a service's slot map go from `old` to `new` in one transaction, as nft text (the
/// printable form of [`slot_delta`]; `lb run` sends the same change as one netlink batch).
pub fn render_slots(
    table: &str,
    s: &Svc,
    old: Option<&[Option<Mac>]>,
    new: &[Option<Mac>],
) -> String {
    let m = s.slot_map();
    let d = slot_delta(old, new);
    let mut o = String::new();
    if d.flush {
        let _ = writeln!(o, "flush map netdev {table} {m}");
    }
    let dels: Vec<String> = d.dels.iter().map(usize::to_string).collect();
    let adds: Vec<String> = d
        .adds
        .iter()
        .map(|(i, mac)| format!("{i} : {}", fmt_mac(mac)))
        .collect();
    // Chunks keep nft's parser from building one enormous expression.
    for chunk in dels.chunks(4096) {
        let _ = writeln!(
            o,
            "delete element netdev {table} {m} {{ {} }}",
            chunk.join(", ")
        );
    }
    for chunk in adds.chunks(4096) {
        let _ = writeln!(
            o,
            "add element netdev {table} {m} {{ {} }}",
            chunk.join(", ")
        );
    }
    o
}

/// Unpin flows (by key) from a service's flow map.
pub fn render_unpin(table: &str, s: &Svc, keys: &[(IpAddr, u16)]) -> String {
    let mut o = String::new();
    let items: Vec<String> = keys.iter().map(|(a, p)| format!("{p} . {a}")).collect();
    for chunk in items.chunks(4096) {
        let _ = writeln!(
            o,
            "delete element netdev {table} {} {{ {} }}",
            s.flow_map(),
            chunk.join(", ")
        );
    }
    o
}

/// Pinned flows from `nft -j list map netdev T f_…`: (client address, client port) → MAC.
pub fn parse_flows(doc: &Value) -> BTreeMap<(IpAddr, u16), Mac> {
    let mut out = BTreeMap::new();
    for (k, v) in map_elems(doc) {
        // Elements with a timeout come as {"elem": {"val": KEY, "timeout": …, "expires": …}}.
        let key = k.get("elem").and_then(|e| e.get("val")).unwrap_or(k);
        let Some([x, y]) = key
            .get("concat")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        else {
            continue;
        };
        // Port first as lbctl writes it; either order is read.
        let (a, p) = if x.is_number() { (y, x) } else { (x, y) };
        let (Some(a), Some(p), Some(mac)) = (
            a.as_str().and_then(|s| s.parse().ok()),
            p.as_u64().and_then(|p| u16::try_from(p).ok()),
            v.as_str().and_then(parse_mac),
        ) else {
            continue;
        };
        out.insert((a, p), mac);
    }
    out
}

/// Packet counters of the ingress jump rules (VIP:port → packets, bytes), from
/// `nft -j list chain netdev T ingress`.
/// A table's structure from a terse JSON listing: one line per chain (with hook and rule count)
/// and per map/set, sorted. Counters, handles and elements are left out, so it only changes
/// when the structure does.
pub fn shape(doc: &Value) -> Vec<String> {
    let mut rules: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for o in doc
        .get("nftables")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(c) = o.get("chain") {
            let name = c["name"].as_str().unwrap_or("").to_string();
            rules.entry(name.clone()).or_insert(0);
            if let Some(h) = c.get("hook").and_then(Value::as_str) {
                out.push(format!(
                    "hook {name} {h} {}",
                    c["dev"].as_str().unwrap_or("")
                ));
            }
        } else if let Some(r) = o.get("rule") {
            *rules
                .entry(r["chain"].as_str().unwrap_or("").to_string())
                .or_insert(0) += 1;
        } else if let Some(m) = o.get("map").or_else(|| o.get("set")) {
            out.push(format!("map {}", m["name"].as_str().unwrap_or("")));
        }
    }
    out.extend(
        rules
            .into_iter()
            .map(|(c, n)| format!("chain {c}: {n} rule(s)")),
    );
    out.sort();
    out
}

/// The (key, value) elements of the maps in an `nft -j list …` document.
pub fn map_elems(doc: &Value) -> impl Iterator<Item = (&Value, &Value)> {
    doc.get("nftables")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|o| o.get("map")?.get("elem")?.as_array())
        .flatten()
        .filter_map(|e| match e.as_array().map(Vec::as_slice) {
            Some([k, v]) => Some((k, v)),
            _ => None,
        })
}

/// Service id → (packets, bytes) from `nft -j list counters table netdev T` (the per-service
/// named counters `c_ID`).
pub fn parse_counters(doc: &Value) -> BTreeMap<String, (u64, u64)> {
    doc.get("nftables")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|o| {
            let c = o.get("counter")?;
            let id = c.get("name")?.as_str()?.strip_prefix("c_")?;
            Some((
                id.to_string(),
                (c.get("packets")?.as_u64()?, c.get("bytes")?.as_u64()?),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc() -> Svc {
        Svc {
            vip: "198.18.0.100".parse().unwrap(),
            port: 80,
            l4: L4::Tcp,
            size: 7,
        }
    }

    fn layout() -> Layout {
        Layout {
            table: table_name("web"),
            iface: "eth0".into(),
            lb_mac: [2, 0, 0, 0, 0, 2],
            seed: 0x4c42,
            flow_timeout_s: 300,
            flow_size: 1024,
            services: vec![svc()],
        }
    }

    #[test]
    fn ids_and_names() {
        assert_eq!(svc().id(), "198_18_0_100_tcp_80");
        let v6 = Svc {
            vip: "2001:db8::100".parse().unwrap(),
            l4: L4::Udp,
            port: 53,
            size: 7,
        };
        assert_eq!(v6.chain(), "s_2001_db8__100_udp_53");
        assert_eq!(table_name("lab.1@x"), "lbctl_lb_lab_1_x");
    }

    #[test]
    fn render_layout() {
        let t = layout().render(&BTreeMap::new());
        assert!(t.contains("add chain netdev lbctl_lb_web ingress { type filter hook ingress device \"eth0\" priority 100; policy accept; }"));
        assert!(t.contains("typeof tcp sport . ip saddr : ether daddr; size 1024; flags dynamic,timeout; timeout 300s;"));
        assert!(t.contains("jhash tcp sport . ip saddr mod 7 seed 0x4c42 map @m_198_18_0_100_tcp_80 update @f_198_18_0_100_tcp_80"));
        assert!(t.contains("add counter netdev lbctl_lb_web c_198_18_0_100_tcp_80"));
        assert!(
            t.contains("add set netdev lbctl_lb_web b_198_18_0_100_tcp_80 { typeof ether daddr;")
        );
        assert!(t.contains("update @n_198_18_0_100_tcp_80 { ether daddr } update @b_198_18_0_100_tcp_80 { ether daddr } fwd to"));
        assert!(t.contains("add rule netdev lbctl_lb_web ingress ip daddr 198.18.0.100 tcp dport 80 counter name c_198_18_0_100_tcp_80 jump s_198_18_0_100_tcp_80"));
        // Kept maps are not recreated; changed ones are; stale services are deleted.
        let l = layout();
        let same = BTreeMap::from([(svc().id(), l.map_signature(&svc()))]);
        let kept = l.render(&same);
        assert!(!kept.contains("map netdev lbctl_lb_web m_"), "{kept}");
        let changed = BTreeMap::from([(svc().id(), "old".to_string())]);
        assert!(l
            .render(&changed)
            .contains("delete map netdev lbctl_lb_web m_198_18_0_100_tcp_80\nadd map"));
        let stale = BTreeMap::from([("192_0_2_1_udp_53".to_string(), "x".to_string())]);
        assert!(l
            .render(&stale)
            .contains("delete chain netdev lbctl_lb_web s_192_0_2_1_udp_53\n"));
    }

    #[test]
    fn slot_diff_touches_only_changes() {
        let a = [2, 0, 0, 0, 0, 0x11];
        let b = [2, 0, 0, 0, 0, 0x12];
        let old = vec![Some(a), Some(b), Some(a)];
        let new = vec![Some(a), Some(a), None];
        let t = render_slots("T", &svc(), Some(&old), &new);
        assert_eq!(
            t,
            "delete element netdev T m_198_18_0_100_tcp_80 { 1, 2 }\n\
             add element netdev T m_198_18_0_100_tcp_80 { 1 : 02:00:00:00:00:11 }\n"
        );
        assert_eq!(render_slots("T", &svc(), Some(&new), &new), "");
        let full = render_slots("T", &svc(), None, &new);
        assert!(full.starts_with("flush map netdev T m_198_18_0_100_tcp_80\n"));
    }

    #[test]
    fn slot_delta_and_raw_elements() {
        let a = [2, 0, 0, 0, 0, 0x11];
        let b = [2, 0, 0, 0, 0, 0x12];
        let d = slot_delta(
            Some(&[Some(a), Some(b), None]),
            &[Some(a), Some(a), Some(b)],
        );
        assert_eq!(
            d,
            SlotDelta {
                flush: false,
                dels: vec![1],
                adds: vec![(1, a), (2, b)]
            }
        );
        let full = slot_delta(None, &[None, Some(b)]);
        assert!(full.flush && full.dels.is_empty() && full.adds == [(1, b)]);
        let k1 = slot_key(1);
        let k9 = slot_key(9);
        let raw: Vec<(&[u8], Option<&[u8]>)> = vec![
            (&k1, Some(&b[..])),
            (&k9, Some(&a[..])),         // beyond the size: ignored
            (&[1, 2][..], Some(&a[..])), // malformed key: ignored
        ];
        assert_eq!(slots_from_raw(raw, 3), vec![None, Some(b), None]);
    }

    #[test]
    fn flows_parse() {
        let doc: Value = serde_json::from_str(
            r#"{"nftables":[{"metainfo":{}},{"map":{"name":"f","elem":[
              [{"elem":{"val":{"concat":["198.18.0.10",40000]},"timeout":300,"expires":299}},"02:00:00:00:00:11"],
              [{"concat":[40001,"198.18.0.10"]},"02:00:00:00:00:12"]]}}]}"#,
        )
        .unwrap();
        let f = parse_flows(&doc);
        assert_eq!(f.len(), 2);
        assert_eq!(
            f[&("198.18.0.10".parse().unwrap(), 40000)],
            [2, 0, 0, 0, 0, 0x11]
        );
    }
}
