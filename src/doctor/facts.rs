//! Everything doctor looks at, gathered once through `sys/` (read-only: doctor changes nothing).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::Value;

use crate::context::Env;
use crate::error::Result;
use crate::journal::State;
use crate::model::SysctlKey;
use crate::plan::ArpMap;
use crate::sys::mac::Mac;
use crate::sys::netlink::{AddrInfo, Link, Lookup, Neigh, RouteInfo, Rules};
use crate::sys::procnet::Listener;
use crate::sys::whohas::{who_has, Answer, Query};
use crate::sys::{arptable, nft, procnet, sysctl};

/// ipv4 conf keys doctor reads for `all` and every interface.
pub const CONF_KEYS: [&str; 4] = ["arp_ignore", "arp_announce", "rp_filter", "proxy_arp"];

/// Route lookups for one VIP.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Interface requests from the client arrive on (the route towards the client).
    pub arrival: Option<String>,
    /// `ip route get CLIENT from VIP` (the reply path), or the error.
    pub reply: std::result::Result<Lookup, String>,
}

#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// VIPs to check, with their service ports.
    pub targets: Vec<(IpAddr, Vec<u16>)>,
    pub client: Option<IpAddr>,
    /// The client is the default gateway, used as a typical source.
    pub client_guessed: bool,
    pub balancer: Option<IpAddr>,
    pub balancer_path: Option<std::result::Result<Lookup, String>>,
    pub links: Vec<Link>,
    pub addrs: Vec<AddrInfo>,
    pub rules: Rules,
    pub routes: Vec<RouteInfo>,
    pub neigh: Vec<Neigh>,
    /// (iface, key) → value for `all` and every interface.
    pub conf: BTreeMap<(String, String), i64>,
    pub arp_table: Option<ArpMap>,
    /// Why `table arp lbctl` could not be read (no CAP_NET_ADMIN, nft missing), if so.
    pub arp_table_error: Option<String>,
    pub arp_intact: bool,
    pub listeners: Vec<Listener>,
    pub ruleset: Option<Value>,
    /// Why `ruleset` could not be listed (no CAP_NET_ADMIN, nft missing), if so.
    pub ruleset_error: Option<String>,
    /// Legacy (x_tables) iptables tables loaded here: not visible in `ruleset`.
    pub legacy_iptables: Vec<String>,
    /// `--netns NAME`, so fixes can be pasted from outside the namespace.
    pub netns: Option<String>,
    pub paths: BTreeMap<IpAddr, Paths>,
    pub networkd_warning: Option<String>,
    pub state: State,
    /// Pending lbctl changes (drift), as commands.
    pub drift: Vec<String>,
    /// Why the drift plan could not be made (the kernel state could not be read), if so.
    pub drift_error: Option<String>,
    pub ipvs_available: bool,
    pub tcp_be_liberal: Option<i64>,
    /// IPVS services (`--role lb`), or why they could not be read.
    pub ipvs: Option<std::result::Result<Vec<crate::ipvs::ServiceEntry>, String>>,
    /// Route lookups towards each IPVS real server (L2 adjacency for DR).
    pub rs_paths: BTreeMap<IpAddr, std::result::Result<Lookup, String>>,
    /// Frames captured for the VIPs (`--capture SECS`), with the capture's duration.
    pub capture: Option<(Vec<crate::sys::capture::Packet>, f64)>,
    /// `--role lb`: who answers ARP/NS for each VIP on the segment.
    pub arp_audit: Vec<ArpAudit>,
    /// `--balancer` on a backend: ARP/NS for the balancer and the VIPs on the shared segment.
    pub balancer_probe: Option<BalancerProbe>,
    /// `--role lb`: the `lbctl lb run` daemons of this namespace and their data path.
    pub engines: Vec<Engine>,
    /// `--role lb`: `/proc/net/bonding/*`.
    pub bonds: Vec<crate::doctor::bonding::Bond>,
}

