//! Shared harness for lbctl's integration tests (tier 1 in STYLE.md §8).
//!
//! Why it looks like this:
//! - Every test builds its own named network namespaces (`lbt-<pid>-<n>-<tag>`), and a `Drop`
//!   guard deletes them, so a panicking test still cleans up. Creating, deleting and entering a
//!   namespace goes through `lbctl::sys::netns`, the implementation `lbctl lab` uses too, so
//!   the tests and the lab build namespaces the same way (same `lo`, same sysctl baseline). The root namespace is
//!   never touched: veth pairs are created inside one test namespace with the peer moved straight
//!   into another, and every sysctl write happens through `ip netns exec` inside a test namespace.
//! - Results are checked with independent tools (`ip -j`, `nft -j`, /proc/sys), never with
//!   lbctl's own view of the world.
//! - [`snapshot`] captures everything lbctl may touch (addresses, rules, routes of every table,
//!   the whole nft ruleset, the relevant sysctls) with volatile fields removed, so a test can
//!   assert "identical before and after" and get a readable diff when it is not.
//! - Cargo runs the tests of one binary in parallel threads: every name carries the pid and a
//!   counter, every test has its own `LBCTL_RUN_DIR`, and no test relies on shared mutable state.
//! - Without root the namespace tests print `SKIPPED (...)` and return, unless
//!   `LBCTL_REQUIRE_NETNS_TESTS=1` (set by `scripts/test.sh` and CI) turns the skip into a failure.
//! - Every child process runs under a timeout and is killed (by its own handle) when it overruns,
//!   so a hung command fails one test instead of hanging the run.

#![allow(dead_code, unused_macros)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod bgp;
pub mod labrun;

/// The binary under test.
pub const LBCTL: &str = env!("CARGO_BIN_EXE_lbctl");

/// Upper bound for any single child process.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// Set by CI (and `scripts/test.sh`): a namespace test that cannot run must fail, not skip.
pub const REQUIRE_ENV: &str = "LBCTL_REQUIRE_NETNS_TESTS";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn next_id() -> usize {
    COUNTER.fetch_add(1, Ordering::SeqCst)
}

// ---------------------------------------------------------------------------------------------
// Skipping
// ---------------------------------------------------------------------------------------------

/// The current function's path, e.g. `netns_vip::vip_add_readd_del`.
macro_rules! test_name {
    () => {{
        fn f() {}
        fn name_of<T>(_: T) -> &'static str {
            std::any::type_name::<T>()
        }
        let name = name_of(f);
        name.strip_suffix("::f").unwrap_or(name)
    }};
}

/// Return early (skip) unless the test can create network namespaces: root, plus `ip` and `nft`.
/// With `LBCTL_REQUIRE_NETNS_TESTS=1` a skip becomes a panic, so CI never passes silently.
macro_rules! require_root {
    () => {
        if !$crate::common::can_run_netns_tests(test_name!()) {
            return;
        }
    };
}

/// Return early (skip) unless `tool` is installed; same CI rule as `require_root!`.
macro_rules! require_tool {
    ($tool:expr) => {
        if !$crate::common::have_tool_or_skip(test_name!(), $tool) {
            return;
        }
    };
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Print a skip note straight to the real stderr (the test harness only captures `eprintln!`),
/// or panic when skipping is forbidden.
pub fn skip_or_panic(test: &str, why: &str) -> bool {
    if std::env::var(REQUIRE_ENV).as_deref() == Ok("1") {
        panic!("{test}: {why}, and {REQUIRE_ENV}=1 forbids skipping this test");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED ({why}): {test}");
    false
}

pub fn can_run_netns_tests(test: &str) -> bool {
    if !is_root() {
        return skip_or_panic(test, "needs root for network namespaces");
    }
    for tool in ["ip", "nft"] {
        if find_tool(tool).is_none() {
            return skip_or_panic(test, &format!("needs `{tool}`"));
        }
    }
    true
}

pub fn have_tool_or_skip(test: &str, tool: &str) -> bool {
    find_tool(tool).is_some() || skip_or_panic(test, &format!("needs `{tool}`"))
}

/// Resolve a tool through PATH plus the sbin directories (which an unprivileged PATH may lack).
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    lbctl::sys::netns::find_tool(tool)
}

// ---------------------------------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------------------------------

/// What a finished child process left behind.
#[derive(Debug, Clone)]
pub struct Out {
    pub cmd: String,
    /// Exit status; 128+N when killed by signal N; -1 after a timeout.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ {}", self.cmd)?;
        writeln!(f, "exit code: {}", self.code)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr ---\n{}", self.stderr.trim_end())
    }
}

