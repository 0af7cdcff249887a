//! `lbctl vip` against a real (namespaced) kernel.
//!
//! Flow, as STYLE.md §8 asks: apply → assert with `ip -j` → re-apply is a no-op → delete →
//! the namespace is identical to the snapshot taken before, with foreign objects (a user's
//! address on lo, a user's nft table, distinctive sysctls) present throughout and untouched.

#[macro_use]
mod common;

use common::*;
use serde_json::Value;

const VIP: &str = "198.18.0.100";
const FOREIGN_VIP: &str = "198.18.0.200";
const VIP6: &str = "2001:db8::100";

/// A user's firewall table that must survive everything lbctl does.
const USER_TABLE: &str = "table inet filter {
  chain input {
    type filter hook input priority filter; policy accept;
    tcp dport 22 counter accept
  }
}";

/// A backend namespace with a foreign /32 on lo, a user nft table and some distinctive sysctls.
fn backend(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.add_addr("lo", &format!("{FOREIGN_VIP}/32"));
    ns.nft(USER_TABLE);
    ns.set_conf(&[("all", "arp_announce", 1), ("lo", "rp_filter", 2)]);
    ns.settle();
    ns
}

/// The `vip list --json` entry for `vip`, if any.
fn list_entry(lb: &Lbctl, vip: &str) -> Option<Value> {
    let list = lb.json(&["vip", "list"]);
    let items = list
        .as_array()
        .unwrap_or_else(|| panic!("vip list --json is not an array: {list:#}"));
    items.iter().find(|e| e["vip"] == vip).cloned()
}

#[test]
fn vip_add_readd_del_restores_snapshot() {
    require_root!();
    let ns = backend("vip");
    let lb = Lbctl::new(&ns);
    let before = snapshot(&ns);

    lb.ok(&["vip", "add", VIP]);
    assert!(
        lb.run_dir().is_dir(),
        "LBCTL_RUN_DIR ({}) should hold the journal after a change",
        lb.run_dir().display()
    );
    let info = ns
        .addr_info("lo", VIP)
        .unwrap_or_else(|| panic!("{VIP} not on lo after vip add: {:?}", ns.addrs("lo")));
    assert_eq!(info["prefixlen"], 32, "{info:#}");
    assert!(ns.addrs("lo").contains(&format!("{FOREIGN_VIP}/32")));
    let applied = snapshot(&ns);
    // Only the address list may differ (a local route for the VIP comes with it).
    assert_same_except(
        &before,
        &applied,
        &["ip addr", "ip -4 route show table all"],
        "vip add touched more than the address",
    );

    // Re-adding is a no-op, and says so.
    let again = lb.ok(&["vip", "add", VIP]);
    assert!(
        says_unchanged(&again),
        "re-add should say unchanged\n{again}"
    );
    assert_same(&applied, &snapshot(&ns), "re-add changed the namespace");

    // Listing: ours owned, the user's foreign.
    let ours = list_entry(&lb, VIP).expect("VIP missing from vip list");
    assert_eq!(ours["prefix"], 32, "{ours:#}");
    assert_eq!(ours["dev"], "lo", "{ours:#}");
    assert_eq!(ours["owned"], true, "{ours:#}");
    let theirs = list_entry(&lb, FOREIGN_VIP).expect("foreign /32 missing from vip list");
    assert_eq!(theirs["owned"], false, "{theirs:#}");

    lb.ok(&["vip", "del", VIP]);
    assert_same(
        &before,
        &snapshot(&ns),
        "vip del did not restore the prior state",
    );
}

#[test]
fn vip_ipv6_add_del() {
    require_root!();
    let ns = backend("vip6");
    let lb = Lbctl::new(&ns);
    let before = snapshot(&ns);

    lb.ok(&["vip", "add", VIP6]);
    let info = ns
        .addr_info("lo", VIP6)
        .unwrap_or_else(|| panic!("{VIP6} not on lo: {:?}", ns.addrs("lo")));
    assert_eq!(info["prefixlen"], 128, "{info:#}");
    assert_eq!(info["nodad"], true, "IPv6 VIP should be nodad: {info:#}");
    assert!(
        info.get("tentative").is_none(),
        "VIP must be usable at once: {info:#}"
    );

    let again = lb.ok(&["vip", "add", VIP6]);
    assert!(says_unchanged(&again), "{again}");
    let entry = list_entry(&lb, VIP6).expect("IPv6 VIP missing from vip list");
    assert_eq!(entry["prefix"], 128, "{entry:#}");
    assert_eq!(entry["owned"], true, "{entry:#}");

    lb.ok(&["vip", "del", VIP6]);
    assert_same(&before, &snapshot(&ns), "IPv6 vip del");
}

#[test]
fn vip_foreign_address_is_not_taken_over() {
    require_root!();
    let ns = backend("vipforeign");
    let lb = Lbctl::new(&ns);
    let before = snapshot(&ns);

    // Adding an address someone else put there succeeds without changing anything...
    lb.ok(&["vip", "add", FOREIGN_VIP]);
    assert_same(&before, &snapshot(&ns), "vip add of a foreign address");
    let entry = list_entry(&lb, FOREIGN_VIP).expect("foreign /32 missing from vip list");
    assert_eq!(entry["owned"], false, "must not be taken over: {entry:#}");

    // ...and does not make it ours: a plain del refuses.
    let del = lb.run(&["vip", "del", FOREIGN_VIP]);
    del.expect_code(2).expect_one_line_error();
    assert_same(&before, &snapshot(&ns), "refused vip del");

    // --force removes it, and only it.
    lb.ok(&["vip", "del", FOREIGN_VIP, "--force"]);
    assert!(
        ns.addr_info("lo", FOREIGN_VIP).is_none(),
        "--force should remove it"
    );
    assert!(ns.addr_info("lo", "127.0.0.1").is_some());
    assert!(ns.nft_table_exists("inet", "filter"));
}

