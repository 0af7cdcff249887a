//! `lbctl::sys::arptable` against the real kernel, checked with nft: the table lbctl builds over
//! netlink is the one nft builds from the same text (`nft list table arp lbctl` prints the same
//! both ways), a table nft built reads back intact, every kind of change made by hand is seen
//! as "not intact", element changes are one transaction (a failing one changes nothing), and
//! the rules' counters count real ARP requests.

#[macro_use]
mod common;

use std::net::Ipv4Addr;

use common::*;
use lbctl::plan::{ArpMap, ArpOps};
use lbctl::sys::arptable::{self, ArpObserved};

/// The table as the module documentation (and `ArpOps::commands`) writes it, for nft.
const NFT_TEXT: &str = "table arp lbctl {
  set vips { type ipv4_addr; }
  map vip_rip { type ipv4_addr : ipv4_addr; }
  chain input { type filter hook input priority filter; policy accept;
    arp operation request arp daddr ip @vips counter drop
  }
  chain output { type filter hook output priority filter; policy accept;
    arp saddr ip @vips counter arp saddr ip set arp saddr ip map @vip_rip
  }
}
";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn map(pairs: &[(&str, &str)]) -> ArpMap {
    pairs.iter().map(|(v, r)| (ip(v), ip(r))).collect()
}

fn observe(ns: &Netns) -> ArpObserved {
    lbctl::sys::netns::run_in(ns.name(), || arptable::observe().unwrap()).unwrap()
}

fn apply(ns: &Netns, ops: ArpOps) -> lbctl::Result<()> {
    lbctl::sys::netns::run_in(ns.name(), move || arptable::apply(&ops)).unwrap()
}

fn listing(ns: &Netns) -> String {
    let out = ns.nft_text(&["list", "table", "arp", "lbctl"]);
    assert!(out.success(), "{}", out.stderr);
    out.stdout
}

fn two() -> ArpMap {
    map(&[
        ("198.18.0.100", "198.18.0.11"),
        ("198.18.0.101", "198.18.0.11"),
    ])
}

#[test]
fn netlink_and_nft_build_the_same_table() {
    require_root!();
    let by_nft = Netns::new("arpt-nft");
    by_nft.nft(NFT_TEXT);
    by_nft.nft("add element arp lbctl vips { 198.18.0.100, 198.18.0.101 }\n");
    by_nft.nft(
        "add element arp lbctl vip_rip { 198.18.0.100 : 198.18.0.11, 198.18.0.101 : 198.18.0.11 }\n",
    );
    let by_us = Netns::new("arpt-nl");
    assert_eq!(observe(&by_us), observe_absent());
    apply(&by_us, ArpOps::new(None, Some(&two()), false)).unwrap();
    assert_eq!(listing(&by_us), listing(&by_nft));
    // Both read back intact, with the same contents.
    for ns in [&by_nft, &by_us] {
        let o = observe(ns);
        assert!(o.intact, "{}", listing(ns));
        assert_eq!(o.map, Some(two()));
    }
    // The printed commands build the same table too (what `--dry-run` shows is runnable).
    let by_cmds = Netns::new("arpt-cmd");
    for c in ArpOps::new(None, Some(&two()), false).commands() {
        let out = run_cmd(
            &["ip", "netns", "exec", by_cmds.name(), "sh", "-c", &c],
            &[],
            None,
        );
        assert!(out.success(), "{c}: {}", out.stderr);
    }
    assert_eq!(listing(&by_cmds), listing(&by_us));
}

fn observe_absent() -> ArpObserved {
    ArpObserved {
        map: None,
        intact: true,
        dropped: 0,
        rewritten: 0,
    }
}

#[test]
fn changes_by_hand_are_not_intact() {
    require_root!();
    let ns = Netns::new("arpt-tamper");
    let tampers = [
        "delete rule arp lbctl input handle HANDLE_IN",
        "add rule arp lbctl input counter",
        "add chain arp lbctl input { type filter hook input priority filter; policy drop; }",
        "add chain arp lbctl extra",
        "add table arp lbctl { flags dormant; }",
        "add element arp lbctl vips { 198.18.0.200 }",
        "delete element arp lbctl vips { 198.18.0.100 }",
        "delete map arp lbctl vip_rip",
    ];
    for t in tampers {
        apply(&ns, ArpOps::new(None, Some(&two()), false)).unwrap();
        assert!(observe(&ns).intact);
        let handle = handle_of_input_rule(&ns);
        let t = t.replace("HANDLE_IN", &handle);
        // The map cannot go while a rule uses it: delete the output rule with it.
        if t.starts_with("delete map") {
            ns.nft("flush chain arp lbctl output\n");
        }
        ns.nft(&format!("{t}\n"));
        let o = observe(&ns);
        assert!(!o.intact, "{t}: still intact:\n{}", listing(&ns));
        // A rebuild (what `apply` plans for a table that is not intact) makes it whole.
        let from = o.map.clone();
        apply(&ns, ArpOps::new(from.as_ref(), Some(&two()), true)).unwrap();
        let o = observe(&ns);
        assert!(o.intact && o.map == Some(two()), "{t}: after rebuild");
        apply(&ns, ArpOps::new(Some(&two()), None, false)).unwrap();
        assert_eq!(observe(&ns), observe_absent(), "{t}: removed");
    }
}

