//! `lbctl lb`: the balancer, as kernel IPVS over generic netlink, direct routing (DSR) by default.
//!
//! Every mutating command has the same shape as the backend engine (`crate::engine`):
//! 1. parse and validate the whole request: bad input is exit 2 before IPVS is even opened;
//! 2. open IPVS ("no IPVS" is exit 2 with a `modprobe ip_vs` hint; no CAP_NET_ADMIN is exit 77),
//!    take the journal lock, list the table;
//! 3. plan: a list of typed [`Change`](plan::Change)s whose `Display` is the `ipvsadm` command line, so
//!    `--dry-run` prints a script (`| sh` works where ipvsadm is installed);
//! 4. apply in order, undo in reverse order on failure, then list again and check that every
//!    touched service is exactly as predicted (otherwise undo everything).
//!
//! Adds and deletes are idempotent ("unchanged" when the object is already as asked), like
//! `vip add`. `lb apply -f` is declarative: it converges the services of the file (settings and
//! exactly their real servers), deletes services that the same file created earlier and no
//! longer lists (recorded in `lb-owned.json` in the journal directory), and leaves every other
//! service alone unless `--prune` is given.
//!
//! `--dry-run` works on a host without IPVS: it warns and plans against an empty table (useful to
//! check an LB file in CI). `list` and `save` there fail with the "no IPVS" error.

//!
//! One file per group of verbs: `service`, `backend` (and `drain`), `list` (and `save`),
//! `restore`, `apply`, and `run` (`lb run`, `lb status`, `lb maglev`). This file holds what
//! they share: opening IPVS, and printing or applying a [`Planned`] change list.

mod apply;
mod backend;
mod balance;
mod control;
mod drain;
mod export;
mod list;
mod restore;
mod run;
mod service;

use serde_json::json;

use super::Env;
use crate::cli::lb::{BackendCmd, LbCmd, ServiceCmd};
use crate::error::{Error, Result};
use crate::ipvs::plan::{self, Planned, Table};
use crate::ipvs::spec::key_name;
use crate::ipvs::text::addr_port;
use crate::ipvs::{self, Client, Family, Protocol, ServiceKey};
use crate::{usage, Ctx, Outcome};

/// The message for a kernel without the "IPVS" generic-netlink family.
pub const NO_IPVS: &str = "this kernel has no IPVS; try modprobe ip_vs \
(IPVS needs CONFIG_IP_VS, and its table is per network namespace)";

pub fn run(ctx: &Ctx, env: &Env, cmd: LbCmd) -> Result<Outcome> {
    match cmd {
        LbCmd::Service(ServiceCmd::Add { id, opts }) => service::add(ctx, env, &id, &opts),
        LbCmd::Service(ServiceCmd::Edit { id, opts }) => service::edit(ctx, env, &id, &opts),
        LbCmd::Service(ServiceCmd::Del { id }) => service::del(ctx, env, &id),
        LbCmd::Backend(BackendCmd::Add { id, opts }) => backend::add(ctx, env, &id, &opts),
        LbCmd::Backend(BackendCmd::Edit { id, opts }) => backend::edit(ctx, env, &id, &opts),
        LbCmd::Backend(BackendCmd::Del { id }) => backend::del(ctx, env, &id),
        LbCmd::Drain(a) => match (a.backend(), &a.balancer) {
            (Some(id), _) => match control::for_backend(ctx, env, &id, control::Verb::Drain)? {
                Some(o) => Ok(o),
                None => backend::drain(ctx, env, &id),
            },
            (None, Some(name)) => drain::balancer(ctx, env, name, a.timeout, a.wait_exit),
            (None, None) => Err(usage!(
                "lb drain: name a backend (VIP:PORT RIP) or --balancer NAME"
            )),
        },
        LbCmd::Undrain(a) => control::backend(ctx, env, &a.id, control::Verb::Undrain),
        LbCmd::Weight(a) => control::backend(
            ctx,
            env,
            &a.id,
            control::Verb::Weight(if a.reset { None } else { a.weight }),
        ),
        LbCmd::Disable(a) => control::service(ctx, env, &a, true),
        LbCmd::Enable(a) => control::service(ctx, env, &a, false),
        LbCmd::Balance(a) => balance::balance(ctx, env, &a),
        LbCmd::List(a) => list::list(ctx, env, &a),
        LbCmd::Save => list::save(ctx),
        LbCmd::Restore(a) => restore::restore(ctx, env, &a),
        LbCmd::Apply(a) => apply::apply(ctx, env, &a),
        LbCmd::Run(a) => run::run(ctx, env, &a),
        LbCmd::Status(a) => run::status(ctx, env, &a),
        LbCmd::Maglev(a) => run::maglev_report(ctx, &a),
        LbCmd::Export(a) => export::export(ctx, env, &a),
        LbCmd::Import(a) => export::import(ctx, &a),
    }
}

/// An IPVS error as lbctl reports it (and its exit code).
fn ipvs_err(e: ipvs::Error) -> Error {
    match e {
        ipvs::Error::NoIpvs => Error::Runtime(anyhow::anyhow!(NO_IPVS)),
        // one line, like every other lbctl error
        e @ ipvs::Error::Permission { .. } => {
            let s = e.to_string();
            Error::Privilege(match s.split_once("\n  hint: ") {
                Some((what, hint)) => format!("{what} ({hint})"),
                None => s,
            })
        }
        e @ (ipvs::Error::Invalid { .. } | ipvs::Error::Parse(_)) => Error::Usage(e.to_string()),
        e => Error::Runtime(anyhow::anyhow!(e.to_string())),
    }
}

