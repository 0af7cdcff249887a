//! Backend checks: the real-server side of DSR, one function per checklist item.

use std::net::IpAddr;

use serde_json::Value;

use super::facts::Facts;
use super::{Finding, Status};
use crate::model::host_prefix;

/// All backend checks, in checklist order.
pub fn checks(f: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    if f.targets.is_empty() {
        out.push(
            Finding::fail("vip.present", "VIPs to check")
                .evidence("no VIP given, none managed by lbctl, and no host address on lo")
                .fix("lbctl doctor --vip VIP[:PORT]   (or -f PROFILE)"),
        );
    }
    for (vip, ports) in &f.targets {
        let present = vip_present(f, *vip);
        let missing = !f.addrs.iter().any(|a| a.obj.addr == *vip);
        out.push(present);
        if missing {
            // Everything below depends on the VIP; one root cause, one failure.
            for (id, what) in [
                ("arp.suppressed", "ARP for the VIP suppressed"),
                ("rpfilter.accepts", "rp_filter accepts requests"),
                ("return.path", "replies leave with the VIP as source"),
                ("return.neighbour", "next hop resolved"),
            ] {
                out.push(Finding::skip(
                    id,
                    format!("{vip}: {what}"),
                    "the VIP is not configured",
                ));
            }
            out.push(listener(f, *vip, ports));
            continue;
        }
        if vip.is_ipv4() {
            out.push(arp_suppressed(f, *vip));
        } else {
            out.push(
                Finding::pass("arp.suppressed", format!("{vip}: no ARP for IPv6"))
                    .evidence("Linux answers neighbour solicitations only for addresses on the receiving interface, so a VIP on lo is not advertised"),
            );
        }
        out.push(rp_filter(f, *vip));
        out.extend(return_path(f, *vip));
        out.push(gateway_neighbour(f, *vip));
        out.push(listener(f, *vip, ports));
    }
    out.push(proxy_arp(f));
    out.push(balancer_adjacent(f));
    out.extend(firewall(f));
    out.extend(super::firewall::checks(f));
    out.push(networkd(f));
    out.push(mtu(f));
    out.push(drift(f));
    out
}

fn vip_present(f: &Facts, vip: IpAddr) -> Finding {
    let title = format!("{vip}: VIP configured");
    let found: Vec<_> = f.addrs.iter().filter(|a| a.obj.addr == vip).collect();
    let Some(a) = found.first() else {
        return Finding::fail("vip.present", title)
            .evidence(format!(
                "ip addr show to {vip}: no such address on this host"
            ))
            .fix(format!("lbctl vip add {vip}"));
    };
    let owned = a.marked || f.state.owned.addrs.contains(&a.obj);
    let who = if owned {
        "added by lbctl"
    } else {
        "not added by lbctl"
    };
    let want = host_prefix(vip);
    if a.obj.prefix != want {
        return Finding::fail("vip.present", title)
            .evidence(format!(
                "{} ({who}): prefix /{} on {} would swallow the whole subnet",
                a.obj, a.obj.prefix, a.obj.dev
            ))
            .fix(format!(
                "ip addr del {}/{} dev {}; lbctl vip add {vip} --dev {}",
                vip, a.obj.prefix, a.obj.dev, a.obj.dev
            ));
    }
    if a.obj.dev != "lo" {
        let covered = vip.is_ipv4()
            && f.arp_intact
            && f.arp_table.as_ref().is_some_and(|m| {
                m.contains_key(&match vip {
                    IpAddr::V4(v) => v,
                    _ => unreachable!(),
                })
            });
        let mut x = Finding::warn("vip.present", title)
            .evidence(format!("{} ({who}) is on {}, not lo", a.obj, a.obj.dev));
        if !covered && vip.is_ipv4() {
            x = x
                .evidence(
                    "an address on an ARP-facing interface is answered for even with arp_ignore=1",
                )
                .fix(format!(
                    "ip addr del {}/{} dev {}; lbctl vip add {vip}",
                    vip, a.obj.prefix, a.obj.dev
                ));
        }
        return x;
    }
    Finding::pass("vip.present", title).evidence(format!("{} ({who})", a.obj))
}

fn v4(ip: IpAddr) -> Option<std::net::Ipv4Addr> {
    match ip {
        IpAddr::V4(v) => Some(v),
        _ => None,
    }
}

