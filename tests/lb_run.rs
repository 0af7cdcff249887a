//! `lbctl lb run` with the nftables engine, against real traffic in namespaces (issue 6): a
//! client, the balancer running the daemon, and three backends configured by lbctl's
//! real-server commands, each serving a page naming itself. Covers spread, replies bypassing
//! the balancer, failure detection within fall × interval and rejoin after rise, the DSR-aware
//! check catching a backend that lost its VIP, drain keeping an established connection, SIGHUP
//! reload, and SIGTERM with and without --cleanup.

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{httpd, pinned_flows, plug, Bg, Lbctl, Netns, TempDir};
use serde_json::Value;

const VIP: &str = "198.18.0.100";
const LBCTL: &str = env!("CARGO_BIN_EXE_lbctl");

struct Lab {
    // Drop order: daemon and servers before their namespaces.
    daemon: Option<Bg>,
    servers: Vec<Option<Bg>>,
    www: Vec<TempDir>,
    cfg_dir: TempDir,
    lb_run: Lbctl,
    be_run: Vec<Lbctl>,
    client: Netns,
    be: Vec<Netns>,
    lb: Netns,
    _sw: Netns,
}

fn lab(n: usize) -> Lab {
    let sw = Netns::new("sw");
    sw.ip(&["link", "add", "br0", "type", "bridge"]);
    sw.up("br0");
    let client = Netns::new("client");
    let lb = Netns::new("lb");
    plug(
        &sw,
        &client,
        "sw-client",
        "02:00:00:00:00:10",
        "198.18.0.10/24",
    );
    plug(&sw, &lb, "sw-lb", "02:00:00:00:00:02", "198.18.0.2/24");
    let mut be = Vec::new();
    let mut be_run = Vec::new();
    let mut servers = Vec::new();
    let mut www = Vec::new();
    for i in 1..=n {
        let ns = Netns::new(&format!("be{i}"));
        let rip = format!("198.18.0.1{i}");
        plug(
            &sw,
            &ns,
            &format!("sw-be{i}"),
            &format!("02:00:00:00:00:1{i}"),
            &format!("{rip}/24"),
        );
        let run = Lbctl::new(&ns);
        run.ok(&["arp", "suppress", VIP, "--real-ip", &rip]);
        run.ok(&["vip", "add", VIP]);
        let dir = TempDir::new(&format!("www{i}"));
        std::fs::write(dir.path().join("index.html"), format!("be{i}\n")).unwrap();
        servers.push(Some(httpd(&ns, &dir)));
        www.push(dir);
        be.push(ns);
        be_run.push(run);
    }
    Lab {
        daemon: None,
        servers,
        www,
        cfg_dir: TempDir::new("lbcfg"),
        lb_run: Lbctl::new(&lb),
        be_run,
        client,
        be,
        lb,
        _sw: sw,
    }
}

/// The LB file: HTTP check every 300 ms, rise 2, fall 2, DSR probe; `weights` per backend.
fn config(n: usize, weights: &[u32]) -> String {
    config_with(n, weights, "quiesce")
}

fn config_with(n: usize, weights: &[u32], on_failure: &str) -> String {
    let mut s = format!(
        "name = \"web\"\n[balancer]\nengine = \"nft\"\ninterface = \"eth0\"\nmaglev_size = 1021\n\
         [[service]]\nvip = \"198.18.0.100:80\"\non_failure = \"{on_failure}\"\n\
         [service.check]\ntype = \"http\"\nexpect_body = \"be\"\ninterval = \"300ms\"\ntimeout = \"250ms\"\nrise = 2\nfall = 2\ndsr = true\n",
    );
    for i in 1..=n {
        s.push_str(&format!(
            "[[service.backend]]\nrip = \"198.18.0.1{i}\"\nweight = {}\n",
            weights.get(i - 1).copied().unwrap_or(1)
        ));
    }
    s
}

impl Lab {
    fn cfg_path(&self) -> std::path::PathBuf {
        self.cfg_dir.path().join("web.toml")
    }

    fn start(&mut self, extra: &[&str]) {
        if !self.cfg_path().exists() {
            std::fs::write(self.cfg_path(), config(self.be.len(), &[])).unwrap();
        }
        let log = std::fs::File::create(self.cfg_dir.path().join("daemon.log")).unwrap();
        let child = Command::new(LBCTL)
            .args(["--netns", self.lb.name(), "lb", "run", "-c"])
            .arg(self.cfg_path())
            .args(extra)
            .env("LBCTL_RUN_DIR", self.lb_run.run_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn lb run");
        self.daemon = Some(Bg(child));
        self.wait_status("every backend up", |s| {
            s["ready"] == true && backends(s).iter().all(|b| b["state"] == "up")
        });
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.cfg_dir.path().join("daemon.log")).unwrap_or_default()
    }

    fn status(&self) -> Option<Value> {
        let out = self.lb_run.run(&["--json", "lb", "status"]);
        serde_json::from_str::<Value>(&out.stdout)
            .ok()
            .map(|v| v["daemons"][0].clone())
    }

