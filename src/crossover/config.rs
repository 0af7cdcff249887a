//! The agent's config file (`lbctl crossover run -c FILE`), as `crossover plan` writes it: this
//! server's index, the whole address table, timers, and an optional health check of the server's
//! own service (the keys of an LB file's `[service.check]`). Everything is validated before the
//! agent touches anything.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::plan::{self, Assignment, Table};
use crate::error::{Error, Result};
use crate::lb::config::{parse_duration, service_run, Check, CheckToml, Probe};
use crate::model::IfName;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    server: usize,
    servers: usize,
    tiers: Option<usize>,
    interface: Option<String>,
    heartbeat: Option<String>,
    secondary_timeout: Option<String>,
    tertiary_timeout: Option<String>,
    /// Where the health check connects (default 127.0.0.1).
    check_address: Option<IpAddr>,
    check: Option<CheckToml>,
    #[serde(default)]
    address: Vec<Assignment>,
}

/// A validated agent config.
#[derive(Debug, Clone)]
pub struct Config {
    /// This server (1-based).
    pub server: usize,
    pub table: Table,
    pub interface: IfName,
    pub heartbeat: Duration,
    /// A secondary claims after this long without a claim by the primary.
    pub secondary_timeout: Duration,
    /// A tertiary claims after this long without a claim by the primary or the secondary.
    pub tertiary_timeout: Duration,
    pub check: Option<(Check, IpAddr)>,
}

impl Config {
    /// This server's tier for `addr` (0 primary, 1 secondary, 2 tertiary), if it has one.
    pub fn tier_of(&self, a: &Assignment) -> Option<usize> {
        a.tiers.iter().position(|s| *s == self.server)
    }

    /// The addresses this server has a tier for, with that tier.
    pub fn mine(&self) -> Vec<(Ipv4Addr, usize)> {
        self.table
            .addrs
            .iter()
            .filter_map(|a| self.tier_of(a).map(|t| (a.addr, t)))
            .collect()
    }

    /// How long silence from every higher tier must last before tier `tier` claims.
    pub fn timeout(&self, tier: usize) -> Duration {
        match tier {
            0 => Duration::ZERO,
            1 => self.secondary_timeout,
            _ => self.tertiary_timeout,
        }
    }

    /// The owner the agent's addresses are journaled under.
    pub fn owner(&self) -> String {
        owner(self.server)
    }
}

/// `crossover:s2`: the journal owner of server 2's agent.
pub fn owner(server: usize) -> String {
    format!("crossover:{}", plan::name(server))
}

const MAX_BYTES: u64 = 4 << 20;

/// Read and validate a config file.
pub fn load(path: &Path) -> Result<Config> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?
        .len();
    if len > MAX_BYTES {
        return Err(Error::Usage(format!(
            "{}: larger than 4 MiB",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
    parse(&text).map_err(|e| Error::Usage(format!("{}: {e}", path.display())))
}

/// Parse and validate config text.
pub fn parse(text: &str) -> std::result::Result<Config, String> {
    let f: FileToml = toml::from_str(text).map_err(|e| e.to_string())?;
    let tiers = f.tiers.unwrap_or(2);
    let table = Table {
        servers: f.servers,
        tiers,
        addrs: f.address,
    };
    if table.addrs.is_empty() {
        return Err("no [[address]] entries".into());
    }
    plan::check(&table)?;
    if f.server == 0 || f.server > f.servers {
        return Err(format!(
            "server = {}: no such server (servers are 1…{})",
            f.server, f.servers
        ));
    }
    let interface =
        IfName::new(f.interface.as_deref().unwrap_or("eth0")).map_err(|e| e.to_string())?;
    let dur = |v: &Option<String>, key: &str, d: u64| -> std::result::Result<Duration, String> {
        match v {
            Some(s) => parse_duration(s).map_err(|e| format!("{key}: {e}")),
            None => Ok(Duration::from_millis(d)),
        }
    };
    let heartbeat = dur(&f.heartbeat, "heartbeat", 100)?;
    let secondary_timeout = dur(&f.secondary_timeout, "secondary_timeout", 350)?;
    let tertiary_timeout = dur(&f.tertiary_timeout, "tertiary_timeout", 700)?;
    if secondary_timeout < heartbeat * 2 {
        return Err(format!(
            "secondary_timeout ({secondary_timeout:?}) must be at least two heartbeats \
             ({heartbeat:?} each): one lost announcement would move addresses"
        ));
    }
    if tiers == 3 && tertiary_timeout <= secondary_timeout {
        return Err(format!(
            "tertiary_timeout ({tertiary_timeout:?}) must be longer than secondary_timeout \
             ({secondary_timeout:?})"
        ));
    }
    let check = match &f.check {
        None => None,
        Some(c) => {
            let run = service_run(Some(c), None)?;
            if run.check.dsr {
                return Err("check: dsr is for balancers, not for a crossover agent".into());
            }
            if run.check.port.is_none() && !matches!(run.check.probe, Probe::Exec { .. }) {
                return Err("check: give the port of this server's service (port = 80)".into());
            }
            Some((
                run.check,
                f.check_address.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            ))
        }
    };
    if f.check.is_none() && f.check_address.is_some() {
        return Err("check_address without a [check]".into());
    }
    Ok(Config {
        server: f.server,
        table,
        interface,
        heartbeat,
        secondary_timeout,
        tertiary_timeout,
        check,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crossover::plan::{agent_config, build, AgentDefaults, Request};

    fn generated(n: usize, tiers: usize, s: usize) -> String {
        let t = build(&Request {
            servers: n,
            tiers,
            ranges: vec!["198.18.1.0/24".parse().unwrap()],
        })
        .unwrap();
        agent_config(&t, s, &AgentDefaults::default(), "test")
    }

    #[test]
    fn generated_configs_parse() {
        let c = parse(&generated(3, 3, 2)).unwrap();
        assert_eq!(c.server, 2);
        assert_eq!(c.mine().len(), 6);
        assert_eq!(c.heartbeat, Duration::from_millis(100));
        assert_eq!(c.owner(), "crossover:s2");
        assert!(c.check.is_none());
    }

    #[test]
    fn bad_configs() {
        let g = generated(3, 2, 1);
        let e = parse(&g.replace("server = 1\n", "server = 4\n")).unwrap_err();
        assert!(e.contains("server = 4: no such server"), "{e}");
        let e = parse(&g.replace("tiers = [1, 2]", "tiers = [1, 5]")).unwrap_err();
        assert!(e.contains("server 5 does not exist"), "{e}");
        let e = parse(&g.replace("heartbeat = \"100ms\"", "heartbeat = \"300ms\"")).unwrap_err();
        assert!(e.contains("two heartbeats"), "{e}");
        let e = parse(&format!("{g}\n[check]\ntype = \"tcp\"\n")).unwrap_err();
        assert!(e.contains("port"), "{e}");
        let ok = parse(&format!("{g}\n[check]\ntype = \"http\"\nport = 80\n")).unwrap();
        assert!(matches!(ok.check, Some((_, a)) if a == IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }
}
