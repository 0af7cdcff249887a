//! `lbctl lab` end to end (issue 7), in real namespaces: the demo through the CLI (also when
//! interrupted), every `lab break` fault found by doctor, two labs side by side, `down --all`
//! after a SIGKILLed `up`, bad input, the profile path, and the library API the other tests use.
//!
//! Every lab name carries this test process's PID and every test has its own `LBCTL_RUN_DIR`, so
//! these tests run in parallel with each other and with the rest of the suite. Besides exit
//! codes, each test checks what is left on the machine: `lbl-<name>-*` namespaces (through
//! /run/netns) and processes whose command line names the lab.

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::labrun::{assert_gone, lab_name, namespaces_of, Run};
use common::{run_cmd_timeout, TempDir, LBCTL};
use lbctl::lab::{self, Fault, Lab};
use serde_json::Value;

/// The ids of failed doctor checks.
fn failed(v: &Value) -> Vec<String> {
    v["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Kill a child we started (by its handle) and reap it.
fn kill_child(child: &mut Child, sig: i32) -> i32 {
    // SAFETY: signalling our own, not yet reaped child.
    unsafe { libc::kill(child.id() as i32, sig) };
    let status = child.wait().expect("wait");
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Wait (bounded) until `cond` holds.
#[track_caller]
fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn spawn_lbctl(run: &Run, args: &[&str], env: &[(&str, &str)]) -> Child {
    Command::new(LBCTL)
        .args(args)
        .env("LBCTL_RUN_DIR", run.env())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lbctl")
}

fn read_state(run: &Run, name: &str) -> Option<Value> {
    let text =
        std::fs::read_to_string(lab::state::lab_dir(&run.dir, name).join("state.json")).ok()?;
    serde_json::from_str(&text).ok()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn demo_passes_and_leaves_nothing_behind() {
    require_root!();
    let run = Run::new("labrun");
    let name = lab_name("demo");
    let started = Instant::now();
    let out = run.lbctl(&["lab", "demo", "--name", &name]);
    out.expect_ok();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "demo took {:?}",
        started.elapsed()
    );
    assert!(out.stdout.contains("PASS DSR works"), "{out}");
    // Piped: no colour codes.
    assert!(
        !out.stdout.contains('\x1b'),
        "colour codes in piped output\n{out}"
    );
    assert_gone(&run, &name);

    // The JSON form says the same, with the numbers.
    let out = run.lbctl(&["--json", "lab", "demo", "--name", &name, "--requests", "40"]);
    out.expect_ok();
    let v = out.json();
    assert_eq!(v["ok"], true, "{v:#}");
    let per = v["traffic"]["per_backend"].as_object().unwrap();
    assert!(
        per["be1"].as_u64().unwrap() > 0 && per["be2"].as_u64().unwrap() > 0,
        "{v:#}"
    );
    assert_eq!(
        per.values().map(|n| n.as_u64().unwrap()).sum::<u64>(),
        40,
        "{v:#}"
    );
    let sw = &v["traffic"]["switch"];
    assert!(sw["replies"]["packets"].as_u64().unwrap() > 0, "{v:#}");
    assert_eq!(sw["replies_via_lb"]["packets"], 0, "{v:#}");
    assert!(
        sw["requests_to_lb"]["packets"].as_u64().unwrap() > 0,
        "{v:#}"
    );
    // Replies bypassed the balancer: it received what the client sent, not what it received.
    let lb_rx = v["traffic"]["balancer_eth0"]["rx_bytes"].as_u64().unwrap();
    let client_tx = v["traffic"]["client_eth0"]["tx_bytes"].as_u64().unwrap();
    let client_rx = v["traffic"]["client_eth0"]["rx_bytes"].as_u64().unwrap();
    assert!(
        lb_rx < client_tx + client_rx / 2,
        "lb rx {lb_rx}, client tx {client_tx} rx {client_rx}"
    );
    assert_eq!(v["traffic"]["vip_mac_node"], "lb", "{v:#}");
    assert_eq!(v["doctor"]["exit"], 0, "{v:#}");
    assert_eq!(v["down"]["deleted"].as_array().unwrap().len(), 5, "{v:#}");
    assert_gone(&run, &name);
}

#[test]
fn interrupted_demo_and_up_clean_up_and_exit_130() {
    require_root!();
    let run = Run::new("labrun");
    // Ctrl-C (SIGINT) while the demo sends its requests.
    let name = lab_name("intr");
    let mut child = spawn_lbctl(
        &run,
        &["lab", "demo", "--name", &name, "--requests", "10000"],
        &[],
    );
    wait_for("the demo lab to be up", 30, || {
        read_state(&run, &name).is_some_and(|s| s["phase"] == "up")
    });
    std::thread::sleep(Duration::from_millis(200));
    let code = kill_child(&mut child, libc::SIGINT);
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(code, 130, "stderr: {err}");
    assert!(err.contains("interrupted"), "{err}");
    assert_gone(&run, &name);

    // SIGTERM while `lab up` is between steps (stalled after starting the servers).
    let name = lab_name("term");
    let mut child = spawn_lbctl(
        &run,
        &["lab", "up", "--name", &name],
        &[(lab::STALL_ENV, "servers")],
    );
    wait_for("the servers to be recorded", 30, || {
        read_state(&run, &name)
            .is_some_and(|s| s["processes"].as_array().is_some_and(|p| p.len() == 2))
    });
    assert_eq!(namespaces_of(&name).len(), 5);
    let code = kill_child(&mut child, libc::SIGTERM);
    assert_eq!(code, 130);
    assert_gone(&run, &name);
}

#[test]
fn each_fault_is_reported_by_doctor() {
    require_root!();
    let run = Run::new("labrun");
    for fault in Fault::ALL {
        let name = lab_name(&format!("f{}", fault as u8));
        // With the balancer: a backend's doctor asks the segment who holds the VIP.
        let spec = run.spec(&name);
        let lab = Lab::up(&spec).unwrap().guard();
        let (code, v) = lab.doctor("be1").unwrap();
        assert_eq!(code, 0, "{fault:?}: healthy before the fault\n{v:#}");
        let out = run.lbctl(&["lab", "break", "--name", &name, "be1", fault.name()]);
        out.expect_ok();
        assert!(out.stdout.contains(fault.check_id()), "{out}");
        let (code, v) = lab.doctor("be1").unwrap();
        assert_eq!(code, 1, "{fault:?}\n{v:#}");
        assert!(
            failed(&v).contains(&fault.check_id().to_string()),
            "{fault:?}: expected {} among {:?}",
            fault.check_id(),
            failed(&v)
        );
        // Only be1 is broken (no-balancer takes the balancer away from every backend).
        let (code, v) = lab.doctor("be2").unwrap();
        if fault == Fault::NoBalancer {
            assert_eq!(failed(&v), [fault.check_id()], "{v:#}");
        } else {
            assert_eq!(code, 0, "{fault:?}: be2 must be untouched\n{v:#}");
        }
        // The record knows; a second injection of the same fault is refused.
        let st = run
            .lbctl(&["--json", "lab", "status", "--name", &name])
            .json();
        assert_eq!(st["labs"][0]["faults"][0]["fault"], fault.name());
        run.lbctl(&["lab", "break", "--name", &name, "be1", fault.name()])
            .expect_code(2);
        lab.down().unwrap();
        assert_gone(&run, &name);
    }
}

#[test]
fn arp_flux_steals_traffic_from_the_balancer() {
    require_root!();
    let run = Run::new("labrun");
    let name = lab_name("flux");
    let out = run.lbctl(&["lab", "up", "--name", &name]);
    out.expect_ok();
    let lab = Lab::load(&run.dir, &name).unwrap().guard();
    let t = run.lbctl(&[
        "--json",
        "lab",
        "traffic",
        "--name",
        &name,
        "--requests",
        "20",
    ]);
    t.expect_ok();
    assert_eq!(t.json()["dsr"], true, "{t}");
    lab.inject("be1", Fault::ArpFlux).unwrap();
    // be1 now answers ARP for the VIP too; whoever answers first gets the client's traffic.
    // Ask until be1 wins (it usually does at once: the balancer answers from user space).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = run.lbctl(&[
            "--json",
            "lab",
            "traffic",
            "--name",
            &name,
            "--requests",
            "5",
        ]);
        let v = out.json();
        if v["traffic"]["vip_mac_node"] == "be1" {
            assert_eq!(out.code, 1, "{out}");
            assert_eq!(v["dsr"], false);
            assert_eq!(
                v["traffic"]["switch"]["requests_to_lb"]["packets"], 0,
                "{v:#}"
            );
            assert_eq!(v["traffic"]["per_backend"]["be1"], 5, "{v:#}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the client never resolved the VIP to be1: {v:#}"
        );
        lab.exec("client", &["ip", "neigh", "flush", "to", "198.18.0.100"])
            .unwrap();
    }
    lab.down().unwrap();
    assert_gone(&run, &name);
}

#[test]
fn two_labs_coexist_and_down_removes_only_one() {
    require_root!();
    let run = Run::new("labrun");
    let a = lab_name("a");
    let b = lab_name("b");
    run.lbctl(&["lab", "up", "--name", &a]).expect_ok();
    run.lbctl(&["lab", "up", "--name", &b, "--backends", "3"])
        .expect_ok();
    assert_eq!(namespaces_of(&a).len(), 5);
    assert_eq!(namespaces_of(&b).len(), 6);
    for (name, n) in [(&a, 2), (&b, 3)] {
        let out = run.lbctl(&[
            "--json",
            "lab",
            "traffic",
            "--name",
            name,
            "--requests",
            "30",
        ]);
        out.expect_ok();
        let v = out.json();
        let per = v["traffic"]["per_backend"].as_object().unwrap();
        assert_eq!(per.len(), n, "{name}: every backend serves\n{v:#}");
    }
    let all = run.lbctl(&["--json", "lab", "status"]);
    all.expect_ok();
    let names: BTreeSet<String> = all.json()["labs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, BTreeSet::from([a.clone(), b.clone()]));

    run.lbctl(&["lab", "down", "--name", &a]).expect_ok();
    assert_gone(&run, &a);
    // b is intact and still serves through its balancer.
    assert_eq!(namespaces_of(&b).len(), 6);
    run.lbctl(&["lab", "status", "--name", &b]).expect_ok();
    let out = run.lbctl(&["--json", "lab", "traffic", "--name", &b, "--requests", "10"]);
    out.expect_ok();
    assert_eq!(out.json()["dsr"], true, "{out}");
    // down is idempotent.
    let again = run.lbctl(&["lab", "down", "--name", &a]);
    again.expect_ok();
    assert!(again.stdout.contains("nothing to do"), "{again}");
    run.lbctl(&["lab", "down", "--name", &b]).expect_ok();
    assert_gone(&run, &b);
}

/// A namespace and a process that look like they belong to a lab but are not recorded.
struct Decoy {
    ns: String,
    child: Child,
}

impl Drop for Decoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = lbctl::sys::netns::del(&self.ns);
    }
}

