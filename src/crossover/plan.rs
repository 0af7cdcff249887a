//! The cross-over address plan (pure): N servers, one internal address per ordered pair
//! (primary, secondary) — N(N-1) addresses — or, with three tiers, per ordered triple (primary,
//! secondary, tertiary) — N(N-1)(N-2). Every address has exactly one server per tier and no
//! server twice; a failed server's addresses fall to each survivor equally often (one pair per
//! survivor), and with three tiers a double failure {a, b} also spreads evenly: the addresses
//! whose primary *and* secondary failed are exactly the triples (a, b, t) and (b, a, t), one
//! pair per survivor t.
//!
//! Also here: the router's side (iproute2 multipath lines, a BIRD 2 static protocol), each
//! server's agent config, and the load every server carries after any one or two failures —
//! computed by simulating every failure set, not assumed.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// The largest plan `crossover plan` makes (8 servers, 3 tiers: 336 addresses).
pub const MAX_SERVERS: usize = 16;

/// One internal address and the servers (1-based indexes) that hold it, in tier order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub addr: Ipv4Addr,
    /// `[primary, secondary]` or `[primary, secondary, tertiary]` (1-based server indexes).
    pub tiers: Vec<usize>,
}

/// The whole table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub servers: usize,
    pub tiers: usize,
    pub addrs: Vec<Assignment>,
}

/// What `crossover plan` was asked for.
#[derive(Debug, Clone)]
pub struct Request {
    pub servers: usize,
    pub tiers: usize,
    /// Internal ranges the addresses come from, used in order.
    pub ranges: Vec<Ipv4Net>,
}

/// The number of addresses a plan of `servers` × `tiers` needs.
pub fn needed(servers: usize, tiers: usize) -> usize {
    match tiers {
        3 => servers * servers.saturating_sub(1) * servers.saturating_sub(2),
        _ => servers * servers.saturating_sub(1),
    }
}

/// Usable host addresses of a range: all but the network and broadcast address (a /31 or /32
/// has no such addresses).
fn hosts(n: &Ipv4Net) -> impl Iterator<Item = Ipv4Addr> {
    n.hosts()
}

/// Ranges that overlap: the first pair found, as a message.
pub fn overlap(ranges: &[(String, Ipv4Net)]) -> Option<String> {
    for (i, (wa, a)) in ranges.iter().enumerate() {
        for (wb, b) in &ranges[i + 1..] {
            if a.contains(&b.network()) || b.contains(&a.network()) {
                return Some(format!("{wa} {a} overlaps {wb} {b}"));
            }
        }
    }
    None
}

/// Check the request and build the table.
pub fn build(req: &Request) -> Result<Table, String> {
    let n = req.servers;
    match req.tiers {
        2 if n < 2 => return Err(format!("--servers {n}: two tiers need at least 2 servers")),
        3 if n < 3 => {
            return Err(format!(
                "--servers {n}: three tiers need at least 3 servers (a tertiary differs from \
                 both the primary and the secondary)"
            ))
        }
        2 | 3 => {}
        t => return Err(format!("--tiers {t}: must be 2 or 3")),
    }
    if n > MAX_SERVERS {
        return Err(format!("--servers {n}: at most {MAX_SERVERS}"));
    }
    if req.ranges.is_empty() {
        return Err("give the internal range: --range CIDR".into());
    }
    let named: Vec<(String, Ipv4Net)> = req
        .ranges
        .iter()
        .map(|r| ("--range".to_string(), *r))
        .collect();
    if let Some(m) = overlap(&named) {
        return Err(m);
    }
    let want = needed(n, req.tiers);
    let pool: Vec<Ipv4Addr> = req.ranges.iter().flat_map(hosts).take(want).collect();
    if pool.len() < want {
        let ranges: Vec<String> = req.ranges.iter().map(|r| r.to_string()).collect();
        return Err(format!(
            "{} has {} usable address(es); {n} servers with {} tiers need {want} \
             (N(N-1){}): give a larger --range",
            ranges.join(" + "),
            req.ranges.iter().map(|r| hosts(r).count()).sum::<usize>(),
            req.tiers,
            if req.tiers == 3 { "(N-2)" } else { "" }
        ));
    }
    let mut tiers_list = Vec::with_capacity(want);
    for p in 1..=n {
        for s in (1..=n).filter(|s| *s != p) {
            if req.tiers == 3 {
                for t in (1..=n).filter(|t| *t != p && *t != s) {
                    tiers_list.push(vec![p, s, t]);
                }
            } else {
                tiers_list.push(vec![p, s]);
            }
        }
    }
    let t = Table {
        servers: n,
        tiers: req.tiers,
        addrs: pool
            .into_iter()
            .zip(tiers_list)
            .map(|(addr, tiers)| Assignment { addr, tiers })
            .collect(),
    };
    check(&t)?;
    Ok(t)
}