/// A real IP to suggest in fixes: the client-facing interface's address.
fn suggest_rip(f: &Facts, vip: IpAddr) -> String {
    let dev = f.paths.get(&vip).and_then(|p| p.arrival.clone());
    f.addrs
        .iter()
        .find(|a| {
            a.obj.addr.is_ipv4()
                && a.obj.dev != "lo"
                && dev.as_deref().is_none_or(|d| d == a.obj.dev)
        })
        .map(|a| a.obj.addr.to_string())
        .unwrap_or_else(|| "RIP".into())
}

fn arp_suppressed(f: &Facts, vip: IpAddr) -> Finding {
    let title = format!("{vip}: ARP for the VIP suppressed");
    let v = v4(vip).expect("ipv4");
    let by_nft = f.arp_intact && f.arp_table.as_ref().is_some_and(|m| m.contains_key(&v));
    let facing = f.arp_facing();
    let mut ev = Vec::new();
    if by_nft {
        let rip = f
            .arp_table
            .as_ref()
            .and_then(|m| m.get(&v))
            .expect("checked");
        ev.push(format!(
            "nft table arp lbctl drops requests for {vip} and rewrites it as sender to {rip}"
        ));
    } else if f.arp_table.is_some() && !f.arp_intact {
        ev.push("table arp lbctl exists but was modified outside lbctl".to_string());
    }
    let mut sysctl_ok = !facing.is_empty();
    for i in &facing {
        let ig = f.effective(i, "arp_ignore");
        let an = f.effective(i, "arp_announce");
        let ok = ig >= 1 && an == 2;
        sysctl_ok &= ok;
        ev.push(format!(
            "{i}: arp_ignore {ig} (all {}, {i} {}), arp_announce {an} (all {}, {i} {}) — effective = max(all, iface){}",
            f.conf("all", "arp_ignore"),
            f.conf(i, "arp_ignore"),
            f.conf("all", "arp_announce"),
            f.conf(i, "arp_announce"),
            if ok { "" } else { ": not suppressing" }
        ));
    }
    if by_nft || sysctl_ok {
        let mut x = Finding::pass("arp.suppressed", title);
        x.evidence = ev;
        if !by_nft && f.conf("all", "arp_ignore") >= 1 {
            x.status = Status::Warn;
            x.evidence.push("suppression comes from conf/all, which also changes every other interface (breaks unnumbered-veth CNIs, node-subnet externalIPs)".into());
            x.fix = Some(format!(
                "lbctl arp suppress {vip} --real-ip {}   (nft mode; then lower conf/all)",
                suggest_rip(f, vip)
            ));
        }
        return x;
    }
    if let Some(why) = &f.arp_table_error {
        // The sysctls do not suppress, but nft might: without reading the table, no verdict.
        let mut x = Finding::unknown(
            "arp.suppressed",
            title,
            format!("table arp lbctl cannot be read ({why}); run doctor as root"),
        );
        x.evidence.extend(ev);
        return x;
    }
    let mut x = Finding::fail("arp.suppressed", title).fix(format!(
        "lbctl arp suppress {vip} --real-ip {}",
        suggest_rip(f, vip)
    ));
    x.evidence = ev;
    x.evidence
        .push("this host answers ARP for the VIP: clients may bypass the balancer (ARP flux) while every request still succeeds".into());
    x
}

fn proxy_arp(f: &Facts) -> Finding {
    let on: Vec<String> = f
        .arp_facing()
        .into_iter()
        .filter(|i| f.effective(i, "proxy_arp") != 0)
        .map(|i| format!("{i}: proxy_arp effective {}", f.effective(i, "proxy_arp")))
        .collect();
    if on.is_empty() {
        Finding::pass(
            "arp.proxy_arp",
            "proxy_arp off on the ARP-facing interfaces",
        )
    } else {
        let mut x = Finding::fail(
            "arp.proxy_arp",
            "proxy_arp off on the ARP-facing interfaces",
        )
        .fix("sysctl -w net.ipv4.conf.all.proxy_arp=0 net.ipv4.conf.IFACE.proxy_arp=0");
        x.evidence = on;
        x
    }
}

