//! `lbctl lab`: the DSR sandbox (see `crate::lab` for how it is built).
//!
//! `up`, `demo`, `traffic`, `exec`, `status`, `down`, `break`, and `serve` (the backends' HTTP
//! server, which `up` starts). Every lab command except `serve` works on namespaces the lab
//! creates itself, so the global `--netns` does not apply to them.
//!
//! Output: colours only when stdout is a terminal and `NO_COLOR` is unset; a spinner (on stderr)
//! only when both stdout and stderr are terminals. Piped output is plain text, `--json` is JSON.
//! Ctrl-C or SIGTERM during `up`, `demo` or `down` finishes the current step, removes what was
//! built, and exits with 130.

use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::PathBuf;

use serde_json::{json, Value};

#[path = "lab_crossover.rs"]
mod crossover;
#[path = "lab_routed.rs"]
mod routed;

use crate::cli::lab::{
    BreakArgs, BreakKind, DemoArgs, DownArgs, ExecArgs, LabCmd, ServeArgs, StatusArgs, TopologyArg,
    TrafficArgs, UpArgs,
};
use crate::error::{Error, Result};
use crate::lab::{
    self, signals, state, DownReport, Lab, LabSpec, LabStatus, Role, Traffic, VIP4, VIP6,
};
use crate::{usage, Ctx, Outcome};

// =============================================================================================
// output helpers
// =============================================================================================

/// Colours and a spinner, each only where they belong.
struct Ui {
    color: bool,
    spinner: Option<indicatif::ProgressBar>,
}

impl Ui {
    fn new(ctx: &Ctx) -> Ui {
        let quiet = ctx.global.quiet || ctx.global.json;
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let tty = std::io::stdout().is_terminal();
        let spinner = (tty && std::io::stderr().is_terminal() && !quiet).then(|| {
            let pb = indicatif::ProgressBar::new_spinner();
            pb.enable_steady_tick(std::time::Duration::from_millis(100));
            pb
        });
        Ui {
            color: tty && !no_color && !quiet,
            spinner,
        }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }
    fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
    fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }

    fn step(&self, msg: &str) {
        if let Some(pb) = &self.spinner {
            pb.set_message(msg.to_string());
        }
    }

    fn done(&self) {
        if let Some(pb) = &self.spinner {
            pb.finish_and_clear();
        }
    }

    /// Print a line on stdout without tearing the spinner.
    fn line(&self, ctx: &Ctx, s: impl AsRef<str>) {
        match &self.spinner {
            Some(pb) if !ctx.global.quiet && !ctx.global.json => pb.suspend(|| ctx.say(s)),
            _ => ctx.say(s),
        }
    }

    /// The end of a routed or crossover lab's traffic summary: the first five failures, then
    /// "✓ all N requests answered{answered_by}" or "✗ F of N requests failed".
    fn traffic_verdict(
        &self,
        ctx: &Ctx,
        failures: &[String],
        answered: usize,
        requests: usize,
        answered_by: &str,
    ) {
        for f in failures.iter().take(5) {
            self.line(ctx, self.red(&format!("  ✗ {f}")));
        }
        self.line(
            ctx,
            if failures.is_empty() {
                format!(
                    "{} all {answered} requests answered{answered_by}",
                    self.green("✓")
                )
            } else {
                format!(
                    "{} {} of {requests} requests failed",
                    self.red("✗"),
                    failures.len()
                )
            },
        );
    }
}

fn require_root(what: &str) -> Result<()> {
    if !crate::sys::process::is_root() {
        return Err(Error::Privilege(format!(
            "lbctl lab {what} needs root (network namespaces): run it with sudo; nothing was \
             changed"
        )));
    }
    Ok(())
}

fn lbctl_exe() -> Result<PathBuf> {
    std::env::current_exe()
        .map_err(|e| Error::Runtime(anyhow::Error::new(e).context("locating the lbctl binary")))
}

