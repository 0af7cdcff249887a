//! One file per verb. Each validates its whole request first (usage errors change nothing),
//! then goes through the engine for changes, or reads and reports.

pub mod adopt;
pub mod apply;
pub mod arp;
pub mod arp_whohas;
pub mod capture;
pub mod crossover;
pub mod doctor;
pub mod down;
pub mod firewall;
pub mod gen;
pub mod lab;
pub mod lb;
pub mod plan;
pub mod route;
pub mod rpfilter;
pub mod status;
pub mod vip;
pub mod watch;

use crate::cli::{Command, GlobalArgs};
pub use crate::context::Env;
use crate::context::Global;
use crate::error::Result;
use crate::journal::{Journal, State, CLI_OWNER};
use crate::model::Intent;
use crate::sys::Sys;
use crate::{Ctx, Outcome};

/// The intent owned by one-shot commands.
pub fn cli_intent(state: &mut State) -> &mut Intent {
    state.intents.entry(CLI_OWNER.to_string()).or_default()
}

impl From<GlobalArgs> for Global {
    fn from(g: GlobalArgs) -> Global {
        let GlobalArgs {
            json,
            verbose,
            quiet,
            netns,
            dry_run,
            wait,
        } = g;
        Global {
            json,
            verbose,
            quiet,
            netns,
            dry_run,
            wait: wait.map(std::time::Duration::from_secs),
        }
    }
}

/// Run one parsed command line.
pub fn dispatch(global: GlobalArgs, cmd: Command) -> Result<Outcome> {
    let ctx = &Ctx {
        global: global.into(),
    };
    if let Command::Gen(g) = cmd {
        return gen::run(ctx, g);
    }
    // The lab makes and enters its own namespaces (and must not open netlink in this one).
    if let Command::Lab(c) = cmd {
        return lab::run(ctx, c);
    }
    // A cross-over plan is pure: no namespace, no netlink.
    let cmd = match cmd {
        Command::Crossover(crate::cli::crossover::CrossoverCmd::Plan(a)) => {
            return crossover::plan(ctx, a)
        }
        c => c,
    };
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
        journal: Journal::for_netns(ctx.global.netns.as_deref()).with_wait(ctx.global.wait),
    };
    match cmd {
        Command::Vip(c) => vip::run(ctx, &env, c),
        Command::Arp(c) => arp::run(ctx, &env, c),
        Command::Route(c) => route::run(ctx, &env, c),
        Command::Rpfilter(c) => rpfilter::run(ctx, &env, c),
        Command::Plan(a) => plan::run(ctx, &env, profile.expect("loaded above"), &a.file),
        Command::Apply(a) => apply::run(ctx, &env, profile.expect("loaded above"), &a.file),
        Command::Status(a) => status::run(ctx, &env, a),
        Command::Adopt => adopt::run(ctx, &env),
        Command::Watch(a) => watch::run(ctx, &env, a),
        Command::Down(a) => down::run(ctx, &env, a),
        Command::Doctor(a) => doctor::run(ctx, &env, a),
        Command::Lb(c) => lb::run(ctx, &env, c),
        Command::Capture(a) => capture::run(ctx, &env, a),
        Command::Firewall(c) => firewall::run(ctx, &env, c),
        Command::Crossover(c) => crossover::run(ctx, &env, c),
        Command::Gen(_) | Command::Lab(_) => unreachable!("handled above"),
    }
}
