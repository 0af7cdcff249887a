//! How `lbctl doctor` gathers its facts (issue 15, P3): one `nft -j list ruleset` for every
//! nft view (the firewall's ruleset, lbctl's arp table, the drift plan's nft read), listening
//! sockets from sock_diag agreeing with /proc/net, the drift plan made from doctor's own
//! netlink dumps (one link dump names them all), and — when that one listing cannot be read —
//! every check derived from it saying "could not check", never ✓ or ✗.
//!
//! backend `eth0` 198.18.0.11/24 ⟷ client `eth0` 198.18.0.10/24; lbctl puts the VIP
//! 198.18.0.100 on the backend's lo and suppresses ARP for it (nft mode); a socket bound in the
//! backend namespace listens on VIP:80.

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream, UdpSocket};

use common::*;
use serde_json::Value;

const VIP: &str = "198.18.0.100";

struct Lab {
    // Drop order: the listener before its namespace.
    _listener: TcpListener,
    _client: Netns,
    be: Netns,
    lbctl: Lbctl,
}

fn lab() -> Lab {
    let client = Netns::new("dfc");
    let be = Netns::new("dfb");
    link(
        End {
            ns: &client,
            dev: "eth0",
            mac: "02:00:00:00:00:10",
            cidr: "198.18.0.10/24",
        },
        End {
            ns: &be,
            dev: "eth0",
            mac: "02:00:00:00:00:11",
            cidr: "198.18.0.11/24",
        },
    );
    let lbctl = Lbctl::new(&be);
    lbctl.ok(&["arp", "suppress", VIP, "--real-ip", "198.18.0.11"]);
    lbctl.ok(&["vip", "add", VIP]);
    let listener = lbctl::sys::netns::run_in(be.name(), || {
        TcpListener::bind((VIP, 80)).expect("bind VIP:80")
    })
    .expect("listen in the backend namespace");
    Lab {
        _listener: listener,
        _client: client,
        be,
        lbctl,
    }
}

const DOCTOR: [&str; 6] = [
    "doctor",
    "--vip",
    "198.18.0.100:80",
    "--client",
    "198.18.0.10",
    "--json",
];

fn check<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no {id} check\n{v:#}"))
}

/// `lbctl --json doctor …` under `strace -f -e trace=TRACE`: the report and strace's log.
fn traced(lab: &Lab, trace: &str) -> (Value, String) {
    let dir = TempDir::new("strace");
    let log = dir.path().join("strace.log");
    let log_s = log.to_string_lossy().into_owned();
    let run_dir = lab.lbctl.run_dir().to_string_lossy().into_owned();
    let trace = format!("trace={trace}");
    let mut argv = vec!["strace", "-f", "-qq", "-e", &trace, "-o", &log_s];
    argv.extend(lab.lbctl.argv(&DOCTOR));
    let out = run_cmd(&argv, &[("LBCTL_RUN_DIR", &run_dir)], None);
    assert!(
        out.code == 0 || out.code == 1,
        "doctor could not run\n{out}"
    );
    (
        out.json(),
        std::fs::read_to_string(&log).expect("strace log"),
    )
}

/// [`traced`] for execve: the report and the programs doctor ran (successful execve calls
/// after lbctl's own).
fn traced_doctor(lab: &Lab) -> (Value, Vec<String>) {
    let (v, text) = traced(lab, "execve");
    let ran: Vec<String> = text
        .lines()
        .filter(|l| l.contains("execve(") && l.trim_end().ends_with("= 0"))
        .filter_map(|l| l.split('"').nth(1).map(str::to_string))
        .skip(1)
        .collect();
    (v, ran)
}