/// How long `--role lb` listens for ARP answers for its VIPs (every answer is wanted).
pub const AUDIT_WINDOW: std::time::Duration = std::time::Duration::from_millis(300);
/// How long a backend waits for the balancer's ARP answer (it stops at the first one).
pub const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1000);

/// Who answered ARP/NS for one VIP, asked from the balancer.
#[derive(Debug, Clone)]
pub struct ArpAudit {
    pub vip: IpAddr,
    /// The interface asked on, or why there is none.
    pub iface: std::result::Result<String, String>,
    /// This balancer's MAC on that interface.
    pub own_mac: Option<[u8; 6]>,
    pub answers: std::result::Result<Vec<Answer>, String>,
    /// The lab nodes behind answering MACs, when the MAC is a lab node's.
    pub owners: BTreeMap<[u8; 6], crate::lab::Node>,
}

/// A backend's ARP/NS probe of its balancer.
#[derive(Debug, Clone)]
pub struct BalancerProbe {
    pub iface: String,
    /// The VIPs asked about too (same family as the balancer).
    pub vips: Vec<IpAddr>,
    pub answers: std::result::Result<Vec<Answer>, String>,
}

/// Named counters of an nft engine: service id → (packets, bytes).
pub type Counters = BTreeMap<String, (u64, u64)>;

/// One `lbctl lb run` daemon as doctor sees it.
#[derive(Debug, Clone)]
pub struct Engine {
    pub status: crate::lb::status::RunStatus,
    pub alive: bool,
    pub verdict: crate::lb::verify::Verdict,
    /// `nft -t list table netdev lbctl_lb_NAME` (nft engine; `None` inside: no such table).
    pub table: Option<std::result::Result<Option<String>, String>>,
    /// Named counters (service id → packets, bytes), read at gather time…
    pub counters: Option<std::result::Result<Counters, String>>,
    /// …and again after `--capture` (with the seconds in between).
    pub counters_later: Option<(Counters, f64)>,
}

