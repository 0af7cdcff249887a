//! `crossover status`: who holds what, from each agent's status file, checked against the
//! kernel's real addresses and the journal (an agent killed with SIGKILL leaves its addresses
//! recorded under its owner).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use super::agent::AgentStatus;

/// One address as `status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    pub addr: Ipv4Addr,
    pub tier: String,
    /// The agent says it holds it.
    pub held: bool,
    /// The kernel has it on the agent's interface.
    pub in_kernel: bool,
    /// Who else was last heard claiming it, and how long ago.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heard: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub foreign: Option<String>,
}

/// One agent's report (`crossover status --json` "agents"; `lab status` reads it back).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentReport {
    pub name: String,
    pub pid: u32,
    pub running: bool,
    pub interface: String,
    pub mac: String,
    pub healthy: bool,
    pub health: String,
    pub carrier: bool,
    pub rows: Vec<Row>,
    /// Disagreements between the agent, the kernel and the journal.
    pub problems: Vec<String>,
}

/// Compare `statuses` with the addresses the kernel has (`kernel`: (device, address)) and the
/// addresses the journal records per `crossover:sN` owner.
pub fn assess(
    statuses: &[AgentStatus],
    kernel: &BTreeSet<(String, IpAddr)>,
    journal: &BTreeMap<String, BTreeSet<IpAddr>>,
) -> (Vec<AgentReport>, Vec<String>) {
    let mut reports = Vec::new();
    let mut seen_owners = BTreeSet::new();
    for s in statuses {
        let owner = super::config::owner(s.server);
        seen_owners.insert(owner.clone());
        let running = s.alive();
        let recorded = journal.get(&owner).cloned().unwrap_or_default();
        let mut problems = Vec::new();
        let rows: Vec<Row> = s
            .addresses
            .iter()
            .map(|a| {
                let ip = IpAddr::V4(a.addr);
                let in_kernel = kernel.contains(&(s.interface.clone(), ip));
                if running && a.held && !in_kernel {
                    problems.push(format!(
                        "{} is held by the agent but missing from {}",
                        a.addr, s.interface
                    ));
                }
                if running && !a.held && in_kernel && recorded.contains(&ip) {
                    problems.push(format!(
                        "{} is on {} but the agent does not hold it",
                        a.addr, s.interface
                    ));
                }
                Row {
                    addr: a.addr,
                    tier: a.tier.clone(),
                    held: a.held,
                    in_kernel,
                    heard: a
                        .heard
                        .as_ref()
                        .map(|h| format!("{h}, {} ms ago", a.heard_ms_ago.unwrap_or(0))),
                    foreign: a.foreign.clone(),
                }
            })
            .collect();
        if !running {
            // Killed (SIGKILL, crash): its addresses stay until `down` removes them; once they
            // are gone the stale status file is only history.
            let left = recorded
                .iter()
                .filter(|ip| kernel.iter().any(|(_, k)| k == *ip))
                .count();
            if left > 0 {
                problems.push(format!(
                    "the agent (PID {}) is not running; {left} address(es) it held are still \
                     configured: `lbctl down --owner {owner}` removes them",
                    s.pid
                ));
            }
        }
        reports.push(AgentReport {
            name: s.name.clone(),
            pid: s.pid,
            running,
            interface: s.interface.clone(),
            mac: s.mac.clone(),
            healthy: s.healthy,
            health: s.health.clone(),
            carrier: s.carrier,
            rows,
            problems,
        });
    }
    // Owners with addresses but no status file at all (the file was removed, the agent killed).
    let orphans = journal
        .iter()
        .filter(|(o, addrs)| !seen_owners.contains(*o) && !addrs.is_empty())
        .map(|(o, addrs)| {
            format!(
                "{o} has {} address(es) recorded and no agent status: `lbctl down --owner {o}` \
                 removes them",
                addrs.len()
            )
        })
        .collect();
    (reports, orphans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crossover::agent::AddrStatus;

    fn status(pid: u32, start: u64, held: &[(&str, bool)]) -> AgentStatus {
        AgentStatus {
            name: "s1".into(),
            server: 1,
            pid,
            pid_start: start,
            interface: "eth0".into(),
            mac: "02:00:00:00:00:01".into(),
            healthy: true,
            health: "ok".into(),
            carrier: true,
            updated: 0,
            addresses: held
                .iter()
                .map(|(a, h)| AddrStatus {
                    addr: a.parse().unwrap(),
                    tier: "primary".into(),
                    held: *h,
                    heard: None,
                    heard_ms_ago: None,
                    foreign: None,
                })
                .collect(),
        }
    }

    fn kernel(a: &[&str]) -> BTreeSet<(String, IpAddr)> {
        a.iter()
            .map(|x| ("eth0".to_string(), x.parse().unwrap()))
            .collect()
    }

    #[test]
    fn agrees_and_disagrees() {
        let me = std::process::id();
        let start = crate::sys::proc::start_time(me).unwrap();
        let s = status(me, start, &[("198.18.1.1", true), ("198.18.1.3", false)]);
        let j = BTreeMap::from([(
            "crossover:s1".to_string(),
            BTreeSet::from(["198.18.1.1".parse().unwrap()]),
        )]);
        let (r, o) = assess(std::slice::from_ref(&s), &kernel(&["198.18.1.1"]), &j);
        assert!(r[0].problems.is_empty() && o.is_empty(), "{r:?}");
        assert!(r[0].rows[0].in_kernel && !r[0].rows[1].in_kernel);
        // Held but gone from the kernel.
        let (r, _) = assess(&[s], &kernel(&[]), &j);
        assert!(r[0].problems[0].contains("missing from eth0"));
        // A dead agent with addresses left, and an owner without a status file.
        let dead = status(me, start + 1, &[("198.18.1.1", true)]);
        let mut j2 = j.clone();
        j2.insert(
            "crossover:s2".into(),
            BTreeSet::from(["198.18.1.2".parse().unwrap()]),
        );
        let (r, o) = assess(&[dead], &kernel(&["198.18.1.1"]), &j2);
        assert!(r[0].problems[0].contains("down --owner crossover:s1"));
        assert!(o[0].contains("crossover:s2 has 1 address"));
        // Dead, and everything removed: nothing to report.
        let dead = status(me, start + 1, &[("198.18.1.1", true)]);
        let (r, _) = assess(&[dead], &kernel(&[]), &BTreeMap::new());
        assert!(r[0].problems.is_empty() && !r[0].running);
    }
}
