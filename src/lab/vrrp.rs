//! VRRP labs (`lab up --balancers K --routing vrrp`, issue 17): balancers lb1…lbK on the lab
//! segment, no router; each runs the real `lbctl lb run` with an `[ha]` section (unicast peers,
//! priority 200 − 10·(K−1), advert 1 s), so keepalived gives the on-link VIP 198.18.0.100 to the
//! MASTER, which answers ARP for it.
//!
//! ```text
//! client 198.18.0.10 ── br0 ──┬─ lb1 198.18.0.2 (priority 200: MASTER)
//!                             ├─ lb2 198.18.0.3 (priority 190: BACKUP)
//!                             ├─ be1 198.18.0.11
//!                             └─ be2 198.18.0.12
//! ```
//!
//! Faults: `down` SIGKILLs a balancer's recorded `lb run` (keepalived goes with it), `isolate`
//! sets its switch port down; either way `lab break` waits until another balancer is MASTER.

use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use serde_json::Value;

use super::build::{lbctl_cmd, log_tail, ns_of};
use super::routing::{all_alive, balancers, balancers_ready, start_balancers, BalancerFault};
use super::state::{LabState, StateDir};
use super::topology::{self, Engine, Node, Role, HOST_IF};
use super::{process, signals, STOP_GRACE};
use crate::error::{Error, Result};
use crate::sys::netns;
use crate::usage;

/// The VRRP instance's id.
pub const VRID: u8 = 51;
/// How long `up` waits for health checks and one MASTER, and `break` for a takeover.
const ELECT_WAIT: Duration = Duration::from_secs(30);

/// Balancer `lbK`'s configured priority (lb1 highest).
pub fn priority(k: u8) -> u8 {
    200 - 10 * (k - 1)
}

/// The plain lab's nodes with its balancer replaced by lb1…lbK (198.18.0.2…).
pub fn plan(base: Vec<Node>, lab: &str, k: u8) -> Vec<Node> {
    let mut v = Vec::new();
    for n in base {
        if n.role != Role::Balancer {
            v.push(n);
            continue;
        }
        for i in 1..=k {
            let name = format!("lb{i}");
            v.push(Node {
                ns: topology::ns_name(lab, &name),
                node: name,
                role: Role::Balancer,
                ipv4: Some(Ipv4Addr::new(198, 18, 0, 1 + i)),
                ipv6: None,
                mac: Some(format!("02:00:00:00:00:{:02x}", 1 + i)),
            });
        }
    }
    v
}

