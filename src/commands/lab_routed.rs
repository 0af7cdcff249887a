//! `lbctl lab` for routed labs (`lab up --balancers K --routing bgp`): the parts of `up`,
//! `traffic`, `status` and `break` that only a router and several balancers have, and
//! `traffic --long` (any lab).

use serde_json::json;

use super::{name_flag, Ui};
use crate::cli::lab::BreakArgs;
use crate::error::Result;
use crate::lab::{BalancerFault, Lab, LabStatus, VipRoute};
use crate::{Ctx, Outcome};

/// `VIP via lb1 lb2`, one line per VIP.
pub(super) fn print_next_hops(ctx: &Ctx, ui: &Ui, hops: &[VipRoute]) {
    for r in hops {
        let via = if r.via.is_empty() {
            ui.red("no route")
        } else {
            format!("via {}", r.via.join(", "))
        };
        ui.line(
            ctx,
            format!(
                "  router: {} {via} ({} next hop{})",
                r.vip,
                r.via.len(),
                if r.via.len() == 1 { "" } else { "s" }
            ),
        );
    }
}

/// `lb1 MASTER, lb2 BACKUP; ARP for VIP: lb1` (VRRP labs).
pub(super) fn print_vrrp(ctx: &Ctx, ui: &Ui, st: &LabStatus) {
    if st.vrrp.is_empty() {
        return;
    }
    let roles: Vec<String> = st
        .vrrp
        .iter()
        .map(|r| format!("{} {}", r.node, r.role))
        .collect();
    ui.line(
        ctx,
        format!(
            "  vrrp: {}; ARP for {} answered by {}",
            roles.join(", "),
            crate::lab::VIP4,
            st.vip_owner.as_deref().unwrap_or("nobody yet")
        ),
    );
}

/// The end of `up` for a VRRP lab.
fn print_up_vrrp(ctx: &Ctx, ui: &Ui, lab: &Lab, st: &LabStatus) {
    let name_flag = name_flag(lab.name());
    ui.line(
        ctx,
        format!(
            "{} lab '{}' is up: {} backends behind {} balancers (lbctl lb run with [ha]: \
             keepalived VRRP, engine {}) sharing {}",
            ui.green("✓"),
            lab.name(),
            st.backends,
            st.vrrp.len(),
            st.engine.as_str(),
            st.vip.join(" and "),
        ),
    );
    super::print_nodes(ctx, ui, st);
    print_vrrp(ctx, ui, st);
    ui.line(ctx, "");
    ui.line(ctx, ui.bold("Try:"));
    for l in [
        format!("lbctl lab traffic{name_flag}            # requests to the VIP: who owns it, which backend"),
        format!("lbctl lab break{name_flag} lb1 down     # SIGKILL the MASTER's lb run (or: isolate)"),
        format!("lbctl lab status{name_flag}             # who is MASTER, who answers ARP"),
        format!("lbctl lab down{name_flag}"),
    ] {
        ui.line(ctx, format!("  {l}"));
    }
}

/// The end of `up` for a routed lab.
pub(super) fn print_up(ctx: &Ctx, ui: &Ui, lab: &Lab, st: &LabStatus) {
    if st.routing == Some(crate::lab::Routing::Vrrp) {
        return print_up_vrrp(ctx, ui, lab, st);
    }
    let name_flag = name_flag(lab.name());
    let balancers = lab
        .nodes()
        .iter()
        .filter(|n| n.role == crate::lab::Role::Balancer)
        .count();
    ui.line(
        ctx,
        format!(
            "{} lab '{}' is up: {} backends behind {balancers} balancers (lbctl lb run with \
             [bgp], engine {}) and a router (BIRD 2, ECMP) announcing {}",
            ui.green("✓"),
            lab.name(),
            st.backends,
            st.engine.as_str(),
            st.vip.join(" and "),
        ),
    );
    super::print_nodes(ctx, ui, st);
    print_next_hops(ctx, ui, &st.next_hops);
    ui.line(ctx, "");
    ui.line(ctx, ui.bold("Try:"));
    for l in [
        format!("lbctl lab traffic{name_flag}            # requests via the router: which balancer, which backend"),
        format!("lbctl lab traffic{name_flag} --long 20  # 20 slow downloads; meanwhile, in another terminal:"),
        format!("lbctl lab break{name_flag} lb1 down     # SIGKILL lb1's lb run (or: drain)"),
        format!("lbctl lab status{name_flag}             # the router's next hops"),
        format!(
            "lbctl lab exec{name_flag} router -- birdc -s {} show protocols",
            lab.dir().join("router-bird.ctl").display()
        ),
        format!("lbctl lab down{name_flag}"),
    ] {
        ui.line(ctx, format!("  {l}"));
    }
}

