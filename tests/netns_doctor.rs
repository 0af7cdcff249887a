//! `lbctl doctor` against a real DSR lab in namespaces (issue 4): a switch (bridge), a client, the
//! `lbctl lb run` balancer and two backends configured by lbctl — built with `lbctl::lab`, the
//! code behind `lbctl lab up`. A healthy set-up passes (exit 0, real requests spread over both
//! backends); each classic fault, injected by hand, is reported with its own check id and fix
//! (exit 1).

#[macro_use]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Lbctl, Netns, TempDir, LBCTL};
use lbctl::lab::{LabGuard, LabSpec};
use serde_json::Value;

const VIP: &str = "198.18.0.100";

struct Lab {
    // Field order = drop order: views and runners first, then the lab, then its run dir.
    client: Netns,
    be: Vec<Netns>,
    be_lbctl: Vec<Lbctl>,
    _lb: Netns,
    lb_lbctl: Lbctl,
    lab: LabGuard,
    _run: TempDir,
}

fn lab() -> Lab {
    static N: AtomicUsize = AtomicUsize::new(0);
    let run = TempDir::new("doclab");
    let name = format!(
        "d{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let spec = LabSpec {
        run_dir: run.path().join("run"),
        ..LabSpec::new(&name, LBCTL)
    };
    // Backends: `lbctl arp suppress VIP --real-ip RIP`, `lbctl vip add VIP`, default route via
    // 198.18.0.1, an HTTP server answering its name; the balancer: `lbctl lb run`, up once its
    // health checks pass.
    let lab = lbctl::lab::Lab::up(&spec)
        .unwrap_or_else(|e| panic!("lab up: {e}"))
        .guard();
    let run_dir = spec.run_dir.clone();
    let view = |node: &str| Netns::attach(&lab.ns(node).unwrap());
    let be: Vec<Netns> = ["be1", "be2"].iter().map(|n| view(n)).collect();
    let be_lbctl = be
        .iter()
        .map(|ns| Lbctl::with_run_dir(ns, &run_dir))
        .collect();
    let lb = view("lb");
    Lab {
        client: view("client"),
        be,
        be_lbctl,
        lb_lbctl: Lbctl::with_run_dir(&lb, &run_dir),
        _lb: lb,
        lab,
        _run: run,
    }
}

