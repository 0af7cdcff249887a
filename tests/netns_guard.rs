//! Guard rails (issue 12, findings 1–6): input that would hurt the host is refused before the
//! first change — exit 2, one `lbctl: ` line naming the conflict, and a namespace snapshot
//! (addresses, rules, routes of every table, nft ruleset, sysctls) identical before and after.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::{assert_same, s, snapshot, veth_local, write, Lbctl, Netns, Out, TempDir};

/// A backend: eth0 192.0.2.11/24 (balancer side, default via 192.0.2.1), eth1 198.18.0.21/24,
/// and `dot.0` (an interface name with a dot) 198.18.1.21/24.
fn backend(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    veth_local(&ns, "eth0", "peer0");
    veth_local(&ns, "eth1", "peer1");
    veth_local(&ns, "dot.0", "peer2");
    ns.add_addr("eth0", "192.0.2.11/24");
    ns.add_addr("eth1", "198.18.0.21/24");
    ns.add_addr("dot.0", "198.18.1.21/24");
    for d in ["eth0", "peer0", "eth1", "peer1", "dot.0", "peer2"] {
        ns.up(d);
    }
    ns.ip(&["route", "add", "default", "via", "192.0.2.1", "dev", "eth0"]);
    ns.settle();
    ns
}

/// A good profile; tests derive bad ones from it.
const PROFILE: &str = r#"
name = "web"
[[vip]]
address = "198.18.0.100"
[arp]
mode = "nft"
[[arp.interface]]
name = "eth0"
real_ip = "192.0.2.11"
[policy_routing]
table = 100
via = "192.0.2.1"
dev = "eth0"
[sysctl]
"net.ipv4.ip_nonlocal_bind" = 1
"#;

/// `args` must be refused: exit 2, one stderr line containing `needle`, nothing changed.
#[track_caller]
fn refused(ns: &Netns, lb: &Lbctl, args: &[&str], needle: &str) -> Out {
    let before = snapshot(ns);
    let out = lb.run(args);
    out.expect_code(2).expect_one_line_error();
    assert!(
        out.stderr.contains(needle),
        "expected {needle:?} in the error\n{out}"
    );
    assert_same(&before, &snapshot(ns), &args.join(" "));
    out
}

/// `plan -f` and `apply -f` of `text` are both refused naming `needle`.
#[track_caller]
fn profile_refused(ns: &Netns, lb: &Lbctl, dir: &TempDir, text: &str, needle: &str) {
    let p = write(dir, "web.toml", text);
    for verb in ["plan", "apply"] {
        refused(ns, lb, &[verb, "-f", s(&p)], needle);
    }
}

/// Finding 1: a VIP or ARP-suppressed address equal to one of the host's own interface
/// addresses (here with `arp suppress`'s arguments swapped), or a profile VIP equal to eth1's
/// address, is refused; a VIP lbctl itself added is fine.
#[test]
fn issue12_own_interface_address_as_vip_is_refused() {
    require_root!();
    let ns = backend("own");
    let lb = Lbctl::new(&ns);
    let dir = TempDir::new("own");
    let out = refused(
        &ns,
        &lb,
        &["arp", "suppress", "192.0.2.11", "--real-ip", "198.18.0.100"],
        "eth0's own address",
    );
    assert!(out.stderr.contains("swapped"), "{out}");
    refused(
        &ns,
        &lb,
        &[
            "arp",
            "suppress",
            "192.0.2.11",
            "--iface",
            "eth0",
            "--mode",
            "sysctl",
        ],
        "eth0's own address",
    );
    refused(
        &ns,
        &lb,
        &["vip", "add", "192.0.2.11"],
        "eth0's own address",
    );
    refused(
        &ns,
        &lb,
        &["vip", "add", "198.18.0.21", "--dev", "eth1"],
        "eth1's own address",
    );
    profile_refused(
        &ns,
        &lb,
        &dir,
        &PROFILE.replace("198.18.0.100", "198.18.0.21"),
        "eth1's own address",
    );
    // lbctl's own VIP (proto 76 on lo) may be suppressed and re-added.
    lb.ok(&["vip", "add", "198.18.0.100"]);
    lb.ok(&["arp", "suppress", "198.18.0.100", "--real-ip", "192.0.2.11"]);
    lb.ok(&["vip", "add", "198.18.0.100"]);
    lb.ok(&["down", "--all"]);
}

