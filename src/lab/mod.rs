//! `lbctl lab`: a whole DSR set-up in network namespaces — a switch, a client, a balancer and K
//! backends — built with lbctl's own code, for newcomers, demos and tests.
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

pub mod faults;
pub mod http;
pub mod process;
pub mod signals;
pub mod state;
pub mod topology;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use serde_json::Value;

pub use faults::Fault;
use state::{LabState, NsRecord, Phase, ProcRecord, StateDir};
pub use topology::{Engine, Node, Role, DEFAULT_NAME, MAX_BACKENDS, PORT, VIP4, VIP6};

use crate::error::{Error, Result};
use crate::sys::netns;
use crate::usage;

/// How long `up` waits for the backends' servers to answer.
const SERVER_WAIT: Duration = Duration::from_secs(5);
/// How long `up` waits for the balancer to report every backend up.
const BALANCER_WAIT: Duration = Duration::from_secs(10);
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
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
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
        let (nodes, profiles) = spec.validate()?;
        preflight(&spec.lbctl_bin)?;
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
        };
        let dir = StateDir::create(&spec.run_dir, &st)?;
        match build(&dir, &mut st, &profiles, progress) {
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
        let lb = self.node("lb")?.ipv4.map(|a| a.to_string());
        let mut v: Vec<String> = ["--netns", &ns, "doctor", "--vip"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.push(topology::vip_port(IpAddr::V4(VIP4)));
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
        inject(&dir, &mut st, &n, fault)?;
        st.faults.push(state::FaultRecord {
            node: node.to_string(),
            fault: fault.name().to_string(),
        });
        dir.save(&st)
    }

    /// Send `n` HTTP requests from the client to `vip`:80, each on a new connection, and report
    /// where they went and what the switch and the balancer saw.
    pub fn traffic(&self, n: usize, vip: IpAddr) -> Result<Traffic> {
        traffic(&self.state, n, vip)
    }

    /// Observed state: nodes, namespaces, processes.
    pub fn status(&self) -> LabStatus {
        status(&self.run_dir, &self.state)
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

// =============================================================================================
// building
// =============================================================================================

fn lbctl_cmd(st: &LabState, ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new(&st.lbctl_bin);
    c.arg("--netns")
        .arg(ns)
        .args(args)
        .env("LBCTL_RUN_DIR", &st.run_dir)
        .stdin(Stdio::null());
    c
}

/// Run lbctl inside `ns`; a failure carries lbctl's message.
fn run_lbctl(st: &LabState, ns: &str, args: &[&str]) -> Result<String> {
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
fn nft_in(ns: &str, script: &str) -> Result<()> {
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

fn ns_of(st: &LabState, node: &str) -> String {
    st.node(node).map(|n| n.ns.clone()).unwrap_or_default()
}

fn build(
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
        netns::add(&name)?;
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
    for n in st.nodes.clone().iter().filter(|n| n.role != Role::Switch) {
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

    // 4. Backends, configured by lbctl itself.
    for n in st.nodes.clone().iter().filter(|n| n.role == Role::Backend) {
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

    // 6. The balancer.
    if st.balancer {
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
    let vip = VIP4.to_string();
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
fn spawn_recorded(
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

fn log_tail(path: &Path) -> String {
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

// =============================================================================================
// tearing down
// =============================================================================================

/// Stop recorded processes, delete recorded namespaces (newest first), drop their journals.
fn teardown(st: &LabState) -> DownReport {
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

// =============================================================================================
// faults
// =============================================================================================

fn inject(dir: &StateDir, st: &mut LabState, n: &Node, fault: Fault) -> Result<()> {
    let vip = VIP4.to_string();
    let ip = |args: &[&str]| netns::ip_in(&n.ns, args).map(|_| ());
    match fault {
        Fault::ArpFlux => {
            if st.profile.is_some() {
                // The profile's own ARP section, switched off, applied by lbctl.
                let path = dir.path().join(format!("{}.toml", n.node));
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let mut doc: toml::Table =
                    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
                let mut arp = toml::Table::new();
                arp.insert("mode".into(), toml::Value::String("none".into()));
                doc.insert("arp".into(), toml::Value::Table(arp));
                let broken = dir.path().join(format!("{}-arp-flux.toml", n.node));
                std::fs::write(&broken, toml::to_string(&doc).context("writing TOML")?)
                    .with_context(|| format!("writing {}", broken.display()))?;
                run_lbctl(st, &n.ns, &["apply", "-f", &broken.to_string_lossy()])?;
            } else {
                run_lbctl(st, &n.ns, &["arp", "restore", &vip])?;
            }
            // Forget the client's answer for the VIP: the next request asks again, and now
            // the backend answers too.
            let _ = netns::ip_in(&ns_of(st, "client"), &["neigh", "flush", "to", &vip]);
        }
        Fault::RpFilter => {
            let idx = n.backend_index().unwrap_or(1);
            ip(&[
                "link", "add", "rpx0", "type", "veth", "peer", "name", "rpx1",
            ])?;
            ip(&[
                "addr",
                "add",
                &format!("192.0.2.{}/24", 10 + idx),
                "dev",
                "rpx0",
            ])?;
            ip(&["link", "set", "rpx0", "up"])?;
            ip(&["link", "set", "rpx1", "up"])?;
            ip(&[
                "rule",
                "add",
                "from",
                &vip,
                "lookup",
                faults::RP_TABLE,
                "priority",
                "50",
            ])?;
            ip(&[
                "route",
                "add",
                "192.0.2.0/24",
                "dev",
                "rpx0",
                "table",
                faults::RP_TABLE,
            ])?;
            ip(&[
                "route",
                "add",
                "default",
                "via",
                "192.0.2.254",
                "dev",
                "rpx0",
                "table",
                faults::RP_TABLE,
            ])?;
            netns::run_in(&n.ns, || {
                for key in ["all", topology::HOST_IF] {
                    let f = format!("/proc/sys/net/ipv4/conf/{key}/rp_filter");
                    std::fs::write(&f, "1").with_context(|| format!("writing {f}"))?;
                }
                Ok::<_, anyhow::Error>(())
            })??;
        }
        Fault::NoVip => {
            if st.profile.is_some() {
                // The profile owns the address: remove it behind lbctl's back, as a stray
                // `ip addr flush dev lo` would (doctor also reports the drift).
                ip(&["addr", "del", &format!("{vip}/32"), "dev", "lo"])?;
                if st.ipv6 {
                    let _ = ip(&["addr", "del", &format!("{VIP6}/128"), "dev", "lo"]);
                }
            } else {
                run_lbctl(st, &n.ns, &["vip", "del", &vip])?;
                if st.ipv6 {
                    run_lbctl(st, &n.ns, &["vip", "del", &VIP6.to_string()])?;
                }
            }
        }
        Fault::NoListener => {
            let mut found = false;
            for p in st
                .processes
                .iter_mut()
                .filter(|p| p.node == n.node && p.role == "http" && !p.stopped)
            {
                process::terminate(p.pid, p.start_time, STOP_GRACE)?;
                p.stopped = true;
                found = true;
            }
            if !found {
                return Err(usage!("{} runs no HTTP server to stop", n.node));
            }
        }
        Fault::PolicyTableWithoutLinkRoute => {
            ip(&[
                "rule",
                "add",
                "from",
                &vip,
                "lookup",
                faults::POLICY_TABLE,
                "priority",
                "60",
            ])?;
            ip(&[
                "route",
                "add",
                "default",
                "via",
                &topology::GATEWAY4.to_string(),
                "dev",
                topology::HOST_IF,
                "table",
                faults::POLICY_TABLE,
            ])?;
        }
    }
    Ok(())
}

// =============================================================================================
// traffic and counters
// =============================================================================================

/// Interface byte and packet counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IfCounters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
}

impl IfCounters {
    fn delta(self, before: IfCounters) -> IfCounters {
        IfCounters {
            rx_bytes: self.rx_bytes.saturating_sub(before.rx_bytes),
            rx_packets: self.rx_packets.saturating_sub(before.rx_packets),
            tx_bytes: self.tx_bytes.saturating_sub(before.tx_bytes),
            tx_packets: self.tx_packets.saturating_sub(before.tx_packets),
        }
    }
}

/// One of the switch's counters (see [`topology::switch_nft`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Count {
    pub packets: u64,
    pub bytes: u64,
}

/// What `traffic` saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Traffic {
    pub target: String,
    pub requests: usize,
    /// Answers per backend name.
    pub per_backend: BTreeMap<String, usize>,
    /// Failed requests, with the reason.
    pub failures: Vec<String>,
    /// The switch's counters over the run: `replies`, `replies_via_lb`, `requests_to_lb`,
    /// `requests_from_lb`.
    pub switch: BTreeMap<String, Count>,
    /// The balancer's eth0 over the run.
    pub balancer_eth0: IfCounters,
    /// The client's eth0 over the run.
    pub client_eth0: IfCounters,
    /// The MAC the client has for the VIP afterwards, and the node it belongs to.
    pub vip_mac: Option<String>,
    pub vip_mac_node: Option<String>,
}

impl Traffic {
    /// Replies reached the client and none of them passed the balancer's port.
    pub fn replies_bypassed_balancer(&self) -> bool {
        self.switch.get("replies").is_some_and(|c| c.packets > 0)
            && self
                .switch
                .get("replies_via_lb")
                .is_some_and(|c| c.packets == 0)
    }
}

/// `/proc/net/dev` of the calling thread's namespace, one interface.
fn read_if_counters(iface: &str) -> Option<IfCounters> {
    let text = std::fs::read_to_string("/proc/thread-self/net/dev").ok()?;
    for line in text.lines().skip(2) {
        let (name, rest) = line.split_once(':')?;
        if name.trim() != iface {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() < 10 {
            return None;
        }
        return Some(IfCounters {
            rx_bytes: f[0],
            rx_packets: f[1],
            tx_bytes: f[8],
            tx_packets: f[9],
        });
    }
    None
}

fn if_counters(ns: &str) -> Result<IfCounters> {
    netns::run_in(ns, || read_if_counters(topology::HOST_IF))?
        .ok_or_else(|| Error::Runtime(anyhow::anyhow!("no {} counters in {ns}", topology::HOST_IF)))
}

/// The switch's named counters.
pub fn switch_counters(sw_ns: &str) -> Result<BTreeMap<String, Count>> {
    let nft = netns::find_tool("nft")
        .ok_or_else(|| Error::Runtime(anyhow::anyhow!("`nft` is not installed")))?;
    let out = netns::command(
        sw_ns,
        &[
            &nft.to_string_lossy(),
            "-j",
            "list",
            "counters",
            "table",
            "bridge",
            topology::SWITCH_TABLE,
        ],
    )?
    .stdin(Stdio::null())
    .output()
    .context("running nft")?;
    if !out.status.success() {
        return Err(Error::Runtime(anyhow::anyhow!(
            "reading the switch counters: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let v: Value = serde_json::from_slice(&out.stdout).context("parsing nft -j output")?;
    let mut m = BTreeMap::new();
    for item in v["nftables"].as_array().into_iter().flatten() {
        let c = &item["counter"];
        if let Some(name) = c["name"].as_str() {
            m.insert(
                name.to_string(),
                Count {
                    packets: c["packets"].as_u64().unwrap_or(0),
                    bytes: c["bytes"].as_u64().unwrap_or(0),
                },
            );
        }
    }
    Ok(m)
}

fn fmt_mac(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn traffic(st: &LabState, n: usize, vip: IpAddr) -> Result<Traffic> {
    let client = ns_of(st, "client");
    let lb = ns_of(st, "lb");
    let sw = ns_of(st, "sw");
    let target = SocketAddr::new(vip, PORT);
    let sw0 = switch_counters(&sw)?;
    let lb0 = if_counters(&lb)?;
    let cl0 = if_counters(&client)?;
    let results = netns::run_in(&client, move || {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            if signals::interrupted() {
                break;
            }
            v.push(http::get(target, "/", Duration::from_secs(2)));
        }
        v
    })?;
    signals::check()?;
    let sw1 = switch_counters(&sw)?;
    let lb1 = if_counters(&lb)?;
    let cl1 = if_counters(&client)?;
    let mut t = Traffic {
        target: target.to_string(),
        requests: n,
        balancer_eth0: lb1.delta(lb0),
        client_eth0: cl1.delta(cl0),
        ..Default::default()
    };
    for (name, after) in sw1 {
        let before = sw0.get(&name).copied().unwrap_or_default();
        t.switch.insert(
            name,
            Count {
                packets: after.packets.saturating_sub(before.packets),
                bytes: after.bytes.saturating_sub(before.bytes),
            },
        );
    }
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(r) if r.status == 200 => {
                *t.per_backend.entry(r.body.trim().to_string()).or_default() += 1
            }
            Ok(r) => t
                .failures
                .push(format!("request {}: HTTP {}", i + 1, r.status)),
            Err(e) => t.failures.push(format!("request {}: {e}", i + 1)),
        }
    }
    let mac = netns::run_in(&client, move || -> Result<Option<String>> {
        let sys = crate::sys::Sys::new()?;
        Ok(sys
            .neighbours()?
            .into_iter()
            .find(|x| x.ip == vip)
            .and_then(|x| x.mac.map(|m| fmt_mac(&m))))
    })??;
    t.vip_mac_node = mac.as_ref().and_then(|m| {
        st.nodes
            .iter()
            .find(|n| n.mac.as_deref() == Some(m.as_str()))
            .map(|n| n.node.clone())
    });
    t.vip_mac = mac;
    Ok(t)
}

// =============================================================================================
// status
// =============================================================================================

/// One node as observed.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub node: String,
    pub role: Role,
    pub namespace: String,
    pub exists: bool,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    pub mac: Option<String>,
}

/// One recorded process as observed.
#[derive(Debug, Clone, Serialize)]
pub struct ProcStatus {
    pub node: String,
    pub role: String,
    pub pid: u32,
    pub alive: bool,
    /// Stopped on purpose (`lab break … no-listener`).
    pub stopped: bool,
    pub log: PathBuf,
}

/// A lab as observed.
#[derive(Debug, Clone, Serialize)]
pub struct LabStatus {
    pub name: String,
    pub phase: Phase,
    pub dir: PathBuf,
    pub backends: u8,
    pub ipv6: bool,
    pub engine: Engine,
    pub balancer: bool,
    pub vip: Vec<String>,
    pub nodes: Vec<NodeStatus>,
    pub processes: Vec<ProcStatus>,
    pub faults: Vec<state::FaultRecord>,
    /// Every namespace exists and every process not stopped on purpose is alive.
    pub healthy: bool,
}

fn status(run_dir: &Path, st: &LabState) -> LabStatus {
    let nodes: Vec<NodeStatus> = st
        .nodes
        .iter()
        .map(|n| {
            let rec = st.namespaces.iter().find(|r| r.name == n.ns);
            let now = netns::inode(&n.ns);
            NodeStatus {
                node: n.node.clone(),
                role: n.role,
                namespace: n.ns.clone(),
                exists: now.is_some() && rec.is_some_and(|r| r.inode.is_none() || r.inode == now),
                ipv4: n.ipv4.map(|a| a.to_string()),
                ipv6: n.ipv6.map(|a| a.to_string()),
                mac: n.mac.clone(),
            }
        })
        .collect();
    let processes: Vec<ProcStatus> = st
        .processes
        .iter()
        .map(|p| ProcStatus {
            node: p.node.clone(),
            role: p.role.clone(),
            pid: p.pid,
            alive: process::is_alive(p.pid, p.start_time),
            stopped: p.stopped,
            log: p.log.clone(),
        })
        .collect();
    let mut vip = vec![topology::vip_port(IpAddr::V4(VIP4))];
    if st.ipv6 {
        vip.push(topology::vip_port(IpAddr::V6(VIP6)));
    }
    let healthy = st.phase == Phase::Up
        && nodes.iter().all(|n| n.exists)
        && processes.iter().all(|p| p.alive || p.stopped);
    LabStatus {
        name: st.name.clone(),
        phase: st.phase,
        dir: state::lab_dir(run_dir, &st.name),
        backends: st.backends,
        ipv6: st.ipv6,
        engine: st.engine,
        balancer: st.balancer,
        vip,
        nodes,
        processes,
        faults: st.faults.clone(),
        healthy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    #[test]
    fn proc_net_dev_parsing() {
        // Reads this thread's own namespace: lo always exists.
        let c = read_if_counters("lo");
        assert!(c.is_some());
        assert!(read_if_counters("no-such-if0").is_none());
    }

    #[test]
    fn traffic_verdict() {
        let mut t = Traffic::default();
        assert!(!t.replies_bypassed_balancer());
        t.switch.insert(
            "replies".into(),
            Count {
                packets: 90,
                bytes: 9000,
            },
        );
        t.switch.insert("replies_via_lb".into(), Count::default());
        assert!(t.replies_bypassed_balancer());
        t.switch.insert(
            "replies_via_lb".into(),
            Count {
                packets: 1,
                bytes: 60,
            },
        );
        assert!(!t.replies_bypassed_balancer());
    }
}