fn handle_of_input_rule(ns: &Netns) -> String {
    let out = ns.nft_text(&["-a", "list", "chain", "arp", "lbctl", "input"]);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("drop"))
        .expect("the input rule");
    line.rsplit("handle ").next().unwrap().trim().to_string()
}

#[test]
fn element_changes_are_one_transaction() {
    require_root!();
    let ns = Netns::new("arpt-elem");
    apply(&ns, ArpOps::new(None, Some(&two()), false)).unwrap();
    // One VIP goes, one RIP changes, one VIP comes: exactly the printed element commands.
    let to = map(&[
        ("198.18.0.101", "198.18.0.12"),
        ("198.18.0.102", "198.18.0.11"),
    ]);
    let ops = ArpOps::new(Some(&two()), Some(&to), false);
    assert_eq!(
        ops.commands(),
        [
            "nft delete element arp lbctl vips { 198.18.0.100 }",
            "nft delete element arp lbctl vip_rip { 198.18.0.100, 198.18.0.101 }",
            "nft add element arp lbctl vips { 198.18.0.102 }",
            "nft add element arp lbctl vip_rip { 198.18.0.101 : 198.18.0.12, 198.18.0.102 : 198.18.0.11 }",
        ]
    );
    apply(&ns, ops).unwrap();
    let o = observe(&ns);
    assert!(o.intact);
    assert_eq!(o.map, Some(to.clone()));
    // A step that fails (deleting a VIP that is not there) fails the whole transaction: the
    // additions before it in the same batch are not kept either.
    let stale = map(&[
        ("198.18.0.101", "198.18.0.12"),
        ("198.18.0.102", "198.18.0.11"),
        ("198.18.0.103", "198.18.0.11"),
    ]);
    let wanted = map(&[("198.18.0.104", "198.18.0.11")]);
    let err = apply(&ns, ArpOps::new(Some(&stale), Some(&wanted), false)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("nothing was changed") && msg.contains("arp lbctl"),
        "{msg}"
    );
    assert_eq!(
        observe(&ns).map,
        Some(to),
        "unchanged after the failed batch"
    );
    // 10,000 VIPs in one change, and back to none.
    let many: ArpMap = (0..10_000u32)
        .map(|i| (Ipv4Addr::from(0xc612_0000 + i), ip("198.18.255.1")))
        .collect();
    let cur = observe(&ns).map;
    apply(&ns, ArpOps::new(cur.as_ref(), Some(&many), false)).unwrap();
    let o = observe(&ns);
    assert!(o.intact);
    assert_eq!(o.map.as_ref().map(|m| m.len()), Some(10_000));
    assert_eq!(o.map, Some(many.clone()));
    apply(&ns, ArpOps::new(Some(&many), None, false)).unwrap();
    assert!(!ns.nft_table_exists("arp", "lbctl"));
    // A table planned from "absent" that someone made in the meantime: the creation fails,
    // nothing is merged into the other table.
    ns.nft("add table arp lbctl");
    ns.nft("add chain arp lbctl theirs");
    let before = listing(&ns);
    let err = apply(&ns, ArpOps::new(None, Some(&two()), false)).unwrap_err();
    assert!(err.to_string().contains("File exists"), "{err}");
    assert_eq!(listing(&ns), before, "their table is untouched");
    ns.nft("delete table arp lbctl");
}

#[test]
fn counters_count_real_arp_requests() {
    require_root!();
    let be = Netns::new("arpt-be");
    let cl = Netns::new("arpt-cl");
    veth(&be, "eth0", &cl, "eth0");
    be.add_addr("eth0", "198.18.0.11/24");
    cl.add_addr("eth0", "198.18.0.10/24");
    be.up("eth0");
    cl.up("eth0");
    be.add_addr("lo", "198.18.0.100/32");
    be.settle();
    apply(&be, ArpOps::new(None, Some(&two()), false)).unwrap();
    // Three requests for the VIP: all dropped by the input rule, none answered.
    let out = cl.exec(&["arping", "-c", "3", "-w", "3", "-I", "eth0", "198.18.0.100"]);
    assert!(
        !out.success(),
        "the VIP must not be answered: {}",
        out.stdout
    );
    let o = observe(&be);
    assert!(o.dropped >= 3, "dropped {}", o.dropped);
    let listed = listing(&be);
    assert!(
        listed.contains(&format!("counter packets {} ", o.dropped)),
        "{listed}"
    );
}
