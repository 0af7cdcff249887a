//! `lbctl lab` for crossover labs (`lab up --topology crossover --servers N`): `up`,
//! `traffic`, `status` and `break` of a lab with a router and servers running the crossover
//! agent instead of a balancer.

use std::path::PathBuf;

use serde_json::json;

use super::{exit_interrupted, lbctl_exe, name_flag, print_nodes, require_root, Ui};
use crate::cli::lab::{BreakArgs, BreakKind, UpArgs};
use crate::error::Result;
use crate::lab::{
    self, signals, state, BalancerFault, CrossoverSpec, CrossoverStatus, Lab, LabSpec, LabStatus,
    ServerFault,
};
use crate::{usage, Ctx, Outcome};

/// `lab up --topology crossover --servers N [--tiers T]`.
pub(super) fn up(ctx: &Ctx, a: UpArgs, run_dir: PathBuf) -> Result<Outcome> {
    let unsupported = [
        (
            a.backends.is_some(),
            "--backends (a crossover lab has --servers N)",
        ),
        (a.balancers.is_some(), "--balancers"),
        (a.routing.is_some(), "--routing"),
        (a.ipv6, "--ipv6"),
        (a.profile.is_some(), "--profile"),
        (a.engine.is_some(), "--engine"),
        (a.no_balancer, "--no-balancer"),
    ];
    if let Some((_, flag)) = unsupported.iter().find(|(on, _)| *on) {
        return Err(usage!(
            "{flag} is not available with --topology crossover: a crossover lab has no balancer \
             (its router spreads the public range over the servers' addresses)"
        ));
    }
    let servers = a
        .servers
        .ok_or_else(|| usage!("--topology crossover needs --servers N (3-8)"))?;
    let x = CrossoverSpec {
        servers,
        tiers: a.tiers.unwrap_or(2),
    };
    lab::crossover::validate(&x)?;
    let spec = LabSpec {
        run_dir,
        ..LabSpec::new(&a.name.name, lbctl_exe()?)
    };
    spec.validate()?;
    require_root("up")?;
    signals::install();
    let ui = Ui::new(ctx);
    let res = Lab::up_crossover(&spec, x, &|s| ui.step(s));
    ui.done();
    let lab = match res {
        Ok(lab) => lab,
        Err(e) if signals::is_interrupt(&e) => {
            exit_interrupted(&format!("lab '{}' was not created", spec.name))
        }
        Err(e) => return Err(e),
    };
    let st = lab.status();
    if ctx.global.json {
        ctx.emit_json(&json!({ "lab": st }));
        return Ok(Outcome::Clean);
    }
    let name_flag = name_flag(lab.name());
    let n_addr = st
        .crossover
        .as_ref()
        .map(|c| c.addresses.len())
        .unwrap_or(0);
    ui.line(
        ctx,
        format!(
            "{} lab '{}' is up: {servers} servers running `lbctl crossover run` ({} tiers), no \
             balancer; the router spreads {} over their {n_addr} addresses in {}",
            ui.green("✓"),
            lab.name(),
            x.tiers,
            lab::crossover::PUBLIC,
            lab::crossover::INTERNAL,
        ),
    );
    print_nodes(ctx, &ui, &st);
    ui.line(ctx, "");
    ui.line(ctx, ui.bold("Try:"));
    for l in [
        format!("lbctl lab traffic{name_flag}                 # requests to the public range: which server answered"),
        format!("lbctl lab status{name_flag}                  # who holds which address, where the router sends it"),
        format!("lbctl lab break{name_flag} s2 down           # cut s2's link; its peers take over its addresses"),
        format!("lbctl lab break{name_flag} s3 service-dead   # stop s3's HTTP server; its agent releases everything"),
        format!("lbctl lab exec{name_flag} s1 -- lbctl crossover status"),
        format!("lbctl lab down{name_flag}"),
    ] {
        ui.line(ctx, format!("  {l}"));
    }
    Ok(Outcome::Clean)
}

