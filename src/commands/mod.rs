//! One file per verb. Each validates its whole request first (usage errors change nothing),
//! then goes through the engine for changes, or reads and reports.

pub mod arp;
pub mod gen;
pub mod route;
pub mod rpfilter;
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
        Command::Gen(_) => unreachable!("handled above"),
    }
}
