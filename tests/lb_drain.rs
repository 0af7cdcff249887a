//! `lbctl lb drain --balancer` with `[bgp]` (issue 16 item 2): a real BIRD 2 router peers with
//! the BIRD `lb run` starts; a slow download (the backend paced by tbf) runs through the
//! balancer while it drains. The order is checked, not the times: the router loses the route
//! while the data path still forwards, the download completes byte-intact, then the data path
//! is gone and `lb run` has exited; with a 1 s timeout the data path goes with flows left, and
//! the answer says how many. The topology helpers are copied from tests/lb_bgp.rs.
//!
//! ```text
//! client 198.18.1.10 ── router 198.18.1.1 | 198.18.0.1 (AS 65000, BIRD) ── br0 ──┬─ lb1 198.18.0.2 (AS 65001)
//!                                                                               └─ be1 198.18.0.11 (tbf 2mbit)
//! VIP 198.18.2.100:80 (reached only through the BGP route)
//! ```

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{plug, Bg, Lbctl, Netns, TempDir};
use serde_json::Value;

const VIP: &str = "198.18.2.100";
const LBCTL: &str = env!("CARGO_BIN_EXE_lbctl");

fn httpd(ns: &Netns, dir: &TempDir) -> Bg {
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

/// BIRD in the router namespace, stopped (SIGTERM, then reaped) on drop.
struct RouterBird {
    child: std::process::Child,
}

impl Drop for RouterBird {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

struct Lab {
    // Drop order: processes before their namespaces.
    daemons: Vec<Option<Bg>>,
    _servers: Vec<Option<Bg>>,
    _bird: Option<RouterBird>,
    _www: Vec<TempDir>,
    dir: TempDir,
    lb_run: Vec<Lbctl>,
    _be_run: Vec<Lbctl>,
    client: Netns,
    router: Netns,
    be: Vec<Netns>,
    lb: Vec<Netns>,
    _sw: Netns,
}

fn router_conf(dir: &std::path::Path, balancers: usize) -> String {
    let mut s = format!(
        "router id 198.18.0.1;\nlog \"{}/router.log\" all;\nprotocol device {{ }}\nprotocol bfd {{ }}\n\
         protocol kernel {{ ipv4 {{ import none; export where source = RTS_BGP; }}; merge paths on; }}\n\
         template bgp balancer {{ local 198.18.0.1 as 65000; bfd {{ interval 100 ms; multiplier 3; }};\n\
           ipv4 {{ import where net ~ [ 198.18.2.0/24{{32,32}} ]; export none; }}; }}\n",
        dir.display()
    );
    for i in 1..=balancers {
        s.push_str(&format!(
            "protocol bgp lb{i} from balancer {{ neighbor 198.18.0.{} as {}; }}\n",
            i + 1,
            65000 + i
        ));
    }
    s
}

fn lab(balancers: usize, backends: usize) -> Lab {
    let sw = Netns::new("sw");
    sw.ip(&["link", "add", "br0", "type", "bridge"]);
    sw.up("br0");
    let router = Netns::new("router");
    let client = Netns::new("client");
    plug(
        &sw,
        &router,
        "sw-router",
        "02:00:00:00:00:01",
        "198.18.0.1/24",
    );
    common::veth(&client, "eth1", &router, "cl");
    client.add_addr("eth1", "198.18.1.10/24");
    client.up("eth1");
    client.ip(&["route", "add", "default", "via", "198.18.1.1"]);
    router.add_addr("cl", "198.18.1.1/24");
    router.up("cl");
    router.write_sysctls(&[
        ("net/ipv4/ip_forward".into(), "1".into()),
        ("net/ipv4/fib_multipath_hash_policy".into(), "3".into()),
        ("net/ipv4/fib_multipath_hash_fields".into(), "0x0037".into()),
    ]);
    let mut lb = Vec::new();
    let mut lb_run = Vec::new();
    for i in 1..=balancers {
        let ns = Netns::new(&format!("lb{i}"));
        plug(
            &sw,
            &ns,
            &format!("sw-lb{i}"),
            &format!("02:00:00:00:00:0{}", i + 1),
            &format!("198.18.0.{}/24", i + 1),
        );
        ns.ip(&["route", "add", "default", "via", "198.18.0.1"]);
        lb_run.push(Lbctl::new(&ns));
        lb.push(ns);
    }
    let mut be = Vec::new();
    let mut be_run = Vec::new();
    let mut servers = Vec::new();
    let mut www = Vec::new();
    for i in 1..=backends {
        let ns = Netns::new(&format!("be{i}"));
        let rip = format!("198.18.0.1{i}");
        plug(
            &sw,
            &ns,
            &format!("sw-be{i}"),
            &format!("02:00:00:00:00:1{i}"),
            &format!("{rip}/24"),
        );
        ns.ip(&["route", "add", "default", "via", "198.18.0.1"]);
        let run = Lbctl::new(&ns);
        run.ok(&["arp", "suppress", VIP, "--real-ip", &rip]);
        run.ok(&["vip", "add", VIP]);
        let dir = TempDir::new(&format!("www{i}"));
        std::fs::write(dir.path().join("index.html"), format!("be{i}\n")).unwrap();
        std::fs::write(dir.path().join("big"), big()).unwrap();
        servers.push(Some(httpd(&ns, &dir)));
        www.push(dir);
        be.push(ns);
        be_run.push(run);
    }
    let dir = TempDir::new("bgp");
    let conf = dir.path().join("router.conf");
    std::fs::write(&conf, router_conf(dir.path(), balancers)).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", router.name(), "bird", "-f", "-c"])
        .arg(&conf)
        .arg("-s")
        .arg(dir.path().join("router.ctl"))
        .arg("-P")
        .arg(dir.path().join("router.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the router's bird");
    Lab {
        daemons: (0..balancers).map(|_| None).collect(),
        _servers: servers,
        _bird: Some(RouterBird { child }),
        _www: www,
        dir,
        lb_run,
        _be_run: be_run,
        client,
        router,
        be,
        lb,
        _sw: sw,
    }
}

/// 1 MiB of a pattern that shows a byte out of place.
fn big() -> Vec<u8> {
    (0..1u32 << 20).map(|i| (i % 251) as u8).collect()
}

fn config(i: usize, backends: usize, quorum: u32, flow_timeout: &str) -> String {
    let mut s = format!(
        "name = \"web\"\n[balancer]\nengine = \"nft\"\ninterface = \"eth0\"\nmaglev_size = 1021\nflow_timeout = \"{flow_timeout}\"\n\
         [bgp]\nasn = {}\n[[bgp.neighbor]]\naddress = \"198.18.0.1\"\nasn = 65000\n\
         [[service]]\nvip = \"{VIP}:80\"\nquorum = {quorum}\n\
         [service.check]\ntype = \"http\"\npath = \"/index.html\"\ninterval = \"500ms\"\ntimeout = \"450ms\"\nrise = 1\nfall = 4\n",
        65000 + i
    );
    for b in 1..=backends {
        s.push_str(&format!("[[service.backend]]\nrip = \"198.18.0.1{b}\"\n"));
    }
    s
}

impl Lab {
    fn cfg_path(&self, i: usize) -> std::path::PathBuf {
        self.dir.path().join(format!("lb{i}.toml"))
    }

    fn log_path(&self, i: usize) -> std::path::PathBuf {
        self.dir.path().join(format!("lb{i}.log"))
    }

    /// Start `lb run` on balancer `i` (1-based) with `cfg`.
    fn start(&mut self, i: usize, cfg: &str) {
        std::fs::write(self.cfg_path(i), cfg).unwrap();
        let log = std::fs::File::create(self.log_path(i)).unwrap();
        let child = Command::new(LBCTL)
            .args(["--netns", self.lb[i - 1].name(), "lb", "run", "-c"])
            .arg(self.cfg_path(i))
            .env("LBCTL_RUN_DIR", self.lb_run[i - 1].run_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn lb run");
        self.daemons[i - 1] = Some(Bg(child));
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.log_path(i)).unwrap_or_default()
    }

    fn status(&self, i: usize) -> Option<Value> {
        let out = self.lb_run[i - 1].run(&["--json", "lb", "status"]);
        serde_json::from_str::<Value>(&out.stdout)
            .ok()
            .map(|v| v["daemons"][0].clone())
    }

    /// The router's next hops for the VIP (empty: no route).
    fn next_hops(&self) -> Vec<String> {
        let v = self.router.ip_json(&["route", "show", VIP]);
        let mut hops = Vec::new();
        for r in v.as_array().into_iter().flatten() {
            if let Some(g) = r["gateway"].as_str() {
                hops.push(g.to_string());
            }
            for n in r["nexthops"].as_array().into_iter().flatten() {
                if let Some(g) = n["gateway"].as_str() {
                    hops.push(g.to_string());
                }
            }
        }
        hops.sort();
        hops
    }

    #[track_caller]
    fn wait_hops(&self, want: &[&str], what: &str) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if self.next_hops() == want {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let router_log =
            std::fs::read_to_string(self.dir.path().join("router.log")).unwrap_or_default();
        let tail: Vec<&str> = router_log.lines().rev().take(30).collect();
        panic!(
            "timed out waiting for {what}: next hops {:?}, want {want:?}\nlb1 status: {:#}\nlb1 log:\n{}\nrouter log (last lines, newest first):\n{}",
            self.next_hops(),
            self.status(1).unwrap_or(Value::Null),
            self.log(1),
            tail.join("\n")
        );
    }
}

/// GET `path` from the VIP, in the client namespace.
fn fetch(client: &str, path: &str, port: u16) -> Result<Vec<u8>, String> {
    let path = path.to_string();
    lbctl::sys::netns::run_in(client, move || -> Result<Vec<u8>, String> {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .map_err(|e| e.to_string())?;
        if port != 0 {
            sock.set_reuse_address(true).map_err(|e| e.to_string())?;
            let local: std::net::SocketAddr = format!("198.18.1.10:{port}").parse().unwrap();
            sock.bind(&local.into()).map_err(|e| e.to_string())?;
        }
        let vip: std::net::SocketAddr = format!("{VIP}:80").parse().unwrap();
        sock.connect_timeout(&vip.into(), Duration::from_secs(2))
            .map_err(|e| e.to_string())?;
        let mut s: TcpStream = sock.into();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).map_err(|e| e.to_string())?;
        let at = resp
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("no header end")?;
        Ok(resp[at + 4..].to_vec())
    })
    .map_err(|e| e.to_string())?
}

/// Two balancers announcing the VIP (the router spreads flows over them by ECMP), one backend
/// whose replies are paced (tbf, 2 Mbit/s: the 1 MiB download lasts about 4 s). Draining lb1
/// moves its flows to lb2, which forwards them to the backend Maglev picks (the same one).
fn drain_lab(flow_timeout: &str) -> Lab {
    let mut lab = lab(2, 1);
    lab.be[0].exec_ok(&[
        "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "2mbit", "burst", "32kb",
        "latency", "50ms",
    ]);
    lab.start(1, &config(1, 1, 1, flow_timeout));
    lab.start(2, &config(2, 1, 1, flow_timeout));
    lab.wait_hops(
        &["198.18.0.2", "198.18.0.3"],
        "the VIP announced by lb1 and lb2",
    );
    let start = Instant::now();
    while fetch(lab.client.name(), "/index.html", 0).is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "{}", lab.log(1));
        std::thread::sleep(Duration::from_millis(200));
    }
    lab
}

