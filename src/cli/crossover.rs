//! `lbctl crossover`: cross-over failover without a balancer (plan, agent, status).

use std::path::PathBuf;

/// Cross-over commands.
#[derive(Debug, clap::Subcommand)]
pub enum CrossoverCmd {
    /// Print the address plan for N servers: each internal address's primary, secondary (and
    /// tertiary) server, the load every server carries after any one or two failures, the
    /// router's `ip route` multipath lines and BIRD config, and each server's agent config.
    /// Changes nothing.
    Plan(PlanArgs),
    /// Run the agent on one server: hold its primary addresses, announce them, claim a failed
    /// peer's addresses after the tier's timeout, release them when a higher tier returns, and
    /// hold nothing while the local health check fails. SIGTERM releases everything.
    Run(RunArgs),
    /// Show who holds what: the agent's status file checked against the kernel's addresses
    /// and the journal (exit 1 on disagreement or a dead agent with addresses left).
    Status,
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Number of servers (2-16; 3 or more with --tiers 3).
    #[arg(long, value_name = "N")]
    pub servers: usize,
    /// 2: primary + secondary (N(N-1) addresses); 3: + tertiary (N(N-1)(N-2) addresses), which
    /// spreads double failures evenly too.
    #[arg(long, default_value_t = 2, value_name = "2|3")]
    pub tiers: usize,
    /// Internal range the addresses are taken from (repeat for more; used in order).
    #[arg(long = "range", value_name = "CIDR", required = true)]
    pub ranges: Vec<String>,
    /// Public range the router spreads over the internal addresses (repeat for more).
    #[arg(long = "public", value_name = "CIDR")]
    pub public: Vec<String>,
    /// The router's interface on the servers' segment.
    #[arg(long, default_value = "eth0", value_name = "IF")]
    pub router_dev: String,
    /// The servers' interface on the segment (holds the /32s).
    #[arg(long, default_value = "eth0", value_name = "IF")]
    pub dev: String,
    /// Also write s1.toml … sN.toml, router.sh and bird.conf into this directory.
    #[arg(long, value_name = "DIR")]
    pub write: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The agent's config (as `crossover plan --write` makes it).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: PathBuf,
}
