//! `lbctl lab`: the DSR sandbox's command line, and its value enums (the balancer's engine, the
//! faults `lab break` injects) with their conversions to the lab's own types.

use std::path::PathBuf;

use crate::lab::{self, BalancerFault, Engine, Fault, Routing, ServerFault};

/// Lab commands.
#[derive(Debug, clap::Subcommand)]
pub enum LabCmd {
    /// Build a lab: a switch, a client, a balancer (`lbctl lb run`) and K backends configured
    /// by lbctl, each serving a page that names it.
    Up(UpArgs),
    /// The whole story in a few seconds: up, requests through the VIP, where they went and
    /// that replies bypassed the balancer, doctor on a backend, down. Ctrl-C cleans up too.
    Demo(DemoArgs),
    /// Send HTTP requests from the client to the VIP and show which backend answered and which
    /// way the replies went.
    Traffic(TrafficArgs),
    /// Run a command inside a lab node's namespace (exit code passed through).
    Exec(ExecArgs),
    /// Show labs: nodes, namespaces, addresses, processes, injected faults (exit 1 if something
    /// recorded is missing or dead).
    Status(StatusArgs),
    /// Remove a lab: stop its processes (by recorded PID), delete its namespaces.
    Down(DownArgs),
    /// Inject a classic DSR fault into a backend, then watch `lbctl doctor` find it.
    Break(BreakArgs),
    /// The lab's built-in HTTP server: answers `GET /` with its name (started by `lab up`).
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
pub struct NameArg {
    /// The lab (namespaces are named lbl-NAME-NODE).
    #[arg(long, default_value = lab::DEFAULT_NAME, value_name = "NAME")]
    pub name: String,
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub name: NameArg,
    /// Number of backends (1-9; default 2).
    #[arg(long, value_name = "K")]
    pub backends: Option<u8>,
    /// Also IPv6: 2001:db8::/64 addresses and the VIP 2001:db8::100.
    #[arg(long)]
    pub ipv6: bool,
    /// Configure the backends with this profile instead of `arp suppress` + `vip add`;
    /// placeholders {{vip}} {{rip}} {{node}} {{gateway}} {{port}} {{iface}} (and {{vip6}}
    /// {{rip6}} {{gateway6}} with --ipv6) are filled in per backend.
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<PathBuf>,
    /// The balancer's engine (default auto).
    #[arg(long, value_enum)]
    pub engine: Option<EngineArg>,
    /// Do not start `lbctl lb run` (bring your own balancer in the lb namespace).
    #[arg(long)]
    pub no_balancer: bool,
    /// More than one balancer (1-4; nodes lb1…lbK); needs --routing.
    #[arg(long, value_name = "K", requires = "routing")]
    pub balancers: Option<u8>,
    /// How the balancers share the VIP: bgp (a router in front, VIP 198.18.2.100 outside the
    /// balancer segment) or vrrp (no router, on-link VIP 198.18.0.100); default 2 balancers.
    #[arg(long, value_enum)]
    pub routing: Option<RoutingArg>,
    /// The lab's shape: dsr (a balancer and backends, the default) or crossover (no balancer:
    /// a router spreads 198.18.100.0/24 over the `crossover plan` addresses of servers s1…sN,
    /// each running `lbctl crossover run`).
    #[arg(long, value_enum)]
    pub topology: Option<TopologyArg>,
    /// Servers of a crossover lab (3-8).
    #[arg(long, value_name = "N", requires = "topology")]
    pub servers: Option<u8>,
    /// Tiers of a crossover lab's plan: 2 (default) or 3 (tertiaries cover double failures;
    /// at most 7 servers).
    #[arg(long, value_name = "T", requires = "servers")]
    pub tiers: Option<u8>,
}

/// The shape of a lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TopologyArg {
    /// A client, a balancer (or several, with --routing) and K backends: Direct Server Return.
    Dsr,
    /// No balancer: a router with static multipath routes and N servers running the crossover
    /// agent (needs --servers N).
    Crossover,
}