/// `lab traffic` in a routed lab.
pub(super) fn traffic(ctx: &Ctx, lab: &Lab, requests: usize) -> Result<Outcome> {
    let t = lab.traffic_routed(requests)?;
    let ok = t.failures.is_empty();
    if ctx.global.json {
        ctx.emit_json(&json!({ "traffic": t, "ok": ok }));
    } else {
        let ui = Ui::new(ctx);
        ui.line(
            ctx,
            ui.bold(&format!(
                "{} requests from the client to {}{}:",
                t.requests,
                t.target,
                if t.vip_owner.is_some() {
                    ""
                } else {
                    " (through the router)"
                }
            )),
        );
        for (lb, n) in &t.per_balancer {
            ui.line(ctx, format!("  via {lb:<5} {n:>6} packets"));
        }
        if let Some(o) = &t.vip_owner {
            ui.line(ctx, format!("  the client's ARP entry for the VIP: {o}"));
        }
        for (be, n) in &t.per_backend {
            ui.line(ctx, format!("  {be:<9} {n:>6} answers"));
        }
        let answered = t.per_backend.values().sum();
        ui.traffic_verdict(ctx, &t.failures, answered, t.requests, "");
    }
    Ok(if ok {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}

/// `lab traffic --long N`.
pub(super) fn long(ctx: &Ctx, lab: &Lab, n: usize) -> Result<Outcome> {
    if n == 0 || n > 1000 {
        return Err(crate::usage!("--long must be between 1 and 1000"));
    }
    let ui = Ui::new(ctx);
    if !ctx.global.json {
        let hint = if lab.state().routing.is_some() {
            format!(
                "; break something from another terminal now (`lbctl lab break{} lb1 down`)…",
                name_flag(lab.name())
            )
        } else {
            " (this lab's backends are not paced: they finish quickly)".to_string()
        };
        ui.line(
            ctx,
            format!(
                "{n} long downloads ({} bytes each) from the client to {}{hint}",
                crate::lab::http::BIG_LEN,
                lab.state().vip4(),
            ),
        );
    }
    let t = lab.traffic_long(n)?;
    let ok = t.intact == t.downloads;
    if ctx.global.json {
        ctx.emit_json(&json!({ "long": t, "ok": ok }));
    } else {
        for (be, k) in &t.per_backend {
            ui.line(ctx, format!("  {be:<9} {k:>5} intact"));
        }
        for b in t.broken.iter().take(10) {
            ui.line(ctx, ui.red(&format!("  ✗ {b}")));
        }
        ui.line(
            ctx,
            format!(
                "{} {}/{} long downloads completed byte-intact ({:.1} s)",
                if ok { ui.green("✓") } else { ui.red("✗") },
                t.intact,
                t.downloads,
                t.seconds
            ),
        );
    }
    Ok(if ok {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}

/// `lab break lbN down|drain`.
pub(super) fn break_balancer(
    ctx: &Ctx,
    lab: &Lab,
    a: &BreakArgs,
    fault: BalancerFault,
) -> Result<Outcome> {
    let hops = lab.inject_balancer(&a.node, fault)?;
    let st = lab.status();
    if ctx.global.json {
        ctx.emit_json(&json!({
            "lab": lab.name(),
            "node": a.node,
            "fault": fault,
            "next_hops": hops,
            "vrrp": st.vrrp,
            "vip_owner": st.vip_owner,
        }));
    } else {
        let ui = Ui::new(ctx);
        ui.line(
            ctx,
            format!("{} {}: {}", ui.yellow("broke"), a.node, fault.describe()),
        );
        print_next_hops(ctx, &ui, &hops);
        print_vrrp(ctx, &ui, &st);
    }
    Ok(Outcome::Clean)
}
