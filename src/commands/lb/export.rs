//! `lbctl lb export bird|keepalived -c LB.toml [-o FILE]`: what `lb run` generates for an LB
//! file's `[bgp]` (BIRD 2) or the whole file as a keepalived.conf, for users who run those daemons
//! themselves; and `lbctl lb import keepalived FILE [-o LB.toml]`: a keepalived.conf's
//! virtual_servers as an LB file.

use serde_json::json;

use super::Env;
use crate::cli::lb::{ExportArgs, ExportFormat, ImportArgs, ImportFormat};
use crate::error::{Error, Result};
use crate::ipvs::spec::{self, LbFile};
use crate::lb::announce::{bird, resolve, speaker};
use crate::{usage, Ctx, Outcome};

pub(super) fn export(ctx: &Ctx, env: &Env, a: &ExportArgs) -> Result<Outcome> {
    let file = spec::load_lb_file(&a.config).map_err(Error::Usage)?;
    if !a.peer_config.is_empty() {
        if a.format != ExportFormat::Keepalived {
            return Err(usage!("--peer-config is for `lb export keepalived`"));
        }
        let peers = a
            .peer_config
            .iter()
            .map(|p| spec::load_lb_file(p).map_err(Error::Usage))
            .collect::<Result<Vec<_>>>()?;
        let mut set = vec![(a.config.display().to_string(), file.ha.as_ref())];
        for (p, f) in a.peer_config.iter().zip(&peers) {
            set.push((p.display().to_string(), f.ha.as_ref()));
        }
        crate::lb::ha::check_set(&set).map_err(Error::Usage)?;
    }
    let text = match a.format {
        ExportFormat::Bird => bird_config(env, a, &file)?,
        ExportFormat::Keepalived => crate::lb::ha::export::render(&file)
            .map_err(|e| Error::Usage(format!("{}: {e}", a.config.display())))?,
    };
    write_out(ctx, a.output.as_deref(), &text, a.format.name())
}

/// The BIRD 2 configuration `lb run` would start its BIRD with.
fn bird_config(env: &Env, a: &ExportArgs, file: &LbFile) -> Result<String> {
    let Some(bgp) = &file.bgp else {
        return Err(usage!(
            "{} has no [bgp] section: nothing to announce",
            a.config.display()
        ));
    };
    let services = file.inet_services();
    let addrs: Vec<crate::model::AddrObj> =
        env.sys.addresses()?.into_iter().map(|a| a.obj).collect();
    let plan = resolve(
        &file.name,
        bgp,
        &addrs,
        speaker::vip_routes(&file.name, &services),
    )
    .map_err(Error::Usage)?;
    Ok(bird::render(&plan))
}

pub(super) fn import(ctx: &Ctx, a: &ImportArgs) -> Result<Outcome> {
    crate::guard::validate_name(&a.name, "LB file").map_err(Error::Usage)?;
    let text = crate::guard::read_capped(&a.file, "keepalived.conf")?;
    let lb = match a.format {
        ImportFormat::Keepalived => crate::lb::ha::import::render(&text, &a.name)
            .map_err(|e| Error::Usage(format!("{}: {e}", a.file.display())))?,
    };
    write_out(ctx, a.output.as_deref(), &lb, "lb")
}

/// The generated text on stdout (printed even with --quiet: it is the data), or into `out`.
fn write_out(
    ctx: &Ctx,
    out: Option<&std::path::Path>,
    text: &str,
    format: &str,
) -> Result<Outcome> {
    match out {
        Some(p) if !ctx.global.dry_run => {
            std::fs::write(p, text)
                .map_err(|e| Error::Runtime(anyhow::anyhow!("writing {}: {e}", p.display())))?;
            ctx.say(format!("wrote {}", p.display()));
            ctx.emit_json(&json!({ "written": p.display().to_string(), "format": format }));
        }
        _ => {
            if ctx.global.json {
                ctx.emit_json(&json!({ "format": format, "config": text }));
            } else {
                print!("{text}");
            }
        }
    }
    Ok(Outcome::Clean)
}