#[test]
fn doctor_lists_the_ruleset_once_and_derives_every_nft_view_from_it() {
    require_root!();
    require_tool!("strace");
    let lab = lab();
    let (v, ran) = traced_doctor(&lab);
    assert_eq!(
        ran.iter().filter(|p| p.ends_with("/nft")).count(),
        1,
        "doctor ran {ran:?}"
    );
    assert_eq!(ran.len(), 1, "doctor ran {ran:?}");
    // Each view of that one listing is the real one.
    assert_eq!(check(&v, "arp.suppressed")["status"], "pass", "{v:#}");
    assert_eq!(check(&v, "lbctl.drift")["status"], "pass", "{v:#}");
    assert_eq!(check(&v, "firewall.request")["status"], "pass", "{v:#}");
    assert_eq!(check(&v, "listener")["status"], "pass", "{v:#}");

    // A foreign table with a set named like lbctl's does not stand in for it: with lbctl's
    // table gone, both the ARP check and the drift plan (its nft view) see it gone.
    lab.be.nft(
        "table inet lbt_other {\n set vips { type ipv4_addr; elements = { 198.18.0.100 } }\n}\n",
    );
    lab.be.nft("delete table arp lbctl\n");
    let (v, ran) = traced_doctor(&lab);
    assert_eq!(ran.len(), 1, "doctor ran {ran:?}");
    assert_eq!(check(&v, "arp.suppressed")["status"], "fail", "{v:#}");
    let drift = check(&v, "lbctl.drift");
    assert_eq!(drift["status"], "fail", "{v:#}");
    assert!(
        drift["evidence"].to_string().contains("table arp lbctl"),
        "{drift:#}"
    );
    // lbctl puts it back; doctor agrees.
    lab.lbctl
        .ok(&["arp", "suppress", VIP, "--real-ip", "198.18.0.11"]);
    let (v, _) = traced_doctor(&lab);
    assert_eq!(check(&v, "lbctl.drift")["status"], "pass", "{v:#}");
    // A drop rule in the one listing reaches the firewall evaluation.
    lab.be.nft(
        "table inet lbt_fw {\n chain input {\n  type filter hook input priority 0; policy accept;\n  tcp dport 80 drop\n }\n}\n",
    );
    let (v, _) = traced_doctor(&lab);
    assert_eq!(check(&v, "firewall.request")["status"], "fail", "{v:#}");
}

/// The drift plan is made from doctor's own dumps, and one link dump names the interfaces of
/// all of them: with an address, a policy rule and a copied route gone, doctor's pending
/// changes are exactly the engine's own plan (`--dry-run`, which observes for itself), and
/// doctor sent one RTM_GETLINK request in all.
#[test]
fn doctor_plans_drift_from_its_own_dumps_with_one_link_dump() {
    require_root!();
    require_tool!("strace");
    let lab = lab();
    lab.lbctl.ok_line(&format!(
        "route add {VIP} --table 200 --via 198.18.0.10 --dev eth0"
    ));
    let link_dumps = |log: &str| {
        log.lines()
            .filter(|l| l.contains("sendto("))
            .filter(|l| {
                // strace names the type when it knows the socket's family, else its number.
                ["RTM_GETLINK", "nlmsg_type=0x12,", "nlmsg_type=0x12 "]
                    .iter()
                    .any(|t| l.contains(t))
            })
            .count()
    };
    let (v, log) = traced(&lab, "sendto");
    assert_eq!(check(&v, "lbctl.drift")["status"], "pass", "{v:#}");
    assert_eq!(link_dumps(&log), 1, "{log}");

    lab.be
        .ip(&["addr", "del", &format!("{VIP}/32"), "dev", "lo"]);
    lab.be.ip(&["rule", "del", "from", VIP, "lookup", "200"]);
    lab.be.ip(&[
        "route",
        "del",
        "198.18.0.0/24",
        "dev",
        "eth0",
        "table",
        "200",
    ]);
    let (v, log) = traced(&lab, "sendto");
    assert_eq!(link_dumps(&log), 1, "{log}");
    let drift = check(&v, "lbctl.drift");
    assert_eq!(drift["status"], "fail", "{v:#}");
    let pending: Vec<String> = drift["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e.as_str()
                .unwrap()
                .trim_start_matches("pending: ")
                .to_string()
        })
        .collect();
    let planned = lab.lbctl.ok(&["--dry-run", "vip", "add", VIP]);
    let planned: Vec<String> = planned.stdout.lines().map(str::to_string).collect();
    assert_eq!(pending, planned, "{drift:#}");
    for want in ["ip addr add", "ip rule add", "ip route add 198.18.0.0/24"] {
        assert!(
            pending.iter().any(|p| p.starts_with(want)),
            "{want}: {pending:?}"
        );
    }
    // Converged again, doctor agrees.
    lab.lbctl.ok(&["vip", "add", VIP]);
    let (v, _) = traced(&lab, "sendto");
    assert_eq!(check(&v, "lbctl.drift")["status"], "pass", "{v:#}");
}