impl Facts {
    pub fn conf(&self, iface: &str, key: &str) -> i64 {
        self.conf
            .get(&(iface.to_string(), key.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// max(all, iface): the value the kernel acts on.
    pub fn effective(&self, iface: &str, key: &str) -> i64 {
        self.conf("all", key).max(self.conf(iface, key))
    }

    /// Interfaces that face the network: up, not lo, with an IPv4 address.
    pub fn arp_facing(&self) -> Vec<&str> {
        self.links
            .iter()
            .filter(|l| l.up && l.name != "lo")
            .filter(|l| {
                self.addrs
                    .iter()
                    .any(|a| a.obj.dev == l.name && a.obj.addr.is_ipv4())
            })
            .map(|l| l.name.as_str())
            .collect()
    }

    /// This host's MAC on `iface`.
    pub fn mac_of(&self, iface: &str) -> Option<Mac> {
        let m = self.link(iface)?.mac.as_ref()?;
        m.as_slice().try_into().ok()
    }

    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    /// The main table's default gateway of the family of `like`.
    pub fn default_gateway(&self, v4: bool) -> Option<IpAddr> {
        self.routes
            .iter()
            .find(|r| r.table == 254 && r.dst.prefix_len() == 0 && r.dst.addr().is_ipv4() == v4)
            .and_then(|r| r.via)
    }
}

/// Gather the facts for `targets`.
///
/// Concurrently: the one `nft -j list ruleset` (every nft view — the firewall's ruleset,
/// lbctl's arp table, the drift plan's nft read, the engines' counters — is derived from it)
/// runs, collected by a thread, while this thread makes the netlink and sock_diag dumps and
/// the /proc/sys reads and another scans /proc for systemd-networkd; `--balancer`'s ARP/NS
/// probe (up to [`PROBE_TIMEOUT`]) runs in a thread beside all of it. nft and the threads
/// inherit this thread's network namespace.
pub fn gather(
    env: &Env,
    targets: Vec<(IpAddr, Vec<u16>)>,
    client: Option<IpAddr>,
    balancer: Option<IpAddr>,
    lb_role: bool,
    netns: Option<String>,
) -> Result<Facts> {
    let sys = &env.sys;
    // nft first: its run is the longest fact (process start-up included), everything else
    // happens while it lists.
    let listing = nft::start_ruleset_listing();
    std::thread::scope(|s| {
        let ruleset = s.spawn(move || listing.finish());
        // Reading the name of every process but the kernel threads (is systemd-networkd
        // running?) is the slowest /proc read: beside nft too, not in this thread's way.
        let networkd = s.spawn(crate::sys::networkd_foreign_rules_warning);
        let links = sys.links()?;
        // One link dump names the interfaces of every dump and lookup below.
        let _pinned = sys.pin_links(&links);
        let mut f = Facts {
            targets,
            balancer,
            netns,
            links,
            addrs: sys.addresses()?,
            rules: sys.rules()?,
            routes: sys.routes()?,
            neigh: sys.neighbours()?,
            ..Facts::default()
        };
        // The probe waits for an answer: start it as soon as its interface is known (after
        // the neighbour table is read: answers may refresh it).
        let probe = balancer.map(|b| {
            let path = sys.route_get(b, None, None).map_err(|e| e.to_string());
            let mut probe = None;
            if let Ok(l) = &path {
                if let (None, Some(dev), "unicast") = (l.via, &l.dev, l.kind.as_str()) {
                    let vips: Vec<IpAddr> = f
                        .targets
                        .iter()
                        .map(|(v, _)| *v)
                        .filter(|v| v.is_ipv4() == b.is_ipv4())
                        .collect();
                    let mut asked = vec![b];
                    asked.extend(&vips);
                    let q = Query::from_iface(&f.links, &f.addrs, dev, asked, PROBE_TIMEOUT, true);
                    let iface = dev.clone();
                    probe = Some(s.spawn(move || {
                        let answers = q.and_then(|q| who_has(&q)).map_err(|e| e.to_string());
                        BalancerProbe {
                            iface,
                            vips,
                            answers,
                        }
                    }));
                }
            }
            f.balancer_path = Some(path);
            probe
        });
        f.state = env.journal.load()?;
        f.ipvs_available = std::path::Path::new("/proc/net/ip_vs").exists();
        f.tcp_be_liberal = sysctl::read_int(&SysctlKey(
            "net/netfilter/nf_conntrack_tcp_be_liberal".into(),
        ))?;
        let mut ifaces: Vec<String> = vec!["all".into(), "default".into()];
        ifaces.extend(f.links.iter().map(|l| l.name.clone()));
        for i in &ifaces {
            for k in CONF_KEYS {
                if let Some(v) = sysctl::read_int(&SysctlKey::ipv4_conf(i, k))? {
                    f.conf.insert((i.clone(), k.to_string()), v);
                }
            }
        }
        f.client = client;
        for (vip, _) in f.targets.clone() {
            let client = client.or_else(|| {
                let gw = f.default_gateway(vip.is_ipv4());
                f.client_guessed |= gw.is_some();
                gw
            });
            let Some(client) = client else { continue };
            if client.is_ipv4() != vip.is_ipv4() {
                continue;
            }
            let arrival = sys.route_get(client, None, None).ok().and_then(|l| l.dev);
            let reply = sys
                .route_get(client, Some(vip), None)
                .map_err(|e| e.to_string());
            f.paths.insert(vip, Paths { arrival, reply });
            if f.client.is_none() {
                f.client = Some(client);
            }
        }
        if lb_role {
            let services = crate::ipvs::Client::open()
                .and_then(|mut c| c.services())
                .map_err(|e| e.to_string());
            if let Ok(list) = &services {
                f.ipvs_available = true;
                for d in list.iter().flat_map(|s| &s.dests) {
                    let rip = d.dest.addr;
                    f.rs_paths.entry(rip).or_insert_with(|| {
                        sys.route_get(rip, None, None).map_err(|e| e.to_string())
                    });
                }
            }
            f.ipvs = Some(services);
        }
        f.listeners = procnet::listeners();
        f.legacy_iptables = crate::sys::iptables::legacy_tables();
        // lbctl's arp table (nf_tables netlink, while nft lists the ruleset): read once, for
        // the checks and for the drift plan. It needs CAP_NET_ADMIN; without it doctor says
        // so per check.
        let arp = arptable::observe();
        match &arp {
            Ok(o) => {
                f.arp_table = o.map.clone();
                f.arp_intact = o.intact;
            }
            Err(e) => {
                f.arp_intact = false;
                f.arp_table_error = Some(e.to_string());
            }
        }
        // The drift plan is made from the dumps above and that reading of the arp table.
        let plan = arp.and_then(|arp| {
            crate::engine::plan_observed(
                &f.state,
                f.addrs.clone(),
                f.rules.clone(),
                f.routes.clone(),
                arp,
            )
        });
        match plan {
            Ok(plan) => f.drift = plan.commands(),
            Err(e) => f.drift_error = Some(e.to_string()),
        }
        let read = ruleset.join().expect("the nft thread does not panic");
        f.networkd_warning = networkd.join().expect("the /proc scan does not panic");
        f.ruleset_error = read.unreadable();
        if lb_role {
            gather_lb(env, &mut f, &read);
        }
        f.ruleset = read.into_json();
        if let Some(p) = probe.flatten() {
            f.balancer_probe = Some(p.join().expect("the balancer probe does not panic"));
        }
        Ok(f)
    })
}

/// The interface a balancer answers ARP for `vip` on: where the VIP is (not `lo`), else the
/// interface of a daemon serving it, else the route's.
fn vip_iface(env: &Env, f: &Facts, vip: IpAddr) -> std::result::Result<String, String> {
    if let Some(a) = f
        .addrs
        .iter()
        .find(|a| a.obj.addr == vip && a.obj.dev != "lo")
    {
        return Ok(a.obj.dev.to_string());
    }
    if let Some(e) = f
        .engines
        .iter()
        .find(|e| e.status.services.iter().any(|s| s.vip.parse() == Ok(vip)))
    {
        return Ok(e.status.interface.clone());
    }
    match env.sys.route_get(vip, None, None) {
        Ok(l) => match l.dev {
            Some(d) if d != "lo" => Ok(d),
            _ => Err(format!("{vip} is on no segment interface")),
        },
        Err(e) => Err(e.to_string()),
    }
}

/// `--role lb`: the daemons and their engines, the bonds, and the ARP audit of every VIP.
fn gather_lb(env: &Env, f: &mut Facts, read: &nft::RulesetRead) {
    for status in crate::lb::status::read_all(env.journal.dir()).unwrap_or_default() {
        f.engines.push(Engine {
            alive: status.alive(),
            status,
            verdict: crate::lb::verify::Verdict::default(),
            table: None,
            counters: None,
            counters_later: None,
        });
    }
    // One query per interface, every VIP at once, for the whole window.
    let mut by_iface: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    let mut audits = Vec::new();
    for (vip, _) in &f.targets {
        let iface = vip_iface(env, f, *vip);
        if let Ok(i) = &iface {
            by_iface.entry(i.clone()).or_default().push(*vip);
        }
        audits.push(ArpAudit {
            vip: *vip,
            own_mac: iface.as_ref().ok().and_then(|i| f.mac_of(i)),
            iface,
            answers: Ok(Vec::new()),
            owners: BTreeMap::new(),
        });
    }
    let queries: Vec<(Vec<IpAddr>, std::result::Result<Query, String>)> = by_iface
        .into_iter()
        .map(|(iface, vips)| {
            let q = Query::from_iface(
                &f.links,
                &f.addrs,
                &iface,
                vips.clone(),
                AUDIT_WINDOW,
                false,
            )
            .map_err(|e| e.to_string());
            (vips, q)
        })
        .collect();
    // The audits listen for their whole window: read the engines meanwhile (the threads
    // inherit this thread's network namespace).
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = queries
            .into_iter()
            .map(|(vips, q)| {
                s.spawn(move || {
                    let r = q.and_then(|q| who_has(&q).map_err(|e| e.to_string()));
                    (vips, r)
                })
            })
            .collect();
        for e in f.engines.iter_mut().filter(|e| e.alive) {
            e.verdict = crate::lb::verify::check(&env.sys, &e.status);
            if e.status.engine == "nft" {
                let t = crate::lb::nft::table_name(&e.status.name);
                e.table = Some(nft::list_table_text_terse("netdev", &t).map_err(|e| e.to_string()));
                e.counters = Some(
                    read.table("netdev", &t)
                        .map(|doc| {
                            doc.map(|d| crate::lb::nft::parse_counters(&d))
                                .unwrap_or_default()
                        })
                        .map_err(|e| e.to_string()),
                );
            }
        }
        handles
            .into_iter()
            .map(|h| h.join().expect("an ARP audit thread does not panic"))
            .collect::<Vec<_>>()
    });
    f.bonds = procnet::bonding_files()
        .iter()
        .map(|(n, t)| crate::doctor::bonding::parse(n, t))
        .collect();
    let run_dir = crate::lab::state::default_run_dir();
    for (vips, res) in results {
        for a in audits.iter_mut().filter(|a| vips.contains(&a.vip)) {
            a.answers = match &res {
                Ok(list) => Ok(list.iter().filter(|x| x.target == a.vip).copied().collect()),
                Err(e) => Err(e.clone()),
            };
            if let Ok(list) = &a.answers {
                for x in list {
                    let m = crate::doctor::backend::mac(&x.mac);
                    if let Some(n) = crate::lab::node_with_mac(&run_dir, &m, f.netns.as_deref()) {
                        a.owners.insert(x.mac, n);
                    }
                }
            }
        }
    }
    f.arp_audit = audits;
}

fn read_counters(table: &str) -> std::result::Result<BTreeMap<String, (u64, u64)>, String> {
    match nft::list_json(&["counters", "table", "netdev", table]) {
        Ok(Some(doc)) => Ok(crate::lb::nft::parse_counters(&doc)),
        Ok(None) => Ok(BTreeMap::new()),
        Err(e) => Err(e.to_string()),
    }
}

/// Read the engines' counters again (after `--capture`), `secs` after the first read.
pub fn reread_counters(f: &mut Facts, secs: f64) {
    for e in f.engines.iter_mut().filter(|e| e.counters.is_some()) {
        let t = crate::lb::nft::table_name(&e.status.name);
        if let Ok(c) = read_counters(&t) {
            e.counters_later = Some((c, secs));
        }
    }
}

/// Capture traffic for `vips` on every interface for `secs` seconds (a spinner on a TTY).
pub fn capture(
    ctx: &crate::Ctx,
    vips: &[IpAddr],
    secs: f64,
) -> Result<Vec<crate::sys::capture::Packet>> {
    use crate::sys::capture::{capture, CaptureOpts, Filter};
    use std::io::IsTerminal;
    let bar = if std::io::stderr().is_terminal() && !ctx.global.quiet && !ctx.global.json {
        let b = indicatif::ProgressBar::new((secs * 10.0) as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("capturing {bar:30} {msg}")
                .expect("valid template"),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let start = std::time::Instant::now();
    let mut packets = Vec::new();
    let opts = CaptureOpts {
        iface: None,
        filter: Filter {
            hosts: vips.to_vec(),
        },
        max_packets: Some(100_000),
        duration: Some(std::time::Duration::from_secs_f64(secs)),
    };
    capture(&opts, &mut |p| {
        packets.push(p.clone());
        bar.set_position((start.elapsed().as_secs_f64() * 10.0) as u64);
        bar.set_message(format!("{} frames", packets.len()));
        true
    })?;
    bar.finish_and_clear();
    Ok(packets)
}
