//! `lbctl arp` end to end: a client and a backend namespace joined by a veth, the VIP on the
//! backend's lo, and real ARP traffic (Habets `arping -c 2 -w 3 -i IFACE IP`) from the client.
//!
//! Every suppression test also runs the control: without suppression the backend DOES answer ARP
//! for the VIP (the Linux weak-host model), so a "no reply" result means something. Beyond
//! requests, the tests check the announce side: traffic the backend sources from the VIP must
//! not teach the client "VIP is at the backend's MAC" (PLATFORM.md §3).
//!
//! Both modes are covered separately: `nft` (an lbctl-owned `table arp lbctl`) and `sysctl`
//! (arp_ignore=1 / arp_announce=2 on the ARP-facing interface, here a dotted `vt0.5`, with
//! distinctive prior values that restore must put back exactly).

#[macro_use]
mod common;

use std::collections::BTreeSet;

use common::*;

const VIP: &str = "198.18.0.100";
const VIP2: &str = "198.18.0.101";
const CLIENT_IP: &str = "198.18.0.10";
const RIP: &str = "198.18.0.11";
const CLIENT_MAC: &str = "02:00:00:00:00:10";
const BACKEND_MAC: &str = "02:00:00:00:00:11";

/// User tables that must survive: an inet firewall and somebody else's arp-family table.
const USER_TABLES: &str = "table inet filter {
  chain input {
    type filter hook input priority filter; policy accept;
    tcp dport 22 counter accept
  }
}
table arp user_arp {
  chain in {
    type filter hook input priority 10; policy accept;
    counter
  }
}";

struct Lab {
    client: Netns,
    backend: Netns,
    /// The backend's ARP-facing interface.
    dev: &'static str,
}

/// client `eth0` 198.18.0.10/24 ⟷ backend `dev` 198.18.0.11/24, VIP on the backend's lo
/// (added with `ip`, so these tests do not depend on `lbctl vip`), user nft tables present.
fn lab(tag: &str, dev: &'static str) -> Lab {
    let client = Netns::new(&format!("{tag}-c"));
    let backend = Netns::new(&format!("{tag}-b"));
    link(
        End {
            ns: &client,
            dev: "eth0",
            mac: CLIENT_MAC,
            cidr: &format!("{CLIENT_IP}/24"),
        },
        End {
            ns: &backend,
            dev,
            mac: BACKEND_MAC,
            cidr: &format!("{RIP}/24"),
        },
    );
    backend.add_addr("lo", &format!("{VIP}/32"));
    backend.nft(USER_TABLES);
    client.settle();
    backend.settle();
    Lab {
        client,
        backend,
        dev,
    }
}

impl Lab {
    /// MACs that answered `arping -c 2 -w 3 -i eth0 IP` from the client.
    fn arp_replies(&self, ip: &str) -> BTreeSet<String> {
        let out = self
            .client
            .exec(&["arping", "-c", "2", "-w", "3", "-i", "eth0", ip]);
        // Exit status: 0 with replies, 1 without; anything else is a harness problem.
        assert!(out.code == 0 || out.code == 1, "arping failed\n{out}");
        out.stdout
            .lines()
            .filter_map(|l| l.split_once(" bytes from ").map(|(_, rest)| rest))
            .filter_map(|rest| rest.split_whitespace().next())
            .map(str::to_lowercase)
            .collect()
    }

    #[track_caller]
    fn assert_vip_answered(&self, context: &str) {
        let macs = self.arp_replies(VIP);
        assert_eq!(
            macs,
            BTreeSet::from([BACKEND_MAC.to_string()]),
            "{context}: the backend should answer ARP for the VIP"
        );
    }

    #[track_caller]
    fn assert_vip_silent(&self, context: &str) {
        let macs = self.arp_replies(VIP);
        assert!(
            macs.is_empty(),
            "{context}: ARP for the VIP was answered by {macs:?}"
        );
        let rip = self.arp_replies(RIP);
        assert_eq!(
            rip,
            BTreeSet::from([BACKEND_MAC.to_string()]),
            "{context}: the real IP must still answer ARP"
        );
    }

    /// Have the backend send a packet from the VIP to the client with cold neighbour caches and
    /// return what the client then believes about the VIP (lladdr, if any).
    fn client_learns_vip_from_vip_sourced_ping(&self) -> Option<String> {
        self.client.ip(&["neigh", "flush", "all"]);
        self.backend.ip(&["neigh", "flush", "all"]);
        // The ping's own fate does not matter (the echo reply cannot reach a suppressed VIP).
        let _ = self
            .backend
            .exec(&["ping", "-c", "1", "-W", "1", "-I", VIP, CLIENT_IP]);
        self.client
            .neigh("eth0", VIP)
            .and_then(|(mac, _)| mac)
            .map(|m| m.to_lowercase())
    }

