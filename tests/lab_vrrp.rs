//! The VRRP lab (issue 17, item 4): `lbctl lab up --balancers 2 --routing vrrp` runs two
//! balancers (`lbctl lb run` with `[ha]`: keepalived, unicast peers) on the lab segment.
//! Checks: exactly one MASTER (lb1, the higher priority), which answers ARP for the VIP and
//! carries traffic; `lab break lb1 down` and, in a second lab, `lab break lb1 isolate` hand the
//! VIP to lb2 (exactly one MASTER among the reachable balancers, the client's ARP entry points
//! at lb2) and traffic still works; `lab down` leaves no namespace and no process behind.
//! Behaviour only: the waits are generous polls, never timings.

#[macro_use]
mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{run_cmd, Out, TempDir, LBCTL};
use lbctl::lab;
use serde_json::Value;

fn lab_name(tag: &str) -> String {
    format!("t{}-{tag}", std::process::id())
}

/// A private run dir; every lab recorded in it is taken down on drop (also on panic).
struct Run {
    _tmp: TempDir,
    dir: PathBuf,
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Err(e) = lab::down_all(&self.dir) {
            eprintln!("warning: cleaning up labs in {}: {e}", self.dir.display());
        }
    }
}

impl Run {
    fn new() -> Run {
        let tmp = TempDir::new("labvrrp");
        let dir = tmp.path().join("run");
        Run { _tmp: tmp, dir }
    }

    fn lbctl(&self, args: &[&str]) -> Out {
        let mut argv = vec![LBCTL];
        argv.extend_from_slice(args);
        let env = self.dir.to_string_lossy().into_owned();
        run_cmd(&argv, &[("LBCTL_RUN_DIR", &env)], None)
    }

    fn status(&self, name: &str) -> Value {
        let out = self.lbctl(&["--json", "lab", "status", "--name", name]);
        let v: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("lab status --json: {e}\n{out}"));
        v["labs"][0].clone()
    }

    /// `lab traffic --json`: every request answered, and the client's ARP entry's owner.
    fn traffic(&self, name: &str) -> (bool, String, Value) {
        let out = self.lbctl(&["--json", "lab", "traffic", "--name", name]);
        let v: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("lab traffic --json: {e}\n{out}"));
        let owner = v["traffic"]["vip_owner"].as_str().unwrap_or("").to_string();
        (out.code == 0 && v["ok"] == true, owner, v)
    }
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

fn namespaces_of(name: &str) -> Vec<String> {
    let prefix = format!("lbl-{name}-");
    lbctl::sys::netns::list()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

/// Live processes (not zombies) whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rfind(')')
                    .and_then(|i| s[i + 1..].split_whitespace().next().map(str::to_string))
            })
            .is_some_and(|st| st == "Z");
        if cmd.contains(needle) && !zombie {
            out.push((pid, cmd));
        }
    }
    out
}

/// No namespace, no record and (after a generous wait) no process of lab `name`.
#[track_caller]
fn assert_gone(run: &Run, name: &str) {
    assert!(namespaces_of(name).is_empty(), "{:?}", namespaces_of(name));
    assert!(!lab::state::lab_dir(&run.dir, name).exists());
    let needle = run.dir.to_string_lossy().into_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = processes_mentioning(&needle);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        left = processes_mentioning(&needle);
    }
    assert!(left.is_empty(), "left running: {left:?}");
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
    let run = Run::new();
    let name = lab_name(fault);
    let out = up(&run, &name);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("lb1 MASTER, lb2 BACKUP"), "{out}");
    assert_eq!(namespaces_of(&name).len(), 6, "sw client lb1 lb2 be1 be2");

    let st = run.status(&name);
    assert_eq!(st["routing"], "vrrp", "{st:#}");
    assert_eq!(masters(&st), ["lb1"], "{st:#}");
    let (ok, owner, t) = run.traffic(&name);
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
    let mut st = run.status(&name);
    while masters(&st) != ["lb2"] && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        st = run.status(&name);
    }
    assert_eq!(masters(&st), ["lb2"], "{st:#}");
    assert_eq!(
        st["healthy"], false,
        "a broken balancer is a problem: {st:#}"
    );

    let (ok, owner, t) = run.traffic(&name);
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
    let run = Run::new();
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