impl Out {
    pub fn success(&self) -> bool {
        self.code == 0
    }

    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code\n{self}");
        self
    }

    #[track_caller]
    pub fn expect_ok(&self) -> &Self {
        self.expect_code(0)
    }

    /// Parse stdout as JSON, panicking with the whole output when it is not.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{self}"))
    }

    /// The lbctl error contract: one line on stderr, starting `lbctl: `.
    #[track_caller]
    pub fn expect_one_line_error(&self) -> &Self {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert!(
            lines.len() == 1 && lines[0].starts_with("lbctl: "),
            "expected exactly one stderr line starting `lbctl: `\n{self}"
        );
        self
    }
}

/// Run `argv` with extra environment and optional stdin, under [`CMD_TIMEOUT`].
pub fn run_cmd(argv: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Out {
    run_cmd_timeout(argv, env, stdin, CMD_TIMEOUT)
}

pub fn run_cmd_timeout(
    argv: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
    timeout: Duration,
) -> Out {
    let shown = argv.join(" ");
    let program = find_tool(argv[0]).unwrap_or_else(|| PathBuf::from(argv[0]));
    let mut cmd = Command::new(&program);
    cmd.args(&argv[1..])
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{shown}`: {e}"));
    let feeder = stdin.map(|text| {
        let mut pipe = child.stdin.take().expect("stdin was piped");
        let text = text.to_owned();
        thread::spawn(move || {
            let _ = pipe.write_all(text.as_bytes());
        })
    });
    let mut out_pipe = child.stdout.take().expect("stdout was piped");
    let mut err_pipe = child.stderr.take().expect("stderr was piped");
    let out_reader = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out_pipe.read_to_end(&mut s);
        s
    });
    let err_reader = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err_pipe.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                // Only ever our own child, by its handle.
                let _ = child.kill();
                timed_out = true;
                break child.wait().expect("wait after kill");
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("waiting for `{shown}`: {e}"),
        }
    };
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let stdout = String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned();
    let mut stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    let code = if timed_out {
        stderr.push_str(&format!("\n[harness] killed after {timeout:?}"));
        -1
    } else {
        status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
    };
    Out {
        cmd: shown,
        code,
        stdout,
        stderr,
    }
}

/// Run and require exit 0.
#[track_caller]
pub fn run_ok(argv: &[&str]) -> Out {
    let out = run_cmd(argv, &[], None);
    out.expect_ok();
    out
}

// ---------------------------------------------------------------------------------------------
// Temporary directories
// ---------------------------------------------------------------------------------------------

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("lbt-{tag}-{}-{}", std::process::id(), next_id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------------------------
// Network namespaces
// ---------------------------------------------------------------------------------------------

/// A uniquely named network namespace with `lo` up, deleted on drop (also during a panic) —
/// or, from [`Netns::attach`], a view of a namespace someone else owns (an `lbctl lab` node).
#[derive(Debug)]
pub struct Netns {
    name: String,
    owned: bool,
}

impl Netns {
    /// Create `lbt-<pid>-<n>-<tag>` with `lbctl::sys::netns::add`: `lo` up, the IPv4
    /// `all`/`default`/`lo` values of rp_filter, arp_ignore and arp_announce at 0 whatever the
    /// root namespace passes down, and IPv6 DAD off so link-local addresses never sit in
    /// `tentative` while a test snapshots (`lbctl::sys::netns::BASELINE_SYSCTLS`).
    pub fn new(tag: &str) -> Netns {
        let tag: String = tag
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(12)
            .collect();
        let name = format!("lbt-{}-{}-{tag}", std::process::id(), next_id());
        lbctl::sys::netns::add(&name).unwrap_or_else(|e| panic!("creating netns {name}: {e}"));
        // From here on the guard owns the namespace.
        Netns { name, owned: true }
    }

    /// The same helpers for an existing namespace this value does not own (never deleted by
    /// it), e.g. a node of a lab built with `lbctl::lab`.
    #[track_caller]
    pub fn attach(name: &str) -> Netns {
        assert!(
            lbctl::sys::netns::exists(name),
            "no network namespace named {name}"
        );
        Netns {
            name: name.to_string(),
            owned: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec NAME argv…`
    pub fn exec(&self, argv: &[&str]) -> Out {
        self.exec_with(argv, &[], None)
    }

    pub fn exec_with(&self, argv: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Out {
        let full = lbctl::sys::netns::exec_argv(&self.name, argv);
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        run_cmd(&full, env, stdin)
    }

    /// `ip netns exec NAME argv…`, requiring exit 0.
    #[track_caller]
    pub fn exec_ok(&self, argv: &[&str]) -> Out {
        let out = self.exec(argv);
        out.expect_ok();
        out
    }

    /// `ip -n NAME args…`, whatever the exit code.
    pub fn try_ip(&self, args: &[&str]) -> Out {
        let full = lbctl::sys::netns::ip_argv(&self.name, args);
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        run_cmd(&full, &[], None)
    }

    /// `ip -n NAME args…`, requiring exit 0; returns stdout.
    #[track_caller]
    pub fn ip(&self, args: &[&str]) -> String {
        let out = self.try_ip(args);
        out.expect_ok();
        out.stdout
    }

    /// `ip -n NAME -j args…` parsed (empty output becomes an empty array).
    #[track_caller]
    pub fn ip_json(&self, args: &[&str]) -> Value {
        let mut full = vec!["-j"];
        full.extend_from_slice(args);
        let out = self.try_ip(&full);
        out.expect_ok();
        if out.stdout.trim().is_empty() {
            Value::Array(Vec::new())
        } else {
            out.json()
        }
    }

    /// Load an nft script (`nft -f -`) inside the namespace.
    #[track_caller]
    pub fn nft(&self, script: &str) {
        self.exec_with(&["nft", "-f", "-"], &[], Some(script))
            .expect_ok();
    }

    /// `nft -j args…` (e.g. `["list", "ruleset"]`) inside the namespace, parsed.
    #[track_caller]
    pub fn nft_json(&self, args: &[&str]) -> Value {
        let mut full = vec!["nft", "-j"];
        full.extend_from_slice(args);
        let out = self.exec(&full);
        out.expect_ok();
        out.json()
    }

    /// `nft args…` text output, whatever the exit code.
    pub fn nft_text(&self, args: &[&str]) -> Out {
        let mut full = vec!["nft"];
        full.extend_from_slice(args);
        self.exec(&full)
    }

    pub fn nft_table_exists(&self, family: &str, table: &str) -> bool {
        self.nft_text(&["list", "table", family, table]).success()
    }

    /// Read `/proc/sys/<path>` inside the namespace (path like `net/ipv4/conf/vt0.5/rp_filter`;
    /// slashes only, so dotted interface names need no translation).
    #[track_caller]
    pub fn sysctl(&self, path: &str) -> String {
        let file = format!("/proc/sys/{path}");
        self.exec_ok(&["cat", &file]).stdout.trim().to_string()
    }

    /// `net.ipv4.conf.<iface>.<key>` as a number.
    #[track_caller]
    pub fn conf(&self, iface: &str, key: &str) -> i64 {
        let v = self.sysctl(&format!("net/ipv4/conf/{iface}/{key}"));
        v.parse()
            .unwrap_or_else(|_| panic!("{iface}/{key}: not a number: {v:?}"))
    }

    /// Write several `/proc/sys` files with one process.
    #[track_caller]
    pub fn write_sysctls(&self, writes: &[(String, String)]) {
        if writes.is_empty() {
            return;
        }
        let script = r#"while [ $# -gt 0 ]; do printf '%s\n' "$2" > "/proc/sys/$1" || exit 1; shift 2; done"#;
        let mut argv: Vec<&str> = vec!["sh", "-c", script, "sh"];
        for (k, v) in writes {
            argv.push(k);
            argv.push(v);
        }
        self.exec_ok(&argv);
    }

    /// Set `net.ipv4.conf.<iface>.<key>` for several (iface, key, value) triples.
    #[track_caller]
    pub fn set_conf(&self, items: &[(&str, &str, i64)]) {
        let writes: Vec<(String, String)> = items
            .iter()
            .map(|(i, k, v)| (format!("net/ipv4/conf/{i}/{k}"), v.to_string()))
            .collect();
        self.write_sysctls(&writes);
    }

    #[track_caller]
    pub fn set_mac(&self, dev: &str, mac: &str) {
        self.ip(&["link", "set", "dev", dev, "address", mac]);
    }

    #[track_caller]
    pub fn up(&self, dev: &str) {
        self.ip(&["link", "set", "dev", dev, "up"]);
    }

    /// `ip addr add CIDR dev DEV` (IPv6 addresses get `nodad`).
    #[track_caller]
    pub fn add_addr(&self, dev: &str, cidr: &str) {
        if cidr.contains(':') {
            self.ip(&["addr", "add", cidr, "dev", dev, "nodad"]);
        } else {
            self.ip(&["addr", "add", cidr, "dev", dev]);
        }
    }

    /// Addresses on `dev` as `local/prefixlen` strings.
    #[track_caller]
    pub fn addrs(&self, dev: &str) -> Vec<String> {
        let v = self.ip_json(&["addr", "show", "dev", dev]);
        let mut out = Vec::new();
        for link in v.as_array().into_iter().flatten() {
            for a in link["addr_info"].as_array().into_iter().flatten() {
                if let (Some(l), Some(p)) = (a["local"].as_str(), a["prefixlen"].as_u64()) {
                    out.push(format!("{l}/{p}"));
                }
            }
        }
        out
    }

    /// The `addr_info` object for `ip` on `dev`, if present.
    #[track_caller]
    pub fn addr_info(&self, dev: &str, ip: &str) -> Option<Value> {
        let v = self.ip_json(&["addr", "show", "dev", dev]);
        v.as_array()
            .into_iter()
            .flatten()
            .flat_map(|link| link["addr_info"].as_array().cloned().unwrap_or_default())
            .find(|a| a["local"].as_str() == Some(ip))
    }

    /// The MAC of `dev`.
    #[track_caller]
    pub fn mac(&self, dev: &str) -> String {
        let v = self.ip_json(&["link", "show", "dev", dev]);
        v[0]["address"].as_str().unwrap_or_default().to_string()
    }

    /// The neighbour entry for `ip` on `dev`: (lladdr, states), if any.
    #[track_caller]
    pub fn neigh(&self, dev: &str, ip: &str) -> Option<(Option<String>, Vec<String>)> {
        let v = self.ip_json(&["neigh", "show", ip, "dev", dev]);
        v.as_array().and_then(|a| a.first()).map(|n| {
            let mac = n["lladdr"].as_str().map(str::to_string);
            let states = n["state"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect();
            (mac, states)
        })
    }

    /// Wait (at most 5 s) until links and addresses stop moving, so snapshots are comparable:
    /// every link's operstate agrees with its carrier, no address is `tentative`, and two
    /// readings 100 ms apart are equal. Call it before taking the "before" snapshot.
    ///
    /// Why the carrier check: the kernel's linkwatch applies carrier changes to the operstate
    /// (and then adds IPv6 link-local addresses) up to a second later when an event is not
    /// "urgent", which is the case for a veth whose peer happens to have the same ifindex in
    /// its own namespace. /sys/class/net/*/carrier is immediate; the operstate is not.
    pub fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut prev: Option<Value> = None;
        loop {
            let cur = normalize(self.ip_json(&["addr"]));
            let tentative = cur.to_string().contains("\"tentative\"");
            let settled = !tentative && self.links_settled() && prev.as_ref() == Some(&cur);
            if settled || Instant::now() >= deadline {
                return;
            }
            prev = Some(cur);
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// True when each link's operstate matches its carrier (sysfs, read inside the namespace).
    fn links_settled(&self) -> bool {
        let script = r#"for d in /sys/class/net/*; do
  printf '%s %s %s\n' "${d##*/}" "$(cat "$d/carrier" 2>/dev/null || echo -)" "$(cat "$d/operstate")"
done"#;
        let out = self.exec(&["sh", "-c", script]);
        out.success()
            && out.stdout.lines().all(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                match f.as_slice() {
                    [_, "1", oper] => matches!(*oper, "up" | "unknown"),
                    [_, "0", oper] => matches!(*oper, "down" | "lowerlayerdown" | "dormant"),
                    _ => true,
                }
            })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        if let Err(e) = lbctl::sys::netns::del(&self.name) {
            let _ = writeln!(
                std::io::stderr(),
                "warning: could not delete netns {}: {e}",
                self.name
            );
        }
    }
}

/// A veth pair: `a_if` in `a`, `b_if` in `b`. Created inside `a` with the peer moved straight
/// into `b`, so nothing ever appears in the root namespace. Both ends are left down.
#[track_caller]
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    a.ip(&[
        "link",
        "add",
        a_if,
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ]);
}

/// A veth pair with both ends inside `ns` (e.g. a second uplink whose far side is irrelevant).
#[track_caller]
pub fn veth_local(ns: &Netns, a_if: &str, b_if: &str) {
    ns.ip(&["link", "add", a_if, "type", "veth", "peer", "name", b_if]);
}

/// One end of a test link: interface name, MAC and address (with prefix).
#[derive(Debug, Clone, Copy)]
pub struct End<'a> {
    pub ns: &'a Netns,
    pub dev: &'a str,
    pub mac: &'a str,
    pub cidr: &'a str,
}

/// A veth between two namespaces with fixed MACs and addresses, both ends up.
#[track_caller]
pub fn link(a: End<'_>, b: End<'_>) {
    veth(a.ns, a.dev, b.ns, b.dev);
    for end in [a, b] {
        end.ns.set_mac(end.dev, end.mac);
        end.ns.add_addr(end.dev, end.cidr);
        end.ns.up(end.dev);
    }
}

// ---------------------------------------------------------------------------------------------
// The binary under test
// ---------------------------------------------------------------------------------------------

/// Runs `lbctl --netns NAME …` with a private `LBCTL_RUN_DIR` (removed on drop).
#[derive(Debug)]
pub struct Lbctl {
    netns: Option<String>,
    tmp: TempDir,
    run_dir: PathBuf,
}

impl Lbctl {
    /// A runner bound to `ns`. The run dir itself does not exist yet: lbctl must create it, as
    /// it must create /run/lbctl on a fresh host.
    pub fn new(ns: &Netns) -> Lbctl {
        let tmp = TempDir::new("run");
        let run_dir = tmp.path().join("run");
        Lbctl {
            netns: Some(ns.name().to_string()),
            tmp,
            run_dir,
        }
    }

    /// A runner bound to `ns` that shares an existing run dir (e.g. the one of the `lbctl lab`
    /// that configured the namespace, so lbctl finds its own journal there).
    pub fn with_run_dir(ns: &Netns, run_dir: &Path) -> Lbctl {
        Lbctl {
            netns: Some(ns.name().to_string()),
            tmp: TempDir::new("run"),
            run_dir: run_dir.to_path_buf(),
        }
    }

    /// A runner without `--netns` (for commands that touch no namespace: gen, usage errors).
    pub fn plain() -> Lbctl {
        let tmp = TempDir::new("run");
        let run_dir = tmp.path().join("run");
        Lbctl {
            netns: None,
            tmp,
            run_dir,
        }
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The full argv for `args` (binary, `--netns NAME`, args).
    pub fn argv<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut argv = vec![LBCTL];
        if let Some(ns) = &self.netns {
            argv.push("--netns");
            argv.push(ns);
        }
        argv.extend_from_slice(args);
        argv
    }

    /// Run and return (code, stdout, stderr) as an [`Out`].
    pub fn run(&self, args: &[&str]) -> Out {
        let run_dir = self.run_dir.to_string_lossy().into_owned();
        run_cmd(&self.argv(args), &[("LBCTL_RUN_DIR", &run_dir)], None)
    }

    /// Run and require exit 0.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> Out {
        let out = self.run(args);
        out.expect_ok();
        out
    }

    /// [`Lbctl::run`] with the arguments given as one whitespace-separated line.
    pub fn run_line(&self, line: &str) -> Out {
        self.run(&words(line))
    }

    /// [`Lbctl::ok`] with the arguments given as one whitespace-separated line.
    #[track_caller]
    pub fn ok_line(&self, line: &str) -> Out {
        self.ok(&words(line))
    }

    /// Run with `--json`, require exit 0, parse stdout.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        self.ok(&full).json()
    }
}

