//! Does an IPv6 VIP on `lo` need neighbour-discovery suppression on Linux (the IPv6 analogue of
//! `lbctl arp suppress`)?
//!
//! CONCLUSION (kernel 6.18, verified by these tests and by a tcpdump of the exchange): **no.**
//! - The backend does not answer neighbour solicitations for an address that lives on `lo`. The
//!   client's multicast NS for 2001:db8::100 (to ff02::1:ff00:100) reaches the backend's veth and
//!   goes unanswered; the client's entry stays INCOMPLETE/FAILED with no lladdr. Linux's ND
//!   follows the strong host model: `ndisc_recv_ns` only answers for targets configured on the
//!   receiving interface (`ipv6_get_ifaddr(…, dev, strict)`), and the solicited-node group is
//!   joined only on the interface holding the address. There is no IPv6 equivalent of the
//!   weak-host ARP reply that makes arp_ignore/arp_announce (or `table arp lbctl`) necessary.
//! - The announce side is safe too: when the backend sends from the VIP (a DSR reply), its own NS
//!   for the client uses a source address on the outgoing interface (link-local here), never
//!   the VIP on lo, so the client never learns "VIP → backend MAC" (unlike ARP without
//!   arp_announce=2).
//! - Caveats: proxy NDP (`proxy_ndp=1` plus `ip -6 neigh add proxy VIP dev IF`) or putting the
//!   VIP on the NIC instead of lo would answer; that is configuration, not a default. The
//!   controls below show the same test setup does see an answer for an address on the NIC.
//!
//! So `lbctl` needs `nodad` for the /128 on lo (DAD would be pointless and delays use) but no ND
//! suppression. Topology: client `eth0` 2001:db8:1::10/64 ⟷ backend `eth0` 2001:db8:1::11/64,
//! VIP 2001:db8::100/128 nodad on the backend's lo, and on the client a route
//! `2001:db8::100/128 dev eth0` so the VIP is on-link and gets resolved by ND. These tests use
//! `ip` directly: they document kernel behaviour, independent of lbctl.

#[macro_use]
mod common;

use common::*;

const CLIENT_IP: &str = "2001:db8:1::10";
const RIP: &str = "2001:db8:1::11";
const VIP: &str = "2001:db8::100";
/// Control address placed on the backend's NIC instead of lo.
const NIC_VIP: &str = "2001:db8::101";
const CLIENT_MAC: &str = "02:00:00:00:00:10";
const BACKEND_MAC: &str = "02:00:00:00:00:11";

struct Lab {
    client: Netns,
    backend: Netns,
}

fn lab(tag: &str) -> Lab {
    let client = Netns::new(&format!("{tag}-c"));
    let backend = Netns::new(&format!("{tag}-b"));
    link(
        End {
            ns: &client,
            dev: "eth0",
            mac: CLIENT_MAC,
            cidr: &format!("{CLIENT_IP}/64"),
        },
        End {
            ns: &backend,
            dev: "eth0",
            mac: BACKEND_MAC,
            cidr: &format!("{RIP}/64"),
        },
    );
    backend.add_addr("lo", &format!("{VIP}/128"));
    backend.add_addr("eth0", &format!("{NIC_VIP}/128"));
    for addr in [VIP, NIC_VIP] {
        client.ip(&["-6", "route", "add", &format!("{addr}/128"), "dev", "eth0"]);
    }
    client.settle();
    backend.settle();
    let info = backend.addr_info("lo", VIP).expect("VIP on lo");
    assert_eq!(info["nodad"], true, "{info:#}");
    Lab { client, backend }
}

/// Ping `dst` once from the client (which triggers ND) and return the client's neighbour entry.
fn ping_and_look(lab: &Lab, dst: &str) -> (Option<String>, Vec<String>) {
    let _ = lab.client.exec(&["ping", "-6", "-c", "1", "-W", "1", dst]);
    lab.client
        .neigh("eth0", dst)
        .unwrap_or((None, vec!["(none)".into()]))
}

fn resolved(states: &[String]) -> bool {
    states.iter().any(|s| {
        matches!(
            s.as_str(),
            "REACHABLE" | "STALE" | "DELAY" | "PROBE" | "PERMANENT"
        )
    })
}

#[test]
fn ipv6_vip_on_lo_is_not_answered_by_neighbour_discovery() {
    require_root!();
    require_tool!("ping");
    let lab = lab("nd");

    // Controls: the real IP and an address on the NIC are resolved to the backend's MAC, so
    // this setup does see ND answers when the kernel gives them.
    let (mac, states) = ping_and_look(&lab, RIP);
    assert_eq!(
        mac.as_deref(),
        Some(BACKEND_MAC),
        "control (real IP): {states:?}"
    );
    assert!(resolved(&states), "control (real IP): {states:?}");
    let (mac, states) = ping_and_look(&lab, NIC_VIP);
    assert_eq!(
        mac.as_deref(),
        Some(BACKEND_MAC),
        "control (address on the NIC): {states:?}"
    );

    // The VIP on lo: the solicitation goes unanswered.
    let (mac, states) = ping_and_look(&lab, VIP);
    assert!(
        mac.is_none() && !resolved(&states),
        "the backend answered ND for a VIP on lo: lladdr {mac:?}, state {states:?} \
         (IPv6 VIPs would then need ND suppression)"
    );
    // Asking again (and giving retransmissions time) changes nothing.
    let (mac, states) = ping_and_look(&lab, VIP);
    assert!(mac.is_none() && !resolved(&states), "{mac:?} {states:?}");
}

#[test]
fn ipv6_vip_sourced_traffic_does_not_teach_the_client() {
    require_root!();
    require_tool!("ping");
    let lab = lab("ndsrc");
    lab.client.ip(&["-6", "neigh", "flush", "all"]);
    lab.backend.ip(&["-6", "neigh", "flush", "all"]);

    // A DSR reply: from the VIP to the client, with cold neighbour caches on both sides.
    let _ = lab
        .backend
        .exec(&["ping", "-6", "-c", "1", "-W", "1", "-I", VIP, CLIENT_IP]);

    // The backend did resolve the client (so an NS went out)...
    let (mac, _) = lab
        .backend
        .neigh("eth0", CLIENT_IP)
        .expect("backend should have resolved the client");
    assert_eq!(mac.as_deref(), Some(CLIENT_MAC));
    // ...but the client did not learn the VIP from it.
    match lab.client.neigh("eth0", VIP) {
        None => {}
        Some((mac, states)) => assert!(
            mac.is_none() && !resolved(&states),
            "client learnt VIP → {mac:?} ({states:?}) from VIP-sourced traffic"
        ),
    }
}
