//! `lab traffic`: requests from the client to the VIP, each on a new connection, and the
//! counters that show which way they went — the switch's (`topology::switch_nft`: every reply
//! from the VIP, and the ones that touched the balancer's port) and eth0 of the client and the
//! balancer (read on a thread inside each namespace from `/proc/thread-self/net/dev`).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;
use serde_json::Value;

use super::build::ns_of;
use super::state::LabState;
use super::{http, signals, topology, PORT};
use crate::error::{Error, Result};
use crate::sys::netns;

/// Timeout of one request from the client.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// `traffic` stops sending after this many failed requests in a row.
const GIVE_UP_AFTER: usize = 3;

/// `--skewed`: uploads of [`UPLOAD_LEN`] bytes each, [`MIN_UPLOADS`] plus one per
/// [`REQUESTS_PER_UPLOAD`] requests (so they outweigh the requests' bytes at any count).
pub const UPLOAD_LEN: usize = 1 << 20;
const MIN_UPLOADS: usize = 8;
const REQUESTS_PER_UPLOAD: usize = 128;
/// Timeout of one upload.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// What the uploads of `lab traffic --skewed` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Skewed {
    /// The backend every upload was meant for (the first one that answered a request).
    pub backend: String,
    pub uploads: usize,
    pub bytes_each: usize,
    /// The client source ports the uploads reused (ports whose requests `backend` answered).
    pub source_ports: Vec<u16>,
    /// Uploads answered per backend (all by `backend` when the flow hash held).
    pub answered_by: BTreeMap<String, usize>,
}

/// Interface byte and packet counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IfCounters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
}

impl IfCounters {
    fn delta(self, before: IfCounters) -> IfCounters {
        IfCounters {
            rx_bytes: self.rx_bytes.saturating_sub(before.rx_bytes),
            rx_packets: self.rx_packets.saturating_sub(before.rx_packets),
            tx_bytes: self.tx_bytes.saturating_sub(before.tx_bytes),
            tx_packets: self.tx_packets.saturating_sub(before.tx_packets),
        }
    }
}

/// One of the switch's counters (see [`topology::switch_nft`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Count {
    pub packets: u64,
    pub bytes: u64,
}

/// What `traffic` saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Traffic {
    pub target: String,
    pub requests: usize,
    /// Answers per backend name.
    pub per_backend: BTreeMap<String, usize>,
    /// Failed requests, with the reason.
    pub failures: Vec<String>,
    /// The switch's counters over the run: `replies`, `replies_via_lb`, `requests_to_lb`,
    /// `requests_from_lb`.
    pub switch: BTreeMap<String, Count>,
    /// The balancer's eth0 over the run.
    pub balancer_eth0: IfCounters,
    /// The client's eth0 over the run.
    pub client_eth0: IfCounters,
    /// The MAC the client has for the VIP afterwards, and the node it belongs to.
    pub vip_mac: Option<String>,
    pub vip_mac_node: Option<String>,
    /// `--skewed`: the uploads after the requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skewed: Option<Skewed>,
}

impl Traffic {
    /// Replies reached the client and none of them passed the balancer's port.
    pub fn replies_bypassed_balancer(&self) -> bool {
        self.switch.get("replies").is_some_and(|c| c.packets > 0)
            && self
                .switch
                .get("replies_via_lb")
                .is_some_and(|c| c.packets == 0)
    }

    /// The DSR verdict on this run over the lab's `backends`: (ok, one line why).
    pub fn verdict(&self, backends: &[String]) -> (bool, String) {
        let silent: Vec<&String> = backends
            .iter()
            .filter(|b| !self.per_backend.contains_key(*b))
            .collect();
        let sw = |k: &str| self.switch.get(k).copied().unwrap_or_default();
        if !self.failures.is_empty() {
            return (false, format!("{} requests failed", self.failures.len()));
        }
        if sw("requests_to_lb").packets == 0 {
            return (
                false,
                "no request reached the balancer: something else answers for the VIP (ARP flux?)"
                    .into(),
            );
        }
        if !self.replies_bypassed_balancer() {
            return (
                false,
                "replies passed through the balancer: this is not DSR".into(),
            );
        }
        // Only with enough requests that a backend getting none is not just chance (< 1e-4).
        if self.requests >= 10 * backends.len() && !silent.is_empty() {
            let s: Vec<&str> = silent.iter().map(|s| s.as_str()).collect();
            return (false, format!("{} answered nothing", s.join(", ")));
        }
        (
            true,
            format!(
                "every request went through the balancer, and all {} reply packets went straight \
                 from the backends to the client",
                sw("replies").packets
            ),
        )
    }
}