/// The kernel side of a command: a client, or nothing for a dry run on a host without IPVS.
struct Ipvs {
    client: Option<Client>,
    _lock: Option<crate::journal::Lock>,
    journal: crate::journal::Journal,
    /// Who owns the services this command creates (`cli`, or `lb:NAME` for `lb apply`).
    owner: String,
}

impl Ipvs {
    /// For reading.
    fn read() -> Result<Client> {
        Client::open().map_err(ipvs_err)
    }

    /// For changing: privilege checked and journal lock held, unless `--dry-run`.
    fn change(ctx: &Ctx, env: &Env, what: &str) -> Result<Ipvs> {
        let client = match Client::open() {
            Ok(c) => Some(c),
            Err(ipvs::Error::NoIpvs) if ctx.global.dry_run => {
                ctx.warn(
                    "this kernel has no IPVS (try modprobe ip_vs): planning against an empty \
                     IPVS table",
                );
                None
            }
            Err(e) => return Err(ipvs_err(e)),
        };
        let lock = if ctx.global.dry_run {
            None
        } else {
            crate::sys::require_net_admin(what)?;
            Some(env.journal.lock()?)
        };
        Ok(Ipvs {
            client,
            _lock: lock,
            journal: env.journal.clone(),
            owner: crate::journal::CLI_OWNER.to_string(),
        })
    }

    /// The current table (empty without IPVS).
    fn table(&mut self) -> Result<Table> {
        match &mut self.client {
            Some(c) => Ok(Table::from_listing(&c.services().map_err(ipvs_err)?)),
            None => Ok(Table::default()),
        }
    }
}

/// Print the plan (dry run) or apply it with rollback and verification, then report.
fn finish(ctx: &Ctx, ipvs: &mut Ipvs, before: &Table, p: Planned) -> Result<Outcome> {
    let lines: Vec<String> = p.changes.iter().map(|c| c.to_string()).collect();
    let dry = ctx.global.dry_run;
    let mut applied = false;
    if !dry && !p.changes.is_empty() {
        let client = ipvs
            .client
            .as_mut()
            .expect("a client is always open outside --dry-run");
        let detail = |l: &str| ctx.detail(l);
        // Ownership is recorded before the services exist (write-ahead), and forgotten only
        // once they are gone.
        let keys_of = |pick: fn(&plan::Change) -> bool| -> std::collections::BTreeSet<String> {
            p.changes
                .iter()
                .filter(|c| pick(c))
                .map(|c| c.key().to_string())
                .collect()
        };
        let added = keys_of(|c| matches!(c, plan::Change::AddService(_)));
        let deleted = keys_of(|c| matches!(c, plan::Change::DelService { .. }));
        let saved = ipvs.journal.load()?;
        let owner = ipvs.owner.clone();
        crate::engine::lb::update(&ipvs.journal, |lb| {
            lb.entry(owner).or_default().ipvs_services.extend(added);
        })?;
        if let Err(e) = plan::execute(client, before, &p.changes, &detail) {
            ipvs.journal.save(&saved)?;
            return Err(if plan::is_permission(&e) {
                Error::Privilege(e.to_string())
            } else {
                Error::Runtime(anyhow::Error::new(e))
            });
        }
        crate::engine::lb::update(&ipvs.journal, |lb| {
            crate::engine::lb::forget_services(lb, &deleted)
        })?;
        applied = true;
    }
    if ctx.global.json {
        ctx.emit_json(&json!({
            "changes": lines,
            "applied": applied,
            "dry_run": dry,
            "notes": p.notes,
        }));
        return Ok(Outcome::Clean);
    }
    if dry {
        if ctx.global.quiet {
            return Ok(Outcome::Clean);
        }
        // plain lines (comments for the rest), so `lbctl -n lb … | sh` works
        for n in &p.notes {
            println!("# note: {n}");
        }
        if lines.is_empty() {
            println!("# unchanged: {}", p.unchanged);
        }
        for l in &lines {
            println!("{l}");
        }
        return Ok(Outcome::Clean);
    }
    for n in &p.notes {
        ctx.say(format!("note: {n}"));
    }
    if lines.is_empty() {
        ctx.say(format!("unchanged: {}", p.unchanged));
    } else {
        for l in &lines {
            ctx.say(l);
        }
        ctx.say(format!("applied {} change(s)", lines.len()));
    }
    Ok(Outcome::Clean)
}

/// The arguments that name `key` on lbctl's command line.
fn cli_args(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Inet {
            protocol: Protocol::Tcp,
            addr,
            port,
        } => addr_port(addr, *port),
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => format!(
            "{} --proto {}",
            addr_port(addr, *port),
            protocol.list_name().to_lowercase()
        ),
        ServiceKey::Fwmark {
            mark,
            family: Family::Inet,
        } => format!("fwmark:{mark}"),
        ServiceKey::Fwmark { mark, .. } => format!("fwmark:{mark} --ipv6"),
    }
}

fn no_service(key: &ServiceKey) -> Error {
    usage!(
        "no service {} (create it first with `lbctl lb service add {}`)",
        key_name(key),
        cli_args(key)
    )
}
