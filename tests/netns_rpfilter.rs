//! `lbctl rpfilter check|fix|restore` against the situation that really breaks DSR backends
//! (PLATFORM.md §5): a rule sends replies from the VIP out of a second interface (`rpx0`), so
//! strict reverse-path filtering (rp_filter=1) drops the client's requests that arrive on the
//! ARP-facing interface. The arrival interface is the dotted `vt0.5`, which is why lbctl does
//! its own /proc/sys I/O.
//!
//! Besides lbctl's simulation, the kernel is asked directly: a ping from the client to the VIP
//! bumps `TcpExt: IPReversePathFilter` in the backend's /proc/net/netstat while the check fails,
//! and no longer does after `fix`.

#[macro_use]
mod common;

use common::*;
use serde_json::Value;

const VIP: &str = "198.18.0.100";
const CLIENT_IP: &str = "198.18.0.10";
const RIP: &str = "198.18.0.11";
const BACKEND_MAC: &str = "02:00:00:00:00:11";
const DEV: &str = "vt0.5";

struct Lab {
    client: Netns,
    backend: Netns,
}

/// client `eth0` ⟷ backend `vt0.5`; VIP on the backend's lo; a second uplink `rpx0`
/// (192.0.2.1/24) and `from VIP lookup 200` with `default via 192.0.2.254 dev rpx0` in table 200.
/// The client has a permanent neighbour entry for the VIP, so its pings reach the backend
/// without depending on ARP.
fn lab(tag: &str) -> Lab {
    let client = Netns::new(&format!("{tag}-c"));
    let backend = Netns::new(&format!("{tag}-b"));
    link(
        End {
            ns: &client,
            dev: "eth0",
            mac: "02:00:00:00:00:10",
            cidr: &format!("{CLIENT_IP}/24"),
        },
        End {
            ns: &backend,
            dev: DEV,
            mac: BACKEND_MAC,
            cidr: &format!("{RIP}/24"),
        },
    );
    backend.add_addr("lo", &format!("{VIP}/32"));
    veth_local(&backend, "rpx0", "rpx1");
    backend.add_addr("rpx0", "192.0.2.1/24");
    backend.up("rpx0");
    backend.up("rpx1");
    backend.ip(&words("rule add from 198.18.0.100 lookup 200 priority 100"));
    backend.ip(&words(
        "route add default via 192.0.2.254 dev rpx0 table 200",
    ));
    client.ip(&words(
        "neigh replace 198.18.0.100 lladdr 02:00:00:00:00:11 dev eth0 nud permanent",
    ));
    client.settle();
    backend.settle();
    Lab { client, backend }
}

impl Lab {
    /// How many of one ping's requests the backend's reverse-path filter dropped.
    fn rpf_drops_for_one_ping(&self) -> u64 {
        let before = netstat_counter(&self.backend, "TcpExt", "IPReversePathFilter");
        let _ = self.client.exec(&["ping", "-c", "1", "-W", "1", VIP]);
        netstat_counter(&self.backend, "TcpExt", "IPReversePathFilter") - before
    }
}

fn iface<'a>(check: &'a Value, name: &str) -> &'a Value {
    check["interfaces"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["iface"] == name))
        .unwrap_or_else(|| panic!("no interface {name} in {check:#}"))
}

fn sim_args<'a>() -> [&'a str; 6] {
    ["--iface", DEV, "--vip", VIP, "--client", CLIENT_IP]
}

