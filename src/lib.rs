//! lbctl: Direct Server Return (DSR) load balancing for Linux.
//!
//! Layers point down (see DEVELOPERS/STYLE): `cli` holds the clap types only; `commands` has one
//! thin file per verb (parse → call the library → print); the domain (`engine`, `plan`, `model`,
//! `doctor`, `lb`, `ipvs`, `lab`, `maglev`) never imports `cli` or `commands`; `context` is the
//! runtime context every layer above `sys` is handed; `sys` is the only code with side effects
//! (netlink, nft, /proc/sys, namespaces, sockets, locks, signals). `model` and `plan` are pure
//! (unit-tested without root); `engine` runs plan → apply → verify → journal with rollback.

pub mod cli;
pub mod commands;
pub mod context;
pub mod doctor;
pub mod engine;
pub mod error;
pub mod firewall;
pub mod guard;
pub mod ipvs;
pub mod journal;
pub mod lab;
pub mod lb;
pub mod maglev;
pub mod model;
pub mod plan;
pub mod profile;
pub mod sys;
pub mod txn;

use std::process::ExitCode;

use clap::Parser;

pub use context::{Ctx, Outcome};
pub use error::{Error, Result};

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
    commands::dispatch(cli.global, cli.command)
}