/// How a routed lab's balancers reach its router (`lab::Routing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoutingArg {
    /// Each balancer's `lb run` announces the VIP by BGP (BIRD 2) to the router, which runs
    /// BIRD 2 with ECMP (`merge paths on`) and an L4 multipath hash.
    Bgp,
    /// The balancers share the on-link VIP 198.18.0.100 by VRRP (`lb run` with `[ha]`:
    /// keepalived, unicast peers); no router.
    Vrrp,
}

impl From<RoutingArg> for Routing {
    fn from(r: RoutingArg) -> Routing {
        match r {
            RoutingArg::Bgp => Routing::Bgp,
            RoutingArg::Vrrp => Routing::Vrrp,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The demo lab's name (removed again at the end).
    #[arg(long, default_value = "demo", value_name = "NAME")]
    pub name: String,
    /// Requests to send (each on a new connection).
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub requests: usize,
    /// The balancer's engine.
    #[arg(long, value_enum, default_value_t)]
    pub engine: EngineArg,
}

#[derive(Debug, clap::Args)]
pub struct TrafficArgs {
    #[command(flatten)]
    pub name: NameArg,
    /// Requests to send (each on a new connection).
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub requests: usize,
    /// Use the IPv6 VIP (the lab must be up with --ipv6).
    #[arg(long)]
    pub ipv6: bool,
    /// Instead: N long downloads (1 MiB each; a routed lab paces its backends so they last
    /// seconds), all open at once, until they finish; reports how many arrived byte-intact.
    /// Run `lab break` from another terminal meanwhile.
    #[arg(long, value_name = "N", conflicts_with_all = ["requests", "ipv6"])]
    pub long: Option<usize>,
    /// After the requests, 1 MiB uploads (8, plus one per 128 requests) that all go to one
    /// backend: they reuse the source ports of requests it answered, and the balancer hashes
    /// client address and port. New flows stay spread, bytes do not: see `lbctl lb balance`.
    #[arg(long, conflicts_with = "long")]
    pub skewed: bool,
}

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub name: NameArg,
    /// The node: sw, client, lb, be1, be2, …
    pub node: String,
    /// The command and its arguments (put `--` before a command with options).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub cmd: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Only this lab (default: every lab).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct DownArgs {
    /// The lab to remove.
    #[arg(long, value_name = "NAME", conflicts_with = "all")]
    pub name: Option<String>,
    /// Remove every recorded lab.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, clap::Args)]
pub struct BreakArgs {
    #[command(flatten)]
    pub name: NameArg,
    /// The backend: be1, be2, … (or a routed lab's balancer: lb1, lb2, …; or a crossover
    /// lab's server: s1, s2, …)
    pub node: String,
    /// The fault to inject.
    #[arg(value_enum)]
    pub fault: FaultArg,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// What `GET /` answers (the backend's name).
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// TCP port, on every address (`[::]` dual-stack, or 0.0.0.0).
    #[arg(long, default_value_t = lab::PORT, value_name = "PORT")]
    pub port: u16,
}

/// How the balancer forwards (`lab::Engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EngineArg {
    /// IPVS when the kernel has it, else nftables.
    #[default]
    Auto,
    /// Kernel IPVS in direct-routing mode.
    Ipvs,
    /// An nftables netdev ingress chain rewriting MACs.
    Nft,
}

impl From<EngineArg> for Engine {
    fn from(e: EngineArg) -> Engine {
        match e {
            EngineArg::Auto => Engine::Auto,
            EngineArg::Ipvs => Engine::Ipvs,
            EngineArg::Nft => Engine::Nft,
        }
    }
}

/// A fault `lab break` can inject (`lab::Fault`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FaultArg {
    /// Undo ARP suppression: the backend answers ARP for the VIP and can steal the traffic.
    ArpFlux,
    /// Strict rp_filter plus a policy route that makes replies from the VIP leave by a second
    /// link: the kernel drops the balancer's requests.
    RpFilter,
    /// Remove the VIP from lo: the backend drops what the balancer forwards to it.
    NoVip,
    /// Stop the backend's HTTP server (by its recorded PID).
    NoListener,
    /// `ip rule from VIP lookup 200` whose table has a default route but no link route: even
    /// on-link replies go to a gateway that does not exist.
    PolicyTableWithoutLinkRoute,
    /// An nftables input rule `ip daddr VIP tcp dport 80 drop`: the SYNs the balancer forwards
    /// are dropped (the real IP still answers, so only the DSR probe notices).
    FirewallDrop,
    /// A reverse-path filter in nftables (`fib saddr . iif oif missing drop`, as firewalld
    /// writes it) while replies from the VIP leave by a second port on the switch (`eth1`):
    /// replies would work, but the filter drops the requests.
    FibRpfilter,
    /// Stop the lab's balancer (`lbctl lb run`, by its recorded PID) and make sure its VIP is
    /// gone: seen from the backend, nobody answers ARP for the VIP.
    NoBalancer,
    /// Routed labs, a balancer lbN: SIGKILL its recorded processes (a crash); waits until the
    /// router has dropped it.
    Down,
    /// Routed labs, a balancer lbN: SIGTERM its `lb run`, which withdraws the VIP first, then
    /// removes its data path; waits until the router has dropped it.
    Drain,
    /// VRRP labs, a balancer lbN: set its switch port sw-lbN down (restored by `lab down`);
    /// waits until another balancer is MASTER.
    Isolate,
    /// Crossover labs, a server sN: stop its HTTP server while its kernel still answers ARP;
    /// its agent's health check fails and it releases every address. (`down` on a crossover
    /// server cuts its switch port.) Waits until its addresses answer from other servers.
    ServiceDead,
}

