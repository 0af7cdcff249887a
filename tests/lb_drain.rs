//! `lbctl lb drain --balancer` with `[bgp]` (issue 16 item 2): a real BIRD 2 router peers with
//! the BIRD `lb run` starts; a slow download (the backend paced by tbf) runs through the
//! balancer while it drains. The order is checked, not the times: the router loses the route
//! while the data path still forwards, the download completes byte-intact, then the data path
//! is gone and `lb run` has exited; with a 1 s timeout the data path goes with flows left, and
//! the answer says how many. The topology (shared with tests/lb_bgp.rs) is in tests/common/bgp.rs.
//!
//! ```text
//! client 198.18.1.10 ── router 198.18.1.1 | 198.18.0.1 (AS 65000, BIRD) ── br0 ──┬─ lb1 198.18.0.2 (AS 65001)
//!                                                                               └─ be1 198.18.0.11 (tbf 2mbit)
//! VIP 198.18.2.100:80 (reached only through the BGP route)
//! ```

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::bgp::{big, lab, Lab, VIP};
use serde_json::Value;

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

/// GET `path` from the VIP, in the client namespace.
fn fetch(client: &str, path: &str, port: u16) -> Result<Vec<u8>, String> {
    let path = path.to_string();
    lbctl::sys::netns::run_in(client, move || {
        common::bgp::fetch_vip(&path, port, Duration::from_secs(5))
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
