//! `lbctl lb export keepalived -c LB.toml [-o FILE]`: the LB file as a keepalived.conf, and
//! `lbctl lb import keepalived FILE [-o LB.toml]`: a keepalived.conf's virtual_servers as an LB file.

use serde_json::json;

use crate::cli::lb::{ExportArgs, ExportFormat, ImportArgs};
use crate::error::{Error, Result};
use crate::ipvs::spec;
use crate::{Ctx, Outcome};

pub fn export(ctx: &Ctx, a: &ExportArgs) -> Result<Outcome> {
    let file = spec::load_lb_file(&a.config).map_err(Error::Usage)?;
    let text = match a.format {
        ExportFormat::Keepalived => crate::lb::ha::export::render(&file)
            .map_err(|e| Error::Usage(format!("{}: {e}", a.config.display())))?,
    };
    write_out(ctx, a.output.as_deref(), &text, "keepalived")
}

pub fn import(ctx: &Ctx, a: &ImportArgs) -> Result<Outcome> {
    crate::guard::validate_name(&a.name, "LB file").map_err(Error::Usage)?;
    let text = crate::guard::read_capped(&a.file, "keepalived.conf")?;
    let lb = match a.format {
        ExportFormat::Keepalived => crate::lb::ha::import::render(&text, &a.name)
            .map_err(|e| Error::Usage(format!("{}: {e}", a.file.display())))?,
    };
    write_out(ctx, a.output.as_deref(), &lb, "lb")
}

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
