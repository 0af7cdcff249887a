//! `lbctl::sys::nfnl` against the real kernel, checked with nft: the element encoding matches
//! what nft writes for the balancer's slot maps (`typeof numgen inc mod M : ether daddr`), a
//! batch is one transaction (a failing message changes nothing and is named in the error), the
//! dump returns what nft lists, and the generation moves with commits but not with packet-path
//! updates of dynamic sets.

#[macro_use]
mod common;

use std::collections::BTreeMap;

use common::*;
use lbctl::sys::nfnl::{Batch, Elem, Nfnl, NFPROTO_NETDEV};
use serde_json::Value;

const M: u32 = 65537;

fn mac(last: u8) -> Vec<u8> {
    vec![2, 0, 0, 0, 0, last]
}

/// `typeof numgen inc mod M` keys: nft stores the 32-bit register in host byte order.
fn slot(i: u32, last: u8) -> Elem {
    Elem {
        key: i.to_ne_bytes().to_vec(),
        data: Some(mac(last)),
    }
}

/// Slot → MAC (as text) from `nft -j list map netdev t m`.
fn nft_slots(ns: &Netns) -> BTreeMap<u64, String> {
    let doc = ns.nft_json(&["list", "map", "netdev", "t", "m"]);
    doc["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("map")?.get("elem")?.as_array())
        .flatten()
        .map(|e| {
            (
                e[0].as_u64().unwrap(),
                e[1].as_str().unwrap().to_lowercase(),
            )
        })
        .collect()
}

/// Slot → MAC (as text) from our own dump.
fn our_slots(elems: &[Elem]) -> BTreeMap<u64, String> {
    elems
        .iter()
        .map(|e| {
            let k = u32::from_ne_bytes(e.key[..].try_into().unwrap());
            let d = e.data.as_ref().unwrap();
            let text: Vec<String> = d.iter().map(|b| format!("{b:02x}")).collect();
            (u64::from(k), text.join(":"))
        })
        .collect()
}

fn in_ns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    lbctl::sys::netns::run_in(ns.name(), f).unwrap()
}

fn dump(ns: &Netns) -> Option<Vec<Elem>> {
    in_ns(ns, || {
        Nfnl::open()
            .unwrap()
            .set_elements(NFPROTO_NETDEV, "t", "m")
            .unwrap()
    })
}

fn table(ns: &Netns) {
    ns.nft(&format!(
        "table netdev t {{ map m {{ typeof numgen inc mod {M} : ether daddr; }}; counter c_x {{ }}; }}\n"
    ));
}

#[test]
fn encoding_matches_nft() {
    require_root!();
    let ns = Netns::new("nfnl-enc");
    table(&ns);
    // nft writes, we read: key bytes and data bytes exactly as our batch encodes them.
    ns.nft("add element netdev t m { 1 : 02:00:00:00:00:11, 258 : 02:00:00:00:00:12, 65536 : 02:00:00:00:00:13 }\n");
    let mut got = dump(&ns).expect("the map exists");
    got.sort();
    let mut want = vec![slot(1, 0x11), slot(258, 0x12), slot(65536, 0x13)];
    want.sort();
    assert_eq!(got, want);
    // We write, nft reads.
    let ns_name = ns.name().to_string();
    lbctl::sys::netns::run_in(&ns_name, || {
        let mut b = Batch::new();
        b.delete(NFPROTO_NETDEV, "t", "m", vec![slot(258, 0)]);
        b.add(
            NFPROTO_NETDEV,
            "t",
            "m",
            vec![slot(258, 0x21), slot(7, 0x22)],
        );
        Nfnl::open().unwrap().commit(&b).unwrap();
    })
    .unwrap();
    let listed = nft_slots(&ns);
    assert_eq!(
        listed,
        BTreeMap::from([
            (1, "02:00:00:00:00:11".to_string()),
            (7, "02:00:00:00:00:22".to_string()),
            (258, "02:00:00:00:00:21".to_string()),
            (65536, "02:00:00:00:00:13".to_string()),
        ])
    );
    assert_eq!(our_slots(&dump(&ns).unwrap()), listed);
    // Missing objects are "not there", not an error.
    let none = in_ns(&ns, || {
        let mut n = Nfnl::open().unwrap();
        (
            n.set_elements(NFPROTO_NETDEV, "t", "nope").unwrap(),
            n.set_elements(NFPROTO_NETDEV, "nope", "m").unwrap(),
            n.counters(NFPROTO_NETDEV, "nope").unwrap(),
            n.counters(NFPROTO_NETDEV, "t").unwrap(),
            n.table_exists(NFPROTO_NETDEV, "t").unwrap()
                && !n.table_exists(NFPROTO_NETDEV, "nope").unwrap(),
        )
    });
    assert!(none.4, "table_exists");
    assert_eq!(none.0, None);
    assert_eq!(none.1, None);
    assert!(none.2.is_empty());
    assert_eq!(none.3, BTreeMap::from([("c_x".to_string(), (0, 0))]));
}

