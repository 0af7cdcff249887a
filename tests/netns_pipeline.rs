//! Pipelined address changes on a real kernel (issue 15): an apply sends its address additions
//! (and a down its deletions) with many requests in flight on one netlink socket. When the
//! kernel refuses one object in the middle of such a batch, lbctl names that object and the
//! kernel's error, and undoes everything that was applied — the objects before it and those
//! already in flight after it — leaving the namespace and the journal as before. The same
//! profile without the failing object then applies, re-applies as a no-op and goes down.

#[macro_use]
mod common;

use common::{assert_same, s, snapshot, veth_local, write, Lbctl, Netns, TempDir};

/// 150 IPv4 VIPs on eth0, one IPv6 VIP on eth2, 150 IPv4 VIPs on lo (nft ARP suppression).
/// A plan orders additions by device, so the IPv6 one sits in the middle of the batch.
fn profile(with_v6: bool) -> String {
    let mut p = String::from("name = \"piped\"\n");
    for i in 0..150 {
        p.push_str(&format!(
            "[[vip]]\naddress = \"198.18.2.{}\"\ndev = \"eth0\"\n",
            i + 1
        ));
    }
    if with_v6 {
        p.push_str("[[vip]]\naddress = \"2001:db8::5\"\ndev = \"eth2\"\n");
    }
    for i in 0..150 {
        p.push_str(&format!("[[vip]]\naddress = \"198.18.3.{}\"\n", i + 1));
    }
    p.push_str(
        "[arp]\nmode = \"nft\"\n[[arp.interface]]\nname = \"eth0\"\nreal_ip = \"198.18.0.11\"\n",
    );
    p
}

/// The number after `prefix` in `text` ("change 152 of 302" → 152 for "change ").
fn number_after(text: &str, prefix: &str) -> usize {
    let at = text
        .find(prefix)
        .unwrap_or_else(|| panic!("{prefix:?} in {text}"))
        + prefix.len();
    text[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a number after {prefix:?} in {text}"))
}

#[test]
fn a_refused_object_in_a_batch_is_named_and_everything_applied_is_undone() {
    require_root!();
    let ns = Netns::new("pipe");
    veth_local(&ns, "eth0", "peer0");
    veth_local(&ns, "eth2", "peer2");
    ns.add_addr("eth0", "198.18.0.11/24");
    for d in ["eth0", "peer0", "eth2", "peer2"] {
        ns.up(d);
    }
    // Below IPv6's minimum MTU (1280) a device has no IPv6: the kernel refuses an IPv6
    // address there (EINVAL). Nothing lbctl can know before asking.
    ns.ip(&["link", "set", "eth2", "mtu", "1000"]);
    let lb = Lbctl::new(&ns);
    let dir = TempDir::new("pipe");
    let bad = write(&dir, "piped.toml", &profile(true));
    let before = snapshot(&ns);

    let out = lb.run(&["apply", "-f", s(&bad)]);
    out.expect_code(2);
    let err = &out.stderr;
    // The refused object, by its command and the kernel's answer.
    assert!(
        err.contains("failed: ip -6 addr add 2001:db8::5/128 dev eth2 nodad preferred_lft 0"),
        "{err}"
    );
    assert!(
        err.contains("RTM_NEWADDR 2001:db8::5/128 dev eth2: Invalid argument"),
        "{err}"
    );
    // Change k failed: the ARP table and the 150 additions before it were applied at least,
    // and all that was applied is rolled back.
    let k = number_after(err, "change ");
    assert!(k > 150, "the IPv6 address comes after eth0's 150: {err}");
    let undone = number_after(err, "rolled back ");
    assert!(
        undone >= k - 1,
        "everything before change {k} undone: {err}"
    );
    assert!(err.contains("the system is as before"), "{err}");
    assert_same(&before, &snapshot(&ns), "a refused address mid-batch");
    assert_eq!(lb.json(&["status"])["owners"], serde_json::json!([]));

    // Without it: apply, a no-op re-apply, down — the namespace is as before.
    let good = write(&dir, "piped.toml", &profile(false));
    let out = lb.ok(&["apply", "-f", s(&good)]);
    assert!(out.stdout.contains("applied 301 change(s)"), "{out}");
    let addrs = ns.ip(&["-4", "-o", "addr", "show"]);
    assert_eq!(addrs.matches(" 198.18.2.").count(), 150, "{addrs}");
    assert_eq!(addrs.matches(" 198.18.3.").count(), 150, "{addrs}");
    let again = lb.ok(&["apply", "-f", s(&good)]);
    assert!(again.stdout.contains("unchanged"), "{again}");
    assert_eq!(lb.json(&["status"])["in_sync"], true);
    lb.ok(&["down", "-f", s(&good)]);
    assert_same(&before, &snapshot(&ns), "apply and down of 300 VIPs");
}