/// What a [`FaultArg`] breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakKind {
    /// A DSR fault in a backend.
    Backend(Fault),
    /// A balancer of a routed lab (`down` also breaks a crossover lab's server).
    Balancer(BalancerFault),
    /// A server of a crossover lab.
    Server(ServerFault),
}

impl BreakKind {
    pub fn name(self) -> &'static str {
        match self {
            BreakKind::Backend(f) => f.name(),
            BreakKind::Balancer(f) => f.name(),
            BreakKind::Server(f) => f.name(),
        }
    }
}

impl From<FaultArg> for BreakKind {
    fn from(f: FaultArg) -> BreakKind {
        use BreakKind::{Backend, Balancer};
        match f {
            FaultArg::ArpFlux => Backend(Fault::ArpFlux),
            FaultArg::RpFilter => Backend(Fault::RpFilter),
            FaultArg::NoVip => Backend(Fault::NoVip),
            FaultArg::NoListener => Backend(Fault::NoListener),
            FaultArg::PolicyTableWithoutLinkRoute => Backend(Fault::PolicyTableWithoutLinkRoute),
            FaultArg::FirewallDrop => Backend(Fault::FirewallDrop),
            FaultArg::FibRpfilter => Backend(Fault::FibRpfilter),
            FaultArg::NoBalancer => Backend(Fault::NoBalancer),
            FaultArg::Down => Balancer(BalancerFault::Down),
            FaultArg::Drain => Balancer(BalancerFault::Drain),
            FaultArg::Isolate => Balancer(BalancerFault::Isolate),
            FaultArg::ServiceDead => BreakKind::Server(ServerFault::ServiceDead),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    #[test]
    fn fault_and_engine_names_match_the_lab() {
        for a in FaultArg::value_variants() {
            let f = BreakKind::from(*a);
            assert_eq!(a.to_possible_value().unwrap().get_name(), f.name());
        }
        // `down` is shared by balancers and crossover servers.
        assert_eq!(
            FaultArg::value_variants().len(),
            Fault::ALL.len() + BalancerFault::ALL.len() + ServerFault::ALL.len() - 1
        );
        assert_eq!(ServerFault::Down.name(), BalancerFault::Down.name());
        for r in RoutingArg::value_variants() {
            assert_eq!(
                r.to_possible_value().unwrap().get_name(),
                Routing::from(*r).as_str()
            );
        }
        for a in EngineArg::value_variants() {
            let e = Engine::from(*a);
            assert_eq!(a.to_possible_value().unwrap().get_name(), e.as_str());
        }
        assert_eq!(Engine::from(EngineArg::default()), Engine::default());
    }
}
