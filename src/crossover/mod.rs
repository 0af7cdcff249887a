//! Cross-over failover without a balancer (the seed design): the router spreads a public range
//! over N(N-1) internal addresses with static multipath routes; every server holds its primary
//! addresses and takes over the others' by ARP when they fall silent.
//!
//! * [`plan`] — the address table, its invariants, the router's lines and each server's config
//!   (pure).
//! * [`config`] — the agent's config file, validated.
//! * [`agent`] — the per-server agent: heartbeats, claims, releases, health; and its status file.
//! * [`status`] — who holds what: the agents' status files against the kernel's addresses.

pub mod agent;
pub mod config;
pub mod plan;
pub mod status;
