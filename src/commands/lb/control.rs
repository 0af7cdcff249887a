//! `lb drain|undrain|weight|disable|enable` on a service a running `lb run` balances: one
//! request to its control socket ([`crate::lb::control`]), applied there at once as a runtime
//! override (both engines). `lb drain` on a service no `lb run` owns stays the IPVS command.

use serde_json::json;

use crate::cli::lb::{BackendId, ServiceArg};
use crate::context::Env;
use crate::error::{Error, Result};
use crate::ipvs::spec::{key_name, parse_rip, parse_service_key};
use crate::ipvs::text::addr_port;
use crate::ipvs::{Protocol, ServiceKey};
use crate::lb::control::{self, Request};
use crate::lb::status::{self, RunStatus};
use crate::{usage, Ctx, Outcome};

#[derive(Debug, Clone, Copy)]
pub(super) enum Verb {
    Drain,
    Undrain,
    /// `None`: back to the file's weight.
    Weight(Option<u32>),
}

impl Verb {
    fn name(self) -> &'static str {
        match self {
            Verb::Drain => "lb drain",
            Verb::Undrain => "lb undrain",
            Verb::Weight(_) => "lb weight",
        }
    }
}

fn service_key(service: &str, proto: Option<Protocol>, ipv6: bool) -> Result<ServiceKey> {
    parse_service_key(Some(service), proto, None, ipv6).map_err(Error::Usage)
}

/// The running `lb run` that balances `key` here, if any.
fn owner_of(env: &Env, key: &ServiceKey) -> Result<Option<RunStatus>> {
    let name = key_name(key);
    Ok(status::read_all(env.journal.dir())?
        .into_iter()
        .find(|s| s.alive() && s.services.iter().any(|v| v.service == name)))
}

fn no_daemon(key: &ServiceKey, what: &str) -> Error {
    usage!(
        "no running `lbctl lb run` balances {} in this namespace: `{what}` changes a running \
         balancer (for a plain IPVS service use `lbctl lb backend edit -w`); nothing was changed",
        key_name(key)
    )
}

/// Send `req` to `daemon` and report its answer (exit 2 when it refused).
fn send(ctx: &Ctx, env: &Env, daemon: &RunStatus, req: Request, what: &str) -> Result<Outcome> {
    let path = control::socket_path(env.journal.dir(), &daemon.name);
    if ctx.global.dry_run {
        ctx.say(format!(
            "would ask `lb run` {} (PID {}) through {}: {}",
            daemon.name,
            daemon.pid,
            path.display(),
            serde_json::to_string(&req).unwrap_or_default()
        ));
        return Ok(Outcome::Clean);
    }
    crate::sys::require_net_admin(what)?;
    let answer = control::call(&path, &req).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => Error::Privilege(format!(
            "{what}: {}: permission denied (the control socket is root's); nothing was changed",
            path.display()
        )),
        _ => Error::Runtime(anyhow::anyhow!(
            "{what}: `lb run` {} (PID {}) did not answer on {}: {e}",
            daemon.name,
            daemon.pid,
            path.display()
        )),
    })?;
    if !answer.ok {
        return Err(usage!(
            "{what}: `lb run` {} refused: {}; nothing was changed",
            daemon.name,
            answer.message
        ));
    }
    ctx.say(format!("lb run {}: {}", daemon.name, answer.message));
    ctx.emit_json(&json!({
        "daemon": daemon.name,
        "request": req,
        "changed": answer.changed,
        "message": answer.message,
    }));
    Ok(Outcome::Clean)
}

fn backend_request(id: &BackendId, verb: Verb) -> Result<(ServiceKey, Request)> {
    let key = service_key(&id.service, id.proto.map(Protocol::from), id.ipv6)?;
    let (addr, port) = parse_rip(&id.rip, &key).map_err(Error::Usage)?;
    if let Verb::Weight(Some(w)) = verb {
        if w > crate::ipvs::model::MAX_WEIGHT {
            return Err(Error::Usage(
                crate::ipvs::ValidationError::WeightOutOfRange(w).to_string(),
            ));
        }
    }
    let service = key_name(&key);
    let backend = addr_port(&addr, port);
    Ok((
        key,
        match verb {
            Verb::Drain => Request::Drain { service, backend },
            Verb::Undrain => Request::Undrain { service, backend },
            Verb::Weight(weight) => Request::Weight {
                service,
                backend,
                weight,
            },
        },
    ))
}

/// `lb drain`: through the daemon that balances the service, or `None` when none does (the
/// caller then drains in IPVS directly, as before `lb run` existed).
pub(super) fn for_backend(
    ctx: &Ctx,
    env: &Env,
    id: &BackendId,
    verb: Verb,
) -> Result<Option<Outcome>> {
    // An unparsable request is left to the IPVS command's own messages.
    let Ok((key, req)) = backend_request(id, verb) else {
        return Ok(None);
    };
    match owner_of(env, &key)? {
        Some(d) => send(ctx, env, &d, req, verb.name()).map(Some),
        None => Ok(None),
    }
}

/// `lb undrain` and `lb weight`: only through a running daemon.
pub(super) fn backend(ctx: &Ctx, env: &Env, id: &BackendId, verb: Verb) -> Result<Outcome> {
    let (key, req) = backend_request(id, verb)?;
    if !ctx.global.dry_run {
        crate::sys::require_net_admin(verb.name())?;
    }
    let d = owner_of(env, &key)?.ok_or_else(|| no_daemon(&key, verb.name()))?;
    send(ctx, env, &d, req, verb.name())
}

/// `lb disable` (`disable`) and `lb enable`.
pub(super) fn service(ctx: &Ctx, env: &Env, a: &ServiceArg, disable: bool) -> Result<Outcome> {
    let what = if disable { "lb disable" } else { "lb enable" };
    let key = service_key(&a.service, a.proto.map(Protocol::from), a.ipv6)?;
    let service = key_name(&key);
    let req = if disable {
        Request::Disable { service }
    } else {
        Request::Enable { service }
    };
    if !ctx.global.dry_run {
        crate::sys::require_net_admin(what)?;
    }
    let d = owner_of(env, &key)?.ok_or_else(|| no_daemon(&key, what))?;
    send(ctx, env, &d, req, what)
}
