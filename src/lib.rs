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
pub mod crossover;
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
    sys::one_malloc_arena();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are "errors" to clap; they print and exit 0.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { error::EXIT_ERROR } else { 0 });
        }
    };
    quiet_broken_pipe_panics();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || run(cli)));
    match result {
        // `println!` panics when stdout's reader went away; the hook below kept it quiet and the
        // unwinding ran every destructor (locks, guards). A broken pipe is a quiet success.
        Err(_) if STDOUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed) => {
            ExitCode::from(error::EXIT_OK)
        }
        Err(panic) => std::panic::resume_unwind(panic),
        Ok(Ok(Outcome::Clean)) => ExitCode::from(error::EXIT_OK),
        Ok(Ok(Outcome::Findings)) => ExitCode::from(error::EXIT_FINDINGS),
        Ok(Err(e)) if e.is_broken_pipe() => ExitCode::from(error::EXIT_OK),
        Ok(Err(e)) => {
            eprintln!("lbctl: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Set when a `print!`/`println!` panicked because stdout is a closed pipe.
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `lbctl … | head`: Rust ignores SIGPIPE, so a write to the closed pipe fails with EPIPE, and
/// `print!`/`println!` turn that into a panic ("failed printing to stdout: Broken pipe"). Printing
/// paths that use `write!` return the error instead ([`Error::is_broken_pipe`]); for the others,
/// this hook recognises that one panic, records it and stays silent, and [`main_entry`] exits 0
/// (as ripgrep does). Every other panic keeps the default report.
fn quiet_broken_pipe_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            STDOUT_CLOSED.store(true, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        default(info);
    }));
}

/// Dispatch a parsed command line.
pub fn run(cli: cli::Cli) -> Result<Outcome> {
    commands::dispatch(cli.global, cli.command)
}