    /// Poll `lb status` until `pred` holds; returns how long it took.
    #[track_caller]
    fn wait_status(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Duration {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Some(s) = self.status() {
                if s["running"] == true && pred(&s) {
                    return start.elapsed();
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out waiting for: {what}\nstatus: {:#}\ndaemon log:\n{}",
            self.status().unwrap_or(Value::Null),
            self.log()
        );
    }

    fn signal(&self, sig: i32) {
        let pid = self.daemon.as_ref().expect("daemon").0.id() as i32;
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }
}

fn backends(s: &Value) -> Vec<Value> {
    s["services"][0]["backends"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Run `f` on a thread inside the namespace (lbctl's own helper, as the lab uses).
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    lbctl::sys::netns::run_in(ns, f).expect("netns thread")
}

fn vip() -> SocketAddr {
    format!("{VIP}:80").parse().unwrap()
}

fn get(s: &mut TcpStream) -> Result<String, String> {
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    resp.split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_string())
        .ok_or_else(|| format!("bad answer: {resp:?}"))
}

/// `n` requests from the client, each on a new connection (new source port): who answered,
/// or the error.
fn requests(lab: &Lab, n: usize) -> Vec<Result<String, String>> {
    in_netns(lab.client.name(), move || {
        (0..n)
            .map(|_| {
                let mut s = TcpStream::connect_timeout(&vip(), Duration::from_secs(2))
                    .map_err(|e| e.to_string())?;
                get(&mut s)
            })
            .collect()
    })
}

fn tally(rs: &[Result<String, String>]) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for r in rs {
        *m.entry(match r {
            Ok(b) => b.clone(),
            Err(e) => {
                eprintln!("request failed: {e}");
                "FAILED".into()
            }
        })
        .or_insert(0) += 1;
    }
    m
}

#[test]
fn spread_failover_rejoin_and_dsr_check() {
    require_root!();
    require_tool!("busybox");
    let mut lab = lab(3);
    // A test-owned counter on the balancer: reply packets (source VIP, to the client) that
    // would reach it if DSR were broken.
    lab.lb.nft(
        "table netdev probe { chain c { type filter hook ingress device \"eth0\" priority -500; \
         ip saddr 198.18.0.100 ip daddr 198.18.0.10 counter; }; }",
    );
    lab.start(&[]);

    // Spread: 60 connections from different source ports reach all three backends.
    let t = tally(&requests(&lab, 60));
    assert_eq!(t.get("FAILED"), None, "{t:?}");
    for b in ["be1", "be2", "be3"] {
        assert!(
            t.get(b).copied().unwrap_or(0) >= 5,
            "uneven or missing {b}: {t:?}"
        );
    }
    let probe = lab
        .lb
        .nft_text(&["list", "table", "netdev", "probe"])
        .stdout;
    assert!(
        probe.contains("counter packets 0 bytes 0"),
        "replies reached the balancer:\n{probe}"
    );
    let list = lab.lb_run.ok(&["lb", "list"]).stdout;
    assert!(
        list.contains("engine nft") && list.contains("TCP  198.18.0.100:80 maglev"),
        "{list}"
    );
    assert!(lab.log().contains("started: engine nft"), "{}", lab.log());
    lab.wait_status("packet counter", |s| {
        s["services"][0]["packets"].as_u64().unwrap_or(0) > 0
    });
    // Only the balancer answers ARP for the VIP.
    let arping = lab
        .client
        .exec(&["arping", "-c", "2", "-w", "3", "-i", "eth0", VIP]);
    assert!(
        arping.stdout.contains("02:00:00:00:00:02"),
        "{}",
        arping.stdout
    );
    for m in [
        "02:00:00:00:00:11",
        "02:00:00:00:00:12",
        "02:00:00:00:00:13",
    ] {
        assert!(
            !arping.stdout.contains(m),
            "a backend answered ARP: {}",
            arping.stdout
        );
    }

    // Stop be2's server: down within fall × interval (+ one interval and the probe timeout
    // of slack), then no request goes to it and none fails.
    lab.servers[1] = None;
    let took = lab.wait_status("be2 down", |s| backends(s)[1]["state"] == "down");
    assert!(
        took < Duration::from_millis(2 * 300 + 300 + 250 + 600),
        "detection took {took:?}"
    );
    let s = lab.status().unwrap();
    assert_eq!(backends(&s)[1]["effective_weight"], 0);
    let t = tally(&requests(&lab, 30));
    assert_eq!(t.get("FAILED"), None, "{t:?}");
    assert_eq!(t.get("be2"), None, "{t:?}");
    assert!(
        lab.log().contains("198.18.0.12: up → down"),
        "{}",
        lab.log()
    );

    // Restart: back after `rise` successes, and serving again.
    lab.servers[1] = Some(httpd(&lab.be[1], &lab.www[1]));
    lab.wait_status("be2 up", |s| backends(s)[1]["state"] == "up");
    let t = tally(&requests(&lab, 60));
    assert!(t.get("be2").copied().unwrap_or(0) > 0, "{t:?}");

    // Remove the VIP from be3: its HTTP check on the real IP still passes, the DSR probe
    // through its MAC does not.
    lab.be_run[2].ok(&["vip", "del", VIP]);
    lab.wait_status("be3 down by the DSR check", |s| {
        backends(s)[2]["state"] == "down"
    });
    let s = lab.status().unwrap();
    let detail = backends(&s)[2]["last_check"]["detail"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(detail.contains("DSR check"), "{detail}");
    let t = tally(&requests(&lab, 30));
    assert_eq!(t.get("FAILED"), None, "{t:?}");
    assert_eq!(t.get("be3"), None, "{t:?}");
    lab.be_run[2].ok(&["vip", "add", VIP]);
    lab.wait_status("be3 up", |s| backends(s)[2]["state"] == "up");

    // SIGTERM without --cleanup: the data path keeps serving.
    lab.signal(libc::SIGTERM);
    let mut d = lab.daemon.take().unwrap();
    let st = d.0.wait().unwrap();
    assert!(st.success(), "{st:?}\n{}", lab.log());
    let t = tally(&requests(&lab, 10));
    assert_eq!(t.get("FAILED"), None, "{t:?}");
    assert!(lab.lb.nft_table_exists("netdev", "lbctl_lb_web"));
    assert_eq!(
        lab.lb_run.run(&["lb", "status"]).code,
        2,
        "a stopped daemon is reported"
    );

    // Restart with --cleanup, then SIGINT: table and VIP gone, status file gone.
    lab.start(&["--cleanup"]);
    lab.signal(libc::SIGINT);
    let mut d = lab.daemon.take().unwrap();
    assert!(d.0.wait().unwrap().success(), "{}", lab.log());
    assert!(!lab.lb.nft_table_exists("netdev", "lbctl_lb_web"));
    assert!(
        !lab.lb.addrs("eth0").iter().any(|a| a.starts_with(VIP)),
        "VIP left on the balancer"
    );
}

#[test]
fn drain_keeps_established_connections_and_reload_touches_only_changes() {
    require_root!();
    require_tool!("busybox");
    let mut lab = lab(3);
    lab.start(&[]);
    // Open connections (not yet used) until one lands on each backend; the flow map says where.
    let client = lab.client.name().to_string();
    let conns: Vec<(TcpStream, u16)> = in_netns(&client, || {
        (0..24)
            .map(|_| {
                let s = TcpStream::connect_timeout(&vip(), Duration::from_secs(2)).unwrap();
                let p = s.local_addr().unwrap().port();
                (s, p)
            })
            .collect()
    });
    let flows = pinned_flows(&lab.lb);
    let pinned = |port: u16| {
        flows
            .iter()
            .find(|(p, _)| *p == u64::from(port))
            .map(|(_, m)| m.clone())
    };
    let on_be1: Vec<usize> = conns
        .iter()
        .enumerate()
        .filter(|(_, (_, p))| pinned(*p).as_deref() == Some("02:00:00:00:00:11"))
        .map(|(i, _)| i)
        .collect();
    assert!(!on_be1.is_empty(), "no connection landed on be1: {flows:?}");

    // Drain be1 (weight 0) by editing the file and sending SIGHUP.
    let before = lab
        .lb
        .nft_text(&[
            "list",
            "chain",
            "netdev",
            "lbctl_lb_web",
            "s_198_18_0_100_tcp_80",
        ])
        .stdout;
    std::fs::write(lab.cfg_path(), config(3, &[0, 1, 1])).unwrap();
    lab.signal(libc::SIGHUP);
    lab.wait_status("be1 drained", |s| {
        let b = &backends(s)[0];
        b["weight"] == 0 && b["effective_weight"] == 0 && b["slots"] == 0
    });
    assert!(lab.log().contains("reloaded"), "{}", lab.log());
    // The service's chain was not rebuilt: only map elements changed.
    let after = lab
        .lb
        .nft_text(&[
            "list",
            "chain",
            "netdev",
            "lbctl_lb_web",
            "s_198_18_0_100_tcp_80",
        ])
        .stdout;
    let strip = |s: &str| {
        s.lines()
            .map(|l| l.split(" counter").next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&before), strip(&after));

    // Established connections on be1 still work, and are answered by be1.
    let mut conns = conns;
    let answers: Vec<Result<String, String>> = in_netns(&client, move || {
        on_be1.iter().map(|&i| get(&mut conns[i].0)).collect()
    });
    for a in &answers {
        assert_eq!(a.as_deref(), Ok("be1"), "{answers:?}");
    }
    // New connections avoid be1.
    let t = tally(&requests(&lab, 40));
    assert_eq!(t.get("FAILED"), None, "{t:?}");
    assert_eq!(t.get("be1"), None, "{t:?}");

    // A broken file on reload is refused and the running configuration kept.
    std::fs::write(
        lab.cfg_path(),
        "name = \"web\"\n[[service]]\nvip = \"nonsense\"\n",
    )
    .unwrap();
    lab.signal(libc::SIGHUP);
    lab.wait_status("reload error reported", |s| s["reload_error"].is_string());
    assert_eq!(lab.lb_run.run(&["lb", "status"]).code, 1);
    let t = tally(&requests(&lab, 10));
    assert_eq!(t.get("FAILED"), None, "{t:?}");

    // Issue 13: a reload that adds a service keeps the unchanged service's packet counter.
    let packets = |s: &Value| s["services"][0]["packets"].as_u64().unwrap_or(0);
    lab.wait_status("packets counted", |s| packets(s) > 0);
    let counted = packets(&lab.status().unwrap());
    let mut two = config(3, &[0, 1, 1]);
    two.push_str(
        "[[service]]\nvip = \"198.18.0.100:8080\"\n[service.check]\ntype = \"tcp\"\n\
         [[service.backend]]\nrip = \"198.18.0.11\"\n",
    );
    std::fs::write(lab.cfg_path(), two).unwrap();
    lab.signal(libc::SIGHUP);
    lab.wait_status("two services", |s| {
        s["services"].as_array().map(Vec::len) == Some(2) && s["reload_error"].is_null()
    });
    let after = packets(&lab.status().unwrap());
    assert!(
        after >= counted,
        "the counter went from {counted} to {after}"
    );
}

#[test]
fn remove_mode_releases_pinned_flows_of_a_failed_backend() {
    require_root!();
    require_tool!("busybox");
    let mut lab = lab(2);
    std::fs::write(lab.cfg_path(), config_with(2, &[], "remove")).unwrap();
    lab.start(&[]);
    let t = tally(&requests(&lab, 30));
    assert!(t.contains_key("be2") && !t.contains_key("FAILED"), "{t:?}");
    assert!(pinned_flows(&lab.lb)
        .iter()
        .any(|(_, m)| m == "02:00:00:00:00:12"));
    lab.servers[1] = None;
    lab.wait_status("be2 removed", |s| {
        backends(s)[1]["state"] == "down" && backends(s)[1]["in_service"] == false
    });
    lab.wait_status("flows released", |_| {
        !pinned_flows(&lab.lb)
            .iter()
            .any(|(_, m)| m == "02:00:00:00:00:12")
    });
    assert!(
        lab.log().contains("released to the other backends"),
        "{}",
        lab.log()
    );
    let t = tally(&requests(&lab, 20));
    assert_eq!(t.get("be1"), Some(&20), "{t:?}");
}

#[test]
fn bad_run_files_are_usage_errors_before_any_change() {
    require_root!();
    let lb = Netns::new("lbbad");
    lb.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
    ]);
    lb.up("eth0");
    let run = Lbctl::new(&lb);
    let dir = TempDir::new("badcfg");
    let cases = [
        ("interval", "[[service]]\nvip = \"198.18.0.100:80\"\n[service.check]\ninterval = \"1s\"\ntimeout = \"2s\"\n[[service.backend]]\nrip = \"198.18.0.11\"\n", "pile up"),
        ("fwmark", "[balancer]\nengine = \"nft\"\ninterface = \"eth0\"\n[[service]]\nfwmark = 7\n[[service.backend]]\nrip = \"198.18.0.11\"\n", "fwmark services need engine"),
        ("iface", "[balancer]\ninterface = \"nope0\"\n[[service]]\nvip = \"198.18.0.100:80\"\n[[service.backend]]\nrip = \"198.18.0.11\"\n", "unknown interface"),
        ("size", "[balancer]\nmaglev_size = 1000\n[[service]]\nvip = \"198.18.0.100:80\"\n[[service.backend]]\nrip = \"198.18.0.11\"\n", "prime"),
        ("empty", "[balancer]\nengine = \"nft\"\ninterface = \"eth0\"\n", "no [[service]]"),
    ];
    for (name, text, want) in cases {
        let p = dir.path().join(format!("{name}.toml"));
        std::fs::write(&p, text).unwrap();
        let out = run.run(&["lb", "run", "-c", p.to_str().unwrap()]);
        assert_eq!(out.code, 2, "{name}: {out:?}");
        assert!(out.stderr.contains(want), "{name}: {}", out.stderr);
    }
    assert!(!lb.nft_table_exists("netdev", "lbctl_lb_empty"));
    assert!(
        !lb.addrs("eth0").iter().any(|a| a.starts_with(VIP)),
        "{:?}",
        lb.addrs("eth0")
    );
}

#[test]
fn maglev_report_shows_balance_and_disruption() {
    let run = Lbctl::plain();
    let v = run.json(&["lb", "maglev", "--backends", "a,b,c,d=2", "--size", "65537"]);
    assert_eq!(v["size"], 65537);
    let rows = v["backends"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    let slots: u64 = rows.iter().map(|r| r["slots"].as_u64().unwrap()).sum();
    assert_eq!(slots, 65537, "every slot filled");
    assert!(v["imbalance"].as_f64().unwrap() < 0.01, "{v:#}");
    // d has twice the weight: about twice the slots of a.
    let ratio = rows[3]["slots"].as_f64().unwrap() / rows[0]["slots"].as_f64().unwrap();
    assert!((1.9..2.1).contains(&ratio), "{ratio}");
    for r in v["remove"].as_array().unwrap() {
        let (moved, own) = (
            r["moved"].as_f64().unwrap(),
            r["own_share"].as_f64().unwrap(),
        );
        assert!(moved >= own && moved < own * 1.2, "{r}");
    }
    let text = run
        .ok(&["lb", "maglev", "--backends", "a,b", "--size", "101"])
        .stdout;
    assert!(
        text.contains("M = 101 slots") && text.contains("removing one backend"),
        "{text}"
    );
    let small = run
        .ok(&["lb", "maglev", "--backends", "a,b", "--size", "7"])
        .stdout;
    assert!(small.contains("below 100 × 2"), "{small}");
    let bad = run.run(&["lb", "maglev", "--backends", "a,b", "--size", "100"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("next prime is 101"), "{}", bad.stderr);
    assert_eq!(run.run(&["lb", "maglev", "--backends", "a,a"]).code, 2);
    assert_eq!(run.run(&["lb", "maglev", "--backends", "a=0"]).code, 2);
}

/// A large report samples its removals and says so; each sampled figure is the exact one.
#[test]
fn maglev_report_samples_large_removals_and_says_so() {
    let run = Lbctl::plain();
    let names: Vec<String> = (0..130).map(|i| format!("b{i}")).collect();
    let list = names.join(",");
    let args = [
        "lb",
        "maglev",
        "--backends",
        list.as_str(),
        "--size",
        "65537",
    ];
    let text = run.ok(&args).stdout;
    assert!(text.contains("sampled: 64 of 130 backends"), "{text}");
    let sampled = run.json(&args);
    assert_eq!(sampled["remove_summary"]["sampled"], true);
    assert_eq!(sampled["remove_summary"]["of"], 130);
    let picked = sampled["remove"].as_array().unwrap();
    assert_eq!(picked.len(), 64);
    let mut all_args = args.to_vec();
    all_args.push("--exact");
    let exact = run.json(&all_args);
    assert_eq!(exact["remove_summary"]["sampled"], false);
    let every = exact["remove"].as_array().unwrap();
    assert_eq!(every.len(), 130);
    for r in picked {
        let same = every.iter().find(|e| e["name"] == r["name"]).unwrap();
        assert_eq!(r, same, "sampled removal differs from the exact one");
    }
    assert!(!run.ok(&all_args).stdout.contains("sampled"));
}

#[test]
fn ipv6_service_spreads_and_the_dsr_check_catches_a_missing_vip() {
    require_root!();
    require_tool!("busybox");
    let mut lab = lab(2);
    let v6 = "2001:db8::100";
    for (ns, i) in [(&lab.client, 10), (&lab.lb, 2)] {
        ns.add_addr("eth0", &format!("2001:db8::{i}/64"));
    }
    for (i, ns) in lab.be.iter().enumerate() {
        ns.add_addr("eth0", &format!("2001:db8::1{}/64", i + 1));
        lab.be_run[i].ok(&["vip", "add", v6]);
    }
    std::fs::write(
        lab.cfg_path(),
        "name = \"web\"\n[balancer]\nengine = \"nft\"\ninterface = \"eth0\"\nmaglev_size = 1021\n\
         [[service]]\nvip = \"[2001:db8::100]:80\"\n[service.check]\ntype = \"http\"\n\
         interval = \"300ms\"\ntimeout = \"250ms\"\nrise = 2\nfall = 2\ndsr = true\n\
         [[service.backend]]\nrip = \"2001:db8::11\"\n[[service.backend]]\nrip = \"2001:db8::12\"\n",
    )
    .unwrap();
    lab.lb.settle();
    lab.start(&[]);
    // The balancer's IPv6 VIP is deprecated: never the source of its own traffic (else the
    // checks' replies would go to the backends' lo).
    let info = lab.lb.addr_info("eth0", v6).expect("VIP on the balancer");
    assert_eq!(info["preferred_life_time"], 0, "{info}");
    let target: SocketAddr = format!("[{v6}]:80").parse().unwrap();
    let rs: Vec<Result<String, String>> = in_netns(lab.client.name(), move || {
        (0..30)
            .map(|_| {
                let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(2))
                    .map_err(|e| e.to_string())?;
                get(&mut s)
            })
            .collect()
    });
    let t = tally(&rs);
    assert!(
        t.contains_key("be1") && t.contains_key("be2") && !t.contains_key("FAILED"),
        "{t:?}"
    );
    lab.be_run[1].ok(&["vip", "del", v6]);
    lab.wait_status("be2 down by the DSR check", |s| {
        backends(s)[1]["state"] == "down"
    });
    let s = lab.status().unwrap();
    assert!(
        backends(&s)[1]["last_check"]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("DSR check"),
        "{s:#}"
    );
}

/// The table's structure (chains, maps, rule count), independent of map contents and counters.
fn table_shape(lb: &Netns) -> Vec<String> {
    let v = lb.nft_json(&["list", "table", "netdev", "lbctl_lb_web"]);
    let mut shape: Vec<String> = v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| {
            let (kind, body) = o.as_object()?.iter().next()?;
            let name = body["name"].as_str().unwrap_or("");
            match kind.as_str() {
                "table" | "chain" | "map" | "set" => Some(format!("{kind} {name}")),
                "rule" => Some(format!("rule in {}", body["chain"].as_str().unwrap_or(""))),
                _ => None,
            }
        })
        .collect();
    shape.sort();
    shape
}

/// Issue 11: one journal with owners. The balancer's table and VIP are listed by `status`
/// under `lb:web` next to a backend profile and one-shot commands; a SIGKILLed `lb run`
/// restarted with the same file takes back exactly its objects; `down --all` refuses while the
/// daemon runs, and once it is stopped removes everything lbctl owns — the namespace is then
/// byte-identical to before, foreign objects included.
#[test]
fn status_lists_the_balancer_restart_adopts_and_down_all_restores_the_namespace() {
    require_root!();
    let mut lab = lab(2);
    // Foreign objects that must survive.
    lab.lb
        .nft("add table inet foreign\nadd chain inet foreign c\n");
    lab.lb.ip(&["addr", "add", "192.0.2.9/32", "dev", "lo"]);
    lab.lb
        .ip(&["rule", "add", "from", "192.0.2.9", "lookup", "100"]);
    lab.lb.ip(&[
        "route",
        "add",
        "192.0.2.0/24",
        "dev",
        "eth0",
        "table",
        "100",
    ]);
    lab.lb.settle();
    let before = common::snapshot(&lab.lb);

    // A backend profile and a one-shot VIP in the balancer's namespace, then the balancer.
    let profile = lab.cfg_dir.path().join("side.toml");
    std::fs::write(
        &profile,
        "name = \"side\"\n[[vip]]\naddress = \"198.18.0.200\"\nports = [80]\n\
         [arp]\nmode = \"nft\"\n[[arp.interface]]\nname = \"eth0\"\nreal_ip = \"198.18.0.2\"\n",
    )
    .unwrap();
    let p = profile.to_str().unwrap();
    lab.lb_run.ok(&["apply", "-f", p]);
    lab.lb_run.ok(&["vip", "add", "198.18.0.201"]);
    lab.start(&[]);

    let out = lab.lb_run.run(&["--json", "status"]);
    out.expect_ok();
    let v = out.json();
    assert_eq!(
        v["owners"],
        serde_json::json!(["cli", "lb:web", "profile:side"]),
        "{v:#}"
    );
    let web = &v["by_owner"]["lb:web"];
    assert_eq!(
        web["nft_tables"],
        serde_json::json!([{"kind": "nft_table", "name": "netdev lbctl_lb_web", "state": "present"}]),
        "{v:#}"
    );
    assert_eq!(
        web["addresses"],
        serde_json::json!(["198.18.0.100/32 dev eth0"])
    );
    assert!(web["lb_run_pid"].as_u64().is_some(), "{v:#}");
    assert_eq!(
        v["by_owner"]["profile:side"]["addresses"],
        serde_json::json!(["198.18.0.200/32 dev lo"])
    );
    assert_eq!(
        v["by_owner"]["cli"]["addresses"],
        serde_json::json!(["198.18.0.201/32 dev lo"])
    );
    assert_eq!(v["in_sync"], true);

    // Issue 13: one owner per VIP:port. A second balancer on the same service is refused
    // before it changes anything.
    let web2 = lab.cfg_dir.path().join("web2.toml");
    std::fs::write(
        &web2,
        config(2, &[]).replace("name = \"web\"", "name = \"web2\""),
    )
    .unwrap();
    let out = lab.lb_run.run(&["lb", "run", "-c", web2.to_str().unwrap()]);
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("198.18.0.100:80 is already balanced here by lb:web"),
        "{}",
        out.stderr
    );
    assert!(!lab.lb.nft_table_exists("netdev", "lbctl_lb_web2"));

    // status -f shows only that profile's objects.
    let only = lab.lb_run.run(&["--json", "status", "-f", p]).json();
    assert_eq!(
        only["owners"],
        serde_json::json!(["profile:side"]),
        "{only:#}"
    );
    assert_eq!(
        only["managed"]["addresses"],
        serde_json::json!(["198.18.0.200/32 dev lo"]),
        "{only:#}"
    );
    let text = lab.lb_run.run(&["status", "-f", p]).stdout;
    assert!(
        !text.contains("lb:web") && !text.contains("198.18.0.201"),
        "{text}"
    );

    // SIGKILL, restart with the same file: the same table (no duplicate, no orphan), the VIP
    // once, the journal unchanged, traffic through the VIP.
    let shape = table_shape(&lab.lb);
    let state_file = lab
        .lb_run
        .run_dir()
        .join("netns")
        .join(lab.lb.name())
        .join("state.json");
    let journal = || {
        let path = &state_file;
        let s: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        (s["lb"].clone(), s["intents"].clone(), s["owned"].clone())
    };
    let recorded = journal();
    lab.signal(libc::SIGKILL);
    drop(lab.daemon.take());
    lab.start(&[]);
    assert_eq!(
        table_shape(&lab.lb),
        shape,
        "the restarted daemon rebuilt its table"
    );
    let tables = lab.lb.nft_text(&["list", "tables"]).stdout;
    assert_eq!(tables.matches("lbctl_lb_web").count(), 1, "{tables}");
    let vips: Vec<String> = lab
        .lb
        .addrs("eth0")
        .into_iter()
        .filter(|a| a.starts_with("198.18.0.100/"))
        .collect();
    assert_eq!(vips.len(), 1, "{vips:?}");
    assert_eq!(journal(), recorded, "the journal after the restart");
    let t = tally(&requests(&lab, 20));
    assert!(!t.contains_key("FAILED"), "{t:?}");

    // down --all refuses while the daemon runs, and changes nothing.
    let out = lab.lb_run.run(&["down", "--all"]);
    out.expect_code(2);
    assert!(out.stderr.contains("lb run` web"), "{}", out.stderr);
    assert!(lab.lb.nft_table_exists("netdev", "lbctl_lb_web"));

    // Stopped (data path left in place, as without --cleanup), then down --all.
    lab.signal(libc::SIGTERM);
    let _ = lab.daemon.take().map(|mut b| b.0.wait());
    let st = lab.lb_run.run(&["--json", "status"]).json();
    assert!(st["by_owner"]["lb:web"]["lb_run_pid"].is_null(), "{st:#}");

    // A failure after the table was deleted puts the table back as it was (pinned flows and
    // slots included): one transaction for balancer and backend objects.
    let full = lab
        .lb
        .nft_text(&["-s", "list", "table", "netdev", "lbctl_lb_web"])
        .stdout;
    let run_dir = lab.lb_run.run_dir().to_string_lossy().into_owned();
    let out = common::run_cmd(
        &lab.lb_run.argv(&["down", "--all"]),
        &[
            ("LBCTL_RUN_DIR", &run_dir),
            ("LBCTL_FAIL_ON", "ip addr del 198.18.0.100"),
        ],
        None,
    );
    out.expect_code(2);
    assert!(
        out.stderr.contains("rolled back 1 applied change(s)"),
        "{}",
        out.stderr
    );
    let restored = lab
        .lb
        .nft_text(&["-s", "list", "table", "netdev", "lbctl_lb_web"])
        .stdout;
    let no_expiry = |t: &str| {
        t.split_whitespace()
            .filter(|w| !w.ends_with('s') || !w.starts_with(|c: char| c.is_ascii_digit()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(no_expiry(&restored), no_expiry(&full));
    lab.lb_run.ok(&["status"]);
    let out = lab.lb_run.ok(&["down", "--all"]);
    assert!(
        out.stdout.contains("nft delete table netdev lbctl_lb_web"),
        "{}",
        out.stdout
    );
    lab.lb.settle();
    assert_eq!(common::snapshot(&lab.lb), before);
    let v = lab.lb_run.run(&["--json", "status"]).json();
    assert_eq!(v["owners"], serde_json::json!([]), "{v:#}");
}

/// Issue 13: `nft flush ruleset` on the balancer (what `systemctl reload nftables` does with
/// Debian's default /etc/nftables.conf) and a deleted VIP are repaired by the running daemon:
/// traffic flows again within a couple of seconds, each repair is logged and counted, and a
/// storm of flushes costs at most one rebuild per second.
#[test]
fn the_daemon_repairs_a_flushed_ruleset_and_a_deleted_vip() {
    require_root!();
    let mut lab = lab(2);
    lab.start(&[]);
    let shape = table_shape(&lab.lb);
    let t = tally(&requests(&lab, 10));
    assert!(!t.contains_key("FAILED"), "{t:?}");

    // `lb status` looks at the kernel, not only at the daemon's word: with the daemon stopped
    // (SIGSTOP), a flushed ruleset is a finding naming the missing table.
    lab.lb_run.ok(&["lb", "status"]);
    lab.signal(libc::SIGSTOP);
    lab.lb.exec_ok(&["nft", "flush", "ruleset"]);
    let out = lab.lb_run.run(&["lb", "status"]);
    out.expect_code(1);
    assert!(
        out.stdout
            .contains("! kernel: table netdev lbctl_lb_web is missing"),
        "{out}"
    );
    let v = lab.lb_run.run(&["--json", "lb", "status"]).json();
    assert_eq!(
        v["daemons"][0]["kernel"]["problems"][0],
        "table netdev lbctl_lb_web is missing: no traffic is balanced"
    );
    let list = lab.lb_run.run(&["lb", "list"]);
    list.expect_code(1);
    assert!(
        list.stdout
            .contains("! kernel: table netdev lbctl_lb_web is missing"),
        "{list}"
    );
    lab.signal(libc::SIGCONT);
    let took = lab.wait_status("the table rebuilt", |s| s["repairs"].as_u64() >= Some(1));
    eprintln!("repair noticed after {took:?}");
    lab.wait_status("every backend in service again", |s| {
        backends(s).iter().all(|b| b["in_service"] == true)
    });
    assert_eq!(table_shape(&lab.lb), shape);
    let t = tally(&requests(&lab, 20));
    assert!(!t.contains_key("FAILED"), "after the flush: {t:?}");
    lab.lb_run.ok(&["lb", "status"]);
    lab.lb_run.ok(&["lb", "list"]);
    assert!(
        lab.log().contains("rebuilt (the table is gone)"),
        "{}",
        lab.log()
    );

    lab.lb
        .ip(&["addr", "del", "198.18.0.100/32", "dev", "eth0"]);
    lab.wait_status("the VIP re-added", |s| s["repairs"].as_u64() >= Some(2));
    assert!(lab
        .lb
        .addrs("eth0")
        .iter()
        .any(|a| a.starts_with("198.18.0.100/")));
    let t = tally(&requests(&lab, 10));
    assert!(
        !t.contains_key("FAILED"),
        "after the VIP was deleted: {t:?}"
    );

    // Elements deleted from the Maglev slot map: rewritten (checked whenever the ruleset generation moves).
    let map = || {
        lab.lb
            .nft_text(&[
                "list",
                "map",
                "netdev",
                "lbctl_lb_web",
                "m_198_18_0_100_tcp_80",
            ])
            .stdout
    };
    let full = map();
    let repairs = lab.status().unwrap()["repairs"].as_u64().unwrap();
    lab.lb.exec_ok(&[
        "nft",
        "delete element netdev lbctl_lb_web m_198_18_0_100_tcp_80 { 0, 1, 2 }",
    ]);
    assert_ne!(map(), full);
    lab.wait_status("the slot map rewritten", |s| {
        s["repairs"].as_u64() > Some(repairs)
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(map(), full);
    assert!(
        lab.log()
            .contains("slot map(s) of 198_18_0_100_tcp_80 rewritten"),
        "{}",
        lab.log()
    );

    // A storm: 100 flushes as fast as nft runs them. Repairs stay about one per second.
    let before = lab.status().unwrap()["repairs"].as_u64().unwrap();
    let start = Instant::now();
    for _ in 0..100 {
        lab.lb.exec_ok(&["nft", "flush", "ruleset"]);
    }
    let storm = start.elapsed();
    let after = Instant::now();
    while !(lab.lb.nft_table_exists("netdev", "lbctl_lb_web") && table_shape(&lab.lb) == shape) {
        assert!(
            after.elapsed() < Duration::from_secs(10),
            "not repaired after the storm\n{}",
            lab.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("table back {:?} after the storm", after.elapsed());
    lab.wait_status("every backend in service after the storm", |s| {
        backends(s).iter().all(|b| b["in_service"] == true)
    });
    // The slots are written at the next program after the structure.
    std::thread::sleep(Duration::from_millis(300));
    let t = tally(&requests(&lab, 10));
    assert!(!t.contains_key("FAILED"), "after the storm: {t:?}");
    let repairs = lab.status().unwrap()["repairs"].as_u64().unwrap() - before;
    assert!(
        repairs <= storm.as_secs() + 3,
        "{repairs} repairs for a {storm:?} storm: not rate-limited"
    );
}

/// Issue 13: restarting `lb run` (SIGTERM without --cleanup, then start again with the same
/// file) under steady load loses no request: the data path stays in the kernel, and the new
/// daemon takes over the backends' states instead of starting them as `unknown`.
#[test]
fn three_restarts_under_load_lose_no_request() {
    require_root!();
    let mut lab = lab(2);
    lab.start(&[]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let client = lab.client.name().to_string();
    let load = std::thread::spawn(move || {
        in_netns(&client, move || {
            let mut results = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                let r = TcpStream::connect_timeout(&vip(), Duration::from_secs(2))
                    .map_err(|e| e.to_string())
                    .and_then(|mut s| get(&mut s));
                results.push(r);
                std::thread::sleep(Duration::from_millis(20));
            }
            results
        })
    });
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(300));
        lab.signal(libc::SIGTERM);
        let _ = lab.daemon.take().map(|mut b| b.0.wait());
        lab.start(&[]);
        let log = lab.log();
        assert!(log.contains("taken over from the previous run"), "{log}");
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let results = load.join().unwrap();
    let t = tally(&results);
    assert!(results.len() >= 40, "too few requests: {t:?}");
    assert_eq!(t.get("FAILED"), None, "{t:?}");
}

/// MACs that answered `arping` for `ip` from the client.
fn arp_macs(lab: &Lab, ip: &str) -> std::collections::BTreeSet<String> {
    let out = lab
        .client
        .exec(&["arping", "-c", "2", "-w", "3", "-i", "eth0", ip]);
    out.stdout
        .lines()
        .filter_map(|l| l.split_once(" bytes from ").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_lowercase)
        .collect()
}

/// Issue 13: `nft flush ruleset` on a backend (Debian's nftables.service reload) removes
/// `table arp lbctl`, and the backend would answer ARP for the VIP (ARP flux). `lbctl watch`
/// puts it back within a couple of seconds: `arping` from the client then gets exactly one
/// MAC, the balancer's, and traffic flows.
#[test]
fn watch_restores_arp_suppression_after_a_ruleset_flush() {
    require_root!();
    require_tool!("arping");
    let mut lab = lab(2);
    lab.start(&[]);
    let be1 = &lab.be_run[0];
    let run_dir = be1.run_dir().to_string_lossy().into_owned();
    let log = std::fs::File::create(lab.cfg_dir.path().join("watch.log")).unwrap();
    // The README's example: the shipped profile (eth0 198.18.0.11 is be1's address).
    let profile = concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/backend-nft.toml");
    let watch = Bg(Command::new(LBCTL)
        .args([
            "--netns",
            lab.be[0].name(),
            "watch",
            "--interval",
            "200",
            "-f",
            profile,
        ])
        .env("LBCTL_RUN_DIR", &run_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn lbctl watch"));
    let start = Instant::now();
    while !be1.run(&["status", "-f", profile]).success() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the profile was not applied"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    lab.be[0].exec_ok(&["nft", "flush", "ruleset"]);
    let start = Instant::now();
    while !lab.be[0].nft_table_exists("arp", "lbctl") {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "not repaired: {}",
            std::fs::read_to_string(lab.cfg_dir.path().join("watch.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("arp table back after {:?}", start.elapsed());
    assert_eq!(
        arp_macs(&lab, VIP),
        std::collections::BTreeSet::from(["02:00:00:00:00:02".to_string()]),
        "exactly the balancer answers ARP for the VIP"
    );
    let t = tally(&requests(&lab, 10));
    assert!(!t.contains_key("FAILED"), "{t:?}");
    be1.ok(&["status"]);
    drop(watch);
    let log = std::fs::read_to_string(lab.cfg_dir.path().join("watch.log")).unwrap();
    assert!(
        log.contains("repaired drift: nft add table arp lbctl"),
        "{log}"
    );
}
