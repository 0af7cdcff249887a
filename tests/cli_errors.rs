//! Bad input is refused before anything is touched: exit 2, exactly one stderr line starting
//! `lbctl: `, and a namespace snapshot identical to the one taken before (STYLE.md §6.1:
//! validate everything first). Dry-run does not change that. Missing privilege is exit 77.
//!
//! Every case runs against a backend namespace that has something for a wrong command to break:
//! an interface with a real IP, a VIP on lo, a user nft table, a foreign policy rule.

#[macro_use]
mod common;

use common::*;

const VIP: &str = "198.18.0.100";
const RIP: &str = "198.18.0.11";

/// A backend namespace with state a buggy command could damage.
fn backend(tag: &str) -> (Netns, Netns) {
    let ns = Netns::new(&format!("{tag}-b"));
    let peer = Netns::new(&format!("{tag}-p"));
    link(
        End {
            ns: &ns,
            dev: "eth0",
            mac: "02:00:00:00:00:11",
            cidr: &format!("{RIP}/24"),
        },
        End {
            ns: &peer,
            dev: "eth0",
            mac: "02:00:00:00:00:01",
            cidr: "198.18.0.1/24",
        },
    );
    ns.add_addr("lo", &format!("{VIP}/32"));
    ns.nft(
        "table inet filter { chain input { type filter hook input priority 0; policy accept; }; }",
    );
    ns.ip(&words("rule add from 198.18.0.77 lookup 300 priority 500"));
    ns.set_conf(&[("eth0", "rp_filter", 1), ("eth0", "arp_announce", 1)]);
    ns.settle();
    peer.settle();
    (ns, peer)
}

/// Invalid values: each must give exit 2 with one `lbctl: ` line, and change nothing.
const BAD_INPUT: &[&str] = &[
    // addresses
    "vip add not-an-ip",
    "vip add 198.18.0.300",
    "vip add 198.18.0.0/24",
    "vip add 2001:db8::/64",
    "vip add 198.18.0.100 --dev nosuch0",
    "vip del not-an-ip",
    // arp
    "arp suppress 198.18.0.100",
    "arp suppress not-an-ip --real-ip 198.18.0.11",
    "arp suppress 198.18.0.100 --real-ip bogus",
    "arp suppress 198.18.0.100 --real-ip 198.18.0.100",
    "arp suppress 198.18.0.100 --real-ip 2001:db8:1::11",
    "arp suppress 198.18.0.0/24 --real-ip 198.18.0.11",
    "arp suppress 2001:db8::100 --real-ip 2001:db8:1::11",
    "arp suppress 198.18.0.100 --real-ip 198.18.0.11 --mode sysctl --iface nosuch0",
    // route
    "route add 198.18.0.100 --table 254 --via 198.18.0.1 --dev eth0",
    "route add 198.18.0.100 --table 0 --via 198.18.0.1 --dev eth0",
    "route add 198.18.0.100 --table 300 --via 198.18.0.1 --dev eth0",
    "route add 198.18.0.100 --table 200 --via 2001:db8:1::1 --dev eth0",
    "route add 198.18.0.100 --table 200 --via 198.18.0.1 --dev nosuch0",
    "route add 198.18.0.0/24 --table 200 --via 198.18.0.1 --dev eth0",
    "route add not-an-ip --table 200 --via 198.18.0.1 --dev eth0",
    // rpfilter
    "rpfilter check --iface nosuch0",
    "rpfilter fix --iface nosuch0",
    "rpfilter check --vip 198.18.0.100 --client 2001:db8:1::10",
    "rpfilter fix --vip bogus --client 198.18.0.10",
];

/// Shapes clap rejects: exit 2, nothing changed (clap's own message format).
const USAGE_ERRORS: &[&str] = &[
    "",
    "frobnicate",
    "vip",
    "vip add",
    "arp suppress 198.18.0.100 --real-ip 198.18.0.11 --mode bogus",
    "route add 198.18.0.100 --table abc --via 198.18.0.1 --dev eth0",
    "route add 198.18.0.100 --table -1 --via 198.18.0.1 --dev eth0",
    "rpfilter check --vip 198.18.0.100",
    "gen completions tcsh",
];

