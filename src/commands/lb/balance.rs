//! `lbctl lb balance`: how evenly a running `lb run` spreads traffic. Two readings a window apart
//! give each backend's new flows and bytes in the window — with the nft engine from the daemon's
//! status file (its per-backend counters), with IPVS from the kernel's own per-destination
//! counters (Conns, InBytes). The flows open now are the nft engine's flow map (and how many
//! client addresses they come from) or IPVS's active + inactive connections. Each share
//! is divided by the backend's share of the weights; the skew is max/mean of those ratios (1 is
//! perfectly weighted). The explanation names what the numbers point at.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use serde_json::{json, Value};

use crate::cli::lb::BalanceArgs;
use crate::context::Env;
use crate::error::{Error, Result};
use crate::ipvs::spec::{key_name, parse_service_key};
use crate::ipvs::text::addr_port;
use crate::ipvs::Protocol;
use crate::lb::status::{self, RunStatus, ServiceStatus};
use crate::{usage, Ctx, Outcome};

/// Below this many new flows in the window a share says little.
const FEW_FLOWS: u64 = 50;

/// max/mean of share ÷ weight share over backends with a weight (None: nothing to compare).
pub(crate) fn skew(values: &[u64], weights: &[u32]) -> Option<f64> {
    let total: u64 = values.iter().sum();
    let wsum: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if total == 0 || wsum == 0 {
        return None;
    }
    let ratios: Vec<f64> = values
        .iter()
        .zip(weights)
        .filter(|(_, w)| **w > 0)
        .map(|(v, w)| (*v as f64 / total as f64) / (f64::from(*w) / wsum as f64))
        .collect();
    if ratios.len() < 2 {
        return None;
    }
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    let max = ratios.iter().cloned().fold(0.0, f64::max);
    (mean > 0.0).then_some(max / mean)
}

/// One backend's counters: new flows and bytes since some origin, flows open now.
#[derive(Debug, Clone, Copy, Default)]
struct Reading {
    new_flows: u64,
    bytes: u64,
    open: u64,
}

/// IPVS's counters per (service as lbctl names it, real server address, port).
type IpvsReadings = BTreeMap<(String, IpAddr, u16), Reading>;

/// Every IPVS destination's counters (None: no daemon here uses the IPVS engine).
fn ipvs_readings(daemons: &[RunStatus]) -> Result<Option<IpvsReadings>> {
    if !daemons.iter().any(|d| d.engine == "ipvs") {
        return Ok(None);
    }
    let mut c = crate::ipvs::Client::open()
        .map_err(|e| crate::engine::step::ipvs_error("lb balance: reading IPVS", e))?;
    let entries = c
        .services()
        .map_err(|e| crate::engine::step::ipvs_error("lb balance: listing IPVS", e))?;
    let mut out = BTreeMap::new();
    for e in entries {
        let name = key_name(&e.service.key);
        for d in e.dests {
            out.insert(
                (name.clone(), d.dest.addr, d.dest.port),
                Reading {
                    new_flows: d.stats.conns,
                    bytes: d.stats.inbytes,
                    open: u64::from(d.active_conns) + u64::from(d.inact_conns),
                },
            );
        }
    }
    Ok(Some(out))
}

/// Backend `b` of service `v` of daemon `d`: from IPVS or from the status file's counters.
fn reading(
    d: &RunStatus,
    v: &ServiceStatus,
    b: &status::BackendStatus,
    ipvs: Option<&IpvsReadings>,
) -> Reading {
    if d.engine == "ipvs" {
        let Ok(ip) = b.rip.parse::<IpAddr>() else {
            return Reading::default();
        };
        return ipvs
            .and_then(|m| m.get(&(v.service.clone(), ip, b.port)))
            .copied()
            .unwrap_or_default();
    }
    b.counters
        .as_ref()
        .map(|c| Reading {
            new_flows: c.new_flows,
            bytes: c.bytes,
            open: c.pinned_flows.unwrap_or(0),
        })
        .unwrap_or_default()
}

