//! `lbctl firewall check`: would this host's firewall pass a DSR flow? The question `ip route
//! get` answers for routing, asked of nftables (iptables-nft included) for the client's SYN to
//! VIP:PORT and the SYN-ACK back.
//!
//! This verb only gathers: one `nft -j list ruleset`, two route lookups, the legacy-iptables
//! table list. The verdict is `crate::firewall`'s (pure, unit-tested). Exit 0 when both
//! directions accept, 1 when one drops or could not be checked — never a ✓ it cannot back.

use std::net::IpAddr;

use clap::{Args, Subcommand};
use serde_json::json;

use super::doctor::parse_target;
use super::Env;
use crate::error::Result;
use crate::firewall::{self, Check, PathVerdict, Proto, Query, Ruleset, Verdict};
use crate::model::{parse_ip, same_family};
use crate::sys::{iptables, nft};
use crate::{usage, Ctx, Outcome};

#[derive(Debug, Subcommand)]
pub enum FirewallCmd {
    /// The verdict for one flow: the client's SYN to VIP:PORT, and the SYN-ACK back.
    ///
    /// Walks the nftables base chains (iptables-nft rules included) in priority order: hooks
    /// ingress, prerouting and input for the client's first packet (ct state new); output,
    /// postrouting and egress for the reply from the VIP (ct state established), following jumps, gotos, sets and verdict
    /// maps; `fib saddr . iif oif missing` is judged with `ip route get CLIENT from VIP`. Each
    /// direction is accepted, dropped (naming table, chain, handle and rule, with a fix to paste),
    /// or "could not check" (naming the rules lbctl cannot evaluate: marks, limits, xt matches…).
    /// Legacy (x_tables) iptables is not evaluated; a warning says when it is loaded.
    ///
    /// Exit codes: 0 both directions accepted; 1 a direction is dropped or could not be checked.
    ///
    /// Example: lbctl --netns be1 firewall check --vip 198.18.0.100:80 --client 198.18.0.10
    Check(FirewallCheckArgs),
}

#[derive(Debug, Args)]
pub struct FirewallCheckArgs {
    /// The service: `198.18.0.100:80` or `[2001:db8::100]:80`.
    #[arg(long, value_name = "VIP:PORT")]
    pub vip: String,
    /// The client address the packet comes from.
    #[arg(long, value_name = "IP")]
    pub client: String,
    /// Interface the client's packets arrive on (default: the route towards the client).
    #[arg(long, value_name = "IF")]
    pub iface: Option<String>,
    /// Transport protocol of the service.
    #[arg(long, value_enum, default_value_t)]
    pub proto: Proto,
}

pub fn run(ctx: &Ctx, env: &Env, cmd: FirewallCmd) -> Result<Outcome> {
    match cmd {
        FirewallCmd::Check(a) => check(ctx, env, a),
    }
}

/// The routing answers the evaluator needs, looked up the way the kernel's fib expression does
/// (`ip route get CLIENT from VIP`, policy rules included).
fn query(
    env: &Env,
    vip: IpAddr,
    port: u16,
    client: IpAddr,
    iface: Option<String>,
    proto: Proto,
) -> Query {
    let iif = iface.or_else(|| {
        env.sys
            .route_get(client, None, None)
            .ok()
            .and_then(|l| l.dev)
    });
    let reply = env.sys.route_get(client, Some(vip), None).ok();
    let mut q = Query::new(vip, port, client, proto, iif, reply.as_ref());
    q.vip_local = env
        .sys
        .addresses()
        .ok()
        .map(|a| a.iter().any(|x| x.obj.addr == vip));
    q
}

fn check(ctx: &Ctx, env: &Env, a: FirewallCheckArgs) -> Result<Outcome> {
    let (vip, port) = parse_target(&a.vip)?;
    let port = port.ok_or_else(|| usage!("--vip needs a port: VIP:PORT or [V6]:PORT"))?;
    let client = parse_ip(&a.client, "client")?;
    same_family(vip, client, "firewall check")?;
    if let Some(i) = &a.iface {
        env.require_link(i)?;
    }
    let doc = nft::list_json(&["ruleset"])?.unwrap_or_else(|| json!({"nftables": []}));
    let rs = Ruleset::parse(&doc);
    let q = query(env, vip, port, client, a.iface.clone(), a.proto);
    if a.iface.is_none() {
        ctx.detail(format!(
            "iif {}: the route towards {client} (requests that arrive elsewhere: --iface)",
            q.iif.as_deref().unwrap_or("unknown")
        ));
    }
    let c = firewall::check(&rs, &q);
    let legacy = iptables::legacy_tables();
    let netns = ctx.global.netns.as_deref();
    if !legacy.is_empty() {
        ctx.warn(format!(
            "legacy iptables tables are loaded here ({}) and were not evaluated: see iptables-legacy-save",
            legacy.join(", ")
        ));
    }
    let overall = overall(&c);
    if ctx.global.json {
        ctx.emit_json(&json!({
            "vip": vip.to_string(),
            "port": port,
            "proto": a.proto.name(),
            "client": client.to_string(),
            "iif": q.iif,
            "iif_from": if a.iface.is_some() { "--iface" } else { "route towards the client" },
            "oif": q.oif,
            "route_back_via_iif": q.route_back_via_iif,
            "verdict": overall,
            "ok": overall == "accept",
            "request": c.request.to_json(&rs, &q, netns),
            "reply": c.reply.to_json(&rs, &q, netns),
            "legacy_iptables": legacy,
        }));
    } else {
        for p in [&c.request, &c.reply] {
            for line in human(&rs, &q, p, netns) {
                ctx.say(line);
            }
        }
        let unseen = if legacy.is_empty() {
            ""
        } else {
            " (legacy iptables not evaluated)"
        };
        ctx.say(match overall {
            "accept" => format!("both directions accepted{unseen}"),
            "drop" => "the firewall drops this flow".to_string(),
            _ => "could not check: rules above could not be evaluated".to_string(),
        });
    }
    Ok(if overall == "accept" {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}

/// `drop` if either direction drops, else `unknown` if either is unknown, else `accept`.
pub fn overall(c: &Check) -> &'static str {
    let words = [c.request.word(), c.reply.word()];
    if words.contains(&"drop") {
        "drop"
    } else if words.contains(&"unknown") {
        "unknown"
    } else {
        "accept"
    }
}

/// The checklist lines for one direction; "could not check" is never marked ✓ or ✗.
fn human(rs: &Ruleset, q: &Query, p: &PathVerdict, netns: Option<&str>) -> Vec<String> {
    let what = match p.direction {
        firewall::Direction::Request => "request",
        firewall::Direction::Reply => "reply",
    };
    let (mark, word) = match p.verdict {
        Verdict::Accept => ("✓", "accepted"),
        Verdict::Drop { .. } => ("✗", "dropped"),
        Verdict::Unknown { .. } => ("?", "could not check"),
    };
    let mut out = vec![format!("{mark} {what}: {}: {word}", p.describe(q))];
    out.extend(p.evidence().into_iter().map(|e| format!("    {e}")));
    if let Verdict::Drop { by, .. } = &p.verdict {
        let f = firewall::fix(rs, q, p.direction, by, netns);
        out.push(format!("    fix: {}", f.insert));
        if let Some(d) = f.delete {
            out.push(format!("    or remove the rule: {d}"));
        }
    }
    out
}