/// After an interrupted `up`/`demo`/`down` has cleaned up: say so and exit 130.
fn exit_interrupted(what: &str) -> ! {
    eprintln!("lbctl: interrupted: {what}");
    std::process::exit(130);
}

// =============================================================================================
// dispatch
// =============================================================================================

pub fn run(ctx: &Ctx, cmd: LabCmd) -> Result<Outcome> {
    if let LabCmd::Serve(a) = cmd {
        return serve(ctx, a);
    }
    if ctx.global.netns.is_some() {
        return Err(usage!(
            "--netns does not apply to `lbctl lab` (the lab makes its own namespaces; use \
             `lbctl lab exec NODE -- CMD`)"
        ));
    }
    if ctx.global.dry_run {
        return Err(usage!("`lbctl lab` has no --dry-run"));
    }
    let run_dir = state::default_run_dir();
    match cmd {
        LabCmd::Up(a) => up(ctx, a, run_dir),
        LabCmd::Demo(a) => demo(ctx, a, run_dir),
        LabCmd::Traffic(a) => traffic(ctx, a, run_dir),
        LabCmd::Exec(a) => exec(a, run_dir),
        LabCmd::Status(a) => status(ctx, a, run_dir),
        LabCmd::Down(a) => down(ctx, a, run_dir),
        LabCmd::Break(a) => break_(ctx, a, run_dir),
        LabCmd::Serve(_) => unreachable!("handled above"),
    }
}

// =============================================================================================
// up
// =============================================================================================

fn up(ctx: &Ctx, a: UpArgs, run_dir: PathBuf) -> Result<Outcome> {
    if a.topology == Some(TopologyArg::Crossover) {
        return crossover::up(ctx, a, run_dir);
    }
    if a.servers.is_some() {
        return Err(usage!(
            "--servers is for --topology crossover (a DSR lab has --backends K)"
        ));
    }
    let spec = LabSpec {
        name: a.name.name,
        backends: a.backends.unwrap_or(2),
        ipv6: a.ipv6,
        profile: a.profile,
        engine: a.engine.unwrap_or_default().into(),
        start_balancer: !a.no_balancer,
        lbctl_bin: lbctl_exe()?,
        run_dir,
    };
    spec.validate()?;
    let routing = a.routing.map(|r| lab::RoutingSpec {
        routing: r.into(),
        balancers: a.balancers.unwrap_or(2),
    });
    if let Some(r) = &routing {
        lab::routing::validate(r, spec.ipv6, spec.profile.is_some(), spec.start_balancer)?;
    }
    require_root("up")?;
    signals::install();
    let ui = Ui::new(ctx);
    let res = Lab::up_routed(&spec, routing.as_ref(), &|s| ui.step(s));
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
    if routing.is_some() {
        routed::print_up(ctx, &ui, &lab, &st);
        return Ok(Outcome::Clean);
    }
    let name_flag = name_flag(lab.name());
    ui.line(
        ctx,
        format!(
            "{} lab '{}' is up: {} backend{} behind {}{}",
            ui.green("✓"),
            lab.name(),
            st.backends,
            if st.backends == 1 { "" } else { "s" },
            st.vip.join(" and "),
            if st.balancer {
                format!(" (balancer: lbctl lb run, engine {})", st.engine.as_str())
            } else {
                " (no balancer started)".into()
            }
        ),
    );
    print_nodes(ctx, &ui, &st);
    ui.line(ctx, "");
    ui.line(ctx, ui.bold("Try:"));
    let be1 = lab
        .backends()
        .first()
        .cloned()
        .unwrap_or_else(|| "be1".into());
    let doctor = lab.doctor_args(&be1)?.join(" ");
    for l in [
        format!("lbctl lab traffic{name_flag}                      # requests via the VIP: who answered, which way replies went"),
        format!("lbctl lab exec{name_flag} client -- ip neigh      # the VIP resolves to the balancer's MAC"),
        format!("lbctl {doctor}"),
        format!("lbctl lab break{name_flag} {be1} arp-flux          # then run doctor again"),
        format!("lbctl lab down{name_flag}"),
    ] {
        ui.line(ctx, format!("  {l}"));
    }
    Ok(Outcome::Clean)
}