/// Finding 2: link-local and IPv4-mapped IPv6 VIPs, a subnet's network and broadcast
/// addresses, a local gateway, a real IP on no interface, a second table for one VIP.
#[test]
fn issue12_bad_addresses_gateways_and_tables_are_refused() {
    require_root!();
    let ns = backend("addrs");
    let lb = Lbctl::new(&ns);
    let dir = TempDir::new("addrs");
    refused(&ns, &lb, &["vip", "add", "fe80::1"], "link-local");
    refused(
        &ns,
        &lb,
        &["vip", "add", "::ffff:198.18.0.100"],
        "IPv4-mapped",
    );
    refused(&ns, &lb, &["vip", "add", "192.0.2.0"], "network address");
    refused(
        &ns,
        &lb,
        &["vip", "add", "192.0.2.255"],
        "broadcast address",
    );
    refused(
        &ns,
        &lb,
        &["arp", "suppress", "198.18.0.255", "--real-ip", "192.0.2.11"],
        "broadcast address",
    );
    refused(
        &ns,
        &lb,
        &[
            "route",
            "add",
            "198.18.0.100",
            "--table",
            "100",
            "--via",
            "192.0.2.11",
            "--dev",
            "eth0",
        ],
        "own address",
    );
    let out = refused(
        &ns,
        &lb,
        &["arp", "suppress", "198.18.0.100", "--real-ip", "192.0.2.99"],
        "on no interface",
    );
    assert!(out.stderr.contains("--force"), "{out}");
    profile_refused(
        &ns,
        &lb,
        &dir,
        &PROFILE.replace("real_ip = \"192.0.2.11\"", "real_ip = \"192.0.2.99\""),
        "on no interface",
    );
    profile_refused(
        &ns,
        &lb,
        &dir,
        &PROFILE.replace("via = \"192.0.2.1\"", "via = \"192.0.2.11\""),
        "own address",
    );
    profile_refused(
        &ns,
        &lb,
        &dir,
        &PROFILE
            .replace("fe80", "x")
            .replace("198.18.0.100", "fe80::100"),
        "link-local",
    );

    // A second policy table for one VIP: from the CLI, and from a profile.
    lb.ok(&[
        "route",
        "add",
        "198.18.0.100",
        "--table",
        "100",
        "--via",
        "192.0.2.1",
        "--dev",
        "eth0",
    ]);
    refused(
        &ns,
        &lb,
        &[
            "route",
            "add",
            "198.18.0.100",
            "--table",
            "101",
            "--via",
            "192.0.2.1",
            "--dev",
            "eth0",
        ],
        "table 100",
    );
    profile_refused(
        &ns,
        &lb,
        &dir,
        &PROFILE.replace("table = 100", "table = 102"),
        "table 100",
    );
    // Same table, new gateway: still a replacement, not a second table.
    lb.ok(&[
        "route",
        "add",
        "198.18.0.100",
        "--table",
        "100",
        "--via",
        "192.0.2.2",
        "--dev",
        "eth0",
    ]);
    // --force: a real IP configured later (the ifupdown pre-up case).
    lb.ok(&[
        "arp",
        "suppress",
        "198.18.0.101",
        "--real-ip",
        "192.0.2.99",
        "--force",
    ]);
    lb.ok(&["down", "--all"]);
}

/// Finding 3: an empty or truncated profile does not wipe what the profile applied; `plan`
/// shows the removals and says `apply` refuses them; `down -f` still removes them.
#[test]
fn issue12_empty_profile_does_not_wipe_an_applied_one() {
    require_root!();
    let ns = backend("empty");
    let lb = Lbctl::new(&ns);
    let dir = TempDir::new("empty");
    let pristine = snapshot(&ns);
    let p = write(&dir, "web.toml", PROFILE);
    lb.ok(&["apply", "-f", s(&p)]);
    for text in ["", "name = \"web\"\n", "# truncated\n"] {
        let p = write(&dir, "web.toml", text);
        let out = refused(&ns, &lb, &["apply", "-f", s(&p)], "lbctl down -f");
        assert!(out.stderr.contains("no objects"), "{out}");
        let plan = lb.run(&["plan", "-f", s(&p)]);
        plan.expect_code(1);
        assert!(plan.stderr.contains("apply would refuse"), "{plan}");
        assert!(plan.stdout.contains("ip addr del"), "{plan}");
    }
    // An empty profile that was never applied is fine (nothing to remove).
    let other = write(&dir, "other.toml", "");
    lb.ok(&["apply", "-f", s(&other)]);
    let p = write(&dir, "web.toml", "");
    lb.ok(&["down", "-f", s(&p)]);
    assert_same(&pristine, &snapshot(&ns), "down -f after the refusals");
}

