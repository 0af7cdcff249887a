//! `lbctl route`: source-based policy routing for replies from a VIP.
//!
//! What matters is the kernel's answer, so the tests ask it with `ip route get CLIENT from VIP`
//! (a pure FIB lookup that sends nothing): replies must use table T, and on-link destinations
//! must NOT go via the gateway, which needs IF's connected route copied into T (PLATFORM.md §5).
//! Reserved tables and tables already used by someone else's rule are refused with exit 2 and
//! no change; `route del` removes exactly what `route add` created.

#[macro_use]
mod common;

use common::*;
use serde_json::Value;

const VIP: &str = "198.18.0.100";
const RIP: &str = "198.18.0.11";
const GW: &str = "198.18.0.1";
/// The main table's (foreign) default gateway, so "via table T" is distinguishable.
const MAIN_GW: &str = "198.18.0.254";
const ONLINK_CLIENT: &str = "198.18.0.10";
const REMOTE_CLIENT: &str = "192.0.2.7";

struct Lab {
    backend: Netns,
    _peer: Netns,
}

/// backend `eth0` 198.18.0.11/24 (peer namespace on the other end so the link has carrier),
/// VIP on lo, main default via .254, plus a foreign rule/table pair that must survive.
fn lab(tag: &str) -> Lab {
    let backend = Netns::new(&format!("{tag}-b"));
    let peer = Netns::new(&format!("{tag}-p"));
    link(
        End {
            ns: &backend,
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
    backend.add_addr("lo", &format!("{VIP}/32"));
    backend.ip(&["route", "add", "default", "via", MAIN_GW, "dev", "eth0"]);
    backend.ip(&words("rule add from 198.18.0.77 lookup 300 priority 500"));
    backend.ip(&words(
        "route add default via 198.18.0.254 dev eth0 table 300",
    ));
    backend.ip(&words("-6 rule add from 2001:db8::77 lookup 301"));
    backend.settle();
    peer.settle();
    Lab {
        backend,
        _peer: peer,
    }
}

fn table_routes(ns: &Netns, table: &str) -> Vec<Value> {
    ns.ip_json(&["-4", "route", "show", "table", table])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn rules_for(ns: &Netns, src: &str) -> Vec<Value> {
    ns.ip_json(&["-4", "rule"])
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["src"] == src)
        .cloned()
        .collect()
}

#[test]
fn route_add_readd_del() {
    require_root!();
    let lab = lab("route");
    let ns = &lab.backend;
    let lb = Lbctl::new(ns);
    let before = snapshot(ns);

    // Baseline: without lbctl, replies from the VIP use the main table.
    let r = route_get(ns, &[REMOTE_CLIENT, "from", VIP]);
    assert_eq!(r["gateway"], MAIN_GW, "{r:#}");

    lb.ok_line(&format!(
        "route add {VIP} --table 200 --via {GW} --dev eth0"
    ));

    // The rule: from VIP lookup 200, default priority 100.
    let rules = rules_for(ns, VIP);
    assert_eq!(rules.len(), 1, "{rules:#?}");
    assert_eq!(rules[0]["table"], "200", "{rules:#?}");
    assert_eq!(rules[0]["priority"], 100, "{rules:#?}");

    // Table 200: a default via GW and the connected route of eth0.
    let routes = table_routes(ns, "200");
    assert!(
        routes
            .iter()
            .any(|r| r["dst"] == "default" && r["gateway"] == GW && r["dev"] == "eth0"),
        "no default via {GW} in table 200: {routes:#?}"
    );
    assert!(
        routes.iter().any(|r| r["dst"] == "198.18.0.0/24"
            && r["dev"] == "eth0"
            && r.get("gateway").is_none()),
        "connected route not copied into table 200: {routes:#?}"
    );

    // The kernel agrees: remote replies go via GW in table 200...
    let r = route_get(ns, &[REMOTE_CLIENT, "from", VIP]);
    assert_eq!(r["gateway"], GW, "{r:#}");
    assert_eq!(r["table"], "200", "{r:#}");
    // ...on-link ones straight out of eth0, not via the gateway...
    let r = route_get(ns, &[ONLINK_CLIENT, "from", VIP]);
    assert!(
        r.get("gateway").is_none(),
        "on-link reply via a gateway: {r:#}"
    );
    assert_eq!(r["dev"], "eth0", "{r:#}");
    assert_eq!(r["table"], "200", "{r:#}");
    // ...and traffic not from the VIP is unaffected.
    let r = route_get(ns, &[REMOTE_CLIENT, "from", RIP]);
    assert_eq!(r["gateway"], MAIN_GW, "{r:#}");

    let applied = snapshot(ns);
    assert_same_except(
        &before,
        &applied,
        &["ip -4 rule", "ip -4 route show table all"],
        "route add touched more than rules and routes",
    );

    let again = lb.ok_line(&format!(
        "route add {VIP} --table 200 --via {GW} --dev eth0"
    ));
    assert!(says_unchanged(&again), "{again}");
    assert_same(&applied, &snapshot(ns), "route re-add");

    let list = lb.run(&["--json", "route", "list"]);
    list.expect_ok();
    let text = list.json().to_string();
    assert!(text.contains(VIP) && text.contains("200"), "{list}");

    lb.ok(&["route", "del", VIP, "--table", "200"]);
    assert_same(&before, &snapshot(ns), "route del");
    let r = route_get(ns, &[REMOTE_CLIENT, "from", VIP]);
    assert_eq!(r["gateway"], MAIN_GW, "{r:#}");
}

#[test]
fn route_custom_priority_and_json_changes() {
    require_root!();
    let lab = lab("routeprio");
    let ns = &lab.backend;
    let lb = Lbctl::new(ns);
    let before = snapshot(ns);

    let v = lb.json(&words(&format!(
        "route add {VIP} --table 4000 --via {GW} --dev eth0 --priority 1234"
    )));
    assert_eq!(v["applied"], true, "{v:#}");
    assert_eq!(v["dry_run"], false, "{v:#}");
    let planned = changes(&v);
    assert!(
        planned.iter().any(|c| c.starts_with("ip rule add")),
        "{v:#}"
    );
    assert!(
        planned.iter().any(|c| c.starts_with("ip route add")),
        "{v:#}"
    );

    let rules = rules_for(ns, VIP);
    assert_eq!(rules.len(), 1, "{rules:#?}");
    assert_eq!(rules[0]["priority"], 1234, "{rules:#?}");
    assert_eq!(rules[0]["table"], "4000", "{rules:#?}");
    let r = route_get(ns, &[REMOTE_CLIENT, "from", VIP]);
    assert_eq!(r["gateway"], GW, "{r:#}");

    let again = lb.json(&words(&format!(
        "route add {VIP} --table 4000 --via {GW} --dev eth0 --priority 1234"
    )));
    assert!(changes(&again).is_empty(), "{again:#}");

    lb.ok(&["route", "del", VIP, "--table", "4000"]);
    assert_same(&before, &snapshot(ns), "route del (custom priority)");
}

#[test]
fn route_dry_run_changes_nothing() {
    require_root!();
    let lab = lab("routedry");
    let ns = &lab.backend;
    let lb = Lbctl::new(ns);
    let before = snapshot(ns);

    let out = lb.run_line(&format!(
        "-n route add {VIP} --table 200 --via {GW} --dev eth0"
    ));
    assert!(out.code == 0 || out.code == 1, "{out}");
    let lines: Vec<&str> = out.stdout.lines().map(str::trim_start).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ip rule add") && l.contains(VIP) && l.contains("200")),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ip route add") && l.contains(GW)),
        "{out}"
    );
    assert_same(&before, &snapshot(ns), "dry-run route add");
}