/// The seed's invariants, for a table built here or read from a config file: every address once,
/// one server per tier, all in 1..=servers, no server twice for an address, and one failure's
/// addresses spread over all survivors evenly.
pub fn check(t: &Table) -> Result<(), String> {
    if !(2..=3).contains(&t.tiers) {
        return Err(format!("tiers = {}: must be 2 or 3", t.tiers));
    }
    if t.servers < t.tiers {
        return Err(format!(
            "{} server(s) cannot fill {} tiers",
            t.servers, t.tiers
        ));
    }
    let mut seen = BTreeSet::new();
    for a in &t.addrs {
        if !seen.insert(a.addr) {
            return Err(format!("address {} appears twice", a.addr));
        }
        if a.tiers.len() != t.tiers {
            return Err(format!(
                "address {}: {} server(s) listed, the plan has {} tiers",
                a.addr,
                a.tiers.len(),
                t.tiers
            ));
        }
        if let Some(bad) = a.tiers.iter().find(|s| **s == 0 || **s > t.servers) {
            return Err(format!(
                "address {}: server {bad} does not exist (servers are 1…{})",
                a.addr, t.servers
            ));
        }
        let distinct: BTreeSet<_> = a.tiers.iter().collect();
        if distinct.len() != a.tiers.len() {
            return Err(format!(
                "address {}: a server appears twice in {:?}",
                a.addr, a.tiers
            ));
        }
    }
    for f in 1..=t.servers {
        let l = loads(t, &[f]);
        let gained: Vec<usize> = (1..=t.servers)
            .filter(|s| *s != f)
            .map(|s| l.served[s - 1] - primaries(t, s))
            .collect();
        let (min, max) = min_max(&gained);
        if max != min || min == 0 {
            return Err(format!(
                "when s{f} fails its addresses do not spread evenly over the other servers \
                 (each gains {min}…{max})"
            ));
        }
    }
    Ok(())
}

fn primaries(t: &Table, s: usize) -> usize {
    t.addrs.iter().filter(|a| a.tiers[0] == s).count()
}

fn min_max(v: &[usize]) -> (usize, usize) {
    (
        v.iter().copied().min().unwrap_or(0),
        v.iter().copied().max().unwrap_or(0),
    )
}

/// Who serves what while the servers in `failed` are down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loads {
    /// Addresses each server serves (index s-1; 0 for a failed server).
    pub served: Vec<usize>,
    /// Addresses nobody serves (every tier failed).
    pub unserved: usize,
}

/// Simulate one failure set: every address goes to its first tier that did not fail.
pub fn loads(t: &Table, failed: &[usize]) -> Loads {
    let mut served = vec![0; t.servers];
    let mut unserved = 0;
    for a in &t.addrs {
        match a.tiers.iter().find(|s| !failed.contains(s)) {
            Some(s) => served[s - 1] += 1,
            None => unserved += 1,
        }
    }
    Loads { served, unserved }
}

/// The spread over every failure set of one size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Spread {
    pub failed: usize,
    /// Failure sets simulated.
    pub cases: usize,
    /// Fewest and most addresses a surviving server serves, over every case.
    pub min: usize,
    pub max: usize,
    /// The most addresses left unserved in any case.
    pub unserved_max: usize,
}

