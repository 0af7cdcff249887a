//! `lbctl lb export keepalived -c LB.toml [-o FILE]`: the LB file as a keepalived.conf.

use serde_json::json;

use crate::cli::lb::{ExportArgs, ExportFormat};
use crate::error::{Error, Result};
use crate::ipvs::spec;
use crate::{Ctx, Outcome};

pub fn export(ctx: &Ctx, a: &ExportArgs) -> Result<Outcome> {
    let file = spec::load_lb_file(&a.config).map_err(Error::Usage)?;
    let text = match a.format {
        ExportFormat::Keepalived => crate::lb::ha::export::render(&file)
            .map_err(|e| Error::Usage(format!("{}: {e}", a.config.display())))?,
    };
    match &a.output {
        Some(p) if !ctx.global.dry_run => {
            std::fs::write(p, &text)
                .map_err(|e| Error::Runtime(anyhow::anyhow!("writing {}: {e}", p.display())))?;
            ctx.say(format!("wrote {}", p.display()));
            ctx.emit_json(&json!({ "written": p.display().to_string(), "format": "keepalived" }));
        }
        _ => {
            if ctx.global.json {
                ctx.emit_json(&json!({ "format": "keepalived", "config": text }));
            } else {
                print!("{text}");
            }
        }
    }
    Ok(Outcome::Clean)
}
