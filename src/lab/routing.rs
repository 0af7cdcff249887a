//! Routed labs: more than one balancer behind an upstream router (`lab up --balancers K
//! --routing bgp`, issue 16).
//!
//! ```text
//! client 198.18.1.10 ── cl 198.18.1.1 router 198.18.0.1 ── br0 ──┬─ lb1 198.18.0.2 (AS 65001)
//!        (default via the router)   (AS 65000, BIRD 2,     ├─ lb2 198.18.0.3 (AS 65002) …
//!                                    merge paths, ECMP)    ├─ be1 198.18.0.11
//!                                                          └─ be2 198.18.0.12 …
//! VIP 198.18.2.100:80, outside the balancer segment (PLATFORM §11: an on-link VIP keeps being
//! reached by ARP after a withdrawal), so the router reaches it only through BGP routes.
//! ```
//!
//! - The router runs BIRD 2 with its own config, socket and pid file in the lab's directory,
//!   `merge paths on` in `protocol kernel`, BFD towards each balancer, and in its namespace
//!   `fib_multipath_hash_policy=3` + `fib_multipath_hash_fields=0x0037` (L4 hash on the
//!   addresses, protocol and ports: deterministic on veths, unlike policy 1 — PLATFORM §11).
//! - Each balancer `lbK` runs the real `lbctl lb run` with a `[bgp]` section (AS 65000+K)
//!   peering with the router; all share the same services, so their Maglev tables agree.
//! - Backends reply through the router (their default gateway 198.18.0.1 exists here): DSR,
//!   the balancers only see the client's packets. Each backend's eth0 is paced by `tc … tbf`
//!   ([`PACE`]) so `lab traffic --long N` downloads last seconds and survive a `lab break`.
//!
//! Faults for balancers ([`BalancerFault`]): `down` is a crash drill (SIGKILL of the
//! balancer's recorded `lb run`: its TUN gate vanishes, BIRD withdraws), `drain` a graceful stop
//! (SIGTERM: `lb run` withdraws first, then removes its data path).

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::build::{self, lbctl_cmd, log_tail, nft_in, ns_of, spawn_recorded};
use super::state::{LabState, StateDir};
use super::topology::{self, Engine, Node, Role, HOST_IF};
use super::{http, process, signals, PORT, STOP_GRACE};
use crate::error::{Error, Result};
use crate::sys::netns;
use crate::usage;

/// How a lab with several balancers shares the VIP between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Routing {
    /// Each balancer announces the VIPs by BGP (BIRD 2 started by `lb run`); the router spreads
    /// flows over them with ECMP.
    Bgp,
    /// No router: the balancers sit on the lab segment with the on-link VIP 198.18.0.100 and
    /// keepalived (the LB file's `[ha]`, unicast peers) gives it to the MASTER ([`super::vrrp`]).
    Vrrp,
}

impl Routing {
    pub fn as_str(self) -> &'static str {
        match self {
            Routing::Bgp => "bgp",
            Routing::Vrrp => "vrrp",
        }
    }
}

/// What a routed lab adds to a [`super::LabSpec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutingSpec {
    pub routing: Routing,
    /// Number of balancers, 1..=[`MAX_BALANCERS`].
    pub balancers: u8,
}

/// Most balancers a routed lab can have.
pub const MAX_BALANCERS: u8 = 4;
/// The VIP of a routed lab (outside the balancer segment).
pub const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 100);
/// The router's address on the balancer segment (the backends' default gateway).
pub const ROUTER4: Ipv4Addr = topology::GATEWAY4;
/// The router's address towards the client.
pub const ROUTER_CLIENT4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
/// The client's address.
pub const CLIENT4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
/// The router's interface towards the client.
pub const CLIENT_LINK: &str = "cl";
/// The router's AS; balancer K is AS 65000+K.
pub const ROUTER_ASN: u32 = 65000;
/// Each backend's eth0 rate (`tc qdisc … tbf`), so long downloads take seconds.
pub const PACE: &str = "4mbit";
/// How long `up` waits for the balancers to be ready and announced.
const ANNOUNCE_WAIT: Duration = Duration::from_secs(30);
/// How long a `lab break lbN` waits for the router to drop the balancer's route.
const WITHDRAW_WAIT: Duration = Duration::from_secs(15);

