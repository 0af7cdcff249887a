//! The balancer daemon (`lbctl lb run`) and its nftables engine. The IPVS side lives in
//! [`crate::ipvs`]; this module adds health checking, VIP ownership and the netdev/Maglev data
//! path for kernels without IPVS.

pub mod announce;
pub mod checks;
pub mod config;
pub mod control;
pub mod daemon;
pub mod datapath;
pub mod dns;
pub mod drain;
pub mod ha;
pub mod health;
pub mod metrics;
pub mod nft;
pub mod quorum;
pub mod stats;
pub mod status;
pub mod verify;
