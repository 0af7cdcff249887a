//! `lbctl lab`: a whole DSR set-up in network namespaces — a switch, a client, a balancer and K
//! backends — built with lbctl's own code, for newcomers, demos and tests. A routed lab
//! (`--balancers K --routing bgp`, [`routing`]) puts a router in front of balancers lb1…lbK; a
//! crossover lab (`--topology crossover --servers N`, [`crossover`]) has no balancer: a router
//! with static multipath routes and servers s1…sN running `lbctl crossover run`.
//!
//! The same typed API serves the CLI (`commands/lab.rs`) and the integration tests:
//!
//! ```no_run
//! use lbctl::lab::{Fault, Lab, LabSpec};
//! # fn main() -> lbctl::Result<()> {
//! let mut spec = LabSpec::new("demo", "/usr/local/bin/lbctl");
//! spec.start_balancer = false; // bring your own `lbctl lb run`
//! let lab = Lab::up(&spec)?.guard(); // torn down when dropped
//! let out = lab.exec("client", &["ip", "-br", "addr"])?;
//! lab.inject("be1", Fault::NoVip)?;
//! let (code, report) = lab.doctor("be1")?;
//! # Ok(()) }
//! ```
//!
//! Why it looks like this:
//! - **Nothing outside its namespaces.** Every interface is created inside the switch namespace
//!   with its peer moved straight into a host namespace (`sys::netns`); the root namespace is
//!   never changed. Namespaces are `lbl-<lab>-<node>`, so several labs coexist.
//! - **Backends are configured by the real CLI**, run inside each backend's namespace
//!   (`lbctl --netns NS arp suppress …`, `vip add …`, or `apply -f` of a profile), and the
//!   balancer is the real `lbctl lb run`. The lab proves the product, it does not imitate it.
//! - **Write-ahead record** ([`state`]): namespaces and PIDs are recorded before they exist, so
//!   `lab down` after a killed `lab up` removes exactly what was made, and never anything else.
//! - **Transactional up, best-effort down.** A failing or interrupted `up` tears down what it
//!   built; `down` continues past errors, reports them all, and keeps the record until it has
//!   removed everything, so it can simply be run again.

mod build;
pub mod crossover;
pub mod faults;
pub mod http;
pub mod routing;
pub mod signals;
pub mod state;
mod status;
pub mod topology;
mod traffic;
pub mod vrrp;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;
use serde_json::Value;

pub use crate::sys::process;
pub use build::balancer_ready;
use build::{lbctl_cmd, teardown};
pub use crossover::{CrossoverSpec, CrossoverStatus, CrossoverTraffic, ServerFault};
pub use faults::Fault;
pub use routing::{BalancerFault, LongTraffic, RoutedTraffic, Routing, RoutingSpec, VipRoute};
use state::{LabState, Phase, StateDir};
pub use status::{LabStatus, NodeStatus, ProcStatus};
pub use topology::{Engine, Node, Role, DEFAULT_NAME, MAX_BACKENDS, PORT, VIP4, VIP6};
pub use traffic::{switch_counters, Count, IfCounters, Skewed, Traffic};

use crate::error::{Error, Result};
use crate::sys::netns;
use crate::usage;

/// How long a process gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// Test hook: `LBCTL_LAB_TEST_STALL=namespaces|servers` makes `lab up` stop (and wait for a
/// signal) right after that step, so a test can kill it part-way at a known point.
pub const STALL_ENV: &str = "LBCTL_LAB_TEST_STALL";

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabSpec {
    /// Lab name (`lbl-<name>-<node>` namespaces).
    pub name: String,
    /// Number of backends, 1..=[`MAX_BACKENDS`].
    pub backends: u8,
    /// Also 2001:db8::/64 addresses and the VIP 2001:db8::100.
    pub ipv6: bool,
    /// A backend profile template (placeholders like `{{rip}}`; see
    /// [`topology::render_profile`]) instead of `arp suppress` + `vip add`.
    pub profile: Option<PathBuf>,
    /// The balancer's engine (the LB file's `engine`).
    pub engine: Engine,
    /// Start `lbctl lb run` in the balancer namespace and wait until it reports every backend up.
    pub start_balancer: bool,
    /// The lbctl binary to run inside the namespaces (a test passes
    /// `env!("CARGO_BIN_EXE_lbctl")`; `current_exe()` there is the test binary).
    pub lbctl_bin: PathBuf,
    /// Where the lab's record lives (`<run_dir>/lab/<name>`) and the `LBCTL_RUN_DIR` of the
    /// lbctl commands the lab runs.
    pub run_dir: PathBuf,
}

