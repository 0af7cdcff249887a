//! `lb service add|edit|del`: virtual services (ipvsadm -A/-E/-D).

use super::{finish, Ipvs};
use crate::cli::lb::{ServiceId, ServiceOpts};
use crate::context::Env;
use crate::error::{Error, Result};
use crate::ipvs::plan::{self, Change, Planned};
use crate::ipvs::spec::{key_name, parse_service_key, ServiceSpec};
use crate::ipvs::{Protocol, ServiceKey};
use crate::{usage, Ctx, Outcome};

fn service_key(id: &ServiceId) -> Result<ServiceKey> {
    parse_service_key(
        id.service.as_deref(),
        id.proto.map(Protocol::from),
        id.fwmark,
        id.ipv6,
    )
    .map_err(Error::Usage)
}

pub(super) fn add(ctx: &Ctx, env: &Env, id: &ServiceId, opts: &ServiceOpts) -> Result<Outcome> {
    let key = service_key(id)?;
    let want = opts.spec().build(key, None).map_err(Error::Usage)?;
    let mut ipvs = Ipvs::change(ctx, env, "lb service add")?;
    let before = ipvs.table()?;
    if before.get(&key).is_none() {
        let state = env.journal.load()?;
        if let Some(o) = crate::lb::status::vip_port_owner(env.journal.dir(), &state, &key, None)
            .filter(|o| !o.starts_with("cli "))
        {
            return Err(usage!(
                "{} is already balanced here by {o}. Nothing was changed.",
                key_name(&key)
            ));
        }
    }
    let p = match before.get(&key) {
        None => Planned::one(Change::AddService(want)),
        Some(e) if plan::same_service(&e.service, &want) => Planned::none(format!(
            "service {} already exists with these settings",
            key_name(&key)
        )),
        Some(e) => {
            return Err(usage!(
                "service {} already exists with other settings (`ipvsadm {}`); change it with \
                 `lbctl lb service edit`",
                key_name(&key),
                e.service
            ))
        }
    };
    finish(ctx, &mut ipvs, &before, p)
}

/// Checks on edit options that need no current value.
fn precheck_service_opts(key: ServiceKey, opts: &ServiceOpts) -> Result<ServiceSpec> {
    let spec = opts.spec();
    if spec == ServiceSpec::default() {
        return Err(usage!(
            "nothing to change: give at least one option (--scheduler, --persistent, …)"
        ));
    }
    if let Some(name) = &spec.scheduler {
        // builds a service from the defaults with only the scheduler-related options, which
        // catches unknown schedulers and foreign flag names
        ServiceSpec {
            scheduler: Some(name.clone()),
            sched_flags: spec.sched_flags.clone(),
            mh_port: spec.mh_port,
            mh_fallback: spec.mh_fallback,
            persistent: Some(spec.persistent.unwrap_or(60)),
            netmask: None,
        }
        .build(key, None)
        .map_err(Error::Usage)?;
    }
    if let Some(t) = spec.persistent.filter(|t| *t > 0) {
        ServiceSpec {
            persistent: Some(t),
            netmask: spec.netmask.clone(),
            ..Default::default()
        }
        .build(key, None)
        .map_err(Error::Usage)?;
    }
    Ok(spec)
}

pub(super) fn edit(ctx: &Ctx, env: &Env, id: &ServiceId, opts: &ServiceOpts) -> Result<Outcome> {
    let key = service_key(id)?;
    let spec = precheck_service_opts(key, opts)?;
    let mut ipvs = Ipvs::change(ctx, env, "lb service edit")?;
    let before = ipvs.table()?;
    let Some(e) = before.get(&key) else {
        return Err(usage!(
            "no service {} (create it with `lbctl lb service add`)",
            key_name(&key)
        ));
    };
    let want = spec.build(key, Some(&e.service)).map_err(Error::Usage)?;
    let p = if plan::same_service(&e.service, &want) {
        Planned::none(format!(
            "service {} already has these settings",
            key_name(&key)
        ))
    } else {
        Planned::one(Change::EditService {
            from: e.service.clone(),
            to: want,
        })
    };
    finish(ctx, &mut ipvs, &before, p)
}

pub(super) fn del(ctx: &Ctx, env: &Env, id: &ServiceId) -> Result<Outcome> {
    let key = service_key(id)?;
    let mut ipvs = Ipvs::change(ctx, env, "lb service del")?;
    let before = ipvs.table()?;
    let p = match before.get(&key) {
        None => {
            // Deleted behind lbctl's back (ipvsadm -D/-C): forget it, or `status` reports it
            // missing for ever.
            let state = env.journal.load()?;
            if !ctx.global.dry_run && crate::engine::lb::service_owner(&state, &key).is_some() {
                let gone = std::collections::BTreeSet::from([key.to_string()]);
                crate::engine::lb::update(&env.journal, |lb| {
                    crate::engine::lb::forget_services(lb, &gone)
                })?;
                ctx.warn(format!(
                    "{} was already gone; lbctl no longer records it",
                    key_name(&key)
                ));
            }
            Planned::none(format!("no service {}", key_name(&key)))
        }
        Some(e) => Planned::one(Change::DelService {
            service: e.service.clone(),
            dests: e.dests.clone(),
        }),
    };
    finish(ctx, &mut ipvs, &before, p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::lb::{parse, LbCmd, ServiceCmd};

    fn opts_of(args: &str) -> (ServiceId, ServiceOpts) {
        match parse(args).unwrap() {
            LbCmd::Service(ServiceCmd::Add { id, opts } | ServiceCmd::Edit { id, opts }) => {
                (id, opts)
            }
            _ => panic!(),
        }
    }

    #[test]
    fn service_validation_without_syscalls() {
        let (id, opts) = opts_of("lb service add 198.18.0.100:80 -s mh --mh-port -p 300");
        let s = opts.spec().build(service_key(&id).unwrap(), None).unwrap();
        assert_eq!(
            Change::AddService(s).to_string(),
            "ipvsadm -A -t 198.18.0.100:80 -s mh -p 300 -b mh-port"
        );
        for (args, err) in [
            (
                "lb service add 198.18.0.100:80 -s bogus",
                "unknown scheduler",
            ),
            (
                "lb service add 198.18.0.100:80 --mh-port",
                "mh scheduler only",
            ),
            ("lb service add 198.18.0.100 -s rr", "has no port"),
            ("lb service add 198.18.0.100:80 --fwmark 3", "not both"),
            ("lb service edit 198.18.0.100:80", "nothing to change"),
            (
                "lb service edit 198.18.0.100:80 -s nope",
                "unknown scheduler",
            ),
            (
                "lb service edit 198.18.0.100:80 -s mh -b sh-port",
                "does not apply",
            ),
            (
                "lb service edit 198.18.0.100:80 -p 300 -M 255.0.255.0",
                "contiguous",
            ),
        ] {
            let (id, opts) = opts_of(args);
            let r = service_key(&id).and_then(|k| {
                if args.contains(" edit ") {
                    precheck_service_opts(k, &opts).map(|_| ())
                } else {
                    opts.spec().build(k, None).map(|_| ()).map_err(Error::Usage)
                }
            });
            let e = r.unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args}");
            assert!(e.to_string().contains(err), "{args}: {e}");
        }
        // an edit of only the mh flags is not refused up front (the service may well be mh)
        let (id, opts) = opts_of("lb service edit 198.18.0.100:80 --mh-fallback");
        precheck_service_opts(service_key(&id).unwrap(), &opts).unwrap();
    }
}
