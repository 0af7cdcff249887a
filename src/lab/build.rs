//! Building and removing a lab: the steps of `lab up` in order, the processes it starts, and the
//! teardown shared by `down` and a failed `up`.
//!
//! `lab up`, step by step:
//! 1. record every namespace name, then create them one by one (recording each inode);
//! 2. the switch: bridge `br0` and its counters (`topology::switch_nft`);
//! 3. each host: a veth made in the switch namespace with its peer moved straight into the host,
//!    fixed MAC, addresses, default route on the backends;
//! 4. each backend configured by lbctl itself (`arp suppress` + `vip add`, or `apply -f`);
//! 5. each backend's HTTP server (`lbctl lab serve`), recorded before it runs, then asked from
//!    the client until it answers with its own name;
//! 6. the balancer (`lbctl lb run -c lb.toml`), recorded before it runs, then `lb status` until
//!    every backend is up.
//!
//! Teardown, in order: stop the recorded processes (PID + start time), delete the recorded
//! namespaces newest first (only if still the same namespace), drop their lbctl journals.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::Value;

use super::state::{LabState, NsRecord, ProcRecord, StateDir};
use super::topology::{self, Node, Role};
use super::{http, process, signals, DownReport, PORT, STALL_ENV, STOP_GRACE, VIP6};
use crate::error::{Error, Result};
use crate::sys::netns;

/// How long `up` waits for the backends' servers to answer.
const SERVER_WAIT: Duration = Duration::from_secs(5);
/// How long `up` waits for the balancer to report every backend up.
const BALANCER_WAIT: Duration = Duration::from_secs(10);

pub(super) fn lbctl_cmd(st: &LabState, ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new(&st.lbctl_bin);
    c.arg("--netns")
        .arg(ns)
        .args(args)
        .env("LBCTL_RUN_DIR", &st.run_dir)
        .stdin(Stdio::null());
    c
}

