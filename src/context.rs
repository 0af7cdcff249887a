//! The runtime context, below `commands`: what every command, the `lb run` daemon and the
//! doctor get handed. [`Ctx`] holds the invocation's global settings and the output helpers
//! that honour them; [`Env`] adds the kernel handle and the journal. Neither knows about clap
//! (`commands::dispatch` builds [`Global`] from `cli::GlobalArgs`).

use std::io::Write;

use crate::error::Result;
use crate::journal::Journal;
use crate::model::validate_ifname;
use crate::sys::Sys;
use crate::usage;

/// What a command found, beyond success or error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to report: exit 0.
    Clean,
    /// Findings, drift or pending changes: exit 1.
    Findings,
}

/// The global settings of one invocation (from the command line's global options).
#[derive(Debug, Clone, Default)]
pub struct Global {
    /// Machine-readable JSON on stdout.
    pub json: bool,
    /// Detail level (`-v` count).
    pub verbose: u8,
    /// Only errors.
    pub quiet: bool,
    /// The network namespace to run in, if any.
    pub netns: Option<String>,
    /// Print the plan and change nothing.
    pub dry_run: bool,
    /// How long to wait for the journal lock (None: as long as it takes).
    pub wait: Option<std::time::Duration>,
}

/// Per-invocation context handed to every command, daemon and check that reports.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    pub global: Global,
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

/// What commands that talk to the kernel get: the kernel handle and the journal.
pub struct Env {
    pub sys: Sys,
    pub journal: Journal,
}

impl Env {
    /// Every interface a profile names must exist now (checked before any change).
    pub fn require_links(&self, names: &std::collections::BTreeSet<String>) -> Result<()> {
        let links = self.sys.links()?;
        let missing: Vec<&str> = names
            .iter()
            .filter(|n| !links.iter().any(|l| &l.name == *n))
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(usage!("unknown interface(s): {}", missing.join(", ")))
        }
    }

    /// Warn when systemd-networkd would delete lbctl's policy rules.
    pub fn warn_networkd(&self, ctx: &Ctx, rules: bool) {
        if rules {
            if let Some(w) = crate::sys::networkd_foreign_rules_warning() {
                ctx.warn(w);
            }
        }
    }

    /// An interface name that must exist now.
    pub fn require_link(&self, name: &str) -> Result<()> {
        validate_ifname(name)?;
        if self.sys.links()?.iter().any(|l| l.name == name) {
            Ok(())
        } else {
            Err(usage!("unknown interface '{name}'"))
        }
    }
}