/// Split a command line on whitespace (test arguments never contain spaces).
pub fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// True when lbctl's human output says the command was a no-op.
pub fn says_unchanged(out: &Out) -> bool {
    out.stdout.to_lowercase().contains("unchanged")
}

/// The `changes` array of a mutating command's `--json` output, as strings.
#[track_caller]
pub fn changes(v: &Value) -> Vec<String> {
    v["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("no `changes` array in {v:#}"))
        .iter()
        .map(|c| {
            c.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| c.to_string())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------------------------

/// Object keys whose values change on their own (timers, counters, nft metadata) or are
/// kernel-assigned identities (nft `handle`s change when lbctl rebuilds its table atomically;
/// STYLE.md §6.2 compares without them too).
const VOLATILE_KEYS: &[&str] = &[
    "handle",
    "valid_life_time",
    "preferred_life_time",
    "expires",
    "used",
    "updated",
    "confirmed",
    "packets",
    "bytes",
    "stats",
    "stats64",
    "metainfo",
];

/// Remove volatile fields (recursively) and nft `metainfo` entries.
pub fn normalize(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| !VOLATILE_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k, normalize(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .filter(|i| !(i.is_object() && i.get("metainfo").is_some()))
                .map(normalize)
                .collect(),
        ),
        other => other,
    }
}

/// Everything lbctl may change in a namespace, normalized for comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub parts: BTreeMap<&'static str, Value>,
}

/// IPv4 per-interface keys captured by [`snapshot`].
const IPV4_CONF_KEYS: &[&str] = &[
    "rp_filter",
    "arp_ignore",
    "arp_announce",
    "arp_filter",
    "arp_accept",
    "proxy_arp",
    "accept_local",
    "src_valid_mark",
    "forwarding",
];

/// IPv6 per-interface keys captured by [`snapshot`].
const IPV6_CONF_KEYS: &[&str] = &["disable_ipv6", "forwarding", "proxy_ndp", "accept_dad"];

impl Snapshot {
    /// The sysctl part as path → value.
    pub fn sysctls(&self) -> BTreeMap<String, String> {
        self.parts["sysctl"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Capture addresses, IPv4/IPv6 rules, IPv4/IPv6 routes of every table, the nft ruleset and the
/// ARP / rp_filter / forwarding sysctls of every interface.
#[track_caller]
pub fn snapshot(ns: &Netns) -> Snapshot {
    let mut parts = BTreeMap::new();
    parts.insert("ip addr", normalize(ns.ip_json(&["addr"])));
    parts.insert("ip -4 rule", normalize(ns.ip_json(&["-4", "rule"])));
    parts.insert("ip -6 rule", normalize(ns.ip_json(&["-6", "rule"])));
    parts.insert(
        "ip -4 route show table all",
        normalize(ns.ip_json(&["-4", "route", "show", "table", "all"])),
    );
    parts.insert(
        "ip -6 route show table all",
        normalize(ns.ip_json(&["-6", "route", "show", "table", "all"])),
    );
    parts.insert(
        "nft list ruleset",
        normalize(ns.nft_json(&["list", "ruleset"])),
    );
    parts.insert("sysctl", sysctl_dump(ns));
    Snapshot { parts }
}

fn sysctl_dump(ns: &Netns) -> Value {
    let mut files: Vec<String> = IPV4_CONF_KEYS
        .iter()
        .map(|k| format!("/proc/sys/net/ipv4/conf/*/{k}"))
        .collect();
    files.extend(
        IPV6_CONF_KEYS
            .iter()
            .map(|k| format!("/proc/sys/net/ipv6/conf/*/{k}")),
    );
    files.push("/proc/sys/net/ipv4/ip_forward".into());
    // Globs expand inside the namespace (sh), where /proc/sys/net belongs to it.
    let script = format!("grep -H '' {} 2>/dev/null; true", files.join(" "));
    let out = ns.exec_ok(&["sh", "-c", &script]);
    let mut map = serde_json::Map::new();
    for line in out.stdout.lines() {
        if let Some((path, value)) = line.split_once(':') {
            let key = path.trim_start_matches("/proc/sys/").to_string();
            map.insert(key, Value::String(value.trim().to_string()));
        }
    }
    Value::Object(map)
}

/// Panic with a readable per-part diff when two snapshots differ.
#[track_caller]
pub fn assert_same(before: &Snapshot, after: &Snapshot, context: &str) {
    if before == after {
        return;
    }
    let mut report = format!("namespace state changed: {context}\n");
    let names: BTreeSet<&str> = before
        .parts
        .keys()
        .chain(after.parts.keys())
        .copied()
        .collect();
    for name in names {
        let b = before.parts.get(name).cloned().unwrap_or(Value::Null);
        let a = after.parts.get(name).cloned().unwrap_or(Value::Null);
        if a != b {
            report.push_str(&format!("=== {name} (- before, + after)\n"));
            report.push_str(&line_diff(&pretty(&b), &pretty(&a)));
        }
    }
    panic!("{report}");
}

/// Sysctl keys whose values differ between two snapshots: key → (before, after).
pub fn sysctl_changes(
    before: &Snapshot,
    after: &Snapshot,
) -> BTreeMap<String, (Option<String>, Option<String>)> {
    let b = before.sysctls();
    let a = after.sysctls();
    b.keys()
        .chain(a.keys())
        .filter(|k| b.get(*k) != a.get(*k))
        .map(|k| (k.clone(), (b.get(k).cloned(), a.get(k).cloned())))
        .collect()
}

/// Snapshots equal except for the named parts.
#[track_caller]
pub fn assert_same_except(before: &Snapshot, after: &Snapshot, except: &[&str], context: &str) {
    let strip = |s: &Snapshot| Snapshot {
        parts: s
            .parts
            .iter()
            .filter(|(k, _)| !except.contains(k))
            .map(|(k, v)| (*k, v.clone()))
            .collect(),
    };
    assert_same(&strip(before), &strip(after), context);
}

pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// A small LCS line diff with two lines of context, enough for failure messages.
pub fn line_diff(before: &str, after: &str) -> String {
    let b: Vec<&str> = before.lines().collect();
    let a: Vec<&str> = after.lines().collect();
    let (n, m) = (b.len(), a.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if b[i] == a[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && b[i] == a[j] {
            ops.push((' ', b[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            ops.push(('+', a[j]));
            j += 1;
        } else {
            ops.push(('-', b[i]));
            i += 1;
        }
    }
    let near_change = |k: usize| {
        let lo = k.saturating_sub(2);
        let hi = (k + 2).min(ops.len() - 1);
        (lo..=hi).any(|x| ops[x].0 != ' ')
    };
    let mut out = String::new();
    let mut skipped = false;
    for (k, (op, line)) in ops.iter().enumerate() {
        if near_change(k) {
            if skipped {
                out.push_str("  ...\n");
                skipped = false;
            }
            out.push_str(&format!("{op} {line}\n"));
        } else {
            skipped = true;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Small shared helpers
// ---------------------------------------------------------------------------------------------

/// `ip -j route get ARGS…` inside `ns` (first result).
#[track_caller]
pub fn route_get(ns: &Netns, args: &[&str]) -> Value {
    let mut full = vec!["route", "get"];
    full.extend_from_slice(args);
    let v = ns.ip_json(&full);
    v.get(0).cloned().unwrap_or(Value::Null)
}

/// Read one counter (e.g. `TcpExt` `IPReversePathFilter`) from /proc/net/netstat in `ns`.
#[track_caller]
pub fn netstat_counter(ns: &Netns, group: &str, name: &str) -> u64 {
    let text = ns.exec_ok(&["cat", "/proc/net/netstat"]).stdout;
    let prefix = format!("{group}:");
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(&prefix)).collect();
    assert!(
        lines.len() >= 2,
        "no {group} lines in /proc/net/netstat:\n{text}"
    );
    let names: Vec<&str> = lines[0].split_whitespace().collect();
    let values: Vec<&str> = lines[1].split_whitespace().collect();
    let idx = names
        .iter()
        .position(|n| *n == name)
        .unwrap_or_else(|| panic!("{group} has no {name}"));
    values[idx].parse().expect("numeric counter")
}

/// A background process, killed by PID on drop.
pub struct Bg(pub std::process::Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Plug `host`'s new `eth0` (MAC `mac`, address `cidr`, up) into `sw`'s bridge `br0` as `port`.
#[track_caller]
pub fn plug(sw: &Netns, host: &Netns, port: &str, mac: &str, cidr: &str) {
    sw.ip(&[
        "link",
        "add",
        port,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        host.name(),
    ]);
    sw.ip(&["link", "set", port, "master", "br0", "up"]);
    host.set_mac("eth0", mac);
    host.add_addr("eth0", cidr);
    host.up("eth0");
}

/// A lab (`lbctl::lab`) with its own run dir, for the lab tests. Field order = drop order: the
/// lab is torn down (which needs its state in the run dir) before the run dir is removed.
pub struct TestLab {
    pub lab: lbctl::lab::LabGuard,
    pub _run: TempDir,
}

/// A fresh lab named after `tag`, the test process and a counter (unique within the run).
pub fn test_lab(tag: &str) -> TestLab {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let run = TempDir::new(&format!("{tag}lab"));
    let name = format!(
        "{tag}{}-{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::SeqCst)
    );
    let spec = lbctl::lab::LabSpec {
        run_dir: run.path().join("run"),
        ..lbctl::lab::LabSpec::new(&name, LBCTL)
    };
    let lab = lbctl::lab::Lab::up(&spec)
        .unwrap_or_else(|e| panic!("lab up: {e}"))
        .guard();
    TestLab { lab, _run: run }
}

/// Write `text` to `dir/name` and return the path.
pub fn write(dir: &TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A path as a command-line argument.
pub fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// busybox httpd serving `dir` on port 80 inside `ns`, until dropped.
pub fn httpd(ns: &Netns, dir: &TempDir) -> Bg {
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns.name(),
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
        ])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn busybox httpd");
    Bg(child)
}

/// Pinned flows of the `lb run` named "web" for 198.18.0.100:80 (nft listing, independent of
/// lbctl's own reading), as (client port, backend MAC).
pub fn pinned_flows(lb: &Netns) -> Vec<(u64, String)> {
    let flows = lb.nft_json(&[
        "list",
        "map",
        "netdev",
        "lbctl_lb_web",
        "f_198_18_0_100_tcp_80",
    ]);
    let mut out = Vec::new();
    for o in flows["nftables"].as_array().into_iter().flatten() {
        for e in o["map"]["elem"].as_array().into_iter().flatten() {
            let k = &e[0];
            let key = k.get("elem").and_then(|x| x.get("val")).unwrap_or(k);
            if let (Some(p), Some(m)) = (key["concat"][0].as_u64(), e[1].as_str()) {
                out.push((p, m.to_string()));
            }
        }
    }
    out
}
