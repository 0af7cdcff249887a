//! `lbctl lb`: the balancer's command line (IPVS service and real-server verbs, `lb run`,
//! `lb status`, `lb maglev`), and the conversions from its value enums to IPVS types.

use std::path::PathBuf;

use crate::ipvs::spec::{DestSpec, ServiceSpec};
use crate::ipvs::{Forward, Protocol};

/// Balancer commands (kernel IPVS in DR mode).
#[derive(Debug, clap::Subcommand)]
pub enum LbCmd {
    /// Add, change or delete a virtual service (ipvsadm -A/-E/-D).
    #[command(subcommand)]
    Service(ServiceCmd),
    /// Add, change or delete a real server of a service (ipvsadm -a/-e/-d); DR by default.
    #[command(subcommand)]
    Backend(BackendCmd),
    /// Drain a real server: weight 0, so it gets no new connections while established ones
    /// continue. When a running `lb run` balances the service: a runtime override through its
    /// control socket (both engines, undone by `lb undrain`); otherwise IPVS directly (turns on
    /// mh/sh fallback where the scheduler needs it). `--balancer NAME` drains the whole
    /// balancer instead: withdraw its announcements (BGP routes, VRRP mastership), keep
    /// forwarding until no flow is pinned or --timeout passes, then remove its data path and
    /// VIPs and stop it.
    Drain(LbDrainArgs),
    /// Undo `lb drain` on a service a running `lb run` balances.
    Undrain(DrainArgs),
    /// Run a backend of a running `lb run` with another weight (a runtime override, kept over
    /// SIGHUP; --reset goes back to the file's weight).
    Weight(WeightArgs),
    /// No new flows to any backend of a service a running `lb run` balances; established
    /// flows continue (a runtime override, undone by `lb enable`).
    Disable(ServiceArg),
    /// Undo `lb disable`.
    Enable(ServiceArg),
    /// How a running `lb run` (either engine) spreads traffic: each backend's share of new flows,
    /// pinned flows and bytes over a window against its weight, the skew, and what explains it.
    Balance(BalanceArgs),
    /// List services and real servers like `ipvsadm -Ln` (--stats/--rate for counters).
    List(ListArgs),
    /// Print the IPVS table as `ipvsadm -S -n` rules (for `lb restore` or `ipvsadm -R`).
    Save,
    /// Apply ipvsadm rules (`lb save` / `ipvsadm -S` output): all checked against the current
    /// table before the first change, undone on failure.
    Restore(RestoreArgs),
    /// Converge IPVS to an LB file (see profiles/lb-example.toml): only what differs is changed,
    /// undone on failure, verified.
    Apply(ApplyArgs),
    /// Run the balancer daemon: own the VIPs, program the data path (IPVS, or nftables with
    /// Maglev where IPVS is missing), health-check backends and take failed ones out.
    Run(RunArgs),
    /// Show what `lb run` is doing: backends, state, last check, weight (exit 1 if a backend is
    /// not up, 2 if no daemon runs).
    Status(StatusArgs),
    /// Maglev table balance, and the disruption of removing or adding a backend, for a table
    /// size M (to pick M).
    Maglev(MaglevArgs),
    /// Write what `lb run` generates in another tool's format: `bird` gives the BIRD 2
    /// configuration for the file's `[bgp]` (for a BIRD you manage yourself; `lb run` starts its
    /// own), `keepalived` a complete keepalived.conf (vrrp_instance from `[ha]`,
    /// virtual_server/real_server blocks with lb_kind DR and checkers).
    Export(ExportArgs),
    /// Read another tool's configuration into an LB file: `keepalived` turns the
    /// virtual_server blocks of a keepalived.conf into `[[service]]`s.
    Import(ImportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The format to read.
    #[arg(value_enum)]
    pub format: ImportFormat,
    /// The file to read (keepalived.conf).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The LB file's name (default: web).
    #[arg(long, default_value = "web")]
    pub name: String,
    /// Write here instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Formats `lb export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// BIRD 2 (the `[bgp]` section's announcements).
    Bird,
    /// keepalived.conf (check it with `keepalived -t -e -f FILE`).
    Keepalived,
}

impl ExportFormat {
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Bird => "bird",
            ExportFormat::Keepalived => "keepalived",
        }
    }
}