fn name_flag(name: &str) -> String {
    if name == lab::DEFAULT_NAME {
        String::new()
    } else {
        format!(" --name {name}")
    }
}

fn print_nodes(ctx: &Ctx, ui: &Ui, st: &LabStatus) {
    ui.line(
        ctx,
        ui.dim(&format!(
            "  {:<7} {:<26} {:<28} {:<18} {}",
            "NODE", "NAMESPACE", "ADDRESS", "MAC", "PROCESS"
        )),
    );
    for n in &st.nodes {
        let addr = match (&n.ipv4, &n.ipv6) {
            (Some(a), Some(b)) => format!("{a} {b}"),
            (Some(a), None) => a.clone(),
            (None, Some(b)) => b.clone(),
            (None, None) => match n.role {
                Role::Switch => "(bridge br0)".into(),
                _ => "-".into(),
            },
        };
        let procs: Vec<String> = st
            .processes
            .iter()
            .filter(|p| p.node == n.node)
            .map(|p| {
                let what = if p.alive {
                    ui.green("running")
                } else if p.stopped {
                    ui.yellow("stopped (lab break)")
                } else {
                    ui.red("dead")
                };
                format!("{} pid {} {what}", p.role, p.pid)
            })
            .collect();
        let ns = if n.exists {
            n.namespace.clone()
        } else {
            ui.red(&format!("{} (missing)", n.namespace))
        };
        ui.line(
            ctx,
            format!(
                "  {:<7} {:<26} {:<28} {:<18} {}",
                n.node,
                ns,
                addr,
                n.mac.as_deref().unwrap_or("-"),
                procs.join(", ")
            ),
        );
    }
}

// =============================================================================================
// traffic (shared with demo)
// =============================================================================================

fn print_traffic(ctx: &Ctx, ui: &Ui, t: &Traffic, backends: &[String]) {
    let ok: usize = t.per_backend.values().sum();
    let width = 40usize;
    for be in backends {
        let n = t.per_backend.get(be).copied().unwrap_or(0);
        let bar = "█".repeat(if ok == 0 {
            0
        } else {
            n * width / t.requests.max(1)
        });
        ui.line(ctx, format!("  {be:<5} {:>4}  {}", n, ui.green(&bar)));
    }
    for (name, n) in &t.per_backend {
        if !backends.contains(name) {
            ui.line(ctx, format!("  {name:<5} {n:>4}  (not a backend)"));
        }
    }
    if !t.failures.is_empty() {
        ui.line(
            ctx,
            ui.red(&format!(
                "  {} of {} requests failed: {}",
                t.failures.len(),
                t.requests,
                t.failures.first().cloned().unwrap_or_default()
            )),
        );
    }
    let sw = |k: &str| t.switch.get(k).copied().unwrap_or_default();
    ui.line(ctx, "");
    ui.line(ctx, "  bytes on eth0          received       sent");
    ui.line(
        ctx,
        format!(
            "  client             {:>12} {:>10}",
            t.client_eth0.rx_bytes, t.client_eth0.tx_bytes
        ),
    );
    ui.line(
        ctx,
        format!(
            "  balancer (lb)      {:>12} {:>10}",
            t.balancer_eth0.rx_bytes, t.balancer_eth0.tx_bytes
        ),
    );
    if t.replies_bypassed_balancer() && sw("requests_to_lb").packets > 0 {
        ui.line(
            ctx,
            ui.dim(&format!(
                "  (the balancer passed on what the client sent; the {} bytes the client \
                 received came straight from the backends)",
                t.client_eth0.rx_bytes
            )),
        );
    }
    ui.line(
        ctx,
        format!(
            "  switch: {} request packets client→lb, {} lb→backends; {} reply packets from the \
             VIP, {} of them through the balancer's port",
            sw("requests_to_lb").packets,
            sw("requests_from_lb").packets,
            sw("replies").packets,
            sw("replies_via_lb").packets
        ),
    );
    if let Some(mac) = &t.vip_mac {
        ui.line(
            ctx,
            format!(
                "  the client's neighbour (ARP/NDP) entry for the VIP: {mac} ({})",
                t.vip_mac_node.as_deref().unwrap_or("not a lab node")
            ),
        );
    }
}