fn rp_filter(f: &Facts, vip: IpAddr) -> Finding {
    let Some(client) = f.client else {
        return Finding::skip(
            "rpfilter.accepts",
            format!("{vip}: rp_filter accepts requests"),
            "no --client and no default gateway to use as a typical source",
        );
    };
    let title = format!("{vip}: rp_filter accepts requests from {client}");
    if vip.is_ipv6() {
        return Finding::pass("rpfilter.accepts", title).evidence("IPv6 has no rp_filter sysctl");
    }
    let Some(p) = f.paths.get(&vip) else {
        return Finding::skip(
            "rpfilter.accepts",
            title,
            "client and VIP are of different families",
        );
    };
    let arrival = p.arrival.clone().unwrap_or_else(|| "?".into());
    let mode = f.effective(&arrival, "rp_filter");
    let reply_dev = p
        .reply
        .as_ref()
        .ok()
        .filter(|l| l.kind == "unicast")
        .and_then(|l| l.dev.clone());
    let ev = format!(
        "rp_filter on {arrival}: effective {mode} (all {}, {arrival} {}); ip route get {client} from {vip} → {}",
        f.conf("all", "rp_filter"),
        f.conf(&arrival, "rp_filter"),
        match &p.reply {
            Ok(l) => format!("{} dev {}", l.kind, l.dev.as_deref().unwrap_or("?")),
            Err(e) => e.clone(),
        }
    );
    let fix = format!("lbctl rpfilter fix --vip {vip} --client {client}");
    match mode {
        0 => Finding::pass("rpfilter.accepts", title).evidence(ev),
        1 if reply_dev.as_deref() == Some(arrival.as_str()) => Finding::pass("rpfilter.accepts", title).evidence(ev),
        1 => Finding::fail("rpfilter.accepts", title)
            .evidence(ev)
            .evidence(format!("strict mode drops requests arriving on {arrival} because the route back leaves by {} (counted in TcpExtIPReversePathFilter)", reply_dev.as_deref().unwrap_or("nowhere")))
            .fix(fix),
        _ if reply_dev.is_some() => Finding::pass("rpfilter.accepts", title).evidence(ev),
        _ => Finding::fail("rpfilter.accepts", title)
            .evidence(ev)
            .evidence("loose mode still needs some route back to the client")
            .fix(format!("add a route to {client}, or lbctl route add {vip} --table T --via GW --dev IF")),
    }
}

fn return_path(f: &Facts, vip: IpAddr) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(client) = f.client.filter(|c| c.is_ipv4() == vip.is_ipv4()) else {
        out.push(Finding::skip(
            "return.path",
            format!("{vip}: replies leave with the VIP as source"),
            "no --client and no default gateway",
        ));
        return out;
    };
    let title = format!(
        "{vip}: replies to {client} leave by a real interface{}",
        if f.client_guessed {
            " (client = default gateway)"
        } else {
            ""
        }
    );
    let Some(p) = f.paths.get(&vip) else {
        return out;
    };
    match &p.reply {
        Err(e) => out.push(
            Finding::fail("return.path", title)
                .evidence(format!("ip route get {client} from {vip}: {e}"))
                .fix(format!(
                    "lbctl vip add {vip}; check routing towards {client}"
                )),
        ),
        Ok(l) if l.kind != "unicast" || l.dev.as_deref().is_none_or(|d| d == "lo") => out.push(
            Finding::fail("return.path", title)
                .evidence(format!(
                    "ip route get {client} from {vip}: {} dev {}",
                    l.kind,
                    l.dev.as_deref().unwrap_or("?")
                ))
                .fix(format!(
                    "add a route to {client}, or lbctl route add {vip} --table T --via GW --dev IF"
                )),
        ),
        Ok(l) => {
            let dev = l.dev.clone().unwrap_or_default();
            let mut x = Finding::pass("return.path", title).evidence(format!(
                "ip route get {client} from {vip}: {}dev {dev} table {}",
                l.via.map(|g| format!("via {g} ")).unwrap_or_default(),
                l.table
            ));
            if let Some(a) = &p.arrival {
                if *a != dev {
                    x.status = Status::Warn;
                    x.evidence.push(format!("requests from {client} arrive on {a} but replies leave by {dev}: asymmetric (check policy routing)"));
                    x.fix = Some(format!(
                        "lbctl route add {vip} --table 100 --via GW --dev {a}"
                    ));
                }
            }
            if let Some(n) = nat_on(f, &dev) {
                x.status = Status::Fail;
                x.evidence.push(format!("nft: {n} on {dev}: replies from the VIP would be NATed and the client would drop them"));
                x.fix = Some(format!("lbctl route add {vip} --table 100 --via GW --dev IF   (send VIP replies out of the balancer-facing interface)"));
            }
            out.push(x);
            if l.table != 254 {
                out.push(policy_table(f, vip, l.table, &dev));
            }
        }
    }
    out
}

