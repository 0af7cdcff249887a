//! `lb list` (like `ipvsadm -Ln`, or JSON) and `lb save` (`ipvsadm -S -n` rules).

use serde_json::{json, Value};

use super::{ipvs_err, Ipvs};
use crate::cli::lb::ListArgs;
use crate::context::Env;
use crate::error::{Error, Result};
use crate::ipvs::spec::{key_name, parse_service_key};
use crate::ipvs::text::{self, SaveDialect};
use crate::ipvs::{
    self, Client, Family, Forward, ListKind, ListOptions, Protocol, ServiceEntry, ServiceFlags,
    ServiceKey, Stats,
};
use crate::sys::abi;
use crate::{usage, Ctx, Outcome};

fn stats_json(s: &Stats) -> Value {
    json!({
        "conns": s.conns, "inpkts": s.inpkts, "outpkts": s.outpkts,
        "inbytes": s.inbytes, "outbytes": s.outbytes,
        "cps": s.cps, "inpps": s.inpps, "outpps": s.outpps, "inbps": s.inbps, "outbps": s.outbps,
    })
}

fn method_json(f: Forward) -> &'static str {
    match f {
        Forward::Dr => "dr",
        Forward::Tun => "tun",
        Forward::Nat => "nat",
        Forward::Local => "local",
    }
}

/// One service as JSON (stable field names; documented in the README's `lb` section).
pub fn service_json(e: &ServiceEntry) -> Value {
    let s = &e.service;
    let (protocol, address, port, fwmark) = match s.key {
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => (
            Some(protocol.list_name().to_lowercase()),
            Some(addr.to_string()),
            Some(port),
            None,
        ),
        ServiceKey::Fwmark { mark, .. } => (None, None, None, Some(mark)),
    };
    let backends: Vec<Value> = e
        .dests
        .iter()
        .map(|d| {
            json!({
                "address": d.dest.addr.to_string(),
                "port": d.dest.port,
                "method": method_json(d.dest.fwd),
                "weight": d.dest.weight,
                "u_threshold": d.dest.u_thresh,
                "l_threshold": d.dest.l_thresh,
                "active_conns": d.active_conns,
                "inactive_conns": d.inact_conns,
                "persistent_conns": d.persist_conns,
                "stats": stats_json(&d.stats),
            })
        })
        .collect();
    json!({
        "service": key_name(&s.key),
        "family": match s.key.family() { Family::Inet => "ipv4", Family::Inet6 => "ipv6" },
        "protocol": protocol,
        "address": address,
        "port": port,
        "fwmark": fwmark,
        "scheduler": s.scheduler.name(),
        "flags": s.flags.sched_flag_names(&s.scheduler),
        "persistent": s.is_persistent().then_some(s.timeout),
        "netmask": s.is_persistent().then(|| s.netmask.to_string()),
        "pe": s.pe_name,
        "one_packet": s.flags.contains(ServiceFlags::ONE_PACKET),
        "stats": stats_json(&e.stats),
        "backends": backends,
    })
}

pub(super) fn list(ctx: &Ctx, env: &Env, a: &ListArgs) -> Result<Outcome> {
    let filter = match &a.service {
        Some(s) => Some(
            parse_service_key(Some(s), a.proto.map(Protocol::from), None, a.ipv6)
                .map_err(Error::Usage)?,
        ),
        None => None,
    };
    let mut c = match Client::open() {
        Ok(c) => c,
        Err(ipvs::Error::NoIpvs) => {
            // No IPVS: what `lb run` programs with the nft engine, if anything.
            let nft: Vec<_> = crate::lb::status::read_all(env.journal.dir())?
                .into_iter()
                .filter(|s| s.engine == "nft" && s.alive())
                .collect();
            if nft.is_empty() {
                return Err(ipvs_err(ipvs::Error::NoIpvs));
            }
            let counters = (a.stats || a.rate).then_some((a.rate, a.exact));
            return super::run::list_nft(ctx, env, &nft, filter.as_ref(), counters);
        }
        Err(e) => return Err(ipvs_err(e)),
    };
    let info = c.info().map_err(ipvs_err)?;
    let entries = match filter {
        Some(k) => match c.service(&k) {
            Ok(e) => vec![e],
            Err(ipvs::Error::Kernel {
                errno: abi::ESRCH, ..
            }) => return Err(usage!("no service {}", key_name(&k))),
            Err(e) => return Err(ipvs_err(e)),
        },
        None => c.services().map_err(ipvs_err)?,
    };
    if ctx.global.json {
        let services: Vec<Value> = text::sorted(&entries).iter().map(service_json).collect();
        ctx.emit_json(&json!({
            "version": info.version_string(),
            "conn_tab_size": info.conn_tab_size,
            "services": services,
        }));
        return Ok(Outcome::Clean);
    }
    let kind = if a.stats {
        ListKind::Stats
    } else if a.rate {
        ListKind::Rate
    } else {
        ListKind::Plain
    };
    let opts = ListOptions {
        kind,
        exact: a.exact,
    };
    let out = match filter {
        // like `ipvsadm -Ln -t SERVICE`: no version line
        Some(_) => text::format_list(None, &entries, opts),
        None => text::format_list(Some(&info), &entries, opts),
    };
    ctx.say(out.trim_end_matches('\n'));
    Ok(Outcome::Clean)
}

pub(super) fn save(ctx: &Ctx) -> Result<Outcome> {
    let mut c = Ipvs::read()?;
    let entries = c.services().map_err(ipvs_err)?;
    // ipvsadm -S -n, plus -x/-y on real servers with thresholds (which ipvsadm -R accepts)
    let out = text::save(&entries, SaveDialect::Lossless);
    if ctx.global.json {
        let rules: Vec<&str> = out.lines().collect();
        ctx.emit_json(&json!({ "rules": rules }));
    } else {
        // the data itself: printed even with --quiet
        print!("{out}");
    }
    Ok(Outcome::Clean)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::Destination;

    #[test]
    fn list_json_field_names() {
        let e = ServiceEntry {
            service: ipvs::Service::new(ServiceKey::tcp("198.18.0.100:80".parse().unwrap()), "mh")
                .flags(ServiceFlags::MH_PORT)
                .persistent(300),
            stats: Stats::default(),
            dests: vec![ipvs::DestEntry {
                dest: Destination::dr("198.18.0.11:80".parse().unwrap()),
                active_conns: 2,
                inact_conns: 1,
                persist_conns: 0,
                stats: Stats::default(),
            }],
        };
        let v = service_json(&e);
        assert_eq!(v["service"], "198.18.0.100:80");
        assert_eq!(v["protocol"], "tcp");
        assert_eq!(v["flags"], json!(["mh-port"]));
        assert_eq!(v["persistent"], 300);
        assert_eq!(v["netmask"], "255.255.255.255");
        assert_eq!(v["backends"][0]["method"], "dr");
        assert_eq!(v["backends"][0]["active_conns"], 2);
        assert_eq!(v["stats"]["outpkts"], 0);
    }
}