/// Requests from the client through the balancer, each on a new connection; returns the
/// backends that answered (a failed request as `FAIL: why`).
fn requests(lab: &Lab, n: usize) -> Vec<String> {
    let t = lab
        .lab
        .traffic(n, VIP.parse().unwrap())
        .unwrap_or_else(|e| panic!("requests: {e}"));
    let mut got: Vec<String> = t
        .per_backend
        .iter()
        .flat_map(|(be, k)| std::iter::repeat_n(be.clone(), *k))
        .collect();
    got.extend(t.failures.iter().map(|f| format!("FAIL: {f}")));
    got
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

/// A fix as printed for `--netns NS` (`lbctl --netns NS …`, `ip netns exec NS …`), with the
/// namespace part taken out so the tests can compare the command itself.
fn without_netns(fix: &str) -> String {
    let words: Vec<&str> = fix.split(' ').collect();
    match words.as_slice() {
        ["lbctl", "--netns", _, rest @ ..] => format!("lbctl {}", rest.join(" ")),
        ["ip", "netns", "exec", _, rest @ ..] => rest.join(" "),
        _ => fix.to_string(),
    }
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
    // Pasted from outside, a fix must act inside the backend's namespace (issue 12).
    assert!(
        fix.starts_with(&format!("lbctl --netns {} ", lab.be[0].name()))
            || fix.starts_with(&format!("ip netns exec {} ", lab.be[0].name())),
        "fix for {id} does not name the namespace: {fix:?}"
    );
    let fix = without_netns(&fix);
    assert!(fix.contains(fix_contains), "fix for {id}: {fix:?}");
}

#[test]
fn healthy_lab_passes_and_serves_from_both_backends() {
    require_root!();
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
        without_netns(&fix_of(&v, "rpfilter.accepts")).contains("lbctl rpfilter fix"),
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
    let lab = lab();
    // Backend: requests in with our MAC and the VIP, replies out from the VIP.
    let v = doctor_capture(&lab, &lab.be_lbctl[0], "backend");
    let req = check(&v, "capture.requests");
    assert_eq!(req["status"], "pass", "{v:#}");
    assert_eq!(check(&v, "capture.replies")["status"], "pass", "{v:#}");
    // Balancer: in with its MAC, out with a backend's MAC, no replies through it.
    let v = doctor_capture(&lab, &lab.lb_lbctl, "lb");
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

/// Issue 13: doctor without CAP_NET_ADMIN cannot read `table arp lbctl`; it must say "could not
/// check" for ARP suppression (status `unknown`), never a false ✗ "ARP not suppressed".
#[test]
fn unprivileged_doctor_says_could_not_check_instead_of_a_false_failure() {
    require_root!();
    require_tool!("setpriv");
    if !common::run_cmd(&["getent", "passwd", "65534"], &[], None).success() {
        common::skip_or_panic(test_name!(), "needs a uid 65534 account");
        return;
    }
    let lab = lab();
    let (code, v) = doctor(&lab, 0);
    assert_eq!(code, 0, "as root the backend is healthy\n{v:#}");
    let out = lab.be[0].exec(&[
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
        LBCTL,
        "--json",
        "doctor",
        "--vip",
        &format!("{VIP}:80"),
        "--client",
        "198.18.0.10",
    ]);
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{out}"));
    let arp = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "arp.suppressed")
        .cloned()
        .unwrap_or_else(|| panic!("no arp.suppressed check\n{v:#}"));
    assert_eq!(arp["status"], "unknown", "{arp:#}");
    assert!(
        arp["evidence"].to_string().contains("could not check"),
        "{arp:#}"
    );
    let human = lab.be[0].exec(&[
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
        LBCTL,
        "doctor",
        "--vip",
        &format!("{VIP}:80"),
        "--client",
        "198.18.0.10",
    ]);
    assert!(
        human
            .stdout
            .contains("? 198.18.0.100: ARP for the VIP suppressed"),
        "{human}"
    );
    assert!(!human.stdout.contains("✗ 198.18.0.100: ARP"), "{human}");
}

/// `doctor --capture 2` on be1 (with `--client` and `--balancer`) while `send` runs on the
/// client.
fn be1_capture(lab: &Lab, port: u16, send: impl FnOnce()) -> Value {
    let runner = &lab.be_lbctl[0];
    let dir = runner.run_dir().to_string_lossy().into_owned();
    let vip = format!("{VIP}:{port}");
    let argv: Vec<String> = runner
        .argv(&[
            "--json",
            "doctor",
            "--vip",
            &vip,
            "--client",
            "198.18.0.10",
            "--balancer",
            "198.18.0.2",
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
    send();
    let out = h.join().unwrap();
    assert!(out.code == 0 || out.code == 1, "{out}");
    out.json()
}

/// Client SYNs to VIP:port sent straight to be1 (a host route via its real IP), each given up
/// after a second.
fn syns_to_be1(lab: &Lab, port: u16) {
    lab.client.ip(&[
        "route",
        "replace",
        &format!("{VIP}/32"),
        "via",
        "198.18.0.11",
    ]);
    for _ in 0..2 {
        let _ = lab.client.exec(&[
            "timeout",
            "1",
            "bash",
            "-c",
            &format!("exec 3<>/dev/tcp/{VIP}/{port}"),
        ]);
    }
    lab.client.ip(&["route", "del", &format!("{VIP}/32")]);
}

/// Capture verdicts know who is who (issue 14, item 3): the balancer's own health/DSR probes are
/// not client requests, and when client SYNs arrive but no SYN-ACK leaves, the verdict names the
/// cause — a real nft rule, then a real missing listener.
#[test]
fn capture_verdicts_leave_out_probes_and_name_the_cause() {
    require_root!();
    let lab = lab();
    // No client traffic at all: `lb run` probes be1 every 500 ms, which is not a request.
    let v = be1_capture(&lab, 80, || {});
    let req = check(&v, "capture.requests");
    assert_eq!(req["status"], "skip", "{v:#}");
    assert!(
        req["evidence"][0]
            .as_str()
            .unwrap()
            .contains("probes, or on lo, left out"),
        "{req:#}"
    );

    // A firewall rule on be1 drops the client's SYNs (not the balancer's probes).
    lab.be[0].nft(
        "add table inet lbt_fw\n\
         add chain inet lbt_fw input { type filter hook input priority 0; policy accept; }\n\
         add rule inet lbt_fw input ip saddr 198.18.0.10 tcp dport 80 drop\n",
    );
    let v = be1_capture(&lab, 80, || syns_to_be1(&lab, 80));
    let rep = check(&v, "capture.replies");
    assert_eq!(rep["status"], "fail", "{v:#}");
    let ev = rep["evidence"][0].as_str().unwrap();
    assert!(
        ev.contains("SYN(s) to 198.18.0.100:80 arrive, no SYN-ACK leaves: nft input rule `")
            && ev.contains("tcp dport 80 drop` (table inet lbt_fw) drops them"),
        "{rep:#}"
    );
    let fix = without_netns(rep["fix"].as_str().unwrap_or_default());
    assert!(
        fix.starts_with("nft insert rule inet lbt_fw input"),
        "{rep:#}"
    );
    lab.be[0].nft("delete table inet lbt_fw\n");

    // Nothing listens on 8080: the kernel answers RST, never a SYN-ACK.
    let v = be1_capture(&lab, 8080, || syns_to_be1(&lab, 8080));
    let rep = check(&v, "capture.replies");
    assert_eq!(rep["status"], "fail", "{v:#}");
    let ev = rep["evidence"][0].as_str().unwrap();
    assert!(
        ev.contains(
            "SYN(s) to 198.18.0.100:8080 arrive, no SYN-ACK leaves: nothing listens on \
             198.18.0.100:8080 or the wildcard address (the kernel answers"
        ),
        "{rep:#}"
    );
}