#[test]
fn down_all_after_killed_up_removes_exactly_the_record() {
    require_root!();
    for stall in ["namespaces", "servers"] {
        let run = Run::new("labrun");
        let name = lab_name(&format!("k{}", &stall[..1]));
        // Same prefix, not recorded: must survive.
        let decoy_ns = format!("lbl-{name}-be9");
        lbctl::sys::netns::add(&decoy_ns).unwrap();
        let child = lbctl::sys::netns::command(&decoy_ns, &["sleep", "60"])
            .unwrap()
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let decoy = Decoy {
            ns: decoy_ns,
            child,
        };

        let mut up = spawn_lbctl(
            &run,
            &["lab", "up", "--name", &name],
            &[(lab::STALL_ENV, stall)],
        );
        let want_procs = if stall == "servers" { 2 } else { 0 };
        // Recorded processes are released only after being recorded; wait until they have
        // become the servers (a recorded child whose parent dies first never runs at all).
        let serving = |s: &Value| {
            s["processes"].as_array().is_some_and(|ps| {
                ps.iter().all(|p| {
                    std::fs::read(format!("/proc/{}/cmdline", p["pid"]))
                        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("serve"))
                })
            })
        };
        wait_for("lab up to reach the stall point", 30, || {
            read_state(&run, &name).is_some_and(|s| {
                s["namespaces"]
                    .as_array()
                    .is_some_and(|n| n.len() == 5 && n.iter().all(|x| x["inode"].is_u64()))
                    && s["processes"].as_array().map_or(0, Vec::len) == want_procs
                    && serving(&s)
            })
        });
        assert_eq!(kill_child(&mut up, libc::SIGKILL), 128 + libc::SIGKILL);
        // The killed up left everything behind, recorded.
        let st = read_state(&run, &name).unwrap();
        assert_eq!(st["phase"], "creating");
        assert_eq!(namespaces_of(&name).len(), 6, "5 recorded + the decoy");
        let pids: Vec<(u32, u64)> = st["processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["pid"].as_u64().unwrap() as u32,
                    p["start_time"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(pids.len(), want_procs);
        assert!(pids.iter().all(|(p, s)| lab::process::is_alive(*p, *s)));
        let status = run.lbctl(&["lab", "status"]);
        status.expect_code(1);
        assert!(status.stdout.contains("incomplete"), "{status}");

        let out = run.lbctl(&["lab", "down", "--all"]);
        out.expect_ok();
        assert!(!run.has_record(&name));
        assert_eq!(
            namespaces_of(&name),
            vec![decoy.ns.clone()],
            "only the decoy is left"
        );
        assert!(pids.iter().all(|(p, s)| !lab::process::is_alive(*p, *s)));
        let decoy_pid = decoy.child.id();
        assert!(
            Path::new(&format!("/proc/{decoy_pid}")).exists(),
            "the decoy process must survive"
        );
        assert_eq!(lbctl::sys::netns::pids(&decoy.ns), vec![decoy_pid]);
        // Nothing left to do.
        let again = run.lbctl(&["lab", "down", "--all"]);
        again.expect_ok();
        assert!(again.stdout.contains("nothing to do"), "{again}");
        drop(decoy);
    }
}

#[test]
fn bad_input_is_a_usage_error_and_creates_nothing() {
    require_root!();
    let run = Run::new("labrun");
    let name = lab_name("bad");
    let long = "a".repeat(lab::topology::MAX_NAME_LEN + 1);
    let cases: Vec<Vec<&str>> = vec![
        vec!["lab", "up", "--name", "Bad_Name"],
        vec!["lab", "up", "--name", "-x"],
        vec!["lab", "up", "--name", &long],
        vec!["lab", "up", "--name", &name, "--backends", "0"],
        vec!["lab", "up", "--name", &name, "--backends", "10"],
        vec!["lab", "up", "--name", &name, "--backends", "-1"],
        vec!["lab", "up", "--name", &name, "--engine", "bogus"],
        vec![
            "lab",
            "up",
            "--name",
            &name,
            "--profile",
            "/nonexistent/p.toml",
        ],
        vec!["--netns", "x", "lab", "up", "--name", &name],
        vec!["lab", "demo", "--name", &name, "--requests", "0"],
        vec!["lab", "break", "--name", &name, "be1", "no-such-fault"],
        vec!["lab", "break", "--name", &name, "be1", "arp-flux"],
        vec!["lab", "exec", "--name", &name, "client", "true"],
        vec!["lab", "down", "--name", "Bad_Name"],
        vec!["lab", "serve", "--name", "has space"],
    ];
    for args in &cases {
        let out = run.lbctl(args);
        out.expect_code(2);
        assert!(!out.stderr.trim().is_empty(), "{out}");
    }
    assert!(namespaces_of(&name).is_empty());
    assert!(!run.has_record(&name));

    // Against a lab that exists: unknown node or fault changes nothing. (With the balancer:
    // doctor on a backend asks the segment who holds the VIP.)
    let spec = run.spec(&name);
    let lab = Lab::up(&spec).unwrap().guard();
    let before = std::fs::read_to_string(lab.dir().join("state.json")).unwrap();
    for args in [
        vec!["lab", "break", "--name", &name, "be7", "arp-flux"],
        vec!["lab", "break", "--name", &name, "client", "no-vip"],
        vec!["lab", "break", "--name", &name, "be1", "nope"],
        vec!["lab", "exec", "--name", &name, "nosuchnode", "true"],
    ] {
        let out = run.lbctl(&args);
        out.expect_code(2);
        if args[1] == "break" && args[5] != "nope" {
            assert!(
                out.stderr.contains("be1, be2"),
                "lists the valid nodes\n{out}"
            );
        }
    }
    assert!(
        run.lbctl(&["lab", "break", "--name", &name, "be1", "nope"])
            .stderr
            .contains("policy-table-without-link-route"),
        "lists the valid faults"
    );
    let after = std::fs::read_to_string(lab.dir().join("state.json")).unwrap();
    assert_eq!(before, after);
    let (code, _) = lab.doctor("be1").unwrap();
    assert_eq!(code, 0);
    // A second `up` with the same name is refused and leaves the first alone.
    let out = run.lbctl(&["lab", "up", "--name", &name]);
    out.expect_code(2);
    assert!(out.stderr.contains("already exists"), "{out}");
    assert_eq!(namespaces_of(&name).len(), 5);
    lab.down().unwrap();
    assert_gone(&run, &name);
}

#[test]
fn without_root_the_lab_says_so_and_exits_77() {
    require_root!();
    require_tool!("setpriv");
    let run = Run::new("labrun");
    let name = lab_name("noroot");
    let out = run_cmd_timeout(
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            LBCTL,
            "lab",
            "up",
            "--name",
            &name,
        ],
        &[("LBCTL_RUN_DIR", &run.env())],
        None,
        Duration::from_secs(30),
    );
    out.expect_code(77);
    out.expect_one_line_error();
    assert!(out.stderr.contains("sudo"), "{out}");
    assert!(namespaces_of(&name).is_empty());
    assert!(!run.has_record(&name));
}