#[test]
fn bad_input_exits_2_and_changes_nothing() {
    require_root!();
    let (ns, _peer) = backend("errs");
    let lb = Lbctl::new(&ns);
    let before = snapshot(&ns);
    let mut failures = Vec::new();
    for line in BAD_INPUT {
        for dry in [false, true] {
            let mut args: Vec<&str> = Vec::new();
            if dry {
                args.push("--dry-run");
            }
            args.extend(words(line));
            let out = lb.run(&args);
            let one_line = {
                let lines: Vec<&str> = out
                    .stderr
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .collect();
                lines.len() == 1 && lines[0].starts_with("lbctl: ")
            };
            if out.code != 2 || !one_line {
                failures.push(format!("expected exit 2 and one `lbctl: ` line\n{out}"));
            }
            assert_same(&before, &snapshot(&ns), &format!("{out}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad-input cases broke the contract:\n\n{}",
        failures.len(),
        BAD_INPUT.len() * 2,
        failures.join("\n\n")
    );
}

#[test]
fn usage_errors_exit_2_and_change_nothing() {
    require_root!();
    let (ns, _peer) = backend("usage");
    let lb = Lbctl::new(&ns);
    let before = snapshot(&ns);
    for line in USAGE_ERRORS {
        let out = lb.run_line(line);
        out.expect_code(2);
        assert!(
            !out.stderr.trim().is_empty(),
            "usage error without a message\n{out}"
        );
        assert_same(&before, &snapshot(&ns), &out.cmd);
    }
}

#[test]
fn unknown_netns_is_an_error() {
    require_root!();
    let name = format!("lbt-{}-nonexistent", std::process::id());
    let lb = Lbctl::plain();
    let out = lb.run(&["--netns", &name, "vip", "add", VIP]);
    out.expect_code(2).expect_one_line_error();
    assert!(
        !std::path::Path::new("/run/netns").join(&name).exists(),
        "lbctl must not create the namespace it was asked to enter"
    );
}

#[test]
fn help_and_version_exit_0() {
    let lb = Lbctl::plain();
    for args in [
        &["--help"][..],
        &["--version"],
        &["vip", "--help"],
        &["help", "route"],
    ] {
        let out = lb.run(args);
        out.expect_ok();
        assert!(
            out.stdout.contains("lbctl") || out.stdout.contains("Usage"),
            "{out}"
        );
    }
}

/// Without CAP_NET_ADMIN a mutating command exits 77 and changes nothing.
#[test]
fn unprivileged_mutation_exits_77() {
    require_root!();
    require_tool!("setpriv");
    // Is there an unprivileged account to switch to (nobody, 65534)?
    if !run_cmd(&["getent", "passwd", "65534"], &[], None).success() {
        skip_or_panic(test_name!(), "needs a uid 65534 account");
        return;
    }
    let (ns, _peer) = backend("priv");
    let before = snapshot(&ns);
    // A run dir the unprivileged user can write, so privilege is the only thing missing.
    let tmp = TempDir::new("priv");
    let run_dir = tmp.path().join("run");
    std::fs::create_dir(&run_dir).expect("create run dir");
    run_ok(&[
        "chmod",
        "0777",
        tmp.path().to_str().unwrap(),
        run_dir.to_str().unwrap(),
    ]);
    let run_dir = run_dir.to_string_lossy().into_owned();
    let env = [("LBCTL_RUN_DIR", run_dir.as_str())];
    let drop_privs = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
    ];

    let mutations = [
        "vip add 198.18.0.150",
        "arp suppress 198.18.0.100 --real-ip 198.18.0.11",
        "arp suppress 198.18.0.100 --real-ip 198.18.0.11 --mode sysctl",
        "route add 198.18.0.100 --table 200 --via 198.18.0.1 --dev eth0",
        "rpfilter fix",
    ];
    for line in mutations {
        // Already inside the namespace (entered as root), then privileges dropped: only
        // CAP_NET_ADMIN is missing.
        let mut argv: Vec<&str> = drop_privs.to_vec();
        argv.push(LBCTL);
        argv.extend(words(line));
        let out = ns.exec_with(&argv, &env, None);
        out.expect_code(77);
        assert!(out.stderr.starts_with("lbctl: "), "{out}");
        assert_same(&before, &snapshot(&ns), &out.cmd);
    }

    // Through --netns: entering the namespace itself needs privilege; still 77, no change.
    let mut argv: Vec<&str> = drop_privs.to_vec();
    argv.extend_from_slice(&[LBCTL, "--netns", ns.name(), "vip", "add", "198.18.0.150"]);
    let out = run_cmd(&argv, &env, None);
    out.expect_code(77);
    assert_same(&before, &snapshot(&ns), &out.cmd);
}
