//! `lab status`: the record compared with what exists now.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::state::{self, LabState, Phase};
use super::topology::{self, Engine, Role};
use super::{process, VIP4, VIP6};
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
    /// Every namespace exists and every process not stopped on purpose is alive.
    pub healthy: bool,
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
    let mut vip = vec![topology::vip_port(IpAddr::V4(VIP4))];
    if st.ipv6 {
        vip.push(topology::vip_port(IpAddr::V6(VIP6)));
    }
    let healthy = st.phase == Phase::Up
        && nodes.iter().all(|n| n.exists)
        && processes.iter().all(|p| p.alive || p.stopped);
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
        healthy,
    }
}