impl LabSpec {
    /// Defaults: 2 backends, IPv4 only, no profile, engine auto, balancer started, run dir from
    /// `LBCTL_RUN_DIR` or /run/lbctl.
    pub fn new(name: &str, lbctl_bin: impl Into<PathBuf>) -> LabSpec {
        LabSpec {
            name: name.to_string(),
            backends: 2,
            ipv6: false,
            profile: None,
            engine: Engine::Auto,
            start_balancer: true,
            lbctl_bin: lbctl_bin.into(),
            run_dir: state::default_run_dir(),
        }
    }

    /// Check everything that can be checked without touching the system (and read the profile).
    /// Returns the nodes and each backend's rendered profile.
    pub fn validate(&self) -> Result<(Vec<Node>, BTreeMap<String, String>)> {
        topology::validate_name(&self.name)?;
        topology::validate_backends(self.backends)?;
        let nodes = topology::plan(&self.name, self.backends, self.ipv6);
        let mut profiles = BTreeMap::new();
        if let Some(path) = &self.profile {
            let template = std::fs::read_to_string(path)
                .map_err(|e| usage!("cannot read profile {}: {e}", path.display()))?;
            for n in nodes.iter().filter(|n| n.role == Role::Backend) {
                profiles.insert(
                    n.node.clone(),
                    topology::render_profile(&template, path, n)?,
                );
            }
        }
        Ok((nodes, profiles))
    }
}

/// Refuse early (exit 77) without root, and with a clear message when a tool is missing.
pub fn preflight(lbctl_bin: &Path) -> Result<()> {
    if !crate::sys::process::is_root() {
        return Err(Error::Privilege(
            "lbctl lab needs root (it creates network namespaces): run it with sudo; nothing was \
             changed"
                .into(),
        ));
    }
    netns::ip_tool()?;
    if netns::find_tool("nft").is_none() {
        return Err(Error::Runtime(anyhow::anyhow!(
            "`nft` (nftables) is not installed: apt-get install nftables"
        )));
    }
    if !lbctl_bin.is_file() {
        return Err(Error::Runtime(anyhow::anyhow!(
            "the lbctl binary {} does not exist",
            lbctl_bin.display()
        )));
    }
    Ok(())
}

/// A lab that exists (its record was found or just written).
#[derive(Debug, Clone)]
pub struct Lab {
    run_dir: PathBuf,
    state: LabState,
}