/// The LB file of balancer `lbK`: the lab's service and `[ha]` with the other balancers as
/// unicast peers.
pub fn lb_file(lab: &str, engine: Engine, nodes: &[Node], k: u8) -> String {
    let me = format!("lb{k}");
    let peers: Vec<String> = nodes
        .iter()
        .filter(|n| n.role == Role::Balancer && n.node != me)
        .filter_map(|n| n.ipv4.map(|a| format!("\"{a}\"")))
        .collect();
    let mut out = format!(
        "# Written by `lbctl lab up --routing vrrp` for lab \"{lab}\" (balancer {me}); removed by \
         `lbctl lab down`.\n\
         name = \"{lab}\"\n\n\
         [balancer]\n\
         engine = \"{}\"\n\
         interface = \"{HOST_IF}\"\n\n\
         [ha]\n\
         virtual_router_id = {VRID}\n\
         priority = {}\n\
         advert_interval = \"1s\"\n\
         peers = [{}]\n\
         preempt = true\n\n\
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
         fall = 3\n",
        engine.as_str(),
        priority(k),
        peers.join(", "),
        topology::vip_port(std::net::IpAddr::V4(topology::VIP4)),
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

/// Refuse early when keepalived is missing.
pub fn preflight() -> Result<()> {
    if netns::find_tool("keepalived").is_none() {
        return Err(Error::Runtime(anyhow::anyhow!(
            "`keepalived` is not installed: apt-get install keepalived"
        )));
    }
    Ok(())
}

/// One balancer's VRRP role, from its `lb status --json` (`ha.role`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VrrpRole {
    pub node: String,
    /// `MASTER`, `BACKUP`, `FAULT`, … or `unknown` (no status could be read: down).
    pub role: String,
}

/// The role of a balancer node, or `None` when its status could not be read.
fn role_of(st: &LabState, n: &Node) -> Option<String> {
    let o = lbctl_cmd(st, &n.ns, &["--json", "lb", "status"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let v: Value = serde_json::from_slice(&o.stdout).ok()?;
    let d = match v["daemons"].as_array() {
        Some(ds) => ds.first()?.clone(),
        None => v,
    };
    if d["running"].as_bool() == Some(false) {
        return Some("down".into());
    }
    d["ha"]["role"].as_str().map(str::to_string)
}

/// Each balancer's VRRP role.
pub fn roles(st: &LabState) -> Vec<VrrpRole> {
    balancers(st)
        .iter()
        .map(|n| VrrpRole {
            node: n.node.clone(),
            role: role_of(st, n).unwrap_or_else(|| "unknown".into()),
        })
        .collect()
}

/// The balancer whose MAC the client's neighbour entry for the VIP holds (who answered ARP
/// last, or announced itself by gratuitous ARP); `None` when the client has no valid entry.
pub fn arp_owner(st: &LabState) -> Result<Option<String>> {
    let client = ns_of(st, "client");
    let vip = topology::VIP4.to_string();
    let out = netns::ip_in(&client, &["-j", "neigh", "show", &vip, "dev", HOST_IF])?;
    let v: Value = if out.trim().is_empty() {
        Value::Array(vec![])
    } else {
        serde_json::from_str(&out).context("parsing `ip -j neigh`")?
    };
    let mac = v
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            !e["state"]
                .as_array()
                .is_some_and(|s| s.iter().any(|x| x == "FAILED" || x == "INCOMPLETE"))
        })
        .find_map(|e| e["lladdr"].as_str().map(str::to_string));
    Ok(mac.map(|m| {
        st.nodes
            .iter()
            .find(|n| n.mac.as_deref() == Some(m.as_str()))
            .map(|n| n.node.clone())
            .unwrap_or(m)
    }))
}

/// Start every balancer, then wait until each has every backend up and exactly one is MASTER.
pub(super) fn start(dir: &StateDir, st: &mut LabState, progress: &dyn Fn(&str)) -> Result<()> {
    preflight()?;
    start_balancers(dir, st, progress, "[ha]", lb_file)?;
    progress("waiting for the balancers' health checks and the VRRP election");
    let deadline = Instant::now() + ELECT_WAIT;
    loop {
        signals::check()?;
        all_alive(st)?;
        let ready = balancers_ready(st);
        let r = roles(st);
        let masters = r.iter().filter(|r| r.role == "MASTER").count();
        let others_backup = r.iter().all(|r| r.role == "MASTER" || r.role == "BACKUP");
        if ready && masters == 1 && others_backup {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let logs: Vec<String> = st
                .processes
                .iter()
                .filter(|p| p.role == "balancer")
                .map(|p| format!("{}: {}", p.node, log_tail(&p.log)))
                .collect();
            return Err(Error::Runtime(anyhow::anyhow!(
                "no single VRRP MASTER with every backend up within {ELECT_WAIT:?} (ready: \
                 {ready}; roles: {r:?}); logs: {}",
                logs.join("; ")
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Inject `fault` into balancer `n` of a VRRP lab, then wait until another balancer is MASTER.
pub(super) fn inject(
    dir: &StateDir,
    st: &mut LabState,
    n: &Node,
    fault: BalancerFault,
) -> Result<()> {
    match fault {
        BalancerFault::Isolate => {
            netns::ip_in(&ns_of(st, "sw"), &["link", "set", &n.port(), "down"])?;
        }
        BalancerFault::Down | BalancerFault::Drain => {
            let mut hit = false;
            for p in st
                .processes
                .iter_mut()
                .filter(|p| p.node == n.node && !p.stopped)
            {
                if fault == BalancerFault::Down {
                    process::kill(p.pid, p.start_time)?;
                } else {
                    process::terminate(p.pid, p.start_time, STOP_GRACE * 10)?;
                }
                p.stopped = true;
                hit = true;
            }
            if !hit {
                return Err(usage!("{} has no running processes to stop", n.node));
            }
        }
    }
    dir.save(st)?;
    let deadline = Instant::now() + ELECT_WAIT;
    loop {
        signals::check()?;
        let others: Vec<VrrpRole> = roles(st).into_iter().filter(|r| r.node != n.node).collect();
        if others.iter().filter(|r| r.role == "MASTER").count() == 1 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Runtime(anyhow::anyhow!(
                "no other balancer became MASTER within {ELECT_WAIT:?} after the fault \
                 (roles: {others:?})"
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::routing::{Routing, RoutingSpec};

    #[test]
    fn plan_and_files() {
        let r = RoutingSpec {
            routing: Routing::Vrrp,
            balancers: 2,
        };
        let nodes = crate::lab::routing::plan("lab", 2, &r);
        let names: Vec<&str> = nodes.iter().map(|n| n.node.as_str()).collect();
        assert_eq!(names, ["sw", "client", "lb1", "lb2", "be1", "be2"]);
        let v: toml::Value = toml::from_str(&lb_file("lab", Engine::Nft, &nodes, 2)).unwrap();
        assert_eq!(v["ha"]["priority"].as_integer(), Some(190));
        assert_eq!(v["ha"]["peers"][0].as_str(), Some("198.18.0.2"));
        assert_eq!(v["service"][0]["vip"].as_str(), Some("198.18.0.100:80"));
        let v1: toml::Value = toml::from_str(&lb_file("lab", Engine::Nft, &nodes, 1)).unwrap();
        assert_eq!(v1["ha"]["priority"].as_integer(), Some(200));
        assert_eq!(v1["ha"]["peers"][0].as_str(), Some("198.18.0.3"));
    }
}
