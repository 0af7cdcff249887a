//! Crossover labs (`lab up --topology crossover --servers N`, issue 19): no balancer at all. The
//! router spreads a public range over the N(N-1) internal addresses of `lbctl crossover plan`
//! with static multipath routes; every server runs the real `lbctl crossover run` (holding its
//! primaries, taking over a silent peer's addresses by ARP) and the lab's HTTP server, which the
//! agent's health check watches.
//!
//! ```text
//! client 198.18.1.10 ── cl 198.18.1.1 router 198.18.0.1 ── br0 ──┬─ s1 198.18.0.11
//!   (default via the router)   198.18.100.0/24: one multipath     ├─ s2 198.18.0.12 …
//!                              route over 198.18.4.1…N(N-1)       └─ sN 198.18.0.1N
//! ```
//!
//! - The router runs the lines `crossover plan` prints for it (the internal range on-link, the
//!   public range multipath), then the L4 hash of the routed lab ([`super::routing`]): on veths
//!   the plan's `fib_multipath_hash_policy=1` reuses the client socket's hash (PLATFORM §11).
//! - Each server `sK` holds the public range locally (the plan's server line) and runs the
//!   agent with the config the plan generates, plus an HTTP check of its own `lab serve`.
//! - Faults ([`ServerFault`]): `down` cuts the server's switch port (gone from the segment),
//!   `service-dead` stops only its HTTP server (its kernel still answers ARP: the seed's gap,
//!   which the agent closes by releasing everything). Either way `lab break` waits until every
//!   address the server had answers from the next live tier.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::build::{lbctl_cmd, log_tail, ns_of, spawn_recorded};
use super::routing::{self, all_alive, sysctl_in, wire_client, CLIENT4, ROUTER4};
use super::state::{LabState, StateDir};
use super::topology::{self, Node, Role, HOST_IF};
use super::{http, signals, PORT};
use crate::crossover::plan::{self, AgentDefaults, Table};
use crate::crossover::status::AgentReport;
use crate::error::{Error, Result};
use crate::sys::netns;
use crate::usage;

/// Fewest servers a crossover lab has.
pub const MIN_SERVERS: u8 = 3;
/// Most servers a crossover lab has (two tiers: 56 internal addresses; three: 336, more than
/// one route carries, so three tiers stop at 7).
pub const MAX_SERVERS: u8 = 8;
/// The internal range the plan's addresses come from.
pub const INTERNAL: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(198, 18, 4, 0), 24);
/// The public range the router spreads over the internal addresses.
pub const PUBLIC: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(198, 18, 100, 0), 24);
/// How long `up` waits for every address to answer from its primary, and `break` for the
/// takeover.
const SETTLE_WAIT: Duration = Duration::from_secs(30);
/// How long one probe of an internal address waits for its answer.
const PROBE_TIMEOUT: Duration = Duration::from_millis(800);

/// What a crossover lab is (recorded in its state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrossoverSpec {
    /// Servers s1…sN, [`MIN_SERVERS`]..=[`MAX_SERVERS`].
    pub servers: u8,
    /// 2 (primary, secondary) or 3 (and tertiary: double failures are covered).
    pub tiers: u8,
}

impl CrossoverSpec {
    pub fn new(servers: u8) -> CrossoverSpec {
        CrossoverSpec { servers, tiers: 2 }
    }
}

/// Check a crossover request without touching the system.
pub fn validate(x: &CrossoverSpec) -> Result<()> {
    if !(MIN_SERVERS..=MAX_SERVERS).contains(&x.servers) {
        return Err(usage!(
            "--servers must be between {MIN_SERVERS} and {MAX_SERVERS} for --topology crossover \
             (got {})",
            x.servers
        ));
    }
    if !(2..=3).contains(&x.tiers) {
        return Err(usage!("--tiers must be 2 or 3 (got {})", x.tiers));
    }
    let want = plan::needed(usize::from(x.servers), usize::from(x.tiers));
    if want > plan::MAX_ROUTE_NEXTHOPS {
        return Err(usage!(
            "--servers {} --tiers {} needs {want} internal addresses, more than one multipath \
             route carries ({}): use at most 7 servers with --tiers 3",
            x.servers,
            x.tiers,
            plan::MAX_ROUTE_NEXTHOPS
        ));
    }
    table(x).map(|_| ())
}