#[test]
fn vip_dry_run_changes_nothing() {
    require_root!();
    let ns = backend("vipdry");
    let lb = Lbctl::new(&ns);
    let before = snapshot(&ns);

    for flag in ["-n", "--dry-run"] {
        let out = lb.run(&[flag, "vip", "add", VIP]);
        // 0, or 1 for "changes pending": both are within the contract.
        assert!(out.code == 0 || out.code == 1, "{out}");
        let line = out
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with("ip addr add"))
            .unwrap_or_else(|| panic!("no `ip addr add` line in the plan\n{out}"));
        assert!(
            line.contains(&format!("{VIP}/32")) && line.contains("lo"),
            "{out}"
        );
        assert_same(&before, &snapshot(&ns), "dry-run vip add");
    }

    // JSON form of the same plan.
    let out = lb.run(&["--json", "--dry-run", "vip", "add", VIP]);
    assert!(out.code == 0 || out.code == 1, "{out}");
    let v = out.json();
    assert_eq!(v["dry_run"], true, "{v:#}");
    assert_eq!(v["applied"], false, "{v:#}");
    let planned = changes(&v);
    assert!(
        planned
            .iter()
            .any(|c| c.starts_with("ip addr add") && c.contains(VIP)),
        "{v:#}"
    );
    assert_same(&before, &snapshot(&ns), "dry-run --json vip add");

    // Dry-run of a delete of a VIP lbctl added: plans `ip addr del`, changes nothing.
    let applied = lb.json(&["vip", "add", VIP]);
    assert_eq!(applied["applied"], true, "{applied:#}");
    assert_eq!(applied["dry_run"], false, "{applied:#}");
    assert!(
        changes(&applied)
            .iter()
            .any(|c| c.starts_with("ip addr add") && c.contains(VIP)),
        "{applied:#}"
    );
    let with_vip = snapshot(&ns);
    let out = lb.run(&["-n", "vip", "del", VIP]);
    assert!(out.code == 0 || out.code == 1, "{out}");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.trim_start().starts_with("ip addr del") && l.contains(VIP)),
        "no `ip addr del` line\n{out}"
    );
    assert_same(&with_vip, &snapshot(&ns), "dry-run vip del");

    // A real re-add reports no changes.
    let again = lb.json(&["vip", "add", VIP]);
    assert!(
        changes(&again).is_empty(),
        "re-add planned changes: {again:#}"
    );

    lb.ok(&["vip", "del", VIP]);
    assert_same(&before, &snapshot(&ns), "vip del after dry-runs");
}

#[test]
fn vip_add_del_several_vips_independently() {
    require_root!();
    let ns = backend("vipmany");
    let lb = Lbctl::new(&ns);
    let before = snapshot(&ns);

    lb.ok(&["vip", "add", "198.18.0.101"]);
    let one = snapshot(&ns);
    lb.ok(&["vip", "add", "198.18.0.102"]);
    lb.ok(&["vip", "del", "198.18.0.102"]);
    assert_same(&one, &snapshot(&ns), "deleting the second VIP");
    lb.ok(&["vip", "del", "198.18.0.101"]);
    assert_same(&before, &snapshot(&ns), "deleting the first VIP");
}

/// Issue 12 (findings 9 and 13): the `ip` lines lbctl prints run verbatim on Debian 12's
/// iproute2 (6.1 rejects `proto` on `ip addr add`), and an address lbctl added, then deleted
/// and re-created by hand (without lbctl's proto 76 mark), is no longer lbctl's: `down --all`
/// leaves it.
#[test]
fn printed_lines_run_verbatim_and_a_hand_made_copy_survives_down() {
    require_root!();
    let ns = backend("verbatim");
    let lb = Lbctl::new(&ns);
    for vip in [VIP, VIP6] {
        let out = lb.run(&["--dry-run", "vip", "add", vip]);
        let lines: Vec<&str> = out
            .stdout
            .lines()
            .filter(|l| l.starts_with("ip "))
            .collect();
        assert!(!lines.is_empty(), "{out}");
        for l in lines {
            let r = ns.exec(&["sh", "-c", l]);
            assert!(r.success(), "`{l}` does not run verbatim:\n{r}");
        }
        assert!(ns.addrs("lo").iter().any(|a| a.starts_with(vip)), "{vip}");
        ns.ip(&[
            "addr",
            "del",
            &format!("{vip}/{}", if vip.contains(':') { 128 } else { 32 }),
            "dev",
            "lo",
        ]);
    }

    lb.ok(&["vip", "add", VIP]);
    ns.ip(&["addr", "del", &format!("{VIP}/32"), "dev", "lo"]);
    ns.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"]);
    let out = lb.run(&["down", "--all"]);
    out.expect_ok();
    assert!(
        out.stderr.contains("re-created without lbctl's mark"),
        "{out}"
    );
    assert!(
        ns.addrs("lo").iter().any(|a| a.starts_with(VIP)),
        "the hand-made address was deleted"
    );
}