/// Element `i`'s fraction of the sum (None when the sum is 0).
fn share<T: Copy + Into<u64>>(values: &[T], i: usize) -> Option<f64> {
    let total: u64 = values.iter().map(|v| (*v).into()).sum();
    (total > 0).then(|| values[i].into() as f64 / total as f64)
}

fn find<'a>(s: &'a RunStatus, service: &str) -> Option<&'a ServiceStatus> {
    s.services.iter().find(|v| v.service == service)
}

/// Client addresses behind the flows pinned now (None: the flow map could not be read).
fn clients(d: &RunStatus, v: &ServiceStatus) -> Option<usize> {
    let id = v.nft_id.as_ref()?;
    let doc = crate::sys::nft::list_json(&[
        "map",
        "netdev",
        &crate::lb::nft::table_name(&d.name),
        &format!("f_{id}"),
    ])
    .ok()??;
    let ips: BTreeSet<std::net::IpAddr> = crate::lb::nft::parse_flows(&doc)
        .into_keys()
        .map(|(ip, _)| ip)
        .collect();
    Some(ips.len())
}

pub(super) fn balance(ctx: &Ctx, env: &Env, a: &BalanceArgs) -> Result<Outcome> {
    if !(1..=600).contains(&a.window) {
        return Err(usage!("--window {}: give 1..=600 seconds", a.window));
    }
    let want = match &a.service {
        Some(s) => Some(key_name(
            &parse_service_key(Some(s), a.proto.map(Protocol::from), None, false)
                .map_err(Error::Usage)?,
        )),
        None => None,
    };
    crate::sys::require_net_admin("lb balance")?;
    let running = |all: Vec<RunStatus>| -> Vec<RunStatus> {
        all.into_iter()
            .filter(|d| d.alive())
            .filter(|d| {
                want.as_ref()
                    .is_none_or(|w| d.services.iter().any(|v| &v.service == w))
            })
            .collect()
    };
    let before = running(status::read_all(env.journal.dir())?);
    if before.is_empty() {
        return Err(usage!(
            "no running `lbctl lb run` balances {} here",
            want.as_deref().unwrap_or("anything")
        ));
    }
    if let Some(d) = before
        .iter()
        .find(|d| d.engine != "nft" && d.engine != "ipvs")
    {
        return Err(usage!(
            "`lb run` {} uses the {} engine: lb balance reads the nft engine's or IPVS's \
             per-backend counters",
            d.name,
            d.engine
        ));
    }
    let ipvs0 = ipvs_readings(&before)?;
    ctx.say(format!("watching the counters for {} s …", a.window));
    std::thread::sleep(Duration::from_secs(a.window));
    let after = running(status::read_all(env.journal.dir())?);
    let ipvs1 = ipvs_readings(&after)?;
    let mut report = Vec::new();
    let mut skewed = false;
    for d1 in &after {
        let Some(d0) = before.iter().find(|d| d.name == d1.name) else {
            continue;
        };
        for v in &d1.services {
            if want.as_ref().is_some_and(|w| *w != v.service) {
                continue;
            }
            let Some(v0) = find(d0, &v.service) else {
                continue;
            };
            let now: Vec<Reading> = v
                .backends
                .iter()
                .map(|b| reading(d1, v, b, ipvs1.as_ref()))
                .collect();
            let then: Vec<Reading> = v
                .backends
                .iter()
                .map(|b| {
                    v0.backends
                        .iter()
                        .find(|x| x.rip == b.rip && x.port == b.port)
                        .map(|x| reading(d0, v0, x, ipvs0.as_ref()))
                        .unwrap_or_default()
                })
                .collect();
            let delta = |pick: fn(&Reading) -> u64| -> Vec<u64> {
                now.iter()
                    .zip(&then)
                    .map(|(n, t)| pick(n).saturating_sub(pick(t)))
                    .collect()
            };
            let flows = delta(|c| c.new_flows);
            let bytes = delta(|c| c.bytes);
            let pinned: Vec<u64> = now.iter().map(|c| c.open).collect();
            let weights: Vec<u32> = v.backends.iter().map(|b| b.effective_weight).collect();
            let (sk_f, sk_p, sk_b) = (
                skew(&flows, &weights),
                skew(&pinned, &weights),
                skew(&bytes, &weights),
            );
            let n_flows: u64 = flows.iter().sum();
            let n_clients = clients(d1, v);
            let mut why = Vec::new();
            let fair = |x: Option<f64>| x.is_none_or(|x| x < 1.5);
            if n_flows < FEW_FLOWS {
                why.push(format!(
                    "only {n_flows} new flow(s) in {} s: too few to judge the hashing (use a longer --window)",
                    a.window
                ));
            }
            if let Some(c) = n_clients.filter(|c| *c > 0 && *c < 2 * v.backends.len()) {
                why.push(format!(
                    "the pinned flows come from {c} client address(es): clients behind NAT share \
                     addresses; the nft engine hashes the source port too, so many connections \
                     still spread (with IPVS use mh with --mh-port, or wlc)"
                ));
            }
            if fair(sk_f) && !fair(sk_b) {
                why.push(
                    "new flows are spread by weight but bytes are not: a few long-lived or heavy \
                     connections dominate; hashing cannot see connection size (IPVS with \
                     least-connection, `lb service edit -s wlc`, balances by open connections)"
                        .into(),
                );
            }
            if !fair(sk_f) && n_flows >= FEW_FLOWS {
                why.push(
                    "new flows do not follow the weights: check `lb status` for drained or \
                     overridden backends and `lbctl lb maglev` for the table size"
                        .into(),
                );
            }
            let worst = [sk_f, sk_p, sk_b].into_iter().flatten().fold(1.0, f64::max);
            skewed |= worst >= 1.5;
            let f = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.2}"));
            ctx.say(format!(
                "{} ({}): skew new flows {}, pinned {}, bytes {}",
                v.service,
                d1.name,
                f(sk_f),
                f(sk_p),
                f(sk_b)
            ));
            ctx.say(format!(
                "  {:<26} {:>6} {:>10} {:>10} {:>12}",
                "BACKEND", "WEIGHT", "NEW FLOWS", "PINNED", "BYTES"
            ));
            let rows: Vec<Value> = v
                .backends
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let name = b
                        .rip
                        .parse()
                        .map(|ip| addr_port(&ip, b.port))
                        .unwrap_or_else(|_| b.rip.clone());
                    ctx.say(format!(
                        "  {:<26} {:>6} {:>10} {:>10} {:>12}",
                        name, b.effective_weight, flows[i], pinned[i], bytes[i]
                    ));
                    json!({ "backend": name, "weight": b.effective_weight, "new_flows": flows[i],
                            "pinned_flows": pinned[i], "bytes": bytes[i],
                            "share": { "weight": share(&weights, i), "new_flows": share(&flows, i),
                                       "pinned_flows": share(&pinned, i), "bytes": share(&bytes, i) } })
                })
                .collect();
            for w in &why {
                ctx.say(format!("  → {w}"));
            }
            report.push(json!({
                "service": v.service, "daemon": d1.name, "window_s": a.window,
                "skew": { "new_flows": sk_f, "pinned_flows": sk_p, "bytes": sk_b },
                "clients": n_clients, "backends": rows, "explanation": why,
            }));
        }
    }
    ctx.emit_json(&json!({ "services": report }));
    Ok(if skewed {
        Outcome::Findings
    } else {
        Outcome::Clean
    })
}

#[cfg(test)]
mod tests {
    use super::skew;

    #[test]
    fn skew_is_max_over_mean_of_weighted_shares() {
        assert_eq!(skew(&[10, 10, 10], &[1, 1, 1]), Some(1.0));
        assert_eq!(skew(&[10, 20], &[1, 2]), Some(1.0));
        let s = skew(&[90, 5, 5], &[1, 1, 1]).unwrap();
        assert!((s - 2.7).abs() < 1e-9, "{s}");
        // A drained backend (weight 0) is left out; one backend alone has nothing to compare.
        assert_eq!(skew(&[10, 10, 3], &[1, 1, 0]), Some(1.0));
        assert_eq!(skew(&[10], &[1]), None);
        assert_eq!(skew(&[0, 0], &[1, 1]), None);
    }
}
