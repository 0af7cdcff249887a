//! The VRRP lab (issue 17, item 4): `lbctl lab up --balancers 2 --routing vrrp` runs two
//! balancers (`lbctl lb run` with `[ha]`: keepalived, unicast peers) on the lab segment.
//! Checks: exactly one MASTER (lb1, the higher priority), which answers ARP for the VIP and
//! carries traffic; `lab break lb1 down` and, in a second lab, `lab break lb1 isolate` hand the
//! VIP to lb2 (exactly one MASTER among the reachable balancers, the client's ARP entry points
//! at lb2) and traffic still works; `lab down` leaves no namespace and no process behind.
//! Behaviour only: the waits are generous polls, never timings.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::labrun::{assert_gone, lab_name, namespaces_of, Run};
use common::Out;
use serde_json::Value;

/// `lab traffic --json`: every request answered, and the client's ARP entry's owner.
fn traffic(run: &Run, name: &str) -> (bool, String, Value) {
    let out = run.lbctl(&["--json", "lab", "traffic", "--name", name]);
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("lab traffic --json: {e}\n{out}"));
    let owner = v["traffic"]["vip_owner"].as_str().unwrap_or("").to_string();
    (out.code == 0 && v["ok"] == true, owner, v)
}

fn masters(status: &Value) -> Vec<String> {
    status["vrrp"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["role"] == "MASTER")
        .map(|r| r["node"].as_str().unwrap().to_string())
        .collect()
}

fn up(run: &Run, name: &str) -> Out {
    run.lbctl(&[
        "lab",
        "up",
        "--name",
        name,
        "--balancers",
        "2",
        "--routing",
        "vrrp",
    ])
}

/// Up, traffic through lb1 (the MASTER), `break lb1 FAULT`, then lb2 owns the VIP and traffic
/// works; then `lab down` leaves nothing.
fn takeover(fault: &str) {
    let run = Run::new("labvrrp");
    let name = lab_name(fault);
    let out = up(&run, &name);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("lb1 MASTER, lb2 BACKUP"), "{out}");
    assert_eq!(namespaces_of(&name).len(), 6, "sw client lb1 lb2 be1 be2");

    let st = run.status(&name).1;
    assert_eq!(st["routing"], "vrrp", "{st:#}");
    assert_eq!(masters(&st), ["lb1"], "{st:#}");
    let (ok, owner, t) = traffic(&run, &name);
    assert!(ok, "{t:#}");
    assert_eq!(owner, "lb1", "the MASTER answers ARP for the VIP: {t:#}");
    assert_eq!(
        t["traffic"]["per_backend"].as_object().map(|m| m.len()),
        Some(2),
        "both backends answer: {t:#}"
    );

    let out = run.lbctl(&["lab", "break", "--name", &name, "lb1", fault]);
    assert_eq!(out.code, 0, "{out}");

    // Exactly one MASTER among the balancers still reachable: lb2 (an isolated lb1 reports
    // FAULT; a killed one has no status).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut st = run.status(&name).1;
    while masters(&st) != ["lb2"] && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        st = run.status(&name).1;
    }
    assert_eq!(masters(&st), ["lb2"], "{st:#}");
    assert_eq!(
        st["healthy"], false,
        "a broken balancer is a problem: {st:#}"
    );

    let (ok, owner, t) = traffic(&run, &name);
    assert!(ok, "traffic after the takeover: {t:#}");
    assert_eq!(owner, "lb2", "{t:#}");

    let out = run.lbctl(&["lab", "down", "--name", &name]);
    assert_eq!(out.code, 0, "{out}");
    assert_gone(&run, &name);
}

#[test]
fn master_down_hands_the_vip_to_the_backup() {
    require_root!();
    require_tool!("keepalived");
    takeover("down");
}

#[test]
fn isolated_master_loses_the_vip_to_the_backup() {
    require_root!();
    require_tool!("keepalived");
    takeover("isolate");
}

#[test]
fn vrrp_lab_refuses_what_it_cannot_do() {
    let run = Run::new("labvrrp");
    let out = run.lbctl(&[
        "lab",
        "up",
        "--name",
        "x",
        "--balancers",
        "2",
        "--routing",
        "vrrp",
        "--ipv6",
    ]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("--ipv6"), "{out}");
}
