//! `lbctl watch [-f PROFILE]`: keep this namespace converged to what the journal says lbctl
//! owns. The same engine as `apply` (plan → apply → verify, rollback on failure), run again
//! whenever observing shows drift — `systemctl reload nftables` flushing `table arp lbctl`, a
//! VIP deleted by hand, a sysctl reset by another tool. At most one repair per interval, so a
//! tamper storm costs one converge per interval, not a busy loop. Every repair is one log line
//! on stderr (`--json`: one JSON object per line) with the commands it ran.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::cli::WatchArgs;
use crate::context::Env;
use crate::engine::{converge, plan_for};
use crate::error::Result;
use crate::sys::signals::{self, Restart, Signal};
use crate::{Ctx, Outcome};

const STOP: [Signal; 2] = [Signal::Int, Signal::Term];

fn log(ctx: &Ctx, event: &str, text: &str, fields: serde_json::Value) {
    if ctx.global.json {
        let mut v = json!({ "event": event, "message": text });
        if let (Some(o), Some(f)) = (v.as_object_mut(), fields.as_object()) {
            o.extend(f.clone());
        }
        eprintln!("{v}");
    } else if !ctx.global.quiet {
        eprintln!("lbctl watch: {text}");
    }
}

/// (Re-)apply the profile, if any.
fn apply_profile(ctx: &Ctx, env: &Env, a: &WatchArgs) -> Result<()> {
    let Some(path) = &a.file else { return Ok(()) };
    let profile = crate::profile::load(path)?;
    env.require_links(&profile.interfaces)?;
    let owner = profile.owner();
    let report = converge(ctx, &env.sys, &env.journal, "watch", |state, snap| {
        crate::guard::check_profile(&profile, state, snap)?;
        if let Some(why) = crate::guard::empty_profile_refusal(&profile, state, path) {
            return Err(crate::usage!("{why}"));
        }
        state.intents.insert(owner.clone(), profile.intent.clone());
        Ok(())
    })?;
    let cmds = report.commands();
    log(
        ctx,
        "apply",
        &format!("{owner}: {} change(s)", cmds.len()),
        json!({ "owner": owner, "commands": cmds }),
    );
    Ok(())
}

pub fn run(ctx: &Ctx, env: &Env, a: WatchArgs) -> Result<Outcome> {
    crate::sys::require_net_admin("watch")?;
    signals::catch(&[Signal::Int, Signal::Term, Signal::Hup], Restart::No);
    apply_profile(ctx, env, &a)?;
    let every = Duration::from_millis(a.interval);
    log(
        ctx,
        "start",
        &format!(
            "watching (every {} ms, PID {})",
            a.interval,
            std::process::id()
        ),
        json!({ "interval_ms": a.interval }),
    );
    let mut repairs: u64 = 0;
    let mut last = Instant::now();
    while !signals::received(&STOP) {
        std::thread::sleep(Duration::from_millis(50).min(every));
        if signals::take(Signal::Hup) {
            if let Err(e) = apply_profile(ctx, env, &a) {
                log(ctx, "error", &format!("reload: {e}"), json!({}));
            }
        }
        if last.elapsed() < every {
            continue;
        }
        last = Instant::now();
        // Observe without the lock (read-only); repair under it, through the engine.
        let drift = match env.journal.load().and_then(|s| plan_for(&env.sys, &s)) {
            Ok((plan, _, _)) => plan.commands(),
            Err(e) => {
                log(ctx, "error", &format!("observing: {e}"), json!({}));
                continue;
            }
        };
        if drift.is_empty() {
            continue;
        }
        match converge(ctx, &env.sys, &env.journal, "watch", |_, _| Ok(())) {
            Ok(r) if r.is_empty() => {}
            Ok(r) => {
                repairs += 1;
                let cmds = r.commands();
                log(
                    ctx,
                    "repair",
                    &format!("repaired drift: {}", cmds.join("; ")),
                    json!({ "commands": cmds, "repairs": repairs }),
                );
            }
            Err(e) => log(ctx, "error", &format!("repair failed: {e}"), json!({})),
        }
    }
    log(
        ctx,
        "stop",
        &format!("stopped after {repairs} repair(s)"),
        json!({ "repairs": repairs }),
    );
    Ok(Outcome::Clean)
}
