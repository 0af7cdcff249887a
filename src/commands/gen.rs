//! `lbctl gen completions SHELL` and `lbctl gen man DIR`: generated from the clap definition,
//! so completions/ and man/ never drift from the real command line (CI diffs them).

use std::path::Path;

use anyhow::Context as _;
use clap::CommandFactory;

use crate::cli::{Cli, GenCmd};
use crate::error::Result;
use crate::{Ctx, Outcome};

pub fn run(_ctx: &Ctx, cmd: GenCmd) -> Result<Outcome> {
    match cmd {
        GenCmd::Completions { shell } => {
            let mut c = Cli::command();
            clap_complete::generate(shell, &mut c, "lbctl", &mut std::io::stdout());
        }
        GenCmd::Man { dir } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            write_man(&Cli::command(), "lbctl", &dir)?;
        }
    }
    Ok(Outcome::Clean)
}

/// One page per command and subcommand: lbctl.1, lbctl-vip.1, lbctl-vip-add.1, …
fn write_man(cmd: &clap::Command, name: &str, dir: &Path) -> Result<()> {
    let cmd = cmd
        .clone()
        .name(name.to_string())
        .version(env!("CARGO_PKG_VERSION"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .date("")
        .render(&mut buf)
        .context("rendering man page")?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        write_man(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}
