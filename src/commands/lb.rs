//! `lbctl lb`: placeholder (being written).

use super::Env;
use crate::error::Result;
use crate::{Ctx, Outcome};

/// Balancer commands (kernel IPVS in DR mode).
#[derive(Debug, clap::Subcommand)]
pub enum LbCmd {
    /// List services and real servers (ipvsadm -Ln style).
    List,
}

pub fn run(_ctx: &Ctx, _env: &Env, _cmd: LbCmd) -> Result<Outcome> {
    Err(crate::usage!("lb is not implemented yet"))
}