fn traffic(ctx: &Ctx, a: TrafficArgs, run_dir: PathBuf) -> Result<Outcome> {
    if a.requests == 0 || a.requests > 100_000 {
        return Err(usage!("--requests must be between 1 and 100000"));
    }
    let lab = Lab::load(&run_dir, &a.name.name)?;
    if a.ipv6 && !lab.state().ipv6 {
        return Err(usage!(
            "lab '{}' has no IPv6 (create it with `lbctl lab up --ipv6`)",
            lab.name()
        ));
    }
    require_root("traffic")?;
    signals::install();
    if lab.state().crossover.is_some() {
        if a.long.is_some() || a.skewed || a.ipv6 {
            return Err(usage!(
                "--long, --skewed and --ipv6 need a lab with a VIP (lab '{}' is a crossover \
                 lab: plain `lbctl lab traffic` spreads requests over its public range)",
                lab.name()
            ));
        }
        return crossover::traffic(ctx, &lab, a.requests);
    }
    if let Some(n) = a.long {
        return routed::long(ctx, &lab, n);
    }
    if lab.state().routing.is_some() {
        if a.skewed {
            return Err(usage!(
                "--skewed needs a plain lab (lab '{}' is routed)",
                lab.name()
            ));
        }
        return routed::traffic(ctx, &lab, a.requests);
    }
    let vip = if a.ipv6 {
        IpAddr::V6(VIP6)
    } else {
        IpAddr::V4(VIP4)
    };
    let t = if a.skewed {
        lab.traffic_skewed(a.requests, vip)?
    } else {
        lab.traffic(a.requests, vip)?
    };
    let backends = lab.backends();
    let (ok, mut why) = t.verdict(&backends);
    if !ok {
        if lab.balancer_running() {
            why.push_str(" (a balancer runs: `lbctl lab status` and `lbctl lab exec lb lbctl doctor --role lb` say more)");
        } else if !lab.state().balancer {
            why.push_str(
                " (this lab was created with --no-balancer: start one in the lb namespace)",
            );
        } else {
            why.push_str(" (the lab's balancer is not running: see `lbctl lab status`)");
        }
    }
    if ctx.global.json {
        ctx.emit_json(&json!({"traffic": t, "dsr": ok, "verdict": why}));
    } else {
        let ui = Ui::new(ctx);
        ui.line(
            ctx,
            ui.bold(&format!(
                "{} requests from the client to {}:",
                t.requests, t.target
            )),
        );
        print_traffic(ctx, &ui, &t, &backends);
        if let Some(s) = &t.skewed {
            let by: Vec<String> = s
                .answered_by
                .iter()
                .map(|(b, n)| format!("{b} {n}"))
                .collect();
            ui.line(
                ctx,
                format!(
                    "skewed: {} uploads of {} KiB from {} source port(s) {} answered before; \
                     answered by: {} (`lbctl lab exec lb -- lbctl lb balance` shows the byte skew)",
                    s.uploads,
                    s.bytes_each / 1024,
                    s.source_ports.len(),
                    s.backend,
                    if by.is_empty() {
                        "none".to_string()
                    } else {
                        by.join(", ")
                    }
                ),
            );
        }
        ui.line(
            ctx,
            if ok {
                format!("{} {why}", ui.green("✓"))
            } else {
                format!("{} {why}", ui.red("✗"))
            },
        );
    }
    Ok(if ok {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}

// =============================================================================================
// demo
// =============================================================================================

fn doctor_summary(v: &Value) -> String {
    let s = &v["summary"];
    format!(
        "{} passed, {} failed, {} warnings, {} skipped",
        s["pass"], s["fail"], s["warn"], s["skip"]
    )
}

fn demo(ctx: &Ctx, a: DemoArgs, run_dir: PathBuf) -> Result<Outcome> {
    if a.requests == 0 || a.requests > 10_000 {
        return Err(usage!("--requests must be between 1 and 10000"));
    }
    let spec = LabSpec {
        engine: a.engine.into(),
        run_dir,
        ..LabSpec::new(&a.name, lbctl_exe()?)
    };
    spec.validate()?;
    require_root("demo")?;
    signals::install();
    let ui = Ui::new(ctx);
    let started = std::time::Instant::now();
    ui.line(
        ctx,
        ui.bold("lbctl lab demo: Direct Server Return in network namespaces (nothing outside them is touched)"),
    );
    ui.line(ctx, "");
    ui.line(
        ctx,
        ui.bold(&format!(
            "1. A switch, a client, a balancer and {} backends (lab '{}')",
            spec.backends, spec.name
        )),
    );
    let res = Lab::up_with(&spec, &|s| ui.step(s));
    let lab = match res {
        Ok(lab) => lab,
        Err(e) => {
            ui.done();
            if signals::is_interrupt(&e) {
                exit_interrupted("the demo lab was removed");
            }
            return Err(e);
        }
    };
    // From here on the lab exists: whatever happens, it goes away again.
    let result = demo_steps(ctx, &ui, &lab, a.requests);
    ui.step("tearing down");
    let down = lab.down();
    ui.done();
    if signals::interrupted() {
        if let Err(e) = &down {
            eprintln!("lbctl: {e}");
        }
        exit_interrupted("the demo lab was removed");
    }
    let (t, dsr_ok, why, doctor) = result?;
    let down = down?;
    let doctor_ok = doctor.0 == 0;
    let ok = dsr_ok && doctor_ok;
    if ctx.global.json {
        ctx.emit_json(&json!({
            "ok": ok,
            "dsr": dsr_ok,
            "verdict": why,
            "traffic": t,
            "doctor": {"node": "be1", "exit": doctor.0, "report": doctor.1},
            "down": down,
            "seconds": started.elapsed().as_secs_f64(),
        }));
    } else {
        ui.line(ctx, "");
        ui.line(ctx, ui.bold("5. Tear down"));
        ui.line(
            ctx,
            format!(
                "  stopped {} processes by PID, deleted {} namespaces",
                down.stopped.len(),
                down.deleted.len()
            ),
        );
        for w in &down.warnings {
            ui.line(ctx, ui.yellow(&format!("  {w}")));
        }
        ui.line(ctx, "");
        let secs = started.elapsed().as_secs_f64();
        if ok {
            ui.line(
                ctx,
                format!(
                    "{} DSR works: {why} ({secs:.1} s). Next: `sudo lbctl lab up`, then `lbctl lab \
                     break be1 arp-flux` and watch `lbctl doctor` find it.",
                    ui.green("PASS")
                ),
            );
        } else if !dsr_ok {
            ui.line(ctx, format!("{} {why}", ui.red("FAIL")));
        } else {
            ui.line(
                ctx,
                format!(
                    "{} doctor found problems on be1 (see above)",
                    ui.red("FAIL")
                ),
            );
        }
    }
    Ok(if ok {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}

type DemoResult = (Traffic, bool, String, (i32, Value));

fn demo_steps(ctx: &Ctx, ui: &Ui, lab: &Lab, requests: usize) -> Result<DemoResult> {
    let st = lab.status();
    print_nodes(ctx, ui, &st);
    signals::check()?;
    ui.line(ctx, "");
    ui.line(
        ctx,
        ui.bold(&format!(
            "2. {requests} HTTP requests from the client to {} (a new connection each)",
            st.vip[0]
        )),
    );
    ui.step("sending requests");
    let t = lab.traffic(requests, IpAddr::V4(VIP4))?;
    let backends = lab.backends();
    print_traffic(ctx, ui, &t, &backends);
    let (ok, why) = t.verdict(&backends);
    ui.line(ctx, "");
    ui.line(ctx, ui.bold("3. Did the replies bypass the balancer?"));
    ui.line(
        ctx,
        if ok {
            format!("  {} {why}", ui.green("yes:"))
        } else {
            format!("  {} {why}", ui.red("no:"))
        },
    );
    signals::check()?;
    ui.line(ctx, "");
    let args = lab.doctor_args("be1")?;
    ui.line(ctx, ui.bold(&format!("4. lbctl {}", args.join(" "))));
    ui.step("running lbctl doctor on be1");
    let doctor = lab.doctor("be1")?;
    for c in doctor.1["checks"].as_array().into_iter().flatten() {
        let status = c["status"].as_str().unwrap_or("");
        if status == "fail" || status == "warn" {
            let mark = if status == "fail" {
                ui.red("✗")
            } else {
                ui.yellow("!")
            };
            ui.line(
                ctx,
                format!("  {mark} {}", c["title"].as_str().unwrap_or_default()),
            );
        }
    }
    let summary = doctor_summary(&doctor.1);
    ui.line(
        ctx,
        if doctor.0 == 0 {
            format!("  {} {summary}", ui.green("✓"))
        } else {
            format!("  {} {summary}", ui.red("✗"))
        },
    );
    Ok((t, ok, why, doctor))
}

// =============================================================================================
// exec, status, down, break, serve
// =============================================================================================

fn exec(a: ExecArgs, run_dir: PathBuf) -> Result<Outcome> {
    use std::os::unix::process::CommandExt;
    let lab = Lab::load(&run_dir, &a.name.name)?;
    let argv: Vec<&str> = a.cmd.iter().map(String::as_str).collect();
    let mut cmd = lab.command(&a.node, &argv)?;
    require_root("exec")?;
    // Replace this process: the command's exit code and signals are the caller's.
    let e = cmd.exec();
    Err(Error::Runtime(
        anyhow::Error::new(e).context(format!("running {} in {}", a.cmd[0], a.node)),
    ))
}

fn status(ctx: &Ctx, a: StatusArgs, run_dir: PathBuf) -> Result<Outcome> {
    let names = match &a.name {
        Some(n) => {
            lab::topology::validate_name(n)?;
            vec![n.clone()]
        }
        None => Lab::list(&run_dir),
    };
    let mut labs = Vec::new();
    for n in &names {
        labs.push(Lab::load(&run_dir, n)?.status());
    }
    let healthy = labs.iter().all(|l| l.healthy);
    if ctx.global.json {
        ctx.emit_json(&json!({ "labs": labs }));
    } else {
        let ui = Ui::new(ctx);
        if labs.is_empty() {
            ui.line(ctx, "no labs (start one with `sudo lbctl lab up`)");
        }
        for (i, st) in labs.iter().enumerate() {
            if i > 0 {
                ui.line(ctx, "");
            }
            let health = if st.healthy {
                ui.green("healthy")
            } else {
                ui.red("degraded")
            };
            if let Some(x) = &st.crossover {
                crossover::print_status(ctx, &ui, st, x, &health);
                continue;
            }
            ui.line(
                ctx,
                format!(
                    "lab '{}' ({}, {health}): VIP {}, {} backends, balancer {}",
                    st.name,
                    match st.phase {
                        state::Phase::Up => "up",
                        state::Phase::Creating => "incomplete: run `lbctl lab down`",
                    },
                    st.vip.join(" "),
                    st.backends,
                    if st.balancer {
                        format!("lbctl lb run (engine {})", st.engine.as_str())
                    } else {
                        "not started".into()
                    }
                ),
            );
            print_nodes(ctx, &ui, st);
            routed::print_next_hops(ctx, &ui, &st.next_hops);
            routed::print_vrrp(ctx, &ui, st);
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
    }
    Ok(if healthy {
        Outcome::Clean
    } else {
        Outcome::Findings
    })
}

fn report_down(ctx: &Ctx, ui: &Ui, r: &DownReport) {
    ui.line(
        ctx,
        format!(
            "lab '{}' removed: {} processes stopped, {} namespaces deleted",
            r.name,
            r.stopped
                .iter()
                .filter(|s| !s.ends_with("AlreadyGone"))
                .count(),
            r.deleted.len()
        ),
    );
    for p in &r.stopped {
        ctx.detail(format!("  stopped {p}"));
    }
    for w in &r.warnings {
        ctx.warn(w);
    }
}

fn down(ctx: &Ctx, a: DownArgs, run_dir: PathBuf) -> Result<Outcome> {
    if let Some(n) = &a.name {
        lab::topology::validate_name(n)?;
    }
    require_root("down")?;
    signals::install();
    let ui = Ui::new(ctx);
    let reports = if a.all {
        lab::down_all(&run_dir)?
    } else {
        let name = a.name.as_deref().unwrap_or(lab::DEFAULT_NAME);
        match lab::down(&run_dir, name)? {
            Some(r) => vec![r],
            None => {
                if !ctx.global.json {
                    ui.line(ctx, format!("no lab named '{name}': nothing to do"));
                }
                Vec::new()
            }
        }
    };
    if ctx.global.json {
        ctx.emit_json(&json!({ "removed": reports }));
    } else {
        if a.all && reports.is_empty() {
            ui.line(ctx, "no labs: nothing to do");
        }
        for r in &reports {
            report_down(ctx, &ui, r);
        }
    }
    if signals::interrupted() {
        exit_interrupted("the removal finished first");
    }
    Ok(Outcome::Clean)
}

fn break_(ctx: &Ctx, a: BreakArgs, run_dir: PathBuf) -> Result<Outcome> {
    let lab = Lab::load(&run_dir, &a.name.name)?;
    if lab.state().crossover.is_some() {
        return crossover::break_server(ctx, &lab, &a);
    }
    let fault = match BreakKind::from(a.fault) {
        BreakKind::Server(f) => {
            return Err(usage!(
                "`{}` breaks a server of a crossover lab (`lbctl lab up --topology crossover \
                 --servers N`); lab '{}' is not one",
                f.name(),
                lab.name()
            ))
        }
        BreakKind::Backend(f) => f,
        BreakKind::Balancer(f) => {
            require_root("break")?;
            return routed::break_balancer(ctx, &lab, &a, f);
        }
    };
    if !lab.backends().contains(&a.node) {
        return Err(usage!(
            "faults go into backends; valid nodes: {}",
            lab.backends().join(", ")
        ));
    }
    require_root("break")?;
    lab.inject(&a.node, fault)?;
    let doctor = lab.doctor_args(&a.node)?.join(" ");
    if ctx.global.json {
        ctx.emit_json(&json!({
            "lab": lab.name(),
            "node": a.node,
            "fault": fault,
            "check": fault.check_id(),
            "doctor": format!("lbctl {doctor}"),
        }));
    } else {
        let ui = Ui::new(ctx);
        ui.line(
            ctx,
            format!("{} {}: {}", ui.yellow("broke"), a.node, fault.describe()),
        );
        ui.line(
            ctx,
            format!(
                "now run:  lbctl {doctor}\n(expect ✗ {}; `lbctl lab traffic{}` shows the effect; `lbctl lab down{}` and `up` start afresh)",
                fault.check_id(),
                name_flag(lab.name()),
                name_flag(lab.name())
            ),
        );
    }
    Ok(Outcome::Clean)
}

fn serve(ctx: &Ctx, a: ServeArgs) -> Result<Outcome> {
    lab::http::validate_server_name(&a.name)?;
    if let Some(ns) = &ctx.global.netns {
        crate::sys::enter_netns(ns)?;
    }
    let listener = lab::http::bind(a.port)?;
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    eprintln!("lbctl lab serve: '{}' listening on {addr}", a.name);
    lab::http::serve(listener, &a.name)?;
    Ok(Outcome::Clean)
}
