//! `lab status`: the record compared with what exists now.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::state::{self, LabState, Phase};
use super::topology::{self, Engine, Role};
use super::{process, VIP6};
use crate::sys::netns;

/// One node as observed.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub node: String,
    pub role: Role,
    pub namespace: String,
    pub exists: bool,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    pub mac: Option<String>,
}

/// One recorded process as observed.
#[derive(Debug, Clone, Serialize)]
pub struct ProcStatus {
    pub node: String,
    pub role: String,
    pub pid: u32,
    pub alive: bool,
    /// Stopped on purpose (`lab break … no-listener`).
    pub stopped: bool,
    pub log: PathBuf,
}

/// A lab as observed.
#[derive(Debug, Clone, Serialize)]
pub struct LabStatus {
    pub name: String,
    pub phase: Phase,
    pub dir: PathBuf,
    pub backends: u8,
    pub ipv6: bool,
    pub engine: Engine,
    pub balancer: bool,
    pub vip: Vec<String>,
    pub nodes: Vec<NodeStatus>,
    pub processes: Vec<ProcStatus>,
    pub faults: Vec<state::FaultRecord>,
    /// Each backend as the balancer sees it (`lb run`'s status), when the lab has one.
    pub balancer_backends: Vec<BalancerBackend>,
    /// A routed lab: how the balancers reach the router.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing: Option<super::routing::Routing>,
    /// A routed lab: the router's next hops for each VIP (its kernel routing table).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub next_hops: Vec<super::routing::VipRoute>,
    /// A VRRP lab: each balancer's role (`lb status` `ha.role`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vrrp: Vec<super::vrrp::VrrpRole>,
    /// A VRRP lab: the balancer the client's ARP entry for the VIP points at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vip_owner: Option<String>,
    /// A crossover lab: who holds which internal address, where the router sends it, each
    /// server's agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crossover: Option<super::crossover::CrossoverStatus>,
    /// Why the lab is not healthy (empty when it is).
    pub problems: Vec<String>,
    /// Every namespace exists, every recorded process is alive (also those a fault stopped:
    /// the lab is degraded then), and the balancer has every backend up.
    pub healthy: bool,
}

/// One backend as the balancer sees it.
#[derive(Debug, Clone, Serialize)]
pub struct BalancerBackend {
    pub service: String,
    pub backend: String,
    pub state: String,
    pub in_service: bool,
}

pub(super) fn status(run_dir: &Path, st: &LabState) -> LabStatus {
    let nodes: Vec<NodeStatus> = st
        .nodes
        .iter()
        .map(|n| {
            let rec = st.namespaces.iter().find(|r| r.name == n.ns);
            let now = netns::inode(&n.ns);
            NodeStatus {
                node: n.node.clone(),
                role: n.role,
                namespace: n.ns.clone(),
                exists: now.is_some() && rec.is_some_and(|r| r.inode.is_none() || r.inode == now),
                ipv4: n.ipv4.map(|a| a.to_string()),
                ipv6: n.ipv6.map(|a| a.to_string()),
                mac: n.mac.clone(),
            }
        })
        .collect();
    let processes: Vec<ProcStatus> = st
        .processes
        .iter()
        .map(|p| ProcStatus {
            node: p.node.clone(),
            role: p.role.clone(),
            pid: p.pid,
            alive: process::is_alive(p.pid, p.start_time),
            stopped: p.stopped,
            log: p.log.clone(),
        })
        .collect();
    let mut vip = vec![topology::vip_port(IpAddr::V4(st.vip4()))];
    if st.crossover.is_some() {
        vip = vec![format!("{}:{}", super::crossover::PUBLIC, topology::PORT)];
    }
    if st.ipv6 {
        vip.push(topology::vip_port(IpAddr::V6(VIP6)));
    }
    let mut problems = Vec::new();
    if st.phase != Phase::Up {
        problems.push("the lab is incomplete (`lbctl lab down` removes it)".to_string());
    }
    for n in nodes.iter().filter(|n| !n.exists) {
        problems.push(format!(
            "node {}: namespace {} is gone",
            n.node, n.namespace
        ));
    }
    for p in processes.iter().filter(|p| !p.alive) {
        problems.push(format!(
            "node {}: {} (PID {}) is {}",
            p.node,
            p.role,
            p.pid,
            if p.stopped {
                "stopped by a fault"
            } else {
                "dead"
            }
        ));
    }
    let mut balancer_backends = Vec::new();
    if st.balancer {
        for lb in st.nodes.iter().filter(|n| n.role == Role::Balancer) {
            let daemons =
                crate::lb::status::read_all(&run_dir.join("netns").join(&lb.ns)).map(Some);
            match daemons {
                Ok(Some(ds)) if !ds.is_empty() => {
                    for d in &ds {
                        if !d.alive() {
                            let on = if st.routing.is_some() {
                                format!(" on {}", lb.node)
                            } else {
                                String::new()
                            };
                            problems.push(format!(
                                "the balancer `lb run` {}{on} is not running",
                                d.name
                            ));
                        }
                        for svc in &d.services {
                            for b in &svc.backends {
                                if b.state != "up" {
                                    problems.push(format!(
                                        "the balancer has backend {} of {} {}",
                                        b.rip, svc.service, b.state
                                    ));
                                }
                                balancer_backends.push(BalancerBackend {
                                    service: svc.service.clone(),
                                    backend: b.rip.clone(),
                                    state: b.state.clone(),
                                    in_service: b.in_service,
                                });
                            }
                        }
                    }
                }
                Ok(_) => problems.push("the balancer has written no status yet".to_string()),
                Err(e) => problems.push(format!("could not read the balancer's status: {e}")),
            }
        }
    }
    let mut next_hops = Vec::new();
    if st.routing.is_some() {
        match super::routing::next_hops(st) {
            Ok(h) => {
                for r in h.iter().filter(|r| r.via.is_empty()) {
                    problems.push(format!("the router has no route to {}", r.vip));
                }
                next_hops = h;
            }
            Err(e) => problems.push(format!("could not read the router's routes: {e}")),
        }
    }
    let mut vrrp = Vec::new();
    let mut vip_owner = None;
    if st.routing == Some(super::routing::Routing::Vrrp) {
        vrrp = super::vrrp::roles(st);
        let masters = vrrp.iter().filter(|r| r.role == "MASTER").count();
        if masters != 1 {
            problems.push(format!(
                "{masters} balancers are VRRP MASTER (want exactly 1)"
            ));
        }
        // A pair is only healthy with both halves ready to take over: FAULT (interface down,
        // tracked check failing) or an unknown role leaves no standby even when a MASTER serves.
        for r in vrrp
            .iter()
            .filter(|r| !matches!(r.role.as_str(), "MASTER" | "BACKUP" | "down"))
        {
            problems.push(format!(
                "balancer {} is VRRP {} (not ready to take over)",
                r.node, r.role
            ));
        }
        match super::vrrp::arp_owner(st) {
            Ok(o) => vip_owner = o,
            Err(e) => problems.push(format!("could not read the client's ARP entry: {e}")),
        }
    }
    let crossover = super::crossover::status(st, &mut problems);
    let healthy = problems.is_empty();
    LabStatus {
        name: st.name.clone(),
        phase: st.phase,
        dir: state::lab_dir(run_dir, &st.name),
        backends: st.backends,
        ipv6: st.ipv6,
        engine: st.engine,
        balancer: st.balancer,
        vip,
        nodes,
        processes,
        faults: st.faults.clone(),
        balancer_backends,
        routing: st.routing,
        next_hops,
        vrrp,
        vip_owner,
        crossover,
        problems,
        healthy,
    }
}