/// The address table of the lab (`crossover plan --servers N --tiers T --range INTERNAL`).
pub fn table(x: &CrossoverSpec) -> Result<Table> {
    plan::build(&plan::Request {
        servers: usize::from(x.servers),
        tiers: usize::from(x.tiers),
        ranges: vec![INTERNAL],
    })
    .map_err(crate::error::Error::Usage)
}

/// The plan's router inputs in the lab: the public range, the router's segment interface.
fn router_inputs() -> plan::Router {
    plan::Router {
        public: vec![PUBLIC],
        dev: HOST_IF.to_string(),
    }
}

/// The command line the lab's plan corresponds to (written into the agents' configs).
pub fn plan_cmdline(x: &CrossoverSpec) -> String {
    format!(
        "lbctl crossover plan --servers {} --tiers {} --range {INTERNAL} --public {PUBLIC}",
        x.servers, x.tiers
    )
}

/// The lab's nodes, in creation order: switch, client, router, servers s1…sN.
pub fn plan_nodes(lab: &str, x: &CrossoverSpec) -> Vec<Node> {
    let mut v = Vec::new();
    for n in topology::plan(lab, x.servers, false) {
        match n.role {
            Role::Client => v.push(Node {
                ipv4: Some(CLIENT4),
                ..n
            }),
            Role::Balancer => v.push(Node {
                node: "router".into(),
                role: Role::Router,
                ns: topology::ns_name(lab, "router"),
                ipv4: Some(ROUTER4),
                ipv6: None,
                mac: Some("02:00:00:00:00:01".into()),
            }),
            Role::Backend => {
                let i = n.backend_index().unwrap_or(0);
                let name = plan::name(usize::from(i));
                v.push(Node {
                    ns: topology::ns_name(lab, &name),
                    node: name,
                    ..n
                })
            }
            _ => v.push(n),
        }
    }
    v
}

/// Server index of a node name (`s3` → 3).
fn server_index(st: &LabState, node: &str) -> Option<usize> {
    let x = st.crossover?;
    let i: usize = node.strip_prefix('s')?.parse().ok()?;
    (1..=usize::from(x.servers)).contains(&i).then_some(i)
}

/// Server `sK`'s agent config: the plan's, with an HTTP check of its own server.
pub fn agent_file(x: &CrossoverSpec, t: &Table, s: usize) -> String {
    let mut c = plan::agent_config(t, s, &AgentDefaults::default(), &plan_cmdline(x));
    c.push_str(&format!(
        "\n# Added by `lbctl lab up`: the server's own HTTP service (`lbctl lab serve`).\n\
         [check]\ntype = \"http\"\nport = {PORT}\npath = \"/\"\ninterval = \"300ms\"\n\
         timeout = \"250ms\"\nrise = 2\nfall = 2\n"
    ));
    c
}