/// Balancer `lbK`'s AS.
pub fn balancer_asn(k: u8) -> u32 {
    ROUTER_ASN + u32::from(k)
}

/// Check a routed request without touching the system.
pub fn validate(r: &RoutingSpec, ipv6: bool, profile: bool, start_balancer: bool) -> Result<()> {
    if !(1..=MAX_BALANCERS).contains(&r.balancers) {
        return Err(usage!(
            "--balancers must be between 1 and {MAX_BALANCERS} (got {})",
            r.balancers
        ));
    }
    let unsupported = [
        (ipv6, "--ipv6"),
        (profile, "--profile"),
        (!start_balancer, "--no-balancer"),
    ];
    if let Some((_, flag)) = unsupported.iter().find(|(on, _)| *on) {
        return Err(usage!(
            "{flag} is not available with --routing {} (the routed lab is IPv4, with backends \
             configured by `arp suppress` + `vip add` and balancers started by the lab)",
            r.routing.as_str()
        ));
    }
    Ok(())
}

/// The routed lab's nodes, in creation order: switch, client, router, balancers, backends.
pub fn plan(lab: &str, backends: u8, r: &RoutingSpec) -> Vec<Node> {
    let base = topology::plan(lab, backends, false);
    if r.routing == Routing::Vrrp {
        return super::vrrp::plan(base, lab, r.balancers);
    }
    let mut v: Vec<Node> = Vec::new();
    for n in base {
        match n.role {
            Role::Client => v.push(Node {
                ipv4: Some(CLIENT4),
                ..n
            }),
            Role::Balancer => {
                v.push(Node {
                    node: "router".into(),
                    role: Role::Router,
                    ns: topology::ns_name(lab, "router"),
                    ipv4: Some(ROUTER4),
                    ipv6: None,
                    mac: Some("02:00:00:00:00:01".into()),
                });
                for k in 1..=r.balancers {
                    let name = format!("lb{k}");
                    v.push(Node {
                        ns: topology::ns_name(lab, &name),
                        node: name,
                        role: Role::Balancer,
                        ipv4: Some(Ipv4Addr::new(198, 18, 0, 1 + k)),
                        ipv6: None,
                        mac: Some(format!("02:00:00:00:00:{:02x}", 1 + k)),
                    });
                }
            }
            _ => v.push(n),
        }
    }
    v
}

/// Is `n` plugged into the switch? (The client of a routed lab hangs off the router.)
pub(super) fn on_switch(st: &LabState, n: &Node) -> bool {
    let behind_router = st.routing == Some(Routing::Bgp) || st.crossover.is_some();
    n.role != Role::Switch && !(behind_router && n.role == Role::Client)
}

/// The IPv4 VIP of a lab.
pub fn vip4(routing: Option<Routing>) -> Ipv4Addr {
    match routing {
        Some(Routing::Bgp) => VIP4,
        Some(Routing::Vrrp) | None => topology::VIP4,
    }
}

pub(super) fn balancers(st: &LabState) -> Vec<Node> {
    st.nodes
        .iter()
        .filter(|n| n.role == Role::Balancer)
        .cloned()
        .collect()
}

/// The LB file of balancer `lbK`: the lab's services plus `[bgp]` towards the router.
pub fn lb_file(lab: &str, engine: Engine, nodes: &[Node], k: u8) -> String {
    let mut out = format!(
        "# Written by `lbctl lab up --routing bgp` for lab \"{lab}\" (balancer lb{k}); removed by \
         `lbctl lab down`.\n\
         name = \"{lab}\"\n\n\
         [balancer]\n\
         engine = \"{}\"\n\
         interface = \"{HOST_IF}\"\n\n\
         [bgp]\n\
         asn = {}\n\
         bfd_interval = \"200ms\"   # 100 ms x 3 flaps on a loaded machine\n\
         bfd_multiplier = 5\n\n\
         [[bgp.neighbor]]\n\
         address = \"{ROUTER4}\"\n\
         asn = {ROUTER_ASN}\n\n\
         [[service]]\n\
         vip = \"{}\"\n\
         protocol = \"tcp\"\n\
         scheduler = \"mh\"\n\n\
         [service.check]\n\
         type = \"http\"\n\
         path = \"/\"\n\
         expect_status = 200\n\
         interval = \"1s\"\n\
         timeout = \"900ms\"\n\
         rise = 1\n\
         fall = 5                  # paced backends: a slow answer is not a dead backend\n",
        engine.as_str(),
        balancer_asn(k),
        topology::vip_port(IpAddr::V4(VIP4)),
    );
    for n in nodes.iter().filter(|n| n.role == Role::Backend) {
        if let Some(rip) = n.ipv4 {
            out.push_str(&format!(
                "\n[[service.backend]]\nrip = \"{rip}\"\nweight = 1\n"
            ));
        }
    }
    out
}

