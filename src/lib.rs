//! lbctl: Direct Server Return (DSR) load balancing for Linux.
//!
//! Layering (see DEVELOPERS/STYLE): `cli` parses; `commands` has one file per verb; `model` and
//! `plan` are pure (unit-tested without root); `engine` runs plan → apply → verify → journal with
//! rollback; `sys` is the only code with side effects (netlink, nft, /proc/sys, namespaces);
//! `lab` builds whole DSR sandboxes in namespaces on top of the CLI.

pub mod cli;
pub mod commands;
pub mod doctor;
pub mod engine;
pub mod error;
pub mod firewall;
pub mod ipvs;
pub mod journal;
pub mod lab;
pub mod lb;
pub mod maglev;
pub mod model;
pub mod plan;
pub mod profile;
pub mod sys;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

pub use error::{Error, Result};

/// What a command found, beyond success or error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to report: exit 0.
    Clean,
    /// Findings, drift or pending changes: exit 1.
    Findings,
}

/// Per-invocation context handed to every command.
pub struct Ctx {
    pub global: cli::GlobalArgs,
}

impl Ctx {
    /// A human-readable line on stdout, unless `--quiet` or `--json`.
    pub fn say(&self, line: impl AsRef<str>) {
        if !self.global.quiet && !self.global.json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", line.as_ref());
        }
    }

    /// A detail line on stderr, shown with `-v`.
    pub fn detail(&self, line: impl AsRef<str>) {
        if self.global.verbose > 0 {
            eprintln!("{}", line.as_ref());
        }
    }

    /// A warning on stderr (shown even with `--json`, which only governs stdout).
    pub fn warn(&self, line: impl AsRef<str>) {
        if !self.global.quiet {
            eprintln!("lbctl: warning: {}", line.as_ref());
        }
    }

    /// Print a JSON document on stdout (only with `--json`).
    pub fn emit_json(&self, value: &serde_json::Value) {
        if self.global.json {
            let mut out = std::io::stdout().lock();
            let _ = serde_json::to_writer_pretty(&mut out, value);
            let _ = writeln!(out);
        }
    }
}

/// Parse arguments, run, and turn the result into an exit code.
pub fn main_entry() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are "errors" to clap; they print and exit 0.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { error::EXIT_ERROR } else { 0 });
        }
    };
    match run(cli) {
        Ok(Outcome::Clean) => ExitCode::from(error::EXIT_OK),
        Ok(Outcome::Findings) => ExitCode::from(error::EXIT_FINDINGS),
        Err(e) => {
            eprintln!("lbctl: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Dispatch a parsed command line.
pub fn run(cli: cli::Cli) -> Result<Outcome> {
    let ctx = Ctx { global: cli.global };
    commands::dispatch(&ctx, cli.command)
}