/// Run lbctl inside `ns`; a failure carries lbctl's message.
pub(super) fn run_lbctl(st: &LabState, ns: &str, args: &[&str]) -> Result<String> {
    let out = lbctl_cmd(st, ns, args)
        .output()
        .with_context(|| format!("running {}", st.lbctl_bin.display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Runtime(anyhow::anyhow!(
            "lbctl --netns {ns} {} (exit {}): {}",
            args.join(" "),
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Load an nft script inside `ns`.
pub(super) fn nft_in(ns: &str, script: &str) -> Result<()> {
    let nft = netns::find_tool("nft")
        .ok_or_else(|| Error::Runtime(anyhow::anyhow!("`nft` is not installed")))?;
    let nft = nft.to_string_lossy().into_owned();
    let mut child = netns::command(ns, &[&nft, "-f", "-"])?
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft")?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())
        .context("writing to nft")?;
    let out = child.wait_with_output().context("waiting for nft")?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Runtime(anyhow::anyhow!(
            "nft in {ns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn stall_point(step: &str) -> Result<()> {
    if std::env::var(STALL_ENV).as_deref() == Ok(step) {
        eprintln!("lbctl lab: {STALL_ENV}={step}: stalled (test hook)");
        loop {
            signals::check()?;
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

pub(super) fn ns_of(st: &LabState, node: &str) -> String {
    st.node(node).map(|n| n.ns.clone()).unwrap_or_default()
}

pub(super) fn build(
    dir: &StateDir,
    st: &mut LabState,
    profiles: &BTreeMap<String, String>,
    progress: &dyn Fn(&str),
) -> Result<()> {
    // 1. Namespaces: every name is recorded before the first one is created.
    progress("creating namespaces");
    st.namespaces = st
        .nodes
        .iter()
        .map(|n| NsRecord {
            node: n.node.clone(),
            name: n.ns.clone(),
            inode: None,
        })
        .collect();
    dir.save(st)?;
    for i in 0..st.namespaces.len() {
        signals::check()?;
        let name = st.namespaces[i].name.clone();
        if let Err(e) = netns::add(&name) {
            // Not created (by us): it must not be torn down as ours. `add` itself removes a
            // namespace it created but could not set up.
            st.namespaces.remove(i);
            dir.save(st)?;
            return Err(e);
        }
        st.namespaces[i].inode = netns::inode(&name);
        dir.save(st)?;
    }
    stall_point("namespaces")?;

    // 2. The switch: a bridge, and counters that show which way replies go.
    progress("wiring the switch");
    let sw = ns_of(st, "sw");
    netns::ip_in(&sw, &["link", "add", topology::BRIDGE, "type", "bridge"])?;
    netns::ip_in(&sw, &["link", "set", topology::BRIDGE, "up"])?;
    nft_in(&sw, &topology::switch_nft(st.ipv6))?;

    // 3. Hosts: a veth made in the switch namespace, its peer moved straight into the host.
    for n in st
        .nodes
        .clone()
        .iter()
        .filter(|n| super::routing::on_switch(st, n))
    {
        signals::check()?;
        let port = n.port();
        netns::ip_in(
            &sw,
            &[
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                topology::HOST_IF,
                "netns",
                &n.ns,
            ],
        )?;
        netns::ip_in(
            &sw,
            &["link", "set", &port, "master", topology::BRIDGE, "up"],
        )?;
        let ip = |args: &[&str]| netns::ip_in(&n.ns, args);
        if let Some(mac) = &n.mac {
            ip(&["link", "set", topology::HOST_IF, "address", mac])?;
        }
        if let Some(a) = n.ipv4 {
            ip(&["addr", "add", &format!("{a}/24"), "dev", topology::HOST_IF])?;
        }
        if let Some(a) = n.ipv6 {
            ip(&[
                "addr",
                "add",
                &format!("{a}/64"),
                "dev",
                topology::HOST_IF,
                "nodad",
            ])?;
        }
        ip(&["link", "set", topology::HOST_IF, "up"])?;
        if n.role == Role::Backend {
            ip(&[
                "route",
                "add",
                "default",
                "via",
                &topology::GATEWAY4.to_string(),
            ])?;
            if n.ipv6.is_some() {
                ip(&[
                    "-6",
                    "route",
                    "add",
                    "default",
                    "via",
                    &topology::GATEWAY6.to_string(),
                ])?;
            }
        }
    }

    if st.routing.is_some() {
        progress("wiring the router");
        super::routing::wire(st)?;
    }
    if st.crossover.is_some() {
        progress("wiring the router (the crossover plan's multipath routes)");
        super::crossover::wire(st)?;
    }

    // 4. Backends, configured by lbctl itself (a crossover lab's agents configure their own
    //    addresses: step 6).
    for n in st
        .nodes
        .clone()
        .iter()
        .filter(|n| n.role == Role::Backend && st.crossover.is_none())
    {
        signals::check()?;
        progress(&format!("configuring {} with lbctl", n.node));
        configure_backend(dir, st, n, profiles.get(&n.node))?;
    }

    // 5. Each backend's HTTP server, recorded before it runs.
    progress("starting the backends' HTTP servers");
    for n in st.nodes.clone().iter().filter(|n| n.role == Role::Backend) {
        signals::check()?;
        start_server(dir, st, n)?;
    }
    stall_point("servers")?;
    wait_for_servers(st)?;

    // 6. The balancer (or a routed lab's router and balancers, or a crossover lab's agents).
    if st.crossover.is_some() {
        super::crossover::start(dir, st, progress)?;
    } else if st.routing.is_some() {
        super::routing::start(dir, st, progress)?;
    } else if st.balancer {
        progress("starting the balancer (lbctl lb run)");
        start_balancer(dir, st)?;
        progress("waiting for the balancer's health checks");
        wait_for_balancer(st)?;
    }
    Ok(())
}

fn configure_backend(
    dir: &StateDir,
    st: &LabState,
    n: &Node,
    profile: Option<&String>,
) -> Result<()> {
    let vip = st.vip4().to_string();
    match profile {
        Some(text) => {
            let path = dir.path().join(format!("{}.toml", n.node));
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            run_lbctl(st, &n.ns, &["apply", "-f", &path.to_string_lossy()])?;
        }
        None => {
            let rip = n.ipv4.map(|a| a.to_string()).unwrap_or_default();
            // Suppression before the VIP appears, as the README teaches.
            run_lbctl(st, &n.ns, &["arp", "suppress", &vip, "--real-ip", &rip])?;
            run_lbctl(st, &n.ns, &["vip", "add", &vip])?;
            if st.ipv6 {
                run_lbctl(st, &n.ns, &["vip", "add", &VIP6.to_string()])?;
            }
        }
    }
    Ok(())
}

/// Spawn a detached process whose PID is recorded before it runs.
pub(super) fn spawn_recorded(
    dir: &StateDir,
    st: &mut LabState,
    node: &str,
    role: &str,
    argv: Vec<String>,
) -> Result<ProcRecord> {
    let log = dir.path().join(format!("{node}-{role}.log"));
    let env = vec![(
        "LBCTL_RUN_DIR".to_string(),
        st.run_dir.to_string_lossy().into_owned(),
    )];
    let mut rec = None;
    process::spawn_detached(&argv, &env, &log, |pid, start| {
        let r = ProcRecord {
            node: node.to_string(),
            role: role.to_string(),
            pid,
            start_time: start,
            argv: argv.clone(),
            log: log.clone(),
            stopped: false,
        };
        st.processes.push(r.clone());
        rec = Some(r);
        dir.save(st)
    })?;
    Ok(rec.expect("recorded before the process ran"))
}

fn start_server(dir: &StateDir, st: &mut LabState, n: &Node) -> Result<ProcRecord> {
    let argv = vec![
        st.lbctl_bin.to_string_lossy().into_owned(),
        "--netns".into(),
        n.ns.clone(),
        "lab".into(),
        "serve".into(),
        "--name".into(),
        n.node.clone(),
        "--port".into(),
        PORT.to_string(),
    ];
    spawn_recorded(dir, st, &n.node, "http", argv)
}

pub(super) fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
    if tail.is_empty() {
        "(log empty)".into()
    } else {
        tail
    }
}

/// Every backend answers `GET /` with its own name on its real IP(s), asked from the client.
fn wait_for_servers(st: &LabState) -> Result<()> {
    let mut targets: Vec<(String, SocketAddr)> = Vec::new();
    for n in st.nodes.iter().filter(|n| n.role == Role::Backend) {
        if let Some(a) = n.ipv4 {
            targets.push((n.node.clone(), SocketAddr::new(IpAddr::V4(a), PORT)));
        }
        if let Some(a) = n.ipv6 {
            targets.push((n.node.clone(), SocketAddr::new(IpAddr::V6(a), PORT)));
        }
    }
    let procs = st.processes.clone();
    let missing = netns::run_in(&ns_of(st, "client"), move || {
        let deadline = Instant::now() + SERVER_WAIT;
        let mut pending = targets;
        while !pending.is_empty() {
            if signals::interrupted() {
                return Err("interrupted".to_string());
            }
            pending.retain(|(name, addr)| {
                !matches!(http::get(*addr, "/", Duration::from_millis(300)),
                          Ok(r) if r.status == 200 && r.body.trim() == name)
            });
            if let Some((name, _)) = pending.iter().find(|(name, _)| {
                procs
                    .iter()
                    .any(|p| &p.node == name && !process::is_alive(p.pid, p.start_time))
            }) {
                return Err(format!("the HTTP server of {name} exited"));
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(pending)
    })?;
    match missing {
        Ok(p) if p.is_empty() => Ok(()),
        Ok(p) => {
            let who: Vec<String> = p.iter().map(|(n, a)| format!("{n} ({a})")).collect();
            Err(server_error(
                st,
                &format!("no answer from {} within {SERVER_WAIT:?}", who.join(", ")),
            ))
        }
        Err(e) if e == "interrupted" => {
            Err(Error::Runtime(anyhow::Error::new(signals::Interrupted)))
        }
        Err(e) => Err(server_error(st, &e)),
    }
}

fn server_error(st: &LabState, what: &str) -> Error {
    let logs: Vec<String> = st
        .processes
        .iter()
        .filter(|p| p.role == "http")
        .map(|p| format!("{}: {}", p.node, log_tail(&p.log)))
        .collect();
    Error::Runtime(anyhow::anyhow!(
        "backend HTTP servers: {what} (logs: {})",
        logs.join("; ")
    ))
}

fn start_balancer(dir: &StateDir, st: &mut LabState) -> Result<ProcRecord> {
    let path = dir.path().join("lb.toml");
    std::fs::write(
        &path,
        topology::lb_file(&st.name, st.engine, &st.nodes, st.ipv6),
    )
    .with_context(|| format!("writing {}", path.display()))?;
    let argv = vec![
        st.lbctl_bin.to_string_lossy().into_owned(),
        "--netns".into(),
        ns_of(st, "lb"),
        "lb".into(),
        "run".into(),
        "-c".into(),
        path.to_string_lossy().into_owned(),
    ];
    spawn_recorded(dir, st, "lb", "balancer", argv)
}

/// Is every backend of every service "up" in `lb status --json`? Accepts the daemon list
/// (`{"daemons": [...]}`) and a single daemon's document.
pub fn balancer_ready(v: &Value) -> bool {
    fn one(d: &Value) -> bool {
        d["ready"].as_bool() != Some(false)
            && d["running"].as_bool() != Some(false)
            && d["services"].as_array().is_some_and(|s| {
                !s.is_empty()
                    && s.iter().all(|svc| {
                        svc["backends"].as_array().is_some_and(|b| {
                            !b.is_empty() && b.iter().all(|be| be["state"].as_str() == Some("up"))
                        })
                    })
            })
    }
    match v["daemons"].as_array() {
        Some(ds) => !ds.is_empty() && ds.iter().all(one),
        None => one(v),
    }
}

fn wait_for_balancer(st: &LabState) -> Result<()> {
    let p = st
        .processes
        .iter()
        .find(|p| p.role == "balancer")
        .cloned()
        .ok_or_else(|| Error::Runtime(anyhow::anyhow!("no balancer process recorded")))?;
    let ns = ns_of(st, "lb");
    let deadline = Instant::now() + BALANCER_WAIT;
    loop {
        signals::check()?;
        if !process::is_alive(p.pid, p.start_time) {
            return Err(Error::Runtime(anyhow::anyhow!(
                "the balancer (lbctl lb run, pid {}) exited: {}",
                p.pid,
                log_tail(&p.log)
            )));
        }
        let out = lbctl_cmd(st, &ns, &["--json", "lb", "status"])
            .stderr(Stdio::piped())
            .output()
            .context("running lbctl lb status")?;
        let last = if out.status.success() {
            match serde_json::from_slice::<Value>(&out.stdout) {
                Ok(v) if balancer_ready(&v) => return Ok(()),
                Ok(v) => v.to_string(),
                Err(e) => format!("unparsable lb status: {e}"),
            }
        } else {
            String::from_utf8_lossy(&out.stderr).trim().to_string()
        };
        if Instant::now() >= deadline {
            return Err(Error::Runtime(anyhow::anyhow!(
                "the balancer did not report every backend up within {BALANCER_WAIT:?}; last \
                 status: {last}; log: {}",
                log_tail(&p.log)
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stop recorded processes, delete recorded namespaces (newest first), drop their journals.
pub(super) fn teardown(st: &LabState) -> DownReport {
    let mut r = DownReport {
        name: st.name.clone(),
        ..Default::default()
    };
    for p in st.processes.iter().rev() {
        match process::terminate(p.pid, p.start_time, STOP_GRACE) {
            Ok(how) => r
                .stopped
                .push(format!("{} {} pid {}: {how:?}", p.node, p.role, p.pid)),
            Err(e) => r.errors.push(format!(
                "stopping {} {} (pid {}): {e}",
                p.node, p.role, p.pid
            )),
        }
    }
    for ns in st.namespaces.iter().rev() {
        if !netns::path(&ns.name).exists() {
            continue;
        }
        let now = netns::inode(&ns.name);
        if ns.inode.is_some() && now.is_some() && ns.inode != now {
            r.warnings.push(format!(
                "{} is not the namespace this lab created (it was replaced); left alone",
                ns.name
            ));
            continue;
        }
        let strangers = netns::pids(&ns.name);
        if !strangers.is_empty() {
            r.warnings.push(format!(
                "processes the lab did not start are still in {}: {:?} (left running; the \
                 namespace disappears when they exit)",
                ns.name, strangers
            ));
        }
        match netns::del(&ns.name) {
            Ok(()) => {
                r.deleted.push(ns.name.clone());
                let journal = st.run_dir.join("netns").join(&ns.name);
                let _ = std::fs::remove_dir_all(journal);
            }
            Err(e) => r.errors.push(format!("deleting {}: {e}", ns.name)),
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn balancer_readiness() {
        let up = json!({"ready": true, "services": [{"vip": "198.18.0.100:80", "backends": [
            {"rip": "198.18.0.11", "state": "up"}, {"rip": "198.18.0.12", "state": "up"}]}]});
        assert!(balancer_ready(&up));
        let one_down = json!({"ready": true, "services": [{"backends": [
            {"state": "up"}, {"state": "down"}]}]});
        assert!(!balancer_ready(&one_down));
        assert!(!balancer_ready(&json!({"ready": false, "services": []})));
        assert!(!balancer_ready(&json!({"services": [{"backends": []}]})));
        assert!(!balancer_ready(&json!({})));
        // `lb status --json` wraps each daemon in a list.
        assert!(balancer_ready(&json!({"daemons": [up.clone()]})));
        assert!(!balancer_ready(&json!({"daemons": []})));
        let mut stopped = up.clone();
        stopped["running"] = json!(false);
        assert!(!balancer_ready(&json!({"daemons": [up, stopped]})));
    }
}