/// Run one line the plan printed (`ip …` or `sysctl …`, plain words) inside `ns`.
fn run_line(ns: &str, line: &str) -> Result<()> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((tool, args)) = words.split_first() else {
        return Ok(());
    };
    if tool.starts_with('#') {
        return Err(Error::Runtime(anyhow::anyhow!(
            "the plan has no router line: {line}"
        )));
    }
    let path = netns::find_tool(tool)
        .ok_or_else(|| Error::Runtime(anyhow::anyhow!("`{tool}` is not installed")))?;
    let path = path.to_string_lossy().into_owned();
    let mut argv = vec![path.as_str()];
    argv.extend_from_slice(args);
    let out = netns::command(ns, &argv)?
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {tool}"))?;
    if !out.status.success() {
        return Err(Error::Runtime(anyhow::anyhow!(
            "`{line}` in {ns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Refuse early when a tool the crossover lab needs is missing.
pub fn preflight() -> Result<()> {
    if netns::find_tool("sysctl").is_none() {
        return Err(Error::Runtime(anyhow::anyhow!(
            "`sysctl` is not installed: apt-get install procps"
        )));
    }
    Ok(())
}

/// The client's link, the router's side of the plan, the public range local on every server.
pub(super) fn wire(st: &LabState) -> Result<()> {
    let x = st
        .crossover
        .ok_or_else(|| Error::Runtime(anyhow::anyhow!("not a crossover lab")))?;
    let t = table(&x)?;
    let router = ns_of(st, "router");
    wire_client(st)?;
    sysctl_in(&router, &["net.ipv4.ip_forward=1"])?;
    let r = router_inputs();
    for line in plan::router_lines(&t, &[INTERNAL], &r) {
        run_line(&router, &line)?;
    }
    // After the plan's policy 1: the lab's veths need the L4 hash (see the module docs).
    sysctl_in(&router, &routing::ROUTER_SYSCTLS[1..])?;
    for n in st.nodes.iter().filter(|n| n.role == Role::Backend) {
        for line in plan::server_lines(&r) {
            run_line(&n.ns, &line)?;
        }
    }
    Ok(())
}

/// Write each server's agent config, start the agents (recorded before they run), and wait
/// until every internal address answers from its primary.
pub(super) fn start(dir: &StateDir, st: &mut LabState, progress: &dyn Fn(&str)) -> Result<()> {
    let x = st
        .crossover
        .ok_or_else(|| Error::Runtime(anyhow::anyhow!("not a crossover lab")))?;
    let t = table(&x)?;
    for n in st.nodes.clone().iter().filter(|n| n.role == Role::Backend) {
        signals::check()?;
        let s = server_index(st, &n.node).unwrap_or(0);
        progress(&format!(
            "starting {}'s agent (lbctl crossover run)",
            n.node
        ));
        let path = dir.path().join(format!("{}.toml", n.node));
        std::fs::write(&path, agent_file(&x, &t, s))
            .with_context(|| format!("writing {}", path.display()))?;
        let argv = vec![
            st.lbctl_bin.to_string_lossy().into_owned(),
            "--netns".into(),
            n.ns.clone(),
            "crossover".into(),
            "run".into(),
            "-c".into(),
            path.to_string_lossy().into_owned(),
        ];
        spawn_recorded(dir, st, &n.node, "agent", argv)?;
    }
    progress("waiting until every internal address answers from its primary");
    wait_answers(st, &[], "start")
}

/// Which server each internal address answers from, asked over HTTP from the router (all at
/// once; `None`: no answer).
pub fn answers(st: &LabState) -> Result<BTreeMap<Ipv4Addr, Option<String>>> {
    let x = st
        .crossover
        .ok_or_else(|| Error::Runtime(anyhow::anyhow!("not a crossover lab")))?;
    let addrs: Vec<Ipv4Addr> = table(&x)?.addrs.iter().map(|a| a.addr).collect();
    let got = netns::run_in(&ns_of(st, "router"), move || {
        // Threads started here inherit the router's namespace.
        let handles: Vec<_> = addrs
            .into_iter()
            .map(|a| {
                std::thread::spawn(move || {
                    let r = http::get(SocketAddr::new(IpAddr::V4(a), PORT), "/", PROBE_TIMEOUT);
                    (
                        a,
                        r.ok()
                            .filter(|r| r.status == 200)
                            .map(|r| r.body.trim().to_string()),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok())
            .collect::<BTreeMap<_, _>>()
    })?;
    Ok(got)
}

/// Who should answer each address while the servers in `out` are out: its first tier that is
/// not (`None`: every tier is out).
pub fn expected(t: &Table, out: &[usize]) -> BTreeMap<Ipv4Addr, Option<String>> {
    t.addrs
        .iter()
        .map(|a| {
            (
                a.addr,
                a.tiers
                    .iter()
                    .find(|s| !out.contains(s))
                    .map(|s| plan::name(*s)),
            )
        })
        .collect()
}

/// Poll until every address that has a live tier answers from it (every agent still running).
fn wait_answers(st: &LabState, out: &[usize], what: &str) -> Result<()> {
    let x = st
        .crossover
        .ok_or_else(|| Error::Runtime(anyhow::anyhow!("not a crossover lab")))?;
    let want: BTreeMap<Ipv4Addr, String> = expected(&table(&x)?, out)
        .into_iter()
        .filter_map(|(a, s)| Some((a, s?)))
        .collect();
    let deadline = Instant::now() + SETTLE_WAIT;
    loop {
        signals::check()?;
        all_alive_agents(st)?;
        let got = answers(st)?;
        let wrong: Vec<String> = want
            .iter()
            .filter(|(a, s)| got.get(a).cloned().flatten().as_ref() != Some(*s))
            .map(|(a, s)| {
                format!(
                    "{a} answers from {} (want {s})",
                    got.get(a)
                        .cloned()
                        .flatten()
                        .unwrap_or_else(|| "nobody".into())
                )
            })
            .collect();
        if wrong.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let logs: Vec<String> = st
                .processes
                .iter()
                .filter(|p| p.role == "agent")
                .map(|p| format!("{}: {}", p.node, log_tail(&p.log)))
                .collect();
            return Err(Error::Runtime(anyhow::anyhow!(
                "{what}: after {SETTLE_WAIT:?} {} (agent logs: {})",
                wrong.join(", "),
                logs.join("; ")
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every recorded process runs, except those a fault stopped on purpose.
fn all_alive_agents(st: &LabState) -> Result<()> {
    let mut live = st.clone();
    live.processes.retain(|p| !p.stopped);
    all_alive(&live)
}

/// A fault `lab break sN …` injects into a crossover server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerFault {
    /// Its switch port goes down: the server is gone from the segment (restored by `lab down`).
    Down,
    /// Its HTTP server is stopped (by its recorded PID); its kernel still answers ARP.
    ServiceDead,
}

impl ServerFault {
    pub const ALL: [ServerFault; 2] = [ServerFault::Down, ServerFault::ServiceDead];

    pub fn name(self) -> &'static str {
        match self {
            ServerFault::Down => "down",
            ServerFault::ServiceDead => "service-dead",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            ServerFault::Down => {
                "its switch port was set down: it is gone from the segment, its peers stop \
                 hearing its claims and take over its addresses"
            }
            ServerFault::ServiceDead => {
                "its HTTP server was stopped; its kernel still answers ARP (the seed design's \
                 gap), so its agent's health check fails and the agent releases every address"
            }
        }
    }
}

/// Servers a recorded fault took out.
fn out_servers(st: &LabState) -> Vec<usize> {
    st.faults
        .iter()
        .filter_map(|f| server_index(st, &f.node))
        .collect()
}

/// Inject `fault` into server `n` (the caller holds the lab's lock and has recorded the
/// fault), then wait until every address answers from its next live tier.
pub(super) fn inject(
    dir: &StateDir,
    st: &mut LabState,
    n: &Node,
    fault: ServerFault,
) -> Result<()> {
    let k = server_index(st, &n.node).ok_or_else(|| {
        usage!(
            "crossover faults go into the servers s1…s{}",
            st.crossover.map(|x| x.servers).unwrap_or(0)
        )
    })?;
    // Servers out already (the caller recorded this fault before calling).
    let mut out: Vec<usize> = out_servers(st).into_iter().filter(|s| *s != k).collect();
    match fault {
        ServerFault::Down => {
            netns::ip_in(&ns_of(st, "sw"), &["link", "set", &n.port(), "down"])?;
        }
        ServerFault::ServiceDead => {
            if !super::faults::stop_http(st, &n.node)? {
                return Err(usage!("{} has no running HTTP server to stop", n.node));
            }
            dir.save(st)?;
        }
    }
    out.push(k);
    wait_answers(st, &out, &format!("{} {}", n.node, fault.name()))?;
    if fault == ServerFault::ServiceDead {
        // The agent released everything (its answers moved; its kernel holds none of them).
        let deadline = Instant::now() + SETTLE_WAIT;
        loop {
            let held = held_in_kernel(&n.ns)?;
            if held.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Error::Runtime(anyhow::anyhow!(
                    "{}'s agent still holds {:?} {SETTLE_WAIT:?} after its service died",
                    n.node,
                    held
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

/// Internal addresses configured in namespace `ns` (any interface).
fn held_in_kernel(ns: &str) -> Result<BTreeSet<Ipv4Addr>> {
    let out = netns::ip_in(ns, &["-j", "-4", "addr", "show"])?;
    let v: Value = serde_json::from_str(if out.trim().is_empty() { "[]" } else { &out })
        .context("parsing `ip -j addr`")?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["local"].as_str()?.parse::<Ipv4Addr>().ok())
        .filter(|a| INTERNAL.contains(a))
        .collect())
}

/// One internal address as `lab status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddrView {
    pub addr: Ipv4Addr,
    /// Its servers in tier order (primary, secondary[, tertiary]).
    pub tiers: Vec<String>,
    /// Servers whose agent holds it and whose kernel has it.
    pub held_by: Vec<String>,
    /// The node the router's ARP entry for it points at (`None`: unresolved or failed).
    pub router: Option<String>,
}

/// The crossover part of `lab status`.
#[derive(Debug, Clone, Serialize)]
pub struct CrossoverStatus {
    pub servers: u8,
    pub tiers: u8,
    pub internal: String,
    pub public: String,
    /// Servers whose switch port is down (`lab break sN down`).
    pub cut: Vec<String>,
    pub addresses: Vec<AddrView>,
    /// Each server's `lbctl crossover status` (its agent against its kernel and journal).
    pub agents: Vec<AgentReport>,
}

/// The router's ARP entries on its segment interface: address → node (by MAC).
fn router_neighbours(st: &LabState) -> Result<BTreeMap<Ipv4Addr, String>> {
    let out = netns::ip_in(
        &ns_of(st, "router"),
        &["-j", "-4", "neigh", "show", "dev", HOST_IF],
    )?;
    let v: Value = serde_json::from_str(if out.trim().is_empty() { "[]" } else { &out })
        .context("parsing `ip -j neigh`")?;
    let mut m = BTreeMap::new();
    for e in v.as_array().into_iter().flatten() {
        let failed = e["state"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| matches!(s.as_str(), Some("FAILED" | "INCOMPLETE")));
        let (Some(dst), Some(mac)) = (
            e["dst"].as_str().and_then(|d| d.parse::<Ipv4Addr>().ok()),
            e["lladdr"].as_str(),
        ) else {
            continue;
        };
        if failed || !INTERNAL.contains(&dst) {
            continue;
        }
        let who = st
            .nodes
            .iter()
            .find(|n| {
                n.mac
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case(mac))
            })
            .map(|n| n.node.clone())
            .unwrap_or_else(|| mac.to_string());
        m.insert(dst, who);
    }
    Ok(m)
}

/// Switch ports that are down: the servers behind them are cut off.
fn cut_servers(st: &LabState) -> Result<Vec<String>> {
    let out = netns::ip_in(&ns_of(st, "sw"), &["-j", "link", "show"])?;
    let v: Value = serde_json::from_str(if out.trim().is_empty() { "[]" } else { &out })
        .context("parsing `ip -j link`")?;
    let down: BTreeSet<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| {
            !l["flags"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|f| f.as_str() == Some("UP"))
        })
        .filter_map(|l| l["ifname"].as_str().map(String::from))
        .collect();
    Ok(st
        .nodes
        .iter()
        .filter(|n| n.role == Role::Backend && down.contains(&n.port()))
        .map(|n| n.node.clone())
        .collect())
}

/// `lbctl --netns NS --json crossover status` of server `n`: its agent's report.
fn agent_report(st: &LabState, n: &Node) -> std::result::Result<Option<AgentReport>, String> {
    let out = lbctl_cmd(st, &n.ns, &["--json", "crossover", "status"])
        .output()
        .map_err(|e| e.to_string())?;
    // Exit 1 is "findings": the report is still there.
    if !matches!(out.status.code(), Some(0 | 1)) {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let mut agents: Vec<AgentReport> =
        serde_json::from_value(v["agents"].clone()).map_err(|e| e.to_string())?;
    Ok(agents.pop())
}

/// Observe a crossover lab: who holds which address (agents and kernels), where the router
/// sends each one, and what is wrong (appended to `problems`).
pub(super) fn status(st: &LabState, problems: &mut Vec<String>) -> Option<CrossoverStatus> {
    let x = st.crossover?;
    let t = match table(&x) {
        Ok(t) => t,
        Err(e) => {
            problems.push(format!("the lab's address plan: {e}"));
            return None;
        }
    };
    let cut = cut_servers(st).unwrap_or_else(|e| {
        problems.push(format!("could not check the switch ports: {e}"));
        Vec::new()
    });
    for s in &cut {
        problems.push(format!("{s}'s link is cut (its switch port is down)"));
    }
    let mut agents = Vec::new();
    let mut held: BTreeMap<Ipv4Addr, Vec<String>> = BTreeMap::new();
    for n in st.nodes.iter().filter(|n| n.role == Role::Backend) {
        if !netns::exists(&n.ns) {
            continue; // reported as a missing namespace already
        }
        match agent_report(st, n) {
            Ok(Some(r)) => {
                for row in r.rows.iter().filter(|r| r.held && r.in_kernel) {
                    held.entry(row.addr).or_default().push(n.node.clone());
                }
                for p in &r.problems {
                    problems.push(format!("{}'s agent: {p}", n.node));
                }
                if r.running && !r.healthy {
                    problems.push(format!(
                        "{}'s service is failing its check ({}): its agent holds nothing",
                        n.node, r.health
                    ));
                }
                agents.push(r);
            }
            Ok(None) => problems.push(format!("{} has no crossover agent status", n.node)),
            Err(e) => problems.push(format!("could not check {}'s agent: {e}", n.node)),
        }
    }
    let router = router_neighbours(st).unwrap_or_else(|e| {
        problems.push(format!("could not read the router's ARP entries: {e}"));
        BTreeMap::new()
    });
    let mut addresses = Vec::new();
    for a in &t.addrs {
        let by = held.get(&a.addr).cloned().unwrap_or_default();
        let reachable: Vec<&String> = by.iter().filter(|s| !cut.contains(s)).collect();
        let via = router.get(&a.addr).cloned();
        match reachable.len() {
            0 => problems.push(format!("{} is held by no reachable server", a.addr)),
            1 => {}
            _ => problems.push(format!(
                "{} is held by {} at once",
                a.addr,
                reachable
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" and ")
            )),
        }
        if let Some(v) = &via {
            if !reachable.contains(&v) && !reachable.is_empty() {
                problems.push(format!(
                    "the router sends {} to {v}, which {}",
                    a.addr,
                    if cut.contains(v) {
                        "is cut off"
                    } else {
                        "does not hold it"
                    }
                ));
            }
        }
        addresses.push(AddrView {
            addr: a.addr,
            tiers: a.tiers.iter().map(|s| plan::name(*s)).collect(),
            held_by: by,
            router: via,
        });
    }
    Some(CrossoverStatus {
        servers: x.servers,
        tiers: x.tiers,
        internal: INTERNAL.to_string(),
        public: PUBLIC.to_string(),
        cut,
        addresses,
        agents,
    })
}

/// What `lab traffic` saw in a crossover lab.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CrossoverTraffic {
    /// The public range the requests went to.
    pub target: String,
    pub requests: usize,
    /// Answers per server.
    pub per_server: BTreeMap<String, usize>,
    pub failures: Vec<String>,
}

/// `n` HTTP requests from the client to addresses of the public range (198.18.100.1, .2, …,
/// each on a new connection): the router's multipath route spreads them over the internal
/// addresses, and so over the servers.
pub(super) fn traffic(st: &LabState, n: usize) -> Result<CrossoverTraffic> {
    if st.crossover.is_none() {
        return Err(usage!("lab '{}' is not a crossover lab", st.name));
    }
    let hosts: Vec<Ipv4Addr> = PUBLIC.hosts().collect();
    let results = netns::run_in(&ns_of(st, "client"), move || {
        let mut v = Vec::with_capacity(n);
        for k in 0..n {
            if signals::interrupted() {
                break;
            }
            let a = hosts[k % hosts.len()];
            v.push((
                a,
                http::get(
                    SocketAddr::new(IpAddr::V4(a), PORT),
                    "/",
                    Duration::from_secs(2),
                ),
            ));
        }
        v
    })?;
    signals::check()?;
    let mut t = CrossoverTraffic {
        target: format!("{PUBLIC} port {PORT}"),
        requests: n,
        ..Default::default()
    };
    for (a, r) in results {
        match r {
            Ok(r) if r.status == 200 => {
                *t.per_server.entry(r.body.trim().to_string()).or_default() += 1
            }
            Ok(r) => t.failures.push(format!("{a}: HTTP {}", r.status)),
            Err(e) => t.failures.push(format!("{a}: {e}")),
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_and_validation() {
        let x = CrossoverSpec::new(3);
        let p = plan_nodes("lab", &x);
        let names: Vec<&str> = p.iter().map(|n| n.node.as_str()).collect();
        assert_eq!(names, ["sw", "client", "router", "s1", "s2", "s3"]);
        assert_eq!(p[2].role, Role::Router);
        assert_eq!(p[2].ipv4, Some(ROUTER4));
        assert_eq!(p[4].ns, "lbl-lab-s2");
        assert_eq!(p[4].role, Role::Backend);
        assert_eq!(p[4].ipv4, Some(Ipv4Addr::new(198, 18, 0, 12)));
        assert_eq!(p[4].mac.as_deref(), Some("02:00:00:00:00:12"));
        assert!(validate(&x).is_ok());
        assert!(validate(&CrossoverSpec::new(8)).is_ok());
        for bad in [0, 2, 9] {
            let e = validate(&CrossoverSpec::new(bad)).unwrap_err();
            assert!(e.to_string().contains("between 3 and 8"), "{e}");
        }
        let e = validate(&CrossoverSpec {
            servers: 8,
            tiers: 3,
        })
        .unwrap_err();
        assert!(e.to_string().contains("at most 7 servers"), "{e}");
        assert!(validate(&CrossoverSpec {
            servers: 7,
            tiers: 3
        })
        .is_ok());
        // The ranges are disjoint from the lab's segments.
        for seg in ["198.18.0.0/24", "198.18.1.0/24"] {
            let s: Ipv4Net = seg.parse().unwrap();
            assert!(!s.contains(&INTERNAL.network()) && !s.contains(&PUBLIC.network()));
        }
    }

    #[test]
    fn agent_configs_parse_with_their_check() {
        let x = CrossoverSpec::new(4);
        let t = table(&x).unwrap();
        let c = crate::crossover::config::parse(&agent_file(&x, &t, 2)).unwrap();
        assert_eq!(c.server, 2);
        assert!(c.check.is_some());
        assert_eq!(c.mine().len(), 6);
    }

    #[test]
    fn expected_holders() {
        let t = table(&CrossoverSpec::new(3)).unwrap();
        let e = expected(&t, &[]);
        assert_eq!(e[&Ipv4Addr::new(198, 18, 4, 1)].as_deref(), Some("s1"));
        let e = expected(&t, &[1]);
        // 198.18.4.1 is (s1, s2).
        assert_eq!(e[&Ipv4Addr::new(198, 18, 4, 1)].as_deref(), Some("s2"));
        let e = expected(&t, &[1, 2]);
        assert_eq!(e[&Ipv4Addr::new(198, 18, 4, 1)], None);
    }
}