/// Finding 4: a profile's `table = N` is refused while a foreign `ip rule` uses table N, as
/// `route add --table N` already is.
#[test]
fn issue12_profile_table_used_by_a_foreign_rule_is_refused() {
    require_root!();
    let ns = backend("table");
    let lb = Lbctl::new(&ns);
    let dir = TempDir::new("table");
    ns.ip(&[
        "rule", "add", "fwmark", "7", "lookup", "100", "priority", "900",
    ]);
    profile_refused(&ns, &lb, &dir, PROFILE, "table 100 is already used");
    refused(
        &ns,
        &lb,
        &[
            "route",
            "add",
            "198.18.0.100",
            "--table",
            "100",
            "--via",
            "192.0.2.1",
            "--dev",
            "eth0",
        ],
        "table 100 is already used",
    );
    // Another table is fine.
    let p = write(
        &dir,
        "web.toml",
        &PROFILE.replace("table = 100", "table = 101"),
    );
    lb.run(&["plan", "-f", s(&p)]).expect_code(1);
}

/// Finding 5: `[sysctl]` keys that do not exist are refused naming the key; an interface
/// with a dot in its name is reached by path.
#[test]
fn issue12_missing_sysctl_keys_are_refused() {
    require_root!();
    let ns = backend("sysctl");
    let lb = Lbctl::new(&ns);
    let dir = TempDir::new("sysctl");
    for (key, needle) in [
        ("net.ipv4.ip_nonlocal_bnid", "net.ipv4.ip_nonlocal_bnid"),
        ("net.ipv4.conf.nosuch0.rp_filter", "interface 'nosuch0'"),
        (
            "net.ipv4.conf.dot.0.rp_filter",
            "net/ipv4/conf/dot.0/rp_filter",
        ),
    ] {
        let text = PROFILE.replace("\"net.ipv4.ip_nonlocal_bind\"", &format!("\"{key}\""));
        profile_refused(&ns, &lb, &dir, &text, needle);
    }
    let text = PROFILE.replace(
        "\"net.ipv4.ip_nonlocal_bind\" = 1",
        "\"net/ipv4/conf/dot.0/rp_filter\" = 2",
    );
    let p = write(&dir, "web.toml", &text);
    let out = lb.run(&["plan", "-f", s(&p)]);
    out.expect_code(1);
    assert!(
        out.stdout.contains("net/ipv4/conf/dot.0/rp_filter=2"),
        "{out}"
    );
}

/// Finding 6: files and names are capped before parsing; TOML errors do not echo huge lines;
/// a profile has at most 16,384 VIPs.
#[test]
fn issue12_oversized_inputs_fail_fast() {
    require_root!();
    let ns = backend("size");
    let lb = Lbctl::new(&ns);
    let dir = TempDir::new("size");
    let t = Instant::now();
    refused(&ns, &lb, &["plan", "-f", "/dev/zero"], "larger than 4 MiB");
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t.elapsed()
    );
    let big = write(
        &dir,
        "big.toml",
        &format!("{PROFILE}#{}\n", "x".repeat(5 << 20)),
    );
    refused(&ns, &lb, &["apply", "-f", s(&big)], "larger than 4 MiB");
    let lbfile = write(&dir, "lb.toml", &"#".repeat(5 << 20));
    refused(
        &ns,
        &lb,
        &["lb", "apply", "-f", s(&lbfile)],
        "larger than 4 MiB",
    );

    let long_name = PROFILE.replace(
        "name = \"web\"",
        &format!("name = \"{}\"", "n".repeat(1000)),
    );
    let out = refused(
        &ns,
        &lb,
        &["apply", "-f", s(&write(&dir, "n.toml", &long_name))],
        "1-64",
    );
    assert!(out.stderr.len() < 400, "{out}");

    // A TOML syntax error quotes the offending line (a multi-line message): cut at ~200 chars.
    let huge_line = format!("bogus = \"{}\" x\n{PROFILE}", "z".repeat(300_000));
    let before = snapshot(&ns);
    let out = lb.run(&["plan", "-f", s(&write(&dir, "l.toml", &huge_line))]);
    out.expect_code(2);
    assert!(out.stderr.contains("…zzz"), "{out}");
    assert!(
        out.stderr.len() < 2000,
        "stderr is {} bytes",
        out.stderr.len()
    );
    assert_same(&before, &snapshot(&ns), "huge TOML line");

    let mut many = String::from("[arp]\nmode = \"none\"\n");
    for i in 0..16_385u32 {
        many.push_str(&format!(
            "[[vip]]\naddress = \"198.18.{}.{}\"\n",
            2 + i / 250,
            1 + i % 250
        ));
    }
    refused(
        &ns,
        &lb,
        &["plan", "-f", s(&write(&dir, "many.toml", &many))],
        "at most 16384",
    );
}