    #[track_caller]
    fn assert_not_poisoned(&self, context: &str) {
        let learnt = self.client_learns_vip_from_vip_sourced_ping();
        assert_ne!(
            learnt.as_deref(),
            Some(BACKEND_MAC),
            "{context}: the client learnt VIP → backend MAC from VIP-sourced traffic \
             (ARP requests must announce the real IP)"
        );
    }
}

#[test]
fn arp_control_backend_answers_for_vip_without_suppression() {
    require_root!();
    require_tool!("arping");
    require_tool!("ping");
    let lab = lab("arpctl", "eth0");
    lab.assert_vip_answered("no suppression");
    // The poisoning the announce side prevents does happen without it, which makes the
    // negative assertions in the other tests meaningful.
    assert_eq!(
        lab.client_learns_vip_from_vip_sourced_ping().as_deref(),
        Some(BACKEND_MAC),
        "without suppression the client should learn VIP → backend MAC"
    );
}

#[test]
fn arp_nft_suppresses_and_restore_is_exact() {
    require_root!();
    require_tool!("arping");
    require_tool!("ping");
    let lab = lab("arpnft", "eth0");
    let ns = &lab.backend;
    let lb = Lbctl::new(ns);
    lab.assert_vip_answered("before suppress (control)");
    let before = snapshot(ns);

    lb.ok(&["arp", "suppress", VIP, "--real-ip", RIP]);
    let after = snapshot(ns);
    // Only the nft ruleset changes: no sysctl, address, rule or route.
    assert_same_except(&before, &after, &["nft list ruleset"], "nft mode suppress");
    assert!(
        ns.nft_table_exists("inet", "filter") && ns.nft_table_exists("arp", "user_arp"),
        "user tables must stay"
    );

    // The table lbctl owns, read back independently.
    let text = ns
        .nft_text(&["list", "table", "arp", "lbctl"])
        .expect_ok()
        .stdout
        .clone();
    let set = ns.nft_json(&["list", "set", "arp", "lbctl", "vips"]);
    let set_text = set.to_string();
    assert!(
        set_text.contains("ipv4_addr") && set_text.contains(VIP),
        "set vips: {set:#}"
    );
    let map = ns.nft_json(&["list", "map", "arp", "lbctl", "vip_rip"]);
    let map_text = map.to_string();
    assert!(
        map_text.contains(VIP) && map_text.contains(RIP),
        "map vip_rip: {map:#}"
    );
    for needle in [
        "chain input",
        "chain output",
        "hook input",
        "hook output",
        "arp operation request",
        "arp daddr ip @vips",
        "drop",
        "arp saddr ip set",
        "@vip_rip",
    ] {
        assert!(
            text.contains(needle),
            "`{needle}` missing from table arp lbctl:\n{text}"
        );
    }

    lab.assert_vip_silent("nft suppression");
    lab.assert_not_poisoned("nft suppression");

    // Re-applying is a no-op.
    let again = lb.ok(&["arp", "suppress", VIP, "--real-ip", RIP]);
    assert!(says_unchanged(&again), "{again}");
    assert_same(&after, &snapshot(ns), "re-suppress");

    // Status knows about it.
    let status = lb.run(&["--json", "arp", "status"]);
    assert!(status.code == 0 || status.code == 1, "{status}");
    assert!(status.json().to_string().contains(VIP), "{status}");

    lb.ok(&["arp", "restore", VIP, "--real-ip", RIP]);
    assert!(
        !ns.nft_table_exists("arp", "lbctl"),
        "table removed with the last VIP"
    );
    assert_same(&before, &snapshot(ns), "arp restore (nft)");
    lab.assert_vip_answered("after restore");
}

#[test]
fn arp_nft_table_goes_with_the_last_vip() {
    require_root!();
    let lab = lab("arpnft2", "eth0");
    let ns = &lab.backend;
    ns.add_addr("lo", &format!("{VIP2}/32"));
    ns.settle();
    let lb = Lbctl::new(ns);
    let before = snapshot(ns);

    lb.ok(&["arp", "suppress", VIP, "--real-ip", RIP]);
    let one = snapshot(ns);
    lb.ok(&["arp", "suppress", VIP2, "--real-ip", RIP]);
    let set = ns
        .nft_json(&["list", "set", "arp", "lbctl", "vips"])
        .to_string();
    assert!(set.contains(VIP) && set.contains(VIP2), "{set}");

    lb.ok(&["arp", "restore", VIP2, "--real-ip", RIP]);
    assert!(
        ns.nft_table_exists("arp", "lbctl"),
        "table must stay while a VIP remains"
    );
    let set = ns
        .nft_json(&["list", "set", "arp", "lbctl", "vips"])
        .to_string();
    assert!(set.contains(VIP) && !set.contains(VIP2), "{set}");
    let map = ns
        .nft_json(&["list", "map", "arp", "lbctl", "vip_rip"])
        .to_string();
    assert!(map.contains(VIP) && !map.contains(VIP2), "{map}");
    assert_same(&one, &snapshot(ns), "restoring the second VIP");

    lb.ok(&["arp", "restore", VIP, "--real-ip", RIP]);
    assert!(!ns.nft_table_exists("arp", "lbctl"));
    assert_same(&before, &snapshot(ns), "restoring the last VIP");
}

