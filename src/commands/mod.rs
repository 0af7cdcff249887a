//! One file per verb. Each validates its whole request first (usage errors change nothing),
//! then goes through the engine for changes, or reads and reports.

pub mod apply;
pub mod arp;
pub mod capture;
pub mod doctor;
pub mod down;
pub mod firewall;
pub mod gen;
pub mod lab;
pub mod lb;
pub mod lbrun;
pub mod plan;
pub mod route;
pub mod rpfilter;
pub mod status;
pub mod vip;

use crate::cli::Command;
use crate::error::Result;
use crate::journal::{Journal, State, CLI_OWNER};
use crate::model::{validate_ifname, Intent};
use crate::sys::Sys;
use crate::{usage, Ctx, Outcome};

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

/// The intent owned by one-shot commands.
pub fn cli_intent(state: &mut State) -> &mut Intent {
    state.intents.entry(CLI_OWNER.to_string()).or_default()
}

pub fn dispatch(ctx: &Ctx, cmd: Command) -> Result<Outcome> {
    if let Command::Gen(g) = cmd {
        return gen::run(ctx, g);
    }
    // The lab makes and enters its own namespaces (and must not open netlink in this one).
    if let Command::Lab(c) = cmd {
        return lab::run(ctx, c);
    }
    // Profiles are read and validated before anything else, even before entering a namespace.
    let profile = match &cmd {
        Command::Plan(a) | Command::Apply(a) => Some(crate::profile::load(&a.file)?),
        _ => None,
    };
    if let Some(ns) = &ctx.global.netns {
        crate::sys::enter_netns(ns)?;
    }
    let env = Env {
        sys: Sys::new()?,
        journal: Journal::for_netns(ctx.global.netns.as_deref()),
    };
    match cmd {
        Command::Vip(c) => vip::run(ctx, &env, c),
        Command::Arp(c) => arp::run(ctx, &env, c),
        Command::Route(c) => route::run(ctx, &env, c),
        Command::Rpfilter(c) => rpfilter::run(ctx, &env, c),
        Command::Plan(_) => plan::run(ctx, &env, profile.expect("loaded above")),
        Command::Apply(_) => apply::run(ctx, &env, profile.expect("loaded above")),
        Command::Status(a) => status::run(ctx, &env, a),
        Command::Down(a) => down::run(ctx, &env, a),
        Command::Doctor(a) => doctor::run(ctx, &env, a),
        Command::Lb(c) => lb::run(ctx, &env, c),
        Command::Capture(a) => capture::run(ctx, &env, a),
        Command::Firewall(c) => firewall::run(ctx, &env, c),
        Command::Gen(_) | Command::Lab(_) => unreachable!("handled above"),
    }
}
