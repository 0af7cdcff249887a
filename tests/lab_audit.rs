//! Issue 14, items 2, 4 and 6 in a lab: `doctor --role lb` checks lbctl's own nft engine (and
//! fails when the table is flushed under a stopped daemon), the fault `arp-flux` seen from the
//! balancer gives exactly one ✗ naming the backend's node and MAC (whose fix works when
//! pasted), and the fault `no-balancer` gives exactly one ✗ in the backend's doctor.

#[macro_use]
mod common;

use common::{run_ok, TestLab, LBCTL};
use lbctl::lab::{Fault, LabGuard};
use serde_json::Value;

fn lab(tag: &str) -> TestLab {
    common::test_lab(tag)
}

/// `lbctl --json doctor --role lb` in the balancer's namespace: (exit code, report).
fn lb_doctor(lab: &LabGuard) -> (i32, Value) {
    let out = lab
        .lbctl("lb", &["--json", "doctor", "--role", "lb"])
        .unwrap()
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 1,
        "doctor --role lb: exit {code}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code, serde_json::from_slice(&out.stdout).unwrap())
}

fn with_status<'a>(v: &'a Value, status: &str) -> Vec<&'a Value> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == status)
        .collect()
}

fn ids(v: &[&Value]) -> Vec<String> {
    v.iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

/// SIGCONT on drop: a failing assertion never leaves the daemon stopped.
struct Stopped(i32);

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: kill(2) on a PID this test stopped.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

#[test]
fn lb_doctor_checks_the_nft_engine() {
    require_root!();
    let t = lab("eng");
    let lab = &t.lab;
    let (code, v) = lb_doctor(lab);
    assert_eq!(code, 0, "{v:#}");
    let engine: Vec<&Value> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["id"].as_str().unwrap().starts_with("lb.engine."))
        .collect();
    assert_eq!(
        ids(&engine),
        [
            "lb.engine.running",
            "lb.engine.vip",
            "lb.engine.table",
            "lb.engine.maps",
            "lb.engine.rewrite",
            "lb.engine.hash",
            "lb.engine.counters"
        ],
        "{v:#}"
    );
    assert!(engine.iter().all(|c| c["status"] == "pass"), "{v:#}");
    let audit = with_status(&v, "pass");
    assert!(ids(&audit).contains(&"lb.arp_audit".to_string()), "{v:#}");

    // Flush the ruleset under a stopped daemon (it would repair it within ~1 s otherwise).
    let pid = lab
        .state()
        .processes
        .iter()
        .find(|p| p.role == "balancer")
        .unwrap()
        .pid as i32;
    // SAFETY: kill(2) on the lab's own balancer, resumed by the guard.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let _resume = Stopped(pid);
    let ns = lab.ns("lb").unwrap();
    run_ok(&["ip", "netns", "exec", &ns, "nft", "flush", "ruleset"]);
    let (code, v) = lb_doctor(lab);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(ids(&with_status(&v, "fail")), ["lb.engine.table"], "{v:#}");
    drop(_resume);
}

#[test]
fn arp_flux_is_seen_from_the_balancer() {
    require_root!();
    let t = lab("flx");
    let lab = &t.lab;
    lab.inject("be1", Fault::ArpFlux).unwrap();
    let (code, v) = lb_doctor(lab);
    assert_eq!(code, 1, "{v:#}");
    let failed = with_status(&v, "fail");
    assert_eq!(ids(&failed), ["lb.arp_audit"], "{v:#}");
    let be1 = lab.node("be1").unwrap().clone();
    let ev = failed[0]["evidence"].to_string();
    assert!(ev.contains(be1.mac.as_deref().unwrap()), "{ev}");
    assert!(ev.contains("lab node be1"), "{ev}");
    assert!(!ev.contains("lab node be2"), "{ev}");
    // The fix, pasted (with the lab's run dir, as the lab's own lbctl runs use).
    let fix = failed[0]["fix"].as_str().unwrap().to_string();
    assert!(
        fix.starts_with(&format!("lbctl --netns {} arp suppress", be1.ns)),
        "{fix}"
    );
    let run_dir = lab.state().run_dir.to_string_lossy().into_owned();
    let mut argv: Vec<&str> = vec![LBCTL];
    argv.extend(fix.split_whitespace().skip(1));
    common::run_cmd(&argv, &[("LBCTL_RUN_DIR", &run_dir)], None).expect_ok();
    let (code, v) = lb_doctor(lab);
    assert_eq!(code, 0, "after {fix}: {v:#}");
}

#[test]
fn no_balancer_fails_the_backends_balancer_check() {
    require_root!();
    let t = lab("nob");
    let lab = &t.lab;
    let (code, v) = lab.doctor("be1").unwrap();
    assert_eq!(code, 0, "{v:#}");
    lab.inject("be1", Fault::NoBalancer).unwrap();
    let (code, v) = lab.doctor("be1").unwrap();
    assert_eq!(code, 1, "{v:#}");
    let failed = with_status(&v, "fail");
    assert_eq!(ids(&failed), [Fault::NoBalancer.check_id()], "{v:#}");
    assert!(failed[0]["fix"].as_str().unwrap().contains("lbctl lb run"));
    // The balancer's own address still answers: only the VIP is gone.
    assert!(with_status(&v, "pass")
        .iter()
        .any(|c| c["id"] == "l2.balancer_arp"));
}