/// The router's BIRD configuration.
pub fn router_bird_conf(lab: &str, nodes: &[Node]) -> String {
    let mut out = format!(
        "# Written by `lbctl lab up --routing bgp` for lab \"{lab}\" (the router).\n\
         router id {ROUTER4};\n\
         log stderr all;\n\
         protocol device {{ }}\n\
         protocol bfd {{ }}\n\
         protocol kernel {{\n  ipv4 {{ import none; export where source = RTS_BGP; }};\n  merge paths on;\n}}\n\
         template bgp balancer {{\n  local {ROUTER4} as {ROUTER_ASN};\n  bfd {{ interval 200 ms; multiplier 5; }};\n  \
         ipv4 {{ import where net = {VIP4}/32; export none; }};\n}}\n"
    );
    for n in nodes.iter().filter(|n| n.role == Role::Balancer) {
        let k: u8 = n.node.trim_start_matches("lb").parse().unwrap_or(0);
        if let Some(a) = n.ipv4 {
            out.push_str(&format!(
                "protocol bgp {} from balancer {{ neighbor {a} as {}; }}\n",
                n.node,
                balancer_asn(k)
            ));
        }
    }
    out
}

/// The router's nft counters: packets to the VIP's port, per next hop (= per balancer).
pub fn router_nft(nodes: &[Node]) -> String {
    let mut counters = String::new();
    let mut rules = String::new();
    for n in nodes.iter().filter(|n| n.role == Role::Balancer) {
        if let Some(a) = n.ipv4 {
            counters.push_str(&format!("  counter via_{} {{ }}\n", n.node));
            rules.push_str(&format!(
                "    ip daddr {VIP4} tcp dport {PORT} rt ip nexthop {a} counter name \"via_{}\"\n",
                n.node
            ));
        }
    }
    format!(
        "table ip {} {{\n{counters}  chain forward {{\n    type filter hook forward priority 0; policy accept;\n{rules}  }}\n}}\n",
        topology::SWITCH_TABLE
    )
}

/// The client's link to the router (`cl` on the router, eth0 on the client, default route via
/// the router): routed and crossover labs.
pub(super) fn wire_client(st: &LabState) -> Result<()> {
    let router = ns_of(st, "router");
    let client = ns_of(st, "client");
    netns::ip_in(
        &router,
        &[
            "link",
            "add",
            CLIENT_LINK,
            "type",
            "veth",
            "peer",
            "name",
            HOST_IF,
            "netns",
            &client,
        ],
    )?;
    if let Some(mac) = st.node("client").and_then(|n| n.mac.clone()) {
        netns::ip_in(&client, &["link", "set", HOST_IF, "address", &mac])?;
    }
    netns::ip_in(
        &client,
        &["addr", "add", &format!("{CLIENT4}/24"), "dev", HOST_IF],
    )?;
    netns::ip_in(&client, &["link", "set", HOST_IF, "up"])?;
    netns::ip_in(
        &client,
        &[
            "route",
            "add",
            "default",
            "via",
            &ROUTER_CLIENT4.to_string(),
        ],
    )?;
    netns::ip_in(
        &router,
        &[
            "addr",
            "add",
            &format!("{ROUTER_CLIENT4}/24"),
            "dev",
            CLIENT_LINK,
        ],
    )?;
    netns::ip_in(&router, &["link", "set", CLIENT_LINK, "up"])?;
    Ok(())
}