/// Simulate every failure set of `k` servers (k = 0, 1, 2).
pub fn spread(t: &Table, k: usize) -> Option<Spread> {
    if k >= t.servers {
        return None;
    }
    let sets: Vec<Vec<usize>> = match k {
        0 => vec![vec![]],
        1 => (1..=t.servers).map(|a| vec![a]).collect(),
        _ => (1..=t.servers)
            .flat_map(|a| ((a + 1)..=t.servers).map(move |b| vec![a, b]))
            .collect(),
    };
    let mut all = Vec::new();
    let mut unserved_max = 0;
    for f in &sets {
        let l = loads(t, f);
        unserved_max = unserved_max.max(l.unserved);
        all.extend(
            (1..=t.servers)
                .filter(|s| !f.contains(s))
                .map(|s| l.served[s - 1]),
        );
    }
    let (min, max) = min_max(&all);
    Some(Spread {
        failed: k,
        cases: sets.len(),
        min,
        max,
        unserved_max,
    })
}

/// Server `s`'s addresses in tier `tier` (0 primary, 1 secondary, 2 tertiary).
pub fn of_server(t: &Table, s: usize, tier: usize) -> Vec<Ipv4Addr> {
    t.addrs
        .iter()
        .filter(|a| a.tiers.get(tier) == Some(&s))
        .map(|a| a.addr)
        .collect()
}

/// Server `s`'s name.
pub fn name(s: usize) -> String {
    format!("s{s}")
}

/// Router-side inputs.
#[derive(Debug, Clone)]
pub struct Router {
    /// The public ranges routed over all internal addresses.
    pub public: Vec<Ipv4Net>,
    /// The router's interface on the servers' segment.
    pub dev: String,
}

/// The most nexthops one route can carry here: iproute2 6.1 builds RTA_MULTIPATH in a
/// 4096-byte buffer (16 bytes per gateway nexthop; 254 already fails), and BIRD 2.0.12 did not
/// install a 336-nexthop static route either (210 worked).
pub const MAX_ROUTE_NEXTHOPS: usize = 250;

/// The router's lines (iproute2 6.1): L4 multipath hashing, the internal ranges on-link, one
/// multipath route per public range over every internal address. A plan with more than
/// [`MAX_ROUTE_NEXTHOPS`] addresses (8 servers with 3 tiers) gets a comment instead.
pub fn router_lines(t: &Table, internal: &[Ipv4Net], r: &Router) -> Vec<String> {
    let mut v = vec!["sysctl -w net.ipv4.fib_multipath_hash_policy=1".to_string()];
    for n in internal {
        v.push(format!("ip route replace {n} dev {} scope link", r.dev));
    }
    if t.addrs.len() > MAX_ROUTE_NEXTHOPS && !r.public.is_empty() {
        v.push(format!(
            "# {} nexthops: more than one route can carry ({MAX_ROUTE_NEXTHOPS}); use at most \
             7 servers with --tiers 3",
            t.addrs.len()
        ));
        return v;
    }
    for p in &r.public {
        let mut l = format!("ip route replace {p}");
        for a in &t.addrs {
            let _ = write!(l, " nexthop via {} dev {}", a.addr, r.dev);
        }
        v.push(l);
    }
    v
}

/// What every server needs besides the agent: the public range delivered locally (the router
/// forwards public addresses to an internal address's MAC; nobody ARPs for them).
pub fn server_lines(r: &Router) -> Vec<String> {
    r.public
        .iter()
        .map(|p| format!("ip route replace local {p} dev lo"))
        .collect()
}

