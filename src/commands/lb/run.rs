//! `lbctl lb run`, `lb status` and `lb maglev`: the balancer daemon, what it is doing, and the
//! Maglev table-size calculator.

use serde_json::{json, Value};

use super::Env;
use crate::cli::lb::{MaglevArgs, RunArgs, StatusArgs};
use crate::error::Result;
use crate::lb::daemon::{self, RunOpts};
use crate::lb::status::{self, RunStatus};
use crate::maglev;
use crate::{usage, Ctx, Outcome};

pub fn run(ctx: &Ctx, env: &Env, a: &RunArgs) -> Result<Outcome> {
    daemon::run(
        ctx,
        env,
        RunOpts {
            config: a.config.clone(),
            cleanup: a.cleanup,
        },
    )
}

/// `198.18.0.11:80`, `[2001:db8::11]:80` from a status file's address text.
fn addr_port(addr: &str, port: u16) -> String {
    match addr.parse() {
        Ok(ip) => crate::ipvs::text::addr_port(&ip, port),
        Err(_) => format!("{addr}:{port}"),
    }
}

fn status_json(s: &RunStatus, alive: bool) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("running".into(), json!(alive));
        o.remove("nft");
        o.remove("pid_start");
    }
    v
}

/// Exit 0: every daemon runs and every backend is up. 1: some backend is not up (or a reload
/// failed). 2: no daemon, or it is not running.
pub fn status(ctx: &Ctx, env: &Env, a: &StatusArgs) -> Result<Outcome> {
    let mut all = status::read_all(env.journal.dir())?;
    if let Some(n) = &a.name {
        all.retain(|s| &s.name == n);
    }
    if all.is_empty() {
        return Err(crate::Error::Runtime(anyhow::anyhow!(
            "no `lbctl lb run` status in {}{}",
            status::dir(env.journal.dir()).display(),
            a.name
                .as_ref()
                .map(|n| format!(" for {n}"))
                .unwrap_or_default()
        )));
    }
    let mut findings = false;
    let mut stopped = Vec::new();
    let mut docs = Vec::new();
    for s in &all {
        let alive = s.alive();
        if !alive {
            stopped.push(format!("{} (PID {})", s.name, s.pid));
        }
        let mut doc = status_json(s, alive);
        // The kernel, not just the status file: a flushed table or a lost VIP is a finding.
        let kernel = if alive {
            crate::lb::verify::check(&env.sys, s)
        } else {
            crate::lb::verify::Verdict::default()
        };
        if let Some(o) = doc.as_object_mut() {
            o.insert(
                "kernel".into(),
                json!({ "problems": kernel.problems, "could_not_check": kernel.unchecked }),
            );
        }
        docs.push(doc);
        findings |= !kernel.problems.is_empty() || !kernel.unchecked.is_empty();
        let not_up = s
            .services
            .iter()
            .flat_map(|v| &v.backends)
            .filter(|b| b.state != "up")
            .count();
        findings |= not_up > 0 || !s.ready || s.reload_error.is_some();
        ctx.say(format!(
            "{}: {} engine {} on {}, PID {}{}, since {}",
            s.name,
            if alive {
                "running,"
            } else {
                "NOT RUNNING, last seen with"
            },
            s.engine,
            s.interface,
            s.pid,
            if s.ready { "" } else { ", not ready yet" },
            s.started
        ));
        if let Some(d) = &s.drain {
            ctx.say(format!("  {}", d.line()));
        }
        if let Some(h) = &s.ha {
            ctx.say(format!(
                "  VRRP {} (VRID {}, priority {}{}) on {} since {}; keepalived {}{}{}",
                h.role,
                h.vrid,
                h.configured_priority,
                h.priority
                    .filter(|p| *p != u32::from(h.configured_priority))
                    .map(|p| format!(", effective {p}"))
                    .unwrap_or_default(),
                h.interface,
                h.since,
                h.keepalived_pid
                    .map(|p| format!("PID {p}"))
                    .unwrap_or_else(|| "NOT RUNNING".into()),
                if h.restarts > 0 {
                    format!(", {} restart(s)", h.restarts)
                } else {
                    String::new()
                },
                if h.quorum_fault {
                    ", service quorum lost (track file: FAULT)"
                } else {
                    ""
                }
            ));
        }
        if let Some(e) = &s.reload_error {
            ctx.say(format!("  last reload failed: {e}"));
        }
        for p in &kernel.problems {
            ctx.say(format!("  ! kernel: {p}"));
        }
        for u in &kernel.unchecked {
            ctx.say(format!("  ? could not check {u}"));
        }
        if s.repairs > 0 {
            ctx.say(format!(
                "  {} repair(s) of the data path; last: {}",
                s.repairs,
                s.last_repair.as_deref().unwrap_or("-")
            ));
        }
        if let Some(b) = &s.bgp {
            findings |= bgp_status(ctx, b, alive);
        }
        for v in &s.services {
            ctx.say(format!(
                "  {}  [{}; on failure {}]{}{}{}",
                v.service,
                v.check,
                v.on_failure,
                match (v.quorum_lost, v.withdrawn) {
                    (true, true) => "  QUORUM LOST: VIP withdrawn",
                    (true, false) => "  QUORUM LOST",
                    _ => "",
                },
                v.packets
                    .map(|p| format!("  {p} packets"))
                    .unwrap_or_default(),
                if v.disabled {
                    "  DISABLED (override: lbctl lb enable undoes it)"
                } else {
                    ""
                }
            ));
            ctx.say(format!(
                "    {:<26} {:<8} {:>6} {:>9} {:>6}  {:<25} LAST CHECK",
                "BACKEND", "STATE", "WEIGHT", "EFFECTIVE", "SLOTS", "SINCE"
            ));
            for b in &v.backends {
                let last = match &b.last_check {
                    None => "-".to_string(),
                    Some(l) if l.ok => format!("ok ({} ms) at {}", l.ms, l.at),
                    Some(l) => format!("FAILED at {}: {}", l.at, l.detail),
                };
                let addr = addr_port(&b.rip, b.port);
                ctx.say(format!(
                    "    {:<26} {:<8} {:>6} {:>9} {:>6}  {:<25} {last}",
                    addr,
                    b.state,
                    b.weight,
                    b.effective_weight,
                    b.slots.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                    b.since
                ));
                if let Some(c) = &b.counters {
                    ctx.say(format!(
                        "      traffic: {} packets ({}/s), {} bytes ({}/s), {} new flows ({}/s){}",
                        c.packets,
                        c.packets_rate,
                        c.bytes,
                        c.bytes_rate,
                        c.new_flows,
                        c.new_flows_rate,
                        c.pinned_flows
                            .map(|p| format!(", {p} pinned"))
                            .unwrap_or_default()
                    ));
                }
                for o in &b.overrides {
                    ctx.say(format!("      override: {o}"));
                }
            }
        }
    }
    ctx.emit_json(&json!({ "daemons": docs }));
    if !stopped.is_empty() {
        return Err(crate::Error::Runtime(anyhow::anyhow!(
            "not running: {}",
            stopped.join(", ")
        )));
    }
    Ok(if findings {
        Outcome::Findings
    } else {
        Outcome::Clean
    })
}