fn table_exists(lab: &Lab) -> bool {
    lab.lb[0].nft_table_exists("netdev", "lbctl_lb_web")
}

fn exited(lab: &mut Lab) -> bool {
    let child = &mut lab.daemons[0].as_mut().expect("daemon").0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A client port whose flow the router sends to lb1 (ECMP hash of the L4 fields).
fn port_via_lb1(lab: &Lab) -> u16 {
    for port in 40000..40100u16 {
        let p = port.to_string();
        let out = lab.router.ip(&[
            "route",
            "get",
            VIP,
            "from",
            "198.18.1.10",
            "iif",
            "cl",
            "ipproto",
            "tcp",
            "sport",
            &p,
            "dport",
            "80",
        ]);
        if out.contains("via 198.18.0.2 ") {
            return port;
        }
    }
    panic!("no client port in 40000..40100 hashes to lb1");
}

/// Start a download through lb1 in the background; wait until lb1 forwards it.
fn download(lab: &Lab) -> std::thread::JoinHandle<Result<Vec<u8>, String>> {
    let client = lab.client.name().to_string();
    let port = port_via_lb1(lab);
    let h = std::thread::spawn(move || fetch(&client, "/big", port));
    let start = Instant::now();
    loop {
        let s = lab.status(1).unwrap_or(Value::Null);
        let pinned = s["services"][0]["backends"][0]["counters"]["packets"].as_u64();
        // The download's packets reach the balancer (the health checks do not pass it).
        if pinned.unwrap_or(0) > 3 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{s:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
    h
}

#[test]
fn drain_withdraws_first_waits_for_the_flows_then_removes() {
    if !common::can_run_netns_tests("drain_withdraws_first_waits_for_the_flows_then_removes")
        || !common::have_tool_or_skip(
            "drain_withdraws_first_waits_for_the_flows_then_removes",
            "bird",
        )
    {
        return;
    }
    let mut lab = drain_lab("2s");
    let dl = download(&lab);
    let out = std::thread::scope(|sc| {
        let drain = sc.spawn(|| {
            lab.lb_run[0].run(&["--json", "lb", "drain", "--balancer", "web", "--wait-exit"])
        });
        // Phase 1 before anything else: the router loses lb1's route while lb1's data path
        // and lb run are still there.
        lab.wait_hops(&["198.18.0.3"], "lb1's route withdrawn");
        assert!(
            table_exists(&lab),
            "data path removed before the drain ended"
        );
        let st = lab.lb_run[0].run(&["lb", "status"]);
        assert!(st.stdout.contains("draining (withdrawn at"), "{st}");
        assert!(st.stdout.contains("pinned flows left"), "{st}");
        drain.join().unwrap()
    });
    // Phase 2: the download that was pinned completed byte-intact.
    let body = dl
        .join()
        .unwrap()
        .expect("the download through the draining balancer");
    assert!(body == big(), "download not intact: {} bytes", body.len());
    // Phase 3: then the data path went, and lb run exited.
    out.expect_ok();
    let v = out.json();
    assert_eq!(v["drain"]["ended"], "drained", "{v:#}");
    assert_eq!(v["drain"]["flows_left"], 0, "{v:#}");
    assert_eq!(v["exited"], true, "{v:#}");
    assert!(!table_exists(&lab), "the data path is still there");
    assert!(exited(&mut lab), "lb run still runs: {}", lab.log(1));
    let log = lab.log(1);
    let at = |what: &str| {
        log.find(what)
            .unwrap_or_else(|| panic!("no {what:?} in\n{log}"))
    };
    assert!(
        at("BGP: 1 VIP route(s) withdrawn") < at("no pinned flow left"),
        "{log}"
    );
    assert!(
        at("no pinned flow left") < at("data path and VIPs removed"),
        "{log}"
    );
    // No balancer left to drain: exit 2.
    lab.lb_run[0]
        .run(&["lb", "drain", "--balancer", "web"])
        .expect_code(2);
    lab.lb_run[0]
        .run(&["lb", "drain", "--balancer", "nosuch"])
        .expect_code(2);
}

#[test]
fn drain_timeout_removes_the_data_path_with_flows_left() {
    if !common::can_run_netns_tests("drain_timeout_removes_the_data_path_with_flows_left")
        || !common::have_tool_or_skip(
            "drain_timeout_removes_the_data_path_with_flows_left",
            "bird",
        )
    {
        return;
    }
    // Pins outlive the 1 s timeout: the drain must end by the timeout, not by the count.
    let mut lab = drain_lab("60s");
    let dl = download(&lab);
    let out = lab.lb_run[0].run(&[
        "--json",
        "lb",
        "drain",
        "--balancer",
        "web",
        "--timeout",
        "1",
        "--wait-exit",
    ]);
    out.expect_ok();
    let v = out.json();
    assert_eq!(v["drain"]["ended"], "timeout", "{v:#}");
    assert!(v["drain"]["flows_left"].as_u64().unwrap_or(0) >= 1, "{v:#}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("pinned flow(s) left at removal"),
        "{v:#}"
    );
    assert!(!table_exists(&lab), "the data path is still there");
    assert!(exited(&mut lab), "lb run still runs: {}", lab.log(1));
    assert_eq!(lab.next_hops(), ["198.18.0.3"]);
    // The flow moved to lb2, which forwards it to the same backend: nothing broke.
    let body = dl.join().unwrap().expect("the download moved to lb2");
    assert!(body == big(), "download not intact: {} bytes", body.len());
}
