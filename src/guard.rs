//! Guard rails (issue 12): input that would hurt the host is refused before the first change,
//! with exit 2 and one line naming the conflict.
//!
//! Two kinds of checks live here:
//! * limits on what lbctl reads at all ([`read_capped`], [`validate_name`], [`cut_long_lines`]),
//!   applied before a file is parsed, so `plan -f /dev/zero` fails fast instead of growing;
//! * checks of a request against the live host ([`HostAddrs`], [`check_profile`], …): a VIP that
//!   is the host's own interface address, a gateway that is local, a routing table used by
//!   someone else's `ip rule`. They are plain functions over observed facts (the engine's
//!   [`Snapshot`]), so the logic is unit-tested without root; only [`check_sysctls_exist`]
//!   reads /proc/sys (through `sys::sysctl`).

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use crate::engine::Snapshot;
use crate::error::Result;
use crate::journal::State;
use crate::model::{AddrObj, Intent, RuleObj, SysctlKey};
use crate::plan::Owned;
use crate::usage;

/// Largest profile or LB file lbctl reads: 4 MiB. The largest documented profile, 10,000 VIPs
/// (`bench/run.sh`, P1c), is about 0.4 MB, so this leaves ten times that for comments and
/// ports, while `plan -f /dev/zero` (or a log file passed by mistake) stops after 4 MiB
/// instead of growing until the OOM killer.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// Longest profile / LB file name: it becomes a journal owner (`profile:NAME`), a file name
/// (`lb run` status) and a systemd instance name, so it must stay a short identifier.
pub const MAX_NAME_LEN: usize = 64;

/// Longest line of a parser error shown to the user (TOML errors quote the offending line).
pub const MAX_ERROR_LINE: usize = 200;

/// Most VIPs one profile may list: 16,384. lbctl is measured at 10,000 VIPs (one apply, one
/// nf_tables transaction); every VIP is an address the kernel keeps in a linear per-device list
/// (each add scans it) and an entry the journal rewrites on every apply, so far beyond the
/// measured scale apply time grows quadratically. Sixteen thousand keeps 60 % headroom over
/// what is measured; more VIPs belong in several profiles or on a balancer's nft engine.
pub const MAX_PROFILE_VIPS: usize = 16_384;

/// Read a text file of at most [`MAX_FILE_BYTES`]; `what` names it in errors ("profile").
/// Reads at most one byte past the cap, so a huge or endless file costs 4 MiB, not more.
pub fn read_capped(path: &Path, what: &str) -> Result<String> {
    let f = std::fs::File::open(path)
        .map_err(|e| usage!("cannot read {what} {}: {e}", path.display()))?;
    let mut buf = Vec::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| usage!("cannot read {what} {}: {e}", path.display()))?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(usage!(
            "{what} {} is larger than {} MiB; refusing to parse it",
            path.display(),
            MAX_FILE_BYTES >> 20
        ));
    }
    String::from_utf8(buf).map_err(|_| usage!("{what} {} is not UTF-8 text", path.display()))
}

/// A profile or LB file name: 1–64 of letters, digits, `-`, `_`, `.`, `@`, not starting with
/// a dot (names end up in file names).
pub fn validate_name(name: &str, what: &str) -> std::result::Result<(), String> {
    let shown = cut(name, 40);
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
    {
        return Err(format!(
            "invalid {what} name '{shown}': use 1-{MAX_NAME_LEN} letters, digits, '-', '_', '.', \
             '@' (not starting with '.')"
        ));
    }
    Ok(())
}

/// `s` cut to `max` characters, with `…` when something was cut.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Cut every line of a (parser) error message to about [`MAX_ERROR_LINE`] characters, so a TOML
/// error in a minified or binary file does not echo hundreds of kilobytes. A quoted source line
/// followed by its `^` marker line keeps a window around the marker, so the caret still points
/// at the error.
pub fn cut_long_lines(msg: &str) -> String {
    let lines: Vec<&str> = msg.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.chars().count() <= MAX_ERROR_LINE {
            out.push(l.to_string());
            i += 1;
            continue;
        }
        if let Some((src, caret)) = lines.get(i + 1).and_then(|c| caret_window(l, c)) {
            out.push(src);
            out.push(caret);
            i += 2;
            continue;
        }
        out.push(format!(
            "{} [line cut, {} bytes]",
            cut(l, MAX_ERROR_LINE),
            l.len()
        ));
        i += 1;
    }
    out.join("\n")
}

