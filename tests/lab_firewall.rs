//! The lab faults `firewall-drop` and `fib-rpfilter` (issue 14, item 6): each gives exactly one ✗
//! (`firewall.request`) in the broken backend's doctor run, the fix doctor prints works when
//! pasted into a shell, and real traffic through the balancer agrees before and after.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::{run_ok, TestLab};
use lbctl::lab::{Fault, LabGuard};
use serde_json::Value;

fn lab(tag: &str) -> TestLab {
    common::test_lab(tag)
}

fn failed(v: &Value) -> Vec<String> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

/// (answers per backend, failures) for `n` requests through the balancer.
fn traffic(lab: &LabGuard, n: usize) -> (Vec<String>, usize) {
    let t = lab
        .traffic(n, lbctl::lab::VIP4.into())
        .unwrap_or_else(|e| panic!("traffic: {e}"));
    let served = t
        .per_backend
        .iter()
        .filter(|(_, k)| **k > 0)
        .map(|(b, _)| b.clone())
        .collect();
    (served, t.failures.len())
}

/// Wait (up to 15 s) until every request succeeds and both backends serve.
fn until_both_serve(lab: &LabGuard) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (served, failures) = traffic(lab, 12);
        if failures == 0 && served.len() == 2 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after the fix: served by {served:?}, {failures} failures"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Break be1, check doctor's single ✗ and its fix, paste it, check doctor and traffic.
fn fault_round_trip(fault: Fault, traffic_fails: bool) {
    let t = lab(&fault.name()[..3]);
    let lab = &t.lab;
    until_both_serve(lab);
    lab.inject("be1", fault).unwrap();
    let (code, v) = lab.doctor("be1").unwrap();
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(failed(&v), vec!["firewall.request".to_string()], "{v:#}");
    let check = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "firewall.request")
        .unwrap()
        .clone();
    let fix = check["fix"].as_str().unwrap().to_string();
    let ns = lab.ns("be1").unwrap();
    assert!(
        fix.starts_with(&format!("ip netns exec {ns} nft insert rule inet ")),
        "{fix}"
    );
    assert!(check["evidence"].to_string().contains("drop"), "{check:#}");
    let (code, v) = lab.doctor("be2").unwrap();
    assert_eq!(code, 0, "be2 is untouched: {v:#}");
    if traffic_fails {
        // The balancer still sends be1 its share, which the firewall drops.
        let (_, failures) = traffic(lab, 12);
        assert!(failures > 0, "the fault must break real requests");
    }
    run_ok(&["sh", "-c", &fix]);
    let (code, v) = lab.doctor("be1").unwrap();
    assert_eq!(code, 0, "after pasting {fix}: {v:#}");
    until_both_serve(lab);
}

#[test]
fn firewall_drop_fault_is_found_and_fixed() {
    require_root!();
    // The balancer's DSR probe of VIP:80 through be1's MAC fails too, so be1 is taken out of
    // service (no client request fails) until the fix brings it back.
    fault_round_trip(Fault::FirewallDrop, false);
}

#[test]
fn fib_rpfilter_fault_is_found_and_fixed() {
    require_root!();
    // Probes come from the balancer, whose route back is eth0: they pass, be1 stays in service,
    // and the clients' requests to it are dropped.
    fault_round_trip(Fault::FibRpfilter, true);
}