/// What `down` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DownReport {
    pub name: String,
    /// `node role pid: how`.
    pub stopped: Vec<String>,
    /// Namespaces deleted.
    pub deleted: Vec<String>,
    /// Things deliberately left alone, with the reason.
    pub warnings: Vec<String>,
    /// Failures (the record is kept so `down` can be run again).
    pub errors: Vec<String>,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Lab {
    /// Build the lab. Fails without changing anything on bad input (exit 2) or without root
    /// (exit 77); a failure or interrupt part-way tears down what was built.
    pub fn up(spec: &LabSpec) -> Result<Lab> {
        Lab::up_with(spec, &|_| {})
    }

    /// [`Lab::up`], calling `progress` with a short description before each step.
    pub fn up_with(spec: &LabSpec, progress: &dyn Fn(&str)) -> Result<Lab> {
        Lab::up_routed(spec, None, progress)
    }

    /// [`Lab::up_with`], and with `routing` a routed lab: a router and balancers lb1…lbK
    /// announcing the VIP (see [`routing`]).
    pub fn up_routed(
        spec: &LabSpec,
        routing: Option<&RoutingSpec>,
        progress: &dyn Fn(&str),
    ) -> Result<Lab> {
        Lab::up_inner(spec, routing, None, progress)
    }

    /// A crossover lab (see [`crossover`]): a router, a client and servers s1…sN running
    /// `lbctl crossover run`, no balancer. Of `spec` only the name, the lbctl binary and the run
    /// dir are used.
    pub fn up_crossover(spec: &LabSpec, x: CrossoverSpec, progress: &dyn Fn(&str)) -> Result<Lab> {
        crossover::validate(&x)?;
        let spec = LabSpec {
            backends: x.servers,
            ipv6: false,
            profile: None,
            engine: Engine::Auto,
            start_balancer: false,
            ..spec.clone()
        };
        Lab::up_inner(&spec, None, Some(x), progress)
    }

    fn up_inner(
        spec: &LabSpec,
        routing: Option<&RoutingSpec>,
        xover: Option<CrossoverSpec>,
        progress: &dyn Fn(&str),
    ) -> Result<Lab> {
        let (mut nodes, profiles) = spec.validate()?;
        if let Some(r) = routing {
            routing::validate(r, spec.ipv6, spec.profile.is_some(), spec.start_balancer)?;
            nodes = routing::plan(&spec.name, spec.backends, r);
        }
        if let Some(x) = &xover {
            nodes = crossover::plan_nodes(&spec.name, x);
        }
        preflight(&spec.lbctl_bin)?;
        match routing.map(|r| r.routing) {
            Some(Routing::Bgp) => routing::preflight()?,
            Some(Routing::Vrrp) => vrrp::preflight()?,
            None => {}
        }
        if xover.is_some() {
            crossover::preflight()?;
        }
        if state::lab_dir(&spec.run_dir, &spec.name).exists() {
            return Err(state::exists_error(&spec.name, &spec.run_dir));
        }
        for n in &nodes {
            if netns::exists(&n.ns) || netns::path(&n.ns).exists() {
                return Err(usage!(
                    "namespace {} already exists and no lab record covers it; if it is a \
                     leftover, delete it with `ip netns del {}`",
                    n.ns,
                    n.ns
                ));
            }
        }
        let lbctl_bin = std::fs::canonicalize(&spec.lbctl_bin).unwrap_or(spec.lbctl_bin.clone());
        let mut st = LabState {
            version: state::VERSION,
            name: spec.name.clone(),
            phase: Phase::Creating,
            created: now(),
            backends: spec.backends,
            ipv6: spec.ipv6,
            engine: spec.engine,
            profile: spec.profile.clone(),
            balancer: spec.start_balancer,
            lbctl_bin,
            run_dir: spec.run_dir.clone(),
            nodes,
            namespaces: Vec::new(),
            processes: Vec::new(),
            faults: Vec::new(),
            routing: routing.map(|r| r.routing),
            crossover: xover,
        };
        let dir = StateDir::create(&spec.run_dir, &st)?;
        match build::build(&dir, &mut st, &profiles, progress) {
            Ok(()) => {
                st.phase = Phase::Up;
                dir.save(&st)?;
                Ok(Lab {
                    run_dir: spec.run_dir.clone(),
                    state: st,
                })
            }
            Err(e) => {
                progress("removing what was built");
                let report = teardown(&st);
                if report.errors.is_empty() {
                    let _ = dir.remove();
                    Err(e)
                } else {
                    Err(Error::Runtime(anyhow::anyhow!(
                        "{e}; cleaning up also failed ({}): run `lbctl lab down --name {}`",
                        report.errors.join("; "),
                        st.name
                    )))
                }
            }
        }
    }

    /// The recorded lab `name` under `run_dir`.
    pub fn load(run_dir: &Path, name: &str) -> Result<Lab> {
        topology::validate_name(name)?;
        match state::read(run_dir, name)? {
            Some(state) => Ok(Lab {
                run_dir: run_dir.to_path_buf(),
                state,
            }),
            None => Err(no_such_lab(name, run_dir)),
        }
    }

    /// Names of the labs recorded under `run_dir`.
    pub fn list(run_dir: &Path) -> Vec<String> {
        state::list(run_dir)
    }

    /// Re-read the record (after another lbctl changed it).
    pub fn refresh(&mut self) -> Result<()> {
        *self = Lab::load(&self.run_dir, &self.state.name)?;
        Ok(())
    }

    /// Wrap in a guard that runs [`Lab::down`] when dropped (tests).
    pub fn guard(self) -> LabGuard {
        LabGuard(Some(self))
    }

    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// The record as last read.
    pub fn state(&self) -> &LabState {
        &self.state
    }

    /// The lab's directory (record, LB file, logs).
    pub fn dir(&self) -> PathBuf {
        state::lab_dir(&self.run_dir, &self.state.name)
    }

    pub fn nodes(&self) -> &[Node] {
        &self.state.nodes
    }

    /// A node by name, or a usage error listing the valid ones.
    pub fn node(&self, node: &str) -> Result<&Node> {
        self.state.node(node).ok_or_else(|| {
            let valid: Vec<&str> = self.state.nodes.iter().map(|n| n.node.as_str()).collect();
            usage!(
                "lab '{}' has no node '{node}'; valid nodes: {}",
                self.state.name,
                valid.join(", ")
            )
        })
    }

    /// The namespace of `node`.
    pub fn ns(&self, node: &str) -> Result<String> {
        Ok(self.node(node)?.ns.clone())
    }

    /// The backends' node names.
    pub fn backends(&self) -> Vec<String> {
        self.state
            .nodes
            .iter()
            .filter(|n| n.role == Role::Backend)
            .map(|n| n.node.clone())
            .collect()
    }

    /// `ARGV` inside `node`'s namespace (`ip netns exec`), stdio left to the caller.
    pub fn command(&self, node: &str, argv: &[&str]) -> Result<Command> {
        if argv.is_empty() {
            return Err(usage!("no command given"));
        }
        netns::command(&self.ns(node)?, argv)
    }

    /// Run `ARGV` inside `node`'s namespace and collect its output.
    pub fn exec(&self, node: &str, argv: &[&str]) -> Result<Output> {
        let out = self
            .command(node, argv)?
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {} in {node}", argv.join(" ")))?;
        Ok(out)
    }

    /// `lbctl --netns <node's namespace> ARGS…` with the lab's run dir.
    pub fn lbctl(&self, node: &str, args: &[&str]) -> Result<Command> {
        Ok(lbctl_cmd(&self.state, &self.ns(node)?, args))
    }

    /// The doctor arguments for a backend (without `--json`): VIP:port, client and balancer.
    pub fn doctor_args(&self, node: &str) -> Result<Vec<String>> {
        let ns = self.ns(node)?;
        let client = self.node("client")?.ipv4.map(|a| a.to_string());
        let lb = self
            .state
            .nodes
            .iter()
            .find(|n| n.role == Role::Balancer)
            .and_then(|n| n.ipv4)
            .map(|a| a.to_string());
        let mut v: Vec<String> = ["--netns", &ns, "doctor", "--vip"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.push(topology::vip_port(IpAddr::V4(self.state.vip4())));
        if let Some(c) = client {
            v.extend(["--client".into(), c]);
        }
        if let Some(b) = lb {
            v.extend(["--balancer".into(), b]);
        }
        Ok(v)
    }

    /// Run `lbctl doctor --json` on a backend: (exit code, report).
    pub fn doctor(&self, node: &str) -> Result<(i32, Value)> {
        let args = self.doctor_args(node)?;
        let mut full = vec!["--json".to_string()];
        full.extend(args);
        let out = Command::new(&self.state.lbctl_bin)
            .args(&full)
            .env("LBCTL_RUN_DIR", &self.state.run_dir)
            .stdin(Stdio::null())
            .output()
            .context("running lbctl doctor")?;
        let code = out.status.code().unwrap_or(-1);
        if code != 0 && code != 1 {
            return Err(Error::Runtime(anyhow::anyhow!(
                "lbctl doctor on {node} failed (exit {code}): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let v = serde_json::from_slice(&out.stdout).context("parsing lbctl doctor --json")?;
        Ok((code, v))
    }

    /// Inject `fault` into backend `node` (see [`Fault`]). A fault can be injected once.
    pub fn inject(&self, node: &str, fault: Fault) -> Result<()> {
        let n = self.node(node)?.clone();
        if self.state.crossover.is_some() {
            return Err(usage!(
                "the DSR faults are for the single-balancer lab; in a crossover lab break a \
                 server: `lbctl lab break sN down` or `lbctl lab break sN service-dead`"
            ));
        }
        if self.state.routing.is_some() {
            return Err(usage!(
                "the DSR faults are for the single-balancer lab; in a routed lab break a \
                 balancer: `lbctl lab break lbN down` or `lbctl lab break lbN drain`"
            ));
        }
        if n.role != Role::Backend {
            return Err(usage!(
                "faults go into backends; valid nodes: {}",
                self.backends().join(", ")
            ));
        }
        let dir = StateDir::open(&self.run_dir, &self.state.name)?
            .ok_or_else(|| no_such_lab(&self.state.name, &self.run_dir))?;
        let mut st = dir.load()?;
        if st.phase != Phase::Up {
            return Err(usage!(
                "lab '{}' is not up (its creation did not finish): run `lbctl lab down` first",
                st.name
            ));
        }
        if st
            .faults
            .iter()
            .any(|f| f.node == node && f.fault == fault.name())
        {
            return Err(usage!("{node} already has the fault {}", fault.name()));
        }
        faults::inject(&dir, &mut st, &n, fault)?;
        st.faults.push(state::FaultRecord {
            node: node.to_string(),
            fault: fault.name().to_string(),
        });
        dir.save(&st)
    }

    /// Inject `fault` into balancer `node` of a routed lab and wait until the router stops
    /// routing through it; returns the router's next hops afterwards.
    pub fn inject_balancer(&self, node: &str, fault: BalancerFault) -> Result<Vec<VipRoute>> {
        let n = self.node(node)?.clone();
        if self.state.routing.is_none() || n.role != Role::Balancer {
            return Err(usage!(
                "balancer faults go into the balancers of a routed lab (`lbctl lab up \
                 --balancers K --routing bgp|vrrp`: nodes lb1…lbK)"
            ));
        }
        let (dir, mut st) = self.record_fault(node, fault.name())?;
        let hops = routing::inject(&dir, &mut st, &n, fault)?;
        dir.save(&st)?;
        Ok(hops)
    }

    /// Load the lab's record, refuse a lab that is not up or a node already broken, and record
    /// `fault` on `node` before anything is done: whatever happens next, `status` and `down`
    /// know about it.
    fn record_fault(&self, node: &str, fault: &str) -> Result<(StateDir, LabState)> {
        let dir = StateDir::open(&self.run_dir, &self.state.name)?
            .ok_or_else(|| no_such_lab(&self.state.name, &self.run_dir))?;
        let mut st = dir.load()?;
        if st.phase != Phase::Up {
            return Err(usage!(
                "lab '{}' is not up (its creation did not finish): run `lbctl lab down` first",
                st.name
            ));
        }
        if st.faults.iter().any(|f| f.node == node) {
            return Err(usage!("{node} is already broken"));
        }
        st.faults.push(state::FaultRecord {
            node: node.to_string(),
            fault: fault.to_string(),
        });
        dir.save(&st)?;
        Ok((dir, st))
    }

    /// Inject `fault` into server `node` of a crossover lab and wait until every address it
    /// had answers from the next live tier.
    pub fn inject_server(&self, node: &str, fault: ServerFault) -> Result<()> {
        let n = self.node(node)?.clone();
        let Some(x) = self.state.crossover else {
            return Err(usage!(
                "`{}` breaks a server of a crossover lab (`lbctl lab up --topology crossover \
                 --servers N`: nodes s1…sN); lab '{}' is not one",
                fault.name(),
                self.state.name
            ));
        };
        if n.role != Role::Backend {
            return Err(usage!(
                "crossover faults go into the servers s1…s{}",
                x.servers
            ));
        }
        let (dir, mut st) = self.record_fault(node, fault.name())?;
        crossover::inject(&dir, &mut st, &n, fault)?;
        dir.save(&st)
    }

    /// `n` requests from the client to the public range of a crossover lab: which server
    /// answered.
    pub fn traffic_crossover(&self, n: usize) -> Result<CrossoverTraffic> {
        crossover::traffic(&self.state, n)
    }

    /// The router's next hops for each VIP (routed labs; empty otherwise).
    pub fn next_hops(&self) -> Result<Vec<VipRoute>> {
        if self.state.routing.is_none() {
            return Ok(Vec::new());
        }
        routing::next_hops(&self.state)
    }

    /// `n` requests from the client to a routed lab's VIP; which balancer carried them (the
    /// router's counters) and which backend answered.
    pub fn traffic_routed(&self, n: usize) -> Result<RoutedTraffic> {
        if self.state.routing.is_none() {
            return Err(usage!("lab '{}' is not a routed lab", self.state.name));
        }
        routing::traffic(&self.state, n)
    }

    /// `n` long downloads from the client through the VIP, all open at once, until each has
    /// finished: how many arrived byte-intact (run a `lab break` meanwhile).
    pub fn traffic_long(&self, n: usize) -> Result<LongTraffic> {
        routing::long(&self.state, n)
    }

    /// Send `n` HTTP requests from the client to `vip`:80, each on a new connection, and report
    /// where they went and what the switch and the balancer saw.
    pub fn traffic(&self, n: usize, vip: IpAddr) -> Result<Traffic> {
        traffic::traffic(&self.state, n, vip, false)
    }

    /// [`Lab::traffic`], then uploads that all go to one backend (`lab traffic --skewed`): new
    /// flows stay spread, the bytes the balancer forwards do not.
    pub fn traffic_skewed(&self, n: usize, vip: IpAddr) -> Result<Traffic> {
        traffic::traffic(&self.state, n, vip, true)
    }

    /// Observed state: nodes, namespaces, processes.
    pub fn status(&self) -> LabStatus {
        status::status(&self.run_dir, &self.state)
    }

    /// Does an `lb run` daemon run in the balancer's namespace now (the lab's own, or one a
    /// user started there)?
    pub fn balancer_running(&self) -> bool {
        self.ns("lb")
            .ok()
            .and_then(|ns| crate::lb::status::read_all(&self.run_dir.join("netns").join(ns)).ok())
            .is_some_and(|ds| ds.iter().any(|d| d.alive()))
    }

    /// `lbctl lb status --json` in the balancer namespace.
    pub fn balancer_status(&self) -> Result<Value> {
        let out = lbctl_cmd(&self.state, &self.ns("lb")?, &["--json", "lb", "status"])
            .output()
            .context("running lbctl lb status")?;
        if !out.status.success() {
            return Err(Error::Runtime(anyhow::anyhow!(
                "lbctl lb status: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(serde_json::from_slice(&out.stdout).context("parsing lbctl lb status --json")?)
    }

    /// Start `lbctl --netns <node's namespace> ARGS…` detached, recorded like the lab's own
    /// processes (PID and start time written before it runs), so `down` stops it. Output goes to
    /// `<lab dir>/<node>-<role>.log`. For a test that runs its own `lbctl lb run -c FILE` in a
    /// lab made with `start_balancer: false`.
    pub fn spawn_lbctl(
        &mut self,
        node: &str,
        role: &str,
        args: &[&str],
    ) -> Result<state::ProcRecord> {
        let ns = self.ns(node)?;
        if role.is_empty()
            || !role
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(usage!(
                "invalid process role '{role}': use a-z, 0-9 and '-'"
            ));
        }
        let dir = StateDir::open(&self.run_dir, &self.state.name)?
            .ok_or_else(|| no_such_lab(&self.state.name, &self.run_dir))?;
        let mut st = dir.load()?;
        let mut argv = vec![
            st.lbctl_bin.to_string_lossy().into_owned(),
            "--netns".to_string(),
            ns,
        ];
        argv.extend(args.iter().map(|a| a.to_string()));
        let rec = build::spawn_recorded(&dir, &mut st, node, role, argv)?;
        self.state = st;
        Ok(rec)
    }

    /// Remove the lab: stop its processes (recorded PID + start time), delete its namespaces,
    /// remove its record. Errors are collected; the record stays until everything is gone.
    pub fn down(&self) -> Result<DownReport> {
        down(&self.run_dir, &self.state.name)?
            .ok_or_else(|| no_such_lab(&self.state.name, &self.run_dir))
    }
}

/// Tears the lab down when dropped (for tests: a panicking test still cleans up).
#[derive(Debug)]
pub struct LabGuard(Option<Lab>);

impl LabGuard {
    /// Tear down now and report.
    pub fn down(mut self) -> Result<DownReport> {
        let lab = self.0.take().expect("guard holds a lab until dropped");
        lab.down()
    }
}

impl std::ops::Deref for LabGuard {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        self.0.as_ref().expect("guard holds a lab until dropped")
    }
}

impl std::ops::DerefMut for LabGuard {
    fn deref_mut(&mut self) -> &mut Lab {
        self.0.as_mut().expect("guard holds a lab until dropped")
    }
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        if let Some(lab) = self.0.take() {
            match down(&lab.run_dir, lab.name()) {
                Ok(Some(r)) if !r.errors.is_empty() => {
                    eprintln!(
                        "lbctl lab: tearing down {}: {}",
                        lab.name(),
                        r.errors.join("; ")
                    )
                }
                Err(e) => eprintln!("lbctl lab: tearing down {}: {e}", lab.name()),
                _ => {}
            }
        }
    }
}

fn no_such_lab(name: &str, run_dir: &Path) -> Error {
    let known = state::list(run_dir);
    if known.is_empty() {
        usage!("no lab named '{name}' (there are no labs; start one with `lbctl lab up`)")
    } else {
        usage!("no lab named '{name}'; labs: {}", known.join(", "))
    }
}

/// Remove lab `name` under `run_dir` (`None` when there is no such lab). See [`Lab::down`].
pub fn down(run_dir: &Path, name: &str) -> Result<Option<DownReport>> {
    topology::validate_name(name)?;
    let Some(dir) = StateDir::open(run_dir, name)? else {
        return Ok(None);
    };
    let st = dir.load()?;
    let report = teardown(&st);
    if report.errors.is_empty() {
        dir.remove()?;
        Ok(Some(report))
    } else {
        Err(Error::Runtime(anyhow::anyhow!(
            "lab '{name}' was not removed completely: {} (its record is kept; run `lbctl lab \
             down` again)",
            report.errors.join("; ")
        )))
    }
}

/// Remove every lab recorded under `run_dir`.
pub fn down_all(run_dir: &Path) -> Result<Vec<DownReport>> {
    let mut done = Vec::new();
    let mut errors = Vec::new();
    for name in state::list(run_dir) {
        match down(run_dir, &name) {
            Ok(Some(r)) => done.push(r),
            Ok(None) => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(done)
    } else {
        Err(Error::Runtime(anyhow::anyhow!("{}", errors.join("; "))))
    }
}

/// The lab node that owns `mac` (`be1`; its namespace names the lab), from the records under `run_dir`: doctor
/// names the host behind an unexpected ARP answer with it. Labs that use the namespace `netns`
/// (the one doctor runs in) come first.
pub fn node_with_mac(run_dir: &Path, mac: &str, netns: Option<&str>) -> Option<Node> {
    let mut found: Option<Node> = None;
    for lab in state::list(run_dir) {
        let Ok(Some(st)) = state::read(run_dir, &lab) else {
            continue;
        };
        let Some(n) = st.nodes.iter().find(|n| {
            n.mac
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case(mac))
        }) else {
            continue;
        };
        let hit = n.clone();
        if netns.is_some_and(|ns| st.nodes.iter().any(|n| n.ns == ns)) {
            return Some(hit);
        }
        found.get_or_insert(hit);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_validation_touches_nothing() {
        let mut s = LabSpec::new("ok", "/bin/true");
        assert!(s.validate().is_ok());
        s.backends = 0;
        assert!(s.validate().is_err());
        s.backends = MAX_BACKENDS + 1;
        assert!(s.validate().is_err());
        s.backends = 2;
        s.name = "Bad Name".into();
        assert!(s.validate().is_err());
        s.name = "ok".into();
        s.profile = Some("/nonexistent/profile.toml".into());
        let e = s.validate().unwrap_err();
        assert!(e.to_string().contains("cannot read profile"), "{e}");
    }
}
