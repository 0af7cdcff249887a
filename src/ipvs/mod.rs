//! IPVS (Linux Virtual Server) support for `lbctl lb`.
//!
//! Layers, bottom up:
//! * [`wire`]: the IPVS generic-netlink messages (`netlink-packet-generic`
//!   0.5 / `netlink-packet-core` 0.9, the same core rtnetlink 0.24 uses);
//! * [`model`]: public types ([`Service`], [`Destination`], …) and the
//!   validation lbctl applies before any syscall;
//! * [`convert`]: model ⇄ wire, and one request builder per command;
//! * [`text`]: ipvsadm 1.31 text: command lines (`Display`), `-S -n`
//!   save/restore, `-L -n` listings (byte-identical, checked in the VM lane);
//! * [`client`]: a synchronous netlink client (no async runtime);
//! * [`error`]: errors with ipvsadm's wording and hints.
//!
//! ```no_run
//! use lbctl::ipvs::{Client, Destination, Service, ServiceFlags, ServiceKey};
//! let mut c = Client::open()?;
//! let key = ServiceKey::tcp("198.18.0.100:80".parse().unwrap());
//! c.add_service(&Service::new(key, "mh").flags(ServiceFlags::MH_FALLBACK | ServiceFlags::MH_PORT))?;
//! c.add_dest(&key, &Destination::dr("198.18.0.11:80".parse().unwrap()))?;
//! print!("{}", lbctl::ipvs::text::format_list(Some(&c.info()?), &c.services()?, Default::default()));
//! # Ok::<(), lbctl::ipvs::Error>(())
//! ```

pub mod client;
pub mod convert;
pub mod error;
#[cfg(test)]
mod golden;
pub mod model;
pub mod plan;
pub mod spec;
pub mod text;
pub mod wire;

pub use client::{Client, DrainOutcome};
pub use error::{Error, Op};
pub use model::{
    DestEntry, Destination, Family, Forward, Info, Netmask, Protocol, Scheduler, Service,
    ServiceEntry, ServiceFlags, ServiceKey, Stats, Timeouts, Tunnel, TunnelType, ValidationError,
};
pub use text::{format_list, parse_rules, save, ListKind, ListOptions, Rule, SaveDialect};