/// For a quoted source line (`N | text`) and its marker line (`  |   ^`), a window of the
/// source around the marker and the marker moved along with it.
fn caret_window(src: &str, marker: &str) -> Option<(String, String)> {
    let bar = src.find("| ")? + 2;
    let col = marker.find('^')?;
    if !marker[..col].chars().all(|c| c == ' ' || c == '|') || col < bar || !src.is_ascii() {
        return None;
    }
    let half = MAX_ERROR_LINE / 2;
    let start = col.saturating_sub(half).max(bar);
    let end = (col + half).min(src.len());
    let lead = if start > bar { "…" } else { "" };
    let tail = if end < src.len() { "…" } else { "" };
    let shift = col - start + lead.chars().count();
    Some((
        format!("{}{lead}{}{tail}", &src[..bar], &src[start..end]),
        format!("{}{}^", &marker[..bar], " ".repeat(shift)),
    ))
}

// ---------------------------------------------------------------------------------------------
// Checks against the host.
// ---------------------------------------------------------------------------------------------

/// One address configured on the host, and whether lbctl put it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddr {
    pub obj: AddrObj,
    /// Carries lbctl's protocol mark, or the journal records it as lbctl's.
    pub lbctl: bool,
}

/// The host's addresses, as the engine observed them.
#[derive(Debug, Clone, Default)]
pub struct HostAddrs(pub Vec<HostAddr>);

impl HostAddrs {
    /// From an observed address map (`obj → proto-76 mark`) and lbctl's journal.
    pub fn new(observed: &BTreeMap<AddrObj, bool>, owned: &Owned) -> HostAddrs {
        HostAddrs(
            observed
                .iter()
                .map(|(obj, marked)| HostAddr {
                    obj: obj.clone(),
                    lbctl: *marked || owned.addrs.contains(obj),
                })
                .collect(),
        )
    }

    /// From an engine snapshot and the journal.
    pub fn of(snap: &Snapshot, state: &State) -> HostAddrs {
        HostAddrs::new(&snap.observed.addrs, &state.owned)
    }

