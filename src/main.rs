//! `lbctl` binary: parse, run, map the outcome to an exit code. Everything else lives in the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    lbctl::main_entry()
}
