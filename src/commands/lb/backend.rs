//! `lb backend add|edit|del` (real servers: ipvsadm -a/-e/-d) and `lb drain`.

use std::net::IpAddr;

use super::{finish, no_service, Ipvs};
use crate::cli::lb::{BackendId, BackendOpts};
use crate::context::Env;
use crate::error::{Error, Result};
use crate::ipvs::plan::{self, Change, Planned};
use crate::ipvs::spec::{key_name, parse_rip, parse_service_key, DestSpec};
use crate::ipvs::text::{self, addr_port};
use crate::ipvs::{self, Protocol, ServiceKey};
use crate::{usage, Ctx, Outcome};

/// The service key and the real server's address and port (defaulted to the service port).
fn backend_target(id: &BackendId) -> Result<(ServiceKey, IpAddr, u16)> {
    let key = parse_service_key(
        Some(&id.service),
        id.proto.map(Protocol::from),
        None,
        id.ipv6,
    )
    .map_err(Error::Usage)?;
    let (addr, port) = parse_rip(&id.rip, &key).map_err(Error::Usage)?;
    Ok((key, addr, port))
}

pub(super) fn add(ctx: &Ctx, env: &Env, id: &BackendId, opts: &BackendOpts) -> Result<Outcome> {
    let (key, addr, port) = backend_target(id)?;
    let want = opts
        .spec()
        .build(&key, addr, port, None)
        .map_err(Error::Usage)?;
    let mut ipvs = Ipvs::change(ctx, env, "lb backend add")?;
    let before = ipvs.table()?;
    let e = before.get(&key).ok_or_else(|| no_service(&key))?;
    let name = addr_port(&addr, port);
    let p = match e.dest(addr, port) {
        None => Planned::one(Change::AddDest { key, dest: want }),
        Some(d) if plan::same_dest(d, &want) => Planned::none(format!(
            "real server {name} of {} already exists with these settings",
            key_name(&key)
        )),
        Some(d) => {
            return Err(usage!(
                "real server {name} of {} already exists with other settings ({d}); change it \
                 with `lbctl lb backend edit`",
                key_name(&key)
            ))
        }
    };
    finish(ctx, &mut ipvs, &before, p)
}

pub(super) fn edit(ctx: &Ctx, env: &Env, id: &BackendId, opts: &BackendOpts) -> Result<Outcome> {
    let (key, addr, port) = backend_target(id)?;
    let spec = opts.spec();
    if spec == DestSpec::default() {
        return Err(usage!(
            "nothing to change: give at least one option (--weight, --method, …)"
        ));
    }
    // what can be checked without the current values: ranges, and the port and family rules
    // when the method is given (otherwise they depend on the current method)
    if spec.method.is_some() {
        spec.build(&key, addr, port, None).map_err(Error::Usage)?;
    } else {
        if let Some(w) = spec.weight.filter(|w| *w > ipvs::model::MAX_WEIGHT) {
            return Err(Error::Usage(
                ipvs::ValidationError::WeightOutOfRange(w).to_string(),
            ));
        }
        if let (Some(upper), Some(lower)) = (spec.u_threshold, spec.l_threshold) {
            if lower > upper {
                return Err(Error::Usage(
                    ipvs::ValidationError::ThresholdOrder { upper, lower }.to_string(),
                ));
            }
        }
    }
    let mut ipvs = Ipvs::change(ctx, env, "lb backend edit")?;
    let before = ipvs.table()?;
    let e = before.get(&key).ok_or_else(|| no_service(&key))?;
    let name = addr_port(&addr, port);
    let Some(d) = e.dest(addr, port) else {
        return Err(usage!(
            "no real server {name} in service {} (add it with `lbctl lb backend add`)",
            key_name(&key)
        ));
    };
    let want = spec
        .build(&key, addr, port, Some(d))
        .map_err(Error::Usage)?;
    let p = if plan::same_dest(d, &want) {
        Planned::none(format!("real server {name} already has these settings"))
    } else {
        Planned::one(Change::EditDest {
            key,
            from: d.clone(),
            to: want,
        })
    };
    finish(ctx, &mut ipvs, &before, p)
}

pub(super) fn del(ctx: &Ctx, env: &Env, id: &BackendId) -> Result<Outcome> {
    let (key, addr, port) = backend_target(id)?;
    let mut ipvs = Ipvs::change(ctx, env, "lb backend del")?;
    let before = ipvs.table()?;
    let name = addr_port(&addr, port);
    let p = match before.get(&key).and_then(|e| e.dest(addr, port)) {
        None => Planned::none(format!(
            "no real server {name} in service {}",
            key_name(&key)
        )),
        Some(d) => Planned::one(Change::DelDest {
            key,
            dest: d.clone(),
        }),
    };
    finish(ctx, &mut ipvs, &before, p)
}

pub(super) fn drain(ctx: &Ctx, env: &Env, id: &BackendId) -> Result<Outcome> {
    let key = parse_service_key(
        Some(&id.service),
        id.proto.map(Protocol::from),
        None,
        id.ipv6,
    )
    .map_err(Error::Usage)?;
    let (addr, port) = text::parse_addr_port(&id.rip)
        .map_err(|e| usage!("invalid real server '{}': {}", id.rip, e.replace('`', "'")))?;
    let mut ipvs = Ipvs::change(ctx, env, "lb drain")?;
    let before = ipvs.table()?;
    let e = before.get(&key).ok_or_else(|| no_service(&key))?;
    let p = plan::drain(e, addr, port).map_err(Error::Usage)?;
    finish(ctx, &mut ipvs, &before, p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::lb::{parse, BackendCmd, LbCmd};

    #[test]
    fn backend_validation_without_syscalls() {
        let target = |args: &str| match parse(args).unwrap() {
            LbCmd::Backend(BackendCmd::Add { id, opts } | BackendCmd::Edit { id, opts }) => {
                let (k, a, p) = backend_target(&id)?;
                opts.spec().build(&k, a, p, None).map_err(Error::Usage)
            }
            _ => panic!(),
        };
        let d = target("lb backend add [2001:db8::100]:443 2001:db8::11 -w 5").unwrap();
        assert_eq!(d.to_string(), "-r [2001:db8::11]:443 -g -w 5");
        let e = target("lb backend add 198.18.0.100:80 198.18.0.11:8080").unwrap_err();
        assert!(
            e.to_string().contains("DR forwarding does not change"),
            "{e}"
        );
        assert!(target("lb backend add 198.18.0.100:80 198.18.0.11:8080 --method nat").is_ok());
        for (args, err) in [
            (
                "lb backend add 198.18.0.100:80 198.18.0.300",
                "invalid real server",
            ),
            ("lb backend add 198.18.0.100 198.18.0.11", "has no port"),
            (
                "lb backend add 198.18.0.100:80 198.18.0.11 -w 4294967295",
                "weight",
            ),
            ("lb backend add 198.18.0.100:80 2001:db8::11", "tunnel"),
        ] {
            let e = target(args).unwrap_err();
            assert!(e.to_string().contains(err), "{args}: {e}");
        }
    }
}