/// The `[bgp]` part of `lb status`; true when something is a finding (a session not
/// established, a VIP not announced, BIRD not answering).
fn bgp_status(ctx: &Ctx, b: &crate::lb::announce::AnnounceStatus, alive: bool) -> bool {
    let mut findings = false;
    ctx.say(format!(
        "  bgp: {} PID {} (socket {}), AS {}, router id {}",
        b.daemon, b.pid, b.socket, b.asn, b.router_id
    ));
    if let Some(e) = &b.error {
        ctx.say(format!("  ? could not ask {}: {e}", b.daemon));
        findings = true;
    }
    for x in &b.sessions {
        let established = x.info.starts_with("Established");
        findings |= !established;
        ctx.say(format!(
            "    session {:<8} {:<18} AS {:<10} {:<6} since {}  {}",
            x.name,
            x.neighbor.as_deref().unwrap_or("-"),
            x.asn.map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
            x.state,
            x.since,
            x.info
        ));
    }
    for v in &b.vips {
        findings |= !v.announced;
        ctx.say(format!(
            "    {} {:<16} via {}{}",
            if v.announced && alive {
                "announced"
            } else {
                "WITHDRAWN"
            },
            v.vip,
            v.device,
            if v.reason.is_empty() {
                String::new()
            } else {
                format!("  ({})", v.reason)
            }
        ));
    }
    findings
}

