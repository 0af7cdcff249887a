//! The command line, as clap definitions only: parsing and shape checks, no syscalls.
//!
//! Man pages and shell completions are generated from these definitions (`lbctl gen`), so every
//! help string here is user documentation.

pub mod crossover;
pub mod lab;
pub mod lb;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Direct Server Return (DSR) load balancing: set up backends, diagnose them, run a balancer.
#[derive(Debug, Parser)]
#[command(
    name = "lbctl",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Exit codes: 0 ok, 1 findings/drift/pending changes, 2 usage or runtime \
error (nothing left half-done), 77 missing privilege (CAP_NET_ADMIN)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone, Default)]
pub struct GlobalArgs {
    /// Machine-readable JSON output on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// More detail (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Run inside the named network namespace (as created by `ip netns add NAME`).
    #[arg(long, global = true, value_name = "NAME")]
    pub netns: Option<String>,
    /// Print the plan as `ip`/`nft`/`sysctl` commands and change nothing.
    #[arg(short = 'n', long, global = true)]
    pub dry_run: bool,
    /// How long a change waits for another lbctl changing this namespace (seconds; 0: fail at
    /// once). Default: wait as long as it takes, saying so after 2 s.
    #[arg(long, global = true, value_name = "SECONDS")]
    pub wait: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage VIPs on this backend (a /32 or /128 on `lo` by default).
    #[command(subcommand)]
    Vip(VipCmd),
    /// Keep this backend from answering ARP for its VIPs.
    #[command(subcommand)]
    Arp(ArpCmd),
    /// Source-based policy routing so replies from a VIP leave by the right gateway.
    #[command(subcommand)]
    Route(RouteCmd),
    /// Report and fix reverse-path filtering (rp_filter) for DSR traffic.
    #[command(subcommand)]
    Rpfilter(RpfilterCmd),
    /// Show what applying a profile would change (exit 1 if anything).
    Plan(ProfileArgs),
    /// Converge this host to a profile (all or nothing: a failure rolls back).
    Apply(ProfileArgs),
    /// Show what lbctl manages and any drift (exit 1 on drift).
    Status(StatusArgs),
    /// Rebuild lbctl's record of what it owns from its marks (proto 76 addresses, rules and
    /// routes, its nft tables, the sysctl backup) after the journal was lost or damaged.
    Adopt,
    /// Keep what lbctl owns converged: re-apply drift (a flushed nft ruleset, a deleted VIP,
    /// a reset sysctl) within a second, logging each repair. Runs until SIGTERM/SIGINT.
    Watch(WatchArgs),
    /// Remove what lbctl added (for one profile, or everything) and restore recorded sysctls.
    Down(DownArgs),
    /// The balancer: kernel IPVS in direct-routing mode.
    #[command(subcommand)]
    Lb(lb::LbCmd),
    /// Check this host's DSR set-up and say what is wrong and how to fix it.
    Doctor(DoctorArgs),
    /// Would the firewall pass a DSR flow? The nftables verdict (iptables-nft included) for a
    /// client's SYN to VIP:PORT and the SYN-ACK back, with the dropping rule and a fix.
    #[command(subcommand)]
    Firewall(crate::commands::firewall::FirewallCmd),
    /// tcpdump-like capture on raw AF_PACKET sockets (no libpcap), with MACs and direction.
    Capture(CaptureArgs),
    /// Cross-over failover without a balancer: address plans for N servers and the per-server
    /// agent that claims a failed peer's addresses by ARP.
    #[command(subcommand)]
    Crossover(crossover::CrossoverCmd),
    /// A DSR sandbox in network namespaces: switch, client, balancer and backends, built with
    /// lbctl itself (`lbctl lab demo` shows it all in a few seconds).
    #[command(subcommand)]
    Lab(lab::LabCmd),
    /// Generate shell completions or man pages from this command line definition.
    #[command(subcommand)]
    Gen(GenCmd),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Role {
    /// A real server behind a DSR balancer.
    #[default]
    Backend,
    /// The balancer itself.
    Lb,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// What this host is.
    #[arg(long, value_enum, default_value_t)]
    pub role: Role,
    /// A VIP to check, optionally with a port (`198.18.0.100:80`, `[2001:db8::100]:80`). Repeatable.
    #[arg(long = "vip", value_name = "VIP[:PORT]")]
    pub vips: Vec<String>,
    /// Take VIPs, ports and ARP mode from this profile.
    #[arg(short = 'f', long = "file", value_name = "PROFILE")]
    pub file: Option<PathBuf>,
    /// A client address to check the return path and rp_filter against.
    #[arg(long, value_name = "IP")]
    pub client: Option<String>,
    /// The balancer's address (checks L2 adjacency).
    #[arg(long, value_name = "IP")]
    pub balancer: Option<String>,
    /// Also capture traffic for the VIPs for SECS seconds and judge it.
    #[arg(long, value_name = "SECS")]
    pub capture: Option<f64>,
}

#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// Interface to capture on, or `any`.
    #[arg(short = 'i', long = "iface", default_value = "any", value_name = "IF")]
    pub iface: String,
    /// Only packets to or from this VIP (and ARP about it).
    #[arg(long, value_name = "VIP")]
    pub vip: Option<String>,
    /// Only packets to or from this host.
    #[arg(long, value_name = "IP")]
    pub host: Option<String>,
    /// Stop after N packets.
    #[arg(short = 'c', long = "count", value_name = "N")]
    pub count: Option<u64>,
    /// Stop after S seconds.
    #[arg(long, value_name = "S")]
    pub seconds: Option<f64>,
    /// Write packets to a pcap file (pcapng when FILE ends in .pcapng; Linux cooked v2 records
    /// with `-i any`, as tcpdump writes).
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// Read packets from a pcap or pcapng file instead of capturing.
    #[arg(short = 'r', long = "read", value_name = "FILE", conflicts_with_all = ["write", "iface"])]
    pub read: Option<PathBuf>,
    /// A tcpdump-style filter: host/net/port (with src/dst), tcp, udp, icmp, icmp6, arp, ip,
    /// ip6, `vlan [ID]`, combined with and/or/not and parentheses.
    #[arg(value_name = "EXPRESSION", trailing_var_arg = true)]
    pub expr: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// The profile (TOML; see profiles/ for commented examples).
    #[arg(short = 'f', long = "file", value_name = "PROFILE")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Apply this profile first (and again on SIGHUP), then keep it — and everything else
    /// lbctl owns here — converged.
    #[arg(short = 'f', long = "file", value_name = "PROFILE")]
    pub file: Option<PathBuf>,
    /// How often to compare the kernel with the journal, in milliseconds (100–60000).
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(100..=60000))]
    pub interval: u64,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this profile (also reports changes in the file not yet applied).
    #[arg(short = 'f', long = "file", value_name = "PROFILE")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct DownArgs {
    /// Remove what this profile added.
    #[arg(short = 'f', long = "file", value_name = "PROFILE")]
    pub file: Option<PathBuf>,
    /// Remove everything lbctl added in this namespace: profiles, one-shot commands, and the
    /// balancers' IPVS services, nft tables and VIPs.
    #[arg(long)]
    pub all: bool,
    /// Remove what one owner added, as `lbctl status` names it (`cli`, `profile:NAME`,
    /// `lb:NAME`).
    #[arg(long, value_name = "OWNER")]
    pub owner: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum VipCmd {
    /// Add VIP as /32 (/128, nodad) on DEV. A no-op when lbctl already added it.
    Add(VipAddArgs),
    /// Delete a VIP lbctl added (`--force` for one it did not add).
    Del(VipDelArgs),
    /// List host-prefix addresses on `lo` and every lbctl VIP, owned or foreign.
    List,
}