/// `sysctl -qw KEY=VALUE…` inside `ns`.
pub(super) fn sysctl_in(ns: &str, settings: &[&str]) -> Result<()> {
    let sysctl = netns::find_tool("sysctl")
        .ok_or_else(|| Error::Runtime(anyhow::anyhow!("`sysctl` (procps) is not installed")))?;
    let sysctl = sysctl.to_string_lossy().into_owned();
    let mut argv = vec![sysctl.as_str(), "-qw"];
    argv.extend_from_slice(settings);
    let out = netns::command(ns, &argv)?
        .stdin(Stdio::null())
        .output()
        .context("running sysctl")?;
    if !out.status.success() {
        return Err(Error::Runtime(anyhow::anyhow!(
            "sysctl in {ns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// The router's forwarding and L4 multipath hash (PLATFORM §11: policy 1 on veths reuses the
/// sender's socket hash; policy 3 with these fields hashes addresses, protocol and ports).
pub(super) const ROUTER_SYSCTLS: [&str; 3] = [
    "net.ipv4.ip_forward=1",
    "net.ipv4.fib_multipath_hash_policy=3",
    "net.ipv4.fib_multipath_hash_fields=0x0037",
];

/// Wire what only a routed lab has: the client's link to the router, the router's forwarding
/// and multipath hash, the backends' pacing, the router's counters.
pub(super) fn wire(st: &LabState) -> Result<()> {
    if st.routing == Some(Routing::Vrrp) {
        return Ok(());
    }
    let router = ns_of(st, "router");
    wire_client(st)?;
    sysctl_in(&router, &ROUTER_SYSCTLS)?;
    nft_in(&router, &router_nft(&st.nodes))?;
    let tc = netns::find_tool("tc")
        .ok_or_else(|| Error::Runtime(anyhow::anyhow!("`tc` (iproute2) is not installed")))?;
    for n in st.nodes.iter().filter(|n| n.role == Role::Backend) {
        let out = netns::command(
            &n.ns,
            &[
                &tc.to_string_lossy(),
                "qdisc",
                "add",
                "dev",
                HOST_IF,
                "root",
                "tbf",
                "rate",
                PACE,
                "burst",
                "32kb",
                "latency",
                "400ms",
            ],
        )?
        .stdin(Stdio::null())
        .output()
        .context("running tc")?;
        if !out.status.success() {
            return Err(Error::Runtime(anyhow::anyhow!(
                "tc in {}: {}",
                n.ns,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    Ok(())
}

/// Refuse early when a tool the routed lab needs is missing.
pub fn preflight() -> Result<()> {
    for (tool, pkg) in [("bird", "bird2"), ("tc", "iproute2"), ("sysctl", "procps")] {
        if netns::find_tool(tool).is_none() {
            return Err(Error::Runtime(anyhow::anyhow!(
                "`{tool}` is not installed: apt-get install {pkg}"
            )));
        }
    }
    Ok(())
}

/// Start the router's BIRD and every balancer, then wait until each balancer has every backend
/// up and the router has a next hop through each of them.
pub(super) fn start(dir: &StateDir, st: &mut LabState, progress: &dyn Fn(&str)) -> Result<()> {
    if st.routing == Some(Routing::Vrrp) {
        return super::vrrp::start(dir, st, progress);
    }
    progress("starting the router's BIRD");
    let conf = dir.path().join("router-bird.conf");
    std::fs::write(&conf, router_bird_conf(&st.name, &st.nodes))
        .with_context(|| format!("writing {}", conf.display()))?;
    let bird = netns::find_tool("bird")
        .ok_or_else(|| Error::Runtime(anyhow::anyhow!("`bird` is not installed")))?;
    let socket = dir.path().join("router-bird.ctl");
    let pidfile = dir.path().join("router-bird.pid");
    let argv = netns::exec_argv(
        &ns_of(st, "router"),
        &[
            &bird.to_string_lossy(),
            "-f",
            "-c",
            &conf.to_string_lossy(),
            "-s",
            &socket.to_string_lossy(),
            "-P",
            &pidfile.to_string_lossy(),
        ],
    );
    let mut argv = argv;
    argv[0] = netns::ip_tool()?.to_string_lossy().into_owned();
    spawn_recorded(dir, st, "router", "bird", argv)?;
    start_balancers(dir, st, progress, "[bgp]", lb_file)?;
    progress("waiting for the balancers' health checks and BGP announcements");
    let want: Vec<String> = balancers(st).iter().map(|n| n.node.clone()).collect();
    let deadline = Instant::now() + ANNOUNCE_WAIT;
    loop {
        signals::check()?;
        all_alive(st)?;
        let ready = balancers_ready(st);
        let hops = next_hops(st).unwrap_or_default();
        if ready && hops.first().is_some_and(|h| h.via == want) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let logs: Vec<String> = st
                .processes
                .iter()
                .filter(|p| p.role == "balancer" || p.role == "bird")
                .map(|p| format!("{}: {}", p.node, log_tail(&p.log)))
                .collect();
            return Err(Error::Runtime(anyhow::anyhow!(
                "the router did not get a route to {VIP4} through {} within {ANNOUNCE_WAIT:?} \
                 (balancers ready: {ready}; next hops now: {:?}); logs: {}",
                want.join(", "),
                hops.first().map(|h| h.via.clone()).unwrap_or_default(),
                logs.join("; ")
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The router's route to one VIP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VipRoute {
    pub vip: String,
    /// Balancer nodes (or addresses, when not a lab node) the router sends the VIP to.
    pub via: Vec<String>,
}

/// The gateways of `ip -j route show` output for one destination (a single route or a
/// multipath one).
pub fn parse_gateways(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for r in v.as_array().into_iter().flatten() {
        if let Some(g) = r["gateway"].as_str() {
            out.push(g.to_string());
        }
        for h in r["nexthops"].as_array().into_iter().flatten() {
            if let Some(g) = h["gateway"].as_str() {
                out.push(g.to_string());
            }
        }
    }
    out
}

/// The router's next hops for the lab's VIP, read from its kernel routing table.
pub fn next_hops(st: &LabState) -> Result<Vec<VipRoute>> {
    if st.routing != Some(Routing::Bgp) {
        return Ok(Vec::new());
    }
    let out = netns::ip_in(
        &ns_of(st, "router"),
        &["-j", "route", "show", &format!("{VIP4}/32")],
    )?;
    let v: Value = if out.trim().is_empty() {
        Value::Array(vec![])
    } else {
        serde_json::from_str(&out).context("parsing `ip -j route`")?
    };
    let mut via: Vec<String> = parse_gateways(&v)
        .into_iter()
        .map(|g| {
            st.nodes
                .iter()
                .find(|n| n.ipv4.map(|a| a.to_string()).as_deref() == Some(g.as_str()))
                .map(|n| n.node.clone())
                .unwrap_or(g)
        })
        .collect();
    via.sort();
    Ok(vec![VipRoute {
        vip: topology::vip_port(IpAddr::V4(VIP4)),
        via,
    }])
}

/// A fault `lab break lbN …` injects into a balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BalancerFault {
    /// SIGKILL of the balancer's recorded processes (a crash).
    Down,
    /// SIGTERM of its `lb run`: withdraws first, then removes the data path.
    Drain,
    /// Its switch port goes down (VRRP labs: the peers stop hearing each other); restored
    /// by `lab down`, which deletes the switch.
    Isolate,
}

impl BalancerFault {
    pub const ALL: [BalancerFault; 3] = [
        BalancerFault::Down,
        BalancerFault::Drain,
        BalancerFault::Isolate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BalancerFault::Down => "down",
            BalancerFault::Drain => "drain",
            BalancerFault::Isolate => "isolate",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            BalancerFault::Down => {
                "its lbctl lb run was killed (SIGKILL): its BIRD (BGP: the router drops the \
                 route) or keepalived (VRRP: the peer takes the VIP) went with it"
            }
            BalancerFault::Drain => {
                "its lbctl lb run was stopped gracefully (SIGTERM): it withdrew the VIP first, \
                 then removed its data path"
            }
            BalancerFault::Isolate => {
                "its switch port was set down: it hears neither its peer nor the client (on \
                 its own side it may still call itself MASTER); lab down restores it"
            }
        }
    }
}

/// Inject `fault` into balancer `n` (the caller holds the lab's lock and records the fault),
/// then wait until the router no longer routes through it. Returns the router's next hops.
pub(super) fn inject(
    dir: &StateDir,
    st: &mut LabState,
    n: &Node,
    fault: BalancerFault,
) -> Result<Vec<VipRoute>> {
    if st.routing == Some(Routing::Vrrp) {
        super::vrrp::inject(dir, st, n, fault)?;
        return Ok(Vec::new());
    }
    if fault == BalancerFault::Isolate {
        return Err(usage!("`isolate` is for VRRP labs (`--routing vrrp`)"));
    }
    let mut hit = false;
    for p in st
        .processes
        .iter_mut()
        .filter(|p| p.node == n.node && !p.stopped)
    {
        match fault {
            BalancerFault::Down => process::kill(p.pid, p.start_time)?,
            // lb run's drain: withdraw, wait, then remove the data path; give it time.
            BalancerFault::Drain | BalancerFault::Isolate => {
                process::terminate(p.pid, p.start_time, STOP_GRACE * 10)?
            }
        };
        p.stopped = true;
        hit = true;
    }
    if !hit {
        return Err(usage!("{} has no running processes to stop", n.node));
    }
    dir.save(st)?;
    let deadline = Instant::now() + WITHDRAW_WAIT;
    loop {
        let hops = next_hops(st)?;
        if !hops.iter().any(|h| h.via.contains(&n.node)) {
            return Ok(hops);
        }
        if Instant::now() >= deadline {
            return Err(Error::Runtime(anyhow::anyhow!(
                "the router still routes {VIP4} through {} {WITHDRAW_WAIT:?} after the fault",
                n.node
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What `lab traffic` saw in a routed lab.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoutedTraffic {
    pub target: String,
    pub requests: usize,
    /// Answers per backend name.
    pub per_backend: BTreeMap<String, usize>,
    /// Packets to VIP:80 the router forwarded to each balancer during the run.
    pub per_balancer: BTreeMap<String, u64>,
    /// A VRRP lab: the balancer whose MAC the client's ARP entry for the VIP holds afterwards.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vip_owner: Option<String>,
    pub failures: Vec<String>,
}

/// The router's per-balancer packet counters.
fn router_counters(st: &LabState) -> Result<BTreeMap<String, u64>> {
    let c = super::traffic::named_counters(&ns_of(st, "router"), "ip")?;
    Ok(c.into_iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("via_")?.to_string(), v.packets)))
        .collect())
}

/// `n` requests from the client to the routed VIP, each on a new connection (and a new source
/// port, so ECMP spreads them).
pub(super) fn traffic(st: &LabState, n: usize) -> Result<RoutedTraffic> {
    let target = SocketAddr::new(IpAddr::V4(vip4(st.routing)), PORT);
    let vrrp = st.routing == Some(Routing::Vrrp);
    let before = if vrrp {
        BTreeMap::new()
    } else {
        router_counters(st)?
    };
    let results = netns::run_in(&ns_of(st, "client"), move || {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            if signals::interrupted() {
                break;
            }
            v.push(http::get(target, "/", Duration::from_secs(2)));
        }
        v
    })?;
    signals::check()?;
    let after = if vrrp {
        BTreeMap::new()
    } else {
        router_counters(st)?
    };
    let mut t = RoutedTraffic {
        target: target.to_string(),
        requests: n,
        vip_owner: if vrrp {
            super::vrrp::arp_owner(st)?
        } else {
            None
        },
        ..Default::default()
    };
    for (k, v) in after {
        let d = v.saturating_sub(before.get(&k).copied().unwrap_or(0));
        t.per_balancer.insert(k, d);
    }
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(r) if r.status == 200 => {
                *t.per_backend.entry(r.body.trim().to_string()).or_default() += 1
            }
            Ok(r) => t
                .failures
                .push(format!("request {}: HTTP {}", i + 1, r.status)),
            Err(e) => t.failures.push(format!("request {}: {e}", i + 1)),
        }
    }
    Ok(t)
}

/// What `lab traffic --long N` saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LongTraffic {
    pub target: String,
    pub downloads: usize,
    /// Bytes each download should have.
    pub bytes: usize,
    /// Downloads that completed with every byte right.
    pub intact: usize,
    /// Completed downloads per backend (by the `X-Backend` header).
    pub per_backend: BTreeMap<String, usize>,
    /// The others, with the reason.
    pub broken: Vec<String>,
    /// Seconds from the first connection to the last download's end.
    pub seconds: f64,
}

fn one_download(target: SocketAddr, expect: &[u8]) -> std::result::Result<String, String> {
    let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: lbctl-lab\r\nConnection: close\r\n\r\n",
        http::BIG_PATH,
        target.ip()
    )
    .map_err(|e| format!("sending the request: {e}"))?;
    let mut raw = Vec::with_capacity(expect.len() + 256);
    let read = s.read_to_end(&mut raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n");
    let (head, body) = match split {
        Some(i) => (
            String::from_utf8_lossy(&raw[..i]).into_owned(),
            &raw[i + 4..],
        ),
        None => (String::new(), &raw[..0]),
    };
    if let Err(e) = read {
        return Err(format!(
            "after {} of {} bytes: {e}",
            body.len(),
            expect.len()
        ));
    }
    if !head.starts_with("HTTP/1.0 200") {
        return Err(format!("no HTTP 200 answer ({} bytes read)", raw.len()));
    }
    if body != expect {
        return Err(format!(
            "{} of {} bytes, content {}",
            body.len(),
            expect.len(),
            if expect.starts_with(body) {
                "a truncated copy"
            } else {
                "differs"
            }
        ));
    }
    let backend = head
        .lines()
        .find_map(|l| l.strip_prefix("X-Backend: "))
        .unwrap_or("?")
        .trim()
        .to_string();
    Ok(backend)
}

/// `n` long downloads of [`http::BIG_PATH`] from the client, all open at once; returns when
/// every one has finished (or failed), with how many arrived byte-intact.
pub(super) fn long(st: &LabState, n: usize) -> Result<LongTraffic> {
    let target = SocketAddr::new(IpAddr::V4(vip4(st.routing)), PORT);
    let started = Instant::now();
    let results = netns::run_in(&ns_of(st, "client"), move || {
        // Threads started here inherit the client's namespace.
        let expect = std::sync::Arc::new(http::big_body());
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let expect = expect.clone();
                std::thread::spawn(move || one_download(target, &expect))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("the download thread panicked".into()))
            })
            .collect::<Vec<_>>()
    })?;
    let mut t = LongTraffic {
        target: target.to_string(),
        downloads: n,
        bytes: http::BIG_LEN,
        seconds: started.elapsed().as_secs_f64(),
        ..Default::default()
    };
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(be) => {
                t.intact += 1;
                *t.per_backend.entry(be).or_default() += 1;
            }
            Err(e) => t.broken.push(format!("download {}: {e}", i + 1)),
        }
    }
    Ok(t)
}

/// Every recorded process of the lab still runs (else: which one exited, with its log's tail).
pub(super) fn all_alive(st: &LabState) -> Result<()> {
    for p in st.processes.iter() {
        if !process::is_alive(p.pid, p.start_time) {
            return Err(Error::Runtime(anyhow::anyhow!(
                "{} {} (pid {}) exited: {}",
                p.node,
                p.role,
                p.pid,
                log_tail(&p.log)
            )));
        }
    }
    Ok(())
}

/// Write each balancer's LB file (`lb_file(lab, engine, nodes, k)` for lbK) and start its
/// `lbctl lb run` as a recorded process; `section` names what the file adds (`[bgp]`, `[ha]`).
pub(super) fn start_balancers(
    dir: &StateDir,
    st: &mut LabState,
    progress: &dyn Fn(&str),
    section: &str,
    lb_file: fn(&str, Engine, &[Node], u8) -> String,
) -> Result<()> {
    for n in balancers(st) {
        signals::check()?;
        progress(&format!(
            "starting {} (lbctl lb run with {section})",
            n.node
        ));
        let k: u8 = n.node.trim_start_matches("lb").parse().unwrap_or(0);
        let path = dir.path().join(format!("{}.toml", n.node));
        std::fs::write(&path, lb_file(&st.name, st.engine, &st.nodes, k))
            .with_context(|| format!("writing {}", path.display()))?;
        let argv = vec![
            st.lbctl_bin.to_string_lossy().into_owned(),
            "--netns".into(),
            n.ns.clone(),
            "lb".into(),
            "run".into(),
            "-c".into(),
            path.to_string_lossy().into_owned(),
        ];
        spawn_recorded(dir, st, &n.node, "balancer", argv)?;
    }
    Ok(())
}

/// Every balancer's `lb status` says it is running with its backends checked.
pub(super) fn balancers_ready(st: &LabState) -> bool {
    balancers(st).iter().all(|n| {
        lbctl_cmd(st, &n.ns, &["--json", "lb", "status"])
            .stderr(Stdio::null())
            .output()
            .ok()
            .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
            .is_some_and(|v| build::balancer_ready(&v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(k: u8) -> RoutingSpec {
        RoutingSpec {
            routing: Routing::Bgp,
            balancers: k,
        }
    }

    #[test]
    fn plan_has_a_router_and_k_balancers() {
        let p = plan("lab", 2, &spec(3));
        let names: Vec<&str> = p.iter().map(|n| n.node.as_str()).collect();
        assert_eq!(
            names,
            ["sw", "client", "router", "lb1", "lb2", "lb3", "be1", "be2"]
        );
        assert_eq!(p[1].ipv4, Some(CLIENT4));
        assert_eq!(p[2].role, Role::Router);
        assert_eq!(p[2].ipv4, Some(ROUTER4));
        assert_eq!(p[5].ipv4, Some(Ipv4Addr::new(198, 18, 0, 4)));
        assert_eq!(p[5].mac.as_deref(), Some("02:00:00:00:00:04"));
        assert_eq!(p[5].ns, "lbl-lab-lb3");
        assert!(p.iter().all(|n| n.port().len() <= 15));
        // The VIP is not on the balancer segment (PLATFORM §11).
        assert_ne!(VIP4.octets()[..3], ROUTER4.octets()[..3]);
    }

    #[test]
    fn validation() {
        assert!(validate(&spec(1), false, false, true).is_ok());
        assert!(validate(&spec(MAX_BALANCERS), false, false, true).is_ok());
        assert!(validate(&spec(0), false, false, true).is_err());
        assert!(validate(&spec(MAX_BALANCERS + 1), false, false, true).is_err());
        let e = validate(&spec(2), true, false, true).unwrap_err();
        assert!(e.to_string().contains("--ipv6"), "{e}");
        assert!(validate(&spec(2), false, true, true).is_err());
        assert!(validate(&spec(2), false, false, false).is_err());
    }

    #[test]
    fn balancer_file_peers_with_the_router() {
        let nodes = plan("lab", 2, &spec(2));
        let v: toml::Value = toml::from_str(&lb_file("lab", Engine::Nft, &nodes, 2)).unwrap();
        assert_eq!(v["bgp"]["asn"].as_integer(), Some(65002));
        assert_eq!(
            v["bgp"]["neighbor"][0]["address"].as_str(),
            Some("198.18.0.1")
        );
        assert_eq!(v["bgp"]["neighbor"][0]["asn"].as_integer(), Some(65000));
        assert_eq!(v["service"][0]["vip"].as_str(), Some("198.18.2.100:80"));
        assert_eq!(v["service"][0]["backend"].as_array().unwrap().len(), 2);
        let conf = router_bird_conf("lab", &nodes);
        assert!(conf.contains("merge paths on;"), "{conf}");
        assert!(conf.contains("protocol bgp lb1 from balancer { neighbor 198.18.0.2 as 65001; }"));
        assert!(conf.contains("protocol bgp lb2 from balancer { neighbor 198.18.0.3 as 65002; }"));
        let nft = router_nft(&nodes);
        assert!(
            nft.contains("rt ip nexthop 198.18.0.3 counter name \"via_lb2\""),
            "{nft}"
        );
    }

    #[test]
    fn gateways_of_single_and_multipath_routes() {
        let single = json!([{"dst": "198.18.2.100", "gateway": "198.18.0.2", "dev": "eth0"}]);
        assert_eq!(parse_gateways(&single), ["198.18.0.2"]);
        let multi = json!([{"dst": "198.18.2.100", "nexthops": [
            {"gateway": "198.18.0.2", "dev": "eth0", "weight": 1},
            {"gateway": "198.18.0.3", "dev": "eth0", "weight": 1}]}]);
        assert_eq!(parse_gateways(&multi), ["198.18.0.2", "198.18.0.3"]);
        assert!(parse_gateways(&json!([])).is_empty());
    }
}