fn parse_backends(list: &[String]) -> Result<Vec<maglev::Backend>> {
    let mut out: Vec<maglev::Backend> = Vec::new();
    for item in list {
        let item = item.trim();
        let (name, weight) = match item.split_once('=') {
            Some((n, w)) => (
                n,
                w.parse::<u32>()
                    .map_err(|_| usage!("invalid weight in '{item}': use NAME=WEIGHT"))?,
            ),
            None => (item, 1),
        };
        if name.is_empty() {
            return Err(usage!("empty backend name in --backends"));
        }
        if out.iter().any(|b| b.name == name) {
            return Err(usage!("backend '{name}' is listed twice"));
        }
        out.push(maglev::Backend {
            name: name.to_string(),
            weight,
        });
    }
    if !out.iter().any(|b| b.weight > 0) {
        return Err(usage!("no backend has a weight above 0"));
    }
    Ok(out)
}

/// Removals a large `lb maglev` report computes (evenly spaced) unless `--exact`.
const REMOVAL_SAMPLE: usize = 64;

/// Balance of a Maglev table and the disruption of removing (each) or adding one backend.
pub fn maglev_report(ctx: &Ctx, a: &MaglevArgs) -> Result<Outcome> {
    let m = a.size;
    if !maglev::is_prime(m) || m > 1_000_003 {
        let next = (m..).find(|&n| maglev::is_prime(n)).unwrap_or(m);
        return Err(usage!(
            "--size {m}: the table size must be a prime (at most 1000003); the next prime is {next}"
        ));
    }
    let backends = parse_backends(&a.backends)?;
    let n = backends.len();
    let table = maglev::build(&backends, m).expect("validated: prime size, a positive weight");
    let counts = maglev::counts(&table, n);
    let total_w: u64 = backends.iter().map(|b| u64::from(b.weight)).sum();
    let mut rows = Vec::new();
    ctx.say(format!(
        "Maglev table: M = {m} slots, {n} backend(s){}",
        if m < 100 * n {
            format!(
                " — M is below 100 × {n}: expect uneven shares; pick a prime above {}",
                100 * n
            )
        } else {
            String::new()
        }
    ));
    ctx.say(format!(
        "  {:<24} {:>6} {:>8} {:>8} {:>8}",
        "BACKEND", "WEIGHT", "SLOTS", "SHARE", "IDEAL"
    ));
    for (i, b) in backends.iter().enumerate() {
        let share = counts[i] as f64 / m as f64;
        let ideal = f64::from(b.weight) / total_w as f64;
        ctx.say(format!(
            "  {:<24} {:>6} {:>8} {:>7.2}% {:>7.2}%",
            b.name,
            b.weight,
            counts[i],
            share * 100.0,
            ideal * 100.0
        ));
        rows.push(json!({ "name": b.name, "weight": b.weight, "slots": counts[i], "share": share, "ideal": ideal }));
    }
    let imbalance = maglev::imbalance(&table, &backends);
    ctx.say(format!(
        "  worst deviation from the ideal share: {:.2}%",
        imbalance * 100.0
    ));
    // Removing each backend: the ideal is that only its own slots move. One table rebuild per
    // removal; a large report computes an evenly spaced sample of them and says so.
    let mut removals = Vec::new();
    let mut removal_summary = Value::Null;
    if n > 1 {
        let exact = a.exact || n <= REMOVAL_SAMPLE || n * m <= REMOVAL_SAMPLE * 65537;
        let which = if exact {
            (0..n).collect()
        } else {
            maglev::removal_sample(n, REMOVAL_SAMPLE)
        };
        if exact {
            ctx.say("  removing one backend moves (ideal: only its own share):");
        } else {
            ctx.say(format!(
                "  removing one backend moves (ideal: only its own share) — sampled: {} of {n} \
                 backends, evenly spaced (--exact computes all {n}):",
                which.len()
            ));
        }
        let moved_by = maglev::removal_disruptions_of(&backends, m, &which)
            .expect("validated: prime size, a positive weight");
        let mut ratios = Vec::new();
        let (mut own_sum, mut moved_sum) = (0.0, 0.0);
        for (&i, moved) in which.iter().zip(&moved_by) {
            let Some(moved) = *moved else {
                continue;
            };
            let b = &backends[i];
            let own = counts[i] as f64 / m as f64;
            ctx.say(format!(
                "    {:<22} {:>7.2}% of flows (its share {:.2}%, {:.2}× the minimum)",
                b.name,
                moved * 100.0,
                own * 100.0,
                if own > 0.0 { moved / own } else { 0.0 }
            ));
            removals.push(json!({ "name": b.name, "moved": moved, "own_share": own }));
            own_sum += own;
            moved_sum += moved;
            if own > 0.0 {
                ratios.push(moved / own);
            }
        }
        // Sum of moved over sum of own shares: how far Maglev is from the minimum on average.
        let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ratios.iter().copied().fold(0.0, f64::max);
        if own_sum > 0.0 {
            let mean = moved_sum / own_sum;
            ctx.say(format!(
                "  {} a removal moves {mean:.2}× the removed backend's own share (min {min:.2}×, \
                 max {max:.2}×)",
                if exact {
                    format!("over all {n} backends,")
                } else {
                    format!("sampled ({} of {n} backends): on average", which.len())
                }
            ));
            removal_summary = json!({
                "sampled": !exact,
                "computed": removals.len(),
                "of": n,
                "selection": if exact { "all" } else { "evenly spaced" },
                "mean_ratio": mean,
                "min_ratio": min,
                "max_ratio": max,
            });
        }
    }
    let mut plus = backends.clone();
    let extra = (1..)
        .map(|k| format!("new-backend-{k}"))
        .find(|c| !backends.iter().any(|b| &b.name == c))
        .expect("an unused name");
    plus.push(maglev::Backend {
        name: extra.clone(),
        weight: 1,
    });
    let t3 = maglev::build(&plus, m).expect("prime size, positive weights");
    let added = maglev::disruption(&table, &backends, &t3, &plus);
    let ideal_add = 1.0 / (total_w as f64 + 1.0);
    ctx.say(format!(
        "  adding a backend of weight 1 moves {:.2}% of flows (minimum {:.2}%)",
        added * 100.0,
        ideal_add * 100.0
    ));
    ctx.emit_json(&json!({
        "size": m,
        "backends": rows,
        "imbalance": imbalance,
        "remove": removals,
        "remove_summary": removal_summary,
        "add": { "moved": added, "minimum": ideal_add },
        "size_ok": m >= 100 * n,
    }));
    Ok(Outcome::Clean)
}

