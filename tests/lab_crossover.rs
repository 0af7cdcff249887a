//! The crossover lab (issue 19, item 3): `lbctl lab up --topology crossover --servers N` builds
//! a router with the plan's static multipath routes, a client behind it and N servers running
//! the real `lbctl crossover run` with an HTTP check of their own `lab serve`, in real
//! namespaces, through the CLI. Checks: traffic to the public range reaches every server;
//! `lab break s2 down` (its link cut) moves s2's addresses to their secondaries, traffic still
//! all succeeds and `lab status` shows the survivors holding them; `lab break s3 service-dead`
//! makes s3's agent release everything; with three tiers a double failure is still fully
//! served; `lab down` leaves no namespace and no process; bad requests exit 2 and create
//! nothing. Counts and states are asserted, never times.
//!
//! Each test has its own lab name (`x<pid>-…`) and `LBCTL_RUN_DIR`.

#[macro_use]
mod common;

use std::collections::BTreeMap;

use common::labrun::{assert_gone, lab_name, namespaces_of, Run};
use serde_json::Value;

/// `lab traffic --json --requests N`: (answers per server, failures).
fn traffic(run: &Run, name: &str, n: usize) -> (BTreeMap<String, u64>, Vec<String>) {
    let out = run.lbctl(&[
        "--json",
        "lab",
        "traffic",
        "--name",
        name,
        "--requests",
        &n.to_string(),
    ]);
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("lab traffic --json: {e}\n{out}"));
    let per: BTreeMap<String, u64> = v["traffic"]["per_server"]
        .as_object()
        .unwrap_or_else(|| panic!("{out}"))
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
        .collect();
    let failures: Vec<String> = v["traffic"]["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    assert_eq!(out.code, if failures.is_empty() { 0 } else { 1 }, "{out}");
    (per, failures)
}

/// `lab down` removed the lab: no namespace, no record, no process.
#[track_caller]
fn down_and_gone(run: &Run, name: &str) {
    let out = run.lbctl(&["lab", "down", "--name", name]);
    assert_eq!(out.code, 0, "{out}");
    assert_gone(run, name);
}

/// One address of a status document: (address, tiers, held_by, router).
type AddrRow = (String, Vec<String>, Vec<String>, Option<String>);

fn addresses(st: &Value) -> Vec<AddrRow> {
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    st["crossover"]["addresses"]
        .as_array()
        .unwrap_or_else(|| panic!("no crossover addresses in {st:#}"))
        .iter()
        .map(|a| {
            (
                a["addr"].as_str().unwrap().to_string(),
                strs(&a["tiers"]),
                strs(&a["held_by"]),
                a["router"].as_str().map(String::from),
            )
        })
        .collect()
}

