//! `lbctl lb run` with `[bgp]` (issue 16): real BIRD 2 in a router namespace peering with the
//! BIRD that `lb run` starts in each balancer namespace; the router merges the balancers' paths
//! into one ECMP route. Covers: announce once the backends are healthy, withdraw on quorum loss
//! and back, SIGTERM, SIGKILL (the gate device vanishes) and SIGSTOP (the watchdog) of `lb run`
//! all withdraw; `lb status` shows the sessions; bad `[bgp]` input is a usage error before
//! anything starts; two balancers with the same file build the same Maglev slots and forward a
//! mid-flow packet of a connection they never saw to the backend Maglev picks; a dual-stack
//! balancer announces its IPv6 VIP over an IPv6 session, and SIGTERM and link loss (BFD)
//! withdraw it.
//!
//! ```text
//! client 198.18.1.10 ── router 198.18.1.1 | 198.18.0.1 (AS 65000, BIRD, ECMP) ── br0 ──┬─ lb1 198.18.0.2 (AS 65001)
//!                                                                                        ├─ lb2 198.18.0.3 (AS 65002)
//!                                                                                        ├─ be1 198.18.0.11
//!                                                                                        └─ be2 198.18.0.12
//! VIP 198.18.2.100:80 (outside the router–balancer network: reached only through BGP routes)
//! ```

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::bgp::{big, lab, lab_dual, Lab, VIP, VIP6};
use common::{httpd, Netns};

fn config(i: usize, backends: usize, quorum: u32, extra_bgp: &str) -> String {
    let mut s = format!(
        "name = \"web\"\n[balancer]\nengine = \"nft\"\ninterface = \"eth0\"\nmaglev_size = 1021\n\
         [bgp]\nasn = {}\n{extra_bgp}\n[[bgp.neighbor]]\naddress = \"198.18.0.1\"\nasn = 65000\n\
         [[service]]\nvip = \"{VIP}:80\"\nquorum = {quorum}\n\
         [service.check]\ntype = \"http\"\npath = \"/index.html\"\ninterval = \"300ms\"\ntimeout = \"250ms\"\nrise = 1\nfall = 2\n",
        65000 + i
    );
    for b in 1..=backends {
        s.push_str(&format!("[[service.backend]]\nrip = \"198.18.0.1{b}\"\n"));
    }
    s
}

impl Lab {
    fn signal(&self, i: usize, sig: i32) {
        let pid = self.daemons[i - 1].as_ref().expect("daemon").0.id() as i32;
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    fn get(&self, path: &str, port: u16) -> Result<Vec<u8>, String> {
        let path = path.to_string();
        lbctl::sys::netns::run_in(self.client.name(), move || fetch(&path, port))
            .map_err(|e| e.to_string())?
    }
}

/// GET `path` from the VIP, from local port `port` (0: any), in this thread's namespace.
fn fetch(path: &str, port: u16) -> Result<Vec<u8>, String> {
    common::bgp::fetch_vip(path, port, Duration::from_secs(3))
}

fn bird_children(lb: &Netns) -> usize {
    // BIRD processes started by lb run inside this namespace.
    let mut n = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if !cmd.starts_with("bird ") && !cmd.contains("/bird ") {
            continue;
        }
        let their = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
        let ours = lbctl::sys::netns::run_in(lb.name(), || {
            std::fs::read_link("/proc/thread-self/ns/net").ok()
        })
        .ok()
        .flatten();
        if their.is_some() && their == ours {
            n += 1;
        }
    }
    n
}

