//! `lbctl arp who-has ADDR [--iface IF] [--timeout MS]`: every MAC on the segment that answers
//! ARP (a neighbour solicitation for IPv6) for ADDR, asked from the interface's own address.
//! Two MACs for a VIP is ARP flux: clients reach whichever answered last. Read-only; the
//! requests stay on the segment. Exit 0 when exactly one host claims ADDR (this host counts
//! when ADDR is on the interface), 1 when none or several do.

use std::net::IpAddr;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::Env;
use crate::doctor::backend::mac;
use crate::error::Result;
use crate::model::parse_ip;
use crate::sys::whohas::{who_has, Query};
use crate::{usage, Ctx, Outcome};

#[derive(Debug, Args)]
pub struct WhoHasArgs {
    /// The address to ask about (a VIP, a balancer, any neighbour).
    pub addr: String,
    /// The interface to ask on (default: the one the route to ADDR, or ADDR itself, is on).
    #[arg(long, value_name = "IF")]
    pub iface: Option<String>,
    /// How long to listen for answers, in milliseconds (1-10000).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub timeout: u64,
}

/// The interface to ask on for `target`: the route's device, or, for a local address (routed
/// to `lo`), the interface holding it.
pub fn iface_for(env: &Env, target: IpAddr) -> Result<String> {
    let addrs = env.sys.addresses()?;
    if let Some(a) = addrs
        .iter()
        .find(|a| a.obj.addr == target && a.obj.dev != "lo")
    {
        return Ok(a.obj.dev.to_string());
    }
    match env.sys.route_get(target, None, None)?.dev {
        Some(d) if d != "lo" => Ok(d),
        _ => Err(usage!(
            "{target} is not on any segment of this host: name the interface with --iface"
        )),
    }
}

pub fn run(ctx: &Ctx, env: &Env, a: WhoHasArgs) -> Result<Outcome> {
    let target = parse_ip(&a.addr, "address")?;
    if !(1..=10_000).contains(&a.timeout) {
        return Err(usage!("--timeout takes 1 to 10000 milliseconds"));
    }
    if let Some(i) = &a.iface {
        env.require_link(i)?;
    }
    let iface = match a.iface {
        Some(i) => i,
        None => iface_for(env, target)?,
    };
    let links = env.sys.links()?;
    let addrs = env.sys.addresses()?;
    let q = Query::from_iface(
        &links,
        &addrs,
        &iface,
        vec![target],
        Duration::from_millis(a.timeout),
        false,
    )?;
    let answers = who_has(&q)?;
    let local = addrs
        .iter()
        .any(|x| x.obj.addr == target && x.obj.dev == iface);
    let own = mac(&q.src_mac);
    let claimants = answers.len() + usize::from(local);
    if ctx.global.json {
        ctx.emit_json(&json!({
            "addr": target.to_string(),
            "iface": iface,
            "from": { "mac": own, "ip": match target {
                IpAddr::V4(_) => q.src4.map(|x| x.to_string()),
                IpAddr::V6(_) => q.src6.map(|x| x.to_string()),
            }},
            "timeout_ms": a.timeout,
            "answers": answers.iter().map(|x| json!({"mac": mac(&x.mac), "ms": x.ms})).collect::<Vec<_>>(),
            "local": local.then(|| json!({"mac": own, "iface": iface})),
            "claimants": claimants,
        }));
    } else {
        ctx.say(format!(
            "who-has {target} on {iface} (from {own}, {} ms):",
            a.timeout
        ));
        for x in &answers {
            ctx.say(format!("  {}  {} ms", mac(&x.mac), x.ms));
        }
        if local {
            ctx.say(format!(
                "  {own}  this host ({target} is on {iface}; its own answers are not seen on the wire)"
            ));
        }
        match claimants {
            0 => ctx.say("  no answer"),
            1 => {}
            n => ctx.say(format!(
                "  {n} hosts claim {target}: ARP flux (clients reach whichever answered last)"
            )),
        }
    }
    Ok(if claimants == 1 {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}
