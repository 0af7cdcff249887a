//! `lbctl doctor` against a real DSR lab in namespaces (issue 4): a switch (bridge), a client, an
//! nftables netdev balancer and two backends configured by lbctl. A healthy set-up passes (exit 0,
//! real requests spread over both backends); each classic fault, injected by hand, is reported
//! with its own check id and fix (exit 1).

#[macro_use]
mod common;

use std::process::{Child, Command, Stdio};

use common::{Lbctl, Netns, TempDir};
use serde_json::Value;

const VIP: &str = "198.18.0.100";

/// A background process in a namespace, killed (by PID) on drop.
struct Bg(Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_in(ns: &Netns, argv: &[&str]) -> Bg {
    let child = Command::new("ip")
        .args(["netns", "exec", ns.name()])
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    Bg(child)
}

struct Lab {
    // Field order = drop order: servers die before their namespaces.
    _servers: Vec<Bg>,
    _www: Vec<TempDir>,
    client: Netns,
    be: Vec<Netns>,
    be_lbctl: Vec<Lbctl>,
    _lb: Netns,
    _sw: Netns,
}

/// Attach `host` to the bridge in `sw` with a veth created inside `sw`.
fn plug(sw: &Netns, host: &Netns, port: &str, mac: &str, cidr: &str) {
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

fn lab() -> Lab {
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
    lb.add_addr("eth0", &format!("{VIP}/32"));
    // The balancer: the verified netdev ingress recipe (PLATFORM.md §4).
    lb.nft(&format!(
        "table netdev lab_lb {{\n\
           chain ingress_eth0 {{\n\
             type filter hook ingress device \"eth0\" priority 100; policy accept;\n\
             ip daddr {VIP} tcp dport 80 ether saddr set 02:00:00:00:00:02 ether daddr set jhash ip saddr . tcp sport mod 2 seed 0x4c42 map {{ 0 : 02:00:00:00:00:11, 1 : 02:00:00:00:00:12 }} fwd to \"eth0\"\n\
           }}\n\
         }}"
    ));
    let mut be = Vec::new();
    let mut be_lbctl = Vec::new();
    let mut servers = Vec::new();
    let mut www = Vec::new();
    for i in 1..=2 {
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
        let lb = Lbctl::new(&ns);
        lb.ok(&["arp", "suppress", VIP, "--real-ip", &rip]);
        lb.ok(&["vip", "add", VIP]);
        let dir = TempDir::new(&format!("www{i}"));
        std::fs::write(dir.path().join("index.html"), format!("be{i}\n")).unwrap();
        servers.push(spawn_in(
            &ns,
            &[
                "busybox",
                "httpd",
                "-f",
                "-p",
                "80",
                "-h",
                dir.path().to_str().unwrap(),
            ],
        ));
        www.push(dir);
        be.push(ns);
        be_lbctl.push(lb);
    }
    let lab = Lab {
        _servers: servers,
        _www: www,
        client,
        be,
        be_lbctl,
        _lb: lb,
        _sw: sw,
    };
    // Wait for both servers to listen.
    for ns in &lab.be {
        for _ in 0..50 {
            if ns
                .exec(&["sh", "-c", "grep -q ':0050 00000000:0000 0A' /proc/net/tcp"])
                .success()
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    lab
}

/// Requests from the client through the balancer; returns the backends that answered.
/// Every request uses a new client port (ports in TIME_WAIT cannot be bound again).
fn requests(lab: &Lab, n: usize) -> Vec<String> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let base = NEXT.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
    (base..base + n)
        .map(|i| {
            let out = lab.client.exec(&[
                "curl",
                "-s",
                "-m",
                "3",
                "--local-port",
                &(40000 + i).to_string(),
                &format!("http://{VIP}/"),
            ]);
            out.stdout.trim().to_string()
        })
        .collect()
}

fn doctor(lab: &Lab, be: usize) -> (i32, Value) {
    let out = lab.be_lbctl[be].run(&[
        "--json",
        "doctor",
        "--vip",
        &format!("{VIP}:80"),
        "--client",
        "198.18.0.10",
        "--balancer",
        "198.18.0.2",
    ]);
    assert!(
        out.code == 0 || out.code == 1,
        "doctor could not run: {}",
        out.stderr
    );
    (out.code, out.json())
}

/// The ids of failed checks.
fn failed(v: &Value) -> Vec<String> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

fn fix_of(v: &Value, id: &str) -> String {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id && c["status"] == "fail")
        .and_then(|c| c["fix"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[track_caller]
fn expect_only(lab: &Lab, id: &str, fix_contains: &str) {
    let (code, v) = doctor(lab, 0);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(failed(&v), vec![id.to_string()], "{v:#}");
    let fix = fix_of(&v, id);
    assert!(fix.contains(fix_contains), "fix for {id}: {fix:?}");
}

#[test]
fn healthy_lab_passes_and_serves_from_both_backends() {
    require_root!();
    require_tool!("curl");
    require_tool!("busybox");
    let lab = lab();
    let got = requests(&lab, 16);
    assert!(got.iter().all(|g| g == "be1" || g == "be2"), "{got:?}");
    assert!(
        got.contains(&"be1".to_string()) && got.contains(&"be2".to_string()),
        "{got:?}"
    );
    for i in 0..2 {
        let (code, v) = doctor(&lab, i);
        assert_eq!(code, 0, "{v:#}");
        assert_eq!(v["ok"], true);
    }
    // The human checklist marks passes with ✓ and ends with a summary.
    let out = lab.be_lbctl[0].run(&["doctor", "--vip", &format!("{VIP}:80")]);
    assert!(
        out.stdout.contains("✓ 198.18.0.100: VIP configured"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("0 failed"), "{}", out.stdout);
}

#[test]
fn each_fault_is_reported_with_its_fix() {
    require_root!();
    require_tool!("curl");
    require_tool!("busybox");
    require_tool!("arping");
    let lab = lab();
    let be = &lab.be[0];
    let lb = &lab.be_lbctl[0];

    // 1. VIP missing.
    lb.ok(&["vip", "del", VIP]);
    expect_only(&lab, "vip.present", "lbctl vip add 198.18.0.100");
    lb.ok(&["vip", "add", VIP]);

    // 2. ARP not suppressed: two MACs answer for the VIP.
    lb.ok(&["arp", "restore", VIP]);
    let out = lab
        .client
        .exec(&["arping", "-c", "2", "-w", "3", "-i", "eth0", VIP]);
    let macs: std::collections::BTreeSet<&str> = out
        .stdout
        .split_whitespace()
        .filter(|w| w.starts_with("02:00:00:00:00:"))
        .collect();
    assert!(
        macs.len() >= 2,
        "expected ARP flux, got {macs:?}: {}",
        out.stdout
    );
    expect_only(
        &lab,
        "arp.suppressed",
        "lbctl arp suppress 198.18.0.100 --real-ip 198.18.0.11",
    );
    lb.ok(&["arp", "suppress", VIP, "--real-ip", "198.18.0.11"]);

    // 3. rp_filter strict with an asymmetric route: replies from the VIP leave by a second link.
    common::veth_local(be, "rpx0", "rpx1");
    be.add_addr("rpx0", "192.0.2.11/24");
    be.up("rpx0");
    be.up("rpx1");
    be.ip(&[
        "rule", "add", "from", VIP, "lookup", "300", "priority", "50",
    ]);
    be.ip(&[
        "route",
        "add",
        "default",
        "via",
        "192.0.2.254",
        "dev",
        "rpx0",
        "table",
        "300",
    ]);
    be.ip(&[
        "route",
        "add",
        "192.0.2.0/24",
        "dev",
        "rpx0",
        "table",
        "300",
    ]);
    be.set_conf(&[("all", "rp_filter", 1), ("eth0", "rp_filter", 1)]);
    let (code, v) = doctor(&lab, 0);
    assert_eq!(code, 1);
    assert!(
        failed(&v).contains(&"rpfilter.accepts".to_string()),
        "{v:#}"
    );
    assert!(
        fix_of(&v, "rpfilter.accepts").contains("lbctl rpfilter fix"),
        "{v:#}"
    );
    be.set_conf(&[("all", "rp_filter", 0), ("eth0", "rp_filter", 0)]);
    be.ip(&["rule", "del", "priority", "50"]);
    be.ip(&["route", "flush", "table", "300"]);

    // 4. A policy table without the connected route.
    be.ip(&[
        "rule", "add", "from", VIP, "lookup", "200", "priority", "60",
    ]);
    be.ip(&[
        "route",
        "add",
        "default",
        "via",
        "198.18.0.1",
        "dev",
        "eth0",
        "table",
        "200",
    ]);
    expect_only(
        &lab,
        "return.policy_table",
        "198.18.0.0/24 dev eth0 scope link table 200",
    );
    be.ip(&["rule", "del", "priority", "60"]);
    be.ip(&["route", "flush", "table", "200"]);

    // 5. Gateway neighbour FAILED: replies to an off-link client go to a gateway that does not
    //    exist (fast retransmits so the entry fails in well under a second).
    be.exec_ok(&[
        "sh",
        "-c",
        "echo 100 > /proc/sys/net/ipv4/neigh/eth0/retrans_time_ms",
    ]);
    be.ip(&["route", "replace", "default", "via", "198.18.0.254"]);
    be.exec(&["ping", "-c", "1", "-W", "1", "-I", VIP, "192.0.2.99"]);
    for _ in 0..30 {
        if be.ip(&["neigh", "show", "198.18.0.254"]).contains("FAILED") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = lb.run(&[
        "--json",
        "doctor",
        "--vip",
        &format!("{VIP}:80"),
        "--client",
        "192.0.2.99",
    ]);
    out.expect_code(1);
    let v = out.json();
    assert_eq!(failed(&v), vec!["return.neighbour".to_string()], "{v:#}");
    be.ip(&["route", "replace", "default", "via", "198.18.0.1"]);

    // 6. No listener.
    let (code, _) = doctor(&lab, 0);
    assert_eq!(code, 0, "healthy again before stopping the server");
    let out = lb.run(&[
        "--json",
        "doctor",
        "--vip",
        &format!("{VIP}:8080"),
        "--client",
        "198.18.0.10",
    ]);
    out.expect_code(1);
    assert_eq!(failed(&out.json()), vec!["listener".to_string()]);

    // 7. `ct state invalid drop` in the firewall: a warning with the fix, not a failure.
    be.nft(
        "table inet fw {\n chain input {\n type filter hook input priority 0; policy accept;\n ct state invalid drop\n }\n}",
    );
    let (code, v) = doctor(&lab, 0);
    assert_eq!(code, 0, "{v:#}");
    let c = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "firewall.ct_invalid")
        .unwrap()
        .clone();
    assert_eq!(c["status"], "warn", "{c:#}");
    assert!(
        c["evidence"][0]
            .as_str()
            .unwrap()
            .contains("inet fw chain input"),
        "{c:#}"
    );
}

/// Run doctor with `--capture` in the background while the client sends requests.
fn doctor_capture(lab: &Lab, runner: &Lbctl, role: &str) -> Value {
    let dir = runner.run_dir().to_string_lossy().into_owned();
    let argv: Vec<String> = runner
        .argv(&[
            "--json",
            "doctor",
            "--role",
            role,
            "--vip",
            &format!("{VIP}:80"),
            "--capture",
            "2",
        ])
        .iter()
        .map(|s| s.to_string())
        .collect();
    let h = std::thread::spawn(move || {
        let a: Vec<&str> = argv.iter().map(String::as_str).collect();
        common::run_cmd(&a, &[("LBCTL_RUN_DIR", &dir)], None)
    });
    std::thread::sleep(std::time::Duration::from_millis(600));
    let got = requests(lab, 8);
    let out = h.join().unwrap();
    assert!(got.iter().all(|g| g.starts_with("be")), "{got:?}");
    out.json()
}

fn check<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("{id} missing in {v:#}"))
}

#[test]
fn capture_evidence_backend_and_balancer() {
    require_root!();
    require_tool!("curl");
    require_tool!("busybox");
    let lab = lab();
    // Backend: requests in with our MAC and the VIP, replies out from the VIP.
    let v = doctor_capture(&lab, &lab.be_lbctl[0], "backend");
    let req = check(&v, "capture.requests");
    assert_eq!(req["status"], "pass", "{v:#}");
    assert_eq!(check(&v, "capture.replies")["status"], "pass", "{v:#}");
    // Balancer: in with its MAC, out with a backend's MAC, no replies through it.
    let lb_runner = Lbctl::new(&lab._lb);
    let v = doctor_capture(&lab, &lb_runner, "lb");
    let fwd = check(&v, "capture.forwarding");
    assert_eq!(fwd["status"], "pass", "{v:#}");
    let ev = fwd["evidence"][0].as_str().unwrap();
    assert!(
        ev.contains("02:00:00:00:00:11") || ev.contains("02:00:00:00:00:12"),
        "{ev}"
    );
    assert_eq!(check(&v, "lb.vip")["status"], "pass", "{v:#}");
}

#[test]
fn bad_doctor_input_is_a_usage_error() {
    require_root!();
    let ns = Netns::new("docbad");
    let lb = Lbctl::new(&ns);
    for args in [
        vec!["doctor", "--vip", "198.18.0.300"],
        vec!["doctor", "--vip", "198.18.0.100:0"],
        vec!["doctor", "--client", "nope"],
        vec!["doctor", "--capture", "0"],
    ] {
        let out = lb.run(&args);
        out.expect_code(2);
    }
}