#[test]
fn announce_follows_quorum_and_the_life_of_lb_run() {
    if !common::can_run_netns_tests("announce_follows_quorum_and_the_life_of_lb_run")
        || !common::have_tool_or_skip("announce_follows_quorum_and_the_life_of_lb_run", "bird")
    {
        return;
    }
    let mut lab = lab(1, 2);
    lab.start(1, &config(1, 2, 2, ""));
    lab.wait_hops(&["198.18.0.2"], "the VIP announced by lb1");
    assert_eq!(lab.get("/index.html", 0).map(|b| b.len()), Ok(4));

    // lb status shows the established session and the announced VIP.
    let s = lab.status(1).expect("status");
    assert_eq!(s["bgp"]["daemon"], "bird", "{s:#}");
    let start = Instant::now();
    loop {
        let s = lab.status(1).expect("status");
        if s["bgp"]["sessions"][0]["info"] == "Established" {
            assert_eq!(s["bgp"]["sessions"][0]["neighbor"], "198.18.0.1");
            assert_eq!(s["bgp"]["vips"][0]["announced"], true, "{s:#}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "{s:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = lab.lb_run[0].run(&["lb", "status"]);
    assert!(text.stdout.contains("Established"), "{text}");
    assert!(text.stdout.contains(&format!("announced {VIP}")), "{text}");

    // SIGHUP with a new MED: BIRD is reconfigured; a file BIRD-side validation refuses keeps
    // the running configuration (and says why in lb status).
    std::fs::write(lab.cfg_path(1), config(1, 2, 2, "med = 42")).unwrap();
    lab.signal(1, libc::SIGHUP);
    let start = Instant::now();
    while !lab.log(1).contains("bird reconfigured") {
        assert!(start.elapsed() < Duration::from_secs(15), "{}", lab.log(1));
        std::thread::sleep(Duration::from_millis(100));
    }
    let conf = s["bgp"]["config"]
        .as_str()
        .expect("config path")
        .to_string();
    assert!(std::fs::read_to_string(&conf)
        .unwrap()
        .contains("bgp_med = 42;"));
    std::fs::write(
        lab.cfg_path(1),
        config(1, 2, 2, "").replace("198.18.0.1\"", "198.18.9.1\""),
    )
    .unwrap();
    lab.signal(1, libc::SIGHUP);
    let start = Instant::now();
    loop {
        let s = lab.status(1).expect("status");
        if let Some(e) = s["reload_error"].as_str() {
            assert!(e.contains("not on any network"), "{e}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "{s:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(std::fs::read_to_string(&conf)
        .unwrap()
        .contains("neighbor 198.18.0.1 as 65000;"));
    assert_eq!(lab.next_hops(), ["198.18.0.2"]);

    // Quorum 2: one backend down is enough to withdraw; back when it returns.
    lab.servers[1] = None;
    lab.wait_hops(&[], "withdrawal on quorum loss");
    let s = lab.status(1).expect("status");
    assert_eq!(s["bgp"]["vips"][0]["announced"], false, "{s:#}");
    assert!(
        s["bgp"]["vips"][0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("quorum 2"),
        "{s:#}"
    );
    lab.servers[1] = Some(httpd(&lab.be[1], &lab.www[1]));
    lab.wait_hops(&["198.18.0.2"], "announced again");

    // SIGSTOP: the watchdog withdraws; SIGCONT: announced again.
    lab.signal(1, libc::SIGSTOP);
    lab.wait_hops(&[], "withdrawal while lb run is stopped");
    lab.signal(1, libc::SIGCONT);
    lab.wait_hops(&["198.18.0.2"], "announced again after SIGCONT");

    // SIGTERM: withdrawn, BIRD gone with lb run.
    lab.signal(1, libc::SIGTERM);
    lab.wait_hops(&[], "withdrawal on SIGTERM");
    let _ = lab.daemons[0].as_mut().unwrap().0.wait();
    assert_eq!(bird_children(&lab.lb[0]), 0, "{}", lab.log(1));
    assert!(lab.log(1).contains("withdrawing"), "{}", lab.log(1));

    // SIGKILL: the gate device vanishes with the process (and BIRD follows its parent).
    lab.start(1, &config(1, 2, 1, ""));
    lab.wait_hops(&["198.18.0.2"], "announced by a new lb run");
    lab.signal(1, libc::SIGKILL);
    lab.wait_hops(&[], "withdrawal after SIGKILL");
    let links = lab.lb[0].ip(&["-o", "link", "show"]);
    assert!(!links.contains("lbv"), "gate device left behind: {links}");
    let start = Instant::now();
    while bird_children(&lab.lb[0]) > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "BIRD outlived lb run"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn bad_bgp_input_is_a_usage_error_before_anything_starts() {
    if !common::can_run_netns_tests("bad_bgp_input_is_a_usage_error_before_anything_starts")
        || !common::have_tool_or_skip(
            "bad_bgp_input_is_a_usage_error_before_anything_starts",
            "bird",
        )
    {
        return;
    }
    let lab = lab(1, 1);
    let good = config(1, 1, 1, "");
    let cases: Vec<(String, &str)> = vec![
        (good.replace("asn = 65001", "asn = 0"), "1..=4294967294"),
        (
            good.replace("asn = 65001", "asn = 4294967295"),
            "1..=4294967294",
        ),
        (
            good.replace("asn = 65001", "asn = 65001\nbogus = 1"),
            "bogus",
        ),
        (
            good.replace("address = \"198.18.0.1\"", "address = \"198.18.9.1\""),
            "not on any network",
        ),
        (good.replace("quorum = 1", "quorum = 2"), "must be 1..=1"),
        (
            good.replace(&format!("{VIP}:80"), "198.18.0.100:80"),
            "inside 198.18.0.2/24",
        ),
        (
            good.replace("asn = 65001", "asn = 65001\ncommunities = [\"1:2:3:4\"]"),
            "communities",
        ),
    ];
    for (cfg, want) in cases {
        let path = lab.dir.path().join("bad.toml");
        std::fs::write(&path, &cfg).unwrap();
        let p = path.to_string_lossy().into_owned();
        for args in [
            vec!["lb", "run", "-c", &p],
            vec!["--dry-run", "lb", "run", "-c", &p],
        ] {
            let out = lab.lb_run[0].run(&args);
            out.expect_code(2);
            assert!(out.stderr.contains(want), "{want:?} not in {out}");
        }
        assert!(!lab.lb[0].ip(&["-o", "link"]).contains("lbv"));
        assert_eq!(bird_children(&lab.lb[0]), 0);
        assert!(
            !lab.lb[0].nft_table_exists("netdev", "lbctl_lb_web"),
            "a data path was created for {want}"
        );
    }
    // The good file: the dry run shows BIRD's configuration, export prints it.
    let path = lab.dir.path().join("good.toml");
    std::fs::write(&path, &good).unwrap();
    let p = path.to_string_lossy().into_owned();
    let out = lab.lb_run[0].ok(&["--dry-run", "lb", "run", "-c", &p]);
    assert!(
        out.stdout.contains("neighbor 198.18.0.1 as 65000;"),
        "{out}"
    );
    assert!(
        out.stdout.contains(&format!("route {VIP}/32 via \"lbv")),
        "{out}"
    );
    let exp = lab.lb_run[0].ok(&["lb", "export", "bird", "-c", &p]);
    assert!(
        exp.stdout
            .contains("bfd { interval 100 ms; multiplier 3; };"),
        "{exp}"
    );
    // What lbctl prints, BIRD parses.
    let conf = lab.dir.path().join("exported.conf");
    std::fs::write(&conf, &exp.stdout).unwrap();
    common::run_ok(&["bird", "-p", "-c", &conf.to_string_lossy()]);
    assert_eq!(bird_children(&lab.lb[0]), 0);
    assert!(!lab.lb[0].ip(&["-o", "link"]).contains("lbv"));
}

/// Elements of a map in `lbctl_lb_web`: (key as JSON text, value).
fn map_elems(lb: &Netns, map: &str) -> Vec<(String, String)> {
    let v = lb.nft_json(&["list", "map", "netdev", "lbctl_lb_web", map]);
    let mut out = Vec::new();
    for o in v["nftables"].as_array().into_iter().flatten() {
        for e in o["map"]["elem"].as_array().into_iter().flatten() {
            let k = &e[0];
            let key = k.get("elem").and_then(|x| x.get("val")).unwrap_or(k);
            out.push((key.to_string(), e[1].as_str().unwrap_or("").to_string()));
        }
    }
    out.sort();
    out
}

/// Two balancers with the same file build the same Maglev slots; flows that ECMP moves from a
/// balancer that dies to the survivor (mid-flow: the survivor never saw their SYN) reach the
/// same backend and complete byte-intact.
#[test]
fn two_balancers_agree_and_a_moved_flow_survives() {
    let t = "two_balancers_agree_and_a_moved_flow_survives";
    if !common::can_run_netns_tests(t) || !common::have_tool_or_skip(t, "bird") {
        return;
    }
    let mut lab = lab(2, 2);
    // The paced links delay check answers too: a check must not take a backend out here.
    let cfg = |i| config(i, 2, 1, "").replace("fall = 2", "fall = 30");
    lab.start(1, &cfg(1));
    lab.start(2, &cfg(2));
    lab.wait_hops(
        &["198.18.0.2", "198.18.0.3"],
        "an ECMP route over both balancers",
    );
    // Same file → same slot table, slot for slot (the backends' MACs are the same for both).
    let slots = "m_198_18_2_100_tcp_80";
    let (a, b) = (map_elems(&lab.lb[0], slots), map_elems(&lab.lb[1], slots));
    assert_eq!(a.len(), 1021, "lb1 slots: {a:?}");
    assert_eq!(a, b, "the two balancers' Maglev tables differ");

    // Pace the downloads on the backends (1 MiB at 4 Mbit/s ≈ 2 s each, shared per backend).
    for be in &lab.be {
        be.exec_ok(&[
            "tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "4mbit", "burst", "16kb",
            "latency", "50ms",
        ]);
    }
    let client = lab.client.name().to_string();
    let flows: Vec<_> = (0..12)
        .map(|i| {
            let ns = client.clone();
            std::thread::spawn(move || {
                lbctl::sys::netns::run_in(&ns, move || fetch("/big", 41000 + i))
                    .map_err(|e| e.to_string())
                    .and_then(|r| r)
            })
        })
        .collect();
    // Once flows run on lb1, kill it: its flows move to lb2 mid-flow.
    let start = Instant::now();
    let on_lb1 = loop {
        let n = map_elems(&lab.lb[0], "f_198_18_2_100_tcp_80").len();
        if n > 0 && start.elapsed() > Duration::from_millis(800) {
            break n;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no flow reached lb1"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    lab.signal(1, libc::SIGKILL);
    lab.wait_hops(&["198.18.0.3"], "lb1 gone from the route");
    let want = big();
    let mut intact = 0;
    let mut errors = Vec::new();
    for f in flows {
        match f.join().expect("download thread") {
            Ok(body) if body == want => intact += 1,
            Ok(body) => errors.push(format!("{} bytes, not the file", body.len())),
            Err(e) => errors.push(e),
        }
    }
    assert_eq!(
        intact,
        12,
        "{on_lb1} flow(s) were on lb1 when it was killed; failures: {errors:?}\nlb2 log:\n{}",
        lab.log(2)
    );
}

/// The router's next hops for the IPv6 VIP (empty: no route).
fn next_hops6(lab: &Lab) -> Vec<String> {
    lab.next_hops_of(VIP6)
}

#[track_caller]
fn wait_hops6(lab: &Lab, want: usize, what: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if next_hops6(lab).len() == want {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let router_log = std::fs::read_to_string(lab.dir.path().join("router.log")).unwrap_or_default();
    let tail: Vec<&str> = router_log.lines().rev().take(30).collect();
    panic!(
        "timed out waiting for {what}: IPv6 next hops {:?}, want {want}\nlb1 status: {:#}\nlb1 log:\n{}\nrouter log (last lines, newest first):\n{}",
        next_hops6(lab),
        lab.status(1).unwrap_or(serde_json::Value::Null),
        lab.log(1),
        tail.join("\n")
    );
}

/// What the router's BIRD has for the IPv6 VIP's host route (birdc exits 1 with "Network not
/// found" when there is none).
fn router_bird_route6(lab: &Lab) -> String {
    let sock = lab.dir.path().join("router.ctl");
    let out = common::run_cmd(
        &[
            "birdc",
            "-s",
            &sock.to_string_lossy(),
            "show",
            "route",
            &format!("{VIP6}/128"),
        ],
        &[],
        None,
    );
    format!("{}{}", out.stdout, out.stderr)
}

/// A dual-stack balancer: IPv4 and IPv6 VIPs, one BGP session per address family. The IPv6 VIP
/// is announced over the IPv6 session (lb run's BIRD, static route via the gate), lands in the
/// router's BIRD and kernel table with lb1 as next hop, carries a request end to end (DSR reply
/// from the backend straight to the client), and is withdrawn on SIGTERM. Then link loss of the
/// balancer (its switch port down: no FIN, only BFD can tell) withdraws both VIPs.
#[test]
fn ipv6_vip_is_announced_withdrawn_on_sigterm_and_on_link_loss() {
    let t = "ipv6_vip_is_announced_withdrawn_on_sigterm_and_on_link_loss";
    if !common::can_run_netns_tests(t) || !common::have_tool_or_skip(t, "bird") {
        return;
    }
    let mut lab = lab_dual(1, 2);
    let check = "[service.check]\ntype = \"http\"\npath = \"/index.html\"\ninterval = \"300ms\"\n\
                 timeout = \"250ms\"\nrise = 1\nfall = 2\n";
    let cfg = format!(
        "name = \"web\"\n[balancer]\nengine = \"nft\"\ninterface = \"eth0\"\nmaglev_size = 1021\n\
         [bgp]\nasn = 65001\n\
         [[bgp.neighbor]]\naddress = \"198.18.0.1\"\nasn = 65000\n\
         [[bgp.neighbor]]\naddress = \"2001:db8::1\"\nasn = 65000\n\
         [[service]]\nvip = \"{VIP}:80\"\n{check}\
         [[service.backend]]\nrip = \"198.18.0.11\"\n[[service.backend]]\nrip = \"198.18.0.12\"\n\
         [[service]]\nvip = \"[{VIP6}]:80\"\n{check}\
         [[service.backend]]\nrip = \"2001:db8::11\"\n[[service.backend]]\nrip = \"2001:db8::12\"\n"
    );
    // The generated configuration has an IPv6 static protocol and an ipv6 channel on the IPv6
    // session (and BIRD parses it: the dry run validates with `bird -p`).
    std::fs::write(lab.cfg_path(1), &cfg).unwrap();
    let p = lab.cfg_path(1).to_string_lossy().into_owned();
    let dry = lab.lb_run[0].ok(&["--dry-run", "lb", "run", "-c", &p]);
    assert!(
        dry.stdout.contains(&format!("route {VIP6}/128 via \"lbv")),
        "{dry}"
    );
    assert!(
        dry.stdout.contains("neighbor 2001:db8::1 as 65000;"),
        "{dry}"
    );
    assert!(
        dry.stdout
            .contains("ipv6 { import none; export filter lbctl_export; };"),
        "{dry}"
    );

    lab.start(1, &cfg);
    lab.wait_hops(&["198.18.0.2"], "the IPv4 VIP announced by lb1");
    wait_hops6(&lab, 1, "the IPv6 VIP announced by lb1");
    // The next hop is lb1: its global address or its link-local one on the router's eth0.
    let lb1_addrs: Vec<String> = lab.lb[0]
        .addrs("eth0")
        .iter()
        .map(|a| a.split('/').next().unwrap().to_string())
        .collect();
    let hops = next_hops6(&lab);
    assert!(
        lb1_addrs.contains(&hops[0]),
        "IPv6 next hop {hops:?} is not lb1 ({lb1_addrs:?})"
    );
    let r6 = lab.router.ip(&["-6", "route", "show", VIP6]);
    assert!(r6.contains("proto bird") && r6.contains("dev eth0"), "{r6}");
    let bird = router_bird_route6(&lab);
    assert!(
        bird.contains(&format!("{VIP6}/128"))
            && bird.contains("[lb1v6 ")
            && bird.contains("AS65001"),
        "{bird}"
    );
    let s = lab.status(1).expect("status");
    let vips: Vec<&serde_json::Value> = s["bgp"]["vips"].as_array().unwrap().iter().collect();
    assert!(
        vips.iter()
            .any(|v| v["vip"] == VIP6 && v["announced"] == true),
        "{s:#}"
    );

    // A request to the IPv6 VIP from the client: router → lb1 (Maglev) → a backend, whose reply
    // goes straight back through the router.
    let target: std::net::SocketAddr = format!("[{VIP6}]:80").parse().unwrap();
    let body = lbctl::sys::netns::run_in(lab.client.name(), move || {
        use std::io::{Read as _, Write as _};
        let mut s = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(3))
            .map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut r = String::new();
        s.read_to_string(&mut r).map_err(|e| e.to_string())?;
        Ok::<String, String>(r)
    })
    .expect("run in the client namespace");
    let body = body.unwrap_or_else(|e| panic!("GET via [{VIP6}]:80: {e}\n{}", lab.log(1)));
    assert!(body.ends_with("be1\n") || body.ends_with("be2\n"), "{body}");

    // SIGTERM: both withdrawn, in the router's BIRD too.
    lab.signal(1, libc::SIGTERM);
    wait_hops6(&lab, 0, "the IPv6 VIP withdrawn on SIGTERM");
    lab.wait_hops(&[], "the IPv4 VIP withdrawn on SIGTERM");
    let _ = lab.daemons[0].as_mut().unwrap().0.wait();
    let bird = router_bird_route6(&lab);
    assert!(
        bird.contains("Network not found") && !bird.contains(&format!("{VIP6}/128")),
        "{bird}"
    );

    // Link loss: a new lb run announces both again; lb1's switch port goes down (no FIN, no
    // carrier change on the router's side): BFD withdraws both.
    lab.start(1, &cfg);
    lab.wait_hops(&["198.18.0.2"], "the IPv4 VIP announced by a new lb run");
    wait_hops6(&lab, 1, "the IPv6 VIP announced by a new lb run");
    lab.sw.ip(&["link", "set", "sw-lb1", "down"]);
    lab.wait_hops(&[], "the IPv4 VIP withdrawn after link loss");
    wait_hops6(&lab, 0, "the IPv6 VIP withdrawn after link loss");
    // BFD caught it (the hold time is BIRD's default 240 s), on both sessions.
    let sock = lab.dir.path().join("router.ctl");
    for proto in ["lb1", "lb1v6"] {
        let out = common::run_ok(&[
            "birdc",
            "-s",
            &sock.to_string_lossy(),
            "show",
            "protocols",
            "all",
            proto,
        ]);
        assert!(out.stdout.contains("BFD session down"), "{out}");
    }
}