    /// Is `ip` configured on any interface (lbctl's VIPs included)?
    pub fn has(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|a| a.obj.addr == ip)
    }

    /// Refuse `ip` as a VIP or ARP-suppressed address when it is one of the host's own
    /// addresses (on an interface other than `lo`, not added by lbctl), or the network or
    /// broadcast address of a connected IPv4 subnet. A foreign host address on `lo` is a VIP
    /// someone configured by hand, which lbctl may suppress and leaves alone.
    pub fn check_service_addr(&self, ip: IpAddr, what: &str, hint: &str) -> Result<()> {
        for a in &self.0 {
            if a.obj.dev == "lo" || a.lbctl {
                continue;
            }
            if a.obj.addr == ip {
                return Err(usage!(
                    "{what} {ip} is {dev}'s own address ({ip}/{p}): the host would stop \
                     answering ARP for it{hint}; nothing was changed",
                    dev = a.obj.dev,
                    p = a.obj.prefix
                ));
            }
            if let (IpAddr::V4(v), IpAddr::V4(own)) = (ip, a.obj.addr) {
                if let Some(kind) = subnet_edge(v, own, a.obj.prefix) {
                    return Err(usage!(
                        "{what} {ip} is the {kind} address of {dev}'s subnet {net}; nothing was \
                         changed",
                        dev = a.obj.dev,
                        net = ipnet::Ipv4Net::new(own, a.obj.prefix)
                            .map(|n| n.trunc().to_string())
                            .unwrap_or_default()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Refuse a gateway that is one of this host's own addresses.
    pub fn check_gateway(&self, via: IpAddr, what: &str) -> Result<()> {
        if let Some(a) = self.0.iter().find(|a| a.obj.addr == via) {
            return Err(usage!(
                "{what} {via} is this host's own address (on {}); the gateway must be the next \
                 hop, e.g. the balancer-side router; nothing was changed",
                a.obj.dev
            ));
        }
        Ok(())
    }
}

/// "network" or "broadcast" when `ip` is that address of `own/prefix` (prefixes up to /30;
/// /31 and /32 have neither).
pub fn subnet_edge(ip: Ipv4Addr, own: Ipv4Addr, prefix: u8) -> Option<&'static str> {
    if prefix == 0 || prefix > 30 {
        return None;
    }
    let mask = u32::MAX << (32 - u32::from(prefix));
    let net = u32::from(own) & mask;
    let v = u32::from(ip);
    if v == net {
        Some("network")
    } else if v == net | !mask {
        Some("broadcast")
    } else {
        None
    }
}

/// One VIP, one policy table: refuse policy routing for `vip` in `table` when another owner's
/// intent, or any existing `ip rule from VIP`, already sends it to a different table.
/// `replacing` is the owner whose intent is being replaced (its old routes do not count).
pub fn check_one_table(
    vip: IpAddr,
    table: u32,
    intents: &BTreeMap<String, Intent>,
    rules: &BTreeMap<RuleObj, bool>,
    replacing: &str,
) -> Result<()> {
    for (owner, i) in intents {
        if owner == replacing {
            continue;
        }
        if let Some(r) = i.routes.iter().find(|r| r.vip == vip && r.table != table) {
            return Err(usage!(
                "{vip} already has policy routing in table {} (owner {owner}); a second table \
                 for the same VIP would never be used; remove it first (`lbctl route del {vip} \
                 --table {}`) or use table {}",
                r.table,
                r.table,
                r.table
            ));
        }
    }
    let mine = |t: u32| {
        intents
            .get(replacing)
            .is_some_and(|i| i.routes.iter().any(|r| r.vip == vip && r.table == t))
    };
    if let Some(r) = rules
        .keys()
        .find(|r| r.from == vip && r.from_len == crate::model::host_prefix(vip) && r.table != table)
    {
        if !mine(r.table) {
            return Err(usage!(
                "{vip} already has a rule `ip rule from {vip} lookup {}`; a second table for the \
                 same VIP would never be used; nothing was changed",
                r.table
            ));
        }
    }
    Ok(())
}

/// Refuse `table` when a rule lbctl did not create already uses it.
pub fn check_table_free(table: u32, snap: &Snapshot, what: &str) -> Result<()> {
    if snap.foreign_rule_tables.contains(&table) {
        return Err(usage!(
            "{what}: table {table} is already used by ip rules lbctl did not create; pick \
             another table"
        ));
    }
    Ok(())
}

/// Every sysctl key must exist under /proc/sys (a typo, or a key of a missing interface, would
/// otherwise be "in sync" forever). Reads /proc/sys of the current namespace.
pub fn check_sysctls_exist<'a>(keys: impl IntoIterator<Item = &'a SysctlKey>) -> Result<()> {
    for k in keys {
        if crate::sys::sysctl::read(k)?.is_none() {
            return Err(usage!("sysctl '{k}' does not exist here{}", sysctl_hint(k)));
        }
    }
    Ok(())
}

/// A hint for a missing key that looks like a dotted interface name split at its dot.
fn sysctl_hint(k: &SysctlKey) -> String {
    let parts: Vec<&str> = k.0.split('/').collect();
    if parts.len() > 5 && parts[2] == "conf" || parts.len() > 5 && parts[2] == "neigh" {
        let iface = parts[3..parts.len() - 1].join(".");
        return format!(
            " (for an interface with a dot in its name write the key as a path: \
             \"net/{}/{}/{iface}/{}\")",
            parts[1],
            parts[2],
            parts[parts.len() - 1]
        );
    }
    if parts.len() == 5 && (parts[2] == "conf" || parts[2] == "neigh") {
        return format!(" (is there an interface '{}'?)", parts[3]);
    }
    String::new()
}

/// Everything a profile is checked against on the live host, before `apply` (and `plan`, and
/// `watch`) changes anything. `state` is the journal before the profile's intent replaces its
/// old one.
pub fn check_profile(
    profile: &crate::profile::Profile,
    state: &State,
    snap: &Snapshot,
) -> Result<()> {
    let host = HostAddrs::of(snap, state);
    let owner = profile.owner();
    // Only the host's own addresses (not on lo, not lbctl's) can refuse a VIP, and lo holds
    // every VIP: checking against those alone keeps 10,000 VIPs from meeting 10,000 addresses.
    let own = HostAddrs(
        host.0
            .iter()
            .filter(|a| a.obj.dev != "lo" && !a.lbctl)
            .cloned()
            .collect(),
    );
    for v in &profile.intent.vips {
        own.check_service_addr(v.addr, "VIP", "")?;
    }
    for rip in profile
        .intent
        .arp_nft
        .values()
        .collect::<std::collections::BTreeSet<_>>()
    {
        if !host.has(IpAddr::V4(*rip)) {
            return Err(usage!(
                "arp.interface real_ip {rip} is on no interface: it must be this host's own \
                 address on the ARP-facing interface; nothing was changed"
            ));
        }
    }
    for r in &profile.intent.routes {
        host.check_gateway(r.via, "policy_routing.via")?;
        check_table_free(r.table, snap, "policy_routing")?;
        check_one_table(r.vip, r.table, &state.intents, &snap.observed.rules, &owner)?;
    }
    check_sysctls_exist(profile.intent.sysctls.keys())
}

/// `apply` of a profile with no objects while the same profile has objects applied: almost
/// always a truncated or emptied file, so refuse and point at `down`. `None` when fine.
pub fn empty_profile_refusal(
    profile: &crate::profile::Profile,
    state: &State,
    path: &Path,
) -> Option<String> {
    let old = state.intents.get(&profile.owner())?;
    if !profile.intent.is_empty() || old.is_empty() {
        return None;
    }
    let n = old.vips.len()
        + old.arp_nft.len()
        + old.arp_sysctl.len()
        + old.routes.len()
        + old.sysctls.len();
    Some(format!(
        "{} has no objects, but profile {} has {n} applied here; applying it would remove them \
         all (a truncated file?). To remove them, run `lbctl down -f {}`",
        path.display(),
        profile.name,
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PolicyRoute;

    fn addr(dev: &str, cidr: &str) -> AddrObj {
        let (a, p) = cidr.split_once('/').unwrap();
        AddrObj {
            dev: dev.parse().unwrap(),
            addr: a.parse().unwrap(),
            prefix: p.parse().unwrap(),
        }
    }

    fn host() -> HostAddrs {
        let mut observed = BTreeMap::new();
        observed.insert(addr("lo", "127.0.0.1/8"), false);
        observed.insert(addr("eth0", "192.0.2.11/24"), false);
        observed.insert(addr("eth1", "198.18.0.21/24"), false);
        observed.insert(addr("lo", "198.18.0.100/32"), true);
        observed.insert(addr("lo", "198.18.0.102/32"), false);
        observed.insert(addr("eth1", "198.18.0.103/32"), false);
        let mut owned = Owned::default();
        owned.addrs.insert(addr("eth1", "198.18.0.103/32"));
        HostAddrs::new(&observed, &owned)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn own_interface_addresses_are_not_vips() {
        let h = host();
        let e = h
            .check_service_addr(ip("192.0.2.11"), "VIP", "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("eth0's own address"), "{e}");
        assert!(h.check_service_addr(ip("198.18.0.21"), "VIP", "").is_err());
        // lbctl's own VIPs, marked or journalled, and hand-made VIPs on lo are fine.
        for ok in [
            "198.18.0.100",
            "198.18.0.102",
            "198.18.0.103",
            "198.18.0.50",
        ] {
            h.check_service_addr(ip(ok), "VIP", "").unwrap();
        }
    }

    #[test]
    fn network_and_broadcast_addresses_are_refused() {
        let h = host();
        for (bad, kind) in [("192.0.2.0", "network"), ("198.18.0.255", "broadcast")] {
            let e = h
                .check_service_addr(ip(bad), "VIP", "")
                .unwrap_err()
                .to_string();
            assert!(e.contains(kind), "{e}");
        }
        assert_eq!(
            subnet_edge("10.0.0.1".parse().unwrap(), "10.0.0.0".parse().unwrap(), 31),
            None
        );
        assert_eq!(
            subnet_edge("10.0.0.3".parse().unwrap(), "10.0.0.1".parse().unwrap(), 30),
            Some("broadcast")
        );
    }

    #[test]
    fn gateways_are_not_local() {
        let h = host();
        assert!(h.check_gateway(ip("192.0.2.11"), "--via").is_err());
        assert!(h.check_gateway(ip("198.18.0.100"), "--via").is_err());
        h.check_gateway(ip("192.0.2.1"), "--via").unwrap();
    }

    #[test]
    fn one_table_per_vip() {
        let vip = ip("198.18.0.100");
        let mut intents = BTreeMap::new();
        let mut i = Intent::default();
        i.routes.insert(PolicyRoute {
            vip,
            table: 100,
            via: ip("198.18.0.1"),
            dev: "eth0".parse().unwrap(),
            priority: 100,
        });
        intents.insert("cli".to_string(), i);
        let rules = BTreeMap::new();
        assert!(check_one_table(vip, 101, &intents, &rules, "profile:x").is_err());
        check_one_table(vip, 100, &intents, &rules, "profile:x").unwrap();
        check_one_table(vip, 101, &intents, &rules, "cli").unwrap();
        let mut rules = BTreeMap::new();
        rules.insert(
            RuleObj {
                priority: 50,
                from: vip,
                from_len: 32,
                table: 7,
            },
            false,
        );
        let e = check_one_table(vip, 100, &BTreeMap::new(), &rules, "cli")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lookup 7"), "{e}");
    }

    #[test]
    fn names_and_long_lines() {
        validate_name("web-1.prod@x", "profile").unwrap();
        for bad in ["", ".hidden", "a/b", "a b", &"x".repeat(65)] {
            assert!(validate_name(bad, "profile").is_err(), "{bad}");
        }
        let long = "y".repeat(100_000);
        let e = validate_name(&long, "profile").unwrap_err();
        assert!(e.len() < 200, "{e}");
        let msg = format!("TOML parse error\n{long}\nend");
        let cut = cut_long_lines(&msg);
        assert!(cut.len() < 400, "{}", cut.len());
        assert!(cut.contains("line cut"));
        assert!(cut.starts_with("TOML parse error\n"));
        assert!(cut.ends_with("\nend"));
        // A quoted line keeps its caret under the error.
        let src = format!("1 | {}X{}", "a".repeat(5000), "b".repeat(5000));
        let marker = format!("  | {}^", " ".repeat(5000));
        let cut = cut_long_lines(&format!("err\n{src}\n{marker}\nwhy"));
        let lines: Vec<&str> = cut.lines().collect();
        assert_eq!(lines.len(), 4, "{cut}");
        assert!(lines[1].chars().count() < MAX_ERROR_LINE + 10, "{cut}");
        let caret = lines[2].chars().position(|c| c == '^').unwrap();
        assert_eq!(lines[1].chars().nth(caret), Some('X'), "{cut}");
    }

    #[test]
    fn capped_reads() {
        let e = read_capped(Path::new("/dev/zero"), "profile")
            .unwrap_err()
            .to_string();
        assert!(e.contains("larger than 4 MiB"), "{e}");
    }

    #[test]
    fn sysctl_hints() {
        let k = SysctlKey("net/ipv4/conf/eth0/100/rp_filter".into());
        assert!(sysctl_hint(&k).contains("net/ipv4/conf/eth0.100/rp_filter"));
        let k = SysctlKey("net/ipv4/conf/nosuch0/rp_filter".into());
        assert!(sysctl_hint(&k).contains("interface 'nosuch0'"));
    }
}
