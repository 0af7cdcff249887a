//! The routed lab (issue 16, item 4): `lbctl lab up --balancers K --routing bgp` builds a router
//! (BIRD 2, ECMP) in front of K balancers (`lbctl lb run` with `[bgp]`), in real namespaces.
//! Checks: traffic reaches the backends through both balancers; `lab status` shows the router's
//! two next hops; `lab break lb1 down` drops them to one and traffic still works; long
//! downloads across a `break lb1 down` all complete byte-intact (counts, not times); `lab down`
//! leaves no namespace and no process behind.
//!
//! Each test has its own lab name (with this process's PID) and `LBCTL_RUN_DIR`.

#[macro_use]
mod common;

use std::time::Duration;

use common::labrun::{assert_gone, lab_name, namespaces_of, Run};
use common::{Out, LBCTL};
use lbctl::lab::{BalancerFault, Lab, LabSpec, Routing, RoutingSpec};
use serde_json::Value;

fn hops(status: &Value) -> Vec<String> {
    status["next_hops"][0]["via"]
        .as_array()
        .map(|a| a.iter().map(|h| h.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn up(run: &Run, name: &str, balancers: u8) -> Out {
    let k = balancers.to_string();
    run.lbctl(&[
        "lab",
        "up",
        "--name",
        name,
        "--balancers",
        &k,
        "--routing",
        "bgp",
    ])
}

#[test]
fn two_balancers_carry_traffic_and_one_may_die() {
    require_root!();
    require_tool!("bird");
    require_tool!("tc");
    let run = Run::new("labbgp");
    let name = lab_name("two");
    let out = up(&run, &name, 2);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("via lb1, lb2 (2 next hops)"), "{out}");
    assert_eq!(
        namespaces_of(&name).len(),
        7,
        "sw client router lb1 lb2 be1 be2"
    );

    // The router has a path through each balancer.
    let (code, st) = run.status(&name);
    assert_eq!(code, 0, "{st:#}");
    assert_eq!(st["routing"], "bgp");
    assert_eq!(hops(&st), ["lb1", "lb2"], "{st:#}");
    assert_eq!(st["vip"][0], "198.18.2.100:80");
    let text = run.lbctl(&["lab", "status", "--name", &name]);
    assert!(
        text.stdout
            .contains("router: 198.18.2.100:80 via lb1, lb2 (2 next hops)"),
        "{text}"
    );

    // Traffic reaches the backends through both balancers (new connections, new source
    // ports: the L4 hash spreads them).
    let out = run.lbctl(&[
        "--json",
        "lab",
        "traffic",
        "--name",
        &name,
        "--requests",
        "40",
    ]);
    assert_eq!(out.code, 0, "{out}");
    let t: Value = serde_json::from_str(&out.stdout).unwrap();
    let t = &t["traffic"];
    assert!(t["failures"].as_array().unwrap().is_empty(), "{t:#}");
    let answered: u64 = t["per_backend"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(answered, 40, "{t:#}");
    for lb in ["lb1", "lb2"] {
        assert!(
            t["per_balancer"][lb].as_u64().unwrap() > 0,
            "no packets went via {lb}: {t:#}"
        );
    }

    // Crash of lb1: the router keeps only lb2, and traffic still works.
    let out = run.lbctl(&["lab", "break", "--name", &name, "lb1", "down"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("via lb2 (1 next hop)"), "{out}");
    let (code, st) = run.status(&name);
    assert_eq!(code, 1, "a broken balancer leaves the lab degraded: {st:#}");
    assert_eq!(hops(&st), ["lb2"], "{st:#}");
    let out = run.lbctl(&[
        "--json",
        "lab",
        "traffic",
        "--name",
        &name,
        "--requests",
        "20",
    ]);
    assert_eq!(out.code, 0, "{out}");
    let t: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(t["traffic"]["per_balancer"]["lb1"], 0, "{t:#}");
    // Breaking it again is refused.
    let again = run.lbctl(&["lab", "break", "--name", &name, "lb1", "drain"]);
    assert_eq!(again.code, 2, "{again}");
    // A DSR fault is refused in a routed lab, and a balancer fault in a backend.
    let wrong = run.lbctl(&["lab", "break", "--name", &name, "be1", "down"]);
    assert_eq!(wrong.code, 2, "{wrong}");

    let out = run.lbctl(&["lab", "down", "--name", &name]);
    assert_eq!(out.code, 0, "{out}");
    assert_gone(&run, &name);
}

#[test]
fn long_downloads_survive_a_balancer_crash_and_a_drain() {
    require_root!();
    require_tool!("bird");
    require_tool!("tc");
    let run = Run::new("labbgp");
    let name = lab_name("long");
    let spec = LabSpec {
        run_dir: run.dir.clone(),
        ..LabSpec::new(&name, LBCTL)
    };
    let routing = RoutingSpec {
        routing: Routing::Bgp,
        balancers: 3,
    };
    let lab = Lab::up_routed(&spec, Some(&routing), &|_| {})
        .unwrap()
        .guard();
    assert_eq!(lab.next_hops().unwrap()[0].via, ["lb1", "lb2", "lb3"]);

    // 8 paced 1 MiB downloads over 2 backends take seconds: break lb1 while they run.
    const N: usize = 8;
    let l2 = Lab::load(&run.dir, &name).unwrap();
    let downloads = std::thread::spawn(move || l2.traffic_long(N));
    std::thread::sleep(Duration::from_millis(1500));
    let hops = lab.inject_balancer("lb1", BalancerFault::Down).unwrap();
    assert_eq!(hops[0].via, ["lb2", "lb3"]);
    let t = downloads.join().unwrap().unwrap();
    assert_eq!(t.downloads, N);
    assert_eq!(t.intact, N, "broken: {:?}", t.broken);

    // A graceful drain of lb2 breaks nothing either.
    let l2 = Lab::load(&run.dir, &name).unwrap();
    let downloads = std::thread::spawn(move || l2.traffic_long(N));
    std::thread::sleep(Duration::from_millis(1500));
    let hops = lab.inject_balancer("lb2", BalancerFault::Drain).unwrap();
    assert_eq!(hops[0].via, ["lb3"]);
    let t = downloads.join().unwrap().unwrap();
    assert_eq!(t.intact, N, "broken: {:?}", t.broken);

    let report = lab.down().unwrap();
    assert!(report.errors.is_empty(), "{report:?}");
    assert!(report.warnings.is_empty(), "{report:?}");
    assert_gone(&run, &name);
}

#[test]
fn bad_routed_requests_change_nothing() {
    let run = Run::new("labbgp");
    let name = lab_name("bad");
    for (args, want) in [
        (vec!["--balancers", "2"], "--routing"),
        (
            vec!["--balancers", "5", "--routing", "bgp"],
            "between 1 and 4",
        ),
        (
            vec!["--balancers", "0", "--routing", "bgp"],
            "between 1 and 4",
        ),
        (vec!["--routing", "bgp", "--ipv6"], "--ipv6"),
        (vec!["--routing", "bgp", "--no-balancer"], "--no-balancer"),
    ] {
        let mut argv = vec!["lab", "up", "--name", &name];
        argv.extend(args.iter().copied());
        let out = run.lbctl(&argv);
        assert_eq!(out.code, 2, "{args:?}: {out}");
        assert!(out.stderr.contains(want), "{args:?}: {out}");
        assert!(namespaces_of(&name).is_empty());
    }
}
