//! `lbctl lb export bird -c LB.toml`: the routing-daemon configuration `lb run` generates for
//! the file's `[bgp]`, for users who run that daemon themselves.

use std::net::IpAddr;

use serde_json::json;

use super::Env;
use crate::cli::lb::{ExportArgs, ExportDaemon};
use crate::error::{Error, Result};
use crate::ipvs::spec::{self, key_name};
use crate::ipvs::ServiceKey;
use crate::lb::announce::{bird, resolve, speaker};
use crate::{usage, Ctx, Outcome};

pub(super) fn export(ctx: &Ctx, env: &Env, a: &ExportArgs) -> Result<Outcome> {
    let file = spec::load_lb_file(&a.config).map_err(Error::Usage)?;
    let Some(bgp) = &file.bgp else {
        return Err(usage!(
            "{} has no [bgp] section: nothing to announce",
            a.config.display()
        ));
    };
    let services: Vec<(IpAddr, String, u32)> = file
        .table
        .entries
        .iter()
        .zip(&file.runs)
        .filter_map(|(e, r)| match e.service.key {
            ServiceKey::Inet { addr, .. } => Some((addr, key_name(&e.service.key), r.quorum)),
            ServiceKey::Fwmark { .. } => None,
        })
        .collect();
    let addrs: Vec<crate::model::AddrObj> =
        env.sys.addresses()?.into_iter().map(|a| a.obj).collect();
    let plan = resolve(
        &file.name,
        bgp,
        &addrs,
        speaker::vip_routes(&file.name, &services),
    )
    .map_err(Error::Usage)?;
    let text = match a.daemon {
        ExportDaemon::Bird => bird::render(&plan),
    };
    if ctx.global.json {
        ctx.emit_json(&json!({ "daemon": "bird", "config": text }));
    } else {
        // The data itself: printed even with --quiet.
        print!("{text}");
    }
    Ok(Outcome::Clean)
}