#[test]
fn ipv6_dsr_exec_status_and_the_library_guard() {
    require_root!();
    let run = Run::new("labrun");
    let name = lab_name("v6");
    let mut spec = run.spec(&name);
    spec.ipv6 = true;
    spec.backends = 3;
    let lab = Lab::up(&spec).unwrap().guard();
    assert_eq!(lab.ns("be1").unwrap(), format!("lbl-{name}-be1"));
    assert!(lab.ns("be4").is_err());
    assert_eq!(lab.backends(), ["be1", "be2", "be3"]);

    // DSR over IPv6 through the balancer, and over IPv4 in the same lab.
    for family in [&["--ipv6"][..], &[][..]] {
        let mut args = vec![
            "--json",
            "lab",
            "traffic",
            "--name",
            &name,
            "--requests",
            "40",
        ];
        args.extend_from_slice(family);
        let out = run.lbctl(&args);
        out.expect_ok();
        let v = out.json();
        assert_eq!(v["dsr"], true, "{v:#}");
        assert_eq!(
            v["traffic"]["per_backend"].as_object().unwrap().len(),
            3,
            "{v:#}"
        );
        assert_eq!(v["traffic"]["vip_mac_node"], "lb", "{v:#}");
    }

    // exec passes the exit code through and runs in the node's namespace.
    let out = run.lbctl(&[
        "lab", "exec", "--name", &name, "be1", "--", "sh", "-c", "exit 7",
    ]);
    out.expect_code(7);
    let out = run.lbctl(&[
        "lab", "exec", "--name", &name, "be1", "ip", "-6", "-br", "addr",
    ]);
    out.expect_ok();
    assert!(out.stdout.contains("2001:db8::11/64"), "{out}");
    assert!(
        out.stdout.contains("2001:db8::100/128"),
        "the VIP6 on lo\n{out}"
    );
    let o = lab
        .exec("client", &["ip", "-br", "link", "show", "eth0"])
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("02:00:00:00:00:10"));

    // Status: every node and the server, as JSON and as text.
    let v = run
        .lbctl(&["--json", "lab", "status", "--name", &name])
        .json();
    let l = &v["labs"][0];
    assert_eq!(l["healthy"], true, "{v:#}");
    assert_eq!(l["vip"][1], "[2001:db8::100]:80");
    let nodes: Vec<&str> = l["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["sw", "client", "lb", "be1", "be2", "be3"]);
    let roles: Vec<&str> = l["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["http", "http", "http", "balancer"]);
    assert!(l["processes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["alive"] == true));

    // The IPv6 doctor view of the backend is clean, and the server answers over IPv6.
    let out = run.lbctl(&[
        "--netns",
        &lab.ns("be1").unwrap(),
        "doctor",
        "--vip",
        "[2001:db8::100]:80",
        "--client",
        "2001:db8::10",
    ]);
    out.expect_ok();
    let reply = lbctl::sys::netns::run_in(&lab.ns("client").unwrap(), || {
        lab::http::get(
            "[2001:db8::11]:80".parse().unwrap(),
            "/",
            Duration::from_secs(2),
        )
        .map(|r| r.body)
    })
    .unwrap()
    .unwrap();
    assert_eq!(reply, "be1\n");

    // A dead server makes status exit 1 (killed behind the lab's back, by its recorded PID).
    let p = lab.state().processes[0].clone();
    lab::process::terminate(p.pid, p.start_time, Duration::from_secs(2)).unwrap();
    let st = run.lbctl(&["lab", "status", "--name", &name]);
    st.expect_code(1);
    assert!(st.stdout.contains("dead"), "{st}");

    // Dropping the guard removes everything.
    drop(lab);
    assert_gone(&run, &name);
}

#[test]
fn profile_configures_the_backends() {
    require_root!();
    let run = Run::new("labrun");
    let name = lab_name("prof");
    let dir = TempDir::new("labprof");
    let profile = dir.path().join("backend.toml");
    std::fs::write(
        &profile,
        "name = \"lab-{{node}}\"\n\
         [[vip]]\naddress = \"{{vip}}\"\nports = [{{port}}]\n\
         [arp]\nmode = \"sysctl\"\n[[arp.interface]]\nname = \"{{iface}}\"\nreal_ip = \"{{rip}}\"\n\
         [rp_filter]\nmode = \"loose\"\ninterfaces = [\"{{iface}}\"]\n",
    )
    .unwrap();
    let p = profile.to_string_lossy().into_owned();
    run.lbctl(&["lab", "up", "--name", &name, "--profile", &p])
        .expect_ok();
    let lab = Lab::load(&run.dir, &name).unwrap().guard();
    // The profile's sysctl-mode ARP suppression and loose rp_filter are in place.
    let be1 = lab.ns("be1").unwrap();
    let sysctl = |key: &str| {
        let o = lab
            .exec(
                "be1",
                &["cat", &format!("/proc/sys/net/ipv4/conf/eth0/{key}")],
            )
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(sysctl("arp_ignore"), "1");
    assert_eq!(sysctl("arp_announce"), "2");
    assert_eq!(sysctl("rp_filter"), "2");
    let out = run.lbctl(&["--json", "--netns", &be1, "status"]);
    out.expect_ok();
    assert!(out.stdout.contains("profile:lab-be1"), "{out}");
    let t = run.lbctl(&[
        "--json",
        "lab",
        "traffic",
        "--name",
        &name,
        "--requests",
        "20",
    ]);
    t.expect_ok();
    // Faults on profile-configured backends.
    lab.inject("be1", Fault::ArpFlux).unwrap();
    let (code, v) = lab.doctor("be1").unwrap();
    assert_eq!(code, 1);
    assert!(failed(&v).contains(&"arp.suppressed".to_string()), "{v:#}");
    lab.inject("be2", Fault::NoVip).unwrap();
    let (code, v) = lab.doctor("be2").unwrap();
    assert_eq!(code, 1);
    assert!(failed(&v).contains(&"vip.present".to_string()), "{v:#}");

    // A template that does not render is refused before anything exists.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[vip]]\naddress = \"{{vip6}}\"\n").unwrap();
    let other = lab_name("prof2");
    let out = run.lbctl(&[
        "lab",
        "up",
        "--name",
        &other,
        "--profile",
        &bad.to_string_lossy(),
    ]);
    out.expect_code(2);
    assert!(out.stderr.contains("--ipv6"), "{out}");
    assert!(namespaces_of(&other).is_empty());

    lab.down().unwrap();
    assert_gone(&run, &name);
}

#[test]
fn own_balancer_in_a_lab_without_one_is_stopped_by_down() {
    require_root!();
    let run = Run::new("labrun");
    let name = lab_name("own");
    let mut spec = run.spec(&name);
    spec.start_balancer = false;
    let mut lab = Lab::up(&spec).unwrap().guard();
    assert!(lab.state().processes.iter().all(|p| p.role == "http"));
    // A test's own LB file and `lb run`, in the lab's balancer namespace.
    let file = lab.dir().join("mine.toml");
    std::fs::write(
        &file,
        lab::topology::lb_file("mine", lab::Engine::Nft, lab.nodes(), false),
    )
    .unwrap();
    let rec = lab
        .spawn_lbctl("lb", "mylb", &["lb", "run", "-c", &file.to_string_lossy()])
        .unwrap();
    assert!(lab::process::is_alive(rec.pid, rec.start_time));
    assert!(lab.state().processes.contains(&rec), "recorded in the lab");
    assert!(lab.spawn_lbctl("nope", "x", &["true"]).is_err());
    assert!(lab.spawn_lbctl("lb", "Bad Role", &["true"]).is_err());
    wait_for("the balancer to report both backends up", 15, || {
        lab.balancer_status().is_ok_and(|v| lab::balancer_ready(&v))
    });
    let t = lab.traffic(20, "198.18.0.100".parse().unwrap()).unwrap();
    assert!(t.failures.is_empty(), "{t:?}");
    assert!(t.replies_bypassed_balancer(), "{t:?}");
    assert_eq!(t.per_backend.values().sum::<usize>(), 20);
    let report = lab.down().unwrap();
    assert!(
        report
            .stopped
            .iter()
            .any(|s| s.starts_with(&format!("lb mylb pid {}", rec.pid))),
        "{report:?}"
    );
    assert!(!lab::process::is_alive(rec.pid, rec.start_time));
    assert_gone(&run, &name);
}

/// Issue 13: `lab status` is degraded (exit 1) when the balancer has a backend down, and names
/// it; healthy again once the backend is back.
#[test]
fn lab_status_is_degraded_while_the_balancer_has_a_backend_down() {
    require_root!();
    let run = Run::new("labrun");
    let name = lab_name("deg");
    run.lbctl(&["lab", "up", "--name", &name]).expect_ok();
    let lab = Lab::load(&run.dir, &name).unwrap().guard();
    let st = run.lbctl(&["--json", "lab", "status", "--name", &name]);
    st.expect_ok();
    let v = st.json();
    assert_eq!(v["labs"][0]["healthy"], true, "{v:#}");
    let seen = v["labs"][0]["balancer_backends"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        !seen.is_empty() && seen.iter().all(|b| b["state"] == "up"),
        "{v:#}"
    );
    run.lbctl(&["lab", "break", "--name", &name, "be1", "no-listener"])
        .expect_ok();
    let start = std::time::Instant::now();
    loop {
        let st = run.lbctl(&["lab", "status", "--name", &name]);
        if st.code == 1 && st.stdout.contains("the balancer has backend 198.18.0.11") {
            assert!(st.stdout.contains("degraded"), "{st}");
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(15),
            "lab status never degraded\n{st}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    lab.down().unwrap();
    assert_gone(&run, &name);
}