/// `/proc/net/dev` of the calling thread's namespace, one interface.
fn read_if_counters(iface: &str) -> Option<IfCounters> {
    let text = std::fs::read_to_string("/proc/thread-self/net/dev").ok()?;
    for line in text.lines().skip(2) {
        let (name, rest) = line.split_once(':')?;
        if name.trim() != iface {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() < 10 {
            return None;
        }
        return Some(IfCounters {
            rx_bytes: f[0],
            rx_packets: f[1],
            tx_bytes: f[8],
            tx_packets: f[9],
        });
    }
    None
}

fn if_counters(ns: &str) -> Result<IfCounters> {
    netns::run_in(ns, || read_if_counters(topology::HOST_IF))?
        .ok_or_else(|| Error::Runtime(anyhow::anyhow!("no {} counters in {ns}", topology::HOST_IF)))
}

/// The switch's named counters.
pub fn switch_counters(sw_ns: &str) -> Result<BTreeMap<String, Count>> {
    named_counters(sw_ns, "bridge")
}

/// The named counters of table `family` [`topology::SWITCH_TABLE`] in `ns`.
pub(super) fn named_counters(ns: &str, family: &str) -> Result<BTreeMap<String, Count>> {
    let nft = netns::find_tool("nft")
        .ok_or_else(|| Error::Runtime(anyhow::anyhow!("`nft` is not installed")))?;
    let out = netns::command(
        ns,
        &[
            &nft.to_string_lossy(),
            "-j",
            "list",
            "counters",
            "table",
            family,
            topology::SWITCH_TABLE,
        ],
    )?
    .stdin(Stdio::null())
    .output()
    .context("running nft")?;
    if !out.status.success() {
        return Err(Error::Runtime(anyhow::anyhow!(
            "reading the counters in {ns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let v: Value = serde_json::from_slice(&out.stdout).context("parsing nft -j output")?;
    let mut m = BTreeMap::new();
    for item in v["nftables"].as_array().into_iter().flatten() {
        let c = &item["counter"];
        if let Some(name) = c["name"].as_str() {
            m.insert(
                name.to_string(),
                Count {
                    packets: c["packets"].as_u64().unwrap_or(0),
                    bytes: c["bytes"].as_u64().unwrap_or(0),
                },
            );
        }
    }
    Ok(m)
}

/// `n` requests, each on a new connection; with `skewed`, then uploads to one backend: they
/// reuse the source ports of requests the first answering backend served, and a flow hash over
/// client address and port (Maglev in `lb run`, its flow map) sends them all to that backend.
/// The balancer sees every upload byte (client → backend): a byte skew with fairly spread flows.
pub(super) fn traffic(st: &LabState, n: usize, vip: IpAddr, skewed: bool) -> Result<Traffic> {
    let client = ns_of(st, "client");
    let lb = ns_of(st, "lb");
    let sw = ns_of(st, "sw");
    let target = SocketAddr::new(vip, PORT);
    let sw0 = switch_counters(&sw)?;
    let lb0 = if_counters(&lb)?;
    let cl0 = if_counters(&client)?;
    let results = netns::run_in(&client, move || {
        let mut v = Vec::with_capacity(n);
        let mut failing = 0;
        for _ in 0..n {
            if signals::interrupted() {
                break;
            }
            if failing >= GIVE_UP_AFTER {
                // Nothing answers (no balancer?): do not wait out every remaining request.
                v.push(Err(std::io::Error::other(format!(
                    "not sent after {GIVE_UP_AFTER} failures in a row"
                ))));
                continue;
            }
            let r = http::get(target, "/", REQUEST_TIMEOUT);
            failing = if r.is_ok() { 0 } else { failing + 1 };
            v.push(r);
        }
        let ups = if skewed {
            uploads(target, &v, MIN_UPLOADS + n / REQUESTS_PER_UPLOAD)
        } else {
            Vec::new()
        };
        (v, ups)
    })?;
    let (results, ups) = results;
    signals::check()?;
    let sw1 = switch_counters(&sw)?;
    let lb1 = if_counters(&lb)?;
    let cl1 = if_counters(&client)?;
    let mut t = Traffic {
        target: target.to_string(),
        requests: n,
        balancer_eth0: lb1.delta(lb0),
        client_eth0: cl1.delta(cl0),
        ..Default::default()
    };
    for (name, after) in sw1 {
        let before = sw0.get(&name).copied().unwrap_or_default();
        t.switch.insert(
            name,
            Count {
                packets: after.packets.saturating_sub(before.packets),
                bytes: after.bytes.saturating_sub(before.bytes),
            },
        );
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
    if skewed {
        t.skewed = Some(skew_report(ups, &mut t.failures));
    }
    let mac = netns::run_in(&client, move || -> Result<Option<String>> {
        let sys = crate::sys::Sys::new()?;
        Ok(sys
            .neighbours()?
            .into_iter()
            .find(|x| x.ip == vip)
            .and_then(|x| {
                x.mac
                    .and_then(|m| crate::sys::mac::Mac::try_from(m.as_slice()).ok())
            })
            .map(|m| crate::sys::mac::fmt_mac(&m)))
    })??;
    t.vip_mac_node = mac.as_ref().and_then(|m| {
        st.nodes
            .iter()
            .find(|n| n.mac.as_deref() == Some(m.as_str()))
            .map(|n| n.node.clone())
    });
    t.vip_mac = mac;
    Ok(t)
}

/// An upload's outcome: the backend meant, the source port, the reply.
type Upload = (String, u16, std::io::Result<http::Reply>);

/// `count` uploads to the first backend that answered in `gets`, from its source ports in turn.
fn uploads(target: SocketAddr, gets: &[std::io::Result<http::Reply>], count: usize) -> Vec<Upload> {
    let answered = |r: &&std::io::Result<http::Reply>| -> Option<(String, u16)> {
        let r = r.as_ref().ok().filter(|r| r.status == 200)?;
        Some((r.body.trim().to_string(), r.local_port))
    };
    let Some((backend, _)) = gets.iter().find_map(|r| answered(&r)) else {
        return Vec::new();
    };
    let ports: Vec<u16> = gets
        .iter()
        .filter_map(|r| answered(&r))
        .filter(|(b, _)| *b == backend)
        .map(|(_, p)| p)
        .collect();
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        if signals::interrupted() {
            break;
        }
        let port = ports[i % ports.len()];
        let r = http::post_from(target, port, UPLOAD_LEN, UPLOAD_TIMEOUT);
        out.push((backend.clone(), port, r));
    }
    out
}

/// Fold the uploads into the report; failed ones go to `failures`.
fn skew_report(ups: Vec<Upload>, failures: &mut Vec<String>) -> Skewed {
    let mut s = Skewed {
        bytes_each: UPLOAD_LEN,
        ..Default::default()
    };
    if ups.is_empty() {
        failures.push("no upload sent: no request was answered".into());
    }
    for (i, (backend, port, r)) in ups.into_iter().enumerate() {
        s.backend = backend;
        s.uploads += 1;
        if !s.source_ports.contains(&port) {
            s.source_ports.push(port);
        }
        match r {
            Ok(r) if r.status == 200 => {
                *s.answered_by.entry(r.body.trim().to_string()).or_default() += 1
            }
            Ok(r) => failures.push(format!("upload {}: HTTP {}", i + 1, r.status)),
            Err(e) => failures.push(format!("upload {} from port {port}: {e}", i + 1)),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_dev_parsing() {
        // Reads this thread's own namespace: lo always exists.
        let c = read_if_counters("lo");
        assert!(c.is_some());
        assert!(read_if_counters("no-such-if0").is_none());
    }

    #[test]
    fn traffic_verdict() {
        let mut t = Traffic::default();
        assert!(!t.replies_bypassed_balancer());
        t.switch.insert(
            "replies".into(),
            Count {
                packets: 90,
                bytes: 9000,
            },
        );
        t.switch.insert("replies_via_lb".into(), Count::default());
        assert!(t.replies_bypassed_balancer());
        t.switch.insert(
            "replies_via_lb".into(),
            Count {
                packets: 1,
                bytes: 60,
            },
        );
        assert!(!t.replies_bypassed_balancer());
    }

    #[test]
    fn dsr_verdict_says_why() {
        let count = |packets| Count {
            packets,
            bytes: packets * 100,
        };
        let backends = ["be1".to_string(), "be2".to_string()];
        let mut t = Traffic {
            requests: 20,
            ..Default::default()
        };
        t.switch.insert("requests_to_lb".into(), count(20));
        t.switch.insert("replies".into(), count(90));
        t.switch.insert("replies_via_lb".into(), count(0));
        t.per_backend.insert("be1".into(), 10);
        t.per_backend.insert("be2".into(), 10);
        let (ok, why) = t.verdict(&backends);
        assert!(ok, "{why}");
        assert!(why.contains("all 90 reply packets"), "{why}");
        t.per_backend.remove("be2");
        assert_eq!(t.verdict(&backends), (false, "be2 answered nothing".into()));
        t.switch.insert("replies_via_lb".into(), count(1));
        assert!(t.verdict(&backends).1.contains("not DSR"));
        t.switch.insert("requests_to_lb".into(), count(0));
        assert!(t.verdict(&backends).1.contains("ARP flux"));
        t.failures.push("timeout".into());
        assert_eq!(t.verdict(&backends), (false, "1 requests failed".into()));
    }
}