#[derive(Debug, Args)]
pub struct VipAddArgs {
    /// The VIP, e.g. 198.18.0.100 or 2001:db8::100 (an explicit /32 or /128 is accepted).
    pub vip: String,
    /// Device to put the VIP on.
    #[arg(long, default_value = "lo", value_name = "DEV")]
    pub dev: String,
}

#[derive(Debug, Args)]
pub struct VipDelArgs {
    /// The VIP to delete.
    pub vip: String,
    /// Device the VIP is on.
    #[arg(long, default_value = "lo", value_name = "DEV")]
    pub dev: String,
    /// Delete the address even though lbctl did not add it.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ArpModeArg {
    /// An lbctl-owned `arp` family nftables table (drop requests for the VIP, rewrite it as sender).
    #[default]
    Nft,
    /// The arp_ignore=1 / arp_announce=2 sysctls on the ARP-facing interface.
    Sysctl,
}

#[derive(Debug, Subcommand)]
pub enum ArpCmd {
    /// Stop answering ARP for VIP (do this before `vip add`).
    Suppress(ArpSuppressArgs),
    /// Undo `suppress` for VIP, restoring exactly the prior state.
    Restore(ArpArgs),
    /// Show the suppression lbctl manages and the effective ARP sysctls.
    Status(ArpStatusArgs),
    /// List every MAC on the segment that answers ARP (IPv6: NS) for an address.
    WhoHas(crate::commands::arp_whohas::WhoHasArgs),
}

