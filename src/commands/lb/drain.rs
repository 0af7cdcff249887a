//! `lb drain --balancer NAME`: drain a whole running `lb run` ([`crate::lb::drain`]): one
//! request to its control socket; with `--wait`, the answer comes when the data path is gone,
//! and the command then waits for the process to exit.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::context::Env;
use crate::error::{Error, Result};
use crate::lb::control::{self, Request};
use crate::lb::status;
use crate::{usage, Ctx, Outcome};

/// How long after its answer the daemon may take to exit.
const EXIT_GRACE: Duration = Duration::from_secs(30);

pub(super) fn balancer(
    ctx: &Ctx,
    env: &Env,
    name: &str,
    timeout_secs: u64,
    wait: bool,
) -> Result<Outcome> {
    const WHAT: &str = "lb drain --balancer";
    if !ctx.global.dry_run {
        crate::sys::require_net_admin(WHAT)?;
    }
    let all = status::read_all(env.journal.dir())?;
    let Some(d) = all.iter().find(|s| s.name == name) else {
        return Err(usage!(
            "{WHAT}: no `lbctl lb run` named {name} in this namespace (running: {}); nothing \
             was changed",
            {
                let names: Vec<&str> = all
                    .iter()
                    .filter(|s| s.alive())
                    .map(|s| s.name.as_str())
                    .collect();
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            }
        ));
    };
    if !d.alive() {
        return Err(usage!(
            "{WHAT}: `lb run` {name} (PID {}) is not running; nothing to drain (`lbctl down` \
             removes what it left)",
            d.pid
        ));
    }
    let req = Request::DrainBalancer { timeout_secs, wait };
    let path = control::socket_path(env.journal.dir(), name);
    if ctx.global.dry_run {
        ctx.say(format!(
            "would ask `lb run` {name} (PID {}) through {}: {}",
            d.pid,
            path.display(),
            serde_json::to_string(&req).unwrap_or_default()
        ));
        return Ok(Outcome::Clean);
    }
    // With --wait the answer comes after the timeout at the latest, plus the removal.
    let limit = if wait {
        Duration::from_secs(timeout_secs) + Duration::from_secs(60)
    } else {
        Duration::from_secs(5)
    };
    let answer = control::call_within(&path, &req, limit).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => Error::Privilege(format!(
            "{WHAT}: {}: permission denied (the control socket is root's); nothing was changed",
            path.display()
        )),
        _ => Error::Runtime(anyhow::anyhow!(
            "{WHAT}: `lb run` {name} (PID {}) did not answer on {}: {e}",
            d.pid,
            path.display()
        )),
    })?;
    if !answer.ok && answer.drain.is_none() {
        return Err(usage!(
            "{WHAT}: `lb run` {name} refused: {}",
            answer.message
        ));
    }
    let mut exited = None;
    if wait {
        let t = Instant::now();
        while crate::sys::proc::is_alive(d.pid, d.pid_start) && t.elapsed() < EXIT_GRACE {
            std::thread::sleep(Duration::from_millis(50));
        }
        exited = Some(!crate::sys::proc::is_alive(d.pid, d.pid_start));
    }
    ctx.say(format!("lb run {name}: {}", answer.message));
    if exited == Some(true) {
        ctx.say(format!("lb run {name} (PID {}) has exited", d.pid));
    }
    ctx.emit_json(&json!({
        "daemon": name,
        "request": req,
        "changed": answer.changed,
        "message": answer.message,
        "drain": answer.drain,
        "exited": exited,
    }));
    if let Some(o) = &answer.drain {
        if let Some(e) = &o.error {
            return Err(Error::Runtime(anyhow::anyhow!(
                "{WHAT}: removing the data path of {name} failed: {e}"
            )));
        }
    }
    if exited == Some(false) {
        return Err(Error::Runtime(anyhow::anyhow!(
            "{WHAT}: `lb run` {name} (PID {}) answered but had not exited {} s later",
            d.pid,
            EXIT_GRACE.as_secs()
        )));
    }
    Ok(Outcome::Clean)
}