/// A BIRD 2 config for the router: the internal ranges on-link and one multipath static route
/// per public range, exported to the kernel.
pub fn bird_config(t: &Table, internal: &[Ipv4Net], r: &Router) -> String {
    let mut s = String::from(
        "# BIRD 2: cross-over routes (lbctl crossover plan)\n\
         protocol device {}\n\
         protocol kernel {\n  ipv4 { export all; };\n}\n\
         protocol static crossover {\n  ipv4;\n",
    );
    for n in internal {
        let _ = writeln!(s, "  route {n} via \"{}\";", r.dev);
    }
    if t.addrs.len() > MAX_ROUTE_NEXTHOPS {
        let _ = writeln!(
            s,
            "  # {} nexthops: more than one route can carry ({MAX_ROUTE_NEXTHOPS})",
            t.addrs.len()
        );
    }
    for p in r
        .public
        .iter()
        .filter(|_| t.addrs.len() <= MAX_ROUTE_NEXTHOPS)
    {
        let _ = write!(s, "  route {p}");
        for a in &t.addrs {
            let _ = write!(s, "\n    via {}%{} onlink", a.addr, r.dev);
        }
        s.push_str(";\n");
    }
    s.push_str("}\n");
    s
}

/// Timers and interface of the agent, as written into each server's config.
#[derive(Debug, Clone)]
pub struct AgentDefaults {
    pub interface: String,
    pub heartbeat: &'static str,
    pub secondary_timeout: &'static str,
    pub tertiary_timeout: &'static str,
}

impl Default for AgentDefaults {
    fn default() -> Self {
        AgentDefaults {
            interface: "eth0".into(),
            heartbeat: "100ms",
            secondary_timeout: "350ms",
            tertiary_timeout: "700ms",
        }
    }
}

