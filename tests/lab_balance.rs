//! `lbctl lb balance` against real lab traffic (issue 18, item 4): `lab traffic --skewed` (new
//! flows spread, 1 MiB uploads all to one backend) shows a byte skew > 1.5 that the explanation
//! attributes to heavy connections; plain `lab traffic` with 2000 new connections shows < 1.1.

#[macro_use]
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TestLab;
use lbctl::lab::{LabGuard, Traffic, VIP4};
use serde_json::Value;

/// `lb balance` watches this long; the traffic starts [`SETTLE`] into it and takes a few seconds
/// (on a loaded machine more: then the window is doubled and the traffic sent again).
const WINDOW: u64 = 12;
const SETTLE: Duration = Duration::from_secs(2);

/// Wait (up to 20 s) until both backends answer every request.
fn until_both_serve(lab: &LabGuard) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let t = lab.traffic(12, VIP4.into()).unwrap();
        if t.failures.is_empty() && t.per_backend.len() == 2 {
            return;
        }
        assert!(Instant::now() < deadline, "{t:#?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Run `send` while `lbctl --json lb balance --window WINDOW` watches inside the lb node:
/// (exit code, the one service's report, what `send` returned). When the traffic did not fit
/// in the window (a loaded machine), it is sent again under a window twice as long: the
/// window must hold all of it for the figures to mean anything.
fn watch(lab: &LabGuard, send: impl Fn() -> Traffic) -> (i32, Value, Traffic) {
    for window in [WINDOW, 2 * WINDOW, 4 * WINDOW] {
        if let Some(r) = watch_for(lab, &send, window) {
            return r;
        }
        eprintln!("the traffic outlasted a {window} s window: again with a longer one");
    }
    panic!("the traffic never fit in a {} s window", 4 * WINDOW);
}

fn watch_for(
    lab: &LabGuard,
    send: &impl Fn() -> Traffic,
    window: u64,
) -> Option<(i32, Value, Traffic)> {
    let window_arg = window.to_string();
    let mut cmd: Command = lab
        .lbctl("lb", &["--json", "lb", "balance", "--window", &window_arg])
        .unwrap();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    std::thread::sleep(SETTLE);
    let t = send();
    // One second of margin for the window's own start-up.
    let fits = started.elapsed() + Duration::from_secs(1) < Duration::from_secs(window);
    let out = child.wait_with_output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "lb balance (exit {code}): {e}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let services = v["services"].as_array().unwrap();
    assert_eq!(services.len(), 1, "{v:#}");
    fits.then(|| (code, services[0].clone(), t))
}

fn skew(v: &Value, what: &str) -> f64 {
    v["skew"][what]
        .as_f64()
        .unwrap_or_else(|| panic!("no {what} skew: {v:#}"))
}

#[test]
fn skewed_traffic_shows_a_byte_skew_and_fair_traffic_none() {
    if !common::can_run_netns_tests("lab_balance") {
        return;
    }
    let t: TestLab = common::test_lab("bal");
    let lab = &t.lab;
    until_both_serve(lab);

    // Fair: every request a new connection from a new source port. Maglev spreads 2000 flows
    // within a few per cent (binomial: σ of a share = 1.1 %, so 1.1 is 4.5 σ away).
    let (code, v, tr) = watch(lab, || lab.traffic(2000, VIP4.into()).unwrap());
    assert!(
        tr.failures.is_empty(),
        "{:?}",
        &tr.failures[..3.min(tr.failures.len())]
    );
    assert_eq!(code, 0, "{v:#}");
    let flows: u64 = v["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["new_flows"].as_u64().unwrap())
        .sum();
    assert!(flows >= 1900, "the window missed the traffic: {v:#}");
    for what in ["new_flows", "bytes", "pinned_flows"] {
        assert!(skew(&v, what) < 1.1, "{what}: {v:#}");
    }

    // Skewed: 200 requests, then 9 uploads of 1 MiB from source ports be1 answered.
    let (code, v, tr) = watch(lab, || lab.traffic_skewed(200, VIP4.into()).unwrap());
    assert!(tr.failures.is_empty(), "{:?}", tr.failures);
    let s = tr.skewed.as_ref().unwrap();
    assert_eq!(s.uploads, 9, "{s:?}");
    assert_eq!(
        s.answered_by.get(&s.backend).copied(),
        Some(9),
        "every upload went to {}: {s:?}",
        s.backend
    );
    assert_eq!(code, 1, "{v:#}");
    assert!(skew(&v, "bytes") > 1.5, "{v:#}");
    assert!(skew(&v, "new_flows") < 1.5, "{v:#}");
    let why = v["explanation"].to_string();
    assert!(
        why.contains("new flows are spread by weight but bytes are not"),
        "{v:#}"
    );
    // The backend with the bytes is the one the uploads went to.
    let heavy = v["backends"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|b| b["bytes"].as_u64().unwrap())
        .unwrap()["backend"]
        .as_str()
        .unwrap()
        .to_string();
    let ip = lab.node(&s.backend).unwrap().ipv4.unwrap();
    assert_eq!(heavy, format!("{ip}:80"), "{v:#}");
}
