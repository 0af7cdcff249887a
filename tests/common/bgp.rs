//! The BGP lab shared by tests/lb_bgp.rs and tests/lb_drain.rs: a router namespace running
//! BIRD 2 (AS 65000) on a bridge with `balancers` balancer namespaces (lb1 198.18.0.2, …) and
//! `backends` backend namespaces (be1 198.18.0.11, …) serving the VIP over busybox httpd, and a
//! client namespace behind the router. `lb run` is started per balancer with [`Lab::start`].
//! [`lab_dual`] adds IPv6 everywhere (balancer network 2001:db8::/64 with the router at ::1,
//! lb1 ::2, …, be1 ::11, …; client network 2001:db8:1::/64) and an IPv6 session from the router
//! to each balancer that accepts host routes from 2001:db8:2::/48 ([`VIP6`] is served by the
//! backends).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{httpd, plug, Bg, Lbctl, Netns, TempDir, LBCTL};

pub const VIP: &str = "198.18.2.100";
/// The IPv6 VIP of [`lab_dual`] (outside the router–balancer network, like [`VIP`]).
pub const VIP6: &str = "2001:db8:2::100";

/// BIRD in the router namespace, stopped (SIGTERM, then reaped) on drop.
pub struct RouterBird {
    child: std::process::Child,
}

impl Drop for RouterBird {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

pub struct Lab {
    // Drop order: processes before their namespaces.
    pub daemons: Vec<Option<Bg>>,
    pub servers: Vec<Option<Bg>>,
    pub bird: Option<RouterBird>,
    pub www: Vec<TempDir>,
    pub dir: TempDir,
    pub lb_run: Vec<Lbctl>,
    pub be_run: Vec<Lbctl>,
    pub client: Netns,
    pub router: Netns,
    pub be: Vec<Netns>,
    pub lb: Vec<Netns>,
    pub sw: Netns,
}

fn router_conf(dir: &std::path::Path, balancers: usize, ipv6: bool) -> String {
    let mut s = format!(
        "router id 198.18.0.1;\nlog \"{}/router.log\" all;\nprotocol device {{ }}\nprotocol bfd {{ }}\n\
         protocol kernel {{ ipv4 {{ import none; export where source = RTS_BGP; }}; merge paths on; }}\n\
         template bgp balancer {{ local 198.18.0.1 as 65000; bfd {{ interval 100 ms; multiplier 3; }};\n\
           debug {{ states, events }};\n\
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
    if ipv6 {
        s.push_str(
            "protocol kernel { ipv6 { import none; export where source = RTS_BGP; }; merge paths on; }\n\
             template bgp balancer6 { local 2001:db8::1 as 65000; bfd { interval 100 ms; multiplier 3; };\n\
               debug { states, events };\n\
               ipv6 { import where net ~ [ 2001:db8:2::/48{128,128} ]; export none; }; }\n",
        );
        for i in 1..=balancers {
            s.push_str(&format!(
                "protocol bgp lb{i}v6 from balancer6 {{ neighbor 2001:db8::{} as {}; }}\n",
                i + 1,
                65000 + i
            ));
        }
    }
    s
}

pub fn lab(balancers: usize, backends: usize) -> Lab {
    build(balancers, backends, false)
}

/// [`lab`] with IPv6 as well (see the module's documentation).
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn lab_dual(balancers: usize, backends: usize) -> Lab {
    build(balancers, backends, true)
}

fn build(balancers: usize, backends: usize, ipv6: bool) -> Lab {
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
    super::veth(&client, "eth1", &router, "cl");
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
    if ipv6 {
        router.write_sysctls(&[
            ("net/ipv6/conf/all/forwarding".into(), "1".into()),
            ("net/ipv6/fib_multipath_hash_policy".into(), "3".into()),
            ("net/ipv6/fib_multipath_hash_fields".into(), "0x0037".into()),
        ]);
        router.add_addr("eth0", "2001:db8::1/64");
        router.add_addr("cl", "2001:db8:1::1/64");
        client.add_addr("eth1", "2001:db8:1::10/64");
        client.ip(&["-6", "route", "add", "default", "via", "2001:db8:1::1"]);
    }
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
        if ipv6 {
            ns.add_addr("eth0", &format!("2001:db8::{}/64", i + 1));
            ns.ip(&["-6", "route", "add", "default", "via", "2001:db8::1"]);
        }
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
        if ipv6 {
            ns.add_addr("eth0", &format!("2001:db8::1{i}/64"));
            ns.ip(&["-6", "route", "add", "default", "via", "2001:db8::1"]);
            run.ok(&["vip", "add", VIP6]);
        }
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
    std::fs::write(&conf, router_conf(dir.path(), balancers, ipv6)).unwrap();
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
        servers,
        bird: Some(RouterBird { child }),
        www,
        dir,
        lb_run,
        be_run,
        client,
        router,
        be,
        lb,
        sw,
    }
}

/// 1 MiB of a pattern that shows a byte out of place.
pub fn big() -> Vec<u8> {
    (0..1u32 << 20).map(|i| (i % 251) as u8).collect()
}

impl Lab {
    pub fn cfg_path(&self, i: usize) -> std::path::PathBuf {
        self.dir.path().join(format!("lb{i}.toml"))
    }

    pub fn log_path(&self, i: usize) -> std::path::PathBuf {
        self.dir.path().join(format!("lb{i}.log"))
    }

    /// Start `lb run` on balancer `i` (1-based) with `cfg`.
    pub fn start(&mut self, i: usize, cfg: &str) {
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

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.log_path(i)).unwrap_or_default()
    }

    pub fn status(&self, i: usize) -> Option<Value> {
        let out = self.lb_run[i - 1].run(&["--json", "lb", "status"]);
        serde_json::from_str::<Value>(&out.stdout)
            .ok()
            .map(|v| v["daemons"][0].clone())
    }

    /// The router's next hops for the VIP (empty: no route).
    pub fn next_hops(&self) -> Vec<String> {
        self.next_hops_of(VIP)
    }

    /// The router's next hops for `vip`, IPv4 or IPv6, sorted (empty: no route).
    pub fn next_hops_of(&self, vip: &str) -> Vec<String> {
        let family = if vip.contains(':') { "-6" } else { "-4" };
        let v = self.router.ip_json(&[family, "route", "show", vip]);
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
    pub fn wait_hops(&self, want: &[&str], what: &str) {
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

/// GET `path` from the VIP from the client's address 198.18.1.10, local port `port` (0: any),
/// in the calling thread's namespace: the body, or why not (connect within 2 s, the response
/// within `read_timeout`).
pub fn fetch_vip(path: &str, port: u16, read_timeout: Duration) -> Result<Vec<u8>, String> {
    use std::io::{Read as _, Write as _};
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
    let mut s: std::net::TcpStream = sock.into();
    s.set_read_timeout(Some(read_timeout)).unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(|e| e.to_string())?;
    let at = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no header end")?;
    Ok(resp[at + 4..].to_vec())
}