fn up(run: &Run, name: &str, servers: u8, tiers: u8) -> Value {
    let out = run.lbctl(&[
        "--json",
        "lab",
        "up",
        "--name",
        name,
        "--topology",
        "crossover",
        "--servers",
        &servers.to_string(),
        "--tiers",
        &tiers.to_string(),
    ]);
    assert_eq!(out.code, 0, "{out}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    v["lab"].clone()
}

#[test]
fn three_servers_survive_a_cut_link() {
    require_root!();
    let run = Run::new("labxover");
    let name = lab_name("cut");
    let st = up(&run, &name, 3, 2);
    assert_eq!(st["healthy"], true, "{st:#}");
    let nodes: Vec<&str> = st["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["sw", "client", "router", "s1", "s2", "s3"]);
    // N(N-1) addresses, each held by its primary, and the router sends it there.
    let a = addresses(&st);
    assert_eq!(a.len(), 6);
    for (addr, tiers, held, router) in &a {
        assert_eq!(held, &[tiers[0].clone()], "{addr}: {st:#}");
        assert_eq!(router.as_ref(), Some(&tiers[0]), "{addr}: {st:#}");
    }
    // The router runs the plan's multipath route over every internal address.
    let out = run.lbctl(&[
        "lab",
        "exec",
        "--name",
        &name,
        "router",
        "--",
        "ip",
        "route",
        "show",
        "198.18.100.0/24",
    ]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        out.stdout.matches("nexthop via 198.18.4.").count(),
        6,
        "{out}"
    );

    let (per, failures) = traffic(&run, &name, 60);
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(
        per.keys().collect::<Vec<_>>(),
        ["s1", "s2", "s3"],
        "{per:?}"
    );

    // Only the crossover faults, only into servers.
    for (node, fault) in [("router", "down"), ("s1", "arp-flux"), ("s1", "drain")] {
        let out = run.lbctl(&["lab", "break", "--name", &name, node, fault]);
        assert_eq!(out.code, 2, "{out}");
    }

    // s2 cut off: every one of its addresses is held by its secondary, which the router uses.
    let out = run.lbctl(&["lab", "break", "--name", &name, "s2", "down"]);
    assert_eq!(out.code, 0, "{out}");
    let (per, failures) = traffic(&run, &name, 60);
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(per.keys().collect::<Vec<_>>(), ["s1", "s3"], "{per:?}");
    let (code, st) = run.status(&name);
    assert_eq!(code, 1, "a cut link leaves the lab degraded: {st:#}");
    assert_eq!(st["crossover"]["cut"], serde_json::json!(["s2"]), "{st:#}");
    let problems = st["problems"].to_string();
    assert!(problems.contains("s2's link is cut"), "{problems}");
    let mut moved = 0;
    for (addr, tiers, held, router) in addresses(&st) {
        if tiers[0] == "s2" {
            moved += 1;
            assert!(held.contains(&tiers[1]), "{addr} held by {held:?}: {st:#}");
            assert_eq!(router.as_ref(), Some(&tiers[1]), "{addr}: {st:#}");
        } else {
            // Every other address stays where it was (s2 only ever held its primaries).
            assert_eq!(held, [tiers[0].clone()], "{addr}: {st:#}");
        }
    }
    assert_eq!(moved, 2);
    // Nothing is claimed twice among the servers still on the segment.
    assert!(!problems.contains("at once"), "{problems}");
    let out = run.lbctl(&["lab", "status", "--name", &name]);
    assert!(out.stdout.contains("s2(cut)"), "{out}");
    let out = run.lbctl(&["lab", "break", "--name", &name, "s2", "service-dead"]);
    assert_eq!(out.code, 2, "already broken: {out}");

    down_and_gone(&run, &name);
}

#[test]
fn service_death_releases_and_three_tiers_cover_a_double_failure() {
    require_root!();
    let run = Run::new("labxover");
    let name = lab_name("dead");
    let st = up(&run, &name, 4, 3);
    assert_eq!(addresses(&st).len(), 24, "N(N-1)(N-2) with three tiers");

    // s3's service dies while its kernel is fine: its agent releases every address.
    let out = run.lbctl(&["lab", "break", "--name", &name, "s3", "service-dead"]);
    assert_eq!(out.code, 0, "{out}");
    let (code, st) = run.status(&name);
    assert_eq!(code, 1, "{st:#}");
    for (addr, tiers, held, router) in addresses(&st) {
        assert!(!held.contains(&"s3".to_string()), "{addr}: {st:#}");
        let live = tiers.iter().find(|t| *t != "s3").unwrap();
        assert_eq!(held, std::slice::from_ref(live), "{addr}: {st:#}");
        assert_eq!(router.as_ref(), Some(live), "{addr}: {st:#}");
    }
    let s3 = st["crossover"]["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "s3")
        .unwrap()
        .clone();
    assert_eq!(s3["running"], true, "{s3:#}");
    assert_eq!(s3["healthy"], false, "{s3:#}");
    let (per, failures) = traffic(&run, &name, 60);
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(
        per.keys().collect::<Vec<_>>(),
        ["s1", "s2", "s4"],
        "{per:?}"
    );

    // And s2 cut off as well: with three tiers every address still has a live server.
    let out = run.lbctl(&["lab", "break", "--name", &name, "s2", "down"]);
    assert_eq!(out.code, 0, "{out}");
    let (per, failures) = traffic(&run, &name, 60);
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(per.keys().collect::<Vec<_>>(), ["s1", "s4"], "{per:?}");
    let (_, st) = run.status(&name);
    for (addr, tiers, held, router) in addresses(&st) {
        let live = tiers.iter().find(|t| *t != "s3" && *t != "s2").unwrap();
        assert!(held.contains(live), "{addr}: {st:#}");
        assert_eq!(router.as_ref(), Some(live), "{addr}: {st:#}");
    }

    down_and_gone(&run, &name);
}

#[test]
fn bad_requests_exit_2_and_create_nothing() {
    let run = Run::new("labxover");
    let name = lab_name("bad");
    for (args, needle) in [
        (vec!["--servers", "2"], "between 3 and 8"),
        (vec!["--servers", "9"], "between 3 and 8"),
        (vec!["--servers", "3", "--balancers", "2"], "--balancers"),
        (
            vec!["--servers", "3", "--balancers", "2", "--routing", "bgp"],
            "--balancers",
        ),
        (vec!["--servers", "3", "--backends", "3"], "--backends"),
        (vec!["--servers", "8", "--tiers", "3"], "at most 7 servers"),
        (vec!["--servers", "3", "--tiers", "4"], "--tiers"),
        (vec![], "--servers"),
    ] {
        let mut argv = vec!["lab", "up", "--name", &name, "--topology", "crossover"];
        argv.extend(args.iter());
        let out = run.lbctl(&argv);
        assert_eq!(out.code, 2, "{out}");
        assert!(out.stderr.contains(needle), "want {needle:?}: {out}");
    }
    // --servers belongs to a crossover lab.
    let out = run.lbctl(&["lab", "up", "--name", &name, "--servers", "3"]);
    assert_eq!(out.code, 2, "{out}");
    let out = run.lbctl(&[
        "lab",
        "up",
        "--name",
        &name,
        "--topology",
        "dsr",
        "--servers",
        "3",
    ]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("--topology crossover"), "{out}");
    assert!(namespaces_of(&name).is_empty());
    assert!(!run.has_record(&name));
}
