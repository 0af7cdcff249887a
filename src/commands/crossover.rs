//! `lbctl crossover plan | run | status`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use ipnet::Ipv4Net;
use serde_json::json;

use super::Env;
use crate::cli::crossover::{CrossoverCmd, PlanArgs};
use crate::crossover::plan::{self, AgentDefaults, Router, Table};
use crate::crossover::{agent, config, status};
use crate::error::{Error, Result};
use crate::{usage, Ctx, Outcome};

/// `crossover plan`: pure, no namespace or netlink needed.
pub fn plan(ctx: &Ctx, a: PlanArgs) -> Result<Outcome> {
    let parse = |s: &str, what: &str| -> Result<Ipv4Net> {
        s.parse::<Ipv4Net>()
            .map_err(|_| usage!("{what} {s}: not an IPv4 CIDR (198.18.1.0/24)"))
            .and_then(|n| {
                if n.trunc() != n {
                    Err(usage!(
                        "{what} {s}: host bits set (did you mean {}?)",
                        n.trunc()
                    ))
                } else {
                    Ok(n)
                }
            })
    };
    let ranges = a
        .ranges
        .iter()
        .map(|r| parse(r, "--range"))
        .collect::<Result<Vec<_>>>()?;
    let public = a
        .public
        .iter()
        .map(|r| parse(r, "--public"))
        .collect::<Result<Vec<_>>>()?;
    crate::model::validate_ifname(&a.router_dev)?;
    crate::model::validate_ifname(&a.dev)?;
    let all: Vec<(String, Ipv4Net)> = ranges
        .iter()
        .map(|r| ("--range".to_string(), *r))
        .chain(public.iter().map(|r| ("--public".to_string(), *r)))
        .collect();
    if let Some(m) = plan::overlap(&all) {
        return Err(usage!("{m}: the ranges must not overlap"));
    }
    let table = plan::build(&plan::Request {
        servers: a.servers,
        tiers: a.tiers,
        ranges: ranges.clone(),
    })
    .map_err(Error::Usage)?;
    let router = Router {
        public: public.clone(),
        dev: a.router_dev.clone(),
    };
    let cmdline = cmdline(&a);
    let defaults = AgentDefaults {
        interface: a.dev.clone(),
        ..AgentDefaults::default()
    };
    let configs: Vec<String> = (1..=table.servers)
        .map(|s| plan::agent_config(&table, s, &defaults, &cmdline))
        .collect();
    let lines = plan::router_lines(&table, &ranges, &router);
    let bird = plan::bird_config(&table, &ranges, &router);
    let spreads: Vec<plan::Spread> = (0..=2).filter_map(|k| plan::spread(&table, k)).collect();
    if let Some(dir) = &a.write {
        write_files(dir, &configs, &lines, &bird, !public.is_empty())?;
    }
    if ctx.global.json {
        ctx.emit_json(&json!({
            "servers": (1..=table.servers).map(|s| json!({
                "name": plan::name(s),
                "primary": plan::of_server(&table, s, 0),
                "secondary": plan::of_server(&table, s, 1),
                "tertiary": plan::of_server(&table, s, 2),
            })).collect::<Vec<_>>(),
            "tiers": table.tiers,
            "addresses": table.addrs.iter().map(|x| json!({
                "addr": x.addr,
                "servers": x.tiers.iter().map(|s| plan::name(*s)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "load_after_failures": spreads,
            "load_per_server": per_server(&table),
            "server_commands": plan::server_lines(&router),
            "router": {
                "commands": if public.is_empty() { Vec::new() } else { lines.clone() },
                "bird": if public.is_empty() { None } else { Some(&bird) },
            },
            "configs": (1..=table.servers).map(|s| (plan::name(s), configs[s - 1].clone()))
                .collect::<BTreeMap<_, _>>(),
        }));
        return Ok(Outcome::Clean);
    }
    print_text(
        &table,
        &ranges,
        &spreads,
        &lines,
        &bird,
        &public,
        a.write.as_deref(),
        &plan::server_lines(&router),
    );
    Ok(Outcome::Clean)
}

fn cmdline(a: &PlanArgs) -> String {
    let mut c = format!(
        "lbctl crossover plan --servers {} --tiers {}",
        a.servers, a.tiers
    );
    for r in &a.ranges {
        c.push_str(&format!(" --range {r}"));
    }
    for r in &a.public {
        c.push_str(&format!(" --public {r}"));
    }
    c
}

/// The load of each server after each single failure: `{"s1": {"s2": 3, …}}` (failed → load).
fn per_server(t: &Table) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for s in 1..=t.servers {
        let mut row = serde_json::Map::new();
        row.insert("none".into(), json!(plan::loads(t, &[]).served[s - 1]));
        for f in (1..=t.servers).filter(|f| *f != s) {
            row.insert(plan::name(f), json!(plan::loads(t, &[f]).served[s - 1]));
        }
        m.insert(plan::name(s), serde_json::Value::Object(row));
    }
    serde_json::Value::Object(m)
}

fn write_files(
    dir: &Path,
    configs: &[String],
    lines: &[String],
    bird: &str,
    router: bool,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| usage!("--write {}: {e}", dir.display()))?;
    for (i, c) in configs.iter().enumerate() {
        std::fs::write(dir.join(format!("{}.toml", plan::name(i + 1))), c)?;
    }
    if router {
        let mut sh =
            String::from("#!/bin/sh\n# The router's side of the cross-over plan.\nset -e\n");
        for l in lines {
            sh.push_str(l);
            sh.push('\n');
        }
        std::fs::write(dir.join("router.sh"), sh)?;
        std::fs::write(dir.join("bird.conf"), bird)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn print_text(
    t: &Table,
    ranges: &[Ipv4Net],
    spreads: &[plan::Spread],
    lines: &[String],
    bird: &str,
    public: &[Ipv4Net],
    written: Option<&Path>,
    server: &[String],
) {
    let tiers = ["primary", "secondary", "tertiary"];
    println!(
        "# {} servers, {} tiers: {} internal addresses from {}",
        t.servers,
        t.tiers,
        t.addrs.len(),
        ranges
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut head = format!("{:<16}", "address");
    for n in &tiers[..t.tiers] {
        head.push_str(&format!(" {n:<10}"));
    }
    println!("{}", head.trim_end());
    for x in &t.addrs {
        let mut l = format!("{:<16}", x.addr.to_string());
        for s in &x.tiers {
            l.push_str(&format!(" {:<10}", plan::name(*s)));
        }
        println!("{}", l.trim_end());
    }
    println!();
    println!("# load: addresses each server serves");
    for s in spreads {
        let what = match s.failed {
            0 => "no failure".to_string(),
            1 => format!("any 1 server down ({} cases)", s.cases),
            _ => format!("any 2 servers down ({} cases)", s.cases),
        };
        let even = if s.min == s.max {
            format!(
                "every {} {}",
                if s.failed == 0 { "server" } else { "survivor" },
                s.max
            )
        } else {
            format!("survivors min {} max {}", s.min, s.max)
        };
        let lost = if s.unserved_max > 0 {
            format!(
                "; up to {} address(es) unserved (both of their tiers down{})",
                s.unserved_max,
                if t.tiers == 2 { ": use --tiers 3" } else { "" }
            )
        } else {
            String::new()
        };
        println!("{what}: {even}{lost}");
    }
    println!();
    if public.is_empty() {
        println!("# router: give --public CIDR for its multipath routes");
    } else {
        println!("# router (iproute2)");
        for l in lines {
            println!("{l}");
        }
        println!();
        println!("# router (BIRD 2)");
        print!("{bird}");
        println!();
        println!("# every server: the public range is delivered locally");
        for l in server {
            println!("{l}");
        }
    }
    println!();
    match written {
        Some(d) => println!(
            "# agent configs: {}/s1.toml … s{}.toml (`lbctl crossover run -c FILE` on each server)",
            d.display(),
            t.servers
        ),
        None => println!(
            "# agent configs: --write DIR writes s1.toml … s{}.toml (\"configs\" in --json)",
            t.servers
        ),
    }
}

/// `crossover run` and `crossover status`.
pub fn run(ctx: &Ctx, env: &Env, c: CrossoverCmd) -> Result<Outcome> {
    match c {
        CrossoverCmd::Plan(a) => plan(ctx, a),
        CrossoverCmd::Run(a) => {
            let cfg = config::load(&a.config)?;
            env.require_link(&cfg.interface)?;
            agent::run(ctx, env, cfg)
        }
        CrossoverCmd::Status => show_status(ctx, env),
    }
}

fn show_status(ctx: &Ctx, env: &Env) -> Result<Outcome> {
    let statuses = agent::read_statuses(env.journal.dir())?;
    let kernel: BTreeSet<(String, IpAddr)> = env
        .sys
        .addresses()?
        .into_iter()
        .map(|a| (a.obj.dev.to_string(), a.obj.addr))
        .collect();
    let state = env.journal.load()?;
    let journal: BTreeMap<String, BTreeSet<IpAddr>> = state
        .intents
        .iter()
        .filter(|(o, _)| o.starts_with("crossover:"))
        .map(|(o, i)| (o.clone(), i.vips.iter().map(|v| v.addr).collect()))
        .collect();
    let (reports, orphans) = status::assess(&statuses, &kernel, &journal);
    let bad = !orphans.is_empty() || reports.iter().any(|r| !r.problems.is_empty());
    if ctx.global.json {
        ctx.emit_json(&json!({ "agents": reports, "problems": orphans, "ok": !bad }));
    } else {
        if reports.is_empty() && orphans.is_empty() {
            ctx.say("no crossover agent here");
        }
        for r in &reports {
            println!(
                "{} (PID {}{}) on {} {}: service {}, carrier {}",
                r.name,
                r.pid,
                if r.running { "" } else { ", not running" },
                r.interface,
                r.mac,
                if r.healthy {
                    "healthy".to_string()
                } else {
                    format!("failing ({})", r.health)
                },
                if r.carrier { "up" } else { "down" }
            );
            if !r.running {
                for p in &r.problems {
                    println!("  ✗ {p}");
                }
                continue;
            }
            println!(
                "  {:<16} {:<10} {:<6} {:<7} last heard",
                "address", "tier", "held", "kernel"
            );
            for row in &r.rows {
                println!(
                    "  {:<16} {:<10} {:<6} {:<7} {}{}",
                    row.addr.to_string(),
                    row.tier,
                    if row.held { "yes" } else { "-" },
                    if row.in_kernel { "yes" } else { "-" },
                    row.heard.as_deref().unwrap_or("-"),
                    row.foreign
                        .as_ref()
                        .map(|m| format!(" (foreign claim by {m})"))
                        .unwrap_or_default()
                );
            }
            for p in &r.problems {
                println!("  ✗ {p}");
            }
        }
        for o in &orphans {
            println!("✗ {o}");
        }
    }
    Ok(if bad {
        Outcome::Findings
    } else {
        Outcome::Clean
    })
}