#[test]
fn full_map_and_one_transaction() {
    require_root!();
    let ns = Netns::new("nfnl-full");
    table(&ns);
    // A full load of M slots (three backends), then a third of them moved: what lb run does.
    let full: Vec<Elem> = (0..M).map(|i| slot(i, 0x11 + (i % 3) as u8)).collect();
    let moved: Vec<u32> = (0..M).filter(|i| i % 3 == 1).collect();
    let r = in_ns(&ns, move || {
        let mut n = Nfnl::open().unwrap();
        let mut b = Batch::new();
        b.flush(NFPROTO_NETDEV, "t", "m");
        b.add(NFPROTO_NETDEV, "t", "m", full);
        n.commit(&b)?;
        let mut b = Batch::new();
        b.delete(
            NFPROTO_NETDEV,
            "t",
            "m",
            moved.iter().map(|&i| slot(i, 0)).collect(),
        );
        b.add(
            NFPROTO_NETDEV,
            "t",
            "m",
            moved
                .iter()
                .map(|&i| slot(i, if i % 2 == 0 { 0x11 } else { 0x13 }))
                .collect(),
        );
        n.commit(&b)
    });
    r.unwrap();
    let listed = nft_slots(&ns);
    assert_eq!(listed.len(), M as usize);
    assert!(!listed.values().any(|m| m == "02:00:00:00:00:12"));
    assert_eq!(our_slots(&dump(&ns).unwrap()), listed);

    // One failing message (a slot that is not there) fails the whole batch, named in the error;
    // the add before it is not applied.
    let err = in_ns(&ns, || {
        let mut b = Batch::new();
        b.add(NFPROTO_NETDEV, "t", "m", vec![]);
        b.flush(NFPROTO_NETDEV, "t", "m");
        b.delete(NFPROTO_NETDEV, "t", "m", vec![slot(M + 5, 0)]);
        Nfnl::open().unwrap().commit(&b).unwrap_err().to_string()
    });
    assert!(
        err.contains("delete 1 element(s) of netdev t m") && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(nft_slots(&ns), listed, "the flush must not have happened");
    // A missing set: the same, not a panic or a partial change.
    let err = in_ns(&ns, || {
        let mut b = Batch::new();
        b.add(NFPROTO_NETDEV, "t", "nope", vec![slot(1, 1)]);
        Nfnl::open().unwrap().commit(&b).unwrap_err().to_string()
    });
    assert!(err.contains("add 1 element(s) of netdev t nope"), "{err}");
}

#[test]
fn generation_moves_with_commits_only() {
    require_root!();
    let ns = Netns::new("nfnl-gen");
    table(&ns);
    // A dynamic set updated from the packet path (every packet on lo's ingress).
    ns.nft(
        "add table netdev d\n\
         add set netdev d s { typeof ip saddr; size 1024; flags dynamic; counter; }\n\
         add chain netdev d c { type filter hook ingress device \"lo\" priority 0; policy accept; }\n\
         add rule netdev d c update @s { ip saddr }\n",
    );
    let g0 = in_ns(&ns, || Nfnl::open().unwrap().generation().unwrap());
    ns.exec_ok(&["ping", "-c", "3", "-i", "0.2", "-W", "1", "127.0.0.1"]);
    let doc: Value = ns.nft_json(&["list", "set", "netdev", "d", "s"]);
    let elems = doc["nftables"][1]["set"]["elem"].as_array().cloned();
    assert!(
        elems.is_some_and(|e| !e.is_empty()),
        "the packet path did not update the set: {doc}"
    );
    let (g1, g2) = in_ns(&ns, || {
        let mut n = Nfnl::open().unwrap();
        let g1 = n.generation().unwrap();
        let mut b = Batch::new();
        b.add(NFPROTO_NETDEV, "t", "m", vec![slot(1, 0x11)]);
        n.commit(&b).unwrap();
        (g1, n.generation().unwrap())
    });
    assert_eq!(g1, g0, "packet-path updates must not bump the generation");
    assert_eq!(g2, g1.wrapping_add(1), "one commit, one generation");
    // A change by nft moves it too.
    ns.nft("delete element netdev t m { 1 }\n");
    let g3 = in_ns(&ns, || Nfnl::open().unwrap().generation().unwrap());
    assert_eq!(g3, g2.wrapping_add(1));
}

/// Per-element counters of a `counter` set (the balancer's per-backend sets `b_…`/`n_…`) read
/// over netlink equal what nft lists; a set without counters gives `None` per element, a
/// missing set `None`.
#[test]
fn set_counters_match_nft() {
    require_root!();
    let ns = Netns::new("nfcnt");
    ns.nft(
        "table netdev t {\n\
         set b { typeof ether daddr; size 65536; flags dynamic; counter; }\n\
         set plain { typeof ether daddr; }\n\
         }\n\
         add element netdev t b { 02:00:00:00:00:11 counter packets 3 bytes 180, \
         02:00:00:00:00:12 counter packets 7 bytes 4242 }\n\
         add element netdev t plain { 02:00:00:00:00:13 }\n",
    );
    let (b, plain, missing) = in_ns(&ns, || {
        let mut nl = Nfnl::open().unwrap();
        (
            nl.set_counters(NFPROTO_NETDEV, "t", "b").unwrap(),
            nl.set_counters(NFPROTO_NETDEV, "t", "plain").unwrap(),
            nl.set_counters(NFPROTO_NETDEV, "t", "nope").unwrap(),
        )
    });
    let mut b = b.expect("set b exists");
    b.sort();
    assert_eq!(
        b,
        vec![(mac(0x11), Some((3, 180))), (mac(0x12), Some((7, 4242)))]
    );
    // The same figures as nft's own listing.
    let doc = ns.nft_json(&["list", "set", "netdev", "t", "b"]);
    let listed: Vec<(u64, u64)> = doc["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("set")?.get("elem")?.as_array())
        .flatten()
        .map(|e| {
            let c = &e["elem"]["counter"];
            (c["packets"].as_u64().unwrap(), c["bytes"].as_u64().unwrap())
        })
        .collect();
    let mut ours: Vec<(u64, u64)> = b.iter().map(|(_, c)| c.unwrap()).collect();
    let mut listed = listed;
    ours.sort();
    listed.sort();
    assert_eq!(ours, listed);
    assert_eq!(plain, Some(vec![(mac(0x13), None)]));
    assert_eq!(missing, None);
}