#[derive(Debug, Args)]
pub struct ArpArgs {
    /// The VIP (IPv4; IPv6 uses neighbour discovery, which needs no suppression for a VIP on lo).
    pub vip: String,
    /// This backend's real IP on the ARP-facing interface (the ARP sender used instead of the VIP).
    #[arg(long, value_name = "RIP")]
    pub real_ip: Option<String>,
    /// The ARP-facing interface (sysctl mode; default: the interface holding the real IP).
    #[arg(long, value_name = "IF")]
    pub iface: Option<String>,
    /// How to suppress.
    #[arg(long, value_enum, default_value_t)]
    pub mode: ArpModeArg,
}

#[derive(Debug, Args)]
pub struct ArpSuppressArgs {
    #[command(flatten)]
    pub arp: ArpArgs,
    /// Accept a real IP that is not configured on any interface yet (an ifupdown pre-up hook
    /// runs before the interface has its address).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ArpStatusArgs {
    /// Only this VIP.
    pub vip: Option<String>,
    /// Only this interface's sysctls.
    #[arg(long, value_name = "IF")]
    pub iface: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RouteCmd {
    /// `ip rule from VIP lookup T` + default via GW + IF's connected routes, all in table T.
    Add(RouteAddArgs),
    /// Remove the policy routing lbctl added for VIP.
    Del(RouteDelArgs),
    /// Show the policy routing lbctl manages.
    List,
}

#[derive(Debug, Args)]
pub struct RouteAddArgs {
    /// The VIP replies are sent from.
    pub vip: String,
    /// Routing table id (1-4294967295 except 253, 254, 255).
    #[arg(long, value_name = "T")]
    pub table: u32,
    /// Gateway for replies from the VIP.
    #[arg(long, value_name = "GW")]
    pub via: String,
    /// Interface towards the gateway; its connected routes are copied into table T.
    #[arg(long, value_name = "IF")]
    pub dev: String,
    /// Rule priority.
    #[arg(long, value_name = "P", default_value_t = crate::model::DEFAULT_RULE_PRIORITY)]
    pub priority: u32,
}

#[derive(Debug, Args)]
pub struct RouteDelArgs {
    /// The VIP.
    pub vip: String,
    /// Routing table id given to `route add`.
    #[arg(long, value_name = "T")]
    pub table: u32,
}

#[derive(Debug, Subcommand)]
pub enum RpfilterCmd {
    /// Report rp_filter (all, default, each interface, effective = max(all, iface)).
    Check(RpfilterArgs),
    /// Set loose mode (2) where the effective mode is strict (1), recording prior values.
    Fix(RpfilterArgs),
    /// Put back the rp_filter values `fix` changed.
    Restore,
}

#[derive(Debug, Args)]
pub struct RpfilterArgs {
    /// Only this interface.
    #[arg(long, value_name = "IF")]
    pub iface: Option<String>,
    /// Simulate a request from --client to this VIP.
    #[arg(long, requires = "client")]
    pub vip: Option<String>,
    /// Client address for the simulation.
    #[arg(long, requires = "vip")]
    pub client: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum GenCmd {
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages (lbctl.1, lbctl-vip.1, …) into DIR.
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}