/// Formats `lb import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormat {
    /// keepalived.conf's virtual_server blocks.
    Keepalived,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The format to write.
    #[arg(value_enum)]
    pub format: ExportFormat,
    /// The LB file.
    #[arg(short = 'c', long = "config", value_name = "LB.toml")]
    pub config: PathBuf,
    /// Write here instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// keepalived: the LB file of another balancer of the pair (repeatable); refused unless all
    /// share the virtual_router_id and no two have the same priority.
    #[arg(long = "peer-config", value_name = "LB.toml")]
    pub peer_config: Vec<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum ServiceCmd {
    /// Create a service (unchanged when it exists with the same settings).
    Add {
        #[command(flatten)]
        id: ServiceId,
        #[command(flatten)]
        opts: ServiceOpts,
    },
    /// Change an existing service; options not given keep their value.
    Edit {
        #[command(flatten)]
        id: ServiceId,
        #[command(flatten)]
        opts: ServiceOpts,
    },
    /// Delete a service with its real servers (unchanged when it does not exist).
    Del {
        #[command(flatten)]
        id: ServiceId,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProtoArg {
    Tcp,
    Udp,
    Sctp,
}

impl From<ProtoArg> for Protocol {
    fn from(p: ProtoArg) -> Protocol {
        match p {
            ProtoArg::Tcp => Protocol::Tcp,
            ProtoArg::Udp => Protocol::Udp,
            ProtoArg::Sctp => Protocol::Sctp,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodArg {
    /// Direct routing (DSR): the frame is sent to the real server's MAC, replies bypass the
    /// balancer. The real server needs the VIP (`lbctl vip add`) and ARP suppression.
    Dr,
    /// IP-in-IP tunnel to the real server (also DSR).
    Tun,
    /// Masquerading (NAT): replies must come back through the balancer.
    Nat,
}

impl From<MethodArg> for Forward {
    fn from(m: MethodArg) -> Forward {
        match m {
            MethodArg::Dr => Forward::Dr,
            MethodArg::Tun => Forward::Tun,
            MethodArg::Nat => Forward::Nat,
        }
    }
}

/// Which service (service commands).
#[derive(Debug, clap::Args)]
pub struct ServiceId {
    /// VIP:PORT (`[2001:db8::100]:80` for IPv6) or fwmark:M.
    #[arg(value_name = "VIP:PORT", required_unless_present = "fwmark")]
    pub service: Option<String>,
    /// Protocol of a VIP:PORT service [default: tcp].
    #[arg(long, value_enum)]
    pub proto: Option<ProtoArg>,
    /// A firewall-mark service instead of VIP:PORT (ipvsadm -f).
    #[arg(long, value_name = "M")]
    pub fwmark: Option<u32>,
    /// The fwmark service is IPv6 (ipvsadm -f M -6).
    #[arg(long)]
    pub ipv6: bool,
}

/// Service settings.
#[derive(Debug, clap::Args)]
pub struct ServiceOpts {
    /// Scheduler: rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos [add default: wlc, like
    /// ipvsadm]. A new scheduler drops the old one's flags unless they are given again.
    #[arg(short = 's', long, value_name = "NAME")]
    pub scheduler: Option<String>,
    /// mh: hash the source port too (needed to spread few clients); --mh-port=false clears it.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true")]
    pub mh_port: Option<bool>,
    /// mh: when the chosen real server has weight 0, try the next one (needed to drain with mh);
    /// --mh-fallback=false clears it.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true")]
    pub mh_fallback: Option<bool>,
    /// Scheduler flags by ipvsadm name, comma-separated (sh-port,sh-fallback, flag-1…3);
    /// replaces the current ones.
    #[arg(short = 'b', long, value_name = "FLAGS", value_delimiter = ',')]
    pub sched_flags: Option<Vec<String>>,
    /// Persistence: a client keeps its real server for SECS seconds after its last connection
    /// (ipvsadm -p SECS); 0 turns persistence off.
    #[arg(short = 'p', long, value_name = "SECS")]
    pub persistent: Option<u32>,
    /// Persistence granularity: an IPv4 netmask (255.255.255.0) or IPv6 prefix length (64).
    #[arg(short = 'M', long, value_name = "MASK")]
    pub netmask: Option<String>,
}

impl ServiceOpts {
    pub fn spec(&self) -> ServiceSpec {
        ServiceSpec {
            scheduler: self.scheduler.clone(),
            mh_port: self.mh_port,
            mh_fallback: self.mh_fallback,
            sched_flags: self.sched_flags.clone(),
            persistent: self.persistent,
            netmask: self.netmask.clone(),
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum BackendCmd {
    /// Add a real server (unchanged when it exists with the same settings).
    Add {
        #[command(flatten)]
        id: BackendId,
        #[command(flatten)]
        opts: BackendOpts,
    },
    /// Change a real server; options not given keep their value.
    Edit {
        #[command(flatten)]
        id: BackendId,
        #[command(flatten)]
        opts: BackendOpts,
    },
    /// Delete a real server (unchanged when it does not exist).
    Del {
        #[command(flatten)]
        id: BackendId,
    },
}

/// Which real server of which service.
#[derive(Debug, clap::Args)]
pub struct BackendId {
    /// The service: VIP:PORT (`[2001:db8::100]:80`) or fwmark:M.
    #[arg(value_name = "VIP:PORT")]
    pub service: String,
    /// The real server: RIP, or RIP:PORT (default port: the service port, which DR requires).
    #[arg(value_name = "RIP[:PORT]")]
    pub rip: String,
    /// Protocol of a VIP:PORT service [default: tcp].
    #[arg(long, value_enum)]
    pub proto: Option<ProtoArg>,
    /// The fwmark service is IPv6.
    #[arg(long)]
    pub ipv6: bool,
}

/// Real-server settings.
#[derive(Debug, clap::Args)]
pub struct BackendOpts {
    /// Weight, 0..=2147483647 [add default: 1]; 0 = no new connections.
    #[arg(short = 'w', long, value_name = "W")]
    pub weight: Option<u32>,
    /// Forwarding method [add default: dr].
    #[arg(long, value_enum, value_name = "METHOD")]
    pub method: Option<MethodArg>,
    /// Upper connection threshold (0 = none; ipvsadm -x).
    #[arg(short = 'x', long, value_name = "N")]
    pub u_threshold: Option<u32>,
    /// Lower connection threshold (0 = none; ipvsadm -y).
    #[arg(short = 'y', long, value_name = "N")]
    pub l_threshold: Option<u32>,
}

impl BackendOpts {
    pub fn spec(&self) -> DestSpec {
        DestSpec {
            weight: self.weight,
            method: self.method.map(Forward::from),
            u_threshold: self.u_threshold,
            l_threshold: self.l_threshold,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct DrainArgs {
    #[command(flatten)]
    pub id: BackendId,
}

/// `lb drain`: one backend (SERVICE BACKEND), or a whole balancer (--balancer NAME).
#[derive(Debug, clap::Args)]
pub struct LbDrainArgs {
    /// The service: VIP:PORT (`[2001:db8::100]:80`) or fwmark:M.
    #[arg(
        value_name = "VIP:PORT",
        required_unless_present = "balancer",
        conflicts_with = "balancer"
    )]
    pub service: Option<String>,
    /// The real server: RIP, or RIP:PORT (default port: the service port, which DR requires).
    #[arg(value_name = "RIP[:PORT]", required_unless_present = "balancer")]
    pub rip: Option<String>,
    /// Protocol of a VIP:PORT service [default: tcp].
    #[arg(long, value_enum, conflicts_with = "balancer")]
    pub proto: Option<ProtoArg>,
    /// The fwmark service is IPv6.
    #[arg(long, conflicts_with = "balancer")]
    pub ipv6: bool,
    /// Drain the whole balancer a running `lb run` NAME is (the LB file's name).
    #[arg(long, value_name = "NAME")]
    pub balancer: Option<String>,
    /// With --balancer: remove the data path after this many seconds even if flows are left.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 60,
        requires = "balancer",
        conflicts_with_all = ["service", "rip"]
    )]
    pub timeout: u64,
    /// With --balancer: wait until the balancer has stopped and report how it ended (flows
    /// left at removal). (`--wait SECONDS` is the global lock wait.)
    #[arg(long, requires = "balancer", conflicts_with_all = ["service", "rip"])]
    pub wait_exit: bool,
}

impl LbDrainArgs {
    /// The backend named, unless this drains a balancer.
    pub fn backend(&self) -> Option<BackendId> {
        Some(BackendId {
            service: self.service.clone()?,
            rip: self.rip.clone()?,
            proto: self.proto,
            ipv6: self.ipv6,
        })
    }
}

#[derive(Debug, clap::Args)]
pub struct WeightArgs {
    #[command(flatten)]
    pub id: BackendId,
    /// The weight, 0..=2147483647 (0: drained).
    #[arg(
        value_name = "W",
        required_unless_present = "reset",
        conflicts_with = "reset"
    )]
    pub weight: Option<u32>,
    /// Drop the override: the LB file's weight again.
    #[arg(long)]
    pub reset: bool,
}

/// A service of a running `lb run`.
#[derive(Debug, clap::Args)]
pub struct ServiceArg {
    /// VIP:PORT (`[2001:db8::100]:80` for IPv6) or fwmark:M.
    #[arg(value_name = "VIP:PORT")]
    pub service: String,
    /// Protocol of a VIP:PORT service [default: tcp].
    #[arg(long, value_enum)]
    pub proto: Option<ProtoArg>,
    /// The fwmark service is IPv6.
    #[arg(long)]
    pub ipv6: bool,
}

#[derive(Debug, clap::Args)]
pub struct BalanceArgs {
    /// Only this service: VIP:PORT (default: every service of every running `lb run`).
    #[arg(value_name = "VIP:PORT")]
    pub service: Option<String>,
    /// Protocol of the VIP:PORT service [default: tcp].
    #[arg(long, value_enum, requires = "service")]
    pub proto: Option<ProtoArg>,
    /// Seconds to watch the counters (1..=600).
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    pub window: u64,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only this service: VIP:PORT or fwmark:M (like ipvsadm -Ln -t VIP:PORT).
    #[arg(value_name = "VIP:PORT")]
    pub service: Option<String>,
    /// Protocol of the VIP:PORT service [default: tcp].
    #[arg(long, value_enum, requires = "service")]
    pub proto: Option<ProtoArg>,
    /// The fwmark service is IPv6.
    #[arg(long, requires = "service")]
    pub ipv6: bool,
    /// Counters: connections, packets, bytes (ipvsadm --stats). In DR mode OutPkts stays 0.
    #[arg(long, conflicts_with = "rate")]
    pub stats: bool,
    /// Rates per second (ipvsadm --rate).
    #[arg(long)]
    pub rate: bool,
    /// Exact numbers instead of K/M/G/T abbreviations (ipvsadm --exact).
    #[arg(long)]
    pub exact: bool,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// Rules file, or - for standard input [default: -].
    #[arg(value_name = "FILE|-")]
    pub file: Option<PathBuf>,
    /// Make the table exactly the file's (like `ipvsadm -C` first, but only what differs is
    /// changed and a failure restores the old table).
    #[arg(long)]
    pub flush: bool,
}

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The LB file (TOML; see profiles/lb-example.toml).
    #[arg(short = 'f', long = "file", value_name = "LB.toml")]
    pub file: PathBuf,
    /// Also delete every service the file does not list (by default only the ones this file
    /// created earlier).
    #[arg(long)]
    pub prune: bool,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The LB file: services and backends as for `lb apply`, plus `[balancer]` and
    /// `[service.check]` (see profiles/lb-run-example.toml).
    #[arg(short = 'c', long = "config", value_name = "LB.toml")]
    pub config: PathBuf,
    /// On SIGTERM/SIGINT remove the data path and the VIPs (default: leave them serving).
    #[arg(long)]
    pub cleanup: bool,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Only this daemon (its LB file `name`); default: every one in this namespace.
    pub name: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct MaglevArgs {
    /// Backends as NAME[=WEIGHT], comma-separated or repeated (e.g. 198.18.0.11,198.18.0.12=2).
    #[arg(
        long,
        value_delimiter = ',',
        required = true,
        value_name = "NAME[=WEIGHT]"
    )]
    pub backends: Vec<String>,
    /// Table size M (must be prime; guidance: M > 100 × backends).
    #[arg(long, default_value_t = 4099, value_name = "M")]
    pub size: usize,
    /// Compute the removal disruption of every backend (one table rebuild each); without it, a
    /// large report (more than 64 backends and N × M above 64 × 65537) samples 64 evenly spaced
    /// backends and says so.
    #[arg(long)]
    pub exact: bool,
}

/// Parse an `lbctl lb …` command line (for tests).
#[cfg(test)]
pub(crate) fn parse(args: &str) -> std::result::Result<LbCmd, clap::Error> {
    use clap::Parser as _;
    let argv = std::iter::once("lbctl").chain(args.split_whitespace());
    match super::Cli::try_parse_from(argv)?.command {
        super::Command::Lb(c) => Ok(c),
        other => panic!("not an lb command: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_shapes() {
        for ok in [
            "lb service add 198.18.0.100:80",
            "lb service add 198.18.0.100:80 --scheduler mh --mh-port --mh-fallback --persistent 300",
            "lb service add --fwmark 7 --ipv6 -s rr",
            "lb service add fwmark:7",
            "lb service edit 198.18.0.100:80 --mh-port=false",
            "lb service del [2001:db8::100]:443 --proto udp",
            "lb backend add 198.18.0.100:80 198.18.0.11 --weight 3 --method dr",
            "lb backend edit 198.18.0.100:80 198.18.0.11:80 -w 0",
            "lb backend del fwmark:7 198.18.0.11",
            "lb drain 198.18.0.100:80 198.18.0.11",
            "lb drain --balancer web",
            "lb drain --balancer web --timeout 5 --wait-exit",
            "lb undrain 198.18.0.100:80 198.18.0.11:80",
            "lb weight 198.18.0.100:80 198.18.0.11 5",
            "lb weight 198.18.0.100:80 198.18.0.11 --reset",
            "lb disable 198.18.0.100:53 --proto udp",
            "lb enable 198.18.0.100:80",
            "lb balance",
            "lb balance 198.18.0.100:80 --window 10",
            "lb list --stats",
            "lb list 198.18.0.100:80 --rate --exact",
            "lb save",
            "lb restore",
            "lb restore - --flush",
            "lb apply -f x.toml --prune",
            "--json lb list",
            "--dry-run lb apply -f x.toml",
        ] {
            parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "lb service add",
            "lb service add 198.18.0.100:80 --proto icmp",
            "lb service add 198.18.0.100:80 --mh-port maybe",
            "lb backend add 198.18.0.100:80",
            "lb backend add 198.18.0.100:80 198.18.0.11 --method masq",
            "lb backend add 198.18.0.100:80 198.18.0.11 --weight -1",
            "lb list --stats --rate",
            "lb apply",
            "lb drain 198.18.0.100:80",
            "lb drain",
            "lb drain 198.18.0.100:80 198.18.0.11 --balancer web",
            "lb drain 198.18.0.100:80 198.18.0.11 --wait-exit",
            "lb drain --balancer web --timeout -1",
            "lb weight 198.18.0.100:80 198.18.0.11",
            "lb weight 198.18.0.100:80 198.18.0.11 5 --reset",
            "lb weight 198.18.0.100:80 198.18.0.11 -1",
            "lb disable",
        ] {
            assert!(parse(bad).is_err(), "{bad} should not parse");
        }
        // `--mh-port` takes no separate value, so a following positional is not eaten
        let LbCmd::Service(ServiceCmd::Add { id, opts }) =
            parse("lb service add --mh-port 198.18.0.100:80 -s mh").unwrap()
        else {
            panic!()
        };
        assert_eq!(id.service.as_deref(), Some("198.18.0.100:80"));
        assert_eq!(opts.mh_port, Some(true));
        let LbCmd::Service(ServiceCmd::Add { opts, .. }) =
            parse("lb service add 198.18.0.100:80 -b sh-port,sh-fallback -s sh").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            opts.sched_flags,
            Some(vec!["sh-port".to_string(), "sh-fallback".to_string()])
        );
    }
}