/// `lb list` on a kernel without IPVS: the nft engine's services in ipvsadm's layout, checked
/// against the kernel (exit 1 naming what is missing: a flushed table is not a healthy list).
pub fn list_nft(
    ctx: &Ctx,
    env: &Env,
    daemons: &[RunStatus],
    filter: Option<&crate::ipvs::ServiceKey>,
    counters: Option<(bool, bool)>,
) -> Result<Outcome> {
    let wanted = filter.map(crate::ipvs::spec::key_name);
    let keep = |v: &status::ServiceStatus| wanted.as_ref().is_none_or(|w| *w == v.service);
    let verdicts: Vec<crate::lb::verify::Verdict> = daemons
        .iter()
        .map(|d| crate::lb::verify::check(&env.sys, d))
        .collect();
    let findings = verdicts
        .iter()
        .any(|v| !v.problems.is_empty() || !v.unchecked.is_empty());
    let outcome = if findings {
        Outcome::Findings
    } else {
        Outcome::Clean
    };
    if ctx.global.json {
        let services: Vec<Value> = daemons
            .iter()
            .flat_map(|d| {
                d.services.iter().filter(|v| keep(v)).map(move |v| {
                    let mut j = serde_json::to_value(v).unwrap_or(Value::Null);
                    j["engine"] = json!("nft");
                    j["daemon"] = json!(d.name);
                    j
                })
            })
            .collect();
        let kernel: Vec<Value> = daemons
            .iter()
            .zip(&verdicts)
            .map(|(d, v)| {
                json!({ "daemon": d.name, "problems": v.problems, "could_not_check": v.unchecked })
            })
            .collect();
        ctx.emit_json(&json!({ "engine": "nft", "services": services, "kernel": kernel }));
        return Ok(outcome);
    }
    for (d, verdict) in daemons.iter().zip(&verdicts) {
        ctx.say(format!(
            "engine nft: lbctl lb run {} (PID {}), table netdev lbctl_lb_* on {}; this kernel has no IPVS",
            d.name, d.pid, d.interface
        ));
        for p in &verdict.problems {
            ctx.say(format!("! kernel: {p}"));
        }
        for u in &verdict.unchecked {
            ctx.say(format!("? could not check {u}"));
        }
        if let Some((rate, exact)) = counters {
            list_nft_counters(ctx, d, &keep, rate, exact);
            continue;
        }
        ctx.say("Prot LocalAddress:Port Scheduler Flags");
        ctx.say("  -> RemoteAddress:Port           Forward Weight State    Slots");
        for v in d.services.iter().filter(|v| keep(v)) {
            ctx.say(format!(
                "{:<4} {} maglev",
                v.protocol.to_uppercase(),
                addr_port(&v.vip, v.port)
            ));
            for b in &v.backends {
                ctx.say(format!(
                    "  -> {:<28} Route   {:<6} {:<8} {}",
                    addr_port(&b.rip, b.port),
                    b.effective_weight,
                    b.state,
                    b.slots.map(|s| s.to_string()).unwrap_or_else(|| "-".into())
                ));
            }
        }
    }
    Ok(outcome)
}