/// `lab traffic` in a crossover lab.
pub(super) fn traffic(ctx: &Ctx, lab: &Lab, requests: usize) -> Result<Outcome> {
    let t = lab.traffic_crossover(requests)?;
    let ok = t.failures.is_empty();
    if ctx.global.json {
        ctx.emit_json(&json!({ "traffic": t, "ok": ok }));
    } else {
        let ui = Ui::new(ctx);
        ui.line(
            ctx,
            ui.bold(&format!(
                "{} requests from the client to {} (a new connection each, through the \
                 router's multipath route):",
                t.requests, t.target
            )),
        );
        let servers = lab.backends();
        let width = 40usize;
        for s in &servers {
            let n = t.per_server.get(s).copied().unwrap_or(0);
            let bar = "█".repeat(n * width / t.requests.max(1));
            ui.line(ctx, format!("  {s:<4} {n:>6}  {}", ui.green(&bar)));
        }
        for (name, n) in t.per_server.iter().filter(|(k, _)| !servers.contains(k)) {
            ui.line(ctx, format!("  {name:<4} {n:>6}  (not a server)"));
        }
        let by = format!(
            ", by {} server{}",
            t.per_server.len(),
            if t.per_server.len() == 1 { "" } else { "s" }
        );
        let answered = t.per_server.values().sum();
        ui.traffic_verdict(ctx, &t.failures, answered, t.requests, &by);
    }
    Ok(if ok {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}

/// `lab break sN down|service-dead`.
pub(super) fn break_server(ctx: &Ctx, lab: &Lab, a: &BreakArgs) -> Result<Outcome> {
    let fault = match BreakKind::from(a.fault) {
        BreakKind::Server(f) => f,
        BreakKind::Balancer(BalancerFault::Down) => ServerFault::Down,
        other => {
            return Err(usage!(
                "`{}` is not a crossover fault: break a server with `lbctl lab break{} sN down` \
                 or `… sN service-dead`",
                other.name(),
                name_flag(lab.name())
            ))
        }
    };
    require_root("break")?;
    signals::install();
    lab.inject_server(&a.node, fault)?;
    let st = lab.status();
    let moved: Vec<&lab::crossover::AddrView> = st
        .crossover
        .iter()
        .flat_map(|c| c.addresses.iter())
        .filter(|v| v.tiers.iter().any(|t| t == &a.node))
        .collect();
    if ctx.global.json {
        ctx.emit_json(&json!({
            "lab": lab.name(),
            "node": a.node,
            "fault": fault,
            "addresses": moved,
        }));
    } else {
        let ui = Ui::new(ctx);
        ui.line(
            ctx,
            format!("{} {}: {}", ui.yellow("broke"), a.node, fault.describe()),
        );
        let cut = st
            .crossover
            .as_ref()
            .map(|c| c.cut.clone())
            .unwrap_or_default();
        for v in moved.iter().filter(|v| v.tiers.first() == Some(&a.node)) {
            let now: Vec<&str> = v
                .held_by
                .iter()
                .filter(|s| **s != a.node && !cut.contains(s))
                .map(String::as_str)
                .collect();
            let who = if now.is_empty() {
                ui.red(&format!(
                    "nobody: every tier of it is out{}",
                    if v.tiers.len() == 2 {
                        " (`--tiers 3` covers double failures)"
                    } else {
                        ""
                    }
                ))
            } else {
                format!("held by {}", now.join(", "))
            };
            ui.line(ctx, format!("  {:<15} {who}", v.addr.to_string()));
        }
        ui.line(
            ctx,
            format!(
                "`lbctl lab traffic{}` shows the flows moved to the other servers; `lbctl lab down{}` \
                 and `up` start afresh",
                name_flag(lab.name()),
                name_flag(lab.name())
            ),
        );
    }
    Ok(Outcome::Clean)
}

/// `lab status` of a crossover lab.
pub(super) fn print_status(ctx: &Ctx, ui: &Ui, st: &LabStatus, x: &CrossoverStatus, health: &str) {
    ui.line(
        ctx,
        format!(
            "lab '{}' ({}, {health}): crossover, {} servers ({} tiers), public range {} over {} \
             addresses in {}",
            st.name,
            match st.phase {
                state::Phase::Up => "up",
                state::Phase::Creating => "incomplete: run `lbctl lab down`",
            },
            x.servers,
            x.tiers,
            x.public,
            x.addresses.len(),
            x.internal,
        ),
    );
    print_nodes(ctx, ui, st);
    let tier_names = ["primary", "secondary", "tertiary"];
    let mut head = format!("  {:<15}", "ADDRESS");
    for t in &tier_names[..usize::from(x.tiers).min(3)] {
        head.push_str(&format!(" {:<9}", t.to_uppercase()));
    }
    head.push_str(&format!(" {:<14} ROUTER SENDS TO", "HELD BY"));
    ui.line(ctx, ui.dim(&head));
    for v in &x.addresses {
        let mut l = format!("  {:<15}", v.addr.to_string());
        for t in &v.tiers {
            l.push_str(&format!(" {t:<9}"));
        }
        let held: Vec<String> = v
            .held_by
            .iter()
            .map(|s| {
                if x.cut.contains(s) {
                    format!("{s}(cut)")
                } else {
                    s.clone()
                }
            })
            .collect();
        let held = if held.is_empty() {
            ui.red("nobody")
        } else {
            held.join(",")
        };
        l.push_str(&format!(
            " {held:<14} {}",
            v.router.as_deref().unwrap_or("(unresolved)")
        ));
        ui.line(ctx, l);
    }
    for r in &x.agents {
        let held = r.rows.iter().filter(|row| row.held).count();
        ui.line(
            ctx,
            format!(
                "  agent {} (PID {}{}): service {}, carrier {}, holds {held}",
                r.name,
                r.pid,
                if r.running { "" } else { ", not running" },
                if r.healthy {
                    ui.green("healthy")
                } else {
                    ui.red(&format!("failing ({})", r.health))
                },
                if r.carrier { "up" } else { "down" },
            ),
        );
    }
    for p in &st.problems {
        ui.line(ctx, ui.red(&format!("  ! {p}")));
    }
    for f in &st.faults {
        ui.line(
            ctx,
            ui.yellow(&format!("  fault injected: {} {}", f.node, f.fault)),
        );
    }
    ui.line(ctx, ui.dim(&format!("  record: {}", st.dir.display())));
}