/// Without CAP_NET_ADMIN the one listing fails: every check derived from it is `unknown` with
/// "could not check" (the drift plan included: it was a silent ✓ before), none is ✓ or ✗.
#[test]
fn an_unreadable_ruleset_makes_every_nft_check_could_not_check() {
    require_root!();
    require_tool!("setpriv");
    if !run_cmd(&["getent", "passwd", "65534"], &[], None).success() {
        skip_or_panic(test_name!(), "needs a uid 65534 account");
        return;
    }
    let lab = lab();
    let v = lab.lbctl.run(&DOCTOR);
    v.expect_ok();
    // The run dir (journal) must be readable by the unprivileged user.
    run_ok(&["chmod", "-R", "a+rX", lab.lbctl.run_dir().to_str().unwrap()]);
    let tmp = lab.lbctl.run_dir().parent().unwrap().to_str().unwrap();
    run_ok(&["chmod", "a+rx", tmp]);
    let run_dir = lab.lbctl.run_dir().to_string_lossy().into_owned();
    let mut argv = vec![
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
        LBCTL,
    ];
    argv.extend_from_slice(&DOCTOR);
    let full = lbctl::sys::netns::exec_argv(lab.be.name(), &argv);
    let full: Vec<&str> = full.iter().map(String::as_str).collect();
    let out = run_cmd(&full, &[("LBCTL_RUN_DIR", &run_dir)], None);
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{out}"));
    for id in [
        "arp.suppressed",
        "firewall.ct_invalid",
        "firewall.request",
        "firewall.reply",
        "lbctl.drift",
    ] {
        let c = check(&v, id);
        assert_eq!(c["status"], "unknown", "{id}\n{c:#}");
        assert!(
            c["evidence"].to_string().contains("could not check"),
            "{id}\n{c:#}"
        );
    }
    // The in-process facts still work unprivileged.
    assert_eq!(check(&v, "vip.present")["status"], "pass", "{v:#}");
    assert_eq!(check(&v, "listener")["status"], "pass", "{v:#}");
}

/// Listening sockets from sock_diag (what doctor uses) are exactly those of /proc/net (what it
/// falls back to): TCP listeners and unconnected UDP sockets, IPv4 and IPv6, no connections.
#[test]
fn listeners_from_sock_diag_match_proc_net() {
    require_root!();
    let ns = Netns::new("dfl");
    ns.add_addr("lo", "2001:db8::1/128");
    let (diag, proc, client_port) = lbctl::sys::netns::run_in(ns.name(), || {
        let l4 = TcpListener::bind("127.0.0.1:8080").unwrap();
        let _l6 = TcpListener::bind("[::]:8443").unwrap();
        let _l6b = TcpListener::bind("[2001:db8::1]:9090").unwrap();
        let _u4 = UdpSocket::bind("127.0.0.1:5353").unwrap();
        let _u6 = UdpSocket::bind("[::]:5354").unwrap();
        // Connections are not listeners.
        let conn = TcpStream::connect(l4.local_addr().unwrap()).unwrap();
        let _accepted = l4.accept().unwrap();
        let udp_conn = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp_conn.connect("127.0.0.1:5353").unwrap();
        let key = |l: &lbctl::sys::procnet::Listener| (l.proto, l.addr, l.port);
        let diag: BTreeSet<_> = lbctl::sys::procnet::diag_listeners()
            .expect("sock_diag answers")
            .iter()
            .map(key)
            .collect();
        let proc: BTreeSet<_> = lbctl::sys::procnet::proc_listeners()
            .iter()
            .map(key)
            .collect();
        (diag, proc, conn.local_addr().unwrap().port())
    })
    .unwrap();
    assert_eq!(diag, proc);
    let want: BTreeSet<_> = [
        ("tcp", "127.0.0.1", 8080),
        ("tcp", "::", 8443),
        ("tcp", "2001:db8::1", 9090),
        ("udp", "127.0.0.1", 5353),
        ("udp", "::", 5354),
    ]
    .into_iter()
    .map(|(p, a, n)| (p, a.parse().unwrap(), n))
    .collect();
    assert_eq!(diag, want, "client port {client_port}");
}