/// Server `s`'s agent config (TOML, for `lbctl crossover run -c`).
pub fn agent_config(t: &Table, s: usize, d: &AgentDefaults, cmdline: &str) -> String {
    let mut c = format!(
        "# lbctl crossover agent config for {} — from `{cmdline}`\n\
         server = {s}\n\
         servers = {}\n\
         tiers = {}\n\
         interface = \"{}\"\n\
         heartbeat = \"{}\"\n\
         secondary_timeout = \"{}\"\n",
        name(s),
        t.servers,
        t.tiers,
        d.interface,
        d.heartbeat,
        d.secondary_timeout,
    );
    if t.tiers == 3 {
        let _ = writeln!(c, "tertiary_timeout = \"{}\"", d.tertiary_timeout);
    }
    c.push_str(
        "\n# Optional: this server's own service. While it fails, the agent releases every\n\
         # address and claims none (same keys as an LB file's [service.check]).\n\
         # check_address = \"127.0.0.1\"   # where the check connects (the default)\n\
         # [check]\n# type = \"http\"\n# port = 80\n# path = \"/\"\n# interval = \"200ms\"\n",
    );
    for a in &t.addrs {
        let tiers: Vec<String> = a.tiers.iter().map(|x| x.to_string()).collect();
        let _ = write!(
            c,
            "\n[[address]]\naddr = \"{}\"\ntiers = [{}]\n",
            a.addr,
            tiers.join(", ")
        );
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(n: usize, tiers: usize, range: &str) -> Request {
        Request {
            servers: n,
            tiers,
            ranges: vec![range.parse().unwrap()],
        }
    }

    #[test]
    fn two_tiers_pairs() {
        let t = build(&req(3, 2, "198.18.1.0/24")).unwrap();
        assert_eq!(t.addrs.len(), 6);
        assert_eq!(t.addrs[0].addr, Ipv4Addr::new(198, 18, 1, 1));
        assert_eq!(t.addrs[0].tiers, vec![1, 2]);
        assert_eq!(of_server(&t, 1, 0).len(), 2);
        assert_eq!(of_server(&t, 1, 1).len(), 2);
        // One failure: each survivor serves its 2 + 1 of the failed server's.
        let s1 = spread(&t, 1).unwrap();
        assert_eq!((s1.min, s1.max, s1.unserved_max, s1.cases), (3, 3, 0, 3));
        // Two failures with two tiers: the pair (a, b), (b, a) is lost.
        let s2 = spread(&t, 2).unwrap();
        assert_eq!((s2.min, s2.max, s2.unserved_max), (4, 4, 2));
    }

    #[test]
    fn three_tiers_spread_double_failures_evenly() {
        for n in 3..=8 {
            let t = build(&req(n, 3, "198.18.0.0/22")).unwrap();
            assert_eq!(t.addrs.len(), n * (n - 1) * (n - 2));
            let s2 = spread(&t, 2).unwrap();
            assert_eq!(s2.unserved_max, 0, "n={n}");
            assert_eq!(s2.min, s2.max, "n={n}: double failures spread evenly");
            assert_eq!(s2.max * (n - 2), t.addrs.len());
            let s1 = spread(&t, 1).unwrap();
            assert_eq!(s1.min, s1.max);
            assert_eq!(s1.max * (n - 1), t.addrs.len());
        }
    }

    #[test]
    fn bad_requests() {
        assert!(build(&req(1, 2, "198.18.1.0/24"))
            .unwrap_err()
            .contains("at least 2"));
        assert!(build(&req(2, 3, "198.18.1.0/24"))
            .unwrap_err()
            .contains("at least 3"));
        let e = build(&req(4, 2, "198.18.1.0/29")).unwrap_err();
        assert!(e.contains("has 6 usable") && e.contains("need 12"), "{e}");
        let mut r = req(3, 2, "198.18.1.0/24");
        r.ranges.push("198.18.1.128/25".parse().unwrap());
        assert!(build(&r).unwrap_err().contains("overlaps"));
        // Two ranges are used in order; /31 and /32 give every address.
        let mut r = req(3, 2, "198.18.1.0/31");
        r.ranges.push("198.18.2.0/30".parse().unwrap());
        r.ranges.push("198.18.3.7/32".parse().unwrap());
        r.ranges.push("198.18.3.8/32".parse().unwrap());
        let t = build(&r).unwrap();
        let got: Vec<String> = t.addrs.iter().map(|a| a.addr.to_string()).collect();
        assert_eq!(
            got,
            [
                "198.18.1.0",
                "198.18.1.1",
                "198.18.2.1",
                "198.18.2.2",
                "198.18.3.7",
                "198.18.3.8"
            ]
        );
    }

    #[test]
    fn check_rejects_broken_tables() {
        let mut t = build(&req(3, 2, "198.18.1.0/24")).unwrap();
        t.addrs[0].tiers = vec![1, 4];
        assert!(check(&t).unwrap_err().contains("server 4 does not exist"));
        t.addrs[0].tiers = vec![1, 1];
        assert!(check(&t).unwrap_err().contains("twice"));
        t.addrs[0].tiers = vec![1, 3];
        assert!(check(&t).unwrap_err().contains("spread evenly"));
        let mut t = build(&req(3, 2, "198.18.1.0/24")).unwrap();
        t.addrs[1].addr = t.addrs[0].addr;
        assert!(check(&t).unwrap_err().contains("appears twice"));
    }

    #[test]
    fn router_side() {
        let t = build(&req(3, 2, "198.18.1.0/24")).unwrap();
        let r = Router {
            public: vec!["198.18.100.0/24".parse().unwrap()],
            dev: "eth0".into(),
        };
        let l = router_lines(&t, &["198.18.1.0/24".parse().unwrap()], &r);
        assert_eq!(l[1], "ip route replace 198.18.1.0/24 dev eth0 scope link");
        assert!(l[2].starts_with(
            "ip route replace 198.18.100.0/24 nexthop via 198.18.1.1 dev eth0 nexthop via"
        ));
        assert_eq!(l[2].matches("nexthop").count(), 6);
        let b = bird_config(&t, &["198.18.1.0/24".parse().unwrap()], &r);
        assert_eq!(b.matches("    via 198.18.1.").count(), 6);
    }

    #[test]
    fn agent_config_lists_the_table() {
        let t = build(&req(3, 3, "198.18.1.0/24")).unwrap();
        let c = agent_config(&t, 2, &AgentDefaults::default(), "lbctl crossover plan");
        assert!(c.contains("server = 2\nservers = 3\ntiers = 3\n"));
        assert!(c.contains("tertiary_timeout"));
        assert_eq!(c.matches("[[address]]").count(), 6);
    }
}