/// A `from VIP lookup T` table must hold both a default route and the connected route.
fn policy_table(f: &Facts, vip: IpAddr, table: u32, dev: &str) -> Finding {
    let title = format!("{vip}: policy table {table} complete");
    let in_table: Vec<_> = f
        .routes
        .iter()
        .filter(|r| r.table == table && r.dst.addr().is_ipv4() == vip.is_ipv4())
        .collect();
    let has_default = in_table.iter().any(|r| r.dst.prefix_len() == 0);
    let connected: Vec<_> = f
        .routes
        .iter()
        .filter(|r| {
            r.table == 254
                && r.dev.as_deref() == Some(dev)
                && r.via.is_none()
                && r.dst.prefix_len() > 0
                && r.dst.addr().is_ipv4() == vip.is_ipv4()
                && (r.scope_link || r.protocol == 2)
        })
        .collect();
    let missing: Vec<_> = connected
        .iter()
        .filter(|c| !in_table.iter().any(|r| r.dst == c.dst && r.via.is_none()))
        .map(|c| c.dst.to_string())
        .collect();
    let mut x = Finding::pass("return.policy_table", title.clone());
    for r in &in_table {
        x.evidence.push(format!(
            "{}{} dev {} table {table}",
            if r.dst.prefix_len() == 0 {
                "default".to_string()
            } else {
                r.dst.to_string()
            },
            r.via.map(|g| format!(" via {g}")).unwrap_or_default(),
            r.dev.as_deref().unwrap_or("?")
        ));
    }
    if !has_default {
        x.status = Status::Fail;
        x.evidence.push(format!("table {table} has no default route: replies to off-link clients fall through to the next rule"));
        x.fix = Some(format!(
            "lbctl route add {vip} --table {table} --via GW --dev {dev}"
        ));
    } else if !missing.is_empty() {
        x.status = Status::Fail;
        x.evidence.push(format!("connected route(s) of {dev} missing from table {table}: {} — even on-link replies go to the gateway", missing.join(", ")));
        x.fix = Some(format!(
            "ip route add {} dev {dev} scope link table {table}   (lbctl route add does this)",
            missing[0]
        ));
    }
    x
}

/// A masquerade/snat statement in a postrouting chain that could apply to `dev`.
fn nat_on(f: &Facts, dev: &str) -> Option<String> {
    let objs = f.ruleset.as_ref()?["nftables"].as_array()?;
    for o in objs {
        let Some(r) = o.get("rule") else { continue };
        let text = r["expr"].to_string();
        let nat = if text.contains("\"masquerade\"") {
            "masquerade"
        } else if text.contains("\"snat\"") {
            "snat"
        } else {
            continue;
        };
        let names_iface = text.contains("oifname") || text.contains("\"oif\"");
        if !names_iface || text.contains(&format!("\"{dev}\"")) {
            return Some(format!(
                "{nat} in table {} {} chain {}",
                r["family"].as_str().unwrap_or("?"),
                r["table"].as_str().unwrap_or("?"),
                r["chain"].as_str().unwrap_or("?")
            ));
        }
    }
    None
}

