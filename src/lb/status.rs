//! The daemon's status file (`<run dir>/lb-run/NAME.json`): what `lbctl lb status` shows, and
//! what a restarted daemon needs to know about the data path its predecessor left behind.
//! Written atomically (temp file + rename) on every change and about once a second.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LastCheck {
    /// RFC 3339 time of the end of the check.
    pub at: String,
    pub ok: bool,
    pub ms: u64,
    /// Why it failed (empty when it passed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackendStatus {
    pub rip: String,
    pub port: u16,
    /// `unknown`, `up` or `down`.
    pub state: String,
    /// Configured weight.
    pub weight: u32,
    /// Weight in the data path now (0: quiesced or not in service).
    pub effective_weight: u32,
    /// In the data path at all (false: removed, or its MAC is not known yet).
    pub in_service: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// RFC 3339 time of the last state change.
    pub since: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check: Option<LastCheck>,
    /// Maglev slots held (nft engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<usize>,
    /// The state was taken over from the previous run and not re-checked yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
    /// Runtime overrides in force (`lbctl lb drain|weight|disable`, a `disable_file`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
    /// Failed checks since the daemon started.
    #[serde(default)]
    pub check_failures: u64,
    /// Traffic to this backend (nft engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counters: Option<crate::lb::stats::BackendCounters>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServiceStatus {
    /// As lbctl writes services: `198.18.0.100:80`, `udp 198.18.0.100:53`.
    pub service: String,
    pub vip: String,
    pub port: u16,
    pub protocol: String,
    pub check: String,
    pub on_failure: String,
    pub backends: Vec<BackendStatus>,
    /// Fewer backends up than its `quorum` (`on_quorum_loss` acts).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quorum_lost: bool,
    /// Quorum lost with `on_quorum_loss = "withdraw"` (and no `[ha]`): its VIP is released.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub withdrawn: bool,
    /// Packets that entered the service (nft engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packets: Option<u64>,
    /// The service's id in the nft engine's table (`198_18_0_100_tcp_80`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nft_id: Option<String>,
    /// `lbctl lb disable` is in force: no new flows to any backend.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

/// What the nft engine left in the kernel.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct NftRecord {
    pub table: String,
    pub iface: String,
    /// Service id → map signature.
    pub maps: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunStatus {
    pub name: String,
    pub pid: u32,
    /// Process start time (clock ticks since boot, /proc/PID/stat field 22): tells a live
    /// daemon from a recycled PID.
    pub pid_start: u64,
    pub config: String,
    pub engine: String,
    pub interface: String,
    /// True once the data path is programmed and every backend has been checked once.
    pub ready: bool,
    pub started: String,
    pub updated: String,
    pub services: Vec<ServiceStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nft: Option<NftRecord>,
    /// Data-path repairs: objects re-asserted after they were changed behind the daemon's back.
    #[serde(default)]
    pub repairs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_repair: Option<String>,
    /// `[ha]`: the VRRP role keepalived reported, and its supervision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ha: Option<crate::lb::ha::keepalived::HaStatus>,
    /// Config reload errors are kept here until a reload succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload_error: Option<String>,
    /// `[bgp]`: the routing daemon, its sessions and what is announced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<crate::lb::announce::AnnounceStatus>,
    /// Successful reloads (SIGHUP) since the daemon started.
    #[serde(default)]
    pub reloads: u64,
    /// Where `/metrics` is served (`[balancer] metrics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
    /// Runtime overrides (taken over by a restarted daemon).
    #[serde(
        default,
        skip_serializing_if = "crate::lb::control::Overrides::is_empty"
    )]
    pub overrides: crate::lb::control::Overrides,
    /// The control socket (`lbctl lb drain|weight|disable` talk to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<String>,
    /// `lbctl lb drain --balancer`: withdrawn, waiting for the pinned flows ([`crate::lb::drain`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<crate::lb::drain::DrainStatus>,
}

pub fn dir(journal_dir: &Path) -> PathBuf {
    journal_dir.join("lb-run")
}

pub fn path(journal_dir: &Path, name: &str) -> PathBuf {
    dir(journal_dir).join(format!("{name}.json"))
}

pub fn write(journal_dir: &Path, s: &RunStatus) -> Result<()> {
    let d = dir(journal_dir);
    std::fs::create_dir_all(&d)?;
    let tmp = d.join(format!(".{}.json.tmp", s.name));
    let body = serde_json::to_string_pretty(s)
        .map_err(|e| Error::Runtime(anyhow::anyhow!("serializing the status: {e}")))?;
    std::fs::write(&tmp, body + "\n")?;
    std::fs::rename(&tmp, path(journal_dir, &s.name))?;
    Ok(())
}

pub fn read(p: &Path) -> Result<Option<RunStatus>> {
    match std::fs::read_to_string(p) {
        Ok(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| Error::Runtime(anyhow::anyhow!("parsing {}: {e}", p.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Runtime(anyhow::anyhow!(
            "reading {}: {e}",
            p.display()
        ))),
    }
}

/// Every status file in the directory, by name.
pub fn read_all(journal_dir: &Path) -> Result<Vec<RunStatus>> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir(journal_dir)) else {
        return Ok(out);
    };
    let mut paths: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    paths.sort();
    for p in paths {
        if let Some(s) = read(&p)? {
            out.push(s);
        }
    }
    Ok(out)
}

/// Who already balances `key` here, other than the balancer `except` (an LB file name): an
/// owner recorded in the journal for that IPVS service, or another `lb run` whose last status
/// lists the same VIP:port and protocol while it runs or its objects are still in place.
/// Returned as the owner and how it holds it, for a usage error naming it.
pub fn vip_port_owner(
    journal_dir: &Path,
    state: &crate::journal::State,
    key: &crate::ipvs::ServiceKey,
    except: Option<&str>,
) -> Option<String> {
    let except_owner = except.map(crate::engine::lb::owner);
    if let Some(o) = crate::engine::lb::service_owner(state, key) {
        if Some(o) != except_owner.as_deref() {
            return Some(format!("{o} (IPVS service {key})"));
        }
    }
    let crate::ipvs::ServiceKey::Inet {
        protocol,
        addr,
        port,
    } = *key
    else {
        return None;
    };
    let proto = protocol.list_name().to_lowercase();
    for s in read_all(journal_dir).ok()? {
        if Some(s.name.as_str()) == except {
            continue;
        }
        let owner = crate::engine::lb::owner(&s.name);
        let alive = s.alive();
        if !alive && !state.lb.contains_key(&owner) {
            continue;
        }
        if s.services.iter().any(|v| {
            v.port == port && v.protocol == proto && v.vip.parse::<std::net::IpAddr>() == Ok(addr)
        }) {
            return Some(format!(
                "{owner} (`lb run` {}, PID {}{})",
                s.name,
                s.pid,
                if alive {
                    ", running"
                } else {
                    ", stopped; its data path is still in place"
                }
            ));
        }
    }
    None
}

impl RunStatus {
    /// The daemon that wrote this is still running.
    pub fn alive(&self) -> bool {
        crate::sys::proc::is_alive(self.pid, self.pid_start)
    }
}