#[test]
fn arp_sysctl_mode_suppresses_and_restores_exact_prior_values() {
    require_root!();
    require_tool!("arping");
    require_tool!("ping");
    // A dotted interface name: /proc/sys/net/ipv4/conf/vt0.5/… (sysctl(8) would need vt0/5).
    let lab = lab("arpsys", "vt0.5");
    let ns = &lab.backend;
    // Distinctive prior values (not the kernel defaults, not lbctl's targets).
    ns.set_conf(&[
        (lab.dev, "arp_ignore", 0),
        (lab.dev, "arp_announce", 1),
        ("all", "arp_ignore", 0),
        ("all", "arp_announce", 0),
        ("default", "arp_ignore", 3),
        ("lo", "arp_announce", 1),
    ]);
    lab.assert_vip_answered("before suppress (control)");
    let lb = Lbctl::new(ns);
    let before = snapshot(ns);

    // No --iface: lbctl finds the interface holding the real IP.
    lb.ok(&["arp", "suppress", VIP, "--real-ip", RIP, "--mode", "sysctl"]);
    assert_eq!(ns.conf(lab.dev, "arp_ignore"), 1);
    assert_eq!(ns.conf(lab.dev, "arp_announce"), 2);
    let after = snapshot(ns);
    let changed: BTreeSet<String> = sysctl_changes(&before, &after).into_keys().collect();
    assert_eq!(
        changed,
        BTreeSet::from([
            "net/ipv4/conf/vt0.5/arp_announce".to_string(),
            "net/ipv4/conf/vt0.5/arp_ignore".to_string(),
        ]),
        "sysctl mode must change exactly the two keys on the ARP-facing interface"
    );
    assert_same_except(&before, &after, &["sysctl"], "sysctl mode suppress");
    assert!(
        !ns.nft_table_exists("arp", "lbctl"),
        "sysctl mode must not create nft state"
    );

    lab.assert_vip_silent("sysctl suppression");
    lab.assert_not_poisoned("sysctl suppression");

    let again = lb.ok(&["arp", "suppress", VIP, "--real-ip", RIP, "--mode", "sysctl"]);
    assert!(says_unchanged(&again), "{again}");
    assert_same(&after, &snapshot(ns), "re-suppress (sysctl)");

    lb.ok(&["arp", "restore", VIP, "--real-ip", RIP, "--mode", "sysctl"]);
    assert_eq!(ns.conf(lab.dev, "arp_ignore"), 0);
    assert_eq!(ns.conf(lab.dev, "arp_announce"), 1);
    assert_eq!(ns.conf("default", "arp_ignore"), 3);
    assert_same(&before, &snapshot(ns), "arp restore (sysctl)");
    lab.assert_vip_answered("after restore");
}

#[test]
fn arp_dry_run_changes_nothing() {
    require_root!();
    let lab = lab("arpdry", "vt0.5");
    let ns = &lab.backend;
    ns.set_conf(&[(lab.dev, "arp_announce", 1)]);
    let lb = Lbctl::new(ns);
    let before = snapshot(ns);

    let out = lb.run(&["-n", "arp", "suppress", VIP, "--real-ip", RIP]);
    assert!(out.code == 0 || out.code == 1, "{out}");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.trim_start().starts_with("nft ")),
        "nft-mode plan should be `nft …` lines\n{out}"
    );
    assert_same(&before, &snapshot(ns), "dry-run arp suppress (nft)");

    let out = lb.run(&[
        "--dry-run",
        "arp",
        "suppress",
        VIP,
        "--real-ip",
        RIP,
        "--mode",
        "sysctl",
        "--iface",
        lab.dev,
    ]);
    assert!(out.code == 0 || out.code == 1, "{out}");
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("sysctl -w"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("arp_ignore") && l.contains("=1"))
            && lines
                .iter()
                .any(|l| l.contains("arp_announce") && l.contains("=2")),
        "sysctl-mode plan should be `sysctl -w …arp_ignore=1` / `…arp_announce=2`\n{out}"
    );
    assert_same(&before, &snapshot(ns), "dry-run arp suppress (sysctl)");

    let out = lb.run(&["--json", "-n", "arp", "suppress", VIP, "--real-ip", RIP]);
    assert!(out.code == 0 || out.code == 1, "{out}");
    let v = out.json();
    assert_eq!(v["dry_run"], true, "{v:#}");
    assert_eq!(v["applied"], false, "{v:#}");
    assert!(!changes(&v).is_empty(), "{v:#}");
    assert_same(&before, &snapshot(ns), "dry-run --json arp suppress");
}