fn gateway_neighbour(f: &Facts, vip: IpAddr) -> Finding {
    let Some(p) = f.paths.get(&vip) else {
        return Finding::skip(
            "return.neighbour",
            format!("{vip}: next hop resolved"),
            "no client to route to",
        );
    };
    let Ok(l) = &p.reply else {
        return Finding::skip(
            "return.neighbour",
            format!("{vip}: next hop resolved"),
            "no route back",
        );
    };
    let Some(dev) = &l.dev else {
        return Finding::skip(
            "return.neighbour",
            format!("{vip}: next hop resolved"),
            "no output device",
        );
    };
    let hop = match (l.via, f.client) {
        (Some(gw), _) => gw,
        (None, Some(c)) => c,
        _ => {
            return Finding::skip(
                "return.neighbour",
                format!("{vip}: next hop resolved"),
                "no next hop",
            )
        }
    };
    let title = format!("{vip}: next hop {hop} on {dev} resolved");
    match f.neigh.iter().find(|n| n.ip == hop && &n.dev == dev) {
        Some(n) if matches!(n.state.as_str(), "reachable" | "stale" | "delay" | "probe" | "permanent" | "noarp") => {
            Finding::pass("return.neighbour", title).evidence(format!(
                "ip neigh: {hop} dev {dev} lladdr {} {}",
                n.mac.as_deref().map(mac).unwrap_or_default(),
                n.state.to_uppercase()
            ))
        }
        Some(n) => Finding::fail("return.neighbour", title)
            .evidence(format!("ip neigh: {hop} dev {dev} {}", n.state.to_uppercase()))
            .evidence("replies towards this next hop are dropped: wrong gateway, or a policy table without the connected route")
            .fix(format!("check that {hop} exists on {dev}'s segment (arping -i {dev} {hop})")),
        None => Finding::warn("return.neighbour", title)
            .evidence(format!("ip neigh: no entry for {hop} on {dev} yet (resolved on first reply)"))
            .fix(format!("ping -c1 -I {dev} {hop}")),
    }
}