#[test]
fn rpfilter_strict_breaks_dsr_fix_and_restore() {
    require_root!();
    require_tool!("ping");
    let lab = lab("rpf");
    let ns = &lab.backend;
    // Distinctive prior values: strict on `all` and on the arrival interface, something else
    // elsewhere that must survive.
    ns.set_conf(&[
        ("all", "rp_filter", 1),
        ("default", "rp_filter", 0),
        (DEV, "rp_filter", 1),
        ("rpx0", "rp_filter", 0),
        ("rpx1", "rp_filter", 2),
        ("lo", "rp_filter", 0),
    ]);
    let lb = Lbctl::new(ns);
    let before = snapshot(ns);

    // The kernel really drops the client's requests.
    assert!(
        lab.rpf_drops_for_one_ping() >= 1,
        "setup: strict rp_filter should drop"
    );

    // check without simulation: raw and effective values.
    let plain = lb.run(&["--json", "rpfilter", "check"]);
    assert!(plain.code == 0 || plain.code == 1, "{plain}");
    let v = plain.json();
    assert_eq!(v["all"], 1, "{v:#}");
    assert_eq!(v["default"], 0, "{v:#}");
    assert_eq!(iface(&v, DEV)["value"], 1, "{v:#}");
    assert_eq!(iface(&v, DEV)["effective"], 1, "{v:#}");
    assert_eq!(iface(&v, "rpx0")["value"], 0, "{v:#}");
    assert_eq!(iface(&v, "rpx0")["effective"], 1, "max(all, iface): {v:#}");
    assert_eq!(iface(&v, "rpx1")["effective"], 2, "{v:#}");
    assert!(v["simulation"].is_null(), "{v:#}");

    // check with simulation: not accepted, and that is a finding (exit 1).
    let mut check: Vec<&str> = vec!["--json", "rpfilter", "check"];
    check.extend(sim_args());
    let out = lb.run(&check);
    out.expect_code(1);
    let v = out.json();
    let sim = &v["simulation"];
    assert_eq!(sim["vip"], VIP, "{v:#}");
    assert_eq!(sim["client"], CLIENT_IP, "{v:#}");
    assert_eq!(sim["arrival_iface"], DEV, "{v:#}");
    assert_eq!(sim["reply_iface"], "rpx0", "{v:#}");
    assert_eq!(sim["mode"], 1, "{v:#}");
    assert_eq!(sim["accepted"], false, "{v:#}");
    assert!(
        sim["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{v:#}"
    );

    // fix: loose (2) on the interface and on `all` (which was 1); nothing else.
    let fix: Vec<&str> = ["rpfilter", "fix"].into_iter().chain(sim_args()).collect();
    lb.ok(&fix);
    assert_eq!(ns.conf(DEV, "rp_filter"), 2);
    assert_eq!(ns.conf("all", "rp_filter"), 2);
    let fixed = snapshot(ns);
    let changed: Vec<String> = sysctl_changes(&before, &fixed).into_keys().collect();
    assert_eq!(
        changed,
        vec![
            "net/ipv4/conf/all/rp_filter".to_string(),
            format!("net/ipv4/conf/{DEV}/rp_filter"),
        ],
        "fix must change exactly all and {DEV}"
    );
    assert_same_except(&before, &fixed, &["sysctl"], "rpfilter fix");

    let out = lb.run(&check);
    out.expect_ok();
    let v = out.json();
    assert_eq!(v["simulation"]["accepted"], true, "{v:#}");
    assert_eq!(v["simulation"]["mode"], 2, "{v:#}");
    assert_eq!(
        lab.rpf_drops_for_one_ping(),
        0,
        "after fix the kernel must accept the request"
    );

    // fix again: nothing to do.
    let again = lb.ok(&fix);
    assert!(says_unchanged(&again), "{again}");
    assert_same(&fixed, &snapshot(ns), "second fix");

    lb.ok(&["rpfilter", "restore"]);
    assert_eq!(ns.conf(DEV, "rp_filter"), 1);
    assert_eq!(ns.conf("all", "rp_filter"), 1);
    assert_eq!(ns.conf("rpx1", "rp_filter"), 2);
    assert_same(&before, &snapshot(ns), "rpfilter restore");
    assert!(
        lab.rpf_drops_for_one_ping() >= 1,
        "after restore strict filtering is back"
    );
}

#[test]
fn rpfilter_fix_touches_only_strict_interfaces() {
    require_root!();
    let lab = lab("rpfonly");
    let ns = &lab.backend;
    // all=0 (so `all` must stay), one strict interface, one already loose.
    ns.set_conf(&[
        ("all", "rp_filter", 0),
        ("default", "rp_filter", 1),
        (DEV, "rp_filter", 1),
        ("rpx0", "rp_filter", 2),
        ("rpx1", "rp_filter", 0),
        ("lo", "rp_filter", 0),
    ]);
    let lb = Lbctl::new(ns);
    let before = snapshot(ns);

    // Dry run first: a `sysctl -w …rp_filter=2` line, no change.
    let out = lb.run(&["-n", "rpfilter", "fix"]);
    assert!(out.code == 0 || out.code == 1, "{out}");
    assert!(
        out.stdout.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with("sysctl -w") && l.contains("rp_filter") && l.contains("=2")
        }),
        "{out}"
    );
    assert_same(&before, &snapshot(ns), "dry-run rpfilter fix");

    lb.ok(&["rpfilter", "fix"]);
    let fixed = snapshot(ns);
    let changed = sysctl_changes(&before, &fixed);
    let key = format!("net/ipv4/conf/{DEV}/rp_filter");
    assert!(
        changed.contains_key(&key),
        "{DEV} (strict) must become loose: {changed:?}"
    );
    for k in changed.keys() {
        assert!(
            k == &key || !k.contains("/all/") && !k.contains("/rpx0/") && !k.contains("/lo/"),
            "fix changed {k}, which was not strict: {changed:?}"
        );
    }
    assert_eq!(ns.conf(DEV, "rp_filter"), 2);
    assert_eq!(ns.conf("all", "rp_filter"), 0);
    assert_eq!(ns.conf("rpx0", "rp_filter"), 2);

    lb.ok(&["rpfilter", "restore"]);
    assert_same(&before, &snapshot(ns), "rpfilter restore (only strict)");
}

#[test]
fn rpfilter_check_clean_host_is_ok() {
    require_root!();
    let lab = lab("rpfclean");
    let ns = &lab.backend;
    let lb = Lbctl::new(ns);
    let before = snapshot(ns);
    let mut check: Vec<&str> = vec!["--json", "rpfilter", "check"];
    check.extend(sim_args());
    let out = lb.run(&check);
    out.expect_ok();
    let v = out.json();
    assert_eq!(v["all"], 0, "{v:#}");
    assert_eq!(iface(&v, DEV)["effective"], 0, "{v:#}");
    assert_eq!(v["simulation"]["accepted"], true, "{v:#}");
    assert_eq!(v["simulation"]["mode"], 0, "{v:#}");
    assert_same(&before, &snapshot(ns), "rpfilter check is read-only");
}
