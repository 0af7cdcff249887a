//! Issue 14, item 2: the segment-wide ARP/ND audit and the real ARP probe of `--balancer`.
//!
//! Topology (all in namespaces this test creates): a switch namespace with a bridge, and three
//! hosts on it — `lb` (198.18.0.2/24, holds the VIP 198.18.0.100/32 on eth0), `h1`
//! (198.18.0.11/24, wrongly holds the VIP on its NIC as well) and `h2` (198.18.0.12/24, the
//! VIP on lo with arp_ignore=0: a backend without ARP suppression). Everything the audit sends
//! stays on this bridge.

#[macro_use]
mod common;

use common::*;
use serde_json::Value;

const LB_MAC: &str = "02:00:00:00:00:02";
const H1_MAC: &str = "02:00:00:00:00:11";
const H2_MAC: &str = "02:00:00:00:00:12";
const VIP: &str = "198.18.0.100";
const VIP6: &str = "2001:db8::100";

struct Seg {
    lb: Netns,
    h1: Netns,
    h2: Netns,
    _sw: Netns,
}

fn segment(tag: &str) -> Seg {
    let sw = Netns::new(&format!("{tag}-sw"));
    sw.ip(&["link", "add", "br0", "type", "bridge"]);
    sw.up("br0");
    let host = |name: &str, mac: &str, last: u8| {
        let ns = Netns::new(&format!("{tag}-{name}"));
        let port = format!("p-{name}");
        veth(&sw, &port, &ns, "eth0");
        sw.ip(&["link", "set", &port, "master", "br0"]);
        sw.up(&port);
        ns.set_mac("eth0", mac);
        ns.add_addr("eth0", &format!("198.18.0.{last}/24"));
        ns.add_addr("eth0", &format!("2001:db8::{last}/64"));
        ns.up("eth0");
        ns
    };
    let lb = host("lb", LB_MAC, 2);
    let h1 = host("h1", H1_MAC, 11);
    let h2 = host("h2", H2_MAC, 12);
    lb.add_addr("eth0", &format!("{VIP}/32"));
    h1.add_addr("eth0", &format!("{VIP}/32"));
    h1.ip(&[
        "addr",
        "add",
        &format!("{VIP6}/128"),
        "dev",
        "eth0",
        "nodad",
    ]);
    h2.add_addr("lo", &format!("{VIP}/32"));
    for ns in [&lb, &h1, &h2] {
        ns.settle();
    }
    Seg {
        lb,
        h1,
        h2,
        _sw: sw,
    }
}

fn macs(v: &Value) -> Vec<String> {
    let mut m: Vec<String> = v["answers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["mac"].as_str().unwrap().to_string())
        .collect();
    m.sort();
    m
}

fn check<'a>(v: &'a Value, id: &str) -> Vec<&'a Value> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["id"] == id)
        .collect()
}

#[test]
fn who_has_lists_every_mac_and_doctor_names_the_intruders() {
    require_root!();
    let s = segment("aud");
    let lb = Lbctl::new(&s.lb);
    // who-has from the balancer: both intruders answer; this host is listed as local.
    let out = lb.run(&["--json", "arp", "who-has", VIP, "--timeout", "400"]);
    out.expect_code(1);
    let v = out.json();
    assert_eq!(macs(&v), [H1_MAC, H2_MAC], "{v:#}");
    assert_eq!(v["local"]["mac"], LB_MAC, "{v:#}");
    assert_eq!(
        v["from"]["ip"], "198.18.0.2",
        "sender is the interface's own address"
    );
    assert_eq!(v["claimants"], 3);
    // IPv6: a neighbour solicitation to the solicited-node group; only h1 has it on a NIC.
    let v = lb
        .run(&[
            "--json",
            "arp",
            "who-has",
            VIP6,
            "--iface",
            "eth0",
            "--timeout",
            "400",
        ])
        .json();
    assert_eq!(macs(&v), [H1_MAC], "{v:#}");
    // A host that exists: one claimant, exit 0.
    let out = lb.run(&[
        "--json",
        "arp",
        "who-has",
        "198.18.0.12",
        "--timeout",
        "300",
    ]);
    out.expect_code(0);
    assert_eq!(macs(&out.json()), [H2_MAC]);

    // doctor --role lb: one ✗ for the VIP, naming both MACs.
    let out = lb.run(&["--json", "doctor", "--role", "lb", "--vip", VIP]);
    out.expect_code(1);
    let v = out.json();
    let a = check(&v, "lb.arp_audit");
    assert_eq!(a.len(), 1, "{v:#}");
    assert_eq!(a[0]["status"], "fail", "{v:#}");
    let ev = a[0]["evidence"].to_string();
    assert!(ev.contains(H1_MAC) && ev.contains(H2_MAC), "{ev}");
    assert!(!ev.contains(&format!("{LB_MAC} answers")), "{ev}");

    // Fix the intruders: h1 drops the VIP from its NIC, h2 suppresses ARP for it.
    s.h1.ip(&["addr", "del", &format!("{VIP}/32"), "dev", "eth0"]);
    Lbctl::new(&s.h2).ok(&["arp", "suppress", VIP, "--real-ip", "198.18.0.12"]);
    let v = lb
        .run(&["--json", "doctor", "--role", "lb", "--vip", VIP])
        .json();
    let a = check(&v, "lb.arp_audit");
    assert_eq!(a[0]["status"], "pass", "{v:#}");
}

#[test]
fn balancer_probe_is_a_real_arp_probe() {
    require_root!();
    let s = segment("bal");
    let be = Lbctl::new(&s.h2);
    let doctor = |balancer: &str| {
        let out = be.run(&[
            "--json",
            "doctor",
            "--vip",
            &format!("{VIP}:80"),
            "--balancer",
            balancer,
        ]);
        out.json()
    };
    // 198.18.0.77 is on the connected /24, but no host has it: the route alone said "ok".
    let v = doctor("198.18.0.77");
    let c = check(&v, "l2.balancer_arp");
    assert_eq!(c.len(), 1, "{v:#}");
    assert_eq!(c[0]["status"], "fail", "{v:#}");
    assert!(c[0]["fix"]
        .as_str()
        .unwrap()
        .contains("who-has 198.18.0.77"));
    assert!(
        check(&v, "l2.balancer_vip").is_empty(),
        "no VIP verdict without a balancer"
    );
    // The real balancer answers, and so does the VIP (lb and h1 both claim it; the balancer
    // is among them, or the first answer was h1's: a warning, never a pass of someone else).
    let v = doctor("198.18.0.2");
    let c = check(&v, "l2.balancer_arp");
    assert_eq!(c[0]["status"], "pass", "{v:#}");
    assert!(c[0]["evidence"].to_string().contains(LB_MAC));
    let c = check(&v, "l2.balancer_vip");
    assert_eq!(c.len(), 1, "{v:#}");
    assert_ne!(c[0]["status"], "fail", "{v:#}");
    // Nobody holds the VIP any more: ✗ with the fix naming the balancer.
    s.lb.ip(&["addr", "del", &format!("{VIP}/32"), "dev", "eth0"]);
    s.h1.ip(&["addr", "del", &format!("{VIP}/32"), "dev", "eth0"]);
    let v = doctor("198.18.0.2");
    let c = check(&v, "l2.balancer_vip");
    assert_eq!(c[0]["status"], "fail", "{v:#}");
    assert!(c[0]["fix"].as_str().unwrap().contains("198.18.0.2"));
}