pub fn mac(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A socket listening on `vip`:`port` or the wildcard address, if any.
pub(super) fn listening(
    f: &Facts,
    vip: IpAddr,
    port: u16,
) -> Option<&crate::sys::procnet::Listener> {
    f.listeners.iter().find(|l| {
        l.port == port
            && (l.addr == vip
                || (l.addr.is_unspecified()
                    && (l.addr.is_ipv4() == vip.is_ipv4() || l.addr.is_ipv6())))
    })
}

fn listener(f: &Facts, vip: IpAddr, ports: &[u16]) -> Finding {
    if ports.is_empty() {
        return Finding::skip(
            "listener",
            format!("{vip}: a service listens"),
            "no port given (use --vip VIP:PORT or ports in the profile)",
        );
    }
    let mut x = Finding::pass(
        "listener",
        format!(
            "{vip}: a service listens on port {}",
            ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
    );
    for port in ports {
        match listening(f, vip, *port) {
            Some(l) => x
                .evidence
                .push(format!("{} {}:{} listening", l.proto, l.addr, l.port)),
            None => {
                x.status = Status::Fail;
                x.evidence.push(format!(
                    "nothing listens on {vip}:{port} or the wildcard address (ss -ltnu)"
                ));
                x.fix = Some(format!(
                    "start the service bound to {vip}:{port} or to 0.0.0.0/[::]"
                ));
            }
        }
    }
    x
}

fn balancer_adjacent(f: &Facts) -> Finding {
    let Some(b) = f.balancer else {
        return Finding::skip(
            "l2.balancer",
            "balancer on the same L2 segment",
            "no --balancer given",
        );
    };
    let title = format!("balancer {b} on the same L2 segment");
    match &f.balancer_path {
        Some(Ok(l)) if l.via.is_none() && l.kind == "unicast" => Finding::pass("l2.balancer", title)
            .evidence(format!("ip route get {b}: dev {} (connected)", l.dev.as_deref().unwrap_or("?"))),
        Some(Ok(l)) => Finding::fail("l2.balancer", title)
            .evidence(format!("ip route get {b}: via {} — the balancer is routed, not adjacent", l.via.map(|v| v.to_string()).unwrap_or_else(|| l.kind.clone())))
            .evidence("DSR forwards by MAC: balancer and backend must share a segment (or use tunnel mode)")
            .fix("put this host's interface in the balancer's subnet/VLAN"),
        Some(Err(e)) => Finding::fail("l2.balancer", title).evidence(e.clone()),
        None => Finding::skip("l2.balancer", title, "not looked up"),
    }
}

/// `ct state invalid drop` in an input path eats DSR flows whose other half the host never sees.
fn firewall(f: &Facts) -> Vec<Finding> {
    let mut out = Vec::new();
    let title = "firewall: no `ct state invalid` drop in the input path";
    let Some(objs) = f.ruleset.as_ref().and_then(|r| r["nftables"].as_array()) else {
        out.push(match &f.ruleset_error {
            Some(why) => Finding::unknown(
                "firewall.ct_invalid",
                title,
                format!("nft ruleset not readable: {why}"),
            ),
            None => Finding::skip(
                "firewall.ct_invalid",
                title,
                "nft ruleset not readable (nft missing or no privilege)",
            ),
        });
        return out;
    };
    let input_chains: Vec<(String, String, String)> = objs
        .iter()
        .filter_map(|o| o.get("chain"))
        .filter(|c| matches!(c["hook"].as_str(), Some("input" | "prerouting")))
        .map(|c| key(c, "name"))
        .collect();
    let mut hits = Vec::new();
    for o in objs {
        let Some(r) = o.get("rule") else { continue };
        if !input_chains.contains(&key(r, "chain")) {
            continue;
        }
        let t = r["expr"].to_string();
        if t.contains("\"invalid\"") && t.contains("\"drop\"") {
            hits.push(format!(
                "table {} {} chain {}: ct state invalid drop",
                r["family"].as_str().unwrap_or(""),
                r["table"].as_str().unwrap_or(""),
                r["chain"].as_str().unwrap_or("")
            ));
        }
    }
    if hits.is_empty() {
        out.push(Finding::pass("firewall.ct_invalid", title));
    } else {
        let mut x = Finding::warn("firewall.ct_invalid", title)
            .fix("accept the VIP's traffic before the invalid-drop rule, or sysctl -w net.netfilter.nf_conntrack_tcp_be_liberal=1");
        x.evidence = hits;
        x.evidence.push("a backend sees only one direction of some flows' setup (e.g. after a balancer failover); conntrack marks them invalid".into());
        out.push(x);
    }
    if let Some(0) = f.tcp_be_liberal {
        out.push(
            Finding::pass("firewall.conntrack", "conntrack: tcp_be_liberal 0")
                .evidence("fine unless the firewall drops invalid packets"),
        );
    }
    out
}

fn key(v: &Value, name: &str) -> (String, String, String) {
    (
        v["family"].as_str().unwrap_or("").to_string(),
        v["table"].as_str().unwrap_or("").to_string(),
        v[name].as_str().unwrap_or("").to_string(),
    )
}

fn networkd(f: &Facts) -> Finding {
    let title = "systemd-networkd will not delete lbctl's policy rules";
    let rules_in_use = f
        .rules
        .plain
        .iter()
        .any(|(r, _)| f.targets.iter().any(|(v, _)| *v == r.from));
    match (&f.networkd_warning, rules_in_use) {
        (Some(w), true) => Finding::fail("host.networkd", title)
            .evidence(w.clone())
            .fix("ManageForeignRoutingPolicyRules=no in /etc/systemd/networkd.conf"),
        (Some(w), false) => Finding::warn("host.networkd", title).evidence(w.clone()),
        (None, _) => Finding::pass("host.networkd", title)
            .evidence("systemd-networkd not running, or configured to leave foreign rules alone"),
    }
}

fn mtu(f: &Facts) -> Finding {
    let mut x = Finding::pass("host.mtu", "path MTU of the reply interfaces");
    for (vip, p) in &f.paths {
        let Some(dev) = p.reply.as_ref().ok().and_then(|l| l.dev.clone()) else {
            continue;
        };
        let Some(link) = f.link(&dev) else { continue };
        x.evidence
            .push(format!("{vip}: replies leave by {dev}, mtu {}", link.mtu));
        if link.mtu < 1500 {
            x.status = Status::Warn;
            x.fix = Some(format!("clients behind a 1500-byte path get fragmentation-needed from {dev}: lower the service's MSS or raise the MTU"));
        }
    }
    x
}

fn drift(f: &Facts) -> Finding {
    let title = "lbctl-managed state in place (no drift)";
    if f.state.intents.is_empty() {
        return Finding::skip("lbctl.drift", title, "lbctl manages nothing here");
    }
    if let Some(why) = &f.drift_error {
        return Finding::unknown("lbctl.drift", title, why.clone());
    }
    if f.drift.is_empty() {
        return Finding::pass("lbctl.drift", title);
    }
    let mut x = Finding::fail("lbctl.drift", title).fix("lbctl apply -f PROFILE   (or re-run the lbctl command that set it up); lbctl status shows details");
    x.evidence = f.drift.iter().map(|d| format!("pending: {d}")).collect();
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::facts::Paths;
    use crate::model::AddrObj;
    use crate::sys::netlink::{AddrInfo, Link, Lookup};

    fn facts() -> Facts {
        let vip: IpAddr = "198.18.0.100".parse().unwrap();
        let mut f = Facts {
            targets: vec![(vip, vec![80])],
            client: Some("198.18.0.10".parse().unwrap()),
            links: vec![
                Link {
                    index: 1,
                    name: "lo".into(),
                    up: true,
                    mac: None,
                    mtu: 65536,
                },
                Link {
                    index: 2,
                    name: "eth0".into(),
                    up: true,
                    mac: Some(vec![2, 0, 0, 0, 0, 0x11]),
                    mtu: 1500,
                },
            ],
            addrs: vec![
                AddrInfo {
                    obj: AddrObj {
                        dev: "lo".parse().unwrap(),
                        addr: vip,
                        prefix: 32,
                    },
                    marked: true,
                },
                AddrInfo {
                    obj: AddrObj {
                        dev: "eth0".parse().unwrap(),
                        addr: "198.18.0.11".parse().unwrap(),
                        prefix: 24,
                    },
                    marked: false,
                },
            ],
            ..Facts::default()
        };
        f.paths.insert(
            vip,
            Paths {
                arrival: Some("eth0".into()),
                reply: Ok(Lookup {
                    dev: Some("eth0".into()),
                    via: None,
                    table: 254,
                    kind: "unicast".into(),
                    prefsrc: None,
                }),
            },
        );
        f
    }

    fn status(fs: &[Finding], id: &str) -> Status {
        fs.iter()
            .find(|f| f.id == id)
            .unwrap_or_else(|| panic!("{id} missing"))
            .status
    }

    #[test]
    fn unsuppressed_vip_fails_with_fix() {
        let f = facts();
        let out = checks(&f);
        assert_eq!(status(&out, "vip.present"), Status::Pass);
        assert_eq!(status(&out, "arp.suppressed"), Status::Fail);
        let fx = out
            .iter()
            .find(|x| x.id == "arp.suppressed")
            .unwrap()
            .fix
            .clone()
            .unwrap();
        assert_eq!(fx, "lbctl arp suppress 198.18.0.100 --real-ip 198.18.0.11");
        assert_eq!(status(&out, "listener"), Status::Fail);
    }

    #[test]
    fn sysctls_on_the_interface_suppress() {
        let mut f = facts();
        f.conf.insert(("eth0".into(), "arp_ignore".into()), 1);
        f.conf.insert(("eth0".into(), "arp_announce".into()), 2);
        assert_eq!(status(&checks(&f), "arp.suppressed"), Status::Pass);
        // Only via conf/all: works, with a warning about side effects.
        let mut f = facts();
        f.conf.insert(("all".into(), "arp_ignore".into()), 1);
        f.conf.insert(("all".into(), "arp_announce".into()), 2);
        assert_eq!(status(&checks(&f), "arp.suppressed"), Status::Warn);
    }

    #[test]
    fn strict_rp_filter_with_asymmetric_return_fails() {
        let mut f = facts();
        f.conf.insert(("all".into(), "rp_filter".into()), 1);
        let vip = f.targets[0].0;
        f.paths.get_mut(&vip).unwrap().reply = Ok(Lookup {
            dev: Some("rpx0".into()),
            via: Some("192.0.2.254".parse().unwrap()),
            table: 200,
            kind: "unicast".into(),
            prefsrc: None,
        });
        let out = checks(&f);
        assert_eq!(status(&out, "rpfilter.accepts"), Status::Fail);
        assert_eq!(status(&out, "return.path"), Status::Warn);
        // Table 200 has neither default nor connected route in these facts.
        assert_eq!(status(&out, "return.policy_table"), Status::Fail);
    }

    #[test]
    fn wide_prefix_vip_fails() {
        let mut f = facts();
        f.addrs[0].obj.prefix = 24;
        assert_eq!(status(&checks(&f), "vip.present"), Status::Fail);
    }
}