#[test]
fn route_reserved_tables_are_refused() {
    require_root!();
    let lab = lab("routeres");
    let ns = &lab.backend;
    let lb = Lbctl::new(ns);
    let before = snapshot(ns);
    for table in ["0", "253", "254", "255"] {
        let out = lb.run_line(&format!(
            "route add {VIP} --table {table} --via {GW} --dev eth0"
        ));
        out.expect_code(2).expect_one_line_error();
        assert_same(&before, &snapshot(ns), &format!("reserved table {table}"));
    }
}

#[test]
fn route_table_used_by_a_foreign_rule_is_refused() {
    require_root!();
    let lab = lab("routeforeign");
    let ns = &lab.backend;
    let lb = Lbctl::new(ns);
    let before = snapshot(ns);

    // Table 300 is referenced by the user's `from 198.18.0.77 lookup 300`.
    let out = lb.run_line(&format!(
        "route add {VIP} --table 300 --via {GW} --dev eth0"
    ));
    out.expect_code(2).expect_one_line_error();
    assert_same(&before, &snapshot(ns), "foreign table 300");

    // And `route del` of something lbctl never added leaves it alone, whatever it reports.
    let out = lb.run(&["route", "del", "198.18.0.77", "--table", "300"]);
    assert!(out.code == 0 || out.code == 2, "{out}");
    assert_same(&before, &snapshot(ns), "route del of a foreign rule");
}
