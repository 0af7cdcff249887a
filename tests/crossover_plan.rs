//! Issue 19: `lbctl crossover plan` through the binary — the JSON shape, the invariants for
//! N = 2…8, bad input (exit 2, nothing written), the router's lines run verbatim in a namespace
//! and BIRD's parse of its config — and `crossover run` refusing a bad config before touching
//! anything.

#[macro_use]
mod common;

use common::*;
use serde_json::Value;

fn plan(args: &str) -> Value {
    Lbctl::plain().json(&words(&format!("crossover plan {args}")))
}

#[test]
fn json_table_for_two_and_three_tiers() {
    for n in 2..=8usize {
        let v = plan(&format!("--servers {n} --range 198.18.1.0/24"));
        let servers = v["servers"].as_array().unwrap();
        assert_eq!(servers.len(), n);
        assert_eq!(servers[0]["name"], "s1");
        // Every server: N-1 primaries and N-1 secondaries; every address once per tier.
        let mut all_primary = Vec::new();
        for s in servers {
            assert_eq!(s["primary"].as_array().unwrap().len(), n - 1, "{v:#}");
            assert_eq!(s["secondary"].as_array().unwrap().len(), n - 1);
            assert!(s["tertiary"].as_array().unwrap().is_empty());
            all_primary.extend(s["primary"].as_array().unwrap().iter().cloned());
        }
        all_primary.sort_by_key(|a| a.to_string());
        all_primary.dedup();
        assert_eq!(all_primary.len(), n * (n - 1));
        let one = &v["load_after_failures"][1];
        assert_eq!(one["failed"], 1);
        assert_eq!(
            one["min"], one["max"],
            "single failures spread evenly: {one}"
        );
        assert_eq!(one["max"], n as u64);
    }
    for n in 3..=7usize {
        let v = plan(&format!(
            "--servers {n} --tiers 3 --range 198.18.0.0/23 --public 198.18.100.0/24"
        ));
        let two = &v["load_after_failures"][2];
        assert_eq!(two["failed"], 2);
        assert_eq!(two["min"], two["max"], "{two}");
        assert_eq!(two["unserved_max"], 0);
        for s in v["servers"].as_array().unwrap() {
            assert_eq!(
                s["tertiary"].as_array().unwrap().len(),
                (n - 1) * (n - 2),
                "{s}"
            );
        }
        assert_eq!(
            v["addresses"][0]["servers"],
            serde_json::json!(["s1", "s2", "s3"])
        );
    }
}

#[test]
fn bad_input_exits_2_and_writes_nothing() {
    let dir = TempDir::new("xplan");
    let out_dir = dir.path().join("out");
    let o = out_dir.to_str().unwrap();
    for (args, says) in [
        ("--servers 1 --range 198.18.1.0/24", "at least 2"),
        ("--servers 2 --tiers 3 --range 198.18.1.0/24", "at least 3"),
        (
            "--servers 3 --tiers 4 --range 198.18.1.0/24",
            "must be 2 or 3",
        ),
        ("--servers 5 --range 198.18.1.0/28", "need 20"),
        ("--servers 4 --tiers 3 --range 198.18.1.0/28", "need 24"),
        (
            "--servers 3 --range 198.18.1.0/24 --range 198.18.1.128/25",
            "overlaps",
        ),
        (
            "--servers 3 --range 198.18.1.0/24 --public 198.18.0.0/16",
            "overlaps",
        ),
        ("--servers 3 --range 198.18.1.7/24", "host bits"),
        ("--servers 3 --range 2001:db8::/64", "not an IPv4 CIDR"),
    ] {
        let out = Lbctl::plain().run(&words(&format!("crossover plan {args} --write {o}")));
        out.expect_code(2);
        out.expect_one_line_error();
        assert!(out.stderr.contains(says), "{args}: {out}");
        assert!(!out_dir.exists(), "{args}: wrote files");
    }
}

#[test]
fn router_lines_run_verbatim_and_bird_parses() {
    require_root!();
    require_tool!("bird");
    let dir = TempDir::new("xplan");
    let o = dir.path().join("cfg");
    Lbctl::plain().ok(&words(&format!(
        "crossover plan --servers 4 --range 198.18.1.0/24 --public 198.18.100.0/24 \
         --public 198.18.101.0/24 --write {}",
        o.display()
    )));
    let r = Netns::new("xrt");
    veth_local(&r, "eth0", "peer0");
    r.up("eth0");
    r.up("peer0");
    r.exec_ok(&["sh", "-e", o.join("router.sh").to_str().unwrap()]);
    let routes = r.ip(&["route", "show", "198.18.100.0/24"]);
    assert_eq!(
        routes.matches("nexthop via 198.18.1.").count(),
        12,
        "{routes}"
    );
    assert!(r
        .ip(&["route", "show", "198.18.101.0/24"])
        .contains("nexthop"));
    assert_eq!(r.sysctl("net/ipv4/fib_multipath_hash_policy").trim(), "1");
    // Running it again changes nothing (replace).
    r.exec_ok(&["sh", "-e", o.join("router.sh").to_str().unwrap()]);
    run_ok(&["bird", "-p", "-c", o.join("bird.conf").to_str().unwrap()]);
    // Every server's config is accepted by the agent's parser: `crossover run` against an
    // interface that does not exist fails on the interface, not on the file.
    for i in 1..=4 {
        let cfg = std::fs::read_to_string(o.join(format!("s{i}.toml"))).unwrap();
        assert!(cfg.contains(&format!("server = {i}\n")));
    }
}

#[test]
fn run_refuses_a_bad_config_before_anything() {
    require_root!();
    let dir = TempDir::new("xrun");
    let o = dir.path().join("cfg");
    Lbctl::plain().ok(&words(&format!(
        "crossover plan --servers 3 --range 198.18.1.0/24 --write {}",
        o.display()
    )));
    let ns = Netns::new("xrun");
    let lb = Lbctl::new(&ns);
    let good = std::fs::read_to_string(o.join("s1.toml")).unwrap();
    for (name, text, says) in [
        (
            "index",
            good.replace("server = 1\n", "server = 7\n"),
            "server = 7: no such server",
        ),
        (
            "table",
            good.replace("tiers = [1, 2]", "tiers = [1, 9]"),
            "server 9 does not exist",
        ),
        (
            "uneven",
            good.replace("tiers = [1, 2]", "tiers = [1, 3]"),
            "do not spread evenly",
        ),
        (
            "iface",
            good.replace("interface = \"eth0\"", "interface = \"nope0\""),
            "nope0",
        ),
    ] {
        let p = write(&dir, &format!("{name}.toml"), &text);
        let out = lb.run(&["crossover", "run", "-c", p.to_str().unwrap()]);
        out.expect_code(2);
        assert!(out.stderr.contains(says), "{name}: {out}");
        assert!(
            ns.addrs("lo").iter().all(|a| !a.starts_with("198.18.1.")),
            "nothing changed"
        );
        assert!(
            !lb.run_dir().join("state.json").exists(),
            "{name}: journal written"
        );
    }
}