/// `lb list --stats|--rate` for the nft engine, in ipvsadm's layout: Conns/CPS are new flows,
/// InPkts/InBytes what was forwarded to the backend; Out* stay 0 (DSR: replies bypass the
/// balancer, as with IPVS in DR mode). A service line is the sum of its backends.
fn list_nft_counters(
    ctx: &Ctx,
    d: &RunStatus,
    keep: &dyn Fn(&status::ServiceStatus) -> bool,
    rate: bool,
    exact: bool,
) {
    use crate::ipvs::text::largenum;
    ctx.say(if rate {
        "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS"
    } else {
        "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes"
    });
    ctx.say("  -> RemoteAddress:Port");
    let row = |c: [u64; 3]| -> String {
        [c[0], c[1], 0, c[2], 0]
            .iter()
            .map(|n| largenum(*n, exact))
            .collect()
    };
    let of = |b: &status::BackendStatus| -> [u64; 3] {
        b.counters.as_ref().map_or([0; 3], |c| {
            if rate {
                [c.new_flows_rate, c.packets_rate, c.bytes_rate]
            } else {
                [c.new_flows, c.packets, c.bytes]
            }
        })
    };
    for v in d.services.iter().filter(|v| keep(v)) {
        let mut sum = [0u64; 3];
        for b in &v.backends {
            for (s, x) in sum.iter_mut().zip(of(b)) {
                *s += x;
            }
        }
        ctx.say(format!(
            "{:<33}{}",
            format!(
                "{:<4} {}",
                v.protocol.to_uppercase(),
                addr_port(&v.vip, v.port)
            ),
            row(sum)
        ));
        for b in &v.backends {
            ctx.say(format!(
                "  -> {:<28}{}",
                addr_port(&b.rip, b.port),
                row(of(b))
            ));
        }
    }
}
